#!/bin/bash
# 08-db-files.sh - `hashgate db import` of list files shaped as suppliers ship them (issue 18)
# and per-row list metadata where matches surface (issue 17), from the shell, no mount:
# semicolon CSV with spreadsheet headers, --columns, --map, JSON arrays, HMA objects,
# `sha256sum --tag` lines, gzip; --check (every bad line, exit 1, nothing changed); --delete /
# --replace of a list that does not exist (exit 2, nothing created); terminal escapes from a
# list file never reach the terminal raw; db dump -> restore -> dump identical, restore into a
# non-empty database refused, feed state carried, db compact audited; a scan match, its quarantine record and the report
# carry the list row's id and label.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/adm-lib.sh"
adm_setup
T=$AT_TREE
L=$AT/lists
ESC=$(printf '\033')

head -c 3001 /dev/urandom >"$T/k1"
head -c 3002 /dev/urandom >"$T/k2"
head -c 3003 /dev/urandom >"$T/k3"
M1=$(md5sum <"$T/k1" | cut -d' ' -f1)
S1=$(sha1sum <"$T/k1" | cut -d' ' -f1)
M2=$(md5sum <"$T/k2" | cut -d' ' -f1)

# --- CSV as NL/DE Excel writes it
printf '\xef\xbb\xbfID;MD5 Hash;SHA-1;Category;Comment;Omschrijving;Bron\r\n17;%s;%s;illegal;"eerste; een";o;x\r\n18;%s;;;tweede;o;y\r\n;;;;;;\r\n' \
	"$M1" "$S1" "$M2" >"$L/nl.csv"
hg_run hgc db import --list nl --category baseline "$L/nl.csv"
is "$?" 0 "semicolon CSV with 'MD5 Hash' and 'SHA-1' headers imports"
case $HG_OUT in *"3 added"*) r=1 ;; *) r=0 ;; esac
hg_result $r "... all three hashes ($HG_OUT)"
case $HG_OUT in *"warning"*"'Omschrijving'"*"'Bron'"*) r=1 ;; *) r=0 ;; esac
hg_result $r "one warning names the ignored columns"
out=$(hgc db export --list nl --type sha1)
case $out in *'"id":"17"'*'"category":"illegal"'*) r=1 ;; *) r=0 ;; esac
hg_result $r "per-row id and category kept ($out)"

# --- --columns, --map, --delimiter
printf '%s,80,photo1.jpg\n' "$(sha256sum <"$T/k3" | cut -d' ' -f1)" >"$L/pdq.txt"
ok "--columns for a headerless pdq-photo-hasher file" \
	hgc db import --list hasher --type sha256 --columns hash,quality,filename "$L/pdq.txt"
out=$(hgc db export --list hasher)
case $out in *'"label":"photo1.jpg"'*'"quality":80'*) r=1 ;; *) r=0 ;; esac
hg_result $r "quality and file name kept"
printf 'Waarde MD5|Kenmerk\n%s|K-9\n' "$M2" >"$L/map.csv"
ok "--map and --delimiter" hgc db import --list mapped --delimiter '|' --map 'md5=Waarde MD5' \
	--map id=Kenmerk "$L/map.csv"
case $(hgc db export --list mapped) in *'"id":"K-9"'*) r=1 ;; *) r=0 ;; esac
hg_result $r "... mapped the id column"
hg_run hgc db import --list x --map 'nonsense=Y' "$L/map.csv"
is "$?" 64 "--map with an unknown field is a usage error"

# --- JSON, HMA, sha256sum --tag, gzip
printf '[\n  {\n    "signal_type": "pdq",\n    "signal_value": "%s",\n    "bank_content_id": 42\n  }\n]\n' \
	"$(printf '%064d' 7)" >"$L/hma.json"
hg_run hgc db import --list hma "$L/hma.json"
is "$?" 0 "a pretty-printed JSON array of HMA signal objects imports"
case $(hgc db export --list hma) in *'"algo":"pdq"'*'"id":"42"'*) r=1 ;; *) r=0 ;; esac
hg_result $r "... as a PDQ with the bank content id"
(cd "$T" && sha256sum --tag k2 k3) >"$L/tags.txt"
gzip -c "$L/tags.txt" >"$L/tags.txt.gz"
hg_run hgc --json db import --list tagged "$L/tags.txt.gz"
is "$?" 0 "gzip-compressed sha256sum --tag output imports"
case $HG_OUT in *'"added":2'*) r=1 ;; *) r=0 ;; esac
hg_result $r "... both lines ($HG_OUT)"
case $(hgc db export --list tagged) in *'"label":"k2"'*) r=1 ;; *) r=0 ;; esac
hg_result $r "... the file name as the label"

# --- --check
gen=$(jnum "$(hgc db stats --json)" generation)
printf '%s\nzz\n%s\nbad%s[31mred\n1234\n' "$M1" "$M2" "$ESC" >"$L/bad.txt"
hg_run hgc db import --check --list chk "$L/bad.txt"
is "$?" 1 "--check of a file with bad lines exits 1"
case $HG_OUT in *"bad.txt:2:"*"bad.txt:4:"*"bad.txt:5:"*"3 bad lines"*) r=1 ;; *) r=0 ;; esac
hg_result $r "... listing every bad line"
case $HG_OUT in *"$ESC"*) r=0 ;; *'\x1b[31m'*) r=1 ;; *) r=0 ;; esac
hg_result $r "... with the terminal escape from the file escaped"
is "$(jnum "$(hgc db stats --json)" generation)" "$gen" "--check changed nothing"
printf 'name,size\nx,1\n' >"$L/nohash.csv"
hg_run hgc db import --check --list chk "$L/nohash.csv"
is "$?" 1 "--check of a CSV whose header names no hash column exits 1 too"
printf '%s\n' "$M1" >"$L/good.txt"
ok "--check of a good file exits 0" hgc db import --check --list chk "$L/good.txt"
case $(hgc --json db lists) in *'"chk"'*) r=0 ;; *) r=1 ;; esac
hg_result $r "... and creates no list"

# --- --delete / --replace of a list that does not exist
hg_run hgc db import --delete --list ghost "$L/good.txt"
is "$?" 2 "--delete on a missing list exits 2"
case $HG_OUT in *"no list named 'ghost'"*) r=1 ;; *) r=0 ;; esac
hg_result $r "... saying so ($HG_OUT)"
hg_run hgc db import --replace --list ghost "$L/good.txt"
is "$?" 2 "--replace on a missing list exits 2"
case $(hgc --json db lists) in *'"ghost"'*) r=0 ;; *) r=1 ;; esac
hg_result $r "no empty list was created"
is "$(jnum "$(hgc db stats --json)" generation)" "$gen" "nothing changed"

# --- escapes in warnings and errors
printf 'md5,%s]0;pwned\a\n%s,x\n' "$ESC" "$M2" >"$L/esc.csv"
hg_run hgc db import --list esc "$L/esc.csv"
case $HG_OUT in *"$ESC"*|*$'\a'*) r=0 ;; *'\x1b]0;pwned\x07'*) r=1 ;; *) r=0 ;; esac
hg_result $r "a column name with terminal escapes is escaped in the warning"

# --- per-row metadata where a match surfaces: scan output, quarantine record, report
hg_run hgc scan --json "$T"
case $HG_OUT in *"\"path\":\"$T/k1\""*'"ref":"17"'*'"label":"eerste; een"'*) r=1 ;; *) r=0 ;; esac
hg_result $r "scan --json reports the matching row's id and label"
hg_run hgc scan "$T"
case $HG_OUT in *"k1"*"ref=17 label=eerste; een"*) r=1 ;; *) r=0 ;; esac
hg_result $r "... and the text output too"
hgc scan --action quarantine "$T" >/dev/null 2>&1
out=$(hgc quarantine list --json)
case $out in *'"ref":"17","label":"eerste; een"'*) r=1 ;; *) r=0 ;; esac
hg_result $r "the quarantine record keeps id and label"
case $(hgc report --format json) in *'"by_entry":{'*'"nl:17":1'*) r=1 ;; *) r=0 ;; esac
hg_result $r "report counts matches per list entry"
case $(grep scan.quarantine "$AT_AUDIT") in *'"list":"nl","algo":"sha1","ref":"17","label":"eerste; een"'*) r=1 ;; *) r=0 ;; esac
hg_result $r "the scan's audit record names the list row's id and label"

# --- dump / restore / compact
hgc allow add --reason "fp $(printf '\001')" "md5:0123456789abcdef0123456789abcdef" >/dev/null
# a feed's state as `hashgate feed update` leaves it (one meta row; no server needed here)
FSTATE=$(printf 'etag="W/\\"x"\nsha256=ab\ncursor=7\nlast_ok=1700000000')
sqlite3 "$AT_DB" "INSERT INTO meta(key, value) VALUES ('feed:f9', '$FSTATE')"
ok "db dump" hgc db dump -o "$AT/d1.jsonl"
is "$(stat -c %a "$AT/d1.jsonl")" 600 "the dump file is private (0600)"
ok "restore into a new database" hgc --db "$AT/copy.db" db init
hg_run hgc --db "$AT/copy.db" db restore "$AT/d1.jsonl"
is "$?" 0 "db restore exits 0"
hgc --db "$AT/copy.db" db dump >"$AT/d2.jsonl"
ok "dump -> restore -> dump is identical" diff "$AT/d1.jsonl" "$AT/d2.jsonl"
case $(cat "$AT/d2.jsonl") in *'"type":"allow"'*'"reason":"fp \u0001"'*) r=1 ;; *) r=0 ;; esac
hg_result $r "the allowlist and its reason are in the dump"
is "$(sqlite3 "$AT/copy.db" "SELECT value FROM meta WHERE key = 'feed:f9'")" "$FSTATE" \
	"the feed's state (cursor, ETag) is restored with the lists"
hg_run hgc --db "$AT/copy.db" db restore "$AT/d1.jsonl"
is "$?" 2 "restore into a database that has lists exits 2"
head -n 3 "$AT/d1.jsonl" >"$AT/cut.jsonl"
hgc --db "$AT/cut.db" db init >/dev/null
hg_run hgc --db "$AT/cut.db" db restore "$AT/cut.jsonl"
is "$?" 2 "a dump cut short is refused"
is "$(hgc --db "$AT/cut.db" --json db lists)" "[]" "... and restores nothing"
hg_run hgc db compact
is "$?" 0 "db compact exits 0"
case $HG_OUT in *"before"*"after"*) r=1 ;; *) r=0 ;; esac
hg_result $r "... and prints the size before and after ($HG_OUT)"
ok "... and is audited with both sizes" grep -q '"action":"db.compact".*"before":[0-9]*,"after":[0-9]*' "$AT_AUDIT"
done_testing
