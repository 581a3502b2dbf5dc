# shellcheck shell=bash
#
# Helpers of the ksp11 command's tests (tests/e2e/tool*.sh). Source after
# helpers.sh and ksp_setup. Defines functions only.
#
#   ksp ARGS...                   the built ksp11 against the module under test
#   expect_rc NAME RC CMD...      PASS when CMD exits with exactly RC
#   json_check NAME FILE EXPR     PASS when FILE is JSON and the python3
#                                 expression EXPR over it (as d) is true
#   tool_require                  the ksp11 binary must be built (FAIL if not)

KSP_TOOL=$KSP_BUILD/ksp11

tool_require() {
    if [ ! -x "$KSP_TOOL" ]; then
        fail tool-built "$KSP_TOOL not built (make build/ksp11)"
        exit 1
    fi
}

# The module under test, whatever the tool's built-in default would pick;
# stdin is never a terminal, so nothing prompts.
ksp() {
    "$KSP_TOOL" --module "$KSP11_MODULE" "$@" </dev/null
}

expect_rc() {
    local name=$1 want=$2 rc=0 out
    shift 2
    out=$(ksp_outfile "$name")
    "$@" >"$out" 2>&1 || rc=$?
    if [ "$rc" -eq "$want" ]; then
        pass "$name"
        return 0
    fi
    fail "$name" "exit $rc, expected $want: $*"
    show_tail "$out"
    return 1
}

json_check() {
    local name=$1 file=$2 expr=$3
    if ! python3 -m json.tool "$file" >/dev/null 2>&1; then
        fail "$name" "not valid JSON: $(basename "$file")"
        show_tail "$file"
        return 1
    fi
    if python3 -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if ($expr) else 1)" \
        "$file"; then
        pass "$name"
        return 0
    fi
    fail "$name" "false on $(basename "$file"): $expr"
    show_tail "$file"
    return 1
}

# check_stdout NAME FILE CMD...: like check, but CMD's stdout alone goes to
# FILE (for --json and PEM output); its stderr goes to NAME's output file.
check_stdout() {
    local name=$1 file=$2 rc=0 out
    shift 2
    out=$(ksp_outfile "$name")
    "$@" >"$file" 2>"$out" || rc=$?
    if [ "$rc" -eq 0 ]; then
        pass "$name"
    else
        fail "$name" "exit $rc: $*"
        show_tail "$out"
        show_tail "$file"
    fi
    return "$rc"
}
