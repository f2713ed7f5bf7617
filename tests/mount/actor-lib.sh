# actor-lib.sh - scripted processes ("actors") for multi-process, multi-uid mount tests.
# Sourced after lib.sh and hg_setup.  An actor is tests/tools/fdctl.py running as UID:GID (no
# supplementary groups unless given), NOT a child of the test shell (so the daemon does not
# count it as related to any other actor); the test drives it one command at a time and gets
# one answer line ("ok [VALUE]" / "err ERRNAME", see fdctl.py), so a test states the exact
# syscall sequence of several processes interleaved, with descriptors held across steps.
#
#	act_start NAME UID GID [GROUPS]	start actor NAME (GROUPS: comma list of supplementary gids)
#	act NAME CMD...			run CMD in actor NAME; prints the answer ("timeout" after 30 s)
#	act_fork NAME CHILD		NAME forks; CHILD is a new actor holding NAME's descriptors
#	act_stop NAME			ask NAME to exit (its descriptors close as it exits)
# Actors' pids are added to HG_BG_PIDS (killed by lib.sh's EXIT trap); their fifos live in
# HG_TMP/act, and ACT_DIR (HG_TMP/act/out, mode 1777) is where they may write local files.
# Answers that do not come within 30 s print "timeout" and the actor is then out of step: the
# test's later steps on it fail, they do not hang.

declare -A ACT_IN ACT_OUT
HG_FDCTL=${HG_PYTOOLS:-$HG_SRC/tests/tools}/fdctl.py
# the system python: a python3 first in root's PATH (pyenv shims) may not be usable by other uids
HG_PY=/usr/bin/python3
[ -x "$HG_PY" ] || HG_PY=$(command -v python3)

ACT_DIR=$HG_TMP/act/out
mkdir -p "$ACT_DIR" && chmod 0755 "$HG_TMP/act" && chmod 1777 "$ACT_DIR"

act_fifos() {
	rm -f "$HG_TMP/act/$1.in" "$HG_TMP/act/$1.out"
	mkfifo -m 0666 "$HG_TMP/act/$1.in" "$HG_TMP/act/$1.out"
}

act_attach() {	# act_attach NAME: open the test's ends of NAME's fifos
	local fi fo
	exec {fi}>"$HG_TMP/act/$1.in" {fo}<"$HG_TMP/act/$1.out"
	ACT_IN[$1]=$fi
	ACT_OUT[$1]=$fo
}

act_start() {
	local n=$1 u=$2 g=$3 grp=${4:-} gopt=--clear-groups
	[ -n "$grp" ] && gopt=--groups=$grp
	act_fifos "$n"
	# double fork: the actor is reparented away from the test shell
	( setpriv --reuid="$u" --regid="$g" "$gopt" -- "$HG_PY" "$HG_FDCTL" \
		<"$HG_TMP/act/$n.in" >"$HG_TMP/act/$n.out" 2>>"$HG_TMP/act/$n.err" &
	  echo $! >"$HG_TMP/act/$n.pid" )
	HG_BG_PIDS="$HG_BG_PIDS $(cat "$HG_TMP/act/$n.pid")"
	act_attach "$n"
}

act() {
	local n=$1 line
	shift
	echo "$*" >&"${ACT_IN[$n]}" 2>/dev/null || { echo "dead"; return; }
	if read -r -t 30 line <&"${ACT_OUT[$n]}"; then
		echo "$line"
	else
		echo "timeout"
	fi
}

act_fork() {
	local pid
	act_fifos "$2"
	pid=$(act "$1" fork "$HG_TMP/act/$2.in" "$HG_TMP/act/$2.out")
	case $pid in
	"ok "*) HG_BG_PIDS="$HG_BG_PIDS ${pid#ok }" ;;
	*) diag "act_fork $1 $2: $pid"; return 1 ;;
	esac
	act_attach "$2"
}

act_stop() {
	[ -n "${ACT_IN[$1]:-}" ] || return 0
	local fi=${ACT_IN[$1]} fo=${ACT_OUT[$1]}
	act "$1" exit >/dev/null
	exec {fi}>&- {fo}<&-
	unset "ACT_IN[$1]" "ACT_OUT[$1]"
}
