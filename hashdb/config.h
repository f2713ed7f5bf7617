/*
 * config.h - hashgate.conf and -o option parsing, shared by hashgatefs and the hashgate CLI.
 *
 * File format: one "key = value" per line; '#' starts a comment line, or a comment after a
 * value following white space; blank lines ignored; values may be double-quoted
 * (config_split_line, also used for feed files).  Per-category actions are written "on_match.CATEGORY = ACTION",
 * per-category scan-error handling "on_error.CATEGORY = deny|allow".
 * Every error names the file and line (or the option) and leaves the config as it was before
 * the failing call.  A struct hg_config is owned by its creator; not thread-safe (the daemon
 * builds a new one on SIGHUP and swaps it).
 */
#ifndef HASHDB_CONFIG_H
#define HASHDB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CONFIG_DEFAULT_PATH	HASHGATE_SYSCONFDIR "/hashgate/hashgate.conf"
#define CONFIG_DEFAULT_DB	HASHGATE_LOCALSTATEDIR "/lib/hashgate/hashes.db"
#define CONFIG_DEFAULT_QDIR	HASHGATE_LOCALSTATEDIR "/lib/hashgate/quarantine"
#define CONFIG_DEFAULT_KEY	HASHGATE_SYSCONFDIR "/hashgate/quarantine.key"
#define CONFIG_DEFAULT_AUDIT	HASHGATE_LOCALSTATEDIR "/lib/hashgate/audit.log"
#define CONFIG_DEFAULT_STATE	"/run/hashgate"
#define CONFIG_DEFAULT_SCANDB	HASHGATE_LOCALSTATEDIR "/lib/hashgate/scan.db"
#define CONFIG_DEFAULT_FEEDS	HASHGATE_SYSCONFDIR "/hashgate/feeds.d"
/* Environment variable that overrides CONFIG_DEFAULT_PATH (tests, non-standard installs). */
#define CONFIG_ENV		"HASHGATE_CONFIG"

enum hg_action {
	ACTION_QUARANTINE = 0,	/* keep the content, encrypted, in the quarantine store */
	ACTION_BLOCK,		/* discard the content, keep the record */
	ACTION_LOG,		/* publish, but record and log the match (report-only lists) */
};

enum hg_on_error {
	ON_ERROR_DENY = 0,	/* fail closed: an upload that could not be scanned is not published */
	ON_ERROR_ALLOW,
};

struct hg_category_action {
	char *category;
	enum hg_action action;
};

/* on_match_exec.CATEGORY: the hook for one category; "" = none for it (overrides the default). */
struct hg_category_exec {
	char *category;
	char *path;
};

/*
 * on_error of one list category.  It decides the errors that leave only some lists unchecked:
 * an image that gives no PDQ leaves the lists holding PDQ hashes unchecked (the exact hashes
 * were still compared), so such an upload is denied when any category with PDQ hashes
 * resolves to deny.  Errors that leave every list unchecked (I/O, database) use on_error.
 */
struct hg_category_onerror {
	char *category;
	enum hg_on_error on_error;
};

struct hg_config {
	char *source;			/* file the values came from, NULL if defaults only */
	char *db;			/* hash database (SQLite) */
	char *quarantine;		/* quarantine store directory */
	char *quarantine_key;		/* file with the AES-256 key (64 hex digits) */
	char *audit_log;		/* append-only, hash-chained audit log */
	char *state_dir;		/* per-daemon status files read by `hashgate status` */
	char *prometheus_textfile;	/* node_exporter textfile; NULL = not written */
	char *scan_db;			/* per-file hash records of `hashgate scan` */
	enum hg_action on_match;	/* default action for categories without their own */
	struct hg_category_action *cat;	/* per-category overrides */
	size_t ncat;
	enum hg_on_error on_error;	/* scan errors; default of on_error.CATEGORY */
	struct hg_category_onerror *cat_err;	/* per-category on_error overrides */
	size_t ncat_err;
	uint64_t scan_max_size;		/* accepted and ignored (compatibility) */
	bool pdq;			/* PDQ-hash JPEG uploads */
	int pdq_threshold;
	int pdq_min_quality;
	uint64_t pdq_max_size;		/* larger JPEGs are decoded streaming, not read into memory */
	uint64_t image_max_pixels;	/* decode work bound (hashdb/image.h), in pixels */
	int64_t retention;		/* seconds quarantined items are kept by purge; 0 = forever */
	uint64_t quarantine_max_size;	/* quota on stored content; 0 = none */
	int log_level;			/* syslog priority: LOG_ERR .. LOG_DEBUG */
	bool log_clean;			/* log a line per clean upload (default off: counters only) */
	/* hashgatefs per-uid limits (fs/limits.c) */
	int fd_reserve;			/* fds kept out of the tenants' budget */
	int uid_max_open;		/* open handles per uid; 0 = a quarter of the budget */
	int uid_max_uploads;		/* staged uploads per uid; 0 = no limit */
	uint64_t uid_max_upload_bytes;	/* apparent bytes staged per uid; 0 = no limit */
	/* list feeds (`hashgate feed`, tools/feed.c): one NAME.conf per feed */
	char *feeds_dir;
	/* the match hook (fs/hook.c): a program run with a JSON event on stdin per match */
	char *on_match_exec;		/* absolute path; NULL = none */
	struct hg_category_exec *cat_exec;	/* per-category overrides */
	size_t ncat_exec;
	char *on_match_exec_user;	/* run as this user; NULL = root (never the uploader) */
	int64_t on_match_exec_timeout;	/* seconds before the hook is killed */
	int on_match_exec_queue;	/* events waiting; more are dropped and counted */
};

/* Defaults for every field (paths from the build's SYSCONFDIR/LOCALSTATEDIR). */
int config_init(struct hg_config *c);
void config_release(struct hg_config *c);

/*
 * Read a config file over the current values.  -ENOENT when missing (callers decide whether
 * that is fatal); -EINVAL with "FILE:LINE: reason" in err for bad content.
 */
int config_load(struct hg_config *c, const char *path, char *err, size_t errlen);
/*
 * Split one line of a "key = value" file (hashgate.conf, feeds_dir/NAME.conf) in place:
 * white space around key and value is dropped; an unquoted value ends at a '#' that follows
 * white space (a comment); a value in double quotes runs to the line's last '"' and is taken
 * as is (only a comment may follow it).  Returns 1 for a setting (*key, *value point into
 * line), 0 for a blank or comment line, -EINVAL with *why (a static string) on a malformed
 * line: no '=', no key before it, an unterminated quote, text after the closing quote.
 * A trailing newline is white space like any other.
 */
int config_split_line(char *line, char **key, char **value, const char **why);
/* Set one key (same names as the file).  -EINVAL/-ENOENT with "option 'key': reason" in err. */
int config_set(struct hg_config *c, const char *key, const char *value, char *err, size_t errlen);
/* 1 if key is a config key this version knows. */
int config_is_key(const char *key);
/* on_error for a list category: its own on_error.CATEGORY, else on_error. */
enum hg_on_error config_on_error_for(const struct hg_config *c, const char *category);
/* The action for a list category. */
enum hg_action config_action_for(const struct hg_config *c, const char *category);
/* The hook program for a list category, or NULL when none. */
const char *config_exec_for(const struct hg_config *c, const char *category);
/*
 * How strongly a category is acted on: quarantine 3 > block 2 > log 1.  A hash found in several
 * lists is reported with the list ranked highest (matcher_set_rank), so a report-only list can
 * never shadow a quarantine list.
 */
int config_action_rank(const struct hg_config *c, const char *category);
/* The path to read: $HASHGATE_CONFIG if set, else CONFIG_DEFAULT_PATH. */
const char *config_default_path(void);
/*
 * True when config_default_path() comes from $HASHGATE_CONFIG: a file named there must exist
 * (a missing one is an error, not the defaults, which would work on the wrong database).
 */
bool config_path_from_env(void);

const char *config_action_name(enum hg_action a);

/* Parsers shared with the CLI: "10M", "1.5G", "4096" -> bytes; "30d", "12h", "90m", "45s" -> s. */
int config_parse_size(const char *s, uint64_t *out);
int config_parse_duration(const char *s, int64_t *out);
int config_parse_bool(const char *s, bool *out);

#endif
