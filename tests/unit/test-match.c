/*
 * test-match.c - the matcher against generated hashes in a real database: exact hits and misses
 * with list and category, PDQ threshold edges (31 matches, 32 does not), nearest match,
 * dihedral variants, the quality gate, the allowlist (a PDQ entry clears PDQ hits only, an
 * exact one every hit), every PDQ kernel agreeing with a brute force reference (including the
 * partial last block), missing/corrupt databases, and the slot swapping snapshots when the
 * generation changes while old references stay valid; with a rank, the strongest category
 * over every hash of an upload decides.
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hashdb/db.h"
#include "hashdb/hash.h"
#include "hashdb/import.h"
#include "hashdb/match.h"
#include "tests/unit/tap.h"

static char dir[64], path[128];
static uint64_t rs = 0x1234567;

static uint64_t rnd(void)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return rs;
}

static void rand_bytes(uint8_t *p, size_t n)
{
	size_t k;

	for (k = 0; k < n; k++)
		p[k] = (uint8_t)(rnd() >> 24);
}

/* Flip exactly n distinct bits of h. */
static void flip_bits(uint8_t h[32], int n)
{
	uint8_t used[256] = { 0 };
	int done = 0, bit;

	while (done < n) {
		bit = (int)(rnd() % 256);
		if (used[bit])
			continue;
		used[bit] = 1;
		h[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		done++;
	}
}

static int dist(const uint8_t *a, const uint8_t *b)
{
	int d = 0, k;

	for (k = 0; k < 32; k++)
		d += __builtin_popcount((unsigned)(a[k] ^ b[k]));
	return d;
}

static struct hashdb db;
static int64_t list_illegal, list_other, list_pdq;

static void add(int64_t list, enum hash_algo a, const uint8_t *v)
{
	char err[256];

	if (hashdb_hash_add(&db, list, a, v, NULL, err, sizeof(err)) < 0)
		diag("add: %s", err);
}

#define NPDQ 1003	/* not a multiple of 8: the last block is partial */

static uint8_t md5s[3][16], sha256s[3][32], pdqs[NPDQ][32];

static struct matcher *load(void)
{
	struct matcher *m = NULL;
	char err[256];

	if (matcher_load(path, &m, err, sizeof(err)) < 0)
		diag("load: %s", err);
	return m;
}

static void setup(void)
{
	char err[256];
	int i;

	if (hashdb_open(&db, path, HASHDB_CREATE, err, sizeof(err)) < 0) {
		diag("%s", err);
		exit(1);
	}
	hashdb_begin(&db, NULL, 0);
	hashdb_list_ensure(&db, "ncmec-x", "illegal", NULL, NULL, &list_illegal, NULL, 0);
	hashdb_list_ensure(&db, "misc", "other", NULL, NULL, &list_other, NULL, 0);
	hashdb_list_ensure(&db, "pdq-list", "baseline", NULL, NULL, &list_pdq, NULL, 0);
	for (i = 0; i < 3; i++) {
		rand_bytes(md5s[i], 16);
		rand_bytes(sha256s[i], 32);
		add(i == 2 ? list_other : list_illegal, HASH_MD5, md5s[i]);
		add(i == 2 ? list_other : list_illegal, HASH_SHA256, sha256s[i]);
	}
	for (i = 0; i < NPDQ; i++) {
		rand_bytes(pdqs[i], 32);
		add(list_pdq, HASH_PDQ, pdqs[i]);
	}
	if (hashdb_commit(&db, err, sizeof(err)) < 0)
		diag("commit: %s", err);
}

static void test_exact(struct matcher *m)
{
	struct match_hit hit;
	uint8_t miss[32];

	is_int(matcher_count(m, HASH_MD5), 3, "3 md5 loaded");
	is_int(matcher_count(m, HASH_SHA256), 3, "3 sha256 loaded");
	is_int(matcher_count(m, HASH_SHA1), 0, "no sha1");
	is_int(matcher_count(m, HASH_PDQ), NPDQ, "all PDQ loaded");
	is_int(matcher_algos(m), HASH_BIT(HASH_MD5) | HASH_BIT(HASH_SHA256) | HASH_BIT(HASH_PDQ),
	       "algos mask says which hashes to compute");
	ok(matcher_memory(m) > 0, "memory reported");
	is_int(matcher_lookup(m, HASH_SHA256, sha256s[1], &hit), 1, "sha256 hit");
	is_str(hit.list, "ncmec-x", "hit names the list");
	is_str(hit.category, "illegal", "hit names the category");
	is_int(hit.list_id, list_illegal, "hit has the list id");
	ok(!memcmp(hit.value, sha256s[1], 32) && hit.algo == HASH_SHA256, "hit has the value");
	is_int(matcher_lookup(m, HASH_MD5, md5s[2], &hit), 1, "md5 hit");
	is_str(hit.category, "other", "category of the other list");
	memcpy(miss, sha256s[0], 32);
	miss[31] ^= 1;
	is_int(matcher_lookup(m, HASH_SHA256, miss, &hit), 0, "one bit off: miss");
	is_int(matcher_lookup(m, HASH_SHA1, miss, &hit), 0, "empty table: miss");
	/* the md5 value is not confused with a sha256 that starts the same */
	memset(miss, 0, sizeof(miss));
	memcpy(miss, md5s[0], 16);
	is_int(matcher_lookup(m, HASH_SHA256, miss, &hit), 0, "algorithms are separate tables");
}

static int is_category(const char *category, void *arg)
{
	return strcmp(category, arg) == 0;
}

static void test_pdq(struct matcher *m)
{
	struct pdq_result q;
	struct match_hit hit;
	int r;

	memset(&q, 0, sizeof(q));
	q.ndih = 1;
	q.quality = 100;
	memcpy(q.hash[0].b, pdqs[500], 32);
	flip_bits(q.hash[0].b, 31);
	r = matcher_lookup_pdq(m, &q, 31, &hit);
	is_int(r, 1, "PDQ at distance 31 matches with threshold 31");
	is_int(hit.distance, 31, "distance 31 reported");
	ok(!memcmp(hit.value, pdqs[500], 32), "the right database hash");
	is_str(hit.category, "baseline", "PDQ hit category");
	ok(matcher_pdq_category_any(m, is_category, "baseline") &&
	   !matcher_pdq_category_any(m, is_category, "illegal") &&
	   !matcher_pdq_category_any(m, is_category, "other"),
	   "matcher_pdq_category_any: only the category whose list holds PDQ hashes");
	memcpy(q.hash[0].b, pdqs[500], 32);
	flip_bits(q.hash[0].b, 32);
	is_int(matcher_lookup_pdq(m, &q, 31, &hit), 0, "distance 32 does not match at threshold 31");
	is_int(matcher_lookup_pdq(m, &q, 32, &hit), 1, "... but does at threshold 32");
	is_int(hit.distance, 32, "distance 32 reported");

	/* last entry (partial last block) */
	memcpy(q.hash[0].b, pdqs[NPDQ - 1], 32);
	flip_bits(q.hash[0].b, 3);
	ok(matcher_lookup_pdq(m, &q, 31, &hit) == 1 && hit.distance == 3 &&
	   !memcmp(hit.value, pdqs[NPDQ - 1], 32), "the last hash (partial block) is found");

	/* dihedral: only variant 6 is near a database hash */
	memset(&q, 0, sizeof(q));
	q.quality = 90;
	q.ndih = 8;
	for (r = 0; r < 8; r++)
		rand_bytes(q.hash[r].b, 32);
	memcpy(q.hash[PDQ_FLIPP].b, pdqs[17], 32);
	flip_bits(q.hash[PDQ_FLIPP].b, 12);
	r = matcher_lookup_pdq(m, &q, 31, &hit);
	ok(r == 1 && hit.dihedral == PDQ_FLIPP && hit.distance == 12,
	   "match through dihedral variant %d at distance %d", hit.dihedral, hit.distance);
	q.ndih = 1;
	is_int(matcher_lookup_pdq(m, &q, 31, &hit), 0, "without the variants: no match");

	/* nearest wins: variant 2 at 20 from one hash, variant 4 at 9 from another */
	q.ndih = 8;
	for (r = 0; r < 8; r++)
		rand_bytes(q.hash[r].b, 32);
	memcpy(q.hash[2].b, pdqs[3], 32);
	flip_bits(q.hash[2].b, 20);
	memcpy(q.hash[4].b, pdqs[900], 32);
	flip_bits(q.hash[4].b, 9);
	r = matcher_lookup_pdq(m, &q, 31, &hit);
	ok(r == 1 && hit.distance == 9 && hit.dihedral == 4 && !memcmp(hit.value, pdqs[900], 32),
	   "the nearest of two candidates is reported");
}

/* Every kernel agrees with brute force on random and planted queries. */
static void test_kernels(struct matcher *m)
{
	static const char *const names[] = { "scalar", "avx2", "avx512" };
	const char *orig = matcher_pdq_kernel();
	struct pdq_result q;
	struct match_hit hit;
	int k, qi, v, i, bad, want_d, want_i, r;

	for (k = 0; k < 3; k++) {
		if (matcher_set_pdq_kernel(names[k]) < 0) {
			ok(1, "kernel %s not supported on this CPU (skipped)", names[k]);
			continue;
		}
		rs = 99;
		bad = 0;
		for (qi = 0; qi < 200; qi++) {
			memset(&q, 0, sizeof(q));
			q.ndih = 8;
			q.quality = 100;
			for (v = 0; v < 8; v++) {
				rand_bytes(q.hash[v].b, 32);
				if (rnd() % 3 == 0) {
					memcpy(q.hash[v].b, pdqs[rnd() % NPDQ], 32);
					flip_bits(q.hash[v].b, (int)(rnd() % 40));
				}
			}
			want_d = 32;
			want_i = -1;
			for (i = 0; i < NPDQ; i++)
				for (v = 0; v < 8; v++)
					if (dist(q.hash[v].b, pdqs[i]) < want_d) {
						want_d = dist(q.hash[v].b, pdqs[i]);
						want_i = i;
					}
			r = matcher_lookup_pdq(m, &q, 31, &hit);
			if (r != (want_i >= 0) || (r == 1 && hit.distance != want_d))
				bad++;
		}
		is_int(bad, 0, "kernel %s agrees with brute force on 200 queries", names[k]);
	}
	matcher_set_pdq_kernel(orig);
	is_int(matcher_set_pdq_kernel("sse9"), -EINVAL, "unknown kernel name refused");
}

static void test_check(void)
{
	struct matcher *m;
	struct digests d;
	struct pdq_result q;
	struct match_opts o = { MATCH_PDQ_THRESHOLD_DEFAULT, MATCH_PDQ_MIN_QUALITY_DEFAULT };
	struct match_hit hit;
	char err[256];

	m = load();
	memset(&d, 0, sizeof(d));
	d.mask = HASH_BIT(HASH_MD5) | HASH_BIT(HASH_SHA256);
	rand_bytes(d.md5, 16);
	memcpy(d.sha256, sha256s[0], 32);
	is_int(matcher_check(m, &d, NULL, &o, &hit), 1, "check: sha256 hit");
	is_str(hit.category, "illegal", "check reports the category");
	d.mask = HASH_BIT(HASH_MD5);
	is_int(matcher_check(m, &d, NULL, &o, &hit), 0, "digest not in the mask is not looked up");

	memset(&q, 0, sizeof(q));
	q.ndih = 1;
	memcpy(q.hash[0].b, pdqs[42], 32);
	flip_bits(q.hash[0].b, 5);
	q.quality = 49;
	is_int(matcher_check(m, &d, &q, &o, &hit), 0, "PDQ of quality 49 is not matched");
	q.quality = 50;
	is_int(matcher_check(m, &d, &q, &o, &hit), 1, "PDQ of quality 50 is");
	is_int(hit.algo, HASH_PDQ, "PDQ hit");
	matcher_put(m);

	/* allowlist: the upload's digest, the upload's PDQ, a database PDQ */
	hashdb_begin(&db, NULL, 0);
	hashdb_allow_add(&db, HASH_SHA256, sha256s[0], "fp", NULL, 0);
	hashdb_allow_add(&db, HASH_PDQ, pdqs[42], "fp", NULL, 0);
	hashdb_commit(&db, err, sizeof(err));
	m = load();
	d.mask = HASH_BIT(HASH_MD5) | HASH_BIT(HASH_SHA256);
	memcpy(d.md5, md5s[0], 16);		/* md5 is listed, sha256 allowlisted */
	is_int(matcher_check(m, &d, NULL, &o, &hit), 0, "an allowlisted upload digest wins over a hit");
	is_int(matcher_lookup(m, HASH_SHA256, sha256s[0], &hit), 1,
	       "matcher_lookup itself ignores the allowlist");
	d.mask = HASH_BIT(HASH_MD5);
	is_int(matcher_check(m, &d, NULL, &o, &hit), 1, "without the allowlisted digest: hit");
	d.mask = 0;
	is_int(matcher_check(m, &d, &q, &o, &hit), 0, "allowlisted database PDQ is never reported");
	is_int(matcher_lookup_pdq(m, &q, 31, &hit), 1, "(lookup_pdq alone still finds it)");
	/* another db hash near the same query: the allowlisted one is skipped, this one found */
	memcpy(q.hash[0].b, pdqs[42], 32);
	flip_bits(q.hash[0].b, 2);
	q.ndih = 2;
	memcpy(q.hash[1].b, pdqs[43], 32);
	flip_bits(q.hash[1].b, 20);
	ok(matcher_check(m, &d, &q, &o, &hit) == 1 && !memcmp(hit.value, pdqs[43], 32) &&
	   hit.distance == 20, "next-nearest non-allowlisted PDQ reported (distance %d)",
	   hit.distance);
	memcpy(q.hash[0].b, pdqs[42], 32);
	is_int(matcher_check(m, &d, &q, &o, &hit), 0, "an upload whose PDQ is allowlisted is clean");
	matcher_put(m);
}

static int rank_by_category(const char *category, void *arg)
{
	(void)arg;
	return !strcmp(category, "baseline") ? 2 : !strcmp(category, "other") ? 0 : 1;
}

/*
 * What an allow entry clears.  A PDQ entry (the upload's own perceptual hash, or a database
 * PDQ) answers for PDQ false positives (near-blank images, logos) and clears PDQ hits only:
 * an exact hit of the same upload in a list is the stronger evidence and stands.  An exact
 * entry (md5/sha1/sha256 of the upload itself) clears every hit: the admin judged that file.
 */
static void test_allow_scope(void)
{
	struct matcher *m;
	struct digests d;
	struct pdq_result q;
	struct match_opts o = { MATCH_PDQ_THRESHOLD_DEFAULT, MATCH_PDQ_MIN_QUALITY_DEFAULT };
	struct match_hit hit;
	uint8_t s256[32], md5[16], sha1[20], weak[32], p[32], pu[32], pdb[32];
	char err[256];

	rand_bytes(s256, 32);
	rand_bytes(md5, 16);
	rand_bytes(sha1, 20);
	rand_bytes(weak, 32);
	rand_bytes(p, 32);
	memcpy(pu, p, 32);
	flip_bits(pu, 6);			/* the upload's PDQ: 6 bits from the listed p */
	rand_bytes(pdb, 32);			/* a listed PDQ that is itself allowlisted */
	hashdb_begin(&db, NULL, 0);
	add(list_illegal, HASH_SHA256, s256);
	add(list_illegal, HASH_MD5, md5);
	add(list_other, HASH_SHA256, weak);	/* a log-only kind of list */
	add(list_pdq, HASH_PDQ, p);
	add(list_pdq, HASH_PDQ, pdb);
	hashdb_allow_add(&db, HASH_PDQ, pu, "PDQ false positive: a logo", NULL, 0);
	hashdb_allow_add(&db, HASH_PDQ, pdb, "PDQ false positive: near-blank", NULL, 0);
	hashdb_allow_add(&db, HASH_SHA1, sha1, "this very file was reviewed", NULL, 0);
	if (hashdb_commit(&db, err, sizeof(err)) < 0)
		diag("commit: %s", err);
	m = load();
	ok(matcher_algos(m) & HASH_BIT(HASH_SHA1), "SHA-1, held only by the allowlist, is among "
	   "the algorithms uploads are hashed with (else its entry could never clear a file)");

	memset(&q, 0, sizeof(q));
	q.ndih = 1;
	q.quality = 100;
	memcpy(q.hash[0].b, pu, 32);
	memset(&d, 0, sizeof(d));
	is_int(matcher_check(m, &d, &q, &o, &hit), 0,
	       "the upload's PDQ allowlisted: its PDQ hit is cleared");
	d.mask = HASH_BIT(HASH_SHA256);
	memcpy(d.sha256, s256, 32);
	ok(matcher_check(m, &d, &q, &o, &hit) == 1 && hit.algo == HASH_SHA256 &&
	   !memcmp(hit.value, s256, 32) && !strcmp(hit.category, "illegal"),
	   "the upload's PDQ allowlisted, its SHA-256 listed: the exact hit stands (got %s)",
	   hash_algo_name(hit.algo));
	d.mask = HASH_BIT(HASH_MD5);
	memcpy(d.md5, md5, 16);
	ok(matcher_check(m, &d, &q, &o, &hit) == 1 && hit.algo == HASH_MD5,
	   "... its MD5 listed: the exact hit stands");
	d.mask = HASH_BIT(HASH_SHA256);
	memcpy(d.sha256, s256, 32);
	ok(matcher_check(m, &d, NULL, &o, &hit) == 1 && hit.algo == HASH_SHA256,
	   "... and without a PDQ of the upload (hashing by exact hashes only)");

	/* ranked (the daemon): the PDQ hit is cleared before ranking, the exact one reported */
	matcher_set_rank(rank_by_category, NULL);
	memcpy(d.sha256, weak, 32);
	ok(matcher_check(m, &d, &q, &o, &hit) == 1 && hit.algo == HASH_SHA256 &&
	   !strcmp(hit.category, "other"),
	   "with a rank: an allowlisted PDQ's stronger PDQ hit is cleared, the exact hit in a "
	   "weaker list stands (got %s in %s)", hash_algo_name(hit.algo), hit.category);
	matcher_set_rank(NULL, NULL);

	/* a database PDQ on the allowlist: never reported, but exact hits of the upload stand */
	memcpy(q.hash[0].b, pdb, 32);
	flip_bits(q.hash[0].b, 3);
	d.mask = 0;
	is_int(matcher_check(m, &d, &q, &o, &hit), 0, "an allowlisted database PDQ is not reported");
	d.mask = HASH_BIT(HASH_SHA256);
	memcpy(d.sha256, s256, 32);
	ok(matcher_check(m, &d, &q, &o, &hit) == 1 && hit.algo == HASH_SHA256,
	   "... and the upload's listed SHA-256 still matches");

	/* an exact allow entry of the upload clears every hit: exact and PDQ, in any list */
	d.mask = HASH_BIT(HASH_SHA256) | HASH_BIT(HASH_MD5) | HASH_BIT(HASH_SHA1);
	memcpy(d.sha256, s256, 32);
	memcpy(d.md5, md5, 16);
	memcpy(d.sha1, sha1, 20);
	memcpy(q.hash[0].b, p, 32);
	flip_bits(q.hash[0].b, 2);
	is_int(matcher_check(m, &d, &q, &o, &hit), 0,
	       "the upload's SHA-1 allowlisted: its SHA-256, MD5 and PDQ hits are all cleared");
	matcher_set_rank(rank_by_category, NULL);
	is_int(matcher_check(m, &d, &q, &o, &hit), 0, "... with a rank too");
	matcher_set_rank(NULL, NULL);
	matcher_put(m);

	hashdb_begin(&db, NULL, 0);
	hashdb_hash_remove(&db, list_illegal, HASH_SHA256, s256, NULL, 0);
	hashdb_hash_remove(&db, list_illegal, HASH_MD5, md5, NULL, 0);
	hashdb_hash_remove(&db, list_other, HASH_SHA256, weak, NULL, 0);
	hashdb_hash_remove(&db, list_pdq, HASH_PDQ, p, NULL, 0);
	hashdb_hash_remove(&db, list_pdq, HASH_PDQ, pdb, NULL, 0);
	hashdb_allow_remove(&db, HASH_PDQ, pu, NULL, 0);
	hashdb_allow_remove(&db, HASH_PDQ, pdb, NULL, 0);
	hashdb_allow_remove(&db, HASH_SHA1, sha1, NULL, 0);
	hashdb_commit(&db, NULL, 0);
}

/* One hash in two lists: which list is reported. */
static void test_rank(void)
{
	struct matcher *m;
	struct match_hit hit;
	struct pdq_result q;
	uint8_t y[32];

	rand_bytes(y, 32);
	hashdb_begin(&db, NULL, 0);
	add(list_pdq, HASH_SHA256, y);		/* baseline, higher list id */
	add(list_other, HASH_SHA256, y);	/* other, lower list id */
	add(list_other, HASH_PDQ, pdqs[7]);	/* also in pdq-list (baseline) */
	hashdb_commit(&db, NULL, 0);
	m = load();
	ok(list_other < list_pdq, "(list 'misc' has the lower id)");
	matcher_lookup(m, HASH_SHA256, y, &hit);
	is_str(hit.list, "misc", "no rank function: the lowest list id is reported");
	memset(&q, 0, sizeof(q));
	q.ndih = 1;
	q.quality = 100;
	memcpy(q.hash[0].b, pdqs[7], 32);
	flip_bits(q.hash[0].b, 4);
	matcher_lookup_pdq(m, &q, 31, &hit);
	is_str(hit.list, "misc", "... for PDQ too");
	matcher_set_rank(rank_by_category, NULL);
	matcher_lookup(m, HASH_SHA256, y, &hit);
	is_str(hit.category, "baseline", "with a rank: the stronger category of the two lists wins");
	is_str(hit.list, "pdq-list", "... and its list is named");
	ok(matcher_lookup_pdq(m, &q, 31, &hit) == 1 && !strcmp(hit.category, "baseline") &&
	   hit.distance == 4, "... for the nearest PDQ value as well");
	matcher_lookup(m, HASH_SHA256, sha256s[1], &hit);
	is_str(hit.list, "ncmec-x", "a hash in one list is unaffected");
	matcher_set_rank(NULL, NULL);
	matcher_put(m);
}

/*
 * One upload matching lists of different categories by different hashes: its SHA-256 in a
 * weak list, its MD5 or its PDQ in a stronger one.  The verdict must act on the strongest
 * (a log-only list must never let a quarantine list's match through).
 */
static void test_rank_across(void)
{
	struct matcher *m;
	struct digests d;
	struct pdq_result q;
	struct match_opts o = { MATCH_PDQ_THRESHOLD_DEFAULT, MATCH_PDQ_MIN_QUALITY_DEFAULT };
	struct match_hit hit;
	uint8_t s256[32], md5[16], p1[32], p2[32];

	rand_bytes(s256, 32);
	rand_bytes(md5, 16);
	rand_bytes(p1, 32);
	memcpy(p2, p1, 32);
	flip_bits(p2, 17);			/* p2 is 17 bits from p1 */
	hashdb_begin(&db, NULL, 0);
	add(list_other, HASH_SHA256, s256);	/* other: rank 0 */
	add(list_illegal, HASH_MD5, md5);	/* illegal: rank 1 */
	add(list_other, HASH_PDQ, p1);		/* nearest PDQ in the weak list */
	add(list_pdq, HASH_PDQ, p2);		/* baseline: rank 2, farther */
	hashdb_commit(&db, NULL, 0);
	m = load();
	memset(&d, 0, sizeof(d));
	d.mask = HASH_BIT(HASH_MD5) | HASH_BIT(HASH_SHA256);
	memcpy(d.sha256, s256, 32);
	memcpy(d.md5, md5, 16);
	memset(&q, 0, sizeof(q));
	q.ndih = 1;
	q.quality = 100;
	memcpy(q.hash[0].b, p1, 32);
	flip_bits(q.hash[0].b, 2);

	ok(matcher_check(m, &d, NULL, &o, &hit) == 1 && hit.algo == HASH_SHA256 &&
	   !strcmp(hit.category, "other"), "no rank function: the SHA-256 hit is reported");
	matcher_set_rank(rank_by_category, NULL);
	ok(matcher_check(m, &d, NULL, &o, &hit) == 1 && hit.algo == HASH_MD5 &&
	   !strcmp(hit.category, "illegal"),
	   "with a rank: the MD5 hit in the stronger list wins over the SHA-256 hit in the weak "
	   "one (got %s in %s)", hash_algo_name(hit.algo), hit.category);
	ok(matcher_check(m, &d, &q, &o, &hit) == 1 && hit.algo == HASH_PDQ &&
	   !strcmp(hit.category, "baseline") && !memcmp(hit.value, p2, 32),
	   "a PDQ match in a stronger list wins over exact hits in weaker ones (got %s in %s)",
	   hash_algo_name(hit.algo), hit.category);
	d.mask = 0;
	ok(matcher_check(m, &d, &q, &o, &hit) == 1 && !strcmp(hit.category, "baseline") &&
	   hit.distance == dist(q.hash[0].b, p2),
	   "a farther PDQ in a stronger list wins over the nearest in a weak one (got %s, "
	   "distance %d)", hit.category, hit.distance);
	q.quality = 10;
	d.mask = HASH_BIT(HASH_SHA256);
	ok(matcher_check(m, &d, &q, &o, &hit) == 1 && !strcmp(hit.category, "other"),
	   "below the quality gate the PDQ does not count: the exact hit stands");
	q.quality = 100;
	o.pdq_threshold = 16;
	ok(matcher_check(m, &d, &q, &o, &hit) == 1 && !strcmp(hit.category, "other"),
	   "a stronger PDQ beyond the threshold does not count");
	o.pdq_threshold = MATCH_PDQ_THRESHOLD_DEFAULT;
	ok(matcher_lookup_pdq(m, &q, 31, &hit) == 1 && !strcmp(hit.category, "baseline"),
	   "matcher_lookup_pdq ranks within the threshold too");
	matcher_set_rank(NULL, NULL);
	d.mask = 0;
	ok(matcher_check(m, &d, &q, &o, &hit) == 1 && !memcmp(hit.value, p1, 32),
	   "no rank function: the nearest PDQ as before");
	matcher_put(m);
	/* leave the shared lists as the later tests expect them */
	hashdb_begin(&db, NULL, 0);
	hashdb_hash_remove(&db, list_other, HASH_SHA256, s256, NULL, 0);
	hashdb_hash_remove(&db, list_illegal, HASH_MD5, md5, NULL, 0);
	hashdb_hash_remove(&db, list_other, HASH_PDQ, p1, NULL, 0);
	hashdb_hash_remove(&db, list_pdq, HASH_PDQ, p2, NULL, 0);
	hashdb_commit(&db, NULL, 0);
}

/* ---- one hash in two lists, every order of changes, while a daemon's slot reloads ---- */

static char tpath[160];
static uint8_t th[32], tfill[2][32];

/* Import into list name (category cat) a plain file of the filler and, if with, th. */
static int two_import(struct hashdb *d, const char *name, const char *cat, int fill, bool with,
		      bool replace, bool remove)
{
	struct import_opts o = {
		.list = name, .category = cat, .algo = HASH_SHA256, .format = IMPORT_PLAIN,
		.replace = replace, .remove = remove, .create = true,
	};
	struct import_stats st;
	char f[200], hex[65], err[512];
	FILE *fp;
	int r;

	snprintf(f, sizeof(f), "%s/two-%s.txt", dir, name);
	fp = fopen(f, "w");
	if (!fp)
		return -errno;
	if (!remove) {
		hex_encode(tfill[fill], 32, hex);
		fprintf(fp, "%s\n", hex);
	}
	if (with) {
		hex_encode(th, 32, hex);
		fprintf(fp, "%s\n", hex);
	}
	fclose(fp);
	r = import_file(d, f, &o, &st, err, sizeof(err));
	if (r < 0)
		diag("import %s: %s", name, err);
	return r;
}

static int two_delete(struct hashdb *d, const char *name)
{
	char err[256];
	int r = hashdb_begin(d, err, sizeof(err));

	if (r == 0)
		r = hashdb_list_delete(d, name, err, sizeof(err));
	if (r == 0)
		return hashdb_commit(d, err, sizeof(err));
	hashdb_rollback(d);
	return r;
}

/* Is th matched, and with which category, in this snapshot (rank set or not)? */
static int two_check(struct matcher *m, char *cat)
{
	struct match_opts o = { MATCH_PDQ_THRESHOLD_DEFAULT, MATCH_PDQ_MIN_QUALITY_DEFAULT };
	struct match_hit hit;
	struct digests d;
	int r;

	memset(&d, 0, sizeof(d));
	d.mask = HASH_BIT(HASH_SHA256);
	memcpy(d.sha256, th, 32);
	r = matcher_check(m, &d, NULL, &o, &hit);
	if (r == 1)
		snprintf(cat, 32, "%s", hit.category);
	else
		cat[0] = '\0';
	return r;
}

/*
 * A random walk over add / replace with / replace without / retract / delete of two lists
 * that may both hold th (categories "other" and "baseline"): after every change the slot
 * reloads and th is matched exactly when some list holds it, with the stronger category when
 * both do.  Deleting the list with the highest id and making it again gives it a new id.
 */
static void test_two_lists_walk(void)
{
	static const char *const names[2] = { "A", "B" }, *const cats[2] = { "other", "baseline" };
	struct matcher_slot s;
	struct hashdb d;
	char err[256], cat[32], want[32];
	bool exists[2] = { false, false }, holds[2] = { false, false };
	int step, bad = 0, x, op, r, got;

	snprintf(tpath, sizeof(tpath), "%s/two.db", dir);
	rand_bytes(th, 32);
	rand_bytes(tfill[0], 32);
	rand_bytes(tfill[1], 32);
	if (hashdb_open(&d, tpath, HASHDB_CREATE, err, sizeof(err)) < 0) {
		ok(0, "two.db: %s", err);
		return;
	}
	two_import(&d, "seed", "other", 0, false, false, false);	/* never empty */
	if (matcher_slot_init(&s, tpath, err, sizeof(err)) < 0) {
		ok(0, "slot: %s", err);
		hashdb_close(&d);
		return;
	}
	matcher_set_rank(rank_by_category, NULL);
	for (step = 0; step < 400 && bad < 5; step++) {
		struct matcher *m;

		x = (int)(rnd() % 2);
		op = (int)(rnd() % 5);
		switch (op) {
		case 0:		/* add th (a delta line, or a plain import) */
			r = two_import(&d, names[x], cats[x], x, true, false, false);
			exists[x] = holds[x] = true;
			break;
		case 1:		/* the full list again, with th */
			r = two_import(&d, names[x], cats[x], x, true, true, false);
			exists[x] = holds[x] = true;
			break;
		case 2:		/* the full list again, without th */
			r = two_import(&d, names[x], cats[x], x, false, true, false);
			exists[x] = true;
			holds[x] = false;
			break;
		case 3:		/* a delta retracting th */
			if (!exists[x])
				continue;
			r = two_import(&d, names[x], cats[x], x, true, false, true);
			holds[x] = false;
			break;
		default:	/* the list deleted */
			if (!exists[x])
				continue;
			r = two_delete(&d, names[x]);
			exists[x] = holds[x] = false;
			break;
		}
		if (r < 0) {
			ok(0, "step %d: op %d on %s: %d", step, op, names[x], r);
			bad++;
			continue;
		}
		r = matcher_slot_refresh(&s, err, sizeof(err));
		m = matcher_slot_get(&s);
		got = two_check(m, cat);
		matcher_put(m);
		snprintf(want, sizeof(want), "%s", holds[1] ? "baseline" : holds[0] ? "other" : "");
		if (r != 1 || got != (holds[0] || holds[1]) || strcmp(cat, want) != 0) {
			ok(0, "step %d (op %d on %s): refresh %d, matched %d in '%s', want %d in "
			   "'%s'", step, op, names[x], r, got, cat, holds[0] || holds[1], want);
			bad++;
		}
	}
	ok(bad == 0, "a hash in two lists: matched exactly while some list holds it, with the "
	   "stronger category, after each of %d random changes and reloads", step);
	matcher_set_rank(NULL, NULL);
	matcher_slot_release(&s);
	hashdb_close(&d);
}

struct churn {
	volatile int stop;
	int rounds, fails;
};

/* List B always holds th; list A is replaced with and without it, retracted, deleted. */
static void *churn_main(void *arg)
{
	struct churn *c = arg;
	struct hashdb d;
	int k = 0;

	if (hashdb_open(&d, tpath, 0, NULL, 0) < 0) {
		c->fails++;
		return NULL;
	}
	while (!c->stop) {
		int r;

		switch (k++ % 4) {
		case 0: r = two_import(&d, "A", "other", 0, true, true, false); break;
		case 1: r = two_import(&d, "A", "other", 0, false, true, false); break;
		case 2: r = two_import(&d, "A", "other", 0, true, false, true); break;
		default: r = two_delete(&d, "A"); break;
		}
		if (r < 0 && r != -ENOENT)
			c->fails++;
		c->rounds++;
	}
	hashdb_close(&d);
	return NULL;
}

/*
 * While another handle keeps changing list A in transactions, every snapshot the slot loads
 * (and every snapshot loaded directly) still matches th, which list B holds throughout, and
 * reports B's category.
 */
static void test_two_lists_reload(void)
{
	struct matcher_slot s;
	struct churn c = { 0 };
	struct hashdb d;
	pthread_t t;
	char err[256], cat[32];
	int i, misses = 0, loads = 0, swaps = 0, r;

	if (hashdb_open(&d, tpath, 0, err, sizeof(err)) < 0 ||
	    two_import(&d, "B", "baseline", 1, true, true, false) < 0) {
		ok(0, "two.db: %s", err);
		return;
	}
	hashdb_close(&d);
	if (matcher_slot_init(&s, tpath, err, sizeof(err)) < 0) {
		ok(0, "slot: %s", err);
		return;
	}
	matcher_set_rank(rank_by_category, NULL);
	if (pthread_create(&t, NULL, churn_main, &c) != 0) {
		ok(0, "pthread_create");
		matcher_slot_release(&s);
		return;
	}
	for (i = 0; i < 300 || c.rounds < 50; i++) {
		struct matcher *m = NULL;

		r = matcher_slot_refresh(&s, err, sizeof(err));
		swaps += r == 1;
		m = matcher_slot_get(&s);
		if (two_check(m, cat) != 1 || strcmp(cat, "baseline") != 0)
			misses++;
		matcher_put(m);
		if (matcher_load(tpath, &m, err, sizeof(err)) == 0) {
			loads++;
			if (two_check(m, cat) != 1 || strcmp(cat, "baseline") != 0)
				misses++;
			matcher_put(m);
		}
		if (i > 100000)
			break;
	}
	c.stop = 1;
	pthread_join(t, NULL);
	ok(misses == 0 && c.fails == 0 && swaps > 10,
	   "while list A changes %d times in transactions, %d reloads (%d swaps) and %d direct "
	   "loads all match the hash list B holds, with B's category (misses %d, failed "
	   "changes %d)", c.rounds, i, swaps, loads, misses, c.fails);
	matcher_set_rank(NULL, NULL);
	matcher_slot_release(&s);
}

static void test_slot(void)
{
	struct matcher_slot s;
	struct matcher *old, *cur;
	uint8_t v[32];
	char err[256], p[160];
	int r;

	r = matcher_slot_init(&s, path, err, sizeof(err));
	if (!ok(r == 0, "slot init"))
		diag("%s", err);
	old = matcher_slot_get(&s);
	is_int(matcher_slot_refresh(&s, err, sizeof(err)), 0, "no change: no reload");
	rand_bytes(v, 32);
	hashdb_begin(&db, NULL, 0);
	add(list_other, HASH_SHA256, v);
	hashdb_commit(&db, NULL, 0);
	is_int(matcher_lookup(old, HASH_SHA256, v, NULL), 0, "old snapshot does not have it");
	is_int(matcher_slot_refresh(&s, err, sizeof(err)), 1, "generation changed: swapped");
	cur = matcher_slot_get(&s);
	ok(matcher_generation(cur) == matcher_generation(old) + 1, "new snapshot has the new generation");
	is_int(matcher_lookup(cur, HASH_SHA256, v, NULL), 1, "new snapshot has the new hash");
	is_int(matcher_lookup(old, HASH_SHA256, sha256s[1], NULL), 1,
	       "old reference still usable after the swap");
	matcher_put(old);
	matcher_put(cur);

	/* database disappears: refresh fails, the snapshot stays */
	snprintf(p, sizeof(p), "%s.moved", path);
	rename(path, p);
	r = matcher_slot_refresh(&s, err, sizeof(err));
	ok(r == -ENOENT && strstr(err, "no such database"), "vanished database: %s", err);
	cur = matcher_slot_get(&s);
	is_int(matcher_lookup(cur, HASH_SHA256, v, NULL), 1, "the last good snapshot stays");
	matcher_put(cur);
	rename(p, path);

	/* deleted and created again (as 'rm hashes.db*; hashgate db init' would): reloaded */
	{
		static const char *const sfx[] = { "", "-wal", "-shm" };
		struct hashdb d2;
		char from[200], to[200];
		uint64_t g_old, g_new = 0;
		int k;

		cur = matcher_slot_get(&s);
		g_old = matcher_generation(cur);
		matcher_put(cur);
		for (k = 0; k < 3; k++) {
			snprintf(from, sizeof(from), "%s%s", path, sfx[k]);
			snprintf(to, sizeof(to), "%s.old%s", path, sfx[k]);
			rename(from, to);
		}
		hashdb_open(&d2, path, HASHDB_CREATE, NULL, 0);
		hashdb_generation(&d2, &g_new, NULL, 0);
		hashdb_close(&d2);
		r = matcher_slot_refresh(&s, err, sizeof(err));
		ok(g_new > g_old && r == 1, "a recreated database is reloaded, its generation "
		   "above the old (%llu -> %llu, refresh %d)", (unsigned long long)g_old, (unsigned long long)g_new, r);
		cur = matcher_slot_get(&s);
		is_int(matcher_lookup(cur, HASH_SHA256, v, NULL), 0, "the recreated database is in use");
		is_int(matcher_count(cur, HASH_PDQ), 0, "no PDQ hashes in it");
		matcher_put(cur);
		for (k = 0; k < 3; k++) {
			snprintf(from, sizeof(from), "%s.old%s", path, sfx[k]);
			snprintf(to, sizeof(to), "%s%s", path, sfx[k]);
			rename(from, to);
		}
	}
	matcher_slot_release(&s);

	/* missing and corrupt databases fail to load, never load empty */
	{
		struct matcher *m = NULL;

		snprintf(p, sizeof(p), "%s/none.db", dir);
		r = matcher_load(p, &m, err, sizeof(err));
		ok(r == -ENOENT && m == NULL, "missing database: -ENOENT, no matcher");
		r = matcher_slot_init(&s, p, err, sizeof(err));
		is_int(r, -ENOENT, "slot init on a missing database fails");
		snprintf(p, sizeof(p), "%s/junk.db", dir);
		{
			FILE *f = fopen(p, "w");
			int i;

			for (i = 0; i < 4096; i++)
				fputc((int)(rnd() & 0xff), f);
			fclose(f);
		}
		r = matcher_load(p, &m, err, sizeof(err));
		ok(r == -EBADMSG && m == NULL, "corrupt database: -EBADMSG (%s)", err);
	}
}

int main(void)
{
	struct matcher *m;
	char cmd[128];

	snprintf(dir, sizeof(dir), "/tmp/test-match.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}
	snprintf(path, sizeof(path), "%s/hashes.db", dir);
	setup();
	m = load();
	if (!ok(m != NULL, "matcher loads"))
		return done_testing();
	diag("PDQ kernel: %s", matcher_pdq_kernel());
	test_exact(m);
	test_pdq(m);
	test_kernels(m);
	matcher_put(m);
	test_check();
	test_allow_scope();
	test_rank();
	test_rank_across();
	test_two_lists_walk();
	test_two_lists_reload();
	test_slot();
	hashdb_close(&db);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		diag("could not remove %s", dir);
	return done_testing();
}
