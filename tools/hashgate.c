/*
 * hashgate.c - entry point of the `hashgate` admin CLI: global options, the config file, and a
 * git-style table of subcommands, one file (tools/cmd-NAME.c) per subcommand.
 *
 * Order of precedence for settings: built-in defaults < config file < command-line options.
 * A missing default config file is fine; a missing file named with --config or $HASHGATE_CONFIG
 * is an error (the defaults would silently work on another database).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hashdb/config.h"
#include "hashdb/hash.h"
#include "hashdb/hglog.h"
#include "tools/cli.h"
#include "tools/commands.h"

static const struct cli_command commands[] = {
	{ "hash",	cmd_hash,	"print md5, sha1, sha256 and PDQ of files" },
	{ "db",		cmd_db,		"manage the hash database (init, import, add, remove, lists, stats, export, dump, restore, compact)" },
	{ "allow",	cmd_allow,	"manage the allowlist of hashes never acted on" },
	{ "quarantine",	cmd_quarantine,	"list, show, review, restore, export, hold, release, retry, delete and purge quarantined uploads" },
	{ "log",	cmd_log,	"show and verify the audit log" },
	{ "scan",	cmd_scan,	"scan existing storage against the database" },
	{ "report",	cmd_report,	"compliance report of matches" },
	{ "status",	cmd_status,	"show running hashgatefs instances and their counters" },
	{ "feed",	cmd_feed,	"hash lists kept current from HTTPS feeds (add, list, remove, update, status, keygen, sign)" },
	{ "config",	cmd_config,	"check a configuration file (config check [FILE])" },
	{ "key",	cmd_key,	"show the host's signing key for evidence bundles (key show)" },
};

void cli_error(const char *cmd, const char *fmt, ...)
{
	char msg[4096], esc[4096];
	va_list ap;

	/* Messages quote list files, paths and arguments: no raw control characters. */
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	hglog_escape_text(esc, sizeof(esc), msg, strlen(msg));
	fprintf(stderr, "hashgate%s%s: %s\n", cmd ? " " : "", cmd ? cmd : "", esc);
}

int cli_interactive(const struct cli *cli)
{
	return !cli->json && isatty(STDOUT_FILENO);
}

static int set_db(struct cli *cli, const char *cmd, const char *path)
{
	char err[256];

	if (config_set(&cli->cfg, "db", path, err, sizeof(err)) < 0) {
		cli_error(cmd, "%s", err);
		return -1;
	}
	return 1;
}

int cli_common_option(struct cli *cli, const char *cmd, int argc, char **argv, int *i)
{
	const char *a = argv[*i];

	if (strcmp(a, "--json") == 0) {
		cli->json = true;
		return 1;
	}
	if (strncmp(a, "--db=", 5) == 0)
		return set_db(cli, cmd, a + 5);
	if (strcmp(a, "--db") == 0) {
		if (*i + 1 >= argc) {
			cli_error(cmd, "option '--db' needs a path");
			return -1;
		}
		return set_db(cli, cmd, argv[++*i]);
	}
	return 0;
}

int cli_subcommand(struct cli *cli, const char *cmd, int *argc, char ***argv)
{
	int i = 1, r;

	while (i < *argc && (r = cli_common_option(cli, cmd, *argc, *argv, &i)) != 0) {
		if (r < 0)
			return -EINVAL;
		i++;
	}
	if (i >= *argc)
		return -ENOENT;
	*argc -= i - 1;
	*argv += i - 1;
	return 0;
}

static void usage(FILE *f)
{
	size_t k;

	fprintf(f, "usage: hashgate [--config FILE] [--db PATH] [--json] COMMAND [ARGS]\n\n"
		   "commands:\n");
	for (k = 0; k < sizeof(commands) / sizeof(commands[0]); k++)
		fprintf(f, "  %-11s %s\n", commands[k].name, commands[k].summary);
	fprintf(f, "\n'hashgate COMMAND --help' describes a command; see also hashgate(8).\n");
}

static int load_config(struct cli *cli, const char *path, int explicit)
{
	char err[512];
	int r;

	r = config_load(&cli->cfg, path, err, sizeof(err));
	if (r == -ENOENT && !explicit)
		return 0;
	if (r < 0) {
		cli_error(NULL, "%s", err);
		return -1;
	}
	cli->config_path = path;
	return 0;
}

int main(int argc, char **argv)
{
	struct cli cli = { 0 };
	const char *config = NULL, *db = NULL;
	int i, rc = EXIT_USAGE;
	size_t k;

	if (config_init(&cli.cfg) < 0) {
		cli_error(NULL, "out of memory");
		return EXIT_ERROR;
	}
	for (i = 1; i < argc && argv[i][0] == '-'; i++) {
		const char *a = argv[i];

		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			rc = 0;
			goto out_config;
		} else if (strcmp(a, "--version") == 0) {
			printf("hashgate %s\n", HASHGATE_VERSION);
			rc = 0;
			goto out_config;
		} else if (strcmp(a, "--json") == 0) {
			cli.json = true;
		} else if (strcmp(a, "--config") == 0 && i + 1 < argc) {
			config = argv[++i];
		} else if (strncmp(a, "--config=", 9) == 0) {
			config = a + 9;
		} else if (strcmp(a, "--db") == 0 && i + 1 < argc) {
			db = argv[++i];
		} else if (strncmp(a, "--db=", 5) == 0) {
			db = a + 5;
		} else {
			cli_error(NULL, "unknown or incomplete option '%s'", a);
			usage(stderr);
			goto out_config;
		}
	}
	if (i >= argc) {
		usage(stderr);
		goto out_config;
	}
	/* scan and hash hash through libhashdb, which reads it (hash.c): refuse a typo now */
	if (hash_impl_env_check() < 0) {
		cli_error(NULL, "HASHGATE_HASH_IMPL=%s: expected auto or evp",
			  getenv("HASHGATE_HASH_IMPL"));
		goto out_config;
	}
	cli.config_want = config;
	/* `config check` reads the file itself: a broken one must not stop it. */
	if (strcmp(argv[i], "config") != 0 &&
	    load_config(&cli, config ? config : config_default_path(),
			config != NULL || config_path_from_env()) < 0) {
		rc = EXIT_ERROR;
		goto out_config;
	}
	if (db && set_db(&cli, NULL, db) < 0) {
		rc = EXIT_USAGE;
		goto out_config;
	}
	for (k = 0; k < sizeof(commands) / sizeof(commands[0]); k++) {
		if (strcmp(argv[i], commands[k].name) != 0)
			continue;
		if (!commands[k].fn) {
			cli_error(NULL, "'%s' is not available in this build", argv[i]);
			rc = EXIT_ERROR;
			goto out_config;
		}
		rc = commands[k].fn(argc - i, argv + i, &cli);
		goto out_config;
	}
	cli_error(NULL, "'%s' is not a hashgate command", argv[i]);
	usage(stderr);
out_config:
	config_release(&cli.cfg);
	return rc;
}
