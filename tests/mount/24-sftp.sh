#!/bin/bash
# 24-sftp.sh - uploads with a real SFTP server over loopback: a private sshd on 127.0.0.1 (lib.sh's
# hg_sshd_start: free port, generated keys, all in the scratch dir) serves the mount.  A clean
# `put` succeeds and is published; a known `put` is reported as a failed upload by the client
# (the server's close got EACCES) and its bytes are nowhere in the backing dir.
. "$(dirname "$0")/lib.sh"
SSHD=$(command -v sshd || echo /usr/sbin/sshd)
[ -x "$SSHD" ] && command -v sftp >/dev/null && command -v ssh-keygen >/dev/null ||
	skip_all "openssh-server/openssh-client not installed (make deps)"
hg_setup
hg_mount || bail "mount failed"
M=$HG_MNT B=$HG_BACK W=$HG_TMP/w S=$HG_TMP/ssh

hg_sshd_start || bail "cannot start the test sshd"
PORT=$HG_SSH_PORT
SFTP=(sftp -q -b - -P "$PORT" "${HG_SSH_OPTS[@]}" root@127.0.0.1)
ok "sshd is listening on 127.0.0.1:$PORT" bash -c "echo 'pwd' | ${SFTP[*]@Q}" ||
	diag "$(cat "$S/sshd.log")"

hg_random "$W/clean.bin" 1234567
ok "sftp put of a clean file succeeds" bash -c "echo 'put $W/clean.bin $M/clean.bin' | ${SFTP[*]@Q}"
ok "the clean file is published identically" cmp "$W/clean.bin" "$B/clean.bin"

out=$(echo "put $HG_K_BIG $M/known.bin" | "${SFTP[@]}" 2>&1); rc=$?
ok "sftp put of a known file is reported as failed (exit $rc)" test "$rc" -ne 0
diag "sftp said: $(tr '\n' ' ' <<<"$out")"
ok "the client names the failure (close/permission)" grep -Eqi 'denied|failure|close' <<<"$out"
ok "no file under its name" test ! -e "$B/known.bin"
ok "its bytes are nowhere in the backing dir" hg_content_absent "$HG_K_BIG"
ok "it is quarantined" hg_quarantined known.bin

cp "$W/clean.bin" "$W/clean2.bin"
out=$(printf 'put %s %s\nput %s %s\n' "$HG_K_SHA256" "$M/over.bin" "$W/clean2.bin" "$M/after.bin" |
	sed 's/^/-/' | "${SFTP[@]}" 2>&1)
ok "after a refused upload the session goes on: a later clean put works" cmp "$W/clean2.bin" "$B/after.bin"

printf 'old\n' >"$W/old"; cp "$W/old" "$M/over2.bin"
nok "sftp put of known content over an existing file fails" \
	bash -c "echo 'put $HG_K_SHA256 $M/over2.bin' | ${SFTP[*]@Q}"
ok "the existing file keeps its old content" cmp "$W/old" "$B/over2.bin"
ok "known bytes absent" hg_content_absent "$HG_K_SHA256"

out=$(printf 'put %s %s\n' "$HG_K_SHA1" "$M/resume.bin" | "${SFTP[@]}" 2>&1)
head -c 1000 "$HG_K_SHA1" >"$M/res2.bin"
nok "sftp reput (resume an upload) completing a known file fails" \
	bash -c "echo 'reput $HG_K_SHA1 $M/res2.bin' | ${SFTP[*]@Q}"
ok "known bytes (sha1) absent after resume" hg_content_absent "$HG_K_SHA1"

done_testing
