#!/bin/bash
# 22-rsync.sh - rsync (temp file + rename, delta updates, --inplace) through the mount: clean
# files arrive identical with their modes and times, a known file never appears under its name,
# under rsync's temporary name or anywhere else in the backing dir, and rsync reports failure.
. "$(dirname "$0")/lib.sh"
hg_setup
command -v rsync >/dev/null || skip_all "rsync not installed (make deps)"
hg_mount || bail "mount failed"
M=$HG_MNT B=$HG_BACK W=$HG_TMP/w

mkdir -p "$W/src/sub"
hg_random "$W/src/a.bin" 150000
hg_random "$W/src/sub/b.bin" 70001
printf 'hello\n' >"$W/src/sub/c.txt"
chmod 0640 "$W/src/sub/c.txt"
touch -d '2010-01-01 UTC' "$W/src/a.bin"
ok "rsync -a of a clean tree succeeds" rsync -a "$W/src/" "$M/tree/"
ok "the tree is identical in the backing dir" diff -r "$W/src" "$B/tree"
is "$(stat -c %a "$B/tree/sub/c.txt")" 640 "mode preserved"
is "$(stat -c %Y "$B/tree/a.bin")" "$(stat -c %Y "$W/src/a.bin")" "mtime preserved"

cp "$HG_K_SHA256" "$W/src/sub/known.bin"
nok "rsync -a of a tree holding a known file reports failure" rsync -a "$W/src/" "$M/tree2/"
ok "the clean files of that tree arrived" cmp "$W/src/a.bin" "$B/tree2/a.bin"
ok "no file under the known file's name" test ! -e "$B/tree2/sub/known.bin"
ok "no rsync temporary left behind" bash -c "! ls -A '$B/tree2/sub' | grep -q '^\.known'"
ok "the known bytes are nowhere in the backing dir" hg_content_absent "$HG_K_SHA256"

# delta update of an existing clean file into the known content (basis file + temp + rename)
head -c 150000 "$HG_K_SHA256" >"$W/near"
hg_random "$W/tail" 50013
cat "$W/tail" >>"$W/near"
cp "$W/near" "$M/delta.bin"
cp "$HG_K_SHA256" "$W/delta.bin"
nok "rsync delta update to known content fails" rsync --no-whole-file -I "$W/delta.bin" "$M/delta.bin"
ok "the existing file keeps its old content" cmp "$W/near" "$B/delta.bin"
ok "known bytes absent after the delta update" hg_content_absent "$HG_K_SHA256"

cp "$W/near" "$M/inplace.bin"
nok "rsync --inplace update to known content fails" rsync --inplace --no-whole-file -I "$W/delta.bin" "$M/inplace.bin"
ok "known bytes absent after --inplace" hg_content_absent "$HG_K_SHA256"

nok "rsync of a single known file fails" rsync "$HG_K_BIG" "$M/big.bin"
ok "no big.bin, no temporary" bash -c "test -z \"\$(ls -A '$B' | grep 'big\.bin')\""
ok "big known bytes absent" hg_content_absent "$HG_K_BIG"

done_testing
