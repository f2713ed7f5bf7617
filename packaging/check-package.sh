#!/bin/sh
# check-package.sh PKGDIR VERSION - the checks of `make package-check` on packages already built
# by `make deb` (into PKGDIR) and `make rpm` (into PKGDIR/rpm-side).
#
# Fails on: a lintian error or warning other than the missing ITP, a file missing from the
# .deb or the .rpm, a binary without the hardening flags, a man page groff warns about, a unit
# systemd-analyze rejects, or a failure of the autopkgtest upload test run against the unpacked
# .deb (skipped, and said so, when not root or /dev/fuse is unusable).
# AUTOPKGTEST=1 also runs the real `autopkgtest -- null`, which installs the package on this
# machine and purges it afterwards.
set -u

pkgdir=${1:?usage: check-package.sh PKGDIR VERSION}
version=${2:?usage: check-package.sh PKGDIR VERSION}
src=$pkgdir/hashgate-$version
root=$pkgdir/root
failed=0
n=0

pass() { n=$((n + 1)); echo "ok $n - $*"; }
fail() { n=$((n + 1)); echo "not ok $n - $*"; failed=$((failed + 1)); }
check() {	# check DESC CMD...
	d=$1
	shift
	if out=$("$@" 2>&1); then pass "$d"; else fail "$d"; printf '%s\n' "$out" | sed 's/^/#   /'; fi
}

deb=$(ls "$pkgdir"/hashgate_"$version"-*_*.deb 2>/dev/null | head -n 1)
changes=$(ls "$pkgdir"/hashgate_"$version"-*_*.changes 2>/dev/null | head -n 1)
rpm=$(ls "$pkgdir"/rpm-side/rpmbuild/RPMS/*/hashgate-"$version"-*.rpm 2>/dev/null | head -n 1)
[ -n "$deb" ] && [ -n "$changes" ] || { echo "Bail out! no .deb/.changes in $pkgdir"; exit 1; }

echo "# deb: $deb"
check "debian/changelog version is $version-*" \
	sh -c "dpkg-parsechangelog -l '$src/debian/changelog' -S Version | grep -qx '$version-[0-9.]*'"

# lintian: only the missing ITP (an initial upload that closes no bug) is tolerated.
lintian --fail-on none -I "$changes" >"$pkgdir/lintian.txt" 2>&1
sed 's/^/# lintian: /' "$pkgdir/lintian.txt"
bad=$(grep -E '^[EW]: ' "$pkgdir/lintian.txt" | grep -v ' initial-upload-closes-no-bugs' || true)
if [ -z "$bad" ]; then pass "lintian: no errors or warnings beyond the missing ITP"
else fail "lintian: errors or warnings"; fi

# The source package too (what an archive upload would lint): orig tarball from `make deb`
# plus packaging/debian, in a clean copy.
orig=$pkgdir/hashgate_$version.orig.tar.gz
if [ -f "$orig" ]; then
	rm -rf "$pkgdir/srccheck"
	mkdir -p "$pkgdir/srccheck"
	tar -C "$pkgdir/srccheck" -xzf "$orig"
	cp "$orig" "$pkgdir/srccheck/"
	cp -r "$src/packaging/debian" "$pkgdir/srccheck/hashgate-$version/debian"
	(cd "$pkgdir/srccheck" && dpkg-source -b "hashgate-$version") >"$pkgdir/srccheck.log" 2>&1
	dsc=$(ls "$pkgdir"/srccheck/hashgate_"$version"-*.dsc 2>/dev/null | head -n 1)
	if [ -n "$dsc" ]; then
		pass "source package builds (dpkg-source -b)"
		lintian --fail-on none -I "$dsc" >"$pkgdir/lintian-source.txt" 2>&1
		sed 's/^/# lintian (source): /' "$pkgdir/lintian-source.txt"
		if grep -qE '^[EW]: ' "$pkgdir/lintian-source.txt"; then fail "lintian (source): errors or warnings"
		else pass "lintian (source): no errors or warnings"; fi
	else
		fail "source package builds (dpkg-source -b)"
		sed 's/^/#   /' "$pkgdir/srccheck.log"
	fi
fi

rm -rf "$root"
dpkg-deb -x "$deb" "$root"
for f in usr/bin/hashgatefs usr/bin/hashgate etc/hashgate/hashgate.conf \
	lib/systemd/system/hashgatefs@.service lib/systemd/system/hashgate-purge.service \
	lib/systemd/system/hashgate-purge.timer usr/libexec/hashgate/hashgatefs-unmount \
	lib/systemd/system/hashgate-feeds.service lib/systemd/system/hashgate-feeds.timer \
	etc/hashgate/feeds.d usr/share/doc/hashgate/examples/hooks/webhook.sh \
	usr/share/doc/hashgate/examples/hooks/mail-admin.sh \
	usr/share/bash-completion/completions/hashgate usr/share/bash-completion/completions/hashgatefs \
	usr/share/man/man8/hashgatefs.8.gz usr/share/man/man8/hashgate.8.gz \
	usr/share/man/man5/hashgate.conf.5.gz usr/share/doc/hashgate/copyright \
	usr/share/doc/hashgate/README.Debian usr/share/doc/hashgate/examples/mount.env.example \
	usr/share/doc/hashgate/examples/hashgate-bind.conf usr/lib/sysusers.d/hashgate.conf; do
	check "deb ships /$f" test -e "$root/$f"
done
check "deb ships /var/lib/hashgate but not the quarantine (postinst makes it 0700)" \
	sh -c "test -d '$root/var/lib/hashgate' && ! test -e '$root/var/lib/hashgate/quarantine'"
check "hashgate.conf is a conffile" \
	sh -c "dpkg-deb -I '$deb' conffiles | grep -qx /etc/hashgate/hashgate.conf"
check "the quarantine key is not shipped (generated per machine)" \
	test ! -e "$root/etc/hashgate/quarantine.key"
for b in hashgatefs hashgate; do
	check "$b: hardening (PIE, stack protector, fortify, RELRO, BIND_NOW)" \
		hardening-check --nocfprotection "$root/usr/bin/$b"
	check "$b: not stripped of its build-id debug link (dbgsym built)" \
		sh -c "ls '$pkgdir'/hashgate-dbgsym_*.deb"
done
# hashgate reads the config before it looks the command up: 64 (unknown command) means the
# file loaded, 2 means it was rejected.
check "the packaged hashgate accepts the packaged config" \
	sh -c "'$root/usr/bin/hashgate' --config '$root/etc/hashgate/hashgate.conf' no-such-command 2>/dev/null; test \$? -eq 64"
check "bash completion parses" bash -n "$root/usr/share/bash-completion/completions/hashgate"

for m in "$root"/usr/share/man/man*/*.gz; do
	name=$(basename "$m")
	# man -l with warnings on: groff complains about bad requests, escapes and fonts.
	check "man page $name renders without groff warnings" \
		sh -c "out=\$(MANWIDTH=80 man --warnings=w -l '$m' 2>&1 >/dev/null); [ -z \"\$out\" ] || { echo \"\$out\"; exit 1; }"
	check "man page $name has a NAME section lexgrog reads" lexgrog "$m"
done

# systemd-analyze verify inside the unpacked root (so ExecStart paths are checked against the
# package); the root has no targets, /bin/kill or /bin/sh: the only noise filtered out.
if command -v systemd-analyze >/dev/null; then
	u=$root/lib/systemd/system
	cp "$u/hashgatefs@.service" "$u/hashgatefs@check.service"
	# The drop-in example, applied as documented to a service that writes customer files.
	mkdir -p "$root/etc/systemd/system/hg-writer.service.d"
	printf '[Service]\nExecStart=/usr/bin/hashgate --version\n' >"$u/hg-writer.service"
	sed 's/NAME/check/g' "$root/usr/share/doc/hashgate/examples/hashgate-bind.conf" \
		>"$root/etc/systemd/system/hg-writer.service.d/hashgate.conf"
	out=$(systemd-analyze verify --man=no --root="$root" /lib/systemd/system/hashgatefs@check.service \
		/lib/systemd/system/hashgate-purge.service /lib/systemd/system/hashgate-purge.timer \
		/lib/systemd/system/hashgate-feeds.service /lib/systemd/system/hashgate-feeds.timer \
		/lib/systemd/system/hg-writer.service 2>&1 |
		grep -v -e 'Failed to create .*/start: Unit .*\.target not found' \
			-e 'Command /bin/kill is not executable' -e 'Command /bin/sh is not executable')
	rm -rf "$u/hashgatefs@check.service" "$u/hg-writer.service" "$root/etc/systemd/system/hg-writer.service.d"
	check "the drop-in example binds to hashgatefs@NAME (BindsTo, After, PartOf)" sh -c "
		grep -qx 'BindsTo=hashgatefs@NAME.service' '$root/usr/share/doc/hashgate/examples/hashgate-bind.conf' &&
		grep -qx 'After=hashgatefs@NAME.service' '$root/usr/share/doc/hashgate/examples/hashgate-bind.conf'"
	if [ -z "$out" ]; then pass "systemd-analyze verify: the three units and a service with the drop-in"
	else fail "systemd-analyze verify"; printf '%s\n' "$out" | sed 's/^/#   /'; fi
else
	echo "ok $((n = n + 1)) # SKIP systemd-analyze is not installed (package systemd)"
fi

# The autopkgtest's own upload test, against the unpacked binaries.
if [ "$(id -u)" -ne 0 ] || ! { exec 9<>/dev/fuse; } 2>/dev/null; then
	echo "ok $((n = n + 1)) # SKIP upload test: needs root and a usable /dev/fuse"
else
	exec 9>&-
	check "autopkgtest upload-quarantine against the unpacked .deb" \
		env PATH="$root/usr/bin:$PATH" sh "$src/debian/tests/upload-quarantine"
fi

# The real thing: installs the package on this machine, runs debian/tests, then purges it and
# checks what purge must keep.  Refused where hashgate is installed or has left state behind,
# so a real installation (and its evidence) is never touched.
if [ "${AUTOPKGTEST:-0}" = 1 ]; then
	if dpkg -s hashgate >/dev/null 2>&1 || [ -e /etc/hashgate ] || [ -e /var/lib/hashgate ]; then
		fail "autopkgtest -- null: hashgate is installed or /etc/hashgate, /var/lib/hashgate exist; not touching them"
	else
		check "autopkgtest -- null (installs hashgate, runs debian/tests)" \
			autopkgtest "$deb" "$src" -- null
		check "postinst made /var/lib/hashgate/quarantine root-only (0700)" \
			sh -c "stat -c '%a %U' /var/lib/hashgate/quarantine | grep -qx '700 root'"
		check "postinst made a 64-hex-digit quarantine key, mode 0600" \
			sh -c "stat -c %a /etc/hashgate/quarantine.key | grep -qx 600 && tr -d '\\n' </etc/hashgate/quarantine.key | grep -Eqx '[0-9a-f]{64}'"
		dpkg --purge hashgate >"$pkgdir/purge.txt" 2>&1
		sed 's/^/# purge: /' "$pkgdir/purge.txt"
		check "purge keeps the quarantine and its key, and says so" \
			sh -c "test -d /var/lib/hashgate/quarantine && test -f /etc/hashgate/quarantine.key && grep -q 'keeps the quarantine' '$pkgdir/purge.txt'"
		check "purge removes the conffile" test ! -e /etc/hashgate/hashgate.conf
		# What is left is this test's own, made moments ago: remove it.
		rm -rf /etc/hashgate /var/lib/hashgate
	fi
fi

if [ -n "$rpm" ]; then
	echo "# rpm: $rpm"
	rpm -qlp "$rpm" >"$pkgdir/rpm-files.txt" 2>/dev/null
	for f in /usr/bin/hashgatefs /usr/bin/hashgate /etc/hashgate/hashgate.conf \
		/usr/lib/systemd/system/hashgatefs@.service /usr/lib/systemd/system/hashgate-purge.timer \
		/usr/lib/systemd/system/hashgate-feeds.timer /var/lib/hashgate/quarantine /usr/lib/sysusers.d/hashgate.conf; do
		check "rpm ships $f" grep -qx "$f" "$pkgdir/rpm-files.txt"
	done
	check "rpm ships the man pages" \
		sh -c "grep -c '^/usr/share/man/man[58]/hashgate.*\\.[58]' '$pkgdir/rpm-files.txt' | grep -qx 3"
	check "rpm marks hashgate.conf %config(noreplace)" \
		sh -c "rpm -qp --qf '[%{FILENAMES} %{FILEFLAGS:fflags}\n]' '$rpm' | grep -qx '/etc/hashgate/hashgate.conf cn'"
	check "rpm quarantine directory is 0700" \
		sh -c "rpm -qp --qf '[%{FILEMODES:perms} %{FILENAMES}\n]' '$rpm' | grep -qx 'drwx------ /var/lib/hashgate/quarantine'"
else
	fail "no RPM built in $pkgdir/rpm-side"
fi

echo "1..$n"
[ "$failed" -eq 0 ] || { echo "# $failed of $n checks failed"; exit 1; }
echo "# all $n package checks passed"
