#!/usr/bin/env bash
# Crash consistency (issue 6, "Faults"): a process creating, modifying
# (C_SetAttributeValue) and destroying token objects is killed with SIGKILL at
# random moments; afterwards the token opens, every object is whole or absent,
# and no temporary file shows up as an object (tests/faults/fault_kill.c).
# Bounded: 200 kills; `make stress` (KSP11_STRESS=1): 2000.
set -u
# shellcheck source=tests/lib/helpers.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/helpers.sh"

ksp_setup
require_module
BIN=$KSP_BUILD/tests/faults/fault_kill
if [ ! -x "$BIN" ]; then
    fail crash "$BIN not built"
    ksp_finish
    exit 1
fi
KILLS=${KSP11_CRASH_KILLS:-200}
[ -n "${KSP11_STRESS:-}" ] && KILLS=${KSP11_CRASH_KILLS:-2000}

check "SIGKILL x$KILLS while creating/modifying/destroying: token consistent" \
    "$BIN" "$KILLS" 20000
check "stale temporary files of killed writers are swept, never loaded" "$BIN" sweep
check_grep "sweeping is logged" "removed stale temporary file" "$KSP11_LOG_FILE"
# Atomic writes: a killed writer leaves a temporary file, never a torn object.
n=$(grep -c "skipping" "$KSP11_LOG_FILE" || true)
if [ "$n" -eq 0 ]; then
    pass "no object file was ever skipped as corrupt"
else
    fail "no object file was ever skipped as corrupt" "$n 'skipping' lines in the module log"
    grep "skipping" "$KSP11_LOG_FILE" | head -5
fi
ksp_finish
