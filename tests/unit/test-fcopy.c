/*
 * test-fcopy.c - fcopy_fd makes an exact copy (empty, small, several MiB with a hole, an input
 * whose file position is not 0) within one directory and into /dev/shm (another filesystem:
 * the reflink must fall back).  HG_FCOPY_DIR=DIR copies there instead of a /tmp dir;
 * HG_FCOPY_WANT=reflink|copy_file_range|read/write also asserts which way the same-directory
 * copies went (tests/mount/16-backing.sh: reflink on XFS).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hashdb/fcopy.h"
#include "tests/unit/tap.h"

static int same(int a, int b)
{
	static char x[65536], y[65536];
	off_t off = 0;

	for (;;) {
		ssize_t n = pread(a, x, sizeof(x), off), m = pread(b, y, sizeof(y), off);

		if (n != m || n < 0)
			return 0;
		if (n == 0)
			return 1;
		if (memcmp(x, y, (size_t)n) != 0)
			return 0;
		off += n;
	}
}

static int fill(int fd, size_t size, unsigned seed)
{
	char *b = malloc(size ? size : 1);
	size_t i;
	int r;

	if (!b)
		return -1;
	srand(seed);
	for (i = 0; i < size; i++)
		b[i] = (char)rand();
	r = pwrite(fd, b, size, 0) == (ssize_t)size ? 0 : -1;
	free(b);
	return r;
}

int main(void)
{
	static const size_t sizes[] = { 0, 1, 4096, (3u << 20) + 5 };
	char tmpl[] = "/tmp/test-fcopy.XXXXXX", path[4200], shm[] = "/dev/shm/test-fcopy.XXXXXX";
	const char *dir = getenv("HG_FCOPY_DIR"), *want = getenv("HG_FCOPY_WANT");
	enum fcopy_how how;
	size_t i;
	int in, out, r;

	if (!dir) {
		if (!mkdtemp(tmpl)) {
			skip_all("no temp dir");
			return 0;
		}
		dir = tmpl;
	}
	for (i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		snprintf(path, sizeof(path), "%s/in", dir);
		in = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		unlink(path);
		snprintf(path, sizeof(path), "%s/out", dir);
		out = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		unlink(path);
		if (in < 0 || out < 0 || fill(in, sizes[i], (unsigned)i + 1) < 0) {
			ok(0, "test files in %s: %s", dir, strerror(errno));
			continue;
		}
		/* a hole in the middle of the big one */
		if (sizes[i] > (1u << 20) && fallocate(in, 0x02 | 0x01, 1 << 20, 1 << 19) < 0)
			diag("no hole punched: %s", strerror(errno));
		lseek(in, 17, SEEK_SET);	/* the copy is of the whole file, not from here */
		r = fcopy_fd(in, out, &how);
		is_int(r, 0, "copy of %zu bytes in %s succeeds (%s)", sizes[i], dir,
		       fcopy_how_name(how));
		ok(same(in, out), "... and is identical");
		if (want && sizes[i])
			is_str(fcopy_how_name(how), want, "... made the expected way");
		close(out);
		out = mkstemp(shm);
		if (out < 0) {
			diag("no /dev/shm: %s", strerror(errno));
		} else {
			unlink(shm);
			strcpy(shm, "/dev/shm/test-fcopy.XXXXXX");
			r = fcopy_fd(in, out, &how);
			is_int(r, 0, "copy of %zu bytes to another filesystem (%s)", sizes[i],
			       fcopy_how_name(how));
			ok(same(in, out), "... is identical");
			ok(how != FCOPY_REFLINK || !sizes[i], "... and was not a reflink");
			close(out);
		}
		close(in);
	}
	if (dir == tmpl)
		rmdir(tmpl);
	return done_testing();
}
