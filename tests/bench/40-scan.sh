#!/bin/sh
# 40-scan.sh - `hashgate scan` against `find -type f -print0 | xargs -0 -P N md5sum` in one run.
#
# Tree (tests/bench/mktree): BENCH_SCAN_SMALL files of BENCH_SCAN_SMALL_SIZE bytes (default
# 100000 x 4 KiB) in directories of 1000, and BENCH_SCAN_LARGE files of BENCH_SCAN_LARGE_MIB
# (default 4 x 256 MiB), plus one planted "known" file that must be reported.  Caches cannot
# be dropped here, so every file is read once before timing and both tools run warm.
# Workloads: small (the small-file tree: files/s), large (the large files: MB/s), all (the
# whole tree).  Variants per workload, interleaved and alternated in order each round:
#   md5sum    the baseline, N = number of CPUs (-P N)
#   scan      hashgate scan --jobs N --no-record: MD5 + SHA-1 + SHA-256 (+ PDQ for JPEGs)
# BENCH_ROUNDS rounds (default 3); the best wall time per cell is reported (the machine is
# shared, so the best run is the least disturbed), with user+sys CPU seconds of that run.
# Also, once: a first scan that records into a fresh scan db and a rescan that reuses it.
# Target (issue 6): scan at least as fast as md5sum (ratio >= 1.0) for every workload.
# Exit 0 when every target is met, 1 when one is missed or a step failed.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u

B=${HASHGATE_BUILD:?HASHGATE_BUILD not set (run through make bench)}
HG=$B/hashgate
MKTREE=$B/tests/bench/mktree
ROUNDS=${BENCH_ROUNDS:-3}
NSMALL=${BENCH_SCAN_SMALL:-100000}
SSIZE=${BENCH_SCAN_SMALL_SIZE:-4096}
NLARGE=${BENCH_SCAN_LARGE:-4}
LMIB=${BENCH_SCAN_LARGE_MIB:-256}
N=$(nproc)
for x in "$HG" "$MKTREE"; do
	[ -x "$x" ] || { echo "40-scan: $x is not built; skipped"; exit 0; }
done

T=$(mktemp -d /tmp/hg-bench-scan.XXXXXX)
trap 'rm -rf "$T"' EXIT
trap 'exit 130' INT TERM
cat >"$T/conf" <<EOF
db = $T/hashes.db
scan_db = $T/scan.db
quarantine = $T/q
quarantine_key = $T/key
audit_log = $T/audit.log
state_dir = $T/state
EOF
C() { "$HG" --config "$T/conf" "$@"; }
calc() { awk "BEGIN { printf \"%.${2:-3}f\", $1 }"; }
cond() { awk "BEGIN { exit !($1) }"; }

echo "40-scan: generating $NSMALL x $SSIZE B + $NLARGE x $LMIB MiB under $T ..."
s0=$(date +%s.%N)
"$MKTREE" "$T/tree" "$NSMALL" "$SSIZE" "$NLARGE" $((LMIB * 1024 * 1024)) ||
	{ echo "40-scan: mktree failed"; exit 1; }
head -c 5555 /dev/urandom >"$T/tree/s/000/planted-known"
sha256sum <"$T/tree/s/000/planted-known" | cut -d' ' -f1 >"$T/list"
C db init >/dev/null && C db import --list bench --type sha256 "$T/list" >/dev/null ||
	{ echo "40-scan: database setup failed"; exit 1; }
sync
find "$T/tree" -type f -print0 | xargs -0 cat >/dev/null	# warm the page cache
s1=$(date +%s.%N)
echo "40-scan: generated in $(calc "$s1 - $s0" 1) s; $N CPUs; load: $(cut -d' ' -f1-3 /proc/loadavg)"

nsmall_files=$((NSMALL + 1))
small_bytes=$(du -sb --apparent-size "$T/tree/s" | cut -f1)
large_bytes=$(du -sb --apparent-size "$T/tree/large" | cut -f1)
all_files=$((nsmall_files + NLARGE))
all_bytes=$((small_bytes + large_bytes))

# run VARIANT DIR: prints "wall cpu" and checks the result.
TIMEFORMAT='%3R %3U %3S'
run() {
	local v=$1 dir=$2 t out
	case $v in
	md5sum)
		t=$( { time (find "$dir" -type f -print0 | xargs -0 -P "$N" md5sum >"$T/md5.out") ; } 2>&1 ) ||
			return 1
		[ "$(wc -l <"$T/md5.out")" -ge 1 ] || return 1
		;;
	scan)
		t=$( { time (C scan --no-record --json --jobs "$N" "$dir" >"$T/scan.out"; [ $? -le 1 ]) ; } 2>&1 ) ||
			return 1
		grep -q '"errors":0,' "$T/scan.out" || return 1
		;;
	esac
	set -- $t
	echo "$1 $(calc "$2 + $3")"
}

declare -A best cpu
fail=0
for r in $(seq "$ROUNDS"); do
	for w in small large all; do
		case $w in small) d=$T/tree/s ;; large) d=$T/tree/large ;; all) d=$T/tree ;; esac
		if [ $((r % 2)) = 1 ]; then order="md5sum scan"; else order="scan md5sum"; fi
		for v in $order; do
			res=$(run "$v" "$d") || { echo "40-scan: $v on $w failed"; fail=1; continue; }
			set -- $res
			k=$w.$v
			if [ -z "${best[$k]:-}" ] || cond "$1 < ${best[$k]}"; then
				best[$k]=$1
				cpu[$k]=$2
			fi
		done
	done
done
# The planted file must have been found by the scan of the whole tree.
C scan --no-record --json --jobs "$N" "$T/tree" >"$T/check.out"
grep -q '"matches":1,' "$T/check.out" && grep -q 'planted-known' "$T/check.out" ||
	{ echo "40-scan: the planted known file was not reported"; fail=1; }

# Record into a fresh scan db, then rescan (only the match runs for unchanged files).
rm -f "$T"/scan.db*
t_rec=$( { time C scan --quiet --jobs "$N" "$T/tree" >/dev/null ; } 2>&1 ); t_rec=${t_rec%% *}
t_re=$( { time C scan --json --jobs "$N" "$T/tree" >"$T/rescan.out" ; } 2>&1 ); t_re=${t_re%% *}
grep -q "\"hashed\":0," "$T/rescan.out" || { echo "40-scan: rescan re-hashed files"; fail=1; }

rate() { calc "$1 / $2" 1; }
printf '\n%-6s %-7s %9s %9s %12s %9s\n' workload variant "wall s" "CPU s" "files/s" "MB/s"
for w in small large all; do
	case $w in
	small) nf=$nsmall_files nb=$small_bytes ;;
	large) nf=$NLARGE nb=$large_bytes ;;
	all) nf=$all_files nb=$all_bytes ;;
	esac
	for v in md5sum scan; do
		k=$w.$v
		[ -n "${best[$k]:-}" ] || continue
		printf '%-6s %-7s %9s %9s %12s %9s\n' "$w" "$v" "${best[$k]}" "${cpu[$k]}" \
			"$(rate "$nf" "${best[$k]}")" "$(rate "$nb / 1000000" "${best[$k]}")"
	done
done
echo
echo "scan with recording into a fresh scan db (whole tree): $t_rec s;" \
     "rescan reusing it: $t_re s ($(rate "$all_files" "$t_re") files/s)"
echo
for w in small large all; do
	[ -n "${best[$w.md5sum]:-}" ] && [ -n "${best[$w.scan]:-}" ] || continue
	ratio=$(calc "${best[$w.md5sum]} / ${best[$w.scan]}" 2)
	cratio=$(calc "${cpu[$w.md5sum]} / ${cpu[$w.scan]}" 2)
	verdict=met
	cond "$ratio >= 1.0" || { verdict=MISSED; fail=1; }
	printf 'ratio %-5s scan/md5sum speed %5s (wall), CPU efficiency %5s  target >= 1.0: %s\n' \
		"$w" "$ratio" "$cratio" "$verdict"
done
exit $fail
