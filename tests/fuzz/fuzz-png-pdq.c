/*
 * fuzz-png-pdq.c - libFuzzer harness for PNG -> libpng decode (palette, tRNS, 16-bit,
 * interlace, damaged data) -> 512x512 sample -> PDQ, and differentially image_pdq_fd reading
 * the same bytes from a file against image_pdq_buf from memory.
 *
 * Built by `make fuzz` (clang, ASan+UBSan).  Any return code is fine; crashes, sanitizer
 * reports, leaks and timeouts are not, and neither is any difference between the two
 * sources in return code, hash or quality: that traps.  The work bound is lowered so each
 * input stays fast.  A useful seed corpus: $HASHGATE_SHARED/testdata/pdq-formats/png-*.png.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hashdb/image.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct pdq_result m, f;
	unsigned flags = size && (data[size - 1] & 1) ? PDQ_DIHEDRAL : 0;
	int fd, rm, rf;

	rm = image_pdq_buf(data, size, flags, 1u << 20, &m);
	fd = memfd_create("fuzz", 0);
	if (fd < 0)
		return 0;
	if (write(fd, data, size) == (ssize_t)size) {
		rf = image_pdq_fd(fd, 0, flags, 1u << 20, &f);
		if (rm != rf || (rm == 0 && (memcmp(m.hash, f.hash, sizeof(m.hash)) != 0 ||
					     m.quality != f.quality)))
			__builtin_trap();
	}
	close(fd);
	return 0;
}
