#!/bin/bash
# 40-multiuser.sh - multi-tenant ownership and permissions through an allow_other mount (with
# and without default_permissions): files, dirs, symlinks and fifos get the caller's uid/gid;
# uid A cannot read, overwrite, truncate, chmod, chown, rename or delete uid B's private
# files; group and other permission bits are honoured; a setgid directory passes its group.
. "$(dirname "$0")/lib.sh"
hg_setup
M=$HG_MNT B=$HG_BACK W=$HG_TMP/w
A=2001 BU=2002 G=3000
asA() { hg_as $A $A "$@"; }
asB() { hg_as $BU $BU "$@"; }

for variant in allow_other allow_other,default_permissions; do
	hg_mount "$variant" || bail "mount with $variant failed"
	t="[$variant]"
	rm -rf "${B:?}"/*
	mkdir -p "$M/home/a" "$M/home/b" "$M/pub"
	chown $A:$A "$M/home/a"; chown $BU:$BU "$M/home/b"
	chmod 0755 "$M/home/a" "$M/home/b"; chmod 1777 "$M/pub"

	ok "$t A writes a private file (umask 077)" asA bash -c "umask 077; echo secret-a >'$M/home/a/private'"
	is "$(stat -c '%u:%g %a' "$B/home/a/private" 2>&1)" "$A:$A 600" "$t owned by A, mode 0600 in the backing dir"
	nok "$t B cannot read A's 0600 file" asB cat "$M/home/a/private"
	nok "$t B cannot overwrite A's 0600 file" asB bash -c "echo evil >'$M/home/a/private'"
	nok "$t B cannot append to it" asB bash -c "echo evil >>'$M/home/a/private'"
	nok "$t B cannot truncate it" asB truncate -s 0 "$M/home/a/private"
	nok "$t B cannot chmod it" asB chmod 0666 "$M/home/a/private"
	nok "$t B cannot chown it" asB chown $BU "$M/home/a/private"
	nok "$t B cannot create files in A's 0755 dir" asB touch "$M/home/a/intruder"
	nok "$t B cannot delete A's file from A's dir" asB rm -f "$M/home/a/private"
	nok "$t B cannot rename A's file" asB mv "$M/home/a/private" "$M/pub/stolen"
	is "$(cat "$B/home/a/private" 2>&1)" secret-a "$t A's file is unchanged after B's attempts"
	ok "$t A can still read it" asA cat "$M/home/a/private"

	ok "$t A creates a file in the sticky public dir" asA bash -c "umask 022; echo a >'$M/pub/a-file'"
	nok "$t B cannot delete A's file from a sticky dir" asB rm -f "$M/pub/a-file"
	ok "$t B can read A's 0644 file" asB cat "$M/pub/a-file"
	nok "$t B cannot write A's 0644 file" asB bash -c "echo x >>'$M/pub/a-file'"

	ok "$t A makes a dir, symlink, fifo and hard link" asA bash -c "
		mkdir '$M/home/a/d' && ln -s private '$M/home/a/sl' && mkfifo '$M/home/a/ff' &&
		ln '$M/home/a/private' '$M/home/a/hl'"
	is "$(stat -c %u:%g "$B/home/a/d" 2>&1)" "$A:$A" "$t dir owned by A"
	is "$(stat -c %u:%g "$B/home/a/sl" 2>&1)" "$A:$A" "$t symlink owned by A"
	is "$(stat -c %u:%g "$B/home/a/ff" 2>&1)" "$A:$A" "$t fifo owned by A"
	ok "$t A renames within its dir" asA mv "$M/home/a/d" "$M/home/a/d2"
	hg_random "$W/up" 100000
	ok "$t B uploads a clean file into its own dir" asB bash -c "umask 027; cp '$W/up' '$M/home/b/up'"
	is "$(stat -c '%u:%g %a' "$B/home/b/up" 2>&1)" "$BU:$BU 640" "$t published with B's uid:gid and mode"
	ok "$t B's known upload fails" hg_refused asB cp "$HG_K_SHA1" "$M/home/b/k"
	ok "$t ... and is absent" hg_content_absent "$HG_K_SHA1"

	# group permissions: B in group G may read a 0640 file of group G, A (not in G) may not
	chgrp $G "$M/home/b/up"
	ok "$t a member of the file's group can read a 0640 file" \
		setpriv --reuid=$A --regid=$A --groups=$G -- cat "$M/home/b/up"
	nok "$t a non-member cannot" asA cat "$M/home/b/up"
	mkdir "$M/grp" && chown $A:$G "$M/grp" && chmod 2775 "$M/grp"
	ok "$t A creates a file in a setgid dir" asA touch "$M/grp/f"
	is "$(stat -c %g "$B/grp/f" 2>&1)" "$G" "$t the file inherits the setgid dir's group"
	ok "$t root can read everything" cat "$M/home/a/private"
	hg_umount
done

done_testing
