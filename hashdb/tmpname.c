/*
 * tmpname.c - intended names of temporary upload names (see tmpname.h).  Each pattern maps the
 * last path component to a non-empty name that is not "." or ".."; the directory is kept.
 */
#include <string.h>

#include "hashdb/tmpname.h"

static int alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int ends_with(const char *s, size_t n, const char *suf)
{
	size_t k = strlen(suf);

	return n > k && memcmp(s + n - k, suf, k) == 0;
}

/* A name with an extension of its own: a dot after the first character, not at the end. */
static int has_ext(const char *s, size_t n)
{
	for (size_t i = 1; i + 1 < n; i++)
		if (s[i] == '.')
			return 1;
	return 0;
}

/* The intended name inside base (blen bytes) as [*start, *start + *n). */
static const char *match(const char *base, size_t blen, size_t *start, size_t *n)
{
	const char *dot = memrchr(base, '.', blen);

	/* rsync: ".NAME.XXXXXX" */
	if (base[0] == '.' && dot && dot > base + 1 && blen - (size_t)(dot - base) == 7) {
		int all = 1;

		for (const char *c = dot + 1; c < base + blen; c++)
			all &= alnum(*c);
		if (all) {
			*start = 1;
			*n = (size_t)(dot - base) - 1;
			return "rsync";
		}
	}
	/* ProFTPD HiddenStores: ".in.NAME." */
	if (blen > 5 && memcmp(base, ".in.", 4) == 0 && base[blen - 1] == '.') {
		*start = 4;
		*n = blen - 5;
		return "proftpd";
	}
	if (ends_with(base, blen, ".filepart")) {
		*start = 0;
		*n = blen - 9;
		return "winscp";
	}
	if (ends_with(base, blen, ".part")) {
		const char *t = NULL;

		/* Nextcloud/ownCloud: "NAME.ocTransferIdDIGITS.part" */
		for (const char *p = base; p + 13 <= base + blen - 5; p++)
			if (memcmp(p, ".ocTransferId", 13) == 0)
				t = p;
		if (t) {
			const char *d = t + 13;

			while (d < base + blen - 5 && *d >= '0' && *d <= '9')
				d++;
			if (d == base + blen - 5 && d > t + 13) {
				*start = 0;
				*n = (size_t)(t - base);
				return "nextcloud";
			}
		}
		if (has_ext(base, blen - 5)) {
			*start = 0;
			*n = blen - 5;
			return "part";
		}
	}
	if (ends_with(base, blen, ".tmp") && has_ext(base, blen - 4)) {
		*start = 0;
		*n = blen - 4;
		return "tmp";
	}
	return NULL;
}

int tmpname_intended(const char *path, char *out, size_t len, const char **pattern)
{
	const char *base = strrchr(path, '/'), *pat;
	size_t blen, dlen, start, n;

	base = base ? base + 1 : path;
	blen = strlen(base);
	if (!blen)
		return 0;
	pat = match(base, blen, &start, &n);
	if (!pat || !n || (n == 1 && base[start] == '.') ||
	    (n == 2 && base[start] == '.' && base[start + 1] == '.'))
		return 0;
	dlen = (size_t)(base - path);
	if (dlen + n + 1 > len)
		return 0;
	memcpy(out, path, dlen);
	memcpy(out + dlen, base + start, n);
	out[dlen + n] = '\0';
	if (pattern)
		*pattern = pat;
	return 1;
}
