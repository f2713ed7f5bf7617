#!/bin/bash
# 87-bigdir.sh - a directory with 100k entries: readdir through the mount returns every name
# exactly once (across many getdents calls), names created and removed through the mount while
# it is that large show up correctly, and a listing while files are added does not lose or
# duplicate the unchanged entries.  HASHGATE_LONG=1 uses 300k entries.
. "$(dirname "$0")/lib.sh"
hg_setup
M=$HG_MNT B=$HG_BACK W=$HG_TMP/w
N=100000
[ -n "${HASHGATE_LONG:-}" ] && N=300000
python3 - "$B/big" "$N" <<'PY' || bail "could not create the entries"
import os, sys
d, n = sys.argv[1], int(sys.argv[2])
os.makedirs(d)
for i in range(n):
    os.close(os.open(f"{d}/entry-{i:07d}-{'x' * (i % 40)}", os.O_CREAT | os.O_WRONLY, 0o644))
PY
hg_mount || bail "mount failed"
cat >"$W/list.py" <<'PY'
import os, sys
names = os.listdir(sys.argv[1])
print(len(names), len(set(names)))
PY
start=$SECONDS
read -r n uniq < <(python3 "$W/list.py" "$M/big")
diag "listing $N entries took $((SECONDS - start)) s"
is "$n" "$N" "readdir through the mount returns all $N entries"
is "$uniq" "$N" "... each exactly once"
ok "the names are the backing dir's names" \
	bash -c "diff <(ls -f '$M/big' | grep -v '^\.\.\?\$' | sort) <(ls -f '$B/big' | grep -v '^\.\.\?\$' | sort) >/dev/null"
is "$(find "$M/big" -mindepth 1 | wc -l)" "$N" "find agrees"
ok "create three files through the mount" bash -c "for i in 1 2 3; do echo \$i >\"$M/big/new-\$i\" || exit 1; done"
ok "remove one old entry through the mount" rm "$M/big/entry-0000000-"
read -r n uniq < <(python3 "$W/list.py" "$M/big")
is "$n/$uniq" "$((N + 2))/$((N + 2))" "the listing reflects them"
# A listing running while files are added: every entry that existed throughout must be listed once.
( for i in $(seq 1 300); do echo "$i" >"$M/big/during-$i"; done ) &
adder=$!
python3 - "$M/big" <<'PY' >"$W/during"
import os, sys
print("\n".join(os.listdir(sys.argv[1])))
PY
wait "$adder"
stable=$(grep -c '^entry-' "$W/during")
is "$stable" "$((N - 1))" "a listing concurrent with creates still has every old entry"
is "$(grep '^entry-' "$W/during" | sort | uniq -d | wc -l)" 0 "... and no duplicates"
ok "stat of a name deep in the listing works" stat "$M/big/entry-$(printf %07d $((N - 1)))-$(printf 'x%.0s' $(seq 1 $(( (N - 1) % 40 ))))"
hg_umount
done_testing
