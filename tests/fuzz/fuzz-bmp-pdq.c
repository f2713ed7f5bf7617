/*
 * fuzz-bmp-pdq.c - libFuzzer harness for BMP -> hashgate's own reader (headers, palettes, bit
 * fields, bottom-up/top-down, truncation) -> 512x512 sample -> PDQ (fuzz-image.h: memory
 * twice and file must agree).  The input is prefixed with "BM" so mutations go past the
 * magic.  Seeds: the .bmp files of
 * $HASHGATE_SHARED/testdata/pdq-formats, their "BM" stripped (tests/fuzz/run.sh).
 */
#include <stdlib.h>

#include "tests/fuzz/fuzz-image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *b;

	if (size > (16u << 20))
		return 0;
	b = malloc(size + 2);
	if (!b)
		return 0;
	memcpy(b, "BM", 2);
	memcpy(b + 2, data, size);
	fuzz_image(b, size + 2);
	free(b);
	return 0;
}
