/*
 * hashfused.h - MD5, SHA-1 and SHA-256 in one pass over the data, for x86 CPUs with SHA-NI.
 *
 * MD5 is portable C on the scalar ALUs (a serial chain of ~4.5 cycles per byte); SHA-1 and
 * SHA-256 use the SHA-NI instructions, which run on other execution units.  One loop does the
 * three block functions of each 64-byte block interleaved round group by round group, so an
 * out-of-order core overlaps them: all three cost little more than MD5 alone.
 * struct hasher (hash.h) uses this when hashfused_supported() and HASHGATE_HASH_IMPL allow;
 * otherwise OpenSSL's EVP.  Gives bit for bit the digests of RFC 1321 and FIPS 180-4.
 *
 * Plain state, no allocation: init, copy (assignment or memcpy) and final cost nothing.
 * Each algorithm has its own state, byte count and partial-block buffer, and a call touches
 * only the algorithms in its mask: calls with disjoint masks may run concurrently on the same
 * struct (fs/hashq.c's MD5 lane).  Otherwise one thread at a time; no locking inside.
 * Byte counts are 64 bits.  Calling update or final on a CPU without SHA-NI (for a mask
 * with SHA-1 or SHA-256) is a caller bug: check hashfused_supported() first.
 */
#ifndef HASHDB_HASHFUSED_H
#define HASHDB_HASHFUSED_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hashfused_md5 {
	uint32_t h[4];
	uint64_t n;			/* bytes fed; n % 64 of them wait in buf */
	uint8_t buf[64];
};

struct hashfused_sha1 {
	uint32_t h[5];
	uint64_t n;
	uint8_t buf[64];
};

struct hashfused_sha256 {
	uint32_t h[8];
	uint64_t n;
	uint8_t buf[64];
};

/* Bits of mask are HASH_BIT(HASH_MD5) = 1, HASH_BIT(HASH_SHA1) = 2, HASH_BIT(HASH_SHA256) = 4. */
struct hashfused {
	struct hashfused_md5 md5;
	struct hashfused_sha1 sha1;
	struct hashfused_sha256 sha256;
};

/* CPUID says SHA-NI, SSSE3 and SSE4.1 (false on other architectures).  Thread-safe. */
bool hashfused_supported(void);
/* Starts the algorithms in mask afresh; the others' state is left alone. */
void hashfused_init(struct hashfused *f, unsigned mask);
void hashfused_update(struct hashfused *f, unsigned mask, const void *buf, size_t len);
/* Digests of the algorithms in mask (md5 16 bytes, sha1 20, sha256 32; NULL where not in
 * mask); their state is then spent (init again to reuse). */
void hashfused_final(struct hashfused *f, unsigned mask, uint8_t *md5, uint8_t *sha1,
		     uint8_t *sha256);

#endif
