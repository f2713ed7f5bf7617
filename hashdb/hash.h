/*
 * hash.h - streaming content hashes (MD5, SHA-1, SHA-256), and hex helpers.
 *
 * A struct hasher computes only the algorithms in its mask (the daemon asks only for those the
 * database holds).  Feeding the same bytes in any chunking gives the digests md5sum, sha1sum and
 * sha256sum print.  A hasher belongs to one thread at a time; no locking inside.
 * Two implementations, picked per hasher at hasher_init: on x86 CPUs with SHA-NI the fused one
 * (hashfused.h: the three interleaved in one pass, plain state, no allocation), elsewhere or
 * when HASHGATE_HASH_IMPL=evp (or hash_impl_set("evp")) OpenSSL's EVP.  Same digests either way.
 * Ownership: hasher_init() may allocate OpenSSL contexts that hasher_release() frees; release
 * is safe after a failed init and after final.
 */
#ifndef HASHDB_HASH_H
#define HASHDB_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "hashdb/hashfused.h"

enum hash_algo {
	HASH_MD5 = 0,
	HASH_SHA1 = 1,
	HASH_SHA256 = 2,
	HASH_PDQ = 3,		/* perceptual; never computed by struct hasher */
	HASH_NALGOS
};
#define HASH_BIT(a)	(1u << (a))
#define HASH_EXACT_MASK	(HASH_BIT(HASH_MD5) | HASH_BIT(HASH_SHA1) | HASH_BIT(HASH_SHA256))
#define HASH_MAX_LEN	32

/* Digest length in bytes (16, 20, 32, 32), or 0 for an invalid algo. */
size_t hash_algo_len(enum hash_algo algo);
/* "md5", "sha1", "sha256", "pdq"; NULL for an invalid algo. */
const char *hash_algo_name(enum hash_algo algo);
/* Inverse of hash_algo_name (case-insensitive, also "sha-1", "sha-256"): algo or -EINVAL. */
int hash_algo_parse(const char *name);

struct digests {
	unsigned mask;			/* HASH_BIT()s holding a valid digest */
	uint64_t size;			/* bytes fed */
	uint8_t md5[16];
	uint8_t sha1[20];
	uint8_t sha256[32];
};

/* The digest bytes for algo if present in d->mask, else NULL. */
const uint8_t *digests_get(const struct digests *d, enum hash_algo algo);

/* Callers read mask and size; the rest is hash.c's. */
struct hasher {
	unsigned mask;
	uint64_t size;
	unsigned fused;			/* algorithms live in f (fused implementation); 0 if EVP */
	void *ctx[3];			/* EVP_MD_CTX *, indexed by enum hash_algo (EVP only) */
	struct hashfused f;
};

/*
 * mask: HASH_BIT()s of exact algorithms; a HASH_PDQ bit is ignored, other bits give -EINVAL.
 * -ENOMEM, or -ENOTSUP when OpenSSL refuses an algorithm (MD5 in a FIPS-only setup; the fused
 * implementation refuses exactly what OpenSSL refuses, so a host answers the same on any CPU).
 */
int hasher_init(struct hasher *h, unsigned mask);
int hasher_update(struct hasher *h, const void *buf, size_t len);
/*
 * Feed bytes to only the algorithms of h that are in mask, without counting them in h->size:
 * for splitting one hasher's work between threads.  Each algorithm has its own context, so
 * calls with disjoint masks may run concurrently on the same hasher; the caller then adds
 * len to h->size once, after both are done.
 */
int hasher_update_part(struct hasher *h, unsigned mask, const void *buf, size_t len);
/* Writes the digests; the hasher can then only be released (or re-inited). */
int hasher_final(struct hasher *h, struct digests *out);
void hasher_release(struct hasher *h);
/* dst becomes an independent copy of live src (state and size): resume a hash later. */
int hasher_copy(struct hasher *dst, const struct hasher *src);

/*
 * Feed a file from offset from to its end to h: data extents with pread through buf (buflen
 * bytes), holes (SEEK_DATA/SEEK_HOLE; filesystems without them are read throughout) from a
 * zero buffer, never read.  h->size grows by the bytes fed.  The fd's offset is restored.
 * 0 or -errno.
 */
int hasher_update_fd(struct hasher *h, int fd, uint64_t from, void *buf, size_t buflen);
/* Hash a whole file with hasher_update_fd (the fd's offset is untouched). */
int hash_fd(int fd, unsigned mask, struct digests *out);

/*
 * The implementation hashers started from now on use: "sha-ni" or "evp".  Thread-safe.
 * The choice is "auto" (sha-ni where CPUID reports SHA-NI, SSSE3 and SSE4.1, else evp) unless
 * the environment variable HASHGATE_HASH_IMPL or hash_impl_set() says "evp".
 */
const char *hash_impl_name(void);
/* "auto" or "evp" for hashers started from now on (live ones keep theirs); -EINVAL otherwise. */
int hash_impl_set(const char *choice);
/* -EINVAL when HASHGATE_HASH_IMPL holds anything but auto or evp (auto is used then), for a
 * program to refuse to start; else 0. */
int hash_impl_env_check(void);

/* Lowercase hex of n bytes into out (2n+1 bytes, NUL-terminated). */
void hex_encode(const uint8_t *in, size_t n, char *out);
/* Parse exactly 2n hex digits (either case) from in; -EINVAL on anything else. */
int hex_decode(const char *in, size_t hexlen, uint8_t *out, size_t n);

#endif
