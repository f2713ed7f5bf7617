#!/bin/bash
# 82-enospc.sh - a full backing file system and a full or unwritable quarantine store:
#  - an upload that does not fit fails (close or write reports ENOSPC), nothing appears under its
#    name, an existing file of that name keeps its old content, the space is given back;
#  - reads of existing files keep working while the disk is full; uploads work again once
#    space is freed;
#  - a known upload while the quarantine store is full or unwritable is still refused and kept
#    out of the backing dir (fail closed), the error is logged, and the store stays consistent.
# The backing dir is a small ext4 image on a loop device (tmpfs when loop devices are missing),
# or with HG_BACKING_FS a small one of that type (sshfs: served from a small ext4 image).
. "$(dirname "$0")/lib.sh"
hg_setup
M=$HG_MNT B=$HG_BACK W=$HG_TMP/w
SMALLQ=$HG_TMP/qsmall

cleanup_82() {
	hg_umount >/dev/null 2>&1
	umount "$SMALLQ" 2>/dev/null
	umount "$B" 2>/dev/null || umount -l "$B" 2>/dev/null
	[ -n "${LOOPDEV:-}" ] && losetup -d "$LOOPDEV" 2>/dev/null
	hg_cleanup	# and hg_backing_release: HG_BACKING_FS mounts
}
trap cleanup_82 EXIT

FSTYPE=
if [ -n "${HG_BACKING_FS:-}" ]; then
	# the suite's backing type, as small as it can be made (XFS: 300 MiB at least)
	hg_backing_release
	case $HG_BACKING_FS in xfs) size=300 ;; btrfs) size=128 ;; *) size=48 ;; esac
	hg_backing_mount "$HG_BACKING_FS" "$B" "$size" ||
		bail "cannot mount a $size MiB $HG_BACKING_FS backing dir"
	FSTYPE="$size MiB $HG_BACKING_FS"
elif command -v mkfs.ext4 >/dev/null && truncate -s 48M "$HG_TMP/back.img" &&
	mkfs.ext4 -q -F -m 0 -b 4096 "$HG_TMP/back.img" >/dev/null 2>&1 &&
	LOOPDEV=$(losetup -f --show "$HG_TMP/back.img" 2>/dev/null) &&
	mount -t ext4 "$LOOPDEV" "$B" 2>/dev/null; then
	FSTYPE="48 MiB ext4"
elif mount -t tmpfs -o size=48m,mode=0755 tmpfs "$B"; then
	FSTYPE="48 MiB tmpfs"
	LOOPDEV=
else
	skip_all "cannot mount a small file system for the backing dir"
fi
chmod 0755 "$B"
diag "backing dir: $FSTYPE"

free_kb() { df -k --output=avail "$B" | tail -n1 | tr -d ' '; }

hg_mount || bail "mount failed"
hg_random "$W/keep" 200000
ok "an existing file is uploaded" cp "$W/keep" "$M/keep"
hg_random "$W/ro" 150000
ok "a second one, only ever read below" cp "$W/ro" "$M/ro"
hg_random "$W/small" 4096
# Fill the disk (directly in the backing dir) until ~1 MiB is left.
fill=$(( $(free_kb) - 1024 ))
ok "filled the backing fs to ~1 MiB free" \
	dd if=/dev/zero of="$B/filler" bs=1k count="$fill" status=none
sync
before=$(free_kb)
diag "free before the failing uploads: ${before} KiB"

hg_random "$W/big" $((3 * 1024 * 1024))
nok "a 3 MiB upload to a disk with 1 MiB free fails" cp "$W/big" "$M/big"
ok "nothing under its name in the backing dir" test ! -e "$B/big"
ok "and nothing under its name through the mount" test ! -e "$M/big"
nok "dd with odd blocks fails the same way" dd if="$W/big" of="$M/big2" bs=12345 status=none
ok "nothing under that name either" test ! -e "$B/big2"
nok "overwriting an existing file with too much data fails" cp "$W/big" "$M/keep"
ok "the existing file keeps its old content (backing dir)" cmp "$W/keep" "$B/keep"
ok "the existing file keeps its old content (through the mount)" cmp "$W/keep" "$M/keep"
ok "reads keep working on a full disk" cmp "$W/ro" "$M/ro"
sync
after=$(free_kb)
ok "the space of the failed uploads is given back (free ${before} -> ${after} KiB)" \
	test "$after" -ge $((before - 64))
is "$(find "$B/.hashgate-staging" -mindepth 1 2>/dev/null | wc -l)" 0 "no leftovers in the staging area"
# Exactly full: even a small upload cannot be staged.
dd if=/dev/zero of="$B/filler2" bs=4k status=none 2>/dev/null
nok "with the disk completely full a 4 KiB upload fails" cp "$W/small" "$M/small"
ok "and leaves no name behind" test ! -e "$B/small"
ok "the daemon is alive" kill -0 "$HG_PID"
ok "reads still work" cmp "$W/ro" "$M/ro"
rm -f "$B/filler" "$B/filler2"
sync
ok "after freeing space a 3 MiB upload succeeds" cp "$W/big" "$M/big"
ok "and is intact" cmp "$W/big" "$B/big"
hg_umount

# --- quarantine store full: the match must still not be published ---------------------------
mkdir -p "$SMALLQ"
if mount -t tmpfs -o size=1m,mode=0700 tmpfs "$SMALLQ"; then
	HG_QDIR=$SMALLQ
	hg_mount || bail "mount with a 1 MiB quarantine store failed"
	lines=$(wc -l <"$HG_LOG")
	nok "known 3 MiB upload with a 1 MiB quarantine store is refused" cp "$HG_K_BIG" "$M/kq"
	ok "not in the backing dir" test ! -e "$B/kq"
	ok "its bytes are nowhere in the backing dir" hg_content_absent "$HG_K_BIG"
	ok "the failure to store is logged" bash -c "tail -n +$((lines + 1)) '$HG_LOG' | grep -qi 'quarantine'"
	ok "no temporary files left in the store" \
		test "$(find "$SMALLQ/objects" -name '.tmp-*' 2>/dev/null | wc -l)" = 0
	nstored=$(sqlite3 -readonly "$SMALLQ/records.db" "SELECT count(*) FROM records WHERE stored=1" 2>&1)
	nobj=$(find "$SMALLQ/objects" -type f 2>/dev/null | wc -l)
	is "$nobj" "$nstored" "records that say stored match the objects present"
	ok "a record of the match exists even though its content did not fit" hg_quarantined kq
	nok "a small known upload is refused too" cp "$HG_K_SHA1" "$M/kq2"
	ok "not in the backing dir" test ! -e "$B/kq2"
	hg_umount
	umount "$SMALLQ"
	HG_QDIR=$HG_TMP/quarantine
else
	skip "tmpfs for the quarantine store could not be mounted"
fi

# --- quarantine store unwritable (immutable) when the daemon starts --------------------------
# A daemon holds its store's descriptors open, so the store is made unwritable between mounts.
hg_mount || bail "remount failed"
ok "a first known upload creates the store" bash -c "! cp '$HG_K_SHA1' '$M/kr0'"
hg_umount
if chattr +i "$HG_QDIR/objects" "$HG_QDIR" 2>/dev/null; then
	lines=$(wc -l <"$HG_LOG")
	if hg_mount; then
		nok "quarantine store immutable: a known upload is refused" cp "$HG_K_MD5" "$M/kr"
		ok "not in the backing dir" test ! -e "$B/kr"
		ok "its bytes are nowhere in the backing dir" hg_content_absent "$HG_K_MD5"
		ok "the store failure is logged" \
			bash -c "tail -n +$((lines + 1)) '$HG_LOG' | grep -Eqi 'quarantine.*(fail|error|denied|permitted)|(fail|error).*quarantine'"
		hg_random "$W/c3" 5000
		ok "clean uploads still pass" cp "$W/c3" "$M/c3"
		ok "and are published" cmp "$W/c3" "$B/c3"
		hg_umount
	else
		hg_result 1 "quarantine store immutable: the daemon refuses to start"
		ok "... and says which directory" bash -c "tail -n +$((lines + 1)) '$HG_LOG' | grep -qF '$HG_QDIR'"
	fi
	chattr -i "$HG_QDIR/objects" "$HG_QDIR"
else
	skip "chattr +i is not supported on $HG_TMP"
fi
done_testing
