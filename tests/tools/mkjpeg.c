/*
 * mkjpeg.c - write a deterministic pseudo-random JPEG for tests: `mkjpeg OUT WIDTH HEIGHT SEED
 * [--grey] [--quality Q]` (OUT "-" = stdout).
 *
 * The same arguments give the same bytes on any run (own PRNG, integer-only pixel synthesis,
 * TurboJPEG with fixed settings), so tests can generate "known" images and take their PDQ from
 * `hashgate hash`.  Images are random rectangles and diagonal bands over a per-seed gradient
 * with a little noise: enough structure for a PDQ quality of 100, and different seeds give
 * PDQ hashes far apart.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <turbojpeg.h>

static uint64_t rng_state;

/* splitmix64: tiny, well mixed, and identical everywhere. */
static uint64_t rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static unsigned rnd(unsigned n)
{
	return n ? (unsigned)(rng() % n) : 0;
}

static uint8_t clamp(int v)
{
	return v < 0 ? 0 : v > 255 ? 255 : (uint8_t)v;
}

static void usage(void)
{
	fprintf(stderr, "usage: mkjpeg OUT WIDTH HEIGHT SEED [QUALITY] [--grey] [--quality Q]\n");
}

static int parse_num(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;

	errno = 0;
	*out = strtoull(s, &end, 10);
	return errno || end == s || *end || *out > max ? -1 : 0;
}

int main(int argc, char **argv)
{
	unsigned long long w, h, seed, q = 90;
	int grey = 0, i, rc = 1, nshapes, k, ch;
	unsigned char *img = NULL, *jpeg = NULL;
	unsigned long jlen = 0;
	tjhandle tj = NULL;
	size_t x, y;
	int g0[3], gx[3], gy[3];
	FILE *f;

	if (argc < 5) {
		usage();
		return 2;
	}
	if (parse_num(argv[2], 65500, &w) || parse_num(argv[3], 65500, &h) || !w || !h ||
	    parse_num(argv[4], UINT64_MAX, &seed)) {
		fprintf(stderr, "mkjpeg: bad WIDTH, HEIGHT or SEED\n");
		return 2;
	}
	for (i = 5; i < argc; i++) {
		if (strcmp(argv[i], "--grey") == 0 || strcmp(argv[i], "--gray") == 0) {
			grey = 1;
		} else if (strcmp(argv[i], "--quality") == 0 && i + 1 < argc &&
			   parse_num(argv[i + 1], 100, &q) == 0 && q >= 1) {
			i++;
		} else if (i == 5 && parse_num(argv[i], 100, &q) == 0 && q >= 1) {
			;	/* positional QUALITY */
		} else {
			usage();
			return 2;
		}
	}
	ch = grey ? 1 : 3;
	img = malloc((size_t)w * h * ch);
	if (!img) {
		fprintf(stderr, "mkjpeg: out of memory\n");
		return 1;
	}
	rng_state = seed;

	/* background: a linear gradient per channel */
	for (k = 0; k < 3; k++) {
		g0[k] = (int)rnd(256);
		gx[k] = (int)rnd(512) - 256;
		gy[k] = (int)rnd(512) - 256;
	}
	for (y = 0; y < h; y++)
		for (x = 0; x < w; x++)
			for (k = 0; k < ch; k++)
				img[(y * w + x) * ch + k] = clamp(g0[k] +
					(int)((long long)gx[k] * (long long)x / (long long)w) +
					(int)((long long)gy[k] * (long long)y / (long long)h));

	/* rectangles and diagonal bands in random flat colours */
	nshapes = 12 + (int)rnd(12);
	for (i = 0; i < nshapes; i++) {
		size_t x0 = rnd(w), y0 = rnd(h);
		size_t rw = 1 + rnd(w / 2 + 1), rh = 1 + rnd(h / 2 + 1);
		int col[3] = { (int)rnd(256), (int)rnd(256), (int)rnd(256) };
		int band = rnd(3) == 0;
		size_t period = 4 + rnd(60);

		for (y = y0; y < y0 + rh && y < h; y++)
			for (x = x0; x < x0 + rw && x < w; x++) {
				if (band && ((x + y) / period) % 2)
					continue;
				for (k = 0; k < ch; k++)
					img[(y * w + x) * ch + k] = (uint8_t)col[k];
			}
	}
	/* light noise so no two seeds share flat areas bit for bit */
	for (y = 0; y < h; y++)
		for (x = 0; x < w; x++) {
			int n = (int)rnd(9) - 4;

			for (k = 0; k < ch; k++)
				img[(y * w + x) * ch + k] = clamp(img[(y * w + x) * ch + k] + n);
		}

	tj = tjInitCompress();
	if (!tj) {
		fprintf(stderr, "mkjpeg: tjInitCompress failed\n");
		goto out;
	}
	if (tjCompress2(tj, img, (int)w, 0, (int)h, grey ? TJPF_GRAY : TJPF_RGB, &jpeg, &jlen,
			grey ? TJSAMP_GRAY : TJSAMP_420, (int)q, TJFLAG_ACCURATEDCT) < 0) {
		fprintf(stderr, "mkjpeg: compress: %s\n", tjGetErrorStr2(tj));
		goto out;
	}
	f = strcmp(argv[1], "-") == 0 ? stdout : fopen(argv[1], "wb");
	if (!f) {
		fprintf(stderr, "mkjpeg: %s: %s\n", argv[1], strerror(errno));
		goto out;
	}
	if (fwrite(jpeg, 1, jlen, f) != jlen || (f != stdout ? fclose(f) : fflush(f)) != 0) {
		fprintf(stderr, "mkjpeg: %s: write failed\n", argv[1]);
		goto out;
	}
	rc = 0;
out:
	if (jpeg)
		tjFree(jpeg);
	if (tj)
		tjDestroy(tj);
	free(img);
	return rc;
}
