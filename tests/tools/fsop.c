/*
 * fsop.c - file-system operations the shell cannot express, for the mount tests (tests/mount/).
 *
 *   fsop renameat2 OLD NEW none|noreplace|exchange
 *   fsop twofd DST SRC         write SRC into DST through two descriptors (halves, second via
 *                              pwrite on a second open), close the first then the second
 *   fsop reverse DST SRC BS    create DST and write SRC in BS-sized blocks, last block first
 *   fsop mmap DST SRC          create DST, ftruncate, write SRC through a shared mapping
 *   fsop mmapover DST SRC      open existing DST (no O_TRUNC), write SRC over it via mmap
 *   fsop pwriteover DST SRC    open existing DST O_RDWR (no O_TRUNC), pwrite SRC over it
 *   fsop writetrunc DST SRC N  create DST, write SRC then N more bytes, ftruncate back to the
 *                              size of SRC on the same descriptor, close
 *   fsop cfr DST SRC...        create DST and copy_file_range each SRC into it, in order
 *   fsop slow DST SRC MS       create DST, write the first half of SRC, sleep MS ms, write the
 *                              rest, close (a slow upload for staging tests)
 *   fsop mmapclose DST SRC     create DST, size it, mmap it shared, close the descriptor (the
 *                              upload's close), then write SRC through the mapping, msync and
 *                              munmap: the bytes arrive after the close()
 *   fsop linkopen DST SRC LINK create DST, write SRC, hard-link DST to LINK while still open,
 *                              close
 *
 * Every step that fails prints "fsop: STEP: strerror (ERRNAME)" to stderr; the exit status is
 * 0 when every step (including each close) succeeded, 1 otherwise, 64 on bad usage.  The
 * close() result matters: it is where hashgatefs reports a rejected upload.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#ifndef RENAME_NOREPLACE
#define RENAME_NOREPLACE (1 << 0)
#endif
#ifndef RENAME_EXCHANGE
#define RENAME_EXCHANGE (1 << 1)
#endif

static int fail(const char *step)
{
	int e = errno;

	fprintf(stderr, "fsop: %s: %s (%s)\n", step, strerror(e), strerrorname_np(e) ?
		strerrorname_np(e) : "?");
	return 1;
}

/* Read a whole file into memory; NULL (message printed) on failure. */
static char *slurp(const char *path, size_t *len)
{
	struct stat st;
	char *buf = NULL;
	size_t got = 0;
	ssize_t n;
	int fd;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		fail(path);
		goto out_close;
	}
	buf = malloc(st.st_size ? st.st_size : 1);
	if (!buf)
		goto out_close;
	while (got < (size_t)st.st_size) {
		n = read(fd, buf + got, st.st_size - got);
		if (n <= 0) {
			fail(path);
			free(buf);
			buf = NULL;
			goto out_close;
		}
		got += n;
	}
	*len = got;
out_close:
	if (fd >= 0)
		close(fd);
	return buf;
}

static int pwrite_all(int fd, const char *buf, size_t len, off_t off)
{
	ssize_t n;

	while (len) {
		n = pwrite(fd, buf, len, off);
		if (n < 0)
			return fail("pwrite");
		buf += n;
		len -= n;
		off += n;
	}
	return 0;
}

static int close_checked(int fd, const char *what)
{
	if (close(fd) < 0)
		return fail(what);
	return 0;
}

static int do_renameat2(char **av)
{
	unsigned flags = 0;

	if (strcmp(av[2], "noreplace") == 0)
		flags = RENAME_NOREPLACE;
	else if (strcmp(av[2], "exchange") == 0)
		flags = RENAME_EXCHANGE;
	else if (strcmp(av[2], "none") != 0)
		return 64;
	if (syscall(SYS_renameat2, AT_FDCWD, av[0], AT_FDCWD, av[1], flags) < 0)
		return fail("renameat2");
	return 0;
}

static int create(const char *dst)
{
	int fd = open(dst, O_CREAT | O_TRUNC | O_RDWR | O_CLOEXEC, 0644);

	if (fd < 0)
		fail("open");
	return fd;
}

static int do_twofd(char **av)
{
	size_t len, half;
	char *buf = slurp(av[1], &len);
	int fd1, fd2, rc = 1;

	if (!buf)
		return 1;
	half = len / 2;
	fd1 = create(av[0]);
	if (fd1 < 0)
		goto out_free;
	fd2 = open(av[0], O_WRONLY | O_CLOEXEC);
	if (fd2 < 0) {
		fail("second open");
		close(fd1);
		goto out_free;
	}
	rc = pwrite_all(fd1, buf, half, 0);
	rc |= pwrite_all(fd2, buf + half, len - half, half);
	rc |= close_checked(fd1, "close of the first descriptor");
	rc |= close_checked(fd2, "close of the second descriptor");
out_free:
	free(buf);
	return rc;
}

static int do_reverse(char **av)
{
	size_t len, bs = strtoul(av[2], NULL, 0);
	char *buf = slurp(av[1], &len);
	off_t off;
	int fd, rc = 0;

	if (!buf || !bs)
		return 1;
	fd = create(av[0]);
	if (fd < 0) {
		free(buf);
		return 1;
	}
	for (off = (len ? (len - 1) / bs * bs : 0); off >= 0 && !rc; off -= bs)
		rc = pwrite_all(fd, buf + off, len - off < bs ? len - off : bs, off);
	rc |= close_checked(fd, "close");
	free(buf);
	return rc;
}

static int mmap_write(int fd, const char *buf, size_t len)
{
	void *p;

	if (ftruncate(fd, len) < 0)
		return fail("ftruncate");
	if (!len)
		return 0;
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return fail("mmap");
	memcpy(p, buf, len);
	if (msync(p, len, MS_SYNC) < 0) {
		fail("msync");
		munmap(p, len);
		return 1;
	}
	if (munmap(p, len) < 0)
		return fail("munmap");
	return 0;
}

static int do_mmap(char **av, int over)
{
	size_t len;
	char *buf = slurp(av[1], &len);
	int fd, rc;

	if (!buf)
		return 1;
	fd = over ? open(av[0], O_RDWR | O_CLOEXEC) : create(av[0]);
	if (fd < 0) {
		if (over)
			fail("open");
		free(buf);
		return 1;
	}
	rc = mmap_write(fd, buf, len);
	rc |= close_checked(fd, "close");
	free(buf);
	return rc;
}

static int do_pwriteover(char **av)
{
	size_t len;
	char *buf = slurp(av[1], &len);
	int fd, rc;

	if (!buf)
		return 1;
	fd = open(av[0], O_RDWR | O_CLOEXEC);
	if (fd < 0) {
		free(buf);
		return fail("open");
	}
	rc = pwrite_all(fd, buf, len, 0);
	if (!rc && ftruncate(fd, len) < 0)
		rc = fail("ftruncate");
	rc |= close_checked(fd, "close");
	free(buf);
	return rc;
}

static int do_writetrunc(char **av)
{
	size_t len, extra = strtoul(av[2], NULL, 0);
	char *buf = slurp(av[1], &len), *junk;
	int fd, rc;

	if (!buf)
		return 1;
	junk = malloc(extra + 1);
	fd = create(av[0]);
	if (fd < 0 || !junk) {
		free(junk);
		free(buf);
		return 1;
	}
	memset(junk, 'x', extra);
	rc = pwrite_all(fd, buf, len, 0);
	rc |= pwrite_all(fd, junk, extra, len);
	if (!rc && ftruncate(fd, len) < 0)
		rc = fail("ftruncate");
	rc |= close_checked(fd, "close");
	free(junk);
	free(buf);
	return rc;
}

static int do_cfr(int ac, char **av)
{
	loff_t off_out = 0;
	int fd, i, rc = 0;

	fd = create(av[0]);
	if (fd < 0)
		return 1;
	for (i = 1; i < ac && !rc; i++) {
		int in = open(av[i], O_RDONLY | O_CLOEXEC);
		struct stat st;
		loff_t off_in = 0;
		ssize_t n;

		if (in < 0 || fstat(in, &st) < 0) {
			rc = fail(av[i]);
			break;
		}
		while (off_in < st.st_size) {
			n = copy_file_range(in, &off_in, fd, &off_out, st.st_size - off_in, 0);
			if (n <= 0) {
				if (n == 0)
					errno = EIO;
				rc = fail("copy_file_range");
				break;
			}
		}
		close(in);
	}
	rc |= close_checked(fd, "close");
	return rc;
}

static int do_slow(char **av)
{
	size_t len;
	long ms = strtol(av[2], NULL, 0);
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	char *buf = slurp(av[1], &len);
	int fd, rc;

	if (!buf)
		return 1;
	fd = create(av[0]);
	if (fd < 0) {
		free(buf);
		return 1;
	}
	rc = pwrite_all(fd, buf, len / 2, 0);
	/* Tell the test the upload is in progress, then hold the file open. */
	printf("writing\n");
	fflush(stdout);
	nanosleep(&ts, NULL);
	rc |= pwrite_all(fd, buf + len / 2, len - len / 2, len / 2);
	rc |= close_checked(fd, "close");
	free(buf);
	return rc;
}

static int do_mmapclose(char **av)
{
	size_t len;
	char *buf = slurp(av[1], &len);
	void *p;
	int fd, rc = 0;

	if (!buf || !len)
		return 1;
	fd = create(av[0]);
	if (fd < 0) {
		free(buf);
		return 1;
	}
	if (ftruncate(fd, len) < 0)
		rc = fail("ftruncate");
	p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		close(fd);
		free(buf);
		return fail("mmap");
	}
	rc |= close_checked(fd, "close");
	memcpy(p, buf, len);
	if (msync(p, len, MS_SYNC) < 0)
		rc |= fail("msync");
	if (munmap(p, len) < 0)
		rc |= fail("munmap");
	free(buf);
	return rc;
}

static int do_linkopen(char **av)
{
	size_t len;
	char *buf = slurp(av[1], &len);
	int fd, rc;

	if (!buf)
		return 1;
	fd = create(av[0]);
	if (fd < 0) {
		free(buf);
		return 1;
	}
	rc = pwrite_all(fd, buf, len, 0);
	if (link(av[0], av[2]) < 0)
		rc |= fail("link");
	rc |= close_checked(fd, "close");
	free(buf);
	return rc;
}

int main(int argc, char **argv)
{
	const char *op = argc > 1 ? argv[1] : "";
	char **av = argv + 2;
	int ac = argc - 2;

	if (strcmp(op, "renameat2") == 0 && ac == 3)
		return do_renameat2(av);
	if (strcmp(op, "twofd") == 0 && ac == 2)
		return do_twofd(av);
	if (strcmp(op, "reverse") == 0 && ac == 3)
		return do_reverse(av);
	if (strcmp(op, "mmap") == 0 && ac == 2)
		return do_mmap(av, 0);
	if (strcmp(op, "mmapover") == 0 && ac == 2)
		return do_mmap(av, 1);
	if (strcmp(op, "pwriteover") == 0 && ac == 2)
		return do_pwriteover(av);
	if (strcmp(op, "writetrunc") == 0 && ac == 3)
		return do_writetrunc(av);
	if (strcmp(op, "cfr") == 0 && ac >= 2)
		return do_cfr(ac, av);
	if (strcmp(op, "slow") == 0 && ac == 3)
		return do_slow(av);
	if (strcmp(op, "mmapclose") == 0 && ac == 2)
		return do_mmapclose(av);
	if (strcmp(op, "linkopen") == 0 && ac == 3)
		return do_linkopen(av);
	fprintf(stderr, "usage: fsop renameat2|twofd|reverse|mmap|mmapover|pwriteover|"
		"writetrunc|cfr|slow|mmapclose|linkopen ARGS (see the comment at the top of fsop.c)\n");
	return 64;
}
