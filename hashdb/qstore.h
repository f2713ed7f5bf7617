/*
 * qstore.h - the quarantine store: matched uploads kept as evidence, encrypted at rest.
 *
 * Layout (root-only, 0700): DIR/records.db (SQLite, WAL: one row per verdict that was
 * quarantined or blocked) and DIR/objects/ID (content encrypted with AES-256-GCM under the key
 * from the key file; a copy of DIR alone reveals nothing).  Content is written to a temporary
 * file, fsynced and renamed before its record commits, so a crash leaves either no record or a
 * record with complete content; orphans are removed by qstore_open() (never those of an add in
 * progress in another process: adds hold a shared flock on DIR/.lock, the sweep an exclusive
 * one).  records.db also keeps an HMAC of the key, so opening with the wrong key file fails
 * (-QSTORE_EKEY) instead of mixing keys in one store.  The key file holds 64 hex digits; one
 * readable or writable by others is refused (-EPERM).
 * A struct qstore may be shared by threads: calls serialise on an internal mutex.
 * The daemon and the CLI may open the same store at the same time.
 */
#ifndef HASHDB_QSTORE_H
#define HASHDB_QSTORE_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hashdb/config.h"
#include "hashdb/hash.h"
#include "hashdb/pdq.h"

struct qstore;

struct qrecord {
	int64_t id;			/* assigned by qstore_add */
	int64_t time;			/* verdict time, unix seconds */
	int64_t upload_time;		/* when the upload began (create/open), unix seconds */
	uint32_t uid, gid;
	int32_t pid;
	char *mount;			/* backing directory of the hashgatefs instance */
	char *path;			/* original path, relative to the mount root */
	uint64_t size;
	uint32_t mode;			/* file mode the uploader asked for */
	struct digests digests;
	bool has_pdq;
	struct pdq_hash pdq;		/* orig variant of the upload */
	int pdq_quality;
	enum hash_algo algo;		/* what matched */
	int distance;
	char *list;
	char *category;
	enum hg_action action;		/* ACTION_QUARANTINE: content stored; ACTION_BLOCK: record only */
	bool held;			/* legal hold: never purged */
	bool restored;
	/*
	 * How the file came to be checked: "upload" (new file), "rewrite" (existing file
	 * replaced), "inplace" (modified in place, rescanned at close), "truncate" (cut down to
	 * matching content), "scan" (`hashgate scan` of stored files); "" in records written
	 * before this was kept.
	 */
	char *origin;
	/*
	 * Review: "new" until a reviewer decides "confirmed", "false-positive" or "reported"
	 * (review_case: the hotline's or police case number; review_reason: free text), at
	 * review_time.  Set only through qstore_set_review (not by qstore_add).
	 */
	char *review, *review_case, *review_reason;
	int64_t review_time;
};

#define QSTORE_CREATE	0x1		/* create DIR and the key file's store if missing */

int qstore_open(struct qstore **out, const char *dir, const char *keyfile, unsigned flags,
		char *err, size_t errlen);
void qstore_close(struct qstore *q);

/*
 * Record a verdict.  With content_fd >= 0 and rec->action == ACTION_QUARANTINE the file's bytes
 * (from offset 0, rec->size of them) are encrypted into the store first.  Sets rec->id.
 * On failure nothing is recorded and the caller still owns the content (fail closed).
 */
int qstore_add(struct qstore *q, int content_fd, struct qrecord *rec);

/* Free the strings a qrecord owns (from qstore_get/qstore_list). */
void qrecord_release(struct qrecord *rec);

/* --- used by the CLI (added by the admin-tools work; all serialise on the same mutex) --- */

/* qstore_open() error when the key file is not the one the store was created with. */
#define QSTORE_EKEY	EKEYREJECTED

/* The record with this id into *out (caller releases it): 0 or -ENOENT. */
int qstore_get(struct qstore *q, int64_t id, struct qrecord *out);

struct qstore_filter {
	int64_t since;			/* time >= since (0: no bound) */
	int64_t before;			/* time < before (0: no bound) */
	int64_t uid;			/* -1: any */
	const char *list;		/* NULL: any */
};
/* Matching records, oldest first; *out is malloc'd: free with qrecord_free_array(). */
int qstore_list(struct qstore *q, const struct qstore_filter *f, struct qrecord **out, size_t *n);
void qrecord_free_array(struct qrecord *recs, size_t n);

/* 1 when the record has encrypted content in the store, 0 when not, -ENOENT without record. */
int qstore_has_content(struct qstore *q, int64_t id);

/*
 * Decrypt the content of record id and write it to out_fd (write(2), from its current offset).
 * The plaintext is authenticated (GCM tag) and checked against the record's digests only at the
 * end, so on any error the caller must discard what was written: write to a temporary file and
 * rename it only on 0.  Errors: -ENOENT no record or no content, -EBADMSG tampered, truncated,
 * wrong key or content that is not the record's, -EIO and others from I/O.
 */
int qstore_read(struct qstore *q, int64_t id, int out_fd);

int qstore_set_held(struct qstore *q, int64_t id, bool held);
/* Record a review decision (state as in struct qrecord; strings copied).  0 or -ENOENT. */
int qstore_set_review(struct qstore *q, int64_t id, const char *state, const char *case_no,
		      const char *reason, int64_t when);
int qstore_set_restored(struct qstore *q, int64_t id, bool restored);
/* Remove record and content (content first).  -EPERM when held, -ENOENT when missing. */
int qstore_delete(struct qstore *q, int64_t id);

#endif
