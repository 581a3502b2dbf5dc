#!/usr/bin/env bash
# End to end: the ksp11 command against the built module on a fresh store.
# Token creation with a PIN and PIN-less (--no-pin), RSA and EC key generation,
# list (text, and --json parsed by python3), delete, status, the exit codes
# (0 ok, 2 usage, 3 not found, 4 wrong PIN, 6 refused), a wrong PIN, and
# --require-hardware refused because the test has no TPM.
set -euo pipefail
# shellcheck source=tests/lib/helpers.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/helpers.sh"

require_cmd python3
ksp_setup
require_module

# shellcheck source=tests/lib/tool_helpers.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/tool_helpers.sh"
tool_require

SO_PIN=12345678
PIN=1234
cd "$TEST_DIR"

# --- set-up steps everything else depends on: stop at the first failure ---
check init-with-pin ksp init --label t --so-pin "$SO_PIN" --pin "$PIN"
check_grep init-prints-serial '^serial: [0-9a-f]{16}$' "$(ksp_outfile init-with-pin)"
check init-no-pin ksp init --label daemon --so-pin "$SO_PIN" --no-pin
check_grep init-no-pin-says-so 'PIN-less' "$(ksp_outfile init-no-pin)"
check keygen-rsa ksp keygen --token t --label rsa --rsa 2048 --id 01 --pin "$PIN"
# PIN-less token: no PIN anywhere.
check keygen-ec-pinless ksp keygen --token daemon --label ec --ec P-256
# The PIN from $KSP11_PIN and from a file.
ksp_with_env_pin() {
    KSP11_PIN=$PIN ksp "$@"
}
check keygen-ec-pin-env ksp_with_env_pin keygen --token t --label ec384 --ec P-384 --id a1b2
printf '%s\n' "$PIN" >pinfile
check keygen-ec-pin-source ksp keygen --token t --label ec521 --ec P-521 --pin-source pinfile

# --- from here on each check stands alone ---
out=$(ksp_outfile keygen-rsa)
check_grep keygen-shows-backend 'backend: +software' "$out" || true
check_grep keygen-shows-fallback 'fallback: +tpm-absent' "$out" || true
check_grep keygen-shows-uri 'pkcs11:token=t;object=rsa;type=private;id=%01$' "$out" || true

ksp list --pin "$PIN" >list.txt 2>&1 || fail list-text "exit $?"
check_grep list-rsa 'private key +RSA-2048 +label "rsa" +id 01' list.txt || true
check_grep list-rsa-public 'public key +RSA-2048 +label "rsa"' list.txt || true
check_grep list-ec 'private key +EC P-256 +label "ec"' list.txt || true
check_grep list-ec384 'EC P-384 +label "ec384" +id a1b2' list.txt || true
check_grep list-ec521 'EC P-521 +label "ec521"' list.txt || true
check_grep list-backend 'backend: software, impl type 0x2 software, fallback reason: tpm-absent' \
    list.txt || true
check_grep list-uri 'uri: pkcs11:token=t;object=ec384;type=private;id=%a1%b2' list.txt || true
check_grep list-uri-pinless 'uri: pkcs11:token=daemon;object=ec;type=private;id=' list.txt || true

# Without a PIN the login-required token shows its public objects only.
ksp list --token t >list-nopin.txt 2>&1 || fail list-no-pin "exit $?"
if grep -q 'private key' list-nopin.txt; then
    fail list-no-pin-hides-private "private key listed without login"
else
    pass list-no-pin-hides-private
fi
check_grep list-no-pin-shows-public 'public key +RSA-2048 +label "rsa"' list-nopin.txt || true

ksp --json list --pin "$PIN" >list.json 2>list.err || fail list-json "exit $?"
json_check list-json-tokens list.json \
    'sorted(t["label"] for t in d["tokens"]) == ["daemon", "t"]' || true
json_check list-json-rsa list.json \
    'any(o["class"] == "private" and o["key_type"] == "RSA" and o["bits"] == 2048 and
         o["id"] == "01" and o["backend"] == 2 and o["backend_name"] == "software" and
         o["impl_type"] == 2 and o["fallback_reason"] == "tpm-absent" and
         o["uri"] == "pkcs11:token=t;object=rsa;type=private;id=%01"
         for t in d["tokens"] for o in t["objects"])' || true
json_check list-json-ec list.json \
    'any(o["label"] == "ec" and o["curve"] == "P-256" and o["class"] == "public"
         for t in d["tokens"] if t["label"] == "daemon" for o in t["objects"])' || true
ksp list --token daemon --json >list-daemon.json 2>&1 || fail list-json-token "exit $?"
json_check list-json-one-token list-daemon.json \
    '[t["label"] for t in d["tokens"]] == ["daemon"] and len(d["tokens"][0]["objects"]) == 2' ||
    true

# Another client sees the same key under the same id.
if command -v pkcs11-tool >/dev/null 2>&1; then
    p11 --token-label t --login --pin "$PIN" --list-objects >p11-list.txt 2>&1 || true
    check_grep pkcs11-tool-sees-key 'label: +rsa' p11-list.txt || true
    check_grep pkcs11-tool-sees-id 'ID: +01$' p11-list.txt || true
else
    skip pkcs11-tool-sees-key "pkcs11-tool not installed"
fi

ksp status >status.txt 2>&1 || fail status "exit $?"
check_grep status-library 'ksp11 PKCS#11 module .*Cryptoki 2\.40' status.txt || true
check_grep status-store "store root: +$KSP11_STORE \\(from KSP11_STORE\\)" status.txt || true
check_grep status-tpm 'TPM: +not used: new keys are created in software \(fallback reason tpm-absent\)' \
    status.txt || true
check_grep status-pin-token 'PIN-protected: wrapping key under PIN-derived key \(PBKDF2\)' \
    status.txt || true
check_grep status-pinless-token 'PIN-less: wrapping key protected by file permissions only' \
    status.txt || true
check_grep status-key-pairs 'key pairs: +0 in the TPM, 3 in software' status.txt || true
check_grep status-login-required 'flags: +token initialized, login required' status.txt || true
check_grep status-empty-slot 'empty \(create a token here' status.txt || true
ksp status --json --pin "$PIN" >status.json 2>&1 || fail status-json "exit $?"
json_check status-json status.json \
    'd["tpm"]["available"] is False and d["tpm"]["verdict"] == "absent" and d["store_root"] == "'"$KSP11_STORE"'" and
     any(s.get("label") == "t" and s["login_required"] and not s["pin_less"] and
         s["objects"] == 6 and s["objects_counted"] == "all" for s in d["slots"]) and
     any(s.get("label") == "daemon" and s["pin_less"] for s in d["slots"]) and
     sum(1 for s in d["slots"] if not s["initialized"]) == 1' || true

# --- failures: precise exit codes (ksp11 --help) and a CKR name ---
expect_rc wrong-pin-exits-4 4 ksp list --token t --pin 9999 || true
check_grep wrong-pin-message 'login to token "t" failed: CKR_PIN_INCORRECT \(0x000000a0\)' \
    "$(ksp_outfile wrong-pin-exits-4)" || true
ksp status >status-after.txt 2>&1 || true
check_grep wrong-pin-counted 'user PIN: recent wrong attempts' status-after.txt || true
check list-after-wrong-pin ksp list --token t --pin "$PIN" || true

expect_rc require-hardware-exits-6 6 ksp keygen --token t --label hw --ec P-256 \
    --require-hardware --pin "$PIN" || true
check_grep require-hardware-message \
    'require-hardware.*no acceptable TPM.*CKR_TEMPLATE_INCONSISTENT' \
    "$(ksp_outfile require-hardware-exits-6)" || true
ksp list --token t --pin "$PIN" >list-hw.txt 2>&1 || true
if grep -q 'label "hw"' list-hw.txt; then
    fail require-hardware-no-key "a key was created anyway"
else
    pass require-hardware-no-key
fi

expect_rc unknown-token-exits-3 3 ksp keygen --token nope --label x --ec P-256 --pin "$PIN" || true
expect_rc duplicate-token-label-exits-6 6 ksp init --label t --so-pin "$SO_PIN" --pin "$PIN" || true
expect_rc duplicate-key-label-exits-6 6 ksp keygen --token t --label rsa --ec P-256 \
    --pin "$PIN" || true
expect_rc pin-file-missing-exits-5 5 ksp list --token t --pin-source "$TEST_DIR/no-such-pin" || true
expect_rc list-unknown-token-exits-3 3 ksp list --token nope || true
expect_rc init-short-pin-exits-2 2 ksp init --label short --so-pin "$SO_PIN" --pin 12 || true
check_grep init-short-pin-message 'user PIN must be 4 to 255 bytes' \
    "$(ksp_outfile init-short-pin-exits-2)" || true
expect_rc module-missing-exits-1 1 "$KSP_TOOL" --module "$TEST_DIR/no-such-module.so" list || true
check_grep module-missing-message 'cannot load module' "$(ksp_outfile module-missing-exits-1)" ||
    true
# No PIN and no terminal to ask on: a usage error, not a hang.
expect_rc missing-pin-exits-2 2 ksp keygen --token t --label x --ec P-256 || true

# --- usage errors exit 2 ---
expect_rc usage-no-command 2 ksp || true
expect_rc usage-unknown-command 2 ksp frobnicate || true
expect_rc usage-unknown-option 2 ksp list --frobnicate || true
expect_rc usage-unknown-global-option 2 ksp --frobnicate list || true
expect_rc usage-missing-value 2 ksp list --token || true
expect_rc usage-extra-argument 2 ksp status extra || true
expect_rc usage-bad-hex 2 ksp keygen --token t --label x --ec P-256 --id 0g --pin "$PIN" || true
expect_rc usage-odd-hex 2 ksp delete --token t --id 123 --pin "$PIN" || true
expect_rc usage-rsa-and-ec 2 ksp keygen --token t --label x --rsa 2048 --ec P-256 || true
expect_rc usage-no-algorithm 2 ksp keygen --token t --label x || true
expect_rc usage-bad-bits 2 ksp keygen --token t --label x --rsa 2k || true
expect_rc usage-bad-curve 2 ksp keygen --token t --label x --ec P-123 || true
expect_rc usage-long-label 2 ksp init --label 0123456789abcdef0123456789abcdef0 \
    --so-pin "$SO_PIN" --pin "$PIN" || true
expect_rc usage-no-pin-and-pin 2 ksp init --label z --so-pin "$SO_PIN" --no-pin --pin "$PIN" ||
    true
expect_rc usage-delete-needs-selector 2 ksp delete --token t || true
# "--label --ec P-256": the next option is not taken as the label.
expect_rc usage-option-as-value 2 ksp keygen --token t --label --ec P-256 --pin "$PIN" || true
check_grep usage-option-as-value-message "option '--label' needs a value" \
    "$(ksp_outfile usage-option-as-value)" || true
check_grep usage-message 'Try .ksp11 delete --help.' "$(ksp_outfile usage-delete-needs-selector)" ||
    true
for c in status list init keygen delete selfsign csr import-cert check-cert; do
    expect_rc "help-$c" 0 ksp "$c" --help || true
done
expect_rc help-global 0 ksp --help || true

# --- delete ---
if check delete-by-label ksp delete --token t --label rsa --pin "$PIN"; then
    check_grep delete-counts 'deleted 2 objects from token "t"' "$(ksp_outfile delete-by-label)" ||
        true
fi
ksp list --token t --pin "$PIN" >list-deleted.txt 2>&1 || true
if grep -q 'label "rsa"' list-deleted.txt; then
    fail delete-removed-objects "rsa still listed"
else
    pass delete-removed-objects
fi
expect_rc delete-again-exits-3 3 ksp delete --token t --label rsa --pin "$PIN" || true
check delete-by-id-pinless ksp delete --token daemon --id "$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(d["tokens"][0]["objects"][0]["id"])' list-daemon.json)" || true
ksp --json list --token daemon >list-daemon-after.json 2>&1 || true
json_check delete-by-id-removed list-daemon-after.json 'd["tokens"][0]["objects"] == []' || true

ksp_finish
