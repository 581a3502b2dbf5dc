#!/usr/bin/env bash
# The PKCS#11 API suites (tests/unit/check_api_*) once more, with a throwaway
# swtpm as the machine's TPM: every generated key is then a TPM key, so the
# same assertions hold for the TPM backend as for the software one (DESIGN.md §7).
set -euo pipefail
# shellcheck source=tests/lib/helpers.sh
. "$(dirname "$0")/../lib/helpers.sh"

ksp_setup
require_module
require_cmd swtpm
start_swtpm2 "$TEST_DIR/tpm"
export KSP11_TEST_TCTI="$KSP11_TCTI"
unset KSP11_TCTI
# The suites' wrong-PIN cases must not lock this TPM out for swtpm's default
# 1000 s (3 tries); a fresh swtpm has an empty lockout authorisation.
if command -v tpm2_dictionarylockout >/dev/null; then
    TPM2TOOLS_TCTI=$KSP11_TEST_TCTI tpm2_dictionarylockout --setup-parameters \
        --max-tries=1000 --recovery-time=1 --lockout-recovery-time=1 >/dev/null 2>&1 ||
        fail "tpm2_dictionarylockout"
fi

for suite in general session object crypto security; do
    bin="$KSP_BUILD/tests/check_api_$suite"
    if [ ! -x "$bin" ]; then
        fail "api_$suite on TPM" "missing $bin"
        continue
    fi
    out="$TEST_DIR/api_$suite.out"
    # The session suite's "pins" case asserts the software token's PIN counter
    # (10 tries, SO unlock); TPM-sealed tokens use the TPM's global lockout
    # instead, which tests/integration/p11_tpm.sh covers.
    case_sel=
    [ "$suite" = session ] && case_sel=sessions
    if env ${case_sel:+CK_RUN_CASE=$case_sel} "$bin" >"$out" 2>&1 && grep -q "Failures: 0, Errors: 0" "$out"; then
        pass "api_$suite on TPM ($(grep -o 'Checks: [0-9]*' "$out"))"
    else
        fail "api_$suite on TPM"
        grep -E ':[FE]:' "$out" | head -20 || tail -20 "$out"
    fi
done
ksp_finish
