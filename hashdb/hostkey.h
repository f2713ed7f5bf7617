/*
 * hostkey.h - the host's signing key: an Ed25519 key made on first use and kept as PKCS#8 PEM
 * in a root-only file (0600; one readable or writable by others is refused), used to sign the
 * manifest of evidence bundles so a recipient can tell they came from this host unaltered.
 * Its fingerprint is the SHA-256 of the public key's DER (SubjectPublicKeyInfo), which
 * `openssl pkey -pubin -outform DER | sha256sum` reproduces.
 * A struct hostkey is used by one thread at a time.
 */
#ifndef HASHDB_HOSTKEY_H
#define HASHDB_HOSTKEY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HOSTKEY_SIG_LEN	64

struct evp_pkey_st;

struct hostkey {
	struct evp_pkey_st *pkey;
	char fingerprint[65];		/* hex SHA-256 of the public key's DER */
};

/*
 * Load the key at path; with create, make it first when the file does not exist (atomically:
 * two first uses end up with the same key).  0, or -errno with the reason in err:
 * -ENOENT (missing, not created), -EPERM (others may read or write it), -EINVAL (not an
 * Ed25519 private key).
 */
int hostkey_load(struct hostkey *k, const char *path, bool create, char *err, size_t errlen);
void hostkey_release(struct hostkey *k);

/* Ed25519 signature of msg (PureEdDSA: `openssl pkeyutl -verify -rawin` checks it). */
int hostkey_sign(const struct hostkey *k, const void *msg, size_t len,
		 uint8_t sig[HOSTKEY_SIG_LEN]);

/* The public key as PEM ("-----BEGIN PUBLIC KEY-----..."), malloc'd into *out. */
int hostkey_public_pem(const struct hostkey *k, char **out);

#endif
