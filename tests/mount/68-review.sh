#!/bin/bash
# 68-review.sh - the review state of a quarantine record (issue 17): every record starts "new";
# a reviewer marks it confirmed, false-positive or reported (with the case number the hotline
# or police gave, which `reported` requires) and a reason; each change is in the audit log with
# the state it replaced; list --review filters by state, report counts per state; the state
# survives in show/export.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/adm-lib.sh"
adm_setup
T=$AT_TREE
for n in 1 2 3; do adm_known "$T/k$n" $((3000 + n)) sha256 l$n; done
hgc scan --action quarantine "$T" >/dev/null
ok "a new record is 'new'" bash -c "'$HG_CLI' --config '$AT_CONF' quarantine show 1 --json | grep -q '\"review\":{\"state\":\"new\"'"
hg_run hgc quarantine review 1 reported; rc=$?
is "$rc" 64 "reported without --case is a usage error"
hg_run hgc quarantine review 1 bogus; rc=$?
is "$rc" 64 "an unknown state is a usage error"
ok "confirm record 1" hgc quarantine review 1 confirmed --reason "matches list l1, checked hashes"
ok "report record 1" hgc quarantine review 1 reported --case "HCS-2026-0042"
ok "record 2 is a false positive" hgc quarantine review 2 false-positive --reason "vendor logo"
j=$(hgc quarantine show 1 --json)
ok "show: state, case and reason" grep -q '"review":{"state":"reported","case":"HCS-2026-0042","reason":"matches list l1, checked hashes","time":[0-9]*' <<<"$j"
ok "list --review reported: only record 1" bash -c "
	out=\$('$HG_CLI' --config '$AT_CONF' quarantine list --json --review reported)
	grep -q '\"id\":1,' <<<\"\$out\" && ! grep -q '\"id\":[23],' <<<\"\$out\""
hg_run hgc quarantine list --review maybe; rc=$?
is "$rc" 64 "list --review with an unknown state is a usage error"
r=$(hgc report --format json)
ok "report per review state" grep -q '"by_review":{"false-positive":1,"new":1,"reported":1}' <<<"$r"
ok "each change audited with the state it replaced" python3 - "$AT_AUDIT" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
rv = [r["data"] for r in recs if r["action"] == "quarantine.review"]
want = [(1, "new", "confirmed"), (1, "confirmed", "reported"), (2, "new", "false-positive")]
got = [(d["id"], d["from"], d["state"]) for d in rv]
sys.exit(0 if got == want and rv[1]["case"] == "HCS-2026-0042" else 1)
PY
hg_run hgc quarantine review 99 confirmed; rc=$?
is "$rc" 2 "reviewing a missing record: exit 2"
ok "the audit log verifies" hgc log verify
done_testing
