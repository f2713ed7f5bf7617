/*
 * test-qstore.c - the quarantine store: content round-trips byte for byte, a copy of the store
 * without its key reveals no plaintext, a wrong key or tampered object fails authentication,
 * records keep every field, held records cannot be deleted, orphans are swept at open.
 * Content is stored once per sha256 (hold and delete stay per record), a quota refuses new
 * content with -EDQUOT, kept evidence (qstore_keep) is adopted later, and a schema-1 store
 * (one object per record, named by id) is migrated and keeps working, as are schema-2 stores
 * (no origin and review columns) and stores that have those columns at user_version 0.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>
#include <sqlite3.h>

#include "hashdb/qstore.h"
#include "tests/unit/tap.h"

static char dir[256], qdir[300], key[300];

static int write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int ok_ = fd >= 0 && write(fd, buf, len) == (ssize_t)len;

	if (fd >= 0)
		close(fd);
	return ok_ ? 0 : -1;
}

static uint8_t *read_file(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY);

	if (fd < 0 || fstat(fd, &st) < 0)
		return NULL;
	buf = malloc((size_t)st.st_size + 1);
	*len = (size_t)read(fd, buf, (size_t)st.st_size);
	close(fd);
	return buf;
}

/* d/objects/NAME of content with digests dg (sha256-HEX). */
static void objpath(char *out, size_t len, const char *d, const struct digests *dg)
{
	char hex[65];

	hex_encode(dg->sha256, 32, hex);
	snprintf(out, len, "%s/objects/sha256-%s", d, hex);
}

/* Files in directory p, dot files not counted. */
static int count_files(const char *p)
{
	DIR *d = opendir(p);
	struct dirent *de;
	int n = 0;

	while (d && (de = readdir(d)))
		n += de->d_name[0] != '.';
	if (d)
		closedir(d);
	return n;
}

/* 1 if needle (len >= 16) occurs in any file under objects/ of d, or in records.db*. */
static int store_contains(const char *d, const uint8_t *needle, size_t nlen)
{
	char path[2048], names[16][100];
	int nn = 0;
	DIR *od;
	struct dirent *de;

	snprintf(names[nn++], sizeof(names[0]), "records.db");
	snprintf(names[nn++], sizeof(names[0]), "records.db-wal");
	snprintf(path, sizeof(path), "%s/objects", d);
	od = opendir(path);
	while (od && (de = readdir(od)) && nn < 16)
		if (de->d_name[0] != '.')
			snprintf(names[nn++], sizeof(names[0]), "objects/%.80s", de->d_name);
	if (od)
		closedir(od);
	for (int i = 0; i < nn; i++) {
		size_t len;
		uint8_t *buf;

		snprintf(path, sizeof(path), "%s/%s", d, names[i]);
		buf = read_file(path, &len);
		if (!buf)
			continue;
		if (len >= nlen && memmem(buf, len, needle, nlen)) {
			free(buf);
			return 1;
		}
		free(buf);
	}
	return 0;
}

/* PRAGMA user_version of the store's records.db, or -1. */
static int store_version(const char *sdir)
{
	char p[512];
	sqlite3 *db;
	sqlite3_stmt *st;
	int v = -1;

	snprintf(p, sizeof(p), "%s/records.db", sdir);
	if (sqlite3_open_v2(p, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
	    sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL) == SQLITE_OK) {
		if (sqlite3_step(st) == SQLITE_ROW)
			v = sqlite3_column_int(st, 0);
		sqlite3_finalize(st);
	}
	sqlite3_close(db);
	return v;
}

static int add_content(struct qstore *q, const uint8_t *data, size_t len, struct qrecord *rec)
{
	char path[512];
	int fd, r;

	snprintf(path, sizeof(path), "%s/upload", dir);
	if (write_file(path, data, len) < 0)
		return -EIO;
	fd = open(path, O_RDONLY);
	r = hash_fd(fd, HASH_EXACT_MASK, &rec->digests);
	if (r == 0)
		r = qstore_add(q, fd, rec);
	close(fd);
	return r;
}

static int has_tmp(const char *objdir)
{
	DIR *d = opendir(objdir);
	struct dirent *de;
	int found = 0;

	while (d && (de = readdir(d)))
		found |= strncmp(de->d_name, ".tmp-", 5) == 0;
	if (d)
		closedir(d);
	return found;
}

static void drop_key_check(const char *d)
{
	sqlite3 *db;
	char dbp[512];

	snprintf(dbp, sizeof(dbp), "%s/records.db", d);
	sqlite3_open(dbp, &db);
	sqlite3_exec(db, "DELETE FROM meta WHERE key = 'key_check'", NULL, NULL, NULL);
	sqlite3_close(db);
}

/* Decrypt id into a file and compare with want. */
static int read_equals(struct qstore *q, int64_t id, const uint8_t *want, size_t len, int *rr)
{
	char path[512];
	size_t got;
	uint8_t *buf;
	int fd, same;

	snprintf(path, sizeof(path), "%s/out", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	*rr = qstore_read(q, id, fd);
	close(fd);
	buf = read_file(path, &got);
	same = buf && got == len && memcmp(buf, want, len) == 0;
	free(buf);
	return same;
}

int main(void)
{
	struct qrecord rec = { 0 }, got, *list;
	struct digests d1, d3;
	struct qstore *q = NULL, *q2 = NULL;
	char err[512], cmd[1024], copy[300], wrongkey[300];
	size_t big = 3 * 1024 * 1024 + 12345, n, keylen;
	uint8_t *data = malloc(big);
	struct stat st;
	int r, rr;

	snprintf(dir, sizeof(dir), "/tmp/test-qstore.XXXXXX");
	if (!mkdtemp(dir) || !data) {
		skip_all("cannot create a temp dir");
		return 0;
	}
	snprintf(qdir, sizeof(qdir), "%s/q", dir);
	snprintf(key, sizeof(key), "%s/key", dir);

	r = qstore_open(&q, qdir, key, 0, err, sizeof(err));
	ok(r < 0 && q == NULL, "open without QSTORE_CREATE fails on a missing store (%d: %s)", r, err);

	r = qstore_open(&q, qdir, key, QSTORE_CREATE, err, sizeof(err));
	if (!ok(r == 0, "open with QSTORE_CREATE creates store and key")) {
		diag("%s", err);
		return done_testing();
	}
	ok(stat(qdir, &st) == 0 && (st.st_mode & 0777) == 0700, "store dir is 0700");
	ok(stat(key, &st) == 0 && (st.st_mode & 0777) == 0600 && st.st_size == 65,
	   "key file is 0600, 64 hex digits + newline");

	/* A recognisable plaintext: random, so any 32-byte window is unique. */
	RAND_bytes(data, (int)big);
	rec.time = 1700000100;
	rec.upload_time = 1700000000;
	rec.uid = 1000;
	rec.gid = 1001;
	rec.pid = 4242;
	rec.mount = "/srv/backing";
	rec.path = "users/alice/photo \"1\".jpg";
	rec.size = big;
	rec.mode = 0640;
	rec.has_pdq = true;
	memset(rec.pdq.b, 0xa5, sizeof(rec.pdq.b));
	rec.pdq_quality = 87;
	rec.algo = HASH_SHA256;
	rec.list = "test-list";
	rec.category = "illegal";
	rec.action = ACTION_QUARANTINE;
	r = add_content(q, data, big, &rec);
	is_int(r, 0, "qstore_add of a 3 MiB upload");
	is_int(rec.id, 1, "first record gets id 1");
	d1 = rec.digests;

	r = qstore_get(q, rec.id, &got);
	is_int(r, 0, "qstore_get");
	if (r == 0) {
		is_int(got.time, 1700000100, "time kept");
		is_int(got.upload_time, 1700000000, "upload_time kept");
		is_int(got.uid, 1000, "uid kept");
		is_int(got.gid, 1001, "gid kept");
		is_int(got.pid, 4242, "pid kept");
		is_str(got.mount, "/srv/backing", "mount kept");
		is_str(got.path, "users/alice/photo \"1\".jpg", "path kept");
		is_int(got.size, big, "size kept");
		is_int(got.mode, 0640, "mode kept");
		ok(got.digests.mask == HASH_EXACT_MASK &&
		   memcmp(got.digests.sha256, rec.digests.sha256, 32) == 0 &&
		   memcmp(got.digests.md5, rec.digests.md5, 16) == 0 &&
		   memcmp(got.digests.sha1, rec.digests.sha1, 20) == 0, "digests kept");
		ok(got.has_pdq && memcmp(got.pdq.b, rec.pdq.b, 32) == 0, "pdq kept");
		is_int(got.pdq_quality, 87, "pdq quality kept");
		is_int(got.algo, HASH_SHA256, "matching algo kept");
		is_str(got.list, "test-list", "list kept");
		is_str(got.category, "illegal", "category kept");
		is_int(got.action, ACTION_QUARANTINE, "action kept");
		ok(!got.held && !got.restored, "not held, not restored");
		qrecord_release(&got);
	}
	ok(read_equals(q, rec.id, data, big, &rr) && rr == 0,
	   "decrypted content equals the upload byte for byte (r=%d)", rr);
	is_int(qstore_has_content(q, rec.id), 1, "has content");

	/* A block verdict: record only. */
	rec.action = ACTION_BLOCK;
	rec.path = "x/blocked.bin";
	r = add_content(q, data, 1000, &rec);
	is_int(r, 0, "block record added");
	is_int(qstore_has_content(q, rec.id), 0, "block record has no content");
	is_int(qstore_read(q, rec.id, 1), -ENOENT, "reading a block record's content: -ENOENT");

	/* Empty upload round-trips too. */
	rec.action = ACTION_QUARANTINE;
	rec.size = 0;
	rec.path = "empty";
	r = add_content(q, data, 0, &rec);
	is_int(r, 0, "empty upload quarantined");
	ok(read_equals(q, rec.id, data, 0, &rr) && rr == 0, "empty content round-trips");
	d3 = rec.digests;

	/* Size mismatch: the fd holds fewer bytes than the record says -> nothing recorded. */
	rec.size = 5000;
	{
		char path[512];
		int fd;

		snprintf(path, sizeof(path), "%s/short", dir);
		write_file(path, data, 100);
		fd = open(path, O_RDONLY);
		r = qstore_add(q, fd, &rec);
		close(fd);
	}
	ok(r < 0, "short content fails the add (%d)", r);
	r = qstore_list(q, NULL, &list, &n);
	is_int(n, 3, "a failed add records nothing (3 records)");
	qrecord_free_array(list, n);

	{
		struct qstore_filter f = { .since = 0, .before = 0, .uid = 999, .list = NULL };

		r = qstore_list(q, &f, &list, &n);
		ok(r == 0 && n == 0, "filter by uid excludes others");
		qrecord_free_array(list, n);
		f.uid = 1000;
		f.list = "test-list";
		r = qstore_list(q, &f, &list, &n);
		ok(r == 0 && n == 3, "filter by uid and list");
		qrecord_free_array(list, n);
	}

	ok(!store_contains(qdir, data + 4096, 32) && !store_contains(qdir, data + big - 64, 32),
	   "no plaintext window found in objects or records.db");

	/* A copy of the directory without the key: grep the object bytes, and try another key. */
	snprintf(copy, sizeof(copy), "%s/copy", dir);
	snprintf(cmd, sizeof(cmd), "cp -a %s %s", qdir, copy);
	ok(system(cmd) == 0, "copied the store directory");
	snprintf(cmd, sizeof(cmd), "grep -rqF \"$(printf 'users/alice')\" %s/objects", copy);
	ok(system(cmd) != 0, "grep finds no file name in the copied objects");
	{
		char hx[65];
		uint8_t k2[32];

		RAND_bytes(k2, 32);
		hex_encode(k2, 32, hx);
		hx[64] = '\n';
		snprintf(wrongkey, sizeof(wrongkey), "%s/wrongkey", dir);
		write_file(wrongkey, hx, 65);
	}
	r = qstore_open(&q2, copy, wrongkey, 0, err, sizeof(err));
	is_int(r, -QSTORE_EKEY, "a wrong key is refused at open: %s", err);
	/* Defeat the key check to reach the cipher: GCM must still refuse the wrong key. */
	drop_key_check(copy);
	r = qstore_open(&q2, copy, wrongkey, 0, err, sizeof(err));
	is_int(r, 0, "copy opens with a wrong key once the key check is removed");
	if (r == 0) {
		ok(!read_equals(q2, 1, data, big, &rr) && rr == -EBADMSG,
		   "decrypting with the wrong key fails authentication (%d)", rr);
		qstore_close(q2);
	}

	/* Tampering: flip one ciphertext byte in the copy opened with the right key. */
	{
		char obj[512];
		uint8_t *buf;
		size_t len;

		objpath(obj, sizeof(obj), copy, &d1);
		buf = read_file(obj, &len);
		ok(buf && len == big + 56, "object is header + ciphertext + tag (%zu)", len);
		if (buf) {
			buf[1000] ^= 1;
			write_file(obj, buf, len);
			free(buf);
		}
		snprintf(cmd, sizeof(cmd), "cp %s %s/copy/key", key, dir);
		system(cmd);
		snprintf(obj, sizeof(obj), "%s/copy/key", dir);
		drop_key_check(copy);	/* the wrong key's open above claimed the copy */
		r = qstore_open(&q2, copy, obj, 0, err, sizeof(err));
		is_int(r, 0, "copy opens with the right key");
		if (r == 0) {
			ok(!read_equals(q2, 1, data, big, &rr) && rr == -EBADMSG,
			   "a flipped ciphertext bit fails authentication (%d)", rr);
			/* Swap objects 3 (empty) into 1's place: authentic but not record 1's. */
			{
				char o3[400], o1[400];

				objpath(o3, sizeof(o3), copy, &d3);
				objpath(o1, sizeof(o1), copy, &d1);
				snprintf(cmd, sizeof(cmd), "cp %s %s", o3, o1);
				system(cmd);
			}
			ok(!read_equals(q2, 1, data, big, &rr) && rr == -EBADMSG,
			   "another record's object in place is detected (%d)", rr);
			qstore_close(q2);
		}
	}

	/* Hold / release / delete. */
	is_int(qstore_set_held(q, 1, true), 0, "hold");
	is_int(qstore_delete(q, 1), -EPERM, "a held record cannot be deleted");
	is_int(qstore_set_held(q, 1, false), 0, "release");
	is_int(qstore_set_restored(q, 1, true), 0, "mark restored");
	r = qstore_get(q, 1, &got);
	ok(r == 0 && got.restored && !got.held, "flags stored");
	if (r == 0)
		qrecord_release(&got);
	is_int(qstore_delete(q, 1), 0, "delete");
	{
		char obj[512];

		objpath(obj, sizeof(obj), qdir, &d1);
		ok(access(obj, F_OK) < 0 && errno == ENOENT, "delete removed the object file");
	}
	is_int(qstore_get(q, 1, &got), -ENOENT, "deleted record is gone");
	is_int(qstore_delete(q, 1), -ENOENT, "deleting twice: -ENOENT");
	is_int(qstore_set_held(q, 99, true), -ENOENT, "hold of a missing id: -ENOENT");
	qstore_close(q);

	/* Orphans (crash between temp write and commit) are removed by the next open. */
	{
		char o1[512], o2[512], o3[512];

		snprintf(o1, sizeof(o1), "%s/objects/.tmp-abcdef", qdir);
		snprintf(o2, sizeof(o2), "%s/objects/77", qdir);
		objpath(o3, sizeof(o3), qdir, &d3);
		write_file(o1, "x", 1);
		write_file(o2, "y", 1);
		r = qstore_open(&q, qdir, key, 0, err, sizeof(err));
		is_int(r, 0, "reopen");
		ok(access(o1, F_OK) < 0 && access(o2, F_OK) < 0, "orphaned temp and object removed");
		ok(access(o3, F_OK) == 0, "objects with records kept");
		if (r == 0)
			qstore_close(q);
	}

	/*
	 * Another process adding while this one keeps reopening the store (each open sweeps
	 * orphans): the sweep must never take an add's temp file or uncommitted object.
	 */
	{
		char path[512];
		size_t n0 = 0, n1 = 0;
		int fd, wst = 0, opens = 0, bad = 0;
		pid_t pid;

		snprintf(path, sizeof(path), "%s/conc", dir);
		write_file(path, data, 256 * 1024);
		r = qstore_open(&q, qdir, key, 0, err, sizeof(err));
		qstore_list(q, NULL, &list, &n0);
		qrecord_free_array(list, n0);
		qstore_close(q);
		pid = fork();
		if (pid == 0) {
			struct qstore *cq;
			struct qrecord cr = rec;

			if (qstore_open(&cq, qdir, key, 0, NULL, 0) < 0)
				_exit(2);
			fd = open(path, O_RDONLY);
			cr.size = 256 * 1024;
			cr.action = ACTION_QUARANTINE;
			cr.path = "concurrent";
			hash_fd(fd, HASH_EXACT_MASK, &cr.digests);
			for (int k = 0; k < 40; k++)
				if (qstore_add(cq, fd, &cr) < 0)
					_exit(3);
			qstore_close(cq);
			_exit(0);
		}
		while (waitpid(pid, &wst, WNOHANG) == 0) {
			if (qstore_open(&q, qdir, key, 0, err, sizeof(err)) == 0) {
				qstore_close(q);
				opens++;
			}
		}
		ok(WIFEXITED(wst) && WEXITSTATUS(wst) == 0, "40 adds from another process succeeded "
		   "while this one reopened the store %d times", opens);
		r = qstore_open(&q, qdir, key, 0, err, sizeof(err));
		qstore_list(q, NULL, &list, &n1);
		for (size_t k = 0; k < n1; k++) {
			if (strcmp(list[k].path, "concurrent") != 0)
				continue;
			if (!read_equals(q, list[k].id, data, 256 * 1024, &rr) || rr != 0)
				bad++;
		}
		is_int(n1 - n0, 40, "40 records added");
		is_int(bad, 0, "every concurrently added record decrypts to its content");
		qrecord_free_array(list, n1);
		qstore_close(q);
	}

	/* A process killed in the middle of an add leaves no record and, after the next open, no
	 * temp file. */
	{
		char path[512], objdir[512];
		size_t n0 = 0, n1 = 0, bigsz = 64u << 20;
		uint8_t *zeros = calloc(1, bigsz);
		int wst = 0;
		pid_t pid;

		snprintf(path, sizeof(path), "%s/big", dir);
		write_file(path, zeros, bigsz);
		free(zeros);
		r = qstore_open(&q, qdir, key, 0, err, sizeof(err));
		qstore_list(q, NULL, &list, &n0);
		qrecord_free_array(list, n0);
		qstore_close(q);
		pid = fork();
		if (pid == 0) {
			struct qstore *cq;
			struct qrecord cr = rec;
			int fd = open(path, O_RDONLY);

			if (qstore_open(&cq, qdir, key, 0, NULL, 0) < 0)
				_exit(2);
			cr.size = bigsz;
			cr.digests.mask = 0;
			cr.path = "killed";
			for (;;)
				qstore_add(cq, fd, &cr);
		}
		/* Kill it while a temp file exists (polling objects/ for one). */
		snprintf(objdir, sizeof(objdir), "%s/objects", qdir);
		for (int k = 0; k < 1000000 && !has_tmp(objdir); k++)
			;
		kill(pid, SIGKILL);
		waitpid(pid, &wst, 0);
		ok(has_tmp(objdir), "killed while a temp file existed");
		r = qstore_open(&q, qdir, key, 0, err, sizeof(err));
		is_int(r, 0, "store opens after the crash");
		ok(!has_tmp(objdir), "open removed the orphaned temp file");
		qstore_list(q, NULL, &list, &n1);
		{
			int incomplete = 0;

			for (size_t k = 0; k < n1; k++)
				if (strcmp(list[k].path, "killed") == 0) {
					read_equals(q, list[k].id, NULL, 0, &rr);
					incomplete += rr != 0;
				}
			is_int(incomplete, 0, "every record left by the killed process has content");
		}
		qrecord_free_array(list, n1);
		qstore_close(q);
	}


	/* Content once per sha256; hold and delete per record; the object goes with the last. */
	{
		char q3[300], obj[512], kdir[300], kpath[600], name[QSTORE_NAME_MAX];
		struct qstore_usage u;
		int64_t ids[3];
		size_t sz = 100000;
		struct qrecord kr;
		int kfd;

		snprintf(q3, sizeof(q3), "%s/q3", dir);
		r = qstore_open(&q, q3, key, QSTORE_CREATE, err, sizeof(err));
		is_int(r, 0, "a second store");
		rec.action = ACTION_QUARANTINE;
		rec.size = sz;
		for (int k = 0; k < 3; k++) {
			rec.path = "same";
			r = add_content(q, data, sz, &rec);
			ids[k] = rec.id;
			if (r < 0)
				break;
		}
		is_int(r, 0, "the same content added 3 times");
		snprintf(obj, sizeof(obj), "%s/objects", q3);
		is_int(count_files(obj), 1, "3 records, 1 content object");
		r = qstore_usage(q, &u);
		ok(r == 0 && u.records == 3 && u.objects == 1 && u.bytes == sz + 56,
		   "usage: 3 records, 1 object of %zu + 56 bytes (%llu)", sz,
		   (unsigned long long)u.bytes);
		for (int k = 0; k < 3; k++)
			ok(read_equals(q, ids[k], data, sz, &rr) && rr == 0, "record %d reads back", k);
		is_int(qstore_set_held(q, ids[0], true), 0, "hold the first");
		is_int(qstore_delete(q, ids[1]), 0, "delete the second");
		is_int(qstore_delete(q, ids[2]), 0, "delete the third");
		is_int(count_files(obj), 1, "the held record keeps the shared content");
		ok(read_equals(q, ids[0], data, sz, &rr) && rr == 0, "... and it still reads back");
		is_int(qstore_delete(q, ids[0]), -EPERM, "held: not deleted");
		qstore_set_held(q, ids[0], false);
		is_int(qstore_delete(q, ids[0]), 0, "released and deleted");
		is_int(count_files(obj), 0, "the last record took the content with it");

		/* Quota: room for one object of sz bytes. */
		qstore_set_quota(q, sz + 56 + 1000);
		rec.path = "a";
		is_int(add_content(q, data, sz, &rec), 0, "first content fits the quota");
		rec.path = "b";
		is_int(add_content(q, data + 1, sz, &rec), -EDQUOT, "new content over quota: -EDQUOT");
		rec.path = "a2";
		is_int(add_content(q, data, sz, &rec), 0, "known content needs no room: added");
		is_int(count_files(obj), 1, "still one object");

		/* The quarantine is full: keep content b encrypted elsewhere, adopt it later. */
		snprintf(kdir, sizeof(kdir), "%s/kept", dir);
		mkdir(kdir, 0700);
		snprintf(kpath, sizeof(kpath), "%s/upload", dir);
		write_file(kpath, data + 1, sz);
		kfd = open(kpath, O_RDONLY);
		kr = rec;
		hash_fd(kfd, HASH_EXACT_MASK, &kr.digests);
		kr.path = "b";
		{
			int dfd = open(kdir, O_RDONLY | O_DIRECTORY);

			is_int(qstore_keep(q, kfd, &kr, dfd), 0, "qstore_keep");
			is_int(qstore_keep(q, kfd, &kr, dfd), 0, "qstore_keep of the same content again");
			close(dfd);
		}
		close(kfd);
		is_int(count_files(kdir), 1, "one kept file");
		ok(!store_contains(kdir, data + 1 + 4096, 32) && !store_contains(kdir, data + 5000, 32),
		   "kept content is encrypted");
		qstore_kept_name(&kr, name);
		snprintf(kpath, sizeof(kpath), "%s/%s", kdir, name);
		{
			size_t klen;
			uint8_t *kb = read_file(kpath, &klen);

			ok(kb && klen == sz + 56 && !memmem(kb, klen, data + 1 + 4096, 32),
			   "kept file is an encrypted object (%zu bytes)", klen);
			free(kb);
		}
		kr.kept = true;
		is_int(qstore_add(q, -1, &kr), 0, "record of kept evidence");
		r = qstore_get(q, kr.id, &got);
		ok(r == 0 && got.kept && got.action == ACTION_QUARANTINE, "the record says kept");
		if (r == 0)
			qrecord_release(&got);
		is_int(qstore_has_content(q, kr.id), 0, "no content in the store yet");
		qstore_usage(q, &u);
		is_int(u.kept, 1, "usage counts 1 kept record");
		kfd = open(kpath, O_RDONLY);
		is_int(qstore_adopt(q, &kr, kfd), -EDQUOT, "adopt while still over quota: -EDQUOT");
		qstore_set_quota(q, 0);
		{
			struct qrecord other = kr;

			other.digests = d1;
			other.size = big;
			ok(qstore_adopt(q, &other, kfd) < 0, "adopt for a record of other content fails");
		}
		is_int(qstore_adopt(q, &kr, kfd), 1, "adopt moved it in for 1 record");
		close(kfd);
		ok(read_equals(q, kr.id, data + 1, sz, &rr) && rr == 0, "adopted content reads back");
		qstore_usage(q, &u);
		ok(u.kept == 0 && u.objects == 2, "no kept records left, 2 objects");
		qstore_close(q);
	}

	/* A schema-1 store (objects named by record id, no objects table) is migrated. */
	{
		char q4[300], dbp[400], sha[65], obj[512];
		sqlite3 *db;
		struct qrecord lr = rec;
		size_t sz = 5000;

		snprintf(q4, sizeof(q4), "%s/q4", dir);
		r = qstore_open(&q, q4, key, QSTORE_CREATE, err, sizeof(err));
		lr.size = sz;
		lr.path = "legacy";
		r = r ? r : add_content(q, data, sz, &lr);
		hex_encode(lr.digests.sha256, 32, sha);
		qstore_close(q);
		/* Rewrite it as schema 1 made it: objects/1, the sha256 in the record only. */
		snprintf(dbp, sizeof(dbp), "%s/records.db", q4);
		snprintf(obj, sizeof(obj), "%s/objects/sha256-%s", q4, sha);
		snprintf(cmd, sizeof(cmd), "%s/objects/1", q4);
		ok(r == 0 && rename(obj, cmd) == 0, "a store laid out as schema 1");
		sqlite3_open(dbp, &db);
		r = sqlite3_exec(db, "DROP INDEX records_object; DROP INDEX records_kept;"
				 "DROP TABLE objects; ALTER TABLE records DROP COLUMN object;"
				 "ALTER TABLE records DROP COLUMN kept; PRAGMA user_version = 0;",
				 NULL, NULL, NULL);
		sqlite3_close(db);
		is_int(r, SQLITE_OK, "... with the schema-1 tables");
		r = qstore_open(&q, q4, key, 0, err, sizeof(err));
		is_int(r, 0, "a schema-1 store opens (migrated): %s", r ? err : "");
		/* It kept the review columns: a store of a build that added them on open. */
		is_int(store_version(q4), 4, "... to schema 4, the review columns already there");
		if (r == 0) {
			ok(read_equals(q, 1, data, sz, &rr) && rr == 0, "its record reads back");
			lr.path = "new";
			is_int(add_content(q, data + 7, sz, &lr), 0, "new content is added");
			ok(read_equals(q, lr.id, data + 7, sz, &rr) && rr == 0, "and reads back");
			is_int(qstore_delete(q, 1), 0, "the migrated record is deleted");
			ok(access(cmd, F_OK) < 0, "with its object");
			qstore_close(q);
		}
	}

	/*
	 * A schema-2 store (objects, kept; no origin or review columns) gets them with their
	 * defaults, and the review can be set; a newer schema is refused and left alone.
	 */
	{
		char q5[300], dbp[400];
		sqlite3 *db;
		struct qrecord lr = rec, gr;
		int64_t id;

		snprintf(q5, sizeof(q5), "%s/q5", dir);
		r = qstore_open(&q, q5, key, QSTORE_CREATE, err, sizeof(err));
		lr.size = 3000;
		lr.path = "v2";
		lr.origin = "upload";
		r = r ? r : add_content(q, data, lr.size, &lr);
		id = lr.id;
		qstore_close(q);
		snprintf(dbp, sizeof(dbp), "%s/records.db", q5);
		sqlite3_open(dbp, &db);
		r = r ? r : sqlite3_exec(db, "ALTER TABLE records DROP COLUMN origin;"
					 "ALTER TABLE records DROP COLUMN review;"
					 "ALTER TABLE records DROP COLUMN review_case;"
					 "ALTER TABLE records DROP COLUMN review_reason;"
					 "ALTER TABLE records DROP COLUMN review_time;"
					 "PRAGMA user_version = 2;", NULL, NULL, NULL);
		sqlite3_close(db);
		is_int(r, 0, "a store laid out as schema 2");
		r = qstore_open(&q, q5, key, 0, err, sizeof(err));
		is_int(r, 0, "a schema-2 store opens (migrated): %s", r ? err : "");
		is_int(store_version(q5), 4, "... to schema 4");
		if (r == 0) {
			memset(&gr, 0, sizeof(got));
			r = qstore_get(q, id, &gr);
			ok(r == 0 && strcmp(gr.review, "new") == 0 && strcmp(gr.origin, "") == 0 &&
			   gr.review_time == 0, "its record: review 'new', no origin");
			qrecord_release(&gr);
			ok(read_equals(q, id, data, lr.size, &rr) && rr == 0, "its content reads back");
			is_int(qstore_set_review(q, id, "reported", "C-1", "why", 1234), 0,
			       "its review is set");
			memset(&gr, 0, sizeof(got));
			r = qstore_get(q, id, &gr);
			ok(r == 0 && strcmp(gr.review, "reported") == 0 &&
			   strcmp(gr.review_case, "C-1") == 0 && gr.review_time == 1234,
			   "and reads back");
			qrecord_release(&gr);
			qstore_close(q);
		}
		sqlite3_open(dbp, &db);
		sqlite3_exec(db, "PRAGMA user_version = 5;", NULL, NULL, NULL);
		sqlite3_close(db);
		r = qstore_open(&q, q5, key, 0, err, sizeof(err));
		is_int(r, -EPROTONOSUPPORT, "a newer schema is refused: %s", err);
		if (r == 0)
			qstore_close(q);
		is_int(store_version(q5), 5, "... and left as it was");
	}

	/* Key file checks. */
	chmod(key, 0644);
	r = qstore_open(&q, qdir, key, 0, err, sizeof(err));
	is_int(r, -EPERM, "a world-readable key file is refused: %s", err);
	chmod(key, 0600);
	{
		uint8_t *k = read_file(key, &keylen);

		write_file(wrongkey, "abcd\n", 5);
		r = qstore_open(&q, qdir, wrongkey, 0, err, sizeof(err));
		is_int(r, -EINVAL, "a short key is refused: %s", err);
		free(k);
	}

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	system(cmd);
	free(data);
	return done_testing();
}
