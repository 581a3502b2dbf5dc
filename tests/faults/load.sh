#!/usr/bin/env bash
# Load and concurrency (issue 6): 4 processes x 4 threads on one token for a
# bounded time (sessions opened/closed, logins/logouts, signatures with a
# software and a generated key, each verified by OpenSSL, objects created,
# destroyed and found exactly once), then fork while threads keep signing
# (tests/faults/fault_load.c). Once on the software backend and once with a
# swtpm (no resource manager: the processes share the TPM's few object slots),
# after which no transient object or session may be left in the TPM.
# Bounded: 20 s per backend; `make stress` (KSP11_STRESS=1): 300 s.
set -u
# shellcheck source=tests/lib/helpers.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/helpers.sh"

ksp_setup
require_module
BIN=$KSP_BUILD/tests/faults/fault_load
if [ ! -x "$BIN" ]; then
    fail load "$BIN not built"
    ksp_finish
    exit 1
fi
SECS=${KSP11_LOAD_SECONDS:-20}
FORKS=10
if [ -n "${KSP11_STRESS:-}" ]; then
    SECS=${KSP11_LOAD_SECONDS:-300}
    FORKS=100
fi

# The module log at debug level costs more than the work: info is enough here.
export KSP11_LOG_LEVEL=info

check "software: setup" "$BIN" setup &&
    check "software: 4 processes x 4 threads, ${SECS}s" "$BIN" run 4 4 "$SECS" &&
    check "software: fork x$FORKS while threads sign" "$BIN" fork "$FORKS"
grep -h '^[0-9]* processes\|^[0-9]* forks' "$TEST_DIR"/out/software*.out 2>/dev/null | sed 's/^/# /'

if command -v swtpm >/dev/null && command -v tpm2_getcap >/dev/null; then
    export KSP11_STORE=$TEST_DIR/store-tpm
    mkdir -m 700 "$KSP11_STORE"
    if start_swtpm2 "$TEST_DIR/tpm"; then
        check "TPM: setup (generated key in the TPM)" "$BIN" setup &&
            check "TPM: 4 processes x 4 threads, ${SECS}s, no resource manager" \
                "$BIN" run 4 4 "$SECS"
        # A child forked while a parent thread had a command in flight used to
        # keep that swtpm connection open and wedge both (1 in 30-100 forks).
        check "TPM: fork x$FORKS while threads sign" "$BIN" fork "$FORKS"
        grep -h '^[0-9]* processes\|^[0-9]* forks' "$TEST_DIR"/out/TPM*.out 2>/dev/null |
            sed 's/^/# /'
        for cap in handles-transient handles-loaded-session handles-saved-session; do
            out=$(TPM2TOOLS_TCTI=$KSP11_TCTI tpm2_getcap "$cap" 2>&1)
            if [ $? -ne 0 ]; then
                fail "TPM: $cap readable" "$out"
            elif printf '%s' "$out" | grep -q '0x'; then
                fail "TPM: no $cap left" "$out"
            else
                pass "TPM: no $cap left"
            fi
        done
    else
        fail "TPM: swtpm did not start"
    fi
else
    skip "TPM load" "swtpm or tpm2-tools not installed"
fi
ksp_finish
