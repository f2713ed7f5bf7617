/*
 * cmd-status.c - `hashgate status`: the running hashgatefs instances (from the status files
 * they publish in state_dir), their database generation, counters and uptime, and what is
 * wrong with them; optionally (re)writes the Prometheus textfile.  Usable as a monitoring
 * check: the exit status says healthy (0), problems (1) or cannot tell (2).
 *
 * Read-only apart from the textfile; status files of daemons that died are skipped by
 * status_read_all(), so a crash never shows as a running instance.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hashdb/audit.h"
#include "hashdb/db.h"
#include "hashdb/status.h"
#include "tools/adm.h"
#include "tools/commands.h"
#include "tools/feed.h"

#define CMD "status"

static void usage(FILE *f)
{
	fprintf(f,
"usage: hashgate status [--json] [--prometheus PATH]\n"
"\n"
"Show every running hashgatefs instance: pid, mountpoint, backing directory, uptime, the\n"
"generation of the hash database it matches against (and whether that is the database's\n"
"current generation), and its counters: uploads scanned and clean, matches, quarantined,\n"
"blocked, scan errors, bytes scanned, audit and quarantine failures.  Instances publish this\n"
"in 'state_dir' of hashgate.conf; instances that died are not shown.\n"
"\n"
"Problems are listed per instance: status not updated for 30 s (hung), database reload\n"
"failing or generation stale, last SIGHUP reload refused, verdict records not written to\n"
"the audit log, matches the quarantine store refused; and for the host: the audit log cannot\n"
"take appends, the database is unreadable.\n"
"\n"
"  --prometheus PATH  also write the figures as a node_exporter textfile-collector file\n"
"                     (atomically); without it, 'prometheus_textfile' from the config is\n"
"                     written when set and writable (a non-root run skips it quietly)\n"
"  --json             one JSON object\n"
"\n"
"The quarantine store's size against quarantine_max_size and evidence hashgatefs had to\n"
"keep outside it (see 'hashgate quarantine retry') are shown too.\n"
"\n"
"Exit status: 0 healthy (also when nothing runs), 1 problems found (listed; also the\n"
"quarantine needing an admin: at 90%% of quarantine_max_size or more, evidence kept outside\n"
"the store or lost), 2 error (the database or the state directory cannot be read, the\n"
"textfile cannot be written),\n"
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

/* Latest mtime of the database and its -wal (a commit may touch only the latter). */
static int64_t db_changed(const char *db)
{
	struct stat sb;
	int64_t t = 0;
	char wal[4096];

	if (stat(db, &sb) == 0)
		t = (int64_t)sb.st_mtime;
	snprintf(wal, sizeof(wal), "%s-wal", db);
	if (stat(wal, &sb) == 0 && (int64_t)sb.st_mtime > t)
		t = (int64_t)sb.st_mtime;
	return t;
}

int cmd_status(int argc, char **argv, struct cli *cli)
{
	const char *prom = NULL;
	struct hg_status *st = NULL;
	struct hg_status_global g = { 0 };
	uint64_t aseq;
	int i, r, explicit_prom = 0, nprob = 0, rc = 0, alarm = 0, nstale = 0;
	struct hg_feed_age *ages = NULL;
	size_t n = 0;
	char err[512], aerr[512], up[32], t[32], b[32], probs[1024];

	g.now = (int64_t)time(NULL);
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
	explicit_prom = prom != NULL;
	if (!prom)
		prom = cli->cfg.prometheus_textfile;
	r = status_read_all(cli->cfg.state_dir, &st, &n);
	if (r < 0) {
		cli_error(CMD, "cannot read the state directory %s: %s", cli->cfg.state_dir,
			  strerror(-r));
		return EXIT_ERROR;
	}
	/* The database's own generation: shows whether every daemon has reloaded. */
	if (hashdb_read_generation(cli->cfg.db, &g.db_generation, err, sizeof(err)) == 0)
		g.db_readable = 1;
	g.db_changed = db_changed(cli->cfg.db);
	/* Whether the next audit record can be appended; unknown when we may not read the log. */
	r = audit_check_tail(cli->cfg.audit_log, &aseq, aerr, sizeof(aerr));
	g.audit_ok = r == 0 ? 1 : r == -EACCES || r == -EPERM ? -1 : 0;
	if (cli->json) {
		printf("{\"state_dir\":");
		adm_json_print(stdout, cli->cfg.state_dir);
		printf(",\"database\":");
		adm_json_print(stdout, cli->cfg.db);
		printf(",\"database_readable\":%s", g.db_readable ? "true" : "false");
		if (g.db_readable)
			printf(",\"database_generation\":%" PRIu64, g.db_generation);
		else {
			printf(",\"database_error\":");
			adm_json_print(stdout, err);
		}
		printf(",\"audit_log_appendable\":%s", g.audit_ok > 0 ? "true" :
		       g.audit_ok == 0 ? "false" : "null");
		printf(",\"instances\":[");
		for (size_t k = 0; k < n; k++) {
			int np = status_problems(&st[k], g.now, g.db_readable ? g.db_generation : 0,
						 g.db_changed, probs, sizeof(probs));

			nprob += np;
			printf("%s{\"pid\":%ld,\"mountpoint\":", k ? "," : "", (long)st[k].pid);
			adm_json_print(stdout, st[k].mountpoint);
			printf(",\"backing\":");
			adm_json_print(stdout, st[k].backing);
			printf(",\"started\":%" PRId64 ",\"uptime\":%" PRId64 ",\"updated\":%" PRId64
			       ",\"generation\":%" PRIu64 ",\"uploads_scanned\":%" PRIu64
			       ",\"uploads_clean\":%" PRIu64 ",\"matches\":%" PRIu64
			       ",\"quarantined\":%" PRIu64 ",\"blocked\":%" PRIu64 ",\"errors\":%" PRIu64
			       ",\"bytes_scanned\":%" PRIu64 ",\"audit_errors\":%" PRIu64
			       ",\"quarantine_errors\":%" PRIu64 ",\"reload_failing\":%s"
			       ",\"config_reload_failed\":%s,\"hook_runs\":%" PRIu64
			       ",\"hook_failures\":%" PRIu64 ",\"hook_dropped\":%" PRIu64
			       ",\"backing_fs\":\"%s\",\"staging\":\"%s\",\"file_handles\":%s"
			       ",\"handles_off\":%s,\"problems\":",
			       st[k].started, g.now - st[k].started,
			       st[k].updated, st[k].generation, st[k].uploads_scanned,
			       st[k].uploads_clean, st[k].matches, st[k].quarantined, st[k].blocked,
			       st[k].errors, st[k].bytes_scanned, st[k].audit_errors,
			       st[k].quarantine_errors, st[k].reload_failing ? "true" : "false",
			       st[k].config_failed ? "true" : "false", st[k].hook_runs,
			       st[k].hook_failures, st[k].hook_dropped, st[k].backing_fs,
			       st[k].staging, st[k].file_handles ? "true" : "false",
			       st[k].handles_off ? "true" : "false");
			adm_json_print(stdout, probs);
			printf("}");
		}
		printf("]");
		alarm = quarantine_status(cli, st, n, 1);
		feed_status_report(cli, 1, 0, &nstale, &ages, &g.nfeeds);
	} else {
		if (g.db_readable)
			printf("database %s: generation %" PRIu64 "\n", cli->cfg.db, g.db_generation);
		else
			printf("database %s: UNREADABLE (%s)\n", cli->cfg.db, err);
		if (g.audit_ok == 0)
			printf("audit log: CANNOT TAKE APPENDS (%s)\n", aerr);
		if (!n)
			printf("no hashgatefs instance running (state dir %s)\n", cli->cfg.state_dir);
		for (size_t k = 0; k < n; k++) {
			int np = status_problems(&st[k], g.now, g.db_readable ? g.db_generation : 0,
						 g.db_changed, probs, sizeof(probs));

			nprob += np;
			fmt_uptime(g.now - st[k].started, up, sizeof(up));
			printf("\nhashgatefs pid %ld: ", (long)st[k].pid);
			adm_text_print(stdout, st[k].mountpoint);
			printf(" (backing ");
			adm_text_print(stdout, st[k].backing);
			printf(")\n");
			printf("  started     %s, up %s; status updated %" PRId64 " s ago\n",
			       adm_fmt_time(st[k].started, t), up, g.now - st[k].updated);
			printf("  database    generation %" PRIu64 "%s%s\n", st[k].generation,
			       !g.db_readable ? "" : st[k].generation == g.db_generation ?
			       " (current)" : " (NOT current)",
			       st[k].reload_failing ? "; RELOAD FAILING" : "");
			printf("  uploads     %" PRIu64 " scanned, %" PRIu64 " clean, %s\n",
			       st[k].uploads_scanned, st[k].uploads_clean,
			       adm_fmt_bytes(st[k].bytes_scanned, b));
			printf("  matches     %" PRIu64 " (%" PRIu64 " quarantined, %" PRIu64
			       " blocked)\n", st[k].matches, st[k].quarantined, st[k].blocked);
			printf("  errors      %" PRIu64 " scan, %" PRIu64 " audit, %" PRIu64
			       " quarantine\n", st[k].errors, st[k].audit_errors,
			       st[k].quarantine_errors);
			if (st[k].hook_runs || st[k].hook_failures || st[k].hook_dropped)
				printf("  hook        %" PRIu64 " runs, %" PRIu64 " failed, %" PRIu64
				       " events dropped (queue full)\n", st[k].hook_runs,
				       st[k].hook_failures, st[k].hook_dropped);
			if (st[k].staging[0])
				printf("  backing     %s, staging %s, file handles %s\n",
				       st[k].backing_fs[0] ? st[k].backing_fs : "?", st[k].staging,
				       st[k].file_handles ? "yes" : st[k].handles_off ?
				       "no (handles=off: inodes reopened by name)" :
				       "no (inodes reopened by name)");
			if (st[k].evidence_kept || st[k].evidence_lost)
				printf("  evidence    %" PRIu64 " kept outside the quarantine store, %"
				       PRIu64 " lost\n", st[k].evidence_kept, st[k].evidence_lost);
			printf("  state       %s%s\n", np ? "PROBLEMS: " : "ok", probs);
		}
		alarm = quarantine_status(cli, st, n, 0);
		feed_status_report(cli, 0, 0, &nstale, &ages, &g.nfeeds);
	}
	alarm += nstale;
	g.feeds = ages;
	if (prom) {
		r = status_write_prometheus_global(prom, st, n, &g);
		/* A non-root caller may not write the config's textfile: that is root's job (a
		 * timer), not an error of ours; a file asked for on the command line is. */
		bool roots = !explicit_prom && geteuid() != 0 &&
			     (r == -EACCES || r == -EPERM || r == -EROFS);

		if (r < 0 && !roots) {
			cli_error(CMD, "cannot write the Prometheus textfile %s: %s", prom,
				  strerror(-r));
			rc = EXIT_ERROR;
		}
	}
	if (cli->json)
		printf(",\"problems\":%d,\"healthy\":%s}\n",
		       nprob + alarm + !g.db_readable + (g.audit_ok == 0),
		       nprob || alarm || !g.db_readable || g.audit_ok == 0 ? "false" : "true");
	free(st);
	free(ages);
	if (rc)
		return rc;
	if (!g.db_readable)
		return EXIT_ERROR;
	return nprob || alarm || g.audit_ok == 0 ? EXIT_FOUND : 0;
}
