/*
 * image.h - decode a JPEG, PNG, WebP, GIF or BMP into luma and hash it with PDQ, as the
 * reference CLI does (its ImageMagick `convert FILE pnm:-` for the formats other than JPEG).
 *
 * Decoding follows what the PDQ reference CLI sees (ImageMagick over libjpeg-turbo: ISLOW
 * IDCT, fancy upsampling, no EXIF rotation, grey and CMYK handled, 512x512 nearest-neighbour
 * pre-resize), including what libjpeg only warns about (junk bytes, bad markers after the
 * image, truncation).  Input is untrusted: every failure is a negative errno with a reason in
 * out->reason, never a crash.  Two bounds replace any limit on file size or pixel count:
 *  - work: an image is decoded only if its work (output pixels, plus for progressive and
 *    other multi-scan JPEGs the pixels each scan covers, plus a fixed charge per scan) stays
 *    within max_work; over it is an error (-ERANGE), detected from the header when possible
 *    and otherwise while the scans are read;
 *  - memory: decodes in flight in the whole process together reserve at most the decode
 *    memory budget (image_set_decode_memory); a decode waits until its reservation fits and
 *    an image that cannot fit in the whole budget is an error (-E2BIG).
 * Thread-safe.  Each calling thread keeps one 2 MiB PDQ working buffer (thread-specific data,
 * freed at thread exit).
 */
#ifndef HASHDB_IMAGE_H
#define HASHDB_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "hashdb/pdq.h"

/*
 * Default work bound, in pixels (see above): a 500-megapixel baseline JPEG, or for example a
 * 12 MP progressive one with about 40 full-image scans.  Measured worst cases at the bound
 * are in README.md (a few seconds of CPU for one image).
 */
#define IMAGE_MAX_WORK_DEFAULT		(500ull * 1000 * 1000)
/* Work charged per scan of a multi-scan JPEG on top of the pixels it covers. */
#define IMAGE_SCAN_WORK			4096

/* Default decode memory budget of the process (bytes, all threads together). */
#define IMAGE_DECODE_MEMORY_DEFAULT	(1024ull << 20)

/* Bytes of a file that decide whether it looks like a JPEG (image_is_jpeg). */
#define IMAGE_MAGIC_LEN			64

/*
 * pdq_flags bit for image_pdq_*: decode JPEGs over 512 px with libjpeg's DCT scaling (the
 * largest of 1/2, 1/4, 1/8 that keeps both sides >= 256).  About 40% faster on 12 MP photos,
 * but not bit-exact with the reference: measured distance to the exact hash mean 2.7, max 6
 * (dihedral max 10) on 35 images; tests/bench/10-hash.sh prints it per image.  Off by default.
 */
#define IMAGE_SCALED_DECODE	0x100

/*
 * pdq_flags bit for image_pdq_*: always decode the whole image with libjpeg.  By default
 * baseline JPEGs of 2 MP and more go through jpegfast.c, which reconstructs only the 512x512
 * pixels the hash samples and gives the identical result; this flag is for tests and benchmarks.
 */
#define IMAGE_FULL_DECODE	0x200

/* pdq_flags bit for tests: the sparse path from 513 px up (default: from 2 megapixels). */
#define IMAGE_SPARSE_ANY	0x400

/*
 * 1 if buf starts like a JPEG the way libjpeg reads one: FF D8, then junk bytes libjpeg would
 * skip with a warning, then a marker (FF, any FF fill, a byte other than 00) within the
 * first IMAGE_MAGIC_LEN bytes.  Else 0.
 */
int image_is_jpeg(const void *buf, size_t len);

/*
 * 1 if buf starts like a BMP: "BM" and a DIB header size ImageMagick reads (12, 40, 52, 56,
 * 64, 78, 108, 124), which keeps text that happens to start with "BM" out.
 */
int image_is_bmp(const void *buf, size_t len);

/*
 * What the first bytes of a file say it is (0: nothing hashgate decodes).  A file of a kind
 * here that yields no PDQ is a scan error (pdq_error), never "no PDQ" in silence.
 */
#define IMAGE_JPEG	1
#define IMAGE_PNG	2
#define IMAGE_WEBP	3	/* RIFF....WEBP */
#define IMAGE_GIF	4	/* GIF87 / GIF89 */
#define IMAGE_BMP	5	/* image_is_bmp */
int image_kind(const void *buf, size_t len);

/*
 * PDQ of a JPEG in memory.  max_work 0 means IMAGE_MAX_WORK_DEFAULT.
 * Errors (out->reason says more): -EINVAL not a JPEG / corrupt before any pixel decoded,
 * -ERANGE over the work bound, -E2BIG more memory than the whole decode budget, -ENOTSUP a
 * JPEG colour space we cannot hash, -ENOMEM.  A decode that fails after some rows gives the
 * hash of the decoded rows over black, as the reference (ImageMagick) does, with
 * out->warning set.
 */
int image_pdq_jpeg(const void *buf, size_t len, unsigned pdq_flags, uint64_t max_work,
		   struct pdq_result *out);

/*
 * PDQ of any image image_kind recognises, in memory.  The other formats follow what the
 * reference's ImageMagick gives it: alpha and tRNS ignored, palette as RGB, 16-bit samples as
 * their low byte, the first frame of an animated GIF or WebP; README.md ("PDQ of other
 * formats") lists what is decoded and what is an error.  Errors as for image_pdq_jpeg; the
 * decoders other than libjpeg's give no partial image for damaged data, except PNG (rows
 * decoded before the damage, the rest black, as for JPEG).
 */
int image_pdq_buf(const void *buf, size_t len, unsigned pdq_flags, uint64_t max_work,
		  struct pdq_result *out);

/*
 * Same as image_pdq_buf, for the file fd (from offset 0).  Files up to mem_bytes (0: no limit) are read
 * into memory (and may use the fast path); larger ones are decoded streaming from the file,
 * so file size never decides whether a JPEG gets a PDQ.  Also -EIO/-errno for read errors.
 */
int image_pdq_fd(int fd, uint64_t mem_bytes, unsigned pdq_flags, uint64_t max_work,
		 struct pdq_result *out);

/* A short English reason for an image_pdq_* error code (when out->reason is empty). */
const char *image_strerror(int rc);

/*
 * The process-wide decode memory budget in bytes (0 restores the default).  Decodes already
 * holding a reservation keep it; waiters are re-checked against the new budget.
 */
void image_set_decode_memory(uint64_t bytes);

struct image_mem_stats {
	uint64_t budget;	/* current budget */
	uint64_t in_use;	/* reserved now */
	uint64_t peak;		/* highest in_use since start (or the last reset) */
	uint64_t waits;		/* decodes that had to wait for memory */
	uint64_t refused;	/* images over the whole budget */
};
void image_decode_memory_stats(struct image_mem_stats *st, int reset_peak);

#endif
