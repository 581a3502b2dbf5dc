#!/usr/bin/env bash
# TPM keys are noDA: a process that logged in before a dictionary-attack
# lockout (caused by another process guessing PINs) keeps signing, while new
# logins get CKR_PIN_LOCKED (build/tests/itest_noda against a throwaway
# swtpm on a Unix socket, stopped by its PID). Afterwards tpm2_getcap must
# find no transient object or session left.
set -u

# shellcheck source=tests/lib/helpers.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/helpers.sh"

require_cmd swtpm tpm2_getcap
ksp_setup
require_module
bin=$KSP_BUILD/tests/itest_noda
if [ ! -x "$bin" ]; then
    fail noda "$bin not built"
    ksp_finish
    exit 1
fi
start_swtpm2 "$TEST_DIR/tpm" || {
    fail noda "swtpm --tpm2 did not start"
    ksp_finish
    exit 1
}
out=$(ksp_outfile itest_noda)
rc=0
KSP11_ITEST_TCTI=$KSP11_TCTI "$bin" >"$out" 2>&1 || rc=$?
grep '^# ' "$out" || true
if [ "$rc" -eq 0 ] && grep -qE '^[^:]+:[0-9]+:P:noda:lockout_spares_logged_in_session' "$out"; then
    pass "noda: lockout by another process spares a logged-in session; new login CKR_PIN_LOCKED"
else
    fail "noda" "itest_noda exited $rc"
    show_tail "$out"
fi
ksp_finish
