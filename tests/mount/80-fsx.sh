#!/bin/bash
# 80-fsx.sh - differential random operations: the same seeded sequence of create/write/pwrite/
# truncate/rename/link/unlink/mkdir/rmdir/chmod/fsync/mmap/... runs through a hashgatefs mount
# and in a plain reference directory; every outcome (return value, errno, data, metadata) must
# be the same, and the backing dir must end up identical to the reference.
# Random bytes never match the test database, so every upload must pass through unchanged.
#
# The first run is strict POSIX (in-flight uploads must look like ordinary files to their
# writer); the -P runs look at names only between uploads.  A failure prints the seed and the
# exact step; tests/tools/fsx -h lists the switches for narrowing it down (-X OP, -L, -v).
# Env: HASHGATE_FSX_OPS (default 20000; `make fsx-long` sets 1000000), HASHGATE_FSX_SEED (default
# random, printed), HASHGATE_FSX_CHECK (full-tree comparison interval, default 500).
. "$(dirname "$0")/lib.sh"
hg_setup
FSX=$HG_TOOLS/fsx
[ -x "$FSX" ] || bail "$FSX is not built"
# btrfs directories always have nlink 1 (the reference dir counts subdirectories): link counts
# are left out there (HG_BACKING_FS=btrfs); everything else is compared.
XOPT=
hg_backing_is btrfs && XOPT=-L
OPS=${HASHGATE_FSX_OPS:-20000}
SEED=${HASHGATE_FSX_SEED:-$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}
CHK=${HASHGATE_FSX_CHECK:-500}
REF=$HG_TMP/ref
diag "fsx seed $SEED, $OPS operations (set HASHGATE_FSX_SEED=$SEED to replay)"

# run_fsx DESC ARGS...: fsx output goes to the TAP diagnostics only on failure.
run_fsx() {
	local desc=$1 out rc
	shift
	out=$("$@" 2>&1)
	rc=$?
	hg_result "$([ $rc = 0 ] && echo 1 || echo 0)" "$desc"
	[ $rc = 0 ] || { FSX_FAILED=1; diag "command: $*" "$(printf '%s\n' "$out" | tail -n 60)"; }
	return $rc
}

# The tester itself: two plain dirs agree, and a difference behind its back is caught.
mkdir -p "$HG_TMP/p1" "$HG_TMP/p2" "$HG_TMP/p3" "$HG_TMP/p4"
run_fsx "fsx: two plain directories agree (seed $SEED, 5000 ops)" \
	"$FSX" -s "$SEED" -n 5000 -c 100 "$HG_TMP/p1" "$HG_TMP/p2"
out=$("$FSX" -s "$SEED" -n 2000 -c 1 -F 700 "$HG_TMP/p3" "$HG_TMP/p4" 2>&1)
rc=$?
is "$rc" 1 "fsx: a byte changed on one side only is reported as a divergence"
ok "fsx: the report names the seed and the step" \
	grep -q "DIVERGENCE at step 700 (seed $SEED)" <<<"$out"

FSX_FAILED=
hg_mount allow_other || bail "mount failed"
mkdir "$REF" "$HG_MNT/root" || bail "mkdir failed"
mkdir "$REF/root"
run_fsx "fsx through the mount as root: no divergence (seed $SEED, $OPS ops)" \
	"$FSX" $XOPT -s "$SEED" -n "$OPS" -c "$CHK" "$HG_MNT/root" "$REF/root"

# Upload semantics only: every descriptor is closed (the upload scanned and published) before
# any name is looked at, and a file is never open twice.  This isolates the data path (staging,
# streaming hash, rescan, publish, O_TRUNC rewrite, append reopen, mmap, copy_file_range) from
# the visibility of in-flight uploads that the strict run above also checks.
mkdir "$HG_MNT/p" "$REF/p"
run_fsx "fsx -P -1 (uploads closed before names are used): no divergence (seed $SEED, $OPS ops)" \
	"$FSX" $XOPT -P -1 -s "$SEED" -n "$OPS" -c "$CHK" "$HG_MNT/p" "$REF/p"

# The same as an unprivileged tenant: creds, permission checks and umask on the daemon side.
TU=4242
mkdir "$HG_MNT/user" "$REF/user" && chown $TU:$TU "$HG_MNT/user" "$REF/user"
SEED2=$(( (SEED + 1) % 4294967296 ))
run_fsx "fsx -P -1 as uid $TU: no divergence (seed $SEED2, $((OPS / 2)) ops)" \
	hg_as $TU $TU "$FSX" $XOPT -P -1 -s "$SEED2" -n $((OPS / 2)) -c "$CHK" "$HG_MNT/user" "$REF/user"

ok "daemon still alive after the random runs" kill -0 "$HG_PID"
hg_umount
# What landed in the backing dir is exactly the reference (staging area excluded by name).
# After a divergence the trees differ by construction, so this only means something when all
# runs agreed.
if [ -z "$FSX_FAILED" ]; then
	run_fsx "backing dir after unmount equals the reference tree" \
		"$FSX" $XOPT -C -i .hashgate-staging "$HG_BACK" "$REF"
else
	skip "backing dir vs reference: a run above diverged"
fi
is "$(find "$HG_BACK/.hashgate-staging" -mindepth 1 2>/dev/null | wc -l)" 0 \
	"no leftovers in the staging area after a clean unmount"
done_testing
