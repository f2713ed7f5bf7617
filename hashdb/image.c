/*
 * image.c - JPEG to PDQ, reproducing what the reference CLI hashes.
 *
 * The reference decodes through ImageMagick (= libjpeg-turbo ISLOW IDCT, fancy upsampling, no
 * EXIF rotation), writes PGM when every pixel has R=G=B, converts Adobe CMYK to RGB, then
 * resizes anything over 512 px on a side to exactly 512x512 by top-left nearest neighbour.
 * ImageMagick drives libjpeg itself, so what libjpeg only warns about (junk bytes before a
 * marker, uncommon sampling, truncated data, a bad marker after the last scan) still gives
 * an image, and so it does here: the decode uses libjpeg's own API, not TurboJPEG's stricter
 * wrapper.  Invariants:
 *  - only pixels the decoder wrote are hashed: the sample buffer starts zeroed and is filled
 *    from the scanlines libjpeg returned; when a fatal error stops the decode after some
 *    rows, the rest stay black, which is what ImageMagick hands the reference (it returns
 *    the partial image); a fatal error before the first row is an error;
 *  - memory does not grow with the pixel count for sequential JPEGs: scanlines are read one
 *    batch at a time and only the rows and columns of the 512x512 sample are kept (plus one
 *    running "every pixel is grey" flag).  Progressive and other multi-scan JPEGs need
 *    libjpeg's whole-image coefficient buffer; every decode reserves its estimated memory
 *    from one process-wide budget first (waiting for room, never over it; libjpeg's
 *    max_memory_to_use enforces the estimate), and an image that needs more than the whole
 *    budget is an error;
 *  - work is bounded, not file size or scan count: output pixels + pixels covered by each scan
 *    of a multi-scan JPEG + IMAGE_SCAN_WORK per scan, counted in libjpeg's progress monitor;
 *    over max_work is an error, never a silent "no PDQ";
 *  - each thread that hashes an image keeps a 2 MiB PDQ scratch buffer until it exits;
 *  - the default decode is bit-exact; IMAGE_SCALED_DECODE trades exactness for speed on large
 *    images and must be asked for.
 *
 * Speed: for baseline JPEGs of 2 MP and more the 512x512 sample is reconstructed directly
 * from the DCT coefficients (jpegfast.c: own Huffman decode split over two threads, only the
 * sampled rows/columns through the ISLOW IDCT, fancy upsampling and colour conversion), with
 * exactly the pixels libjpeg would give; anything else (progressive, CMYK, grey-looking
 * colour images, damaged data, warnings) takes the libjpeg decode below, so results never
 * depend on which path ran (tests/unit/test-jpegfast.c, fuzz-jpeg-pdq).
 * Measured figures: README.md ("Performance"), from tests/bench/10-hash.sh.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <jerror.h>
#include <png.h>

#include "hashdb/image.h"
#include "hashdb/jpegfast.h"

#define PRESIZE		512
#define MAX_BATCH	16		/* scanlines asked for per jpeg_read_scanlines call */
#define SRC_CHUNK	(64u << 10)	/* fd source: bytes per read */

/* ---- process-wide decode memory budget ---------------------------------------------- */

static pthread_mutex_t mem_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t mem_cond = PTHREAD_COND_INITIALIZER;
static struct image_mem_stats mem = { .budget = IMAGE_DECODE_MEMORY_DEFAULT };

void image_set_decode_memory(uint64_t bytes)
{
	pthread_mutex_lock(&mem_lock);
	mem.budget = bytes ? bytes : IMAGE_DECODE_MEMORY_DEFAULT;
	pthread_cond_broadcast(&mem_cond);
	pthread_mutex_unlock(&mem_lock);
}

void image_decode_memory_stats(struct image_mem_stats *st, int reset_peak)
{
	pthread_mutex_lock(&mem_lock);
	*st = mem;
	if (reset_peak)
		mem.peak = mem.in_use;
	pthread_mutex_unlock(&mem_lock);
}

/* Wait until n bytes fit in the budget and reserve them; -E2BIG if they never can. */
static int mem_reserve(uint64_t n)
{
	int waited = 0;

	pthread_mutex_lock(&mem_lock);
	for (;;) {
		if (n > mem.budget) {
			mem.refused++;
			pthread_mutex_unlock(&mem_lock);
			return -E2BIG;
		}
		if (mem.in_use + n <= mem.budget)
			break;
		if (!waited++)
			mem.waits++;
		pthread_cond_wait(&mem_cond, &mem_lock);
	}
	mem.in_use += n;
	if (mem.in_use > mem.peak)
		mem.peak = mem.in_use;
	pthread_mutex_unlock(&mem_lock);
	return 0;
}

static void mem_unreserve(uint64_t n)
{
	pthread_mutex_lock(&mem_lock);
	mem.in_use -= n;
	pthread_cond_broadcast(&mem_cond);
	pthread_mutex_unlock(&mem_lock);
}

/* ---- magic ---------------------------------------------------------------------------- */

int image_is_jpeg(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t i, end = len < IMAGE_MAGIC_LEN ? len : IMAGE_MAGIC_LEN;

	if (!buf || len < 3 || p[0] != 0xff || p[1] != 0xd8)
		return 0;
	/* libjpeg's next_marker: skip to an FF, skip FF fill, a 00 means "not a marker". */
	for (i = 2; i < end; i++) {
		if (p[i] != 0xff)
			continue;
		while (i + 1 < end && p[i + 1] == 0xff)
			i++;
		if (i + 1 >= end)
			return 0;
		if (p[i + 1] != 0x00)
			return 1;
	}
	return 0;
}

int image_kind(const void *buf, size_t len)
{
	if (image_is_jpeg(buf, len))
		return IMAGE_JPEG;
	if (buf && len >= 8 && !memcmp(buf, "\x89PNG\r\n\x1a\n", 8))
		return IMAGE_PNG;
	return 0;
}

const char *image_strerror(int rc)
{
	switch (rc) {
	case 0:
		return "ok";
	case -EINVAL:
		return "not a decodable image";
	case -ERANGE:
		return "over the decode work bound (image_max_pixels)";
	case -E2BIG:
		return "needs more memory than the whole decode budget";
	case -ENOTSUP:
		return "unsupported image type or colour space";
	case -ENOMEM:
		return "out of memory";
	default:
		return strerror(-rc);
	}
}

/* ---- colour helpers ------------------------------------------------------------------- */

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

static int row_grey(const uint8_t *px, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++, px += 3)
		if (px[0] != px[1] || px[1] != px[2])
			return 0;
	return 1;
}

/* ---- per-thread PDQ scratch ----------------------------------------------------------- */

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

/* Largest libjpeg scale-down 1/8, 1/4, 1/2 that keeps both sides >= min_side. */
static int pick_scale(int w, int h, int min_side)
{
	int s;

	for (s = 8; s > 1; s /= 2)
		if ((w + s - 1) / s >= min_side && (h + s - 1) / s >= min_side)
			return s;
	return 1;
}

/* ---- the libjpeg decoder -------------------------------------------------------------- */

/*
 * One decode.  libjpeg reports fatal errors (and our work bound) by longjmp to jb, so every
 * piece of state the error path reads lives here, not in locals.
 */
struct jdec {
	struct jpeg_decompress_struct ci;
	struct jpeg_error_mgr em;
	struct jpeg_progress_mgr pm;
	struct jpeg_source_mgr src;
	jmp_buf jb;
	int created;
	int code;		/* error for the longjmp: -EINVAL, -ERANGE, -E2BIG, -ENOMEM */
	int warnings;
	char reason[96];	/* the fatal error, else the first warning */
	uint64_t work, max_work;
	int consuming;		/* in jpeg_start_decompress: scans are being read */
	uint64_t reserved;	/* bytes of the decode memory budget held */
	int last_scan;
	/* fd source */
	int fd;
	uint64_t off;
	uint8_t *ibuf;
	/* the 512x512 (or smaller) sample */
	int w, h, scale, dw, dh, lw, lh, chans, sampled, next_y, grey, rows_done;
	int xs[PRESIZE];
	float *luma;		/* PDQ_SCRATCH_FLOATS(lh, lw): the thread's scratch or own_luma */
	float *own_luma;
	uint8_t *px;		/* lw*lh red bytes of the sample, in luma's buffer after the
				 * lw*lh luma floats; rows below next_y are written */
	uint8_t *row;		/* MAX_BATCH output rows, stride bytes apart */
	size_t stride;
};

static void jd_error_exit(j_common_ptr c)
{
	struct jdec *d = (struct jdec *)c;	/* ci is the first member */

	if (!d->code) {
		int m = c->err->msg_code;

		d->code = m == JERR_OUT_OF_MEMORY ? -ENOMEM :
			  m == JERR_NO_BACKING_STORE ? -E2BIG : -EINVAL;
	}
	(*c->err->format_message)(c, d->reason);
	longjmp(d->jb, 1);
}

static void jd_emit_message(j_common_ptr c, int level)
{
	struct jdec *d = (struct jdec *)c;

	if (level >= 0)
		return;		/* trace messages */
	if (!d->warnings++)
		(*c->err->format_message)(c, d->reason);
	c->err->num_warnings++;
}

/*
 * Called before each unit of input libjpeg absorbs while reading the scans of a multi-scan
 * JPEG (one iMCU row of the current scan, or the markers up to the next scan): charge the
 * blocks of that row, and IMAGE_SCAN_WORK per new scan.
 */
static void jd_progress(j_common_ptr c)
{
	struct jdec *d = (struct jdec *)c;
	j_decompress_ptr ci = &d->ci;
	uint64_t blocks;

	if (!d->consuming)
		return;
	if (ci->input_scan_number != d->last_scan) {
		d->last_scan = ci->input_scan_number;
		d->work += IMAGE_SCAN_WORK;
	}
	blocks = (uint64_t)ci->MCUs_per_row * (unsigned)ci->blocks_in_MCU;
	if (ci->comps_in_scan == 1 && ci->cur_comp_info[0])
		blocks *= (unsigned)ci->cur_comp_info[0]->v_samp_factor;
	d->work += 64 * blocks;
	if (d->work > d->max_work) {
		d->code = -ERANGE;
		snprintf(d->reason, sizeof(d->reason),
			 "over the decode work bound after %d scans", ci->input_scan_number);
		longjmp(d->jb, 1);
	}
}

/* fd source: pread in chunks; at end of file, a fake EOI after a warning (as jdatasrc.c). */
static void fd_init_source(j_decompress_ptr ci)
{
	(void)ci;
}

static boolean fd_fill_input_buffer(j_decompress_ptr ci)
{
	struct jdec *d = (struct jdec *)ci;
	ssize_t n;

	do
		n = pread(d->fd, d->ibuf, SRC_CHUNK, (off_t)d->off);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		d->code = -errno;
		snprintf(d->reason, sizeof(d->reason), "read error: %s", strerror(errno));
		longjmp(d->jb, 1);
	}
	if (n == 0) {
		WARNMS(ci, JWRN_JPEG_EOF);
		d->ibuf[0] = 0xff;
		d->ibuf[1] = JPEG_EOI;
		n = 2;
	} else {
		d->off += (uint64_t)n;
	}
	d->src.next_input_byte = d->ibuf;
	d->src.bytes_in_buffer = (size_t)n;
	return TRUE;
}

static void fd_skip_input_data(j_decompress_ptr ci, long n)
{
	struct jdec *d = (struct jdec *)ci;

	if (n <= 0)
		return;
	if ((size_t)n <= d->src.bytes_in_buffer) {
		d->src.next_input_byte += n;
		d->src.bytes_in_buffer -= (size_t)n;
		return;
	}
	d->off += (uint64_t)n - d->src.bytes_in_buffer;
	d->src.bytes_in_buffer = 0;
	d->src.next_input_byte = d->ibuf;
}

static void fd_term_source(j_decompress_ptr ci)
{
	(void)ci;
}

static inline float rgb_luma(const uint8_t *p)
{
	return (0.299f * (float)p[0] + 0.587f * (float)p[1]) + 0.114f * (float)p[2];
}

/*
 * Take one decoded output row (dw pixels of d->ci.output_components bytes): the sample
 * rows it provides go straight to luma (the RGB weights), and for a colour image each
 * sample pixel's red byte to px, in case the whole image turns out grey (sample_luma).
 */
/* noinline: inlined into jd_run, which calls setjmp, it compiled to code twice as slow */
__attribute__((noinline)) static void take_row(struct jdec *d, uint8_t *p)
{
	int r = d->rows_done++, x;

	if (d->ci.output_components == 4)
		cmyk_to_rgb(p, (size_t)d->dw);
	if (d->chans == 3 && d->grey && !row_grey(p, (size_t)d->dw))
		d->grey = 0;
	while (d->next_y < d->lh) {
		int sy = d->sampled ? (int)(((int64_t)d->next_y * d->h) >> 9) / d->scale :
				      d->next_y;
		size_t o = (size_t)d->next_y * d->lw;
		float *l = d->luma + o;

		if (sy >= d->dh)
			sy = d->dh - 1;
		if (sy != r)
			break;
		/* locals: the byte stores below may alias *d, so the compiler would reload it */
		if (d->chans == 1) {
			const int lw = d->lw, sampled = d->sampled, *xs = d->xs;

			for (x = 0; x < lw; x++)
				l[x] = (float)p[sampled ? xs[x] : x];
		} else {
			const int lw = d->lw, sampled = d->sampled, *xs = d->xs;
			uint8_t *g = d->px + o;

			for (x = 0; x < lw; x++) {
				const uint8_t *q = p + 3 * (size_t)(sampled ? xs[x] : x);

				l[x] = rgb_luma(q);
				g[x] = q[0];
			}
		}
		d->next_y++;
	}
}

/*
 * Finish the sample's luma.  Rows the decoder never delivered (a fatal error mid-image)
 * are black, never old memory; a colour image whose every decoded pixel was grey takes the
 * reference's grey path (luma = the grey value, not the RGB weights).
 */
__attribute__((noinline)) static void sample_luma(struct jdec *d)
{
	size_t i, n = (size_t)d->lw * d->lh, done = (size_t)d->next_y * d->lw;

	for (i = done; i < n; i++)
		d->luma[i] = 0.0f;
	if (d->chans == 3 && d->grey)
		for (i = 0; i < done; i++)
			d->luma[i] = (float)d->px[i];
}

/* Bytes of decoder memory to reserve for this image (generous; libjpeg is held to it). */
static uint64_t mem_estimate(const struct jdec *d, size_t fast_len)
{
	const struct jpeg_decompress_struct *ci = &d->ci;
	uint64_t est = 1u << 20, wpad = 0;
	int c;

	est += (uint64_t)d->lw * d->lh * 3 + (uint64_t)MAX_BATCH * d->dw * 4;
	for (c = 0; c < ci->num_components; c++) {
		const jpeg_component_info *cp = &ci->comp_info[c];
		uint64_t bw = (cp->width_in_blocks + cp->h_samp_factor - 1) /
			      cp->h_samp_factor * cp->h_samp_factor;
		uint64_t bh = (cp->height_in_blocks + cp->v_samp_factor - 1) /
			      cp->v_samp_factor * cp->v_samp_factor;

		wpad += bw * 8;
		/* main/upsample/context buffers: a few iMCU rows of each component */
		est += bw * 64 * cp->v_samp_factor * 4 + bw * 16;
		if (jpeg_has_multiple_scans((j_decompress_ptr)ci))
			est += bw * bh * sizeof(JBLOCK);
	}
	est += wpad * 4 * 16;
	/* jpegfast: sampled planes, and its helper's coefficient stream (jpegfast.h) */
	if (fast_len)
		est += (3u << 20) + (16u << 20) + 10 * (uint64_t)fast_len;
	return est;
}

static void jd_release(struct jdec *d)
{
	if (d->created)
		jpeg_destroy_decompress(&d->ci);
	free(d->ibuf);
	free(d->own_luma);
	free(d->row);
}

/* Release the memory reservation and fill in what the caller sees besides the hash. */
static int jd_finish(struct jdec *d, int r, struct pdq_result *out)
{
	if (d->reserved)
		mem_unreserve(d->reserved);
	if (r == 0) {
		out->width = d->w;
		out->height = d->h;
		out->warning = d->warnings > 0;
		if (d->warnings)
			snprintf(out->reason, sizeof(out->reason), "%s", d->reason);
	} else {
		memset(out, 0, sizeof(*out));
		snprintf(out->reason, sizeof(out->reason), "%s",
			 d->reason[0] ? d->reason : image_strerror(r));
	}
	return r;
}

/*
 * Decode and hash.  buf/len for memory input, else d->fd.  Returns 0 or -errno; the caller
 * releases d.  After setjmp only fields of d are used.
 */
static int jd_run(struct jdec *d, const void *buf, size_t len, unsigned flags,
		  struct pdq_result *out)
{
	struct jpeg_decompress_struct *ci = &d->ci;
	int r, nb;
	JSAMPROW rows[MAX_BATCH];

	ci->err = jpeg_std_error(&d->em);
	d->em.error_exit = jd_error_exit;
	d->em.emit_message = jd_emit_message;
	if (setjmp(d->jb)) {
		/* A fatal error once rows were coming: the reference hashes the partial image. */
		if (d->rows_done > 0 && d->px) {
			d->warnings++;
			goto hash;
		}
		r = d->code ? d->code : -EINVAL;
		goto out;
	}
	jpeg_create_decompress(ci);
	d->created = 1;
	if (buf) {
		jpeg_mem_src(ci, buf, (unsigned long)len);
	} else {
		d->ibuf = malloc(SRC_CHUNK);
		if (!d->ibuf) {
			r = -ENOMEM;
			goto out;
		}
		d->src.init_source = fd_init_source;
		d->src.fill_input_buffer = fd_fill_input_buffer;
		d->src.skip_input_data = fd_skip_input_data;
		d->src.resync_to_restart = jpeg_resync_to_restart;
		d->src.term_source = fd_term_source;
		ci->src = &d->src;
	}
	d->pm.progress_monitor = jd_progress;
	ci->progress = &d->pm;
	jpeg_read_header(ci, TRUE);
	d->w = (int)ci->image_width;
	d->h = (int)ci->image_height;
	switch (ci->jpeg_color_space) {
	case JCS_GRAYSCALE:
		ci->out_color_space = JCS_GRAYSCALE;
		d->chans = 1;
		break;
	case JCS_RGB:
	case JCS_YCbCr:
		ci->out_color_space = JCS_RGB;
		d->chans = 3;
		break;
	case JCS_CMYK:
	case JCS_YCCK:
		ci->out_color_space = JCS_CMYK;
		d->chans = 3;		/* converted to RGB per row */
		break;
	default:
		snprintf(d->reason, sizeof(d->reason), "JPEG colour space %d not supported",
			 (int)ci->jpeg_color_space);
		r = -ENOTSUP;
		goto out;
	}
	/* What ImageMagick asks for: ISLOW IDCT, fancy upsampling (libjpeg's defaults). */
	ci->dct_method = JDCT_ISLOW;
	ci->do_fancy_upsampling = TRUE;
	d->scale = 1;
	if ((flags & IMAGE_SCALED_DECODE) && (d->w > PRESIZE || d->h > PRESIZE))
		d->scale = pick_scale(d->w, d->h, PRESIZE / 2);
	ci->scale_num = 1;
	ci->scale_denom = (unsigned)d->scale;
	jpeg_calc_output_dimensions(ci);
	d->dw = (int)ci->output_width;
	d->dh = (int)ci->output_height;
	d->sampled = d->w > PRESIZE || d->h > PRESIZE;
	d->lw = d->sampled ? PRESIZE : d->w;
	d->lh = d->sampled ? PRESIZE : d->h;
	/* The work we know of now: every output pixel. */
	d->work = (uint64_t)d->dw * d->dh;
	if (d->work > d->max_work) {
		snprintf(d->reason, sizeof(d->reason),
			 "%dx%d is over the decode work bound", d->w, d->h);
		r = -ERANGE;
		goto out;
	}
	/* Over 512 px the reference only sees a 512x512 sample: reconstruct just that, exactly
	 * (jpegfast.c); whatever it does not handle takes the full decode below. */
	{
		int fast = buf && !(flags & (IMAGE_SCALED_DECODE | IMAGE_FULL_DECODE)) &&
			   d->sampled && !ci->progressive_mode &&
			   (ci->jpeg_color_space == JCS_YCbCr ||
			    ci->jpeg_color_space == JCS_GRAYSCALE);

		r = mem_reserve(mem_estimate(d, fast ? len : 0));
		if (r < 0) {
			snprintf(d->reason, sizeof(d->reason),
				 "%dx%d needs %llu MiB of decode memory, over the budget", d->w,
				 d->h, (unsigned long long)(mem_estimate(d, 0) >> 20));
			goto out;
		}
		d->reserved = mem_estimate(d, fast ? len : 0);
		ci->mem->max_memory_to_use = (long)d->reserved;
		d->luma = scratch_get();
		if (!d->luma) {
			d->luma = d->own_luma = malloc(sizeof(float) *
						       PDQ_SCRATCH_FLOATS(PRESIZE, PRESIZE));
			if (!d->luma) {
				r = -ENOMEM;
				goto out;
			}
		}
		if (fast) {
			int fw, fh;

			if (jpegfast_luma512(buf, len, (flags & IMAGE_SPARSE_ANY) ?
					     JPEGFAST_FORCE_SPLIT : 0, d->luma, &fw, &fh) == 0 &&
			    fw == d->w && fh == d->h) {
				r = pdq_from_luma_scratch(d->luma, PRESIZE, PRESIZE,
							  flags & PDQ_DIHEDRAL, out);
				goto out;
			}
		}
	}
	d->px = (uint8_t *)(d->luma + (size_t)d->lw * d->lh);
	/*
	 * Rows start 16 bytes past a 32-byte boundary: libjpeg-turbo's SIMD colour conversion
	 * writes aligned output rows with non-temporal stores, which bypass the cache that
	 * take_row reads them from right after (640x480 PDQ: 4.1 ms aligned, 2.6 unaligned).
	 */
	d->stride = ((size_t)d->dw * 4 + 63) / 64 * 64;
	if (posix_memalign((void **)&d->row, 64, MAX_BATCH * d->stride + 16) != 0) {
		d->row = NULL;
		r = -ENOMEM;
		goto out;
	}
	if (d->sampled) {
		int x;

		for (x = 0; x < d->lw; x++) {
			int sx = (int)(((int64_t)x * d->w) >> 9) / d->scale;

			d->xs[x] = sx < d->dw ? sx : d->dw - 1;
		}
	}
	d->grey = 1;
	d->consuming = 1;
	jpeg_start_decompress(ci);
	d->consuming = 0;
	for (nb = 0; nb < MAX_BATCH; nb++)
		rows[nb] = d->row + 16 + nb * d->stride;
	while (ci->output_scanline < ci->output_height) {
		JDIMENSION want = ci->output_height - ci->output_scanline, got, i;

		if (want > MAX_BATCH)
			want = MAX_BATCH;
		got = jpeg_read_scanlines(ci, rows, want);
		if (got == 0)
			break;	/* cannot happen with our sources; do not spin */
		for (i = 0; i < got; i++)
			take_row(d, rows[i]);
	}
	/* A bad marker after the last scan: every pixel is already here (ImageMagick too). */
	jpeg_finish_decompress(ci);
hash:
	sample_luma(d);
	r = pdq_from_luma_scratch(d->luma, d->lh, d->lw, flags & PDQ_DIHEDRAL, out);
out:
	return jd_finish(d, r, out);
}

/* ---- PNG (libpng) --------------------------------------------------------------------- */

/*
 * What ImageMagick's `convert FILE pnm:-` hands the reference for a PNG (pdq-formats README):
 * alpha and tRNS ignored (the RGB under them kept), palette expanded to RGB, 16-bit samples
 * as their low byte (CImg casts the PNM's 16-bit values to uint8_t), grey as grey, and the
 * grey path too when every pixel has R=G=B.  Sampling and luma are the JPEG path's (take_row).
 */
struct pngsrc {
	struct jdec *d;
	const uint8_t *buf;
	size_t len, pos;
};

static void png_on_error(png_structp png, png_const_charp msg)
{
	struct pngsrc *ps = png_get_error_ptr(png);

	if (!ps->d->code)
		ps->d->code = -EINVAL;
	snprintf(ps->d->reason, sizeof(ps->d->reason), "PNG: %s", msg);
	png_longjmp(png, 1);
}

static void png_on_warning(png_structp png, png_const_charp msg)
{
	struct pngsrc *ps = png_get_error_ptr(png);

	if (!ps->d->warnings++)
		snprintf(ps->d->reason, sizeof(ps->d->reason), "PNG: %s", msg);
}

static void png_read(png_structp png, png_bytep out, png_size_t n)
{
	struct pngsrc *ps = png_get_io_ptr(png);
	struct jdec *d = ps->d;

	if (ps->buf) {
		if (n > ps->len - ps->pos)
			png_error(png, "truncated");
		memcpy(out, ps->buf + ps->pos, n);
		ps->pos += n;
		return;
	}
	while (n) {
		ssize_t got = pread(d->fd, out, n, (off_t)d->off);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			d->code = -errno;
			png_error(png, "read error");
		}
		if (got == 0)
			png_error(png, "truncated");
		d->off += (uint64_t)got;
		out += got;
		n -= (size_t)got;
	}
}

/* A libpng output row (ch channels of bps bytes) to 8-bit grey or RGB in dst, as IM's PNM. */
static void png_row8(const uint8_t *src, uint8_t *dst, int w, int ch, int bps)
{
	size_t i, n = (size_t)w * ch;

	if (bps == 1)
		memmove(dst, src, n);
	else
		for (i = 0; i < n; i++)
			dst[i] = src[2 * i + 1];	/* big-endian: the low byte */
}

static int png_run(struct jdec *d, const void *buf, size_t len, unsigned flags,
		   struct pdq_result *out)
{
	struct pngsrc ps = { d, buf, len, 0 };
	png_structp png;
	png_infop info;
	png_uint_32 w, h;
	int depth, ctype, ilace, ch, bps, r;
	volatile int passes = 1;
	uint8_t *volatile img = NULL;
	png_bytep *volatile rows = NULL;	/* freed at out: libpng may longjmp past */
	volatile size_t rowbytes = 0;
	uint32_t y;

	png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ps, png_on_error, png_on_warning);
	if (!png)
		return -ENOMEM;
	info = png_create_info_struct(png);
	if (!info) {
		png_destroy_read_struct(&png, NULL, NULL);
		return -ENOMEM;
	}
	if (setjmp(png_jmpbuf(png))) {
		/* rows decoded before the error stay, the rest are black (as for JPEG) */
		if (d->rows_done > 0 && passes == 1 && d->luma) {
			d->warnings++;
			goto hash;
		}
		r = d->code ? d->code : -EINVAL;
		goto out;
	}
	png_set_read_fn(png, &ps, png_read);
	png_set_crc_action(png, PNG_CRC_WARN_USE, PNG_CRC_WARN_USE);
	png_read_info(png, info);
	png_get_IHDR(png, info, &w, &h, &depth, &ctype, &ilace, NULL, NULL);
	d->w = (int)w;
	d->h = (int)h;
	if (ctype == PNG_COLOR_TYPE_PALETTE)
		png_set_palette_to_rgb(png);
	if (ctype == PNG_COLOR_TYPE_GRAY && depth < 8)
		png_set_expand_gray_1_2_4_to_8(png);
	png_set_strip_alpha(png);	/* also the alpha that tRNS expands to */
	passes = png_set_interlace_handling(png);
	png_read_update_info(png, info);
	ch = png_get_channels(png, info);
	bps = png_get_bit_depth(png, info) == 16 ? 2 : 1;
	rowbytes = png_get_rowbytes(png, info);
	if ((ch != 1 && ch != 3) || rowbytes < (size_t)w * ch * bps) {
		snprintf(d->reason, sizeof(d->reason), "PNG colour type %d not supported", ctype);
		r = -ENOTSUP;
		goto out;
	}
	d->chans = ch;
	d->ci.output_components = ch;
	d->scale = 1;
	d->dw = d->w;
	d->dh = d->h;
	d->sampled = d->w > PRESIZE || d->h > PRESIZE;
	d->lw = d->sampled ? PRESIZE : d->w;
	d->lh = d->sampled ? PRESIZE : d->h;
	d->work = (uint64_t)d->w * d->h;
	if (d->work > d->max_work) {
		snprintf(d->reason, sizeof(d->reason),
			 "%dx%d is over the decode work bound", d->w, d->h);
		r = -ERANGE;
		goto out;
	}
	/* Interlaced PNGs need the whole image (Adam7 passes); others one row at a time. */
	r = mem_reserve((1u << 20) + (uint64_t)rowbytes * (passes > 1 ? h : 1) + rowbytes);
	if (r < 0) {
		snprintf(d->reason, sizeof(d->reason),
			 "%dx%d interlaced PNG needs more than the decode memory budget", d->w, d->h);
		goto out;
	}
	d->reserved = (1u << 20) + (uint64_t)rowbytes * (passes > 1 ? h : 1) + rowbytes;
	d->luma = scratch_get();
	if (!d->luma)
		d->luma = d->own_luma = malloc(sizeof(float) *
					       PDQ_SCRATCH_FLOATS(PRESIZE, PRESIZE));
	img = calloc(passes > 1 ? h : 1, rowbytes);
	if (!d->luma || !img) {
		r = -ENOMEM;
		goto out;
	}
	d->px = (uint8_t *)(d->luma + (size_t)d->lw * d->lh);
	if (d->sampled) {
		int x;

		for (x = 0; x < d->lw; x++)
			d->xs[x] = (int)(((int64_t)x * d->w) >> 9);
	}
	d->grey = 1;
	if (passes > 1) {
		rows = malloc(sizeof(*rows) * h);
		if (!rows) {
			r = -ENOMEM;
			goto out;
		}
		for (y = 0; y < h; y++)
			rows[y] = img + (size_t)y * rowbytes;
		png_read_image(png, rows);
		for (y = 0; y < h; y++) {
			uint8_t *row = img + (size_t)y * rowbytes;

			png_row8(row, row, d->w, ch, bps);
			take_row(d, row);
		}
	} else {
		for (y = 0; y < h; y++) {
			png_read_row(png, img, NULL);
			png_row8(img, img, d->w, ch, bps);
			take_row(d, img);
		}
	}
	/* the end chunks are not read: nothing after the image data changes the pixels */
hash:
	sample_luma(d);
	r = pdq_from_luma_scratch(d->luma, d->lh, d->lw, flags & PDQ_DIHEDRAL, out);
out:
	png_destroy_read_struct(&png, &info, NULL);
	free(rows);
	free(img);
	return jd_finish(d, r, out);
}

static int jd_new(struct jdec **dp, uint64_t max_work)
{
	struct jdec *d = calloc(1, sizeof(*d));

	if (!d)
		return -ENOMEM;
	d->max_work = max_work ? max_work : IMAGE_MAX_WORK_DEFAULT;
	d->last_scan = -1;
	d->fd = -1;
	*dp = d;
	return 0;
}

int image_pdq_jpeg(const void *buf, size_t len, unsigned pdq_flags, uint64_t max_work,
		   struct pdq_result *out)
{
	struct jdec *d;
	int r;

	memset(out, 0, sizeof(*out));
	if (!image_is_jpeg(buf, len) || len > (unsigned long)-1) {
		snprintf(out->reason, sizeof(out->reason), "not a JPEG");
		return -EINVAL;
	}
	r = jd_new(&d, max_work);
	if (r < 0)
		return r;
	r = jd_run(d, buf, len, pdq_flags, out);
	jd_release(d);
	free(d);
	return r;
}

int image_pdq_buf(const void *buf, size_t len, unsigned pdq_flags, uint64_t max_work,
		  struct pdq_result *out)
{
	struct jdec *d;
	int r;

	switch (image_kind(buf, len)) {
	case IMAGE_JPEG:
		return image_pdq_jpeg(buf, len, pdq_flags, max_work, out);
	case IMAGE_PNG:
		memset(out, 0, sizeof(*out));
		r = jd_new(&d, max_work);
		if (r < 0)
			return r;
		r = png_run(d, buf, len, pdq_flags, out);
		jd_release(d);
		free(d);
		return r;
	default:
		memset(out, 0, sizeof(*out));
		snprintf(out->reason, sizeof(out->reason), "not an image format hashgate decodes");
		return -EINVAL;
	}
}

int image_pdq_fd(int fd, uint64_t mem_bytes, unsigned pdq_flags, uint64_t max_work,
		 struct pdq_result *out)
{
	uint8_t magic[IMAGE_MAGIC_LEN], *buf = NULL;
	struct jdec *d;
	struct stat st;
	ssize_t n;
	size_t len = 0;
	int r, kind;

	memset(out, 0, sizeof(*out));
	do
		n = pread(fd, magic, sizeof(magic), 0);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	kind = image_kind(magic, (size_t)n);
	if (!kind) {
		snprintf(out->reason, sizeof(out->reason), "not an image format hashgate decodes");
		return -EINVAL;
	}
	if (fstat(fd, &st) < 0)
		return -errno;
	if (kind == IMAGE_PNG) {	/* libpng reads from the file as it goes */
		r = jd_new(&d, max_work);
		if (r < 0)
			return r;
		d->fd = fd;
		r = png_run(d, NULL, 0, pdq_flags, out);
		jd_release(d);
		free(d);
		return r;
	}
	/* Files that fit in memory are read whole (the fast path needs them so). */
	if (S_ISREG(st.st_mode) && (!mem_bytes || (uint64_t)st.st_size <= mem_bytes) &&
	    (uint64_t)st.st_size < (size_t)-1 / 2) {
		size_t cap = (size_t)st.st_size + 1;

		buf = malloc(cap);
		if (!buf)
			return -ENOMEM;
		for (;;) {
			do
				n = pread(fd, buf + len, cap - len, (off_t)len);
			while (n < 0 && errno == EINTR);
			if (n < 0) {
				r = -errno;
				goto out_buf;
			}
			if (n == 0)
				break;
			len += (size_t)n;
			if (len == cap)		/* grew while we read: stream instead */
				break;
		}
		if (len == cap) {
			free(buf);
			buf = NULL;
		}
	}
	r = jd_new(&d, max_work);
	if (r < 0)
		goto out_buf;
	d->fd = fd;
	r = jd_run(d, buf, len, pdq_flags, out);
	jd_release(d);
	free(d);
out_buf:
	free(buf);
	return r;
}
