/*
 * config.c - hashgate.conf and -o option parsing.
 *
 * Invariant: a failing config_load() or config_set() leaves the struct exactly as it was.
 * config_load() works on a deep copy and swaps it in only when every line parsed;
 * config_set() parses the value completely before it assigns anything.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>

#include "hashdb/config.h"

#define CONFIG_LINE_MAX 4096

enum key_type { K_PATH, K_OPTPATH, K_OPTEXEC, K_OPTSTR, K_ACTION, K_ONERROR, K_SIZE, K_BOOL, K_INT, K_DURATION,
		K_LOGLEVEL };

struct key_def {
	const char *name;
	enum key_type type;
	size_t off;
	long min, max;			/* K_INT range */
};

#define F(field) offsetof(struct hg_config, field)
static const struct key_def keys[] = {
	{ "db",			 K_PATH,     F(db),		  0, 0 },
	{ "quarantine",		 K_PATH,     F(quarantine),	  0, 0 },
	{ "quarantine_key",	 K_PATH,     F(quarantine_key),	  0, 0 },
	{ "audit_log",		 K_PATH,     F(audit_log),	  0, 0 },
	{ "state_dir",		 K_PATH,     F(state_dir),	  0, 0 },
	{ "prometheus_textfile", K_OPTPATH,  F(prometheus_textfile), 0, 0 },
	{ "scan_db",		 K_PATH,     F(scan_db),	  0, 0 },
	{ "on_match",		 K_ACTION,   F(on_match),	  0, 0 },
	{ "on_error",		 K_ONERROR,  F(on_error),	  0, 0 },
	{ "scan_max_size",	 K_SIZE,     F(scan_max_size),	  0, 0 },
	{ "pdq",		 K_BOOL,     F(pdq),		  0, 0 },
	{ "pdq_threshold",	 K_INT,      F(pdq_threshold),	  0, 256 },
	{ "pdq_min_quality",	 K_INT,      F(pdq_min_quality),  0, 100 },
	{ "pdq_max_size",	 K_SIZE,     F(pdq_max_size),	  0, 0 },
	{ "image_max_pixels",	 K_SIZE,     F(image_max_pixels), 0, 0 },
	{ "retention",		 K_DURATION, F(retention),	  0, 0 },
	{ "quarantine_max_size", K_SIZE,     F(quarantine_max_size), 0, 0 },
	{ "log_level",		 K_LOGLEVEL, F(log_level),	  0, 0 },
	{ "log_clean",		 K_BOOL,     F(log_clean),	  0, 0 },
	{ "fd_reserve",		 K_INT,      F(fd_reserve),	  64, 1000000 },
	{ "uid_max_open",	 K_INT,      F(uid_max_open),	  0, 100000000 },
	{ "uid_max_uploads",	 K_INT,      F(uid_max_uploads),  0, 100000000 },
	{ "uid_max_upload_bytes", K_SIZE,    F(uid_max_upload_bytes), 0, 0 },
	{ "feeds_dir",		 K_PATH,     F(feeds_dir),	  0, 0 },
	{ "on_match_exec",	 K_OPTEXEC,  F(on_match_exec),	  0, 0 },
	{ "on_match_exec_user",	 K_OPTSTR,   F(on_match_exec_user), 0, 0 },
	{ "on_match_exec_timeout", K_DURATION, F(on_match_exec_timeout), 0, 0 },
	{ "on_match_exec_queue", K_INT,      F(on_match_exec_queue), 1, 1000000 },
};
#undef F

static const char *const action_names[] = {
	[ACTION_QUARANTINE] = "quarantine",
	[ACTION_BLOCK] = "block",
	[ACTION_LOG] = "log",
};

static const struct { const char *name; int level; } log_levels[] = {
	{ "err", LOG_ERR }, { "error", LOG_ERR }, { "warning", LOG_WARNING },
	{ "warn", LOG_WARNING }, { "notice", LOG_NOTICE }, { "info", LOG_INFO },
	{ "debug", LOG_DEBUG },
};

#define CAT_PREFIX "on_match."
#define EXEC_PREFIX "on_match_exec."
#define ERR_PREFIX "on_error."

const char *config_action_name(enum hg_action a)
{
	if ((unsigned)a < sizeof(action_names) / sizeof(action_names[0]))
		return action_names[a];
	return "?";
}

static int parse_action(const char *s, enum hg_action *out)
{
	size_t i;

	for (i = 0; i < sizeof(action_names) / sizeof(action_names[0]); i++) {
		if (strcasecmp(s, action_names[i]) == 0) {
			*out = (enum hg_action)i;
			return 0;
		}
	}
	return -EINVAL;
}

int config_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "1", "yes", "true", "on" };
	static const char *const no[] = { "0", "no", "false", "off" };
	size_t i;

	for (i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -EINVAL;
}

/*
 * Binary units: K/M/G/T = 2^10.., with an optional "B" or "iB" after the letter.  A fraction
 * ("1.5G") is allowed with a unit; the result is truncated to whole bytes.
 */
int config_parse_size(const char *s, uint64_t *out)
{
	char *end;
	double v;
	uint64_t mult = 1;

	if (!s || !*s || *s == '-' || isspace((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	/* "inf", "nan" and 1e300 parse as doubles; reject them before any integer cast. */
	if (errno || end == s || !isfinite(v) || v < 0 || v >= 18446744073709551615.0)
		return -EINVAL;
	switch (toupper((unsigned char)*end)) {
	case 'K': mult = 1ull << 10; end++; break;
	case 'M': mult = 1ull << 20; end++; break;
	case 'G': mult = 1ull << 30; end++; break;
	case 'T': mult = 1ull << 40; end++; break;
	case '\0': break;
	case 'B': break;
	default: return -EINVAL;
	}
	if (mult > 1 && (end[0] == 'i' || end[0] == 'I') && toupper((unsigned char)end[1]) == 'B')
		end += 2;
	else if (toupper((unsigned char)end[0]) == 'B')
		end++;
	if (*end)
		return -EINVAL;
	if (v * (double)mult >= 18446744073709551615.0)
		return -ERANGE;
	if (mult == 1 && v != (double)(uint64_t)v)
		return -EINVAL;		/* "1.5" bytes makes no sense */
	*out = (uint64_t)(v * (double)mult);
	return 0;
}

int config_parse_duration(const char *s, int64_t *out)
{
	char *end;
	long long v;
	int64_t mult = 1;

	if (s && strcasecmp(s, "forever") == 0) {
		*out = 0;
		return 0;
	}
	if (!s || !*s || !isdigit((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno || v < 0)
		return -EINVAL;
	switch (*end) {
	case 's': mult = 1; end++; break;
	case 'm': mult = 60; end++; break;
	case 'h': mult = 3600; end++; break;
	case 'd': mult = 86400; end++; break;
	case 'w': mult = 7 * 86400; end++; break;
	case 'y': mult = 365 * 86400; end++; break;
	case '\0': break;
	default: return -EINVAL;
	}
	if (*end)
		return -EINVAL;
	if (v > INT64_MAX / mult)
		return -ERANGE;
	*out = v * mult;
	return 0;
}

static int parse_int(const char *s, long min, long max, int *out)
{
	char *end;
	long v;

	if (!*s)
		return -EINVAL;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || *end)
		return -EINVAL;
	if (v < min || v > max)
		return -ERANGE;
	*out = (int)v;
	return 0;
}

static int parse_loglevel(const char *s, int *out)
{
	size_t i;

	for (i = 0; i < sizeof(log_levels) / sizeof(log_levels[0]); i++) {
		if (strcasecmp(s, log_levels[i].name) == 0) {
			*out = log_levels[i].level;
			return 0;
		}
	}
	return -EINVAL;
}

static const struct key_def *find_key(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

/* Category names end up in logs and the CLI: keep them to a safe alphabet. */
static int valid_category(const char *s)
{
	if (!*s || strlen(s) > 31)
		return 0;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_')
			return 0;
	return 1;
}

int config_is_key(const char *key)
{
	if (strncmp(key, EXEC_PREFIX, strlen(EXEC_PREFIX)) == 0)
		return valid_category(key + strlen(EXEC_PREFIX));
	if (strncmp(key, CAT_PREFIX, strlen(CAT_PREFIX)) == 0)
		return valid_category(key + strlen(CAT_PREFIX));
	if (strncmp(key, ERR_PREFIX, strlen(ERR_PREFIX)) == 0)
		return valid_category(key + strlen(ERR_PREFIX));
	return find_key(key) != NULL;
}

static int set_category(struct hg_config *c, const char *cat, enum hg_action a)
{
	struct hg_category_action *n;
	char *name;
	size_t i;

	for (i = 0; i < c->ncat; i++) {
		if (strcmp(c->cat[i].category, cat) == 0) {
			c->cat[i].action = a;
			return 0;
		}
	}
	name = strdup(cat);
	if (!name)
		return -ENOMEM;
	n = realloc(c->cat, (c->ncat + 1) * sizeof(*n));
	if (!n) {
		free(name);
		return -ENOMEM;
	}
	c->cat = n;
	c->cat[c->ncat].category = name;
	c->cat[c->ncat].action = a;
	c->ncat++;
	return 0;
}

static int set_category_exec(struct hg_config *c, const char *cat, const char *path)
{
	struct hg_category_exec *n;
	char *name, *p;
	size_t i;

	p = strdup(path);
	if (!p)
		return -ENOMEM;
	for (i = 0; i < c->ncat_exec; i++) {
		if (strcmp(c->cat_exec[i].category, cat) == 0) {
			free(c->cat_exec[i].path);
			c->cat_exec[i].path = p;
			return 0;
		}
	}
	name = strdup(cat);
	n = name ? realloc(c->cat_exec, (c->ncat_exec + 1) * sizeof(*n)) : NULL;
	if (!n) {
		free(name);
		free(p);
		return -ENOMEM;
	}
	c->cat_exec = n;
	c->cat_exec[c->ncat_exec].category = name;
	c->cat_exec[c->ncat_exec].path = p;
	c->ncat_exec++;
	return 0;
}

static int set_category_onerror(struct hg_config *c, const char *cat, enum hg_on_error e)
{
	struct hg_category_onerror *n;
	char *name;
	size_t i;

	for (i = 0; i < c->ncat_err; i++) {
		if (strcmp(c->cat_err[i].category, cat) == 0) {
			c->cat_err[i].on_error = e;
			return 0;
		}
	}
	name = strdup(cat);
	if (!name)
		return -ENOMEM;
	n = realloc(c->cat_err, (c->ncat_err + 1) * sizeof(*n));
	if (!n) {
		free(name);
		return -ENOMEM;
	}
	c->cat_err = n;
	c->cat_err[c->ncat_err].category = name;
	c->cat_err[c->ncat_err].on_error = e;
	c->ncat_err++;
	return 0;
}

static int parse_on_error(const char *value, enum hg_on_error *out)
{
	if (strcasecmp(value, "deny") == 0)
		*out = ON_ERROR_DENY;
	else if (strcasecmp(value, "allow") == 0)
		*out = ON_ERROR_ALLOW;
	else
		return -EINVAL;
	return 0;
}

static const char *key_hint(const struct key_def *k)
{
	switch (k->type) {
	case K_PATH: return "a non-empty path";
	case K_OPTPATH: return "a path, or empty to disable";
	case K_OPTEXEC: return "an absolute path of a program, or empty for none";
	case K_OPTSTR: return "a name, or empty for the default";
	case K_ACTION: return "quarantine, block or log";
	case K_ONERROR: return "deny or allow";
	case K_SIZE: return "a size such as 4096, 512K, 64M or 2G";
	case K_BOOL: return "on or off";
	case K_INT: return "a whole number in range";
	case K_DURATION: return "a duration such as 90d, 12h, 30m, 45s, or 0 for forever";
	case K_LOGLEVEL: return "err, warning, notice, info or debug";
	}
	return "a valid value";
}

/* Parse and assign one key; on error *why says why, and nothing was assigned. */
static int set_one(struct hg_config *c, const char *key, const char *value, const char **why)
{
	const struct key_def *k;
	void *p;
	union {
		uint64_t size;
		int64_t dur;
		int i;
		bool b;
		enum hg_action a;
		enum hg_on_error e;
	} v;
	char *str;
	int r;

	if (strncmp(key, CAT_PREFIX, strlen(CAT_PREFIX)) == 0) {
		if (!valid_category(key + strlen(CAT_PREFIX))) {
			*why = "category names are 1-31 letters, digits, '-' or '_'";
			return -EINVAL;
		}
		if (parse_action(value, &v.a) < 0) {
			*why = "expected quarantine, block or log";
			return -EINVAL;
		}
		r = set_category(c, key + strlen(CAT_PREFIX), v.a);
		*why = r ? strerror(-r) : NULL;
		return r;
	}
	if (strncmp(key, ERR_PREFIX, strlen(ERR_PREFIX)) == 0) {
		if (!valid_category(key + strlen(ERR_PREFIX))) {
			*why = "category names are 1-31 letters, digits, '-' or '_'";
			return -EINVAL;
		}
		if (parse_on_error(value, &v.e) < 0) {
			*why = "expected deny or allow";
			return -EINVAL;
		}
		r = set_category_onerror(c, key + strlen(ERR_PREFIX), v.e);
		*why = r ? strerror(-r) : NULL;
		return r;
	}
	if (strncmp(key, EXEC_PREFIX, strlen(EXEC_PREFIX)) == 0) {
		if (!valid_category(key + strlen(EXEC_PREFIX))) {
			*why = "category names are 1-31 letters, digits, '-' or '_'";
			return -EINVAL;
		}
		if (*value && *value != '/') {
			*why = "an absolute path of a program, or empty for none in this category";
			return -EINVAL;
		}
		r = set_category_exec(c, key + strlen(EXEC_PREFIX), value);
		*why = r ? strerror(-r) : NULL;
		return r;
	}
	k = find_key(key);
	if (!k) {
		*why = "unknown key";
		return -ENOENT;
	}
	*why = key_hint(k);
	p = (char *)c + k->off;
	switch (k->type) {
	case K_PATH:
	case K_OPTPATH:
	case K_OPTEXEC:
	case K_OPTSTR:
		if (!*value && k->type == K_PATH)
			return -EINVAL;
		if (*value && k->type == K_OPTEXEC && *value != '/')
			return -EINVAL;
		str = NULL;
		if (*value && !(str = strdup(value))) {
			*why = strerror(ENOMEM);
			return -ENOMEM;
		}
		free(*(char **)p);
		*(char **)p = str;
		break;
	case K_ACTION:
		if (parse_action(value, &v.a) < 0)
			return -EINVAL;
		*(enum hg_action *)p = v.a;
		break;
	case K_ONERROR:
		if (parse_on_error(value, &v.e) < 0)
			return -EINVAL;
		*(enum hg_on_error *)p = v.e;
		break;
	case K_SIZE:
		if (config_parse_size(value, &v.size) < 0)
			return -EINVAL;
		*(uint64_t *)p = v.size;
		break;
	case K_BOOL:
		if (config_parse_bool(value, &v.b) < 0)
			return -EINVAL;
		*(bool *)p = v.b;
		break;
	case K_INT:
		r = parse_int(value, k->min, k->max, &v.i);
		if (r == -ERANGE) {
			static __thread char range[64];

			snprintf(range, sizeof(range), "must be %ld to %ld", k->min, k->max);
			*why = range;
			return -EINVAL;
		}
		if (r < 0)
			return -EINVAL;
		*(int *)p = v.i;
		break;
	case K_DURATION:
		if (config_parse_duration(value, &v.dur) < 0)
			return -EINVAL;
		*(int64_t *)p = v.dur;
		break;
	case K_LOGLEVEL:
		if (parse_loglevel(value, &v.i) < 0)
			return -EINVAL;
		*(int *)p = v.i;
		break;
	}
	*why = NULL;
	return 0;
}

static int dup_field(char **dst, const char *src)
{
	*dst = NULL;
	if (src && !(*dst = strdup(src)))
		return -ENOMEM;
	return 0;
}

int config_init(struct hg_config *c)
{
	memset(c, 0, sizeof(*c));
	if (dup_field(&c->db, CONFIG_DEFAULT_DB) < 0 ||
	    dup_field(&c->quarantine, CONFIG_DEFAULT_QDIR) < 0 ||
	    dup_field(&c->quarantine_key, CONFIG_DEFAULT_KEY) < 0 ||
	    dup_field(&c->audit_log, CONFIG_DEFAULT_AUDIT) < 0 ||
	    dup_field(&c->state_dir, CONFIG_DEFAULT_STATE) < 0 ||
	    dup_field(&c->scan_db, CONFIG_DEFAULT_SCANDB) < 0 ||
	    dup_field(&c->feeds_dir, CONFIG_DEFAULT_FEEDS) < 0) {
		config_release(c);
		return -ENOMEM;
	}
	c->on_match = ACTION_QUARANTINE;
	c->on_error = ON_ERROR_DENY;
	c->scan_max_size = 256ull << 20;
	c->pdq = true;
	c->pdq_threshold = 31;
	c->pdq_min_quality = 50;
	c->pdq_max_size = 64ull << 20;
	c->image_max_pixels = 500ull * 1000 * 1000;	/* IMAGE_MAX_WORK_DEFAULT */
	c->retention = 0;
	c->quarantine_max_size = 10ull << 30;
	c->log_level = LOG_INFO;
	c->log_clean = false;		/* privacy: clean uploads are counted, not logged */
	c->fd_reserve = 512;
	c->uid_max_open = 0;
	c->uid_max_uploads = 128;
	c->uid_max_upload_bytes = 0;
	c->on_match_exec_timeout = 10;
	c->on_match_exec_queue = 256;
	return 0;
}

void config_release(struct hg_config *c)
{
	size_t i;

	free(c->source);
	free(c->db);
	free(c->quarantine);
	free(c->quarantine_key);
	free(c->audit_log);
	free(c->state_dir);
	free(c->prometheus_textfile);
	free(c->scan_db);
	free(c->feeds_dir);
	free(c->on_match_exec);
	free(c->on_match_exec_user);
	for (i = 0; i < c->ncat; i++)
		free(c->cat[i].category);
	free(c->cat);
	for (i = 0; i < c->ncat_exec; i++) {
		free(c->cat_exec[i].category);
		free(c->cat_exec[i].path);
	}
	free(c->cat_exec);
	for (i = 0; i < c->ncat_err; i++)
		free(c->cat_err[i].category);
	free(c->cat_err);
	memset(c, 0, sizeof(*c));
}

/*
 * Deep copy, so a failing load can be thrown away whole.  dst starts with the scalars of src
 * and no pointer of its own, so a copy failing half-way releases only what it duplicated, never
 * a string src still owns.
 */
static int config_copy(struct hg_config *dst, const struct hg_config *src)
{
	size_t i;

	*dst = *src;
	dst->source = dst->db = dst->quarantine = dst->quarantine_key = NULL;
	dst->audit_log = dst->state_dir = dst->prometheus_textfile = dst->scan_db = NULL;
	dst->feeds_dir = dst->on_match_exec = dst->on_match_exec_user = NULL;
	dst->cat = NULL;
	dst->ncat = 0;
	dst->cat_exec = NULL;
	dst->ncat_exec = 0;
	dst->cat_err = NULL;
	dst->ncat_err = 0;
	if (dup_field(&dst->source, src->source) < 0 || dup_field(&dst->db, src->db) < 0 ||
	    dup_field(&dst->quarantine, src->quarantine) < 0 ||
	    dup_field(&dst->quarantine_key, src->quarantine_key) < 0 ||
	    dup_field(&dst->audit_log, src->audit_log) < 0 ||
	    dup_field(&dst->state_dir, src->state_dir) < 0 ||
	    dup_field(&dst->prometheus_textfile, src->prometheus_textfile) < 0 ||
	    dup_field(&dst->scan_db, src->scan_db) < 0 ||
	    dup_field(&dst->feeds_dir, src->feeds_dir) < 0 ||
	    dup_field(&dst->on_match_exec, src->on_match_exec) < 0 ||
	    dup_field(&dst->on_match_exec_user, src->on_match_exec_user) < 0)
		goto out_release;
	for (i = 0; i < src->ncat; i++)
		if (set_category(dst, src->cat[i].category, src->cat[i].action) < 0)
			goto out_release;
	for (i = 0; i < src->ncat_exec; i++)
		if (set_category_exec(dst, src->cat_exec[i].category, src->cat_exec[i].path) < 0)
			goto out_release;
	for (i = 0; i < src->ncat_err; i++)
		if (set_category_onerror(dst, src->cat_err[i].category, src->cat_err[i].on_error) < 0)
			goto out_release;
	return 0;
out_release:
	config_release(dst);
	return -ENOMEM;
}

int config_set(struct hg_config *c, const char *key, const char *value, char *err,
	       size_t errlen)
{
	const char *why;
	int r;

	r = set_one(c, key, value, &why);
	if (r < 0 && err)
		snprintf(err, errlen, "option '%s': %s%s%s", key,
			 r == -ENOENT ? "" : "invalid value '", r == -ENOENT ? "" : value,
			 r == -ENOENT ? "unknown key" : "': expected ");
	if (r < 0 && err && r != -ENOENT && why) {
		size_t n = strlen(err);

		snprintf(err + n, n < errlen ? errlen - n : 0, "%s", why);
	}
	return r;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = '\0';
	return s;
}

/* The one splitter of "key = value" lines: hashgate.conf here, feed files in tools/feed.c. */
int config_split_line(char *line, char **key, char **value, const char **why)
{
	char *s = trim(line), *eq, *v;

	if (!*s || *s == '#')
		return 0;
	eq = strchr(s, '=');
	if (!eq) {
		*why = "expected 'key = value'";
		return -EINVAL;
	}
	*eq = '\0';
	*key = trim(s);
	v = trim(eq + 1);
	if (!**key) {
		*why = "missing key before '='";
		return -EINVAL;
	}
	if (*v == '"') {
		char *close = strrchr(v + 1, '"');
		char *rest;

		if (!close) {
			*why = "unterminated quoted value";
			return -EINVAL;
		}
		*close = '\0';
		rest = trim(close + 1);
		if (*rest && *rest != '#') {
			*why = "text after the closing quote";
			return -EINVAL;
		}
		v++;
	} else {
		/* An unquoted value ends at a comment that follows white space. */
		char *p;

		for (p = v; *p; p++) {
			if (*p == '#' && p > v && isspace((unsigned char)p[-1])) {
				*p = '\0';
				v = trim(v);
				break;
			}
		}
	}
	*value = v;
	return 1;
}

int config_load(struct hg_config *c, const char *path, char *err, size_t errlen)
{
	struct hg_config tmp;
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	unsigned long lineno = 0;
	FILE *f;
	int r;

	f = fopen(path, "re");
	if (!f) {
		r = -errno;
		if (err)
			snprintf(err, errlen, "%s: cannot open: %s", path, strerror(-r));
		return r;
	}
	r = config_copy(&tmp, c);
	if (r < 0) {
		if (err)
			snprintf(err, errlen, "%s: %s", path, strerror(-r));
		goto out_file;
	}
	while ((len = getline(&line, &cap, f)) >= 0) {
		const char *why = NULL;
		char *key, *value;

		lineno++;
		if (len > CONFIG_LINE_MAX) {
			why = "line too long";
			r = -EINVAL;
		} else if (strlen(line) != (size_t)len) {
			why = "NUL byte in line";
			r = -EINVAL;
		} else {
			r = config_split_line(line, &key, &value, &why);
			if (r > 0) {
				r = set_one(&tmp, key, value, &why);
				if (r == -ENOMEM) {
					if (err)
						snprintf(err, errlen, "%s:%lu: %s", path, lineno,
							 strerror(ENOMEM));
					goto out_tmp;
				}
				if (r < 0 && r != -ENOENT && err) {
					snprintf(err, errlen, "%s:%lu: %s: invalid value '%s': expected %s",
						 path, lineno, key, value, why ? why : "a valid value");
					r = -EINVAL;
					goto out_tmp;
				}
				if (r == -ENOENT && err) {
					snprintf(err, errlen, "%s:%lu: unknown key '%s'", path,
						 lineno, key);
					r = -EINVAL;
					goto out_tmp;
				}
			}
		}
		if (r < 0) {
			if (err)
				snprintf(err, errlen, "%s:%lu: %s", path, lineno,
					 why ? why : strerror(-r));
			r = -EINVAL;
			goto out_tmp;
		}
	}
	if (ferror(f)) {
		r = -EIO;
		if (err)
			snprintf(err, errlen, "%s: read error", path);
		goto out_tmp;
	}
	free(tmp.source);
	tmp.source = strdup(path);
	if (!tmp.source) {
		r = -ENOMEM;
		goto out_tmp;
	}
	config_release(c);
	*c = tmp;
	r = 0;
	goto out_file;
out_tmp:
	config_release(&tmp);
out_file:
	free(line);
	fclose(f);
	return r;
}

enum hg_action config_action_for(const struct hg_config *c, const char *category)
{
	size_t i;

	if (category)
		for (i = 0; i < c->ncat; i++)
			if (strcmp(c->cat[i].category, category) == 0)
				return c->cat[i].action;
	return c->on_match;
}

const char *config_exec_for(const struct hg_config *c, const char *category)
{
	size_t i;

	if (category)
		for (i = 0; i < c->ncat_exec; i++)
			if (strcmp(c->cat_exec[i].category, category) == 0)
				return *c->cat_exec[i].path ? c->cat_exec[i].path : NULL;
	return c->on_match_exec;
}

enum hg_on_error config_on_error_for(const struct hg_config *c, const char *category)
{
	size_t i;

	if (category)
		for (i = 0; i < c->ncat_err; i++)
			if (strcmp(c->cat_err[i].category, category) == 0)
				return c->cat_err[i].on_error;
	return c->on_error;
}

int config_action_rank(const struct hg_config *c, const char *category)
{
	switch (config_action_for(c, category)) {
	case ACTION_QUARANTINE: return 3;
	case ACTION_BLOCK: return 2;
	case ACTION_LOG: return 1;
	}
	return 0;
}

bool config_path_from_env(void)
{
	const char *env = getenv(CONFIG_ENV);

	return env && *env;
}

const char *config_default_path(void)
{
	const char *env = getenv(CONFIG_ENV);

	return env && *env ? env : CONFIG_DEFAULT_PATH;
}
