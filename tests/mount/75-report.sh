#!/bin/bash
# 75-report.sh - `hashgate report` counts per list, category, uid, action and day from the
# quarantine records, in text, csv and json, honours --since, and is root-only.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/adm-lib.sh"
adm_setup
T=$AT_TREE
adm_known "$T/a1" 1001 sha256 list-a illegal
cp "$T/a1" "$T/a1-copy"
adm_known "$T/b1" 1002 md5 list-b other
adm_known "$T/c1" 1003 sha1 list-c illegal
chown 1000 "$T/a1" "$T/b1"; chown 2000 "$T/a1-copy" "$T/c1"
out=$(hgc report --format json)
ok "empty store: zero matches" grep -q '"matches":0,' <<<"$out"
hgc scan --action quarantine "$T" >/dev/null
today=$(date -u +%Y-%m-%d)

out=$(hgc report --format json)
ok "json: 4 matches" grep -q '"matches":4,' <<<"$out"
ok "json: per list" grep -q '"by_list":{"list-a":2,"list-b":1,"list-c":1}' <<<"$out"
ok "json: per category" grep -q '"by_category":{"illegal":3,"other":1}' <<<"$out"
ok "json: per uid" grep -q '"by_uid":{"1000":2,"2000":2}' <<<"$out"
ok "json: per origin" grep -q '"by_origin":{"scan":4}' <<<"$out"
ok "json: per day" grep -q "\"by_day\":{\"$today\":4}" <<<"$out"
ok "json: upload-to-verdict figures (no uploads: scan records have no upload start)" grep -q '"upload_to_verdict_seconds":{"count":0,"min":[0-9]*,"median":[0-9]*,"p95":[0-9]*,"max":[0-9]*,"mean":[0-9.]*}' <<<"$out"
csv=$(hgc report --format csv)
ok "csv header" test "$(head -n1 <<<"$csv")" = "dimension,key,value"
ok "csv list row" grep -qx 'list,"list-a",2' <<<"$csv"
ok "csv uid row" grep -qx 'uid,"2000",2' <<<"$csv"
ok "text report" sh -c "'$HG_CLI' --config '$AT_CONF' report | grep -q '^matches: 4'"
ok "--since the future: zero" sh -c "'$HG_CLI' --config '$AT_CONF' report --json --since @4000000000 | grep -q '\"matches\":0,'"
hgc report --format xml >/dev/null 2>&1; rc=$?
is "$rc" 64 "unknown format is a usage error"
out=$(hg_as 65534 65534 "$HG_CLI" --config "$AT_CONF" report 2>&1); rc=$?
is "$rc" 2 "unprivileged report refused"
done_testing
