#!/bin/bash
# 26-report-origin.sh - the figures in `hashgate report` (issue 17, defect 5): every record says
# how the file came (upload, rewrite, scan); upload-to-verdict times count uploads only, not
# files `hashgate scan` found long after they were written; matches of a log-only category are
# recorded and reported; a record of an rsync upload names the file rsync meant to create.
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
done_testing
