/*
 * jpegfast.h - exact 512x512 PDQ sample of a large baseline JPEG without a full decode.
 *
 * For images over 512 px the PDQ reference only looks at the pixels (x*W>>9, y*H>>9).
 * jpegfast decodes the Huffman data itself (baseline/extended sequential, 8-bit, one
 * interleaved scan) and reconstructs only those pixels, bit-identical to what TurboJPEG's
 * tjDecompress2(TJPF_RGB, TJFLAG_ACCURATEDCT) gives (ISLOW IDCT, fancy upsampling, libjpeg
 * YCbCr->RGB tables).  Anything it cannot reproduce exactly - other JPEG processes, other
 * samplings, colour transforms, a grey-looking 3-component image, corrupt or truncated data,
 * anything libjpeg would only warn about - returns -ENOTSUP, and the caller must use the full
 * decode, so results never depend on this path.
 *
 * Thread-safety: all functions are reentrant; each call owns its memory.  A call may start
 * one helper pthread (joined before it returns) unless JPEGFAST_NO_THREADS is given; if the
 * thread cannot be created it decodes on the calling thread.
 */
#ifndef HASHDB_JPEGFAST_H
#define HASHDB_JPEGFAST_H

#include <stddef.h>
#include <stdint.h>

#define JPEGFAST_NO_THREADS	0x1	/* decode on the calling thread only */
#define JPEGFAST_FORCE_SPLIT	0x2	/* tests: any size over 512 px, always split and
					 * wait for the helper (by default the caller goes
					 * on alone when the helper falls behind) */

/*
 * Luma (PDQ's float formula) of the 512x512 nearest-neighbour sample of a JPEG wider or
 * taller than 512 px and of at least 2 megapixels (smaller ones: -ENOTSUP, the full decode
 * is as fast), into luma[512*512].  *w, *h get the image size.  The caller has
 * already checked the pixel cap; memory used is bounded by the image width and len.
 * Returns 0, -ENOTSUP (use the full decode) or -ENOMEM.
 */
int jpegfast_luma512(const void *buf, size_t len, unsigned flags, float *luma, int *w, int *h);

/* The quantized DCT coefficients, as jpeg_read_coefficients gives them (for tests); images
 * over 100 megapixels get -E2BIG. */
struct jpegfast_coefs {
	int ncomp;
	int bw[3], bh[3];	/* blocks per row / column stored for each component */
	int16_t *coef[3];	/* bw*bh blocks of 64, natural order; owned */
};

/* What the last call on this thread did with the helper thread (tests, benchmarks). */
struct jpegfast_stats {
	int split;		/* 0 none, 1 speculative, 2 at a restart marker */
	int synced;		/* the calling thread met the helper's decode */
	int used;		/* and the helper's blocks were taken */
	long sync_block;	/* absolute block index of the meeting point */
	long sync_lag;		/* helper blocks decoded before that point (wasted) */
	double t1_ms, t2_ms;	/* from the helper's start: caller met it / helper decoded */
	double t1r_ms, end_ms;	/* caller's share rebuilt / helper's share rebuilt */
};
void jpegfast_last_stats(struct jpegfast_stats *st);

int jpegfast_coefs(const void *buf, size_t len, unsigned flags, struct jpegfast_coefs *out);
void jpegfast_coefs_release(struct jpegfast_coefs *c);

#endif
