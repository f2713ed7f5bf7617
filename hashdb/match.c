/*
 * match.c - the in-memory matcher: one immutable snapshot of a database generation.
 *
 * Exact hashes (md5/sha1/sha256): per algorithm one sorted array of fixed-width keys plus a
 * parallel uint16 list index, and a prefix-bucket table (offsets by the key's leading bits) so a
 * lookup is one bucket read and a binary search over a handful of keys: ~width+2 bytes per hash
 * plus ~1 byte of buckets.
 *
 * PDQ: a flat array in blocks of 8 hashes, stored word-sliced (word k of the 8 hashes side by
 * side) so a vector register holds the same word of 8 database hashes.  Words 0-1 and 2-3 live
 * in separate arrays: the scan computes the distance over words 0-1 only, a lower bound on the
 * full distance, which for unrelated hashes (~64 +- 6 on 128 bits) rejects all but a few in a
 * billion against a threshold of 31; only those are finished on words 2-3.  The popcount kernel
 * (AVX-512 VPOPCNTDQ, AVX2 nibble table, or scalar POPCNT) is chosen once at run time.
 *
 * List name and category live once per list; hashes carry a uint16 index into that table.
 * Invariants: a loaded matcher is never modified, so readers need no locks; its refcount is the
 * only mutable field.  Hash bytes are compared as stored (PDQ big-endian as hex spells it); the
 * word-sliced copy uses native loads of the same bytes for query and database alike.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <immintrin.h>
#include <sqlite3.h>

#include "hashdb/db.h"
#include "hashdb/match.h"

#define PDQ_LANES	8
#define NEXACT		3	/* md5, sha1, sha256 */
#define MAX_LISTS	65535

struct list_meta {
	int64_t id;
	char name[64];
	char category[32];
	int has_pdq;			/* the list holds at least one PDQ hash */
};

struct exact_table {
	size_t n, cap;
	size_t width;
	uint8_t *keys;			/* n * width, ascending by memcmp */
	uint16_t *list;			/* list index per key; NULL for the allowlist */
	uint32_t *bucket;		/* (1 << bits) + 1 start offsets by key prefix */
	unsigned bits;
	size_t keys_map;		/* mmap()ed length of keys, 0 if malloc()ed */
};

struct pdq_table {
	size_t n, cap;			/* hashes; cap is a multiple of PDQ_LANES */
	uint64_t *w01;			/* per block: word 0 of 8 hashes, then word 1 of 8 */
	uint64_t *w23;			/* per block: word 2 of 8, then word 3 of 8 */
	uint16_t *list;
	size_t w01_map, w23_map;	/* mmap()ed lengths, 0 if malloc()ed */
};

struct matcher {
	int refs;
	uint64_t generation;
	struct list_meta *lists;	/* the database's lists by id, then (from nreal on) one
					   entry per (list, per-row category) the rows use */
	size_t nlists, nreal;
	unsigned algos;
	struct exact_table ex[NEXACT];
	struct pdq_table pdq;
	struct exact_table allow[HASH_NALGOS];
	size_t mem;
};

/* ---- PDQ scan kernels ------------------------------------------------------------------- */

struct pdq_query {
	uint64_t w[PDQ_NDIH][4];
	int nv;
};

/* Called for each lane whose lower bound is under the current best; updates *best. */
struct pdq_best {
	int dist;			/* the scan's bound: best full distance so far, threshold
					   + 1 when none (ranked: stays threshold + 1) */
	size_t idx;
	int variant;
	const struct exact_table *skip;	/* allowlisted database values, or NULL */
	/*
	 * Ranked search (a rank function is set): the best is the candidate within the
	 * threshold whose list's category ranks highest, then the nearest; every candidate
	 * within the threshold is finished, since a farther one may rank higher.  Candidates
	 * within the threshold are a handful per query, so the rank calls cost nothing.
	 */
	int (*rank)(const char *category, void *arg);
	void *rank_arg;
	const struct list_meta *lists;
	int best_rank, best_dist;
};

typedef void (*pdq_scan_fn)(const struct pdq_table *t, const struct pdq_query *q,
			    struct pdq_best *b);

static inline uint64_t load64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static void pdq_table_value(const struct pdq_table *t, size_t i, uint8_t out[32])
{
	size_t blk = i / PDQ_LANES, lane = i % PDQ_LANES;
	uint64_t w[4];

	w[0] = t->w01[blk * 16 + lane];
	w[1] = t->w01[blk * 16 + 8 + lane];
	w[2] = t->w23[blk * 16 + lane];
	w[3] = t->w23[blk * 16 + 8 + lane];
	memcpy(out, w, 32);
}

static int exact_find(const struct exact_table *t, const uint8_t *key);

/* Full distance for a lane that passed the lower bound; the same code for every kernel. */
__attribute__((target("popcnt")))
static void pdq_finish(const struct pdq_table *t, const struct pdq_query *q, size_t i,
		       struct pdq_best *b)
{
	size_t blk = i / PDQ_LANES, lane = i % PDQ_LANES;
	uint64_t w0 = t->w01[blk * 16 + lane], w1 = t->w01[blk * 16 + 8 + lane];
	uint64_t w2 = t->w23[blk * 16 + lane], w3 = t->w23[blk * 16 + 8 + lane];
	int v, d, best = b->dist, bv = -1;
	uint8_t val[32];

	for (v = 0; v < q->nv; v++) {
		d = __builtin_popcountll(w0 ^ q->w[v][0]) + __builtin_popcountll(w1 ^ q->w[v][1]) +
		    __builtin_popcountll(w2 ^ q->w[v][2]) + __builtin_popcountll(w3 ^ q->w[v][3]);
		if (d < best) {
			best = d;
			bv = v;
		}
	}
	if (bv < 0)
		return;
	if (b->skip && b->skip->n) {
		pdq_table_value(t, i, val);
		if (exact_find(b->skip, val) >= 0)
			return;
	}
	if (b->rank) {
		int r = b->rank(b->lists[t->list[i]].category, b->rank_arg);

		/* lanes come in index order: ties keep the first, as the unranked scan does */
		if (b->variant >= 0 && (r < b->best_rank ||
					(r == b->best_rank && best >= b->best_dist)))
			return;
		b->best_rank = r;
		b->best_dist = best;
		b->idx = i;
		b->variant = bv;
		return;
	}
	b->dist = best;
	b->idx = i;
	b->variant = bv;
}

__attribute__((target("popcnt")))
static void pdq_scan_scalar(const struct pdq_table *t, const struct pdq_query *q,
			    struct pdq_best *b)
{
	size_t i, blk, lane;
	int v, d, m;

	for (i = 0; i < t->n; i++) {
		blk = i / PDQ_LANES;
		lane = i % PDQ_LANES;
		uint64_t w0 = t->w01[blk * 16 + lane], w1 = t->w01[blk * 16 + 8 + lane];

		m = 256;
		for (v = 0; v < q->nv; v++) {
			d = __builtin_popcountll(w0 ^ q->w[v][0]) +
			    __builtin_popcountll(w1 ^ q->w[v][1]);
			if (d < m)
				m = d;
		}
		if (m < b->dist)
			pdq_finish(t, q, i, b);
	}
}

/* Per-byte popcount by nibble table, then horizontal byte sums per 64-bit lane. */
__attribute__((target("avx2")))
static inline __m256i popcnt64_avx2(__m256i x)
{
	const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
					     0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
	const __m256i low = _mm256_set1_epi8(0x0f);
	__m256i lo = _mm256_and_si256(x, low);
	__m256i hi = _mm256_and_si256(_mm256_srli_epi16(x, 4), low);

	return _mm256_add_epi8(_mm256_shuffle_epi8(lut, lo), _mm256_shuffle_epi8(lut, hi));
}

__attribute__((target("avx2,popcnt")))
static void pdq_scan_avx2(const struct pdq_table *t, const struct pdq_query *q,
			  struct pdq_best *b)
{
	size_t nblk = (t->n + PDQ_LANES - 1) / PDQ_LANES, blk;
	__m256i q0[PDQ_NDIH], q1[PDQ_NDIH];
	const __m256i zero = _mm256_setzero_si256();
	int v, half, k;

	for (v = 0; v < q->nv; v++) {
		q0[v] = _mm256_set1_epi64x((long long)q->w[v][0]);
		q1[v] = _mm256_set1_epi64x((long long)q->w[v][1]);
	}
	for (blk = 0; blk < nblk; blk++) {
		const uint64_t *p = t->w01 + blk * 16;
		__m256i bound = _mm256_set1_epi64x(b->dist - 1);

		for (half = 0; half < 2; half++) {
			__m256i a = _mm256_load_si256((const __m256i *)(p + half * 4));
			__m256i c = _mm256_load_si256((const __m256i *)(p + 8 + half * 4));
			__m256i m = _mm256_set1_epi64x(256);

			for (v = 0; v < q->nv; v++) {
				__m256i s = _mm256_add_epi8(
					popcnt64_avx2(_mm256_xor_si256(a, q0[v])),
					popcnt64_avx2(_mm256_xor_si256(c, q1[v])));

				m = _mm256_min_epu32(m, _mm256_sad_epu8(s, zero));
			}
			k = _mm256_movemask_pd(_mm256_castsi256_pd(_mm256_cmpgt_epi64(m, bound)));
			k = ~k & 0xf;
			while (k) {
				int lane = __builtin_ctz(k);
				size_t i = blk * PDQ_LANES + half * 4 + lane;

				k &= k - 1;
				if (i < t->n)
					pdq_finish(t, q, i, b);
			}
			bound = _mm256_set1_epi64x(b->dist - 1);
		}
	}
}

/* Lower bound (words 0-1) of 8 database hashes against every variant, min over variants. */
__attribute__((target("avx512f,avx512vpopcntdq")))
static inline __m512i bound8_avx512(const uint64_t *p, const __m512i *q0, const __m512i *q1, int nv)
{
	__m512i a = _mm512_load_si512((const void *)p);
	__m512i c = _mm512_load_si512((const void *)(p + 8));
	__m512i m = _mm512_add_epi64(_mm512_popcnt_epi64(_mm512_xor_si512(a, q0[0])),
				     _mm512_popcnt_epi64(_mm512_xor_si512(c, q1[0])));
	int v;

	for (v = 1; v < nv; v++)
		m = _mm512_min_epu64(m, _mm512_add_epi64(
				_mm512_popcnt_epi64(_mm512_xor_si512(a, q0[v])),
				_mm512_popcnt_epi64(_mm512_xor_si512(c, q1[v]))));
	return m;
}

__attribute__((target("avx512f,avx512vpopcntdq,popcnt")))
static void pdq_scan_avx512(const struct pdq_table *t, const struct pdq_query *q,
			    struct pdq_best *b)
{
	size_t nblk = (t->n + PDQ_LANES - 1) / PDQ_LANES, blk;
	__m512i q0[PDQ_NDIH], q1[PDQ_NDIH];
	unsigned tail = (unsigned)(t->n % PDQ_LANES);
	int v, nv = q->nv;

	for (v = 0; v < nv; v++) {
		q0[v] = _mm512_set1_epi64((long long)q->w[v][0]);
		q1[v] = _mm512_set1_epi64((long long)q->w[v][1]);
	}
	/* Two blocks per iteration: independent chains keep the popcount units busy. */
	for (blk = 0; blk < nblk; blk += 2) {
		const uint64_t *p = t->w01 + blk * 16;
		__m512i bound = _mm512_set1_epi64(b->dist);
		__m512i m0, m1;
		__mmask8 k0, k1;

		_mm_prefetch((const char *)(p + 16 * 16), _MM_HINT_T0);
		_mm_prefetch((const char *)(p + 16 * 16 + 8), _MM_HINT_T0);
		_mm_prefetch((const char *)(p + 16 * 17), _MM_HINT_T0);
		_mm_prefetch((const char *)(p + 16 * 17 + 8), _MM_HINT_T0);
		m0 = bound8_avx512(p, q0, q1, nv);
		k0 = _mm512_cmplt_epu64_mask(m0, bound);
		if (blk + 1 < nblk) {
			m1 = bound8_avx512(p + 16, q0, q1, nv);
			k1 = _mm512_cmplt_epu64_mask(m1, bound);
		} else {
			k1 = 0;
		}
		if (__builtin_expect((k0 | k1) != 0, 0)) {
			size_t bb;

			for (bb = 0; bb < 2; bb++) {
				__mmask8 k = bb ? k1 : k0;

				if (blk + bb == nblk - 1 && tail)
					k &= (__mmask8)((1u << tail) - 1);
				while (k) {
					int lane = __builtin_ctz(k);

					k &= (__mmask8)(k - 1);
					/* pdq_finish rechecks against the possibly lowered b->dist */
					pdq_finish(t, q, (blk + bb) * PDQ_LANES + lane, b);
				}
			}
		}
	}
}

static const struct {
	const char *name;
	pdq_scan_fn fn;
} kernels[] = {
	{ "avx512", pdq_scan_avx512 },
	{ "avx2", pdq_scan_avx2 },
	{ "scalar", pdq_scan_scalar },
};

static pthread_once_t kernel_once = PTHREAD_ONCE_INIT;
static int kernel_cur = -1;

static int kernel_supported(int k)
{
	__builtin_cpu_init();
	switch (k) {
	case 0:
		return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq");
	case 1:
		return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("popcnt");
	default:
		return 1;
	}
}

static void kernel_pick(void)
{
	int k;

	for (k = 0; k < (int)(sizeof(kernels) / sizeof(kernels[0])); k++) {
		if (kernel_supported(k)) {
			__atomic_store_n(&kernel_cur, k, __ATOMIC_RELEASE);
			return;
		}
	}
}

static pdq_scan_fn kernel_get(void)
{
	pthread_once(&kernel_once, kernel_pick);
	return kernels[__atomic_load_n(&kernel_cur, __ATOMIC_ACQUIRE)].fn;
}

const char *matcher_pdq_kernel(void)
{
	pthread_once(&kernel_once, kernel_pick);
	return kernels[__atomic_load_n(&kernel_cur, __ATOMIC_ACQUIRE)].name;
}

int matcher_set_pdq_kernel(const char *name)
{
	int k;

	pthread_once(&kernel_once, kernel_pick);
	for (k = 0; k < (int)(sizeof(kernels) / sizeof(kernels[0])); k++) {
		if (strcmp(name, kernels[k].name) != 0)
			continue;
		if (!kernel_supported(k))
			return -ENOTSUP;
		__atomic_store_n(&kernel_cur, k, __ATOMIC_RELEASE);
		return 0;
	}
	return -EINVAL;
}

/* ---- big arrays ------------------------------------------------------------------------ */

#define BIG_MIN		(4u << 20)
#define HUGE_PAGE	(2u << 20)

/*
 * A growable array that lives in malloc() while small and in an anonymous mapping once it
 * passes BIG_MIN: mremap() then grows it without copying or re-zeroing, and MADV_HUGEPAGE
 * backs it with transparent huge pages where the kernel allows (madvise mode), because random
 * probes into hundreds of MB otherwise miss the TLB as well as the cache.
 * map is the mapped length, 0 while the array is malloc()ed.
 */
static void *big_resize(void *p, size_t *map, size_t used, size_t len)
{
	size_t ml = (len + HUGE_PAGE - 1) / HUGE_PAGE * HUGE_PAGE;
	void *q;

	if (!*map && len < BIG_MIN)
		return realloc(p, len ? len : 1);
	if (!*map) {
		q = mmap(NULL, ml, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (q == MAP_FAILED)
			return NULL;
		if (used)
			memcpy(q, p, used);
		free(p);
	} else if (ml != *map) {
		q = mremap(p, *map, ml, MREMAP_MAYMOVE);
		if (q == MAP_FAILED)
			return NULL;
	} else {
		return p;
	}
	madvise(q, ml, MADV_HUGEPAGE);
	*map = ml;
	return q;
}

static void big_free(void *p, size_t map)
{
	if (map)
		munmap(p, map);
	else
		free(p);
}

/* ---- exact tables ---------------------------------------------------------------------- */

static inline uint32_t key_prefix(const uint8_t *k, unsigned bits)
{
	uint32_t p = ((uint32_t)k[0] << 16) | ((uint32_t)k[1] << 8) | k[2];

	return bits ? p >> (24 - bits) : 0;
}

/*
 * memcmp order, but the first 8 bytes as one big-endian word: digests almost always differ
 * there, and a libc call per probe cost more than the probe itself.
 */
static inline int key_cmp(const uint8_t *a, const uint8_t *b, size_t w)
{
	uint64_t x = __builtin_bswap64(load64(a)), y = __builtin_bswap64(load64(b));

	if (x != y)
		return x < y ? -1 : 1;
	return memcmp(a + 8, b + 8, w - 8);
}

/* Index of the first entry equal to key, or -1. */
static int exact_find_at(const struct exact_table *t, const uint8_t *key, size_t *at)
{
	size_t lo, hi, mid, w = t->width;
	uint32_t b;
	int c;

	if (!t->n)
		return -1;
	b = key_prefix(key, t->bits);
	lo = t->bucket[b];
	hi = t->bucket[b + 1];
	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		c = key_cmp(t->keys + mid * w, key, w);
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < t->bucket[b + 1] && key_cmp(t->keys + lo * w, key, w) == 0) {
		*at = lo;
		return 0;
	}
	return -1;
}

static int exact_find(const struct exact_table *t, const uint8_t *key)
{
	size_t at;

	return exact_find_at(t, key, &at) == 0 ? (int)(at & 0x7fffffff) : -1;
}

static int exact_push(struct exact_table *t, const uint8_t *key, uint16_t list, int with_list)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 1024;
		uint8_t *k = big_resize(t->keys, &t->keys_map, t->n * t->width, cap * t->width);

		if (!k)
			return -ENOMEM;
		t->keys = k;
		if (with_list) {
			uint16_t *l = realloc(t->list, cap * sizeof(*l));

			if (!l)
				return -ENOMEM;
			t->list = l;
		}
		t->cap = cap;
	}
	/* Rows arrive in (algo, value) order; anything else would break the binary search. */
	if (t->n && memcmp(t->keys + (t->n - 1) * t->width, key, t->width) > 0)
		return -EBADMSG;
	memcpy(t->keys + t->n * t->width, key, t->width);
	if (with_list)
		t->list[t->n] = list;
	t->n++;
	return 0;
}

/* Shrink to size and build the prefix buckets (~4 keys per bucket). */
static int exact_finish(struct exact_table *t)
{
	size_t nb, i;
	unsigned bits = 0;
	uint32_t b;

	if (t->n > 0xffffffffu)
		return -E2BIG;
	if (t->n < t->cap) {
		uint8_t *k = big_resize(t->keys, &t->keys_map, t->n * t->width, t->n * t->width);

		if (k)
			t->keys = k;
		if (t->list && t->n) {
			uint16_t *l = realloc(t->list, t->n * sizeof(*l));

			if (l)
				t->list = l;
		}
		t->cap = t->n;
	}
	while (bits < 24 && ((size_t)4 << bits) < t->n)
		bits++;
	t->bits = bits;
	nb = (size_t)1 << bits;
	t->bucket = malloc((nb + 1) * sizeof(*t->bucket));
	if (!t->bucket)
		return -ENOMEM;
	b = 0;
	t->bucket[0] = 0;
	for (i = 0; i < t->n; i++) {
		uint32_t p = key_prefix(t->keys + i * t->width, bits);

		while (b < p)
			t->bucket[++b] = (uint32_t)i;
	}
	while (b < nb)
		t->bucket[++b] = (uint32_t)t->n;
	return 0;
}

static size_t exact_mem(const struct exact_table *t)
{
	size_t m = (t->keys_map ? t->keys_map : t->cap * t->width) +
		   (t->list ? t->cap * sizeof(uint16_t) : 0);

	if (t->bucket)
		m += (((size_t)1 << t->bits) + 1) * sizeof(uint32_t);
	return m;
}

static void exact_release(struct exact_table *t)
{
	big_free(t->keys, t->keys_map);
	free(t->list);
	free(t->bucket);
}

/* ---- PDQ table ------------------------------------------------------------------------- */

static int pdq_push(struct pdq_table *t, const uint8_t *v, uint16_t list)
{
	size_t blk, lane;

	if (t->n == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 1024, used = t->cap * 2 * sizeof(uint64_t);
		uint64_t *a, *c;
		uint16_t *l;

		/* Vector loads want 64-byte alignment: mappings have it, malloc() may not. */
		if (cap * 2 * sizeof(uint64_t) < BIG_MIN) {
			a = aligned_alloc(64, cap * 2 * sizeof(uint64_t));
			c = aligned_alloc(64, cap * 2 * sizeof(uint64_t));
			if (a && t->n)
				memcpy(a, t->w01, used);
			if (c && t->n)
				memcpy(c, t->w23, used);
			if (a && c) {
				free(t->w01);
				free(t->w23);
			} else {
				free(a);
				free(c);
				a = c = NULL;
			}
		} else {
			if (!t->w01_map) {
				/* leave malloc(): move both into mappings */
				size_t m1 = 0, m2 = 0;

				a = big_resize(NULL, &m1, 0, cap * 2 * sizeof(uint64_t));
				c = big_resize(NULL, &m2, 0, cap * 2 * sizeof(uint64_t));
				if (a && c) {
					memcpy(a, t->w01, used);
					memcpy(c, t->w23, used);
					free(t->w01);
					free(t->w23);
					t->w01_map = m1;
					t->w23_map = m2;
				} else {
					if (a)
						munmap(a, m1);
					if (c)
						munmap(c, m2);
					a = c = NULL;
				}
			} else {
				a = big_resize(t->w01, &t->w01_map, used, cap * 2 * sizeof(uint64_t));
				if (a)
					t->w01 = a;
				c = big_resize(t->w23, &t->w23_map, used, cap * 2 * sizeof(uint64_t));
			}
		}
		l = realloc(t->list, cap * sizeof(*l));
		if (!a || !c || !l) {
			if (l)
				t->list = l;
			return -ENOMEM;
		}
		/* the partial last block must read as zeros (its lanes are masked anyway) */
		memset(a + t->n * 2, 0, (cap - t->n) * 2 * sizeof(uint64_t));
		memset(c + t->n * 2, 0, (cap - t->n) * 2 * sizeof(uint64_t));
		t->w01 = a;
		t->w23 = c;
		t->list = l;
		t->cap = cap;
	}
	blk = t->n / PDQ_LANES;
	lane = t->n % PDQ_LANES;
	t->w01[blk * 16 + lane] = load64(v);
	t->w01[blk * 16 + 8 + lane] = load64(v + 8);
	t->w23[blk * 16 + lane] = load64(v + 16);
	t->w23[blk * 16 + 8 + lane] = load64(v + 24);
	t->list[t->n] = list;
	t->n++;
	return 0;
}

static size_t pdq_mem(const struct pdq_table *t)
{
	return (t->w01_map ? t->w01_map + t->w23_map : t->cap * 32) + t->cap * sizeof(uint16_t);
}

/* Give back the growth slack: keep whole blocks of PDQ_LANES. */
static void pdq_table_finish(struct pdq_table *t)
{
	size_t cap = (t->n + PDQ_LANES - 1) / PDQ_LANES * PDQ_LANES;
	uint16_t *l;

	if (t->w01_map && cap < t->cap) {
		uint64_t *a = big_resize(t->w01, &t->w01_map, 0, cap * 2 * sizeof(uint64_t));
		uint64_t *c = big_resize(t->w23, &t->w23_map, 0, cap * 2 * sizeof(uint64_t));

		/* shrinking a mapping does not fail in practice; if it did, keep it as it was */
		if (a)
			t->w01 = a;
		if (c)
			t->w23 = c;
		if (!a || !c)
			return;
		if (cap) {
			l = realloc(t->list, cap * sizeof(*l));
			if (l)
				t->list = l;
		}
		t->cap = cap;
	}
}

static void pdq_release(struct pdq_table *t)
{
	big_free(t->w01, t->w01_map);
	big_free(t->w23, t->w23_map);
	free(t->list);
}

/* ---- load ------------------------------------------------------------------------------- */

static void matcher_free(struct matcher *m)
{
	int a;

	if (!m)
		return;
	for (a = 0; a < NEXACT; a++)
		exact_release(&m->ex[a]);
	for (a = 0; a < HASH_NALGOS; a++)
		exact_release(&m->allow[a]);
	pdq_release(&m->pdq);
	free(m->lists);
	free(m);
}

static int list_index(const struct matcher *m, int64_t id)
{
	size_t lo = 0, hi = m->nreal, mid;

	while (lo < hi) {
		mid = lo + (hi - lo) / 2;
		if (m->lists[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < m->nreal && m->lists[lo].id == id ? (int)lo : -1;
}

static int push_list(struct matcher *m, size_t *cap, struct list_meta **out)
{
	struct list_meta *l;

	if (m->nlists == MAX_LISTS)
		return -E2BIG;
	if (m->nlists == *cap) {
		*cap = *cap ? *cap * 2 : 16;
		l = realloc(m->lists, *cap * sizeof(*l));
		if (!l)
			return -ENOMEM;
		m->lists = l;
	}
	l = &m->lists[m->nlists++];
	memset(l, 0, sizeof(*l));
	*out = l;
	return 0;
}

/*
 * The list index for rows of list li whose own category is cat: a per-row category overrides
 * the list's (the verdict acts on it), so such rows point at an entry with the list's id and
 * name and that category, made once per (list, category) pair.
 */
static int row_list(struct matcher *m, size_t *cap, int li, const char *cat)
{
	struct list_meta *l;
	size_t k;
	int r;

	if (!cat || !*cat || !strcmp(m->lists[li].category, cat))
		return li;
	for (k = m->nreal; k < m->nlists; k++)
		if (m->lists[k].id == m->lists[li].id && !strcmp(m->lists[k].category, cat))
			return (int)k;
	r = push_list(m, cap, &l);
	if (r < 0)
		return r;
	*l = m->lists[li];
	snprintf(l->category, sizeof(l->category), "%s", cat);
	return (int)(m->nlists - 1);
}

static int load_lists(struct hashdb *db, struct matcher *m, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	size_t cap = 0;
	int rc, r;

	rc = sqlite3_prepare_v2(db->sql, "SELECT id, name, category FROM lists ORDER BY id", -1,
				&st, NULL);
	if (rc != SQLITE_OK)
		return hashdb_sql_error(db, rc, "read lists", err, errlen);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		struct list_meta *l;

		if (m->nlists == MAX_LISTS) {
			snprintf(err, errlen, "%s: more than %d lists", db->path, MAX_LISTS);
			r = -E2BIG;
			goto out;
		}
		if (m->nlists == cap) {
			cap = cap ? cap * 2 : 16;
			l = realloc(m->lists, cap * sizeof(*l));
			if (!l) {
				r = -ENOMEM;
				goto out;
			}
			m->lists = l;
		}
		l = &m->lists[m->nlists++];
		memset(l, 0, sizeof(*l));
		m->nreal = m->nlists;
		l->id = sqlite3_column_int64(st, 0);
		snprintf(l->name, sizeof(l->name), "%s",
			 (const char *)sqlite3_column_text(st, 1) ?: "");
		snprintf(l->category, sizeof(l->category), "%s",
			 (const char *)sqlite3_column_text(st, 2) ?: "");
	}
	r = rc == SQLITE_DONE ? 0 : hashdb_sql_error(db, rc, "read lists", err, errlen);
out:
	sqlite3_finalize(st);
	return r;
}

static int load_rows(struct hashdb *db, struct matcher *m, int allow, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	int rc, r = 0, li = 0, ri;
	int64_t last_id = -1;
	size_t cap = m->nlists;

	rc = sqlite3_prepare_v2(db->sql, allow ?
				"SELECT algo, value, 0, NULL FROM allowlist ORDER BY algo, value" :
				"SELECT algo, value, list_id, category FROM hashes "
				"ORDER BY algo, value, list_id", -1, &st, NULL);
	if (rc != SQLITE_OK)
		return hashdb_sql_error(db, rc, "read hashes", err, errlen);
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		int a = sqlite3_column_int(st, 0);
		const uint8_t *v = sqlite3_column_blob(st, 1);
		int64_t id = sqlite3_column_int64(st, 2);

		if (a < 0 || a >= HASH_NALGOS || !v ||
		    (size_t)sqlite3_column_bytes(st, 1) != hash_algo_len((enum hash_algo)a)) {
			snprintf(err, errlen, "%s: corrupt %s row (algo %d, %d bytes)", db->path,
				 allow ? "allowlist" : "hash", a, sqlite3_column_bytes(st, 1));
			r = -EBADMSG;
			goto out;
		}
		if (allow) {
			r = exact_push(&m->allow[a], v, 0, 0);
		} else {
			if (id != last_id) {
				li = list_index(m, id);
				last_id = id;
				if (li < 0) {
					snprintf(err, errlen, "%s: hash refers to missing list %lld",
						 db->path, (long long)id);
					r = -EBADMSG;
					goto out;
				}
			}
			ri = li;
			if (sqlite3_column_type(st, 3) != SQLITE_NULL) {
				ri = row_list(m, &cap, li,
					      (const char *)sqlite3_column_text(st, 3));
				if (ri < 0) {
					r = ri;
					goto out_lists;
				}
			}
			if (a == HASH_PDQ)
				r = pdq_push(&m->pdq, v, (uint16_t)ri);
			else
				r = exact_push(&m->ex[a], v, (uint16_t)ri, 1);
		}
		if (r < 0) {
			if (r == -EBADMSG)
				snprintf(err, errlen, "%s: hashes not in index order", db->path);
			else
				snprintf(err, errlen, "%s: out of memory loading hashes", db->path);
			goto out;
		}
	}
	if (rc != SQLITE_DONE)
		r = hashdb_sql_error(db, rc, "read hashes", err, errlen);
	goto out;
out_lists:
	if (r == -E2BIG)
		snprintf(err, errlen, "%s: more than %d lists and per-row categories", db->path,
			 MAX_LISTS);
	else
		snprintf(err, errlen, "%s: out of memory loading lists", db->path);
out:
	sqlite3_finalize(st);
	return r;
}

int matcher_load(const char *dbpath, struct matcher **out, char *err, size_t errlen)
{
	struct hashdb db;
	struct matcher *m;
	int r, a;
	size_t i;

	*out = NULL;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->refs = 1;
	for (a = 0; a < NEXACT; a++)
		m->ex[a].width = hash_algo_len((enum hash_algo)a);
	for (a = 0; a < HASH_NALGOS; a++)
		m->allow[a].width = hash_algo_len((enum hash_algo)a);
	r = hashdb_open(&db, dbpath, HASHDB_RDONLY, err, errlen);
	if (r < 0)
		goto out_free;
	/* One read transaction: generation, lists, allowlist and hashes from the same commit. */
	r = sqlite3_exec(db.sql, "BEGIN", NULL, NULL, NULL);
	if (r != SQLITE_OK) {
		r = hashdb_sql_error(&db, r, "begin", err, errlen);
		goto out_close;
	}
	r = hashdb_generation(&db, &m->generation, err, errlen);
	if (r < 0)
		goto out_close;
	r = load_lists(&db, m, err, errlen);
	if (r < 0)
		goto out_close;
	r = load_rows(&db, m, 1, err, errlen);
	if (r < 0)
		goto out_close;
	r = load_rows(&db, m, 0, err, errlen);
	if (r < 0)
		goto out_close;
	sqlite3_exec(db.sql, "COMMIT", NULL, NULL, NULL);
	hashdb_close(&db);

	m->mem = sizeof(*m) + m->nlists * sizeof(struct list_meta);
	for (a = 0; a < NEXACT; a++) {
		r = exact_finish(&m->ex[a]);
		if (r < 0)
			goto out_nomem;
		if (m->ex[a].n)
			m->algos |= HASH_BIT(a);
		m->mem += exact_mem(&m->ex[a]);
	}
	for (a = 0; a < HASH_NALGOS; a++) {
		r = exact_finish(&m->allow[a]);
		if (r < 0)
			goto out_nomem;
		/* an exact allow entry is honoured only if uploads are hashed with its algorithm */
		if (a < NEXACT && m->allow[a].n)
			m->algos |= HASH_BIT(a);
		m->mem += exact_mem(&m->allow[a]);
	}
	pdq_table_finish(&m->pdq);
	if (m->pdq.n)
		m->algos |= HASH_BIT(HASH_PDQ);
	for (i = 0; i < m->pdq.n; i++)
		m->lists[m->pdq.list[i]].has_pdq = 1;
	m->mem += pdq_mem(&m->pdq);
	*out = m;
	return 0;
out_nomem:
	snprintf(err, errlen, "%s: out of memory building the matcher", dbpath);
	goto out_free;
out_close:
	hashdb_close(&db);
out_free:
	matcher_free(m);
	return r;
}

int matcher_pdq_category_any(const struct matcher *m,
			     int (*pred)(const char *category, void *arg), void *arg)
{
	size_t i;

	for (i = 0; i < m->nlists; i++)
		if (m->lists[i].has_pdq && pred(m->lists[i].category, arg))
			return 1;
	return 0;
}

struct matcher *matcher_get(struct matcher *m)
{
	if (m)
		__atomic_add_fetch(&m->refs, 1, __ATOMIC_RELAXED);
	return m;
}

void matcher_put(struct matcher *m)
{
	if (m && __atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) == 0)
		matcher_free(m);
}

uint64_t matcher_generation(const struct matcher *m)
{
	return m->generation;
}

unsigned matcher_algos(const struct matcher *m)
{
	return m->algos;
}

size_t matcher_count(const struct matcher *m, enum hash_algo algo)
{
	if (algo == HASH_PDQ)
		return m->pdq.n;
	if ((int)algo < 0 || algo >= NEXACT)
		return 0;
	return m->ex[algo].n;
}

size_t matcher_memory(const struct matcher *m)
{
	return m->mem;
}

/* ---- queries ---------------------------------------------------------------------------- */

static void fill_hit(const struct matcher *m, struct match_hit *hit, enum hash_algo algo,
		     int distance, int dihedral, unsigned li, const uint8_t *value)
{
	const struct list_meta *l = &m->lists[li];

	memset(hit, 0, sizeof(*hit));
	hit->algo = algo;
	hit->distance = distance;
	hit->dihedral = dihedral;
	hit->list_id = l->id;
	_Static_assert(sizeof(hit->list) == sizeof(l->name), "list name sizes");
	_Static_assert(sizeof(hit->category) == sizeof(l->category), "category sizes");
	memcpy(hit->list, l->name, sizeof(hit->list));
	memcpy(hit->category, l->category, sizeof(hit->category));
	memcpy(hit->value, value, hash_algo_len(algo));
}

static int (*rank_fn)(const char *category, void *arg);
static void *rank_arg;

void matcher_set_rank(int (*rank)(const char *category, void *arg), void *arg)
{
	__atomic_store_n(&rank_arg, arg, __ATOMIC_RELAXED);
	__atomic_store_n(&rank_fn, rank, __ATOMIC_RELEASE);
}

/*
 * Of the list indexes of one database value (entries first..first+n-1, ascending list id),
 * the one whose category ranks highest; ties and no rank function: the lowest list id.
 */
static unsigned pick_list(const struct matcher *m, const uint16_t *lists, size_t n)
{
	int (*fn)(const char *, void *) = __atomic_load_n(&rank_fn, __ATOMIC_ACQUIRE);
	void *arg = __atomic_load_n(&rank_arg, __ATOMIC_RELAXED);
	unsigned best = lists[0];
	int best_rank, r;
	size_t k;

	if (!fn || n < 2)
		return best;
	best_rank = fn(m->lists[best].category, arg);
	for (k = 1; k < n; k++) {
		r = fn(m->lists[lists[k]].category, arg);
		if (r > best_rank) {
			best_rank = r;
			best = lists[k];
		}
	}
	return best;
}

int matcher_lookup(const struct matcher *m, enum hash_algo algo, const uint8_t *value,
		   struct match_hit *hit)
{
	const struct exact_table *t;
	size_t at, n;

	if ((int)algo < 0 || algo >= NEXACT || !value)
		return -EINVAL;
	t = &m->ex[algo];
	if (exact_find_at(t, value, &at) < 0)
		return 0;
	if (hit) {
		/* the same hash in several lists: adjacent entries, in list id order */
		for (n = 1; at + n < t->n && !memcmp(t->keys + (at + n) * t->width,
						     t->keys + at * t->width, t->width); n++)
			;
		fill_hit(m, hit, algo, 0, 0, pick_list(m, t->list + at, n),
			 t->keys + at * t->width);
	}
	return 1;
}

static int pdq_search(const struct matcher *m, const struct pdq_result *q, int threshold,
		      const struct exact_table *skip, struct match_hit *hit)
{
	struct pdq_query pq;
	struct pdq_best b;
	uint8_t val[32];
	int v;

	if (!q || threshold < 0)
		return threshold < 0 ? 0 : -EINVAL;
	if (!m->pdq.n)
		return 0;
	if (threshold > 255)
		threshold = 255;
	pq.nv = q->ndih >= 1 && q->ndih <= PDQ_NDIH ? q->ndih : 1;
	for (v = 0; v < pq.nv; v++) {
		pq.w[v][0] = load64(q->hash[v].b);
		pq.w[v][1] = load64(q->hash[v].b + 8);
		pq.w[v][2] = load64(q->hash[v].b + 16);
		pq.w[v][3] = load64(q->hash[v].b + 24);
	}
	memset(&b, 0, sizeof(b));
	b.dist = threshold + 1;
	b.variant = -1;
	b.skip = skip;
	b.rank = __atomic_load_n(&rank_fn, __ATOMIC_ACQUIRE);
	b.rank_arg = __atomic_load_n(&rank_arg, __ATOMIC_RELAXED);
	b.lists = m->lists;
	kernel_get()(&m->pdq, &pq, &b);
	if (b.variant < 0)
		return 0;
	if (b.rank)
		b.dist = b.best_dist;
	if (hit) {
		uint8_t next[32];
		size_t n = 1;

		pdq_table_value(&m->pdq, b.idx, val);
		/* the scan keeps the first of equal values; the same PDQ in other lists follows it */
		while (b.idx + n < m->pdq.n) {
			pdq_table_value(&m->pdq, b.idx + n, next);
			if (memcmp(next, val, 32) != 0)
				break;
			n++;
		}
		fill_hit(m, hit, HASH_PDQ, b.dist, b.variant,
			 pick_list(m, m->pdq.list + b.idx, n), val);
	}
	return 1;
}

int matcher_lookup_pdq(const struct matcher *m, const struct pdq_result *q, int threshold,
		       struct match_hit *hit)
{
	return pdq_search(m, q, threshold, NULL, hit);
}

int matcher_check(const struct matcher *m, const struct digests *d,
		  const struct pdq_result *pdq, const struct match_opts *opts,
		  struct match_hit *hit)
{
	static const enum hash_algo order[] = { HASH_SHA256, HASH_SHA1, HASH_MD5 };
	int threshold = opts ? opts->pdq_threshold : MATCH_PDQ_THRESHOLD_DEFAULT;
	int minq = opts ? opts->pdq_min_quality : MATCH_PDQ_MIN_QUALITY_DEFAULT;
	int (*fn)(const char *, void *);
	struct match_hit tmp, cand;
	const uint8_t *v;
	void *arg;
	size_t k;
	int r, cr, found = 0, best = 0, pdq_allowed;

	if (!hit)
		hit = &tmp;
	/*
	 * An allow entry clears the hits it can vouch for.  An exact one (md5/sha1/sha256 of the
	 * upload itself) names this very file, which an admin judged: every hit is cleared.  A
	 * PDQ one (the upload's own PDQ, or a database PDQ, skipped by the search) only says
	 * that a picture is a perceptual false positive (a near-blank image, a logo): it clears
	 * PDQ hits and never an exact hit of the upload's bytes, the strongest evidence there is.
	 */
	if (d) {
		for (k = 0; k < NEXACT; k++) {
			v = digests_get(d, (enum hash_algo)k);
			if (v && exact_find(&m->allow[k], v) >= 0)
				return 0;
		}
	}
	pdq_allowed = pdq && pdq->ndih >= 1 &&
		      exact_find(&m->allow[HASH_PDQ], pdq->hash[PDQ_ORIG].b) >= 0;
	/*
	 * Without a rank function the first hit decides.  With one, every hash of the upload is
	 * looked up and the hit whose category ranks highest decides (ties: the first, in
	 * the order sha256, sha1, md5, PDQ): the same file may be listed by its SHA-256 in a
	 * log-only list and by its MD5 or PDQ in a quarantine list, and must be quarantined.
	 * Only matches pay for the extra lookups; a clean upload looks up everything anyway.
	 */
	fn = __atomic_load_n(&rank_fn, __ATOMIC_ACQUIRE);
	arg = __atomic_load_n(&rank_arg, __ATOMIC_RELAXED);
	if (d) {
		for (k = 0; k < sizeof(order) / sizeof(order[0]); k++) {
			v = digests_get(d, order[k]);
			if (!v)
				continue;
			r = matcher_lookup(m, order[k], v, found ? &cand : hit);
			if (r < 0)
				return r;
			if (!r)
				continue;
			if (!fn)
				return r;
			if (!found) {
				found = 1;
				best = fn(hit->category, arg);
			} else if ((cr = fn(cand.category, arg)) > best) {
				best = cr;
				*hit = cand;
			}
		}
	}
	if (pdq && pdq->quality >= minq && !pdq_allowed) {
		r = pdq_search(m, pdq, threshold, &m->allow[HASH_PDQ], found ? &cand : hit);
		if (r < 0)
			return r;
		if (r && found && fn(cand.category, arg) > best)
			*hit = cand;
		found |= r;
	}
	return found;
}

/* ---- slot ------------------------------------------------------------------------------- */

int matcher_slot_init(struct matcher_slot *s, const char *dbpath, char *err, size_t errlen)
{
	int r;

	memset(s, 0, sizeof(*s));
	s->dbpath = strdup(dbpath);
	if (!s->dbpath)
		return -ENOMEM;
	r = matcher_load(dbpath, &s->cur, err, errlen);
	if (r < 0) {
		free(s->dbpath);
		s->dbpath = NULL;
		return r;
	}
	r = pthread_mutex_init(&s->lock, NULL);
	if (r) {
		matcher_put(s->cur);
		s->cur = NULL;
		free(s->dbpath);
		s->dbpath = NULL;
		return -r;
	}
	return 0;
}

struct matcher *matcher_slot_get(struct matcher_slot *s)
{
	struct matcher *m;

	pthread_mutex_lock(&s->lock);
	m = matcher_get(s->cur);
	pthread_mutex_unlock(&s->lock);
	return m;
}

int matcher_slot_refresh(struct matcher_slot *s, char *err, size_t errlen)
{
	struct matcher *cur, *nm, *old = NULL;
	uint64_t gen;
	int r;

	r = hashdb_read_generation(s->dbpath, &gen, err, errlen);
	if (r < 0)
		return r;
	cur = matcher_slot_get(s);
	r = cur->generation == gen;
	matcher_put(cur);
	if (r)
		return 0;
	/* Built without the lock: lookups keep using the old snapshot meanwhile. */
	r = matcher_load(s->dbpath, &nm, err, errlen);
	if (r < 0)
		return r;
	pthread_mutex_lock(&s->lock);
	if (s->cur->generation != nm->generation) {
		old = s->cur;
		s->cur = nm;
		nm = NULL;
	}
	pthread_mutex_unlock(&s->lock);
	matcher_put(old);
	matcher_put(nm);
	return old ? 1 : 0;
}

void matcher_slot_release(struct matcher_slot *s)
{
	if (!s->dbpath)
		return;
	matcher_put(s->cur);
	s->cur = NULL;
	pthread_mutex_destroy(&s->lock);
	free(s->dbpath);
	s->dbpath = NULL;
}

int matcher_hit_meta(const char *dbpath, const struct match_hit *hit,
		     struct hashdb_rowmeta *out, char *err, size_t errlen)
{
	struct hashdb db;
	int r;

	memset(out, 0, sizeof(*out));
	out->quality = -1;
	/*
	 * No waiting: this runs between a verdict and its close() reply.  WAL readers are not
	 * blocked by imports; a database locked exclusively just leaves the record without them.
	 */
	r = hashdb_open(&db, dbpath, HASHDB_RDONLY | HASHDB_NOWAIT, err, errlen);
	if (r < 0)
		return r;
	r = hashdb_row_meta(&db, hit->list_id, hit->algo, hit->value, out, err, errlen);
	hashdb_close(&db);
	return r;
}
