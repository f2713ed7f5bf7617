/*
 * audit.c - the append-only, hash-chained audit log (one JSON object per line).
 *
 * Line format (2): BODY + ",\"hash\":\"H\"}\n" where BODY is
 *   {"seq":N,"time":T,"actor":"A","action":"X"[,"data":{FIELDS}],"prev":"P"
 * and H = hex SHA-256 of BODY's bytes.  P is the previous line's H (64 zeros for the first), so
 * every line commits to all before it: an edited line fails its own hash, a deleted or
 * reordered line breaks the next one's prev or seq.  (Cutting lines off the end cannot be seen
 * from the file alone; `hashgate log verify` prints the last hash so it can be kept elsewhere.)
 *
 * The record's own members (a verdict's "action", an allowlist change's "hash") live in the
 * nested "data" object, so no object has a duplicate key.  Format 1 (before 0.2) put them at
 * the top level; its lines end the same way and verify unchanged.
 *
 * The chain members are found by position only, never by searching for their names:
 * every line ends with the fixed 149-byte tail ,"prev":"P","hash":"H"} and chain_parse() is the
 * one parser of it, used by append (to chain onto the last line) and by verify.  (Format-1 logs
 * jammed after an allowlist record because the two searched differently.)
 *
 * Invariants: an append holds an exclusive flock on the log from reading the last line to the
 * fsync of its own, and writes the line with one write(2) on an O_APPEND fd, so concurrent
 * writers (daemon threads, daemon and CLI) always chain onto the true last line.  A torn last
 * line (crash mid-write, no newline) was never acknowledged to its writer (the fsync had not
 * returned), so the next append cuts it off instead of gluing a record onto it.
 *
 * The log stays open from audit_open to audit_close, so an append needs no new descriptor: a
 * daemon out of them still records the match it just refused (its verdict was made with
 * descriptors it held; the record used to fail with EMFILE and was lost).  The name decides
 * which file is written: when it no longer names the open file (moved away, removed), the
 * next append opens the name again.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "hashdb/audit.h"

#define AUDIT_ZERO \
	"0000000000000000000000000000000000000000000000000000000000000000"
#define AUDIT_TAIL_MAX	(1024 * 1024)	/* longest line we chain onto */
/* The fixed end of every line: ,"prev":"<64 hex>","hash":"<64 hex>"} */
#define PREV_MARK	",\"prev\":\""
#define HASH_MARK	"\",\"hash\":\""
#define TAIL_LEN	(sizeof(PREV_MARK) - 1 + 64 + sizeof(HASH_MARK) - 1 + 64 + 2)

struct audit {
	pthread_mutex_t lock;
	char *path;
	int fd;				/* the log, O_RDWR | O_APPEND; under lock */
};

#define AUDIT_OPEN_FLAGS	(O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC | O_NOFOLLOW)

static void seterr(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* The seq of a record line: it must start {"seq":N, with N a decimal number. */
static int parse_seq(const char *line, uint64_t *seq)
{
	char *end;

	if (strncmp(line, "{\"seq\":", 7) != 0 || line[7] < '0' || line[7] > '9')
		return -1;
	errno = 0;
	*seq = strtoull(line + 7, &end, 10);
	return errno || *end != ',' ? -1 : 0;
}

static int sha256_hex(const void *buf, size_t len, char out[65])
{
	static const char xd[] = "0123456789abcdef";
	uint8_t md[32];
	unsigned mdlen = 0;

	if (EVP_Digest(buf, len, md, &mdlen, EVP_sha256(), NULL) != 1 || mdlen != 32)
		return -EIO;
	for (int i = 0; i < 32; i++) {
		out[2 * i] = xd[md[i] >> 4];
		out[2 * i + 1] = xd[md[i] & 15];
	}
	out[64] = '\0';
	return 0;
}

static int is_hex64(const char *s)
{
	for (int i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

/*
 * The chain members of one record line (len bytes, no newline): seq, and pointers to the 64
 * hex digits of prev and hash inside line; *bodylen is how many leading bytes the hash
 * covers.  NULL, or why the line is not a record.
 */
static const char *chain_parse(const char *line, size_t len, uint64_t *seq, const char **prev,
			       const char **hash, size_t *bodylen)
{
	const char *t;

	if (parse_seq(line, seq) < 0)
		return "not an audit record";
	if (len < TAIL_LEN + 8)
		return "malformed chain members (prev, hash)";
	t = line + len - TAIL_LEN;
	if (memcmp(t, PREV_MARK, sizeof(PREV_MARK) - 1) != 0 ||
	    memcmp(t + sizeof(PREV_MARK) - 1 + 64, HASH_MARK, sizeof(HASH_MARK) - 1) != 0 ||
	    memcmp(line + len - 2, "\"}", 2) != 0)
		return "malformed chain members (prev, hash)";
	*prev = t + sizeof(PREV_MARK) - 1;
	*hash = *prev + 64 + sizeof(HASH_MARK) - 1;
	if (!is_hex64(*prev) || !is_hex64(*hash))
		return "malformed chain members (prev, hash)";
	*bodylen = (size_t)(*prev + 65 - line);
	return NULL;
}

/* JSON string escape (with quotes); bytes >= 0x80 pass through (UTF-8 assumed). */
static int json_str(char **buf, size_t *len, size_t *cap, const char *s)
{
	size_t need = 2 + 6 * strlen(s) + 1;
	char *p;

	if (*len + need > *cap) {
		size_t ncap = (*len + need) * 2;
		char *nb = realloc(*buf, ncap);

		if (!nb)
			return -ENOMEM;
		*buf = nb;
		*cap = ncap;
	}
	p = *buf + *len;
	*p++ = '"';
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if (*c == '"' || *c == '\\') {
			*p++ = '\\';
			*p++ = (char)*c;
		} else if (*c < 0x20 || *c == 0x7f) {
			p += sprintf(p, "\\u%04x", *c);
		} else {
			*p++ = (char)*c;
		}
	}
	*p++ = '"';
	*p = '\0';
	*len = (size_t)(p - *buf);
	return 0;
}

int audit_open(struct audit **out, const char *path, char *err, size_t errlen)
{
	struct audit *a;
	int fd;

	*out = NULL;
	/* Created now so a bad path is reported at startup, not at the first verdict. */
	fd = open(path, AUDIT_OPEN_FLAGS, 0600);
	if (fd < 0) {
		int r = -errno;

		seterr(err, errlen, "audit log %s: %s", path, strerror(-r));
		return r;
	}
	a = calloc(1, sizeof(*a));
	if (!a)
		goto err_close;
	a->fd = fd;
	a->path = strdup(path);
	if (!a->path || pthread_mutex_init(&a->lock, NULL) != 0)
		goto err_free;
	*out = a;
	return 0;

err_free:
	free(a->path);
	free(a);
err_close:
	close(fd);
	return -ENOMEM;
}

void audit_close(struct audit *a)
{
	if (!a)
		return;
	close(a->fd);
	pthread_mutex_destroy(&a->lock);
	free(a->path);
	free(a);
}

/*
 * Find the last complete line of fd (size bytes): its seq and hash.  Empty file: seq 0 and the
 * zero hash.  *torn = 1 when the file does not end in a newline.
 */
static int read_tail(int fd, off_t size, uint64_t *seq, char hash[65], int *torn)
{
	size_t want = size < AUDIT_TAIL_MAX ? (size_t)size : AUDIT_TAIL_MAX;
	char *buf, *end, *start;
	const char *p, *h;
	size_t bodylen;
	ssize_t got;
	int r = -EBADMSG;

	*seq = 0;
	memcpy(hash, AUDIT_ZERO, 65);
	*torn = 0;
	if (size == 0)
		return 0;
	buf = malloc(want + 1);
	if (!buf)
		return -ENOMEM;
	got = pread(fd, buf, want, size - (off_t)want);
	if (got != (ssize_t)want) {
		r = got < 0 ? -errno : -EIO;
		goto out;
	}
	buf[want] = '\0';
	end = buf + want;
	if (end[-1] != '\n') {
		*torn = 1;
		while (end > buf && end[-1] != '\n')
			end--;
		if (end == buf) {
			/* Only a torn fragment (or a line longer than we look back). */
			r = (off_t)want == size ? 0 : -EBADMSG;
			goto out;
		}
	}
	*--end = '\0';			/* drop the newline */
	start = end;
	while (start > buf && start[-1] != '\n')
		start--;
	if (start == buf && (off_t)want != size)
		goto out;		/* line longer than AUDIT_TAIL_MAX */
	if (chain_parse(start, (size_t)(end - start), seq, &p, &h, &bodylen))
		goto out;
	memcpy(hash, h, 64);
	hash[64] = '\0';
	r = 0;
out:
	free(buf);
	return r;
}

int audit_check_tail(const char *path, uint64_t *seq, char *err, size_t errlen)
{
	char hash[65];
	struct stat st;
	int fd, r, torn;

	*seq = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		r = -errno;
		seterr(err, errlen, "%s: %s", path, strerror(-r));
		return r;
	}
	flock(fd, LOCK_SH);
	r = fstat(fd, &st) < 0 ? -errno : read_tail(fd, st.st_size, seq, hash, &torn);
	close(fd);
	if (r == -EBADMSG)
		seterr(err, errlen, "%s: the last line is not an audit record: appends fail "
		       "(run 'hashgate log verify')", path);
	else if (r < 0)
		seterr(err, errlen, "%s: %s", path, strerror(-r));
	return r;
}

/*
 * a->fd, reopened when the name no longer leads to it (under a->lock).  lstat needs no
 * descriptor; a log moved between this check and the write gets the record, as it did when
 * the log was opened per append.
 */
static int log_fd(struct audit *a)
{
	struct stat ps, fs;
	int fd;

	if (lstat(a->path, &ps) == 0 && fstat(a->fd, &fs) == 0 && ps.st_dev == fs.st_dev &&
	    ps.st_ino == fs.st_ino)
		return 0;
	fd = open(a->path, AUDIT_OPEN_FLAGS, 0600);
	if (fd < 0)
		return -errno;
	close(a->fd);
	a->fd = fd;
	return 0;
}

int audit_append(struct audit *a, const char *actor, const char *action, const char *fields)
{
	char prev[65], hash[65];
	char *line = NULL;
	size_t len = 0, cap = 0;
	uint64_t seq;
	struct stat st;
	int fd, r, torn;

	pthread_mutex_lock(&a->lock);
	r = log_fd(a);
	if (r < 0)
		goto out_unlock;
	fd = a->fd;
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR) {
			r = -errno;
			goto out_unlock;
		}
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out_close;
	}
	r = read_tail(fd, st.st_size, &seq, prev, &torn);
	if (r < 0)
		goto out_close;
	if (torn) {
		off_t keep = st.st_size;
		char c;

		while (keep > 0 && pread(fd, &c, 1, keep - 1) == 1 && c != '\n')
			keep--;
		if (ftruncate(fd, keep) < 0) {
			r = -errno;
			goto out_close;
		}
	}
	cap = 256 + (fields ? strlen(fields) : 0) + 6 * (strlen(actor) + strlen(action));
	line = malloc(cap);
	if (!line) {
		r = -ENOMEM;
		goto out_close;
	}
	len = (size_t)snprintf(line, cap, "{\"seq\":%" PRIu64 ",\"time\":%lld,\"actor\":",
			       seq + 1, (long long)time(NULL));
	if ((r = json_str(&line, &len, &cap, actor)) < 0)
		goto out_free;
	len += (size_t)snprintf(line + len, cap - len, ",\"action\":");
	if ((r = json_str(&line, &len, &cap, action)) < 0)
		goto out_free;
	if (len + (fields ? strlen(fields) : 0) + 200 > cap) {
		char *nl;

		cap = len + (fields ? strlen(fields) : 0) + 200;
		nl = realloc(line, cap);
		if (!nl) {
			r = -ENOMEM;
			goto out_free;
		}
		line = nl;
	}
	if (fields && *fields)
		len += (size_t)snprintf(line + len, cap - len, ",\"data\":{%s}", fields);
	len += (size_t)snprintf(line + len, cap - len, ",\"prev\":\"%s\"", prev);
	r = sha256_hex(line, len, hash);
	if (r < 0)
		goto out_free;
	len += (size_t)snprintf(line + len, cap - len, ",\"hash\":\"%s\"}\n", hash);
	/* One write on O_APPEND: the line lands whole and after every earlier line. */
	if (write(fd, line, len) != (ssize_t)len) {
		r = -EIO;
		goto out_free;
	}
	r = fsync(fd) < 0 ? -errno : 0;
out_free:
	free(line);
out_close:
	flock(fd, LOCK_UN);
out_unlock:
	pthread_mutex_unlock(&a->lock);
	return r;
}

/* Check one line (NUL-terminated, no newline) against the chain state. */
static const char *check_line(char *line, uint64_t want_seq, char prev[65])
{
	char body_hash[65];
	const char *p, *h, *why;
	size_t bodylen;
	uint64_t seq;

	why = chain_parse(line, strlen(line), &seq, &p, &h, &bodylen);
	if (why)
		return why;
	if (seq != want_seq)
		return "sequence number out of order (a record was removed or inserted)";
	if (sha256_hex(line, bodylen, body_hash) < 0)
		return "cannot compute SHA-256";
	if (memcmp(body_hash, h, 64) != 0)
		return "hash mismatch (the record was modified)";
	if (memcmp(p, prev, 64) != 0)
		return "prev hash does not match the previous record (a record was removed)";
	memcpy(prev, h, 64);
	prev[64] = '\0';
	return NULL;
}

int audit_verify_last(const char *path, uint64_t *nrecords, char last_hash[65], char *err,
		      size_t errlen)
{
	char prev[65] = AUDIT_ZERO;
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	uint64_t lineno = 0;
	FILE *f;
	int r = 0;

	*nrecords = 0;
	f = fopen(path, "re");
	if (!f) {
		r = -errno;
		seterr(err, errlen, "%s: %s", path, strerror(-r));
		return r;
	}
	/* A shared lock: we see whole lines, never an append in progress. */
	flock(fileno(f), LOCK_SH);
	while ((n = getline(&line, &cap, f)) > 0) {
		const char *why;

		lineno++;
		if (line[n - 1] != '\n') {
			seterr(err, errlen, "%s:%" PRIu64 ": incomplete last record (torn write)",
			       path, lineno);
			r = -EBADMSG;
			break;
		}
		line[n - 1] = '\0';
		if (memchr(line, '\0', (size_t)n - 1)) {
			why = "NUL byte in record";
		} else {
			why = check_line(line, lineno, prev);
		}
		if (why) {
			seterr(err, errlen, "%s:%" PRIu64 ": %s", path, lineno, why);
			r = -EBADMSG;
			break;
		}
	}
	if (r == 0 && ferror(f)) {
		r = -EIO;
		seterr(err, errlen, "%s: read error", path);
	}
	free(line);
	fclose(f);
	if (r == 0) {
		*nrecords = lineno;
		if (last_hash)
			memcpy(last_hash, prev, 65);
	}
	return r;
}

int audit_verify(const char *path, uint64_t *nrecords, char *err, size_t errlen)
{
	return audit_verify_last(path, nrecords, NULL, err, errlen);
}
