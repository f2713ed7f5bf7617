/*
 * mktree.c - generate a benchmark tree quickly: mktree DIR NSMALL SMALLSIZE NLARGE LARGESIZE
 * writes NSMALL files of SMALLSIZE bytes (1000 per subdirectory s/NNN/) and NLARGE files of
 * LARGESIZE bytes (large/L) with pseudo-random content (xorshift64*, seeded per file, so
 * every file differs and none is compressible or shared).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void fill(uint64_t *buf, size_t words, uint64_t *s)
{
	for (size_t i = 0; i < words; i++) {
		*s ^= *s >> 12;
		*s ^= *s << 25;
		*s ^= *s >> 27;
		buf[i] = *s * 0x2545F4914F6CDD1Dull;
	}
}

static int write_file(const char *path, uint64_t size, uint64_t seed, uint64_t *buf, size_t bufsz)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;

	if (fd < 0)
		return -errno;
	while (size) {
		size_t n = size < bufsz ? (size_t)size : bufsz;

		fill(buf, (n + 7) / 8, &s);
		if (write(fd, buf, n) != (ssize_t)n) {
			close(fd);
			return -EIO;
		}
		size -= n;
	}
	return close(fd) < 0 ? -errno : 0;
}

int main(int argc, char **argv)
{
	size_t bufsz = 1 << 20;
	uint64_t *buf = malloc(bufsz);
	unsigned long nsmall, nlarge;
	unsigned long long ssize, lsize;
	char path[4096];

	if (argc != 6 || !buf) {
		fprintf(stderr, "usage: mktree DIR NSMALL SMALLSIZE NLARGE LARGESIZE\n");
		return 64;
	}
	nsmall = strtoul(argv[2], NULL, 10);
	ssize = strtoull(argv[3], NULL, 10);
	nlarge = strtoul(argv[4], NULL, 10);
	lsize = strtoull(argv[5], NULL, 10);
	mkdir(argv[1], 0755);
	snprintf(path, sizeof(path), "%s/s", argv[1]);
	mkdir(path, 0755);
	for (unsigned long i = 0; i < nsmall; i++) {
		if (i % 1000 == 0) {
			snprintf(path, sizeof(path), "%s/s/%03lu", argv[1], i / 1000);
			mkdir(path, 0755);
		}
		snprintf(path, sizeof(path), "%s/s/%03lu/f%lu", argv[1], i / 1000, i);
		if (write_file(path, ssize, i + 1, buf, bufsz) < 0) {
			perror(path);
			return 1;
		}
	}
	snprintf(path, sizeof(path), "%s/large", argv[1]);
	mkdir(path, 0755);
	for (unsigned long i = 0; i < nlarge; i++) {
		snprintf(path, sizeof(path), "%s/large/L%lu", argv[1], i);
		if (write_file(path, lsize, 1000000000ull + i, buf, bufsz) < 0) {
			perror(path);
			return 1;
		}
	}
	free(buf);
	return 0;
}
