/*
 * hglog.c - one-line log records to syslog or stderr, and escaping of untrusted strings.
 *
 * Each record is formatted into one buffer and emitted with a single write(2) (stderr) or
 * syslog(3) call, so concurrent threads never interleave within a line.  Escaping guarantees
 * the output holds no control character and only valid UTF-8, whatever the input bytes.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hashdb/hglog.h"

static int log_stderr = 1;
static int log_level = LOG_INFO;
static const char *log_ident = "hashgate";

static const char *const prio_names[] = {
	"emerg", "alert", "crit", "error", "warning", "notice", "info", "debug",
};

void hglog_init(const char *ident, int to_stderr, int level)
{
	log_ident = ident ? ident : "hashgate";
	log_stderr = to_stderr;
	log_level = level;
	if (!to_stderr)
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_DAEMON);
}

void hglog_set_level(int level)
{
	log_level = level;
}

void hglog(int prio, const char *fmt, ...)
{
	char buf[4096];
	va_list ap;
	size_t n = 0;
	int saved = errno;

	if (prio > log_level)
		return;
	if (log_stderr) {
		struct timespec ts;
		struct tm tm;

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ ", &tm);
		n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s[%ld] %s: ", log_ident,
				      (long)getpid(), prio_names[prio & 7]);
	}
	va_start(ap, fmt);
	vsnprintf(buf + n, sizeof(buf) - n, fmt, ap);
	va_end(ap);
	if (log_stderr) {
		n = strlen(buf);
		if (n >= sizeof(buf) - 1)
			n = sizeof(buf) - 2;
		buf[n++] = '\n';
		/* Best effort: there is nobody to report a failed log write to. */
		if (write(STDERR_FILENO, buf, n) < 0)
			errno = saved;
	} else {
		syslog(prio, "%s", buf);
	}
	errno = saved;
}

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if the bytes there are not one. */
static size_t utf8_len(const unsigned char *s)
{
	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		return (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (s[0] >= 0xe0 && s[0] <= 0xef) {
		if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if (s[0] == 0xe0 && s[1] < 0xa0)
			return 0;	/* overlong */
		if (s[0] == 0xed && s[1] >= 0xa0)
			return 0;	/* surrogate */
		return 3;
	}
	if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		if ((s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
			return 0;
		if (s[0] == 0xf0 && s[1] < 0x90)
			return 0;
		if (s[0] == 0xf4 && s[1] >= 0x90)
			return 0;
		return 4;
	}
	return 0;
}

static void put(char *dst, size_t dstlen, size_t *at, const char *s, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++, (*at)++)
		if (*at + 1 < dstlen)
			dst[*at] = s[i];
}

/*
 * Log mode: \xNN for bad bytes and C1 controls (backslash itself is escaped, so this is
 * unambiguous).
 * JSON mode: \u00NN for control characters, and \udcNN for bytes that are not UTF-8 (the
 * "surrogateescape" convention), since JSON strings cannot carry raw invalid bytes.
 */
size_t hglog_escape(char *dst, size_t dstlen, const char *src, int json)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t at = 0, n;
	char tmp[8];

	while (*s) {
		unsigned char c = *s;

		if (c == '"' || c == '\\') {
			tmp[0] = '\\';
			tmp[1] = (char)c;
			put(dst, dstlen, &at, tmp, 2);
			s++;
			continue;
		}
		if (c == '\n' || c == '\t' || c == '\r') {
			tmp[0] = '\\';
			tmp[1] = c == '\n' ? 'n' : c == '\t' ? 't' : 'r';
			put(dst, dstlen, &at, tmp, 2);
			s++;
			continue;
		}
		if (c < 0x20 || c == 0x7f) {
			snprintf(tmp, sizeof(tmp), json ? "\\u%04x" : "\\x%02x", c);
			put(dst, dstlen, &at, tmp, strlen(tmp));
			s++;
			continue;
		}
		n = utf8_len(s);
		/* C1 controls (U+0080-U+009F, CSI among them) act on terminals: as bytes */
		if (!json && n == 2 && c == 0xc2 && s[1] < 0xa0)
			n = 0;
		if (n == 0) {
			snprintf(tmp, sizeof(tmp), json ? "\\udc%02x" : "\\x%02x", c);
			put(dst, dstlen, &at, tmp, strlen(tmp));
			s++;
			continue;
		}
		put(dst, dstlen, &at, (const char *)s, n);
		s += n;
	}
	if (dstlen)
		dst[at < dstlen ? at : dstlen - 1] = '\0';
	return at;
}

size_t hglog_escape_text(char *dst, size_t dstlen, const char *src, size_t len)
{
	const unsigned char *s = (const unsigned char *)src, *e = s + len;
	size_t at = 0, n, k;
	char tmp[8];

	while (s < e) {
		unsigned char ch = *s;

		n = 1;
		if (ch >= 0x80) {
			/* one valid UTF-8 sequence, or n = 0 */
			if (ch >= 0xc2 && ch <= 0xdf)
				n = 2;
			else if (ch >= 0xe0 && ch <= 0xef)
				n = 3;
			else if (ch >= 0xf0 && ch <= 0xf4)
				n = 4;
			else
				n = 0;
			if (n && (size_t)(e - s) < n)
				n = 0;
			for (k = 1; n && k < n; k++)
				if ((s[k] & 0xc0) != 0x80)
					n = 0;
			if (n == 3 && ((ch == 0xe0 && s[1] < 0xa0) || (ch == 0xed && s[1] >= 0xa0)))
				n = 0;
			if (n == 4 && ((ch == 0xf0 && s[1] < 0x90) || (ch == 0xf4 && s[1] >= 0x90)))
				n = 0;
			/* C1 controls (U+0080-U+009F: CSI among them) act on terminals too */
			if (n == 2 && ch == 0xc2 && s[1] < 0xa0)
				n = 0;
		}
		if (n == 0 || ch < 0x20 || ch == 0x7f) {
			snprintf(tmp, sizeof(tmp), "\\x%02x", ch);
			for (k = 0; tmp[k]; k++, at++)
				if (at + 1 < dstlen)
					dst[at] = tmp[k];
			s++;
			continue;
		}
		for (k = 0; k < n; k++, at++)
			if (at + 1 < dstlen)
				dst[at] = (char)s[k];
		s += n;
	}
	if (dstlen)
		dst[at < dstlen ? at : dstlen - 1] = '\0';
	return at;
}
