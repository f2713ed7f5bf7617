#!/bin/bash
# 21-write-ways.sh - no way of writing a known file through the mount leaves it in BACKING_DIR:
# dd with odd block sizes, two descriptors, appends over several open/close rounds,
# write-then-truncate, truncate after publishing, mmap (new and existing file), reopen-and-
# pwrite, non-sequential writes, copy_file_range (between files on the mount: the kernel
# refuses it across filesystems), rename while open, tee, mmap writes after close(), hard links
# (to an open upload, to a file rewritten in place; both names one inode), a descriptor dup'ed
# after writing.  Each case checks the known bytes are nowhere in the backing dir; the dup case
# also that another process never reads them.  Runs on every backing (make backing-check).
. "$(dirname "$0")/lib.sh"
hg_setup
FSOP=$HG_TOOLS/fsop
[ -x "$FSOP" ] || bail "helper $FSOP not built"
hg_mount || bail "mount failed"
M=$HG_MNT B=$HG_BACK W=$HG_TMP/w
K=$HG_K_SHA256			# 200013 bytes, sha256 listed
KS=$(stat -c %s "$K")

absent() { ok "$1: the known bytes are nowhere in the backing dir" hg_content_absent "$K"; }

ok "dd bs=4097 fails" hg_refused dd if="$K" of="$M/dd1" bs=4097 status=none
ok "dd bs=4097: no file under the name" test ! -e "$B/dd1"
absent "dd bs=4097"
ok "dd bs=7 fails" hg_refused dd if="$K" of="$M/dd2" bs=7 status=none
absent "dd bs=7"
ok "dd bs=1M iflag=fullblock fails" hg_refused dd if="$HG_K_BIG" of="$M/dd3" bs=1M iflag=fullblock status=none
ok "dd bs=1M: big known bytes absent" hg_content_absent "$HG_K_BIG"

ok "two descriptors: a close fails" hg_refused "$FSOP" twofd "$M/two" "$K"
absent "two descriptors"

# append rounds: the intermediate files are clean and may be published; the last is known
ok "append round 1 (clean prefix, new file) is accepted" \
	bash -c "head -c 50000 '$K' | dd of='$M/app' bs=4096 status=none"
ok "... and published" cmp -n 50000 "$K" "$B/app"
for r in 2 3; do
	ok "append round $r (clean so far) is accepted" bash -c "tail -c +$(( (r - 1) * 50000 + 1 )) '$K' |
		head -c 50000 | dd of='$M/app' oflag=append conv=notrunc bs=4096 status=none"
done
ok "the append round that completes the known file fails" \
	hg_refused bash -c "tail -c +150001 '$K' | dd of='$M/app' oflag=append conv=notrunc status=none"
absent "append in 4 open/close rounds"

ok "write + extra bytes + ftruncate back before close fails" hg_refused "$FSOP" writetrunc "$M/wt" "$K" 4099
absent "write-then-truncate"

# clean (known + junk) is published; truncating it down to the known bytes must not stay
cat "$K" "$HG_K_MD5" >"$W/kplus"
ok "known bytes + junk is a clean upload" cp "$W/kplus" "$M/tr"
truncate -s "$KS" "$M/tr"; rc=$?
ok "truncate(1) down to the known bytes reports failure" test "$rc" -ne 0
absent "truncate after publish"

ok "mmap write of a new file fails at close" hg_refused "$FSOP" mmap "$M/mm" "$K"
absent "mmap new file"
hg_random "$W/z" "$KS"
cp "$W/z" "$M/mmo"
ok "mmap write over an existing clean file fails at close" hg_refused "$FSOP" mmapover "$M/mmo" "$K"
absent "mmap over existing file"

cp "$W/z" "$M/pwo"
ok "reopen (no O_TRUNC) and pwrite over an existing file fails at close" hg_refused "$FSOP" pwriteover "$M/pwo" "$K"
absent "reopen-and-write"

ok "reverse-order 4 KiB writes fail" hg_refused "$FSOP" reverse "$M/rev" "$K" 4096
absent "non-sequential 4 KiB"
ok "reverse-order 1000-byte writes fail" hg_refused "$FSOP" reverse "$M/rev2" "$K" 1000
absent "non-sequential 1000 B"

head -c 99999 "$K" >"$W/h1"; tail -c +100000 "$K" >"$W/h2"
ok "two clean halves uploaded" bash -c "cp '$W/h1' '$M/h1' && cp '$W/h2' '$M/h2'"
ok "copy_file_range of the two halves (inside the mount) into a new file fails" \
	hg_refused "$FSOP" cfr "$M/cfr2" "$M/h1" "$M/h2"
absent "copy_file_range inside the mount"

ok "cp --reflink=auto fails" hg_refused cp --reflink=auto "$K" "$M/reflink"
absent "cp --reflink=auto"

bash -c "exec 3>'$M/ren1'; cat '$K' >&3; mv '$M/ren1' '$M/ren2'; exec 3>&-"
ok "rename while open: no file under the old name" test ! -e "$B/ren1"
absent "rename while open"

nok "tee fails" bash -c "cat '$K' | tee '$M/tee' >/dev/null"
absent "tee"

nok "shell redirection of cat into a new file reports failure" bash -c "cat '$K' >'$M/redir'"
absent "cat >"

# writes that arrive after close(): through a shared mapping kept after the descriptor closed
"$FSOP" mmapclose "$M/mmc" "$K" >/dev/null 2>&1
sleep 1
absent "mmap writes after close()"
ok "... and the daemon is still serving" bash -c "echo x >'$M/alive' && test -e '$B/alive'"

# hard links: to an upload still open, and to a published file later rewritten in place
"$FSOP" linkopen "$M/lo" "$K" "$M/lo-link" >/dev/null 2>&1
ok "hard link made while the known upload is open: no file under either name" \
	bash -c "test ! -e '$B/lo' && { test ! -e '$B/lo-link' || ! cmp -s '$K' '$B/lo-link'; }"
absent "hard link to an open upload"
cp "$W/z" "$M/hl1" && ln "$M/hl1" "$M/hl2"
ok "in-place rewrite of a hard-linked file into known content fails at close" \
	hg_refused "$FSOP" pwriteover "$M/hl1" "$K"
absent "in-place rewrite of a hard-linked file"
# The gate keeps its account of unjudged bytes per inode: both names of a hard link must be
# one inode however they are looked up.  A backing that gives a link its own inode number
# (sshfs numbers by path) cannot offer that, so there link() through the mount is refused.
cp "$W/z" "$M/hn1"
if ln "$M/hn1" "$M/hn2" 2>/dev/null; then
	sleep 1.1	# past the entry timeout: the kernel looks the second name up afresh
	is "$(stat -c %i "$M/hn2")" "$(stat -c %i "$M/hn1")" \
		"hard link through the mount: a fresh lookup of the second name finds the same inode"
else
	ok "hard link through the mount refused: only on a backing that numbers names apart" \
		hg_backing_is sshfs
fi

ok "sparse-style write (seek past a hole, then fill it) fails" hg_refused bash -c "
	dd if='$K' of='$M/sp' bs=1000 skip=100 seek=100 status=none &&
	dd if='$K' of='$M/sp' bs=1000 count=100 conv=notrunc status=none"
absent "hole then fill"

# A descriptor dup'ed after writing: the first close (by the creating process, which wrote)
# ends the upload; what is written through the copy afterwards is an in-place write, judged
# at the last close and never served before.
ok "dup after writing, clean: both parts published" bash -c "
	exec 3>'$M/dupw'; echo a >&3; exec 4>&3; exec 3>&-; echo b >&4; exec 4>&-"
is "$(cat "$B/dupw" 2>&1)" "$(printf 'a\nb')" "... the backing file holds both writes"
bash -c "exec 3>'$M/dupk'; head -c 1 '$K' >&3; exec 4>&3; exec 3>&-; tail -c +2 '$K' >&4
	cat '$M/dupk' >'$W/dupk.read' 2>/dev/null; exec 4>&-"
nok "dup after writing, the rest of a known file through the copy: another process never reads it" \
	cmp -s "$W/dupk.read" "$K"
absent "dup after writing"

# Small uploads are hashed from each write's own bytes and their verdict worked out right
# after the write that completed them (fs/hashq.c, upload_precheck): a rewrite of bytes
# already hashed, on the same descriptor before close, must still decide the verdict.
K1=$HG_K_SHA1			# 4097 bytes, sha1 listed
rewrite() {	# rewrite DST FIRST SECOND: write FIRST, then pwrite SECOND over it at 0, close
	python3 -c '
import os, sys
a = open(sys.argv[2], "rb").read()
b = open(sys.argv[3], "rb").read()
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, a)
os.pwrite(fd, b, 0)
os.close(fd)' "$@"
}
hg_random "$W/junk1" "$(stat -c %s "$K1")"
ok "junk written, then the known bytes over it before close: fails" \
	hg_refused rewrite "$M/rw1" "$W/junk1" "$K1"
ok "... and no file under the name" test ! -e "$B/rw1"
ok "the known bytes written, then junk over them before close: accepted" \
	rewrite "$M/rw2" "$K1" "$W/junk1"
ok "... and published with the junk" hg_same "$W/junk1" "$B/rw2"
ok "known bytes then junk over the second half: accepted" \
	python3 -c 'import os, sys
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, open(sys.argv[2], "rb").read()); os.pwrite(fd, b"x", 4000); os.close(fd)' \
	"$M/rw3" "$K1"
absent "rewrite before close"

done_testing
