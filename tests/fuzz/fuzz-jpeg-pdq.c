/*
 * fuzz-jpeg-pdq.c - libFuzzer harness for the untrusted-input path: JPEG bytes -> TurboJPEG
 * decode -> grey/CMYK handling -> 512x512 pre-resize -> PDQ (plain, dihedral, scaled).
 *
 * Built by `make fuzz` (clang, ASan+UBSan).  Any return code is fine; crashes, sanitizer
 * reports, leaks and timeouts are not.  The pixel cap is lowered so each input stays fast;
 * the cap logic itself is the same code as in production.
 */
#include <stddef.h>
#include <stdint.h>

#include "hashdb/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pdq_result r;
	unsigned flags;

	/* The last byte picks the mode so the fuzzer can reach every path from one corpus. */
	flags = size ? data[size - 1] : 0;
	flags = ((flags & 1) ? PDQ_DIHEDRAL : 0) | ((flags & 2) ? IMAGE_SCALED_DECODE : 0);
	(void)image_pdq_jpeg(data, size, flags, 4u << 20, &r);
	return 0;
}
