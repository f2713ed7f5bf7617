/*
 * fcopy.c - whole-file copies by reflink, copy_file_range or read/write (see fcopy.h).
 *
 * Each way falls through to the next on the errors that mean "not here" (another filesystem,
 * no support, an fs that refuses the call); any other error (EIO, ENOSPC, EDQUOT) is the
 * copy's error: a network filesystem that fails half-way must not be retried by a slower way
 * into a half-written file without the caller knowing, so the output is truncated back to 0
 * before a fallback only when the failed way never wrote.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hashdb/fcopy.h"

#define FCOPY_CHUNK	(1u << 20)

const char *fcopy_how_name(enum fcopy_how how)
{
	return how == FCOPY_REFLINK ? "reflink" : how == FCOPY_RANGE ? "copy_file_range" :
	       how == FCOPY_RW ? "read/write" : "none";
}

/* Errors after which another way of copying may work. */
static bool not_here(int e)
{
	return e == EXDEV || e == EOPNOTSUPP || e == ENOTTY || e == EINVAL || e == ENOSYS ||
	       e == EBADF || e == EPERM || e == ETXTBSY;
}

static int copy_range(int in_fd, int out_fd, off_t size)
{
	loff_t ioff = 0, ooff = 0;

	while (ioff < size) {
		ssize_t n = copy_file_range(in_fd, &ioff, out_fd, &ooff, (size_t)(size - ioff), 0);

		if (n < 0)
			return -errno;
		if (n == 0)
			break;		/* the input shrank meanwhile */
	}
	return 0;
}

static int copy_rw(int in_fd, int out_fd)
{
	char *buf = malloc(FCOPY_CHUNK);
	off_t off = 0;
	int r = 0;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t got = pread(in_fd, buf, FCOPY_CHUNK, off), put = 0;

		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			r = -errno;
			break;
		}
		if (got == 0)
			break;
		while (put < got) {
			ssize_t w = pwrite(out_fd, buf + put, (size_t)(got - put), off + put);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				r = w < 0 ? -errno : -EIO;
				goto out;
			}
			put += w;
		}
		off += got;
	}
out:
	free(buf);
	return r;
}

int fcopy_fd(int in_fd, int out_fd, enum fcopy_how *how)
{
	struct stat st;
	int r;

	if (how)
		*how = 0;
	if (fstat(in_fd, &st) < 0)
		return -errno;
	if (ioctl(out_fd, FICLONE, in_fd) == 0) {
		if (how)
			*how = FCOPY_REFLINK;
		return 0;
	}
	if (!not_here(errno))
		return -errno;
	r = copy_range(in_fd, out_fd, st.st_size);
	if (r == 0) {
		if (how)
			*how = FCOPY_RANGE;
		return 0;
	}
	if (!not_here(-r))
		return r;
	/* copy_file_range refused before writing anything (it fails on the first call) */
	if (ftruncate(out_fd, 0) < 0)
		return -errno;
	r = copy_rw(in_fd, out_fd);
	if (r == 0 && how)
		*how = FCOPY_RW;
	return r;
}
