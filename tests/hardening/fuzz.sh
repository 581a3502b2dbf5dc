#!/usr/bin/env bash
# Bounded fuzzing in CI: builds the libFuzzer harnesses (tests/fuzz, clang,
# ASan + UBSan) into BUILD-fuzz, replays every committed seed and regression
# input, then runs each harness for FUZZ_CI_TIME seconds (default 20) from
# the seeds in a scratch corpus. Per harness: "PASS: fuzz/<h>/replay" and
# "PASS: fuzz/<h> (N executions ...)", or FAIL with the crash. `make fuzz`
# runs them longer.
set -u

# shellcheck source=tests/lib/helpers.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/helpers.sh"

require_cmd clang-14
ksp_setup
FB=${KSP_BUILD}-fuzz
SECS=${FUZZ_CI_TIME:-20}
unset KSP11_STORE KSP11_LOG_FILE KSP11_LOG_LEVEL # the harnesses make their own
export KSP11_FUZZ_TMP=$TEST_DIR                   # their token stores, removed with it

build_log=$(ksp_outfile fuzz-build)
if ! make -C "$KSP_ROOT" --no-print-directory -j2 fuzz-build FUZZ_BUILD="$FB" >"$build_log" 2>&1; then
    fail fuzz-build "make fuzz-build FUZZ_BUILD=$FB"
    show_tail "$build_log" 30
    ksp_finish
    exit 1
fi
pass fuzz-build

for src in "$KSP_ROOT"/tests/fuzz/fuzz_*.c; do
    h=$(basename "$src" .c)
    h=${h#fuzz_}
    [ "$h" = common ] && continue
    bin=$FB/fuzz/fuzz_$h
    seeds=$KSP_ROOT/tests/fuzz/corpus/$h
    regs=$KSP_ROOT/tests/fuzz/regressions/$h

    # 1. every seed and regression input once
    mapfile -t inputs < <(find "$seeds" "$regs" -type f 2>/dev/null | sort)
    out=$(ksp_outfile "fuzz-$h-replay")
    if [ "${#inputs[@]}" -eq 0 ]; then
        fail "fuzz/$h/replay" "no seed inputs in tests/fuzz/corpus/$h"
    elif "$bin" "${inputs[@]}" >"$out" 2>&1; then
        pass "fuzz/$h/replay (${#inputs[@]} inputs)"
    else
        fail "fuzz/$h/replay" "an input crashes"
        grep -E 'Running:|ERROR|SUMMARY|runtime error|check failed' "$out" | tail -n 8 | sed 's/^/    | /'
    fi

    # 2. a bounded run from the seeds
    work=$TEST_DIR/corpus-$h
    art=$TEST_DIR/artifacts-$h/
    mkdir -p "$work" "$art"
    out=$(ksp_outfile "fuzz-$h")
    rc=0
    "$bin" -max_total_time="$SECS" -timeout=25 -rss_limit_mb=3072 -print_final_stats=1 \
        -artifact_prefix="$art" "$work" "$seeds" >"$out" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out" | tail -n 1)
    cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+' "$out" | tail -n 1)
    if [ "$rc" -eq 0 ] && [ -n "$execs" ]; then
        pass "fuzz/$h ($execs executions in ${SECS}s, $cov)"
    else
        fail "fuzz/$h" "exit $rc after ${execs:-?} executions"
        grep -E 'ERROR|SUMMARY|runtime error|check failed|Test unit written' "$out" | head -n 8 |
            sed 's/^/    | /'
        # keep the crash input next to the test logs for a regression file
        if [ -n "${KSP11_TEST_LOG_DIR:-}" ]; then
            for a in "$art"*; do
                [ -f "$a" ] && cp "$a" "$KSP11_TEST_LOG_DIR/fuzz-$h-$(basename "$a")"
            done
        fi
    fi
done
ksp_finish
