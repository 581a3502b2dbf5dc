# The benchmark (issue 5): `make bench` builds these and runs bench/run.sh.
BENCH_BIN  := $(BUILD)/bench/bench
BENCH_TCTI := $(BUILD)/bench/libtss2-tcti-kspcount.so
BENCH_CFLAGS := -std=c11 -D_GNU_SOURCE -O2 -g $(WARN) -Iinclude $(DEPS_CFLAGS) $(TSS_CFLAGS)

$(BENCH_BIN): bench/bench.c bench/bench_tpm.c bench/bench.h
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -o $@ bench/bench.c bench/bench_tpm.c $(DEPS_LIBS) $(TSS_LIBS) -lpthread -ldl

$(BENCH_TCTI): bench/tcti_count.c
	@mkdir -p $(dir $@)
	$(CC) $(BENCH_CFLAGS) -fPIC -shared -o $@ $< -ltss2-tctildr

bench-build: $(BENCH_BIN) $(BENCH_TCTI)

# The integration tests of the TPM hot path and lock use the counting TCTI.
all: $(BENCH_TCTI)
