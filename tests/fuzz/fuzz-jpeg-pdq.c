/*
 * fuzz-jpeg-pdq.c - libFuzzer harness for the untrusted-input path: JPEG bytes -> libjpeg
 * decode (warnings, work bound, memory budget) -> grey/CMYK handling -> 512x512 pre-resize ->
 * PDQ (plain, dihedral, scaled), and differentially the sparse decoder (hashdb/jpegfast.c)
 * against the full decode, and the streaming file source against the in-memory one.
 *
 * Built by `make fuzz` (clang, ASan+UBSan).  Any return code is fine; crashes, sanitizer
 * reports, leaks and timeouts are not, and neither is any difference between the sparse path
 * (IMAGE_SPARSE_ANY) and the full decode (IMAGE_FULL_DECODE) in return code, hash, quality or
 * warning, between jpegfast's one- and two-thread coefficients, or between image_pdq_fd
 * streaming from a file and image_pdq_jpeg on the same bytes: those trap.  The work bound is
 * lowered so each input stays fast; the bound logic itself is the same code as in production.
 * A useful seed corpus: a few baseline JPEGs just over 512 px (tests/tools/mkjpeg).
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hashdb/image.h"
#include "hashdb/jpegfast.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same(const struct pdq_result *a, const struct pdq_result *b)
{
	int d;

	if (a->quality != b->quality || a->warning != b->warning || a->ndih != b->ndih ||
	    a->width != b->width || a->height != b->height)
		return 0;
	for (d = 0; d < a->ndih; d++)
		if (pdq_distance(&a->hash[d], &b->hash[d]))
			return 0;
	return 1;
}

static void coefs_same(const uint8_t *data, size_t size)
{
	struct jpegfast_coefs a, b;
	int ra = jpegfast_coefs(data, size, JPEGFAST_NO_THREADS, &a);
	int rb = jpegfast_coefs(data, size, JPEGFAST_FORCE_SPLIT, &b);
	int c;

	if (ra != rb)
		__builtin_trap();
	for (c = 0; ra == 0 && c < a.ncomp; c++)
		if (a.bw[c] != b.bw[c] || a.bh[c] != b.bh[c] ||
		    memcmp(a.coef[c], b.coef[c], sizeof(int16_t) * 64 * (size_t)a.bw[c] * a.bh[c]))
			__builtin_trap();
	jpegfast_coefs_release(&a);
	jpegfast_coefs_release(&b);
}

/* The same bytes from a file, decoded streaming (mem_bytes 1): the same answer. */
static void stream_same(const uint8_t *data, size_t size, unsigned flags)
{
	struct pdq_result m, f;
	int fd = memfd_create("fuzz", 0), rm, rf;

	if (fd < 0 || write(fd, data, size) != (ssize_t)size) {
		if (fd >= 0)
			close(fd);
		return;
	}
	rm = image_pdq_jpeg(data, size, flags | IMAGE_FULL_DECODE, 4u << 20, &m);
	rf = image_pdq_fd(fd, 1, flags, 4u << 20, &f);
	close(fd);
	if (rm != rf || (rm == 0 && !same(&m, &f)))
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pdq_result r, a, b;
	unsigned flags, mode;
	int ra, rb;

	/* The last byte picks the mode so the fuzzer can reach every path from one corpus. */
	mode = size ? data[size - 1] : 0;
	flags = (mode & 1) ? PDQ_DIHEDRAL : 0;
	if (mode & 2) {
		(void)image_pdq_jpeg(data, size, flags | IMAGE_SCALED_DECODE, 4u << 20, &r);
		return 0;
	}
	(void)image_pdq_jpeg(data, size, flags, 4u << 20, &r);
	ra = image_pdq_jpeg(data, size, flags | IMAGE_SPARSE_ANY, 4u << 20, &a);
	rb = image_pdq_jpeg(data, size, flags | IMAGE_FULL_DECODE, 4u << 20, &b);
	if (ra != rb || (ra == 0 && !same(&a, &b)))
		__builtin_trap();
	if (mode & 4)
		coefs_same(data, size);
	if (mode & 8)
		stream_same(data, size, flags);
	return 0;
}
