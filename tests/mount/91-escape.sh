#!/bin/bash
# 91-escape.sh - nothing done through the mount makes the daemon touch anything outside
# BACKING_DIR, even when the backing dir is changed under it by someone else:
#  - a symlink planted in the backing dir is shown as a symlink (readlink gives its target),
#    never opened by the daemon: O_NOFOLLOW opens fail with ELOOP, and an unprivileged client
#    that follows it gets the kernel's normal answer for itself (EACCES on /etc/shadow);
#  - race: while a tenant loops reading, creating and listing under DIR through the mount,
#    another process keeps swapping DIR in the backing dir for a symlink to a root-only
#    directory outside.  If the daemon ever resolved a name through that symlink (as root), the
#    tenant would see the outside secret or leave files outside; the kernel following the
#    symlink on the tenant's behalf gets EACCES, so any success is the daemon's doing.
# HASHGATE_LONG=1 races for 30 s instead of 4.
. "$(dirname "$0")/lib.sh"
hg_setup
M=$HG_MNT B=$HG_BACK W=$HG_TMP/w
TU=5003
RACE=4
[ -n "${HASHGATE_LONG:-}" ] && RACE=30

OUT=$HG_TMP/outside		# root-only, outside the backing dir
mkdir -m 0700 "$OUT"
echo OUTSIDE-SECRET >"$OUT/secret"
mkdir -m 0777 "$OUT/sub"
echo OUTSIDE-SECRET >"$OUT/sub/secret"

mkdir -p "$B/t/d/sub"
echo inside >"$B/t/d/secret"
echo inside >"$B/t/d/sub/secret"
chmod -R a+rwX "$B/t"
ln -s /etc/shadow "$B/t/shadow-link"
ln -s "$OUT" "$B/t/out-link"

# timeout=0: no entry/attr caching, so every name the client uses is looked up by the daemon.
hg_mount allow_other,timeout=0 || bail "mount failed"
is "$(readlink "$M/t/shadow-link")" /etc/shadow "a planted symlink reads back as a symlink"
nok "open(O_NOFOLLOW) of it fails" python3 -c "import os; os.open('$M/t/shadow-link', os.O_RDONLY | os.O_NOFOLLOW)"
nok "a tenant following it gets nothing (EACCES on the client side)" hg_as $TU $TU cat "$M/t/shadow-link"
nok "a tenant cannot reach the root-only outside dir through a planted link" \
	hg_as $TU $TU cat "$M/t/out-link/secret"
nok "nor create there" hg_as $TU $TU bash -c "echo x >'$M/t/out-link/sub/created'"
ok "nothing was created outside" test ! -e "$OUT/sub/created"

# The race.  swapper: root, directly in the backing dir; client: the tenant, through the mount.
cat >"$W/swap.py" <<EOF
import os, sys, time
b = "$B/t"
end = time.time() + float(sys.argv[1])
n = 0
while time.time() < end:
    os.rename(b + "/d", b + "/d.real")
    os.symlink("$OUT", b + "/d")
    time.sleep(0.0005)
    os.unlink(b + "/d")
    os.rename(b + "/d.real", b + "/d")
    time.sleep(0.0005)
    n += 1
print(n)
EOF
cat >"$W/client.sh" <<'EOF'
#!/bin/bash
# client.sh MNT SECONDS LOG: read, create, list and stat under MNT/t/d until time runs out.
m=$1 end=$((SECONDS + $2)) log=$3 i=0
while [ $SECONDS -lt $end ]; do
	i=$((i + 1))
	cat "$m/t/d/secret" "$m/t/d/sub/secret" 2>/dev/null
	echo "c$i" 2>/dev/null >"$m/t/d/sub/created-$i"
	ls "$m/t/d" "$m/t/d/sub" 2>/dev/null
	exec 3<"$m/t/d/secret" 2>/dev/null && { cat <&3; exec 3<&-; }
done >>"$log"
echo "$i"
EOF
chmod 0755 "$W/client.sh" "$W"
: >"$W/client.log"
chmod 0666 "$W/client.log"
python3 "$W/swap.py" "$RACE" >"$W/swaps" &
SW=$!
HG_BG_PIDS="$HG_BG_PIDS $SW"
iters=$(hg_as $TU $TU "$W/client.sh" "$M" "$RACE" "$W/client.log")
wait "$SW"
diag "race: $(cat "$W/swaps") swaps, $iters client iterations, $(grep -c inside "$W/client.log") inside reads"
ok "the race ran (swaps and client iterations happened)" test "$(cat "$W/swaps")" -gt 10 -a "${iters:-0}" -gt 10
nok "the tenant never read the outside secret" grep -q OUTSIDE-SECRET "$W/client.log"
is "$(find "$OUT" -name 'created-*' | wc -l)" 0 "no file was created outside the backing dir"
is "$(ls "$OUT" | sort | tr '\n' ' ')" "secret sub " "the outside dir holds only what it held"
is "$(cat "$OUT/secret")" OUTSIDE-SECRET "the outside secret is unchanged"
ok "the daemon is alive after the race" kill -0 "$HG_PID"
ok "and serves the restored directory" grep -q inside "$M/t/d/secret"
hg_umount
done_testing
