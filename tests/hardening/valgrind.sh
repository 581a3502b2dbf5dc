#!/usr/bin/env bash
# The unit and API suites (BUILD/tests/check_*) under valgrind memcheck:
# CK_FORK=no so every test runs in the valgrind'ed process (children the tests
# fork themselves are followed too), definite leaks are errors, any error fails
# the binary. One "PASS: valgrind/<binary>" or "FAIL: ..." line per binary.
# Suppressions (tests/hardening/lib/valgrind.supp) name third-party libraries
# only. Bounded for CI (run-all gives a script 600 s): the unit suites and the
# API robustness suite; `make check-valgrind` (VALGRIND_ALL=1) runs every API
# suite too (check_api_crypto alone takes minutes under memcheck).
set -u

# shellcheck source=tests/lib/helpers.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/helpers.sh"

require_cmd valgrind
ksp_setup
SUPP=$KSP_ROOT/tests/hardening/lib/valgrind.supp
unset KSP11_STORE KSP11_LOG_FILE KSP11_LOG_LEVEL # the suites make their own
export CK_FORK=no
# memcheck runs 10-50x slower: give Check's per-test timeouts room.
export CK_TIMEOUT_MULTIPLIER=${CK_TIMEOUT_MULTIPLIER:-10}

# One binary under memcheck; output and exit status into files.
run_one() {
    local bin=$1 out=$2 rc=0
    valgrind -q --error-exitcode=99 --leak-check=full --errors-for-leak-kinds=definite \
        --show-leak-kinds=definite --suppressions="$SUPP" "$bin" >"$out" 2>&1 || rc=$?
    echo "$rc" >"$out.rc"
}

# Two at a time (VALGRIND_JOBS): memcheck is single-threaded per process.
jobs_max=${VALGRIND_JOBS:-2}
bins=()
for bin in "$KSP_BUILD"/tests/check_*; do
    [ -f "$bin" ] && [ -x "$bin" ] || continue
    case "$(basename "$bin")" in
    check_api_robust) ;;
    check_api_*) [ -n "${VALGRIND_ALL:-}" ] || continue ;;
    esac
    bins+=("$bin")
    run_one "$bin" "$(ksp_outfile "valgrind-$(basename "$bin")")" &
    while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do
        wait -n || true
    done
done
wait

n=0
for bin in "${bins[@]}"; do
    n=$((n + 1))
    name=$(basename "$bin")
    out=$(ksp_outfile "valgrind-$name")
    rc=$(cat "$out.rc" 2>/dev/null || echo 125)
    summary=$(grep -Eo 'Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' "$out" | tail -n 1)
    errors=$(grep -Ec '^==[0-9]+== ' "$out" || true)
    if [ "$rc" -eq 0 ] && [ "$errors" -eq 0 ] && [ -n "$summary" ]; then
        pass "valgrind/$name ($summary)"
    else
        fail "valgrind/$name" "exit $rc, $errors valgrind lines, ${summary:-no Check summary}"
        grep -E '^==[0-9]+== |:[EF]:' "$out" | head -n 40 | sed 's/^/    | /'
        [ -n "${KSP11_TEST_LOG_DIR:-}" ] && cp "$out" "$KSP11_TEST_LOG_DIR/hardening-valgrind-$name.log"
    fi
done
[ "$n" -gt 0 ] || fail valgrind "no unit binaries in $KSP_BUILD/tests (make all)"
ksp_finish
