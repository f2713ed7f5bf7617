#!/bin/bash
# 71-scan-rescan.sh - the scan database: a rescan re-reads only new or changed files, matches
# the stored digests of unchanged files against a list imported after the first scan, and
# --rehash / --no-record bypass it.  Counts come from the JSON summary.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/adm-lib.sh"
adm_setup
T=$AT_TREE
mkdir -p "$T/x/y" "$T/z"
for n in $(seq 60); do head -c $((n * 131)) /dev/urandom >"$T/x/f$n"; done
for n in $(seq 60); do head -c $((n * 17 + 1)) /dev/urandom >"$T/x/y/g$n"; done
for n in $(seq 30); do head -c 4096 /dev/urandom >"$T/z/h$n"; done
adm_known "$T/z/known" 7777 sha256 first
total=$(find "$T" -type f | wc -l)

scan() { hgc scan --json --jobs 2 "$@" "$T" 2>"$AT/err"; }

out=$(scan); rc=$?
is "$rc" 1 "first scan finds the known file"
is "$(jnum "$out" files)" "$total" "first scan: $total files"
is "$(jnum "$out" hashed)" "$total" "first scan hashes every file"
is "$(jnum "$out" reused)" 0 "nothing to reuse yet"
ok "scan db created 0600" test "$(stat -c %a "$AT_SCANDB")" = 600

out=$(scan)
is "$(jnum "$out" hashed)" 0 "unchanged rescan hashes nothing"
is "$(jnum "$out" reused)" "$total" "and reuses all $total stored digests"
is "$(jnum "$out" matches)" 1 "stored digests still match"

# Change three files (content, size-preserving rewrite with new mtime, touch), add two.
printf 'more' >>"$T/x/f3"
head -c 4096 /dev/urandom >"$T/z/h7"
touch -d '2001-01-01' "$T/x/y/g9"
head -c 100 /dev/urandom >"$T/new1"; head -c 100 /dev/urandom >"$T/x/new2"
out=$(scan)
is "$(jnum "$out" hashed)" 5 "rescan after changes hashes only the 5 new or changed files"
is "$(jnum "$out" reused)" $((total - 3)) "and reuses the other $((total - 3))"

# A new list arrives holding a file that was clean in every scan so far, and unchanged.
sha1sum <"$T/x/y/g42" | cut -d' ' -f1 >"$AT/lists/late"
hgc db import --list late --category illegal --type sha1 "$AT/lists/late" >/dev/null
out=$(scan); rc=$?
is "$(jnum "$out" hashed)" 0 "after a new list: still nothing re-read"
is "$(jnum "$out" matches)" 2 "the new list matches the stored digest of an unchanged file"
ok "the late match is g42 via sha1" grep -q '"path":"'"$T"'/x/y/g42","size":[0-9]*,"algo":"sha1","distance":0,"list":"late"' <<<"$out"

# A file replaced by another with the same size and mtime (new inode): re-read.
cp -p "$T/z/h1" "$AT/h1.copy"; head -c 4096 /dev/urandom >"$AT/h1.new"
touch -r "$T/z/h1" "$AT/h1.new"; mv "$AT/h1.new" "$T/z/h1"
out=$(scan)
is "$(jnum "$out" hashed)" 1 "same size and mtime but a new inode: re-read"

out=$(scan --rehash)
is "$(jnum "$out" hashed)" $((total + 2)) "--rehash reads everything"
out=$(scan --no-record)
is "$(jnum "$out" hashed)" $((total + 2)) "--no-record reads everything"
# Scanning the directory that holds the scan db itself: its own files are skipped, so they
# are never reported as "changed while being read".
out=$(hgc scan --json "$AT" 2>/dev/null)
is "$(jnum "$out" errors)" 0 "scanning the dir holding the scan db and audit log: no errors"
own=0
for f in "$AT_SCANDB" "$AT_SCANDB-wal" "$AT_SCANDB-shm" "$AT_AUDIT"; do [ -e "$f" ] && own=$((own + 1)); done
is "$(jnum "$out" files)" $(( $(find "$AT" -type f | wc -l) - own )) "its own $own files are not scanned"
# -x: a directory on another file system (a tmpfs mount) is not entered.
if mkdir -p "$T/other" && mount -t tmpfs -o size=1m none "$T/other" 2>/dev/null; then
	head -c 100 /dev/urandom >"$T/other/f"
	n1=$(jnum "$(hgc scan --json --no-record "$T")" files)
	n2=$(jnum "$(hgc scan --json --no-record -x "$T")" files)
	umount "$T/other"
	is "$n2" $((n1 - 1)) "--one-file-system skips the file on the other file system"
else
	skip "--one-file-system (cannot mount a tmpfs)"
fi

# Quarantine straight from stored digests: the file is opened only to be stored.
cp "$T/x/y/g42" "$AT/g42.orig"
out=$(hgc scan --json --action quarantine "$T"); rc=$?
is "$(jnum "$out" hashed)" 0 "quarantine run reuses the stored digests"
is "$(jnum "$out" quarantined)" 2 "and quarantines both matches"
ok "g42 removed from the tree" test ! -e "$T/x/y/g42"
id=$(hgc quarantine list --list late --json | grep -o '"id":[0-9]*' | head -n1 | cut -d: -f2)
ok "its quarantined content is the original" \
	sh -c "'$HG_CLI' --config '$AT_CONF' quarantine export '$id' --out '$AT/g42.out' --plaintext >/dev/null && cmp '$AT/g42.orig' '$AT/g42.out'"

# --prune: rows of files that are gone (2 deleted now, 2 quarantined above) are dropped.
rm "$T/x/f10" "$T/x/y/g11"
out=$(hgc scan --json --prune "$T")
is "$(jnum "$out" pruned)" 4 "--prune drops the 4 rows of files that no longer exist"
gone=0
while IFS= read -r p; do [ -e "$p" ] || gone=$((gone + 1)); done \
	< <(sqlite3 "$AT_SCANDB" "SELECT path FROM files WHERE path LIKE '$T/%'")
is "$gone" 0 "every remaining row under the tree is an existing file"
ok "rows outside the scanned root are kept" \
	test "$(sqlite3 "$AT_SCANDB" "SELECT count(*) FROM files WHERE path = '$AT/lists/first.sha256'")" = 1
done_testing
