/*
 * gate.c - the one rule for bytes written through the mount into a file that is visible
 * under a name (in-place writes, appends, writes after a publish, mmap write-back, truncate,
 * fallocate, copy_file_range): nobody but the writing process reads them before they are
 * judged.  Staged uploads (staging.c) are the other half: their bytes are in no name at all.
 *
 * Per inode (keyed by its current backing (dev, ino)):
 *  - wgen counts changes; sgen is the wgen value the last verdict covered.  A verdict marks
 *    sgen only when the file it read is still the inode's backing file (a rewrite published
 *    meanwhile re-keys the inode: an old descriptor's file is never taken for the new one).
 *  - dirty_tgid: the one process whose writes are not judged yet (it may read them back),
 *    -1 when several or unknown writers (write-back of mmap pages carries no pid).
 *  - wrl: in-place writes hold it exclusively, reads shared.  A read finds the inode either
 *    judged or dirty only by the reader's own process; otherwise the reader first judges the
 *    content (or waits for the judgment in progress: jlock).
 *  - The kernel's page cache is shared by every descriptor of the inode: a descriptor is
 *    cached (no direct_io) only when that cannot mix processes, i.e. every other process
 *    with a cached descriptor open neither writes nor is joined by a writer.  Everything
 *    else is direct_io, so its reads reach gate_read.  A direct write invalidates the
 *    cached pages others may hold (coherence for shared databases).
 *  - A match is pulled through the descriptor the verdict read: truncated (so no other hard
 *    link keeps it) and unlinked.  A pull that fails is an error of the operation, logged
 *    and audited (fail closed), never a silent success.
 *  - No size limit applies (scan_max_size is accepted for old configs and ignored).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fs/hgfs.h"
#include "hashdb/audit.h"
#include "hashdb/hglog.h"

#define GATE_HASH_CHUNK		(1u << 20)
#define GATE_RETRY_SECS		2	/* a failed verdict of unchanged content is retried after */

static bool gate_applies(struct inode *in)
{
	return hgfs.scan && S_ISREG(in->type);
}

bool gate_dirty(struct inode *in)
{
	return atomic_load(&in->wgen) != atomic_load(&in->sgen);
}

/* The process (thread group) of the thread that sent a request, cached in the handle. */
static pid_t fh_tgid(struct fh *fh, pid_t tid)
{
	pid_t tg;

	if (tid <= 0)
		return -1;
	if (fh && fh->ltid == tid && fh->ltgid > 0)
		return fh->ltgid;
	tg = tgid_of(tid);
	if (tg <= 0)
		return -1;
	if (fh) {
		fh->ltid = tid;
		fh->ltgid = tg;
	}
	return tg;
}

/* --- which descriptors may use the kernel's page cache --- */

/* Put a cached handle in the table: its process's entry, a free one, or the overflow count. */
static bool record_locked(struct inode *in, struct fh *fh, pid_t tid, pid_t tg, bool wr)
{
	int i, free_slot = -1;

	for (i = 0; i < GATE_OPENERS; i++) {
		struct gate_opener *e = &in->op[i];

		if (!e->n) {
			if (free_slot < 0)
				free_slot = i;
			continue;
		}
		if (e->tid == tid || (tg > 0 && e->tgid == tg))
			break;
	}
	if (i == GATE_OPENERS && free_slot >= 0) {
		i = free_slot;
		in->op[i].tid = tid;
		in->op[i].tgid = tg > 0 ? tg : 0;
		in->op[i].n = in->op[i].nw = 0;
	}
	if (i < GATE_OPENERS) {
		in->op[i].n++;
		in->op[i].nw += wr;
		fh->cslot = i;
		return true;
	}
	if (wr)
		return false;	/* a writer must be known by its process */
	in->op_other++;
	fh->cslot = GATE_OPENERS;
	return true;
}

/*
 * Readers among readers never look up a process (the common case: a web server's workers
 * serving one file); a writer, or a reader beside a cached writer, compares processes.
 */
bool gate_open(struct inode *in, struct fh *fh, pid_t tid, bool wr)
{
	struct gate_opener *e;
	pid_t mytg = 0, tids[GATE_OPENERS], tgs[GATE_OPENERS];
	bool cached = true, need = false;
	int i;

	fh->cslot = -1;
	if (!gate_applies(in))
		return false;
	pthread_mutex_lock(&in->lock);
	for (i = 0; i < GATE_OPENERS; i++)
		if (in->op[i].n && (wr || in->op[i].nw) && in->op[i].tid != tid)
			need = true;
	if (wr && in->op_other)
		need = true;
	if (!need) {
		cached = record_locked(in, fh, tid, 0, wr);
		pthread_mutex_unlock(&in->lock);
		return !cached;
	}
	for (i = 0; i < GATE_OPENERS; i++)
		tids[i] = in->op[i].n && !in->op[i].tgid ? in->op[i].tid : 0;
	pthread_mutex_unlock(&in->lock);

	mytg = fh_tgid(fh, tid);
	for (i = 0; i < GATE_OPENERS; i++)
		tgs[i] = tids[i] ? tgid_of(tids[i]) : 0;

	pthread_mutex_lock(&in->lock);
	for (i = 0; i < GATE_OPENERS; i++) {
		e = &in->op[i];
		if (e->n && !e->tgid && tids[i] == e->tid && tgs[i] > 0)
			e->tgid = tgs[i];
	}
	for (i = 0; i < GATE_OPENERS; i++) {
		e = &in->op[i];
		if (!e->n || (mytg > 0 && e->tgid == mytg))
			continue;
		/* an unknown process counts as another one */
		if (wr || e->nw)
			cached = false;
	}
	if (wr && in->op_other)
		cached = false;		/* readers of unknown processes */
	if (cached)
		cached = record_locked(in, fh, tid, mytg, wr);
	pthread_mutex_unlock(&in->lock);
	return !cached;
}

void gate_close(struct inode *in, struct fh *fh)
{
	if (fh->cslot < 0)
		return;
	pthread_mutex_lock(&in->lock);
	if (fh->cslot == GATE_OPENERS) {
		in->op_other--;
	} else {
		in->op[fh->cslot].n--;
		if (fh->writable)
			in->op[fh->cslot].nw--;
	}
	pthread_mutex_unlock(&in->lock);
	fh->cslot = -1;
}

static bool cached_others(struct inode *in, struct fh *fh)
{
	bool any;
	int i;

	pthread_mutex_lock(&in->lock);
	any = in->op_other > 0;
	for (i = 0; i < GATE_OPENERS && !any; i++)
		any = in->op[i].n && i != fh->cslot;
	pthread_mutex_unlock(&in->lock);
	return any;
}

/* --- writes --- */

/* Is fh writing into a staged upload (in no name yet)?  Then nobody else reads its bytes. */
static bool writes_staged(struct fh *fh)
{
	enum upload_state st;

	if (!fh || !fh->up || fh->fd >= 0)
		return false;
	pthread_mutex_lock(&fh->up->lock);
	st = fh->up->state;
	pthread_mutex_unlock(&fh->up->lock);
	return st == UP_STAGED;
}

bool gate_write_begin(struct inode *in, struct fh *fh, fuse_req_t req, uint64_t off)
{
	const struct fuse_ctx *ctx = req ? fuse_req_ctx(req) : NULL;
	pid_t tg;
	int cur;

	/*
	 * A staged upload's writes only count generations (a write racing its verdict is
	 * judged again at close): no lock, no process lookup on the path of every new file.
	 * Published meanwhile, the unset dirty_tgid only makes the gate stricter.
	 */
	if (writes_staged(fh)) {
		atomic_fetch_add(&in->wgen, 1);
		if (!fh->wrote) {
			fh->wrote = true;
			fh->wgen0 = atomic_load(&in->wgen);
		}
		return false;
	}
	tg = fh_tgid(fh, ctx ? ctx->pid : 0);
	pthread_rwlock_wrlock(&in->wrl);
	cur = atomic_load(&in->dirty_tgid);
	while (cur != -1 && cur != tg) {
		int want = (cur == 0 && tg > 0) ? tg : -1;

		if (atomic_compare_exchange_weak(&in->dirty_tgid, &cur, want))
			break;
	}
	if (ctx && ctx->pid > 0)	/* write-back of mmap pages comes as uid 0, pid 0 */
		atomic_store(&in->wuid, ctx->uid + 1u);
	/* A change inside the judged prefix: its saved hash state no longer applies. */
	if (off < atomic_load(&in->resume_size))
		atomic_store(&in->resume_size, 0);
	atomic_fetch_add(&in->wgen, 1);
	if (fh && !fh->wrote) {
		fh->wrote = true;
		fh->wgen0 = atomic_load(&in->wgen);
	}
	return true;
}

void gate_write_end(struct inode *in, struct fh *fh, off_t off, size_t len, bool locked)
{
	atomic_fetch_add(&in->wgen, 1);
	if (!locked)
		return;
	pthread_rwlock_unlock(&in->wrl);
	/*
	 * A direct write passed the page cache: pages others cached hold the old bytes.  Safe
	 * here because a direct write holds no page lock.
	 */
	if (fh && fh->direct && len && hgfs.se && cached_others(in, fh))
		fuse_lowlevel_notify_inval_inode(hgfs.se, inode_to_ino(in), off, (off_t)len);
}

/* --- verdicts --- */

struct inval_job {
	struct inode *in;
};

static void *inval_main(void *arg)
{
	struct inval_job *j = arg;

	if (hgfs.se)
		fuse_lowlevel_notify_inval_inode(hgfs.se, inode_to_ino(j->in), 0, 0);
	inode_unref(j->in);
	free(j);
	return NULL;
}

/*
 * Drop the kernel's cached pages of a pulled file.  Not from the request's thread: a READ of
 * a cached descriptor holds the page lock that the invalidation would wait for.
 */
static void inval_later(struct inode *in)
{
	struct inval_job *j;
	pthread_attr_t a;
	pthread_t t;

	if (!hgfs.se)
		return;
	j = malloc(sizeof(*j));
	if (!j)
		return;
	inode_ref(in);
	j->in = in;
	pthread_attr_init(&a);
	pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &a, inval_main, j) != 0) {
		inode_unref(in);
		free(j);
	}
	pthread_attr_destroy(&a);
}

/* A verdict that could not be made or carried out on visible content: on the record. */
static void audit_failure(const struct verdict_ctx *v, const char *what, int err)
{
	char jpath[2048], fields[2600];

	if (!hgfs.audit)
		return;
	hglog_escape(jpath, sizeof(jpath), v->path ? v->path : "?", 1);
	snprintf(fields, sizeof(fields),
		 "\"kind\":\"%s\",\"verdict\":\"%s\",\"mount\":\"%s\",\"path\":\"%s\","
		 "\"uid\":%u,\"error\":\"%s\"", v->kind, what, hgfs.backing, jpath,
		 (unsigned)v->uid, strerror(-err));
	if (audit_append(hgfs.audit, "hashgatefs", "verdict.failed", fields) < 0) {
		hglog(LOG_ERR, "audit append failed for a failed verdict (%s)", what);
		stat_add(&hgfs.st.audit_errors, 1);
	}
}

/*
 * Remove matched content that is visible: truncate through the descriptor the verdict read
 * (every hard link shows the empty file from then on), then unlink the name if it is still
 * this file.  0, or the -errno of the truncate.
 */
static int pull_fd(struct inode *in, int fd)
{
	struct stat st;
	fuse_ino_t parent = 0;
	char *name = NULL;
	int pfd, ret = 0;

	if (ftruncate(fd, 0) < 0)
		ret = -errno;
	pthread_mutex_lock(&in->lock);
	if (in->name) {
		parent = in->parent;
		name = strdup(in->name);
	}
	pthread_mutex_unlock(&in->lock);
	if (!name)
		return ret;
	pfd = inode_fd(ino_to_inode(parent), O_PATH);
	if (pfd >= 0) {
		if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == in->dev &&
		    st.st_ino == in->ino && S_ISREG(st.st_mode) && unlinkat(pfd, name, 0) < 0 &&
		    !ret)
			ret = -errno;
		inode_fd_put(ino_to_inode(parent), pfd);
	} else if (!ret) {
		ret = pfd;
	}
	free(name);
	return ret;
}

static void verdict_ctx_of(struct inode *in, fuse_req_t req, const struct stat *st,
			   const char *why, struct verdict_ctx *v, char **path)
{
	unsigned wuid = atomic_load(&in->wuid);	/* uid + 1, 0 unknown */
	bool by_reader = strcmp(why, "read") == 0 || strcmp(why, "open") == 0;

	memset(v, 0, sizeof(*v));
	if (req) {
		const struct fuse_ctx *ctx = fuse_req_ctx(req);

		v->uid = ctx->uid;
		v->gid = ctx->gid;
		v->pid = ctx->pid;
	}
	/* A judgment asked for by a reader is about the writer's bytes. */
	if (wuid && (!req || by_reader)) {
		v->uid = wuid - 1;
		v->gid = st->st_gid;
		v->pid = 0;
	}
	if (!v->uid && !v->pid) {
		v->uid = st->st_uid;
		v->gid = st->st_gid;
	}
	v->mode = st->st_mode & 07777;
	v->start = st->st_mtime;
	*path = NULL;
	pthread_mutex_lock(&in->lock);
	if (in->name) {
		fuse_ino_t p = in->parent;
		char *n = strdup(in->name);

		pthread_mutex_unlock(&in->lock);
		if (n)
			*path = path_of(p, n);
		free(n);
	} else {
		pthread_mutex_unlock(&in->lock);
	}
	v->path = *path;
	v->kind = by_reader ? "inplace" : why;
}

/*
 * Exact digests of the whole file behind fd.  A file that only grew since its last clean
 * verdict (appends: logs, mail boxes) resumes from the saved state of the judged prefix
 * instead of re-reading it; *save gets the state at the end, for the next time.
 */
static int hash_for_verdict(struct inode *in, int fd, const struct stat *st,
			    struct digests *d, struct hasher *save, bool *saved)
{
	unsigned need = scan_algos() & HASH_EXACT_MASK;
	uint64_t from = 0, rs = atomic_load(&in->resume_size);
	struct hasher h;
	uint8_t *buf;
	int ret;

	*saved = false;
	buf = malloc(GATE_HASH_CHUNK);
	if (!buf)
		return -ENOMEM;
	if (rs && in->resume && in->rdev == st->st_dev && in->rino == st->st_ino &&
	    (uint64_t)st->st_size >= rs && (in->resume->mask & need) == need &&
	    hasher_copy(&h, in->resume) == 0) {
		/*
		 * A write below rs after this point bumps wgen after zeroing resume_size, so
		 * the verdict made from a stale prefix is never marked as covering it.
		 */
		from = rs;
		hglog(LOG_DEBUG, "verdict hash resumed at byte %llu of %llu",
		      (unsigned long long)rs, (unsigned long long)st->st_size);
	} else {
		ret = hasher_init(&h, need);
		if (ret < 0)
			goto out_buf;
	}
	{
		uint64_t fed = h.size;

		/* Holes of a sparse file are hashed from zeros, not read (hash.c). */
		ret = hasher_update_fd(&h, fd, from, buf, GATE_HASH_CHUNK);
		if (ret < 0)
			goto out_h;
		from += h.size - fed;
	}
	if (from >= GATE_RESUME_MIN && hasher_copy(save, &h) == 0)
		*saved = true;
	ret = hasher_final(&h, d);
	if (ret < 0 && *saved) {
		hasher_release(save);
		*saved = false;
	}
out_h:
	hasher_release(&h);
out_buf:
	free(buf);
	return ret;
}

/*
 * Keep the state of a judged file for its next verdict (jlock held).  A write that comes
 * meanwhile zeroes resume_size before it bumps wgen: setting it first and checking wgen
 * after means a stale state is never left in force.
 */
static void keep_resume(struct inode *in, const struct stat *st, struct hasher *save,
			uint64_t wsnap)
{
	if (!in->resume) {
		in->resume = malloc(sizeof(*in->resume));
		if (!in->resume) {
			hasher_release(save);
			return;
		}
	} else {
		hasher_release(in->resume);
	}
	*in->resume = *save;
	in->rdev = st->st_dev;
	in->rino = st->st_ino;
	atomic_store(&in->resume_size, save->size);
	if (atomic_load(&in->wgen) != wsnap)
		atomic_store(&in->resume_size, 0);
}

void gate_keep_hash(struct inode *in, const struct stat *st, struct hasher *save,
		    uint64_t wsnap)
{
	pthread_mutex_lock(&in->jlock);
	keep_resume(in, st, save, wsnap);
	pthread_mutex_unlock(&in->jlock);
}

/* Mark [.., wsnap] judged if fd is still the inode's file; false when it is not. */
static bool mark_judged(struct inode *in, int fd, uint64_t wsnap)
{
	struct stat st;
	bool same;

	if (fstat(fd, &st) < 0)
		return false;
	pthread_mutex_lock(&in->lock);
	same = st.st_dev == in->dev && st.st_ino == in->ino;
	pthread_mutex_unlock(&in->lock);
	if (!same)
		return false;
	atomic_store(&in->sgen, wsnap);
	if (atomic_load(&in->wgen) == wsnap)
		atomic_store(&in->dirty_tgid, 0);
	return true;
}

/* One verdict over the inode's current backing file; called with jlock held. */
static int judge_locked(struct inode *in, fuse_req_t req, const char *why)
{
	struct fscfg *cfg = NULL;
	struct scan_result r;
	struct verdict_ctx v;
	struct digests d;
	struct hasher save;
	struct stat st;
	enum hg_action act;
	uint64_t wsnap;
	char *path = NULL;
	bool saved = false;
	int fd, ret, tries;

	for (tries = 0; tries < 8; tries++) {
		wsnap = atomic_load(&in->wgen);
		if (atomic_load(&in->sgen) == wsnap)
			return 0;
		/*
		 * The same content failed a moment ago: refuse again without another scan and
		 * audit record, so readers hammering a file that cannot be judged flood nothing.
		 */
		if (atomic_load(&in->failgen) == wsnap &&
		    time(NULL) - atomic_load(&in->failtime) < GATE_RETRY_SECS)
			return -EIO;
		fd = inode_fd(in, O_RDWR);
		if (fd == -ENOENT || fd == -ESTALE) {
			/* The file is gone: no name shows these bytes any more. */
			atomic_store(&in->sgen, wsnap);
			return 0;
		}
		if (fd < 0) {
			struct stat none;

			memset(&none, 0, sizeof(none));
			verdict_ctx_of(in, req, &none, why, &v, &path);
			quarantine_log_error(&v, fd, true);
			audit_failure(&v, "not-judged", fd);
			free(path);
			atomic_store(&in->failgen, wsnap);
			atomic_store(&in->failtime, (int64_t)time(NULL));
			return -EIO;
		}
		if (fstat(fd, &st) < 0) {
			ret = -errno;
			goto out_fd;
		}
		cfg = cfg_get();
		verdict_ctx_of(in, req, &st, why, &v, &path);
		stat_add(&hgfs.st.uploads_scanned, 1);
		memset(&r, 0, sizeof(r));
		ret = hash_for_verdict(in, fd, &st, &d, &save, &saved);
		if (ret == 0)
			ret = scan_fd(fd, &d, &r);
		if (ret < 0) {
			/* Already visible: never destroy customer data over a scan failure. */
			quarantine_log_error(&v, ret, true);
			audit_failure(&v, "not-judged", ret);
			if (scan_on_error(&r, &cfg->c) == ON_ERROR_ALLOW) {
				mark_judged(in, fd, wsnap);
				ret = 0;
			} else {
				ret = -EIO;
			}
			goto out_fd;
		}
		if (!r.match) {
			if (mark_judged(in, fd, wsnap)) {
				quarantine_log_clean(&v, &r);
				if (saved && atomic_load(&in->wgen) == wsnap &&
				    save.size == (uint64_t)st.st_size) {
					keep_resume(in, &st, &save, wsnap);
					saved = false;
				}
			}
			ret = 0;
		} else {
			/* the action decides here: log lets it stay, anything else pulls */
			(void)quarantine_match(&v, fd, &r, &act);
			if (act == ACTION_LOG) {
				mark_judged(in, fd, wsnap);
				ret = 0;
			} else {
				int pret = pull_fd(in, fd);

				atomic_store(&in->pullgen, atomic_load(&in->wgen));
				atomic_store(&in->sgen, wsnap);
				if (pret < 0) {
					hglog(LOG_ERR, "pull of matched content failed: %s",
					      strerror(-pret));
					quarantine_log_error(&v, pret, true);
					audit_failure(&v, "pull-failed", pret);
					ret = -EIO;
				} else {
					ret = -EACCES;
				}
				inval_later(in);
			}
		}
out_fd:
		if (ret == -EIO) {
			atomic_store(&in->failgen, wsnap);
			atomic_store(&in->failtime, (int64_t)time(NULL));
		}
		if (saved)
			hasher_release(&save);
		saved = false;
		inode_fd_put(in, fd);
		free(path);
		path = NULL;
		if (cfg)
			cfg_put(cfg);
		cfg = NULL;
		if (ret < 0 || atomic_load(&in->sgen) == atomic_load(&in->wgen))
			return ret;
		/* written meanwhile, or the inode moved to another file: judge again */
	}
	return ret;
}

int gate_judge(struct inode *in, fuse_req_t req, const char *why)
{
	int ret;

	if (!gate_applies(in) || !gate_dirty(in))
		return 0;
	pthread_mutex_lock(&in->jlock);
	ret = judge_locked(in, req, why);
	pthread_mutex_unlock(&in->jlock);
	return ret;
}

/* May the process of tid see the inode's current bytes without a verdict? */
static bool may_see(struct inode *in, struct fh *fh, pid_t tid)
{
	bool staged;
	int d;

	if (!gate_dirty(in))
		return true;
	/*
	 * A staged upload's bytes are in no name: its own process reads them (hg_open lets
	 * nobody else in) and staging.c judges them.  Others read the replaced file.
	 */
	pthread_mutex_lock(&in->lock);
	staged = in->up != NULL;
	pthread_mutex_unlock(&in->lock);
	if (staged)
		return true;
	d = atomic_load(&in->dirty_tgid);
	return d > 0 && fh_tgid(fh, tid) == d;
}

bool gate_would_judge(struct inode *in, struct fh *fh, pid_t tid)
{
	return gate_applies(in) && !may_see(in, fh, tid);
}

int gate_open_check(struct inode *in, pid_t tid, fuse_req_t req)
{
	if (!gate_applies(in) || may_see(in, NULL, tid))
		return 0;
	return gate_judge(in, req, "open");
}

int gate_read_begin(struct inode *in, struct fh *fh, fuse_req_t req)
{
	pid_t tid = fuse_req_ctx(req)->pid;
	int ret, tries;

	if (!gate_applies(in))
		return 0;
	for (tries = 0;; tries++) {
		pthread_rwlock_rdlock(&in->wrl);
		if (may_see(in, fh, tid))
			return 0;
		if (tries >= 3) {
			/* A writer that keeps writing: judge with its writes held back. */
			ret = gate_judge(in, req, "read");
			if (ret == 0 && may_see(in, fh, tid))
				return 0;
			pthread_rwlock_unlock(&in->wrl);
			return ret < 0 ? ret : -EAGAIN;
		}
		pthread_rwlock_unlock(&in->wrl);
		ret = gate_judge(in, req, "read");
		if (ret < 0)
			return ret;
	}
}

void gate_read_end(struct inode *in)
{
	if (gate_applies(in))
		pthread_rwlock_unlock(&in->wrl);
}

int gate_close_verdict(struct inode *in, struct fh *fh, fuse_req_t req, const char *why)
{
	int ret;

	if (!fh->wrote || !gate_applies(in))
		return 0;
	ret = gate_judge(in, req, why);
	if (ret == 0 && fh->wgen0 && atomic_load(&in->pullgen) >= fh->wgen0)
		ret = -EACCES;	/* what this handle wrote was pulled by an earlier verdict */
	return ret;
}
