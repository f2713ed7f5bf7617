/*
 * slowsys.c - LD_PRELOAD shim for mount tests: widens a race window in the daemon at will.
 *
 * The calls named in $HG_SLOW_CALLS (comma separated: unlinkat, renameat2, fstatat; default
 * all) that fail with ENOENT on a name starting with $HG_SLOW_PREFIX sleep $HG_SLOW_MS
 * milliseconds before they return, so whatever runs concurrently in the daemon (a verdict made
 * by RELEASE) finishes in between, as it can on a loaded machine.  The result and errno are
 * the real ones.  Nothing changes when HG_SLOW_PREFIX is unset.
 * Test-only: never installed, never linked into the daemon.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static void slow(const char *call, const char *name, int err)
{
	const char *prefix = getenv("HG_SLOW_PREFIX"), *ms = getenv("HG_SLOW_MS");
	const char *calls = getenv("HG_SLOW_CALLS"), *c;
	size_t len = strlen(call);
	struct timespec ts;
	long n;

	if (err != ENOENT || !prefix || !*prefix || !name || strncmp(name, prefix, strlen(prefix)))
		return;
	if (calls && *calls) {
		for (c = calls; (c = strstr(c, call)) != NULL; c += len)
			if ((c == calls || c[-1] == ',') && (c[len] == ',' || !c[len]))
				break;
		if (!c)
			return;
	}
	n = ms ? atol(ms) : 1000;
	ts.tv_sec = n / 1000;
	ts.tv_nsec = (n % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int unlinkat(int dfd, const char *name, int flags)
{
	static int (*real)(int, const char *, int);
	int r, e;

	if (!real)
		real = (int (*)(int, const char *, int))dlsym(RTLD_NEXT, "unlinkat");
	r = real(dfd, name, flags);
	e = errno;
	if (r < 0)
		slow("unlinkat", name, e);
	errno = e;
	return r;
}

int renameat2(int ofd, const char *oname, int nfd, const char *nname, unsigned int flags)
{
	static int (*real)(int, const char *, int, const char *, unsigned int);
	int r, e;

	if (!real)
		real = (int (*)(int, const char *, int, const char *, unsigned int))
		       dlsym(RTLD_NEXT, "renameat2");
	r = real(ofd, oname, nfd, nname, flags);
	e = errno;
	if (r < 0)
		slow("renameat2", oname, e);
	errno = e;
	return r;
}

/* The daemon is built with 64-bit file offsets: its fstatat is fstatat64. */
int fstatat64(int dfd, const char *name, struct stat64 *st, int flags)
{
	static int (*real)(int, const char *, struct stat64 *, int);
	int r, e;

	if (!real)
		real = (int (*)(int, const char *, struct stat64 *, int))dlsym(RTLD_NEXT, "fstatat64");
	r = real(dfd, name, st, flags);
	e = errno;
	if (r < 0)
		slow("fstatat", name, e);
	errno = e;
	return r;
}
