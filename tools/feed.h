/*
 * feed.h - list feeds: a hash list fetched over HTTPS (libcurl) from a supplier or from the
 * hoster's own distribution point, checked (Ed25519 signature or SHA-256 checksum) and applied
 * to one list of the database (`hashgate feed`, tools/cmd-feed.c; status in cmd-status.c).
 *
 * A feed is FEEDS_DIR/NAME.conf ("key = value" lines like hashgate.conf; keys in
 * hashgate.conf(5)).  Its state - ETag / Last-Modified for conditional GET, the SHA-256 of
 * the last applied body, the delta cursor, the time of the last good fetch and the last
 * error - is one row of the database's meta table ('feed:NAME'), written without bumping the
 * generation, so it is backed up with the lists it describes and never makes daemons reload.
 *
 * Invariants:
 *  - A feed with a key never applies a body whose detached signature (URL.sig) is missing or
 *    does not verify; with checksum = on, never one whose URL.sha256 differs.  A refused or
 *    failed update changes no list: the last good list stays in force.
 *  - A full feed replaces its list in one import transaction (import_file, --replace); a delta
 *    feed applies a body only when its header's "after" equals the stored cursor (no gaps,
 *    no reordering).  The state after an applied body (new cursor, body SHA-256, validators,
 *    last good fetch) is written in that same transaction (import_opts.meta_key), so the list
 *    and its state never disagree, even after a crash.  States without an import (304, same
 *    body, failures) are a transaction of their own.
 *  - Every import of a feed goes through one function (feed.c: apply_import).
 * Single-threaded CLI code; nothing is shared between calls.
 */
#ifndef TOOLS_FEED_H
#define TOOLS_FEED_H

#include <stdbool.h>
#include <stdint.h>

#include "hashdb/db.h"
#include "tools/cli.h"

struct feed {
	char *name;
	char *conf;			/* the file it was read from */
	char *url;
	char *list;
	char *category;			/* NULL: the list's own (a new list gets "other") */
	int algo;			/* enum hash_algo, -1: from the file */
	int format;			/* enum import_format; IMPORT_AUTO: from the URL */
	bool delta;			/* mode = delta: JSONL changes with a sequence header */
	char *key;			/* PEM Ed25519 public key: URL.sig must verify */
	bool checksum;			/* URL.sha256 must match */
	char *ca_file;			/* pinned CA bundle instead of the system store */
	char *client_cert, *client_key;
	char *token_file;		/* bearer token, read at fetch time */
	int64_t every;			/* `feed update` without names skips it until due */
	int64_t timeout;		/* whole transfer, seconds */
	int64_t stale_after;		/* no good fetch for this long: status problem */
	int64_t retry_wait;		/* first back-off; doubles per retry */
	uint64_t max_size;		/* body bound (also after gzip decoding) */
	int retries;
};

struct feed_state {
	char etag[256];
	char last_modified[128];
	char sha256[65];		/* of the last applied body ("" none) */
	int64_t cursor;			/* delta: sequence of the last applied change set */
	int64_t last_ok;		/* last fetch that ended with the list current */
	int64_t last_change;		/* last time the feed changed the list */
	int64_t last_attempt;
	int64_t failures;		/* consecutive failed updates */
	char error[512];		/* the last failure ("" after a good fetch) */
};

void feed_init(struct feed *f);
void feed_release(struct feed *f);
/* Set one key as in NAME.conf; -EINVAL/-ENOENT with "key: reason" in err. */
int feed_set(struct feed *f, const char *key, const char *value, char *err, size_t errlen);
/* Read dir/NAME.conf.  -ENOENT when there is no such feed; "FILE:LINE: reason" otherwise. */
int feed_load(struct feed *f, const char *dir, const char *name, char *err, size_t errlen);
/* Check that the feed is complete (url, list; delta needs jsonl) and its key loads. */
int feed_check(const struct feed *f, char *err, size_t errlen);
/* Write dir/NAME.conf atomically (excl: fail with -EEXIST when it exists). */
int feed_save(const struct feed *f, const char *dir, bool excl, char *err, size_t errlen);
/* The feed names in dir, sorted; *names malloc()ed (feed_names_free). */
int feed_names(const char *dir, char ***names, size_t *n, char *err, size_t errlen);
void feed_names_free(char **names, size_t n);

/* State in the database; get: -ENOENT (and a zeroed *st) when never updated. */
int feed_state_get(struct hashdb *db, const char *name, struct feed_state *st, char *err,
		   size_t errlen);
int feed_state_put(struct hashdb *db, const char *name, const struct feed_state *st, char *err,
		   size_t errlen);
int feed_state_delete(struct hashdb *db, const char *name, char *err, size_t errlen);

enum feed_outcome {
	FEED_APPLIED,			/* the list changed (or the dry run would change it) */
	FEED_UNCHANGED,			/* 304, same body, or a delta already applied */
};

struct feed_result {
	enum feed_outcome outcome;
	uint64_t added, removed, records;
	int64_t sequence, after;	/* delta */
	char sha256[65];
	bool not_modified;		/* 304 */
	bool verified;			/* signature checked */
};

/*
 * Fetch, check and apply one feed to db (open read-write); with dry_run compute the diff
 * against a scratch database and change nothing.  Updates the feed's state (not on a dry
 * run).  Audits applied changes and refusals through cli.  0 or -errno with the reason in err.
 */
int feed_update(struct cli *cli, struct hashdb *db, const struct feed *f, bool dry_run,
		struct feed_result *res, char *err, size_t errlen);

/*
 * The feeds' freshness (tools/cmd-feed.c), for `feed status` (verbose) and `hashgate status`:
 * a line per feed, or JSON (verbose: an array; else a ,"feeds":[...] member).  *nstale counts
 * feeds without a good fetch within stale_after (or never); ages (may be NULL) gets them
 * for the textfile (malloc()ed).  0 or -errno (error printed).
 */
struct hg_feed_age;
int feed_status_report(struct cli *cli, int json, int verbose, int *nstale,
		       struct hg_feed_age **ages, size_t *nages);

/* Ed25519 key pair as PEM files (private 0600). */
int feed_keygen(const char *priv_path, const char *pub_path, char *err, size_t errlen);
/* Sign file with the PEM private key: sig_path gets the base64 signature and a newline. */
int feed_sign(const char *priv_path, const char *file, const char *sig_path, char *err,
	      size_t errlen);
/* Verify data against a signature file's content (raw 64 bytes or base64). */
int feed_verify(const char *pub_path, const void *data, size_t len, const void *sig,
		size_t siglen, char *err, size_t errlen);

#endif
