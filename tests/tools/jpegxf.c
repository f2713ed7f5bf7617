/*
 * jpegxf.c - derive a changed copy of a JPEG for the PDQ mount tests, with TurboJPEG:
 *
 *   jpegxf IN OUT reencode Q      decode and re-encode at quality Q (same size)
 *   jpegxf IN OUT scale N D Q     decode scaled by N/D (a TurboJPEG scaling factor, e.g. 1 2)
 *                                 and encode at quality Q
 *   jpegxf IN OUT mirror          lossless left-right mirror (tjTransform TJXOP_HFLIP)
 *   jpegxf IN OUT png             the decoded pixels as an 8-bit RGB PNG (libpng)
 *   jpegxf IN OUT webp            ... as a lossy WebP, quality 80 (libwebp)
 *   jpegxf IN OUT gif             ... as a GIF through a fixed 3-3-2 palette, no dithering
 *   jpegxf IN OUT bmp             ... as a 24-bit bottom-up BMP
 *   jpegxf IN - pdq               print IN's PDQ hash (hex) and quality with libhashdb's
 *                                 image_pdq_fd, for when `hashgate hash` is not built
 *
 * The output bytes differ from the input, so exact hashes no longer match while the picture
 * (and so PDQ, directly or through a dihedral variant) stays close.  Exit 0 on success, 1 on
 * failure with a message, 2 on bad usage.
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <gif_lib.h>
#include <png.h>
#include <turbojpeg.h>
#include <webp/encode.h>

#include "hashdb/image.h"

static int print_pdq(const char *path)
{
	struct pdq_result r;
	char hex[65];
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret;

	if (fd < 0) {
		perror(path);
		return 1;
	}
	ret = image_pdq_fd(fd, 1ull << 30, 0, 0, &r);
	close(fd);
	if (ret < 0) {
		fprintf(stderr, "jpegxf: %s: PDQ failed: %s\n", path, strerror(-ret));
		return 1;
	}
	pdq_to_hex(&r.hash[PDQ_ORIG], hex);
	printf("%s %d\n", hex, r.quality);
	return 0;
}

static unsigned char *slurp(const char *path, unsigned long *len)
{
	FILE *f = fopen(path, "rb");
	unsigned char *buf = NULL;
	long n;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) > 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc(n);
		if (buf && fread(buf, 1, n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		}
		*len = n;
	}
	fclose(f);
	return buf;
}

static int spill(const char *path, const unsigned char *buf, unsigned long len)
{
	FILE *f = fopen(path, "wb");
	int rc = 0;

	if (!f)
		return -1;
	if (fwrite(buf, 1, len, f) != len)
		rc = -1;
	if (fclose(f) != 0)
		rc = -1;
	return rc;
}

static int write_webp(const char *path, const unsigned char *pix, int w, int h)
{
	uint8_t *out = NULL;
	size_t n = WebPEncodeRGB(pix, w, h, w * 3, 80, &out);
	int rc = n && spill(path, out, n) == 0 ? 0 : -1;

	WebPFree(out);
	return rc;
}

static int write_gif(const char *path, const unsigned char *pix, int w, int h)
{
	ColorMapObject *cm = GifMakeMapObject(256, NULL);
	GifFileType *g;
	unsigned char *line = malloc((size_t)w);
	int err = 0, i, x, y, rc = -1;

	if (!cm || !line)
		goto out;
	for (i = 0; i < 256; i++) {
		cm->Colors[i].Red = (GifByteType)(((i >> 5) & 7) * 255 / 7);
		cm->Colors[i].Green = (GifByteType)(((i >> 2) & 7) * 255 / 7);
		cm->Colors[i].Blue = (GifByteType)((i & 3) * 255 / 3);
	}
	g = EGifOpenFileName(path, false, &err);
	if (!g)
		goto out;
	EGifSetGifVersion(g, true);
	if (EGifPutScreenDesc(g, w, h, 8, 0, cm) == GIF_ERROR ||
	    EGifPutImageDesc(g, 0, 0, w, h, false, NULL) == GIF_ERROR)
		goto close;
	for (y = 0; y < h; y++) {
		const unsigned char *p = pix + (size_t)y * w * 3;

		for (x = 0; x < w; x++, p += 3)	/* nearest palette level per channel */
			line[x] = (unsigned char)(((p[0] * 7 + 127) / 255) << 5 |
						  ((p[1] * 7 + 127) / 255) << 2 |
						  (p[2] * 3 + 127) / 255);
		if (EGifPutLine(g, line, w) == GIF_ERROR)
			goto close;
	}
	rc = 0;
close:
	if (EGifCloseFile(g, &err) == GIF_ERROR)
		rc = -1;
out:
	GifFreeMapObject(cm);
	free(line);
	return rc;
}

static int write_bmp(const char *path, const unsigned char *pix, int w, int h)
{
	size_t stride = ((size_t)w * 3 + 3) & ~(size_t)3, size = 54 + stride * h;
	unsigned char *b = calloc(1, size), *hd = b;
	int x, y, rc;
	uint32_t v[] = { (uint32_t)size, 0, 54, 40, (uint32_t)w, (uint32_t)h, 1 | 24 << 16, 0,
			 (uint32_t)(stride * h), 2835, 2835, 0, 0 };

	if (!b)
		return -1;
	hd[0] = 'B';
	hd[1] = 'M';
	for (x = 0; x < 13; x++) {
		hd[2 + 4 * x] = (unsigned char)v[x];
		hd[3 + 4 * x] = (unsigned char)(v[x] >> 8);
		hd[4 + 4 * x] = (unsigned char)(v[x] >> 16);
		hd[5 + 4 * x] = (unsigned char)(v[x] >> 24);
	}
	for (y = 0; y < h; y++) {
		const unsigned char *p = pix + (size_t)(h - 1 - y) * w * 3;
		unsigned char *o = b + 54 + stride * y;

		for (x = 0; x < w; x++, p += 3, o += 3) {
			o[0] = p[2];
			o[1] = p[1];
			o[2] = p[0];
		}
	}
	rc = spill(path, b, size);
	free(b);
	return rc;
}

int main(int argc, char **argv)
{
	unsigned long len, olen = 0;
	unsigned char *in, *pix = NULL, *out = NULL;
	int w, h, sub, cs, num = 1, den = 1, q = 90, rc = 1;
	tjhandle tj = NULL;

	if (argc < 4)
		goto usage;
	if (strcmp(argv[3], "pdq") == 0 && argc == 4)
		return print_pdq(argv[1]);
	if (strcmp(argv[3], "reencode") == 0 && argc == 5) {
		q = atoi(argv[4]);
	} else if (strcmp(argv[3], "scale") == 0 && argc == 7) {
		num = atoi(argv[4]);
		den = atoi(argv[5]);
		q = atoi(argv[6]);
	} else if ((strcmp(argv[3], "mirror") != 0 && strcmp(argv[3], "png") != 0 &&
		    strcmp(argv[3], "webp") != 0 && strcmp(argv[3], "gif") != 0 &&
		    strcmp(argv[3], "bmp") != 0) || argc != 4) {
		goto usage;
	}
	if (q < 1 || q > 100 || num < 1 || den < 1)
		goto usage;
	in = slurp(argv[1], &len);
	if (!in) {
		fprintf(stderr, "jpegxf: cannot read %s\n", argv[1]);
		return 1;
	}
	if (strcmp(argv[3], "mirror") == 0) {
		tjtransform xf = { .op = TJXOP_HFLIP, .options = TJXOPT_TRIM };

		tj = tjInitTransform();
		if (!tj || tjTransform(tj, in, len, 1, &out, &olen, &xf, 0) < 0)
			goto err;
	} else {
		tj = tjInitDecompress();
		if (!tj || tjDecompressHeader3(tj, in, len, &w, &h, &sub, &cs) < 0)
			goto err;
		w = TJSCALED(w, ((tjscalingfactor){ num, den }));
		h = TJSCALED(h, ((tjscalingfactor){ num, den }));
		pix = malloc((size_t)w * h * 3);
		if (!pix || tjDecompress2(tj, in, len, pix, w, 0, h, TJPF_RGB, TJFLAG_ACCURATEDCT) < 0)
			goto err;
		if (strcmp(argv[3], "png") == 0) {
			png_image img = { .version = PNG_IMAGE_VERSION, .width = (png_uint_32)w,
					  .height = (png_uint_32)h, .format = PNG_FORMAT_RGB };

			if (!png_image_write_to_file(&img, argv[2], 0, pix, 0, NULL)) {
				fprintf(stderr, "jpegxf: %s: %s\n", argv[2], img.message);
				goto out;
			}
			rc = 0;
			goto out;
		}
		if (!strcmp(argv[3], "webp") || !strcmp(argv[3], "gif") || !strcmp(argv[3], "bmp")) {
			int r = argv[3][0] == 'w' ? write_webp(argv[2], pix, w, h) :
				argv[3][0] == 'g' ? write_gif(argv[2], pix, w, h) :
						    write_bmp(argv[2], pix, w, h);

			if (r < 0)
				fprintf(stderr, "jpegxf: cannot write %s as %s\n", argv[2], argv[3]);
			rc = r < 0;
			goto out;
		}
		tjDestroy(tj);
		tj = tjInitCompress();
		if (!tj || tjCompress2(tj, pix, w, 0, h, TJPF_RGB, &out, &olen, TJSAMP_420, q,
				       TJFLAG_ACCURATEDCT) < 0)
			goto err;
	}
	if (spill(argv[2], out, olen) < 0) {
		fprintf(stderr, "jpegxf: cannot write %s\n", argv[2]);
		goto out;
	}
	rc = 0;
	goto out;
err:
	fprintf(stderr, "jpegxf: %s: %s\n", argv[1], tj ? tjGetErrorStr2(tj) : "TurboJPEG init failed");
out:
	if (tj)
		tjDestroy(tj);
	tjFree(out);
	free(pix);
	free(in);
	return rc;
usage:
	fprintf(stderr, "usage: jpegxf IN OUT reencode Q | scale N D Q | mirror | png | webp | gif "
		"| bmp | IN - pdq\n");
	return 2;
}
