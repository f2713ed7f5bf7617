/*
 * cli.h - what every `hashgate` subcommand shares: the command signature, exit codes, the
 * global options (config file, database path, JSON output) parsed once by tools/hashgate.c,
 * and the subcommand dispatch (tools/cli.c).
 *
 * Exit codes (documented in hashgate(8)):
 *   0  success
 *   1  the command worked and found something: a scan found matches, `log verify` found the
 *      chain broken, `hash` was given a file that could not be read
 *   2  error: bad database, I/O failure, refused operation
 *   64 usage error (EX_USAGE): unknown option, missing argument
 */
#ifndef TOOLS_CLI_H
#define TOOLS_CLI_H

#include <stdbool.h>
#include <stdio.h>

#include "hashdb/config.h"

#define EXIT_FOUND	1
#define EXIT_ERROR	2
#define EXIT_USAGE	64

struct cli {
	struct hg_config cfg;		/* defaults, then the config file, then --db etc. */
	const char *config_path;	/* the file read, or NULL if none existed */
	const char *config_want;	/* --config FILE as given, or NULL */
	bool json;			/* --json given before or after the subcommand */
	bool quiet;
};

/* argv[0] is the subcommand name; options after it are the subcommand's own. */
typedef int (*cli_fn)(int argc, char **argv, struct cli *cli);

struct cli_command {
	const char *name;
	cli_fn fn;
	const char *summary;
};

/* Print "hashgate CMD: " + message to stderr. */
__attribute__((format(printf, 2, 3)))
void cli_error(const char *cmd, const char *fmt, ...);

/*
 * Shared option handling for subcommands: if argv[*i] is --db PATH / --db=PATH / --json /
 * --config, consume it (advancing *i) and return 1; 0 if not one of these; -1 on a missing
 * value (after printing an error).
 */
int cli_common_option(struct cli *cli, const char *cmd, int argc, char **argv, int *i);

/*
 * For commands with subcommands (db, allow): consume common options standing between the
 * command and its subcommand, then shift argc and argv so that argv[1] is the subcommand.
 * 0 on success; -EINVAL after printing an option error; -ENOENT when no subcommand follows
 * (the caller prints its usage).
 */
int cli_subcommand(struct cli *cli, const char *cmd, int *argc, char ***argv);

/* One subcommand of a command (db add, feed update...): argv[0] is its name. */
struct cli_sub {
	const char *name;
	cli_fn fn;
	const char *help;		/* one line, listed when the subcommand given is unknown */
};

/*
 * The dispatch of a command with subcommands (tools/cli.c): common options standing before the
 * subcommand are consumed (cli_subcommand), --help / -h / help print usage() to stdout, a known
 * name runs its fn with argv shifted so argv[0] is the subcommand.  A missing or unknown
 * subcommand is an error naming the valid ones (EXIT_USAGE); nothing runs.
 */
int cli_dispatch(struct cli *cli, const char *cmd, int argc, char **argv,
		 const struct cli_sub *subs, size_t n, void (*usage)(FILE *));
#define CLI_DISPATCH(cli, cmd, argc, argv, subs, usage) \
	cli_dispatch(cli, cmd, argc, argv, subs, sizeof(subs) / sizeof((subs)[0]), usage)

/* 1 if stdout is a terminal and not --json (progress bars, colours). */
int cli_interactive(const struct cli *cli);

#endif
