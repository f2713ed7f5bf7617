#!/bin/bash
# 96-bombs.sh - hostile content sizes:
#  - a JPEG whose header claims 65000x65000 pixels (a few KB on disk; over the default decode
#    work bound image_max_pixels) is refused quickly as a scan error (on_error=deny), and a
#    real 12000x9000 JPEG (108 MP, within the bound) is hashed and published; neither grows
#    the daemon's memory by more than 64 MiB;
#  - a sparse file (ftruncate + a write at the end; 1 GiB, 10 GiB with HASHGATE_LONG=1) is
#    scanned and published while small uploads from other clients keep completing within 2 s
#    each, with the daemon's RSS bounded.
. "$(dirname "$0")/lib.sh"
hg_setup
M=$HG_MNT B=$HG_BACK W=$HG_TMP/w
MKJPEG=$HG_TOOLS/mkjpeg
[ -x "$MKJPEG" ] || bail "$MKJPEG is not built"
GIB=1
[ -n "${HASHGATE_LONG:-}" ] && GIB=10
hg_mount || bail "mount failed"
PID=$HG_PID
rss() { awk '/VmRSS/ {print $2}' /proc/"$PID"/status; }
ms() { echo $(( $(date +%s%N) / 1000000 )); }

# A small valid JPEG with its SOF dimensions patched to 65000x65000.
"$MKJPEG" "$W/small.jpg" 64 48 3 >/dev/null 2>&1 || bail "mkjpeg failed"
python3 - "$W/small.jpg" "$W/huge-header.jpg" <<'PY' || bail "could not patch the JPEG"
import sys
d = bytearray(open(sys.argv[1], "rb").read())
i = 2
while i < len(d):
    assert d[i] == 0xFF
    m, ln = d[i + 1], (d[i + 2] << 8) | d[i + 3]
    if m in (0xC0, 0xC1, 0xC2):
        d[i + 5:i + 9] = bytes([0xFD, 0xE8, 0xFD, 0xE8])	# height, width = 65000
        break
    i += 2 + ln
else:
    sys.exit(1)
open(sys.argv[2], "wb").write(d)
PY
"$MKJPEG" "$W/big.jpg" 12000 9000 5 --quality 10 >/dev/null 2>&1 || bail "mkjpeg 12000x9000 failed"

r0=$(rss); t0=$(ms)
cp "$W/huge-header.jpg" "$M/huge-header.jpg" 2>"$W/cp.err"; rc=$?
t1=$(ms); r1=$(rss)
diag "huge-header.jpg: cp exit $rc in $((t1 - t0)) ms, daemon RSS ${r0} -> ${r1} KiB: $(cat "$W/cp.err")"
ok "huge-header.jpg: refused as a scan error (image gives no PDQ)" test "$rc" -ne 0
ok "huge-header.jpg: not published" test ! -e "$B/huge-header.jpg"
ok "huge-header.jpg: within 5 s ($((t1 - t0)) ms)" test $((t1 - t0)) -le 5000
ok "huge-header.jpg: daemon RSS grew by less than 64 MiB" test $((r1 - r0)) -lt 65536
r0=$(rss); t0=$(ms)
ok "big.jpg: upload completes" timeout 30 cp "$W/big.jpg" "$M/big.jpg"
t1=$(ms); r1=$(rss)
diag "big.jpg: $(stat -c %s "$W/big.jpg") bytes in $((t1 - t0)) ms, daemon RSS ${r0} -> ${r1} KiB"
ok "big.jpg: within 5 s ($((t1 - t0)) ms)" test $((t1 - t0)) -le 5000
ok "big.jpg: daemon RSS grew by less than 64 MiB" test $((r1 - r0)) -lt 65536
ok "big.jpg: published intact" cmp "$W/big.jpg" "$B/big.jpg"
ok "the daemon is alive after the image bombs" kill -0 "$PID"

# Sparse upload vs. small uploads in parallel.
r0=$(rss)
( python3 - "$M/sparse" "$GIB" <<'PY'
import os, sys
g = int(sys.argv[2])
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.ftruncate(fd, g * 1024**3)
os.pwrite(fd, b"the end\n", g * 1024**3 - 8)
os.close(fd)
PY
) >"$W/sparse.out" 2>&1 &
SP=$!
HG_BG_PIDS="$HG_BG_PIDS $SP"
sleep 0.5
slow=0 failed=0 maxms=0 rmax=$r0 n=0
t_sp=$SECONDS
while kill -0 "$SP" 2>/dev/null && [ $n -lt 2000 ]; do
	n=$((n + 1))
	hg_random "$W/s" 4096
	t0=$(ms)
	timeout 30 cp "$W/s" "$M/small-$n" || failed=$((failed + 1))
	t=$(( $(ms) - t0 ))
	[ $t -gt "$maxms" ] && maxms=$t
	[ $t -gt 2000 ] && slow=$((slow + 1))
	r=$(rss); [ "$r" -gt "$rmax" ] && rmax=$r
	sleep 0.5
done
start=$SECONDS
wait "$SP"; rc=$?
diag "sparse $GIB GiB upload: about $((SECONDS - t_sp)) s, exit $rc ($(cat "$W/sparse.out")), $n small uploads meanwhile, slowest ${maxms} ms, RSS ${r0} -> max ${rmax} KiB"
is "$rc" 0 "the $GIB GiB sparse upload is accepted"
ok "small uploads happened while it was being scanned ($n)" test "$n" -ge 3
is "$failed" 0 "none of them failed"
is "$slow" 0 "none of them took more than 2 s (slowest ${maxms} ms)"
ok "daemon RSS grew by less than 64 MiB during the $GIB GiB scan" test $((rmax - r0)) -lt 65536
is "$(stat -c %s "$B/sparse" 2>&1)" $((GIB * 1024 * 1024 * 1024)) "published with its full size"
is "$(tail -c 8 "$B/sparse")" "the end" "and its last bytes"
ok "it is still sparse in the backing dir (under 1 MiB allocated)" \
	test "$(du -k "$B/sparse" | cut -f1)" -lt 1024
hg_umount
done_testing
