#!/usr/bin/env bash
# The test runner behind `make check`:  tests/run-all.sh BUILD [SUITE|all]
#
#   unit         every BUILD/tests/check_* (Check); its "Checks: N, Failures: F,
#                Errors: E" summary is counted; a crash or a missing summary is
#                one failure
#   integration  every tests/integration/*.sh
#   faults       every tests/faults/*.sh (killed TPMs/processes, write errors, load)
#   e2e          every tests/e2e/*.sh
#   hardening    every tests/hardening/*.sh (sanitizer and valgrind runs, bounded fuzzing)
#                scripts print "PASS: x" / "FAIL: x" / "SKIP: x (why)"; a script
#                that exits non-zero without a FAIL line counts as one failure
#
# Each test's output goes to BUILD/test-logs/<name>.log; a failing test's log tail
# is printed. Everything runs even after failures, each under `timeout`
# (KSP11_TEST_TIMEOUT seconds, default 600). The last line is exactly
# "N passed, N failed" (skips are counted on the line before it); exit 0 iff
# nothing failed.
set -euo pipefail

usage() {
    echo "usage: $0 BUILD [unit|integration|faults|e2e|hardening|all]" >&2
    exit 2
}

if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=$1
MODE=${2:-all}
case "$MODE" in unit | integration | faults | e2e | hardening | all) ;; *) usage ;; esac
case "$BUILD" in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
TIMEOUT=${KSP11_TEST_TIMEOUT:-600}

LOGDIR=$BUILD/test-logs
mkdir -p "$LOGDIR"
rm -f "$LOGDIR"/*.log

# The environment every test starts from: the build under test, and nothing
# from the developer's own ksp11 set-up (each test makes its own store).
export KSP11_BUILD=$BUILD
export KSP11_TEST_LOG_DIR=$LOGDIR
export KSP11_CONF=/nonexistent
unset KSP11_STORE KSP11_TCTI KSP11_DENYLIST KSP11_LOG_FILE KSP11_LOG_LEVEL OPENSSL_CONF

PASSED=0
FAILED=0
SKIPPED=0

log_tail() {
    echo "  --- last lines of $1 ---"
    tail -n 40 "$1" | sed 's/^/  | /'
}

# Run "$@" under timeout with all output in $log; sets RC.
run_logged() {
    local log=$1
    shift
    RC=0
    timeout --kill-after=10 "$TIMEOUT" "$@" >"$log" 2>&1 </dev/null || RC=$?
    if [ "$RC" -eq 124 ] || [ "$RC" -eq 137 ]; then
        echo "run-all: timed out after ${TIMEOUT}s (exit $RC)" >>"$log"
    elif [ "$RC" -gt 128 ]; then
        echo "run-all: killed by signal $((RC - 128))" >>"$log"
    fi
}

run_check_binary() {
    local bin=$1 name log n=0 f=0 e=0 cn cf ce found=0
    name=$(basename "$bin")
    log=$LOGDIR/$name.log
    run_logged "$log" "$bin"
    # "Checks: 5, Failures: 1, Errors: 0", one line per srunner run
    while read -r _ cn _ cf _ ce; do
        found=1
        n=$((n + ${cn%,})) f=$((f + ${cf%,})) e=$((e + ce))
    done < <(grep -Eo 'Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' "$log" || true)
    if [ "$found" -eq 0 ]; then
        FAILED=$((FAILED + 1))
        echo "FAIL unit/$name: no Check summary (exit $RC)"
        log_tail "$log"
        return
    fi
    local bad=$((f + e))
    # Exiting non-zero with every check passed (e.g. a crash after the run) is a failure too.
    if [ "$bad" -eq 0 ] && [ "$RC" -ne 0 ]; then
        bad=1
    fi
    PASSED=$((PASSED + n - f - e))
    FAILED=$((FAILED + bad))
    if [ "$bad" -eq 0 ]; then
        echo "ok   unit/$name ($n checks)"
    else
        echo "FAIL unit/$name ($f failures, $e errors of $n checks, exit $RC)"
        grep -E ':[EF]:' "$log" | head -n 20 | sed 's/^/  /' || true
        log_tail "$log"
    fi
}

run_script() {
    local script=$1 suite=$2 name log p f s
    name=$suite-$(basename "$script" .sh)
    log=$LOGDIR/$name.log
    run_logged "$log" bash "$script"
    p=$(grep -c '^PASS: ' "$log" || true)
    f=$(grep -c '^FAIL: ' "$log" || true)
    s=$(grep -c '^SKIP: ' "$log" || true)
    if [ "$f" -eq 0 ] && [ "$RC" -ne 0 ]; then
        f=1
        echo "FAIL: $name exited $RC without reporting a failure" >>"$log"
    fi
    PASSED=$((PASSED + p))
    FAILED=$((FAILED + f))
    SKIPPED=$((SKIPPED + s))
    if [ "$f" -eq 0 ]; then
        if [ "$s" -gt 0 ]; then
            echo "ok   $suite/$(basename "$script") ($p passed, $s skipped)"
        else
            echo "ok   $suite/$(basename "$script") ($p passed)"
        fi
        grep '^SKIP: ' "$log" | sed 's/^/  /' || true
    else
        echo "FAIL $suite/$(basename "$script") ($p passed, $f failed, exit $RC)"
        grep '^FAIL: ' "$log" | sed 's/^/  /' || true
        log_tail "$log"
    fi
}

if [ "$MODE" = unit ] || [ "$MODE" = all ]; then
    for bin in "$BUILD"/tests/check_*; do
        if [ ! -f "$bin" ] || [ ! -x "$bin" ]; then continue; fi
        run_check_binary "$bin"
    done
fi

for suite in integration faults e2e hardening; do
    [ "$MODE" = "$suite" ] || [ "$MODE" = all ] || continue
    for script in "$ROOT"/tests/"$suite"/*.sh; do
        [ -f "$script" ] || continue
        run_script "$script" "$suite"
    done
done

if [ "$SKIPPED" -gt 0 ]; then
    echo "($SKIPPED skipped, each named above)"
fi
echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
