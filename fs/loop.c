/*
 * loop.c - the FUSE request loop: a pool of threads in which, while requests come one at a
 * time (one client working through a tree: tar, cp -r, rsync, an unzip in PHP), the same
 * thread reads and serves every one of them.
 *
 * Why not libfuse's fuse_session_loop_mt: it keeps every idle worker blocked in read() on
 * /dev/fuse, and the kernel hands each request to the worker that has waited longest, so
 * consecutive requests of one client each wake a different, cold thread, mostly on another
 * CPU.  Measured with a loop of open/write 4 KiB/close (5000 files, loop ext4, 2 vCPUs):
 * 318-341 us per file with libfuse's pool, 221-271 us with one thread (-s).  One thread
 * alone would let a single slow request (a cold directory, a stuck backing filesystem) hold
 * up every tenant, so this loop is one thread only while that costs nobody anything:
 *  - Normally exactly one thread reads /dev/fuse.  A thread that has served its request
 *    reads again if nobody else is reading, and otherwise goes idle.
 *  - A thread that takes a request while no other thread is reading checks (poll, no wait)
 *    whether another request is already queued; if so it brings in an idle thread (or starts
 *    one, up to max_threads) to read it before serving its own.  Concurrent clients are
 *    served in parallel as with libfuse's pool.
 *  - A watchdog (the thread that called loop_run) looks every LOOP_TICK_US while requests
 *    are being served: when nobody reads and every busy thread has been on its request for
 *    more than LOOP_STUCK_US, it brings in a reader.  A request that arrives while the only
 *    thread is stuck waits about that long at most; heavy work (hashing what the stream did
 *    not, image decoding, quarantine) runs on the verdict pool anyway (verdictq.c).
 *  - Once requests have queued up, the pool stays "hot" for LOOP_HOT_NS: every thread reads,
 *    as in libfuse's pool, so under concurrent load nobody waits for a hand-off.
 *  - A thread that replied and goes on hashing a large write from its buffer (hashq.c)
 *    calls loop_detach, so the client's next write is read meanwhile.
 *  - FORGET and INTERRUPT bring in nobody: bursts of them must not grow the pool.
 * Shutdown: a thread whose read ends (unmount) or that sees the session exited stops the
 * pool; the watchdog also notices an exit requested by a signal delivered elsewhere,
 * cancels the threads still blocked in read (cancellation is enabled only there, as in
 * libfuse's loop, so no request is cut off while served) and joins every thread.
 *
 * Thread-safety: the counters and the worker list are under l->lock; a worker's `since` is
 * an atomic the watchdog reads without it.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs/hgfs.h"
#include "fs/loop.h"
#include "hashdb/hglog.h"

#define LOOP_TICK_US		1000
#define LOOP_STUCK_US		2000
#define LOOP_IDLE_TICKS		200	/* ticks without a busy thread before the watchdog naps */
#define LOOP_NAP_MS		500	/* a napping watchdog still notices a signalled exit */
#define LOOP_DEF_THREADS	10
#define LOOP_HOT_NS		100000000ull	/* after a hand-off, everybody reads for 100 ms */

/* FUSE opcodes that need no reply and must not grow the pool (linux/fuse.h). */
#define OP_FORGET		2
#define OP_INTERRUPT		36
#define OP_BATCH_FORGET		42

struct worker {
	struct loop *l;
	pthread_t thread;
	struct fuse_buf buf;		/* libfuse allocates .mem on the first read */
	_Atomic uint64_t since;		/* ns the current request started, 0 when not serving */
	struct worker *next;
};

struct loop {
	struct fuse_session *se;
	int fd;
	pthread_mutex_t lock;
	pthread_cond_t idle_cond;	/* idle workers wait for a token */
	pthread_cond_t wd_cond;		/* a napping watchdog waits for work */
	unsigned nthreads, max_threads;
	unsigned readers;		/* in (or about to enter) a read of /dev/fuse */
	unsigned busy;			/* serving a request */
	unsigned idle;			/* waiting on idle_cond */
	unsigned tokens;		/* idle workers asked to become readers */
	uint64_t hot_until;		/* ns: until then a thread that served reads again */
	bool stop;
	bool wd_napping;
	int error;
	struct worker *workers;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *worker_main(void *arg);

static struct loop *_Atomic active;	/* the running loop, for loop_detach */

/* Start one more worker; l->lock held.  It goes straight to reading, without a token. */
static int start_worker_locked(struct loop *l)
{
	struct worker *w = calloc(1, sizeof(*w));
	int err;

	if (!w)
		return -ENOMEM;
	w->l = l;
	/* Default attributes: served requests keep little on the stack, as in libfuse's loop. */
	err = pthread_create(&w->thread, NULL, worker_main, w);
	if (err)
		goto out_free;
	w->next = l->workers;
	l->workers = w;
	l->nthreads++;
	return 0;

out_free:
	free(w);
	return -err;
}

/*
 * Get one more thread reading /dev/fuse, if the pool allows; l->lock held.  The pool turns
 * "hot" for LOOP_HOT_NS: requests are queueing, so every idle thread is sent to read and
 * threads that finish a request keep reading, as in libfuse's pool (measured with
 * tests/bench/50-neighbour.sh: bringing readers in one at a time, each through a wake-up of
 * its own, left a victim's requests queued behind an attacker's at load).
 */
static void want_reader_locked(struct loop *l)
{
	uint64_t now = now_ns();
	bool was_calm = now >= l->hot_until;

	if (l->stop)
		return;		/* loop_run walks the worker list without the lock then */
	l->hot_until = now + LOOP_HOT_NS;
	if (was_calm && l->idle > l->tokens) {
		l->tokens = l->idle;
		pthread_cond_broadcast(&l->idle_cond);
		return;
	}
	if (l->idle > l->tokens) {
		l->tokens++;
		pthread_cond_signal(&l->idle_cond);
		return;
	}
	if (l->nthreads < l->max_threads && start_worker_locked(l) < 0)
		hglog(LOG_WARNING, "request loop: cannot start another thread (%u running)",
		      l->nthreads);
}

static void stop_locked(struct loop *l, int err)
{
	if (err && !l->error)
		l->error = err;
	l->stop = true;
	pthread_cond_broadcast(&l->idle_cond);
	pthread_cond_signal(&l->wd_cond);
}

/* Is another request waiting to be read?  Errors count as no: the watchdog still looks. */
static bool request_queued(const struct loop *l)
{
	struct pollfd p = { .fd = l->fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1 && (p.revents & POLLIN);
}

static bool is_quiet_opcode(const struct fuse_buf *b)
{
	const uint32_t *hdr = b->mem;	/* struct fuse_in_header: len, opcode, ... */

	if (b->flags & FUSE_BUF_IS_FD)
		return false;
	return hdr[1] == OP_FORGET || hdr[1] == OP_BATCH_FORGET || hdr[1] == OP_INTERRUPT;
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct loop *l = w->l;
	bool fresh = true;	/* a new worker was started to read */
	int res;

	pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);
	pthread_mutex_lock(&l->lock);
	for (;;) {
		if (fresh) {
			fresh = false;
		} else if (l->readers > 0 && now_ns() >= l->hot_until) {
			/* Someone reads already and nothing queues up: wait until asked. */
			l->idle++;
			while (!l->stop && l->tokens == 0)
				pthread_cond_wait(&l->idle_cond, &l->lock);
			l->idle--;
			if (l->stop)
				break;
			l->tokens--;
		}
		if (l->stop)
			break;
		l->readers++;
		pthread_mutex_unlock(&l->lock);

		pthread_setcancelstate(PTHREAD_CANCEL_ENABLE, NULL);
		res = fuse_session_receive_buf(l->se, &w->buf);
		pthread_setcancelstate(PTHREAD_CANCEL_DISABLE, NULL);

		pthread_mutex_lock(&l->lock);
		l->readers--;
		if (res == -EINTR || res == -EAGAIN)
			continue;
		if (res <= 0 || fuse_session_exited(l->se)) {
			stop_locked(l, res < 0 ? res : 0);
			break;
		}
		if (l->readers == 0 && !is_quiet_opcode(&w->buf)) {
			bool more;

			pthread_mutex_unlock(&l->lock);
			more = request_queued(l);
			pthread_mutex_lock(&l->lock);
			if (more && l->readers == 0)
				want_reader_locked(l);
		}
		l->busy++;
		if (l->wd_napping) {
			l->wd_napping = false;
			pthread_cond_signal(&l->wd_cond);
		}
		atomic_store(&w->since, now_ns());
		pthread_mutex_unlock(&l->lock);

		fuse_session_process_buf(l->se, &w->buf);

		atomic_store(&w->since, 0);
		pthread_mutex_lock(&l->lock);
		l->busy--;
		if (fuse_session_exited(l->se)) {
			stop_locked(l, 0);
			break;
		}
	}
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

void loop_detach(void)
{
	struct loop *l = atomic_load(&active);

	if (!l)
		return;
	pthread_mutex_lock(&l->lock);
	if (l->readers == 0)
		want_reader_locked(l);
	pthread_mutex_unlock(&l->lock);
}

/* Is every busy thread stuck on its request?  l->lock held. */
static bool all_busy_stuck_locked(struct loop *l, uint64_t now)
{
	struct worker *w;
	bool any = false;

	for (w = l->workers; w; w = w->next) {
		uint64_t s = atomic_load(&w->since);

		if (!s)
			continue;
		if (now - s < (uint64_t)LOOP_STUCK_US * 1000)
			return false;
		any = true;
	}
	return any;
}

static void add_timeout(struct timespec *ts, long us)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_nsec += us * 1000;
	while (ts->tv_nsec >= 1000000000) {
		ts->tv_nsec -= 1000000000;
		ts->tv_sec++;
	}
}

static void watchdog(struct loop *l)
{
	unsigned quiet = 0;
	struct timespec ts;

	pthread_mutex_lock(&l->lock);
	while (!l->stop) {
		if (fuse_session_exited(l->se)) {
			stop_locked(l, 0);
			break;
		}
		if (l->busy == 0 && quiet >= LOOP_IDLE_TICKS) {
			l->wd_napping = true;	/* the next request wakes it */
			add_timeout(&ts, LOOP_NAP_MS * 1000L);
		} else {
			add_timeout(&ts, LOOP_TICK_US);
		}
		pthread_cond_timedwait(&l->wd_cond, &l->lock, &ts);
		l->wd_napping = false;
		quiet = l->busy ? 0 : (quiet < LOOP_IDLE_TICKS ? quiet + 1 : quiet);
		if (l->readers == 0 && l->busy && all_busy_stuck_locked(l, now_ns()))
			want_reader_locked(l);
	}
	pthread_mutex_unlock(&l->lock);
}

int loop_run(struct fuse_session *se, unsigned max_threads)
{
	struct loop l = { .se = se, .fd = fuse_session_fd(se) };
	pthread_condattr_t ca;
	struct worker *w, *next;
	int ret;

	l.max_threads = max_threads ? max_threads : LOOP_DEF_THREADS;
	pthread_mutex_init(&l.lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&l.wd_cond, &ca);
	pthread_cond_init(&l.idle_cond, NULL);
	pthread_condattr_destroy(&ca);

	pthread_mutex_lock(&l.lock);
	ret = start_worker_locked(&l);
	pthread_mutex_unlock(&l.lock);
	if (ret == 0) {
		atomic_store(&active, &l);
		watchdog(&l);
	}

	/*
	 * Stopping: idle workers were woken by stop_locked; a reader blocked in read() (an exit
	 * requested by a signal that another thread took) is cancelled there, the only place it
	 * can be; busy ones finish their request first.
	 */
	pthread_mutex_lock(&l.lock);
	for (w = l.workers; w; w = w->next)
		pthread_cancel(w->thread);
	pthread_mutex_unlock(&l.lock);
	for (w = l.workers; w; w = next) {
		next = w->next;
		pthread_join(w->thread, NULL);
		free(w->buf.mem);
		free(w);
	}
	atomic_store(&active, NULL);	/* no request thread left to call loop_detach */
	if (ret == 0)
		ret = l.error;
	pthread_cond_destroy(&l.idle_cond);
	pthread_cond_destroy(&l.wd_cond);
	pthread_mutex_destroy(&l.lock);
	fuse_session_reset(se);
	return ret;
}
