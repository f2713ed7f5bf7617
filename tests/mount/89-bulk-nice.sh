#!/bin/bash
# 89-bulk-nice.sh - bulk hashing yields to other tenants' requests (fs/hashq.c): the
# background hashers and verdict workers run 10 nice steps below the daemon, a request thread
# hashing a big write goes there only for the hashing and always comes back, and where it could
# not come back (no CAP_SYS_NICE, RLIMIT_NICE 0) it never goes, and says so in the log.
# Thread priorities are read from /proc/PID/task/*/stat (field 19, nice).
. "$(dirname "$0")/lib.sh"
hg_setup
command -v setpriv >/dev/null && command -v prlimit >/dev/null ||
	skip_all "setpriv/prlimit (util-linux) missing"
REAL_FS=$HG_FS

# mount_via DESC CMD...: mount with the daemon started as `CMD... hashgatefs ...` (a wrapper
# script as HG_FS) and a fresh log
mount_via() {
	local desc=$1
	shift
	printf '#!/bin/sh\nexec %s "%s" "$@"\n' "$*" "$REAL_FS" >"$HG_TMP/fs-via"
	chmod +x "$HG_TMP/fs-via"
	HG_FS=$HG_TMP/fs-via
	: >"$HG_LOG"
	hg_mount || bail "mount $desc failed"
	sleep 0.3
}

# "TID NICE" per thread of the daemon
threads() {
	local t
	for t in /proc/"$HG_PID"/task/*/stat; do
		sed 's/.*) //' "$t" 2>/dev/null | awk -v t="${t%/stat}" '{ sub(".*/", "", t); print t, $17 }'
	done
}
# threads at nice $1, as a sorted list of tids
at_nice() { threads | awk -v n="$1" '$2 == n { print $1 }' | sort -n | tr '\n' ' '; }

# Four 24 MiB uploads at once (cp writes 128 KiB pieces: hashed after the reply), then check
# each arrived whole.
big_uploads() {
	local i pids=()
	for i in 1 2 3 4; do
		cp "$HG_TMP/big" "$HG_MNT/$1-$i" & pids+=($!)
	done
	wait "${pids[@]}" || return 1
	for i in 1 2 3 4; do
		[ "$(hg_sha256 "$HG_BACK/$1-$i")" = "$BIG_SHA" ] || return 1
	done
}

hg_random "$HG_TMP/big" $((24 << 20))
BIG_SHA=$(hg_sha256 "$HG_TMP/big")

# --- as root with every capability ------------------------------------------------------
hg_mount || bail "mount failed"
sleep 0.3
bulk=$(at_nice 10)
n=$(echo $bulk | wc -w)
ok "background hashers and verdict workers run at nice 10 ($n threads: $bulk)" [ "$n" -ge 3 ]
is "$(threads | awk -v p="$HG_PID" '$1 == p { print $2 }')" 0 "the main thread keeps nice 0"
ok "four concurrent 24 MiB uploads arrive whole" big_uploads a
is "$(at_nice 10)" "$bulk" "after them no request thread is left at nice 10"
ok "a thread hashed at nice 10 meanwhile: the log says nothing about normal priority" \
	bash -c "! grep -q 'hashed at normal priority' '$HG_LOG'"
hg_umount

# --- started at nice 5: bulk work is relative to the daemon's own priority -----------------
mount_via "at nice 5" nice -n 5
bulk=$(at_nice 15)
ok "started at nice 5: bulk threads at nice 15 ($(echo $bulk | wc -w))" [ "$(echo $bulk | wc -w)" -ge 3 ]
ok "uploads at nice 5 arrive whole" big_uploads b
is "$(at_nice 15)" "$bulk" "request threads return to nice 5, not 0 and not 15"
is "$(at_nice 0)" "" "no thread runs above the daemon's priority"
hg_umount

# --- without CAP_SYS_NICE and RLIMIT_NICE 0: request threads never lower themselves ------
NOCAP="setpriv --bounding-set -sys_nice --inh-caps -sys_nice"
mount_via "without CAP_SYS_NICE" prlimit --nice=0:0 $NOCAP
bulk=$(at_nice 10)
ok "without CAP_SYS_NICE the dedicated bulk threads still run at nice 10" [ "$(echo $bulk | wc -w)" -ge 3 ]
ok "uploads without CAP_SYS_NICE arrive whole" big_uploads c
is "$(at_nice 10)" "$bulk" "no request thread was left at nice 10"
ok "the log says large writes are hashed at normal priority" \
	grep -q 'hashed at normal priority.*LimitNICE' "$HG_LOG"
hg_umount

# --- the same with RLIMIT_NICE 20 (the unit's LimitNICE=+0): request threads go and return --
if prlimit --nice=20:20 true 2>/dev/null; then
	mount_via "with RLIMIT_NICE 20" prlimit --nice=20:20 $NOCAP
	bulk=$(at_nice 10)
	ok "uploads with RLIMIT_NICE 20 arrive whole" big_uploads d
	is "$(at_nice 10)" "$bulk" "request threads came back to nice 0"
	ok "the log does not claim normal priority" \
		bash -c "! grep -q 'hashed at normal priority' '$HG_LOG'"
	hg_umount
else
	# raising the hard limit takes CAP_SYS_RESOURCE, which a container may not give root
	for t in "uploads with RLIMIT_NICE 20 arrive whole" "request threads came back to nice 0" \
		 "the log does not claim normal priority"; do
		skip "$t: cannot raise RLIMIT_NICE here"
	done
fi
HG_FS=$REAL_FS
done_testing
