#!/bin/bash
# 28-pdq-formats.sh - a known picture saved as WebP, GIF or BMP is caught by PDQ, and
# per-category on_error decides undecodable images.
#
# The database holds the PDQ of a generated JPEG (lib.sh, list t-pdq); tests/tools/jpegxf
# writes its pixels as a lossy WebP, a 3-3-2-palette GIF and a 24-bit BMP.  Uploads of each
# through a real mount are refused and quarantined with a PDQ record, and `hashgate scan`
# reports each as a PDQ match.  Then, on a database whose only PDQ list has category
# "pdqonly" (the exact lists are "illegal"):
#  - hashgate.conf `on_error = allow` + `on_error.pdqonly = deny`: a damaged GIF (no PDQ) is
#    refused (EIO) and `hashgate status` counts it as a scan error;
#  - `on_error = deny` + `on_error.pdqonly = allow`: the same file is published (the lists
#    it could not be checked against allow it), and so with `on_error = allow` alone;
#  - a damaged "GIF" whose SHA-256 is listed is quarantined whatever on_error says (its
#    exact digest still matched; it used to be published under on_error = allow).
. "$(dirname "$0")/lib.sh"
hg_setup
XF=$HG_TOOLS/jpegxf
[ -x "$XF" ] || bail "helper $XF not built"
[ -n "$HG_K_JPEG" ] || bail "no known JPEG: mkjpeg, 'hashgate hash --json' (pdq) or 'db import --type pdq' failed"
M=$HG_MNT B=$HG_BACK W=$HG_TMP/w
KP=$(cat "$HG_TMP/known/l-pdq")

dist() {	# Hamming distance between the listed PDQ and FILE's (999: no PDQ)
	local h
	h=$(hg_pdq "$1")
	[ -n "$h" ] || { echo 999; return; }
	python3 -c "print(bin(int('$KP',16)^int('$h',16)).count('1'))"
}

for t in webp gif bmp; do
	"$XF" "$HG_K_JPEG" "$W/as.$t" "$t" || bail "jpegxf could not write the $t copy"
	d=$(dist "$W/as.$t")
	ok "the $t copy is a near-duplicate by PDQ (distance $d <= 31), not byte-identical" \
		bash -c "[ $d -le 31 ] && ! cmp -s '$W/as.$t' '$HG_K_JPEG'"
done

hg_mount || bail "mount failed"
for t in webp gif bmp; do
	ok "upload of the known picture as $t fails" hg_refused cp "$W/as.$t" "$M/as.$t"
	ok "no as.$t in the backing dir" test ! -e "$B/as.$t"
	ok "as.$t bytes nowhere in the backing dir" hg_content_absent "$W/as.$t"
	ok "as.$t is quarantined" hg_quarantined "as.$t"
	is "$(sqlite3 -readonly "$HG_QDIR/records.db" "SELECT algo FROM records WHERE path IN ('as.$t','/as.$t')" 2>&1)" \
		pdq "the record of as.$t says PDQ matched"
done
ok "the BMP copy under a name without an image extension fails too" \
	hg_refused cp "$W/as.bmp" "$M/picture.dat"
hg_umount

mkdir -p "$HG_TMP/tree"
cp "$W/as.webp" "$W/as.gif" "$W/as.bmp" "$HG_TMP/tree/"
out=$("$HG_CLI" scan "$HG_TMP/tree" 2>&1); rc=$?
diag "$(printf '%s\n' "$out" | head -n 8)"
ok "hashgate scan of the copies exits non-zero (matches found: rc $rc)" test "$rc" -ne 0
for t in webp gif bmp; do
	case $out in *"as.$t  "*algo=pdq*) r=1 ;; *) r=0 ;; esac
	hg_result $r "hashgate scan reports as.$t as a PDQ match"
done

# --- per-category on_error ------------------------------------------------------------------
# A second database: the exact lists (category illegal) and the PDQ list as category pdqonly.
D2=$HG_TMP/pdqonly.db
printf 'GIF89a\001\000\001\000\200\000\000broken' >"$W/broken.gif"
{ printf 'GIF89a\002\000\002\000\200\000\000'; head -c 3000 /dev/urandom; } >"$W/listed.gif"
hg_sha256 "$W/listed.gif" >>"$HG_TMP/known/l-sha256"
hg_db_init "$D2" || bail "could not create $D2"
HG_DB=$D2 hg_cli db import --list only-pdq --category pdqonly --type pdq \
	"$HG_TMP/known/l-pdq" >/dev/null || bail "pdq import into $D2 failed"
pdq_err() {	# pdq_err NAME: upload broken.gif as NAME; prints "refused-eio", "published" or more
	local e rc
	e=$(cp "$W/broken.gif" "$M/$1" 2>&1); rc=$?
	if [ $rc -eq 0 ]; then
		cmp -s "$W/broken.gif" "$B/$1" && echo published || echo "cp ok but not in the backing dir"
	else
		case $e in *"Input/output error"*) [ -e "$B/$1" ] && echo "eio but published" || echo refused-eio ;;
		*) echo "failed: $e" ;; esac
	fi
}
conf() {	# conf LINES: the fixture's hashgate.conf plus LINES
	sed -i '/^on_error/d' "$HG_CONF"
	printf '%s\n' "$@" >>"$HG_CONF"
}

conf "on_error = allow" "on_error.pdqonly = deny"
HG_DB=$D2 hg_mount || bail "mount on $D2 failed"
is "$(pdq_err b1.gif)" refused-eio \
	"on_error=allow, on_error.pdqonly=deny: an undecodable GIF is refused (EIO)"
ok "... and is not in the backing dir" test ! -e "$B/b1.gif"
grep -q "pdq_error: image gives no PDQ: GIF" "$HG_LOG"
hg_result $((! $?)) "the daemon logs pdq_error with the GIF decoder's reason"
for i in $(seq 40); do	# the daemon publishes its counters every few seconds
	errs=$("$HG_CLI" --config "$HG_CONF" status --json 2>/dev/null |
		grep -o '"errors":[0-9]*' | head -n1 | cut -d: -f2)
	[ "${errs:-0}" -ge 1 ] && break
	sleep 0.5
done
ok "hashgate status counts it as a scan error (errors=$errs)" test "${errs:-0}" -ge 1
ok "a damaged GIF whose SHA-256 is listed is still refused as a match (EACCES)" \
	hg_refused cp "$W/listed.gif" "$M/listed1.gif"
ok "... and quarantined" hg_quarantined listed1.gif
hg_umount

conf "on_error = deny" "on_error.pdqonly = allow"
HG_DB=$D2 hg_mount || bail "remount failed"
is "$(pdq_err b2.gif)" published \
	"on_error=deny, on_error.pdqonly=allow: the only PDQ category allows, so it is published"
hg_umount

conf "on_error = allow"
HG_DB=$D2 hg_mount || bail "remount failed"
is "$(pdq_err b3.gif)" published "on_error=allow and no per-category setting: published"
ok "a listed damaged GIF under on_error=allow is refused as a match, not published" \
	hg_refused cp "$W/listed.gif" "$M/listed2.gif"
ok "... and not in the backing dir" test ! -e "$B/listed2.gif"
hg_umount

conf "on_error = deny"
HG_DB=$D2 hg_mount || bail "remount failed"
is "$(pdq_err b4.gif)" refused-eio "on_error=deny (default for pdqonly too): refused (EIO)"
hg_umount

done_testing
