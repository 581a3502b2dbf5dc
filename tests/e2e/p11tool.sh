#!/usr/bin/env bash
# End to end: GnuTLS's p11tool with the module (--provider, RFC 7512 pkcs11:
# URIs). (1) It sees the matrix tokens (software and TPM keys, RSA-2048 and
# P-256): --list-tokens, --list-all without and with login (private objects
# hidden, then listed as sensitive), --test-sign (PKCS#1 v1.5, RSA-PSS, ECDSA).
# (2) It manages a token end to end on its own: --initialize the empty token,
# --initialize-pin / --initialize-so-pin, --generate-privkey RSA and ECDSA (in
# the TPM), --test-sign them, --write a certificate next to its key (same
# CKA_ID), --export it back, --delete certificate and keys, re-initialise.
set -uo pipefail
# shellcheck source=tests/lib/helpers.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/helpers.sh"

require_cmd p11tool pkcs11-tool openssl
ksp_setup
require_module
cd "$TEST_DIR" || exit 1

p11tool_() {
    p11tool --provider "$KSP11_MODULE" --batch "$@"
}

ksp_matrix_tokens || true

# ---- (1) the matrix tokens ----
if check list-tokens p11tool_ --list-tokens; then
    out=$(ksp_outfile list-tokens)
    for t in $KSP_MATRIX_TOKENS; do
        check_grep "list-tokens-label-$t" "^[[:space:]]*Label: $t\$" "$out" || true
        check_grep "list-tokens-uri-$t" "URL: pkcs11:.*token=$t\$" "$out" || true
    done
fi

unset GNUTLS_PIN
for t in $KSP_MATRIX_TOKENS; do
    # Without login only public objects are visible.
    if check "list-all-public-$t" p11tool_ --list-all "pkcs11:token=$t"; then
        out=$(ksp_outfile "list-all-public-$t")
        check_grep "list-all-$t-rsa-pub-uri" "URL: pkcs11:.*token=$t;.*object=rsa;type=public" "$out" || true
        check_grep "list-all-$t-ec-pub-uri" "URL: pkcs11:.*token=$t;.*object=ec;type=public" "$out" || true
        check_grep "list-all-$t-rsa-2048" 'Public key \(RSA-2048\)' "$out" || true
        check_grep "list-all-$t-ec-p256" 'Public key \(EC/ECDSA-SECP256R1\)' "$out" || true
        if grep -q 'type=private' "$out"; then
            fail "list-all-$t-hides-private" "private objects listed without login"
        else
            pass "list-all-$t-hides-private"
        fi
    fi
done

export GNUTLS_PIN=$KSP_PIN
for t in $KSP_MATRIX_TOKENS; do
    if check "list-all-login-$t" p11tool_ --login --list-all "pkcs11:token=$t"; then
        out=$(ksp_outfile "list-all-login-$t")
        check_grep "list-all-$t-rsa-priv-uri" "URL: pkcs11:.*token=$t;.*object=rsa;type=private" "$out" || true
        check_grep "list-all-$t-ec-priv-uri" "URL: pkcs11:.*token=$t;.*object=ec;type=private" "$out" || true
        check_grep "list-all-$t-priv-sensitive" 'CKA_NEVER_EXTRACTABLE; CKA_SENSITIVE' "$out" || true
    fi
    # --test-sign: sign, then verify against the key's parameters and the token's public key.
    check "test-sign-$t-rsa" p11tool_ --login --test-sign "pkcs11:token=$t;object=rsa;type=private" || true
    check "test-sign-$t-rsa-pss" p11tool_ --login --test-sign --sign-params RSA-PSS \
        "pkcs11:token=$t;object=rsa;type=private" || true
    check "test-sign-$t-ecdsa" p11tool_ --login --test-sign "pkcs11:token=$t;object=ec;type=private" || true
done

# ---- (2) a token managed by p11tool alone ----
SO2=87654321
PIN2=4321
# The empty token: ksp11's uninitialised token has an empty label.
export GNUTLS_SO_PIN=$KSP_SO_PIN
if ! check mgmt-initialize p11tool_ --initialize --label gt 'pkcs11:model=ksp11;token='; then
    ksp_finish
    exit 1
fi
p11tool_ --list-tokens >tokens1.txt 2>&1
check_grep mgmt-initialized-token-listed '^[[:space:]]*Label: gt$' tokens1.txt || true
check_grep mgmt-initialized-upin-uninitialized 'uPIN uninitialized' tokens1.txt || true
# The matrix tokens were left alone.
for t in $KSP_MATRIX_TOKENS; do
    check_grep "mgmt-initialize-kept-$t" "^[[:space:]]*Label: $t\$" tokens1.txt || true
done

# User PIN by the SO, then a new SO PIN (the old one stops working).
GNUTLS_PIN=$PIN2 check mgmt-initialize-pin p11tool_ --initialize-pin 'pkcs11:token=gt' || true
GNUTLS_NEW_SO_PIN=$SO2 check mgmt-initialize-so-pin p11tool_ --initialize-so-pin 'pkcs11:token=gt' ||
    true
GNUTLS_PIN=1111 check_fails mgmt-old-so-pin-refused p11tool_ --initialize-pin 'pkcs11:token=gt' &&
    check_grep mgmt-old-so-pin-reason 'Wrong PIN' "$(ksp_outfile mgmt-old-so-pin-refused)" || true
GNUTLS_PIN=$PIN2 GNUTLS_SO_PIN=$SO2 check mgmt-new-so-pin-works p11tool_ --initialize-pin \
    'pkcs11:token=gt' || true
export GNUTLS_PIN=$PIN2 GNUTLS_SO_PIN=$SO2

# Key pairs: made in the TPM when there is one.
check mgmt-generate-rsa p11tool_ --login --generate-privkey RSA --bits 2048 --label r1 \
    --outfile r1.pub 'pkcs11:token=gt' || true
check mgmt-generate-ecdsa p11tool_ --login --generate-privkey ECDSA --curve secp256r1 --label e1 \
    --outfile e1.pub 'pkcs11:token=gt' || true
if [ -n "${KSP11_TCTI:-}" ]; then
    gt_in_tpm() {
        "$KSP_BUILD/ksp11" list --token gt --json --pin "$PIN2" >gt.json || return 1
        [ "$(grep -c '"backend_name": "TPM"' gt.json)" -eq 4 ]
    }
    check mgmt-keys-in-tpm gt_in_tpm || true
fi
check mgmt-test-sign-rsa p11tool_ --login --test-sign 'pkcs11:token=gt;object=r1;type=private' || true
check mgmt-test-sign-ecdsa p11tool_ --login --test-sign 'pkcs11:token=gt;object=e1;type=private' || true
check_fails mgmt-wrong-pin-refused env GNUTLS_PIN=9999 p11tool --provider "$KSP11_MODULE" --batch \
    --login --test-sign 'pkcs11:token=gt;object=e1;type=private' &&
    check_grep mgmt-wrong-pin-reason 'Wrong PIN' "$(ksp_outfile mgmt-wrong-pin-refused)" || true
# (Two wrong PINs so far: a swtpm TPM locks out after its third dictionary-attack failure.)

# A certificate for e1 (self-signed with the token key by certtool), written next to it.
if command -v certtool >/dev/null; then
    printf 'cn = "ksp11-p11tool"\nexpiration_days = 1\ntls_www_client\nsigning_key\n' >e1.tmpl
    if check mgmt-selfsign-e1 certtool --provider "$KSP11_MODULE" --generate-self-signed \
        --load-privkey 'pkcs11:token=gt;object=e1;type=private' --template e1.tmpl \
        --outfile e1.pem; then
        if check mgmt-write-cert p11tool_ --login --write --load-certificate e1.pem --label e1 \
            'pkcs11:token=gt'; then
            p11tool_ --login --list-all 'pkcs11:token=gt' >objects.txt 2>&1
            cert_id=$(sed -n 's/.*URL: pkcs11:.*;id=\([^;]*\);object=e1;type=cert$/\1/p' objects.txt)
            key_id=$(sed -n 's/.*URL: pkcs11:.*;id=\([^;]*\);object=e1;type=private$/\1/p' objects.txt)
            if [ -n "$cert_id" ] && [ "$cert_id" = "$key_id" ]; then
                pass mgmt-cert-id-matches-key
            else
                fail mgmt-cert-id-matches-key "cert id '$cert_id', key id '$key_id'"
                show_tail objects.txt
            fi
            if check mgmt-export-cert p11tool_ --export 'pkcs11:token=gt;object=e1;type=cert' \
                --outfile e1-back.pem; then
                check mgmt-exported-cert-same cmp <(openssl x509 -in e1.pem -outform DER) \
                    <(openssl x509 -in e1-back.pem -outform DER) || true
            fi
            if check mgmt-delete-cert p11tool_ --login --delete 'pkcs11:token=gt;object=e1;type=cert'; then
                p11tool_ --login --list-all 'pkcs11:token=gt' >objects2.txt 2>&1
                if grep -q 'object=e1;type=cert' objects2.txt; then
                    fail mgmt-deleted-cert-gone "certificate still listed"
                else
                    check_grep mgmt-deleted-cert-key-kept 'object=e1;type=private' objects2.txt || true
                fi
            fi
        fi
    fi
else
    skip mgmt-write-cert "certtool not installed"
fi

# Delete the RSA key pair: private and public.
check mgmt-delete-r1 p11tool_ --login --delete 'pkcs11:token=gt;object=r1' || true
p11tool_ --login --list-all 'pkcs11:token=gt' >objects3.txt 2>&1
if grep -q 'object=r1' objects3.txt; then
    fail mgmt-deleted-keys-gone "r1 still listed"
    show_tail objects3.txt
else
    pass mgmt-deleted-keys-gone
fi

# Re-initialise: a new label, no objects left, the user PIN to be set again.
if check mgmt-reinitialize p11tool_ --initialize --label gt2 'pkcs11:token=gt'; then
    p11tool_ --list-tokens >tokens2.txt 2>&1
    check_grep mgmt-reinitialized-label '^[[:space:]]*Label: gt2$' tokens2.txt || true
    GNUTLS_PIN=$PIN2 p11tool_ --initialize-pin 'pkcs11:token=gt2' >/dev/null 2>&1
    p11tool_ --login --list-all 'pkcs11:token=gt2' >objects4.txt 2>&1
    if grep -q 'URL:' objects4.txt; then
        fail mgmt-reinitialized-empty "objects survived re-initialisation"
        show_tail objects4.txt
    else
        pass mgmt-reinitialized-empty
    fi
fi

ksp_finish
