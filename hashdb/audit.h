/*
 * audit.h - the append-only, tamper-evident audit trail of verdicts and admin actions.
 *
 * One JSON object per line:
 *   {"seq":N,"time":T,"actor":A,"action":X,"data":{FIELDS},"prev":H,"hash":H'}
 * where hash = SHA-256 over prev and the record's other bytes, so deleting or editing a line
 * breaks the chain at that point (audit_verify finds it).  The record's own members are in
 * "data", so no key repeats; "prev" and "hash" are always the last two members.  Appends take an exclusive flock on
 * the file, read the last hash and append with O_APPEND + fsync, so the daemon and the CLI can
 * write concurrently.  The log stays open while the struct audit lives: an append needs no new
 * descriptor unless the name now leads to another file (then that one is opened and written).
 * A struct audit may be shared by threads (internal mutex).
 */
#ifndef HASHDB_AUDIT_H
#define HASHDB_AUDIT_H

#include <stddef.h>
#include <stdint.h>

struct audit;

int audit_open(struct audit **out, const char *path, char *err, size_t errlen);
void audit_close(struct audit *a);

/*
 * Append one record.  actor: who ("hashgatefs", "uid=0(root)"); action: what ("verdict",
 * "quarantine.restore", ...); fields: the members of the record's "data" object without
 * braces, already escaped and each key once (e.g. "\"path\":\"a/b\",\"uid\":1000"), or NULL.
 * -EBADMSG when the last line of the log is not a record (appending would break the chain).
 */
int audit_append(struct audit *a, const char *actor, const char *action, const char *fields);

/* Check the whole chain: 0 and *nrecords, or -EBADMSG with the first broken line in err. */
int audit_verify(const char *path, uint64_t *nrecords, char *err, size_t errlen);
/*
 * Same, also giving the hash of the last record (64 hex digits + NUL) when last_hash is not
 * NULL: kept elsewhere, it lets an admin detect records cut off the end of the file.
 */
int audit_verify_last(const char *path, uint64_t *nrecords, char last_hash[65], char *err,
		      size_t errlen);

/*
 * Whether the next append can chain onto the log: 0 and the last record's seq (0 for an
 * empty or missing log), or -EBADMSG / -errno with the reason in err.  Reads only the tail,
 * so it is cheap enough for `hashgate status`.
 */
int audit_check_tail(const char *path, uint64_t *seq, char *err, size_t errlen);

#endif
