#!/bin/bash
# 66-hook.sh - on_match_exec: one JSON event per match on the program's stdin (record id,
# hashes, list, category, label, uid and user name, path, action, host), run as root and not
# as the uploader, with a fixed environment; per-category hooks; a hung hook does not delay
# verdicts (clean and known uploads return promptly), is killed after on_match_exec_timeout
# and counted; a full queue drops events and counts them.  `hashgate scan` runs the same hook
# for every match it finds, with the same event ("source":"scan" instead of "upload"), as
# root (never the file's owner), killing a hung hook after the timeout and reporting the
# failure in its summary and exit status; --no-hook runs none.
. "$(dirname "$0")/lib.sh"
hg_setup
M=$HG_MNT W=$HG_TMP/w EV=$HG_TMP/events
mkdir -p "$EV" && chmod 0777 "$W"
U=64123 G=64123

cat >"$HG_TMP/hook.sh" <<EOF
#!/bin/sh
f=$EV/\$(date +%s%N).\$\$
cat >"\$f.json"
{ id -u; env | sort; } >"\$f.env"
EOF
cat >"$HG_TMP/hang.sh" <<EOF
#!/bin/sh
cat >/dev/null
echo started >>$EV/hang.log
sleep 60
EOF
chmod 0755 "$HG_TMP/hook.sh" "$HG_TMP/hang.sh"

# a list in category "other" whose hook is switched off per category; a label on t-md5
hg_random "$W/other" 3333
hg_cli db import --list t-other --category other --type sha256 <(hg_sha256 "$W/other") >/dev/null
hg_cli db add --list t-md5 --label "case 4711" "$(cat "$HG_TMP/known/l-md5")" >/dev/null
cat >>"$HG_CONF" <<EOF
on_match_exec = $HG_TMP/hook.sh
on_match_exec.other =
EOF
mkdir "$HG_BACK/u" && chown $U:$G "$HG_BACK/u"
hg_run "$HG_CLI" config check "$HG_CONF"
ok "config check accepts the hook" test $? -eq 0
hg_run "$HG_CLI" config check <(sed "s|^on_match_exec = .*|on_match_exec = $HG_TMP/missing.sh|" "$HG_CONF")
ok "config check names a hook program that does not exist" \
	grep -q "on_match_exec = $HG_TMP/missing.sh: No such file" <<<"$HG_OUT"
hg_mount allow_other || bail "mount failed"

wait_events() {	# wait_events N: until N event files exist (5 s at most)
	for i in $(seq 50); do
		[ "$(ls "$EV"/*.json 2>/dev/null | wc -l)" -ge "$1" ] && return 0
		sleep 0.1
	done
	return 1
}

cp "$HG_K_SHA256" "$W/k1" && chmod 0644 "$W/k1"
ok "a known upload by uid $U is refused" hg_refused hg_as $U $G cp "$W/k1" "$M/u/up1.bin"
ok "a match runs the hook" wait_events 1
diag "$(grep -iE "exec|hook|match" "$HG_LOG" | head -5)"
e=$(cat "$EV"/*.json)
cp "$EV"/*.json "$HG_TMP/daemon-event.json"
ok "the event is JSON with the record id, time and host" \
	bash -c "/usr/bin/python3 -c 'import json,sys; e=json.loads(sys.stdin.read()); assert e[\"event\"]==\"match\" and e[\"id\"]>0 and e[\"time\"]>0 and e[\"host\"]' <<<'$e'"
ok "... the hashes, list and category" \
	bash -c "grep -q '\"sha256\":\"$(hg_sha256 "$HG_K_SHA256")\"' <<<'$e' && grep -q '\"list\":\"t-sha256\",\"category\":\"illegal\"' <<<'$e'"
ok "... says it comes from an upload (source)" grep -q '^{"event":"match","source":"upload",' "$HG_TMP/daemon-event.json"
ok "... the uploader's uid, the path and the action" \
	bash -c "grep -q '\"uid\":$U' <<<'$e' && grep -q '\"path\":\"u/up1.bin\"' <<<'$e' && grep -q '\"action\":\"quarantine\"' <<<'$e'"
env1=$(cat "$EV"/*.env)
is "$(head -n1 <<<"$env1")" 0 "the hook runs as root, not as the uploader (uid $U)"
ok "with a fixed environment (PATH, HASHGATE_EVENT, HOME only)" \
	bash -c "[ \"\$(sed 1d <<<'$env1' | cut -d= -f1 | grep -v '^PWD\$' | tr '\n' ' ')\" = 'HASHGATE_EVENT HOME PATH ' ]"

cp "$HG_K_MD5" "$W/k2" && chmod 0644 "$W/k2"
ok "a second known upload is refused" hg_refused hg_as $U $G cp "$W/k2" "$M/u/up2.bin"
ok "a second match, a second event" wait_events 2
e2=$(grep -l t-md5 "$EV"/*.json | head -n1)
ok "the event carries the list entry's label" grep -q '"label":"case 4711"' "$e2"
hg_random "$W/clean" 5000
ok "a clean upload" cp "$W/clean" "$M/clean"
chmod 0644 "$W/other"
hg_refused cp "$W/other" "$M/other"
sleep 1.5
is "$(ls "$EV"/*.json | wc -l)" 2 "one event per match: no event for clean uploads, none for category other (on_match_exec.other empty)"
hg_umount

# --- a hung hook: verdicts do not wait; it is killed and counted; a full queue is counted ----
rm -f "$EV"/*
sed -i '/^on_match_exec/d' "$HG_CONF"
cat >>"$HG_CONF" <<EOF
on_match_exec = $HG_TMP/hang.sh
on_match_exec_timeout = 3s
on_match_exec_queue = 1
EOF
hg_mount || bail "second mount failed"
hg_refused cp "$HG_K_SHA256" "$M/h1"
for i in $(seq 20); do [ -s "$EV/hang.log" ] && break; sleep 0.1; done
ok "the hook is running (and hangs)" test -s "$EV/hang.log"
s=$(date +%s%N)
hg_random "$W/clean2" 70000
ok "a clean upload while the hook hangs" cp "$W/clean2" "$M/clean2"
hg_refused cp "$HG_K_MD5" "$M/h2"
hg_refused cp "$HG_K_SHA1" "$M/h3"
hg_refused cp "$HG_K_BIG" "$M/h4"
ms=$(( ($(date +%s%N) - s) / 1000000 ))
ok "clean and known uploads return promptly while the hook hangs (${ms} ms for 4)" test "$ms" -lt 2500
sleep 6
J=$("$HG_CLI" --config "$HG_CONF" status --json)
ok "a full queue drops events and counts them (hook_dropped)" grep -Eq '"hook_dropped":[1-9]' <<<"$J"
ok "the hung hook was killed after on_match_exec_timeout and counted (hook_failures)" \
	grep -Eq '"hook_failures":[1-9]' <<<"$J"
ok "the kill is logged" grep -q 'on_match_exec ".*hang.sh" failed.*killed after on_match_exec_timeout' "$HG_LOG"
ok "no hook process is left behind" bash -c "sleep 4; ! pgrep -f '$HG_TMP/[h]ang.sh' >/dev/null"

hg_umount

# --- on_match_exec_user: the hook runs as that user ------------------------------------------
rm -f "$EV"/*
chmod 0777 "$EV"
sed -i '/^on_match_exec/d' "$HG_CONF"
printf 'on_match_exec = %s\non_match_exec_user = nobody\n' "$HG_TMP/hook.sh" >>"$HG_CONF"
hg_mount || bail "third mount failed"
hg_refused cp "$HG_K_SHA1" "$M/n1"
ok "the hook ran" wait_events 1
is "$(head -n1 "$EV"/*.env 2>/dev/null)" "$(id -u nobody)" "it ran as on_match_exec_user (nobody)"
hg_umount

# --- hashgate scan: the same hook for every match a scan of existing storage finds -----------
rm -f "$EV"/*
sed -i '/^on_match_exec/d' "$HG_CONF"
printf 'on_match_exec = %s\non_match_exec.other =\n' "$HG_TMP/hook.sh" >>"$HG_CONF"
T=$HG_TMP/tree
mkdir -p "$T/a/b"
cp "$HG_K_SHA256" "$T/a/known.bin"
cp "$HG_K_MD5" "$T/a/b/known two.bin"
cp "$W/other" "$T/other.bin"
hg_random "$T/clean.bin" 7000
chown -R $U:$G "$T"
hg_run "$HG_CLI" scan --no-record --json "$T"; rc=$?
out=$HG_OUT
is "$rc" 1 "scan finds the matches (exit 1)"
ok "a scan runs the hook once per match (category other has none)" wait_events 2
sleep 0.5
is "$(ls "$EV"/*.json | wc -l)" 2 "... and no more: none for the clean file or category other"
ok "the scan's summary counts the hook runs" grep -q '"hook_runs":2,"hook_failures":0' <<<"$out"
s1=$(grep -l '"algo":"sha256"' "$EV"/*.json | head -n1)
ok "the scan event is JSON with \"source\":\"scan\", the path, hashes, list and category" \
	/usr/bin/python3 -c '
import json, sys
e = json.load(open(sys.argv[1]))
assert e["event"] == "match" and e["source"] == "scan", e
assert e["path"] == "a/known.bin" and e["mount"] == sys.argv[2], e
assert e["sha256"] == sys.argv[3] and e["list"] == "t-sha256" and e["category"] == "illegal", e
assert e["uid"] == int(sys.argv[4]) and e["action"] == "report" and e["time"] > 0 and e["host"], e
' "$s1" "$T" "$(hg_sha256 "$HG_K_SHA256")" $U
ok "... with the same members as the daemon's event" /usr/bin/python3 -c '
import json, sys
d, s = (set(json.load(open(f))) for f in sys.argv[1:3])
assert d == s, ("daemon only", d - s, "scan only", s - d)
' "$HG_TMP/daemon-event.json" "$s1"
s2=$(grep -l '"algo":"md5"' "$EV"/*.json | head -n1)
ok "the list entry's label is in the scan event too" grep -q '"label":"case 4711"' "$s2"
is "$(head -qn1 "$EV"/*.env | sort -u)" 0 "the scan's hook runs as root, not as the files' owner (uid $U)"
ok "with the fixed environment" \
	bash -c "[ \"\$(sed 1d \"\${1%.json}.env\" | cut -d= -f1 | grep -v '^PWD\$' | tr '\n' ' ')\" = 'HASHGATE_EVENT HOME PATH ' ]" _ "$s1"

rm -f "$EV"/*
hg_run "$HG_CLI" scan --no-record --no-hook --json "$T"; rc=$?
is "$rc" 1 "scan --no-hook still reports the matches"
sleep 1
is "$(ls "$EV" | wc -l)" 0 "scan --no-hook runs no hook"

rm -f "$EV"/*
hg_run "$HG_CLI" scan --no-record --action quarantine --json "$T/a/known.bin"; rc=$?
is "$rc" 1 "scan --action quarantine of a known file"
ok "its event has the quarantine record's id and the action taken" /usr/bin/python3 -c '
import glob, json, sys
(f,) = glob.glob(sys.argv[1] + "/*.json")
e = json.load(open(f))
assert e["source"] == "scan" and e["id"] > 0 and e["qid"] == e["id"], e
assert e["action"] == "quarantine" and e["evidence"] == "stored", e
' "$EV"
ok "the record it names exists" hg_cli quarantine show "$(grep -o '"id":[0-9]*' "$EV"/*.json | head -n1 | cut -d: -f2)"

# a hung hook is killed after on_match_exec_timeout; the scan finishes and says so
rm -f "$EV"/*
sed -i '/^on_match_exec/d' "$HG_CONF"
printf 'on_match_exec = %s\non_match_exec.other =\non_match_exec_timeout = 2s\n' "$HG_TMP/hang.sh" \
	>>"$HG_CONF"
s=$(date +%s%N)
hg_run timeout 30 "$HG_CLI" scan --no-record "$T"; rc=$?
ms=$(( ($(date +%s%N) - s) / 1000000 ))
out=$HG_OUT
ok "the hung hook ran" test -s "$EV/hang.log"
ok "the scan finishes though its hook hangs (${ms} ms, one match, timeout 2 s)" test "$ms" -lt 6000
ok "... after the hook's timeout, not before" test "$ms" -ge 2000
is "$rc" 2 "a failed hook makes the scan exit 2"
ok "the failure is reported with its reason" \
	grep -q 'on_match_exec ".*hang.sh" failed for .*a/b/known two.bin: killed after on_match_exec_timeout' <<<"$out"
ok "... and counted in the summary" grep -q 'hooks: 1 run, 1 failed' <<<"$out"
ok "no hook process is left behind" bash -c "! pgrep -f '$HG_TMP/[h]ang.sh' >/dev/null"

done_testing
