/*
 * hook.c - the daemon's on_match_exec: every match of an upload goes to the admin's program
 * (hashdb/hook.c runs it, the same way `hashgate scan` does) as an event with
 * "source":"upload".
 *
 * Invariants:
 *  - Never in the verdict path: quarantine_match() only appends the event to a bounded queue
 *    (hook_submit: an allocation and a lock, no I/O, never a wait); the queue's one thread
 *    runs the programs one at a time.  A full queue drops the event, counts it (hook_dropped)
 *    and logs at most every 10 s; the verdict, its audit record and its log line are made
 *    either way.
 *  - The program is the one configured when the event is run (a SIGHUP in between applies);
 *    runs and failures are counted (hook_runs, hook_failures) and failures logged with the
 *    reason hashdb/hook.c gives.  Events still queued at unmount are dropped and counted.
 */
#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>

#include "fs/hgfs.h"
#include "hashdb/hglog.h"
#include "hashdb/hook.h"

static struct hookq *hq;
static atomic_bool hq_running;

void hook_submit(const struct match_hit *hit, uid_t uid, int64_t id, const char *fields)
{
	static pthread_mutex_t warn_lock = PTHREAD_MUTEX_INITIALIZER;
	static int64_t last_warn;
	struct fscfg *cfg;
	struct hook_event *ev;
	unsigned cap;
	bool warn = false;
	int64_t now = (int64_t)time(NULL);

	if (!atomic_load(&hq_running))
		return;
	cfg = cfg_get();
	if (!config_exec_for(&cfg->c, hit->category)) {
		cfg_put(cfg);
		return;
	}
	cap = (unsigned)cfg->c.on_match_exec_queue;
	cfg_put(cfg);
	ev = hook_event_new(hit, uid, id, "upload", NULL, fields);
	if (ev && hookq_submit(hq, ev, cap, false) == 0)
		return;
	hook_event_free(ev);
	stat_add(&hgfs.st.hook_dropped, 1);
	pthread_mutex_lock(&warn_lock);
	if (now - last_warn >= 10) {
		last_warn = now;
		warn = true;
	}
	pthread_mutex_unlock(&warn_lock);
	if (warn)
		hglog(LOG_WARNING, "on_match_exec: queue full (on_match_exec_queue = %u), event "
		      "dropped (counted in hook_dropped)", cap);
}

static void run_event(void *arg, const struct hook_event *ev)
{
	struct fscfg *cfg = cfg_get();
	const char *prog;
	char why[1024], eprog[1024];
	int r;

	(void)arg;
	r = hook_run_event(&cfg->c, ev, &prog, why, sizeof(why));
	if (r != 1) {
		stat_add(&hgfs.st.hook_runs, 1);
		if (r < 0) {
			stat_add(&hgfs.st.hook_failures, 1);
			hglog_escape(eprog, sizeof(eprog), prog, 0);
			hglog(LOG_WARNING, "on_match_exec \"%s\" failed for record %lld: %s", eprog,
			      (long long)ev->id, why);
		}
	}
	cfg_put(cfg);
}

int hook_start(void)
{
	int r = hookq_start(&hq, run_event, NULL);

	if (r < 0)
		return r;
	atomic_store(&hq_running, true);
	return 0;
}

/* After the FUSE loop and the verdict workers ended: no hook_submit runs any more. */
void hook_stop(void)
{
	if (!atomic_load(&hq_running))
		return;
	atomic_store(&hq_running, false);
	stat_add(&hgfs.st.hook_dropped, hookq_stop(hq, false));
	hq = NULL;
}
