/*
 * dbcli.h - option and hash-argument parsing shared by `hashgate db` and `hashgate allow`.
 * Single-threaded CLI helpers; they print their own errors (naming the option) and keep no state.
 */
#ifndef TOOLS_DBCLI_H
#define TOOLS_DBCLI_H

#include <stdint.h>

#include "hashdb/db.h"
#include "tools/cli.h"

/*
 * If argv[*i] is --NAME VALUE or --NAME=VALUE, set *val, advance *i and return 1; 0 if it is
 * another argument; -1 (error printed) when the value is missing.
 */
int dbcli_opt(const char *cmd, int argc, char **argv, int *i, const char *name, const char **val);

/*
 * A hash on the command line: HEX, or ALGO:HEX (e.g. pdq:0f3a...).  algo < 0 infers from the
 * length (32 md5, 40 sha1); 64 digits need a type.  Returns the algo or -EINVAL (error printed).
 */
int dbcli_parse_hash(const char *cmd, const char *arg, int algo, uint8_t out[HASH_MAX_LEN]);

/* --type VALUE: the algo, or -1 with an error printed. */
int dbcli_parse_type(const char *cmd, const char *s);

/* Open cli->cfg.db with flags, printing the error; 0 or -errno. */
int dbcli_open(struct cli *cli, const char *cmd, struct hashdb *db, unsigned flags);

/* Exit status for a -errno from the library. */
int dbcli_exit(int r);

/* Record an admin change in the audit log when one is set up (its directory exists). */
__attribute__((format(printf, 4, 5)))
int dbcli_audit(struct cli *cli, const char *cmd, const char *action, const char *fmt, ...);
/* adm_audit_check() under the same rule as dbcli_audit (no audit directory: nothing to do). */
int dbcli_audit_check(struct cli *cli, const char *cmd);

#endif
