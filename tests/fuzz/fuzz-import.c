/*
 * fuzz-import.c - libFuzzer harness for the hash-list importers (plain, CSV, JSON lines) behind
 * import_file().
 *
 * One database (SQLite file in a private temp dir, created once per process) receives every
 * input as an import into list "fz"; with --replace semantics half of the time, so the list
 * stays bounded.  Oracles beyond ASan/UBSan:
 *  - a failed import changes nothing (import.h): the generation and every list's hash count
 *    are the same afterwards, and the message names the file;
 *  - a successful one bumps the generation unless it changed nothing, and its statistics add
 *    up (added + existing <= records).
 * Input layout: byte 0 = options (bits 0-1 format plain/csv/jsonl/auto, bits 2-4 algo or -1,
 * bit 5 replace, bit 6 remove), the rest is the file.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hashdb/db.h"
#include "hashdb/import.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct hashdb db;
static int db_ready;
static char db_dir[] = "/tmp/fuzz-import.XXXXXX";

/* SQLite recreates -wal/-shm next to the file, so the directory is removed at exit. */
static void db_cleanup(void)
{
	static const char *const suffix[] = { "", "-wal", "-shm", "-journal" };
	char path[96];
	size_t i;

	hashdb_close(&db);
	for (i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
		snprintf(path, sizeof(path), "%s/h.db%s", db_dir, suffix[i]);
		unlink(path);
	}
	rmdir(db_dir);
}

static void db_setup(void)
{
	char path[96], err[512];

	if (!mkdtemp(db_dir))
		abort();
	snprintf(path, sizeof(path), "%s/h.db", db_dir);
	if (hashdb_open(&db, path, HASHDB_CREATE, err, sizeof(err)) < 0) {
		fprintf(stderr, "fuzz-import: %s\n", err);
		abort();
	}
	atexit(db_cleanup);
	db_ready = 1;
}

/* Total hashes over all lists, or -1. */
static int64_t total_hashes(void)
{
	struct hashdb_list *l = NULL;
	size_t n = 0, i, a;
	char err[256];
	int64_t t = 0;

	if (hashdb_lists(&db, true, &l, &n, err, sizeof(err)) < 0)
		return -1;
	for (i = 0; i < n; i++)
		for (a = 0; a < HASH_NALGOS; a++)
			t += (int64_t)l[i].count[a];
	free(l);
	return t;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const enum import_format fmts[] = { IMPORT_PLAIN, IMPORT_CSV, IMPORT_JSONL,
						   IMPORT_AUTO };
	struct import_opts o;
	struct import_stats st;
	char err[1024], path[64];
	uint64_t g0, g1;
	int64_t h0, h1;
	int fd, r, a;

	if (size < 1)
		return 0;
	if (!db_ready)
		db_setup();
	memset(&o, 0, sizeof(o));
	o.list = "fz";
	o.category = "illegal";
	o.format = fmts[data[0] & 3];
	a = (data[0] >> 2) & 7;
	o.algo = a < HASH_NALGOS ? a : -1;
	o.replace = (data[0] >> 5) & 1;
	o.remove = (data[0] >> 6) & 1;

	fd = memfd_create("fuzz-import", MFD_CLOEXEC);
	if (fd < 0)
		abort();
	if (size > 1 && write(fd, data + 1, size - 1) != (ssize_t)(size - 1))
		abort();
	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);

	if (hashdb_generation(&db, &g0, err, sizeof(err)) < 0 || (h0 = total_hashes()) < 0)
		abort();
	memset(err, 0, sizeof(err));
	r = import_file(&db, path, &o, &st, err, sizeof(err));
	close(fd);
	if (hashdb_generation(&db, &g1, err + 512, 256) < 0 || (h1 = total_hashes()) < 0)
		abort();
	if (r < 0) {
		if (g1 != g0 || h1 != h0) {
			fprintf(stderr, "failed import (%d: %s) changed the database: generation "
				"%llu -> %llu, hashes %lld -> %lld\n", r, err,
				(unsigned long long)g0, (unsigned long long)g1,
				(long long)h0, (long long)h1);
			abort();
		}
		if (r != -ENOMEM && !strstr(err, path)) {
			fprintf(stderr, "import error does not name the file: '%s'\n", err);
			abort();
		}
	} else {
		/* records may exceed lines: one line can hold several hashes (a CSV row with
		 * md5 and sha1, a JSON array on one line) */
		if (st.added + st.existing > st.records) {
			fprintf(stderr, "inconsistent stats: lines %llu records %llu added %llu "
				"existing %llu\n", (unsigned long long)st.lines,
				(unsigned long long)st.records, (unsigned long long)st.added,
				(unsigned long long)st.existing);
			abort();
		}
		if ((st.added || st.removed) && g1 == g0) {
			fprintf(stderr, "import changed hashes but not the generation\n");
			abort();
		}
		if ((int64_t)(h0 + (int64_t)st.added - (int64_t)st.removed) != h1) {
			fprintf(stderr, "hash count %lld + added %llu - removed %llu != %lld\n",
				(long long)h0, (unsigned long long)st.added,
				(unsigned long long)st.removed, (long long)h1);
			abort();
		}
	}
	return 0;
}
