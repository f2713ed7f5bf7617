/*
 * scan.c - turn a file's bytes into a verdict: exact digests (streamed or re-read), PDQ for
 * JPEGs, then the matcher snapshot current at that moment.
 *
 * Streamed digests are used only when they cover every exact algorithm the current snapshot
 * holds; otherwise (database changed mid-upload, non-sequential writes) the file is re-read.
 * A JPEG that fails to decode is not an error (exact hashes still apply); running out of
 * memory or an I/O error is, and the caller fails closed.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs/hgfs.h"
#include "hashdb/hglog.h"
#include "hashdb/image.h"

unsigned scan_algos(void)
{
	struct matcher *m = matcher_slot_get(&hgfs.slot);
	unsigned a = m ? matcher_algos(m) : HASH_EXACT_MASK;

	if (m)
		matcher_put(m);
	return a;
}

int scan_fd(int fd, const struct digests *streamed, struct scan_result *r)
{
	struct fscfg *cfg = cfg_get();
	struct matcher *m;
	struct match_opts opts;
	struct stat st;
	unsigned algos, need;
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
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out_m;
	}
	if (!need)
		r->d.size = st.st_size;
	if (cfg->c.pdq && (algos & HASH_BIT(HASH_PDQ)) && st.st_size >= 3 &&
	    (uint64_t)st.st_size <= cfg->c.pdq_max_size) {
		unsigned char magic[3];

		if (pread(fd, magic, 3, 0) == 3 && image_is_jpeg(magic, 3)) {
			ret = image_pdq_fd(fd, cfg->c.pdq_max_size, PDQ_DIHEDRAL,
					   cfg->c.image_max_pixels, &r->pdq);
			if (ret == 0)
				r->has_pdq = true;
			else if (ret == -ENOMEM || ret == -EIO)
				goto out_m;
			else
				hglog(LOG_DEBUG, "pdq skipped: %s", strerror(-ret));
		}
	}
	opts.pdq_threshold = cfg->c.pdq_threshold;
	opts.pdq_min_quality = cfg->c.pdq_min_quality;
	ret = matcher_check(m, &r->d, r->has_pdq ? &r->pdq : NULL, &opts, &r->hit);
	if (ret >= 0) {
		r->match = ret;
		ret = 0;
	}
	stat_add(&hgfs.st.bytes_scanned, r->d.size);
out_m:
	matcher_put(m);
out_cfg:
	cfg_put(cfg);
	return ret;
}
