/*
 * test-jpegfast.c - the sparse exact JPEG path (hashdb/jpegfast.c) against libjpeg-turbo.
 *
 * (a) coefficients: jpegfast_coefs == libjpeg's jpeg_read_coefficients, on the shared JPEGs
 *     and on generated ones (4:4:4, 4:2:2, 4:2:0, 4:4:0, grey; standard and optimized
 *     Huffman tables; with and without restart markers), single-threaded and with the
 *     speculative helper thread forced on;
 * (b) pixels: jpegfast_luma512 == the luma of TurboJPEG's full decode at the reference's
 *     sample points, bit for bit, and image_pdq_jpeg == the same with IMAGE_FULL_DECODE
 *     (hash, quality, dihedral hashes);
 * (c) damage: truncated and corrupted copies give image_pdq_jpeg exactly what the full
 *     decode gives (return code, hash, quality, warning flag).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jpeglib.h>
#include <turbojpeg.h>

#include "hashdb/image.h"
#include "hashdb/jpegfast.h"
#include "hashdb/pdq.h"
#include "tests/unit/tap.h"

static uint64_t rng_state = 7;

static uint64_t rng(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* A JPEG written by libjpeg: ncomp 1 or 3, luma sampling hs x vs, restart interval ri. */
static unsigned char *gen_jpeg(int w, int h, int ncomp, int hs, int vs, int q, int ri, int opt,
			       unsigned long *len)
{
	struct jpeg_compress_struct ci;
	struct jpeg_error_mgr je;
	unsigned char *out = NULL, *row = malloc((size_t)w * ncomp);
	int x, y, k, cx = (int)(rng() % (unsigned)w), cy = (int)(rng() % (unsigned)h);
	int noise = 1 + (int)(rng() % 40);

	ci.err = jpeg_std_error(&je);
	jpeg_create_compress(&ci);
	*len = 0;
	jpeg_mem_dest(&ci, &out, len);
	ci.image_width = (JDIMENSION)w;
	ci.image_height = (JDIMENSION)h;
	ci.input_components = ncomp;
	ci.in_color_space = ncomp == 3 ? JCS_RGB : JCS_GRAYSCALE;
	jpeg_set_defaults(&ci);
	jpeg_set_quality(&ci, q, TRUE);
	if (ncomp == 3) {
		ci.comp_info[0].h_samp_factor = hs;
		ci.comp_info[0].v_samp_factor = vs;
	}
	ci.restart_interval = (unsigned)ri;
	ci.optimize_coding = opt;
	jpeg_start_compress(&ci, TRUE);
	for (y = 0; y < h; y++) {
		for (x = 0; x < w; x++)
			for (k = 0; k < ncomp; k++) {
				int dx = x - cx, dy = y - cy;
				int v = ((dx * dx + dy * dy) / (37 + 11 * k)) & 255;

				if (((x / (24 + 8 * k)) ^ (y / 40)) & 1)
					v = 255 - v;
				v += (int)(rng() % (unsigned)noise) - noise / 2;
				row[x * ncomp + k] = (unsigned char)(v < 0 ? 0 : v > 255 ? 255 : v);
			}
		jpeg_write_scanlines(&ci, &row, 1);
	}
	jpeg_finish_compress(&ci);
	jpeg_destroy_compress(&ci);
	free(row);
	return out;
}

struct jerr {
	struct jpeg_error_mgr pub;
	jmp_buf jb;
};

static void jerr_exit(j_common_ptr ci)
{
	longjmp(((struct jerr *)ci->err)->jb, 1);
}

static float scratch[512 * 512];

/* 1 if jpegfast's coefficients equal libjpeg's (and libjpeg had no warning). */
static int coefs_match(const unsigned char *buf, unsigned long len, unsigned flags)
{
	struct jpeg_decompress_struct di;
	struct jerr je;
	struct jpegfast_coefs fc;
	jvirt_barray_ptr *arr;
	volatile int bad = 0;
	int c;

	if (jpegfast_coefs(buf, len, flags, &fc) < 0)
		return 0;
	di.err = jpeg_std_error(&je.pub);
	je.pub.error_exit = jerr_exit;
	if (setjmp(je.jb)) {
		jpeg_destroy_decompress(&di);
		jpegfast_coefs_release(&fc);
		return 0;
	}
	jpeg_create_decompress(&di);
	jpeg_mem_src(&di, buf, len);
	jpeg_read_header(&di, TRUE);
	arr = jpeg_read_coefficients(&di);
	if (di.num_components != fc.ncomp || je.pub.num_warnings)
		bad++;
	for (c = 0; c < fc.ncomp && !bad; c++) {
		jpeg_component_info *ci = &di.comp_info[c];
		JDIMENSION by, bx;

		for (by = 0; by < ci->height_in_blocks && by < (JDIMENSION)fc.bh[c]; by++) {
			JBLOCKARRAY ba = di.mem->access_virt_barray((j_common_ptr)&di, arr[c], by,
								     1, FALSE);

			for (bx = 0; bx < ci->width_in_blocks && bx < (JDIMENSION)fc.bw[c]; bx++)
				if (memcmp(ba[0][bx], fc.coef[c] + ((size_t)by * fc.bw[c] + bx) * 64,
					   sizeof(JCOEF) * 64))
					bad++;
		}
	}
	jpeg_finish_decompress(&di);
	jpeg_destroy_decompress(&di);
	jpegfast_coefs_release(&fc);
	return !bad;
}

/* 1 if jpegfast's sample luma equals the full TurboJPEG decode's, bit for bit. */
static int luma_match(const unsigned char *buf, unsigned long len, unsigned flags, int *used)
{
	static float fast[512 * 512];
	tjhandle tj = tjInitDecompress();
	int w, h, sub, cs, fw = 0, fh = 0, x, y, rc, bad = 0, grey;
	unsigned char *px;

	*used = 0;
	if (!tj || tjDecompressHeader3(tj, buf, len, &w, &h, &sub, &cs) < 0) {
		if (tj)
			tjDestroy(tj);
		return 0;
	}
	grey = cs == TJCS_GRAY;
	px = malloc((size_t)w * h * 3);
	rc = jpegfast_luma512(buf, len, flags, fast, &fw, &fh);
	if (rc == 0) {
		*used = 1;
		if (!px || fw != w || fh != h ||
		    tjDecompress2(tj, buf, len, px, w, 0, h, grey ? TJPF_GRAY : TJPF_RGB,
				  TJFLAG_ACCURATEDCT) < 0)
			bad++;
		for (y = 0; y < 512 && !bad; y++) {
			int sy = (int)(((int64_t)y * h) >> 9);

			for (x = 0; x < 512; x++) {
				int sx = (int)(((int64_t)x * w) >> 9);
				const unsigned char *p = px + ((size_t)sy * w + sx) * (grey ? 1 : 3);
				float want = grey ? (float)p[0] :
					(0.299f * (float)p[0] + 0.587f * (float)p[1]) +
					0.114f * (float)p[2];

				if (memcmp(&want, &fast[y * 512 + x], sizeof(float)))
					bad++;
			}
		}
	} else if (rc != -ENOTSUP) {
		bad++;
	}
	free(px);
	tjDestroy(tj);
	return !bad;
}

/* 1 if the default image_pdq_jpeg equals IMAGE_FULL_DECODE in every field callers see. */
static int pdq_match(const unsigned char *buf, unsigned long len, unsigned flags)
{
	struct pdq_result a, b;
	int ra = image_pdq_jpeg(buf, len, flags, 0, &a);
	int rb = image_pdq_jpeg(buf, len, flags | IMAGE_FULL_DECODE, 0, &b);
	int d;

	if (ra != rb)
		return 0;
	if (ra < 0)
		return 1;
	if (a.quality != b.quality || a.warning != b.warning || a.ndih != b.ndih ||
	    a.width != b.width || a.height != b.height)
		return 0;
	for (d = 0; d < a.ndih; d++)
		if (pdq_distance(&a.hash[d], &b.hash[d]))
			return 0;
	return 1;
}

static unsigned char *slurp(const char *path, unsigned long *len)
{
	struct stat st;
	unsigned char *b;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || fstat(fd, &st) < 0) {
		if (fd >= 0)
			close(fd);
		return NULL;
	}
	b = malloc((size_t)st.st_size + 1);
	if (b && read(fd, b, (size_t)st.st_size) != st.st_size) {
		free(b);
		b = NULL;
	}
	close(fd);
	*len = (unsigned long)st.st_size;
	return b;
}

static void test_shared(const char *dir)
{
	static const char *files[] = {
		"reg-test-input/exif-rotn/exif-rotn-1.jpg",
		"reg-test-input/exif-rotn/exif-rotn-6.jpg",
		"reg-test-input/dih/bridge-1-original.jpg",
		"bridge-mods/high-contrast.jpg", "bridge-mods/sharpen-a-lot.jpg",
		"bridge-mods/blur-a-little.jpg", "bridge-mods/high-saturation.jpg",
		"bridge-mods/shrink-a-little.jpg", "bridge-mods/blur-a-lot.jpg",
		"bridge-mods/sharpen-a-little.jpg", "bridge-mods/square-512x512.jpg",
		"reg-test-input/labelme-subset/q2821.jpg", "misc-images/modes/CMYK.jpg",
		"reg-test-input/dih/bridge-2-rotate-90.jpg", "misc-images/wee.jpg",
	};
	size_t i;
	int coefs = 0, coefs_ok = 0, luma_ok = 0, used = 0, pdq_ok = 0, split_used = 0;

	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char path[1200];
		unsigned long len;
		unsigned char *buf;
		struct jpegfast_coefs fc;
		struct jpegfast_stats st;
		int u, u2;

		snprintf(path, sizeof(path), "%s/images/%s", dir, files[i]);
		buf = slurp(path, &len);
		if (!buf) {
			diag("cannot read %s", path);
			continue;
		}
		if (jpegfast_coefs(buf, len, JPEGFAST_NO_THREADS, &fc) == 0) {
			jpegfast_coefs_release(&fc);
			coefs++;
			coefs_ok += coefs_match(buf, len, JPEGFAST_NO_THREADS) &&
				    coefs_match(buf, len, JPEGFAST_FORCE_SPLIT);
		}
		luma_ok += luma_match(buf, len, JPEGFAST_FORCE_SPLIT, &u) &&
			   luma_match(buf, len, JPEGFAST_NO_THREADS | JPEGFAST_FORCE_SPLIT, &u2) &&
			   u == u2;
		/* forced: by default the caller goes on alone if the helper lags (load) */
		jpegfast_luma512(buf, len, JPEGFAST_FORCE_SPLIT, scratch, &(int){ 0 }, &(int){ 0 });
		jpegfast_last_stats(&st);
		if (i < 2)
			split_used += st.used;
		used += u;
		pdq_ok += pdq_match(buf, len, 0) && pdq_match(buf, len, PDQ_DIHEDRAL) &&
			  pdq_match(buf, len, IMAGE_SPARSE_ANY | PDQ_DIHEDRAL);
		free(buf);
	}
	ok(coefs >= 10, "jpegfast decodes %d of the shared baseline JPEGs", coefs);
	is_int(coefs_ok, coefs, "their coefficients equal jpeg_read_coefficients (1 and 2 threads)");
	ok(used >= 9, "the sparse path takes %d shared baseline JPEGs over 512 px", used);
	is_int(luma_ok, (int)(sizeof(files) / sizeof(files[0])),
	       "sample luma equals the full TurboJPEG decode bit for bit (or -ENOTSUP)");
	is_int(split_used, 2, "both 12 MP photos are decoded by two threads (helper synchronised)");
	is_int(pdq_ok, (int)(sizeof(files) / sizeof(files[0])),
	       "image_pdq_jpeg equals IMAGE_FULL_DECODE on the shared JPEGs (plain and dihedral)");
}

static void test_generated(void)
{
	static const int sizes[][2] = {
		{ 513, 600 }, { 1000, 1000 }, { 2001, 1333 }, { 600, 300 }, { 700, 2000 },
		{ 1023, 517 }, { 530, 529 },
	};
	static const int samp[][3] = {	/* ncomp, h, v */
		{ 3, 1, 1 }, { 3, 2, 1 }, { 3, 2, 2 }, { 3, 1, 2 }, { 1, 1, 1 },
	};
	int n = 0, cok = 0, lok = 0, pok = 0, used = 0, rst = 0, spec_used = 0, rst_used = 0;
	size_t si;

	for (si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
		size_t k;

		for (k = 0; k < sizeof(samp) / sizeof(samp[0]); k++) {
			int w = sizes[si][0], h = sizes[si][1], q = 40 + (int)(rng() % 61);
			int ri = (n % 3 == 1) ? 1 + (int)(rng() % 40) : 0, opt = n % 2, u, u2, u3;
			unsigned long len;
			unsigned char *j;
			struct jpegfast_stats st;

			j = gen_jpeg(w, h, samp[k][0], samp[k][1], samp[k][2], q, ri, opt, &len);
			n++;
			rst += ri > 0;
			if (coefs_match(j, len, JPEGFAST_NO_THREADS) &&
			    coefs_match(j, len, JPEGFAST_FORCE_SPLIT) && coefs_match(j, len, 0))
				cok++;
			else
				diag("coefficients differ: %dx%d comps %d %dx%d q%d ri%d opt%d", w, h,
				     samp[k][0], samp[k][1], samp[k][2], q, ri, opt);
			if (luma_match(j, len, JPEGFAST_NO_THREADS | JPEGFAST_FORCE_SPLIT, &u) &&
			    luma_match(j, len, JPEGFAST_FORCE_SPLIT, &u2) &&
			    luma_match(j, len, 0, &u3) && u == u2)
				lok++;
			else
				diag("luma differs: %dx%d comps %d %dx%d q%d ri%d opt%d", w, h,
				     samp[k][0], samp[k][1], samp[k][2], q, ri, opt);
			jpegfast_luma512(j, len, JPEGFAST_FORCE_SPLIT, scratch,
					 &(int){ 0 }, &(int){ 0 });
			jpegfast_last_stats(&st);
			spec_used += st.used && st.split == 1;
			rst_used += st.used && st.split == 2;
			used += u;
			if (pdq_match(j, len, IMAGE_SPARSE_ANY) &&
			    pdq_match(j, len, IMAGE_SPARSE_ANY | PDQ_DIHEDRAL))
				pok++;
			else
				diag("pdq differs: %dx%d", w, h);
			free(j);
		}
	}
	is_int(cok, n, "%d generated JPEGs (%d with restart markers): coefficients equal", n, rst);
	is_int(lok, n, "generated JPEGs: sample luma equals the full decode bit for bit");
	is_int(used, n, "generated JPEGs: all take the sparse path");
	ok(spec_used * 10 >= (n - rst) * 9 && rst_used >= 2,
	   "forced split used: %d speculative, %d at restart markers", spec_used, rst_used);
	is_int(pok, n, "generated JPEGs: image_pdq_jpeg equals IMAGE_FULL_DECODE");
}

/* The same checks on JPEGs from TurboJPEG's own compressor (tjCompress2), every subsampling. */
static void test_turbojpeg(void)
{
	static const int samp[] = { TJSAMP_444, TJSAMP_422, TJSAMP_420, TJSAMP_440, TJSAMP_GRAY };
	int w = 1100, h = 777, n = 0, good = 0;
	size_t k;
	unsigned char *px = malloc((size_t)w * h * 3);
	tjhandle tj = tjInitCompress();

	for (k = 0; px && k < (size_t)w * h * 3; k++)
		px[k] = (unsigned char)((k / 3 % (size_t)w) * 255 / (size_t)w +
					(k / 3 / (size_t)w) * (k % 3 + 1) + rng() % 17);
	for (k = 0; tj && px && k < sizeof(samp) / sizeof(samp[0]); k++) {
		unsigned char *j = NULL;
		unsigned long len = 0;
		int u, u2;

		if (tjCompress2(tj, px, w, 0, h, TJPF_RGB, &j, &len, samp[k], 75 + 5 * (int)k,
				0) < 0)
			continue;
		n++;
		if (coefs_match(j, len, JPEGFAST_NO_THREADS) &&
		    coefs_match(j, len, JPEGFAST_FORCE_SPLIT) &&
		    luma_match(j, len, JPEGFAST_FORCE_SPLIT | JPEGFAST_NO_THREADS, &u) &&
		    luma_match(j, len, JPEGFAST_FORCE_SPLIT, &u2) && u && u2 &&
		    pdq_match(j, len, IMAGE_SPARSE_ANY | PDQ_DIHEDRAL))
			good++;
		else
			diag("tjCompress2 subsampling %d differs", samp[k]);
		tjFree(j);
	}
	is_int(good, 5, "tjCompress2 JPEGs (%d, all subsamplings): coefficients, luma, hashes", n);
	if (tj)
		tjDestroy(tj);
	free(px);
}

static void test_damage(void)
{
	int pass, bad = 0, total = 0;

	for (pass = 0; pass < 2; pass++) {
		unsigned long len, i;
		unsigned char *j = gen_jpeg(900, 700, 3, 2, 2, 85, pass ? 7 : 0, 0, &len);
		unsigned char *cp = malloc(len);
		int n, u;

		ok(luma_match(j, len, JPEGFAST_FORCE_SPLIT, &u) && u,
		   "damage base image (pass %d) takes the sparse path", pass);

		for (i = 0; i < 30; i++) {
			unsigned long cut = len / 3 + (len * 2 / 3) * i / 30;

			total++;
			bad += !pdq_match(j, cut, IMAGE_SPARSE_ANY);
		}
		/* cut at the very end: without EOI, or without its last bytes */
		bad += !pdq_match(j, len - 1, IMAGE_SPARSE_ANY) +
		       !pdq_match(j, len - 2, IMAGE_SPARSE_ANY) +
		       !pdq_match(j, len - 3, IMAGE_SPARSE_ANY);
		total += 3;
		for (n = 0; n < 100; n++) {
			int k, nb = 1 + (int)(rng() % 4);

			memcpy(cp, j, len);
			for (k = 0; k < nb; k++)
				cp[len / 50 + rng() % (len - len / 50)] = (unsigned char)rng();
			total++;
			if (!pdq_match(cp, len, IMAGE_SPARSE_ANY | (n & 1 ? PDQ_DIHEDRAL : 0))) {
				diag("corruption %d (pass %d) differs", n, pass);
				bad++;
			}
			if (coefs_match(cp, len, JPEGFAST_FORCE_SPLIT) !=
			    coefs_match(cp, len, JPEGFAST_NO_THREADS)) {
				diag("corruption %d: 1 vs 2 threads differ", n);
				bad++;
			}
		}
		free(cp);
		free(j);
	}
	is_int(bad, 0, "%d truncated/corrupted JPEGs: same result as the full decode", total);
}

struct conc {
	const unsigned char *buf;
	unsigned long len;
	struct pdq_result want;
	int bad;
};

static void *conc_main(void *arg)
{
	struct conc *c = arg;
	int i;

	for (i = 0; i < 4; i++) {
		struct pdq_result r;

		if (image_pdq_jpeg(c->buf, c->len, PDQ_DIHEDRAL, 0, &r) < 0 ||
		    memcmp(r.hash, c->want.hash, sizeof(r.hash)) || r.quality != c->want.quality)
			c->bad++;
	}
	return NULL;
}

/* Callers hash in parallel (the daemon does): each call has its own helper thread. */
static void test_concurrent(void)
{
	unsigned long len;
	unsigned char *j = gen_jpeg(2001, 1333, 3, 2, 2, 90, 0, 0, &len);
	struct conc c[3];
	pthread_t th[3];
	struct jpegfast_stats st;
	int i, bad = 0, started = 0;

	c[0].buf = j;
	c[0].len = len;
	c[0].bad = 0;
	is_int(image_pdq_jpeg(j, len, PDQ_DIHEDRAL | IMAGE_FULL_DECODE, 0, &c[0].want), 0,
	       "2001x1333: full decode hashes");
	is_int(jpegfast_luma512(j, len, 0, scratch, &(int){ 0 }, &(int){ 0 }), 0,
	       "2001x1333 (2.7 MP) takes the sparse path by default");
	jpegfast_last_stats(&st);
	ok(st.split == 1, "... and splits the decode (%lu bytes; helper used: %d)", len, st.used);
	jpegfast_luma512(j, len, JPEGFAST_FORCE_SPLIT, scratch, &(int){ 0 }, &(int){ 0 });
	jpegfast_last_stats(&st);
	ok(st.used, "... and the helper synchronises (forced)");
	for (i = 0; i < 3; i++) {
		c[i] = c[0];
		if (pthread_create(&th[i], NULL, conc_main, &c[i]) == 0)
			started |= 1 << i;
	}
	for (i = 0; i < 3; i++)
		if (started & (1 << i)) {
			pthread_join(th[i], NULL);
			bad += c[i].bad;
		}
	ok(started == 7 && bad == 0, "3 threads x 4 hashes each equal the full decode (%d bad)",
	   bad);
	free(j);
}

int main(void)
{
	const char *shared = getenv("HASHGATE_SHARED");
	char dir[1024];
	struct stat st;

	test_generated();
	test_turbojpeg();
	test_damage();
	test_concurrent();
	snprintf(dir, sizeof(dir), "%s/testdata/pdq", shared ? shared : "");
	if (shared && stat(dir, &st) == 0)
		test_shared(dir);
	else
		ok(1, "shared JPEGs # SKIP %s not found (set HASHGATE_SHARED)", dir);
	return done_testing();
}
