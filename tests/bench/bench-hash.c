/*
 * bench-hash.c - figures for tests/bench/10-hash.sh.
 *
 *   bench-hash stream MIB         MB/s (10^6 bytes/s) of struct hasher per algorithm and for
 *                                 all three at once, over MIB MiB in 1 MiB updates, and the
 *                                 implementation it used (hash_impl_name)
 *   bench-hash impl REPS          struct hasher's two implementations (hash_impl_set: the
 *                                 fused SHA-NI pass and OpenSSL EVP) in the same run, each
 *                                 case the min of REPS batches, alternating between the two:
 *                                 4 KiB and 64 KiB one-shot (init + one update + final, µs
 *                                 per file) and 1 MiB updates streamed (µs per MiB), for all
 *                                 three algorithms and each alone
 *   bench-hash pdq REPS FILE...   per JPEG: the default bit-exact image_pdq_jpeg (over 512 px:
 *                                 jpegfast's sparse decode, two threads) as wall ms (min,
 *                                 median of REPS) and CPU ms of the whole process (median);
 *                                 the libjpeg path (IMAGE_FULL_DECODE: libjpeg full
 *                                 decode, one thread) min and median; the TurboJPEG
 *                                 full-size decode alone into a reused buffer; libjpeg's
 *                                 jpeg_read_coefficients alone (Huffman decode, no IDCT);
 *                                 IMAGE_SCALED_DECODE with its PDQ distance from the exact hash
 *   bench-hash img REPS FILE...   per image of any format hashgate decodes (JPEG, PNG, WebP,
 *                                 GIF, BMP): image_pdq_buf as wall ms (min, median) and
 *                                 process CPU ms (median); the whole pipeline a daemon runs,
 *                                 decode to PDQ, from memory
 *
 * Files are read into memory first, so disk never enters the figures.  Single-threaded
 * figures are the CPU time of this thread (CLOCK_THREAD_CPUTIME_ID), like `openssl speed`'s
 * user-time figures, so other load on the machine shifts them less than wall clock would.
 * The default path uses a helper thread, so it is measured in wall time (what a caller
 * waits) and in process CPU time (what it costs); other load inflates its wall time.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jpeglib.h>
#include <turbojpeg.h>

#include "hashdb/hash.h"
#include "hashdb/image.h"
#include "hashdb/pdq.h"

static double clock_ms(clockid_t c)
{
	struct timespec t;

	clock_gettime(c, &t);
	return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

static double now_ms(void)
{
	return clock_ms(CLOCK_THREAD_CPUTIME_ID);
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
	printf("stream impl %s\n", hash_impl_name());
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

/* CPU µs per file of init + update(len) + final over n files; for len 1 MiB, per MiB of n
 * streamed through one hasher. */
static double impl_case(unsigned mask, const uint8_t *buf, size_t len, int n)
{
	double t0 = now_ms();
	struct hasher h;
	struct digests d;
	int i;

	if (len >= (1u << 20)) {
		if (hasher_init(&h, mask) < 0)
			return -1;
		for (i = 0; i < n; i++)
			hasher_update(&h, buf, len);
		hasher_final(&h, &d);
		return (now_ms() - t0) * 1e3 / n;
	}
	for (i = 0; i < n; i++) {
		if (hasher_init(&h, mask) < 0)
			return -1;
		/* shift the data a little, as files at different addresses would be */
		hasher_update(&h, buf + (i & 63), len);
		hasher_final(&h, &d);
	}
	return (now_ms() - t0) * 1e3 / n;
}

static int bench_impl(int reps)
{
	static const struct {
		const char *name;
		unsigned mask;
	} masks[] = {
		{ "all3", HASH_EXACT_MASK },
		{ "md5", HASH_BIT(HASH_MD5) },
		{ "sha1", HASH_BIT(HASH_SHA1) },
		{ "sha256", HASH_BIT(HASH_SHA256) },
		{ "sha1+sha256", HASH_BIT(HASH_SHA1) | HASH_BIT(HASH_SHA256) },
	};
	static const struct {
		const char *name;
		size_t len;
		int n;
	} sizes[] = {
		{ "4k", 4096, 400 },
		{ "64k", 65536, 40 },
		{ "1m", 1u << 20, 8 },
	};
	size_t chunk = (1u << 20) + 64, i, m, z;
	uint8_t *buf = malloc(chunk);

	if (!buf)
		return 1;
	for (i = 0; i < chunk; i++)
		buf[i] = (uint8_t)(i * 2654435761u >> 13);
	if (hash_impl_set("auto") < 0 || strcmp(hash_impl_name(), "sha-ni") != 0) {
		fprintf(stderr, "bench-hash: no SHA-NI on this CPU: only the EVP path exists\n");
		free(buf);
		return 2;
	}
	/* impl MASK SIZE BYTES FUSED_US EVP_US */
	for (m = 0; m < sizeof(masks) / sizeof(masks[0]); m++)
		for (z = 0; z < sizeof(sizes) / sizeof(sizes[0]); z++) {
			double best[2] = { 1e30, 1e30 };
			int rep, k;

			for (rep = 0; rep < reps; rep++)
				for (k = 0; k < 2; k++) {
					double t;

					hash_impl_set(k ? "evp" : "auto");
					t = impl_case(masks[m].mask, buf, sizes[z].len, sizes[z].n);
					if (t < 0) {
						free(buf);
						return 1;
					}
					if (t < best[k])
						best[k] = t;
				}
			printf("impl %s %s %zu %.3f %.3f\n", masks[m].name, sizes[z].name,
			       sizes[z].len, best[0], best[1]);
		}
	hash_impl_set("auto");
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

/* jpeg_read_coefficients alone: libjpeg's entropy decode into coefficient arrays. */
static double read_coefs_ms(const uint8_t *buf, size_t len)
{
	struct jpeg_decompress_struct di;
	struct jpeg_error_mgr je;
	double t0;

	di.err = jpeg_std_error(&je);
	jpeg_create_decompress(&di);
	jpeg_mem_src(&di, buf, len);
	t0 = now_ms();
	jpeg_read_header(&di, TRUE);
	jpeg_read_coefficients(&di);
	t0 = now_ms() - t0;
	jpeg_abort_decompress(&di);
	jpeg_destroy_decompress(&di);
	return t0;
}

static int bench_pdq(int reps, const char *path)
{
	double *tw = calloc(reps, sizeof(double)), *tc = calloc(reps, sizeof(double));
	double *tf = calloc(reps, sizeof(double)), ts = 1e30, td = 1e30, tk = 1e30;
	struct pdq_result e, f, s;
	tjhandle tj = tjInitDecompress();
	int w, h, sub, cs, i, rc = 1;
	unsigned char *px = NULL;
	size_t len;
	uint8_t *buf = slurp(path, &len);

	if (!buf || !tw || !tc || !tf || !tj)
		goto out;
	if (tjDecompressHeader3(tj, buf, len, &w, &h, &sub, &cs) < 0)
		goto out;
	px = malloc((size_t)w * h * 4);
	if (!px)
		goto out;
	for (i = 0; i < reps; i++) {
		double w0 = clock_ms(CLOCK_MONOTONIC), c0 = clock_ms(CLOCK_PROCESS_CPUTIME_ID), t0;

		if (image_pdq_jpeg(buf, len, 0, 0, &e) < 0) {
			fprintf(stderr, "bench-hash: %s: not hashable\n", path);
			goto out;
		}
		tw[i] = clock_ms(CLOCK_MONOTONIC) - w0;
		tc[i] = clock_ms(CLOCK_PROCESS_CPUTIME_ID) - c0;
		t0 = now_ms();
		image_pdq_jpeg(buf, len, IMAGE_FULL_DECODE, 0, &f);
		tf[i] = now_ms() - t0;
		t0 = now_ms();
		tjDecompress2(tj, buf, len, px, w, 0, h, cs == TJCS_GRAY ? TJPF_GRAY :
			      (cs == TJCS_CMYK || cs == TJCS_YCCK) ? TJPF_CMYK : TJPF_RGB,
			      TJFLAG_ACCURATEDCT);
		t0 = now_ms() - t0;
		if (t0 < td)
			td = t0;
		t0 = read_coefs_ms(buf, len);
		if (t0 < tk)
			tk = t0;
		t0 = now_ms();
		image_pdq_jpeg(buf, len, IMAGE_SCALED_DECODE, 0, &s);
		t0 = now_ms() - t0;
		if (t0 < ts)
			ts = t0;
	}
	if (pdq_distance(&e.hash[PDQ_ORIG], &f.hash[PDQ_ORIG]) || e.quality != f.quality) {
		fprintf(stderr, "bench-hash: %s: default and full-decode hashes differ\n", path);
		goto out;
	}
	qsort(tw, reps, sizeof(double), cmp_double);
	qsort(tc, reps, sizeof(double), cmp_double);
	qsort(tf, reps, sizeof(double), cmp_double);
	/* file WxH fast_wall_min fast_wall_median fast_cpu_median full_min full_median
	 * decode_only_min read_coefficients_min scaled_min scaled_distance */
	printf("pdq %s %dx%d %.2f %.2f %.2f %.2f %.2f %.2f %.2f %.2f %d\n", path, w, h, tw[0],
	       tw[reps / 2], tc[reps / 2], tf[0], tf[reps / 2], td, tk, ts,
	       pdq_distance(&e.hash[PDQ_ORIG], &s.hash[PDQ_ORIG]));
	rc = 0;
out:
	free(px);
	free(buf);
	free(tw);
	free(tc);
	free(tf);
	if (tj)
		tjDestroy(tj);
	return rc;
}

static int bench_img(int reps, const char *path)
{
	static const char *const kinds[] = { "?", "jpeg", "png", "webp", "gif", "bmp" };
	double *tw = calloc(reps, sizeof(double)), *tc = calloc(reps, sizeof(double));
	struct pdq_result r;
	size_t len;
	uint8_t *buf = slurp(path, &len);
	int i, k, rc = 1;

	if (!buf || !tw || !tc)
		goto out;
	k = image_kind(buf, len);
	for (i = 0; i < reps; i++) {
		double w0 = clock_ms(CLOCK_MONOTONIC), c0 = clock_ms(CLOCK_PROCESS_CPUTIME_ID);

		if (image_pdq_buf(buf, len, 0, 0, &r) < 0) {
			fprintf(stderr, "bench-hash: %s: not hashable: %s\n", path, r.reason);
			goto out;
		}
		tw[i] = clock_ms(CLOCK_MONOTONIC) - w0;
		tc[i] = clock_ms(CLOCK_PROCESS_CPUTIME_ID) - c0;
	}
	qsort(tw, reps, sizeof(double), cmp_double);
	qsort(tc, reps, sizeof(double), cmp_double);
	/* file kind WxH bytes wall_min wall_median cpu_median */
	printf("img %s %s %dx%d %zu %.2f %.2f %.2f\n", path, kinds[k >= 0 && k <= 5 ? k : 0],
	       r.width, r.height, len, tw[0], tw[reps / 2], tc[reps / 2]);
	rc = 0;
out:
	free(buf);
	free(tw);
	free(tc);
	return rc;
}

int main(int argc, char **argv)
{
	int i, rc = 0;

	if (argc == 3 && !strcmp(argv[1], "stream"))
		return bench_stream(atoi(argv[2]) > 0 ? atoi(argv[2]) : 256);
	if (argc == 3 && !strcmp(argv[1], "impl"))
		return bench_impl(atoi(argv[2]) > 0 ? atoi(argv[2]) : 20);
	if (argc >= 4 && !strcmp(argv[1], "pdq")) {
		int reps = atoi(argv[2]) > 0 ? atoi(argv[2]) : 10;

		for (i = 3; i < argc; i++)
			rc |= bench_pdq(reps, argv[i]);
		return rc;
	}
	if (argc >= 4 && !strcmp(argv[1], "img")) {
		int reps = atoi(argv[2]) > 0 ? atoi(argv[2]) : 10;

		for (i = 3; i < argc; i++)
			rc |= bench_img(reps, argv[i]);
		return rc;
	}
	fprintf(stderr, "usage: bench-hash stream MIB | bench-hash impl REPS | "
		"bench-hash pdq REPS FILE... | bench-hash img REPS FILE...\n");
	return 64;
}
