#!/bin/sh
# 50-neighbour.sh - one hostile tenant against one victim tenant on the same mount (issue 15).
#
# The victim (uid 2202) loops over stat, read of a 4 KiB file, create of an empty file and a
# 16 KiB upload for BENCH_SECS seconds (tests/bench/neighbour.py) while the attacker (uid
# 2201) runs one pattern at a time; a phase with no attacker comes first and last:
#   held        uploads held open until refused, then read opens until refused, all held
#   sparse      12 workers: ftruncate 4 GiB, write one byte, close
#   concurrent  32 workers: 1 MiB uploads
#   jpeg        8 workers: a JPEG (tests/tools/mkjpeg 1024x768) whose header claims 9999x9999
#   known       4 workers: re-uploading a BENCH_KNOWN_MIB MiB file whose sha256 is listed
# The database holds md5, sha1, sha256 and PDQ lists, so everything is hashed and JPEGs are
# decoded.  Between phases the attacker is killed and the daemon is left to finish what it
# was doing (until its CPU time stops growing), so each phase starts from an idle daemon.
# Per phase: the victim's ops/s, p50/p99/max latency of every op, its ops/s against the first
# no-attacker phase, and the daemon's peak RSS so far (VmHWM).
# Targets (issue 15): victim p99 < 50 ms, ops/s >= 0.5x no-attacker and no failed op, for every
# pattern.
# BENCH_OPTS="loop=libfuse,..." adds mount options (e.g. to compare request loops).
# Exit 0 when every target is met, 1 otherwise or when a step failed.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u

B=${HASHGATE_BUILD:?HASHGATE_BUILD not set (run through make bench)}
SRC=${HASHGATE_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
NAME=50-neighbour
. "$SRC/tests/bench/lib.sh"
SECS=${BENCH_SECS:-10}
KNOWN_MIB=${BENCH_KNOWN_MIB:-32}
PATTERNS=${BENCH_PATTERNS:-held sparse concurrent jpeg known}
PY=/usr/bin/python3
NB=$SRC/tests/bench/neighbour.py
AU=2201 VU=2202
for x in "$B/hashgatefs" "$B/hashgate" "$B/tests/tools/mkjpeg" "$PY"; do
	[ -x "$x" ] || { echo "50-neighbour: $x is not built; skipped"; exit 0; }
done
[ -c /dev/fuse ] || { echo "50-neighbour: /dev/fuse missing; skipped"; exit 0; }
[ "$(id -u)" = 0 ] || { echo "50-neighbour: needs root (two tenant uids); skipped"; exit 0; }

T=$(mktemp -d /tmp/hg-bench.XXXXXX)
chmod 0755 "$T"
M=$T/mnt BK=$T/back
APID= DPID=
cleanup() {
	[ -n "${BENCH_KEEP_LOG:-}" ] && cp "$T/daemon.log" "$T/attack.log" "$T/victim.log" "$BENCH_KEEP_LOG/" 2>/dev/null
	[ -n "$APID" ] && kill "$APID" 2>/dev/null && wait "$APID" 2>/dev/null
	bench_unmount "$M"
	bench_cleanup
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- database, test files, mount ------------------------------------------------------------
bench_config || { echo "50-neighbour: cannot write the scratch config"; exit 1; }
head -c $((KNOWN_MIB << 20)) /dev/urandom >"$T/known.bin"
# one random hash per list (every algorithm is computed) and the known file's sha256
bench_db 1 md5 sha1 pdq &&
	sha256sum <"$T/known.bin" | cut -d' ' -f1 >"$T/l-sha256" &&
	bench_cli db import --list bench-sha256 --category illegal --type sha256 "$T/l-sha256" \
		>/dev/null || { echo "50-neighbour: could not build the database"; exit 1; }
"$B/tests/tools/mkjpeg" "$T/base.jpg" 1024 768 3 --quality 90 >/dev/null &&
$PY - "$T/base.jpg" "$T/bomb.jpg" <<'PY' || { echo "50-neighbour: could not make the JPEG"; exit 1; }
import struct, sys
b = bytearray(open(sys.argv[1], "rb").read())
i = 2
while b[i] == 0xFF and b[i + 1] not in (0xC0, 0xC1, 0xC2):
    i += 2 + struct.unpack(">H", b[i + 2:i + 4])[0]
b[i + 5:i + 9] = struct.pack(">HH", 9999, 9999)	# SOF: height, width
open(sys.argv[2], "wb").write(b)
PY
chmod 0644 "$T/bomb.jpg" "$T/known.bin"

mkdir -p "$BK" "$M"
bench_mount "$BK" "$M" "$T/daemon.log" "allow_other${BENCH_OPTS:+,$BENCH_OPTS}" || exit 1
DPID=$BENCH_PID
mkdir "$M/a" "$M/v" && chown $AU:$AU "$M/a" && chown $VU:$VU "$M/v" && echo pub >"$M/pub" ||
	{ echo "50-neighbour: setup through the mount failed"; exit 1; }

cpu() { awk '{print $14 + $15}' /proc/$DPID/stat 2>/dev/null || echo 0; }
hwm() { awk '/VmHWM/ {printf "%d", $2 / 1024}' /proc/$DPID/status 2>/dev/null; }
# Wait until the daemon's CPU time stops growing (at most 300 s); prints the seconds waited.
idle() {
	local a b n=0
	a=$(cpu)
	while [ $n -lt 300 ]; do
		sleep 1
		n=$((n + 1))
		b=$(cpu)
		[ $((b - a)) -lt 5 ] && break
		a=$b
	done
	echo $n
}

# --- phases -----------------------------------------------------------------------------------
as() { local u=$1; shift; setpriv --reuid="$u" --regid="$u" --clear-groups -- "$@"; }
BASE=
FAIL=0
printf '%-12s %8s %9s %9s %9s %8s %7s %9s %7s  %s\n' phase ops/s p50_ms p99_ms max_ms x_base \
	errors rss_MiB idle_s target
phase() {	# phase NAME [PATTERN FILE]
	local name=$1 pat=${2:-} file=${3:-} out n ops p50 p99 mx err ratio met waited i
	APID=
	if [ -n "$pat" ]; then
		# setpriv execs python: $! is the attacker itself, which stops its workers.
		setpriv --reuid=$AU --regid=$AU --clear-groups -- $PY "$NB" attack "$pat" "$M/a" \
			$file 2>>"$T/attack.log" &
		APID=$!
		sleep 2
		# held: measure once the attacker holds everything it can (at most 300 s).
		for i in $(seq 3000); do
			[ "$pat" != held ] && break
			grep -q '^held ready' "$T/attack.log" && break
			sleep 0.1
		done
	fi
	out=$(as $VU $PY "$NB" victim "$M/v" "$SECS" 2>>"$T/victim.log")
	if [ -n "$APID" ]; then
		kill -TERM "$APID" 2>/dev/null
		wait "$APID" 2>/dev/null
		APID=
	fi
	waited=$(idle)
	find "$BK/a" "$BK/v" -mindepth 1 -delete 2>/dev/null
	eval "$(echo "$out" | tr ' ' '\n' | grep -E '^(n|ops_s|p50_ms|p99_ms|max_ms|err)=' |
		sed 's/^ops_s/ops/; s/^p50_ms/p50/; s/^p99_ms/p99/; s/^max_ms/mx/')"
	[ -n "${ops:-}" ] || { echo "$name: victim gave no figures: $out"; FAIL=1; return; }
	[ -n "$BASE" ] || BASE=$ops
	ratio=$(echo "scale=2; $ops / $BASE" | bc)
	met=yes
	if [ -n "$pat" ]; then
		echo "$p99 < 50" | bc | grep -q 1 || met=no
		echo "$ratio >= 0.5" | bc | grep -q 1 || met=no
		[ "$err" = 0 ] || met=no
		[ $met = yes ] || FAIL=1
	else
		met=-
	fi
	printf '%-12s %8s %9s %9s %9s %8s %7s %9s %7s  %s\n' "$name" "$ops" "$p50" "$p99" "$mx" \
		"$ratio" "$err" "$(hwm)" "$waited" "$met"
}
phase none
for p in $PATTERNS; do
	case $p in
	held) phase held held "$M/pub" ;;
	jpeg) phase jpeg jpeg "$T/bomb.jpg" ;;
	known) phase known known "$T/known.bin" ;;
	*) phase "$p" "$p" ;;
	esac
done
phase none-after
echo "attacker:"; sed 's/^/  /' "$T/attack.log"
if [ -s "$T/victim.log" ]; then
	echo "victim errors (the first few of each phase):"
	head -n 5 "$T/victim.log" | sed 's/^/  /'
fi
echo "daemon: $(grep -c 'limit uid' "$T/daemon.log") limit lines, peak RSS $(hwm) MiB"
[ $FAIL = 0 ] && echo "50-neighbour: every target met" || echo "50-neighbour: targets missed"
exit $FAIL
