#!/bin/bash
# 23-tar.sh - tar extraction through the mount: clean members arrive identical (with modes,
# times, symlinks, hard links), a known member is refused (tar fails) and its bytes appear
# nowhere in the backing dir; an overwrite by a known member keeps the old file.
. "$(dirname "$0")/lib.sh"
hg_setup
hg_mount || bail "mount failed"
M=$HG_MNT B=$HG_BACK W=$HG_TMP/w

mkdir -p "$W/t/d1/d2"
for i in $(seq 1 40); do hg_random "$W/t/d1/f$i" $((i * 997)); done
printf 'readme\n' >"$W/t/README"
chmod 0600 "$W/t/README"
ln -s d1/f1 "$W/t/link"
ln "$W/t/d1/f2" "$W/t/d1/d2/hard"
tar -C "$W/t" -cf "$W/clean.tar" .
mkdir "$M/ex"
ok "extracting a clean archive succeeds" tar -C "$M/ex" -xpf "$W/clean.tar"
ok "extracted tree equals the source" diff -r --no-dereference "$W/t" "$B/ex"
is "$(stat -c %a "$B/ex/README")" 600 "member mode preserved"
is "$(readlink "$B/ex/link")" d1/f1 "symlink member"
ok "hard link member shares the inode" test "$B/ex/d1/f2" -ef "$B/ex/d1/d2/hard"
is "$(stat -c %Y "$B/ex/d1/f3")" "$(stat -c %Y "$W/t/d1/f3")" "member mtime preserved"

mkdir -p "$W/k/x"
hg_random "$W/k/x/before" 5000
cp "$HG_K_BIG" "$W/k/x/known.bin"
hg_random "$W/k/x/zafter" 5001
tar -C "$W/k" -cf "$W/known.tar" x/before x/known.bin x/zafter
ok "extracting an archive with a known member fails" hg_refused tar -C "$M" -xf "$W/known.tar"
ok "members before it arrived" cmp "$W/k/x/before" "$B/x/before"
ok "members after it arrived" cmp "$W/k/x/zafter" "$B/x/zafter"
ok "no file under the known member's name" test ! -e "$B/x/known.bin"
ok "its bytes are nowhere in the backing dir" hg_content_absent "$HG_K_BIG"

printf 'precious\n' >"$W/prec"
cp "$W/prec" "$M/x/known.bin"
ok "extracting the known member over an existing file fails" hg_refused tar -C "$M" --overwrite -xf "$W/known.tar" x/known.bin
ok "the existing file keeps its content" cmp "$W/prec" "$B/x/known.bin"
ok "known bytes still absent" hg_content_absent "$HG_K_BIG"

cp "$HG_K_SHA1" "$W/k/x/small.bin"
tar -C "$W/k" -czf "$W/known.tgz" x/small.bin
ok "extracting a gzip archive with a known member fails" hg_refused tar -C "$M" -xzf "$W/known.tgz"
ok "known bytes (sha1 list) absent" hg_content_absent "$HG_K_SHA1"

done_testing
