/*
 * verdictq.c - the verdict worker pool: heavy verdict work (hashing what the stream did not,
 * PDQ decoding, quarantine copies, judging in-place content before another process reads it)
 * runs here, never on the libfuse threads that serve everybody's lookups, stats and reads.
 * The operation that asked for it (FLUSH, RELEASE, OPEN, READ) is finished and replied to
 * from the worker.
 *
 * Fairness: one queue per uid, served round robin, and no uid runs jobs on more than
 * nthreads - 1 workers at once, so a tenant who floods the pool with huge verdicts never
 * holds every worker: the next job of another uid starts when a worker frees up, not after
 * the flood.  Small verdicts (a few KiB, not an image) stay on the calling thread: a thread
 * hand-off would cost more than the work (see ops.c, verdict_heavy).
 *
 * Thread-safety: vq_submit may be called from any thread once vq_start returned; vq_stop
 * runs what is still queued on the calling thread, so no request is left unanswered.
 */
#include <errno.h>
#include <stdlib.h>
#include <unistd.h>

#include "fs/hgfs.h"
#include "hashdb/hglog.h"

#define VQ_MAX_THREADS	16

struct vq_user {
	uid_t uid;
	struct vq_job *head, *tail;
	unsigned running;
	struct vq_user *next;
};

static pthread_mutex_t vq_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t vq_cond = PTHREAD_COND_INITIALIZER;
static struct vq_user *users;		/* users with queued or running jobs */
static struct vq_user *rr;		/* where the next round-robin scan starts */
static unsigned nthreads, cap;
static pthread_t threads[VQ_MAX_THREADS];
static bool running, stopping;

static struct vq_user *user_get(uid_t uid)
{
	struct vq_user *u;

	for (u = users; u; u = u->next)
		if (u->uid == uid)
			return u;
	u = calloc(1, sizeof(*u));
	if (!u)
		return NULL;
	u->uid = uid;
	u->next = users;
	users = u;
	return u;
}

static void user_drop_if_idle(struct vq_user *u)
{
	struct vq_user **pp;

	if (u->head || u->running)
		return;
	for (pp = &users; *pp && *pp != u; pp = &(*pp)->next)
		;
	if (*pp)
		*pp = u->next;
	if (rr == u)
		rr = u->next;
	free(u);
}

/* The next job by round robin over users below the cap, or NULL; vq_lock held. */
static struct vq_job *pick(struct vq_user **owner)
{
	struct vq_user *start = rr ? rr : users, *u = start;
	struct vq_job *j;

	if (!u)
		return NULL;
	do {
		if (u->head && u->running < cap) {
			j = u->head;
			u->head = j->next;
			if (!u->head)
				u->tail = NULL;
			u->running++;
			rr = u->next;
			*owner = u;
			return j;
		}
		u = u->next ? u->next : users;
	} while (u != start);
	return NULL;
}

static void *worker(void *arg)
{
	struct vq_user *u;
	struct vq_job *j;

	(void)arg;
	hashq_bulk_thread();
	pthread_mutex_lock(&vq_lock);
	for (;;) {
		j = pick(&u);
		if (!j) {
			if (stopping)
				break;
			pthread_cond_wait(&vq_cond, &vq_lock);
			continue;
		}
		pthread_mutex_unlock(&vq_lock);
		j->run(j);		/* frees j */
		pthread_mutex_lock(&vq_lock);
		u->running--;
		user_drop_if_idle(u);
		/* a capped user's next job may run now on another worker */
		pthread_cond_broadcast(&vq_cond);
	}
	pthread_mutex_unlock(&vq_lock);
	return NULL;
}

int vq_start(unsigned n)
{
	unsigned i;

	if (n < 2)
		n = 2;
	if (n > VQ_MAX_THREADS)
		n = VQ_MAX_THREADS;
	cap = n - 1;
	for (i = 0; i < n; i++) {
		if (pthread_create(&threads[i], NULL, worker, NULL) != 0)
			break;
	}
	nthreads = i;
	if (nthreads < 2) {
		vq_stop();
		return -EAGAIN;
	}
	cap = nthreads - 1;
	running = true;
	return 0;
}

void vq_stop(void)
{
	unsigned i;

	pthread_mutex_lock(&vq_lock);
	stopping = true;
	pthread_cond_broadcast(&vq_cond);
	pthread_mutex_unlock(&vq_lock);
	for (i = 0; i < nthreads; i++)
		pthread_join(threads[i], NULL);
	nthreads = 0;
	running = false;
}

void vq_submit(struct vq_job *j, uid_t uid)
{
	struct vq_user *u;

	j->next = NULL;
	pthread_mutex_lock(&vq_lock);
	u = running && !stopping ? user_get(uid) : NULL;
	if (!u) {
		pthread_mutex_unlock(&vq_lock);
		j->run(j);	/* no pool (start-up failed, stopping, no memory): do it here */
		return;
	}
	if (u->tail)
		u->tail->next = j;
	else
		u->head = j;
	u->tail = j;
	pthread_cond_signal(&vq_cond);
	pthread_mutex_unlock(&vq_lock);
}
