/*
 * jpegfast.c - the 512x512 PDQ sample of a large baseline JPEG, decoded sparsely and exactly.
 *
 * What TurboJPEG (libjpeg-turbo 2.1.5) computes for a pixel is reproduced from the facts of
 * its arithmetic, with our own code:
 *  - ISLOW IDCT: each pass is an integer-linear map (adds, integer multiplies, left shifts)
 *    followed by DESCALE, so an output row needs one row of pass 1 and the whole pass 2 of
 *    that row; the per-row matrices are derived once by running the butterfly on unit
 *    vectors.  The post-IDCT range limit wraps modulo 1024 like libjpeg's table.
 *  - fancy upsampling (h2v1, h1v2, h2v2 triangle filters with their +1/+2, +7/+8 biases;
 *    the row above the first / below the last chroma row is that row itself);
 *  - jdcolor.c's YCbCr->RGB tables (16 fraction bits).
 * Only the rows and columns the sample touches are reconstructed (planes below); the Huffman
 * data is still decoded in full, once, and each block is reconstructed as soon as it is
 * decoded (in L1, no row buffer).
 *
 * Invariants:
 *  - results are either identical to the full decode or -ENOTSUP: every anomaly (invalid
 *    code, run past coefficient 63, marker or end of data inside the scan, extraneous bytes,
 *    unexpected restart marker, missing EOI, any marker libjpeg would warn about) bails out;
 *  - libjpeg-turbo's AVX2 IDCT computes in 16-bit lanes; it equals the C code when the
 *    dequantized coefficients stay within +-8191, the pass-1 results within +-16383 and the
 *    pass-2 results within -512..511.  Blocks outside those bounds bail out (none of
 *    the shared test photos or generated q40-q100 images has one; 8-bit data gives at most
 *    about +-1100), so neither IDCT's overflow behaviour matters;
 *  - memory: 3 planes of at most 1024x1024 bytes, and for the speculative second decoder
 *    a compact coefficient stream of at most 10 bytes per input byte + 16 MiB (else the
 *    helper gives up); nothing proportional to the pixel count beyond the sampled planes
 *    and the per-block-row tables.
 *
 * Speculative split (two threads, images without restart markers): a helper thread starts
 * decoding in the middle of the entropy-coded data with DC predictors 0 and block index 0 in
 * the MCU, and records where its first blocks start (bit position, block-in-MCU index, its
 * DC predictors).  The calling thread decodes from the start; once it reaches a block start
 * the helper also decoded from, with the same block-in-MCU index, both decodes are identical
 * from there on (Huffman codes resynchronise), so it stops.  The helper's blocks are then
 * placed at their absolute index, with each component's DC shifted by (true predictor -
 * helper's predictor).  The helper must end exactly at the last block; no sync, an error,
 * a count mismatch or a helper lagging behind (starved of CPU by other load) makes the
 * calling thread decode the rest itself.  The helper's blocks wait in a compact stream until
 * the sync; then both threads rebuild the remaining rows from it, and each composes half of
 * the output.  With restart markers
 * the helper starts right after a marker near the middle, where the state is known.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "hashdb/jpegfast.h"

#define LB		10		/* Huffman lookahead bits */
#define PRESIZE		512
#define MAXPLANE	(2 * PRESIZE)
#define NREC		8192		/* block starts the helper records */
#define MIN_SPLIT_BYTES	(256u << 10)	/* smaller scans are decoded by one thread */
#define MIN_PIXELS	2000000		/* smaller images: the full decode is as fast */

static const uint8_t zz_nat[64] = {
	0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
	12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
	35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
	58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
};

/*
 * For the table-driven decode: zz_nat and 1 << (its row), extended past 63 to a scratch
 * slot (64) that no row holds, so a write for a run past the end is harmless until the
 * check after it.
 */
#define ZZX		96	/* k <= 63 + 15 + 16 */
#define BLKN		72	/* a block dec_block writes: 64 + the scratch slot */
static const uint8_t zz_x[ZZX] = {
	0, 1, 8, 16, 9, 2, 3, 10, 17, 24, 32, 25, 18, 11, 4, 5,
	12, 19, 26, 33, 40, 48, 41, 34, 27, 20, 13, 6, 7, 14, 21, 28,
	35, 42, 49, 56, 57, 50, 43, 36, 29, 22, 15, 23, 30, 37, 44, 51,
	58, 59, 52, 45, 38, 31, 39, 46, 53, 60, 61, 54, 47, 55, 62, 63,
	64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
	64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64, 64,
};

static const uint8_t zz_rowbit[ZZX] = {
	1, 1, 2, 4, 2, 1, 1, 2, 4, 8, 16, 8, 4, 2, 1, 1,
	2, 4, 8, 16, 32, 64, 32, 16, 8, 4, 2, 1, 1, 2, 4, 8,
	16, 32, 64, 128, 128, 64, 32, 16, 8, 4, 2, 4, 8, 16, 32, 64,
	128, 128, 64, 32, 16, 8, 16, 32, 64, 128, 128, 64, 32, 64, 128, 128,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};

struct huff {
	uint16_t lut[1 << LB];	/* (length << 8) | symbol; 0 = code longer than LB */
	/*
	 * AC, what the next LB bits decode to when that is one coefficient, or one followed
	 * by a second or by the end of block (0: use lut):
	 *   bits 0-4 bits used, 5 end of block after them, 7 end of block alone,
	 *   8-15 run before the first coefficient, 16-31 its value,
	 *   32-39 advance to the second (1 + its run; 0: none), 40-44 the bits of the
	 *   first alone, 48-63 the second's value (the first's again when there is
	 *   none, written twice to the same place).
	 */
	uint64_t fac[1 << LB];
	int32_t maxcode[18];
	int32_t valoff[18];
	uint8_t val[256];
	int nsym;
	int ok;
};

struct comp {
	int id, h, v, tq, td, ta;
	int fh, fv;		/* upsampling factor per axis (1 or 2) */
	int bw, bh;		/* blocks per row and column, MCU padding included */
	int dw, dh;		/* component size in samples */
	/* sparse planes: needed component rows/columns and where they go */
	int *rowmap;		/* component row -> plane row, or -1 */
	int *colmap;		/* component column -> plane column, or -1 */
	int nprow, npcol;
	int ncb;		/* column blocks holding needed columns */
	int *cb_bx, *cb_pc;	/* block column, first plane column */
	uint8_t *cb_mask;	/* needed columns inside the block */
	uint8_t *cb_n;		/* how many (the plane columns cb_pc.. cb_pc + cb_n - 1) */
	int *bx_k;		/* block column -> index in cb_*, or -1 */
	uint8_t *br_n;		/* block row -> how many of its rows are needed, */
	uint8_t *br_rr;		/* which (8 per block row), */
	int *br_off;		/* and where their plane rows start (8 per block row) */
	uint8_t *plane;		/* nprow x npcol samples */
	int16_t qn[64] __attribute__((aligned(16)));	/* quantization, natural order */
};

struct jf {
	int W, H, ncomp, hmax, vmax, mcux, mcuy, ri;
	int nbm;		/* blocks per MCU */
	int bm_comp[10], bm_x[10], bm_y[10];	/* component, block column/row in the MCU */
	uint16_t q[4][64];
	int qok[4];
	struct huff dc[4], ac[4];
	struct comp c[3];
	int scomp[3];		/* scan order -> component */
	const uint8_t *scan, *end;
	int saw_jfif, saw_adobe, adobe_xform;
	struct jpegfast_coefs *coefs;	/* set: blocks go there, not to the planes */
	/* output: the helper composes half of it when it took part (composed set) */
	float *luma;
	struct composer *cp;
	int composed, grey;
};

/* IDCT row matrices (m1[r][k]: weight of input k in output r before the descale). */
static int32_t m1[8][8];
#if defined(__SSE2__)
static __m128i m2lo[4], m2hi[4], m1p[8][4];
#endif
static pthread_once_t idct_once = PTHREAD_ONCE_INIT;

/* ---- Huffman tables ---- */

/* The s-bit coefficient value in bits [at, at + s) of an LB-bit index, as HUFF_EXTEND. */
static int ext_bits(int idx, int at, int s)
{
	int extra = (idx >> at) & ((1 << s) - 1);

	return extra < (1 << (s - 1)) ? extra - (1 << s) + 1 : extra;
}

/*
 * Where a one-coefficient entry leaves room in its LB bits for a whole second symbol, add
 * it: a coefficient (not a zero run) or the end of block.  Bits past the first symbol are
 * zero in idx2, which is fine: a code of len2 bits depends only on its first len2.
 */
static void fac_pairs(struct huff *h)
{
	int i;

	for (i = 0; i < (1 << LB); i++) {
		uint64_t f = h->fac[i];
		int used = (int)(f & 0x1f), idx2, e, len2, sym2, r2, s2;

		if (!f || (f & 0x80) || used >= LB)
			continue;
		idx2 = (i << used) & ((1 << LB) - 1);
		e = h->lut[idx2];
		len2 = e >> 8;
		sym2 = e & 0xff;
		r2 = sym2 >> 4;
		s2 = sym2 & 15;
		if (!e || len2 + s2 > LB - used)
			continue;
		if (!s2) {
			if (r2 != 15)	/* end of block, as dec_block reads any r/0 but ZRL */
				h->fac[i] = (f & ~(uint64_t)0x1f) | 0x20 | (uint64_t)(used + len2);
			continue;
		}
		h->fac[i] = (f & 0xffffffffull & ~(uint64_t)0x1f) | (uint64_t)(used + len2 + s2) |
			    (uint64_t)(1 + r2) << 32 | (uint64_t)used << 40 |
			    (uint64_t)(uint16_t)ext_bits(idx2, LB - len2 - s2, s2) << 48;
	}
}

static int huff_build(struct huff *h, const uint8_t bits[17], const uint8_t *val, int is_dc)
{
	int code = 0, p = 0, l, i, nsym = 0;
	int codes[256], lens[256];

	memset(h, 0, sizeof(*h));
	for (l = 1; l <= 16; l++)
		nsym += bits[l];
	if (nsym > 256)
		return -1;
	for (l = 1; l <= 16; l++) {
		for (i = 0; i < bits[l]; i++) {
			codes[p] = code++;
			lens[p++] = l;
		}
		/* as libjpeg: the codes of each length must fit (no all-ones code) */
		if (bits[l] && code >= (1 << l))
			return -1;
		code <<= 1;
	}
	memcpy(h->val, val, nsym);
	h->nsym = nsym;
	p = 0;
	for (l = 1; l <= 16; l++) {
		if (bits[l]) {
			h->valoff[l] = p - codes[p];
			p += bits[l];
			h->maxcode[l] = codes[p - 1];
		} else {
			h->maxcode[l] = -1;
		}
	}
	h->maxcode[17] = 0x7fffffff;
	for (p = 0; p < nsym; p++) {
		int sym = val[p], len = lens[p], s = sym & 15, r = sym >> 4, n, base;

		if (is_dc && sym > 15)
			return -1;
		if (len > LB)
			continue;
		base = codes[p] << (LB - len);
		for (n = 0; n < (1 << (LB - len)); n++) {
			h->lut[base + n] = (uint16_t)(len << 8 | sym);
			if (!is_dc && s && len + s <= LB) {
				uint16_t v = (uint16_t)ext_bits(base + n, LB - len - s, s);

				h->fac[base + n] = (uint64_t)v << 48 | (uint64_t)(len + s) << 40 |
						   (uint64_t)v << 16 | (uint64_t)r << 8 |
						   (uint64_t)(len + s);
			} else if (!is_dc && sym == 0) {
				h->fac[base + n] = 0x80 + (uint64_t)len;	/* end of block */
			}
		}
	}
	if (!is_dc)
		fac_pairs(h);
	h->ok = 1;
	return 0;
}

/* ---- bit reader over the entropy-coded data ---- */

struct dec {
	uint64_t acc;		/* next bit is bit 63 */
	int n;			/* bits in acc */
	int fake;		/* of which zero bits past the data (marker or end) */
	const uint8_t *p, *end;
	const uint8_t *safe;	/* no FF in [p, safe): the fast refill's bound */
	uint64_t dbytes;	/* data bytes loaded (a stuffed FF 00 counts once) */
	unsigned pred[3];	/* DC predictors (wrap like libjpeg's int) */
};

static inline uint64_t load_be64(const uint8_t *p)
{
	uint64_t w;

	memcpy(&w, p, 8);
	return __builtin_bswap64(w);
}

/*
 * Careful refill, byte by byte: FF 00 gives FF, a marker or the end gives zero bits (counted
 * in fake).  Leaves 56..63 bits and where the next FF is, which bounds the fast path.
 */
static void __attribute__((noinline)) refill_slow(struct dec *d)
{
	while (d->n <= 55) {
		unsigned b = 0;

		if (!d->fake) {
			if (d->p >= d->end) {
				d->fake = 8;
			} else if (d->p[0] == 0xff) {
				if (d->p + 1 < d->end && d->p[1] == 0) {
					b = 0xff;
					d->p += 2;
					d->dbytes++;
				} else {
					d->fake = 8;
				}
			} else {
				b = *d->p++;
				d->dbytes++;
			}
		} else {
			d->fake += 8;
		}
		d->acc |= (uint64_t)b << (56 - d->n);
		d->n += 8;
	}
	if (d->fake) {
		d->safe = d->p;
	} else {
		const uint8_t *f = memchr(d->p, 0xff, (size_t)(d->end - d->p));

		d->safe = f ? f : d->end;
	}
}

/*
 * At least 56 bits in acc (n <= 63 on entry).  Where the next 8 bytes hold no FF this is
 * branch-free: what of them does not fit is ORed in again, identically, by the next refill.
 */
static inline void refill(struct dec *d)
{
	if (__builtin_expect(d->p + 8 <= d->safe, 1)) {
		unsigned adv = (unsigned)(63 - d->n) >> 3;

		d->acc |= load_be64(d->p) >> d->n;
		d->p += adv;
		d->dbytes += adv;
		d->n |= 56;
	} else {
		/* on a copy: taking d's address would keep the decoder's state out of
		 * registers in the hot loop */
		struct dec t = *d;

		refill_slow(&t);
		*d = t;
	}
}

static inline unsigned getbits(struct dec *d, int s)
{
	unsigned v = (unsigned)(d->acc >> (64 - s));

	d->acc <<= s;
	d->n -= s;
	return v;
}

/* Branch-free: coefficient signs are random, a branch here mispredicts half the time. */
static inline int extend(unsigned v, int s)
{
	int neg = -(int)(v < (1u << (s - 1)));	/* all ones when the value is negative */

	return (int)v + (neg & (int)((~0u << s) + 1));
}

static inline int huff_sym(struct dec *d, const struct huff *h)
{
	unsigned e = h->lut[d->acc >> (64 - LB)];
	int l;

	if (e) {
		l = (int)(e >> 8);
		d->acc <<= l;
		d->n -= l;
		return (int)(e & 0xff);
	}
	for (l = LB + 1; l <= 16; l++) {
		int32_t code = (int32_t)(d->acc >> (64 - l));

		if (code <= h->maxcode[l]) {
			unsigned idx = (unsigned)(code + h->valoff[l]);

			if (idx >= (unsigned)h->nsym)
				return -1;
			d->acc <<= l;
			d->n -= l;
			return h->val[idx];
		}
	}
	return -1;	/* libjpeg warns "bad Huffman code" */
}

/* As libjpeg after "bad Huffman code": drop 16 bits and go on. */
static inline void skip_bad_code(struct dec *d)
{
	d->acc <<= 16;
	d->n -= 16;
}

/* Real (not padding) bits not yet consumed; negative once padding was consumed. */
static inline int real_bits(const struct dec *d)
{
	return d->n - d->fake;
}

static inline uint64_t bitpos(const struct dec *d)
{
	return 8 * d->dbytes - (uint64_t)(d->n - d->fake);
}

/*
 * One block: the DC predictor of component ci updated, the quantized coefficients (as
 * libjpeg stores them: JCOEF = int16) into blk (natural order, zero beforehand), and into
 * *rm the rows holding non-zero values (0: the DC alone; otherwise bit 0 is set).
 * Returns 0, or -1 on an anomaly.  The speculative helper passes tolerant: still out of
 * step, it goes on as libjpeg would (a bad code: 16 bits, value 0; a run past coefficient
 * 63 ends the block) and gets 1, which fails the fast path if that block is ever used.
 * Dequantization and its bound are the IDCT's.
 */
static inline __attribute__((always_inline)) int
dec_block(struct dec *dd, const struct huff *dc, const struct huff *ac, int ci, int16_t *blk,
	  unsigned *rm, const int tolerant)
{
	/* a local copy stays in registers: the stores into blk may alias *dd */
	struct dec l = *dd, *d = &l;
	unsigned *pred = &l.pred[ci];
	int s, k, r, i, odd = 0;
	unsigned mask = 1;

	refill(d);
	s = huff_sym(d, dc);
	if (s < 0) {
		/* a bad DC code: the helper goes on with the value 0 */
		if (!tolerant)
			return -1;
		skip_bad_code(d);
		odd = 1;
		s = 0;
	}
	if (s)
		*pred += (unsigned)extend(getbits(d, s), s);
	blk[0] = (int16_t)*pred;	/* libjpeg stores the predictor as a JCOEF */
	/*
	 * A table hit takes at most LB bits, so refilling every fourth symbol (to >= 56) is
	 * enough for those; the rare longer codes refill before and after themselves.  A
	 * fixed period is predictable, where testing the bit count mispredicts often.
	 */
	for (k = 1, i = 0; k < 64; k++, i++) {
		uint64_t f;
		int v;

		if (!(i & 3))
			refill(d);
		f = ac->fac[d->acc >> (64 - LB)];
		if (f) {
			/* one or two coefficients (the second may be the first again) */
			uint64_t acc0 = d->acc;

			d->acc <<= f & 0x1f;
			d->n -= (int)(f & 0x1f);
			if (f & 0x80)
				break;
			k += (int)(f >> 8) & 0xff;
			blk[zz_x[k]] = (int16_t)(uint16_t)(f >> 16);
			mask |= zz_rowbit[k];
			if (__builtin_expect(k >= 63, 0)) {
				if (k > 63)
					goto anomaly;
				/* coefficient 63 ends the block: what follows is not ours */
				d->n += (int)(f & 0x1f) - (int)((f >> 40) & 0x1f);
				d->acc = acc0 << ((f >> 40) & 0x1f);
				continue;
			}
			k += (int)(f >> 32) & 0xff;
			blk[zz_x[k]] = (int16_t)(uint16_t)(f >> 48);
			mask |= zz_rowbit[k];
			if (k > 63)
				goto anomaly;
			if (f & 0x20) {
				k++;	/* past the coefficient: rm below must not say DC only */
				break;
			}
			continue;
		} else {
			refill(d);
			s = huff_sym(d, ac);
			if (s < 0) {
				skip_bad_code(d);
				goto anomaly;
			}
			r = s >> 4;
			s &= 15;
			v = s ? extend(getbits(d, s), s) : 0;
			refill(d);
			if (!s) {
				if (r != 15)
					break;
				k += 15;
				continue;
			}
			k += r;
		}
		if (k > 63)
			goto anomaly;
		blk[zz_nat[k]] = (int16_t)v;
		mask |= zz_rowbit[k];
	}
	goto done;
anomaly:
	/* a bad code, or a run past coefficient 63 (libjpeg would write coefficient 63) */
	if (!tolerant)
		return -1;
	odd = 1;
done:
	*rm = mask == 1 && k == 1 ? 0 : mask;
	*dd = l;
	return odd;
}

/* ---- header parsing ---- */

static unsigned be16(const uint8_t *p)
{
	return (unsigned)p[0] << 8 | p[1];
}

static int parse_sof(struct jf *jf, const uint8_t *p, unsigned len)
{
	int i, j;

	if (len < 6 || p[0] != 8)
		return -1;
	jf->H = (int)be16(p + 1);
	jf->W = (int)be16(p + 3);
	jf->ncomp = p[5];
	if (jf->ncomp != 1 && jf->ncomp != 3)
		return -1;
	if (len != 6u + 3u * (unsigned)jf->ncomp || jf->W <= 0 || jf->H <= 0)
		return -1;
	for (i = 0; i < jf->ncomp; i++) {
		struct comp *c = &jf->c[i];

		c->id = p[6 + 3 * i];
		c->h = p[7 + 3 * i] >> 4;
		c->v = p[7 + 3 * i] & 15;
		c->tq = p[8 + 3 * i];
		if (c->h < 1 || c->h > 4 || c->v < 1 || c->v > 4 || c->tq > 3)
			return -1;
		for (j = 0; j < i; j++)
			if (jf->c[j].id == c->id)
				return -1;
	}
	if (jf->ncomp == 3) {
		if (jf->c[0].h > 2 || jf->c[0].v > 2)
			return -1;
		for (i = 1; i < 3; i++)
			if (jf->c[i].h != 1 || jf->c[i].v != 1)
				return -1;
	}
	return 0;
}

static int parse_dht(struct jf *jf, const uint8_t *p, unsigned len)
{
	while (len > 0) {
		uint8_t bits[17];
		unsigned tc, th, n = 0, l;

		if (len < 17)
			return -1;
		tc = p[0] >> 4;
		th = p[0] & 15;
		if (tc > 1 || th > 3)
			return -1;
		bits[0] = 0;
		for (l = 1; l <= 16; l++) {
			bits[l] = p[l];
			n += p[l];
		}
		if (n > 256 || 17 + n > len)
			return -1;
		/* a bad table is only an error if a scan uses it, as in libjpeg */
		(void)huff_build(tc ? &jf->ac[th] : &jf->dc[th], bits, p + 17, !tc);
		p += 17 + n;
		len -= 17 + n;
	}
	return 0;
}

static int parse_dqt(struct jf *jf, const uint8_t *p, unsigned len)
{
	while (len > 0) {
		unsigned pq = p[0] >> 4, tq = p[0] & 15, i, need;

		if (pq > 1 || tq > 3)
			return -1;
		need = 1 + 64 * (pq + 1);
		if (len < need)
			return -1;
		for (i = 0; i < 64; i++) {
			unsigned v = pq ? be16(p + 1 + 2 * i) : p[1 + i];

			if (v > 255)	/* libjpeg keeps these in 16-bit multipliers */
				return -1;
			jf->q[tq][zz_nat[i]] = (uint16_t)v;
		}
		jf->qok[tq] = 1;
		p += need;
		len -= need;
	}
	return 0;
}

static int parse_sos(struct jf *jf, const uint8_t *p, unsigned len)
{
	int ns, i, j;

	if (len < 1)
		return -1;
	ns = p[0];
	if (ns != jf->ncomp || len != 4u + 2u * (unsigned)ns)
		return -1;
	for (i = 0; i < ns; i++) {
		int id = p[1 + 2 * i], found = -1;

		for (j = 0; j < jf->ncomp; j++)
			if (jf->c[j].id == id)
				found = j;
		if (found < 0)
			return -1;
		for (j = 0; j < i; j++)
			if (jf->scomp[j] == found)
				return -1;
		jf->scomp[i] = found;
		jf->c[found].td = p[2 + 2 * i] >> 4;
		jf->c[found].ta = p[2 + 2 * i] & 15;
		if (jf->c[found].td > 3 || jf->c[found].ta > 3 ||
		    !jf->dc[jf->c[found].td].ok || !jf->ac[jf->c[found].ta].ok ||
		    !jf->qok[jf->c[found].tq])
			return -1;
	}
	/* Ss=0, Se=63, Ah=Al=0: anything else makes libjpeg warn for a sequential frame */
	if (p[1 + 2 * ns] != 0 || p[2 + 2 * ns] != 63 || p[3 + 2 * ns] != 0)
		return -1;
	return 0;
}

static int parse_headers(struct jf *jf, const uint8_t *buf, size_t len)
{
	const uint8_t *p = buf + 2, *end = buf + len;
	int frame = 0;

	if (len < 4 || buf[0] != 0xff || buf[1] != 0xd8)
		return -1;
	for (;;) {
		unsigned m, l;

		if (p >= end || *p != 0xff)
			return -1;	/* extraneous bytes: libjpeg warns */
		while (p < end && *p == 0xff)
			p++;
		if (p >= end)
			return -1;
		m = *p++;
		if (m == 0xd8 || m == 0xd9 || m == 0x01 || (m >= 0xd0 && m <= 0xd7) || m == 0)
			return -1;
		if (end - p < 2)
			return -1;
		l = be16(p);
		if (l < 2 || (size_t)(end - p) < l)
			return -1;
		switch (m) {
		case 0xc0:
		case 0xc1:
			if (frame++ || parse_sof(jf, p + 2, l - 2) < 0)
				return -1;
			break;
		case 0xc4:
			if (parse_dht(jf, p + 2, l - 2) < 0)
				return -1;
			break;
		case 0xdb:
			if (parse_dqt(jf, p + 2, l - 2) < 0)
				return -1;
			break;
		case 0xdd:
			if (l != 4)
				return -1;
			jf->ri = (int)be16(p + 2);
			break;
		case 0xda:
			if (!frame || parse_sos(jf, p + 2, l - 2) < 0)
				return -1;
			jf->scan = p + l;
			jf->end = end;
			return 0;
		case 0xe0:
			if (l - 2 >= 14 && !memcmp(p + 2, "JFIF", 5)) {
				if (p[7] != 1)
					return -1;	/* libjpeg warns about the version */
				jf->saw_jfif = 1;
			}
			break;
		case 0xee:
			if (l - 2 >= 12 && !memcmp(p + 2, "Adobe", 5)) {
				jf->saw_adobe = 1;
				jf->adobe_xform = p[13];
			}
			break;
		default:
			if ((m >= 0xe1 && m <= 0xef) || m == 0xfe)
				break;
			return -1;	/* other SOFn, DAC, DNL, JPGn, ... */
		}
		p += l;
	}
}

/* Geometry, colour space, dequantization; 0 or -1 (unsupported). */
static int setup(struct jf *jf)
{
	int i;

	if (jf->ncomp == 3) {
		if (jf->saw_jfif)
			;
		else if (jf->saw_adobe) {
			if (jf->adobe_xform != 1)
				return -1;	/* RGB, or a transform libjpeg warns about */
		} else if (jf->c[0].id == 82 && jf->c[1].id == 71 && jf->c[2].id == 66) {
			return -1;		/* 'R','G','B': no colour transform */
		}
		jf->hmax = jf->c[0].h;
		jf->vmax = jf->c[0].v;
		jf->mcux = (jf->W + 8 * jf->hmax - 1) / (8 * jf->hmax);
		jf->mcuy = (jf->H + 8 * jf->vmax - 1) / (8 * jf->vmax);
		for (i = 0; i < 3; i++) {
			struct comp *c = &jf->c[i];

			c->fh = jf->hmax / c->h;
			c->fv = jf->vmax / c->v;
			c->bw = jf->mcux * c->h;
			c->bh = jf->mcuy * c->v;
			c->dw = (jf->W * c->h + jf->hmax - 1) / jf->hmax;
			c->dh = (jf->H * c->v + jf->vmax - 1) / jf->vmax;
		}
		jf->nbm = 0;
		for (i = 0; i < 3; i++) {
			struct comp *c = &jf->c[jf->scomp[i]];
			int h, v;

			for (v = 0; v < c->v; v++)
				for (h = 0; h < c->h; h++) {
					jf->bm_comp[jf->nbm] = jf->scomp[i];
					jf->bm_x[jf->nbm] = h;
					jf->bm_y[jf->nbm] = v;
					jf->nbm++;
				}
		}
	} else {
		struct comp *c = &jf->c[0];

		jf->hmax = jf->vmax = 1;
		c->fh = c->fv = 1;
		c->dw = jf->W;
		c->dh = jf->H;
		c->bw = jf->mcux = (jf->W + 7) / 8;
		c->bh = jf->mcuy = (jf->H + 7) / 8;
		c->v = c->h = 1;
		jf->nbm = 1;
		jf->bm_comp[0] = 0;
		jf->bm_x[0] = jf->bm_y[0] = 0;
	}
	for (i = 0; i < jf->ncomp; i++) {
		int k;

		for (k = 0; k < 64; k++)
			jf->c[i].qn[k] = (int16_t)jf->q[jf->c[i].tq][k];
	}
	return 0;
}

/* ---- exact ISLOW IDCT of selected rows ---- */

/* libjpeg's RIGHT_SHIFT: an arithmetic shift (floor), spelt out for negative values. */
static inline int32_t asr(int32_t v, int n)
{
	return v >= 0 ? v >> n : ~(~v >> n);
}

/* libjpeg-turbo's islow butterfly (CONST_BITS 13) without its final descale. */
static void islow_1d(const int64_t in[8], int64_t out[8])
{
	int64_t t0, t1, t2, t3, t10, t11, t12, t13, z1, z2, z3, z4, z5;

	z2 = in[2];
	z3 = in[6];
	z1 = (z2 + z3) * 4433;
	t2 = z1 + z3 * -15137;
	t3 = z1 + z2 * 6270;
	t0 = (in[0] + in[4]) * 8192;
	t1 = (in[0] - in[4]) * 8192;
	t10 = t0 + t3;
	t13 = t0 - t3;
	t11 = t1 + t2;
	t12 = t1 - t2;
	t0 = in[7];
	t1 = in[5];
	t2 = in[3];
	t3 = in[1];
	z1 = t0 + t3;
	z2 = t1 + t2;
	z3 = t0 + t2;
	z4 = t1 + t3;
	z5 = (z3 + z4) * 9633;
	t0 *= 2446;
	t1 *= 16819;
	t2 *= 25172;
	t3 *= 12299;
	z1 *= -7373;
	z2 *= -20995;
	z3 *= -16069;
	z4 *= -3196;
	z3 += z5;
	z4 += z5;
	t0 += z1 + z3;
	t1 += z2 + z4;
	t2 += z2 + z3;
	t3 += z1 + z4;
	out[0] = t10 + t3;
	out[7] = t10 - t3;
	out[1] = t11 + t2;
	out[6] = t11 - t2;
	out[2] = t12 + t1;
	out[5] = t12 - t1;
	out[3] = t13 + t0;
	out[4] = t13 - t0;
}

static void idct_init(void)
{
	int k, r;

	for (k = 0; k < 8; k++) {
		int64_t in[8] = { 0 }, out[8];

		in[k] = 1;
		islow_1d(in, out);
		for (r = 0; r < 8; r++)
			m1[r][k] = (int32_t)out[r];
	}
#if defined(__SSE2__)
	for (k = 0; k < 4; k++) {
		int16_t a[8], b[8];

		for (r = 0; r < 4; r++) {
			a[2 * r] = (int16_t)m1[r][2 * k];
			a[2 * r + 1] = (int16_t)m1[r][2 * k + 1];
			b[2 * r] = (int16_t)m1[r + 4][2 * k];
			b[2 * r + 1] = (int16_t)m1[r + 4][2 * k + 1];
		}
		m2lo[k] = _mm_loadu_si128((const __m128i *)a);
		m2hi[k] = _mm_loadu_si128((const __m128i *)b);
		for (r = 0; r < 8; r++)
			m1p[r][k] = _mm_set1_epi32((int)((uint32_t)(uint16_t)m1[r][2 * k] |
							 (uint32_t)m1[r][2 * k + 1] << 16));
	}
#endif
}

/*
 * One block's non-zero coefficient rows, dequantized and bound-checked once, so that each
 * of the block's needed output rows costs only its own two passes.
 */
struct dqblk {
#if defined(__SSE2__)
	__m128i lo[4], hi[4];	/* rows 2j, 2j+1 interleaved: columns 0-3, columns 4-7 */
	int j[4];		/* which row pair */
#else
	int32_t dq[64];
	unsigned rm;
#endif
	int n;
};

/*
 * Dequantize blk (rm = rows with non-zero coefficients, not 0) and zero those rows, which
 * leaves the block as the decoder wants the next one; -1 out of the bounds.
 */
static int dq_load(struct dqblk *b, int16_t *blk, const int16_t *q, unsigned rm)
{
#if defined(__SSE2__)
	__m128i over = _mm_setzero_si128();
	int j;

	b->n = 0;
	for (j = 0; j < 4; j++) {
		__m128i x, y, xh, yh;

		if (!(rm & (3u << (2 * j))))
			continue;
		/* the 32-bit product must lie within +-8191 (see the header) */
		x = _mm_loadu_si128((const __m128i *)(blk + 16 * j));
		y = _mm_loadu_si128((const __m128i *)(blk + 16 * j + 8));
		_mm_storeu_si128((__m128i *)(blk + 16 * j), _mm_setzero_si128());
		_mm_storeu_si128((__m128i *)(blk + 16 * j + 8), _mm_setzero_si128());
		xh = _mm_mulhi_epi16(x, _mm_load_si128((const __m128i *)(q + 16 * j)));
		yh = _mm_mulhi_epi16(y, _mm_load_si128((const __m128i *)(q + 16 * j + 8)));
		x = _mm_mullo_epi16(x, _mm_load_si128((const __m128i *)(q + 16 * j)));
		y = _mm_mullo_epi16(y, _mm_load_si128((const __m128i *)(q + 16 * j + 8)));
		over = _mm_or_si128(over, _mm_xor_si128(xh, _mm_srai_epi16(x, 15)));
		over = _mm_or_si128(over, _mm_xor_si128(yh, _mm_srai_epi16(y, 15)));
		over = _mm_or_si128(over, _mm_or_si128(
			_mm_cmpgt_epi16(x, _mm_set1_epi16(8191)),
			_mm_cmplt_epi16(x, _mm_set1_epi16(-8191))));
		over = _mm_or_si128(over, _mm_or_si128(
			_mm_cmpgt_epi16(y, _mm_set1_epi16(8191)),
			_mm_cmplt_epi16(y, _mm_set1_epi16(-8191))));
		b->lo[b->n] = _mm_unpacklo_epi16(x, y);
		b->hi[b->n] = _mm_unpackhi_epi16(x, y);
		b->j[b->n++] = j;
	}
	return _mm_movemask_epi8(over) ? -1 : 0;
#else
	int k;

	b->rm = rm;
	for (k = 0; k < 64; k++) {
		b->dq[k] = blk[k] * q[k];
		blk[k] = 0;
		if (b->dq[k] > 8191 || b->dq[k] < -8191)
			return -1;
	}
	return 0;
#endif
}

/* Row rr of the IDCT of a loaded block into out[8] as 0..255 samples; -1 out of bounds. */
static int dq_row(const struct dqblk *b, int rr, uint8_t out[8])
{
#if defined(__SSE2__)
	__m128i lo = _mm_setzero_si128(), hi = _mm_setzero_si128(), w, t, v0, v1;
	int i;

	for (i = 0; i < b->n; i++) {
		__m128i m = m1p[rr][b->j[i]];

		lo = _mm_add_epi32(lo, _mm_madd_epi16(b->lo[i], m));
		hi = _mm_add_epi32(hi, _mm_madd_epi16(b->hi[i], m));
	}
	lo = _mm_srai_epi32(_mm_add_epi32(lo, _mm_set1_epi32(1 << 10)), 11);
	hi = _mm_srai_epi32(_mm_add_epi32(hi, _mm_set1_epi32(1 << 10)), 11);
	/* |ws| <= 16383: packs saturates beyond 32767, so the check can follow the pack */
	w = _mm_packs_epi32(lo, hi);
	t = _mm_or_si128(_mm_cmpgt_epi16(w, _mm_set1_epi16(16383)),
			 _mm_cmplt_epi16(w, _mm_set1_epi16(-16383)));
	if (_mm_movemask_epi8(t))
		return -1;
	v0 = _mm_setzero_si128();
	v1 = _mm_setzero_si128();
	{
		/* pass 2: out[c] = sum_k m1[c][k] ws[k], vectorised over c */
#define P2(J, S) do { \
		__m128i x = _mm_shuffle_epi32(w, S); \
		v0 = _mm_add_epi32(v0, _mm_madd_epi16(x, m2lo[J])); \
		v1 = _mm_add_epi32(v1, _mm_madd_epi16(x, m2hi[J])); \
	} while (0)
		P2(0, 0x00);
		P2(1, 0x55);
		P2(2, 0xaa);
		P2(3, 0xff);
#undef P2
	}
	v0 = _mm_srai_epi32(_mm_add_epi32(v0, _mm_set1_epi32(1 << 17)), 18);
	v1 = _mm_srai_epi32(_mm_add_epi32(v1, _mm_set1_epi32(1 << 17)), 18);
	w = _mm_packs_epi32(v0, v1);
	t = _mm_or_si128(_mm_cmpgt_epi16(w, _mm_set1_epi16(511)),
			 _mm_cmplt_epi16(w, _mm_set1_epi16(-512)));
	if (_mm_movemask_epi8(t))
		return -1;
	w = _mm_add_epi16(w, _mm_set1_epi16(128));
	_mm_storel_epi64((__m128i *)out, _mm_packus_epi16(w, w));
	return 0;
#else
	int32_t ws[8];
	int c, k;

	for (c = 0; c < 8; c++) {
		int32_t s = 0;

		for (k = 0; k < 8; k++)
			if (b->rm & (1u << k))
				s += m1[rr][k] * b->dq[8 * k + c];
		ws[c] = asr(s + (1 << 10), 11);
		if (ws[c] > 16383 || ws[c] < -16383)
			return -1;
	}
	for (c = 0; c < 8; c++) {
		int32_t s = 0;

		for (k = 0; k < 8; k++)
			s += m1[c][k] * ws[k];
		s = asr(s + (1 << 17), 18);
		if (s > 511 || s < -512)
			return -1;
		s += 128;
		out[c] = (uint8_t)(s < 0 ? 0 : s > 255 ? 255 : s);
	}
	return 0;
#endif
}

/* ---- the sparse planes ---- */

static void planes_release(struct jf *jf)
{
	int i;

	for (i = 0; i < 3; i++) {
		struct comp *c = &jf->c[i];

		free(c->rowmap);
		free(c->colmap);
		free(c->cb_bx);
		free(c->cb_pc);
		free(c->cb_mask);
		free(c->cb_n);
		free(c->bx_k);
		free(c->br_n);
		free(c->br_rr);
		free(c->br_off);
		free(c->plane);
		c->rowmap = c->colmap = c->cb_bx = c->cb_pc = c->bx_k = c->br_off = NULL;
		c->cb_mask = c->cb_n = c->br_n = c->br_rr = c->plane = NULL;
	}
}

/* Mark the component samples that output sample s (0..511 of an axis of n px) needs. */
static void mark_axis(int *map, int n, int dn, int f)
{
	int s;

	for (s = 0; s < PRESIZE; s++) {
		int x = (int)(((int64_t)s * n) >> 9);

		if (f == 1) {
			map[x] = 1;
		} else {
			int cx = x >> 1, nb = (x & 1) ? cx + 1 : cx - 1;

			map[cx] = 1;
			if (nb >= 0 && nb < dn)
				map[nb] = 1;
		}
	}
}

static int planes_init(struct jf *jf)
{
	int i;

	for (i = 0; i < jf->ncomp; i++) {
		struct comp *c = &jf->c[i];
		int x, n, lastbx = -1;

		c->rowmap = calloc((size_t)c->dh, sizeof(int));
		c->colmap = calloc((size_t)c->dw, sizeof(int));
		if (!c->rowmap || !c->colmap)
			return -ENOMEM;
		mark_axis(c->rowmap, jf->H, c->dh, c->fv);
		mark_axis(c->colmap, jf->W, c->dw, c->fh);
		for (x = n = 0; x < c->dh; x++)
			c->rowmap[x] = c->rowmap[x] ? n++ : -1;
		c->nprow = n;
		for (x = n = 0; x < c->dw; x++)
			c->colmap[x] = c->colmap[x] ? n++ : -1;
		c->npcol = n;
		c->cb_bx = malloc(sizeof(int) * (size_t)(n + 1));
		c->cb_pc = malloc(sizeof(int) * (size_t)(n + 1));
		c->cb_mask = calloc((size_t)n + 1, 1);
		c->cb_n = calloc((size_t)n + 1, 1);
		c->plane = malloc((size_t)c->nprow * (size_t)c->npcol + 1);
		if (!c->cb_bx || !c->cb_pc || !c->cb_mask || !c->cb_n || !c->plane)
			return -ENOMEM;
		c->ncb = 0;
		for (x = 0; x < c->dw; x++) {
			if (c->colmap[x] < 0)
				continue;
			if (x >> 3 != lastbx) {
				lastbx = x >> 3;
				c->cb_bx[c->ncb] = lastbx;
				c->cb_pc[c->ncb] = c->colmap[x];
				c->ncb++;
			}
			c->cb_mask[c->ncb - 1] |= (uint8_t)(1u << (x & 7));
			c->cb_n[c->ncb - 1]++;
		}
		/* per block column and block row, for recon_block */
		c->bx_k = malloc(sizeof(int) * (size_t)c->bw);
		c->br_n = calloc((size_t)c->bh, 1);
		c->br_rr = malloc(8 * (size_t)c->bh);
		c->br_off = malloc(sizeof(int) * 8 * (size_t)c->bh);
		if (!c->bx_k || !c->br_n || !c->br_rr || !c->br_off)
			return -ENOMEM;
		for (x = 0; x < c->bw; x++)
			c->bx_k[x] = -1;
		for (x = 0; x < c->ncb; x++)
			c->bx_k[c->cb_bx[x]] = x;
		for (x = 0; x < c->bh * 8 && x < c->dh; x++) {
			int br = x >> 3;

			if (c->rowmap[x] < 0)
				continue;
			c->br_rr[8 * br + c->br_n[br]] = (uint8_t)(x & 7);
			c->br_off[8 * br + c->br_n[br]] = c->rowmap[x] * c->npcol;
			c->br_n[br]++;
		}
	}
	return 0;
}

/* The needed columns of one block row (mask: columns of the block, in order) into dst. */
static void put_cols(uint8_t *dst, const uint8_t out[8], unsigned mask)
{
	if (mask == 0xff) {
		memcpy(dst, out, 8);
		return;
	}
	for (; mask; mask &= mask - 1)
		*dst++ = out[__builtin_ctz(mask)];
}

/* Zero the rows of a block the decoder wrote (rm as in dec_block). */
static void blk_clear(int16_t *blk, unsigned rm)
{
	int r;

	blk[0] = 0;
	for (r = 0; rm; r++, rm >>= 1)
		if (rm & 1)
			memset(blk + 8 * r, 0, 16);
}

/*
 * Sink: reconstruct the needed samples of component ci's block (block row br, column bx)
 * straight from the decoder's block, and zero the block for the next one.
 */
static int recon_block(struct jf *jf, int ci, int br, int bx, int16_t *blk, unsigned rm)
{
	const struct comp *c = &jf->c[ci];
	int nr = c->br_n[br], k = c->bx_k[bx], pc, i;
	const uint8_t *rr = c->br_rr + 8 * br;
	const int *off = c->br_off + 8 * br;
	unsigned mask;
	struct dqblk b;
	uint8_t out[8];

	if (!nr || k < 0) {
		blk_clear(blk, rm);
		return 0;
	}
	mask = c->cb_mask[k];
	pc = c->cb_pc[k];
	if (!rm) {
		/* DC only: ws = 4*dc in column 0, so every output is (dc + 4) >> 3; the
		 * bounds are the IDCT's (|ws| <= 16383, result <= 511) */
		int dc = blk[0] * c->qn[0], v;

		blk[0] = 0;
		if (dc > 4091 || dc < -4095)
			return -1;
		v = asr(dc + 4, 3) + 128;
		v = v < 0 ? 0 : v > 255 ? 255 : v;
		for (i = 0; i < nr; i++)
			memset(c->plane + off[i] + pc, v, c->cb_n[k]);
		return 0;
	}
	if (dq_load(&b, blk, c->qn, rm) < 0)
		return -1;
	if (rm == 1) {
		/* row 0 only: pass 1 gives every row the same workspace, 4 * dq */
		if (dq_row(&b, 0, out) < 0)
			return -1;
		for (i = 0; i < nr; i++)
			put_cols(c->plane + off[i] + pc, out, mask);
		return 0;
	}
	for (i = 0; i < nr; i++) {
		if (dq_row(&b, rr[i], out) < 0)
			return -1;
		put_cols(c->plane + off[i] + pc, out, mask);
	}
	return 0;
}

/* Sink: copy the block into the coefficient arrays. */
static int sink_coefs(struct jf *jf, int ci, int br, int bx, int16_t *blk, unsigned rm)
{
	const struct comp *c = &jf->c[ci];

	memcpy(jf->coefs->coef[ci] + ((size_t)br * c->bw + bx) * 64, blk, sizeof(int16_t) * 64);
	blk_clear(blk, rm);
	return 0;
}

/* ---- sequential decode ---- */

/* Restart marker expected before MCU number mcu (mcu > 0, ri > 0). */
static int do_restart(struct dec *d, int nrst)
{
	const uint8_t *p;

	if (real_bits(d) < 0 || real_bits(d) >= 8)
		return -1;	/* padding consumed, or whole bytes left over */
	/* our reader stops at a marker, so p is at the next unread byte */
	p = d->p;
	if (p >= d->end || *p != 0xff)
		return -1;
	while (p < d->end && *p == 0xff)
		p++;
	if (p >= d->end || *p != 0xd0 + (nrst & 7))
		return -1;
	d->p = p + 1;
	d->safe = d->p;
	d->acc = 0;
	d->n = 0;
	d->fake = 0;
	d->pred[0] = d->pred[1] = d->pred[2] = 0;
	return 0;
}

/* After the last MCU: only padding bits, then (fill bytes and) EOI. */
static int check_end(const struct dec *d)
{
	const uint8_t *p = d->p;

	if (real_bits(d) < 0 || real_bits(d) >= 8)
		return -1;
	if (p >= d->end || *p != 0xff)
		return -1;
	while (p < d->end && *p == 0xff)
		p++;
	return p < d->end && *p == 0xd9 ? 0 : -1;
}

/*
 * The speculative helper's state.  Everything the helper writes before it sets rec_ready or
 * t2_done is read by the calling thread only after taking mu and seeing the flag.
 */
struct split {
	struct jf *jf;
	int spec;		/* 1: speculative start; 0: right after a restart marker */
	int force;		/* JPEGFAST_FORCE_SPLIT: always wait for the helper (tests) */
	const uint8_t *start;
	uint64_t startbit;	/* spec: position of start in the destuffed data, in bits */
	long a0;		/* known start: absolute block index there */
	int nrst0;		/* known start: restart markers before it */
	uint64_t *rpos;		/* spec: the helper's block starts */
	unsigned (*rpred)[3];
	uint8_t *ridx;
	int nrec;
	uint8_t *cbuf;		/* compact blocks: dc pred (4), count | anomaly << 7 (1),
				 * count x (pos, lo, hi) */
	size_t clen, ccap;
	size_t *ck;		/* cbuf offset of every 64th block */
	pthread_mutex_t mu;
	pthread_cond_t cv;
	int rec_ready, t2_done, verdict, valid, recon_err;
	atomic_int abort;
	double t0, t2_ms;	/* start, helper's decode done (statistics) */
	long s_abs, j;		/* sync: absolute block s_abs = the helper's block j */
	atomic_long next_row;	/* the next MCU row of the helper's part not yet claimed */
	atomic_long progress;	/* blocks the helper has decoded (every 256th) */
	unsigned delta[3];
	int rdone, rerr;	/* threads done rebuilding; one failed */
	int composed[2], grey[2];
};

static __thread struct jpegfast_stats last_stats;

void jpegfast_last_stats(struct jpegfast_stats *st)
{
	*st = last_stats;
}

static double ms_now(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec * 1e3 + (double)t.tv_nsec / 1e6;
}

/* Where an absolute block index lies: block b of MCU (mx, my). */
struct cursor {
	int b, mx, my;
};

static void cur_at(const struct jf *jf, long a, struct cursor *cu)
{
	long mcu = a / jf->nbm;

	cu->b = (int)(a % jf->nbm);
	cu->mx = (int)(mcu % jf->mcux);
	cu->my = (int)(mcu / jf->mcux);
}

static inline void cur_next(const struct jf *jf, struct cursor *cu)
{
	if (++cu->b == jf->nbm) {
		cu->b = 0;
		if (++cu->mx == jf->mcux) {
			cu->mx = 0;
			cu->my++;
		}
	}
}

/* Hand the decoded block at cu to the sink (which zeroes it). */
static inline int sink_at(struct jf *jf, const struct cursor *cu, int16_t *blk, unsigned rm)
{
	int ci = jf->bm_comp[cu->b];
	const struct comp *c = &jf->c[ci];
	int br = cu->my * c->v + jf->bm_y[cu->b], bx = cu->mx * c->h + jf->bm_x[cu->b];

	if (jf->coefs)
		return sink_coefs(jf, ci, br, bx, blk, rm);
	return recon_block(jf, ci, br, bx, blk, rm);
}

/*
 * The helper's compact blocks: its DC predictor (4 bytes, host order), the row mask rm as
 * dec_block gives it, the anomaly flag, then the 16 bytes of each row in rm (row 0 holds
 * the helper's DC, replaced on use).  A photo's block takes 40-60 bytes.
 */
#define CBLK_MAX	(6 + 8 * 16)

static uint8_t *cblk_put(uint8_t *o, unsigned pred, unsigned rm, int odd, int16_t *blk)
{
	unsigned m;

	memcpy(o, &pred, 4);
	o[4] = (uint8_t)rm;
	o[5] = (uint8_t)odd;
	o += 6;
	for (m = rm; m; m &= m - 1) {
		int16_t *row = blk + 8 * __builtin_ctz(m);

		memcpy(o, row, 16);
		memset(row, 0, 16);
		o += 16;
	}
	blk[0] = 0;
	return o;
}

static const uint8_t *cblk_skip(const uint8_t *q)
{
	return q + 6 + 16 * __builtin_popcount(q[4]);
}

/* Place the helper's blocks for absolute blocks [from, to) and reconstruct them. */
static int recon_compact(struct jf *jf, struct split *sp, long from, long to, int16_t *blk)
{
	long ord = sp->j + (from - sp->s_abs), k, a;
	const uint8_t *q = sp->cbuf + sp->ck[ord >> 6];
	struct cursor cu;

	for (k = ord & ~63L; k < ord; k++)
		q = cblk_skip(q);
	cur_at(jf, from, &cu);
	for (a = from; a < to; a++, cur_next(jf, &cu)) {
		unsigned pred, rm = q[4], m;

		if (q[5])
			return -1;	/* the caller's decode would have failed here */
		memcpy(&pred, q, 4);
		q += 6;
		for (m = rm; m; m &= m - 1) {
			memcpy(blk + 8 * __builtin_ctz(m), q, 16);
			q += 16;
		}
		blk[0] = (int16_t)(pred + sp->delta[jf->bm_comp[cu.b]]);
		if (sink_at(jf, &cu, blk, rm) < 0)
			return -1;
	}
	return 0;
}

/*
 * Both threads rebuild the rows after the sync row from the helper's blocks, claiming a few
 * MCU rows at a time, so neither waits for the other whatever their start.
 */
static int recon_rows(struct jf *jf, struct split *sp)
{
	const long rowb = (long)jf->mcux * jf->nbm;
	int16_t blk[64] __attribute__((aligned(16))) = { 0 };

	for (;;) {
		long r = atomic_fetch_add(&sp->next_row, 4);

		if (r >= jf->mcuy)
			return 0;
		if (recon_compact(jf, sp, r * rowb, (r + 4 < jf->mcuy ? r + 4 : jf->mcuy) * rowb,
				  blk) < 0)
			return -1;
	}
}

/*
 * Photos need 6-9 bytes of compact blocks per byte of the helper's data, but crafted data
 * can code a block in 2 bits: past this much the helper gives up, and the calling thread
 * decodes alone.
 */
static int t2_grow(struct split *sp)
{
	size_t ncap = sp->ccap * 2, max = (size_t)(sp->jf->end - sp->jf->scan) * 10 + (16u << 20);
	uint8_t *n;

	if (sp->ccap >= max)
		return -1;
	if (ncap > max)
		ncap = max;
	n = realloc(sp->cbuf, ncap);
	if (!n)
		return -1;
	sp->cbuf = n;
	sp->ccap = ncap;
	return 0;
}

/* Number of data bytes in [p, end) once stuffed FF 00 pairs count as one. */
static uint64_t destuffed(const uint8_t *p, const uint8_t *end)
{
	uint64_t n = (uint64_t)(end - p);
	const uint8_t *q = p;

	while ((q = memchr(q, 0xff, (size_t)(end - q))) != NULL && q + 1 < end) {
		if (q[1] == 0)
			n--;
		q += 2;
	}
	return n;
}

static int compose_rows(const struct jf *jf, const struct composer *cp, float *luma, int y0,
			int y1);

/*
 * Once both threads have rebuilt their rows the planes are complete, and each composes
 * half of the output.  who: 0 the calling thread, 1 the helper; err: its rebuild failed.
 */
static void split_compose(struct split *sp, int who, int err)
{
	struct jf *jf = sp->jf;
	int ok;

	pthread_mutex_lock(&sp->mu);
	sp->rerr |= err;
	sp->rdone++;
	pthread_cond_broadcast(&sp->cv);
	while (sp->rdone < 2)
		pthread_cond_wait(&sp->cv, &sp->mu);
	ok = !sp->rerr && jf->cp;
	pthread_mutex_unlock(&sp->mu);
	if (ok)
		sp->grey[who] = compose_rows(jf, jf->cp, jf->luma, who ? PRESIZE / 2 : 0,
					     who ? PRESIZE : PRESIZE / 2);
	sp->composed[who] = ok;
}

static void *t2_main(void *arg)
{
	struct split *sp = arg;
	struct jf *jf = sp->jf;
	const long total = (long)jf->mcux * jf->mcuy * jf->nbm;
	struct dec d, prev;
	long ord = 0, a = sp->a0;
	int idx = 0, nrst = sp->nrst0, retries = 0;
	int16_t blk[BLKN] __attribute__((aligned(16))) = { 0 };

	memset(&d, 0, sizeof(d));
	d.p = sp->start;
	d.end = jf->end;
	d.safe = d.p;	/* the first refill finds the bound */
	prev = d;
	for (;;) {
		const struct comp *c;
		uint8_t *o;
		unsigned rm;
		int ci, odd;

		if (!(ord & 255)) {
			if (atomic_load_explicit(&sp->abort, memory_order_relaxed))
				break;
			atomic_store_explicit(&sp->progress, ord, memory_order_relaxed);
		}
		if (sp->spec) {
			if (ord < NREC) {
				sp->rpos[ord] = sp->startbit + bitpos(&d);
				sp->ridx[ord] = (uint8_t)idx;
				memcpy(sp->rpred[ord], d.pred, sizeof(d.pred));
				sp->nrec = (int)ord + 1;
			} else if (ord == NREC) {
				pthread_mutex_lock(&sp->mu);
				sp->rec_ready = 1;
				pthread_cond_broadcast(&sp->cv);
				pthread_mutex_unlock(&sp->mu);
			}
			if (ord >= total)
				break;
		} else {
			if (a >= total)
				break;
			if (idx == 0 && jf->ri && a > sp->a0 && (a / jf->nbm) % jf->ri == 0 &&
			    do_restart(&d, nrst++) < 0)
				break;
		}
		if (sp->ccap - sp->clen < CBLK_MAX && t2_grow(sp) < 0)
			break;
		if (!(ord & 63))
			sp->ck[ord >> 6] = sp->clen;
		ci = jf->bm_comp[idx];
		c = &jf->c[ci];
		odd = dec_block(&d, &jf->dc[c->td], &jf->ac[c->ta], ci, blk, &rm, 1);
		o = cblk_put(sp->cbuf + sp->clen, d.pred[ci], rm, odd, blk);
		if (real_bits(&d) < 0) {
			const uint8_t *q = d.p;

			/* Still out of step and nothing published: start again further on. */
			if (!sp->spec || ord >= NREC || ++retries > 32 || q + 64 > jf->end)
				break;
			if (q[-1] == 0xff)
				q++;
			sp->startbit += 8 * destuffed(sp->start, q);
			sp->start = q;
			memset(&d, 0, sizeof(d));
			d.p = q;
			d.end = jf->end;
			d.safe = d.p;
			prev = d;
			ord = 0;
			idx = 0;
			sp->clen = 0;
			sp->nrec = 0;
			continue;
		}
		sp->clen = (size_t)(o - sp->cbuf);
		ord++;
		a++;
		if (++idx == jf->nbm)
			idx = 0;
		prev = d;
	}
	sp->t2_ms = ms_now();
	pthread_mutex_lock(&sp->mu);
	sp->rec_ready = 1;
	sp->t2_done = 1;
	pthread_cond_broadcast(&sp->cv);
	while (!sp->verdict)
		pthread_cond_wait(&sp->cv, &sp->mu);
	if (sp->verdict > 0) {
		sp->valid = ord == sp->j + (total - sp->s_abs) && check_end(&prev) == 0 ? 1 : -1;
		pthread_cond_broadcast(&sp->cv);
	}
	pthread_mutex_unlock(&sp->mu);
	if (sp->valid > 0) {
		sp->recon_err = recon_rows(jf, sp) < 0;
		split_compose(sp, 1, sp->recon_err);
	}
	return NULL;
}

/*
 * The calling thread's check at a block start past the helper's start: 1 if the helper
 * decoded a block from this very bit with this block-in-MCU index, 0 if not (yet), -1 once
 * the helper's records are all behind us.
 */
static int t1_sync(struct split *sp, const struct dec *d, int b, long *jrec, int *ready)
{
	uint64_t pos = bitpos(d);
	long j = *jrec;
	int c;

	if (!*ready) {
		/* A helper that has not even recorded its start by now is starved of CPU
		 * (another process holds the other core): go on alone rather than wait. */
		pthread_mutex_lock(&sp->mu);
		while (sp->force && !sp->rec_ready)
			pthread_cond_wait(&sp->cv, &sp->mu);
		*ready = sp->rec_ready;
		pthread_mutex_unlock(&sp->mu);
		if (!*ready)
			return -1;
	}
	while (j < sp->nrec && sp->rpos[j] < pos)
		j++;
	*jrec = j;
	if (j >= sp->nrec)
		return -1;
	if (sp->rpos[j] != pos || sp->ridx[j] != b)
		return 0;
	sp->j = j;
	for (c = 0; c < 3; c++)
		sp->delta[c] = d->pred[c] - sp->rpred[j][c];
	return 1;
}

/*
 * Decode blocks [*pa, a_end), handing each to the sink as it comes.  Returns 0 (reached
 * a_end), 1 (synchronised with the helper at *pa) or -1.
 */
static int t1_decode(struct jf *jf, struct dec *d, long *pa, long a_end, int *nrst,
		     long *rst_done, struct split *sp)
{
	long a = *pa, jrec = 0;
	int watch = sp && sp->spec, ready = 0;
	int16_t blk[BLKN] __attribute__((aligned(16))) = { 0 };
	struct cursor cu;

	cur_at(jf, a, &cu);
	while (a < a_end) {
		int ci = jf->bm_comp[cu.b];
		const struct comp *c = &jf->c[ci];
		unsigned rm;

		if (cu.b == 0 && jf->ri) {
			long mcu = (long)cu.my * jf->mcux + cu.mx;

			if (mcu > 0 && mcu % jf->ri == 0 && *rst_done != mcu) {
				if (do_restart(d, (*nrst)++) < 0)
					return -1;
				*rst_done = mcu;
			}
		}
		if (watch && sp && bitpos(d) >= sp->startbit) {
			int s = t1_sync(sp, d, cu.b, &jrec, &ready);

			if (s > 0) {
				*pa = a;
				return real_bits(d) < 0 ? -1 : 1;
			}
			if (s < 0)
				watch = 0;
		}
		if (dec_block(d, &jf->dc[c->td], &jf->ac[c->ta], ci, blk, &rm, 0) < 0 ||
		    sink_at(jf, &cu, blk, rm) < 0)
			return -1;
		a++;
		/* every MCU row: the data must not have run out (zero bits made up) */
		if (cu.b == jf->nbm - 1 && cu.mx == jf->mcux - 1 && real_bits(d) < 0)
			return -1;
		cur_next(jf, &cu);
	}
	*pa = a;
	return real_bits(d) < 0 ? -1 : 0;
}

/* Where the helper starts; 0 or -1 (no split). */
static int split_plan(struct jf *jf, struct split *sp)
{
	/* the calling thread also rebuilds its rows while it decodes: give it less */
	const uint8_t *mid = jf->scan + (jf->end - jf->scan) * 45 / 100, *q = jf->scan;
	const long total = (long)jf->mcux * jf->mcuy * jf->nbm;

	if (jf->ri) {
		int k = 0;

		while ((q = memchr(q, 0xff, (size_t)(jf->end - q))) != NULL && q + 1 < jf->end) {
			if (q[1] >= 0xd0 && q[1] <= 0xd7) {
				if (q >= mid)
					break;
				k++;
			}
			q += 2;
		}
		if (!q || q + 1 >= jf->end)
			return -1;
		sp->spec = 0;
		sp->start = q + 2;
		sp->nrst0 = k + 1;
		sp->a0 = (long)(k + 1) * jf->ri * jf->nbm;
		return sp->a0 < total ? 0 : -1;
	}
	q = mid;
	if (q[-1] == 0xff)
		q++;	/* not into a stuffed pair */
	sp->spec = 1;
	sp->start = q;
	sp->startbit = 8 * destuffed(jf->scan, q);
	sp->rpos = malloc(sizeof(*sp->rpos) * NREC);
	sp->rpred = malloc(sizeof(*sp->rpred) * NREC);
	sp->ridx = malloc(NREC);
	return sp->rpos && sp->rpred && sp->ridx ? 0 : -1;
}

static void split_free(struct split *sp)
{
	free(sp->rpos);
	free(sp->rpred);
	free(sp->ridx);
	free(sp->cbuf);
	free(sp->ck);
}

static int decode_all(struct jf *jf, unsigned flags)
{
	const long total = (long)jf->mcux * jf->mcuy * jf->nbm;
	struct split *sp = NULL;
	pthread_t th;
	struct dec d;
	int16_t blk[64] __attribute__((aligned(16))) = { 0 };
	int nrst = 0, r = -1, synced = 0;
	long a = 0, rst_done = -1;

	memset(&last_stats, 0, sizeof(last_stats));
	if (!(flags & JPEGFAST_NO_THREADS) && jf->nbm <= 10 &&
	    ((size_t)(jf->end - jf->scan) >= MIN_SPLIT_BYTES || (flags & JPEGFAST_FORCE_SPLIT))) {
		sp = calloc(1, sizeof(*sp));
		if (sp) {
			sp->jf = jf;
			sp->force = !!(flags & JPEGFAST_FORCE_SPLIT);
			/* the helper's half of a photo takes 3.5-5 times the whole scan's
			 * size: room for that up front, as growing copies it on the helper's
			 * critical path; untouched pages cost nothing */
			sp->ccap = (size_t)(jf->end - jf->scan) * 5 + 4096;
			sp->cbuf = malloc(sp->ccap);
			sp->ck = malloc(sizeof(size_t) * (size_t)(total / 64 + 2));
			if (!sp->cbuf || !sp->ck || split_plan(jf, sp) < 0) {
				split_free(sp);
				free(sp);
				sp = NULL;
			}
		}
		if (sp) {
			pthread_mutex_init(&sp->mu, NULL);
			pthread_cond_init(&sp->cv, NULL);
			sp->t0 = ms_now();
			if (pthread_create(&th, NULL, t2_main, sp) != 0) {
				pthread_mutex_destroy(&sp->mu);
				pthread_cond_destroy(&sp->cv);
				split_free(sp);
				free(sp);
				sp = NULL;
			}
		}
	}
	memset(&d, 0, sizeof(d));
	d.p = jf->scan;
	d.end = jf->end;
	d.safe = d.p;	/* the first refill finds the bound */
	r = t1_decode(jf, &d, &a, sp && !sp->spec ? sp->a0 : total, &nrst,
		      &rst_done, sp);
	if (sp) {
		if (!sp->spec && r == 0 && a == sp->a0 && a < total) {
			/* the marker the helper started after must be exactly there */
			if (do_restart(&d, nrst) == 0) {
				nrst++;
				rst_done = a / jf->nbm;
				sp->s_abs = a;
				sp->j = 0;
				synced = 1;
			} else {
				r = -1;
			}
		} else if (r == 1) {
			sp->s_abs = a;
			synced = 1;
			r = 0;
		}
		last_stats.split = sp->spec ? 1 : 2;
		last_stats.t1_ms = ms_now() - sp->t0;
		last_stats.synced = synced;
		if (synced) {
			last_stats.sync_block = sp->s_abs;
			last_stats.sync_lag = sp->j;
		}
		pthread_mutex_lock(&sp->mu);
		if (synced && !sp->t2_done && !sp->force) {
			/* Take the helper's blocks only if it is well ahead of where we would be
			 * decoding them ourselves (it may have had less CPU than we did). */
			long rem1 = total - sp->s_abs;
			long rem2 = sp->j + rem1 - atomic_load_explicit(&sp->progress,
								       memory_order_relaxed);

			if (rem2 * 5 > rem1 * 4)
				synced = 0;
		}
		last_stats.synced = synced;
		if (synced)
			atomic_store(&sp->next_row, sp->s_abs / ((long)jf->mcux * jf->nbm) + 1);
		sp->verdict = synced ? 1 : -1;
		atomic_store(&sp->abort, !synced);
		pthread_cond_broadcast(&sp->cv);
		while (synced && !sp->valid)
			pthread_cond_wait(&sp->cv, &sp->mu);
		pthread_mutex_unlock(&sp->mu);
		last_stats.used = synced && sp->valid > 0;
		if (synced && sp->valid > 0) {
			long rowb = (long)jf->mcux * jf->nbm, end = (a / rowb + 1) * rowb;

			/* the sync row (partly in our buffer already), then rows as they come */
			r = recon_compact(jf, sp, a, end < total ? end : total, blk);
			if (r == 0)
				r = recon_rows(jf, sp);
			last_stats.t1r_ms = ms_now() - sp->t0;
			split_compose(sp, 0, r != 0);
			pthread_join(th, NULL);
			last_stats.t2_ms = sp->t2_ms - sp->t0;
			last_stats.end_ms = ms_now() - sp->t0;
			if (sp->recon_err)
				r = -1;
			if (r == 0 && sp->composed[0] && sp->composed[1]) {
				jf->composed = 1;
				jf->grey = sp->grey[0] & sp->grey[1];
			}
			goto out_sp;
		}
		pthread_join(th, NULL);
		/* no usable help: finish here */
		if (r == 0 && a < total)
			r = t1_decode(jf, &d, &a, total, &nrst, &rst_done, NULL);
	}
	if (r == 0)
		r = check_end(&d);
out_sp:
	if (sp) {
		pthread_mutex_destroy(&sp->mu);
		pthread_cond_destroy(&sp->cv);
		split_free(sp);
		free(sp);
	}
	return r;
}

/* ---- output: upsampling, colour conversion, luma ---- */

struct axis {
	int a[PRESIZE], b[PRESIZE];	/* plane index of the nearest / the next nearest */
	uint8_t odd[PRESIZE];
};

static void axis_init(struct axis *ax, const int *map, int n, int dn, int f)
{
	int s;

	for (s = 0; s < PRESIZE; s++) {
		int x = (int)(((int64_t)s * n) >> 9);

		if (f == 1) {
			ax->a[s] = ax->b[s] = map[x];
			ax->odd[s] = 0;
		} else {
			int cx = x >> 1, nb = (x & 1) ? cx + 1 : cx - 1;

			if (nb < 0 || nb >= dn)
				nb = cx;	/* edge: the context is the sample itself */
			ax->a[s] = map[cx];
			ax->b[s] = map[nb];
			ax->odd[s] = (uint8_t)(x & 1);
		}
	}
}

static int rgb_clamp(int v)
{
	return v < 0 ? 0 : v > 255 ? 255 : v;
}

/* jdcolor.c's tables, computed the same way (FIX() rounding, 16 fraction bits). */
#define CFIX(x)	((int32_t)((x) * 65536.0 + 0.5))

/* What every output row needs: where to sample, jdcolor.c's tables, PDQ's luma products. */
struct composer {
	struct axis axs[6];
	int32_t crr[256], cbb[256], crg[256], cbg[256];
	float lr[256], lg[256], lb[256];
};

static void composer_init(const struct jf *jf, struct composer *cp)
{
	int i;

	for (i = 0; i < jf->ncomp; i++) {
		const struct comp *c = &jf->c[i];

		axis_init(&cp->axs[2 * i], c->colmap, jf->W, c->dw, c->fh);
		axis_init(&cp->axs[2 * i + 1], c->rowmap, jf->H, c->dh, c->fv);
	}
	for (i = 0; i < 256; i++) {
		int32_t v = i - 128;

		cp->crr[i] = asr(CFIX(1.40200) * v + 32768, 16);
		cp->cbb[i] = asr(CFIX(1.77200) * v + 32768, 16);
		cp->crg[i] = -CFIX(0.71414) * v;
		cp->cbg[i] = -CFIX(0.34414) * v + 32768;
		/* the products PDQ's luma formula rounds to float, in a table: same values */
		cp->lr[i] = 0.299f * (float)i;
		cp->lg[i] = 0.587f * (float)i;
		cp->lb[i] = 0.114f * (float)i;
	}
}

/*
 * Output rows [y0, y1) of the luma from the complete planes.  Returns 1 if every sampled
 * pixel of those rows is grey (R = G = B), else 0.  Rows are independent: two threads
 * may compose disjoint ranges at once.
 */
static int compose_rows(const struct jf *jf, const struct composer *cp, float *luma, int y0,
			int y1)
{
	const struct axis *axs = cp->axs;
	int i, x, y, grey = 1;

	if (jf->ncomp == 1) {
		const struct comp *c = &jf->c[0];

		for (y = y0; y < y1; y++) {
			const uint8_t *row = c->plane + (size_t)axs[1].a[y] * c->npcol;

			for (x = 0; x < PRESIZE; x++)
				luma[y * PRESIZE + x] = (float)row[axs[0].a[x]];
		}
		return 0;
	}
	for (y = y0; y < y1; y++) {
		const struct comp *c0 = &jf->c[0];
		const uint8_t *yrow = c0->plane + (size_t)axs[1].a[y] * c0->npcol;
		const int *ya = axs[0].a;
		uint8_t ch[2][PRESIZE];
		unsigned diff = 0;

		for (i = 1; i < 3; i++) {
			const struct comp *c = &jf->c[i];
			const struct axis *hx = &axs[2 * i], *vy = &axs[2 * i + 1];
			const uint8_t *r0 = c->plane + (size_t)vy->a[y] * c->npcol;
			const uint8_t *r1 = c->plane + (size_t)vy->b[y] * c->npcol;
			const int *ha = hx->a, *hb = hx->b;
			const uint8_t *odd = hx->odd;
			uint8_t *o = ch[i - 1];
			int vb = vy->odd[y] ? 2 : 1;

			if (c->fh == 1 && c->fv == 1) {
				for (x = 0; x < PRESIZE; x++)
					o[x] = r0[ha[x]];
			} else if (c->fv == 1) {	/* h2v1 */
				for (x = 0; x < PRESIZE; x++)
					o[x] = (uint8_t)((3 * r0[ha[x]] + r0[hb[x]] + 1 + odd[x]) >> 2);
			} else if (c->fh == 1) {	/* h1v2 */
				for (x = 0; x < PRESIZE; x++)
					o[x] = (uint8_t)((3 * r0[ha[x]] + r1[ha[x]] + vb) >> 2);
			} else {			/* h2v2 */
				for (x = 0; x < PRESIZE; x++) {
					int ta = 3 * r0[ha[x]] + r1[ha[x]];
					int tb = 3 * r0[hb[x]] + r1[hb[x]];

					o[x] = (uint8_t)((3 * ta + tb + 8 - odd[x]) >> 4);
				}
			}
		}
		for (x = 0; x < PRESIZE; x++) {
			int yy = yrow[ya[x]], cb = ch[0][x], cr = ch[1][x];
			int R = rgb_clamp(yy + cp->crr[cr]);
			int G = rgb_clamp(yy + asr(cp->cbg[cb] + cp->crg[cr], 16));
			int B = rgb_clamp(yy + cp->cbb[cb]);

			diff |= (unsigned)(R ^ G) | (unsigned)(G ^ B);
			luma[y * PRESIZE + x] = (cp->lr[R] + cp->lg[G]) + cp->lb[B];
		}
		grey &= !diff;
	}
	return grey;
}

/* ---- entry points ---- */

static int jf_open(struct jf *jf, const void *buf, size_t len)
{
	memset(jf, 0, sizeof(*jf));
	if (!buf || parse_headers(jf, buf, len) < 0 || setup(jf) < 0)
		return -ENOTSUP;
	pthread_once(&idct_once, idct_init);
	return 0;
}

int jpegfast_luma512(const void *buf, size_t len, unsigned flags, float *luma, int *w, int *h)
{
	struct jf *jf = malloc(sizeof(*jf));
	struct composer *cp;
	int r;

	if (!jf)
		return -ENOMEM;
	r = jf_open(jf, buf, len);
	if (r < 0)
		goto out;
	r = -ENOTSUP;
	/* Over 512 px on a side and wide enough that libjpeg uses the fancy upsamplers (it
	 * needs chroma rows over 2 samples).  Below about 2 MP the sample needs most rows of
	 * each block and the full SIMD decode is as fast (measured: 1600x1004 7.2 ms here vs
	 * 6.7 ms full; 2000x1500 10.4 vs 12.5), so those take the full decode too. */
	if ((jf->W <= PRESIZE && jf->H <= PRESIZE) || jf->W < 16 || jf->H < 16 ||
	    ((int64_t)jf->W * jf->H < MIN_PIXELS && !(flags & JPEGFAST_FORCE_SPLIT)))
		goto out;
	r = planes_init(jf);
	if (r < 0)
		goto out_planes;
	cp = malloc(sizeof(*cp));
	if (!cp) {
		r = -ENOMEM;
		goto out_planes;
	}
	composer_init(jf, cp);
	jf->luma = luma;
	jf->cp = cp;
	r = decode_all(jf, flags);
	if (r == -1)
		r = -ENOTSUP;
	if (r < 0)
		goto out_cp;
	if (!jf->composed)
		jf->grey = compose_rows(jf, cp, luma, 0, PRESIZE);
	/* The reference takes its grey path only if the whole image is grey, which a
	 * sample cannot tell; a non-grey sample proves it is not. */
	r = jf->grey ? -ENOTSUP : 0;
	*w = jf->W;
	*h = jf->H;
out_cp:
	free(cp);
out_planes:
	planes_release(jf);
out:
	free(jf);
	return r;
}

void jpegfast_coefs_release(struct jpegfast_coefs *c)
{
	int i;

	for (i = 0; i < 3; i++)
		free(c->coef[i]);
	memset(c, 0, sizeof(*c));
}

int jpegfast_coefs(const void *buf, size_t len, unsigned flags, struct jpegfast_coefs *out)
{
	struct jf *jf = malloc(sizeof(*jf));
	int r, i;

	memset(out, 0, sizeof(*out));
	if (!jf)
		return -ENOMEM;
	r = jf_open(jf, buf, len);
	if (r < 0)
		goto out;
	if ((int64_t)jf->W * jf->H > 100000000) {	/* arrays of the full image */
		r = -E2BIG;
		goto out;
	}
	out->ncomp = jf->ncomp;
	for (i = 0; i < jf->ncomp; i++) {
		out->bw[i] = jf->c[i].bw;
		out->bh[i] = jf->c[i].bh;
		out->coef[i] = calloc((size_t)jf->c[i].bw * jf->c[i].bh * 64, sizeof(int16_t));
		if (!out->coef[i]) {
			r = -ENOMEM;
			goto out;
		}
	}
	jf->coefs = out;
	r = decode_all(jf, flags);
	if (r == -1)
		r = -ENOTSUP;
out:
	if (r < 0)
		jpegfast_coefs_release(out);
	free(jf);
	return r;
}
