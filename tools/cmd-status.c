/*
 * cmd-status.c - `hashgate status`: the running hashgatefs instances (from the status files
 * they publish in state_dir), their database generation, counters and uptime; optionally
 * (re)writes the Prometheus textfile.
 *
 * Read-only apart from the textfile; status files of daemons that died are skipped by
 * status_read_all(), so a crash never shows as a running instance.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hashdb/db.h"
#include "hashdb/status.h"
#include "tools/adm.h"
#include "tools/commands.h"

#define CMD "status"

static void usage(FILE *f)
{
	fprintf(f,
"usage: hashgate status [--json] [--prometheus PATH]\n"
"\n"
"Show every running hashgatefs instance: pid, mountpoint, backing directory, uptime, the\n"
"generation of the hash database it matches against (and whether that is the database's\n"
"current generation), and its counters: uploads scanned and clean, matches, quarantined,\n"
"blocked, scan errors, bytes scanned.  Instances publish this in 'state_dir' of\n"
"hashgate.conf; instances that died are not shown.\n"
"\n"
"  --prometheus PATH  also write the figures as a node_exporter textfile-collector file\n"
"                     (atomically); without it, 'prometheus_textfile' from the config is\n"
"                     written when set\n"
"  --json             one JSON object\n"
"\n"
"The quarantine store's size against quarantine_max_size and evidence hashgatefs had to\n"
"keep outside it (see 'hashgate quarantine retry') are shown too.\n"
"\n"
"Exit status: 0 success (also when nothing runs), 1 the quarantine needs an admin (at 90%%\n"
"of quarantine_max_size or more, evidence kept outside the store or lost), 2 error,\n"
"64 usage error.\n");
}

static void fmt_uptime(int64_t s, char *buf, size_t len)
{
	if (s < 0)
		s = 0;
	if (s >= 86400)
		snprintf(buf, len, "%lldd %02lldh%02lldm", (long long)(s / 86400),
			 (long long)(s % 86400 / 3600), (long long)(s % 3600 / 60));
	else
		snprintf(buf, len, "%02lldh%02lldm%02llds", (long long)(s / 3600),
			 (long long)(s % 3600 / 60), (long long)(s % 60));
}

int cmd_status(int argc, char **argv, struct cli *cli)
{
	const char *prom = NULL;
	struct hg_status *st = NULL;
	uint64_t dbgen = 0;
	int have_gen = 0, i, r, alarm = 0;
	size_t n = 0;
	int64_t now = (int64_t)time(NULL);
	char err[512], up[32], t[32], b[32];

	for (i = 1; i < argc; i++) {
		r = cli_common_option(cli, CMD, argc, argv, &i);
		if (r < 0)
			return EXIT_USAGE;
		if (r > 0)
			continue;
		if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
			usage(stdout);
			return 0;
		} else if (strcmp(argv[i], "--prometheus") == 0 && i + 1 < argc) {
			prom = argv[++i];
		} else if (strncmp(argv[i], "--prometheus=", 13) == 0) {
			prom = argv[i] + 13;
		} else {
			cli_error(CMD, "unknown or incomplete argument '%s' (see 'hashgate status "
				  "--help')", argv[i]);
			return EXIT_USAGE;
		}
	}
	if (!prom)
		prom = cli->cfg.prometheus_textfile;
	r = status_read_all(cli->cfg.state_dir, &st, &n);
	if (r < 0) {
		cli_error(CMD, "cannot read the state directory %s: %s", cli->cfg.state_dir,
			  strerror(-r));
		return EXIT_ERROR;
	}
	/* The database's own generation: shows whether every daemon has reloaded. */
	if (hashdb_read_generation(cli->cfg.db, &dbgen, err, sizeof(err)) == 0)
		have_gen = 1;
	if (cli->json) {
		printf("{\"state_dir\":");
		adm_json_print(stdout, cli->cfg.state_dir);
		printf(",\"database\":");
		adm_json_print(stdout, cli->cfg.db);
		if (have_gen)
			printf(",\"database_generation\":%" PRIu64, dbgen);
		printf(",\"instances\":[");
		for (size_t k = 0; k < n; k++) {
			printf("%s{\"pid\":%ld,\"mountpoint\":", k ? "," : "", (long)st[k].pid);
			adm_json_print(stdout, st[k].mountpoint);
			printf(",\"backing\":");
			adm_json_print(stdout, st[k].backing);
			printf(",\"started\":%" PRId64 ",\"uptime\":%" PRId64 ",\"updated\":%" PRId64
			       ",\"generation\":%" PRIu64 ",\"uploads_scanned\":%" PRIu64
			       ",\"uploads_clean\":%" PRIu64 ",\"matches\":%" PRIu64
			       ",\"quarantined\":%" PRIu64 ",\"blocked\":%" PRIu64 ",\"errors\":%" PRIu64
			       ",\"bytes_scanned\":%" PRIu64 "}", st[k].started, now - st[k].started,
			       st[k].updated, st[k].generation, st[k].uploads_scanned,
			       st[k].uploads_clean, st[k].matches, st[k].quarantined, st[k].blocked,
			       st[k].errors, st[k].bytes_scanned);
		}
		printf("]");
		alarm = quarantine_status(cli, st, n, 1);
		printf("}\n");
	} else {
		if (have_gen)
			printf("database %s: generation %" PRIu64 "\n", cli->cfg.db, dbgen);
		else
			printf("database %s: unreadable (%s)\n", cli->cfg.db, err);
		if (!n)
			printf("no hashgatefs instance running (state dir %s)\n", cli->cfg.state_dir);
		for (size_t k = 0; k < n; k++) {
			fmt_uptime(now - st[k].started, up, sizeof(up));
			printf("\nhashgatefs pid %ld: ", (long)st[k].pid);
			adm_text_print(stdout, st[k].mountpoint);
			printf(" (backing ");
			adm_text_print(stdout, st[k].backing);
			printf(")\n");
			printf("  started     %s, up %s; status updated %" PRId64 " s ago\n",
			       adm_fmt_time(st[k].started, t), up, now - st[k].updated);
			printf("  database    generation %" PRIu64 "%s\n", st[k].generation,
			       !have_gen ? "" : st[k].generation == dbgen ? " (current)" :
			       " (NOT current: reload pending)");
			printf("  uploads     %" PRIu64 " scanned, %" PRIu64 " clean, %s\n",
			       st[k].uploads_scanned, st[k].uploads_clean,
			       adm_fmt_bytes(st[k].bytes_scanned, b));
			printf("  matches     %" PRIu64 " (%" PRIu64 " quarantined, %" PRIu64
			       " blocked)\n", st[k].matches, st[k].quarantined, st[k].blocked);
			printf("  errors      %" PRIu64 "\n", st[k].errors);
			if (st[k].evidence_kept || st[k].evidence_lost)
				printf("  evidence    %" PRIu64 " kept outside the quarantine store, %"
				       PRIu64 " lost\n", st[k].evidence_kept, st[k].evidence_lost);
		}
		alarm = quarantine_status(cli, st, n, 0);
	}
	if (prom) {
		r = status_write_prometheus(prom, st, n);
		if (r < 0) {
			cli_error(CMD, "cannot write the Prometheus textfile %s: %s", prom,
				  strerror(-r));
			free(st);
			return EXIT_ERROR;
		}
	}
	free(st);
	return alarm ? 1 : 0;
}
