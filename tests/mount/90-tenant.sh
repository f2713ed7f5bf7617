#!/bin/bash
# 90-tenant.sh - multi-tenant isolation through one allow_other mount:
#  - uid A's 0600 file cannot be read, written, truncated, rewritten with O_TRUNC (the staging
#    path), renamed, unlinked (sticky dir), chmod'ed or hard-linked by uid B; it stays A's;
#  - renames the sticky rule allows still work: one's own files (rename, over, out and back,
#    RENAME_EXCHANGE), root's, the directory owner's, anybody's in a directory without it;
#  - B cannot list or create in A's 0700 directory;
#  - the staging area and a quarantine store inside BACKING_DIR are unreachable through the
#    mount (not listed, not openable, not creatable, not a rename target);
#  - the admin CLI refuses to show or export quarantined content to a non-root user, and the
#    store never holds a known upload's bytes in clear.
. "$(dirname "$0")/lib.sh"
hg_setup
M=$HG_MNT B=$HG_BACK W=$HG_TMP/w
A=5001 BU=5002
asA() { hg_as $A $A "$@"; }
asB() { hg_as $BU $BU "$@"; }

# quarantine store inside the backing dir: it must be hidden like the staging area
HG_QDIR=$B/.hg-quarantine
sed -i "s|^quarantine = .*|quarantine = $HG_QDIR|" "$HG_CONF"	# the CLI reads the same store
hg_mount allow_other || bail "mount failed"
mkdir "$M/shared" && chmod 1777 "$M/shared"
echo "secret of A" >"$W/secret"
chmod 0644 "$W/secret"
ok "A uploads a 0600 file into the shared sticky dir" \
	asA bash -c "umask 077; cat '$W/secret' >'$M/shared/a-private'"
is "$(stat -c '%u:%g %a' "$B/shared/a-private" 2>&1)" "$A:$A 600" "it is A's and 0600 in the backing dir"

nok "B cannot read it" asB cat "$M/shared/a-private"
nok "B cannot open it for writing (append)" asB bash -c "echo evil >>'$M/shared/a-private'"
nok "B cannot overwrite it (O_TRUNC, the staging path)" asB bash -c "echo evil >'$M/shared/a-private'"
nok "B cannot truncate it" asB truncate -s 0 "$M/shared/a-private"
nok "B cannot dd over it (conv=notrunc)" \
	asB dd if=/dev/zero of="$M/shared/a-private" bs=1 count=4 conv=notrunc status=none
nok "B cannot rename it away (sticky dir)" asB mv "$M/shared/a-private" "$M/shared/b-stolen"
nok "B cannot rename its own file over it (sticky dir)" \
	asB bash -c "echo evil >'$M/shared/b-file' && mv -f '$M/shared/b-file' '$M/shared/a-private'"
nok "B cannot unlink it (sticky dir)" asB rm -f "$M/shared/a-private"
nok "B cannot chmod it" asB chmod 0666 "$M/shared/a-private"
nok "B cannot chown it to himself" asB chown $BU "$M/shared/a-private"
if [ "$(cat /proc/sys/fs/protected_hardlinks 2>/dev/null)" = 1 ]; then
	nok "B cannot hard-link it (protected_hardlinks)" asB ln "$M/shared/a-private" "$M/shared/b-link"
fi
nok "B cannot copy it with cp --reflink/copy_file_range either" asB cp "$M/shared/a-private" "$M/shared/b-copy"
ok "A's file is intact in the backing dir" cmp "$W/secret" "$B/shared/a-private"
is "$(stat -c '%u:%g %a' "$B/shared/a-private" 2>&1)" "$A:$A 600" "and still A's, 0600"
ok "A can still read it through the mount" asA cmp "$W/secret" "$M/shared/a-private"

# --- renames the sticky rule allows still go through (the daemon re-checks it: ops.c) -------
O=5003
asO() { hg_as $O $O "$@"; }
# xchg A B: renameat2(A, B, RENAME_EXCHANGE) (mv --exchange is newer than coreutils 9.1)
cat >"$W/xchg.py" <<'PY'
import ctypes, os, sys
l = ctypes.CDLL(None, use_errno=True)
if l.renameat2(-100, sys.argv[1].encode(), -100, sys.argv[2].encode(), 2) != 0:
    sys.exit("xchg: " + os.strerror(ctypes.get_errno()))
PY
owners() { local f; for f; do stat -c %u "$B/$f" 2>&1; done | tr '\n' ' '; }
mkdir "$M/open" && chmod 0777 "$M/open"
mkdir "$M/osticky" && chown $O:$O "$M/osticky" && chmod 1777 "$M/osticky"
for d in shared open osticky; do
	asA bash -c "echo a1 >'$M/$d/a1' && echo a2 >'$M/$d/a2'" && asB bash -c "echo b1 >'$M/$d/b1'" ||
		bail "could not create the rename fixtures in $d"
done
ok "sticky dir: A renames its own file to a new name" asA mv "$M/shared/a1" "$M/shared/a1m"
ok "sticky dir: A renames its own file over its own file" asA mv -f "$M/shared/a1m" "$M/shared/a2"
ok "sticky dir: A moves its own file out to an open dir and back" \
	asA bash -c "mv '$M/shared/a2' '$M/open/a-out' && mv '$M/open/a-out' '$M/shared/a2'"
ok "sticky dir: A's renames kept its content" grep -qx a1 "$B/shared/a2"
asA bash -c "echo a3 >'$M/shared/a3'"
ok "sticky dir: A exchanges two of its own files" asA /usr/bin/python3 "$W/xchg.py" "$M/shared/a2" "$M/shared/a3"
is "$(cat "$B/shared/a2" "$B/shared/a3" 2>&1 | tr '\n' ' ')" "a3 a1 " "... and they are exchanged"
ok "sticky dir: root renames B's file over A's" mv -f "$M/shared/b1" "$M/shared/a3"
is "$(owners shared/a3)" "$BU " "... and B's file is under the name"
ok "open dir: B renames A's file away" asB mv "$M/open/a1" "$M/open/b-took"
ok "open dir: B renames its own file over A's" asB mv -f "$M/open/b1" "$M/open/a2"
ok "open dir: B exchanges A's file with its own" asB /usr/bin/python3 "$W/xchg.py" "$M/open/b-took" "$M/open/a2"
is "$(owners open/b-took open/a2)" "$BU $A " "... and they are exchanged"
ok "sticky dir of O's: O renames A's file away" asO mv "$M/osticky/a1" "$M/osticky/o-took"
ok "sticky dir of O's: O renames B's file over A's" asO mv -f "$M/osticky/b1" "$M/osticky/a2"
ok "sticky dir of O's: O exchanges A's file with B's" asO /usr/bin/python3 "$W/xchg.py" "$M/osticky/o-took" "$M/osticky/a2"
is "$(owners osticky/o-took osticky/a2)" "$BU $A " "... and they are exchanged"
nok "sticky dir of O's: A still cannot rename B's file away" asA mv "$M/osticky/o-took" "$M/osticky/a-took"

ok "A makes a 0700 home" asA bash -c "mkdir '$M/shared/a-home' && chmod 0700 '$M/shared/a-home' && echo x >'$M/shared/a-home/f'"
nok "B cannot list A's 0700 dir" asB ls "$M/shared/a-home"
nok "B cannot create in it" asB bash -c "echo y >'$M/shared/a-home/g'"
nok "B cannot stat inside it" asB stat "$M/shared/a-home/f"
ok "nothing of B's appeared in A's dir" test ! -e "$B/shared/a-home/g"

# --- staging and quarantine areas ------------------------------------------------------------
nok "a known upload by A is refused" asA cp "$HG_K_SHA256" "$M/shared/known"
ok "the quarantine store inside the backing dir exists and holds a record" hg_quarantined shared/known
for hidden in .hashgate-staging .hg-quarantine; do
	nok "$hidden is not listed at the mount root" bash -c "ls -a '$M' | grep -qx -- '$hidden'"
	nok "$hidden cannot be looked up (root)" stat "$M/$hidden"
	nok "$hidden cannot be looked up (A)" asA stat "$M/$hidden"
	nok "$hidden cannot be created as a file" bash -c "echo x >'$M/$hidden'"
	nok "$hidden cannot be created as a directory" mkdir "$M/$hidden"
	nok "a directory cannot be renamed onto $hidden" \
		bash -c "mkdir -p '$M/tmpdir-$hidden' && mv -T '$M/tmpdir-$hidden' '$M/$hidden'"
	nok "$hidden cannot be a hard-link target" bash -c "echo z >'$M/lsrc' && ln '$M/lsrc' '$M/$hidden'"
	nok "$hidden cannot be a symlink name" ln -s /tmp "$M/$hidden"
	nok "$hidden/records.db cannot be opened" cat "$M/$hidden/records.db"
done
ok "the store's objects never hold the known bytes in clear" bash -c "
	for o in \$(find '$HG_QDIR' -type f); do cmp -s \"\$o\" '$HG_K_SHA256' && exit 1;
	grep -qF \"\$(head -c 64 '$HG_K_SHA256' | od -An -tx1 | tr -d ' \n')\" \"\$o\" && exit 1; done; exit 0"
nok "a tenant cannot list the quarantine store directly" asA ls "$HG_QDIR"

# --- the admin CLI as a tenant -----------------------------------------------------------------
id=$(sqlite3 -readonly "$HG_QDIR/records.db" "SELECT max(id) FROM records" 2>/dev/null)
for cmd in "quarantine list" "quarantine show ${id:-1}" "quarantine export ${id:-1} --out $W/out-A --plaintext" \
	"quarantine restore ${id:-1} --to $W/restored-A"; do
	out=$(asA "$HG_CLI" --config "$HG_CONF" $cmd 2>&1)
	rc=$?
	ok "hashgate $cmd as uid $A is refused (exit $rc)" test "$rc" -ne 0
	ok "... saying it needs root" grep -qi 'root\|permission\|privilege' <<<"$out"
done
ok "no exported or restored copy was written" test ! -e "$W/out-A" -a ! -e "$W/restored-A"
ok "root can export it (the store works)" "$HG_CLI" --config "$HG_CONF" quarantine export "${id:-1}" --out "$W/out-root" --plaintext
ok "... and the export is the known file" cmp "$HG_K_SHA256" "$W/out-root"
hg_umount
done_testing
