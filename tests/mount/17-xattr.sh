#!/bin/bash
# 17-xattr.sh - extended attributes and file capabilities, with xattrs on (the default) and
# with xattr=off (every xattr request answered ENOSYS, so the kernel stops asking for
# security.capability before each write).
#  - default: the security.capability question about a staged upload is answered without
#    asking the file, but never wrongly: a capability set on the upload is read back and
#    published; an in-place write drops a file's capability (the kernel does it).
#  - xattr=off: xattrs fail with EOPNOTSUPP through the mount; the daemon drops
#    security.capability itself when a file is changed in place (write, truncate), as the
#    kernel would have; uploads are still judged.
. "$(dirname "$0")/lib.sh"
hg_setup
command -v setcap >/dev/null && command -v getcap >/dev/null && command -v setfattr >/dev/null ||
	skip_all "setcap/getcap (libcap2-bin) or setfattr (attr) not installed"
M=$HG_MNT B=$HG_BACK W=$HG_TMP/w

caps() { getcap "$1" 2>/dev/null | grep -c cap_net_raw; }	# 1 when $1 has the capability

# --- default mount ---
hg_mount || bail "mount failed"
printf 'x' >"$W/c" && setcap cap_net_raw+ep "$W/c" || bail "setcap failed"
# A staged upload: no capability at first; one set on it through the mount is read back
# (not answered "none" from the shortcut) and published with the file.
ok "staged upload: capability absent, then set and read back, then published" \
	python3 - "$W/c" "$M/up" <<'EOF'
import errno, os, sys
cap = os.getxattr(sys.argv[1], "security.capability")
fd = os.open(sys.argv[2], os.O_CREAT | os.O_WRONLY | os.O_TRUNC, 0o755)
try:
    os.getxattr(fd, "security.capability")
    sys.exit("a new upload has a capability")
except OSError as e:
    if e.errno != errno.ENODATA:
        raise
os.write(fd, b"#!/bin/sh\n")
os.setxattr(fd, "security.capability", cap)
if os.getxattr(fd, "security.capability") != cap:
    sys.exit("the capability set on the upload does not read back")
os.close(fd)
EOF
is "$(caps "$B/up")" 1 "the published upload keeps the capability set on it"
printf 'a' >"$B/inp" && setcap cap_net_raw+ep "$B/inp" || bail "setcap on the backing dir failed"
ok "append in place" sh -c "printf b >>'$M/inp'"
is "$(caps "$B/inp")" 0 "an in-place write drops the capability (kernel)"

hg_umount

# Uploads written through O_WRONLY descriptors are direct_io (the kernel then skips its
# privilege dropping on write): set-id bits and capabilities must still go exactly as on the
# backing filesystem itself, for a tenant (no CAP_FSETID) and for root.
cat >"$HG_TMP/privs.py" <<'EOF'
import os, sys
d, cap = sys.argv[1], bytes.fromhex(sys.argv[2]) if len(sys.argv) > 2 else None
def mode(p):
    return "%s %o" % (os.path.basename(p), os.stat(p).st_mode & 0o7777)
def new(n, m, after=None, m2=None):
    p = os.path.join(d, n)
    fd = os.open(p, os.O_CREAT | os.O_EXCL | os.O_WRONLY, m)
    os.write(fd, b"a" * 100)
    if m2 is not None:
        os.fchmod(fd, m2)
        os.write(fd, b"b")
    if after:
        after(fd)
    os.close(fd)
    return p
out = [mode(new("setid-at-create", 0o4755)), mode(new("chmod-6755", 0o755, m2=0o6755)),
       mode(new("chmod-2745", 0o755, m2=0o2745))]
p = new("rewrite", 0o755)
fd = os.open(p, os.O_WRONLY | os.O_TRUNC)
os.write(fd, b"c"); os.fchmod(fd, 0o4755); os.write(fd, b"d"); os.close(fd)
out.append(mode(p))
if cap:
    def setcap(fd):
        os.setxattr(fd, "security.capability", cap)
        os.write(fd, b"e")
    p = new("cap", 0o755, after=setcap)
    try:
        has = len(os.getxattr(p, "security.capability")) > 0
    except OSError:
        has = False
    out.append("cap %s" % has)
print(" ".join(out))
EOF
cap=$(python3 -c 'import os,sys; print(os.getxattr(sys.argv[1], "security.capability").hex())' "$W/c")
hg_mount allow_other || bail "mount with allow_other failed"
mkdir -m 1777 "$M/privs-u" "$W/privs-u" && mkdir "$M/privs-r" "$W/privs-r" || bail "mkdir failed"
PY=/usr/bin/python3	# the system one: other uids cannot run a per-user install
want=$(hg_as 4242 4242 $PY "$HG_TMP/privs.py" "$W/privs-u") && [ -n "$want" ] ||
	bail "the set-id sequence failed on the backing fs"
is "$(hg_as 4242 4242 $PY "$HG_TMP/privs.py" "$M/privs-u")" "$want" \
	"a tenant's uploads lose set-id bits on write as on the backing fs ($want)"
want=$($PY "$HG_TMP/privs.py" "$W/privs-r" "$cap") && [ -n "$want" ] ||
	bail "the set-id sequence failed on the backing fs"
is "$($PY "$HG_TMP/privs.py" "$M/privs-r" "$cap")" "$want" \
	"root's keep set-id bits, lose a capability set before a write, as on the backing fs ($want)"
hg_umount

# --- xattr=off ---
hg_mount xattr=off || bail "mount with xattr=off failed"
hg_run setfattr -n user.hg -v 1 "$M/inp"
hg_result $(( $? != 0 )) "setfattr through the mount fails"
grep -q "not supported" <<<"$HG_OUT"; hg_result $(( $? == 0 )) "... with EOPNOTSUPP (${HG_OUT:0:200})"
nok "getfattr through the mount fails" getfattr -n user.x "$M/inp"
nok "getcap shows nothing through the mount" sh -c "getcap '$M/up' | grep -q cap_net_raw"
printf 'a' >"$B/w1" && setcap cap_net_raw+ep "$B/w1" || bail "setcap failed"
ok "append in place (xattr=off)" sh -c "printf b >>'$M/w1'"
is "$(caps "$B/w1")" 0 "an in-place write drops the capability (daemon)"
is "$(cat "$B/w1")" ab "the write landed"
printf 'abc' >"$B/w2" && setcap cap_net_raw+ep "$B/w2" || bail "setcap failed"
ok "truncate by path (xattr=off)" truncate -s 1 "$M/w2"
is "$(caps "$B/w2")" 0 "a truncate drops the capability (daemon)"
printf 'abc' >"$B/w3" && setcap cap_net_raw+ep "$B/w3" || bail "setcap failed"
ok "read-only use keeps it" cat "$M/w3"
is "$(caps "$B/w3")" 1 "reading does not drop the capability"
ok "clean upload (xattr=off)" cp "$W/c" "$M/clean"
ok "... published" cmp "$W/c" "$B/clean"
hg_refused cp "$HG_K_SHA1" "$M/known"; hg_result $(( $? == 0 )) "known upload refused (xattr=off)"
ok "... and not published" test ! -e "$B/known"
hg_umount
done_testing
