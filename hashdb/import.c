/*
 * import.c - bulk import of plain, CSV and JSON hash lists (optionally gzip-compressed) in one
 * transaction.  Formats and contract in import.h.
 *
 * Two phases.  Read: every line (or JSON object) is parsed into a fixed-size record (algo,
 * digest, line number, metadata offset, quality, deleted flag); the first bad line stops the
 * import before the database is touched (check mode: every bad line is reported and nothing
 * is written).  Write: records are sorted by (algo, value, line) - the primary-key order - so
 * the last occurrence of a hash wins and SQLite's B-tree inserts land on neighbouring pages;
 * then one BEGIN IMMEDIATE ... COMMIT (which bumps the generation) applies them with prepared
 * statements.  Any SQLite error rolls everything back.
 *
 * Input goes through zlib's gzread, which passes a file that is not gzip through unchanged,
 * so a .gz list and a plain one take the same path.  Every message that quotes the file (its
 * name included) is escaped (hglog_escape_text): a list file cannot write terminal escapes.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>
#include <zlib.h>

#include "hashdb/hash.h"
#include "hashdb/hglog.h"
#include "hashdb/import.h"
#include "hashdb/json.h"

#define LINE_MAX_LEN	(64 * 1024)
#define LABEL_MAX_LEN	1024
#define PROGRESS_EVERY	(1u << 16)
#define DOC_MAX_LEN	((size_t)1 << 31)	/* a JSON document read whole */

struct rec {
	uint8_t v[32];
	uint32_t line;
	uint32_t meta;			/* offset + 1 into the metadata arena ("label\0ref\0cat\0");
					   0 = none */
	int16_t quality;		/* -1: none */
	uint8_t algo;
	uint8_t del;
};

/* Fields of a CSV column or JSON key. */
enum field {
	F_IGNORE = -1,
	/* 0..HASH_NALGOS-1: a hash of that algorithm */
	F_HASH = HASH_NALGOS,		/* generic: algo from F_ALGO, --type or the length */
	F_LABEL,
	F_REF,
	F_CATEGORY,
	F_QUALITY,
	F_DELETED,
	F_ALGO,
	F_SKIP,				/* known, not imported: export's "list" and "added" */
};

/* Per-row metadata being collected for one line. */
struct rowmeta {
	const char *label, *ref, *cat;
	size_t labellen, reflen, catlen;
	int quality;
	int del;
	int algo;			/* from an algo/type field; -1 */
};

struct input {
	gzFile gz;
	int fd;
	char *buf;
	size_t cap, start, end;
	int eof;
};

struct import_ctx {
	const struct import_opts *o;
	const char *name;		/* for messages: the path or "<stdin>" */
	char ename[512];		/* the name escaped */
	uint64_t lineno;
	struct rec *recs;
	size_t nrecs, caprecs;
	char *meta;
	size_t nmeta, capmeta;
	/* CSV */
	char delim;
	int ncols;
	int *col;			/* enum field per column */
	const char **starts;
	size_t *lens;
	int capfields;
	/* JSON: keys nobody understood (for one warning) */
	char unknown[256];
	size_t nunknown;
	char *scratch;			/* decoded fields of the current line */
	size_t scratchcap;
	char *err;
	size_t errlen;
};

/* A message about the current line: "FILE:LINE: why", escaped. */
__attribute__((format(printf, 2, 3)))
static int bad(struct import_ctx *c, const char *fmt, ...)
{
	char why[1024], raw[1200];
	va_list ap;
	int n;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	n = snprintf(raw, sizeof(raw), "%s:%llu: ", c->ename, (unsigned long long)c->lineno);
	if (n < 0 || (size_t)n >= sizeof(raw))
		n = 0;
	hglog_escape_text(raw + n, sizeof(raw) - (size_t)n, why, strlen(why));
	snprintf(c->err, c->errlen, "%s", raw);
	return -EINVAL;
}

static void warn(struct import_ctx *c, const char *msg)
{
	if (c->o->message)
		c->o->message(c->o->message_arg, IMPORT_WARN, msg);
}

int import_format_parse(const char *s)
{
	if (!strcmp(s, "plain") || !strcmp(s, "txt") || !strcmp(s, "text"))
		return IMPORT_PLAIN;
	if (!strcmp(s, "csv") || !strcmp(s, "tsv"))
		return IMPORT_CSV;
	if (!strcmp(s, "jsonl") || !strcmp(s, "json") || !strcmp(s, "ndjson"))
		return IMPORT_JSONL;
	return -EINVAL;
}

static enum import_format guess_format(const char *path)
{
	size_t len = strlen(path);
	const char *dot;
	char base[4096];

	if (len > 3 && !strcasecmp(path + len - 3, ".gz") && len - 3 < sizeof(base)) {
		memcpy(base, path, len - 3);
		base[len - 3] = '\0';
		path = base;
	}
	dot = strrchr(path, '.');
	if (dot && (!strcasecmp(dot, ".csv") || !strcasecmp(dot, ".tsv")))
		return IMPORT_CSV;
	if (dot && (!strcasecmp(dot, ".jsonl") || !strcasecmp(dot, ".ndjson") ||
		    !strcasecmp(dot, ".json")))
		return IMPORT_JSONL;
	return IMPORT_PLAIN;
}

/* ---- field names ------------------------------------------------------------------------ */

/* Lower case without ' ', '-', '_', '.': "MD5 Hash" -> "md5hash", "SHA-1" -> "sha1". */
static size_t norm_name(const char *s, size_t len, char *out, size_t outlen)
{
	size_t o = 0, i;

	for (i = 0; i < len; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == ' ' || ch == '-' || ch == '_' || ch == '.' || ch == '\t')
			continue;
		if (o + 1 >= outlen)
			return 0;
		out[o++] = (char)tolower(ch);
	}
	out[o] = '\0';
	return o;
}

static const struct { const char *name; int field; } field_names[] = {
	{ "md5", HASH_MD5 }, { "md5hash", HASH_MD5 }, { "hashmd5", HASH_MD5 },
	{ "md5sum", HASH_MD5 }, { "videomd5", HASH_MD5 },
	{ "sha1", HASH_SHA1 }, { "sha1hash", HASH_SHA1 }, { "hashsha1", HASH_SHA1 },
	{ "sha256", HASH_SHA256 }, { "sha256hash", HASH_SHA256 }, { "hashsha256", HASH_SHA256 },
	{ "pdq", HASH_PDQ }, { "pdqhash", HASH_PDQ }, { "hashpdq", HASH_PDQ },
	{ "hash", F_HASH }, { "value", F_HASH }, { "hashvalue", F_HASH },
	{ "signalvalue", F_HASH }, { "digest", F_HASH },
	{ "label", F_LABEL }, { "name", F_LABEL }, { "comment", F_LABEL },
	{ "description", F_LABEL }, { "filename", F_LABEL }, { "file", F_LABEL },
	{ "id", F_REF }, { "ref", F_REF }, { "reference", F_REF }, { "identifier", F_REF },
	{ "hashid", F_REF }, { "contentid", F_REF }, { "bankcontentid", F_REF },
	{ "category", F_CATEGORY }, { "classification", F_CATEGORY },
	{ "quality", F_QUALITY }, { "pdqquality", F_QUALITY },
	{ "deleted", F_DELETED }, { "delete", F_DELETED }, { "tombstone", F_DELETED },
	{ "algo", F_ALGO }, { "type", F_ALGO }, { "algorithm", F_ALGO }, { "hashtype", F_ALGO },
	{ "signaltype", F_ALGO },
	{ "list", F_SKIP }, { "added", F_SKIP },
};

/* enum field of a column/key name, F_IGNORE if unknown. */
static int field_of(const char *s, size_t len)
{
	char n[40];
	size_t k;

	if (!norm_name(s, len, n, sizeof(n)))
		return F_IGNORE;
	for (k = 0; k < sizeof(field_names) / sizeof(field_names[0]); k++)
		if (!strcmp(n, field_names[k].name))
			return field_names[k].field;
	return F_IGNORE;
}

int import_field_known(const char *name, size_t len)
{
	return field_of(name, len) != F_IGNORE;
}

/* An algorithm named by a value ("pdq", "SHA-256", HMA's "video_md5"), or -1. */
static int algo_of(const char *s, size_t len)
{
	int f = field_of(s, len);

	return f >= 0 && f < HASH_NALGOS ? f : -1;
}

/* ---- records ---------------------------------------------------------------------------- */

static int arena_put(struct import_ctx *c, const char *s, size_t len)
{
	if (c->nmeta + len + 1 > c->capmeta) {
		size_t cap = c->capmeta ? c->capmeta * 2 : 1 << 20;
		char *p;

		while (cap < c->nmeta + len + 1)
			cap *= 2;
		if (cap > 0xfffffff0u)
			return bad(c, "labels exceed 4 GiB in one import");
		p = realloc(c->meta, cap);
		if (!p)
			return -ENOMEM;
		c->meta = p;
		c->capmeta = cap;
	}
	if (len)
		memcpy(c->meta + c->nmeta, s, len);
	c->meta[c->nmeta + len] = '\0';
	c->nmeta += len + 1;
	return 0;
}

static int check_text(struct import_ctx *c, const char *what, const char *s, size_t len)
{
	if (len > LABEL_MAX_LEN)
		return bad(c, "%s longer than %d bytes", what, LABEL_MAX_LEN);
	if (len && memchr(s, '\0', len))
		return bad(c, "%s contains a NUL character", what);
	return 0;
}

/* Store label/ref/category once per line; *off = 0 when the line has none. */
static int add_meta(struct import_ctx *c, const struct rowmeta *m, uint32_t *off)
{
	size_t start = c->nmeta;
	int r;

	*off = 0;
	if (!m->labellen && !m->reflen && !m->catlen)
		return 0;
	if ((r = check_text(c, "label", m->label, m->labellen)) < 0 ||
	    (r = check_text(c, "id", m->ref, m->reflen)) < 0)
		return r;
	if (m->catlen) {
		char cat[HASHDB_CATEGORY_MAX + 1];

		if (m->catlen > HASHDB_CATEGORY_MAX)
			return bad(c, "category '%.*s' longer than %d characters",
				   m->catlen > 80 ? 80 : (int)m->catlen, m->cat, HASHDB_CATEGORY_MAX);
		memcpy(cat, m->cat, m->catlen);
		cat[m->catlen] = '\0';
		if (!hashdb_valid_name(cat, HASHDB_CATEGORY_MAX))
			return bad(c, "invalid category '%s' (1-%d of A-Z a-z 0-9 . _ -)", cat,
				   HASHDB_CATEGORY_MAX);
	}
	if ((r = arena_put(c, m->label, m->labellen)) < 0 ||
	    (r = arena_put(c, m->ref, m->reflen)) < 0 ||
	    (r = arena_put(c, m->cat, m->catlen)) < 0)
		return r;
	*off = (uint32_t)start + 1;
	return 0;
}

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
static int add_hash(struct import_ctx *c, int algo, const char *hex, size_t len, uint32_t meta,
		    int quality, int del)
{
	struct rec *r;
	size_t want;

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
	r->meta = meta;
	r->quality = (int16_t)quality;
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

static int parse_quality(struct import_ctx *c, const char *s, size_t len, int *q)
{
	int v = 0;
	size_t i;

	*q = -1;
	if (!len)
		return 0;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9' || i >= 3)
			return bad(c, "quality must be a number 0-100, not '%.*s'",
				   len > 40 ? 40 : (int)len, s);
		v = v * 10 + (s[i] - '0');
	}
	if (v > 100)
		return bad(c, "quality must be a number 0-100, not '%.*s'", (int)len, s);
	*q = v;
	return 0;
}

/* ---- plain ------------------------------------------------------------------------------ */

/*
 * BSD / `sha256sum --tag`: "SHA256 (name) = HEX".  Returns 1 and fills the parts when s has
 * that shape (the last ") = " ends the name, names may contain parentheses), else 0.
 */
static int bsd_tag(const char *s, size_t len, const char **tag, size_t *taglen,
		   const char **name, size_t *namelen, const char **hex, size_t *hexlen)
{
	size_t i, t;

	for (t = 0; t < len && t < 16 && s[t] != ' '; t++)
		if (!isalnum((unsigned char)s[t]) && s[t] != '-')
			return 0;
	if (t == 0 || t + 2 > len || s[t] != ' ' || s[t + 1] != '(')
		return 0;
	for (i = len; i-- > t + 2;) {
		if (i + 4 <= len && !memcmp(s + i, ") = ", 4)) {
			*tag = s;
			*taglen = t;
			*name = s + t + 2;
			*namelen = i - (t + 2);
			*hex = s + i + 4;
			*hexlen = len - (i + 4);
			return 1;
		}
	}
	return 0;
}

static int parse_plain(struct import_ctx *c, const char *s, size_t len)
{
	struct rowmeta m = { .quality = -1 };
	const char *tag, *hex;
	size_t hl, taglen;
	uint32_t meta;
	int r, algo = c->o->algo;

	trim(&s, &len);
	if (!len || s[0] == '#')
		return 0;
	if (!isxdigit((unsigned char)s[0]) || (len > 1 && s[1] == ' ' && s[2] == '(')) {
		if (bsd_tag(s, len, &tag, &taglen, &m.label, &m.labellen, &hex, &hl)) {
			int a = algo_of(tag, taglen);

			if (a < 0)
				return bad(c, "unsupported hash type '%.*s' (MD5, SHA1, SHA256)",
					   (int)taglen, tag);
			if (algo >= 0 && a != algo)
				return bad(c, "the line says %s, but --type is %s",
					   hash_algo_name((enum hash_algo)a),
					   hash_algo_name((enum hash_algo)algo));
			r = add_meta(c, &m, &meta);
			if (r < 0)
				return r;
			return add_hash(c, a, hex, hl, meta, -1, 0);
		}
	}
	/* "HEX label" (sha256sum) or "HEX,quality,name" (the PDQ reference CLI) */
	for (hl = 0; hl < len && !is_blank((unsigned char)s[hl]) && s[hl] != ','; hl++)
		;
	m.label = s + hl;
	m.labellen = len - hl;
	if (m.labellen && *m.label == ',') {
		m.label++;
		m.labellen--;
	}
	trim(&m.label, &m.labellen);
	/* sha256sum marks binary mode with '*' before the name. */
	if (m.labellen && m.label[0] == '*') {
		m.label++;
		m.labellen--;
	}
	r = add_meta(c, &m, &meta);
	if (r < 0)
		return r;
	return add_hash(c, algo, s, hl, meta, -1, 0);
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

/* The delimiter a line uses most of, outside quotes: ',', ';' or TAB (',' if none). */
static char detect_delim(const char *s, size_t len)
{
	size_t i, comma = 0, semi = 0, tab = 0;
	int q = 0;

	for (i = 0; i < len; i++) {
		if (s[i] == '"')
			q = !q;
		else if (!q && s[i] == ',')
			comma++;
		else if (!q && s[i] == ';')
			semi++;
		else if (!q && s[i] == '\t')
			tab++;
	}
	if (semi > comma && semi >= tab)
		return ';';
	if (tab > comma && tab > semi)
		return '\t';
	return ',';
}

/*
 * Split one CSV line into fields decoded into c->scratch; c->starts[i]/c->lens[i] point into
 * it.  Returns the number of fields, or -EINVAL for broken quoting.
 */
static int csv_split(struct import_ctx *c, const char *s, size_t len)
{
	const char d = c->delim;
	size_t i = 0, o = 0;
	int n = 0, r;

	r = scratch_reserve(c, len);
	if (r < 0)
		return r;
	for (;;) {
		size_t start = o;

		if (n == c->capfields) {
			int nc = c->capfields ? c->capfields * 2 : 16;
			const char **ns = realloc(c->starts, (size_t)nc * sizeof(*ns));
			size_t *nl;

			if (!ns)
				return -ENOMEM;
			c->starts = ns;
			nl = realloc(c->lens, (size_t)nc * sizeof(*nl));
			if (!nl)
				return -ENOMEM;
			c->lens = nl;
			c->capfields = nc;
		}
		while (i < len && (s[i] == ' ' || (s[i] == '\t' && d != '\t')))
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
			while (i < len && (s[i] == ' ' || (s[i] == '\t' && d != '\t')))
				i++;
			if (i < len && s[i] != d)
				return bad(c, "field %d: text after closing quote", n + 1);
		} else {
			while (i < len && s[i] != d) {
				if (s[i] == '"')
					return bad(c, "field %d: stray quote", n + 1);
				c->scratch[o++] = s[i++];
			}
			while (o > start && (c->scratch[o - 1] == ' ' || c->scratch[o - 1] == '\t'))
				o--;
		}
		c->starts[n] = c->scratch + start;
		c->lens[n] = o - start;
		n++;
		if (i >= len)
			break;
		i++;	/* the delimiter */
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

/* Append "'name'" (escaped, truncated) to a warning list. */
static void list_add(char *buf, size_t cap, size_t *n, const char *s, size_t len)
{
	char esc[128];

	if (*n >= cap - 1)
		return;
	hglog_escape_text(esc, sizeof(esc), s, len > 60 ? 60 : len);
	*n += (size_t)snprintf(buf + *n, cap - *n, "%s'%s'", *n ? ", " : "", esc);
	if (*n >= cap)
		*n = cap - 1;
}

static const char FIELDS_HELP[] = "md5, sha1, sha256, pdq, hash, label, id, category, quality, "
				  "deleted, algo";

/* Columns from opts.columns ("md5,quality,label"; "" or "-" skips a column). */
static int csv_columns(struct import_ctx *c)
{
	const char *p = c->o->columns, *e;
	int n = 1, i = 0, nhash = 0;

	for (e = p; *e; e++)
		n += *e == ',';
	c->col = calloc((size_t)n, sizeof(*c->col));
	if (!c->col)
		return -ENOMEM;
	c->ncols = n;
	for (;;) {
		size_t len;

		e = strchr(p, ',');
		len = e ? (size_t)(e - p) : strlen(p);
		while (len && p[0] == ' ') {
			p++;
			len--;
		}
		while (len && p[len - 1] == ' ')
			len--;
		if (!len || (len == 1 && *p == '-')) {
			c->col[i] = F_IGNORE;
		} else {
			c->col[i] = field_of(p, len);
			if (c->col[i] == F_IGNORE) {
				char esc[128];

				hglog_escape_text(esc, sizeof(esc), p, len > 60 ? 60 : len);
				snprintf(c->err, c->errlen, "--columns: unknown field '%s' (%s; '-' "
					 "skips a column)", esc, FIELDS_HELP);
				return -EINVAL;
			}
		}
		if (c->col[i] >= 0 && c->col[i] <= F_HASH)
			nhash++;
		i++;
		if (!e)
			break;
		p = e + 1;
	}
	if (!nhash) {
		snprintf(c->err, c->errlen, "--columns names no hash column (md5, sha1, sha256, "
			 "pdq or hash)");
		return -EINVAL;
	}
	return 0;
}

static int csv_header(struct import_ctx *c, int n)
{
	char ignored[512], names[512];
	size_t ni = 0, nn = 0, k;
	int i, nhash = 0;

	c->col = calloc((size_t)n, sizeof(*c->col));
	if (!c->col)
		return -ENOMEM;
	c->ncols = n;
	for (i = 0; i < n; i++)
		c->col[i] = field_of(c->starts[i], c->lens[i]);
	/* --map FIELD=Header: the named column gets that field (and no other column does) */
	for (k = 0; k < c->o->nmap; k++) {
		const char *m = c->o->map[k], *eq = strchr(m, '=');
		char want[128], have[128];
		int f, found = 0;

		f = eq ? field_of(m, (size_t)(eq - m)) : F_IGNORE;
		if (f == F_IGNORE || !norm_name(eq + 1, strlen(eq + 1), want, sizeof(want))) {
			snprintf(c->err, c->errlen, "--map '%s': want FIELD=COLUMN with FIELD one of %s",
				 m, FIELDS_HELP);
			return -EINVAL;
		}
		for (i = 0; i < n; i++) {
			if (norm_name(c->starts[i], c->lens[i], have, sizeof(have)) &&
			    !strcmp(have, want)) {
				c->col[i] = f;
				found = 1;
			} else if (c->col[i] == f) {
				c->col[i] = F_IGNORE;
			}
		}
		if (!found) {
			for (i = 0; i < n; i++)
				list_add(names, sizeof(names), &nn, c->starts[i], c->lens[i]);
			return bad(c, "--map %s: the header has no column '%s' (columns: %s)", m,
				   eq + 1, nn ? names : "none");
		}
	}
	for (i = 0; i < n; i++) {
		if (c->col[i] >= 0 && c->col[i] <= F_HASH)
			nhash++;
		else if (c->col[i] == F_IGNORE && c->lens[i])
			list_add(ignored, sizeof(ignored), &ni, c->starts[i], c->lens[i]);
	}
	if (!nhash) {
		for (i = 0; i < n; i++)
			list_add(names, sizeof(names), &nn, c->starts[i], c->lens[i]);
		return bad(c, "CSV header names no hash column (columns: %s; want md5, sha1, sha256, "
			   "pdq or hash, or --map md5=COLUMN, or --columns for a file without a "
			   "header)", nn ? names : "none");
	}
	if (ni) {
		char msg[1600];

		snprintf(msg, sizeof(msg), "%s:%llu: ignoring column%s %s (known: %s; --map "
			 "FIELD=COLUMN assigns one)", c->ename, (unsigned long long)c->lineno,
			 strchr(ignored, ',') ? "s" : "", ignored, FIELDS_HELP);
		warn(c, msg);
	}
	return 0;
}

static int parse_csv(struct import_ctx *c, const char *s, size_t len)
{
	struct rowmeta m = { .quality = -1, .algo = -1 };
	uint32_t meta;
	int n, i, nh = 0, r, empty = 1;

	trim(&s, &len);
	if (!len || (s[0] == '#' && !c->col))
		return 0;
	if (!c->delim)
		c->delim = c->o->delimiter ? c->o->delimiter : detect_delim(s, len);
	if (!c->col && c->o->columns) {
		r = csv_columns(c);
		if (r < 0)
			return r;
	}
	n = csv_split(c, s, len);
	if (n < 0)
		return n;
	if (!c->col)
		return csv_header(c, n);
	for (i = 0; i < n; i++)
		if (c->lens[i])
			empty = 0;
	if (empty)
		return 0;		/* ";;;" rows spreadsheets leave at the end */
	if (n > c->ncols)
		return bad(c, "%d fields, but the %s has %d", n,
			   c->o->columns ? "--columns list" : "header", c->ncols);
	/* Fewer is fine when the missing trailing fields would be empty (some exporters). */
	for (i = n; i < c->ncols; i++)
		c->lens[i] = 0, c->starts[i] = c->scratch;
	for (i = 0; i < c->ncols; i++) {
		const char *f = c->starts[i];
		size_t l = c->lens[i];

		switch (c->col[i]) {
		case F_LABEL:
			m.label = f;
			m.labellen = l;
			break;
		case F_REF:
			m.ref = f;
			m.reflen = l;
			break;
		case F_CATEGORY:
			m.cat = f;
			m.catlen = l;
			break;
		case F_QUALITY:
			r = parse_quality(c, f, l, &m.quality);
			if (r < 0)
				return r;
			break;
		case F_DELETED:
			if (parse_bool(f, l, &m.del) < 0)
				return bad(c, "deleted must be true/false/1/0, not '%.*s'",
					   l > 40 ? 40 : (int)l, f);
			break;
		case F_ALGO:
			if (l && (m.algo = algo_of(f, l)) < 0)
				return bad(c, "unknown hash algorithm '%.*s' (md5, sha1, sha256, pdq)",
					   l > 40 ? 40 : (int)l, f);
			break;
		default:
			break;
		}
	}
	r = add_meta(c, &m, &meta);
	if (r < 0)
		return r;
	for (i = 0; i < c->ncols; i++) {
		if (c->col[i] < 0 || c->col[i] > F_HASH || !c->lens[i])
			continue;
		r = add_hash(c, c->col[i] == F_HASH ? (m.algo >= 0 ? m.algo : c->o->algo) :
			     c->col[i], c->starts[i], c->lens[i], meta, m.quality, m.del);
		if (r < 0)
			return r;
		nh++;
	}
	if (!nh)
		return bad(c, "no hash in this row");
	return 0;
}

/* ---- JSON ------------------------------------------------------------------------------- */

#define JMAX_HASH	8

struct jrow {
	struct import_ctx *c;
	struct rowmeta m;
	struct { int algo; struct json_val v; } hs[JMAX_HASH];
	int nh;
	struct json_val hash;
	const char *err;		/* set by member(): a message for bad() */
	char key[64];
};

static int jrow_member(void *arg, const struct json_val *k, const struct json_val *v)
{
	struct jrow *j = arg;
	struct import_ctx *c = j->c;
	int f = field_of(k->s, k->len), r;

	snprintf(j->key, sizeof(j->key), "%.*s", k->len > 60 ? 60 : (int)k->len, k->s);
	switch (f) {
	case F_SKIP:
		return 0;
	case F_IGNORE:
		if (!strstr(c->unknown, j->key) && c->nunknown < sizeof(c->unknown) - 80)
			list_add(c->unknown, sizeof(c->unknown), &c->nunknown, k->s, k->len);
		return 0;
	case F_HASH:
		if (v->t != JSON_STR)
			return bad(c, "\"%s\" must be a hex string", j->key);
		j->hash = *v;
		return 0;
	case F_ALGO:
		if (v->t != JSON_STR || (j->m.algo = algo_of(v->s, v->len)) < 0)
			return bad(c, "\"%s\" must be md5, sha1, sha256 or pdq, not '%.*s'", j->key,
				   v->t == JSON_STR ? (v->len > 40 ? 40 : (int)v->len) : 0,
				   v->t == JSON_STR ? v->s : "");
		return 0;
	case F_LABEL:
	case F_CATEGORY:
		if (v->t == JSON_NULL)
			return 0;
		if (v->t != JSON_STR)
			return bad(c, "\"%s\" must be a string", j->key);
		if (f == F_LABEL) {
			j->m.label = v->s;
			j->m.labellen = v->len;
		} else {
			j->m.cat = v->s;
			j->m.catlen = v->len;
		}
		return 0;
	case F_REF:
		if (v->t == JSON_NULL)
			return 0;
		if (v->t != JSON_STR && v->t != JSON_NUM)
			return bad(c, "\"%s\" must be a string or a number", j->key);
		j->m.ref = v->s;
		j->m.reflen = v->len;
		return 0;
	case F_QUALITY:
		if (v->t == JSON_NULL)
			return 0;
		if (v->t != JSON_NUM && v->t != JSON_STR)
			return bad(c, "\"%s\" must be a number 0-100", j->key);
		r = parse_quality(c, v->s, v->len, &j->m.quality);
		return r;
	case F_DELETED:
		if (v->t == JSON_TRUE || v->t == JSON_FALSE)
			j->m.del = v->t == JSON_TRUE;
		else if (v->t == JSON_NUM && v->len == 1 && (v->s[0] == '0' || v->s[0] == '1'))
			j->m.del = v->s[0] == '1';
		else
			return bad(c, "\"deleted\" must be true or false");
		return 0;
	default:		/* a hash of one algorithm */
		if (v->t == JSON_STR && v->len) {
			if (j->nh == JMAX_HASH)
				return bad(c, "too many hashes in one object");
			j->hs[j->nh].algo = f;
			j->hs[j->nh++].v = *v;
		} else if (v->t != JSON_NULL && !(v->t == JSON_STR && !v->len)) {
			return bad(c, "\"%s\" must be a hex string", j->key);
		}
		return 0;
	}
}

/* One object at jp->p; c->lineno is the line it starts on. */
static int parse_jobject(struct import_ctx *c, struct json_parser *jp, const char *line0)
{
	struct jrow j;
	uint32_t meta;
	int i, r;

	memset(&j, 0, sizeof(j));
	j.c = c;
	j.m.quality = -1;
	j.m.algo = -1;
	j.hash.t = JSON_NULL;
	r = json_object(jp, jrow_member, &j);
	if (r > 0 || r < -1)
		return r;
	if (r == -1) {
		if (!jp->why || strcmp(jp->why, "not a JSON object") != 0)
			return bad(c, "invalid JSON: %s at column %zu",
				   jp->why ? jp->why : "syntax error", (size_t)(jp->p - line0) + 1);
		return bad(c, "not a JSON object");
	}
	if (j.hash.t == JSON_STR) {
		if (j.nh == JMAX_HASH)
			return bad(c, "too many hashes in one object");
		j.hs[j.nh].algo = j.m.algo >= 0 ? j.m.algo : c->o->algo;
		j.hs[j.nh++].v = j.hash;
	} else if (j.m.algo >= 0) {
		return bad(c, "\"algo\" given without \"hash\"");
	}
	if (!j.nh)
		return bad(c, "no hash in this object (keys md5, sha1, sha256, pdq, or hash with "
			   "algo)");
	r = add_meta(c, &j.m, &meta);
	if (r < 0)
		return r;
	for (i = 0; i < j.nh; i++) {
		r = add_hash(c, j.hs[i].algo, j.hs[i].v.s, j.hs[i].v.len, meta, j.m.quality,
			     j.m.del);
		if (r < 0)
			return r;
	}
	return 0;
}

static int parse_jsonl(struct import_ctx *c, const char *s, size_t len)
{
	struct json_parser jp;
	int r;

	trim(&s, &len);
	if (!len)
		return 0;
	r = scratch_reserve(c, len);
	if (r < 0)
		return r;
	memset(&jp, 0, sizeof(jp));
	jp.p = s;
	jp.end = s + len;
	jp.out = c->scratch;
	r = parse_jobject(c, &jp, s);
	if (r < 0)
		return r;
	json_ws(&jp);
	if (jp.p != jp.end)
		return bad(c, "text after the JSON object");
	return 0;
}

/* A whole JSON document: an array of objects, or objects one after another (pretty-printed). */
static int parse_jdoc(struct import_ctx *c, const char *buf, size_t len)
{
	const char *end = buf + len, *obj;
	struct json_parser jp;
	int array = 0, r, first = 1;

	r = scratch_reserve(c, LINE_MAX_LEN);
	if (r < 0)
		return r;
	memset(&jp, 0, sizeof(jp));
	jp.p = buf;
	jp.end = end;
	json_ws(&jp);
	c->lineno = 1 + jp.lines;
	if (jp.p < end && *jp.p == '[') {
		array = 1;
		jp.p++;
	}
	for (;;) {
		json_ws(&jp);
		c->lineno = 1 + jp.lines;
		if (jp.p >= end) {
			if (array)
				return bad(c, "unterminated JSON array (no closing ']')");
			break;
		}
		if (array && first && *jp.p == ']') {
			jp.p++;
			break;
		}
		obj = jp.p;
		jp.out = c->scratch;
		/* one object at most LINE_MAX_LEN bytes: that bounds the decode buffer */
		jp.end = (size_t)(end - obj) > LINE_MAX_LEN ? obj + LINE_MAX_LEN : end;
		r = parse_jobject(c, &jp, obj);
		if (r < 0) {
			if (jp.end != end && jp.p >= jp.end)
				return bad(c, "JSON object longer than %d bytes", LINE_MAX_LEN);
			return r;
		}
		jp.end = end;
		first = 0;
		json_ws(&jp);
		if (!array)
			continue;
		if (jp.p < end && *jp.p == ',') {
			jp.p++;
			continue;
		}
		if (jp.p < end && *jp.p == ']') {
			jp.p++;
			break;
		}
		c->lineno = 1 + jp.lines;
		return bad(c, "invalid JSON: expected ',' or ']' after an object");
	}
	json_ws(&jp);
	c->lineno = 1 + jp.lines;
	if (jp.p != end)
		return bad(c, "text after the JSON %s", array ? "array" : "objects");
	return 0;
}

/* ---- input ------------------------------------------------------------------------------ */

#define IN_CHUNK	(256 * 1024)

static int in_error(struct import_ctx *c, struct input *in)
{
	int zerr = Z_OK;
	const char *msg = gzerror(in->gz, &zerr);

	if (zerr == Z_ERRNO) {
		int e = errno ? errno : EIO;

		snprintf(c->err, c->errlen, "%s: read error after line %llu: %s", c->ename,
			 (unsigned long long)c->lineno, strerror(e));
		return -e;
	}
	if (zerr == Z_MEM_ERROR)
		return -ENOMEM;
	snprintf(c->err, c->errlen, "%s: after line %llu: broken gzip data (%s)", c->ename,
		 (unsigned long long)c->lineno, msg ? msg : "?");
	return -EINVAL;
}

/* Read more into the buffer (keeping in->start..end).  0, or -errno. */
static int in_fill(struct import_ctx *c, struct input *in)
{
	int n;

	if (in->eof)
		return 0;
	if (in->start > 0) {
		memmove(in->buf, in->buf + in->start, in->end - in->start);
		in->end -= in->start;
		in->start = 0;
	}
	if (in->cap - in->end < IN_CHUNK) {
		size_t cap = in->cap ? in->cap * 2 : 4 * IN_CHUNK;
		char *p = realloc(in->buf, cap + 1);

		if (!p)
			return -ENOMEM;
		in->buf = p;
		in->cap = cap;
	}
	n = gzread(in->gz, in->buf + in->end, (unsigned)(in->cap - in->end));
	if (n < 0)
		return in_error(c, in);
	if (n == 0) {
		int zerr = Z_OK;

		/* a gzip stream cut short ends with Z_BUF_ERROR, not with a read error */
		gzerror(in->gz, &zerr);
		if (zerr != Z_OK)
			return in_error(c, in);
		in->eof = 1;
	}
	in->end += (size_t)n;
	return 0;
}

/*
 * The next line (with its '\n', if any) in *line, its length returned; 0 at the end of input.
 * A line longer than LINE_MAX_LEN comes back cut at LINE_MAX_LEN + 1 bytes (the caller
 * rejects it).
 */
static ssize_t in_line(struct import_ctx *c, struct input *in, char **line)
{
	size_t scanned = 0;
	char *nl;
	int r;

	for (;;) {
		size_t have = in->end - in->start;

		nl = have > scanned ? memchr(in->buf + in->start + scanned, '\n', have - scanned) :
		     NULL;
		if (nl) {
			size_t n = (size_t)(nl - (in->buf + in->start)) + 1;

			*line = in->buf + in->start;
			in->start += n;
			return (ssize_t)n;
		}
		if (have > LINE_MAX_LEN || (in->eof && have)) {
			size_t n = have > LINE_MAX_LEN + 1 ? LINE_MAX_LEN + 1 : have;

			*line = in->buf + in->start;
			in->start += n;
			return (ssize_t)n;
		}
		if (in->eof)
			return 0;
		scanned = have;
		r = in_fill(c, in);
		if (r < 0)
			return r;
	}
}

/* The rest of the input, whole (a JSON document). */
static int in_all(struct import_ctx *c, struct input *in, const char **buf, size_t *len)
{
	int r;

	while (!in->eof) {
		if (in->end - in->start > DOC_MAX_LEN) {
			snprintf(c->err, c->errlen, "%s: JSON document larger than %zu bytes (use JSON "
				 "lines: one object per line)", c->ename, DOC_MAX_LEN);
			return -EFBIG;
		}
		r = in_fill(c, in);
		if (r < 0)
			return r;
	}
	*buf = in->buf + in->start;
	*len = in->end - in->start;
	in->start = in->end;
	return 0;
}

/*
 * A JSON document rather than JSON lines: it starts with '[', or its first line is not a
 * whole object ("{" alone, pretty-printed).
 */
static int in_is_jdoc(struct import_ctx *c, struct input *in, int *doc)
{
	size_t i;
	int r;

	*doc = 0;
	for (;;) {
		const char *s = in->buf + in->start;
		size_t have = in->end - in->start, k;

		for (i = 0; i < have && is_blank((unsigned char)s[i]); i++)
			;
		if (i + 3 <= have && !memcmp(s + i, "\xef\xbb\xbf", 3) && i == 0) {
			in->start += 3;
			continue;
		}
		if (i < have && s[i] == '[') {
			*doc = 1;
			return 0;
		}
		if (i < have) {
			const char *nl = memchr(s + i, '\n', have - i);

			if (nl || in->eof) {
				k = nl ? (size_t)(nl - s) : have;
				while (k > i && is_blank((unsigned char)s[k - 1]))
					k--;
				*doc = s[i] == '{' && s[k - 1] != '}';
				return 0;
			}
		}
		if (in->eof || have > LINE_MAX_LEN)
			return 0;
		r = in_fill(c, in);
		if (r < 0)
			return r;
	}
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
	if ((o->remove || o->replace) && !o->create) {
		struct hashdb_list l;

		r = hashdb_list_get(db, o->list, &l, c->err, c->errlen);
		if (r == -ENOENT)
			snprintf(c->err, c->errlen, "%s: no list named '%s': --%s changes an existing "
				 "list (check the name; an import without it creates a list)",
				 c->ename, o->list, o->remove ? "delete" : "replace");
		if (r < 0)
			goto out_rollback;
	}
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
				"label, ref, category, quality) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
				-1, &ins, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db->sql, "UPDATE hashes SET label = coalesce(?1, label), "
					"ref = coalesce(?2, ref), category = coalesce(?3, category), "
					"quality = coalesce(?4, quality) WHERE algo = ?5 AND "
					"value = ?6 AND list_id = ?7", -1, &upd, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db->sql, "DELETE FROM hashes WHERE algo = ? AND value = ? "
					"AND list_id = ?", -1, &del, NULL);
	if (rc != SQLITE_OK) {
		r = hashdb_sql_error(db, rc, "prepare", c->err, c->errlen);
		goto out_rollback;
	}
	sqlite3_bind_int64(ins, 3, list_id);
	sqlite3_bind_int64(ins, 4, now);
	sqlite3_bind_int64(upd, 7, list_id);
	sqlite3_bind_int64(del, 3, list_id);
	for (i = 0; i < c->nrecs; i++) {
		const struct rec *rec = &c->recs[i];
		int len = (int)hash_algo_len((enum hash_algo)rec->algo);
		const char *label = NULL, *ref = NULL, *cat = NULL;

		if (rec->meta) {
			label = c->meta + rec->meta - 1;
			ref = label + strlen(label) + 1;
			cat = ref + strlen(ref) + 1;
			label = *label ? label : NULL;
			ref = *ref ? ref : NULL;
			cat = *cat ? cat : NULL;
		}
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
			if (rec->meta) {
				sqlite3_bind_text(ins, 5, label, -1, SQLITE_STATIC);
				sqlite3_bind_text(ins, 6, ref, -1, SQLITE_STATIC);
				sqlite3_bind_text(ins, 7, cat, -1, SQLITE_STATIC);
			} else {
				sqlite3_bind_null(ins, 5);
				sqlite3_bind_null(ins, 6);
				sqlite3_bind_null(ins, 7);
			}
			if (rec->quality >= 0)
				sqlite3_bind_int(ins, 8, rec->quality);
			else
				sqlite3_bind_null(ins, 8);
			rc = sqlite3_step(ins);
			sqlite3_reset(ins);
			if (rc != SQLITE_DONE)
				goto sql_fail;
			if (sqlite3_changes(db->sql)) {
				st->added++;
			} else {
				st->existing++;
				if (rec->meta || rec->quality >= 0) {
					sqlite3_bind_text(upd, 1, label, -1, SQLITE_STATIC);
					sqlite3_bind_text(upd, 2, ref, -1, SQLITE_STATIC);
					sqlite3_bind_text(upd, 3, cat, -1, SQLITE_STATIC);
					if (rec->quality >= 0)
						sqlite3_bind_int(upd, 4, rec->quality);
					else
						sqlite3_bind_null(upd, 4);
					sqlite3_bind_int(upd, 5, rec->algo);
					sqlite3_bind_blob(upd, 6, rec->v, len, SQLITE_STATIC);
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
	if (o->dry_run) {
		hashdb_rollback(db);
		return 0;
	}
	if (o->meta_key) {
		r = hashdb_meta_set(db, o->meta_key, o->meta_value, c->err, c->errlen);
		if (r < 0)
			goto out_rollback_stmts;
	}
	if (o->progress)
		o->progress(o->progress_arg, "commit", 0, 0);
	return hashdb_commit(db, c->err, c->errlen);
sql_fail:
	r = hashdb_sql_error(db, rc, "write hashes", c->err, c->errlen);
out_rollback:
	sqlite3_finalize(ins);
	sqlite3_finalize(upd);
	sqlite3_finalize(del);
out_rollback_stmts:
	hashdb_rollback(db);
	memset(st, 0, sizeof(*st));
	return r;
}

/* Check mode: report a bad line, drop what it added, go on.  Returns r when it must stop. */
static int check_bad(struct import_ctx *c, struct import_stats *st, int r, size_t nrecs0,
		     size_t nmeta0)
{
	unsigned max = c->o->max_bad ? c->o->max_bad : IMPORT_MAX_BAD_DEFAULT;

	if (r != -EINVAL || !c->o->check)
		return r;
	st->bad++;
	if (st->bad <= max && c->o->message)
		c->o->message(c->o->message_arg, IMPORT_BAD, c->err);
	c->nrecs = nrecs0;
	c->nmeta = nmeta0;
	return 0;
}

static int open_input(struct import_ctx *c, const char *path, struct input *in)
{
	int fd, r;

	memset(in, 0, sizeof(*in));
	if (!strcmp(path, "-")) {
		fd = dup(STDIN_FILENO);
		if (fd < 0) {
			r = -errno;
			snprintf(c->err, c->errlen, "<stdin>: %s", strerror(-r));
			return r;
		}
	} else {
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			r = -errno;
			snprintf(c->err, c->errlen, "%s: %s", c->ename, strerror(-r));
			return r;
		}
	}
	in->fd = fd;
	in->gz = gzdopen(fd, "rb");
	if (!in->gz) {
		close(fd);
		return -ENOMEM;
	}
	gzbuffer(in->gz, IN_CHUNK);
	return 0;
}

int import_file(struct hashdb *db, const char *path, const struct import_opts *o,
		struct import_stats *st, char *err, size_t errlen)
{
	struct import_ctx c = { 0 };
	enum import_format fmt;
	struct input in = { 0 };
	struct stat sb;
	uint64_t total = 0;
	char *s;
	ssize_t n;
	int r = 0, doc = 0;

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
	c.name = strcmp(path, "-") ? path : "<stdin>";
	hglog_escape_text(c.ename, sizeof(c.ename), c.name, strlen(c.name));
	r = open_input(&c, path, &in);
	if (r < 0)
		return r;
	if (fstat(in.fd, &sb) == 0 && S_ISDIR(sb.st_mode)) {
		r = -EISDIR;
		snprintf(err, errlen, "%s: is a directory", c.ename);
		goto out;
	}
	if (fstat(in.fd, &sb) == 0 && S_ISREG(sb.st_mode))
		total = (uint64_t)sb.st_size;
	else
		sb.st_mode = 0;		/* not a regular file: no change check at the end */
	fmt = o->format != IMPORT_AUTO ? o->format : guess_format(c.name);
	/* CSV options say what the file is, whatever its name */
	if (o->format == IMPORT_AUTO && (o->columns || o->nmap || o->delimiter))
		fmt = IMPORT_CSV;
	if (fmt != IMPORT_CSV && (o->columns || o->nmap || o->delimiter)) {
		r = -EINVAL;
		snprintf(err, errlen, "--columns, --map and --delimiter are for CSV files "
			 "(give --format csv)");
		goto out;
	}
	if (o->columns && o->nmap) {
		r = -EINVAL;
		snprintf(err, errlen, "--columns names every column: no --map with it");
		goto out;
	}
	if (fmt == IMPORT_JSONL) {
		r = in_is_jdoc(&c, &in, &doc);
		if (r < 0)
			goto out;
	}
	if (doc) {
		const char *buf;
		size_t len;

		r = in_all(&c, &in, &buf, &len);
		if (r < 0)
			goto out;
		if (memchr(buf, '\0', len)) {
			c.lineno = 1;
			r = bad(&c, "NUL byte in the file (binary file?)");
			goto out;
		}
		r = parse_jdoc(&c, buf, len);
		/* check mode: a broken document cannot be read past its first error */
		if (r == -EINVAL && o->check) {
			st->bad = 1;
			if (o->message)
				o->message(o->message_arg, IMPORT_BAD, err);
		}
		if (r < 0)
			goto out;
	}
	while (!doc && (n = in_line(&c, &in, &s)) > 0) {
		size_t nrecs0 = c.nrecs, nmeta0 = c.nmeta;

		c.lineno++;
		if (n > LINE_MAX_LEN) {
			r = bad(&c, "line longer than %d bytes", LINE_MAX_LEN);
			/* the rest of the long line is skipped with it */
			while (r == -EINVAL && o->check && s[n - 1] != '\n' &&
			       (n = in_line(&c, &in, &s)) > 0)
				;
			if (n < 0) {
				r = (int)n;
				goto out;
			}
			r = check_bad(&c, st, r, nrecs0, nmeta0);
			if (r < 0)
				goto out;
			continue;
		}
		if (memchr(s, '\0', (size_t)n)) {
			r = bad(&c, "NUL byte in line (binary file?)");
			goto out;
		}
		/* spreadsheet exports start with a UTF-8 byte order mark */
		if (c.lineno == 1 && n >= 3 && !memcmp(s, "\xef\xbb\xbf", 3)) {
			s += 3;
			n -= 3;
		}
		switch (fmt) {
		case IMPORT_CSV:
			r = parse_csv(&c, s, (size_t)n);
			/* a header or --columns that cannot work: nothing after it can be read */
			if (r < 0 && !c.col) {
				if (r == -EINVAL && o->check) {
					st->bad = 1;
					if (o->message)
						o->message(o->message_arg, IMPORT_BAD, err);
				}
				goto out;
			}
			break;
		case IMPORT_JSONL:
			r = parse_jsonl(&c, s, (size_t)n);
			break;
		default:
			r = parse_plain(&c, s, (size_t)n);
			break;
		}
		if (r < 0)
			r = check_bad(&c, st, r, nrecs0, nmeta0);
		if (r < 0)
			goto out;
		if (o->progress && (c.lineno % PROGRESS_EVERY) == 0)
			o->progress(o->progress_arg, "read", total ? (uint64_t)gzoffset(in.gz) :
				    c.lineno, total);
	}
	if (!doc && n < 0) {
		r = (int)n;
		if (r == -ENOMEM)
			snprintf(err, errlen, "%s: out of memory", c.ename);
		goto out;
	}
	/*
	 * A list rewritten in place while we read it (a downloader truncating and writing again)
	 * would give a mix of old and new lines or a prefix: refuse it rather than import that.
	 */
	if (S_ISREG(sb.st_mode)) {
		struct stat now;

		if (fstat(in.fd, &now) < 0 || now.st_size != sb.st_size ||
		    now.st_mtim.tv_sec != sb.st_mtim.tv_sec ||
		    now.st_mtim.tv_nsec != sb.st_mtim.tv_nsec ||
		    now.st_ctim.tv_sec != sb.st_ctim.tv_sec ||
		    now.st_ctim.tv_nsec != sb.st_ctim.tv_nsec ||
		    (gzdirect(in.gz) && gzoffset(in.gz) != now.st_size)) {
			r = -ESTALE;
			snprintf(err, errlen, "%s: the file changed while it was being read "
				 "(after line %llu); nothing imported, run the import again",
				 c.ename, (unsigned long long)c.lineno);
			goto out;
		}
	}
	if (fmt == IMPORT_CSV && !c.col) {
		r = -EINVAL;
		snprintf(err, errlen, "%s: empty CSV file (no header)", c.ename);
		goto out;
	}
	if (c.nunknown) {
		char msg[1024];

		snprintf(msg, sizeof(msg), "%s: ignoring unknown key%s %s (known: %s)", c.ename,
			 strchr(c.unknown, ',') ? "s" : "", c.unknown, FIELDS_HELP);
		warn(&c, msg);
	}
	st->lines = c.lineno;
	if (o->check) {
		unsigned max = o->max_bad ? o->max_bad : IMPORT_MAX_BAD_DEFAULT;

		if (st->bad) {
			r = -EINVAL;
			snprintf(err, errlen, "%s: %llu bad line%s%s", c.ename,
				 (unsigned long long)st->bad, st->bad == 1 ? "" : "s",
				 st->bad > max ? " (only the first ones shown)" : "");
			goto out;
		}
		if (o->remove || o->replace) {
			struct hashdb_list l;

			r = hashdb_list_get(db, o->list, &l, err, errlen);
			if (r == -ENOENT && o->create)
				r = 0;
			else if (r == -ENOENT)
				snprintf(err, errlen, "%s: no list named '%s': --%s changes an "
					 "existing list", c.ename, o->list,
					 o->remove ? "delete" : "replace");
			if (r < 0)
				goto out;
		}
		if (o->progress)
			o->progress(o->progress_arg, "sort", 0, 0);
		r = sort_records(&c);
		if (r == 0) {
			dedup(&c);
			st->records = c.nrecs;
		}
		goto out;
	}
	if (o->progress)
		o->progress(o->progress_arg, "sort", 0, 0);
	r = sort_records(&c);
	if (r < 0) {
		snprintf(err, errlen, "%s: out of memory sorting %zu hashes", c.ename, c.nrecs);
		goto out;
	}
	dedup(&c);
	st->records = c.nrecs;
	r = write_records(db, &c, st);
	if (r == 0)
		st->lines = c.lineno;
out:
	if (r == -ENOMEM && !*err)
		snprintf(err, errlen, "%s:%llu: out of memory", c.ename, (unsigned long long)c.lineno);
	if (in.gz)
		gzclose(in.gz);		/* closes in.fd */
	free(in.buf);
	free(c.recs);
	free(c.meta);
	free(c.col);
	free(c.scratch);
	free(c.starts);
	free(c.lens);
	return r;
}
