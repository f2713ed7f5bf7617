#!/bin/bash
# 46-feeds.sh - list feeds over real HTTPS: a python3 http.server with TLS on 127.0.0.1, a
# throwaway CA and server certificate made here with openssl.  First fetch, 304 not applied
# again, signed lists accepted, tampered / unsigned / wrongly signed lists refused with nothing
# changed, gzip, --dry-run, delta change sets in order with gaps refused, feed files parsed like
# hashgate.conf (values with '#' quoted by feed add, inline comments, FILE:LINE), the server down: the
# last good list stays and status turns stale; a running mount blocks a newly listed file.
. "$(dirname "$0")/lib.sh"
hg_setup
command -v /usr/bin/python3 >/dev/null || skip_all "python3 is not installed"
M=$HG_MNT W=$HG_TMP/w WWW=$HG_TMP/www P=$HG_TMP/pki
mkdir -p "$WWW" "$P" "$HG_TMP/feeds.d"
export no_proxy='*' NO_PROXY='*' TMPDIR=$HG_TMP
echo "feeds_dir = $HG_TMP/feeds.d" >>"$HG_CONF"
echo "prometheus_textfile = $HG_TMP/state/hg.prom" >>"$HG_CONF"

# --- a throwaway CA, a server certificate for 127.0.0.1, an HTTPS server with ETags ----------
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-subj /CN=hashgate-test-ca -keyout "$P/ca.key" -out "$P/ca.pem" >/dev/null 2>&1 &&
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj /CN=127.0.0.1 \
	-keyout "$P/srv.key" -out "$P/srv.csr" >/dev/null 2>&1 &&
printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n' >"$P/ext" &&
openssl x509 -req -in "$P/srv.csr" -CA "$P/ca.pem" -CAkey "$P/ca.key" -CAcreateserial \
	-days 2 -extfile "$P/ext" -out "$P/srv.pem" >/dev/null 2>&1 || bail "openssl could not make the test PKI"

cat >"$HG_TMP/server.py" <<'EOF'
import hashlib, http.server, os, ssl, sys
root, cert, key, portfile, log = sys.argv[1:]
os.chdir(root)
class H(http.server.SimpleHTTPRequestHandler):
    etag = None
    def send_head(self):
        if self.path.startswith('/auth/') and \
                self.headers.get('Authorization') != 'Bearer s3cret-token':
            self.send_error(401)
            return None
        path = self.translate_path(self.path)
        self.etag = None
        if os.path.isfile(path):
            with open(path, 'rb') as f:
                self.etag = '"%s"' % hashlib.sha256(f.read()).hexdigest()[:16]
            if self.headers.get('If-None-Match') == self.etag:
                self.send_response(304)
                self.end_headers()
                return None
        return super().send_head()
    def end_headers(self):
        if self.etag:
            self.send_header('ETag', self.etag)
        super().end_headers()
    def log_message(self, fmt, *a):
        with open(log, 'a') as f:
            f.write('%s %s\n' % (a[0], a[1]) if len(a) > 1 else (fmt % a) + '\n')
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), H)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
with open(portfile + '.tmp', 'w') as f:
    f.write(str(srv.server_address[1]))
os.rename(portfile + '.tmp', portfile)
srv.serve_forever()
EOF
/usr/bin/python3 "$HG_TMP/server.py" "$WWW" "$P/srv.pem" "$P/srv.key" "$HG_TMP/port" \
	"$HG_TMP/http.log" 2>"$HG_TMP/server.err" &
SRV=$!
HG_BG_PIDS="$HG_BG_PIDS $SRV"
for i in $(seq 50); do [ -s "$HG_TMP/port" ] && break; sleep 0.1; done
[ -s "$HG_TMP/port" ] || bail "the HTTPS test server did not start: $(cat "$HG_TMP/server.err")"
URL=https://127.0.0.1:$(cat "$HG_TMP/port")

C() { "$HG_CLI" --config "$HG_CONF" "$@"; }
out_has() { grep "$@" <<<"$HG_OUT"; }	# out_has -q PATTERN: in the last hg_run's output
gen() { sqlite3 "$HG_DB" "SELECT value FROM meta WHERE key = 'generation'"; }
count() { sqlite3 "$HG_DB" "SELECT count(*) FROM hashes h JOIN lists l ON l.id = h.list_id WHERE l.name = '$1'"; }
has() { sqlite3 "$HG_DB" "SELECT count(*) FROM hashes h JOIN lists l ON l.id = h.list_id WHERE l.name = '$1' AND hex(h.value) = upper('$2')"; }

for f in a b c d x; do hg_random "$W/$f" $((40000 + ${#f} * 17)); done
A=$(hg_sha256 "$W/a") B=$(hg_sha256 "$W/b") CC=$(hg_sha256 "$W/c") D=$(hg_sha256 "$W/d") X=$(hg_sha256 "$W/x")

ok "feed keygen makes an Ed25519 key pair" C feed keygen "$P/feed.key" "$P/feed.pub"
ok "a second key pair (the wrong key)" C feed keygen "$P/other.key" "$P/other.pub"
is "$(stat -c %a "$P/feed.key")" 600 "the private key is 0600"

printf '%s\n%s\n' "$A" "$B" >"$WWW/list.txt"
ok "feed sign writes list.txt.sig" C feed sign --key "$P/feed.key" "$WWW/list.txt"

ok "feed add with a pinned CA and the public key" C feed add f1 "$URL/list.txt" --list feedlist \
	--category illegal --type sha256 --key "$P/feed.pub" --ca-file "$P/ca.pem" --retries 0 \
	--stale-after 1h
nok "feed add of an existing name fails" C feed add f1 "$URL/list.txt" --list other --key "$P/other.pub"
ok "... and keeps the feed's own key" cmp "$HG_TMP/feeds.d/f1.pub" "$P/feed.pub"
nok "feed add refuses a key that is not an Ed25519 public key" \
	C feed add bad "$URL/list.txt" --list x --key "$P/ca.pem"
printf 'url = ftp://x/y\nlist = l\n' >"$HG_TMP/feeds.d/broken.conf"
hg_run C config check "$HG_CONF"; rc=$?
ok "config check names a broken feed file with its line" \
	bash -c "[ $rc = 1 ] && grep -q 'feed broken: .*broken.conf:1: url' <<<\"\$0\"" "$HG_OUT"
rm -f "$HG_TMP/feeds.d/broken.conf"
ok "feed list shows it" bash -c "'$HG_CLI' --config '$HG_CONF' feed list | grep -q '^f1 .*feedlist.*full.*yes'"

hg_mount || bail "mount failed"
ok "c is not listed yet: its upload is accepted" cp "$W/c" "$M/c-before"

# --- first fetch, then 304 ----------------------------------------------------------------
g0=$(gen)
ok "first fetch applies the signed list" C feed update f1
is "$(count feedlist)" 2 "the list holds the feed's two hashes"
g1=$(gen)
ok "the generation moved" test "$g1" != "$g0"
ok "the fetch is audited" grep -q '"action":"feed.update".*"feed":"f1".*"added":2' "$HG_TMP/audit.log"
hg_run C feed update f1
ok "an unchanged list is not modified (conditional GET)" out_has -q 'not modified'
ok "the server answered 304" grep -q 'GET /list.txt HTTP/1.1 304' "$HG_TMP/http.log"
is "$(gen)" "$g1" "a 304 changes nothing, not even the generation (daemons do not reload)"

# --- a new signed list; the running mount picks it up ----------------------------------------
printf '%s\n%s\n' "$A" "$CC" >"$WWW/list.txt"
C feed sign --key "$P/feed.key" "$WWW/list.txt" >/dev/null
hg_run C --json feed update --dry-run f1
ok "--dry-run shows the diff: 1 added, 1 removed" out_has -q '"added":1,"removed":1'
is "$(gen)" "$g1" "--dry-run changed nothing"
is "$(has feedlist "$CC")" 0 "--dry-run did not add the new hash"
hg_run C feed update f1
ok "the new list replaces the old: 1 added, 1 removed" out_has -q '1 added, 1 removed'
ok "the diff is audited" grep -q '"feed.update".*"added":1,"removed":1' "$HG_TMP/audit.log"
is "$(has feedlist "$B")" 0 "the retracted hash is gone"
blocked=
for i in $(seq 25); do
	if ! cp "$W/c" "$M/c-try$i" 2>/dev/null; then blocked=$i; break; fi
	rm -f "$M/c-try$i"; sleep 0.2
done
ok "the running mount blocks the newly listed file without a remount" test -n "$blocked"
ok "the file uploaded before stays" cmp "$W/c" "$HG_BACK/c-before"

# --- refusals: tampered, unsigned, wrong key; nothing changes --------------------------------
g2=$(gen)
printf '%s\n%s\n%s\n' "$A" "$CC" "$D" >"$WWW/list.txt"	# the old signature stays
hg_run C feed update f1; rc=$?
is "$rc" 2 "a tampered list fails the update (exit 2)"
ok "... saying the signature does not verify" out_has -q 'signature does not verify'
is "$(gen)$(count feedlist)$(has feedlist "$D")" "${g2}20" "... and changes nothing"
ok "the refusal is audited" grep -q '"action":"feed.refused".*"feed":"f1"' "$HG_TMP/audit.log"
rm -f "$WWW/list.txt.sig"
hg_run C feed update f1; rc=$?
is "$rc" 2 "an unsigned list fails the update"
ok "... saying there is no signature" out_has -q 'no signature'
is "$(gen)$(count feedlist)" "${g2}2" "... and changes nothing"
C feed sign --key "$P/other.key" "$WWW/list.txt" >/dev/null
hg_run C feed update f1; rc=$?
is "$rc" 2 "a list signed with another key is refused"
is "$(gen)$(count feedlist)$(has feedlist "$D")" "${g2}20" "... and changes nothing"
ok "feed status names the last error" bash -c "'$HG_CLI' --config '$HG_CONF' feed status | grep -q 'last error (3 in a row)'"
C feed sign --key "$P/feed.key" "$WWW/list.txt" >/dev/null
ok "signed again by the right key it applies" C feed update f1
is "$(has feedlist "$D")" 1 "the added hash is there"

# --- TLS: the system store does not know the test CA ----------------------------------------
C feed add tls "$URL/list.txt" --list tlslist --type sha256 --retries 0 >/dev/null
hg_run C feed update tls
ok "without the pinned CA the server certificate is refused" \
	out_has -qi 'certificate'
is "$(count tlslist)" 0 "... and nothing was applied"
C feed remove tls >/dev/null

# --- gzip file --------------------------------------------------------------------------------
printf '%s\n' "$X" | gzip -c >"$WWW/gz.txt.gz"
C feed add gz "$URL/gz.txt.gz" --list gzlist --type sha256 --ca-file "$P/ca.pem" --retries 0 >/dev/null
ok "a .gz list is decompressed and applied" C feed update gz
is "$(has gzlist "$X")" 1 "the gzip list's hash is there"
C feed remove gz >/dev/null

# --- bearer token, checksum file, max_size --------------------------------------------------
mkdir -p "$WWW/auth"
printf '%s\n' "$X" >"$WWW/auth/members.txt"
C feed add tok "$URL/auth/members.txt" --list toklist --type sha256 --ca-file "$P/ca.pem" \
	--retries 0 >/dev/null
hg_run C feed update tok
ok "without the token the server refuses (401) and nothing is applied" \
	bash -c "grep -q 'HTTP status 401' <<<\"\$0\" && [ \"\$1\" = 0 ]" "$HG_OUT" "$(count toklist)"
echo s3cret-token >"$HG_TMP/token" && chmod 0600 "$HG_TMP/token"
echo "token_file = $HG_TMP/token" >>"$HG_TMP/feeds.d/tok.conf"
ok "with token_file the bearer token is sent and the list applies" C feed update tok
is "$(has toklist "$X")" 1 "the members-only list is there"
ok "the token is not in the feed's file or the audit log" \
	bash -c "! grep -rq s3cret '$HG_TMP/feeds.d' '$HG_TMP/audit.log'"
C feed remove tok >/dev/null
printf '%s\n' "$D" >"$WWW/sum.txt"
sha256sum "$WWW/sum.txt" >"$WWW/sum.txt.sha256"
C feed add sum "$URL/sum.txt" --list sumlist --type sha256 --ca-file "$P/ca.pem" --retries 0 \
	--checksum >/dev/null
ok "checksum = on: a list matching URL.sha256 applies" C feed update sum
printf '%s\n%s\n' "$D" "$X" >"$WWW/sum.txt"
hg_run C feed update sum; rc=$?
ok "a list that does not match URL.sha256 is refused, nothing changed" \
	bash -c "[ $rc = 2 ] && grep -q 'does not match' <<<\"\$0\" && [ \"\$1\" = 0 ]" "$HG_OUT" "$(has sumlist "$X")"
C feed remove sum >/dev/null
C feed add big "$URL/list.txt" --list biglist --type sha256 --ca-file "$P/ca.pem" --retries 0 \
	--max-size 100 >/dev/null
hg_run C feed update big; rc=$?
ok "a body over max_size is refused, nothing applied" \
	bash -c "[ $rc = 2 ] && grep -q 'larger than max_size' <<<\"\$0\" && [ \"\$1\" = 0 ]" "$HG_OUT" "$(count biglist)"
C feed remove big >/dev/null

# --- delta feed: in order, gaps refused --------------------------------------------------------
printf '{"sequence": 1, "after": 0}\n{"sha256": "%s"}\n{"sha256": "%s"}\n' "$X" "$B" >"$WWW/delta.jsonl"
ok "feed add --delta" C feed add d1 "$URL/delta.jsonl" --list deltalist --category illegal \
	--delta --ca-file "$P/ca.pem" --retries 0
ok "change set 1 applies" C feed update d1
is "$(count deltalist)" 2 "two hashes added"
hg_run C feed update d1
ok "the same change set again is not applied twice" out_has -Eq 'not modified|unchanged'
g3=$(gen)
printf '{"sequence": 3, "after": 2}\n{"sha256": "%s", "deleted": true}\n' "$X" >"$WWW/delta.jsonl"
hg_run C feed update d1; rc=$?
is "$rc" 2 "change set 3 after 2 (2 missing) is refused"
ok "... as a gap" out_has -q 'delta gap'
is "$(gen)$(count deltalist)" "${g3}2" "... and nothing changed"
printf '{"sequence": 2, "after": 1}\n{"sha256": "%s", "deleted": true}\n{"sha256": "%s"}\n' "$X" "$D" >"$WWW/delta.jsonl"
ok "change set 2 after 1 applies" C feed update d1
is "$(has deltalist "$X")$(has deltalist "$D")" 01 "its deletion and addition are applied"
ok "feed status shows sequence 2" bash -c "'$HG_CLI' --config '$HG_CONF' feed status d1 | grep -q 'sequence 2'"

# --- feed files are read like hashgate.conf: quotes, inline comments, FILE:LINE errors ----------
# A CA path with " #" in it and a URL with a fragment: feed add must quote them so that reading
# the file back (where " #" starts a comment) gives the values as given.
cp "$P/ca.pem" "$P/ca #1.pem"
printf '%s\n' "$X" >"$WWW/frag.txt"
ok "feed add with '#' in the URL and the CA path" C feed add fr "$URL/frag.txt#v2" --list fraglist \
	--type sha256 --ca-file "$P/ca #1.pem" --retries 0
ok "... reads back: feed list shows the URL with its fragment" \
	bash -c "'$HG_CLI' --config '$HG_CONF' feed list | grep -qF '$URL/frag.txt#v2'"
ok "... and the CA path with ' #' works" C feed update fr
is "$(has fraglist "$X")" 1 "the list behind the URL with a fragment is applied"
C feed remove fr >/dev/null
nok "feed add refuses a line break in a value (it would start another key)" \
	C feed add nl "$URL/frag.txt" --list nllist --ca-file "$(printf '%s\nkey = %s' "$P/ca.pem" "$P/other.pub")"
ok "... and writes no file" test ! -e "$HG_TMP/feeds.d/nl.conf"
printf 'url = %s/frag.txt   # the members list\nlist = "cmtlist"  # quoted\ntype = sha256\nca_file = %s\nretries = 0\n' \
	"$URL" "$P/ca.pem" >"$HG_TMP/feeds.d/cmt.conf"
ok "an inline comment after a value is a comment, as in hashgate.conf" C feed update cmt
is "$(has cmtlist "$X")" 1 "... and the quoted list name is used without its quotes"
rm -f "$HG_TMP/feeds.d/cmt.conf"
printf 'url = %s/frag.txt\nlist = l\n = sha256\n' "$URL" >"$HG_TMP/feeds.d/nokey.conf"
hg_run C config check "$HG_CONF"; rc=$?
ok "a line without a key is an error naming FILE:LINE" \
	bash -c "[ $rc = 1 ] && grep -q 'nokey.conf:3: missing key' <<<\"\$0\"" "$HG_OUT"
printf 'url = "%s/frag.txt\nlist = l\n' "$URL" >"$HG_TMP/feeds.d/nokey.conf"
hg_run C feed update nokey; rc=$?
ok "an unterminated quote is an error naming FILE:LINE" \
	bash -c "[ $rc != 0 ] && grep -q 'nokey.conf:1: unterminated quoted value' <<<\"\$0\"" "$HG_OUT"
rm -f "$HG_TMP/feeds.d/nokey.conf"

# --- the server goes away: the last good list stays, status turns stale --------------------
ok "status is healthy while the feeds are fresh" C status
sed -i 's/^stale_after = .*/stale_after = 2s/' "$HG_TMP/feeds.d/f1.conf"
kill "$SRV"; wait "$SRV" 2>/dev/null
sed -i 's/^retries = .*/retries = 1/; s/^retry_wait = .*/retry_wait = 1s/' "$HG_TMP/feeds.d/f1.conf"
hg_run C feed update --force; rc=$?
is "$rc" 2 "updates fail while the server is down"
ok "a transient failure is retried after retry_wait" grep -q 'f1: .*retrying in 1s' <<<"$HG_OUT"
is "$(count feedlist)" 3 "the last good list stays in force"
nok "the listed file is still blocked" cp "$W/d" "$M/d-down" ||
	diag "$(tail -n 20 "$HG_LOG")" "$(C db lists)" "D=$D"
sleep 3
hg_run C status; rc=$?
is "$rc" 1 "after stale_after without a good fetch, status exits 1"
ok "... and names the stale feed" out_has -q 'feed f1: list feedlist.*STALE'
ok "the textfile has hashgate_feed_stale" grep -q '^hashgate_feed_stale{feed="f1"} 1' "$HG_TMP/state/hg.prom"
nok "feed status exits non-zero too" C feed status

ok "feed remove drops the feed, keeps the list" C feed remove f1
is "$(count feedlist)" 3 "the list is kept"

done_testing
