# lib.sh - what the filesystem benchmarks (30-fs, 35-sshfs, 50-neighbour) share: the scratch
# config, a database of random hash lists, starting hashgatefs and waiting for its mount,
# unmounting, and removing the scratch dir.  Sourced by bash scripts, which set B
# ($HASHGATE_BUILD) and T (their scratch dir, made with mktemp) first; NAME (the script's name)
# prefixes messages.  Nothing here exits: every function returns non-zero and says why.

# $T/hashgate.conf with everything under $T, exported as HASHGATE_CONFIG, and its quarantine key.
bench_config() {
	cat >"$T/hashgate.conf" <<EOC
db = $T/hashes.db
quarantine = $T/quarantine
quarantine_key = $T/quarantine.key
audit_log = $T/audit.log
state_dir = $T/state
scan_db = $T/scan.db
log_level = notice
EOC
	export HASHGATE_CONFIG=$T/hashgate.conf
	mkdir -p "$T/state"
	openssl rand -hex 32 >"$T/quarantine.key" && chmod 0600 "$T/quarantine.key"
}

# The admin CLI on the scratch config and database.
bench_cli() { "$B/hashgate" --config "$T/hashgate.conf" --db "$T/hashes.db" "$@"; }

# bench_hex_list N BYTES FILE: N random hashes of BYTES bytes, one hex string per line, from
# one openssl call (not one process per hash).
bench_hex_list() {
	openssl rand -hex $(($1 * $2)) | tr -d '\n' | fold -w $(($2 * 2)) >"$3" && echo >>"$3"
}

# bench_db N ALGO...: a new database with one list "bench-ALGO" of N random hashes per ALGO
# (md5 sha1 sha256 pdq), category illegal, so uploads are hashed with every such algorithm.
bench_db() {
	local n=$1 a bytes
	shift
	bench_cli db init >/dev/null || { echo "$NAME: hashgate db init failed"; return 1; }
	for a in "$@"; do
		case $a in md5) bytes=16 ;; sha1) bytes=20 ;; *) bytes=32 ;; esac
		bench_hex_list "$n" "$bytes" "$T/l-$a" &&
			bench_cli db import --list "bench-$a" --category illegal --type "$a" "$T/l-$a" \
				>/dev/null || { echo "$NAME: import of the $a list failed"; return 1; }
	done
}

# bench_wait_mount MNT LOG: wait up to 10 s for MNT to be a mount point; else print LOG.
bench_wait_mount() {
	local i
	for i in $(seq 100); do
		mountpoint -q "$1" && return 0
		sleep 0.1
	done
	echo "$NAME: the mount on $1 did not appear:"
	cat "$2"
	return 1
}

# bench_mount BACK MNT LOG [OPTS]: hashgatefs ($HGFS, default $B/hashgatefs) on the scratch
# config in the background, all output to LOG; BENCH_PID is its pid (also appended to
# BENCH_PIDS for bench_cleanup).
BENCH_PIDS=
bench_mount() {
	"${HGFS:-$B/hashgatefs}" -f -o "config=$T/hashgate.conf${4:+,$4}" "$1" "$2" >"$3" 2>&1 </dev/null &
	BENCH_PID=$!
	BENCH_PIDS="$BENCH_PIDS $BENCH_PID"
	bench_wait_mount "$2" "$3"
}

bench_unmount() {	# bench_unmount MNT: a lazy unmount when a plain one fails (busy)
	mountpoint -q "$1" 2>/dev/null || return 0
	fusermount3 -u "$1" 2>/dev/null || fusermount3 -uz "$1"
}

bench_stop() {	# stop the daemons started by bench_mount (and any the script added)
	local p
	for p in $BENCH_PIDS; do kill "$p" 2>/dev/null; wait "$p" 2>/dev/null; done
	BENCH_PIDS=
}

# The end of every benchmark's cleanup: stop the daemons, then remove $T unless something is
# still mounted below it (never delete through a live mount).
bench_cleanup() {
	bench_stop
	if findmnt -rn -o TARGET | grep -q "^$T/"; then
		echo "$NAME: mounts under $T still live; not removing it" >&2
	else
		rm -rf "$T"
	fi
}
