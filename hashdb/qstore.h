/*
 * qstore.h - the quarantine store: matched uploads kept as evidence, encrypted at rest.
 *
 * Layout (root-only, 0700): DIR/records.db (SQLite, WAL: one row per verdict that was
 * quarantined or blocked) and DIR/objects/ID (content encrypted with AES-256-GCM under the key
 * from the key file; a copy of DIR alone reveals nothing).  Content is written to a temporary
 * file, fsynced and renamed before its record commits, so a crash leaves either no record or a
 * record with complete content; orphans are removed by qstore_open().
 * A struct qstore may be shared by threads: calls serialise on an internal mutex.
 * The daemon and the CLI may open the same store at the same time.
 */
#ifndef HASHDB_QSTORE_H
#define HASHDB_QSTORE_H

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

#endif
