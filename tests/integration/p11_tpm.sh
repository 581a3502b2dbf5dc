#!/usr/bin/env bash
# PKCS#11-level integration tests of the TPM backend, the TPM policy and the
# software fallback: build/tests/itest_p11tpm and itest_p11tpm_dev against
# throwaway swtpm instances on Unix sockets, one per suite, because some
# suites do TPM-wide things (dictionary-attack lockout, killing the TPM):
#
#   main     TPM 2.0: keys in the TPM, every mechanism checked by OpenSSL,
#            deny list (both orders) and config, CKA_KSP11_REQUIRE_HARDWARE
#   tpm12    TPM 1.2 (swtpm without --tpm2): software fallback, silent
#   hygiene  TPM 2.0: 100 cycles leave the TPM clean; fork
#   lockout  TPM 2.0: wrong PINs counted by the TPM, lockout
#   restart  TPM 2.0: swtpm killed while signing, restarted
#
# After each TPM 2.0 suite, tpm2_getcap (over its own connection) must find
# no transient object or session left. One "PASS: p11tpm/<suite>/<test>" or
# "FAIL: ..." line per Check test; facts the tests measured are printed as
# "# ..." lines. Every swtpm is stopped by its PID.
set -u

# shellcheck source=tests/lib/helpers.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/helpers.sh"

require_cmd swtpm tpm2_getcap
ksp_setup
require_module

for bin in itest_p11tpm itest_p11tpm_dev; do
    if [ ! -x "$KSP_BUILD/tests/$bin" ]; then
        fail p11tpm "$KSP_BUILD/tests/$bin not built (make $KSP_BUILD/tests/$bin)"
        ksp_finish
        exit 1
    fi
done

# run_suite SUITE DIR: one Check suite; PASS/FAIL per test from the verbose
# lines "file:line:P|F|E:tcase:test:iteration: message".
run_suite() {
    local suite=$1 dir=$2 out rc=0 kind test msg n=0 line bin=itest_p11tpm_dev
    case "$suite" in main | tpm12) bin=itest_p11tpm ;; esac
    out=$(ksp_outfile "$bin-$suite")
    KSP11_ITEST_TCTI=$KSP11_TCTI KSP11_ITEST_SWTPM_DIR=$dir "$KSP_BUILD/tests/$bin" "$suite" \
        >"$out" 2>&1 || rc=$?
    while IFS= read -r line; do
        kind=$(printf '%s' "$line" | cut -d: -f3)
        test=$(printf '%s' "$line" | cut -d: -f5)
        msg=$(printf '%s' "$line" | cut -d: -f7-)
        case "$kind" in
        P)
            pass "p11tpm/$suite/$test"
            n=$((n + 1))
            ;;
        F | E)
            fail "p11tpm/$suite/$test" "${msg# }"
            n=$((n + 1))
            ;;
        esac
    done < <(grep -E '^[^:]+:[0-9]+:[PFE]:' "$out" || true)
    grep '^# ' "$out" || true
    if [ "$n" -eq 0 ] || { [ "$rc" -ne 0 ] && ! grep -qE ':[0-9]+:[FE]:' "$out"; }; then
        fail "p11tpm/$suite" "$bin $suite exited $rc with $n results"
        show_tail "$out"
    fi
}

# tpm_clean SUITE: nothing of ours may stay loaded in the TPM.
tpm_clean() {
    local kind out
    for kind in handles-transient handles-loaded-session handles-saved-session; do
        out=$(TPM2TOOLS_TCTI=$KSP11_TCTI timeout 30 tpm2_getcap "$kind" 2>&1) || {
            fail "p11tpm/$1/tpm-clean" "tpm2_getcap $kind failed: $out"
            return
        }
        if printf '%s' "$out" | grep -q 0x; then
            fail "p11tpm/$1/tpm-clean" "left in the TPM ($kind): $(echo "$out" | tr '\n' ' ')"
            return
        fi
    done
    pass "p11tpm/$1/tpm-clean"
}

# with_swtpm SUITE 2|12: a fresh TPM for one suite, stopped by its PID after.
with_swtpm() {
    local suite=$1 dir=$TEST_DIR/swtpm-$1
    if [ "$2" = 12 ]; then
        start_swtpm12 "$dir" || {
            fail "p11tpm/$suite" "swtpm (TPM 1.2) did not start"
            show_tail "$dir/swtpm.log"
            return
        }
    else
        start_swtpm2 "$dir" || {
            fail "p11tpm/$suite" "swtpm --tpm2 did not start"
            show_tail "$dir/swtpm.log"
            return
        }
    fi
    run_suite "$suite" "$dir"
    if [ "$2" = 2 ]; then
        tpm_clean "$suite"
    fi
    # The restart suite starts a new swtpm that writes the same pid file.
    [ -f "$dir/swtpm.pid" ] && ksp_kill_pid "$(cat "$dir/swtpm.pid")"
    unset KSP11_TCTI
}

with_swtpm main 2
with_swtpm tpm12 12
with_swtpm hygiene 2
with_swtpm lockout 2
with_swtpm restart 2

ksp_finish
