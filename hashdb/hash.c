/*
 * hash.c - streaming MD5/SHA-1/SHA-256 (fused SHA-NI pass or OpenSSL EVP), hash_fd, and hex
 * helpers.
 *
 * Invariants: with EVP, h->ctx[a] is non-NULL exactly for the exact algorithms in h->mask
 * while the hasher is live; with the fused implementation (hashfused.c) h->fused holds those
 * algorithms and every ctx is NULL.  After final or release every ctx is NULL and h->fused 0,
 * so release is idempotent and update/final on a spent hasher touch nothing.
 * h->size counts every byte fed, in 64 bits (uploads over 4 GiB are ordinary).
 * Files are read extent by extent (SEEK_DATA/SEEK_HOLE): holes are fed from a zero buffer
 * instead of being read, which gives the same digests as the bytes written out densely.
 * With OpenSSL 3 the digests are fetched once (EVP_MD_fetch, kept for the process's lifetime):
 * EVP_md5() and friends made every EVP_DigestInit_ex fetch again, a visible share of the CPU
 * a small upload costs.  Thread-safe: the fetch runs under pthread_once.
 * Implementation choice (hash_impl_*): read from HASHGATE_HASH_IMPL once, kept in an atomic;
 * each hasher keeps the one it started with.  The fused path computes an algorithm only if
 * OpenSSL would (probed at the first fused init): under a FIPS-only configuration MD5 stays
 * -ENOTSUP whatever the CPU, so a host's behaviour does not depend on the CPU it runs on.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "hashdb/hash.h"

/* Large enough to amortise syscalls and EVP call overhead, small enough for a thread stack
 * budget; it is heap-allocated anyway. */
#define HASH_FD_CHUNK	(1u << 20)
/* Holes are fed from a zero buffer this large: it stays in the L2 cache. */
#define HASH_ZERO_CHUNK	(64u << 10)
#define HASH_OFF_MAX	((off_t)INT64_MAX)	/* off_t is 64 bits: _FILE_OFFSET_BITS */

static const struct {
	const char *name;
	size_t len;
} algos[HASH_NALGOS] = {
	[HASH_MD5] = { "md5", 16 },
	[HASH_SHA1] = { "sha1", 20 },
	[HASH_SHA256] = { "sha256", 32 },
	[HASH_PDQ] = { "pdq", 32 },
};

size_t hash_algo_len(enum hash_algo algo)
{
	if ((unsigned)algo >= HASH_NALGOS)
		return 0;
	return algos[algo].len;
}

const char *hash_algo_name(enum hash_algo algo)
{
	if ((unsigned)algo >= HASH_NALGOS)
		return NULL;
	return algos[algo].name;
}

int hash_algo_parse(const char *name)
{
	int a;

	if (!name)
		return -EINVAL;
	for (a = 0; a < HASH_NALGOS; a++)
		if (strcasecmp(name, algos[a].name) == 0)
			return a;
	if (strcasecmp(name, "sha-1") == 0)
		return HASH_SHA1;
	if (strcasecmp(name, "sha-256") == 0)
		return HASH_SHA256;
	return -EINVAL;
}

const uint8_t *digests_get(const struct digests *d, enum hash_algo algo)
{
	if ((unsigned)algo >= HASH_NALGOS || !(d->mask & HASH_BIT(algo)))
		return NULL;
	switch (algo) {
	case HASH_MD5:
		return d->md5;
	case HASH_SHA1:
		return d->sha1;
	case HASH_SHA256:
		return d->sha256;
	default:
		return NULL;
	}
}

#if OPENSSL_VERSION_NUMBER >= 0x30000000L
static EVP_MD *fetched[3];
static pthread_once_t fetch_once = PTHREAD_ONCE_INIT;

static void fetch_all(void)
{
	fetched[0] = EVP_MD_fetch(NULL, "MD5", NULL);
	fetched[1] = EVP_MD_fetch(NULL, "SHA1", NULL);
	fetched[2] = EVP_MD_fetch(NULL, "SHA256", NULL);
}
#endif

static const EVP_MD *evp_for(int algo)
{
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
	int i = algo == HASH_MD5 ? 0 : algo == HASH_SHA1 ? 1 : algo == HASH_SHA256 ? 2 : -1;

	pthread_once(&fetch_once, fetch_all);
	if (i >= 0 && fetched[i])
		return fetched[i];	/* else (provider missing?) the legacy path below */
#endif
	switch (algo) {
	case HASH_MD5:
		return EVP_md5();
	case HASH_SHA1:
		return EVP_sha1();
	case HASH_SHA256:
		return EVP_sha256();
	default:
		return NULL;
	}
}

enum { IMPL_AUTO, IMPL_EVP };

static atomic_int impl_choice = IMPL_AUTO;
static bool impl_env_bad;
static bool fused_cpu;
static pthread_once_t impl_once = PTHREAD_ONCE_INIT;

static int impl_parse(const char *choice)
{
	if (strcmp(choice, "auto") == 0)
		return IMPL_AUTO;
	if (strcmp(choice, "evp") == 0)
		return IMPL_EVP;
	return -EINVAL;
}

static void impl_setup(void)
{
	const char *env = getenv("HASHGATE_HASH_IMPL");
	int c = env && *env ? impl_parse(env) : IMPL_AUTO;

	fused_cpu = hashfused_supported();
	impl_env_bad = c < 0;
	atomic_store(&impl_choice, c < 0 ? IMPL_AUTO : c);
}

static bool use_fused(void)
{
	pthread_once(&impl_once, impl_setup);
	return fused_cpu && atomic_load(&impl_choice) == IMPL_AUTO;
}

const char *hash_impl_name(void)
{
	return use_fused() ? "sha-ni" : "evp";
}

int hash_impl_set(const char *choice)
{
	int c = choice ? impl_parse(choice) : -EINVAL;

	if (c < 0)
		return c;
	pthread_once(&impl_once, impl_setup);	/* so the environment cannot override it later */
	atomic_store(&impl_choice, c);
	return 0;
}

int hash_impl_env_check(void)
{
	pthread_once(&impl_once, impl_setup);
	return impl_env_bad ? -EINVAL : 0;
}

/* HASH_BIT()s of the algorithms OpenSSL agrees to compute here (all three, short of a
 * FIPS-only configuration), | ALLOWED_KNOWN once probed: the fused path computes no more than
 * that.  Probed at the first fused hasher_init; threads racing there store the same value. */
#define ALLOWED_KNOWN	0x100u
static atomic_uint evp_allowed;

static int fused_init(struct hasher *h, unsigned mask)
{
	unsigned allowed = atomic_load(&evp_allowed);

	if (!allowed) {
		EVP_MD_CTX *c = EVP_MD_CTX_new();
		int a;

		if (!c)
			return -ENOMEM;	/* not cached: the next init probes again */
		allowed = ALLOWED_KNOWN;
		for (a = 0; a < 3; a++) {
			if (EVP_DigestInit_ex(c, evp_for(a), NULL) == 1)
				allowed |= HASH_BIT(a);
			EVP_MD_CTX_reset(c);
		}
		EVP_MD_CTX_free(c);
		atomic_store(&evp_allowed, allowed);
	}
	if (mask & ~allowed)
		return -ENOTSUP;
	hashfused_init(&h->f, mask);
	h->fused = mask;
	return 0;
}

int hasher_init(struct hasher *h, unsigned mask)
{
	int a, r;

	memset(h, 0, sizeof(*h));
	/* A caller may pass the database's whole mask: PDQ is not a stream hash and is simply
	 * not computed here (digests.mask tells what was); unknown bits are a caller bug. */
	if (mask & ~(HASH_EXACT_MASK | HASH_BIT(HASH_PDQ)))
		return -EINVAL;
	mask &= HASH_EXACT_MASK;
	h->mask = mask;
	if (mask && use_fused())
		return fused_init(h, mask);
	for (a = 0; a < 3; a++) {
		EVP_MD_CTX *c;

		if (!(mask & HASH_BIT(a)))
			continue;
		c = EVP_MD_CTX_new();
		if (!c) {
			r = -ENOMEM;
			goto err_release;
		}
		h->ctx[a] = c;
		/* fails e.g. for MD5 under an OpenSSL FIPS-only configuration */
		if (EVP_DigestInit_ex(c, evp_for(a), NULL) != 1) {
			r = -ENOTSUP;
			goto err_release;
		}
	}
	return 0;

err_release:
	hasher_release(h);
	return r;
}

int hasher_update_part(struct hasher *h, unsigned mask, const void *buf, size_t len)
{
	int a;

	if (len == 0)
		return 0;
	if (h->fused) {
		hashfused_update(&h->f, mask & h->fused, buf, len);
		return 0;
	}
	for (a = 0; a < 3; a++) {
		if (!h->ctx[a] || !(mask & HASH_BIT(a)))
			continue;
		if (EVP_DigestUpdate(h->ctx[a], buf, len) != 1)
			return -EIO;
	}
	return 0;
}

int hasher_update(struct hasher *h, const void *buf, size_t len)
{
	int r = hasher_update_part(h, HASH_EXACT_MASK, buf, len);

	if (r == 0)
		h->size += len;
	return r;
}

int hasher_final(struct hasher *h, struct digests *out)
{
	static const size_t off[3] = {
		offsetof(struct digests, md5),
		offsetof(struct digests, sha1),
		offsetof(struct digests, sha256),
	};
	int a, r = 0;

	memset(out, 0, sizeof(*out));
	out->size = h->size;
	if (h->fused) {
		unsigned m = h->fused;

		hashfused_final(&h->f, m, m & HASH_BIT(HASH_MD5) ? out->md5 : NULL,
				m & HASH_BIT(HASH_SHA1) ? out->sha1 : NULL,
				m & HASH_BIT(HASH_SHA256) ? out->sha256 : NULL);
		out->mask = m;
		hasher_release(h);
		return 0;
	}
	for (a = 0; a < 3; a++) {
		unsigned int n = 0;

		if (!h->ctx[a])
			continue;
		if (EVP_DigestFinal_ex(h->ctx[a], (unsigned char *)out + off[a], &n) != 1 ||
		    n != algos[a].len) {
			r = -EIO;
			continue;
		}
		out->mask |= HASH_BIT(a);
	}
	hasher_release(h);
	return r;
}

void hasher_release(struct hasher *h)
{
	int a;

	h->fused = 0;
	for (a = 0; a < 3; a++) {
		EVP_MD_CTX_free(h->ctx[a]);
		h->ctx[a] = NULL;
	}
}

int hasher_copy(struct hasher *dst, const struct hasher *src)
{
	int a;

	if (src->fused) {
		memcpy(dst, src, sizeof(*dst));	/* no pointers in the fused state */
		return 0;
	}
	memset(dst, 0, sizeof(*dst));
	dst->mask = src->mask;
	dst->size = src->size;
	for (a = 0; a < 3; a++) {
		if (!src->ctx[a])
			continue;
		dst->ctx[a] = EVP_MD_CTX_new();
		if (!dst->ctx[a] || EVP_MD_CTX_copy_ex(dst->ctx[a], src->ctx[a]) != 1) {
			hasher_release(dst);
			return -ENOMEM;
		}
	}
	return 0;
}

/* Never written: holes are hashed from here (in .bss, so it costs no page until read). */
static const uint8_t zeros[HASH_ZERO_CHUNK];

static int update_zeros(struct hasher *h, uint64_t n)
{
	while (n) {
		size_t k = n > sizeof(zeros) ? sizeof(zeros) : (size_t)n;
		int r = hasher_update(h, zeros, k);

		if (r < 0)
			return r;
		n -= k;
	}
	return 0;
}

/* Read [*pos, end) (end may be past EOF) into h; *eof set at a short read. */
static int update_read(struct hasher *h, int fd, uint8_t *buf, size_t buflen, off_t *pos,
		       off_t end, bool *eof)
{
	while (*pos < end) {
		size_t want = end - *pos > (off_t)buflen ? buflen : (size_t)(end - *pos);
		ssize_t n = pread(fd, buf, want, *pos);
		int r;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) {
			*eof = true;
			return 0;
		}
		r = hasher_update(h, buf, (size_t)n);
		if (r < 0)
			return r;
		*pos += n;
	}
	return 0;
}

int hasher_update_fd(struct hasher *h, int fd, uint64_t from, void *buf, size_t buflen)
{
	off_t pos = (off_t)from, saved = lseek(fd, 0, SEEK_CUR);
	bool eof = false, sparse = true;
	int r = 0;

	while (!eof && r == 0) {
		off_t hole = HASH_OFF_MAX;

		if (sparse) {
			off_t data = lseek(fd, pos, SEEK_DATA);

			if (data < 0 && errno == ENXIO) {
				/* Nothing but a hole up to EOF (or pos is at EOF). */
				struct stat st;

				if (fstat(fd, &st) < 0)
					r = -errno;
				else if (st.st_size > pos)
					r = update_zeros(h, st.st_size - pos);
				break;
			}
			if (data < 0) {
				sparse = false;	/* no SEEK_DATA here: read everything */
			} else {
				r = update_zeros(h, data - pos);
				pos = data;
				hole = lseek(fd, pos, SEEK_HOLE);
				if (hole < 0 || hole <= pos)
					hole = HASH_OFF_MAX;
			}
		}
		if (r == 0)
			r = update_read(h, fd, buf, buflen, &pos, hole, &eof);
	}
	if (saved >= 0)
		lseek(fd, saved, SEEK_SET);
	return r;
}

int hash_fd(int fd, unsigned mask, struct digests *out)
{
	struct hasher h;
	uint8_t *buf;
	int r;

	buf = malloc(HASH_FD_CHUNK);
	if (!buf)
		return -ENOMEM;
	r = hasher_init(&h, mask);
	if (r < 0)
		goto out_buf;
	r = hasher_update_fd(&h, fd, 0, buf, HASH_FD_CHUNK);
	if (r == 0)
		r = hasher_final(&h, out);
	hasher_release(&h);
out_buf:
	free(buf);
	return r;
}

void hex_encode(const uint8_t *in, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < n; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int hex_decode(const char *in, size_t hexlen, uint8_t *out, size_t n)
{
	size_t i;

	if (!in || hexlen != 2 * n)
		return -EINVAL;
	/* Validate everything first so a bad string leaves out untouched. */
	for (i = 0; i < hexlen; i++)
		if (hexval(in[i]) < 0)
			return -EINVAL;
	for (i = 0; i < n; i++) {
		int hi = hexval(in[2 * i]), lo = hexval(in[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}
