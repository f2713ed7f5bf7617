#!/bin/bash
# 74-status-mount.sh - the admin tools against a live hashgatefs: `status` shows the instance
# with its generation and counters and writes the Prometheus textfile; a daemon-quarantined
# upload is listed, reported, restored into the backing dir with the uploader's owner, and the
# daemon's verdicts and the admin's actions share one verifiable audit chain.
. "$(dirname "$0")/lib.sh"
hg_setup
hg_mount allow_other || bail "mount failed"
C() { "$HG_CLI" --config "$HG_CONF" "$@"; }

chmod 0777 "$HG_BACK"
hg_random "$HG_TMP/w/clean" 12345
ok "clean upload" cp "$HG_TMP/w/clean" "$HG_MNT/clean"
nok "known upload (uid 1000) is refused" hg_as 1000 1000 cp "$HG_K_SHA256" "$HG_MNT/known.bin"
ok "known upload is not in the backing dir" test ! -e "$HG_BACK/known.bin"

# The daemon publishes every few seconds.
for i in $(seq 40); do
	st=$(C status --json)
	n=$(printf '%s' "$st" | grep -o '"uploads_scanned":[0-9]*' | head -n1 | cut -d: -f2)
	[ "${n:-0}" -ge 2 ] && break
	sleep 0.5
done
ok "status lists the instance by mountpoint" grep -q "\"mountpoint\":\"$HG_MNT\"" <<<"$st"
ok "with its backing dir" grep -q "\"backing\":\"$HG_BACK\"" <<<"$st"
ok "pid is the daemon's" grep -q "\"pid\":$HG_PID," <<<"$st"
ok "uploads_scanned >= 2" test "${n:-0}" -ge 2
m=$(printf '%s' "$st" | grep -o '"matches":[0-9]*' | head -n1 | cut -d: -f2)
is "$m" 1 "one match counted"
dbgen=$(printf '%s' "$st" | grep -o '"database_generation":[0-9]*' | cut -d: -f2)
gen=$(printf '%s' "$st" | grep -o '"generation":[0-9]*' | head -n1 | cut -d: -f2)
is "$gen" "$dbgen" "instance uses the database's current generation"
ok "human status says current" sh -c "'$HG_CLI' --config '$HG_CONF' status | grep -q '(current)'"
ok "status --prometheus writes the textfile" C status --prometheus "$HG_TMP/hg.prom"
ok "textfile has the instance count" grep -qx 'hashgate_instances 1' "$HG_TMP/hg.prom"
ok "and a matches sample for this mount (no pid label: a restart continues the series)" \
	grep -q "^hashgate_matches_total{mountpoint=\"$HG_MNT\",backing=\"$HG_BACK\"} 1\$" "$HG_TMP/hg.prom"

# The daemon's record: listed, reported, restorable into the backing dir.
list=$(C quarantine list --json)
id=$(printf '%s' "$list" | grep -o '"id":[0-9]*' | head -n1 | cut -d: -f2)
ok "daemon's quarantine record listed" grep -q '"path":"known.bin"' <<<"$list"
ok "with the uploader's uid" grep -q '"uid":1000,' <<<"$list"
rep=$(C report --format json)
ok "report counts it per list and uid" grep -q '"by_list":{"t-sha256":1}.*"by_uid":{"1000":1}' <<<"$rep"
ok "restore it" C quarantine restore "$id"
ok "restored bytes identical in the backing dir" cmp "$HG_K_SHA256" "$HG_BACK/known.bin"
is "$(stat -c %u:%g "$HG_BACK/known.bin")" "1000:1000" "owned by the uploader"
ok "daemon verdicts and admin actions chain in one log" C log verify
ok "log has the daemon's verdict and the restore" \
	sh -c "'$HG_CLI' --config '$HG_CONF' log --json | grep -q '\"action\":\"verdict\"' &&
	       '$HG_CLI' --config '$HG_CONF' log --json | grep -q '\"action\":\"quarantine.restore\"'"

hg_umount
st=$(C status --json)
ok "after unmount no instance is listed" grep -q '"instances":\[\]' <<<"$st"
done_testing
