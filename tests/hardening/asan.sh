#!/usr/bin/env bash
# The ASan + UBSan run inside `make check`: builds everything with
# -fsanitize=address,undefined into BUILD-asan (make asan-build) and runs the
# unit and API suites there (tests/hardening/lib/check-asan.sh; every program
# involved is ours, leaks are errors). Bounded for CI (run-all gives a script
# 600 s); `make check-asan` runs the integration, faults and e2e suites too.
# One PASS/FAIL line per suite binary; the per-test lines are in the logs.
# ASAN_CI_SUITES changes the suites (e.g. "unit integration").
set -u

# shellcheck source=tests/lib/helpers.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/helpers.sh"

require_cmd gcc
ksp_setup
AB=${KSP_BUILD}-asan

build_log=$(ksp_outfile asan-build)
if ! make -C "$KSP_ROOT" --no-print-directory -j2 asan-build ASAN_BUILD="$AB" >"$build_log" 2>&1; then
    fail asan-build "make asan-build ASAN_BUILD=$AB"
    show_tail "$build_log" 30
    ksp_finish
    exit 1
fi
pass asan-build

out=$(ksp_outfile asan-suites)
# shellcheck disable=SC2086 # a list of suite names
bash "$KSP_ROOT/tests/hardening/lib/check-asan.sh" "$AB" ${ASAN_CI_SUITES:-unit} >"$out" 2>&1
# run-all's per-binary / per-script lines: "ok   suite/x (...)", "FAIL suite/x (...)",
# "skip e2e/x (...)"; a failure's details follow it indented.
while IFS= read -r line; do
    case "$line" in
    "ok   "*)
        rest=${line#ok   }
        pass "asan/${rest%% (*} (${rest#* (}"
        ;;
    "FAIL "*)
        rest=${line#FAIL }
        fail "asan/${rest%% *}" "${rest#* }"
        ;;
    "skip "*)
        rest=${line#skip }
        skip "asan/${rest%% *}" "not run under ASan: see ASAN_E2E_EXCLUDE in tests/hardening/lib/asan-env.sh"
        ;;
    esac
done <"$out"
tail -n 1 "$out" | sed 's/^/# asan: /'
grep -E '^  (FAIL|\|)' "$out" | head -n 80
[ -n "${KSP11_TEST_LOG_DIR:-}" ] && cp "$out" "$KSP11_TEST_LOG_DIR/hardening-asan-suites.log"
grep -Eq '^[0-9]+ passed, 0 failed$' "$out" || [ "$KSP_FAILED" -gt 0 ] ||
    fail asan-suites "check-asan.sh did not end with 0 failed"
ksp_finish
