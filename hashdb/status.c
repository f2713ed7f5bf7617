/*
 * status.c - per-daemon status files (STATE_DIR/hashgatefs-PID.status) and the Prometheus
 * textfile built from them.
 *
 * A status file is "key=value" lines; path values escape backslash and newline ("\\", "\n") so
 * any file name round-trips.  Files are written to a dot-temp name and renamed, so a reader sees
 * the old or the new file, never half of one; node_exporter likewise reads only *.prom files,
 * so the textfile's temp name ends in ".tmp".
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hashdb/status.h"

static void put_path(FILE *f, const char *key, const char *v)
{
	fprintf(f, "%s=", key);
	for (; *v; v++) {
		if (*v == '\\')
			fputs("\\\\", f);
		else if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
	fputc('\n', f);
}

static void get_path(char *dst, size_t len, const char *v)
{
	size_t n = 0;

	for (; *v && n + 1 < len; v++) {
		if (*v == '\\' && v[1]) {
			v++;
			dst[n++] = *v == 'n' ? '\n' : *v;
		} else {
			dst[n++] = *v;
		}
	}
	dst[n] = '\0';
}

/* Write via a temp file in the same directory and rename over path. */
static int write_atomic(const char *path, int (*fill)(FILE *, const void *), const void *arg)
{
	char *tmp = NULL;
	FILE *f;
	int fd, r;

	if (asprintf(&tmp, "%s.%ld.tmp", path, (long)getpid()) < 0)
		return -ENOMEM;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
	if (fd < 0) {
		r = -errno;
		goto out_free;
	}
	f = fdopen(fd, "w");
	if (!f) {
		r = -errno;
		close(fd);
		goto out_unlink;
	}
	r = fill(f, arg);
	if (fflush(f) != 0 && r == 0)
		r = -errno;
	if (fclose(f) != 0 && r == 0)
		r = -EIO;
	if (r < 0)
		goto out_unlink;
	if (rename(tmp, path) < 0) {
		r = -errno;
		goto out_unlink;
	}
	free(tmp);
	return 0;
out_unlink:
	unlink(tmp);
out_free:
	free(tmp);
	return r;
}

static int fill_status(FILE *f, const void *arg)
{
	const struct hg_status *st = arg;

	fprintf(f, "pid=%ld\n", (long)st->pid);
	put_path(f, "backing", st->backing);
	put_path(f, "mountpoint", st->mountpoint);
	fprintf(f, "started=%" PRId64 "\nupdated=%" PRId64 "\ngeneration=%" PRIu64 "\n"
		"uploads_scanned=%" PRIu64 "\nuploads_clean=%" PRIu64 "\nmatches=%" PRIu64 "\n"
		"quarantined=%" PRIu64 "\nblocked=%" PRIu64 "\nerrors=%" PRIu64 "\n"
		"bytes_scanned=%" PRIu64 "\naudit_errors=%" PRIu64 "\nquarantine_errors=%" PRIu64
		"\nreload_failing=%" PRIu64 "\nconfig_failed=%" PRIu64 "\n",
		st->started, st->updated, st->generation, st->uploads_scanned,
		st->uploads_clean, st->matches, st->quarantined, st->blocked, st->errors,
		st->bytes_scanned, st->audit_errors, st->quarantine_errors, st->reload_failing,
		st->config_failed);
	fprintf(f, "evidence_kept=%" PRIu64 "\nevidence_lost=%" PRIu64 "\nquarantine_bytes=%" PRIu64
		"\nquarantine_max_bytes=%" PRIu64 "\n", st->evidence_kept, st->evidence_lost,
		st->quarantine_bytes, st->quarantine_max_bytes);
	fprintf(f, "hook_runs=%" PRIu64 "\nhook_failures=%" PRIu64 "\nhook_dropped=%" PRIu64 "\n",
		st->hook_runs, st->hook_failures, st->hook_dropped);
	fprintf(f, "backing_fs=%s\nstaging=%s\nfile_handles=%" PRIu64 "\nhandles_off=%" PRIu64
		"\n", st->backing_fs, st->staging, st->file_handles, st->handles_off);
	return ferror(f) ? -EIO : 0;
}

static int status_path(char *buf, size_t len, const char *dir, pid_t pid)
{
	int n = snprintf(buf, len, "%s/hashgatefs-%ld.status", dir, (long)pid);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int status_write(const char *dir, const struct hg_status *st)
{
	char path[4096];
	int r;

	r = status_path(path, sizeof(path), dir, st->pid);
	if (r < 0)
		return r;
	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return -errno;
	return write_atomic(path, fill_status, st);
}

int status_remove(const char *dir, pid_t pid)
{
	char path[4096];
	int r;

	r = status_path(path, sizeof(path), dir, pid);
	if (r < 0)
		return r;
	return unlink(path) < 0 && errno != ENOENT ? -errno : 0;
}

static int parse_status(FILE *f, struct hg_status *st)
{
	char *line = NULL, *eq;
	size_t cap = 0;
	ssize_t n;
	int havepid = 0;

	memset(st, 0, sizeof(*st));
	while ((n = getline(&line, &cap, f)) > 0) {
		if (line[n - 1] == '\n')
			line[n - 1] = '\0';
		eq = strchr(line, '=');
		if (!eq)
			continue;
		*eq++ = '\0';
#define U64(k) else if (strcmp(line, #k) == 0) st->k = strtoull(eq, NULL, 10)
#define I64(k) else if (strcmp(line, #k) == 0) st->k = strtoll(eq, NULL, 10)
		if (strcmp(line, "pid") == 0) {
			st->pid = (pid_t)strtol(eq, NULL, 10);
			havepid = st->pid > 0;
		} else if (strcmp(line, "backing") == 0) {
			get_path(st->backing, sizeof(st->backing), eq);
		} else if (strcmp(line, "mountpoint") == 0) {
			get_path(st->mountpoint, sizeof(st->mountpoint), eq);
		}
		I64(started); I64(updated);
		U64(generation); U64(uploads_scanned); U64(uploads_clean); U64(matches);
		U64(quarantined); U64(blocked); U64(errors); U64(bytes_scanned);
		U64(audit_errors); U64(quarantine_errors); U64(reload_failing); U64(config_failed);
		U64(evidence_kept); U64(evidence_lost); U64(quarantine_bytes);
		U64(quarantine_max_bytes); U64(hook_runs); U64(hook_failures); U64(hook_dropped);
		U64(file_handles); U64(handles_off);
		else if (strcmp(line, "backing_fs") == 0)
			snprintf(st->backing_fs, sizeof(st->backing_fs), "%s", eq);
		else if (strcmp(line, "staging") == 0)
			snprintf(st->staging, sizeof(st->staging), "%s", eq);
#undef U64
#undef I64
	}
	free(line);
	return havepid ? 0 : -EINVAL;
}

static int cmp_pid(const void *a, const void *b)
{
	const struct hg_status *x = a, *y = b;

	return (x->pid > y->pid) - (x->pid < y->pid);
}

int status_read_all(const char *dir, struct hg_status **out, size_t *n)
{
	struct hg_status *v = NULL;
	size_t cnt = 0, cap = 0;
	struct dirent *de;
	DIR *d;
	int r = 0;

	*out = NULL;
	*n = 0;
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : -errno;	/* no state dir: nothing running */
	while ((de = readdir(d))) {
		struct hg_status st;
		size_t len = strlen(de->d_name);
		int fd;
		FILE *f;

		if (strncmp(de->d_name, "hashgatefs-", 11) != 0 || len < 8 ||
		    strcmp(de->d_name + len - 7, ".status") != 0)
			continue;
		fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0)
			continue;
		f = fdopen(fd, "r");
		if (!f) {
			close(fd);
			continue;
		}
		/* A half-parsed or foreign file is skipped, not fatal for the others. */
		if (parse_status(f, &st) < 0 || st.pid <= 0) {
			fclose(f);
			continue;
		}
		fclose(f);
		/* A daemon that died without cleaning up: stale, not running. */
		if (kill(st.pid, 0) < 0 && errno == ESRCH)
			continue;
		if (cnt == cap) {
			size_t ncap = cap ? 2 * cap : 4;
			struct hg_status *nv = realloc(v, ncap * sizeof(*nv));

			if (!nv) {
				r = -ENOMEM;
				break;
			}
			v = nv;
			cap = ncap;
		}
		v[cnt++] = st;
	}
	closedir(d);
	if (r < 0) {
		free(v);
		return r;
	}
	if (cnt)
		qsort(v, cnt, sizeof(*v), cmp_pid);
	*out = v;
	*n = cnt;
	return 0;
}

static void put_label(FILE *f, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			fprintf(f, "\\%c", *v);
		else if (*v == '\n')
			fputs("\\n", f);
		else
			fputc(*v, f);
	}
}

struct prom_arg {
	const struct hg_status *st;
	size_t n;
	const struct hg_status_global *g;	/* NULL from a daemon */
};

static int fill_prom(FILE *f, const void *arg)
{
	static const struct {
		const char *name, *type, *help;
		size_t off;
	} m[] = {
#define M(n, t, h, field) { "hashgate_" n, t, h, offsetof(struct hg_status, field) }
		M("start_time_seconds", "gauge", "Unix time the hashgatefs instance started.", started),
		M("status_updated_seconds", "gauge", "Unix time of the instance's last status update.", updated),
		M("database_generation", "gauge", "Generation of the hash database the instance matches against.", generation),
		M("uploads_scanned_total", "counter", "Uploads scanned.", uploads_scanned),
		M("uploads_clean_total", "counter", "Uploads scanned and published.", uploads_clean),
		M("matches_total", "counter", "Uploads that matched the hash database.", matches),
		M("quarantined_total", "counter", "Matched uploads moved to the quarantine store.", quarantined),
		M("blocked_total", "counter", "Matched uploads discarded.", blocked),
		M("errors_total", "counter", "Uploads whose scan failed.", errors),
		M("scanned_bytes_total", "counter", "Bytes of uploads hashed.", bytes_scanned),
		M("audit_errors_total", "counter", "Verdict records that could not be appended to the audit log.", audit_errors),
		M("quarantine_errors_total", "counter", "Matches whose content or record the quarantine store refused.", quarantine_errors),
		M("database_reload_failing", "gauge", "1 while the instance cannot reload the hash database (it keeps the generation in use).", reload_failing),
		M("config_reload_failed", "gauge", "1 when the last SIGHUP configuration reload was refused.", config_failed),
		M("evidence_kept_total", "counter", "Matched uploads whose content the quarantine store could not take, kept encrypted in the staging area.", evidence_kept),
		M("evidence_lost_total", "counter", "Matched uploads whose content could be neither stored nor kept.", evidence_lost),
		M("quarantine_bytes", "gauge", "Size of the quarantine store's content.", quarantine_bytes),
		M("quarantine_max_bytes", "gauge", "quarantine_max_size (0: no limit).", quarantine_max_bytes),
		M("hook_runs_total", "counter", "on_match_exec programs run.", hook_runs),
		M("hook_failures_total", "counter", "on_match_exec runs that failed (exit status, timeout, exec error).", hook_failures),
		M("hook_dropped_total", "counter", "Match events not given to on_match_exec because its queue was full.", hook_dropped),
#undef M
	};
	const struct prom_arg *pa = arg;

	fprintf(f, "# HELP hashgate_instances Running hashgatefs instances.\n"
		   "# TYPE hashgate_instances gauge\nhashgate_instances %zu\n", pa->n);
	for (size_t k = 0; k < sizeof(m) / sizeof(m[0]); k++) {
		fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", m[k].name, m[k].help, m[k].name,
			m[k].type);
		for (size_t i = 0; i < pa->n; i++) {
			const struct hg_status *st = &pa->st[i];
			const char *p = (const char *)st + m[k].off;
			uint64_t v;

			if (m[k].off == offsetof(struct hg_status, started) ||
			    m[k].off == offsetof(struct hg_status, updated))
				v = (uint64_t)*(const int64_t *)(const void *)p;
			else
				v = *(const uint64_t *)(const void *)p;
			fprintf(f, "%s{mountpoint=\"", m[k].name);
			put_label(f, st->mountpoint);
			fputs("\",backing=\"", f);
			put_label(f, st->backing);
			fprintf(f, "\"} %" PRIu64 "\n", v);
		}
	}
	if (pa->g) {
		const struct hg_status_global *g = pa->g;
		char buf[1024];

		fprintf(f, "# HELP hashgate_database_readable 1 when `hashgate status` could read the "
			   "hash database.\n# TYPE hashgate_database_readable gauge\n"
			   "hashgate_database_readable %d\n", g->db_readable);
		if (g->audit_ok >= 0)
			fprintf(f, "# HELP hashgate_audit_log_appendable 1 when the audit log's last "
				   "line is a record (appends work).\n"
				   "# TYPE hashgate_audit_log_appendable gauge\n"
				   "hashgate_audit_log_appendable %d\n", g->audit_ok);
		if (g->nfeeds)
			fprintf(f, "# HELP hashgate_feed_last_success_seconds Unix time of the feed's "
				   "last good fetch (0: never).\n"
				   "# TYPE hashgate_feed_last_success_seconds gauge\n");
		for (size_t i = 0; i < g->nfeeds; i++)
			fprintf(f, "hashgate_feed_last_success_seconds{feed=\"%s\"} %" PRId64 "\n",
				g->feeds[i].name, g->feeds[i].last_ok);
		if (g->nfeeds)
			fprintf(f, "# HELP hashgate_feed_stale 1 when the feed had no good fetch "
				   "within its stale_after.\n# TYPE hashgate_feed_stale gauge\n");
		for (size_t i = 0; i < g->nfeeds; i++)
			fprintf(f, "hashgate_feed_stale{feed=\"%s\"} %d\n", g->feeds[i].name,
				g->feeds[i].stale);
		if (g->nfeeds)
			fprintf(f, "# HELP hashgate_feed_failures Consecutive failed updates of the "
				   "feed.\n# TYPE hashgate_feed_failures gauge\n");
		for (size_t i = 0; i < g->nfeeds; i++)
			fprintf(f, "hashgate_feed_failures{feed=\"%s\"} %" PRId64 "\n",
				g->feeds[i].name, g->feeds[i].failures);
		fprintf(f, "# HELP hashgate_problems Problems `hashgate status` reports for the "
			   "instance (0 = healthy).\n# TYPE hashgate_problems gauge\n");
		for (size_t i = 0; i < pa->n; i++) {
			int np = status_problems(&pa->st[i], g->now,
						 g->db_readable ? g->db_generation : 0,
						 g->db_changed, buf, sizeof(buf));

			fputs("hashgate_problems{mountpoint=\"", f);
			put_label(f, pa->st[i].mountpoint);
			fputs("\",backing=\"", f);
			put_label(f, pa->st[i].backing);
			fprintf(f, "\"} %d\n", np);
		}
	}
	return ferror(f) ? -EIO : 0;
}

int status_write_prometheus(const char *path, const struct hg_status *st, size_t n)
{
	struct prom_arg pa = { st, n, NULL };

	return write_atomic(path, fill_prom, &pa);
}

int status_write_prometheus_global(const char *path, const struct hg_status *st, size_t n,
				   const struct hg_status_global *g)
{
	struct prom_arg pa = { st, n, g };

	return write_atomic(path, fill_prom, &pa);
}

int status_problems(const struct hg_status *st, int64_t now, uint64_t dbgen, int64_t db_changed,
		    char *buf, size_t len)
{
	size_t o = 0;
	int n = 0;

#define ADD(...) do { \
		int w_ = snprintf(buf + o, o < len ? len - o : 0, "%s", n++ ? "; " : ""); \
		o += w_ > 0 ? (size_t)w_ : 0; \
		w_ = snprintf(buf + o, o < len ? len - o : 0, __VA_ARGS__); \
		o += w_ > 0 ? (size_t)w_ : 0; \
	} while (0)
	if (len)
		buf[0] = '\0';
	if (now - st->updated > STATUS_STALE_SECONDS)
		ADD("status not updated for %" PRId64 " s (daemon hung?)", now - st->updated);
	if (st->reload_failing)
		ADD("database reload failing (matching with generation %" PRIu64 ")",
		    st->generation);
	else if (dbgen && st->generation != dbgen && st->updated > db_changed + 10)
		ADD("database generation %" PRIu64 " is stale (current %" PRIu64 ")",
		    st->generation, dbgen);
	if (st->config_failed)
		ADD("last configuration reload (SIGHUP) refused");
	if (st->audit_errors)
		ADD("%" PRIu64 " verdict record%s not written to the audit log", st->audit_errors,
		    st->audit_errors == 1 ? "" : "s");
	if (st->quarantine_errors)
		ADD("%" PRIu64 " match%s not stored by the quarantine", st->quarantine_errors,
		    st->quarantine_errors == 1 ? "" : "es");
#undef ADD
	if (len && o >= len)
		buf[len - 1] = '\0';
	return n;
}
