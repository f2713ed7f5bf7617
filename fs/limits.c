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
 * refusals not logged since.  Thread-safe: one mutex around the table of uids (entries stay
 * for the daemon's lifetime: a few dozen bytes per uid that ever held something).
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
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
	uint64_t units;			/* open handles + staged uploads */
	uint64_t uploads;
	uint64_t bytes;
	time_t logged;			/* last refusal logged */
	uint64_t quiet;			/* refusals since then, not logged */
	struct uidlim *next;
};

static pthread_mutex_t lim_lock = PTHREAD_MUTEX_INITIALIZER;
static struct uidlim *table[LIMITS_BUCKETS];
static uint64_t nofile = 1024, reserve = 512, budget = 512;
static uint64_t max_units = 128, max_uploads = 128, max_bytes;
static uint64_t held_units;

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
	uint64_t r = (uint64_t)c->fd_reserve, b, u;

	pthread_mutex_lock(&lim_lock);
	b = nofile > r + LIMITS_MIN_BUDGET ? nofile - r : nofile / 2;
	if (b == nofile / 2)
		r = nofile - b;
	u = c->uid_max_open > 0 ? (uint64_t)c->uid_max_open : b / 4;
	if (u < 8)
		u = 8;
	reserve = r;
	budget = b;
	max_units = u;
	max_uploads = c->uid_max_uploads > 0 ? (uint64_t)c->uid_max_uploads : UINT64_MAX;
	max_bytes = c->uid_max_upload_bytes ? c->uid_max_upload_bytes : UINT64_MAX;
	pthread_mutex_unlock(&lim_lock);
	if (r != (uint64_t)c->fd_reserve)
		hglog(LOG_WARNING, "open files limit %llu leaves no room for fd_reserve=%d: "
		      "reserving %llu, raise LimitNOFILE", (unsigned long long)nofile,
		      c->fd_reserve, (unsigned long long)r);
	hglog(LOG_INFO, "open files: limit %llu, reserve %llu, budget %llu; per uid %llu "
	      "handles, %s uploads", (unsigned long long)nofile, (unsigned long long)r,
	      (unsigned long long)b, (unsigned long long)u,
	      c->uid_max_uploads > 0 ? "limited" : "unlimited");
}

/* The entry of uid, created on first use; NULL when out of memory.  Under lim_lock. */
static struct uidlim *entry(uid_t uid)
{
	struct uidlim **pp = &table[uid % LIMITS_BUCKETS], *e;

	for (e = *pp; e; e = e->next)
		if (e->uid == uid)
			return e;
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	e->uid = uid;
	e->next = *pp;
	*pp = e;
	return e;
}

/*
 * Count a refusal of uid (err, for what) and log it if its interval has passed.  Called with
 * lim_lock held; releases it.
 */
static int refuse(struct uidlim *e, uid_t uid, int err, const char *what, uint64_t held,
		  uint64_t max)
{
	time_t now = time(NULL);
	uint64_t quiet = 0;
	bool log = false;

	if (e && now - e->logged >= LIMITS_LOG_INTERVAL) {
		log = true;
		quiet = e->quiet;
		e->quiet = 0;
		e->logged = now;
	} else if (e) {
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
	struct uidlim *e;

	pthread_mutex_lock(&lim_lock);
	e = entry(uid);
	if (!e) {
		pthread_mutex_unlock(&lim_lock);
		return -ENOMEM;
	}
	if (upload && e->uploads >= max_uploads)
		return refuse(e, uid, -EMFILE, "uploads", e->uploads, max_uploads);
	if (e->units >= max_units)
		return refuse(e, uid, -EMFILE, "open_files", e->units, max_units);
	if (held_units >= budget)
		return refuse(e, uid, -ENFILE, "fd_budget", held_units, budget);
	e->units++;
	held_units++;
	if (upload) {
		e->uploads++;
	}
	pthread_mutex_unlock(&lim_lock);
	return 0;
}

/* Give back one budget unit of uid (upload slots and bytes: limits_upload_done). */
static void give(uid_t uid)
{
	struct uidlim *e;

	pthread_mutex_lock(&lim_lock);
	for (e = table[uid % LIMITS_BUCKETS]; e && e->uid != uid; e = e->next)
		;
	if (e) {
		e->units--;
		held_units--;
	}
	pthread_mutex_unlock(&lim_lock);
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

void limits_upload_done(uid_t uid, uint64_t *acct)
{
	struct uidlim *e;

	pthread_mutex_lock(&lim_lock);
	if (*acct != UINT64_MAX) {
		for (e = table[uid % LIMITS_BUCKETS]; e && e->uid != uid; e = e->next)
			;
		if (e) {
			e->uploads--;
			e->bytes -= *acct;
		}
		*acct = UINT64_MAX;	/* done: limits_upload_grow accounts nothing more */
	}
	pthread_mutex_unlock(&lim_lock);
}

void limits_upload_end(uid_t uid, uint64_t *acct)
{
	limits_upload_done(uid, acct);
	give(uid);
}

int limits_upload_grow(uid_t uid, uint64_t *acct, uint64_t end)
{
	struct uidlim *e;
	uint64_t add;

	pthread_mutex_lock(&lim_lock);
	if (end <= *acct) {
		pthread_mutex_unlock(&lim_lock);
		return 0;
	}
	add = end - *acct;
	for (e = table[uid % LIMITS_BUCKETS]; e && e->uid != uid; e = e->next)
		;
	if (!e) {
		pthread_mutex_unlock(&lim_lock);
		return 0;	/* not a counted upload */
	}
	if (e->bytes + add > max_bytes || e->bytes + add < e->bytes)
		return refuse(e, uid, -EDQUOT, "upload_bytes", e->bytes + add, max_bytes);
	e->bytes += add;
	*acct = end;
	pthread_mutex_unlock(&lim_lock);
	return 0;
}
