/*
 * cmd-config.c - `hashgate config check [FILE]`: test a configuration before a daemon or a
 * SIGHUP uses it (like `nginx -t`): every line parses, and the files it names can be used
 * (database readable, audit log appendable, quarantine key present, state dir creatable, the
 * on_match_exec programs executable and their user present, every feed in feeds_dir valid).
 *
 * Reads only.  The main program does not load the configuration for this command, so a broken
 * file can be checked at all; FILE defaults to --config, $HASHGATE_CONFIG or the system file.
 */
#include <errno.h>
#include <inttypes.h>
#include <libgen.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hashdb/audit.h"
#include "hashdb/config.h"
#include "hashdb/db.h"
#include "tools/adm.h"
#include "tools/commands.h"
#include "tools/feed.h"

#define CMD "config"

static void usage(FILE *f)
{
	fprintf(f,
"usage: hashgate config check [FILE]\n"
"\n"
"Test a configuration file (default: --config, $HASHGATE_CONFIG or %s) as hashgatefs and\n"
"hashgate would read it: every line must parse (errors name FILE:LINE), and the paths it\n"
"names must work: the hash database opens and has a generation, the audit log can take an\n"
"append, the quarantine key file exists once the quarantine store does, and the directory of\n"
"state_dir exists.  Nothing is changed.\n"
"\n"
"Exit status: 0 the configuration is good, 1 it has problems (each printed), 2 the file\n"
"cannot be read, 64 usage error.\n", CONFIG_DEFAULT_PATH);
}

static int parent_exists(const char *path)
{
	char *d = strdup(path);
	struct stat sb;
	int r;

	if (!d)
		return 0;
	r = stat(dirname(d), &sb) == 0 && S_ISDIR(sb.st_mode);
	free(d);
	return r;
}

static int check(const char *file, int json)
{
	struct hg_config c;
	struct stat sb;
	char err[1024];
	uint64_t gen = 0, seq = 0;
	int r, problems = 0;

	if (config_init(&c) < 0) {
		cli_error(CMD, "out of memory");
		return EXIT_ERROR;
	}
	r = config_load(&c, file, err, sizeof(err));
	if (r < 0) {
		if (json) {
			printf("{\"file\":");
			adm_json_print(stdout, file);
			printf(",\"ok\":false,\"problems\":[");
			adm_json_print(stdout, err);
			printf("]}\n");
		} else {
			printf("hashgate config: %s\n", err);
			printf("hashgate config: configuration file %s test failed\n", file);
		}
		config_release(&c);
		return r == -ENOENT || r == -EACCES || r == -EIO ? EXIT_ERROR : EXIT_FOUND;
	}
#define PROBLEM(...) do { \
		problems++; \
		if (!json) { \
			printf("hashgate config: "); \
			printf(__VA_ARGS__); \
			putchar('\n'); \
		} \
	} while (0)
	if (!json)
		printf("hashgate config: the syntax of %s is ok\n", file);
	if (hashdb_read_generation(c.db, &gen, err, sizeof(err)) < 0)
		PROBLEM("db = %s: %s", c.db, err);
	if (audit_check_tail(c.audit_log, &seq, err, sizeof(err)) < 0)
		PROBLEM("audit_log = %s: %s", c.audit_log, err);
	else if (!parent_exists(c.audit_log))
		PROBLEM("audit_log = %s: its directory does not exist", c.audit_log);
	if (stat(c.quarantine, &sb) == 0 && access(c.quarantine_key, R_OK) < 0)
		PROBLEM("quarantine_key = %s: %s (the store %s exists)", c.quarantine_key,
			strerror(errno), c.quarantine);
	if (!parent_exists(c.state_dir))
		PROBLEM("state_dir = %s: its parent directory does not exist", c.state_dir);
	/* hooks: a missing program would only show as hook_failures after the first match */
	if (c.on_match_exec && access(c.on_match_exec, X_OK) < 0)
		PROBLEM("on_match_exec = %s: %s", c.on_match_exec, strerror(errno));
	for (size_t k = 0; k < c.ncat_exec; k++)
		if (*c.cat_exec[k].path && access(c.cat_exec[k].path, X_OK) < 0)
			PROBLEM("on_match_exec.%s = %s: %s", c.cat_exec[k].category,
				c.cat_exec[k].path, strerror(errno));
	if (c.on_match_exec_user && !getpwnam(c.on_match_exec_user))
		PROBLEM("on_match_exec_user = %s: no such user", c.on_match_exec_user);
	{
		char **names = NULL;
		size_t n = 0;
		struct feed f;

		if (feed_names(c.feeds_dir, &names, &n, err, sizeof(err)) < 0)
			PROBLEM("feeds_dir = %s", err);
		for (size_t k = 0; k < n; k++) {
			if (feed_load(&f, c.feeds_dir, names[k], err, sizeof(err)) < 0)
				PROBLEM("feed %s: %s", names[k], err);
			else
				feed_release(&f);
		}
		feed_names_free(names, n);
	}
#undef PROBLEM
	if (json) {
		printf("{\"file\":");
		adm_json_print(stdout, file);
		printf(",\"ok\":%s,\"problems\":%d}\n", problems ? "false" : "true", problems);
	} else {
		printf("hashgate config: configuration file %s test %s\n", file,
		       problems ? "failed" : "is successful");
	}
	config_release(&c);
	return problems ? EXIT_FOUND : 0;
}

static int config_check(int argc, char **argv, struct cli *cli)
{
	const char *file = NULL;
	int i;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else if (!strcmp(argv[i], "--json")) {
			cli->json = true;
		} else if (argv[i][0] == '-' && argv[i][1]) {
			cli_error(CMD, "unknown option '%s'", argv[i]);
			return EXIT_USAGE;
		} else if (!file) {
			file = argv[i];
		} else {
			cli_error(CMD, "more than one FILE given");
			return EXIT_USAGE;
		}
	}
	if (!file)
		file = cli->config_want ? cli->config_want : config_default_path();
	return check(file, cli->json);
}

static const struct cli_sub config_subs[] = {
	{ "check",	config_check,	"check a configuration file and the feed files it names" },
};

int cmd_config(int argc, char **argv, struct cli *cli)
{
	return CLI_DISPATCH(cli, CMD, argc, argv, config_subs, usage);
}
