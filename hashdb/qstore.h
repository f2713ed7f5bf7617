/*
 * qstore.h - the quarantine store: matched uploads kept as evidence, encrypted at rest.
 *
 * Layout (root-only, 0700): DIR/records.db (SQLite, WAL: one row per verdict that was
 * quarantined or blocked) and DIR/objects/NAME (content encrypted with AES-256-GCM under the key
 * from the key file; a copy of DIR alone reveals nothing).  Content is stored once per sha256
 * (NAME = sha256-HEX; stores from before schema 2 also have one object per record, NAME = ID):
 * records reference it, hold and delete stay per record, and the object goes with the last
 * record that references it.  An optional quota caps the objects' total size.  Content is written to a temporary
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
	/* The matching list row's id and label from the list file ("" if none; schema 4). */
	char *ref;
	char *label;
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
	bool kept;			/* content not in the store but kept encrypted by
					   qstore_keep (the store was full): see qstore_adopt */
};

#define QSTORE_NAME_MAX	80		/* object names: sha256-HEX, or a record id */
/* Where hashgatefs keeps evidence the store could not take, relative to the record's mount
   (fs/hgfs.h: HGFS_STAGING_NAME "/" HGFS_KEPT_NAME). */
#define QSTORE_KEPT_SUBDIR	".hashgate-staging/kept"

#define QSTORE_CREATE	0x1		/* create DIR and the key file's store if missing */

int qstore_open(struct qstore **out, const char *dir, const char *keyfile, unsigned flags,
		char *err, size_t errlen);
void qstore_close(struct qstore *q);

/*
 * Record a verdict.  With content_fd >= 0 and rec->action == ACTION_QUARANTINE the file's bytes
 * (from offset 0, rec->size of them) are encrypted into the store first, unless content with
 * the same sha256 is there already (then the record references it).  Sets rec->id.
 * With content_fd < 0, rec->kept is recorded as given (evidence kept by qstore_keep).
 * On failure nothing is recorded and the caller still owns the content (fail closed):
 * -EDQUOT when new content would exceed the quota, -ENOSPC, -EIO and others from I/O.
 */
int qstore_add(struct qstore *q, int content_fd, struct qrecord *rec);

/* Cap the objects' total size (plaintext plus 56 bytes each); 0: no quota. */
void qstore_set_quota(struct qstore *q, uint64_t max_bytes);

struct qstore_usage {
	uint64_t bytes;			/* objects' total size on disk */
	uint64_t objects;
	uint64_t max_bytes;		/* the quota, 0: none */
	uint64_t records;
	uint64_t kept;			/* records whose content is kept outside the store */
};
int qstore_usage(struct qstore *q, struct qstore_usage *u);

/*
 * When the store cannot take content (quota, ENOSPC, EIO): encrypt it under the store's key,
 * in the object format, into dirfd/NAME (NAME from qstore_kept_name; dirfd a directory opened
 * for reading, e.g. BACKING/.hashgate-staging/kept).  Already there (same content): 0 at once.
 * Record the verdict with rec->kept = true; qstore_adopt moves it into the store later.
 */
int qstore_keep(struct qstore *q, int content_fd, const struct qrecord *rec, int dirfd);
/* NAME of rec's kept content (and of its object): sha256-HEX; -EINVAL without a sha256. */
int qstore_kept_name(const struct qrecord *rec, char name[QSTORE_NAME_MAX]);
/*
 * Move kept content (kept_fd: the file qstore_keep wrote for rec) into the store after checking
 * it decrypts to rec's digests: every kept record with rec's sha256 then references it.
 * Returns how many records it updated (the caller may then remove the kept file), or -EDQUOT
 * (still over quota), -EBADMSG (not this record's content or not this store's key), -errno.
 */
int qstore_adopt(struct qstore *q, const struct qrecord *rec, int kept_fd);

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
/*
 * The same into a sink: sink(ctx, buf, len) gets the plaintext in order (0, or -errno to stop);
 * the same caveat: only a return of 0 vouches for what the sink got.
 */
typedef int (*qstore_sink)(void *ctx, const void *buf, size_t len);
int qstore_read_to(struct qstore *q, int64_t id, qstore_sink sink, void *ctx);

int qstore_set_held(struct qstore *q, int64_t id, bool held);
/* Record a review decision (state as in struct qrecord; strings copied).  0 or -ENOENT. */
int qstore_set_review(struct qstore *q, int64_t id, const char *state, const char *case_no,
		      const char *reason, int64_t when);
int qstore_set_restored(struct qstore *q, int64_t id, bool restored);
/* Remove record and content (content first).  -EPERM when held, -ENOENT when missing. */
int qstore_delete(struct qstore *q, int64_t id);

#endif
