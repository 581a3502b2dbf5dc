#!/usr/bin/env bash
# Attestation of TPM keys (issue 7) on a throwaway swtpm: build/tests/itest_attest
# (one PASS/FAIL line per Check test). Every swtpm is stopped by its PID.
set -u

# shellcheck source=tests/lib/helpers.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/helpers.sh"

require_cmd swtpm tpm2_getcap
ksp_setup
require_module
bin=$KSP_BUILD/tests/itest_attest
if [ ! -x "$bin" ]; then
    fail attest "$bin not built"
    ksp_finish
    exit 1
fi
start_swtpm2 "$TEST_DIR/tpm" || {
    fail attest "swtpm --tpm2 did not start"
    ksp_finish
    exit 1
}
out=$(ksp_outfile itest_attest)
rc=0
KSP11_ITEST_TCTI=$KSP11_TCTI "$bin" >"$out" 2>&1 || rc=$?
n=0
while IFS= read -r line; do
    kind=$(printf '%s' "$line" | cut -d: -f3)
    test=$(printf '%s' "$line" | cut -d: -f5)
    msg=$(printf '%s' "$line" | cut -d: -f7-)
    case "$kind" in
    P) pass "attest: $test" ;;
    F | E) fail "attest: $test" "${msg# }" ;;
    esac
    n=$((n + 1))
done < <(grep -E '^[^:]+:[0-9]+:[PFE]:' "$out" || true)
if [ "$n" -eq 0 ] || { [ "$rc" -ne 0 ] && ! grep -qE ':[0-9]+:[FE]:' "$out"; }; then
    fail attest "itest_attest exited $rc with $n results"
    show_tail "$out"
fi
ksp_finish
