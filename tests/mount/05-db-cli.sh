#!/bin/bash
# 05-db-cli.sh - `hashgate db` and `hashgate allow` from the shell, no mount needed: init, the
# database path from the config file and --db, imports (plain, stdin, CSV, JSONL, --delete),
# a bad line that aborts with FILE:LINE and changes nothing, add/remove, lists/stats --json,
# export round trip, the allowlist, audit records, the upgrade of a previous release's database
# by db init, and clear errors with the documented exit
# codes for missing, corrupt and newer-schema databases and for usage mistakes; every command
# with subcommands names the valid ones when given an unknown one.
. "$(dirname "$0")/lib.sh"
command -v sqlite3 >/dev/null || skip_all "sqlite3 is not installed (make deps)"
[ -x "$HG_CLI" ] || bail "no hashgate binary in HASHGATE_BUILD=$HG_BUILD"

T=$(mktemp -d /tmp/hg-db-cli.XXXXXX) || bail "mktemp failed"
trap 'rm -rf "$T"' EXIT
DB=$T/hashes.db
cat >"$T/hashgate.conf" <<EOF
db = $DB
audit_log = $T/audit.log
EOF
export HASHGATE_CONFIG=$T/hashgate.conf
H=$HG_CLI

# generated "known" content: hashes of random files, never real material
for i in 1 2 3 4 5; do head -c $((1000 + i)) /dev/urandom >"$T/k$i"; done
sha256sum "$T"/k1 "$T"/k2 "$T"/k3 | sed "s|$T/||" >"$T/l-sha256"	# "HEX  k1" lines
md5sum <"$T/k4" | cut -d' ' -f1 >"$T/l-md5"
S1=$(sha256sum <"$T/k1" | cut -d' ' -f1)
S2=$(sha256sum <"$T/k2" | cut -d' ' -f1)
M4=$(cut -c1-32 "$T/l-md5")
M5=$(md5sum <"$T/k5" | cut -d' ' -f1)

# --- init and errors before there is a database
hg_run $H db stats; rc=$?
is "$rc" 2 "db stats on a missing database exits 2"
case $HG_OUT in *"$DB"*"no such database"*) r=1 ;; *) r=0 ;; esac
hg_result $r "... and says which file is missing"
ok "db init creates the database named in the config" $H db init
ok "the file exists" test -f "$DB"
ok "db init again is harmless" $H db init
is "$(sqlite3 "$DB" 'PRAGMA user_version')" 3 "schema version 3 in the file"

# --- a database of the previous release (schema 2, tests/unit/data/README): reading commands
# say to upgrade it, db init (what the packages' postinst runs) upgrades it keeping its data,
# and from then on list ids are not given out twice.
O=$T/old.db
cp "$HG_SRC/tests/unit/data/hashes-schema2.db" "$O" || bail "no schema 2 fixture"
hg_run $H --db "$O" db lists; rc=$?
is "$rc" 2 "db lists on a schema 2 database exits 2"
case $HG_OUT in *"older"*"hashgate db init"*) r=1 ;; *) r=0 ;; esac
hg_result $r "... saying to run 'hashgate db init'"
ok "db init upgrades it" $H --db "$O" db init
is "$(sqlite3 "$O" 'PRAGMA user_version')" 3 "... to schema 3"
out=$($H --db "$O" --json db lists)
case $out in *'"name":"alpha","category":"illegal"'*'"md5":1,"sha1":1'*'"name":"beta","category":"quarantine"'*'"sha256":1,"pdq":1'*) r=1 ;; *) r=0 ;; esac
hg_result $r "its lists and hashes are all there"
case $($H --db "$O" --json allow list) in *'"reason":"known fp"'*) r=1 ;; *) r=0 ;; esac
hg_result $r "... and its allowlist"
$H --db "$O" db add --list delta sha256:$S1 >/dev/null
is "$(sqlite3 "$O" "SELECT id FROM lists WHERE name = 'delta'")" 3 "a new list gets the next id"
$H --db "$O" db remove --list delta --all >/dev/null
$H --db "$O" db add --list delta sha256:$S1 >/dev/null
is "$(sqlite3 "$O" "SELECT id FROM lists WHERE name = 'delta'")" 4 \
	"deleted and made again, it gets a new one (ids are not reused)"

# --- import
ok "import plain sha256 list with labels" $H db import --list t-sha --category illegal --type sha256 "$T/l-sha256"
ok "import md5 from stdin (type inferred)" sh -c "$H db import --list t-md5 - <'$T/l-md5'"
out=$($H --json db lists)
case $out in *'"name":"t-sha","category":"illegal"'*'"sha256":3'*) r=1 ;; *) r=0 ;; esac
hg_result $r "db lists --json shows t-sha with 3 sha256"
case $out in *'"name":"t-md5","category":"other"'*'"md5":1'*) r=1 ;; *) r=0 ;; esac
hg_result $r "a list imported without --category is 'other'"
gen=$($H db stats --json | sed -n 's/.*"generation":\([0-9]*\).*/\1/p')
ok "stats --json has a generation" test -n "$gen"

# a bad line aborts everything: FILE:LINE, exit 2, nothing changes
{ cat "$T/l-md5"; echo "$M5"; echo "not-a-hash"; } >"$T/bad.txt"
before=$($H db export)
hg_run $H db import --list t-md5 "$T/bad.txt"; rc=$?
is "$rc" 2 "import with a malformed line exits 2"
case $HG_OUT in *"bad.txt:3:"*"nothing was imported"*) r=1 ;; *) r=0 ;; esac
hg_result $r "error names bad.txt:3 and says nothing was imported"
[ $r = 1 ] || diag "$HG_OUT"
is "$($H db export)" "$before" "database content unchanged"
is "$($H db stats --json | sed -n 's/.*"generation":\([0-9]*\).*/\1/p')" "$gen" "generation unchanged"
hg_run $H db import --list t-x "$T/l-sha256"; rc=$?
is "$rc" 2 "64 hex digits without --type exits 2"
case $HG_OUT in *"l-sha256:1:"*"--type"*) r=1 ;; *) r=0 ;; esac
hg_result $r "... asking for --type"

# CSV and JSONL, tombstones, --delete
printf 'md5,sha256,label\n%s,,five\n,%s,two again\n' "$M5" "$S2" >"$T/feed.csv"
ok "CSV import" $H db import --list feed --category baseline "$T/feed.csv"
printf '{"md5":"%s","deleted":true}\n{"algo":"sha256","hash":"%s","label":"one"}\n' "$M5" "$S1" >"$T/feed.jsonl"
out=$($H --json db import --list feed "$T/feed.jsonl")
case $out in *'"added":1'*'"removed":1'*) r=1 ;; *) r=0 ;; esac
hg_result $r "JSONL import: one added, one tombstone removed ($out)"
out=$($H db export --list feed --format plain --type sha256 | sort)
is "$out" "$(printf '%s  one\n%s  two again' "$S1" "$S2" | sort)" "list feed holds exactly the two sha256"
ok "--delete removes listed hashes" sh -c "echo $S1 | $H db import --list feed --type sha256 --delete -"
is "$($H db export --list feed --format plain --type sha256)" "$S2  two again" "one left after --delete"

# --- add / remove
ok "db add" $H db add --list manual --category illegal "$M5" sha256:"$S1"
is "$($H db export --list manual --format csv | wc -l)" 3 "manual list has two rows (+ header)"
ok "db remove from one list" $H db remove --list manual "$M5"
hg_run $H db remove --list manual "$M5"; rc=$?
is "$rc" 1 "removing an absent hash exits 1"
hg_run $H db add --list manual "$S1"; rc=$?
is "$rc" 64 "db add of a 64-digit hash without a type is a usage error"
ok "db remove --all drops a list" $H db remove --list manual --all
case $($H --json db lists) in *'"manual"'*) r=0 ;; *) r=1 ;; esac
hg_result $r "list manual is gone"

# --- export round trip into a second database
DB2=$T/copy.db
ok "second database via --db after the subcommand" $H db init --db "$DB2"
$H db export --format csv >"$T/all.csv"
for l in t-sha t-md5 feed; do
	grep "^$l," "$T/all.csv" | sed '1i list,md5,sha1,sha256,pdq,label,id,category,quality' >"$T/$l.csv"
	$H --db "$DB2" db import --list "$l" "$T/$l.csv" >/dev/null || diag "re-import $l failed"
done
is "$($H --db "$DB2" db export --format csv)" "$(cat "$T/all.csv")" "CSV export re-imports to the same content"
$H db export >"$T/all.jsonl"
is "$(grep -c . "$T/all.jsonl")" "$(($(wc -l <"$T/all.csv") - 1))" "JSONL export has one line per hash"

# --- allowlist
ok "allow add" $H allow add --reason "known false positive" "$M4"
out=$($H --json allow list)
case $out in *"\"hash\":\"$M4\""*'"reason":"known false positive"'*) r=1 ;; *) r=0 ;; esac
hg_result $r "allow list --json shows it with the reason"
ok "allow remove" $H allow remove "md5:$M4"
hg_run $H allow remove "$M4"; rc=$?
is "$rc" 1 "removing an absent allowlist entry exits 1"
is "$($H --json allow list)" "[]" "allowlist empty again"

# --- audit trail of admin changes
ok "imports are in the audit log" grep -q '"db.import"' "$T/audit.log"
ok "allowlist changes are in the audit log" grep -q '"allow.add"' "$T/audit.log"

# --- a user of the database's group may read but not write it (nor create files next to it)
if [ "$(id -u)" = 0 ] && id nobody >/dev/null 2>&1 &&
	su nobody -s /bin/sh -c "test -x '$H'" 2>/dev/null; then
	chmod 0755 "$T"
	# The lists are root's and the database group's only (07-db-modes.sh): nobody's group.
	chgrp "$(id -g nobody)" "$DB" "$DB-wal" "$DB-shm"
	chmod 0640 "$DB" "$DB-wal" "$DB-shm"
	hg_run su nobody -s /bin/sh -c "HASHGATE_CONFIG='$T/hashgate.conf' '$H' --json db stats"; rc=$?
	is "$rc" 0 "a read-only user can read the WAL database (its -wal/-shm files are kept)"
	[ $rc = 0 ] || diag "$HG_OUT"
	hg_run su nobody -s /bin/sh -c "HASHGATE_CONFIG='$T/hashgate.conf' '$H' db add --list t-md5 '$M5'"; rc=$?
	is "$rc" 2 "... but not change it (exit 2)"
	case $HG_OUT in *"$DB"*"readonly"*) r=1 ;; *) r=0 ;; esac
	hg_result $r "... with an error naming the database"
	chmod 0700 "$T"
else
	skip "read-only user check needs root and a 'nobody' user that can run $H"
	skip "read-only user write check"
	skip "read-only user error message"
fi

# --- bad databases and usage errors
head -c 8192 /dev/urandom >"$T/junk.db"
hg_run $H --db "$T/junk.db" db lists; rc=$?
is "$rc" 2 "corrupt database exits 2"
case $HG_OUT in *"junk.db"*"not a valid hashgate database"*) r=1 ;; *) r=0 ;; esac
hg_result $r "... saying it is not a valid database"
cp "$DB" "$T/newer.db"
sqlite3 "$T/newer.db" 'PRAGMA user_version = 9'
hg_run $H --db "$T/newer.db" db import --list x "$T/l-md5"; rc=$?
is "$rc" 2 "newer schema exits 2"
case $HG_OUT in *"newer than this hashgate"*) r=1 ;; *) r=0 ;; esac
hg_result $r "... saying the schema is newer"
is "$(sqlite3 "$T/newer.db" 'PRAGMA user_version')" 9 "... and leaves it alone"
hg_run $H db import --list t-md5 --frobnicate "$T/l-md5"; rc=$?
is "$rc" 64 "unknown option exits 64"
hg_run $H db import "$T/l-md5"; rc=$?
is "$rc" 64 "import without --list exits 64"
hg_run $H db explode; rc=$?
is "$rc" 64 "unknown db subcommand exits 64"
ok "db --help" $H db --help
ok "allow --help" $H allow --help

# Every command with subcommands: an unknown one exits 64 naming the word and every valid
# subcommand, and each of those is in the command's --help.
for spec in "db:init import add remove lists stats export dump restore compact" \
	    "allow:add remove list" "feed:add list remove update status keygen sign" \
	    "quarantine:list show restore export delete hold release purge review retry" \
	    "config:check" "key:show"; do
	cmd=${spec%%:*} subs=${spec#*:}
	hg_run $H "$cmd" frobnicate 1; rc=$?
	is "$rc" 64 "$cmd frobnicate exits 64"
	missing=
	for s in $subs; do
		grep -q "valid: .*\b$s\b" <<<"$HG_OUT" || missing="$missing $s"
	done
	ok "$cmd: the error names 'frobnicate' and lists every subcommand" \
		bash -c "grep -q \"hashgate $cmd: unknown subcommand 'frobnicate'\" <<<\"\$0\" && [ -z '$missing' ]" "$HG_OUT" ||
		diag "$HG_OUT" "missing:$missing"
	help=$($H "$cmd" --help)
	missing=
	for s in $subs; do
		grep -q "hashgate $cmd $s\b" <<<"$help" || missing="$missing $s"
	done
	is "$missing" "" "$cmd --help shows every subcommand"
	hg_run $H "$cmd"; rc=$?
	is "$rc" 64 "$cmd without a subcommand exits 64"
done

done_testing
