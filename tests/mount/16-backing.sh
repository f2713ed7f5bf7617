#!/bin/bash
# 16-backing.sh - the upload guarantees on backing filesystems other than the suite's /tmp dir:
#  - XFS in a loop image with staging=named forced: clean uploads are published intact, known
#    ones refused and nowhere in the backing dir, a refused rewrite keeps the old content;
#    `hashgate status` and the start-up log name the staging mode and filesystem; while an
#    upload is in flight its bytes are in a root-only file of the staging dir and under no
#    other name; after kill -9 they are still only there, and the restart removes them;
#    whole-file copies there are reflinks (fcopy_fd, tests/unit/test-fcopy);
#  - sshfs over loopback (no O_TMPFILE): staging=auto chooses named staging by itself, and
#    clean / known uploads and a refused rewrite behave the same.
# Each part skips with its reason when its tools (mkfs.xfs, losetup, sshfs, sshd) are missing.
# The whole suite runs over any of these with HG_BACKING_FS=xfs|btrfs|sshfs (make backing-check).
. "$(dirname "$0")/lib.sh"
[ -z "${HG_BACKING_FS:-}" ] || skip_all "runs its own backing filesystems (HG_BACKING_FS set)"
hg_setup
M=$HG_MNT B=$HG_BACK W=$HG_TMP/w
C() { "$HG_CLI" --config "$HG_CONF" "$@"; }

# status_has PATTERN: `hashgate status` shows it within a few seconds (written periodically)
status_has() {
	local i out
	for i in $(seq 30); do
		out=$(C status 2>&1)
		grep -q "$1" <<<"$out" && return 0
		sleep 0.2
	done
	echo "$out"
	return 1
}

# uploads KIND: the basic guarantees on the current mount
uploads() {
	hg_random "$W/c1" 1000003
	ok "$1: a clean upload (cp) is published intact" bash -c "cp '$W/c1' '$M/c1' && cmp '$W/c1' '$B/c1'"
	ok "$1: a clean upload (dd, odd blocks) is published intact" \
		bash -c "dd if='$W/c1' of='$M/c2' bs=12347 status=none && cmp '$W/c1' '$B/c2'"
	ok "$1: a known upload is refused with EACCES" hg_refused cp "$HG_K_BIG" "$M/k1"
	ok "$1: ... nothing under its name" test ! -e "$B/k1"
	ok "$1: ... its bytes are nowhere in the backing dir" hg_content_absent "$HG_K_BIG"
	ok "$1: ... it is quarantined" hg_quarantined k1
	printf 'old\n' >"$W/old"
	cp "$W/old" "$M/doc"
	ok "$1: a known rewrite of an existing file is refused" hg_refused cp "$HG_K_SHA256" "$M/doc"
	ok "$1: ... the file keeps its old content" cmp "$W/old" "$B/doc"
	ok "$1: a clean rewrite replaces it" bash -c "cp '$W/c1' '$M/doc' && cmp '$W/c1' '$B/doc'"
	is "$(find "$B/.hashgate-staging" -maxdepth 1 -name 'up.*' 2>/dev/null | wc -l)" 0 \
		"$1: no staged file is left behind"
}

# --- XFS, staging=named forced ----------------------------------------------------------------
if ! command -v mkfs.xfs >/dev/null || ! command -v losetup >/dev/null; then
	skip "XFS: mkfs.xfs (xfsprogs) or losetup missing (make deps)"
elif ! hg_backing_mount xfs "$B" 320 >"$W/bm.out" 2>&1; then
	skip "XFS: cannot make a loop-mounted XFS here: $(cat "$W/bm.out")"
else
	chmod 0755 "$B"
	hg_mount staging=named || bail "mount on XFS failed"
	ok "XFS: the start-up log says staging is named" grep -q 'staging uploads: named' "$HG_LOG"
	ok "XFS: hashgate status names XFS and named staging" status_has 'xfs, staging named'
	uploads XFS

	# in flight, then kill -9
	{ cat "$HG_K_SHA1"; sleep 4; } | cat >"$M/inflight" 2>/dev/null &
	HG_BG_PIDS="$HG_BG_PIDS $!"
	for i in $(seq 30); do
		f=$(find "$B/.hashgate-staging" -maxdepth 1 -name 'up.*' -size +0 | head -n1)
		[ -n "$f" ] && break
		sleep 0.1
	done
	ok "XFS: an upload in flight is a named file in the staging dir" test -n "$f"
	is "$(stat -c '%a %u' "$B/.hashgate-staging")" "700 0" "XFS: ... which is root's, mode 0700"
	ok "XFS: ... and nothing is under its final name" test ! -e "$B/inflight"
	kill -9 "$HG_PID"; wait "$HG_PID" 2>/dev/null; HG_PID=
	fusermount3 -u "$M" 2>/dev/null || fusermount3 -uz "$M"
	ok "XFS: after kill -9 nothing is under the final name" test ! -e "$B/inflight"
	ok "XFS: ... and its bytes are under no name outside the staging dir" bash -c "
		for g in \$(find '$B' -path '$B/.hashgate-staging' -prune -o -type f -print); do
			cmp -s '$HG_K_SHA1' \"\$g\" && exit 1; done; exit 0"
	hg_mount staging=named || bail "restart on XFS failed"
	is "$(find "$B/.hashgate-staging" -maxdepth 1 -name 'up.*' | wc -l)" 0 \
		"XFS: the restart removed the crashed upload's staged file"
	ok "XFS: its bytes are nowhere in the backing dir now" hg_content_absent "$HG_K_SHA1"
	ok "XFS: the restarted daemon serves clean uploads" \
		bash -c "cp '$W/c1' '$M/after' && cmp '$W/c1' '$B/after'"
	hg_umount
	mkdir -p "$B/fcopy"
	if [ -x "$HG_BUILD/tests/unit/test-fcopy" ]; then
		ok "XFS: whole-file copies are reflinks (test-fcopy)" \
			env HG_FCOPY_DIR="$B/fcopy" HG_FCOPY_WANT=reflink "$HG_BUILD/tests/unit/test-fcopy"
	else
		skip "XFS: test-fcopy not built"
	fi
fi
hg_backing_release

# --- sshfs: no O_TMPFILE, chosen automatically --------------------------------------------------
if ! command -v sshfs >/dev/null; then
	skip "sshfs: not installed (make deps)"
elif ! hg_backing_mount sshfs "$B" >"$W/bm.out" 2>&1; then
	skip "sshfs: cannot mount over the test sshd: $(cat "$W/bm.out")"
else
	hg_mount || bail "mount on sshfs failed"
	ok "sshfs: staging=auto chose named staging (no O_TMPFILE)" \
		grep -q 'staging uploads: named (.* has no O_TMPFILE' "$HG_LOG"
	uploads sshfs

	# the network goes away in the middle of an upload: it fails, the old version stays
	printf 'old version\n' >"$W/v1"
	cp "$W/v1" "$M/net"
	{ head -c 300000 "$W/c1"; sleep 2; tail -c +300001 "$W/c1"; } >"$M/net" 2>"$W/net.err" &
	up=$!
	sleep 1
	sessions=$(cat /proc/"${HG_SSH_PID:-0}"/task/*/children 2>/dev/null)
	ok "sshfs: the server's session processes are found" test -n "$sessions"
	for p in $sessions; do kill -9 "$p" 2>/dev/null; done
	wait "$up"; rc=$?
	ok "sshfs: the upload whose connection died fails (exit $rc: $(head -c 200 "$W/net.err"))" \
		test "$rc" -ne 0
	hg_umount
	hg_backing_release
	ok "sshfs: the old version is intact on the server" cmp "$W/v1" "$HG_TMP/remote-backing/net"
	is "$(find "$HG_TMP/remote-backing/.hashgate-staging" -maxdepth 1 -name 'up.*' -size +0 \
		2>/dev/null | wc -l)" 1 "sshfs: the partial upload is only in the staging dir"
	if hg_backing_mount sshfs "$B" >"$W/bm.out" 2>&1 && hg_mount; then
		ok "sshfs: reconnected, the mount serves the old version" cmp "$W/v1" "$M/net"
		is "$(find "$B/.hashgate-staging" -maxdepth 1 -name 'up.*' | wc -l)" 0 \
			"sshfs: and the restart removed the partial upload"
	else
		hg_result 0 "sshfs: reconnect and remount: $(cat "$W/bm.out")"
	fi
	hg_umount
fi

done_testing
