/*
 * bench-match.c - matcher benchmark helper for tests/bench/20-match.sh.
 *
 *   bench-match gen N TYPE SEED          print N random hex hashes of TYPE (md5, sha1, sha256,
 *                                        pdq), one per line; the same SEED gives the same lines
 *   bench-match run DB SEED_SHA SEED_PDQ N_PDQ_QUERIES
 *                                        load DB into a matcher and print load time, memory per
 *                                        hash, exact lookups/s (hits: hashes regenerated from
 *                                        SEED_SHA; misses: fresh random) and ms per 8-variant PDQ
 *                                        query for every kernel this CPU has, the scalar one
 *                                        being the baseline the others are compared against.
 *                                        HASHGATE_BENCH_RANK=1: with a rank function set, as the
 *                                        daemon and `hashgate scan` query.
 *
 * Hashes are generated, never real.  Every figure printed is measured in this run.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hashdb/hash.h"
#include "hashdb/match.h"

static uint64_t rng_state;

static uint64_t rng(void)
{
	/* splitmix64: fast, and good enough to look like digests */
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void rand_bytes(uint8_t *p, size_t n)
{
	uint64_t v;
	size_t k;

	for (k = 0; k < n; k += 8) {
		v = rng();
		memcpy(p + k, &v, n - k < 8 ? n - k : 8);
	}
}

static double clock_s(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now(void)
{
	return clock_s(CLOCK_MONOTONIC);
}

/* CPU time of this thread: on a shared machine, what the work cost without the waiting. */
static double cpu(void)
{
	return clock_s(CLOCK_THREAD_CPUTIME_ID);
}

static int gen(long n, const char *type, uint64_t seed)
{
	static const char hx[] = "0123456789abcdef";
	int a = hash_algo_parse(type);
	size_t len, k;
	uint8_t v[32];
	char line[70];
	long i;

	if (a < 0) {
		fprintf(stderr, "bench-match: unknown type %s\n", type);
		return 2;
	}
	len = hash_algo_len((enum hash_algo)a);
	rng_state = seed;
	for (i = 0; i < n; i++) {
		rand_bytes(v, len);
		for (k = 0; k < len; k++) {
			line[2 * k] = hx[v[k] >> 4];
			line[2 * k + 1] = hx[v[k] & 15];
		}
		line[2 * len] = '\n';
		fwrite(line, 1, 2 * len + 1, stdout);
	}
	return fflush(stdout) ? 2 : 0;
}

/* The daemon's rank: by category (any thread-safe function does; this one is constant). */
static int rank_any(const char *category, void *arg)
{
	(void)arg;
	return category[0];
}

static int run(const char *db, uint64_t seed_sha, uint64_t seed_pdq, int nq)
{
	static const char *const kernels[] = { "scalar", "avx2", "avx512" };
	struct matcher *m;
	struct match_hit hit;
	struct pdq_result q;
	char err[512];
	size_t nsha, npdq, i, nlook;
	uint8_t (*keys)[32];
	double t0, t, c0, c, base = 0;
	long hits = 0;
	int r, k, v, qi, found, round;

	/* HASHGATE_BENCH_RANK=1: PDQ queries ranked by category, as the daemon makes them */
	if (getenv("HASHGATE_BENCH_RANK") && *getenv("HASHGATE_BENCH_RANK") == '1') {
		matcher_set_rank(rank_any, NULL);
		printf("ranked PDQ search (a rank function is set, as in the daemon)\n");
	}
	t0 = now();
	c0 = cpu();
	r = matcher_load(db, &m, err, sizeof(err));
	t = now() - t0;
	c = cpu() - c0;
	if (r < 0) {
		fprintf(stderr, "bench-match: %s\n", err);
		return 2;
	}
	nsha = matcher_count(m, HASH_SHA256);
	npdq = matcher_count(m, HASH_PDQ);
	printf("loaded %zu sha256 + %zu pdq in %.2f s (%.2f s CPU); matcher memory %.1f MB = "
	       "%.1f bytes/hash\n", nsha, npdq, t, c, matcher_memory(m) / 1e6,
	       (double)matcher_memory(m) / (double)(nsha + npdq ? nsha + npdq : 1));

	/* exact: half hits (regenerated from the import seed), half misses */
	nlook = 2000000;
	keys = malloc(nlook * sizeof(*keys));
	if (!keys)
		return 2;
	rng_state = seed_sha;
	for (i = 0; i < nlook / 2 && i < nsha; i++)
		rand_bytes(keys[i], 32);
	rng_state = seed_sha ^ 0x5555aaaa5555aaaaull;
	for (; i < nlook; i++)
		rand_bytes(keys[i], 32);
	t = c = 1e30;
	for (round = 0; round < 3; round++) {
		hits = 0;
		t0 = now();
		c0 = cpu();
		for (i = 0; i < nlook; i++)
			hits += matcher_lookup(m, HASH_SHA256, keys[i], &hit);
		if (now() - t0 < t)
			t = now() - t0;
		if (cpu() - c0 < c)
			c = cpu() - c0;
	}
	printf("exact sha256: %.0f lookups/s (%.3f us each, %.3f us CPU) over %zu lookups, "
	       "%ld hits\n", (double)nlook / t, t / (double)nlook * 1e6, c / (double)nlook * 1e6,
	       nlook, hits);
	free(keys);

	/* PDQ: random 8-variant queries, one planted at distance 31 from a database hash */
	for (k = 0; k < 3 && npdq; k++) {
		if (matcher_set_pdq_kernel(kernels[k]) < 0) {
			printf("pdq kernel %-6s: not supported by this CPU\n", kernels[k]);
			continue;
		}
		/* best of three rounds: other processes share these two cores */
		found = 0;
		t = c = 1e30;
		for (round = 0; round < 3; round++) {
			rng_state = 12345;
			t0 = now();
			c0 = cpu();
			for (qi = 0; qi < nq; qi++) {
				memset(&q, 0, sizeof(q));
				q.ndih = PDQ_NDIH;
				q.quality = 100;
				for (v = 0; v < PDQ_NDIH; v++)
					rand_bytes(q.hash[v].b, 32);
				if (qi == 0) {
					/* the first generated PDQ (it is in the database), 31 bits off */
					uint64_t save = rng_state;

					rng_state = seed_pdq;
					rand_bytes(q.hash[5].b, 32);
					rng_state = save;
					for (v = 0; v < 31; v++)
						q.hash[5].b[v] ^= 1;
				}
				r = matcher_lookup_pdq(m, &q, MATCH_PDQ_THRESHOLD_DEFAULT, &hit);
				if (qi == 0 && r == 1 && hit.distance == 31 && hit.dihedral == 5)
					found++;
			}
			if (now() - t0 < t)
				t = now() - t0;
			if (cpu() - c0 < c)
				c = cpu() - c0;
		}
		found = found == 3;
		if (k == 0)
			base = c;
		printf("pdq kernel %-6s: %.3f ms per 8-variant query (%.3f ms CPU) over %zu hashes "
		       "(%d queries; %.1fx scalar CPU); planted distance-31 match %s\n", kernels[k],
		       t / nq * 1e3, c / nq * 1e3, npdq, nq, base / c, found ? "found" : "MISSED");
		if (!found) {
			matcher_put(m);
			return 1;
		}
	}
	matcher_put(m);

	/* what the daemon pays every second to notice a change: open, read generation, close */
	{
		struct matcher_slot slot = { 0 };
		int n = 0;

		t0 = now();
		if (matcher_slot_init(&slot, db, err, sizeof(err)) == 0) {
			t = now();
			for (n = 0; n < 200; n++)
				if (matcher_slot_refresh(&slot, err, sizeof(err)) != 0)
					break;
			printf("generation poll (unchanged database): %.0f us per matcher_slot_refresh\n",
			       (now() - t) / (n ? n : 1) * 1e6);
			matcher_slot_release(&slot);
		}
	}
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 5 && !strcmp(argv[1], "gen"))
		return gen(atol(argv[2]), argv[3], strtoull(argv[4], NULL, 0));
	if (argc == 6 && !strcmp(argv[1], "run"))
		return run(argv[2], strtoull(argv[3], NULL, 0), strtoull(argv[4], NULL, 0),
			   atoi(argv[5]));
	fprintf(stderr, "usage: bench-match gen N TYPE SEED | run DB SEED_SHA SEED_PDQ NQUERIES\n");
	return 2;
}
