/*
 * hook.c - on_match_exec: run an admin's program for every match, with the match as one JSON
 * object on its standard input (webhooks, mail, ticket systems; examples in packaging/hooks/).
 *
 * Invariants:
 *  - Never in the verdict path: quarantine_match() only appends the event to a bounded queue
 *    (hook_submit, O(1), no I/O); one dedicated thread runs the programs one at a time.  A
 *    full queue drops the event, counts it (hook_dropped) and logs at most every 10 s; the
 *    verdict, its audit record and its log line are made either way.
 *  - Never as the uploader: the program runs as root or as on_match_exec_user, with a fixed
 *    environment (PATH, HASHGATE_EVENT), stdin the event, stdout /dev/null, cwd /, in its own
 *    session, with no descriptor of the daemon but its pipes (close_range).  Nothing the
 *    uploader controls reaches it except as escaped JSON string values.
 *  - Bounded: on_match_exec_timeout kills the program's whole process group.  Failures (exec
 *    error, non-zero exit, killed) are logged with the first line of its stderr and counted
 *    (hook_failures).
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fs/hgfs.h"
#include "hashdb/db.h"
#include "hashdb/hglog.h"

struct hook_ev {
	struct hook_ev *next;
	char category[32];
	char list[64];
	enum hash_algo algo;
	uint8_t value[HASH_MAX_LEN];
	uid_t uid;
	int64_t id;
	int64_t time;
	char *fields;			/* the audit record's members (escaped JSON) */
};

static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cond = PTHREAD_COND_INITIALIZER;
static struct hook_ev *q_head, *q_tail;
static unsigned q_len;
static bool q_stop;
static atomic_bool q_running;
static pthread_t q_thread;

void hook_submit(const struct match_hit *hit, uid_t uid, int64_t id, const char *fields)
{
	static int64_t last_warn;
	struct fscfg *cfg;
	struct hook_ev *ev;
	unsigned cap;
	bool queued = false, warn = false;
	int64_t now = (int64_t)time(NULL);

	if (!atomic_load(&q_running))
		return;
	cfg = cfg_get();
	if (!config_exec_for(&cfg->c, hit->category)) {
		cfg_put(cfg);
		return;
	}
	cap = (unsigned)cfg->c.on_match_exec_queue;
	cfg_put(cfg);
	ev = calloc(1, sizeof(*ev));
	if (ev && !(ev->fields = strdup(fields))) {
		free(ev);
		ev = NULL;
	}
	if (ev) {
		snprintf(ev->category, sizeof(ev->category), "%s", hit->category);
		snprintf(ev->list, sizeof(ev->list), "%s", hit->list);
		ev->algo = hit->algo;
		memcpy(ev->value, hit->value, sizeof(ev->value));
		ev->uid = uid;
		ev->id = id;
		ev->time = now;
	}
	pthread_mutex_lock(&q_lock);
	if (ev && q_len < cap && !q_stop) {
		if (q_tail)
			q_tail->next = ev;
		else
			q_head = ev;
		q_tail = ev;
		q_len++;
		queued = true;
		pthread_cond_signal(&q_cond);
	} else if (now - last_warn >= 10) {
		last_warn = now;
		warn = true;
	}
	pthread_mutex_unlock(&q_lock);
	if (queued)
		return;
	if (ev) {
		free(ev->fields);
		free(ev);
	}
	stat_add(&hgfs.st.hook_dropped, 1);
	if (warn)
		hglog(LOG_WARNING, "on_match_exec: queue full (on_match_exec_queue = %u), event "
		      "dropped (counted in hook_dropped)", cap);
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
static char *find_label(const char *db, const struct hook_ev *ev)
{
	struct label_arg la = { ev->list, NULL };
	struct hashdb h;

	if (hashdb_open(&h, db, HASHDB_RDONLY, NULL, 0) < 0)
		return NULL;
	hashdb_hash_find(&h, ev->algo, ev->value, label_of, &la, NULL, 0);
	hashdb_close(&h);
	return la.label;
}

/* The JSON event: our members first, then the audit record's. */
static char *event_json(const struct hook_ev *ev, const char *label)
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
	if (asprintf(&out, "{\"event\":\"match\",\"id\":%lld,\"time\":%lld,\"host\":\"%s\","
		     "\"user\":\"%s\",\"label\":%s%s%s,%s}\n", (long long)ev->id,
		     (long long)ev->time, ehost, euser, label ? "\"" : "", label ? elabel : "null",
		     label ? "\"" : "", ev->fields) < 0)
		return NULL;
	return out;
}

/*
 * Run prog with json on stdin; 0, or -errno with why.  The child only makes async-signal-safe
 * calls between fork and exec (the daemon is multi-threaded).
 */
static int run_one(const char *prog, const char *user, int64_t timeout, const char *json,
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
		if (t.tv_sec - t0.tv_sec >= timeout) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			waitpid(pid, &status, 0);
			snprintf(why, whylen, "killed after on_match_exec_timeout (%llds)",
				 (long long)timeout);
			r = -ETIMEDOUT;
			goto out;
		}
		if (ep[0] >= 0 && poll(&p, 1, 100) > 0) {
			char tmp[512];
			ssize_t n = read(ep[0], tmp, sizeof(tmp));

			if (n <= 0) {
				close(ep[0]);	/* EOF: the program closed stderr */
				ep[0] = -1;
			} else if (elen < sizeof(errbuf) - 1) {
				size_t c = (size_t)n < sizeof(errbuf) - 1 - elen ?
					   (size_t)n : sizeof(errbuf) - 1 - elen;

				memcpy(errbuf + elen, tmp, c);
				elen += c;
			}
		} else if (ep[0] < 0) {
			struct timespec d = { 0, 50 * 1000 * 1000 };

			nanosleep(&d, NULL);
		}
	}
	errbuf[elen] = '\0';
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		goto out;
	r = -EIO;
	{
		char *nl = strchr(errbuf, '\n'), esc[600];

		if (nl)
			*nl = '\0';
		hglog_escape(esc, sizeof(esc), errbuf, 0);
		if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
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

static void *hook_main(void *arg)
{
	sigset_t pipe_set;

	(void)arg;
	/* A hook that exits without reading stdin must not take the daemon down with SIGPIPE. */
	sigemptyset(&pipe_set);
	sigaddset(&pipe_set, SIGPIPE);
	pthread_sigmask(SIG_BLOCK, &pipe_set, NULL);
	for (;;) {
		struct hook_ev *ev;
		struct fscfg *cfg;
		const char *prog;
		char *label, *json, why[1024], eprog[1024];
		int r;

		pthread_mutex_lock(&q_lock);
		while (!q_head && !q_stop)
			pthread_cond_wait(&q_cond, &q_lock);
		ev = q_head;
		if (ev) {
			q_head = ev->next;
			if (!q_head)
				q_tail = NULL;
			q_len--;
		}
		pthread_mutex_unlock(&q_lock);
		if (!ev)
			break;		/* stopping with an empty queue */
		cfg = cfg_get();
		prog = config_exec_for(&cfg->c, ev->category);
		if (prog) {
			label = find_label(cfg->c.db, ev);
			json = event_json(ev, label);
			r = json ? run_one(prog, cfg->c.on_match_exec_user,
					   cfg->c.on_match_exec_timeout > 0 ?
					   cfg->c.on_match_exec_timeout : 10, json, why,
					   sizeof(why)) : -ENOMEM;
			stat_add(&hgfs.st.hook_runs, 1);
			if (r < 0) {
				stat_add(&hgfs.st.hook_failures, 1);
				hglog_escape(eprog, sizeof(eprog), prog, 0);
				hglog(LOG_WARNING, "on_match_exec \"%s\" failed for record %lld: %s",
				      eprog, (long long)ev->id, json ? why : "out of memory");
			}
			free(json);
			free(label);
		}
		cfg_put(cfg);
		free(ev->fields);
		free(ev);
	}
	return NULL;
}

int hook_start(void)
{
	int r = pthread_create(&q_thread, NULL, hook_main, NULL);

	if (r)
		return -r;
	atomic_store(&q_running, true);
	return 0;
}

void hook_stop(void)
{
	struct hook_ev *ev;

	if (!atomic_load(&q_running))
		return;
	pthread_mutex_lock(&q_lock);
	/* Events still queued are dropped at shutdown (counted); the running one finishes. */
	while ((ev = q_head)) {
		q_head = ev->next;
		stat_add(&hgfs.st.hook_dropped, 1);
		free(ev->fields);
		free(ev);
	}
	q_tail = NULL;
	q_len = 0;
	q_stop = true;
	pthread_cond_signal(&q_cond);
	pthread_mutex_unlock(&q_lock);
	pthread_join(q_thread, NULL);
	atomic_store(&q_running, false);
}
