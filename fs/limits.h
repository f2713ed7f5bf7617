/*
 * limits.h - per-uid limits and the open-files budget of hashgatefs (see limits.c).
 *
 * Every take/begin that returned 0 is paired with exactly one give/end by its owner (the fh or
 * upload that holds the unit).  All functions are thread-safe; limits_init runs once before
 * the FUSE threads start, limits_configure at start and on every SIGHUP.
 */
#ifndef FS_LIMITS_H
#define FS_LIMITS_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "hashdb/config.h"

/* Raise RLIMIT_NOFILE's soft limit to the hard limit; returns the limit now in force. */
uint64_t limits_init(void);
/* Apply fd_reserve and the uid_max_* keys of c (no effect on what is already held). */
void limits_configure(const struct hg_config *c);

/* One open handle (file or directory) for uid: 0, -EMFILE (uid's share) or -ENFILE (budget). */
int limits_open_take(uid_t uid);
void limits_open_give(uid_t uid);

/*
 * One staged upload for uid: an upload slot and one unit of the fd budget (its tmpfile).
 * 0, -EMFILE or -ENFILE.  *acct (the upload's own counter, atomic) starts at 0.
 */
int limits_upload_begin(uid_t uid);
/* The upload is judged: its slot and bytes are free again; idempotent (*acct = UINT64_MAX). */
void limits_upload_done(uid_t uid, _Atomic uint64_t *acct);
/* The upload is freed: limits_upload_done if not yet, and its fd unit back. */
void limits_upload_end(uid_t uid, _Atomic uint64_t *acct);
/*
 * The upload (accounted: *acct bytes so far) now reaches end bytes: account the growth, or
 * -EDQUOT when uid's staged bytes would pass uid_max_upload_bytes (nothing changes then).
 * Nothing is accounted once the upload is done.
 */
int limits_upload_grow(uid_t uid, _Atomic uint64_t *acct, uint64_t end);

#endif
