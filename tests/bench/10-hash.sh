#!/bin/sh
# 10-hash.sh - hashing engine figures: MB/s of the streaming MD5/SHA-1/SHA-256 against
# `openssl speed -evp` measured in the same run (same library, so the ratio shows our
# overhead); struct hasher's fused SHA-NI pass against its OpenSSL EVP path in the same run
# (µs per 4 KiB and 64 KiB file including init and final, per MiB streamed); ms per JPEG for PDQ: bit-exact pipeline, TurboJPEG full decode alone (the
# floor the exact pipeline cannot beat), and the optional scaled decode with its PDQ distance.
# Images: generated 640x480 and 4032x3024 (12 MP) JPEGs, plus the shared 12 MP phone photos
# when $HASHGATE_SHARED has them.  Target from issue 3: 12 MP well under ~34 ms.  Then ms per
# image of the other formats: the 12 MP picture as PNG, lossy WebP, GIF and BMP (written by
# tests/tools/jpegxf) beside the same picture as JPEG.
# Takes about a minute.
set -eu
B=$HASHGATE_BUILD/tests/bench/bench-hash
MK=$HASHGATE_BUILD/tests/tools/mkjpeg
XF=$HASHGATE_BUILD/tests/tools/jpegxf
[ -x "$B" ] && [ -x "$MK" ] || { echo "10-hash: build first (bench-hash, mkjpeg)"; exit 1; }
command -v openssl >/dev/null || { echo "10-hash: openssl not installed (make deps)"; exit 1; }
T=$(mktemp -d /tmp/hg-bench-hash.XXXXXX)
trap 'rm -rf "$T"' EXIT

echo "--- streaming hashes, 256 MiB in 1 MiB updates (MB = 10^6 bytes; CPU time, like openssl speed)"
echo "    command: bench-hash stream 256; openssl speed -evp ALGO -bytes 1048576 -seconds 2"
"$B" stream 256 >"$T/stream"
printf '%-8s %12s %12s %8s\n' algo "hashgate" "openssl" ratio
for a in md5 sha1 sha256; do
	ours=$(awk -v a="$a" '$2 == a { print $3 }' "$T/stream")
	# last line: "md5  741343.23k" = thousands of bytes per second
	ref=$(openssl speed -evp "$a" -bytes 1048576 -seconds 2 2>/dev/null | tail -n 1 |
		awk '{ v = $NF; sub(/k$/, "", v); printf "%.1f", v / 1000 }')
	printf '%-8s %9s MB/s %7s MB/s %8s\n' "$a" "$ours" "$ref" \
		"$(echo "$ours $ref" | awk '{ printf "%.2f", $1 / $2 }')"
done
all=$(awk '$2 == "all3" { print $3 }' "$T/stream")
impl=$(awk '$2 == "impl" { print $3 }' "$T/stream")
echo "all three at once: $all MB/s (each byte through md5+sha1+sha256); implementation: $impl"

echo
echo "--- struct hasher: fused SHA-NI pass vs OpenSSL EVP, same run (CPU µs, min of 30 batches)"
echo "    command: bench-hash impl 30"
if "$B" impl 30 >"$T/impl" 2>"$T/impl.err"; then
	printf '%-12s %-5s %12s %12s %7s %14s\n' algos size "sha-ni µs" "evp µs" ratio "sha-ni MB/s"
	awk '{ u = $3 == "1m" ? "/MiB" : "/file"
		printf "%-12s %-5s %7.2f%-5s %7.2f%-5s %6.2fx %14.0f\n", $2, $3, $5, u, $6, u, $6 / $5,
			$4 / $5 }' "$T/impl"
	echo "4k, 64k: init + one update + final per file (what a small upload costs); 1m: 1 MiB"
	echo "updates streamed through one hasher.  ratio = evp / sha-ni (above 1: fused is faster)."
else
	cat "$T/impl.err"
fi

echo
echo "--- PDQ per JPEG (ms; min and median of 15 runs; machine load: $(cut -d' ' -f1-3 /proc/loadavg))"
echo "    command: bench-hash pdq 15 FILE..."
"$MK" "$T/small-640x480.jpg" 640 480 1
"$MK" "$T/gen12mp-a.jpg" 4032 3024 2
"$MK" "$T/gen12mp-b.jpg" 4032 3024 3 95
set -- "$T/small-640x480.jpg" "$T/gen12mp-a.jpg" "$T/gen12mp-b.jpg"
X=${HASHGATE_SHARED:-}/testdata/pdq/images/reg-test-input/exif-rotn
[ -f "$X/exif-rotn-1.jpg" ] && set -- "$@" "$X/exif-rotn-1.jpg" "$X/exif-rotn-6.jpg"
"$B" pdq 15 "$@" >"$T/pdq"
printf '%-17s %-9s | %-22s | %-13s | %-17s | %-12s | %s\n' "" "" \
	"default: wall, cpu" "old: full" "decode   coefs" "scaled" ""
printf '%-17s %-9s | %6s %6s %8s | %6s %6s | %8s %8s | %7s %4s | %s\n' image size \
	min med med min med only read min dist med/34
awk '{
	n = $2; sub(/.*\//, "", n)
	printf "%-17s %-9s | %6.2f %6.2f %8.2f | %6.2f %6.2f | %8.2f %8.2f | %7.2f %4d | %.2f\n",
		n, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $5 / 34
}' "$T/pdq"
echo "default = the bit-exact image_pdq_jpeg: from 2 MP jpegfast.c reconstructs only the"
echo "  512x512 sampled pixels from its own Huffman decode split over two threads; wall ms (min,"
echo "  median) and CPU ms of both threads (median).  old: full = IMAGE_FULL_DECODE (libjpeg"
echo "  full decode, rows streamed, one thread, thread CPU ms).  decode ="
echo "  tjDecompress2 full size into a reused buffer, no PDQ.  coefs = libjpeg's"
echo "  jpeg_read_coefficients (the Huffman decode alone, one thread).  scaled ="
echo "  IMAGE_SCALED_DECODE (opt-in, not exact), dist = its PDQ distance from the exact hash."
echo "  med/34 = default wall median / 34 ms."
echo "Target: 12 MP well under ~34 ms (the reference's in-process figure).  Wall times include"
echo "whatever else runs on the machine (load above); the CPU columns are less affected."
awk '$3 ~ /^4032x/ { n++; s += $5; sm += $4; if ($5 < 34) u++ }
	END { if (n) printf "12 MP exact: mean of wall medians %.1f ms (of mins %.1f); %d of %d medians under 34 ms\n", s / n, sm / n, u, n }' \
	"$T/pdq"

echo
echo "--- PDQ per image by format, 12 MP (4032x3024; ms, min and median of 7 runs, CPU median)"
echo "    command: jpegxf gen12mp-a.jpg OUT png|webp|gif|bmp; bench-hash img 7 FILE..."
if [ -x "$XF" ]; then
	for f in png webp gif bmp; do
		"$XF" "$T/gen12mp-a.jpg" "$T/gen12mp-a.$f" "$f"
	done
	"$B" img 7 "$T/gen12mp-a.jpg" "$T/gen12mp-a.png" "$T/gen12mp-a.webp" \
		"$T/gen12mp-a.gif" "$T/gen12mp-a.bmp" >"$T/img"
	printf '%-6s %-10s %9s | %8s %8s %8s\n' format size "file MB" "wall min" "med" "cpu med"
	awk '{ printf "%-6s %-10s %9.1f | %8.1f %8.1f %8.1f\n", $3, $4, $5 / 1e6, $6, $7, $8 }' "$T/img"
	echo "jpeg = the default path above (jpegfast, two threads); png = libpng (row at a time),"
	echo "webp = libwebp lossy q80 (whole image), gif = giflib (3-3-2 palette, row at a time),"
	echo "bmp = hashgate's reader (row at a time); all from memory, decode to PDQ."
else
	echo "(jpegxf not built: skipped)"
fi
