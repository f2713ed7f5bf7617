#!/bin/bash
# 06-hash-cli.sh - `hashgate hash` from the shell, no mount needed: exact hashes equal to
# coreutils for files and stdin, PDQ of generated JPEGs (same picture at two qualities is a
# near match, different seeds are far apart), the shared reference image's expected PDQ,
# --json, --no-pdq, --dihedral, a truncated JPEG (hashed with a warning), and a clear error
# with exit status 1 for an unreadable file while the other files are still hashed.
. "$(dirname "$0")/lib.sh"
[ -x "$HG_CLI" ] || bail "no hashgate binary in HASHGATE_BUILD=$HG_BUILD"
MK=$HG_BUILD/tests/tools/mkjpeg
[ -x "$MK" ] || bail "no mkjpeg in $HG_BUILD/tests/tools"

T=$(mktemp -d /tmp/hg-hash-cli.XXXXXX) || bail "mktemp failed"
trap 'rm -rf "$T"' EXIT
: >"$T/empty.conf"		# defaults only: a missing $HASHGATE_CONFIG file is an error
export HASHGATE_CONFIG=$T/empty.conf
H=$HG_CLI

# field NAME from `hashgate hash --json` of one file
jfield() { sed -n "s/.*\"$1\":\"\\{0,1\\}\\([^\",}]*\\).*/\\1/p"; }
hamming() {	# hamming HEX1 HEX2: differing bits
	local a=$1 b=$2 i d=0 x
	for ((i = 0; i < 64; i += 8)); do
		x=$(( 0x${a:i:8} ^ 0x${b:i:8} ))
		while [ $x -ne 0 ]; do d=$((d + (x & 1))); x=$((x >> 1)); done
	done
	echo $d
}

head -c 300000 /dev/urandom >"$T/rand.bin"
: >"$T/empty"
"$MK" "$T/a90.jpg" 800 600 11 90 && "$MK" "$T/a60.jpg" 800 600 11 60 &&
	"$MK" "$T/b90.jpg" 800 600 12 90 || bail "mkjpeg failed"

# --- exact hashes = coreutils, text and JSON, file and stdin
ok "hash a random file" $H hash "$T/rand.bin"
out=$HG_OUT
for a in md5 sha1 sha256; do
	want=$(${a}sum <"$T/rand.bin" | cut -d' ' -f1)
	got=$(printf '%s\n' "$out" | awk -v a="$a" '$1 == a { print $2 }')
	is "$got" "$want" "text $a = ${a}sum"
	got=$($H hash --json - <"$T/rand.bin" | jfield "$a")
	is "$got" "$want" "JSON $a of stdin = ${a}sum"
done
is "$($H hash --json "$T/rand.bin" | jfield size)" 300000 "JSON size"
is "$($H hash --json "$T/empty" | jfield sha256)" "$(sha256sum <"$T/empty" | cut -d' ' -f1)" \
	"empty file"
is "$($H hash --json "$T/rand.bin" | jfield pdq)" "null" "no PDQ for a non-JPEG"

# --- PDQ of generated JPEGs
P90=$($H hash --json "$T/a90.jpg" | jfield pdq)
P60=$($H hash --json "$T/a60.jpg" | jfield pdq)
PB=$($H hash --json "$T/b90.jpg" | jfield pdq)
case $P90 in [0-9a-f]*) [ ${#P90} = 64 ] && r=1 || r=0 ;; *) r=0 ;; esac
hg_result $r "PDQ is 64 hex digits ($P90)"
is "$($H hash --json "$T/a90.jpg" | jfield quality)" 100 "generated JPEG has quality 100"
d=$(hamming "$P90" "$P60")
[ "$d" -le 31 ] && r=1 || r=0
hg_result $r "same picture at q90 and q60: PDQ distance $d <= 31"
d=$(hamming "$P90" "$PB")
[ "$d" -gt 64 ] && r=1 || r=0
hg_result $r "different seeds: PDQ distance $d > 64"
is "$($H hash --json - <"$T/a90.jpg" | jfield pdq)" "$P90" "PDQ of stdin = PDQ of the file"
is "$($H hash --json --no-pdq "$T/a90.jpg" | jfield pdq)" "null" "--no-pdq"
hg_run $H hash --dihedral "$T/a90.jpg"
case $HG_OUT in *rot90*flipm*) r=1 ;; *) r=0 ;; esac
hg_result $r "--dihedral prints the variants"

REF=$HASHGATE_SHARED/testdata/pdq
if [ -f "$REF/expected/pdq.csv" ]; then
	f=images/reg-test-input/dih/bridge-1-original.jpg
	want=$(grep ",$f\$" "$REF/expected/pdq.csv" | cut -d, -f1)
	is "$($H hash --json "$REF/$f" | jfield pdq)" "$want" "reference image: expected PDQ"
else
	skip "reference images not found (HASHGATE_SHARED)"
fi

# --- damaged and unreadable input
head -c 20000 "$T/a90.jpg" >"$T/cut.jpg"
hg_run $H hash --json "$T/cut.jpg"; rc=$?
is "$rc" 0 "truncated JPEG: exit 0 (its exact hashes are fine)"
case $HG_OUT in *pdq_warning*) r=1 ;; *) r=0 ;; esac
hg_result $r "... and the PDQ carries a warning"
printf '\377\330\377garbage' >"$T/bad.jpg"
hg_run $H hash "$T/bad.jpg"; rc=$?
is "$rc" 1 "undecodable JPEG: exit 1 (an image without PDQ is an error)"
case $HG_OUT in *"bad.jpg: no PDQ: "*) r=1 ;; *) r=0 ;; esac
hg_result $r "... with an error naming the file"
hg_run $H hash --json "$T/bad.jpg"
case $HG_OUT in *'"pdq_error":"'*) r=1 ;; *) r=0 ;; esac
hg_result $r "... shown as pdq_error in --json"
# one junk byte after SOI: libjpeg (and the reference) skip it with a warning
{ head -c 2 "$T/a90.jpg"; printf '\000'; tail -c +3 "$T/a90.jpg"; } >"$T/junk.jpg"
is "$($H hash --json "$T/junk.jpg" | jfield pdq)" "$($H hash --json "$T/a90.jpg" | jfield pdq)" \
	"JPEG with a junk byte after SOI: the same PDQ as the clean file"

hg_run $H hash "$T/rand.bin" "$T/missing" "$T/empty"; rc=$?
is "$rc" 1 "a missing file: exit 1"
case $HG_OUT in *"$T/missing: No such file or directory"*) r=1 ;; *) r=0 ;; esac
hg_result $r "... error names the file"
case $HG_OUT in *"$T/rand.bin:"*"$T/empty:"*) r=1 ;; *) r=0 ;; esac
hg_result $r "... and the other files are still hashed"
hg_run $H hash --json "$T/missing"
case $HG_OUT in *'"error":"No such file or directory"'*) r=1 ;; *) r=0 ;; esac
hg_result $r "JSON error object for a missing file"
hg_run $H hash; is $? 64 "no FILE: usage error 64"
hg_run $H hash --frobnicate x; is $? 64 "unknown option: 64"
ok "--help" $H hash --help
# The hashing implementation: both give the same digests; a typo in the switch is refused.
ok "HASHGATE_HASH_IMPL=evp gives the digests auto gives" \
	bash -c 'diff <(HASHGATE_HASH_IMPL=evp "$1" hash "$2") <(HASHGATE_HASH_IMPL=auto "$1" hash "$2")' \
	_ "$H" "$T/rand.bin"
HASHGATE_HASH_IMPL=fast hg_run $H hash "$T/rand.bin"; is $? 64 "HASHGATE_HASH_IMPL=fast: usage error 64"
case $HG_OUT in *"HASHGATE_HASH_IMPL=fast: expected auto or evp"*) r=1 ;; *) r=0 ;; esac
hg_result $r "... naming the variable and its value"
done_testing
