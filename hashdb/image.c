/*
 * image.c - JPEG (TurboJPEG) to PDQ, reproducing what the reference CLI hashes.
 *
 * The reference decodes through ImageMagick (= libjpeg-turbo ISLOW IDCT, fancy upsampling, no
 * EXIF rotation), writes PGM when every pixel has R=G=B, converts Adobe CMYK to RGB, then
 * resizes anything over 512 px on a side to exactly 512x512 by top-left nearest neighbour.
 * Invariants:
 *  - the pixel cap is checked from the header before any image-sized allocation, so memory is
 *    bounded by max_pixels * 4 bytes (CMYK) plus libjpeg's own buffers;
 *  - decoder warnings (truncated or slightly corrupt data) still give a hash of what decoded,
 *    as ImageMagick does; only fatal errors fail;
 *  - progressive JPEGs are limited to 500 scans (TJFLAG_LIMITSCANS) against CPU bombs;
 *  - each thread that hashes an image keeps a 2 MiB PDQ scratch buffer until it exits;
 *  - the default decode is bit-exact; IMAGE_SCALED_DECODE trades exactness for speed on large
 *    images and must be asked for.
 *
 * Speed: for baseline JPEGs of 2 MP and more the 512x512 sample is reconstructed directly
 * from the DCT coefficients (jpegfast.c: own Huffman decode split over two threads, only the
 * sampled rows/columns through the ISLOW IDCT, fancy upsampling and colour conversion), with
 * exactly the pixels TurboJPEG would give; anything else (progressive, CMYK, grey-looking
 * colour images, damaged data, warnings) takes the full TurboJPEG decode below, so results
 * never depend on which path ran (tests/unit/test-jpegfast.c, fuzz-jpeg-pdq).
 * Measured on the 12 MP phone photos (4032x3024; `HASHGATE_BUILD=... HASHGATE_SHARED=...
 * sh tests/bench/10-hash.sh`, 2 cores, load ~0.9): wall median 26-32 ms (min 25-28), CPU
 * 48-55 ms, against 45-50 ms for the full-decode path and 40-44 ms for TurboJPEG's decode
 * alone in the same run.
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <turbojpeg.h>

#include "hashdb/image.h"
#include "hashdb/jpegfast.h"

#define PRESIZE		512
#define HUGE_PAGE	(2u << 20)

/*
 * The decode buffer of a photo is tens of MB, used once.  From malloc it is a fresh mmap each
 * time and faulting it in 4 KiB pages cost ~20% of a 12 MP hash; asking for transparent huge
 * pages makes that a few faults.  Small images use malloc.
 */
struct pixbuf {
	uint8_t *p;
	void *map;
	size_t maplen;
};

static int pixbuf_alloc(struct pixbuf *pb, size_t len)
{
	uintptr_t a;

	memset(pb, 0, sizeof(*pb));
	if (len < 4 * HUGE_PAGE) {
		pb->p = malloc(len ? len : 1);
		return pb->p ? 0 : -ENOMEM;
	}
	pb->maplen = len + HUGE_PAGE;
	pb->map = mmap(NULL, pb->maplen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	if (pb->map == MAP_FAILED) {
		pb->map = NULL;
		return -ENOMEM;
	}
	a = (HUGE_PAGE - ((uintptr_t)pb->map & (HUGE_PAGE - 1))) & (HUGE_PAGE - 1);
	pb->p = (uint8_t *)pb->map + a;
	(void)madvise(pb->p, len, MADV_HUGEPAGE);	/* a hint; failure is fine */
	return 0;
}

static void pixbuf_release(struct pixbuf *pb)
{
	if (pb->map)
		munmap(pb->map, pb->maplen);
	else
		free(pb->p);
	memset(pb, 0, sizeof(*pb));
}

int image_is_jpeg(const void *buf, size_t len)
{
	const uint8_t *p = buf;

	return buf && len >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff;
}

/*
 * ImageMagick 6 (Q16) on inverted Adobe CMYK: red16 = C'*K'*257/255 rounded, then the PNM
 * writer's 16->8 bit scaling.  The exact product never ends in .5, so integer rounding is
 * the same as IM's double arithmetic.
 */
static uint8_t cmyk_channel(unsigned c, unsigned k)
{
	unsigned q = (c * k * 257 * 2 + 255) / 510;

	return (uint8_t)(((q + 128) - ((q + 128) >> 8)) >> 8);
}

/* In place: 4-byte CMYK pixels become packed 3-byte RGB (writes never overtake reads). */
static void cmyk_to_rgb(uint8_t *px, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		unsigned c = px[4 * i], m = px[4 * i + 1], y = px[4 * i + 2], k = px[4 * i + 3];

		px[3 * i] = cmyk_channel(c, k);
		px[3 * i + 1] = cmyk_channel(m, k);
		px[3 * i + 2] = cmyk_channel(y, k);
	}
}

static int all_grey(const uint8_t *px, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++, px += 3)
		if (px[0] != px[1] || px[1] != px[2])
			return 0;
	return 1;
}

/*
 * Luma of the image the reference hashes: the decoded pixels, or the 512x512 nearest
 * neighbour sample of them (source index (x*W)>>9, top-left aligned, as the reference).
 * With a scaled decode (1/scale, dw x dh pixels) the sample is the scaled pixel covering the
 * reference's full-size sample point.
 */
static void make_luma(const uint8_t *px, int w, int h, int scale, int dw, int dh, int chans,
		      float *luma, int lw, int lh)
{
	int x, y, xs[PRESIZE];
	const int sampled = lw != dw || lh != dh;

	if (sampled)
		for (x = 0; x < lw; x++) {
			int sx = (int)(((int64_t)x * w) >> 9) / scale;

			xs[x] = sx < dw ? sx : dw - 1;
		}
	for (y = 0; y < lh; y++) {
		int sy = sampled ? (int)(((int64_t)y * h) >> 9) / scale : y;
		const uint8_t *row, *p;
		float *o = luma + (size_t)y * lw;

		if (sy >= dh)
			sy = dh - 1;
		row = px + (size_t)sy * dw * chans;
		for (x = 0; x < lw; x++) {
			p = row + (size_t)(sampled ? xs[x] : x) * chans;
			if (chans == 1)
				o[x] = (float)p[0];
			else
				o[x] = (0.299f * (float)p[0] + 0.587f * (float)p[1]) +
				       0.114f * (float)p[2];
		}
	}
}

/*
 * The PDQ working buffer for a <= 512x512 luma image (2 MiB), kept per thread: allocating and
 * faulting it in for every image cost more than the whole PDQ of a small JPEG.  Freed when
 * the thread exits; NULL (callers then allocate) if thread-specific data is unavailable.
 */
static pthread_key_t scratch_key;
static pthread_once_t scratch_once = PTHREAD_ONCE_INIT;
static int scratch_key_ok;

static void scratch_destroy(void *p)
{
	free(p);
}

static void scratch_key_init(void)
{
	scratch_key_ok = pthread_key_create(&scratch_key, scratch_destroy) == 0;
}

static float *scratch_get(void)
{
	float *p;

	pthread_once(&scratch_once, scratch_key_init);
	if (!scratch_key_ok)
		return NULL;
	p = pthread_getspecific(scratch_key);
	if (!p) {
		p = malloc(sizeof(float) * PDQ_SCRATCH_FLOATS(PRESIZE, PRESIZE));
		if (p && pthread_setspecific(scratch_key, p) != 0) {
			free(p);
			p = NULL;
		}
	}
	return p;
}

/* Largest TurboJPEG scale-down 1/8, 1/4, 1/2 that keeps both sides >= min_side. */
static int pick_scale(int w, int h, int min_side)
{
	int s;

	for (s = 8; s > 1; s /= 2)
		if ((w + s - 1) / s >= min_side && (h + s - 1) / s >= min_side)
			return s;
	return 1;
}

int image_pdq_jpeg(const void *buf, size_t len, unsigned pdq_flags, uint64_t max_pixels,
		   struct pdq_result *out)
{
	int w = 0, h = 0, subsamp = -1, cs = -1, pf, chans, lw, lh, r, scale = 1, dw, dh;
	int warning = 0;
	struct pixbuf pb = { 0 };
	uint8_t *px;
	float *luma, *own_luma = NULL;
	tjhandle tj;

	memset(out, 0, sizeof(*out));
	if (!image_is_jpeg(buf, len) || len > (unsigned long)-1)
		return -EINVAL;
	if (!max_pixels)
		max_pixels = IMAGE_MAX_PIXELS_DEFAULT;
	tj = tjInitDecompress();
	if (!tj)
		return -ENOMEM;
	if (tjDecompressHeader3(tj, buf, (unsigned long)len, &w, &h, &subsamp, &cs) < 0) {
		r = -EINVAL;
		goto out_tj;
	}
	/* A tables-only stream (or one cut before its frame header) "succeeds" without a frame;
	 * TurboJPEG 2.1 then leaves the outputs alone, hence the initialisers above. */
	if (w <= 0 || h <= 0 || cs < 0) {
		r = -EINVAL;
		goto out_tj;
	}
	if ((uint64_t)w * (uint64_t)h > max_pixels) {
		r = -E2BIG;
		goto out_tj;
	}
	switch (cs) {
	case TJCS_GRAY:
		pf = TJPF_GRAY;
		chans = 1;
		break;
	case TJCS_RGB:
	case TJCS_YCbCr:
		pf = TJPF_RGB;
		chans = 3;
		break;
	case TJCS_CMYK:
	case TJCS_YCCK:
		pf = TJPF_CMYK;
		chans = 4;
		break;
	default:
		r = -ENOTSUP;
		goto out_tj;
	}
	/* Over 512 px the reference only sees a 512x512 sample: reconstruct just that, exactly
	 * (jpegfast.c); whatever it does not handle takes the full decode below. */
	if (!(pdq_flags & (IMAGE_SCALED_DECODE | IMAGE_FULL_DECODE)) &&
	    (w > PRESIZE || h > PRESIZE) && (cs == TJCS_YCbCr || cs == TJCS_GRAY)) {
		int fw, fh;

		luma = scratch_get();
		if (!luma)
			luma = own_luma = malloc(sizeof(float) *
						 PDQ_SCRATCH_FLOATS(PRESIZE, PRESIZE));
		if (luma && jpegfast_luma512(buf, len, (pdq_flags & IMAGE_SPARSE_ANY) ?
					     JPEGFAST_FORCE_SPLIT : 0, luma, &fw, &fh) == 0 &&
		    fw == w && fh == h) {
			r = pdq_from_luma_scratch(luma, PRESIZE, PRESIZE,
						  pdq_flags & ~IMAGE_SPARSE_ANY, out);
			out->width = w;
			out->height = h;
			free(own_luma);
			goto out_tj;
		}
		free(own_luma);
		own_luma = NULL;
	}
	pdq_flags &= ~(IMAGE_FULL_DECODE | IMAGE_SPARSE_ANY);
	/* Never below 256 px a side, so the 512x512 sample repeats a decoded pixel at most
	 * twice per axis.  Measured on 35 images over 512 px (shared set + generated):
	 * distance to the exact hash mean 2.7, max 6; dihedral variants max 10.  A 512 floor
	 * gave max 4 but leaves 12 MP at 1/4 scale, which saves only a quarter of the time. */
	if ((pdq_flags & IMAGE_SCALED_DECODE) && (w > PRESIZE || h > PRESIZE))
		scale = pick_scale(w, h, PRESIZE / 2);
	pdq_flags &= ~IMAGE_SCALED_DECODE;
	dw = (w + scale - 1) / scale;
	dh = (h + scale - 1) / scale;
	r = pixbuf_alloc(&pb, (size_t)dw * dh * chans);
	if (r < 0)
		goto out_tj;
	px = pb.p;
	/* Flags 0 would decode the same pixels (ISLOW, fancy upsampling are the defaults);
	 * say so explicitly.  A warning still leaves a fully written buffer. */
	if (tjDecompress2(tj, buf, (unsigned long)len, px, dw, 0, dh, pf,
			  TJFLAG_ACCURATEDCT | TJFLAG_LIMITSCANS) < 0) {
		if (tjGetErrorCode(tj) != TJERR_WARNING) {
			r = -EINVAL;
			goto out_px;
		}
		warning = 1;
	}
	if (chans == 4) {
		cmyk_to_rgb(px, (size_t)dw * dh);
		chans = 3;
	}
	/* ImageMagick hands the reference a PGM when the image is grey everywhere. */
	if (chans == 3 && all_grey(px, (size_t)dw * dh)) {
		size_t i, n = (size_t)dw * dh;

		for (i = 0; i < n; i++)
			px[i] = px[3 * i];
		chans = 1;
	}
	lw = w > PRESIZE || h > PRESIZE ? PRESIZE : w;
	lh = w > PRESIZE || h > PRESIZE ? PRESIZE : h;
	luma = scratch_get();
	if (!luma) {
		own_luma = malloc(sizeof(float) * PDQ_SCRATCH_FLOATS(lh, lw));
		if (!own_luma) {
			r = -ENOMEM;
			goto out_px;
		}
		luma = own_luma;
	}
	make_luma(px, w, h, scale, dw, dh, chans, luma, lw, lh);
	r = pdq_from_luma_scratch(luma, lh, lw, pdq_flags, out);
	out->width = w;
	out->height = h;
	out->warning = warning;
	free(own_luma);
out_px:
	pixbuf_release(&pb);
out_tj:
	tjDestroy(tj);
	return r;
}

int image_pdq_fd(int fd, uint64_t max_bytes, unsigned pdq_flags, uint64_t max_pixels,
		 struct pdq_result *out)
{
	uint8_t *buf = NULL, *nbuf;
	size_t len = 0, cap = 0;
	int r;

	memset(out, 0, sizeof(*out));
	for (;;) {
		ssize_t n;

		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 1 << 16;

			if (max_bytes && ncap > max_bytes + 1)
				ncap = max_bytes + 1;
			if (ncap <= cap) {
				r = -EFBIG;
				goto out_buf;
			}
			nbuf = realloc(buf, ncap);
			if (!nbuf) {
				r = -ENOMEM;
				goto out_buf;
			}
			buf = nbuf;
			cap = ncap;
		}
		n = pread(fd, buf + len, cap - len, (off_t)len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			r = -errno;
			goto out_buf;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (max_bytes && len > max_bytes) {
			r = -EFBIG;
			goto out_buf;
		}
	}
	r = image_pdq_jpeg(buf, len, pdq_flags, max_pixels, out);
out_buf:
	free(buf);
	return r;
}
