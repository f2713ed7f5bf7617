#!/bin/bash
# 36-append-create.sh - two processes appending to a log that neither has created yet (every
# line its own open(O_CREAT|O_APPEND), write, close, as `echo >>` and most loggers do) lose no
# line whose close succeeded, and no append fails, as on a plain file system.  The race is at
# the creation: each appender's create stages its own invisible upload, and the later publish
# replaces the earlier one (found while testing issue 14; 35-shared-apps.sh covers a log that
# exists before the appenders start).  One python process of uid 4242 runs 16 rounds; in each,
# two writers (siblings in even rounds, unrelated - double-forked - in odd ones) append 6
# lines each to a new log.
. "$(dirname "$0")/lib.sh"
hg_setup
M=$HG_MNT W=$HG_TMP/w
WU=4242
asW() { hg_as $WU $WU "$@"; }
HG_PY=/usr/bin/python3
[ -x "$HG_PY" ] || HG_PY=$(command -v python3)

hg_mount allow_other || bail "mount failed"
mkdir "$M/d" && chown $WU:$WU "$M/d"
cat >"$W/app.py" <<'EOF'
import os, sys
d, rounds, lines = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def writer(path, who, wfd):
    res = []
    for i in range(lines):
        line = "%s-%d" % (who, i)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                os.write(fd, (line + "\n").encode())
            finally:
                os.close(fd)
            res.append("ok " + line)
        except OSError as e:
            res.append("err %s %s" % (line, e.strerror))
    os.write(wfd, ("\n".join(res) + "\n").encode())
    os._exit(0)

lost = failed = 0
for r in range(rounds):
    path = os.path.join(d, "new%d.log" % r)
    pipes = []
    for who in ("p1", "p2"):
        rfd, wfd = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(rfd)
            if r % 2 and os.fork():         # unrelated: the writer is the grandchild
                os._exit(0)
            writer(path, who, wfd)
        os.close(wfd)
        pipes.append((pid, rfd))
    res = []
    for pid, rfd in pipes:
        os.waitpid(pid, 0)
        with os.fdopen(rfd) as f:
            res += f.read().split("\n")
    try:
        with open(path) as f:
            have = set(f.read().split("\n"))
    except OSError:
        have = set()
    for x in res:
        if x.startswith("ok ") and x[3:] not in have:
            lost += 1
            print("round %d: %s acknowledged but missing" % (r, x[3:]))
        elif x.startswith("err "):
            failed += 1
            print("round %d: append %s" % (r, x[4:]))
print("lost %d failed %d" % (lost, failed))
EOF
chmod 0644 "$W/app.py"
hg_run asW "$HG_PY" "$W/app.py" "$M/d" 16 6
diag "$(tail -n 6 <<<"$HG_OUT")"
is "$(tail -n 1 <<<"$HG_OUT" | cut -d' ' -f1-2)" "lost 0" \
	"two appenders creating a new log at once: no acknowledged line is lost (16 rounds)"
is "$(tail -n 1 <<<"$HG_OUT" | cut -d' ' -f3-4)" "failed 0" \
	"... and no append fails (as on a plain file system)"

hg_umount
done_testing
