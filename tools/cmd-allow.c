/*
 * cmd-allow.c - `hashgate allow add|remove|list`: the allowlist of known false positives.
 * An entry clears only the hits it vouches for (matcher_check): an allowlisted md5/sha1/sha256
 * of an upload makes that file clean whatever matches it; an allowlisted PDQ (the upload's,
 * or a database PDQ, which is then never reported) clears PDQ hits only, never an exact hit
 * of the upload in a list.  Each change is one transaction that bumps the database
 * generation, so daemons pick it up within a poll.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hashdb/db.h"
#include "hashdb/hash.h"
#include "tools/adm.h"
#include "tools/cli.h"
#include "tools/commands.h"
#include "tools/dbcli.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: hashgate allow add [--type T] [--reason TEXT] HASH...\n"
		"       hashgate allow remove [--type T] HASH...\n"
		"       hashgate allow list\n"
		"\n"
		"Common options: --db PATH, --json.  HASH is hex or TYPE:HEX (md5, sha1, sha256, pdq);\n"
		"64 hex digits need a type.\n"
		"\n"
		"An md5, sha1 or sha256 entry clears every hit of the file with that hash (its\n"
		"exact hashes and its PDQ).  A pdq entry is for perceptual false positives (near-blank\n"
		"images, logos): it clears PDQ hits of a picture with that PDQ, and a listed PDQ equal\n"
		"to it is never reported, but an upload whose own md5/sha1/sha256 is listed is still\n"
		"acted on.\n");
}

static int allow_change(int argc, char **argv, struct cli *cli, int add)
{
	const char *cmd = add ? "allow add" : "allow remove";
	const char *reason = NULL, *v;
	const char *hashes[argc > 0 ? argc : 1];
	uint8_t val[HASH_MAX_LEN];
	struct hashdb db;
	char err[1024], hex[2 * HASH_MAX_LEN + 1];
	int i, r, algo = -1, a, nh = 0;
	unsigned long long done = 0, same = 0;

	for (i = 1; i < argc; i++) {
		const char *arg = argv[i];

		if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
			usage(stdout);
			return 0;
		}
		if ((r = cli_common_option(cli, cmd, argc, argv, &i)) != 0) {
			if (r < 0)
				return EXIT_USAGE;
		} else if ((r = dbcli_opt(cmd, argc, argv, &i, "type", &v)) != 0) {
			if (r < 0 || (algo = dbcli_parse_type(cmd, v)) < 0)
				return EXIT_USAGE;
		} else if (add && (r = dbcli_opt(cmd, argc, argv, &i, "reason", &reason)) != 0) {
			if (r < 0)
				return EXIT_USAGE;
		} else if (arg[0] == '-' && arg[1] == '-') {
			cli_error(cmd, "unknown option '%s'", arg);
			return EXIT_USAGE;
		} else {
			hashes[nh++] = arg;
		}
	}
	if (!nh) {
		cli_error(cmd, "no HASH given");
		return EXIT_USAGE;
	}
	for (i = 0; i < nh; i++)
		if (dbcli_parse_hash(cmd, hashes[i], algo, val) < 0)
			return EXIT_USAGE;
	if (dbcli_open(cli, cmd, &db, 0) < 0)
		return EXIT_ERROR;
	r = hashdb_begin(&db, err, sizeof(err));
	if (r < 0)
		goto fail;
	for (i = 0; i < nh; i++) {
		a = dbcli_parse_hash(cmd, hashes[i], algo, val);
		if (add)
			r = hashdb_allow_add(&db, (enum hash_algo)a, val, reason, err, sizeof(err));
		else
			r = hashdb_allow_remove(&db, (enum hash_algo)a, val, err, sizeof(err));
		if (r < 0)
			goto fail;
		if (r > 0)
			done++;
		else
			same++;
	}
	/* Staged, not committed: roll it back when its audit record cannot be written. */
	if (dbcli_audit_check(cli, cmd) < 0)
		goto fail_quiet;
	r = hashdb_commit(&db, err, sizeof(err));
	if (r < 0)
		goto fail;
	hashdb_close(&db);
	if (cli->json)
		printf("{\"%s\":%llu,\"%s\":%llu}\n", add ? "added" : "removed", done,
		       add ? "existing" : "absent", same);
	else if (!cli->quiet)
		printf(add ? "%llu added to the allowlist, %llu already there\n" :
		       "%llu removed from the allowlist, %llu not found\n", done, same);
	for (i = 0; i < nh; i++) {
		a = dbcli_parse_hash(cmd, hashes[i], algo, val);
		hex_encode(val, hash_algo_len((enum hash_algo)a), hex);
		if (dbcli_audit(cli, cmd, add ? "allow.add" : "allow.remove",
				"\"algo\":\"%s\",\"hash\":\"%s\"",
				hash_algo_name((enum hash_algo)a), hex) < 0)
			return EXIT_ERROR;
	}
	return !add && done == 0 ? EXIT_FOUND : 0;
fail:
	cli_error(cmd, "%s", err);
fail_quiet:
	hashdb_rollback(&db);
	hashdb_close(&db);
	return EXIT_ERROR;
}

struct list_ctx {
	struct cli *cli;
	int n;
};

static int print_allow(const struct hashdb_allow *a, void *arg)
{
	struct list_ctx *x = arg;
	char hex[2 * HASH_MAX_LEN + 1], t[32];

	hex_encode(a->value, hash_algo_len(a->algo), hex);
	if (x->cli->json) {
		printf("%s{\"algo\":\"%s\",\"hash\":\"%s\",\"added\":\"%s\",\"reason\":",
		       x->n ? "," : "", hash_algo_name(a->algo), hex, adm_fmt_time(a->added, t));
		if (a->reason)
			adm_json_print(stdout, a->reason);
		else
			fputs("null", stdout);
		putchar('}');
	} else {
		printf("%-6s %s  %s%s%s\n", hash_algo_name(a->algo), hex, adm_fmt_time(a->added, t),
		       a->reason ? "  " : "", a->reason ? a->reason : "");
	}
	x->n++;
	return 0;
}

static int allow_list(int argc, char **argv, struct cli *cli)
{
	const char *cmd = "allow list";
	struct list_ctx x = { cli, 0 };
	struct hashdb db;
	char err[1024];
	int i, r;

	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		}
		r = cli_common_option(cli, cmd, argc, argv, &i);
		if (r < 0)
			return EXIT_USAGE;
		if (!r) {
			cli_error(cmd, "unknown option '%s'", argv[i]);
			return EXIT_USAGE;
		}
	}
	if (dbcli_open(cli, cmd, &db, HASHDB_RDONLY) < 0)
		return EXIT_ERROR;
	if (cli->json)
		putchar('[');
	r = hashdb_allow_foreach(&db, print_allow, &x, err, sizeof(err));
	hashdb_close(&db);
	if (cli->json)
		printf("]\n");
	if (r < 0) {
		cli_error(cmd, "%s", err);
		return EXIT_ERROR;
	}
	if (!cli->json && !x.n && !cli->quiet)
		printf("the allowlist is empty\n");
	return 0;
}

static int allow_add(int argc, char **argv, struct cli *cli)
{
	return allow_change(argc, argv, cli, 1);
}

static int allow_remove(int argc, char **argv, struct cli *cli)
{
	return allow_change(argc, argv, cli, 0);
}

static const struct cli_sub allow_subs[] = {
	{ "add",	allow_add,	"allowlist hashes: never acted on" },
	{ "remove",	allow_remove,	"take hashes off the allowlist" },
	{ "list",	allow_list,	"show the allowlist" },
};

int cmd_allow(int argc, char **argv, struct cli *cli)
{
	/* Common options may also come between 'allow' and its subcommand. */
	return CLI_DISPATCH(cli, "allow", argc, argv, allow_subs, usage);
}
