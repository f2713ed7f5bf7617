/*
 * test-config.c - hashgate.conf parsing, option errors, and log escaping.
 *
 * What users rely on: every documented key parses, a bad line is reported as FILE:LINE with
 * the reason and changes nothing, and untrusted file names can never forge a log line.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "hashdb/config.h"
#include "hashdb/hglog.h"
#include "tests/unit/tap.h"

/*
 * strdup with a fault switch: the library's strdup calls resolve to this one (the test binary
 * defines it), so a test can make the Nth copy fail with ENOMEM.  0 = never fail.
 */
static int strdup_fail_at, strdup_calls;

char *strdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *d;

	if (strdup_fail_at && ++strdup_calls == strdup_fail_at) {
		errno = ENOMEM;
		return NULL;
	}
	d = malloc(n);
	if (d)
		memcpy(d, s, n);
	return d;
}

static char *write_tmp(const char *text)
{
	static char path[64];
	FILE *f;
	int fd;

	strcpy(path, "/tmp/hg-config-XXXXXX");
	fd = mkstemp(path);
	if (fd < 0)
		return NULL;
	f = fdopen(fd, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

static void test_file(void)
{
	struct hg_config c;
	char err[512];
	char *p;
	int r;

	config_init(&c);
	p = write_tmp("# comment\n\n"
		      "db = /srv/h.db\n"
		      "quarantine=\"/srv/q dir\"\n"
		      "on_match = block\n"
		      "on_match.other = log   # report only\n"
		      "on_error = allow\n"
		      "on_error.pdq-only = deny\n"
		      "scan_max_size = 1.5G\n"
		      "pdq = off\n"
		      "pdq_threshold = 20\n"
		      "pdq_min_quality=70\n"
		      "retention = 90d\n"
		      "log_level = debug\n"
		      "prometheus_textfile = \n");
	r = config_load(&c, p, err, sizeof(err));
	is_int(r, 0, "a valid file loads");
	is_str(c.db, "/srv/h.db", "db path");
	is_str(c.quarantine, "/srv/q dir", "quoted value keeps its spaces");
	is_int(c.on_match, ACTION_BLOCK, "on_match = block");
	is_int(config_action_for(&c, "other"), ACTION_LOG, "per-category action, inline comment cut");
	is_int(config_action_for(&c, "baseline"), ACTION_BLOCK, "unlisted category uses on_match");
	is_int(c.on_error, ON_ERROR_ALLOW, "on_error = allow");
	is_int(config_on_error_for(&c, "pdq-only"), ON_ERROR_DENY, "on_error.pdq-only = deny");
	is_int(config_on_error_for(&c, "other"), ON_ERROR_ALLOW,
	       "a category without on_error.CATEGORY uses on_error");
	is_int(c.scan_max_size, 1610612736ull, "1.5G is 1.5 GiB");
	is_int(c.pdq, 0, "pdq = off");
	is_int(c.pdq_threshold, 20, "pdq_threshold");
	is_int(c.pdq_min_quality, 70, "pdq_min_quality");
	is_int(c.retention, 90 * 86400, "retention 90d");
	is_int(c.log_level, LOG_DEBUG, "log_level debug");
	ok(c.prometheus_textfile == NULL, "empty optional path disables it");
	is_str(c.source, p, "source remembers the file");
	unlink(p);

	/* A bad line deep in a file: error names file and line, nothing changes. */
	p = write_tmp("db = /other.db\npdq_threshold = 300\n");
	r = config_load(&c, p, err, sizeof(err));
	is_int(r, -EINVAL, "out-of-range value is rejected");
	{
		char want[128];

		snprintf(want, sizeof(want), "%s:2: pdq_threshold", p);
		ok(strncmp(err, want, strlen(want)) == 0, "error names file:line and key (%s)", err);
	}
	is_str(c.db, "/srv/h.db", "failed load changed nothing (db from earlier line kept)");
	unlink(p);

	p = write_tmp("bogus_key = 1\n");
	r = config_load(&c, p, err, sizeof(err));
	is_int(r, -EINVAL, "unknown key is an error");
	ok(strstr(err, ":1: unknown key 'bogus_key'") != NULL, "unknown key message (%s)", err);
	unlink(p);

	p = write_tmp("db /no/equals\n");
	r = config_load(&c, p, err, sizeof(err));
	ok(r == -EINVAL && strstr(err, ":1: expected 'key = value'"), "missing '=' (%s)", err);
	unlink(p);

	p = write_tmp("db = \"/unterminated\n");
	r = config_load(&c, p, err, sizeof(err));
	ok(r == -EINVAL && strstr(err, "unterminated"), "unterminated quote (%s)", err);
	unlink(p);

	r = config_load(&c, "/nonexistent/hashgate.conf", err, sizeof(err));
	is_int(r, -ENOENT, "missing file is -ENOENT");
	config_release(&c);
}

static void test_set(void)
{
	struct hg_config c;
	char err[256];
	uint64_t sz;
	int64_t d;

	config_init(&c);
	is_int(config_set(&c, "on_error", "maybe", err, sizeof(err)), -EINVAL, "bad on_error");
	ok(strstr(err, "option 'on_error'") && strstr(err, "deny or allow"),
	   "option error names the option and the choices (%s)", err);
	is_int(c.on_error, ON_ERROR_DENY, "default on_error is deny (fail closed)");
	is_int(config_set(&c, "nope", "1", err, sizeof(err)), -ENOENT, "unknown option");
	is_int(config_set(&c, "db", "", err, sizeof(err)), -EINVAL, "empty db path refused");
	is_int(config_set(&c, "on_match.bad/cat", "block", err, sizeof(err)), -EINVAL,
	       "category name with '/' refused");
	is_int(config_set(&c, "on_error.x", "block", err, sizeof(err)), -EINVAL,
	       "on_error.CATEGORY takes deny or allow only");
	ok(strstr(err, "on_error.x") && strstr(err, "deny or allow"),
	   "... and the error names the option and the choices (%s)", err);
	is_int(config_set(&c, "on_error.bad/cat", "deny", err, sizeof(err)), -EINVAL,
	       "on_error category name with '/' refused");
	ok(config_is_key("pdq_threshold") && config_is_key("on_match.illegal") &&
	   config_is_key("on_error.illegal") && !config_is_key("on_error.") &&
	   !config_is_key("on_match.") && !config_is_key("allow_other"),
	   "config_is_key knows hashgate keys only");

	ok(config_parse_size("4096", &sz) == 0 && sz == 4096, "size 4096");
	ok(config_parse_size("64M", &sz) == 0 && sz == 64ull << 20, "size 64M");
	ok(config_parse_size("2GiB", &sz) == 0 && sz == 2ull << 30, "size 2GiB");
	ok(config_parse_size("-1", &sz) < 0 && config_parse_size("12Q", &sz) < 0 &&
	   config_parse_size("", &sz) < 0 && config_parse_size("1.5", &sz) < 0,
	   "bad sizes refused");
	ok(config_parse_size("inf", &sz) < 0 && config_parse_size("nan", &sz) < 0 &&
	   config_parse_size("1e123", &sz) < 0 && config_parse_size("20000000T", &sz) < 0,
	   "infinite, NaN and out-of-range sizes refused (no undefined cast)");
	ok(config_parse_duration("12h", &d) == 0 && d == 43200, "duration 12h");
	ok(config_parse_duration("45", &d) == 0 && d == 45, "bare duration is seconds");
	ok(config_parse_duration("forever", &d) == 0 && d == 0, "forever is 0 (keep)");
	ok(config_parse_duration("3x", &d) < 0 && config_parse_duration("-3d", &d) < 0,
	   "bad durations refused");
	config_release(&c);
}

/* on_match_exec: the default hook, per-category overrides, empty = none, absolute only. */
static void test_exec(void)
{
	struct hg_config c;
	char err[512], *p;
	int r;

	config_init(&c);
	ok(!config_exec_for(&c, "illegal"), "no hook by default");
	is_int((int)c.on_match_exec_timeout, 10, "hook timeout defaults to 10 s");
	is_int(c.on_match_exec_queue, 256, "hook queue defaults to 256");
	p = write_tmp("on_match_exec = /usr/local/bin/notify\n"
		      "on_match_exec.other =\n"
		      "on_match_exec.csam = /usr/local/bin/page-oncall\n"
		      "on_match_exec_user = nobody\n"
		      "on_match_exec_timeout = 30s\n"
		      "feeds_dir = /srv/feeds\n");
	r = config_load(&c, p, err, sizeof(err));
	is_int(r, 0, "hook keys load (%s)", r ? err : "ok");
	unlink(p);
	is_str(config_exec_for(&c, "illegal"), "/usr/local/bin/notify", "default hook");
	ok(!config_exec_for(&c, "other"), "empty per-category hook: none for that category");
	is_str(config_exec_for(&c, "csam"), "/usr/local/bin/page-oncall", "per-category hook");
	is_str(c.on_match_exec_user, "nobody", "hook user");
	is_int((int)c.on_match_exec_timeout, 30, "hook timeout");
	is_str(c.feeds_dir, "/srv/feeds", "feeds_dir");
	p = write_tmp("on_match_exec = notify.sh\n");
	r = config_load(&c, p, err, sizeof(err));
	ok(r == -EINVAL && strstr(err, ":1:") && strstr(err, "absolute path"),
	   "a relative hook path is refused with FILE:LINE (%s)", err);
	unlink(p);
	is_str(config_exec_for(&c, "illegal"), "/usr/local/bin/notify", "... and changes nothing");
	is_int(config_set(&c, "on_match_exec.x/y", "/bin/true", err, sizeof(err)), -EINVAL,
	       "category name with '/' refused for hooks");
	ok(config_is_key("on_match_exec.illegal") && config_is_key("on_match_exec"),
	   "config_is_key knows the hook keys");
	/* a failing load deep-copies and throws away: the overrides survive it */
	p = write_tmp("on_match_exec.new = /bin/true\nbogus = 1\n");
	ok(config_load(&c, p, err, sizeof(err)) < 0 &&
	   !strcmp(config_exec_for(&c, "new"), "/usr/local/bin/notify") &&
	   config_exec_for(&c, "csam"), "a failing load keeps the hooks as they were");
	unlink(p);
	config_release(&c);
}

static void test_escape(void)
{
	char buf[256];
	size_t n;

	hglog_escape(buf, sizeof(buf), "plain/path.jpg", 0);
	is_str(buf, "plain/path.jpg", "plain text unchanged");
	hglog_escape(buf, sizeof(buf), "a\nverdict=clean \"x\"\\", 0);
	is_str(buf, "a\\nverdict=clean \\\"x\\\"\\\\", "newline, quotes and backslash escaped");
	hglog_escape(buf, sizeof(buf), "bad\xff\x01name", 0);
	is_str(buf, "bad\\xff\\x01name", "invalid UTF-8 and control bytes as \\xNN");
	hglog_escape(buf, sizeof(buf), "bad\xff\x01", 1);
	is_str(buf, "bad\\udcff\\u0001", "JSON mode: surrogate escape and \\u00NN");
	hglog_escape(buf, sizeof(buf), "caf\xc3\xa9 \xe2\x82\xac", 0);
	is_str(buf, "caf\xc3\xa9 \xe2\x82\xac", "valid UTF-8 kept");
	hglog_escape(buf, sizeof(buf), "\xc0\xaf\xed\xa0\x80", 0);
	is_str(buf, "\\xc0\\xaf\\xed\\xa0\\x80", "overlong and surrogate encodings rejected");
	n = hglog_escape(buf, 8, "0123456789", 0);
	ok(n == 10 && strlen(buf) == 7, "truncation reported like snprintf");
}

/*
 * config_load works on a deep copy: whichever strdup of that copy fails, the load returns
 * -ENOMEM and the config is left as it was (before the fix a copy failing early freed strings
 * the copy still shared with the original: a double free).
 */
static void test_load_enomem(void)
{
	struct hg_config c;
	char err[512];
	char *p;
	int n, r, bad = 0, failed = 0;

	p = write_tmp("db = /tmp/other.db\non_match.csam = block\n");
	for (n = 1; n < 64; n++) {
		if (config_init(&c) < 0 || config_set(&c, "db", "/srv/keep.db", err, sizeof(err)) < 0 ||
		    config_set(&c, "on_match.old", "log", err, sizeof(err)) < 0 ||
		    config_set(&c, "on_match_exec.old", "/bin/true", err, sizeof(err)) < 0 ||
		    config_set(&c, "on_error.old", "allow", err, sizeof(err)) < 0) {
			bad++;
			break;
		}
		strdup_calls = 0;
		strdup_fail_at = n;
		r = config_load(&c, p, err, sizeof(err));
		strdup_fail_at = 0;
		if (r == 0) {
			config_release(&c);
			break;
		}
		failed++;
		if (r != -ENOMEM || strcmp(c.db, "/srv/keep.db") != 0 || c.ncat != 1 ||
		    strcmp(c.cat[0].category, "old") != 0 || c.ncat_exec != 1 ||
		    strcmp(c.cat_exec[0].path, "/bin/true") != 0 || c.ncat_err != 1) {
			diag("  strdup %d failing: %d (%s)", n, r, err);
			bad++;
		}
		config_release(&c);
	}
	ok(failed > 10 && !bad, "config_load out of memory at each of %d copies: -ENOMEM, config "
	   "unchanged", failed);
	unlink(p);
}

int main(void)
{
	test_file();
	test_set();
	test_exec();
	test_escape();
	test_load_enomem();
	return done_testing();
}
