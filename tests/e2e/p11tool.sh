#!/usr/bin/env bash
# End to end: GnuTLS's p11tool sees the token and its objects through the module,
# with RFC 7512 pkcs11: URIs, and signs with the token keys (--test-sign).
# The token and keys are made with pkcs11-tool (p11tool cannot see an
# uninitialised token).
set -euo pipefail
# shellcheck source=tests/lib/helpers.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/helpers.sh"

require_cmd p11tool pkcs11-tool
ksp_setup
require_module

PIN=1234
U=(--token-label t --login --pin "$PIN")
cd "$TEST_DIR"

p11tool_() {
    p11tool --provider "$KSP11_MODULE" "$@"
}

check setup-init-token p11 --init-token --label t --so-pin 12345678
check setup-init-pin p11 --token-label t --init-pin --login --login-type so --so-pin 12345678 --pin "$PIN"
check setup-keygen-rsa p11 "${U[@]}" --keypairgen --key-type RSA:2048 --id 01 --label k
check setup-keygen-ec p11 "${U[@]}" --keypairgen --key-type EC:prime256v1 --id 02 --label ec

if check list-tokens p11tool_ --list-tokens; then
    out=$(ksp_outfile list-tokens)
    check_grep list-tokens-label '^[[:space:]]*Label: t$' "$out" || true
    check_grep list-tokens-uri 'URL: pkcs11:.*token=t' "$out" || true
fi

# Without login only public objects are visible.
if check list-all-public p11tool_ --list-all 'pkcs11:token=t'; then
    out=$(ksp_outfile list-all-public)
    check_grep list-all-rsa-pub-uri 'URL: pkcs11:.*token=t;.*object=k;type=public' "$out" || true
    check_grep list-all-ec-pub-uri 'URL: pkcs11:.*token=t;.*object=ec;type=public' "$out" || true
    check_grep list-all-rsa-2048 'Public key \(RSA-2048\)' "$out" || true
    if grep -q 'type=private' "$out"; then
        fail list-all-hides-private "private objects listed without login"
    else
        pass list-all-hides-private
    fi
fi

export GNUTLS_PIN=$PIN
if check list-all-login p11tool_ --login --list-all 'pkcs11:token=t'; then
    out=$(ksp_outfile list-all-login)
    check_grep list-all-rsa-priv-uri 'URL: pkcs11:.*token=t;.*object=k;type=private' "$out" || true
    check_grep list-all-ec-priv-uri 'URL: pkcs11:.*token=t;.*object=ec;type=private' "$out" || true
    check_grep list-all-priv-sensitive 'CKA_NEVER_EXTRACTABLE; CKA_SENSITIVE' "$out" || true
fi

# --test-sign: sign, then verify against the key's parameters and the token's public key.
check test-sign-rsa p11tool_ --login --test-sign 'pkcs11:token=t;object=k;type=private' || true
check test-sign-rsa-pss p11tool_ --login --test-sign --sign-params RSA-PSS \
    'pkcs11:token=t;object=k;type=private' || true
check test-sign-ecdsa p11tool_ --login --test-sign 'pkcs11:token=t;object=ec;type=private' || true

ksp_finish
