/*
 * main.c - hashgatefs start-up, options, signals and the background thread.
 *
 * Usage: hashgatefs [-f] [-d] [-s] [-o OPTIONS] BACKING_DIR MOUNTPOINT
 * (also what mount.fuse3 runs for `mount -t fuse.hashgatefs` and fstab entries).
 * Options: every hashgate.conf key (db=, quarantine=, on_match=, on_error=, scan_max_size=,
 * pdq=, pdq_threshold=, pdq_min_quality=, ...), config=PATH, and daemon-only ones:
 * scan=on|off (off: stage and publish without hashing, the benchmark baseline),
 * writeback=off (=on is refused, see below), splice=on|off (move written data
 * from /dev/fuse with splice, default off: ops.c hg_init), timeout=SECONDS (entry/attr
 * cache, default 1),
 * staging=auto|tmpfile|named (how uploads are staged, staging.c; auto: O_TMPFILE where the
 * backing filesystem has it, else named files in the root-only staging dir), handles=on|off
 * (off: reopen inodes by parent and name even where the backing fs has file handles, as on
 * filesystems without; for tests),
 * xattr=on|off (off: no extended attributes through the mount, see ops.c),
 * readdirplus=auto|on|off (attributes with listings, see ops.c hg_init),
 * loop=libfuse|sticky (libfuse, the default: fuse_session_loop_mt, also used with clone_fd;
 * sticky: loop.c's pool, which serves one client's sequential requests on one thread: it
 * measured faster on a loaded machine and slower on an idle one, README; -s serves everything
 * on one thread).
 * timeout stays 1 s by default: hosters also change the backing dir directly, and the kernel
 * shows a removed file or an old mode that long (tests/mount/18); a longer one bought
 * nothing in creates or untar (the same requests reach the daemon: README, issue 20).
 * All other options go to FUSE; default_permissions is always added.
 *
 * The daemon refuses to start without a readable database, a usable quarantine store and
 * audit log: it never runs in a mode where a match could be neither stored nor recorded.
 * The open files limit is raised to its hard limit at start; per-uid limits and the fd budget
 * (fd_reserve, uid_max_*) are in limits.c.
 * SIGHUP re-reads the configuration (file, then the -o options again) and swaps it in; a bad
 * file keeps the old one.  SIGINT/SIGTERM unmount cleanly.  A background thread refreshes the
 * matcher every second (lookups keep using the old snapshot meanwhile) and writes the status
 * file every few seconds.
 */
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fs/hgfs.h"
#include "fs/loop.h"
#include "hashdb/audit.h"
#include "hashdb/hglog.h"
#include "hashdb/qstore.h"

struct hgfs hgfs;

struct fscfg *cfg_get(void)
{
	struct fscfg *c;

	pthread_mutex_lock(&hgfs.cfg_lock);
	c = hgfs.cfg;
	atomic_fetch_add(&c->refs, 1);
	pthread_mutex_unlock(&hgfs.cfg_lock);
	return c;
}

void cfg_put(struct fscfg *c)
{
	if (atomic_fetch_sub(&c->refs, 1) == 1) {
		config_release(&c->c);
		free(c);
	}
}

/* For a hash in several lists: the list whose category the current config acts on hardest. */
static int rank_by_action(const char *category, void *arg)
{
	struct fscfg *c = cfg_get();
	int r = config_action_rank(&c->c, category);

	cfg_put(c);
	return r;
}

void stat_add(uint64_t *field, uint64_t n)
{
	pthread_mutex_lock(&hgfs.st_lock);
	*field += n;
	pthread_mutex_unlock(&hgfs.st_lock);
}

void stat_set(uint64_t *field, uint64_t v)
{
	pthread_mutex_lock(&hgfs.st_lock);
	*field = v;
	pthread_mutex_unlock(&hgfs.st_lock);
}

static void usage(const char *prog)
{
	fprintf(stderr,
		"usage: %s [-f] [-d] [-s] [-o OPTIONS] BACKING_DIR MOUNTPOINT\n"
		"  -f            stay in the foreground, log to stderr\n"
		"  -o config=PATH, db=PATH, quarantine=DIR, on_match=quarantine|block,\n"
		"     on_error=deny|allow, pdq=on|off, pdq_threshold=N,\n"
		"     pdq_min_quality=N, scan=on|off, writeback=off, splice=on|off,\n"
		"     timeout=SECONDS, staging=auto|tmpfile|named, handles=on|off,\n"
		"     xattr=on|off, readdirplus=auto|on|off, loop=libfuse|sticky,\n"
		"     max_threads=N,\n"
		"     and FUSE options (allow_other, ...)\n", prog);
}

static int parse_onoff(const char *key, const char *v, bool *out)
{
	if (config_parse_bool(v, out) < 0) {
		fprintf(stderr, "hashgatefs: option '%s': expected on or off, got '%s'\n", key, v);
		return -1;
	}
	return 0;
}

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	const char *eq;
	char k[64];
	size_t kl;
	char **kv;

	if (key == FUSE_OPT_KEY_NONOPT) {
		if (!hgfs.backing) {
			char *rp = realpath(arg, NULL);

			if (!rp) {
				fprintf(stderr, "hashgatefs: backing directory '%s': %s\n", arg,
					strerror(errno));
				return -1;
			}
			hgfs.backing = rp;
			return 0;
		}
		return 1;
	}
	if (key != FUSE_OPT_KEY_OPT || arg[0] == '-')
		return 1;
	/*
	 * mount.fuse (mount(8), fstab) adds "dev,suid" for root to mimic mount(8)'s defaults;
	 * customer storage gets neither, so a mount through fstab is nosuid,nodev like a direct
	 * start (libfuse's default).
	 */
	if (strcmp(arg, "suid") == 0 || strcmp(arg, "dev") == 0)
		return 0;
	eq = strchr(arg, '=');
	kl = eq ? (size_t)(eq - arg) : strlen(arg);
	if (kl >= sizeof(k))
		return 1;
	memcpy(k, arg, kl);
	k[kl] = 0;
	if (strcmp(k, "config") == 0 && eq) {
		free(hgfs.config_path);
		hgfs.config_path = strdup(eq + 1);
		return 0;
	}
	if (strcmp(k, "scan") == 0 && eq)
		return parse_onoff(k, eq + 1, &hgfs.scan) < 0 ? -1 : 0;
	if (strcmp(k, "writeback") == 0 && eq) {
		if (parse_onoff(k, eq + 1, &hgfs.writeback) < 0)
			return -1;
		/*
		 * The kernel's writeback cache keeps one page cache per inode and writes dirty
		 * pages back through any open handle, while every O_TRUNC open stages its own
		 * upload: one writer's bytes can land in another's upload, and a refused
		 * overwrite stayed readable from the cache (tests/mount/20 and 50 fail with it).
		 */
		if (hgfs.writeback) {
			fprintf(stderr, "hashgatefs: option 'writeback=on' is not supported: the "
				"kernel's writeback cache would mix concurrent uploads of one file "
				"and keep refused content readable\n");
			return -1;
		}
		return 0;
	}
	if (strcmp(k, "loop") == 0 && eq) {
		if (strcmp(eq + 1, "sticky") == 0 || strcmp(eq + 1, "libfuse") == 0) {
			hgfs.sticky_loop = eq[1] == 's';
			return 0;
		}
		fprintf(stderr, "hashgatefs: option 'loop': expected sticky or libfuse, got '%s'\n",
			eq + 1);
		return -1;
	}
	if (strcmp(k, "handles") == 0 && eq) {
		bool on;

		if (parse_onoff(k, eq + 1, &on) < 0)
			return -1;
		hgfs.handles_off = !on;
		return 0;
	}
	if (strcmp(k, "staging") == 0 && eq) {
		if (strcmp(eq + 1, "auto") == 0)
			hgfs.staging_opt = STAGING_AUTO;
		else if (strcmp(eq + 1, "tmpfile") == 0)
			hgfs.staging_opt = STAGING_TMPFILE;
		else if (strcmp(eq + 1, "named") == 0)
			hgfs.staging_opt = STAGING_NAMED;
		else {
			fprintf(stderr, "hashgatefs: option 'staging': expected auto, tmpfile or "
				"named, got '%s'\n", eq + 1);
			return -1;
		}
		return 0;
	}
	if (strcmp(k, "splice") == 0 && eq)
		return parse_onoff(k, eq + 1, &hgfs.splice_read) < 0 ? -1 : 0;
	if (strcmp(k, "xattr") == 0 && eq)
		return parse_onoff(k, eq + 1, &hgfs.xattr) < 0 ? -1 : 0;
	if (strcmp(k, "readdirplus") == 0 && eq) {
		if (strcmp(eq + 1, "auto") == 0)
			hgfs.rdplus = RDPLUS_AUTO;
		else if (strcmp(eq + 1, "on") == 0)
			hgfs.rdplus = RDPLUS_ON;
		else if (strcmp(eq + 1, "off") == 0)
			hgfs.rdplus = RDPLUS_OFF;
		else {
			fprintf(stderr, "hashgatefs: option 'readdirplus': expected auto, on or "
				"off, got '%s'\n", eq + 1);
			return -1;
		}
		return 0;
	}
	if (strcmp(k, "timeout") == 0 && eq) {
		char *end;

		hgfs.timeout = strtod(eq + 1, &end);
		if (*end || hgfs.timeout < 0) {
			fprintf(stderr, "hashgatefs: option 'timeout': bad value '%s'\n", eq + 1);
			return -1;
		}
		return 0;
	}
	if (!config_is_key(k))
		return 1;
	if (!eq) {
		fprintf(stderr, "hashgatefs: option '%s' needs a value (%s=...)\n", k, k);
		return -1;
	}
	kv = realloc(hgfs.optkv, (hgfs.noptkv + 1) * sizeof(*kv));
	if (!kv)
		return -1;
	hgfs.optkv = kv;
	kv[hgfs.noptkv] = strdup(arg);
	if (!kv[hgfs.noptkv])
		return -1;
	hgfs.noptkv++;
	return 0;
}

/* Build a configuration: file (explicit or default), then the -o options on top. */
static int config_build(struct fscfg **out, char *err, size_t errlen)
{
	struct fscfg *c = calloc(1, sizeof(*c));
	const char *path;
	size_t i;
	int ret;

	if (!c)
		return -ENOMEM;
	atomic_init(&c->refs, 1);
	ret = config_init(&c->c);
	if (ret < 0) {
		snprintf(err, errlen, "config defaults: %s", strerror(-ret));
		free(c);
		return ret;
	}
	path = hgfs.config_path ? hgfs.config_path : config_default_path();
	ret = config_load(&c->c, path, err, errlen);
	if (ret == -ENOENT && !hgfs.config_path && !config_path_from_env())
		ret = 0;	/* no system config: defaults and options */
	else if (ret == -ENOENT)
		snprintf(err, errlen, "config file '%s': %s", path, strerror(-ret));
	for (i = 0; ret == 0 && i < hgfs.noptkv; i++) {
		char *kv = strdup(hgfs.optkv[i]), *eq;

		if (!kv) {
			ret = -ENOMEM;
			break;
		}
		eq = strchr(kv, '=');
		*eq = 0;
		ret = config_set(&c->c, kv, eq + 1, err, errlen);
		free(kv);
	}
	if (ret < 0) {
		config_release(&c->c);
		free(c);
		return ret;
	}
	*out = c;
	return 0;
}

static void reload_config(void)
{
	struct fscfg *n, *old;
	char err[512] = "";
	int ret;

	ret = config_build(&n, err, sizeof(err));
	if (ret < 0) {
		hglog(LOG_ERR, "SIGHUP: configuration not reloaded: %s", err);
		stat_set(&hgfs.st.config_failed, 1);
		return;
	}
	stat_set(&hgfs.st.config_failed, 0);
	pthread_mutex_lock(&hgfs.cfg_lock);
	old = hgfs.cfg;
	if (strcmp(old->c.db, n->c.db) != 0 || strcmp(old->c.quarantine, n->c.quarantine) != 0)
		hglog(LOG_WARNING, "SIGHUP: db/quarantine path changes need a remount; "
		      "keeping the open ones");
	hgfs.cfg = n;
	pthread_mutex_unlock(&hgfs.cfg_lock);
	hglog_set_level(n->c.log_level);
	limits_configure(&n->c);
	hglog(LOG_NOTICE, "configuration reloaded");
	cfg_put(old);
}

static void on_hup(int sig)
{
	(void)sig;
	atomic_store(&hgfs.hup, true);
}

static void status_fill(struct hg_status *st)
{
	struct matcher *m = matcher_slot_get(&hgfs.slot);

	pthread_mutex_lock(&hgfs.st_lock);
	*st = hgfs.st;
	pthread_mutex_unlock(&hgfs.st_lock);
	st->updated = time(NULL);
	if (m) {
		st->generation = matcher_generation(m);
		matcher_put(m);
	}
}

/* The database generation of the snapshot in use, for log lines. */
static uint64_t slot_generation(void)
{
	struct matcher *m = matcher_slot_get(&hgfs.slot);
	uint64_t g = matcher_generation(m);

	matcher_put(m);
	return g;
}

static void *bg_main(void *arg)
{
	struct timespec ts = { 1, 0 };
	unsigned tick = 0;
	bool was_bad = false;
	char err[512];
	int ret;

	(void)arg;
	while (!atomic_load(&hgfs.stop)) {
		nanosleep(&ts, NULL);
		if (atomic_exchange(&hgfs.hup, false))
			reload_config();
		err[0] = 0;
		ret = matcher_slot_refresh(&hgfs.slot, err, sizeof(err));
		if (ret < 0 && !was_bad)
			hglog(LOG_ERR, "database reload failed (keeping generation in use): %s",
			      err);
		else if (ret == 1)
			hglog(LOG_NOTICE, "database generation %llu loaded",
			      (unsigned long long)slot_generation());
		was_bad = ret < 0;
		stat_set(&hgfs.st.reload_failing, was_bad);
		if (++tick % 5 == 0) {
			struct fscfg *c = cfg_get();
			struct hg_status st;

			status_fill(&st);
			mkdir(c->c.state_dir, 0755);
			ret = status_write(c->c.state_dir, &st);
			if (ret < 0 && tick == 5)
				hglog(LOG_WARNING, "status file in %s: %s", c->c.state_dir,
				      strerror(-ret));
			if (c->c.prometheus_textfile)
				status_write_prometheus(c->c.prometheus_textfile, &st, 1);
			cfg_put(c);
		}
	}
	return NULL;
}

/* mkdir -p of the directory holding path (root-only, for the daemon's own files). */
static void mkdir_parent(const char *path)
{
	char buf[PATH_MAX], *p;

	if (strlen(path) >= sizeof(buf))
		return;
	strcpy(buf, path);
	p = strrchr(buf, '/');
	if (!p || p == buf)
		return;
	*p = 0;
	for (p = buf + 1; *p; p++) {
		if (*p == '/') {
			*p = 0;
			mkdir(buf, 0755);
			*p = '/';
		}
	}
	mkdir(buf, 0700);
}

static int open_backing(void)
{
	struct stat st;

	hgfs.root_fd = open(hgfs.backing, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (hgfs.root_fd < 0 || fstat(hgfs.root_fd, &st) < 0) {
		fprintf(stderr, "hashgatefs: backing directory '%s': %s\n", hgfs.backing,
			strerror(errno));
		return -1;
	}
	hgfs.root_dev = st.st_dev;
	hgfs.root.ino = st.st_ino;
	hgfs.root.kino = st.st_ino;
	pthread_mutex_init(&hgfs.root.lock, NULL);
	pthread_mutex_init(&hgfs.root.jlock, NULL);
	pthread_rwlock_init(&hgfs.root.wrl, NULL);
	hgfs.root.dev = st.st_dev;
	hgfs.root.ino = st.st_ino;
	hgfs.root.kino = st.st_ino;
	hgfs.root.type = S_IFDIR;
	hgfs.root.fd = hgfs.root_fd;
	hgfs.root.ofd = -1;
	hgfs.root.nlookup = 2;
	return 0;
}

/* Hide the quarantine directory if it lies inside the backing tree. */
static void hide_quarantine(const char *qdir)
{
	char *rq = realpath(qdir, NULL);
	size_t bl = strlen(hgfs.backing);
	struct stat st;

	if (!rq)
		return;
	if (strncmp(rq, hgfs.backing, bl) == 0 && (rq[bl] == '/' || rq[bl] == 0) &&
	    stat(rq, &st) == 0) {
		char *slash = strrchr(rq, '/');

		hgfs.qdir_dev = st.st_dev;
		hgfs.qdir_ino = st.st_ino;
		hgfs.qdir_hidden = true;
		if (slash && slash != rq) {
			*slash = 0;
			if (stat(rq, &st) == 0) {
				hgfs.qparent_dev = st.st_dev;
				hgfs.qparent_ino = st.st_ino;
				hgfs.qname = strdup(slash + 1);
			}
		}
	}
	free(rq);
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts opts;
	struct fuse_loop_config lcfg;
	struct fscfg *cfg = NULL;
	char err[512] = "", fsname[PATH_MAX + 16];
	struct sigaction sa;
	int ret = 1;

	umask(0);	/* modes come from the kernel with the caller's umask applied */
	hgfs.scan = true;
	hgfs.splice_read = false;	/* measured: costs small files more than it saves (ops.c) */
	hgfs.timeout = 1.0;
	hgfs.xattr = true;
	hgfs.root_fd = hgfs.staging_fd = -1;
	pthread_mutex_init(&hgfs.mnt_lock, NULL);
	pthread_mutex_init(&hgfs.cfg_lock, NULL);
	pthread_mutex_init(&hgfs.st_lock, NULL);
	hglog_init("hashgatefs", 1, LOG_INFO);

	if (hash_impl_env_check() < 0) {
		fprintf(stderr, "hashgatefs: HASHGATE_HASH_IMPL=%s: expected auto or evp\n",
			getenv("HASHGATE_HASH_IMPL"));
		goto out_args;
	}
	if (fuse_opt_parse(&args, NULL, NULL, opt_proc) < 0)
		goto out_args;
	if (fuse_parse_cmdline(&args, &opts) != 0)
		goto out_args;
	if (opts.show_version) {
		printf("hashgatefs %s (libfuse %s)\n", HASHGATE_VERSION, fuse_pkgversion());
		ret = 0;
		goto out_opts;
	}
	if (opts.show_help || !hgfs.backing || !opts.mountpoint) {
		usage(argv[0]);
		if (opts.show_help) {
			fuse_lowlevel_help();
			ret = 0;
		}
		goto out_opts;
	}
	hgfs.mountpoint = opts.mountpoint;
	hgfs.mnt_real = realpath(opts.mountpoint, NULL);
	hgfs.mnt_len = hgfs.mnt_real ? strlen(hgfs.mnt_real) : 0;
	hgfs.foreground = opts.foreground;
	hgfs.debug = opts.debug;

	if (config_build(&cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "hashgatefs: %s\n", err);
		goto out_opts;
	}
	hgfs.cfg = cfg;
	hglog_init("hashgatefs", 1, cfg->c.log_level);
	/* Before anything is opened: the tenants' budget is this limit minus fd_reserve. */
	limits_init();
	limits_configure(&cfg->c);

	if (open_backing() < 0)
		goto out_cfg;
	if (inode_table_init() < 0)
		goto out_cfg;
	matcher_set_rank(rank_by_action, NULL);
	if (matcher_slot_init(&hgfs.slot, cfg->c.db, err, sizeof(err)) < 0) {
		fprintf(stderr, "hashgatefs: cannot use hash database '%s': %s\n", cfg->c.db, err);
		goto out_cfg;
	}
	if (qstore_open(&hgfs.qstore, cfg->c.quarantine, cfg->c.quarantine_key, QSTORE_CREATE,
			err, sizeof(err)) < 0) {
		fprintf(stderr, "hashgatefs: cannot open quarantine '%s': %s\n",
			cfg->c.quarantine, err);
		goto out_slot;
	}
	hide_quarantine(cfg->c.quarantine);
	mkdir_parent(cfg->c.audit_log);
	if (audit_open(&hgfs.audit, cfg->c.audit_log, err, sizeof(err)) < 0) {
		fprintf(stderr, "hashgatefs: cannot open audit log '%s': %s\n", cfg->c.audit_log,
			err);
		goto out_q;
	}
	ret = staging_init();
	if (ret < 0) {
		fprintf(stderr, "hashgatefs: staging area %s/%s: %s\n", hgfs.backing,
			HGFS_STAGING_NAME, strerror(-ret));
		ret = 1;
		goto out_audit;
	}
	ret = 1;

	/* Permissions are the kernel's job; without this any user could read anything. */
	fuse_opt_add_arg(&args, "-odefault_permissions");
	snprintf(fsname, sizeof(fsname), "-ofsname=%s", hgfs.backing);
	fuse_opt_add_arg(&args, fsname);
	if (!opts.nodefault_subtype)
		fuse_opt_add_arg(&args, "-osubtype=hashgatefs");

	hgfs.se = fuse_session_new(&args, &hgfs_ops, sizeof(hgfs_ops), &hgfs);
	if (!hgfs.se)
		goto out_audit;
	if (fuse_set_signal_handlers(hgfs.se) != 0)
		goto out_se;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_hup;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGHUP, &sa, NULL);
	if (fuse_session_mount(hgfs.se, opts.mountpoint) != 0)
		goto out_sig;
	fuse_daemonize(opts.foreground);
	if (!opts.foreground)
		hglog_init("hashgatefs", 0, cfg->c.log_level);
	hgfs.st.pid = getpid();
	snprintf(hgfs.st.backing, sizeof(hgfs.st.backing), "%s", hgfs.backing);
	snprintf(hgfs.st.mountpoint, sizeof(hgfs.st.mountpoint), "%s", opts.mountpoint);
	snprintf(hgfs.st.staging, sizeof(hgfs.st.staging), "%s", staging_mode_name(hgfs.staging));
	snprintf(hgfs.st.backing_fs, sizeof(hgfs.st.backing_fs), "%s", hgfs.fstype);
	hgfs.st.file_handles = hgfs.handles;
	hgfs.st.handles_off = hgfs.handles_off;
	hgfs.st.started = time(NULL);
	if (hook_start() < 0)
		hglog(LOG_ERR, "on_match_exec: cannot start its thread; hooks will not run");
	if (hashq_start() < 0)
		hglog(LOG_WARNING, "no background hasher thread: hashing at close instead");
	{
		long ncpu = sysconf(_SC_NPROCESSORS_ONLN);

		if (vq_start(ncpu > 2 ? (unsigned)ncpu : 2) < 0)
			hglog(LOG_WARNING, "no verdict workers: verdicts run on the FUSE threads");
	}
	if (pthread_create(&hgfs.bg_thread, NULL, bg_main, NULL) != 0) {
		hglog(LOG_ERR, "cannot start background thread");
		goto out_unmount;
	}
	hglog(LOG_NOTICE, "mounted %s on %s (scan=%s, generation %llu, hashing %s)", hgfs.backing,
	      opts.mountpoint, hgfs.scan ? "on" : "off",
	      (unsigned long long)slot_generation(), hash_impl_name());

	if (opts.singlethread) {
		ret = fuse_session_loop(hgfs.se);
	} else if (hgfs.sticky_loop && !opts.clone_fd) {
		ret = loop_run(hgfs.se, opts.max_threads);
	} else if (!opts.clone_fd && opts.max_idle_threads == UINT_MAX) {
		/*
		 * libfuse 3.14's defaults: at most 10 workers, idle ones kept rather than
		 * destroyed and re-created.  Its "unset" idle count (UINT_MAX) cannot be passed
		 * through the 3.4 loop config without the "Ignoring invalid max threads value"
		 * complaint at every start, so no config at all.
		 */
		ret = fuse_session_loop_mt(hgfs.se, NULL);
	} else {
		lcfg.clone_fd = opts.clone_fd;
		lcfg.max_idle_threads = opts.max_idle_threads == UINT_MAX ? 10 :
					opts.max_idle_threads;
		ret = fuse_session_loop_mt(hgfs.se, &lcfg);
	}
	ret = ret ? 1 : 0;
	atomic_store(&hgfs.stop, true);
	pthread_join(hgfs.bg_thread, NULL);
	vq_stop();
	hashq_shutdown();
	hook_stop();
	hglog(LOG_NOTICE, "unmounting %s", opts.mountpoint);
	{
		struct fscfg *c = cfg_get();

		status_remove(c->c.state_dir, getpid());
		cfg_put(c);
	}
out_unmount:
	fuse_session_unmount(hgfs.se);
out_sig:
	fuse_remove_signal_handlers(hgfs.se);
out_se:
	fuse_session_destroy(hgfs.se);
out_audit:
	audit_close(hgfs.audit);
out_q:
	qstore_close(hgfs.qstore);
out_slot:
	matcher_slot_release(&hgfs.slot);
out_cfg:
	if (hgfs.cfg)
		cfg_put(hgfs.cfg);
out_opts:
	free(opts.mountpoint);
out_args:
	fuse_opt_free_args(&args);
	return ret;
}
