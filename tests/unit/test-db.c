/*
 * test-db.c - the hash database: schema and migrations (a schema 2 file of the previous release
 * upgraded with all its data), list ids never reused, clear errors for missing / corrupt /
 * uninitialised / newer / locked files, generation bumps, and list import in every format with
 * tombstones, last-line-wins, --replace, and bad lines that abort with FILE:LINE and change
 * nothing.  Works in a fresh temporary directory with real SQLite files.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sqlite3.h>

#include "hashdb/db.h"
#include "hashdb/hash.h"
#include "hashdb/import.h"
#include "tests/unit/tap.h"

static char dir[64];
static char path[128];

static void write_file(const char *p, const char *content)
{
	FILE *f = fopen(p, "w");

	if (!f) {
		perror(p);
		exit(2);
	}
	fputs(content, f);
	fclose(f);
}

static int sql_int(const char *file, const char *sql)
{
	sqlite3 *s;
	sqlite3_stmt *st;
	int v = -1;

	if (sqlite3_open(file, &s) != SQLITE_OK)
		return -1;
	if (sqlite3_prepare_v2(s, sql, -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			v = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
	}
	sqlite3_close(s);
	return v;
}

static void sql_exec(const char *file, const char *sql)
{
	sqlite3 *s;

	if (sqlite3_open(file, &s) == SQLITE_OK)
		sqlite3_exec(s, sql, NULL, NULL, NULL);
	sqlite3_close(s);
}

static uint64_t gen_of(const char *file)
{
	char err[256];
	uint64_t g = 0;

	if (hashdb_read_generation(file, &g, err, sizeof(err)) < 0)
		diag("read generation: %s", err);
	return g;
}

static int count_list(struct hashdb *db, const char *list, enum hash_algo a)
{
	struct hashdb_list *l;
	size_t n, k;
	int c = -1;

	if (hashdb_lists(db, true, &l, &n, NULL, 0) < 0)
		return -1;
	for (k = 0; k < n; k++)
		if (!strcmp(l[k].name, list))
			c = (int)l[k].count[a];
	free(l);
	return c;
}

struct find_ctx {
	char label[64];
	char list[64];
	int n;
};

static int on_find(const struct hashdb_entry *e, void *arg)
{
	struct find_ctx *f = arg;

	snprintf(f->label, sizeof(f->label), "%s", e->label ? e->label : "(none)");
	snprintf(f->list, sizeof(f->list), "%s", e->list ? e->list : "");
	f->n++;
	return 0;
}

static int has_hash(struct hashdb *db, enum hash_algo a, const char *hex, struct find_ctx *f)
{
	uint8_t v[32];
	struct find_ctx tmp;

	if (!f)
		f = &tmp;
	memset(f, 0, sizeof(*f));
	if (hex_decode(hex, strlen(hex), v, hash_algo_len(a)) < 0)
		return -1;
	return hashdb_hash_find(db, a, v, on_find, f, NULL, 0);
}

#define MD5_A	"d41d8cd98f00b204e9800998ecf8427e"
#define MD5_B	"0cc175b9c0f1b6a831c399e269772661"
#define SHA1_A	"da39a3ee5e6b4b0d3255bfef95601890afd80709"
#define SHA256_A "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SHA256_B "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"
#define PDQ_A	"f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"

static void test_open_errors(void)
{
	struct hashdb db;
	char p[160], err[512];
	int r;

	snprintf(p, sizeof(p), "%s/missing.db", dir);
	r = hashdb_open(&db, p, HASHDB_RDONLY, err, sizeof(err));
	is_int(r, -ENOENT, "missing file: -ENOENT");
	ok(strstr(err, p) && strstr(err, "no such database"), "missing file message names it: %s", err);
	ok(access(p, F_OK) != 0, "a read-only open did not create the file");
	r = hashdb_open(&db, p, 0, err, sizeof(err));
	is_int(r, -ENOENT, "missing file without HASHDB_CREATE: -ENOENT even read-write");

	snprintf(p, sizeof(p), "%s/corrupt.db", dir);
	write_file(p, "this is not an SQLite database, just some text that is long enough "
		   "to fill a header.................................................\n");
	r = hashdb_open(&db, p, HASHDB_RDONLY, err, sizeof(err));
	is_int(r, -EBADMSG, "corrupt file: -EBADMSG");
	ok(strstr(err, p) && strstr(err, "not a valid hashgate database"), "corrupt message: %s", err);
	r = hashdb_open(&db, p, HASHDB_CREATE, err, sizeof(err));
	is_int(r, -EBADMSG, "corrupt file is not 'created over' either");

	snprintf(p, sizeof(p), "%s/empty.db", dir);
	write_file(p, "");
	r = hashdb_open(&db, p, HASHDB_RDONLY, err, sizeof(err));
	is_int(r, -ENODATA, "empty file: -ENODATA (not an empty database)");
	ok(strstr(err, "not initialised") != NULL, "empty file message: %s", err);

	snprintf(p, sizeof(p), "%s/other.db", dir);
	sql_exec(p, "CREATE TABLE foo(x)");
	r = hashdb_open(&db, p, HASHDB_CREATE, err, sizeof(err));
	is_int(r, -ENODATA, "someone else's SQLite database is refused, even with CREATE");
	is_int(sql_int(p, "SELECT count(*) FROM sqlite_master"), 1, "... and left untouched");
}

static void test_schema(void)
{
	struct hashdb db;
	char err[512], p[160];
	uint64_t g;
	int r;

	r = hashdb_open(&db, path, HASHDB_CREATE, err, sizeof(err));
	if (!ok(r == 0, "create database")) {
		diag("%s", err);
		exit(1);
	}
	is_int(hashdb_schema_version(&db), HASHDB_SCHEMA_VERSION, "schema version stored");
	ok(hashdb_generation(&db, &g, err, sizeof(err)) == 0 && g > 1000000000000000ull,
	   "new database: generation starts at the creation time in microseconds");
	hashdb_close(&db);
	is_int(sql_int(path, "PRAGMA user_version"), HASHDB_SCHEMA_VERSION, "user_version in the file");
	{
		sqlite3 *s;
		sqlite3_stmt *st;
		char mode[16] = "";

		sqlite3_open(path, &s);
		sqlite3_prepare_v2(s, "PRAGMA journal_mode", -1, &st, NULL);
		if (sqlite3_step(st) == SQLITE_ROW)
			snprintf(mode, sizeof(mode), "%s", sqlite3_column_text(st, 0));
		sqlite3_finalize(st);
		sqlite3_close(s);
		is_str(mode, "wal", "database is in WAL mode");
	}
	/* reopening an up-to-date database changes nothing */
	r = hashdb_open(&db, path, 0, err, sizeof(err));
	ok(r == 0, "reopen read-write");
	hashdb_close(&db);
	is_int(gen_of(path), g, "reopening does not bump the generation");

	/* a newer schema is refused read-only and read-write, and not modified */
	snprintf(p, sizeof(p), "%s/newer.db", dir);
	r = hashdb_open(&db, p, HASHDB_CREATE, err, sizeof(err));
	hashdb_close(&db);
	sql_exec(p, "PRAGMA user_version = 99");
	r = hashdb_open(&db, p, HASHDB_RDONLY, err, sizeof(err));
	is_int(r, -EPROTONOSUPPORT, "newer schema refused read-only");
	ok(strstr(err, "99") && strstr(err, "newer"), "newer schema message: %s", err);
	r = hashdb_open(&db, p, HASHDB_CREATE, err, sizeof(err));
	is_int(r, -EPROTONOSUPPORT, "newer schema refused read-write");
	is_int(sql_int(p, "PRAGMA user_version"), 99, "newer file left as it was");

	/* an uninitialised (version 0) file gets migrated by a read-write CREATE open */
	snprintf(p, sizeof(p), "%s/v0.db", dir);
	write_file(p, "");
	r = hashdb_open(&db, p, HASHDB_CREATE, err, sizeof(err));
	ok(r == 0 && hashdb_schema_version(&db) == HASHDB_SCHEMA_VERSION,
	   "empty file migrated to the current schema by db init");
	hashdb_close(&db);
}

/* Make list name in its own transaction; its id, or -1. */
static int64_t make_list(struct hashdb *db, const char *name)
{
	char err[512];
	int64_t id = -1;

	if (hashdb_begin(db, err, sizeof(err)) < 0 ||
	    hashdb_list_ensure(db, name, "other", NULL, NULL, &id, err, sizeof(err)) < 0 ||
	    hashdb_commit(db, err, sizeof(err)) < 0) {
		diag("make list %s: %s", name, err);
		hashdb_rollback(db);
		return -1;
	}
	return id;
}

static int drop_list(struct hashdb *db, const char *name)
{
	char err[512];
	int r = hashdb_begin(db, err, sizeof(err));

	if (r == 0)
		r = hashdb_list_delete(db, name, err, sizeof(err));
	if (r == 0)
		return hashdb_commit(db, err, sizeof(err));
	diag("delete list %s: %s", name, err);
	hashdb_rollback(db);
	return r;
}

/*
 * A list id is never given out twice: a match found in a snapshot names its list by id
 * (matcher_hit_meta reads the row's metadata by it after the verdict), so a list deleted
 * and another created meanwhile must not answer for it.
 */
static void test_list_ids(void)
{
	struct hashdb db;
	char err[512], p[160];
	int64_t a, b, c, c2, d, e;

	snprintf(p, sizeof(p), "%s/ids.db", dir);
	if (!ok(hashdb_open(&db, p, HASHDB_CREATE, err, sizeof(err)) == 0, "ids.db created")) {
		diag("%s", err);
		return;
	}
	a = make_list(&db, "a");
	b = make_list(&db, "b");
	c = make_list(&db, "c");
	ok(a > 0 && a < b && b < c, "ids grow (%lld %lld %lld)", (long long)a, (long long)b,
	   (long long)c);
	drop_list(&db, "c");
	d = make_list(&db, "d");
	ok(d > c, "the highest list deleted: the next list gets a new id (%lld, deleted %lld)",
	   (long long)d, (long long)c);
	drop_list(&db, "d");
	c2 = make_list(&db, "c");
	ok(c2 > d, "a list deleted and made again under its old name gets a new id too (%lld)",
	   (long long)c2);
	drop_list(&db, "a");
	drop_list(&db, "b");
	drop_list(&db, "c");
	e = make_list(&db, "e");
	ok(e > c2, "every list deleted: still no id given out again (%lld)", (long long)e);
	hashdb_close(&db);
	hashdb_open(&db, p, 0, err, sizeof(err));
	ok(make_list(&db, "f") > e, "... across a reopen");
	hashdb_close(&db);
}

struct walk {
	int n;
	char seen[512];
};

static int walk_hash(const struct hashdb_entry *e, void *arg)
{
	struct walk *w = arg;
	char hex[2 * HASH_MAX_LEN + 1];
	size_t len = strlen(w->seen);

	hex_encode(e->value, hash_algo_len(e->algo), hex);
	snprintf(w->seen + len, sizeof(w->seen) - len, "%s%s/%.8s/%s/%s/%s/%d",
		 w->n++ ? " " : "", e->list, hex, e->label ? e->label : "-",
		 e->ref ? e->ref : "-", e->category ? e->category : "-", e->quality);
	return 0;
}

static int walk_allow(const struct hashdb_allow *a, void *arg)
{
	struct walk *w = arg;
	char hex[2 * HASH_MAX_LEN + 1];
	size_t len = strlen(w->seen);

	hex_encode(a->value, hash_algo_len(a->algo), hex);
	snprintf(w->seen + len, sizeof(w->seen) - len, "%s%s:%.8s:%s", w->n++ ? " " : "",
		 hash_algo_name(a->algo), hex, a->reason ? a->reason : "-");
	return 0;
}

/*
 * A database the previous release made (schema 2, tests/unit/data/README) is upgraded by a
 * read-write open and keeps every list (ids, names, categories, origins, versions, times),
 * hash with its per-row metadata, allowlist entry and its creation time; from then on list
 * ids are not reused.
 */
static void test_migrate_schema2(void)
{
	const char *src = getenv("HASHGATE_SRC");
	struct hashdb db;
	struct hashdb_list *l = NULL;
	struct walk w = { 0 };
	char err[512], p[160], cmd[512];
	uint64_t g0 = 0, g1 = 0;
	size_t n = 0;
	int64_t id, id2;
	int r;

	snprintf(p, sizeof(p), "%s/schema2.db", dir);
	snprintf(cmd, sizeof(cmd), "cp '%s/tests/unit/data/hashes-schema2.db' '%s'",
		 src ? src : ".", p);
	if (!ok(system(cmd) == 0, "copy the schema 2 database (HASHGATE_SRC=%s)",
		src ? src : "unset: the current directory"))
		return;
	is_int(sql_int(p, "PRAGMA user_version"), 2, "(the copy is of schema 2)");
	g0 = (uint64_t)sql_int(p, "SELECT value % 1000000000 FROM meta WHERE key = 'generation'");
	r = hashdb_open(&db, p, HASHDB_RDONLY, err, sizeof(err));
	ok(r == -EPROTO && strstr(err, "db init"), "read-only: refused as older, says to run db "
	   "init (%s)", err);
	r = hashdb_open(&db, p, 0, err, sizeof(err));
	if (!ok(r == 0, "a read-write open upgrades it")) {
		diag("%s", err);
		return;
	}
	is_int(hashdb_schema_version(&db), HASHDB_SCHEMA_VERSION, "schema version now current");
	hashdb_generation(&db, &g1, NULL, 0);
	ok(g1 % 1000000000 == g0 + 1, "the generation is bumped once (daemons reload)");
	ok(hashdb_lists(&db, true, &l, &n, err, sizeof(err)) == 0 && n == 2, "two lists kept");
	if (n == 2) {
		ok(l[0].id == 1 && !strcmp(l[0].name, "alpha") && !strcmp(l[0].category, "illegal") &&
		   l[0].count[HASH_MD5] == 1 && l[0].count[HASH_SHA1] == 1,
		   "alpha: id 1, illegal, its md5 and sha1");
		ok(l[1].id == 2 && !strcmp(l[1].name, "beta") &&
		   !strcmp(l[1].category, "quarantine") && !strcmp(l[1].origin, "test-supplier") &&
		   !strcmp(l[1].version, "v7") && l[1].imported == 1796302972 &&
		   l[1].updated == 1796302972 && l[1].count[HASH_SHA256] == 1 &&
		   l[1].count[HASH_PDQ] == 1,
		   "beta: id 2, category, origin, version, times, its sha256 and PDQ");
	}
	free(l);
	hashdb_hashes_foreach(&db, -1, -1, walk_hash, &w, err, sizeof(err));
	is_str(w.seen, "alpha/00112233/a1/-/-/-1 alpha/00112233/a1/-/-/-1 "
	       "beta/abababab/row one/ref-1/baseline/-1 beta/c3c3c3c3/img/ref-2/-/90",
	       "every hash with its label, ref, row category and quality");
	memset(&w, 0, sizeof(w));
	hashdb_allow_foreach(&db, walk_allow, &w, err, sizeof(err));
	is_str(w.seen, "md5:ffeeddcc:known fp", "the allowlist entry and its reason");
	id = make_list(&db, "delta");
	ok(id > 2, "a new list gets an id above every kept one (%lld)", (long long)id);
	drop_list(&db, "delta");
	id2 = make_list(&db, "epsilon");
	ok(id2 > id, "the highest deleted after the upgrade: not reused (%lld)", (long long)id2);
	hashdb_close(&db);
	is_int(sql_int(p, "SELECT value FROM meta WHERE key = 'created'"), 1796302972,
	       "the creation time kept");
	is_int(sql_int(p, "PRAGMA foreign_key_check"), -1, "no hash without its list");
	r = hashdb_open(&db, p, HASHDB_RDONLY, err, sizeof(err));
	ok(r == 0, "read-only open after the upgrade (%s)", r ? err : "ok");
	hashdb_close(&db);
}

static void test_locked(void)
{
	struct hashdb a, b;
	char err[512];
	uint64_t g0 = gen_of(path);
	int r;

	hashdb_open(&a, path, 0, NULL, 0);
	hashdb_open(&b, path, 0, NULL, 0);
	hashdb_set_busy_timeout(&b, 100);
	r = hashdb_begin(&a, err, sizeof(err));
	ok(r == 0, "writer A takes the write lock");
	r = hashdb_begin(&b, err, sizeof(err));
	is_int(r, -EBUSY, "writer B gets -EBUSY after its timeout");
	ok(strstr(err, "locked") != NULL, "locked message: %s", err);
	/* a reader still reads while A holds the write lock (WAL) */
	ok(gen_of(path) == g0, "a reader is not blocked by the writer");
	hashdb_rollback(&a);
	is_int(gen_of(path), g0, "rolled-back transaction did not bump the generation");

	/* a writer commits while a reader (a loading daemon) is inside a read transaction */
	{
		struct hashdb rd;
		uint64_t g1 = 0, g2 = 0;

		hashdb_open(&rd, path, HASHDB_RDONLY, NULL, 0);
		sqlite3_exec(rd.sql, "BEGIN", NULL, NULL, NULL);
		hashdb_generation(&rd, &g1, NULL, 0);
		r = hashdb_begin(&a, err, sizeof(err));
		if (r == 0)
			r = hashdb_commit(&a, err, sizeof(err));
		is_int(r, 0, "a write commits while a reader holds a snapshot");
		hashdb_generation(&rd, &g2, NULL, 0);
		is_int(g2, g1, "the reader keeps its consistent snapshot");
		sqlite3_exec(rd.sql, "COMMIT", NULL, NULL, NULL);
		hashdb_generation(&rd, &g2, NULL, 0);
		is_int(g2, g1 + 1, "its next read sees the new generation");
		hashdb_close(&rd);
	}
	hashdb_close(&a);
	hashdb_close(&b);
}

static int do_import(const char *file, const char *list, const char *cat, int algo,
		     enum import_format fmt, int del, int replace, struct import_stats *st,
		     char *err, size_t errlen)
{
	struct import_opts o = { .list = list, .category = cat, .algo = algo, .format = fmt,
				 .remove = del, .replace = replace };
	struct hashdb db;
	int r;

	r = hashdb_open(&db, path, 0, err, errlen);
	if (r < 0)
		return r;
	r = import_file(&db, file, &o, st, err, errlen);
	hashdb_close(&db);
	return r;
}

static void test_import(void)
{
	struct import_stats st;
	struct find_ctx f;
	struct hashdb db;
	char p[160], err[512];
	uint64_t g;
	int r;

	/* plain: md5 and sha1 inferred, labels after the hash, comments and blanks skipped */
	snprintf(p, sizeof(p), "%s/plain.txt", dir);
	write_file(p, "# a comment\n" MD5_A "  file-a.bin\n\n" SHA1_A "\r\n  " MD5_B ",100,b.jpg\n");
	g = gen_of(path);
	r = do_import(p, "plain", "illegal", -1, IMPORT_AUTO, 0, 0, &st, err, sizeof(err));
	if (!ok(r == 0, "plain import"))
		diag("%s", err);
	is_int(st.added, 3, "three hashes added");
	is_int(st.lines, 5, "five lines read");
	is_int(gen_of(path), g + 1, "import bumped the generation once");
	hashdb_open(&db, path, HASHDB_RDONLY, NULL, 0);
	is_int(count_list(&db, "plain", HASH_MD5), 2, "two md5 in the list");
	is_int(count_list(&db, "plain", HASH_SHA1), 1, "one sha1 in the list");
	is_int(has_hash(&db, HASH_MD5, MD5_A, &f), 1, "md5 A stored");
	is_str(f.label, "file-a.bin", "label after the hash stored");
	has_hash(&db, HASH_MD5, MD5_B, &f);
	is_str(f.label, "100,b.jpg", "comma-separated form: the rest is the label");
	hashdb_close(&db);

	/* re-import: already present, no duplicates */
	r = do_import(p, "plain", NULL, -1, IMPORT_PLAIN, 0, 0, &st, err, sizeof(err));
	ok(r == 0 && st.added == 0 && st.existing == 3, "re-import finds all three present");

	/* 64 hex digits need --type */
	snprintf(p, sizeof(p), "%s/amb.txt", dir);
	write_file(p, MD5_A "\n" SHA256_A "\n");
	g = gen_of(path);
	r = do_import(p, "amb", NULL, -1, IMPORT_PLAIN, 0, 0, &st, err, sizeof(err));
	is_int(r, -EINVAL, "64 hex digits without --type fail");
	ok(strstr(err, "amb.txt:2:") && strstr(err, "--type"), "error names FILE:2 and --type: %s", err);
	is_int(gen_of(path), g, "failed import did not bump the generation");
	hashdb_open(&db, path, HASHDB_RDONLY, NULL, 0);
	{
		struct hashdb_list l;

		is_int(hashdb_list_get(&db, "amb", &l, NULL, 0), -ENOENT,
		       "failed import did not even create the list");
	}
	hashdb_close(&db);
	r = do_import(p, "amb", NULL, HASH_SHA256, IMPORT_PLAIN, 0, 0, &st, err, sizeof(err));
	is_int(r, -EINVAL, "with --type sha256 the md5 line is now the bad one");
	ok(strstr(err, "amb.txt:1:") != NULL, "error names line 1: %s", err);

	/* a malformed line in the middle of a big file aborts everything */
	{
		FILE *fp;
		int i;

		snprintf(p, sizeof(p), "%s/bad.txt", dir);
		fp = fopen(p, "w");
		for (i = 0; i < 5000; i++)
			fprintf(fp, "%032x\n", i * 7919 + 1);
		fprintf(fp, "%031x\n", 5);	/* line 5001: 31 digits */
		for (i = 0; i < 100; i++)
			fprintf(fp, "%032x\n", i);
		fclose(fp);
		g = gen_of(path);
		r = do_import(p, "plain", NULL, -1, IMPORT_PLAIN, 0, 0, &st, err, sizeof(err));
		is_int(r, -EINVAL, "malformed line 5001 fails the import");
		ok(strstr(err, "bad.txt:5001:") != NULL, "error names bad.txt:5001: %s", err);
		is_int(gen_of(path), g, "generation unchanged");
		hashdb_open(&db, path, HASHDB_RDONLY, NULL, 0);
		is_int(count_list(&db, "plain", HASH_MD5), 2, "none of the 5000 good lines went in");
		hashdb_close(&db);
	}
	/* not hex */
	snprintf(p, sizeof(p), "%s/nothex.txt", dir);
	write_file(p, MD5_A "\n" "zz1d8cd98f00b204e9800998ecf8427e\n");
	r = do_import(p, "plain", NULL, -1, IMPORT_PLAIN, 0, 0, &st, err, sizeof(err));
	ok(r == -EINVAL && strstr(err, "nothex.txt:2:") && strstr(err, "hex"), "non-hex digit: %s", err);

	/* CSV: header names columns, several hashes per row, quoted label, ignored columns */
	snprintf(p, sizeof(p), "%s/list.csv", dir);
	write_file(p, "id,SHA256,md5,label,source\n"
		   "1," SHA256_A "," MD5_B ",\"a, \"\"quoted\"\" label\",x\n"
		   "2,," MD5_A ",,y\n");
	r = do_import(p, "csv", "baseline", -1, IMPORT_AUTO, 0, 0, &st, err, sizeof(err));
	if (!ok(r == 0, "CSV import"))
		diag("%s", err);
	is_int(st.added, 3, "three hashes from two CSV rows");
	hashdb_open(&db, path, HASHDB_RDONLY, NULL, 0);
	has_hash(&db, HASH_SHA256, SHA256_A, &f);
	is_str(f.label, "a, \"quoted\" label", "CSV quoting decoded");
	is_str(f.list, "csv", "hash is in list csv");
	hashdb_close(&db);
	snprintf(p, sizeof(p), "%s/bom.csv", dir);
	write_file(p, "\xef\xbb\xbfmd5\n" MD5_B "\n");
	r = do_import(p, "csv", NULL, -1, IMPORT_AUTO, 0, 0, &st, err, sizeof(err));
	ok(r == 0 && st.existing == 1, "a UTF-8 byte order mark before the CSV header is ignored");
	snprintf(p, sizeof(p), "%s/bad.csv", dir);
	write_file(p, "md5,label\n" MD5_A ",ok\n" MD5_B ",two,extra\n");
	r = do_import(p, "csv", NULL, -1, IMPORT_CSV, 0, 0, &st, err, sizeof(err));
	ok(r == -EINVAL && strstr(err, "bad.csv:3:") && strstr(err, "fields"),
	   "CSV row with the wrong field count: %s", err);
	write_file(p, "id,label\n1,x\n");
	r = do_import(p, "csv", NULL, -1, IMPORT_CSV, 0, 0, &st, err, sizeof(err));
	ok(r == -EINVAL && strstr(err, "bad.csv:1:") && strstr(err, "no hash column"),
	   "CSV header without a hash column: %s", err);

	/* JSON lines: per-key hashes, algo+hash, labels with escapes, tombstones */
	snprintf(p, sizeof(p), "%s/feed.jsonl", dir);
	write_file(p, "{\"sha256\": \"" SHA256_B "\", \"label\": \"caf\\u00e9 \\\"x\\\"\", "
		   "\"meta\": {\"a\": [1, 2, {\"b\": null}]}}\n"
		   "{\"algo\": \"pdq\", \"hash\": \"" PDQ_A "\"}\n"
		   "{\"md5\": \"" MD5_A "\", \"deleted\": false}\n");
	r = do_import(p, "feed", "illegal", -1, IMPORT_AUTO, 0, 0, &st, err, sizeof(err));
	if (!ok(r == 0 && st.added == 3, "JSONL import adds three"))
		diag("%s", err);
	hashdb_open(&db, path, HASHDB_RDONLY, NULL, 0);
	has_hash(&db, HASH_SHA256, SHA256_B, &f);
	is_str(f.label, "caf\xc3\xa9 \"x\"", "JSON escapes decoded into the label");
	is_int(has_hash(&db, HASH_PDQ, PDQ_A, NULL), 1, "algo+hash form stored a PDQ");
	hashdb_close(&db);
	/* tombstone: a later feed retracts one */
	write_file(p, "{\"md5\": \"" MD5_A "\", \"deleted\": true}\n"
		   "{\"md5\": \"" MD5_B "\", \"deleted\": true}\n");
	r = do_import(p, "feed", NULL, -1, IMPORT_JSONL, 0, 0, &st, err, sizeof(err));
	ok(r == 0 && st.removed == 1 && st.absent == 1, "tombstones: one removed, one absent");
	hashdb_open(&db, path, HASHDB_RDONLY, NULL, 0);
	is_int(count_list(&db, "feed", HASH_MD5), 0, "tombstoned md5 gone from the list");
	is_int(has_hash(&db, HASH_MD5, MD5_A, NULL), 2, "... but still in lists 'plain' and 'csv'");
	hashdb_close(&db);
	write_file(p, "{\"md5\": \"" MD5_A "\"}\n{\"md5\": \"" MD5_B "\", \"deleted\": tru}\n");
	r = do_import(p, "feed", NULL, -1, IMPORT_JSONL, 0, 0, &st, err, sizeof(err));
	ok(r == -EINVAL && strstr(err, "feed.jsonl:2:") && strstr(err, "JSON"),
	   "broken JSON names the line: %s", err);
	hashdb_open(&db, path, HASHDB_RDONLY, NULL, 0);
	is_int(count_list(&db, "feed", HASH_MD5), 0, "and line 1 of that file did not go in");
	hashdb_close(&db);

	/* last line wins for the same hash; --delete; --replace */
	snprintf(p, sizeof(p), "%s/order.jsonl", dir);
	write_file(p, "{\"md5\": \"" MD5_A "\"}\n{\"md5\": \"" MD5_A "\", \"deleted\": true}\n"
		   "{\"md5\": \"" MD5_B "\", \"deleted\": true}\n{\"md5\": \"" MD5_B "\"}\n");
	r = do_import(p, "order", NULL, -1, IMPORT_JSONL, 0, 0, &st, err, sizeof(err));
	hashdb_open(&db, path, HASHDB_RDONLY, NULL, 0);
	ok(r == 0 && count_list(&db, "order", HASH_MD5) == 1, "one hash left in 'order'");
	hashdb_close(&db);
	snprintf(p, sizeof(p), "%s/del.txt", dir);
	write_file(p, MD5_B "\n");
	r = do_import(p, "order", NULL, -1, IMPORT_PLAIN, 1, 0, &st, err, sizeof(err));
	ok(r == 0 && st.removed == 1, "--delete removes the listed hash");
	hashdb_open(&db, path, HASHDB_RDONLY, NULL, 0);
	is_int(count_list(&db, "order", HASH_MD5), 0, "last line won: B was added, then deleted");
	is_int(count_list(&db, "plain", HASH_MD5), 2, "--delete on one list leaves others alone");
	hashdb_close(&db);
	snprintf(p, sizeof(p), "%s/replace.txt", dir);
	write_file(p, MD5_B "\n" SHA1_A "\n");
	r = do_import(p, "plain", NULL, -1, IMPORT_PLAIN, 0, 1, &st, err, sizeof(err));
	ok(r == 0 && st.removed == 1 && st.added == 0 && st.existing == 2,
	   "--replace removes the one hash not in the file");
	hashdb_open(&db, path, HASHDB_RDONLY, NULL, 0);
	is_int(count_list(&db, "plain", HASH_MD5), 1, "list 'plain' is exactly the file now");
	hashdb_close(&db);

	/* stdin-less: a missing input file */
	snprintf(p, sizeof(p), "%s/nope.txt", dir);
	r = do_import(p, "plain", NULL, -1, IMPORT_PLAIN, 0, 0, &st, err, sizeof(err));
	ok(r == -ENOENT && strstr(err, "nope.txt"), "missing input file: %s", err);
	/* bad list name */
	r = do_import(p, "no spaces", NULL, -1, IMPORT_PLAIN, 0, 0, &st, err, sizeof(err));
	ok(r == -EINVAL && strstr(err, "list name"), "invalid list name: %s", err);
}

static void test_api(void)
{
	struct hashdb db;
	struct hashdb_list l;
	struct hashdb_stats s;
	uint8_t v[32];
	char err[512];
	uint64_t g;
	int64_t id;
	int r;

	hashdb_open(&db, path, 0, err, sizeof(err));
	hashdb_generation(&db, &g, NULL, 0);
	r = hashdb_hash_add(&db, 1, HASH_MD5, v, NULL, err, sizeof(err));
	is_int(r, -EINVAL, "a change outside a transaction is refused");
	hashdb_begin(&db, NULL, 0);
	r = hashdb_list_ensure(&db, "api", "illegal", "https://example.org/feed", "v7", &id,
			       err, sizeof(err));
	ok(r == 0, "list created");
	hex_decode(SHA256_A, 64, v, 32);
	is_int(hashdb_hash_add(&db, id, HASH_SHA256, v, "lbl", err, sizeof(err)), 1, "hash added");
	is_int(hashdb_hash_add(&db, id, HASH_SHA256, v, NULL, err, sizeof(err)), 0,
	       "same hash again: already present");
	is_int(hashdb_allow_add(&db, HASH_SHA256, v, "false positive", err, sizeof(err)), 1,
	       "allowlisted");
	ok(hashdb_commit(&db, err, sizeof(err)) == 0, "commit");
	hashdb_generation(&db, &g, NULL, 0);
	is_int(hashdb_list_get(&db, "api", &l, NULL, 0), 0, "list read back");
	is_str(l.category, "illegal", "category");
	is_str(l.origin, "https://example.org/feed", "origin");
	is_str(l.version, "v7", "version");
	ok(l.imported > 0 && l.updated >= l.imported, "imported/updated times set");
	ok(hashdb_stats(&db, &s, err, sizeof(err)) == 0 && s.allow[HASH_SHA256] == 1 &&
	   s.hashes[HASH_SHA256] >= 2 && s.generation == g, "stats count hashes and allowlist");
	hashdb_begin(&db, NULL, 0);
	is_int(hashdb_hash_remove(&db, -1, HASH_SHA256, v, err, sizeof(err)), 2,
	       "remove from every list removes both copies");
	is_int(hashdb_allow_remove(&db, HASH_SHA256, v, err, sizeof(err)), 1, "unallowlisted");
	is_int(hashdb_list_delete(&db, "api", err, sizeof(err)), 0, "list deleted");
	hashdb_commit(&db, NULL, 0);
	is_int(gen_of(path), g + 1, "one commit, one generation");
	hashdb_close(&db);
	/* a read-only handle cannot write */
	hashdb_open(&db, path, HASHDB_RDONLY, NULL, 0);
	is_int(hashdb_begin(&db, err, sizeof(err)), -EROFS, "read-only handle refuses to begin");
	hashdb_close(&db);
}

/* Feed state in meta: written without a generation bump, reserved keys refused. */
static int count_meta(const char *k, const char *v, void *arg)
{
	(void)k;
	(void)v;
	(*(int *)arg)++;
	return 0;
}

static void test_meta(void)
{
	struct hashdb db;
	char err[512], *v = NULL;
	uint64_t g0, g1;
	int n = 0;

	hashdb_open(&db, path, 0, err, sizeof(err));
	hashdb_generation(&db, &g0, NULL, 0);
	is_int(hashdb_meta_get(&db, "feed:x", &v, err, sizeof(err)), -ENOENT, "absent key");
	is_int(hashdb_meta_set(&db, "feed:x", "etag=\"1\"\ncursor=4\n", err, sizeof(err)), 0,
	       "state written");
	ok(hashdb_meta_get(&db, "feed:x", &v, err, sizeof(err)) == 0 && v &&
	   !strcmp(v, "etag=\"1\"\ncursor=4\n"), "state read back");
	free(v);
	hashdb_generation(&db, &g1, NULL, 0);
	is_int(g1, g0, "state does not bump the generation (daemons do not reload for it)");
	hashdb_meta_set(&db, "feed:y", "a", NULL, 0);
	hashdb_meta_foreach(&db, "feed:", count_meta, &n, NULL, 0);
	is_int(n, 2, "foreach by prefix");
	is_int(hashdb_meta_set(&db, "generation", "1", err, sizeof(err)), -EINVAL,
	       "the generation cannot be overwritten");
	is_int(hashdb_meta_set(&db, "feed:x", NULL, err, sizeof(err)), 0, "state deleted");
	is_int(hashdb_meta_get(&db, "feed:x", &v, NULL, 0), -ENOENT, "... gone");
	hashdb_close(&db);
	hashdb_open(&db, path, HASHDB_RDONLY, NULL, 0);
	is_int(hashdb_meta_set(&db, "feed:z", "1", NULL, 0), -EROFS, "read-only handle refuses");
	hashdb_close(&db);
}

int main(void)
{
	char cmd[128];

	snprintf(dir, sizeof(dir), "/tmp/test-db.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}
	snprintf(path, sizeof(path), "%s/hashes.db", dir);
	test_open_errors();
	test_schema();
	test_list_ids();
	test_migrate_schema2();
	test_locked();
	test_import();
	test_api();
	test_meta();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		diag("could not remove %s", dir);
	return done_testing();
}
