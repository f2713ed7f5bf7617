#!/bin/bash
# 77-status-health.sh - `hashgate status` as a monitoring signal and the privacy default
# (issue 17, defects 6 and 7): clean uploads are counted but not logged unless log_clean=on;
# status exits 0 when healthy, 1 with the problem named when verdict records cannot be
# appended to the audit log or a SIGHUP reload was refused, 2 when the database is unreadable;
# the Prometheus series carry no pid label and say what is wrong; a non-root status does not
# fail on root's textfile; a missing $HASHGATE_CONFIG is an error; `config check` tests a file.
. "$(dirname "$0")/lib.sh"
hg_setup
echo "prometheus_textfile = $HG_TMP/state/hg.prom" >>"$HG_CONF"
hg_mount allow_other || bail "mount failed"
C() { "$HG_CLI" --config "$HG_CONF" "$@"; }
# Wait until the daemon's status shows at least $1 scanned uploads (it publishes every 5 s).
wait_status() {
	local i n
	for i in $(seq 30); do
		n=$(C status --json 2>/dev/null | grep -o '"uploads_scanned":[0-9]*' | head -n1 | cut -d: -f2)
		[ "${n:-0}" -ge "$1" ] && return 0
		sleep 0.5
	done
	return 1
}

hg_random "$HG_TMP/w/clean" 4321
ok "clean upload" cp "$HG_TMP/w/clean" "$HG_MNT/private-name.txt"
ok "status shows it scanned" wait_status 1
nok "the daemon log names no clean upload (log_clean defaults to off)" \
	grep -q 'private-name\|verdict=clean' "$HG_LOG"
j=$(C status --json)
ok "but it is counted" grep -q '"uploads_clean":1,' <<<"$j"
hg_run C status; rc=$?
is "$rc" 0 "a healthy instance: status exits 0"
ok "  state ok" grep -q "state       ok" <<<"$HG_OUT"
ok "the config's textfile is written" test -s "$HG_TMP/state/hg.prom"
nok "  no series has a pid label" grep -q 'pid=' "$HG_TMP/state/hg.prom"
ok "  problems gauge 0 for the mount" grep -q "^hashgate_problems{mountpoint=\"$HG_MNT\",backing=\"$HG_BACK\"} 0\$" "$HG_TMP/state/hg.prom"
ok "  database readable" grep -qx 'hashgate_database_readable 1' "$HG_TMP/state/hg.prom"

# Non-root: the config's textfile belongs to root; status still works.
chmod 0755 "$HG_TMP/state"
# (a copy of the CLI: the build dir may sit where nobody cannot reach, e.g. under /root)
install -m 0755 "$HG_CLI" "$HG_TMP/state/hashgate-cli"
hg_run su nobody -s /bin/sh -c "HASHGATE_CONFIG='$HG_CONF' '$HG_TMP/state/hashgate-cli' status"; rc=$?
out=$HG_OUT
# (it may still exit 2 when the database itself is root-only: that is "cannot tell")
ok "non-root status does not fail on root's textfile (rc=$rc)" bash -c "! grep -q 'textfile' <<<\"\$1\"" _ "$out"
ok "  and shows the instance" grep -q "hashgatefs pid $HG_PID" <<<"$out"

# A missing $HASHGATE_CONFIG is an error, not the defaults.
hg_run env HASHGATE_CONFIG="$HG_TMP/nope.conf" "$HG_CLI" status; rc=$?
is "$rc" 2 "a missing \$HASHGATE_CONFIG file: exit 2"
ok "  naming the file" grep -q "nope.conf" <<<"$HG_OUT"
hg_run env HASHGATE_CONFIG="$HG_TMP/nope.conf" "$HG_CLI" db stats; rc=$?
is "$rc" 2 "  also for db stats"

# config check
hg_run C config check; rc=$?
is "$rc" 0 "config check of the test config: exit 0"
ok "  test is successful" grep -q "test is successful" <<<"$HG_OUT"
cp "$HG_CONF" "$HG_TMP/bad.conf"
echo "on_match = explode" >>"$HG_TMP/bad.conf"
hg_run C config check "$HG_TMP/bad.conf"; rc=$?
is "$rc" 1 "config check of a bad file: exit 1"
ok "  naming file and line" grep -q "bad.conf:[0-9]*: on_match" <<<"$HG_OUT"
hg_run env HASHGATE_CONFIG="$HG_TMP/bad.conf" "$HG_CLI" config check; rc=$?
is "$rc" 1 "config check reads \$HASHGATE_CONFIG even when it is broken"

# Unreadable database: exit 2.
hg_run "$HG_CLI" --config "$HG_CONF" --db "$HG_TMP/missing.db" status; rc=$?
is "$rc" 2 "status with an unreadable database: exit 2"
ok "  saying so" grep -q "UNREADABLE" <<<"$HG_OUT"

# SIGHUP with a broken config: refused, and status says so.
cp "$HG_CONF" "$HG_TMP/good.conf"
echo "pdq_threshold = many" >>"$HG_CONF"
kill -HUP "$HG_PID"
sleep 6.5
hg_run "$HG_CLI" --config "$HG_TMP/good.conf" status; rc=$?
is "$rc" 1 "after a refused SIGHUP reload: status exits 1"
ok "  naming it" grep -q "SIGHUP" <<<"$HG_OUT"
cp "$HG_TMP/good.conf" "$HG_CONF"
kill -HUP "$HG_PID"
sleep 6.5
hg_run C status; rc=$?
is "$rc" 0 "a good reload clears it"

# Verdict records that cannot be appended: counted, status exits 1, metric.
echo 'garbage' >>"$HG_TMP/audit.log"
hg_run C status; rc=$?
is "$rc" 1 "a jammed audit log: status exits 1"
ok "  saying the audit log cannot take appends" grep -q "audit log: CANNOT TAKE APPENDS" <<<"$HG_OUT"
nok "known upload refused" cp "$HG_K_SHA256" "$HG_MNT/k.bin"
ok "status catches up" wait_status 2
sleep 5.5
j=$(C status --json --prometheus "$HG_TMP/p2.prom")
ok "the failed verdict record is counted" grep -q '"audit_errors":1,' <<<"$j"
ok "  and in the textfile" grep -q "^hashgate_audit_errors_total{mountpoint=\"$HG_MNT\",backing=\"$HG_BACK\"} 1\$" "$HG_TMP/p2.prom"
ok "  as a problem of the instance" grep -q "^hashgate_problems{mountpoint=\"$HG_MNT\",backing=\"$HG_BACK\"} [1-9]" "$HG_TMP/p2.prom"
ok "  and the log is not appendable" grep -qx "hashgate_audit_log_appendable 0" "$HG_TMP/p2.prom"
hg_umount

# log_clean = on brings the clean verdict line back.
rm -f "$HG_TMP/audit.log"
hg_mount allow_other,log_clean=on || bail "mount failed"
hg_random "$HG_TMP/w/clean2" 999
ok "clean upload" cp "$HG_TMP/w/clean2" "$HG_MNT/logged-name.txt"
ok "with log_clean=on the clean verdict is logged" grep -q 'verdict=clean.*logged-name' "$HG_LOG"
done_testing
