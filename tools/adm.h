/*
 * adm.h - helpers shared by the admin subcommands (quarantine, log, scan, report, status):
 * who is acting, auditing an action, time parsing/printing and JSON string output.
 * Single-threaded CLI use; no state kept between calls except what the caller passes.
 */
#ifndef TOOLS_ADM_H
#define TOOLS_ADM_H

#include <stdint.h>
#include <stdio.h>

#include "tools/cli.h"

/* "uid=0(root)", plus " sudo_user=NAME" when run through sudo. */
void adm_actor(char *buf, size_t len);

/*
 * Append an audit record for an admin action to the configured audit log.  fields_fmt builds
 * the extra JSON members (values escaped by the caller, e.g. with adm_json_escape).  Prints an
 * error naming the log and returns -errno on failure.
 */
__attribute__((format(printf, 4, 5)))
int adm_audit(struct cli *cli, const char *cmd, const char *action, const char *fields_fmt, ...);

/*
 * 0 if the audit log can be appended to (it opens for writing and its last line is a record),
 * else -errno after printing why; checked before every audited change, so a change is never
 * made when its record cannot be written.
 */
int adm_audit_check(struct cli *cli, const char *cmd);

/* JSON string body (no quotes) of s into dst; returns dst.  Non-UTF-8 bytes become \u00NN. */
char *adm_json_escape(char *dst, size_t len, const char *s);
/* Print s as a quoted JSON string. */
void adm_json_print(FILE *f, const char *s);
/*
 * Print an untrusted string (a file name) for a human: control bytes, backslash, quotes and
 * invalid UTF-8 escaped (hglog_escape), so a name can never forge a line or a terminal
 * sequence and still decodes back unambiguously.
 */
void adm_text_print(FILE *f, const char *s);

/*
 * --since: a duration back from now ("7d", "12h"), a unix time ("@1700000000"), a date
 * "YYYY-MM-DD" or "YYYY-MM-DDTHH:MM[:SS]" (UTC).  0 or -EINVAL.
 */
int adm_parse_since(const char *s, int64_t *out);
/* "2026-11-23T18:43:00Z" (UTC). */
char *adm_fmt_time(int64_t t, char buf[32]);

/* 0 when running as root; otherwise prints why cmd needs root and returns -EPERM. */
int adm_require_root(const char *cmd, const char *why);

/* Parse a positive record id; -EINVAL with an error printed. */
int adm_parse_id(const char *cmd, const char *s, int64_t *id);

/*
 * Make this process see the storage under every hashgatefs mount: move it into a private mount
 * namespace and detach the hashgatefs mounts there (the host's mounts are untouched).  For
 * restore and export as root, whose writes must land in the backing directory itself, not go
 * through a mount that sits over it (they would be scanned as a new upload and quarantined
 * again).  0 (also when nothing is mounted), or -errno after printing why.
 */
int adm_bypass_mounts(const char *cmd);

/*
 * The host's signing key (hashdb/hostkey.h): host-ed25519.pem in the directory of
 * quarantine_key (by default /etc/hashgate).  0 or -ENAMETOOLONG.
 */
int adm_host_key_path(const struct cli *cli, char *out, size_t len);

/* "1.5 GB" style (decimal), for summaries. */
char *adm_fmt_bytes(uint64_t n, char buf[32]);

#endif
