/*
 * hgfs.h - shared state of the hashgatefs daemon: the global struct hgfs, backing inodes,
 * staged uploads and open file handles.
 *
 * Invariants:
 *  - No file descriptor is held per looked-up inode: an inode keeps a kernel file handle
 *    (name_to_handle_at) and is reopened with open_by_handle_at on demand, or, where the
 *    backing filesystem has no usable handles, by its parent and name (checked).  Only the
 *    root and inodes on other filesystems below it without handles keep an O_PATH fd;
 *    without handles an inode keeps one while it is open (inode_open_pin).
 *  - Every path operation is relative to a parent fd with one name component and
 *    O_NOFOLLOW/AT_SYMLINK_NOFOLLOW, so nothing escapes BACKING_DIR.
 *  - A staged upload's bytes live only in an O_TMPFILE (no name in BACKING_DIR) until a clean
 *    verdict links it in; a daemon crash therefore never leaves an unscanned upload behind.
 *    Where the backing filesystem has no O_TMPFILE (staging=named) they live in a file of
 *    random name in the root-only BACKING/.hashgate-staging, which the mount never shows;
 *    a crash leaves it there until the next start-up removes it (staging.c).
 *  - Lock order: pending table lock -> upload lock -> inode table lock -> inode lock.
 *    Upload references are atomic so holders of an inode lock never take an upload lock.
 */
#ifndef HGFS_H
#define HGFS_H

#define FUSE_USE_VERSION 34

#include <dirent.h>
#include <fcntl.h>
#include <fuse_lowlevel.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "hashdb/config.h"
#include "hashdb/hash.h"
#include "hashdb/image.h"
#include "hashdb/match.h"
#include "hashdb/pdq.h"
#include "hashdb/status.h"
#include "fs/limits.h"

/* Hidden directory at the backing root used to link clean uploads before the final rename. */
#define HGFS_STAGING_NAME	".hashgate-staging"
#define HGFS_KEPT_NAME		"kept"	/* STAGING/kept: evidence the quarantine could not take */
#define HGFS_MAX_MOUNTS		64

struct upload;

/* A process with cached (not direct_io) descriptors of an inode open; gate.c. */
#define GATE_OPENERS	4
struct gate_opener {
	pid_t tid;			/* the thread that opened first */
	pid_t tgid;			/* its process, 0 until someone needs to know */
	unsigned n, nw;			/* its cached descriptors, writable ones */
};

struct inode {
	dev_t dev;			/* key: backing (st_dev, st_ino); under table lock */
	ino_t ino;
	struct inode *hnext;
	uint64_t nlookup;		/* kernel lookup count; under table lock */
	/*
	 * Our own references (open files, uploads, a child's name): taken without the table
	 * lock by whoever already knows the inode is alive (a request on it, a reference, the
	 * lock of a child whose name pins it), so that holders of an inode's lock may pin its
	 * parent; dropped, and judged free, under the table lock.
	 */
	atomic_uint_fast64_t refs;
	mode_t type;			/* S_IFMT bits */
	ino_t kino;			/* st_ino first reported: the kernel's i_ino, kept by rekey */

	pthread_mutex_t lock;		/* handle, fd, up, name */
	struct file_handle *handle;	/* NULL when the fs has no handles: then fd */
	int mount_idx;
	int fd;				/* O_PATH fd for root and handle-less fallbacks, else -1 */
	int ofd;			/* no handle: O_PATH fd held while opins > 0, else -1 */
	unsigned opins;			/* open handles pinning it (inode_open_pin) */
	uid_t ofd_uid;			/* whose limits.c unit ofd holds */
	struct upload *up;		/* staged upload replacing this inode's content */
	fuse_ino_t parent;		/* last known parent/name, for O_TRUNC staging and pulls */
	char *name;
	atomic_bool dead;		/* tmpfile of a rejected upload; atomic: set under the
					   inode lock, read under the table lock */
	int dslot;			/* directory fd cache slot, 0 = none; under its lock */

	atomic_uint_fast64_t wgen;	/* bumped by every content change through the mount */
	atomic_uint_fast64_t sgen;	/* wgen value the last clean scan covered */
	atomic_int writers;		/* open writable handles not belonging to a staged upload */
	atomic_int openfh;		/* all open file handles */
	atomic_int plainfh;		/* open handles on the backing file itself (no upload) */

	/* gate.c: in-place content and who may read it before its verdict */
	pthread_mutex_t jlock;		/* one verdict at a time; others wait for it */
	pthread_rwlock_t wrl;		/* writes exclusive, gated reads shared */
	atomic_int dirty_tgid;		/* 0, the one unjudged writer process, or -1 */
	atomic_uint wuid;		/* uid + 1 of the last writer (0 unknown), for records */
	atomic_uint_fast64_t pullgen;	/* wgen when matched content was last pulled */
	atomic_uint_fast64_t resume_size;	/* bytes resume covers, 0 = none */
	atomic_uint_fast64_t failgen;	/* wgen whose verdict failed (EIO) at failtime */
	atomic_int_fast64_t failtime;
	struct hasher *resume;		/* judged prefix's hash state, for appends; jlock */
	dev_t rdev;			/* ... of this backing file; jlock */
	ino_t rino;
	struct gate_opener op[GATE_OPENERS];	/* under lock */
	unsigned op_other;		/* cached readers beyond the table; under lock */
};

/* scan.c: a verdict's findings */
struct scan_result {
	struct digests d;
	bool has_pdq;
	struct pdq_result pdq;
	int match;			/* 1 match, 0 clean */
	int pdq_err;			/* scan_fd failed because an image gave no PDQ (-errno) */
	enum hg_on_error pdq_on_error;	/* then: the on_error of the lists left unchecked */
	bool streamed;			/* exact digests came from the write stream (no re-read) */
	struct match_hit hit;
	uint64_t generation;
};

enum upload_state { UP_STAGED, UP_PUBLISHED, UP_REJECTED, UP_CANCELLED };

struct wrange {
	uint64_t off, end;
};

struct upload {
	pthread_mutex_t lock;
	atomic_uint refs;		/* fhs and transient users (atomic: taken under in->lock) */
	unsigned writers;		/* writable fhs still open; under lock */
	enum upload_state state;
	int result;			/* 0 or -errno of the verdict, returned to later flushes */
	int werr;			/* first failed write (-errno): the upload is incomplete */
	atomic_bool stray;		/* published, but its name leads to another inode
					 * number (named_check_key): its handles' writes
					 * and fallocate fail with EIO (ops.c fh_stray) */
	int fd;				/* the O_TMPFILE, O_RDWR */
	struct inode *inode;		/* the inode the kernel sees (tmpfile or replaced file) */
	struct inode *parent;		/* referenced */
	char *name;
	char sname[96];			/* staging=named: the file's name in the staging dir
					 * until publish or drop ("" for an O_TMPFILE) */
	bool replaces;			/* O_TRUNC of an existing file: inode keeps its nodeid */
	dev_t tdev;			/* the tmpfile's identity */
	ino_t tino;
	struct hasher hasher;
	bool hashing;			/* hasher valid: streaming still possible (hashq.c) */
	unsigned busy;			/* parties hashing [frontier, claimed) without the lock */
	bool queued;			/* on the background hasher's queue */
	uint64_t frontier;		/* [0, frontier) hashed */
	uint64_t claimed;		/* [frontier, claimed) being hashed */
	struct wrange *rg;		/* written, not yet hashed; sorted, disjoint, >= claimed */
	size_t nrg, rgcap;
	pthread_cond_t cond;		/* busy cleared */
	struct upload *qnext;
	unsigned mask;			/* algorithms hashed */
	uid_t uid;
	gid_t gid;
	pid_t pid;
	mode_t mode;
	int64_t start;
	ino_t kino;			/* the inode number the kernel knows this file by */
	struct upload *pnext;		/* pending table chain (new names only) */
	bool pending;
	bool settle_tried;		/* pending_settle_dir bookkeeping; under pend_lock */
	/*
	 * What the upload's file looks like without asking it (ops.c, verdict_heavy): written
	 * extent and the first bytes, from writes that came in memory; shape_known false once
	 * anything else changed it (truncate, fallocate, a spliced write over the head).  lock.
	 */
	bool shape_known;
	uint64_t wend;
	unsigned char head[IMAGE_MAGIC_LEN];
	size_t nhead;
	atomic_bool caps_set;		/* a setxattr went to the tmpfile: it may hold
					 * security.capability (ops.c, hg_getxattr) */
	atomic_bool privs;		/* a chmod to set-id bits since the last write through
					 * a direct handle (ops.c, kill_privs) */
	bool limited;			/* counted by limits_upload_begin (uid) */
	_Atomic uint64_t lim_bytes;	/* apparent size accounted by limits_upload_grow */
	pid_t hidden[8];		/* related writers sent to make their own upload of the
					 * name: lookups from them do not see this one; pend_lock */
	int nhidden;
	/*
	 * upload_precheck: the scan of the streamed [0, pre_end), worked out after the write
	 * that ended there under config pre_cfg (referenced: it ranks a hash's lists); the
	 * verdict takes it while nothing changed since (lock).
	 */
	bool pre_ok;
	uint64_t pre_end;
	struct scan_result pre;
	struct fscfg *pre_cfg;
};

struct fh {
	int fd;
	struct inode *inode;		/* referenced */
	struct upload *up;		/* referenced; NULL for plain opens */
	bool writable;
	bool wrote;			/* content changed through this handle */
	bool counted;			/* counted in up->writers */
	bool plain;			/* counted in inode->plainfh */
	bool capless;			/* xattr=off: security.capability dropped (ops.c) */
	bool dwrite;			/* direct_io writer of a staged upload: the kernel does
					 * not drop privileges on its writes, we do (ops.c) */
	bool pinned;			/* holds an inode_open_pin */
	DIR *dir;			/* opendir */
	off_t dir_off;
	bool direct;			/* direct_io: reads come to gate_read_begin */
	int cslot;			/* gate opener slot of a cached handle (GATE_OPENERS:
					 * counted in op_other), or -1 */
	pid_t ltid, ltgid;		/* last requesting thread and its process (cache) */
	uint64_t wgen0;			/* wgen after this handle's first write */
	bool limited;			/* holds a limits_open_take unit of lim_uid */
	uid_t lim_uid;			/* who opened it: its limits unit, its verdicts' queue */
};

struct fscfg {
	atomic_int refs;
	struct hg_config c;
};

struct hgfs {
	char *backing;
	char *mountpoint;
	char *mnt_real;			/* realpath of the mountpoint, for /proc fd checks */
	size_t mnt_len;
	int root_fd;			/* O_PATH of BACKING_DIR */
	dev_t root_dev;
	ino_t root_ino;
	struct inode root;

	pthread_mutex_t mnt_lock;
	int nmounts;
	int mount_id[HGFS_MAX_MOUNTS];
	int mount_fd[HGFS_MAX_MOUNTS];	/* O_RDONLY dir fds for open_by_handle_at */
	bool mount_renames[HGFS_MAX_MOUNTS];	/* ESTALE may only mean the backing forgot
						 * the inode (FUSE, overlayfs): ask its name */

	int staging_fd;			/* O_PATH of BACKING/.hashgate-staging */
	enum staging_mode { STAGING_AUTO, STAGING_TMPFILE, STAGING_NAMED } staging_opt,
		staging;		/* staging= option; what staging_init chose */
	bool handles;			/* inodes are reopened by file handle (inode.c) */
	bool handles_off;		/* handles=off: by parent and name even where there are */
	bool sync_uploads;		/* network backing: fsync an upload before its verdict */
	bool links_one_inode;		/* a hard link on the backing keeps its file's st_ino
					 * (links_probe, staging.c); false: link() is refused */
	char fstype[16];		/* the backing root's filesystem type, for status */
	dev_t staging_dev;
	ino_t staging_ino;
	dev_t qdir_dev;			/* quarantine dir, hidden when inside BACKING */
	ino_t qdir_ino;
	bool qdir_hidden;
	dev_t qparent_dev;		/* ... and its parent and name, so the name stays reserved */
	ino_t qparent_ino;
	char *qname;

	struct matcher_slot slot;
	pthread_mutex_t cfg_lock;
	struct fscfg *cfg;
	char *config_path;		/* explicit config=, or NULL */
	char **optkv;			/* -o key=value pairs to reapply on reload */
	size_t noptkv;

	struct qstore *qstore;
	struct audit *audit;

	bool scan;			/* scan=off: benchmark baseline, no hashing at all */
	bool writeback;
	bool sticky_loop;		/* -o loop=sticky: loop.c, not fuse_session_loop_mt */
	bool splice_read;		/* splice WRITE data from /dev/fuse into files */
	double timeout;			/* entry/attr timeout */
	enum { RDPLUS_AUTO, RDPLUS_ON, RDPLUS_OFF } rdplus;	/* readdirplus= (ops.c hg_init) */
	bool xattr;			/* xattr=off: xattr requests answer ENOSYS (ops.c) */
	bool foreground;
	bool debug;
	struct fuse_session *se;

	atomic_bool hup;
	atomic_bool stop;
	pthread_t bg_thread;

	pthread_mutex_t st_lock;
	struct hg_status st;
	atomic_uint_fast64_t tmpseq;
};

extern struct hgfs hgfs;

/* inode.c */
int inode_table_init(void);
struct inode *inode_get(fuse_ino_t ino);
/* Resolve name under parent; on success *out is referenced by one lookup (nlookup + 1). */
int inode_lookup(struct inode *parent, const char *name, struct stat *st, struct inode **out);
/* Register an object we just created/opened (fd is any fd of it), nlookup + 1. */
int inode_from_fd(int fd, int dirfd, const struct stat *st, struct inode **out);
void inode_forget(struct inode *in, uint64_t n);
void inode_ref(struct inode *in);
void inode_unref(struct inode *in);
/* An fd for in: O_PATH unless flags say otherwise.  Release with inode_fd_put. */
int inode_fd(struct inode *in, int flags);
void inode_fd_put(struct inode *in, int fd);
void inode_set_name(struct inode *in, fuse_ino_t parent, const char *name);
/*
 * in has a second name now (fd: any fd of it): an inode reopened by name keeps an O_PATH fd
 * from here on, since the one name it knows may go while the file lives on under another.
 */
void inode_pin(struct inode *in, int fd);
/*
 * An open handle of in: an inode without a file handle keeps an O_PATH fd of its object
 * while any handle is open, so the open file stays reachable after its name goes (unlinked,
 * renamed over, its directory removed), as open_by_handle_at finds it.  fd: any fd of the
 * object the inode is now, or -1 to find it by name.  true: pinned, inode_open_unpin at the
 * handle's release.  The fd holds a unit of uid's open-files budget (limits.c), like a handle;
 * without one (uid at its share) or when it cannot be opened the inode stays reachable by
 * name only.
 */
bool inode_open_pin(struct inode *in, int fd, uid_t uid);
void inode_open_unpin(struct inode *in);
/* Re-key in to a new backing object (O_TRUNC staging published); fd refers to it. */
int inode_rekey(struct inode *in, int fd, int dirfd, const struct stat *st);
bool inode_is_hidden(struct inode *parent, const char *name, const struct stat *st);
uint64_t inode_count(void);
void inode_hold_lookup(struct inode *in);
/* The known inode at dirfd/name, referenced (inode_unref), or NULL. */
struct inode *inode_find_ref(int dirfd, const char *name);
/* After a rename: the object now at dirfd/name is known under that name. */
void inode_rename_hint(int dirfd, fuse_ino_t parent, const char *name);

/* creds.c */
int creds_own_new(int dirfd, const char *name, int fd, struct inode *parent, fuse_req_t req,
		  mode_t mode);

/* staging.c */
/* Create the staging dir, remove stale entries, choose the staging mode (probe O_TMPFILE). */
int staging_init(void);
const char *staging_mode_name(enum staging_mode m);
/*
 * Remove / rename (renameat2 flags; RENAME_NOREPLACE also where the backing filesystem lacks
 * it) the name for uid.  In a sticky directory that binds uid, atomic against publishes: only
 * a file of uid's leaves the directory (-EPERM when another user's upload took the source or
 * target name since the kernel's check).  0 or -errno.
 */
int staging_unlink(int pfd, const char *name, uid_t uid);
int staging_rename(int pfd, const char *name, int npfd, const char *newname,
		   unsigned int flags, uid_t uid);
int upload_create(fuse_req_t req, struct inode *parent, const char *name, mode_t mode,
		  struct upload **out, struct stat *st);
int upload_replace(fuse_req_t req, struct inode *in, struct upload **out);
/*
 * Write the request's bytes at off: n or -errno.  *hash set: the caller must call
 * upload_write_hashed(hash) once it has replied (the bytes get hashed from memory then,
 * unless upload_write_hash did it before the reply).
 */
struct upload_wh {
	struct upload *up;		/* NULL: nothing to hash */
	const void *mem;		/* NULL once hashed (upload_write_hash) */
	uint64_t off;
	size_t n;
};
ssize_t upload_write(struct upload *up, struct fuse_bufvec *in, off_t off,
		     struct upload_wh *hash);
void upload_write_hashed(struct upload_wh *hash);
/* Hash it now (before the reply: the buffer is still the request's); the rest after it. */
void upload_write_hash(struct upload_wh *hash);
void upload_dirty(struct upload *up);
/* The upload's size and whether it is an image the scan would decode: 1 yes, 0 no, -1 ask
 * the file. */
int upload_shape(struct upload *up, uint64_t *size);
void upload_add_writer(struct upload *up);
/* Drop a writer; true when it was the last one. */
bool upload_drop_writer(struct upload *up);
int upload_verdict(struct upload *up, fuse_req_t req);
/* True if pid or its parent still holds an fd of the upload open (a dup survives close). */
bool upload_open_elsewhere(struct upload *up, pid_t pid);
/* True if pids a and b belong to the same process. */
bool same_process(pid_t a, pid_t b);
/* The thread group (process) of a thread id, 0 if it is gone. */
pid_t tgid_of(pid_t pid);
bool proc_capable(pid_t pid, int cap);
bool related_process(pid_t asker, pid_t writer);
/* Does pid hold an fd on this mount of the kernel inode number kino? */
bool process_holds(pid_t pid, ino_t kino);
int upload_getattr(struct upload *up, struct stat *st);
void upload_put(struct upload *up);
/*
 * The newest staged upload of parent/name visible to uid's process pid (its own or a related
 * process's, not hidden from it), referenced; NULL if none.
 */
struct upload *pending_find_own(fuse_ino_t parent, const char *name, uid_t uid, pid_t pid);
/*
 * Counts uploads leaving the pending table (published, rejected, cancelled).  A lookup that
 * found no backing name and no pending upload looks again when it moved: a verdict published
 * the name in between.
 */
unsigned pending_gen(void);
/* Hide up from lookups by pid (true), or false when its list is full. */
bool pending_hide(struct upload *up, pid_t pid);
bool pending_hidden(struct upload *up, pid_t pid);
/*
 * A namespace change of parent/name by pid: its own staged uploads of that name are
 * cancelled / moved; with file_gone / file_moved (the backing file under the name was
 * removed / renamed) the rewrites staged for that file are.  -ENOENT when none was;
 * pending_unlink returns 1 when the pid's own upload was published meanwhile (its verdict,
 * made by a RELEASE, was in progress): the name is now in the backing directory;
 * pending_rename returns 1 in that case too (nothing moved).
 */
int pending_rename(fuse_ino_t parent, const char *name, struct inode *nparent,
		   const char *newname, pid_t pid, bool file_moved);
int pending_unlink(fuse_ino_t parent, const char *name, pid_t pid, bool file_gone);
/*
 * The staged uploads of parent/name (at most max), referenced: taken before a backing
 * unlink, so that pending_unlink_grabbed after its ENOENT still sees an upload whose verdict
 * published the name and left the table in between (the table alone would say "none").
 * pending_unlink_grabbed answers as pending_unlink(..., false); pending_drop puts them.
 */
size_t pending_grab(fuse_ino_t parent, const char *name, struct upload **v, size_t max);
int pending_unlink_grabbed(struct upload **v, size_t n, pid_t pid);
void pending_drop(struct upload **v, size_t n);
void pending_settle_dir(fuse_ino_t parent, fuse_req_t req);
void pending_settle_name(fuse_ino_t parent, const char *name, fuse_req_t req);
bool pending_any(void);

/* hashq.c */
int hashq_start(void);
/* Lower the calling (bulk work) thread's priority for good; see hashq.c. */
void hashq_bulk_thread(void);
void hashq_shutdown(void);
void hashq_wrote(struct upload *up, uint64_t off, uint64_t n);
/*
 * hashq_wrote for a write whose bytes the caller has in memory; up->lock held.  true: the
 * caller claimed [off, off+n) and must pass the bytes to hashq_hash_mem (outside the lock,
 * after replying; it takes an upload reference meanwhile).
 */
bool hashq_wrote_mem(struct upload *up, uint64_t off, uint64_t n);
/* The caller then drops the reference hashq_wrote_mem took (upload_put). */
void hashq_hash_mem(struct upload *up, const void *mem, uint64_t off, size_t n);
/* Would a write at off be hashed from memory (a hint: hashq_wrote_mem decides)?  Locks. */
bool hashq_in_order(struct upload *up, uint64_t off);
void hashq_step(struct upload *up);
void hashq_stop_streaming(struct upload *up);

/* gate.c: see its header comment.  All thread-safe. */
bool gate_dirty(struct inode *in);
/* Register a regular file's new handle; true when it must be direct_io. */
bool gate_open(struct inode *in, struct fh *fh, pid_t tid, bool wr);
void gate_close(struct inode *in, struct fh *fh);
/*
 * Around every write to a file through the mount (fh may be NULL: truncate by path); off is
 * the lowest offset whose bytes may change.
 */
bool gate_write_begin(struct inode *in, struct fh *fh, fuse_req_t req, uint64_t off);
/* locked: what gate_write_begin returned */
void gate_write_end(struct inode *in, struct fh *fh, off_t off, size_t len, bool locked);
/* Judge unjudged content now: 0, -EACCES (matched and pulled) or -EIO (fail closed). */
int gate_judge(struct inode *in, fuse_req_t req, const char *why);
/* Before an open by thread tid: judge others' unjudged writes first. */
int gate_open_check(struct inode *in, pid_t tid, fuse_req_t req);
/* Would an open (fh NULL) or read by thread tid have to judge others' writes first? */
bool gate_would_judge(struct inode *in, struct fh *fh, pid_t tid);
/* Around a read: on 0 the caller may read and must call gate_read_end. */
int gate_read_begin(struct inode *in, struct fh *fh, fuse_req_t req);
void gate_read_end(struct inode *in);
/*
 * After a clean verdict of a file of st's identity from at least GATE_RESUME_MIN bytes, made
 * at write generation wsnap: keep save (a live hasher over exactly that content; taken over)
 * so appends resume it.
 */
#define GATE_RESUME_MIN		(4u << 20)
void gate_keep_hash(struct inode *in, const struct stat *st, struct hasher *save,
		    uint64_t wsnap);
/* FLUSH/RELEASE of a handle that wrote: its verdict (0, -EACCES, -EIO). */
int gate_close_verdict(struct inode *in, struct fh *fh, fuse_req_t req, const char *why);

/* verdictq.c: the verdict worker pool, fair across uids (see its header) */
struct vq_job {
	struct vq_job *next;
	void (*run)(struct vq_job *);	/* owns and frees the job */
};
int vq_start(unsigned nthreads);
void vq_stop(void);
void vq_submit(struct vq_job *j, uid_t uid);

/* scan.c */
unsigned scan_algos(void);
/*
 * 0 with r->match set, or -errno when no verdict could be made: then scan_on_error() says
 * whether the upload may be published.  An image that gives no PDQ is such an error only when
 * no exact hash matched (r->pdq_err, r->pdq_on_error from on_error.CATEGORY).
 */
int scan_fd(int fd, const struct digests *streamed, struct scan_result *r);
/* scan_fd, counting the bytes in the status only if count (a precheck may be wasted). */
int scan_fd_ex(int fd, const struct digests *streamed, struct scan_result *r, bool count);
/* Is generation the matcher snapshot's current one? */
bool scan_current(uint64_t generation);
/* on_error for a failed scan_fd (r zeroed or from scan_fd; cfg the current config). */
enum hg_on_error scan_on_error(const struct scan_result *r, const struct hg_config *cfg);

/* quarantine.c */
struct verdict_ctx {
	uid_t uid;
	gid_t gid;
	pid_t pid;
	mode_t mode;
	int64_t start;
	const char *path;		/* relative to the mount root, may be NULL */
	const char *kind;		/* "upload", "inplace", "rewrite" */
};
/* Act on a match; content_fd may be used to quarantine.  Returns the errno for close(). */
int quarantine_match(const struct verdict_ctx *v, int content_fd, const struct scan_result *r,
		     enum hg_action *action);
void quarantine_log_clean(const struct verdict_ctx *v, const struct scan_result *r);
void quarantine_log_error(const struct verdict_ctx *v, int err, bool published);
/* Path of (parent,name) relative to the mount root, malloc'd; best effort. */
char *path_of(fuse_ino_t parent, const char *name);

/* hook.c: on_match_exec, run off the verdict path by one thread (see its header) */
int hook_start(void);
void hook_stop(void);
/* Queue the event of a match (fields: the audit record's members); never blocks. */
void hook_submit(const struct match_hit *hit, uid_t uid, int64_t id, const char *fields);

/* main.c */
struct fscfg *cfg_get(void);
void cfg_put(struct fscfg *c);
void stat_add(uint64_t *field, uint64_t n);
void stat_set(uint64_t *field, uint64_t v);

extern const struct fuse_lowlevel_ops hgfs_ops;

static inline struct inode *ino_to_inode(fuse_ino_t ino)
{
	return ino == FUSE_ROOT_ID ? &hgfs.root : (struct inode *)(uintptr_t)ino;
}

static inline fuse_ino_t inode_to_ino(struct inode *in)
{
	return in == &hgfs.root ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)in;
}

#endif
