/*
 * pdq.h - Meta's PDQ perceptual image hash (256 bits), bit-exact with the reference C++ CLI.
 *
 * Hashes are stored as 32 bytes in the order the 64-digit hex spells them (big-endian), so hex
 * conversion is plain and Hamming distance is popcount of XOR over any word size.  All
 * functions are pure and thread-safe; callers own every buffer they pass.
 */
#ifndef HASHDB_PDQ_H
#define HASHDB_PDQ_H

#include <stddef.h>
#include <stdint.h>

struct pdq_hash {
	uint8_t b[32];
};

/* The reference's dihedral order (--pdqdih-across). */
enum pdq_dihedral {
	PDQ_ORIG, PDQ_ROT90, PDQ_ROT180, PDQ_ROT270,
	PDQ_FLIPX, PDQ_FLIPY, PDQ_FLIPP, PDQ_FLIPM,
	PDQ_NDIH
};

struct pdq_result {
	struct pdq_hash hash[PDQ_NDIH];	/* [PDQ_ORIG] always; all 8 when ndih == 8 */
	int ndih;			/* 1 or 8 */
	int quality;			/* 0..100; below ~50 the hash is unreliable */
	int width, height;		/* decoded image size */
	int warning;			/* image_pdq_*: 1 if the decoder recovered from corrupt
					 * or truncated data (the hash is of what decoded) */
	char reason[96];		/* image_pdq_*: why it failed, or the first decoder
					 * warning; "" if none */
};

/* Flags for pdq_from_luma / image_pdq. */
#define PDQ_DIHEDRAL	0x1	/* also compute the 7 rotated/flipped variants */

/*
 * Hash a row-major float luma image (values 0..255).  Images under 5 px on a side give a zero
 * hash with quality 0, as the reference does.  Returns 0 or -ENOMEM/-EINVAL.
 */
int pdq_from_luma(const float *luma, int rows, int cols, unsigned flags,
		  struct pdq_result *out);

/*
 * The same without a copy or allocation: buf holds the luma in its first rows*cols floats
 * and has room for PDQ_SCRATCH_FLOATS(rows, cols) floats; its contents are destroyed.
 */
#define PDQ_SCRATCH_FLOATS(rows, cols)	(2 * (size_t)(rows) * (size_t)(cols) + (size_t)(cols))
int pdq_from_luma_scratch(float *buf, int rows, int cols, unsigned flags,
			  struct pdq_result *out);

int pdq_distance(const struct pdq_hash *a, const struct pdq_hash *b);
void pdq_to_hex(const struct pdq_hash *h, char out[65]);
int pdq_from_hex(const char *hex, struct pdq_hash *h);	/* 0 or -EINVAL */
const char *pdq_dihedral_name(enum pdq_dihedral d);	/* "orig", "rot90", ... */

#endif
