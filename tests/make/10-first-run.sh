#!/usr/bin/env bash
# 10-first-run.sh - the first `make demo` / `make check` on a machine without the build
# dependencies, and plain `make` there (issue 13).
#
# A fresh machine is simulated on PATH: dpkg-query says no package is installed and pkg-config
# fails until the fake apt-get has "installed" them (it creates $T/installed); afterwards
# pkg-config reports a marker include dir.  The compiler is a recorder that fails, so make
# stops at the first compile.  What users rely on:
#   - `make demo` / `make check` run deps.sh (apt-get update, then install) before compiling,
#     and the first compile already has the flags pkg-config gives once the packages are in
#     (the old Makefile read them before deps and compiled without them);
#   - `make lint` and `make fuzz` likewise: their first compiler run (clang-tidy, clang) has
#     the installed packages' flags;
#   - plain `make` compiles nothing and names the missing packages and `make deps`.
# Runs make on this source tree with BUILD in a scratch dir; needs root (deps.sh only installs
# as root) and nothing else.  Invariant: no real package is installed and the tree's own build
# dir is untouched.
. "$(dirname "$0")/../mount/lib.sh"

[ "$(id -u)" -eq 0 ] || skip_all "deps.sh installs only as root"
command -v make >/dev/null || skip_all "make not installed"

T=$(mktemp -d /tmp/hashgate-make.XXXXXX)
trap 'rm -rf "$T"' EXIT
HG_TMP=$T
mkdir "$T/bin"

cat >"$T/bin/dpkg-query" <<EOF
#!/bin/sh
[ -e "$T/installed" ] || exit 1
printf 'ii '
EOF
cat >"$T/bin/apt-get" <<EOF
#!/bin/sh
echo "apt-get \$*" >>"$T/apt.log"
case " \$* " in *" install "*) touch "$T/installed" ;; esac
EOF
cat >"$T/bin/pkg-config" <<EOF
#!/bin/sh
[ -e "$T/installed" ] || exit 1
case " \$* " in
*" --cflags "*) echo "-I$T/fakeinc" ;;
*" --libs "*) echo "-lfake" ;;
esac
EOF
cat >"$T/bin/cc" <<EOF
#!/bin/sh
echo "cc \$*" >>"$T/cc.log"
exit 1
EOF
# the linters: cppcheck passes (it takes no pkg-config flags), clang-tidy records like cc
cat >"$T/bin/cppcheck" <<EOF
#!/bin/sh
exit 0
EOF
cat >"$T/bin/clang-tidy" <<EOF
#!/bin/sh
echo "clang-tidy \$*" >>"$T/cc.log"
exit 1
EOF
chmod +x "$T/bin/"*

# One make on the source tree as if typed on the fresh machine: none of the make running this
# test leaks in (its MAKEFLAGS would carry its own BUILD and jobserver).
fresh_make() {
	rm -f "$T/installed" "$T/apt.log" "$T/cc.log"
	rm -rf "$T/build"
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES PATH="$T/bin:$PATH" \
		make -C "$HG_SRC" --no-print-directory BUILD="$T/build" CC="$T/bin/cc" \
		PKG_CONFIG="$T/bin/pkg-config" "$@" >"$T/make.out" 2>&1
}

first_compile() { head -n 1 "$T/cc.log" 2>/dev/null; }

for goal in demo check; do
	fresh_make "$goal"
	is "$(cat "$T/apt.log" 2>/dev/null | cut -d' ' -f1-2 | tr '\n' ' ')" \
		"apt-get update apt-get install " "make $goal: deps.sh updates the lists, then installs" ||
		diag "$(cat "$T/make.out")"
	case "$(first_compile)" in
	*" -I$T/fakeinc "*) hg_result 1 "make $goal: the first compile has the flags of the installed packages" ;;
	*) hg_result 0 "make $goal: the first compile has the flags of the installed packages"
	   diag "first compile: $(first_compile)" "$(cat "$T/make.out")" ;;
	esac
done

for goal in lint fuzz; do
	fresh_make "$goal" FUZZ_CC="$T/bin/cc" FUZZ_SECONDS=0
	case "$(cat "$T/apt.log" 2>/dev/null | cut -d' ' -f1-2 | tr '\n' ' ')" in
	"apt-get update apt-get install ") hg_result 1 "make $goal: deps.sh installs first" ;;
	*) hg_result 0 "make $goal: deps.sh installs first"; diag "$(cat "$T/make.out")" ;;
	esac
	case "$(first_compile) " in
	*" -I$T/fakeinc "*) hg_result 1 "make $goal: the first compile has the flags of the installed packages" ;;
	*) hg_result 0 "make $goal: the first compile has the flags of the installed packages"
	   diag "first compile: $(first_compile)" "$(cat "$T/make.out")" ;;
	esac
done

fresh_make
rc=$?
is "$([ $rc -ne 0 ] && echo failed)" failed "plain make without the dependencies fails"
is "$(first_compile)" "" "plain make compiles nothing without the dependencies"
out=$(cat "$T/make.out")
for want in libfuse3-dev libturbojpeg0-dev "make deps"; do
	case "$out" in
	*"$want"*) hg_result 1 "plain make's message names '$want'" ;;
	*) hg_result 0 "plain make's message names '$want'"; diag "$out" ;;
	esac
done
is "$(cat "$T/apt.log" 2>/dev/null)" "" "plain make installs nothing"

done_testing
