# packaging/packaging.mk - install, uninstall and the pkg-config file.
# Included from the Makefile (which defines MODULE, TOOL, PREFIX, DESTDIR,
# P11_MODULE_PATH, P11_MODULE_CONFS and KSP11_VERSION).
#
#   make install    PREFIX=/usr/local DESTDIR=   (packaging/debian uses PREFIX=/usr)
#   make uninstall  the same variables: removes exactly what install put
#   make pc         build/ksp11.pc
#
# The module and its p11-kit registration go where p11-kit looks for them
# (pkg-config p11-kit-1), whatever PREFIX is: that is what makes every
# p11-kit-aware program see the token. /etc is not under PREFIX: the module
# reads /etc/ksp11/ksp11.conf (provider/config.h). The deny list goes to
# $(PREFIX)/share/ksp11, the path compiled into the module
# (-DKSP_DENYLIST_DEFAULT in the Makefile), so build and install must use the
# same PREFIX.

SYSCONFDIR   ?= /etc
BINDIR       ?= $(PREFIX)/bin
DATADIR      ?= $(PREFIX)/share/ksp11
MANDIR       ?= $(PREFIX)/share/man
INCLUDEDIR   ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(PREFIX)/lib/pkgconfig

MAN_PAGES := packaging/man/ksp11.1 packaging/man/ksp11.conf.5 packaging/man/ksp11-pkcs11.8
# The public header: the vendor attributes for client developers. It needs
# only a PKCS#11 header (p11-kit's); ksp11/pkcs11.h and backend.h are internal.
PUBLIC_HEADERS := include/ksp11/ksp11.h

.PHONY: progs install uninstall pc install-check-paths

# What install needs; a package build makes only this (no tests).
progs: $(MODULE) $(TOOL)

install-check-paths:
	@test -n "$(P11_MODULE_PATH)" -a -n "$(P11_MODULE_CONFS)" || \
	    { echo "install: p11-kit's module directories are unknown (pkg-config p11-kit-1)" >&2; exit 1; }

install: progs $(BUILD)/ksp11.pc install-check-paths
	install -d $(DESTDIR)$(P11_MODULE_PATH) $(DESTDIR)$(P11_MODULE_CONFS) $(DESTDIR)$(BINDIR) \
	    $(DESTDIR)$(DATADIR) $(DESTDIR)$(SYSCONFDIR)/ksp11 $(DESTDIR)$(MANDIR)/man1 \
	    $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(INCLUDEDIR)/ksp11 \
	    $(DESTDIR)$(PKGCONFIGDIR)
	install -m 0644 $(MODULE) $(DESTDIR)$(P11_MODULE_PATH)/ksp11-pkcs11.so
	install -m 0644 packaging/ksp11.module $(DESTDIR)$(P11_MODULE_CONFS)/ksp11.module
	install -m 0755 $(TOOL) $(DESTDIR)$(BINDIR)/ksp11
	install -m 0644 packaging/tpm-denylist.conf $(DESTDIR)$(DATADIR)/tpm-denylist.conf
	@# An existing config is the administrator's: never overwrite it.
	test -e $(DESTDIR)$(SYSCONFDIR)/ksp11/ksp11.conf || \
	    install -m 0644 packaging/ksp11.conf $(DESTDIR)$(SYSCONFDIR)/ksp11/ksp11.conf
	install -m 0644 packaging/man/ksp11.1 $(DESTDIR)$(MANDIR)/man1/ksp11.1
	install -m 0644 packaging/man/ksp11.conf.5 $(DESTDIR)$(MANDIR)/man5/ksp11.conf.5
	install -m 0644 packaging/man/ksp11-pkcs11.8 $(DESTDIR)$(MANDIR)/man8/ksp11-pkcs11.8
	install -m 0644 $(PUBLIC_HEADERS) $(DESTDIR)$(INCLUDEDIR)/ksp11/
	install -m 0644 $(BUILD)/ksp11.pc $(DESTDIR)$(PKGCONFIGDIR)/ksp11.pc

# The config is removed only while it is still the shipped one: an edited
# config holds the administrator's settings. Directories go only when empty.
uninstall: install-check-paths
	rm -f $(DESTDIR)$(P11_MODULE_PATH)/ksp11-pkcs11.so $(DESTDIR)$(P11_MODULE_CONFS)/ksp11.module \
	      $(DESTDIR)$(BINDIR)/ksp11 $(DESTDIR)$(DATADIR)/tpm-denylist.conf \
	      $(DESTDIR)$(MANDIR)/man1/ksp11.1 $(DESTDIR)$(MANDIR)/man5/ksp11.conf.5 \
	      $(DESTDIR)$(MANDIR)/man8/ksp11-pkcs11.8 \
	      $(addprefix $(DESTDIR)$(INCLUDEDIR)/ksp11/,$(notdir $(PUBLIC_HEADERS))) \
	      $(DESTDIR)$(PKGCONFIGDIR)/ksp11.pc
	if cmp -s packaging/ksp11.conf $(DESTDIR)$(SYSCONFDIR)/ksp11/ksp11.conf; then \
	    rm -f $(DESTDIR)$(SYSCONFDIR)/ksp11/ksp11.conf; fi
	-rmdir $(DESTDIR)$(DATADIR) $(DESTDIR)$(INCLUDEDIR)/ksp11 $(DESTDIR)$(SYSCONFDIR)/ksp11 2>/dev/null

pc: $(BUILD)/ksp11.pc

# The deny list path is compiled in from PREFIX: a build with another PREFIX
# must recompile denylist.o. The stamp changes only when PREFIX does.
PREFIX_STAMP := $(BUILD)/prefix.stamp
$(PREFIX_STAMP): ksp-force
	@mkdir -p $(dir $@)
	@echo '$(PREFIX)' | cmp -s - $@ || echo '$(PREFIX)' >$@
$(BUILD)/provider/denylist.o: $(PREFIX_STAMP)

.PHONY: ksp-force
ksp-force:

# Regenerated every time (it depends on PREFIX and the like), but replaced
# only when its content changes: `sudo make install` then leaves the user's
# build/ksp11.pc alone.
$(BUILD)/ksp11.pc: packaging/ksp11.pc.in ksp-force
	@mkdir -p $(dir $@)
	@sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(KSP11_VERSION)|g' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|g' \
	    -e 's|@P11_MODULE_PATH@|$(P11_MODULE_PATH)|g' \
	    -e 's|@P11_MODULE_CONFIGS@|$(P11_MODULE_CONFS)|g' packaging/ksp11.pc.in >$@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; fi
