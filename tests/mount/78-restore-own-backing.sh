#!/bin/bash
# 78-restore-own-backing.sh - restore and export with the mount over its own backing dir, as
# the README's first example (issue 17, defect 2): the restored file lands in the backing
# storage itself instead of going through the mount, so it is not scanned again and creates no
# new quarantine record (retries neither); --allow allowlists before anything is written;
# export into the mounted tree writes no evidence record either; a directory the restore
# creates belongs to the uploader.
. "$(dirname "$0")/lib.sh"
hg_setup
HG_MNT=$HG_BACK			# hashgatefs -o allow_other /srv/customers /srv/customers
hg_mount allow_other || bail "mount failed"
C() { "$HG_CLI" --config "$HG_CONF" "$@"; }
qtotal() { sqlite3 -readonly "$HG_QDIR/records.db" "SELECT count(*) FROM records;"; }
chmod 0777 "$HG_BACK"
mkdir -p "$HG_MNT/u1000/sub" && chown -R 1000:1000 "$HG_MNT/u1000"
nok "known upload as uid 1000 is refused" hg_as 1000 1000 cp "$HG_K_SHA256" "$HG_MNT/u1000/sub/k.bin"
is "$(qtotal)" 1 "one quarantine record"
nverdicts() { grep -c '"action":"verdict"' "$HG_TMP/audit.log"; }
is "$(nverdicts)" 1 "one verdict in the audit log"

rmdir "$HG_MNT/u1000/sub"
hg_run C quarantine restore 1; rc=$?
is "$rc" 0 "restore (no --allow) exits 0"
ok "the restored file is visible through the mount" hg_same "$HG_K_SHA256" "$HG_MNT/u1000/sub/k.bin"
is "$(stat -c %u:%g "$HG_MNT/u1000/sub/k.bin")" "1000:1000" "  owned by the uploader"
is "$(stat -c %u:%g "$HG_MNT/u1000/sub")" "1000:1000" "  in a re-created directory owned by the uploader"
is "$(qtotal)" 1 "the restore created no new quarantine record"
is "$(nverdicts)" 1 "  and no new verdict"
hg_run C quarantine restore 1 --force; rc=$?
is "$rc" 0 "a retry (--force) exits 0"
is "$(qtotal)" 1 "  and adds no record either"

rm -f "$HG_MNT/u1000/sub/k.bin"
hg_run C quarantine restore 1 --allow; rc=$?
is "$rc" 0 "restore --allow exits 0"
is "$(qtotal)" 1 "  no new record"
ok "  allowlisted" bash -c "'$HG_CLI' --config '$HG_CONF' allow list | grep -q \$(sha256sum <'$HG_K_SHA256' | cut -d' ' -f1)"
ok "allow.add is audited before the restore" python3 - "$HG_TMP/audit.log" <<'PY'
import json, sys
acts = [json.loads(l)["action"] for l in open(sys.argv[1])]
last = len(acts) - 1 - acts[::-1].index("quarantine.restore")
sys.exit(0 if "allow.add" in acts[:last] and "allow.add" not in acts[last:] else 1)
PY
hg_run C quarantine export 1 --out "$HG_MNT/u1000/evidence.bin" --plaintext; rc=$?
is "$rc" 0 "export into the mounted tree exits 0"
ok "  bytes exported" hg_same "$HG_K_SHA256" "$HG_MNT/u1000/evidence.bin"
is "$(qtotal)" 1 "  and no new record"
is "$(nverdicts)" 1 "  no new verdict"
ok "the audit log verifies" C log verify
done_testing
