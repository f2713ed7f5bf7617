#!/bin/bash
# 86-load.sh - 64 concurrent uploaders (60 clean, 4 uploading known files) for a bounded time,
# under a watchdog: no upload may hang (each is limited to 60 s), the mount must answer a probe
# every second, the daemon's RSS stays bounded, every upload that reported success is intact and
# no known upload is ever published.  12 s by default; HASHGATE_LONG=1 runs 5 minutes.
. "$(dirname "$0")/lib.sh"
hg_setup
M=$HG_MNT B=$HG_BACK W=$HG_TMP/w
DUR=12 NW=64 NK=4 RSS_MAX_KB=$((256 * 1024))
[ -n "${HASHGATE_LONG:-}" ] && DUR=300
POOL=$HG_TMP/pool MAN=$HG_TMP/man
mkdir -p "$POOL" "$MAN"
declare -A PSHA
for i in $(seq 0 15); do
	hg_random "$POOL/p$i" $(( (RANDOM * 32768 + RANDOM) % (1024 * 1024) + 1 ))
	PSHA[p$i]=$(hg_sha256 "$POOL/p$i")
done
KNOWN=("$HG_K_SHA256" "$HG_K_MD5" "$HG_K_SHA1" "$HG_K_BIG")

hg_mount || bail "mount failed"
PID=$HG_PID
END=$((SECONDS + DUR))

uploader() {	# uploader ID: clean uploads; "OK name pool" / "HUNG name" / "FAIL name"
	local id=$1 i=0 p rc log=$MAN/w$1
	RANDOM=$((BASHPID * 13 + id))
	mkdir -p "$M/w$id"
	while [ $SECONDS -lt $END ]; do
		p=p$((RANDOM % 16))
		timeout 60 cp "$POOL/$p" "$M/w$id/f$i"
		rc=$?
		case $rc in
		0) echo "OK f$i $p" ;;
		124) echo "HUNG f$i" ;;
		*) echo "FAIL f$i $rc" ;;
		esac
		i=$((i + 1))
	done >"$log"
}
kuploader() {
	local id=$1 i=0 rc log=$MAN/k$1
	RANDOM=$((BASHPID * 17 + id))
	mkdir -p "$M/k$id"
	while [ $SECONDS -lt $END ]; do
		timeout 60 cp "${KNOWN[$((RANDOM % 4))]}" "$M/k$id/q$i" 2>/dev/null
		rc=$?
		case $rc in
		0) echo "PUBLISHED q$i" ;;
		124) echo "HUNG q$i" ;;
		esac
		i=$((i + 1))
	done >"$log"
}

pids=
for j in $(seq 1 $((NW - NK))); do uploader "$j" & pids="$pids $!"; done
for j in $(seq 1 $NK); do kuploader "$j" & pids="$pids $!"; done
HG_BG_PIDS="$HG_BG_PIDS $pids"

# watchdog + memory sampler while the load runs
probe_fail=0 rss_max=0 samples=0
while [ $SECONDS -lt $END ]; do
	timeout 5 stat "$M" >/dev/null 2>&1 || probe_fail=$((probe_fail + 1))
	rss=$(awk '/VmRSS/ {print $2}' /proc/"$PID"/status 2>/dev/null)
	[ -n "$rss" ] && [ "$rss" -gt "$rss_max" ] && rss_max=$rss
	samples=$((samples + 1))
	sleep 1
done
# Uploads in flight get 60 s (their own timeout) plus slack to finish.
deadline=$((SECONDS + 90))
for p in $pids; do
	while kill -0 "$p" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.5; done
done
stuck=0
for p in $pids; do kill -0 "$p" 2>/dev/null && stuck=$((stuck + 1)); done
is "$stuck" 0 "all $NW uploaders finished after the load ended (no deadlock)"
for p in $pids; do kill -9 "$p" 2>/dev/null; done
for p in $pids; do wait "$p" 2>/dev/null; done

nok_=$(cat "$MAN"/w* | grep -c '^OK')
hung=$(cat "$MAN"/w* "$MAN"/k* | grep -c '^HUNG')
failed=$(cat "$MAN"/w* | grep -c '^FAIL')
diag "$nok_ clean uploads in ${DUR}s by $((NW - NK)) writers, $failed failed, $hung hung; RSS max ${rss_max} KiB over $samples samples"
is "$probe_fail" 0 "the mount answered every 1 s probe within 5 s during the load"
is "$hung" 0 "no single upload took longer than 60 s"
is "$failed" 0 "no clean upload failed"
ok "some uploads happened ($nok_)" test "$nok_" -gt "$NW"
ok "daemon RSS stayed below $((RSS_MAX_KB / 1024)) MiB (max $((rss_max / 1024)) MiB)" test "$rss_max" -lt "$RSS_MAX_KB"
is "$(cat "$MAN"/k* | grep -c PUBLISHED)" 0 "no known upload was published"
bad=0
for log in "$MAN"/w*; do
	id=${log##*/}
	while read -r tag name p; do
		[ "$tag" = OK ] || continue
		[ "$(hg_sha256 "$B/$id/$name" 2>/dev/null)" = "${PSHA[$p]}" ] || {
			bad=$((bad + 1)); [ $bad -lt 5 ] && diag "$id/$name is not intact"; }
	done <"$log"
done
is "$bad" 0 "every upload that succeeded is intact in the backing dir"
is "$(find "$B"/k* -type f 2>/dev/null | wc -l)" 0 "no file at all under the known uploaders' dirs"
ok "the daemon is alive" kill -0 "$PID"
hg_umount
done_testing
