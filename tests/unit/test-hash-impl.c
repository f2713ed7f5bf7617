/*
 * test-hash-impl.c - struct hasher's two implementations (the fused SHA-NI pass and OpenSSL
 * EVP) against OpenSSL's one-shot EVP_Digest: every length 0..300 and random lengths up to
 * 3 MiB, fed in random pieces (1-byte pieces, pieces straddling block boundaries, big ones),
 * every subset of the three algorithms, copy-then-diverge, two threads feeding disjoint masks
 * of one hasher (fs/hashq.c's MD5 lane), algorithms fed different amounts (their blocks no
 * longer line up), and the HASHGATE_HASH_IMPL switch (children started with it set; the
 * daemon refusing a bad value).  The fused suite is skipped on CPUs without SHA-NI.
 *
 * Every expected digest is computed by OpenSSL from the same bytes in this run.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "hashdb/hash.h"
#include "tests/unit/tap.h"

#define BIG	(3u << 20)

static uint8_t *data;		/* BIG + 4096 random bytes */

static const EVP_MD *md_of(int a)
{
	return a == HASH_MD5 ? EVP_md5() : a == HASH_SHA1 ? EVP_sha1() : EVP_sha256();
}

/* d holds OpenSSL's digests of buf for the algorithms of mask (and nothing else)? */
static int matches(const struct digests *d, unsigned mask, const void *buf, size_t len)
{
	int a;

	if (d->mask != mask || d->size != len)
		return 0;
	for (a = 0; a < 3; a++) {
		uint8_t want[EVP_MAX_MD_SIZE];
		unsigned n = 0;

		if (!(mask & HASH_BIT(a)))
			continue;
		if (EVP_Digest(buf, len, want, &n, md_of(a), NULL) != 1 || n != hash_algo_len(a) ||
		    memcmp(digests_get(d, a), want, n) != 0)
			return 0;
	}
	return 1;
}

/* Random piece size in one of several styles: 1 byte, around a block, big. */
static size_t piece(int style, size_t left)
{
	size_t n;

	switch (style) {
	case 0: n = 1; break;
	case 1: n = (size_t)(rand() % 130); break;		/* 0..129: straddles blocks */
	case 2: n = 64 * (size_t)(rand() % 4) + (size_t)(rand() % 3) - 1; break;
	default: n = (size_t)(rand() % 70000); break;
	}
	if (n > left)
		n = left;
	return n;
}

/* Hash buf in pieces of style with mask; 0 when it matches OpenSSL. */
static int check_pieces(unsigned mask, const uint8_t *buf, size_t len, int style)
{
	struct hasher h;
	struct digests d;
	size_t pos = 0;

	if (hasher_init(&h, mask) < 0)
		return -1;
	while (pos < len) {
		size_t n = piece(style, len - pos);

		if (hasher_update(&h, buf + pos, n) < 0)
			break;
		pos += n;
	}
	if (pos != len || hasher_final(&h, &d) < 0) {
		hasher_release(&h);
		return -1;
	}
	hasher_release(&h);
	return matches(&d, mask, buf, len) ? 0 : -1;
}

static void test_lengths(const char *impl)
{
	unsigned mask;
	size_t len;
	int bad = 0, style;

	for (mask = 1; mask <= HASH_EXACT_MASK; mask++)
		for (len = 0; len <= 300; len++)
			for (style = 0; style < 3; style++)
				if (check_pieces(mask, data + len % 7, len, style) < 0) {
					if (bad++ < 5)
						diag("%s: mask %u length %zu style %d differs", impl,
						     mask, len, style);
				}
	is_int(bad, 0, "%s: lengths 0..300, masks 1..7, 1-byte/straddling/block pieces", impl);

	bad = 0;
	for (mask = 1; mask <= HASH_EXACT_MASK; mask++)
		for (style = 0; style < 4; style++) {
			size_t n = style == 0 ? (size_t)(rand() % 20000) : (size_t)rand() % BIG;

			if (check_pieces(mask, data + rand() % 4096, n, style) < 0 && bad++ < 5)
				diag("%s: mask %u length %zu style %d differs", impl, mask, n, style);
		}
	is_int(bad, 0, "%s: random lengths up to 3 MiB, every mask, every piece style", impl);
}

/* A prefix, then the hasher and its copy each fed a different suffix. */
static void test_copy(const char *impl)
{
	int bad = 0, i;

	for (i = 0; i < 40; i++) {
		size_t pre = (size_t)(rand() % (i < 20 ? 200 : 200000));
		size_t sa = (size_t)(rand() % 5000), sb = (size_t)(rand() % 5000);
		unsigned mask = 1 + (unsigned)(rand() % 7);
		uint8_t *a = malloc(pre + sa), *b = malloc(pre + sb);
		struct hasher h, c;
		struct digests da, db;

		memcpy(a, data, pre);
		memcpy(a + pre, data + 100000, sa);
		memcpy(b, data, pre);
		memcpy(b + pre, data + 300000, sb);
		if (hasher_init(&h, mask) < 0 || hasher_update(&h, data, pre) < 0 ||
		    hasher_copy(&c, &h) < 0) {
			bad++;
			free(a);
			free(b);
			continue;
		}
		hasher_update(&h, a + pre, sa);
		hasher_update(&c, b + pre, sb);
		if (hasher_final(&h, &da) < 0 || !matches(&da, mask, a, pre + sa))
			bad++;
		hasher_release(&h);	/* the copy must not depend on the original */
		if (hasher_final(&c, &db) < 0 || !matches(&db, mask, b, pre + sb)) {
			diag("%s: copy after %zu bytes, mask %u differs", impl, pre, mask);
			bad++;
		}
		hasher_release(&c);
		free(a);
		free(b);
	}
	is_int(bad, 0, "%s: 40 copies diverging from the original, both match", impl);
}

struct part {
	struct hasher *h;
	unsigned mask;
	const uint8_t *buf;
	size_t len;
	int err;
};

static void *part_main(void *arg)
{
	struct part *p = arg;
	size_t pos = 0;

	while (pos < p->len && !p->err) {
		size_t n = piece(3, p->len - pos);

		p->err = hasher_update_part(p->h, p->mask, p->buf + pos, n);
		pos += n;
	}
	return NULL;
}

/* hashq.c's lane: MD5 in one thread, SHA-1 + SHA-256 in another, on the same hasher. */
static void test_threads(const char *impl)
{
	int bad = 0, i;

	for (i = 0; i < 20; i++) {
		size_t len = (size_t)rand() % BIG;
		struct part m = { .mask = HASH_BIT(HASH_MD5), .buf = data, .len = len };
		struct part s = { .mask = HASH_BIT(HASH_SHA1) | HASH_BIT(HASH_SHA256),
				  .buf = data, .len = len };
		struct hasher h;
		struct digests d;
		pthread_t t;

		if (hasher_init(&h, HASH_EXACT_MASK) < 0) {
			bad++;
			continue;
		}
		m.h = s.h = &h;
		if (pthread_create(&t, NULL, part_main, &m) != 0) {
			bad++;
			hasher_release(&h);
			continue;
		}
		part_main(&s);
		pthread_join(t, NULL);
		h.size += len;
		if (m.err || s.err || hasher_final(&h, &d) < 0 ||
		    !matches(&d, HASH_EXACT_MASK, data, len))
			bad++;
		hasher_release(&h);
	}
	is_int(bad, 0, "%s: two threads feeding disjoint masks of one hasher", impl);
}

/* MD5 fed X then Y, SHA-1 and SHA-256 Y then X: their block offsets differ in between. */
static void test_unaligned_parts(const char *impl)
{
	const unsigned sha = HASH_BIT(HASH_SHA1) | HASH_BIT(HASH_SHA256);
	int bad = 0, i;

	for (i = 0; i < 60; i++) {
		size_t x = (size_t)(rand() % 300), y = (size_t)(rand() % (i < 30 ? 300 : 100000));
		uint8_t *xy = malloc(x + y), *yx = malloc(x + y);
		struct hasher h;
		struct digests d;

		memcpy(xy, data, x);
		memcpy(xy + x, data + 5000, y);
		memcpy(yx, data + 5000, y);
		memcpy(yx + y, data, x);
		if (hasher_init(&h, HASH_EXACT_MASK) < 0 ||
		    hasher_update_part(&h, HASH_BIT(HASH_MD5), xy, x) < 0 ||
		    hasher_update(&h, data + 5000, y) < 0 ||
		    hasher_update_part(&h, sha, data, x) < 0) {
			bad++;
		} else {
			h.size += x;
			if (hasher_final(&h, &d) < 0)
				bad++;
			d.mask = HASH_BIT(HASH_MD5);
			if (!matches(&d, d.mask, xy, x + y))
				bad++;
			d.mask = sha;
			if (!matches(&d, sha, yx, x + y)) {
				diag("%s: x %zu y %zu: sha differs", impl, x, y);
				bad++;
			}
		}
		hasher_release(&h);
		free(xy);
		free(yx);
	}
	is_int(bad, 0, "%s: algorithms fed different amounts, then the same bytes", impl);
}

static void suite(const char *choice, const char *want)
{
	if (!ok(hash_impl_set(choice) == 0, "hash_impl_set(%s)", choice))
		return;
	is_str(hash_impl_name(), want, "%s gives %s", choice, want);
	test_lengths(want);
	test_copy(want);
	test_threads(want);
	test_unaligned_parts(want);
}

/* hash_impl_name() and hash_impl_env_check() in a fresh child with the variable set. */
static int env_child(const char *value, const char *want_name, int want_check)
{
	pid_t pid = fork();
	int st;

	if (pid == 0) {
		setenv("HASHGATE_HASH_IMPL", value, 1);
		_exit(strcmp(hash_impl_name(), want_name) == 0 &&
		      hash_impl_env_check() == want_check ? 0 : 1);
	}
	return pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
}

/*
 * OpenSSL configured to fetch only FIPS implementations (none is installed here, so it
 * refuses every digest, as a FIPS-only setup refuses MD5): both implementations must answer
 * -ENOTSUP, so a host behaves the same whatever its CPU.  In a child: the configuration is
 * read once per process.
 */
static int fips_child(void)
{
	static const char cnf[] = "openssl_conf = openssl_init\n[openssl_init]\n"
		"alg_section = evp_properties\n[evp_properties]\ndefault_properties = fips=yes\n";
	char path[] = "/tmp/test-hash-impl.XXXXXX";
	int fd = mkstemp(path), st, ok_all = 0;
	pid_t pid;

	if (fd < 0 || write(fd, cnf, sizeof(cnf) - 1) != (ssize_t)(sizeof(cnf) - 1)) {
		if (fd >= 0)
			close(fd);
		unlink(path);
		return 0;
	}
	close(fd);
	pid = fork();
	if (pid == 0) {
		static const char *const impls[] = { "auto", "evp" };
		int i, a, bad = 0;

		setenv("OPENSSL_CONF", path, 1);
		for (i = 0; i < 2; i++)
			for (a = 0; a < 3; a++) {
				struct hasher h;

				hash_impl_set(impls[i]);
				if (hasher_init(&h, HASH_BIT(a)) != -ENOTSUP)
					bad++;
				hasher_release(&h);
			}
		_exit(bad ? 1 : 0);
	}
	ok_all = pid > 0 && waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0;
	unlink(path);
	return ok_all;
}

/* The daemon refuses to start with a bad HASHGATE_HASH_IMPL, naming it. */
static void test_daemon_refuses(void)
{
	const char *b = getenv("HASHGATE_BUILD");
	char cmd[1024], out[512] = "";
	size_t n;
	FILE *p;
	int st;

	if (!b) {
		ok(1, "# SKIP HASHGATE_BUILD not set");
		return;
	}
	snprintf(cmd, sizeof(cmd), "HASHGATE_HASH_IMPL=fast %s/hashgatefs -f /nonexistent-backing "
		 "/nonexistent-mnt 2>&1", b);
	p = popen(cmd, "r");
	if (!p) {
		ok(0, "popen hashgatefs");
		return;
	}
	n = fread(out, 1, sizeof(out) - 1, p);
	out[n] = '\0';
	st = pclose(p);
	ok(WIFEXITED(st) && WEXITSTATUS(st) != 0 &&
	   strstr(out, "HASHGATE_HASH_IMPL=fast: expected auto or evp"),
	   "hashgatefs refuses HASHGATE_HASH_IMPL=fast: %s", out);
}

int main(void)
{
	/* what auto picks here; hashfused_supported() does not read the environment */
	const char *autoname = hashfused_supported() ? "sha-ni" : "evp";
	size_t i;

	/* The environment is read once per process: children, before this one reads it. */
	ok(env_child("evp", "evp", 0), "HASHGATE_HASH_IMPL=evp: evp");
	ok(env_child("bogus", autoname, -EINVAL),
	   "HASHGATE_HASH_IMPL=bogus: -EINVAL from hash_impl_env_check, auto used");
	ok(env_child("auto", autoname, 0), "HASHGATE_HASH_IMPL=auto: %s", autoname);
	ok(env_child("", autoname, 0), "HASHGATE_HASH_IMPL empty: %s", autoname);
	ok(fips_child(), "OpenSSL refusing the digests: -ENOTSUP from both implementations");
	is_int(hash_impl_set("fast"), -EINVAL, "hash_impl_set rejects fast");
	test_daemon_refuses();

	srand(4242);
	data = malloc(BIG + 4096);
	if (!data) {
		printf("Bail out! no memory\n");
		return 1;
	}
	for (i = 0; i < BIG + 4096; i++)
		data[i] = (uint8_t)(rand() >> 5);
	is_str(hash_impl_name(), autoname, "default: %s", autoname);
	if (strcmp(hash_impl_name(), "sha-ni") == 0)
		suite("auto", "sha-ni");
	else
		diag("no SHA-NI on this CPU: the fused implementation is not tested here");
	suite("evp", "evp");
	hash_impl_set("auto");
	free(data);
	return done_testing();
}
