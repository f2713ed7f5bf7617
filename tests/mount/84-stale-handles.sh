#!/bin/bash
# 84-stale-handles.sh - a descriptor whose file is gone never reaches another file that was
# given the freed inode number.
# ext4 hands a freed inode number to the next new file at once.  When open_by_handle_at
# answered ESTALE for an inode (its file unlinked and freed), the daemon used to look the
# inode up by its last name and accept what it found if (dev, ino) matched: the new file
# under that name.  A chmod or truncate through the old descriptor then hit the new file (fsx
# seed 203: the fchmod of a cancelled rewrite's descriptor hit a symlink made under the
# name, EOPNOTSUPP; other seeds read the wrong directory or mode).  The name is asked now
# only on FUSE and overlayfs backings, whose ESTALE may just mean a forgotten inode.
# The fsx replay is deterministic on a fresh ext4 (it failed at step 18795 every time before
# the fix); a backing of another type may not reuse numbers, so ext4 is used unless
# HG_BACKING_FS says otherwise.
. "$(dirname "$0")/lib.sh"
command -v mkfs.ext4 >/dev/null || [ -n "${HG_BACKING_FS:-}" ] ||
	skip_all "mkfs.ext4 missing (make deps)"
HG_BACKING_FS=${HG_BACKING_FS:-ext4}
hg_setup
FSX=$HG_BUILD/tests/tools/fsx
[ -x "$FSX" ] || bail "$FSX is not built"

hg_mount allow_other || bail "mount failed"
mkdir "$HG_MNT/r" "$HG_TMP/ref" || bail "mkdir failed"
out=$("$FSX" -s 203 -n 18796 -c 500 "$HG_MNT/r" "$HG_TMP/ref" 2>&1)
rc=$?
hg_result "$([ $rc = 0 ] && echo 1 || echo 0)" \
	"fsx seed 203, 18796 ops: no divergence (the step that hit a reused inode number)"
[ $rc = 0 ] || diag "$(printf '%s\n' "$out" | tail -n 8)"
ok "daemon still alive" kill -0 "$HG_PID"
hg_umount
done_testing
