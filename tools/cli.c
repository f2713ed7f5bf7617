/*
 * cli.c - the subcommand dispatch shared by every `hashgate` command that has subcommands
 * (db, allow, feed, quarantine, config, key): one table of {name, fn, help} per command, one
 * lookup, one wording of the errors.
 *
 * Invariant: an unknown or missing subcommand never runs anything; its error names the word
 * given and every valid subcommand, and exits EXIT_USAGE.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "tools/cli.h"

/* "a, b, c" of a table, for error messages. */
static void sub_names(char *buf, size_t len, const struct cli_sub *subs, size_t n)
{
	size_t i, o = 0;

	buf[0] = '\0';
	for (i = 0; i < n && o < len; i++)
		o += (size_t)snprintf(buf + o, len - o, "%s%s", i ? ", " : "", subs[i].name);
}

static void sub_list(FILE *f, const struct cli_sub *subs, size_t n)
{
	size_t i;

	fprintf(f, "subcommands:\n");
	for (i = 0; i < n; i++)
		fprintf(f, "  %-10s %s\n", subs[i].name, subs[i].help);
}

int cli_dispatch(struct cli *cli, const char *cmd, int argc, char **argv,
		 const struct cli_sub *subs, size_t n, void (*usage)(FILE *))
{
	char names[512];
	const char *sub;
	size_t i;
	int r;

	r = cli_subcommand(cli, cmd, &argc, &argv);
	if (r == -ENOENT) {
		sub_names(names, sizeof(names), subs, n);
		cli_error(cmd, "a subcommand is needed: %s", names);
		usage(stderr);
	}
	if (r < 0)
		return EXIT_USAGE;
	sub = argv[1];
	if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
		usage(stdout);
		return 0;
	}
	for (i = 0; i < n; i++)
		if (!strcmp(sub, subs[i].name))
			return subs[i].fn(argc - 1, argv + 1, cli);
	sub_names(names, sizeof(names), subs, n);
	cli_error(cmd, "unknown subcommand '%s'; valid: %s (see 'hashgate %s --help')", sub,
		  names, cmd);
	sub_list(stderr, subs, n);
	return EXIT_USAGE;
}
