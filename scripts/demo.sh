#!/bin/sh
# demo.sh - `make demo`: hashgate's main job on a built-in, self-contained example.
#
# Makes a scratch backing dir, a demo hash database holding the hashes of generated "known"
# files (random bytes and a generated JPEG: never real material), mounts hashgatefs over the
# backing dir, uploads one clean file and the known ones, prints each outcome, shows the
# quarantine and the audit trail, and unmounts.  Everything lives under one temporary
# directory that is removed on exit, whatever happens.
set -eu

build=${HASHGATE_BUILD:-$(pwd)/build}
PATH=$build:$PATH
mkjpeg=$build/tests/tools/mkjpeg

if [ "$(id -u)" -ne 0 ]; then
	echo "demo: run as root (FUSE mount with allow_other and a root-only quarantine)" >&2
	exit 1
fi
if ! [ -c /dev/fuse ]; then
	echo "demo: /dev/fuse is missing; load the fuse module first" >&2
	exit 1
fi

scratch=$(mktemp -d /tmp/hashgate-demo.XXXXXX)
mnt=$scratch/mnt
backing=$scratch/backing
daemon=
cleanup() {
	if mountpoint -q "$mnt" 2>/dev/null; then
		fusermount3 -u "$mnt" 2>/dev/null || fusermount3 -uz "$mnt" 2>/dev/null || true
	fi
	if [ -n "$daemon" ]; then
		kill "$daemon" 2>/dev/null || true
		wait "$daemon" 2>/dev/null || true
	fi
	rm -rf "$scratch"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$mnt" "$backing" "$scratch/state" "$scratch/uploads"
cat >"$scratch/hashgate.conf" <<EOF
# demo configuration: every path inside $scratch
db = $scratch/hashes.db
quarantine = $scratch/quarantine
quarantine_key = $scratch/quarantine.key
audit_log = $scratch/audit.log
state_dir = $scratch/state
scan_db = $scratch/scan.db
on_match = quarantine
on_error = deny
EOF
export HASHGATE_CONFIG="$scratch/hashgate.conf"

say() { printf '\n== %s\n' "$*"; }

say "1. A demo hash list: generated 'known' files (random bytes, a generated JPEG)"
head -c 200000 /dev/urandom >"$scratch/uploads/known.bin"
echo "quarterly report, nothing to see here" >"$scratch/uploads/clean.txt"
hashgate db init
sha256sum "$scratch/uploads/known.bin" | cut -d' ' -f1 >"$scratch/list-sha256.txt"
hashgate db import --list demo-sha256 --category baseline --type sha256 "$scratch/list-sha256.txt"
if [ -x "$mkjpeg" ]; then
	# The list holds the PDQ hash of one generated image; the upload is the same picture
	# re-encoded at another quality, so its bytes (and SHA-256) differ but PDQ still matches.
	"$mkjpeg" "$scratch/original.jpg" 640 480 7 90
	"$mkjpeg" "$scratch/uploads/photo.jpg" 640 480 7 60
	hashgate hash --json "$scratch/original.jpg" |
		sed -n 's/.*"pdq": *"\([0-9a-f]\{64\}\)".*/\1/p' >"$scratch/list-pdq.txt"
	hashgate db import --list demo-pdq --category baseline --type pdq "$scratch/list-pdq.txt"
fi
hashgate db lists

say "2. Mount hashgatefs over the backing dir"
hashgatefs -f -o "config=$scratch/hashgate.conf" "$backing" "$mnt" 2>"$scratch/daemon.log" &
daemon=$!
i=0
until mountpoint -q "$mnt"; do
	i=$((i + 1))
	if [ $i -gt 100 ] || ! kill -0 "$daemon" 2>/dev/null; then
		echo "demo: hashgatefs did not mount:" >&2
		cat "$scratch/daemon.log" >&2
		exit 1
	fi
	sleep 0.1
done
echo "mounted $backing on $mnt"

say "3. Uploads through the mount"
for f in clean.txt known.bin photo.jpg; do
	[ -e "$scratch/uploads/$f" ] || continue
	if cp "$scratch/uploads/$f" "$mnt/$f" 2>"$scratch/cp.err"; then
		printf '  %-10s -> accepted, published in the backing dir\n' "$f"
	else
		printf '  %-10s -> REFUSED: %s\n' "$f" "$(sed 's/^cp: //' "$scratch/cp.err")"
	fi
done

say "4. What the backing dir holds (only the clean upload)"
ls -l "$backing"

say "5. The quarantine (encrypted at rest; records for the admin)"
hashgate quarantine list

say "6. The daemon's verdict log lines"
grep -E 'verdict' "$scratch/daemon.log" || cat "$scratch/daemon.log"

say "7. The audit trail verifies"
hashgate log verify

say "8. Unmount"
fusermount3 -u "$mnt"
wait "$daemon" 2>/dev/null || true
daemon=
echo "unmounted; demo finished, scratch dir removed"
