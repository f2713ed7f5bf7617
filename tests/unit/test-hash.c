/*
 * test-hash.c - the streaming hasher against coreutils' md5sum/sha1sum/sha256sum: random
 * chunkings, one-shot, hash_fd, empty input, partial masks, hex helpers, and a sparse file just
 * over 4 GiB (64-bit sizes and offsets) checked against `openssl dgst` run concurrently; files
 * with holes in several layouts against the same bytes hashed from memory.
 *
 * Every expected digest comes from an external program run on the same bytes in this run.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hashdb/hash.h"
#include "tests/unit/tap.h"

static char tmpdir[] = "/tmp/test-hash.XXXXXX";

/* First word of `cmd`'s output (the hex digest), or "" on failure. */
static void run_digest(const char *cmd, char *out, size_t outlen)
{
	FILE *p = popen(cmd, "r");

	out[0] = '\0';
	if (!p)
		return;
	if (fscanf(p, "%129s", out) != 1)
		out[0] = '\0';
	pclose(p);
	(void)outlen;
}

static void hex_of(const struct digests *d, enum hash_algo a, char *out)
{
	const uint8_t *b = digests_get(d, a);

	if (!b) {
		strcpy(out, "(absent)");
		return;
	}
	hex_encode(b, hash_algo_len(a), out);
}

static const char *tools[3] = { "md5sum", "sha1sum", "sha256sum" };

static int write_file(const char *path, const uint8_t *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, buf, len);
	close(fd);
	return n == (ssize_t)len ? 0 : -EIO;
}

static void test_helpers(void)
{
	uint8_t b[4], src[4] = { 0x00, 0x9f, 0xa0, 0xff };
	char hex[9];

	is_int(hash_algo_len(HASH_MD5), 16, "md5 length");
	is_int(hash_algo_len(HASH_SHA1), 20, "sha1 length");
	is_int(hash_algo_len(HASH_SHA256), 32, "sha256 length");
	is_int(hash_algo_len(HASH_PDQ), 32, "pdq length");
	is_int(hash_algo_len((enum hash_algo)7), 0, "invalid algo length 0");
	is_str(hash_algo_name(HASH_SHA1), "sha1", "name sha1");
	ok(hash_algo_name((enum hash_algo)-1) == NULL, "invalid algo name NULL");
	is_int(hash_algo_parse("SHA-256"), HASH_SHA256, "parse SHA-256");
	is_int(hash_algo_parse("sha-1"), HASH_SHA1, "parse sha-1");
	is_int(hash_algo_parse("Md5"), HASH_MD5, "parse Md5");
	is_int(hash_algo_parse("pdq"), HASH_PDQ, "parse pdq");
	is_int(hash_algo_parse("sha512"), -EINVAL, "parse sha512 rejected");
	is_int(hash_algo_parse(""), -EINVAL, "parse empty rejected");

	hex_encode(src, 4, hex);
	is_str(hex, "009fa0ff", "hex_encode lowercase");
	ok(hex_decode("009FA0ff", 8, b, 4) == 0 && memcmp(b, src, 4) == 0,
	   "hex_decode either case round-trips");
	memset(b, 0x55, sizeof(b));
	is_int(hex_decode("009fa0f", 7, b, 4), -EINVAL, "hex_decode odd length rejected");
	is_int(hex_decode("009fa0fg", 8, b, 4), -EINVAL, "hex_decode non-hex rejected");
	ok(b[0] == 0x55 && b[3] == 0x55, "failed hex_decode leaves output untouched");
	is_int(hex_decode("009fa0ff00", 10, b, 4), -EINVAL, "hex_decode too long rejected");
}

/* Random bytes in random chunkings, one-shot and hash_fd, all against coreutils. */
static void test_random(void)
{
	char path[64], cmd[128], want[3][130], got[130];
	size_t len = 3 * 1024 * 1024 + 12345, i;
	uint8_t *buf = malloc(len);
	struct digests d;
	struct hasher h;
	int a, round, fd, bad;

	snprintf(path, sizeof(path), "%s/random", tmpdir);
	for (i = 0; i < len; i++)
		buf[i] = (uint8_t)(rand() >> 7);
	ok(write_file(path, buf, len) == 0, "wrote %zu random bytes", len);
	for (a = 0; a < 3; a++) {
		snprintf(cmd, sizeof(cmd), "%s %s", tools[a], path);
		run_digest(cmd, want[a], sizeof(want[a]));
		ok(strlen(want[a]) == 2 * hash_algo_len(a), "%s ran", tools[a]);
	}

	/* one-shot */
	ok(hasher_init(&h, HASH_EXACT_MASK) == 0, "hasher_init all");
	hasher_update(&h, buf, len);
	ok(hasher_final(&h, &d) == 0, "final one-shot");
	is_int(d.size, len, "one-shot size");
	is_int(d.mask, HASH_EXACT_MASK, "one-shot mask");
	for (a = 0; a < 3; a++) {
		hex_of(&d, a, got);
		is_str(got, want[a], "one-shot %s = %s", hash_algo_name(a), tools[a]);
	}
	hasher_release(&h);	/* after final: must be harmless */

	/* random chunkings, including zero-length and single-byte updates */
	bad = 0;
	for (round = 0; round < 30; round++) {
		size_t pos = 0;

		if (hasher_init(&h, HASH_EXACT_MASK) < 0) {
			bad++;
			continue;
		}
		while (pos < len) {
			size_t n;

			switch (rand() % 4) {
			case 0: n = rand() % 2; break;
			case 1: n = rand() % 64; break;
			case 2: n = rand() % 4096; break;
			default: n = rand() % (512 * 1024); break;
			}
			if (n > len - pos)
				n = len - pos;
			hasher_update(&h, buf + pos, n);
			pos += n;
		}
		if (hasher_final(&h, &d) < 0 || d.size != len)
			bad++;
		for (a = 0; a < 3; a++) {
			hex_of(&d, a, got);
			if (strcmp(got, want[a]) != 0) {
				diag("round %d %s: %s", round, hash_algo_name(a), got);
				bad++;
			}
		}
	}
	is_int(bad, 0, "30 random chunkings all match coreutils");

	/* hash_fd with a partial mask; it must not move the fd offset */
	fd = open(path, O_RDONLY);
	lseek(fd, 100, SEEK_SET);
	ok(hash_fd(fd, HASH_BIT(HASH_SHA256) | HASH_BIT(HASH_MD5), &d) == 0, "hash_fd");
	is_int(lseek(fd, 0, SEEK_CUR), 100, "hash_fd leaves the file offset alone");
	close(fd);
	is_int(d.mask, HASH_BIT(HASH_SHA256) | HASH_BIT(HASH_MD5), "only the asked algorithms");
	ok(digests_get(&d, HASH_SHA1) == NULL, "sha1 not computed when not asked");
	hex_of(&d, HASH_MD5, got);
	is_str(got, want[HASH_MD5], "hash_fd md5");
	hex_of(&d, HASH_SHA256, got);
	is_str(got, want[HASH_SHA256], "hash_fd sha256");
	is_int(d.size, len, "hash_fd size");

	is_int(hasher_init(&h, 1u << 7), -EINVAL, "unknown mask bit rejected");
	hasher_release(&h);
	ok(hasher_init(&h, HASH_BIT(HASH_SHA1) | HASH_BIT(HASH_PDQ)) == 0, "pdq bit ignored");
	hasher_update(&h, buf, len);
	hasher_final(&h, &d);
	is_int(d.mask, HASH_BIT(HASH_SHA1), "pdq bit: only sha1 computed");

	unlink(path);
	free(buf);
}

static void test_empty(void)
{
	char path[64], cmd[128], want[130], got[130];
	struct digests d;
	struct hasher h;
	int a, fd;

	snprintf(path, sizeof(path), "%s/empty", tmpdir);
	write_file(path, NULL, 0);
	ok(hasher_init(&h, HASH_EXACT_MASK) == 0, "init for empty");
	hasher_update(&h, "x", 0);
	ok(hasher_final(&h, &d) == 0, "final empty");
	fd = open(path, O_RDONLY);
	for (a = 0; a < 3; a++) {
		struct digests f;

		snprintf(cmd, sizeof(cmd), "%s %s", tools[a], path);
		run_digest(cmd, want, sizeof(want));
		hex_of(&d, a, got);
		is_str(got, want, "empty input %s = %s", hash_algo_name(a), tools[a]);
		ok(hash_fd(fd, HASH_BIT(a), &f) == 0 && f.size == 0, "hash_fd empty file");
		hex_of(&f, a, got);
		is_str(got, want, "hash_fd empty %s", hash_algo_name(a));
	}
	close(fd);
	is_int(d.size, 0, "empty size 0");
	ok(hash_fd(-1, HASH_EXACT_MASK, &d) == -EBADF, "hash_fd on a bad fd: -EBADF");
	unlink(path);
}

/*
 * Sparse file of 4 GiB + 4 KiB with marker bytes around the 4 GiB boundary: a 32-bit size or
 * offset anywhere would change the digest or the size.  Reference: `openssl dgst -sha1` in a
 * child on the other core while we hash, so the wall time stays a few seconds.  On tmpfs
 * (/dev/shm) reading a hole costs no page-cache allocation; on ext4 the first read of 4 GiB of
 * holes fills the page cache and takes twice as long, so prefer tmpfs when there is one.
 */
static void test_big_sparse(void)
{
	const off_t big = (4LL << 30) + 4096;
	char path[64], cmd[160], want[130], got[130];
	struct digests d;
	FILE *p;
	int fd, r;

	if (access("/dev/shm", W_OK) == 0)
		snprintf(path, sizeof(path), "/dev/shm/test-hash-sparse.%d", (int)getpid());
	else
		snprintf(path, sizeof(path), "%s/sparse", tmpdir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	r = fd >= 0 && ftruncate(fd, big) == 0 &&
	    pwrite(fd, "head", 4, 0) == 4 &&
	    pwrite(fd, "below", 5, (4LL << 30) - 3) == 5 &&
	    pwrite(fd, "tail", 4, big - 4) == 4;
	if (!ok(r, "created sparse file of %lld bytes", (long long)big)) {
		if (fd >= 0)
			close(fd);
		unlink(path);
		return;
	}
	snprintf(cmd, sizeof(cmd), "openssl dgst -sha1 -r %s", path);
	p = popen(cmd, "r");
	r = hash_fd(fd, HASH_BIT(HASH_SHA1), &d);
	want[0] = '\0';
	if (!p || fscanf(p, "%129s", want) != 1)
		want[0] = '\0';
	if (p)
		pclose(p);
	close(fd);
	unlink(path);
	is_int(r, 0, "hash_fd over 4 GiB");
	is_int(d.size, big, "size counted in 64 bits");
	hex_of(&d, HASH_SHA1, got);
	is_str(got, want, "sha1 of >4 GiB sparse file = openssl dgst");
}

/*
 * Sparse layouts (holes first, last, between extents, odd sizes, only a hole) in dir: hash_fd
 * must equal the hash of the same bytes fed from memory, and leave the fd offset alone.
 */
static void test_sparse_layouts(const char *dir, const char *what)
{
	static const struct { off_t off; size_t len; } ext[][4] = {
		{ { 0, 0 } },					/* only a hole */
		{ { (3 << 20) + 5, 7 } },			/* hole, data at the end */
		{ { 0, 70000 } },				/* data, then a hole */
		{ { 4096, 1 }, { 1 << 20, 200000 }, { (5 << 20) - 3, 3 } },
		{ { 65535, 2 }, { 65536 * 3 + 1, 65536 }, { (2 << 20) + 4095, 4097 } },
	};
	static const off_t size[] = { 3 << 20, (3 << 20) + 12, (6 << 20) + 17, 5 << 20,
				      (4 << 20) - 1 };
	char path[256], got[130], want[130];
	size_t i, j;

	snprintf(path, sizeof(path), "%s/test-hash-layout.%d", dir, (int)getpid());
	for (i = 0; i < sizeof(size) / sizeof(size[0]); i++) {
		uint8_t *mem = calloc(1, size[i]);
		struct digests d, m;
		struct hasher h;
		int fd, r, a;

		fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
		r = mem && fd >= 0 && ftruncate(fd, size[i]) == 0;
		for (j = 0; r && j < 4 && ext[i][j].len; j++) {
			size_t k;

			for (k = 0; k < ext[i][j].len; k++)
				mem[ext[i][j].off + k] = (uint8_t)(rand() | 1);
			r = pwrite(fd, mem + ext[i][j].off, ext[i][j].len, ext[i][j].off) ==
			    (ssize_t)ext[i][j].len;
		}
		r = r && lseek(fd, 123, SEEK_SET) == 123;
		if (!ok(r, "%s layout %zu written", what, i)) {
			free(mem);
			if (fd >= 0)
				close(fd);
			continue;
		}
		r = hash_fd(fd, HASH_EXACT_MASK, &d);
		is_int(r, 0, "%s layout %zu: hash_fd", what, i);
		is_int(lseek(fd, 0, SEEK_CUR), 123, "%s layout %zu: offset restored", what, i);
		ok(hasher_init(&h, HASH_EXACT_MASK) == 0 && hasher_update(&h, mem, size[i]) == 0 &&
		   hasher_final(&h, &m) == 0, "%s layout %zu: dense reference", what, i);
		is_int(d.size, size[i], "%s layout %zu: size", what, i);
		/* Resumed: the first part from memory, the rest from the file (gate.c does). */
		{
			uint64_t from = size[i] / 3;
			char buf[4096];
			struct digests rd;

			ok(hasher_init(&h, HASH_EXACT_MASK) == 0 &&
			   hasher_update(&h, mem, from) == 0 &&
			   hasher_update_fd(&h, fd, from, buf, sizeof(buf)) == 0 &&
			   hasher_final(&h, &rd) == 0 && rd.size == (uint64_t)size[i] &&
			   memcmp(rd.sha256, m.sha256, 32) == 0 && memcmp(rd.md5, m.md5, 16) == 0,
			   "%s layout %zu: hasher_update_fd from byte %llu = dense", what, i,
			   (unsigned long long)from);
		}
		for (a = 0; a < 3; a++) {
			hex_of(&d, a, got);
			hex_of(&m, a, want);
			is_str(got, want, "%s layout %zu: sparse %s = dense %s", what, i,
			       hash_algo_name(a), hash_algo_name(a));
		}
		close(fd);
		free(mem);
	}
	unlink(path);
}

int main(void)
{
	srand(12345);
	if (!mkdtemp(tmpdir)) {
		printf("Bail out! mkdtemp: %s\n", strerror(errno));
		return 1;
	}
	test_helpers();
	test_random();
	test_empty();
	test_sparse_layouts(tmpdir, "tmp");
	if (access("/dev/shm", W_OK) == 0)
		test_sparse_layouts("/dev/shm", "shm");
	test_big_sparse();
	rmdir(tmpdir);
	return done_testing();
}
