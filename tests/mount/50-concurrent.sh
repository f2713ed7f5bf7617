#!/bin/bash
# 50-concurrent.sh - concurrent uploads from many processes: 32 parallel writers (cp, dd and
# shell redirection, various sizes), a mix of clean and known files, every verdict checked:
# each clean file published intact, each known one refused with a failed close and absent;
# then 16 writers race on one name (a watchdog turns a deadlock into a failure).
. "$(dirname "$0")/lib.sh"
hg_setup
M=$HG_MNT B=$HG_BACK W=$HG_TMP/w
hg_mount || bail "mount failed"
N=32
mkdir -p "$W/src" "$W/rc" "$M/par"
knowns=("$HG_K_SHA256" "$HG_K_MD5" "$HG_K_SHA1" "$HG_K_BIG")
for i in $(seq 1 $N); do
	if [ $((i % 4)) -eq 0 ]; then
		cp "${knowns[$(( (i / 4) % 4 ))]}" "$W/src/$i"
		echo known >"$W/src/$i.kind"
	else
		hg_random "$W/src/$i" $(( (i * 37811) % 2000000 + 1 ))
		echo clean >"$W/src/$i.kind"
	fi
done
start=$(date +%s.%N)
for i in $(seq 1 $N); do
	(
		# a watchdog: a deadlocked daemon shows up as rc 124/137, not as a hung test
		case $((i % 3)) in
		0) timeout -k 5 30 cp "$W/src/$i" "$M/par/f$i" ;;
		1) timeout -k 5 30 dd if="$W/src/$i" of="$M/par/f$i" bs=65533 status=none ;;
		2) timeout -k 5 30 bash -c "cat '$W/src/$i' >'$M/par/f$i'" ;;
		esac
		echo $? >"$W/rc/$i"
	) 2>/dev/null &
done
wait
end=$(date +%s.%N)
diag "32 parallel uploads took $(echo "$end - $start" | bc 2>/dev/null || echo "?") s"

bad_clean= bad_known= bad_rc=
for i in $(seq 1 $N); do
	kind=$(cat "$W/src/$i.kind")
	rc=$(cat "$W/rc/$i" 2>/dev/null || echo missing)
	if [ "$kind" = clean ]; then
		[ "$rc" = 0 ] || bad_rc="$bad_rc f$i(clean rc=$rc)"
		cmp -s "$W/src/$i" "$B/par/f$i" || bad_clean="$bad_clean f$i"
	else
		# cat > (mode 2) cannot report the close error: the file check still applies
		[ $((i % 3)) -eq 2 ] || [ "$rc" != 0 ] || bad_rc="$bad_rc f$i(known rc=0)"
		[ ! -e "$B/par/f$i" ] || bad_known="$bad_known f$i"
	fi
done
is "$bad_clean" "" "every clean upload is published intact"
is "$bad_known" "" "no known upload exists under its name"
is "$bad_rc" "" "every clean writer succeeded and every known cp/dd writer saw its close fail"
for k in "${knowns[@]}"; do
	ok "known $(basename "$k") is nowhere in the backing dir" hg_content_absent "$k"
done
is "$(sqlite3 -readonly "$HG_QDIR/records.db" "SELECT count(*) FROM records WHERE path LIKE '%par/f%'" 2>&1)" \
	$((N / 4)) "one quarantine record per known upload ($((N / 4)))"
is "$(ls -A "$M/par" | wc -l)" $((N - N / 4)) "the mount lists exactly the clean files"

# same name from many writers at once: the last clean close wins, a known one never appears.
# dd opens with O_CREAT|O_TRUNC and no O_EXCL (cp uses O_EXCL when it saw no file, and then
# gets EEXIST from any racing creator, on a plain directory too), so EEXIST here is a bug.
mkdir -p "$W/rc2"
for i in $(seq 1 16); do
	( if [ $((i % 2)) -eq 0 ]; then src=$HG_K_SHA1; else src=$W/src/1; fi
	  timeout -k 3 15 dd if="$src" of="$M/same" bs=65536 status=none 2>"$W/rc2/$i.err"; echo $? >"$W/rc2/$i" ) &
done
wait
hung= odd=
for i in $(seq 1 16); do
	rc=$(cat "$W/rc2/$i")
	case $rc in 124|137) hung="$hung w$i" ;; esac
	[ $((i % 2)) -eq 1 ] && [ "$rc" != 0 ] && odd="$odd w$i($(head -c 200 "$W/rc2/$i.err"))"
done
is "$hung" "" "16 writers to one name: none hangs (15 s watchdog)"
is "$odd" "" "16 writers to one name: every clean writer succeeds (O_CREAT without O_EXCL never gets EEXIST)"
ok "16 writers to one name: the result is the clean content" cmp "$W/src/1" "$B/same" ||
	diag "  backing 'same': $(stat -c '%s bytes' "$B/same" 2>&1), clean is $(stat -c %s "$W/src/1") bytes"
ok "... and the known content is absent" hg_content_absent "$HG_K_SHA1"

# Deterministic form of that race: a sibling (another child of the same shell) finds the
# first writer's staged name on lookup; its own write-open must still succeed (its own upload)
# rather than fail with ENOENT.
bash -c "exec 3>'$M/sib'; sleep 3" &
holder=$!
for i in $(seq 50); do [ -e "$M/sib" ] && break; sleep 0.1; done
ok "a sibling sees the first writer's staged name" test -e "$M/sib"
ok "and can still write the name itself" bash -c "echo clean >'$M/sib'"
wait "$holder"
ok "the name exists after both closed" test -e "$B/sib"

done_testing
