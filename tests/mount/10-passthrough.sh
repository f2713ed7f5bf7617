#!/bin/bash
# 10-passthrough.sh - every ordinary operation passes through to the backing dir unchanged:
# read/write, create, mkdir/rmdir, unlink, rename (plain, RENAME_NOREPLACE, RENAME_EXCHANGE),
# link, symlink/readlink, chmod/chown/utimens, truncate, fallocate, xattrs, statfs, fsync,
# flock, readdir; and nothing through the mount reaches outside BACKING_DIR.
. "$(dirname "$0")/lib.sh"
hg_setup
FSOP=$HG_TOOLS/fsop
hg_mount || bail "mount failed"
M=$HG_MNT B=$HG_BACK W=$HG_TMP/w

# read what is already in the backing dir
hg_random "$B/pre.bin" 300001
ok "pre-existing file reads back identically" cmp "$B/pre.bin" "$M/pre.bin"
hg_random "$W/c1" 123457
ok "clean upload with cp succeeds" cp "$W/c1" "$M/c1"
ok "clean upload is in the backing dir with the same bytes" cmp "$W/c1" "$B/c1"
ok "and reads back through the mount" cmp "$W/c1" "$M/c1"
is "$(stat -c %s "$M/c1")" 123457 "size through the mount"

ok "mkdir" mkdir "$M/d"
ok "mkdir appears in backing dir" test -d "$B/d"
ok "nested create" sh -c "echo hello >'$M/d/f'"
is "$(cat "$B/d/f" 2>&1)" hello "nested file content in backing dir"
ok "unlink" rm "$M/d/f"
ok "unlink removed it from the backing dir" test ! -e "$B/d/f"
ok "rmdir" rmdir "$M/d"
ok "rmdir removed it from the backing dir" test ! -e "$B/d"
nok "rmdir of a non-empty dir fails" sh -c "mkdir '$M/ne' && touch '$M/ne/x' && rmdir '$M/ne'"

# rename family
echo one >"$M/r1"; echo two >"$M/r2"
ok "rename" mv "$M/r1" "$M/r3"
is "$(cat "$B/r3" 2>&1)" one "renamed file in backing dir"
ok "old name gone" test ! -e "$B/r1"
nok "RENAME_NOREPLACE onto an existing name fails" "$FSOP" renameat2 "$M/r3" "$M/r2" noreplace
is "$(cat "$B/r2" 2>&1)" two "... and the target is untouched"
ok "RENAME_NOREPLACE to a free name works" "$FSOP" renameat2 "$M/r3" "$M/r4" noreplace
ok "RENAME_EXCHANGE" "$FSOP" renameat2 "$M/r4" "$M/r2" exchange
is "$(cat "$B/r2" 2>&1)/$(cat "$B/r4" 2>&1)" one/two "RENAME_EXCHANGE swapped the contents in the backing dir"
ok "rename over an existing file" mv -f "$M/r2" "$M/r4"
is "$(cat "$M/r4")" one "rename replaced the target"
ok "rename of a directory" sh -c "mkdir '$M/da' && touch '$M/da/x' && mv '$M/da' '$M/db'"
ok "directory contents followed the rename" test -e "$B/db/x"

# links
ok "hard link" ln "$M/r4" "$M/r4link"
is "$(stat -c %h "$B/r4")" 2 "link count 2 in the backing dir"
is "$(stat -c %h "$M/r4")" 2 "link count 2 through the mount"
ok "hard link shares the inode in the backing dir" test "$B/r4" -ef "$B/r4link"
ok "symlink" ln -s r4 "$M/sl"
is "$(readlink "$M/sl")" r4 "readlink through the mount"
is "$(readlink "$B/sl")" r4 "symlink in the backing dir"
is "$(cat "$M/sl")" one "reading through the symlink"
ok "absolute symlink is stored verbatim" ln -s /etc/hostname "$M/abs"
is "$(readlink "$B/abs")" /etc/hostname "absolute symlink target unchanged"

# attributes
ok "chmod" chmod 0640 "$M/r4"
is "$(stat -c %a "$B/r4")" 640 "mode in the backing dir"
ok "chown" chown 1234:5678 "$M/r4"
is "$(stat -c %u:%g "$B/r4")" 1234:5678 "owner in the backing dir"
ok "chown of a symlink itself (lchown)" chown -h 4321:8765 "$M/sl"
is "$(stat -c %u:%g "$B/sl")" 4321:8765 "symlink owner in the backing dir"
ok "utimens" touch -m -d '2001-02-03 04:05:06.123456789 UTC' "$M/r4"
is "$(stat -c %Y "$B/r4")" "$(date -d '2001-02-03 04:05:06 UTC' +%s)" "mtime in the backing dir"
is "$(stat -c %y "$M/r4")" "$(stat -c %y "$B/r4")" "mtime with nanoseconds through the mount"
ok "atime set" touch -a -d '2002-01-01 00:00:00 UTC' "$M/r4"
is "$(stat -c %X "$B/r4")" "$(date -d '2002-01-01 UTC' +%s)" "atime in the backing dir"

# size changes
hg_random "$W/t" 10000
cp "$W/t" "$M/t"
ok "truncate shorter" truncate -s 777 "$M/t"
is "$(stat -c %s "$B/t")" 777 "truncated size in the backing dir"
ok "truncated content is the prefix" cmp -n 777 "$W/t" "$B/t"
ok "truncate longer" truncate -s 5000 "$M/t"
is "$(stat -c %s "$M/t")" 5000 "extended size through the mount"
is "$(tail -c 4223 "$B/t" | tr -d '\0' | wc -c)" 0 "extension reads as zeros"
ok "fallocate" fallocate -l 1048576 "$M/fa"
is "$(stat -c %s "$B/fa")" 1048576 "fallocated size in the backing dir"
ok "fallocate allocated blocks" test "$(stat -c %b "$B/fa")" -ge 2048
ok "fallocate --punch-hole" fallocate -p -o 0 -l 65536 "$M/fa"
is "$(head -c 65536 "$B/fa" | tr -d '\0' | wc -c)" 0 "punched range reads as zeros"

# xattrs
if command -v setfattr >/dev/null; then
	ok "setfattr user.x" setfattr -n user.hg -v hello "$M/r4"
	is "$(getfattr --absolute-names --only-values -n user.hg "$B/r4" 2>&1)" hello "xattr in the backing dir"
	is "$(getfattr --absolute-names --only-values -n user.hg "$M/r4" 2>&1)" hello "getfattr through the mount"
	ok "listxattr shows it" sh -c "getfattr -d '$M/r4' | grep -q user.hg"
	ok "removexattr" setfattr -x user.hg "$M/r4"
	nok "removed xattr is gone from the backing dir" getfattr -n user.hg "$B/r4"
else
	skip "setfattr (attr package) not installed"
fi

# statfs, fsync, flock, readdir
is "$(stat -f -c '%b %S' "$M")" "$(stat -f -c '%b %S' "$B")" "statfs reports the backing filesystem's size"
ok "fsync through the mount" dd if=/dev/zero of="$M/sync" bs=4096 count=4 conv=fsync status=none
ok "flock" flock -x "$M/sync" true
ok "a second exclusive flock waits/fails while one is held" sh -c "flock -x '$M/sync' sleep 1 & sleep 0.3; ! flock -xn '$M/sync' true; r=\$?; wait; exit \$r"
ok "POSIX (fcntl) write lock: a second process cannot take a conflicting lock" perl -e '
	use Fcntl qw(F_SETLK F_WRLCK SEEK_SET); use POSIX qw(EAGAIN EACCES);
	my $l = pack("s s x4 q q i x4", F_WRLCK, SEEK_SET, 0, 0, 0);
	open(my $f, "+<", $ARGV[0]) or die "open: $!"; fcntl($f, F_SETLK, $l) or die "lock: $!";
	my $pid = fork(); if (!$pid) { open(my $g, "+<", $ARGV[0]) or exit 3;
		exit(fcntl($g, F_SETLK, $l) ? 1 : ($!{EAGAIN} || $!{EACCES}) ? 0 : 2); }
	waitpid($pid, 0); exit($? >> 8);' "$M/sync"
mkdir "$M/many"
for i in $(seq 1 300); do : >"$M/many/f$i"; done
is "$(ls "$M/many" | wc -l)" 300 "readdir lists 300 entries"
is "$(ls "$M/many" | sort | md5sum)" "$(ls "$B/many" | sort | md5sum)" "readdir names equal the backing dir's"
chmod 0600 "$M/many/f7"; chown 77:88 "$M/many/f9"
is "$(cd "$M/many" && stat -c '%n %s %a %u %g %h' * | sort | md5sum)" \
   "$(cd "$B/many" && stat -c '%n %s %a %u %g %h' * | sort | md5sum)" "readdir(plus) attributes equal the backing dir's"
is "$(stat -c '%s %a %u %Y' "$M/r4")" "$(stat -c '%s %a %u %Y' "$B/r4")" "stat through the mount equals the backing file's"

# the mount shows the backing dir's entries and nothing else (staging areas stay hidden)
ok "every name at the mount root exists in the backing dir" bash -c "test -z \"\$(comm -23 <(ls -A '$M' | sort) <(ls -A '$B' | sort))\""

done_testing
