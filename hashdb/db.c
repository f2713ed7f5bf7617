/*
 * db.c - the SQLite hash database: opening with clear errors, versioned migrations, the
 * generation counter, lists, hashes and the allowlist.  Schema and error contract in db.h.
 *
 * Invariants: a handle opened HASHDB_RDONLY never writes (not even a migration or the WAL
 * switch); every write happens between hashdb_begin() and hashdb_commit(), and hashdb_commit()
 * bumps meta.generation in that same transaction, so a reader that sees a generation sees
 * exactly the data committed with it.
 * The lists are confidential: the database and its -wal/-shm are never readable by others
 * (see hashdb_secure_files), so no local user can read them or hold a lock on them.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "hashdb/db.h"

/*
 * Migration N takes a database at user_version N to N+1.  Append, never edit: files in the
 * field were created by the old steps.
 */
static const char *const migrations[] = {
	/* 0 -> 1: the first schema */
	"CREATE TABLE meta (key TEXT PRIMARY KEY NOT NULL, value) WITHOUT ROWID;"
	/*
	 * The generation starts at the creation time in microseconds, not at 1: a database
	 * deleted and created again must never repeat a generation a running daemon has seen.
	 */
	"INSERT INTO meta(key, value) VALUES "
	"  ('generation', CAST((julianday('now') - 2440587.5) * 86400000000.0 AS INTEGER)),"
	"  ('created', CAST(strftime('%s','now') AS INTEGER));"
	"CREATE TABLE lists ("
	"  id INTEGER PRIMARY KEY,"
	"  name TEXT NOT NULL UNIQUE,"
	"  origin TEXT,"
	"  category TEXT NOT NULL DEFAULT 'other',"
	"  version TEXT,"
	"  imported INTEGER NOT NULL,"
	"  updated INTEGER NOT NULL);"
	"CREATE TABLE hashes ("
	"  algo INTEGER NOT NULL CHECK (algo BETWEEN 0 AND 3),"
	"  value BLOB NOT NULL,"
	"  list_id INTEGER NOT NULL REFERENCES lists(id) ON DELETE CASCADE,"
	"  added INTEGER NOT NULL,"
	"  label TEXT,"
	"  PRIMARY KEY (algo, value, list_id)) WITHOUT ROWID;"
	"CREATE TABLE allowlist ("
	"  algo INTEGER NOT NULL CHECK (algo BETWEEN 0 AND 3),"
	"  value BLOB NOT NULL,"
	"  added INTEGER NOT NULL,"
	"  reason TEXT,"
	"  PRIMARY KEY (algo, value)) WITHOUT ROWID;",
	/*
	 * 1 -> 2: per-row metadata from list files (issue 17/18): the supplier's id of the row,
	 * a category that overrides the list's for this row (the matcher acts on it), and the
	 * PDQ quality the supplier computed.  NULL when the file had none.
	 */
	"ALTER TABLE hashes ADD COLUMN ref TEXT;"
	"ALTER TABLE hashes ADD COLUMN category TEXT;"
	"ALTER TABLE hashes ADD COLUMN quality INTEGER;",
	/*
	 * 2 -> 3: a list id is never given out again.  Without AUTOINCREMENT SQLite reused the
	 * id of the highest list after it was deleted, so a match found in a snapshot (which
	 * names its list by id: matcher_hit_meta) could read a newer list's row.  SQLite cannot
	 * add AUTOINCREMENT to a table, so lists is rebuilt with its ids; migrate() runs this
	 * with foreign keys off, or dropping the old table would delete every hash.  The
	 * sequence starts at the highest id kept: ids deleted above it before the upgrade are
	 * not known any more.  hashes is not touched (its REFERENCES names the table).
	 */
	"CREATE TABLE lists_new ("
	"  id INTEGER PRIMARY KEY AUTOINCREMENT,"
	"  name TEXT NOT NULL UNIQUE,"
	"  origin TEXT,"
	"  category TEXT NOT NULL DEFAULT 'other',"
	"  version TEXT,"
	"  imported INTEGER NOT NULL,"
	"  updated INTEGER NOT NULL);"
	"INSERT INTO lists_new(id, name, origin, category, version, imported, updated) "
	"  SELECT id, name, origin, category, version, imported, updated FROM lists;"
	"DROP TABLE lists;"
	"ALTER TABLE lists_new RENAME TO lists;",
};

_Static_assert(sizeof(migrations) / sizeof(migrations[0]) == HASHDB_SCHEMA_VERSION,
	       "one migration per schema version");

__attribute__((format(printf, 3, 4)))
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

#define DENIED_MSG "permission denied: the hash lists are confidential, readable only by " \
	"root and members of the group '" HASHDB_GROUP "' (run as root or add the user to it)"

static int map_rc(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOTADB:
	case SQLITE_CORRUPT:
		return -EBADMSG;
	case SQLITE_CANTOPEN:
		return -ENOENT;
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	default:
		return -EIO;
	}
}

int hashdb_sql_error(struct hashdb *db, int rc, const char *what, char *err, size_t errlen)
{
	int e = map_rc(rc);
	const char *msg = db->sql ? sqlite3_errmsg(db->sql) : sqlite3_errstr(rc);
	int sys = db->sql ? sqlite3_system_errno(db->sql) : 0;

	/* "unable to open database file" hides EACCES, EROFS and friends: say which */
	if ((rc & 0xff) == SQLITE_CANTOPEN && sys == EACCES) {
		seterr(err, errlen, "%s: %s", db->path, DENIED_MSG);
		return -sys;
	}
	if ((rc & 0xff) == SQLITE_CANTOPEN && sys > 0) {
		seterr(err, errlen, "%s: %s: %s", db->path, what, strerror(sys));
		return -sys;
	}
	if (e == -EBADMSG)
		seterr(err, errlen, "%s: not a valid hashgate database (%s)", db->path, msg);
	else if (e == -EBUSY)
		seterr(err, errlen, "%s: database is locked by another process (waited %d ms)",
		       db->path, db->busy_ms);
	else
		seterr(err, errlen, "%s: %s: %s", db->path, what, msg);
	return e ? e : -EIO;
}

/* Run SQL with no result rows. */
static int exec(struct hashdb *db, const char *sql, const char *what, char *err, size_t errlen)
{
	int rc = sqlite3_exec(db->sql, sql, NULL, NULL, NULL);

	if (rc != SQLITE_OK)
		return hashdb_sql_error(db, rc, what, err, errlen);
	return 0;
}

static int prepare(struct hashdb *db, const char *sql, sqlite3_stmt **st, char *err, size_t errlen)
{
	int rc = sqlite3_prepare_v2(db->sql, sql, -1, st, NULL);

	if (rc != SQLITE_OK)
		return hashdb_sql_error(db, rc, "prepare", err, errlen);
	return 0;
}

/* One integer from a single-row query, e.g. a PRAGMA. */
static int query_int(struct hashdb *db, const char *sql, int64_t *out, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	int r, rc;

	*out = 0;
	r = prepare(db, sql, &st, err, errlen);
	if (r < 0)
		return r;
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		*out = sqlite3_column_int64(st, 0);
		r = 0;
	} else if (rc == SQLITE_DONE) {
		r = -ENODATA;
		seterr(err, errlen, "%s: no result for %s", db->path, sql);
	} else {
		r = hashdb_sql_error(db, rc, "query", err, errlen);
	}
	sqlite3_finalize(st);
	return r;
}

/*
 * Runs with foreign keys off (hashdb_open turns them on after it): a migration that rebuilds
 * a table (2 -> 3) drops the old one, which would otherwise cascade to every row of hashes.
 * The pragma is a no-op inside a transaction, so it is set before BEGIN.
 */
static int migrate(struct hashdb *db, int from, char *err, size_t errlen)
{
	char sql[64];
	int64_t v;
	int r, i;

	r = exec(db, "PRAGMA foreign_keys = OFF", "disable foreign keys", err, errlen);
	if (r < 0)
		return r;
	r = exec(db, "BEGIN IMMEDIATE", "begin migration", err, errlen);
	if (r < 0)
		return r;
	/* Another process may have migrated while we waited for the lock. */
	r = query_int(db, "PRAGMA user_version", &v, err, errlen);
	if (r < 0)
		goto out_rollback;
	if (v != from) {
		from = (int)v;
		if (from > HASHDB_SCHEMA_VERSION) {
			r = -EPROTONOSUPPORT;
			seterr(err, errlen, "%s: schema version %d is newer than this hashgate "
			       "supports (%d); upgrade hashgate", db->path, from,
			       HASHDB_SCHEMA_VERSION);
			goto out_rollback;
		}
	}
	for (i = from; i < HASHDB_SCHEMA_VERSION; i++) {
		r = exec(db, migrations[i], "schema migration", err, errlen);
		if (r < 0)
			goto out_rollback;
	}
	snprintf(sql, sizeof(sql), "PRAGMA user_version = %d", HASHDB_SCHEMA_VERSION);
	r = exec(db, sql, "schema migration", err, errlen);
	if (r < 0)
		goto out_rollback;
	if (from > 0) {
		r = exec(db, "UPDATE meta SET value = value + 1 WHERE key = 'generation'",
			 "schema migration", err, errlen);
		if (r < 0)
			goto out_rollback;
	}
	return exec(db, "COMMIT", "commit migration", err, errlen);
out_rollback:
	sqlite3_exec(db->sql, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

int hashdb_group(gid_t *gid)
{
	struct group gr, *res = NULL;
	char buf[4096];

	if (getgrnam_r(HASHDB_GROUP, &gr, buf, sizeof(buf), &res) != 0 || !res)
		return -ENOENT;
	*gid = gr.gr_gid;
	return 0;
}

/*
 * Tighten one file we (root) own: group HASHDB_GROUP and 0640, or 0600 without the group.
 * Through an O_PATH descriptor only: closing any ordinary descriptor of a database file drops
 * every POSIX lock this process holds on it (SQLite's WAL locks included), and O_PATH ones are
 * exempt.  chmod goes through /proc/self/fd because fchmod refuses O_PATH descriptors.
 */
static int secure_one(const char *path, bool have_group, gid_t gid)
{
	char proc[64];
	struct stat st;
	mode_t want;
	int fd, r = 0;

	fd = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT ? 0 : -errno;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
		close(fd);		/* not ours to change: e.g. a database an admin keeps */
		return 0;
	}
	if (have_group && st.st_gid != gid &&
	    fchownat(fd, "", (uid_t)-1, gid, AT_EMPTY_PATH) < 0)
		r = -errno;
	want = (st.st_mode & 07777) & (have_group ? 0640 : 0600);
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	if (r == 0 && (st.st_mode & 07777) != want && chmod(proc, want) < 0)
		r = -errno;
	close(fd);
	return r;
}

int hashdb_secure_files(const char *path)
{
	static const char *const sfx[] = { "", "-wal", "-shm", "-journal" };
	char name[4096];
	gid_t gid = 0;
	bool have_group = hashdb_group(&gid) == 0;
	int r = 0, e;

	for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		if (snprintf(name, sizeof(name), "%s%s", path, sfx[i]) >= (int)sizeof(name))
			return -ENAMETOOLONG;
		e = secure_one(name, have_group, gid);
		if (e < 0 && r == 0)
			r = e;
	}
	return r;
}

/*
 * Create the database file before SQLite does (SQLite would create it 0644): root-owned,
 * group HASHDB_GROUP 0640, or 0600 without that group.  SQLite gives the -wal and -shm files
 * it creates later the database file's mode and owner.
 */
static int create_private(const char *path, char *err, size_t errlen)
{
	gid_t gid = 0;
	bool have_group = hashdb_group(&gid) == 0;
	int fd, r = 0;

	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		if (errno == EEXIST)
			return 0;
		r = -errno;
		seterr(err, errlen, "%s: cannot create: %s", path, strerror(-r));
		return r;
	}
	if (have_group && geteuid() == 0 && (fchown(fd, (uid_t)-1, gid) < 0 ||
					      fchmod(fd, 0640) < 0))
		r = -errno;
	close(fd);
	if (r < 0) {
		unlink(path);
		seterr(err, errlen, "%s: cannot set group %s: %s", path, HASHDB_GROUP,
		       strerror(-r));
	}
	return r;
}

int hashdb_open(struct hashdb *db, const char *path, unsigned flags, char *err, size_t errlen)
{
	struct stat stbuf;
	int64_t v, ntables;
	int oflags, rc, r;

	memset(db, 0, sizeof(*db));
	db->flags = flags;
	db->path = strdup(path ? path : "");
	if (!db->path)
		return -ENOMEM;
	if (!path || !*path) {
		seterr(err, errlen, "no database path given");
		r = -EINVAL;
		goto out_free;
	}
	r = 0;
	if (stat(path, &stbuf) < 0) {
		r = -errno;
		if (r != -ENOENT || !(flags & HASHDB_CREATE) || (flags & HASHDB_RDONLY)) {
			if (r == -ENOENT)
				seterr(err, errlen, "%s: no such database (create it with "
				       "'hashgate db init')", path);
			else if (r == -EACCES)
				seterr(err, errlen, "%s: %s", path, DENIED_MSG);
			else
				seterr(err, errlen, "%s: %s", path, strerror(-r));
			goto out_free;
		}
	} else if (!S_ISREG(stbuf.st_mode)) {
		seterr(err, errlen, "%s: not a regular file", path);
		r = -EISDIR;
		goto out_free;
	}
	if (r == -ENOENT) {
		r = create_private(path, err, errlen);
		if (r < 0)
			goto out_free;
	}
	oflags = SQLITE_OPEN_NOMUTEX;
	if (flags & HASHDB_RDONLY)
		oflags |= SQLITE_OPEN_READONLY;
	else
		oflags |= SQLITE_OPEN_READWRITE | ((flags & HASHDB_CREATE) ? SQLITE_OPEN_CREATE : 0);
	rc = sqlite3_open_v2(path, &db->sql, oflags, NULL);
	if (rc != SQLITE_OK) {
		r = hashdb_sql_error(db, rc, "open", err, errlen);
		goto out_close;
	}
	sqlite3_extended_result_codes(db->sql, 0);
	hashdb_set_busy_timeout(db, (flags & HASHDB_NOWAIT) ? 0 : HASHDB_BUSY_TIMEOUT_MS);
	/* The first read parses the header: a non-database file fails here with NOTADB. */
	r = query_int(db, "PRAGMA user_version", &v, err, errlen);
	if (r < 0)
		goto out_close;
	if (v > HASHDB_SCHEMA_VERSION) {
		seterr(err, errlen, "%s: schema version %lld is newer than this hashgate supports "
		       "(%d); upgrade hashgate", path, (long long)v, HASHDB_SCHEMA_VERSION);
		r = -EPROTONOSUPPORT;
		goto out_close;
	}
	if (v == 0) {
		r = query_int(db, "SELECT count(*) FROM sqlite_master", &ntables, err, errlen);
		if (r < 0)
			goto out_close;
		if (ntables > 0) {
			seterr(err, errlen, "%s: an SQLite database, but not a hashgate one", path);
			r = -ENODATA;
			goto out_close;
		}
		if (!(flags & HASHDB_CREATE) || (flags & HASHDB_RDONLY)) {
			seterr(err, errlen, "%s: database not initialised (run 'hashgate db init')",
			       path);
			r = -ENODATA;
			goto out_close;
		}
	} else if (v < HASHDB_SCHEMA_VERSION && (flags & HASHDB_RDONLY)) {
		seterr(err, errlen, "%s: schema version %lld is older than %d; run 'hashgate db "
		       "init' to upgrade it", path, (long long)v, HASHDB_SCHEMA_VERSION);
		r = -EPROTO;
		goto out_close;
	}
	if (!(flags & HASHDB_RDONLY)) {
		/* Bigger pages: fewer B-tree levels and less per-page overhead for 10M rows. */
		if (v == 0)
			exec(db, "PRAGMA page_size = 8192", "set page size", NULL, 0);
		/* WAL: readers (daemons) never block on the writer and vice versa. */
		r = exec(db, "PRAGMA journal_mode = WAL", "set WAL mode", err, errlen);
		if (r < 0)
			goto out_close;
		/*
		 * Keep the -wal and -shm files when the last writer closes: a reader that may not
		 * create files in the directory (a non-root admin, a daemon running unprivileged) can
		 * only open a WAL database read-only when they exist.
		 */
		{
			int on = 1;

			sqlite3_file_control(db->sql, "main", SQLITE_FCNTL_PERSIST_WAL, &on);
		}
		/* After a 10M-row import, do not keep a WAL of the same size around forever. */
		exec(db, "PRAGMA journal_size_limit = 67108864", "limit WAL size", NULL, 0);
		/* In WAL mode NORMAL loses at most the last commit on power failure, never integrity. */
		r = exec(db, "PRAGMA synchronous = NORMAL", "set synchronous", err, errlen);
		if (r < 0)
			goto out_close;
		if (v < HASHDB_SCHEMA_VERSION) {
			r = migrate(db, (int)v, err, errlen);
			if (r < 0)
				goto out_close;
		}
		r = exec(db, "PRAGMA foreign_keys = ON", "enable foreign keys", err, errlen);
		if (r < 0)
			goto out_close;
	} else {
		r = exec(db, "PRAGMA query_only = 1", "set query-only", err, errlen);
		if (r < 0)
			goto out_close;
	}
	/*
	 * Files made by older versions (0644, world-readable and lockable by anyone): tighten
	 * them.  Only root can set the group; a failure (read-only file system) is no reason
	 * to refuse the database.
	 */
	if (geteuid() == 0)
		hashdb_secure_files(path);
	return 0;
out_close:
	sqlite3_close(db->sql);
	db->sql = NULL;
out_free:
	free(db->path);
	db->path = NULL;
	return r;
}

void hashdb_set_busy_timeout(struct hashdb *db, int ms)
{
	db->busy_ms = ms;
	sqlite3_busy_timeout(db->sql, ms);
}

void hashdb_close(struct hashdb *db)
{
	if (db->sql) {
		if (db->in_txn)
			sqlite3_exec(db->sql, "ROLLBACK", NULL, NULL, NULL);
		sqlite3_close(db->sql);
	}
	free(db->path);
	memset(db, 0, sizeof(*db));
}

int hashdb_schema_version(struct hashdb *db)
{
	int64_t v;

	if (query_int(db, "PRAGMA user_version", &v, NULL, 0) < 0)
		return -EIO;
	return (int)v;
}

int hashdb_generation(struct hashdb *db, uint64_t *gen, char *err, size_t errlen)
{
	int64_t v;
	int r;

	r = query_int(db, "SELECT value FROM meta WHERE key = 'generation'", &v, err, errlen);
	if (r < 0)
		return r;
	*gen = (uint64_t)v;
	return 0;
}

int hashdb_read_generation(const char *path, uint64_t *gen, char *err, size_t errlen)
{
	struct hashdb db;
	int r;

	r = hashdb_open(&db, path, HASHDB_RDONLY, err, errlen);
	if (r < 0)
		return r;
	r = hashdb_generation(&db, gen, err, errlen);
	hashdb_close(&db);
	return r;
}

int hashdb_begin(struct hashdb *db, char *err, size_t errlen)
{
	int r;

	if (db->flags & HASHDB_RDONLY) {
		seterr(err, errlen, "%s: opened read-only", db->path);
		return -EROFS;
	}
	if (db->in_txn) {
		seterr(err, errlen, "%s: transaction already open", db->path);
		return -EINVAL;
	}
	r = exec(db, "BEGIN IMMEDIATE", "begin transaction", err, errlen);
	if (r < 0)
		return r;
	db->in_txn = 1;
	return 0;
}

int hashdb_commit(struct hashdb *db, char *err, size_t errlen)
{
	int r;

	if (!db->in_txn) {
		seterr(err, errlen, "%s: no transaction open", db->path);
		return -EINVAL;
	}
	r = exec(db, "UPDATE meta SET value = value + 1 WHERE key = 'generation'",
		 "bump generation", err, errlen);
	if (r < 0)
		goto out_rollback;
	r = exec(db, "COMMIT", "commit", err, errlen);
	if (r < 0)
		goto out_rollback;
	db->in_txn = 0;
	return 0;
out_rollback:
	hashdb_rollback(db);
	return r;
}

void hashdb_rollback(struct hashdb *db)
{
	if (db->sql && db->in_txn)
		sqlite3_exec(db->sql, "ROLLBACK", NULL, NULL, NULL);
	db->in_txn = 0;
}

static int need_txn(struct hashdb *db, char *err, size_t errlen)
{
	if (db->in_txn)
		return 0;
	seterr(err, errlen, "%s: change outside a transaction", db->path);
	return -EINVAL;
}

int hashdb_valid_name(const char *s, size_t maxlen)
{
	size_t n;

	for (n = 0; s[n]; n++) {
		char c = s[n];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '.' || c == '_' || c == '-'))
			return 0;
	}
	return n > 0 && n <= maxlen && s[0] != '-' && s[0] != '.';
}

static void copy_col(char *dst, size_t dstlen, sqlite3_stmt *st, int col)
{
	const unsigned char *s = sqlite3_column_text(st, col);

	snprintf(dst, dstlen, "%s", s ? (const char *)s : "");
}

static void fill_list(struct hashdb_list *l, sqlite3_stmt *st)
{
	memset(l, 0, sizeof(*l));
	l->id = sqlite3_column_int64(st, 0);
	copy_col(l->name, sizeof(l->name), st, 1);
	copy_col(l->category, sizeof(l->category), st, 2);
	copy_col(l->origin, sizeof(l->origin), st, 3);
	copy_col(l->version, sizeof(l->version), st, 4);
	l->imported = sqlite3_column_int64(st, 5);
	l->updated = sqlite3_column_int64(st, 6);
}

#define LIST_COLS "id, name, category, origin, version, imported, updated"

int hashdb_list_get(struct hashdb *db, const char *name, struct hashdb_list *out,
		    char *err, size_t errlen)
{
	sqlite3_stmt *st;
	int r, rc;

	memset(out, 0, sizeof(*out));
	r = prepare(db, "SELECT " LIST_COLS " FROM lists WHERE name = ?", &st, err, errlen);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		fill_list(out, st);
		r = 0;
	} else if (rc == SQLITE_DONE) {
		seterr(err, errlen, "%s: no list named '%s'", db->path, name);
		r = -ENOENT;
	} else {
		r = hashdb_sql_error(db, rc, "read list", err, errlen);
	}
	sqlite3_finalize(st);
	return r;
}

static int step_done(struct hashdb *db, sqlite3_stmt *st, const char *what, char *err,
		     size_t errlen)
{
	int rc = sqlite3_step(st);

	if (rc == SQLITE_DONE || rc == SQLITE_ROW)
		return 0;
	return hashdb_sql_error(db, rc, what, err, errlen);
}

static void bind_opt_text(sqlite3_stmt *st, int i, const char *s)
{
	if (s)
		sqlite3_bind_text(st, i, s, -1, SQLITE_STATIC);
	else
		sqlite3_bind_null(st, i);
}

int hashdb_list_ensure(struct hashdb *db, const char *name, const char *category,
		       const char *origin, const char *version, int64_t *id,
		       char *err, size_t errlen)
{
	sqlite3_stmt *st;
	int64_t now = (int64_t)time(NULL);
	int r;

	r = need_txn(db, err, errlen);
	if (r < 0)
		return r;
	if (!hashdb_valid_name(name, HASHDB_NAME_MAX)) {
		seterr(err, errlen, "invalid list name '%s' (1-%d of A-Z a-z 0-9 . _ -)", name,
		       HASHDB_NAME_MAX);
		return -EINVAL;
	}
	if (category && !hashdb_valid_name(category, HASHDB_CATEGORY_MAX)) {
		seterr(err, errlen, "invalid category '%s' (1-%d of A-Z a-z 0-9 . _ -)", category,
		       HASHDB_CATEGORY_MAX);
		return -EINVAL;
	}
	r = prepare(db,
		    "INSERT INTO lists(name, category, origin, version, imported, updated) "
		    "VALUES (?1, coalesce(?2, 'other'), ?3, ?4, ?5, ?5) "
		    "ON CONFLICT(name) DO UPDATE SET category = coalesce(?2, category), "
		    "origin = coalesce(?3, origin), version = coalesce(?4, version), updated = ?5 "
		    "RETURNING id", &st, err, errlen);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
	bind_opt_text(st, 2, category);
	bind_opt_text(st, 3, origin);
	bind_opt_text(st, 4, version);
	sqlite3_bind_int64(st, 5, now);
	r = sqlite3_step(st);
	if (r == SQLITE_ROW) {
		*id = sqlite3_column_int64(st, 0);
		r = step_done(db, st, "update list", err, errlen);
	} else {
		r = hashdb_sql_error(db, r, "update list", err, errlen);
	}
	sqlite3_finalize(st);
	return r;
}

int hashdb_list_delete(struct hashdb *db, const char *name, char *err, size_t errlen)
{
	struct hashdb_list l;
	sqlite3_stmt *st;
	int r;

	r = need_txn(db, err, errlen);
	if (r < 0)
		return r;
	r = hashdb_list_get(db, name, &l, err, errlen);
	if (r < 0)
		return r;
	r = prepare(db, "DELETE FROM hashes WHERE list_id = ?", &st, err, errlen);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, l.id);
	r = step_done(db, st, "delete list hashes", err, errlen);
	sqlite3_finalize(st);
	if (r < 0)
		return r;
	r = prepare(db, "DELETE FROM lists WHERE id = ?", &st, err, errlen);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, l.id);
	r = step_done(db, st, "delete list", err, errlen);
	sqlite3_finalize(st);
	return r;
}

int hashdb_lists(struct hashdb *db, bool with_counts, struct hashdb_list **out, size_t *n,
		 char *err, size_t errlen)
{
	struct hashdb_list *v = NULL, *nv;
	sqlite3_stmt *st = NULL, *cnt = NULL;
	size_t len = 0, cap = 0, k;
	int r, rc;

	r = prepare(db, "SELECT " LIST_COLS " FROM lists ORDER BY name", &st, err, errlen);
	if (r < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		if (len == cap) {
			cap = cap ? cap * 2 : 16;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				r = -ENOMEM;
				goto out_free;
			}
			v = nv;
		}
		fill_list(&v[len++], st);
	}
	if (rc != SQLITE_DONE) {
		r = hashdb_sql_error(db, rc, "read lists", err, errlen);
		goto out_free;
	}
	if (with_counts && len) {
		/*
		 * One scan of the table, counted here: there is no list_id index (it would double
		 * the cost of every import), and GROUP BY list_id would sort all rows.
		 */
		size_t last = 0;

		r = prepare(db, "SELECT list_id, algo FROM hashes", &cnt, err, errlen);
		if (r < 0)
			goto out_free;
		while ((rc = sqlite3_step(cnt)) == SQLITE_ROW) {
			int64_t id = sqlite3_column_int64(cnt, 0);
			int a = sqlite3_column_int(cnt, 1);

			if (a < 0 || a >= HASH_NALGOS)
				continue;
			if (v[last].id != id) {
				for (k = 0; k < len && v[k].id != id; k++)
					;
				if (k == len)
					continue;
				last = k;
			}
			v[last].count[a]++;
		}
		if (rc != SQLITE_DONE) {
			r = hashdb_sql_error(db, rc, "count hashes", err, errlen);
			goto out_free;
		}
	}
	sqlite3_finalize(cnt);
	sqlite3_finalize(st);
	*out = v;
	*n = len;
	return 0;
out_free:
	sqlite3_finalize(cnt);
	sqlite3_finalize(st);
	free(v);
	return r;
}

static int check_value(struct hashdb *db, enum hash_algo algo, char *err, size_t errlen)
{
	if ((int)algo < 0 || algo >= HASH_NALGOS) {
		seterr(err, errlen, "%s: invalid hash algorithm %d", db->path, (int)algo);
		return -EINVAL;
	}
	return 0;
}

static size_t algo_len(enum hash_algo algo)
{
	static const size_t len[HASH_NALGOS] = { 16, 20, 32, 32 };

	return (int)algo >= 0 && algo < HASH_NALGOS ? len[algo] : 0;
}

int hashdb_hash_add(struct hashdb *db, int64_t list_id, enum hash_algo algo,
		    const uint8_t *value, const char *label, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	int r, added;

	r = need_txn(db, err, errlen);
	if (r < 0)
		return r;
	r = check_value(db, algo, err, errlen);
	if (r < 0)
		return r;
	r = prepare(db, "INSERT OR IGNORE INTO hashes(algo, value, list_id, added, label) "
		    "VALUES (?, ?, ?, ?, ?)", &st, err, errlen);
	if (r < 0)
		return r;
	sqlite3_bind_int(st, 1, algo);
	sqlite3_bind_blob(st, 2, value, (int)algo_len(algo), SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, list_id);
	sqlite3_bind_int64(st, 4, (int64_t)time(NULL));
	bind_opt_text(st, 5, label);
	r = step_done(db, st, "add hash", err, errlen);
	sqlite3_finalize(st);
	if (r < 0)
		return r;
	added = sqlite3_changes(db->sql) > 0;
	if (!added && label) {
		r = prepare(db, "UPDATE hashes SET label = ? WHERE algo = ? AND value = ? "
			    "AND list_id = ?", &st, err, errlen);
		if (r < 0)
			return r;
		sqlite3_bind_text(st, 1, label, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, algo);
		sqlite3_bind_blob(st, 3, value, (int)algo_len(algo), SQLITE_STATIC);
		sqlite3_bind_int64(st, 4, list_id);
		r = step_done(db, st, "update label", err, errlen);
		sqlite3_finalize(st);
		if (r < 0)
			return r;
	}
	return added;
}

int hashdb_hash_remove(struct hashdb *db, int64_t list_id, enum hash_algo algo,
		       const uint8_t *value, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	int r;

	r = need_txn(db, err, errlen);
	if (r < 0)
		return r;
	r = check_value(db, algo, err, errlen);
	if (r < 0)
		return r;
	r = prepare(db, list_id >= 0 ?
		    "DELETE FROM hashes WHERE algo = ?1 AND value = ?2 AND list_id = ?3" :
		    "DELETE FROM hashes WHERE algo = ?1 AND value = ?2", &st, err, errlen);
	if (r < 0)
		return r;
	sqlite3_bind_int(st, 1, algo);
	sqlite3_bind_blob(st, 2, value, (int)algo_len(algo), SQLITE_STATIC);
	if (list_id >= 0)
		sqlite3_bind_int64(st, 3, list_id);
	r = step_done(db, st, "remove hash", err, errlen);
	sqlite3_finalize(st);
	if (r < 0)
		return r;
	return sqlite3_changes(db->sql);
}

static int walk_hashes(struct hashdb *db, sqlite3_stmt *st,
		       int (*fn)(const struct hashdb_entry *e, void *arg), void *arg,
		       char *err, size_t errlen)
{
	struct hashdb_entry e;
	int rc, r, n = 0;

	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		e.algo = (enum hash_algo)sqlite3_column_int(st, 0);
		e.value = sqlite3_column_blob(st, 1);
		if (e.algo >= HASH_NALGOS || !e.value ||
		    (size_t)sqlite3_column_bytes(st, 1) != algo_len(e.algo)) {
			seterr(err, errlen, "%s: corrupt hash row (algo %d, %d bytes)", db->path,
			       (int)e.algo, sqlite3_column_bytes(st, 1));
			return -EBADMSG;
		}
		e.list_id = sqlite3_column_int64(st, 2);
		e.added = sqlite3_column_int64(st, 3);
		e.label = (const char *)sqlite3_column_text(st, 4);
		e.list = (const char *)sqlite3_column_text(st, 5);
		e.ref = (const char *)sqlite3_column_text(st, 6);
		e.category = (const char *)sqlite3_column_text(st, 7);
		e.quality = sqlite3_column_type(st, 8) == SQLITE_NULL ? -1 :
			    sqlite3_column_int(st, 8);
		n++;
		if (fn) {
			r = fn(&e, arg);
			if (r)
				return r;
		}
	}
	if (rc != SQLITE_DONE)
		return hashdb_sql_error(db, rc, "read hashes", err, errlen);
	return n;
}

int hashdb_hashes_foreach(struct hashdb *db, int64_t list_id, int algo,
			  int (*fn)(const struct hashdb_entry *e, void *arg), void *arg,
			  char *err, size_t errlen)
{
	sqlite3_stmt *st;
	int r;

	r = prepare(db, "SELECT h.algo, h.value, h.list_id, h.added, h.label, l.name, h.ref, h.category, "
		    "h.quality "
		    "FROM hashes h JOIN lists l ON l.id = h.list_id "
		    "WHERE (?1 < 0 OR h.list_id = ?1) AND (?2 < 0 OR h.algo = ?2) "
		    "ORDER BY h.algo, h.value, h.list_id", &st, err, errlen);
	if (r < 0)
		return r;
	sqlite3_bind_int64(st, 1, list_id);
	sqlite3_bind_int(st, 2, algo);
	r = walk_hashes(db, st, fn, arg, err, errlen);
	sqlite3_finalize(st);
	return r;
}

int hashdb_hash_find(struct hashdb *db, enum hash_algo algo, const uint8_t *value,
		     int (*fn)(const struct hashdb_entry *e, void *arg), void *arg,
		     char *err, size_t errlen)
{
	return hashdb_hash_find_in(db, -1, algo, value, fn, arg, err, errlen);
}

int hashdb_hash_find_in(struct hashdb *db, int64_t list_id, enum hash_algo algo,
			const uint8_t *value,
			int (*fn)(const struct hashdb_entry *e, void *arg), void *arg,
			char *err, size_t errlen)
{
	sqlite3_stmt *st;
	int r;

	r = check_value(db, algo, err, errlen);
	if (r < 0)
		return r;
	r = prepare(db, "SELECT h.algo, h.value, h.list_id, h.added, h.label, l.name, h.ref, h.category, "
		    "h.quality "
		    "FROM hashes h JOIN lists l ON l.id = h.list_id "
		    "WHERE h.algo = ?1 AND h.value = ?2 AND (?3 < 0 OR h.list_id = ?3) "
		    "ORDER BY l.name", &st, err, errlen);
	if (r < 0)
		return r;
	sqlite3_bind_int(st, 1, algo);
	sqlite3_bind_blob(st, 2, value, (int)algo_len(algo), SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, list_id);
	r = walk_hashes(db, st, fn, arg, err, errlen);
	sqlite3_finalize(st);
	return r;
}

int hashdb_allow_add(struct hashdb *db, enum hash_algo algo, const uint8_t *value,
		     const char *reason, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	int r, added;

	r = need_txn(db, err, errlen);
	if (r < 0)
		return r;
	r = check_value(db, algo, err, errlen);
	if (r < 0)
		return r;
	r = prepare(db, "INSERT OR IGNORE INTO allowlist(algo, value, added, reason) "
		    "VALUES (?, ?, ?, ?)", &st, err, errlen);
	if (r < 0)
		return r;
	sqlite3_bind_int(st, 1, algo);
	sqlite3_bind_blob(st, 2, value, (int)algo_len(algo), SQLITE_STATIC);
	sqlite3_bind_int64(st, 3, (int64_t)time(NULL));
	bind_opt_text(st, 4, reason);
	r = step_done(db, st, "allow hash", err, errlen);
	sqlite3_finalize(st);
	if (r < 0)
		return r;
	added = sqlite3_changes(db->sql) > 0;
	if (!added && reason) {
		r = prepare(db, "UPDATE allowlist SET reason = ? WHERE algo = ? AND value = ?",
			    &st, err, errlen);
		if (r < 0)
			return r;
		sqlite3_bind_text(st, 1, reason, -1, SQLITE_STATIC);
		sqlite3_bind_int(st, 2, algo);
		sqlite3_bind_blob(st, 3, value, (int)algo_len(algo), SQLITE_STATIC);
		r = step_done(db, st, "update reason", err, errlen);
		sqlite3_finalize(st);
		if (r < 0)
			return r;
	}
	return added;
}

int hashdb_allow_remove(struct hashdb *db, enum hash_algo algo, const uint8_t *value,
			char *err, size_t errlen)
{
	sqlite3_stmt *st;
	int r;

	r = need_txn(db, err, errlen);
	if (r < 0)
		return r;
	r = check_value(db, algo, err, errlen);
	if (r < 0)
		return r;
	r = prepare(db, "DELETE FROM allowlist WHERE algo = ? AND value = ?", &st, err, errlen);
	if (r < 0)
		return r;
	sqlite3_bind_int(st, 1, algo);
	sqlite3_bind_blob(st, 2, value, (int)algo_len(algo), SQLITE_STATIC);
	r = step_done(db, st, "remove from allowlist", err, errlen);
	sqlite3_finalize(st);
	if (r < 0)
		return r;
	return sqlite3_changes(db->sql);
}

int hashdb_allow_foreach(struct hashdb *db,
			 int (*fn)(const struct hashdb_allow *a, void *arg), void *arg,
			 char *err, size_t errlen)
{
	struct hashdb_allow a;
	sqlite3_stmt *st;
	int r, rc;

	r = prepare(db, "SELECT algo, value, added, reason FROM allowlist ORDER BY algo, value",
		    &st, err, errlen);
	if (r < 0)
		return r;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		a.algo = (enum hash_algo)sqlite3_column_int(st, 0);
		a.value = sqlite3_column_blob(st, 1);
		if (a.algo >= HASH_NALGOS || !a.value ||
		    (size_t)sqlite3_column_bytes(st, 1) != algo_len(a.algo)) {
			seterr(err, errlen, "%s: corrupt allowlist row", db->path);
			r = -EBADMSG;
			goto out;
		}
		a.added = sqlite3_column_int64(st, 2);
		a.reason = (const char *)sqlite3_column_text(st, 3);
		r = fn(&a, arg);
		if (r)
			goto out;
	}
	r = rc == SQLITE_DONE ? 0 : hashdb_sql_error(db, rc, "read allowlist", err, errlen);
out:
	sqlite3_finalize(st);
	return r;
}

int hashdb_stats(struct hashdb *db, struct hashdb_stats *s, char *err, size_t errlen)
{
	static const char *const counts[] = {
		"SELECT algo, count(*) FROM hashes GROUP BY algo",
		"SELECT algo, count(*) FROM allowlist GROUP BY algo",
	};
	sqlite3_stmt *st;
	struct stat sb;
	char wal[4096];
	int64_t v;
	int r, rc, i;

	memset(s, 0, sizeof(*s));
	r = hashdb_generation(db, &s->generation, err, errlen);
	if (r < 0)
		return r;
	s->schema = hashdb_schema_version(db);
	r = query_int(db, "SELECT value FROM meta WHERE key = 'created'", &s->created, err, errlen);
	if (r < 0)
		return r;
	r = query_int(db, "SELECT count(*) FROM lists", &v, err, errlen);
	if (r < 0)
		return r;
	s->lists = (uint64_t)v;
	for (i = 0; i < 2; i++) {
		r = prepare(db, counts[i], &st, err, errlen);
		if (r < 0)
			return r;
		while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
			int a = sqlite3_column_int(st, 0);

			if (a >= 0 && a < HASH_NALGOS)
				(i ? s->allow : s->hashes)[a] = (uint64_t)sqlite3_column_int64(st, 1);
		}
		sqlite3_finalize(st);
		if (rc != SQLITE_DONE)
			return hashdb_sql_error(db, rc, "count", err, errlen);
	}
	if (stat(db->path, &sb) == 0)
		s->file_bytes += (uint64_t)sb.st_size;
	snprintf(wal, sizeof(wal), "%s-wal", db->path);
	if (stat(wal, &sb) == 0)
		s->file_bytes += (uint64_t)sb.st_size;
	return 0;
}

static int copy_meta(const struct hashdb_entry *e, void *arg)
{
	struct hashdb_rowmeta *m = arg;

	snprintf(m->ref, sizeof(m->ref), "%s", e->ref ? e->ref : "");
	snprintf(m->label, sizeof(m->label), "%s", e->label ? e->label : "");
	snprintf(m->category, sizeof(m->category), "%s", e->category ? e->category : "");
	m->quality = e->quality;
	return 1;
}

int hashdb_row_meta(struct hashdb *db, int64_t list_id, enum hash_algo algo,
		    const uint8_t *value, struct hashdb_rowmeta *out, char *err, size_t errlen)
{
	int r;

	memset(out, 0, sizeof(*out));
	out->quality = -1;
	r = hashdb_hash_find_in(db, list_id, algo, value, copy_meta, out, err, errlen);
	if (r < 0)
		return r;
	if (r == 0) {
		seterr(err, errlen, "%s: no such row", db->path);
		return -ENOENT;
	}
	return 0;
}

/* Main file + WAL bytes on disk. */
static uint64_t file_bytes(const char *path)
{
	struct stat sb;
	char wal[4096];
	uint64_t n = 0;

	if (stat(path, &sb) == 0)
		n += (uint64_t)sb.st_size;
	snprintf(wal, sizeof(wal), "%s-wal", path);
	if (stat(wal, &sb) == 0)
		n += (uint64_t)sb.st_size;
	return n;
}

int hashdb_compact(struct hashdb *db, uint64_t *before, uint64_t *after, char *err,
		   size_t errlen)
{
	int r;

	if (db->in_txn || (db->flags & HASHDB_RDONLY)) {
		seterr(err, errlen, "%s: compact needs a read-write handle outside a transaction",
		       db->path);
		return -EINVAL;
	}
	*before = file_bytes(db->path);
	/* A checkpoint first, so the VACUUM's copy is not of a WAL-sized file. */
	sqlite3_exec(db->sql, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
	r = exec(db, "VACUUM", "compact", err, errlen);
	if (r < 0)
		return r;
	/* Readers holding an old snapshot can keep the WAL from being truncated: not an error. */
	sqlite3_exec(db->sql, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL);
	*after = file_bytes(db->path);
	return 0;
}

static int meta_key_ok(struct hashdb *db, const char *key, char *err, size_t errlen)
{
	if (!key || !*key || !strcmp(key, "generation") || !strcmp(key, "created")) {
		seterr(err, errlen, "%s: meta key '%s' is reserved", db->path, key ? key : "");
		return -EINVAL;
	}
	return 0;
}

int hashdb_meta_get(struct hashdb *db, const char *key, char **val, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	int r, rc;

	*val = NULL;
	r = meta_key_ok(db, key, err, errlen);
	if (r < 0)
		return r;
	r = prepare(db, "SELECT value FROM meta WHERE key = ?", &st, err, errlen);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	rc = sqlite3_step(st);
	if (rc == SQLITE_ROW) {
		const unsigned char *t = sqlite3_column_text(st, 0);

		*val = strdup(t ? (const char *)t : "");
		r = *val ? 0 : -ENOMEM;
	} else if (rc == SQLITE_DONE) {
		r = -ENOENT;
	} else {
		r = hashdb_sql_error(db, rc, "read meta", err, errlen);
	}
	sqlite3_finalize(st);
	return r;
}

int hashdb_meta_set(struct hashdb *db, const char *key, const char *val, char *err,
		    size_t errlen)
{
	sqlite3_stmt *st;
	int own = !db->in_txn, r;

	r = meta_key_ok(db, key, err, errlen);
	if (r < 0)
		return r;
	if (db->flags & HASHDB_RDONLY) {
		seterr(err, errlen, "%s: opened read-only", db->path);
		return -EROFS;
	}
	if (own) {
		/* Not hashdb_begin/commit: this change must not bump the generation. */
		r = exec(db, "BEGIN IMMEDIATE", "begin transaction", err, errlen);
		if (r < 0)
			return r;
	}
	r = prepare(db, val ? "INSERT INTO meta(key, value) VALUES (?1, ?2) "
			      "ON CONFLICT(key) DO UPDATE SET value = ?2" :
			"DELETE FROM meta WHERE key = ?1", &st, err, errlen);
	if (r < 0)
		goto out;
	sqlite3_bind_text(st, 1, key, -1, SQLITE_STATIC);
	if (val)
		sqlite3_bind_text(st, 2, val, -1, SQLITE_STATIC);
	r = step_done(db, st, "write meta", err, errlen);
	sqlite3_finalize(st);
	if (r == 0 && own)
		r = exec(db, "COMMIT", "commit", err, errlen);
out:
	if (r < 0 && own)
		sqlite3_exec(db->sql, "ROLLBACK", NULL, NULL, NULL);
	return r;
}

int hashdb_meta_foreach(struct hashdb *db, const char *prefix,
			int (*fn)(const char *key, const char *val, void *arg), void *arg,
			char *err, size_t errlen)
{
	sqlite3_stmt *st;
	int r, rc;

	r = prepare(db, "SELECT key, value FROM meta WHERE substr(key, 1, length(?1)) = ?1 "
		    "AND key NOT IN ('generation', 'created') ORDER BY key", &st, err, errlen);
	if (r < 0)
		return r;
	sqlite3_bind_text(st, 1, prefix ? prefix : "", -1, SQLITE_STATIC);
	r = 0;
	while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
		const char *k = (const char *)sqlite3_column_text(st, 0);
		const char *v = (const char *)sqlite3_column_text(st, 1);

		r = fn(k ? k : "", v ? v : "", arg);
		if (r)
			break;
	}
	if (!r && rc != SQLITE_DONE)
		r = hashdb_sql_error(db, rc, "read meta", err, errlen);
	sqlite3_finalize(st);
	return r;
}
