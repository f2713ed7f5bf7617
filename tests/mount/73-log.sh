#!/bin/bash
# 73-log.sh - `hashgate log` and `log verify`: the chain verifies after admin actions, and an
# edited, deleted or reordered record makes verify exit 1 naming the first bad line.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/adm-lib.sh"
adm_setup
T=$AT_TREE
for n in 1 2 3 4 5; do adm_known "$T/k$n" $((1000 + n)) sha256 l$n; done
hgc scan --action quarantine "$T" >/dev/null
for id in 1 2 3; do hgc quarantine hold $id >/dev/null; hgc quarantine release $id >/dev/null; done
n=$(wc -l <"$AT_AUDIT")
ok "audit log has records ($n)" test "$n" -ge 12

out=$(hgc log verify); rc=$?
is "$rc" 0 "verify of an intact log exits 0"
ok "verify reports the record count" grep -q ": $n records, chain intact" <<<"$out"
j=$(hgc log verify --json)
ok "verify --json" grep -q "\"ok\":true,.*\"records\":$n,\"last_hash\":\"[0-9a-f]\{64\}\"" <<<"$j"
is "$(hgc log --json | wc -l)" "$n" "log --json prints every record"
is "$(hgc log --since @4000000000 | wc -l)" 0 "log --since the future prints nothing"
is "$(hgc log --since 1h | wc -l)" "$n" "log --since 1h prints everything just written"
ok "human log shows actions" sh -c "$HG_CLI --config $AT_CONF log | grep -q 'quarantine.hold'"

cp "$AT_AUDIT" "$AT/good"
# Edit: change the id in record 8.
sed -i '8s/"id":\([0-9]\)/"id":9\1/' "$AT_AUDIT"
out=$(hgc log verify); rc=$?
is "$rc" 1 "edited record: verify exits 1"
ok "names line 8" grep -q "audit.log:8: hash mismatch" <<<"$out"
# Delete record 5.
sed '5d' "$AT/good" >"$AT_AUDIT"
out=$(hgc log verify); rc=$?
is "$rc" 1 "deleted record: verify exits 1"
ok "names line 5" grep -q "audit.log:5:" <<<"$out"
# Swap records 2 and 3.
awk 'NR == 2 { l2 = $0; next } NR == 3 { print; print l2; next } { print }' "$AT/good" >"$AT_AUDIT"
out=$(hgc log verify); rc=$?
is "$rc" 1 "reordered records: verify exits 1"
ok "names line 2" grep -q "audit.log:2:" <<<"$out"
# Recompute a forged record's own hash: the next record's prev still breaks.
cp "$AT/good" "$AT_AUDIT"
line=$(sed -n '8p' "$AT_AUDIT" | sed 's/"id":[0-9]*/"id":77/')
body=${line%,\"hash\":*}
h=$(printf '%s' "$body" | sha256sum | cut -d' ' -f1)
sed -i "8s/.*/$(printf '%s' "$body,\"hash\":\"$h\"}" | sed 's/[\/&]/\\&/g')/" "$AT_AUDIT"
out=$(hgc log verify); rc=$?
is "$rc" 1 "forged record with a recomputed hash: verify exits 1"
ok "names line 9 (its prev no longer matches)" grep -q "audit.log:9: prev hash" <<<"$out"
cp "$AT/good" "$AT_AUDIT"
ok "restored log verifies" hgc log verify
rm -f "$AT_AUDIT"
hgc log verify >/dev/null 2>&1; rc=$?
is "$rc" 2 "missing log: exit 2"
done_testing
