#!/bin/sh
# fresh-check.sh - `make fresh-check`: the README's first commands on a fresh Debian machine.
#
# Usage (root): sh scripts/fresh-check.sh DIR
# Builds a minimal Debian (debootstrap --variant=minbase, plus git and make only) under
# DIR/base, with empty apt package lists (as in container images: deps.sh must run apt-get
# update itself), and in a fresh copy of it per run clones this repository's HEAD (committed
# work only) and, as root in a chroot:
#   demo:  make demo, then make check     (a person trying it out)
#   ci:    .ci/run, i.e. make check first (CI on a fresh machine)
# FRESH_RUNS picks runs (default "demo ci"); FRESH_REF what to clone (HEAD, or a branch or tag
# name, e.g. main to see a defect before a fix); FRESH_SUITE the release (bookworm); FRESH_MIRROR
# the mirror (default: the one apt's sources use for that release).  Logs: DIR/RUN.log.
#
# Needs: root, /dev/fuse (the mount tests mount FUSE inside the chroot), debootstrap and git
# (installed if missing), the mirror reachable.  Each run lives in its own mount namespace
# (unshare -m) with /proc, /sys, /dev (bind, for /dev/fuse, /dev/pts, /dev/shm) and a /run
# tmpfs mounted in the chroot: all of it, FUSE mounts included, disappears with the run and
# never shows on the host.  A policy-rc.d keeps package installs from starting services (the
# chroot has no init).  Invariants: DIR is only removed when nothing is mounted below it; the
# host gets nothing but debootstrap/git; the working tree is only read.
set -eu

dir=${1:?usage: fresh-check.sh DIR}
src=$(cd "$(dirname "$0")/.." && pwd)
suite=${FRESH_SUITE:-bookworm}
runs=${FRESH_RUNS:-demo ci}
ref=${FRESH_REF:-HEAD}

die() { echo "fresh-check: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (debootstrap, chroot and mounts)"
[ -c /dev/fuse ] || die "/dev/fuse is missing; the mount tests need it (load the fuse module)"
sh "$src/scripts/deps.sh" fresh

# The mirror apt already uses for $suite main: no other host is contacted.
mirror=${FRESH_MIRROR:-$(apt-get indextargets --format '$(RELEASE) $(COMPONENT) $(SITE)' \
	'Created-By: Packages' 2>/dev/null | awk -v s="$suite" '$1 == s && $2 == "main" { print $3; exit }')}
[ -n "$mirror" ] || die "no '$suite main' source in apt's sources; set FRESH_MIRROR"

case "$dir" in /*) ;; *) dir=$(pwd)/$dir ;; esac
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
[ "$dir" != / ] || die "refusing DIR=/"

fresh_rm() {	# remove a previous chroot, never through a live mount
	[ -e "$1" ] || return 0
	if findmnt -rn -o TARGET | grep -q "^$1\(/\|$\)"; then
		die "something is mounted under $1; unmount it first"
	fi
	rm -rf "$1"
}

t0=$(date +%s)
echo "fresh-check: debootstrap --variant=minbase --include=git,make $suite from $mirror"
fresh_rm "$dir/base"
debootstrap --variant=minbase --include=git,make "$suite" "$dir/base" "$mirror" \
	>"$dir/debootstrap.log" 2>&1 || { tail -n 20 "$dir/debootstrap.log" >&2; die "debootstrap failed"; }
rm -rf "$dir/base/var/lib/apt/lists"
mkdir -p "$dir/base/var/lib/apt/lists/partial"
printf '#!/bin/sh\nexit 101\n' >"$dir/base/usr/sbin/policy-rc.d"
# debootstrap leaves /etc/hosts to the installer; a machine has at least this.
[ -e "$dir/base/etc/hosts" ] || printf '127.0.0.1\tlocalhost\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
	>"$dir/base/etc/hosts"
chmod 0755 "$dir/base/usr/sbin/policy-rc.d"
git -C "$src" bundle create "$dir/base/root/hashgate.bundle" "$ref" 2>/dev/null ||
	die "cannot bundle '$ref' (HEAD, a branch or a tag)"
echo "fresh-check: base system ready ($(($(date +%s) - t0)) s); cloning $ref = $(git -C "$src" rev-parse --short "$ref")"

# One run: a copy of the base, the clone, the commands.  Only the chroot's own tools are used
# from the clone on.
fresh_run() {	# fresh_run NAME COMMANDS
	r=$dir/$1
	fresh_rm "$r"
	cp -a "$dir/base" "$r"
	t=$(date +%s)
	echo "fresh-check: run $1: $2   (log: $dir/$1.log)"
	rc=0
	unshare --mount --propagation private sh -c '
		set -e
		r=$1
		# A machine or container has its root as a mount point; a bare chroot dir is not
		# one, and `hashgate restore/export` (a private mount namespace) needs it to be.
		mount --bind "$r" "$r"
		mount -t proc proc "$r/proc"
		mount -t sysfs sysfs "$r/sys"
		mount --rbind /dev "$r/dev"
		mount -t tmpfs tmpfs "$r/run"
		exec chroot "$r" env -i HOME=/root PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
			LANG=C.UTF-8 sh -c "set -ex
				git clone -q --no-checkout /root/hashgate.bundle /root/hashgate
				cd /root/hashgate
				git -c advice.detachedHead=false checkout -q \$(git bundle list-heads /root/hashgate.bundle | sed -n \"1s/ .*//p\")
				$2"
	' sh "$r" "$2" >"$dir/$1.log" 2>&1 || rc=$?
	tail -n 12 "$dir/$1.log"
	if [ "$rc" -eq 0 ]; then
		echo "fresh-check: run $1 PASSED ($(($(date +%s) - t)) s)"
	else
		echo "fresh-check: run $1 FAILED, exit $rc ($(($(date +%s) - t)) s): see $dir/$1.log"
		failed="$failed $1"
	fi
}

failed=
for run in $runs; do
	case "$run" in
	demo) fresh_run demo "make demo && make check" ;;
	ci) fresh_run ci ".ci/run" ;;
	*) die "unknown run '$run' (FRESH_RUNS: demo ci)" ;;
	esac
done
[ -z "$failed" ] || die "failed:$failed"
echo "fresh-check: all passed ($(($(date +%s) - t0)) s)"
