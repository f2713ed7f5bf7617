# hashgate: one non-recursive Makefile for libhashdb.a, hashgatefs, hashgate and the tests.
#
# User variables are appended to, never replaced: CC CFLAGS CPPFLAGS LDFLAGS LDLIBS
# PREFIX DESTDIR.  Objects go to $(BUILD) (default build/, build-san/ with SANITIZE) so several
# builds can live side by side: `make BUILD=/tmp/b` builds out of tree.
# Header dependencies come from -MMD -MP; every .c under hashdb/ fs/ tools/ is picked up by
# wildcard, so adding a file needs no Makefile change.
# Invariant: the pkg-config flags below are read when make reads this file, so nothing that
# compiles may run in the same make as `deps` (which may install those very packages): targets
# that install their dependencies first (check demo bench lint fuzz) do their work in a second make,
# started after `deps`, that reads this file again (tests/make/10-first-run.sh holds us to it).

VERSION     := 0.1.0
PREFIX      ?= /usr/local
BINDIR      ?= $(PREFIX)/bin
SBINDIR     ?= $(PREFIX)/sbin
MANDIR      ?= $(PREFIX)/share/man
SYSCONFDIR  ?= /etc
LOCALSTATEDIR ?= /var
LIBEXECDIR  ?= $(PREFIX)/libexec
DATADIR     ?= $(PREFIX)/share
# systemd also reads /usr/local/lib/systemd/system; packages pass their distribution's unit dir.
UNITDIR     ?= $(PREFIX)/lib/systemd/system
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
SYSUSERSDIR ?= $(PREFIX)/lib/sysusers.d
DESTDIR     ?=

CC          ?= cc
CFLAGS      ?= -O2 -g
PKG_CONFIG  ?= pkg-config
PROVE       ?= prove
PROVE_FLAGS ?=
SHARED      ?= $(abspath ../shared)

ifneq ($(SANITIZE),)
BUILD       ?= build-san
SAN_FLAGS   := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
else
BUILD       ?= build
SAN_FLAGS   :=
endif

# Debian packages for these: scripts/deps.sh (group build).
PKGS        := fuse3 libcrypto sqlite3 libjpeg libpng zlib libwebp libwebpdemux libgif
PKG_CFLAGS  := $(shell $(PKG_CONFIG) --cflags $(PKGS) 2>/dev/null)
PKG_LIBS    := $(shell $(PKG_CONFIG) --libs $(PKGS) 2>/dev/null)
# Only the admin CLI (`hashgate feed`) fetches lists: libcurl is linked into hashgate, never
# into the daemon or libhashdb.a (zlib is in PKGS: the library reads .gz list files).
CLI_PKGS    := libcurl zlib
CLI_CFLAGS  := $(shell $(PKG_CONFIG) --cflags $(CLI_PKGS) 2>/dev/null)
CLI_LIBS    := $(shell $(PKG_CONFIG) --libs $(CLI_PKGS) 2>/dev/null)
# The library decodes JPEGs with libjpeg(-turbo)'s own API; TurboJPEG only for tests and
# benchmarks (generating JPEGs, comparing against tjDecompress2); libwebpmux (in libwebp-dev)
# only for tests that write animated WebPs.
TEST_LIBS   := $(shell $(PKG_CONFIG) --libs libturbojpeg libwebpmux 2>/dev/null)

# -ffp-contract=off: PDQ must reproduce the reference's float rounding bit for bit.
HG_CFLAGS   := -std=c11 -D_GNU_SOURCE -D_FILE_OFFSET_BITS=64 -pthread \
               -Wall -Wextra -Wshadow -Wno-unused-parameter -Wmissing-prototypes \
               -ffp-contract=off -fno-fast-math \
               -DHASHGATE_VERSION='"$(VERSION)"' \
               -DHASHGATE_SYSCONFDIR='"$(SYSCONFDIR)"' \
               -DHASHGATE_LOCALSTATEDIR='"$(LOCALSTATEDIR)"' \
               -I. $(PKG_CFLAGS)
ALL_CFLAGS   = $(HG_CFLAGS) $(CPPFLAGS) $(CFLAGS) $(SAN_FLAGS)
ALL_LDFLAGS  = -pthread $(LDFLAGS) $(SAN_FLAGS)
ALL_LDLIBS   = $(PKG_LIBS) -lm $(LDLIBS)

HASHDB_SRC  := $(sort $(wildcard hashdb/*.c))
FS_SRC      := $(sort $(wildcard fs/*.c))
TOOLS_SRC   := $(sort $(wildcard tools/*.c))
UNIT_SRC    := $(sort $(wildcard tests/unit/test-*.c))
TTOOL_SRC   := $(sort $(wildcard tests/tools/*.c))
PRELOAD_SRC := $(sort $(wildcard tests/preload/*.c))
BENCH_SRC   := $(sort $(wildcard tests/bench/*.c))
FUZZ_SRC    := $(sort $(wildcard tests/fuzz/fuzz-*.c))

obj          = $(patsubst %.c,$(BUILD)/%.o,$(1))
HASHDB_OBJ  := $(call obj,$(HASHDB_SRC))
FS_OBJ      := $(call obj,$(FS_SRC))
TOOLS_OBJ   := $(call obj,$(TOOLS_SRC))
LIB         := $(BUILD)/libhashdb.a
HASHGATEFS  := $(BUILD)/hashgatefs
HASHGATE    := $(BUILD)/hashgate
UNIT_BIN    := $(patsubst %.c,$(BUILD)/%,$(UNIT_SRC))
TTOOL_BIN   := $(patsubst %.c,$(BUILD)/%,$(TTOOL_SRC)) $(patsubst %.c,$(BUILD)/%.so,$(PRELOAD_SRC))
BENCH_BIN   := $(patsubst %.c,$(BUILD)/%,$(BENCH_SRC))
ALL_OBJ     := $(HASHDB_OBJ) $(FS_OBJ) $(TOOLS_OBJ) $(call obj,$(UNIT_SRC) $(TTOOL_SRC) $(BENCH_SRC))
MOUNT_TESTS := $(sort $(wildcard tests/mount/[0-9]*.sh))
MAKE_TESTS  := $(sort $(wildcard tests/make/[0-9]*.sh))

# What the tests and benchmarks are told about this build.
TEST_ENV     = HASHGATE_BUILD=$(abspath $(BUILD)) HASHGATE_SRC=$(CURDIR) \
               HASHGATE_SHARED=$(SHARED) PATH=$(abspath $(BUILD)):$$PATH

.PHONY: all check unit-check mount-check backing-check install uninstall bench lint demo deps clean fuzz \
        fsx-long package-check deb rpm pkg-tree deps-ok check-run demo-run bench-run fresh-check \
        lint-run fuzz-run
.DEFAULT_GOAL := all

all: $(HASHGATEFS) $(HASHGATE)

$(BUILD)/%.o: %.c | deps-ok
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -MMD -MP -c -o $@ $<

$(TOOLS_OBJ): ALL_CFLAGS += $(CLI_CFLAGS)

$(LIB): $(HASHDB_OBJ)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $^

$(HASHGATEFS): $(FS_OBJ) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $(FS_OBJ) $(LIB) $(ALL_LDLIBS)

$(HASHGATE): $(TOOLS_OBJ) $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $(TOOLS_OBJ) $(LIB) $(CLI_LIBS) $(ALL_LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/%.o $(LIB)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(LIB) $(ALL_LDLIBS) $(TEST_LIBS)

# LD_PRELOAD shims that mount tests put under the daemon to widen a race window: built
# without the sanitizers, whose runtime must come first in the daemon's library list.
$(BUILD)/tests/preload/%.so: tests/preload/%.c | deps-ok
	@mkdir -p $(@D)
	$(CC) $(HG_CFLAGS) $(CPPFLAGS) $(CFLAGS) -shared -fPIC -o $@ $< -ldl

-include $(ALL_OBJ:.o=.d)

# Test objects are intermediate files of the pattern rule above; keep them so a second `make
# check` does not rebuild every test program.
.SECONDARY: $(call obj,$(UNIT_SRC) $(TTOOL_SRC) $(BENCH_SRC))

deps:
	@sh scripts/deps.sh build test

# Without the libraries' headers the first compile would fail with a bare "No such file";
# say instead which packages are missing and how to get them.  Order-only for every object,
# so it runs once per make and never makes anything out of date.
deps-ok:
	@$(PKG_CONFIG) --exists $(PKGS) $(CLI_PKGS) 2>/dev/null || { \
		echo "hashgate: pkg-config does not find $(PKGS) $(CLI_PKGS): build dependencies missing." >&2; \
		sh scripts/deps.sh --missing build >&2; \
		echo "hashgate: install them with 'make deps' (as root) or 'sh scripts/deps.sh build'." >&2; \
		exit 1; }

# deps, then the real work in a make that reads this file (and pkg-config) afresh.
check demo bench: deps
	@$(MAKE) --no-print-directory $@-run
# lint and fuzz compile with the build libraries' flags too, plus their own tools.
lint fuzz:
	@sh scripts/deps.sh build $@
	@$(MAKE) --no-print-directory $@-run

# The whole suite under one prove run, so the closing summary is prove's.
check-run: all $(UNIT_BIN) $(TTOOL_BIN)
	$(TEST_ENV) $(PROVE) $(PROVE_FLAGS) $(UNIT_BIN) $(MAKE_TESTS) $(MOUNT_TESTS)

unit-check: all $(UNIT_BIN) $(TTOOL_BIN)
	$(TEST_ENV) $(PROVE) $(PROVE_FLAGS) $(UNIT_BIN)

mount-check: all $(UNIT_BIN) $(TTOOL_BIN)
	$(TEST_ENV) $(PROVE) $(PROVE_FLAGS) $(MOUNT_TESTS)

# The upload guarantees over other backing filesystems (tests/mount/lib.sh HG_BACKING_FS): the
# subset that is about uploads, staging, crashes, a full disk, several users, fsx and many
# inodes, once per type (a few minutes each; root, loop devices, sshd).  make check runs
# 16-backing.sh, a short XFS + sshfs pass.  BACKING_FS=xfs picks one type.
BACKING_FS    ?= xfs btrfs sshfs
BACKING_TESTS := $(addprefix tests/mount/,10-passthrough.sh 15-staging.sh 20-known-upload.sh \
		 21-write-ways.sh 31-fail-closed.sh 40-multiuser.sh 80-fsx.sh 81-crash.sh \
		 82-enospc.sh 85-inodes.sh)
# Not on sshfs: 10-passthrough, 40-multiuser and 80-fsx compare with a local filesystem's
# semantics that sshfs (SFTP) does not have: no RENAME_EXCHANGE, fallocate, xattrs, mknod,
# chown of symlinks, setgid-directory groups or directory link counts.
BACKING_NA_sshfs := tests/mount/10-passthrough.sh tests/mount/40-multiuser.sh tests/mount/80-fsx.sh
backing-check: all $(UNIT_BIN) $(TTOOL_BIN)
	@sh scripts/deps.sh --missing backing
	@rc=0; for fs in $(BACKING_FS); do \
		echo "=== HG_BACKING_FS=$$fs"; \
		case $$fs in sshfs) na="$(BACKING_NA_sshfs)" ;; *) na= ;; esac; \
		[ -z "$$na" ] || echo "not applicable on $$fs (see Makefile): $$na"; \
		t=; for x in $(BACKING_TESTS); do case " $$na " in *" $$x "*) ;; *) t="$$t $$x" ;; esac; done; \
		$(TEST_ENV) HG_BACKING_FS=$$fs $(PROVE) $(PROVE_FLAGS) $$t || rc=1; \
	done; exit $$rc

# 1M random operations through a mount against a plain dir (minutes); make check runs 20k.
# The long reliability tests (load, scale, fault soaks) run with HASHGATE_LONG=1.
fsx-long: all $(TTOOL_BIN)
	$(TEST_ENV) HASHGATE_FSX_OPS=1000000 HASHGATE_FSX_CHECK=5000 $(PROVE) -v tests/mount/80-fsx.sh

long-check: all $(UNIT_BIN) $(TTOOL_BIN)
	$(TEST_ENV) HASHGATE_LONG=1 $(PROVE) $(PROVE_FLAGS) $(wildcard tests/mount/8[0-9]-*.sh tests/mount/9[0-9]-*.sh)

bench-run: all $(BENCH_BIN) $(TTOOL_BIN)
	$(TEST_ENV) sh tests/bench/run.sh

demo-run: all $(TTOOL_BIN)
	$(TEST_ENV) sh scripts/demo.sh

# The first `make demo` and `make check` on a fresh Debian bookworm (debootstrap minbase plus
# git and make, in a chroot under $(FRESH_ROOT), from a clone of HEAD).  Root, debootstrap
# (installed if missing), the Debian mirror of apt's sources, /dev/fuse; half an hour, not
# part of `make check`.  See scripts/fresh-check.sh.
FRESH_ROOT  ?= $(abspath $(BUILD))/fresh-root
fresh-check:
	sh scripts/fresh-check.sh $(FRESH_ROOT)

# libFuzzer needs clang; the harnesses link the library sources directly.  `make fuzz` builds
# them and runs each for FUZZ_SECONDS (0: build only), one at a time (tests/fuzz/run.sh).
FUZZ_CC     ?= clang
FUZZ_SECONDS ?= 60
fuzz-run: $(patsubst tests/fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))
	@[ "$(FUZZ_SECONDS)" = 0 ] || sh tests/fuzz/run.sh $(BUILD)/fuzz $(FUZZ_SECONDS) $(SHARED)
$(BUILD)/fuzz/%: tests/fuzz/%.c tests/fuzz/fuzz-image.h $(HASHDB_SRC)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(filter-out -Wmissing-prototypes,$(HG_CFLAGS)) $(CPPFLAGS) -O1 -g \
		-fsanitize=fuzzer,address,undefined -o $@ $< $(HASHDB_SRC) $(PKG_LIBS) -lm

LINT_SRC     = $(HASHDB_SRC) $(FS_SRC) $(TOOLS_SRC)
lint-run:
	cppcheck --quiet --error-exitcode=1 --std=c11 --enable=warning,performance,portability \
		--inline-suppr --suppress=missingIncludeSystem -I. $(LINT_SRC)
	clang-tidy --quiet $(LINT_SRC) -- $(HG_CFLAGS) $(CPPFLAGS)

# Units are filled in with this install's paths.  The config is never overwritten: it is the
# admin's (packages install into an empty DESTDIR, so they always get it).
UNIT_SUBST   = sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
		   -e 's|@LIBEXECDIR@|$(LIBEXECDIR)|g' -e 's|@LOCALSTATEDIR@|$(LOCALSTATEDIR)|g'
install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
		$(DESTDIR)$(SYSCONFDIR)/hashgate/mounts $(DESTDIR)$(SYSCONFDIR)/hashgate/feeds.d \
		$(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(LIBEXECDIR)/hashgate $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(SYSUSERSDIR)
	install -d -m 0755 $(DESTDIR)$(LOCALSTATEDIR)/lib/hashgate
	install -d -m 0700 $(DESTDIR)$(LOCALSTATEDIR)/lib/hashgate/quarantine
	install -m 0755 $(HASHGATEFS) $(HASHGATE) $(DESTDIR)$(BINDIR)/
	for m in $(wildcard packaging/man/*.5); do install -m 0644 $$m $(DESTDIR)$(MANDIR)/man5/; done
	for m in $(wildcard packaging/man/*.8); do install -m 0644 $$m $(DESTDIR)$(MANDIR)/man8/; done
	[ -e $(DESTDIR)$(SYSCONFDIR)/hashgate/hashgate.conf ] || \
		install -m 0644 packaging/hashgate.conf $(DESTDIR)$(SYSCONFDIR)/hashgate/hashgate.conf
	install -m 0755 packaging/systemd/hashgatefs-unmount $(DESTDIR)$(LIBEXECDIR)/hashgate/
	for u in packaging/systemd/*.in; do \
		$(UNIT_SUBST) $$u > $(DESTDIR)$(UNITDIR)/$$(basename $$u .in) && \
		chmod 0644 $(DESTDIR)$(UNITDIR)/$$(basename $$u .in) || exit 1; done
	install -m 0644 packaging/systemd/hashgate-purge.timer packaging/systemd/hashgate-feeds.timer \
		$(DESTDIR)$(UNITDIR)/
	install -m 0644 packaging/bash-completion/hashgate $(DESTDIR)$(BASHCOMPDIR)/hashgate
	install -m 0644 packaging/sysusers/hashgate.conf $(DESTDIR)$(SYSUSERSDIR)/hashgate.conf
	ln -sf hashgate $(DESTDIR)$(BASHCOMPDIR)/hashgatefs

# Leaves the config, the database, the audit log and the quarantine (evidence) alone.
uninstall:
	rm -f $(DESTDIR)$(BINDIR)/hashgatefs $(DESTDIR)$(BINDIR)/hashgate \
		$(DESTDIR)$(MANDIR)/man8/hashgatefs.8 $(DESTDIR)$(MANDIR)/man8/hashgate.8 \
		$(DESTDIR)$(MANDIR)/man5/hashgate.conf.5 \
		$(DESTDIR)$(LIBEXECDIR)/hashgate/hashgatefs-unmount \
		$(DESTDIR)$(UNITDIR)/hashgatefs@.service $(DESTDIR)$(UNITDIR)/hashgate-purge.service \
		$(DESTDIR)$(UNITDIR)/hashgate-purge.timer $(DESTDIR)$(UNITDIR)/hashgate-feeds.service \
		$(DESTDIR)$(UNITDIR)/hashgate-feeds.timer \
		$(DESTDIR)$(BASHCOMPDIR)/hashgate $(DESTDIR)$(BASHCOMPDIR)/hashgatefs \
		$(DESTDIR)$(SYSUSERSDIR)/hashgate.conf

# Packages (packaging/) are built in a copy of the tree under $(PKGDIR), never in the working
# tree itself: debian/, the build and the .deb/.rpm files stay out of it.  The copy is what git
# tracks plus untracked, unignored files, as they are now (PKG_SOURCE=HEAD: the last commit
# only).  The inner builds must not inherit this make's command line (BUILD=... would point
# their `make clean` at this build dir).
PKGDIR      ?= $(abspath $(BUILD))/pkg
PKG_SRC      = $(PKGDIR)/hashgate-$(VERSION)
PKG_ENV      = env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u BUILD -u PREFIX -u DESTDIR -u PKGDIR \
               SHARED=$(SHARED)

pkg-tree:
	rm -rf $(PKGDIR)
	mkdir -p $(PKG_SRC)
	if [ "$(PKG_SOURCE)" = HEAD ]; then \
		git archive --format=tar HEAD | tar -xf - -C $(PKG_SRC); \
	elif git rev-parse --is-inside-work-tree >/dev/null 2>&1; then \
		git ls-files -z -co --exclude-standard | \
			xargs -0 -r sh -c 'for f; do [ -e "$$f" ] && printf "%s\0" "$$f"; done' sh | \
			tar --null -T - -cf - | tar -xf - -C $(PKG_SRC); \
	else \
		tar --exclude=./build --exclude='./build-*' --exclude=./debian -cf - . | \
			tar -xf - -C $(PKG_SRC); \
	fi

deb: pkg-tree
	@sh scripts/deps.sh build package
	tar -C $(PKGDIR) -czf $(PKGDIR)/hashgate_$(VERSION).orig.tar.gz hashgate-$(VERSION)
	cp -r packaging/debian $(PKG_SRC)/debian
	cd $(PKG_SRC) && $(PKG_ENV) dpkg-buildpackage -us -uc -b
	@ls -l $(PKGDIR)/*.deb

rpm: pkg-tree
	@sh scripts/deps.sh build package
	mkdir -p $(PKGDIR)/rpmbuild/SOURCES
	tar -C $(PKGDIR) -czf $(PKGDIR)/rpmbuild/SOURCES/hashgate-$(VERSION).tar.gz hashgate-$(VERSION)
	$(PKG_ENV) rpmbuild -bb --nodeps --define '_topdir $(PKGDIR)/rpmbuild' \
		--define 'hg_version $(VERSION)' packaging/rpm/hashgate.spec
	@ls -l $(PKGDIR)/rpmbuild/RPMS/*/*.rpm

# Builds both packages, runs lintian, unpacks the .deb into a scratch root and runs the
# autopkgtest's upload test against it (AUTOPKGTEST=1: the real `autopkgtest -- null`, which
# installs the package on this machine), then runs mount tests with the daemon confined to
# hashgatefs@.service's capability bounding set.  A few minutes; not part of `make check`.
package-check: all $(TTOOL_BIN)
	$(MAKE) --no-print-directory deb
	$(MAKE) --no-print-directory rpm PKGDIR=$(PKGDIR)/rpm-side
	sh packaging/check-package.sh $(PKGDIR) $(VERSION)
	$(TEST_ENV) sh packaging/check-unit-caps.sh $(BUILD)

clean:
	rm -rf build build-san $(BUILD)
