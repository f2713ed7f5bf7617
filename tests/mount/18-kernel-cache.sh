#!/bin/bash
# 18-kernel-cache.sh - what the kernel may cache (timeout=, readdirplus=) and what hosters who
# write the backing directory directly rely on:
#  - with the default timeout (1 s) a file created, removed or chmod'ed directly in the
#    backing directory is seen as such through the mount within about a second, in listings
#    (ls -l: readdirplus) and by name; with timeout=0 at once;
#  - readdirplus=auto|on|off all list the same names, types and sizes (ls -l), and a bad
#    value refuses to start, naming the option;
#  - the uploader sees its own closed upload at once, whatever the listing mode.
. "$(dirname "$0")/lib.sh"
hg_setup
M=$HG_MNT B=$HG_BACK

# listing DIR: "name size mode" per entry as ls -l shows them (names sorted)
listing() { ls -ln --time-style=+ "$1" | awk 'NR > 1 { print $NF, $5, $1 }'; }
# within SECS CMD...: CMD succeeds within SECS seconds (polled every 0.1 s)
within() {
	local n=$(( $1 * 10 )) i
	shift
	for i in $(seq "$n"); do "$@" && return 0; sleep 0.1; done
	"$@"
}
listed() { listing "$M" | grep -q "^$1 "; }
unlisted() { ! listed "$1"; }
mode_is() { [ "$(stat -c %a "$M/$1" 2>/dev/null)" = "$2" ]; }

out=$("$HG_FS" -f -o "config=$HG_CONF,readdirplus=sometimes" "$B" "$M" 2>&1)
rc=$?
ok "readdirplus=sometimes refuses to start" test "$rc" -ne 0
ok "... naming the option" grep -q "readdirplus" <<<"$out"
hg_mounted "$M" && { fusermount3 -u "$M"; bail "mounted with a bad readdirplus value"; }

for mode in auto on off; do
	hg_mount "readdirplus=$mode" || bail "mount (readdirplus=$mode) failed"
	d=d-$mode n=direct-$mode
	mkdir "$M/$d" && printf 'abc' >"$M/$d/via-mount" && printf 'hello' >"$B/$d/old" &&
		mkdir "$M/$d/sub" || bail "setup failed"
	is "$(listing "$M/$d")" "$(listing "$B/$d")" \
		"readdirplus=$mode: ls -l lists names, sizes and types as the backing dir has them"
	# warm every cache the kernel has: listings with attributes and lookups by name
	listing "$M" >/dev/null; listing "$M/$d" >/dev/null; stat "$M/$d/old" >/dev/null
	printf 'new' >"$B/$n"
	chmod 0600 "$B/$d/old"
	ok "readdirplus=$mode: a file made directly in the backing dir is listed within 2 s" \
		within 2 listed "$n"
	ok "readdirplus=$mode: ... and found by name" test -f "$M/$n"
	ok "readdirplus=$mode: a chmod made directly in the backing dir shows within 2 s" \
		within 2 mode_is "$d/old" 600
	rm -f "$B/$n"
	ok "readdirplus=$mode: a file removed directly from the backing dir goes within 2 s" \
		within 2 unlisted "$n"
	ok "readdirplus=$mode: ... and is not found by name" within 2 test ! -e "$M/$n"
	# the uploader's own closed upload is there at once (no cache may hide it)
	listing "$M" >/dev/null
	ok "readdirplus=$mode: an upload is listed right after its close" \
		sh -c "printf up >'$M/up-$mode' && ls -ln '$M' | grep -q ' up-$mode\$'"
	hg_umount
done

hg_mount "timeout=0" || bail "mount (timeout=0) failed"
listing "$M" >/dev/null
printf 'now' >"$B/direct-now"
ok "timeout=0: a file made directly in the backing dir is listed at once" listed direct-now
rm -f "$B/direct-now"
ok "timeout=0: ... and is gone at once when removed there" test ! -e "$M/direct-now"
hg_umount

done_testing
