/*
 * tap.h - a tiny Test Anything Protocol harness for the C unit tests, read by prove.
 *
 * Header-only: each test program includes it once.  Tests number themselves; call
 * done_testing() last, which prints the plan and returns the exit status (non-zero when any
 * test failed), so a test program that dies half-way is reported by prove as a failure.
 * Not thread-safe: call the macros from one thread.
 */
#ifndef HASHGATE_TAP_H
#define HASHGATE_TAP_H

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_run, tap_failed;

__attribute__((format(printf, 2, 3)))
static int tap_ok(int cond, const char *fmt, ...)
{
	va_list ap;

	tap_run++;
	if (!cond)
		tap_failed++;
	printf("%sok %d - ", cond ? "" : "not ", tap_run);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
	return cond;
}

__attribute__((format(printf, 1, 2), unused))
static void diag(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

#define ok(cond, ...) tap_ok(!!(cond), __VA_ARGS__)

#define is_int(got, want, ...) do { \
	long long got_ = (long long)(got), want_ = (long long)(want); \
	if (!tap_ok(got_ == want_, __VA_ARGS__)) \
		diag("  got %lld, want %lld (%s:%d)", got_, want_, __FILE__, __LINE__); \
} while (0)

#define is_str(got, want, ...) do { \
	const char *got_ = (got), *want_ = (want); \
	int same_ = got_ && want_ ? strcmp(got_, want_) == 0 : got_ == want_; \
	if (!tap_ok(same_, __VA_ARGS__)) \
		diag("  got '%s', want '%s' (%s:%d)", got_ ? got_ : "(null)", \
		     want_ ? want_ : "(null)", __FILE__, __LINE__); \
} while (0)

__attribute__((unused))
static void skip_all(const char *why)
{
	printf("1..0 # SKIP %s\n", why);
	fflush(stdout);
}

__attribute__((unused))
static int done_testing(void)
{
	printf("1..%d\n", tap_run);
	if (tap_failed)
		diag("failed %d of %d tests", tap_failed, tap_run);
	fflush(stdout);
	return tap_failed ? 1 : 0;
}

#endif
