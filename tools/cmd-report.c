/*
 * cmd-report.c - `hashgate report`: compliance figures from the quarantine records - matches
 * per list, category, uploader uid, action (quarantine, block, log), origin (upload, rewrite,
 * inplace, scan), day (UTC) and list entry (the matching row's id or label from the list
 * file, for the records that have one), and the time from upload to verdict.
 *
 * Upload-to-verdict counts only records of uploads (origin upload or rewrite): a file found by
 * `hashgate scan` or rescanned after an in-place change has no upload start, only its mtime.
 * Records from before origins were kept ('') count as uploads unless their pid is 0 (a scan).
 *
 * Reads only the records (never content), but those hold customers' uids, so it needs root
 * like `quarantine list`.  Counting is sort-and-count over one snapshot of the records.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hashdb/qstore.h"
#include "tools/adm.h"
#include "tools/commands.h"

#define CMD "report"

enum { D_LIST, D_CATEGORY, D_UID, D_ACTION, D_ORIGIN, D_REVIEW, D_DAY, D_ENTRY, D_N };
static const char *dim_name[D_N] = { "list", "category", "uid", "action", "origin", "review",
				     "day", "entry" };

static void usage(FILE *f)
{
	fprintf(f,
"usage: hashgate report [--since WHEN] [--format text|csv|json]\n"
"\n"
"Counts of matches recorded in the quarantine store (quarantined, blocked and log-only\n"
"matches) per hash list, category, uploader uid, action, origin (upload: a new file,\n"
"rewrite: an existing file replaced, inplace: changed in place, truncate: cut down to\n"
"matching content, scan: found by 'hashgate scan', unknown: recorded before origins were\n"
"kept), review state (new, confirmed,\n"
"false-positive, reported: see 'hashgate quarantine review'), day (UTC) and list entry\n"
"(LIST:ID, or LIST:LABEL, of matches whose list row had an id or label), and the time\n"
"from the start of an upload to its verdict (count, min, median, 95th percentile, max,\n"
"mean in seconds) over uploads and rewrites only.\n"
"\n"
"  --since WHEN   7d | @UNIXTIME | YYYY-MM-DD[THH:MM[:SS]] (UTC); default: all records\n"
"  --format F     text (default), csv (dimension,key,value rows) or json ('--json' = json)\n"
"\n"
"Needs root: the records hold customers' user ids.\n"
"Exit status: 0 success, 2 error, 64 usage error.\n");
}

struct count {
	char key[72];
	uint64_t n;
};

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_i64(const void *a, const void *b)
{
	int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

	return (x > y) - (x < y);
}

/* Sort keys and count runs into *out (malloc'd). */
static int count_keys(char **keys, size_t n, struct count **out, size_t *nout)
{
	struct count *c = calloc(n ? n : 1, sizeof(*c));
	size_t k = 0;

	if (!c)
		return -ENOMEM;
	qsort(keys, n, sizeof(*keys), cmp_str);
	for (size_t i = 0; i < n; i++) {
		if (k && strcmp(c[k - 1].key, keys[i]) == 0) {
			c[k - 1].n++;
			continue;
		}
		snprintf(c[k].key, sizeof(c[k].key), "%s", keys[i]);
		c[k++].n = 1;
	}
	*out = c;
	*nout = k;
	return 0;
}

static int64_t pct(const int64_t *v, size_t n, int p)
{
	size_t i;

	if (!n)
		return 0;
	i = (size_t)((p * (n - 1) + 50) / 100);	/* nearest rank */
	return v[i];
}

int cmd_report(int argc, char **argv, struct cli *cli)
{
	const char *since = NULL, *format = NULL;
	struct qstore_filter f = { .since = 0, .before = 0, .uid = -1, .list = NULL };
	struct qrecord *recs = NULL;
	struct count *cnt[D_N] = { 0 };
	size_t ncnt[D_N] = { 0 }, n = 0, nentry = 0;
	char **keys[D_N] = { 0 }, (*store)[72] = NULL, err[512];
	int64_t *lat = NULL, sum = 0;
	size_t nlat = 0;
	struct qstore *q;
	int i, r, rc = EXIT_ERROR;

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
		} else if (strcmp(argv[i], "--format") == 0 && i + 1 < argc) {
			format = argv[++i];
		} else {
			cli_error(CMD, "unknown or incomplete argument '%s' (see 'hashgate report "
				  "--help')", argv[i]);
			return EXIT_USAGE;
		}
	}
	if (!format)
		format = cli->json ? "json" : "text";
	if (strcmp(format, "text") != 0 && strcmp(format, "csv") != 0 &&
	    strcmp(format, "json") != 0) {
		cli_error(CMD, "option '--format %s': expected text, csv or json", format);
		return EXIT_USAGE;
	}
	if (since && adm_parse_since(since, &f.since) < 0) {
		cli_error(CMD, "option '--since %s': expected a duration (7d, 12h), @UNIXTIME or "
			  "YYYY-MM-DD[THH:MM[:SS]]", since);
		return EXIT_USAGE;
	}
	if (adm_require_root(CMD, "the quarantine records are root-only") < 0)
		return EXIT_ERROR;
	if (access(cli->cfg.quarantine, F_OK) < 0 && errno == ENOENT) {
		n = 0;			/* nothing was ever quarantined: an empty report */
	} else {
		r = qstore_open(&q, cli->cfg.quarantine, cli->cfg.quarantine_key, 0, err,
				sizeof(err));
		if (r < 0) {
			cli_error(CMD, "%s", err);
			return EXIT_ERROR;
		}
		r = qstore_list(q, &f, &recs, &n);
		qstore_close(q);
		if (r < 0) {
			cli_error(CMD, "cannot read the records: %s", strerror(-r));
			return EXIT_ERROR;
		}
	}
	store = calloc(n ? n : 1, sizeof(*store) * 4);
	lat = calloc(n ? n : 1, sizeof(*lat));
	for (int d = 0; d < D_N; d++)
		keys[d] = calloc(n ? n : 1, sizeof(char *));
	if (!store || !lat)
		goto out;
	for (int d = 0; d < D_N; d++)
		if (!keys[d])
			goto out;
	for (size_t k = 0; k < n; k++) {
		time_t t = (time_t)recs[k].time;
		struct tm tm;

		keys[D_LIST][k] = recs[k].list;
		keys[D_CATEGORY][k] = recs[k].category;
		snprintf(store[3 * k], 72, "%" PRIu32, recs[k].uid);
		keys[D_UID][k] = store[3 * k];
		keys[D_ACTION][k] = (char *)config_action_name(recs[k].action);
		keys[D_ORIGIN][k] = *recs[k].origin ? recs[k].origin : "unknown";
		keys[D_REVIEW][k] = recs[k].review;
		gmtime_r(&t, &tm);
		strftime(store[3 * k + 1], 72, "%Y-%m-%d", &tm);
		keys[D_DAY][k] = store[3 * k + 1];
		if ((recs[k].ref && *recs[k].ref) || (recs[k].label && *recs[k].label)) {
			snprintf(store[3 * n + k], 72, "%s:%s", recs[k].list,
				 recs[k].ref && *recs[k].ref ? recs[k].ref : recs[k].label);
			keys[D_ENTRY][nentry++] = store[3 * n + k];
		}
		/* Only uploads have a start: a scan's or in-place record holds the mtime. */
		if (strcmp(recs[k].origin, "upload") == 0 || strcmp(recs[k].origin, "rewrite") == 0 ||
		    (!*recs[k].origin && recs[k].pid != 0)) {
			int64_t l = recs[k].time - recs[k].upload_time;

			lat[nlat] = l < 0 ? 0 : l;
			sum += lat[nlat++];
		}
	}
	for (int d = 0; d < D_N; d++)
		if (count_keys(keys[d], d == D_ENTRY ? nentry : n, &cnt[d], &ncnt[d]) < 0)
			goto out;
	qsort(lat, nlat, sizeof(*lat), cmp_i64);

	if (strcmp(format, "json") == 0) {
		printf("{\"since\":%" PRId64 ",\"generated\":%lld,\"matches\":%zu", f.since,
		       (long long)time(NULL), n);
		for (int d = 0; d < D_N; d++) {
			printf(",\"by_%s\":{", dim_name[d]);
			for (size_t k = 0; k < ncnt[d]; k++) {
				if (k)
					putchar(',');
				adm_json_print(stdout, cnt[d][k].key);
				printf(":%" PRIu64, cnt[d][k].n);
			}
			putchar('}');
		}
		printf(",\"upload_to_verdict_seconds\":{\"count\":%zu,\"min\":%" PRId64
		       ",\"median\":%" PRId64 ",\"p95\":%" PRId64 ",\"max\":%" PRId64
		       ",\"mean\":%.1f}}\n", nlat, nlat ? lat[0] : 0, pct(lat, nlat, 50),
		       pct(lat, nlat, 95), nlat ? lat[nlat - 1] : 0,
		       nlat ? (double)sum / (double)nlat : 0.0);
	} else if (strcmp(format, "csv") == 0) {
		printf("dimension,key,value\n");
		printf("total,matches,%zu\n", n);
		for (int d = 0; d < D_N; d++)
			for (size_t k = 0; k < ncnt[d]; k++) {
				/* list/category names are [A-Za-z0-9._-]: no CSV quoting needed,
				 * but quote anyway in case an old record holds something else. */
				printf("%s,\"", dim_name[d]);
				for (const char *c = cnt[d][k].key; *c; c++)
					printf(*c == '"' ? "\"\"" : "%c", *c);
				printf("\",%" PRIu64 "\n", cnt[d][k].n);
			}
		printf("upload_to_verdict_seconds,count,%zu\n", nlat);
		printf("upload_to_verdict_seconds,min,%" PRId64 "\n", nlat ? lat[0] : 0);
		printf("upload_to_verdict_seconds,median,%" PRId64 "\n", pct(lat, nlat, 50));
		printf("upload_to_verdict_seconds,p95,%" PRId64 "\n", pct(lat, nlat, 95));
		printf("upload_to_verdict_seconds,max,%" PRId64 "\n", nlat ? lat[nlat - 1] : 0);
		printf("upload_to_verdict_seconds,mean,%.1f\n",
		       nlat ? (double)sum / (double)nlat : 0.0);
	} else {
		char t[32];

		printf("matches: %zu%s%s\n", n, f.since ? " since " : "",
		       f.since ? adm_fmt_time(f.since, t) : "");
		for (int d = 0; d < D_N; d++) {
			printf("\nper %s:\n", dim_name[d]);
			for (size_t k = 0; k < ncnt[d]; k++) {
				/* entries quote list files: escaped */
				int w = (int)strlen(cnt[d][k].key);

				fputs("  ", stdout);
				adm_text_print(stdout, cnt[d][k].key);
				printf("%*s %" PRIu64 "\n", w < 24 ? 24 - w : 0, "", cnt[d][k].n);
			}
		}
		printf("\nupload to verdict (s, %zu uploads): min %" PRId64 ", median %" PRId64
		       ", p95 %" PRId64 ", max %" PRId64 ", mean %.1f\n", nlat, nlat ? lat[0] : 0,
		       pct(lat, nlat, 50), pct(lat, nlat, 95), nlat ? lat[nlat - 1] : 0,
		       nlat ? (double)sum / (double)nlat : 0.0);
	}
	rc = 0;
out:
	if (rc)
		cli_error(CMD, "out of memory");
	for (int d = 0; d < D_N; d++) {
		free(cnt[d]);
		free(keys[d]);
	}
	free(store);
	free(lat);
	qrecord_free_array(recs, n);
	return rc;
}
