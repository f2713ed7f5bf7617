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
#include <gif_lib.h>
#include <webp/decode.h>
#include <webp/demux.h>

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
	const uint8_t *p = buf;

	if (image_is_jpeg(buf, len))
		return IMAGE_JPEG;
	if (!buf)
		return 0;
	if (len >= 8 && !memcmp(p, "\x89PNG\r\n\x1a\n", 8))
		return IMAGE_PNG;
	if (len >= 12 && !memcmp(p, "RIFF", 4) && !memcmp(p + 8, "WEBP", 4))
		return IMAGE_WEBP;
	/* what ImageMagick's GIF reader insists on (giflib looks at "GIF" only) */
	if (len >= 5 && (!memcmp(p, "GIF87", 5) || !memcmp(p, "GIF89", 5)))
		return IMAGE_GIF;
	if (image_is_bmp(buf, len))
		return IMAGE_BMP;
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

/* ---- shared by the decoders without libjpeg --------------------------------------- */

/*
 * Size, channels (1 grey, 3 RGB) and the work bound of a decoder that hands take_row whole
 * rows of 8-bit samples at full size (no DCT scaling).  -EINVAL for an empty image, -ERANGE
 * over the work bound; what names the format.
 */
static int sample_geometry(struct jdec *d, int w, int h, int ch, const char *what)
{
	d->w = w;
	d->h = h;
	if (w <= 0 || h <= 0) {
		snprintf(d->reason, sizeof(d->reason), "%s: image size %dx%d", what, w, h);
		return -EINVAL;
	}
	d->chans = ch;
	d->ci.output_components = ch;
	d->scale = 1;
	d->dw = w;
	d->dh = h;
	d->sampled = w > PRESIZE || h > PRESIZE;
	d->lw = d->sampled ? PRESIZE : w;
	d->lh = d->sampled ? PRESIZE : h;
	d->work = (uint64_t)w * (uint64_t)h;
	if (d->work > d->max_work) {
		snprintf(d->reason, sizeof(d->reason),
			 "%s: %dx%d is over the decode work bound", what, w, h);
		return -ERANGE;
	}
	return 0;
}

/* Reserve n bytes of the decode memory budget for this decode (released by jd_finish). */
static int sample_reserve(struct jdec *d, uint64_t n, const char *what)
{
	int r = mem_reserve(n);

	if (r < 0) {
		snprintf(d->reason, sizeof(d->reason),
			 "%s: %dx%d needs %llu MiB of decode memory, over the budget", what, d->w,
			 d->h, (unsigned long long)(n >> 20));
		return r;
	}
	d->reserved = n;
	return 0;
}

/* The luma buffer and the sample columns, once the geometry is known; then rows may come. */
static int sample_start(struct jdec *d)
{
	int x;

	d->luma = scratch_get();
	if (!d->luma)
		d->luma = d->own_luma = malloc(sizeof(float) *
					       PDQ_SCRATCH_FLOATS(PRESIZE, PRESIZE));
	if (!d->luma)
		return -ENOMEM;
	d->px = (uint8_t *)(d->luma + (size_t)d->lw * d->lh);
	if (d->sampled)
		for (x = 0; x < d->lw; x++)
			d->xs[x] = (int)(((int64_t)x * d->w) >> 9);
	d->grey = 1;
	return 0;
}

/* Every row has been through take_row: the hash. */
static int sample_hash(struct jdec *d, unsigned flags, struct pdq_result *out)
{
	sample_luma(d);
	return pdq_from_luma_scratch(d->luma, d->lh, d->lw, flags & PDQ_DIHEDRAL, out);
}

/*
 * Input of the decoders that read at offsets: memory (buf, len) or the file d->fd of size
 * len.  0 when all n bytes at off were read; a short read is -EINVAL (truncated).
 */
struct isrc {
	const uint8_t *buf;
	uint64_t len;
	int fd;
};

static int isrc_read(const struct isrc *s, uint64_t off, void *out, size_t n)
{
	uint8_t *o = out;

	if (off > s->len || n > s->len - off)
		return -EINVAL;
	if (s->buf) {
		memcpy(out, s->buf + off, n);
		return 0;
	}
	while (n) {
		ssize_t got = pread(s->fd, o, n, (off_t)off);

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0)
			return -errno;
		if (got == 0)
			return -EINVAL;
		o += got;
		off += (uint64_t)got;
		n -= (size_t)got;
	}
	return 0;
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
	r = sample_geometry(d, (int)w, (int)h, ch, "PNG");
	if (r < 0)
		goto out;
	/* Interlaced PNGs need the whole image (Adam7 passes); others one row at a time. */
	r = mem_reserve((1u << 20) + (uint64_t)rowbytes * (passes > 1 ? h : 1) + rowbytes);
	if (r < 0) {
		snprintf(d->reason, sizeof(d->reason),
			 "%dx%d interlaced PNG needs more than the decode memory budget", d->w, d->h);
		goto out;
	}
	d->reserved = (1u << 20) + (uint64_t)rowbytes * (passes > 1 ? h : 1) + rowbytes;
	img = calloc(passes > 1 ? h : 1, rowbytes);
	r = img ? sample_start(d) : -ENOMEM;
	if (r < 0)
		goto out;
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
	r = sample_hash(d, flags, out);
out:
	png_destroy_read_struct(&png, &info, NULL);
	free(rows);
	free(img);
	return jd_finish(d, r, out);
}

/* ---- WebP (libwebp) -------------------------------------------------------------------- */

/*
 * ImageMagick reads a WebP with WebPDecode into RGBA (default options: fancy upsampling, no
 * dithering) and its PNM drops the alpha, so the RGB under transparent pixels counts: the
 * same WebPDecode into RGB gives those bytes.  An animated WebP: IM reads every frame; the
 * reference sees the first, which IM puts at its offset on a canvas of the animation's size,
 * transparent black around it (from IM's webp.c; no reference row checks it).  The whole
 * RGB image is needed (libwebp has no row output); it and libwebp's own buffers (about 4
 * bytes a pixel for lossless or alpha) come from the decode budget.  Damaged or truncated
 * data is an error, as it is for IM (WebPDecode fails and IM returns no image).
 */
static int webp_run(struct jdec *d, const uint8_t *buf, size_t len, unsigned flags,
		    struct pdq_result *out)
{
	WebPBitstreamFeatures f;
	WebPDecoderConfig cfg;
	WebPDemuxer *demux = NULL;
	WebPIterator it;
	WebPData data = { buf, len };
	const uint8_t *fr = buf;
	size_t frlen = len, stride;
	uint8_t *rgb = NULL, *row = NULL;
	int r, fx = 0, fy = 0, fw, fh, cw, ch, y, have_it = 0;
	VP8StatusCode st;

	st = WebPGetFeatures(buf, len, &f);
	if (st != VP8_STATUS_OK) {
		snprintf(d->reason, sizeof(d->reason), "WebP: bad header (status %d)", (int)st);
		return -EINVAL;
	}
	cw = fw = f.width;
	ch = fh = f.height;
	if (f.has_animation) {
		demux = WebPDemux(&data);
		if (!demux || !WebPDemuxGetFrame(demux, 1, &it)) {
			snprintf(d->reason, sizeof(d->reason), "WebP: animation without a frame");
			r = -EINVAL;
			goto out;
		}
		have_it = 1;
		cw = (int)WebPDemuxGetI(demux, WEBP_FF_CANVAS_WIDTH);
		ch = (int)WebPDemuxGetI(demux, WEBP_FF_CANVAS_HEIGHT);
		fr = it.fragment.bytes;
		frlen = it.fragment.size;
		fx = it.x_offset;
		fy = it.y_offset;
		st = WebPGetFeatures(fr, frlen, &f);
		if (st != VP8_STATUS_OK) {
			snprintf(d->reason, sizeof(d->reason), "WebP: bad first frame (status %d)",
				 (int)st);
			r = -EINVAL;
			goto out;
		}
		fw = f.width;
		fh = f.height;
		if (fw <= 0 || fh <= 0 || fx + fw > cw || fy + fh > ch) {
			snprintf(d->reason, sizeof(d->reason), "WebP: first frame outside the canvas");
			r = -EINVAL;
			goto out;
		}
	}
	r = sample_geometry(d, cw, ch, 3, "WebP");
	if (r < 0)
		goto out;
	stride = (size_t)fw * 3;
	r = sample_reserve(d, (1u << 20) + (uint64_t)cw * 3 + (uint64_t)fw * fh *
			   (f.format == 2 || f.has_alpha ? 8 : 4), "WebP");
	if (r < 0)
		goto out;
	rgb = malloc((size_t)fh * stride);
	row = calloc((size_t)cw, 3);
	r = rgb && row ? sample_start(d) : -ENOMEM;
	if (r < 0)
		goto out;
	if (!WebPInitDecoderConfig(&cfg)) {
		r = -ENOTSUP;
		goto out;
	}
	cfg.output.colorspace = MODE_RGB;
	cfg.output.is_external_memory = 1;
	cfg.output.u.RGBA.rgba = rgb;
	cfg.output.u.RGBA.stride = (int)stride;
	cfg.output.u.RGBA.size = (size_t)fh * stride;
	st = WebPDecode(fr, frlen, &cfg);
	WebPFreeDecBuffer(&cfg.output);
	if (st != VP8_STATUS_OK) {
		snprintf(d->reason, sizeof(d->reason), "WebP: %s (status %d)",
			 st == VP8_STATUS_NOT_ENOUGH_DATA ? "truncated" : "corrupt data", (int)st);
		r = -EINVAL;
		goto out;
	}
	for (y = 0; y < ch; y++) {
		if (cw == fw && ch == fh) {
			take_row(d, rgb + (size_t)y * stride);
			continue;
		}
		memset(row, 0, (size_t)cw * 3);
		if (y >= fy && y < fy + fh)
			memcpy(row + (size_t)fx * 3, rgb + (size_t)(y - fy) * stride, stride);
		take_row(d, row);
	}
	r = sample_hash(d, flags, out);
out:
	if (have_it)
		WebPDemuxReleaseIterator(&it);
	WebPDemuxDelete(demux);
	free(rgb);
	free(row);
	return jd_finish(d, r, out);
}

/* ---- GIF (giflib) ---------------------------------------------------------------------- */

/*
 * The reference sees what ImageMagick's own GIF reader gives for the first image of the file:
 * that frame's rectangle alone (its size, not the logical screen's, whatever its offset),
 * each index through the local colour table, else the global one, else black; an index past
 * the table is entry 0 (IM's ConstrainColormapIndex); transparency ignored; interlaced rows
 * put in their place.  Frames after the first are never read.  LZW data that ends or breaks
 * before the frame is complete is an error, as in IM.  Rows are taken as they decode; an
 * interlaced frame needs its w*h indices (from the decode budget).
 */
struct gifsrc {
	struct isrc s;
	uint64_t off;
	int err;		/* read error (-errno) seen by gif_input */
};

static int gif_input(GifFileType *g, GifByteType *out, int n)
{
	struct gifsrc *gs = g->UserData;
	uint64_t avail = gs->s.len - gs->off;
	int r;

	if (n <= 0)
		return 0;
	if ((uint64_t)n > avail)
		n = (int)avail;
	r = isrc_read(&gs->s, gs->off, out, (size_t)n);
	if (r < 0) {
		gs->err = r;
		return 0;
	}
	gs->off += (uint64_t)n;
	return n;
}

static int gif_fail(struct jdec *d, struct gifsrc *gs, int code, const char *what)
{
	const char *e = GifErrorString(code);

	if (gs->err)
		snprintf(d->reason, sizeof(d->reason), "GIF: read error: %s", strerror(-gs->err));
	else if (gs->off >= gs->s.len)
		snprintf(d->reason, sizeof(d->reason), "GIF: %s: truncated", what);
	else
		snprintf(d->reason, sizeof(d->reason), "GIF: %s: %s", what, e ? e : "error");
	return gs->err ? gs->err : -EINVAL;
}

/* One row of colour indices through the colour table (none: black) to take_row. */
static void gif_row(struct jdec *d, const ColorMapObject *cm, const uint8_t *line,
		    uint8_t *rgb, int w)
{
	int ncol = cm && cm->Colors ? cm->ColorCount : 0, x;

	for (x = 0; x < w; x++) {
		const GifColorType *c = ncol ? &cm->Colors[line[x] < ncol ? line[x] : 0] : NULL;

		rgb[3 * x] = c ? c->Red : 0;
		rgb[3 * x + 1] = c ? c->Green : 0;
		rgb[3 * x + 2] = c ? c->Blue : 0;
	}
	take_row(d, rgb);
}

static int gif_run(struct jdec *d, const void *buf, size_t len, unsigned flags,
		   struct pdq_result *out)
{
	static const int ioff[] = { 0, 4, 2, 1 }, istep[] = { 8, 8, 4, 2 };
	struct gifsrc gs = { { buf, len, d->fd }, 0, 0 };
	GifFileType *g;
	GifRecordType rt;
	const ColorMapObject *cm;
	uint8_t *idx = NULL, *rgb = NULL;
	int err = 0, r, w, h, y, pass;

	if (!buf) {
		struct stat st;

		if (fstat(d->fd, &st) < 0)
			return jd_finish(d, -errno, out);
		gs.s.len = (uint64_t)st.st_size;
	}
	g = DGifOpen(&gs, gif_input, &err);
	if (!g)
		return jd_finish(d, gif_fail(d, &gs, err, "header"), out);
	for (;;) {
		if (DGifGetRecordType(g, &rt) == GIF_ERROR) {
			r = gif_fail(d, &gs, g->Error, "record");
			goto out;
		}
		if (rt == IMAGE_DESC_RECORD_TYPE)
			break;
		if (rt == EXTENSION_RECORD_TYPE) {
			GifByteType *ext;
			int code;

			if (DGifGetExtension(g, &code, &ext) == GIF_ERROR) {
				r = gif_fail(d, &gs, g->Error, "extension");
				goto out;
			}
			while (ext) {
				if (DGifGetExtensionNext(g, &ext) == GIF_ERROR) {
					r = gif_fail(d, &gs, g->Error, "extension");
					goto out;
				}
			}
			continue;
		}
		snprintf(d->reason, sizeof(d->reason), "GIF: no image in the file");
		r = -EINVAL;
		goto out;
	}
	if (DGifGetImageDesc(g) == GIF_ERROR) {
		r = gif_fail(d, &gs, g->Error, "image descriptor");
		goto out;
	}
	w = g->Image.Width;
	h = g->Image.Height;
	r = sample_geometry(d, w, h, 3, "GIF");
	if (r < 0)
		goto out;
	r = sample_reserve(d, (1u << 20) + (uint64_t)w * 4 +
			   (g->Image.Interlace ? (uint64_t)w * h : 0), "GIF");
	if (r < 0)
		goto out;
	idx = malloc(g->Image.Interlace ? (size_t)w * h : (size_t)w);
	rgb = malloc((size_t)w * 3);
	r = idx && rgb ? sample_start(d) : -ENOMEM;
	if (r < 0)
		goto out;
	cm = g->Image.ColorMap ? g->Image.ColorMap : g->SColorMap;
	for (pass = g->Image.Interlace ? 0 : 3; pass < 4; pass++) {
		int y0 = g->Image.Interlace ? ioff[pass] : 0;
		int dy = g->Image.Interlace ? istep[pass] : 1;

		for (y = y0; y < h; y += dy) {
			uint8_t *line = g->Image.Interlace ? idx + (size_t)y * w : idx;

			if (DGifGetLine(g, line, w) == GIF_ERROR) {
				r = gif_fail(d, &gs, g->Error, "image data");
				goto out;
			}
			if (!g->Image.Interlace)
				gif_row(d, cm, line, rgb, w);
		}
	}
	if (g->Image.Interlace)
		for (y = 0; y < h; y++)
			gif_row(d, cm, idx + (size_t)y * w, rgb, w);
	r = sample_hash(d, flags, out);
out:
	DGifCloseFile(g, &err);
	free(idx);
	free(rgb);
	return jd_finish(d, r, out);
}

/* ---- BMP (own decoder) ----------------------------------------------------------------- */

/*
 * Windows/OS2 bitmaps the way ImageMagick's BMP reader turns them into the reference's PNM:
 * headers of 12 (OS/2), 40, 52, 56, 64, 108 and 124 bytes; 1/4/8-bit palettes (index past
 * the palette: entry 0), 16 and 32 bits through their bit masks with IM's widening to 16
 * bits and its 16->8 bit rounding (555 by default), 24-bit BGR; alpha ignored; bottom-up or
 * top-down.  IM gives a 1- or 4-bit BMP that bit depth, and its PNM writer then scales every
 * sample to 0..1 or 0..15 (maxval 2^depth-1, which CImg reads as is): so do we, with the
 * grey/colour decision taken on the palette colours first, as IM takes it.  RLE8/RLE4 are
 * decoded as IM's DecodeImage does, into w*h indices (from the decode budget): pixels no
 * code reaches are palette entry 0, and data that ends before the end-of-bitmap code leaves
 * the rest so; IM still returns that image, so it is hashed, with out->warning.  Not decoded
 * (an error, named): embedded JPEG/PNG, 64-bit.  As in IM, uncompressed pixel data shorter
 * than the header says, or a declared file size past the end of the file, is an error.
 * Uncompressed rows are read one at a time from their offset (no whole-image buffer).
 */
#define BMP_RGB		0
#define BMP_RLE8	1
#define BMP_RLE4	2
#define BMP_BITFIELDS	3
#define BMP_ALPHABITFIELDS 6

static uint32_t le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint16_t le16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

int image_is_bmp(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint32_t hs;

	if (!buf || len < 18 || p[0] != 'B' || p[1] != 'M')
		return 0;
	/* "BM" alone starts too many text files: the DIB header size must be one IM reads */
	hs = le32(p + 14);
	return hs == 12 || hs == 40 || hs == 52 || hs == 56 || hs == 64 || hs == 78 ||
	       hs == 108 || hs == 124;
}

/* IM's channel of a bit-field pixel: widened to 16 bits as bmp.c does, then to 8 (PNM). */
struct bmp_chan {
	uint32_t mask;
	unsigned shift, bits;
};

static void bmp_chan_init(struct bmp_chan *c, uint32_t mask)
{
	unsigned s = 0, e;

	c->mask = mask;
	if (mask)
		while (!((mask << s) & 0x80000000u) && s <= 32)
			s++;
	/* IM counts the mask's run of ones from its top bit (and 0 for an empty mask) */
	for (e = s; e < 32 && ((mask << e) & 0x80000000u); e++)
		;
	c->shift = s;
	c->bits = e - s;
}

static uint8_t q16_to_8(unsigned q)
{
	return (uint8_t)(((q + 128) - ((q + 128) >> 8)) >> 8);
}

static uint8_t bmp_chan16(const struct bmp_chan *c, uint32_t px, int green)
{
	unsigned v = c->shift < 32 ? (unsigned)(((px & c->mask) << c->shift) >> 16) : 0;

	if (c->bits == 5)
		v |= (v & 0xe000) >> 5;
	if (green && c->bits == 6)
		v |= (v & 0xc000) >> 6;
	if (c->bits <= 8)
		v |= (v & 0xff00) >> 8;
	return q16_to_8(v & 0xffff);
}

static uint8_t bmp_chan32(const struct bmp_chan *c, uint32_t px)
{
	unsigned v = c->shift < 32 ? (unsigned)(((px & c->mask) << c->shift) >> 16) : 0;

	if (c->bits == 8)
		v |= v >> 8;
	return q16_to_8(v & 0xffff);
}

/* Buffered sequential reads of the RLE stream. */
struct bmp_rd {
	const struct isrc *s;
	uint64_t off;
	size_t n, i;
	int err;
	uint8_t b[4096];
};

static int rd_byte(struct bmp_rd *r)
{
	if (r->i == r->n) {
		uint64_t left = r->s->len - r->off;
		size_t n = left < sizeof(r->b) ? (size_t)left : sizeof(r->b);

		if (!n || r->err)
			return -1;
		r->err = isrc_read(r->s, r->off, r->b, n);
		if (r->err < 0)
			return -1;
		r->off += n;
		r->n = n;
		r->i = 0;
	}
	return r->b[r->i++];
}

/*
 * ImageMagick's BMP DecodeImage: runs and absolute runs (RLE4: two indices a byte), end of
 * line, delta, end of bitmap; rows from the bottom (px row 0 = the file's first row); runs
 * clipped at the end of the buffer, a move past it ends the decode.  px starts zeroed.
 * 1 when the data ended before the end-of-bitmap code, else 0.
 */
static int bmp_rle(struct bmp_rd *rd, int rle4, uint8_t *px, size_t w, size_t h)
{
	size_t n = w * h, p = 0, y = 0, cnt, i;
	int c, b = 0;

	while (y < h && p < n) {
		if ((c = rd_byte(rd)) < 0)
			return 1;
		if (c > 0) {	/* encoded run */
			cnt = (size_t)c < n - p ? (size_t)c : n - p;
			if ((b = rd_byte(rd)) < 0)
				return 1;
			for (i = 0; i < cnt; i++)
				px[p++] = (uint8_t)(!rle4 ? b : (i & 1) ? (b & 15) : (b >> 4));
			continue;
		}
		if ((c = rd_byte(rd)) < 0)
			return 1;
		if (c == 1)
			return 0;
		if (c == 0) {	/* end of line */
			y++;
			p = y * w;
			continue;
		}
		if (c == 2) {	/* delta */
			int dx = rd_byte(rd), dy = dx < 0 ? -1 : rd_byte(rd);

			if (dy < 0)
				return 1;
			y += (size_t)dy;
			p += (size_t)dy * w + (size_t)dx;
			continue;
		}
		cnt = (size_t)c < n - p ? (size_t)c : n - p;	/* absolute run */
		for (i = 0; i < cnt; i++) {
			if (!rle4 || !(i & 1))
				if ((b = rd_byte(rd)) < 0)
					return 1;
			px[p++] = (uint8_t)(!rle4 ? b : (i & 1) ? (b & 15) : (b >> 4));
		}
		/* pad to 16 bits */
		if ((!rle4 && (cnt & 1)) || (rle4 && ((cnt & 3) == 1 || (cnt & 3) == 2)))
			if (rd_byte(rd) < 0)
				return 1;
	}
	return 0;
}

static int bmp_bad(struct jdec *d, int code, const char *why)
{
	snprintf(d->reason, sizeof(d->reason), "BMP: %s", why);
	return code;
}

static int bmp_run(struct jdec *d, const void *buf, size_t len, unsigned flags,
		   struct pdq_result *out)
{
	struct isrc s = { buf, len, d->fd };
	uint8_t hdr[14 + 124 + 16], pal[256][3], *buf_line = NULL, *rgb = NULL, *rlepx = NULL;
	struct bmp_rd *rd = NULL;
	uint32_t hsize, offbits, fsize, comp = BMP_RGB, ncolors = 0, masks[3] = { 0, 0, 0 };
	int32_t w, h;
	unsigned bpp, planes, i;
	uint64_t stride;
	struct bmp_chan ch[3];
	int r, y, x, topdown, hlen, grey = 1, rle;

	if (!buf) {
		struct stat st;

		if (fstat(d->fd, &st) < 0)
			return jd_finish(d, -errno, out);
		s.len = (uint64_t)st.st_size;
	}
	memset(hdr, 0, sizeof(hdr));
	if (isrc_read(&s, 0, hdr, 18) < 0) {
		r = bmp_bad(d, -EINVAL, "truncated header");
		goto out;
	}
	fsize = le32(hdr + 2);
	offbits = le32(hdr + 10);
	hsize = le32(hdr + 14);
	if (fsize && fsize > s.len) {
		r = bmp_bad(d, -EINVAL, "file shorter than its header says (truncated)");
		goto out;
	}
	hlen = (int)(14 + hsize + (hsize == 40 ? 12 : 0));
	/* IM: 12 (OS/2 1.x), 40, 52, 56, or 64 and up to 124 */
	if (hsize > 124 || offbits < hsize ||
	    (hsize != 12 && hsize != 40 && hsize != 52 && hsize != 56 && hsize < 64)) {
		r = bmp_bad(d, -EINVAL, "bad header size");
		goto out;
	}
	/* the 12 bytes of masks after a 40-byte header may be absent when not used */
	if (isrc_read(&s, 18, hdr + 18, (size_t)hlen - 18) < 0 &&
	    isrc_read(&s, 18, hdr + 18, (size_t)(14 + hsize) - 18) < 0) {
		r = bmp_bad(d, -EINVAL, "truncated header");
		goto out;
	}
	if (hsize == 12) {
		w = (int16_t)le16(hdr + 18);
		h = (int16_t)le16(hdr + 20);
		planes = le16(hdr + 22);
		bpp = le16(hdr + 24);
	} else if (hsize >= 40) {
		w = (int32_t)le32(hdr + 18);
		h = (int32_t)le32(hdr + 22);
		planes = le16(hdr + 26);
		bpp = le16(hdr + 28);
		comp = le32(hdr + 30);
		ncolors = le32(hdr + 46);
		if (hsize > 40 || comp == BMP_BITFIELDS || comp == BMP_ALPHABITFIELDS)
			for (i = 0; i < 3; i++)
				masks[i] = le32(hdr + 54 + 4 * i);
	} else {
		r = bmp_bad(d, -EINVAL, "bad header size");
		goto out;
	}
	if (w <= 0 || h == 0 || h == INT32_MIN) {
		r = bmp_bad(d, -EINVAL, "zero or negative image size");
		goto out;
	}
	if (planes != 1) {
		r = bmp_bad(d, -EINVAL, "planes is not 1");
		goto out;
	}
	if ((comp == BMP_RLE8 && bpp != 8) || (comp == BMP_RLE4 && bpp != 4)) {
		r = bmp_bad(d, -EINVAL, "RLE with the wrong bits per pixel");
		goto out;
	}
	if (comp != BMP_RGB && comp != BMP_BITFIELDS && comp != BMP_ALPHABITFIELDS &&
	    comp != BMP_RLE8 && comp != BMP_RLE4) {
		r = bmp_bad(d, -ENOTSUP, "compression (embedded JPEG/PNG or unknown) not decoded");
		goto out;
	}
	if (bpp != 1 && bpp != 4 && bpp != 8 && bpp != 16 && bpp != 24 && bpp != 32) {
		r = bmp_bad(d, bpp == 64 ? -ENOTSUP : -EINVAL, "unsupported bits per pixel");
		goto out;
	}
	if (bpp < 16 && ncolors > (1u << bpp)) {
		r = bmp_bad(d, -EINVAL, "more palette colours than the bit depth allows");
		goto out;
	}
	if ((comp == BMP_BITFIELDS || comp == BMP_ALPHABITFIELDS) && bpp < 16) {
		r = bmp_bad(d, -EINVAL, "bit fields need 16 or 32 bits per pixel");
		goto out;
	}
	topdown = h < 0;
	if (topdown)
		h = -h;
	r = sample_geometry(d, w, h, 3, "BMP");
	if (r < 0)
		goto out;
	memset(pal, 0, sizeof(pal));
	if (bpp < 16) {
		unsigned ps = hsize == 12 || hsize == 64 ? 3 : 4;
		uint8_t e[4];

		if (!ncolors)
			ncolors = 1u << bpp;
		for (i = 0; i < ncolors; i++) {
			if (isrc_read(&s, 14 + hsize + (uint64_t)i * ps, e, ps) < 0) {
				r = bmp_bad(d, -EINVAL, "truncated palette");
				goto out;
			}
			pal[i][0] = e[2];
			pal[i][1] = e[1];
			pal[i][2] = e[0];
		}
	}
	if (comp == BMP_RGB) {	/* IM's defaults: 8-8-8 (alpha ignored), 5-5-5 for 16 bits */
		masks[0] = bpp == 16 ? 0x7c00 : 0x00ff0000;
		masks[1] = bpp == 16 ? 0x03e0 : 0x0000ff00;
		masks[2] = bpp == 16 ? 0x001f : 0x000000ff;
	}
	for (i = 0; i < 3; i++)
		bmp_chan_init(&ch[i], masks[i]);
	rle = comp == BMP_RLE8 || comp == BMP_RLE4;
	stride = 4 * (((uint64_t)w * (rle ? 8 : bpp) + 31) / 32);
	/* RLE: IM's only size check is this loose one */
	if (offbits > s.len || (rle ? stride * (uint64_t)h / 256 > s.len :
			       stride * (uint64_t)h > s.len - offbits)) {
		r = bmp_bad(d, -EINVAL, "pixel data shorter than the image (truncated)");
		goto out;
	}
	r = sample_reserve(d, (1u << 20) + stride + (uint64_t)w * 3 +
			   (rle ? (uint64_t)w * h + sizeof(struct bmp_rd) : 0), "BMP");
	if (r < 0)
		goto out;
	buf_line = malloc((size_t)stride);
	rgb = malloc((size_t)w * 3);
	r = buf_line && rgb ? sample_start(d) : -ENOMEM;
	if (r < 0)
		goto out;
	if (rle) {
		rd = calloc(1, sizeof(*rd));
		rlepx = calloc((size_t)w, (size_t)h);
		if (!rd || !rlepx) {
			r = -ENOMEM;
			goto out;
		}
		rd->s = &s;
		rd->off = offbits;
		if (bmp_rle(rd, comp == BMP_RLE4, rlepx, (size_t)w, (size_t)h)) {
			if (rd->err < 0) {
				r = bmp_bad(d, rd->err, "pixel data unreadable");
				goto out;
			}
			d->warnings++;
			bmp_bad(d, 0, "RLE data ends early: the rest is palette entry 0");
		}
	}
	for (y = 0; y < h; y++) {
		uint64_t fr = topdown ? (uint64_t)y : (uint64_t)(h - 1 - y);
		const uint8_t *line = rle ? rlepx + fr * (uint64_t)w : buf_line;
		uint8_t *o = rgb;

		if (!rle) {
			r = isrc_read(&s, offbits + fr * stride, buf_line, (size_t)stride);
			if (r < 0) {
				r = bmp_bad(d, r, "pixel data unreadable");
				goto out;
			}
		}
		for (x = 0; x < w; x++, o += 3) {
			const uint8_t *p;
			uint32_t px;
			unsigned idx;

			switch (bpp) {
			case 1:
			case 4:
			case 8:
				idx = rle ? line[x] : (line[(size_t)x * bpp / 8] >>
						       (8 - bpp - ((size_t)x * bpp) % 8)) &
						      ((1u << bpp) - 1);
				if (idx >= ncolors)
					idx = 0;
				memcpy(o, pal[idx], 3);
				if (bpp < 8) {
					unsigned k, range = (1u << bpp) - 1;

					if (o[0] != o[1] || o[1] != o[2])
						grey = 0;
					/* ScaleQuantumToAny(v*257, range): v*range/255 rounded
					 * (never a tie for range 1 or 15) */
					for (k = 0; k < 3; k++)
						o[k] = (uint8_t)((2 * range * o[k] + 255) / 510);
				}
				break;
			case 24:
				p = line + 3 * (size_t)x;
				o[0] = p[2];
				o[1] = p[1];
				o[2] = p[0];
				break;
			case 16:
				px = le16(line + 2 * (size_t)x);
				o[0] = bmp_chan16(&ch[0], px, 0);
				o[1] = bmp_chan16(&ch[1], px, 1);
				o[2] = bmp_chan16(&ch[2], px, 0);
				break;
			default:
				px = le32(line + 4 * (size_t)x);
				o[0] = bmp_chan32(&ch[0], px);
				o[1] = bmp_chan32(&ch[1], px);
				o[2] = bmp_chan32(&ch[2], px);
				break;
			}
		}
		take_row(d, rgb);
	}
	/* scaled samples may look grey where the colours were not: IM decided on the colours */
	if (!grey)
		d->grey = 0;
	r = sample_hash(d, flags, out);
out:
	free(buf_line);
	free(rgb);
	free(rlepx);
	free(rd);
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

/* One decode of a non-JPEG kind, from buf/len or (buf NULL) the file fd. */
static int run_other(int kind, int fd, const void *buf, size_t len, unsigned flags,
		     uint64_t max_work, struct pdq_result *out)
{
	struct jdec *d;
	int r;

	memset(out, 0, sizeof(*out));
	r = jd_new(&d, max_work);
	if (r < 0)
		return r;
	d->fd = fd;
	switch (kind) {
	case IMAGE_PNG:
		r = png_run(d, buf, len, flags, out);
		break;
	case IMAGE_WEBP:
		r = webp_run(d, buf, len, flags, out);
		break;
	case IMAGE_GIF:
		r = gif_run(d, buf, len, flags, out);
		break;
	default:
		r = bmp_run(d, buf, len, flags, out);
		break;
	}
	jd_release(d);
	free(d);
	return r;
}

int image_pdq_buf(const void *buf, size_t len, unsigned pdq_flags, uint64_t max_work,
		  struct pdq_result *out)
{
	int kind = image_kind(buf, len);

	if (kind == IMAGE_JPEG)
		return image_pdq_jpeg(buf, len, pdq_flags, max_work, out);
	if (kind)
		return run_other(kind, -1, buf, len, pdq_flags, max_work, out);
	memset(out, 0, sizeof(*out));
	snprintf(out->reason, sizeof(out->reason), "not an image format hashgate decodes");
	return -EINVAL;
}

/*
 * libwebp decodes from memory only: read the RIFF container (not what may follow it) into a
 * buffer that counts against the decode budget, then decode.
 */
static int webp_fd(int fd, const uint8_t *magic, uint64_t size, unsigned flags,
		   uint64_t max_work, struct pdq_result *out)
{
	uint64_t riff = (uint64_t)le32(magic + 4) + 8, n = riff < size ? riff : size, got = 0;
	uint8_t *buf;
	int r;

	memset(out, 0, sizeof(*out));
	if (n >= (size_t)-1 / 2)
		return -E2BIG;
	r = mem_reserve(n);
	if (r < 0) {
		snprintf(out->reason, sizeof(out->reason),
			 "WebP file of %llu MiB is over the decode memory budget",
			 (unsigned long long)(n >> 20));
		return r;
	}
	buf = malloc(n ? (size_t)n : 1);
	if (!buf) {
		r = -ENOMEM;
		goto out_unreserve;
	}
	while (got < n) {
		ssize_t k = pread(fd, buf + got, (size_t)(n - got), (off_t)got);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			r = -errno;
			goto out_free;
		}
		if (k == 0)
			break;
		got += (uint64_t)k;
	}
	r = run_other(IMAGE_WEBP, fd, buf, (size_t)got, flags, max_work, out);
out_free:
	free(buf);
out_unreserve:
	mem_unreserve(n);
	return r;
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
	if (kind == IMAGE_WEBP)
		return webp_fd(fd, magic, (uint64_t)st.st_size, pdq_flags, max_work, out);
	if (kind != IMAGE_JPEG)		/* libpng, giflib and the BMP reader read the file */
		return run_other(kind, fd, NULL, 0, pdq_flags, max_work, out);
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
