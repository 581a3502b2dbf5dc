# Sanitizer and valgrind runs (tests/hardening), included from the Makefile.
#
#   make check-asan      everything built with ASan + UBSan into $(ASAN_BUILD),
#                        then the whole test suite (unit, integration, faults,
#                        e2e) run there; ends "N passed, N failed"
#   make check-valgrind  the unit and all API suites under valgrind memcheck
#
# Bounded versions run inside `make check` (tests/hardening/asan.sh, valgrind.sh).

ASAN_BUILD ?= build-asan
ASAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all

.PHONY: asan-build check-asan check-valgrind

asan-build:
	@$(MAKE) --no-print-directory BUILD=$(ASAN_BUILD) CFLAGS="$(ASAN_FLAGS)" \
	    LDFLAGS="-fsanitize=address,undefined" all

check-asan: deps all
	@$(MAKE) --no-print-directory asan-build
	@bash tests/hardening/lib/check-asan.sh $(ASAN_BUILD)

check-valgrind: all
	@VALGRIND_ALL=1 KSP11_BUILD=$(BUILD) bash tests/hardening/valgrind.sh
