# libFuzzer harnesses (tests/fuzz/fuzz_*.c), included from the Makefile.
#
#   make fuzz-build      the core library and the module entry points built
#                        with clang + -fsanitize=fuzzer-no-link,address,undefined
#                        into $(FUZZ_BUILD), and one binary per harness
#   make fuzz            every harness for FUZZ_TIME seconds (default 300), its
#                        corpus kept in $(FUZZ_BUILD)/corpus/<h> across runs,
#                        crashes in $(FUZZ_BUILD)/artifacts; then replays the
#                        committed seeds and regression inputs
#   make fuzz FUZZ_HARNESSES="objfile calls" FUZZ_TIME=3600
#
# CI runs the bounded version: tests/hardening/fuzz.sh (make check).

FUZZ_BUILD ?= build-fuzz
FUZZ_CC    ?= clang-14
FUZZ_TIME  ?= 300
FUZZ_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_ALL   := $(patsubst tests/fuzz/fuzz_%.c,%,$(filter-out tests/fuzz/fuzz_common.c,$(wildcard tests/fuzz/fuzz_*.c)))
FUZZ_HARNESSES ?= $(FUZZ_ALL)

.PHONY: fuzz fuzz-build fuzz-bins

fuzz-build:
	@$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) \
	    CFLAGS="$(FUZZ_FLAGS) -fsanitize=fuzzer-no-link" fuzz-bins

fuzz: fuzz-build
	@bash tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_TIME) $(FUZZ_HARNESSES)

# Inside the sub-make above: BUILD is the fuzz build directory.
fuzz-bins: $(FUZZ_ALL:%=$(BUILD)/fuzz/fuzz_%)

$(BUILD)/fuzz/fuzz_%: $(BUILD)/tests/fuzz/fuzz_%.o $(BUILD)/tests/fuzz/fuzz_common.o $(ENTRY_OBJ) $(CORE_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDFLAGS) $(LDLIBS) -ldl

# Keep the harness objects (they are intermediate files of the rule above).
.SECONDARY: $(FUZZ_ALL:%=$(BUILD)/tests/fuzz/fuzz_%.o) $(BUILD)/tests/fuzz/fuzz_common.o
