# ksp11 - one non-recursive Makefile (style.md §3.10).
#
#   make              build the module, the tool and the tests
#   make check        install deps, build, run every test (ends "N passed, N failed")
#   make demo         install deps, build, mTLS with curl through a token key
#   make install      PREFIX=/usr/local DESTDIR=
#   make bench        the benchmark (not a test)

PREFIX     ?= /usr/local
DESTDIR    ?=
CC         ?= cc
BUILD      ?= build
V          ?= 0
Q          := $(if $(filter 1,$(V)),,@)
PKG_CONFIG ?= pkg-config

DEPS_CFLAGS := $(shell $(PKG_CONFIG) --cflags p11-kit-1 libcrypto 2>/dev/null)
DEPS_LIBS   := $(shell $(PKG_CONFIG) --libs libcrypto 2>/dev/null)
TSS_CFLAGS  := $(shell $(PKG_CONFIG) --cflags tss2-esys tss2-mu tss2-rc tss2-tctildr 2>/dev/null)
TSS_LIBS    := $(shell $(PKG_CONFIG) --libs tss2-esys tss2-mu tss2-rc tss2-tctildr tss2-sys 2>/dev/null)
CHECK_CFLAGS:= $(shell $(PKG_CONFIG) --cflags check 2>/dev/null)
CHECK_LIBS  := $(shell $(PKG_CONFIG) --libs check 2>/dev/null)

WARN     := -Wall -Wextra -Wshadow -Wformat=2 -Werror -Wno-missing-field-initializers
CFLAGS   ?= -O2 -g
XCFLAGS  := -std=c11 -D_GNU_SOURCE -fPIC -fvisibility=hidden $(WARN) -Iinclude -Iprovider \
            $(DEPS_CFLAGS) -DKSP11_VERSION_MAJOR=0 -DKSP11_VERSION_MINOR=1 \
            -DKSP_DENYLIST_DEFAULT=\"$(PREFIX)/share/ksp11/tpm-denylist.conf\"
LDLIBS   := $(DEPS_LIBS) -lpthread

CORE_SRCS := $(filter-out provider/p11_entry.c,$(wildcard provider/*.c))
SOFT_SRCS := $(wildcard softfallback/*.c)
TPM_SRCS  := $(wildcard tpm/*.c)
ifneq ($(TPM_SRCS),)
LDLIBS += $(TSS_LIBS)
endif

CORE_OBJS := $(CORE_SRCS:%.c=$(BUILD)/%.o) $(SOFT_SRCS:%.c=$(BUILD)/%.o) $(TPM_SRCS:%.c=$(BUILD)/%.o)
ENTRY_OBJ := $(BUILD)/provider/p11_entry.o
CORE_LIB  := $(BUILD)/libksp11core.a
MODULE    := $(BUILD)/ksp11-pkcs11.so
TOOL      := $(BUILD)/ksp11

TOOL_SRCS := $(wildcard tools/*.c)
TOOL_OBJS := $(TOOL_SRCS:%.c=$(BUILD)/%.o)

UNIT_SRCS := $(filter-out tests/unit/testlib.c,$(wildcard tests/unit/check_*.c))
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
TESTLIB   := $(wildcard tests/unit/testlib.c)
TESTLIB_OBJ := $(TESTLIB:%.c=$(BUILD)/%.o)
# Integration test programs need a TPM: tests/integration/*.sh start swtpm and run them.
INTEG_SRCS := $(wildcard tests/integration/itest_*.c)
INTEG_BINS := $(INTEG_SRCS:tests/integration/%.c=$(BUILD)/tests/%)

.PHONY: all check check-unit check-integration check-e2e demo install uninstall clean bench deps format

all: $(MODULE) $(TOOL) $(UNIT_BINS) $(INTEG_BINS)

$(BUILD)/tpm/%.o: tpm/%.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(XCFLAGS) $(TSS_CFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/tests/%.o: tests/%.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(XCFLAGS) $(CHECK_CFLAGS) -DKSP_SRCDIR=\"$(CURDIR)\" $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/tools/%.o: tools/%.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(XCFLAGS) -DKSP11_P11_MODULE_PATH=\"$(P11_MODULE_PATH)\" $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@echo "  CC      $<"
	$(Q)$(CC) $(XCFLAGS) $(CFLAGS) -MMD -MP -c -o $@ $<

$(CORE_LIB): $(CORE_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(MODULE): $(ENTRY_OBJ) $(CORE_LIB) provider/ksp11.map
	$(CC) -shared -o $@ $(ENTRY_OBJ) -Wl,--whole-archive $(CORE_LIB) -Wl,--no-whole-archive \
	    -Wl,--version-script=provider/ksp11.map -Wl,-z,defs -Wl,-z,now -Wl,-z,relro $(LDFLAGS) $(LDLIBS)

$(TOOL): $(TOOL_OBJS)
	$(CC) -o $@ $(TOOL_OBJS) $(LDFLAGS) -ldl $(DEPS_LIBS)

$(BUILD)/tests/check_%: $(BUILD)/tests/unit/check_%.o $(TESTLIB_OBJ) $(CORE_LIB)
	$(CC) -o $@ $< $(TESTLIB_OBJ) $(CORE_LIB) $(LDFLAGS) $(CHECK_LIBS) $(LDLIBS) -ldl

$(BUILD)/tests/itest_%: $(BUILD)/tests/integration/itest_%.o $(TESTLIB_OBJ) $(CORE_LIB)
	$(CC) -o $@ $< $(TESTLIB_OBJ) $(CORE_LIB) $(LDFLAGS) $(CHECK_LIBS) $(LDLIBS) -ldl

deps:
	@bash scripts/install-deps.sh

check: deps
	@$(MAKE) --no-print-directory all
	@bash tests/run-all.sh $(BUILD)

check-unit: all
	@bash tests/run-all.sh $(BUILD) unit

demo: deps
	@$(MAKE) --no-print-directory all
	@bash scripts/demo.sh $(BUILD)

bench: all bench-build
	@bash bench/run.sh $(BUILD)

P11_MODULE_PATH  := $(shell $(PKG_CONFIG) --variable=p11_module_path p11-kit-1 2>/dev/null)
P11_MODULE_CONFS := $(shell $(PKG_CONFIG) --variable=p11_module_configs p11-kit-1 2>/dev/null)

include packaging/packaging.mk

format:
	clang-format -i $(wildcard provider/*.[ch] softfallback/*.[ch] tpm/*.[ch] tools/*.[ch] include/ksp11/*.h tests/unit/*.[ch])

clean:
	rm -rf $(BUILD)

# --- test helpers (tests/run-all.sh); KSP11_VERSION also fills packaging/ksp11.pc.in ---
KSP11_VERSION ?= 0.1

check-integration: all
	@bash tests/run-all.sh $(BUILD) integration

check-e2e: all
	@bash tests/run-all.sh $(BUILD) e2e

include tests/faults/faults.mk
.PHONY: stress

include bench/bench.mk
.PHONY: bench-build

# Sanitizer / valgrind runs and libFuzzer harnesses (make check-asan, check-valgrind, fuzz).
include tests/hardening/hardening.mk tests/fuzz/fuzz.mk

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
