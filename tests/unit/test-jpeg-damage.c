/*
 * test-jpeg-damage.c - JPEGs the reference hashes although they are odd or damaged, and the
 * bounds that replace the old file-size, pixel and scan-count limits.
 *
 * Generated (libjpeg's compressor, fixed pixels), each compared with its clean twin:
 *  A junk byte after SOI, B junk byte before a header marker (a warning), C uncommon
 *  sampling (4x2, 1x4), D bad marker segment before EOI, E a valid progressive JPEG of 569
 *  scans, F a warning then a fatal error (same answer 20 times: no unwritten memory hashed);
 * plus work bound (scan bomb), decode memory budget (threads wait, never exceed it), a JPEG
 * padded past 64 MiB, one declaring 105 MP.  With $HASHGATE_SHARED: every JPEG and PNG row
 * of testdata/pdq-formats/expected.csv bit for bit (hash and quality).  Argument "f": F only
 * (for `valgrind --error-exitcode=1 test-jpeg-damage f`).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jpeglib.h>

#include "hashdb/image.h"
#include "hashdb/pdq.h"
#include "tests/unit/tap.h"

enum { BASELINE, PROGRESSIVE, MANY_SCANS };

/* A generated JPEG (libjpeg, quality 90): w x h, luma sampling hs x vs, mode above. */
static unsigned char *make(int w, int h, int hs, int vs, int mode, unsigned long *len)
{
	struct jpeg_compress_struct c;
	struct jpeg_error_mgr e;
	jpeg_scan_info *sc = NULL;
	unsigned char *out = NULL, *row = malloc((size_t)w * 3);
	int x, y, k, n = 0;

	c.err = jpeg_std_error(&e);
	jpeg_create_compress(&c);
	*len = 0;
	jpeg_mem_dest(&c, &out, len);
	c.image_width = (JDIMENSION)w;
	c.image_height = (JDIMENSION)h;
	c.input_components = 3;
	c.in_color_space = JCS_RGB;
	jpeg_set_defaults(&c);
	jpeg_set_quality(&c, 90, TRUE);
	c.comp_info[0].h_samp_factor = hs;
	c.comp_info[0].v_samp_factor = vs;
	if (mode == PROGRESSIVE)
		jpeg_simple_progression(&c);
	if (mode == MANY_SCANS) {
		/* DC in two steps, every AC coefficient of every component alone in three */
		int comp, al;

		sc = calloc(600, sizeof(*sc));
		sc[n].comps_in_scan = 3;
		for (comp = 0; comp < 3; comp++)
			sc[n].component_index[comp] = comp;
		sc[n++].Al = 1;
		for (al = 2; al >= 0; al--)
			for (comp = 0; comp < 3; comp++)
				for (k = 1; k < 64; k++) {
					sc[n].comps_in_scan = 1;
					sc[n].component_index[0] = comp;
					sc[n].Ss = sc[n].Se = k;
					sc[n].Ah = al == 2 ? 0 : al + 1;
					sc[n++].Al = al;
				}
		sc[n] = sc[0];
		sc[n].Ah = 1;
		sc[n++].Al = 0;
		c.scan_info = sc;
		c.num_scans = n;
	}
	jpeg_start_compress(&c, TRUE);
	for (y = 0; y < h; y++) {
		for (x = 0; x < w; x++)
			for (k = 0; k < 3; k++) {
				uint32_t r = (uint32_t)(x * 73856093u ^ y * 19349663u ^ k * 83492791u);
				int v = (x * 255 / w + (k + 1) * y * 255 / h +
					 (int)((r * 2654435761u) >> 28)) & 255;

				if (((x / 24) ^ (y / 16)) & 1)
					v = 255 - v;
				row[(size_t)x * 3 + k] = (unsigned char)v;
			}
		jpeg_write_scanlines(&c, &row, 1);
	}
	jpeg_finish_compress(&c);
	jpeg_destroy_compress(&c);
	free(row);
	free(sc);
	return out;
}

/* A copy of j with n bytes inserted at off. */
static unsigned char *insert(const unsigned char *j, unsigned long len, unsigned long off,
			     const void *bytes, unsigned long n, unsigned long *olen)
{
	unsigned char *o = malloc(len + n);

	memcpy(o, j, off);
	memcpy(o + off, bytes, n);
	memcpy(o + off + n, j + off, len - off);
	*olen = len + n;
	return o;
}

/* Offset of the nth (from 1) marker FF m in j, or 0. */
static unsigned long find_marker(const unsigned char *j, unsigned long len, int m, int nth)
{
	unsigned long i;

	for (i = 2; i + 1 < len; i++)
		if (j[i] == 0xff && j[i + 1] == m && --nth == 0)
			return i;
	return 0;
}

static int same(const struct pdq_result *a, const struct pdq_result *b)
{
	return memcmp(a->hash, b->hash, sizeof(a->hash)) == 0 && a->quality == b->quality;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static void test_a_to_d(int w, int h, const char *what)
{
	unsigned long len, l2;
	unsigned char *j = make(w, h, 2, 2, BASELINE, &len), *d;
	struct pdq_result clean, r;
	static const unsigned char bad_dht[] = { 0xff, 0xc4, 0x00, 0x03, 0x1f };

	if (!ok(image_pdq_jpeg(j, len, PDQ_DIHEDRAL, 0, &clean) == 0, "%s: clean twin hashes",
		what))
		return;

	d = insert(j, len, 2, "", 1, &l2);	/* FF D8 00 FF ... */
	ok(image_is_jpeg(d, l2), "A %s: junk byte after SOI still looks like a JPEG", what);
	ok(image_pdq_jpeg(d, l2, PDQ_DIHEDRAL, 0, &r) == 0 && same(&r, &clean) && r.warning,
	   "A %s: junk byte after SOI hashes like the clean twin, with a warning (%s)", what,
	   r.reason);
	free(d);

	d = insert(j, len, find_marker(j, len, 0xdb, 1), "", 1, &l2);
	ok(image_pdq_jpeg(d, l2, PDQ_DIHEDRAL, 0, &r) == 0 && same(&r, &clean) && r.warning,
	   "B %s: header warning (extraneous byte before DQT) is not fatal (%s)", what,
	   r.reason);
	free(d);

	d = insert(j, len, len - 2, bad_dht, sizeof(bad_dht), &l2);
	ok(image_pdq_jpeg(d, l2, PDQ_DIHEDRAL, 0, &r) == 0 && same(&r, &clean),
	   "D %s: bad marker segment before EOI, all pixels decoded: hashes like the clean twin",
	   what);
	free(d);
	free(j);
}

static void test_c(void)
{
	static const int samp[][2] = { { 4, 2 }, { 1, 4 }, { 4, 1 }, { 2, 4 }, { 3, 1 } };
	unsigned long len, l1;
	unsigned char *ref = make(320, 240, 1, 1, BASELINE, &l1), *j;
	struct pdq_result r1, r;
	size_t i;

	image_pdq_jpeg(ref, l1, 0, 0, &r1);
	for (i = 0; i < sizeof(samp) / sizeof(samp[0]); i++) {
		int rc;

		j = make(320, 240, samp[i][0], samp[i][1], BASELINE, &len);
		rc = image_pdq_jpeg(j, len, 0, 0, &r);
		ok(rc == 0 && pdq_distance(&r.hash[0], &r1.hash[0]) <= 16,
		   "C: luma sampling %dx%d hashes (rc %d, distance %d from 4:4:4)", samp[i][0],
		   samp[i][1], rc, pdq_distance(&r.hash[0], &r1.hash[0]));
		free(j);
	}
	free(ref);
}

static void test_e(void)
{
	unsigned long lb, lm, lp, l2;
	unsigned char *b = make(256, 192, 2, 2, BASELINE, &lb);
	unsigned char *m = make(256, 192, 2, 2, MANY_SCANS, &lm);
	unsigned char *p = make(2000, 2000, 2, 2, PROGRESSIVE, &lp), *bomb;
	struct pdq_result rb, rm, rp;
	unsigned long s1, s2, i;
	int nscans = 0, rc;
	double t;
	int stop_scan;

	for (i = 0; find_marker(m, lm, 0xda, (int)i + 1); i++)
		nscans++;
	ok(nscans > 500, "E: generated a progressive JPEG of %d scans", nscans);
	ok(image_pdq_jpeg(b, lb, PDQ_DIHEDRAL, 0, &rb) == 0 &&
	   image_pdq_jpeg(m, lm, PDQ_DIHEDRAL, 0, &rm) == 0 && same(&rb, &rm),
	   "E: %d-scan progressive JPEG hashes like its baseline twin", nscans);
	is_int(image_pdq_jpeg(m, lm, 0, 256 * 192 * 50, &rm), -ERANGE,
	       "E: the same over a smaller work bound: -ERANGE (%s)", rm.reason);

	/* A scan bomb: the smallest scan of a 2000x2000 progressive JPEG repeated 1000 times
	 * (libjpeg only warns about a repeated scan). */
	ok(image_pdq_jpeg(p, lp, 0, 0, &rp) == 0, "2000x2000 progressive hashes");
	s1 = s2 = 0;
	for (i = 1; find_marker(p, lp, 0xda, (int)i); i++) {
		unsigned long a = find_marker(p, lp, 0xda, (int)i);
		unsigned long z = find_marker(p, lp, 0xda, (int)i + 1);

		z = z ? z : lp - 2;
		if (!s1 || z - a < s2 - s1) {
			s1 = a;
			s2 = z;
		}
	}
	ok(s1 > 0, "its smallest scan: %lu bytes", s2 - s1);
	bomb = malloc(lp + 1000 * (s2 - s1));
	memcpy(bomb, p, lp - 2);
	for (i = 0, l2 = lp - 2; i < 1000; i++, l2 += s2 - s1)
		memcpy(bomb + l2, p + s1, s2 - s1);
	memcpy(bomb + l2, p + lp - 2, 2);
	l2 += 2;
	t = now_ms();
	rc = image_pdq_jpeg(bomb, l2, 0, 0, &rp);
	t = now_ms() - t;
	is_int(rc, -ERANGE, "scan bomb (%lu bytes, 1010 scans of 2000x2000): -ERANGE (%s)", l2,
	       rp.reason);
	/* Stopped by the work count, not by reaching the end: a bound on work, asserted as
	 * work (a wall-clock limit here failed on a loaded machine). */
	stop_scan = 0;
	if (rc == -ERANGE && strstr(rp.reason, " after "))
		sscanf(strstr(rp.reason, " after ") + 7, "%d", &stop_scan);
	ok(stop_scan > 0 && stop_scan < 1010,
	   "scan bomb stopped by the work bound after %d of 1010 scans (%.0f ms)", stop_scan, t);
	free(bomb);
	free(b);
	free(m);
	free(p);
}

/*
 * A warning between the first and second scans (the header itself is clean), then a fatal
 * error in the third scan header, all inside jpeg_start_decompress: no row was decoded, so
 * there is no image (as for the reference), and one answer every time.
 */
static void test_f(void)
{
	unsigned long len, l2, sos;
	unsigned char *p = make(320, 240, 2, 2, PROGRESSIVE, &len), *d;
	struct pdq_result first, r;
	int rc0, rc, i, diff = 0;

	d = insert(p, len, find_marker(p, len, 0xda, 2), "", 1, &l2);
	sos = find_marker(d, l2, 0xda, 3);
	ok(sos > 0, "F: found the third SOS");
	d[sos + 5] = 0x77;	/* its component selector: no such component */
	rc0 = image_pdq_jpeg(d, l2, PDQ_DIHEDRAL, 0, &first);
	for (i = 0; i < 20; i++) {
		rc = image_pdq_jpeg(d, l2, PDQ_DIHEDRAL, 0, &r);
		diff += rc != rc0 || (rc == 0 && !same(&r, &first)) ||
			strcmp(r.reason, first.reason) != 0;
	}
	is_int(rc0, -EINVAL, "F: warning then fatal error before any row: -EINVAL (%s)",
	       first.reason);
	is_int(diff, 0, "F: the same damaged file hashed 20 more times: one answer");
	free(d);
	free(p);
}

/* Size of the file or the picture decides nothing: padding and a large declared size. */
static void test_sizes(void)
{
	unsigned long len, sof;
	unsigned char *j = make(400, 300, 2, 2, BASELINE, &len);
	char path[] = "/tmp/test-jpeg-damage.XXXXXX";
	int fd = mkstemp(path), rc;
	struct pdq_result clean, r;
	double t;

	image_pdq_jpeg(j, len, 0, 0, &clean);
	ok(fd >= 0 && write(fd, j, len) == (ssize_t)len && ftruncate(fd, 70 << 20) == 0,
	   "JPEG padded with zeros to 70 MiB (sparse file)");
	ok(image_pdq_fd(fd, 64 << 20, 0, 0, &r) == 0 && same(&r, &clean),
	   "padded past the 64 MiB in-memory size: streamed, same hash");
	close(fd);
	unlink(path);

	sof = find_marker(j, len, 0xc0, 1);
	j[sof + 5] = 10000 >> 8;	/* height */
	j[sof + 6] = 10000 & 255;
	j[sof + 7] = 10500 >> 8;	/* width */
	j[sof + 8] = 10500 & 255;
	t = now_ms();
	rc = image_pdq_jpeg(j, len, 0, 0, &r);
	t = now_ms() - t;
	ok(rc == 0 && r.width == 10500 && r.warning,
	   "declares 10500x10000 (105 MP, data for far less): hashed with a warning (rc %d, "
	   "%.0f ms)", rc, t);
	free(j);
}

struct worker {
	const unsigned char *j;
	unsigned long len;
	struct pdq_result want;
	int bad;
};

static void *work(void *arg)
{
	struct worker *w = arg;
	struct pdq_result r;
	int i;

	for (i = 0; i < 6; i++)
		w->bad += image_pdq_jpeg(w->j, w->len, 0, 0, &r) != 0 || !same(&r, &w->want);
	return NULL;
}

static void test_memory(void)
{
	unsigned long len;
	unsigned char *p = make(1000, 1000, 1, 1, PROGRESSIVE, &len);
	struct image_mem_stats st;
	struct worker w[4];
	pthread_t t[4];
	struct pdq_result r;
	int i, bad = 0;

	/* 4:4:4 progressive 1000x1000: about 2.9 MiB of coefficients (+ ~3 MiB of buffers). */
	image_set_decode_memory(2 << 20);
	is_int(image_pdq_jpeg(p, len, 0, 0, &r), -E2BIG,
	       "progressive image over the whole decode memory budget: -E2BIG (%s)", r.reason);
	image_set_decode_memory(10 << 20);
	image_decode_memory_stats(&st, 1);
	is_int(image_pdq_jpeg(p, len, 0, 0, &r), 0, "fits a 10 MiB budget");
	for (i = 0; i < 4; i++) {
		w[i].j = p;
		w[i].len = len;
		w[i].want = r;
		w[i].bad = 0;
		pthread_create(&t[i], NULL, work, &w[i]);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		bad += w[i].bad;
	}
	image_decode_memory_stats(&st, 0);
	is_int(bad, 0, "4 threads x 6 decodes under a budget that fits one: all hash alike");
	ok(st.peak <= st.budget && st.in_use == 0,
	   "reserved memory peaked at %llu of %llu bytes; all released (%llu waits)",
	   (unsigned long long)st.peak, (unsigned long long)st.budget,
	   (unsigned long long)st.waits);
	image_set_decode_memory(0);
	free(p);
}

static void test_expected(const char *dir)
{
	char path[1200], line[512];
	int rows = 0, good = 0, others = 0;
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
		int fd, rc;
		size_t n = file ? strlen(file) : 0;

		if (!q || n < 5)
			continue;
		if (strcmp(file + n - 4, ".jpg") != 0 && strcmp(file + n - 4, ".png") != 0) {
			others++;
			continue;
		}
		rows++;
		snprintf(p, sizeof(p), "%s/%s", dir, file);
		fd = open(p, O_RDONLY);
		rc = fd < 0 ? -errno : image_pdq_fd(fd, 0, 0, 0, &r);
		if (fd >= 0)
			close(fd);
		if (rc < 0 || pdq_from_hex(hex, &want) < 0) {
			diag("%s: error %d (%s)", file, rc, r.reason);
			continue;
		}
		pdq_to_hex(&r.hash[0], got);
		if (pdq_distance(&want, &r.hash[0]) == 0 && r.quality == atoi(q))
			good++;
		else
			diag("%s: got %s q %d, want %s q %s", file, got, r.quality, hex, q);
	}
	fclose(csv);
	ok(rows >= 19, "expected.csv has %d JPEG and PNG rows", rows);
	is_int(good, rows, "pdq-formats/expected.csv: %d/%d JPEG and PNG rows bit for bit with "
	       "quality (the %d other rows: test-formats)", good, rows, others);
}

int main(int argc, char **argv)
{
	const char *shared = getenv("HASHGATE_SHARED");
	char dir[1024];
	struct stat st;

	/* `test-jpeg-damage f` runs only F, small enough for valgrind (memcheck: no read of
	 * uninitialised memory may decide the answer) */
	if (argc > 1 && !strcmp(argv[1], "f")) {
		test_f();
		return done_testing();
	}
	test_a_to_d(320, 240, "320x240");
	/* large enough for the jpegfast path to be tried first */
	test_a_to_d(1800, 1200, "1800x1200");
	test_c();
	test_e();
	test_f();
	if (access("/usr/bin/valgrind", X_OK) == 0) {
		char cmd[4200], self[4096];
		ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

		self[n > 0 ? n : 0] = '\0';
		snprintf(cmd, sizeof(cmd),
			 "valgrind -q --error-exitcode=9 '%s' f >/dev/null 2>&1", self);
		is_int(system(cmd), 0, "F under valgrind memcheck: no uninitialised read, one answer");
	} else {
		ok(1, "F under valgrind # SKIP valgrind not installed");
	}
	test_sizes();
	test_memory();
	snprintf(dir, sizeof(dir), "%s/testdata/pdq-formats", shared ? shared : "");
	if (shared && stat(dir, &st) == 0)
		test_expected(dir);
	else
		ok(1, "pdq-formats expected.csv # SKIP %s not found (set HASHGATE_SHARED)", dir);
	return done_testing();
}
