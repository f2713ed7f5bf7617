/*
 * tmpname.h - the name a client meant to give a file it uploads under a temporary name and
 * renames when done.  When hashgatefs refuses such an upload the rename never reaches it (the
 * kernel finds no source and fails the rename itself), so the record's path is the temporary
 * name; for the patterns of common tools the final name is in it:
 *
 *   rsync        .NAME.XXXXXX              (6 letters or digits)
 *   WinSCP       NAME.filepart
 *   Nextcloud    NAME.ocTransferIdDIGITS.part
 *   ProFTPD      .in.NAME.                 (HiddenStores)
 *   tmp, part    NAME.EXT.tmp, NAME.EXT.part (NAME.EXT: a name with an extension, so
 *                ".upload-8765.tmp" or "upload.tmp", which carry no final name, give none)
 *
 * Pure functions of their arguments; thread-safe.
 */
#ifndef HASHDB_TMPNAME_H
#define HASHDB_TMPNAME_H

#include <stddef.h>

/*
 * path (relative or absolute): its directory plus the intended name into out, and 1, with
 * *pattern (when not NULL) the pattern's name ("rsync", "winscp", ...); 0 when no pattern
 * matches or out is too small.
 */
int tmpname_intended(const char *path, char *out, size_t len, const char **pattern);

#endif
