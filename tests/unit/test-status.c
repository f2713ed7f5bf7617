/*
 * test-status.c - status files: write/read round trip (paths with newlines and backslashes
 * included), files of dead daemons are skipped, remove, and the Prometheus textfile has one
 * sample per instance with escaped labels.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "hashdb/status.h"
#include "tests/unit/tap.h"

int main(void)
{
	char dir[] = "/tmp/test-status.XXXXXX", prom[128], cmd[256], *buf = NULL;
	struct hg_status a = { 0 }, b = { 0 }, *all = NULL;
	size_t n = 0;
	pid_t dead;
	FILE *f;
	int r;

	if (!mkdtemp(dir)) {
		skip_all("no temp dir");
		return 0;
	}
	a.pid = getpid();
	snprintf(a.backing, sizeof(a.backing), "/srv/back\\slash");
	snprintf(a.mountpoint, sizeof(a.mountpoint), "/srv/mnt \"q\"\nline2");
	a.started = 1700000000;
	a.updated = 1700000100;
	a.generation = 42;
	a.uploads_scanned = 1000;
	a.uploads_clean = 990;
	a.matches = 10;
	a.quarantined = 7;
	a.blocked = 3;
	a.errors = 2;
	a.bytes_scanned = 123456789012ull;
	is_int(status_write(dir, &a), 0, "status_write");

	/* A daemon that died without removing its file. */
	dead = fork();
	if (dead == 0)
		_exit(0);
	waitpid(dead, NULL, 0);
	b = a;
	b.pid = dead;
	is_int(status_write(dir, &b), 0, "status_write for a pid that is gone");

	r = status_read_all(dir, &all, &n);
	ok(r == 0 && n == 1, "read_all: only the live instance (r=%d n=%zu)", r, n);
	if (n == 1) {
		is_int(all[0].pid, getpid(), "pid");
		is_str(all[0].backing, a.backing, "backing with a backslash round-trips");
		is_str(all[0].mountpoint, a.mountpoint, "mountpoint with quote and newline round-trips");
		ok(all[0].started == a.started && all[0].updated == a.updated &&
		   all[0].generation == 42 && all[0].uploads_scanned == 1000 &&
		   all[0].uploads_clean == 990 && all[0].matches == 10 && all[0].quarantined == 7 &&
		   all[0].blocked == 3 && all[0].errors == 2 &&
		   all[0].bytes_scanned == 123456789012ull, "every counter round-trips");
	}

	snprintf(prom, sizeof(prom), "%s/hashgate.prom", dir);
	is_int(status_write_prometheus(prom, all, n), 0, "write Prometheus textfile");
	f = fopen(prom, "r");
	if (f) {
		size_t len = fread(buf = malloc(65536), 1, 65535, f);

		buf[len] = '\0';
		fclose(f);
	}
	ok(buf && strstr(buf, "# TYPE hashgate_matches_total counter\n"), "TYPE line for a counter");
	ok(buf && strstr(buf, "hashgate_instances 1\n"), "instance count");
	/* No pid label: a restarted daemon continues the same series. */
	snprintf(cmd, sizeof(cmd), "hashgate_database_generation{mountpoint=\"/srv/mnt \\\"q\\\"\\nline2\","
		 "backing=\"/srv/back\\\\slash\"} 42\n");
	ok(buf && strstr(buf, cmd), "sample with escaped labels and no pid label: %s", cmd);
	ok(buf && !strstr(buf, "pid="), "no series has a pid label");
	ok(buf && strstr(buf, "} 123456789012\n"), "bytes counter value");
	free(buf);
	snprintf(cmd, sizeof(cmd), "ls -a %s | grep -q tmp", dir);
	ok(system(cmd) != 0, "no temp files left behind");

	is_int(status_remove(dir, getpid()), 0, "status_remove");
	free(all);
	r = status_read_all(dir, &all, &n);
	ok(r == 0 && n == 0, "nothing after remove");
	free(all);
	r = status_read_all("/nonexistent/state", &all, &n);
	ok(r == 0 && n == 0, "a missing state dir means nothing runs");
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	system(cmd);
	return done_testing();
}
