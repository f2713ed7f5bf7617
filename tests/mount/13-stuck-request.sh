#!/bin/bash
# 13-stuck-request.sh - requests stuck in the backing filesystem do not hold up the others.
#
# The request loop (fs/loop.c) serves a sequential client on one thread and brings in more
# only when requests queue up or every busy thread is stuck.  A tenant whose requests hang
# (here: lookups below a directory on which a second FUSE filesystem is mounted, its daemon
# stopped with SIGSTOP, as a dead NFS or sshfs server would) must not stall the mount: other
# clients' stat, create, write, read and readdir are served while those lookups wait, under
# libfuse's pool (the default) and under loop=sticky, and the stuck ones complete once the filesystem
# below answers again.
. "$(dirname "$0")/lib.sh"
hg_setup
M=$HG_MNT B=$HG_BACK W=$HG_TMP/w
INNER=$HG_TMP/inner IPID= NSTUCK=4
mkdir -p "$INNER" "$B/slow" "$B/v"
echo inner >"$INNER/f"
for i in $(seq "$NSTUCK"); do mkdir "$INNER/d$i"; done
echo hello >"$B/v/plain"

inner_stop() {
	[ -n "$IPID" ] && kill -CONT "$IPID" 2>/dev/null
	hg_umount
	if mountpoint -q "$B/slow"; then
		fusermount3 -u "$B/slow" 2>/dev/null || fusermount3 -uz "$B/slow"
	fi
	[ -n "$IPID" ] && { kill "$IPID" 2>/dev/null; sleep 0.1; kill -9 "$IPID" 2>/dev/null; }
	IPID=
}
trap 'inner_stop; hg_cleanup' EXIT

# A second hashgatefs over $INNER, mounted on a directory of the backing dir: the slow
# filesystem below the tenant's tree.
( "$HG_FS" -f -o "config=$HG_CONF,db=$HG_DB,quarantine=$HG_QDIR" "$INNER" "$B/slow" \
	>>"$HG_TMP/inner.log" 2>&1 </dev/null & echo $! >"$HG_TMP/inner.pid" )
IPID=$(cat "$HG_TMP/inner.pid")
for i in $(seq 100); do mountpoint -q "$B/slow" && break; sleep 0.1; done
mountpoint -q "$B/slow" || bail "inner mount failed: $(tail -5 "$HG_TMP/inner.log")"
# Daemon threads waiting for an answer from a FUSE filesystem: only the stopped one below.
stuck_threads() {
	local t n=0
	for t in /proc/"$HG_PID"/task/*; do
		[ "$(cat "$t/wchan" 2>/dev/null)" = request_wait_answer ] && n=$((n + 1))
	done
	echo "$n"
}

round() {	# round LOOP-OPTS: one mount, NSTUCK stuck lookups, a victim served meanwhile
	local opts=$1 i n pids=
	hg_mount "$opts" || bail "mount ($opts) failed"
	is "$(cat "$M/slow/f")" inner "$opts: the slow filesystem answers through the mount"
	ls "$M"/slow/d* >/dev/null
	kill -STOP "$IPID"
	rm -f "$HG_TMP"/stuck.*
	for i in $(seq "$NSTUCK"); do
		( stat "$M/slow/d$i/x" >/dev/null 2>&1; echo "$?" >"$HG_TMP/stuck.$i" ) &
		pids="$pids $!"
	done
	# Wait until every lookup really holds a daemon thread in the stopped filesystem.
	for i in $(seq 100); do
		n=$(stuck_threads)
		[ "$n" -ge "$NSTUCK" ] && break
		sleep 0.1
	done
	ok "$opts: $NSTUCK daemon threads stuck below the mount (found $n)" [ "$n" -ge "$NSTUCK" ]
	# (Not in the mount's root: listing it with sizes would stat the stuck directory.)
	ok "$opts: stat of another file is served" timeout 10 stat "$M/v/plain"
	ok "$opts: an upload is created, written, closed" \
		timeout 10 sh -c "head -c 100000 /dev/urandom >'$W/up' && cp '$W/up' '$M/v/up'"
	ok "$opts: the upload reads back" timeout 10 cmp "$W/up" "$M/v/up"
	ok "$opts: the directory lists" timeout 10 sh -c "ls -l '$M/v' | grep -q ' up$'"
	ok "$opts: a new directory and a rename" \
		timeout 10 sh -c "mkdir '$M/v/d' && mv '$M/v/up' '$M/v/d/up2' && rm -r '$M/v/d'"
	ok "$opts: the stuck lookups were still waiting meanwhile" \
		[ "$(ls "$HG_TMP"/stuck.* 2>/dev/null | wc -l)" = 0 ]
	kill -CONT "$IPID"
	for i in $pids; do wait "$i"; done
	ok "$opts: the stuck lookups completed (ENOENT) once the filesystem answered" \
		[ "$(cat "$HG_TMP"/stuck.* | sort -u)" = 1 ]
	hg_umount
}

round "loop=sticky"
round "loop=libfuse"
done_testing
