#!/bin/bash
# 12-containment.sh - nothing through the mount reaches the daemon's own areas: the staging
# area and a quarantine store placed inside BACKING_DIR are neither listed nor reachable
# (lookup, open, create, rename onto, remove), for root and for other users; the mount root
# shows exactly the customer's entries.
. "$(dirname "$0")/lib.sh"
hg_setup
M=$HG_MNT B=$HG_BACK W=$HG_TMP/w

# the quarantine store inside the backing dir, as "same filesystem" deployments may place it
HG_QDIR=$HG_BACK/.quarantine
sed -i "s|^quarantine = .*|quarantine = $HG_QDIR|" "$HG_CONF"
hg_mount allow_other || bail "mount failed"
echo customer >"$M/file"
hg_refused cp "$HG_K_SHA1" "$M/known" >/dev/null	# puts a record and object in the store
ok "the store was created inside the backing dir" test -f "$HG_QDIR/records.db"
hidden=$(cd "$B" && ls -A | grep -v '^file$')
diag "daemon entries in the backing root: $(echo $hidden)"
is "$(ls -A "$M")" file "the mount root lists only the customer's file"
for h in $hidden; do
	nok "$h: stat through the mount fails" stat "$M/$h"
	nok "$h: listing it through the mount fails" ls -A "$M/$h/"
	nok "$h: creating a file inside it fails" bash -c "echo x >'$M/$h/planted'"
	ok "$h: ... and nothing was planted" test ! -e "$B/$h/planted"
	nok "$h: removing it through the mount fails" rm -r "$M/$h"
	ok "$h: ... it still exists in the backing dir" test -e "$B/$h"
	nok "$h: renaming a file onto its name fails" mv "$M/file" "$M/$h"
	ok "$h: ... the customer's file is untouched" test "$(cat "$B/file")" = customer
	nok "$h: uid 2001 cannot stat it either" hg_as 2001 2001 stat "$M/$h"
	nok "$h: mkdir of the same name through the mount fails or stays separate" \
		bash -c "mkdir '$M/$h' && test \"\$(stat -c %i '$M/$h')\" = \"\$(stat -c %i '$B/$h')\""
done
nok "records.db of the store is not readable through the mount" cat "$M/.quarantine/records.db"
ok "the known upload's bytes are not in the clear anywhere in the backing dir (store included)" \
	hg_content_absent "$HG_K_SHA1"
ok "the store's records still work after all that" hg_quarantined known

done_testing
