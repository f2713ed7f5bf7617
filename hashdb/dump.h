/*
 * dump.h - a full-fidelity dump of the hash database and its restore (`hashgate db dump`,
 * `db restore`): lists (category, origin, version, times), every hash row with its per-row
 * metadata and time added, the allowlist with reasons, the feeds' state (meta rows
 * 'feed:NAME': cursor, validators, last good fetch) and the database's creation time.
 *
 * Format: JSON lines.  First {"hashgate_dump":1,"schema":N,"created":T}, then one object per
 * list ("type":"list"), hash ("type":"hash", list by name), allowlist entry ("type":"allow")
 * and meta row ("type":"meta","key":K,"value":V), in that order, then {"type":"end", counts}
 * (its "meta" count only when there are meta rows, so a dump without feeds is what earlier
 * versions wrote and read).  A member whose column is NULL is left out.  Restoring a dump into an empty database and dumping again gives the same bytes;
 * a dump without its end line (cut short) is refused.
 * Thread-safety: one db handle per thread, as everywhere.
 */
#ifndef HASHDB_DUMP_H
#define HASHDB_DUMP_H

#include <stdint.h>
#include <stdio.h>

#include "hashdb/db.h"

#define DUMP_FORMAT_VERSION	1

struct dump_stats {
	uint64_t lists, hashes, allow, meta;
};

/* Write the whole database to f from one read snapshot.  0, or -errno (-EIO: write error). */
int dump_write(struct hashdb *db, FILE *f, struct dump_stats *st, char *err, size_t errlen);

/*
 * Restore path ("-" = stdin) into db, which must be open read-write and hold no lists and no
 * allowlist entries (-EEXIST otherwise).  One transaction: a bad line fails with "FILE:LINE:
 * reason" and nothing changes.
 */
int dump_restore(struct hashdb *db, const char *path, struct dump_stats *st, char *err,
		 size_t errlen);

#endif
