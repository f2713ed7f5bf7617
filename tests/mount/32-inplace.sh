#!/bin/bash
# 32-inplace.sh - in-place modifications of existing files (databases, logs) are written
# through and judged at close, and before any other process reads them: files that already
# existed in the backing dir and are turned into known content by an in-place write or an
# append are refused at close and pulled; a real SQLite database works through the mount;
# scan_max_size never exempts content written through the mount, in place or uploaded.
. "$(dirname "$0")/lib.sh"
hg_setup
FSOP=$HG_TOOLS/fsop
M=$HG_MNT B=$HG_BACK W=$HG_TMP/w
K=$HG_K_SHA256
KS=$(stat -c %s "$K")

# files that exist before the mount
hg_random "$B/pre-db" "$KS"
head -c 150000 "$K" >"$B/pre-log"
hg_random "$B/pre-mm" "$KS"
hg_mount || bail "mount failed"

ok "in-place pwrite turning an existing file into known content fails at close" \
	hg_refused "$FSOP" pwriteover "$M/pre-db" "$K"
ok "its bytes are not left in the backing dir" hg_content_absent "$K"
ok "the change was recorded in the quarantine store" hg_quarantined pre-db
ok "appending the rest of a known file to an existing log fails at close" \
	hg_refused bash -c "tail -c +150001 '$K' | dd of='$M/pre-log' oflag=append conv=notrunc status=none"
ok "its bytes are not left in the backing dir" hg_content_absent "$K"
ok "mmap write over an existing file into known content fails at close" \
	hg_refused "$FSOP" mmapover "$M/pre-mm" "$K"
ok "its bytes are not left in the backing dir" hg_content_absent "$K"

# a clean in-place workload: SQLite with its journal, several transactions, reopened
ok "sqlite3 creates a database through the mount" \
	sqlite3 "$M/app.db" "CREATE TABLE t(k INTEGER PRIMARY KEY, v TEXT); INSERT INTO t(v) VALUES ('a'),('b');"
for i in 1 2 3 4 5; do
	sqlite3 "$M/app.db" "INSERT INTO t(v) SELECT hex(randomblob(500)) FROM t LIMIT 50;" ||
		diag "insert round $i failed"
done
is "$(sqlite3 "$M/app.db" 'PRAGMA integrity_check;' 2>&1)" ok "the database is intact through the mount"
is "$(sqlite3 "$B/app.db" 'SELECT count(*) FROM t;' 2>&1)" \
	"$(sqlite3 "$M/app.db" 'SELECT count(*) FROM t;' 2>&1)" "the backing dir holds the same rows"
ok "a log appended to in 20 rounds keeps every line" bash -c "
	for i in \$(seq 20); do echo line\$i >>'$M/app.log' || exit 1; done
	test \"\$(wc -l <'$B/app.log')\" = 20"
hg_umount

# scan_max_size: in-place changes above it are written through; uploads are always scanned
hg_random "$B/bigfile" $((3 * 1024 * 1024 + 5))
hg_mount scan_max_size=1M || bail "mount with scan_max_size=1M failed"
ok "a new upload of a 3 MiB known file is still refused (scan_max_size only limits in-place rescans)" \
	hg_refused cp "$HG_K_BIG" "$M/newbig"
ok "... and absent" hg_content_absent "$HG_K_BIG"
ok "an O_TRUNC rewrite of an existing 3 MiB file with known content is refused (a new upload)" \
	hg_refused cp "$HG_K_BIG" "$M/bigfile"
ok "... and absent" hg_content_absent "$HG_K_BIG"
ok "... the existing file kept its size" test "$(stat -c %s "$B/bigfile")" = $((3 * 1024 * 1024 + 5))
# scan_max_size never exempts bytes written through the mount (issue 14): an in-place change
# of a file over it is judged at close like any other
ok "in-place rewrite of a 3 MiB file (over scan_max_size) into known content fails at close" \
	hg_refused "$FSOP" pwriteover "$M/bigfile" "$HG_K_BIG"
ok "... and its bytes are not left in the backing dir" hg_content_absent "$HG_K_BIG"
ok "... the daemon did not skip it" bash -c "! grep -v '^===' '$HG_LOG' | grep -q 'reason=scan_max_size'"

done_testing
