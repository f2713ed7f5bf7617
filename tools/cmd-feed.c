/*
 * cmd-feed.c - `hashgate feed add|list|remove|update|status|keygen|sign`: hash lists that
 * keep themselves current from an HTTPS source (tools/feed.c does the work).
 *
 * Configuration is one file per feed in feeds_dir (hashgate.conf); state lives in the
 * database.  `update` without names updates the feeds that are due (their `every` has passed
 * since the last attempt; the timer runs it hourly); with names or --force it fetches now.
 * Exit status: 0 all good, 1 (status) a feed is stale or failing, 2 an update failed, 64 usage.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hashdb/db.h"
#include "hashdb/status.h"
#include "tools/adm.h"
#include "tools/cli.h"
#include "tools/commands.h"
#include "tools/dbcli.h"
#include "tools/feed.h"

static void usage(FILE *f)
{
	fprintf(f,
"usage: hashgate feed add NAME URL --list L [--category C] [--type T] [--format F]\n"
"                         [--key PUBKEY.pem] [--every 1h] [--delta] [--KEY VALUE...]\n"
"       hashgate feed list\n"
"       hashgate feed remove NAME...\n"
"       hashgate feed update [--dry-run] [--force] [NAME...]\n"
"       hashgate feed status [NAME...]\n"
"       hashgate feed keygen PRIVATE.pem PUBLIC.pem\n"
"       hashgate feed sign --key PRIVATE.pem FILE...\n"
"\n"
"A feed fetches a hash list over HTTPS and applies it to one list: a full list replaces the\n"
"list in one transaction, a delta feed (mode = delta: JSON lines after a header line\n"
"{\"sequence\": N, \"after\": M}, \"deleted\": true retracts) applies change sets in order and\n"
"refuses gaps.  With --key, URL.sig (Ed25519, from 'feed sign') must verify, else nothing is\n"
"applied.  Other keys of NAME.conf (ca_file, client_cert, client_key, token_file, checksum,\n"
"timeout, max_size, retries, retry_wait, stale_after) are given as --KEY VALUE; see\n"
"hashgate.conf(5).  Feeds live in feeds_dir (%s by default).\n",
		CONFIG_DEFAULT_FEEDS);
}

static int key_copy(const char *src, const char *dir, const char *name, char *dst, size_t len)
{
	char buf[8192];
	size_t n;
	FILE *in, *out;

	snprintf(dst, len, "%s/%s.pub", dir, name);
	in = fopen(src, "re");
	if (!in) {
		cli_error("feed add", "%s: %s", src, strerror(errno));
		return -1;
	}
	n = fread(buf, 1, sizeof(buf), in);
	fclose(in);
	out = fopen(dst, "we");
	if (!out || fwrite(buf, 1, n, out) != n || fclose(out) != 0) {
		cli_error("feed add", "%s: cannot write: %s", dst, strerror(errno));
		return -1;
	}
	return 0;
}

static int feed_add(int argc, char **argv, struct cli *cli)
{
	const char *cmd = "feed add", *name = NULL, *url = NULL, *key = NULL;
	char err[1024], keypath[4096], esc[2048];
	struct feed f;
	int i, r, rc = EXIT_USAGE;

	feed_init(&f);
	for (i = 1; i < argc; i++) {
		const char *a = argv[i];

		if ((r = cli_common_option(cli, cmd, argc, argv, &i)) != 0) {
			if (r < 0)
				goto out;
		} else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
			usage(stdout);
			rc = 0;
			goto out;
		} else if (!strcmp(a, "--delta")) {
			f.delta = true;
		} else if (!strcmp(a, "--checksum")) {
			f.checksum = true;
		} else if (!strncmp(a, "--", 2) && a[2]) {
			char k[64], *eq;
			const char *v;

			snprintf(k, sizeof(k), "%s", a + 2);
			if ((eq = strchr(k, '='))) {
				*eq = '\0';
				v = strchr(a, '=') + 1;
			} else if (i + 1 < argc) {
				v = argv[++i];
			} else {
				cli_error(cmd, "option '%s' needs a value", a);
				goto out;
			}
			for (char *p = k; *p; p++)
				if (*p == '-')
					*p = '_';
			if (!strcmp(k, "key")) {
				key = v;
				continue;
			}
			if (!strcmp(k, "url") || !strcmp(k, "mode")) {
				cli_error(cmd, "unknown option '%s'", a);
				goto out;
			}
			if (feed_set(&f, k, v, err, sizeof(err)) < 0) {
				cli_error(cmd, "option '--%s': %s", k, err);
				goto out;
			}
		} else if (!name) {
			name = a;
		} else if (!url) {
			url = a;
		} else {
			cli_error(cmd, "unexpected argument '%s'", a);
			goto out;
		}
	}
	if (!name || !url) {
		cli_error(cmd, "give NAME and URL (see 'hashgate feed --help')");
		goto out;
	}
	if (!hashdb_valid_name(name, HASHDB_NAME_MAX)) {
		cli_error(cmd, "invalid feed name '%s' (1-%d of A-Z a-z 0-9 . _ -)", name,
			  HASHDB_NAME_MAX);
		goto out;
	}
	if (feed_set(&f, "url", url, err, sizeof(err)) < 0 || !(f.name = strdup(name))) {
		cli_error(cmd, "%s", err);
		goto out;
	}
	if (key && !(f.key = strdup(key))) {
		rc = EXIT_ERROR;
		goto out;
	}
	if (feed_check(&f, err, sizeof(err)) < 0) {
		cli_error(cmd, "%s", err);
		goto out;
	}
	rc = EXIT_ERROR;
	snprintf(keypath, sizeof(keypath), "%s/%s.conf", cli->cfg.feeds_dir, name);
	if (access(keypath, F_OK) == 0) {
		/* before the key copy below could replace the existing feed's key */
		cli_error(cmd, "feed '%s' exists already (%s)", name, keypath);
		goto out;
	}
	if (dbcli_audit_check(cli, cmd) < 0)
		goto out;
	if (key) {
		/* the feed keeps its own copy: the file given may be a download */
		if (key_copy(key, cli->cfg.feeds_dir, name, keypath, sizeof(keypath)) < 0)
			goto out;
		free(f.key);
		if (!(f.key = strdup(keypath)))
			goto out;
	}
	if (feed_save(&f, cli->cfg.feeds_dir, true, err, sizeof(err)) < 0) {
		cli_error(cmd, "%s", err);
		goto out;
	}
	if (!cli->quiet && !cli->json)
		printf("feed %s added: %s -> list %s (%s%s); run 'hashgate feed update %s'\n", name,
		       url, f.list, f.delta ? "delta" : "full list", f.key ? ", signed" : "", name);
	rc = dbcli_audit(cli, cmd, "feed.add", "\"feed\":\"%s\",\"list\":\"%s\",\"url\":\"%s\","
			 "\"signed\":%s", name, f.list, adm_json_escape(esc, sizeof(esc), url),
			 f.key ? "true" : "false") < 0 ? EXIT_ERROR : 0;
out:
	feed_release(&f);
	return rc;
}

/* Names from the command line, or every feed. */
static int pick(struct cli *cli, const char *cmd, char **args, int nargs, char ***names,
		size_t *n)
{
	char err[1024];

	if (nargs) {
		*names = calloc((size_t)nargs, sizeof(char *));
		if (!*names)
			return -ENOMEM;
		for (int i = 0; i < nargs; i++) {
			if (!((*names)[i] = strdup(args[i]))) {
				feed_names_free(*names, (size_t)i);
				*names = NULL;
				return -ENOMEM;
			}
		}
		*n = (size_t)nargs;
		return 0;
	}
	if (feed_names(cli->cfg.feeds_dir, names, n, err, sizeof(err)) < 0) {
		cli_error(cmd, "%s", err);
		return -EIO;
	}
	return 0;
}

static int feed_list(int argc, char **argv, struct cli *cli)
{
	const char *cmd = "feed list";
	char **names = NULL, err[1024];
	size_t n = 0;
	int rc = 0;

	(void)argc;
	(void)argv;
	if (pick(cli, cmd, NULL, 0, &names, &n) < 0)
		return EXIT_ERROR;
	if (cli->json)
		putchar('[');
	else if (n)
		printf("%-16s %-20s %-6s %-7s %-6s %s\n", "FEED", "LIST", "MODE", "SIGNED", "EVERY",
		       "URL");
	else
		printf("no feeds in %s (add one with 'hashgate feed add')\n", cli->cfg.feeds_dir);
	for (size_t k = 0; k < n; k++) {
		struct feed f;

		if (feed_load(&f, cli->cfg.feeds_dir, names[k], err, sizeof(err)) < 0) {
			cli_error(cmd, "%s", err);
			rc = EXIT_ERROR;
			continue;
		}
		if (cli->json) {
			printf("%s{\"name\":\"%s\",\"list\":\"%s\",\"mode\":\"%s\",\"signed\":%s,"
			       "\"every\":%lld,\"url\":", k ? "," : "", f.name, f.list,
			       f.delta ? "delta" : "full", f.key ? "true" : "false",
			       (long long)f.every);
			adm_json_print(stdout, f.url);
			putchar('}');
		} else {
			printf("%-16s %-20s %-6s %-7s %5llds ", f.name, f.list,
			       f.delta ? "delta" : "full", f.key ? "yes" : "no",
			       (long long)f.every);
			adm_text_print(stdout, f.url);
			putchar('\n');
		}
		feed_release(&f);
	}
	if (cli->json)
		printf("]\n");
	feed_names_free(names, n);
	return rc;
}

static int feed_remove(int argc, char **argv, struct cli *cli)
{
	const char *cmd = "feed remove";
	char err[1024], path[4200];
	struct hashdb db;
	int i, rc = 0;

	if (argc < 2) {
		cli_error(cmd, "give the NAME of a feed");
		return EXIT_USAGE;
	}
	if (dbcli_audit_check(cli, cmd) < 0 || dbcli_open(cli, cmd, &db, 0) < 0)
		return EXIT_ERROR;
	for (i = 1; i < argc; i++) {
		struct feed f;

		if (feed_load(&f, cli->cfg.feeds_dir, argv[i], err, sizeof(err)) < 0) {
			cli_error(cmd, "%s", err);
			rc = EXIT_ERROR;
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s.conf", cli->cfg.feeds_dir, f.name);
		if (unlink(path) < 0) {
			cli_error(cmd, "%s: %s", path, strerror(errno));
			rc = EXIT_ERROR;
			feed_release(&f);
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s.pub", cli->cfg.feeds_dir, f.name);
		unlink(path);
		if (feed_state_delete(&db, f.name, err, sizeof(err)) < 0)
			cli_error(cmd, "%s", err);
		if (!cli->quiet)
			printf("feed %s removed; list %s is kept (remove it with 'hashgate db remove "
			       "--list %s --all')\n", f.name, f.list, f.list);
		if (dbcli_audit(cli, cmd, "feed.remove", "\"feed\":\"%s\",\"list\":\"%s\"", f.name,
				f.list) < 0)
			rc = EXIT_ERROR;
		feed_release(&f);
	}
	hashdb_close(&db);
	return rc;
}

static int feed_update_cmd(int argc, char **argv, struct cli *cli)
{
	const char *cmd = "feed update";
	char **names = NULL, *args[argc > 0 ? argc : 1], err[2048];
	bool dry = false, force = false;
	struct hashdb db;
	size_t n = 0;
	int i, nargs = 0, r, rc = 0;

	for (i = 1; i < argc; i++) {
		if ((r = cli_common_option(cli, cmd, argc, argv, &i)) != 0) {
			if (r < 0)
				return EXIT_USAGE;
		} else if (!strcmp(argv[i], "--dry-run") || !strcmp(argv[i], "-n")) {
			dry = true;
		} else if (!strcmp(argv[i], "--force")) {
			force = true;
		} else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			usage(stdout);
			return 0;
		} else if (argv[i][0] == '-') {
			cli_error(cmd, "unknown option '%s'", argv[i]);
			return EXIT_USAGE;
		} else {
			args[nargs++] = argv[i];
		}
	}
	if (pick(cli, cmd, args, nargs, &names, &n) < 0)
		return EXIT_ERROR;
	if (dbcli_open(cli, cmd, &db, 0) < 0) {
		feed_names_free(names, n);
		return EXIT_ERROR;
	}
	for (size_t k = 0; k < n; k++) {
		struct feed_result res;
		struct feed_state st;
		struct feed f;

		if (feed_load(&f, cli->cfg.feeds_dir, names[k], err, sizeof(err)) < 0) {
			cli_error(cmd, "%s", err);
			rc = EXIT_ERROR;
			continue;
		}
		if (!nargs && !force && !dry && f.every > 0 &&
		    feed_state_get(&db, f.name, &st, NULL, 0) == 0 &&
		    (int64_t)time(NULL) - st.last_attempt < f.every) {
			feed_release(&f);
			continue;		/* not due */
		}
		r = feed_update(cli, &db, &f, dry, &res, err, sizeof(err));
		if (r < 0) {
			cli_error(cmd, "feed %s: %s", f.name, err);
			rc = EXIT_ERROR;
		} else if (cli->json) {
			printf("{\"feed\":\"%s\",\"list\":\"%s\",\"dry_run\":%s,\"changed\":%s,"
			       "\"not_modified\":%s,\"added\":%llu,\"removed\":%llu,\"verified\":%s,"
			       "\"sequence\":%lld,\"sha256\":\"%s\"}\n", f.name, f.list,
			       dry ? "true" : "false", res.outcome == FEED_APPLIED ? "true" : "false",
			       res.not_modified ? "true" : "false", (unsigned long long)res.added,
			       (unsigned long long)res.removed, res.verified ? "true" : "false",
			       (long long)res.sequence, res.sha256);
		} else if (!cli->quiet) {
			if (res.not_modified)
				printf("feed %s: not modified\n", f.name);
			else if (res.outcome == FEED_UNCHANGED && !dry)
				printf("feed %s: unchanged%s\n", f.name, f.delta ? " (change set "
				       "applied before)" : "");
			else if (dry)
				printf("feed %s: dry run: list %s would get %llu added, %llu removed%s"
				       "%s\n", f.name, f.list, (unsigned long long)res.added,
				       (unsigned long long)res.removed,
				       f.delta ? " (at most; change set)" : "",
				       res.verified ? " (signature verified)" : "");
			else
				printf("feed %s: list %s: %llu added, %llu removed%s%s\n", f.name, f.list,
				       (unsigned long long)res.added, (unsigned long long)res.removed,
				       res.verified ? " (signature verified)" : "",
				       f.delta ? "" : " (replaced)");
		}
		feed_release(&f);
	}
	hashdb_close(&db);
	feed_names_free(names, n);
	return rc;
}

static char **only_names;	/* feed status NAME...: report these only */
static int nonly;

static bool wanted(const char *name)
{
	if (!nonly)
		return true;
	for (int i = 0; i < nonly; i++)
		if (!strcmp(only_names[i], name))
			return true;
	return false;
}

static int feed_status_cmd(int argc, char **argv, struct cli *cli)
{
	char *args[argc > 0 ? argc : 1];
	int nstale = 0, r, i;

	for (i = 1; i < argc; i++) {
		if ((r = cli_common_option(cli, "feed status", argc, argv, &i)) < 0)
			return EXIT_USAGE;
		if (!r && argv[i][0] == '-') {
			cli_error("feed status", "unknown option '%s'", argv[i]);
			return EXIT_USAGE;
		}
		if (!r)
			args[nonly++] = argv[i];
	}
	only_names = args;
	r = feed_status_report(cli, cli->json, 1, &nstale, NULL, NULL);
	only_names = NULL;
	nonly = 0;
	if (r < 0)
		return EXIT_ERROR;
	return nstale ? EXIT_FOUND : 0;
}

/*
 * The feeds' freshness, for `feed status` and `hashgate status`: one line (or JSON array
 * element) per feed; *nstale counts feeds with no good fetch for stale_after (or never).
 * JSON: prints ,"feeds":[...] (a member of the caller's object when !verbose).
 */
int feed_status_report(struct cli *cli, int json, int verbose, int *nstale,
		       struct hg_feed_age **ages, size_t *nages)
{
	char **names = NULL, err[1024], t[32];
	struct hashdb db;
	bool have_db;
	size_t n = 0;
	int64_t now = (int64_t)time(NULL);
	int shown = 0;

	*nstale = 0;
	if (feed_names(cli->cfg.feeds_dir, &names, &n, err, sizeof(err)) < 0) {
		cli_error("feed status", "%s", err);
		return -EIO;
	}
	if (!n && !verbose) {
		if (json)
			printf(",\"feeds\":[]");
		return 0;
	}
	if (ages) {
		*nages = 0;
		*ages = calloc(n ? n : 1, sizeof(**ages));
		if (!*ages)
			return -ENOMEM;
	}
	have_db = hashdb_open(&db, cli->cfg.db, HASHDB_RDONLY, err, sizeof(err)) == 0;
	if (json)
		printf(verbose ? "[" : ",\"feeds\":[");
	else if (!n)
		printf("no feeds in %s\n", cli->cfg.feeds_dir);
	else if (!verbose)
		putchar('\n');
	for (size_t k = 0; k < n; k++) {
		struct feed_state st = { 0 };
		struct feed f;
		bool stale, loaded;
		int64_t age;

		if (!wanted(names[k]))
			continue;
		loaded = feed_load(&f, cli->cfg.feeds_dir, names[k], err, sizeof(err)) == 0;
		if (have_db)
			feed_state_get(&db, names[k], &st, NULL, 0);
		age = st.last_ok ? now - st.last_ok : -1;
		stale = !loaded || !st.last_ok || age > f.stale_after;
		*nstale += stale;
		if (ages) {
			struct hg_feed_age *a = &(*ages)[(*nages)++];

			snprintf(a->name, sizeof(a->name), "%s", names[k]);
			a->last_ok = st.last_ok;
			a->stale = stale;
			a->failures = st.failures;
		}
		if (json) {
			printf("%s{\"name\":\"%s\",\"list\":\"%s\",\"last_ok\":%lld,\"age\":%lld,"
			       "\"stale\":%s,\"failures\":%lld,\"cursor\":%lld,\"error\":", shown++ ? "," : "",
			       names[k], loaded ? f.list : "", (long long)st.last_ok, (long long)age,
			       stale ? "true" : "false", (long long)st.failures, (long long)st.cursor);
			adm_json_print(stdout, loaded ? st.error : err);
			putchar('}');
		} else {
			printf("feed %s: ", names[k]);
			if (!loaded) {
				printf("BROKEN CONFIG: %s\n", err);
			} else {
				printf("list %s, ", f.list);
				if (st.last_ok)
					printf("last good fetch %s (%lld s ago)%s", adm_fmt_time(st.last_ok, t),
					       (long long)age, stale ? " STALE" : "");
				else
					printf("never fetched STALE");
				if (f.delta)
					printf(", sequence %lld", (long long)st.cursor);
				putchar('\n');
				if (st.error[0]) {
					printf("  last error (%lld in a row): ", (long long)st.failures);
					adm_text_print(stdout, st.error);
					putchar('\n');
				}
				if (verbose && st.etag[0])
					printf("  etag %s\n", st.etag);
			}
		}
		if (loaded)
			feed_release(&f);
	}
	if (json)
		printf(verbose ? "]\n" : "]");
	if (have_db)
		hashdb_close(&db);
	feed_names_free(names, n);
	return 0;
}

static int feed_keygen_cmd(int argc, char **argv, struct cli *cli)
{
	char err[1024];

	(void)cli;
	if (argc != 3) {
		cli_error("feed keygen", "give PRIVATE.pem and PUBLIC.pem");
		return EXIT_USAGE;
	}
	if (feed_keygen(argv[1], argv[2], err, sizeof(err)) < 0) {
		cli_error("feed keygen", "%s", err);
		return EXIT_ERROR;
	}
	printf("Ed25519 key pair: %s (private, keep it off the nodes), %s (public: 'feed add "
	       "--key')\n", argv[1], argv[2]);
	return 0;
}

static int feed_sign_cmd(int argc, char **argv, struct cli *cli)
{
	const char *key = NULL;
	char err[1024], sig[4200];
	int i, nfiles = 0, rc = 0;

	(void)cli;
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--key") && i + 1 < argc)
			key = argv[++i];
		else if (!strncmp(argv[i], "--key=", 6))
			key = argv[i] + 6;
		else if (argv[i][0] == '-') {
			cli_error("feed sign", "unknown option '%s'", argv[i]);
			return EXIT_USAGE;
		}
	}
	if (!key) {
		cli_error("feed sign", "--key PRIVATE.pem is required");
		return EXIT_USAGE;
	}
	for (i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--key")) {
			i++;
			continue;
		}
		if (argv[i][0] == '-')
			continue;
		nfiles++;
		snprintf(sig, sizeof(sig), "%s.sig", argv[i]);
		if (feed_sign(key, argv[i], sig, err, sizeof(err)) < 0) {
			cli_error("feed sign", "%s", err);
			rc = EXIT_ERROR;
		} else {
			printf("%s\n", sig);
		}
	}
	if (!nfiles) {
		cli_error("feed sign", "no FILE to sign");
		return EXIT_USAGE;
	}
	return rc;
}

static const struct cli_sub feed_subs[] = {
	{ "add",	feed_add,		"configure a new feed (NAME.conf in feeds_dir)" },
	{ "list",	feed_list,		"show the configured feeds" },
	{ "remove",	feed_remove,		"drop feeds (their lists stay)" },
	{ "update",	feed_update_cmd,	"fetch the feeds that are due, or the ones named" },
	{ "status",	feed_status_cmd,	"last fetch, age and errors of each feed" },
	{ "keygen",	feed_keygen_cmd,	"make an Ed25519 key pair for signing lists" },
	{ "sign",	feed_sign_cmd,		"write FILE.sig for a list to publish" },
};

int cmd_feed(int argc, char **argv, struct cli *cli)
{
	return CLI_DISPATCH(cli, "feed", argc, argv, feed_subs, usage);
}
