/*
 * json.h - a small JSON reader for list files and database dumps (hashdb/import.c,
 * hashdb/dump.c): objects one at a time, members to a callback, nested containers skipped.
 * No allocation: strings are decoded into j->out, which must have room for as many bytes as
 * the input has from j->p to j->end.  Thread-safety: a parser is used by one thread.
 */
#ifndef HASHDB_JSON_H
#define HASHDB_JSON_H

#include <stddef.h>

enum json_type { JSON_STR, JSON_TRUE, JSON_FALSE, JSON_NULL, JSON_NUM, JSON_OTHER };

struct json_val {
	enum json_type t;
	const char *s;			/* decoded string (JSON_STR) or the raw token (JSON_NUM) */
	size_t len;
};

struct json_parser {
	const char *p, *end;
	char *out;			/* decode cursor */
	const char *why;		/* what was wrong when a call returned -1 */
	size_t lines;			/* newlines skipped as whitespace (for line numbers) */
};

/* Skip whitespace, counting newlines into j->lines. */
void json_ws(struct json_parser *j);
/* One value at j->p: 0, or -1 with j->why.  Objects and arrays are skipped (JSON_OTHER). */
int json_value(struct json_parser *j, struct json_val *v, int depth);
/*
 * One object at j->p (after whitespace): fn(arg, key, value) for each member in order.
 * Returns 0 with j->p after the '}', -1 on a syntax error (j->why), or fn's non-zero result.
 */
int json_object(struct json_parser *j,
		int (*fn)(void *arg, const struct json_val *key, const struct json_val *v), void *arg);

#endif
