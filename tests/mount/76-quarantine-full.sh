#!/bin/bash
# 76-quarantine-full.sh - the quarantine under a flood and when it is full, through a live
# mount: a known file uploaded 3 times gives 3 records but 1 content object; from 90% of
# quarantine_max_size on the daemon warns and `hashgate status` exits 1; content the store
# cannot take (over the quota, then a full file system) is kept encrypted in the staging area
# (once per sha256), the record says so, the upload is still refused, a notice is logged, the
# status file and Prometheus count it, status exits 1, and `hashgate quarantine retry` moves
# it into the store once there is room.
. "$(dirname "$0")/lib.sh"
hg_setup
C() { "$HG_CLI" --config "$HG_CONF" "$@"; }
big=$(stat -c %s "$HG_K_BIG")			# 3 MiB + 5
small=$(stat -c %s "$HG_K_SHA256")		# ~200 KB
# Room for the big file's object (+56) and 100 KB: 90% is passed, the small one does not fit.
echo "quarantine_max_size = $((big + 56 + 100 * 1024))" >>"$HG_CONF"
hg_mount || bail "mount failed"
KEPT=$HG_BACK/.hashgate-staging/kept
objects() { find "$HG_QDIR/objects" -type f ! -name '.*' | wc -l; }
jbool() { printf '%s' "$1" | grep -o "\"$2\":[a-z]*" | head -n1 | cut -d: -f2; }
# wait_status KEY MIN: until the daemon's status file shows KEY >= MIN (it writes every few s)
wait_status() {
	local i v
	for i in $(seq 40); do
		v=$(grep -h "^$1=" "$HG_TMP"/state/hashgatefs-*.status 2>/dev/null | cut -d= -f2)
		[ "${v:-0}" -ge "$2" ] && return 0
		sleep 0.25
	done
	echo "status file: $1=${v:-missing}, wanted >= $2"
	return 1
}

C status >/dev/null; rc=$?
is "$rc" 0 "status exits 0 while the quarantine is empty"

# --- dedupe: one content object however often it is uploaded
for i in 1 2 3; do
	ok "known 3 MiB upload $i is refused" hg_refused cp "$HG_K_BIG" "$HG_MNT/big$i.bin"
done
n=$(sqlite3 -readonly "$HG_QDIR/records.db" "SELECT count(*) FROM records WHERE path LIKE 'big%'")
is "$n" 3 "3 records"
is "$(objects)" 1 "1 content object"
sz=$(find "$HG_QDIR/objects" -type f ! -name '.*' -printf '%s')
is "$sz" $((big + 56)) "the object is one encrypted copy ($((big + 56)) bytes)"
out=$(C quarantine list --json)
is "$(grep -o '"content_stored":true' <<<"$out" | wc -l)" 3 "all 3 records have their content"

# --- near the quota: a warning and an alarm
ok "the daemon warns about the quota" grep -q "of quarantine_max_size" "$HG_LOG"
hg_run C status; rc=$?
is "$rc" 1 "status exits 1 at 90% of quarantine_max_size"
ok "and says why" grep -q "ALARM: the store is at 9[0-9]% of quarantine_max_size" <<<"$HG_OUT"

# --- over the quota: the evidence is kept encrypted in the staging area
ok "known upload over the quota is still refused" hg_refused cp "$HG_K_SHA256" "$HG_MNT/small1.bin"
ok "nothing published" test ! -e "$HG_BACK/small1.bin"
ok "no content object added" test "$(objects)" = 1
kf=$KEPT/sha256-$(hg_sha256 "$HG_K_SHA256")
ok "the content is kept in the staging area" test -f "$kf"
is "$(stat -c %s "$kf" 2>/dev/null)" $((small + 56)) "as an encrypted object (size + 56)"
ok "which is not the plaintext" hg_content_absent "$HG_K_SHA256"
nok "and is not visible through the mount" ls "$HG_MNT/.hashgate-staging"
id=$(sqlite3 -readonly "$HG_QDIR/records.db" "SELECT id FROM records WHERE path = 'small1.bin'")
out=$(C quarantine show "$id" --json)
is "$(jbool "$out" content_kept)" true "the record says the content is kept"
is "$(jbool "$out" content_stored)" false "... and not stored"
ok "a notice was logged" grep -q "cannot take the content (Disk quota exceeded): kept encrypted" "$HG_LOG"
ok "the audit record says evidence kept" grep -q '"evidence":"kept"' "$HG_TMP/audit.log"
ok "counted in the status file" wait_status evidence_kept 1
C status --prometheus "$HG_TMP/hg.prom" >/dev/null
ok "as hashgate_evidence_kept_total 1" grep -q '^hashgate_evidence_kept_total{.*} 1$' "$HG_TMP/hg.prom"
hg_run C status; rc=$?
is "$rc" 1 "status exits 1 while evidence is kept outside the store"
ok "and says to retry" grep -q "evidence of 1 record kept outside the store: run 'hashgate quarantine retry'" <<<"$HG_OUT"
ok "the same content again is refused" hg_refused cp "$HG_K_SHA256" "$HG_MNT/small2.bin"
is "$(ls "$KEPT" | wc -l)" 1 "and kept once (2 records, 1 kept file)"

# --- retry: still over the quota, then with room
hg_run C quarantine retry; rc=$?
is "$rc" 1 "retry while still over the quota exits 1"
ok "and leaves the kept file" test -f "$kf"
sed -i '/^quarantine_max_size/d' "$HG_CONF"
hg_run C quarantine retry; rc=$?
is "$rc" 0 "retry with room exits 0"
ok "evidence of 2 records moved" grep -q "^evidence of 2 records moved into the store" <<<"$HG_OUT"
ok "the kept file is gone" test ! -e "$kf"
is "$(objects)" 2 "2 content objects now"
ok "the moved evidence exports" C quarantine export "$id" --out "$HG_TMP/ev" --plaintext
ok "as the original bytes" cmp -s "$HG_TMP/ev" "$HG_K_SHA256"
ok "retry is audited" grep -q '"quarantine.retry"' "$HG_TMP/audit.log"
hg_umount

# --- a full file system under the quarantine (no quota): kept as well
QFS=$HG_TMP/qfs
mkdir -p "$QFS"
if mount -t tmpfs -o size=1m tmpfs "$QFS" 2>/dev/null; then
	HG_QDIR=$QFS/q
	hg_mount || bail "mount with the quarantine on a 1 MiB tmpfs failed"
	ok "known upload onto a full quarantine is refused" hg_refused cp "$HG_K_BIG" "$HG_MNT/full.bin"
	ok "kept in the staging area" test -f "$KEPT/sha256-$(hg_sha256 "$HG_K_BIG")"
	ok "a notice names the cause" grep -q "cannot take the content (No space left on device)" "$HG_LOG"
	n=$(sqlite3 -readonly "$HG_QDIR/records.db" "SELECT kept FROM records WHERE path = 'full.bin'")
	is "$n" 1 "the record says kept"
	hg_umount
	umount "$QFS"
else
	skip "tmpfs cannot be mounted here"; skip "kept"; skip "notice"; skip "record"
fi
done_testing
