#!/bin/bash
# 34-shared-dirs.sh - uploads in directories several tenants write to (issue 14): the publish
# of a staged upload applies the rules the kernel would have applied at that namespace change.
#  7a. an upload staged first in a sticky (1777) dir does not replace the file another tenant
#      created (O_EXCL) and published meanwhile; its close fails;
#  7b. another tenant cannot silently discard an upload in flight (its close returns 0 and the
#      file is gone) by creating and removing the name or renaming onto it, nor move it into
#      its own directory (renaming the invisible name, or its own file of the same name);
#  7c. an owner's chmod 600 of a group-writable file is not undone by a group member's rewrite
#      that was pending and is then refused;
#  8.  after close() returns, the writer's next readdir and stat see the published name, also
#      when the process had a second (read-only) descriptor of the upload;
#  6.  listxattr through the mount does not show trusted.* names to unprivileged users.
# Every step is one syscall of one process (tests/tools/fdctl.py via actor-lib.sh).
. "$(dirname "$0")/lib.sh"
hg_setup
. "$(dirname "$0")/actor-lib.sh"
M=$HG_MNT B=$HG_BACK W=$HG_TMP/w
K=$HG_K_SHA256
A=4301 V=4302 O=4311 GM=4312 G=4400
for who in a v v2 old; do
	hg_random "$W/$who" 3000
done
chmod 0644 "$W"/*

# closed_or_published RESULT FILE BACKING: an upload's close either failed (err...) or
# returned 0 with FILE's content at BACKING
closed_or_published() {
	case $1 in
	err*) return 0 ;;
	ok) cmp -s "$2" "$3" && return 0
	    echo "close returned 0 but $3 does not hold the upload (silently discarded)"
	    return 1 ;;
	esac
	echo "close answered '$1'"
	return 1
}

hg_mount allow_other || bail "mount failed"
mkdir -p "$M/pub" "$M/home/a" "$M/home/v"
chmod 1777 "$M/pub"
chown $A:$A "$M/home/a"
chown $V:$V "$M/home/v"
act_start A $A $A
act_start V $V $V

# --- 7a. staging a name first does not win over the tenant who created it --------------------
is "$(act A open a "$M/pub/n" wronly,creat,trunc)" ok "7a: A creates pub/n (staged), keeps it open"
is "$(act A pwrite a "$W/a")" ok "7a: A writes its content"
vo=$(act V open v "$M/pub/n" wronly,creat,excl)
case $vo in
ok)
	hg_result 1 "7a: V's O_EXCL create of pub/n succeeded"
	is "$(act V pwrite v "$W/v")" ok "7a: V writes its content"
	is "$(act V close v)" ok "7a: V's close publishes pub/n"
	ac=$(act A close a)
	case $ac in
	err*) hg_result 1 "7a: A's close fails ($ac)" ;;
	*) hg_result 0 "7a: A's close fails (got '$ac')" ;;
	esac
	ok "7a: pub/n still holds V's content" cmp "$W/v" "$B/pub/n"
	is "$(stat -c %u "$B/pub/n" 2>&1)" $V "7a: pub/n is still V's"
	;;
"err EEXIST")
	# as on a plain file system: A's name existed first
	hg_result 1 "7a: V's O_EXCL create of pub/n fails with EEXIST (A created it first)"
	is "$(act A close a)" ok "7a: A's close publishes"
	ok "7a: pub/n holds A's content" cmp "$W/a" "$B/pub/n"
	;;
*)
	hg_result 0 "7a: V's O_EXCL create of pub/n: '$vo'"
	act A close a >/dev/null
	;;
esac

# --- 7b. an upload in flight cannot be discarded or moved by another tenant ------------------
# (i) A creates the name and removes it
is "$(act V open v "$M/pub/n2" wronly,creat,trunc)" ok "7b: V starts uploading pub/n2"
is "$(act V pwrite v "$W/v")" ok "7b: V writes its content, keeps the fd"
ao=$(act A open a "$M/pub/n2" wronly,creat,excl)
diag "7b: A's O_EXCL create of pub/n2: $ao"
if [ "$ao" = ok ]; then
	act A write a x >/dev/null
	diag "7b: A's close: $(act A close a); A's unlink: $(act A unlink "$M/pub/n2")"
fi
ok "7b: V's close of pub/n2 fails or publishes it (not 0 with the upload discarded)" \
	closed_or_published "$(act V close v)" "$W/v" "$B/pub/n2"

# (ii) A renames its own file onto the name
is "$(act V open v "$M/pub/n3" wronly,creat,trunc)" ok "7b: V starts uploading pub/n3"
is "$(act V pwrite v "$W/v")" ok "7b: V writes its content, keeps the fd"
is "$(act A open a "$M/pub/a3" wronly,creat,trunc)" ok "7b: A creates pub/a3"
act A write a x >/dev/null
is "$(act A close a)" ok "7b: A publishes pub/a3"
diag "7b: A renames pub/a3 onto pub/n3: $(act A rename "$M/pub/a3" "$M/pub/n3")"
ok "7b: V's close of pub/n3 fails or publishes it (not 0 with the upload discarded)" \
	closed_or_published "$(act V close v)" "$W/v" "$B/pub/n3"

# (iii) A renames the name it cannot see into its own directory
is "$(act V open v "$M/pub/n4" wronly,creat,trunc)" ok "7b: V starts uploading pub/n4"
is "$(act V pwrite v "$W/v2")" ok "7b: V writes its content, keeps the fd"
is "$(act A rename "$M/pub/n4" "$M/home/a/stolen")" "err ENOENT" \
	"7b: A's rename of pub/n4 (which A cannot see) into A's dir fails with ENOENT"
is "$(act V close v)" ok "7b: V's close publishes pub/n4"
ok "7b: pub/n4 holds V's content" cmp "$W/v2" "$B/pub/n4"
ok "7b: nothing arrived in A's dir" test ! -e "$B/home/a/stolen"

# (iv) A creates the name itself (V's upload is invisible to it), publishes, renames its file
# into A's own dir: the rename must move A's file, not V's upload
is "$(act V open v "$M/pub/n5" wronly,creat,trunc)" ok "7b: V starts uploading pub/n5"
is "$(act V pwrite v "$W/v2")" ok "7b: V writes its content, keeps the fd"
ao=$(act A open a "$M/pub/n5" wronly,creat,excl)
diag "7b: A's O_EXCL create of pub/n5: $ao"
if [ "$ao" = ok ]; then
	act A write a x >/dev/null
	diag "7b: A's close: $(act A close a)"
	diag "7b: A renames pub/n5 to home/a/stolen5: $(act A rename "$M/pub/n5" "$M/home/a/stolen5")"
fi
ok "7b: V's close of pub/n5 fails or publishes it at pub/n5" \
	closed_or_published "$(act V close v)" "$W/v2" "$B/pub/n5"
nok "7b: V's content did not land in A's dir" cmp -s "$W/v2" "$B/home/a/stolen5"

# --- 7c. a pending group member's rewrite does not undo the owner's chmod ---------------------
mkdir "$M/grp" && chown $O:$G "$M/grp" && chmod 2770 "$M/grp"
ok "7c: O creates grp/f, mode 0660, group $G" \
	hg_as $O $O bash -c "umask 007; cat '$W/old' >'$M/grp/f'"
is "$(stat -c '%u:%g %a' "$B/grp/f" 2>&1)" "$O:$G 660" "7c: grp/f is O's, group $G, 0660"
act_start GM $GM $GM $G
is "$(act GM open m "$M/grp/f" wronly,trunc)" ok "7c: member GM opens grp/f O_TRUNC (staged)"
ok "7c: O does chmod 600 grp/f" hg_as $O $O chmod 600 "$M/grp/f"
is "$(act GM pwrite m "$K")" ok "7c: GM writes the known file"
is "$(act GM close m)" "err EACCES" "7c: GM's close is refused"
is "$(stat -c %a "$B/grp/f" 2>&1)" 600 "7c: grp/f keeps the owner's mode 600"
ok "7c: grp/f keeps its old content" cmp "$W/old" "$B/grp/f"
is "$(stat -c %a "$M/grp/f" 2>&1)" 600 "7c: ... also through the mount"
act_stop GM

act_stop A
act_stop V

# --- 8. close() returns after the publish ------------------------------------------------------
mkdir "$M/loop" && chown $A:$A "$M/loop"
cat >"$HG_TMP/act/loop.py" <<'EOF'
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
second = os.O_RDWR if sys.argv[3] == "rdwr" else os.O_RDONLY
data = os.urandom(1 << 20)               # big enough that the verdict takes a while
missing = []
for i in range(n):
    name = "f%d" % i
    p = os.path.join(d, name)
    w = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    r = os.open(p, second)                 # a second descriptor of the same upload
    os.write(w, data)
    os.close(w)
    os.close(r)                            # the last close: the upload is published
    listed = name in os.listdir(d)
    try:
        size = os.stat(p).st_size
    except OSError as e:
        size = e.strerror
    if not listed or size != len(data):
        missing.append("%s(listed=%s size=%s)" % (name, listed, size))
print("%d of %d: %s" % (len(missing), n, " ".join(missing[:5])))
sys.exit(1 if missing else 0)
EOF
chmod 0644 "$HG_TMP/act/loop.py"
for second in rdonly rdwr; do
	mkdir "$M/loop/$second" && chown $A:$A "$M/loop/$second"
	ok "8: 50 uploads of 1 MiB, second fd $second: each listed and stat-able after its last close" \
		hg_as $A $A "$HG_PY" "$HG_TMP/act/loop.py" "$M/loop/$second" 50 $second
	diag "8 ($second): $HG_OUT"
done

# --- 6. trusted.* xattrs are not listed to unprivileged users -------------------------------
ok "6: A uploads pub/x" hg_as $A $A bash -c "umask 022; echo x >'$M/pub/x'"
ok "6: root sets trusted.hgtest on the backing file" setfattr -n trusted.hgtest -v secret "$B/pub/x"
ok "6: root sets user.hgtest too" setfattr -n user.hgtest -v visible "$B/pub/x"
xa=$(hg_as $A $A getfattr -d -m - "$M/pub/x" 2>&1)
diag "6: A's getfattr -d -m -:" "$xa"
nok "6: A's listxattr through the mount does not show trusted.hgtest" \
	grep -q trusted.hgtest <<<"$xa"
ok "6: ... but shows user.hgtest (listxattr works)" grep -q user.hgtest <<<"$xa"
xv=$(hg_as $V $V getfattr -m - "$M/pub/x" 2>&1)
nok "6: nor does V's (not the owner)" grep -q trusted.hgtest <<<"$xv"
ok "6: root's listxattr still shows it" bash -c "getfattr -m - '$M/pub/x' | grep -q trusted.hgtest"

hg_umount
done_testing
