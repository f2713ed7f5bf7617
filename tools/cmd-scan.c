/*
 * cmd-scan.c - `hashgate scan`: hash existing storage and match it against the database, the
 * way a hoster cleans up what was uploaded before hashgate was installed.
 *
 * The main thread walks the trees (openat with O_NOFOLLOW from each directory's fd, so no
 * symlink is ever followed, and paths need not be resolved again) and feeds regular files to a
 * bounded queue; --jobs worker threads open each file relative to its directory's fd, hash it
 * (MD5, SHA-1, SHA-256, and PDQ for JPEGs - all of them, so a later list of any kind can be
 * matched without re-reading) and check the digests with the in-memory matcher.
 *
 * The scan db (config scan_db) keeps per-file digests keyed by absolute path with dev, inode,
 * size, mtime and ctime: when all five are unchanged a rescan reuses the stored digests and
 * only re-runs the match, so a new hash list is checked against a large tree without reading
 * it again.  Workers look rows up through their own read-only connections (WAL); one writer
 * connection behind a mutex batches inserts into transactions.
 *
 * Per-file problems (unreadable, permission, vanished, changed while being read: size or
 * mtime differ between the start and the end of the read) are counted and reported, never
 * fatal; such files are not recorded, so the next scan reads them again.
 * Open files are bounded: the walk holds two fds per directory level, the queue at most
 * QUEUE_CAP directory references, each worker one file.
 *
 * Every match goes to the on_match_exec hook like a match of an upload ("source":"scan";
 * hashdb/hook.c runs it, one at a time on its own thread, the same way the daemon does),
 * unless --no-hook.  Events are never dropped: a worker waits while on_match_exec_queue
 * events wait, and the scan ends after the last one ran, each bounded by
 * on_match_exec_timeout.  A failed hook is reported, counted and makes the exit status 2.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "hashdb/audit.h"
#include "hashdb/hash.h"
#include "hashdb/hglog.h"
#include "hashdb/hook.h"
#include "hashdb/image.h"
#include "hashdb/match.h"
#include "hashdb/pdq.h"
#include "hashdb/qstore.h"
#include "tools/adm.h"
#include "tools/commands.h"

#define CMD		"scan"
#define BATCH		128		/* files the walker queues per lock round trip */
#define TAKE_MAX	32		/* files a worker takes per lock round trip */
#define QUEUE_CAP	8192		/* files queued */
#define READ_CHUNK	(1024 * 1024)
#define ROWS_WAKE	512		/* rows that wake the scan db writer */
#define ROWS_MAX	65536		/* rows queued before workers wait for the writer */

/* A hash in several lists is reported with the list whose category is acted on hardest. */
static int scan_rank(const char *category, void *arg)
{
	return config_action_rank(arg, category);
}

static void usage(FILE *f)
{
	fprintf(f,
"usage: hashgate scan [--jobs N] [--action report|quarantine] [--rehash] [--no-record]\n"
"                     [--one-file-system] [--prune] [--no-hook] [--json] [--quiet] PATH...\n"
"\n"
"Hash every regular file under each PATH (MD5, SHA-1, SHA-256 and, for JPEG, PNG, WebP,\n"
"GIF and BMP images, PDQ) and match it against the hash database.  Symlinks are never\n"
"followed; other special files and hashgate's own scan database, quarantine store and audit\n"
"log are skipped.  A progress bar\n"
"is shown on a terminal; a summary (files, bytes, matches, errors, files/s, MB/s) is printed\n"
"at the end.\n"
"\n"
"  --jobs N        hashing threads (default: number of CPUs)\n"
"  --action A      report (default): list matches only;  quarantine: move each match into\n"
"                  the quarantine store (or record and delete it for categories whose\n"
"                  on_match is block; 'log' categories are only reported), audited\n"
"  --rehash        read every file again, ignoring the stored digests\n"
"  --no-record     do not read or update the scan database\n"
"  --prune         afterwards drop scan database rows of files under PATH that no longer\n"
"                  exist\n"
"  -x, --one-file-system\n"
"                  do not descend into directories on other file systems\n"
"  --no-hook       do not run the on_match_exec hook (by default every match is sent to\n"
"                  it as for an upload, with \"source\":\"scan\"; a failed hook is exit 2)\n"
"  --json          one JSON object: summary, matches and errors\n"
"\n"
"Per-file digests are kept in the scan database ('scan_db' in hashgate.conf) keyed by path,\n"
"device, inode, size, mtime and ctime, so a rescan (e.g. after a new hash list was imported)\n"
"reads only new or changed files and matches the stored digests of the others.\n"
"Unreadable files and files that change while being read are reported and counted as errors,\n"
"never fatal, and are read again by the next scan.\n"
"\n"
"Exit status: 0 no match, 1 matches found, 2 error (database unusable, bad path, a hook\n"
"failed), 64 usage.\n");
}

struct sroot {
	char *abs;			/* absolute path of the directory the walk starts in */
	dev_t dev;
};

struct sdir {
	int fd;
	dev_t dev;
	atomic_int refs;
	char *rel;			/* relative to root->abs; "" for the root itself */
	const struct sroot *root;
};

struct item {
	struct sdir *dir;
	char *name;
};

/*
 * Files travel in batches: one lock round trip per BATCH files for the walker and up to
 * TAKE_MAX for a worker, not one per file.  A worker takes only a share of what is queued
 * (count / 2 jobs), so the last few files - often the large ones - still spread over all
 * workers instead of landing in one worker's batch.
 */
struct batch {
	size_t n;
	struct item it[BATCH];
};

/* One scan db row on its way to the writer thread. */
struct row {
	char *path;
	int64_t dev, ino, size, mtime, ctime;
	uint8_t md5[16], sha1[20], sha256[32];
	uint8_t *pdq;			/* ndih * 32 bytes, or NULL */
	int pdqlen, quality;
};

struct counters {
	atomic_uint_fast64_t files, bytes, hashed, hashed_bytes, reused, matches, errors, skipped,
			     queued, quarantined, hook_runs, hook_failures;
};

struct scan {
	struct cli *cli;
	struct matcher *m;
	struct match_opts mopts;
	int64_t pruned;
	/* hashgate's own files (scan db, quarantine, audit log): never scanned */
	dev_t excl_dev[8];
	ino_t excl_ino[8];
	int nexcl;
	struct qstore *q;
	struct audit *audit;
	struct hookq *hq;		/* on_match_exec; NULL with --no-hook or no hook set */
	atomic_bool audit_failed;	/* a promised audit record was not written: exit 2 */
	bool quarantine, record, rehash, progress, one_fs, prune, no_hook;
	bool walk_done;			/* under qlock */
	bool wdone;			/* under wlock */
	char actor[256];

	pthread_mutex_t qlock;
	pthread_cond_t qnonempty, qnonfull;
	struct item ring[QUEUE_CAP];
	size_t head, count;
	long jobs;
	struct batch *cur;		/* being filled by the walker (main thread only) */

	/* The scan db writer thread and the rows queued for it. */
	pthread_mutex_t wlock;
	pthread_cond_t wwake, wspace;
	struct row *rows;
	size_t nrows, caprows;
	pthread_t wtid;
	sqlite3 *wdb;
	sqlite3_stmt *ins;

	pthread_mutex_t olock;		/* report output */
	FILE *jmatches, *jerrors;
	char *jmbuf, *jebuf;
	size_t jmlen, jelen;
	unsigned nj_matches, nj_errors;

	struct counters c;
	struct timespec t0;
	atomic_bool stop_progress;
};

struct worker {
	struct scan *s;
	pthread_t tid;
	struct hasher h;		/* the file being hashed (whash_*) */
	sqlite3 *rdb;
	sqlite3_stmt *sel;
	uint8_t *buf;
	uint8_t *jpeg;			/* whole-JPEG buffer for PDQ, grown as needed */
	size_t jpegcap;
};

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double elapsed(const struct scan *s)
{
	return now_s() - ((double)s->t0.tv_sec + s->t0.tv_nsec / 1e9);
}

static void sdir_put(struct sdir *d)
{
	if (atomic_fetch_sub(&d->refs, 1) == 1) {
		close(d->fd);
		free(d->rel);
		free(d);
	}
}

static char *join3(const char *a, const char *b, const char *c)
{
	char *p;

	if (asprintf(&p, "%s%s%s%s%s", a, *a && (*b || *c) && strcmp(a, "/") != 0 ? "/" : "", b,
		     *b && *c ? "/" : "", c) < 0)
		return NULL;
	return p;
}

/* --- reporting --------------------------------------------------------------------------- */

static void report_error(struct scan *s, const char *path, const char *what, int err)
{
	atomic_fetch_add(&s->c.errors, 1);
	pthread_mutex_lock(&s->olock);
	if (s->cli->json) {
		fprintf(s->jerrors, "%s{\"path\":", s->nj_errors++ ? "," : "");
		adm_json_print(s->jerrors, path);
		fprintf(s->jerrors, ",\"error\":");
		adm_json_print(s->jerrors, err ? strerror(err) : what);
		fprintf(s->jerrors, "}");
	} else {
		if (s->progress)
			fputs("\r\033[K", stderr);
		fputs("hashgate scan: ", stderr);
		adm_text_print(stderr, path);
		fprintf(stderr, ": %s%s%s\n", what, err ? ": " : "", err ? strerror(err) : "");
	}
	pthread_mutex_unlock(&s->olock);
}

static void report_match(struct scan *s, const char *path, uint64_t size,
			 const struct match_hit *hit, const struct hashdb_rowmeta *meta,
			 const char *done, int64_t qid)
{
	pthread_mutex_lock(&s->olock);
	if (s->cli->json) {
		fprintf(s->jmatches, "%s{\"path\":", s->nj_matches++ ? "," : "");
		adm_json_print(s->jmatches, path);
		fprintf(s->jmatches, ",\"size\":%" PRIu64 ",\"algo\":\"%s\",\"distance\":%d,"
			"\"list\":", size, hash_algo_name(hit->algo), hit->distance);
		adm_json_print(s->jmatches, hit->list);
		fputs(",\"category\":", s->jmatches);
		adm_json_print(s->jmatches, hit->category);
		if (meta->ref[0]) {
			fputs(",\"ref\":", s->jmatches);
			adm_json_print(s->jmatches, meta->ref);
		}
		if (meta->label[0]) {
			fputs(",\"label\":", s->jmatches);
			adm_json_print(s->jmatches, meta->label);
		}
		fprintf(s->jmatches, ",\"action\":\"%s\"", done);
		if (qid > 0)
			fprintf(s->jmatches, ",\"quarantine_id\":%" PRId64, qid);
		fputc('}', s->jmatches);
	} else {
		if (s->progress)
			fputs("\r\033[K", stderr);
		fputs("MATCH  ", stdout);
		adm_text_print(stdout, path);
		printf("  list=%s category=%s algo=%s", hit->list, hit->category,
		       hash_algo_name(hit->algo));
		if (hit->algo == HASH_PDQ)
			printf(" distance=%d", hit->distance);
		/* from the list file: escaped, never raw terminal control */
		if (meta->ref[0]) {
			fputs(" ref=", stdout);
			adm_text_print(stdout, meta->ref);
		}
		if (meta->label[0]) {
			fputs(" label=", stdout);
			adm_text_print(stdout, meta->label);
		}
		printf("  %s", done);
		if (qid > 0)
			printf(" (quarantine id %" PRId64 ")", qid);
		putchar('\n');
		fflush(stdout);
	}
	pthread_mutex_unlock(&s->olock);
}

/* --- on_match_exec ----------------------------------------------------------------------- */

static void hook_failed(struct scan *s, const char *prog, const char *path, const char *why)
{
	atomic_fetch_add(&s->c.hook_failures, 1);
	pthread_mutex_lock(&s->olock);
	if (s->progress)
		fputs("\r\033[K", stderr);
	fputs("hashgate scan: on_match_exec \"", stderr);
	adm_text_print(stderr, prog ? prog : "?");
	fputs("\" failed for ", stderr);
	adm_text_print(stderr, path);
	fputs(": ", stderr);
	adm_text_print(stderr, why);
	fputc('\n', stderr);
	pthread_mutex_unlock(&s->olock);
}

/* On the hook queue's thread: the program configured for the event's category, if any. */
static void hook_ran(void *arg, const struct hook_event *ev)
{
	struct scan *s = arg;
	const char *prog;
	char why[1024];
	int r = hook_run_event(&s->cli->cfg, ev, &prog, why, sizeof(why));

	if (r == 1)
		return;
	atomic_fetch_add(&s->c.hook_runs, 1);
	if (r < 0)
		hook_failed(s, prog, ev->path ? ev->path : "?", why);
}

/* Some category has a hook: else no thread is started at all. */
static bool hook_any(const struct hg_config *c)
{
	if (c->on_match_exec)
		return true;
	for (size_t i = 0; i < c->ncat_exec; i++)
		if (*c->cat_exec[i].path)
			return true;
	return false;
}

static char *json_dup(const char *v)
{
	size_t n = 6 * strlen(v) + 1;
	char *e = malloc(n);

	if (e)
		hglog_escape(e, n, v, 1);
	return e;
}

/*
 * Queue the match's event, with the members of the daemon's (hashgatefs audit record) so one
 * hook reads both: kind "scan", action what this scan did ("report": the file is still in
 * place; "quarantine", "block" or "log" as --action quarantine applied the category's action),
 * mount the scanned root, path the file under it, uid/gid its owner's, pid 0, qid/id the
 * quarantine record's (0 when none).  Waits while on_match_exec_queue events wait.
 */
static void hook_submit(struct scan *s, const struct sdir *dir, const char *name,
			const char *path, const struct stat *st, const struct digests *d,
			const struct pdq_result *pdq, int has_pdq, const struct match_hit *hit,
			const struct hashdb_rowmeta *meta, const char *action, int64_t qid)
{
	const struct hg_config *c = &s->cli->cfg;
	char md5[33], sha1[41], sha256[65], hpdq[65], elist[256], ecat[128];
	char eref[1024], elabel[2048];
	char *rel, *emount, *erel, *fields = NULL;
	struct hook_event *ev = NULL;

	if (!config_exec_for(c, hit->category))
		return;
	rel = join3(dir->rel, name, "");
	emount = json_dup(dir->root->abs);
	erel = rel ? json_dup(rel) : NULL;
	hex_encode(d->md5, 16, md5);
	hex_encode(d->sha1, 20, sha1);
	hex_encode(d->sha256, 32, sha256);
	if (has_pdq)
		pdq_to_hex(&pdq->hash[PDQ_ORIG], hpdq);
	else
		strcpy(hpdq, "-");
	hglog_escape(elist, sizeof(elist), hit->list, 1);
	hglog_escape(ecat, sizeof(ecat), hit->category, 1);
	hglog_escape(eref, sizeof(eref), meta->ref, 1);
	hglog_escape(elabel, sizeof(elabel), meta->label, 1);
	if (emount && erel &&
	    asprintf(&fields, "\"kind\":\"scan\",\"verdict\":\"match\",\"action\":\"%s\","
		     "\"mount\":\"%s\",\"path\":\"%s\",\"uid\":%u,\"gid\":%u,\"pid\":0,"
		     "\"size\":%" PRIu64 ",\"algo\":\"%s\",\"distance\":%d,\"list\":\"%s\","
		     "\"category\":\"%s\",\"qid\":%" PRId64 ",\"generation\":%" PRIu64 ","
		     "\"md5\":\"%s\",\"sha1\":\"%s\",\"sha256\":\"%s\",\"pdq\":\"%s\","
		     "\"evidence\":\"%s\"%s%s%s%s%s%s", action, emount, erel,
		     (unsigned)st->st_uid, (unsigned)st->st_gid, (uint64_t)st->st_size,
		     hash_algo_name(hit->algo), hit->distance, elist, ecat, qid,
		     matcher_generation(s->m), md5, sha1, sha256, hpdq,
		     qid > 0 && strcmp(action, "quarantine") == 0 ? "stored" : "none",
		     meta->ref[0] ? ",\"ref\":\"" : "", eref, meta->ref[0] ? "\"" : "",
		     meta->label[0] ? ",\"label\":\"" : "", elabel,
		     meta->label[0] ? "\"" : "") >= 0)
		ev = hook_event_new(hit, st->st_uid, qid, "scan", path, fields);
	if (!ev || hookq_submit(s->hq, ev, (unsigned)c->on_match_exec_queue, true) < 0) {
		hook_event_free(ev);
		hook_failed(s, config_exec_for(c, hit->category), path,
			    ev ? "the hook queue stopped" : "out of memory");
	}
	free(fields);
	free(erel);
	free(emount);
	free(rel);
}

/* --- scan database ----------------------------------------------------------------------- */

static const char scan_schema[] =
	"CREATE TABLE IF NOT EXISTS files(path TEXT PRIMARY KEY, dev INTEGER NOT NULL,"
	" ino INTEGER NOT NULL, size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL,"
	" ctime_ns INTEGER NOT NULL, md5 BLOB, sha1 BLOB, sha256 BLOB, pdq BLOB,"
	" pdq_quality INTEGER NOT NULL DEFAULT 0, scanned INTEGER NOT NULL) WITHOUT ROWID;";

static int64_t ts_ns(const struct timespec *t)
{
	return (int64_t)t->tv_sec * 1000000000 + t->tv_nsec;
}

static int scandb_open(struct scan *s)
{
	const char *path = s->cli->cfg.scan_db;
	char *dcopy = strdup(path);

	if (!dcopy)
		return -ENOMEM;
	/* The scan db holds paths: keep its directory as private as the rest of hashgate's. */
	if (mkdir(dirname(dcopy), 0700) < 0 && errno != EEXIST) {
		cli_error(CMD, "scan database %s: cannot create its directory: %s", path,
			  strerror(errno));
		free(dcopy);
		return -errno;
	}
	free(dcopy);
	if (sqlite3_open_v2(path, &s->wdb, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE |
			    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
		goto out_err;
	chmod(path, 0600);
	sqlite3_busy_timeout(s->wdb, 10000);
	/*
	 * WAL + synchronous=NORMAL: commits do not fsync.  No automatic checkpoints during the
	 * scan (each one fsyncs while the writer lock stalls every worker); one at the end.
	 * A crash loses at most the last rows, which the next scan simply re-reads.
	 */
	if (sqlite3_exec(s->wdb, "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"
			 " PRAGMA wal_autocheckpoint=0;", NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_exec(s->wdb, scan_schema, NULL, NULL, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(s->wdb, "INSERT OR REPLACE INTO files VALUES"
			       "(?,?,?,?,?,?,?,?,?,?,?,?)", -1, &s->ins, NULL) != SQLITE_OK)
		goto out_err;
	return 0;
out_err:
	cli_error(CMD, "scan database %s: %s", path,
		  s->wdb ? sqlite3_errmsg(s->wdb) : "out of memory");
	sqlite3_close(s->wdb);
	s->wdb = NULL;
	return -EIO;
}

/*
 * Queue a row for the writer thread.  Workers never wait on SQLite: inserting under a shared
 * lock made them queue behind each other's inserts (a 100k-file first scan took 70% longer
 * than one without the scan db); now they only append to an array.
 */
static void scandb_store(struct scan *s, const char *path, const struct stat *st,
			 const struct digests *d, const struct pdq_result *pdq)
{
	struct row r = {
		.dev = (int64_t)st->st_dev, .ino = (int64_t)st->st_ino, .size = st->st_size,
		.mtime = ts_ns(&st->st_mtim), .ctime = ts_ns(&st->st_ctim),
	};

	r.path = strdup(path);
	if (pdq) {
		r.pdqlen = pdq->ndih * 32;
		r.pdq = malloc((size_t)r.pdqlen);
		if (r.pdq)
			memcpy(r.pdq, pdq->hash, (size_t)r.pdqlen);
		r.quality = pdq->quality;
	}
	if (!r.path || (pdq && !r.pdq)) {
		free(r.path);
		free(r.pdq);
		return;			/* not recorded: the next scan reads it again */
	}
	memcpy(r.md5, d->md5, 16);
	memcpy(r.sha1, d->sha1, 20);
	memcpy(r.sha256, d->sha256, 32);
	pthread_mutex_lock(&s->wlock);
	while (s->nrows >= ROWS_MAX)
		pthread_cond_wait(&s->wspace, &s->wlock);
	if (s->nrows == s->caprows) {
		size_t ncap = s->caprows ? 2 * s->caprows : 1024;
		struct row *nr = realloc(s->rows, ncap * sizeof(*nr));

		if (!nr) {
			pthread_mutex_unlock(&s->wlock);
			free(r.path);
			free(r.pdq);
			return;
		}
		s->rows = nr;
		s->caprows = ncap;
	}
	s->rows[s->nrows++] = r;
	if (s->nrows >= ROWS_WAKE)
		pthread_cond_signal(&s->wwake);
	pthread_mutex_unlock(&s->wlock);
}

static void *writer_main(void *arg)
{
	struct scan *s = arg;
	sqlite3_stmt *ins = s->ins;

	for (;;) {
		struct row *rows;
		size_t n;

		pthread_mutex_lock(&s->wlock);
		while (s->nrows < ROWS_WAKE && !s->wdone)
			pthread_cond_wait(&s->wwake, &s->wlock);
		if (!s->nrows && s->wdone) {
			pthread_mutex_unlock(&s->wlock);
			break;
		}
		rows = s->rows;
		n = s->nrows;
		s->rows = NULL;
		s->nrows = s->caprows = 0;
		pthread_cond_broadcast(&s->wspace);
		pthread_mutex_unlock(&s->wlock);

		sqlite3_exec(s->wdb, "BEGIN", NULL, NULL, NULL);
		for (size_t i = 0; i < n; i++) {
			struct row *r = &rows[i];

			sqlite3_bind_text(ins, 1, r->path, -1, SQLITE_STATIC);
			sqlite3_bind_int64(ins, 2, r->dev);
			sqlite3_bind_int64(ins, 3, r->ino);
			sqlite3_bind_int64(ins, 4, r->size);
			sqlite3_bind_int64(ins, 5, r->mtime);
			sqlite3_bind_int64(ins, 6, r->ctime);
			sqlite3_bind_blob(ins, 7, r->md5, 16, SQLITE_STATIC);
			sqlite3_bind_blob(ins, 8, r->sha1, 20, SQLITE_STATIC);
			sqlite3_bind_blob(ins, 9, r->sha256, 32, SQLITE_STATIC);
			if (r->pdq)
				sqlite3_bind_blob(ins, 10, r->pdq, r->pdqlen, SQLITE_STATIC);
			else
				sqlite3_bind_null(ins, 10);
			sqlite3_bind_int(ins, 11, r->quality);
			sqlite3_bind_int64(ins, 12, (sqlite3_int64)time(NULL));
			if (sqlite3_step(ins) != SQLITE_DONE)
				report_error(s, r->path, "cannot record in the scan database", 0);
			sqlite3_reset(ins);
			sqlite3_clear_bindings(ins);
			free(r->path);
			free(r->pdq);
		}
		if (sqlite3_exec(s->wdb, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
			report_error(s, s->cli->cfg.scan_db, sqlite3_errmsg(s->wdb), 0);
		free(rows);
	}
	return NULL;
}

/* 1 and the stored digests when the row matches st exactly, else 0. */
static int scandb_lookup(struct worker *w, const char *path, const struct stat *st,
			 struct digests *d, struct pdq_result *pdq, int *has_pdq)
{
	sqlite3_stmt *q = w->sel;
	int found = 0;

	if (!q)
		return 0;
	sqlite3_reset(q);
	sqlite3_bind_text(q, 1, path, -1, SQLITE_STATIC);
	if (sqlite3_step(q) == SQLITE_ROW &&
	    sqlite3_column_int64(q, 0) == (sqlite3_int64)st->st_dev &&
	    sqlite3_column_int64(q, 1) == (sqlite3_int64)st->st_ino &&
	    sqlite3_column_int64(q, 2) == st->st_size &&
	    sqlite3_column_int64(q, 3) == ts_ns(&st->st_mtim) &&
	    sqlite3_column_int64(q, 4) == ts_ns(&st->st_ctim) &&
	    sqlite3_column_bytes(q, 5) == 16 && sqlite3_column_bytes(q, 6) == 20 &&
	    sqlite3_column_bytes(q, 7) == 32) {
		int pb = sqlite3_column_bytes(q, 8);

		memset(d, 0, sizeof(*d));
		memcpy(d->md5, sqlite3_column_blob(q, 5), 16);
		memcpy(d->sha1, sqlite3_column_blob(q, 6), 20);
		memcpy(d->sha256, sqlite3_column_blob(q, 7), 32);
		d->mask = HASH_EXACT_MASK;
		d->size = (uint64_t)st->st_size;
		*has_pdq = 0;
		if (pb == 32 || pb == 8 * 32) {
			memset(pdq, 0, sizeof(*pdq));
			memcpy(pdq->hash, sqlite3_column_blob(q, 8), (size_t)pb);
			pdq->ndih = pb / 32;
			pdq->quality = sqlite3_column_int(q, 9);
			*has_pdq = 1;
		}
		found = 1;
	}
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return found;
}

/*
 * The exact digests through libhashdb's hasher: the fused SHA-NI pass where the CPU has it
 * (about twice OpenSSL's three EVP digests one after the other, hashdb/hashfused.c), else
 * EVP.  A hasher left live by a file given up half-way is released by the next init.
 */
static int whash_init(struct worker *w)
{
	hasher_release(&w->h);
	return hasher_init(&w->h, HASH_EXACT_MASK);
}

/* hasher_final releases the hasher too */
static int whash_final(struct worker *w, struct digests *d, uint64_t size)
{
	int r = hasher_final(&w->h, d);

	if (r < 0)
		return r;
	d->size = size;
	return 0;
}

static int same_file(const struct stat *a, const struct stat *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino && a->st_size == b->st_size &&
	       ts_ns(&a->st_mtim) == ts_ns(&b->st_mtim);
}

/* --- hashing ----------------------------------------------------------------------------- */

/*
 * Hash fd (size bytes per st).  JPEGs no larger than pdq_max_size are kept whole in w->jpeg
 * for PDQ; larger ones are decoded streaming from fd.  Returns 0, 1 when the file changed
 * during the read, or -errno.  *pdq_rc: 0 PDQ computed, -ENOENT not a JPEG (or PDQ off),
 * else why a file that looks like a JPEG gave no PDQ (pdq->reason says more).
 */
static int hash_file(struct worker *w, int fd, const struct stat *st, struct digests *d,
		     struct pdq_result *pdq, int *has_pdq, int *pdq_rc)
{
	const struct hg_config *cfg = &w->s->cli->cfg;
	struct stat st2;
	uint64_t off = 0;
	size_t jlen = 0;
	int keep_jpeg = -1, big_jpeg = 0, r;

	*has_pdq = 0;
	*pdq_rc = -ENOENT;
	r = whash_init(w);
	if (r < 0)
		return r;
	if (st->st_size > READ_CHUNK)
		posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	for (;;) {
		ssize_t n = pread(fd, w->buf, READ_CHUNK, (off_t)off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		if (keep_jpeg < 0) {
			int jpeg = cfg->pdq && image_kind(w->buf, (size_t)n) != 0;

			keep_jpeg = jpeg && (uint64_t)st->st_size <= cfg->pdq_max_size;
			big_jpeg = jpeg && !keep_jpeg;
		}
		if (keep_jpeg) {
			if (jlen + (size_t)n > w->jpegcap) {
				size_t ncap = (jlen + (size_t)n) * 2;
				uint8_t *nb;

				if (ncap > cfg->pdq_max_size + READ_CHUNK)
					ncap = cfg->pdq_max_size + READ_CHUNK;
				nb = ncap >= jlen + (size_t)n ? realloc(w->jpeg, ncap) : NULL;
				if (!nb) {	/* grew past pdq_max_size: decode from fd */
					keep_jpeg = 0;
					big_jpeg = 1;
					goto hash;
				}
				w->jpeg = nb;
				w->jpegcap = ncap;
			}
			memcpy(w->jpeg + jlen, w->buf, (size_t)n);
			jlen += (size_t)n;
		}
hash:
		hasher_update(&w->h, w->buf, (size_t)n);
		off += (uint64_t)n;
		/* A short read of a regular file is its end; growth shows in the fstat below. */
		if (n < READ_CHUNK && off >= (uint64_t)st->st_size)
			break;
		/* Past the size it had: growing (or not the file we stat'ed); stop reading. */
		if (off > (uint64_t)st->st_size)
			return 1;
	}
	r = whash_final(w, d, off);
	if (r < 0)
		return r;
	/* One fstat at the end proves both "the file we stat'ed by name" and "unchanged". */
	if (fstat(fd, &st2) < 0)
		return -errno;
	if (off != (uint64_t)st->st_size || !same_file(&st2, st) ||
	    ts_ns(&st2.st_ctim) != ts_ns(&st->st_ctim))
		return 1;
	/* A file that looks like a JPEG but gives no PDQ is an error for the caller to report;
	 * its exact hashes are still checked. */
	if (keep_jpeg == 1)
		*pdq_rc = image_pdq_buf(w->jpeg, jlen, PDQ_DIHEDRAL, cfg->image_max_pixels, pdq);
	else if (big_jpeg)
		*pdq_rc = image_pdq_fd(fd, cfg->pdq_max_size, PDQ_DIHEDRAL, cfg->image_max_pixels,
				       pdq);
	*has_pdq = *pdq_rc == 0;
	if (*pdq_rc == -EIO || *pdq_rc == -ENOMEM)
		return *pdq_rc;
	return 0;
}

/* --- acting on a match ------------------------------------------------------------------- */

static const char *quarantine_match(struct scan *s, struct sdir *dir, const char *name,
				    const char *path, int fd, const struct stat *st,
				    const struct digests *d, const struct pdq_result *pdq,
				    int has_pdq, const struct match_hit *hit,
				    const struct hashdb_rowmeta *meta, int64_t *qid)
{
	enum hg_action act = config_action_for(&s->cli->cfg, hit->category);
	struct qrecord rec = { 0 };
	char *rel, escl[256];
	struct stat now;
	int r;

	if (act == ACTION_LOG)
		return "reported (category action is log)";
	rel = join3(dir->rel, name, "");
	if (!rel)
		return "NOT quarantined: out of memory";
	rec.time = (int64_t)time(NULL);
	rec.upload_time = st->st_mtim.tv_sec;
	rec.uid = st->st_uid;
	rec.gid = st->st_gid;
	rec.pid = 0;
	rec.mount = dir->root->abs;
	rec.path = rel;
	rec.size = (uint64_t)st->st_size;
	rec.mode = st->st_mode & 07777;
	rec.digests = *d;
	if (has_pdq) {
		rec.has_pdq = true;
		rec.pdq = pdq->hash[PDQ_ORIG];
		rec.pdq_quality = pdq->quality;
	}
	rec.algo = hit->algo;
	rec.distance = hit->distance;
	rec.list = (char *)hit->list;
	rec.category = (char *)hit->category;
	rec.ref = (char *)meta->ref;
	rec.label = (char *)meta->label;
	rec.action = act;
	rec.origin = "scan";
	r = qstore_add(s->q, act == ACTION_QUARANTINE ? fd : -1, &rec);
	if (r < 0) {
		report_error(s, path, "cannot quarantine (file left in place)", -r);
		free(rel);
		return "NOT quarantined (error)";
	}
	*qid = rec.id;
	/* Only remove what was stored: the file must still be the bytes we hashed. */
	if (fstat(fd, &now) < 0 || now.st_size != st->st_size ||
	    ts_ns(&now.st_mtim) != ts_ns(&st->st_mtim)) {
		report_error(s, path, "changed while being quarantined (file left in place)", 0);
		free(rel);
		return "recorded, NOT removed (file changed)";
	}
	/* The name must still be this file: never unlink something renamed over it since. */
	{
		struct stat byname;

		if (fstatat(dir->fd, name, &byname, AT_SYMLINK_NOFOLLOW) < 0 ||
		    byname.st_ino != now.st_ino || byname.st_dev != now.st_dev) {
			report_error(s, path, "replaced while being quarantined (left in place)", 0);
			free(rel);
			return "recorded, NOT removed (file replaced)";
		}
	}
	if (unlinkat(dir->fd, name, 0) < 0) {
		report_error(s, path, "quarantined but cannot remove the original", errno);
		free(rel);
		return "recorded, NOT removed";
	}
	atomic_fetch_add(&s->c.quarantined, 1);
	{
		char *fields = NULL;
		size_t plen = 6 * strlen(path) + 8;
		char *escpath = malloc(plen);

		char escref[1024], esclabel[2048];

		adm_json_escape(escref, sizeof(escref), meta->ref);
		adm_json_escape(esclabel, sizeof(esclabel), meta->label);
		if (escpath && asprintf(&fields, "\"id\":%" PRId64 ",\"path\":\"%s\",\"list\":\"%s\","
					"\"algo\":\"%s\"%s%s%s%s%s%s", rec.id,
					adm_json_escape(escpath, plen, path),
					adm_json_escape(escl, sizeof(escl), hit->list),
					hash_algo_name(hit->algo),
					*meta->ref ? ",\"ref\":\"" : "", escref,
					*meta->ref ? "\"" : "",
					*meta->label ? ",\"label\":\"" : "", esclabel,
					*meta->label ? "\"" : "") >= 0) {
			r = audit_append(s->audit, s->actor, act == ACTION_QUARANTINE ?
					 "scan.quarantine" : "scan.block", fields);
			if (r < 0) {
				atomic_store(&s->audit_failed, true);
				report_error(s, path, "cannot write the audit log", -r);
			}
			free(fields);
		}
		free(escpath);
	}
	free(rel);
	return act == ACTION_QUARANTINE ? "quarantined" : "blocked (recorded and removed)";
}

/* --- the worker -------------------------------------------------------------------------- */

/* Open name in dir for reading without following a symlink; -errno on failure. */
static int open_file(struct sdir *dir, const char *name)
{
	int fd = openat(dir->fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC | O_NOATIME);

	if (fd < 0 && errno == EPERM)		/* O_NOATIME on a file we do not own */
		fd = openat(dir->fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/*
 * One file: stat it by name first, so an unchanged file whose digests are in the scan db is
 * matched without being opened at all; otherwise open and hash it (the fd's own stat is what
 * gets recorded).
 */
static void scan_one(struct worker *w, struct sdir *dir, const char *name)
{
	struct scan *s = w->s;
	struct pdq_result pdq;
	struct digests d;
	struct match_hit hit;
	struct stat st, fst;
	char *path;
	int fd = -1, r, has_pdq = 0, hashed = 0, pdq_rc = -ENOENT;

	path = join3(dir->root->abs, dir->rel, name);
	if (!path) {
		report_error(s, name, "out of memory", 0);
		return;
	}
	if (fstatat(dir->fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			report_error(s, path, "vanished during the scan", 0);
		else
			report_error(s, path, "cannot stat", errno);
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {		/* replaced by a symlink or special file */
		atomic_fetch_add(&s->c.skipped, 1);
		goto out;
	}
	atomic_fetch_add(&s->c.files, 1);
	atomic_fetch_add(&s->c.bytes, (uint64_t)st.st_size);
	if (s->record && !s->rehash && scandb_lookup(w, path, &st, &d, &pdq, &has_pdq)) {
		atomic_fetch_add(&s->c.reused, 1);
	} else {
		fd = open_file(dir, name);
		if (fd < 0) {
			report_error(s, path, fd == -ENOENT ? "vanished during the scan" :
				     fd == -ELOOP ? "replaced by a symlink during the scan" :
				     "cannot open", fd == -ENOENT || fd == -ELOOP ? 0 : -fd);
			goto out;
		}
		r = hash_file(w, fd, &st, &d, &pdq, &has_pdq, &pdq_rc);
		if (r < 0) {
			report_error(s, path, "read error", -r);
			goto out_close;
		}
		if (pdq_rc < 0 && pdq_rc != -ENOENT) {
			char why[160];

			snprintf(why, sizeof(why), "image gives no PDQ: %s",
				 pdq.reason[0] ? pdq.reason : image_strerror(pdq_rc));
			report_error(s, path, why, 0);
		}
		if (r == 1) {
			report_error(s, path, "changed while being read (not recorded; scan again)",
				     0);
			goto out_close;
		}
		hashed = 1;
		atomic_fetch_add(&s->c.hashed, 1);
		atomic_fetch_add(&s->c.hashed_bytes, (uint64_t)st.st_size);
	}
	r = matcher_check(s->m, &d, has_pdq ? &pdq : NULL, &s->mopts, &hit);
	if (r < 0) {
		report_error(s, path, "match failed", -r);
		goto out_close;
	}
	/* Not recorded without its PDQ: the next scan must try (and report) it again. */
	if (hashed && s->record && (pdq_rc == 0 || pdq_rc == -ENOENT))
		scandb_store(s, path, &st, &d, has_pdq ? &pdq : NULL);
	if (r == 1) {
		const char *done = "reported";
		struct hashdb_rowmeta meta;
		int64_t qid = 0;

		/* the row's id and label for the records; none when it cannot be read */
		if (matcher_hit_meta(s->cli->cfg.db, &hit, &meta, NULL, 0) < 0) {
			memset(&meta, 0, sizeof(meta));
			meta.quality = -1;
		}

		atomic_fetch_add(&s->c.matches, 1);
		if (s->quarantine && fd < 0) {
			/* Matched from stored digests: store only the very file they describe. */
			fd = open_file(dir, name);
			if (fd < 0 || fstat(fd, &fst) < 0 || !same_file(&fst, &st)) {
				report_error(s, path, "changed since its digests were recorded; not "
					     "quarantined (scan again)", fd < 0 ? -fd : 0);
				done = "NOT quarantined (file changed)";
			}
		}
		if (s->quarantine && fd >= 0 && strcmp(done, "reported") == 0)
			done = quarantine_match(s, dir, name, path, fd, &st, &d, &pdq, has_pdq, &hit,
						&meta, &qid);
		report_match(s, path, (uint64_t)st.st_size, &hit, &meta, done, qid);
		if (s->hq) {
			enum hg_action act = config_action_for(&s->cli->cfg, hit.category);
			const char *did = "report";

			if (s->quarantine && act == ACTION_LOG)
				did = "log";
			else if (strcmp(done, "quarantined") == 0 ||
				 strcmp(done, "blocked (recorded and removed)") == 0)
				did = config_action_name(act);
			hook_submit(s, dir, name, path, &st, &d, &pdq, has_pdq, &hit, &meta, did,
				    qid);
		}
	}
out_close:
	if (fd >= 0)
		close(fd);
out:
	free(path);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct scan *s = w->s;
	struct item take[TAKE_MAX];

	for (;;) {
		size_t k;

		pthread_mutex_lock(&s->qlock);
		while (!s->count && !s->walk_done)
			pthread_cond_wait(&s->qnonempty, &s->qlock);
		if (!s->count) {
			pthread_mutex_unlock(&s->qlock);
			break;
		}
		k = s->count / (2 * (size_t)s->jobs);
		k = k < 1 ? 1 : k > TAKE_MAX ? TAKE_MAX : k;
		for (size_t i = 0; i < k; i++) {
			take[i] = s->ring[s->head];
			s->head = (s->head + 1) % QUEUE_CAP;
		}
		s->count -= k;
		if (QUEUE_CAP - s->count >= BATCH)
			pthread_cond_signal(&s->qnonfull);
		pthread_mutex_unlock(&s->qlock);
		for (size_t i = 0; i < k; i++) {
			scan_one(w, take[i].dir, take[i].name);
			free(take[i].name);
			sdir_put(take[i].dir);
		}
	}
	return NULL;
}

/* --- the walk ---------------------------------------------------------------------------- */

/* Hand the walker's current batch to the workers. */
static void flush_batch(struct scan *s)
{
	struct batch *b = s->cur;

	if (!b || !b->n)
		return;
	pthread_mutex_lock(&s->qlock);
	while (QUEUE_CAP - s->count < b->n)
		pthread_cond_wait(&s->qnonfull, &s->qlock);
	for (size_t i = 0; i < b->n; i++)
		s->ring[(s->head + s->count + i) % QUEUE_CAP] = b->it[i];
	s->count += b->n;
	pthread_cond_broadcast(&s->qnonempty);
	pthread_mutex_unlock(&s->qlock);
	b->n = 0;
}

static void push(struct scan *s, struct sdir *d, const char *name)
{
	char *n = strdup(name);

	if (!s->cur)
		s->cur = calloc(1, sizeof(*s->cur));
	if (!n || !s->cur) {
		free(n);
		report_error(s, name, "out of memory", 0);
		return;
	}
	atomic_fetch_add(&d->refs, 1);
	s->cur->it[s->cur->n++] = (struct item){ d, n };
	atomic_fetch_add(&s->c.queued, 1);
	if (s->cur->n == BATCH)
		flush_batch(s);
}

static void exclude(struct scan *s, const char *path, const char *suffix)
{
	struct stat st;
	char *p;

	if (s->nexcl == 8 || asprintf(&p, "%s%s", path, suffix) < 0)
		return;
	if (stat(p, &st) == 0) {
		s->excl_dev[s->nexcl] = st.st_dev;
		s->excl_ino[s->nexcl++] = st.st_ino;
	}
	free(p);
}

static int excluded(const struct scan *s, dev_t dev, ino_t ino)
{
	for (int i = 0; i < s->nexcl; i++)
		if (s->excl_ino[i] == ino && s->excl_dev[i] == dev)
			return 1;
	return 0;
}

static void walk(struct scan *s, struct sdir *d)
{
	struct dirent *de;
	DIR *dp;
	int fd;

	fd = dup(d->fd);
	dp = fd >= 0 ? fdopendir(fd) : NULL;
	if (!dp) {
		char *p = join3(d->root->abs, d->rel, "");

		report_error(s, p ? p : d->rel, "cannot read directory", errno);
		free(p);
		if (fd >= 0)
			close(fd);
		return;
	}
	while ((errno = 0, de = readdir(dp))) {
		unsigned char type = de->d_type;
		struct sdir *sub;
		struct stat st;
		int sfd;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (excluded(s, d->dev, de->d_ino)) {
			atomic_fetch_add(&s->c.skipped, 1);
			continue;
		}
		if (type == DT_UNKNOWN) {
			if (fstatat(d->fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				continue;
			type = S_ISREG(st.st_mode) ? DT_REG : S_ISDIR(st.st_mode) ? DT_DIR :
			       DT_LNK;
		}
		if (type == DT_REG) {
			push(s, d, de->d_name);
			continue;
		}
		if (type != DT_DIR) {
			atomic_fetch_add(&s->c.skipped, 1);	/* symlinks, devices, fifos */
			continue;
		}
		sfd = openat(d->fd, de->d_name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		sub = sfd >= 0 ? calloc(1, sizeof(*sub)) : NULL;
		if (!sub) {
			char *p = join3(d->root->abs, d->rel, de->d_name);

			report_error(s, p ? p : de->d_name, "cannot open directory", errno);
			free(p);
			if (sfd >= 0)
				close(sfd);
			continue;
		}
		sub->fd = sfd;
		if (fstat(sfd, &st) == 0)
			sub->dev = st.st_dev;
		if (s->one_fs && sub->dev != d->root->dev) {
			close(sfd);
			free(sub);
			atomic_fetch_add(&s->c.skipped, 1);
			continue;
		}
		atomic_init(&sub->refs, 1);
		sub->root = d->root;
		sub->rel = join3(d->rel, de->d_name, "");
		if (!sub->rel) {
			sdir_put(sub);
			continue;
		}
		walk(s, sub);
		sdir_put(sub);
	}
	if (errno) {
		char *p = join3(d->root->abs, d->rel, "");

		report_error(s, p ? p : d->rel, "error reading directory", errno);
		free(p);
	}
	closedir(dp);
}

/* Start a walk at PATH: a directory, or a single regular file (queued from its parent). */
static int walk_root(struct scan *s, const char *arg, struct sroot *root)
{
	char *abs = realpath(arg, NULL), *leaf = NULL;
	struct sdir *d;
	struct stat st;
	int fd;

	if (!abs || lstat(abs, &st) < 0) {
		cli_error(CMD, "%s: %s", arg, strerror(errno));
		free(abs);
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		char *copy = strdup(abs);

		if (!S_ISREG(st.st_mode) || !copy) {
			cli_error(CMD, "%s: not a directory or regular file", arg);
			free(copy);
			free(abs);
			return -1;
		}
		leaf = strdup(basename(copy));
		strcpy(abs, dirname(copy));
		free(copy);
	}
	fd = open(abs, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	d = fd >= 0 ? calloc(1, sizeof(*d)) : NULL;
	if (!d) {
		cli_error(CMD, "%s: %s", abs, strerror(errno));
		if (fd >= 0)
			close(fd);
		free(abs);
		free(leaf);
		return -1;
	}
	root->abs = abs;
	d->fd = fd;
	if (fstat(fd, &st) == 0)
		d->dev = root->dev = st.st_dev;
	atomic_init(&d->refs, 1);
	d->root = root;
	d->rel = strdup("");
	if (leaf)
		push(s, d, leaf);
	else
		walk(s, d);
	sdir_put(d);
	free(leaf);
	return 0;
}

/*
 * --prune: drop scan db rows of files under the scanned roots that no longer exist, so the
 * database does not grow with every file ever deleted.  Runs after the workers are done.
 */
static int64_t scandb_prune(struct scan *s, const struct sroot *roots, int n)
{
	sqlite3_stmt *sel = NULL, *del = NULL;
	int64_t pruned = 0;
	struct stat st;

	if (sqlite3_prepare_v2(s->wdb, "SELECT path FROM files WHERE path > ?1 AND path < ?2",
			       -1, &sel, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(s->wdb, "DELETE FROM files WHERE path = ?", -1, &del, NULL)
	    != SQLITE_OK ||
	    sqlite3_exec(s->wdb, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
		goto out;
	for (int i = 0; i < n; i++) {
		char *lo = NULL, *hi = NULL;

		if (!roots[i].abs)
			continue;
		/* Every path below ROOT sorts between "ROOT/" and "ROOT0" ('0' follows '/'). */
		if (asprintf(&lo, "%s/", strcmp(roots[i].abs, "/") ? roots[i].abs : "") < 0 ||
		    asprintf(&hi, "%s0", strcmp(roots[i].abs, "/") ? roots[i].abs : "") < 0) {
			free(lo);
			break;
		}
		sqlite3_bind_text(sel, 1, lo, -1, SQLITE_STATIC);
		sqlite3_bind_text(sel, 2, hi, -1, SQLITE_STATIC);
		while (sqlite3_step(sel) == SQLITE_ROW) {
			const char *p = (const char *)sqlite3_column_text(sel, 0);

			if (!p || lstat(p, &st) == 0 || errno != ENOENT)
				continue;
			sqlite3_bind_text(del, 1, p, -1, SQLITE_TRANSIENT);
			if (sqlite3_step(del) == SQLITE_DONE)
				pruned++;
			sqlite3_reset(del);
		}
		sqlite3_reset(sel);
		free(lo);
		free(hi);
	}
	sqlite3_exec(s->wdb, "COMMIT", NULL, NULL, NULL);
out:
	sqlite3_finalize(sel);
	sqlite3_finalize(del);
	return pruned;
}

/* --- progress and summary ---------------------------------------------------------------- */

static void *progress_main(void *arg)
{
	struct scan *s = arg;
	char b[32];

	for (int first = 1; !atomic_load(&s->stop_progress); first = 0) {
		uint64_t done, queued, bytes;
		bool walked;
		double t;

		/* Draw at once, then every 250 ms: even a short scan shows it is alive. */
		for (int k = 0; !first && k < 25 && !atomic_load(&s->stop_progress); k++)
			usleep(10 * 1000);
		pthread_mutex_lock(&s->qlock);
		walked = s->walk_done;
		pthread_mutex_unlock(&s->qlock);
		done = atomic_load(&s->c.files) + atomic_load(&s->c.errors) +
		       atomic_load(&s->c.skipped);
		queued = atomic_load(&s->c.queued);
		bytes = atomic_load(&s->c.bytes);
		t = elapsed(s);
		pthread_mutex_lock(&s->olock);
		if (walked && queued) {
			int pct = (int)(100.0 * (double)done / (double)queued), bar = pct / 5;

			if (pct > 100)
				pct = 100, bar = 20;
			fprintf(stderr, "\r\033[K[%.*s%.*s] %3d%% ", bar, "####################",
				20 - bar, "....................", pct);
		} else {
			fprintf(stderr, "\r\033[K[walking] ");
		}
		fprintf(stderr, "%" PRIu64 "/%" PRIu64 " files  %s  %" PRIu64 " matches  %" PRIu64
			" errors  %.0f files/s", done, queued, adm_fmt_bytes(bytes, b),
			(uint64_t)atomic_load(&s->c.matches), (uint64_t)atomic_load(&s->c.errors),
			t > 0 ? (double)done / t : 0.0);
		pthread_mutex_unlock(&s->olock);
		if (atomic_load(&s->stop_progress))
			break;
	}
	return NULL;
}

static void summary(struct scan *s, double t)
{
	uint64_t files = s->c.files, bytes = s->c.bytes;
	double mbs = t > 0 ? (double)bytes / 1e6 / t : 0, fps = t > 0 ? (double)files / t : 0;
	char b1[32], b2[32];

	if (s->cli->json) {
		fclose(s->jmatches);
		fclose(s->jerrors);
		s->jmatches = s->jerrors = NULL;
		printf("{\"files\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"hashed\":%" PRIu64
		       ",\"hashed_bytes\":%" PRIu64 ",\"reused\":%" PRIu64 ",\"skipped\":%" PRIu64
		       ",\"matches\":%" PRIu64 ",\"quarantined\":%" PRIu64 ",\"errors\":%" PRIu64
		       ",\"pruned\":%" PRId64 ",\"hook_runs\":%" PRIu64 ",\"hook_failures\":%" PRIu64
		       ",\"seconds\":%.3f,\"files_per_s\":%.1f,\"mb_per_s\":%.1f"
		       ",\"database_generation\":%" PRIu64 ",\"match_list\":[%s],\"error_list\":[%s]}\n",
		       files, bytes, (uint64_t)s->c.hashed, (uint64_t)s->c.hashed_bytes,
		       (uint64_t)s->c.reused, (uint64_t)s->c.skipped, (uint64_t)s->c.matches,
		       (uint64_t)s->c.quarantined, (uint64_t)s->c.errors, s->pruned,
		       (uint64_t)s->c.hook_runs, (uint64_t)s->c.hook_failures, t, fps, mbs,
		       matcher_generation(s->m), s->jmbuf ? s->jmbuf : "", s->jebuf ? s->jebuf : "");
		return;
	}
	if (s->cli->quiet)
		return;
	printf("scanned %" PRIu64 " files, %s (hashed %" PRIu64 " files, %s; reused %" PRIu64
	       " unchanged), skipped %" PRIu64 "\n", files, adm_fmt_bytes(bytes, b1),
	       (uint64_t)s->c.hashed, adm_fmt_bytes(s->c.hashed_bytes, b2),
	       (uint64_t)s->c.reused, (uint64_t)s->c.skipped);
	printf("matches %" PRIu64 ", quarantined %" PRIu64 ", errors %" PRIu64 "\n",
	       (uint64_t)s->c.matches, (uint64_t)s->c.quarantined, (uint64_t)s->c.errors);
	printf("%.2f s, %.0f files/s, %.1f MB/s (database generation %" PRIu64 ")\n", t, fps, mbs,
	       matcher_generation(s->m));
	if (s->prune)
		printf("pruned %" PRId64 " scan database rows of files that no longer exist\n",
		       s->pruned);
	if (s->c.hook_runs || s->c.hook_failures)
		printf("hooks: %" PRIu64 " run, %" PRIu64 " failed (on_match_exec)\n",
		       (uint64_t)s->c.hook_runs, (uint64_t)s->c.hook_failures);
}

/* --- entry ------------------------------------------------------------------------------- */

static int worker_init(struct worker *w, struct scan *s)
{
	w->s = s;
	w->buf = malloc(READ_CHUNK);
	if (!w->buf)
		return -ENOMEM;
	if (!s->record)
		return 0;
	if (sqlite3_open_v2(s->cli->cfg.scan_db, &w->rdb, SQLITE_OPEN_READONLY |
			    SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK ||
	    sqlite3_prepare_v2(w->rdb, "SELECT dev, ino, size, mtime_ns, ctime_ns, md5, sha1, "
			       "sha256, pdq, pdq_quality FROM files WHERE path = ?", -1, &w->sel,
			       NULL) != SQLITE_OK) {
		cli_error(CMD, "scan database %s: %s", s->cli->cfg.scan_db,
			  w->rdb ? sqlite3_errmsg(w->rdb) : "out of memory");
		return -EIO;
	}
	sqlite3_busy_timeout(w->rdb, 10000);
	return 0;
}

static void worker_release(struct worker *w)
{
	hasher_release(&w->h);
	sqlite3_finalize(w->sel);
	sqlite3_close(w->rdb);
	free(w->buf);
	free(w->jpeg);
}

int cmd_scan(int argc, char **argv, struct cli *cli)
{
	struct scan *s;
	struct worker *w = NULL;
	struct sroot *roots = NULL;
	pthread_t prog;
	const char **paths;
	char err[512];
	long jobs = sysconf(_SC_NPROCESSORS_ONLN);
	int npaths = 0, i, r, rc = EXIT_ERROR, started = 0, prog_started = 0;
	int writer_started = 0;

	s = calloc(1, sizeof(*s));
	paths = calloc((size_t)argc, sizeof(*paths));
	if (!s || !paths) {
		free(s);
		free(paths);
		cli_error(CMD, "out of memory");
		return EXIT_ERROR;
	}
	s->cli = cli;
	s->record = true;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		r = cli_common_option(cli, CMD, argc, argv, &i);
		if (r < 0) {
			rc = EXIT_USAGE;
			goto out_free;
		}
		if (r > 0)
			continue;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			rc = 0;
			goto out_free;
		} else if ((strcmp(a, "--jobs") == 0 || strcmp(a, "-j") == 0) && i + 1 < argc) {
			char *end;

			jobs = strtol(argv[++i], &end, 10);
			if (*end || jobs < 1 || jobs > 256) {
				cli_error(CMD, "option '--jobs %s': expected 1..256", argv[i]);
				rc = EXIT_USAGE;
				goto out_free;
			}
		} else if (strcmp(a, "--action") == 0 && i + 1 < argc) {
			i++;
			if (strcmp(argv[i], "report") == 0) {
				s->quarantine = false;
			} else if (strcmp(argv[i], "quarantine") == 0) {
				s->quarantine = true;
			} else {
				cli_error(CMD, "option '--action %s': expected report or quarantine",
					  argv[i]);
				rc = EXIT_USAGE;
				goto out_free;
			}
		} else if (strcmp(a, "--one-file-system") == 0 || strcmp(a, "-x") == 0) {
			s->one_fs = true;
		} else if (strcmp(a, "--prune") == 0) {
			s->prune = true;
		} else if (strcmp(a, "--rehash") == 0) {
			s->rehash = true;
		} else if (strcmp(a, "--no-record") == 0) {
			s->record = false;
		} else if (strcmp(a, "--no-hook") == 0) {
			s->no_hook = true;
		} else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
			cli->quiet = true;
		} else if (strcmp(a, "--") == 0) {
			while (++i < argc)
				paths[npaths++] = argv[i];
		} else if (a[0] == '-' && a[1]) {
			cli_error(CMD, "unknown or incomplete option '%s' (see 'hashgate scan --help')",
				  a);
			rc = EXIT_USAGE;
			goto out_free;
		} else {
			paths[npaths++] = a;
		}
	}
	if (!npaths) {
		cli_error(CMD, "no PATH to scan (see 'hashgate scan --help')");
		rc = EXIT_USAGE;
		goto out_free;
	}
	{
		struct hasher probe;

		if (hasher_init(&probe, HASH_EXACT_MASK) < 0) {
			cli_error(CMD, "OpenSSL provides no MD5/SHA-1/SHA-256 (FIPS mode?)");
			goto out_free;
		}
		hasher_release(&probe);
	}
	s->mopts.pdq_threshold = cli->cfg.pdq_threshold;
	s->mopts.pdq_min_quality = cli->cfg.pdq_min_quality;
	matcher_set_rank(scan_rank, &cli->cfg);
	r = matcher_load(cli->cfg.db, &s->m, err, sizeof(err));
	if (r < 0) {
		cli_error(CMD, "%s", err);
		goto out_free;
	}
	if (s->quarantine) {
		if (adm_require_root(CMD, "--action quarantine writes the root-only quarantine store")
		    < 0)
			goto out_matcher;
		r = qstore_open(&s->q, cli->cfg.quarantine, cli->cfg.quarantine_key, QSTORE_CREATE,
				err, sizeof(err));
		if (r < 0) {
			cli_error(CMD, "%s", err);
			goto out_matcher;
		}
		/* Over the quota a file is left in place and reported, never deleted unstored. */
		qstore_set_quota(s->q, cli->cfg.quarantine_max_size);
		r = audit_open(&s->audit, cli->cfg.audit_log, err, sizeof(err));
		if (r < 0) {
			cli_error(CMD, "%s", err);
			goto out_matcher;
		}
		r = adm_audit_check(cli, CMD);
		if (r < 0)
			goto out_matcher;
		adm_actor(s->actor, sizeof(s->actor));
	}
	/* The scan db only saves work: without it (e.g. not root) every file is simply read. */
	if (s->record && scandb_open(s) < 0) {
		cli_error(CMD, "continuing without the scan database: every file is read and "
			  "nothing is recorded (--no-record avoids this message)");
		s->record = false;
	}
	pthread_mutex_init(&s->qlock, NULL);
	pthread_mutex_init(&s->wlock, NULL);
	pthread_cond_init(&s->wwake, NULL);
	pthread_cond_init(&s->wspace, NULL);
	pthread_mutex_init(&s->olock, NULL);
	pthread_cond_init(&s->qnonempty, NULL);
	pthread_cond_init(&s->qnonfull, NULL);
	if (cli->json) {
		s->jmatches = open_memstream(&s->jmbuf, &s->jmlen);
		s->jerrors = open_memstream(&s->jebuf, &s->jelen);
		if (!s->jmatches || !s->jerrors)
			goto out_sync;
	}
	s->jobs = jobs;
	s->progress = !cli->json && !cli->quiet && isatty(STDERR_FILENO) && isatty(STDOUT_FILENO);
	w = calloc((size_t)jobs, sizeof(*w));
	roots = calloc((size_t)npaths, sizeof(*roots));
	if (!w || !roots)
		goto out_sync;
	for (i = 0; i < jobs; i++)
		if (worker_init(&w[i], s) < 0)
			goto out_workers;
	/* After the workers opened the scan db, so its -wal and -shm exist too. */
	exclude(s, cli->cfg.scan_db, "");
	exclude(s, cli->cfg.scan_db, "-wal");
	exclude(s, cli->cfg.scan_db, "-shm");
	exclude(s, cli->cfg.quarantine, "");
	exclude(s, cli->cfg.audit_log, "");
	clock_gettime(CLOCK_MONOTONIC, &s->t0);
	if (s->wdb) {
		if (pthread_create(&s->wtid, NULL, writer_main, s) == 0)
			writer_started = 1;
		else
			s->record = false;	/* before the workers start: they read it */
	}
	if (!s->no_hook && hook_any(&cli->cfg)) {
		r = hookq_start(&s->hq, hook_ran, s);
		if (r < 0) {
			cli_error(CMD, "on_match_exec: cannot start its thread: %s (--no-hook scans "
				  "without it)", strerror(-r));
			rc = EXIT_ERROR;
			goto out_writer;
		}
	}
	for (i = 0; i < jobs; i++, started++)
		if (pthread_create(&w[i].tid, NULL, worker_main, &w[i]) != 0)
			break;
	if (!started) {
		cli_error(CMD, "cannot start threads");
out_writer:
		if (writer_started) {
			pthread_mutex_lock(&s->wlock);
			s->wdone = true;
			pthread_cond_signal(&s->wwake);
			pthread_mutex_unlock(&s->wlock);
			pthread_join(s->wtid, NULL);
		}
		goto out_workers;
	}
	if (s->progress && pthread_create(&prog, NULL, progress_main, s) == 0)
		prog_started = 1;
	rc = 0;
	for (i = 0; i < npaths; i++)
		if (walk_root(s, paths[i], &roots[i]) < 0)
			rc = EXIT_ERROR;
	flush_batch(s);
	pthread_mutex_lock(&s->qlock);
	s->walk_done = true;
	pthread_cond_broadcast(&s->qnonempty);
	pthread_mutex_unlock(&s->qlock);
	for (i = 0; i < started; i++)
		pthread_join(w[i].tid, NULL);
	/* Every match's hook runs before the summary (each bounded by on_match_exec_timeout). */
	hookq_stop(s->hq, true);
	s->hq = NULL;
	if (prog_started) {
		atomic_store(&s->stop_progress, true);
		pthread_join(prog, NULL);
		fputs("\r\033[K", stderr);
	}
	if (s->wdb) {
		pthread_mutex_lock(&s->wlock);
		s->wdone = true;
		pthread_cond_signal(&s->wwake);
		pthread_mutex_unlock(&s->wlock);
		if (writer_started)
			pthread_join(s->wtid, NULL);
		for (i = 0; i < jobs; i++) {	/* readers off the WAL, so it can be truncated */
			sqlite3_finalize(w[i].sel);
			w[i].sel = NULL;
			sqlite3_close(w[i].rdb);
			w[i].rdb = NULL;
		}
		if (s->prune)
			s->pruned = scandb_prune(s, roots, npaths);
		sqlite3_exec(s->wdb, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
	}
	summary(s, elapsed(s));
	if (rc == 0 && s->c.matches)
		rc = EXIT_FOUND;
	if (atomic_load(&s->audit_failed) || s->c.hook_failures)
		rc = EXIT_ERROR;
	if (s->quarantine &&
	    adm_audit(cli, CMD, "scan", "\"paths\":%d,\"files\":%" PRIu64 ",\"matches\":%" PRIu64
		      ",\"quarantined\":%" PRIu64 ",\"errors\":%" PRIu64, npaths,
		      (uint64_t)s->c.files, (uint64_t)s->c.matches, (uint64_t)s->c.quarantined,
		      (uint64_t)s->c.errors) < 0)
		rc = EXIT_ERROR;
out_workers:
	hookq_stop(s->hq, false);	/* NULL unless no worker started */
	for (i = 0; i < jobs && w; i++)
		worker_release(&w[i]);
out_sync:
	if (s->jmatches)
		fclose(s->jmatches);
	if (s->jerrors)
		fclose(s->jerrors);
	free(s->jmbuf);
	free(s->jebuf);
	pthread_cond_destroy(&s->qnonempty);
	pthread_cond_destroy(&s->qnonfull);
	pthread_mutex_destroy(&s->qlock);
	pthread_mutex_destroy(&s->wlock);
	pthread_cond_destroy(&s->wwake);
	pthread_cond_destroy(&s->wspace);
	pthread_mutex_destroy(&s->olock);
	sqlite3_finalize(s->ins);
	sqlite3_close(s->wdb);
out_matcher:
	audit_close(s->audit);
	qstore_close(s->q);
	matcher_put(s->m);
	for (i = 0; roots && i < npaths; i++)
		free(roots[i].abs);
	free(roots);
	free(w);
out_free:
	if (s)
		free(s->cur);
	free(paths);
	free(s);
	return rc;
}
