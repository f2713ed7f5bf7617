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

/* Remove the content of a matching file that is already visible under its name. */
static void pull(struct inode *in)
{
	struct stat st;
	fuse_ino_t parent = 0;
	char *name = NULL;
	int fd, pfd;

	fd = inode_fd(in, O_WRONLY);
	if (fd >= 0) {
		if (ftruncate(fd, 0) < 0)
			hglog(LOG_ERR, "pull: truncate failed: %s", strerror(errno));
		inode_fd_put(in, fd);
	}
	pthread_mutex_lock(&in->lock);
	if (in->name) {
		parent = in->parent;
		name = strdup(in->name);
	}
	pthread_mutex_unlock(&in->lock);
	if (!name)
		return;
	pfd = inode_fd(ino_to_inode(parent), O_PATH);
	if (pfd >= 0) {
		if (fstatat(pfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_dev == in->dev &&
		    st.st_ino == in->ino && S_ISREG(st.st_mode))
			unlinkat(pfd, name, 0);
		inode_fd_put(ino_to_inode(parent), pfd);
	}
	free(name);
}

int scan_inplace(struct inode *in, int fd, fuse_req_t req, const char *why)
{
	struct fscfg *cfg;
	struct scan_result r;
	struct verdict_ctx v;
	struct stat st;
	uint64_t wsnap;
	char *path = NULL;
	enum hg_action act;
	int ret;

	if (!hgfs.scan)
		return 0;
	wsnap = atomic_load(&in->wgen);
	if (atomic_load(&in->sgen) == wsnap)
		return 0;
	if (fstat(fd, &st) < 0)
		return -errno;
	cfg = cfg_get();
	if ((uint64_t)st.st_size > cfg->c.scan_max_size) {
		hglog(LOG_INFO, "verdict=skipped kind=%s size=%lld reason=scan_max_size", why,
		      (long long)st.st_size);
		atomic_store(&in->sgen, wsnap);
		cfg_put(cfg);
		return 0;
	}
	memset(&v, 0, sizeof(v));
	if (req) {
		const struct fuse_ctx *ctx = fuse_req_ctx(req);

		v.uid = ctx->uid;
		v.gid = ctx->gid;
		v.pid = ctx->pid;
	}
	if (!v.uid && !v.pid) {
		v.uid = st.st_uid;
		v.gid = st.st_gid;
	}
	v.mode = st.st_mode & 07777;
	v.start = st.st_mtime;
	pthread_mutex_lock(&in->lock);
	if (in->name) {
		fuse_ino_t p = in->parent;
		char *n = strdup(in->name);

		pthread_mutex_unlock(&in->lock);
		if (n)
			path = path_of(p, n);
		free(n);
	} else {
		pthread_mutex_unlock(&in->lock);
	}
	v.path = path;
	v.kind = why;
	stat_add(&hgfs.st.uploads_scanned, 1);
	ret = scan_fd(fd, NULL, &r);
	if (ret < 0) {
		/* Already visible: never destroy customer data over a scan failure. */
		quarantine_log_error(&v, ret, true);
		ret = cfg->c.on_error == ON_ERROR_ALLOW ? 0 : -EIO;
		goto out;
	}
	if (!r.match) {
		atomic_store(&in->sgen, wsnap);
		quarantine_log_clean(&v, &r);
		goto out;
	}
	ret = quarantine_match(&v, fd, &r, &act);
	if (act == ACTION_LOG) {
		atomic_store(&in->sgen, wsnap);
		ret = 0;
	} else {
		pull(in);
		atomic_store(&in->sgen, wsnap);
		/* nor may the kernel's page cache keep serving the pulled bytes */
		if (hgfs.se)
			fuse_lowlevel_notify_inval_inode(hgfs.se, inode_to_ino(in), 0, 0);
	}
out:
	free(path);
	cfg_put(cfg);
	return ret;
}
