#!/bin/bash
# 15-staging.sh - an upload is staged: while it is being written its name does not exist in
# BACKING_DIR, an existing file of that name keeps its old content there, the writer sees the
# file normally, and no other reader gets the bytes of the unscanned upload.
. "$(dirname "$0")/lib.sh"
hg_setup
FSOP=$HG_TOOLS/fsop
hg_mount || bail "mount failed"
M=$HG_MNT B=$HG_BACK W=$HG_TMP/w

# Start "fsop slow DST SRC MS" in the background and wait until its first half is written.
slow_start() {
	"$FSOP" slow "$1" "$2" "$3" >"$W/slow.out" 2>"$W/slow.err" &
	SLOW=$!
	local i
	for i in $(seq 100); do
		grep -q writing "$W/slow.out" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

hg_random "$W/new" 1000003
slow_start "$M/new" "$W/new" 2500; hg_result $((1 - $?)) "a slow clean upload has started"
ok "while it is written, its name does not exist in the backing dir" test ! -e "$B/new"
ok "the writer's own view: the name exists through the mount" test -e "$M/new"
out=$(timeout 2 cat "$M/new" 2>/dev/null | head -c 600000 | wc -c)
is "$out" 0 "another reader gets none of the unscanned bytes"
wait "$SLOW"; rc=$?
is "$rc" 0 "the slow upload's close succeeded (clean)"
ok "after close it is published" cmp "$W/new" "$B/new"
ok "and reads back through the mount" cmp "$W/new" "$M/new"

# overwrite of an existing file
printf 'old content\n' >"$W/old"
cp "$W/old" "$M/doc" || diag "cp of old content failed"
hg_random "$W/newdoc" 700001
slow_start "$M/doc" "$W/newdoc" 2500; hg_result $((1 - $?)) "a slow overwrite of an existing file has started"
ok "while it is written, the backing dir keeps the old content" cmp "$W/old" "$B/doc"
got=$(timeout 2 cat "$M/doc" 2>/dev/null | head -c 100 | tr -c 'a-z \n' '?')
ok "another reader sees the old content or nothing, never the new bytes" \
	test "$got" = "old content" -o -z "$got"
wait "$SLOW"; rc=$?
is "$rc" 0 "the overwrite's close succeeded"
ok "after close the new content replaced the old one" cmp "$W/newdoc" "$B/doc"

# a slow known upload over an existing file: the old content stays, the known bytes never appear
printf 'keep me\n' >"$W/keep"
cp "$W/keep" "$M/victim"
slow_start "$M/victim" "$HG_K_BIG" 2000; hg_result $((1 - $?)) "a slow known overwrite has started"
ok "during it the backing dir still has the old content" cmp "$W/keep" "$B/victim"
wait "$SLOW"; rc=$?
ok "its close failed" test "$rc" -ne 0
ok "the close error is EACCES" grep -q EACCES "$W/slow.err"
ok "the old content is still there after the rejected overwrite" cmp "$W/keep" "$B/victim"
ok "the known bytes are nowhere in the backing dir" hg_content_absent "$HG_K_BIG"

# the same through a shell redirection (open, dup2, close of the original fd, writes, close):
# the first close() is not the end of the upload
head -c 300000 "$HG_K_BIG" >"$W/part1"
bash -c "{ cat '$W/part1'; sleep 2; tail -c +300001 '$HG_K_BIG'; } >'$M/redir'" 2>/dev/null &
RED=$!
sleep 1
ok "shell-redirected upload in progress: no file under its name in the backing dir" test ! -e "$B/redir"
ok "... and none of its bytes are in the backing dir yet" bash -c "
	for f in \$($(declare -f hg_find_reachable hg_staging_named); HG_BACK='$HG_BACK' HG_LOG='$HG_LOG' hg_find_reachable -type f -size +0); do cmp -s -n 300000 \"\$f\" '$W/part1' && exit 1; done; exit 0"
wait $RED
ok "after the shell's close, the known upload is absent" hg_content_absent "$HG_K_BIG"
hg_random "$W/r2" 400000
bash -c "{ head -c 200000 '$W/r2'; sleep 1.5; tail -c +200001 '$W/r2'; } >'$M/redir2'" &
RED=$!
sleep 0.7
ok "clean shell-redirected upload in progress: its bytes are not in the backing dir yet" bash -c "
	for f in \$($(declare -f hg_find_reachable hg_staging_named); HG_BACK='$HG_BACK' HG_LOG='$HG_LOG' hg_find_reachable -type f -size +0); do cmp -s -n 200000 \"\$f\" '$W/r2' && exit 1; done; exit 0"
if hg_staging_named; then
	# staging=named: the bytes are in a root-only file of random name, outside the mount
	S=$B/.hashgate-staging
	is "$(stat -c %a "$S")" 700 "named staging: the staging dir is mode 0700"
	staged=$(find "$S" -maxdepth 1 -name 'up.*' -type f | head -n1)
	ok "named staging: the upload in flight is a file in the staging dir" test -n "$staged"
	ok "named staging: its name carries 128 random bits" \
		bash -c "[[ '${staged##*/}' =~ \.[0-9a-f]{32}\$ ]]"
	nok "named staging: the staging dir cannot be reached through the mount" \
		ls "$M/.hashgate-staging"
	nok "named staging: nor can the staged file" test -e "$M/.hashgate-staging/${staged##*/}"
else
	skip "named staging checks (this mount stages in O_TMPFILEs)"
fi
wait $RED
ok "after close the clean shell-redirected upload is published" cmp "$W/r2" "$B/redir2"
is "$(find "$B/.hashgate-staging" -maxdepth 1 -name 'up.*' | wc -l)" 0 \
	"after close nothing is left in the staging dir"

# the writer may rename (or remove) its upload before closing it, as on any filesystem
hg_random "$W/mv" 100000
ok "the writer renames its still-open upload, then writes more and closes" bash -c "
	exec 3>'$M/tmpname'; head -c 50000 '$W/mv' >&3; mv '$M/tmpname' '$M/final' &&
	tail -c +50001 '$W/mv' >&3 && exec 3>&-"
ok "... it is published under the new name" cmp "$W/mv" "$B/final"
ok "... and nothing is left under the old name" test ! -e "$B/tmpname"
for fl in none noreplace; do
	ok "renameat2($fl) of a still-open upload works" bash -c "
		exec 3>'$M/open-$fl'; echo data >&3; '$FSOP' renameat2 '$M/open-$fl' '$M/moved-$fl' $fl"
	is "$(cat "$B/moved-$fl" 2>&1)" data "... published under the new name after close ($fl)"
done
ok "the writer unlinks its still-open upload, then closes" bash -c "
	exec 3>'$M/gone'; head -c 5000 '$W/mv' >&3; rm '$M/gone' && exec 3>&-"
ok "... nothing is published" test ! -e "$B/gone"

# another user (allow_other mount) during an upload: sees neither the name nor any byte
hg_umount
hg_mount allow_other || bail "remount with allow_other failed"
mkdir -m 0777 "$M/shared"
hg_random "$W/u2" 800001
slow_start "$M/shared/up" "$W/u2" 2500; hg_result $((1 - $?)) "a slow upload into a shared dir has started"
got=$(hg_as 2001 2001 timeout 2 cat "$M/shared/up" 2>/dev/null | wc -c)
is "$got" 0 "uid 2001 reads none of the unscanned bytes"
nok "uid 2001 does not see the name while it is being written" hg_as 2001 2001 stat "$M/shared/up"
wait "$SLOW"; rc=$?
is "$rc" 0 "the upload's close succeeded"
ok "afterwards uid 2001 reads the published file" bash -c "hg_as() { setpriv --reuid=\$1 --regid=\$2 --clear-groups -- \"\${@:3}\"; }; hg_as 2001 2001 cat '$M/shared/up' | cmp - '$W/u2'"

# O_TRUNC open of an existing file without any write, then close: a zero-length upload
printf 'abc\n' >"$M/empty-me"
ok "truncating open (: >) succeeds" bash -c ": >'$M/empty-me'"
is "$(stat -c %s "$B/empty-me" 2>&1)" 0 "the backing file is now empty"

done_testing
