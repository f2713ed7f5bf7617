/*
 * staging.c - the life of an upload: O_TMPFILE staging, hashing while written, the verdict at
 * FLUSH and the atomic publish.
 *
 * A new file (create) or a rewrite (open with O_TRUNC, or a write-open of an empty file) gets an
 * O_TMPFILE in the target directory, owned and moded as the result will be.  Sequential writes
 * feed the hasher; anything else (gap, rewrite, mmap, copy_file_range, fallocate, truncate)
 * turns streaming off and the verdict re-reads the file.  A small upload's lookup is made right
 * after the write that completed it and taken by the verdict while nothing changed since
 * (upload_precheck).  Clean: the tmpfile is linked into
 * BACKING/.hashgate-staging under a unique name and renamed over the final name, so the name
 * switches from old to new content in one step.  Match or failure: the tmpfile is simply
 * closed and vanishes.  A crash loses staged uploads but never publishes one unscanned.
 *
 * staging=named (chosen by staging=auto when the backing root refuses O_TMPFILE: the Linux NFS
 * client, sshfs and most other FUSE filesystems): the upload is a
 * regular file "up.HOST.PID.RANDOM" in BACKING/.hashgate-staging (mode 0700, root; never
 * shown through the mount), created 0600 with O_EXCL and 128 random bits in its name, then
 * given the result's owner and mode like the tmpfile.  Clean: it is renamed to the final name
 * (RENAME_NOREPLACE for a new name, else link+unlink where a link keeps the inode number,
 * else a checked rename) and the name must then lead to the upload's inode (named_check_key:
 * its descriptors may go on writing, judged per inode by gate.c); match or
 * failure: truncated and unlinked at once.  Nothing is ever under the final name before the
 * verdict.  What differs: a crash leaves the partial upload in the staging dir (root-only,
 * outside the mount) until the next start-up removes it: entries of this host whose daemon is
 * gone, and other hosts' entries older than a day (a shared backing dir mounted by several
 * hosts).  Parent directories on another filesystem than the staging dir (a mount below
 * BACKING_DIR) stage in an O_TMPFILE there, or fail with EOPNOTSUPP when it has none.
 *
 * Pending table: staged new names (not rewrites), so the uploader's own lookups of the name
 * find the staged inode while everybody else still sees the backing directory.
 *
 * A publish runs without the kernel's directory lock, so a name may change under a request
 * the kernel already checked: whatever takes, removes or moves a name in a sticky directory
 * on behalf of a user the sticky rule binds looks at the name again under name_lock (publish,
 * staging_unlink, staging_rename) and fails with EPERM rather than touch another user's file.
 */
#include <dirent.h>
#include <limits.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/vfs.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "fs/hgfs.h"
#include "hashdb/hglog.h"

#define PEND_BUCKETS	1024

static ssize_t read_proc(pid_t pid, const char *what, char *buf, size_t len);
static size_t pend_all(fuse_ino_t parent, const char *name, struct upload **v, size_t max);
static void stage_drop(struct upload *up);

static pthread_mutex_t pend_lock = PTHREAD_MUTEX_INITIALIZER;
static struct upload *pend[PEND_BUCKETS];

static size_t pend_hash(fuse_ino_t parent, const char *name)
{
	uint64_t h = parent * 0x9e3779b97f4a7c15ull;

	for (; *name; name++)
		h = (h ^ (unsigned char)*name) * 0x100000001b3ull;
	return (size_t)(h >> 20) % PEND_BUCKETS;
}

static atomic_int npending;
static atomic_uint pend_removed;	/* uploads that left the table (pending_gen) */

/*
 * Held across publish's take of a name (its sticky-rule check, the link or rename, the rekey
 * of the replaced inode), across upload_replace's check that the name is still the inode's
 * file (without it a rewrite opened between the two saw a mismatch and fell back to
 * truncating in place), and across the check-then-act of unlink and rename by name in a
 * sticky directory and of the RENAME_NOREPLACE fallback (staging_unlink, staging_rename).
 */
static pthread_mutex_t name_lock = PTHREAD_MUTEX_INITIALIZER;

bool pending_any(void)
{
	return atomic_load(&npending) > 0;
}

static void pend_insert(struct upload *up)
{
	size_t b = pend_hash(inode_to_ino(up->parent), up->name);

	atomic_fetch_add(&npending, 1);
	pthread_mutex_lock(&pend_lock);
	up->pnext = pend[b];
	pend[b] = up;
	up->pending = true;
	pthread_mutex_unlock(&pend_lock);
}

static void pend_remove(struct upload *up)
{
	struct upload **pp;

	pthread_mutex_lock(&pend_lock);
	if (up->pending) {
		pp = &pend[pend_hash(inode_to_ino(up->parent), up->name)];
		while (*pp && *pp != up)
			pp = &(*pp)->pnext;
		if (*pp)
			*pp = up->pnext;
		up->pending = false;
		atomic_fetch_sub(&npending, 1);
		atomic_fetch_add(&pend_removed, 1);
	}
	pthread_mutex_unlock(&pend_lock);
}

unsigned pending_gen(void)
{
	return atomic_load(&pend_removed);
}

/*
 * The newest staged upload of parent/name that uid's process pid sees: its own or a related
 * process's, not hidden from it (pending_hide).  Referenced, or NULL.  Other uploads of the
 * name (another user's, an unrelated process's) do not hide it, whichever is newer.
 */
struct upload *pending_find_own(fuse_ino_t parent, const char *name, uid_t uid, pid_t pid)
{
	struct upload *v[16], *found = NULL;
	size_t n, i;

	n = pend_all(parent, name, v, 16);
	for (i = 0; i < n; i++) {
		if (!found && v[i]->uid == uid && related_process(pid, v[i]->pid) &&
		    !pending_hidden(v[i], pid))
			found = v[i];
		else
			upload_put(v[i]);
	}
	return found;
}

bool pending_hide(struct upload *up, pid_t pid)
{
	bool ok = false;

	pthread_mutex_lock(&pend_lock);
	if (up->nhidden < (int)(sizeof(up->hidden) / sizeof(up->hidden[0]))) {
		up->hidden[up->nhidden++] = pid;
		ok = true;
	}
	pthread_mutex_unlock(&pend_lock);
	return ok;
}

bool pending_hidden(struct upload *up, pid_t pid)
{
	bool hidden = false;
	int i;

	pthread_mutex_lock(&pend_lock);
	for (i = 0; i < up->nhidden && !hidden; i++)
		hidden = up->hidden[i] == pid;
	pthread_mutex_unlock(&pend_lock);
	return hidden;
}

/*
 * The writer lists a directory holding its own unfinished uploads: judge them now, so the
 * listing shows what a plain file system would (published, or gone if rejected).  Later
 * writes through still-open descriptors are rescanned at their close.
 */
void pending_settle_dir(fuse_ino_t parent, fuse_req_t req)
{
	pid_t pid = fuse_req_ctx(req)->pid;

	for (;;) {
		struct upload *up = NULL, *it;
		size_t b;

		pthread_mutex_lock(&pend_lock);
		for (b = 0; b < PEND_BUCKETS && !up; b++)
			for (it = pend[b]; it; it = it->pnext)
				if (inode_to_ino(it->parent) == parent && !it->settle_tried) {
					up = it;
					break;
				}
		if (up) {
			up->settle_tried = true;
			atomic_fetch_add(&up->refs, 1);
		}
		pthread_mutex_unlock(&pend_lock);
		if (!up)
			break;
		if (related_process(pid, up->pid))
			upload_verdict(up, req);
		upload_put(up);
	}
	pthread_mutex_lock(&pend_lock);
	{
		size_t b;
		struct upload *it;

		for (b = 0; b < PEND_BUCKETS; b++)
			for (it = pend[b]; it; it = it->pnext)
				if (inode_to_ino(it->parent) == parent)
					it->settle_tried = false;
	}
	pthread_mutex_unlock(&pend_lock);
}

/*
 * Judge the writer's own staged uploads of parent/name now (see pending_settle_dir): every
 * one, not only the newest upload of the name, which may be another user's or an unrelated
 * process's (then the writer's own went on unjudged and its RELEASE verdict published it
 * under the old name while a rename moved nothing).  Waits for a verdict in progress.
 */
void pending_settle_name(fuse_ino_t parent, const char *name, fuse_req_t req)
{
	struct upload *v[16];
	size_t n, i;

	n = pend_all(parent, name, v, 16);
	for (i = 0; i < n; i++)
		if (related_process(fuse_req_ctx(req)->pid, v[i]->pid))
			upload_verdict(v[i], req);
	pending_drop(v, n);
}

/* The staged uploads of parent/name (at most max), each referenced. */
static size_t pend_all(fuse_ino_t parent, const char *name, struct upload **v, size_t max)
{
	struct upload *up;
	size_t n = 0;

	pthread_mutex_lock(&pend_lock);
	for (up = pend[pend_hash(parent, name)]; up && n < max; up = up->pnext)
		if (inode_to_ino(up->parent) == parent && strcmp(up->name, name) == 0) {
			atomic_fetch_add(&up->refs, 1);
			v[n++] = up;
		}
	pthread_mutex_unlock(&pend_lock);
	return n;
}

/*
 * Which staged uploads a namespace change by pid touches: its own (its unlink or rename of
 * a name it sees staged), or, when the backing file under the name went away or moved,
 * the rewrites staged for that file.  Another process's new upload of the same name is
 * never touched: nobody can cancel or move what they cannot see.
 */
static bool pend_touches(struct upload *up, pid_t pid, bool file_changed)
{
	if (file_changed)
		return up->replaces;
	return related_process(pid, up->pid);
}

size_t pending_grab(fuse_ino_t parent, const char *name, struct upload **v, size_t max)
{
	return pend_all(parent, name, v, max);
}

void pending_drop(struct upload **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		upload_put(v[i]);
}

/*
 * Cancel the uploads of v (pending_grab) that a namespace change by pid touches.  Those in a
 * verdict (a RELEASE judging them) are waited for on up->lock; a published one is reported
 * (1).  v was taken before the backing call that found no name, so an upload whose verdict
 * completed and left the table between that call and this one is still seen.
 */
static int pend_unlink_of(struct upload **v, size_t n, pid_t pid, bool file_gone)
{
	size_t i;
	int ret = -ENOENT;

	for (i = 0; i < n; i++) {
		if (!pend_touches(v[i], pid, file_gone))
			continue;
		/* up->lock waits for a verdict in progress (a RELEASE judging it) */
		pthread_mutex_lock(&v[i]->lock);
		if (v[i]->state == UP_STAGED) {
			v[i]->state = UP_CANCELLED;
			stage_drop(v[i]);	/* named: unlinked now, as a tmpfile is */
		} else if (v[i]->state == UP_PUBLISHED && !file_gone && ret != 0) {
			ret = 1;	/* published meanwhile: the name is there now */
		}
		pthread_mutex_unlock(&v[i]->lock);
		pend_remove(v[i]);
		if (ret != 1)
			ret = 0;
	}
	return ret;
}

int pending_unlink_grabbed(struct upload **v, size_t n, pid_t pid)
{
	return pend_unlink_of(v, n, pid, false);
}

int pending_unlink(fuse_ino_t parent, const char *name, pid_t pid, bool file_gone)
{
	struct upload *v[16];
	size_t n;
	int ret;

	n = pend_all(parent, name, v, 16);
	ret = pend_unlink_of(v, n, pid, file_gone);
	pending_drop(v, n);
	return ret;
}

/*
 * Move a staged upload to nparent/newname: 0; 1 when it was published meanwhile (its verdict
 * was in progress: the file is under the old name now), -ENOENT when it was rejected or
 * cancelled meanwhile.
 */
static int pend_move(struct upload *up, struct inode *nparent, const char *newname)
{
	char *n = strdup(newname);

	if (!n)
		return -ENOMEM;
	pend_remove(up);
	pthread_mutex_lock(&up->lock);
	if (up->state != UP_STAGED) {
		int ret = up->state == UP_PUBLISHED ? 1 : -ENOENT;

		pthread_mutex_unlock(&up->lock);
		free(n);
		return ret;
	}
	inode_ref(nparent);
	inode_unref(up->parent);
	up->parent = nparent;
	free(up->name);
	up->name = n;
	pthread_mutex_unlock(&up->lock);
	pend_insert(up);
	inode_set_name(up->inode, inode_to_ino(nparent), newname);
	return 0;
}

int pending_rename(fuse_ino_t parent, const char *name, struct inode *nparent,
		   const char *newname, pid_t pid, bool file_moved)
{
	struct upload *v[16];
	size_t n, i;
	int ret = -ENOENT;

	n = pend_all(parent, name, v, 16);
	for (i = 0; i < n; i++) {
		if (ret == -ENOENT && pend_touches(v[i], pid, file_moved))
			ret = pend_move(v[i], nparent, newname);
		upload_put(v[i]);
	}
	return ret;
}

/*
 * Namespace changes by name in a sticky directory.  The kernel checks the sticky rule (only
 * the file's owner, the directory's owner or root may remove or rename a file in it, or
 * replace one by rename) against what its lookup found, under its directory lock; a verdict
 * publishes an upload under its name without that lock, so the file under the name when the
 * daemon's unlinkat or renameat2 runs may be another user's upload published since.  These
 * take name_lock (every publish holds it while it takes a name) and look again.  Only for a
 * caller the rule binds: not root, not the directory's owner, the directory sticky.
 */
static bool sticky_binds(int dfd, uid_t uid)
{
	struct stat dst;

	return uid != 0 && fstat(dfd, &dst) == 0 && (dst.st_mode & S_ISVTX) && dst.st_uid != uid;
}

/* Under name_lock: whatever is under dfd/name now is uid's (or nothing is).  0 or -EPERM. */
static int sticky_may_remove(int dfd, const char *name, uid_t uid)
{
	struct stat st;

	if (fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_uid != uid)
		return -EPERM;
	return 0;
}

/*
 * unlinkat(pfd, name, 0) for uid.  In a sticky directory the file under the name must still be
 * one uid may remove, as the kernel found it when it checked: another user's upload published
 * since is not removed, -EPERM.  0 or -errno.
 */
int staging_unlink(int pfd, const char *name, uid_t uid)
{
	int ret;

	if (!sticky_binds(pfd, uid))
		return unlinkat(pfd, name, 0) < 0 ? -errno : 0;
	pthread_mutex_lock(&name_lock);
	ret = sticky_may_remove(pfd, name, uid);
	if (ret == 0)
		ret = unlinkat(pfd, name, 0) < 0 ? -errno : 0;
	pthread_mutex_unlock(&name_lock);
	return ret;
}

/*
 * renameat2, and for a backing filesystem without RENAME_NOREPLACE (sshfs, some FUSE and
 * network filesystems answer EINVAL) a rename after checking under name_lock that the target
 * is free: atomic against publishes, not against another rename to that name at the same
 * moment nor against writers in BACKING_DIR itself.  locked: the caller holds name_lock.
 */
static int rename_compat(int pfd, const char *name, int npfd, const char *newname,
			 unsigned int flags, bool locked)
{
	struct stat st;
	int ret;

	if (renameat2(pfd, name, npfd, newname, flags) == 0)
		return 0;
	if (errno != EINVAL || flags != RENAME_NOREPLACE)
		return -errno;
	if (!locked)
		pthread_mutex_lock(&name_lock);
	if (fstatat(npfd, newname, &st, AT_SYMLINK_NOFOLLOW) == 0)
		ret = -EEXIST;
	else if (errno != ENOENT)
		ret = -errno;
	else
		ret = renameat(pfd, name, npfd, newname) < 0 ? -errno : 0;
	if (!locked)
		pthread_mutex_unlock(&name_lock);
	return ret;
}

/*
 * renameat2(pfd, name, npfd, newname, flags) for uid.  What leaves a sticky directory (the
 * source; the target it replaces, or with RENAME_EXCHANGE swaps out) must still be uid's, as
 * the kernel found it: another user's upload published under either name since is neither
 * moved nor replaced, -EPERM.  (RENAME_NOREPLACE replaces nothing: its target is not looked
 * at.)  0 or -errno.
 */
int staging_rename(int pfd, const char *name, int npfd, const char *newname,
		   unsigned int flags, uid_t uid)
{
	bool src = sticky_binds(pfd, uid);
	bool dst = !(flags & RENAME_NOREPLACE) &&
		   (npfd == pfd ? src : sticky_binds(npfd, uid));
	int ret = 0;

	if (!src && !dst)
		return rename_compat(pfd, name, npfd, newname, flags, false);
	pthread_mutex_lock(&name_lock);
	if (src)
		ret = sticky_may_remove(pfd, name, uid);
	if (ret == 0 && dst)
		ret = sticky_may_remove(npfd, newname, uid);
	if (ret == 0)
		ret = rename_compat(pfd, name, npfd, newname, flags, true);
	pthread_mutex_unlock(&name_lock);
	return ret;
}

const char *staging_mode_name(enum staging_mode m)
{
	return m == STAGING_NAMED ? "named" : m == STAGING_TMPFILE ? "tmpfile" : "auto";
}

/* This host's name as it goes into staged file names: [A-Za-z0-9-], at most 32 bytes. */
static void host_tag(char *buf, size_t len)
{
	char h[256] = "";
	size_t i, n = 0;

	gethostname(h, sizeof(h) - 1);
	for (i = 0; h[i] && n + 1 < len && n < 32; i++)
		if ((h[i] >= 'a' && h[i] <= 'z') || (h[i] >= 'A' && h[i] <= 'Z') ||
		    (h[i] >= '0' && h[i] <= '9') || h[i] == '-')
			buf[n++] = h[i];
	if (!n)
		buf[n++] = 'h';
	buf[n] = 0;
}

/* Is pid a live (not zombie) process running the same program as we do? */
static bool daemon_alive(pid_t pid)
{
	char buf[512], self[64], *rp;

	if (!read_proc(pid, "stat", buf, sizeof(buf)))
		return false;
	rp = strrchr(buf, ')');
	if (!rp || rp[1] != ' ' || rp[2] == 'Z' || rp[2] == 'X')
		return false;
	snprintf(self, sizeof(self), "(%.32s)", program_invocation_short_name);
	return strstr(buf, self) != NULL;
}

/*
 * May start-up remove this staging entry?  Everything but a named upload ("up.HOST.PID.R"):
 * those are left alone while their daemon (this host, PID alive and not us) may still be
 * writing them; another host's only after a day without a change.
 */
static bool named_stale(int dfd, const char *name)
{
	char host[40], tag[40];
	const char *p, *dot;
	struct stat st;
	long pid;

	if (strncmp(name, "up.", 3) != 0)
		return true;
	p = name + 3;
	dot = strchr(p, '.');
	if (!dot || (size_t)(dot - p) >= sizeof(tag))
		return true;
	memcpy(tag, p, (size_t)(dot - p));
	tag[dot - p] = 0;
	host_tag(host, sizeof(host));
	if (strcmp(tag, host) != 0)
		return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		       time(NULL) - st.st_mtime > 86400;
	pid = strtol(dot + 1, NULL, 10);
	return pid <= 0 || pid == (long)getpid() || !daemon_alive((pid_t)pid);
}

/*
 * staging=auto: O_TMPFILE if the backing root takes one, else named.  A forced mode is
 * checked: staging=tmpfile on a filesystem without O_TMPFILE refuses to start.
 */
/* Filesystem type names for the log and status (statfs f_type). */
static void backing_probe(void)
{
	static const struct { unsigned long magic; const char *name; } types[] = {
		{ 0xEF53, "ext4" }, { 0x58465342, "xfs" }, { 0x9123683E, "btrfs" },
		{ 0x6969, "nfs" }, { 0x65735546, "fuse" }, { 0x01021994, "tmpfs" },
		{ 0x00C36400, "ceph" }, { 0x794c7630, "overlay" }, { 0x2FC12FC1, "zfs" },
		{ 0xFE534D42, "smb2" }, { 0xFF534D42, "cifs" },
	};
	union {
		struct file_handle h;
		char buf[sizeof(struct file_handle) + MAX_HANDLE_SZ];
	} hb;
	struct statfs sf;
	size_t i;
	int mid;

	snprintf(hgfs.fstype, sizeof(hgfs.fstype), "unknown");
	if (fstatfs(hgfs.staging_fd, &sf) == 0) {
		snprintf(hgfs.fstype, sizeof(hgfs.fstype), "0x%lx", (unsigned long)sf.f_type);
		for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
			if ((unsigned long)sf.f_type == types[i].magic)
				snprintf(hgfs.fstype, sizeof(hgfs.fstype), "%s", types[i].name);
	}
	hb.h.handle_bytes = MAX_HANDLE_SZ;
	hgfs.handles = name_to_handle_at(hgfs.staging_fd, "", &hb.h, &mid, AT_EMPTY_PATH) == 0;
	hgfs.sync_uploads = strcmp(hgfs.fstype, "fuse") == 0 || strcmp(hgfs.fstype, "nfs") == 0 ||
			    strcmp(hgfs.fstype, "cifs") == 0 || strcmp(hgfs.fstype, "smb2") == 0 ||
			    strcmp(hgfs.fstype, "ceph") == 0;
	/*
	 * FUSE filesystems without export support (sshfs) encode handles but reopen them only
	 * while the kernel still caches the inode (ESTALE after eviction, which open turns into
	 * a fresh lookup); by name (handles=off) is the alternative: an inode that is not open
	 * and was renamed behind the mount's back is then gone (ENOENT, a fresh lookup finds it).
	 */
	if (hgfs.handles_off)
		hgfs.handles = false;
}

/*
 * Does a hard link on the backing keep its file's inode number?  The inode table and the gate
 * (gate.c) keep everything per (st_dev, st_ino): a backing that numbers names apart (sshfs,
 * one number per path) would show a file's second name as a second, clean inode, so bytes
 * written through one name would reach readers of the other unjudged.  Such a backing gets
 * no links from hashgatefs (publish renames; link() through the mount is EPERM).  A probe
 * that cannot tell counts as "no".  Run in the staging dir under names start-up cleans.
 */
static void links_probe(void)
{
	char a[96], b[96], host[40];
	struct stat sa, sb;
	const char *why = NULL;
	int fd;

	hgfs.links_one_inode = false;
	host_tag(host, sizeof(host));
	snprintf(a, sizeof(a), "up.%s.%d.link-probe-a", host, (int)getpid());
	snprintf(b, sizeof(b), "up.%s.%d.link-probe-b", host, (int)getpid());
	unlinkat(hgfs.staging_fd, b, 0);
	fd = openat(hgfs.staging_fd, a, O_CREAT | O_TRUNC | O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0) {
		why = strerror(errno);
		goto out;
	}
	if (linkat(hgfs.staging_fd, a, hgfs.staging_fd, b, 0) < 0)
		why = strerror(errno);
	else if (fstat(fd, &sa) < 0 || fstatat(hgfs.staging_fd, b, &sb, AT_SYMLINK_NOFOLLOW) < 0)
		why = strerror(errno);
	else if (sa.st_dev != sb.st_dev || sa.st_ino != sb.st_ino)
		why = "a link gets its own inode number";
	else
		hgfs.links_one_inode = true;
	close(fd);	/* before the unlink: sshfs would keep an open file as .fuse_hidden* */
	unlinkat(hgfs.staging_fd, b, 0);
	unlinkat(hgfs.staging_fd, a, 0);
out:
	if (why)
		hglog(LOG_NOTICE, "hard links: not used, link() through the mount is refused (%s "
		      "on %s)", why, hgfs.backing);
}

static int staging_choose(void)
{
	int fd, err;

	backing_probe();
	links_probe();

	fd = openat(hgfs.staging_fd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	err = fd < 0 ? errno : 0;
	if (fd >= 0)
		close(fd);
	if (hgfs.staging_opt == STAGING_NAMED) {
		hgfs.staging = STAGING_NAMED;
	} else if (!err) {
		hgfs.staging = STAGING_TMPFILE;
	} else if (hgfs.staging_opt == STAGING_TMPFILE) {
		hglog(LOG_ERR, "staging=tmpfile: %s does not support O_TMPFILE (%s); use "
		      "staging=auto or staging=named", hgfs.backing, strerror(err));
		return -err;
	} else {
		hgfs.staging = STAGING_NAMED;
	}
	hglog(LOG_NOTICE, "staging uploads: %s (%s has %s, file handles: %s, fs %s)",
	      staging_mode_name(hgfs.staging), hgfs.backing,
	      err ? "no O_TMPFILE" : "O_TMPFILE", hgfs.handles ? "yes" : "no", hgfs.fstype);
	return 0;
}

/*
 * The staged file for up under the directory pfd: a named file in the staging dir (when named
 * and on its filesystem) or an O_TMPFILE in pfd; mode as the result will have it.
 */
static int stage_open(struct upload *up, int pfd, mode_t mode)
{
	unsigned char rnd[16];
	char host[40];
	struct stat pst;
	int tries, i;

	if (hgfs.staging == STAGING_NAMED && fstat(pfd, &pst) == 0 &&
	    pst.st_dev == hgfs.staging_dev) {
		host_tag(host, sizeof(host));
		for (tries = 0; tries < 4; tries++) {
			char hex[33];

			if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd))
				return -EIO;
			for (i = 0; i < 16; i++)
				sprintf(hex + 2 * i, "%02x", rnd[i]);
			snprintf(up->sname, sizeof(up->sname), "up.%s.%d.%s", host, (int)getpid(),
				 hex);
			up->fd = openat(hgfs.staging_fd, up->sname,
					O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW | O_CLOEXEC, 0600);
			if (up->fd >= 0 || errno != EEXIST)
				break;
		}
		if (up->fd < 0) {
			int e = -errno;

			up->sname[0] = 0;
			return e;
		}
		if (fchmod(up->fd, mode & 07777) < 0) {
			int e = -errno;

			unlinkat(hgfs.staging_fd, up->sname, 0);
			up->sname[0] = 0;
			return e;
		}
		return 0;
	}
	up->fd = openat(pfd, ".", O_TMPFILE | O_RDWR | O_CLOEXEC, mode & 07777);
	return up->fd < 0 ? -errno : 0;
}

/* A named staged file that will not be published: its name goes now. */
static void stage_drop(struct upload *up)
{
	if (up->sname[0]) {
		unlinkat(hgfs.staging_fd, up->sname, 0);
		up->sname[0] = 0;
	}
}

int staging_init(void)
{
	struct stat st;
	struct dirent *de;
	DIR *d;
	int fd, n = 0;

	if (mkdirat(hgfs.root_fd, HGFS_STAGING_NAME, 0700) < 0 && errno != EEXIST)
		return -errno;
	hgfs.staging_fd = openat(hgfs.root_fd, HGFS_STAGING_NAME,
				 O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (hgfs.staging_fd < 0)
		return -errno;
	if (fstat(hgfs.staging_fd, &st) < 0)
		return -errno;
	if (!S_ISDIR(st.st_mode))
		return -ENOTDIR;
	/* Named uploads live here: nobody but root may reach into it. */
	if ((st.st_mode & 077) && fchmodat(hgfs.root_fd, HGFS_STAGING_NAME, 0700, 0) < 0)
		return -errno;
	hgfs.staging_dev = st.st_dev;
	hgfs.staging_ino = st.st_ino;
	/*
	 * Leftovers are links made just before a rename that never happened: drop them.  Never
	 * HGFS_KEPT_NAME: evidence the quarantine could not take (fs/quarantine.c).
	 */
	fd = openat(hgfs.staging_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0 ||
		    strcmp(de->d_name, HGFS_KEPT_NAME) == 0 || !named_stale(dirfd(d), de->d_name))
			continue;
		if (unlinkat(dirfd(d), de->d_name, 0) == 0 ||
		    unlinkat(dirfd(d), de->d_name, AT_REMOVEDIR) == 0)
			n++;
	}
	closedir(d);
	if (n)
		hglog(LOG_NOTICE, "removed %d stale entries from %s/%s", n, hgfs.backing,
		      HGFS_STAGING_NAME);
	return staging_choose();
}

/* NULL with *err set: -ENOMEM, or the uid's upload limit (limits.c). */
static struct upload *upload_alloc(fuse_req_t req, struct inode *parent, const char *name,
				   int *err)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct upload *up;

	*err = limits_upload_begin(ctx->uid);
	if (*err < 0)
		return NULL;
	*err = -ENOMEM;
	up = calloc(1, sizeof(*up));
	if (!up || !(up->name = strdup(name))) {
		_Atomic uint64_t none = 0;	/* nothing was accounted yet */

		free(up);
		limits_upload_end(ctx->uid, &none);
		return NULL;
	}
	up->limited = true;
	pthread_mutex_init(&up->lock, NULL);
	pthread_cond_init(&up->cond, NULL);
	atomic_init(&up->refs, 1);
	up->fd = -1;
	up->state = UP_STAGED;
	up->uid = ctx->uid;
	up->gid = ctx->gid;
	up->pid = ctx->pid;
	up->start = time(NULL);
	up->shape_known = true;		/* a new, empty tmpfile */
	inode_ref(parent);
	up->parent = parent;
	if (hgfs.scan) {
		up->mask = scan_algos() & HASH_EXACT_MASK;
		up->hashing = hasher_init(&up->hasher, up->mask) == 0;
	}
	return up;
}

void upload_put(struct upload *up)
{
	bool last;

	last = atomic_fetch_sub(&up->refs, 1) == 1;
	if (!last)
		return;
	pend_remove(up);
	if (up->inode) {
		pthread_mutex_lock(&up->inode->lock);
		if (up->inode->up == up)
			up->inode->up = NULL;
		pthread_mutex_unlock(&up->inode->lock);
		inode_unref(up->inode);
	}
	if (up->hashing)
		hasher_release(&up->hasher);
	if (up->pre_cfg)
		cfg_put(up->pre_cfg);
	free(up->rg);
	pthread_cond_destroy(&up->cond);
	stage_drop(up);
	if (up->fd >= 0)
		close(up->fd);
	if (up->limited)
		limits_upload_end(up->uid, &up->lim_bytes);
	inode_unref(up->parent);
	free(up->name);
	pthread_mutex_destroy(&up->lock);
	free(up);
}

int upload_create(fuse_req_t req, struct inode *parent, const char *name, mode_t mode,
		  struct upload **out, struct stat *st)
{
	struct upload *up;
	struct inode *in;
	int pfd, ret;

	up = upload_alloc(req, parent, name, &ret);
	if (!up)
		return ret;
	up->mode = mode & 07777;
	pfd = inode_fd(parent, O_PATH);
	if (pfd < 0) {
		ret = pfd;
		goto err_up;
	}
	ret = stage_open(up, pfd, mode);
	if (ret < 0)
		goto err_pfd;
	ret = creds_own_new(pfd, NULL, up->fd, parent, req, mode);
	if (ret < 0)
		goto err_pfd;
	if (fstat(up->fd, st) < 0) {
		ret = -errno;
		goto err_pfd;
	}
	up->tdev = st->st_dev;
	up->tino = st->st_ino;
	up->kino = st->st_ino;
	st->st_nlink = 1;
	ret = inode_from_fd(up->fd, pfd, st, &in);
	if (ret < 0)
		goto err_pfd;
	inode_set_name(in, inode_to_ino(parent), name);
	inode_ref(in);
	up->inode = in;
	pthread_mutex_lock(&in->lock);
	in->up = up;
	pthread_mutex_unlock(&in->lock);
	inode_fd_put(parent, pfd);
	pend_insert(up);
	*out = up;
	return 0;

err_pfd:
	inode_fd_put(parent, pfd);
err_up:
	upload_put(up);
	return ret;
}

int upload_replace(fuse_req_t req, struct inode *in, struct upload **out)
{
	struct upload *up;
	struct inode *parent;
	struct stat st;
	fuse_ino_t pino;
	char *name;
	int pfd, ret;

	pthread_mutex_lock(&in->lock);
	if (!in->name || in->dead) {
		pthread_mutex_unlock(&in->lock);
		return -EBUSY;
	}
	pino = in->parent;
	name = strdup(in->name);
	pthread_mutex_unlock(&in->lock);
	if (!name)
		return -ENOMEM;
	parent = ino_to_inode(pino);
	up = upload_alloc(req, parent, name, &ret);
	free(name);
	if (!up)
		return ret;
	up->replaces = true;
	pfd = inode_fd(parent, O_PATH);
	if (pfd < 0) {
		ret = pfd;
		goto err_up;
	}
	/*
	 * Only a file that is exactly this name's single link can be replaced by rename.  A
	 * name that is gone or now another file (a concurrent upload published over it) makes
	 * this inode stale: -ESTALE, so that open lets the kernel look the name up again.
	 */
	pthread_mutex_lock(&name_lock);
	ret = -ESTALE;
	if (fstatat(pfd, up->name, &st, AT_SYMLINK_NOFOLLOW) < 0 || st.st_dev != in->dev ||
	    st.st_ino != in->ino) {
		pthread_mutex_unlock(&name_lock);
		goto err_pfd;
	}
	pthread_mutex_unlock(&name_lock);
	ret = -EXDEV;
	if (!S_ISREG(st.st_mode) || st.st_nlink != 1)
		goto err_pfd;
	up->mode = st.st_mode & 0777;
	ret = stage_open(up, pfd, st.st_mode & 01777);
	if (ret < 0)
		goto err_pfd;
	/* A rewrite keeps the file's owner, as truncating in place would. */
	if ((st.st_uid || st.st_gid) && fchown(up->fd, st.st_uid, st.st_gid) < 0) {
		ret = -errno;
		goto err_pfd;
	}
	if (fstat(up->fd, &st) < 0) {
		ret = -errno;
		goto err_pfd;
	}
	up->tdev = st.st_dev;
	up->tino = st.st_ino;
	/* An unrelated writer's rewrite may supersede another still in flight (last wins). */
	pthread_mutex_lock(&in->lock);
	in->up = up;
	pthread_mutex_unlock(&in->lock);
	inode_ref(in);
	up->inode = in;
	up->kino = in->kino;	/* what /proc/PID/fdinfo shows for the kernel's inode */
	inode_fd_put(parent, pfd);
	pend_insert(up);
	*out = up;
	return 0;

err_pfd:
	inode_fd_put(parent, pfd);
err_up:
	upload_put(up);
	return ret;
}

/* Read /proc/PID/WHAT into buf (NUL-terminated); 0 if the process or file is gone. */
static ssize_t read_proc(pid_t pid, const char *what, char *buf, size_t len)
{
	char p[64];
	ssize_t n;
	int fd;

	snprintf(p, sizeof(p), "/proc/%d/%s", (int)pid, what);
	fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = 0;
	return n;
}

static pid_t ppid_of(pid_t pid)
{
	char buf[512], *rp;

	if (!read_proc(pid, "stat", buf, sizeof(buf)))
		return 0;
	/* "pid (comm) S ppid ...": comm may contain anything, so parse after the last ')' */
	rp = strrchr(buf, ')');
	if (!rp || strlen(rp) < 5)
		return 0;
	return (pid_t)strtol(rp + 4, NULL, 10);
}

pid_t tgid_of(pid_t pid)
{
	char buf[1024], *t;

	if (!read_proc(pid, "status", buf, sizeof(buf)))
		return 0;
	t = strstr(buf, "\nTgid:");
	return t ? (pid_t)strtol(t + 6, NULL, 10) : 0;
}

/* Whether pid has capability cap in its effective set (false when it cannot be read). */
bool proc_capable(pid_t pid, int cap)
{
	char buf[4096], *t;

	if (!read_proc(pid, "status", buf, sizeof(buf)))
		return false;
	t = strstr(buf, "\nCapEff:");
	return t && ((strtoull(t + 8, NULL, 16) >> cap) & 1);
}

bool same_process(pid_t a, pid_t b)
{
	pid_t ta, tb;

	if (a == b)
		return true;
	ta = tgid_of(a);
	tb = tgid_of(b);
	return ta && ta == tb;
}

/*
 * Who sees a name that is still being uploaded: the uploading process, its children, its
 * parent (the shell that started it) and that parent's other children.  Everyone else sees the backing
 * directory, so unrelated writers of one name each stage their own upload (last clean close
 * wins) instead of tripping over each other's invisible file with EEXIST.
 */
bool related_process(pid_t asker, pid_t writer)
{
	pid_t wp, ap;

	if (asker <= 0 || writer <= 0)
		return false;
	if (same_process(asker, writer))
		return true;
	ap = ppid_of(asker);
	if (ap > 1 && same_process(ap, writer))
		return true;	/* a child of the writer (mv run by the writing shell) */
	wp = ppid_of(writer);
	if (wp <= 1)
		return false;
	return same_process(asker, wp) || ap == wp;
}

/* Is the /proc/PID/fd entry NAME (in dfd) a descriptor of this mount's inode kino? */
static bool fd_is(int dfd, pid_t pid, const char *name, ino_t kino)
{
	char what[300], link[PATH_MAX], info[512], *ino;
	ssize_t n;

	n = readlinkat(dfd, name, link, sizeof(link) - 1);
	if (n <= 0)
		return false;
	link[n] = 0;
	if ((size_t)n <= hgfs.mnt_len || strncmp(link, hgfs.mnt_real, hgfs.mnt_len) != 0 ||
	    link[hgfs.mnt_len] != '/')
		return false;
	snprintf(what, sizeof(what), "fdinfo/%s", name);
	if (!read_proc(pid, what, info, sizeof(info)))
		return false;
	ino = strstr(info, "\nino:");
	return ino && (ino_t)strtoull(ino + 5, NULL, 10) == kino;
}

/*
 * Does pid have an fd on this mount whose inode number is kino?  1 yes, 0 no, -1 it has no
 * descriptors at all (exiting: its files are being closed) or cannot be read.
 * This runs at every close of an upload, so it reads the fd directory with getdents64 into
 * one buffer (procfs fills it until it runs out of entries: a short read is the end) and
 * only opens fdinfo for links into this mount.
 */
static int pid_holds(pid_t pid, ino_t kino)
{
	char p[64];
	union {
		struct dirent64 d;
		char b[16384];
	} u;
	bool found = false, any = false;
	long n, off;
	int dfd;

	snprintf(p, sizeof(p), "/proc/%d/fd", (int)pid);
	dfd = open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return -1;
	while (!found && (n = syscall(SYS_getdents64, dfd, u.b, sizeof(u.b))) > 0) {
		for (off = 0; off < n && !found; ) {
			struct dirent64 *de = (struct dirent64 *)(u.b + off);

			off += de->d_reclen;
			if (de->d_name[0] == '.')
				continue;
			any = true;
			found = fd_is(dfd, pid, de->d_name, kino);
		}
		if ((size_t)n + 2 * sizeof(struct dirent64) < sizeof(u.b))
			break;
	}
	close(dfd);
	return found ? 1 : any ? 0 : -1;
}

bool process_holds(pid_t pid, ino_t kino)
{
	return pid > 0 && hgfs.mnt_real && pid_holds(pid, kino) == 1;
}

/*
 * FLUSH comes with every close(), also of one of several descriptors sharing the open file
 * (shell redirections dup2 and close the original before any byte is written; a child that
 * exits closes its inherited copy).  Judging then would publish a partial upload.  The file
 * stays open as long as the closing process or its parent still has a descriptor of it; the
 * verdict waits for that last close (and RELEASE judges whatever no FLUSH did).
 */
bool upload_open_elsewhere(struct upload *up, pid_t pid)
{
	pid_t pp;
	int h;

	if (pid <= 0 || !hgfs.mnt_real)
		return false;
	h = pid_holds(pid, up->kino);
	if (h == 1)
		return true;
	/*
	 * The thread that created the upload opened it after any fork of its parent, so the
	 * parent cannot hold it (short of fd passing): skip the second /proc walk, which is
	 * most of the cost of a small upload's close.
	 */
	if (pid == up->pid)
		return false;
	/* A child writing to an inherited fd (cat closes its stdout): does the parent hold it? */
	pp = ppid_of(pid);
	return pp > 1 && pid_holds(pp, up->kino) == 1;
}

int upload_getattr(struct upload *up, struct stat *st)
{
	struct stat tst;

	if (fstat(up->fd, &tst) < 0)
		return -errno;
	if (up->replaces) {
		/* The kernel knows this inode by the replaced file's identity. */
		tst.st_ino = st->st_ino;
		tst.st_dev = st->st_dev;
	}
	/* Staged content is, to its writer, the file under its name (until unlinked). */
	if (tst.st_nlink == 0 && up->state == UP_STAGED)
		tst.st_nlink = 1;
	*st = tst;
	return 0;
}

/*
 * Keep the upload's extent and first bytes current after a write of n bytes at off (lock
 * held): from the request's memory when it came in memory (small writes do), else unknown.
 */
static void note_shape(struct upload *up, const void *mem, uint64_t off, size_t n)
{
	if (!up->shape_known)
		return;
	if (off + n > up->wend)
		up->wend = off + n;
	if (up->nhead == sizeof(up->head) && off >= sizeof(up->head))
		return;		/* past the head, which is complete */
	if (off > up->nhead || !mem) {
		up->shape_known = false;	/* a gap before it, or bytes we never saw */
		return;
	}
	if (off < sizeof(up->head)) {
		size_t k = n < sizeof(up->head) - off ? n : sizeof(up->head) - off;

		memcpy(up->head + off, mem, k);
		if (off + k > up->nhead)
			up->nhead = off + k;
	}
}

int upload_shape(struct upload *up, uint64_t *size)
{
	int ret = -1;

	pthread_mutex_lock(&up->lock);
	if (up->shape_known && up->state == UP_STAGED) {
		*size = up->wend;
		ret = up->nhead && image_kind(up->head, up->nhead) != 0;
	}
	pthread_mutex_unlock(&up->lock);
	return ret;
}

/*
 * A thread's buffer for write data that came spliced (in a pipe): read into memory, it can be
 * hashed without reading it back from the file.  Freed when the FUSE worker thread ends.
 */
#define WBUF_MIN	(64u << 10)
#define WBUF_MAX	(1u << 20)	/* max_write (ops.c, hg_init) */
struct wbuf {
	size_t cap;
	char mem[];
};
static pthread_key_t wbuf_key;
static pthread_once_t wbuf_once = PTHREAD_ONCE_INIT;
static bool wbuf_ok;

static void wbuf_key_init(void)
{
	wbuf_ok = pthread_key_create(&wbuf_key, free) == 0;
}

static char *wbuf_get(size_t len)
{
	struct wbuf *b;

	pthread_once(&wbuf_once, wbuf_key_init);
	if (!wbuf_ok)
		return NULL;
	b = pthread_getspecific(wbuf_key);
	if (b && b->cap >= len)
		return b->mem;
	free(b);
	pthread_setspecific(wbuf_key, NULL);
	len = len < WBUF_MIN ? WBUF_MIN : WBUF_MAX;
	b = malloc(sizeof(*b) + len);
	if (!b || pthread_setspecific(wbuf_key, b) != 0) {
		free(b);
		return NULL;
	}
	b->cap = len;
	return b->mem;
}

ssize_t upload_write(struct upload *up, struct fuse_bufvec *in, off_t off,
		     struct upload_wh *hash)
{
	size_t size = fuse_buf_size(in);
	struct fuse_bufvec out = FUSE_BUFVEC_INIT(size), mb = FUSE_BUFVEC_INIT(size);
	struct fuse_bufvec *src = in;
	const void *mem;
	ssize_t n;
	int ret;

	hash->up = NULL;
	/* Over uid_max_upload_bytes: the write fails, nothing lands, nothing is published. */
	ret = limits_upload_grow(up->uid, &up->lim_bytes, off + size);
	if (ret < 0) {
		pthread_mutex_lock(&up->lock);
		if (!up->werr)
			up->werr = ret;
		pthread_mutex_unlock(&up->lock);
		return ret;
	}
	/* The request's bytes, if they are in memory (fuse_buf_copy advances in). */
	mem = in->count == 1 && !in->idx && !in->off && !(in->buf[0].flags & FUSE_BUF_IS_FD) ?
	      in->buf[0].mem : NULL;
	/*
	 * Spliced bytes the stream would hash next: into memory first (one copy, as the
	 * re-read would have been), so they are hashed from there and the shape is known.
	 */
	if (!mem && in->count == 1 && !in->idx && !in->off && size <= WBUF_MAX &&
	    hashq_in_order(up, (uint64_t)off)) {
		char *b = wbuf_get(size);

		if (b) {
			mb.buf[0].mem = b;
			n = fuse_buf_copy(&mb, in, 0);
			if (n != (ssize_t)size) {
				ret = n < 0 ? (int)n : -EIO;
				pthread_mutex_lock(&up->lock);
				if (!up->werr)
					up->werr = ret;
				pthread_mutex_unlock(&up->lock);
				return ret;
			}
			mem = b;
			src = &mb;
		}
	}
	/* No lock around the copy: writeback may send several writes of one file at once. */
	out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	out.buf[0].fd = up->fd;
	out.buf[0].pos = off;
	n = fuse_buf_copy(&out, src, 0);
	errno = n < 0 ? (int)-n : 0;
	ret = n < 0 ? -errno : (int)n;
	pthread_mutex_lock(&up->lock);
	if (up->state == UP_REJECTED) {
		ret = -EACCES;
	} else if (n < 0) {
		/* A write the uploader saw fail leaves a file it did not mean: never publish it. */
		if (!up->werr)
			up->werr = ret;
	} else {
		if (!mem) {
			hashq_wrote(up, off, n);
		} else if (hashq_wrote_mem(up, off, n)) {
			hash->up = up;
			hash->mem = mem;
			hash->off = (uint64_t)off;
			hash->n = (size_t)n;
		}
		note_shape(up, mem, (uint64_t)off, (size_t)n);
	}
	pthread_mutex_unlock(&up->lock);
	return ret;
}

/*
 * After a write hashed from memory: when the upload is small, not an image and all its bytes
 * are hashed, finish a copy of the hash state and look the digests up now, while the client
 * is busy elsewhere (usually closing).  Its verdict then only checks that nothing changed
 * since: the same streamed extent, streaming still on (any rewrite, truncate, mmap or
 * gap turns it off or moves the frontier), the same database snapshot and the same config
 * (its category actions rank a hash's lists).  A later write
 * makes this one wasted work, which the size limit keeps to a few per upload.
 */
#define PRECHECK_MAX	(64u << 10)
static bool precheck_fits(const struct upload *up)
{
	return up->state == UP_STAGED && up->hashing && !up->busy && !up->nrg && !up->werr &&
	       up->shape_known && up->wend == up->frontier && up->frontier <= PRECHECK_MAX;
}

static void upload_precheck(struct upload *up)
{
	struct fscfg *cfg, *old;
	struct scan_result r;
	struct digests d;
	struct hasher h;
	uint64_t end;

	pthread_mutex_lock(&up->lock);
	if (!precheck_fits(up) || !up->nhead || image_kind(up->head, up->nhead) != 0 ||
	    (up->pre_ok && up->pre_end == up->frontier) || hasher_copy(&h, &up->hasher) < 0) {
		pthread_mutex_unlock(&up->lock);
		return;
	}
	end = up->frontier;
	pthread_mutex_unlock(&up->lock);
	if (hasher_final(&h, &d) < 0) {
		hasher_release(&h);
		return;
	}
	hasher_release(&h);
	cfg = cfg_get();
	if (scan_fd_ex(up->fd, &d, &r, false) < 0) {
		cfg_put(cfg);
		return;		/* the verdict tries again and handles the error */
	}
	pthread_mutex_lock(&up->lock);
	if (precheck_fits(up) && up->frontier == end) {
		up->pre = r;
		up->pre_end = end;
		up->pre_ok = true;
		old = up->pre_cfg;
		up->pre_cfg = cfg;
		cfg = old;
	}
	pthread_mutex_unlock(&up->lock);
	if (cfg)
		cfg_put(cfg);
}

void upload_write_hash(struct upload_wh *hash)
{
	if (!hash->up || !hash->mem)
		return;
	hashq_hash_mem(hash->up, hash->mem, hash->off, hash->n);
	hash->mem = NULL;
}

void upload_write_hashed(struct upload_wh *hash)
{
	if (!hash->up)
		return;
	upload_write_hash(hash);
	if (hgfs.scan)
		upload_precheck(hash->up);
	upload_put(hash->up);
	hash->up = NULL;
}

void upload_add_writer(struct upload *up)
{
	pthread_mutex_lock(&up->lock);
	up->writers++;
	pthread_mutex_unlock(&up->lock);
}

bool upload_drop_writer(struct upload *up)
{
	bool last;

	pthread_mutex_lock(&up->lock);
	last = --up->writers == 0;
	pthread_mutex_unlock(&up->lock);
	return last;
}

void upload_dirty(struct upload *up)
{
	pthread_mutex_lock(&up->lock);
	up->shape_known = false;
	hashq_stop_streaming(up);
	pthread_mutex_unlock(&up->lock);
}

/*
 * The sticky-directory rule at the moment the upload takes the name: whatever is under the
 * name now (another user's file that appeared meanwhile, e.g. after its owner's O_EXCL
 * create succeeded) may be replaced only by its owner, the directory's owner or root, as
 * the kernel would have required of a rename over it.  -EPERM otherwise.  Called with
 * name_lock held, in the same section as the rename over the name that it allows.
 */
static int may_take_name(struct upload *up, int pfd)
{
	struct stat dst, fst;

	if (up->uid == 0 || fstat(pfd, &dst) < 0 || !(dst.st_mode & S_ISVTX))
		return 0;
	if (fstatat(pfd, up->name, &fst, AT_SYMLINK_NOFOLLOW) < 0)
		return 0;	/* free: nothing to take over */
	if (up->replaces && fst.st_dev == up->inode->dev && fst.st_ino == up->inode->ino)
		return 0;	/* still the file this rewrite replaces */
	if (fst.st_uid == up->uid || dst.st_uid == up->uid)
		return 0;
	return -EPERM;
}

/*
 * linkat of the tmpfile: by its descriptor (AT_EMPTY_PATH, CAP_DAC_READ_SEARCH, which the
 * unit keeps) without resolving a /proc path, else through /proc/self/fd.  0 or -errno.
 */
static int link_tmpfile(struct upload *up, int dfd, const char *name)
{
	char proc[64];

	if (linkat(up->fd, "", dfd, name, AT_EMPTY_PATH) == 0)
		return 0;
	if (errno != ENOENT && errno != EPERM)
		return -errno;
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", up->fd);
	return linkat(AT_FDCWD, proc, dfd, name, AT_SYMLINK_FOLLOW) < 0 ? -errno : 0;
}

/*
 * staging=named: move the staged file to its new name if that name is free; -EEXIST if it is
 * not (the caller then renames over it as for a rewrite).  Atomic where the filesystem has
 * RENAME_NOREPLACE or hard links that keep the inode number; else (sshfs, whose links are new
 * inode numbers, some FUSE filesystems) a rename after checking the name under name_lock,
 * which only a writer in BACKING_DIR itself can race.  Called with name_lock held.
 */
static int named_take_free(struct upload *up, int pfd)
{
	static atomic_bool no_noreplace;	/* learnt once: a round trip less per upload */
	struct stat st;
	int ret = -EINVAL;

	if (!atomic_load(&no_noreplace)) {
		ret = renameat2(hgfs.staging_fd, up->sname, pfd, up->name, RENAME_NOREPLACE) < 0 ?
		      -errno : 0;
		if (ret == -EINVAL || ret == -ENOSYS || ret == -EOPNOTSUPP)
			atomic_store(&no_noreplace, true);
	}
	if (ret == -EINVAL || ret == -ENOSYS || ret == -EOPNOTSUPP) {
		/* a link is the same file only where links keep the inode number (links_probe) */
		ret = -EPERM;
		if (hgfs.links_one_inode)
			ret = linkat(hgfs.staging_fd, up->sname, pfd, up->name, 0) < 0 ? -errno : 0;
		if (ret == 0) {
			unlinkat(hgfs.staging_fd, up->sname, 0);
		} else if (ret != -EEXIST && ret != -ENOSPC && ret != -EDQUOT && ret != -EIO) {
			if (fstatat(pfd, up->name, &st, AT_SYMLINK_NOFOLLOW) == 0)
				ret = -EEXIST;
			else if (errno != ENOENT)
				ret = -errno;
			else
				ret = renameat(hgfs.staging_fd, up->sname, pfd, up->name) < 0 ?
				      -errno : 0;
		}
	}
	if (ret == 0)
		up->sname[0] = 0;
	return ret;
}

/*
 * After a named publish the name must lead to the upload's inode: handles of the upload may
 * go on writing (a dup'ed descriptor after the first close), and the gate counts those writes
 * per inode (gate.c), so a reader reaching the file through an inode of another number would
 * get them unjudged.  links_probe keeps sshfs off the known cause (a link is a new number);
 * if the name still shows another number (a backing that renumbers on rename, or a rename
 * over the name racing this one), the upload's handles can no longer write (EIO): never a
 * rekey here, which on a race would take the other file's inode off the table.
 */
static void named_check_key(struct upload *up, int pfd)
{
	struct inode *in = up->inode;
	struct stat st;
	ino_t was;
	bool same;

	if (fstatat(pfd, up->name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT)
			return;		/* gone already: no name leads to these bytes */
		hglog(LOG_ERR, "published upload: cannot check its name (%s): its open "
		      "descriptors can no longer write", strerror(errno));
		atomic_store(&up->stray, true);
		return;
	}
	pthread_mutex_lock(&in->lock);
	same = st.st_dev == in->dev && st.st_ino == in->ino;
	was = in->ino;
	pthread_mutex_unlock(&in->lock);
	if (same)
		return;
	hglog(LOG_ERR, "published name has inode number %llu, its staged file %llu: the "
	      "upload's open descriptors can no longer write", (unsigned long long)st.st_ino,
	      (unsigned long long)was);
	atomic_store(&up->stray, true);
}

/* Link the tmpfile in and rename it over the final name.  Called with up->lock held. */
static int publish(struct upload *up)
{
	char tmp[100];
	struct stat st;
	bool refused;
	int pfd, ldir, ret;

	pfd = inode_fd(up->parent, O_PATH);
	if (pfd < 0)
		return pfd;
	/*
	 * A new name that is still free is linked in directly: as atomic as the rename and one
	 * directory change instead of two.  If the name exists by now (another upload won, or
	 * someone wrote into BACKING_DIR), fall through and rename over it as for a rewrite.
	 */
	if (!up->replaces) {
		pthread_mutex_lock(&name_lock);
		if (up->sname[0])
			ret = named_take_free(up, pfd);
		else
			ret = link_tmpfile(up, pfd, up->name);
		pthread_mutex_unlock(&name_lock);
		if (ret == 0)
			goto linked;
		if (ret != -EEXIST)
			goto out;
	}
	if (fstat(pfd, &st) < 0) {
		ret = -errno;
		goto out;
	}
	/* The staging dir only helps on the same filesystem; else link next to the target. */
	ldir = st.st_dev == hgfs.staging_dev ? hgfs.staging_fd : pfd;
	if (up->sname[0]) {
		/* named: the staged file has its name in the staging dir already */
		ldir = hgfs.staging_fd;
		snprintf(tmp, sizeof(tmp), "%s", up->sname);
	} else {
		snprintf(tmp, sizeof(tmp), ".hashgate-tmp.%d.%llu", (int)hgfs.st.pid,
			 (unsigned long long)atomic_fetch_add(&hgfs.tmpseq, 1));
		ret = link_tmpfile(up, ldir, tmp);
		if (ret < 0)
			goto out;
	}
	/*
	 * The sticky rule and the rename over the name in one name_lock section: between two,
	 * the file checked could go (its owner's unlink) and another user's upload take the
	 * freed name, which the rename would then replace.
	 */
	pthread_mutex_lock(&name_lock);
	refused = may_take_name(up, pfd) < 0;
	ret = refused ? -EPERM : renameat(ldir, tmp, pfd, up->name) < 0 ? -errno : 0;
	if (ret < 0) {
		pthread_mutex_unlock(&name_lock);
		if (!up->sname[0])
			unlinkat(ldir, tmp, 0);
		if (refused) {
			char epath[1024];

			hglog_escape(epath, sizeof(epath), up->name, 0);
			hglog(LOG_NOTICE, "upload of \"%s\" by uid %u not published: the name is "
			      "now another user's file in a sticky directory", epath,
			      (unsigned)up->uid);
		}
		goto out;
	}
	up->sname[0] = 0;
	ret = 0;
	if (up->replaces) {
		if (fstat(up->fd, &st) == 0)
			ret = inode_rekey(up->inode, up->fd, pfd, &st);
		if (ret < 0)
			hglog(LOG_ERR, "rekey after publish failed: %s", strerror(-ret));
		ret = 0;
	}
	pthread_mutex_unlock(&name_lock);
linked:
	if (hgfs.staging == STAGING_NAMED)
		named_check_key(up, pfd);
	inode_set_name(up->inode, inode_to_ino(up->parent), up->name);
out:
	inode_fd_put(up->parent, pfd);
	return ret;
}

/* Forget the staged content: the kernel's view of the inode must not keep it either. */
static void reject(struct upload *up, int result)
{
	struct inode *in = up->inode;

	up->state = UP_REJECTED;
	up->result = result;
	pthread_mutex_lock(&in->lock);
	if (in->up == up)
		in->up = NULL;
	if (!up->replaces)
		in->dead = true;
	pthread_mutex_unlock(&in->lock);
	if (ftruncate(up->fd, 0) < 0)
		hglog(LOG_ERR, "truncating rejected upload: %s", strerror(errno));
	stage_drop(up);
}

/* The upload's path for the verdict's log and audit records, made on first need. */
static void verdict_path(struct upload *up, struct verdict_ctx *v, char **path)
{
	if (!*path)
		*path = path_of(inode_to_ino(up->parent), up->name);
	v->path = *path;
}

int upload_verdict(struct upload *up, fuse_req_t req)
{
	struct fscfg *cfg;
	struct scan_result r;
	struct digests streamed, *sp = NULL;
	struct hasher save;
	bool saved = false, keep = false;
	struct verdict_ctx v;
	struct stat st;
	enum hg_action act;
	uint64_t wsnap;
	char *path = NULL;
	bool inval;
	int ret, pret;

	/*
	 * The upload stays in the pending table until its verdict is done: a writer's lookup or
	 * listing (pending_settle_*) that comes while a RELEASE judges it waits on up->lock for
	 * the verdict instead of missing a name that is about to appear (close() returned).
	 */
	pthread_mutex_lock(&up->lock);
	if (up->state != UP_STAGED) {
		ret = up->state == UP_CANCELLED ? 0 : up->result;
		pthread_mutex_unlock(&up->lock);
		pend_remove(up);
		return ret;
	}
	cfg = cfg_get();
	wsnap = atomic_load(&up->inode->wgen);
	memset(&v, 0, sizeof(v));
	v.uid = up->uid;
	v.gid = up->gid;
	v.pid = up->pid;
	v.mode = up->mode;
	v.start = up->start;
	v.kind = up->replaces ? "rewrite" : "upload";
	/*
	 * Network filesystems (sshfs, NFS) may acknowledge writes before the server took them
	 * and report a failure (ENOSPC, EIO) only at the next flush: collect it now, before the
	 * content is judged and published as if complete.
	 */
	if (!up->werr && hgfs.sync_uploads && fsync(up->fd) < 0) {
		up->werr = -errno;
		hglog(LOG_NOTICE, "staged upload failed its sync to the backing filesystem: %s",
		      strerror(errno));
	}
	if (up->werr) {
		char epath[1024];

		verdict_path(up, &v, &path);
		hglog_escape(epath, sizeof(epath), path ? path : "?", 0);
		hglog(LOG_NOTICE, "verdict=incomplete kind=%s path=\"%s\" uid=%u error=\"%s\" "
		      "published=no", v.kind, epath, (unsigned)v.uid,
		      strerror(-up->werr));
		reject(up, up->werr);
		ret = up->werr;
		goto out;
	}
	if (!hgfs.scan) {
		ret = publish(up);
		goto published;
	}
	stat_add(&hgfs.st.uploads_scanned, 1);
	hashq_step(up);		/* hash what the background hasher has not */
	if (up->pre_ok && precheck_fits(up) && up->frontier == up->pre_end &&
	    up->pre_cfg == cfg && scan_current(up->pre.generation)) {
		r = up->pre;		/* worked out after the last write (upload_precheck) */
		ret = 0;
		stat_add(&hgfs.st.bytes_scanned, r.d.size);
		hashq_stop_streaming(up);
		goto scanned;
	}
	/*
	 * Streamed digests count when they cover the whole file.  A small upload whose every
	 * change was a write we saw (shape_known: no truncate, fallocate, second descriptor) is
	 * as long as its furthest write; others, and those whose hash state is kept (st), ask.
	 */
	if (up->hashing && !up->nrg &&
	    ((up->shape_known && up->frontier < GATE_RESUME_MIN && up->wend == up->frontier) ||
	     (fstat(up->fd, &st) == 0 && (uint64_t)st.st_size == up->frontier))) {
		/* the state before final lets later appends resume (gate.c) */
		if (up->frontier >= GATE_RESUME_MIN && hasher_copy(&save, &up->hasher) == 0)
			saved = true;
		if (hasher_final(&up->hasher, &streamed) == 0)
			sp = &streamed;
	}
	hashq_stop_streaming(up);
	ret = scan_fd(up->fd, sp, &r);
scanned:
	if (ret < 0) {
		verdict_path(up, &v, &path);
		if (scan_on_error(&r, &cfg->c) == ON_ERROR_ALLOW) {
			quarantine_log_error(&v, ret, true);
			ret = publish(up);
			goto published;
		}
		quarantine_log_error(&v, ret, false);
		reject(up, -EIO);
		ret = -EIO;
		goto out;
	}
	if (r.match) {
		verdict_path(up, &v, &path);
		ret = quarantine_match(&v, up->fd, &r, &act);
		if (act != ACTION_LOG) {
			reject(up, ret);
			goto out;
		}
	} else {
		if (cfg->c.log_clean)
			verdict_path(up, &v, &path);
		quarantine_log_clean(&v, &r);
	}
	ret = publish(up);
published:
	if (ret < 0) {
		hglog(LOG_ERR, "publishing upload failed: %s", strerror(-ret));
		reject(up, ret);
		goto out;
	}
	up->state = UP_PUBLISHED;
	up->result = 0;
	atomic_store(&up->inode->sgen, wsnap);
	if (saved && sp)
		keep = true;
	pthread_mutex_lock(&up->inode->lock);
	if (up->inode->up == up)
		up->inode->up = NULL;
	pthread_mutex_unlock(&up->inode->lock);
out:
	if (saved && !keep)
		hasher_release(&save);
	pret = ret;
	free(path);
	cfg_put(cfg);
	inval = up->state == UP_REJECTED && up->replaces;
	/* Judged: the uid may start its next upload before the kernel's RELEASE of this one. */
	if (up->limited && up->state != UP_STAGED)
		limits_upload_done(up->uid, &up->lim_bytes);
	pthread_mutex_unlock(&up->lock);
	if (keep)
		gate_keep_hash(up->inode, &st, &save, wsnap);
	pend_remove(up);	/* after up->lock: the pending table lock comes first */
	/*
	 * The kernel's page cache of a rejected rewrite holds the rejected bytes under the old
	 * file's inode: drop it (outside up->lock, the kernel may wait for a write in flight).
	 */
	if (inval && hgfs.se)
		fuse_lowlevel_notify_inval_inode(hgfs.se, inode_to_ino(up->inode), 0, 0);
	return pret;
}
