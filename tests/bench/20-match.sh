#!/bin/sh
# 20-match.sh - hash database and matcher figures at 1M and 10M generated hashes: import rate
# of 10M lines through `hashgate db import`, matcher load time and memory per hash, exact
# lookups/s, and ms per 8-variant PDQ query for each popcount kernel (scalar is the baseline
# measured in the same run).  Hashes are random, never real.  Takes about two minutes and
# ~2.5 GB of /tmp.  Targets: exact ~1 us at 10M, PDQ <= ~1.3 ms at 1M, <= ~40 bytes/hash,
# 10M-line import well under a minute.
set -eu
B=$HASHGATE_BUILD/tests/bench/bench-match
H=$HASHGATE_BUILD/hashgate
[ -x "$B" ] && [ -x "$H" ] || { echo "20-match: build first (bench-match, hashgate)"; exit 1; }
T=$(mktemp -d /tmp/hg-bench-match.XXXXXX)
trap 'rm -rf "$T"' EXIT
printf 'audit_log = %s/audit.log\n' "$T" >"$T/hashgate.conf"
export HASHGATE_CONFIG=$T/hashgate.conf	# audit records go to the scratch dir

now() { date +%s.%N; }
secs() { echo "$1 $2" | awk '{ printf "%.1f", $2 - $1 }'; }

# import N lines of TYPE (seed S) into DB as list L; prints "WALL s wall, CPU s CPU"
import() {
	"$B" gen "$1" "$2" "$3" >"$T/lines"
	t0=$(now)
	if [ -x /usr/bin/time ]; then
		/usr/bin/time -f '%U %S' -o "$T/cpu" "$H" --db "$4" db import --list "$5" --type "$2" \
			"$T/lines" >/dev/null
	else
		"$H" --db "$4" db import --list "$5" --type "$2" "$T/lines" >/dev/null
		echo "? ?" >"$T/cpu"
	fi
	t1=$(now)
	rm -f "$T/lines"
	printf '%s s wall, %s s CPU' "$(secs "$t0" "$t1")" "$(awk '{ print $1 + $2 }' "$T/cpu")"
}

echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg) on $(nproc) CPUs (wall times include waiting for them)"
echo "--- 1M sha256 + 1M PDQ"
"$H" --db "$T/1m.db" db init >/dev/null
import 1000000 sha256 1 "$T/1m.db" s >/dev/null
import 1000000 pdq 2 "$T/1m.db" p >/dev/null
"$B" run "$T/1m.db" 1 2 300 | tee "$T/1m.out"
rm -f "$T/1m.db"*

echo "--- 10M sha256 + 10M PDQ"
"$H" --db "$T/10m.db" db init >/dev/null
s=$(import 10000000 sha256 11 "$T/10m.db" s)
echo "import of 10M sha256 lines: $s ($(echo "$s" | awk '{ printf "%.0f", 10000000 / $1 }') lines/s)"
s=$(import 10000000 pdq 12 "$T/10m.db" p)
echo "import of 10M PDQ lines into the same database: $s"
echo "database file: $(du -m "$T/10m.db" | cut -f1) MB"
"$B" run "$T/10m.db" 11 12 30 | tee "$T/10m.out"

# scaling of the vector kernel from 1M to 10M
a=$(sed -n 's/^pdq kernel avx512: .*(\([0-9.]*\) ms CPU).*/\1/p' "$T/1m.out")
b=$(sed -n 's/^pdq kernel avx512: .*(\([0-9.]*\) ms CPU).*/\1/p' "$T/10m.out")
[ -n "$a" ] && [ -n "$b" ] &&
	echo "avx512 PDQ scan 10M/1M CPU time ratio: $(echo "$a $b" | awk '{ printf "%.1f", $2 / $1 }') (linear = 10)"
exit 0
