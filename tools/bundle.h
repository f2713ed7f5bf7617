/*
 * bundle.h - the encrypted evidence bundle of `hashgate quarantine export`: a POSIX ustar
 * archive streamed straight into an OpenSSL CMS envelope (DER/BER), so no plaintext content
 * reaches the disk.  Any hotline can open it with stock OpenSSL (`openssl cms -decrypt`).
 *
 * Recipients: X.509 certificates (RSA: key transport, EC: key agreement) and/or a passphrase
 * (PWRI: PBKDF2, BUNDLE_PBKDF2_ITER iterations, AES key wrap).  With certificates only the
 * content is AES-256-GCM (AuthEnvelopedData); with a passphrase AES-256-CBC (EnvelopedData:
 * OpenSSL 3.0 cannot put a password recipient on AuthEnvelopedData), and the digests of the
 * signed manifest inside vouch for the content's integrity.
 * One struct bundle per output file, used by one thread.  Entries are written in order: each
 * declares its size first and must get exactly that many bytes.
 */
#ifndef TOOLS_BUNDLE_H
#define TOOLS_BUNDLE_H

#include <stddef.h>
#include <stdint.h>

#define BUNDLE_PBKDF2_ITER	600000

struct bundle {
	void *out;			/* BIO on the output fd */
	void *cms_bio;			/* streaming CMS filter on top of it */
	void *cms;			/* CMS_ContentInfo */
	uint64_t left;			/* bytes the current entry still expects */
	uint64_t pad;			/* zero bytes that end it */
	const char *cipher;		/* "aes-256-gcm" or "aes-256-cbc" */
};

/*
 * Start the envelope on out_fd for ncerts PEM certificate files and/or pass (NULL: none).
 * 0, or -errno with the reason (naming the file) in err.
 */
int bundle_begin(struct bundle *b, int out_fd, const char *const *certs, size_t ncerts,
		 const char *pass, size_t passlen, char *err, size_t errlen);
/* A regular file entry name (at most 99 bytes) of size bytes, mode 0600. */
int bundle_entry(struct bundle *b, const char *name, uint64_t size, int64_t mtime);
/* Content of the current entry (a qstore_sink). */
int bundle_write(void *b, const void *buf, size_t len);
/* A whole entry from memory. */
int bundle_add(struct bundle *b, const char *name, const void *data, size_t len, int64_t mtime);
/* End the archive and the envelope; 0 when every byte reached out_fd. */
int bundle_finish(struct bundle *b);
/* Free everything (after bundle_finish, or to abandon a bundle). */
void bundle_release(struct bundle *b);

#endif
