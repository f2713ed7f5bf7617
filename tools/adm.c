/*
 * adm.c - helpers shared by the admin subcommands: actor names, auditing, --since parsing,
 * time and JSON formatting.  Each function stands alone; nothing here is cached.
 */
#include <errno.h>
#include <pwd.h>
#include <sched.h>
#include <sys/mount.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hashdb/audit.h"
#include "hashdb/hglog.h"
#include "tools/adm.h"

void adm_actor(char *buf, size_t len)
{
	struct passwd *pw = getpwuid(geteuid());
	const char *sudo = getenv("SUDO_USER");
	char esc[128];
	int n;

	n = snprintf(buf, len, "uid=%lu(%s)", (unsigned long)geteuid(), pw ? pw->pw_name : "?");
	if (sudo && *sudo && n > 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, " sudo_user=%s",
			 adm_json_escape(esc, sizeof(esc), sudo));
}

int adm_audit_check(struct cli *cli, const char *cmd)
{
	struct audit *a;
	uint64_t seq;
	char err[512];
	int r;

	r = audit_open(&a, cli->cfg.audit_log, err, sizeof(err));
	if (r < 0) {
		cli_error(cmd, "cannot write the audit log: %s", err);
		return r;
	}
	audit_close(a);
	/* A log whose last line is not a record refuses every append: refuse the action too. */
	r = audit_check_tail(cli->cfg.audit_log, &seq, err, sizeof(err));
	if (r < 0)
		cli_error(cmd, "cannot append to the audit log: %s; nothing was changed", err);
	return r;
}

int adm_audit(struct cli *cli, const char *cmd, const char *action, const char *fields_fmt, ...)
{
	char actor[256], err[512];
	char *fields = NULL;
	struct audit *a;
	va_list ap;
	int r;

	va_start(ap, fields_fmt);
	r = vasprintf(&fields, fields_fmt, ap);
	va_end(ap);
	if (r < 0)
		return -ENOMEM;
	adm_actor(actor, sizeof(actor));
	r = audit_open(&a, cli->cfg.audit_log, err, sizeof(err));
	if (r < 0) {
		cli_error(cmd, "cannot write the audit log: %s", err);
		goto out;
	}
	r = audit_append(a, actor, action, fields);
	if (r < 0)
		cli_error(cmd, "cannot append to the audit log %s: %s", cli->cfg.audit_log,
			  strerror(-r));
	audit_close(a);
out:
	free(fields);
	return r;
}

/* Length of the valid UTF-8 sequence at s, or 0. */
static int utf8_len(const unsigned char *s)
{
	int n, i;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4;
	else
		return 0;
	for (i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	return n;
}

char *adm_json_escape(char *dst, size_t len, const char *src)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t o = 0;

	if (!len)
		return dst;
	while (*s && o + 7 < len) {
		int u = utf8_len(s);

		if (*s == '"' || *s == '\\') {
			dst[o++] = '\\';
			dst[o++] = (char)*s++;
		} else if (*s < 0x20 || *s == 0x7f || u == 0) {
			o += (size_t)snprintf(dst + o, len - o, "\\u%04x", *s++);
		} else {
			while (u--)
				dst[o++] = (char)*s++;
		}
	}
	dst[o] = '\0';
	return dst;
}

void adm_json_print(FILE *f, const char *s)
{
	size_t len = 6 * strlen(s) + 8;
	char stackbuf[1024], *buf = len <= sizeof(stackbuf) ? stackbuf : malloc(len);

	if (!buf) {
		fputs("\"\"", f);
		return;
	}
	fputc('"', f);
	fputs(adm_json_escape(buf, len, s), f);
	fputc('"', f);
	if (buf != stackbuf)
		free(buf);
}

void adm_text_print(FILE *f, const char *s)
{
	char stackbuf[1024], *buf = stackbuf;
	size_t need = hglog_escape(stackbuf, sizeof(stackbuf), s, 0);

	if (need >= sizeof(stackbuf)) {
		buf = malloc(need + 1);
		if (!buf) {
			fputs("(out of memory)", f);
			return;
		}
		hglog_escape(buf, need + 1, s, 0);
	}
	fputs(buf, f);
	if (buf != stackbuf)
		free(buf);
}

int adm_parse_since(const char *s, int64_t *out)
{
	struct tm tm = { 0 };
	int64_t d;
	char *end;
	const char *p;

	if (!s || !*s)
		return -EINVAL;
	if (s[0] == '@') {
		errno = 0;
		d = strtoll(s + 1, &end, 10);
		if (errno || *end || end == s + 1 || d < 0)
			return -EINVAL;
		*out = d;
		return 0;
	}
	if (strlen(s) >= 10 && s[4] == '-' && s[7] == '-') {
		p = strptime(s, "%Y-%m-%d", &tm);
		if (p && (*p == 'T' || *p == ' '))
			p = strptime(p + 1, "%H:%M", &tm);
		if (p && *p == ':')
			p = strptime(p + 1, "%S", &tm);
		if (p && *p == 'Z')
			p++;
		if (!p || *p)
			return -EINVAL;
		*out = (int64_t)timegm(&tm);
		return 0;
	}
	if (config_parse_duration(s, &d) < 0)
		return -EINVAL;
	*out = (int64_t)time(NULL) - d;
	return 0;
}

char *adm_fmt_time(int64_t t, char buf[32])
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm))
		snprintf(buf, 32, "@%lld", (long long)t);
	else
		strftime(buf, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
	return buf;
}

int adm_require_root(const char *cmd, const char *why)
{
	if (geteuid() == 0)
		return 0;
	cli_error(cmd, "must be run as root: %s", why);
	return -EPERM;
}

int adm_parse_id(const char *cmd, const char *s, int64_t *id)
{
	char *end;
	long long v;

	errno = 0;
	v = s ? strtoll(s, &end, 10) : 0;
	if (!s || errno || *end || end == s || v <= 0) {
		cli_error(cmd, "'%s' is not a quarantine record id (a positive number)",
			  s ? s : "");
		return -EINVAL;
	}
	*id = v;
	return 0;
}

/* Undo mountinfo's octal escapes (\040 for a space) in place. */
static void unescape_octal(char *s)
{
	char *o = s;

	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*o++ = *s;
		}
	}
	*o = '\0';
}

int adm_bypass_mounts(const char *cmd)
{
	char *line = NULL, **mps = NULL;
	size_t cap = 0, n = 0;
	FILE *f;
	int r = 0;

	f = fopen("/proc/self/mountinfo", "re");
	if (!f) {
		cli_error(cmd, "cannot read /proc/self/mountinfo: %s", strerror(errno));
		return -errno;
	}
	/* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTIONS [OPTIONAL...] - FSTYPE SOURCE SUPEROPTS */
	while (getline(&line, &cap, f) > 0) {
		char *sep = strstr(line, " - "), *mp, *fstype, *save = NULL, **nm;
		int i;

		if (!sep)
			continue;
		fstype = strtok_r(sep + 3, " \n", &save);
		if (!fstype || strcmp(fstype, "fuse.hashgatefs") != 0)
			continue;
		*sep = '\0';
		mp = strtok_r(line, " ", &save);
		for (i = 0; mp && i < 4; i++)
			mp = strtok_r(NULL, " ", &save);
		if (!mp)
			continue;
		unescape_octal(mp);
		nm = realloc(mps, (n + 1) * sizeof(*mps));
		if (!nm || !(nm[n] = strdup(mp))) {
			mps = nm ? nm : mps;
			r = -ENOMEM;
			break;
		}
		mps = nm;
		n++;
	}
	free(line);
	fclose(f);
	if (r == 0 && n) {
		/*
		 * Everything private before any detach: a detach under a shared mount would
		 * propagate to the host's namespace and open the gate there.  That needs "/" to
		 * be a mount point, which a chroot into a plain directory is not: no guessing
		 * then, an error that says so.
		 */
		if (unshare(CLONE_NEWNS) < 0 ||
		    mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) {
			r = -errno;
			cli_error(cmd, "cannot reach the storage under the hashgatefs mount %s (private "
				  "mount namespace: %s%s); nothing was written", mps[0], strerror(-r),
				  r == -EINVAL ? "; in a chroot, its root must be a mount point: "
				  "bind-mount the directory onto itself" : "");
		}
		/* Innermost first (mountinfo lists parents before children). */
		for (size_t i = n; r == 0 && i-- > 0; ) {
			if (umount2(mps[i], MNT_DETACH) < 0 && errno != EINVAL && errno != ENOENT) {
				r = -errno;
				cli_error(cmd, "cannot detach %s in a private mount namespace: %s; "
					  "nothing was written", mps[i], strerror(-r));
			}
		}
	}
	for (size_t i = 0; i < n; i++)
		free(mps[i]);
	free(mps);
	return r;
}

int adm_host_key_path(const struct cli *cli, char *out, size_t len)
{
	const char *k = cli->cfg.quarantine_key, *slash = strrchr(k, '/');
	int n;

	if (!slash)
		n = snprintf(out, len, "host-ed25519.pem");
	else
		n = snprintf(out, len, "%.*s/host-ed25519.pem", (int)(slash - k), k);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

char *adm_fmt_bytes(uint64_t n, char buf[32])
{
	static const char *u[] = { "B", "kB", "MB", "GB", "TB", "PB" };
	double v = (double)n;
	int i = 0;

	while (v >= 1000 && i < 5) {
		v /= 1000;
		i++;
	}
	snprintf(buf, 32, i ? "%.1f %s" : "%.0f %s", v, u[i]);
	return buf;
}
