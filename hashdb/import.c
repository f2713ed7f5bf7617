/*
 * import.c - bulk import of plain, CSV and JSON-lines hash lists in one transaction.
 *
 * Two phases.  Read: every line is parsed into a fixed-size record (algo, digest, line number,
 * label offset, deleted flag); the first bad line stops the import before the database is
 * touched.  Write: records are sorted by (algo, value, line) - the primary-key order - so the
 * last occurrence of a hash wins and SQLite's B-tree inserts land on neighbouring pages; then
 * one BEGIN IMMEDIATE ... COMMIT (which bumps the generation) applies them with prepared
 * statements.  Any SQLite error rolls everything back.
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <sqlite3.h>

#include "hashdb/hash.h"
#include "hashdb/import.h"

#define LINE_MAX_LEN	(64 * 1024)
#define LABEL_MAX_LEN	1024
#define PROGRESS_EVERY	(1u << 16)

struct rec {
	uint8_t v[32];
	uint32_t line;
	uint32_t label;			/* offset + 1 into the label arena; 0 = none */
	uint8_t algo;
	uint8_t del;
};

struct import_ctx {
	const struct import_opts *o;
	const char *name;		/* for messages: the path or "<stdin>" */
	uint64_t lineno;
	struct rec *recs;
	size_t nrecs, caprecs;
	char *labels;
	size_t nlabels, caplabels;
	/* CSV header */
	int ncols;
	int *col;			/* per column: algo, -1 ignored, COL_LABEL, COL_DELETED, COL_HASH */
	char *scratch;			/* decoded fields of the current line */
	size_t scratchcap;
	char *err;
	size_t errlen;
};

#define COL_IGNORE	-1
#define COL_LABEL	-2
#define COL_DELETED	-3
#define COL_HASH	-4	/* generic "hash"/"value": algo from --type or the length */

__attribute__((format(printf, 2, 3)))
static int bad(struct import_ctx *c, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	snprintf(c->err, c->errlen, "%s:%llu: %s", c->name, (unsigned long long)c->lineno, why);
	return -EINVAL;
}

int import_format_parse(const char *s)
{
	if (!strcmp(s, "plain") || !strcmp(s, "txt") || !strcmp(s, "text"))
		return IMPORT_PLAIN;
	if (!strcmp(s, "csv"))
		return IMPORT_CSV;
	if (!strcmp(s, "jsonl") || !strcmp(s, "json") || !strcmp(s, "ndjson"))
		return IMPORT_JSONL;
	return -EINVAL;
}

static enum import_format guess_format(const char *path)
{
	const char *dot = strrchr(path, '.');

	if (dot && !strcasecmp(dot, ".csv"))
		return IMPORT_CSV;
	if (dot && (!strcasecmp(dot, ".jsonl") || !strcasecmp(dot, ".ndjson") ||
		    !strcasecmp(dot, ".json")))
		return IMPORT_JSONL;
	return IMPORT_PLAIN;
}

static int add_label(struct import_ctx *c, const char *s, size_t len, uint32_t *off)
{
	if (!s || !len) {
		*off = 0;
		return 0;
	}
	if (len > LABEL_MAX_LEN)
		return bad(c, "label longer than %d bytes", LABEL_MAX_LEN);
	if (memchr(s, '\0', len))
		return bad(c, "label contains a NUL character");
	if (c->nlabels + len + 1 > c->caplabels) {
		size_t cap = c->caplabels ? c->caplabels * 2 : 1 << 20;
		char *p;

		while (cap < c->nlabels + len + 1)
			cap *= 2;
		if (cap > 0xfffffff0u)
			return bad(c, "labels exceed 4 GiB in one import");
		p = realloc(c->labels, cap);
		if (!p)
			return -ENOMEM;
		c->labels = p;
		c->caplabels = cap;
	}
	memcpy(c->labels + c->nlabels, s, len);
	c->labels[c->nlabels + len] = '\0';
	*off = (uint32_t)c->nlabels + 1;
	c->nlabels += len + 1;
	return 0;
}

/*
 * Hex to bytes through a table: the import spends more time here than anywhere but SQLite,
 * so this does not go through hex_decode()'s per-digit validation pass.  len is even.
 */
static int unhex(const char *hex, size_t len, uint8_t *out)
{
	/* digit value + 1; 0 marks a non-hex character */
	static const uint8_t tab[256] = {
		['0'] = 1, ['1'] = 2, ['2'] = 3, ['3'] = 4, ['4'] = 5,
		['5'] = 6, ['6'] = 7, ['7'] = 8, ['8'] = 9, ['9'] = 10,
		['a'] = 11, ['b'] = 12, ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
		['A'] = 11, ['B'] = 12, ['C'] = 13, ['D'] = 14, ['E'] = 15, ['F'] = 16,
	};
	unsigned bad = 0;
	size_t i;

	for (i = 0; i < len; i += 2) {
		unsigned hi = tab[(unsigned char)hex[i]], lo = tab[(unsigned char)hex[i + 1]];

		bad |= !hi | !lo;
		out[i / 2] = (uint8_t)(((hi - 1) << 4) | ((lo - 1) & 0xf));
	}
	return bad ? -EINVAL : 0;
}

/* Parse one hex digest into a new record.  algo < 0: infer from the length. */
static int add_hash(struct import_ctx *c, int algo, const char *hex, size_t len,
		    const char *label, size_t labellen, int del)
{
	struct rec *r;
	size_t want;
	int e;

	if (algo < 0) {
		if (len == 32)
			algo = HASH_MD5;
		else if (len == 40)
			algo = HASH_SHA1;
		else if (len == 64)
			return bad(c, "64 hex digits may be SHA-256 or PDQ: give --type sha256 or "
				   "--type pdq");
		else
			return bad(c, "'%.*s' is not a hash (%zu characters; want 32 for MD5, 40 for "
				   "SHA-1, 64 for SHA-256/PDQ)", len > 80 ? 80 : (int)len, hex, len);
	}
	want = hash_algo_len((enum hash_algo)algo) * 2;
	if (len != want)
		return bad(c, "%s hash must be %zu hex digits, got %zu ('%.*s')",
			   hash_algo_name((enum hash_algo)algo), want, len,
			   len > 80 ? 80 : (int)len, hex);
	if (c->nrecs == c->caprecs) {
		size_t cap = c->caprecs ? c->caprecs * 2 : 4096;

		r = realloc(c->recs, cap * sizeof(*r));
		if (!r)
			return -ENOMEM;
		c->recs = r;
		c->caprecs = cap;
	}
	r = &c->recs[c->nrecs];
	memset(r, 0, sizeof(*r));
	if (unhex(hex, len, r->v) < 0)
		return bad(c, "'%.*s' is not hexadecimal", (int)len, hex);
	if (c->lineno > 0xffffffffu)
		return bad(c, "more than 4294967295 lines");
	r->line = (uint32_t)c->lineno;
	r->algo = (uint8_t)algo;
	r->del = (uint8_t)(del || c->o->remove);
	e = add_label(c, label, labellen, &r->label);
	if (e < 0)
		return e;
	c->nrecs++;
	return 0;
}

static int is_blank(int ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

static void trim(const char **s, size_t *len)
{
	while (*len && is_blank((unsigned char)**s)) {
		(*s)++;
		(*len)--;
	}
	while (*len && is_blank((unsigned char)(*s)[*len - 1]))
		(*len)--;
}

/* ---- plain ------------------------------------------------------------------------------ */

static int parse_plain(struct import_ctx *c, const char *s, size_t len)
{
	const char *label;
	size_t hl, ll;

	trim(&s, &len);
	if (!len || s[0] == '#')
		return 0;
	/* "HEX label" (sha256sum) or "HEX,quality,name" (the PDQ reference CLI) */
	for (hl = 0; hl < len && !is_blank((unsigned char)s[hl]) && s[hl] != ','; hl++)
		;
	label = s + hl;
	ll = len - hl;
	if (ll && *label == ',') {
		label++;
		ll--;
	}
	trim(&label, &ll);
	/* sha256sum marks binary mode with '*' before the name. */
	if (ll && label[0] == '*') {
		label++;
		ll--;
	}
	return add_hash(c, c->o->algo, s, hl, label, ll, 0);
}

/* ---- CSV -------------------------------------------------------------------------------- */

static int scratch_reserve(struct import_ctx *c, size_t len)
{
	if (!c->scratch || len + 1 > c->scratchcap) {
		char *p = realloc(c->scratch, len + 1);

		if (!p)
			return -ENOMEM;
		c->scratch = p;
		c->scratchcap = len + 1;
	}
	return 0;
}

/*
 * Split one CSV line into fields decoded into c->scratch; starts[i]/lens[i] point into it.
 * Returns the number of fields, or -EINVAL for broken quoting.
 */
static int csv_split(struct import_ctx *c, const char *s, size_t len, const char ***starts,
		     size_t **lens, int *cap)
{
	size_t i = 0, o = 0;
	int n = 0, r;

	r = scratch_reserve(c, len);
	if (r < 0)
		return r;
	for (;;) {
		size_t start = o;

		if (n == *cap) {
			int nc = *cap ? *cap * 2 : 16;
			const char **ns = realloc(*starts, nc * sizeof(**starts));
			size_t *nl;

			if (!ns)
				return -ENOMEM;
			*starts = ns;
			nl = realloc(*lens, nc * sizeof(**lens));
			if (!nl)
				return -ENOMEM;
			*lens = nl;
			memset(ns + *cap, 0, (size_t)(nc - *cap) * sizeof(*ns));
			memset(nl + *cap, 0, (size_t)(nc - *cap) * sizeof(*nl));
			*cap = nc;
		}
		while (i < len && (s[i] == ' ' || s[i] == '\t'))
			i++;
		if (i < len && s[i] == '"') {
			i++;
			for (;;) {
				if (i >= len)
					return bad(c, "field %d: unterminated quoted field", n + 1);
				if (s[i] == '"') {
					if (i + 1 < len && s[i + 1] == '"') {
						c->scratch[o++] = '"';
						i += 2;
						continue;
					}
					i++;
					break;
				}
				c->scratch[o++] = s[i++];
			}
			while (i < len && (s[i] == ' ' || s[i] == '\t'))
				i++;
			if (i < len && s[i] != ',')
				return bad(c, "field %d: text after closing quote", n + 1);
		} else {
			while (i < len && s[i] != ',') {
				if (s[i] == '"')
					return bad(c, "field %d: stray quote", n + 1);
				c->scratch[o++] = s[i++];
			}
			while (o > start && (c->scratch[o - 1] == ' ' || c->scratch[o - 1] == '\t'))
				o--;
		}
		(*starts)[n] = c->scratch + start;
		(*lens)[n] = o - start;
		n++;
		if (i >= len)
			break;
		i++;	/* the comma */
	}
	return n;
}

static int parse_bool(const char *s, size_t len, int *out)
{
	static const char *const yes[] = { "1", "true", "yes", "y", "t" };
	static const char *const no[] = { "", "0", "false", "no", "n", "f" };
	size_t k;

	for (k = 0; k < sizeof(yes) / sizeof(yes[0]); k++)
		if (strlen(yes[k]) == len && !strncasecmp(s, yes[k], len))
			return *out = 1, 0;
	for (k = 0; k < sizeof(no) / sizeof(no[0]); k++)
		if (strlen(no[k]) == len && !strncasecmp(s, no[k], len))
			return *out = 0, 0;
	return -EINVAL;
}

struct csv_state {
	const char **starts;
	size_t *lens;
	int cap;
};

static int csv_header(struct import_ctx *c, struct csv_state *cs, int n)
{
	int i, nhash = 0, a;
	char name[32];

	c->col = calloc((size_t)n, sizeof(*c->col));
	if (!c->col)
		return -ENOMEM;
	c->ncols = n;
	for (i = 0; i < n; i++) {
		size_t l = cs->lens[i];

		c->col[i] = COL_IGNORE;
		if (l >= sizeof(name) || !cs->starts[i])
			continue;
		memcpy(name, cs->starts[i], l);
		name[l] = '\0';
		a = hash_algo_parse(name);
		if (a >= 0) {
			c->col[i] = a;
			nhash++;
		} else if (!strcasecmp(name, "hash") || !strcasecmp(name, "value")) {
			c->col[i] = COL_HASH;
			nhash++;
		} else if (!strcasecmp(name, "label") || !strcasecmp(name, "name") ||
			   !strcasecmp(name, "comment")) {
			c->col[i] = COL_LABEL;
		} else if (!strcasecmp(name, "deleted") || !strcasecmp(name, "delete")) {
			c->col[i] = COL_DELETED;
		}
	}
	if (!nhash)
		return bad(c, "CSV header names no hash column (md5, sha1, sha256, pdq or hash)");
	return 0;
}

static int parse_csv(struct import_ctx *c, struct csv_state *cs, const char *s, size_t len)
{
	const char *label = NULL;
	size_t labellen = 0;
	int n, i, del = 0, nh = 0, r;

	trim(&s, &len);
	if (!len || (s[0] == '#' && !c->col))
		return 0;
	n = csv_split(c, s, len, &cs->starts, &cs->lens, &cs->cap);
	if (n < 0)
		return n;
	if (!c->col)
		return csv_header(c, cs, n);
	if (n != c->ncols)
		return bad(c, "%d fields, but the header has %d", n, c->ncols);
	for (i = 0; i < n; i++) {
		if (c->col[i] == COL_LABEL) {
			label = cs->starts[i];
			labellen = cs->lens[i];
		} else if (c->col[i] == COL_DELETED) {
			if (parse_bool(cs->starts[i], cs->lens[i], &del) < 0)
				return bad(c, "deleted must be true/false/1/0, not '%.*s'",
					   (int)cs->lens[i], cs->starts[i]);
		}
	}
	for (i = 0; i < n; i++) {
		if (c->col[i] == COL_IGNORE || c->col[i] == COL_LABEL || c->col[i] == COL_DELETED ||
		    !cs->lens[i])
			continue;
		r = add_hash(c, c->col[i] == COL_HASH ? c->o->algo : c->col[i], cs->starts[i],
			     cs->lens[i], label, labellen, del);
		if (r < 0)
			return r;
		nh++;
	}
	if (!nh)
		return bad(c, "no hash in this row");
	return 0;
}

/* ---- JSON lines ------------------------------------------------------------------------- */

enum jtype { J_STR, J_TRUE, J_FALSE, J_NULL, J_NUM, J_OTHER };

struct jval {
	enum jtype t;
	const char *s;			/* decoded string (J_STR) or the raw token (J_NUM) */
	size_t len;
};

struct jparser {
	const char *p, *end;
	char *out;			/* decode cursor in c->scratch */
	const char *why;
};

static void jws(struct jparser *j)
{
	while (j->p < j->end && is_blank((unsigned char)*j->p))
		j->p++;
}

static int hexdig(int ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch |= 0x20;
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	return -1;
}

static int j_u4(struct jparser *j, unsigned *u)
{
	int k, d;

	*u = 0;
	if (j->end - j->p < 4)
		return -1;
	for (k = 0; k < 4; k++) {
		d = hexdig((unsigned char)j->p[k]);
		if (d < 0)
			return -1;
		*u = *u << 4 | (unsigned)d;
	}
	j->p += 4;
	return 0;
}

static void put_utf8(struct jparser *j, unsigned u)
{
	if (u < 0x80) {
		*j->out++ = (char)u;
	} else if (u < 0x800) {
		*j->out++ = (char)(0xc0 | u >> 6);
		*j->out++ = (char)(0x80 | (u & 0x3f));
	} else if (u < 0x10000) {
		*j->out++ = (char)(0xe0 | u >> 12);
		*j->out++ = (char)(0x80 | ((u >> 6) & 0x3f));
		*j->out++ = (char)(0x80 | (u & 0x3f));
	} else {
		*j->out++ = (char)(0xf0 | u >> 18);
		*j->out++ = (char)(0x80 | ((u >> 12) & 0x3f));
		*j->out++ = (char)(0x80 | ((u >> 6) & 0x3f));
		*j->out++ = (char)(0x80 | (u & 0x3f));
	}
}

/* A string at j->p (on the quote), decoded into j->out; never longer than its source. */
static int j_string(struct jparser *j, struct jval *v)
{
	unsigned u, lo;

	j->p++;
	v->t = J_STR;
	v->s = j->out;
	while (j->p < j->end && *j->p != '"') {
		unsigned char ch = (unsigned char)*j->p++;

		if (ch < 0x20) {
			j->why = "control character in a string";
			return -1;
		}
		if (ch != '\\') {
			*j->out++ = (char)ch;
			continue;
		}
		if (j->p >= j->end)
			break;
		ch = (unsigned char)*j->p++;
		switch (ch) {
		case '"': case '\\': case '/':
			*j->out++ = (char)ch;
			break;
		case 'b': *j->out++ = '\b'; break;
		case 'f': *j->out++ = '\f'; break;
		case 'n': *j->out++ = '\n'; break;
		case 'r': *j->out++ = '\r'; break;
		case 't': *j->out++ = '\t'; break;
		case 'u':
			if (j_u4(j, &u) < 0) {
				j->why = "bad \\u escape";
				return -1;
			}
			if (u >= 0xd800 && u < 0xdc00 && j->end - j->p >= 6 && j->p[0] == '\\' &&
			    j->p[1] == 'u') {
				j->p += 2;
				if (j_u4(j, &lo) < 0 || lo < 0xdc00 || lo > 0xdfff) {
					j->why = "bad surrogate pair";
					return -1;
				}
				u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
			}
			put_utf8(j, u);
			break;
		default:
			j->why = "bad escape in a string";
			return -1;
		}
	}
	if (j->p >= j->end) {
		j->why = "unterminated string";
		return -1;
	}
	j->p++;
	v->len = (size_t)(j->out - v->s);
	return 0;
}

static int j_value(struct jparser *j, struct jval *v, int depth);

/* Skip an object or array (values nobody asked for). */
static int j_skip_container(struct jparser *j, int depth)
{
	char close = *j->p == '{' ? '}' : ']';
	int obj = close == '}';
	struct jval k, v;

	if (depth > 32) {
		j->why = "nested too deeply";
		return -1;
	}
	j->p++;
	jws(j);
	if (j->p < j->end && *j->p == close) {
		j->p++;
		return 0;
	}
	for (;;) {
		jws(j);
		if (obj) {
			if (j->p >= j->end || *j->p != '"') {
				j->why = "expected a key";
				return -1;
			}
			if (j_string(j, &k) < 0)
				return -1;
			jws(j);
			if (j->p >= j->end || *j->p != ':') {
				j->why = "expected ':'";
				return -1;
			}
			j->p++;
		}
		if (j_value(j, &v, depth + 1) < 0)
			return -1;
		jws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == close) {
			j->p++;
			return 0;
		}
		j->why = obj ? "expected ',' or '}'" : "expected ',' or ']'";
		return -1;
	}
}

static int j_lit(struct jparser *j, const char *lit, enum jtype t, struct jval *v)
{
	size_t n = strlen(lit);

	if ((size_t)(j->end - j->p) < n || memcmp(j->p, lit, n) != 0) {
		j->why = "unexpected token";
		return -1;
	}
	j->p += n;
	v->t = t;
	return 0;
}

static int j_value(struct jparser *j, struct jval *v, int depth)
{
	jws(j);
	if (j->p >= j->end) {
		j->why = "missing value";
		return -1;
	}
	switch (*j->p) {
	case '"':
		return j_string(j, v);
	case 't':
		return j_lit(j, "true", J_TRUE, v);
	case 'f':
		return j_lit(j, "false", J_FALSE, v);
	case 'n':
		return j_lit(j, "null", J_NULL, v);
	case '{':
	case '[':
		v->t = J_OTHER;
		return j_skip_container(j, depth);
	default:
		if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9')) {
			v->t = J_NUM;
			v->s = j->p;
			while (j->p < j->end && (strchr("+-.eE", *j->p) ||
						 (*j->p >= '0' && *j->p <= '9')))
				j->p++;
			v->len = (size_t)(j->p - v->s);
			return 0;
		}
		j->why = "unexpected character";
		return -1;
	}
}

#define JMAX_HASH	8

static int parse_jsonl(struct import_ctx *c, const char *s, size_t len)
{
	struct jparser j;
	struct jval k, v, label = { J_NULL, NULL, 0 }, hash = { J_NULL, NULL, 0 };
	struct { int algo; struct jval v; } hs[JMAX_HASH];
	int nh = 0, del = 0, algo = -2, a, i, r;
	char key[32];

	trim(&s, &len);
	if (!len)
		return 0;
	r = scratch_reserve(c, len);
	if (r < 0)
		return r;
	j.p = s;
	j.end = s + len;
	j.out = c->scratch;
	j.why = NULL;
	if (*j.p != '{')
		return bad(c, "not a JSON object");
	j.p++;
	jws(&j);
	if (j.p < j.end && *j.p == '}') {
		j.p++;
		goto done;
	}
	for (;;) {
		jws(&j);
		if (j.p >= j.end || *j.p != '"') {
			j.why = "expected a key";
			goto fail;
		}
		if (j_string(&j, &k) < 0)
			goto fail;
		jws(&j);
		if (j.p >= j.end || *j.p != ':') {
			j.why = "expected ':'";
			goto fail;
		}
		j.p++;
		if (j_value(&j, &v, 1) < 0)
			goto fail;
		if (k.len < sizeof(key)) {
			memcpy(key, k.s, k.len);
			key[k.len] = '\0';
		} else {
			key[0] = '\0';
		}
		if ((a = hash_algo_parse(key)) >= 0) {
			if (v.t == J_STR && v.len) {
				if (nh == JMAX_HASH)
					return bad(c, "too many hashes in one object");
				hs[nh].algo = a;
				hs[nh++].v = v;
			} else if (v.t != J_NULL && !(v.t == J_STR && !v.len)) {
				return bad(c, "\"%s\" must be a hex string", key);
			}
		} else if (!strcmp(key, "hash") || !strcmp(key, "value")) {
			if (v.t != J_STR)
				return bad(c, "\"%s\" must be a hex string", key);
			hash = v;
		} else if (!strcmp(key, "algo") || !strcmp(key, "type") ||
			   !strcmp(key, "algorithm")) {
			char an[16];

			if (v.t != J_STR || v.len >= sizeof(an))
				return bad(c, "\"%s\" must be md5, sha1, sha256 or pdq", key);
			memcpy(an, v.s, v.len);
			an[v.len] = '\0';
			algo = hash_algo_parse(an);
			if (algo < 0)
				return bad(c, "unknown hash algorithm '%s'", an);
		} else if (!strcmp(key, "label") || !strcmp(key, "name") ||
			   !strcmp(key, "comment")) {
			if (v.t != J_STR && v.t != J_NULL)
				return bad(c, "\"%s\" must be a string", key);
			label = v;
		} else if (!strcmp(key, "deleted") || !strcmp(key, "delete")) {
			if (v.t == J_TRUE || v.t == J_FALSE)
				del = v.t == J_TRUE;
			else if (v.t == J_NUM && v.len == 1 && (v.s[0] == '0' || v.s[0] == '1'))
				del = v.s[0] == '1';
			else
				return bad(c, "\"deleted\" must be true or false");
		}
		jws(&j);
		if (j.p < j.end && *j.p == ',') {
			j.p++;
			continue;
		}
		if (j.p < j.end && *j.p == '}') {
			j.p++;
			break;
		}
		j.why = "expected ',' or '}'";
		goto fail;
	}
done:
	jws(&j);
	if (j.p != j.end)
		return bad(c, "text after the JSON object");
	if (hash.t == J_STR) {
		if (nh == JMAX_HASH)
			return bad(c, "too many hashes in one object");
		hs[nh].algo = algo >= 0 ? algo : c->o->algo;
		hs[nh++].v = hash;
	} else if (algo >= 0) {
		return bad(c, "\"algo\" given without \"hash\"");
	}
	if (!nh)
		return bad(c, "no hash in this object (keys md5, sha1, sha256, pdq or hash)");
	for (i = 0; i < nh; i++) {
		r = add_hash(c, hs[i].algo, hs[i].v.s, hs[i].v.len,
			     label.t == J_STR ? label.s : NULL, label.t == J_STR ? label.len : 0, del);
		if (r < 0)
			return r;
	}
	return 0;
fail:
	return bad(c, "invalid JSON: %s at column %zu", j.why ? j.why : "syntax error",
		   (size_t)(j.p - s) + 1);
}

/* ---- write ------------------------------------------------------------------------------ */

static int rec_cmp(const void *pa, const void *pb)
{
	const struct rec *a = pa, *b = pb;
	int c;

	if (a->algo != b->algo)
		return a->algo < b->algo ? -1 : 1;
	c = memcmp(a->v, b->v, hash_algo_len((enum hash_algo)a->algo));
	if (c)
		return c;
	return a->line < b->line ? -1 : a->line > b->line;
}

static void insertion_sort(struct rec *v, size_t n)
{
	size_t i, j;
	struct rec t;

	for (i = 1; i < n; i++) {
		if (rec_cmp(&v[i - 1], &v[i]) <= 0)
			continue;
		t = v[i];
		for (j = i; j > 0 && rec_cmp(&v[j - 1], &t) > 0; j--)
			v[j] = v[j - 1];
		v[j] = t;
	}
}

/*
 * Sort by (algo, value, line).  A counting sort on (algo, first two bytes) - stable, so line
 * order survives - then small per-bucket sorts: digests are uniform, so buckets hold n/65536
 * records and this is several times faster than one qsort over millions.
 */
static int sort_records(struct import_ctx *c)
{
	const size_t nb = (size_t)HASH_NALGOS << 16;
	size_t *cnt, i, b, sum = 0;
	struct rec *out;

	if (c->nrecs < 2)
		return 0;
	if (c->nrecs < 4096) {
		qsort(c->recs, c->nrecs, sizeof(*c->recs), rec_cmp);
		return 0;
	}
	cnt = calloc(nb + 1, sizeof(*cnt));
	out = malloc(c->nrecs * sizeof(*out));
	if (!cnt || !out) {
		free(cnt);
		free(out);
		return -ENOMEM;
	}
#define BUCKET(r) (((size_t)(r)->algo << 16) | ((size_t)(r)->v[0] << 8) | (r)->v[1])
	for (i = 0; i < c->nrecs; i++)
		cnt[BUCKET(&c->recs[i]) + 1]++;
	for (b = 0; b <= nb; b++) {
		sum += cnt[b];
		cnt[b] = sum;
	}
	for (i = 0; i < c->nrecs; i++)
		out[cnt[BUCKET(&c->recs[i])]++] = c->recs[i];
#undef BUCKET
	/* cnt[b] is now the end of bucket b (the start of b + 1). */
	for (b = 0; b < nb; b++) {
		size_t start = b ? cnt[b - 1] : 0, n = cnt[b] - start;

		if (n < 2)
			continue;
		if (n <= 32)
			insertion_sort(out + start, n);
		else
			qsort(out + start, n, sizeof(*out), rec_cmp);
	}
	free(cnt);
	free(c->recs);
	c->recs = out;
	c->caprecs = c->nrecs;
	return 0;
}

/* Keys compare like SQLite's BLOB order within an algo: memcmp of equal lengths. */
static int key_cmp(int algo_a, const uint8_t *va, int algo_b, const uint8_t *vb)
{
	if (algo_a != algo_b)
		return algo_a < algo_b ? -1 : 1;
	return memcmp(va, vb, hash_algo_len((enum hash_algo)algo_a));
}

/*
 * --replace: delete the list's hashes that the file does not add.  The list's rows come in
 * (algo, value) primary-key order, so this is a merge with the sorted records.
 */
static int replace_prune(struct hashdb *db, struct import_ctx *c, int64_t list_id,
			 struct import_stats *st)
{
	sqlite3_stmt *sel = NULL, *del = NULL;
	uint8_t (*gone)[33] = NULL, (*ng)[33];
	size_t ngone = 0, capgone = 0, i = 0, k;
	int rc, r = 0;

	rc = sqlite3_prepare_v2(db->sql, "SELECT algo, value FROM hashes WHERE list_id = ? "
				"ORDER BY algo, value", -1, &sel, NULL);
	if (rc != SQLITE_OK)
		return hashdb_sql_error(db, rc, "read list", c->err, c->errlen);
	sqlite3_bind_int64(sel, 1, list_id);
	while ((rc = sqlite3_step(sel)) == SQLITE_ROW) {
		int a = sqlite3_column_int(sel, 0);
		const uint8_t *v = sqlite3_column_blob(sel, 1);
		int cmp = 1;

		if (a < 0 || a >= HASH_NALGOS || !v ||
		    (size_t)sqlite3_column_bytes(sel, 1) != hash_algo_len((enum hash_algo)a))
			continue;
		/* Advance to the first record >= this row; records are deduplicated already. */
		while (i < c->nrecs && (cmp = key_cmp(c->recs[i].algo, c->recs[i].v, a, v)) < 0)
			i++;
		if (i < c->nrecs && cmp == 0 && !c->recs[i].del)
			continue;
		if (ngone == capgone) {
			capgone = capgone ? capgone * 2 : 1024;
			ng = realloc(gone, capgone * sizeof(*gone));
			if (!ng) {
				r = -ENOMEM;
				goto out;
			}
			gone = ng;
		}
		gone[ngone][0] = (uint8_t)a;
		memcpy(gone[ngone] + 1, v, hash_algo_len((enum hash_algo)a));
		ngone++;
	}
	if (rc != SQLITE_DONE) {
		r = hashdb_sql_error(db, rc, "read list", c->err, c->errlen);
		goto out;
	}
	rc = sqlite3_prepare_v2(db->sql, "DELETE FROM hashes WHERE algo = ? AND value = ? "
				"AND list_id = ?", -1, &del, NULL);
	if (rc != SQLITE_OK) {
		r = hashdb_sql_error(db, rc, "prepare", c->err, c->errlen);
		goto out;
	}
	for (k = 0; k < ngone; k++) {
		sqlite3_bind_int(del, 1, gone[k][0]);
		sqlite3_bind_blob(del, 2, gone[k] + 1,
				  (int)hash_algo_len((enum hash_algo)gone[k][0]), SQLITE_STATIC);
		sqlite3_bind_int64(del, 3, list_id);
		rc = sqlite3_step(del);
		if (rc != SQLITE_DONE) {
			r = hashdb_sql_error(db, rc, "delete", c->err, c->errlen);
			goto out;
		}
		sqlite3_reset(del);
		st->removed++;
	}
out:
	sqlite3_finalize(sel);
	sqlite3_finalize(del);
	free(gone);
	return r;
}

/* Keep only the last record of each (algo, value); records are sorted with line ascending. */
static void dedup(struct import_ctx *c)
{
	size_t i, o = 0;

	for (i = 0; i < c->nrecs; i++) {
		if (o && key_cmp(c->recs[o - 1].algo, c->recs[o - 1].v, c->recs[i].algo,
				 c->recs[i].v) == 0)
			c->recs[o - 1] = c->recs[i];
		else
			c->recs[o++] = c->recs[i];
	}
	c->nrecs = o;
}

static int write_records(struct hashdb *db, struct import_ctx *c, struct import_stats *st)
{
	const struct import_opts *o = c->o;
	sqlite3_stmt *ins = NULL, *upd = NULL, *del = NULL;
	int64_t list_id, now = (int64_t)time(NULL);
	size_t i;
	int r, rc;

	r = hashdb_begin(db, c->err, c->errlen);
	if (r < 0)
		return r;
	r = hashdb_list_ensure(db, o->list, o->category, o->origin, o->version, &list_id,
			       c->err, c->errlen);
	if (r < 0)
		goto out_rollback;
	if (o->replace) {
		r = replace_prune(db, c, list_id, st);
		if (r < 0)
			goto out_rollback;
	}
	rc = sqlite3_prepare_v2(db->sql, "INSERT OR IGNORE INTO hashes(algo, value, list_id, added, "
				"label) VALUES (?, ?, ?, ?, ?)", -1, &ins, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db->sql, "UPDATE hashes SET label = ? WHERE algo = ? AND "
					"value = ? AND list_id = ?", -1, &upd, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db->sql, "DELETE FROM hashes WHERE algo = ? AND value = ? "
					"AND list_id = ?", -1, &del, NULL);
	if (rc != SQLITE_OK) {
		r = hashdb_sql_error(db, rc, "prepare", c->err, c->errlen);
		goto out_rollback;
	}
	sqlite3_bind_int64(ins, 3, list_id);
	sqlite3_bind_int64(ins, 4, now);
	sqlite3_bind_int64(upd, 4, list_id);
	sqlite3_bind_int64(del, 3, list_id);
	for (i = 0; i < c->nrecs; i++) {
		const struct rec *rec = &c->recs[i];
		int len = (int)hash_algo_len((enum hash_algo)rec->algo);
		const char *label = rec->label ? c->labels + rec->label - 1 : NULL;

		if (rec->del) {
			sqlite3_bind_int(del, 1, rec->algo);
			sqlite3_bind_blob(del, 2, rec->v, len, SQLITE_STATIC);
			rc = sqlite3_step(del);
			sqlite3_reset(del);
			if (rc != SQLITE_DONE)
				goto sql_fail;
			if (sqlite3_changes(db->sql))
				st->removed++;
			else
				st->absent++;
		} else {
			sqlite3_bind_int(ins, 1, rec->algo);
			sqlite3_bind_blob(ins, 2, rec->v, len, SQLITE_STATIC);
			if (label)
				sqlite3_bind_text(ins, 5, label, -1, SQLITE_STATIC);
			else
				sqlite3_bind_null(ins, 5);
			rc = sqlite3_step(ins);
			sqlite3_reset(ins);
			if (rc != SQLITE_DONE)
				goto sql_fail;
			if (sqlite3_changes(db->sql)) {
				st->added++;
			} else {
				st->existing++;
				if (label) {
					sqlite3_bind_text(upd, 1, label, -1, SQLITE_STATIC);
					sqlite3_bind_int(upd, 2, rec->algo);
					sqlite3_bind_blob(upd, 3, rec->v, len, SQLITE_STATIC);
					rc = sqlite3_step(upd);
					sqlite3_reset(upd);
					if (rc != SQLITE_DONE)
						goto sql_fail;
				}
			}
		}
		if (o->progress && (i % PROGRESS_EVERY) == 0)
			o->progress(o->progress_arg, "write", i, c->nrecs);
	}
	if (o->progress)
		o->progress(o->progress_arg, "write", c->nrecs, c->nrecs);
	sqlite3_finalize(ins);
	sqlite3_finalize(upd);
	sqlite3_finalize(del);
	if (o->progress)
		o->progress(o->progress_arg, "commit", 0, 0);
	return hashdb_commit(db, c->err, c->errlen);
sql_fail:
	r = hashdb_sql_error(db, rc, "write hashes", c->err, c->errlen);
out_rollback:
	sqlite3_finalize(ins);
	sqlite3_finalize(upd);
	sqlite3_finalize(del);
	hashdb_rollback(db);
	memset(st, 0, sizeof(*st));
	return r;
}

int import_file(struct hashdb *db, const char *path, const struct import_opts *o,
		struct import_stats *st, char *err, size_t errlen)
{
	struct import_ctx c = { 0 };
	struct csv_state cs = { 0 };
	enum import_format fmt;
	struct stat sb;
	uint64_t total = 0;
	char *line = NULL, *s;
	size_t linecap = 0;
	ssize_t n;
	FILE *f;
	int r = 0;

	memset(st, 0, sizeof(*st));
	c.o = o;
	c.err = err;
	c.errlen = errlen;
	if (!o->list || !hashdb_valid_name(o->list, HASHDB_NAME_MAX)) {
		snprintf(err, errlen, "invalid list name '%s' (1-%d of A-Z a-z 0-9 . _ -)",
			 o->list ? o->list : "", HASHDB_NAME_MAX);
		return -EINVAL;
	}
	if (o->category && !hashdb_valid_name(o->category, HASHDB_CATEGORY_MAX)) {
		snprintf(err, errlen, "invalid category '%s' (1-%d of A-Z a-z 0-9 . _ -)",
			 o->category, HASHDB_CATEGORY_MAX);
		return -EINVAL;
	}
	if (o->algo >= HASH_NALGOS) {
		snprintf(err, errlen, "invalid hash type %d", o->algo);
		return -EINVAL;
	}
	if (!strcmp(path, "-")) {
		f = stdin;
		c.name = "<stdin>";
	} else {
		f = fopen(path, "re");
		if (!f) {
			r = -errno;
			snprintf(err, errlen, "%s: %s", path, strerror(-r));
			return r;
		}
		c.name = path;
	}
	if (fstat(fileno(f), &sb) == 0 && S_ISDIR(sb.st_mode)) {
		r = -EISDIR;
		snprintf(err, errlen, "%s: is a directory", c.name);
		goto out;
	}
	if (fstat(fileno(f), &sb) == 0 && S_ISREG(sb.st_mode))
		total = (uint64_t)sb.st_size;
	else
		sb.st_mode = 0;		/* not a regular file: no change check at the end */
	fmt = o->format != IMPORT_AUTO ? o->format : guess_format(c.name);
	while ((n = getline(&line, &linecap, f)) >= 0) {
		c.lineno++;
		if (n > LINE_MAX_LEN) {
			r = bad(&c, "line longer than %d bytes", LINE_MAX_LEN);
			goto out;
		}
		if (memchr(line, '\0', (size_t)n)) {
			r = bad(&c, "NUL byte in line (binary file?)");
			goto out;
		}
		/* spreadsheet exports start with a UTF-8 byte order mark */
		s = line;
		if (c.lineno == 1 && n >= 3 && !memcmp(line, "\xef\xbb\xbf", 3)) {
			s += 3;
			n -= 3;
		}
		switch (fmt) {
		case IMPORT_CSV:
			r = parse_csv(&c, &cs, s, (size_t)n);
			break;
		case IMPORT_JSONL:
			r = parse_jsonl(&c, s, (size_t)n);
			break;
		default:
			r = parse_plain(&c, s, (size_t)n);
			break;
		}
		if (r < 0) {
			if (r == -ENOMEM)
				snprintf(err, errlen, "%s:%llu: out of memory", c.name,
					 (unsigned long long)c.lineno);
			goto out;
		}
		if (o->progress && (c.lineno % PROGRESS_EVERY) == 0)
			o->progress(o->progress_arg, "read", total ? (uint64_t)ftello(f) : c.lineno,
				    total);
	}
	if (ferror(f)) {
		r = errno ? -errno : -EIO;
		snprintf(err, errlen, "%s: read error after line %llu: %s", c.name,
			 (unsigned long long)c.lineno, strerror(-r));
		goto out;
	}
	/*
	 * A list rewritten in place while we read it (a downloader truncating and writing again)
	 * would give a mix of old and new lines or a prefix: refuse it rather than import that.
	 */
	if (S_ISREG(sb.st_mode)) {
		struct stat now;

		if (fstat(fileno(f), &now) < 0 || now.st_size != sb.st_size ||
		    now.st_mtim.tv_sec != sb.st_mtim.tv_sec ||
		    now.st_mtim.tv_nsec != sb.st_mtim.tv_nsec ||
		    now.st_ctim.tv_sec != sb.st_ctim.tv_sec ||
		    now.st_ctim.tv_nsec != sb.st_ctim.tv_nsec ||
		    ftello(f) != now.st_size) {
			r = -ESTALE;
			snprintf(err, errlen, "%s: the file changed while it was being read "
				 "(after line %llu); nothing imported, run the import again",
				 c.name, (unsigned long long)c.lineno);
			goto out;
		}
	}
	if (fmt == IMPORT_CSV && !c.col) {
		r = -EINVAL;
		snprintf(err, errlen, "%s: empty CSV file (no header)", c.name);
		goto out;
	}
	st->lines = c.lineno;
	if (o->progress)
		o->progress(o->progress_arg, "sort", 0, 0);
	r = sort_records(&c);
	if (r < 0) {
		snprintf(err, errlen, "%s: out of memory sorting %zu hashes", c.name, c.nrecs);
		goto out;
	}
	dedup(&c);
	st->records = c.nrecs;
	r = write_records(db, &c, st);
	if (r == 0)
		st->lines = c.lineno;
out:
	if (f != stdin)
		fclose(f);
	free(line);
	free(c.recs);
	free(c.labels);
	free(c.col);
	free(c.scratch);
	free(cs.starts);
	free(cs.lens);
	return r;
}
