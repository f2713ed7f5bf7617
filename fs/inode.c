/*
 * inode.c - the table of backing inodes the kernel knows, keyed by (st_dev, st_ino).
 *
 * An inode lives while the kernel holds lookups on it (nlookup) or we hold references (open
 * files, uploads).  It keeps a file handle, not an fd: with a hard limit of 20000 open files a
 * daemon holding an O_PATH per inode dies near 20k live inodes.  Reopening by handle costs one
 * syscall per operation and needs CAP_DAC_READ_SEARCH (the daemon runs as root).
 * Handles are only ever taken of objects reached through a checked lookup below the root, so
 * open_by_handle_at cannot be used to reach anything outside BACKING_DIR.
 * Directories are the exception that pays: every create, lookup and publish opens its parent,
 * so a bounded cache (DIRFD_SLOTS O_PATH fds, least recently used evicted when unused) keeps
 * the busy ones open.  A slot in use is never closed; inode_free drops its slot.
 * Without usable handles (hgfs.handles false: name_to_handle_at fails on the backing root, or
 * handles=off) an inode is reopened by its last known parent and name instead, and the object
 * found there must still be the inode's (st_dev, st_ino), else it is gone (ENOENT): fds stay
 * bounded as with handles.  A staged upload's inode is reopened through the upload's own fd.
 * While such an inode has handles open it holds an O_PATH fd of its object (ofd,
 * inode_open_pin) and is reopened through that first: an open file stays reachable after its
 * name goes (unlinked, renamed over, its directory removed), as by handle; bounded by open
 * files, and each such fd holds a unit of the fd budget (limits.c) of the uid whose open made
 * it.  ofd is only ever used and closed under the inode lock.
 * An object below the root on another filesystem without handles keeps an O_PATH fd.
 * One backing file has one entry on the table, so the kernel has one inode (and one set of
 * cached attributes) per file: an entry whose key was taken over (the number reused after
 * its file went) leaves the table when found stale or when a rekey lands on its key.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statfs.h>
#include <unistd.h>
#include <linux/magic.h>

#include "fs/hgfs.h"

static pthread_mutex_t table_lock = PTHREAD_MUTEX_INITIALIZER;
static struct inode **buckets;
static size_t nbuckets;
static uint64_t ninodes;

static size_t bucket_of(dev_t dev, ino_t ino, size_t n)
{
	uint64_t h = (uint64_t)ino * 0x9e3779b97f4a7c15ull ^ (uint64_t)dev * 0xff51afd7ed558ccdull;

	return (size_t)(h >> 17) & (n - 1);
}

int inode_table_init(void)
{
	nbuckets = 1 << 14;
	buckets = calloc(nbuckets, sizeof(*buckets));
	return buckets ? 0 : -ENOMEM;
}

uint64_t inode_count(void)
{
	uint64_t n;

	pthread_mutex_lock(&table_lock);
	n = ninodes;
	pthread_mutex_unlock(&table_lock);
	return n;
}

/* Called with table_lock held. */
static void table_grow(void)
{
	size_t n = nbuckets * 2, i;
	struct inode **nb = calloc(n, sizeof(*nb));

	if (!nb)
		return;		/* longer chains, still correct */
	for (i = 0; i < nbuckets; i++) {
		struct inode *in = buckets[i], *next;

		for (; in; in = next) {
			size_t b = bucket_of(in->dev, in->ino, n);

			next = in->hnext;
			in->hnext = nb[b];
			nb[b] = in;
		}
	}
	free(buckets);
	buckets = nb;
	nbuckets = n;
}

static struct inode *table_find(dev_t dev, ino_t ino)
{
	struct inode *in = buckets[bucket_of(dev, ino, nbuckets)];

	while (in && !(in->dev == dev && in->ino == ino))
		in = in->hnext;
	return in;
}

static void table_insert(struct inode *in)
{
	size_t b;

	if (ninodes + 1 > nbuckets * 2)
		table_grow();
	b = bucket_of(in->dev, in->ino, nbuckets);
	in->hnext = buckets[b];
	buckets[b] = in;
	ninodes++;
}

static void table_remove(struct inode *in)
{
	struct inode **pp = &buckets[bucket_of(in->dev, in->ino, nbuckets)];

	while (*pp && *pp != in)
		pp = &(*pp)->hnext;
	if (*pp) {
		*pp = in->hnext;
		ninodes--;
	}
}

#define DIRFD_SLOTS	256

/* Slot 0 is unused so that a zeroed inode means "not cached". */
static pthread_mutex_t dcache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	struct inode *in;
	int fd;
	int users;
	uint64_t used;
} dslots[DIRFD_SLOTS + 1];
static uint64_t dclock;

static int dcache_get(struct inode *in)
{
	int fd = -1, s;

	pthread_mutex_lock(&dcache_lock);
	s = in->dslot;
	if (s) {
		dslots[s].users++;
		dslots[s].used = ++dclock;
		fd = dslots[s].fd;
	}
	pthread_mutex_unlock(&dcache_lock);
	return fd;
}

/* Offer a freshly opened fd to the cache; if it is not taken, the caller's put closes it. */
static void dcache_add(struct inode *in, int fd)
{
	int s, best = 0;

	pthread_mutex_lock(&dcache_lock);
	if (in->dslot)
		goto out;
	for (s = 1; s <= DIRFD_SLOTS; s++) {
		if (!dslots[s].in) {
			best = s;
			break;
		}
		if (!dslots[s].users && (!best || dslots[s].used < dslots[best].used))
			best = s;
	}
	if (!best)
		goto out;
	if (dslots[best].in) {
		dslots[best].in->dslot = 0;
		close(dslots[best].fd);
	}
	dslots[best].in = in;
	dslots[best].fd = fd;
	dslots[best].users = 1;
	dslots[best].used = ++dclock;
	in->dslot = best;
out:
	pthread_mutex_unlock(&dcache_lock);
}

/* true if fd is in's cached fd (now released), false if the caller must close it. */
static bool dcache_put(struct inode *in, int fd)
{
	bool cached = false;
	int s;

	pthread_mutex_lock(&dcache_lock);
	s = in->dslot;
	if (s && dslots[s].fd == fd) {
		dslots[s].users--;
		cached = true;
	}
	pthread_mutex_unlock(&dcache_lock);
	return cached;
}

static void dcache_forget(struct inode *in)
{
	int s;

	pthread_mutex_lock(&dcache_lock);
	s = in->dslot;
	if (s) {
		close(dslots[s].fd);
		memset(&dslots[s], 0, sizeof(dslots[s]));
		in->dslot = 0;
	}
	pthread_mutex_unlock(&dcache_lock);
}

static void inode_free(struct inode *in)
{
	dcache_forget(in);
	if (in->parent)
		inode_unref(ino_to_inode(in->parent));
	if (in->fd >= 0)
		close(in->fd);
	if (in->ofd >= 0) {
		close(in->ofd);
		limits_open_give(in->ofd_uid);
	}
	free(in->handle);
	free(in->name);
	if (in->resume) {
		hasher_release(in->resume);
		free(in->resume);
	}
	pthread_mutex_destroy(&in->lock);
	pthread_mutex_destroy(&in->jlock);
	pthread_rwlock_destroy(&in->wrl);
	free(in);
}

/* Find or add the mount fd for mount_id; dirfd is a directory on that mount. */
static int mount_index(int mount_id, int dirfd)
{
	struct statfs sfs;
	int i, fd, ret;

	pthread_mutex_lock(&hgfs.mnt_lock);
	for (i = 0; i < hgfs.nmounts; i++)
		if (hgfs.mount_id[i] == mount_id) {
			ret = i;
			goto out;
		}
	ret = -EMFILE;
	if (hgfs.nmounts == HGFS_MAX_MOUNTS)
		goto out;
	/* open_by_handle_at refuses O_PATH mount fds. */
	fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	hgfs.mount_id[hgfs.nmounts] = mount_id;
	hgfs.mount_fd[hgfs.nmounts] = fd;
	hgfs.mount_renames[hgfs.nmounts] = fstatfs(fd, &sfs) == 0 &&
		(sfs.f_type == FUSE_SUPER_MAGIC || sfs.f_type == OVERLAYFS_SUPER_MAGIC);
	ret = hgfs.nmounts++;
out:
	pthread_mutex_unlock(&hgfs.mnt_lock);
	return ret;
}

/*
 * Build a new inode for the object behind fd (any kind of fd); dirfd is a directory on the
 * same mount (the object itself when it is a directory, else its parent).
 */
static int inode_new(int fd, int dirfd, const struct stat *st, struct inode **out)
{
	struct inode *in;
	struct file_handle *h;
	int mount_id, ret;

	in = calloc(1, sizeof(*in));
	h = malloc(sizeof(*h) + MAX_HANDLE_SZ);
	if (!in || !h) {
		ret = -ENOMEM;
		goto err_free;
	}
	pthread_mutex_init(&in->lock, NULL);
	pthread_mutex_init(&in->jlock, NULL);
	pthread_rwlock_init(&in->wrl, NULL);
	in->dev = st->st_dev;
	in->ino = st->st_ino;
	in->kino = st->st_ino;
	in->type = st->st_mode & S_IFMT;
	in->fd = -1;
	in->ofd = -1;
	h->handle_bytes = MAX_HANDLE_SZ;
	if (!hgfs.handles && st->st_dev == hgfs.root_dev &&
	    (S_ISDIR(st->st_mode) || st->st_nlink <= 1)) {
		/* by parent and name (inode_path_fd) */
		free(h);
		h = NULL;
	} else if (name_to_handle_at(fd, "", h, &mount_id, AT_EMPTY_PATH) == 0) {
		ret = mount_index(mount_id, dirfd);
		if (ret < 0)
			goto err_free;
		in->mount_idx = ret;
		in->handle = realloc(h, sizeof(*h) + h->handle_bytes);
		if (!in->handle)
			in->handle = h;
		h = NULL;
	} else if (!hgfs.handles || errno == EOPNOTSUPP || errno == ENOTSUP) {
		/*
		 * No handles on this filesystem (another one below the root), or a hard-linked
		 * file (its one known name may go): an fd, bounded by that fs's / by link use.
		 */
		char p[64];

		snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
		in->fd = open(p, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (in->fd < 0 && S_ISLNK(st->st_mode)) {
			ret = -EOPNOTSUPP;
			goto err_free;
		}
		if (in->fd < 0) {
			ret = -errno;
			goto err_free;
		}
		free(h);
		h = NULL;
	} else {
		ret = -errno;
		goto err_free;
	}
	*out = in;
	return 0;

err_free:
	free(h);
	if (in) {
		pthread_mutex_destroy(&in->lock);
		pthread_mutex_destroy(&in->jlock);
		pthread_rwlock_destroy(&in->wrl);
	}
	free(in);
	return ret < 0 ? ret : -EIO;	/* never "success" without *out */
}

static bool same_handle(const struct file_handle *a, const struct file_handle *b)
{
	return a && b && a->handle_type == b->handle_type && a->handle_bytes == b->handle_bytes &&
	       memcmp(a->f_handle, b->f_handle, a->handle_bytes) == 0;
}

/*
 * Inode numbers are reused once a file is gone, while the kernel may still hold the old
 * nodeid: the handle (which carries the generation) tells the two apart.  The stale entry is
 * taken off the table and lives on only until the kernel forgets it.
 */
static bool stale_locked(struct inode *in, const struct file_handle *h)
{
	if (!in->handle || !h || same_handle(in->handle, h))
		return false;
	table_remove(in);
	return true;
}

/*
 * Without handles there is no generation to compare: an inode of a rejected upload (dead) or
 * of another type is certainly not the object now under its number (ext4 reuses the number of
 * a rejected tmpfile at once).  In inode_path_fd the name check does the rest.
 */
static bool stale_nohandle_locked(struct inode *in, mode_t type, bool dead)
{
	if (in->handle || (!dead && in->type == type))
		return false;
	table_remove(in);
	return true;
}

/* Insert fresh (nlookup 1) unless the key appeared meanwhile; returns the winner. */
static struct inode *insert_or_merge(struct inode *fresh)
{
	struct inode *in;

	pthread_mutex_lock(&table_lock);
	in = table_find(fresh->dev, fresh->ino);
	if (in && stale_locked(in, fresh->handle))
		in = NULL;
	if (in && !fresh->handle && stale_nohandle_locked(in, fresh->type, in->dead))
		in = NULL;
	if (in) {
		in->nlookup++;
		pthread_mutex_unlock(&table_lock);
		inode_free(fresh);
		return in;
	}
	fresh->nlookup = 1;
	table_insert(fresh);
	pthread_mutex_unlock(&table_lock);
	return fresh;
}

bool inode_is_hidden(struct inode *parent, const char *name, const struct stat *st)
{
	if (parent == &hgfs.root && name && strcmp(name, HGFS_STAGING_NAME) == 0)
		return true;
	if (hgfs.qname && name && parent->dev == hgfs.qparent_dev &&
	    parent->ino == hgfs.qparent_ino && strcmp(name, hgfs.qname) == 0)
		return true;
	if (st && st->st_dev == hgfs.staging_dev && st->st_ino == hgfs.staging_ino)
		return true;
	if (st && hgfs.qdir_hidden && st->st_dev == hgfs.qdir_dev && st->st_ino == hgfs.qdir_ino)
		return true;
	return false;
}

int inode_lookup(struct inode *parent, const char *name, struct stat *st, struct inode **out)
{
	struct inode *in, *fresh = NULL;
	int pfd, fd = -1, dfd, ret;

	if (inode_is_hidden(parent, name, NULL))
		return -ENOENT;
	/* The kernel resolves ".." itself; never let it walk above the root here. */
	if (strcmp(name, "..") == 0 && parent == &hgfs.root)
		name = ".";
	pfd = inode_fd(parent, O_PATH);
	if (pfd < 0)
		return pfd;
	if (fstatat(pfd, name, st, AT_SYMLINK_NOFOLLOW) < 0) {
		ret = -errno;
		goto out_pfd;
	}
	if (inode_is_hidden(parent, name, st)) {
		ret = -ENOENT;
		goto out_pfd;
	}
	if (st->st_dev == hgfs.root_dev && st->st_ino == hgfs.root_ino) {
		pthread_mutex_lock(&table_lock);
		hgfs.root.nlookup++;
		pthread_mutex_unlock(&table_lock);
		*out = &hgfs.root;
		ret = 0;
		goto out_pfd;
	}
	pthread_mutex_lock(&table_lock);
	in = table_find(st->st_dev, st->st_ino);
	if (in && in->handle) {
		/* Known key: make sure it is still the same object (see stale_locked). */
		union {
			struct file_handle h;
			char buf[sizeof(struct file_handle) + MAX_HANDLE_SZ];
		} hb;
		int mid;

		pthread_mutex_unlock(&table_lock);
		hb.h.handle_bytes = MAX_HANDLE_SZ;
		if (name_to_handle_at(pfd, name, &hb.h, &mid, 0) < 0) {
			ret = -errno;
			goto out_pfd;
		}
		pthread_mutex_lock(&table_lock);
		in = table_find(st->st_dev, st->st_ino);
		/* in->handle only changes under table_lock (inode_rekey) */
		if (in && stale_locked(in, &hb.h))
			in = NULL;
	}
	if (in && !in->handle && stale_nohandle_locked(in, st->st_mode & S_IFMT, in->dead))
		in = NULL;
	if (in) {
		in->nlookup++;
		pthread_mutex_unlock(&table_lock);
		/* A staged replacement shows its uploader the staged size. */
		pthread_mutex_lock(&in->lock);
		if (in->up)
			upload_getattr(in->up, st);	/* in->lock keeps it alive */
		pthread_mutex_unlock(&in->lock);
		inode_set_name(in, inode_to_ino(parent), name);
		*out = in;
		ret = 0;
		goto out_pfd;
	}
	pthread_mutex_unlock(&table_lock);

	fd = openat(pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		goto out_pfd;
	}
	/* The name may have been replaced between fstatat and openat: trust the fd. */
	if (fstat(fd, st) < 0 || inode_is_hidden(parent, name, st)) {
		ret = -ENOENT;
		goto out_fd;
	}
	dfd = S_ISDIR(st->st_mode) ? fd : pfd;
	ret = inode_new(fd, dfd, st, &fresh);
	if (ret < 0)
		goto out_fd;
	in = insert_or_merge(fresh);
	inode_set_name(in, inode_to_ino(parent), name);
	*out = in;
out_fd:
	close(fd);
out_pfd:
	inode_fd_put(parent, pfd);
	return ret;
}

int inode_from_fd(int fd, int dirfd, const struct stat *st, struct inode **out)
{
	struct inode *fresh = NULL;
	int ret;

	ret = inode_new(fd, S_ISDIR(st->st_mode) ? fd : dirfd, st, &fresh);
	if (ret < 0)
		return ret;
	*out = insert_or_merge(fresh);
	return 0;
}

/*
 * Without the table lock: callers hold in->lock of a child (inode_path_fd, inode_set_name)
 * and the lock order is table lock -> inode lock (inode_rekey holds the table lock and takes
 * in->lock; taking the table lock here deadlocked against it, seen in tests/mount/50).  The
 * caller knows @in is alive, so refs cannot be 0 with a free decided meanwhile.
 */
void inode_ref(struct inode *in)
{
	atomic_fetch_add(&in->refs, 1);
}

static void maybe_free_locked(struct inode *in, bool *freeit)
{
	*freeit = false;
	if (in == &hgfs.root)
		return;
	if (in->nlookup == 0 && atomic_load(&in->refs) == 0) {
		table_remove(in);
		*freeit = true;
	}
}

void inode_unref(struct inode *in)
{
	bool freeit;

	pthread_mutex_lock(&table_lock);
	atomic_fetch_sub(&in->refs, 1);
	maybe_free_locked(in, &freeit);
	pthread_mutex_unlock(&table_lock);
	if (freeit)
		inode_free(in);
}

void inode_forget(struct inode *in, uint64_t n)
{
	bool freeit;

	pthread_mutex_lock(&table_lock);
	in->nlookup = n > in->nlookup ? 0 : in->nlookup - n;
	maybe_free_locked(in, &freeit);
	pthread_mutex_unlock(&table_lock);
	if (freeit)
		inode_free(in);
}

/* A new fd (flags; O_PATH too) of the object behind fd, any kind of fd of it; or -errno. */
static int reopen(int fd, mode_t type, int flags)
{
	char p[64];
	int nfd;

	if (type == S_IFDIR) {
		nfd = openat(fd, ".", flags | O_CLOEXEC);
	} else {
		snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
		nfd = open(p, flags | O_CLOEXEC);
	}
	return nfd < 0 ? -errno : nfd;
}

/* Reopen an inode without a handle by its parent and name, checking it is still the same. */
static int inode_path_fd(struct inode *in, int flags)
{
	struct inode *parent = NULL;
	struct stat st;
	char *name = NULL, p[64];
	int pfd, fd, ret;

	pthread_mutex_lock(&in->lock);
	if (in->dead) {
		pthread_mutex_unlock(&in->lock);
		return -ENOENT;
	}
	if (in->up && !in->up->replaces && in->up->fd >= 0) {
		/*
		 * A new upload: the inode is the staged file (in->lock keeps the upload alive).
		 * Not a staged rewrite: its inode is the old file until the publish.
		 */
		snprintf(p, sizeof(p), "/proc/self/fd/%d", in->up->fd);
		fd = open(p, flags | O_CLOEXEC);
		pthread_mutex_unlock(&in->lock);
		return fd < 0 ? -errno : fd;
	}
	if (in->parent && in->name) {
		parent = ino_to_inode(in->parent);
		name = strdup(in->name);
		inode_ref(parent);	/* in->parent may change once in->lock is dropped */
	}
	pthread_mutex_unlock(&in->lock);
	if (!parent) {
		free(name);	/* NULL: set only with a parent */
		return -ENOENT;
	}
	ret = -ENOMEM;
	if (!name)
		goto out;
	pfd = inode_fd(parent, O_PATH);
	if (pfd < 0) {
		ret = pfd;
		goto out;
	}
	fd = openat(pfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	ret = fd < 0 ? -errno : 0;
	inode_fd_put(parent, pfd);
	if (ret < 0)
		goto out;
	if (fstat(fd, &st) < 0 || st.st_dev != in->dev || st.st_ino != in->ino) {
		close(fd);
		ret = -ENOENT;	/* the name is another object now: ours is gone */
		goto out;
	}
	ret = fd;
	if (flags != O_PATH) {
		/* opened by the checked O_PATH, so O_TRUNC never reaches another file */
		snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
		ret = in->type == S_IFDIR ? openat(fd, ".", flags | O_CLOEXEC) :
			open(p, flags | O_CLOEXEC);
		ret = ret < 0 ? -errno : ret;
		close(fd);
	}
out:
	free(name);
	if (parent)
		inode_unref(parent);
	return ret;
}

int inode_fd(struct inode *in, int flags)
{
	int fd, idx;

	if (in->fd >= 0) {
		char p[64];

		if (flags == O_PATH)
			return in->fd;
		if (in->type == S_IFDIR)
			fd = openat(in->fd, ".", flags | O_CLOEXEC);
		else {
			snprintf(p, sizeof(p), "/proc/self/fd/%d", in->fd);
			fd = open(p, flags | O_CLOEXEC);
		}
		return fd < 0 ? -errno : fd;
	}
	if (flags == O_PATH && in->type == S_IFDIR) {
		fd = dcache_get(in);
		if (fd >= 0)
			return fd;
	}
	pthread_mutex_lock(&in->lock);
	if (!in->handle && !in->dead && in->ofd >= 0) {
		/* open: its own object, wherever its name went (under the lock: see unpin) */
		fd = reopen(in->ofd, in->type, flags);
		pthread_mutex_unlock(&in->lock);
		if (fd >= 0 && flags == O_PATH && in->type == S_IFDIR)
			dcache_add(in, fd);
		return fd;
	}
	if (!in->handle && !in->dead) {
		pthread_mutex_unlock(&in->lock);
		fd = inode_path_fd(in, flags);
		if (fd >= 0 && flags == O_PATH && in->type == S_IFDIR)
			dcache_add(in, fd);
		return fd;
	}
	if (in->dead || !in->handle) {
		pthread_mutex_unlock(&in->lock);
		return -ENOENT;
	}
	idx = in->mount_idx;
	fd = open_by_handle_at(hgfs.mount_fd[idx], in->handle, flags | O_CLOEXEC);
	pthread_mutex_unlock(&in->lock);
	/*
	 * ESTALE: gone, or a FUSE backing (sshfs) without export support whose kernel inode was
	 * evicted: then its name still finds it (checked against dev, ino; sshfs keeps inode
	 * numbers with -o noforget).  Elsewhere ESTALE means gone: the name may hold a new file
	 * that was given the freed inode number (ext4 does that at once), and a chmod or
	 * truncate through a stale descriptor must not reach it (fsx seed 203 on ext4: the
	 * fchmod of a cancelled rewrite's descriptor hit a symlink made under the name).
	 */
	if (fd < 0 && errno == ESTALE && hgfs.mount_renames[idx])
		fd = inode_path_fd(in, flags);
	else if (fd < 0)
		fd = -errno;
	if (fd < 0)
		return fd == -ESTALE ? -ENOENT : fd;
	if (flags == O_PATH && in->type == S_IFDIR)
		dcache_add(in, fd);
	return fd;
}

void inode_fd_put(struct inode *in, int fd)
{
	if (fd < 0 || fd == in->fd)
		return;
	if (in->type == S_IFDIR && dcache_put(in, fd))
		return;
	close(fd);
}

void inode_set_name(struct inode *in, fuse_ino_t parent, const char *name)
{
	fuse_ino_t old;
	char *n;

	if (in == &hgfs.root)
		return;
	pthread_mutex_lock(&in->lock);
	if (in->parent == parent && in->name && strcmp(in->name, name) == 0) {
		pthread_mutex_unlock(&in->lock);
		return;
	}
	/* The name pins its parent (memory only, no fd) so in->parent never dangles. */
	n = strdup(name);
	if (!n) {
		pthread_mutex_unlock(&in->lock);
		return;
	}
	inode_ref(ino_to_inode(parent));
	old = in->parent;
	free(in->name);
	in->name = n;
	in->parent = parent;
	pthread_mutex_unlock(&in->lock);
	if (old)
		inode_unref(ino_to_inode(old));
}

int inode_rekey(struct inode *in, int fd, int dirfd, const struct stat *st)
{
	struct inode *old;
	struct file_handle *h;
	int mount_id, idx;

	if (!in->handle) {
		/* by path (or an fd of the old object): the new object is found by its key */
		int nfd = -1, nofd = -1;

		if (in->fd >= 0) {
			nfd = reopen(fd, in->type, O_PATH);
			if (nfd < 0)
				return nfd;
		}
		pthread_mutex_lock(&in->lock);
		if (in->ofd >= 0) {
			/*
			 * Open handles follow the inode to the new object, as by handle; without
			 * a descriptor for it the name (now the new object's) finds it.
			 */
			nofd = reopen(fd, in->type, O_PATH);
			if (nofd < 0) {
				close(in->ofd);
				in->ofd = -1;
				limits_open_give(in->ofd_uid);
			}
		}
		pthread_mutex_unlock(&in->lock);
		pthread_mutex_lock(&table_lock);
		table_remove(in);
		in->dev = st->st_dev;
		in->ino = st->st_ino;
		old = table_find(in->dev, in->ino);	/* a reused number: see below */
		if (old)
			table_remove(old);
		table_insert(in);
		pthread_mutex_lock(&in->lock);
		if (nfd >= 0) {
			close(in->fd);
			in->fd = nfd;
		}
		if (nofd >= 0) {
			if (in->ofd >= 0) {
				close(in->ofd);
				in->ofd = nofd;
				nofd = -1;
			}
		}
		pthread_mutex_unlock(&in->lock);
		pthread_mutex_unlock(&table_lock);
		if (nofd >= 0)
			close(nofd);	/* unpinned meanwhile */
		return 0;
	}
	h = malloc(sizeof(*h) + MAX_HANDLE_SZ);
	if (!h)
		return -ENOMEM;
	h->handle_bytes = MAX_HANDLE_SZ;
	if (name_to_handle_at(fd, "", h, &mount_id, AT_EMPTY_PATH) < 0) {
		int e = -errno;

		free(h);
		return e;
	}
	idx = mount_index(mount_id, dirfd);
	if (idx < 0) {
		free(h);
		return idx;
	}
	pthread_mutex_lock(&table_lock);
	table_remove(in);
	in->dev = st->st_dev;
	in->ino = st->st_ino;
	/*
	 * The new key may already be taken: the filesystem reuses the number of a file that is
	 * gone while the kernel still holds that file's inode (or a lookup raced the rename).
	 * The inode moving here is the one the writer's descriptors are on, so it wins: the
	 * other leaves the table (it lives on for the kernel's references, by its own handle).
	 * Left off the table itself, the next lookup of the name made a second kernel inode of
	 * the same file, and the two cached different attributes (fsx: a chmod through the
	 * descriptor not seen by stat of the name, an ftruncate undone).
	 */
	old = table_find(in->dev, in->ino);
	if (old)
		table_remove(old);
	table_insert(in);
	pthread_mutex_lock(&in->lock);
	free(in->handle);
	in->handle = h;
	in->mount_idx = idx;
	pthread_mutex_unlock(&in->lock);
	pthread_mutex_unlock(&table_lock);
	return 0;
}

void inode_pin(struct inode *in, int fd)
{
	char p[64];
	int nfd;

	if (in->handle || in->fd >= 0 || in == &hgfs.root)
		return;
	snprintf(p, sizeof(p), "/proc/self/fd/%d", fd);
	nfd = open(p, O_PATH | O_CLOEXEC);
	if (nfd < 0)
		return;		/* still reachable by name; only less robust */
	pthread_mutex_lock(&in->lock);
	if (in->fd < 0) {
		in->fd = nfd;
		nfd = -1;
	}
	pthread_mutex_unlock(&in->lock);
	if (nfd >= 0)
		close(nfd);
}

bool inode_open_pin(struct inode *in, int fd, uid_t uid)
{
	bool need;
	int nfd;

	if (in == &hgfs.root)
		return false;
	pthread_mutex_lock(&in->lock);
	if (in->handle) {
		pthread_mutex_unlock(&in->lock);
		return false;
	}
	in->opins++;
	need = in->ofd < 0 && in->fd < 0 && !in->dead;
	pthread_mutex_unlock(&in->lock);
	/* without a unit or an fd it is still reachable by name while it keeps one */
	if (!need || limits_open_take(uid) < 0)
		return true;
	nfd = fd >= 0 ? reopen(fd, in->type, O_PATH) : inode_path_fd(in, O_PATH);
	if (nfd < 0) {
		limits_open_give(uid);
		return true;
	}
	pthread_mutex_lock(&in->lock);
	/* unpinned meanwhile (its handle already released), or another pin was first */
	if (in->opins && in->ofd < 0) {
		in->ofd = nfd;
		in->ofd_uid = uid;
		nfd = -1;
	}
	pthread_mutex_unlock(&in->lock);
	if (nfd >= 0) {
		close(nfd);
		limits_open_give(uid);
	}
	return true;
}

void inode_open_unpin(struct inode *in)
{
	uid_t uid = 0;
	int fd = -1;

	pthread_mutex_lock(&in->lock);
	if (in->opins && --in->opins == 0) {
		fd = in->ofd;
		uid = in->ofd_uid;
		in->ofd = -1;
	}
	pthread_mutex_unlock(&in->lock);
	if (fd >= 0) {
		close(fd);
		limits_open_give(uid);
	}
}

void inode_hold_lookup(struct inode *in)
{
	pthread_mutex_lock(&table_lock);
	in->nlookup++;
	pthread_mutex_unlock(&table_lock);
}

struct inode *inode_find_ref(int dirfd, const char *name)
{
	struct stat st;
	struct inode *in;

	if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
		return NULL;
	pthread_mutex_lock(&table_lock);
	in = table_find(st.st_dev, st.st_ino);
	if (in)
		atomic_fetch_add(&in->refs, 1);
	pthread_mutex_unlock(&table_lock);
	return in;
}

void inode_rename_hint(int dirfd, fuse_ino_t parent, const char *name)
{
	struct inode *in = inode_find_ref(dirfd, name);

	if (!in)
		return;
	inode_set_name(in, parent, name);
	inode_unref(in);
}
