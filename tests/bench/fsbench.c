/*
 * fsbench.c - timed file-system workloads for tests/bench/30-fs.sh.  Each prints one line,
 * "SECONDS COUNT", where COUNT is what was done (bytes, files, entries) so the caller computes
 * rates; the clock covers the whole workload including every close() (where hashgatefs makes
 * its verdict) and, for write, the fsync.
 *
 *   fsbench write FILE MIB       create FILE, write MIB MiB in 1 MiB writes of random-looking
 *                                bytes, fsync, close
 *   fsbench writec FILE MIB      the same without the fsync: data stays in the page cache, so
 *                                this measures the CPU cost of the write path (and, through
 *                                hashgatefs, of hashing it) rather than the disk
 *   fsbench create DIR N SIZE    create DIR/f0..f(N-1), SIZE bytes each (one write), close
 *   fsbench stat DIR N           lstat DIR/f0..f(N-1)
 *   fsbench readdir DIR R        list DIR R times (opendir/readdir/closedir)
 *   fsbench read DIR N           open, read to EOF and close DIR/f0..f(N-1) once each: through
 *                                hashgatefs every open of a regular file passes the write gate
 *   fsbench append FILE MIB      FILE is first made (untimed) holding one 64 KiB chunk and
 *                                closed, so it is published; then one descriptor opened
 *                                O_APPEND writes MIB MiB in 64 KiB appends, closed (no fsync):
 *                                the in-place append path, hashed as it streams in
 *   fsbench appendlog FILE BASE ADD SECS
 *                                FILE is first made (untimed) with BASE MiB and closed; then
 *                                open(O_APPEND) / write 64 KiB / close is repeated until ADD
 *                                MiB were appended or SECS seconds passed (COUNT = appends
 *                                done): a log written by short-lived processes, where every
 *                                close is a verdict on the whole file
 *
 * Exit 0 on success; 1 with a message naming the failing call otherwise.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int die(const char *what, const char *path)
{
	fprintf(stderr, "fsbench: %s %s: %s\n", what, path, strerror(errno));
	return 1;
}

/* Fill with xorshift output: not compressible, not all zeros, identical on every run. */
static void fill(unsigned char *buf, size_t len, uint64_t seed)
{
	uint64_t x = seed | 1;
	size_t i;

	for (i = 0; i + 8 <= len; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		memcpy(buf + i, &x, 8);
	}
	for (; i < len; i++)
		buf[i] = (unsigned char)i;
}

static int write_all(int fd, const unsigned char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= n;
	}
	return 0;
}

static int do_write(const char *path, long mib, int sync)
{
	const size_t chunk = 1 << 20;
	unsigned char *buf = malloc(chunk);
	double t0;
	long i;
	int fd;

	if (!buf)
		return 1;
	fill(buf, chunk, 42);
	t0 = now();
	fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);
	if (fd < 0)
		return die("open", path);
	for (i = 0; i < mib; i++) {
		buf[0] = (unsigned char)i;	/* no two chunks alike */
		buf[chunk / 2] = (unsigned char)(i >> 8);
		if (write_all(fd, buf, chunk) < 0)
			return die("write", path);
	}
	if (sync && fsync(fd) < 0)
		return die("fsync", path);
	if (close(fd) < 0)
		return die("close", path);
	printf("%.6f %lld\n", now() - t0, (long long)mib * chunk);
	free(buf);
	return 0;
}

/* Make PATH holding MIB MiB (or one 64 KiB chunk when MIB is 0), closed: untimed setup. */
static int make_file(const char *path, long mib, unsigned char *buf, size_t chunk)
{
	long i, n = mib ? mib * (long)((1 << 20) / chunk) : 1;
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0644);

	if (fd < 0)
		return die("open", path);
	for (i = 0; i < n; i++) {
		memcpy(buf, &i, sizeof(i));
		if (write_all(fd, buf, chunk) < 0)
			return die("write", path);
	}
	if (close(fd) < 0)
		return die("close", path);
	return 0;
}

static int do_append(const char *path, long mib)
{
	const size_t chunk = 64 << 10;
	unsigned char buf[64 << 10];
	long i, n = mib * (long)((1 << 20) / chunk);
	double t0;
	int fd;

	fill(buf, chunk, 11);
	if (make_file(path, 0, buf, chunk))
		return 1;
	t0 = now();
	fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0)
		return die("open", path);
	for (i = 1; i <= n; i++) {
		memcpy(buf, &i, sizeof(i));
		if (write_all(fd, buf, chunk) < 0)
			return die("write", path);
	}
	if (close(fd) < 0)
		return die("close", path);
	printf("%.6f %lld\n", now() - t0, (long long)n * (long long)chunk);
	return 0;
}

static int do_appendlog(const char *path, long base, long add, double secs)
{
	const size_t chunk = 64 << 10;
	unsigned char buf[64 << 10];
	long i, n = add * (long)((1 << 20) / chunk);
	double t0, t;
	int fd;

	fill(buf, chunk, 13);
	if (make_file(path, base, buf, chunk))
		return 1;
	t0 = t = now();
	for (i = 0; i < n && t - t0 < secs; i++) {
		memcpy(buf + 8, &i, sizeof(i));
		fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
		if (fd < 0)
			return die("open", path);
		if (write_all(fd, buf, chunk) < 0)
			return die("write", path);
		if (close(fd) < 0)
			return die("close", path);
		t = now();
	}
	printf("%.6f %ld\n", t - t0, i);
	return 0;
}

static int do_read(const char *dir, long n)
{
	static unsigned char buf[1 << 16];
	char path[4096];
	double t0 = now();
	long i;

	for (i = 0; i < n; i++) {
		ssize_t r;
		int fd;

		snprintf(path, sizeof(path), "%s/f%ld", dir, i);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			return die("open", path);
		while ((r = read(fd, buf, sizeof(buf))) > 0)
			;
		if (r < 0)
			return die("read", path);
		close(fd);
	}
	printf("%.6f %ld\n", now() - t0, n);
	return 0;
}

static int do_create(const char *dir, long n, long size)
{
	unsigned char *buf = malloc(size ? size : 1);
	char path[4096];
	double t0;
	long i;
	int fd;

	if (!buf)
		return 1;
	fill(buf, size, 7);
	t0 = now();
	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/f%ld", dir, i);
		memcpy(buf, &i, size >= (long)sizeof(i) ? sizeof(i) : 0);	/* distinct files */
		fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0644);
		if (fd < 0)
			return die("open", path);
		if (write_all(fd, buf, size) < 0)
			return die("write", path);
		if (close(fd) < 0)
			return die("close", path);
	}
	printf("%.6f %ld\n", now() - t0, n);
	free(buf);
	return 0;
}

static int do_stat(const char *dir, long n)
{
	char path[4096];
	struct stat st;
	double t0 = now();
	long i;

	for (i = 0; i < n; i++) {
		snprintf(path, sizeof(path), "%s/f%ld", dir, i);
		if (lstat(path, &st) < 0)
			return die("lstat", path);
	}
	printf("%.6f %ld\n", now() - t0, n);
	return 0;
}

static int do_readdir(const char *dir, long rounds)
{
	double t0 = now();
	long r, entries = 0;

	for (r = 0; r < rounds; r++) {
		DIR *d = opendir(dir);

		if (!d)
			return die("opendir", dir);
		errno = 0;
		while (readdir(d))
			entries++;
		if (errno)
			return die("readdir", dir);
		closedir(d);
	}
	printf("%.6f %ld\n", now() - t0, entries);
	return 0;
}

int main(int argc, char **argv)
{
	const char *op = argc > 1 ? argv[1] : "";

	if (strcmp(op, "write") == 0 && argc == 4)
		return do_write(argv[2], atol(argv[3]), 1);
	if (strcmp(op, "writec") == 0 && argc == 4)
		return do_write(argv[2], atol(argv[3]), 0);
	if (strcmp(op, "create") == 0 && argc == 5)
		return do_create(argv[2], atol(argv[3]), atol(argv[4]));
	if (strcmp(op, "stat") == 0 && argc == 4)
		return do_stat(argv[2], atol(argv[3]));
	if (strcmp(op, "readdir") == 0 && argc == 4)
		return do_readdir(argv[2], atol(argv[3]));
	if (strcmp(op, "read") == 0 && argc == 4)
		return do_read(argv[2], atol(argv[3]));
	if (strcmp(op, "append") == 0 && argc == 4)
		return do_append(argv[2], atol(argv[3]));
	if (strcmp(op, "appendlog") == 0 && argc == 6)
		return do_appendlog(argv[2], atol(argv[3]), atol(argv[4]), atof(argv[5]));
	fprintf(stderr, "usage: fsbench write|writec FILE MIB | create DIR N SIZE | stat DIR N | "
		"readdir DIR ROUNDS | read DIR N | append FILE MIB | "
		"appendlog FILE BASE-MIB ADD-MIB SECS\n");
	return 64;
}
