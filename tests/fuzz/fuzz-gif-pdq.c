/*
 * fuzz-gif-pdq.c - libFuzzer harness for GIF -> giflib (first frame: colour tables, interlace,
 * extensions, LZW) -> 512x512 sample -> PDQ (fuzz-image.h: memory twice and file must
 * agree).  The input is prefixed with "GIF89a" so mutations go past the magic.  Seeds: the .gif files of
 * $HASHGATE_SHARED/testdata/pdq-formats, their magic stripped (tests/fuzz/run.sh).
 */
#include <stdlib.h>

#include "tests/fuzz/fuzz-image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *b;

	if (size > (16u << 20))
		return 0;
	b = malloc(size + 6);
	if (!b)
		return 0;
	memcpy(b, "GIF89a", 6);
	memcpy(b + 6, data, size);
	fuzz_image(b, size + 6);
	free(b);
	return 0;
}
