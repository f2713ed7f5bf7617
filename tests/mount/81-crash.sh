#!/bin/bash
# 81-crash.sh - kill -9 of the daemon while many clients upload (clean and known files, so
# quarantine moves are under way too) and right after a database change (while it reloads).
# After each crash and a restart:
#  - every upload whose close() succeeded is in the backing dir, complete and intact;
#  - no file under a final name holds anything but one complete version that was uploaded to
#    that name (no partial, no unscanned, no known content anywhere in the backing dir);
#  - the staging area is empty after start-up, the quarantine store has no temp files, every
#    record that says "stored" has its object and every object has a record;
#  - the daemon serves again: clean uploads pass, known uploads are refused.
# HASHGATE_LONG=1 runs more rounds with longer upload phases.
. "$(dirname "$0")/lib.sh"
hg_setup
M=$HG_MNT B=$HG_BACK W=$HG_TMP/w
POOL=$HG_TMP/pool MAN=$HG_TMP/man
NWRITERS=16 NPOOL=24 ROUNDS=2 RUNFOR=1.5
[ -n "${HASHGATE_LONG:-}" ] && { ROUNDS=6; RUNFOR=4; }
mkdir -p "$POOL" "$MAN"

# A pool of clean files (1 B .. 3 MB) whose digests we know.
declare -A PSHA
for i in $(seq 0 $((NPOOL - 1))); do
	hg_random "$POOL/p$i" $(( (RANDOM * 32768 + RANDOM) % (3 * 1024 * 1024) + 1 ))
	PSHA[p$i]=$(hg_sha256 "$POOL/p$i")
done
KNOWN=("$HG_K_SHA256" "$HG_K_MD5" "$HG_K_SHA1" "$HG_K_BIG")

# writer ID ROUND: uploads pool files to fresh names (sometimes over its own earlier names)
# with cp or dd of odd block sizes; logs "A name pool cp|dd" before and "D name" after success.
writer() {
	local id=$1 r=$2 i=0 p name log=$MAN/r$2-w$1
	RANDOM=$((BASHPID * 31 + id))
	mkdir -p "$M/r$r/w$id" 2>/dev/null
	while :; do
		p=p$((RANDOM % NPOOL))
		if [ $((RANDOM % 4)) = 0 ] && [ $i -gt 0 ]; then
			name=f$((RANDOM % i))		# overwrite (O_TRUNC staging)
		else
			name=f$i
			i=$((i + 1))
		fi
		how=cp
		[ $((RANDOM % 2)) = 0 ] && how=dd
		echo "A $name $p $how" >>"$log"
		if [ $how = cp ]; then
			cp "$POOL/$p" "$M/r$r/w$id/$name" 2>/dev/null || continue
		else
			dd if="$POOL/$p" of="$M/r$r/w$id/$name" bs=$((4093 + RANDOM % 70000)) \
				status=none 2>/dev/null || continue
		fi
		echo "D $name" >>"$log"
	done
}

# kwriter ID ROUND: uploads known files; every one of them must be refused.
kwriter() {
	local id=$1 r=$2 i=0 log=$MAN/r$2-k$1
	RANDOM=$((BASHPID * 37 + id))
	mkdir -p "$M/r$r/k$id" 2>/dev/null
	while :; do
		if cp "${KNOWN[$((RANDOM % ${#KNOWN[@]}))]}" "$M/r$r/k$id/q$i" 2>/dev/null; then
			echo "PUBLISHED q$i" >>"$log"
		fi
		i=$((i + 1))
	done
}

start_load() {	# start_load ROUND
	local j
	BGP=
	for j in $(seq 1 $NWRITERS); do
		writer "$j" "$1" &
		BGP="$BGP $!"
	done
	for j in 1 2 3; do
		kwriter "$j" "$1" &
		BGP="$BGP $!"
	done
	HG_BG_PIDS="$HG_BG_PIDS $BGP"
}

stop_load() {
	local p
	for p in $BGP; do kill -9 "$p" 2>/dev/null; done
	for p in $BGP; do wait "$p" 2>/dev/null; done
	BGP=
}

crash() {	# kill -9 the daemon and tear down the dead mount
	kill -9 "$HG_PID" 2>/dev/null
	wait "$HG_PID" 2>/dev/null
	HG_PID=
	stop_load
	fusermount3 -u "$M" 2>/dev/null || fusermount3 -uz "$M" 2>/dev/null
	! hg_mounted "$M"
}

# Known content is nowhere in the backing dir; right after a crash with named staging: nowhere
# outside the root-only staging dir (the restart empties that, checked after it).
absent_now() {
	if hg_staging_named; then hg_content_unreachable "$1"; else hg_content_absent "$1"; fi
}

# verify_round ROUND: the backing dir against the writers' logs.
verify_round() {
	local r=$1 log f id name rel sha bad=0 missing=0 checked=0 published=0
	declare -A allowed done_
	for log in "$MAN"/r$r-w*; do
		[ -e "$log" ] || continue
		id=${log##*-}
		while read -r tag name p _; do
			if [ "$tag" = A ]; then
				allowed[$id/$name]="${allowed[$id/$name]} ${PSHA[$p]}"
			else
				done_[$id/$name]=1
			fi
		done <"$log"
	done
	# every finished upload is there and is one complete uploaded version
	for rel in "${!done_[@]}"; do
		if [ ! -f "$B/r$r/$rel" ]; then
			missing=$((missing + 1))
			diag "finished upload r$r/$rel is missing from the backing dir"
		fi
	done
	is "$missing" 0 "round $r: every upload whose close() succeeded is in the backing dir"
	# every file under a final name is one complete version uploaded to that name
	while IFS= read -r -d '' f; do
		rel=${f#"$B/r$r/"}
		checked=$((checked + 1))
		case $rel in
		k*)	bad=$((bad + 1)); diag "known-file upload published: r$r/$rel"; continue ;;
		esac
		sha=$(hg_sha256 "$f")
		case " ${allowed[$rel]} " in
		*" $sha "*) ;;
		*)	bad=$((bad + 1))
			diag "r$r/$rel: content ($(stat -c %s "$f") bytes) is not a complete upload to that name;" \
				"  its writer's log: $(grep -E "^[AD] ${rel#*/}( |\$)" "$MAN/r$r-${rel%%/*}" |
					tail -n 4 | tr '\n' ';')" ;;
		esac
	done < <(find "$B/r$r" -type f -print0 2>/dev/null)
	is "$bad" 0 "round $r: no partial, foreign or known content under any of $checked final names"
	published=$(cat "$MAN"/r$r-k* 2>/dev/null | grep -c PUBLISHED)
	is "$published" 0 "round $r: no known upload's close() succeeded"
	for f in "${KNOWN[@]}"; do
		ok "round $r: $(basename "$f") content absent from the whole backing dir" \
			absent_now "$f"
	done
}

# verify_store: the quarantine store's records and objects agree; no temp files.
verify_store() {
	local what=$1 nrec nobj ntmp orphan=0 lost=0 id o
	nrec=$(sqlite3 -readonly "$HG_QDIR/records.db" \
		"SELECT count(*) FROM records WHERE stored=1" 2>&1)
	nobj=$(find "$HG_QDIR/objects" -type f ! -name '.tmp-*' 2>/dev/null | wc -l)
	ntmp=$(find "$HG_QDIR/objects" -type f -name '.tmp-*' 2>/dev/null | wc -l)
	# Content is stored once per sha256: records name their object (records.object).
	for o in $(sqlite3 -readonly "$HG_QDIR/records.db" \
			"SELECT object FROM records WHERE stored=1"); do
		[ -f "$HG_QDIR/objects/$o" ] || lost=$((lost + 1))
	done
	for o in "$HG_QDIR"/objects/*; do
		[ -f "$o" ] || continue
		id=${o##*/}
		[ "$(sqlite3 -readonly "$HG_QDIR/records.db" \
			"SELECT count(*) > 0 FROM records WHERE object='$id' AND stored=1")" = 1 ] ||
			orphan=$((orphan + 1))
	done
	is "$lost" 0 "$what: every stored record has its content object ($nrec records)"
	is "$orphan" 0 "$what: no content object without a record ($nobj objects)"
	is "$ntmp" 0 "$what: no temporary files left in the quarantine store"
	ok "$what: records.db passes integrity_check" \
		test "$(sqlite3 -readonly "$HG_QDIR/records.db" 'PRAGMA integrity_check' 2>&1)" = ok
}

serves() {	# serves DESC: clean passes, known refused
	hg_random "$W/probe" 77777
	ok "$1: a clean upload passes" cp "$W/probe" "$M/probe-$2"
	ok "$1: and is published intact" cmp "$W/probe" "$B/probe-$2"
	nok "$1: a known upload is refused" cp "$HG_K_SHA256" "$M/known-$2"
	ok "$1: and is not published" test ! -e "$B/known-$2"
}

# --- crashes during uploads and quarantine moves ----------------------------------------------
for r in $(seq 1 "$ROUNDS"); do
	hg_mount || bail "mount failed (round $r)"
	start_load "$r"
	sleep "$RUNFOR"
	# Let some uploads finish, then crash at a random point inside the next 0.5 s.
	sleep "0.$((RANDOM % 5))$((RANDOM % 10))"
	ok "round $r: daemon killed with -9 under load, mount torn down" crash
	diag "round $r: $(cat "$MAN"/r$r-w* 2>/dev/null | grep -c '^D') uploads finished," \
		"$(cat "$MAN"/r$r-w* 2>/dev/null | grep -c '^A') started," \
		"$(sqlite3 -readonly "$HG_QDIR/records.db" 'SELECT count(*) FROM records' 2>/dev/null) quarantine records"
	stale=$(find "$B/.hashgate-staging" -mindepth 1 2>/dev/null | wc -l)
	diag "round $r: $stale entries in the staging area right after the crash"
	verify_round "$r"
	hg_mount || bail "restart after crash failed (round $r)"
	is "$(find "$B/.hashgate-staging" -mindepth 1 2>/dev/null | wc -l)" 0 \
		"round $r: staging area is empty after restart"
	verify_store "round $r after restart"
	if hg_staging_named; then
		for f in "${KNOWN[@]}"; do
			ok "round $r after restart: $(basename "$f") content absent, staging dir included" \
				hg_content_absent "$f"
		done
	fi
	serves "round $r after restart" "$r"
	hg_umount
done

# --- crash while a known upload is open: all its bytes written, close() not yet called ---------
# dd dup()s and closes its output descriptor before writing (a FLUSH before the data), so this
# is also the case of an upload whose first close came early.
hg_mount || bail "mount failed (in-flight round)"
hg_random "$W/old" 300000
ok "in-flight: an existing file is uploaded" cp "$W/old" "$M/inflight-old"
{ cat "$HG_K_BIG"; sleep 3; } | dd of="$M/inflight-dd" bs=65536 status=none 2>/dev/null &
p1=$!
{ cat "$HG_K_SHA256"; sleep 3; } | cat >"$M/inflight-cat" 2>/dev/null &
p2=$!
# a rewrite of an existing file, and one right after that file's own upload (same shell)
{ cat "$HG_K_MD5"; sleep 3; } | dd of="$M/inflight-old" bs=65536 status=none 2>/dev/null &
p3=$!
( cp "$W/old" "$M/inflight-b2b" && { cat "$HG_K_SHA1"; sleep 3; } |
	dd of="$M/inflight-b2b" bs=4097 status=none ) 2>/dev/null &
p4=$!
HG_BG_PIDS="$HG_BG_PIDS $p1 $p2 $p3 $p4"
sleep 1.5
ok "in-flight: while the known uploads are still open, their bytes are not in the backing dir" \
	bash -c "! cmp -s '$HG_K_BIG' '$B/inflight-dd' && ! cmp -s '$HG_K_SHA256' '$B/inflight-cat'"
BGP="$p1 $p2 $p3 $p4"
ok "in-flight: daemon killed with -9 before the uploads were closed" crash
ok "in-flight: the rewritten existing file keeps its old content" cmp "$W/old" "$B/inflight-old"
ok "in-flight: so does the one rewritten right after its own upload" cmp "$W/old" "$B/inflight-b2b"
ok "in-flight: the rewrites' known bytes are nowhere in the backing dir" \
	bash -c "$(declare -f absent_now hg_staging_named hg_find_reachable hg_content_unreachable hg_content_absent hg_sha256); B='$B'; HG_BACK='$B'; HG_LOG='$HG_LOG'; absent_now '$HG_K_MD5' && absent_now '$HG_K_SHA1'"
ok "in-flight: the dd upload's bytes are nowhere in the backing dir" absent_now "$HG_K_BIG"
ok "in-flight: the shell-redirect upload's bytes are nowhere in the backing dir" \
	absent_now "$HG_K_SHA256"
if hg_staging_named; then
	hg_mount || bail "restart after the in-flight crash failed"
	is "$(find "$B/.hashgate-staging" -mindepth 1 -name 'up.*' 2>/dev/null | wc -l)" 0 \
		"in-flight: the restart removed the staged named files"
	for f in "$HG_K_MD5" "$HG_K_SHA1" "$HG_K_BIG" "$HG_K_SHA256"; do
		ok "in-flight: after restart $(basename "$f") is nowhere, staging dir included" \
			hg_content_absent "$f"
	done
	hg_umount
fi
ok "in-flight: no file under either name" bash -c "test ! -e '$B/inflight-dd' && test ! -e '$B/inflight-cat'"

# --- crash while the daemon loads a new database generation ------------------------------------
# A big list makes the reload take a while; a new known file in it proves which generation the
# restarted daemon uses.
hg_random "$W/k-new" 12345
{
	head -c $((32 * 400000)) /dev/urandom | od -An -v -tx1 -w32 | tr -d ' '
	hg_sha256 "$W/k-new"
} >"$W/l-big"
hg_mount || bail "mount failed (reload round)"
start_load reload
sleep 0.5
hg_cli db import --list t-big --category illegal --type sha256 "$W/l-big" >/dev/null ||
	diag "import of the big list failed"
sleep "0.$((RANDOM % 10))"
ok "reload: daemon killed with -9 while (re)loading a 400k-hash generation" crash
verify_round reload
ok "reload: database passes integrity_check" \
	test "$(sqlite3 -readonly "$HG_DB" 'PRAGMA integrity_check' 2>&1)" = ok
hg_mount || bail "restart after the reload crash failed"
nok "reload: after restart the new generation is in force (new known file refused)" \
	cp "$W/k-new" "$M/k-new"
ok "reload: and it is not published" test ! -e "$B/k-new"
is "$(find "$B/.hashgate-staging" -mindepth 1 2>/dev/null | wc -l)" 0 \
	"reload: staging area is empty after restart"
verify_store "reload after restart"
serves "reload after restart" reload
hg_umount
done_testing
