#!/bin/sh
# check-unit-caps.sh BUILD [TEST...] - run mount tests with hashgatefs confined the way
# hashgatefs@.service confines it: the unit's CapabilityBoundingSet (read from the unit file,
# so the list cannot drift from what is tested) and NoNewPrivileges.  The systemd options that
# this cannot reproduce (MemoryDenyWriteExecute, RestrictAddressFamilies, ...) are not tested.
#
# Only the daemon is confined: a wrapper named hashgatefs in a shadow build dir runs the real
# one under capsh; the tests themselves keep root's capabilities (they switch users).
# Default tests: passthrough and multi-user ownership, the ones that exercise chown, mknod,
# setgid directories, permissions and file handles.
set -eu

build=$(cd "${1:?usage: check-unit-caps.sh BUILD [TEST...]}" && pwd)
shift
src=$(cd "$(dirname "$0")/.." && pwd)
unit=$src/packaging/systemd/hashgatefs@.service.in
[ "$#" -gt 0 ] || set -- 10-passthrough 40-multiuser

command -v capsh >/dev/null || { echo "1..0 # SKIP capsh is not installed (libcap2-bin)"; exit 0; }
[ -x "$build/hashgatefs" ] || { echo "check-unit-caps: no $build/hashgatefs" >&2; exit 1; }

keep=$(sed -n 's/^CapabilityBoundingSet=//p' "$unit" | tr 'A-Z' 'a-z')
[ -n "$keep" ] || { echo "check-unit-caps: no CapabilityBoundingSet in $unit" >&2; exit 1; }
drop=""
for c in $(capsh --print | sed -n 's/^Bounding set =//p' | tr ',' ' '); do
	case " $keep " in *" $c "*) ;; *) drop="$drop${drop:+,}$c" ;; esac
done

shadow=$(mktemp -d /tmp/hashgate-caps.XXXXXX)
trap 'rm -rf "$shadow"' EXIT
for f in "$build"/* "$build"/.[!.]*; do
	[ -e "$f" ] && ln -s "$f" "$shadow/"
done
rm -f "$shadow/hashgatefs"
cat >"$shadow/hashgatefs" <<WRAP
#!/bin/sh
exec capsh --drop=$drop -- -c 'exec setpriv --no-new-privs "\$0" "\$@"' "$build/hashgatefs" "\$@"
WRAP
chmod 0755 "$shadow/hashgatefs"

echo "# daemon bounding set: $keep"
rc=0
for t in "$@"; do
	echo "# tests/mount/$t.sh with the daemon confined"
	HASHGATE_BUILD=$shadow HASHGATE_SRC=$src HASHGATE_SHARED=${HASHGATE_SHARED:-$src/../shared} \
		PATH=$shadow:$PATH bash "$src/tests/mount/$t.sh" >"$shadow/out" 2>&1 || rc=1
	grep -E '^(not ok|1\.\.)' "$shadow/out" | sed 's/^/#   /'
	grep -q '^not ok' "$shadow/out" && rc=1
done
exit $rc
