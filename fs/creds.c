/*
 * creds.c - ownership of objects created through the mount.
 *
 * The daemon creates as root and then hands the new object to the caller (create-then-chown)
 * instead of switching fsuid per thread: with default_permissions the kernel has already
 * checked the caller's right to create in the directory, and creating as root keeps
 * supplementary-group access, ACL inheritance and quota accounting (chown moves the charge)
 * correct without reading the caller's groups from /proc on every create.  Objects are either
 * O_TMPFILEs nobody else can see yet, or are briefly root-owned (more restrictive, never less).
 */
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "fs/hgfs.h"

/* chmod name under dirfd without following a symlink swapped in behind our back. */
static int creds_chmod_nofollow(int dirfd, const char *name, mode_t m)
{
	char p[64];
	struct stat st;
	int o, ret = 0;

	o = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (o < 0)
		return -errno;
	if (fstat(o, &st) < 0)
		ret = -errno;
	else if (!S_ISLNK(st.st_mode)) {
		snprintf(p, sizeof(p), "/proc/self/fd/%d", o);
		if (chmod(p, m) < 0)
			ret = -errno;
	}
	close(o);
	return ret;
}

int creds_own_new(int dirfd, const char *name, int fd, struct inode *parent, fuse_req_t req,
		  mode_t mode)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct stat pst;
	gid_t gid = ctx->gid;
	int pfd, ret;

	(void)parent;
	if (ctx->uid == 0 && ctx->gid == 0)
		return 0;
	/* In a setgid directory the new object keeps the directory's group (BSD semantics). */
	pfd = dirfd;
	if (fstat(pfd, &pst) == 0 && (pst.st_mode & S_ISGID))
		gid = (gid_t)-1;
	if (fd >= 0)
		ret = fchown(fd, ctx->uid, gid);
	else
		ret = fchownat(dirfd, name, ctx->uid, gid, AT_SYMLINK_NOFOLLOW);
	if (ret < 0)
		return -errno;
	/* chown by root strips set-id bits from non-directories; the caller asked for them. */
	if ((mode & (S_ISUID | S_ISGID)) && !S_ISDIR(mode) && !S_ISLNK(mode)) {
		mode_t m = mode & (gid == (gid_t)-1 ? ~(mode_t)S_ISGID : ~(mode_t)0) & 07777;

		if (fd >= 0)
			ret = fchmod(fd, m);
		else
			ret = creds_chmod_nofollow(dirfd, name, m);
		if (ret < 0)
			return ret == -1 ? -errno : ret;
	}
	return 0;
}
