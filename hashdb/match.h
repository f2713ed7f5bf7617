/*
 * match.h - the in-memory matcher that verdicts are made against.
 *
 * A struct matcher is an immutable snapshot of one database generation: exact tables for
 * md5/sha1/sha256, a flat PDQ array, list/category metadata and the allowlist.  A row's own
 * category (from the list file) overrides its list's: hit->category is the row's.  Once loaded it
 * is read-only, so any number of threads may query it concurrently.  Snapshots are reference
 * counted: matcher_get() takes a reference, matcher_put() drops one and frees the last.
 *
 * struct matcher_slot holds "the current snapshot" for a long-running process.  Readers take a
 * reference under a short mutex and never wait for a reload; matcher_slot_refresh() builds the
 * new snapshot outside the lock and swaps it in atomically, so lookups never block on a load.
 */
#ifndef HASHDB_MATCH_H
#define HASHDB_MATCH_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "hashdb/db.h"
#include "hashdb/hash.h"
#include "hashdb/pdq.h"

#define MATCH_PDQ_THRESHOLD_DEFAULT	31
#define MATCH_PDQ_MIN_QUALITY_DEFAULT	50

struct matcher;

struct match_opts {
	int pdq_threshold;		/* match when Hamming distance <= this */
	int pdq_min_quality;		/* uploads with lower PDQ quality are not PDQ-matched */
};

struct match_hit {
	enum hash_algo algo;		/* which hash matched */
	int distance;			/* PDQ Hamming distance; 0 for exact algorithms */
	int dihedral;			/* enum pdq_dihedral of the upload's variant that matched */
	int64_t list_id;
	char list[64];			/* list name */
	char category[32];		/* list category, e.g. "baseline", "illegal", "other" */
	uint8_t value[HASH_MAX_LEN];	/* the database hash that matched */
};

/*
 * Load the snapshot of the database at dbpath (opened read-only).  Fails with a negative errno
 * and a message in err when the file is missing, corrupt, locked too long or of a newer schema:
 * "no database" is never mistaken for "empty database".
 */
int matcher_load(const char *dbpath, struct matcher **out, char *err, size_t errlen);
struct matcher *matcher_get(struct matcher *m);
void matcher_put(struct matcher *m);

uint64_t matcher_generation(const struct matcher *m);
/*
 * HASH_BIT() mask of the algorithms the snapshot holds any hash of, in a list or (md5, sha1,
 * sha256) on the allowlist: the daemon hashes uploads only with those, and an exact allow
 * entry clears its file only when the upload's digest of that algorithm is known.
 */
unsigned matcher_algos(const struct matcher *m);
size_t matcher_count(const struct matcher *m, enum hash_algo algo);
/*
 * 1 if pred(category, arg) is true for the category of any list that holds a PDQ hash, else 0.
 * The daemon asks it when an image gives no PDQ: which lists could not be checked decides
 * on_error (per-category on_error.CATEGORY).
 */
int matcher_pdq_category_any(const struct matcher *m,
			     int (*pred)(const char *category, void *arg), void *arg);
/* Bytes of memory the snapshot uses. */
size_t matcher_memory(const struct matcher *m);

/*
 * The whole verdict: exact lookups of every digest in d (those in d->mask), then, when pdq is
 * non-NULL and its quality >= opts->pdq_min_quality, the nearest PDQ within the threshold over
 * every variant in pdq.  The allowlist clears what it vouches for: an exact entry (the upload's
 * md5/sha1/sha256) every hit, a PDQ entry (the upload's PDQ, or a database PDQ) PDQ hits only,
 * never an exact hit.  Returns 1 and fills *hit on a match, 0 when clean, negative errno on
 * failure.  Without a rank function (matcher_set_rank) the
 * first hit in the order sha256, sha1, md5, PDQ is reported; with one, the hit whose category
 * ranks highest over all of them (ties: that order; PDQ: within the threshold, then nearest),
 * so a file listed by SHA-256 in a log-only list and by MD5 or PDQ in a quarantine list is
 * reported with the quarantine list.
 */
int matcher_check(const struct matcher *m, const struct digests *d,
		  const struct pdq_result *pdq, const struct match_opts *opts,
		  struct match_hit *hit);

/* Single exact lookup (no allowlist): 1 and *hit filled, or 0. */
int matcher_lookup(const struct matcher *m, enum hash_algo algo, const uint8_t *value,
		   struct match_hit *hit);
/* Nearest PDQ within threshold over the variants in q (no allowlist, no quality gate). */
int matcher_lookup_pdq(const struct matcher *m, const struct pdq_result *q, int threshold,
		       struct match_hit *hit);

/*
 * The per-row metadata (the supplier's id, label, quality) of the database row a hit names,
 * read from dbpath: for the records of a match, after the verdict (the snapshot keeps no
 * labels, to keep it at ~35 bytes per hash).  A per-row category is in hit->category already.
 * Never waits for a lock (-EBUSY at once).  0, -ENOENT when the row is gone (changed since
 * the snapshot), or -errno from opening.
 */
int matcher_hit_meta(const char *dbpath, const struct match_hit *hit,
		     struct hashdb_rowmeta *out, char *err, size_t errlen);

/*
 * Which list a hit names when the matching hash is in several lists (or PDQ values of several
 * lists are within the threshold): the one whose category rank(category, arg) rates highest,
 * ties to the lowest list id (PDQ: to the nearest).
 * The daemon ranks by the action its config gives each category, so a hash in both a log-only
 * list and a quarantine list is quarantined.  NULL (the default) = lowest list id.  rank is
 * called from lookup threads (only for matches: duplicates, several hits of one upload, PDQ
 * candidates within the threshold): it must be thread-safe.  Process-wide.
 */
void matcher_set_rank(int (*rank)(const char *category, void *arg), void *arg);

/*
 * The PDQ scan kernel in use: "avx512" (VPOPCNTDQ), "avx2" or "scalar", picked once from the
 * CPU.  matcher_set_pdq_kernel() forces one (benchmarks, tests): -ENOTSUP if the CPU lacks it,
 * -EINVAL for an unknown name.  Process-wide; call before queries start.
 */
const char *matcher_pdq_kernel(void);
int matcher_set_pdq_kernel(const char *name);

struct matcher_slot {
	pthread_mutex_t lock;
	struct matcher *cur;		/* never NULL after a successful init */
	char *dbpath;
};

/* Loads the first snapshot; fails (like matcher_load) when the database is unusable. */
int matcher_slot_init(struct matcher_slot *s, const char *dbpath, char *err, size_t errlen);
/* A referenced snapshot; the caller matcher_put()s it. */
struct matcher *matcher_slot_get(struct matcher_slot *s);
/*
 * If the database generation changed, load it and swap it in.  Returns 1 when swapped, 0 when
 * unchanged, negative errno when the database became unusable (the old snapshot stays).
 */
int matcher_slot_refresh(struct matcher_slot *s, char *err, size_t errlen);
void matcher_slot_release(struct matcher_slot *s);

#endif
