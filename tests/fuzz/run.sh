#!/usr/bin/env bash
# Run libFuzzer harnesses:  tests/fuzz/run.sh FUZZ_BUILD SECONDS [HARNESS...]
# (make fuzz). Each harness runs SECONDS with its working corpus in
# FUZZ_BUILD/corpus/<h> (kept across runs) plus the committed seeds
# (tests/fuzz/corpus/<h>), crash inputs to FUZZ_BUILD/artifacts/<h>/; then the
# seeds and regression inputs (tests/fuzz/regressions/<h>) are replayed. One
# summary line per harness with the executions reached. Exit 1 on any crash.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
FB=${1:?usage: $0 FUZZ_BUILD SECONDS [HARNESS...]}
SECS=${2:?usage: $0 FUZZ_BUILD SECONDS [HARNESS...]}
shift 2
case "$FB" in /*) ;; *) FB=$ROOT/$FB ;; esac
HARNESSES=${*:-$(cd "$ROOT/tests/fuzz" && ls fuzz_*.c | sed -n 's/^fuzz_\(.*\)\.c$/\1/p' | grep -vx common)}
bad=0

for h in $HARNESSES; do
    bin=$FB/fuzz/fuzz_$h
    if [ ! -x "$bin" ]; then
        echo "fuzz_$h: not built ($bin)"
        bad=1
        continue
    fi
    mkdir -p "$FB/corpus/$h" "$FB/artifacts/$h" "$FB/logs"
    log=$FB/logs/fuzz_$h.log
    rc=0
    "$bin" -max_total_time="$SECS" -timeout=25 -rss_limit_mb=3072 -print_final_stats=1 \
        -artifact_prefix="$FB/artifacts/$h/" "$FB/corpus/$h" "$ROOT/tests/fuzz/corpus/$h" \
        >"$log" 2>&1 || rc=$?
    execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -n 1)
    if [ "$rc" -ne 0 ]; then
        echo "fuzz_$h: CRASH after ${execs:-?} executions (exit $rc), see $log and $FB/artifacts/$h/"
        grep -E 'ERROR|SUMMARY|runtime error|check failed' "$log" | head -n 5 | sed 's/^/  /'
        bad=1
    else
        echo "fuzz_$h: ${execs:-?} executions in ${SECS}s, $cov"
    fi
    mapfile -t inputs < <(find "$ROOT/tests/fuzz/corpus/$h" "$ROOT/tests/fuzz/regressions/$h" \
        -type f 2>/dev/null | sort)
    if [ "${#inputs[@]}" -gt 0 ]; then
        if "$bin" "${inputs[@]}" >"$FB/logs/replay_$h.log" 2>&1; then
            echo "fuzz_$h: replayed ${#inputs[@]} seed and regression inputs"
        else
            echo "fuzz_$h: REPLAY FAILED, see $FB/logs/replay_$h.log"
            bad=1
        fi
    fi
done
exit "$bad"
