#!/bin/bash
# 45-db-reload.sh - database changes are picked up without a remount: a hash imported (or
# added) while mounted blocks its file within a few seconds; a removed list stops matching;
# uploads keep flowing during the reload; a file in two lists of different categories gets the
# stronger action whichever hash (SHA-256, MD5) each list holds, as the lists change; a listed
# file uploaded right after each change of its lists (racing the reload) is always refused.
. "$(dirname "$0")/lib.sh"
hg_setup
M=$HG_MNT B=$HG_BACK W=$HG_TMP/w
echo "on_match.report = log" >>"$HG_CONF"
hg_mount || bail "mount failed"

hg_random "$W/late" 123457
hg_random "$W/late2" 7777
ok "before the import the file is clean and accepted" cp "$W/late" "$M/before"
sha256sum <"$W/late" | cut -d' ' -f1 >"$W/l-late"
ok "import a new list while mounted" hg_cli db import --list t-late --category illegal --type sha256 "$W/l-late"

# Poll with fresh names: at most 5 s until the new hash blocks (each clean try is published).
blocked_within() {	# blocked_within FILE SECONDS NAMEPREFIX -> prints seconds taken
	local f=$1 limit=$2 p=$3 i=0 start=$SECONDS
	while [ $((SECONDS - start)) -le "$limit" ]; do
		i=$((i + 1))
		if ! cp "$f" "$M/$p$i" 2>/dev/null; then
			echo $((SECONDS - start))
			return 0
		fi
		rm -f "$M/$p$i"
		sleep 0.2
	done
	return 1
}
t=$(blocked_within "$W/late" 5 try) ; rc=$?
ok "the newly imported hash blocks uploads within 5 s without a remount (took ${t:-?} s)" test $rc -eq 0
ok "the blocked try left no file behind" bash -c "! ls -A '$B' | grep -q '^try'"
ok "the file uploaded before the import is untouched" cmp "$W/late" "$B/before"

md5sum <"$W/late2" | cut -d' ' -f1 >"$W/l-late2"
ok "hashgate db add of an md5 hash while mounted" \
	hg_cli db add --list t-late2 --category illegal --type md5 "$(cat "$W/l-late2")"
t=$(blocked_within "$W/late2" 5 md) ; rc=$?
ok "it blocks within 5 s (took ${t:-?} s)" test $rc -eq 0

# removal: after the list is removed, its file is accepted again
ok "remove the list while mounted" hg_cli db remove --list t-late --all
ok_after=
for i in $(seq 25); do
	if cp "$W/late" "$M/after$i" 2>/dev/null; then ok_after=$i; break; fi
	sleep 0.2
done
ok "after removing the list its file is accepted again within 5 s" test -n "$ok_after"

# --- one file in two lists: a log-only one (report) and a quarantine one (illegal) ---------
accepted_within() {	# accepted_within FILE SECONDS NAMEPREFIX
	local f=$1 limit=$2 p=$3 i=0 start=$SECONDS
	while [ $((SECONDS - start)) -le "$limit" ]; do
		i=$((i + 1))
		cp "$f" "$M/$p$i" 2>/dev/null && return 0
		sleep 0.2
	done
	return 1
}
hg_random "$W/two" 54321
S2=$(sha256sum <"$W/two" | cut -d' ' -f1) M2=$(md5sum <"$W/two" | cut -d' ' -f1)
echo "$S2" >"$W/l-two"
hg_cli db import --list t-report --category report --type sha256 "$W/l-two" >/dev/null
ok "listed only in the log-only list: accepted (and logged)" accepted_within "$W/two" 5 rep
hg_cli db add --list t-illegal --category illegal --type md5 "$M2" >/dev/null
t=$(blocked_within "$W/two" 5 two) ; rc=$?
ok "its MD5 added to a quarantine list: refused within 5 s although its SHA-256 is in the log-only list (took ${t:-?} s)" test $rc -eq 0
hg_cli db add --list t-illegal --category illegal --type sha256 "$S2" >/dev/null
hg_cli db remove --list t-illegal --type md5 "$M2" >/dev/null
sleep 1.5
nok "the same SHA-256 in both lists: refused" cp "$W/two" "$M/two-both"
hg_cli db import --list t-report --category report --type sha256 --replace "$W/l-two" >/dev/null
sleep 1.5
nok "the log-only list replaced (same content, new generation): still refused" cp "$W/two" "$M/two-rep"
hg_cli db remove --list t-report --all >/dev/null
sleep 1.5
nok "the log-only list removed: still refused" cp "$W/two" "$M/two-norep"
hg_cli db import --list t-report --category report --type sha256 "$W/l-two" >/dev/null
hg_cli db remove --list t-illegal --all >/dev/null
ok "the quarantine list removed: accepted again (log-only) within 5 s" accepted_within "$W/two" 5 back
ok "no refused try left a file behind" bash -c "! ls -A '$B' | grep -q '^two'"

# a file in a full list stays refused while another list holding it too gets deltas, is
# removed, and the full list is replaced: every upload races a reload
hg_random "$W/d" 40051
D=$(sha256sum <"$W/d" | cut -d' ' -f1)
hg_random "$W/f" 40052
printf '%s\n%s\n' "$D" "$(sha256sum <"$W/f" | cut -d' ' -f1)" >"$W/full"
hg_cli db import --list t-full --category illegal --type sha256 "$W/full" >/dev/null
sleep 1.5
leaks=
for i in $(seq 24); do
	case $((i % 4)) in
	0) printf '{"sha256":"%s"}\n' "$D" >"$W/delta.jsonl"
	   hg_cli db import --list t-delta --category other "$W/delta.jsonl" >/dev/null ;;
	1) printf '{"sha256":"%s","deleted":true}\n' "$D" >"$W/delta.jsonl"
	   hg_cli db import --list t-delta --category other "$W/delta.jsonl" >/dev/null ;;
	2) hg_cli db import --list t-full --category illegal --type sha256 --replace "$W/full" >/dev/null ;;
	3) hg_cli db remove --list t-delta --all >/dev/null 2>&1 ;;
	esac
	cp "$W/d" "$M/race$i" 2>/dev/null && leaks="$leaks $i"
done
is "$leaks" "" "24 uploads of a listed file, each right after a change of its lists, all refused"

# uploads keep flowing while the database is being changed
( for i in $(seq 10); do hg_random "$W/x$i" 1000; hg_cli db import --list "t-bulk$i" --category other --type sha256 <(sha256sum <"$W/x$i" | cut -d' ' -f1) >/dev/null; done ) &
imp=$!
fails=0
for i in $(seq 40); do
	hg_random "$W/flow" 20000
	cp "$W/flow" "$M/flow$i" || fails=$((fails + 1))
done
wait $imp
is "$fails" 0 "40 clean uploads during 10 concurrent imports all succeeded"

# An upload written completely before a hash of it is imported, and closed only after the
# import took effect: its close judges it against the new database (a verdict worked out
# after its last write, fs/staging.c upload_precheck, is from the old one).
hg_random "$W/held" 3001
sha256sum <"$W/held" | cut -d' ' -f1 >"$W/l-held"
out=$(python3 -c '
import os, subprocess, sys, time
dst, src, lst, cli = sys.argv[1:5]
data = open(src, "rb").read()
fd = os.open(dst, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, data)
subprocess.run(cli.split() + ["db", "import", "--list", "t-held", "--category", "illegal",
	"--type", "sha256", lst], check=True, stdout=subprocess.DEVNULL)
for i in range(50):		# until the reload blocks a copy (at most 5 s)
	try:
		p = os.open(dst + ".probe%d" % i, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
		os.write(p, data)
		os.close(p)
		os.unlink(dst + ".probe%d" % i)
	except PermissionError:
		break
	time.sleep(0.1)
else:
	print("the import never took effect")
	sys.exit(2)
try:
	os.close(fd)
	print("closed clean")
except PermissionError:
	print("refused")
' "$M/held" "$W/held" "$W/l-held" "$HG_CLI --config $HG_CONF --db $HG_DB" 2>&1)
is "$out" "refused" "written before the import, closed after it took effect: refused at close"
ok "... and nothing under its name" test ! -e "$B/held"

done_testing
