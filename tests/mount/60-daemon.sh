#!/bin/bash
# 60-daemon.sh - hashgatefs as a daemon: refuses to start without a usable database (clear
# message naming it), SIGHUP reloads the configuration (a bad file keeps the old one),
# mount(8) through mount.fuse3 works, the status file exists while mounted and is removed on
# unmount, a dup'd descriptor does not end an upload early, the staging area is hidden and
# cleaned at start-up, and a known file written by a writer that then lists its directory is
# still refused.
. "$(dirname "$0")/lib.sh"
hg_setup
M=$HG_MNT B=$HG_BACK W=$HG_TMP/w

# --- no database, no mount -------------------------------------------------------------------
out=$("$HG_FS" -f -o "config=$HG_CONF,db=$HG_TMP/nope.db,quarantine=$HG_QDIR" "$B" "$M" 2>&1)
rc=$?
ok "refuses to start without a database" test "$rc" -ne 0
ok "... and says which database" grep -q "nope.db" <<<"$out"
nok "... and nothing is mounted" hg_mounted "$M"

# --- the kernel writeback cache would mix concurrent uploads: refused ------------------------
out=$("$HG_FS" -f -o "config=$HG_CONF,writeback=on" "$B" "$M" 2>&1)
rc=$?
ok "refuses writeback=on" test "$rc" -ne 0
ok "... naming the option" grep -q "writeback=on" <<<"$out"
nok "... and nothing is mounted" hg_mounted "$M"

# --- stale staging entries are removed at start-up -------------------------------------------
mkdir -p "$B/.hashgate-staging"
echo stale >"$B/.hashgate-staging/.hashgate-tmp.1.1"
hg_mount || bail "mount failed"
is "$(ls -A "$B/.hashgate-staging" | wc -l)" 0 "stale staging entries are removed at start-up"
nok "the staging area is not visible through the mount" test -e "$M/.hashgate-staging"
nok "and not listed" bash -c "ls -a '$M' | grep -q hashgate"
nok "a reserved temp name cannot be created" bash -c "echo x >'$M/.hashgate-tmp.9'"

# --- status file -------------------------------------------------------------------------------
for i in $(seq 80); do ls "$HG_TMP/state"/hashgatefs-*.status >/dev/null 2>&1 && break; sleep 0.1; done
ok "a status file is written while mounted" bash -c "ls '$HG_TMP/state'/hashgatefs-$HG_PID.status"

# --- an upload through a dup'd descriptor ends at the last close -------------------------------
head -c 100000 "$HG_K_SHA256" >"$W/part1"
# (bash ignores the error of `exec 4>&-`; the daemon log shows the verdict)
bash -c "exec 3>'$M/dup'; exec 4>&3; exec 3>&-; cat '$HG_K_SHA256' >&4; exec 4>&-" 2>/dev/null
ok "known upload through a dup'd fd, first close before the data: judged a match" \
	grep -q 'verdict=match.*path="dup"' "$HG_LOG"
ok "... not published" test ! -e "$B/dup"
ok "... its bytes are not in the backing dir" hg_content_absent "$HG_K_SHA256"

# --- the writer lists the directory before closing: the verdict comes first ------------------
mkdir "$M/ls"
bash -c "exec 3>'$M/ls/k'; cat '$HG_K_SHA256' >&3; ls '$M/ls' >'$W/ls.out'; exec 3>&-" 2>/dev/null
ok "a known upload listed by its writer is not published" test ! -e "$B/ls/k"
ok "... and not listed" bash -c "! grep -q '^k\$' '$W/ls.out'"
hg_random "$W/c" 5000
bash -c "exec 3>'$M/ls/c'; cat '$W/c' >&3; ls '$M/ls' >'$W/ls2.out'; exec 3>&-"
ok "a clean upload listed by its writer shows up in the listing" grep -q '^c$' "$W/ls2.out"
ok "... and is published" cmp "$W/c" "$B/ls/c"

# --- SIGHUP ------------------------------------------------------------------------------------
cp "$HG_CONF" "$W/conf.orig"
echo "on_match = block" >>"$HG_CONF"
kill -HUP "$HG_PID"
for i in $(seq 30); do grep -q "configuration reloaded" "$HG_LOG" && break; sleep 0.1; done
ok "SIGHUP reloads the configuration" grep -q "configuration reloaded" "$HG_LOG"
ok "after the reload a known upload is refused" hg_refused cp "$HG_K_SHA1" "$M/after-hup"
ok "... with the new action (block)" bash -c "grep 'after-hup' '$HG_LOG' | grep -q 'action=block'"
echo "this is not a config line" >>"$HG_CONF"
kill -HUP "$HG_PID"
for i in $(seq 30); do grep -q "not reloaded" "$HG_LOG" && break; sleep 0.1; done
ok "a broken configuration is reported, not applied" grep -q "not reloaded" "$HG_LOG"
ok "the daemon keeps running" kill -0 "$HG_PID"
ok "and keeps refusing known uploads" hg_refused cp "$HG_K_SHA1" "$M/after-bad-hup"
cp "$W/conf.orig" "$HG_CONF"
pid=$HG_PID
hg_umount
ok "the status file is removed at unmount" test ! -e "$HG_TMP/state/hashgatefs-$pid.status"

# --- mount(8) through mount.fuse3, as fstab does ----------------------------------------------
# (mount runs helpers with a fixed PATH, so the build's binary is named in the source:
# "PROG#SOURCE"; an installed hashgatefs works as `-t fuse.hashgatefs BACKING`.)
if command -v mount.fuse3 >/dev/null; then
	mount -t fuse "$HG_FS#$B" "$M" \
		-o "config=$HG_CONF,db=$HG_DB,quarantine=$HG_QDIR" 2>"$W/mount.err"
	for i in $(seq 50); do hg_mounted "$M" && break; sleep 0.1; done
	ok "mount(8) via mount.fuse3 mounts" hg_mounted "$M"
	ok "... and scans" hg_refused cp "$HG_K_SHA256" "$M/via-mount"
	hg_random "$W/m" 3000
	ok "... and publishes clean files" bash -c "cp '$W/m' '$M/via-mount-ok' && cmp '$W/m' '$B/via-mount-ok'"
	fusermount3 -u "$M"
	for i in $(seq 50); do hg_mounted "$M" || break; sleep 0.1; done
	nok "... and unmounts" hg_mounted "$M"
else
	skip "mount.fuse3 not installed"
fi
done_testing
