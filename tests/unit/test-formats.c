/*
 * test-formats.c - PDQ of WebP, GIF and BMP: the decoders give the pixels ImageMagick gives the
 * reference, and damaged files are errors, the same every time.
 *
 * Generated pictures (fixed pixels, no shared data needed), each written by the format's own
 * encoder (libwebp, giflib, libpng) or by the BMP writer here:
 *  - one RGB picture as lossless WebP, 24-bit, 32-bit, top-down and bit-field BMPs and PNG
 *    decodes to the same pixels, so every copy must hash exactly like the PNG (hash and
 *    quality); 16-bit 565/555 BMPs like PNGs of the widened values; an indexed picture as
 *    GIF (plain, interlaced, animated with other frames after it, in a bigger screen) and as
 *    1/4/8-bit BMPs like the PNG of its palette colours; animated WebP's first frame;
 *  - every truncation and random damage of each file: an error (pdq_error), the same from
 *    memory and from the file, twice in a row; work and memory bounds give -ERANGE/-E2BIG.
 * With $HASHGATE_SHARED: every row of testdata/pdq-formats/expected.csv bit for bit except
 * TIFF (not decoded, README.md says why).  Argument "v": the damage cases only, small enough
 * for `valgrind --error-exitcode=1 test-formats v` (run by the full test when installed).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gif_lib.h>
#include <png.h>
#include <webp/encode.h>
#include <webp/mux.h>

#include "hashdb/image.h"
#include "hashdb/pdq.h"
#include "tests/unit/tap.h"

struct blob {
	uint8_t *p;
	size_t n, cap;
};

static void put(struct blob *b, const void *src, size_t n)
{
	if (b->n + n > b->cap) {
		b->cap = (b->n + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
	}
	memcpy(b->p + b->n, src, n);
	b->n += n;
}

static void put16(struct blob *b, unsigned v)
{
	uint8_t x[2] = { (uint8_t)v, (uint8_t)(v >> 8) };

	put(b, x, 2);
}

static void put32(struct blob *b, uint32_t v)
{
	uint8_t x[4] = { (uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24) };

	put(b, x, 4);
}

/* A w x h RGB picture: gradients, blocks and noise (a function of x, y and seed only). */
static uint8_t *picture(int w, int h, unsigned seed)
{
	uint8_t *px = malloc((size_t)w * h * 3);
	int x, y, k;

	for (y = 0; y < h; y++)
		for (x = 0; x < w; x++)
			for (k = 0; k < 3; k++) {
				uint32_t n = (uint32_t)(x * 73856093u ^ y * 19349663u ^
							(k + seed) * 83492791u);
				int v = (x * 255 / w + (k + 1) * y * 255 / h +
					 (int)((n * 2654435761u) >> 28)) & 255;

				if ((((x + (int)seed * 7) / 29) ^ (y / 19)) & 1)
					v = 255 - v;
				px[((size_t)y * w + x) * 3 + k] = (uint8_t)v;
			}
	return px;
}

static void png_write_cb(png_structp png, png_bytep data, png_size_t n)
{
	put(png_get_io_ptr(png), data, n);
}

static void png_flush_cb(png_structp png)
{
	(void)png;
}

/* RGB pixels as an 8-bit RGB PNG (the decoder already checked bit-exact against the rows). */
static struct blob make_png(const uint8_t *px, int w, int h)
{
	struct blob b = { 0 };
	png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
	png_infop info = png_create_info_struct(png);
	int y;

	png_set_write_fn(png, &b, png_write_cb, png_flush_cb);
	png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, 8, PNG_COLOR_TYPE_RGB,
		     PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
	png_write_info(png, info);
	for (y = 0; y < h; y++)
		png_write_row(png, px + (size_t)y * w * 3);
	png_write_end(png, NULL);
	png_destroy_write_struct(&png, &info);
	return b;
}

/*
 * A BMP of RGB pixels.  bpp 24 or 32 (BI_RGB, or bit fields 8-8-8 in another order), 16
 * (masks: 565 or 555), or 1/4/8 with idx/pal; hsize 12/40/108/124; topdown: negative height.
 */
struct bmpopt {
	int bpp, hsize, topdown, bitfields, rle;	/* rle: 1 RLE8, 2 RLE4 */
	uint32_t masks[3];
	const uint8_t *idx;		/* palette images: one index per pixel */
	const uint8_t (*pal)[3];
	int ncolors;
};

static struct blob make_bmp(const uint8_t *px, int w, int h, const struct bmpopt *o)
{
	struct blob b = { 0 };
	int stride = 4 * ((w * o->bpp + 31) / 32), y, x, i;
	int npal = o->bpp <= 8 ? o->ncolors : 0, psz = o->hsize == 12 ? 3 : 4;
	int extra = o->hsize == 40 && o->bitfields ? 12 : 0, run;
	uint32_t off = (uint32_t)(14 + o->hsize + extra + npal * psz);
	uint8_t *row = calloc(1, (size_t)stride);

	put(&b, "BM", 2);
	put32(&b, off + (uint32_t)stride * (uint32_t)h);
	put32(&b, 0);
	put32(&b, off);
	put32(&b, (uint32_t)o->hsize);
	if (o->hsize == 12) {
		put16(&b, (unsigned)w);
		put16(&b, (unsigned)(o->topdown ? -h : h));
		put16(&b, 1);
		put16(&b, (unsigned)o->bpp);
	} else {
		put32(&b, (uint32_t)w);
		put32(&b, (uint32_t)(o->topdown ? -h : h));
		put16(&b, 1);
		put16(&b, (unsigned)o->bpp);
		put32(&b, o->bitfields ? 3 : (uint32_t)o->rle);
		put32(&b, (uint32_t)stride * (uint32_t)h);
		put32(&b, 2835);
		put32(&b, 2835);
		put32(&b, (uint32_t)npal);
		put32(&b, 0);
		if (o->hsize > 40 || o->bitfields)
			for (i = 0; i < 3; i++)
				put32(&b, o->masks[i]);
		if (o->hsize > 40) {
			uint8_t z[124] = { 0 };

			put(&b, z, (size_t)o->hsize - 52);
		}
	}
	for (i = 0; i < npal; i++) {
		uint8_t e[4] = { o->pal[i][2], o->pal[i][1], o->pal[i][0], 0 };

		put(&b, e, (size_t)psz);
	}
	if (o->rle) {
		/*
		 * RLE8: each row opens with an absolute run of 3, then runs of equal indices;
		 * RLE4: runs of 2 alternating indices (a pair per byte).  EOL per row, then EOB.
		 */
		for (y = 0; y < h; y++) {
			const uint8_t *ix = o->idx + (size_t)(h - 1 - y) * w;

			x = 0;
			if (o->rle == 1 && w >= 3) {
				uint8_t a[6] = { 0, 3, ix[0], ix[1], ix[2], 0 };

				put(&b, a, 6);
				x = 3;
			}
			while (x < w) {
				uint8_t r2[2];

				if (o->rle == 1) {
					for (run = 1; x + run < w && run < 255 && ix[x + run] == ix[x]; run++)
						;
					r2[0] = (uint8_t)run;
					r2[1] = ix[x];
				} else {
					run = x + 1 < w ? 2 : 1;
					r2[0] = (uint8_t)run;
					r2[1] = (uint8_t)(ix[x] << 4 | (run == 2 ? ix[x + 1] : 0));
				}
				put(&b, r2, 2);
				x += run;
			}
			put(&b, "\0\0", 2);
		}
		put(&b, "\0\1", 2);
		for (i = 0; i < 4; i++)		/* the real file size */
			b.p[2 + i] = (uint8_t)(b.n >> (8 * i));
		free(row);
		return b;
	}
	for (y = 0; y < h; y++) {
		int sy = o->topdown ? y : h - 1 - y;

		memset(row, 0, (size_t)stride);
		for (x = 0; x < w; x++) {
			const uint8_t *p = px + ((size_t)sy * w + x) * 3;
			uint32_t v = 0;
			int k;

			switch (o->bpp) {
			case 1:
			case 4:
			case 8:
				row[x * o->bpp / 8] |= (uint8_t)(o->idx[(size_t)sy * w + x]
								 << (8 - o->bpp - (x * o->bpp) % 8));
				break;
			case 24:
				row[3 * x] = p[2];
				row[3 * x + 1] = p[1];
				row[3 * x + 2] = p[0];
				break;
			default:	/* 16 or 32 through the masks (values are already in range) */
				for (k = 0; k < 3; k++) {
					uint32_t m = o->masks[k], s = 0, bits = 0, c;

					while (!((m >> s) & 1))
						s++;
					while ((m >> (s + bits)) & 1)
						bits++;
					c = (uint32_t)p[k] >> (8 - bits);
					v |= c << s;
				}
				if (o->bpp == 32)
					v |= 0xff000000u & ~(o->masks[0] | o->masks[1] | o->masks[2]);
				for (k = 0; k < o->bpp / 8; k++)
					row[o->bpp / 8 * x + k] = (uint8_t)(v >> (8 * k));
				break;
			}
		}
		put(&b, row, (size_t)stride);
	}
	free(row);
	return b;
}

static int gif_out(GifFileType *g, const GifByteType *data, int n)
{
	put(g->UserData, data, (size_t)n);
	return n;
}

/*
 * A GIF of indexed pixels: frame 0 = idx (fw x fh at fx,fy on a sw x sh screen, local or global
 * colour table), then nextra more frames of other indices.
 */
static struct blob make_gif(const uint8_t *idx, int fw, int fh, int sw, int sh, int fx, int fy,
			    const uint8_t (*pal)[3], int interlace, int local, int nextra)
{
	struct blob b = { 0 };
	int err, y, f, i;
	GifFileType *g = EGifOpen(&b, gif_out, &err);
	ColorMapObject *cm = GifMakeMapObject(256, NULL);
	uint8_t *line = malloc((size_t)fw);

	for (i = 0; i < 256; i++) {
		cm->Colors[i].Red = pal[i][0];
		cm->Colors[i].Green = pal[i][1];
		cm->Colors[i].Blue = pal[i][2];
	}
	EGifSetGifVersion(g, true);
	EGifPutScreenDesc(g, sw, sh, 8, 0, local ? NULL : cm);
	for (f = 0; f <= nextra; f++) {
		static const int ioff[] = { 0, 4, 2, 1 }, istep[] = { 8, 8, 4, 2 };
		int p, il = f == 0 && interlace;

		EGifPutImageDesc(g, f ? 0 : fx, f ? 0 : fy, f ? sw : fw, f ? sh : fh, il,
				 local ? cm : NULL);
		if (f) {
			uint8_t *l2 = malloc((size_t)sw);

			for (y = 0; y < sh; y++) {
				for (i = 0; i < sw; i++)
					l2[i] = (uint8_t)((i * 7 + y * 3 + f * 50) & 255);
				EGifPutLine(g, l2, sw);
			}
			free(l2);
			continue;
		}
		for (p = il ? 0 : 3; p < 4; p++)
			for (y = il ? ioff[p] : 0; y < fh; y += il ? istep[p] : 1) {
				memcpy(line, idx + (size_t)y * fw, (size_t)fw);
				EGifPutLine(g, line, fw);
			}
	}
	EGifCloseFile(g, &err);
	GifFreeMapObject(cm);
	free(line);
	return b;
}

/* A 3-3-2 palette and the indices of px through it; *rgb = the palette colours per pixel. */
static const uint8_t (*palette332(void))[3]
{
	static uint8_t pal[256][3];
	int i;

	for (i = 0; i < 256; i++) {
		pal[i][0] = (uint8_t)(((i >> 5) & 7) * 255 / 7);
		pal[i][1] = (uint8_t)(((i >> 2) & 7) * 255 / 7);
		pal[i][2] = (uint8_t)((i & 3) * 255 / 3);
	}
	return (const uint8_t (*)[3])pal;
}

static uint8_t *index332(const uint8_t *px, int w, int h, uint8_t **rgb)
{
	const uint8_t (*pal)[3] = palette332();
	uint8_t *idx = malloc((size_t)w * h);
	size_t i;

	*rgb = malloc((size_t)w * h * 3);
	for (i = 0; i < (size_t)w * h; i++) {
		idx[i] = (uint8_t)((px[3 * i] >> 5) << 5 | (px[3 * i + 1] >> 5) << 2 |
				   px[3 * i + 2] >> 6);
		memcpy(*rgb + 3 * i, pal[idx[i]], 3);
	}
	return idx;
}

static int same(const struct pdq_result *a, const struct pdq_result *b)
{
	return memcmp(a->hash, b->hash, sizeof(a->hash)) == 0 && a->quality == b->quality &&
	       a->width == b->width && a->height == b->height;
}

/* PDQ from memory and from a file of the same bytes; -1000 if the two differ. */
static int pdq2(const void *buf, size_t n, uint64_t max_work, struct pdq_result *r)
{
	struct pdq_result f;
	int rm = image_pdq_buf(buf, n, PDQ_DIHEDRAL, max_work, r);
	int fd = memfd_create("t", 0), rf;

	if (fd < 0 || write(fd, buf, n) != (ssize_t)n)
		return -1001;
	rf = image_pdq_fd(fd, 0, PDQ_DIHEDRAL, max_work, &f);
	close(fd);
	if (rm != rf || (rm == 0 && !same(r, &f)))
		return -1000;
	return rm;
}

static void check_like(const struct blob *b, const struct pdq_result *want, int kind,
		       const char *what)
{
	struct pdq_result r;
	int rc = pdq2(b->p, b->n, 0, &r);

	if (!ok(rc == 0 && same(&r, want) && image_kind(b->p, b->n) == kind,
		"%s: kind %d, hashes like the PNG of the same pixels", what, kind))
		diag("rc %d (%s), q %d vs %d, %dx%d", rc, r.reason, r.quality, want->quality,
		     r.width, r.height);
}

static struct blob webp_lossless(const uint8_t *px, int w, int h)
{
	struct blob b = { 0 };
	uint8_t *out = NULL;
	size_t n = WebPEncodeLosslessRGB(px, w, h, w * 3, &out);

	put(&b, out, n);
	WebPFree(out);
	return b;
}

/* A 2-frame animation: frame 0 = px over the whole canvas, frame 1 = other. */
static struct blob webp_anim(const uint8_t *px, const uint8_t *other, int w, int h)
{
	struct blob b = { 0 };
	WebPAnimEncoderOptions ao;
	WebPAnimEncoder *enc;
	WebPConfig cfg;
	WebPPicture pic;
	WebPData data;
	int f;

	WebPAnimEncoderOptionsInit(&ao);
	enc = WebPAnimEncoderNew(w, h, &ao);
	WebPConfigInit(&cfg);
	cfg.lossless = 1;
	cfg.exact = 1;
	for (f = 0; f < 2; f++) {
		WebPPictureInit(&pic);
		pic.width = w;
		pic.height = h;
		pic.use_argb = 1;
		WebPPictureImportRGB(&pic, f ? other : px, w * 3);
		WebPAnimEncoderAdd(enc, &pic, f * 100, &cfg);
		WebPPictureFree(&pic);
	}
	WebPAnimEncoderAdd(enc, NULL, 200, NULL);
	WebPDataInit(&data);
	WebPAnimEncoderAssemble(enc, &data);
	put(&b, data.bytes, data.size);
	WebPDataClear(&data);
	WebPAnimEncoderDelete(enc);
	return b;
}

static void test_same_pixels(void)
{
	const int w = 300, h = 220;
	uint8_t *px = picture(w, h, 1), *px16 = malloc((size_t)w * h * 3), *idx, *prgb;
	uint8_t *px2 = picture(w, h, 9);
	struct blob png = make_png(px, w, h), b;
	struct pdq_result want, r;
	const uint8_t (*pal)[3] = palette332();
	struct bmpopt o;
	size_t i;

	is_int(pdq2(png.p, png.n, 0, &want), 0, "reference PNG hashes (quality %d)", want.quality);
	b = webp_lossless(px, w, h);
	check_like(&b, &want, IMAGE_WEBP, "lossless WebP");
	free(b.p);
	b = webp_anim(px, px2, w, h);
	check_like(&b, &want, IMAGE_WEBP, "animated WebP (first frame; the second differs)");
	free(b.p);

	memset(&o, 0, sizeof(o));
	o.bpp = 24;
	o.hsize = 40;
	b = make_bmp(px, w, h, &o);
	check_like(&b, &want, IMAGE_BMP, "BMP 24-bit");
	free(b.p);
	o.topdown = 1;
	b = make_bmp(px, w, h, &o);
	check_like(&b, &want, IMAGE_BMP, "BMP 24-bit top-down");
	free(b.p);
	o.topdown = 0;
	o.hsize = 12;
	b = make_bmp(px, w, h, &o);
	check_like(&b, &want, IMAGE_BMP, "BMP 24-bit OS/2 header");
	free(b.p);
	o.bpp = 32;
	o.hsize = 40;
	o.masks[0] = 0xff0000;
	o.masks[1] = 0xff00;
	o.masks[2] = 0xff;
	b = make_bmp(px, w, h, &o);
	check_like(&b, &want, IMAGE_BMP, "BMP 32-bit BI_RGB");
	free(b.p);
	o.bitfields = 1;
	o.masks[0] = 0xff;
	o.masks[1] = 0xff000000u;
	o.masks[2] = 0xff00;
	b = make_bmp(px, w, h, &o);
	check_like(&b, &want, IMAGE_BMP, "BMP 32-bit bit fields in another order");
	free(b.p);
	o.hsize = 124;
	b = make_bmp(px, w, h, &o);
	check_like(&b, &want, IMAGE_BMP, "BMP 32-bit, V5 header");
	free(b.p);
	free(png.p);

	/* 16-bit: IM widens 5 bits to (v<<3)|(v>>2), 6 bits to (v<<2)|(v>>4) */
	for (i = 0; i < (size_t)w * h * 3; i++) {
		unsigned v5 = px[i] >> 3, v6 = px[i] >> 2;

		px16[i] = (uint8_t)(i % 3 == 1 ? (v6 << 2 | v6 >> 4) : (v5 << 3 | v5 >> 2));
	}
	png = make_png(px16, w, h);
	is_int(pdq2(png.p, png.n, 0, &want), 0, "PNG of the 565 values hashes");
	o.bpp = 16;
	o.hsize = 40;
	o.masks[0] = 0xf800;
	o.masks[1] = 0x07e0;
	o.masks[2] = 0x001f;
	b = make_bmp(px, w, h, &o);
	check_like(&b, &want, IMAGE_BMP, "BMP 16-bit 565 bit fields");
	free(b.p);
	free(png.p);
	for (i = 0; i < (size_t)w * h * 3; i++) {
		unsigned v5 = px[i] >> 3;

		px16[i] = (uint8_t)(v5 << 3 | v5 >> 2);
	}
	png = make_png(px16, w, h);
	is_int(pdq2(png.p, png.n, 0, &want), 0, "PNG of the 555 values hashes");
	o.bitfields = 0;
	o.masks[0] = 0x7c00;
	o.masks[1] = 0x03e0;
	o.masks[2] = 0x001f;
	b = make_bmp(px, w, h, &o);
	check_like(&b, &want, IMAGE_BMP, "BMP 16-bit BI_RGB (555)");
	free(b.p);
	free(png.p);

	/* indexed: GIF and palette BMPs like the PNG of the palette colours */
	idx = index332(px, w, h, &prgb);
	png = make_png(prgb, w, h);
	is_int(pdq2(png.p, png.n, 0, &want), 0, "PNG of the 3-3-2 palette colours hashes");
	b = make_gif(idx, w, h, w, h, 0, 0, pal, 0, 0, 0);
	check_like(&b, &want, IMAGE_GIF, "GIF, global colour table");
	free(b.p);
	b = make_gif(idx, w, h, w, h, 0, 0, pal, 1, 1, 0);
	check_like(&b, &want, IMAGE_GIF, "GIF interlaced, local colour table");
	free(b.p);
	b = make_gif(idx, w, h, w + 40, h + 30, 17, 9, pal, 0, 0, 2);
	check_like(&b, &want, IMAGE_GIF,
		   "GIF: first of 3 frames, at an offset in a larger screen (the frame alone)");
	free(b.p);
	memset(&o, 0, sizeof(o));
	o.bpp = 8;
	o.hsize = 40;
	o.idx = idx;
	o.pal = pal;
	o.ncolors = 256;
	b = make_bmp(px, w, h, &o);
	check_like(&b, &want, IMAGE_BMP, "BMP 8-bit palette");
	free(b.p);
	o.rle = 1;
	b = make_bmp(px, w, h, &o);
	check_like(&b, &want, IMAGE_BMP, "BMP RLE8 (runs and absolute runs)");
	{
		struct pdq_result r1, r2;

		/*
		 * cut in the middle, file size field 0 (a declared size past the end is an error
		 * in IM): IM returns the rows decoded so far over palette entry 0
		 */
		b.n = b.n / 2;
		memset(b.p + 2, 0, 4);
		ok(pdq2(b.p, b.n, 0, &r1) == 0 && r1.warning && pdq2(b.p, b.n, 0, &r2) == 0 &&
		   same(&r1, &r2) && !same(&r1, &want),
		   "BMP RLE8 cut in half: hashed as the partial image, with a warning, one answer");
	}
	free(b.p);
	o.rle = 0;
	free(png.p);
	/*
	 * 4 and 1 bit: the low bits of the same indices through the first entries.  IM keeps the
	 * BMP's bit depth and its PNM writer scales samples to 0..15 / 0..1: the PNG to compare
	 * with holds those scaled values.
	 */
	for (i = 0; i < (size_t)w * h; i++) {
		int k;

		idx[i] &= 15;
		for (k = 0; k < 3; k++)
			prgb[3 * i + k] = (uint8_t)((30 * pal[idx[i]][k] + 255) / 510);
	}
	png = make_png(prgb, w, h);
	pdq2(png.p, png.n, 0, &want);
	o.bpp = 4;
	o.ncolors = 16;
	b = make_bmp(px, w, h, &o);
	check_like(&b, &want, IMAGE_BMP, "BMP 4-bit palette");
	free(b.p);
	o.rle = 2;
	b = make_bmp(px, w, h, &o);
	check_like(&b, &want, IMAGE_BMP, "BMP RLE4");
	free(b.p);
	o.rle = 0;
	free(png.p);
	for (i = 0; i < (size_t)w * h; i++) {
		int k;

		idx[i] = (uint8_t)((px[3 * i] ^ px[3 * i + 1]) >> 7);
		for (k = 0; k < 3; k++)
			prgb[3 * i + k] = pal[idx[i] ? 200 : 37][k] >= 128;
	}
	{
		uint8_t pal2[2][3];

		memcpy(pal2[0], pal[37], 3);
		memcpy(pal2[1], pal[200], 3);
		png = make_png(prgb, w, h);
		pdq2(png.p, png.n, 0, &want);
		o.bpp = 1;
		o.ncolors = 2;
		o.pal = (const uint8_t (*)[3])pal2;
		b = make_bmp(px, w, h, &o);
		check_like(&b, &want, IMAGE_BMP, "BMP 1-bit palette");
		free(b.p);
		free(png.p);
	}

	/* bounds: work (pixels) and the decode memory budget */
	b = webp_lossless(px, w, h);
	is_int(pdq2(b.p, b.n, (uint64_t)w * h - 1, &r), -ERANGE, "WebP over the work bound: -ERANGE");
	is_int(pdq2(b.p, b.n, (uint64_t)w * h, &r), 0, "WebP at the work bound: hashes");
	image_set_decode_memory(256 << 10);
	is_int(pdq2(b.p, b.n, 0, &r), -E2BIG, "WebP over a 256 KiB decode budget: -E2BIG");
	image_set_decode_memory(0);
	free(b.p);
	b = make_gif(idx, w, h, w, h, 0, 0, pal, 0, 0, 0);
	is_int(pdq2(b.p, b.n, (uint64_t)w * h - 1, &r), -ERANGE, "GIF over the work bound: -ERANGE");
	free(b.p);
	o.bpp = 24;
	b = make_bmp(px, w, h, &o);
	is_int(pdq2(b.p, b.n, (uint64_t)w * h - 1, &r), -ERANGE, "BMP over the work bound: -ERANGE");
	free(b.p);
	free(px);
	free(px2);
	free(px16);
	free(idx);
	free(prgb);
}

/* A header declaring 60000 x 60000 (3.6 G pixels): refused from the header, at once. */
static void test_huge_headers(void)
{
	struct pdq_result r;
	uint8_t bmp[64] = "BM", gif[] = "GIF89a\x60\xea\x60\xea\x00\x00\x00,\0\0\0\0\x60\xea\x60\xea\x00"
					  "\x08\x02\x00;";
	struct blob b = { 0 };

	put(&b, bmp, 2);
	put32(&b, 0);
	put32(&b, 0);
	put32(&b, 54);
	put32(&b, 40);
	put32(&b, 60000);
	put32(&b, 60000);
	put16(&b, 1);
	put16(&b, 24);
	put32(&b, 0);
	put32(&b, 0);
	put32(&b, 0);
	put32(&b, 0);
	put32(&b, 0);
	put32(&b, 0);
	is_int(image_pdq_buf(b.p, b.n, 0, 0, &r), -ERANGE,
	       "BMP declaring 60000x60000: over the work bound");
	b.p[18] = 0x20;		/* 20000 x 20000: within the bound, no data */
	b.p[19] = 0x4e;
	b.p[22] = 0x20;
	b.p[23] = 0x4e;
	is_int(image_pdq_buf(b.p, b.n, 0, 0, &r), -EINVAL,
	       "BMP declaring 20000x20000 without the data: an error (truncated), no allocation");
	free(b.p);
	is_int(image_pdq_buf(gif, sizeof(gif) - 1, 0, 0, &r), -ERANGE,
	       "GIF frame of 60000x60000: over the work bound");
}

/*
 * Damage: every truncation (up to ncases lengths) and ncases random byte changes of each file give
 * the same answer from memory and from a file; truncations are errors.
 */
static int ncases = 200;

static void damage(const char *what, const struct blob *b, int trunc_is_error)
{
	uint8_t *cp = malloc(b->n);
	struct pdq_result r, r2;
	size_t step = b->n / (size_t)ncases + 1, n;
	int bad = 0, hashed = 0, i, rc, rc2;
	uint64_t seed = 7;

	for (n = 0; n < b->n; n += step) {
		rc = pdq2(b->p, n, 1u << 22, &r);
		rc2 = pdq2(b->p, n, 1u << 22, &r2);
		if (rc == -1000 || rc != rc2 || (rc == 0 && !same(&r, &r2)) ||
		    (trunc_is_error && rc == 0 && n > 16)) {
			if (bad++ < 3)
				diag("%s: truncated to %zu: rc %d / %d (%s)", what, n, rc, rc2,
				     r.reason);
		}
	}
	is_int(bad, 0, "%s: every truncation an error, the same each time and from a file", what);
	bad = 0;
	for (i = 0; i < ncases; i++) {
		int k;

		memcpy(cp, b->p, b->n);
		for (k = 0; k < 1 + i % 4; k++) {
			seed = seed * 6364136223846793005ull + 1442695040888963407ull;
			/* spare the magic so the decoder, not image_kind, is what gets tested */
			cp[16 + (seed >> 33) % (b->n - 16)] ^= (uint8_t)(1 + (seed >> 20) % 255);
		}
		rc = pdq2(cp, b->n, 1u << 22, &r);
		rc2 = pdq2(cp, b->n, 1u << 22, &r2);
		hashed += rc == 0;
		if (rc == -1000 || rc != rc2 || (rc == 0 && !same(&r, &r2)) ||
		    (rc < 0 && rc != -EINVAL && rc != -ENOTSUP && rc != -ERANGE && rc != -E2BIG))
			if (bad++ < 3)
				diag("%s: damage %d: rc %d / %d", what, i, rc, rc2);
	}
	is_int(bad, 0, "%s: %d damaged copies: one answer each, memory = file, clean errors "
	       "(%d still hashed)", what, ncases, hashed);
	free(cp);
}

static void test_damage(void)
{
	const int w = 96, h = 72;
	uint8_t *px = picture(w, h, 3), *idx, *prgb;
	struct blob b;
	struct bmpopt o;
	uint8_t *out = NULL;
	size_t n;

	b = webp_lossless(px, w, h);
	damage("lossless WebP", &b, 1);
	free(b.p);
	b.p = NULL;
	b.n = b.cap = 0;
	n = WebPEncodeRGB(px, w, h, w * 3, 80, &out);
	put(&b, out, n);
	WebPFree(out);
	damage("lossy WebP", &b, 1);
	free(b.p);
	idx = index332(px, w, h, &prgb);
	b = make_gif(idx, w, h, w, h, 0, 0, palette332(), 0, 0, 0);
	/* a GIF cut after the image data but before the trailer still has its whole frame */
	b.n -= 1;
	damage("GIF", &b, 0);
	{
		struct pdq_result r;
		size_t cut;
		int bad = 0;

		for (cut = 13; cut < b.n - 2; cut++)
			if (pdq2(b.p, cut, 0, &r) == 0 && bad++ < 2)
				diag("GIF truncated to %zu of %zu hashes", cut, b.n);
		is_int(bad, 0, "GIF: every cut inside header, table or image data is an error");
	}
	free(b.p);
	b = make_gif(idx, w, h, w, h, 0, 0, palette332(), 1, 1, 0);
	damage("interlaced GIF", &b, 0);
	free(b.p);
	memset(&o, 0, sizeof(o));
	o.bpp = 24;
	o.hsize = 40;
	b = make_bmp(px, w, h, &o);
	damage("BMP 24-bit", &b, 1);
	free(b.p);
	o.bpp = 8;
	o.idx = idx;
	o.pal = palette332();
	o.ncolors = 256;
	b = make_bmp(px, w, h, &o);
	damage("BMP 8-bit", &b, 1);
	free(b.p);
	o.rle = 1;
	b = make_bmp(px, w, h, &o);
	damage("BMP RLE8", &b, 0);
	free(b.p);
	free(px);
	free(idx);
	free(prgb);
}

static void test_expected(const char *dir)
{
	char path[1200], line[512];
	int rows = 0, good = 0, per[6] = { 0 }, tiff = 0;
	FILE *csv;

	snprintf(path, sizeof(path), "%s/expected.csv", dir);
	csv = fopen(path, "r");
	if (!ok(csv != NULL, "open %s", path))
		return;
	while (fgets(line, sizeof(line), csv)) {
		char *file = strtok(line, ","), *hex = strtok(NULL, ","), *q = strtok(NULL, ",");
		struct pdq_hash want;
		struct pdq_result r;
		char p[1400], got[65];
		uint8_t magic[IMAGE_MAGIC_LEN];
		int fd, rc = -1, kind = 0;
		ssize_t m;

		if (!q || !strcmp(file, "file"))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, file);
		fd = open(p, O_RDONLY);
		m = fd < 0 ? -1 : pread(fd, magic, sizeof(magic), 0);
		kind = m > 0 ? image_kind(magic, (size_t)m) : 0;
		if (strstr(file, ".tif")) {
			/* TIFF is not decoded (README.md): not an image to hashgate, no pdq_error */
			tiff++;
			ok(kind == 0, "%s: TIFF is not a kind hashgate decodes", file);
			if (fd >= 0)
				close(fd);
			continue;
		}
		rows++;
		if (fd >= 0) {
			rc = image_pdq_fd(fd, 0, 0, 0, &r);
			close(fd);
		}
		if (rc < 0 || pdq_from_hex(hex, &want) < 0) {
			diag("%s: error %d", file, rc);
			continue;
		}
		pdq_to_hex(&r.hash[0], got);
		if (pdq_distance(&want, &r.hash[0]) == 0 && r.quality == atoi(q)) {
			good++;
			per[kind]++;
		} else {
			diag("%s: got %s q %d, want %s q %s", file, got, r.quality, hex, q);
		}
	}
	fclose(csv);
	ok(rows >= 25, "expected.csv has %d rows of formats hashgate decodes", rows);
	is_int(good, rows, "pdq-formats/expected.csv: %d/%d rows bit for bit with quality "
	       "(JPEG %d, PNG %d, WebP %d, GIF %d, BMP %d; %d TIFF not decoded)", good, rows,
	       per[IMAGE_JPEG], per[IMAGE_PNG], per[IMAGE_WEBP], per[IMAGE_GIF], per[IMAGE_BMP],
	       tiff);
}

static void test_magic(void)
{
	static const char txt[] = "BMW 320i, 2004, 180000 km, good condition\n";

	ok(!image_kind(txt, sizeof(txt) - 1), "text starting with \"BM\" is not a BMP");
	ok(!image_kind("GIF8 is a word", 14), "\"GIF8\" text is not a GIF");
	ok(!image_kind("RIFF\x10\0\0\0WAVEfmt ", 16), "a RIFF WAVE is not a WebP");
	is_int(image_kind("RIFF\x10\0\0\0WEBPVP8 ", 16), IMAGE_WEBP, "RIFF WEBP is a WebP");
	is_int(image_kind("GIF87a\0\0", 8), IMAGE_GIF, "GIF87a is a GIF");
}

int main(int argc, char **argv)
{
	const char *shared = getenv("HASHGATE_SHARED");
	char dir[1024];
	struct stat st;

	if (argc > 1 && !strcmp(argv[1], "v")) {
		ncases = 12;
		test_damage();
		return done_testing();
	}
	test_magic();
	test_same_pixels();
	test_huge_headers();
	test_damage();
	if (access("/usr/bin/valgrind", X_OK) == 0) {
		char cmd[4200], self[4096];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

		self[n > 0 ? n : 0] = '\0';
		snprintf(cmd, sizeof(cmd),
			 "valgrind -q --error-exitcode=9 '%s' v >/dev/null 2>&1", self);
		is_int(system(cmd), 0,
		       "damaged WebP/GIF/BMP under valgrind memcheck: no uninitialised read");
	} else {
		ok(1, "damage under valgrind # SKIP valgrind not installed");
	}
	snprintf(dir, sizeof(dir), "%s/testdata/pdq-formats", shared ? shared : "");
	if (shared && stat(dir, &st) == 0)
		test_expected(dir);
	else
		ok(1, "pdq-formats expected.csv # SKIP %s not found (set HASHGATE_SHARED)", dir);
	return done_testing();
}
