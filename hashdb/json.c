/*
 * json.c - a small JSON reader for list files and database dumps: one object at a time,
 * members handed to a callback, strings decoded (escapes, \u with surrogate pairs) into a
 * caller-supplied buffer.  Nested objects and arrays are checked and skipped (JSON_OTHER).
 * Invariant: a decoded string is never longer than its source, so an output buffer as long as
 * the input always suffices.
 */
#include <string.h>

#include "hashdb/json.h"

static int is_ws(int ch)
{
	return ch == ' ' || ch == '\t' || ch == '\r' || ch == '\n';
}

void json_ws(struct json_parser *j)
{
	while (j->p < j->end && is_ws((unsigned char)*j->p)) {
		if (*j->p == '\n')
			j->lines++;
		j->p++;
	}
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

static int j_u4(struct json_parser *j, unsigned *u)
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

static void put_utf8(struct json_parser *j, unsigned u)
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
static int j_string(struct json_parser *j, struct json_val *v)
{
	unsigned u, lo;

	j->p++;
	v->t = JSON_STR;
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


/* An object member's `"key" :` (white space before it already skipped), into k. */
static int j_key(struct json_parser *j, struct json_val *k)
{
	if (j->p >= j->end || *j->p != '"') {
		j->why = "expected a key";
		return -1;
	}
	if (j_string(j, k) < 0)
		return -1;
	json_ws(j);
	if (j->p >= j->end || *j->p != ':') {
		j->why = "expected ':'";
		return -1;
	}
	j->p++;
	return 0;
}

/* Skip an object or array (values nobody asked for). */
static int j_skip_container(struct json_parser *j, int depth)
{
	char close = *j->p == '{' ? '}' : ']';
	int obj = close == '}';
	struct json_val k, v;

	if (depth > 32) {
		j->why = "nested too deeply";
		return -1;
	}
	j->p++;
	json_ws(j);
	if (j->p < j->end && *j->p == close) {
		j->p++;
		return 0;
	}
	for (;;) {
		json_ws(j);
		if (obj) {
			if (j_key(j, &k) < 0)
				return -1;
		}
		if (json_value(j, &v, depth + 1) < 0)
			return -1;
		json_ws(j);
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

static int j_lit(struct json_parser *j, const char *lit, enum json_type t, struct json_val *v)
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

int json_value(struct json_parser *j, struct json_val *v, int depth)
{
	json_ws(j);
	if (j->p >= j->end) {
		j->why = "missing value";
		return -1;
	}
	switch (*j->p) {
	case '"':
		return j_string(j, v);
	case 't':
		return j_lit(j, "true", JSON_TRUE, v);
	case 'f':
		return j_lit(j, "false", JSON_FALSE, v);
	case 'n':
		return j_lit(j, "null", JSON_NULL, v);
	case '{':
	case '[':
		v->t = JSON_OTHER;
		return j_skip_container(j, depth);
	default:
		if (*j->p == '-' || (*j->p >= '0' && *j->p <= '9')) {
			v->t = JSON_NUM;
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


int json_object(struct json_parser *j,
		int (*fn)(void *arg, const struct json_val *key, const struct json_val *v), void *arg)
{
	struct json_val k, v;
	int r;

	json_ws(j);
	if (j->p >= j->end || *j->p != '{') {
		j->why = "not a JSON object";
		return -1;
	}
	j->p++;
	json_ws(j);
	if (j->p < j->end && *j->p == '}') {
		j->p++;
		return 0;
	}
	for (;;) {
		json_ws(j);
		if (j_key(j, &k) < 0)
			return -1;
		if (json_value(j, &v, 1) < 0)
			return -1;
		r = fn(arg, &k, &v);
		if (r)
			return r;
		json_ws(j);
		if (j->p < j->end && *j->p == ',') {
			j->p++;
			continue;
		}
		if (j->p < j->end && *j->p == '}') {
			j->p++;
			return 0;
		}
		j->why = "expected ',' or '}'";
		return -1;
	}
}
