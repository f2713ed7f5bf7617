/*
 * fuzz-webp-pdq.c - libFuzzer harness for WebP -> libwebp (lossy, lossless, alpha, animation's
 * first frame through libwebpdemux) -> 512x512 sample -> PDQ (fuzz-image.h: memory twice and
 * file must agree).  The input is wrapped as "RIFF" size "WEBP" + data, so mutations go to
 * the chunks, not the container magic.  Seeds: the .webp files of
 * $HASHGATE_SHARED/testdata/pdq-formats, their 12-byte RIFF header stripped (tests/fuzz/run.sh).
 */
#include <stdlib.h>

#include "tests/fuzz/fuzz-image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *b;
	uint32_t n = (uint32_t)size + 4;

	if (size > (16u << 20))
		return 0;
	b = malloc(size + 12);
	if (!b)
		return 0;
	memcpy(b, "RIFF", 4);
	b[4] = (uint8_t)n;
	b[5] = (uint8_t)(n >> 8);
	b[6] = (uint8_t)(n >> 16);
	b[7] = (uint8_t)(n >> 24);
	memcpy(b + 8, "WEBP", 4);
	memcpy(b + 12, data, size);
	fuzz_image(b, size + 12);
	free(b);
	return 0;
}
