/*
 * limits.c - per-uid limits and the open-files budget of hashgatefs: no tenant can exhaust
 * the daemon's descriptors or stage unbounded uploads at the expense of the others.
 *
 * At start the soft RLIMIT_NOFILE is raised to the hard limit (the systemd unit sets
 * LimitNOFILE).  fd_reserve descriptors of it are kept for the daemon's own work (the
 * directory fd cache, mount fds, database reloads, quarantine, audit log, the temporary fds
 * of requests such as lookup and stat that hold nothing); the rest is the budget that
 * long-lived handles draw from.  A unit of the budget is taken before the descriptor is
 * opened and given back after it is closed, so the budget is never overshot:
 *  - every open file or directory handle (create, open, opendir) takes one unit;
 *  - without file handles, an open inode's own descriptor (inode_open_pin, one per inode
 *    while open) takes one more, from the uid whose open made it (refused: no such fd, and
 *    the inode is reopened by name meanwhile);
 *  - every staged upload takes one more (its O_TMPFILE), held until the upload is freed, and
 *    one upload slot, held until its verdict (the kernel sends RELEASE after close() has
 *    returned: counting slots until then made fast sequential uploaders hit the limit).
 * Per uid: at most uid_max_open units (0 = a quarter of the budget, so no single uid can
 * take the mount down), at most uid_max_uploads staged uploads, and at most
 * uid_max_upload_bytes bytes of staged uploads (their apparent size: a sparse file's holes
 * cost hashing time too).  Over a per-uid limit only that uid's NEW opens and creates fail,
 * with EMFILE; its writes past the byte limit fail with EDQUOT.  When all uids together
 * hold the whole budget, new opens fail with ENFILE; requests that hold no descriptor
 * (lookup, stat, rename, ...) and the daemon's own work keep the reserve.
 *
 * Refusals are logged once per uid per LIMITS_LOG_INTERVAL seconds, with the number of
 * refusals not logged since.
 *
 * Thread-safety: every create and open passes here several times, so the common path takes
 * no lock.  Per-uid counters and the global unit count are atomics, raised by compare-and-
 * swap only while under their limit (never overshot, never left raised by a refusal).  The
 * table of uids is read without a lock: entries are only ever pushed at a bucket's head
 * (under lim_lock, published with a release store) and stay for the daemon's lifetime (a few
 * dozen bytes per uid that ever held something).  An upload's own byte count (*acct) is an
 * atomic too; UINT64_MAX marks it done, so a write racing the verdict accounts nothing.
 * lim_lock also serialises limits_configure and the refusal log bookkeeping.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "fs/limits.h"
#include "hashdb/hglog.h"

#define LIMITS_LOG_INTERVAL	10
#define LIMITS_BUCKETS		256
#define LIMITS_MIN_BUDGET	64

struct uidlim {
	uid_t uid;
	atomic_uint_fast64_t units;	/* open handles + staged uploads */
	atomic_uint_fast64_t uploads;
	atomic_uint_fast64_t bytes;
	time_t logged;			/* last refusal logged; lim_lock */
	uint64_t quiet;			/* refusals since then, not logged; lim_lock */
	struct uidlim *next;		/* immutable once published */
};

static pthread_mutex_t lim_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(struct uidlim *) table[LIMITS_BUCKETS];
static uint64_t nofile = 1024;		/* lim_lock */
static atomic_uint_fast64_t budget = 512;
static atomic_uint_fast64_t max_units = 128, max_uploads = 128, max_bytes = UINT64_MAX;
static atomic_uint_fast64_t held_units;

uint64_t limits_init(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return nofile;
	if (rl.rlim_max == RLIM_INFINITY)
		rl.rlim_max = 1 << 20;	/* the kernel's default nr_open */
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur < rl.rlim_max) {
		struct rlimit want = { rl.rlim_max, rl.rlim_max };

		if (setrlimit(RLIMIT_NOFILE, &want) == 0)
			rl.rlim_cur = rl.rlim_max;
		else
			hglog(LOG_WARNING, "cannot raise the open files limit from %llu to %llu: %s",
			      (unsigned long long)rl.rlim_cur, (unsigned long long)rl.rlim_max,
			      strerror(errno));
	}
	pthread_mutex_lock(&lim_lock);
	nofile = rl.rlim_cur;
	pthread_mutex_unlock(&lim_lock);
	return rl.rlim_cur;
}

void limits_configure(const struct hg_config *c)
{
	uint64_t r = (uint64_t)c->fd_reserve, b, u, n;

	pthread_mutex_lock(&lim_lock);
	n = nofile;
	b = n > r + LIMITS_MIN_BUDGET ? n - r : n / 2;
	if (b == n / 2)
		r = n - b;
	u = c->uid_max_open > 0 ? (uint64_t)c->uid_max_open : b / 4;
	if (u < 8)
		u = 8;
	atomic_store(&budget, b);
	atomic_store(&max_units, u);
	atomic_store(&max_uploads, c->uid_max_uploads > 0 ? (uint64_t)c->uid_max_uploads
							  : UINT64_MAX);
	atomic_store(&max_bytes, c->uid_max_upload_bytes ? c->uid_max_upload_bytes : UINT64_MAX);
	pthread_mutex_unlock(&lim_lock);
	if (r != (uint64_t)c->fd_reserve)
		hglog(LOG_WARNING, "open files limit %llu leaves no room for fd_reserve=%d: "
		      "reserving %llu, raise LimitNOFILE", (unsigned long long)n,
		      c->fd_reserve, (unsigned long long)r);
	hglog(LOG_INFO, "open files: limit %llu, reserve %llu, budget %llu; per uid %llu "
	      "handles, %s uploads", (unsigned long long)n, (unsigned long long)r,
	      (unsigned long long)b, (unsigned long long)u,
	      c->uid_max_uploads > 0 ? "limited" : "unlimited");
}

/* The entry of uid, or NULL when it has none yet.  No lock (see the top). */
static struct uidlim *find(uid_t uid)
{
	struct uidlim *e = atomic_load_explicit(&table[uid % LIMITS_BUCKETS],
						memory_order_acquire);

	while (e && e->uid != uid)
		e = e->next;
	return e;
}

/* The entry of uid, created on first use; NULL when out of memory. */
static struct uidlim *entry(uid_t uid)
{
	struct uidlim *e = find(uid);

	if (e)
		return e;
	pthread_mutex_lock(&lim_lock);
	e = find(uid);		/* another thread may have made it meanwhile */
	if (!e) {
		e = calloc(1, sizeof(*e));
		if (e) {
			e->uid = uid;
			e->next = atomic_load_explicit(&table[uid % LIMITS_BUCKETS],
						       memory_order_relaxed);
			atomic_store_explicit(&table[uid % LIMITS_BUCKETS], e,
					      memory_order_release);
		}
	}
	pthread_mutex_unlock(&lim_lock);
	return e;
}

/* Add one to *c unless it already holds max: false (nothing changed) when it does. */
static bool inc_below(atomic_uint_fast64_t *c, uint64_t max, uint64_t *seen)
{
	uint_fast64_t cur = atomic_load(c);

	do {
		*seen = cur;
		if (cur >= max)
			return false;
	} while (!atomic_compare_exchange_weak(c, &cur, cur + 1));
	return true;
}

/* Count a refusal of uid (err, for what) and log it if its interval has passed. */
static int refuse(struct uidlim *e, uid_t uid, int err, const char *what, uint64_t held,
		  uint64_t max)
{
	time_t now = time(NULL);
	uint64_t quiet = 0;
	bool log = false;

	pthread_mutex_lock(&lim_lock);
	if (now - e->logged >= LIMITS_LOG_INTERVAL) {
		log = true;
		quiet = e->quiet;
		e->quiet = 0;
		e->logged = now;
	} else {
		e->quiet++;
	}
	pthread_mutex_unlock(&lim_lock);
	if (log)
		hglog(LOG_WARNING, "limit uid=%u what=%s held=%" PRIu64 " max=%" PRIu64
		      " error=%s: refused (%" PRIu64 " more refusals for this uid not logged in "
		      "the last %d s)", (unsigned)uid, what, held, max,
		      err == -EMFILE ? "EMFILE" : err == -ENFILE ? "ENFILE" : "EDQUOT", quiet,
		      LIMITS_LOG_INTERVAL);
	return err;
}

/* Take one budget unit (and an upload slot when upload) for uid. */
static int take(uid_t uid, bool upload)
{
	struct uidlim *e = entry(uid);
	uint64_t seen, max;

	if (!e)
		return -ENOMEM;
	if (upload && !inc_below(&e->uploads, max = atomic_load(&max_uploads), &seen))
		return refuse(e, uid, -EMFILE, "uploads", seen, max);
	if (!inc_below(&e->units, max = atomic_load(&max_units), &seen)) {
		if (upload)
			atomic_fetch_sub(&e->uploads, 1);
		return refuse(e, uid, -EMFILE, "open_files", seen, max);
	}
	if (!inc_below(&held_units, max = atomic_load(&budget), &seen)) {
		atomic_fetch_sub(&e->units, 1);
		if (upload)
			atomic_fetch_sub(&e->uploads, 1);
		return refuse(e, uid, -ENFILE, "fd_budget", seen, max);
	}
	return 0;
}

/* Give back one budget unit of uid (upload slots and bytes: limits_upload_done). */
static void give(uid_t uid)
{
	struct uidlim *e = find(uid);

	if (e) {
		atomic_fetch_sub(&e->units, 1);
		atomic_fetch_sub(&held_units, 1);
	}
}

int limits_open_take(uid_t uid)
{
	return take(uid, false);
}

void limits_open_give(uid_t uid)
{
	give(uid);
}

int limits_upload_begin(uid_t uid)
{
	return take(uid, true);
}

void limits_upload_done(uid_t uid, _Atomic uint64_t *acct)
{
	/* done: limits_upload_grow accounts nothing more */
	uint64_t had = atomic_exchange(acct, UINT64_MAX);
	struct uidlim *e;

	if (had == UINT64_MAX)
		return;
	e = find(uid);
	if (e) {
		atomic_fetch_sub(&e->uploads, 1);
		atomic_fetch_sub(&e->bytes, had);
	}
}

void limits_upload_end(uid_t uid, _Atomic uint64_t *acct)
{
	limits_upload_done(uid, acct);
	give(uid);
}

int limits_upload_grow(uid_t uid, _Atomic uint64_t *acct, uint64_t end)
{
	struct uidlim *e = NULL;
	uint64_t cur = atomic_load(acct), add, b, max;

	for (;;) {
		if (cur == UINT64_MAX || end <= cur)
			return 0;	/* done, or no growth */
		if (!e && !(e = find(uid)))
			return 0;	/* not a counted upload */
		add = end - cur;
		max = atomic_load(&max_bytes);
		b = atomic_load(&e->bytes);
		do {
			if (b + add > max || b + add < b)
				return refuse(e, uid, -EDQUOT, "upload_bytes", b + add, max);
		} while (!atomic_compare_exchange_weak(&e->bytes, &b, b + add));
		/* Claim the growth; if the upload moved meanwhile (grew, or done), undo. */
		if (atomic_compare_exchange_strong(acct, &cur, end))
			return 0;
		atomic_fetch_sub(&e->bytes, add);
	}
}
