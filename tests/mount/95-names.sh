#!/bin/bash
# 95-names.sh - hostile file names (newline, CR, tab, ESC sequences, other control bytes,
# invalid UTF-8, quotes, backslashes, forged log fields and JSON) in uploads:
#  - clean uploads keep their exact byte names in the backing dir;
#  - known uploads are refused, and every place a name is written escapes it: the daemon log has
#    one line per verdict and no raw control bytes or invalid UTF-8; the audit trail is one valid
#    JSON object per line and still verifies; `hashgate quarantine list` prints one line per
#    record without control bytes and --json parses; the names decode back unambiguously.
. "$(dirname "$0")/lib.sh"
hg_setup
M=$HG_MNT B=$HG_BACK W=$HG_TMP/w
hg_mount || bail "mount failed"

# The names, as Python bytes literals (bash cannot hold NUL, and neither can a path).
cat >"$W/names.py" <<'PY'
NAMES = [
    b"new\nline",
    b"cr\rreturn",
    b"tab\there",
    b"esc\x1b[31mred\x1b[0m",
    b"bell\x07del\x7f",
    b"ctl\x01\x02\x1f",
    b"bad-utf8-\xff\xfe\xc3",
    b"overlong-\xc0\xaf",
    b"quote\"and\\backslash",
    b"forged\nverdict=clean path=\"x\" uid=0",
    b"json\",\"action\":\"none\",\"x\":\"",
    b"utf8-ok-\xc3\xa9\xe2\x82\xac",
]
PY
cat >"$W/upload.py" <<'PY'
import os, sys
sys.path.insert(0, os.path.dirname(sys.argv[0]))
from names import NAMES
src, dst, prefix = sys.argv[1], sys.argv[2].encode(), sys.argv[3].encode()
data = open(src, "rb").read()
refused = published = 0
for n in NAMES:
    p = dst + b"/" + prefix + n
    try:
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.write(fd, data)
        os.close(fd)
        published += 1
    except OSError:
        refused += 1
print(published, refused)
PY
read -r pub ref < <(python3 "$W/upload.py" "$HG_K_SHA256" "$M" "k-")
is "$ref" 12 "all 12 known uploads with hostile names are refused"
hg_random "$W/clean" 3000
read -r pub ref < <(python3 "$W/upload.py" "$W/clean" "$M" "c-")
is "$pub" 12 "all 12 clean uploads with hostile names are published"
ok "their names are byte-exact in the backing dir" python3 - "$B" "$W" <<'PY'
import os, sys
sys.path.insert(0, sys.argv[2])
from names import NAMES
have = set(os.listdir(sys.argv[1].encode()))
missing = [n for n in NAMES if b"c-" + n not in have]
sys.exit(1 if missing else 0)
PY
ok "no known upload is in the backing dir" hg_content_absent "$HG_K_SHA256"

# daemon log: one verdict line per upload, nothing raw
nmatch=$(grep -c 'verdict=match' "$HG_LOG")
is "$nmatch" 12 "the daemon log has exactly one verdict=match line per known upload"
nok "no line of the daemon log starts with a forged field" grep -q '^verdict=clean path="x"' "$HG_LOG"
nok "no raw control bytes in the daemon log" grep -qP '[\x00-\x08\x0b-\x1f\x7f]' "$HG_LOG"
ok "the daemon log is valid UTF-8" iconv -f UTF-8 -t UTF-8 "$HG_LOG" -o /dev/null
ok "the newline name is logged escaped" grep -qF 'k-new\nline' "$HG_LOG"

# audit trail
AUD=$HG_TMP/audit.log
ok "the audit trail is one valid JSON object per line, with 12 match verdicts" python3 - "$AUD" <<'PY'
import json, sys
n = 0
for line in open(sys.argv[1], "rb"):
    rec = json.loads(line.decode("utf-8"))
    if rec.get("verdict") == "match" or '"verdict":"match"' in line.decode():
        n += 1
sys.exit(0 if n == 12 else 1)
PY
ok "every audited path decodes back to exactly one of the names" python3 - "$AUD" "$W" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[2])
from names import NAMES
want = {b"k-" + n for n in NAMES}
got = set()
for line in open(sys.argv[1], "rb"):
    rec = json.loads(line)
    p = rec.get("data", rec).get("path")	# format 2 nests a record's own members in "data"
    if p is None or not p.startswith("k-"):
        continue
    # Bytes that are not UTF-8 come back as \udcNN (Python's surrogateescape convention);
    # anything else must decode to the name's own bytes.
    got.add(p.encode("utf-8", "surrogateescape"))
sys.exit(0 if got == want else 1)
PY
ok "hashgate log verify accepts the chain" "$HG_CLI" --config "$HG_CONF" log verify

# quarantine list (text and JSON)
"$HG_CLI" --config "$HG_CONF" quarantine list >"$W/qlist" 2>&1
ok "quarantine list works" test -s "$W/qlist"
nok "quarantine list prints no raw control bytes" grep -qP '[\x00-\x08\x0b-\x1f\x7f]' "$W/qlist"
ok "quarantine list output is valid UTF-8" iconv -f UTF-8 -t UTF-8 "$W/qlist" -o /dev/null
is "$(grep -c 'k-' "$W/qlist")" 12 "quarantine list has one line per hostile-named record"
"$HG_CLI" --config "$HG_CONF" --json quarantine list >"$W/qlist.json" 2>&1
ok "quarantine list --json parses, 12 records with k- paths" python3 - "$W/qlist.json" <<'PY'
import json, sys
raw = open(sys.argv[1], "rb").read().decode("utf-8")
try:
    recs = json.loads(raw)
except ValueError:
    recs = [json.loads(l) for l in raw.splitlines() if l.strip()]
if isinstance(recs, dict):
    recs = recs.get("records", [])
sys.exit(0 if sum(1 for r in recs if str(r.get("path", "")).lstrip("/").startswith("k-")) == 12 else 1)
PY
# export of the record whose name forges a log line: FILE.json must parse and hold the name
id=$(sqlite3 -readonly "$HG_QDIR/records.db" "SELECT id FROM records WHERE path LIKE '%forged%' LIMIT 1" 2>/dev/null)
ok "quarantine export of the forged-name record works" \
	"$HG_CLI" --config "$HG_CONF" quarantine export "${id:-0}" --out "$W/exported" --plaintext
ok "its FILE.json parses and gives back the exact name" python3 - "$W/exported.json" "$W" <<'PY'
import json, sys
sys.path.insert(0, sys.argv[2])
from names import NAMES
rec = json.loads(open(sys.argv[1], "rb").read())
def find(o):
    if isinstance(o, dict):
        for k, v in o.items():
            if k == "path" and isinstance(v, str):
                return v
            r = find(v)
            if r:
                return r
    return None
p = find(rec).lstrip("/")
sys.exit(0 if p.encode("utf-8", "surrogateescape") == b"k-" + NAMES[9] else 1)
PY
ok "the exported bytes are the known file" cmp "$HG_K_SHA256" "$W/exported"
hg_umount
done_testing
