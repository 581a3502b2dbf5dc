#!/usr/bin/env bash
# End to end: `ksp11 status` reports the module's TPM verdict (through the
# vendor interface "Vendor ksp11") and how each token is protected, for every
# kind of TPM situation made real: no TPM (absent), a TCTI nobody answers
# (unreachable), swtpm TPM 2.0 (accepted; identity IBM / "SW   TPM", virtual),
# a deny-list rule for all keys and one for RSA key generation only,
# allow_software_tpm = no, and swtpm as a TPM 1.2 (refused). Tokens made with
# the TPM have their wrapping key sealed in it; key pairs are counted per
# backend, and list shows a TPM key's TPM identity. Text and --json.
set -euo pipefail
# shellcheck source=tests/lib/helpers.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/helpers.sh"

require_cmd python3
ksp_setup
require_module
# shellcheck source=tests/lib/tool_helpers.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/tool_helpers.sh"
tool_require
cd "$TEST_DIR"

# status_json NAME PYTHON-EXPR [ENV=VALUE...]: `ksp11 status --json` (with
# the extra environment) satisfies the expression over d.
status_json() {
    local name=$1 expr=$2
    shift 2
    env "$@" "$KSP_TOOL" --module "$KSP11_MODULE" status --json </dev/null >"$name.json" \
        2>"$(ksp_outfile "$name")" || true
    json_check "$name" "$name.json" "$expr" || true
}
status_text() {
    local name=$1
    shift
    env "$@" "$KSP_TOOL" --module "$KSP11_MODULE" status </dev/null >"$name.txt" 2>&1 || true
}

check init-soft ksp init --label soft --so-pin 12345678 --pin 1234 || exit 1
# Made before any TPM exists: this key pair stays in software.
check keygen-soft ksp keygen --token soft --label k --ec P-256 --pin 1234 || true
status_text absent
check_grep absent-text 'TPM: +not used: new keys are created in software \(fallback reason tpm-absent\)' \
    absent.txt || true
check_grep absent-soft-protection 'protection: +PIN-protected: wrapping key under PIN-derived key' \
    absent.txt || true
status_json absent-json 'd["tpm"]["available"] is False and d["tpm"]["verdict"] == "absent" and
    d["tpm"]["reason"] == "tpm-absent"'
status_json unreachable-json 'd["tpm"]["verdict"] == "unreachable" and
    d["tpm"]["reason"] == "tpm-unreachable"' KSP11_TCTI="swtpm:path=$TEST_DIR/nobody.sock"

if ! command -v swtpm >/dev/null 2>&1; then
    skip status-tpm "swtpm not installed"
    ksp_finish
    exit $?
fi
if ! start_swtpm2 "$TEST_DIR/swtpm2"; then
    fail status-swtpm2 "swtpm --tpm2 did not start"
    ksp_finish
    exit 1
fi
check init-tpm ksp init --label tpm --so-pin 12345678 --pin 1234 || true
check init-tpm-pinless ksp init --label tpm-nopin --so-pin 12345678 --no-pin || true
check keygen-tpm ksp keygen --token tpm --label k --ec P-256 --pin 1234 || true
ksp list --token tpm --pin 1234 >list-tpm.txt 2>&1 || true
check_grep list-tpm-identity 'TPM: manufacturer=IBM vendor=SW +TPM firmware=' list-tpm.txt || true
status_text accepted
check_grep accepted-key-pairs-tpm 'key pairs: +1 in the TPM, 0 in software' accepted.txt || true
check_grep accepted-key-pairs-soft 'key pairs: +0 in the TPM, 1 in software' accepted.txt || true
check_grep accepted-text 'TPM: +accepted: new keys are created in the TPM$' accepted.txt || true
check_grep accepted-identity 'identity: +manufacturer IBM, vendor "SW   TPM", firmware [0-9]+\.[0-9]+, spec [0-9]\.[0-9]{2}, virtual' \
    accepted.txt || true
check_grep accepted-tpm-token-sealed 'protection: +PIN-protected: wrapping key sealed in the TPM under the PINs' \
    accepted.txt || true
check_grep accepted-pinless-token-sealed 'protection: +PIN-less: wrapping key sealed in the TPM$' \
    accepted.txt || true
status_json accepted-json 'd["tpm"]["available"] is True and d["tpm"]["verdict"] == "accepted" and
    d["tpm"]["manufacturer"] == "IBM" and d["tpm"]["virtual"] is True and
    d["tpm"]["identity"].startswith("manufacturer=IBM vendor=SW") and
    sorted((s["label"], s["tpm_protected"]) for s in d["slots"] if s["initialized"]) ==
        [("soft", False), ("tpm", True), ("tpm-nopin", True)]'

# Deny rules on this very TPM (manufacturer IBM, any firmware).
printf 'TEST-DENY-ALL IBM 0.0 65535.65535 all\n' >deny-all.conf
printf 'TEST-DENY-RSA IBM 0.0 65535.65535 rsa-keygen\n' >deny-rsa.conf
status_json denied-json 'd["tpm"]["verdict"] == "denied" and d["tpm"]["rule"] == "TEST-DENY-ALL" and
    d["tpm"]["reason"] == "tpm-denied:TEST-DENY-ALL"' KSP11_DENYLIST="$TEST_DIR/deny-all.conf"
status_text denied-rsa KSP11_DENYLIST="$TEST_DIR/deny-rsa.conf"
check_grep denied-rsa-text 'accepted: new keys are created in the TPM \(except RSA keys: deny rule TEST-DENY-RSA\)' \
    denied-rsa.txt || true
printf 'allow_software_tpm = no\n' >no-swtpm.conf
status_json no-software-tpm-json 'd["tpm"]["verdict"] == "denied" and
    d["tpm"]["reason"] == "tpm-denied:software-tpm"' KSP11_CONF="$TEST_DIR/no-swtpm.conf"

# A TPM 1.2 is refused.
if start_swtpm12 "$TEST_DIR/swtpm12"; then
    status_text tpm12
    check_grep tpm12-text 'TPM: +not used: new keys are created in software \(fallback reason tpm-1\.2\)' \
        tpm12.txt || true
    status_json tpm12-json 'd["tpm"]["verdict"] == "tpm-1.2" and d["tpm"]["available"] is False'
else
    fail status-swtpm12 "swtpm (TPM 1.2) did not start"
fi

ksp_finish
