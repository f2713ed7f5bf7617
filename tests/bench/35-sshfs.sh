#!/bin/sh
# 35-sshfs.sh - hashgatefs over an sshfs backing dir (a network filesystem without O_TMPFILE:
# uploads are staged as named files in the staging dir) beside bare sshfs, in one run.
#
# sshfs mounts a local dir over loopback from a private sshd (tests/mount/lib.sh's
# hg_sshd_start and hg_backing_mount, the same set-up as HG_BACKING_FS=sshfs).  Workloads
# (tests/bench/fsbench.c, every close and fsync timed):
#   write    one BENCH_SSHFS_WRITE_MIB (1024) MiB file, 1 MiB writes, fsync -> MB/s
#   create   BENCH_SSHFS_FILES (500) new 4 KiB files in one dir          -> files/s
# Variants: bare (the sshfs mount itself), hashgate (hashgatefs over it, scanning against a
# database with md5, sha1 and sha256 lists), BENCH_ROUNDS (3) rounds interleaved, medians shown.
# Optional: skipped with a message (exit 0) when sshfs, sshd or root is missing.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u

B=${HASHGATE_BUILD:?HASHGATE_BUILD not set (run through make bench)}
SRC=${HASHGATE_SRC:-$(cd "$(dirname "$0")/../.." && pwd)}
NAME=35-sshfs
. "$SRC/tests/bench/lib.sh"
FSB=$B/tests/bench/fsbench
ROUNDS=${BENCH_ROUNDS:-3}
FILES=${BENCH_SSHFS_FILES:-500}
MIB=${BENCH_SSHFS_WRITE_MIB:-1024}
for x in "$B/hashgatefs" "$B/hashgate" "$FSB"; do
	[ -x "$x" ] || { echo "35-sshfs: $x is not built; skipped"; exit 0; }
done
command -v sshfs >/dev/null || { echo "35-sshfs: sshfs not installed; skipped (make deps)"; exit 0; }
[ "$(id -u)" = 0 ] || { echo "35-sshfs: needs root (sshd, mounts); skipped"; exit 0; }

# lib.sh's fixture helpers want these
HG_BUILD=$B
. "$SRC/tests/mount/lib.sh"
HG_TMP=$(mktemp -d /tmp/hg-bench-sshfs.XXXXXX) || exit 1
T=$HG_TMP
chmod 0755 "$T"
HG_BACK=$T/back
cleanup() {
	bench_unmount "$T/mnt"
	bench_stop
	hg_backing_release
	for p in $HG_BG_PIDS; do kill "$p" 2>/dev/null; done
	bench_cleanup
}
trap cleanup EXIT
trap 'exit 130' INT TERM
mkdir -p "$HG_BACK" "$T/mnt"
hg_backing_mount sshfs "$HG_BACK" >"$T/sshfs.out" 2>&1 ||
	{ echo "35-sshfs: cannot mount sshfs over loopback; skipped: $(cat "$T/sshfs.out")"; exit 0; }

bench_config || { echo "35-sshfs: cannot write the scratch config"; exit 1; }
bench_db 1000 md5 sha1 sha256 || exit 1
mkdir -p "$HG_BACK/bare" "$HG_BACK/hg"
bench_mount "$HG_BACK/hg" "$T/mnt" "$T/daemon.log" || exit 1
echo "$(grep -o 'staging uploads: .*' "$T/daemon.log")"

declare -A R
run() {	# run VARIANT WORKLOAD ROUND DIR
	local out s n
	case $2 in
	write)	rm -f "$4/big"; sync; out=$("$FSB" write "$4/big" "$MIB") ;;
	create)	rm -rf "$4/c"; mkdir -p "$4/c"; sync; out=$("$FSB" create "$4/c" "$FILES" 4096) ;;
	esac || { echo "35-sshfs: fsbench $2 in $4 failed: $out"; return 1; }
	read -r s n <<<"$out"
	case $2 in
	write)	R[$1,$2,$3]=$(awk -v s="$s" -v n="$n" 'BEGIN { printf "%.1f", n / s / 1e6 }') ;;
	create)	R[$1,$2,$3]=$(awk -v s="$s" -v n="$n" 'BEGIN { printf "%.0f", n / s }') ;;
	esac
	echo "  round $3 $2 $1: ${R[$1,$2,$3]}"
}
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }

echo "--- sshfs over loopback: bare sshfs vs hashgatefs on it (machine load: $(cut -d' ' -f1-3 /proc/loadavg))"
echo "    command: fsbench write FILE $MIB; fsbench create DIR $FILES 4096 (BENCH_ROUNDS=$ROUNDS)"
rc=0
for r in $(seq "$ROUNDS"); do
	for wl in write create; do
		if [ $((r % 2)) = 1 ]; then
			run bare "$wl" "$r" "$HG_BACK/bare" && run hashgate "$wl" "$r" "$T/mnt" || rc=1
		else
			run hashgate "$wl" "$r" "$T/mnt" && run bare "$wl" "$r" "$HG_BACK/bare" || rc=1
		fi
	done
done
printf '%-8s %14s %14s %7s\n' workload "bare sshfs" "hashgate" ratio
for wl in write create; do
	b=$(median $(for r in $(seq "$ROUNDS"); do echo "${R[bare,$wl,$r]:-0}"; done))
	h=$(median $(for r in $(seq "$ROUNDS"); do echo "${R[hashgate,$wl,$r]:-0}"; done))
	u=files/s; [ "$wl" = write ] && u=MB/s
	printf '%-8s %9s %-4s %9s %-4s %7s\n' "$wl" "$b" "$u" "$h" "$u" \
		"$(awk -v a="$h" -v b="$b" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')"
done
exit $rc
