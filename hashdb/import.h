/*
 * import.h - bulk import of hash lists into the database (`hashgate db import`).
 *
 * Formats:
 *   plain  one hex hash per line, optionally followed by whitespace or a comma and a label (so
 *          md5sum / sha256sum output and the PDQ reference CLI's "hash,quality,file" import as
 *          is); '#' comments and blank lines are skipped.  The
 *          algorithm comes from --type or the length (32 md5, 40 sha1); 64 digits are SHA-256 or
 *          PDQ, so they need --type.
 *   csv    a header row names the columns: md5, sha1, sha256, pdq (any number of them), and
 *          optionally label and deleted; other columns are ignored.  RFC 4180 quoting on one
 *          line.  Every row has the header's number of fields and at least one hash.
 *   jsonl  one JSON object per line: {"sha256": "..", "label": "..", "deleted": true} or
 *          {"algo": "pdq", "hash": ".."}; unknown keys are ignored.
 * A deleted flag (or --delete for the whole file) removes the hash from the list: real feeds
 * retract entries.  When a hash appears several times in one file, its last line wins.
 *
 * The whole import is one transaction: every line is parsed and checked first, so any
 * malformed line fails with "FILE:LINE: reason" and the database is untouched.  The rows are
 * then sorted and written in index order with prepared statements, which keeps SQLite's B-tree
 * writes sequential (10M lines in tens of seconds rather than many minutes).
 * Memory: ~48 bytes per line plus labels, held until the import ends.
 */
#ifndef HASHDB_IMPORT_H
#define HASHDB_IMPORT_H

#include <stdbool.h>
#include <stdint.h>

#include "hashdb/db.h"

enum import_format {
	IMPORT_AUTO = 0,	/* from the file name: .csv, .jsonl/.ndjson/.json, else plain */
	IMPORT_PLAIN,
	IMPORT_CSV,
	IMPORT_JSONL,
};

struct import_opts {
	const char *list;		/* required; created if missing */
	const char *category;		/* NULL: keep the list's (a new list gets "other") */
	const char *origin;		/* NULL: keep; else stored with the list */
	const char *version;		/* NULL: keep */
	int algo;			/* enum hash_algo, or -1 to infer (plain format) */
	enum import_format format;
	bool remove;			/* every line is a deletion (--delete) */
	bool replace;			/* the list becomes exactly this file's (non-deleted) hashes */
	/*
	 * Called now and then: phase "read" (done/total bytes; total 0 if unknown: done = lines),
	 * "sort" and "commit" (once each, done = total = 0), "write" (rows).
	 */
	void (*progress)(void *arg, const char *phase, uint64_t done, uint64_t total);
	void *progress_arg;
};

struct import_stats {
	uint64_t lines;			/* lines read, including blank and comment lines */
	uint64_t records;		/* distinct hashes in the file */
	uint64_t added;			/* new in the list */
	uint64_t existing;		/* already in the list (label updated if given) */
	uint64_t removed;		/* deleted from the list (tombstones and --replace) */
	uint64_t absent;		/* tombstones for hashes the list did not have */
};

/* "plain", "csv", "jsonl" (also "json", "ndjson"), or -EINVAL. */
int import_format_parse(const char *s);

/*
 * Import path ("-" = stdin) into db, which must be open read-write with no transaction open.
 * Returns 0, or -errno with the reason in err ("FILE:LINE: reason" for bad input); on any
 * failure nothing in the database changed.
 */
int import_file(struct hashdb *db, const char *path, const struct import_opts *o,
		struct import_stats *st, char *err, size_t errlen);

#endif
