/*
 * cmd-quarantine.c - `hashgate quarantine`: list, show, restore, delete, purge, export, hold and
 * release records of the quarantine store; retry moves evidence hashgatefs had to keep in a
 * mount's staging area (the store was full) into the store.  quarantine_status() is the
 * quarantine part of `hashgate status`.
 *
 * Every subcommand needs root: the store is root-only (0700) and encrypted, and even the
 * records (list/show) are personal data - paths and user ids of customers.  Every change and
 * every disclosure of content (restore, export) is written to the audit log; the log is checked
 * to be writable before anything is changed, so an action is never done unaudited.
 * Content is decrypted into a temporary file next to its destination and renamed into place
 * only after the GCM tag and the record's digests verified, so a tampered object never
 * produces a file.  Restores walk the record's path below the backing directory without
 * following symlinks, so a customer cannot redirect a root restore elsewhere; directories they
 * create are chowned through the fd that opened them (never by name, which a tenant could swap
 * for a hard link in between).
 *
 * export hands evidence over as one encrypted bundle (tools/bundle.c: a tar streamed into a CMS
 * envelope, so no plaintext reaches the disk) with a manifest signed by the host's key
 * (hashdb/hostkey.c) and tied to the audit chain head; the bytes in plaintext only with
 * --plaintext, one record at a time.
 *
 * Restore and export write to the storage itself, never through a hashgatefs mount: they run in
 * a private mount namespace with the hashgatefs mounts detached (adm_bypass_mounts), so with
 * the mount over its own backing dir the restored file is not scanned as a new upload and
 * quarantined again.  --allow allowlists before anything is written.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <libgen.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/sha.h>

#include "hashdb/audit.h"
#include "hashdb/db.h"
#include "hashdb/hostkey.h"
#include "hashdb/qstore.h"
#include "hashdb/tmpname.h"
#include "hashdb/status.h"
#include "tools/adm.h"
#include "tools/bundle.h"
#include "tools/commands.h"

#define CMD "quarantine"

static void usage(FILE *f)
{
	fprintf(f,
"usage: hashgate quarantine list [--since WHEN] [--uid UID] [--list NAME] [--json]\n"
"       hashgate quarantine show ID [--json]\n"
"       hashgate quarantine restore ID [--to PATH] [--force] [--allow]\n"
"       hashgate quarantine export ID... | --since WHEN [--until WHEN] [--list NAME]\n"
"                                  --out FILE --recipient CERT.pem... | --passphrase-file F\n"
"                                  [--force]\n"
"       hashgate quarantine export ID --out FILE --plaintext [--force]\n"
"       hashgate quarantine delete ID\n"
"       hashgate quarantine purge [--older-than DURATION] [--dry-run]\n"
"       hashgate quarantine hold ID\n"
"       hashgate quarantine release ID\n"
"       hashgate quarantine review ID new|confirmed|false-positive|reported [--case NO]\n"
"                                  [--reason TEXT]\n"
"       hashgate quarantine retry\n"
"\n"
"Manage uploads that matched the hash database.  Content is kept encrypted (AES-256-GCM,\n"
"key from quarantine_key) in the store named by 'quarantine' in hashgate.conf.\n"
"\n"
"  list      records, oldest first; --since 7d | @UNIXTIME | YYYY-MM-DD[THH:MM[:SS]] (UTC),\n"
"            --uid of the uploader, --list of the matching hash list, --review STATE\n"
"  show      every field of one record\n"
"  restore   decrypt the content back to its original path under the mount's backing\n"
"            directory (or to --to PATH) with the uploader's owner and mode; refuses to\n"
"            overwrite an existing file without --force.  A restored false positive should\n"
"            be allowlisted so it is not quarantined again: on a terminal you are asked,\n"
"            otherwise --allow allowlists the upload (its SHA-256, and its PDQ if that\n"
"            matched)\n"
"  export    one encrypted evidence bundle (for a hotline or the police) of the records\n"
"            given by id, or of a time range (--since, --until: records before that time;\n"
"            --list: of one hash list): OpenSSL CMS to each --recipient certificate (RSA or\n"
"            EC) and/or the passphrase on the first line of --passphrase-file, holding a tar\n"
"            of the content and manifest.json (every record's hashes, lists and labels\n"
"            that hold them, time, uid and user, host, mount, path, origin, review state;\n"
"            the audit chain head) signed by the host's key ('hashgate key show').\n"
"            Open it with 'openssl cms -decrypt -inform DER' (see hashgate(8)).\n"
"            --plaintext instead writes one record's original bytes to FILE and the record\n"
"            to FILE.json, unencrypted; both 0600\n"
"  delete    remove a record and its content (not while held)\n"
"  purge     delete records older than DURATION (default: 'retention' from the config);\n"
"            held records are never purged; --dry-run only lists them\n"
"  hold      legal hold: the record cannot be deleted or purged until released\n"
"  release   end a legal hold\n"
"  review    record a reviewer's decision: every record starts 'new'; 'confirmed',\n"
"            'false-positive' or 'reported' (needs --case: the hotline's or police case\n"
"            number), with an optional --reason; decided from hashes, list, category and\n"
"            metadata, without viewing content\n"
"  retry     move evidence that hashgatefs kept encrypted in a mount's staging area\n"
"            (BACKING/.hashgate-staging/kept/, because the store was over\n"
"            quarantine_max_size or could not be written) into the store; exit 1 when\n"
"            some is still kept (e.g. still over the quota)\n"
"\n"
"Needs root: the store is root-only and the records hold customers' paths and user ids.\n"
"Every change, restore and export is recorded in the audit log.\n"
"Exit status: 0 success, 2 error or refused, 64 usage error.\n");
}

#define MAX_RECIPIENTS	16
#define MAX_IDS		1024

struct qopts {
	const char *since, *uid, *list, *to, *out, *older, *state, *case_no, *reason, *review;
	const char *until, *passfile;
	bool force, allow, dry_run, plaintext;
	const char *id;
	const char *recip[MAX_RECIPIENTS];	/* export --recipient */
	size_t nrecip;
	const char *ids[MAX_IDS];		/* export: every record id given */
	size_t nids;
};

static int open_store(struct cli *cli, struct qstore **q, int create)
{
	char err[512];
	int r;

	r = qstore_open(q, cli->cfg.quarantine, cli->cfg.quarantine_key,
			create ? QSTORE_CREATE : 0, err, sizeof(err));
	if (r < 0)
		cli_error(CMD, "%s", err);
	return r;
}

static const char *algo_name(enum hash_algo a)
{
	const char *n = hash_algo_name(a);

	return n ? n : "?";
}

/* The record's members, from "id" on, without the braces (the bundle manifest adds more). */
static void print_json_members(FILE *f, const struct qrecord *r, int stored)
{
	char t[32], hex[65];

	fprintf(f, "\"id\":%" PRId64 ",\"time\":%" PRId64 ",\"time_utc\":\"%s\"", r->id, r->time,
		adm_fmt_time(r->time, t));
	fprintf(f, ",\"upload_time\":%" PRId64 ",\"uid\":%" PRIu32 ",\"gid\":%" PRIu32
		",\"pid\":%" PRId32 ",\"mount\":", r->upload_time, r->uid, r->gid, r->pid);
	adm_json_print(f, r->mount);
	fputs(",\"path\":", f);
	adm_json_print(f, r->path);
	{
		char want[4096];

		if (tmpname_intended(r->path, want, sizeof(want), NULL)) {
			fputs(",\"intended_path\":", f);
			adm_json_print(f, want);
		}
	}
	fputs(",\"origin\":", f);
	adm_json_print(f, *r->origin ? r->origin : "unknown");
	fprintf(f, ",\"size\":%" PRIu64 ",\"mode\":\"%04o\"", r->size, r->mode & 07777);
	for (int a = HASH_MD5; a <= HASH_SHA256; a++) {
		const uint8_t *v = digests_get(&r->digests, (enum hash_algo)a);

		if (!v)
			continue;
		hex_encode(v, hash_algo_len((enum hash_algo)a), hex);
		fprintf(f, ",\"%s\":\"%s\"", algo_name((enum hash_algo)a), hex);
	}
	if (r->has_pdq) {
		hex_encode(r->pdq.b, sizeof(r->pdq.b), hex);
		fprintf(f, ",\"pdq\":\"%s\",\"pdq_quality\":%d", hex, r->pdq_quality);
	}
	fprintf(f, ",\"matched_algo\":\"%s\",\"distance\":%d,\"list\":", algo_name(r->algo),
		r->distance);
	adm_json_print(f, r->list);
	fputs(",\"category\":", f);
	adm_json_print(f, r->category);
	if (r->ref && *r->ref) {
		fputs(",\"ref\":", f);
		adm_json_print(f, r->ref);
	}
	if (r->label && *r->label) {
		fputs(",\"label\":", f);
		adm_json_print(f, r->label);
	}
	fprintf(f, ",\"action\":\"%s\",\"content_stored\":%s,\"content_kept\":%s,"
		"\"held\":%s,\"restored\":%s", config_action_name(r->action),
		stored ? "true" : "false", r->kept ? "true" : "false",
		r->held ? "true" : "false", r->restored ? "true" : "false");
	fputs(",\"review\":{\"state\":", f);
	adm_json_print(f, r->review);
	fputs(",\"case\":", f);
	adm_json_print(f, r->review_case);
	fputs(",\"reason\":", f);
	adm_json_print(f, r->review_reason);
	fprintf(f, ",\"time\":%" PRId64 "}", r->review_time);
}

static void print_json(FILE *f, const struct qrecord *r, int stored)
{
	putc('{', f);
	print_json_members(f, r, stored);
	putc('}', f);
}

static void print_show(const struct qrecord *r, int stored)
{
	char t[32], hex[65];

	printf("id:           %" PRId64 "\n", r->id);
	printf("verdict time: %s\n", adm_fmt_time(r->time, t));
	printf("upload time:  %s (%" PRId64 " s before the verdict)\n",
	       adm_fmt_time(r->upload_time, t), r->time - r->upload_time);
	printf("uploader:     uid %" PRIu32 " gid %" PRIu32 " pid %" PRId32 "\n", r->uid, r->gid,
	       r->pid);
	printf("mount:        ");
	adm_text_print(stdout, r->mount);
	printf("\npath:         ");
	adm_text_print(stdout, r->path);
	putchar('\n');
	{
		char want[4096];
		const char *pat;

		if (tmpname_intended(r->path, want, sizeof(want), &pat)) {
			printf("meant as:     ");
			adm_text_print(stdout, want);
			printf(" (%s temporary name)\n", pat);
		}
	}
	printf("origin:       %s\n", *r->origin ? r->origin : "unknown (recorded before 0.2)");
	printf("size:         %" PRIu64 "\n", r->size);
	printf("mode:         %04o\n", r->mode & 07777);
	for (int a = HASH_MD5; a <= HASH_SHA256; a++) {
		const uint8_t *v = digests_get(&r->digests, (enum hash_algo)a);

		if (!v)
			continue;
		hex_encode(v, hash_algo_len((enum hash_algo)a), hex);
		printf("%-13s %s\n", algo_name((enum hash_algo)a), hex);
	}
	if (r->has_pdq) {
		hex_encode(r->pdq.b, sizeof(r->pdq.b), hex);
		printf("pdq:          %s (quality %d)\n", hex, r->pdq_quality);
	}
	printf("matched:      %s", algo_name(r->algo));
	if (r->algo == HASH_PDQ)
		printf(" (distance %d)", r->distance);
	printf(" in list ");
	adm_text_print(stdout, r->list);
	printf(", category ");
	adm_text_print(stdout, r->category);
	putchar('\n');
	if (r->ref && *r->ref) {
		printf("list row id:  ");
		adm_text_print(stdout, r->ref);
		putchar('\n');
	}
	if (r->label && *r->label) {
		printf("list label:   ");
		adm_text_print(stdout, r->label);
		putchar('\n');
	}
	printf("action:       %s\n", config_action_name(r->action));
	printf("content:      %s\n", stored ? "stored (encrypted)" : r->kept ?
	       "kept encrypted in the mount's " QSTORE_KEPT_SUBDIR " (the store could not take "
	       "it): run 'hashgate quarantine retry'" : "not stored");
	printf("legal hold:   %s\n", r->held ? "yes" : "no");
	printf("restored:     %s\n", r->restored ? "yes" : "no");
	printf("review:       %s", r->review);
	if (*r->review_case) {
		printf(", case ");
		adm_text_print(stdout, r->review_case);
	}
	if (r->review_time)
		printf(" (%s)", adm_fmt_time(r->review_time, t));
	putchar('\n');
	if (*r->review_reason) {
		printf("reason:       ");
		adm_text_print(stdout, r->review_reason);
		putchar('\n');
	}
}

static const char *const review_states[] = { "new", "confirmed", "false-positive", "reported" };

static int review_state_ok(const char *s)
{
	for (size_t i = 0; i < sizeof(review_states) / sizeof(review_states[0]); i++)
		if (strcmp(s, review_states[i]) == 0)
			return 1;
	return 0;
}

/*
 * No store yet: the directory is missing, or (as the package creates it empty) holds no
 * records database because nothing was ever quarantined.  list and purge then have nothing
 * to do; that is not an error.
 */
static int store_missing(const struct cli *cli)
{
	char p[4096];

	if (access(cli->cfg.quarantine, F_OK) < 0 && errno == ENOENT)
		return 1;
	snprintf(p, sizeof(p), "%s/records.db", cli->cfg.quarantine);
	return access(p, F_OK) < 0 && errno == ENOENT;
}

static int do_list(struct cli *cli, const struct qopts *o)
{
	struct qstore_filter f = { .since = 0, .before = 0, .uid = -1, .list = o->list };
	struct qrecord *recs = NULL;
	struct qstore *q;
	size_t n = 0;
	char t[32];
	int r;

	if (o->since && adm_parse_since(o->since, &f.since) < 0) {
		cli_error(CMD, "option '--since %s': expected a duration (7d, 12h), @UNIXTIME or "
			  "YYYY-MM-DD[THH:MM[:SS]]", o->since);
		return EXIT_USAGE;
	}
	if (o->review && !review_state_ok(o->review)) {
		cli_error(CMD, "option '--review %s': expected new, confirmed, false-positive or "
			  "reported", o->review);
		return EXIT_USAGE;
	}
	if (o->uid) {
		char *end;

		f.uid = strtoll(o->uid, &end, 10);
		if (*end || end == o->uid || f.uid < 0) {
			cli_error(CMD, "option '--uid %s': expected a numeric user id", o->uid);
			return EXIT_USAGE;
		}
	}
	if (store_missing(cli)) {
		if (cli->json)
			puts("[]");
		return 0;
	}
	if (open_store(cli, &q, 0) < 0)
		return EXIT_ERROR;
	r = qstore_list(q, &f, &recs, &n);
	if (r < 0) {
		cli_error(CMD, "cannot list %s: %s", cli->cfg.quarantine, strerror(-r));
		qstore_close(q);
		return EXIT_ERROR;
	}
	if (o->review) {
		size_t k = 0;

		for (size_t i = 0; i < n; i++) {
			if (strcmp(recs[i].review, o->review) == 0)
				recs[k++] = recs[i];
			else
				qrecord_release(&recs[i]);
		}
		n = k;
	}
	if (cli->json) {
		putchar('[');
		for (size_t i = 0; i < n; i++) {
			if (i)
				putchar(',');
			print_json(stdout, &recs[i], qstore_has_content(q, recs[i].id) == 1);
		}
		puts("]");
	} else {
		if (n)
			printf("%6s  %-20s  %6s  %10s  %-6s  %-16s  %-10s  %-10s  %-5s  %s\n", "ID",
			       "TIME (UTC)", "UID", "SIZE", "ALGO", "LIST", "CATEGORY", "ACTION",
			       "FLAGS", "PATH");
		for (size_t i = 0; i < n; i++) {
			const struct qrecord *x = &recs[i];

			/* list and category are validated names; mount and path are not. */
			printf("%6" PRId64 "  %-20s  %6" PRIu32 "  %10" PRIu64 "  %-6s  %-16s  %-10s"
			       "  %-10s  %c%c%c    ", x->id, adm_fmt_time(x->time, t), x->uid,
			       x->size, algo_name(x->algo), x->list, x->category,
			       config_action_name(x->action), x->held ? 'H' : '-',
			       x->restored ? 'R' : '-',
			       qstore_has_content(q, x->id) == 1 ? 'C' : x->kept ? 'K' : '-');
			adm_text_print(stdout, x->mount);
			putchar('/');
			adm_text_print(stdout, x->path);
			putchar('\n');
		}
		if (cli_interactive(cli))
			printf("%zu record%s  (flags: H held, R restored, C content stored, K content "
			       "kept outside the store)\n", n,
			       n == 1 ? "" : "s");
	}
	qrecord_free_array(recs, n);
	qstore_close(q);
	return 0;
}

static int get_record(struct cli *cli, const char *ids, struct qstore **q, struct qrecord *rec,
		      int64_t *id)
{
	int r;

	if (adm_parse_id(CMD, ids, id) < 0)
		return EXIT_USAGE;
	if (open_store(cli, q, 0) < 0)
		return EXIT_ERROR;
	r = qstore_get(*q, *id, rec);
	if (r < 0) {
		cli_error(CMD, r == -ENOENT ? "no quarantine record %" PRId64 :
			  "cannot read record %" PRId64 ": %s", *id, strerror(-r));
		qstore_close(*q);
		*q = NULL;
		return EXIT_ERROR;
	}
	return 0;
}

static int do_show(struct cli *cli, const struct qopts *o)
{
	struct qrecord rec;
	struct qstore *q;
	int64_t id;
	int rc;

	rc = get_record(cli, o->id, &q, &rec, &id);
	if (rc)
		return rc;
	if (cli->json) {
		print_json(stdout, &rec, qstore_has_content(q, id) == 1);
		putchar('\n');
	} else {
		print_show(&rec, qstore_has_content(q, id) == 1);
	}
	qrecord_release(&rec);
	qstore_close(q);
	return 0;
}

/*
 * Open the directory that will hold rel (a path relative to basefd) without following any
 * symlink, creating missing directories owned by uid:gid.  *leaf points into buf.
 */
static int walk_parent(int basefd, char *buf, uid_t uid, gid_t gid, int *out, char **leaf)
{
	char *p = buf, *slash;
	int fd = dup(basefd), nfd;

	if (fd < 0)
		return -errno;
	while (*p == '/')
		p++;
	for (;;) {
		slash = strchr(p, '/');
		if (!slash)
			break;
		*slash = '\0';
		if (*p && strcmp(p, ".") != 0) {
			if (strcmp(p, "..") == 0) {
				close(fd);
				return -EINVAL;
			}
			struct stat sb;
			bool made = mkdirat(fd, p, 0755) == 0;

			nfd = openat(fd, p, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
			if (nfd < 0) {
				int r = errno == ELOOP ? -ELOOP : -errno;

				close(fd);
				return r;
			}
			/*
			 * Through the fd: whatever now sits at the name is what we chown, and only
			 * if it is a directory still ours (a swapped-in object is left alone).
			 */
			if (made && fstat(nfd, &sb) == 0 && sb.st_uid == geteuid() &&
			    fchown(nfd, uid, gid) < 0) {
				int r = -errno;

				close(nfd);
				close(fd);
				return r;
			}
			close(fd);
			fd = nfd;
		}
		p = slash + 1;
		while (*p == '/')
			p++;
	}
	if (!*p || strcmp(p, ".") == 0 || strcmp(p, "..") == 0) {
		close(fd);
		return -EINVAL;
	}
	*out = fd;
	*leaf = p;
	return 0;
}

/* Decrypt record id into dfd/leaf via a temp file; owner/mode applied when chown_it. */
static int write_content(struct qstore *q, int64_t id, int dfd, const char *leaf, bool force,
			 int chown_it, uid_t uid, gid_t gid, mode_t mode)
{
	char tmp[64];
	int tfd, r;

	snprintf(tmp, sizeof(tmp), ".hashgate-restore-%ld-%" PRId64, (long)getpid(), id);
	tfd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (tfd < 0)
		return -errno;
	r = qstore_read(q, id, tfd);
	if (r < 0)
		goto out_unlink;
	/* chown first: it clears set-id bits that the chmod then restores. */
	if (chown_it && (fchown(tfd, uid, gid) < 0 || fchmod(tfd, mode & 07777) < 0)) {
		r = -errno;
		goto out_unlink;
	}
	if (fsync(tfd) < 0) {
		r = -errno;
		goto out_unlink;
	}
	if (renameat2(dfd, tmp, dfd, leaf, force ? 0 : RENAME_NOREPLACE) < 0) {
		r = -errno;
		goto out_unlink;
	}
	close(tfd);
	fsync(dfd);
	return 0;
out_unlink:
	close(tfd);
	unlinkat(dfd, tmp, 0);
	return r;
}

static int ask_yes(const char *question)
{
	char line[32];

	printf("%s [y/N] ", question);
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		return 0;
	return line[0] == 'y' || line[0] == 'Y';
}

/*
 * Allowlist the record's file in one transaction: by one exact hash, the strongest the record
 * has (SHA-256, else SHA-1, else MD5), which clears every hit of that file.  One is enough,
 * and each more would make the daemons hash every upload with another algorithm
 * (matcher_algos), e.g. MD5 and SHA-1 on a host whose lists hold SHA-256 only.
 */
static int allowlist_record(struct cli *cli, const struct qrecord *rec, int *added)
{
	static const enum hash_algo strongest[] = { HASH_SHA256, HASH_SHA1, HASH_MD5 };
	struct hashdb db = { 0 };
	char err[512], reason[320], actor[256];
	int r;

	*added = 0;
	adm_actor(actor, sizeof(actor));
	snprintf(reason, sizeof(reason), "false positive: quarantine record %" PRId64
		 " restored by %s", rec->id, actor);
	r = hashdb_open(&db, cli->cfg.db, 0, err, sizeof(err));
	if (r < 0)
		goto out_err;
	r = hashdb_begin(&db, err, sizeof(err));
	if (r < 0)
		goto out_close;
	for (size_t k = 0; k < sizeof(strongest) / sizeof(strongest[0]); k++) {
		const uint8_t *v = digests_get(&rec->digests, strongest[k]);

		if (v) {
			r = hashdb_allow_add(&db, strongest[k], v, reason, err, sizeof(err));
			*added += r > 0;
			break;
		}
	}
	/*
	 * A PDQ match is allowlisted by its perceptual hash too: a re-encode with the same PDQ
	 * is not PDQ-matched again.  That entry clears PDQ hits only (matcher_check): a copy
	 * whose own bytes are listed is still acted on.
	 */
	if (r >= 0 && rec->algo == HASH_PDQ && rec->has_pdq) {
		r = hashdb_allow_add(&db, HASH_PDQ, rec->pdq.b, reason, err, sizeof(err));
		*added += r > 0;
	}
	if (r < 0) {
		hashdb_rollback(&db);
		goto out_close;
	}
	r = hashdb_commit(&db, err, sizeof(err));
out_close:
	hashdb_close(&db);
out_err:
	if (r < 0)
		cli_error(CMD, "cannot allowlist: %s", err);
	return r;
}

static int do_restore(struct cli *cli, const struct qopts *o)
{
	struct qrecord rec;
	struct qstore *q;
	char *rel = NULL, *leaf = NULL, *tocopy = NULL, dest[8192], esc[2 * 8192];
	int64_t id;
	int rc, r, dfd = -1, basefd = -1, want_allow;
	struct stat st;

	rc = get_record(cli, o->id, &q, &rec, &id);
	if (rc)
		return rc;
	rc = EXIT_ERROR;
	r = qstore_has_content(q, id);
	if (r != 1) {
		cli_error(CMD, "record %" PRId64 " has no stored content (action %s): nothing to "
			  "restore", id, config_action_name(rec.action));
		goto out;
	}
	if (adm_audit_check(cli, CMD) < 0 || adm_bypass_mounts(CMD) < 0)
		goto out;
	if (o->to) {
		tocopy = strdup(o->to);
		rel = strdup(o->to);
		if (!tocopy || !rel)
			goto out;
		basefd = open(dirname(tocopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (basefd < 0) {
			cli_error(CMD, "--to %s: directory %s: %s", o->to, tocopy, strerror(errno));
			goto out;
		}
		dfd = basefd;
		basefd = -1;
		leaf = basename(rel);
		snprintf(dest, sizeof(dest), "%s", o->to);
	} else {
		basefd = open(rec.mount, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (basefd < 0) {
			cli_error(CMD, "backing directory %s of record %" PRId64 ": %s", rec.mount,
				  id, strerror(errno));
			goto out;
		}
		rel = strdup(rec.path);
		if (!rel)
			goto out;
		r = walk_parent(basefd, rel, rec.uid, rec.gid, &dfd, &leaf);
		if (r < 0) {
			cli_error(CMD, "cannot restore to %s/%s: %s%s", rec.mount, rec.path,
				  strerror(-r), r == -ELOOP ? " (a directory on the way is now a "
				  "symlink; use --to)" : "");
			goto out;
		}
		snprintf(dest, sizeof(dest), "%s/%s", rec.mount, rec.path);
	}
	if (!leaf)
		goto out;
	if (!o->force && fstatat(dfd, leaf, &st, AT_SYMLINK_NOFOLLOW) == 0) {
		cli_error(CMD, "%s exists; not overwriting it without --force", dest);
		goto out;
	}
	/* Allowlist first: the file must never be a match again, not even for a moment. */
	want_allow = o->allow;
	if (!want_allow && isatty(STDIN_FILENO) && isatty(STDOUT_FILENO))
		want_allow = ask_yes("Was this a false positive?  Add it to the allowlist "
				     "so it is not quarantined again?");
	if (want_allow) {
		int added;

		if (allowlist_record(cli, &rec, &added) < 0)
			goto out;
		if (adm_audit(cli, CMD, "allow.add", "\"id\":%" PRId64 ",\"added\":%d,\"reason\":"
			      "\"false positive restored\"", id, added) < 0)
			goto out;
		printf("allowlisted %d hash%s of record %" PRId64 "\n", added, added == 1 ? "" : "es",
		       id);
	}
	r = write_content(q, id, dfd, leaf, o->force, 1, rec.uid, rec.gid, rec.mode);
	if (r < 0) {
		cli_error(CMD, "cannot restore record %" PRId64 " to %s: %s", id, dest,
			  r == -EBADMSG ? "content failed authentication (tampered, truncated or "
			  "wrong key); nothing written" : r == -EEXIST ? "it exists now; use --force" :
			  strerror(-r));
		goto out;
	}
	qstore_set_restored(q, id, true);
	if (adm_audit(cli, CMD, "quarantine.restore", "\"id\":%" PRId64 ",\"to\":\"%s\"", id,
		      adm_json_escape(esc, sizeof(esc), dest)) < 0)
		goto out;
	if (!cli->quiet) {
		printf("restored record %" PRId64 " to ", id);
		adm_text_print(stdout, dest);
		printf(" (owner %" PRIu32 ":%" PRIu32 ", mode %04o)\n", rec.uid, rec.gid,
		       rec.mode & 07777);
	}
	if (!want_allow && !cli->quiet) {
		printf("not allowlisted: a new upload of the same file will match again "
		       "(use --allow)\n");
	}
	rc = 0;
out:
	if (dfd >= 0)
		close(dfd);
	if (basefd >= 0)
		close(basefd);
	free(rel);
	free(tocopy);
	qrecord_release(&rec);
	qstore_close(q);
	return rc;
}

static int do_export_plain(struct cli *cli, const struct qopts *o)
{
	struct qrecord rec;
	struct qstore *q;
	char *dcopy = NULL, *fcopy = NULL, *jpath = NULL, *jtmp = NULL, *jleaf = NULL, actor[256];
	char *leaf;
	char esc[8192], t[32];
	int64_t id;
	int rc, r, dfd = -1, jfd, stored;
	struct stat st;
	FILE *jf;

	if (!o->out) {
		cli_error(CMD, "export needs --out FILE");
		return EXIT_USAGE;
	}
	rc = get_record(cli, o->id, &q, &rec, &id);
	if (rc)
		return rc;
	rc = EXIT_ERROR;
	stored = qstore_has_content(q, id) == 1;
	if (adm_audit_check(cli, CMD) < 0 || adm_bypass_mounts(CMD) < 0)
		goto out;
	dcopy = strdup(o->out);
	fcopy = strdup(o->out);
	if (!dcopy || !fcopy)
		goto out;
	leaf = basename(fcopy);
	if (asprintf(&jpath, "%s.json", o->out) < 0 ||
	    asprintf(&jleaf, "%s.json", leaf) < 0 ||
	    asprintf(&jtmp, "%s.json.tmp-%ld", leaf, (long)getpid()) < 0)
		goto out;
	dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		cli_error(CMD, "--out %s: %s", o->out, strerror(errno));
		goto out;
	}
	if (!o->force && (fstatat(dfd, leaf, &st, AT_SYMLINK_NOFOLLOW) == 0 ||
			  fstatat(dfd, jleaf, &st, AT_SYMLINK_NOFOLLOW) == 0)) {
		cli_error(CMD, "%s or %s exists; not overwriting without --force", o->out, jpath);
		goto out;
	}
	if (stored) {
		r = write_content(q, id, dfd, leaf, true, 0, 0, 0, 0);
		if (r < 0) {
			cli_error(CMD, "cannot export record %" PRId64 " to %s: %s", id, o->out,
				  r == -EBADMSG ? "content failed authentication (tampered, truncated "
				  "or wrong key); nothing written" : strerror(-r));
			goto out;
		}
	} else {
		cli_error(CMD, "note: record %" PRId64 " has no stored content (action %s); writing "
			  "only %s", id, config_action_name(rec.action), jpath);
	}
	jfd = openat(dfd, jtmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	jf = jfd < 0 ? NULL : fdopen(jfd, "w");
	if (!jf) {
		cli_error(CMD, "%s: %s", jtmp, strerror(errno));
		if (jfd >= 0) {
			close(jfd);
			unlinkat(dfd, jtmp, 0);
		}
		goto out;
	}
	adm_actor(actor, sizeof(actor));
	fputs("{\"record\":", jf);
	print_json(jf, &rec, stored);
	fprintf(jf, ",\"exported\":%lld,\"exported_utc\":\"%s\",\"exported_by\":",
		(long long)time(NULL), adm_fmt_time(time(NULL), t));
	adm_json_print(jf, actor);
	fputs(",\"content_file\":", jf);
	adm_json_print(jf, stored ? o->out : "");
	fputs(",\"hashgate_version\":\"" HASHGATE_VERSION "\"}\n", jf);
	if (fflush(jf) != 0 || fsync(fileno(jf)) < 0 || ferror(jf)) {
		fclose(jf);
		unlinkat(dfd, jtmp, 0);
		cli_error(CMD, "cannot write %s", jpath);
		goto out;
	}
	fclose(jf);
	if (renameat(dfd, jtmp, dfd, jleaf) < 0) {
		unlinkat(dfd, jtmp, 0);
		cli_error(CMD, "cannot write %s: %s", jpath, strerror(errno));
		goto out;
	}
	if (adm_audit(cli, CMD, "quarantine.export", "\"id\":%" PRId64 ",\"out\":\"%s\"", id,
		      adm_json_escape(esc, sizeof(esc), o->out)) < 0)
		goto out;
	if (!cli->quiet)
		printf("exported record %" PRId64 " to %s%s%s\n", id, stored ? o->out : "",
		       stored ? " and " : "", jpath);
	rc = 0;
out:
	if (dfd >= 0)
		close(dfd);
	free(dcopy);
	free(fcopy);
	free(jpath);
	free(jleaf);
	free(jtmp);
	qrecord_release(&rec);
	qstore_close(q);
	return rc;
}

/* ---- the encrypted evidence bundle ---- */

/* Lists holding one of the record's exact hashes now, for the manifest's "matches". */
struct match_ctx {
	FILE *f;
	const struct hashdb_list *lists;
	size_t nlists;
	enum hash_algo algo;
	int n;
};

static int match_cb(const struct hashdb_entry *e, void *arg)
{
	struct match_ctx *m = arg;
	const struct hashdb_list *l = NULL;

	for (size_t i = 0; i < m->nlists; i++)
		if (m->lists[i].id == e->list_id)
			l = &m->lists[i];
	fprintf(m->f, "%s{\"algo\":\"%s\",\"list\":", m->n++ ? "," : "", algo_name(m->algo));
	adm_json_print(m->f, l ? l->name : "?");
	/* a row's own category (from the list file) is the one the daemon acted on */
	fputs(",\"category\":", m->f);
	adm_json_print(m->f, e->category ? e->category : l ? l->category : "?");
	fputs(",\"label\":", m->f);
	if (e->label)
		adm_json_print(m->f, e->label);
	else
		fputs("null", m->f);
	if (e->ref) {
		fputs(",\"ref\":", m->f);
		adm_json_print(m->f, e->ref);
	}
	putc('}', m->f);
	return 0;
}

/*
 * "matches": every list that holds one of the record's exact hashes in the database now
 * (with its category and the entry's label), plus the PDQ hit the verdict recorded (a
 * distance match has no entry of its own to look up).
 */
static void print_matches(FILE *f, struct hashdb *db, const struct hashdb_list *lists,
			  size_t nlists, const struct qrecord *r)
{
	struct match_ctx m = { .f = f, .lists = lists, .nlists = nlists };
	char err[256];

	fputs(",\"matches\":[", f);
	for (int a = HASH_MD5; db && a <= HASH_SHA256; a++) {
		const uint8_t *v = digests_get(&r->digests, (enum hash_algo)a);

		m.algo = (enum hash_algo)a;
		if (v)
			hashdb_hash_find(db, (enum hash_algo)a, v, match_cb, &m, err, sizeof(err));
	}
	if (r->algo == HASH_PDQ || !m.n) {
		fprintf(f, "%s{\"algo\":\"%s\",\"list\":", m.n ? "," : "", algo_name(r->algo));
		adm_json_print(f, r->list);
		fputs(",\"category\":", f);
		adm_json_print(f, r->category);
		fprintf(f, ",\"distance\":%d,\"label\":null,\"recorded\":true}", r->distance);
	}
	putc(']', f);
}

static void print_bundle_record(FILE *f, const struct qrecord *r, int stored, const char *host,
				struct hashdb *db, const struct hashdb_list *lists,
				size_t nlists)
{
	struct passwd *pw = getpwuid(r->uid);
	struct group *gr = getgrgid(r->gid);
	char name[QSTORE_NAME_MAX];

	putc('{', f);
	print_json_members(f, r, stored);
	fputs(",\"user\":", f);
	if (pw)
		adm_json_print(f, pw->pw_name);
	else
		fputs("null", f);
	fputs(",\"group\":", f);
	if (gr)
		adm_json_print(f, gr->gr_name);
	else
		fputs("null", f);
	fputs(",\"host\":", f);
	adm_json_print(f, host);
	print_matches(f, db, lists, nlists, r);
	fputs(",\"content_file\":", f);
	if (stored && qstore_kept_name(r, name) == 0) {
		char path[QSTORE_NAME_MAX + 16];

		snprintf(path, sizeof(path), "content/%s", name);
		adm_json_print(f, path);
	} else {
		fputs("null", f);
	}
	putc('}', f);
}

static const char bundle_readme[] =
"hashgate evidence bundle\n"
"\n"
"manifest.json       the records: hashes, what matched, time, uploader, host, mount, path,\n"
"                    origin, review state, and the head of the host's audit chain\n"
"manifest.json.sig   Ed25519 signature of manifest.json by the host's key\n"
"host-key.pub.pem    that public key (compare its fingerprint with the one the hoster gives\n"
"                    you out of band: `hashgate key show` on the host)\n"
"content/sha256-HEX  the content of the records that kept it, once per sha256\n"
"\n"
"Verify:\n"
"  openssl pkeyutl -verify -pubin -inkey host-key.pub.pem -rawin \\\n"
"      -in manifest.json -sigfile manifest.json.sig\n"
"  openssl pkey -pubin -in host-key.pub.pem -outform DER | sha256sum   # the fingerprint\n"
"  sha256sum content/*      # each equals the name and the records' \"sha256\"\n";

static int read_passphrase(const char *path, char **out, size_t *len)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;

	*out = NULL;
	if (!f) {
		cli_error(CMD, "--passphrase-file %s: %s", path, strerror(errno));
		return -errno;
	}
	n = getline(&line, &cap, f);
	fclose(f);
	while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		line[--n] = '\0';
	if (n < 8) {
		cli_error(CMD, "--passphrase-file %s: %s", path, n < 1 ? "empty first line" :
			  "the passphrase (its first line) has fewer than 8 characters");
		if (line)
			OPENSSL_cleanse(line, cap);
		free(line);
		return -EINVAL;
	}
	*out = line;
	*len = (size_t)n;
	return 0;
}

/* The records to export: o->ids, or those of --since/--until. */
static int select_records(struct cli *cli, struct qstore *q, const struct qopts *o,
			  struct qrecord **out, size_t *n)
{
	struct qstore_filter f = { .since = 0, .before = 0, .uid = -1, .list = o->list };
	int r;

	*out = NULL;
	*n = 0;
	if (!o->nids) {
		if (o->since && adm_parse_since(o->since, &f.since) < 0) {
			cli_error(CMD, "option '--since %s': expected a duration (7d, 12h), @UNIXTIME "
				  "or YYYY-MM-DD[THH:MM[:SS]]", o->since);
			return EXIT_USAGE;
		}
		if (o->until && adm_parse_since(o->until, &f.before) < 0) {
			cli_error(CMD, "option '--until %s': expected a duration (7d, 12h), @UNIXTIME "
				  "or YYYY-MM-DD[THH:MM[:SS]]", o->until);
			return EXIT_USAGE;
		}
		r = qstore_list(q, &f, out, n);
		if (r < 0) {
			cli_error(CMD, "cannot list %s: %s", cli->cfg.quarantine, strerror(-r));
			return EXIT_ERROR;
		}
		return 0;
	}
	*out = calloc(o->nids, sizeof(**out));
	if (!*out)
		return EXIT_ERROR;
	for (size_t i = 0; i < o->nids; i++) {
		int64_t id;

		if (adm_parse_id(CMD, o->ids[i], &id) < 0)
			return EXIT_USAGE;
		for (size_t k = 0; k < *n; k++)
			if ((*out)[k].id == id) {
				cli_error(CMD, "record %" PRId64 " is named twice", id);
				return EXIT_USAGE;
			}
		r = qstore_get(q, id, &(*out)[*n]);
		if (r < 0) {
			cli_error(CMD, r == -ENOENT ? "no quarantine record %" PRId64 "; nothing "
				  "exported" : "cannot read record %" PRId64 ": %s", id, strerror(-r));
			return EXIT_ERROR;
		}
		(*n)++;
	}
	return 0;
}

/*
 * Write the manifest into *buf: selection, host, creator, signing key, the audit chain's head
 * before this export's own record, and the records.
 */
static int build_manifest(struct cli *cli, struct qstore *q, const struct qopts *o,
			  const struct qrecord *recs, size_t n, const struct hostkey *hk,
			  const char *host, char **buf, size_t *len, char head[65],
			  uint64_t *nlog)
{
	struct hashdb db = { 0 }, *dbp = NULL;
	struct hashdb_list *lists = NULL;
	size_t nlists = 0;
	char actor[256], t[32], err[512];
	int64_t now = (int64_t)time(NULL);
	int verified;
	FILE *f;

	verified = audit_verify_last(cli->cfg.audit_log, nlog, head, err, sizeof(err)) == 0;
	if (!verified) {
		cli_error(CMD, "warning: the audit log does not verify (%s); the manifest says so",
			  err);
		head[0] = '\0';
	}
	if (hashdb_open(&db, cli->cfg.db, HASHDB_RDONLY, err, sizeof(err)) == 0) {
		dbp = &db;
		if (hashdb_lists(dbp, false, &lists, &nlists, err, sizeof(err)) < 0)
			nlists = 0;
	} else {
		cli_error(CMD, "warning: %s; the manifest names only the list each verdict "
			  "recorded", err);
	}
	f = open_memstream(buf, len);
	if (!f) {
		free(lists);
		if (dbp)
			hashdb_close(dbp);
		return -ENOMEM;
	}
	adm_actor(actor, sizeof(actor));
	fprintf(f, "{\"format\":\"hashgate-evidence/1\",\"hashgate_version\":\"" HASHGATE_VERSION
		"\",\"created\":%" PRId64 ",\"created_utc\":\"%s\",\"created_by\":", now,
		adm_fmt_time(now, t));
	adm_json_print(f, actor);
	fputs(",\"host\":", f);
	adm_json_print(f, host);
	fputs(",\"selection\":{", f);
	if (o->nids) {
		fputs("\"ids\":[", f);
		for (size_t i = 0; i < n; i++)
			fprintf(f, "%s%" PRId64, i ? "," : "", recs[i].id);
		putc(']', f);
	} else {
		fputs("\"since\":", f);
		adm_json_print(f, o->since ? o->since : "");
		fputs(",\"until\":", f);
		adm_json_print(f, o->until ? o->until : "");
		fputs(",\"list\":", f);
		adm_json_print(f, o->list ? o->list : "");
	}
	fprintf(f, "},\"signing_key\":{\"algorithm\":\"ed25519\",\"fingerprint_sha256\":\"%s\"},",
		hk->fingerprint);
	fputs("\"audit_chain\":{\"log\":", f);
	adm_json_print(f, cli->cfg.audit_log);
	fprintf(f, ",\"records\":%" PRIu64 ",\"head\":\"%s\",\"verified\":%s},", *nlog, head,
		verified ? "true" : "false");
	fputs("\"quarantine\":", f);
	adm_json_print(f, cli->cfg.quarantine);
	fprintf(f, ",\"count\":%zu,\"records\":[", n);
	for (size_t i = 0; i < n; i++) {
		if (i)
			putc(',', f);
		print_bundle_record(f, &recs[i], qstore_has_content(q, recs[i].id) == 1, host, dbp,
				    lists, nlists);
	}
	fputs("]}\n", f);
	free(lists);
	if (dbp)
		hashdb_close(dbp);
	return fclose(f) == 0 ? 0 : -EIO;
}

/* Every entry of the bundle, in order (see bundle_readme). */
static int write_bundle(struct bundle *b, struct qstore *q, const struct qrecord *recs, size_t n,
			const char *manifest, size_t mlen, const uint8_t *sig, const char *pub,
			size_t *ncontent)
{
	int64_t now = (int64_t)time(NULL);
	char name[QSTORE_NAME_MAX], path[QSTORE_NAME_MAX + 16];
	int r;

	*ncontent = 0;
	r = bundle_add(b, "README.txt", bundle_readme, sizeof(bundle_readme) - 1, now);
	if (r == 0)
		r = bundle_add(b, "manifest.json", manifest, mlen, now);
	if (r == 0)
		r = bundle_add(b, "manifest.json.sig", sig, HOSTKEY_SIG_LEN, now);
	if (r == 0)
		r = bundle_add(b, "host-key.pub.pem", pub, strlen(pub), now);
	for (size_t i = 0; r == 0 && i < n; i++) {
		bool dup = false;

		if (qstore_has_content(q, recs[i].id) != 1 || qstore_kept_name(&recs[i], name) < 0)
			continue;
		for (size_t k = 0; k < i && !dup; k++)	/* once per sha256 */
			dup = qstore_has_content(q, recs[k].id) == 1 &&
			      digests_get(&recs[k].digests, HASH_SHA256) &&
			      memcmp(digests_get(&recs[k].digests, HASH_SHA256),
				     digests_get(&recs[i].digests, HASH_SHA256), 32) == 0;
		if (dup)
			continue;
		snprintf(path, sizeof(path), "content/%s", name);
		r = bundle_entry(b, path, recs[i].size, recs[i].time);
		if (r == 0)
			r = qstore_read_to(q, recs[i].id, bundle_write, b);
		if (r < 0) {
			cli_error(CMD, "record %" PRId64 ": %s", recs[i].id, r == -EBADMSG ?
				  "content failed authentication (tampered, truncated or wrong key)" :
				  strerror(-r));
			return r;
		}
		(*ncontent)++;
	}
	if (r == 0)
		r = bundle_finish(b);
	return r;
}

static int do_export(struct cli *cli, const struct qopts *o)
{
	struct qrecord *recs = NULL;
	struct qstore *q = NULL;
	struct hostkey hk = { 0 };
	struct bundle b = { 0 };
	char *pass = NULL, *manifest = NULL, *pub = NULL, *dcopy = NULL, *fcopy = NULL, *leaf;
	char keypath[4096], host[256] = "", head[65] = "", err[1024], tmp[64], msha[65];
	char esc[8192], *ids = NULL;
	uint8_t sig[HOSTKEY_SIG_LEN], md[32];
	size_t n = 0, plen = 0, mlen = 0, ncontent = 0, idlen = 0;
	uint64_t nlog = 0;
	int rc, r, dfd = -1, fd = -1, made_key;
	FILE *idf;

	if (!o->out) {
		cli_error(CMD, "export needs --out FILE");
		return EXIT_USAGE;
	}
	if (o->plaintext) {
		if (o->nrecip || o->passfile || o->nids != 1 || o->since || o->until) {
			cli_error(CMD, "--plaintext exports exactly one record, unencrypted; it "
				  "takes no --recipient, --passphrase-file, --since or --until");
			return EXIT_USAGE;
		}
		return do_export_plain(cli, o);
	}
	if (o->nids && (o->since || o->until || o->list)) {
		cli_error(CMD, "export takes record ids or --since/--until/--list, not both");
		return EXIT_USAGE;
	}
	if (!o->nrecip && !o->passfile) {
		cli_error(CMD, "export writes an encrypted bundle: give --recipient CERT.pem (the "
			  "certificate of whoever receives it) and/or --passphrase-file FILE; "
			  "--plaintext writes one record's bytes unencrypted");
		return EXIT_ERROR;
	}
	if (o->passfile && read_passphrase(o->passfile, &pass, &plen) < 0)
		return EXIT_ERROR;
	rc = EXIT_ERROR;
	if (store_missing(cli)) {
		cli_error(CMD, "%s holds no quarantine store yet: nothing to export",
			  cli->cfg.quarantine);
		goto out;
	}
	if (open_store(cli, &q, 0) < 0)
		goto out;
	rc = select_records(cli, q, o, &recs, &n);
	if (rc)
		goto out;
	rc = EXIT_ERROR;
	if (!n) {
		cli_error(CMD, "no records in the selected time range: nothing exported");
		goto out;
	}
	if (adm_audit_check(cli, CMD) < 0 || adm_bypass_mounts(CMD) < 0)
		goto out;
	if (adm_host_key_path(cli, keypath, sizeof(keypath)) < 0) {
		cli_error(CMD, "the path of the host key is too long");
		goto out;
	}
	made_key = access(keypath, F_OK) < 0;
	if (hostkey_load(&hk, keypath, true, err, sizeof(err)) < 0) {
		cli_error(CMD, "cannot sign the manifest: %s", err);
		goto out;
	}
	/* The key is made on first use: that is an admin action of its own (as in key show). */
	if (made_key && adm_audit(cli, CMD, "key.create", "\"algorithm\":\"ed25519\","
				  "\"fingerprint_sha256\":\"%s\"", hk.fingerprint) < 0)
		goto out;
	if (gethostname(host, sizeof(host) - 1) < 0)
		snprintf(host, sizeof(host), "?");
	if (build_manifest(cli, q, o, recs, n, &hk, host, &manifest, &mlen, head, &nlog) < 0 ||
	    hostkey_sign(&hk, manifest, mlen, sig) < 0 || hostkey_public_pem(&hk, &pub) < 0) {
		cli_error(CMD, "cannot build or sign the manifest");
		goto out;
	}
	SHA256((const unsigned char *)manifest, mlen, md);
	hex_encode(md, sizeof(md), msha);

	dcopy = strdup(o->out);
	fcopy = strdup(o->out);
	if (!dcopy || !fcopy)
		goto out;
	leaf = basename(fcopy);
	dfd = open(dirname(dcopy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0) {
		cli_error(CMD, "--out %s: %s", o->out, strerror(errno));
		goto out;
	}
	snprintf(tmp, sizeof(tmp), ".hashgate-export-%ld", (long)getpid());
	fd = openat(dfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		cli_error(CMD, "--out %s: %s", o->out, strerror(errno));
		goto out;
	}
	r = bundle_begin(&b, fd, o->recip, o->nrecip, pass, plen, err, sizeof(err));
	if (r < 0) {
		cli_error(CMD, "%s", err);
		goto out_unlink;
	}
	r = write_bundle(&b, q, recs, n, manifest, mlen, sig, pub, &ncontent);
	if (r < 0 || fsync(fd) < 0) {
		cli_error(CMD, "cannot write %s: %s; nothing written", o->out,
			  strerror(r < 0 ? -r : errno));
		goto out_unlink;
	}
	if (renameat2(dfd, tmp, dfd, leaf, o->force ? 0 : RENAME_NOREPLACE) < 0) {
		cli_error(CMD, "--out %s: %s", o->out, errno == EEXIST ? "exists; not overwriting "
			  "it without --force" : strerror(errno));
		goto out_unlink;
	}
	fsync(dfd);
	idf = open_memstream(&ids, &idlen);
	if (!idf)
		goto out;
	for (size_t i = 0; i < n; i++)
		fprintf(idf, "%s%" PRId64, i ? "," : "", recs[i].id);
	fclose(idf);
	if (adm_audit(cli, CMD, "quarantine.export", "\"bundle\":true,\"ids\":[%s],\"count\":%zu,"
		      "\"out\":\"%s\",\"recipients\":%zu,\"passphrase\":%s,\"cipher\":\"%s\","
		      "\"manifest_sha256\":\"%s\",\"signing_key\":\"%s\",\"audit_head\":\"%s\","
		      "\"audit_records\":%" PRIu64, ids, n, adm_json_escape(esc, sizeof(esc), o->out),
		      o->nrecip, pass ? "true" : "false", b.cipher, msha, hk.fingerprint, head,
		      nlog) < 0)
		goto out;
	if (!cli->quiet) {
		printf("exported %zu record%s (%zu content file%s) to ", n, n == 1 ? "" : "s",
		       ncontent, ncontent == 1 ? "" : "s");
		adm_text_print(stdout, o->out);
		printf("\n  encrypted: CMS %s for %zu certificate%s%s\n  manifest sha256 %s, signed "
		       "by host key %s\n", b.cipher, o->nrecip, o->nrecip == 1 ? "" : "s",
		       pass ? " and the passphrase" : "", msha, hk.fingerprint);
	}
	rc = 0;
	goto out;
out_unlink:
	unlinkat(dfd, tmp, 0);
out:
	bundle_release(&b);
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	if (pass) {
		OPENSSL_cleanse(pass, plen);
		free(pass);
	}
	free(ids);
	free(manifest);
	free(pub);
	free(dcopy);
	free(fcopy);
	hostkey_release(&hk);
	qrecord_free_array(recs, n);
	qstore_close(q);
	return rc;
}

static int do_delete(struct cli *cli, const struct qopts *o)
{
	struct qrecord rec;
	struct qstore *q;
	int64_t id;
	int rc, r;

	rc = get_record(cli, o->id, &q, &rec, &id);
	if (rc)
		return rc;
	rc = EXIT_ERROR;
	if (adm_audit_check(cli, CMD) < 0)
		goto out;
	r = qstore_delete(q, id);
	if (r < 0) {
		cli_error(CMD, r == -EPERM ? "record %" PRId64 " is under legal hold; release it "
			  "first" : "cannot delete record %" PRId64 ": %s", id, strerror(-r));
		goto out;
	}
	if (adm_audit(cli, CMD, "quarantine.delete", "\"id\":%" PRId64, id) < 0)
		goto out;
	if (!cli->quiet)
		printf("deleted record %" PRId64 "\n", id);
	rc = 0;
out:
	qrecord_release(&rec);
	qstore_close(q);
	return rc;
}

static int do_hold(struct cli *cli, const struct qopts *o, bool hold)
{
	struct qstore *q;
	int64_t id;
	int r;

	if (adm_parse_id(CMD, o->id, &id) < 0)
		return EXIT_USAGE;
	if (open_store(cli, &q, 0) < 0)
		return EXIT_ERROR;
	if (adm_audit_check(cli, CMD) < 0) {
		qstore_close(q);
		return EXIT_ERROR;
	}
	r = qstore_set_held(q, id, hold);
	qstore_close(q);
	if (r < 0) {
		cli_error(CMD, r == -ENOENT ? "no quarantine record %" PRId64 :
			  "cannot update record %" PRId64 ": %s", id, strerror(-r));
		return EXIT_ERROR;
	}
	if (adm_audit(cli, CMD, hold ? "quarantine.hold" : "quarantine.release",
		      "\"id\":%" PRId64, id) < 0)
		return EXIT_ERROR;
	if (!cli->quiet)
		printf("record %" PRId64 " %s\n", id, hold ? "is under legal hold" : "released");
	return 0;
}

static int do_review(struct cli *cli, struct qopts *o)
{
	struct qrecord rec;
	struct qstore *q;
	char ecase[1024], ereason[4096], efrom[64];
	int64_t id;
	int rc, r;

	if (!o->state || !review_state_ok(o->state)) {
		cli_error(CMD, "review needs a state: new, confirmed, false-positive or reported");
		return EXIT_USAGE;
	}
	if (strcmp(o->state, "reported") == 0 && (!o->case_no || !*o->case_no)) {
		cli_error(CMD, "review ... reported needs --case NO (the hotline's or police case "
			  "number)");
		return EXIT_USAGE;
	}
	if ((o->case_no && strlen(o->case_no) > 200) || (o->reason && strlen(o->reason) > 600)) {
		cli_error(CMD, "--case is limited to 200 bytes, --reason to 600");
		return EXIT_USAGE;
	}
	rc = get_record(cli, o->id, &q, &rec, &id);
	if (rc)
		return rc;
	rc = EXIT_ERROR;
	if (adm_audit_check(cli, CMD) < 0)
		goto out;
	/* A later decision keeps the case number and reason it does not replace. */
	if (!o->case_no)
		o->case_no = rec.review_case;
	if (!o->reason)
		o->reason = rec.review_reason;
	r = qstore_set_review(q, id, o->state, o->case_no, o->reason, (int64_t)time(NULL));
	if (r < 0) {
		cli_error(CMD, "cannot update record %" PRId64 ": %s", id, strerror(-r));
		goto out;
	}
	if (adm_audit(cli, CMD, "quarantine.review", "\"id\":%" PRId64 ",\"from\":\"%s\","
		      "\"state\":\"%s\",\"case\":\"%s\",\"reason\":\"%s\"", id,
		      adm_json_escape(efrom, sizeof(efrom), rec.review), o->state,
		      adm_json_escape(ecase, sizeof(ecase), o->case_no ? o->case_no : ""),
		      adm_json_escape(ereason, sizeof(ereason), o->reason ? o->reason : "")) < 0)
		goto out;
	if (!cli->quiet)
		printf("record %" PRId64 ": %s -> %s\n", id, rec.review, o->state);
	rc = 0;
out:
	qrecord_release(&rec);
	qstore_close(q);
	return rc;
}

static int do_purge(struct cli *cli, const struct qopts *o)
{
	struct qstore_filter f = { .since = 0, .before = 0, .uid = -1, .list = NULL };
	struct qrecord *recs = NULL;
	struct qstore *q;
	size_t n = 0, done = 0, held = 0;
	int64_t age;
	char *ids = NULL;
	size_t idlen = 0;
	FILE *idf;
	int r, rc = EXIT_ERROR;

	if (o->older) {
		if (config_parse_duration(o->older, &age) < 0 || age <= 0) {
			cli_error(CMD, "option '--older-than %s': expected a duration such as 90d, "
				  "12h", o->older);
			return EXIT_USAGE;
		}
	} else if (cli->cfg.retention > 0) {
		age = cli->cfg.retention;
	} else {
		cli_error(CMD, "purge needs --older-than DURATION (no 'retention' in the config)");
		return EXIT_USAGE;
	}
	f.before = (int64_t)time(NULL) - age;
	if (store_missing(cli)) {
		printf("purged 0 records: %s holds no quarantine store yet\n", cli->cfg.quarantine);
		return 0;
	}
	if (open_store(cli, &q, 0) < 0)
		return EXIT_ERROR;
	if (!o->dry_run && adm_audit_check(cli, CMD) < 0)
		goto out;
	r = qstore_list(q, &f, &recs, &n);
	if (r < 0) {
		cli_error(CMD, "cannot list %s: %s", cli->cfg.quarantine, strerror(-r));
		goto out;
	}
	idf = open_memstream(&ids, &idlen);
	if (!idf)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (recs[i].held) {
			held++;
			continue;
		}
		if (o->dry_run) {
			printf("would delete %" PRId64 "\n", recs[i].id);
			continue;
		}
		r = qstore_delete(q, recs[i].id);
		if (r == -EPERM) {		/* put on hold since we listed */
			held++;
			continue;
		}
		if (r < 0 && r != -ENOENT) {
			cli_error(CMD, "cannot delete record %" PRId64 ": %s", recs[i].id,
				  strerror(-r));
			break;
		}
		fprintf(idf, "%s%" PRId64, done ? "," : "", recs[i].id);
		done++;
	}
	fclose(idf);
	if (!o->dry_run && done && adm_audit(cli, CMD, "quarantine.purge",
					     "\"older_than\":%lld,\"count\":%zu,\"ids\":[%s]",
					     (long long)age, done, ids) < 0)
		goto out_free;
	if (!cli->quiet)
		printf("%s %zu record%s older than %llds; kept %zu under legal hold\n",
		       o->dry_run ? "would purge" : "purged", o->dry_run ? n - held : done,
		       (o->dry_run ? n - held : done) == 1 ? "" : "s", (long long)age, held);
	rc = done + held == n || o->dry_run ? 0 : EXIT_ERROR;
out_free:
	free(ids);
out:
	qrecord_free_array(recs, n);
	qstore_close(q);
	return rc;
}

/* Open the file qstore_keep wrote for rec under its mount's staging area. */
static int open_kept(const struct qrecord *rec, char *path, size_t len)
{
	char name[QSTORE_NAME_MAX];
	int r = qstore_kept_name(rec, name);

	if (r < 0)
		return r;
	if (snprintf(path, len, "%s/%s/%s", rec->mount, QSTORE_KEPT_SUBDIR, name) >= (int)len)
		return -ENAMETOOLONG;
	r = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	return r < 0 ? -errno : r;
}

static int do_retry(struct cli *cli, const struct qopts *o)
{
	struct qrecord *recs = NULL, cur;
	struct qstore *q;
	size_t n = 0;
	uint64_t moved = 0, pending = 0, failed = 0;
	char path[4096];
	int r, fd, rc = EXIT_ERROR;

	(void)o;
	if (store_missing(cli)) {
		if (!cli->quiet)
			printf("no quarantine store yet: nothing kept\n");
		return 0;
	}
	if (open_store(cli, &q, 0) < 0)
		return EXIT_ERROR;
	qstore_set_quota(q, cli->cfg.quarantine_max_size);
	if (adm_audit_check(cli, CMD) < 0)
		goto out;
	r = qstore_list(q, NULL, &recs, &n);
	if (r < 0) {
		cli_error(CMD, "cannot list %s: %s", cli->cfg.quarantine, strerror(-r));
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (!recs[i].kept)
			continue;
		/* One adopt moves every record of the same content: skip those done already. */
		if (qstore_get(q, recs[i].id, &cur) == 0) {
			bool still = cur.kept;

			qrecord_release(&cur);
			if (!still)
				continue;
		}
		fd = open_kept(&recs[i], path, sizeof(path));
		if (fd < 0) {
			cli_error(CMD, "record %" PRId64 ": kept content %s: %s", recs[i].id, path,
				  strerror(-fd));
			failed++;
			continue;
		}
		r = qstore_adopt(q, &recs[i], fd);
		close(fd);
		if (r >= 0) {
			moved += (uint64_t)r;
			unlink(path);
		} else if (r == -EDQUOT || r == -ENOSPC) {
			pending++;
			if (pending == 1)
				cli_error(CMD, "the store %s still cannot take the content (%s): raise "
					  "quarantine_max_size, free space or purge records, then "
					  "retry", cli->cfg.quarantine, strerror(-r));
		} else {
			cli_error(CMD, "record %" PRId64 ": cannot move %s into the store: %s",
				  recs[i].id, path, strerror(-r));
			failed++;
		}
	}
	if (moved || pending || failed) {
		if (adm_audit(cli, CMD, "quarantine.retry", "\"moved\":%" PRIu64 ",\"pending\":%"
			      PRIu64 ",\"failed\":%" PRIu64, moved, pending, failed) < 0)
			goto out;
	}
	if (cli->json)
		printf("{\"moved\":%" PRIu64 ",\"pending\":%" PRIu64 ",\"failed\":%" PRIu64 "}\n",
		       moved, pending, failed);
	else if (!cli->quiet)
		printf("evidence of %" PRIu64 " record%s moved into the store, %" PRIu64 " still kept "
		       "outside, %" PRIu64 " failed\n", moved, moved == 1 ? "" : "s", pending, failed);
	rc = failed ? EXIT_ERROR : pending ? 1 : 0;
out:
	qrecord_free_array(recs, n);
	qstore_close(q);
	return rc;
}

int quarantine_status(struct cli *cli, const struct hg_status *st, size_t n, int json)
{
	struct qstore_usage u = { 0 };
	struct qstore *q = NULL;
	uint64_t kept = 0, lost = 0, bytes = 0, max = 0;
	int have = 0, alarm = 0;
	char err[512], b1[32], b2[32];

	/* The store itself when we may read it (root): its state outlives daemon restarts. */
	if (!store_missing(cli) && qstore_open(&q, cli->cfg.quarantine, cli->cfg.quarantine_key,
					       0, err, sizeof(err)) == 0) {
		have = qstore_usage(q, &u) == 0;
		qstore_close(q);
	}
	for (size_t k = 0; k < n; k++) {
		kept += st[k].evidence_kept;
		lost += st[k].evidence_lost;
		if (st[k].quarantine_bytes > bytes)
			bytes = st[k].quarantine_bytes;
		if (st[k].quarantine_max_bytes)
			max = st[k].quarantine_max_bytes;
	}
	if (have) {
		bytes = u.bytes;
		max = cli->cfg.quarantine_max_size;
	}
	alarm = lost > 0 || (have ? u.kept > 0 : kept > 0) || (max && bytes >= max / 10 * 9);
	if (json) {
		printf(",\"quarantine\":{\"bytes\":%" PRIu64 ",\"max_bytes\":%" PRIu64, bytes, max);
		if (have)
			printf(",\"records\":%" PRIu64 ",\"objects\":%" PRIu64 ",\"kept_records\":%"
			       PRIu64, u.records, u.objects, u.kept);
		printf(",\"evidence_kept\":%" PRIu64 ",\"evidence_lost\":%" PRIu64
		       ",\"alarm\":%s}", kept, lost, alarm ? "true" : "false");
		return alarm;
	}
	printf("\nquarantine %s: %s", cli->cfg.quarantine, adm_fmt_bytes(bytes, b1));
	if (max)
		printf(" of %s (%" PRIu64 "%%)", adm_fmt_bytes(max, b2), bytes * 100 / max);
	if (have)
		printf(", %" PRIu64 " records, %" PRIu64 " content objects", u.records, u.objects);
	putchar('\n');
	if (max && bytes >= max / 10 * 9)
		printf("  ALARM: the store is at %" PRIu64 "%% of quarantine_max_size\n",
		       bytes * 100 / max);
	if (have && u.kept)
		printf("  ALARM: evidence of %" PRIu64 " record%s kept outside the store: run "
		       "'hashgate quarantine retry'\n", u.kept, u.kept == 1 ? "" : "s");
	else if (!have && kept)
		printf("  ALARM: evidence of %" PRIu64 " upload%s kept outside the store since the "
		       "daemons started: run 'hashgate quarantine retry' as root\n", kept,
		       kept == 1 ? "" : "s");
	if (lost)
		printf("  ALARM: evidence of %" PRIu64 " upload%s could be neither stored nor kept "
		       "(see the daemon log)\n", lost, lost == 1 ? "" : "s");
	return alarm;
}

/* What a subcommand takes besides options. */
enum q_args {
	Q_NO_ID,		/* list, purge, retry */
	Q_ID,			/* one record id */
	Q_IDS,			/* export: ids, or --since/--until */
	Q_ID_STATE,		/* review: id and the decision */
};

/*
 * The options and arguments of a subcommand (argv[0] is its name) into *o.  true: run it;
 * false: do not, exit with *rc (0 after --help, else a usage error, already printed).
 */
static bool parse(int argc, char **argv, struct cli *cli, struct qopts *o, enum q_args args,
		  int *rc)
{
	const char *sub = argv[0];
	int i, r;

	*rc = EXIT_USAGE;
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char **val = NULL;

		r = cli_common_option(cli, CMD, argc, argv, &i);
		if (r < 0)
			return false;
		if (r > 0)
			continue;
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			*rc = 0;
			return false;
		} else if (strcmp(a, "--force") == 0) {
			o->force = true;
		} else if (strcmp(a, "--allow") == 0) {
			o->allow = true;
		} else if (strcmp(a, "--dry-run") == 0) {
			o->dry_run = true;
		} else if (strcmp(a, "--plaintext") == 0) {
			o->plaintext = true;
		} else if (strcmp(a, "--until") == 0) {
			val = &o->until;
		} else if (strcmp(a, "--passphrase-file") == 0) {
			val = &o->passfile;
		} else if (strcmp(a, "--recipient") == 0) {
			if (o->nrecip == MAX_RECIPIENTS) {
				cli_error(CMD, "at most %d --recipient", MAX_RECIPIENTS);
				return false;
			}
			val = &o->recip[o->nrecip++];
		} else if (strcmp(a, "--quiet") == 0 || strcmp(a, "-q") == 0) {
			cli->quiet = true;
		} else if (strcmp(a, "--since") == 0) {
			val = &o->since;
		} else if (strcmp(a, "--uid") == 0) {
			val = &o->uid;
		} else if (strcmp(a, "--list") == 0) {
			val = &o->list;
		} else if (strcmp(a, "--to") == 0) {
			val = &o->to;
		} else if (strcmp(a, "--out") == 0) {
			val = &o->out;
		} else if (strcmp(a, "--older-than") == 0) {
			val = &o->older;
		} else if (strcmp(a, "--case") == 0) {
			val = &o->case_no;
		} else if (strcmp(a, "--reason") == 0) {
			val = &o->reason;
		} else if (strcmp(a, "--review") == 0) {
			val = &o->review;
		} else if (a[0] == '-' && a[1]) {
			cli_error(CMD, "unknown option '%s' (see 'hashgate quarantine --help')", a);
			return false;
		} else if (args == Q_IDS) {
			if (o->nids == MAX_IDS) {
				cli_error(CMD, "at most %d record ids; use --since/--until", MAX_IDS);
				return false;
			}
			o->ids[o->nids++] = a;
			if (!o->id)
				o->id = a;
		} else if (!o->id) {
			o->id = a;
		} else if (!o->state && args == Q_ID_STATE) {
			o->state = a;
		} else {
			cli_error(CMD, "unexpected argument '%s'", a);
			return false;
		}
		if (val) {
			if (i + 1 >= argc) {
				cli_error(CMD, "option '%s' needs a value", a);
				return false;
			}
			*val = argv[++i];
		}
	}
	if (args == Q_NO_ID && o->id) {
		cli_error(CMD, "%s takes no record id", sub);
		return false;
	}
	if (args != Q_NO_ID && !o->id && !(args == Q_IDS && (o->since || o->until))) {
		cli_error(CMD, "%s needs a record id%s", sub, args == Q_IDS ?
			  " (or --since/--until)" : "");
		return false;
	}
	if (adm_require_root(CMD, "the quarantine store and its records are root-only") < 0) {
		*rc = EXIT_ERROR;
		return false;
	}
	return true;
}

/* A subcommand: parse its arguments, then run call (which sees struct qopts o). */
#define Q_SUB(fn, args, call) \
static int fn(int argc, char **argv, struct cli *cli) \
{ \
	struct qopts o = { 0 }; \
	int rc; \
\
	return parse(argc, argv, cli, &o, args, &rc) ? (call) : rc; \
}
Q_SUB(q_list, Q_NO_ID, do_list(cli, &o))
Q_SUB(q_show, Q_ID, do_show(cli, &o))
Q_SUB(q_restore, Q_ID, do_restore(cli, &o))
Q_SUB(q_export, Q_IDS, do_export(cli, &o))
Q_SUB(q_delete, Q_ID, do_delete(cli, &o))
Q_SUB(q_hold, Q_ID, do_hold(cli, &o, true))
Q_SUB(q_release, Q_ID, do_hold(cli, &o, false))
Q_SUB(q_purge, Q_NO_ID, do_purge(cli, &o))
Q_SUB(q_review, Q_ID_STATE, do_review(cli, &o))
Q_SUB(q_retry, Q_NO_ID, do_retry(cli, &o))
#undef Q_SUB

static const struct cli_sub quarantine_subs[] = {
	{ "list",	q_list,		"records, oldest first" },
	{ "show",	q_show,		"every field of one record" },
	{ "restore",	q_restore,	"decrypt the content back to its path (or --to PATH)" },
	{ "export",	q_export,	"an encrypted evidence bundle of records" },
	{ "delete",	q_delete,	"remove a record and its content (not while held)" },
	{ "hold",	q_hold,		"legal hold: no delete or purge until released" },
	{ "release",	q_release,	"end a legal hold" },
	{ "purge",	q_purge,	"delete records older than the retention" },
	{ "review",	q_review,	"record a reviewer's decision" },
	{ "retry",	q_retry,	"move evidence kept in staging areas into the store" },
};

int cmd_quarantine(int argc, char **argv, struct cli *cli)
{
	return CLI_DISPATCH(cli, CMD, argc, argv, quarantine_subs, usage);
}
