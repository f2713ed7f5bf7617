#!/bin/bash
# 66-hook.sh - on_match_exec: one JSON event per match on the program's stdin (record id,
# hashes, list, category, label, uid and user name, path, action, host), run as root and not
# as the uploader, with a fixed environment; per-category hooks; a hung hook does not delay
# verdicts (clean and known uploads return promptly), is killed after on_match_exec_timeout
# and counted; a full queue drops events and counts them.
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
ok "the event is JSON with the record id, time and host" \
	bash -c "/usr/bin/python3 -c 'import json,sys; e=json.loads(sys.stdin.read()); assert e[\"event\"]==\"match\" and e[\"id\"]>0 and e[\"time\"]>0 and e[\"host\"]' <<<'$e'"
ok "... the hashes, list and category" \
	bash -c "grep -q '\"sha256\":\"$(hg_sha256 "$HG_K_SHA256")\"' <<<'$e' && grep -q '\"list\":\"t-sha256\",\"category\":\"illegal\"' <<<'$e'"
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

done_testing
