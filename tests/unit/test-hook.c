/*
 * test-hook.c - the on_match_exec runner and queue (hashdb/hook.h) that the daemon and
 * `hashgate scan` share.
 *
 * What users rely on: the program gets the event on stdin with only PATH, HOME and
 * HASHGATE_EVENT in its environment; a non-zero exit is a failure with the first line of its
 * stderr; a program that does not read its stdin does not fail the run (SIGPIPE is blocked
 * here as hook.h asks; the queue's thread blocks it itself); a hung program is killed after the timeout (not before: the limit is not rounded to
 * whole seconds), with its process group.  The queue runs events in order; a submit without
 * wait is refused when full (the daemon's verdicts never wait), with wait it blocks until the
 * hook thread made room (a scan drops nothing); a drained stop runs what waits, a plain stop
 * drops and counts it.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hashdb/hook.h"
#include "tests/unit/tap.h"

static char dir[] = "/tmp/hg-test-hook.XXXXXX";

static char *script(const char *name, const char *body)
{
	static char path[4][256];
	static int n;
	char *p = path[n++ % 4];
	FILE *f;

	snprintf(p, sizeof(path[0]), "%s/%s", dir, name);
	f = fopen(p, "w");
	if (!f)
		return p;
	fprintf(f, "#!/bin/sh\n%s\n", body);
	fclose(f);
	chmod(p, 0755);
	return p;
}

static char *slurp(const char *name)
{
	static char buf[4096];
	char p[256];
	size_t n = 0;
	FILE *f;

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	buf[0] = '\0';
	f = fopen(p, "r");
	if (f) {
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
	}
	buf[n] = '\0';
	return buf;
}

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + t.tv_nsec / 1e9;
}

/* The queue's callback: records the order of the ids and sleeps as long as the id says. */
static char order[256];
static void record(void *arg, const struct hook_event *ev)
{
	size_t n = strlen(order);

	(void)arg;
	snprintf(order + n, sizeof(order) - n, "%lld,", (long long)ev->id);
	if (ev->id >= 100)
		usleep(300 * 1000);
}

static struct hook_event *event(int64_t id)
{
	struct match_hit hit = { .algo = HASH_SHA256 };

	snprintf(hit.list, sizeof(hit.list), "l");
	snprintf(hit.category, sizeof(hit.category), "c");
	return hook_event_new(&hit, 0, id, "scan", "p", "\"x\":1");
}

int main(void)
{
	char why[1024], body[512];
	struct hookq *q;
	struct hook_event *a, *b, *c;
	sigset_t pipe_set;
	double t0, t;
	int r;

	if (!mkdtemp(dir)) {
		printf("1..0 # SKIP mkdtemp failed\n");
		return 0;
	}
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);

	snprintf(body, sizeof(body), "cat >%s/in; env | grep -v '^PWD=' | sort >%s/env; pwd >>%s/env",
		 dir, dir, dir);
	r = hook_run(script("ok.sh", body), NULL, 5, "{\"event\":\"match\"}\n", why, sizeof(why));
	is_int(r, 0, "a hook that exits 0 succeeds");
	is_str(slurp("in"), "{\"event\":\"match\"}\n", "it read the event on stdin");
	is_str(slurp("env"), "HASHGATE_EVENT=match\nHOME=/\n"
	       "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n/\n",
	       "its environment is PATH, HOME and HASHGATE_EVENT only (cwd /)");

	r = hook_run(script("fail.sh", "echo 'first line' >&2; echo second >&2; exit 3"), NULL,
		     5, "{}\n", why, sizeof(why));
	ok(r == -EIO && strcmp(why, "exit status 3: first line") == 0,
	   "a non-zero exit fails with the first line of stderr (%d, %s)", r, why);

	r = hook_run(script("noread.sh", "exit 0"), NULL, 5, "{}\n", why, sizeof(why));
	is_int(r, 0, "a hook that does not read its stdin still succeeds (no SIGPIPE)");

	r = hook_run("/nonexistent/hook", NULL, 5, "{}\n", why, sizeof(why));
	ok(r < 0 && strstr(why, "cannot execute"), "a missing program fails (%s)", why);

	t0 = now_s();
	r = hook_run(script("hang.sh", "sleep 30 & sleep 30"), NULL, 2, "{}\n", why,
		     sizeof(why));
	t = now_s() - t0;
	ok(r == -ETIMEDOUT && strstr(why, "killed after on_match_exec_timeout"),
	   "a hung hook is killed (%s)", why);
	ok(t >= 2.0 && t < 4.0, "after its 2 s timeout, not before (%.2f s)", t);

	/* the queue */
	order[0] = '\0';
	ok(hookq_start(&q, record, NULL) == 0, "queue started");
	a = event(100);
	b = event(2);
	c = event(3);
	is_int(hookq_submit(q, a, 1, false), 0, "first event queued");
	usleep(100 * 1000);		/* taken by the thread, which now sleeps 300 ms */
	is_int(hookq_submit(q, b, 1, false), 0, "second event waits in the queue (cap 1)");
	is_int(hookq_submit(q, c, 1, false), -ENOSPC, "a third is refused without wait");
	t0 = now_s();
	is_int(hookq_submit(q, c, 1, true), 0, "with wait it is queued once there is room");
	ok(now_s() - t0 > 0.1, "... after waiting for the thread (%.2f s)", now_s() - t0);
	is_int(hookq_stop(q, true), 0, "a drained stop drops nothing");
	is_str(order, "100,2,3,", "every event ran, in order");

	order[0] = '\0';
	ok(hookq_start(&q, record, NULL) == 0, "queue started again");
	hookq_submit(q, event(100), 8, false);
	usleep(100 * 1000);
	hookq_submit(q, event(5), 8, false);
	hookq_submit(q, event(6), 8, false);
	is_int(hookq_stop(q, false), 2, "a plain stop drops what waits and says how many");
	is_str(order, "100,", "the running event finished");

	snprintf(body, sizeof(body), "rm -rf %s", dir);
	if (system(body) != 0)
		diag("could not remove %s", dir);
	return done_testing();
}
