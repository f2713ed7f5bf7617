/*
 * hashq.c - hashing uploads while they are written, off the FUSE write path.
 *
 * A write that lands at the hash frontier (the next byte in file order, nothing waiting
 * before it) and whose bytes are in memory is hashed from that memory by the request's own
 * thread after it has replied (hashq_wrote_mem, hashq_hash_mem): the hashing overlaps the
 * client's next round trip instead of waiting for its close, and nothing is read back (a
 * network backing would fetch it again).  Such a party claims its range at once, so later
 * writes queue behind it in order; at most HASHQ_CHAIN parties per upload and HASHQ_WORKERS
 * in all, since each holds a thread of the bounded request pool (loop.c) other requests need.
 * Every other write only records which byte ranges landed in the tmpfile.  Those bytes are
 * hashed in file order by re-reading them from the page cache (still hot), either by the
 * background hasher thread (once an upload has a contiguous backlog worth it) or by the
 * verdict itself for whatever is left.  Writes may arrive out of order (several threads):
 * ranges wait until the gap before them is filled.  Any write below the claimed frontier (a
 * rewrite of bytes hashed or being hashed), mmap or fallocate ends streaming, and the verdict
 * re-reads the whole file instead.
 *
 * State lives in struct upload under up->lock; `busy` counts the parties hashing or about to
 * hash [frontier, claimed) without the lock, each its own consecutive part, in file order
 * (the one whose part starts at the frontier owns the hasher meanwhile).  The last one to
 * leave a stopped stream releases the hasher.
 *
 * The MD5 lane: with OpenSSL's digests one after the other, one core hashes all three at
 * ~0.43 GB/s here, MD5 over half of that (1.3 ns/byte against 0.55 each for SHA-1 and SHA-256
 * with SHA-NI), so one big upload could not be hashed as fast as FUSE writes it.  A second
 * thread takes the MD5 of each large chunk while the party hashing does the rest.  The fused
 * SHA-NI pass (hashdb/hashfused.c) hashes all three at about MD5's own speed on one core, so
 * the lane gains less there: 401 against 372 MB/s for a 512 MiB upload into the page cache
 * (30-fs.sh writec, 3 rounds), for 3204 against 2570 us of daemon CPU per MB; kept for the
 * throughput.  There is one lane; a party that finds it taken hashes everything itself, so
 * the lane never makes anyone wait for another upload.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "fs/hgfs.h"
#include "fs/loop.h"
#include "hashdb/hglog.h"

#define HASHQ_CHUNK	(1u << 20)
#define HASHQ_BACKLOG	(4u << 20)	/* contiguous bytes before the thread takes over */
#define LANE_MIN	(256u << 10)	/* smaller chunks are not worth a thread handoff */
#define HASHQ_DETACH_MIN (64u << 10)	/* smaller writes are hashed before the next arrives */
#define HASHQ_CHAIN	2		/* parties hashing or waiting to, per upload */
#define HASHQ_WORKERS	4		/* FUSE workers hashing at once, all uploads */

/*
 * Bulk hashing yields the CPU to requests: the lane, the backlog thread, the verdict pool
 * (hashq_bulk_thread) and a request thread hashing a large write after its reply
 * (hashq_hash_mem) run HASHQ_NICE steps below the daemon's priority.  On a busy machine one
 * tenant's stream of big uploads then slows its own uploads, not every other tenant's stat,
 * read or small upload (tests/bench/50-neighbour.sh, concurrent).  A request thread may
 * only lower its priority if it can raise it back afterwards (CAP_SYS_NICE or RLIMIT_NICE):
 * bulk_back says so, probed once on a thread of its own at start.
 */
#define HASHQ_NICE	10
static int base_nice;
static bool bulk_back;

/* The calling thread's nice value (Linux: PRIO_PROCESS with a thread id is that thread). */
static int thread_nice(int nice)
{
	return setpriority(PRIO_PROCESS, (id_t)gettid(), nice);
}

static void *nice_probe(void *arg)
{
	(void)arg;
	bulk_back = thread_nice(base_nice + 1) == 0 && thread_nice(base_nice) == 0;
	return NULL;
}

void hashq_bulk_thread(void)
{
	thread_nice(base_nice + HASHQ_NICE);
}

static atomic_int mem_parties;		/* FUSE workers between hashq_wrote_mem and its end */

static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cond = PTHREAD_COND_INITIALIZER;
static struct upload *q_head, *q_tail;
static bool q_stop;
static pthread_t q_thread;
static bool q_started;

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	bool started, stop;
	bool taken;		/* a party has claimed the lane for one chunk */
	bool job;		/* the chunk below is waiting for or in the lane thread */
	struct hasher *h;
	const void *buf;
	size_t len;
	int err;
} lane = { .lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER };

static void *lane_main(void *arg)
{
	(void)arg;
	hashq_bulk_thread();
	pthread_mutex_lock(&lane.lock);
	for (;;) {
		int err;

		while (!lane.job && !lane.stop)
			pthread_cond_wait(&lane.cond, &lane.lock);
		if (!lane.job)
			break;
		pthread_mutex_unlock(&lane.lock);
		err = hasher_update_part(lane.h, HASH_BIT(HASH_MD5), lane.buf, lane.len);
		pthread_mutex_lock(&lane.lock);
		lane.err = err;
		lane.job = false;
		pthread_cond_broadcast(&lane.cond);
	}
	pthread_mutex_unlock(&lane.lock);
	return NULL;
}

/* hasher_update, with the MD5 part in the lane when the chunk is big and the lane free. */
static int hash_chunk(struct hasher *h, const void *buf, size_t len)
{
	const unsigned md5 = HASH_BIT(HASH_MD5);
	bool split = false;
	int r, lr;

	if (len >= LANE_MIN && (h->mask & md5) && (h->mask & ~md5)) {
		pthread_mutex_lock(&lane.lock);
		if (lane.started && !lane.stop && !lane.taken) {
			lane.taken = lane.job = split = true;
			lane.h = h;
			lane.buf = buf;
			lane.len = len;
			pthread_cond_broadcast(&lane.cond);
		}
		pthread_mutex_unlock(&lane.lock);
	}
	if (!split)
		return hasher_update(h, buf, len);
	r = hasher_update_part(h, h->mask & ~md5, buf, len);
	pthread_mutex_lock(&lane.lock);
	while (lane.job)
		pthread_cond_wait(&lane.cond, &lane.lock);
	lr = lane.err;
	lane.taken = false;
	pthread_mutex_unlock(&lane.lock);
	if (r == 0 && lr == 0)
		h->size += len;
	return r ? r : lr;
}

/* Called with up->lock held. */
void hashq_stop_streaming(struct upload *up)
{
	if (!up->hashing)
		return;
	up->hashing = false;
	if (!up->busy)
		hasher_release(&up->hasher);
	/* else the last party hashing releases it when it comes back */
	up->nrg = 0;
	pthread_cond_broadcast(&up->cond);	/* parties waiting for their turn give up */
}

static int range_add(struct upload *up, uint64_t off, uint64_t end)
{
	size_t i, j;

	/* find the first range that ends at or after off */
	for (i = 0; i < up->nrg && up->rg[i].end < off; i++)
		;
	if (i < up->nrg && up->rg[i].off <= end) {
		/* merge with i and any following ranges it touches */
		if (off < up->rg[i].off)
			up->rg[i].off = off;
		if (end > up->rg[i].end)
			up->rg[i].end = end;
		for (j = i + 1; j < up->nrg && up->rg[j].off <= up->rg[i].end; j++)
			if (up->rg[j].end > up->rg[i].end)
				up->rg[i].end = up->rg[j].end;
		memmove(&up->rg[i + 1], &up->rg[j], (up->nrg - j) * sizeof(*up->rg));
		up->nrg -= j - i - 1;
		return 0;
	}
	if (up->nrg == up->rgcap) {
		size_t cap = up->rgcap ? up->rgcap * 2 : 8;
		struct wrange *n;

		if (cap > 4096)
			return -ENOMEM;		/* hopelessly fragmented: re-read at close */
		n = realloc(up->rg, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		up->rg = n;
		up->rgcap = cap;
	}
	memmove(&up->rg[i + 1], &up->rg[i], (up->nrg - i) * sizeof(*up->rg));
	up->rg[i].off = off;
	up->rg[i].end = end;
	up->nrg++;
	return 0;
}

static void enqueue(struct upload *up)
{
	if (up->queued || !q_started)
		return;
	up->queued = true;
	atomic_fetch_add(&up->refs, 1);
	pthread_mutex_lock(&q_lock);
	up->qnext = NULL;
	if (q_tail)
		q_tail->qnext = up;
	else
		q_head = up;
	q_tail = up;
	pthread_cond_signal(&q_cond);
	pthread_mutex_unlock(&q_lock);
}

/* Record a completed pwrite of [off, off+n).  Called with up->lock held. */
void hashq_wrote(struct upload *up, uint64_t off, uint64_t n)
{
	if (!up->hashing || !n)
		return;
	if (off < up->claimed) {
		hashq_stop_streaming(up);
		return;
	}
	if (range_add(up, off, off + n) < 0) {
		hashq_stop_streaming(up);
		return;
	}
	if (up->nrg && up->rg[0].off == up->claimed &&
	    up->rg[0].end - up->rg[0].off >= HASHQ_BACKLOG && !up->busy)
		enqueue(up);
}

bool hashq_wrote_mem(struct upload *up, uint64_t off, uint64_t n)
{
	if (!up->hashing || !n)
		return false;
	if (off != up->claimed || up->nrg || up->busy >= HASHQ_CHAIN)
		goto ranged;
	if (atomic_fetch_add(&mem_parties, 1) >= HASHQ_WORKERS) {
		atomic_fetch_sub(&mem_parties, 1);
		goto ranged;
	}
	up->claimed = off + n;
	up->busy++;
	atomic_fetch_add(&up->refs, 1);
	return true;
ranged:
	hashq_wrote(up, off, n);	/* hashed later from the file */
	return false;
}

void hashq_hash_mem(struct upload *up, const void *mem, uint64_t off, size_t n)
{
	bool bulk = n >= HASHQ_DETACH_MIN && bulk_back;
	int err = 0;

	/* Hashing 1 MiB takes ~2.5 ms: let the next write be read and copied meanwhile. */
	if (n >= HASHQ_DETACH_MIN)
		loop_detach();
	pthread_mutex_lock(&up->lock);
	while (up->hashing && up->frontier != off)
		pthread_cond_wait(&up->cond, &up->lock);
	if (up->hashing) {
		pthread_mutex_unlock(&up->lock);
		if (bulk)
			hashq_bulk_thread();
		err = hash_chunk(&up->hasher, mem, n);
		if (bulk)
			thread_nice(base_nice);
		pthread_mutex_lock(&up->lock);
	}
	up->busy--;
	if (!up->hashing) {
		if (!up->busy)
			hasher_release(&up->hasher);	/* stopped meanwhile: the last one */
	} else if (err) {
		hashq_stop_streaming(up);
	} else {
		up->frontier = off + n;
		if (!up->busy && up->nrg && up->rg[0].off == up->frontier &&
		    up->rg[0].end - up->rg[0].off >= HASHQ_BACKLOG)
			enqueue(up);
	}
	pthread_cond_broadcast(&up->cond);
	pthread_mutex_unlock(&up->lock);
	atomic_fetch_sub(&mem_parties, 1);
}

bool hashq_in_order(struct upload *up, uint64_t off)
{
	bool r;

	pthread_mutex_lock(&up->lock);
	r = up->hashing && off == up->claimed && !up->nrg && up->busy < HASHQ_CHAIN;
	pthread_mutex_unlock(&up->lock);
	return r;
}

/*
 * Hash the contiguous backlog at the frontier.  Called with up->lock held; drops it while
 * reading.  Returns with the lock held.
 */
void hashq_step(struct upload *up)
{
	static __thread char *buf;
	uint64_t pos, end;

	for (;;) {
		int err = 0;

		/* parties hashing from memory first: ranges start after their claims */
		while (up->busy)
			pthread_cond_wait(&up->cond, &up->lock);
		if (!up->hashing || !up->nrg || up->rg[0].off != up->frontier)
			break;
		end = up->rg[0].end;
		up->claimed = end;
		up->busy++;
		memmove(&up->rg[0], &up->rg[1], (up->nrg - 1) * sizeof(*up->rg));
		up->nrg--;
		pthread_mutex_unlock(&up->lock);
		if (!buf)
			buf = malloc(HASHQ_CHUNK);
		if (!buf)
			err = -ENOMEM;
		for (pos = up->frontier; !err && pos < end;) {
			size_t want = end - pos > HASHQ_CHUNK ? HASHQ_CHUNK : end - pos;
			ssize_t r = pread(up->fd, buf, want, pos);

			if (r <= 0) {
				err = r < 0 ? -errno : -EIO;
				break;
			}
			if (hash_chunk(&up->hasher, buf, r) < 0)
				err = -ENOMEM;
			pos += r;
		}
		pthread_mutex_lock(&up->lock);
		up->busy--;
		pthread_cond_broadcast(&up->cond);
		if (!up->hashing) {
			if (!up->busy)
				hasher_release(&up->hasher);	/* stopped while we were busy */
			break;
		}
		if (err) {
			hashq_stop_streaming(up);
			break;
		}
		up->frontier = end;
	}
}

static void *hashq_main(void *arg)
{
	(void)arg;
	hashq_bulk_thread();
	for (;;) {
		struct upload *up;

		pthread_mutex_lock(&q_lock);
		while (!q_head && !q_stop)
			pthread_cond_wait(&q_cond, &q_lock);
		if (!q_head) {
			pthread_mutex_unlock(&q_lock);
			break;
		}
		up = q_head;
		q_head = up->qnext;
		if (!q_head)
			q_tail = NULL;
		pthread_mutex_unlock(&q_lock);

		pthread_mutex_lock(&up->lock);
		up->queued = false;
		if (up->state == UP_STAGED)
			hashq_step(up);
		pthread_mutex_unlock(&up->lock);
		upload_put(up);
	}
	return NULL;
}

int hashq_start(void)
{
	pthread_t t;

	errno = 0;
	base_nice = getpriority(PRIO_PROCESS, 0);
	/* Started at nice 10 or more: no room below, request threads keep their priority. */
	if (errno == 0 && base_nice + HASHQ_NICE < 20 &&
	    pthread_create(&t, NULL, nice_probe, NULL) == 0) {
		pthread_join(t, NULL);
		if (!bulk_back)
			hglog(LOG_INFO, "large writes are hashed at normal priority: a thread could "
			      "not raise its priority back (needs CAP_SYS_NICE or RLIMIT_NICE, e.g. "
			      "LimitNICE=+0 in the unit)");
	}
	if (pthread_create(&q_thread, NULL, hashq_main, NULL) != 0)
		return -EAGAIN;
	q_started = true;
	/* On one core the lane would only add handoffs; without it everything still works. */
	if (sysconf(_SC_NPROCESSORS_ONLN) > 1 &&
	    pthread_create(&lane.thread, NULL, lane_main, NULL) == 0)
		lane.started = true;
	return 0;
}

void hashq_shutdown(void)
{
	if (!q_started)
		return;
	pthread_mutex_lock(&q_lock);
	q_stop = true;
	pthread_cond_signal(&q_cond);
	pthread_mutex_unlock(&q_lock);
	pthread_join(q_thread, NULL);
	q_started = false;
	if (lane.started) {
		pthread_mutex_lock(&lane.lock);
		lane.stop = true;
		pthread_cond_broadcast(&lane.cond);
		pthread_mutex_unlock(&lane.lock);
		pthread_join(lane.thread, NULL);
		lane.started = false;
	}
}
