#!/bin/bash
# The TPM signing hot path and the cross-process TPM lock
# (tests/integration/itest_tpmsess.c) against a throwaway swtpm without a
# resource manager, with the counting TCTI (bench/tcti_count.c) in front so
# the tests see every command that crosses the TPM interface.
set -u

# shellcheck source=tests/lib/helpers.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/helpers.sh"

require_cmd swtpm
ksp_setup

BIN=$KSP_BUILD/tests/itest_tpmsess
TCTI_LIB=$KSP_BUILD/bench/libtss2-tcti-kspcount.so
if [ ! -x "$BIN" ] || [ ! -f "$TCTI_LIB" ]; then
    fail tpm-sess "$BIN or $TCTI_LIB not built (make)"
    ksp_finish
    exit 1
fi

start_swtpm2 "$TEST_DIR/tpm" || {
    fail tpm-sess "swtpm did not start"
    ksp_finish
    exit 1
}
export KSP_TEST_PLAIN_TCTI=$KSP11_TCTI
export KSP11_TCTI="$TCTI_LIB:$KSP11_TCTI"
export KSP_TCTI_COUNT_FILE=$TEST_DIR/tpm-commands
out=$(ksp_outfile itest_tpmsess)
rc=0
CK_VERBOSITY=verbose timeout 600 "$BIN" >"$out" 2>&1 || rc=$?
n=0
while IFS= read -r line; do
    kind=$(printf '%s' "$line" | cut -d: -f3)
    test=$(printf '%s' "$line" | cut -d: -f5)
    msg=$(printf '%s' "$line" | cut -d: -f7-)
    case "$kind" in
    P) pass "tpm-sess/$test" ;;
    *) fail "tpm-sess/$test" "${msg# }" ;;
    esac
    n=$((n + 1))
done < <(grep -E '^[^:]+:[0-9]+:[PFES]:' "$out" || true)
if [ "$n" -eq 0 ] || { [ "$rc" -ne 0 ] && ! grep -qE ':[0-9]+:[FES]:' "$out"; }; then
    fail tpm-sess "itest_tpmsess exited $rc with $n results"
    show_tail "$out"
fi
ksp_finish
