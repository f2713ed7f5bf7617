/*
 * hook.h - on_match_exec: run an admin's program with one match as a JSON object on its
 * standard input.  Shared by the daemon (fs/hook.c: every match of an upload) and `hashgate
 * scan` (tools/cmd-scan.c: every match in existing storage), so both run it the same way and
 * send the same event.
 *
 * Ownership: a struct hook_event belongs to its creator until hookq_submit() takes it.
 * Thread-safety: hook_run() and hook_run_event() are reentrant (they fork; the child makes
 * only async-signal-safe calls, so callers may be multi-threaded).  A struct hookq may be
 * submitted to from any number of threads; start and stop are for one owner thread.
 */
#ifndef HASHGATE_HOOK_H
#define HASHGATE_HOOK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "hashdb/config.h"
#include "hashdb/match.h"

/* One match to tell the hook about. */
struct hook_event {
	struct hook_event *next;	/* the queue's */
	char category[32];
	char list[64];
	enum hash_algo algo;
	uint8_t value[HASH_MAX_LEN];	/* the listed hash: looks up the entry's label */
	uid_t uid;			/* the uploader, or the scanned file's owner */
	int64_t id;			/* quarantine record id; 0 when none */
	int64_t time;
	const char *source;		/* static: "upload" or "scan" */
	char *path;			/* for messages only; may be NULL */
	char *fields;			/* the match's members (escaped JSON, no braces) */
};

/* A new event (time: now), or NULL (out of memory).  path may be NULL. */
struct hook_event *hook_event_new(const struct match_hit *hit, uid_t uid, int64_t id,
				  const char *source, const char *path, const char *fields);
void hook_event_free(struct hook_event *ev);

/*
 * Run prog with json on stdin, as user (NULL: as we are: root for the daemon, never the
 * uploader), environment PATH, HOME=/ and HASHGATE_EVENT=match only, stdout /dev/null, cwd /,
 * in its own session; its process group is killed after timeout seconds.  Returns 0 when it
 * exited 0, else -errno with why (first line of its stderr, exit status, killed).  Blocks
 * this thread at most timeout seconds (plus fork/exec); SIGPIPE must be blocked or ignored
 * in the calling thread (a program need not read its stdin).
 */
int hook_run(const char *prog, const char *user, int64_t timeout, const char *json, char *why,
	     size_t whylen);

/*
 * The hook c configures for ev's category, run with the event: {"event":"match","source":..,
 * "id":..,"time":..,"host":..,"user":..,"label":.., then ev->fields}.  The label is looked up
 * in c->db.  Returns 1 when c has no hook for the category (nothing run), 0 ran fine, -errno
 * failed with why; *prog (may be NULL) is the program, valid while c is.
 */
int hook_run_event(const struct hg_config *c, const struct hook_event *ev, const char **prog,
		   char *why, size_t whylen);

/*
 * A bounded queue and one thread that hands each event to fn(arg, ev) in order (fn does not
 * free ev).  The thread blocks SIGPIPE for hook_run().
 */
typedef void (*hookq_fn)(void *arg, const struct hook_event *ev);
struct hookq;

int hookq_start(struct hookq **q, hookq_fn fn, void *arg);
/*
 * Queue ev (taking it): 0.  When cap (at least 1; the caller's current on_match_exec_queue)
 * events wait already: with wait, block until there is room; without, -ENOSPC and ev stays
 * the caller's (the daemon: a verdict never waits).  -ESHUTDOWN, ev the caller's, once
 * hookq_stop began; no submit may start after hookq_stop returned (q is freed).
 */
int hookq_submit(struct hookq *q, struct hook_event *ev, unsigned cap, bool wait);
/*
 * Stop and free q (NULL: nothing).  drain: run every queued event first; else drop them.
 * Returns the number dropped.  The event being run always finishes (its timeout bounds it).
 */
unsigned hookq_stop(struct hookq *q, bool drain);

#endif
