/*
 * test-packaging.c - the shipped config file and hashgate.conf(5) stay true to the code.
 *
 * What users rely on: /etc/hashgate/hashgate.conf as shipped (packaging/hashgate.conf) shows
 * every key at its real built-in default, so uncommenting a line changes nothing until the
 * value is edited; every key the parser knows (the table in hashdb/config.c) is in the shipped
 * file, hashgate.conf(5) and the bash completion, and nothing else is; every subcommand in
 * tools/hashgate.c's table is in hashgate(8) and the completion; every daemon-only -o option
 * of fs/main.c is in hashgatefs(8) and the completion.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hashdb/config.h"
#include "tests/unit/tap.h"

/* A set of names, grown as needed: a key past any fixed limit would drop out of a comparison. */
struct keyset {
	char **name;
	int n, cap;
};

static void keyset_add(struct keyset *s, const char *name, size_t len)
{
	int i;

	for (i = 0; i < s->n; i++)
		if (strlen(s->name[i]) == len && strncmp(s->name[i], name, len) == 0)
			return;
	if (s->n == s->cap) {
		int cap = s->cap ? 2 * s->cap : 64;
		char **n = realloc(s->name, (size_t)cap * sizeof(*n));

		if (!n) {
			printf("Bail out! out of memory for %d names\n", cap);
			exit(2);
		}
		s->name = n;
		s->cap = cap;
	}
	s->name[s->n] = strndup(name, len);
	if (!s->name[s->n]) {
		printf("Bail out! out of memory\n");
		exit(2);
	}
	s->n++;
}

static int keyset_has(const struct keyset *s, const char *name)
{
	int i;

	for (i = 0; i < s->n; i++)
		if (strcmp(s->name[i], name) == 0)
			return 1;
	return 0;
}

static void keyset_release(struct keyset *s)
{
	while (s->n > 0)
		free(s->name[--s->n]);
	free(s->name);
	s->name = NULL;
	s->cap = 0;
}

static FILE *open_src(const char *src, const char *rel)
{
	char path[4096];

	snprintf(path, sizeof(path), "%s/%s", src, rel);
	return fopen(path, "re");
}

/* The key names of the parser's table: lines `{ "name", K_...` after "keys[] = {". */
static int code_keys(const char *src, struct keyset *s)
{
	char line[512];
	int in = 0;
	FILE *f = open_src(src, "hashdb/config.c");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *q;

		if (strstr(line, "keys[] = {")) {
			in = 1;
			continue;
		}
		if (in && strncmp(line, "};", 2) == 0)
			break;
		if (in && (q = strstr(line, "{ \"")) && strstr(line, "K_")) {
			char *e = strchr(q + 3, '"');

			if (e)
				keyset_add(s, q + 3, (size_t)(e - q - 3));
		}
	}
	fclose(f);
	return in ? 0 : -1;
}

/*
 * The shipped file with its "#key = value" lines (no blank after '#': those are the settings
 * shown at their defaults, not prose) uncommented, written to out; their keys go to s.
 * The per-category examples ("#on_match.NAME") are left commented: they are examples.
 */
static int uncommented_conf(const char *src, FILE *out, struct keyset *s)
{
	char line[4096];
	FILE *f = open_src(src, "packaging/hashgate.conf");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		size_t k = 1;

		if (line[0] == '#' && islower((unsigned char)line[1])) {
			while (islower((unsigned char)line[k]) || line[k] == '_')
				k++;
			if (line[k] == ' ' && line[k + 1] == '=') {
				keyset_add(s, line + 1, k - 1);
				fputs(line + 1, out);
				continue;
			}
		}
		fputs(line, out);
	}
	fclose(f);
	return 0;
}

/* Keys the man page documents as tagged paragraphs: ".BI key " or ".B key" lines under KEYS. */
static int man_keys(const char *src, struct keyset *s)
{
	char line[512];
	int in = 0, tp = 0;
	FILE *f = open_src(src, "packaging/man/hashgate.conf.5");

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, ".SH ", 4) == 0)
			in = strncmp(line, ".SH KEYS", 8) == 0;
		if (in && tp && strncmp(line, ".BI ", 4) == 0) {
			const char *p = line + 4;
			size_t n = 0;

			while (islower((unsigned char)p[n]) || p[n] == '_')
				n++;
			if (n && p[n] != '.')	/* on_match.category is the per-category form */
				keyset_add(s, p, n);
		}
		tp = strncmp(line, ".TP", 3) == 0;
	}
	fclose(f);
	return 0;
}

/* Names quoted in lines containing `before` right before the opening quote: `before"NAME"`. */
static int quoted_names(const char *src, const char *rel, const char *before, const char *need,
			struct keyset *s)
{
	char line[512];
	FILE *f = open_src(src, rel);

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		char *q = strstr(line, before), *e;

		if (!q || (need && !strstr(line, need)))
			continue;
		q += strlen(before);
		e = strchr(q, '"');
		if (e && e > q)
			keyset_add(s, q, (size_t)(e - q));
	}
	fclose(f);
	return 0;
}

/* The whole file in one malloc'd string. */
static char *slurp(const char *src, const char *rel)
{
	char path[4096], *buf = NULL;
	size_t len = 0;
	FILE *f, *m;
	int c;

	snprintf(path, sizeof(path), "%s/%s", src, rel);
	f = fopen(path, "re");
	if (!f)
		return NULL;
	m = open_memstream(&buf, &len);
	if (m) {
		while ((c = getc(f)) != EOF)
			putc(c, m);
		fclose(m);
	}
	fclose(f);
	return buf;
}

/* The words of a completion variable: NAME="w1 w2 ...". */
static int comp_words(const char *text, const char *var, struct keyset *s)
{
	char pat[64];
	const char *p, *e;

	snprintf(pat, sizeof(pat), "\n%s=\"", var);
	p = text ? strstr(text, pat) : NULL;
	if (!p)
		return -1;
	p += strlen(pat);
	e = strchr(p, '"');
	while (e && p < e) {
		size_t n;

		while (p < e && isspace((unsigned char)*p))
			p++;
		n = strcspn(p, " \t\n\"");
		if (n)
			keyset_add(s, p, n);
		p += n;
	}
	return 0;
}

/*
 * Every long option in the usage text of tools/cmd-NAME.c (what `hashgate NAME --help`
 * prints) is in hashgate(8), where roff spells '-' as '\\-', and in the completion.
 */
static void check_cmd_options(const char *src, const char *cmd, const char *man8, const char *comp)
{
	char rel[128], opt[64], roff[160];
	char *text, *p, *end;
	struct keyset opts = { 0 };
	int i;

	snprintf(rel, sizeof(rel), "tools/cmd-%s.c", cmd);
	text = slurp(src, rel);
	if (!ok(text != NULL, "%s read", rel))
		return;
	p = strstr(text, "static void usage(");
	end = p ? strstr(p, "\n}\n") : NULL;
	if (!ok(p && end, "%s has a usage() function", rel)) {
		free(text);
		return;
	}
	for (; p < end; p++) {
		size_t n;

		if (p[0] != '-' || p[1] != '-' || !islower((unsigned char)p[2]) ||
		    (p > text && (isalnum((unsigned char)p[-1]) || p[-1] == '-')))
			continue;
		n = 2;
		while (islower((unsigned char)p[n]) || isdigit((unsigned char)p[n]) || p[n] == '-')
			n++;
		if (n < sizeof(opt))
			keyset_add(&opts, p, n);
		p += n - 1;
	}
	for (i = 0; i < opts.n; i++) {
		const char *o = opts.name[i];
		size_t k = 0;

		snprintf(opt, sizeof(opt), "%s", o);
		for (; *o && k + 3 < sizeof(roff); o++) {
			if (*o == '-')
				roff[k++] = '\\';
			roff[k++] = *o;
		}
		roff[k] = 0;
		ok(strstr(man8, roff) != NULL, "hashgate(8) has %s %s", cmd, opt);
		ok(strstr(comp, opt) != NULL, "completion offers %s %s", cmd, opt);
	}
	keyset_release(&opts);
	free(text);
}

static void test_cli_and_daemon_docs(const char *src, const struct keyset *code)
{
	struct keyset cmds = { 0 }, fsopts = { 0 }, compcmds = { 0 }, compkeys = { 0 };
	char *man8 = slurp(src, "packaging/man/hashgate.8");
	char *fsman = slurp(src, "packaging/man/hashgatefs.8");
	char *comp = slurp(src, "packaging/bash-completion/hashgate");
	char want[128];
	int i, r;

	r = quoted_names(src, "tools/hashgate.c", "\t{ \"", "cmd_", &cmds);
	ok(r == 0 && cmds.n > 0, "subcommand table read from tools/hashgate.c (%d commands)", cmds.n);
	r = quoted_names(src, "fs/main.c", "strcmp(k, \"", NULL, &fsopts);
	ok(r == 0 && fsopts.n > 0, "daemon -o options read from fs/main.c (%d options)", fsopts.n);
	ok(man8 && fsman && comp, "hashgate.8, hashgatefs.8 and the completion read");
	ok(comp_words(comp, "_hashgate_commands", &compcmds) == 0, "completion command list found");
	ok(comp_words(comp, "_hashgate_conf_keys", &compkeys) == 0, "completion key list found");
	for (i = 0; man8 && i < cmds.n; i++) {
		/* A command's own tagged paragraph starts ".B NAME " or is ".B NAME" alone. */
		snprintf(want, sizeof(want), "\n.B %s ", cmds.name[i]);
		ok(strstr(man8, want) != NULL, "hashgate(8) documents '%s'", cmds.name[i]);
		ok(keyset_has(&compcmds, cmds.name[i]), "completion offers '%s'", cmds.name[i]);
	}
	for (i = 0; i < compcmds.n; i++)
		ok(keyset_has(&cmds, compcmds.name[i]), "completion command '%s' exists",
		   compcmds.name[i]);
	for (i = 0; man8 && comp && i < cmds.n; i++)
		check_cmd_options(src, cmds.name[i], man8, comp);
	for (i = 0; fsman && comp && i < fsopts.n; i++) {
		snprintf(want, sizeof(want), "%s=", fsopts.name[i]);
		ok(strstr(fsman, want) != NULL, "hashgatefs(8) documents -o %s", want);
		ok(strstr(comp, want) != NULL, "completion offers -o %s", want);
	}
	for (i = 0; i < code->n; i++)
		ok(keyset_has(&compkeys, code->name[i]), "completion offers key '%s'", code->name[i]);
	for (i = 0; i < compkeys.n; i++)
		ok(keyset_has(code, compkeys.name[i]), "completion key '%s' is known to the parser",
		   compkeys.name[i]);
	free(man8);
	free(fsman);
	free(comp);
	keyset_release(&cmds);
	keyset_release(&fsopts);
	keyset_release(&compcmds);
	keyset_release(&compkeys);
}

static void compare_defaults(const struct hg_config *got, const struct hg_config *def)
{
	/* The file's paths are those of a /etc, /var install, as the packages build. */
	if (strcmp(HASHGATE_SYSCONFDIR, "/etc") == 0 && strcmp(HASHGATE_LOCALSTATEDIR, "/var") == 0) {
		is_str(got->db, def->db, "db shown at its default");
		is_str(got->quarantine, def->quarantine, "quarantine shown at its default");
		is_str(got->quarantine_key, def->quarantine_key, "quarantine_key shown at its default");
		is_str(got->audit_log, def->audit_log, "audit_log shown at its default");
		is_str(got->state_dir, def->state_dir, "state_dir shown at its default");
		is_str(got->scan_db, def->scan_db, "scan_db shown at its default");
	} else {
		diag("paths not compared: built with SYSCONFDIR=%s LOCALSTATEDIR=%s",
		     HASHGATE_SYSCONFDIR, HASHGATE_LOCALSTATEDIR);
	}
	is_str(got->prometheus_textfile, def->prometheus_textfile,
	       "prometheus_textfile shown at its default");
	is_int(got->on_match, def->on_match, "on_match shown at its default");
	is_int(got->ncat, def->ncat, "no per-category action set by default");
	is_int(got->on_error, def->on_error, "on_error shown at its default");
	is_int(got->scan_max_size, def->scan_max_size, "scan_max_size shown at its default");
	is_int(got->pdq, def->pdq, "pdq shown at its default");
	is_int(got->pdq_threshold, def->pdq_threshold, "pdq_threshold shown at its default");
	is_int(got->pdq_min_quality, def->pdq_min_quality, "pdq_min_quality shown at its default");
	is_int(got->pdq_max_size, def->pdq_max_size, "pdq_max_size shown at its default");
	is_int(got->image_max_pixels, def->image_max_pixels, "image_max_pixels shown at its default");
	is_int(got->retention, def->retention, "retention shown at its default");
	is_int(got->log_level, def->log_level, "log_level shown at its default");
}

int main(void)
{
	struct keyset code = { 0 }, conf = { 0 }, man = { 0 };
	struct hg_config def, got;
	const char *src = getenv("HASHGATE_SRC");
	char path[] = "/tmp/hg-packaging-conf-XXXXXX", err[512];
	FILE *out;
	int fd, i, r;

	if (!src || !*src)
		src = ".";
	if (code_keys(src, &code) < 0 || code.n == 0) {
		skip_all("hashdb/config.c key table not found (HASHGATE_SRC unset?)");
		return 0;
	}
	fd = mkstemp(path);
	out = fd >= 0 ? fdopen(fd, "w") : NULL;
	if (!ok(out && uncommented_conf(src, out, &conf) == 0, "packaging/hashgate.conf read"))
		return done_testing();
	fclose(out);
	ok(man_keys(src, &man) == 0, "packaging/man/hashgate.conf.5 read");

	for (i = 0; i < code.n; i++) {
		ok(keyset_has(&conf, code.name[i]), "key '%s' is in the shipped config", code.name[i]);
		ok(keyset_has(&man, code.name[i]), "key '%s' is in hashgate.conf(5)", code.name[i]);
	}
	for (i = 0; i < conf.n; i++)
		ok(keyset_has(&code, conf.name[i]), "shipped config key '%s' is known to the parser",
		   conf.name[i]);
	for (i = 0; i < man.n; i++)
		ok(keyset_has(&code, man.name[i]), "man page key '%s' is known to the parser",
		   man.name[i]);

	test_cli_and_daemon_docs(src, &code);

	config_init(&def);
	config_init(&got);
	r = config_load(&got, path, err, sizeof(err));
	if (!ok(r == 0, "the shipped config with its defaults uncommented loads"))
		diag("  %s", err);
	else
		compare_defaults(&got, &def);
	config_release(&got);
	config_release(&def);
	unlink(path);
	keyset_release(&code);
	keyset_release(&conf);
	keyset_release(&man);
	return done_testing();
}
