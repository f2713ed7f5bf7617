#!/bin/bash
# 19-splice.sh - splice=on: written data goes from /dev/fuse through a pipe into the file
# (max_write fitted to pipe-max-size, ops.c hg_init) instead of through the daemon's memory.
# What is written lands byte for byte, staged or in place, large or small, and is judged the
# same: a known upload is refused, also when it arrives in pieces larger than a page.
. "$(dirname "$0")/lib.sh"
hg_setup
M=$HG_MNT W=$HG_TMP/w

hg_mount "splice=on" || bail "mount (splice=on) failed"
hg_random "$W/big" $((5 * 1024 * 1024 + 123))
ok "a 5 MiB upload in 1 MiB writes reads back byte for byte" \
	sh -c "dd if='$W/big' of='$M/big' bs=1M 2>/dev/null && cmp '$W/big' '$M/big'"
ok "... as in the backing dir" cmp "$W/big" "$HG_BACK/big"
hg_random "$W/tail" $((2 * 1024 * 1024))
cp "$HG_BACK/big" "$W/grown" && cat "$W/tail" >>"$W/grown"
ok "an in-place append of 2 MiB in 64 KiB writes lands byte for byte" \
	sh -c "dd if='$W/tail' of='$M/big' bs=64k oflag=append conv=notrunc 2>/dev/null &&
		cmp '$W/grown' '$M/big'"
mkdir -p "$W/tree/a" "$W/tree/b"
for i in $(seq 40); do hg_random "$W/tree/a/f$i" $((i * 997)); hg_random "$W/tree/b/g$i" $((i * 31)); done
tar -C "$W/tree" -cf "$W/tree.tar" .
mkdir "$M/x"
ok "untar of 80 small files: every file byte for byte" \
	sh -c "tar -C '$M/x' -xf '$W/tree.tar' && diff -r '$W/tree' '$M/x'"
ok "a known upload is refused" hg_refused cp "$HG_K_BIG" "$M/known-big"
ok "... also written in 256 KiB pieces" hg_refused dd if="$HG_K_BIG" of="$M/known-dd" bs=256k
ok "... and a small known one" hg_refused cp "$HG_K_SHA256" "$M/known-small"
hg_umount

done_testing
