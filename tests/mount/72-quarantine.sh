#!/bin/bash
# 72-quarantine.sh - quarantine round trips without a mount (records made by
# `scan --action quarantine`): content encrypted at rest, restore with owner and mode, refusal
# to overwrite, no symlink redirection, allowlisting on restore, export, hold/release, delete,
# purge, tamper detection, root-only access, and every action in the audit log.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/adm-lib.sh"
adm_setup
T=$AT_TREE
mkdir -p "$T/u/sub" "$AT/elsewhere"
# Known files with a recognisable plaintext marker in front of random bytes.
mk() {	# mk FILE LIST UID MODE
	{ printf 'HASHGATE-PLAINTEXT-MARKER-%s\n' "$2"; head -c 20000 /dev/urandom; } >"$1"
	sha256sum <"$1" | cut -d' ' -f1 >"$AT/lists/$2"
	hgc db import --list "$2" --category illegal --type sha256 "$AT/lists/$2" >/dev/null
	chown "$3:$3" "$1"; chmod "$4" "$1"
	cp -p "$1" "$AT/orig-$2"
}
mk "$T/u/sub/a.bin" la 1234 0640
mk "$T/u/b.bin" lb 2345 0604
mk "$T/c.bin" lc 0 0600
mk "$T/u/sub/d.bin" ld 1234 0644
head -c 999 /dev/urandom >"$T/clean"

out=$(hgc scan --action quarantine --json "$T"); rc=$?
is "$rc" 1 "scan --action quarantine exits 1"
is "$(jnum "$out" quarantined)" 4 "4 files quarantined"
ok "originals removed" test ! -e "$T/u/sub/a.bin" -a ! -e "$T/u/b.bin" -a ! -e "$T/c.bin"
ok "clean file untouched" test -f "$T/clean"
ok "store dir is 0700" test "$(stat -c %a "$AT_Q")" = 700
ok "key file created 0600" test "$(stat -c %a "$AT/quarantine.key")" = 600
nok "no plaintext marker anywhere in the store" grep -rqa HASHGATE-PLAINTEXT-MARKER "$AT_Q"
cp -a "$AT_Q" "$AT/stolen"
nok "a copy of the store without the key reveals no plaintext either" \
	grep -rqa HASHGATE-PLAINTEXT-MARKER "$AT/stolen"

list=$(hgc quarantine list --json)
is "$(grep -o '"id":' <<<"$list" | wc -l)" 4 "list --json: 4 records"
id() { grep -o '"id":[0-9]*,[^}]*"path":"'"$1"'"' <<<"$list" | head -n1 | sed 's/"id":\([0-9]*\),.*/\1/'; }
A=$(id u/sub/a.bin); B=$(id u/b.bin); C=$(id c.bin); D=$(id u/sub/d.bin)
ok "ids found for every record" test -n "$A" -a -n "$B" -a -n "$C" -a -n "$D"
is "$(hgc quarantine list --uid 1234 --json | grep -o '"id":' | wc -l)" 2 "list --uid 1234"
is "$(hgc quarantine list --list lb --json | grep -o '"id":' | wc -l)" 1 "list --list lb"
is "$(hgc quarantine list --since @4000000000 --json)" "[]" "list --since the future: none"
ok "show names path, uid, mode and list" \
	sh -c "$HG_CLI --config $AT_CONF quarantine show $A | grep -q 'path: *u/sub/a.bin' &&
	       $HG_CLI --config $AT_CONF quarantine show $A | grep -q 'uid 1234' &&
	       $HG_CLI --config $AT_CONF quarantine show $A | grep -q 'mode: *0640' &&
	       $HG_CLI --config $AT_CONF quarantine show $A | grep -q 'list la'"

# Restore to the original place: same bytes, owner and mode.
ok "restore A" hgc quarantine restore "$A"
ok "restored bytes identical" cmp "$AT/orig-la" "$T/u/sub/a.bin"
is "$(stat -c '%u:%g %a' "$T/u/sub/a.bin")" "1234:1234 640" "owner and mode restored"
nok "restore again refuses to overwrite" hgc quarantine restore "$A"
echo changed >"$T/u/sub/a.bin"
ok "restore --force overwrites" hgc quarantine restore "$A" --force
ok "forced restore identical" cmp "$AT/orig-la" "$T/u/sub/a.bin"
ok "show says restored" sh -c "$HG_CLI --config $AT_CONF quarantine show $A | grep -q 'restored: *yes'"
# Restored but not allowlisted: a new scan finds it again.
out=$(hgc scan --json --no-record "$T/u/sub/a.bin")
is "$(jnum "$out" matches)" 1 "restored without --allow still matches"

# Restore with --allow: its hashes go to the allowlist, the next scan passes it.
ok "restore B with --allow" hgc quarantine restore "$B" --allow
is "$(stat -c '%u:%g %a' "$T/u/b.bin")" "2345:2345 604" "B owner and mode restored"
out=$(hgc scan --json --no-record "$T/u/b.bin"); rc=$?
is "$(jnum "$out" matches)" 0 "allowlisted false positive no longer matches"
# One exact entry names the file; each more (the scan's record has MD5, SHA-1 and SHA-256)
# would make the daemon hash every upload with another algorithm.
allow=$(hgc --json allow list)
case $allow in '[{"algo":"sha256","hash":"'"$(cat "$AT/lists/lb")"'"'*'}]') r=1 ;; *) r=0 ;; esac
case $allow in *'},{'*) r=0 ;; esac
hg_result $r "restore --allow added the one SHA-256 entry (got $allow)"

# A directory on the way replaced by a symlink: a root restore must not follow it.
rm -rf "$T/u/sub"; ln -s "$AT/elsewhere" "$T/u/sub"
nok "restore refuses a symlinked directory on the path" hgc quarantine restore "$D"
ok "nothing written through the symlink" test -z "$(ls -A "$AT/elsewhere")"
ok "restore --to PATH" hgc quarantine restore "$D" --to "$AT/d-restored"
ok "--to content identical" cmp "$AT/orig-ld" "$AT/d-restored"

# Export: original bytes and a JSON record.
ok "export C" hgc quarantine export "$C" --out "$AT/evidence" --plaintext
ok "exported bytes identical" cmp "$AT/orig-lc" "$AT/evidence"
ok "export record has the sha256" grep -q "\"sha256\":\"$(cat "$AT/lists/lc")\"" "$AT/evidence.json"
ok "exported files are 0600" test "$(stat -c %a "$AT/evidence")" = 600 -a "$(stat -c %a "$AT/evidence.json")" = 600
nok "export refuses to overwrite" hgc quarantine export "$C" --out "$AT/evidence" --plaintext

# Tampering: one flipped byte in the object -> no output file at all.
obj=$AT_Q/objects/sha256-$(cat "$AT/lists/lc")	# content is stored once per sha256
ok "the object is named by its sha256" test -f "$obj"
# (change the byte to another value: writing a fixed one was a no-op 1 time in 256)
old_byte=$(od -An -tu1 -j100 -N1 "$obj" | tr -d ' ')
printf "\\$(printf %03o $(( (old_byte + 1) % 256 )))" | dd of="$obj" bs=1 seek=100 conv=notrunc 2>/dev/null
ok "the object's byte 100 really changed" test "$(od -An -tu1 -j100 -N1 "$obj" | tr -d ' ')" != "$old_byte"
nok "tampered object: export fails" hgc quarantine export "$C" --out "$AT/tampered" --plaintext
ok "and writes no content file" test ! -e "$AT/tampered"

# Hold: not deletable, not purged.
ok "hold C" hgc quarantine hold "$C"
nok "delete of a held record fails" hgc quarantine delete "$C"
ok "delete D" hgc quarantine delete "$D"
nok "D is gone" hgc quarantine show "$D"
sleep 2.1	# record times are whole seconds: older than 1 s needs 2 s to be sure
ok "purge --older-than 1s" hgc quarantine purge --older-than 1s
left=$(hgc quarantine list --json)
is "$(grep -o '"id":' <<<"$left" | wc -l)" 1 "purge removed all but the held record"
ok "the held record survived" grep -q "\"id\":$C," <<<"$left"
ok "release C" hgc quarantine release "$C"
ok "purge after release" hgc quarantine purge --older-than 1s
is "$(hgc quarantine list --json)" "[]" "store empty"
ok "no object files left" test -z "$(ls -A "$AT_Q/objects")"

# Unprivileged users get a clear refusal, never content.
out=$(hg_as 65534 65534 "$HG_CLI" --config "$AT_CONF" quarantine list 2>&1); rc=$?
is "$rc" 2 "unprivileged quarantine list: exit 2"
ok "and says root is needed" grep -q "must be run as root" <<<"$out"
nok "unknown subcommand is an error" hgc quarantine frobnicate 1
hgc quarantine show abc >/dev/null 2>&1; rc=$?
is "$rc" 64 "bad id is a usage error"

# Everything above is in the audit log, which still verifies.
log=$(hgc log --json)
for a in scan.quarantine quarantine.restore allow.add quarantine.export quarantine.hold \
	quarantine.delete quarantine.purge quarantine.release; do
	ok "audit log has $a" grep -q "\"action\":\"$a\"" <<<"$log"
done
ok "actor is recorded" grep -q '"actor":"uid=0(root)"' <<<"$log"
ok "log verify passes" hgc log verify
done_testing
