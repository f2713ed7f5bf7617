/*
 * bench-hash.c - figures for tests/bench/10-hash.sh.
 *
 *   bench-hash stream MIB         MB/s (10^6 bytes/s) of struct hasher per algorithm and for
 *                                 all three at once, over MIB MiB in 1 MiB updates
 *   bench-hash pdq REPS FILE...   per JPEG: ms for the bit-exact image_pdq_jpeg (min and
 *                                 median of REPS), the TurboJPEG full-size decode alone into
 *                                 a reused buffer (the floor), and IMAGE_SCALED_DECODE with
 *                                 its PDQ distance from the exact hash
 *
 * Files are read into memory first, so disk never enters the figures.  Times are the CPU time
 * of this thread (user + system, CLOCK_THREAD_CPUTIME_ID), like `openssl speed`'s default
 * user-time figures, so other load on the machine shifts them less than wall clock would;
 * everything here is single-threaded, so on an idle machine CPU time = wall time.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <turbojpeg.h>

#include "hashdb/hash.h"
#include "hashdb/image.h"
#include "hashdb/pdq.h"

static double now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

static int bench_stream(int mib)
{
	static const struct {
		const char *name;
		unsigned mask;
	} modes[] = {
		{ "md5", HASH_BIT(HASH_MD5) },
		{ "sha1", HASH_BIT(HASH_SHA1) },
		{ "sha256", HASH_BIT(HASH_SHA256) },
		{ "all3", HASH_EXACT_MASK },
	};
	size_t chunk = 1u << 20, i;
	uint8_t *buf = malloc(chunk);
	unsigned m;

	if (!buf)
		return 1;
	for (i = 0; i < chunk; i++)
		buf[i] = (uint8_t)(i * 2654435761u >> 13);
	for (m = 0; m < sizeof(modes) / sizeof(modes[0]); m++) {
		double best = 1e30;
		int rep, k;

		for (rep = 0; rep < 3; rep++) {
			struct hasher h;
			struct digests d;
			double t0 = now_ms(), t;

			if (hasher_init(&h, modes[m].mask) < 0)
				return 1;
			for (k = 0; k < mib; k++)
				hasher_update(&h, buf, chunk);
			hasher_final(&h, &d);
			t = now_ms() - t0;
			if (t < best)
				best = t;
		}
		printf("stream %s %.1f\n", modes[m].name, (double)mib * chunk / 1e6 / (best / 1e3));
	}
	free(buf);
	return 0;
}

static uint8_t *slurp(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *b;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "bench-hash: %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	b = malloc(st.st_size ? st.st_size : 1);
	if (!b || read(fd, b, st.st_size) != st.st_size) {
		fprintf(stderr, "bench-hash: %s: short read\n", path);
		free(b);
		close(fd);
		return NULL;
	}
	close(fd);
	*len = st.st_size;
	return b;
}

static int bench_pdq(int reps, const char *path)
{
	double *te = calloc(reps, sizeof(double)), ts = 1e30, td = 1e30;
	struct pdq_result e, s;
	tjhandle tj = tjInitDecompress();
	int w, h, sub, cs, i, rc = 1;
	unsigned char *px = NULL;
	size_t len;
	uint8_t *buf = slurp(path, &len);

	if (!buf || !te || !tj)
		goto out;
	if (tjDecompressHeader3(tj, buf, len, &w, &h, &sub, &cs) < 0)
		goto out;
	px = malloc((size_t)w * h * 4);
	if (!px)
		goto out;
	for (i = 0; i < reps; i++) {
		double t0 = now_ms();

		if (image_pdq_jpeg(buf, len, 0, 0, &e) < 0) {
			fprintf(stderr, "bench-hash: %s: not hashable\n", path);
			goto out;
		}
		te[i] = now_ms() - t0;
		t0 = now_ms();
		tjDecompress2(tj, buf, len, px, w, 0, h, cs == TJCS_GRAY ? TJPF_GRAY :
			      (cs == TJCS_CMYK || cs == TJCS_YCCK) ? TJPF_CMYK : TJPF_RGB,
			      TJFLAG_ACCURATEDCT);
		t0 = now_ms() - t0;
		if (t0 < td)
			td = t0;
		t0 = now_ms();
		image_pdq_jpeg(buf, len, IMAGE_SCALED_DECODE, 0, &s);
		t0 = now_ms() - t0;
		if (t0 < ts)
			ts = t0;
	}
	qsort(te, reps, sizeof(double), cmp_double);
	/* file WxH exact_min exact_median decode_only_min scaled_min scaled_distance */
	printf("pdq %s %dx%d %.2f %.2f %.2f %.2f %d\n", path, w, h, te[0], te[reps / 2], td, ts,
	       pdq_distance(&e.hash[PDQ_ORIG], &s.hash[PDQ_ORIG]));
	rc = 0;
out:
	free(px);
	free(buf);
	free(te);
	if (tj)
		tjDestroy(tj);
	return rc;
}

int main(int argc, char **argv)
{
	int i, rc = 0;

	if (argc == 3 && !strcmp(argv[1], "stream"))
		return bench_stream(atoi(argv[2]) > 0 ? atoi(argv[2]) : 256);
	if (argc >= 4 && !strcmp(argv[1], "pdq")) {
		int reps = atoi(argv[2]) > 0 ? atoi(argv[2]) : 10;

		for (i = 3; i < argc; i++)
			rc |= bench_pdq(reps, argv[i]);
		return rc;
	}
	fprintf(stderr, "usage: bench-hash stream MIB | bench-hash pdq REPS FILE...\n");
	return 64;
}
