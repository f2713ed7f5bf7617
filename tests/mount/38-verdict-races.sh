#!/bin/bash
# 38-verdict-races.sh - namespace operations by the uploader that arrive while a RELEASE-time
# verdict of the same name is running (close() returned, the verdict had not: the process
# still held a second descriptor).  Whatever the verdict does meanwhile, each operation must
# give what plain ext4 gives to a process that saw the file it just wrote: unlink removes it
# and returns 0, and so on (issue 14).
# The daemon runs under tests/preload/slowsys.so: a backing unlinkat/renameat2 of a name
# starting with "slow-" that fails with ENOENT (the upload is not published yet) sleeps
# HG_SLOW_MS before returning, so the verdict surely completes inside the window between
# that ENOENT and the daemon's look at its pending uploads, as it can on a loaded machine.
. "$(dirname "$0")/lib.sh"
hg_setup
SHIM=$HG_BUILD/tests/preload/slowsys.so
[ -r "$SHIM" ] || bail "$SHIM is not built"
# A sanitizer build wants its runtime first in the daemon's library list.
HG_SLOW_PREFIX=slow- HG_SLOW_MS=1500 LD_PRELOAD=$SHIM \
	ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}verify_asan_link_order=0 \
	hg_mount || bail "mount failed"

# race OP: for a few rounds, an upload whose verdict comes with RELEASE (32 MiB written out of
# order: no streamed hash, the verdict re-reads it, slow enough to still run when the next
# request comes), then OP on it by the uploader.  Prints what differed from ext4
# and how many rounds hit the window (OP took HG_SLOW_MS: its backing call saw ENOENT);
# exit 0 when nothing differed and at least one round hit it.
race() {
	python3 - "$HG_MNT" "$HG_BACK" "$1" <<'PY'
import errno, os, sys, threading, time
M, B, op = sys.argv[1:4]
bad, hits = [], 0
for i in range(3):
    f = "%s/slow-%s%d" % (M, op, i)
    fd = os.open(f, os.O_CREAT | os.O_WRONLY, 0o644)
    os.pwrite(fd, b"z", 32 << 20)
    os.pwrite(fd, os.urandom(4096), 0)
    rd = os.open(f, os.O_RDONLY)        # the uploader's second descriptor
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
        elif op == "rename":
            os.rename(f, f + ".moved")
    except OSError as e:
        err = e.errno
    if time.monotonic() - t >= 1.4:
        hits += 1
    os.close(rd)
    time.sleep(0.05)
    names = sorted(n for n in os.listdir(M) if n.startswith("slow-%s%d" % (op, i)))
    back = sorted(n for n in os.listdir(B) if n.startswith("slow-%s%d" % (op, i)))
    want = [] if op == "unlink" else [os.path.basename(f) + ".moved"]
    if err or names != want or back != want:
        bad.append("round %d: %s returned %s; mount has %s, backing %s, ext4 would have %s" %
                   (i, op, errno.errorcode.get(err, 0) if err else 0, names, back, want))
print("%d of 3 rounds hit the window" % hits)
for b in bad:
    print(b)
sys.exit(1 if bad or not hits else 0)
PY
}

ok "unlink while the RELEASE verdict publishes the name: 0, and the name is gone" race unlink
ok "daemon still alive" kill -0 "$HG_PID"
hg_umount
done_testing
