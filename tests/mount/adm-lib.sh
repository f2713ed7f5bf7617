# adm-lib.sh - fixture for the admin-tool tests (tests/mount/7N-*.sh) that need no mount:
# a scratch dir, a config, a hash database with generated "known" files, a tree to scan.
# Sourced after lib.sh (TAP helpers, hg_cleanup trap).
#
#	adm_setup		AT (scratch), AT_CONF, AT_DB, AT_Q (store), AT_AUDIT, AT_SCANDB,
#				AT_TREE (empty dir to fill), HG_CLI; exported HASHGATE_CONFIG
#	adm_known FILE SIZE ALGO LIST [CATEGORY]
#				random FILE whose ALGO digest goes into LIST
#	hgc ARGS...		the CLI on the fixture config
#	jnum JSON KEY		the first numeric "KEY":N of a JSON text
# Everything lives under AT (= HG_TMP, removed by lib.sh's EXIT trap).

adm_setup() {
	[ -n "${HASHGATE_BUILD:-}" ] || skip_all "HASHGATE_BUILD is not set (run through make check)"
	[ -x "$HG_CLI" ] || skip_all "CLI binary $HG_CLI is missing (not built yet)"
	HG_TMP=$(mktemp -d /tmp/hg-adm-test.XXXXXX) || bail "mktemp failed"
	trap hg_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
	chmod 0755 "$HG_TMP"
	AT=$HG_TMP
	AT_CONF=$AT/hashgate.conf
	AT_DB=$AT/hashes.db
	AT_Q=$AT/quarantine
	AT_AUDIT=$AT/audit.log
	AT_SCANDB=$AT/scan.db
	AT_TREE=$AT/tree
	mkdir -p "$AT_TREE" "$AT/lists" "$AT/state"
	chmod 0755 "$AT_TREE"
	cat >"$AT_CONF" <<-EOC
	db = $AT_DB
	quarantine = $AT_Q
	quarantine_key = $AT/quarantine.key
	audit_log = $AT_AUDIT
	state_dir = $AT/state
	scan_db = $AT_SCANDB
	EOC
	export HASHGATE_CONFIG=$AT_CONF
	"$HG_CLI" db init >/dev/null || bail "hashgate db init failed"
}

hgc() { "$HG_CLI" --config "$AT_CONF" "$@"; }

# adm_known FILE SIZE ALGO LIST [CATEGORY]: a random file whose digest is in LIST.
adm_known() {
	local f=$1 size=$2 algo=$3 list=$4 cat=${5:-illegal}
	mkdir -p "$(dirname "$f")"
	head -c "$size" /dev/urandom >"$f"
	${algo}sum <"$f" | cut -d' ' -f1 >"$AT/lists/$list.$algo"
	"$HG_CLI" db import --list "$list" --category "$cat" --type "$algo" \
		"$AT/lists/$list.$algo" >/dev/null || bail "import into $list failed"
}

jnum() { printf '%s' "$1" | grep -o "\"$2\":[0-9.]*" | head -n1 | cut -d: -f2; }
