/*
 * fuzz-image.h - the check shared by the per-format PDQ harnesses (fuzz-webp-pdq, fuzz-gif-pdq,
 * fuzz-bmp-pdq): decode the bytes from memory twice and once from a file (memfd); any
 * difference in return code, hash, quality or size traps.  Two decodes of the same bytes
 * differing is how hashing memory the decoder never wrote shows up without MSan.  The work
 * bound is lowered so each input stays fast (the bound logic is production code).
 */
#ifndef HASHGATE_FUZZ_IMAGE_H
#define HASHGATE_FUZZ_IMAGE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hashdb/image.h"

static int fuzz_same(const struct pdq_result *a, const struct pdq_result *b)
{
	return memcmp(a->hash, b->hash, sizeof(a->hash)) == 0 && a->quality == b->quality &&
	       a->width == b->width && a->height == b->height && a->ndih == b->ndih;
}

static void fuzz_image(const uint8_t *data, size_t size)
{
	struct pdq_result m, m2, f;
	unsigned flags = size && (data[size - 1] & 1) ? PDQ_DIHEDRAL : 0;
	int fd, rm, rm2, rf;

	rm = image_pdq_buf(data, size, flags, 1u << 20, &m);
	rm2 = image_pdq_buf(data, size, flags, 1u << 20, &m2);
	if (rm != rm2 || (rm == 0 && !fuzz_same(&m, &m2)))
		__builtin_trap();
	fd = memfd_create("fuzz", 0);
	if (fd < 0)
		return;
	if (write(fd, data, size) == (ssize_t)size) {
		rf = image_pdq_fd(fd, 0, flags, 1u << 20, &f);
		if (rm != rf || (rm == 0 && !fuzz_same(&m, &f)))
			__builtin_trap();
	}
	close(fd);
}

#endif
