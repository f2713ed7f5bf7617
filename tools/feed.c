/*
 * feed.c - list feeds: configuration files, state in the database, HTTPS fetch with libcurl,
 * Ed25519 / SHA-256 checks with OpenSSL, and applying the body with the import library.
 * Contract and invariants in feed.h.
 *
 * Why libcurl (not a hand-written HTTP client): TLS with the system CA store or a pinned CA,
 * client certificates, proxies from the environment (http_proxy, https_proxy, no_proxy),
 * HTTP/2, redirects, transfer decoding and conditional GET are all there, with decades of
 * hardening against hostile servers.  Bodies go to an unnamed temporary file (O_TMPFILE), so
 * nothing half-downloaded is left behind and the import reads it through /proc/self/fd.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <zlib.h>

#include "hashdb/config.h"
#include "hashdb/hash.h"
#include "hashdb/import.h"
#include "tools/adm.h"
#include "tools/dbcli.h"
#include "tools/feed.h"

#define FEED_LINE_MAX	4096
#define SIG_MAX		4096
#define STATE_PREFIX	"feed:"
#define STATE_KEY_MAX	128
#define STATE_MAX	2048

__attribute__((format(printf, 3, 4)))
static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

/* ---- configuration ---------------------------------------------------------------------- */

void feed_init(struct feed *f)
{
	memset(f, 0, sizeof(*f));
	f->algo = -1;
	f->format = IMPORT_AUTO;
	f->every = 3600;
	f->timeout = 300;
	f->stale_after = 3 * 86400;
	f->retry_wait = 5;
	f->max_size = 1ull << 30;
	f->retries = 3;
}

void feed_release(struct feed *f)
{
	free(f->name);
	free(f->conf);
	free(f->url);
	free(f->list);
	free(f->category);
	free(f->key);
	free(f->ca_file);
	free(f->client_cert);
	free(f->client_key);
	free(f->token_file);
	memset(f, 0, sizeof(*f));
}

static int set_str(char **dst, const char *v)
{
	char *s = *v ? strdup(v) : NULL;

	if (*v && !s)
		return -ENOMEM;
	free(*dst);
	*dst = s;
	return 0;
}

int feed_set(struct feed *f, const char *key, const char *v, char *err, size_t errlen)
{
	struct { const char *name; char **dst; bool path; } strs[] = {
		{ "key", &f->key, true }, { "ca_file", &f->ca_file, true },
		{ "client_cert", &f->client_cert, true }, { "client_key", &f->client_key, true },
		{ "token_file", &f->token_file, true },
	};
	struct { const char *name; int64_t *dst; } durs[] = {
		{ "every", &f->every }, { "timeout", &f->timeout },
		{ "stale_after", &f->stale_after }, { "retry_wait", &f->retry_wait },
	};
	int64_t d;
	uint64_t sz;
	bool b;
	int r;

	/* A line break would end the value in NAME.conf and start another key. */
	for (const char *p = v; *p; p++)
		if (iscntrl((unsigned char)*p) && *p != '\t')
			return fail(err, errlen, "%s: control characters are not allowed", key);
	if (!strcmp(key, "url")) {
		if (strncasecmp(v, "https://", 8) != 0 && strncasecmp(v, "http://", 7) != 0)
			return fail(err, errlen, "url: '%s' is not an http:// or https:// URL", v);
		return set_str(&f->url, v);
	}
	if (!strcmp(key, "list")) {
		if (!hashdb_valid_name(v, HASHDB_NAME_MAX))
			return fail(err, errlen, "list: invalid name '%s' (1-%d of A-Z a-z 0-9 . _ -)",
				    v, HASHDB_NAME_MAX);
		return set_str(&f->list, v);
	}
	if (!strcmp(key, "category")) {
		if (*v && !hashdb_valid_name(v, HASHDB_CATEGORY_MAX))
			return fail(err, errlen, "category: invalid category '%s'", v);
		return set_str(&f->category, v);
	}
	if (!strcmp(key, "type")) {
		if (!*v) {
			f->algo = -1;
			return 0;
		}
		for (int a = 0; a < HASH_NALGOS; a++) {
			if (!strcasecmp(v, hash_algo_name((enum hash_algo)a))) {
				f->algo = a;
				return 0;
			}
		}
		return fail(err, errlen, "type: unknown hash type '%s' (md5, sha1, sha256, pdq)", v);
	}
	if (!strcmp(key, "format")) {
		if (!*v || !strcmp(v, "auto")) {
			f->format = IMPORT_AUTO;
			return 0;
		}
		r = import_format_parse(v);
		if (r < 0)
			return fail(err, errlen, "format: unknown format '%s' (plain, csv, jsonl)", v);
		f->format = r;
		return 0;
	}
	if (!strcmp(key, "mode")) {
		if (strcmp(v, "full") != 0 && strcmp(v, "delta") != 0)
			return fail(err, errlen, "mode: '%s' is neither full nor delta", v);
		f->delta = !strcmp(v, "delta");
		return 0;
	}
	if (!strcmp(key, "checksum")) {
		if (config_parse_bool(v, &b) < 0)
			return fail(err, errlen, "checksum: expected on or off, not '%s'", v);
		f->checksum = b;
		return 0;
	}
	if (!strcmp(key, "max_size")) {
		if (config_parse_size(v, &sz) < 0 || sz == 0)
			return fail(err, errlen, "max_size: expected a size such as 512M, not '%s'", v);
		f->max_size = sz;
		return 0;
	}
	if (!strcmp(key, "retries")) {
		char *end;
		long n = strtol(v, &end, 10);

		if (!*v || *end || n < 0 || n > 20)
			return fail(err, errlen, "retries: expected 0 to 20, not '%s'", v);
		f->retries = (int)n;
		return 0;
	}
	for (size_t i = 0; i < sizeof(durs) / sizeof(durs[0]); i++) {
		if (strcmp(key, durs[i].name) != 0)
			continue;
		if (config_parse_duration(v, &d) < 0)
			return fail(err, errlen, "%s: expected a duration such as 1h, 30m, 3d, not '%s'",
				    key, v);
		*durs[i].dst = d;
		return 0;
	}
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		if (strcmp(key, strs[i].name) != 0)
			continue;
		if (*v && strs[i].path && *v != '/')
			return fail(err, errlen, "%s: '%s' is not an absolute path", key, v);
		return set_str(strs[i].dst, v);
	}
	snprintf(err, errlen, "unknown key '%s'", key);
	return -ENOENT;
}

int feed_load(struct feed *f, const char *dir, const char *name, char *err, size_t errlen)
{
	char path[4096], *line = NULL, *k, *v;
	const char *syntax;
	unsigned long lineno = 0;
	size_t cap = 0;
	ssize_t n;
	FILE *fp;
	int r = 0;

	feed_init(f);
	if (!hashdb_valid_name(name, HASHDB_NAME_MAX))
		return fail(err, errlen, "invalid feed name '%s' (1-%d of A-Z a-z 0-9 . _ -)", name,
			    HASHDB_NAME_MAX);
	snprintf(path, sizeof(path), "%s/%s.conf", dir, name);
	fp = fopen(path, "re");
	if (!fp) {
		r = -errno;
		snprintf(err, errlen, r == -ENOENT ? "no feed named '%s' (%s does not exist)" :
			 "%s: %s", r == -ENOENT ? name : path, r == -ENOENT ? path : strerror(-r));
		return r;
	}
	if (!(f->name = strdup(name)) || !(f->conf = strdup(path))) {
		r = -ENOMEM;
		goto out;
	}
	while ((n = getline(&line, &cap, fp)) >= 0) {
		char why[512];

		lineno++;
		if (n > FEED_LINE_MAX || strlen(line) != (size_t)n) {
			r = fail(err, errlen, "%s:%lu: line too long or has a NUL byte", path, lineno);
			goto out;
		}
		r = config_split_line(line, &k, &v, &syntax);
		if (r < 0) {
			r = fail(err, errlen, "%s:%lu: %s", path, lineno, syntax);
			goto out;
		}
		if (r == 0)
			continue;
		r = feed_set(f, k, v, why, sizeof(why));
		if (r < 0) {
			snprintf(err, errlen, "%s:%lu: %s", path, lineno, why);
			r = -EINVAL;
			goto out;
		}
	}
	r = feed_check(f, err, errlen);
	if (r < 0) {
		char tmp[512];

		snprintf(tmp, sizeof(tmp), "%s", err);
		snprintf(err, errlen, "%s: %s", path, tmp);
	}
out:
	free(line);
	fclose(fp);
	if (r < 0)
		feed_release(f);
	return r;
}

static EVP_PKEY *load_pubkey(const char *path, char *err, size_t errlen)
{
	EVP_PKEY *k;
	FILE *fp = fopen(path, "re");

	if (!fp) {
		snprintf(err, errlen, "key %s: %s", path, strerror(errno));
		return NULL;
	}
	k = PEM_read_PUBKEY(fp, NULL, NULL, NULL);
	fclose(fp);
	if (!k) {
		snprintf(err, errlen, "key %s: not a PEM public key", path);
		return NULL;
	}
	if (EVP_PKEY_id(k) != EVP_PKEY_ED25519) {
		snprintf(err, errlen, "key %s: not an Ed25519 key (make one with 'hashgate feed "
			 "keygen')", path);
		EVP_PKEY_free(k);
		return NULL;
	}
	return k;
}

int feed_check(const struct feed *f, char *err, size_t errlen)
{
	if (!f->url)
		return fail(err, errlen, "no url");
	if (!f->list)
		return fail(err, errlen, "no list");
	if (f->delta && f->format != IMPORT_AUTO && f->format != IMPORT_JSONL)
		return fail(err, errlen, "mode = delta takes JSON lines (format = jsonl)");
	if (!!f->client_cert != !!f->client_key)
		return fail(err, errlen, "client_cert and client_key go together");
	if (f->key) {
		EVP_PKEY *k = load_pubkey(f->key, err, errlen);

		if (!k)
			return -EINVAL;
		EVP_PKEY_free(k);
	}
	return 0;
}

/*
 * A value is read back by config_split_line: one that holds a '#' (a URL fragment, a path),
 * starts with a quote or has white space at either end is written in quotes, which keep it
 * whole (the quoted value runs to the line's last quote).  feed_set refuses line breaks.
 */
static void put_kv(FILE *fp, const char *k, const char *v)
{
	size_t n;

	if (!v)
		return;
	n = strlen(v);
	if (strchr(v, '#') || *v == '"' ||
	    (n && (isspace((unsigned char)v[0]) || isspace((unsigned char)v[n - 1]))))
		fprintf(fp, "%s = \"%s\"\n", k, v);
	else
		fprintf(fp, "%s = %s\n", k, v);
}

static void put_dur(FILE *fp, const char *k, int64_t v)
{
	fprintf(fp, "%s = %llds\n", k, (long long)v);
}

int feed_save(const struct feed *f, const char *dir, bool excl, char *err, size_t errlen)
{
	char path[4096], tmp[4200];
	FILE *fp;
	int fd, r;

	if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
		r = -errno;
		snprintf(err, errlen, "%s: cannot create: %s", dir, strerror(-r));
		return r;
	}
	snprintf(path, sizeof(path), "%s/%s.conf", dir, f->name);
	if (excl && access(path, F_OK) == 0) {
		snprintf(err, errlen, "feed '%s' exists already (%s)", f->name, path);
		return -EEXIST;
	}
	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
	/*
	 * 0644: no secret in it (a token or client key is only named, its file is the admin's),
	 * and `hashgate status` run by a member of group hashgate reads it for the feed's age.
	 */
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0 || !(fp = fdopen(fd, "w"))) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		snprintf(err, errlen, "%s: %s", tmp, strerror(-r));
		return r;
	}
	fprintf(fp, "# hashgate list feed %s (hashgate.conf(5), FEEDS)\n", f->name);
	put_kv(fp, "url", f->url);
	put_kv(fp, "list", f->list);
	put_kv(fp, "category", f->category);
	if (f->algo >= 0)
		put_kv(fp, "type", hash_algo_name((enum hash_algo)f->algo));
	if (f->format != IMPORT_AUTO)
		put_kv(fp, "format", f->format == IMPORT_CSV ? "csv" :
		       f->format == IMPORT_JSONL ? "jsonl" : "plain");
	put_kv(fp, "mode", f->delta ? "delta" : "full");
	put_kv(fp, "key", f->key);
	if (f->checksum)
		put_kv(fp, "checksum", "on");
	put_kv(fp, "ca_file", f->ca_file);
	put_kv(fp, "client_cert", f->client_cert);
	put_kv(fp, "client_key", f->client_key);
	put_kv(fp, "token_file", f->token_file);
	put_dur(fp, "every", f->every);
	put_dur(fp, "timeout", f->timeout);
	put_dur(fp, "stale_after", f->stale_after);
	put_dur(fp, "retry_wait", f->retry_wait);
	fprintf(fp, "retries = %d\nmax_size = %llu\n", f->retries,
		(unsigned long long)f->max_size);
	if (fflush(fp) != 0 || fsync(fileno(fp)) != 0) {
		r = -errno;
		fclose(fp);
		unlink(tmp);
		snprintf(err, errlen, "%s: %s", tmp, strerror(-r));
		return r;
	}
	fclose(fp);
	chmod(tmp, 0644);	/* whatever the umask */
	if (rename(tmp, path) < 0) {
		r = -errno;
		unlink(tmp);
		snprintf(err, errlen, "%s: %s", path, strerror(-r));
		return r;
	}
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void feed_names_free(char **names, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

int feed_names(const char *dir, char ***names, size_t *n, char *err, size_t errlen)
{
	struct dirent *de;
	char **v = NULL, **nv;
	size_t len = 0;
	DIR *d;

	*names = NULL;
	*n = 0;
	d = opendir(dir);
	if (!d) {
		if (errno == ENOENT)
			return 0;
		snprintf(err, errlen, "%s: %s", dir, strerror(errno));
		return -errno;
	}
	while ((de = readdir(d))) {
		size_t l = strlen(de->d_name);
		char *s;

		if (l <= 5 || strcmp(de->d_name + l - 5, ".conf") != 0)
			continue;
		s = strndup(de->d_name, l - 5);
		if (!s || !hashdb_valid_name(s, HASHDB_NAME_MAX)) {
			free(s);
			continue;
		}
		nv = realloc(v, (len + 1) * sizeof(*v));
		if (!nv) {
			free(s);
			closedir(d);
			feed_names_free(v, len);
			return -ENOMEM;
		}
		v = nv;
		v[len++] = s;
	}
	closedir(d);
	if (len)
		qsort(v, len, sizeof(*v), cmp_str);
	*names = v;
	*n = len;
	return 0;
}

/* ---- state ------------------------------------------------------------------------------ */

int feed_state_get(struct hashdb *db, const char *name, struct feed_state *st, char *err,
		   size_t errlen)
{
	char key[128], *val = NULL, *line, *save = NULL;
	int r;

	memset(st, 0, sizeof(*st));
	snprintf(key, sizeof(key), STATE_PREFIX "%s", name);
	r = hashdb_meta_get(db, key, &val, err, errlen);
	if (r < 0)
		return r;
	for (line = strtok_r(val, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *eq = strchr(line, '=');

		if (!eq)
			continue;
		*eq++ = '\0';
#define S(k) else if (!strcmp(line, #k)) snprintf(st->k, sizeof(st->k), "%s", eq)
#define I(k) else if (!strcmp(line, #k)) st->k = strtoll(eq, NULL, 10)
		if (0) {}
		S(etag); S(last_modified); S(sha256); S(error);
		I(cursor); I(last_ok); I(last_change); I(last_attempt); I(failures);
#undef S
#undef I
	}
	free(val);
	return 0;
}

/* Values are single lines: a server's header or an error can never add a key. */
static void put_line(char *buf, size_t len, size_t *o, const char *k, const char *v)
{
	int w = snprintf(buf + *o, *o < len ? len - *o : 0, "%s=", k);

	*o += w > 0 ? (size_t)w : 0;
	for (; *v && *o + 2 < len; v++)
		buf[(*o)++] = *v == '\n' || *v == '\r' ? ' ' : *v;
	if (*o + 1 < len)
		buf[(*o)++] = '\n';
	buf[*o < len ? *o : len - 1] = '\0';
}

/* The meta row of a feed's state: key and value (the format feed_state_get reads). */
static void state_row(const char *name, const struct feed_state *st, char key[STATE_KEY_MAX],
		      char buf[STATE_MAX])
{
	char num[32];
	size_t o = 0;

	snprintf(key, STATE_KEY_MAX, STATE_PREFIX "%s", name);
	buf[0] = '\0';
	put_line(buf, STATE_MAX, &o, "etag", st->etag);
	put_line(buf, STATE_MAX, &o, "last_modified", st->last_modified);
	put_line(buf, STATE_MAX, &o, "sha256", st->sha256);
	put_line(buf, STATE_MAX, &o, "error", st->error);
#define I(k) snprintf(num, sizeof(num), "%lld", (long long)st->k); \
	put_line(buf, STATE_MAX, &o, #k, num)
	I(cursor); I(last_ok); I(last_change); I(last_attempt); I(failures);
#undef I
}

int feed_state_put(struct hashdb *db, const char *name, const struct feed_state *st, char *err,
		   size_t errlen)
{
	char key[STATE_KEY_MAX], buf[STATE_MAX];

	state_row(name, st, key, buf);
	return hashdb_meta_set(db, key, buf, err, errlen);
}

int feed_state_delete(struct hashdb *db, const char *name, char *err, size_t errlen)
{
	char key[128];

	snprintf(key, sizeof(key), STATE_PREFIX "%s", name);
	return hashdb_meta_set(db, key, NULL, err, errlen);
}

/* ---- Ed25519 ---------------------------------------------------------------------------- */

int feed_keygen(const char *priv_path, const char *pub_path, char *err, size_t errlen)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
	FILE *fp = NULL;
	int fd, r = 0;

	if (!k)
		return fail(err, errlen, "cannot generate an Ed25519 key");
	fd = open(priv_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || !(fp = fdopen(fd, "w"))) {
		r = -errno;
		if (fd >= 0)
			close(fd);
		snprintf(err, errlen, "%s: %s", priv_path, strerror(-r));
		goto out;
	}
	if (!PEM_write_PrivateKey(fp, k, NULL, NULL, 0, NULL, NULL) || fclose(fp) != 0) {
		fp = NULL;
		r = fail(err, errlen, "%s: cannot write the private key", priv_path);
		unlink(priv_path);
		goto out;
	}
	fp = fopen(pub_path, "wxe");
	if (!fp) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", pub_path, strerror(-r));
		unlink(priv_path);
		goto out;
	}
	if (!PEM_write_PUBKEY(fp, k) || fclose(fp) != 0) {
		r = fail(err, errlen, "%s: cannot write the public key", pub_path);
		unlink(priv_path);
		unlink(pub_path);
	}
out:
	EVP_PKEY_free(k);
	return r;
}

/* The whole file, mapped read-only (empty files: *p = NULL, *len = 0). */
static int map_fd(int fd, const void **p, size_t *len)
{
	struct stat sb;

	if (fstat(fd, &sb) < 0)
		return -errno;
	*len = (size_t)sb.st_size;
	*p = NULL;
	if (!*len)
		return 0;
	*p = mmap(NULL, *len, PROT_READ, MAP_PRIVATE, fd, 0);
	if (*p == MAP_FAILED) {
		*p = NULL;
		return -errno;
	}
	return 0;
}

int feed_sign(const char *priv_path, const char *file, const char *sig_path, char *err,
	      size_t errlen)
{
	unsigned char sig[64], b64[128];
	size_t siglen = sizeof(sig), len = 0;
	const void *data = NULL;
	EVP_MD_CTX *ctx = NULL;
	EVP_PKEY *k = NULL;
	FILE *fp;
	int fd = -1, r;

	fp = fopen(priv_path, "re");
	if (!fp) {
		r = -errno;
		snprintf(err, errlen, "%s: %s", priv_path, strerror(-r));
		return r;
	}
	k = PEM_read_PrivateKey(fp, NULL, NULL, NULL);
	fclose(fp);
	if (!k || EVP_PKEY_id(k) != EVP_PKEY_ED25519) {
		r = fail(err, errlen, "%s: not an Ed25519 private key in PEM", priv_path);
		goto out;
	}
	fd = open(file, O_RDONLY | O_CLOEXEC);
	r = fd < 0 ? -errno : map_fd(fd, &data, &len);
	if (r < 0) {
		snprintf(err, errlen, "%s: %s", file, strerror(-r));
		goto out;
	}
	ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestSignInit(ctx, NULL, NULL, NULL, k) != 1 ||
	    EVP_DigestSign(ctx, sig, &siglen, data ? data : (const void *)"", len) != 1) {
		r = fail(err, errlen, "%s: signing failed", file);
		goto out;
	}
	EVP_EncodeBlock(b64, sig, (int)siglen);
	fp = fopen(sig_path, "we");
	if (!fp || fprintf(fp, "%s\n", b64) < 0 || fclose(fp) != 0) {
		r = -EIO;
		snprintf(err, errlen, "%s: cannot write the signature", sig_path);
		goto out;
	}
	r = 0;
out:
	if (data)
		munmap((void *)data, len);
	if (fd >= 0)
		close(fd);
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(k);
	return r;
}

int feed_verify(const char *pub_path, const void *data, size_t len, const void *sigdata,
		size_t siglen, char *err, size_t errlen)
{
	unsigned char raw[SIG_MAX], text[SIG_MAX + 1];
	const unsigned char *sig = sigdata;
	EVP_MD_CTX *ctx = NULL;
	EVP_PKEY *k;
	size_t n = siglen;
	int r;

	if (siglen != 64) {
		/* base64 text: trim white space, then decode (padding makes 66 -> 64 bytes) */
		size_t t = 0;
		int d;

		if (siglen > SIG_MAX)
			return fail(err, errlen, "signature file too large (%zu bytes)", siglen);
		for (size_t i = 0; i < siglen; i++)
			if (!isspace(sig[i]))
				text[t++] = sig[i];
		text[t] = '\0';
		d = EVP_DecodeBlock(raw, text, (int)t);
		if (d < 0 || t % 4)
			return fail(err, errlen, "signature is neither 64 bytes nor base64");
		while (t && text[t - 1] == '=' && d > 0) {
			t--;
			d--;
		}
		if (d != 64)
			return fail(err, errlen, "signature has %d bytes, an Ed25519 one has 64", d);
		sig = raw;
		n = 64;
	}
	k = load_pubkey(pub_path, err, errlen);
	if (!k)
		return -EINVAL;
	ctx = EVP_MD_CTX_new();
	if (!ctx || EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, k) != 1) {
		r = fail(err, errlen, "cannot set up Ed25519 verification");
		goto out;
	}
	if (EVP_DigestVerify(ctx, sig, n, data ? data : (const void *)"", len) != 1) {
		r = -EBADMSG;
		snprintf(err, errlen, "signature does not verify with key %s", pub_path);
		goto out;
	}
	r = 0;
out:
	EVP_MD_CTX_free(ctx);
	EVP_PKEY_free(k);
	return r;
}

/* ---- fetching --------------------------------------------------------------------------- */

/* An unnamed temporary file: nothing is left behind whatever happens to this process. */
static int tmp_fd(char *err, size_t errlen)
{
	const char *dir = getenv("TMPDIR");
	char path[4096];
	int fd;

	if (!dir || !*dir)
		dir = "/var/tmp";
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	snprintf(path, sizeof(path), "%s/hashgate-feed.XXXXXX", dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "cannot create a temporary file in %s: %s", dir,
			 strerror(errno));
		return -errno;
	}
	unlink(path);
	return fd;
}

struct xfer {
	int fd;
	uint64_t size, max;
	bool too_big;
	int werr;
	char etag[256];
	char last_modified[128];
};

static size_t on_body(char *p, size_t sz, size_t nm, void *arg)
{
	struct xfer *x = arg;
	size_t n = sz * nm, done = 0;

	x->size += n;
	if (x->size > x->max) {
		x->too_big = true;
		return 0;
	}
	while (done < n) {
		ssize_t w = write(x->fd, p + done, n - done);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			x->werr = errno;
			return 0;
		}
		done += (size_t)w;
	}
	return n;
}

static void header_value(char *dst, size_t len, const char *p, size_t n)
{
	while (n && (*p == ' ' || *p == '\t')) {
		p++;
		n--;
	}
	while (n && isspace((unsigned char)p[n - 1]))
		n--;
	snprintf(dst, len, "%.*s", (int)n, p);
}

static size_t on_header(char *p, size_t sz, size_t nm, void *arg)
{
	struct xfer *x = arg;
	size_t n = sz * nm;

	if (n >= 5 && !strncmp(p, "HTTP/", 5)) {
		/* a new response (after a redirect): its headers only */
		x->etag[0] = x->last_modified[0] = '\0';
	} else if (n > 5 && !strncasecmp(p, "etag:", 5)) {
		header_value(x->etag, sizeof(x->etag), p + 5, n - 5);
	} else if (n > 14 && !strncasecmp(p, "last-modified:", 14)) {
		header_value(x->last_modified, sizeof(x->last_modified), p + 14, n - 14);
	}
	return n;
}

static int read_token(const char *path, char *buf, size_t len, char *err, size_t errlen)
{
	FILE *fp = fopen(path, "re");
	size_t n;

	if (!fp) {
		snprintf(err, errlen, "token_file %s: %s", path, strerror(errno));
		return -errno;
	}
	n = fread(buf, 1, len - 1, fp);
	fclose(fp);
	buf[n] = '\0';
	while (n && isspace((unsigned char)buf[n - 1]))
		buf[--n] = '\0';
	if (!n || strpbrk(buf, "\r\n"))
		return fail(err, errlen, "token_file %s: empty or more than one line", path);
	return 0;
}

/*
 * One GET of url into x->fd.  cond: send If-None-Match / If-Modified-Since from it.
 * 0 with *status 200 or 304; -EAGAIN for what a retry may cure (connection, timeout, 5xx,
 * 408, 429); other -errno (404: -ENOENT, TLS, other 4xx, too big) for what it will not.
 */
static int http_get(const struct feed *f, const char *url, const struct feed_state *cond,
		    struct xfer *x, long *status, char *err, size_t errlen)
{
	static bool inited;
	char cerr[CURL_ERROR_SIZE] = "", hdr[512], token[4096];
	struct curl_slist *hl = NULL;
	CURLcode cc;
	CURL *h;
	int r;

	if (!inited) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
			return fail(err, errlen, "libcurl failed to initialise");
		inited = true;
	}
	h = curl_easy_init();
	if (!h)
		return -ENOMEM;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(h, CURLOPT_MAXREDIRS, 5L);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, cerr);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "hashgate/" HASHGATE_VERSION);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, (long)(f->timeout < 30 ? f->timeout : 30));
	curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)f->timeout);
	/* gzip/deflate transfer encoding, decoded by libcurl (and bounded by on_body) */
	curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
	curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)x->max);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
	if (f->ca_file) {
		/* pinned: only this CA, not the system store */
		curl_easy_setopt(h, CURLOPT_CAINFO, f->ca_file);
		curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
	}
	if (f->client_cert) {
		curl_easy_setopt(h, CURLOPT_SSLCERT, f->client_cert);
		curl_easy_setopt(h, CURLOPT_SSLKEY, f->client_key);
	}
	if (f->token_file) {
		r = read_token(f->token_file, token, sizeof(token), err, errlen);
		if (r < 0)
			goto out;
		/* never sent to another host on a redirect (CURLOPT_UNRESTRICTED_AUTH is off) */
		curl_easy_setopt(h, CURLOPT_HTTPAUTH, CURLAUTH_BEARER);
		curl_easy_setopt(h, CURLOPT_XOAUTH2_BEARER, token);
	}
	if (cond && cond->etag[0]) {
		snprintf(hdr, sizeof(hdr), "If-None-Match: %s", cond->etag);
		hl = curl_slist_append(hl, hdr);
	}
	if (cond && cond->last_modified[0]) {
		snprintf(hdr, sizeof(hdr), "If-Modified-Since: %s", cond->last_modified);
		hl = curl_slist_append(hl, hdr);
	}
	if (hl)
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
	cc = curl_easy_perform(h);
	*status = 0;
	curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, status);
	if (x->too_big || cc == CURLE_FILESIZE_EXCEEDED) {
		snprintf(err, errlen, "%s: larger than max_size (%llu bytes)", url,
			 (unsigned long long)x->max);
		r = -EFBIG;
	} else if (x->werr) {
		snprintf(err, errlen, "%s: writing the temporary file: %s", url,
			 strerror(x->werr));
		r = -x->werr;
	} else if (cc != CURLE_OK) {
		snprintf(err, errlen, "%s: %s", url, cerr[0] ? cerr : curl_easy_strerror(cc));
		switch (cc) {
		case CURLE_COULDNT_RESOLVE_PROXY:
		case CURLE_COULDNT_RESOLVE_HOST:
		case CURLE_COULDNT_CONNECT:
		case CURLE_OPERATION_TIMEDOUT:
		case CURLE_SEND_ERROR:
		case CURLE_RECV_ERROR:
		case CURLE_GOT_NOTHING:
		case CURLE_PARTIAL_FILE:
		case CURLE_HTTP2:
		case CURLE_HTTP2_STREAM:
			r = -EAGAIN;
			break;
		default:
			r = -EIO;	/* TLS verification, bad URL, ...: a retry will not help */
			break;
		}
	} else if (*status == 200 || (*status == 304 && cond)) {
		r = 0;
	} else {
		snprintf(err, errlen, "%s: HTTP status %ld", url, *status);
		r = *status == 404 || *status == 410 ? -ENOENT :
		    *status >= 500 || *status == 408 || *status == 429 ? -EAGAIN :
		    *status == 401 || *status == 403 ? -EACCES : -EIO;
	}
out:
	curl_slist_free_all(hl);
	curl_easy_cleanup(h);
	return r;
}

/* http_get with retries and exponential back-off for transient failures. */
static int fetch(const struct feed *f, const char *url, const struct feed_state *cond,
		 uint64_t max, int fd, struct xfer *x, long *status, char *err, size_t errlen)
{
	int64_t wait = f->retry_wait;
	int r = 0;

	for (int attempt = 0; attempt <= f->retries; attempt++) {
		memset(x, 0, sizeof(*x));
		x->fd = fd;
		x->max = max;
		if (ftruncate(fd, 0) < 0 || lseek(fd, 0, SEEK_SET) < 0)
			return -errno;
		r = http_get(f, url, cond, x, status, err, errlen);
		if (r != -EAGAIN)
			break;
		if (attempt < f->retries && wait > 0) {
			fprintf(stderr, "hashgate feed: %s: %s; retrying in %llds\n", f->name, err,
				(long long)wait);
			sleep((unsigned)wait);
			wait = wait * 2 > 300 ? 300 : wait * 2;
		}
	}
	if (r == 0 && lseek(fd, 0, SEEK_SET) < 0)
		r = -errno;
	return r;
}

static int sha256_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned int mdlen = 0;

	if (EVP_Digest(data ? data : (const void *)"", len, md, &mdlen, EVP_sha256(), NULL) != 1)
		return -EIO;
	hex_encode(md, 32, out);
	return 0;
}

/* Small companion file (URL.sig, URL.sha256) into buf; returns its length or -errno. */
static ssize_t fetch_small(const struct feed *f, const char *url, char *buf, size_t len,
			   char *err, size_t errlen)
{
	struct xfer x;
	long status;
	ssize_t n;
	int fd, r;

	fd = tmp_fd(err, errlen);
	if (fd < 0)
		return fd;
	r = fetch(f, url, NULL, len - 1, fd, &x, &status, err, errlen);
	if (r < 0) {
		close(fd);
		return r;
	}
	n = pread(fd, buf, len - 1, 0);
	close(fd);
	if (n < 0)
		return -errno;
	buf[n] = '\0';
	return n;
}

/* Decompress a gzip body into a new temporary file, bounded by max. */
static int gunzip_fd(int in, uint64_t max, int *out, char *err, size_t errlen)
{
	char buf[65536];
	uint64_t total = 0;
	gzFile gz;
	int fd, dfd, n, r = 0;

	*out = -1;
	fd = tmp_fd(err, errlen);
	if (fd < 0)
		return fd;
	dfd = dup(in);
	if (dfd < 0 || lseek(dfd, 0, SEEK_SET) < 0 || !(gz = gzdopen(dfd, "rb"))) {
		if (dfd >= 0)
			close(dfd);
		close(fd);
		return fail(err, errlen, "cannot open the gzip stream");
	}
	while ((n = gzread(gz, buf, sizeof(buf))) > 0) {
		total += (uint64_t)n;
		if (total > max) {
			r = -EFBIG;
			snprintf(err, errlen, "decompressed list larger than max_size (%llu bytes)",
				 (unsigned long long)max);
			break;
		}
		if (write(fd, buf, (size_t)n) != n) {
			r = -EIO;
			snprintf(err, errlen, "writing the temporary file: %s", strerror(errno));
			break;
		}
	}
	if (!r && n < 0) {
		int ze;
		const char *m = gzerror(gz, &ze);

		r = fail(err, errlen, "corrupt gzip data: %s", m ? m : "read error");
	}
	gzclose(gz);
	if (r < 0 || lseek(fd, 0, SEEK_SET) < 0) {
		close(fd);
		return r < 0 ? r : -errno;
	}
	*out = fd;
	return 0;
}

static bool ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);

	return a >= b && !strcasecmp(s + a - b, suffix);
}

/* The import format: the feed's, else from the URL's path (without query and .gz). */
static int format_of(const struct feed *f)
{
	char path[2048], *q;

	if (f->delta)
		return IMPORT_JSONL;
	if (f->format != IMPORT_AUTO)
		return f->format;
	snprintf(path, sizeof(path), "%s", f->url);
	if ((q = strpbrk(path, "?#")))
		*q = '\0';
	if (ends_with(path, ".gz"))
		path[strlen(path) - 3] = '\0';
	if (ends_with(path, ".csv"))
		return IMPORT_CSV;
	if (ends_with(path, ".jsonl") || ends_with(path, ".ndjson") || ends_with(path, ".json"))
		return IMPORT_JSONL;
	return IMPORT_PLAIN;
}

/* A number member of a flat JSON object line: 0 and *out, or -ENOENT. */
static int json_int(const char *line, const char *key, int64_t *out)
{
	char pat[64];
	const char *p;
	char *end;

	snprintf(pat, sizeof(pat), "\"%s\"", key);
	p = strstr(line, pat);
	if (!p)
		return -ENOENT;
	p += strlen(pat);
	while (isspace((unsigned char)*p))
		p++;
	if (*p++ != ':')
		return -ENOENT;
	while (isspace((unsigned char)*p))
		p++;
	if (!isdigit((unsigned char)*p))
		return -ENOENT;
	errno = 0;
	*out = strtoll(p, &end, 10);
	return errno ? -ERANGE : 0;
}

/*
 * A delta body: the first line is {"sequence": N, "after": M}; the change lines follow.
 * Copies the change lines into a new temporary file (*out) for the import.
 */
static int delta_split(int in, int64_t *seq, int64_t *after, int *out, char *err,
		       size_t errlen)
{
	char line[1024];
	ssize_t n;
	char *nl;
	int fd;
	off_t off;

	*out = -1;
	n = pread(in, line, sizeof(line) - 1, 0);
	if (n < 0)
		return -errno;
	line[n] = '\0';
	nl = strchr(line, '\n');
	if (!nl)
		return fail(err, errlen, "delta: no header line {\"sequence\": N, \"after\": M}");
	*nl = '\0';
	if (json_int(line, "sequence", seq) < 0 || json_int(line, "after", after) < 0 ||
	    *seq <= *after || *after < 0)
		return fail(err, errlen, "delta: the first line must be {\"sequence\": N, "
			    "\"after\": M} with N > M >= 0, not '%.200s'", line);
	fd = tmp_fd(err, errlen);
	if (fd < 0)
		return fd;
	off = nl + 1 - line;
	for (;;) {
		char buf[65536];
		ssize_t got = pread(in, buf, sizeof(buf), off);

		if (got < 0 || (got > 0 && write(fd, buf, (size_t)got) != got)) {
			close(fd);
			return -EIO;
		}
		if (got == 0)
			break;
		off += got;
	}
	lseek(fd, 0, SEEK_SET);
	*out = fd;
	return 0;
}

/* ---- applying --------------------------------------------------------------------------- */

/*
 * The only call into the import library: the body at fd into the feed's list (full feeds
 * with replace).  Messages name the URL, not the temporary file.
 */
static int apply_import(struct hashdb *db, int fd, const struct feed *f, bool replace,
			const char *state_key, const char *state, struct import_stats *st,
			char *err, size_t errlen)
{
	struct import_opts o = {
		.list = f->list,
		.category = f->category,
		.origin = f->url,
		.algo = f->algo,
		.format = (enum import_format)format_of(f),
		.replace = replace,
		.create = true,		/* a feed's first full list makes the list */
		.meta_key = state_key,	/* the feed's state, in the list's transaction */
		.meta_value = state,
	};
	char path[64], msg[1024];
	size_t pl;
	int r;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	r = import_file(db, path, &o, st, msg, sizeof(msg));
	if (r < 0) {
		pl = strlen(path);
		snprintf(err, errlen, "%s%s", f->url, strncmp(msg, path, pl) != 0 ? ": " : "");
		snprintf(err + strlen(err), errlen - strlen(err), "%s",
			 strncmp(msg, path, pl) != 0 ? msg : msg + pl);
	}
	return r;
}

struct keys {
	uint8_t (*k)[33];
	size_t n, cap;
};

static int collect(const struct hashdb_entry *e, void *arg)
{
	struct keys *ks = arg;

	if (ks->n == ks->cap) {
		size_t cap = ks->cap ? ks->cap * 2 : 4096;
		void *p = realloc(ks->k, cap * sizeof(*ks->k));

		if (!p)
			return -ENOMEM;
		ks->k = p;
		ks->cap = cap;
	}
	memset(ks->k[ks->n], 0, 33);
	ks->k[ks->n][0] = (uint8_t)e->algo;
	memcpy(ks->k[ks->n] + 1, e->value, hash_algo_len(e->algo));
	ks->n++;
	return 0;
}

/*
 * Dry run: import into a scratch database and compare the result with the list as it is.
 * Full feeds: exact added/removed counts.  Delta feeds: additions and deletions in the change
 * set (res->added / res->removed are then upper bounds).
 */
static int dry_run(struct hashdb *db, int fd, const struct feed *f, struct feed_result *res,
		   char *err, size_t errlen)
{
	char dir[4096], path[4200];
	const char *tmp = getenv("TMPDIR");
	struct keys old = { 0 }, nw = { 0 };
	struct import_stats st;
	struct hashdb_list l;
	struct hashdb scratch;
	size_t i = 0, j = 0;
	int r;

	snprintf(dir, sizeof(dir), "%s/hashgate-dry.XXXXXX", tmp && *tmp ? tmp : "/var/tmp");
	if (!mkdtemp(dir))
		return fail(err, errlen, "cannot create a scratch directory: %s", strerror(errno));
	snprintf(path, sizeof(path), "%s/scratch.db", dir);
	r = hashdb_open(&scratch, path, HASHDB_CREATE, err, errlen);
	if (r < 0)
		goto out_dir;
	r = apply_import(&scratch, fd, f, false, NULL, NULL, &st, err, errlen);
	if (r < 0)
		goto out_db;
	res->records = st.records;
	if (f->delta) {
		res->added = st.added;
		res->removed = st.absent;
		goto out_db;
	}
	if (hashdb_list_get(db, f->list, &l, NULL, 0) == 0) {
		r = hashdb_hashes_foreach(db, l.id, -1, collect, &old, err, errlen);
		if (r < 0)
			goto out_db;
	}
	if (hashdb_list_get(&scratch, f->list, &l, err, errlen) == 0) {
		r = hashdb_hashes_foreach(&scratch, l.id, -1, collect, &nw, err, errlen);
		if (r < 0)
			goto out_db;
	}
	r = 0;
	while (i < old.n || j < nw.n) {
		int c = i == old.n ? 1 : j == nw.n ? -1 : memcmp(old.k[i], nw.k[j], 33);

		if (c < 0) {
			res->removed++;
			i++;
		} else if (c > 0) {
			res->added++;
			j++;
		} else {
			i++;
			j++;
		}
	}
out_db:
	hashdb_close(&scratch);
	unlink(path);
	snprintf(path, sizeof(path), "%s/scratch.db-wal", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/scratch.db-shm", dir);
	unlink(path);
out_dir:
	rmdir(dir);
	free(old.k);
	free(nw.k);
	return r < 0 ? r : 0;
}

/* A fetch that ends with the list current: validators of this response, no error. */
static void state_good(struct feed_state *st, const struct feed_result *res,
		       const struct xfer *x)
{
	if (!res->not_modified) {
		snprintf(st->etag, sizeof(st->etag), "%s", x->etag);
		snprintf(st->last_modified, sizeof(st->last_modified), "%s", x->last_modified);
	}
	st->last_ok = st->last_attempt;
	st->failures = 0;
	st->error[0] = '\0';
}

static bool list_exists(struct hashdb *db, const char *name)
{
	struct hashdb_list l;

	return hashdb_list_get(db, name, &l, NULL, 0) == 0;
}

int feed_update(struct cli *cli, struct hashdb *db, const struct feed *f, bool dry,
		struct feed_result *res, char *err, size_t errlen)
{
	const char *cmd = "feed update";
	char url[4200], sig[SIG_MAX + 1], esc[4096], eerr[1200];
	struct feed_state st, nst;
	struct import_stats ist;
	char skey[STATE_KEY_MAX], sval[STATE_MAX];
	struct xfer x;
	const void *body = NULL;
	size_t bodylen = 0;
	bool refused = false;
	int fd = -1, dfd = -1, cfd = -1, r;
	long status = 0;
	ssize_t n;

	memset(res, 0, sizeof(*res));
	r = feed_state_get(db, f->name, &st, err, errlen);
	if (r < 0 && r != -ENOENT)
		return r;
	st.last_attempt = (int64_t)time(NULL);
	fd = tmp_fd(err, errlen);
	if (fd < 0) {
		r = fd;
		goto failed;
	}
	/* A dry run always fetches the whole body: it is asked for the diff. */
	r = fetch(f, f->url, dry || !list_exists(db, f->list) ? NULL : &st, f->max_size, fd, &x,
		  &status, err, errlen);
	if (r < 0)
		goto failed;
	if (status == 304) {
		res->not_modified = true;
		res->outcome = FEED_UNCHANGED;
		goto good;
	}
	r = map_fd(fd, &body, &bodylen);
	if (r < 0) {
		snprintf(err, errlen, "%s: cannot map the body: %s", f->url, strerror(-r));
		goto failed;
	}
	if (sha256_hex(body, bodylen, res->sha256) < 0) {
		r = fail(err, errlen, "cannot hash the body");
		goto failed;
	}
	/* Authenticity before anything is parsed: a feed with a key applies signed bodies only. */
	if (f->key) {
		char why[512];

		snprintf(url, sizeof(url), "%s.sig", f->url);
		n = fetch_small(f, url, sig, sizeof(sig), why, sizeof(why));
		if (n < 0) {
			r = n == -ENOENT ? -EBADMSG : (int)n;
			refused = n == -ENOENT;
			snprintf(err, errlen, "%s: no signature (%s); nothing applied", f->url, why);
			goto failed;
		}
		r = feed_verify(f->key, body, bodylen, sig, (size_t)n, why, sizeof(why));
		if (r < 0) {
			refused = true;
			r = -EBADMSG;
			snprintf(err, errlen, "%s: %s; nothing applied", f->url, why);
			goto failed;
		}
		res->verified = true;
	}
	if (f->checksum) {
		char why[512], want[65];

		snprintf(url, sizeof(url), "%s.sha256", f->url);
		n = fetch_small(f, url, sig, sizeof(sig), why, sizeof(why));
		if (n < 0) {
			r = (int)n;
			refused = n == -ENOENT;
			snprintf(err, errlen, "%s: no checksum (%s); nothing applied", f->url, why);
			goto failed;
		}
		snprintf(want, sizeof(want), "%.64s", sig);
		for (char *p = want; *p; p++)
			*p = (char)tolower((unsigned char)*p);
		if (strlen(want) != 64 || strcmp(want, res->sha256) != 0) {
			refused = true;
			r = -EBADMSG;
			snprintf(err, errlen, "%s: SHA-256 %s does not match %s.sha256; nothing "
				 "applied", f->url, res->sha256, f->url);
			goto failed;
		}
	}
	cfd = fd;
	if (ends_with(f->url, ".gz") ||
	    (body && bodylen >= 2 && ((const unsigned char *)body)[0] == 0x1f &&
	     ((const unsigned char *)body)[1] == 0x8b)) {
		char why[512];

		r = gunzip_fd(fd, f->max_size, &dfd, why, sizeof(why));
		if (r < 0) {
			snprintf(err, errlen, "%s: %s", f->url, why);
			goto failed;
		}
		cfd = dfd;
	}
	if (f->delta) {
		int sfd = -1;
		char why[512];

		r = delta_split(cfd, &res->sequence, &res->after, &sfd, why, sizeof(why));
		if (r < 0) {
			snprintf(err, errlen, "%s: %s", f->url, why);
			goto failed;
		}
		if (dfd >= 0)
			close(dfd);
		cfd = dfd = sfd;
		if (res->sequence <= st.cursor) {
			res->outcome = FEED_UNCHANGED;	/* applied before */
			goto good;
		}
		if (res->after != st.cursor) {
			r = -EPROTO;
			snprintf(err, errlen, "%s: delta gap: the database is at sequence %lld, this "
				 "change set (%lld) follows %lld; nothing applied (the supplier must "
				 "publish the missing change sets, or re-seed the list)", f->url,
				 (long long)st.cursor, (long long)res->sequence,
				 (long long)res->after);
			goto failed;
		}
	} else if (!dry && !strcmp(res->sha256, st.sha256) && list_exists(db, f->list)) {
		res->outcome = FEED_UNCHANGED;		/* a server without validators */
		goto good;
	}
	if (dry) {
		r = dry_run(db, cfd, f, res, err, errlen);
		if (r < 0)
			goto failed;
		res->outcome = res->added || res->removed ? FEED_APPLIED : FEED_UNCHANGED;
		goto out;
	}
	if (dbcli_audit_check(cli, cmd) < 0) {
		r = fail(err, errlen, "the audit log cannot take the record; nothing applied");
		goto failed;
	}
	/*
	 * The state the feed has once this body is applied (cursor, sha256, validators, last
	 * good fetch) is committed in the import's own transaction: list and state never
	 * disagree, even after a crash.
	 */
	nst = st;
	nst.last_change = st.last_attempt;
	if (f->delta)
		nst.cursor = res->sequence;
	snprintf(nst.sha256, sizeof(nst.sha256), "%s", res->sha256);
	state_good(&nst, res, &x);
	state_row(f->name, &nst, skey, sval);
	r = apply_import(db, cfd, f, !f->delta, skey, sval, &ist, err, errlen);
	if (r < 0)
		goto failed;
	st = nst;
	res->added = ist.added;
	res->removed = ist.removed;
	res->records = ist.records;
	res->outcome = FEED_APPLIED;
	dbcli_audit(cli, cmd, "feed.update", "\"feed\":\"%s\",\"list\":\"%s\",\"url\":\"%s\","
		    "\"added\":%llu,\"removed\":%llu,\"sha256\":\"%s\",\"signed\":%s,"
		    "\"sequence\":%lld", f->name, f->list,
		    adm_json_escape(esc, sizeof(esc), f->url), (unsigned long long)res->added,
		    (unsigned long long)res->removed, res->sha256,
		    res->verified ? "true" : "false", (long long)res->sequence);
	r = 0;
	goto out;
good:
	state_good(&st, res, &x);
	if (!dry) {
		r = feed_state_put(db, f->name, &st, err, errlen);
		if (r < 0)
			goto out;
	}
	r = 0;
	goto out;
failed:
	if (!dry) {
		char serr[256];

		st.failures++;
		snprintf(st.error, sizeof(st.error), "%s", err);
		feed_state_put(db, f->name, &st, serr, sizeof(serr));
		if (refused)
			dbcli_audit(cli, cmd, "feed.refused", "\"feed\":\"%s\",\"list\":\"%s\","
				    "\"reason\":\"%s\"", f->name, f->list,
				    adm_json_escape(eerr, sizeof(eerr), err));
	}
out:
	if (body)
		munmap((void *)body, bodylen);
	if (dfd >= 0)
		close(dfd);
	if (fd >= 0)
		close(fd);
	return r;
}
