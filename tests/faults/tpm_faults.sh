#!/usr/bin/env bash
# The TPM vanishes (issue 6, "Faults"): swtpm killed with SIGKILL during
# signing loops, key generation loops and both at once in several threads,
# restarted on the same state, several cycles in one process
# (tests/faults/fault_tpm.c): clean CKR_DEVICE_ERROR / CKR_DEVICE_REMOVED, no
# software fallback, no half-written object, and the same process signs and
# generates again afterwards. (tests/integration/p11_tpm.sh kills it once
# during a single signing loop.) No TPM handle is left at the end.
# Bounded: 12 cycles; `make stress` (KSP11_STRESS=1): 60.
set -u
# shellcheck source=tests/lib/helpers.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/helpers.sh"

ksp_setup
require_module
require_cmd swtpm
BIN=$KSP_BUILD/tests/faults/fault_tpm
if [ ! -x "$BIN" ]; then
    fail tpm-faults "$BIN not built"
    ksp_finish
    exit 1
fi
CYCLES=12
[ -n "${KSP11_STRESS:-}" ] && CYCLES=60
export KSP11_LOG_LEVEL=info

DIR=$TEST_DIR/tpm
if ! start_swtpm2 "$DIR"; then
    fail "swtpm did not start"
    ksp_finish
    exit 1
fi
# Failed logins are not expected, but keep the TPM from locking anyone out.
if command -v tpm2_dictionarylockout >/dev/null; then
    TPM2TOOLS_TCTI=$KSP11_TCTI tpm2_dictionarylockout --setup-parameters \
        --max-tries=1000 --recovery-time=1 --lockout-recovery-time=1 >/dev/null 2>&1
fi
export KSP11_FAULT_SWTPM_DIR=$DIR
export KSP11_FAULT_RESTART="bash -c '. \"$KSP_ROOT/tests/lib/helpers.sh\" && start_swtpm2 \"$DIR\"'"

check "swtpm killed x$CYCLES during sign/keygen loops: clean codes, consistent objects, signs again" \
    "$BIN" "$CYCLES"
sed 's/^/# /' "$TEST_DIR/out/"swtpm_killed*.out | grep -v 'dbus' | tail -n $((CYCLES + 1))

if command -v tpm2_getcap >/dev/null; then
    for cap in handles-transient handles-loaded-session handles-saved-session; do
        out=$(TPM2TOOLS_TCTI=$KSP11_TCTI tpm2_getcap "$cap" 2>&1)
        if [ $? -ne 0 ]; then
            fail "no $cap left" "$out"
        elif printf '%s' "$out" | grep -q '0x'; then
            fail "no $cap left" "$out"
        else
            pass "no $cap left"
        fi
    done
fi
ksp_finish
