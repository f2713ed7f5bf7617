/*
 * test-qstore.c - the quarantine store: content round-trips byte for byte, a copy of the store
 * without its key reveals no plaintext, a wrong key or tampered object fails authentication,
 * records keep every field, held records cannot be deleted, orphans are swept at open.
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

/* 1 if needle (len >= 16) occurs in any file under objects/ of d, or in records.db*. */
static int store_contains(const char *d, const uint8_t *needle, size_t nlen)
{
	static const char *files[] = { "records.db", "records.db-wal", "objects/1", "objects/2",
				       "objects/3", NULL };
	char path[512];

	for (int i = 0; files[i]; i++) {
		size_t len;
		uint8_t *buf;

		snprintf(path, sizeof(path), "%s/%s", d, files[i]);
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

		snprintf(obj, sizeof(obj), "%s/copy/objects/1", dir);
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
			snprintf(cmd, sizeof(cmd), "cp %s/copy/objects/3 %s/copy/objects/1", dir,
				 dir);
			system(cmd);
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

		snprintf(obj, sizeof(obj), "%s/objects/1", qdir);
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
		snprintf(o3, sizeof(o3), "%s/objects/3", qdir);
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
