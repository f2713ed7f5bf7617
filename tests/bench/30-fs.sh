#!/bin/sh
# 30-fs.sh - hashgatefs against the bare backing dir, with scanning on and off, in one run.
#
# Workloads (tests/bench/fsbench.c times each including every close and fsync):
#   write    one 1 GiB file, 1 MiB writes, fsync            -> MB/s
#   writec   the same without fsync (page cache only)        -> MB/s; shows the CPU cost of
#            the write path and of hashing, which the disk hides in `write` (not a target)
#   create   BENCH_FILES new 4 KiB files in one dir          -> files/s
#   stat     lstat of those files after dropping dentries    -> stats/s
#   readdir  20 listings of that dir                         -> entries/s
#   read     open/read/close of each of those files once, dentries warm (right after stat)
#            -> files/s; every regular-file open through hashgatefs passes the write gate
#            (fs/gate.c: the opener table; /proc/PID/status only when another process has
#            the file open, which is never the case here)
#   untar    tar -xf of a generated 5000-file, 100-dir tree  -> files/s
#   append   one descriptor, O_APPEND, 64 KiB writes growing a published file (made first,
#            untimed) to BENCH_APPEND_MIB (1024) MiB, close, no fsync -> MB/s: in-place appends
#            are hashed as they stream in
#   appendlog open(O_APPEND) / write 64 KiB / close repeated on a published file of
#            BENCH_APPENDLOG_BASE (256) MiB until BENCH_APPENDLOG_MIB (64) MiB were appended or
#            BENCH_APPENDLOG_SECS (30) passed -> appends/s: every close is a verdict on the
#            whole file; from 4 MiB on the verdict resumes the judged prefix's hash, so it
#            hashes only the appended 64 KiB (the cap keeps a daemon without that bounded)
# Variants: bare (the backing filesystem itself), on (hashgatefs scanning against a database
# holding md5, sha1 and sha256 lists: every algorithm is hashed), off (hashgatefs -o scan=off).
# All three live on the same filesystem under one scratch dir; variants are interleaved per
# workload within each round and BENCH_ROUNDS rounds are run; the table shows the median
# rate per cell and every round is printed too (on a shared machine single rounds swing by
# several times: read the per-round rows before trusting a ratio; with BENCH_HP=1 the ratio
# scan on / passthrough_hp within each round is summarised too, median and range).
# Targets (issue 5): on costs < 10% against off; write on >= 0.6x bare; create on >= 0.3x bare.
# Where: BENCH_FS=loop (the default when run as root with mkfs.ext4) puts all three on a fresh
# journalled ext4 in a loop-mounted image file, so every run starts from the same filesystem;
# BENCH_FS=dir uses the scratch dir's own filesystem.  Why: on a journal-less ext4 (this
# machine's root) ext4 skips recently deleted inodes when allocating (recently_deleted() was
# ~40% of all create time in perf after a few thousand deletions), so bare create rates there
# depend on what was deleted in the last minute and swung 3-20x between rounds.
# Knobs: BENCH_ROUNDS (3), BENCH_FILES (5000), BENCH_WRITE_MIB (1024), the append ones above,
# BENCH_ONLY="create stat ..." runs only those workloads (stat, readdir and read need create's
# files, so create also runs for them), BENCH_ROTATE=N starts the variant order rotation at
# round N+1 (for interleaving several one-round runs), BENCH_HGFS=/path/to/hashgatefs benchmarks another
# daemon binary (e.g. an older build, for before/after figures) with this script and fsbench.
# BENCH_OPTS="xattr=off,..." adds mount options to both hashgatefs variants (on and off).
# BENCH_HP=1 adds a fourth variant, hp: libfuse 3.14.0's example/passthrough_hp (the issue 20
# yardstick) on the same filesystem, built with g++ against the installed libfuse3 from the
# libfuse source tree in BENCH_HP_SRC (default /var/tmp/hashgate-bench/libfuse; get it with
# `git clone --branch fuse-3.14.0 https://github.com/libfuse/libfuse`; never in this
# repository) into BENCH_HP_BIN (default /var/tmp/hashgate-bench/passthrough_hp, rebuilt when
# the source is newer).  Built like that (without libfuse's generated fuse_config.h) it has no
# xattr operations, as in issue 20's measurement, so the kernel stops asking for
# security.capability after the first ENOSYS; -DHAVE_UTIMENSAT (which libfuse's meson build
# sets on Linux) keeps its setattr of times working, or tar's utimes fail.  It runs with its
# defaults (entry/attr timeouts of a day, the writeback cache, splice).  Targets then add:
# create and untar (scan on) >= hp.
# A target line reads "ok", "MISSED" (measured, not met) or "FAILED" (a variant it compares
# failed in some round, e.g. passthrough_hp out of file descriptors: no verdict from it).
# Exit 0 when every target is met, 1 when one is missed or a step failed.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u

B=${HASHGATE_BUILD:?HASHGATE_BUILD not set (run through make bench)}
NAME=30-fs
. "$(dirname "$0")/lib.sh"
FSB=$B/tests/bench/fsbench
ROUNDS=${BENCH_ROUNDS:-3}
FILES=${BENCH_FILES:-5000}
WRITE_MIB=${BENCH_WRITE_MIB:-1024}
APPEND_MIB=${BENCH_APPEND_MIB:-1024}
ALOG_BASE=${BENCH_APPENDLOG_BASE:-256}
ALOG_MIB=${BENCH_APPENDLOG_MIB:-64}
ALOG_SECS=${BENCH_APPENDLOG_SECS:-30}
HGFS=${BENCH_HGFS:-$B/hashgatefs}
ALL_WL="write writec create stat readdir read untar append appendlog"
ONLY=${BENCH_ONLY:-$ALL_WL}
want() { [[ " $ONLY " == *" $1 "* ]]; }
for x in "$HGFS" "$B/hashgate" "$FSB"; do
	[ -x "$x" ] || { echo "30-fs: $x is not built; skipped"; exit 0; }
done
[ -c /dev/fuse ] || { echo "30-fs: /dev/fuse missing; skipped"; exit 0; }
VARIANTS="bare on off"
HP=${BENCH_HP:-0}
if [ "$HP" = 1 ]; then
	HP_SRC=${BENCH_HP_SRC:-/var/tmp/hashgate-bench/libfuse}
	HP_BIN=${BENCH_HP_BIN:-/var/tmp/hashgate-bench/passthrough_hp}
	HP_CC=$HP_SRC/example/passthrough_hp.cc
	if [ ! -f "$HP_CC" ]; then
		echo "30-fs: BENCH_HP=1 needs libfuse 3.14.0's source in $HP_SRC (BENCH_HP_SRC):"
		echo "  git clone --branch fuse-3.14.0 https://github.com/libfuse/libfuse $HP_SRC"
		exit 1
	fi
	grep -q "version: '3.14" "$HP_SRC/meson.build" 2>/dev/null ||
		echo "30-fs: warning: $HP_SRC is not libfuse 3.14 ($(grep -m1 -o "version: '[^']*'" "$HP_SRC/meson.build" 2>/dev/null))"
	if [ ! -x "$HP_BIN" ] || [ "$HP_CC" -nt "$HP_BIN" ]; then
		echo "30-fs: building $HP_BIN from $HP_CC"
		mkdir -p "$(dirname "$HP_BIN")" &&
			g++ -O2 -std=c++17 -w -DHAVE_UTIMENSAT $(pkg-config --cflags fuse3) "$HP_CC" -o "$HP_BIN.tmp" \
				$(pkg-config --libs fuse3) -lpthread && mv "$HP_BIN.tmp" "$HP_BIN" ||
			{ echo "30-fs: building passthrough_hp failed (g++ and libfuse3-dev needed)"; exit 1; }
	fi
	VARIANTS="bare on off hp"
fi

T=$(mktemp -d /tmp/hg-bench.XXXXXX)
cleanup() {
	for v in on off hp; do bench_unmount "$T/mnt-$v"; done
	bench_stop
	mountpoint -q "$T/fs" 2>/dev/null && umount "$T/fs"
	bench_cleanup
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- database, config, mounts -----------------------------------------------------------------
bench_config || { echo "30-fs: cannot write the scratch config"; exit 1; }
FSMODE=${BENCH_FS:-}
if [ -z "$FSMODE" ]; then
	FSMODE=dir
	[ "$(id -u)" = 0 ] && command -v mkfs.ext4 >/dev/null && FSMODE=loop
fi
W=$T
if [ "$FSMODE" = loop ]; then
	W=$T/fs
	mkdir -p "$W"
	truncate -s 8G "$T/fs.img" && mkfs.ext4 -q -F "$T/fs.img" && mount -o loop "$T/fs.img" "$W" ||
		{ echo "30-fs: could not make the loop ext4 (BENCH_FS=dir avoids it)"; exit 1; }
fi
mkdir -p "$W/bare" "$W/back-on" "$W/back-off" "$T/mnt-on" "$T/mnt-off" \
	"$W/back-hp" "$T/mnt-hp"
bench_db 1000 md5 sha1 sha256 || exit 1

mount_variant() {	# mount_variant on|off|hp EXTRA_OPTS
	local v=$1
	if [ "$v" = hp ]; then
		"$HP_BIN" --foreground "$W/back-$v" "$T/mnt-$v" >"$T/daemon-$v.log" 2>&1 </dev/null &
		BENCH_PID=$!
		BENCH_PIDS="$BENCH_PIDS $BENCH_PID"
		eval "DPID_$v=$BENCH_PID"
		bench_wait_mount "$T/mnt-$v" "$T/daemon-$v.log"
	else
		bench_mount "$W/back-$v" "$T/mnt-$v" "$T/daemon-$v.log" "$2" || return 1
		eval "DPID_$v=$BENCH_PID"
	fi
}
BOPTS=${BENCH_OPTS:-}
mount_variant on "$BOPTS" || exit 1
mount_variant off "scan=off${BOPTS:+,$BOPTS}" || exit 1
[ "$HP" = 1 ] && { mount_variant hp "" || exit 1; }
dir_of() { case $1 in bare) echo "$W/bare" ;; *) echo "$T/mnt-$1" ;; esac; }

# a source tree for the untar workload: 100 dirs x 50 files, 1..16 KiB
mkdir -p "$T/src"
head -c 65536 /dev/urandom >"$T/rand"
perl -e 'open(R, "<", $ARGV[1]) or die; local $/; my $r = <R>;
	for my $d (1 .. 100) { mkdir "$ARGV[0]/d$d" or die;
		for my $f (1 .. 50) { my $n = ($d * 131 + $f * 977) % 16384 + 1;
			open(F, ">", "$ARGV[0]/d$d/f$f") or die; print F substr($r, ($d * 50 + $f) * 7 % 40000, $n);
			close(F) or die; } }' "$T/src" "$T/rand" || { echo "30-fs: tree generation failed"; exit 1; }
tar -C "$T/src" -cf "$T/tree.tar" . || exit 1
UNTAR_FILES=5000

# --- runs --------------------------------------------------------------------------------------
RES=$T/results		# lines: WORKLOAD VARIANT RATE ROUND
: >"$RES"
record() { echo "$1 $2 $3 ${ROUND:-0}" >>"$RES"; }	# the round: 4th field
# CPU time (utime + stime, in clock ticks) the daemon of variant on/off has used so far: the
# daemon's share of a workload, which other load on the machine disturbs far less than wall
# clock does.
dcpu() { local p; eval "p=\${DPID_$1:-}"; [ -n "$p" ] && awk '{ print $14 + $15 }' "/proc/$p/stat"; }
CPURES=$T/cpu		# lines: WORKLOAD VARIANT DAEMON-CPU-SECONDS-PER-UNIT-OF-WORK
: >"$CPURES"
HZ=$(getconf CLK_TCK)
fail=0

# measure WORKLOAD VARIANT CMD...: CMD prints "SECONDS COUNT"; records COUNT/SECONDS (x SCALE)
measure() {
	local w=$1 v=$2 out secs n
	shift 2
	local c0 c1
	c0=$(dcpu "$v")
	if ! out=$("$@"); then
		echo "  $w ($v) failed: $*"
		fail=1
		return
	fi
	c1=$(dcpu "$v")
	read -r secs n <<<"$out"
	[ -n "$c0" ] && [ -n "$c1" ] && echo "$w $v $(awk -v a="$c0" -v b="$c1" -v n="$n" \
		-v s="${SCALE:-1}" -v hz="$HZ" 'BEGIN { printf "%.3f", (b - a) / hz * 1e6 / (n * s) }')" \
		>>"$CPURES"
	record "$w" "$v" "$(awk -v t="$secs" -v n="$n" -v s="${SCALE:-1}" \
		'BEGIN { printf "%.1f", (t > 0 ? n * s / t : 0) }')"
}
untar() {	# untar DIR: prints "SECONDS FILES"
	local t0 t1
	t0=$(date +%s.%N)
	tar -C "$1" -xf "$T/tree.tar" || return 1
	t1=$(date +%s.%N)
	echo "$(echo "$t1 - $t0" | bc) $UNTAR_FILES"
}

# One round: each workload runs on every variant back to back (order rotated per round), so
# the variants of one workload see the same background load as far as possible.
run_round() {
	local v d
	for v in $1; do
		d=$(dir_of "$v")
		rm -rf "$d/w" && mkdir -p "$d/w/c" "$d/w/x" || { fail=1; return; }
	done
	for w in write writec; do
		want "$w" || continue
		for v in $1; do
			d=$(dir_of "$v")
			sync
			SCALE=0.000001 measure "$w" "$v" "$FSB" "$w" "$d/w/big" "$WRITE_MIB"
			rm -f "$d/w/big"
		done
	done
	if want create || want stat || want readdir || want read; then
		for v in $1; do
			sync
			measure create "$v" "$FSB" create "$(dir_of "$v")/w/c" "$FILES" 4096
		done
		sync
		echo 2 >/proc/sys/vm/drop_caches
		want stat &&
			for v in $1; do measure stat "$v" "$FSB" stat "$(dir_of "$v")/w/c" "$FILES"; done
		want readdir &&
			for v in $1; do measure readdir "$v" "$FSB" readdir "$(dir_of "$v")/w/c" 20; done
		want read &&
			for v in $1; do measure read "$v" "$FSB" read "$(dir_of "$v")/w/c" "$FILES"; done
	fi
	want untar &&
		for v in $1; do
			sync
			measure untar "$v" untar "$(dir_of "$v")/w/x"
		done
	want append &&
		for v in $1; do
			d=$(dir_of "$v")
			sync
			SCALE=0.000001 measure append "$v" "$FSB" append "$d/w/app" "$APPEND_MIB"
			rm -f "$d/w/app"
		done
	want appendlog &&
		for v in $1; do
			d=$(dir_of "$v")
			sync
			measure appendlog "$v" "$FSB" appendlog "$d/w/alog" "$ALOG_BASE" "$ALOG_MIB" \
				"$ALOG_SECS"
			rm -f "$d/w/alog"
		done
	for v in $1; do rm -rf "$(dir_of "$v")/w"; done
}

echo "hashgatefs benchmark ($HGFS): $ROUNDS rounds, ${WRITE_MIB} MiB write, $FILES x 4 KiB" \
	"files, untar of $UNTAR_FILES files, ${APPEND_MIB} MiB append, appendlog ${ALOG_BASE}+${ALOG_MIB}" \
	"MiB (<= ${ALOG_SECS}s); backing on $(df -T "$W" | awk 'NR==2{print $2" "$1}')" \
	"(BENCH_FS=$FSMODE)${BOPTS:+; hashgatefs options $BOPTS}"
# Round r runs the variants rotated right by r - 1 (+ BENCH_ROTATE): bare on off, off bare on...
rotate() {	# rotate N: VARIANTS rotated right by N
	local a=($VARIANTS) n i out=
	n=${#a[@]}
	for i in $(seq 0 $((n - 1))); do out="$out ${a[$(( (i - $1 % n + n) % n ))]}"; done
	echo $out
}
for r in $(seq "$ROUNDS"); do
	ROUND=$r
	run_round "$(rotate $(( r - 1 + ${BENCH_ROTATE:-0} )))"
	echo "  round $r done"
done

# --- table -------------------------------------------------------------------------------------
median() {	# median WORKLOAD VARIANT over the rounds
	awk -v w="$1" -v v="$2" '$1 == w && $2 == v { print $3 }' "$RES" | sort -g |
		awk '{ a[NR] = $1 } END { if (NR == 0) print "0.0"; else if (NR % 2) print a[(NR + 1) / 2];
			else printf "%.1f\n", (a[NR / 2] + a[NR / 2 + 1]) / 2 }'
}
unit() { case $1 in write|writec|append) echo "MB/s" ;; create|untar|read) echo "files/s" ;;
	stat) echo "stats/s" ;; readdir) echo "entries/s" ;; appendlog) echo "appends/s" ;; esac; }
RAN=$(for w in $ALL_WL; do grep -q "^$w " "$RES" && echo "$w"; done)
if [ "$HP" = 1 ]; then
	printf '\n%-9s %-10s %12s %12s %12s %12s %9s %9s %10s %9s\n' workload unit bare scan-off \
		scan-on hp off/bare on/bare on-vs-off on/hp
else
	printf '\n%-9s %-10s %12s %12s %12s %9s %9s %10s\n' workload unit bare scan-off scan-on \
		off/bare on/bare on-vs-off
fi
for w in $RAN; do
	b=$(median "$w" bare) on=$(median "$w" on) off=$(median "$w" off) hp=$(median "$w" hp)
	ratios="$(awk -v a="$off" -v b="$b" 'BEGIN{printf "x%.2f", (b > 0 ? a / b : 0)}') \
$(awk -v a="$on" -v b="$b" 'BEGIN{printf "x%.2f", (b > 0 ? a / b : 0)}') \
$(awk -v a="$on" -v b="$off" 'BEGIN{printf "%+.1f%%", (a > 0 ? (b / a - 1) * 100 : 0)}')"
	if [ "$HP" = 1 ]; then
		printf '%-9s %-10s %12s %12s %12s %12s %9s %9s %10s %9s\n' "$w" "$(unit "$w")" "$b" \
			"$off" "$on" "$hp" $ratios \
			"$(awk -v a="$on" -v b="$hp" 'BEGIN{printf "x%.2f", (b > 0 ? a / b : 0)}')"
	else
		printf '%-9s %-10s %12s %12s %12s %9s %9s %10s\n' "$w" "$(unit "$w")" "$b" "$off" \
			"$on" $ratios
	fi
	eval "B_$w=$b ON_$w=$on OFF_$w=$off HP_$w=$hp"
done
echo "(median rate of $ROUNDS rounds per cell; on-vs-off = extra time scanning costs against scan=off)"
echo "per-round rates:"
for w in $RAN; do
	printf '  %-9s' "$w"
	for v in bare off on $([ "$HP" = 1 ] && echo hp); do
		printf ' %s=[%s]' "$v" "$(awk -v w="$w" -v v="$v" '$1 == w && $2 == v { printf "%s%s", s, $3; s = " " }' "$RES")"
	done
	echo
done
if [ "$HP" = 1 ]; then
	# The variants of a workload run back to back in each round, so the ratio within a round
	# sees one state of the machine; on a VM whose speed swings between rounds its spread says
	# more than the ratio of two medians taken from different rounds.  Information only: the
	# targets below stay on the medians.
	echo "scan on / passthrough_hp within each round (rounds whose two runs both have a rate):"
	for w in $RAN; do
		awk -v w="$w" '$1 == w && $2 == "on" { on[$4] = $3 } $1 == w && $2 == "hp" { hp[$4] = $3 }
			END { k = 0; for (i in on) if ((i in hp) && on[i] > 0 && hp[i] > 0) r[++k] = on[i] / hp[i]
				if (!k) exit
				for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (r[j] < r[i]) { t = r[i]; r[i] = r[j]; r[j] = t }
				printf "  %-9s median x%.2f, range x%.2f-x%.2f over %d rounds\n", w,
					(k % 2 ? r[(k + 1) / 2] : (r[k / 2] + r[k / 2 + 1]) / 2), r[1], r[k], k }' "$RES"
	done
fi

echo "daemon CPU (user+system in ${HZ} Hz ticks, median of rounds) per unit of work, and what"
echo "scanning adds (robust against other load; coarse for the short stat/readdir runs):"
for w in $RAN; do
	c_on=$(RES=$CPURES median "$w" on)
	c_off=$(RES=$CPURES median "$w" off)
	c_hp=$(RES=$CPURES median "$w" hp)
	case $w in write|writec|append) u="us/MB" ;; create|untar|read) u="us/file" ;;
		stat) u="us/stat" ;; readdir) u="us/entry" ;; appendlog) u="us/append" ;; esac
	printf '  %-9s off %10s  on %10s %-12s  on-vs-off %s\n' "$w" "${c_off:-?}" "${c_on:-?}" "$u" \
		"$(awk -v a="${c_on:-0}" -v b="${c_off:-0}" 'BEGIN { if (b > 0) printf "%+.0f%%", (a / b - 1) * 100; else print "?" }')$([ "$HP" = 1 ] && echo "  hp ${c_hp:-?}")"
done

# --- targets -----------------------------------------------------------------------------------
for w in $ALL_WL; do	# a workload with no rate at all was not in the table
	eval "B_$w=\${B_$w:-0} ON_$w=\${ON_$w:-0} OFF_$w=\${OFF_$w:-0} HP_$w=\${HP_$w:-0}"
done
# A target is judged only on variants that ran in every round: a failed round leaves no rate,
# and a median of missing rates (0.0) would make "on >= hp" hold.  Such a target is FAILED.
rounds_ok() {	# rounds_ok WORKLOAD VARIANT: the rounds with a rate
	awk -v w="$1" -v v="$2" '$1 == w && $2 == v { n++ } END { print n + 0 }' "$RES"
}
check() {	# check WORKLOAD "VARIANTS" DESC AWK-CONDITION
	local v n bad=
	for v in $2; do
		n=$(rounds_ok "$1" "$v")
		[ "$n" -lt "$ROUNDS" ] && bad="$bad $v failed in $((ROUNDS - n)) of $ROUNDS rounds;"
	done
	if [ -n "$bad" ]; then
		echo "  FAILED  $3:${bad%;}"
		fail=1
	elif awk "BEGIN { exit !($4) }"; then
		echo "  ok      $3"
	else
		echo "  MISSED  $3"
		fail=1
	fi
}
echo
echo "targets:"
for w in write create stat readdir untar; do
	want "$w" || continue
	eval "on=\$ON_$w off=\$OFF_$w"
	check "$w" "on off" "$w: scanning costs < 10% against scan=off ($(awk -v a="$on" -v b="$off" \
		'BEGIN{printf "%+.1f%%", (a > 0 ? (b / a - 1) * 100 : 0)}'))" "$on > 0 && $off / $on < 1.10"
done
want write && check write "on bare" "write (scan on) >= 0.6x bare ($(awk -v a="$ON_write" -v b="$B_write" 'BEGIN{printf "x%.2f", (b > 0 ? a / b : 0)}'))" \
	"$ON_write >= 0.6 * $B_write"
want create && check create "on bare" "create (scan on) >= 0.3x bare ($(awk -v a="$ON_create" -v b="$B_create" 'BEGIN{printf "x%.2f", (b > 0 ? a / b : 0)}'))" \
	"$ON_create >= 0.3 * $B_create"
if [ "$HP" = 1 ]; then
	for w in create untar; do
		want "$w" || continue
		eval "on=\$ON_$w hp=\$HP_$w"
		check "$w" "on hp" "$w (scan on) >= passthrough_hp ($(awk -v a="$on" -v b="$hp" \
			'BEGIN{printf "x%.2f", (b > 0 ? a / b : 0)}'))" "$on >= $hp"
	done
fi
exit $fail
