/*
 * cmd-log.c - `hashgate log`: show the audit log (verdicts and admin actions) and verify its
 * hash chain.
 *
 * Reading needs whatever the log file's permissions allow (root by default); nothing here
 * writes to the log, so showing and verifying can run while daemons append.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>

#include "hashdb/audit.h"
#include "tools/adm.h"
#include "tools/commands.h"

#define CMD "log"

static void usage(FILE *f)
{
	fprintf(f,
"usage: hashgate log [--since WHEN] [--json]\n"
"       hashgate log verify [--json]\n"
"\n"
"Show the audit log (the file named by 'audit_log' in hashgate.conf): every verdict of the\n"
"daemons and every admin action, one record per line with sequence number, time, actor and\n"
"action.  --since 7d | @UNIXTIME | YYYY-MM-DD[THH:MM[:SS]] (UTC) shows only newer records;\n"
"--json prints the records as stored (one JSON object per line: seq, time, actor,\n"
"action, the record's own members in \"data\", then prev and hash; records written before\n"
"hashgate 0.2 have their members at the top level instead of in \"data\").\n"
"\n"
"'verify' recomputes the hash chain: each record holds the SHA-256 of the previous one, so an\n"
"edited, inserted, reordered or deleted record breaks it.  It prints the number of records and\n"
"the last record's hash; keep that hash elsewhere to also detect records cut off the end.\n"
"\n"
"Exit status: 0 success (chain intact), 1 chain broken (the first bad line is named),\n"
"2 error (log unreadable), 64 usage error.\n");
}

/* Value of a top-level integer member "key":N at the start region of a record line. */
static int64_t member_int(const char *line, const char *key)
{
	char pat[32];
	const char *p;

	snprintf(pat, sizeof(pat), "\"%s\":", key);
	p = strstr(line, pat);
	return p ? strtoll(p + strlen(pat), NULL, 10) : -1;
}

/* Copy the JSON string value of "key" (escapes kept as written). */
static void member_str(const char *line, const char *key, char *out, size_t len)
{
	char pat[32];
	const char *p;
	size_t n = 0;

	snprintf(pat, sizeof(pat), "\"%s\":\"", key);
	p = strstr(line, pat);
	out[0] = '\0';
	if (!p)
		return;
	for (p += strlen(pat); *p && *p != '"' && n + 1 < len; p++) {
		if (*p == '\\' && p[1])
			out[n++] = *p++;
		out[n++] = *p;
	}
	out[n] = '\0';
}

static int show(struct cli *cli, int64_t since)
{
	char *line = NULL, t[32], actor[256], action[128];
	size_t cap = 0;
	ssize_t n;
	FILE *f;

	f = fopen(cli->cfg.audit_log, "re");
	if (!f) {
		cli_error(CMD, "cannot read the audit log %s: %s", cli->cfg.audit_log,
			  strerror(errno));
		return EXIT_ERROR;
	}
	flock(fileno(f), LOCK_SH);
	while ((n = getline(&line, &cap, f)) > 0) {
		int64_t tm = member_int(line, "time"), seq = member_int(line, "seq");
		const char *rest, *end;

		if (line[n - 1] == '\n')
			line[--n] = '\0';
		if (since && tm < since)
			continue;
		if (cli->json) {
			puts(line);
			continue;
		}
		member_str(line, "actor", actor, sizeof(actor));
		member_str(line, "action", action, sizeof(action));
		/*
		 * The record's own members sit between "action" and the fixed chain tail
		 * (,"prev":"<64>","hash":"<64>"}, 149 bytes); format 2 wraps them in "data":{...}.
		 */
		rest = strstr(line, "\"action\":\"");
		rest = rest ? strstr(rest + 10, "\",") : NULL;
		end = n > 149 ? line + n - 149 : NULL;
		if (rest && end && strncmp(rest + 2, "\"data\":{", 8) == 0 && end[-1] == '}') {
			rest += 8;
			end--;
		}
		printf("%6" PRId64 "  %s  %-22s  %-20s", seq, adm_fmt_time(tm, t), actor, action);
		if (rest && end && rest + 2 < end)
			printf("  %.*s", (int)(end - (rest + 2)), rest + 2);
		putchar('\n');
	}
	free(line);
	fclose(f);
	return 0;
}

static int verify(struct cli *cli)
{
	char err[1024], last[65];
	uint64_t n = 0;
	int r;

	r = audit_verify_last(cli->cfg.audit_log, &n, last, err, sizeof(err));
	if (r == -EBADMSG) {
		if (cli->json) {
			printf("{\"ok\":false,\"log\":");
			adm_json_print(stdout, cli->cfg.audit_log);
			printf(",\"error\":");
			adm_json_print(stdout, err);
			printf("}\n");
		} else {
			printf("BROKEN: %s\n", err);
		}
		return EXIT_FOUND;
	}
	if (r < 0) {
		cli_error(CMD, "cannot verify: %s", err);
		return EXIT_ERROR;
	}
	if (cli->json) {
		printf("{\"ok\":true,\"log\":");
		adm_json_print(stdout, cli->cfg.audit_log);
		printf(",\"records\":%" PRIu64 ",\"last_hash\":\"%s\"}\n", n, last);
	} else {
		printf("ok: %s: %" PRIu64 " records, chain intact; last hash %s\n",
		       cli->cfg.audit_log, n, last);
	}
	return 0;
}

int cmd_log(int argc, char **argv, struct cli *cli)
{
	const char *since = NULL;
	int64_t since_t = 0;
	bool do_verify = false;
	int i, r;

	for (i = 1; i < argc; i++) {
		r = cli_common_option(cli, CMD, argc, argv, &i);
		if (r < 0)
			return EXIT_USAGE;
		if (r > 0)
			continue;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--since") == 0 && i + 1 < argc) {
			since = argv[++i];
		} else if (strcmp(argv[i], "verify") == 0 && i == 1) {
			do_verify = true;
		} else {
			cli_error(CMD, "unknown or incomplete argument '%s' (see 'hashgate log "
				  "--help')", argv[i]);
			return EXIT_USAGE;
		}
	}
	if (do_verify)
		return verify(cli);
	if (since && adm_parse_since(since, &since_t) < 0) {
		cli_error(CMD, "option '--since %s': expected a duration (7d, 12h), @UNIXTIME or "
			  "YYYY-MM-DD[THH:MM[:SS]]", since);
		return EXIT_USAGE;
	}
	return show(cli, since_t);
}
