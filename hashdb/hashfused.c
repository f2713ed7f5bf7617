/*
 * hashfused.c - MD5 (C) + SHA-1 and SHA-256 (SHA-NI) over the same bytes in one interleaved
 * loop; see hashfused.h.
 *
 * Why interleaved: each of the three is one long dependency chain per block (MD5 ~290 cycles
 * on the integer ALUs; SHA-NI rounds ~130-150 cycles each on the vector units), so run one
 * after the other they add up, while an out-of-order core can run them side by side if their
 * instructions sit close together in the stream.  blocks() therefore does, per 64-byte block,
 * 16 steps of four MD5 rounds, one SHA-256 four-round group and one or two SHA-1 four-round
 * groups each (20 SHA-1 groups spread over the 16 steps).  It is instantiated per subset of the
 * algorithms with the flags as constants, so a subset runs only its own code.
 *
 * Only the functions with the SHA-NI intrinsics are compiled for target("sha,sse4.1,ssse3");
 * the build flags stay generic and hashfused_supported() (CPUID) guards every call into them.
 * Invariants: every algorithm keeps its own buffer and count and a call only reads and writes
 * the state of the algorithms in its mask (concurrent disjoint masks are safe); x->n % 64
 * bytes of input wait in x->buf; states are kept in canonical order (h[0] = A), so a copy is
 * a plain struct copy.  Source of the SHA-NI sequences: Intel's SHA extensions white paper
 * (message schedule with sha256msg1/2, sha1msg1/2, sha1nexte).
 */
#include <string.h>

#include "hashdb/hashfused.h"

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
#define HF_X86 1
#include <cpuid.h>
#include <immintrin.h>
#define HF_TARGET __attribute__((target("sha,sse4.1,ssse3")))
#endif

#define HF_MD5		1u
#define HF_SHA1		2u
#define HF_SHA256	4u

static const uint32_t md5_iv[4] = { 0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476 };
static const uint32_t sha1_iv[5] = { 0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476,
				     0xc3d2e1f0 };
static const uint32_t sha256_iv[8] = { 0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
				       0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19 };

void hashfused_init(struct hashfused *f, unsigned mask)
{
	if (mask & HF_MD5) {
		memcpy(f->md5.h, md5_iv, sizeof(md5_iv));
		f->md5.n = 0;
	}
	if (mask & HF_SHA1) {
		memcpy(f->sha1.h, sha1_iv, sizeof(sha1_iv));
		f->sha1.n = 0;
	}
	if (mask & HF_SHA256) {
		memcpy(f->sha256.h, sha256_iv, sizeof(sha256_iv));
		f->sha256.n = 0;
	}
}

#ifdef HF_X86

bool hashfused_supported(void)
{
	unsigned a, b, c, d;

	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_SSSE3) || !(c & bit_SSE4_1))
		return false;
	if (__get_cpuid_max(0, NULL) < 7)
		return false;
	__cpuid_count(7, 0, a, b, c, d);
	return (b & bit_SHA) != 0;
}

static const uint32_t k256[64] __attribute__((aligned(16))) = {
	0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5,
	0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
	0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3,
	0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
	0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc,
	0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
	0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
	0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
	0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
	0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
	0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3,
	0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
	0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5,
	0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
	0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208,
	0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
};

/*
 * MD5 (RFC 1321).  Each round's chain through b is kept short: the message word, constant
 * and the terms of older variables are added first, off the chain.  G(b,c,d) = (b & d) |
 * (c & ~d) is a sum of two disjoint terms, so c & ~d joins the off-chain part.
 */
static inline uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

#define ROTL32(x, s)	((uint32_t)((x) << (s)) | (uint32_t)((x) >> (32 - (s))))
#define MD5_W(k)	le32(pm + 4 * (k))
#define MD5_F(a, b, c, d, k, s, t) \
	a += MD5_W(k) + (uint32_t)(t); a += (d ^ (b & (c ^ d))); a = ROTL32(a, s) + b
#define MD5_G(a, b, c, d, k, s, t) \
	a += MD5_W(k) + (uint32_t)(t) + (c & ~d); a += b & d; a = ROTL32(a, s) + b
#define MD5_H(a, b, c, d, k, s, t) \
	a += MD5_W(k) + (uint32_t)(t); a += b ^ (c ^ d); a = ROTL32(a, s) + b
#define MD5_I(a, b, c, d, k, s, t) \
	a += MD5_W(k) + (uint32_t)(t); a += c ^ (b | ~d); a = ROTL32(a, s) + b
#define MD5_4(fn, k0, s0, t0, k1, s1, t1, k2, s2, t2, k3, s3, t3) do { \
	if (dm) { \
		MD5_##fn(ma, mb, mc, md, k0, s0, t0); \
		MD5_##fn(md, ma, mb, mc, k1, s1, t1); \
		MD5_##fn(mc, md, ma, mb, k2, s2, t2); \
		MD5_##fn(mb, mc, md, ma, k3, s3, t3); \
	} } while (0)

/*
 * SHA-256 rounds 4g..4g+3.  The message words of group g are in s2m[g & 3]; groups 1-14
 * also advance the schedule (sha256msg1 for group g+3, sha256msg2 for group g+1).
 */
#define S256_G(g) do { \
	if (d2) { \
		__m128i k_; \
		if ((g) < 4) \
			s2m[(g) & 3] = _mm_shuffle_epi8(_mm_loadu_si128( \
				(const __m128i *)(p2 + 16 * ((g) & 3))), s2mask); \
		k_ = _mm_add_epi32(s2m[(g) & 3], \
				   _mm_load_si128((const __m128i *)&k256[4 * (g)])); \
		s2cdgh = _mm_sha256rnds2_epu32(s2cdgh, s2abef, k_); \
		if ((g) >= 3 && (g) <= 14) { \
			s2m[((g) + 1) & 3] = _mm_add_epi32(s2m[((g) + 1) & 3], \
				_mm_alignr_epi8(s2m[(g) & 3], s2m[((g) + 3) & 3], 4)); \
			s2m[((g) + 1) & 3] = _mm_sha256msg2_epu32(s2m[((g) + 1) & 3], \
								   s2m[(g) & 3]); \
		} \
		k_ = _mm_shuffle_epi32(k_, 0x0e); \
		s2abef = _mm_sha256rnds2_epu32(s2abef, s2cdgh, k_); \
		if ((g) >= 1 && (g) <= 12) \
			s2m[((g) + 3) & 3] = _mm_sha256msg1_epu32(s2m[((g) + 3) & 3], \
								   s2m[(g) & 3]); \
	} } while (0)

/* The round function of sha1rnds4 must be an immediate. */
#define S1_RNDS4(x, e, f) ((f) == 0 ? _mm_sha1rnds4_epu32(x, e, 0) : \
			   (f) == 1 ? _mm_sha1rnds4_epu32(x, e, 1) : \
			   (f) == 2 ? _mm_sha1rnds4_epu32(x, e, 2) : \
				      _mm_sha1rnds4_epu32(x, e, 3))

/*
 * SHA-1 rounds 4g..4g+3, E alternating between s1e0 and s1e1 (ec: this group's).  Groups
 * 1-16 start the schedule of group g+3 (sha1msg1), 2-17 add the xor for g+2, 3-18 finish
 * g+1 (sha1msg2).
 */
#define S1_GX(g, ec, eo) do { \
	if ((g) < 4) \
		s1m[(g) & 3] = _mm_shuffle_epi8(_mm_loadu_si128( \
			(const __m128i *)(p1 + 16 * ((g) & 3))), s1mask); \
	if ((g) == 0) \
		ec = _mm_add_epi32(ec, s1m[0]); \
	else \
		ec = _mm_sha1nexte_epu32(ec, s1m[(g) & 3]); \
	eo = s1abcd; \
	if ((g) >= 3 && (g) <= 18) \
		s1m[((g) + 1) & 3] = _mm_sha1msg2_epu32(s1m[((g) + 1) & 3], s1m[(g) & 3]); \
	s1abcd = S1_RNDS4(s1abcd, ec, (g) / 5); \
	if ((g) >= 1 && (g) <= 16) \
		s1m[((g) + 3) & 3] = _mm_sha1msg1_epu32(s1m[((g) + 3) & 3], s1m[(g) & 3]); \
	if ((g) >= 2 && (g) <= 17) \
		s1m[((g) + 2) & 3] = _mm_xor_si128(s1m[((g) + 2) & 3], s1m[(g) & 3]); \
	} while (0)
#define S1_G(g) do { \
	if (d1) { \
		if ((g) & 1) \
			S1_GX(g, s1e1, s1e0); \
		else \
			S1_GX(g, s1e0, s1e1); \
	} } while (0)

/*
 * n blocks: MD5 from pm, SHA-1 from p1, SHA-256 from p2 (the same pointer when hashing a
 * buffer; the padded final blocks differ), for the algorithms whose flag is set.  dm, d1, d2
 * are constants at every call, so each instantiation keeps only its own code.
 */
static inline __attribute__((always_inline)) HF_TARGET void
blocks(struct hashfused *f, const uint8_t *pm, const uint8_t *p1, const uint8_t *p2, size_t n,
       const int dm, const int d1, const int d2)
{
	const __m128i s2mask = _mm_set_epi64x(0x0c0d0e0f08090a0bULL, 0x0405060700010203ULL);
	const __m128i s1mask = _mm_set_epi64x(0x0001020304050607ULL, 0x08090a0b0c0d0e0fULL);
	uint32_t ma = 0, mb = 0, mc = 0, md = 0;
	__m128i s2abef = _mm_setzero_si128(), s2cdgh = _mm_setzero_si128();
	__m128i s1abcd = _mm_setzero_si128(), s1e0 = _mm_setzero_si128();
	__m128i s1e1 = _mm_setzero_si128(), s2m[4], s1m[4];

	if (dm) {
		ma = f->md5.h[0];
		mb = f->md5.h[1];
		mc = f->md5.h[2];
		md = f->md5.h[3];
	}
	if (d2) {
		__m128i t = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&f->sha256.h[0]),
					      0xb1);	/* B A D C */
		__m128i u = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&f->sha256.h[4]),
					      0x1b);	/* H G F E */

		s2abef = _mm_alignr_epi8(t, u, 8);	/* lanes F E B A */
		s2cdgh = _mm_blend_epi16(u, t, 0xf0);	/* lanes H G D C */
	}
	if (d1) {
		s1abcd = _mm_shuffle_epi32(_mm_loadu_si128((const __m128i *)&f->sha1.h[0]), 0x1b);
		s1e0 = _mm_set_epi32((int)f->sha1.h[4], 0, 0, 0);
	}
	while (n--) {
		uint32_t sa = ma, sb = mb, sc = mc, sd = md;
		__m128i s2abef0 = s2abef, s2cdgh0 = s2cdgh, s1abcd0 = s1abcd, s1e00 = s1e0;

		MD5_4(F,  0,  7, 0xd76aa478,   1, 12, 0xe8c7b756,   2, 17, 0x242070db,   3, 22, 0xc1bdceee);
		S256_G(0);
		S1_G(0);
		MD5_4(F,  4,  7, 0xf57c0faf,   5, 12, 0x4787c62a,   6, 17, 0xa8304613,   7, 22, 0xfd469501);
		S256_G(1);
		S1_G(1);
		MD5_4(F,  8,  7, 0x698098d8,   9, 12, 0x8b44f7af,  10, 17, 0xffff5bb1,  11, 22, 0x895cd7be);
		S256_G(2);
		S1_G(2);
		MD5_4(F, 12,  7, 0x6b901122,  13, 12, 0xfd987193,  14, 17, 0xa679438e,  15, 22, 0x49b40821);
		S256_G(3);
		S1_G(3);
		S1_G(4);
		MD5_4(G,  1,  5, 0xf61e2562,   6,  9, 0xc040b340,  11, 14, 0x265e5a51,   0, 20, 0xe9b6c7aa);
		S256_G(4);
		S1_G(5);
		MD5_4(G,  5,  5, 0xd62f105d,  10,  9, 0x02441453,  15, 14, 0xd8a1e681,   4, 20, 0xe7d3fbc8);
		S256_G(5);
		S1_G(6);
		MD5_4(G,  9,  5, 0x21e1cde6,  14,  9, 0xc33707d6,   3, 14, 0xf4d50d87,   8, 20, 0x455a14ed);
		S256_G(6);
		S1_G(7);
		MD5_4(G, 13,  5, 0xa9e3e905,   2,  9, 0xfcefa3f8,   7, 14, 0x676f02d9,  12, 20, 0x8d2a4c8a);
		S256_G(7);
		S1_G(8);
		S1_G(9);
		MD5_4(H,  5,  4, 0xfffa3942,   8, 11, 0x8771f681,  11, 16, 0x6d9d6122,  14, 23, 0xfde5380c);
		S256_G(8);
		S1_G(10);
		MD5_4(H,  1,  4, 0xa4beea44,   4, 11, 0x4bdecfa9,   7, 16, 0xf6bb4b60,  10, 23, 0xbebfbc70);
		S256_G(9);
		S1_G(11);
		MD5_4(H, 13,  4, 0x289b7ec6,   0, 11, 0xeaa127fa,   3, 16, 0xd4ef3085,   6, 23, 0x04881d05);
		S256_G(10);
		S1_G(12);
		MD5_4(H,  9,  4, 0xd9d4d039,  12, 11, 0xe6db99e5,  15, 16, 0x1fa27cf8,   2, 23, 0xc4ac5665);
		S256_G(11);
		S1_G(13);
		S1_G(14);
		MD5_4(I,  0,  6, 0xf4292244,   7, 10, 0x432aff97,  14, 15, 0xab9423a7,   5, 21, 0xfc93a039);
		S256_G(12);
		S1_G(15);
		MD5_4(I, 12,  6, 0x655b59c3,   3, 10, 0x8f0ccc92,  10, 15, 0xffeff47d,   1, 21, 0x85845dd1);
		S256_G(13);
		S1_G(16);
		MD5_4(I,  8,  6, 0x6fa87e4f,  15, 10, 0xfe2ce6e0,   6, 15, 0xa3014314,  13, 21, 0x4e0811a1);
		S256_G(14);
		S1_G(17);
		MD5_4(I,  4,  6, 0xf7537e82,  11, 10, 0xbd3af235,   2, 15, 0x2ad7d2bb,   9, 21, 0xeb86d391);
		S256_G(15);
		S1_G(18);
		S1_G(19);

		if (dm) {
			ma += sa;
			mb += sb;
			mc += sc;
			md += sd;
			pm += 64;
		}
		if (d2) {
			s2abef = _mm_add_epi32(s2abef, s2abef0);
			s2cdgh = _mm_add_epi32(s2cdgh, s2cdgh0);
			p2 += 64;
		}
		if (d1) {
			s1e0 = _mm_sha1nexte_epu32(s1e0, s1e00);
			s1abcd = _mm_add_epi32(s1abcd, s1abcd0);
			p1 += 64;
		}
	}
	if (dm) {
		f->md5.h[0] = ma;
		f->md5.h[1] = mb;
		f->md5.h[2] = mc;
		f->md5.h[3] = md;
	}
	if (d2) {
		__m128i t = _mm_shuffle_epi32(s2abef, 0x1b);	/* A B E F */
		__m128i u = _mm_shuffle_epi32(s2cdgh, 0xb1);	/* G H C D */

		_mm_storeu_si128((__m128i *)&f->sha256.h[0], _mm_blend_epi16(t, u, 0xf0));
		_mm_storeu_si128((__m128i *)&f->sha256.h[4], _mm_alignr_epi8(u, t, 8));
	}
	if (d1) {
		_mm_storeu_si128((__m128i *)&f->sha1.h[0], _mm_shuffle_epi32(s1abcd, 0x1b));
		f->sha1.h[4] = (uint32_t)_mm_extract_epi32(s1e0, 3);
	}
}

typedef void blocks_fn(struct hashfused *f, const uint8_t *pm, const uint8_t *p1,
		       const uint8_t *p2, size_t n);

#define BLOCKS_VARIANT(name, dm, d1, d2) \
	static HF_TARGET void name(struct hashfused *f, const uint8_t *pm, const uint8_t *p1, \
				   const uint8_t *p2, size_t n) \
	{ \
		blocks(f, pm, p1, p2, n, dm, d1, d2); \
	}
BLOCKS_VARIANT(blocks_m, 1, 0, 0)
BLOCKS_VARIANT(blocks_1, 0, 1, 0)
BLOCKS_VARIANT(blocks_m1, 1, 1, 0)
BLOCKS_VARIANT(blocks_2, 0, 0, 1)
BLOCKS_VARIANT(blocks_m2, 1, 0, 1)
BLOCKS_VARIANT(blocks_12, 0, 1, 1)
BLOCKS_VARIANT(blocks_m12, 1, 1, 1)

/* Indexed by the mask of algorithms. */
static blocks_fn *const variants[8] = {
	NULL, blocks_m, blocks_1, blocks_m1, blocks_2, blocks_m2, blocks_12, blocks_m12,
};

#else /* !HF_X86 */

bool hashfused_supported(void)
{
	return false;
}

typedef void blocks_fn(struct hashfused *f, const uint8_t *pm, const uint8_t *p1,
		       const uint8_t *p2, size_t n);
static blocks_fn *const variants[8];	/* never called: hashfused_supported() is false */

#endif

/* The partial-block buffer of algorithm bit a, and its byte count. */
static uint8_t *buf_of(struct hashfused *f, unsigned a, uint64_t **n)
{
	switch (a) {
	case HF_MD5:
		*n = &f->md5.n;
		return f->md5.buf;
	case HF_SHA1:
		*n = &f->sha1.n;
		return f->sha1.buf;
	default:
		*n = &f->sha256.n;
		return f->sha256.buf;
	}
}

void hashfused_update(struct hashfused *f, unsigned mask, const void *data, size_t len)
{
	const uint8_t *p = data;
	const uint8_t *bp[3] = { NULL, NULL, NULL };
	unsigned a, fill = 64;
	size_t nb;

	mask &= HF_MD5 | HF_SHA1 | HF_SHA256;
	if (!mask || !len)
		return;
	/* The algorithms normally stand at the same offset in the block; if not (a caller fed
	 * them different amounts), each goes alone. */
	for (a = 1; a <= HF_SHA256; a <<= 1) {
		uint64_t *n;

		if (!(mask & a))
			continue;
		buf_of(f, a, &n);
		if (fill == 64)
			fill = (unsigned)(*n % 64);
		else if (fill != *n % 64) {
			for (a = 1; a <= HF_SHA256; a <<= 1)
				if (mask & a)
					hashfused_update(f, a, data, len);
			return;
		}
	}
	for (a = 1; a <= HF_SHA256; a <<= 1) {
		uint64_t *n;

		if (mask & a) {
			buf_of(f, a, &n);
			*n += len;
		}
	}
	if (fill) {
		size_t k = len < 64 - fill ? len : 64 - fill;
		unsigned i;

		for (a = 1, i = 0; a <= HF_SHA256; a <<= 1, i++) {
			uint64_t *n;

			if (mask & a) {
				bp[i] = buf_of(f, a, &n);
				memcpy((uint8_t *)bp[i] + fill, p, k);
			}
		}
		if (fill + k < 64)
			return;
		variants[mask](f, bp[0], bp[1], bp[2], 1);
		p += k;
		len -= k;
	}
	nb = len / 64;
	if (nb)
		variants[mask](f, p, p, p, nb);
	p += nb * 64;
	len -= nb * 64;
	if (len)
		for (a = 1; a <= HF_SHA256; a <<= 1) {
			uint64_t *n;

			if (mask & a)
				memcpy(buf_of(f, a, &n), p, len);
		}
}

/* The padded last block(s) of algorithm a into pad (128 bytes); returns their number. */
static size_t pad_of(struct hashfused *f, unsigned a, uint8_t pad[128])
{
	uint64_t *n, bits;
	const uint8_t *b = buf_of(f, a, &n);
	size_t fill = (size_t)(*n % 64), nb = fill < 56 ? 1 : 2, i;

	bits = *n << 3;
	memcpy(pad, b, fill);
	pad[fill] = 0x80;
	memset(pad + fill + 1, 0, 64 * nb - fill - 1);
	for (i = 0; i < 8; i++) {
		if (a == HF_MD5)	/* little-endian length */
			pad[64 * nb - 8 + i] = (uint8_t)(bits >> (8 * i));
		else
			pad[64 * nb - 1 - i] = (uint8_t)(bits >> (8 * i));
	}
	return nb;
}

static void put_be32(uint8_t *out, const uint32_t *h, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		out[4 * i] = (uint8_t)(h[i] >> 24);
		out[4 * i + 1] = (uint8_t)(h[i] >> 16);
		out[4 * i + 2] = (uint8_t)(h[i] >> 8);
		out[4 * i + 3] = (uint8_t)h[i];
	}
}

void hashfused_final(struct hashfused *f, unsigned mask, uint8_t *md5, uint8_t *sha1,
		     uint8_t *sha256)
{
	uint8_t pad[3][128];
	size_t nb[3] = { 0, 0, 0 };
	unsigned a, i;

	mask &= HF_MD5 | HF_SHA1 | HF_SHA256;
	for (a = 1, i = 0; a <= HF_SHA256; a <<= 1, i++)
		if (mask & a)
			nb[i] = pad_of(f, a, pad[i]);
	/* One fused pass when every algorithm has as many final blocks (the usual case). */
	if ((!nb[0] || !nb[1] || nb[0] == nb[1]) && (!nb[0] || !nb[2] || nb[0] == nb[2]) &&
	    (!nb[1] || !nb[2] || nb[1] == nb[2])) {
		size_t n = nb[0] ? nb[0] : nb[1] ? nb[1] : nb[2];

		if (n)
			variants[mask](f, pad[0], pad[1], pad[2], n);
	} else {
		for (a = 1, i = 0; a <= HF_SHA256; a <<= 1, i++)
			if (nb[i])
				variants[a](f, pad[i], pad[i], pad[i], nb[i]);
	}
	if (mask & HF_MD5)
		for (i = 0; i < 16; i++)
			md5[i] = (uint8_t)(f->md5.h[i / 4] >> (8 * (i % 4)));
	if (mask & HF_SHA1)
		put_be32(sha1, f->sha1.h, 5);
	if (mask & HF_SHA256)
		put_be32(sha256, f->sha256.h, 8);
}
