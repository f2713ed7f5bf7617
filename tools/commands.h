/*
 * commands.h - the subcommands of `hashgate`, each defined in tools/cmd-NAME.c.
 * Weak while the tree is being built up, so a build without one still links and says so.
 */
#ifndef TOOLS_COMMANDS_H
#define TOOLS_COMMANDS_H

#include "tools/cli.h"

#define CLI_CMD(name) __attribute__((weak)) int name(int argc, char **argv, struct cli *cli)
CLI_CMD(cmd_hash);
CLI_CMD(cmd_db);
CLI_CMD(cmd_allow);
CLI_CMD(cmd_quarantine);
CLI_CMD(cmd_log);
CLI_CMD(cmd_scan);
CLI_CMD(cmd_report);
CLI_CMD(cmd_status);
CLI_CMD(cmd_config);
CLI_CMD(cmd_key);
CLI_CMD(cmd_feed);
#undef CLI_CMD

struct hg_status;
/*
 * `hashgate status`'s quarantine part (tools/cmd-quarantine.c): the store's size against
 * quarantine_max_size and evidence kept outside it or lost, from the store when readable and
 * from the daemons' status (st, n) otherwise.  Text, or with json a ",\"quarantine\":{...}"
 * member.  Returns 1 when that needs an admin (alarm), else 0.
 */
int quarantine_status(struct cli *cli, const struct hg_status *st, size_t n, int json);

#endif
