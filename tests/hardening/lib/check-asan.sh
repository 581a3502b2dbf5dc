#!/usr/bin/env bash
# make check-asan: the whole test suite against an ASan + UBSan build.
#   tests/hardening/lib/check-asan.sh BUILD [SUITE...]
#
# SUITE defaults to "unit integration faults e2e": everything but the
# hardening suite itself (which would run this again). unit, integration and
# faults go through tests/run-all.sh as in `make check`; e2e scripts run one
# by one the same way, minus $ASAN_E2E_EXCLUDE (see lib/asan-env.sh for why);
# with ASAN_E2E_ONLY="name ..." only those e2e scripts run.
# Prints run-all's lines per suite and ends with "N passed, N failed".
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)
BUILD=${1:?usage: $0 BUILD [SUITE...]}
shift
case "$BUILD" in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
SUITES=${*:-unit integration faults e2e}
TIMEOUT=${KSP11_TEST_TIMEOUT:-600}

# shellcheck source=tests/hardening/lib/asan-env.sh
. "$ROOT/tests/hardening/lib/asan-env.sh"
ENVDIR=$(mktemp -d "${TMPDIR:-/tmp}/ksp11-asan.XXXXXX")
trap 'rm -rf "$ENVDIR"' EXIT
asan_env_setup "$ENVDIR" "$BUILD/ksp11-pkcs11.so" || exit 2

passed=0 failed=0 skipped=0

# The e2e scripts, as run-all.sh runs them (same environment and counting).
run_e2e() {
    local script name log rc p f s
    export KSP11_BUILD=$BUILD KSP11_CONF=/nonexistent
    export KSP11_TEST_LOG_DIR=$BUILD/test-logs-e2e
    unset KSP11_STORE KSP11_TCTI KSP11_DENYLIST KSP11_LOG_FILE KSP11_LOG_LEVEL OPENSSL_CONF
    mkdir -p "$KSP11_TEST_LOG_DIR"
    for script in "$ROOT"/tests/e2e/*.sh; do
        name=$(basename "$script" .sh)
        if [[ " $ASAN_E2E_EXCLUDE " == *" $name "* ]]; then
            echo "skip e2e/$name.sh (not run under ASan: see ASAN_E2E_EXCLUDE in tests/hardening/lib/asan-env.sh)"
            continue
        fi
        # ASAN_E2E_ONLY="a b": just those scripts (the bounded CI run, asan.sh)
        if [ -n "${ASAN_E2E_ONLY:-}" ] && [[ " $ASAN_E2E_ONLY " != *" $name "* ]]; then
            continue
        fi
        log=$KSP11_TEST_LOG_DIR/e2e-$name.log
        rc=0
        timeout --kill-after=10 "$TIMEOUT" bash "$script" >"$log" 2>&1 </dev/null || rc=$?
        p=$(grep -c '^PASS: ' "$log" || true)
        f=$(grep -c '^FAIL: ' "$log" || true)
        s=$(grep -c '^SKIP: ' "$log" || true)
        [ "$f" -eq 0 ] && [ "$rc" -ne 0 ] && f=1
        passed=$((passed + p)) failed=$((failed + f)) skipped=$((skipped + s))
        if [ "$f" -eq 0 ]; then
            if [ "$s" -gt 0 ]; then
                echo "ok   e2e/$name.sh ($p passed, $s skipped)"
            else
                echo "ok   e2e/$name.sh ($p passed)"
            fi
        else
            echo "FAIL e2e/$name.sh ($p passed, $f failed, exit $rc)"
            grep '^FAIL: ' "$log" | sed 's/^/  /' || true
            tail -n 40 "$log" | sed 's/^/  | /'
        fi
    done
}

for suite in $SUITES; do
    [ "$suite" = unit ] || [ -d "$ROOT/tests/$suite" ] || continue
    echo "== $suite (ASan + UBSan)"
    if [ "$suite" = e2e ]; then
        run_e2e
        continue
    fi
    out=$ENVDIR/$suite.out
    bash "$ROOT/tests/run-all.sh" "$BUILD" "$suite" | tee "$out"
    # run-all empties BUILD/test-logs on each run: keep this suite's logs
    rm -rf "$BUILD/test-logs-$suite"
    cp -r "$BUILD/test-logs" "$BUILD/test-logs-$suite" 2>/dev/null
    last=$(tail -n 1 "$out")
    if [[ "$last" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
        passed=$((passed + BASH_REMATCH[1]))
        failed=$((failed + BASH_REMATCH[2]))
    else
        failed=$((failed + 1))
        echo "FAIL $suite: run-all ended without a summary"
    fi
done
# Reports of the external programs (lib/asan-env.sh) are kept with the logs.
if compgen -G "$ASAN_REPORT_DIR/*" >/dev/null; then
    rm -rf "$BUILD/asan-reports"
    cp -r "$ASAN_REPORT_DIR" "$BUILD/asan-reports"
    echo "sanitizer reports of external programs (in $BUILD/asan-reports):"
    for r in "$BUILD"/asan-reports/*; do
        # A report whose stack passes through the module is ours: a failure.
        if grep -qE 'ksp11-pkcs11\.so|/(provider|softfallback|tpm)/[a-z_]+\.c' "$r"; then
            failed=$((failed + 1))
            echo "FAIL $(basename "$r"): $(grep -m1 -E 'ERROR|runtime error' "$r")"
        else
            echo "  third-party $(basename "$r"): $(grep -m1 -E 'ERROR|runtime error' "$r")"
        fi
    done
fi
[ "$skipped" -gt 0 ] && echo "($skipped skipped)"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
