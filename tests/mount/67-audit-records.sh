#!/bin/bash
# 67-audit-records.sh - the audit log after allowlist changes (issue 17, defect 1): an
# `allow add` / `allow remove` record must not jam the log for the commands after it, no record
# has a duplicate JSON key (jq/Python would silently drop one value), a log written before the
# format change still verifies and takes appends, and a command whose audit record cannot be
# written exits non-zero and changes nothing.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/adm-lib.sh"
adm_setup
T=$AT_TREE
adm_known "$T/k1" 2001 sha256 l1
M5=0123456789abcdef0123456789abcdef

hg_run hgc allow add --reason "fp" "md5:$M5"
is "$?" 0 "allow add exits 0"
hg_run hgc db add --list manual --category illegal "md5:fedcba9876543210fedcba9876543210"
is "$?" 0 "db add after an allowlist change exits 0 (the log was jammed: Bad message)"
hg_run hgc allow remove "md5:$M5"
is "$?" 0 "allow remove exits 0"
hgc scan --action quarantine "$T" >/dev/null 2>&1
hg_run hgc quarantine hold 1
is "$?" 0 "quarantine hold after allowlist records exits 0"
out=$(hgc log verify); rc=$?
is "$rc" 0 "log verify exits 0"
n=$(wc -l <"$AT_AUDIT")
ok "every action is in the log ($n records)" grep -q ": $n records, chain intact" <<<"$out"
ok "allow.add, db.add, allow.remove, scan and quarantine.hold recorded" bash -c "
	for a in allow.add db.add allow.remove scan.quarantine quarantine.hold; do
		grep -q \"\\\"action\\\":\\\"\$a\\\"\" '$AT_AUDIT' || { echo missing \$a; exit 1; }
	done"
ok "no record has a duplicate key, at any level" python3 - "$AT_AUDIT" <<'PY'
import json, sys
def no_dups(pairs):
    keys = [k for k, _ in pairs]
    if len(keys) != len(set(keys)):
        raise ValueError("duplicate key in %r" % keys)
    return dict(pairs)
for line in open(sys.argv[1]):
    json.loads(line, object_pairs_hook=no_dups)
PY
ok "the allowlisted hash is the record's own data.hash" python3 - "$AT_AUDIT" "$M5" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
a = [r for r in recs if r["action"] == "allow.add"][0]
sys.exit(0 if a["data"]["hash"] == sys.argv[2] and len(a["hash"]) == 64 else 1)
PY

# A log from before the format change (an allowlist record with "hash" twice) still verifies
# and takes appends.
cat >"$AT/old.py" <<'PY'
import hashlib, sys
prev = "0" * 64
out = open(sys.argv[1], "w")
recs = ['"actor":"uid=0(root)","action":"allow.add","algo":"md5","hash":"%s"' % ("ab" * 16),
        '"actor":"hashgatefs","action":"verdict","kind":"upload","action":"quarantine"']
for i, r in enumerate(recs):
    body = '{"seq":%d,"time":1700000000,%s,"prev":"%s"' % (i + 1, r, prev)
    prev = hashlib.sha256(body.encode()).hexdigest()
    out.write('%s,"hash":"%s"}\n' % (body, prev))
PY
python3 "$AT/old.py" "$AT_AUDIT"
hg_run hgc log verify
is "$?" 0 "a first-format log verifies"
hg_run hgc allow add "md5:$M5"
is "$?" 0 "and takes appends"
ok "3 records, chain intact" bash -c "'$HG_CLI' --config '$AT_CONF' log verify | grep -q ': 3 records'"

# A log whose last line is not a record: every audited command refuses, non-zero, no change.
echo 'garbage' >>"$AT_AUDIT"
hg_run hgc db add --list manual "md5:11111111111111111111111111111111"; rc=$?
is "$rc" 2 "db add with an unwritable audit record exits 2"
ok "  and says why" grep -q "audit log" <<<"$HG_OUT"
nok "  and the hash was not added" bash -c "'$HG_CLI' --config '$AT_CONF' db export --list manual | grep -q 1111111111"
hg_run hgc allow add "md5:22222222222222222222222222222222"; rc=$?
is "$rc" 2 "allow add exits 2"
nok "  and the allowlist is unchanged" bash -c "'$HG_CLI' --config '$AT_CONF' allow list | grep -q 2222222222"
hg_run hgc quarantine release 1; rc=$?
is "$rc" 2 "quarantine release exits 2"
hg_run hgc scan --action quarantine "$T"; rc=$?
is "$rc" 2 "scan --action quarantine exits 2"
done_testing
