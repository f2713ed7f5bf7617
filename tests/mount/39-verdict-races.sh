#!/bin/bash
# 39-verdict-races.sh - namespace operations by the uploader that arrive while a RELEASE-time
# verdict of the same name is running (close() returned, the verdict had not: the process
# still held a second descriptor).  Whatever the verdict does meanwhile, each operation must
# give what plain ext4 gives to a process that saw the file it had just written (issue 14):
#  1. unlink removes it and returns 0 (it used to return ENOENT and leave the name);
#  2. open(O_CREAT|O_EXCL) of it fails with EEXIST and the file keeps its content (the
#     lookup said ENOENT, the create made a second upload that replaced the first);
#  3. rename moves it, also while another user stages an upload of the same name (the
#     writer's own upload was not judged first: rename said ENOENT, or 0 with the file left
#     under the old name);
#  4. rename of another file onto it, another user staging the name too, replaces it (the
#     writer's upload was not judged first: its verdict published it over the renamed file);
#  5. (no verdict race) the writer finds its staged file while an unrelated process of the
#     same uid stages the same name (its lookup saw only the newest upload, not its own).
#  6. (a sticky dir) a tenant's unlink of its own staged name while another tenant's upload
#     of the name is published leaves the other's file (the daemon removed it by name);
#  7. (a sticky dir) nor does a tenant's rename: of its own staged name away (plain, to
#     another directory, RENAME_NOREPLACE) or of its own file onto the name (seen staged or
#     free, plain or RENAME_EXCHANGE) while another tenant's upload of the name is published:
#     the daemon moved or replaced the other's file by name (EPERM now, and nothing moved).
#  8. (a sticky dir) a tenant's upload published over its own file, which the tenant removes
#     while another tenant's upload takes the freed name, does not replace the other's file
#     (publish checked the name, then renamed over it later, the check no longer true).
# The daemon runs under tests/preload/slowsys.so: a backing call named in HG_SLOW_CALLS on a
# name starting with "slow-" that fails with ENOENT (the upload is not published yet) sleeps
# HG_SLOW_MS (1 s) before returning, so the verdict surely completes inside the window between
# that ENOENT and the daemon's look at its pending uploads, as it can on a loaded machine.
. "$(dirname "$0")/lib.sh"
hg_setup
SHIM=$HG_BUILD/tests/preload/slowsys.so
[ -r "$SHIM" ] || bail "$SHIM is not built"
TU=4242

# The sticky-directory cases run two tenants as grandchildren of the test, each its own uid and
# unrelated to the other (no shared parent process): tenants.py, imported by their scripts.
mkdir -p "$HG_TMP/py" && cat >"$HG_TMP/py/tenants.py" <<'PY'
import os

def tenant_rw(uid, body):
    """body(r, w) as uid in a process unrelated to the others (a grandchild of ours): returns
    the parent's ends (r reads what body writes to w, what the parent writes to the returned
    w body reads from r)."""
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    if os.fork() == 0:
        os.close(r1)
        os.close(w2)
        if os.fork() == 0:
            os.setgid(uid)
            os.setuid(uid)
            body(r2, w1)
            os._exit(0)
        os._exit(os.wait()[1] >> 8)
    os.close(w1)
    os.close(r2)
    return r1, w2

def tenant(uid, body):
    """body(w) as uid, as tenant_rw: returns the end that reads what body writes."""
    r, w = tenant_rw(uid, lambda _r, w: body(w))
    os.close(w)
    return r
PY

# slow_mount CALLS [BEFORE [PREFIX]]: mount with the shim delaying CALLS after an ENOENT, BEFORE
# always, on names starting with PREFIX (slow-) (a sanitizer build wants its runtime first in the
# daemon's library list: told not to mind).
slow_mount() {
	HG_SLOW_PREFIX=${3:-slow-} HG_SLOW_MS=1000 HG_SLOW_CALLS=$1 HG_SLOW_BEFORE=${2:-} LD_PRELOAD=$SHIM \
		ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
		hg_mount allow_other || bail "mount failed"
	[ -d "$HG_MNT/d" ] || mkdir -m 0777 "$HG_MNT/d" || bail "mkdir failed"
}

# race OP: for a few rounds, an upload whose verdict comes with RELEASE (32 MiB written out of
# order: no streamed hash, the verdict re-reads it, slow enough to still run when the next
# request comes), then OP on it by the uploader.  Prints what differed from ext4 and how many
# rounds hit the window (OP took HG_SLOW_MS: its backing call saw ENOENT); exit 0 when nothing
# differed and at least one round hit it (rename: every round did before the fix; now it waits
# for the verdict before its backing call, which then finds the name).
race() {
	python3 - "$HG_MNT/d" "$HG_BACK/d" "$1" "$TU" <<'PY'
import errno, os, sys, threading, time
M, B, op, tu = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
SIZE = (32 << 20) + 1
bad, hits = [], 0

def other_upload(f, inherited):
    """An unrelated process (the writer's grandchild) of another uid stages f and holds it
    open until told; returns the pipe that tells it.  It must not keep the writer's
    descriptors (inherited): their RELEASE would wait for its exit."""
    r1, w1 = os.pipe()
    r2, w2 = os.pipe()
    if os.fork() == 0:
        for d in inherited:
            os.close(d)
        if os.fork() == 0:
            os.close(r1)
            os.close(w2)
            os.setgid(tu)
            os.setuid(tu)
            fd = os.open(f, os.O_CREAT | os.O_WRONLY, 0o644)
            os.write(fd, b"g")
            os.write(w1, b"x")
            os.read(r2, 1)
            os.close(fd)
            os._exit(0)
        os.wait()
        os._exit(0)
    os.close(w1)
    os.close(r2)
    if os.read(r1, 1) != b"x":
        sys.exit("the other uid's upload failed")
    return w2

def unrelated_stat(f, inherited):
    if os.fork() == 0:
        for d in inherited:
            os.close(d)
        if os.fork() == 0:
            try:
                os.stat(f)
                os._exit(1)
            except FileNotFoundError:
                os._exit(0)
        os._exit(os.wait()[1] >> 8)
    if os.wait()[1]:
        sys.exit("another process saw the upload before its verdict")

for i in range(2):
    base = "slow-%s%d" % (op, i)
    f = "%s/%s" % (M, base)
    fd = os.open(f, os.O_CREAT | os.O_WRONLY, 0o644)
    os.pwrite(fd, b"z", SIZE - 1)
    os.pwrite(fd, os.urandom(4096), 0)
    rd = os.open(f, os.O_RDONLY)        # the uploader's second descriptor
    if op == "onto":
        with open("%s/src-%d" % (M, i), "wb") as h:   # published: its close judged it
            h.write(b"s" * 1000)
    go = other_upload(f, (fd, rd)) if op in ("rename", "onto") else None
    if op == "excl":
        # An unrelated process's look at the name (ENOENT: not published yet) leaves a
        # negative dentry: the writer's open then makes one LOOKUP, which the kernel does
        # not repeat as it does after a failed revalidation of a positive one.
        unrelated_stat(f, (fd, rd))
    # closed by another thread than the writer, the process still holding rd: not the last
    # close, so the verdict comes with the RELEASE that follows (after close returned)
    th = threading.Thread(target=os.close, args=(fd,))
    th.start()
    th.join()
    t = time.monotonic()
    err = 0
    try:
        if op == "unlink":
            os.unlink(f)
        elif op == "excl":
            os.close(os.open(f, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        elif op == "rename":
            os.rename(f, f + ".moved")
        elif op == "onto":
            os.rename("%s/src-%d" % (M, i), f)
    except OSError as e:
        err = e.errno
    if time.monotonic() - t >= 0.9:
        hits += 1
    os.close(rd)
    time.sleep(1 if op == "onto" else 0.05)    # onto: a verdict left running has ended
    names = sorted(n for n in os.listdir(M) if n.startswith(base))
    back = sorted(n for n in os.listdir(B) if n.startswith(base))
    sizes = [os.stat("%s/%s" % (B, n)).st_size for n in back]
    if go is not None:
        os.write(go, b"x")
        os.wait()
    if op == "unlink":
        want, werr = [], 0
    elif op == "excl":
        want, werr = [base], errno.EEXIST
    elif op == "onto":
        want, werr = [base], 0
    else:
        want, werr = [base + ".moved"], 0
    wsize = 1000 if op == "onto" else SIZE
    if err != werr or names != want or back != want or sizes != [wsize] * len(want):
        bad.append("round %d: %s gave %s; mount has %s, backing %s (sizes %s); ext4: %s, %s" %
                   (i, op, errno.errorcode.get(err, 0) if err else 0, names, back, sizes,
                    errno.errorcode.get(werr, 0) if werr else 0, want))
print("%d of 2 rounds hit the window" % hits)
for b in bad:
    print(b)
# rename judges the writer's uploads of the name first: its backing call no longer sees ENOENT
sys.exit(1 if bad or (not hits and op not in ("rename", "onto")) else 0)
PY
}

slow_mount unlinkat
ok "unlink while the RELEASE verdict publishes the name: 0, and the name is gone" race unlink
hg_umount
slow_mount fstatat
ok "O_CREAT|O_EXCL while the RELEASE verdict publishes the name: EEXIST, content kept" race excl
hg_umount
slow_mount renameat2
ok "rename while the RELEASE verdict publishes the name, another uid staging it too: moved" \
	race rename
ok "rename onto the name while its RELEASE verdict runs, another uid staging it too: replaced" \
	race onto

# 4: two unrelated processes of one uid stage the same new name; the first still finds its own.
same_uid_lookup() {
	python3 - "$HG_MNT/d" "$TU" <<'PY'
import os, sys
M, tu = sys.argv[1], int(sys.argv[2])
f = M + "/same-uid"
os.setgid(tu)
os.setuid(tu)
fd = os.open(f, os.O_CREAT | os.O_WRONLY, 0o644)
os.write(fd, b"mine")
r1, w1 = os.pipe()
r2, w2 = os.pipe()
if os.fork() == 0:
    if os.fork() == 0:                  # the grandchild: not related to the writer
        os.close(r1)
        os.close(w2)
        g = os.open(f, os.O_CREAT | os.O_WRONLY, 0o644)
        os.write(g, b"theirs!")
        os.write(w1, b"x")
        os.read(r2, 1)
        os.close(g)
        os._exit(0)
    os.wait()
    os._exit(0)
os.close(w1)
os.close(r2)
if os.read(r1, 1) != b"x":
    sys.exit("the second upload failed")
try:
    st = os.stat(f)
    res = "size %d" % st.st_size
except OSError as e:
    res = os.strerror(e.errno)
os.write(w2, b"x")
os.wait()
os.close(fd)
print("the writer's stat of its own staged file: " + res)
sys.exit(0 if res == "size 4" else 1)
PY
}
ok "the writer finds its staged file while an unrelated process of its uid stages the name" \
	same_uid_lookup
hg_umount

# 6: in a sticky directory, tenant A unlinks its own staged name while tenant B's upload of
# the same name is being published (B's close).  The kernel checked A's right to remove A's
# file; the daemon must not remove B's file, which took the name in between (the shim sleeps
# before the backing unlinkat), and A's own upload is what goes.
slow_mount none unlinkat
sticky_unlink() {
	PYTHONPATH=$HG_TMP/py python3 - "$HG_MNT/d" "$HG_BACK/d" <<'PY'
import os, sys, time
M, B = sys.argv[1], sys.argv[2]
S = M + "/sticky"
os.mkdir(S)
os.chmod(S, 0o1777)
f = S + "/slow-x"
SIZE = (32 << 20) + 1

from tenants import tenant

def tenant_b(w):
    fd = os.open(f, os.O_CREAT | os.O_WRONLY, 0o644)
    os.pwrite(fd, b"b", SIZE - 1)
    os.pwrite(fd, os.urandom(4096), 0)
    os.write(w, b"c")                   # closing now: the verdict publishes within ~0.3 s
    os.close(fd)
    os.write(w, b"d")

def tenant_a(w):
    fd = os.open(f, os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(fd, b"a")
    os.write(w, b"s")                   # staged
    os.read(go_r, 1)
    try:
        os.unlink(f)
        res = "0"
    except OSError as e:
        res = os.strerror(e.errno)
    os.close(fd)
    os.write(w, res.encode())

go_r, go_w = os.pipe()
a = tenant(4242, tenant_a)
if os.read(a, 1) != b"s":
    sys.exit("tenant A could not stage its upload")
b = tenant(4243, tenant_b)
if os.read(b, 1) != b"c":
    sys.exit("tenant B could not write its upload")
os.write(go_w, b"x")                    # A unlinks while B's close publishes
res = os.read(a, 100).decode()
os.read(b, 1)
os.wait()
os.wait()
time.sleep(0.2)
names = os.listdir(B + "/sticky")
st = os.stat(B + "/sticky/slow-x") if names == ["slow-x"] else None
print("A's unlink of its own staged name: %s; backing: %s, owner %s, size %s" %
      (res, names, st and st.st_uid, st and st.st_size))
sys.exit(0 if res == "0" and st and st.st_uid == 4243 and st.st_size == SIZE else 1)
PY
}
ok "sticky dir: a tenant's unlink of its staged name while another's upload of it publishes removes only its own" \
	sticky_unlink
hg_umount

# 7: in a sticky directory, tenant A renames while tenant B's upload of the name "slow-x" is
# published.  The kernel checked A's right against what A saw under the name: A's own staged
# upload (64 MiB written out of order: the rename's verdict of it re-reads it, and B's small
# upload, closed meanwhile, takes the name first, so A's is not published), or nothing
# (onto-free: the shim sleeps before the backing renameat2 and B's close lands in between).
# Once B's upload is published it stays under its name, B's: A's rename fails with EPERM and
# A's other file stays.  (onto-free may also end with A's rename first: B's publish refused.)
sticky_rename() {
	PYTHONPATH=$HG_TMP/py python3 - "$HG_MNT/d" "$HG_BACK/d" "$1" <<'PY'
import ctypes, errno, os, sys, time
M, B, op = sys.argv[1], sys.argv[2], sys.argv[3]
S = "%s/sticky-%s" % (M, op)
os.mkdir(S)
os.chmod(S, 0o1777)
f = S + "/slow-x"
src = S + "/src-a"                      # A's own published file (onto, exchange)
moved = {"away": M + "/moved-away", "noreplace": S + "/moved"}.get(op)
ASIZE, BSIZE = (64 << 20) + 1, 4096
libc = ctypes.CDLL(None, use_errno=True)

def renameat2(old, new, flags):
    if libc.renameat2(-100, old.encode(), -100, new.encode(), flags) < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))

from tenants import tenant

def tenant_b(w):
    fd = os.open(f, os.O_CREAT | os.O_WRONLY, 0o644)
    os.write(fd, b"b" * BSIZE)
    os.write(w, b"c")
    os.read(bgo_r, 1)
    try:
        os.close(fd)
        os.write(w, b"0")
    except OSError as e:
        os.write(w, os.strerror(e.errno).encode())

def tenant_a(w):
    if op != "away" and op != "noreplace":
        with open(src, "wb") as h:
            h.write(b"A's own")
    fd = -1
    if op != "onto-free":
        fd = os.open(f, os.O_CREAT | os.O_WRONLY, 0o644)
        os.pwrite(fd, b"a", ASIZE - 1)
        os.pwrite(fd, os.urandom(4096), 0)
    os.write(w, b"s")                   # staged
    os.read(ago_r, 1)
    t = time.monotonic()
    try:
        if op == "away":
            os.rename(f, moved)
        elif op == "noreplace":
            renameat2(f, moved, 1)      # RENAME_NOREPLACE
        elif op == "exchange":
            renameat2(src, f, 2)        # RENAME_EXCHANGE
        else:
            os.rename(src, f)
        res = "0"
    except OSError as e:
        res = os.strerror(e.errno)
    t = time.monotonic() - t
    if fd >= 0:
        try:
            os.close(fd)
        except OSError:
            pass
    os.write(w, ("%s;%.2f" % (res, t)).encode())

ago_r, ago_w = os.pipe()
bgo_r, bgo_w = os.pipe()
a = tenant(4242, tenant_a)
if os.read(a, 1) != b"s":
    sys.exit("tenant A could not stage its upload")
b = tenant(4243, tenant_b)
if os.read(b, 1) != b"c":
    sys.exit("tenant B could not write its upload")
os.write(ago_w, b"x")                   # A renames ...
time.sleep(0.1)
os.write(bgo_w, b"x")                   # ... and B's close publishes meanwhile
bres = os.read(b, 100).decode()
tb = time.monotonic()
res, t = os.read(a, 100).decode().split(";")
tb = time.monotonic() - tb
os.wait()
os.wait()

def back(p):
    try:
        st = os.stat(p.replace(M, B, 1))
        return "uid %d size %d" % (st.st_uid, st.st_size)
    except OSError:
        return "none"

got = {"name": back(f), "src": back(src), "moved": back(moved) if moved else "none"}
print("A's rename (%s): %s after %s s, %.2f s after B's close returned %s; backing: %s" %
      (op, res, t, tb, bres, got))
# A's rename still ran when B's close began (onto-free: it slept before its renameat2); the
# others: B's upload published while A's was being judged, as the window needs.
if float(t) < (0.9 if op == "onto-free" else 0.1) or (bres != "0" and op != "onto-free"):
    sys.exit("missed the window: A's rename ended before B's close, or A's upload took the name")
if bres == "0":
    # B's upload is published: it stays under its name, B's, whatever A asked
    want = {"name": "uid 4243 size %d" % BSIZE, "moved": "none",
            "src": "none" if op in ("away", "noreplace") else "uid 4242 size 7"}
    wres = os.strerror(errno.EPERM)
else:
    # onto-free: A's rename took the name first (it holds the name against publishes), so
    # B's publish found A's file there and was refused
    want = {"name": "uid 4242 size 7", "moved": "none", "src": "none"}
    wres = "0" if bres == os.strerror(errno.EPERM) else "B's close: EPERM"
sys.exit(0 if res == wres and got == want else 1)
PY
}
hg_mount allow_other || bail "mount failed"
for op in away noreplace onto exchange; do
	ok "sticky dir: a tenant's rename ($op) while another's upload of the name publishes leaves the other's file" \
		sticky_rename $op
done
hg_umount
slow_mount none renameat2
ok "sticky dir: a tenant's rename onto a free name that another's upload takes meanwhile leaves the other's file" \
	sticky_rename onto-free
hg_umount

# 8: A's upload publishes over the name, which holds A's own file (A's unrelated process
# published it first): allowed.  The shim sleeps before the publish links A's upload in
# beside the name (.hashgate-tmp.*); A unlinks its file meanwhile and B's upload of the name,
# staged while it was free, is published.  A's upload must not be renamed over B's file.
slow_mount none linkat .hashgate-tmp.
sticky_publish() {
	PYTHONPATH=$HG_TMP/py python3 - "$HG_MNT/d" "$HG_BACK/d" <<'PY'
import os, sys, time
M, B = sys.argv[1], sys.argv[2]
S = M + "/sticky-publish"
os.mkdir(S)
os.chmod(S, 0o1777)
f = S + "/x"

from tenants import tenant_rw as tenant

def uploader(data):
    def body(r, w):
        fd = os.open(f, os.O_CREAT | os.O_WRONLY, 0o644)
        os.write(fd, data)
        os.write(w, b"s")               # staged
        os.read(r, 1)
        try:
            os.close(fd)
            os.write(w, b"0")
        except OSError as e:
            os.write(w, os.strerror(e.errno).encode())
    return body

def remover(r, w):
    os.read(r, 1)
    try:
        os.unlink(f)
        os.write(w, b"0")
    except OSError as e:
        os.write(w, os.strerror(e.errno).encode())

a1 = tenant(4242, uploader(b"a1"))
b = tenant(4243, uploader(b"b"))
a2 = tenant(4242, uploader(b"a2"))
a3 = tenant(4242, remover)
for p in (a1, b, a2):
    if os.read(p[0], 1) != b"s":
        sys.exit("an upload could not be staged")
os.write(a2[1], b"x")                   # A's other upload takes the free name
ra2 = os.read(a2[0], 100).decode()
os.write(a1[1], b"x")                   # A's upload: over A's own file (sleeps in the shim)
time.sleep(0.3)
os.write(a3[1], b"x")                   # A removes its file ...
ra3 = os.read(a3[0], 100).decode()
os.write(b[1], b"x")                    # ... and B's upload takes the name
rb = os.read(b[0], 100).decode()
ra1 = os.read(a1[0], 100).decode()
for i in range(4):
    os.wait()
try:
    st = os.stat(B + "/sticky-publish/x")
    got = "uid %d size %d" % (st.st_uid, st.st_size)
except OSError as e:
    got = os.strerror(e.errno)
print("A's first close %s, unlink %s; B's close %s; A's second close %s; backing: %s" %
      (ra2, ra3, rb, ra1, got))
if ra2 != "0" or ra3 != "0" or rb != "0":
    sys.exit("the setup failed")
sys.exit(0 if got == "uid 4243 size 1" and ra1 == os.strerror(1) else 1)
PY
}
ok "sticky dir: an upload published over the tenant's own file, removed meanwhile, does not replace another's upload that took the name" \
	sticky_publish
ok "daemon still alive" kill -0 "$HG_PID"
hg_umount
done_testing
