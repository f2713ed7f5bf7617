/*
 * import.h - bulk import of hash lists into the database (`hashgate db import`, and the feeds'
 * way of applying a fetched list).
 *
 * Input: a file or stdin ("-"), plain or gzip-compressed (detected from the content, not the
 * name).  A UTF-8 byte order mark is skipped.  Formats:
 *   plain  one hex hash per line, optionally followed by whitespace or a comma and a label (so
 *          md5sum / sha256sum output and the PDQ reference CLI's "hash,quality,file" import as
 *          is), or BSD / `sha256sum --tag` lines "SHA256 (name) = HEX" (MD5, SHA1 too; the
 *          name becomes the label); '#' comments and blank lines are skipped.  The algorithm
 *          comes from the tag, --type or the length (32 md5, 40 sha1); 64 digits are SHA-256
 *          or PDQ, so they need --type.
 *   csv    a header row names the columns, or opts.columns names them for a file without
 *          one.  Field names, matched without regard to case, spaces, '-', '_' and '.'
 *          ("MD5 Hash", "SHA-1", "hash_md5" all work): md5, sha1, sha256, pdq, hash (algo from
 *          an algo/type column, --type or the length), label (also name, comment, filename,
 *          description), id (also ref, identifier), category, quality, deleted, algo.
 *          opts.map names columns the header spells otherwise ("md5=Hash MD5").  Columns
 *          that are none of these are ignored, with one warning naming them.  The delimiter is
 *          opts.delimiter, else the one of ',' ';' TAB the first line has most of (Excel in
 *          NL/DE writes ';').  RFC 4180 quoting on one line.  Rows whose fields are all empty
 *          are skipped; every other row has the header's number of fields (or fewer when
 *          only trailing empty fields are missing) and at least one hash.
 *   jsonl  JSON objects: one per line (JSON lines), or a JSON array of them, or objects
 *          pretty-printed over several lines.  Keys as the CSV field names (so
 *          {"sha256": ".."}, {"algo": "pdq", "hash": ".."} and HMA's
 *          {"signal_type": "pdq", "signal_value": ".."} all work); unknown keys are ignored
 *          (one warning names them).
 * Per-row metadata (label, id, category, quality) is stored with the row (db.h).  A per-row
 * category must be a valid category name and overrides the list's for that row.
 * A deleted flag (or opts.remove for the whole file) removes the hash from the list: real
 * feeds retract entries.  When a hash appears several times in one file, its last line wins.
 *
 * The whole import is one transaction: every line is parsed and checked first, so any
 * malformed line fails with "FILE:LINE: reason" and the database is untouched.  The rows are
 * then sorted and written in index order with prepared statements, which keeps SQLite's B-tree
 * writes sequential (10M lines in tens of seconds rather than many minutes).
 * Memory: ~48 bytes per line plus metadata, held until the import ends (a JSON array or
 * multi-line JSON document is also held whole while it is read).
 * Messages (err, and what opts.message gets) never contain raw control characters or invalid
 * UTF-8 from the file: they are escaped as \xNN (hglog_escape_text).
 * Thread-safety: import_file uses only its arguments; one db handle per thread.
 */
#ifndef HASHDB_IMPORT_H
#define HASHDB_IMPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hashdb/db.h"

enum import_format {
	IMPORT_AUTO = 0,	/* from the file name (a .gz suffix looked through): .csv, .tsv,
				   .jsonl/.ndjson/.json, else plain; CSV whenever columns, map
				   or delimiter are given */
	IMPORT_PLAIN,
	IMPORT_CSV,
	IMPORT_JSONL,		/* any JSON: lines, an array, pretty-printed objects */
};

#define IMPORT_MAX_BAD_DEFAULT	100

/* opts.message levels */
#define IMPORT_WARN	0	/* e.g. ignored columns; the import goes on */
#define IMPORT_BAD	1	/* a bad line in check mode ("FILE:LINE: reason") */

struct import_opts {
	const char *list;		/* required; created if missing (but see remove/replace) */
	const char *category;		/* NULL: keep the list's (a new list gets "other") */
	const char *origin;		/* NULL: keep; else stored with the list */
	const char *version;		/* NULL: keep */
	int algo;			/* enum hash_algo, or -1 to infer */
	enum import_format format;
	char delimiter;			/* CSV: 0 = detect from the first line */
	const char *columns;		/* CSV without a header: "md5,quality,label" ("" or "-"
					   for a column to skip); NULL: the first row is a header */
	const char *const *map;		/* CSV: nmap entries "FIELD=Header name" */
	size_t nmap;
	bool remove;			/* every line is a deletion (--delete) */
	bool replace;			/* the list becomes exactly this file's (non-deleted) hashes */
	bool create;			/* remove/replace may create a missing list (a feed's first
					   full list); otherwise a missing list is -ENOENT */
	bool dry_run;			/* apply, count, roll back: stats say what would change */
	/*
	 * Also set meta row meta_key to meta_value (hashdb_meta_set: no generation bump of its
	 * own) in the import's transaction, so the row changes exactly when the list does (a
	 * feed's state with the list it describes).  NULL: none.  Not on dry_run or check.
	 */
	const char *meta_key, *meta_value;
	bool check;			/* validate only: every bad line to message(), no writes */
	unsigned max_bad;		/* check: report this many bad lines (0: default 100) */
	/* Warnings and check-mode bad lines, already escaped; NULL: dropped. */
	void (*message)(void *arg, int level, const char *msg);
	void *message_arg;
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
	uint64_t existing;		/* already in the list: unchanged (metadata updated if
					   the file gives any) */
	uint64_t removed;		/* deleted from the list (tombstones and --replace) */
	uint64_t absent;		/* tombstones for hashes the list did not have */
	uint64_t bad;			/* check mode: bad lines */
};

/* "plain", "csv", "jsonl" (also "json", "ndjson", "tsv" = csv), or -EINVAL. */
int import_format_parse(const char *s);
/* 1 if name is a field name import understands (for validating --columns/--map early). */
int import_field_known(const char *name, size_t len);

/*
 * Import path ("-" = stdin) into db, which must be open read-write with no transaction open.
 * Returns 0, or -errno with the reason in err ("FILE:LINE: reason" for bad input); on any
 * failure nothing in the database changed.  -ENOENT: remove/replace of a list that does not
 * exist (without opts.create).  Check mode: 0 when the file is good, -EINVAL with st->bad set
 * when not; dry_run and check never change the database (dry_run takes the write lock).
 */
int import_file(struct hashdb *db, const char *path, const struct import_opts *o,
		struct import_stats *st, char *err, size_t errlen);

#endif
