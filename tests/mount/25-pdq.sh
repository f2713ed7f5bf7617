#!/bin/bash
# 25-pdq.sh - a known picture is caught by PDQ even when its bytes differ: the database holds
# the PDQ of a generated JPEG (tests/tools/mkjpeg); uploads of the byte-identical file, a
# re-encode at another quality, a half-size resize and a mirror image are all refused and
# quarantined, and so are copies of the re-encode with damage libjpeg (and the reference)
# only warns about: a junk byte after SOI or before DQT, a bad marker segment before EOI,
# and the picture saved as PNG;
# `hashgate scan` finds the same copies and reports an undecodable "JPEG" as an error; an
# unrelated generated JPEG and pdq=off behave as clean.  An allowlisted PDQ clears PDQ hits
# only (a listed SHA-256 of the same picture is still refused); an allowlisted MD5 all, also
# when no list holds MD5.
. "$(dirname "$0")/lib.sh"
hg_setup
XF=$HG_TOOLS/jpegxf
[ -x "$XF" ] || bail "helper $XF not built"
[ -n "$HG_K_JPEG" ] || bail "no known JPEG: mkjpeg, 'hashgate hash --json' (pdq) or 'db import --type pdq' failed"
hg_mount || bail "mount failed"
M=$HG_MNT B=$HG_BACK W=$HG_TMP/w
KP=$(cat "$HG_TMP/known/l-pdq")

"$XF" "$HG_K_JPEG" "$W/q60.jpg" reencode 60
"$XF" "$HG_K_JPEG" "$W/half.jpg" scale 1 2 85
"$XF" "$HG_K_JPEG" "$W/mirror.jpg" mirror
"$XF" "$HG_K_JPEG" "$W/as.png" png
"$HG_TOOLS/mkjpeg" "$W/other.jpg" 640 480 12345 --quality 90

dist() {	# Hamming distance between the listed PDQ and FILE's
	local h
	h=$(hg_pdq "$1")
	[ -n "$h" ] || { echo 999; return; }
	python3 -c "print(bin(int('$KP',16)^int('$h',16)).count('1'))" 2>/dev/null ||
		perl -e 'my($a,$b)=@ARGV;my$d=0;for(0..63){my$x=hex(substr($a,$_,1))^hex(substr($b,$_,1));$d+=unpack("%32b*",pack("C",$x))}print"$d\n"' "$KP" "$h"
}
# Damaged-but-decodable copies of the re-encode (issue 16, A, B, D).
python3 - "$W/q60.jpg" "$W" <<'PY' || bail "could not make the damaged copies"
import sys
d = open(sys.argv[1], "rb").read()
dqt = d.index(b"\xff\xdb")
open(sys.argv[2] + "/junk-soi.jpg", "wb").write(d[:2] + b"\x00" + d[2:])
open(sys.argv[2] + "/junk-dqt.jpg", "wb").write(d[:dqt] + b"\x00" + d[dqt:])
open(sys.argv[2] + "/bad-marker.jpg", "wb").write(d[:-2] + b"\xff\xc4\x00\x03\x1f" + d[-2:])
PY
printf '\377\330\377\340garbage' >"$W/broken.jpg"
for f in q60 half; do
	d=$(dist "$W/$f.jpg")
	ok "$f.jpg is a near-duplicate by PDQ (distance $d <= 31) but not byte-identical" \
		bash -c "[ $d -le 31 ] && ! cmp -s '$W/$f.jpg' '$HG_K_JPEG'"
done
d=$(dist "$W/other.jpg")
ok "an unrelated generated JPEG is far away (distance $d > 31)" test "$d" -gt 31

for f in "$HG_K_JPEG:identical.jpg" "$W/q60.jpg:q60.jpg" "$W/half.jpg:half.jpg" \
	"$W/mirror.jpg:mirror.jpg" "$W/junk-soi.jpg:junk-soi.jpg" "$W/junk-dqt.jpg:junk-dqt.jpg" \
	"$W/bad-marker.jpg:bad-marker.jpg" "$W/as.png:as.png"; do
	src=${f%%:*} n=${f##*:}
	ok "upload of the known picture ($n) fails" hg_refused cp "$src" "$M/$n"
	ok "no $n in the backing dir" test ! -e "$B/$n"
	ok "$n bytes nowhere in the backing dir" hg_content_absent "$src"
	ok "$n is quarantined" hg_quarantined "$n"
done
is "$(sqlite3 -readonly "$HG_QDIR/records.db" "SELECT algo FROM records WHERE path IN ('q60.jpg','/q60.jpg')" 2>&1)" \
	pdq "the record says PDQ matched for the re-encode"

ok "an unrelated JPEG is published" cp "$W/other.jpg" "$M/other.jpg"
ok "identical in the backing dir" cmp "$W/other.jpg" "$B/other.jpg"
ok "a known JPEG written in odd-sized chunks (dd bs=999) fails" hg_refused dd if="$W/q60.jpg" of="$M/dd.jpg" bs=999 status=none
ok "... and is absent" hg_content_absent "$W/q60.jpg"
ok "a known JPEG under a non-.jpg name fails too (content, not name)" hg_refused cp "$W/half.jpg" "$M/notes.txt"
ok "... and is absent" test ! -e "$B/notes.txt"

cp "$W/broken.jpg" "$M/broken.jpg" 2>"$W/cp.err"; rc=$?
case $(cat "$W/cp.err") in *"Input/output error"*) r=1 ;; *) r=0 ;; esac
ok "a file that looks like a JPEG but does not decode fails as a scan error (EIO, on_error=deny)" \
	test "$rc" -ne 0 -a "$r" = 1
ok "... and is not published" test ! -e "$B/broken.jpg"

# hashgate scan: the same copies are matches, the broken one an error.
mkdir -p "$HG_TMP/tree"
cp "$W/junk-soi.jpg" "$W/junk-dqt.jpg" "$W/bad-marker.jpg" "$W/broken.jpg" "$W/as.png" \
	"$HG_TMP/tree/"
out=$("$HG_CLI" scan "$HG_TMP/tree" 2>&1); rc=$?
diag "$(printf '%s\n' "$out" | head -n 12)"
is "$rc" 1 "hashgate scan of the damaged copies: exit 1"
for n in junk-soi.jpg junk-dqt.jpg bad-marker.jpg as.png; do
	case $out in *"$n  "*algo=pdq*) r=1 ;; *) r=0 ;; esac
	hg_result $r "hashgate scan reports $n as a PDQ match"
done
case $out in *"broken.jpg: image gives no PDQ"*) r=1 ;; *) r=0 ;; esac
hg_result $r "hashgate scan reports broken.jpg as an error (image gives no PDQ)"

hg_umount
hg_mount pdq=off || bail "remount with pdq=off failed"
ok "with pdq=off the re-encoded picture is published" cp "$W/q60.jpg" "$M/q60-off.jpg"
ok "... and is in the backing dir" cmp "$W/q60.jpg" "$B/q60-off.jpg"

# What an allow entry clears.  A PDQ entry (for PDQ false positives) clears PDQ hits only: a
# picture whose own PDQ is allowlisted but whose SHA-256 is listed is still refused, by the
# daemon and by `hashgate scan` alike.  An exact entry of the file clears every hit, also by
# an algorithm no list holds (the daemon must hash the upload with it).
hg_umount
hg_cli db remove --list t-md5 --all >/dev/null && hg_cli db remove --list t-sha1 --all >/dev/null ||
	bail "could not remove the md5 and sha1 lists"
for n in 70 80 75; do "$XF" "$HG_K_JPEG" "$W/q$n.jpg" reencode $n; done
for n in 70 80 75; do
	d=$(dist "$W/q$n.jpg")
	ok "q$n.jpg is a PDQ match without the allowlist (distance $d <= 31)" test "$d" -le 31
done
hg_cli allow add --reason "PDQ false positive" "pdq:$(hg_pdq "$W/q70.jpg")" \
	"pdq:$(hg_pdq "$W/q80.jpg")" >/dev/null || bail "allow add pdq failed"
hg_cli db add --list t-exact --category illegal "sha256:$(sha256sum <"$W/q80.jpg" | cut -d' ' -f1)" \
	>/dev/null || bail "db add failed"
hg_cli allow add --reason "this file was reviewed" \
	"md5:$(md5sum <"$W/q75.jpg" | cut -d' ' -f1)" >/dev/null || bail "allow add md5 failed"
hg_mount || bail "remount failed"
ok "its PDQ allowlisted: the near copy is published" cp "$W/q70.jpg" "$M/allow-q70.jpg"
ok "... and is in the backing dir" cmp "$W/q70.jpg" "$B/allow-q70.jpg"
ok "its PDQ allowlisted but its SHA-256 listed: the upload fails" \
	hg_refused cp "$W/q80.jpg" "$M/allow-q80.jpg"
ok "... is not published" test ! -e "$B/allow-q80.jpg"
ok "... and is quarantined" hg_quarantined allow-q80.jpg
is "$(sqlite3 -readonly "$HG_QDIR/records.db" "SELECT algo FROM records WHERE path IN ('allow-q80.jpg','/allow-q80.jpg')" 2>&1)" \
	sha256 "... by its SHA-256"
ok "its MD5 allowlisted (no list holds MD5): published although its PDQ is listed" \
	cp "$W/q75.jpg" "$M/allow-q75.jpg"
ok "... and is in the backing dir" cmp "$W/q75.jpg" "$B/allow-q75.jpg"
mkdir -p "$HG_TMP/atree"
cp "$W/q70.jpg" "$W/q80.jpg" "$W/q75.jpg" "$HG_TMP/atree/"
out=$("$HG_CLI" scan "$HG_TMP/atree" 2>&1); rc=$?
diag "$(printf '%s\n' "$out" | head -n 8)"
is "$rc" 1 "hashgate scan of the three: exit 1 (a match)"
case $out in *"q80.jpg  "*algo=sha256*) r=1 ;; *) r=0 ;; esac
hg_result $r "hashgate scan reports q80.jpg as a SHA-256 match, as the daemon does"
case $out in *"q70.jpg  "*|*"q75.jpg  "*) r=0 ;; *) r=1 ;; esac
hg_result $r "... and neither q70.jpg nor q75.jpg"

done_testing
