/*
 * fuzz-config.c - libFuzzer harness for the config parser: config_load() on arbitrary file
 * bytes and config_set() on arbitrary key/value strings.
 *
 * Oracles beyond "no crash, no leak, no UB" (ASan/UBSan):
 *  - a failing call leaves the config exactly as it was (config.h promises this), checked by
 *    comparing every field against a snapshot taken before the call;
 *  - a failing config_load() names the file in its message, a failing config_set() the option.
 * The input is written to a memfd and loaded through /proc/self/fd/N, so no disk is touched.
 * Layout of an input: byte 0 selects the mode (even: file, odd: key=value split at the first
 * NUL byte); the rest is the file text or "key\0value".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "hashdb/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int streq(const char *a, const char *b)
{
	if (!a || !b)
		return a == b;
	return strcmp(a, b) == 0;
}

/* 1 when every field of a and b is equal (strings by value). */
static int config_equal(const struct hg_config *a, const struct hg_config *b)
{
	size_t i;

	if (!streq(a->source, b->source) || !streq(a->db, b->db) ||
	    !streq(a->quarantine, b->quarantine) || !streq(a->quarantine_key, b->quarantine_key) ||
	    !streq(a->audit_log, b->audit_log) || !streq(a->state_dir, b->state_dir) ||
	    !streq(a->prometheus_textfile, b->prometheus_textfile) ||
	    !streq(a->scan_db, b->scan_db))
		return 0;
	if (a->on_match != b->on_match || a->on_error != b->on_error ||
	    a->scan_max_size != b->scan_max_size || a->pdq != b->pdq ||
	    a->pdq_threshold != b->pdq_threshold || a->pdq_min_quality != b->pdq_min_quality ||
	    a->pdq_max_size != b->pdq_max_size || a->image_max_pixels != b->image_max_pixels ||
	    a->retention != b->retention || a->log_level != b->log_level || a->ncat != b->ncat ||
	    a->ncat_err != b->ncat_err)
		return 0;
	for (i = 0; i < a->ncat; i++)
		if (!streq(a->cat[i].category, b->cat[i].category) ||
		    a->cat[i].action != b->cat[i].action)
			return 0;
	for (i = 0; i < a->ncat_err; i++)
		if (!streq(a->cat_err[i].category, b->cat_err[i].category) ||
		    a->cat_err[i].on_error != b->cat_err[i].on_error)
			return 0;
	return 1;
}

/* A deep copy through the public API is not offered, so snapshot by re-running the same
 * sequence: a fresh config with the same fixed prefix applied. */
static void prefix(struct hg_config *c)
{
	char err[256];

	/* A non-default starting point, so "unchanged" is distinguishable from "reset". */
	config_set(c, "on_match.baseline", "block", err, sizeof(err));
	config_set(c, "scan_max_size", "5M", err, sizeof(err));
	config_set(c, "db", "/nonexistent/fuzz.db", err, sizeof(err));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct hg_config c, snap;
	char err[512], path[64];
	int fd, r;

	if (size < 1)
		return 0;
	if (config_init(&c) < 0 || config_init(&snap) < 0)
		abort();
	prefix(&c);
	prefix(&snap);
	memset(err, 0, sizeof(err));
	if (data[0] % 2 == 0) {
		fd = memfd_create("fuzz-config", MFD_CLOEXEC);
		if (fd < 0)
			abort();
		if (size > 1 && write(fd, data + 1, size - 1) != (ssize_t)(size - 1))
			abort();
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		r = config_load(&c, path, err, sizeof(err));
		close(fd);
		if (r < 0) {
			if (!config_equal(&c, &snap)) {
				fprintf(stderr, "config_load failed (%d: %s) but changed the config\n",
					r, err);
				abort();
			}
			if (!strstr(err, path)) {
				fprintf(stderr, "config_load error does not name the file: '%s'\n", err);
				abort();
			}
		}
	} else {
		/* key\0value, both NUL-terminated copies. */
		size_t klen = strnlen((const char *)data + 1, size - 1);
		char *key = strndup((const char *)data + 1, klen);
		char *val = klen + 2 <= size ? strndup((const char *)data + 2 + klen,
							size - 2 - klen) : strdup("");

		if (!key || !val)
			abort();
		r = config_set(&c, key, val, err, sizeof(err));
		if (r < 0) {
			if (!config_equal(&c, &snap)) {
				fprintf(stderr, "config_set('%s') failed but changed the config\n", key);
				abort();
			}
			if (!err[0]) {
				fprintf(stderr, "config_set('%s') failed without a message\n", key);
				abort();
			}
		}
		free(key);
		free(val);
	}
	config_release(&c);
	config_release(&snap);
	return 0;
}
