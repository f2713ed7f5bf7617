#!/bin/bash
# 85-inodes.sh - more live inodes than the process may have open files (hard limit 20000 here):
# 25k files are looked up (stat) and kept in the kernel's dcache, then all of them are opened and
# read, stat'ed again, renamed and removed through the mount.  A daemon that holds one fd per
# looked-up inode fails with EMFILE near 20k; this one must not, and its open fds stay few.
# HASHGATE_LONG=1 uses 60k files.
. "$(dirname "$0")/lib.sh"
hg_setup
M=$HG_MNT B=$HG_BACK W=$HG_TMP/w
N=25000
[ -n "${HASHGATE_LONG:-}" ] && N=60000
diag "open files limit: $(ulimit -Hn) (hard), $N files"

# Created directly in the backing dir (fast; on sshfs in the dir it serves); the test is about
# lookups, not uploads.
python3 - "$HG_BACK_SRC/many" "$N" <<'PY' || bail "could not create the files"
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
for sub in range(25):
    os.makedirs(f"{d}/s{sub}", exist_ok=True)
for i in range(n):
    with open(f"{d}/s{i % 25}/f{i}", "w") as f:
        f.write(f"content {i}\n")
PY
hg_mount || bail "mount failed"
PID=$HG_PID
fds() { ls /proc/"$PID"/fd 2>/dev/null | wc -l; }

# stat everything and keep it referenced: the dentries stay in the dcache, so every inode stays
# looked up (nlookup > 0) in the daemon at the same time.
cat >"$W/walk.py" <<'PY'
import os, sys
root, n, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3]
bad = 0
for i in range(n):
    p = f"{root}/s{i % 25}/f{i}"
    try:
        if mode == "stat":
            os.stat(p)
        else:
            with open(p) as f:
                if f.read() != f"content {i}\n":
                    bad += 1
    except OSError as e:
        bad += 1
        if bad < 5:
            print(f"{p}: {e}", file=sys.stderr)
print(bad)
PY
is "$(python3 "$W/walk.py" "$M/many" "$N" stat)" 0 "stat of all $N files through the mount succeeds"
live1=$(fds)
ok "the daemon holds few open fds with $N inodes looked up ($live1)" test "$live1" -lt 1000
is "$(python3 "$W/walk.py" "$M/many" "$N" read)" 0 "open+read of all $N files returns the right content"
is "$(python3 "$W/walk.py" "$M/many" "$N" stat)" 0 "a second stat pass succeeds"
is "$(find "$M/many" -type f | wc -l)" "$N" "find sees all $N files"
ok "the daemon still holds few open fds ($(fds))" test "$(fds)" -lt 1000
grep -q EMFILE "$HG_LOG" && diag "daemon log mentions EMFILE"
nok "no 'Too many open files' in the daemon log" grep -qi 'too many open files\|EMFILE' "$HG_LOG"
hg_random "$W/c" 5000
ok "uploads still work with $N live inodes" cp "$W/c" "$M/many/s0/new"
ok "and are published" cmp "$W/c" "$B/many/s0/new"
ok "rename of all files in one subdir through the mount" \
	bash -c "cd '$M/many/s1' && for f in f*; do mv \"\$f\" \"r\$f\" || exit 1; done"
is "$(ls "$B/many/s1" | grep -c '^rf')" "$((N / 25))" "the renames reached the backing dir"
ok "removing everything through the mount" rm -rf "$M/many"
ok "the backing dir is empty of it" test ! -e "$B/many"
rss=$(awk '/VmRSS/ {print $2}' /proc/"$PID"/status)
diag "daemon RSS after the walk: ${rss} KiB, open fds $(fds)"
hg_umount
done_testing
