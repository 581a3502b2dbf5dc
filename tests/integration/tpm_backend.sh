#!/usr/bin/env bash
# Integration tests of the TPM backend (tpm/): build/tests/itest_tpm against
# throwaway swtpm instances on Unix sockets, one per suite, because what some
# suites do is TPM-wide (the dictionary-attack lockout, killing and restarting
# the TPM):
#
#   main     TPM 2.0: identity, capabilities, keys, every primitive, sealing,
#            hostile blobs, 100 cycles, fork; and the no-TPM cases
#   tpm12    TPM 1.2 (swtpm without --tpm2): refused cleanly, silent
#   lockout  TPM 2.0: dictionary-attack lockout
#   persistent  TPM 2.0 with a storage key at 0x81000001 (tpm2-tools)
#   restart  TPM 2.0: the test kills swtpm and starts it again
#
# One "PASS: tpm/<suite>/<test>" or "FAIL: ..." line per Check test. Every
# swtpm is stopped by its PID (here, and in the helpers' exit trap).
set -u

# shellcheck source=tests/lib/helpers.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/helpers.sh"

require_cmd swtpm
ksp_setup

BIN=$KSP_BUILD/tests/itest_tpm
if [ ! -x "$BIN" ]; then
    fail tpm-backend "$BIN not built (make $BIN)"
    ksp_finish
    exit 1
fi

# run_suite SUITE: run one Check suite; PASS/FAIL per test from its verbose
# lines "file:line:P|F|E|S:tcase:test:iteration: message".
run_suite() {
    local suite=$1 out rc=0 kind test msg n=0
    out=$(ksp_outfile "itest_tpm-$suite")
    CK_VERBOSITY=verbose "$BIN" "$suite" >"$out" 2>&1 || rc=$?
    while IFS= read -r line; do
        kind=$(printf '%s' "$line" | cut -d: -f3)
        test=$(printf '%s' "$line" | cut -d: -f5)
        msg=$(printf '%s' "$line" | cut -d: -f7-)
        case "$kind" in
        P)
            pass "tpm/$suite/$test"
            n=$((n + 1))
            ;;
        F | E | S)
            fail "tpm/$suite/$test" "${msg# }"
            n=$((n + 1))
            ;;
        esac
    done < <(grep -E '^[^:]+:[0-9]+:[PFES]:' "$out" || true)
    if [ "$n" -eq 0 ] || { [ "$rc" -ne 0 ] && ! grep -qE ':[0-9]+:[FES]:' "$out"; }; then
        fail "tpm/$suite" "itest_tpm $suite exited $rc with $n results"
        show_tail "$out"
    fi
}

# stop_swtpm DIR: kill the swtpm of DIR by the PID it wrote.
stop_swtpm() {
    [ -f "$1/swtpm.pid" ] && ksp_kill_pid "$(cat "$1/swtpm.pid")"
}

# with_swtpm SUITE 2|12: a fresh TPM for one suite.
with_swtpm() {
    local suite=$1 dir=$TEST_DIR/swtpm-$1
    if [ "$2" = 12 ]; then
        start_swtpm12 "$dir" || {
            fail "tpm/$suite" "swtpm (TPM 1.2) did not start"
            show_tail "$dir/swtpm.log"
            return
        }
    else
        start_swtpm2 "$dir" || {
            fail "tpm/$suite" "swtpm --tpm2 did not start"
            show_tail "$dir/swtpm.log"
            return
        }
    fi
    KSP11_TEST_SWTPM_DIR=$dir run_suite "$suite"
    stop_swtpm "$dir"
    unset KSP11_TCTI
}

with_swtpm main 2
with_swtpm tpm12 12
with_swtpm lockout 2
if command -v tpm2_createprimary >/dev/null 2>&1; then
    with_swtpm persistent 2
else
    skip tpm/persistent "tpm2-tools not installed; scripts/install-deps.sh provides it"
fi
with_swtpm restart 2

ksp_finish
