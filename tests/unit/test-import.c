/*
 * test-import.c - list files as suppliers ship them (issue 18) and per-row list metadata
 * (issue 17): semicolon CSV with spreadsheet header names, --delimiter, --columns for files
 * without a header, --map, per-row id/label/category/quality kept and warned-about ignored
 * columns, JSON arrays and pretty-printed JSON, HMA signal objects, `sha256sum --tag` lines,
 * gzip input, --check listing every bad line, --dry-run, --delete/--replace of a missing list,
 * control characters escaped in messages; a meta row (feed state) committed with the import or
 * not at all; the full dump/restore round trip (feed state included) and compact; the
 * matcher acting on a row's own category and a hit's row metadata.
 * Every file is generated here; the hashes are of nothing in particular.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>

#include "hashdb/db.h"
#include "hashdb/dump.h"
#include "hashdb/hash.h"
#include "hashdb/import.h"
#include "hashdb/match.h"
#include "tests/unit/tap.h"

#define MD5_A	"0123456789abcdef0123456789abcdef"
#define MD5_B	"fedcba9876543210fedcba9876543210"
#define MD5_C	"00112233445566778899aabbccddeeff"
#define SHA1_A	"0123456789abcdef0123456789abcdef01234567"
#define SHA256_A "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define SHA256_B "1123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
#define PDQ_A	"f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
#define PDQ_B	"0000f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"

static char dir[64];
static char path[128];
static char msgs[8192];
static int nwarn, nbad;

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

static void on_message(void *arg, int level, const char *msg)
{
	size_t n = strlen(msgs);

	snprintf(msgs + n, sizeof(msgs) - n, "%s\n", msg);
	if (level == IMPORT_WARN)
		nwarn++;
	else
		nbad++;
}

static int run(const char *file, struct import_opts *o, struct import_stats *st, char *err,
	       size_t errlen)
{
	struct hashdb db;
	int r;

	msgs[0] = '\0';
	nwarn = nbad = 0;
	o->message = on_message;
	r = hashdb_open(&db, path, 0, err, errlen);
	if (r < 0)
		return r;
	r = import_file(&db, file, o, st, err, errlen);
	hashdb_close(&db);
	return r;
}

static uint64_t gen(void)
{
	uint64_t g = 0;

	hashdb_read_generation(path, &g, NULL, 0);
	return g;
}

/* The row of (list, algo, hex): 1 and *e's strings copied, or 0. */
struct row {
	char label[256], ref[256], category[64];
	int quality, found;
};

static int row_cb(const struct hashdb_entry *e, void *arg)
{
	struct row *r = arg;

	snprintf(r->label, sizeof(r->label), "%s", e->label ? e->label : "(null)");
	snprintf(r->ref, sizeof(r->ref), "%s", e->ref ? e->ref : "(null)");
	snprintf(r->category, sizeof(r->category), "%s", e->category ? e->category : "(null)");
	r->quality = e->quality;
	r->found = 1;
	return 1;
}

static struct row get_row(const char *list, enum hash_algo a, const char *hex)
{
	struct row r = { .quality = -2 };
	struct hashdb_list l;
	struct hashdb db;
	uint8_t v[32];

	if (hashdb_open(&db, path, HASHDB_RDONLY, NULL, 0) < 0)
		return r;
	hex_decode(hex, strlen(hex), v, hash_algo_len(a));
	if (hashdb_list_get(&db, list, &l, NULL, 0) == 0)
		hashdb_hash_find_in(&db, l.id, a, v, row_cb, &r, NULL, 0);
	hashdb_close(&db);
	return r;
}

static int list_count(const char *list)
{
	struct hashdb_list l;
	struct hashdb db;
	int n = -1;

	if (hashdb_open(&db, path, HASHDB_RDONLY, NULL, 0) < 0)
		return -1;
	if (hashdb_list_get(&db, list, &l, NULL, 0) == 0)
		n = hashdb_hashes_foreach(&db, l.id, -1, NULL, NULL, NULL, 0);
	hashdb_close(&db);
	return n;
}

static void test_csv(void)
{
	struct import_opts o = { .list = "nl", .category = "baseline", .algo = -1 };
	struct import_stats st;
	struct row rw;
	char p[160], err[1024];
	int r;

	/* NL/DE Excel: ';', CRLF, BOM, spreadsheet header names, trailing empty rows */
	snprintf(p, sizeof(p), "%s/nl.csv", dir);
	write_file(p, "\xef\xbb\xbf" "ID;MD5 Hash;SHA-1;Category;Quality;Omschrijving;Bron\r\n"
		   "17;" MD5_A ";" SHA1_A ";illegal;90;\"eerste; met puntkomma\";x\r\n"
		   "18;" MD5_B ";;;;tweede;y\r\n"
		   ";;;;;;\r\n");
	r = run(p, &o, &st, err, sizeof(err));
	if (!ok(r == 0 && st.added == 3, "semicolon CSV with 'MD5 Hash', 'SHA-1' headers imports"))
		diag("%d %s", r, err);
	rw = get_row("nl", HASH_SHA1, SHA1_A);
	ok(rw.found && !strcmp(rw.ref, "17") && !strcmp(rw.category, "illegal") &&
	   rw.quality == 90, "per-row id, category and quality kept (%s %s %d)", rw.ref,
	   rw.category, rw.quality);
	rw = get_row("nl", HASH_MD5, MD5_B);
	ok(rw.found && !strcmp(rw.ref, "18") && !strcmp(rw.category, "(null)") &&
	   rw.quality == -1, "a row without category/quality has none");
	is_int(nwarn, 1, "one warning for the ignored columns");
	ok(strstr(msgs, "'Omschrijving'") && strstr(msgs, "'Bron'"),
	   "... naming both: %s", msgs);

	/* --delimiter: TAB given explicitly; commas inside fields stay */
	snprintf(p, sizeof(p), "%s/tab.txt", dir);
	write_file(p, "md5\tlabel\n" MD5_C "\ta, b, c\n");
	o.list = "tab";
	o.format = IMPORT_CSV;
	o.delimiter = '\t';
	r = run(p, &o, &st, err, sizeof(err));
	rw = get_row("tab", HASH_MD5, MD5_C);
	ok(r == 0 && !strcmp(rw.label, "a, b, c"), "--delimiter TAB: label '%s' (%s)", rw.label,
	   r ? err : "");
	o.delimiter = 0;

	/* --columns: pdq-photo-hasher output has no header */
	snprintf(p, sizeof(p), "%s/pdq.txt", dir);
	write_file(p, PDQ_A ",80,photo1.jpg\n" PDQ_B ",100,dir/photo 2.jpg\n");
	o.list = "pdq";
	o.columns = "pdq,quality,filename";
	r = run(p, &o, &st, err, sizeof(err));
	ok(r == 0 && st.added == 2, "--columns pdq,quality,filename imports a headerless file (%s)",
	   r ? err : "");
	rw = get_row("pdq", HASH_PDQ, PDQ_B);
	ok(!strcmp(rw.label, "dir/photo 2.jpg") && rw.quality == 100, "quality and file name kept");
	o.columns = "pdq,bogus";
	r = run(p, &o, &st, err, sizeof(err));
	ok(r == -EINVAL && strstr(err, "bogus"), "an unknown --columns field is an error: %s", err);
	o.columns = NULL;

	/* --map FIELD=COLUMN for names nobody guesses */
	snprintf(p, sizeof(p), "%s/map.csv", dir);
	write_file(p, "Waarde MD5,Kenmerk\n" MD5_A ",K-1\n");
	{
		const char *map[] = { "md5=Waarde MD5", "id=kenmerk" };

		o.list = "map";
		o.map = map;
		o.nmap = 2;
		r = run(p, &o, &st, err, sizeof(err));
		rw = get_row("map", HASH_MD5, MD5_A);
		ok(r == 0 && !strcmp(rw.ref, "K-1") && nwarn == 0,
		   "--map md5=\"Waarde MD5\" id=kenmerk (%s)", r ? err : "");
		map[0] = "md5=Hash MD5";
		o.nmap = 1;
		r = run(p, &o, &st, err, sizeof(err));
		ok(r == -EINVAL && strstr(err, "Hash MD5") && strstr(err, "'Waarde MD5'"),
		   "--map of a column the header lacks names the columns: %s", err);
		o.map = NULL;
		o.nmap = 0;
	}
	/* a bad per-row category is a bad line */
	snprintf(p, sizeof(p), "%s/badcat.csv", dir);
	write_file(p, "md5,category\n" MD5_A ",not a category\n");
	o.list = "badcat";
	r = run(p, &o, &st, err, sizeof(err));
	ok(r == -EINVAL && strstr(err, "badcat.csv:2:") && strstr(err, "category"),
	   "an invalid per-row category names the line: %s", err);
	o.format = IMPORT_AUTO;
}

static void test_json(void)
{
	struct import_opts o = { .list = "js", .algo = -1 };
	struct import_stats st;
	struct row rw;
	char p[160], err[1024];
	int r;

	snprintf(p, sizeof(p), "%s/arr.json", dir);
	write_file(p, "[\n  {\n    \"md5\": \"" MD5_A "\",\n    \"label\": \"one\",\n"
		   "    \"id\": 7\n  },\n  {\"sha256\": \"" SHA256_A "\", \"tags\": [\"x\"]}\n]\n");
	r = run(p, &o, &st, err, sizeof(err));
	ok(r == 0 && st.added == 2, "a pretty-printed JSON array imports (%s)", r ? err : "");
	rw = get_row("js", HASH_MD5, MD5_A);
	ok(!strcmp(rw.label, "one") && !strcmp(rw.ref, "7"), "label and numeric id kept");
	ok(nwarn == 1 && strstr(msgs, "'tags'"), "unknown key warned about once: %s", msgs);

	snprintf(p, sizeof(p), "%s/objs.json", dir);
	write_file(p, "{\n  \"md5\": \"" MD5_B "\"\n}\n{\n  \"md5\": \"" MD5_C "\"\n}\n");
	o.list = "objs";
	r = run(p, &o, &st, err, sizeof(err));
	ok(r == 0 && st.added == 2, "pretty-printed objects one after another (%s)",
	   r ? err : "");

	/* HMA: signal_type / signal_value, bank content id, nested metadata */
	snprintf(p, sizeof(p), "%s/hma.jsonl", dir);
	write_file(p, "{\"signal_type\": \"pdq\", \"signal_value\": \"" PDQ_A "\", "
		   "\"bank_content_id\": 42, \"metadata\": {\"a\": 1}}\n"
		   "{\"signal_type\": \"video_md5\", \"signal_value\": \"" MD5_A "\"}\n");
	o.list = "hma";
	r = run(p, &o, &st, err, sizeof(err));
	ok(r == 0 && st.added == 2, "HMA signal_type/signal_value objects import (%s)",
	   r ? err : "");
	rw = get_row("hma", HASH_PDQ, PDQ_A);
	is_str(rw.ref, "42", "bank_content_id kept as the row id");

	/* an error inside a multi-line document names the object's line */
	write_file(p, "[\n {\"md5\": \"" MD5_A "\"},\n {\"md5\": \"xyz\"}\n]\n");
	o.list = "js";
	r = run(p, &o, &st, err, sizeof(err));
	ok(r == -EINVAL && strstr(err, "hma.jsonl:3:"), "bad object in an array: %s", err);
	write_file(p, "[\n {\"md5\": \"" MD5_A "\"}\n");
	r = run(p, &o, &st, err, sizeof(err));
	ok(r == -EINVAL && strstr(err, "']'"), "unterminated array: %s", err);
}

static void test_plain_gz(void)
{
	struct import_opts o = { .list = "tag", .algo = -1 };
	struct import_stats st;
	struct row rw;
	char p[160], err[1024];
	gzFile gz;
	int r;

	snprintf(p, sizeof(p), "%s/tags.txt", dir);
	write_file(p, "SHA256 (a file.bin) = " SHA256_A "\n"
		   "MD5 (odd (name)) = " MD5_A "\n"
		   "SHA1 (x) = " SHA1_A "\n");
	r = run(p, &o, &st, err, sizeof(err));
	ok(r == 0 && st.added == 3, "sha256sum --tag / BSD lines import, algorithm from the tag "
	   "(%s)", r ? err : "");
	rw = get_row("tag", HASH_MD5, MD5_A);
	is_str(rw.label, "odd (name)", "the name in parentheses is the label");
	write_file(p, "SHA512 (x) = " SHA256_A SHA256_A "\n");
	r = run(p, &o, &st, err, sizeof(err));
	ok(r == -EINVAL && strstr(err, "SHA512"), "an unsupported tag is named: %s", err);
	write_file(p, "MD5 (x) = " MD5_A "\n");
	o.algo = HASH_SHA256;
	r = run(p, &o, &st, err, sizeof(err));
	ok(r == -EINVAL && strstr(err, "--type"), "a tag that contradicts --type: %s", err);
	o.algo = -1;

	snprintf(p, sizeof(p), "%s/list.csv.gz", dir);
	gz = gzopen(p, "wb");
	gzprintf(gz, "md5,label\n%s,zipped\n", MD5_C);
	gzclose(gz);
	o.list = "gz";
	r = run(p, &o, &st, err, sizeof(err));
	rw = get_row("gz", HASH_MD5, MD5_C);
	ok(r == 0 && !strcmp(rw.label, "zipped"), "gzip CSV (format from the name under .gz) "
	   "(%s)", r ? err : "");
	/* broken gzip: cut off in the middle */
	{
		FILE *f = fopen(p, "r+");
		struct stat sb;

		stat(p, &sb);
		if (f) {
			if (ftruncate(fileno(f), sb.st_size - 6) != 0)
				diag("ftruncate failed");
			fclose(f);
		}
	}
	r = run(p, &o, &st, err, sizeof(err));
	ok(r < 0 && strstr(err, "gzip"), "truncated gzip is an error: %s", err);
}

static void test_check(void)
{
	struct import_opts o = { .list = "chk", .algo = -1, .check = true };
	struct import_stats st;
	char p[160], err[1024];
	uint64_t g;
	int r;

	snprintf(p, sizeof(p), "%s/bad.txt", dir);
	write_file(p, MD5_A "\nzz\n" MD5_B "\nnot\x1b[31mred\xc2\x9b" "2J\n" MD5_C "\n12345\n");
	g = gen();
	r = run(p, &o, &st, err, sizeof(err));
	ok(r == -EINVAL && st.bad == 3 && nbad == 3, "--check reports all three bad lines "
	   "(bad %llu, messages %d)", (unsigned long long)st.bad, nbad);
	ok(strstr(msgs, "bad.txt:2:") && strstr(msgs, "bad.txt:4:") && strstr(msgs, "bad.txt:6:"),
	   "each by FILE:LINE");
	ok(!strchr(msgs, '\x1b') && !strstr(msgs, "\xc2\x9b") && strstr(msgs, "\\x1b[31m") &&
	   strstr(msgs, "\\xc2\\x9b"), "ESC and the C1 CSI from the file are escaped: %s", msgs);
	is_int(gen(), g, "check changed nothing");
	is_int(list_count("chk"), -1, "... not even created the list");
	o.max_bad = 2;
	r = run(p, &o, &st, err, sizeof(err));
	ok(st.bad == 3 && nbad == 2 && strstr(err, "3 bad lines"), "--check shows the first 2 and "
	   "counts all: %s", err);
	o.max_bad = 0;
	write_file(p, MD5_A "\n" MD5_B "\n");
	r = run(p, &o, &st, err, sizeof(err));
	ok(r == 0 && st.records == 2 && list_count("chk") == -1, "a good file passes --check and "
	   "is not imported");

	/* without --check the first bad line stops, with the same escaping */
	write_file(p, "\x1b]0;title\x07\n");
	o.check = false;
	r = run(p, &o, &st, err, sizeof(err));
	ok(r == -EINVAL && !strchr(err, '\x1b') && !strchr(err, '\x07') && strstr(err, "\\x1b"),
	   "import error escapes control characters: %s", err);
}

static void test_missing_list_dry_run(void)
{
	struct import_opts o = { .list = "ghost", .algo = -1, .remove = true };
	struct import_stats st;
	char p[160], err[1024];
	uint64_t g;
	int r;

	snprintf(p, sizeof(p), "%s/del.txt", dir);
	write_file(p, MD5_A "\n");
	g = gen();
	r = run(p, &o, &st, err, sizeof(err));
	ok(r == -ENOENT && strstr(err, "ghost") && strstr(err, "--delete"),
	   "--delete on a list that does not exist: %s", err);
	o.remove = false;
	o.replace = true;
	r = run(p, &o, &st, err, sizeof(err));
	ok(r == -ENOENT && strstr(err, "--replace"), "--replace likewise: %s", err);
	is_int(gen(), g, "nothing changed");
	is_int(list_count("ghost"), -1, "no empty list was created");
	o.create = true;
	r = run(p, &o, &st, err, sizeof(err));
	ok(r == 0 && list_count("ghost") == 1, "with create (a feed's first full list) it is made");

	/* dry run: the counts of a real run, nothing applied */
	write_file(p, MD5_B "\n" MD5_C "\n");
	o.create = false;
	o.dry_run = true;
	g = gen();
	r = run(p, &o, &st, err, sizeof(err));
	ok(r == 0 && st.added == 2 && st.removed == 1, "dry run: 2 added, 1 removed");
	is_int(gen(), g, "dry run changed nothing");
	is_int(list_count("ghost"), 1, "the list is as it was");
}

static char *meta_of(const char *key)
{
	struct hashdb db;
	char *v = NULL;

	if (hashdb_open(&db, path, HASHDB_RDONLY, NULL, 0) < 0)
		return NULL;
	if (hashdb_meta_get(&db, key, &v, NULL, 0) < 0)
		v = NULL;
	hashdb_close(&db);
	return v;
}

/* A meta row (a feed's state) set in the import's own transaction: with the list, or not at all. */
static void test_meta_with_import(void)
{
	struct import_opts o = { .list = "fed", .algo = -1, .create = true, .replace = true,
				 .meta_key = "feed:fed", .meta_value = "cursor=1\n" };
	struct import_stats st;
	char p[160], err[1024], *v;
	uint64_t g;
	int r;

	snprintf(p, sizeof(p), "%s/fed.txt", dir);
	write_file(p, MD5_A "\n" MD5_B "\nnot-a-hash\n");
	g = gen();
	r = run(p, &o, &st, err, sizeof(err));
	v = meta_of("feed:fed");
	ok(r == -EINVAL && !v && gen() == g && list_count("fed") == -1,
	   "a failed import writes neither the list nor the meta row (%s)", err);
	free(v);
	write_file(p, MD5_A "\n" MD5_B "\n");
	o.create = false;		/* fails inside the transaction: no such list */
	r = run(p, &o, &st, err, sizeof(err));
	v = meta_of("feed:fed");
	ok(r == -ENOENT && !v && gen() == g, "an import rolled back writes no meta row either");
	free(v);
	o.create = true;
	o.dry_run = true;
	r = run(p, &o, &st, err, sizeof(err));
	v = meta_of("feed:fed");
	ok(r == 0 && !v && gen() == g, "a dry run writes no meta row");
	free(v);
	o.dry_run = false;
	r = run(p, &o, &st, err, sizeof(err));
	v = meta_of("feed:fed");
	ok(r == 0 && v && !strcmp(v, "cursor=1\n") && list_count("fed") == 2 && gen() == g + 1,
	   "an import writes the list and the meta row in one transaction (one generation)");
	free(v);
	o.meta_value = "cursor=2\n";
	write_file(p, MD5_A "\n");
	r = run(p, &o, &st, err, sizeof(err));
	v = meta_of("feed:fed");
	ok(r == 0 && v && !strcmp(v, "cursor=2\n") && list_count("fed") == 1 && gen() == g + 2,
	   "the next import replaces both together");
	free(v);
}

static char *dump_to_string(const char *dbpath, size_t *len)
{
	struct dump_stats ds;
	struct hashdb db;
	char *buf = NULL, err[512];
	FILE *f;
	int r;

	*len = 0;
	if (hashdb_open(&db, dbpath, HASHDB_RDONLY, err, sizeof(err)) < 0)
		return NULL;
	f = open_memstream(&buf, len);
	r = dump_write(&db, f, &ds, err, sizeof(err));
	fclose(f);
	hashdb_close(&db);
	if (r < 0) {
		diag("dump: %s", err);
		free(buf);
		return NULL;
	}
	return buf;
}

static void test_dump(void)
{
	struct dump_stats ds;
	struct hashdb db;
	char p[160], p2[sizeof(path)], err[1024], *d1, *d2;
	size_t l1, l2;
	uint8_t v[32];
	int64_t id;
	int r;

	/* odd bytes in labels and reasons must survive */
	hashdb_open(&db, path, 0, NULL, 0);
	hashdb_begin(&db, NULL, 0);
	hashdb_list_ensure(&db, "odd", "illegal", "https://x.example/\x01", "v\xff", &id, NULL, 0);
	hex_decode(SHA256_B, 64, v, 32);
	hashdb_hash_add(&db, id, HASH_SHA256, v, "caf\xe9 \"q\" \\ \x1b", NULL, 0);
	hashdb_allow_add(&db, HASH_SHA256, v, "fp\ttab", NULL, 0);
	hashdb_commit(&db, NULL, 0);
	/* a feed's state, with odd bytes (a server's ETag) */
	hashdb_meta_set(&db, "feed:odd", "etag=\"W/\\x\x01\xff\"\ncursor=7\n", NULL, 0);
	hashdb_close(&db);

	d1 = dump_to_string(path, &l1);
	ok(d1 && strstr(d1, "\"type\":\"end\""), "dump written");
	ok(d1 && strstr(d1, "{\"type\":\"meta\",\"key\":\"feed:fed\"") &&
	   strstr(d1, "\"meta\":2}"), "the feeds' state is in the dump");
	snprintf(p, sizeof(p), "%s/dump.jsonl", dir);
	write_file(p, d1 ? d1 : "");
	snprintf(p2, sizeof(p2), "%s/restored.db", dir);
	hashdb_open(&db, p2, HASHDB_CREATE, NULL, 0);
	r = dump_restore(&db, p, &ds, err, sizeof(err));
	hashdb_close(&db);
	ok(r == 0 && ds.lists > 5 && ds.hashes > 10 && ds.allow == 1, "restored %llu lists, %llu "
	   "hashes, %llu allowlisted (%s)", (unsigned long long)ds.lists,
	   (unsigned long long)ds.hashes, (unsigned long long)ds.allow, r ? err : "");
	d2 = dump_to_string(p2, &l2);
	if (!ok(d1 && d2 && l1 == l2 && !memcmp(d1, d2, l1), "dump -> restore -> dump is identical"))
		diag("first:\n%s\nsecond:\n%s", d1, d2);
	{
		struct row rw;
		char save[sizeof(path)];

		snprintf(save, sizeof(save), "%s", path);
		snprintf(path, sizeof(path), "%s", p2);
		rw = get_row("nl", HASH_SHA1, SHA1_A);
		snprintf(path, sizeof(path), "%s", save);
		ok(!strcmp(rw.ref, "17") && !strcmp(rw.category, "illegal") && rw.quality == 90,
		   "per-row metadata restored");
		snprintf(path, sizeof(path), "%s", p2);
		{
			char *m1 = meta_of("feed:odd"), *m2 = meta_of("feed:fed");

			ok(ds.meta == 2 && m1 && !strcmp(m1, "etag=\"W/\\x\x01\xff\"\ncursor=7\n") &&
			   m2 && !strcmp(m2, "cursor=2\n"), "feed states restored byte for byte");
			free(m1);
			free(m2);
		}
		snprintf(path, sizeof(path), "%s", save);
	}
	hashdb_open(&db, p2, 0, NULL, 0);
	r = dump_restore(&db, p, &ds, err, sizeof(err));
	hashdb_close(&db);
	ok(r == -EEXIST, "restore into a database with lists is refused: %s", err);
	/* a meta line dropped: the end line's count tells */
	if (d1) {
		char *dup = strdup(d1), *a = dup ? strstr(dup, "{\"type\":\"meta\"") : NULL,
		     *b = a ? strchr(a, '\n') : NULL;

		if (b)
			memmove(a, b + 1, strlen(b + 1) + 1);
		write_file(p, dup ? dup : "");
		free(dup);
		snprintf(err, sizeof(err), "%s/meta.db", dir);	/* p2 has lists now */
		hashdb_open(&db, err, HASHDB_CREATE, NULL, 0);
		r = dump_restore(&db, p, &ds, err, sizeof(err));
		hashdb_close(&db);
		ok(r == -EINVAL && strstr(err, "end line counts"), "a dump missing a meta line is "
		   "refused: %s", err);
	}
	/* a dump cut short */
	if (d1) {
		char *cut = strstr(d1, "{\"type\":\"hash\"");

		if (cut)
			*cut = '\0';
		write_file(p, d1);
	}
	unlink(p2);
	snprintf(err, sizeof(err), "%s-wal", p2);
	unlink(err);
	snprintf(err, sizeof(err), "%s-shm", p2);
	unlink(err);
	hashdb_open(&db, p2, HASHDB_CREATE, NULL, 0);
	r = dump_restore(&db, p, &ds, err, sizeof(err));
	ok(r == -EINVAL && strstr(err, "incomplete"), "a dump cut short is refused: %s", err);
	ok(hashdb_lists(&db, false, &(struct hashdb_list *){ NULL }, &l1, NULL, 0) == 0 && l1 == 0,
	   "... and restored nothing");
	hashdb_close(&db);
	free(d1);
	free(d2);
}

static void test_compact(void)
{
	struct import_opts o = { .list = "big", .algo = HASH_SHA256 };
	struct import_stats st;
	struct hashdb db;
	char p[160], err[1024];
	uint64_t before, after;
	FILE *f;
	int i, r;

	snprintf(p, sizeof(p), "%s/big.txt", dir);
	f = fopen(p, "w");
	for (i = 0; i < 40000; i++)
		fprintf(f, "%08x%056d\n", i * 2654435761u, i);
	fclose(f);
	r = run(p, &o, &st, err, sizeof(err));
	ok(r == 0 && st.added == 40000, "40000 hashes imported");
	hashdb_open(&db, path, 0, NULL, 0);
	hashdb_begin(&db, NULL, 0);
	hashdb_list_delete(&db, "big", NULL, 0);
	hashdb_commit(&db, NULL, 0);
	r = hashdb_compact(&db, &before, &after, err, sizeof(err));
	hashdb_close(&db);
	ok(r == 0 && after + 1000000 < before, "compact gives the space back: %llu -> %llu bytes",
	   (unsigned long long)before, (unsigned long long)after);
}

static void test_match(void)
{
	struct import_opts o = { .list = "mixed", .category = "other", .algo = -1 };
	struct match_opts mo = { .pdq_threshold = 31, .pdq_min_quality = 50 };
	struct hashdb_rowmeta meta;
	struct import_stats st;
	struct match_hit hit;
	struct matcher *m = NULL;
	struct digests d = { 0 };
	char p[160], err[1024];
	int r;

	snprintf(p, sizeof(p), "%s/mixed.csv", dir);
	write_file(p, "md5,category,id,label\n"
		   "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa,illegal,R-1,worst\n"
		   "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb,,R-2,\n");
	r = run(p, &o, &st, err, sizeof(err));
	ok(r == 0, "list with a per-row category (%s)", r ? err : "");
	r = matcher_load(path, &m, err, sizeof(err));
	if (!ok(r == 0, "matcher loads (%s)", r ? err : ""))
		return;
	d.mask = HASH_BIT(HASH_MD5);
	hex_decode("aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 32, d.md5, 16);
	r = matcher_check(m, &d, NULL, &mo, &hit);
	ok(r == 1 && !strcmp(hit.list, "mixed") && !strcmp(hit.category, "illegal"),
	   "the row's own category is the hit's (%s/%s)", hit.list, hit.category);
	r = matcher_hit_meta(path, &hit, &meta, err, sizeof(err));
	ok(r == 0 && !strcmp(meta.ref, "R-1") && !strcmp(meta.label, "worst"),
	   "the hit's row id and label (%s, %s)", meta.ref, meta.label);
	hex_decode("bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb", 32, d.md5, 16);
	r = matcher_check(m, &d, NULL, &mo, &hit);
	ok(r == 1 && !strcmp(hit.category, "other"), "a row without one has the list's (%s)",
	   hit.category);
	matcher_put(m);
}

int main(void)
{
	struct hashdb db;
	char cmd[128], err[512];

	snprintf(dir, sizeof(dir), "/tmp/test-import.XXXXXX");
	if (!mkdtemp(dir)) {
		perror("mkdtemp");
		return 2;
	}
	snprintf(path, sizeof(path), "%s/hashes.db", dir);
	if (hashdb_open(&db, path, HASHDB_CREATE, err, sizeof(err)) < 0) {
		diag("%s", err);
		return 2;
	}
	hashdb_close(&db);
	test_csv();
	test_json();
	test_plain_gz();
	test_check();
	test_missing_list_dry_run();
	test_meta_with_import();
	test_dump();
	test_compact();
	test_match();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		diag("could not remove %s", dir);
	return done_testing();
}
