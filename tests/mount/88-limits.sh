#!/bin/bash
# 88-limits.sh - one tenant cannot starve the others of the daemon's descriptors or uploads
# (fs/limits.c).  With uid_max_uploads=20 a uid holding 20 open uploads gets EMFILE on every
# further create and rewrite (never an in-place rewrite instead; logged once per interval, not
# per refusal) while another uid uploads,
# reads, lists and holds uploads of its own.  Under an open files limit of 600 (prlimit; the
# daemon raises its soft limit to the hard one, fd_reserve=100) a uid holding uploads and a
# uid holding read opens are cut off at their share with EMFILE, while the victim still
# uploads, reads, lists, holds files, and a database import is loaded and enforced.  The held
# uploads are then closed and published.  With uid_max_upload_bytes=1M a 4 GiB sparse upload
# and a 2 MiB upload fail with EDQUOT and are not published.
. "$(dirname "$0")/lib.sh"
hg_setup
M=$HG_MNT B=$HG_BACK W=$HG_TMP/w
A=2101 V=2102 C=2103

# hold.py MODE PATH N RELEASE: open N files (create: PATH/hI new uploads with one byte
# written; read: the file PATH, N times), print "opened K ERRNAME|none" when done, hold them
# until the file RELEASE exists, close them all; exit 0 when every close succeeded.
cat >"$W/hold.py" <<'PY'
import errno, os, sys, time
mode, p, n, rel = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
fds, err = [], "none"
for i in range(n):
    try:
        if mode == "create":
            fd = os.open(f"{p}/h{i}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            os.write(fd, b"x")
        else:
            fd = os.open(p, os.O_RDONLY)
    except OSError as e:
        err = errno.errorcode.get(e.errno, str(e.errno))
        break
    fds.append(fd)
print("opened", len(fds), err, flush=True)
while not os.path.exists(rel):
    time.sleep(0.05)
bad = 0
for fd in fds:
    try:
        os.close(fd)
    except OSError as e:
        bad += 1
        print("close:", e, flush=True)
sys.exit(1 if bad else 0)
PY
chmod 0755 "$W"; chmod 0644 "$W/hold.py"
mkdir -p "$W/rel"; chmod 0755 "$W/rel"

# hold NAME UID MODE PATH N: hold.py in the background (pid in HOLD_NAME, output in
# $W/NAME.out), released by touching $W/rel/NAME; returns once it has opened what it could.
hold() {
	local name=$1 u=$2 i
	hg_as "$u" "$u" /usr/bin/python3 "$W/hold.py" "$3" "$4" "$5" "$W/rel/$name" >"$W/$name.out" 2>&1 &
	eval "HOLD_$name=$!"
	HG_BG_PIDS="$HG_BG_PIDS $!"
	for i in $(seq 600); do
		grep -q '^opened' "$W/$name.out" && return 0
		kill -0 $! 2>/dev/null || break
		sleep 0.1
	done
	diag "hold $*: $(cat "$W/$name.out")"
	return 1
}
release() {	# release NAME: let it close everything; succeeds when every close did
	local pid
	eval "pid=\$HOLD_$1"
	touch "$W/rel/$1"
	wait "$pid"
}
opened() { sed -n 's/^opened \([0-9]*\) .*/\1/p' "$W/$1.out"; }
errname() { sed -n 's/^opened [0-9]* \(.*\)/\1/p' "$W/$1.out"; }
asV() { hg_as $V $V "$@"; }

victim_works() {	# victim_works TAG: V uploads, reads back, lists, stats, renames
	local t=$1
	ok "$t victim uploads a file" asV bash -c "echo hello >'$M/v/up$2'"
	is "$(asV cat "$M/v/up$2" 2>&1)" hello "$t victim reads it back"
	ok "$t victim lists its directory" asV ls -l "$M/v"
	ok "$t victim stats and renames" asV bash -c "stat '$M/v/up$2' >/dev/null && mv '$M/v/up$2' '$M/v/mv$2'"
}

mkdir -p "$B/a" "$B/v" "$B/c" "$B/v2"
chown $A:$A "$B/a"; chown $V:$V "$B/v" "$B/v2"; chown $C:$C "$B/c"
echo readable >"$B/pub"; chmod 0644 "$B/pub"
echo old >"$B/a/existing"; chown $A:$A "$B/a/existing"

# --- per-uid upload limit ------------------------------------------------------------------
t="[uploads]"
hg_mount "allow_other,uid_max_uploads=20,uid_max_upload_bytes=1M" || bail "mount failed"
hold a1 $A create "$M/a" 25 || bail "attacker did not start"
is "$(opened a1) $(errname a1)" "20 EMFILE" "$t a uid holds 20 open uploads; its 21st create fails with EMFILE"
nok "$t its next create fails too" hg_as $A $A touch "$M/a/again"
nok "$t and the next" hg_as $A $A bash -c "echo x >'$M/a/again2'"
ok "$t it still reads files" hg_as $A $A cat "$M/pub"
# A rewrite is an upload too: refused, never done in place instead (unscanned when large).
nok "$t an O_TRUNC rewrite of its existing file is refused" hg_as $A $A bash -c "echo new >'$M/a/existing'"
nok "$t so is open + ftruncate(0) (dd)" hg_as $A $A dd if=/dev/zero of="$M/a/existing" bs=1k count=1 status=none
is "$(cat "$B/a/existing")" old "$t the file keeps its content"
victim_works "$t" 1
hold v1 $V create "$M/v2" 20 || bail "victim holder did not start"
is "$(opened v1) $(errname v1)" "20 none" "$t the victim holds 20 uploads of its own meanwhile"
ok "$t the victim's held uploads close and are published" release v1
is "$(ls "$B/v2" | wc -l)" 20 "$t all 20 are in the backing dir"
ok "$t the attacker's held uploads close and are published" release a1
is "$(ls "$B/a" | grep -c '^h')" 20 "$t all 20 are in the backing dir"
ok "$t the attacker uploads again once it holds fewer" hg_as $A $A bash -c "echo x >'$M/a/later'"
is "$(grep -c 'limit uid=2101 what=uploads' "$HG_LOG")" 1 "$t five refusals within 10 s are logged once"
t="[bytes]"
hg_run hg_as $A $A truncate -s 4G "$M/a/sparse"
is "$?:$(grep -q 'Disk quota exceeded' <<<"$HG_OUT" && echo EDQUOT)" 1:EDQUOT "$t a 4 GiB sparse upload over uid_max_upload_bytes=1M fails with EDQUOT"
is "$(stat -c %s "$B/a/sparse" 2>/dev/null || echo absent)" 0 "$t the file stays as it was (empty)"
hg_run hg_as $A $A bash -c "head -c 2M /dev/zero >'$M/a/big'"
is "$?:$(grep -q 'Disk quota exceeded' <<<"$HG_OUT" && echo EDQUOT)" 1:EDQUOT "$t a 2 MiB upload fails with EDQUOT"
ok "$t and is not published" test ! -e "$B/a/big"
ok "$t a 900 KiB upload of another uid works" asV bash -c "head -c 900K /dev/urandom >'$M/v/900k'"
ok "$t and so does one of the same uid" hg_as $A $A bash -c "head -c 900K /dev/urandom >'$M/a/900k'"
hg_umount

# --- fd budget -------------------------------------------------------------------------------
t="[fd budget]"
rm -rf "${B:?}"/a/h* "${B:?}"/v2/*
# prlimit execs the daemon, so HG_PID stays the daemon's pid.
printf '#!/bin/sh\nexec prlimit --nofile=300:600 %s "$@"\n' "$HG_FS" >"$W/hashgatefs"
chmod 0755 "$W/hashgatefs"
HG_FS_SAVE=$HG_FS HG_FS=$W/hashgatefs
hg_mount "allow_other,uid_max_uploads=0,fd_reserve=100" || bail "mount under prlimit failed"
HG_FS=$HG_FS_SAVE
is "$(awk '/Max open files/ {print $4, $5}' /proc/$HG_PID/limits)" "600 600" \
	"$t the daemon raised its soft open files limit (300) to the hard limit (600)"
hold a2 $A create "$M/a" 1000 || bail "attacker did not start"
n=$(opened a2)
ok "$t a uid holding uploads is cut off at its share ($n uploads) with EMFILE" \
	test "$n" -ge 40 -a "$n" -le 200 -a "$(errname a2)" = EMFILE
hold c2 $C read "$M/pub" 1000 || bail "second attacker did not start"
n=$(opened c2)
ok "$t a uid holding read opens is cut off at its share ($n) with EMFILE" \
	test "$n" -ge 80 -a "$n" -le 200 -a "$(errname c2)" = EMFILE
victim_works "$t" 2
hold v2 $V read "$M/pub" 50 || bail "victim holder did not start"
is "$(opened v2) $(errname v2)" "50 none" "$t the victim holds 50 open files meanwhile"
hold v3 $V create "$M/v2" 20 || bail "victim uploader did not start"
is "$(opened v3) $(errname v3)" "20 none" "$t and 20 open uploads"
# A database update is loaded (the reload opens the database) and enforced.
hg_random "$W/newbad" 5000
sha256sum <"$W/newbad" | cut -d' ' -f1 >"$W/newbad.lst"
ok "$t a new list is imported" hg_cli db import --list t-new --category illegal --type sha256 "$W/newbad.lst"
loaded=0
for i in $(seq 50); do
	grep -q 'generation .* loaded' "$HG_LOG" && { loaded=1; break; }
	sleep 0.1
done
is "$loaded" 1 "$t the daemon loads the new database generation"
ok "$t and refuses an upload of the newly listed content" hg_refused asV cp "$W/newbad" "$M/v/newbad"
ok "$t the daemon holds fewer descriptors than its limit" \
	test "$(ls /proc/$HG_PID/fd | wc -l)" -lt 600
ok "$t the attacker's held uploads close" release a2
ok "$t the read opens close" release c2
ok "$t the victim's files close" release v2
ok "$t the victim's uploads close" release v3
is "$(ls "$B/v2" | wc -l)" 20 "$t the victim's 20 uploads are published"
ok "$t the attacker uploads again" hg_as $A $A bash -c "echo x >'$M/a/later'"
hg_umount
done_testing
