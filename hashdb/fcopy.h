/*
 * fcopy.h - copy one file's whole content into another the cheapest way the filesystems allow:
 * a reflink (FICLONE: XFS with reflink, btrfs, bcachefs; shares the extents, no bytes move),
 * else copy_file_range (server-side copy on NFS 4.2, in-kernel elsewhere), else read/write.
 * Stateless and thread-safe; the caller owns both descriptors.
 */
#ifndef HASHDB_FCOPY_H
#define HASHDB_FCOPY_H

enum fcopy_how { FCOPY_REFLINK = 1, FCOPY_RANGE, FCOPY_RW };

/*
 * Make out_fd (open for writing, empty) a copy of all of in_fd (from offset 0, whatever its
 * file position) and leave it at that size; 0 or -errno.  *how (may be NULL) says which way
 * the bytes went.  Does not fsync.
 */
int fcopy_fd(int in_fd, int out_fd, enum fcopy_how *how);
const char *fcopy_how_name(enum fcopy_how how);

#endif
