# lib.sh - shared TAP helpers and the mount fixture for tests/mount/NN-name.sh (bash).
#
# Usage, at the top of a test:
#	. "$(dirname "$0")/lib.sh"
#	hg_setup		# scratch dirs, test database, key, config; skips when FUSE is unusable
#	hg_mount		# or: hg_mount on_match=block,allow_other
#	ok "clean upload" cp "$HG_TMP/clean" "$HG_MNT/a"
#	done_testing
#
# TAP:  plan N | ok DESC CMD... | nok DESC CMD... | is GOT WANT DESC | skip DESC |
#       hg_result 1|0 DESC | skip_all WHY | diag MSG... | bail WHY | done_testing
#       (plan is optional: done_testing prints it).  `ok`/`nok` run CMD (a command, not a
#       string: use bash -c '...' for pipelines) and pass when it exits 0 / non-zero; on
#       failure the command and its output become diagnostics.
# Helpers: hg_mount [OPTS] / hg_umount (HG_PID = daemon pid; the daemon is not a job of the
#       test, so a bare `wait` waits only for the test's own workers); hg_refused CMD (fails
#       with EACCES, the verdict error); hg_content_absent FILE (its bytes are in no file under
#       HG_BACK); hg_quarantined PATH / hg_qcount PATH (records in HG_QDIR/records.db);
#       hg_cli ARGS (hashgate on the test db); hg_as UID GID CMD; hg_random FILE SIZE;
#       hg_pdq JPEG; hg_run CMD (runs CMD, returns its status, leaves its stdout+stderr,
#       NUL-free and cut to 3000 bytes, in HG_OUT).
#
# Fixture variables (after hg_setup):
#	HG_TMP		scratch dir (mktemp -d under /tmp), removed on any exit
#	HG_BACK		backing dir;  HG_MNT mountpoint;  HG_QDIR quarantine store
#	HG_DB		test hash database;  HG_CONF config file (also exported as HASHGATE_CONFIG)
#	HG_LOG		the daemon's stderr (-f) of every mount in this test
#	HG_FS, HG_CLI	the hashgatefs and hashgate binaries of $HASHGATE_BUILD
#	HG_K_SHA256, HG_K_MD5, HG_K_SHA1, HG_K_BIG
#			generated "known" files whose sha256 / md5 / sha1 / sha256 is in the
#			database (lists t-sha256, t-md5, t-sha1 category "illegal")
#	HG_K_JPEG	generated JPEG whose PDQ is in list t-pdq; empty when mkjpeg or the PDQ
#			hasher is not built (tests that need it then bail out, they do not pass)
# Backing filesystems: HG_BACKING_FS=ext4|xfs|btrfs|sshfs (unset: HG_BACK is a plain dir of
#	/tmp) makes hg_setup mount HG_BACK as a fresh loop image of that type, or as sshfs over
#	loopback from a private sshd (hg_sshd_start) serving HG_TMP/remote; the EXIT trap unmounts
#	it.  HG_MOUNT_EXTRA adds daemon options to every mount (e.g. staging=named).
#	hg_backing_mount TYPE DIR [MiB] mounts any dir that way (82-enospc uses it for its small
#	disk); hg_backing_release undoes every such mount; hg_backing_is TYPE... tests which is on.
#	HG_BACK_SRC: where HG_BACK's files really are (sshfs: the served local dir), for tests
#	that create many files directly.
# Invariants: everything a test creates lives under HG_TMP; the EXIT trap unmounts
# (fusermount3 -u, then -uz), kills the daemon and any pid in HG_BG_PIDS, and only removes
# HG_TMP once nothing is mounted below it.  Tests depend only on $HASHGATE_BUILD, the repo and
# standard Debian tools.

HG_NTEST=0
HG_NFAIL=0
HG_PLANNED=
HG_PID=
HG_BG_PIDS=
HG_TMP=

plan() { HG_PLANNED=$1; echo "1..$1"; }

diag() { printf '%s\n' "$@" | sed 's/^/# /'; }

hg_result() {	# hg_result PASSED DESC
	HG_NTEST=$((HG_NTEST + 1))
	if [ "$1" = 1 ]; then
		echo "ok $HG_NTEST - $2"
	else
		HG_NFAIL=$((HG_NFAIL + 1))
		echo "not ok $HG_NTEST - $2"
	fi
}

# Run CMD with its output in a file (NUL bytes and length are tamed before it becomes a diag).
hg_run() {
	local f=${HG_TMP:-/tmp}/.hg-out.$$
	"$@" >"$f" 2>&1
	local rc=$?
	HG_OUT=$(tr -d '\000' <"$f" | head -c 3000)
	rm -f "$f"
	return $rc
}

ok() {
	local desc=$1
	shift
	if hg_run "$@"; then
		hg_result 1 "$desc"
		return 0
	fi
	hg_result 0 "$desc"
	diag "  command: $*" ${HG_OUT:+"  output: $HG_OUT"}
	return 1
}

nok() {
	local desc=$1
	shift
	if hg_run "$@"; then
		hg_result 0 "$desc"
		diag "  command succeeded but should have failed: $*" ${HG_OUT:+"  output: $HG_OUT"}
		return 1
	fi
	hg_result 1 "$desc"
	return 0
}

is() {
	if [ "$1" = "$2" ]; then
		hg_result 1 "$3"
		return 0
	fi
	hg_result 0 "$3"
	diag "  got:  '$1'" "  want: '$2'"
	return 1
}

skip() { HG_NTEST=$((HG_NTEST + 1)); echo "ok $HG_NTEST # SKIP $1"; }

skip_all() {
	echo "1..0 # SKIP $1"
	exit 0
}

bail() {
	echo "Bail out! $1"
	exit 255
}

done_testing() {
	[ -n "$HG_PLANNED" ] || echo "1..$HG_NTEST"
	[ "$HG_NFAIL" -eq 0 ] || diag "failed $HG_NFAIL of $HG_NTEST tests"
	[ "$HG_NFAIL" -eq 0 ] && exit 0
	exit 1
}

# --- fixture ---------------------------------------------------------------------------------

HG_BUILD=${HASHGATE_BUILD:-}
HG_SRC=${HASHGATE_SRC:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
HG_FS=$HG_BUILD/hashgatefs
HG_CLI=$HG_BUILD/hashgate
HG_TOOLS=$HG_BUILD/tests/tools

hg_cleanup() {
	local p
	hg_umount >/dev/null 2>&1
	hg_backing_release
	for p in $HG_BG_PIDS; do
		kill "$p" 2>/dev/null && { sleep 0.1; kill -9 "$p" 2>/dev/null; }
	done
	if [ -n "$HG_TMP" ] && [ -d "$HG_TMP" ]; then
		if findmnt -rn -o TARGET | grep -q "^$HG_TMP/"; then
			echo "# lib.sh: a mount under $HG_TMP is still live; not removing it" >&2
		else
			chattr -R -i "$HG_TMP" 2>/dev/null
			rm -rf "$HG_TMP"
		fi
	fi
}

# Random bytes: hg_random FILE SIZE
hg_random() { head -c "$2" /dev/urandom >"$1"; }

hg_sha256() { sha256sum <"$1" | cut -d' ' -f1; }

# Creates HG_TMP and the fixture; skips the whole test when it cannot run here.
hg_setup() {
	[ -n "$HG_BUILD" ] || skip_all "HASHGATE_BUILD is not set (run through make check)"
	[ -x "$HG_FS" ] || skip_all "daemon binary $HG_FS is missing (not built yet)"
	[ -x "$HG_CLI" ] || skip_all "CLI binary $HG_CLI is missing (not built yet)"
	[ -c /dev/fuse ] || skip_all "/dev/fuse does not exist"
	{ exec 9<>/dev/fuse; } 2>/dev/null || skip_all "/dev/fuse cannot be opened"
	exec 9>&-
	command -v fusermount3 >/dev/null || skip_all "fusermount3 is not installed"
	command -v sqlite3 >/dev/null || skip_all "sqlite3 is not installed (make deps)"

	HG_TMP=$(mktemp -d /tmp/hg-mount-test.XXXXXX) || bail "mktemp failed"
	trap hg_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	chmod 0755 "$HG_TMP"		# other uids must reach the mountpoint
	hg_reachable_tools
	HG_BACK=$HG_TMP/backing
	HG_BACK_SRC=$HG_BACK
	HG_MNT=$HG_TMP/mnt
	HG_QDIR=$HG_TMP/quarantine
	HG_DB=$HG_TMP/hashes.db
	HG_CONF=$HG_TMP/hashgate.conf
	HG_LOG=$HG_TMP/daemon.log
	mkdir -p "$HG_BACK" "$HG_MNT" "$HG_TMP/known" "$HG_TMP/state" "$HG_TMP/w"
	if [ -n "${HG_BACKING_FS:-}" ]; then
		hg_backing_mount "$HG_BACKING_FS" "$HG_BACK" ||
			bail "HG_BACKING_FS=$HG_BACKING_FS: cannot mount the backing dir (see above)"
		diag "backing dir: $HG_BACKING_FS ($(findmnt -rn -o SOURCE,FSTYPE -M "$HG_BACK"))"
	fi
	chmod 0755 "$HG_BACK" "$HG_MNT"
	: >"$HG_LOG"
	openssl rand -hex 32 >"$HG_TMP/quarantine.key" && chmod 0600 "$HG_TMP/quarantine.key"
	cat >"$HG_CONF" <<-EOF
	# written by tests/mount/lib.sh
	db = $HG_DB
	quarantine = $HG_QDIR
	quarantine_key = $HG_TMP/quarantine.key
	audit_log = $HG_TMP/audit.log
	state_dir = $HG_TMP/state
	scan_db = $HG_TMP/scan.db
	log_level = info
	EOF
	export HASHGATE_CONFIG=$HG_CONF

	HG_K_SHA256=$HG_TMP/known/k-sha256.bin
	HG_K_MD5=$HG_TMP/known/k-md5.bin
	HG_K_SHA1=$HG_TMP/known/k-sha1.bin
	HG_K_BIG=$HG_TMP/known/k-big.bin
	hg_random "$HG_K_SHA256" 200013
	hg_random "$HG_K_MD5" 65537
	hg_random "$HG_K_SHA1" 4097
	hg_random "$HG_K_BIG" $((3 * 1024 * 1024 + 5))
	sha256sum <"$HG_K_SHA256" | cut -d' ' -f1 >"$HG_TMP/known/l-sha256"
	sha256sum <"$HG_K_BIG" | cut -d' ' -f1 >>"$HG_TMP/known/l-sha256"
	md5sum <"$HG_K_MD5" | cut -d' ' -f1 >"$HG_TMP/known/l-md5"
	sha1sum <"$HG_K_SHA1" | cut -d' ' -f1 >"$HG_TMP/known/l-sha1"
	hg_db_init "$HG_DB" || bail "could not create the test database with $HG_CLI db (see above)"

	HG_K_JPEG=
	if [ -x "$HG_TOOLS/mkjpeg" ]; then
		local pdq
		"$HG_TOOLS/mkjpeg" "$HG_TMP/known/k.jpg" 640 480 7 --quality 90 >/dev/null 2>&1 &&
			pdq=$(hg_pdq "$HG_TMP/known/k.jpg") && [ -n "$pdq" ] &&
			echo "$pdq" >"$HG_TMP/known/l-pdq" &&
			hg_cli db import --list t-pdq --category illegal --type pdq \
				"$HG_TMP/known/l-pdq" >/dev/null && HG_K_JPEG=$HG_TMP/known/k.jpg
	fi
}

hg_cli() {	# the admin CLI on the test database; output to stderr on failure
	local out
	out=$("$HG_CLI" --config "$HG_CONF" --db "$HG_DB" "$@" 2>&1) || {
		diag "hashgate $* failed:" "$out"
		return 1
	}
	[ -z "$out" ] || printf '%s\n' "$out"
}

hg_db_init() {	# hg_db_init PATH: a database holding the three exact lists
	local save=$HG_DB
	HG_DB=$1
	hg_cli db init >/dev/null &&
		hg_cli db import --list t-sha256 --category illegal --type sha256 \
			"$HG_TMP/known/l-sha256" >/dev/null &&
		hg_cli db import --list t-md5 --category illegal --type md5 \
			"$HG_TMP/known/l-md5" >/dev/null &&
		hg_cli db import --list t-sha1 --category illegal --type sha1 \
			"$HG_TMP/known/l-sha1" >/dev/null
	local rc=$?
	HG_DB=$save
	return $rc
}

# PDQ hex of a JPEG: `hashgate hash --json`, or tests/tools/jpegxf (libhashdb's image_pdq_fd)
# while the hash command is not built.
hg_pdq() {
	local h
	h=$("$HG_CLI" hash --json "$1" 2>/dev/null |
		sed -n 's/.*"pdq": *"\([0-9a-f]\{64\}\)".*/\1/p' | head -n1)
	[ -n "$h" ] || h=$("$HG_TOOLS/jpegxf" "$1" - pdq 2>/dev/null | cut -d' ' -f1)
	[ -n "$h" ] && echo "$h"
}

# --- backing filesystems (HG_BACKING_FS) -------------------------------------------------------

HG_BACKING_MOUNTS=	# dirs mounted by hg_backing_mount, newest first
HG_BACKING_LOOPS=	# their loop devices

hg_backing_is() { local t; for t; do [ "${HG_BACKING_FS:-}" = "$t" ] && return 0; done; return 1; }

hg_free_port() {
	local p
	for p in $(shuf -i 20000-60000 -n 50); do
		(exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return 0; }
	done
	return 1
}

# hg_sshd_start: a private sshd on 127.0.0.1 (free port, generated host and user keys, all in
# HG_TMP/ssh) that lets root in by key; sets HG_SSH_PORT, HG_SSH_DIR and HG_SSH_OPTS (the
# client options for ssh/sftp/sshfs, as an array).  Once per test; fails when openssh is
# missing or the server does not listen.
hg_sshd_start() {
	local sshd S=$HG_TMP/ssh i
	[ -n "${HG_SSH_PORT:-}" ] && return 0
	sshd=$(command -v sshd || echo /usr/sbin/sshd)
	[ -x "$sshd" ] && command -v ssh-keygen >/dev/null || {
		echo "openssh-server/openssh-client not installed (make deps)"; return 1; }
	mkdir -p "$S" && chmod 0700 "$S"
	ssh-keygen -q -t ed25519 -N '' -f "$S/host_key" || return 1
	ssh-keygen -q -t ed25519 -N '' -f "$S/user_key" || return 1
	cp "$S/user_key.pub" "$S/authorized_keys" && chmod 0600 "$S/authorized_keys"
	mkdir -p /run/sshd 2>/dev/null		# privilege-separation dir (Debian makes it at boot)
	HG_SSH_PORT=$(hg_free_port) || { echo "no free port"; return 1; }
	cat >"$S/sshd_config" <<-CONF
	ListenAddress 127.0.0.1
	Port $HG_SSH_PORT
	HostKey $S/host_key
	PidFile $S/sshd.pid
	AuthorizedKeysFile $S/authorized_keys
	StrictModes no
	PermitRootLogin prohibit-password
	PasswordAuthentication no
	KbdInteractiveAuthentication no
	UsePAM no
	Subsystem sftp internal-sftp
	LogLevel ERROR
	CONF
	"$sshd" -D -e -f "$S/sshd_config" 2>"$S/sshd.log" &
	HG_SSH_PID=$!		# its session processes are its children
	HG_BG_PIDS="$HG_BG_PIDS $!"
	for i in $(seq 50); do
		(exec 3<>"/dev/tcp/127.0.0.1/$HG_SSH_PORT") 2>/dev/null && break
		sleep 0.1
	done
	HG_SSH_DIR=$S
	HG_SSH_OPTS=(-o IdentityFile="$S/user_key" -o StrictHostKeyChecking=no
		-o UserKnownHostsFile="$S/known_hosts" -o BatchMode=yes)
	(exec 3<>"/dev/tcp/127.0.0.1/$HG_SSH_PORT") 2>/dev/null ||
		{ echo "sshd did not listen: $(cat "$S/sshd.log")"; HG_SSH_PORT=; return 1; }
}

# hg_backing_mount TYPE DIR [MiB]: mount DIR as a new TYPE filesystem: ext4, xfs or btrfs in a
# sparse loop image (MiB, default 512; xfs needs at least 300), or sshfs of a directory (on a
# MiB-sized ext4 image when MiB is given, else plain) served by hg_sshd_start.
hg_backing_mount() {
	local type=$1 dir=$2 mb=${3:-} img loop src
	img=$HG_TMP/backing-$type-$(echo "$dir" | md5sum | cut -c1-8).img
	case $type in
	ext4|xfs|btrfs)
		command -v "mkfs.$type" >/dev/null || { echo "mkfs.$type missing (make deps)"; return 1; }
		truncate -s "${mb:-512}M" "$img" || return 1
		case $type in
		ext4)	mkfs.ext4 -q -F -m 0 -b 4096 "$img" >/dev/null 2>&1 ;;
		xfs)	mkfs.xfs -q -f "$img" >/dev/null 2>&1 ;;
		btrfs)	mkfs.btrfs -q -f "$img" >/dev/null 2>&1 ;;
		esac || { echo "mkfs.$type failed"; return 1; }
		loop=$(losetup -f --show "$img" 2>&1) || { echo "losetup: $loop"; return 1; }
		HG_BACKING_LOOPS="$loop $HG_BACKING_LOOPS"
		mount -t "$type" "$loop" "$dir" || return 1
		;;
	sshfs)
		command -v sshfs >/dev/null || { echo "sshfs missing (make deps)"; return 1; }
		hg_sshd_start || return 1
		src=$HG_TMP/remote-$(basename "$dir")
		mkdir -p "$src"
		# the local dir behind the sshfs backing dir: tests that fill it fast write there
		[ "$dir" = "$HG_BACK" ] && HG_BACK_SRC=$src
		[ -n "$mb" ] && { hg_backing_mount ext4 "$src" "$mb" || return 1; }
		# allow_other: users other than root (hg_as) look into the backing dir too.
		# noforget: inode numbers stay what hashgatefs keyed them by (README).
		sshfs -p "$HG_SSH_PORT" "${HG_SSH_OPTS[@]}" \
			-o allow_other,dir_cache=no,attr_timeout=0,entry_timeout=0,noforget \
			"root@127.0.0.1:$src" "$dir" || return 1
		;;
	*)	echo "unknown backing filesystem type '$type' (ext4, xfs, btrfs, sshfs)"; return 1 ;;
	esac
	HG_BACKING_MOUNTS="$dir $HG_BACKING_MOUNTS"
}

hg_backing_release() {
	local d l
	for d in $HG_BACKING_MOUNTS; do
		findmnt -rn -M "$d" >/dev/null 2>&1 || continue
		case $(findmnt -rn -M "$d" -o FSTYPE) in
		fuse*)	fusermount3 -u "$d" 2>/dev/null || fusermount3 -uz "$d" 2>/dev/null ;;
		*)	umount "$d" 2>/dev/null || umount -l "$d" 2>/dev/null ;;
		esac
	done
	for l in $HG_BACKING_LOOPS; do losetup -d "$l" 2>/dev/null; done
	HG_BACKING_MOUNTS= HG_BACKING_LOOPS=
	return 0
}

hg_mounted() { findmnt -rn -M "$1" -o FSTYPE 2>/dev/null | grep -q '^fuse'; }

# hg_mount [OPTS]: start the daemon in the foreground (background job) with the fixture's db,
# quarantine and config plus OPTS (comma separated -o options); wait until mounted.
hg_mount() {
	local opts="config=$HG_CONF,db=$HG_DB,quarantine=$HG_QDIR" i
	[ -n "${1:-}" ] && opts="$opts,$1"
	# HG_MOUNT_EXTRA: options added to every mount, to run the suite under another mode
	# (e.g. HG_MOUNT_EXTRA=writeback=on make mount-check)
	[ -n "${HG_MOUNT_EXTRA:-}" ] && opts="$opts,$HG_MOUNT_EXTRA"
	hg_mounted "$HG_MNT" && { diag "hg_mount: $HG_MNT is already mounted"; return 1; }
	echo "=== hashgatefs -f -o $opts $HG_BACK $HG_MNT" >>"$HG_LOG"
	# Started from a subshell so it is not a job of the test: a bare `wait` in a test waits
	# for the test's own workers, never for the daemon.
	( "$HG_FS" -f -o "$opts" "$HG_BACK" "$HG_MNT" >>"$HG_LOG" 2>&1 </dev/null &
	  echo $! >"$HG_TMP/daemon.pid" )
	HG_PID=$(cat "$HG_TMP/daemon.pid")
	for i in $(seq 100); do
		hg_mounted "$HG_MNT" && return 0
		kill -0 "$HG_PID" 2>/dev/null || break
		sleep 0.1
	done
	diag "hg_mount: not mounted after 10 s (daemon pid $HG_PID); daemon log tail:"
	diag "$(tail -n 20 "$HG_LOG")"
	kill -9 "$HG_PID" 2>/dev/null
	HG_PID=
	return 1
}

# Unmount and wait for the daemon to exit (kill -9 after 5 s).
hg_umount() {
	local i
	if hg_mounted "$HG_MNT"; then
		for i in 1 2 3 4 5 6 7 8 9 10; do
			fusermount3 -u "$HG_MNT" 2>/dev/null && break
			sleep 0.2
		done
		hg_mounted "$HG_MNT" && fusermount3 -uz "$HG_MNT" 2>/dev/null
	fi
	if [ -n "$HG_PID" ]; then
		for i in $(seq 50); do
			kill -0 "$HG_PID" 2>/dev/null || break
			sleep 0.1
		done
		kill -9 "$HG_PID" 2>/dev/null
		HG_PID=
	fi
	return 0
}

# --- assertions used by many tests ----------------------------------------------------------

# Succeeds when no regular file anywhere under the backing dir (hidden staging areas included)
# has the content of FILE.
hg_content_absent() {
	local want f
	want=$(hg_sha256 "$1")
	while IFS= read -r -d '' f; do
		if [ "$(hg_sha256 "$f")" = "$want" ]; then
			echo "content of $1 found in backing dir as $f"
			return 1
		fi
	done < <(find "$HG_BACK" -type f -size "$(stat -c %s "$1")c" -print0)
	return 0
}

# Did the last mount stage uploads as named files in BACKING/.hashgate-staging (staging=named,
# or auto on a filesystem without O_TMPFILE)?  From the daemon's start-up log line.
hg_staging_named() {
	grep 'staging uploads:' "$HG_LOG" 2>/dev/null | tail -n1 | grep -q 'staging uploads: named'
}

# find over the backing dir without the staging dir when it holds named uploads in flight
# (root-only, never reachable through the mount; tests of "bytes not in the backing dir yet"
# mean the reachable part): hg_find_reachable FIND-TESTS...
hg_find_reachable() {
	if hg_staging_named; then
		find "$HG_BACK" -path "$HG_BACK/.hashgate-staging" -prune -o "$@" -print
	else
		find "$HG_BACK" "$@" -print
	fi
}

# hg_content_absent, but only over what hg_find_reachable lists: right after a crash with
# named staging the partial upload is still in the root-only staging dir until the restart.
hg_content_unreachable() {
	local want f
	want=$(hg_sha256 "$1")
	while IFS= read -r f; do
		if [ "$(hg_sha256 "$f")" = "$want" ]; then
			echo "content of $1 found in backing dir as $f"
			return 1
		fi
	done < <(hg_find_reachable -type f -size "$(stat -c %s "$1")c")
	return 0
}

# Succeeds when the file at PATH (backing dir) has exactly the content of FILE.
hg_same() { cmp -s "$1" "$2" || { echo "$1 and $2 differ or are missing"; return 1; }; }

# Number of quarantine records whose original path is PATH (relative to the mount root, with
# or without a leading slash); -1 when the store cannot be read.
hg_qcount() {
	local p=${1#/}
	[ -f "$HG_QDIR/records.db" ] || { echo 0; return; }
	sqlite3 -readonly "$HG_QDIR/records.db" \
		"SELECT count(*) FROM records WHERE path IN ('$p', '/$p');" 2>/dev/null || echo -1
}

# Succeeds when at least one record for PATH exists (prints the count otherwise).
hg_quarantined() {
	local n
	n=$(hg_qcount "$1")
	[ "$n" -ge 1 ] 2>/dev/null || { echo "no quarantine record for '$1' (count $n)"; return 1; }
}

# hg_refused CMD...: CMD must exit non-zero and report EACCES ("Permission denied"), the
# error hashgatefs gives the close() of a rejected upload (any other failure, e.g. ENOENT, is
# not a verdict and fails the check).
hg_refused() {
	local out
	if out=$("$@" 2>&1); then
		echo "'$*' succeeded${out:+: $out}"
		return 1
	fi
	grep -qE 'Permission denied|EACCES' <<<"$out" && return 0
	echo "'$*' failed, but not with EACCES: $out"
	return 1
}

# Tests run the CLI, the test tools and fdctl.py as other uids.  A tree those uids cannot
# reach (a clone under /root, 0700) gets copies in the scratch dir, and the paths point there.
hg_reachable_tools() {
	local f
	setpriv --reuid=65534 --regid=65534 --clear-groups -- test -x "$HG_CLI" 2>/dev/null &&
		return 0
	mkdir -p "$HG_TMP/bin/tools" || bail "cannot make $HG_TMP/bin"
	cp "$HG_CLI" "$HG_TMP/bin/hashgate" || bail "cannot copy $HG_CLI"
	for f in "$HG_TOOLS"/*; do
		case "$f" in *.o|*.d) continue ;; esac
		[ -f "$f" ] && [ -x "$f" ] && cp "$f" "$HG_TMP/bin/tools/"
	done
	cp "$HG_SRC"/tests/tools/*.py "$HG_TMP/bin/tools/" || bail "cannot copy the python tools"
	chmod -R a+rX "$HG_TMP/bin"
	HG_CLI=$HG_TMP/bin/hashgate
	HG_TOOLS=$HG_TMP/bin/tools
	HG_PYTOOLS=$HG_TMP/bin/tools
	PATH=$HG_TMP/bin:$PATH
}

# Run CMD as uid:gid (no supplementary groups): hg_as UID GID CMD...
hg_as() {
	local u=$1 g=$2
	shift 2
	setpriv --reuid="$u" --regid="$g" --clear-groups -- "$@"
}
