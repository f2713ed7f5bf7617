/*
 * hostkey.c - the host's Ed25519 signing key (see hostkey.h).
 *
 * Created on first use: generated in memory, written to PATH.tmp-PID (O_EXCL, 0600), fsynced
 * and link()ed to PATH, which fails if another process made the key meanwhile; then PATH is
 * loaded either way, so concurrent first uses agree on one key and a crash never leaves a
 * half-written key under its name.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/sha.h>

#include "hashdb/hash.h"
#include "hashdb/hostkey.h"

static int fail(char *err, size_t errlen, int r, const char *path, const char *why)
{
	if (err && errlen)
		snprintf(err, errlen, "host key %s: %s", path, why);
	return r;
}

static int create_key(const char *path, char *err, size_t errlen)
{
	EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
	EVP_PKEY *pkey = NULL;
	char *tmp = NULL;
	FILE *f = NULL;
	int fd = -1, r = -EIO;

	if (!pc || EVP_PKEY_keygen_init(pc) != 1 || EVP_PKEY_keygen(pc, &pkey) != 1) {
		r = fail(err, errlen, -EIO, path, "cannot generate an Ed25519 key");
		goto out;
	}
	if (asprintf(&tmp, "%s.tmp-%ld", path, (long)getpid()) < 0) {
		tmp = NULL;
		r = -ENOMEM;
		goto out;
	}
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = fail(err, errlen, -errno, path, strerror(errno));
		goto out;
	}
	f = fdopen(fd, "w");
	if (!f) {
		r = fail(err, errlen, -errno, path, strerror(errno));
		close(fd);
		goto out_unlink;
	}
	if (PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL) != 1 || fflush(f) != 0 ||
	    fsync(fileno(f)) < 0) {
		r = fail(err, errlen, -EIO, path, "cannot write the new key");
		goto out_unlink;
	}
	/* link, not rename: a key another process made meanwhile stays the key. */
	if (link(tmp, path) < 0 && errno != EEXIST) {
		r = fail(err, errlen, -errno, path, strerror(errno));
		goto out_unlink;
	}
	r = 0;
out_unlink:
	unlink(tmp);
out:
	if (f)
		fclose(f);
	free(tmp);
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(pc);
	return r;
}

int hostkey_load(struct hostkey *k, const char *path, bool create, char *err, size_t errlen)
{
	unsigned char *der = NULL, md[SHA256_DIGEST_LENGTH];
	struct stat st;
	FILE *f;
	int fd, len, r;

	memset(k, 0, sizeof(*k));
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && create) {
		r = create_key(path, err, errlen);
		if (r < 0)
			return r;
		fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0)
		return fail(err, errlen, -errno, path, errno == ENOENT ? "does not exist yet "
			    "(it is made on first use by root)" : strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		return fail(err, errlen, -EINVAL, path, "not a regular file");
	}
	if (st.st_mode & 077) {
		close(fd);
		return fail(err, errlen, -EPERM, path, "is accessible by other users (run: chmod "
			    "600 on it)");
	}
	f = fdopen(fd, "r");
	if (!f) {
		close(fd);
		return -ENOMEM;
	}
	k->pkey = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (!k->pkey || EVP_PKEY_get_id(k->pkey) != EVP_PKEY_ED25519) {
		hostkey_release(k);
		return fail(err, errlen, -EINVAL, path, "not an Ed25519 private key in PEM");
	}
	len = i2d_PUBKEY(k->pkey, &der);
	if (len <= 0) {
		hostkey_release(k);
		return fail(err, errlen, -EIO, path, "cannot encode the public key");
	}
	SHA256(der, (size_t)len, md);
	OPENSSL_free(der);
	hex_encode(md, sizeof(md), k->fingerprint);
	return 0;
}

void hostkey_release(struct hostkey *k)
{
	EVP_PKEY_free(k->pkey);
	k->pkey = NULL;
}

int hostkey_sign(const struct hostkey *k, const void *msg, size_t len,
		 uint8_t sig[HOSTKEY_SIG_LEN])
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	size_t siglen = HOSTKEY_SIG_LEN;
	int r = -EIO;

	if (c && EVP_DigestSignInit(c, NULL, NULL, NULL, k->pkey) == 1 &&
	    EVP_DigestSign(c, sig, &siglen, msg, len) == 1 && siglen == HOSTKEY_SIG_LEN)
		r = 0;
	EVP_MD_CTX_free(c);
	return r;
}

int hostkey_public_pem(const struct hostkey *k, char **out)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *data;
	long n;
	int r = -ENOMEM;

	*out = NULL;
	if (!b)
		return -ENOMEM;
	if (PEM_write_bio_PUBKEY(b, k->pkey) != 1) {
		r = -EIO;
		goto out;
	}
	n = BIO_get_mem_data(b, &data);
	*out = malloc((size_t)n + 1);
	if (*out) {
		memcpy(*out, data, (size_t)n);
		(*out)[n] = '\0';
		r = 0;
	}
out:
	BIO_free(b);
	return r;
}
