/*
 * ops.c - the FUSE low-level operations table of hashgatefs.
 *
 * Behaviour (what tests and users can rely on):
 *  - Everything under BACKING_DIR is passed through, keyed by backing inodes.  The root's
 *    .hashgate-staging directory and the quarantine directory (when inside BACKING_DIR) can
 *    not be looked up, listed, created, renamed or linked to through the mount; names
 *    starting with ".hashgate-tmp." are reserved (EPERM) and never listed.
 *  - Objects created through the mount belong to the calling uid/gid (group of a setgid
 *    directory); permissions are checked by the kernel (default_permissions is forced on).
 *  - create() (without O_APPEND), and write-opens with O_TRUNC or (without O_APPEND) of an
 *    empty regular file with a single link and no other open descriptor, stage the content
 *    in an O_TMPFILE: the name in BACKING_DIR does
 *    not exist / keeps its old content until the verdict.  The uploading process, its parent,
 *    its children and its parent's other children (e.g. the shell that started it) find the
 *    staged name on lookup; only the uploading process can open it.  Other processes see
 *    the backing directory as it is (open of another process's staged new name: ENOENT,
 *    except that a related process opening it to write gets ESTALE and from then on does
 *    not see it, so the kernel's retry creates its own upload; of a file being rewritten:
 *    its old content, uncached).
 *  - A published rewrite keeps the inode number the kernel first saw (as truncating in place
 *    would), though the backing file is a new one.  A write-open with O_TRUNC of an inode
 *    whose name is meanwhile another file (a concurrent upload was published over it) or
 *    gone, and any open of an inode whose backing file is gone, fails with ESTALE: the
 *    kernel then looks the name up again and retries (O_CREAT creates), instead of
 *    truncating a file no longer under the name or failing with ENOENT.
 *  - The verdict is made at FLUSH, i.e. in the close() that ends the upload: a close while the
 *    closing process or its parent still holds a descriptor of the file (dup2 by a shell, a
 *    second open) does not end it, the last one does.  (Except after writing: the creating
 *    thread's close of a handle it wrote through ends the upload even if it holds a dup of
 *    it, see flush_is_last; later writes through the dup are in-place writes under the rule
 *    below.)  Clean: the file is renamed over the
 *    name atomically; close() returns 0.  Match (quarantine or block): nothing is published,
 *    close() fails with EACCES.  Scan failure: close() fails with EIO and nothing is
 *    published (on_error=allow publishes and logs instead).  A write that failed (ENOSPC)
 *    makes the upload unpublishable: close() returns that error.  A process that dies
 *    without close gets the verdict at RELEASE of the last writer (no error can be returned).
 *  - The uploader's own namespace operations see its staged files as a plain file system
 *    would: link, rename (from/onto), rmdir of / readdir of the directory holding them first
 *    give the upload its verdict (a rejected upload is then gone: link fails with EACCES,
 *    the others act on a missing file); unlink cancels it (or, when a RELEASE was judging
 *    it and published it meanwhile, removes the published name).  Another user's or an
 *    unrelated process's upload of the same name, staged later, changes none of this.
 *  - Every other write (append, reopen-and-write, truncate, fallocate, mmap, writes after a
 *    publish by a second descriptor or a forked child) goes straight to the visible file
 *    under one rule, fs/gate.c: bytes written through the mount are never returned to
 *    another process (other than the writer's own, never to another uid) by open, read,
 *    mmap, sendfile or splice before the content holding them is judged.  Opens and reads
 *    by others judge first (or wait for the verdict in progress); the FLUSH and RELEASE of
 *    every handle that wrote judge too; a truncate through a path judges at once.  A match
 *    is pulled through the verdict's descriptor (truncated, then unlinked) and that
 *    open/read/close/truncate fails with EACCES (a read: EIO); a pull that fails is EIO,
 *    logged and audited.  No size limit applies to content written through the mount.
 *  - create() with O_APPEND makes the file at once and appends in place under that rule:
 *    appenders creating one shared log must all land in it (staged uploads would replace
 *    each other).
 *  - Handles that could share the page cache across processes with a writer are direct_io
 *    (gate_open); copy_file_range is not offered (the kernel copies by read and write).
 *  - Only the uploader's own processes can cancel (unlink) or move (rename) its staged new
 *    upload; publishing over a name that meanwhile holds another user's file in a sticky
 *    directory fails with EPERM.  So do an unlink and a rename (either name; RENAME_EXCHANGE,
 *    RENAME_NOREPLACE) in a sticky directory when, by the time the daemon makes it, another
 *    user's upload was published under the name the kernel checked (the caller's own file or
 *    a free name then): nothing is removed, moved or replaced (staging_unlink/_rename; root
 *    and the directory's owner are not checked).  chmod/chown during a staged rewrite also
 *    change the file under the name.  listxattr hides trusted.* from all but root.
 *  - The kernel asks for security.capability before every cached write (to drop file
 *    capabilities as a write must).  A staged upload's writer that cannot read (O_WRONLY,
 *    no O_APPEND, no set-id bits at create) is direct_io (upload_direct): no question, no
 *    copy into the page cache; set-id bits a chmod adds meanwhile are dropped by the daemon.
 *    Otherwise a staged upload's tmpfile is new and has no capability unless a setxattr
 *    went to it: that question is answered ENODATA without a syscall.  xattr=off answers
 *    every xattr request ENOSYS, so the kernel stops asking (one round trip less per write):
 *    no extended attributes through the mount (user.*, security.*, trusted.*, ACLs, file
 *    capabilities are neither read, set nor listed); the daemon then drops
 *    security.capability itself on the first in-place change of a file through a handle and
 *    on a truncate, as the kernel would have.
 *  - Locks (flock, fcntl) are handled by the kernel locally for this mount.
 *  - Hard links to another process's staged (unpublished) file are refused with EBUSY.  On a
 *    backing whose hard links get their own inode number (sshfs numbers by path; probed at
 *    start-up, staging.c links_probe) every link() is refused with EPERM: the second name
 *    would be another inode, outside the gate's account of writes through the first.
 *  - Writes are read from /dev/fuse (splice=on splices them); an upload's writes in file order
 *    are hashed from their own bytes (up to 16 KiB before the reply, larger ones after it),
 *    others from the page cache by a background thread (hashq.c), so a write waits at most
 *    for hashing its own few KiB; the close waits for the rest.  After close() returns, the
 *    writer's next lookup or listing sees the verdict's outcome (it waits for a RELEASE
 *    still judging).
 */
#include <dirent.h>
#include <errno.h>
#include <linux/capability.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "fs/hgfs.h"
#include "hashdb/image.h"
#include "hashdb/hglog.h"

static struct fh *fh_of(struct fuse_file_info *fi)
{
	return (struct fh *)(uintptr_t)fi->fh;
}

/* The fd file operations go to: the handle's own, or the staged upload's tmpfile. */
static int fh_fd(struct fh *fh)
{
	if (fh->fd >= 0)
		return fh->fd;
	return fh->up ? fh->up->fd : -1;	/* -1: the syscall fails with EBADF */
}

/* A handle of an upload published under a name that leads to another inode: no more writes. */
static bool fh_stray(const struct fh *fh)
{
	return fh && fh->up && atomic_load(&fh->up->stray);
}

/* An fd to act on for inode-level operations: the staged tmpfile while one exists. */
struct tgt {
	int fd;
	struct inode *in;
	struct upload *up;
	bool borrowed;			/* fd is an open handle's own (not ours to close) */
};

static int tgt_get(struct inode *in, int flags, struct tgt *t)
{
	t->in = in;
	t->up = NULL;
	t->borrowed = false;
	pthread_mutex_lock(&in->lock);
	if (in->up) {
		t->up = in->up;
		atomic_fetch_add(&t->up->refs, 1);
	}
	pthread_mutex_unlock(&in->lock);
	if (t->up) {
		t->fd = t->up->fd;
		return 0;
	}
	t->fd = inode_fd(in, flags);
	return t->fd < 0 ? t->fd : 0;
}

/*
 * tgt_get, for an operation that came with an open handle: where the inode cannot be reopened
 * (without file handles, when its open pin could not be taken for want of descriptors, and
 * the name is gone) the handle's own fd serves, as open_by_handle_at would have found the
 * open file.
 */
static int tgt_get_fh(struct inode *in, int flags, struct fh *fh, struct tgt *t)
{
	int ret = tgt_get(in, flags, t);

	if (ret == -ENOENT && fh && !fh->dir && fh_fd(fh) >= 0) {
		t->fd = fh_fd(fh);
		t->borrowed = true;
		ret = 0;
	}
	return ret;
}

static void tgt_put(struct tgt *t)
{
	if (t->up)
		upload_put(t->up);
	else if (!t->borrowed)
		inode_fd_put(t->in, t->fd);
}

static bool bad_name(struct inode *parent, const char *name)
{
	return inode_is_hidden(parent, name, NULL) || strncmp(name, ".hashgate-tmp.", 14) == 0;
}

static void entry_of(struct fuse_entry_param *e, struct inode *in, const struct stat *st)
{
	memset(e, 0, sizeof(*e));
	e->ino = inode_to_ino(in);
	e->attr = *st;
	/*
	 * The kernel takes i_ino from every reply: keep it the number it first saw, although
	 * a published rewrite moves the inode to another backing file (inode_rekey).  Open
	 * descriptors are recognised by it in /proc/PID/fdinfo (upload_open_elsewhere).
	 */
	e->attr.st_ino = in->kino;
	e->attr_timeout = hgfs.timeout;
	e->entry_timeout = hgfs.timeout;
}

/*
 * The largest WRITE that libfuse can splice: its buffer (max_write + a 4 KiB header) must fit
 * a pipe of pipe-max-size (a power of two of pages), and 1 MiB at most as without splice.
 */
static unsigned splice_max_write(void)
{
	unsigned long pmax = 1024 * 1024;
	FILE *f = fopen("/proc/sys/fs/pipe-max-size", "re");
	char line[32], *end;

	if (f) {
		if (fgets(line, sizeof(line), f)) {
			unsigned long v = strtoul(line, &end, 10);

			if (end != line)
				pmax = v;
		}
		fclose(f);
	}
	if (pmax >= 2 * 1024 * 1024)
		return 1024 * 1024;
	if (pmax < 128 * 1024)
		pmax = 128 * 1024;	/* libfuse then reads instead of splicing: still correct */
	return (unsigned)(pmax - 4096);
}

static void hg_init(void *userdata, struct fuse_conn_info *conn)
{
	/* The kernel must send O_TRUNC with open, or a rewrite could not be staged. */
	if (conn->capable & FUSE_CAP_ATOMIC_O_TRUNC)
		conn->want |= FUSE_CAP_ATOMIC_O_TRUNC;
	/* Root writes do not clear set-id bits; let the kernel ask for it explicitly. */
	conn->want &= ~FUSE_CAP_HANDLE_KILLPRIV;
	/* Never the writeback cache: it mixes concurrent uploads of one file (main.c). */
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	conn->want &= ~(FUSE_CAP_FLOCK_LOCKS | FUSE_CAP_POSIX_LOCKS);
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE;
	/*
	 * splice=on: WRITE requests go from /dev/fuse into a pipe and from there into the file.
	 * libfuse only splices when its per-thread pipe holds max_write plus a 4 KiB header, and
	 * a pipe grows to pipe-max-size at most (1 MiB by default; CAP_SYS_RESOURCE may not
	 * help in a container): with max_write 1 MiB it silently read() every request, which is
	 * what ran before splice=on fitted max_write to the pipe.  Off by default: every request,
	 * however small, then costs a splice and a read of the pipe instead of one read, and
	 * small files are most of the traffic (README, issue 20).  libfuse turns it on by itself
	 * (we have write_buf), so off must clear it.
	 */
	if (hgfs.splice_read && (conn->capable & FUSE_CAP_SPLICE_READ))
		conn->want |= FUSE_CAP_SPLICE_READ;
	else
		conn->want &= ~FUSE_CAP_SPLICE_READ;
	/*
	 * readdirplus=auto (libfuse's default) lets the kernel ask for the attributes with a
	 * listing when it sees them used (ls -l, find -ls); on always does, off never.
	 */
	if (hgfs.rdplus == RDPLUS_OFF)
		conn->want &= ~(FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO);
	else if (hgfs.rdplus == RDPLUS_ON && (conn->capable & FUSE_CAP_READDIRPLUS))
		conn->want = (conn->want | FUSE_CAP_READDIRPLUS) & ~FUSE_CAP_READDIRPLUS_AUTO;
	conn->max_write = (conn->want & FUSE_CAP_SPLICE_READ) ? splice_max_write() : 1024 * 1024;
	conn->max_readahead = 1024 * 1024;
	/*
	 * RELEASE is a background request, and a deferred one (its verdict in the pool) keeps
	 * its slot until answered: with the kernel's 12, a dozen killed 4 GiB uploads stalled
	 * every other RELEASE on the mount, so tenants' handles were never freed (and counted
	 * against their limits.c share).  The kernel caps this by its own max_user_bgreq.
	 */
	conn->max_background = 1024;
	conn->congestion_threshold = 768;
}

static void hg_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fuse_entry_param e;
	struct inode *p = ino_to_inode(parent), *in;
	struct upload *up;
	struct stat st;
	unsigned gen;
	int ret;

	if (strncmp(name, ".hashgate-tmp.", 14) == 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	gen = pending_gen();
	ret = inode_lookup(p, name, &st, &in);
	if (ret == -ENOENT) {
		/* The uploader's own view of a name still being staged. */
		up = pending_find_own(parent, name, fuse_req_ctx(req)->uid, fuse_req_ctx(req)->pid);
		/*
		 * None, but one left the table since the backing lookup: its verdict may have
		 * published the name in between (a RELEASE judging the writer's upload after
		 * its close() returned).  Look again rather than answer ENOENT for it.
		 */
		if (!up && pending_gen() != gen)
			ret = inode_lookup(p, name, &st, &in);
		if (up && up->state != UP_STAGED) {
			/* judged meanwhile: wait for its verdict, then look at the directory */
			upload_verdict(up, req);
			upload_put(up);
			up = NULL;
			ret = inode_lookup(p, name, &st, &in);
		}
		if (up) {
			if (upload_getattr(up, &st) == 0) {
				inode_hold_lookup(up->inode);
				entry_of(&e, up->inode, &st);
				e.entry_timeout = 0;
				upload_put(up);
				fuse_reply_entry(req, &e);
				return;
			}
			upload_put(up);
		}
	}
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	entry_of(&e, in, &st);
	fuse_reply_entry(req, &e);
}

static void hg_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	inode_forget(ino_to_inode(ino), nlookup);
	fuse_reply_none(req);
}

static void hg_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	size_t i;

	for (i = 0; i < count; i++)
		inode_forget(ino_to_inode(forgets[i].ino), forgets[i].nlookup);
	fuse_reply_none(req);
}

static int do_getattr(struct inode *in, struct fh *fh, struct stat *st)
{
	struct tgt t;
	int ret;

	ret = tgt_get_fh(in, O_PATH, fh, &t);
	if (ret < 0)
		return ret;
	if (t.up) {
		st->st_ino = in->ino;
		st->st_dev = in->dev;
		ret = upload_getattr(t.up, st);
	} else if (fstat(t.fd, st) < 0) {
		ret = -errno;
	}
	st->st_ino = in->kino;	/* see entry_of */
	tgt_put(&t);
	return ret;
}

static void hg_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct stat st;
	int ret;

	ret = do_getattr(ino_to_inode(ino), fi ? fh_of(fi) : NULL, &st);
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_attr(req, &st, hgfs.timeout);
}

/*
 * A descriptor opened for writing without O_TRUNC, truncated to 0 before any write, is a
 * rewrite too (dd does this): switch it to a staged upload so the old content stays until
 * the verdict.  Same conditions as at open.  1 restaged, 0 not (truncate in place), or the
 * uid's upload limit error.
 */
static int fh_restage(struct fh *fh, fuse_req_t req)
{
	struct inode *in;
	struct upload *up;
	int ret;

	if (!fh || fh->up || fh->fd < 0 || !fh->writable || fh->wrote || fh->dir)
		return 0;
	in = fh->inode;
	if (!S_ISREG(in->type) || atomic_load(&in->openfh) != 1)
		return 0;
	ret = upload_replace(req, in, &up);
	/* Over the uid's upload limit: refuse, never fall back to an in-place rewrite. */
	if (ret == -EMFILE || ret == -ENFILE)
		return ret;
	if (ret < 0)
		return 0;
	close(fh->fd);
	fh->fd = -1;
	fh->up = up;
	upload_add_writer(up);
	fh->counted = true;
	if (fh->plain) {
		fh->plain = false;
		atomic_fetch_sub(&in->plainfh, 1);
	}
	atomic_fetch_sub(&in->writers, 1);
	return 1;
}

/*
 * xattr=off: the kernel no longer learns of file capabilities, so it cannot drop them when a
 * file changes; do what it would have done (file_remove_privs) on the backing file.  A new
 * or staged file has none.  Errors other than "there is none" are logged, not returned: the
 * write itself is fine, and the file is not executed through a nosuid mount anyway.
 */
static void kill_caps(int fd)
{
	if (hgfs.xattr || fd < 0)
		return;
	if (fremovexattr(fd, "security.capability") < 0 && errno != ENODATA &&
	    errno != EOPNOTSUPP)
		hglog(LOG_WARNING, "dropping security.capability of a changed file: %s",
		      strerror(errno));
}

/*
 * A staged upload's writer that cannot read (O_WRONLY: cp, tar, rsync, sftp, PHP) is direct_io:
 * its bytes go to us without a copy into the kernel's page cache, and the kernel does not ask
 * for security.capability before each write (a round trip per file).  The kernel also skips
 * file_remove_privs on direct writes, so set-id bits at create keep the handle cached, and
 * those a chmod adds while staged are dropped by kill_privs.  Not for appends (the
 * kernel places them by its own idea of the size) nor for a writer that also reads (a
 * shared mmap of a direct_io handle fails).
 */
static bool upload_direct(const struct fuse_file_info *fi, mode_t mode)
{
	return (fi->flags & O_ACCMODE) == O_WRONLY && !(fi->flags & O_APPEND) &&
	       !(mode & (S_ISUID | S_ISGID));
}

/*
 * What the kernel's file_remove_privs does before a write, for a direct_io writer of a staged
 * upload: set-uid, and set-gid with group execute, go unless the writer has CAP_FSETID.  Only
 * after a chmod to set-id bits while staged (up->privs).  (A file capability goes by itself:
 * the backing filesystem drops it on our own write, whatever our capabilities.)  Failures are
 * logged, not returned: the upload is its writer's own file, which it could chmod back anyway.
 */
static void kill_privs(struct upload *up, pid_t tid)
{
	struct stat st;
	mode_t kill = 0;

	if (!atomic_exchange(&up->privs, false))
		return;
	if (fstat(up->fd, &st) < 0)
		return;
	if (st.st_mode & S_ISUID)
		kill |= S_ISUID;
	if ((st.st_mode & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
		kill |= S_ISGID;
	if (kill && !proc_capable(tid, CAP_FSETID) && fchmod(up->fd, st.st_mode & 07777 & ~kill) < 0)
		hglog(LOG_WARNING, "dropping set-id bits of a written upload: %s", strerror(errno));
}

/*
 * chmod/chown of the object behind an O_PATH (or any) fd, as setattr asks.  rw: fd is a
 * regular file open for I/O (a staged upload's tmpfile), which fchmod takes directly, without
 * the /proc path an O_PATH fd needs.  type: the inode's S_IFMT bits, which never change (the
 * symlink check needs no fstat).
 */
static int set_owner_mode(int fd, bool rw, mode_t type, const struct stat *attr, int valid)
{
	char proc[64];

	if (valid & FUSE_SET_ATTR_MODE) {
		if (rw) {
			if (fchmod(fd, attr->st_mode & 07777) < 0)
				return -errno;
		} else {
			if (S_ISLNK(type))
				return -EOPNOTSUPP;
			snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
			if (chmod(proc, attr->st_mode & 07777) < 0)
				return -errno;
		}
	}
	if (valid & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		uid_t uid = (valid & FUSE_SET_ATTR_UID) ? attr->st_uid : (uid_t)-1;
		gid_t gid = (valid & FUSE_SET_ATTR_GID) ? attr->st_gid : (gid_t)-1;

		if (fchownat(fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			return -errno;
	}
	return 0;
}

static void hg_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int valid,
		       struct fuse_file_info *fi)
{
	struct inode *in = ino_to_inode(ino);
	struct fh *fh = fi ? fh_of(fi) : NULL;
	struct stat st;
	struct tgt t;
	int ret, fd;

	ret = tgt_get_fh(in, O_PATH, fh, &t);
	if (ret < 0)
		goto out_reply;
	/*
	 * Mode and owner of a file being rewritten change on the file under the name as well as
	 * on the staged copy: a rejected rewrite must not take the owner's chmod with it.
	 */
	if (t.up && t.up->replaces && (valid & (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID |
						 FUSE_SET_ATTR_GID))) {
		int bfd = inode_fd(in, O_PATH);

		/* gone (unlinked meanwhile): then only the open file has a mode to change */
		if (bfd < 0 && bfd != -ENOENT && bfd != -ESTALE) {
			ret = bfd;
			goto out;
		}
		if (bfd >= 0) {
			ret = set_owner_mode(bfd, false, in->type, attr, valid);
			inode_fd_put(in, bfd);
		}
		if (ret < 0)
			goto out;
	}
	ret = set_owner_mode(t.fd, t.up != NULL, in->type, attr, valid);
	if (ret < 0)
		goto out;
	if (t.up && (valid & FUSE_SET_ATTR_MODE) && (attr->st_mode & (S_ISUID | S_ISGID)))
		atomic_store(&t.up->privs, true);
	if (valid & FUSE_SET_ATTR_SIZE) {
		if (!S_ISREG(in->type)) {
			ret = -EINVAL;
			goto out;
		}
		if (!t.up && attr->st_size == 0 && (ret = fh_restage(fh, req)) != 0) {
			/* dd without conv=notrunc: open, then ftruncate(0) - a rewrite after all */
			if (ret < 0)
				goto out;
		} else if (t.up || (fh && fh->fd >= 0 && fh->writable)) {
			fd = t.up ? t.up->fd : fh->fd;
			if (t.up && (ret = limits_upload_grow(t.up->uid, &t.up->lim_bytes,
							      attr->st_size)) < 0)
				goto out;	/* a sparse upload over uid_max_upload_bytes */
			bool wl = gate_write_begin(in, fh, req, attr->st_size);

			if (ftruncate(fd, attr->st_size) < 0)
				ret = -errno;
			gate_write_end(in, fh, 0, 0, wl);
			if (ret < 0)
				goto out;
			if (!t.up)
				kill_caps(fd);
		} else {
			fd = inode_fd(in, O_RDWR);
			if (fd < 0) {
				ret = fd;
				goto out;
			}
			bool wl = gate_write_begin(in, NULL, req, attr->st_size);

			if (ftruncate(fd, attr->st_size) < 0)
				ret = -errno;
			gate_write_end(in, NULL, 0, 0, wl);
			if (ret == 0)
				kill_caps(fd);
			inode_fd_put(in, fd);
			/* No handle will close for this change: it gets its verdict now. */
			if (ret == 0)
				ret = gate_judge(in, req, "truncate");
			if (ret < 0)
				goto out;
		}
		if (t.up)
			upload_dirty(t.up);
	}
	if (valid & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
		struct timespec tv[2];

		tv[0].tv_sec = tv[1].tv_sec = 0;
		tv[0].tv_nsec = tv[1].tv_nsec = UTIME_OMIT;
		if (valid & FUSE_SET_ATTR_ATIME_NOW)
			tv[0].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_ATIME)
			tv[0] = attr->st_atim;
		if (valid & FUSE_SET_ATTR_MTIME_NOW)
			tv[1].tv_nsec = UTIME_NOW;
		else if (valid & FUSE_SET_ATTR_MTIME)
			tv[1] = attr->st_mtim;
		if (t.up)
			ret = futimens(t.fd, tv);
		else
			ret = utimensat(t.fd, "", tv, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW);
		if (ret < 0) {
			ret = -errno;
			goto out;
		}
	}
	ret = 0;
out:
	tgt_put(&t);
out_reply:
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	ret = do_getattr(in, fh, &st);
	if (ret < 0)
		fuse_reply_err(req, -ret);
	else
		fuse_reply_attr(req, &st, hgfs.timeout);
}

static void hg_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct inode *in = ino_to_inode(ino);
	char buf[PATH_MAX + 1];
	ssize_t n;
	int fd;

	fd = inode_fd(in, O_PATH);
	if (fd < 0) {
		fuse_reply_err(req, -fd);
		return;
	}
	n = readlinkat(fd, "", buf, sizeof(buf));
	if (n < 0)
		fuse_reply_err(req, errno);
	else if (n >= (ssize_t)sizeof(buf))
		fuse_reply_err(req, ENAMETOOLONG);
	else {
		buf[n] = 0;
		fuse_reply_readlink(req, buf);
	}
	inode_fd_put(in, fd);
}

/* Shared tail of mknod/mkdir/symlink: own it, look it up, reply. */
static void made_new(fuse_req_t req, struct inode *p, int pfd, const char *name, mode_t mode)
{
	struct fuse_entry_param e;
	struct inode *in;
	struct stat st;
	int ret;

	ret = creds_own_new(pfd, name, -1, p, req, mode);
	if (ret < 0) {
		/* Never leave a root-owned object behind on the caller's behalf. */
		if (S_ISDIR(mode))
			unlinkat(pfd, name, AT_REMOVEDIR);
		else
			unlinkat(pfd, name, 0);
		goto err;
	}
	ret = inode_lookup(p, name, &st, &in);
	if (ret < 0)
		goto err;
	inode_fd_put(p, pfd);
	entry_of(&e, in, &st);
	fuse_reply_entry(req, &e);
	return;
err:
	inode_fd_put(p, pfd);
	fuse_reply_err(req, -ret);
}

static void hg_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		     dev_t rdev)
{
	struct inode *p = ino_to_inode(parent);
	int pfd;

	if (bad_name(p, name)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	pfd = inode_fd(p, O_PATH);
	if (pfd < 0) {
		fuse_reply_err(req, -pfd);
		return;
	}
	if (mknodat(pfd, name, mode, rdev) < 0) {
		fuse_reply_err(req, errno);
		inode_fd_put(p, pfd);
		return;
	}
	made_new(req, p, pfd, name, mode);
}

static void hg_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct inode *p = ino_to_inode(parent);
	int pfd;

	if (bad_name(p, name)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	pfd = inode_fd(p, O_PATH);
	if (pfd < 0) {
		fuse_reply_err(req, -pfd);
		return;
	}
	if (mkdirat(pfd, name, mode & 07777) < 0) {
		fuse_reply_err(req, errno);
		inode_fd_put(p, pfd);
		return;
	}
	made_new(req, p, pfd, name, S_IFDIR | (mode & 07777));
}

static void hg_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	struct inode *p = ino_to_inode(parent);
	int pfd;

	if (bad_name(p, name)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	pfd = inode_fd(p, O_PATH);
	if (pfd < 0) {
		fuse_reply_err(req, -pfd);
		return;
	}
	if (symlinkat(link, pfd, name) < 0) {
		fuse_reply_err(req, errno);
		inode_fd_put(p, pfd);
		return;
	}
	made_new(req, p, pfd, name, S_IFLNK | 0777);
}

static void hg_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct inode *in = ino_to_inode(ino), *np = ino_to_inode(newparent);
	struct fuse_entry_param e;
	struct upload *up;
	struct stat st;
	int fd = -1, npfd = -1, ret;

	/*
	 * A backing that gives a link its own inode number would show the second name as
	 * another inode, outside the gate's account of the first (links_probe, staging.c).
	 */
	if (bad_name(np, newname) || !hgfs.links_one_inode) {
		ret = -EPERM;
		goto out;
	}
	pthread_mutex_lock(&in->lock);
	ret = in->dead ? -ENOENT : 0;
	up = in->up;
	if (up) {
		atomic_fetch_add(&up->refs, 1);
	}
	pthread_mutex_unlock(&in->lock);
	if (up) {
		/* Linking needs the content judged first: its writer asked for a second name. */
		ret = related_process(fuse_req_ctx(req)->pid, up->pid) ? upload_verdict(up, req)
								     : -EBUSY;
		upload_put(up);
	}
	if (ret < 0)
		goto out;
	fd = inode_fd(in, O_PATH);
	if (fd < 0) {
		ret = fd;
		goto out;
	}
	npfd = inode_fd(np, O_PATH);
	if (npfd < 0) {
		ret = npfd;
		goto out;
	}
	if (linkat(fd, "", npfd, newname, AT_EMPTY_PATH) < 0) {
		ret = -errno;
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out;
	}
	inode_pin(in, fd);
	inode_hold_lookup(in);
	entry_of(&e, in, &st);
	fuse_reply_entry(req, &e);
	inode_fd_put(in, fd);
	inode_fd_put(np, npfd);
	return;
out:
	if (fd >= 0)
		inode_fd_put(in, fd);
	if (npfd >= 0)
		inode_fd_put(np, npfd);
	fuse_reply_err(req, -ret);
}

static void do_unlink(fuse_req_t req, fuse_ino_t parent, const char *name, int flags)
{
	struct inode *p = ino_to_inode(parent);
	struct upload *grab[16];
	size_t ngrab = 0;
	int pfd, ret = 0;

	if (bad_name(p, name)) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	pfd = inode_fd(p, O_PATH);
	if (pfd < 0) {
		fuse_reply_err(req, -pfd);
		return;
	}
	if ((flags & AT_REMOVEDIR) && pending_any()) {
		/* The writer's own unfinished uploads make the directory non-empty. */
		struct inode *d = inode_find_ref(pfd, name);

		if (d) {
			pending_settle_dir(inode_to_ino(d), req);
			inode_unref(d);
		}
	}
	/*
	 * The uploads staged under the name are taken before the backing unlink: a RELEASE
	 * verdict may publish one and drop it from the pending table right after that unlink
	 * found no name, and a look at the table then would answer ENOENT for a name the
	 * writer saw and that is now there.
	 */
	if (!flags && pending_any())
		ngrab = pending_grab(parent, name, grab, 16);
	ret = flags ? (unlinkat(pfd, name, flags) < 0 ? -errno : 0)
		    : staging_unlink(pfd, name, fuse_req_ctx(req)->uid);
	if (ret < 0) {
		/*
		 * Unlinking one's own staged upload cancels it.  One whose verdict a RELEASE
		 * was making (close() had returned) is published by now: unlink that.  EPERM:
		 * in a sticky directory another user's upload took the name after the kernel
		 * let the caller remove what it saw there, its own staged file: that goes.
		 */
		if ((ret == -ENOENT || ret == -EPERM) && !flags) {
			int pr = pending_unlink_grabbed(grab, ngrab, fuse_req_ctx(req)->pid);

			if (pr == 0)
				ret = 0;
			else if (pr == 1)
				ret = staging_unlink(pfd, name, fuse_req_ctx(req)->uid);
		}
	} else if (!flags && pending_any()) {
		/* The file a rewrite was staged for is gone: so is the rewrite. */
		pending_unlink(parent, name, fuse_req_ctx(req)->pid, true);
	}
	pending_drop(grab, ngrab);
	inode_fd_put(p, pfd);
	fuse_reply_err(req, -ret);
}

static void hg_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	do_unlink(req, parent, name, 0);
}

static void hg_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	do_unlink(req, parent, name, AT_REMOVEDIR);
}

static void hg_rename(fuse_req_t req, fuse_ino_t parent, const char *name,
		      fuse_ino_t newparent, const char *newname, unsigned int flags)
{
	struct inode *p = ino_to_inode(parent), *np = ino_to_inode(newparent), *d;
	int pfd = -1, npfd = -1, ret = 0;

	if (bad_name(p, name) || bad_name(np, newname)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE)) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	pfd = inode_fd(p, O_PATH);
	if (pfd < 0) {
		ret = pfd;
		goto out;
	}
	npfd = inode_fd(np, O_PATH);
	if (npfd < 0) {
		ret = npfd;
		goto out;
	}
	/* Renames by the writer act on what it sees: its uploads get their verdict first. */
	if (pending_any()) {
		pending_settle_name(parent, name, req);
		pending_settle_name(newparent, newname, req);
		d = inode_find_ref(npfd, newname);
		if (d) {
			if (d->type == S_IFDIR)
				pending_settle_dir(inode_to_ino(d), req);
			inode_unref(d);
		}
	}
	/*
	 * In a sticky directory the kernel's check saw the caller's own file (or nothing) under
	 * each name; staging_rename makes sure that is still so (EPERM: another user's upload
	 * took the name since, and it is neither moved nor replaced).
	 */
	ret = staging_rename(pfd, name, npfd, newname, flags, fuse_req_ctx(req)->uid);
	if (ret < 0) {
		/*
		 * Renaming a staged upload moves where it will be published.  One published
		 * meanwhile (a related thread's upload made after the settling above, whose
		 * verdict ran) is under the name now: rename that.
		 */
		if (ret == -ENOENT && !flags) {
			int pr = pending_rename(parent, name, np, newname, fuse_req_ctx(req)->pid,
						false);

			if (pr == 0) {
				ret = 0;	/* nothing moved in the backing dir */
				goto out;
			}
			if (pr == 1)
				ret = staging_rename(pfd, name, npfd, newname, flags,
						     fuse_req_ctx(req)->uid);
		}
		if (ret < 0)
			goto out;
	}
	/*
	 * Staged rewrites follow their file: one staged for the target name lost it (like
	 * unlink), one staged for the source now publishes under the new name.
	 */
	if (!(flags & RENAME_EXCHANGE) && pending_any()) {
		pending_unlink(newparent, newname, fuse_req_ctx(req)->pid, true);
		pending_rename(parent, name, np, newname, fuse_req_ctx(req)->pid, true);
	}
	inode_rename_hint(npfd, newparent, newname);
	if (flags & RENAME_EXCHANGE)
		inode_rename_hint(pfd, parent, name);
out:
	if (pfd >= 0)
		inode_fd_put(p, pfd);
	if (npfd >= 0)
		inode_fd_put(np, npfd);
	fuse_reply_err(req, -ret);
}

/* A handle holding a limits unit uid already took (given back here on failure). */
static struct fh *fh_new_taken(struct inode *in, uid_t uid)
{
	struct fh *fh = calloc(1, sizeof(*fh));

	if (!fh) {
		limits_open_give(uid);
		errno = ENOMEM;
		return NULL;
	}
	fh->limited = true;
	fh->lim_uid = uid;
	fh->fd = -1;
	fh->cslot = -1;
	fh->inode = in;
	inode_ref(in);
	atomic_fetch_add(&in->openfh, 1);
	return fh;
}

/* NULL with errno set: ENOMEM, or EMFILE/ENFILE from the caller's uid limits (limits.c). */
static struct fh *fh_new(struct inode *in, fuse_req_t req)
{
	uid_t uid = fuse_req_ctx(req)->uid;
	int ret = limits_open_take(uid);

	if (ret < 0) {
		errno = -ret;
		return NULL;
	}
	return fh_new_taken(in, uid);
}

/*
 * The handle is complete: without file handles its inode now holds an fd of its object while
 * open (inode_open_pin), so fstat, fchmod and the verdict at close still find an open file
 * whose name went.  A staged rewrite's fd is its new content, not yet the inode's file: that
 * one is found by name.
 */
static void fh_pin(struct fh *fh)
{
	int fd = fh->dir ? dirfd(fh->dir) : fh->up && fh->up->replaces ? -1 : fh_fd(fh);

	fh->pinned = inode_open_pin(fh->inode, fd, fh->lim_uid);
}

static void fh_free(struct fh *fh)
{
	gate_close(fh->inode, fh);
	if (fh->dir)
		closedir(fh->dir);
	else if (fh->fd >= 0)
		close(fh->fd);
	if (fh->up && fh->counted)
		upload_drop_writer(fh->up);
	if (fh->up)
		upload_put(fh->up);
	atomic_fetch_sub(&fh->inode->openfh, 1);
	if (fh->plain)
		atomic_fetch_sub(&fh->inode->plainfh, 1);
	if (fh->pinned)
		inode_open_unpin(fh->inode);
	inode_unref(fh->inode);
	if (fh->limited)
		limits_open_give(fh->lim_uid);
	free(fh);
}

/*
 * create with O_APPEND: the file appears at once and is written in place under the gate.
 * Appenders that create a shared log (each line an open, write, close) must all land in the
 * one file; staged uploads of one name would replace each other (last close wins).
 */
static void create_append(fuse_req_t req, struct inode *p, const char *name, mode_t mode,
			  struct fuse_file_info *fi)
{
	struct fuse_entry_param e;
	struct inode *in = NULL;
	struct stat st;
	struct fh *fh = NULL;
	bool made = false;
	int pfd, fd = -1, ret;

	pfd = inode_fd(p, O_PATH);
	if (pfd < 0) {
		fuse_reply_err(req, -pfd);
		return;
	}
	fd = openat(pfd, name, O_CREAT | O_EXCL | O_RDWR | O_NOFOLLOW | O_CLOEXEC, mode & 07777);
	if (fd >= 0) {
		/* we made it: it belongs to the caller */
		made = true;
		ret = creds_own_new(pfd, NULL, fd, p, req, mode);
		if (ret < 0)
			goto err;
	} else if (errno == EEXIST && !(fi->flags & O_EXCL)) {
		/* another appender was first: append to its file, as open(2) would */
		fd = openat(pfd, name, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0) {
		ret = -errno;
		goto err;
	}
	ret = inode_lookup(p, name, &st, &in);
	if (ret < 0)
		goto err;
	fh = fh_new(in, req);
	if (!fh) {
		ret = -errno;	/* ENOMEM, or the uid's limits (limits.c) */
		goto err;
	}
	fh->fd = fd;	/* the handle owns it from here: no error path follows */
	fh->writable = true;
	fh->plain = true;
	atomic_fetch_add(&in->plainfh, 1);
	atomic_fetch_add(&in->writers, 1);
	fh->direct = gate_open(in, fh, fuse_req_ctx(req)->pid, true);
	fi->direct_io = fh->direct;
	fh_pin(fh);
	entry_of(&e, in, &st);
	fi->fh = (uintptr_t)fh;
	inode_fd_put(p, pfd);
	if (fuse_reply_create(req, &e, fi) < 0) {
		atomic_fetch_sub(&in->writers, 1);
		fh_free(fh);
		inode_forget(in, 1);
	}
	return;
err:
	if (in)
		inode_forget(in, 1);
	/*
	 * A create refused after the fact (uid limits) leaves nothing behind, unless another
	 * appender has written to the file meanwhile: then it is theirs.
	 */
	if (made && fd >= 0 && fstat(fd, &st) == 0 && st.st_size == 0)
		unlinkat(pfd, name, 0);
	if (fd >= 0)
		close(fd);
	inode_fd_put(p, pfd);
	fuse_reply_err(req, -ret);
}

static void hg_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct inode *p = ino_to_inode(parent);
	struct fuse_entry_param e;
	struct upload *up;
	struct stat st;
	struct fh *fh;
	int ret;

	if (bad_name(p, name)) {
		fuse_reply_err(req, EPERM);
		return;
	}
	if (fi->flags & O_APPEND) {
		create_append(req, p, name, mode, fi);
		return;
	}
	/* The handle's unit first: a refused create must not have made a tmpfile and inode. */
	ret = limits_open_take(fuse_req_ctx(req)->uid);
	if (ret == 0) {
		ret = upload_create(req, p, name, mode, &up, &st);
		if (ret < 0)
			limits_open_give(fuse_req_ctx(req)->uid);
	}
	if (ret != 0) {		/* both give 0 or -errno */
		fuse_reply_err(req, ret < 0 ? -ret : EIO);
		return;
	}
	fh = fh_new_taken(up->inode, fuse_req_ctx(req)->uid);
	if (!fh) {
		ret = errno;
		upload_put(up);
		fuse_reply_err(req, ret);
		return;
	}
	fh->up = up;
	fh->writable = true;
	upload_add_writer(up);
	fh->counted = true;
	fh->direct = gate_open(up->inode, fh, fuse_req_ctx(req)->pid, true);
	fi->direct_io = fh->direct;
	if (upload_direct(fi, up->mode))
		fi->direct_io = fh->dwrite = true;
	fh_pin(fh);
	entry_of(&e, up->inode, &st);
	/* Other users must not reuse this dentry: they get the backing view on lookup. */
	e.entry_timeout = 0;
	fi->fh = (uintptr_t)fh;
	if (fuse_reply_create(req, &e, fi) < 0) {
		/* The caller is gone: nobody will close this, so nothing is published. */
		pthread_mutex_lock(&up->lock);
		up->state = UP_CANCELLED;
		pthread_mutex_unlock(&up->lock);
		fh_free(fh);
	}
}

/* --- verdict work on the worker pool (verdictq.c) --- */

/*
 * Is the verdict behind fd worth a worker?  Small files that are not images are judged on
 * the calling thread: the hand-off would cost more than hashing a few KiB.  Images the PDQ
 * decoder takes (image_kind, the same test the scan uses) go to the pool whatever their
 * size: a few KiB of JPEG can claim a huge decode.
 */
#define VERDICT_INLINE_MAX	(64u << 10)
static bool verdict_heavy(int fd)
{
	unsigned char m[IMAGE_MAGIC_LEN];
	struct stat st;
	ssize_t n;

	if (fd < 0 || fstat(fd, &st) < 0)
		return false;
	if (st.st_size > VERDICT_INLINE_MAX)
		return true;
	n = pread(fd, m, sizeof(m), 0);
	return n > 0 && image_kind(m, (size_t)n) != 0;
}

/* verdict_heavy for a handle: a staged upload usually knows its size and head unasked. */
static bool fh_verdict_heavy(struct fh *fh)
{
	uint64_t size;
	int img;

	if (fh->up && fh->fd < 0) {
		img = upload_shape(fh->up, &size);
		if (img >= 0)
			return size > VERDICT_INLINE_MAX || img;
	}
	return verdict_heavy(fh_fd(fh));
}

/* An operation finished on a verdict worker: the request and what its handler was given. */
struct op_job {
	struct vq_job j;
	fuse_req_t req;
	fuse_ino_t ino;
	struct fuse_file_info fi;	/* a copy: libfuse's is gone when the handler returns */
	size_t size;
	off_t off;
	void (*op)(struct op_job *);
};

static void op_job_run(struct vq_job *j)
{
	struct op_job *o = (struct op_job *)j;

	o->op(o);
	free(o);
}

/* Hand the rest of an operation to the pool; false (caller goes on itself) without memory. */
static bool defer_op(fuse_req_t req, fuse_ino_t ino, const struct fuse_file_info *fi,
		     size_t size, off_t off, uid_t uid, void (*op)(struct op_job *))
{
	struct op_job *o = malloc(sizeof(*o));

	if (!o)
		return false;
	o->req = req;
	o->ino = ino;
	o->fi = *fi;
	o->size = size;
	o->off = off;
	o->op = op;
	o->j.run = op_job_run;
	vq_submit(&o->j, uid);
	return true;
}

static int open_flags(int flags)
{
	/* The kernel resolved the path; O_NOFOLLOW would hit /proc/self/fd magic links. */
	flags &= ~(O_CREAT | O_EXCL | O_NOCTTY | O_APPEND | O_DIRECT | O_NOFOLLOW);
	/* A writable fd must also read: rescans, and writeback_cache reads on O_WRONLY. */
	if ((flags & O_ACCMODE) == O_WRONLY)
		flags = (flags & ~O_ACCMODE) | O_RDWR;
	return flags;
}

static void do_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct inode *in = ino_to_inode(ino);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	bool wr = (fi->flags & O_ACCMODE) != O_RDONLY;
	bool superseding = false, up_enoent = false;
	struct upload *up = NULL;
	char proc[64];
	struct fh *fh;
	int ret;

	fh = fh_new(in, req);
	if (!fh) {
		fuse_reply_err(req, errno);
		return;
	}
	pthread_mutex_lock(&in->lock);
	if (in->dead) {
		pthread_mutex_unlock(&in->lock);
		ret = -ENOENT;
		goto err;
	}
	if (in->up) {
		up = in->up;
		atomic_fetch_add(&up->refs, 1);
	}
	pthread_mutex_unlock(&in->lock);

	if (up && !same_process(ctx->pid, up->pid)) {
		/* Nobody but the uploading process reads or writes unscanned bytes. */
		ret = up->replaces ? 0 : -ENOENT;
		up_enoent = ret < 0;
		/*
		 * A related process (a sibling started by the same shell) writing the same new
		 * name: as on a plain file system its open must not fail.  Hide this upload
		 * from it and answer ESTALE: the kernel looks the name up again, finds none
		 * and creates, so the writer stages its own upload (the last clean close wins).
		 */
		if (ret < 0 && wr && pending_hide(up, ctx->pid)) {
			ret = -ESTALE;
			up_enoent = false;
		}
		upload_put(up);
		up = NULL;
		if (ret < 0)
			goto err;
		if (wr) {
			superseding = true;
			goto writer;	/* an unrelated writer: its own upload */
		}
		fi->direct_io = 1;	/* the old file, not the writer's page cache */
		fh->fd = inode_fd(in, open_flags(fi->flags));
		if (fh->fd < 0) {
			ret = fh->fd;
			goto err;
		}
		goto done;
	}
	if (up) {
		/* Another open of a staged file by its uploader joins the upload. */
		snprintf(proc, sizeof(proc), "/proc/self/fd/%d", up->fd);
		fh->fd = open(proc, open_flags(fi->flags) & ~O_TRUNC);
		if (fh->fd < 0) {
			ret = -errno;
			upload_put(up);
			goto err;
		}
		fh->up = up;
		fh->writable = wr;
		if (wr) {
			upload_add_writer(up);
	fh->counted = true;
		}
		if (wr && (fi->flags & O_TRUNC)) {
			if (ftruncate(fh->fd, 0) < 0) {
				ret = -errno;
				goto err;
			}
		}
		if (wr)
			upload_dirty(up);
		goto done;
	}
writer:
	/* Another process's unjudged in-place bytes are judged before this open sees them. */
	ret = gate_open_check(in, ctx->pid, req);
	if (ret < 0)
		goto err;
	if (wr && S_ISREG(in->type)) {
		bool stage = (fi->flags & O_TRUNC) != 0;

		/*
		 * An empty file opened to write is staged like a new upload, except for appends:
		 * writers that share a log must all land in the one file.
		 */
		if (!stage && !(fi->flags & O_APPEND)) {
			struct stat st;
			int pfd = inode_fd(in, O_PATH);

			if (pfd >= 0) {
				stage = fstat(pfd, &st) == 0 && st.st_size == 0;
				inode_fd_put(in, pfd);
			}
		}
		/*
		 * With other descriptors open the file must stay one file (they see the
		 * truncation and their writes land in it): then it is rewritten in place.
		 */
		if (stage && superseding && atomic_load(&in->plainfh) > 0)
			stage = false;
		/* Other processes holding the old file keep it (as after rsync's rename). */
		if (stage && !superseding && atomic_load(&in->openfh) > 1 &&
		    process_holds(ctx->pid, in->kino))
			stage = false;
		if (stage) {
			ret = upload_replace(req, in, &up);
			if (ret == 0) {
				fh->up = up;
				fh->writable = true;
				upload_add_writer(up);
				fh->counted = true;
				goto done;
			}
			/*
			 * The name is now another file (or none): truncating this one in place
			 * would destroy content no longer under the name and publish unscanned
			 * bytes.  ESTALE makes the kernel look the name up again and retry.
			 */
			if (ret == -ESTALE)
				goto err;
			/* Over the uid's upload limit: refused, not rewritten in place unscanned. */
			if (ret == -EMFILE || ret == -ENFILE)
				goto err;
		}
		/* In place: written through, rescanned at close. */
		fh->fd = inode_fd(in, open_flags(fi->flags));
		if (fh->fd < 0) {
			ret = fh->fd;
			goto err;
		}
		fh->writable = true;
		atomic_fetch_add(&in->writers, 1);
		if (fi->flags & O_TRUNC) {
			bool wl = gate_write_begin(in, fh, req, 0);

			gate_write_end(in, fh, 0, 0, wl);
		}
		goto done;
	}
	fh->fd = inode_fd(in, open_flags(fi->flags));
	if (fh->fd < 0) {
		ret = fh->fd;
		goto err;
	}
done:
	if (!fh->up) {
		fh->plain = true;
		atomic_fetch_add(&in->plainfh, 1);
	}
	if (S_ISREG(in->type)) {
		if (fi->direct_io)
			fh->direct = true;	/* reading the old file of another's rewrite */
		else
			fh->direct = gate_open(in, fh, ctx->pid, wr);
		fi->direct_io = fh->direct;
		/* the writer of a staged rewrite (a joined second handle has its own fd) */
		if (fh->up && fh->fd < 0 && upload_direct(fi, fh->up->mode))
			fi->direct_io = fh->dwrite = true;
	}
	fh_pin(fh);
	fi->fh = (uintptr_t)fh;
	if (fuse_reply_open(req, fi) < 0) {
		if (fh->writable && !fh->up)
			atomic_fetch_sub(&in->writers, 1);
		fh_free(fh);
	}
	return;
err:
	/*
	 * An inode whose file is gone (a rejected upload, a name published over by another
	 * upload) answers ESTALE, not ENOENT: the kernel then looks the name up afresh and
	 * retries once, so an open with O_CREAT creates instead of failing.
	 */
	if (ret == -ENOENT && !up_enoent)
		ret = -ESTALE;
	fh_free(fh);
	fuse_reply_err(req, -ret);
}

static void open_job(struct op_job *o)
{
	do_open(o->req, o->ino, &o->fi);
}

/* An open that has to judge another process's writes first does so on the pool. */
static void hg_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);

	if (gate_would_judge(ino_to_inode(ino), NULL, ctx->pid) &&
	    defer_op(req, ino, fi, 0, 0, ctx->uid, open_job))
		return;
	do_open(req, ino, fi);
}

static void do_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fuse_bufvec buf = FUSE_BUFVEC_INIT(size);
	struct fh *fh = fh_of(fi);
	struct inode *in = ino_to_inode(ino);
	int ret;

	ret = gate_read_begin(in, fh, req);
	if (ret < 0) {
		fuse_reply_err(req, -ret == EACCES ? EIO : -ret);
		return;
	}
	buf.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
	buf.buf[0].fd = fh_fd(fh);
	buf.buf[0].pos = off;
	fuse_reply_data(req, &buf, FUSE_BUF_SPLICE_MOVE);
	gate_read_end(in);
}

static void read_job(struct op_job *o)
{
	do_read(o->req, o->ino, o->size, o->off, &o->fi);
}

static void hg_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);

	if (gate_would_judge(ino_to_inode(ino), fh_of(fi), ctx->pid) &&
	    defer_op(req, ino, fi, size, off, ctx->uid, read_job))
		return;
	do_read(req, ino, size, off, fi);
}

/*
 * write_buf: an upload's write in file order is hashed from the request's own bytes (spliced
 * ones are read into memory first, upload_write); any other write is hashed later from the
 * file (hashq.c).
 */
#define HASH_BEFORE_REPLY_MAX	(16u << 10)

static void hg_write_buf(fuse_req_t req, fuse_ino_t ino, struct fuse_bufvec *in_buf, off_t off,
			 struct fuse_file_info *fi)
{
	struct fh *fh = fh_of(fi);
	struct inode *in = ino_to_inode(ino);
	size_t len = fuse_buf_size(in_buf);
	struct upload_wh hash = { 0 };
	ssize_t n;
	bool wl;

	if (fh_stray(fh)) {
		fuse_reply_err(req, EIO);
		return;
	}
	wl = gate_write_begin(in, fh, req, off);
	if (fh->up && fh->fd < 0) {
		if (fh->dwrite && atomic_load(&fh->up->privs))
			kill_privs(fh->up, fuse_req_ctx(req)->pid);
		n = upload_write(fh->up, in_buf, off, &hash);
	} else {
		struct fuse_bufvec out = FUSE_BUFVEC_INIT(fuse_buf_size(in_buf));

		if (!fh->up && !fh->capless) {
			kill_caps(fh->fd);
			fh->capless = true;
		}
		out.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK;
		out.buf[0].fd = fh->fd;
		out.buf[0].pos = off;
		n = fuse_buf_copy(&out, in_buf, 0);
		if (fh->up && n > 0)
			upload_dirty(fh->up);
	}
	gate_write_end(in, fh, off, n > 0 ? (size_t)n : len, wl);
	/*
	 * A small write is hashed before its reply: hashed after it, the client's FLUSH comes
	 * in meanwhile and waits for the hash on a futex, a sleep and a wake-up more per file
	 * that cost more than the overlap saves (4 KiB creates: 8.4-9.2 -> 7.9-8.3 context
	 * switches per file, close 77-86 -> 45-56 us, write 51-72 -> 58-67 us; ops.c top).
	 * A larger write's hashing overlaps the client's next write.  The verdict's lookup
	 * made in advance (upload_precheck) still runs after the reply: FLUSH does not wait
	 * for it, it only uses its result when it is there.
	 */
	if (n > 0 && (size_t)n <= HASH_BEFORE_REPLY_MAX)
		upload_write_hash(&hash);
	if (n < 0)
		fuse_reply_err(req, (int)-n);
	else
		fuse_reply_write(req, n);
	/* The client's next request is on its way: a larger write's hash and the lookup in
	 * advance meanwhile (a FLUSH waits for the hash, not for the lookup). */
	upload_write_hashed(&hash);
}

/*
 * After the upload's verdict, or for a handle on a visible file: what this handle wrote into
 * the visible file gets its verdict (gate.c).  A staged upload not yet judged has none here.
 */
static int rescan_if_dirty(struct fh *fh, fuse_req_t req)
{
	if (!fh->writable || !fh->wrote)
		return 0;
	if (fh->up) {
		int st;

		pthread_mutex_lock(&fh->up->lock);
		st = fh->up->state;
		pthread_mutex_unlock(&fh->up->lock);
		if (st == UP_STAGED || st == UP_CANCELLED)
			return 0;
		if (st == UP_REJECTED)
			return 0;	/* the upload's own verdict reported it */
		return gate_close_verdict(fh->inode, fh, req, "rewrite");
	}
	return gate_close_verdict(fh->inode, fh, req, "inplace");
}

/*
 * Is this FLUSH plainly the last close of the upload?  Only a walk of /proc/PID/fd can tell
 * whether the closing process keeps another descriptor, at a few syscalls per descriptor it
 * has: most of the daemon's own work for a small file.  It is skipped when the thread that
 * created the upload closes the handle it wrote through and no second handle of the upload
 * is open.  The patterns the walk is for still get it: a shell's redirection (open, dup2,
 * close of the original) closes before writing, a child closing an inherited copy is another
 * pid, a second open is a second handle.  What a process that writes, closes one of two
 * dup'ed descriptors and goes on writing through the other writes after the verdict: in
 * place, under gate.c (nobody else reads it before it is judged; the last close judges it).
 */
static bool flush_is_last(struct fh *fh, pid_t pid)
{
	bool last;

	if (!fh->wrote || pid <= 0 || pid != fh->up->pid)
		return false;
	pthread_mutex_lock(&fh->up->lock);
	last = fh->up->writers == 1;
	pthread_mutex_unlock(&fh->up->lock);
	return last;
}

static void do_flush(fuse_req_t req, struct fuse_file_info *fi)
{
	struct fh *fh = fh_of(fi);
	pid_t pid = fuse_req_ctx(req)->pid;
	int ret = 0;

	if (fh->up && fh->writable) {
		if (!flush_is_last(fh, pid) && upload_open_elsewhere(fh->up, pid)) {
			fuse_reply_err(req, 0);
			return;
		}
		ret = upload_verdict(fh->up, req);
	}
	if (ret == 0)
		ret = rescan_if_dirty(fh, req);
	fuse_reply_err(req, -ret);
}

static void flush_job(struct op_job *o)
{
	do_flush(o->req, &o->fi);
}

static void hg_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fh *fh = fh_of(fi);
	bool verdict = (fh->up && fh->writable) || (fh->wrote && gate_dirty(fh->inode));

	if (verdict && hgfs.scan && fh_verdict_heavy(fh) &&
	    defer_op(req, ino, fi, 0, 0, fh->lim_uid, flush_job))
		return;
	do_flush(req, fi);
}

static void do_release(fuse_req_t req, struct fuse_file_info *fi)
{
	struct fh *fh = fh_of(fi);

	/* RELEASE errors are ignored by the kernel; this only catches what FLUSH did not see. */
	if (fh->up && fh->counted) {
		fh->counted = false;
		if (upload_drop_writer(fh->up))
			upload_verdict(fh->up, NULL);
	}
	rescan_if_dirty(fh, NULL);
	if (fh->writable && !fh->up)
		atomic_fetch_sub(&fh->inode->writers, 1);
	fh_free(fh);
	fuse_reply_err(req, 0);
}

static void release_job(struct op_job *o)
{
	do_release(o->req, &o->fi);
}

static void hg_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fh *fh = fh_of(fi);
	bool verdict = (fh->up && fh->counted && fh->up->state == UP_STAGED) ||
		       (fh->wrote && gate_dirty(fh->inode));

	/* After a FLUSH that judged, RELEASE has nothing heavy left: no second look at the file. */
	if (verdict && hgfs.scan && fh_verdict_heavy(fh) &&
	    defer_op(req, ino, fi, 0, 0, fh->lim_uid, release_job))
		return;
	do_release(req, fi);
}

static void hg_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	int fd = fh_fd(fh_of(fi));
	int ret = datasync ? fdatasync(fd) : fsync(fd);

	fuse_reply_err(req, ret < 0 ? errno : 0);
}

static void hg_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct inode *in = ino_to_inode(ino);
	struct fh *fh;
	int fd;

	if (pending_any())
		pending_settle_dir(ino, req);
	fh = fh_new(in, req);
	if (!fh) {
		fuse_reply_err(req, errno);
		return;
	}
	fd = inode_fd(in, O_RDONLY | O_DIRECTORY);
	if (fd < 0) {
		fh_free(fh);
		fuse_reply_err(req, -fd);
		return;
	}
	fh->dir = fdopendir(fd);
	if (!fh->dir) {
		int e = errno;

		close(fd);
		fh_free(fh);
		fuse_reply_err(req, e);
		return;
	}
	fh_pin(fh);
	fi->fh = (uintptr_t)fh;
	fi->cache_readdir = 0;
	if (fuse_reply_open(req, fi) < 0)
		fh_free(fh);
}

static bool dirent_hidden(struct inode *dir, struct dirent *de)
{
	if (dir == &hgfs.root && strcmp(de->d_name, HGFS_STAGING_NAME) == 0)
		return true;
	if (strncmp(de->d_name, ".hashgate-tmp.", 14) == 0)
		return true;
	if (dir->dev == hgfs.staging_dev && de->d_ino == hgfs.staging_ino)
		return true;
	if (hgfs.qdir_hidden && dir->dev == hgfs.qdir_dev && de->d_ino == hgfs.qdir_ino)
		return true;
	return false;
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi, bool plus)
{
	struct inode *dir = ino_to_inode(ino);
	struct fh *fh = fh_of(fi);
	char *buf, *p;
	size_t rem = size;
	int err = 0;

	buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	p = buf;
	if (off != fh->dir_off) {
		seekdir(fh->dir, off);
		fh->dir_off = off;
	}
	for (;;) {
		struct dirent *de;
		struct fuse_entry_param e;
		struct inode *child = NULL;
		size_t need;
		bool dot;

		errno = 0;
		de = readdir(fh->dir);
		if (!de) {
			err = errno;
			break;
		}
		if (dirent_hidden(dir, de))
			continue;
		dot = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0;
		if (plus) {
			memset(&e, 0, sizeof(e));
			if (dot) {
				e.attr.st_ino = de->d_ino;
				e.attr.st_mode = DTTOIF(de->d_type);
			} else {
				struct stat st;
				int ret = inode_lookup(dir, de->d_name, &st, &child);

				if (ret == -ENOENT)
					continue;	/* vanished or hidden */
				if (ret < 0) {
					err = -ret;
					break;
				}
				entry_of(&e, child, &st);
			}
			need = fuse_add_direntry_plus(req, p, rem, de->d_name, &e, de->d_off);
		} else {
			struct stat st;

			memset(&st, 0, sizeof(st));
			st.st_ino = de->d_ino;
			st.st_mode = DTTOIF(de->d_type);
			need = fuse_add_direntry(req, p, rem, de->d_name, &st, de->d_off);
		}
		if (need > rem) {
			if (child)
				inode_forget(child, 1);
			seekdir(fh->dir, fh->dir_off);
			break;
		}
		p += need;
		rem -= need;
		fh->dir_off = de->d_off;
	}
	/* An error after some entries is reported on the next call, as readdir(3) would. */
	if (err && p == buf)
		fuse_reply_err(req, err);
	else
		fuse_reply_buf(req, buf, p - buf);
	free(buf);
}

static void hg_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

static void hg_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

static void hg_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	fh_free(fh_of(fi));
	fuse_reply_err(req, 0);
}

static void hg_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync,
			struct fuse_file_info *fi)
{
	int fd = dirfd(fh_of(fi)->dir);
	int ret = datasync ? fdatasync(fd) : fsync(fd);

	fuse_reply_err(req, ret < 0 ? errno : 0);
}

static void hg_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct inode *in = ino_to_inode(ino);
	struct statvfs sv;
	int fd, ret;

	fd = inode_fd(in, O_PATH);
	if (fd < 0) {
		fuse_reply_err(req, -fd);
		return;
	}
	ret = fstatvfs(fd, &sv);
	inode_fd_put(in, fd);
	if (ret < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_statfs(req, &sv);
}

/* xattrs go through /proc/self/fd of an O_PATH fd; symlinks have no race-free way. */
static int xattr_target(struct inode *in, struct tgt *t, char *proc, size_t len)
{
	int ret;

	if (in->type == S_IFLNK)
		return -EOPNOTSUPP;
	ret = tgt_get(in, O_PATH, t);
	if (ret < 0)
		return ret;
	snprintf(proc, len, "/proc/self/fd/%d", t->fd);
	return 0;
}

static void hg_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	struct tgt t;
	char proc[64];
	int ret;

	if (!hgfs.xattr) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	ret = xattr_target(ino_to_inode(ino), &t, proc, sizeof(proc));
	if (ret == 0) {
		if (t.up)	/* before the call: a getxattr racing it must ask the file */
			atomic_store(&t.up->caps_set, true);
		if (setxattr(proc, name, value, size, flags) < 0)
			ret = -errno;
		tgt_put(&t);
	}
	fuse_reply_err(req, -ret);
}

/*
 * getxattr (name != NULL) and listxattr (name == NULL) share everything but the call: size 0
 * asks for the length, otherwise the value or list is returned in a buffer of that size.
 */
static void reply_xattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct tgt t;
	char proc[64], *buf = NULL;
	ssize_t n;
	int ret;

	ret = xattr_target(ino_to_inode(ino), &t, proc, sizeof(proc));
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	if (size) {
		buf = malloc(size);
		if (!buf) {
			tgt_put(&t);
			fuse_reply_err(req, ENOMEM);
			return;
		}
	}
	n = name ? getxattr(proc, name, buf, size) : listxattr(proc, buf, size);
	ret = n < 0 ? errno : 0;
	tgt_put(&t);
	if (ret)
		fuse_reply_err(req, ret);
	else if (size)
		fuse_reply_buf(req, buf, n);
	else
		fuse_reply_xattr(req, n);
	free(buf);
}

static void hg_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct inode *in = ino_to_inode(ino);
	bool none = false;

	if (!hgfs.xattr) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	/* The kernel's question before every write, about a tmpfile we made (see the top). */
	if (strcmp(name, "security.capability") == 0) {
		pthread_mutex_lock(&in->lock);
		none = in->up && !atomic_load(&in->up->caps_set);
		pthread_mutex_unlock(&in->lock);
	}
	if (none)
		fuse_reply_err(req, ENODATA);
	else
		reply_xattr(req, ino, name, size);
}

/*
 * listxattr for a caller other than root: without "trusted." names, which the backing
 * filesystem shows to our (root) daemon but never to an unprivileged process.
 */
static void hg_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct tgt t;
	char proc[64], *buf = NULL, *p, *q;
	ssize_t n;
	int ret;

	if (!hgfs.xattr) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	if (fuse_req_ctx(req)->uid == 0) {
		reply_xattr(req, ino, NULL, size);
		return;
	}
	ret = xattr_target(ino_to_inode(ino), &t, proc, sizeof(proc));
	if (ret < 0) {
		fuse_reply_err(req, -ret);
		return;
	}
	for (;;) {
		n = listxattr(proc, NULL, 0);
		if (n <= 0)
			break;
		buf = malloc(n);
		if (!buf) {
			n = -1;
			errno = ENOMEM;
			break;
		}
		n = listxattr(proc, buf, n);
		if (n >= 0 || errno != ERANGE)
			break;
		free(buf);	/* grew meanwhile */
		buf = NULL;
	}
	ret = n < 0 ? errno : 0;
	tgt_put(&t);
	if (ret) {
		free(buf);
		fuse_reply_err(req, ret);
		return;
	}
	for (p = q = buf; buf && p < buf + n; p += strlen(p) + 1) {
		size_t l = strlen(p) + 1;

		if (strncmp(p, "trusted.", 8) == 0)
			continue;
		memmove(q, p, l);
		q += l;
	}
	n = buf ? q - buf : 0;
	if (!size)
		fuse_reply_xattr(req, n);
	else if ((size_t)n > size)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, buf, n);
	free(buf);
}

static void hg_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct tgt t;
	char proc[64];
	int ret;

	if (!hgfs.xattr) {
		fuse_reply_err(req, ENOSYS);
		return;
	}
	ret = xattr_target(ino_to_inode(ino), &t, proc, sizeof(proc));
	if (ret == 0) {
		if (removexattr(proc, name) < 0)
			ret = -errno;
		tgt_put(&t);
	}
	fuse_reply_err(req, -ret);
}

static void hg_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
			 struct fuse_file_info *fi)
{
	struct fh *fh = fh_of(fi);
	int ret = 0;
	bool wl;

	if (fh_stray(fh)) {
		fuse_reply_err(req, EIO);
		return;
	}
	wl = gate_write_begin(fh->inode, fh, req, offset);
	if (fallocate(fh_fd(fh), mode, offset, length) < 0)
		ret = errno;
	else if (!fh->up)
		kill_caps(fh->fd);
	if (!ret && fh->up)
		upload_dirty(fh->up);
	gate_write_end(fh->inode, fh, offset, ret ? 0 : (size_t)length, wl);
	fuse_reply_err(req, ret);
}

static void hg_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence,
		     struct fuse_file_info *fi)
{
	off_t r = lseek(fh_fd(fh_of(fi)), off, whence);

	if (r < 0)
		fuse_reply_err(req, errno);
	else
		fuse_reply_lseek(req, r);
}

const struct fuse_lowlevel_ops hgfs_ops = {
	.init = hg_init,
	.lookup = hg_lookup,
	.forget = hg_forget,
	.forget_multi = hg_forget_multi,
	.getattr = hg_getattr,
	.setattr = hg_setattr,
	.readlink = hg_readlink,
	.mknod = hg_mknod,
	.mkdir = hg_mkdir,
	.symlink = hg_symlink,
	.link = hg_link,
	.unlink = hg_unlink,
	.rmdir = hg_rmdir,
	.rename = hg_rename,
	.create = hg_create,
	.open = hg_open,
	.read = hg_read,
	.write_buf = hg_write_buf,
	.flush = hg_flush,
	.release = hg_release,
	.fsync = hg_fsync,
	.opendir = hg_opendir,
	.readdir = hg_readdir,
	.readdirplus = hg_readdirplus,
	.releasedir = hg_releasedir,
	.fsyncdir = hg_fsyncdir,
	.statfs = hg_statfs,
	.setxattr = hg_setxattr,
	.getxattr = hg_getxattr,
	.listxattr = hg_listxattr,
	.removexattr = hg_removexattr,
	.fallocate = hg_fallocate,
	.lseek = hg_lseek,
};
