/*
 * hook.c - on_match_exec: run an admin's program for every match, with the match as one JSON
 * object on its standard input (webhooks, mail, ticket systems; examples in packaging/hooks/).
 * The daemon (fs/hook.c) and `hashgate scan` both run it through here.
 *
 * Invariants:
 *  - Never as the uploader (or a scanned file's owner): the program runs as root or as
 *    on_match_exec_user, with a fixed environment (PATH, HOME, HASHGATE_EVENT), stdin the
 *    event, stdout /dev/null, cwd /, in its own session, with no descriptor of ours but its
 *    pipes (close_range).  Nothing the uploader controls reaches it except as escaped JSON
 *    string values.
 *  - Bounded: on_match_exec_timeout kills the program's whole process group; the caller's
 *    thread waits no longer than that.  Failures (exec error, non-zero exit, killed) come back
 *    with the first line of its stderr for the caller to log and count.
 *  - The queue (struct hookq) runs events one at a time, in order, on its own thread; it never
 *    grows past its capacity: a submit either waits (the CLI) or is refused (the daemon, whose
 *    verdicts must not wait for a hook).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "hashdb/db.h"
#include "hashdb/hglog.h"
#include "hashdb/hook.h"

struct hook_event *hook_event_new(const struct match_hit *hit, uid_t uid, int64_t id,
				  const char *source, const char *path, const char *fields)
{
	struct hook_event *ev = calloc(1, sizeof(*ev));

	if (!ev)
		return NULL;
	ev->fields = strdup(fields);
	ev->path = path ? strdup(path) : NULL;
	if (!ev->fields || (path && !ev->path)) {
		hook_event_free(ev);
		return NULL;
	}
	snprintf(ev->category, sizeof(ev->category), "%s", hit->category);
	snprintf(ev->list, sizeof(ev->list), "%s", hit->list);
	ev->algo = hit->algo;
	memcpy(ev->value, hit->value, sizeof(ev->value));
	ev->uid = uid;
	ev->id = id;
	ev->time = (int64_t)time(NULL);
	ev->source = source;
	return ev;
}

void hook_event_free(struct hook_event *ev)
{
	if (!ev)
		return;
	free(ev->fields);
	free(ev->path);
	free(ev);
}

struct label_arg {
	const char *list;
	char *label;
};

static int label_of(const struct hashdb_entry *e, void *arg)
{
	struct label_arg *la = arg;

	if (e->label && e->list && !strcmp(e->list, la->list) && !la->label)
		la->label = strdup(e->label);
	return 0;
}

/* The list entry's label: looked up here, off the verdict path (the matcher keeps none). */
static char *find_label(const char *db, const struct hook_event *ev)
{
	struct label_arg la = { ev->list, NULL };
	struct hashdb h;

	if (hashdb_open(&h, db, HASHDB_RDONLY, NULL, 0) < 0)
		return NULL;
	hashdb_hash_find(&h, ev->algo, ev->value, label_of, &la, NULL, 0);
	hashdb_close(&h);
	return la.label;
}

/* The JSON event: our members first, then the match's. */
static char *event_json(const struct hook_event *ev, const char *label)
{
	char host[256] = "", ehost[600], user[256] = "", euser[600], elabel[4200], pwbuf[4096];
	struct passwd pw, *res = NULL;
	char *out = NULL;

	gethostname(host, sizeof(host) - 1);
	if (getpwuid_r(ev->uid, &pw, pwbuf, sizeof(pwbuf), &res) == 0 && res)
		snprintf(user, sizeof(user), "%s", pw.pw_name);
	hglog_escape(ehost, sizeof(ehost), host, 1);
	hglog_escape(euser, sizeof(euser), user, 1);
	hglog_escape(elabel, sizeof(elabel), label ? label : "", 1);
	if (asprintf(&out, "{\"event\":\"match\",\"source\":\"%s\",\"id\":%lld,\"time\":%lld,\"host\":\"%s\","
		     "\"user\":\"%s\",\"label\":%s%s%s,%s}\n", ev->source, (long long)ev->id,
		     (long long)ev->time, ehost, euser, label ? "\"" : "", label ? elabel : "null",
		     label ? "\"" : "", ev->fields) < 0)
		return NULL;
	return out;
}

/* Read what the hook wrote to stderr; the first bytes up to cap - 1 are kept.  read()'s result. */
static ssize_t read_err(int fd, char *buf, size_t cap, size_t *len)
{
	char tmp[512];
	ssize_t n = read(fd, tmp, sizeof(tmp));

	if (n > 0 && *len < cap - 1) {
		size_t c = (size_t)n < cap - 1 - *len ? (size_t)n : cap - 1 - *len;

		memcpy(buf + *len, tmp, c);
		*len += c;
	}
	return n;
}

/* The child only makes async-signal-safe calls between fork and exec (callers are threaded). */
int hook_run(const char *prog, const char *user, int64_t timeout, const char *json,
		   char *why, size_t whylen)
{
	static char env_path[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
	static char env_event[] = "HASHGATE_EVENT=match";
	static char env_home[] = "HOME=/";
	char *envp[] = { env_path, env_event, env_home, NULL };
	char *argv[] = { (char *)prog, NULL };
	char pwbuf[4096], errbuf[512];
	struct passwd pw, *res = NULL;
	uid_t uid = 0;
	gid_t gid = 0;
	int in[2] = { -1, -1 }, ep[2] = { -1, -1 }, devnull, status = 0, r = 0;
	size_t elen = 0, jlen = strlen(json), off = 0;
	struct timespec t0, t;
	long nap_ms = 1;
	pid_t pid;

	if (user) {
		if (getpwnam_r(user, &pw, pwbuf, sizeof(pwbuf), &res) != 0 || !res) {
			snprintf(why, whylen, "on_match_exec_user '%s' does not exist", user);
			return -ENOENT;
		}
		uid = pw.pw_uid;
		gid = pw.pw_gid;
	}
	devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
	if (devnull < 0 || pipe2(in, O_CLOEXEC) < 0 || pipe2(ep, O_CLOEXEC) < 0) {
		r = -errno;
		snprintf(why, whylen, "pipe: %s", strerror(-r));
		goto out;
	}
	pid = fork();
	if (pid < 0) {
		r = -errno;
		snprintf(why, whylen, "fork: %s", strerror(-r));
		goto out;
	}
	if (pid == 0) {
		sigset_t none;

		struct sigaction dfl;

		/* libfuse ignores SIGPIPE, and ignored signals stay ignored across exec */
		memset(&dfl, 0, sizeof(dfl));
		dfl.sa_handler = SIG_DFL;
		sigaction(SIGPIPE, &dfl, NULL);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		setsid();
		if (dup2(in[0], 0) < 0 || dup2(devnull, 1) < 0 || dup2(ep[1], 2) < 0)
			_exit(126);
		close_range(3, ~0u, 0);
		if (user && (setgroups(1, &gid) < 0 || setgid(gid) < 0 || setuid(uid) < 0))
			_exit(125);
		if (chdir("/") < 0)
			_exit(126);
		execve(prog, argv, envp);
		_exit(127);
	}
	close(in[0]);
	in[0] = -1;
	close(ep[1]);
	ep[1] = -1;
	/* The event fits the pipe buffer; a program that does not read it gets EPIPE, not us. */
	fcntl(in[1], F_SETFL, O_NONBLOCK);
	while (off < jlen) {
		ssize_t w = write(in[1], json + off, jlen - off);

		if (w <= 0)
			break;
		off += (size_t)w;
	}
	close(in[1]);
	in[1] = -1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd p = { ep[0], POLLIN, 0 };
		pid_t w = waitpid(pid, &status, WNOHANG);

		if (w == pid)
			break;
		clock_gettime(CLOCK_MONOTONIC, &t);
		/* in ms: whole seconds would kill a 2 s timeout after anything over 1 s */
		if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 >=
		    timeout * 1000) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			snprintf(why, whylen, "killed after on_match_exec_timeout (%llds)",
				 (long long)timeout);
			r = -ETIMEDOUT;
			goto out;
		}
		if (ep[0] >= 0 && poll(&p, 1, 100) > 0) {
			if (read_err(ep[0], errbuf, sizeof(errbuf), &elen) <= 0) {
				close(ep[0]);	/* EOF: the program closed stderr */
				ep[0] = -1;
			}
		} else if (ep[0] < 0) {
			/*
			 * stderr closed: usually the program is exiting.  Back off from 1 ms to
			 * 50 ms, so a quick hook is reaped at once (a flat 50 ms made a run of
			 * `cat >/dev/null` take 17 ms on average) and a slow one costs no CPU.
			 */
			struct timespec d = { 0, nap_ms * 1000 * 1000 };

			nanosleep(&d, NULL);
			if (nap_ms < 50)
				nap_ms = nap_ms * 2 > 50 ? 50 : nap_ms * 2;
		}
	}
	/*
	 * Reaped before its stderr was read (it wrote and exited between two looks): what it
	 * wrote is still in the pipe.  Without waiting: a child of the hook may hold it open.
	 */
	if (ep[0] >= 0 && fcntl(ep[0], F_SETFL, O_NONBLOCK) == 0)
		while (read_err(ep[0], errbuf, sizeof(errbuf), &elen) > 0)
			;
	errbuf[elen] = '\0';
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		goto out;
	r = -EIO;
	{
		char *nl = strchr(errbuf, '\n'), esc[600];

		if (nl)
			*nl = '\0';
		hglog_escape(esc, sizeof(esc), errbuf, 0);
		if (user && WIFEXITED(status) && WEXITSTATUS(status) == 125 && !*esc)
			snprintf(why, whylen, "cannot switch to on_match_exec_user '%s' (exit 125)",
				 user);
		else if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
			snprintf(why, whylen, "cannot execute (exit 127)%s%.300s", *esc ? ": " : "",
				 esc);
		else if (WIFEXITED(status))
			snprintf(why, whylen, "exit status %d%s%.300s", WEXITSTATUS(status),
				 *esc ? ": " : "", esc);
		else
			snprintf(why, whylen, "killed by signal %d", WTERMSIG(status));
	}
out:
	if (devnull >= 0)
		close(devnull);
	for (int i = 0; i < 2; i++) {
		if (in[i] >= 0)
			close(in[i]);
		if (ep[i] >= 0)
			close(ep[i]);
	}
	return r;
}

int hook_run_event(const struct hg_config *c, const struct hook_event *ev, const char **prog,
		   char *why, size_t whylen)
{
	const char *p = config_exec_for(c, ev->category);
	char *label, *json;
	int r;

	if (prog)
		*prog = p;
	if (!p)
		return 1;
	label = find_label(c->db, ev);
	json = event_json(ev, label);
	if (json) {
		r = hook_run(p, c->on_match_exec_user,
			     c->on_match_exec_timeout > 0 ? c->on_match_exec_timeout : 10, json,
			     why, whylen);
	} else {
		r = -ENOMEM;
		snprintf(why, whylen, "out of memory");
	}
	free(json);
	free(label);
	return r;
}

/* --- the queue ------------------------------------------------------------------------- */

struct hookq {
	pthread_mutex_t lock;
	pthread_cond_t nonempty, nonfull;
	struct hook_event *head, *tail;
	unsigned len;
	bool stop, drain;
	hookq_fn fn;
	void *arg;
	pthread_t thread;
};

static void *hookq_main(void *arg)
{
	struct hookq *q = arg;
	sigset_t pipe_set;

	/* A hook that exits without reading stdin must not kill us with SIGPIPE. */
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);
	for (;;) {
		struct hook_event *ev;

		pthread_mutex_lock(&q->lock);
		while (!q->head && !q->stop)
			pthread_cond_wait(&q->nonempty, &q->lock);
		ev = q->stop && !q->drain ? NULL : q->head;
		if (ev) {
			q->head = ev->next;
			if (!q->head)
				q->tail = NULL;
			q->len--;
			pthread_cond_signal(&q->nonfull);
		}
		pthread_mutex_unlock(&q->lock);
		if (!ev)
			break;		/* stopping: the queue is empty or is to be dropped */
		q->fn(q->arg, ev);
		hook_event_free(ev);
	}
	return NULL;
}

int hookq_start(struct hookq **out, hookq_fn fn, void *arg)
{
	struct hookq *q = calloc(1, sizeof(*q));
	int r;

	if (!q)
		return -ENOMEM;
	q->fn = fn;
	q->arg = arg;
	pthread_mutex_init(&q->lock, NULL);
	pthread_cond_init(&q->nonempty, NULL);
	pthread_cond_init(&q->nonfull, NULL);
	r = pthread_create(&q->thread, NULL, hookq_main, q);
	if (r) {
		pthread_cond_destroy(&q->nonfull);
		pthread_cond_destroy(&q->nonempty);
		pthread_mutex_destroy(&q->lock);
		free(q);
		return -r;
	}
	*out = q;
	return 0;
}

int hookq_submit(struct hookq *q, struct hook_event *ev, unsigned cap, bool wait)
{
	int r = 0;

	if (!cap)
		cap = 1;
	pthread_mutex_lock(&q->lock);
	while (wait && q->len >= cap && !q->stop)
		pthread_cond_wait(&q->nonfull, &q->lock);
	if (q->stop) {
		r = -ESHUTDOWN;
	} else if (q->len >= cap) {
		r = -ENOSPC;
	} else {
		ev->next = NULL;
		if (q->tail)
			q->tail->next = ev;
		else
			q->head = ev;
		q->tail = ev;
		q->len++;
		pthread_cond_signal(&q->nonempty);
	}
	pthread_mutex_unlock(&q->lock);
	return r;
}

unsigned hookq_stop(struct hookq *q, bool drain)
{
	struct hook_event *ev;
	unsigned dropped = 0;

	if (!q)
		return 0;
	pthread_mutex_lock(&q->lock);
	q->stop = true;
	q->drain = drain;
	pthread_cond_broadcast(&q->nonempty);
	pthread_cond_broadcast(&q->nonfull);
	pthread_mutex_unlock(&q->lock);
	pthread_join(q->thread, NULL);
	/* Not drained: what still waits is dropped (the running one finished). */
	while ((ev = q->head)) {
		q->head = ev->next;
		hook_event_free(ev);
		dropped++;
	}
	pthread_cond_destroy(&q->nonfull);
	pthread_cond_destroy(&q->nonempty);
	pthread_mutex_destroy(&q->lock);
	free(q);
	return dropped;
}
