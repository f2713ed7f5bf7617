/*
 * quarantine.c - what happens after a verdict: the quarantine store record (content encrypted
 * or, for block, record only), the synchronous audit entry for every match, and the one
 * structured log line per verdict.
 *
 * Logged and audited: names (escaped), ids, sizes, digests and what matched; never content.
 * Clean verdicts are logged (LOG_INFO) and counted in the status file but not written to the
 * audit trail: an fsync per clean upload would dominate small-file creates.
 *
 * Evidence is never silently dropped: content the quarantine store cannot take (quota,
 * ENOSPC, EIO) is encrypted with the store's key into BACKING/.hashgate-staging/kept/ (once
 * per sha256), the record says "kept", the upload is still refused, and it is counted and
 * logged at notice; `hashgate quarantine retry` moves it into the store.  Only when even that
 * fails is the verdict recorded as a block (evidence lost), logged at err and counted.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fs/hgfs.h"
#include "hashdb/audit.h"
#include "hashdb/hglog.h"
#include "hashdb/qstore.h"
#include "hashdb/tmpname.h"

char *path_of(fuse_ino_t parent, const char *name)
{
	char *comp[128];
	size_t n = 0, len = 1, i;
	char *out, *p;
	fuse_ino_t cur = parent;

	comp[n] = strdup(name);
	if (!comp[n])
		return NULL;
	len += strlen(comp[n++]) + 1;
	while (cur != FUSE_ROOT_ID && n < 128) {
		struct inode *in = ino_to_inode(cur);

		pthread_mutex_lock(&in->lock);
		if (!in->name) {
			pthread_mutex_unlock(&in->lock);
			comp[n] = strdup("?");
		} else {
			comp[n] = strdup(in->name);
			cur = in->parent;
			pthread_mutex_unlock(&in->lock);
		}
		if (!comp[n])
			break;
		len += strlen(comp[n++]) + 1;
		if (strcmp(comp[n - 1], "?") == 0)
			break;
	}
	out = malloc(len);
	if (out) {
		p = out;
		for (i = n; i-- > 0;) {
			p += sprintf(p, "%s%s", comp[i], i ? "/" : "");
		}
		*p = 0;
	}
	for (i = 0; i < n; i++)
		free(comp[i]);
	return out;
}

static void digest_hex(const struct digests *d, enum hash_algo a, char *out)
{
	const uint8_t *b = digests_get(d, a);

	if (b)
		hex_encode(b, hash_algo_len(a), out);
	else
		strcpy(out, "-");
}

/* Encrypt content_fd into STAGING/kept/ (see qstore_keep). */
static int keep_evidence(int content_fd, const struct qrecord *rec)
{
	int dfd, r;

	if (hgfs.staging_fd < 0)
		return -ENOENT;
	if (mkdirat(hgfs.staging_fd, HGFS_KEPT_NAME, 0700) < 0 && errno != EEXIST)
		return -errno;
	dfd = openat(hgfs.staging_fd, HGFS_KEPT_NAME,
		     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (dfd < 0)
		return -errno;
	r = qstore_keep(hgfs.qstore, content_fd, rec, dfd);
	close(dfd);
	return r;
}

/*
 * The store's size for the status file, and a warning (at most one a minute) from 90% of the
 * quota on: an admin must act before evidence starts going to the staging area.
 */
static void check_usage(const char *dir, uint64_t max)
{
	static pthread_mutex_t warn_lock = PTHREAD_MUTEX_INITIALIZER;
	static time_t last_warn;
	struct qstore_usage u;
	time_t now = time(NULL);
	bool warn = false;

	if (qstore_usage(hgfs.qstore, &u) < 0)
		return;
	pthread_mutex_lock(&hgfs.st_lock);
	hgfs.st.quarantine_bytes = u.bytes;
	hgfs.st.quarantine_max_bytes = max;
	pthread_mutex_unlock(&hgfs.st_lock);
	if (!max || u.bytes < max / 10 * 9)
		return;
	pthread_mutex_lock(&warn_lock);
	if (now - last_warn >= 60) {
		last_warn = now;
		warn = true;
	}
	pthread_mutex_unlock(&warn_lock);
	if (warn)
		hglog(LOG_WARNING, "quarantine store %s is at %llu of %llu bytes (%llu%% of "
		      "quarantine_max_size): raise it or purge records, or new evidence will be "
		      "kept outside the store", dir, (unsigned long long)u.bytes,
		      (unsigned long long)max, (unsigned long long)(u.bytes * 100 / max));
}

int quarantine_match(const struct verdict_ctx *v, int content_fd, const struct scan_result *r,
		     enum hg_action *action)
{
	struct fscfg *cfg = cfg_get();
	struct qrecord rec;
	char epath[2048], jpath[2048], elist[256], ecat[128];
	char md5[33], sha1[41], sha256[65], pdq[65], fields[8192];
	char want[1024], jwant[2100] = "", lwant[2100] = "";
	char jref[768], jlabel[1600], lref[768], llabel[1600], extra[2560];
	struct hashdb_rowmeta meta;
	const char *path = v->path ? v->path : "?";
	enum hg_action act;
	const char *evidence = "stored";
	int ret;

	act = config_action_for(&cfg->c, r->hit.category);
	*action = act;
	memset(&rec, 0, sizeof(rec));
	rec.time = time(NULL);
	rec.upload_time = v->start;
	rec.uid = v->uid;
	rec.gid = v->gid;
	rec.pid = v->pid;
	rec.mount = hgfs.backing;
	rec.path = (char *)path;
	rec.size = r->d.size;
	rec.mode = v->mode;
	rec.digests = r->d;
	rec.has_pdq = r->has_pdq;
	if (r->has_pdq) {
		rec.pdq = r->pdq.hash[PDQ_ORIG];
		rec.pdq_quality = r->pdq.quality;
	}
	rec.algo = r->hit.algo;
	rec.distance = r->hit.distance;
	rec.list = (char *)r->hit.list;
	rec.category = (char *)r->hit.category;
	/*
	 * The list row's id and label (the snapshot keeps none): one read of the database, after
	 * the verdict and only for matches.  Without it the record just lacks them.
	 */
	if (matcher_hit_meta(hgfs.slot.dbpath, &r->hit, &meta, NULL, 0) < 0) {
		memset(&meta, 0, sizeof(meta));
		meta.quality = -1;
	}
	rec.ref = meta.ref;
	rec.label = meta.label;
	rec.action = act;
	rec.origin = (char *)v->kind;

	if (hgfs.qstore) {		/* log-action matches too: a record for the report */
		qstore_set_quota(hgfs.qstore, cfg->c.quarantine_max_size);
		ret = qstore_add(hgfs.qstore, act == ACTION_QUARANTINE ? content_fd : -1, &rec);
		if (ret < 0 && act == ACTION_QUARANTINE && content_fd >= 0) {
			int kret = keep_evidence(content_fd, &rec);

			if (kret == 0) {
				hglog(LOG_NOTICE, "quarantine store cannot take the content (%s): kept "
				      "encrypted in %s/%s/%s until 'hashgate quarantine retry'",
				      strerror(-ret), hgfs.backing, HGFS_STAGING_NAME, HGFS_KEPT_NAME);
				evidence = "kept";
				rec.kept = true;
				stat_add(&hgfs.st.evidence_kept, 1);
			} else {
				hglog(LOG_ERR, "quarantine store failed (%s) and keeping the content in "
				      "the staging area failed too (%s): evidence lost, recording as "
				      "block", strerror(-ret), strerror(-kret));
				evidence = "lost";
				rec.action = act = ACTION_BLOCK;
				*action = act;
				stat_add(&hgfs.st.evidence_lost, 1);
				stat_add(&hgfs.st.quarantine_errors, 1);
			}
			ret = qstore_add(hgfs.qstore, -1, &rec);
		}
		if (ret < 0) {
			/* Kept evidence is not an error here: evidence_kept tracks it until retry. */
			if (strcmp(evidence, "lost") != 0)
				stat_add(&hgfs.st.quarantine_errors, 1);
			hglog(LOG_ERR, "quarantine record failed: %s", strerror(-ret));
		}
		check_usage(cfg->c.quarantine, cfg->c.quarantine_max_size);
	}

	hglog_escape(epath, sizeof(epath), path, 0);
	hglog_escape(jpath, sizeof(jpath), path, 1);
	/*
	 * A temporary name (rsync's ".NAME.XXXXXX", "NAME.EXT.tmp", ...): the name the client
	 * meant.  Its rename after the refusal never reaches us (the kernel finds no source), so
	 * the pattern is all there is; `hashgate quarantine show` derives the same.
	 */
	if (tmpname_intended(path, want, sizeof(want), NULL)) {
		char e[2048];

		hglog_escape(e, sizeof(e), want, 1);
		snprintf(jwant, sizeof(jwant), ",\"intended_path\":\"%s\"", e);
		hglog_escape(e, sizeof(e), want, 0);
		snprintf(lwant, sizeof(lwant), " intended=\"%s\"", e);
	}
	hglog_escape(elist, sizeof(elist), r->hit.list, 1);
	hglog_escape(ecat, sizeof(ecat), r->hit.category, 1);
	hglog_escape(jref, sizeof(jref), meta.ref, 1);
	hglog_escape(jlabel, sizeof(jlabel), meta.label, 1);
	hglog_escape(lref, sizeof(lref), meta.ref, 0);
	hglog_escape(llabel, sizeof(llabel), meta.label, 0);
	digest_hex(&r->d, HASH_MD5, md5);
	digest_hex(&r->d, HASH_SHA1, sha1);
	digest_hex(&r->d, HASH_SHA256, sha256);
	if (r->has_pdq)
		pdq_to_hex(&r->pdq.hash[PDQ_ORIG], pdq);
	else
		strcpy(pdq, "-");
	snprintf(fields, sizeof(fields),
		 "\"kind\":\"%s\",\"verdict\":\"match\",\"action\":\"%s\",\"mount\":\"%s\","
		 "\"path\":\"%s\"%s,\"uid\":%u,\"gid\":%u,\"pid\":%d,\"size\":%llu,"
		 "\"algo\":\"%s\",\"distance\":%d,\"list\":\"%s\",\"category\":\"%s\","
		 "\"qid\":%lld,\"generation\":%llu,\"md5\":\"%s\",\"sha1\":\"%s\","
		 "\"sha256\":\"%s\",\"pdq\":\"%s\""
		 ",\"evidence\":\"%s\"",
		 v->kind, config_action_name(act), hgfs.backing, jpath, jwant, (unsigned)v->uid,
		 (unsigned)v->gid, (int)v->pid, (unsigned long long)r->d.size,
		 hash_algo_name(r->hit.algo), r->hit.distance, elist, ecat,
		 (long long)rec.id, (unsigned long long)r->generation, md5, sha1, sha256, pdq,
		 act == ACTION_QUARANTINE ? evidence : act == ACTION_BLOCK &&
		 strcmp(evidence, "lost") == 0 ? "lost" : "none");
	/* the row's id and label only when the list file gave them (compact records) */
	if (meta.ref[0] || meta.label[0]) {
		size_t fl = strlen(fields);

		snprintf(fields + fl, sizeof(fields) - fl, "%s%s%s%s%s%s",
			 meta.ref[0] ? ",\"ref\":\"" : "", jref, meta.ref[0] ? "\"" : "",
			 meta.label[0] ? ",\"label\":\"" : "", jlabel, meta.label[0] ? "\"" : "");
	}
	extra[0] = '\0';
	if (meta.ref[0] || meta.label[0])
		snprintf(extra, sizeof(extra), "%s%s%s%s%s%s", meta.ref[0] ? " ref=\"" : "", lref,
			 meta.ref[0] ? "\"" : "", meta.label[0] ? " label=\"" : "", llabel,
			 meta.label[0] ? "\"" : "");
	if (hgfs.audit) {
		ret = audit_append(hgfs.audit, "hashgatefs", "verdict", fields);
		if (ret < 0) {
			hglog(LOG_ERR, "audit append failed: %s", strerror(-ret));
			stat_add(&hgfs.st.audit_errors, 1);
		}
	}
	hook_submit(&r->hit, v->uid, rec.id, fields);
	hglog(LOG_NOTICE,
	      "verdict=match action=%s kind=%s path=\"%s\"%s uid=%u gid=%u pid=%d size=%llu "
	      "algo=%s distance=%d list=\"%s\" category=\"%s\"%s qid=%lld generation=%llu",
	      config_action_name(act), v->kind, epath, lwant, (unsigned)v->uid, (unsigned)v->gid,
	      (int)v->pid, (unsigned long long)r->d.size, hash_algo_name(r->hit.algo),
	      r->hit.distance, elist, ecat, extra, (long long)rec.id,
	      (unsigned long long)r->generation);
	stat_add(&hgfs.st.matches, 1);
	if (act == ACTION_QUARANTINE)
		stat_add(&hgfs.st.quarantined, 1);
	else if (act == ACTION_BLOCK)
		stat_add(&hgfs.st.blocked, 1);
	cfg_put(cfg);
	return act == ACTION_LOG ? 0 : -EACCES;
}

void quarantine_log_clean(const struct verdict_ctx *v, const struct scan_result *r)
{
	char epath[2048], sha256[65];

	stat_add(&hgfs.st.uploads_clean, 1);
	{
		struct fscfg *cfg = cfg_get();
		bool on = cfg->c.log_clean;

		cfg_put(cfg);
		if (!on)
			return;		/* privacy default: counted, not logged */
	}
	hglog_escape(epath, sizeof(epath), v->path ? v->path : "?", 0);
	digest_hex(&r->d, HASH_SHA256, sha256);
	hglog(LOG_INFO, "verdict=clean kind=%s path=\"%s\" uid=%u gid=%u pid=%d size=%llu "
	      "sha256=%s pdq=%s streamed=%s generation=%llu", v->kind, epath, (unsigned)v->uid,
	      (unsigned)v->gid, (int)v->pid, (unsigned long long)r->d.size, sha256,
	      r->has_pdq ? "yes" : "no", r->streamed ? "yes" : "no",
	      (unsigned long long)r->generation);
}

void quarantine_log_error(const struct verdict_ctx *v, int err, bool published)
{
	char epath[2048];

	stat_add(&hgfs.st.errors, 1);
	hglog_escape(epath, sizeof(epath), v->path ? v->path : "?", 0);
	hglog(LOG_ERR, "verdict=error kind=%s path=\"%s\" uid=%u gid=%u pid=%d error=\"%s\" "
	      "published=%s", v->kind, epath, (unsigned)v->uid, (unsigned)v->gid, (int)v->pid,
	      strerror(-err), published ? "yes" : "no");
}
