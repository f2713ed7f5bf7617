#!/bin/sh
# run.sh - run every libFuzzer harness built in DIR for SECONDS each (`make fuzz`), one after
# the other (the machine's cores are shared), and fail if any of them finds a crash, leak,
# sanitizer report, timeout or differential mismatch.
#
# Usage: sh tests/fuzz/run.sh DIR SECONDS [SHARED]
# Each harness keeps its corpus in DIR/corpus-NAME (grows across runs) and is seeded from the
# matching files of SHARED/testdata/pdq-formats and from small images made by the build's
# tests/tools (mkjpeg 64x48, jpegxf), with the magic the harness itself adds stripped.  Image
# inputs are capped at 100 kB (large seeds are cut: more runs, and cut files are worth
# fuzzing).  Its log is DIR/NAME.log; one summary line per harness is printed.
set -u
dir=$1 secs=$2 shared=${3:-}
# libFuzzer takes -max_total_time=0 as "no limit": refuse it
case $secs in '' | *[!0-9]* | 0) echo "run.sh: SECONDS must be a whole number > 0" >&2; exit 2 ;; esac
src=$shared/testdata/pdq-formats
tools=$(dirname "$dir")/tests/tools
small=$dir/small-seeds
rm -rf "$small"
mkdir -p "$small"
if [ -x "$tools/mkjpeg" ] && [ -x "$tools/jpegxf" ]; then
	"$tools/mkjpeg" "$small/s.jpg" 64 48 5 >/dev/null 2>&1
	for f in png webp gif bmp; do
		"$tools/jpegxf" "$small/s.jpg" "$small/s.$f" "$f" >/dev/null 2>&1
	done
fi
fail=0
for h in "$dir"/fuzz-*; do
	[ -x "$h" ] && [ -f "$h" ] || continue
	name=${h##*/fuzz-}
	corpus=$dir/corpus-$name seeds=$dir/seeds-$name log=$dir/$name.log
	rm -rf "$seeds"
	mkdir -p "$corpus" "$seeds"
	strip=0 glob= max=
	case $name in
	jpeg-pdq) glob='*.jpg' ;;
	png-pdq) glob='*.png' ;;
	webp-pdq) glob='*.webp' strip=12 ;;
	gif-pdq) glob='*.gif' strip=6 ;;
	bmp-pdq) glob='*.bmp' strip=2 ;;
	esac
	if [ -n "$glob" ]; then
		max=-max_len=100000
		for f in "$src"/$glob "$small"/$glob; do
			[ -f "$f" ] && tail -c +$((strip + 1)) "$f" >"$seeds/${f##*/}"
		done
	fi
	# findings (crash-*, slow-unit-*, ...) go to DIR, not the current directory
	nice "$h" -max_total_time="$secs" -timeout=20 -rss_limit_mb=2560 -print_final_stats=1 \
		-artifact_prefix="$dir/" $max "$corpus" "$seeds" >"$log" 2>&1
	rc=$?
	runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
	cov=$(grep -o 'cov: [0-9]*' "$log" | tail -n 1)
	if [ $rc -ne 0 ]; then
		echo "fuzz-$name: FAILED (exit $rc) after ${runs:-?} runs; see $log"
		grep -E 'ERROR|SUMMARY|Test unit written' "$log" | head -n 5
		fail=1
	else
		echo "fuzz-$name: clean, ${runs:-?} runs in ${secs} s, ${cov:-cov: ?}"
	fi
done
exit $fail
