/*
 * db.h - the SQLite hash database: lists, hashes, allowlist and a generation counter.
 *
 * Schema (version HASHDB_SCHEMA_VERSION, kept in PRAGMA user_version, upgraded by numbered
 * migrations on a read-write open; a file from a newer hashgate is refused, never touched):
 *   meta(key, value)            'generation' = counter bumped in the same transaction as every
 *                               change, so readers reload exactly when something changed; it
 *                               starts at the creation time in microseconds, so a recreated
 *                               database never repeats an old generation;
 *                               'created' = unix time of `db init`;
 *                               'feed:NAME' = state of list feed NAME (tools/feed.c: ETag,
 *                               Last-Modified, delta cursor, last good fetch), written with
 *                               hashdb_meta_set() WITHOUT a generation bump: it is not
 *                               matched against, so it must not make every daemon reload
 *                               (a feed's state after an applied body rides in the
 *                               import's transaction, which bumps it for the list).
 *   lists(id, name UNIQUE, origin, category, version, imported, updated)
 *                               id AUTOINCREMENT (schema 3): never given out twice, so an id
 *                               kept from a snapshot names that list or none, never a newer one
 *   hashes(algo, value BLOB, list_id, added, label, ref, category, quality)
 *                               PRIMARY KEY (algo, value, list_id),
 *                               WITHOUT ROWID: a full scan comes out sorted by (algo, value),
 *                               which is what the matcher loads.  No list_id index: it would
 *                               double import cost; per-list operations scan the table.
 *                               Per-row metadata from the list file (schema 2), each NULL if
 *                               none: label, ref (the supplier's id of the row), category
 *                               (overrides the list's for this row: the matcher acts on it),
 *                               quality (PDQ quality the supplier gave, 0-100).
 *   allowlist(algo, value, added, reason)             PRIMARY KEY (algo, value)
 * algo is enum hash_algo; value is the raw digest (hash_algo_len bytes; PDQ big-endian).
 *
 * The database runs in WAL mode, so a writer (the CLI) never blocks the daemons' readers and a
 * reader always sees one committed generation.  Every writer goes through hashdb_begin() /
 * hashdb_commit(), which takes the write lock up front (BEGIN IMMEDIATE) and bumps the
 * generation before COMMIT.  The -wal and -shm files stay next to the database even when idle
 * (so users without write access to the directory can still open it read-only): the three
 * files move, and are backed up, together.
 *
 * Errors: every function returns 0 (or a documented positive count) or a negative errno and, when
 * err is non-NULL, a message naming the file:
 *   -ENOENT            the file does not exist (and HASHDB_CREATE was not given)
 *   -ENODATA           the file exists but holds no hashgate schema (e.g. empty file)
 *   -EBADMSG           the file is not an SQLite database or is corrupt
 *   -EPROTONOSUPPORT   the schema is newer than this hashgate knows
 *   -EPROTO            the schema is older and the handle is read-only (run `hashgate db init`)
 *   -EBUSY             the database stayed locked longer than the busy timeout
 *   -EACCES / -EROFS   permissions
 *   -EIO               anything else SQLite reports
 * so "no database" is never mistaken for "empty database".
 *
 * Confidentiality: the lists are confidential (their suppliers say so) and a local user who can
 * open the -shm file can hold its lock bytes and stall every writer.  hashdb_open() creates the
 * database root:HASHDB_GROUP 0640 (0600 when that group does not exist) and, run as root,
 * tightens existing files (database, -wal, -shm) it owns to the same; reading the lists
 * therefore takes root or membership in the group (-EACCES otherwise).
 *
 * Thread-safety: a struct hashdb is used by one thread at a time.  Separate handles on the same
 * file are safe from any threads and processes.
 */
#ifndef HASHDB_DB_H
#define HASHDB_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>

#include "hashdb/hash.h"

#define HASHDB_SCHEMA_VERSION	3
#define HASHDB_BUSY_TIMEOUT_MS	5000
#define HASHDB_NAME_MAX		63	/* list names: [A-Za-z0-9._-], 1..63 chars */
#define HASHDB_CATEGORY_MAX	31	/* categories: same characters, 1..31 chars */
#define HASHDB_GROUP		"hashgate"	/* may read the lists (created by the packages) */

/* hashdb_open() flags */
#define HASHDB_RDONLY	0x1	/* daemons, scanner: never writes, never migrates */
#define HASHDB_CREATE	0x2	/* create the file and its schema if missing (db init) */
#define HASHDB_NOWAIT	0x4	/* never wait for a lock (-EBUSY at once): lookups that must not
				   delay a verdict */

struct sqlite3;

struct hashdb {
	struct sqlite3 *sql;
	char *path;
	unsigned flags;
	int in_txn;
	int busy_ms;			/* how long a lock is waited for */
};

int hashdb_open(struct hashdb *db, const char *path, unsigned flags, char *err, size_t errlen);
/* The gid of HASHDB_GROUP: 0 or -ENOENT when the system has no such group. */
int hashdb_group(gid_t *gid);
/*
 * Give path, path-wal, path-shm and path-journal that belong to the caller group HASHDB_GROUP
 * and mode 0640 (0600 without the group); others' files and missing ones are left alone.
 * Done by hashdb_open() when run as root.  0 or the first -errno.
 */
int hashdb_secure_files(const char *path);
/* Safe on a zeroed or failed-open struct; rolls back an open transaction. */
void hashdb_close(struct hashdb *db);

/* Wait up to ms for locks (default HASHDB_BUSY_TIMEOUT_MS) before failing with -EBUSY. */
void hashdb_set_busy_timeout(struct hashdb *db, int ms);

/* The schema version stored in the file (after any migration hashdb_open did). */
int hashdb_schema_version(struct hashdb *db);

/* The current generation: one indexed read, cheap enough to poll every second. */
int hashdb_generation(struct hashdb *db, uint64_t *gen, char *err, size_t errlen);
/* Open read-only, read the generation, close: for pollers that keep no handle open. */
int hashdb_read_generation(const char *path, uint64_t *gen, char *err, size_t errlen);

/*
 * Write transactions.  begin takes the write lock (waits up to the busy timeout, else -EBUSY);
 * commit bumps the generation and commits; rollback undoes everything since begin.
 */
int hashdb_begin(struct hashdb *db, char *err, size_t errlen);
int hashdb_commit(struct hashdb *db, char *err, size_t errlen);
void hashdb_rollback(struct hashdb *db);

/* 1 if s is a valid list name (or category, with maxlen HASHDB_CATEGORY_MAX). */
int hashdb_valid_name(const char *s, size_t maxlen);

struct hashdb_list {
	int64_t id;
	char name[HASHDB_NAME_MAX + 1];
	char category[HASHDB_CATEGORY_MAX + 1];
	char origin[256];		/* "" if unknown */
	char version[64];		/* "" if unknown */
	int64_t imported;		/* unix time the list was created */
	int64_t updated;		/* unix time of its last change */
	uint64_t count[HASH_NALGOS];	/* filled by hashdb_lists(with_counts) */
};

/* -ENOENT if there is no such list. */
int hashdb_list_get(struct hashdb *db, const char *name, struct hashdb_list *out,
		    char *err, size_t errlen);
/*
 * Inside a transaction: find or create the list, set category/origin/version where non-NULL
 * (a new list without a category gets "other"), mark it updated now; *id receives its id.
 */
int hashdb_list_ensure(struct hashdb *db, const char *name, const char *category,
		       const char *origin, const char *version, int64_t *id,
		       char *err, size_t errlen);
/* Inside a transaction: delete a list and all its hashes.  -ENOENT if missing. */
int hashdb_list_delete(struct hashdb *db, const char *name, char *err, size_t errlen);
/* All lists ordered by name; *out is malloc()ed (free() it).  with_counts scans all hashes. */
int hashdb_lists(struct hashdb *db, bool with_counts, struct hashdb_list **out, size_t *n,
		 char *err, size_t errlen);

/* Inside a transaction.  Returns 1 if added, 0 if the list already had it (label updated). */
int hashdb_hash_add(struct hashdb *db, int64_t list_id, enum hash_algo algo,
		    const uint8_t *value, const char *label, char *err, size_t errlen);
/* Inside a transaction; list_id < 0 removes from every list.  Returns the number removed. */
int hashdb_hash_remove(struct hashdb *db, int64_t list_id, enum hash_algo algo,
		       const uint8_t *value, char *err, size_t errlen);

/* One database hash as iterated by hashdb_hashes_foreach(). */
struct hashdb_entry {
	enum hash_algo algo;
	const uint8_t *value;
	int64_t list_id;
	const char *list;		/* only set by hashdb_hashes_foreach */
	int64_t added;
	const char *label;		/* NULL if none */
	const char *ref;		/* the supplier's id of the row; NULL if none */
	const char *category;		/* per-row category; NULL: the list's */
	int quality;			/* supplier's PDQ quality 0-100; -1 if none */
};

/*
 * Call fn for every hash (of one list when list_id >= 0; of one algo when algo >= 0), in
 * (algo, value) order.  fn returning non-zero stops the walk and that value is returned;
 * otherwise the number of hashes walked (or -errno).  Also returns that for hashdb_hash_find.
 */
int hashdb_hashes_foreach(struct hashdb *db, int64_t list_id, int algo,
			  int (*fn)(const struct hashdb_entry *e, void *arg), void *arg,
			  char *err, size_t errlen);
/* Every list holding this hash (entries' list and label set), via fn.  Returns the count. */
int hashdb_hash_find(struct hashdb *db, enum hash_algo algo, const uint8_t *value,
		     int (*fn)(const struct hashdb_entry *e, void *arg), void *arg,
		     char *err, size_t errlen);

/* The same for one list (list_id >= 0) or every list (list_id < 0). */
int hashdb_hash_find_in(struct hashdb *db, int64_t list_id, enum hash_algo algo,
			const uint8_t *value,
			int (*fn)(const struct hashdb_entry *e, void *arg), void *arg,
			char *err, size_t errlen);

/*
 * Per-row metadata of the row (algo, value, list_id), copied (truncated to fit, never
 * escaped: callers escape for their output), for the records of a match.  "" / -1 for what
 * the row lacks.  0, -ENOENT (no such row: e.g. removed since the snapshot), or -errno.
 */
struct hashdb_rowmeta {
	char ref[128];
	char label[256];
	char category[HASHDB_CATEGORY_MAX + 1];
	int quality;
};
int hashdb_row_meta(struct hashdb *db, int64_t list_id, enum hash_algo algo,
		    const uint8_t *value, struct hashdb_rowmeta *out, char *err, size_t errlen);

/* Allowlist.  add: 1 if added, 0 if present (reason updated).  remove: 1 removed, 0 absent. */
int hashdb_allow_add(struct hashdb *db, enum hash_algo algo, const uint8_t *value,
		     const char *reason, char *err, size_t errlen);
int hashdb_allow_remove(struct hashdb *db, enum hash_algo algo, const uint8_t *value,
			char *err, size_t errlen);
struct hashdb_allow {
	enum hash_algo algo;
	const uint8_t *value;
	int64_t added;
	const char *reason;		/* NULL if none */
};
int hashdb_allow_foreach(struct hashdb *db,
			 int (*fn)(const struct hashdb_allow *a, void *arg), void *arg,
			 char *err, size_t errlen);

struct hashdb_stats {
	uint64_t generation;
	int schema;
	int64_t created;
	uint64_t lists;
	uint64_t hashes[HASH_NALGOS];	/* rows, counting a hash once per list holding it */
	uint64_t allow[HASH_NALGOS];
	uint64_t file_bytes;		/* main file + WAL */
};
int hashdb_stats(struct hashdb *db, struct hashdb_stats *st, char *err, size_t errlen);

/*
 * Rewrite the file without free pages (VACUUM) and truncate the WAL: the file never shrinks
 * after deletions otherwise.  The data and the generation stay as they are, so daemons do not
 * reload.  before and after: bytes of the file and its WAL.  Takes the write lock for the
 * duration (imports wait); readers go on.
 */
int hashdb_compact(struct hashdb *db, uint64_t *before, uint64_t *after, char *err,
		   size_t errlen);

/*
 * Free-form state in meta (keys other than 'generation' and 'created', which are refused).
 * get: *val is malloc()ed (free() it); -ENOENT when the key is absent.
 * set: val NULL deletes.  Inside a transaction it is part of it; otherwise it is its own
 * transaction that does NOT bump the generation (state no reader of the lists depends on).
 * foreach: fn for every key starting with prefix, in key order; non-zero from fn stops.
 */
int hashdb_meta_get(struct hashdb *db, const char *key, char **val, char *err, size_t errlen);
int hashdb_meta_set(struct hashdb *db, const char *key, const char *val, char *err,
		    size_t errlen);
int hashdb_meta_foreach(struct hashdb *db, const char *prefix,
			int (*fn)(const char *key, const char *val, void *arg), void *arg,
			char *err, size_t errlen);

/* Set an error message from the connection's last SQLite error; returns the mapped -errno. */
int hashdb_sql_error(struct hashdb *db, int rc, const char *what, char *err, size_t errlen);

#endif
