#!/bin/bash
# 33-write-model.sh - one write model (issue 14): no byte written through the mount is served
# to another uid before its verdict, whatever the write path; matching content is unreachable
# under every name once judged, and failing to pull it is an error, never a silent success.
#  1. a scan of one backing file never marks another as judged (stale mark after a rewrite);
#  2. no size cap skips content written through the mount (in-place change over
#     scan_max_size; a new upload judged early by its uploader's readdir, then written on);
#  3. in-place bytes are not readable by another uid while the writer holds them (plain
#     in-place write, fork after open, O_TRUNC of a hard-linked file, mmap after close,
#     append; also a new upload published early by its uploader's readdir, in 2);
#  4. a reader holding the old file does not read a rewrite's staged bytes from the cache;
#  5. a pulled file loses its content under every hard link, also when the daemon is out of
#     file descriptors, and the close fails with a record in the log and the audit trail.
# Every step is one syscall of one process (tests/tools/fdctl.py via actor-lib.sh): W (uid
# 4242) writes, R (uid 4243) reads; X, Y, Z are further processes of W's uid.
. "$(dirname "$0")/lib.sh"
hg_setup
. "$(dirname "$0")/actor-lib.sh"
M=$HG_MNT B=$HG_BACK W=$HG_TMP/w
K=$HG_K_SHA256
KS=$(stat -c %s "$K")
KB=$HG_K_BIG
WU=4242 RU=4243
asW() { hg_as $WU $WU "$@"; }
asR() { hg_as $RU $RU "$@"; }

# got_not_known ANSWER OUT [KNOWN]: a reader's step answered ANSWER and left OUT: passes when
# the step failed (err...: the reader was refused) or OUT is not the known file (default K);
# an actor that did not answer (timeout, dead) fails, it does not pass for want of bytes
got_not_known() {
	case $1 in
	err*) return 0 ;;
	"ok "*) ! cmp -s "$2" "${3:-$K}" && return 0
		echo "the reader got the known bytes"; return 1 ;;
	esac
	echo "the reader's step answered '$1'"
	return 1
}

# rd_not_known ACTOR PATH OUT [KNOWN]: ACTOR opens PATH read-only, reads it whole into OUT and
# closes it; passes when the open or read fails or what it read is not the known file
rd_not_known() {
	local r
	rm -f "$3"
	r=$(act "$1" open rd "$2" rdonly)
	[ "$r" = ok ] || { got_not_known "$r" "$3" "${4:-$K}"; return; }
	r=$(act "$1" pread rd "$3")
	act "$1" close rd >/dev/null
	got_not_known "$r" "$3" "${4:-$K}"
}

# fd_not_known ACTOR ID pread|sendfile|mmapread OUT: the same through a descriptor ACTOR holds
fd_not_known() {
	rm -f "$4"
	got_not_known "$(act "$1" "$3" "$2" "$4")" "$4"
}

# absent_soon FILE: its bytes leave the backing dir within 3 s (RELEASE is asynchronous)
absent_soon() {
	local end=$(($(date +%s) + 3))
	until hg_content_absent "$1" >/dev/null; do
		[ "$(date +%s)" -le "$end" ] || { hg_content_absent "$1"; return 1; }
		sleep 0.2
	done
}

# purge FILE: remove what a failed check left in the backing dir with FILE's content, so the
# next section's checks see only their own leftovers
purge() {
	find "$B" -type f -size "$(stat -c %s "$1")c" -exec cmp -s {} "$1" \; -delete
}

# up NAME SRC: W uploads SRC as d/NAME (mode 0644), a clean published file
up() { asW bash -c "umask 022; cat '$2' >'$M/d/$1'"; }

hg_mount allow_other,scan_max_size=1M || bail "mount failed"
mkdir "$M/d" && chown $WU:$WU "$M/d" && chmod 0755 "$M/d"
hg_random "$W/clean" "$KS"
chmod 0644 "$W/clean"
act_start R $RU $RU

# --- 1. stale scan mark -----------------------------------------------------------------------
act_start X $WU $WU
act_start Y $WU $WU
act_start Z $WU $WU
ok "1: echo a > f1" asW bash -c "echo a >'$M/d/f1'"
is "$(act X open x "$M/d/f1" rdwr)" ok "1: X opens f1 O_RDWR and writes nothing"
is "$(act Y open y "$M/d/f1" wronly,trunc)" ok "1: Y opens f1 O_TRUNC (staged rewrite)"
is "$(act Y write y b)" ok "1: Y writes b"
is "$(act Y close y)" ok "1: Y's close publishes the rewrite"
is "$(act Z open z "$M/d/f1" rdwr)" ok "1: Z opens f1 O_RDWR"
is "$(act Z pwrite z "$K")" ok "1: Z writes the known file in place"
is "$(act X close x)" ok "1: X closes (its scan may only judge the file X had open)"
is "$(act Z close z)" "err EACCES" "1: Z's close is refused with EACCES"
ok "1: the known bytes are absent from the backing dir" hg_content_absent "$K"
ok "1: the match is recorded" hg_quarantined d/f1
for a in X Y Z; do act_stop $a; done

purge "$K"; purge "$KB"

# --- 2. no size cap on content written through the mount -------------------------------------
ok "2: printf x > v" asW bash -c "printf x >'$M/d/v'"
ok "2: dd of a known 3 MiB file over v (conv=notrunc, over scan_max_size=1M) is refused" \
	hg_refused asW dd if="$KB" of="$M/d/v" bs=1M conv=notrunc status=none
ok "2: ... and its bytes are absent" hg_content_absent "$KB"
nok "2: ... the daemon did not skip judging it for its size" \
	bash -c "grep -v '^===' '$HG_LOG' | grep 'verdict=skipped' | grep -q scan_max_size"

act_start X $WU $WU
is "$(act X open n "$M/d/u2" wronly,creat,trunc)" ok "2: X creates u2 (new upload)"
is "$(act X write n x)" ok "2: X writes 1 byte"
case $(act X listdir "$M/d") in
ok*u2*) hg_result 1 "2: X lists its own directory mid-upload and sees u2" ;;
*) hg_result 0 "2: X lists its own directory mid-upload and sees u2" ;;
esac
is "$(act X pwrite n "$KB")" ok "2: X writes a known 3 MiB file through the same descriptor"
ok "2: R's open+read of u2 meanwhile does not return the known bytes" \
	rd_not_known R "$M/d/u2" "$ACT_DIR/2.u2" "$KB"
is "$(act X close n)" "err EACCES" "2: X's close is refused with EACCES"
ok "2: the known bytes are absent from the backing dir" hg_content_absent "$KB"
act_stop X

# --- 3. in-place bytes are not readable by another uid while the writer holds them ------------
# (a) plain in-place write: reopen without O_TRUNC, pwrite, keep the descriptor
ok "3a: W uploads a clean file c3a" up c3a "$W/clean"
is "$(act R open old "$M/d/c3a" rdonly)" ok "3a: R opens c3a before the write"
act_start W $WU $WU
is "$(act W open w "$M/d/c3a" rdwr)" ok "3a: W opens c3a O_RDWR (no O_TRUNC)"
is "$(act W pwrite w "$K")" ok "3a: W writes the known file over it in place, keeps the fd"
ok "3a: R's new open+read of c3a does not return the known bytes" \
	rd_not_known R "$M/d/c3a" "$ACT_DIR/3a.new"
ok "3a: R's read through the descriptor it held does not either" \
	fd_not_known R old pread "$ACT_DIR/3a.old"
ok "3a: nor a shared read-only mapping of it" fd_not_known R old mmapread "$ACT_DIR/3a.mm"
ok "3a: nor does a fresh cat by R" bash -c "
	setpriv --reuid=$RU --regid=$RU --clear-groups -- cat '$M/d/c3a' | cmp -s - '$K' && exit 1
	exit 0"
case $(act W close w) in
err*) hg_result 1 "3a: W's close fails" ;;
*) hg_result 0 "3a: W's close fails" ;;
esac
act R close old >/dev/null
ok "3a: the known bytes are absent afterwards" hg_content_absent "$K"
ok "3a: the match is recorded" hg_quarantined d/c3a
act_stop W

purge "$K"; purge "$KB"

# (b) fork: the parent's close publishes, the child keeps writing through the inherited fd
act_start W $WU $WU
is "$(act W open p "$M/d/f3b" wronly,creat,trunc)" ok "3b: W creates f3b"
act_fork W W2 || hg_result 0 "3b: W forks"
diag "3b: parent's close: $(act W close p)"
is "$(act W2 pwrite p "$K")" ok "3b: the child writes the known file through the inherited fd"
ok "3b: R's open+read of f3b does not return the known bytes" \
	rd_not_known R "$M/d/f3b" "$ACT_DIR/3b"
case $(act W2 close p) in
err*) hg_result 1 "3b: the child's close fails" ;;
*) hg_result 0 "3b: the child's close fails" ;;
esac
ok "3b: the known bytes are absent afterwards" absent_soon "$K"
ok "3b: the match is recorded" hg_quarantined d/f3b
act_stop W2
act_stop W

purge "$K"; purge "$KB"

# (c) hard link, then O_TRUNC of one name (not stageable with two links: written in place)
ok "3c: W uploads f3c" up f3c "$W/clean"
ok "3c: ... and links it as g3c" asW ln "$M/d/f3c" "$M/d/g3c"
act_start W $WU $WU
is "$(act W open w "$M/d/f3c" wronly,trunc)" ok "3c: W opens f3c O_TRUNC"
is "$(act W pwrite w "$K")" ok "3c: W writes the known file, keeps the fd"
ok "3c: R's read of the other link g3c does not return the known bytes" \
	rd_not_known R "$M/d/g3c" "$ACT_DIR/3c.g"
ok "3c: R's read of f3c does not either" rd_not_known R "$M/d/f3c" "$ACT_DIR/3c.f"
case $(act W close w) in
err*) hg_result 1 "3c: W's close fails" ;;
*) hg_result 0 "3c: W's close fails" ;;
esac
ok "3c: the known bytes are absent afterwards (both names)" absent_soon "$K"
ok "3c: the match is recorded" hg_quarantined d/f3c
act_stop W

purge "$K"; purge "$KB"

# (d) mmap(MAP_SHARED), close the descriptor, then write into the mapping
ok "3d: W uploads a clean file c3d of the known file's size" up c3d "$W/clean"
act_start W $WU $WU
is "$(act W open w "$M/d/c3d" rdwr)" ok "3d: W opens c3d O_RDWR"
is "$(act W mmap w "$KS")" ok "3d: W maps it MAP_SHARED"
is "$(act W close w)" ok "3d: W closes the descriptor (nothing written yet)"
is "$(act W mmwrite w "$K")" ok "3d: W writes the known bytes into the mapping and msyncs"
ok "3d: R's open+read of c3d does not return the known bytes" \
	rd_not_known R "$M/d/c3d" "$ACT_DIR/3d"
is "$(act W munmap w)" ok "3d: W unmaps"
act_stop W
ok "3d: the known bytes are absent afterwards" absent_soon "$K"
ok "3d: the match is recorded" hg_quarantined d/c3d

purge "$K"; purge "$KB"

# (e) append: a clean prefix of the known file, the rest appended through an O_APPEND fd
head -c 100000 "$K" >"$W/khead"
tail -c +100001 "$K" >"$W/ktail"
chmod 0644 "$W/khead" "$W/ktail"
ok "3e: W uploads the clean first 100000 bytes of the known file as f3e" up f3e "$W/khead"
act_start W $WU $WU
is "$(act W open w "$M/d/f3e" wronly,append)" ok "3e: W opens f3e O_APPEND"
is "$(act W pwrite w "$W/ktail")" ok "3e: W appends the rest of the known file, keeps the fd"
ok "3e: R's open+read of f3e does not return the known bytes" \
	rd_not_known R "$M/d/f3e" "$ACT_DIR/3e"
case $(act W close w) in
err*) hg_result 1 "3e: W's close fails" ;;
*) hg_result 0 "3e: W's close fails" ;;
esac
ok "3e: the known bytes are absent afterwards" absent_soon "$K"
act_stop W

purge "$K"; purge "$KB"

# --- 4. a reader of the old file does not read the staged rewrite from the page cache ---------
ok "4: W uploads a clean file f4" up f4 "$W/clean"
is "$(act R open old "$M/d/f4" rdonly)" ok "4: R opens f4 and keeps the descriptor"
is "$(act R readback old)" "ok $KS" "4: R reads the old content"
act_start W $WU $WU
is "$(act W open w "$M/d/f4" rdwr,trunc)" ok "4: W opens f4 O_TRUNC (staged rewrite)"
is "$(act W pwrite w "$K")" ok "4: W writes the known file"
is "$(act W readback w)" "ok $KS" "4: W reads its own bytes back"
ok "4: R's read through its old descriptor does not return the staged bytes" \
	fd_not_known R old pread "$ACT_DIR/4.read"
ok "4: nor does sendfile from it" fd_not_known R old sendfile "$ACT_DIR/4.sendfile"
ok "4: nor a shared read-only mapping of it" fd_not_known R old mmapread "$ACT_DIR/4.mm"
is "$(act W close w)" "err EACCES" "4: W's close is refused with EACCES"
act R close old >/dev/null
ok "4: the known bytes are absent" hg_content_absent "$K"
ok "4: f4 still has its old content" cmp "$W/clean" "$B/d/f4"
act_stop W

purge "$K"; purge "$KB"

# --- 5. a pull reaches every hard link, and fails closed when the daemon is out of fds --------
ok "5: W uploads f5" up f5 "$W/clean"
ok "5: ... and links it as g5" asW ln "$M/d/f5" "$M/d/g5"
ok "5: writing the known file in place into f5 is refused" \
	hg_refused asW "$HG_TOOLS/fsop" pwriteover "$M/d/f5" "$K"
ok "5: the known bytes are under neither name (g5 included)" absent_soon "$K"

purge "$K"
ok "5: W uploads f5e" up f5e "$W/clean"
ok "5: ... and links it as g5e" asW ln "$M/d/f5e" "$M/d/g5e"
act_start W $WU $WU
act_start H 0 0
is "$(act W open w "$M/d/f5e" rdwr)" ok "5: W opens f5e O_RDWR"
is "$(act W pwrite w "$K")" ok "5: W writes the known file in place, keeps the fd"
# the daemon runs out of descriptors: a limit just above what it holds, the rest taken by H's
# opens through the mount (each one a descriptor in the daemon) until the daemon fails one
nfd=$(ls /proc/"$HG_PID"/fd | wc -l)
lim=$(prlimit --pid "$HG_PID" --nofile --noheadings -o SOFT,HARD | awk '{print $1 ":" $2}')
hard=${lim#*:}
prlimit --pid "$HG_PID" --nofile=$((nfd + 16)):"$hard" ||
	hg_result 0 "5: prlimit could lower the daemon's descriptor limit"
held=$(act H hold h "$M/d/f4" rdonly 200)
diag "5: H's opens until the daemon ran out: $held"
case $held in
"ok "*" EMFILE" | "ok "*" ENFILE") hg_result 1 "5: the daemon is out of descriptors" ;;
*) hg_result 0 "5: the daemon is out of descriptors ($held)" ;;
esac
: >"$HG_TMP/log.before" && cp "$HG_LOG" "$HG_TMP/log.before"
c=$(act W close w)
case $c in
err*) hg_result 1 "5: W's close fails out of descriptors ($c)" ;;
*) hg_result 0 "5: W's close fails out of descriptors ($c)" ;;
esac
act H unhold h >/dev/null
prlimit --pid "$HG_PID" --nofile="$lim"
# Descriptors are back.  Whatever the failed close did, the bytes are never served unjudged,
# and a reader that keeps trying (each attempt a chance for the daemon to judge them again)
# sees them judged and pulled from both names within 5 s.
served=0 gone=0
end=$(($(date +%s) + 5))
while [ "$(date +%s)" -le "$end" ]; do
	for n in g5e f5e; do
		hg_run rd_not_known R "$M/d/$n" "$ACT_DIR/5.$n" || { served=1; diag "5: $n: $HG_OUT"; }
	done
	hg_content_absent "$K" >/dev/null && { gone=1; break; }
	sleep 0.3
done
is "$served" 0 "5: R's reads of g5e and f5e afterwards never return the known bytes"
is "$gone" 1 "5: the known bytes are soon under neither name (g5e included)"
ok "5: the daemon logged the verdict or the failure for d/f5e" bash -c "
	diff '$HG_TMP/log.before' '$HG_LOG' | grep -E 'verdict=(match|error)' | grep -q 'd/f5e'"
ok "5: the audit trail has a record for the file (d/f5e or d/g5e)" \
	grep -qE '"path":"d/(f5e|g5e)"' "$HG_TMP/audit.log"
act_stop H
act_stop W

act_stop R
hg_umount
done_testing
