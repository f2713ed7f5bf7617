#!/bin/bash
# 20-known-upload.sh - the verdict at close: a known upload (sha256, md5 or sha1 list) makes
# close() fail with EACCES, leaves nothing under its name (and its bytes nowhere) in the backing
# dir, and is quarantined with a record; a clean upload is published with the caller's
# ownership and mode; one log line per verdict, never file content.
. "$(dirname "$0")/lib.sh"
hg_setup
# Big uploads are hashed in 1 MiB chunks by the background hasher, with MD5 split off to a
# second thread: files known only by their md5 or only by their sha1 must still be caught.
BIGMD5=$HG_TMP/known/k-big-md5.bin BIGSHA1=$HG_TMP/known/k-big-sha1.bin
hg_random "$BIGMD5" $((24 * 1024 * 1024 + 3))
hg_random "$BIGSHA1" $((9 * 1024 * 1024 + 7))
md5sum <"$BIGMD5" | cut -d' ' -f1 >"$HG_TMP/known/l-bigmd5"
sha1sum <"$BIGSHA1" | cut -d' ' -f1 >"$HG_TMP/known/l-bigsha1"
hg_cli db import --list t-bigmd5 --category illegal --type md5 "$HG_TMP/known/l-bigmd5" \
	>/dev/null && hg_cli db import --list t-bigsha1 --category illegal --type sha1 \
	"$HG_TMP/known/l-bigsha1" >/dev/null || bail "could not import the big-file lists"
hg_mount allow_other || bail "mount failed"
M=$HG_MNT B=$HG_BACK W=$HG_TMP/w

for k in "$HG_K_SHA256:sha256" "$HG_K_MD5:md5" "$HG_K_SHA1:sha1" "$HG_K_BIG:sha256-3MiB" \
	"$BIGMD5:md5-24MiB" "$BIGSHA1:sha1-9MiB"; do
	f=${k%%:*} t=${k##*:}
	n=up-$t.bin
	ok "cp of a known file ($t list) fails" hg_refused cp "$f" "$M/$n"
	out=$(cp "$f" "$M/again-$n" 2>&1)
	ok "... with 'Permission denied' (EACCES) from close ($t)" grep -q 'Permission denied' <<<"$out"
	ok "nothing under its name in the backing dir ($t)" test ! -e "$B/$n"
	ok "nothing under its name through the mount ($t)" test ! -e "$M/$n"
	ok "its bytes are nowhere in the backing dir ($t)" hg_content_absent "$f"
	ok "a quarantine record names its path ($t)" hg_quarantined "$n"
done

# the digests recorded for a big upload are exactly what md5sum/sha1sum/sha256sum say
is "$(sqlite3 -readonly -separator ' ' "$HG_QDIR/records.db" \
	"SELECT md5, sha1, sha256 FROM records WHERE path IN ('up-md5-24MiB.bin','/up-md5-24MiB.bin') LIMIT 1" 2>&1)" \
	"$(md5sum <"$BIGMD5" | cut -d' ' -f1) $(sha1sum <"$BIGMD5" | cut -d' ' -f1) $(hg_sha256 "$BIGMD5")" \
	"the record of a 24 MiB upload holds its exact md5, sha1 and sha256"
head -c 20000000 "$BIGMD5" >"$HG_TMP/big-clean.bin"
ok "a clean 20 MB upload is published" cp "$HG_TMP/big-clean.bin" "$M/big-clean.bin"
ok "... byte for byte" cmp "$HG_TMP/big-clean.bin" "$B/big-clean.bin"

# the record
rec=$(sqlite3 -readonly -separator ' ' "$HG_QDIR/records.db" \
	"SELECT uid, gid, size FROM records WHERE path IN ('up-md5.bin','/up-md5.bin') LIMIT 1" 2>&1)
is "$rec" "0 0 65537" "the record holds uploader uid, gid and size"
sha=$(hg_sha256 "$HG_K_SHA256")
is "$(sqlite3 -readonly -separator ' ' "$HG_QDIR/records.db" \
	"SELECT sha256, list, category, algo, distance, action, mode FROM records WHERE path IN ('up-sha256.bin','/up-sha256.bin') LIMIT 1" 2>&1)" \
	"$sha t-sha256 illegal sha256 0 quarantine $((0644))" "the record holds the upload's sha256, the matched list, category, algorithm, distance, action and mode"
is "$(sqlite3 -readonly "$HG_QDIR/records.db" \
	"SELECT md5 IS NOT NULL AND sha1 IS NOT NULL AND pid > 0 AND time >= $(($(date +%s) - 120)) FROM records WHERE path IN ('up-sha256.bin','/up-sha256.bin') LIMIT 1" 2>&1)" \
	1 "the record holds all hashes, the uploader's pid and a recent time"
id=$(sqlite3 -readonly "$HG_QDIR/records.db" "SELECT id FROM records WHERE path IN ('up-sha256.bin','/up-sha256.bin') LIMIT 1" 2>/dev/null)
ok "hashgate quarantine export gives back the original bytes" \
	bash -c "'$HG_CLI' --config '$HG_CONF' quarantine export '$id' --out '$HG_TMP/exported' --plaintext && cmp '$HG_TMP/exported' '$HG_K_SHA256'"
ok "quarantined content is stored (objects/ not empty)" \
	bash -c "test -n \"\$(find '$HG_QDIR' -path '*objects*' -type f | head -n1)\""
ok "quarantined content is not stored in the clear" bash -c "
	for o in \$(find '$HG_QDIR' -type f); do cmp -s \"\$o\" '$HG_K_MD5' && exit 1; done; exit 0"
nok "the quarantine store is not reachable through the mount" \
	bash -c "find '$M' -name records.db | grep -q ."

# overwriting an existing file with known content keeps the old file
printf 'v1\n' >"$W/v1"
cp "$W/v1" "$M/report.txt"
ok "cp of known content over an existing file fails" hg_refused cp "$HG_K_SHA256" "$M/report.txt"
ok "the existing file keeps its old content in the backing dir" cmp "$W/v1" "$B/report.txt"
ok "and through the mount" cmp "$W/v1" "$M/report.txt"

# clean uploads: published under the caller's uid/gid and mode
mkdir "$M/home" && chown 2001:2001 "$M/home" && chmod 0755 "$M/home"
printf 'CANARY-%s-not-for-logs\n' "$RANDOM$RANDOM" >"$W/canary.txt"
chmod 0644 "$W/canary.txt"
ok "uid 2001 uploads a clean file with umask 027" \
	hg_as 2001 2001 bash -c "umask 027; cp '$W/canary.txt' '$M/home/c.txt'"
is "$(stat -c '%u:%g %a' "$B/home/c.txt" 2>&1)" "2001:2001 640" "published with the caller's uid:gid and mode"
ok "content identical" cmp "$W/canary.txt" "$B/home/c.txt"
ok "uid 2001 creates a 0600 file with install -m" \
	hg_as 2001 2001 install -m 0600 "$W/canary.txt" "$M/home/private"
is "$(stat -c '%u:%g %a' "$B/home/private" 2>&1)" "2001:2001 600" "mode 0600 kept"
hg_random "$W/u.bin" 100000
ok "uid 2001 uploading a known file fails" hg_refused hg_as 2001 2001 cp "$HG_K_SHA1" "$M/home/k"
ok "nothing under its name" test ! -e "$B/home/k"
is "$(sqlite3 -readonly "$HG_QDIR/records.db" "SELECT uid || ':' || gid FROM records WHERE path IN ('home/k','/home/k')" 2>&1)" \
	"2001:2001" "the record holds the uploader's uid:gid"

# one structured log line per match (stderr with -f), never file content; clean uploads are
# counted, not logged (log_clean = off)
sleep 0.2
ok "the log names the known upload's path" grep -q 'up-sha1.bin' "$HG_LOG"
nok "the clean upload's path is not logged (log_clean defaults to off)" grep -q 'home/c.txt' "$HG_LOG"
is "$(grep -cE '(^|[ ="/])up-md5\.bin' "$HG_LOG")" 1 "exactly one log line for one rejected upload"
nok "the log never contains file content" grep -q CANARY "$HG_LOG"

done_testing
