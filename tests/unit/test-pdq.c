/*
 * test-pdq.c - PDQ against the reference's expected values and against hostile JPEGs.
 *
 * Exactness: every JPEG and PNG row of $HASHGATE_SHARED/testdata/pdq/expected/pdq.csv must
 * hash at distance 0 with the same quality, and every row of pdqdih-across.csv must give the same 8
 * dihedral hashes (skipped when the shared data is absent).  Self-contained checks: hex
 * round-trips, distance against a bit-by-bit count, tiny images, and generated hostile inputs
 * (zero-size, non-JPEG, every truncation, random corruption, huge declared dimensions).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <turbojpeg.h>

#include "hashdb/hash.h"
#include "hashdb/image.h"
#include "hashdb/pdq.h"
#include "tests/unit/tap.h"

static uint64_t rng_state = 42;

static uint64_t rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static void random_hash(struct pdq_hash *h)
{
	size_t i;

	for (i = 0; i < sizeof(h->b); i++)
		h->b[i] = (uint8_t)rng();
}

/* ---- the shared expected files ---- */

static int split_csv(char *line, char **f, int max)
{
	int n = 0;
	char *s = line;

	line[strcspn(line, "\r\n")] = '\0';
	while (n < max && s) {
		f[n++] = s;
		s = strchr(s, ',');
		if (s)
			*s++ = '\0';
	}
	return n;
}

static int is_jpeg_path(const char *p)
{
	size_t n = strlen(p);

	return n > 4 && strcmp(p + n - 4, ".jpg") == 0;
}

static int is_png_path(const char *p)
{
	size_t n = strlen(p);

	return n > 4 && strcmp(p + n - 4, ".png") == 0;
}

static int hash_file(const char *dir, const char *rel, unsigned flags, struct pdq_result *r)
{
	char path[1024];
	int fd, rc;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return -errno;
	rc = image_pdq_fd(fd, 0, flags, 0, r);
	close(fd);
	return rc;
}

static void test_expected_plain(const char *dir)
{
	char path[1200], line[1024], *f[3], hex[65];
	int rows = 0, good = 0, png = 0, pnggood = 0, scaled_max = 0, scaled_small_diff = 0;
	struct pdq_result rs;
	FILE *csv;

	snprintf(path, sizeof(path), "%s/expected/pdq.csv", dir);
	csv = fopen(path, "r");
	if (!ok(csv != NULL, "open %s", path))
		return;
	while (fgets(line, sizeof(line), csv)) {
		struct pdq_result r;
		struct pdq_hash want;
		int rc;

		if (split_csv(line, f, 3) != 3)
			continue;
		if (is_png_path(f[2])) {
			png++;
			if (hash_file(dir, f[2], 0, &r) == 0 && pdq_from_hex(f[0], &want) == 0 &&
			    pdq_distance(&want, &r.hash[PDQ_ORIG]) == 0 && r.quality == atoi(f[1]))
				pnggood++;
			else
				diag("%s: PNG differs", f[2]);
			continue;
		}
		if (!is_jpeg_path(f[2]))
			continue;
		rows++;
		rc = hash_file(dir, f[2], 0, &r);
		if (rc < 0 || pdq_from_hex(f[0], &want) < 0) {
			diag("%s: error %d", f[2], rc);
			continue;
		}
		pdq_to_hex(&r.hash[PDQ_ORIG], hex);
		if (hash_file(dir, f[2], IMAGE_SCALED_DECODE, &rs) == 0) {
			int d = pdq_distance(&want, &rs.hash[PDQ_ORIG]);

			if (r.width > 512 || r.height > 512)
				scaled_max = d > scaled_max ? d : scaled_max;
			else
				scaled_small_diff += d != 0;
		} else {
			scaled_small_diff++;
		}
		if (pdq_distance(&want, &r.hash[PDQ_ORIG]) == 0 && r.quality == atoi(f[1])) {
			good++;
		} else {
			diag("%s: got %s q=%d, want %s q=%s (distance %d)", f[2], hex, r.quality,
			     f[0], f[1], pdq_distance(&want, &r.hash[PDQ_ORIG]));
		}
	}
	fclose(csv);
	ok(rows > 0, "pdq.csv has JPEG rows (%d)", rows);
	is_int(good, rows, "pdq.csv: %d/%d JPEG rows at distance 0 with equal quality", good,
	       rows);
	is_int(pnggood, png, "pdq.csv: %d/%d PNG rows at distance 0 with equal quality", pnggood,
	       png);
	/* the opt-in scaled decode: documented as within a few bits for images over 512 px */
	ok(scaled_max <= 8, "IMAGE_SCALED_DECODE: max distance %d over 512 px (bound 8)",
	   scaled_max);
	is_int(scaled_small_diff, 0, "IMAGE_SCALED_DECODE leaves images up to 512 px exact");
}

static void test_expected_dihedral(const char *dir)
{
	char path[1200], line[2048], *f[10];
	int rows = 0, good = 0;
	FILE *csv;

	snprintf(path, sizeof(path), "%s/expected/pdqdih-across.csv", dir);
	csv = fopen(path, "r");
	if (!ok(csv != NULL, "open %s", path))
		return;
	while (fgets(line, sizeof(line), csv)) {
		struct pdq_result r;
		int rc, d, bad = 0;

		if (split_csv(line, f, 10) != 10 || !is_jpeg_path(f[9]))
			continue;
		rows++;
		rc = hash_file(dir, f[9], PDQ_DIHEDRAL, &r);
		if (rc < 0 || r.ndih != PDQ_NDIH) {
			diag("%s: error %d", f[9], rc);
			continue;
		}
		for (d = 0; d < PDQ_NDIH; d++) {
			struct pdq_hash want;

			if (pdq_from_hex(f[d], &want) < 0 ||
			    pdq_distance(&want, &r.hash[d]) != 0) {
				diag("%s: %s differs", f[9], pdq_dihedral_name(d));
				bad++;
			}
		}
		if (r.quality != atoi(f[8])) {
			diag("%s: quality %d, want %s", f[9], r.quality, f[8]);
			bad++;
		}
		good += !bad;
	}
	fclose(csv);
	ok(rows > 0, "pdqdih-across.csv has JPEG rows (%d)", rows);
	is_int(good, rows, "pdqdih-across.csv: %d/%d JPEG rows with all 8 hashes and quality",
	       good, rows);
}

/* ---- self-contained ---- */

static void test_hex_distance(void)
{
	struct pdq_hash a, b, c;
	char hex[65], up[65];
	int i, k, bad = 0;

	for (i = 0; i < 200; i++) {
		int naive = 0;

		random_hash(&a);
		random_hash(&b);
		pdq_to_hex(&a, hex);
		if (pdq_from_hex(hex, &c) < 0 || memcmp(&a, &c, sizeof(a)) != 0)
			bad++;
		for (k = 0; k < 256; k++)
			naive += ((a.b[k / 8] ^ b.b[k / 8]) >> (k % 8)) & 1;
		if (pdq_distance(&a, &b) != naive || pdq_distance(&a, &a) != 0)
			bad++;
	}
	is_int(bad, 0, "200 random hashes: hex round-trip and distance = bit count");

	for (k = 0; k < 64; k++)
		up[k] = (char)((hex[k] >= 'a' && hex[k] <= 'f') ? hex[k] - 32 : hex[k]);
	up[64] = '\0';
	ok(pdq_from_hex(up, &c) == 0 && pdq_from_hex(hex, &a) == 0 &&
	   memcmp(&a, &c, sizeof(a)) == 0, "upper-case hex parses to the same hash");
	is_int(pdq_from_hex("abc", &c), -EINVAL, "short hex rejected");
	hex[10] = 'x';
	is_int(pdq_from_hex(hex, &c), -EINVAL, "non-hex digit rejected");
	memset(up, 'f', 64);
	up[64] = '0';
	is_int(pdq_from_hex(up, &c), -EINVAL, "65 digits rejected");
	is_int(pdq_from_hex(NULL, &c), -EINVAL, "NULL rejected");

	/* The reference's bit order: first hex digit's top bit is bit 255. */
	ok(pdq_from_hex("8000000000000000000000000000000000000000000000000000000000000001",
			&a) == 0 && a.b[0] == 0x80 && a.b[31] == 0x01, "hex is big-endian");
	memset(&b, 0, sizeof(b));
	memset(&c, 0xff, sizeof(c));
	is_int(pdq_distance(&b, &c), 256, "distance of complements is 256");
	is_str(pdq_dihedral_name(PDQ_FLIPM), "flipm", "dihedral name");
	ok(pdq_dihedral_name(PDQ_NDIH) == NULL, "dihedral name out of range is NULL");
}

static void test_luma(void)
{
	static float img[96 * 128], sq[64 * 64];
	struct pdq_result r, r2;
	struct pdq_hash zero;
	int i;

	memset(&zero, 0, sizeof(zero));
	for (i = 0; i < 96 * 128; i++)
		img[i] = (float)(rng() % 256);
	is_int(pdq_from_luma(img, 4, 128, PDQ_DIHEDRAL, &r), 0, "4-row image hashes");
	ok(r.quality == 0 && pdq_distance(&r.hash[0], &zero) == 0 &&
	   pdq_distance(&r.hash[7], &zero) == 0, "under 5 px: zero hashes, quality 0");
	is_int(pdq_from_luma(img, 0, 10, 0, &r), -EINVAL, "0 rows rejected");
	is_int(pdq_from_luma(NULL, 10, 10, 0, &r), -EINVAL, "NULL luma rejected");
	is_int(pdq_from_luma(img, 10, 10, 0x80, &r), -EINVAL, "unknown flag rejected");

	is_int(pdq_from_luma(img, 96, 128, 0, &r), 0, "noise image hashes");
	is_int(r.ndih, 1, "plain hash: one hash");
	ok(r.quality == 100 && pdq_distance(&r.hash[0], &zero) == 128,
	   "noise: quality 100, 128 bits set");
	is_int(pdq_from_luma(img, 96, 128, PDQ_DIHEDRAL, &r2), 0, "dihedral of the same");
	ok(r2.ndih == 8 && pdq_distance(&r.hash[0], &r2.hash[0]) == 0,
	   "dihedral orig = plain hash");

	/* 64x64: plain hash skips the blur; hash[ORIG] stays the plain one with PDQ_DIHEDRAL */
	memcpy(sq, img, sizeof(sq));
	pdq_from_luma(sq, 64, 64, 0, &r);
	pdq_from_luma(sq, 64, 64, PDQ_DIHEDRAL, &r2);
	ok(pdq_distance(&r.hash[0], &r2.hash[0]) == 0 && r.quality == r2.quality,
	   "64x64: orig of the dihedral set is the plain hash");
}

/* A generated RGB (or grey) JPEG in memory; *len set.  tjFree() the result. */
static unsigned char *make_jpeg(int w, int h, int pf, int samp, unsigned long *len)
{
	int ps = tjPixelSize[pf], x, y, k;
	unsigned char *px = malloc((size_t)w * h * ps), *jpeg = NULL;
	tjhandle tj = tjInitCompress();

	for (y = 0; y < h; y++)
		for (x = 0; x < w; x++)
			for (k = 0; k < ps; k++) {
				/* a function of (x, y, k) only, so RGB and CMYK twins match */
				uint32_t n = (uint32_t)(x * 73856093u ^ y * 19349663u ^ k * 83492791u);
				int v = (x * 255 / w + (k + 1) * y * 255 / h +
					 (int)((n * 2654435761u) >> 27)) & 255;

				if (((x / 16) ^ (y / 16)) & 1)
					v = 255 - v;
				px[((size_t)y * w + x) * ps + k] = (unsigned char)v;
			}
	if (pf == TJPF_CMYK)	/* K' = 255 (no black) so CMYK and RGB hash alike */
		for (x = 0; x < w * h; x++)
			px[x * 4 + 3] = 255;
	*len = 0;
	if (tjCompress2(tj, px, w, 0, h, pf, &jpeg, len, samp, 90, 0) < 0)
		jpeg = NULL;
	tjDestroy(tj);
	free(px);
	return jpeg;
}

static int rc_is_clean(int rc)
{
	return rc == 0 || rc == -EINVAL || rc == -E2BIG || rc == -ERANGE || rc == -ENOTSUP;
}

/* Offset of the SOF0 height field, or -1. */
static long sof_dims(const unsigned char *j, unsigned long len)
{
	unsigned long i;

	for (i = 2; i + 9 < len; i++)
		if (j[i] == 0xff && (j[i + 1] == 0xc0 || j[i + 1] == 0xc2))
			return (long)i + 5;
	return -1;
}

static void test_hostile(void)
{
	unsigned long len, i;
	unsigned char *jpeg = make_jpeg(200, 150, TJPF_RGB, TJSAMP_420, &len), *cp;
	struct pdq_result r;
	int bad, zero_ok, rc, n;
	long sof;
	static const unsigned char png[] = "\x89PNG\r\n\x1a\n\0\0\0\rIHDR";

	if (!ok(jpeg != NULL, "generated a %lu-byte JPEG", len))
		return;
	is_int(image_pdq_jpeg(jpeg, len, PDQ_DIHEDRAL, 0, &r), 0, "generated JPEG hashes");
	ok(r.width == 200 && r.height == 150 && r.quality > 50, "size %dx%d, quality %d",
	   r.width, r.height, r.quality);
	ok(image_is_jpeg(jpeg, len) && !image_is_jpeg(png, sizeof(png)) &&
	   !image_is_jpeg(jpeg, 2), "image_is_jpeg");

	is_int(image_pdq_jpeg(jpeg, 0, 0, 0, &r), -EINVAL, "zero-size input: -EINVAL");
	is_int(image_pdq_jpeg(NULL, 0, 0, 0, &r), -EINVAL, "NULL input: -EINVAL");
	is_int(image_pdq_jpeg(png, sizeof(png), 0, 0, &r), -EINVAL, "PNG header: -EINVAL");
	cp = malloc(len);
	for (i = 0; i < len; i++)
		cp[i] = (uint8_t)rng();
	is_int(image_pdq_jpeg(cp, len, 0, 0, &r), -EINVAL, "random bytes: -EINVAL");
	memcpy(cp, "\xff\xd8\xff", 3);
	is_int(image_pdq_jpeg(cp, len, 0, 0, &r), -EINVAL, "JPEG magic then garbage: -EINVAL");

	/* Truncation at every byte of the headers and at 200 points of the scan: headers cut
	 * give -EINVAL; a cut scan decodes what is there (as ImageMagick does for the
	 * reference), never anything else. */
	bad = 0;
	zero_ok = 0;
	sof = sof_dims(jpeg, len);
	for (i = 0; i < len; i += (long)i < sof + 600 ? 1 : len / 200) {
		rc = image_pdq_jpeg(jpeg, i, 0, 0, &r);
		if (!rc_is_clean(rc) || ((long)i <= sof + 4 && rc != -EINVAL)) {
			diag("truncated at %lu: %d", i, rc);
			bad++;
		}
		zero_ok += rc == 0;
	}
	is_int(bad, 0, "truncations of a %lu-byte JPEG fail cleanly or hash (%d hashed)", len,
	       zero_ok);

	ok(image_pdq_jpeg(jpeg, len * 2 / 3, 0, 0, &r) == 0 && r.warning == 1,
	   "JPEG cut in its scan: hashed, with the decoder warning flagged");
	ok(image_pdq_jpeg(jpeg, len, 0, 0, &r) == 0 && r.warning == 0,
	   "whole JPEG: no warning");

	/* Random corruption: 1..8 bytes overwritten, 300 variants (the fuzzer does the rest). */
	bad = 0;
	for (n = 0; n < 300; n++) {
		int k, nb = 1 + (int)(rng() % 8);

		memcpy(cp, jpeg, len);
		for (k = 0; k < nb; k++)
			cp[rng() % len] = (uint8_t)rng();
		rc = image_pdq_jpeg(cp, len, n & 1 ? PDQ_DIHEDRAL : 0, 0, &r);
		if (!rc_is_clean(rc)) {
			diag("corruption %d: %d", n, rc);
			bad++;
		}
	}
	is_int(bad, 0, "300 corrupted copies fail cleanly or hash");

	/* Declared dimensions: the work bound is checked from the header, before any decode. */
	memcpy(cp, jpeg, len);
	ok(sof > 0, "found SOF");
	cp[sof] = 0xfd;		/* height 64768 */
	cp[sof + 1] = 0x00;
	cp[sof + 2] = 0xfd;	/* width 64768 */
	cp[sof + 3] = 0x00;
	is_int(image_pdq_jpeg(cp, len, 0, 0, &r), -ERANGE,
	       "64768x64768 declared: -ERANGE (over the default work bound)");
	ok(r.reason[0] != '\0', "with a reason: %s", r.reason);
	is_int(image_pdq_jpeg(jpeg, len, 0, 200 * 150 - 1, &r), -ERANGE,
	       "work bound one pixel below the image: -ERANGE");
	is_int(image_pdq_jpeg(jpeg, len, 0, 200 * 150, &r), 0, "bound equal to the image: hashes");

	/* Files over the in-memory size are decoded streaming from the file: same answer. */
	{
		char path[] = "/tmp/test-pdq.XXXXXX";
		int fd = mkstemp(path);
		struct pdq_result whole, streamed;

		ok(fd >= 0 && write(fd, jpeg, len) == (ssize_t)len, "wrote JPEG file");
		is_int(image_pdq_fd(fd, len, PDQ_DIHEDRAL, 0, &whole), 0,
		       "file at mem_bytes: hashes from memory");
		is_int(image_pdq_fd(fd, len - 1, PDQ_DIHEDRAL, 0, &streamed), 0,
		       "file over mem_bytes: hashes streaming from the file");
		ok(memcmp(whole.hash, streamed.hash, sizeof(whole.hash)) == 0 &&
		   whole.quality == streamed.quality, "streamed decode gives the same 8 hashes");
		close(fd);
		unlink(path);
	}
	free(cp);
	tjFree(jpeg);
}

/* Colour-space paths: grey JPEG, CMYK (YCCK) JPEG with K'=255 vs the same as RGB. */
static void test_colourspaces(void)
{
	unsigned long lrgb, lcmyk, lgrey;
	uint64_t seed = rng_state;
	unsigned char *rgb = make_jpeg(160, 120, TJPF_RGB, TJSAMP_444, &lrgb);
	unsigned char *cmyk, *grey;
	struct pdq_result a, b;

	rng_state = seed;	/* same pixels */
	cmyk = make_jpeg(160, 120, TJPF_CMYK, TJSAMP_444, &lcmyk);
	grey = make_jpeg(160, 120, TJPF_GRAY, TJSAMP_GRAY, &lgrey);
	if (!ok(rgb && cmyk && grey, "generated RGB, CMYK and grey JPEGs"))
		return;
	is_int(image_pdq_jpeg(rgb, lrgb, 0, 0, &a), 0, "RGB hashes");
	is_int(image_pdq_jpeg(cmyk, lcmyk, 0, 0, &b), 0, "CMYK (YCCK) hashes");
	ok(pdq_distance(&a.hash[0], &b.hash[0]) <= 16,
	   "CMYK with K'=255 hashes like its RGB twin (distance %d)",
	   pdq_distance(&a.hash[0], &b.hash[0]));
	is_int(image_pdq_jpeg(grey, lgrey, PDQ_DIHEDRAL, 0, &b), 0, "grey JPEG hashes");
	ok(b.quality > 50, "grey JPEG has structure (quality %d)", b.quality);
	tjFree(rgb);
	tjFree(cmyk);
	tjFree(grey);
}

int main(void)
{
	const char *shared = getenv("HASHGATE_SHARED");
	char dir[1024];
	struct stat st;

	test_hex_distance();
	test_luma();
	test_hostile();
	test_colourspaces();

	snprintf(dir, sizeof(dir), "%s/testdata/pdq", shared ? shared : "");
	if (shared && stat(dir, &st) == 0) {
		test_expected_plain(dir);
		test_expected_dihedral(dir);
	} else {
		ok(1, "reference hashes # SKIP %s not found (set HASHGATE_SHARED)", dir);
	}
	return done_testing();
}
