/*
 * slowsys.c - LD_PRELOAD shim for mount tests: widens a race window in the daemon at will.
 *
 * The calls named in $HG_SLOW_CALLS (comma separated: unlinkat, renameat2, fstatat; default
 * all) that fail with ENOENT on a name starting with $HG_SLOW_PREFIX sleep $HG_SLOW_MS
 * milliseconds before they return, so whatever runs concurrently in the daemon (a verdict made
 * by RELEASE) finishes in between, as it can on a loaded machine.  The result and errno are
 * the real ones.  The calls named in $HG_SLOW_BEFORE (unlinkat, renameat2: either of its names,
 * linkat: the new name) sleep before the call on such a name, whatever it gives.  Nothing changes when HG_SLOW_PREFIX
 * is unset.
 * Test-only: never installed, never linked into the daemon.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Is call in the comma separated list (an unset or empty list: every call)? */
static bool listed(const char *calls, const char *call)
{
	size_t len = strlen(call);
	const char *c;

	if (!calls || !*calls)
		return true;
	for (c = calls; (c = strstr(c, call)) != NULL; c += len)
		if ((c == calls || c[-1] == ',') && (c[len] == ',' || !c[len]))
			return true;
	return false;
}

static void nap(void)
{
	const char *ms = getenv("HG_SLOW_MS");
	struct timespec ts;
	long n = ms ? atol(ms) : 1000;

	ts.tv_sec = n / 1000;
	ts.tv_nsec = (n % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

static bool slow_name(const char *name)
{
	const char *prefix = getenv("HG_SLOW_PREFIX");

	return prefix && *prefix && name && strncmp(name, prefix, strlen(prefix)) == 0;
}

/* Before the call: $HG_SLOW_BEFORE names the calls that always sleep first. */
static void before(const char *call, const char *name)
{
	const char *calls = getenv("HG_SLOW_BEFORE");

	if (calls && *calls && slow_name(name) && listed(calls, call))
		nap();
}

/* After a failed call: an ENOENT of a call in $HG_SLOW_CALLS sleeps. */
static void slow(const char *call, const char *name, int err)
{
	if (err == ENOENT && slow_name(name) && listed(getenv("HG_SLOW_CALLS"), call))
		nap();
}

int unlinkat(int dfd, const char *name, int flags)
{
	static int (*real)(int, const char *, int);
	int r, e;

	if (!real)
		real = (int (*)(int, const char *, int))dlsym(RTLD_NEXT, "unlinkat");
	before("unlinkat", name);
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
	before("renameat2", slow_name(oname) ? oname : nname);
	r = real(ofd, oname, nfd, nname, flags);
	e = errno;
	if (r < 0)
		slow("renameat2", oname, e);
	errno = e;
	return r;
}

int linkat(int ofd, const char *oname, int nfd, const char *nname, int flags)
{
	static int (*real)(int, const char *, int, const char *, int);

	if (!real)
		real = (int (*)(int, const char *, int, const char *, int))dlsym(RTLD_NEXT, "linkat");
	before("linkat", nname);
	return real(ofd, oname, nfd, nname, flags);
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
