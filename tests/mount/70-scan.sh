#!/bin/bash
# 70-scan.sh - `hashgate scan` of a generated tree finds exactly the known files (md5, sha1,
# sha256 and a PDQ-known JPEG), follows no symlink, skips special files without hanging,
# reports unreadable directories and files that change while read without stopping, and
# exits 1 on matches, 0 on a clean tree.  No mount needed.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/adm-lib.sh"
adm_setup
T=$AT_TREE

# 240 clean files in nested directories, various sizes (some empty, some > 1 MiB chunk).
for d in a a/b a/b/c d e/f; do mkdir -p "$T/$d"; done
i=0
for d in a a/b a/b/c d e/f; do
	for n in $(seq 40); do
		i=$((i + 1))
		head -c $(( (i * 977) % 9000 )) /dev/urandom >"$T/$d/clean-$n"
	done
done
head -c $((3 * 1024 * 1024 + 17)) /dev/urandom >"$T/d/clean-big"
adm_known "$T/a/b/c/k-sha256.bin" 100003 sha256 t-sha256
adm_known "$T/d/k-md5 with space.bin" 5000 md5 t-md5 other
adm_known "$T/e/f/k-sha1.bin" 1 sha1 t-sha1
# Known content also outside the tree, reachable only through symlinks: must not be read.
adm_known "$AT/outside.bin" 4096 sha256 t-outside
ln -s "$AT/outside.bin" "$T/a/link-to-known"
ln -s "$AT" "$T/a/link-to-dir"
ln -s . "$T/a/loop"
mkfifo "$T/d/fifo"

# PDQ: the shared reference images; the database holds only the original's hash, so the
# rotated copy must match through the dihedral variants.
jpeg=0
PD=${HASHGATE_SHARED:-/work/shared}/testdata/pdq
orig=$PD/images/reg-test-input/dih/bridge-1-original.jpg
rot=$PD/images/reg-test-input/dih/bridge-2-rotate-90.jpg
if [ -f "$orig" ] && [ -f "$rot" ]; then
	grep ',images/reg-test-input/dih/bridge-1-original.jpg$' "$PD/expected/pdq.csv" |
		cut -d, -f1 >"$AT/lists/pdq"
	if [ -s "$AT/lists/pdq" ] && "$HG_CLI" db import --list t-pdq --type pdq \
		"$AT/lists/pdq" >/dev/null; then
		cp "$orig" "$T/e/photo.jpg"
		cp "$rot" "$T/e/photo-rotated.jpg"
		jpeg=2
	fi
fi
nfiles=$(find "$T" -type f | wc -l)

out=$(timeout 60 "$HG_CLI" scan --jobs 3 --json "$T" 2>"$AT/err"); rc=$?
is "$rc" 1 "scan exits 1 when it finds matches"
is "$(jnum "$out" files)" "$nfiles" "every regular file scanned ($nfiles)"
is "$(jnum "$out" errors)" 0 "no errors"
is "$(jnum "$out" matches)" $((3 + jpeg)) "exactly the known files match"
ok "sha256-known file reported" grep -q '"path":"'"$T"'/a/b/c/k-sha256.bin".*' <<<"$out"
ok "md5-known file (name with a space) reported with its list" \
	grep -q '"path":"'"$T"'/d/k-md5 with space.bin","size":5000,"algo":"md5","distance":0,"list":"t-md5","category":"other"' <<<"$out"
ok "sha1-known one-byte file reported" grep -q '"algo":"sha1","distance":0,"list":"t-sha1"' <<<"$out"
nok "nothing reached through a symlink" grep -q 'outside\|link-to' <<<"$out"
is "$(jnum "$out" skipped)" 4 "symlinks and the fifo are skipped, not read"
if [ "$jpeg" = 2 ]; then
	ok "JPEG matched by PDQ" grep -q '"path":"'"$T"'/e/photo.jpg","size":[0-9]*,"algo":"pdq","distance":0,"list":"t-pdq"' <<<"$out"
	ok "rotated JPEG matched by PDQ (dihedral)" grep -q '"path":"'"$T"'/e/photo-rotated.jpg","size":[0-9]*,"algo":"pdq"' <<<"$out"
else
	skip "JPEG matched by PDQ (shared PDQ test data not found)"
	skip "rotated JPEG matched by PDQ (shared PDQ test data not found)"
fi

# The human output names each match on its own line.
hgc scan --no-record "$T" >"$AT/human" 2>&1
is "$(grep -c '^MATCH ' "$AT/human")" $((3 + jpeg)) "one MATCH line per match"
ok "summary line with files/s and MB/s" grep -Eq '[0-9.]+ s, [0-9]+ files/s, [0-9.]+ MB/s' "$AT/human"

# On a terminal (script(1) provides one) a progress bar is drawn on stderr.
if command -v script >/dev/null; then
	script -qec "'$HG_CLI' --config '$AT_CONF' scan --no-record '$T'" /dev/null >"$AT/tty" 2>&1
	ok "progress bar on a terminal" grep -Eaq '\[(walking|[#.]{20})\] .*files .* matches .* errors' "$AT/tty"
	nok "no progress bar when not on a terminal" grep -Eaq '\[(walking|[#.]{20})\]' "$AT/human"
else
	skip "progress bar (script(1) missing)"
	skip "no progress bar when not on a terminal"
fi

# A single file as PATH, and a clean tree.
out=$(hgc scan --json --no-record "$T/a/b/c/k-sha256.bin"); rc=$?
ok "a single file can be scanned" test "$rc" = 1 -a "$(jnum "$out" files)" = 1
mkdir -p "$AT/clean"; cp "$T/a/clean-1" "$T/a/clean-2" "$AT/clean/"
hgc scan --no-record "$AT/clean" >/dev/null; rc=$?
is "$rc" 0 "a clean tree exits 0"
hgc scan "$AT/missing-dir" >/dev/null 2>&1; rc=$?
is "$rc" 2 "a missing PATH is an error (exit 2)"
hgc scan --jobs 0 "$T" >/dev/null 2>&1; rc=$?
is "$rc" 64 "bad --jobs is a usage error"

# Unreadable directory (scan as nobody): reported, the rest still scanned.
mkdir -p "$AT/perm/open" "$AT/perm/closed"
chmod 0755 "$AT/perm" "$AT/perm/open"; chmod 0700 "$AT/perm/closed"
cp "$T/a/b/c/k-sha256.bin" "$AT/perm/open/k"; cp "$T/a/clean-3" "$AT/perm/closed/x"
chmod 0644 "$AT/perm/open/k"
# The lists are readable by root and the database's group only: make nobody's group it.
chgrp 65534 "$AT_DB" "$AT_DB-wal" "$AT_DB-shm"; chmod 0640 "$AT_DB" "$AT_DB-wal" "$AT_DB-shm"
out=$(hg_as 65534 65534 "$HG_CLI" --config "$AT_CONF" scan --no-record --json "$AT/perm" 2>/dev/null); rc=$?
is "$rc" 1 "unprivileged scan still finds the readable match"
is "$(jnum "$out" errors)" 1 "the unreadable directory is one error"
ok "error names the directory" grep -q '"path":"'"$AT"'/perm/closed","error":"Permission denied"' <<<"$out"

# A file growing while it is read: reported as changed, not recorded, not fatal.
mkdir -p "$AT/grow"
head -c $((64 * 1024 * 1024)) /dev/zero >"$AT/grow/g"
cp "$T/a/clean-5" "$AT/grow/other"
( while :; do printf 'x' >>"$AT/grow/g"; done ) &
HG_BG_PIDS="$HG_BG_PIDS $!"
sleep 0.2
out=$(hgc scan --json --jobs 1 "$AT/grow" 2>/dev/null); rc=$?
kill $! 2>/dev/null
is "$rc" 0 "a changing file is not fatal (no matches: exit 0)"
ok "changing file reported" grep -q '"path":"'"$AT"'/grow/g","error":"changed while being read' <<<"$out"
is "$(jnum "$out" errors)" 1 "counted as one error"
done_testing
