#!/bin/bash
# 07-db-modes.sh - the hash database is confidential and must not be lockable by others: the
# database and its -wal/-shm are created root:hashgate 0640 (0600 when the system has no
# 'hashgate' group), files left world-readable by older versions are tightened when root opens
# them, an unprivileged user gets a clear "permission denied" naming the group, and cannot hold
# a read lock on the WAL index that would make `hashgate db import` fail "database is locked".
# No mount needed.
. "$(dirname "$0")/lib.sh"
[ -x "$HG_CLI" ] || skip_all "no hashgate binary in HASHGATE_BUILD=$HG_BUILD"
PY=/usr/bin/python3	# the system one: other uids cannot run a per-user install
[ -x "$PY" ] || skip_all "$PY is not installed"

HG_TMP=$(mktemp -d /tmp/hg-db-modes.XXXXXX) || bail "mktemp failed"
trap hg_cleanup EXIT
chmod 0755 "$HG_TMP"			# like /var/lib: others may traverse
S=$HG_TMP/state				# a world-traversable state dir, as 0.1.0 shipped
mkdir -m 0755 "$S"
DB=$S/hashes.db
printf 'db = %s\naudit_log = %s/audit.log\n' "$DB" "$HG_TMP" >"$HG_TMP/hashgate.conf"
export HASHGATE_CONFIG=$HG_TMP/hashgate.conf
H() { "$HG_CLI" "$@"; }
head -c 3000 /dev/urandom | sha256sum | cut -d' ' -f1 >"$HG_TMP/l1"
head -c 3000 /dev/urandom | sha256sum | cut -d' ' -f1 >"$HG_TMP/l2"

if getent group hashgate >/dev/null; then
	WANT=640 WGRP=hashgate
else
	WANT=600 WGRP=$(id -gn)
fi
modes() { for f in "$DB" "$DB-wal" "$DB-shm"; do stat -c '%a %U:%G' "$f"; done | sort -u; }

plan 13

ok "db init creates the database" H db init
ok "import works" H db import --list l1 --category illegal --type sha256 "$HG_TMP/l1"
is "$(modes)" "$WANT root:$WGRP" "database, -wal and -shm are $WANT root:$WGRP"

# A new directory made by db init is not world-accessible.
printf 'db = %s/new/hashes.db\naudit_log = %s/audit.log\n' "$HG_TMP" "$HG_TMP" >"$HG_TMP/c2"
ok "db init in a new directory" H --config "$HG_TMP/c2" db init
if [ "$WANT" = 640 ]; then W2="750 root:hashgate"; else W2="700 root:root"; fi
is "$(stat -c '%a %U:%G' "$HG_TMP/new")" "$W2" "the new directory is $W2"

# Files an older version left 0644: tightened by the next root open (import and read alike).
chmod 0644 "$DB" "$DB-wal" "$DB-shm"
ok "import on world-readable files works" \
	H db import --list l2 --category illegal --type sha256 "$HG_TMP/l2"
is "$(modes)" "$WANT root:$WGRP" "import tightened them to $WANT"
chmod 0644 "$DB" "$DB-wal" "$DB-shm"
H db lists >/dev/null
is "$(modes)" "$WANT root:$WGRP" "a read command run by root tightens them too"

# An unprivileged user: no lists, and a clear message.
hg_run hg_as 4242 4242 "$HG_CLI" db lists; rc=$?
is "$rc" 2 "uid 4242 cannot read the lists (exit 2)"
ok "the error names the group" grep -q "readable only by root and members of the group 'hashgate'" <<<"$HG_OUT"
nok "uid 4242 cannot open the -shm file" hg_as 4242 4242 sh -c "exec 3<'$DB-shm'" 2>/dev/null

# The attack: hold a shared lock on the WAL write-lock byte of -shm as an unprivileged user.
# Before the fix this made every import fail "database is locked" after the busy timeout.
hg_as 4242 4242 "$PY" - "$DB-shm" <<'EOF' >"$HG_TMP/locked" 2>/dev/null &
import fcntl, os, sys, time
try:
    f = open(sys.argv[1], 'rb')
    fcntl.lockf(f, fcntl.LOCK_SH | fcntl.LOCK_NB, 8, 120)	# WAL_WRITE_LOCK .. read marks
    print("locked", flush=True)
except OSError:
    sys.exit(1)
time.sleep(30)
EOF
HG_BG_PIDS="$HG_BG_PIDS $!"
sleep 0.5
nok "uid 4242 could not take a lock on -shm" grep -q locked "$HG_TMP/locked"
head -c 3000 /dev/urandom | sha256sum | cut -d' ' -f1 >"$HG_TMP/l3"
ok "db import is not blocked by another user" \
	H db import --list l3 --category illegal --type sha256 "$HG_TMP/l3"
done_testing
