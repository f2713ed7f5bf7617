#!/bin/bash
# 38-handles-off.sh - hashgatefs without file handles (-o handles=off: what a backing without
# name_to_handle_at gets), where an inode is reopened by its parent and name.
#  1. `hashgate status` says the mount has no file handles and how it reopens inodes.
#  2. A file or directory that loses its name while open (unlinked, renamed over, removed)
#     stays usable through its descriptor: fstat, fchmod, ftruncate, pwrite, pread and close
#     answer as on the backing filesystem itself (each sequence runs in a plain directory
#     too and must print the same), as open_by_handle_at would have found the open file.
#     Before the fix they failed with ENOENT (fsx: "fstat ENOENT" within ~1000 steps).
#  3. The write model (33) and fsx (80, fewer operations) pass with handles=off.
. "$(dirname "$0")/lib.sh"
hg_setup
# timeout=0: every fstat is a GETATTR the daemon answers, not the kernel's cached attributes
hg_mount allow_other,timeout=0,handles=off || bail "mount failed"

for i in $(seq 40); do
	st=$(hg_cli status --json 2>/dev/null)
	grep -q '"file_handles"' <<<"$st" && break
	sleep 0.25
done
ok "1: status --json: file_handles false" grep -q '"file_handles":false' <<<"$st"
ok "1: status --json: handles_off true" grep -q '"handles_off":true' <<<"$st"
ok "1: status says the mount reopens inodes by name" \
	bash -c "'$HG_CLI' --config '$HG_CONF' status | grep -q 'file handles no (handles=off: inodes reopened by name)'"

# open_gone DIR: the sequences; one line per step: the step and its outcome
open_gone() {
	python3 - "$1" <<'PY'
import errno, os, sys
D = sys.argv[1]

def put(name, data):
    with open("%s/%s" % (D, name), "wb") as f:
        f.write(data)
    os.chmod("%s/%s" % (D, name), 0o644)

def step(what, fn):
    try:
        r = fn()
        print("%s: ok%s" % (what, "" if r is None else " " + str(r)))
    except OSError as e:
        print("%s: %s" % (what, errno.errorcode.get(e.errno, e.errno)))

def st(fd):
    s = os.fstat(fd)
    return "size %d mode %o nlink %d" % (s.st_size, s.st_mode & 0o7777, s.st_nlink)

# a published file, unlinked while open for writing
put("a", b"a" * 1000)
fd = os.open(D + "/a", os.O_RDWR)
os.unlink(D + "/a")
step("unlinked: fstat", lambda: st(fd))
step("unlinked: fchmod 0600", lambda: os.fchmod(fd, 0o600))
step("unlinked: fstat", lambda: st(fd))
step("unlinked: ftruncate 300", lambda: os.ftruncate(fd, 300))
step("unlinked: pwrite", lambda: os.pwrite(fd, b"x" * 200, 250))
step("unlinked: fstat", lambda: st(fd))
step("unlinked: pread", lambda: os.pread(fd, 1000, 0) == b"a" * 250 + b"x" * 200)
step("unlinked: close", lambda: os.close(fd))

# a published file, replaced under its name by a rename while open read-only
put("b", b"b" * 2000)
put("c", b"c" * 10)
fd = os.open(D + "/b", os.O_RDONLY)
os.rename(D + "/c", D + "/b")
step("renamed over: fstat", lambda: st(fd))
step("renamed over: fchmod 0640", lambda: os.fchmod(fd, 0o640))
step("renamed over: fstat", lambda: st(fd))
step("renamed over: pread", lambda: os.pread(fd, 5000, 0) == b"b" * 2000)
step("renamed over: the name's file", lambda: st(os.open(D + "/b", os.O_RDONLY)))
step("renamed over: close", lambda: os.close(fd))

# a file renamed away and its new name unlinked while open
put("e", b"e" * 77)
fd = os.open(D + "/e", os.O_RDONLY)
os.rename(D + "/e", D + "/e2")
os.unlink(D + "/e2")
step("renamed, then unlinked: fstat", lambda: st(fd))
step("renamed, then unlinked: close", lambda: os.close(fd))

# a new upload still open after its close published it, then unlinked
fd = os.open(D + "/n", os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, b"n" * 500)
rd = os.open(D + "/n", os.O_RDONLY)
os.close(fd)
os.unlink(D + "/n")
step("upload, unlinked: fstat", lambda: st(rd))
step("upload, unlinked: pread", lambda: os.pread(rd, 1000, 0) == b"n" * 500)
step("upload, unlinked: close", lambda: os.close(rd))

# a directory removed while open
os.mkdir(D + "/d", 0o755)
fd = os.open(D + "/d", os.O_RDONLY | os.O_DIRECTORY)
os.rmdir(D + "/d")
step("removed dir: fstat", lambda: "mode %o" % (os.fstat(fd).st_mode & 0o7777))
step("removed dir: fchmod 0700", lambda: os.fchmod(fd, 0o700))
step("removed dir: mode", lambda: "mode %o" % (os.fstat(fd).st_mode & 0o7777))
step("removed dir: close", lambda: os.close(fd))
PY
}
mkdir "$HG_TMP/ref" "$HG_MNT/g"
want=$(open_gone "$HG_TMP/ref" 2>&1)
got=$(open_gone "$HG_MNT/g" 2>&1)
is "$got" "$want" "2: descriptors of files and dirs that lost their name answer as on a plain dir"
[ "$got" = "$want" ] || diag "plain directory:" "$want"
ok "2: daemon still alive" kill -0 "$HG_PID"
hg_umount

# sub TEST ENV...: run tests/mount/TEST with handles=off (and ENV) as one result; its failed
# results become diagnostics
sub() {
	local t=$1 out rc
	shift
	out=$(env HG_MOUNT_EXTRA="${HG_MOUNT_EXTRA:+$HG_MOUNT_EXTRA,}handles=off" "$@" \
		bash "$HG_SRC/tests/mount/$t" 2>&1)
	rc=$?
	hg_result "$([ $rc = 0 ] && echo 1 || echo 0)" "3: $t with handles=off"
	[ $rc = 0 ] || diag "$(grep -E -A12 '^not ok|^Bail|seed' <<<"$out" | head -n 80)"
}
sub 33-write-model.sh
sub 80-fsx.sh HASHGATE_FSX_OPS="${HASHGATE_FSX_OPS:-4000}"
done_testing
