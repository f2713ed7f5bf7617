/*
 * bundle.c - ustar written into a streaming CMS envelope (see bundle.h).
 *
 * ustar: a 512-byte header per entry (octal fields, checksum over the header with the checksum
 * field as spaces), the content padded to 512, and two zero blocks at the end.  Sizes of
 * 8 GiB and more use the base-256 form GNU tar and bsdtar read.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/cms.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "tools/bundle.h"

static int seterr(char *err, size_t errlen, int r, const char *what, const char *why)
{
	unsigned long e = ERR_peek_last_error();
	char buf[256] = "";

	if (e)
		ERR_error_string_n(e, buf, sizeof(buf));
	ERR_clear_error();
	if (err && errlen)
		snprintf(err, errlen, "%s: %s%s%s", what, why, *buf ? ": " : "", buf);
	return r;
}

int bundle_begin(struct bundle *b, int out_fd, const char *const *certs, size_t ncerts,
		 const char *pass, size_t passlen, char *err, size_t errlen)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	CMS_ContentInfo *cms = NULL;
	unsigned char *pw = NULL;
	int r = -ENOMEM;

	memset(b, 0, sizeof(*b));
	if (!sk)
		goto out;
	for (size_t i = 0; i < ncerts; i++) {
		FILE *f = fopen(certs[i], "re");
		X509 *x;

		if (!f) {
			r = -errno;
			snprintf(err, errlen, "--recipient %s: %s", certs[i], strerror(errno));
			goto out;
		}
		x = PEM_read_X509(f, NULL, NULL, NULL);
		fclose(f);
		if (!x) {
			r = seterr(err, errlen, -EINVAL, certs[i], "not a PEM X.509 certificate");
			goto out;
		}
		if (!sk_X509_push(sk, x)) {
			X509_free(x);
			goto out;
		}
	}
	b->cipher = pass ? "aes-256-cbc" : "aes-256-gcm";
	cms = CMS_encrypt(sk, NULL, pass ? EVP_aes_256_cbc() : EVP_aes_256_gcm(),
			  CMS_BINARY | CMS_STREAM | CMS_PARTIAL);
	if (!cms) {
		r = seterr(err, errlen, -EINVAL, ncerts ? "--recipient" : "bundle",
			   "cannot encrypt to this certificate (RSA or EC keys only)");
		goto out;
	}
	if (pass) {
		pw = OPENSSL_memdup(pass, passlen);
		if (!pw)
			goto out;
		/* add0: the envelope owns pw from here on (and clears it when freed). */
		if (!CMS_add0_recipient_password(cms, BUNDLE_PBKDF2_ITER, NID_undef, NID_undef, pw,
						 (ssize_t)passlen, NULL)) {
			OPENSSL_clear_free(pw, passlen);
			r = seterr(err, errlen, -EINVAL, "--passphrase-file", "cannot add it");
			goto out;
		}
	}
	b->out = BIO_new_fd(out_fd, BIO_NOCLOSE);
	if (!b->out)
		goto out;
	b->cms_bio = BIO_new_CMS(b->out, cms);
	if (!b->cms_bio) {
		r = seterr(err, errlen, -EIO, "bundle", "cannot start the CMS envelope");
		goto out;
	}
	b->cms = cms;
	cms = NULL;
	r = 0;
out:
	CMS_ContentInfo_free(cms);
	sk_X509_pop_free(sk, X509_free);
	if (r < 0)
		bundle_release(b);
	return r;
}

static int put(struct bundle *b, const void *buf, size_t len)
{
	while (len) {
		int n = len > (1 << 20) ? (1 << 20) : (int)len;
		int w = BIO_write(b->cms_bio, buf, n);

		if (w <= 0)
			return -EIO;
		buf = (const char *)buf + w;
		len -= (size_t)w;
	}
	return 0;
}

static void octal(char *field, size_t width, uint64_t v)
{
	/* width-1 digits and a NUL; larger values: base-256 (first byte 0x80). */
	if (width < 12 || v < ((uint64_t)1 << (3 * (width - 1)))) {
		snprintf(field, width, "%0*llo", (int)width - 1, (unsigned long long)v);
		return;
	}
	memset(field, 0, width);
	field[0] = (char)0x80;
	for (size_t i = width - 1; i > 0 && v; i--, v >>= 8)
		field[i] = (char)(v & 0xff);
}

int bundle_entry(struct bundle *b, const char *name, uint64_t size, int64_t mtime)
{
	char h[512];
	unsigned sum = 0;
	int r;

	if (b->left)
		return -EINVAL;
	if (b->pad) {
		static const char zero[512];

		r = put(b, zero, b->pad);
		if (r < 0)
			return r;
		b->pad = 0;
	}
	if (strlen(name) > 99)
		return -ENAMETOOLONG;
	memset(h, 0, sizeof(h));
	memcpy(h, name, strlen(name) + 1);
	octal(h + 100, 8, 0600);
	octal(h + 108, 8, 0);
	octal(h + 116, 8, 0);
	octal(h + 124, 12, size);
	octal(h + 136, 12, mtime > 0 ? (uint64_t)mtime : 0);
	memset(h + 148, ' ', 8);
	h[156] = '0';
	memcpy(h + 257, "ustar", 6);		/* magic "ustar\0", version "00" */
	h[263] = '0';
	h[264] = '0';
	memcpy(h + 265, "root", 5);
	memcpy(h + 297, "root", 5);
	for (size_t i = 0; i < sizeof(h); i++)
		sum += (unsigned char)h[i];
	snprintf(h + 148, 8, "%06o", sum);
	r = put(b, h, sizeof(h));
	if (r < 0)
		return r;
	b->left = size;
	b->pad = (512 - size % 512) % 512;
	return 0;
}

int bundle_write(void *vb, const void *buf, size_t len)
{
	struct bundle *b = vb;

	if (len > b->left)
		return -EINVAL;		/* more than the header declared */
	b->left -= len;
	return put(b, buf, len);
}

int bundle_add(struct bundle *b, const char *name, const void *data, size_t len, int64_t mtime)
{
	int r = bundle_entry(b, name, len, mtime);

	return r < 0 ? r : bundle_write(b, data, len);
}

int bundle_finish(struct bundle *b)
{
	static const char zero[1024];
	int r;

	if (b->left)
		return -EINVAL;
	r = put(b, zero, b->pad + sizeof(zero));
	if (r < 0)
		return r;
	b->pad = 0;
	return BIO_flush((BIO *)b->cms_bio) == 1 ? 0 : -EIO;
}

void bundle_release(struct bundle *b)
{
	BIO *bio = b->cms_bio;

	/* The filter chain ends at b->out; free it link by link down to there. */
	while (bio && bio != b->out) {
		BIO *next = BIO_pop(bio);

		BIO_free(bio);
		bio = next;
	}
	BIO_free(b->out);
	CMS_ContentInfo_free(b->cms);
	memset(b, 0, sizeof(*b));
}
