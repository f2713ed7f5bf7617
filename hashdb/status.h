/*
 * status.h - what a running hashgatefs publishes about itself for `hashgate status` and for
 * Prometheus (node_exporter textfile collector).
 *
 * Each daemon rewrites STATE_DIR/hashgatefs-PID.status atomically (write temp, rename) every
 * few seconds and removes it on clean exit; readers skip files whose pid is not alive.
 * Prometheus series are labelled by mountpoint and backing dir only (no pid), so a restart
 * continues the same series.
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
	uint64_t audit_errors;		/* verdict records that could not be appended */
	uint64_t quarantine_errors;	/* matches whose record the store refused or whose
					   content was lost (kept content: evidence_kept) */
	uint64_t reload_failing;	/* 1 while the database cannot be reloaded */
	uint64_t config_failed;		/* 1 when the last SIGHUP reload was refused */
	/* Quarantine: evidence the store could not take (kept: encrypted in the staging area,
	   `hashgate quarantine retry` moves it in; lost: not even that) and the store's size. */
	uint64_t evidence_kept;
	uint64_t evidence_lost;
	uint64_t quarantine_bytes;
	uint64_t quarantine_max_bytes;	/* quarantine_max_size; 0: none */
	/* on_match_exec (fs/hook.c): programs run, runs that failed, events dropped */
	uint64_t hook_runs;
	uint64_t hook_failures;
	uint64_t hook_dropped;
	/* The backing filesystem: its type, how uploads are staged on it (tmpfile: O_TMPFILE,
	   named: files in the root-only staging dir), whether inodes are reopened by file
	   handle (else by parent and name), and whether that is because of -o handles=off. */
	char backing_fs[16];
	char staging[16];
	uint64_t file_handles;
	uint64_t handles_off;
};

/* Seconds without a status update after which `hashgate status` calls an instance stale. */
#define STATUS_STALE_SECONDS	30

/*
 * The problems of one instance as short phrases ("audit log: 3 records failed", ...), written
 * into buf separated by "; " (empty when healthy); returns how many.  now: current unix time;
 * dbgen: the database's generation, or 0 when unknown; db_changed: when the database files
 * were last modified (a status written 10 s after that must show dbgen, else it is stale).
 */
int status_problems(const struct hg_status *st, int64_t now, uint64_t dbgen, int64_t db_changed,
		    char *buf, size_t len);

int status_write(const char *dir, const struct hg_status *st);
int status_remove(const char *dir, pid_t pid);
/* Read every live daemon's status; *out is malloc'd (caller frees), *n its length. */
int status_read_all(const char *dir, struct hg_status **out, size_t *n);
/* Write all of them as a Prometheus textfile (atomically). */
int status_write_prometheus(const char *path, const struct hg_status *st, size_t n);

/* A list feed's freshness (tools/feed.c), for the textfile. */
struct hg_feed_age {
	char name[64];
	int64_t last_ok;		/* unix time of the last good fetch, 0 never */
	int stale;			/* no good fetch within its stale_after */
	int64_t failures;		/* consecutive failed updates */
};

/* What `hashgate status` knows beyond the instances (for its textfile). */
struct hg_status_global {
	const struct hg_feed_age *feeds;	/* hashgate_feed_* series */
	size_t nfeeds;
	int64_t now;
	int db_readable;		/* 1 / 0 */
	uint64_t db_generation;		/* when readable */
	int64_t db_changed;		/* mtime of the database files */
	int audit_ok;			/* 1 appendable, 0 not, -1 unknown (not readable by us) */
};
/* Same, plus hashgate_database_readable, hashgate_audit_log_appendable, hashgate_problems. */
int status_write_prometheus_global(const char *path, const struct hg_status *st, size_t n,
				   const struct hg_status_global *g);

#endif
