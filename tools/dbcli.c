/*
 * dbcli.c - helpers shared by `hashgate db` and `hashgate allow`: options with values, hash
 * arguments (HEX or ALGO:HEX), opening the database with a printed error, audit records.
 */
#include <errno.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "hashdb/hash.h"
#include "tools/adm.h"
#include "tools/dbcli.h"

int dbcli_opt(const char *cmd, int argc, char **argv, int *i, const char *name, const char **val)
{
	const char *a = argv[*i];
	size_t n = strlen(name);

	if (strncmp(a, "--", 2) != 0 || strncmp(a + 2, name, n) != 0)
		return 0;
	if (a[2 + n] == '=') {
		*val = a + 3 + n;
		return 1;
	}
	if (a[2 + n])
		return 0;
	if (*i + 1 >= argc) {
		cli_error(cmd, "option '--%s' needs a value", name);
		return -1;
	}
	*val = argv[++*i];
	return 1;
}

int dbcli_parse_type(const char *cmd, const char *s)
{
	int a = hash_algo_parse(s);

	if (a < 0)
		cli_error(cmd, "option '--type': unknown hash type '%s' (md5, sha1, sha256, pdq)", s);
	return a < 0 ? -1 : a;
}

int dbcli_parse_hash(const char *cmd, const char *arg, int algo, uint8_t out[HASH_MAX_LEN])
{
	const char *colon = strchr(arg, ':'), *hex = arg;
	size_t len;

	if (colon) {
		char name[16];
		int a;

		if ((size_t)(colon - arg) >= sizeof(name)) {
			cli_error(cmd, "'%s' is not a hash", arg);
			return -EINVAL;
		}
		memcpy(name, arg, (size_t)(colon - arg));
		name[colon - arg] = '\0';
		a = hash_algo_parse(name);
		if (a < 0 || (algo >= 0 && a != algo)) {
			cli_error(cmd, "'%s': %s hash type '%s'", arg, a < 0 ? "unknown" : "conflicting",
				  name);
			return -EINVAL;
		}
		algo = a;
		hex = colon + 1;
	}
	len = strlen(hex);
	if (algo < 0) {
		if (len == 32)
			algo = HASH_MD5;
		else if (len == 40)
			algo = HASH_SHA1;
		else if (len == 64) {
			cli_error(cmd, "'%s': 64 hex digits may be SHA-256 or PDQ; give --type or write "
				  "sha256:HEX / pdq:HEX", arg);
			return -EINVAL;
		} else {
			cli_error(cmd, "'%s' is not a hash (32, 40 or 64 hex digits)", arg);
			return -EINVAL;
		}
	}
	if (len != 2 * hash_algo_len((enum hash_algo)algo) ||
	    hex_decode(hex, len, out, hash_algo_len((enum hash_algo)algo)) < 0) {
		cli_error(cmd, "'%s' is not a %s hash (%zu hex digits)", arg,
			  hash_algo_name((enum hash_algo)algo), 2 * hash_algo_len((enum hash_algo)algo));
		return -EINVAL;
	}
	return algo;
}

int dbcli_open(struct cli *cli, const char *cmd, struct hashdb *db, unsigned flags)
{
	char err[1024];
	int r;

	r = hashdb_open(db, cli->cfg.db, flags, err, sizeof(err));
	if (r < 0)
		cli_error(cmd, "%s", err);
	return r;
}

int dbcli_exit(int r)
{
	return r == -EINVAL ? EXIT_USAGE : EXIT_ERROR;
}

/* No audit directory means hashgate is not installed here (tests, ad-hoc databases). */
static int audit_dir_exists(struct cli *cli)
{
	struct stat sb;
	char *dir;
	int r;

	if (!cli->cfg.audit_log)
		return 0;
	dir = strdup(cli->cfg.audit_log);
	if (!dir)
		return 1;
	r = stat(dirname(dir), &sb);
	free(dir);
	return r == 0;
}

int dbcli_audit_check(struct cli *cli, const char *cmd)
{
	return audit_dir_exists(cli) ? adm_audit_check(cli, cmd) : 0;
}

int dbcli_audit(struct cli *cli, const char *cmd, const char *action, const char *fmt, ...)
{
	char *fields = NULL;
	va_list ap;
	int r;

	if (!audit_dir_exists(cli))
		return 0;
	va_start(ap, fmt);
	r = vasprintf(&fields, fmt, ap);
	va_end(ap);
	if (r < 0) {
		cli_error(cmd, "out of memory writing the audit record");
		return -ENOMEM;
	}
	r = adm_audit(cli, cmd, action, "%s", fields);
	if (r < 0)
		cli_error(cmd, "the change above was made but its audit record is missing");
	free(fields);
	return r;
}
