#!/bin/bash
# 79-unmount-helper.sh - stopping a mount never opens the gate (issue 17, defect 3): the
# systemd helper hashgatefs-unmount does not lazily detach a live, busy mount (which would let
# new uploads land in the backing dir unscanned while the daemon serves the old ones); it
# unmounts an idle one and detaches a dead one.  A mount made through mount(8) / fstab is
# nosuid,nodev like a direct start.
. "$(dirname "$0")/lib.sh"
hg_setup
U=$HASHGATE_SRC/packaging/systemd/hashgatefs-unmount
[ -x "$U" ] || bail "$U is missing"
HG_MNT=$HG_BACK			# over its own backing dir, as the README's first example
hg_mount allow_other || bail "mount failed"
direct=$(findmnt -n -o OPTIONS -M "$HG_MNT" | tail -n 1)
ok "a direct start is nosuid,nodev" grep -q 'nosuid.*nodev' <<<"$direct"

# Busy: a process with its working directory in the mount.
( cd "$HG_MNT" && exec sleep 30 ) &
holder=$!
HG_BG_PIDS="$HG_BG_PIDS $holder"
sleep 0.3
hg_run env HASHGATE_UNMOUNT_WAIT=1 "$U" "$HG_MNT"; rc=$?; out=$HG_OUT
ok "a busy live mount: the helper fails (rc=$rc)" test "$rc" -ne 0
ok "  saying why" grep -q "busy" <<<"$out"
ok "  the mount is still there" hg_mounted "$HG_MNT"
why=$(hg_refused cp "$HG_K_SHA256" "$HG_MNT/k.bin"); rc=$?
hg_result $((rc == 0)) "  a known upload through it is still refused"
[ "$rc" = 0 ] || diag "$why"
ok "  and not in the backing dir" hg_content_absent "$HG_K_SHA256"
kill "$holder"; wait "$holder" 2>/dev/null
hg_run env HASHGATE_UNMOUNT_WAIT=5 "$U" "$HG_MNT"; rc=$?
is "$rc" 0 "an idle mount: unmounted"
nok "  gone" hg_mounted "$HG_MNT"
for i in $(seq 50); do kill -0 "$HG_PID" 2>/dev/null || break; sleep 0.1; done
nok "  and its daemon exited" kill -0 "$HG_PID"
HG_PID=

# Dead: the daemon was killed; only the dead mount is left.
hg_mount allow_other || bail "mount failed"
kill -9 "$HG_PID"; sleep 0.3; HG_PID=
hg_run env HASHGATE_UNMOUNT_WAIT=1 "$U" "$HG_MNT"; rc=$?
is "$rc" 0 "a dead mount: detached"
nok "  gone" hg_mounted "$HG_MNT"
hg_run "$U" "$HG_TMP/w"; rc=$?
is "$rc" 0 "nothing mounted: nothing to do"

# mount(8) / fstab: mount.fuse adds dev,suid for root; the daemon must not take them.
mount -t fuse "$HG_FS#$HG_BACK" "$HG_MNT" -o "config=$HG_CONF,db=$HG_DB,quarantine=$HG_QDIR,allow_other" \
	>>"$HG_LOG" 2>&1
ok "mount -t fuse.hashgatefs (mount(8)) mounts" hg_mounted "$HG_MNT"
viamount=$(findmnt -n -o OPTIONS -M "$HG_MNT" | tail -n 1)
ok "  nosuid (was: suid)" grep -qw nosuid <<<"$viamount"
ok "  nodev (was: dev)" grep -qw nodev <<<"$viamount"
"$U" "$HG_MNT"
done_testing
