/*
 * image.h - decode a JPEG (TurboJPEG) into luma and hash it with PDQ.
 *
 * Decoding follows what the PDQ reference CLI sees (ISLOW IDCT, fancy upsampling, no EXIF
 * rotation, grey and CMYK handled, 512x512 nearest-neighbour pre-resize).  Input is untrusted:
 * every failure is a negative errno, never a crash, and memory is bounded by the pixel cap.
 * Thread-safe; each call uses its own TurboJPEG handle.  Each calling thread keeps one 2 MiB
 * PDQ working buffer (thread-specific data, freed at thread exit).
 */
#ifndef HASHDB_IMAGE_H
#define HASHDB_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "hashdb/pdq.h"

/* Default cap on width*height of an image we agree to decode (decompression bombs). */
#define IMAGE_MAX_PIXELS_DEFAULT	(100ull * 1000 * 1000)

/*
 * pdq_flags bit for image_pdq_*: decode JPEGs over 512 px with TurboJPEG's DCT scaling (the
 * largest of 1/2, 1/4, 1/8 that keeps both sides >= 256).  About 40% faster on 12 MP photos,
 * but not bit-exact with the reference: measured distance to the exact hash mean 2.7, max 6
 * (dihedral max 10) on 35 images; tests/bench/10-hash.sh prints it per image.  Off by default.
 */
#define IMAGE_SCALED_DECODE	0x100

/*
 * pdq_flags bit for image_pdq_*: always decode the whole image with TurboJPEG.  By default
 * JPEGs over 512 px go through jpegfast.c, which reconstructs only the 512x512 pixels the
 * hash samples and gives the identical result; this flag is for tests and benchmarks.
 */
#define IMAGE_FULL_DECODE	0x200

/* pdq_flags bit for tests: the sparse path from 513 px up (default: from 2 megapixels). */
#define IMAGE_SPARSE_ANY	0x400

/* 1 if buf starts like a JPEG (FF D8 FF), else 0. */
int image_is_jpeg(const void *buf, size_t len);

/*
 * PDQ of a JPEG in memory.  max_pixels 0 means IMAGE_MAX_PIXELS_DEFAULT.
 * Errors: -EINVAL not a JPEG / corrupt / truncated, -E2BIG over the pixel cap,
 * -ENOTSUP a JPEG colour space we cannot hash, -ENOMEM.
 */
int image_pdq_jpeg(const void *buf, size_t len, unsigned pdq_flags, uint64_t max_pixels,
		   struct pdq_result *out);

/* Same, reading the whole file fd (from offset 0) up to max_bytes (-EFBIG if larger). */
int image_pdq_fd(int fd, uint64_t max_bytes, unsigned pdq_flags, uint64_t max_pixels,
		 struct pdq_result *out);

#endif
