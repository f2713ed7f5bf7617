/*
 * qstore.c - the quarantine store: records in DIR/records.db (SQLite, WAL), content in
 * DIR/objects/ID encrypted with AES-256-GCM, streamed in chunks (never a whole file in memory).
 *
 * Object format: a 40-byte header (magic "HGQSTORE", version, plaintext size, 12-byte random
 * nonce) that is also the GCM additional data, the ciphertext, then the 16-byte tag.  A fresh
 * random nonce per object, so one key never reuses a nonce.  Reads also compare the plaintext's
 * digests with the record's, so swapping two object files is detected too.
 *
 * Content is stored once per sha256: objects/sha256-HEX, listed in the objects table
 * (name, sha256, plaintext size); records reference it by name (records.object).  Stores made
 * before schema 2 keep their objects/ID files (one per record), migrated into the objects
 * table as they are.  Hold and purge stay per record: an object is removed with the last
 * record that references it.  q->max_bytes caps the objects' total size (-EDQUOT).
 *
 * Invariants:
 * - qstore_add first looks, in a write transaction, for the object of the upload's sha256:
 *   present, the record just references it.  Otherwise it writes objects/.tmp-XXXXXX, fsyncs
 *   it, then (in a new write transaction, where it looks again: a concurrent add of the same
 *   content wins and the temp file is dropped) renames it to its name, fsyncs objects/,
 *   inserts the object and the record and commits.  A crash leaves a temp file or an object
 *   without records (swept at open), never a record whose object was not complete.
 * - qstore_delete removes the object file (when no other record references it) before the
 *   commit that deletes the rows: a crash in between leaves a record whose content reads as
 *   missing, never content without a record.
 * - Every add holds a shared flock on DIR/.lock from creating its temp file to its commit; the
 *   orphan sweep in qstore_open runs only under the exclusive lock (skipped when busy), so it
 *   never removes a concurrent add's files.
 * - records.db meta.key_check = HMAC-SHA256(key, constant): a wrong key file is refused at
 *   open instead of silently mixing keys in one store.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <sqlite3.h>

#include "hashdb/qstore.h"
#include "hashdb/fcopy.h"

#define QS_VERSION	1
#define QS_HDR_LEN	40
#define QS_NONCE_LEN	12
#define QS_TAG_LEN	16
#define QS_CHUNK	(256 * 1024)
#define QS_SCHEMA	4
#define QS_OVERHEAD	(QS_HDR_LEN + QS_TAG_LEN)
#define QS_KEYCHECK_MSG	"hashgate quarantine key check v1"

struct qstore {
	pthread_mutex_t lock;
	sqlite3 *db;
	char *dir;
	int dirfd;
	int objfd;			/* DIR/objects */
	int lockfd;			/* DIR/.lock */
	uint64_t max_bytes;		/* quota on the objects' plaintext + overhead; 0: none */
	uint8_t key[32];
};

static const char schema_sql[] =
	"CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);"
	"CREATE TABLE IF NOT EXISTS records("
	" id INTEGER PRIMARY KEY AUTOINCREMENT,"
	" time INTEGER NOT NULL, upload_time INTEGER NOT NULL,"
	" uid INTEGER NOT NULL, gid INTEGER NOT NULL, pid INTEGER NOT NULL,"
	" mount TEXT NOT NULL, path TEXT NOT NULL, size INTEGER NOT NULL, mode INTEGER NOT NULL,"
	" md5 TEXT, sha1 TEXT, sha256 TEXT, pdq TEXT, pdq_quality INTEGER NOT NULL DEFAULT 0,"
	" algo TEXT NOT NULL, distance INTEGER NOT NULL DEFAULT 0,"
	" list TEXT NOT NULL DEFAULT '', category TEXT NOT NULL DEFAULT '',"
	" action TEXT NOT NULL, stored INTEGER NOT NULL DEFAULT 0,"
	" held INTEGER NOT NULL DEFAULT 0, restored INTEGER NOT NULL DEFAULT 0);"
	"CREATE INDEX IF NOT EXISTS records_time ON records(time);";

/* Schema 1 -> 2: content once per sha256 (objects table), kept evidence. */
static const char migrate_v2_sql[] =
	"ALTER TABLE records ADD COLUMN object TEXT;"
	"ALTER TABLE records ADD COLUMN kept INTEGER NOT NULL DEFAULT 0;"
	"CREATE TABLE objects(name TEXT PRIMARY KEY, sha256 TEXT, size INTEGER NOT NULL);"
	"INSERT INTO objects(name, sha256, size)"
	" SELECT CAST(id AS TEXT), sha256, size FROM records WHERE stored = 1;"
	"UPDATE records SET object = CAST(id AS TEXT) WHERE stored = 1;"
	"CREATE INDEX records_object ON records(object);"
	"CREATE INDEX records_kept ON records(kept);"
	"CREATE INDEX objects_sha256 ON objects(sha256);"
	"PRAGMA user_version = 2;";

#define REC_COLS "id, time, upload_time, uid, gid, pid, mount, path, size, mode, md5, sha1, " \
		 "sha256, pdq, pdq_quality, algo, distance, list, category, action, held, restored, " \
		 "kept, origin, review, review_case, review_reason, review_time, ref, label"

/*
 * Schema 2 -> 3: the report origin and the review state.  Stores written by a build that added
 * these columns on open, before the version number existed, already have some of them at
 * user_version 0: migrate() runs the v2 step, then these, ignoring "duplicate column".
 */
static const char *const migrate_v3_sql[] = {
	"ALTER TABLE records ADD COLUMN origin TEXT NOT NULL DEFAULT ''",
	"ALTER TABLE records ADD COLUMN review TEXT NOT NULL DEFAULT 'new'",
	"ALTER TABLE records ADD COLUMN review_case TEXT NOT NULL DEFAULT ''",
	"ALTER TABLE records ADD COLUMN review_reason TEXT NOT NULL DEFAULT ''",
	"ALTER TABLE records ADD COLUMN review_time INTEGER NOT NULL DEFAULT 0",
};

/*
 * Schema 3 -> 4: the matching list row's id and label (per-row list metadata).  Like v3,
 * tolerant of columns already there.
 */
static const char *const migrate_v4_sql[] = {
	"ALTER TABLE records ADD COLUMN ref TEXT NOT NULL DEFAULT ''",
	"ALTER TABLE records ADD COLUMN label TEXT NOT NULL DEFAULT ''",
};

static const uint8_t qs_magic[8] = { 'H', 'G', 'Q', 'S', 'T', 'O', 'R', 'E' };

static void seterr(char *err, size_t errlen, const char *fmt, const char *a, const char *b)
{
	if (err && errlen)
		snprintf(err, errlen, fmt, a, b);
}

static int write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t w = write(fd, p, len);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

/* Read up to len bytes at off; returns bytes read (short only at EOF) or -errno. */
static ssize_t pread_full(int fd, void *buf, size_t len, off_t off)
{
	size_t got = 0;

	while (got < len) {
		ssize_t r = pread(fd, (char *)buf + got, len - got, off + (off_t)got);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

static ssize_t read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		ssize_t r = read(fd, (char *)buf + got, len - got);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (r == 0)
			break;
		got += (size_t)r;
	}
	return (ssize_t)got;
}

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;

	for (int i = n - 1; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

/* Key file: 64 hex digits, optional trailing whitespace.  Created 0600 when allowed. */
static int load_key(struct qstore *q, const char *keyfile, int create, char *err, size_t errlen)
{
	char buf[130], hex[65];
	struct stat st;
	ssize_t n;
	size_t len;
	int fd, r;

	fd = open(keyfile, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 && errno == ENOENT && create) {
		uint8_t key[32];

		if (RAND_bytes(key, sizeof(key)) != 1) {
			seterr(err, errlen, "cannot create key file %s: %s", keyfile,
			       "no randomness");
			return -EIO;
		}
		hex_encode(key, sizeof(key), hex);
		OPENSSL_cleanse(key, sizeof(key));
		hex[64] = '\n';
		fd = open(keyfile, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (fd < 0) {
			r = -errno;
			seterr(err, errlen, "cannot create key file %s: %s", keyfile, strerror(-r));
			OPENSSL_cleanse(hex, sizeof(hex));
			return r;
		}
		r = write_all(fd, hex, 65);
		if (r == 0 && fsync(fd) < 0)
			r = -errno;
		close(fd);
		OPENSSL_cleanse(hex, sizeof(hex));
		if (r < 0) {
			unlink(keyfile);
			seterr(err, errlen, "cannot write key file %s: %s", keyfile, strerror(-r));
			return r;
		}
		fd = open(keyfile, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	}
	if (fd < 0) {
		r = -errno;
		seterr(err, errlen, "cannot open key file %s: %s", keyfile, strerror(-r));
		return r;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		close(fd);
		seterr(err, errlen, "key file %s: %s", keyfile, "not a regular file");
		return -EINVAL;
	}
	/* A key anyone may read or replace protects nothing: refuse rather than pretend. */
	if (st.st_mode & (S_IROTH | S_IWOTH | S_IWGRP)) {
		close(fd);
		seterr(err, errlen, "key file %s is accessible by other users (%s)", keyfile,
		       "run: chmod 600 on it");
		return -EPERM;
	}
	n = read_full(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n < 0) {
		seterr(err, errlen, "cannot read key file %s: %s", keyfile, strerror((int)-n));
		return (int)n;
	}
	buf[n] = '\0';
	len = (size_t)n;
	while (len && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' ||
		       buf[len - 1] == '\t'))
		len--;
	r = len == 64 ? hex_decode(buf, 64, q->key, sizeof(q->key)) : -EINVAL;
	OPENSSL_cleanse(buf, sizeof(buf));
	if (r < 0) {
		seterr(err, errlen, "key file %s: %s", keyfile,
		       "expected exactly 64 hex digits (a 256-bit key)");
		return -EINVAL;
	}
	return 0;
}

static int sql_exec(sqlite3 *db, const char *sql)
{
	return sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK ? 0 : -EIO;
}

static int key_check(struct qstore *q, char *err, size_t errlen)
{
	uint8_t mac[32];
	unsigned maclen = sizeof(mac);
	char hex[65];
	sqlite3_stmt *st = NULL;
	int r = -EIO, s;

	if (!HMAC(EVP_sha256(), q->key, sizeof(q->key), (const uint8_t *)QS_KEYCHECK_MSG,
		  strlen(QS_KEYCHECK_MSG), mac, &maclen))
		return -EIO;
	hex_encode(mac, sizeof(mac), hex);
	if (sql_exec(q->db, "BEGIN IMMEDIATE") < 0)
		goto out_err;
	if (sqlite3_prepare_v2(q->db, "SELECT value FROM meta WHERE key = 'key_check'", -1, &st,
			       NULL) != SQLITE_OK)
		goto out_rollback;
	s = sqlite3_step(st);
	if (s == SQLITE_ROW) {
		const char *v = (const char *)sqlite3_column_text(st, 0);

		if (!v || strcmp(v, hex) != 0) {
			seterr(err, errlen, "the key file does not belong to the quarantine store %s%s",
			       q->dir, " (wrong quarantine_key?)");
			r = -QSTORE_EKEY;
			goto out_rollback;
		}
	} else if (s == SQLITE_DONE) {
		sqlite3_finalize(st);
		st = NULL;
		if (sqlite3_prepare_v2(q->db, "INSERT INTO meta(key, value) VALUES('key_check', ?)",
				       -1, &st, NULL) != SQLITE_OK)
			goto out_rollback;
		sqlite3_bind_text(st, 1, hex, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(st) != SQLITE_DONE)
			goto out_rollback;
	} else {
		goto out_rollback;
	}
	sqlite3_finalize(st);
	st = NULL;
	if (sql_exec(q->db, "COMMIT") < 0)
		goto out_rollback;
	return 0;
out_rollback:
	sqlite3_finalize(st);
	sql_exec(q->db, "ROLLBACK");
out_err:
	if (r == -EIO)
		seterr(err, errlen, "quarantine store %s: %s", q->dir, sqlite3_errmsg(q->db));
	return r;
}

static int name_to_id(const char *name, int64_t *id)
{
	char *end;
	long long v;

	if (name[0] < '1' || name[0] > '9')
		return -EINVAL;
	errno = 0;
	v = strtoll(name, &end, 10);
	if (errno || *end)
		return -EINVAL;
	*id = v;
	return 0;
}

/* objects/ names this store makes: a record id (schema 1) or sha256-HEX. */
static int is_object_name(const char *name)
{
	int64_t id;

	if (name_to_id(name, &id) == 0)
		return 1;
	if (strncmp(name, "sha256-", 7) != 0 || strlen(name) != 7 + 64)
		return 0;
	for (const char *p = name + 7; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return 0;
	return 1;
}

/*
 * Remove temp files and objects no record references.  Only under the exclusive lock, i.e.
 * when no add is between creating its temp file and committing, in this or any other process.
 */
static void sweep_orphans(struct qstore *q)
{
	sqlite3_stmt *st = NULL;
	struct dirent *de;
	DIR *d;
	int fd;

	if (flock(q->lockfd, LOCK_EX | LOCK_NB) < 0)
		return;
	fd = openat(q->objfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		goto out_unlock;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		goto out_unlock;
	}
	if (sqlite3_prepare_v2(q->db, "SELECT 1 FROM objects o WHERE o.name = ?1 AND EXISTS"
			       " (SELECT 1 FROM records r WHERE r.object = ?1)", -1, &st, NULL)
	    != SQLITE_OK)
		goto out_dir;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (strncmp(de->d_name, ".tmp-", 5) == 0) {
			unlinkat(q->objfd, de->d_name, 0);
			continue;
		}
		if (!is_object_name(de->d_name))
			continue;		/* not ours: leave it alone */
		sqlite3_reset(st);
		sqlite3_bind_text(st, 1, de->d_name, -1, SQLITE_TRANSIENT);
		if (sqlite3_step(st) == SQLITE_DONE)
			unlinkat(q->objfd, de->d_name, 0);
	}
	sqlite3_finalize(st);
	fsync(q->objfd);
out_dir:
	closedir(d);
out_unlock:
	flock(q->lockfd, LOCK_UN);
}

/* Bring the schema to QS_SCHEMA, in one transaction (concurrent openers wait). */
static int migrate(struct qstore *q, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int v = -1;

	if (sql_exec(q->db, "BEGIN IMMEDIATE") < 0)
		goto out_err;
	if (sqlite3_prepare_v2(q->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK)
		goto out_rollback;
	if (sqlite3_step(st) == SQLITE_ROW)
		v = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (v < 0)
		goto out_rollback;
	if (v > QS_SCHEMA) {
		sql_exec(q->db, "ROLLBACK");
		seterr(err, errlen, "quarantine store %s: %s", q->dir,
		       "made by a newer hashgate (schema version too new): upgrade hashgate");
		return -EPROTONOSUPPORT;
	}
	if (v < 2 && sql_exec(q->db, migrate_v2_sql) < 0)
		goto out_rollback;
	for (size_t i = 0; v < 3 && i < sizeof(migrate_v3_sql) / sizeof(migrate_v3_sql[0]); i++) {
		if (sqlite3_exec(q->db, migrate_v3_sql[i], NULL, NULL, NULL) != SQLITE_OK &&
		    !strstr(sqlite3_errmsg(q->db), "duplicate column"))
			goto out_rollback;
	}
	if (v < 3 && sql_exec(q->db, "PRAGMA user_version = 3") < 0)
		goto out_rollback;
	for (size_t i = 0; v < 4 && i < sizeof(migrate_v4_sql) / sizeof(migrate_v4_sql[0]); i++) {
		if (sqlite3_exec(q->db, migrate_v4_sql[i], NULL, NULL, NULL) != SQLITE_OK &&
		    !strstr(sqlite3_errmsg(q->db), "duplicate column"))
			goto out_rollback;
	}
	if (v < 4 && sql_exec(q->db, "PRAGMA user_version = 4") < 0)
		goto out_rollback;
	if (sql_exec(q->db, "COMMIT") < 0)
		goto out_rollback;
	return 0;
out_rollback:
	seterr(err, errlen, "quarantine store %s: schema upgrade: %s", q->dir,
	       sqlite3_errmsg(q->db));
	sql_exec(q->db, "ROLLBACK");
	return -EIO;
out_err:
	seterr(err, errlen, "quarantine store %s: %s", q->dir, sqlite3_errmsg(q->db));
	return -EIO;
}

static int ensure_dir(int atfd, const char *path, char *err, size_t errlen)
{
	struct stat st;

	if (mkdirat(atfd, path, 0700) < 0 && errno != EEXIST) {
		int r = -errno;

		seterr(err, errlen, "cannot create %s: %s", path, strerror(-r));
		return r;
	}
	if (fstatat(atfd, path, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode)) {
		seterr(err, errlen, "%s: %s", path, "not a directory");
		return -ENOTDIR;
	}
	/* Root-only: tighten a directory someone created with looser permissions. */
	if ((st.st_mode & 077) && st.st_uid == geteuid())
		fchmodat(atfd, path, 0700, 0);
	return 0;
}

int qstore_open(struct qstore **out, const char *dir, const char *keyfile, unsigned flags,
		char *err, size_t errlen)
{
	struct qstore *q;
	char *dbpath = NULL;
	int r;

	*out = NULL;
	q = calloc(1, sizeof(*q));
	if (!q)
		return -ENOMEM;
	q->dirfd = q->objfd = q->lockfd = -1;
	q->dir = strdup(dir);
	if (!q->dir) {
		r = -ENOMEM;
		goto out_free;
	}
	if (pthread_mutex_init(&q->lock, NULL) != 0) {
		r = -ENOMEM;
		goto out_free;
	}
	if (flags & QSTORE_CREATE) {
		r = ensure_dir(AT_FDCWD, dir, err, errlen);
		if (r < 0)
			goto out_mutex;
	}
	q->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (q->dirfd < 0) {
		r = -errno;
		seterr(err, errlen, "quarantine store %s: %s", dir, strerror(-r));
		goto out_mutex;
	}
	if (flags & QSTORE_CREATE) {
		r = ensure_dir(q->dirfd, "objects", err, errlen);
		if (r < 0)
			goto out_fds;
	}
	q->objfd = openat(q->dirfd, "objects", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (q->objfd < 0) {
		r = -errno;
		seterr(err, errlen, "quarantine store %s: objects/: %s", dir, strerror(-r));
		goto out_fds;
	}
	q->lockfd = openat(q->dirfd, ".lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (q->lockfd < 0) {
		r = -errno;
		seterr(err, errlen, "quarantine store %s: .lock: %s", dir, strerror(-r));
		goto out_fds;
	}
	r = load_key(q, keyfile, flags & QSTORE_CREATE, err, errlen);
	if (r < 0)
		goto out_fds;
	if (asprintf(&dbpath, "%s/records.db", dir) < 0) {
		r = -ENOMEM;
		goto out_fds;
	}
	if (sqlite3_open_v2(dbpath, &q->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX |
			    ((flags & QSTORE_CREATE) ? SQLITE_OPEN_CREATE : 0), NULL) != SQLITE_OK) {
		r = q->db && sqlite3_errcode(q->db) == SQLITE_CANTOPEN ? -ENOENT : -EIO;
		seterr(err, errlen, "quarantine records %s: %s", dbpath,
		       q->db ? sqlite3_errmsg(q->db) : "out of memory");
		goto out_db;
	}
	sqlite3_busy_timeout(q->db, 10000);
	if (sql_exec(q->db, "PRAGMA journal_mode=WAL") < 0 ||
	    sql_exec(q->db, "PRAGMA synchronous=FULL") < 0 ||
	    sql_exec(q->db, schema_sql) < 0) {
		r = -EIO;
		seterr(err, errlen, "quarantine records %s: %s", dbpath, sqlite3_errmsg(q->db));
		goto out_db;
	}
	r = key_check(q, err, errlen);
	if (r < 0)
		goto out_db;
	r = migrate(q, err, errlen);
	if (r < 0)
		goto out_db;
	free(dbpath);
	sweep_orphans(q);
	*out = q;
	return 0;
out_db:
	sqlite3_close(q->db);
	free(dbpath);
out_fds:
	if (q->lockfd >= 0)
		close(q->lockfd);
	if (q->objfd >= 0)
		close(q->objfd);
	if (q->dirfd >= 0)
		close(q->dirfd);
out_mutex:
	pthread_mutex_destroy(&q->lock);
out_free:
	OPENSSL_cleanse(q->key, sizeof(q->key));
	free(q->dir);
	free(q);
	return r;
}

void qstore_close(struct qstore *q)
{
	if (!q)
		return;
	sqlite3_close(q->db);
	close(q->lockfd);
	close(q->objfd);
	close(q->dirfd);
	pthread_mutex_destroy(&q->lock);
	OPENSSL_cleanse(q->key, sizeof(q->key));
	free(q->dir);
	free(q);
}

/* Encrypt size bytes of in_fd (pread from 0) into the open temp file out_fd. */
static int encrypt_to(const struct qstore *q, int in_fd, uint64_t size, int out_fd)
{
	uint8_t hdr[QS_HDR_LEN] = { 0 }, tag[QS_TAG_LEN];
	EVP_CIPHER_CTX *ctx;
	uint8_t *in = NULL, *outb = NULL;
	uint64_t off = 0;
	int len, r = -EIO;

	/* GCM's 32-bit block counter covers 2^32 - 2 blocks under one nonce (~64 GiB). */
	if (size > (((uint64_t)1 << 32) - 2) * 16)
		return -EFBIG;
	memcpy(hdr, qs_magic, sizeof(qs_magic));
	put_le(hdr + 8, QS_VERSION, 4);
	put_le(hdr + 16, size, 8);
	if (RAND_bytes(hdr + 24, QS_NONCE_LEN) != 1)
		return -EIO;
	ctx = EVP_CIPHER_CTX_new();
	in = malloc(QS_CHUNK);
	outb = malloc(QS_CHUNK + 32);
	if (!ctx || !in || !outb) {
		r = -ENOMEM;
		goto out_free;
	}
	if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, QS_NONCE_LEN, NULL) != 1 ||
	    EVP_EncryptInit_ex(ctx, NULL, NULL, q->key, hdr + 24) != 1 ||
	    EVP_EncryptUpdate(ctx, NULL, &len, hdr, QS_HDR_LEN) != 1)
		goto out_free;
	r = write_all(out_fd, hdr, QS_HDR_LEN);
	if (r < 0)
		goto out_free;
	while (off < size) {
		size_t want = size - off < QS_CHUNK ? (size_t)(size - off) : QS_CHUNK;
		ssize_t got = pread_full(in_fd, in, want, (off_t)off);

		if (got < 0) {
			r = (int)got;
			goto out_free;
		}
		if ((size_t)got != want) {	/* shorter than the record says */
			r = -EIO;
			goto out_free;
		}
		if (EVP_EncryptUpdate(ctx, outb, &len, in, (int)got) != 1) {
			r = -EIO;
			goto out_free;
		}
		r = write_all(out_fd, outb, (size_t)len);
		if (r < 0)
			goto out_free;
		off += (uint64_t)got;
	}
	r = -EIO;
	if (EVP_EncryptFinal_ex(ctx, outb, &len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, QS_TAG_LEN, tag) != 1)
		goto out_free;
	r = write_all(out_fd, outb, (size_t)len);
	if (r == 0)
		r = write_all(out_fd, tag, QS_TAG_LEN);
	if (r == 0 && fsync(out_fd) < 0)
		r = -errno;
out_free:
	if (in)
		OPENSSL_cleanse(in, QS_CHUNK);
	free(in);
	free(outb);
	EVP_CIPHER_CTX_free(ctx);
	return r;
}

static void bind_hex(sqlite3_stmt *st, int col, const struct digests *d, enum hash_algo a)
{
	const uint8_t *v = digests_get(d, a);
	char hex[2 * HASH_MAX_LEN + 1];

	if (!v) {
		sqlite3_bind_null(st, col);
		return;
	}
	hex_encode(v, hash_algo_len(a), hex);
	sqlite3_bind_text(st, col, hex, -1, SQLITE_TRANSIENT);
}

static const char *nz(const char *s)
{
	return s ? s : "";
}

/* objects/ name of rec's content: sha256-HEX; -EINVAL without a sha256. */
static int object_name(const struct qrecord *rec, char name[QSTORE_NAME_MAX])
{
	const uint8_t *d = digests_get(&rec->digests, HASH_SHA256);

	if (!d)
		return -EINVAL;
	strcpy(name, "sha256-");
	hex_encode(d, hash_algo_len(HASH_SHA256), name + 7);
	return 0;
}

int qstore_kept_name(const struct qrecord *rec, char name[QSTORE_NAME_MAX])
{
	return object_name(rec, name);
}

/*
 * In a transaction: 1 when object name is listed and its file exists, 0 when not, -EINVAL
 * when it is listed with another size than the record says (digests that are not the
 * content's: never let such a record replace or claim the object).
 */
static int object_present(struct qstore *q, const char *name, uint64_t size)
{
	sqlite3_stmt *st = NULL;
	int r = -EIO, s;

	if (sqlite3_prepare_v2(q->db, "SELECT size FROM objects WHERE name = ?", -1, &st, NULL)
	    != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	s = sqlite3_step(st);
	if (s == SQLITE_ROW && (uint64_t)sqlite3_column_int64(st, 0) != size)
		r = -EINVAL;
	else if (s == SQLITE_ROW)
		r = faccessat(q->objfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0;
	else if (s == SQLITE_DONE)
		r = 0;
	sqlite3_finalize(st);
	return r;
}

/* Objects' total on-disk size (plaintext plus header and tag) and count. */
static int usage_locked(struct qstore *q, uint64_t *bytes, uint64_t *objects)
{
	sqlite3_stmt *st = NULL;
	int r = -EIO;

	if (sqlite3_prepare_v2(q->db, "SELECT COALESCE(SUM(size), 0), COUNT(*) FROM objects", -1,
			       &st, NULL) != SQLITE_OK)
		return -EIO;
	if (sqlite3_step(st) == SQLITE_ROW) {
		*objects = (uint64_t)sqlite3_column_int64(st, 1);
		*bytes = (uint64_t)sqlite3_column_int64(st, 0) + *objects * QS_OVERHEAD;
		r = 0;
	}
	sqlite3_finalize(st);
	return r;
}

/* -EDQUOT when an object of size plaintext bytes would take the store over its quota. */
static int quota_check(struct qstore *q, uint64_t size)
{
	uint64_t bytes, objects;
	int r;

	if (!q->max_bytes)
		return 0;
	r = usage_locked(q, &bytes, &objects);
	if (r < 0)
		return r;
	return bytes + size + QS_OVERHEAD > q->max_bytes ? -EDQUOT : 0;
}

/* A new temp file in dirfd (mkstemp relative to a directory fd, O_EXCL). */
static int tmp_create(int dirfd, char tmpname[16])
{
	for (int tries = 0; tries < 100; tries++) {
		uint8_t rnd[4];
		char hex[9];
		int fd;

		if (RAND_bytes(rnd, sizeof(rnd)) != 1)
			return -EIO;
		hex_encode(rnd, sizeof(rnd), hex);
		snprintf(tmpname, 16, ".tmp-%.6s", hex);
		fd = openat(dirfd, tmpname, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
			    0600);
		if (fd >= 0 || errno != EEXIST)
			return fd >= 0 ? fd : -errno;
	}
	return -EEXIST;
}

/*
 * Open a write transaction and look for object name there: 1 or 0 with the transaction still
 * open (the caller commits or rolls back), or -errno with it rolled back.
 */
static int object_lookup(struct qstore *q, const char *name, uint64_t size)
{
	int present;

	if (sql_exec(q->db, "BEGIN IMMEDIATE") < 0)
		return -EIO;
	present = object_present(q, name, size);
	if (present < 0)
		sql_exec(q->db, "ROLLBACK");
	return present;
}

/*
 * Before new content is written into objects/: room under the quota, the shared lock that keeps
 * qstore_open's orphan sweep away taken, a temp file created.  Its fd (the caller unlocks
 * q->lockfd when done), or -errno with nothing held.
 */
static int object_begin(struct qstore *q, uint64_t size, char tmpname[16])
{
	int r = quota_check(q, size), fd;

	if (r < 0)
		return r;
	if (flock(q->lockfd, LOCK_SH) < 0)
		return -errno;
	fd = tmp_create(q->objfd, tmpname);
	if (fd < 0)
		flock(q->lockfd, LOCK_UN);
	return fd;
}

static int insert_object(struct qstore *q, const char *name, const struct qrecord *rec)
{
	sqlite3_stmt *st = NULL;
	int r = -EIO;

	if (sqlite3_prepare_v2(q->db, "INSERT OR REPLACE INTO objects(name, sha256, size)"
			       " VALUES(?, ?, ?)", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	bind_hex(st, 2, &rec->digests, HASH_SHA256);
	sqlite3_bind_int64(st, 3, (sqlite3_int64)rec->size);
	if (sqlite3_step(st) == SQLITE_DONE)
		r = 0;
	sqlite3_finalize(st);
	return r;
}

static int set_object(struct qstore *q, int64_t id, const char *name)
{
	sqlite3_stmt *st = NULL;
	int r = -EIO;

	if (sqlite3_prepare_v2(q->db, "UPDATE records SET object = ?, stored = 1, kept = 0"
			       " WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 2, id);
	if (sqlite3_step(st) == SQLITE_DONE)
		r = 0;
	sqlite3_finalize(st);
	return r;
}

/* Insert the record row (object: its content's name or NULL); sets *id. */
static int insert_record(struct qstore *q, const struct qrecord *rec, const char *object,
			 int64_t *id)
{
	static const char ins[] =
		"INSERT INTO records(time, upload_time, uid, gid, pid, mount, path, size, mode,"
		" md5, sha1, sha256, pdq, pdq_quality, algo, distance, list, category, action,"
		" stored, held, restored, object, kept, origin, ref, label)"
		" VALUES(?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)";
	sqlite3_stmt *st = NULL;
	char pdqhex[65];
	int r = -EIO;

	if (sqlite3_prepare_v2(q->db, ins, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, rec->time);
	sqlite3_bind_int64(st, 2, rec->upload_time);
	sqlite3_bind_int64(st, 3, rec->uid);
	sqlite3_bind_int64(st, 4, rec->gid);
	sqlite3_bind_int64(st, 5, rec->pid);
	sqlite3_bind_text(st, 6, nz(rec->mount), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 7, nz(rec->path), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 8, (sqlite3_int64)rec->size);
	sqlite3_bind_int64(st, 9, rec->mode);
	bind_hex(st, 10, &rec->digests, HASH_MD5);
	bind_hex(st, 11, &rec->digests, HASH_SHA1);
	bind_hex(st, 12, &rec->digests, HASH_SHA256);
	if (rec->has_pdq) {
		hex_encode(rec->pdq.b, sizeof(rec->pdq.b), pdqhex);
		sqlite3_bind_text(st, 13, pdqhex, -1, SQLITE_TRANSIENT);
	} else {
		sqlite3_bind_null(st, 13);
	}
	sqlite3_bind_int(st, 14, rec->pdq_quality);
	sqlite3_bind_text(st, 15, nz(hash_algo_name(rec->algo)), -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 16, rec->distance);
	sqlite3_bind_text(st, 17, nz(rec->list), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 18, nz(rec->category), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 19, config_action_name(rec->action), -1, SQLITE_STATIC);
	sqlite3_bind_int(st, 20, object != NULL);
	sqlite3_bind_int(st, 21, rec->held);
	sqlite3_bind_int(st, 22, rec->restored);
	if (object)
		sqlite3_bind_text(st, 23, object, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 23);
	sqlite3_bind_int(st, 24, !object && rec->kept);
	sqlite3_bind_text(st, 25, nz(rec->origin), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 26, nz(rec->ref), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 27, nz(rec->label), -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_DONE) {
		*id = sqlite3_last_insert_rowid(q->db);
		r = 0;
	}
	sqlite3_finalize(st);
	return r;
}

int qstore_add(struct qstore *q, int content_fd, struct qrecord *rec)
{
	char tmpname[16] = "", name[QSTORE_NAME_MAX];
	int store = content_fd >= 0 && rec->action == ACTION_QUARANTINE;
	int by_sha = store && object_name(rec, name) == 0;
	int tfd = -1, r, locked = 0, present = 0;
	int64_t id;

	pthread_mutex_lock(&q->lock);
	if (by_sha) {
		/* The same content already stored: reference it, nothing to encrypt or count. */
		present = object_lookup(q, name, rec->size);
		if (present < 0) {
			r = present;
			goto out_unlock;
		}
		if (present)
			goto insert;
		sql_exec(q->db, "ROLLBACK");	/* encrypt without holding the write lock */
	}
	if (store) {
		tfd = object_begin(q, rec->size, tmpname);
		if (tfd < 0) {
			r = tfd;
			goto out_unlock;
		}
		locked = 1;
		r = encrypt_to(q, content_fd, rec->size, tfd);
		if (r < 0)
			goto out_tmp;
	}
	if (by_sha) {
		/* Added meanwhile (the same content, another thread or process)? */
		present = object_lookup(q, name, rec->size);
		if (present < 0) {
			r = present;
			goto out_tmp;
		}
		if (!present) {
			if (renameat(q->objfd, tmpname, q->objfd, name) < 0) {
				r = -errno;
				goto out_rollback;
			}
			if (fsync(q->objfd) < 0 || insert_object(q, name, rec) < 0) {
				r = -EIO;
				unlinkat(q->objfd, name, 0);
				goto out_rollback;
			}
		}
	} else if (sql_exec(q->db, "BEGIN IMMEDIATE") < 0) {
		r = -EIO;
		goto out_tmp;
	}
insert:
	r = insert_record(q, rec, store ? (by_sha ? name : "") : NULL, &id);
	if (r < 0) {
		if (by_sha && !present)
			unlinkat(q->objfd, name, 0);
		goto out_rollback;
	}
	if (store && !by_sha) {
		/* No sha256 to name it by: the record's id, as schema 1 named every object. */
		snprintf(name, sizeof(name), "%" PRId64, id);
		r = -EIO;
		if (renameat(q->objfd, tmpname, q->objfd, name) < 0) {
			r = -errno;
			goto out_rollback;
		}
		if (fsync(q->objfd) < 0 || insert_object(q, name, rec) < 0 ||
		    set_object(q, id, name) < 0) {
			unlinkat(q->objfd, name, 0);
			goto out_rollback;
		}
	}
	if (sql_exec(q->db, "COMMIT") < 0) {
		r = -EIO;
		if (store && !present)
			unlinkat(q->objfd, name, 0);
		goto out_rollback;
	}
	rec->id = id;
	if (tfd >= 0) {
		close(tfd);
		if (present)		/* lost the race to a concurrent add: drop ours */
			unlinkat(q->objfd, tmpname, 0);
	}
	if (locked)
		flock(q->lockfd, LOCK_UN);
	pthread_mutex_unlock(&q->lock);
	return 0;
out_rollback:
	sql_exec(q->db, "ROLLBACK");
out_tmp:
	if (tfd >= 0) {
		close(tfd);
		unlinkat(q->objfd, tmpname, 0);
	}
out_unlock:
	if (locked)
		flock(q->lockfd, LOCK_UN);
	pthread_mutex_unlock(&q->lock);
	return r;
}

static char *col_dup(sqlite3_stmt *st, int col)
{
	const char *s = (const char *)sqlite3_column_text(st, col);

	return strdup(s ? s : "");
}

static void col_digest(sqlite3_stmt *st, int col, struct digests *d, enum hash_algo a)
{
	const char *s = (const char *)sqlite3_column_text(st, col);
	uint8_t *dst = a == HASH_MD5 ? d->md5 : a == HASH_SHA1 ? d->sha1 : d->sha256;
	size_t n = hash_algo_len(a);

	if (s && strlen(s) == 2 * n && hex_decode(s, 2 * n, dst, n) == 0)
		d->mask |= HASH_BIT(a);
}

static int row_to_rec(sqlite3_stmt *st, struct qrecord *r)
{
	const char *s;
	int a;

	memset(r, 0, sizeof(*r));
	r->id = sqlite3_column_int64(st, 0);
	r->time = sqlite3_column_int64(st, 1);
	r->upload_time = sqlite3_column_int64(st, 2);
	r->uid = (uint32_t)sqlite3_column_int64(st, 3);
	r->gid = (uint32_t)sqlite3_column_int64(st, 4);
	r->pid = (int32_t)sqlite3_column_int64(st, 5);
	r->mount = col_dup(st, 6);
	r->path = col_dup(st, 7);
	r->size = (uint64_t)sqlite3_column_int64(st, 8);
	r->mode = (uint32_t)sqlite3_column_int64(st, 9);
	col_digest(st, 10, &r->digests, HASH_MD5);
	col_digest(st, 11, &r->digests, HASH_SHA1);
	col_digest(st, 12, &r->digests, HASH_SHA256);
	r->digests.size = r->size;
	s = (const char *)sqlite3_column_text(st, 13);
	r->has_pdq = s && strlen(s) == 64 && hex_decode(s, 64, r->pdq.b, 32) == 0;
	r->pdq_quality = sqlite3_column_int(st, 14);
	s = (const char *)sqlite3_column_text(st, 15);
	a = s ? hash_algo_parse(s) : -EINVAL;
	r->algo = a >= 0 ? (enum hash_algo)a : HASH_NALGOS;
	r->distance = sqlite3_column_int(st, 16);
	r->list = col_dup(st, 17);
	r->category = col_dup(st, 18);
	s = (const char *)sqlite3_column_text(st, 19);
	r->action = s && strcmp(s, config_action_name(ACTION_BLOCK)) == 0 ? ACTION_BLOCK :
		    s && strcmp(s, config_action_name(ACTION_LOG)) == 0 ? ACTION_LOG :
		    ACTION_QUARANTINE;
	r->held = sqlite3_column_int(st, 20) != 0;
	r->restored = sqlite3_column_int(st, 21) != 0;
	r->kept = sqlite3_column_int(st, 22) != 0;
	r->origin = col_dup(st, 23);
	r->review = col_dup(st, 24);
	r->review_case = col_dup(st, 25);
	r->review_reason = col_dup(st, 26);
	r->review_time = sqlite3_column_int64(st, 27);
	r->ref = col_dup(st, 28);
	r->label = col_dup(st, 29);
	if (!r->mount || !r->path || !r->list || !r->category || !r->origin || !r->review ||
	    !r->review_case || !r->review_reason || !r->ref || !r->label) {
		qrecord_release(r);
		return -ENOMEM;
	}
	return 0;
}

void qrecord_release(struct qrecord *rec)
{
	if (!rec)
		return;
	free(rec->mount);
	free(rec->path);
	free(rec->list);
	free(rec->category);
	free(rec->origin);
	free(rec->review);
	free(rec->review_case);
	free(rec->review_reason);
	free(rec->ref);
	free(rec->label);
	rec->ref = rec->label = NULL;
	rec->mount = rec->path = rec->list = rec->category = rec->origin = NULL;
	rec->review = rec->review_case = rec->review_reason = NULL;
}

void qrecord_free_array(struct qrecord *recs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		qrecord_release(&recs[i]);
	free(recs);
}

/* With q->lock held.  object (QSTORE_NAME_MAX bytes, may be NULL): the content's name or "". */
static int get_locked(struct qstore *q, int64_t id, struct qrecord *out, int *stored,
		      char *object)
{
	sqlite3_stmt *st = NULL;
	int r = -EIO, s;

	if (sqlite3_prepare_v2(q->db, "SELECT " REC_COLS ", stored, object FROM records"
			       " WHERE id = ?", -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_int64(st, 1, id);
	s = sqlite3_step(st);
	if (s == SQLITE_ROW) {
		const char *o = (const char *)sqlite3_column_text(st, 31);

		r = out ? row_to_rec(st, out) : 0;
		if (stored)
			*stored = sqlite3_column_int(st, 30) && o && *o;
		if (object)
			snprintf(object, QSTORE_NAME_MAX, "%s", o && strlen(o) < QSTORE_NAME_MAX ?
				 o : "");
	} else if (s == SQLITE_DONE) {
		r = -ENOENT;
	}
	sqlite3_finalize(st);
	return r;
}

int qstore_get(struct qstore *q, int64_t id, struct qrecord *out)
{
	int r;

	pthread_mutex_lock(&q->lock);
	r = get_locked(q, id, out, NULL, NULL);
	pthread_mutex_unlock(&q->lock);
	return r;
}

int qstore_has_content(struct qstore *q, int64_t id)
{
	int r, stored = 0;

	pthread_mutex_lock(&q->lock);
	r = get_locked(q, id, NULL, &stored, NULL);
	pthread_mutex_unlock(&q->lock);
	return r < 0 ? r : stored;
}

int qstore_list(struct qstore *q, const struct qstore_filter *f, struct qrecord **out, size_t *n)
{
	static const char sql[] =
		"SELECT " REC_COLS " FROM records WHERE (?1 = 0 OR time >= ?1)"
		" AND (?2 = 0 OR time < ?2) AND (?3 < 0 OR uid = ?3) AND (?4 IS NULL OR list = ?4)"
		" ORDER BY time, id";
	struct qrecord *recs = NULL;
	size_t cnt = 0, cap = 0;
	sqlite3_stmt *st = NULL;
	int r = -EIO, s;

	*out = NULL;
	*n = 0;
	pthread_mutex_lock(&q->lock);
	if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK)
		goto out_unlock;
	sqlite3_bind_int64(st, 1, f ? f->since : 0);
	sqlite3_bind_int64(st, 2, f ? f->before : 0);
	sqlite3_bind_int64(st, 3, f ? f->uid : -1);
	if (f && f->list)
		sqlite3_bind_text(st, 4, f->list, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, 4);
	while ((s = sqlite3_step(st)) == SQLITE_ROW) {
		if (cnt == cap) {
			size_t ncap = cap ? 2 * cap : 64;
			struct qrecord *nr = realloc(recs, ncap * sizeof(*nr));

			if (!nr) {
				r = -ENOMEM;
				goto out_free;
			}
			recs = nr;
			cap = ncap;
		}
		r = row_to_rec(st, &recs[cnt]);
		if (r < 0)
			goto out_free;
		cnt++;
	}
	if (s != SQLITE_DONE) {
		r = -EIO;
		goto out_free;
	}
	sqlite3_finalize(st);
	pthread_mutex_unlock(&q->lock);
	*out = recs;
	*n = cnt;
	return 0;
out_free:
	qrecord_free_array(recs, cnt);
	sqlite3_finalize(st);
out_unlock:
	pthread_mutex_unlock(&q->lock);
	return r;
}

/* qstore_read's sink: write(2) to the fd in ctx. */
static int sink_fd(void *ctx, const void *buf, size_t len)
{
	return write_all(*(const int *)ctx, buf, len);
}

/* qstore_adopt's sink: only the authentication and digest checks matter. */
static int sink_none(void *ctx, const void *buf, size_t len)
{
	(void)ctx;
	(void)buf;
	(void)len;
	return 0;
}

static int decrypt_to(const struct qstore *q, int in_fd, const struct qrecord *rec,
		      qstore_sink sink, void *sink_ctx)
{
	uint8_t hdr[QS_HDR_LEN], tag[QS_TAG_LEN];
	EVP_CIPHER_CTX *ctx = NULL;
	uint8_t *in = NULL, *outb = NULL;
	struct digests d;
	struct hasher h;
	struct stat stt;
	uint64_t size, left;
	off_t off = QS_HDR_LEN;
	int len, r;

	r = hasher_init(&h, rec->digests.mask & HASH_EXACT_MASK);
	if (r < 0)
		return r;
	r = -EBADMSG;
	if (fstat(in_fd, &stt) < 0 || pread_full(in_fd, hdr, QS_HDR_LEN, 0) != QS_HDR_LEN ||
	    memcmp(hdr, qs_magic, sizeof(qs_magic)) != 0 || get_le(hdr + 8, 4) != QS_VERSION)
		goto out_hash;
	size = get_le(hdr + 16, 8);
	if (size != rec->size || (uint64_t)stt.st_size != QS_HDR_LEN + size + QS_TAG_LEN)
		goto out_hash;
	ctx = EVP_CIPHER_CTX_new();
	in = malloc(QS_CHUNK);
	outb = malloc(QS_CHUNK + 32);
	if (!ctx || !in || !outb) {
		r = -ENOMEM;
		goto out_free;
	}
	r = -EIO;
	if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, NULL, NULL) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_IVLEN, QS_NONCE_LEN, NULL) != 1 ||
	    EVP_DecryptInit_ex(ctx, NULL, NULL, q->key, hdr + 24) != 1 ||
	    EVP_DecryptUpdate(ctx, NULL, &len, hdr, QS_HDR_LEN) != 1)
		goto out_free;
	for (left = size; left; ) {
		size_t want = left < QS_CHUNK ? (size_t)left : QS_CHUNK;
		ssize_t got = pread_full(in_fd, in, want, off);

		if (got < 0) {
			r = (int)got;
			goto out_free;
		}
		if ((size_t)got != want) {
			r = -EBADMSG;
			goto out_free;
		}
		if (EVP_DecryptUpdate(ctx, outb, &len, in, (int)got) != 1)
			goto out_free;
		hasher_update(&h, outb, (size_t)len);
		r = sink(sink_ctx, outb, (size_t)len);
		if (r < 0)
			goto out_free;
		r = -EIO;
		off += got;
		left -= (uint64_t)got;
	}
	r = -EBADMSG;
	if (pread_full(in_fd, tag, QS_TAG_LEN, off) != QS_TAG_LEN ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, QS_TAG_LEN, tag) != 1 ||
	    EVP_DecryptFinal_ex(ctx, outb, &len) != 1)
		goto out_free;
	/* Authentic, but is it this record's content?  (Objects swapped between ids.) */
	if (hasher_final(&h, &d) < 0)
		goto out_free;
	for (int a = HASH_MD5; a <= HASH_SHA256; a++) {
		const uint8_t *want = digests_get(&rec->digests, (enum hash_algo)a);
		const uint8_t *got = digests_get(&d, (enum hash_algo)a);

		if (want && (!got || memcmp(want, got, hash_algo_len((enum hash_algo)a)) != 0))
			goto out_free;
	}
	r = 0;
out_free:
	if (outb)
		OPENSSL_cleanse(outb, QS_CHUNK + 32);
	free(in);
	free(outb);
	EVP_CIPHER_CTX_free(ctx);
out_hash:
	hasher_release(&h);
	return r;
}

int qstore_read(struct qstore *q, int64_t id, int out_fd)
{
	return qstore_read_to(q, id, sink_fd, &out_fd);
}

int qstore_read_to(struct qstore *q, int64_t id, qstore_sink sink, void *ctx)
{
	struct qrecord rec;
	char name[QSTORE_NAME_MAX];
	int r, fd, stored = 0;

	pthread_mutex_lock(&q->lock);
	r = get_locked(q, id, &rec, &stored, name);
	if (r < 0) {
		pthread_mutex_unlock(&q->lock);
		return r;
	}
	fd = stored ? openat(q->objfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW) : -1;
	r = !stored ? -ENOENT : fd < 0 ? (errno == ENOENT ? -EBADMSG : -errno) : 0;
	pthread_mutex_unlock(&q->lock);
	/* Decrypt without the mutex: a long export must not stall the daemon's adds. */
	if (r == 0) {
		r = decrypt_to(q, fd, &rec, sink, ctx);
		close(fd);
	}
	qrecord_release(&rec);
	return r;
}

static int update_flag(struct qstore *q, const char *sql, int64_t id, int v)
{
	sqlite3_stmt *st = NULL;
	int r = -EIO;

	pthread_mutex_lock(&q->lock);
	if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK)
		goto out;
	sqlite3_bind_int(st, 1, v);
	sqlite3_bind_int64(st, 2, id);
	if (sqlite3_step(st) == SQLITE_DONE)
		r = sqlite3_changes(q->db) ? 0 : -ENOENT;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&q->lock);
	return r;
}

int qstore_set_held(struct qstore *q, int64_t id, bool held)
{
	return update_flag(q, "UPDATE records SET held = ? WHERE id = ?", id, held);
}

int qstore_set_restored(struct qstore *q, int64_t id, bool restored)
{
	return update_flag(q, "UPDATE records SET restored = ? WHERE id = ?", id, restored);
}

int qstore_set_review(struct qstore *q, int64_t id, const char *state, const char *case_no,
		      const char *reason, int64_t when)
{
	sqlite3_stmt *st = NULL;
	int r = -EIO;

	pthread_mutex_lock(&q->lock);
	if (sqlite3_prepare_v2(q->db, "UPDATE records SET review = ?, review_case = ?, "
			       "review_reason = ?, review_time = ? WHERE id = ?", -1, &st, NULL)
	    != SQLITE_OK)
		goto out;
	sqlite3_bind_text(st, 1, state, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, nz(case_no), -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 3, nz(reason), -1, SQLITE_STATIC);
	sqlite3_bind_int64(st, 4, when);
	sqlite3_bind_int64(st, 5, id);
	if (sqlite3_step(st) == SQLITE_DONE)
		r = sqlite3_changes(q->db) ? 0 : -ENOENT;
out:
	sqlite3_finalize(st);
	pthread_mutex_unlock(&q->lock);
	return r;
}

/* In a transaction: how many records reference object name. */
static int object_refs(struct qstore *q, const char *name)
{
	sqlite3_stmt *st = NULL;
	int r = -EIO;

	if (sqlite3_prepare_v2(q->db, "SELECT COUNT(*) FROM records WHERE object = ?", -1, &st,
			       NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_ROW)
		r = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	return r;
}

static int exec_name(struct qstore *q, const char *sql, const char *name)
{
	sqlite3_stmt *st = NULL;
	int r = -EIO;

	if (sqlite3_prepare_v2(q->db, sql, -1, &st, NULL) != SQLITE_OK)
		return -EIO;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	if (sqlite3_step(st) == SQLITE_DONE)
		r = 0;
	sqlite3_finalize(st);
	return r;
}

int qstore_delete(struct qstore *q, int64_t id)
{
	sqlite3_stmt *st = NULL;
	char name[QSTORE_NAME_MAX] = "";
	int r = -EIO, s, refs;

	pthread_mutex_lock(&q->lock);
	if (sql_exec(q->db, "BEGIN IMMEDIATE") < 0)
		goto out_unlock;
	if (sqlite3_prepare_v2(q->db, "SELECT held, object FROM records WHERE id = ?", -1, &st,
			       NULL) != SQLITE_OK)
		goto out_rollback;
	sqlite3_bind_int64(st, 1, id);
	s = sqlite3_step(st);
	if (s == SQLITE_DONE) {
		r = -ENOENT;
		goto out_rollback;
	}
	if (s != SQLITE_ROW)
		goto out_rollback;
	if (sqlite3_column_int(st, 0)) {
		r = -EPERM;
		goto out_rollback;
	}
	if (sqlite3_column_text(st, 1))
		snprintf(name, sizeof(name), "%s", (const char *)sqlite3_column_text(st, 1));
	sqlite3_finalize(st);
	st = NULL;
	if (sqlite3_prepare_v2(q->db, "DELETE FROM records WHERE id = ?", -1, &st, NULL)
	    != SQLITE_OK)
		goto out_rollback;
	sqlite3_bind_int64(st, 1, id);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto out_rollback;
	sqlite3_finalize(st);
	st = NULL;
	/*
	 * The content goes with the last record referencing it, and before the commit: a crash
	 * after the unlink leaves records whose read says -EBADMSG (content missing), never
	 * plaintext-recoverable content without a record to find it.
	 */
	if (*name) {
		refs = object_refs(q, name);
		if (refs < 0)
			goto out_rollback;
		if (refs == 0) {
			if (unlinkat(q->objfd, name, 0) < 0 && errno != ENOENT) {
				r = -errno;
				goto out_rollback;
			}
			fsync(q->objfd);
			if (exec_name(q, "DELETE FROM objects WHERE name = ?", name) < 0)
				goto out_rollback;
		}
	}
	if (sql_exec(q->db, "COMMIT") < 0)
		goto out_rollback;
	pthread_mutex_unlock(&q->lock);
	return 0;
out_rollback:
	sqlite3_finalize(st);
	sql_exec(q->db, "ROLLBACK");
out_unlock:
	pthread_mutex_unlock(&q->lock);
	return r;
}

void qstore_set_quota(struct qstore *q, uint64_t max_bytes)
{
	pthread_mutex_lock(&q->lock);
	q->max_bytes = max_bytes;
	pthread_mutex_unlock(&q->lock);
}

int qstore_usage(struct qstore *q, struct qstore_usage *u)
{
	sqlite3_stmt *st = NULL;
	int r;

	memset(u, 0, sizeof(*u));
	pthread_mutex_lock(&q->lock);
	u->max_bytes = q->max_bytes;
	r = usage_locked(q, &u->bytes, &u->objects);
	if (r == 0) {
		r = -EIO;
		if (sqlite3_prepare_v2(q->db, "SELECT COUNT(*), COALESCE(SUM(kept), 0) FROM records",
				       -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW) {
			u->records = (uint64_t)sqlite3_column_int64(st, 0);
			u->kept = (uint64_t)sqlite3_column_int64(st, 1);
			r = 0;
		}
		sqlite3_finalize(st);
	}
	pthread_mutex_unlock(&q->lock);
	return r;
}

int qstore_keep(struct qstore *q, int content_fd, const struct qrecord *rec, int dirfd)
{
	char name[QSTORE_NAME_MAX], tmpname[16];
	int tfd, r;

	r = object_name(rec, name);
	if (r < 0)
		return r;
	/* Kept already (the same content, an earlier upload): one copy is evidence enough. */
	if (faccessat(dirfd, name, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
		return 0;
	tfd = tmp_create(dirfd, tmpname);
	if (tfd < 0)
		return tfd;
	r = encrypt_to(q, content_fd, rec->size, tfd);
	close(tfd);
	if (r == 0 && renameat(dirfd, tmpname, dirfd, name) < 0)
		r = -errno;
	if (r == 0 && fsync(dirfd) < 0)
		r = -errno;
	if (r < 0)
		unlinkat(dirfd, tmpname, 0);
	return r;
}

/* Copy the whole of in_fd into out_fd (a reflink where the filesystem shares extents) and fsync. */
static int copy_fd(int in_fd, int out_fd)
{
	int r = fcopy_fd(in_fd, out_fd, NULL);

	if (r == 0 && fsync(out_fd) < 0)
		r = -errno;
	return r;
}

int qstore_adopt(struct qstore *q, const struct qrecord *rec, int kept_fd)
{
	char name[QSTORE_NAME_MAX], tmpname[16] = "", sha[65];
	sqlite3_stmt *st = NULL;
	int tfd = -1, r, present, n = 0, locked = 0;

	r = object_name(rec, name);
	if (r < 0)
		return r;
	memcpy(sha, name + 7, sizeof(sha));
	/* Authentic, this store's key, and the record's content?  Before it becomes evidence. */
	r = decrypt_to(q, kept_fd, rec, sink_none, NULL);
	if (r < 0)
		return r;
	pthread_mutex_lock(&q->lock);
	present = object_lookup(q, name, rec->size);
	if (present < 0) {
		r = present;
		goto out_unlock;
	}
	sql_exec(q->db, "ROLLBACK");
	if (!present) {
		tfd = object_begin(q, rec->size, tmpname);
		if (tfd < 0) {
			r = tfd;
			goto out_unlock;
		}
		locked = 1;
		r = copy_fd(kept_fd, tfd);
		if (r < 0)
			goto out_tmp;
	}
	present = object_lookup(q, name, rec->size);
	if (present < 0) {
		r = present;
		goto out_tmp;
	}
	r = -EIO;
	if (!present) {
		if (tfd < 0) {		/* purged since we looked: try again later */
			r = -EAGAIN;
			goto out_rollback;
		}
		if (renameat(q->objfd, tmpname, q->objfd, name) < 0) {
			r = -errno;
			goto out_rollback;
		}
		if (fsync(q->objfd) < 0 || insert_object(q, name, rec) < 0) {
			unlinkat(q->objfd, name, 0);
			goto out_rollback;
		}
	}
	if (sqlite3_prepare_v2(q->db, "UPDATE records SET object = ?, stored = 1, kept = 0"
			       " WHERE kept = 1 AND sha256 = ?", -1, &st, NULL) != SQLITE_OK)
		goto out_rollback;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(st, 2, sha, -1, SQLITE_STATIC);
	if (sqlite3_step(st) != SQLITE_DONE)
		goto out_rollback;
	n = sqlite3_changes(q->db);
	sqlite3_finalize(st);
	st = NULL;
	if (sql_exec(q->db, "COMMIT") < 0) {
		if (!present)
			unlinkat(q->objfd, name, 0);
		goto out_rollback;
	}
	if (tfd >= 0) {
		close(tfd);
		if (present)
			unlinkat(q->objfd, tmpname, 0);
	}
	if (locked)
		flock(q->lockfd, LOCK_UN);
	pthread_mutex_unlock(&q->lock);
	return n;
out_rollback:
	sqlite3_finalize(st);
	sql_exec(q->db, "ROLLBACK");
out_tmp:
	if (tfd >= 0) {
		close(tfd);
		unlinkat(q->objfd, tmpname, 0);
	}
	if (locked)
		flock(q->lockfd, LOCK_UN);
out_unlock:
	pthread_mutex_unlock(&q->lock);
	return r;
}
