/*
 * audit.h - the append-only, tamper-evident audit trail of verdicts and admin actions.
 *
 * One JSON object per line: {"seq":N,"time":T,"actor":...,"action":...,...,"prev":H,"hash":H'}
 * where hash = SHA-256 over prev and the record's other bytes, so deleting or editing a line
 * breaks the chain at that point (audit_verify finds it).  Appends take an exclusive flock on
 * the file, read the last hash and append with O_APPEND + fsync, so the daemon and the CLI can
 * write concurrently.  A struct audit may be shared by threads (internal mutex).
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
 * "quarantine.restore", ...); fields: extra JSON members without braces, already escaped
 * (e.g. "\"path\":\"a/b\",\"uid\":1000"), or NULL.
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

#endif
