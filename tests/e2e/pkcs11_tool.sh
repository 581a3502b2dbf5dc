#!/usr/bin/env bash
# End to end: OpenSC's pkcs11-tool drives the module on a fresh store: token and
# PIN set-up, RSA and EC key generation, signatures checked by OpenSSL against
# the public key read back from the token, pkcs11-tool's own --test, certificate
# objects, deletion, a wrong PIN, and that the private key cannot be read out;
# PIN changes (user and SO), key pair deletion, and the same with TPM keys.
set -euo pipefail
# shellcheck source=tests/lib/helpers.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/helpers.sh"

require_cmd pkcs11-tool openssl
ksp_setup
require_module

SO_PIN=12345678
PIN=1234
T=(--token-label t)
U=(--token-label t --login --pin "$PIN")
cd "$TEST_DIR"

# Set-up steps everything else depends on: stop at the first failure.
check init-token p11 --init-token --label t --so-pin "$SO_PIN"
check init-pin p11 "${T[@]}" --init-pin --login --login-type so --so-pin "$SO_PIN" --pin "$PIN"
check keygen-rsa2048 p11 "${U[@]}" --keypairgen --key-type RSA:2048 --id 01 --label rsa
check keygen-ec-p256 p11 "${U[@]}" --keypairgen --key-type EC:prime256v1 --id 02 --label ec

check read-pubkey-rsa p11 "${T[@]}" --read-object --type pubkey --id 01 -o rsa.der
check read-pubkey-ec p11 "${T[@]}" --read-object --type pubkey --id 02 -o ec.der
check pubkey-rsa-to-pem der_to_pubpem rsa.der rsa.pem
check pubkey-ec-to-pem der_to_pubpem ec.der ec.pem
check_grep pubkey-rsa-2048 '(Public-Key|RSA Public-Key): \(2048 bit\)' \
    <(openssl pkey -pubin -in rsa.pem -noout -text)
check_grep pubkey-ec-p256 'prime256v1|P-256' <(openssl pkey -pubin -in ec.pem -noout -text)

head -c 1000 /dev/urandom >data
openssl dgst -sha256 -binary data >data.sha256

# From here on each check stands alone: keep going after a failure.
if check sign-sha256-rsa-pkcs p11 "${U[@]}" --sign --mechanism SHA256-RSA-PKCS --id 01 \
    -i data -o sig.pkcs1; then
    check verify-sha256-rsa-pkcs openssl dgst -sha256 -verify rsa.pem -signature sig.pkcs1 data || true
fi

# Raw PSS over a digest (what TLS 1.3 uses), salt = hash length.
if check sign-rsa-pkcs-pss p11 "${U[@]}" --sign --mechanism RSA-PKCS-PSS --hash-algorithm SHA256 \
    --mgf MGF1-SHA256 --id 01 -i data.sha256 -o sig.pss; then
    check verify-rsa-pkcs-pss openssl pkeyutl -verify -pubin -inkey rsa.pem -in data.sha256 \
        -sigfile sig.pss -pkeyopt digest:sha256 -pkeyopt rsa_padding_mode:pss \
        -pkeyopt rsa_pss_saltlen:digest || true
fi

if check sign-sha256-rsa-pkcs-pss p11 "${U[@]}" --sign --mechanism SHA256-RSA-PKCS-PSS --id 01 \
    -i data -o sig.pss2; then
    check verify-sha256-rsa-pkcs-pss openssl dgst -sha256 -verify rsa.pem -sigopt rsa_padding_mode:pss \
        -sigopt rsa_pss_saltlen:digest -signature sig.pss2 data || true
fi

if check sign-ecdsa-sha256 p11 "${U[@]}" --sign --mechanism ECDSA-SHA256 --signature-format openssl \
    --id 02 -i data -o sig.ecdsa; then
    check verify-ecdsa-sha256 openssl dgst -sha256 -verify ec.pem -signature sig.ecdsa data || true
fi

# Raw ECDSA over a digest (what TLS stacks use).
if check sign-ecdsa p11 "${U[@]}" --sign --mechanism ECDSA --signature-format openssl \
    --id 02 -i data.sha256 -o sig.ecdsa-raw; then
    check verify-ecdsa openssl pkeyutl -verify -pubin -inkey ec.pem -in data.sha256 \
        -sigfile sig.ecdsa-raw || true
fi

# pkcs11-tool's own self test (digests, signatures, verify, decrypt, ...).
# It exits non-zero when any of its checks reports an error.
check pkcs11-tool-test p11 "${U[@]}" --test || true

# A certificate object: write, list, delete.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -keyout cert.key \
    -subj /CN=ksp11-e2e-object -days 1 -outform DER -out cert.der >/dev/null 2>&1
if check write-cert p11 "${U[@]}" --write-object cert.der --type cert --id 03 --label mycert; then
    p11 "${T[@]}" --list-objects >objects.txt 2>&1 || true
    check_grep list-objects-shows-cert 'label: +mycert' objects.txt || true
    check_grep list-objects-shows-cert-subject 'CN=ksp11-e2e-object' objects.txt || true
    check_grep list-objects-shows-rsa-key 'label: +rsa' objects.txt || true
    if check delete-cert p11 "${U[@]}" --delete-object --type cert --id 03; then
        p11 "${T[@]}" --list-objects >objects2.txt 2>&1 || true
        if grep -q 'mycert' objects2.txt; then
            fail deleted-cert-gone "mycert still listed"
        else
            pass deleted-cert-gone
        fi
    fi
fi

# Non-exportable: generated private keys are sensitive and never extractable.
p11 "${U[@]}" --list-objects --type privkey >privkeys.txt 2>&1 || true
check_grep private-keys-listed 'label: +rsa' privkeys.txt || true
if grep -E -q 'Access:.*(:|,) +extractable' privkeys.txt ||
    [ "$(grep -c 'Access:.*sensitive, always sensitive, never extractable' privkeys.txt)" -ne 2 ]; then
    fail private-keys-non-exportable "expected both keys sensitive + never extractable"
    show_tail privkeys.txt
else
    pass private-keys-non-exportable
fi

check_fails wrong-pin-refused p11 "${T[@]}" --login --pin 9999 --list-objects || true
check_grep wrong-pin-is-pin-incorrect 'CKR_PIN_INCORRECT' "$(ksp_outfile wrong-pin-refused)" || true
# One wrong PIN neither locks the token nor breaks the right one.
check right-pin-after-wrong-pin p11 "${U[@]}" --list-objects || true

# PIN-less token (behaviour.md): empty user PIN set by the SO; then no login is
# needed for private keys, and C_Login as user says "already logged in".
if check pinless-token make_pinless_token nopin "$SO_PIN"; then
    token_flags nopin >pinless-info.txt 2>&1 || echo "token nopin not listed" >>pinless-info.txt
    if ! grep -q 'token flags' pinless-info.txt; then
        fail pinless-no-login-required "token nopin not listed by pkcs11-tool -L"
    elif grep -q 'login required' pinless-info.txt; then
        fail pinless-no-login-required "token still says login required"
        show_tail pinless-info.txt
    else
        pass pinless-no-login-required
    fi
    check_grep pinless-pin-initialized 'PIN initialized' pinless-info.txt || true
    if check pinless-keygen p11 --token-label nopin --keypairgen --key-type EC:prime256v1 \
        --id 01 --label ec; then
        p11 --token-label nopin --list-objects --type privkey >pinless-keys.txt 2>&1 || true
        check_grep pinless-private-key-visible 'label: +ec' pinless-keys.txt || true
        check pinless-read-pubkey p11 --token-label nopin --read-object --type pubkey --id 01 \
            -o nopin.der || true
        der_to_pubpem nopin.der nopin.pem 2>/dev/null || true
        if check pinless-sign p11 --token-label nopin --sign --mechanism ECDSA-SHA256 \
            --signature-format openssl --id 01 -i data -o sig.nopin; then
            check pinless-verify openssl dgst -sha256 -verify nopin.pem -signature sig.nopin data || true
        fi
        check_fails pinless-login-already-logged-in p11 --token-label nopin --login --pin 1234 \
            --list-objects || true
        check_grep pinless-login-is-already-logged-in 'CKR_USER_ALREADY_LOGGED_IN' \
            "$(ksp_outfile pinless-login-already-logged-in)" || true
    fi
    # The first token still wants its PIN.
    p11 --token-label t --list-objects --type privkey >t-nologin.txt 2>&1 || true
    if grep -q 'label: *rsa' t-nologin.txt; then
        fail pin-token-still-private "private key of token t visible without login"
    else
        pass pin-token-still-private
    fi
fi

# PIN management: the user changes the PIN (C_SetPIN), the old one stops working;
# the SO changes the SO PIN.
if check change-user-pin p11 "${T[@]}" --change-pin --pin "$PIN" --new-pin 5678; then
    check_fails changed-pin-old-refused p11 "${T[@]}" --login --pin "$PIN" --list-objects || true
    check changed-pin-new-works p11 "${T[@]}" --login --pin 5678 --list-objects --type privkey || true
    check change-user-pin-back p11 "${T[@]}" --change-pin --pin 5678 --new-pin "$PIN" || true
fi
if check change-so-pin p11 "${T[@]}" --change-pin --login --login-type so --so-pin "$SO_PIN" \
    --new-pin 87654321; then
    check_fails changed-so-pin-old-refused p11 "${T[@]}" --init-pin --login --login-type so \
        --so-pin "$SO_PIN" --pin "$PIN" || true
    # The SO resets the user PIN with the new SO PIN.
    check changed-so-pin-new-works p11 "${T[@]}" --init-pin --login --login-type so \
        --so-pin 87654321 --pin "$PIN" || true
    check change-so-pin-back p11 "${T[@]}" --change-pin --login --login-type so \
        --so-pin 87654321 --new-pin "$SO_PIN" || true
fi

# Deleting a key pair: both halves go, and the key no longer signs.
check delete-ec-private p11 "${U[@]}" --delete-object --type privkey --id 02 || true
check delete-ec-public p11 "${U[@]}" --delete-object --type pubkey --id 02 || true
p11 "${U[@]}" --list-objects >objects3.txt 2>&1 || true
if grep -q 'label: *ec$' objects3.txt; then
    fail deleted-key-pair-gone "ec still listed"
    show_tail objects3.txt
else
    pass deleted-key-pair-gone
fi
check_fails deleted-key-cannot-sign p11 "${U[@]}" --sign --mechanism ECDSA --id 02 \
    -i data.sha256 -o sig.gone || true

# The same life cycle with keys in a TPM (swtpm): a token "tpm" with RSA and
# EC keys (ksp_matrix_tokens), signatures checked by OpenSSL, deletion.
ksp_matrix_tokens || true
case " $KSP_MATRIX_TOKENS " in
*" tpm "*)
    pass tpm-token-and-keys
    TU=(--token-label tpm --login --pin "$KSP_PIN")
    if check tpm-sign-sha256-rsa-pkcs p11 "${TU[@]}" --sign --mechanism SHA256-RSA-PKCS --id 01 \
        -i data -o tsig.pkcs1; then
        check tpm-verify-sha256-rsa-pkcs openssl dgst -sha256 -verify pub-tpm-rsa.pem \
            -signature tsig.pkcs1 data || true
    fi
    if check tpm-sign-rsa-pkcs-pss p11 "${TU[@]}" --sign --mechanism RSA-PKCS-PSS \
        --hash-algorithm SHA256 --mgf MGF1-SHA256 --id 01 -i data.sha256 -o tsig.pss; then
        check tpm-verify-rsa-pkcs-pss openssl pkeyutl -verify -pubin -inkey pub-tpm-rsa.pem \
            -in data.sha256 -sigfile tsig.pss -pkeyopt digest:sha256 -pkeyopt rsa_padding_mode:pss \
            -pkeyopt rsa_pss_saltlen:digest || true
    fi
    if check tpm-sign-ecdsa-sha256 p11 "${TU[@]}" --sign --mechanism ECDSA-SHA256 \
        --signature-format openssl --id 02 -i data -o tsig.ec; then
        check tpm-verify-ecdsa-sha256 openssl dgst -sha256 -verify pub-tpm-ec.pem \
            -signature tsig.ec data || true
    fi
    if check tpm-write-cert p11 "${TU[@]}" --write-object cert.der --type cert --id 03 \
        --label tcert; then
        check tpm-delete-cert p11 "${TU[@]}" --delete-object --type cert --id 03 || true
    fi
    p11 "${TU[@]}" --list-objects --type privkey >tpm-privkeys.txt 2>&1 || true
    if [ "$(grep -c 'Access:.*sensitive, always sensitive, never extractable' tpm-privkeys.txt)" -eq 2 ]; then
        pass tpm-private-keys-non-exportable
    else
        fail tpm-private-keys-non-exportable "expected both TPM keys sensitive + never extractable"
        show_tail tpm-privkeys.txt
    fi
    check tpm-delete-rsa-private p11 "${TU[@]}" --delete-object --type privkey --id 01 &&
        check tpm-delete-rsa-public p11 "${TU[@]}" --delete-object --type pubkey --id 01 &&
        check_fails tpm-deleted-key-cannot-sign p11 "${TU[@]}" --sign --mechanism SHA256-RSA-PKCS \
            --id 01 -i data -o tsig.gone || true
    ;;
*)
    skip tpm-token-and-keys "no TPM token (see matrix-tpm above)"
    ;;
esac

ksp_finish
