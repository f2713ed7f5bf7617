/*
 * dump.c - full-fidelity dump and restore of the hash database (format in dump.h).
 *
 * The dump reads inside one read transaction, so it is one committed generation even while
 * imports run.  Hashes come out by (algo, value, list name): nearly primary-key order (the
 * cheapest order to insert them again), and the same whatever ids the lists got, so a restored
 * database dumps to the same bytes.  Meta rows other than the generation and the creation
 * time (the feeds' state) come last, by key.  Restore is one write transaction (bumping the
 * generation once); lists are referred to by name in the dump and mapped to the new ids.
 * Every string goes through the JSON escaper, so labels with any bytes survive the round trip
 * (invalid UTF-8 as \udcNN, which the reader turns back into the byte).
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sqlite3.h>

#include "hashdb/dump.h"
#include "hashdb/hash.h"
#include "hashdb/json.h"

#define DUMP_LINE_MAX	(64 * 1024)

/* ---- writing ---------------------------------------------------------------------------- */

static void put_str(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	fputc('"', f);
	for (; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20 || *p == 0x7f)
			fprintf(f, "\\u%04x", *p);
		else if (*p >= 0x80)
			fprintf(f, "\\u%04x", 0xdc00 | *p);	/* byte-exact, whatever the encoding */
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

/* ,"key":"text" for a non-NULL text column. */
static void put_opt_text(FILE *f, const char *key, sqlite3_stmt *st, int col)
{
	const unsigned char *s = sqlite3_column_text(st, col);

	if (sqlite3_column_type(st, col) == SQLITE_NULL || !s)
		return;
	fprintf(f, ",\"%s\":", key);
	put_str(f, (const char *)s);
}

static void put_opt_int(FILE *f, const char *key, sqlite3_stmt *st, int col)
{
	if (sqlite3_column_type(st, col) == SQLITE_NULL)
		return;
	fprintf(f, ",\"%s\":%lld", key, (long long)sqlite3_column_int64(st, col));
}

static int put_hex(FILE *f, sqlite3_stmt *st, int algo_col, int value_col)
{
	char hex[2 * HASH_MAX_LEN + 1];
	int a = sqlite3_column_int(st, algo_col);
	const uint8_t *v = sqlite3_column_blob(st, value_col);

	if (a < 0 || a >= HASH_NALGOS || !v ||
	    (size_t)sqlite3_column_bytes(st, value_col) != hash_algo_len((enum hash_algo)a))
		return -EBADMSG;
	hex_encode(v, hash_algo_len((enum hash_algo)a), hex);
	fprintf(f, ",\"algo\":\"%s\",\"hash\":\"%s\"", hash_algo_name((enum hash_algo)a), hex);
	return 0;
}

int dump_write(struct hashdb *db, FILE *f, struct dump_stats *st, char *err, size_t errlen)
{
	static const char *const q[] = {
		"SELECT name, category, origin, version, imported, updated FROM lists ORDER BY name",
		"SELECT l.name, h.algo, h.value, h.added, h.label, h.ref, h.category, h.quality "
		"FROM hashes h JOIN lists l ON l.id = h.list_id ORDER BY h.algo, h.value, l.name",
		"SELECT algo, value, added, reason FROM allowlist ORDER BY algo, value",
		"SELECT key, value FROM meta WHERE key NOT IN ('generation', 'created') "
		"ORDER BY key",
	};
	sqlite3_stmt *s = NULL;
	int64_t created = 0;
	int rc, r = 0, k;

	memset(st, 0, sizeof(*st));
	rc = sqlite3_exec(db->sql, "BEGIN", NULL, NULL, NULL);
	if (rc != SQLITE_OK)
		return hashdb_sql_error(db, rc, "begin", err, errlen);
	rc = sqlite3_prepare_v2(db->sql, "SELECT value FROM meta WHERE key = 'created'", -1, &s,
				NULL);
	if (rc == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW)
		created = sqlite3_column_int64(s, 0);
	sqlite3_finalize(s);
	s = NULL;
	fprintf(f, "{\"hashgate_dump\":%d,\"schema\":%d,\"created\":%lld}\n", DUMP_FORMAT_VERSION,
		hashdb_schema_version(db), (long long)created);
	for (k = 0; k < 4; k++) {
		rc = sqlite3_prepare_v2(db->sql, q[k], -1, &s, NULL);
		if (rc != SQLITE_OK) {
			r = hashdb_sql_error(db, rc, "read", err, errlen);
			goto out;
		}
		while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
			if (k == 0) {
				fprintf(f, "{\"type\":\"list\",\"name\":");
				put_str(f, (const char *)sqlite3_column_text(s, 0));
				put_opt_text(f, "category", s, 1);
				put_opt_text(f, "origin", s, 2);
				put_opt_text(f, "version", s, 3);
				put_opt_int(f, "imported", s, 4);
				put_opt_int(f, "updated", s, 5);
				st->lists++;
			} else if (k == 1) {
				fprintf(f, "{\"type\":\"hash\",\"list\":");
				put_str(f, (const char *)sqlite3_column_text(s, 0));
				if (put_hex(f, s, 1, 2) < 0)
					goto corrupt;
				put_opt_int(f, "added", s, 3);
				put_opt_text(f, "label", s, 4);
				put_opt_text(f, "id", s, 5);
				put_opt_text(f, "category", s, 6);
				put_opt_int(f, "quality", s, 7);
				st->hashes++;
			} else if (k == 2) {
				fprintf(f, "{\"type\":\"allow\"");
				if (put_hex(f, s, 0, 1) < 0)
					goto corrupt;
				put_opt_int(f, "added", s, 2);
				put_opt_text(f, "reason", s, 3);
				st->allow++;
			} else {
				/* the feeds' state (tools/feed.c), so a restore resumes them */
				fprintf(f, "{\"type\":\"meta\",\"key\":");
				put_str(f, (const char *)sqlite3_column_text(s, 0) ?: "");
				fprintf(f, ",\"value\":");
				put_str(f, (const char *)sqlite3_column_text(s, 1) ?: "");
				st->meta++;
			}
			fputs("}\n", f);
			if (ferror(f)) {
				r = -EIO;
				snprintf(err, errlen, "write error");
				goto out;
			}
		}
		if (rc != SQLITE_DONE) {
			r = hashdb_sql_error(db, rc, "read", err, errlen);
			goto out;
		}
		sqlite3_finalize(s);
		s = NULL;
	}
	fprintf(f, "{\"type\":\"end\",\"lists\":%llu,\"hashes\":%llu,\"allow\":%llu",
		(unsigned long long)st->lists, (unsigned long long)st->hashes,
		(unsigned long long)st->allow);
	/* only when there are any: a dump without feeds stays what older versions read */
	if (st->meta)
		fprintf(f, ",\"meta\":%llu", (unsigned long long)st->meta);
	fputs("}\n", f);
	if (ferror(f)) {
		r = -EIO;
		snprintf(err, errlen, "write error");
	}
	goto out;
corrupt:
	r = -EBADMSG;
	snprintf(err, errlen, "%s: corrupt hash row", db->path);
out:
	sqlite3_finalize(s);
	sqlite3_exec(db->sql, "COMMIT", NULL, NULL, NULL);
	return r;
}

/* ---- restoring -------------------------------------------------------------------------- */

struct dline {
	struct json_val type, name, list, category, origin, version, algo, hash, label, id,
		reason, key, value;
	struct json_val imported, updated, added, quality, lists, hashes, allow, meta, dump,
		created;
};

static int dline_member(void *arg, const struct json_val *k, const struct json_val *v)
{
	static const struct { const char *key; size_t off; } keys[] = {
#define K(n) { #n, offsetof(struct dline, n) }
		K(type), K(name), K(list), K(category), K(origin), K(version), K(algo), K(hash),
		K(label), K(id), K(reason), K(imported), K(updated), K(added), K(quality),
		K(lists), K(hashes), K(allow), K(created), K(key), K(value), K(meta),
#undef K
		{ "hashgate_dump", offsetof(struct dline, dump) },
	};
	struct dline *d = arg;
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strlen(keys[i].key) == k->len && !memcmp(keys[i].key, k->s, k->len)) {
			*(struct json_val *)((char *)d + keys[i].off) = *v;
			return 0;
		}
	return 0;
}

/* A JSON string member as a NUL-terminated copy in buf; NULL when absent or null. */
static const char *dstr(const struct json_val *v, char *buf, size_t len, int *bad)
{
	if (v->t == JSON_NULL || (v->t == JSON_STR && !v->s))	/* null or absent */
		return NULL;
	if (v->t != JSON_STR || v->len >= len || memchr(v->s, '\0', v->len)) {
		*bad = 1;
		return NULL;
	}
	memcpy(buf, v->s, v->len);
	buf[v->len] = '\0';
	return buf;
}

/* -1 when absent; *bad when not a non-negative integer. */
static long long dint(const struct json_val *v, int *bad)
{
	long long x = 0;
	size_t i;

	if (v->t == JSON_NULL || (v->t == JSON_STR && !v->s))	/* null or absent */
		return -1;
	if (v->t != JSON_NUM || !v->len || v->len > 18) {
		*bad = 1;
		return -1;
	}
	for (i = 0; i < v->len; i++) {
		if (v->s[i] < '0' || v->s[i] > '9') {
			*bad = 1;
			return -1;
		}
		x = x * 10 + (v->s[i] - '0');
	}
	return x;
}

/*
 * The JSON reader decodes \udcNN (a lone low surrogate: a raw byte in the dump) as its 3-byte
 * UTF-8 form; turn those back into the byte, in place.
 */
static void unescape_bytes(char *s)
{
	unsigned char *r = (unsigned char *)s, *w = r;

	while (*r) {
		if (r[0] == 0xed && (r[1] & 0xf0) == 0xb0 && (r[2] & 0xc0) == 0x80) {
			unsigned u = ((r[1] & 0x3fu) << 6) | (r[2] & 0x3fu);	/* low 12 bits */

			if ((u & 0xf00) == 0xc00 && (u & 0xff) >= 0x80) {
				*w++ = (unsigned char)(u & 0xff);
				r += 3;
				continue;
			}
		}
		*w++ = *r++;
	}
	*w = '\0';
}

struct lmap {
	char name[HASHDB_NAME_MAX + 1];
	int64_t id;
};

static int lmap_cmp(const void *a, const void *b)
{
	return strcmp(((const struct lmap *)a)->name, ((const struct lmap *)b)->name);
}

struct restore {
	struct hashdb *db;
	const char *name;
	unsigned long long lineno;
	sqlite3_stmt *ins_list, *ins_hash, *ins_allow;
	struct lmap *lists;
	size_t nlists, caplists;
	int sorted;
	char *err;
	size_t errlen;
};

__attribute__((format(printf, 2, 3)))
static int rbad(struct restore *x, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	snprintf(x->err, x->errlen, "%s:%llu: %s", x->name, x->lineno, why);
	return -EINVAL;
}

static int bind_text_or_null(sqlite3_stmt *st, int i, const char *s)
{
	return s ? sqlite3_bind_text(st, i, s, -1, SQLITE_TRANSIENT) : sqlite3_bind_null(st, i);
}

static int bind_int_or_null(sqlite3_stmt *st, int i, long long v)
{
	return v >= 0 ? sqlite3_bind_int64(st, i, v) : sqlite3_bind_null(st, i);
}

static int step(struct restore *x, sqlite3_stmt *st, int64_t *id)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_ROW && id)
		*id = sqlite3_column_int64(st, 0);
	if (rc == SQLITE_ROW)
		rc = sqlite3_step(st);
	sqlite3_reset(st);
	if (rc == SQLITE_CONSTRAINT)
		return rbad(x, "duplicate or inconsistent entry (%s)", sqlite3_errmsg(x->db->sql));
	if (rc != SQLITE_DONE)
		return hashdb_sql_error(x->db, rc, "restore", x->err, x->errlen);
	return 0;
}

static int restore_hashval(struct restore *x, const struct dline *d, sqlite3_stmt *st, int ai,
			   int vi)
{
	char an[16], hex[2 * HASH_MAX_LEN + 1];
	uint8_t v[HASH_MAX_LEN];
	int bad = 0, a;

	if (!dstr(&d->algo, an, sizeof(an), &bad) || (a = hash_algo_parse(an)) < 0)
		return rbad(x, "missing or unknown \"algo\"");
	if (!dstr(&d->hash, hex, sizeof(hex), &bad) ||
	    strlen(hex) != 2 * hash_algo_len((enum hash_algo)a) ||
	    hex_decode(hex, strlen(hex), v, hash_algo_len((enum hash_algo)a)) < 0)
		return rbad(x, "missing or malformed \"hash\" for %s", an);
	sqlite3_bind_int(st, ai, a);
	sqlite3_bind_blob(st, vi, v, (int)hash_algo_len((enum hash_algo)a), SQLITE_TRANSIENT);
	return 0;
}

static int restore_line(struct restore *x, const struct dline *d, struct dump_stats *st,
			int *ended)
{
	char type[16], name[HASHDB_NAME_MAX + 2], cat[HASHDB_CATEGORY_MAX + 2];
	char origin[1024], version[1024], label[4096], id[4096];
	const char *pn, *pc, *po, *pv, *pl, *pi;
	long long t1, t2, q;
	int bad = 0, r;

	if (!dstr(&d->type, type, sizeof(type), &bad))
		return rbad(x, "no \"type\"");
	if (*ended)
		return rbad(x, "data after the end line");
	if (!strcmp(type, "list")) {
		int64_t lid;

		pn = dstr(&d->name, name, sizeof(name), &bad);
		pc = dstr(&d->category, cat, sizeof(cat), &bad);
		po = dstr(&d->origin, origin, sizeof(origin), &bad);
		pv = dstr(&d->version, version, sizeof(version), &bad);
		t1 = dint(&d->imported, &bad);
		t2 = dint(&d->updated, &bad);
		if (bad || !pn || !hashdb_valid_name(pn, HASHDB_NAME_MAX) ||
		    (pc && !hashdb_valid_name(pc, HASHDB_CATEGORY_MAX)) || t1 < 0 || t2 < 0)
			return rbad(x, "malformed list entry");
		if (st->hashes || st->allow)
			return rbad(x, "list after hashes (not a dump in order)");
		if (po)
			unescape_bytes(origin);
		if (pv)
			unescape_bytes(version);
		sqlite3_bind_text(x->ins_list, 1, pn, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(x->ins_list, 2, pc ? pc : "other", -1, SQLITE_TRANSIENT);
		bind_text_or_null(x->ins_list, 3, po);
		bind_text_or_null(x->ins_list, 4, pv);
		sqlite3_bind_int64(x->ins_list, 5, t1);
		sqlite3_bind_int64(x->ins_list, 6, t2);
		r = step(x, x->ins_list, &lid);
		if (r < 0)
			return r;
		if (x->nlists == x->caplists) {
			size_t cap = x->caplists ? x->caplists * 2 : 64;
			struct lmap *m = realloc(x->lists, cap * sizeof(*m));

			if (!m)
				return -ENOMEM;
			x->lists = m;
			x->caplists = cap;
		}
		snprintf(x->lists[x->nlists].name, sizeof(x->lists[0].name), "%s", pn);
		x->lists[x->nlists++].id = lid;
		st->lists++;
		return 0;
	}
	if (!strcmp(type, "hash")) {
		struct lmap key = { .id = 0 }, *l;

		if (!x->sorted) {
			qsort(x->lists, x->nlists, sizeof(*x->lists), lmap_cmp);
			x->sorted = 1;
		}
		pn = dstr(&d->list, key.name, sizeof(key.name), &bad);
		if (!pn)
			return rbad(x, "hash without \"list\"");
		l = bsearch(&key, x->lists, x->nlists, sizeof(*x->lists), lmap_cmp);
		if (!l)
			return rbad(x, "hash of list '%s', which the dump does not define", key.name);
		r = restore_hashval(x, d, x->ins_hash, 1, 2);
		if (r < 0)
			return r;
		t1 = dint(&d->added, &bad);
		pl = dstr(&d->label, label, sizeof(label), &bad);
		pi = dstr(&d->id, id, sizeof(id), &bad);
		pc = dstr(&d->category, cat, sizeof(cat), &bad);
		q = dint(&d->quality, &bad);
		if (bad || t1 < 0 || (pc && !hashdb_valid_name(pc, HASHDB_CATEGORY_MAX)) || q > 100)
			return rbad(x, "malformed hash entry");
		if (pl)
			unescape_bytes(label);
		if (pi)
			unescape_bytes(id);
		sqlite3_bind_int64(x->ins_hash, 3, l->id);
		sqlite3_bind_int64(x->ins_hash, 4, t1);
		bind_text_or_null(x->ins_hash, 5, pl);
		bind_text_or_null(x->ins_hash, 6, pi);
		bind_text_or_null(x->ins_hash, 7, pc);
		bind_int_or_null(x->ins_hash, 8, q);
		r = step(x, x->ins_hash, NULL);
		if (r < 0)
			return r;
		st->hashes++;
		return 0;
	}
	if (!strcmp(type, "allow")) {
		r = restore_hashval(x, d, x->ins_allow, 1, 2);
		if (r < 0)
			return r;
		t1 = dint(&d->added, &bad);
		pl = dstr(&d->reason, label, sizeof(label), &bad);
		if (bad || t1 < 0)
			return rbad(x, "malformed allowlist entry");
		if (pl)
			unescape_bytes(label);
		sqlite3_bind_int64(x->ins_allow, 3, t1);
		bind_text_or_null(x->ins_allow, 4, pl);
		r = step(x, x->ins_allow, NULL);
		if (r < 0)
			return r;
		st->allow++;
		return 0;
	}
	if (!strcmp(type, "meta")) {
		char key[256], *val = malloc(DUMP_LINE_MAX);
		const char *pk, *pval;

		if (!val)
			return -ENOMEM;
		pk = dstr(&d->key, key, sizeof(key), &bad);
		pval = dstr(&d->value, val, DUMP_LINE_MAX, &bad);
		if (bad || !pk || !*pk || !pval || !strcmp(pk, "generation") ||
		    !strcmp(pk, "created")) {
			free(val);
			return rbad(x, "malformed meta entry");
		}
		unescape_bytes(key);
		unescape_bytes(val);
		r = hashdb_meta_set(x->db, key, val, x->err, x->errlen);
		free(val);
		if (r < 0)
			return r;
		st->meta++;
		return 0;
	}
	if (!strcmp(type, "end")) {
		long long nl = dint(&d->lists, &bad), nh = dint(&d->hashes, &bad),
			  na = dint(&d->allow, &bad), nm = dint(&d->meta, &bad);

		if (bad || (unsigned long long)nl != st->lists ||
		    (unsigned long long)nh != st->hashes || (unsigned long long)na != st->allow ||
		    (nm < 0 ? st->meta != 0 : (unsigned long long)nm != st->meta))
			return rbad(x, "end line counts (%lld lists, %lld hashes, %lld allowlisted, "
				    "%lld meta) differ from the entries read (%llu, %llu, %llu, %llu)",
				    nl, nh, na, nm < 0 ? 0 : nm,
				    (unsigned long long)st->lists, (unsigned long long)st->hashes,
				    (unsigned long long)st->allow, (unsigned long long)st->meta);
		*ended = 1;
		return 0;
	}
	return rbad(x, "unknown type '%s'", type);
}

int dump_restore(struct hashdb *db, const char *path, struct dump_stats *st, char *err,
		 size_t errlen)
{
	struct restore x = { .db = db, .err = err, .errlen = errlen };
	char *line = NULL, *scratch = NULL;
	size_t cap = 0;
	ssize_t n;
	int64_t created = -1;
	int r = 0, rc, ended = 0, header = 0;
	sqlite3_stmt *s = NULL;
	FILE *f;

	memset(st, 0, sizeof(*st));
	x.name = strcmp(path, "-") ? path : "<stdin>";
	f = strcmp(path, "-") ? fopen(path, "re") : stdin;
	if (!f) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
		return r;
	}
	r = hashdb_begin(db, err, errlen);
	if (r < 0)
		goto out_close;
	rc = sqlite3_prepare_v2(db->sql, "SELECT (SELECT count(*) FROM lists) + "
				"(SELECT count(*) FROM allowlist)", -1, &s, NULL);
	if (rc != SQLITE_OK || sqlite3_step(s) != SQLITE_ROW) {
		r = hashdb_sql_error(db, rc, "read", err, errlen);
		goto out_rollback;
	}
	if (sqlite3_column_int64(s, 0) > 0) {
		snprintf(err, errlen, "%s: not empty (restore needs a database without lists and "
			 "allowlist: 'hashgate --db NEW db init', restore there, then move it in "
			 "place)", db->path);
		r = -EEXIST;
		goto out_rollback;
	}
	rc = sqlite3_prepare_v2(db->sql, "INSERT INTO lists(name, category, origin, version, "
				"imported, updated) VALUES (?, ?, ?, ?, ?, ?) RETURNING id", -1,
				&x.ins_list, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db->sql, "INSERT INTO hashes(algo, value, list_id, added, "
					"label, ref, category, quality) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
					-1, &x.ins_hash, NULL);
	if (rc == SQLITE_OK)
		rc = sqlite3_prepare_v2(db->sql, "INSERT INTO allowlist(algo, value, added, reason) "
					"VALUES (?, ?, ?, ?)", -1, &x.ins_allow, NULL);
	if (rc != SQLITE_OK) {
		r = hashdb_sql_error(db, rc, "prepare", err, errlen);
		goto out_rollback;
	}
	while ((n = getline(&line, &cap, f)) >= 0) {
		struct json_parser jp = { 0 };
		struct dline d;
		char *p;

		x.lineno++;
		if (n > DUMP_LINE_MAX) {
			r = rbad(&x, "line longer than %d bytes", DUMP_LINE_MAX);
			goto out_rollback;
		}
		p = realloc(scratch, (size_t)n + 1);
		if (!p) {
			r = -ENOMEM;
			goto out_rollback;
		}
		scratch = p;
		memset(&d, 0, sizeof(d));
		jp.p = line;
		jp.end = line + n;
		jp.out = scratch;
		if (json_object(&jp, dline_member, &d) != 0) {
			r = rbad(&x, "invalid JSON: %s", jp.why ? jp.why : "syntax error");
			goto out_rollback;
		}
		json_ws(&jp);
		if (jp.p != jp.end) {
			r = rbad(&x, "text after the JSON object");
			goto out_rollback;
		}
		if (!header) {
			int bad = 0;
			long long v = dint(&d.dump, &bad);

			if (v != DUMP_FORMAT_VERSION || bad) {
				r = rbad(&x, "not a hashgate dump (version %d; make one with 'hashgate "
					 "db dump')", DUMP_FORMAT_VERSION);
				goto out_rollback;
			}
			created = dint(&d.created, &bad);
			header = 1;
			continue;
		}
		r = restore_line(&x, &d, st, &ended);
		if (r < 0)
			goto out_rollback;
	}
	if (ferror(f)) {
		r = -EIO;
		snprintf(err, errlen, "%s: read error", x.name);
		goto out_rollback;
	}
	if (!ended) {
		r = -EINVAL;
		snprintf(err, errlen, "%s: no end line after line %llu: the dump is incomplete "
			 "(cut short?)", x.name, x.lineno);
		goto out_rollback;
	}
	if (created >= 0) {
		sqlite3_finalize(s);
		rc = sqlite3_prepare_v2(db->sql, "UPDATE meta SET value = ? WHERE key = 'created'",
					-1, &s, NULL);
		if (rc == SQLITE_OK) {
			sqlite3_bind_int64(s, 1, created);
			rc = sqlite3_step(s);
		}
		if (rc != SQLITE_DONE) {
			r = hashdb_sql_error(db, rc, "restore", err, errlen);
			goto out_rollback;
		}
	}
	sqlite3_finalize(s);
	s = NULL;
	sqlite3_finalize(x.ins_list);
	sqlite3_finalize(x.ins_hash);
	sqlite3_finalize(x.ins_allow);
	x.ins_list = x.ins_hash = x.ins_allow = NULL;
	r = hashdb_commit(db, err, errlen);
	if (r < 0)
		memset(st, 0, sizeof(*st));
	goto out_close;
out_rollback:
	sqlite3_finalize(s);
	s = NULL;
	sqlite3_finalize(x.ins_list);
	sqlite3_finalize(x.ins_hash);
	sqlite3_finalize(x.ins_allow);
	hashdb_rollback(db);
	memset(st, 0, sizeof(*st));
out_close:
	if (f != stdin)
		fclose(f);
	free(line);
	free(scratch);
	free(x.lists);
	return r;
}
