/*
 * pdq.c - PDQ perceptual hash from a float luma image, bit-exact with Meta's reference C++.
 *
 * Pipeline: two passes of horizontal-then-vertical running-sum box filters (the "Jarosz" tent),
 * decimation to 64x64 at cell centres, quality from 64x64 gradients, a 16x64 DCT matrix
 * without DC, median threshold per dihedral variant.
 * Invariants that make it bit-exact (see shared/notes/pdq-algorithm.md):
 *  - all image arithmetic is IEEE single float in the reference's evaluation order; the file
 *    must be compiled with -ffp-contract=off and without -ffast-math (the Makefile does);
 *  - the box filter adds before it subtracts and divides by the live window count;
 *  - every reordering below (the vertical pass done row by row, the DCT's T = D*A done
 *    k-outer) keeps each output's own sequence of float operations unchanged.
 * Storage: hash bytes in hex order (big-endian); reference bit k = 16*i + j lives in 16-bit
 * word k>>4, and word w is bytes [2*(15-w)] (high) and [2*(15-w)+1] (low).
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "hashdb/hash.h"
#include "hashdb/pdq.h"

#define PDQ_MIN_DIM	5

static float dct_matrix[16][64];
static pthread_once_t dct_once = PTHREAD_ONCE_INIT;

static void dct_init(void)
{
	/* The reference: a double scale, rounded to float, times a double cosine. */
	const float scale = (float)sqrt(2.0 / 64.0);
	const double pi = 3.14159265358979323846;
	int i, j;

	for (i = 0; i < 16; i++)
		for (j = 0; j < 64; j++)
			dct_matrix[i][j] = (float)((double)scale *
				cos(((pi / 2.0) / 64.0) * (i + 1) * (2 * j + 1)));
}

/*
 * Running-sum box along rows (stride 1), ROWS_AT_ONCE rows interleaved: one row's running sum
 * is a serial chain of float adds, so doing several rows step by step keeps the CPU busy
 * without changing any row's own sequence of operations.
 */
#define ROWS_AT_ONCE	8

static void box_rows(const float *in, float *out, int nr, int n, int w)
{
	int half = (w + 2) / 2, li = 0, ri = 0, oi = 0, cnt = 0, t, r;
	float sum[ROWS_AT_ONCE] = { 0 }, fc;
	const float fw = (float)w;

	for (t = 0; t < half - 1; t++, ri++) {
		for (r = 0; r < nr; r++)
			sum[r] += in[(size_t)r * n + ri];
		cnt++;
	}
	for (t = 0; t < w - half + 1; t++, ri++, oi++) {
		cnt++;
		fc = (float)cnt;
		for (r = 0; r < nr; r++) {
			sum[r] += in[(size_t)r * n + ri];
			out[(size_t)r * n + oi] = sum[r] / fc;
		}
	}
	for (t = 0; t < n - w; t++, ri++, li++, oi++)
		for (r = 0; r < nr; r++) {
			sum[r] += in[(size_t)r * n + ri];
			sum[r] -= in[(size_t)r * n + li];
			out[(size_t)r * n + oi] = sum[r] / fw;
		}
	for (t = 0; t < half - 1; t++, li++, oi++) {
		cnt--;
		fc = (float)cnt;
		for (r = 0; r < nr; r++) {
			sum[r] -= in[(size_t)r * n + li];
			out[(size_t)r * n + oi] = sum[r] / fc;
		}
	}
}

/*
 * One row step of the column filter for all columns: sum += add (if any), sum -= sub (if any),
 * out = sum / div, in that order per column.  GCC's vector extension keeps each lane an
 * ordinary IEEE float operation (so results equal the scalar code) while doing 4 at a time;
 * plain -O2 would not vectorise this loop by itself.
 */
typedef float v4sf __attribute__((vector_size(16)));

static void col_step(float *restrict sum, const float *restrict add, const float *restrict sub,
		     float *restrict out, float div, int cols)
{
	const v4sf vd = { div, div, div, div };
	int c = 0;

	for (; c + 4 <= cols; c += 4) {
		v4sf s, a;

		memcpy(&s, sum + c, sizeof(s));
		if (add) {
			memcpy(&a, add + c, sizeof(a));
			s += a;
		}
		if (sub) {
			memcpy(&a, sub + c, sizeof(a));
			s -= a;
		}
		memcpy(sum + c, &s, sizeof(s));
		if (out) {
			s /= vd;
			memcpy(out + c, &s, sizeof(s));
		}
	}
	for (; c < cols; c++) {
		if (add)
			sum[c] += add[c];
		if (sub)
			sum[c] -= sub[c];
		if (out)
			out[c] = sum[c] / div;
	}
}

/*
 * The same filter down every column at once: sum[c] is column c's running sum, so each column
 * sees exactly the reference's per-column operation sequence, but memory is walked row by row
 * (the reference's column stride of 2 KiB aliases in cache and it is several times slower).
 */
static void box_cols(const float *in, float *out, int rows, int cols, int w, float *sum)
{
	int half = (w + 2) / 2, li = 0, ri = 0, oi = 0, cnt = 0, t;
	const size_t n = (size_t)cols;

	memset(sum, 0, sizeof(*sum) * cols);
	for (t = 0; t < half - 1; t++, ri++) {
		col_step(sum, in + ri * n, NULL, NULL, 0.0f, cols);
		cnt++;
	}
	for (t = 0; t < w - half + 1; t++, ri++, oi++) {
		cnt++;
		col_step(sum, in + ri * n, NULL, out + oi * n, (float)cnt, cols);
	}
	for (t = 0; t < rows - w; t++, ri++, li++, oi++)
		col_step(sum, in + ri * n, in + li * n, out + oi * n, (float)w, cols);
	for (t = 0; t < half - 1; t++, li++, oi++) {
		cnt--;
		col_step(sum, NULL, in + li * n, out + oi * n, (float)cnt, cols);
	}
}

/* Two Jarosz passes in place on buf1 (buf2 is scratch of the same size). */
static void jarosz(float *buf1, float *buf2, int rows, int cols, float *colsum)
{
	int wr = (cols + 127) / 128, wc = (rows + 127) / 128, pass, r;

	for (pass = 0; pass < 2; pass++) {
		for (r = 0; r < rows; r += ROWS_AT_ONCE)
			box_rows(buf1 + (size_t)r * cols, buf2 + (size_t)r * cols,
				 rows - r < ROWS_AT_ONCE ? rows - r : ROWS_AT_ONCE, cols, wr);
		box_cols(buf2, buf1, rows, cols, wc, colsum);
	}
}

static void decimate(const float *in, int rows, int cols, float out[64][64])
{
	int i, j, jidx[64];

	for (j = 0; j < 64; j++)
		jidx[j] = (int)(((j + 0.5) * cols) / 64);
	for (i = 0; i < 64; i++) {
		int ini = (int)(((i + 0.5) * rows) / 64);

		for (j = 0; j < 64; j++)
			out[i][j] = in[(size_t)ini * cols + jidx[j]];
	}
}

static int quality_of(float a[64][64])
{
	int i, j, sum = 0, q;

	for (i = 0; i < 63; i++)
		for (j = 0; j < 64; j++) {
			int d = (int)(((a[i][j] - a[i + 1][j]) * 100.0f) / 255.0f);

			sum += abs(d);
		}
	for (i = 0; i < 64; i++)
		for (j = 0; j < 63; j++) {
			int d = (int)(((a[i][j] - a[i][j + 1]) * 100.0f) / 255.0f);

			sum += abs(d);
		}
	q = sum / 90;
	return q > 100 ? 100 : q;
}

/* B = D * A * D^T, each sum a float accumulator from 0 with k ascending. */
static void dct64to16(float a[64][64], float b[16][16])
{
	float t[16][64];
	int i, j, k;

	for (i = 0; i < 16; i++) {
		for (j = 0; j < 64; j++)
			t[i][j] = 0.0f;
		for (k = 0; k < 64; k++) {
			const float d = dct_matrix[i][k];

			for (j = 0; j < 64; j++)
				t[i][j] += d * a[k][j];
		}
	}
	for (i = 0; i < 16; i++)
		for (j = 0; j < 16; j++) {
			float s = 0.0f;

			for (k = 0; k < 64; k++)
				s += t[i][k] * dct_matrix[j][k];
			b[i][j] = s;
		}
}

static int cmp_float(const void *pa, const void *pb)
{
	float a = *(const float *)pa, b = *(const float *)pb;

	return (a > b) - (a < b);
}

/* The reference's Torben median of 256 values is the 128th smallest. */
static void bits_of(float b[16][16], struct pdq_hash *h)
{
	float sorted[256], m;
	int i, j;

	memcpy(sorted, b, sizeof(sorted));
	qsort(sorted, 256, sizeof(float), cmp_float);
	m = sorted[127];
	memset(h, 0, sizeof(*h));
	for (i = 0; i < 16; i++)
		for (j = 0; j < 16; j++) {
			int byte = 2 * (15 - i) + (j >= 8 ? 0 : 1);

			if (b[i][j] > m)
				h->b[byte] |= (uint8_t)(1u << (j & 7));
		}
}

/* Z from A per the reference's dihedral table; sign flips on even (0-based) indices. */
static void dihedral(float a[16][16], enum pdq_dihedral d, float z[16][16])
{
	int i, j;

	for (i = 0; i < 16; i++)
		for (j = 0; j < 16; j++) {
			float v = a[i][j];

			switch (d) {
			case PDQ_ORIG:
				z[i][j] = v;
				break;
			case PDQ_ROT90:
				z[j][i] = (j & 1) ? v : -v;
				break;
			case PDQ_ROT180:
				z[i][j] = ((i + j) & 1) ? -v : v;
				break;
			case PDQ_ROT270:
				z[j][i] = (i & 1) ? v : -v;
				break;
			case PDQ_FLIPX:
				z[i][j] = (i & 1) ? v : -v;
				break;
			case PDQ_FLIPY:
				z[i][j] = (j & 1) ? v : -v;
				break;
			case PDQ_FLIPP:
				z[j][i] = v;
				break;
			case PDQ_FLIPM:
				z[j][i] = ((i + j) & 1) ? -v : v;
				break;
			default:
				break;
			}
		}
}

/*
 * The hash proper.  buf holds the luma in its first rows*cols floats and has room for
 * PDQ_SCRATCH_FLOATS(rows, cols); it is clobbered (the blur runs in place).
 */
static int pdq_hash_buf(float *buf, int rows, int cols, unsigned flags, struct pdq_result *out)
{
	float a[64][64], b[16][16], z[16][16];
	size_t n = (size_t)rows * cols;
	int d;

	memset(out, 0, sizeof(*out));
	out->width = cols;
	out->height = rows;
	out->ndih = (flags & PDQ_DIHEDRAL) ? PDQ_NDIH : 1;
	if (rows < PDQ_MIN_DIM || cols < PDQ_MIN_DIM)
		return 0;	/* zero hashes, quality 0, as the reference */
	pthread_once(&dct_once, dct_init);

	/* The plain hash of an exactly 64x64 image skips the blur; the dihedral function of the
	 * reference never does.  hash[PDQ_ORIG] is always the plain hash (what hash lists hold),
	 * the 7 others come from the blurred buffer, as in the reference. */
	if (rows == 64 && cols == 64) {
		memcpy(a, buf, sizeof(a));
		out->quality = quality_of(a);
		dct64to16(a, b);
		bits_of(b, &out->hash[PDQ_ORIG]);
		if (!(flags & PDQ_DIHEDRAL))
			return 0;
	}
	jarosz(buf, buf + n, rows, cols, buf + 2 * n);
	decimate(buf, rows, cols, a);

	dct64to16(a, b);
	if (rows == 64 && cols == 64) {
		d = PDQ_ORIG + 1;
	} else {
		out->quality = quality_of(a);
		d = PDQ_ORIG;
	}
	for (; d < out->ndih; d++) {
		dihedral(b, d, z);
		bits_of(z, &out->hash[d]);
	}
	return 0;
}

static int check_args(const void *p, int rows, int cols, unsigned flags, struct pdq_result *out)
{
	if (!p || !out || rows <= 0 || cols <= 0 || (flags & ~PDQ_DIHEDRAL))
		return -EINVAL;
	if ((size_t)rows * cols > (SIZE_MAX / sizeof(float) - cols) / 2)
		return -ENOMEM;
	return 0;
}

int pdq_from_luma(const float *luma, int rows, int cols, unsigned flags,
		  struct pdq_result *out)
{
	float *buf;
	int r;

	r = check_args(luma, rows, cols, flags, out);
	if (r < 0)
		return r;
	buf = malloc(sizeof(float) * PDQ_SCRATCH_FLOATS(rows, cols));
	if (!buf)
		return -ENOMEM;
	memcpy(buf, luma, sizeof(float) * rows * cols);
	r = pdq_hash_buf(buf, rows, cols, flags, out);
	free(buf);
	return r;
}

int pdq_from_luma_scratch(float *buf, int rows, int cols, unsigned flags,
			  struct pdq_result *out)
{
	int r = check_args(buf, rows, cols, flags, out);

	return r < 0 ? r : pdq_hash_buf(buf, rows, cols, flags, out);
}

int pdq_distance(const struct pdq_hash *a, const struct pdq_hash *b)
{
	int i, dist = 0;

	for (i = 0; i < 4; i++) {
		uint64_t x, y;

		memcpy(&x, a->b + 8 * i, 8);
		memcpy(&y, b->b + 8 * i, 8);
		dist += __builtin_popcountll(x ^ y);
	}
	return dist;
}

void pdq_to_hex(const struct pdq_hash *h, char out[65])
{
	hex_encode(h->b, sizeof(h->b), out);
}

int pdq_from_hex(const char *hex, struct pdq_hash *h)
{
	if (!hex || strnlen(hex, 65) != 64)
		return -EINVAL;
	return hex_decode(hex, 64, h->b, sizeof(h->b));
}

const char *pdq_dihedral_name(enum pdq_dihedral d)
{
	static const char *const names[PDQ_NDIH] = {
		"orig", "rot90", "rot180", "rot270", "flipx", "flipy", "flipp", "flipm",
	};

	if ((unsigned)d >= PDQ_NDIH)
		return NULL;
	return names[d];
}
