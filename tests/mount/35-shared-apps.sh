#!/bin/bash
# 35-shared-apps.sh - applications that legitimately share a file in place keep working under
# the gate (fs/gate.c): a SQLite database written by two processes at once (rollback journal),
# a log appended to by two writers, and appends to a large file that resume the judged prefix's
# hash instead of re-reading it.  Known content appended by one writer is still refused.
. "$(dirname "$0")/lib.sh"
hg_setup
M=$HG_MNT B=$HG_BACK
PY=/usr/bin/python3
[ -x "$PY" ] || bail "/usr/bin/python3 is missing (scripts/deps.sh test)"
hg_mount allow_other,log_level=debug,log_clean=on || bail "mount failed"
mkdir "$M/app" && chmod 0777 "$M/app"

# two processes (two uids sharing a group, as php-fpm pools do) insert into one database
cat >"$HG_TMP/db.py" <<'PY'
import sqlite3, sys, random, time
db, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
c = sqlite3.connect(db, timeout=30)
c.execute("CREATE TABLE IF NOT EXISTS t(k INTEGER PRIMARY KEY, who TEXT, v BLOB)")
for i in range(n):
    with c:
        c.execute("INSERT INTO t(who, v) VALUES (?, randomblob(?))", (who, random.randint(10, 3000)))
    # the other process reads what this one wrote
    c.execute("SELECT count(*) FROM t").fetchone()
c.close()
PY
"$PY" -c "import sqlite3; c=sqlite3.connect('$M/app/shared.db'); c.execute('CREATE TABLE t(k INTEGER PRIMARY KEY, who TEXT, v BLOB)'); c.commit()"
chmod 0666 "$M/app/shared.db"
start=$(date +%s.%N)
hg_as 4242 4242 "$PY" "$HG_TMP/db.py" "$M/app/shared.db" a 150 & p1=$!
hg_as 4243 4243 "$PY" "$HG_TMP/db.py" "$M/app/shared.db" b 150 & p2=$!
wait $p1; r1=$?
wait $p2; r2=$?
end=$(date +%s.%N)
ok "two processes ran 150 transactions each on one database" test "$r1$r2" = 00
is "$(sqlite3 "$M/app/shared.db" 'PRAGMA integrity_check;' 2>&1)" ok "the database is intact"
is "$(sqlite3 "$M/app/shared.db" 'SELECT count(*) FROM t;' 2>&1)" 300 "every row of both writers is there"
is "$(sqlite3 "$B/app/shared.db" 'SELECT count(*) FROM t;' 2>&1)" 300 "... also in the backing dir"
diag "SQLite, 2 x 150 transactions through the mount: $(echo "$end - $start" | bc) s"

# a log appended to by two writers, each opening, appending a line and closing
cat >"$HG_TMP/log.sh" <<'SH'
for i in $(seq 200); do echo "$1 line $i" >>"$2" || exit 1; done
SH
: >"$M/app/app.log" && chmod 0666 "$M/app/app.log"
hg_as 4242 4242 bash "$HG_TMP/log.sh" w1 "$M/app/app.log" & p1=$!
hg_as 4243 4243 bash "$HG_TMP/log.sh" w2 "$M/app/app.log" & p2=$!
wait $p1; r1=$?
wait $p2; r2=$?
ok "two writers appended 200 lines each" test "$r1$r2" = 00
is "$(wc -l <"$B/app/app.log")" 400 "the log holds all 400 lines"
is "$(grep -c '^w1 line' "$B/app/app.log")" 200 "... 200 of the first writer"

# appends to a large judged file resume its hash: the prefix is not read again
hg_random "$HG_TMP/big" $((64 * 1024 * 1024))
cp "$HG_TMP/big" "$M/app/big.log" || diag "big upload failed"
before=$(grep -c 'verdict=clean kind=inplace' "$HG_LOG")
for i in 1 2 3 4 5 6 7 8; do
	head -c 65536 /dev/urandom >>"$M/app/big.log" || diag "append $i failed"
done
after=$(grep -c 'verdict=clean kind=inplace' "$HG_LOG")
is "$((after - before))" 8 "each of 8 appends to a 64 MiB file got its own clean verdict"
is "$(grep -c 'verdict hash resumed at byte' "$HG_LOG")" 8 "... each hashed from the judged prefix on"
ok "... and its content is the upload plus the appends" \
	test "$(stat -c %s "$B/app/big.log")" = $((64 * 1024 * 1024 + 8 * 65536))
# known content appended to a large clean file is still caught (the resumed hash is exact)
K=$HG_K_SHA256
head -c 100000 "$K" >"$M/app/k.log"
ok "the tail of a known file appended to its head is refused" \
	hg_refused bash -c "tail -c +100001 '$K' >>'$M/app/k.log'"
ok "... and its bytes are not left in the backing dir" hg_content_absent "$K"

done_testing
