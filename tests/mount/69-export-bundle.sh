#!/bin/bash
# 69-export-bundle.sh - `hashgate quarantine export` as one encrypted evidence bundle (issue 17):
# CMS that stock `openssl cms -decrypt` opens with the recipient's RSA or EC key or with the
# passphrase; inside a tar of the content and a manifest signed by the host's Ed25519 key
# (`openssl pkeyutl -verify -rawin`) and tied to the audit chain head; no plaintext anywhere
# without --plaintext; one record, a time range or a list of ids; the export is audited.
. "$(dirname "$0")/lib.sh"
. "$(dirname "$0")/adm-lib.sh"
command -v openssl >/dev/null || skip_all "openssl CLI not installed (make deps)"
adm_setup
T=$AT_TREE
K=$AT/keys
mkdir -p "$T/u" "$K"
mk() {	# mk FILE LIST UID
	{ printf 'HASHGATE-PLAINTEXT-MARKER-%s\n' "$2"; head -c 30000 /dev/urandom; } >"$1"
	sha256sum <"$1" | cut -d' ' -f1 >"$AT/lists/$2"
	hgc db import --list "$2" --category illegal --type sha256 "$AT/lists/$2" >/dev/null
	chown "$3:$3" "$1"
	cp -p "$1" "$AT/orig-$2"
}
mk "$T/u/a.bin" la 1234
mk "$T/b.bin" lb 0
# a.bin is also on a second list, by md5, with a label: the manifest names every list.
printf '%s case-label-77\n' "$(md5sum <"$T/u/a.bin" | cut -d' ' -f1)" >"$AT/lists/lx"
hgc db import --list lx --category csam-x --type md5 "$AT/lists/lx" >/dev/null || bail "import lx"
hgc scan --action quarantine "$T" >/dev/null 2>&1
list=$(hgc quarantine list --json)
id() { grep -o '"id":[0-9]*,[^}]*"path":"'"$1"'"' <<<"$list" | head -n1 | sed 's/"id":\([0-9]*\),.*/\1/'; }
A=$(id u/a.bin); B=$(id b.bin)
ok "two records to export" test -n "$A" -a -n "$B"

openssl req -x509 -newkey rsa:2048 -nodes -keyout "$K/rsa.key" -out "$K/rsa.pem" \
	-subj /CN=hotline-rsa -days 2 2>/dev/null || bail "openssl req (rsa) failed"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout "$K/ec.key" \
	-out "$K/ec.pem" -subj /CN=hotline-ec -days 2 2>/dev/null || bail "openssl req (ec) failed"
printf 'correct horse battery staple\n' >"$K/pass"

# Nothing in plaintext without --plaintext.
hg_run hgc quarantine export "$A" --out "$AT/plain"; rc=$?
is "$rc" 2 "export without a recipient or passphrase: exit 2"
ok "  and says how" grep -q -- "--recipient.*--passphrase-file.*--plaintext" <<<"$HG_OUT"
ok "  and writes nothing" test ! -e "$AT/plain"
hg_run hgc quarantine export "$A" --out "$AT/plain" --plaintext --recipient "$K/rsa.pem"; rc=$?
is "$rc" 64 "--plaintext with --recipient is a usage error"
hg_run hgc quarantine export "$A" --out "$AT/x" --recipient "$AT/lists/la"; rc=$?
is "$rc" 2 "a recipient that is no certificate: exit 2"
ok "  naming the file" grep -q "lists/la" <<<"$HG_OUT"
ok "  and nothing written" test -z "$(ls -A "$AT" | grep -e '^x$' -e hashgate-export)"

# One record, to an RSA certificate.
ok "export A to an RSA recipient" hgc quarantine export "$A" --out "$AT/a.p7m" --recipient "$K/rsa.pem"
ok "the bundle is 0600" test "$(stat -c %a "$AT/a.p7m")" = 600
nok "no plaintext in the bundle" grep -qa HASHGATE-PLAINTEXT-MARKER "$AT/a.p7m"
ok "host key made on first use, 0600" test "$(stat -c %a "$AT/host-ed25519.pem")" = 600
is "$(grep -c '"action":"key.create"' "$AT_AUDIT")" 1 "  and that is in the audit log"
ok "openssl cms -decrypt opens it with the RSA key" \
	openssl cms -decrypt -inform DER -in "$AT/a.p7m" -recip "$K/rsa.pem" -inkey "$K/rsa.key" -out "$AT/a.tar"
mkdir "$AT/a" && tar -xf "$AT/a.tar" -C "$AT/a"
ok "tar has manifest, signature, public key, content" test -f "$AT/a/manifest.json" -a \
	-f "$AT/a/manifest.json.sig" -a -f "$AT/a/host-key.pub.pem" -a -f "$AT/a/content/sha256-$(cat "$AT/lists/la")"
ok "content is the original bytes" cmp "$AT/orig-la" "$AT/a/content/sha256-$(cat "$AT/lists/la")"
ok "the signature verifies with openssl pkeyutl -rawin" openssl pkeyutl -verify -pubin \
	-inkey "$AT/a/host-key.pub.pem" -rawin -in "$AT/a/manifest.json" -sigfile "$AT/a/manifest.json.sig"
cp "$AT/a/manifest.json" "$AT/forged.json"
sed -i 's/"uid":1234/"uid":1235/' "$AT/forged.json"
ok "  (the forgery differs)" bash -c "! cmp -s '$AT/forged.json' '$AT/a/manifest.json'"
nok "  and fails for an altered manifest" openssl pkeyutl -verify -pubin \
	-inkey "$AT/a/host-key.pub.pem" -rawin -in "$AT/forged.json" -sigfile "$AT/a/manifest.json.sig"
fp=$(hgc key show --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["fingerprint_sha256"])')
is "$(openssl pkey -pubin -in "$AT/a/host-key.pub.pem" -outform DER | sha256sum | cut -d' ' -f1)" \
	"$fp" "the bundle's key is the one 'hashgate key show' prints"

# The manifest: every field a hotline needs, tied to the audit chain.
mcheck() {	# mcheck MANIFEST PY-EXPR DESC
	ok "$3" python3 -c 'import json,sys
m = json.load(open(sys.argv[1])); r = m["records"]
sys.exit(0 if ('"$2"') else 1)' "$1"
}
M=$AT/a/manifest.json
mcheck "$M" 'len(r) == 1 and m["count"] == 1' "manifest: one record"
mcheck "$M" 'r[0]["uid"] == 1234 and r[0]["path"] == "u/a.bin" and r[0]["mount"] == "'"$T"'"' \
	"manifest: uid, mount, path"
mcheck "$M" 'r[0]["host"] == "'"$(hostname)"'" and m["host"] == r[0]["host"]' "manifest: host"
mcheck "$M" '"user" in r[0] and "origin" in r[0] and r[0]["origin"] == "scan"' "manifest: user name and origin"
mcheck "$M" 'r[0]["review"]["state"] == "new" and r[0]["time"] > 0' "manifest: review state and time"
mcheck "$M" 'r[0]["sha256"] == "'"$(cat "$AT/lists/la")"'" and len(r[0]["md5"]) == 32 and len(r[0]["sha1"]) == 40' \
	"manifest: all hashes"
mcheck "$M" '{(x["list"], x["category"], x["label"]) for x in r[0]["matches"]} == {("la", "illegal", None), ("lx", "csam-x", "case-label-77")}' \
	"manifest: every list, category and label holding its hashes"
mcheck "$M" 'm["signing_key"]["fingerprint_sha256"] == "'"$fp"'"' "manifest: names the signing key"
exp=$(grep '"action":"quarantine.export"' "$AT_AUDIT" | tail -n1)
prev=$(sed 's/.*"prev":"\([0-9a-f]*\)".*/\1/' <<<"$exp")
mcheck "$M" 'm["audit_chain"]["head"] == "'"$prev"'" and m["audit_chain"]["verified"]' \
	"manifest: the audit chain head is the one the export's own record chains onto"
ok "the export record names the manifest's sha256" \
	grep -q "\"manifest_sha256\":\"$(sha256sum <"$M" | cut -d' ' -f1)\"" <<<"$exp"
ok "  and the record ids" grep -q "\"ids\":\[$A\]" <<<"$exp"

# A time range, to an EC recipient and a passphrase at once.
ok "export --since 1h to EC + passphrase" hgc quarantine export --since 1h --out "$AT/r.p7m" \
	--recipient "$K/ec.pem" --passphrase-file "$K/pass"
ok "openssl cms -decrypt opens it with the passphrase" openssl cms -decrypt -inform DER \
	-in "$AT/r.p7m" -pwri_password 'correct horse battery staple' -out "$AT/r.tar"
ok "  and with the EC key, to the same archive" bash -c "openssl cms -decrypt -inform DER \
	-in '$AT/r.p7m' -recip '$K/ec.pem' -inkey '$K/ec.key' | cmp - '$AT/r.tar'"
nok "  not with a wrong passphrase" openssl cms -decrypt -inform DER -in "$AT/r.p7m" \
	-pwri_password 'wrong horse' -out /dev/null
mkdir "$AT/r" && tar -xf "$AT/r.tar" -C "$AT/r"
mcheck "$AT/r/manifest.json" 'sorted(x["id"] for x in r) == sorted(['"$A, $B"'])' "range: both records"
ok "range: both contents" cmp "$AT/orig-lb" "$AT/r/content/sha256-$(cat "$AT/lists/lb")"
hg_run hgc quarantine export --since @4000000000 --out "$AT/none.p7m" --passphrase-file "$K/pass"; rc=$?
is "$rc" 2 "an empty range: exit 2, nothing written"
ok "  (nothing)" test ! -e "$AT/none.p7m"
hg_run hgc quarantine export --since 1h --until @1000000000 --out "$AT/none.p7m" --passphrase-file "$K/pass"; rc=$?
is "$rc" 2 "--until before every record: nothing to export"

# A list of ids.
ok "export of ids $B $A" hgc quarantine export "$B" "$A" --out "$AT/l.p7m" --passphrase-file "$K/pass"
openssl cms -decrypt -inform DER -in "$AT/l.p7m" -pwri_password 'correct horse battery staple' \
	-out "$AT/l.tar" && mkdir "$AT/l" && tar -xf "$AT/l.tar" -C "$AT/l"
mcheck "$AT/l/manifest.json" 'len(r) == 2 and m["selection"]["ids"] == ['"$B, $A"']' "ids: both, in the order given"
nok "an unknown id fails" hgc quarantine export 99999 --out "$AT/u.p7m" --passphrase-file "$K/pass"
ok "  without writing" test ! -e "$AT/u.p7m"
nok "no overwrite without --force" hgc quarantine export "$A" --out "$AT/a.p7m" --passphrase-file "$K/pass"
ok "--force overwrites" hgc quarantine export "$A" --out "$AT/a.p7m" --passphrase-file "$K/pass" --force
nok "no plaintext marker in any bundle" grep -qa HASHGATE-PLAINTEXT-MARKER "$AT/a.p7m" "$AT/r.p7m" "$AT/l.p7m"

ok "the log verifies" hgc log verify
is "$(grep -c '"action":"key.create"' "$AT_AUDIT")" 1 "the key was made once"
is "$(grep -c '"action":"quarantine.export".*"bundle":true' "$AT_AUDIT")" 4 "every bundle export is audited"
out=$(hg_as 65534 65534 "$HG_CLI" --config "$AT_CONF" key show 2>&1); rc=$?
is "$rc" 2 "key show needs root"
done_testing
