#!/bin/sh
# deps.sh - install the Debian packages hashgate needs to build, test, lint or package.
#
# Usage: sh scripts/deps.sh [--missing] GROUP...   (groups: build test lint bench package fuzz fresh
# backing)
# Installs only what is missing.  As root on Debian it runs apt-get itself (apt-get update
# first: a fresh machine may never have fetched the package lists); otherwise it prints the
# exact command and fails, so `make check` never half-runs without its tools.
# --missing: install nothing; print what is missing and fail if anything is.
set -eu

only_list=
[ "${1:-}" != --missing ] || { only_list=1; shift; }

pkgs_build="gcc make pkg-config libfuse3-dev fuse3 libssl-dev libsqlite3-dev libturbojpeg0-dev libjpeg62-turbo-dev libpng-dev libcurl4-openssl-dev zlib1g-dev libwebp-dev libgif-dev"
pkgs_test="valgrind perl openssh-server openssh-client rsync tar attr acl libcap2-bin sqlite3 openssl procps psmisc util-linux mount e2fsprogs python3 bc xxd libc-bin coreutils xfsprogs btrfs-progs sshfs"
# the backing filesystems of tests/mount/16-backing.sh and make backing-check (in test too)
pkgs_backing="xfsprogs btrfs-progs sshfs openssh-server openssh-client e2fsprogs util-linux"
pkgs_lint="cppcheck clang-tidy"
pkgs_bench="openssl g++"
pkgs_package="debhelper devscripts lintian fakeroot dpkg-dev rpm autopkgtest man-db libcap2-bin"
pkgs_fuzz="clang libclang-rt-dev"
pkgs_fresh="debootstrap git"

want=""
for g in "$@"; do
	eval "list=\${pkgs_$g:-}"
	[ -n "$list" ] || { echo "deps.sh: unknown group '$g'" >&2; exit 2; }
	want="$want $list"
done

if ! command -v dpkg-query >/dev/null 2>&1; then
	echo "deps.sh: not a Debian system; make sure these are installed:$want" >&2
	exit 0
fi

missing=""
for p in $want; do
	case " $missing " in *" $p "*) continue ;; esac
	st=$(dpkg-query -W -f='${db:Status-Abbrev}' "$p" 2>/dev/null || true)
	case "$st" in ii*) ;; *) missing="$missing $p" ;; esac
done
[ -n "$missing" ] || exit 0

if [ -n "$only_list" ]; then
	echo "deps.sh: missing packages:$missing" >&2
	exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "deps.sh: missing packages:$missing" >&2
	echo "deps.sh: run as root:  apt-get update && apt-get install -y$missing" >&2
	exit 1
fi
echo "deps.sh: installing$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends $missing
