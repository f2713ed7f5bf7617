/*
 * test-audit.c - the hash-chained audit log: appends verify, an edited or deleted line is found
 * at its line number, two processes appending at once keep one valid chain, a torn last line
 * does not break later appends, field values cannot forge the chain markers.  A record whose
 * own fields hold "hash" or "action" (allowlist changes, verdicts) neither jams later appends
 * nor produces a duplicate JSON key; a log written in the first format (fields at the top
 * level) still verifies and can be appended to.  An append needs no new descriptor (a daemon
 * out of them still records its verdicts: 33-write-model lost a match's record that way), and
 * a log moved away and recreated under its name is appended to under the name.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "hashdb/audit.h"
#include "tests/unit/tap.h"

static char dir[64], path[128];

static char **read_lines(size_t *n)
{
	FILE *f = fopen(path, "r");
	char **v = NULL, *line = NULL;
	size_t cap = 0;

	*n = 0;
	while (f && getline(&line, &cap, f) > 0) {
		v = realloc(v, (*n + 1) * sizeof(*v));
		v[(*n)++] = strdup(line);
	}
	free(line);
	if (f)
		fclose(f);
	return v;
}

static void write_lines(char **v, size_t n, size_t skip)
{
	FILE *f = fopen(path, "w");

	for (size_t i = 0; i < n; i++)
		if (i != skip)
			fputs(v[i], f);
	fclose(f);
}

static void free_lines(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* In a child: every descriptor taken (a lowered limit, filled with dups), then one append. */
static void out_of_fds(void)
{
	struct audit *a;
	char err[512];
	uint64_t n0 = 0, n = 0;
	pid_t p;
	int st = -1, r;

	if (audit_open(&a, path, err, sizeof(err)) < 0 || audit_verify(path, &n0, err, sizeof(err))) {
		ok(0, "out of descriptors: open/verify before: %s", err);
		return;
	}
	p = fork();
	if (p == 0) {
		struct rlimit rl;
		int fd;

		getrlimit(RLIMIT_NOFILE, &rl);
		rl.rlim_cur = 64;
		if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
			_exit(3);
		while ((fd = dup(0)) >= 0)
			;
		if (errno != EMFILE)
			_exit(4);
		r = audit_append(a, "hashgatefs", "verdict", "\"path\":\"d/f5e\"");
		_exit(r == 0 ? 0 : r == -EMFILE ? 1 : 2);
	}
	waitpid(p, &st, 0);
	ok(WIFEXITED(st) && WEXITSTATUS(st) == 0,
	   "an append with every descriptor taken succeeds (exit %d: 1 = EMFILE)",
	   WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	r = audit_verify(path, &n, err, sizeof(err));
	ok(r == 0 && n == n0 + 1, "... and its record is in the chain (%llu -> %llu)",
	   (unsigned long long)n0, (unsigned long long)n);
	audit_close(a);
}

/* The log renamed away (archived) and a new one made: appends go to the file of the name. */
static void replaced(void)
{
	struct audit *a;
	char err[512], old[160];
	uint64_t n = 0, n0 = 0;
	int r;

	if (audit_open(&a, path, err, sizeof(err)) < 0) {
		ok(0, "replaced log: open: %s", err);
		return;
	}
	r = audit_append(a, "test", "before.move", NULL);
	audit_verify(path, &n0, err, sizeof(err));
	snprintf(old, sizeof(old), "%s.old", path);
	rename(path, old);
	r = r ? r : audit_append(a, "test", "after.move", NULL);
	is_int(r, 0, "appends before and after the log was moved away");
	r = audit_verify(path, &n, err, sizeof(err));
	ok(r == 0 && n == 1, "the new log under the name has the one record since (%llu)",
	   (unsigned long long)n);
	r = audit_verify(old, &n, err, sizeof(err));
	ok(r == 0 && n == n0, "the moved log kept its %llu records (%llu)", (unsigned long long)n0,
	   (unsigned long long)n);
	audit_close(a);
}

static int appender(const char *who, int count)
{
	struct audit *a;
	char fields[64];

	if (audit_open(&a, path, NULL, 0) < 0)
		return 1;
	for (int i = 0; i < count; i++) {
		snprintf(fields, sizeof(fields), "\"n\":%d", i);
		if (audit_append(a, who, "test.concurrent", fields) < 0)
			return 1;
	}
	audit_close(a);
	return 0;
}

static void hex256(const char *s, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned n = 0;

	EVP_Digest(s, len, md, &n, EVP_sha256(), NULL);
	for (int i = 0; i < 32; i++)
		sprintf(out + 2 * i, "%02x", md[i]);
}

/* True if some JSON object in line repeats a key at its own level (strings and nesting aware). */
static int dup_keys(const char *line)
{
	const char *keys[64][64];
	int nkeys[64] = { 0 }, depth = -1;
	const char *p = line;

	while (*p) {
		if (*p == '{') {
			if (++depth >= 64)
				return 1;
			nkeys[depth] = 0;
			p++;
		} else if (*p == '}') {
			depth--;
			p++;
		} else if (*p == '"') {
			const char *s = ++p;

			while (*p && *p != '"')
				p += *p == '\\' && p[1] ? 2 : 1;
			if (*p)
				p++;
			if (*p == ':' && depth >= 0) {
				size_t len = (size_t)(p - s) - 1;

				for (int k = 0; k < nkeys[depth]; k++)
					if (strncmp(keys[depth][k], s, len) == 0 &&
					    keys[depth][k][len] == '"')
						return 1;
				if (nkeys[depth] < 64)
					keys[depth][nkeys[depth]++] = s;
			}
		} else {
			p++;
		}
	}
	return 0;
}

/* Keys that are records' own: an allowlist change ("hash"), a verdict ("action", "prev"). */
static void own_keys(void)
{
	char p2[160], err[512], line[1024], body[1024], h[65], last[65];
	struct audit *a;
	uint64_t n = 0;
	FILE *f;
	int r;

	snprintf(p2, sizeof(p2), "%s/own.log", dir);
	r = audit_open(&a, p2, err, sizeof(err));
	is_int(r, 0, "open a second log");
	r = audit_append(a, "uid=0(root)", "allow.add", "\"algo\":\"md5\",\"hash\":"
			 "\"0123456789abcdef0123456789abcdef\"");
	is_int(r, 0, "append an allowlist record with its own \"hash\" field");
	r = audit_append(a, "hashgatefs", "verdict", "\"action\":\"quarantine\",\"prev\":\"x\"");
	is_int(r, 0, "the next append chains onto it (was: Bad message for good)");
	r = audit_append(a, "uid=0(root)", "db.add", "\"list\":\"l\",\"count\":1");
	is_int(r, 0, "and the one after");
	r = audit_verify(p2, &n, err, sizeof(err));
	ok(r == 0 && n == 3, "3 records verify (r=%d n=%llu %s)", r, (unsigned long long)n,
	   r ? err : "");
	f = fopen(p2, "r");
	for (int i = 0; f && fgets(line, sizeof(line), f); i++) {
		ok(!dup_keys(line), "record %d has no duplicate JSON key", i + 1);
		if (i == 0)
			ok(strstr(line, "\"data\":{\"algo\":\"md5\",\"hash\":\"0123"),
			   "the record's own fields sit in \"data\"");
	}
	if (f)
		fclose(f);
	audit_close(a);

	/* A log in the first format: fields at the top level, "hash" twice in line 1. */
	snprintf(p2, sizeof(p2), "%s/v1.log", dir);
	f = fopen(p2, "w");
	snprintf(body, sizeof(body), "{\"seq\":1,\"time\":1,\"actor\":\"uid=0(root)\","
		 "\"action\":\"allow.add\",\"algo\":\"md5\",\"hash\":"
		 "\"0123456789abcdef0123456789abcdef\",\"prev\":\"%064d\"", 0);
	hex256(body, strlen(body), h);
	fprintf(f, "%s,\"hash\":\"%s\"}\n", body, h);
	fclose(f);
	r = audit_verify(p2, &n, err, sizeof(err));
	ok(r == 0 && n == 1, "a first-format log with an allowlist record verifies (%s)",
	   r ? err : "ok");
	r = audit_open(&a, p2, err, sizeof(err));
	r = r ? r : audit_append(a, "uid=0(root)", "db.add", "\"list\":\"l\"");
	is_int(r, 0, "appending to it works");
	r = audit_verify_last(p2, &n, last, err, sizeof(err));
	ok(r == 0 && n == 2, "and the chain stays valid (%s)", r ? err : "ok");
	audit_close(a);
}

int main(void)
{
	struct audit *a;
	char err[512], last[65], last2[65];
	uint64_t n = 0;
	char **lines;
	size_t nl;
	int r;

	snprintf(dir, sizeof(dir), "/tmp/test-audit.XXXXXX");
	if (!mkdtemp(dir)) {
		skip_all("cannot create a temp dir");
		return 0;
	}
	snprintf(path, sizeof(path), "%s/audit.log", dir);

	r = audit_open(&a, "/nonexistent-dir/audit.log", err, sizeof(err));
	ok(r < 0, "open in a missing directory fails: %s", err);

	r = audit_open(&a, path, err, sizeof(err));
	is_int(r, 0, "audit_open creates the log");
	r = audit_verify(path, &n, err, sizeof(err));
	ok(r == 0 && n == 0, "an empty log verifies with 0 records");
	for (int i = 0; i < 5; i++) {
		char f[64];

		snprintf(f, sizeof(f), "\"id\":%d,\"path\":\"a/b\\\"c\"", i + 1);
		r = audit_append(a, "uid=0(root)", "quarantine.restore", f);
		if (r)
			break;
	}
	is_int(r, 0, "5 appends");
	/* A field value that tries to end the record and start a forged hash. */
	r = audit_append(a, "evil\",\"hash\":\"00", "x\n,\"prev\":\"", NULL);
	is_int(r, 0, "append with hostile actor/action strings");
	r = audit_verify_last(path, &n, last, err, sizeof(err));
	ok(r == 0 && n == 6, "verify: 6 records (r=%d n=%llu %s)", r, (unsigned long long)n,
	   r ? err : "");
	lines = read_lines(&nl);
	is_int(nl, 6, "6 lines in the file");
	ok(nl >= 1 && strncmp(lines[0], "{\"seq\":1,", 9) == 0 &&
	   strstr(lines[0], "\"actor\":\"uid=0(root)\"") &&
	   strstr(lines[0], "\"action\":\"quarantine.restore\"") &&
	   strstr(lines[0], "\"path\":\"a/b\\\"c\""), "line 1 has seq, actor, action, fields");
	ok(nl == 6 && strchr(lines[5], '\n') == lines[5] + strlen(lines[5]) - 1,
	   "hostile newline escaped: record is one line");

	/* Edit line 3: verify names line 3. */
	{
		char *p = strstr(lines[2], "\"id\":3");

		if (p)
			p[5] = '9';
		write_lines(lines, nl, (size_t)-1);
		r = audit_verify(path, &n, err, sizeof(err));
		ok(r == -EBADMSG && strstr(err, ":3:"), "edited line 3 detected: %s", err);
		if (p)
			p[5] = '3';
	}
	/* Delete line 4: verify fails at the line that follows. */
	write_lines(lines, nl, 3);
	r = audit_verify(path, &n, err, sizeof(err));
	ok(r == -EBADMSG && strstr(err, ":4:"), "deleted line detected at line 4: %s", err);
	/* Reorder lines 1 and 2. */
	{
		char *t = lines[0];

		lines[0] = lines[1];
		lines[1] = t;
		write_lines(lines, nl, (size_t)-1);
		r = audit_verify(path, &n, err, sizeof(err));
		ok(r == -EBADMSG && strstr(err, ":1:"), "swapped lines detected: %s", err);
		lines[1] = lines[0];
		lines[0] = t;
	}
	write_lines(lines, nl, (size_t)-1);
	r = audit_verify_last(path, &n, last2, err, sizeof(err));
	ok(r == 0 && n == 6 && strcmp(last, last2) == 0, "restored original verifies again");

	/* Torn last line (crash mid-append): the next append cuts it, chain stays valid. */
	{
		FILE *f = fopen(path, "a");

		fputs("{\"seq\":7,\"time\":1,\"act", f);
		fclose(f);
		r = audit_verify(path, &n, err, sizeof(err));
		ok(r == -EBADMSG && strstr(err, ":7:"), "torn tail reported: %s", err);
		r = audit_append(a, "test", "after.crash", NULL);
		is_int(r, 0, "append after a torn tail");
		r = audit_verify(path, &n, err, sizeof(err));
		ok(r == 0 && n == 7, "chain valid after the torn tail was cut (%s)", r ? err : "ok");
	}
	free_lines(lines, nl);
	audit_close(a);

	/* Two processes appending at the same time keep one chain. */
	{
		pid_t p1, p2;
		int s1 = -1, s2 = -1;

		p1 = fork();
		if (p1 == 0)
			_exit(appender("proc-a", 300));
		p2 = fork();
		if (p2 == 0)
			_exit(appender("proc-b", 300));
		waitpid(p1, &s1, 0);
		waitpid(p2, &s2, 0);
		ok(WIFEXITED(s1) && WEXITSTATUS(s1) == 0 && WIFEXITED(s2) && WEXITSTATUS(s2) == 0,
		   "both appenders succeeded");
		r = audit_verify(path, &n, err, sizeof(err));
		ok(r == 0 && n == 607, "607 records, chain valid after concurrent appends (r=%d n=%llu %s)",
		   r, (unsigned long long)n, r ? err : "");
		lines = read_lines(&nl);
		{
			int a_ = 0, b_ = 0, interleaved = 0;

			for (size_t i = 7; i < nl; i++) {
				int isa = strstr(lines[i], "proc-a") != NULL;

				a_ += isa;
				b_ += !isa;
				if (i > 7 && isa != (strstr(lines[i - 1], "proc-a") != NULL))
					interleaved++;
			}
			ok(a_ == 300 && b_ == 300, "300 records from each process");
			diag("writers alternated %d times", interleaved);
		}
		free_lines(lines, nl);
	}

	own_keys();
	out_of_fds();
	replaced();

	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		system(cmd);
	}
	return done_testing();
}
