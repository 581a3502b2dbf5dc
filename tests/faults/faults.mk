# tests/faults: fault injection, crash, load and concurrency test programs
# (included from the Makefile). The bounded runs are part of `make check`
# (tests/run-all.sh runs tests/faults/*.sh); `make stress` runs the same
# scripts with bigger counts and longer times (KSP11_STRESS=1).

FAULT_PROGS := fault_inject fault_store fault_kill fault_load fault_tpm
FAULT_BINS  := $(FAULT_PROGS:%=$(BUILD)/tests/faults/%)
FAULT_SHIM  := $(BUILD)/tests/faults/fault_shim.so
FAULT_FL    := $(BUILD)/tests/faults/fl.o

all: $(FAULT_BINS) $(FAULT_SHIM)

$(FAULT_BINS): $(BUILD)/tests/faults/%: $(BUILD)/tests/faults/%.o $(FAULT_FL)
	$(CC) -o $@ $^ $(LDFLAGS) -ldl $(DEPS_LIBS) -lpthread

$(FAULT_SHIM): $(BUILD)/tests/faults/fault_shim.o
	$(CC) -shared -o $@ $< $(LDFLAGS) -ldl -lpthread

# Long runs: 200 -> 2000 kills, 20 s -> 300 s of load, more TPM kill cycles.
stress: all
	@KSP11_STRESS=1 KSP11_TEST_TIMEOUT=3600 bash tests/run-all.sh $(BUILD) faults
