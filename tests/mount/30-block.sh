#!/bin/bash
# 30-block.sh - on_match=block discards a matching upload (no content kept anywhere, a record
# still written, close fails); per-category actions (on_match.CATEGORY) choose between block and
# quarantine; SIGHUP reloads the config file so a changed action applies without a remount.
. "$(dirname "$0")/lib.sh"
hg_setup
M=$HG_MNT B=$HG_BACK W=$HG_TMP/w

objects() { find "$HG_QDIR/objects" -type f 2>/dev/null | wc -l; }
field() {	# field COLUMN PATH
	sqlite3 -readonly "$HG_QDIR/records.db" \
		"SELECT $1 FROM records WHERE path IN ('$2','/$2') ORDER BY id DESC LIMIT 1" 2>&1
}

hg_mount on_match=block || bail "mount failed"
before=$(objects)
ok "on_match=block: a known upload fails" hg_refused cp "$HG_K_SHA256" "$M/b1"
ok "nothing under its name" test ! -e "$B/b1"
ok "its bytes are nowhere in the backing dir" hg_content_absent "$HG_K_SHA256"
ok "a record is written" hg_quarantined b1
is "$(field action b1)" block "the record's action is block"
is "$(field stored b1)" 0 "the record says no content was stored"
is "$(objects)" "$before" "no content object was added to the quarantine store"
ok "blocked bytes are not in the quarantine dir either" bash -c "
	for o in \$(find '$HG_QDIR' -type f); do cmp -s \"\$o\" '$HG_K_SHA256' && exit 1; done; exit 0"
ok "on_match=block: a known big upload with dd fails" hg_refused dd if="$HG_K_BIG" of="$M/b2" bs=65536 status=none
ok "big known bytes absent" hg_content_absent "$HG_K_BIG"
hg_random "$W/c" 4096
ok "a clean upload still works in block mode" cp "$W/c" "$M/c"
ok "published" cmp "$W/c" "$B/c"
hg_umount

# per-category: illegal -> block, baseline -> quarantine; then SIGHUP to change the default
hg_random "$W/kb" 33333
sha256sum <"$W/kb" | cut -d' ' -f1 >"$W/l-base"
hg_cli db import --list t-base --category baseline --type sha256 "$W/l-base" >/dev/null ||
	diag "import of the baseline list failed"
printf 'on_match = quarantine\non_match.illegal = block\n' >>"$HG_CONF"
hg_mount || bail "remount failed"
ok "known (category illegal) upload fails" hg_refused cp "$HG_K_MD5" "$M/ill"
is "$(field action ill)" block "category illegal is blocked per on_match.illegal"
ok "known (category baseline) upload fails" hg_refused cp "$W/kb" "$M/base"
is "$(field action base)" quarantine "category baseline falls back to on_match=quarantine"
is "$(field stored base)" 1 "its content was stored"
ok "neither is in the backing dir" bash -c "test ! -e '$B/ill' && test ! -e '$B/base'"

sed -i 's/^on_match = quarantine$/on_match = block/' "$HG_CONF"
ok "SIGHUP is accepted" kill -HUP "$HG_PID"
sleep 1
ok "the daemon survives SIGHUP" kill -0 "$HG_PID"
ok "after SIGHUP a known baseline upload fails" hg_refused cp "$W/kb" "$M/base2"
is "$(field action base2)" block "after SIGHUP the new default on_match=block applies"
ok "still mounted and serving" cmp "$W/c" "$M/c"

# A hash in a report-only list (imported first, so its list id is lower) and in a baseline list:
# the stronger action must win, a report-only list never shadows a blocking one.
hg_random "$W/kd" 22222
hg_random "$W/kr" 11111
sha256sum <"$W/kd" | cut -d' ' -f1 >"$W/l-dup"
sha256sum <"$W/kr" | cut -d' ' -f1 >>"$W/l-dup"
hg_cli db import --list t-report --category reportonly --type sha256 "$W/l-dup" >/dev/null ||
	diag "import of the report-only list failed"
sha256sum <"$W/kd" | cut -d' ' -f1 | hg_cli db import --list t-base2 --category baseline \
	--type sha256 - >/dev/null || diag "import of the second baseline list failed"
printf 'on_match.reportonly = log\n' >>"$HG_CONF"
kill -HUP "$HG_PID"
sleep 2
ok "a hash in a report-only and a baseline list: the upload fails" hg_refused cp "$W/kd" "$M/dup"
is "$(field action dup)" block "... with the baseline list's action, not the report-only one"
ok "... and is not in the backing dir" test ! -e "$B/dup"
ok "a hash only in the report-only list is published (on_match.reportonly = log)" \
	cp "$W/kr" "$M/rep"
ok "... intact" cmp "$W/kr" "$B/rep"

done_testing
