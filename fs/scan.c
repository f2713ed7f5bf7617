/*
 * scan.c - turn a file's bytes into a verdict: exact digests (streamed or re-read), PDQ for
 * JPEGs, then the matcher snapshot current at that moment.
 *
 * Streamed digests are used only when they cover every exact algorithm the current snapshot
 * holds; otherwise (database changed mid-upload, non-sequential writes) the file is re-read.
 * A file that looks like an image (image_kind: JPEG after the junk libjpeg skips, PNG, WebP,
 * GIF, BMP) but gives no PDQ is logged at notice with the reason; its exact digests are still
 * matched (a listed file is caught whatever its pixels), and only when they are clean is it a
 * scan error, with the on_error of the categories whose PDQ lists stay unchecked
 * (on_error.CATEGORY, else on_error; deny by default: fail closed).  File size does not decide: JPEGs over
 * pdq_max_size are decoded streaming from the file; decode work and memory are bounded
 * by hashdb/image.c instead.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/hgfs.h"
#include "hashdb/hglog.h"
#include "hashdb/image.h"

static int category_denies(const char *category, void *arg)
{
	return config_on_error_for(arg, category) == ON_ERROR_DENY;
}

enum hg_on_error scan_on_error(const struct scan_result *r, const struct hg_config *cfg)
{
	return r && r->pdq_err ? r->pdq_on_error : cfg->on_error;
}

unsigned scan_algos(void)
{
	struct matcher *m = matcher_slot_get(&hgfs.slot);
	unsigned a = m ? matcher_algos(m) : HASH_EXACT_MASK;

	if (m)
		matcher_put(m);
	return a;
}

bool scan_current(uint64_t generation)
{
	struct matcher *m = matcher_slot_get(&hgfs.slot);
	bool cur = m && matcher_generation(m) == generation;

	if (m)
		matcher_put(m);
	return cur;
}

int scan_fd(int fd, const struct digests *streamed, struct scan_result *r)
{
	return scan_fd_ex(fd, streamed, r, true);
}

int scan_fd_ex(int fd, const struct digests *streamed, struct scan_result *r, bool count)
{
	struct fscfg *cfg = cfg_get();
	struct matcher *m;
	struct match_opts opts;
	unsigned algos, need;
	uint64_t size;
	int ret;

	memset(r, 0, sizeof(*r));
	m = matcher_slot_get(&hgfs.slot);
	if (!m) {
		ret = -EIO;
		goto out_cfg;
	}
	r->generation = matcher_generation(m);
	algos = matcher_algos(m);
	need = algos & HASH_EXACT_MASK;
	if (streamed && (streamed->mask & need) == need) {
		r->d = *streamed;
		r->streamed = true;
	} else {
		ret = hash_fd(fd, need, &r->d);
		if (ret < 0)
			goto out_m;
	}
	/* The digests counted every byte; only a PDQ-only database needs the size asked. */
	if (need) {
		size = r->d.size;
	} else {
		struct stat st;

		if (fstat(fd, &st) < 0) {
			ret = -errno;
			goto out_m;
		}
		size = r->d.size = (uint64_t)st.st_size;
	}
	if (cfg->c.pdq && (algos & HASH_BIT(HASH_PDQ)) && size >= 3) {
		unsigned char magic[IMAGE_MAGIC_LEN];
		ssize_t n = pread(fd, magic, sizeof(magic), 0);

		if (n > 0 && image_kind(magic, (size_t)n)) {
			ret = image_pdq_fd(fd, cfg->c.pdq_max_size, PDQ_DIHEDRAL,
					   cfg->c.image_max_pixels, &r->pdq);
			if (ret < 0) {
				hglog(LOG_NOTICE, "pdq_error: image gives no PDQ: %s",
				      r->pdq.reason[0] ? r->pdq.reason : image_strerror(ret));
				r->pdq_err = ret;
			} else {
				r->has_pdq = true;
			}
		}
	}
	opts.pdq_threshold = cfg->c.pdq_threshold;
	opts.pdq_min_quality = cfg->c.pdq_min_quality;
	ret = matcher_check(m, &r->d, r->has_pdq ? &r->pdq : NULL, &opts, &r->hit);
	if (ret >= 0) {
		r->match = ret;
		ret = 0;
	}
	if (count)
		stat_add(&hgfs.st.bytes_scanned, r->d.size);
	if (ret == 0 && !r->match && r->pdq_err) {
		r->pdq_on_error = matcher_pdq_category_any(m, category_denies, &cfg->c) ?
				  ON_ERROR_DENY : ON_ERROR_ALLOW;
		ret = r->pdq_err;
	} else {
		r->pdq_err = 0;
	}
out_m:
	matcher_put(m);
out_cfg:
	cfg_put(cfg);
	return ret;
}
