#!/bin/bash
# 37-fsx-cases.sh - what `make fsx-long` found (issue 14), each as its minimal syscall sequence.
# 1. One backing file is one kernel inode, also after a rewrite's publish
# gave the inode a backing inode number the filesystem had just freed (ext4 reuses them at
# once) while the kernel still held the inode of the file that had it.  Before the fix the
# re-keyed inode stayed off the daemon's table, the next lookup of the name made a second
# kernel inode of the same file, and the two kept different attributes: a chmod or ftruncate
# through the writer's descriptor was not seen by stat of the name (fsx-long, issue 14).
# Each case loops until the rewrite's tmpfile reuses the number of a file removed from the
# backing dir behind a cached lookup; it is skipped when the filesystem never reuses one.
# 2. unlink() by the uploader right after close() removes the name, also when that close was
#    not the last descriptor (the verdict comes with RELEASE, after close returned) and the
#    verdict was still running when the unlink came: it used to return 0 and leave the
#    upload published.
. "$(dirname "$0")/lib.sh"
hg_setup
hg_mount || bail "mount failed"

# reuse_case WHAT DIR: exit 0 same view, 1 views differ, 2 no number was reused
reuse_case() {
	python3 - "$HG_MNT/$2" "$HG_BACK/$2" "$1" <<'PY'
import os, sys
M, B, what = sys.argv[1], sys.argv[2], sys.argv[3]
os.makedirs(M)
for i in range(40):
    f, v = "%s/f%d" % (M, i), "%s/v%d" % (M, i)
    with open(f, "wb") as h:
        h.write(b"old" * 100)
    os.chmod(f, 0o644)
    with open(v, "wb") as h:
        h.write(b"v")
    os.stat(v)                          # the kernel holds an inode for v
    vino = os.stat("%s/v%d" % (B, i)).st_ino
    os.unlink("%s/v%d" % (B, i))        # gone behind the daemon's back: its number is free
    fd = os.open(f, os.O_WRONLY | os.O_TRUNC)   # staged rewrite in a tmpfile
    os.write(fd, b"new" * 100)
    os.listdir(M)                       # the writer's listing publishes it; fd stays open
    if os.stat("%s/f%d" % (B, i)).st_ino != vino:
        os.close(fd)
        continue
    os.stat(f)                          # the name's attributes, cached by the kernel
    if what == "chmod":
        os.fchmod(fd, 0o755)
    else:
        os.ftruncate(fd, 100)
    a, p = os.fstat(fd), os.stat(f)
    os.close(fd)
    print("backing number reused after %d tries; descriptor: ino %d mode %o size %d, "
          "name: ino %d mode %o size %d" % (i + 1, a.st_ino, a.st_mode & 0o7777, a.st_size,
                                              p.st_ino, p.st_mode & 0o7777, p.st_size))
    sys.exit(0 if (a.st_ino, a.st_mode, a.st_size) == (p.st_ino, p.st_mode, p.st_size) else 1)
sys.exit(2)
PY
}

for what in chmod ftruncate; do
	out=$(reuse_case $what "$what" 2>&1)
	rc=$?
	if [ $rc = 2 ]; then
		skip "$what: the backing filesystem reused no inode number in 40 tries"
	else
		hg_result "$([ $rc = 0 ] && echo 1 || echo 0)" \
			"$what through the writer's descriptor after a publish onto a reused inode number: stat of the name sees it (same inode)"
		diag "$out"
	fi
done
# The verdict must be slow enough to be in progress when the unlink comes: 32 MiB written
# out of order (no streamed hash), so it re-reads the file.
unlink_case() {
	python3 - "$HG_MNT" <<'PY'
import os, sys, threading
M, bad = sys.argv[1], 0
for i in range(10):
    f = "%s/u%d" % (M, i)
    fd = os.open(f, os.O_CREAT | os.O_WRONLY, 0o644)
    os.pwrite(fd, b"z", 32 << 20)
    os.pwrite(fd, os.urandom(4096), 0)
    rd = os.open(f, os.O_RDONLY)        # the uploader's second descriptor
    # not the last close, and by another thread than the one that wrote (the writer's own
    # close of what it wrote ends the upload at FLUSH): the verdict comes with RELEASE
    th = threading.Thread(target=os.close, args=(fd,))
    th.start()
    th.join()
    os.unlink(f)
    try:
        os.stat(f)
        bad += 1
    except FileNotFoundError:
        pass
    os.close(rd)
print("%d of 10 unlinked names still there" % bad)
sys.exit(1 if bad else 0)
PY
}
ok "unlink right after a close whose verdict comes with RELEASE removes the name" unlink_case
ok "daemon still alive" kill -0 "$HG_PID"
hg_umount
done_testing
