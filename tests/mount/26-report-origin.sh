#!/bin/bash
# 26-report-origin.sh - the figures in `hashgate report` (issue 17, defect 5): every record says
# how the file came (upload, rewrite, scan); upload-to-verdict times count uploads only, not
# files `hashgate scan` found long after they were written; matches of a log-only category are
# recorded and reported; a record of an upload under a temporary name (rsync's, or an app's
# "NAME.EXT.tmp" renamed when written) names the file the client meant to create, in the record
# and in the audit log; a temporary name that carries no final name gets none.
. "$(dirname "$0")/lib.sh"
hg_setup
command -v rsync >/dev/null || skip_all "rsync not installed (make deps)"
W=$HG_TMP/w
hg_random "$W/kr" 11111
sha256sum <"$W/kr" | cut -d' ' -f1 >"$W/l-rep"
hg_cli db import --list t-report --category reportonly --type sha256 "$W/l-rep" >/dev/null ||
	bail "import of the report-only list failed"
printf 'on_match.reportonly = log\n' >>"$HG_CONF"
hg_mount allow_other || bail "mount failed"
C() { "$HG_CLI" --config "$HG_CONF" "$@"; }
chmod 0777 "$HG_BACK"

nok "known upload (cp) refused" hg_as 1000 1000 cp "$HG_K_MD5" "$HG_MNT/plain.bin"
mkdir -p "$W/src" && cp "$HG_K_SHA256" "$W/src/k.bin" && chmod -R a+rX "$W"
nok "known upload (rsync) refused" hg_as 1000 1000 rsync "$W/src/k.bin" "$HG_MNT/"
ok "a log-only match is published" hg_as 1000 1000 cp "$W/kr" "$HG_MNT/rep.bin"
hg_umount
# A file written long before it is found by `hashgate scan`.
mkdir -p "$HG_TMP/old"
cp "$HG_K_SHA1" "$HG_TMP/old/old.bin"
touch -d '2 hours ago' "$HG_TMP/old/old.bin"
C scan --action quarantine "$HG_TMP/old" >/dev/null 2>&1

j=$(C quarantine list --json)
ok "the rsync record keeps rsync's temporary name" grep -q '"path":"\.k\.bin\.[A-Za-z0-9]\{6\}"' <<<"$j"
ok "  and names the file rsync meant to create" grep -q '"intended_path":"k.bin","origin":"upload"' <<<"$j"
ok "the scan record says so" grep -q '"path":"old.bin","origin":"scan"' <<<"$j"
ok "the log-only match has a record" grep -q '"path":"rep.bin","origin":"upload".*"action":"log"' <<<"$j"
r=$(C report --format json)
ok "report: 4 matches" grep -q '"matches":4,' <<<"$r"
ok "report: per action, log included" grep -q '"by_action":{"log":1,"quarantine":3}' <<<"$r"
ok "report: per origin" grep -q '"by_origin":{"scan":1,"upload":3}' <<<"$r"
ok "report: upload-to-verdict over the 3 uploads only" grep -q '"upload_to_verdict_seconds":{"count":3,' <<<"$r"
max=$(grep -o '"upload_to_verdict_seconds":{[^}]*' <<<"$r" | grep -o '"max":[0-9]*' | cut -d: -f2)
ok "  max ${max}s: not the 2 hours the scanned file lay there" test "${max:-99999}" -lt 60
ok "text report shows the origin" sh -c "'$HG_CLI' --config '$HG_CONF' report | grep -q 'per origin'"
ok "the verdict in the audit log names rsync's intended file" \
	grep -q '"path":"\.k\.bin\.[A-Za-z0-9]\{6\}","intended_path":"k.bin"' "$HG_TMP/audit.log"

# An app's write-then-rename (PHP's file_put_contents + rename): refused, so the rename fails.
hg_mount allow_other || bail "mount failed"
cp "$HG_K_MD5" "$W/src/k2.bin" && chmod a+r "$W/src/k2.bin"
php_style() {	# php_style TMPNAME FINAL: write TMPNAME, close, rename to FINAL, as uid 1000
	hg_as 1000 1000 /usr/bin/python3 -c '
import os, sys
src, tmp, final = sys.argv[1:4]
f = open(tmp, "wb"); f.write(open(src, "rb").read())
try:
    f.close(); print("closed")
except OSError as e:
    print("close failed:", e.strerror)
try:
    os.rename(tmp, final); print("renamed")
except OSError as e:
    print("rename failed:", e.strerror)' "$W/src/k2.bin" "$HG_MNT/$1" "$HG_MNT/$2"
}
out=$(php_style photo.jpg.tmp photo.jpg)
is "$out" "close failed: Permission denied
rename failed: No such file or directory" "write-then-rename: the close is refused and the rename finds nothing"
out=$(php_style .upload-8765.tmp album.jpg)
ok "  (a second one, under a name without the final name)" grep -q "close failed" <<<"$out"
hg_umount
j=$(C quarantine list --json)
ok "the record of photo.jpg.tmp names photo.jpg" grep -q '"path":"photo.jpg.tmp","intended_path":"photo.jpg"' <<<"$j"
ok "  and so does show" sh -c "'$HG_CLI' --config '$HG_CONF' quarantine show \$('$HG_CLI' --config '$HG_CONF' quarantine list --json | grep -o '\"id\":[0-9]*,[^}]*\"path\":\"photo.jpg.tmp\"' | cut -d, -f1 | cut -d: -f2) | grep -q 'meant as: *photo.jpg (tmp temporary name)'"
ok "the record of .upload-8765.tmp guesses no name" grep -q '"path":".upload-8765.tmp","origin"' <<<"$j"
ok "the audit log has photo.jpg as intended_path" \
	grep -q '"path":"photo.jpg.tmp","intended_path":"photo.jpg"' "$HG_TMP/audit.log"
done_testing
