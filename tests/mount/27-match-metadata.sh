#!/bin/bash
# 27-match-metadata.sh - per-row list metadata at the verdict (issue 17): a list row's own
# category overrides its list's (a row marked illegal in a log-only list is quarantined), and the
# daemon's log line, audit record and quarantine record carry the row's id and label, with any
# terminal escapes from the list file escaped.
. "$(dirname "$0")/lib.sh"
hg_setup
echo "on_match.logonly = log" >>"$HG_CONF"
K1=$HG_TMP/known/row-a.bin K2=$HG_TMP/known/row-b.bin
hg_random "$K1" 7001
hg_random "$K2" 7002
ESC=$(printf '\033') CSI=$(printf '\302\233')	# ESC, and the C1 control CSI as UTF-8
printf 'md5,category,id,label\n%s,illegal,R-1,worst %s[31m%s2J\n%s,,R-2,\n' \
	"$(md5sum <"$K1" | cut -d' ' -f1)" "$ESC" "$CSI" "$(md5sum <"$K2" | cut -d' ' -f1)" \
	>"$HG_TMP/rows.csv"
hg_cli db import --list mixed --category logonly "$HG_TMP/rows.csv" >/dev/null ||
	bail "import of rows.csv failed"
hg_mount allow_other || bail "mount failed"
M=$HG_MNT

ok "a row with its own category 'illegal' is refused though its list only logs" \
	hg_refused cp "$K1" "$M/row-a.bin"
ok "... and quarantined" hg_quarantined "row-a.bin"
ok "a row of the same list without a category is only logged (published)" cp "$K2" "$M/row-b.bin"
ok "... under its name" test -f "$HG_BACK/row-b.bin"
rec=$(grep '"path":"row-a.bin"' "$HG_TMP/audit.log")
case $rec in *'"category":"illegal"'*'"ref":"R-1","label":"worst \u001b[31m'*) r=1 ;; *) r=0 ;; esac
hg_result $r "the audit record has the row's category, id and label (escaped)"
[ $r = 1 ] || diag "$rec"
line=$(grep 'row-a.bin' "$HG_LOG")
case $line in *"$ESC"*|*"$CSI"*) r=0 ;; *'ref="R-1" label="worst \x1b[31m\xc2\x9b2J"'*) r=1 ;; *) r=0 ;; esac
hg_result $r "the log line has id and label, ESC and CSI escaped"
[ $r = 1 ] || diag "$line"
out=$(hg_cli quarantine list --json)
case $out in *'"path":"row-a.bin"'*'"ref":"R-1","label":"worst \u001b[31m'*) r=1 ;; *) r=0 ;; esac
hg_result $r "the quarantine record keeps them"
out=$(hg_cli quarantine show 1)
case $out in *"$ESC"*|*"$CSI"*) r=0 ;; *'list row id:  R-1'*'list label:   worst \x1b[31m\xc2\x9b2J'*) r=1 ;; *) r=0 ;; esac
hg_result $r "quarantine show prints them escaped"
hg_umount
done_testing
