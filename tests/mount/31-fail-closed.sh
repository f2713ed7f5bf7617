#!/bin/bash
# 31-fail-closed.sh - the daemon refuses to start without a readable database (missing, empty,
# garbage, a directory) or with a bad option, saying why; a database that breaks or vanishes
# while mounted is never taken for an empty one (known uploads stay refused); a quarantine
# store that cannot take content still keeps the match out of the backing dir; on_error=allow
# never lets a match through.
. "$(dirname "$0")/lib.sh"
hg_setup
M=$HG_MNT B=$HG_BACK W=$HG_TMP/w

# refuse_start DESC DBPATH [OPTS]: the daemon must exit non-zero within 10 s without mounting.
refuse_start() {
	local desc=$1 db=$2 extra=${3:-} opts pid i rc
	opts="config=$HG_CONF,db=$db,quarantine=$HG_QDIR${extra:+,$extra}"
	: >"$W/start.log"
	"$HG_FS" -f -o "$opts" "$HG_BACK" "$HG_MNT" >"$W/start.log" 2>&1 </dev/null &
	pid=$!
	for i in $(seq 100); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		hg_result 0 "$desc: refuses to start (still running after 10 s)"
		HG_PID=$pid hg_umount
		return
	fi
	wait "$pid"; rc=$?
	if [ "$rc" -ne 0 ] && ! hg_mounted "$HG_MNT"; then
		hg_result 1 "$desc: refuses to start (exit $rc, not mounted)"
	else
		hg_result 0 "$desc: refuses to start (exit $rc)"
		diag "$(cat "$W/start.log")"
		fusermount3 -uz "$HG_MNT" 2>/dev/null
	fi
}

refuse_start "missing database" "$HG_TMP/nonexistent.db"
ok "... and the error names the database file" grep -q nonexistent.db "$W/start.log"
: >"$W/empty.db"
refuse_start "empty database file" "$W/empty.db"
head -c 65536 /dev/urandom >"$W/garbage.db"
refuse_start "garbage database file" "$W/garbage.db"
ok "... and the error names the database file" grep -q garbage.db "$W/start.log"
mkdir "$W/dir.db"
refuse_start "database path is a directory" "$W/dir.db"
refuse_start "unknown on_match action" "$HG_DB" on_match=shrug
ok "... and the error names the option" grep -q on_match "$W/start.log"
refuse_start "bad on_error value" "$HG_DB" on_error=maybe
refuse_start "missing config= file" "$HG_DB" config=$HG_TMP/nope.conf

# database broken while mounted: the loaded generation stays in force, never "empty"
cp "$HG_DB" "$W/db.bak"
hg_mount || bail "mount failed"
head -c 65536 /dev/urandom >"$HG_DB"
rm -f "$HG_DB-wal" "$HG_DB-shm"
sleep 2
ok "database overwritten with garbage: a known upload is still refused" hg_refused cp "$HG_K_SHA256" "$M/k1"
ok "... and absent" hg_content_absent "$HG_K_SHA256"
rm -f "$HG_DB"
sleep 2
ok "database deleted: a known upload is still refused" hg_refused cp "$HG_K_MD5" "$M/k2"
ok "... and absent" hg_content_absent "$HG_K_MD5"
ok "the daemon keeps serving reads and clean uploads" bash -c "echo hi >'$M/c1' && test \"\$(cat '$M/c1')\" = hi"
hg_umount
cp "$W/db.bak" "$HG_DB"

# quarantine store cannot take content: the match is still kept out of the backing dir
hg_mount || bail "mount failed"
cp "$HG_K_SHA1" "$M/warmup" 2>/dev/null		# makes sure the store and objects/ exist
if chattr +i "$HG_QDIR/objects" 2>/dev/null; then
	ok "quarantine objects/ immutable: a known upload still fails" hg_refused cp "$HG_K_BIG" "$M/k3"
	ok "... no file under its name" test ! -e "$B/k3"
	ok "... its bytes are nowhere in the backing dir" hg_content_absent "$HG_K_BIG"
	ok "... and a record was still written" hg_quarantined k3
	chattr -i "$HG_QDIR/objects"
else
	skip "chattr +i not supported on $HG_QDIR"
fi
hg_umount

# on_error=allow relaxes scan failures only, never matches
hg_mount on_error=allow || bail "mount with on_error=allow failed"
ok "on_error=allow: a known upload is still refused" hg_refused cp "$HG_K_SHA256" "$M/k4"
ok "... and absent" hg_content_absent "$HG_K_SHA256"
hg_random "$W/c2" 5000
ok "on_error=allow: a clean upload is published" bash -c "cp '$W/c2' '$M/c2' && cmp '$W/c2' '$B/c2'"

done_testing
