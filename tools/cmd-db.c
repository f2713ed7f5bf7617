/*
 * cmd-db.c - `hashgate db init|import|add|remove|lists|stats|export|dump|restore|compact`: manage
 * the hash database.
 *
 * Every change is one transaction that bumps the database generation, so running daemons
 * reload exactly once per change.  Read-only commands open the database read-only and never
 * create or migrate it; only `db init` creates a file.  Output is text for people, or JSON with
 * --json; errors name the database file (and FILE:LINE for imports) and exit 2; usage errors 64.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "hashdb/db.h"
#include "hashdb/dump.h"
#include "hashdb/hash.h"
#include "hashdb/import.h"
#include "tools/adm.h"
#include "tools/cli.h"
#include "tools/commands.h"
#include "tools/dbcli.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: hashgate db init\n"
		"       hashgate db import --list NAME [--category C] [--origin O] [--list-version V]\n"
		"                          [--type md5|sha1|sha256|pdq] [--format plain|csv|jsonl]\n"
		"                          [--delimiter C] [--columns F,F,...] [--map FIELD=COLUMN]...\n"
		"                          [--delete | --replace] [--check | --dry-run] FILE|-\n"
		"       hashgate db add --list NAME [--category C] [--type T] [--label L] HASH...\n"
		"       hashgate db remove [--list NAME] [--type T] HASH...\n"
		"       hashgate db remove --list NAME --all\n"
		"       hashgate db lists\n"
		"       hashgate db stats\n"
		"       hashgate db export [--list NAME] [--type T] [--format jsonl|csv|plain] [-o FILE]\n"
		"       hashgate db dump [-o FILE]           everything, for db restore\n"
		"       hashgate db restore FILE|-           into an empty database\n"
		"       hashgate db compact                  give free space back (VACUUM)\n"
		"\n"
		"Common options: --db PATH (default from the config file), --json.\n"
		"HASH is hex, or TYPE:HEX (e.g. pdq:0f3a...); 64 hex digits need a type.\n"
		"Import formats (also gzip-compressed): plain (one hex hash per line, optional label\n"
		"after it; or BSD-style 'SHA256 (name) = HEX' lines), csv (header naming\n"
		"md5/sha1/sha256/pdq/hash columns, any case and spacing, e.g. 'MD5 Hash', 'SHA-1';\n"
		"optional label, id, category, quality, deleted; ',' ';' or TAB detected from the first\n"
		"line; --columns for a file without a header, --map md5=\"Hash MD5\" for other names),\n"
		"jsonl (JSON lines, a JSON array or pretty-printed objects, keys as the CSV fields;\n"
		"HMA's signal_type/signal_value too).  An import is one transaction: a bad line aborts\n"
		"it with FILE:LINE and nothing changes; --check lists every bad line (exit 1) and\n"
		"changes nothing; --dry-run shows the counts without applying them.  --delete and\n"
		"--replace need an existing list.\n");
}

/* Shared by every subcommand: --db, --json, --help.  Returns 1 consumed, 0 not, -1 error. */
static int common(struct cli *cli, const char *cmd, int argc, char **argv, int *i, int *help)
{
	if (!strcmp(argv[*i], "--help") || !strcmp(argv[*i], "-h")) {
		*help = 1;
		return 1;
	}
	return cli_common_option(cli, cmd, argc, argv, i);
}

static int unknown(const char *cmd, const char *a)
{
	cli_error(cmd, "unknown option '%s' (see 'hashgate db --help')", a);
	return EXIT_USAGE;
}

/* ---- init ------------------------------------------------------------------------------- */

static int db_init(int argc, char **argv, struct cli *cli)
{
	const char *cmd = "db init";
	struct hashdb db;
	struct stat sb;
	char *dir;
	int i, r, help = 0, existed;
	uint64_t gen;

	for (i = 1; i < argc; i++) {
		r = common(cli, cmd, argc, argv, &i, &help);
		if (r < 0)
			return EXIT_USAGE;
		if (!r)
			return unknown(cmd, argv[i]);
	}
	if (help) {
		usage(stdout);
		return 0;
	}
	existed = stat(cli->cfg.db, &sb) == 0;
	if (!existed) {
		/* The packaged default lives in /var/lib/hashgate, which may not exist yet. */
		dir = strdup(cli->cfg.db);
		if (!dir)
			return EXIT_ERROR;
		if (mkdir(dirname(dir), 0750) < 0) {
			if (errno != EEXIST) {
				cli_error(cmd, "%s: cannot create directory: %s", dir,
					  strerror(errno));
				free(dir);
				return EXIT_ERROR;
			}
		} else {
			/* Ours: root:hashgate 0750, or 0700 when there is no such group. */
			gid_t gid;

			if (geteuid() != 0 || hashdb_group(&gid) < 0 || chown(dir, 0, gid) < 0)
				chmod(dir, 0700);
		}
		free(dir);
	}
	if (!existed && dbcli_audit_check(cli, cmd) < 0)
		return EXIT_ERROR;
	r = dbcli_open(cli, cmd, &db, HASHDB_CREATE);
	if (r < 0)
		return EXIT_ERROR;
	r = hashdb_generation(&db, &gen, NULL, 0);
	if (cli->json) {
		printf("{\"db\":");
		adm_json_print(stdout, cli->cfg.db);
		printf(",\"created\":%s,\"schema\":%d,\"generation\":%llu}\n",
		       existed ? "false" : "true", hashdb_schema_version(&db),
		       (unsigned long long)gen);
	} else if (!cli->quiet)
		printf("%s: %s, schema version %d\n", cli->cfg.db,
		       existed ? "already initialised" : "created", hashdb_schema_version(&db));
	hashdb_close(&db);
	if (!existed) {
		char esc[1024];

		if (dbcli_audit(cli, cmd, "db.init", "\"db\":\"%s\"",
				adm_json_escape(esc, sizeof(esc), cli->cfg.db)) < 0)
			return EXIT_ERROR;
	}
	return r < 0 ? EXIT_ERROR : 0;
}

/* ---- import ----------------------------------------------------------------------------- */

struct progress {
	int on;
	time_t last;
	int shown;
};

static void progress_cb(void *arg, const char *phase, uint64_t done, uint64_t total)
{
	struct progress *p = arg;
	time_t now = time(NULL);

	if (!p->on || (now == p->last && done != total))
		return;
	p->last = now;
	p->shown = 1;
	if (!done && !total)
		fprintf(stderr, "\r%-60s\r%s...", "", phase);
	else if (total)
		fprintf(stderr, "\r%s: %3d%% (%llu of %llu %s)   ", phase,
			(int)(done * 100 / total), (unsigned long long)done,
			(unsigned long long)total, strcmp(phase, "read") ? "rows" : "bytes");
	else
		fprintf(stderr, "\r%s: %llu lines   ", phase, (unsigned long long)done);
	fflush(stderr);
}

/* Warnings and --check's bad lines: already escaped by the importer. */
static void import_message(void *arg, int level, const char *msg)
{
	struct progress *p = arg;

	if (p->shown)
		fprintf(stderr, "\r%60s\r", "");
	fprintf(stderr, "hashgate db import: %s%s\n", level == IMPORT_WARN ? "warning: " : "",
		msg);
}

static int db_import(int argc, char **argv, struct cli *cli)
{
	const char *cmd = "db import";
	struct import_opts o = { .algo = -1 };
	struct import_stats st;
	struct progress pr = { 0 };
	const char *file = NULL, *v;
	const char *maps[argc > 0 ? argc : 1];
	struct hashdb db;
	char err[1024], esc[256];
	int i, r, help = 0;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if ((r = common(cli, cmd, argc, argv, &i, &help)) != 0) {
			if (r < 0)
				return EXIT_USAGE;
		} else if ((r = dbcli_opt(cmd, argc, argv, &i, "list", &o.list)) != 0) {
			if (r < 0)
				return EXIT_USAGE;
		} else if ((r = dbcli_opt(cmd, argc, argv, &i, "category", &o.category)) != 0) {
			if (r < 0)
				return EXIT_USAGE;
		} else if ((r = dbcli_opt(cmd, argc, argv, &i, "origin", &o.origin)) != 0) {
			if (r < 0)
				return EXIT_USAGE;
		} else if ((r = dbcli_opt(cmd, argc, argv, &i, "list-version", &o.version)) != 0) {
			if (r < 0)
				return EXIT_USAGE;
		} else if ((r = dbcli_opt(cmd, argc, argv, &i, "type", &v)) != 0) {
			if (r < 0 || (o.algo = dbcli_parse_type(cmd, v)) < 0)
				return EXIT_USAGE;
		} else if ((r = dbcli_opt(cmd, argc, argv, &i, "format", &v)) != 0) {
			if (r < 0)
				return EXIT_USAGE;
			r = import_format_parse(v);
			if (r < 0) {
				cli_error(cmd, "option '--format': unknown format '%s' (plain, csv, jsonl)",
					  v);
				return EXIT_USAGE;
			}
			o.format = (enum import_format)r;
		} else if ((r = dbcli_opt(cmd, argc, argv, &i, "delimiter", &v)) != 0) {
			if (r < 0)
				return EXIT_USAGE;
			if (!strcmp(v, "tab") || !strcmp(v, "\\t"))
				v = "\t";
			if (strlen(v) != 1 || strchr("\"\r\n", v[0]) || (v[0] != '\t' && v[0] < 0x20)) {
				cli_error(cmd, "option '--delimiter': want one character (e.g. ';' or "
					  "'tab'), not '%s'", v);
				return EXIT_USAGE;
			}
			o.delimiter = v[0];
		} else if ((r = dbcli_opt(cmd, argc, argv, &i, "columns", &o.columns)) != 0) {
			if (r < 0)
				return EXIT_USAGE;
		} else if ((r = dbcli_opt(cmd, argc, argv, &i, "map", &v)) != 0) {
			const char *eq;

			if (r < 0)
				return EXIT_USAGE;
			eq = strchr(v, '=');
			if (!eq || !eq[1] || !import_field_known(v, (size_t)(eq - v))) {
				cli_error(cmd, "option '--map': want FIELD=COLUMN (FIELD md5, sha1, "
					  "sha256, pdq, hash, label, id, category, quality, deleted, "
					  "algo), not '%s'", v);
				return EXIT_USAGE;
			}
			maps[o.nmap++] = v;
		} else if (!strcmp(a, "--check")) {
			o.check = true;
		} else if (!strcmp(a, "--dry-run")) {
			o.dry_run = true;
		} else if (!strcmp(a, "--delete")) {
			o.remove = true;
		} else if (!strcmp(a, "--replace")) {
			o.replace = true;
		} else if (a[0] == '-' && a[1]) {
			return unknown(cmd, a);
		} else if (file) {
			cli_error(cmd, "one FILE per import ('%s' and '%s')", file, a);
			return EXIT_USAGE;
		} else {
			file = a;
		}
	}
	if (help) {
		usage(stdout);
		return 0;
	}
	if (!o.list) {
		cli_error(cmd, "--list NAME is required");
		return EXIT_USAGE;
	}
	if (!file) {
		cli_error(cmd, "no FILE given (use - for standard input)");
		return EXIT_USAGE;
	}
	if (o.remove && o.replace) {
		cli_error(cmd, "--delete and --replace do not go together");
		return EXIT_USAGE;
	}
	if (!hashdb_valid_name(o.list, HASHDB_NAME_MAX)) {
		cli_error(cmd, "option '--list': invalid name '%s' (1-%d of A-Z a-z 0-9 . _ -)",
			  o.list, HASHDB_NAME_MAX);
		return EXIT_USAGE;
	}
	if (o.category && !hashdb_valid_name(o.category, HASHDB_CATEGORY_MAX)) {
		cli_error(cmd, "option '--category': invalid category '%s' (1-%d of A-Z a-z 0-9 . _ -)",
			  o.category, HASHDB_CATEGORY_MAX);
		return EXIT_USAGE;
	}
	if (o.check && o.dry_run) {
		cli_error(cmd, "--check and --dry-run do not go together");
		return EXIT_USAGE;
	}
	o.map = maps;
	/* --check and --dry-run change nothing, so they write no audit record */
	if ((!o.check && !o.dry_run && dbcli_audit_check(cli, cmd) < 0) ||
	    dbcli_open(cli, cmd, &db, 0) < 0)
		return EXIT_ERROR;
	pr.on = !cli->json && !cli->quiet && isatty(STDERR_FILENO);
	o.progress = progress_cb;
	o.progress_arg = &pr;
	o.message = import_message;
	o.message_arg = &pr;
	r = import_file(&db, file, &o, &st, err, sizeof(err));
	if (pr.shown)
		fprintf(stderr, "\r%60s\r", "");
	hashdb_close(&db);
	if (r < 0 && o.check && st.bad) {
		cli_error(cmd, "%s; the database was not changed", err);
		return EXIT_FOUND;
	}
	if (r < 0) {
		cli_error(cmd, "%s; nothing was %s", err, o.check ? "checked" : "imported");
		return EXIT_ERROR;
	}
	if (cli->json) {
		printf("{\"list\":\"%s\",\"file\":", o.list);
		adm_json_print(stdout, file);
		printf(",\"lines\":%llu,\"records\":%llu,\"added\":%llu,\"existing\":%llu,"
		       "\"removed\":%llu,\"absent\":%llu",
		       (unsigned long long)st.lines, (unsigned long long)st.records,
		       (unsigned long long)st.added, (unsigned long long)st.existing,
		       (unsigned long long)st.removed, (unsigned long long)st.absent);
		if (o.check || o.dry_run)
			printf(",\"%s\":true", o.check ? "check" : "dry_run");
		printf("}\n");
	} else if (!cli->quiet && o.check) {
		printf("%s: ok: %llu lines, %llu distinct hashes (nothing changed)\n", file,
		       (unsigned long long)st.lines, (unsigned long long)st.records);
	} else if (!cli->quiet) {
		printf("%s: list %s: %s%llu added, %llu already present, %llu removed", file, o.list,
		       o.dry_run ? "would be: " : "", (unsigned long long)st.added,
		       (unsigned long long)st.existing, (unsigned long long)st.removed);
		if (st.absent)
			printf(", %llu deletions of absent hashes", (unsigned long long)st.absent);
		printf(" (%llu lines)%s\n", (unsigned long long)st.lines,
		       o.dry_run ? "; dry run, nothing changed" : "");
	}
	if (o.check || o.dry_run)
		return 0;
	if (dbcli_audit(cli, cmd, "db.import", "\"list\":\"%s\",\"file\":\"%s\",\"added\":%llu,"
			"\"removed\":%llu", o.list, adm_json_escape(esc, sizeof(esc), file),
			(unsigned long long)st.added, (unsigned long long)st.removed) < 0)
		return EXIT_ERROR;
	return 0;
}

/* ---- add / remove ----------------------------------------------------------------------- */

static int db_add_remove(int argc, char **argv, struct cli *cli, int add)
{
	const char *cmd = add ? "db add" : "db remove";
	const char *list = NULL, *category = NULL, *label = NULL, *v;
	uint8_t val[HASH_MAX_LEN];
	struct hashdb_list l;
	struct hashdb db;
	char err[1024];
	int i, r, help = 0, algo = -1, all = 0, a, nargs = 0;
	int64_t list_id = -1;
	unsigned long long done = 0, missing = 0;
	const char *hashes[argc > 0 ? argc : 1];

	for (i = 1; i < argc; i++) {
		const char *arg = argv[i];

		if ((r = common(cli, cmd, argc, argv, &i, &help)) != 0) {
			if (r < 0)
				return EXIT_USAGE;
		} else if ((r = dbcli_opt(cmd, argc, argv, &i, "list", &list)) != 0) {
			if (r < 0)
				return EXIT_USAGE;
		} else if (add && (r = dbcli_opt(cmd, argc, argv, &i, "category", &category)) != 0) {
			if (r < 0)
				return EXIT_USAGE;
		} else if (add && (r = dbcli_opt(cmd, argc, argv, &i, "label", &label)) != 0) {
			if (r < 0)
				return EXIT_USAGE;
		} else if ((r = dbcli_opt(cmd, argc, argv, &i, "type", &v)) != 0) {
			if (r < 0 || (algo = dbcli_parse_type(cmd, v)) < 0)
				return EXIT_USAGE;
		} else if (!add && !strcmp(arg, "--all")) {
			all = 1;
		} else if (arg[0] == '-' && arg[1] == '-') {
			return unknown(cmd, arg);
		} else {
			hashes[nargs++] = arg;
		}
	}
	/* Validate every hash (with the final --type) before touching the database. */
	for (i = 0; i < nargs; i++)
		if (dbcli_parse_hash(cmd, hashes[i], algo, val) < 0)
			return EXIT_USAGE;
	if (help) {
		usage(stdout);
		return 0;
	}
	if (add && !list) {
		cli_error(cmd, "--list NAME is required");
		return EXIT_USAGE;
	}
	if (all && (!list || nargs)) {
		cli_error(cmd, "--all removes a whole list: give --list NAME and no hashes");
		return EXIT_USAGE;
	}
	if (!all && !nargs) {
		cli_error(cmd, "no HASH given");
		return EXIT_USAGE;
	}
	if (list && !hashdb_valid_name(list, HASHDB_NAME_MAX)) {
		cli_error(cmd, "option '--list': invalid name '%s'", list);
		return EXIT_USAGE;
	}
	if (category && !hashdb_valid_name(category, HASHDB_CATEGORY_MAX)) {
		cli_error(cmd, "option '--category': invalid category '%s'", category);
		return EXIT_USAGE;
	}
	if (dbcli_open(cli, cmd, &db, 0) < 0)
		return EXIT_ERROR;
	r = hashdb_begin(&db, err, sizeof(err));
	if (r < 0)
		goto fail;
	if (add) {
		r = hashdb_list_ensure(&db, list, category, NULL, NULL, &list_id, err, sizeof(err));
		if (r < 0)
			goto fail;
	} else if (list) {
		r = hashdb_list_get(&db, list, &l, err, sizeof(err));
		if (r < 0)
			goto fail;
		list_id = l.id;
	}
	if (all) {
		r = hashdb_list_delete(&db, list, err, sizeof(err));
		if (r < 0)
			goto fail;
	}
	for (i = 0; !all && i < nargs; i++) {
		a = dbcli_parse_hash(cmd, hashes[i], algo, val);
		if (a < 0)
			goto fail_quiet;
		if (add)
			r = hashdb_hash_add(&db, list_id, (enum hash_algo)a, val, label, err,
					    sizeof(err));
		else
			r = hashdb_hash_remove(&db, list_id, (enum hash_algo)a, val, err, sizeof(err));
		if (r < 0)
			goto fail;
		if (r > 0)
			done += (unsigned)r;
		else
			missing++;
	}
	/* Staged, not committed: roll it back when its audit record cannot be written. */
	if (dbcli_audit_check(cli, cmd) < 0)
		goto fail_quiet;
	r = hashdb_commit(&db, err, sizeof(err));
	if (r < 0)
		goto fail;
	hashdb_close(&db);
	if (cli->json) {
		if (all)
			printf("{\"list\":\"%s\",\"deleted\":true}\n", list);
		else
			printf("{\"%s\":%llu,\"%s\":%llu}\n", add ? "added" : "removed", done,
			       add ? "existing" : "absent", missing);
	} else if (!cli->quiet) {
		if (all)
			printf("list %s deleted\n", list);
		else if (add)
			printf("%llu added, %llu already present in list %s\n", done, missing, list);
		else
			printf("%llu removed, %llu not found\n", done, missing);
	}
	if (all)
		r = dbcli_audit(cli, cmd, "db.drop_list", "\"list\":\"%s\"", list);
	else
		r = dbcli_audit(cli, cmd, add ? "db.add" : "db.remove",
				"\"list\":\"%s\",\"count\":%llu", list ? list : "*", done);
	if (r < 0)
		return EXIT_ERROR;
	/* Removing nothing that was asked for is worth an exit status scripts can see. */
	return !add && !all && done == 0 ? EXIT_FOUND : 0;
fail:
	cli_error(cmd, "%s", err);
fail_quiet:
	hashdb_rollback(&db);
	hashdb_close(&db);
	return EXIT_ERROR;
}

/* ---- lists / stats ---------------------------------------------------------------------- */

static int db_lists(int argc, char **argv, struct cli *cli)
{
	const char *cmd = "db lists";
	struct hashdb_list *l = NULL;
	struct hashdb db;
	char err[1024], t1[32], t2[32];
	size_t n = 0, k;
	int i, r, help = 0, a;

	for (i = 1; i < argc; i++) {
		r = common(cli, cmd, argc, argv, &i, &help);
		if (r < 0)
			return EXIT_USAGE;
		if (!r)
			return unknown(cmd, argv[i]);
	}
	if (help) {
		usage(stdout);
		return 0;
	}
	if (dbcli_open(cli, cmd, &db, HASHDB_RDONLY) < 0)
		return EXIT_ERROR;
	r = hashdb_lists(&db, true, &l, &n, err, sizeof(err));
	hashdb_close(&db);
	if (r < 0) {
		cli_error(cmd, "%s", err);
		return EXIT_ERROR;
	}
	if (cli->json)
		putchar('[');
	else if (n)
		printf("%-24s %-12s %10s %10s %10s %10s  %-20s\n", "LIST", "CATEGORY", "MD5", "SHA1",
		       "SHA256", "PDQ", "UPDATED");
	for (k = 0; k < n; k++) {
		if (cli->json) {
			printf("%s{\"name\":\"%s\",\"category\":\"%s\",\"origin\":", k ? "," : "",
			       l[k].name, l[k].category);
			adm_json_print(stdout, l[k].origin);
			printf(",\"version\":");
			adm_json_print(stdout, l[k].version);
			printf(",\"imported\":\"%s\",\"updated\":\"%s\",\"counts\":{",
			       adm_fmt_time(l[k].imported, t1), adm_fmt_time(l[k].updated, t2));
			for (a = 0; a < HASH_NALGOS; a++)
				printf("%s\"%s\":%llu", a ? "," : "", hash_algo_name((enum hash_algo)a),
				       (unsigned long long)l[k].count[a]);
			printf("}}");
		} else {
			printf("%-24s %-12s %10llu %10llu %10llu %10llu  %-20s\n", l[k].name,
			       l[k].category, (unsigned long long)l[k].count[HASH_MD5],
			       (unsigned long long)l[k].count[HASH_SHA1],
			       (unsigned long long)l[k].count[HASH_SHA256],
			       (unsigned long long)l[k].count[HASH_PDQ],
			       adm_fmt_time(l[k].updated, t1));
		}
	}
	if (cli->json)
		printf("]\n");
	else if (!n)
		printf("no lists (import one with 'hashgate db import --list NAME FILE')\n");
	free(l);
	return 0;
}

static int db_stats(int argc, char **argv, struct cli *cli)
{
	const char *cmd = "db stats";
	struct hashdb_stats s;
	struct hashdb db;
	char err[1024], t[32], b[32];
	int i, r, help = 0, a;

	for (i = 1; i < argc; i++) {
		r = common(cli, cmd, argc, argv, &i, &help);
		if (r < 0)
			return EXIT_USAGE;
		if (!r)
			return unknown(cmd, argv[i]);
	}
	if (help) {
		usage(stdout);
		return 0;
	}
	if (dbcli_open(cli, cmd, &db, HASHDB_RDONLY) < 0)
		return EXIT_ERROR;
	r = hashdb_stats(&db, &s, err, sizeof(err));
	hashdb_close(&db);
	if (r < 0) {
		cli_error(cmd, "%s", err);
		return EXIT_ERROR;
	}
	if (cli->json) {
		printf("{\"db\":");
		adm_json_print(stdout, cli->cfg.db);
		printf(",\"schema\":%d,\"generation\":%llu,\"created\":\"%s\",\"lists\":%llu,"
		       "\"bytes\":%llu,\"hashes\":{", s.schema, (unsigned long long)s.generation,
		       adm_fmt_time(s.created, t), (unsigned long long)s.lists,
		       (unsigned long long)s.file_bytes);
		for (a = 0; a < HASH_NALGOS; a++)
			printf("%s\"%s\":%llu", a ? "," : "", hash_algo_name((enum hash_algo)a),
			       (unsigned long long)s.hashes[a]);
		printf("},\"allowlist\":{");
		for (a = 0; a < HASH_NALGOS; a++)
			printf("%s\"%s\":%llu", a ? "," : "", hash_algo_name((enum hash_algo)a),
			       (unsigned long long)s.allow[a]);
		printf("}}\n");
		return 0;
	}
	printf("database:   %s (%s)\nschema:     %d\ngeneration: %llu\ncreated:    %s\n"
	       "lists:      %llu\n", cli->cfg.db, adm_fmt_bytes(s.file_bytes, b), s.schema,
	       (unsigned long long)s.generation, adm_fmt_time(s.created, t),
	       (unsigned long long)s.lists);
	for (a = 0; a < HASH_NALGOS; a++)
		printf("%-11s %llu hashes, %llu allowlisted\n", hash_algo_name((enum hash_algo)a),
		       (unsigned long long)s.hashes[a], (unsigned long long)s.allow[a]);
	return 0;
}

/* ---- export ----------------------------------------------------------------------------- */

struct export_ctx {
	FILE *f;
	enum import_format fmt;
	int with_list;
};

/* ,"text" with quotes doubled; newlines become spaces (one row per line); NULL: empty. */
static void csv_field(FILE *f, const char *s)
{
	fputc(',', f);
	if (!s)
		return;
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"')
			fputc('"', f);
		fputc(*s == '\n' || *s == '\r' ? ' ' : *s, f);
	}
	fputc('"', f);
}

static int export_row(const struct hashdb_entry *e, void *arg)
{
	struct export_ctx *x = arg;
	char hex[2 * HASH_MAX_LEN + 1];
	int a;

	hex_encode(e->value, hash_algo_len(e->algo), hex);
	switch (x->fmt) {
	case IMPORT_PLAIN:
		fprintf(x->f, "%s%s%s\n", hex, e->label ? "  " : "", e->label ? e->label : "");
		break;
	case IMPORT_CSV:
		fprintf(x->f, "%s", e->list);
		for (a = 0; a < HASH_NALGOS; a++)
			fprintf(x->f, ",%s", a == (int)e->algo ? hex : "");
		csv_field(x->f, e->label);
		csv_field(x->f, e->ref);
		csv_field(x->f, e->category);
		if (e->quality >= 0)
			fprintf(x->f, ",%d", e->quality);
		else
			fputc(',', x->f);
		fputc('\n', x->f);
		break;
	default:
		fprintf(x->f, "{\"list\":\"%s\",\"algo\":\"%s\",\"hash\":\"%s\"", e->list,
			hash_algo_name(e->algo), hex);
		if (e->label) {
			fprintf(x->f, ",\"label\":");
			adm_json_print(x->f, e->label);
		}
		if (e->ref) {
			fprintf(x->f, ",\"id\":");
			adm_json_print(x->f, e->ref);
		}
		if (e->category)
			fprintf(x->f, ",\"category\":\"%s\"", e->category);
		if (e->quality >= 0)
			fprintf(x->f, ",\"quality\":%d", e->quality);
		fprintf(x->f, ",\"added\":%lld}\n", (long long)e->added);
		break;
	}
	return ferror(x->f) ? -EIO : 0;
}

static int db_export(int argc, char **argv, struct cli *cli)
{
	const char *cmd = "db export";
	const char *list = NULL, *out = NULL, *v;
	struct export_ctx x = { .f = stdout, .fmt = IMPORT_JSONL };
	struct hashdb_list l;
	struct hashdb db;
	char err[1024];
	int i, r, help = 0, algo = -1, a;
	int64_t list_id = -1;

	for (i = 1; i < argc; i++) {
		const char *arg = argv[i];

		if ((r = common(cli, cmd, argc, argv, &i, &help)) != 0) {
			if (r < 0)
				return EXIT_USAGE;
		} else if ((r = dbcli_opt(cmd, argc, argv, &i, "list", &list)) != 0) {
			if (r < 0)
				return EXIT_USAGE;
		} else if ((r = dbcli_opt(cmd, argc, argv, &i, "type", &v)) != 0) {
			if (r < 0 || (algo = dbcli_parse_type(cmd, v)) < 0)
				return EXIT_USAGE;
		} else if ((r = dbcli_opt(cmd, argc, argv, &i, "format", &v)) != 0) {
			if (r < 0)
				return EXIT_USAGE;
			a = import_format_parse(v);
			if (a < 0) {
				cli_error(cmd, "option '--format': unknown format '%s'", v);
				return EXIT_USAGE;
			}
			x.fmt = (enum import_format)a;
		} else if ((r = dbcli_opt(cmd, argc, argv, &i, "output", &out)) != 0 ||
			   (!strcmp(arg, "-o") && i + 1 < argc && (out = argv[++i]))) {
			if (r < 0)
				return EXIT_USAGE;
		} else {
			return unknown(cmd, arg);
		}
	}
	if (help) {
		usage(stdout);
		return 0;
	}
	if (dbcli_open(cli, cmd, &db, HASHDB_RDONLY) < 0)
		return EXIT_ERROR;
	if (list) {
		r = hashdb_list_get(&db, list, &l, err, sizeof(err));
		if (r < 0)
			goto fail;
		list_id = l.id;
	}
	if (out && strcmp(out, "-") != 0) {
		x.f = fopen(out, "we");
		if (!x.f) {
			snprintf(err, sizeof(err), "%s: %s", out, strerror(errno));
			goto fail;
		}
	}
	if (x.fmt == IMPORT_CSV)
		fprintf(x.f, "list,md5,sha1,sha256,pdq,label,id,category,quality\n");
	r = hashdb_hashes_foreach(&db, list_id, algo, export_row, &x, err, sizeof(err));
	if (r == -EIO)
		snprintf(err, sizeof(err), "%s: write error", out ? out : "standard output");
	if (x.f != stdout && fclose(x.f) != 0 && r >= 0) {
		snprintf(err, sizeof(err), "%s: %s", out, strerror(errno));
		r = -EIO;
	} else if (x.f == stdout && fflush(stdout) != 0 && r >= 0) {
		snprintf(err, sizeof(err), "standard output: %s", strerror(errno));
		r = -EIO;
	}
	if (r < 0)
		goto fail;
	hashdb_close(&db);
	return 0;
fail:
	cli_error(cmd, "%s", err);
	hashdb_close(&db);
	return EXIT_ERROR;
}

/* ---- dump / restore / compact ----------------------------------------------------------- */

static int db_dump(int argc, char **argv, struct cli *cli)
{
	const char *cmd = "db dump";
	const char *out = NULL;
	struct dump_stats st;
	struct hashdb db;
	char err[1024];
	FILE *f = stdout;
	int i, r, help = 0;

	for (i = 1; i < argc; i++) {
		if ((r = common(cli, cmd, argc, argv, &i, &help)) != 0) {
			if (r < 0)
				return EXIT_USAGE;
		} else if ((r = dbcli_opt(cmd, argc, argv, &i, "output", &out)) != 0 ||
			   (!strcmp(argv[i], "-o") && i + 1 < argc && (out = argv[++i]))) {
			if (r < 0)
				return EXIT_USAGE;
		} else {
			return unknown(cmd, argv[i]);
		}
	}
	if (help) {
		usage(stdout);
		return 0;
	}
	if (dbcli_open(cli, cmd, &db, HASHDB_RDONLY) < 0)
		return EXIT_ERROR;
	if (out && strcmp(out, "-") != 0) {
		/* the dump holds the confidential lists: never readable by others */
		int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

		f = fd >= 0 ? fdopen(fd, "w") : NULL;
		if (!f) {
			cli_error(cmd, "%s: %s", out, strerror(errno));
			if (fd >= 0)
				close(fd);
			hashdb_close(&db);
			return EXIT_ERROR;
		}
	}
	r = dump_write(&db, f, &st, err, sizeof(err));
	hashdb_close(&db);
	if (f != stdout)
		i = fclose(f);
	else
		i = fflush(f);
	if (i != 0 && r >= 0) {
		snprintf(err, sizeof(err), "%s: %s", out ? out : "standard output", strerror(errno));
		r = -EIO;
	}
	if (r < 0) {
		cli_error(cmd, "%s", err);
		return EXIT_ERROR;
	}
	if (out && strcmp(out, "-") != 0 && !cli->quiet)
		fprintf(stderr, "%s: %llu lists, %llu hashes, %llu allowlisted, %llu feed states\n",
			out, (unsigned long long)st.lists, (unsigned long long)st.hashes,
			(unsigned long long)st.allow, (unsigned long long)st.meta);
	return 0;
}

static int db_restore(int argc, char **argv, struct cli *cli)
{
	const char *cmd = "db restore";
	const char *file = NULL;
	struct dump_stats st;
	struct hashdb db;
	char err[1024], esc[256];
	int i, r, help = 0;

	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if ((r = common(cli, cmd, argc, argv, &i, &help)) != 0) {
			if (r < 0)
				return EXIT_USAGE;
		} else if (a[0] == '-' && a[1]) {
			return unknown(cmd, a);
		} else if (file) {
			cli_error(cmd, "one FILE per restore");
			return EXIT_USAGE;
		} else {
			file = a;
		}
	}
	if (help) {
		usage(stdout);
		return 0;
	}
	if (!file) {
		cli_error(cmd, "no FILE given (a 'hashgate db dump'; - for standard input)");
		return EXIT_USAGE;
	}
	if (dbcli_audit_check(cli, cmd) < 0 || dbcli_open(cli, cmd, &db, 0) < 0)
		return EXIT_ERROR;
	r = dump_restore(&db, file, &st, err, sizeof(err));
	hashdb_close(&db);
	if (r < 0) {
		cli_error(cmd, "%s; nothing was restored", err);
		return EXIT_ERROR;
	}
	if (cli->json)
		printf("{\"lists\":%llu,\"hashes\":%llu,\"allow\":%llu}\n",
		       (unsigned long long)st.lists, (unsigned long long)st.hashes,
		       (unsigned long long)st.allow);
	else if (!cli->quiet)
		printf("%s: restored %llu lists, %llu hashes, %llu allowlisted\n", file,
		       (unsigned long long)st.lists, (unsigned long long)st.hashes,
		       (unsigned long long)st.allow);
	if (dbcli_audit(cli, cmd, "db.restore", "\"file\":\"%s\",\"lists\":%llu,\"hashes\":%llu,"
			"\"allow\":%llu", adm_json_escape(esc, sizeof(esc), file),
			(unsigned long long)st.lists, (unsigned long long)st.hashes,
			(unsigned long long)st.allow) < 0)
		return EXIT_ERROR;
	return 0;
}

static int db_compact(int argc, char **argv, struct cli *cli)
{
	const char *cmd = "db compact";
	uint64_t before = 0, after = 0;
	struct hashdb db;
	char err[1024], b1[32], b2[32];
	int i, r, help = 0;

	for (i = 1; i < argc; i++) {
		r = common(cli, cmd, argc, argv, &i, &help);
		if (r < 0)
			return EXIT_USAGE;
		if (!r)
			return unknown(cmd, argv[i]);
	}
	if (help) {
		usage(stdout);
		return 0;
	}
	/* audited like every other change of the database (which it is, physically) */
	if (dbcli_audit_check(cli, cmd) < 0 || dbcli_open(cli, cmd, &db, 0) < 0)
		return EXIT_ERROR;
	r = hashdb_compact(&db, &before, &after, err, sizeof(err));
	hashdb_close(&db);
	if (r < 0) {
		cli_error(cmd, "%s", err);
		return EXIT_ERROR;
	}
	if (cli->json)
		printf("{\"before\":%llu,\"after\":%llu}\n", (unsigned long long)before,
		       (unsigned long long)after);
	else if (!cli->quiet)
		printf("%s: %s before, %s after\n", cli->cfg.db, adm_fmt_bytes(before, b1),
		       adm_fmt_bytes(after, b2));
	if (dbcli_audit(cli, cmd, "db.compact", "\"before\":%llu,\"after\":%llu",
			(unsigned long long)before, (unsigned long long)after) < 0)
		return EXIT_ERROR;
	return 0;
}

static int db_add(int argc, char **argv, struct cli *cli)
{
	return db_add_remove(argc, argv, cli, 1);
}

static int db_remove(int argc, char **argv, struct cli *cli)
{
	return db_add_remove(argc, argv, cli, 0);
}

static const struct cli_sub db_subs[] = {
	{ "init",	db_init,	"create the database" },
	{ "import",	db_import,	"import a hash list file into a list" },
	{ "add",	db_add,		"add hashes to a list" },
	{ "remove",	db_remove,	"remove hashes from a list" },
	{ "lists",	db_lists,	"show the lists" },
	{ "stats",	db_stats,	"counts of lists, hashes and allowlist entries" },
	{ "export",	db_export,	"write hashes out (one list or all) as jsonl, csv or plain" },
	{ "dump",	db_dump,	"everything, for db restore" },
	{ "restore",	db_restore,	"a dump into an empty database" },
	{ "compact",	db_compact,	"give free space back (VACUUM)" },
};

int cmd_db(int argc, char **argv, struct cli *cli)
{
	/* Common options may also come between 'db' and its subcommand. */
	return CLI_DISPATCH(cli, "db", argc, argv, db_subs, usage);
}
