/*
 * status.h - what a running hashgatefs publishes about itself for `hashgate status` and for
 * Prometheus (node_exporter textfile collector).
 *
 * Each daemon rewrites STATE_DIR/hashgatefs-PID.status atomically (write temp, rename) every
 * few seconds and removes it on clean exit; readers skip files whose pid is not alive.
 * Pure functions over caller-owned structs; thread-safe.
 */
#ifndef HASHDB_STATUS_H
#define HASHDB_STATUS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct hg_status {
	pid_t pid;
	char backing[4096];
	char mountpoint[4096];
	int64_t started;		/* unix seconds */
	int64_t updated;
	uint64_t generation;		/* database generation of the matcher in use */
	uint64_t uploads_scanned;
	uint64_t uploads_clean;
	uint64_t matches;
	uint64_t quarantined;
	uint64_t blocked;
	uint64_t errors;		/* scans that failed (published or not per on_error) */
	uint64_t bytes_scanned;
	/* Quarantine: evidence the store could not take (kept: encrypted in the staging area,
	   `hashgate quarantine retry` moves it in; lost: not even that) and the store's size. */
	uint64_t evidence_kept;
	uint64_t evidence_lost;
	uint64_t quarantine_bytes;
	uint64_t quarantine_max_bytes;	/* quarantine_max_size; 0: none */
};

int status_write(const char *dir, const struct hg_status *st);
int status_remove(const char *dir, pid_t pid);
/* Read every live daemon's status; *out is malloc'd (caller frees), *n its length. */
int status_read_all(const char *dir, struct hg_status **out, size_t *n);
/* Write all of them as a Prometheus textfile (atomically). */
int status_write_prometheus(const char *path, const struct hg_status *st, size_t n);

#endif
