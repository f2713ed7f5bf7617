#!/bin/sh
# run.sh - `make bench`: run every tests/bench/NN-*.sh in order.  Each prints its own figures
# and ratios against a baseline it measures in the same run; a failing benchmark is reported
# and the others still run.
set -u
here=$(dirname "$0")
rc=0
for b in "$here"/[0-9]*.sh; do
	[ -e "$b" ] || continue
	echo "=== $(basename "$b")"
	sh "$b" || { echo "*** $(basename "$b") failed"; rc=1; }
done
exit $rc
