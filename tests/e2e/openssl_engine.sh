#!/usr/bin/env bash
# End to end: OpenSSL 3 uses token keys through libp11's "pkcs11" engine
# (libengine-pkcs11-openssl), loaded from a private openssl.cnf that points it at
# the module: CSRs and self-signed certificates (`openssl req`, `openssl x509
# -req -signkey`) from pkcs11: URIs, RSA (PKCS#1 v1.5 and PSS) and ECDSA
# signatures checked with the public key alone; with software keys and with
# TPM keys (swtpm), see ksp_matrix_tokens.
set -euo pipefail
# shellcheck source=tests/lib/helpers.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/helpers.sh"

require_cmd openssl pkcs11-tool
ksp_setup
ksp_engine_path >/dev/null || skip_all "libp11 engine pkcs11.so not found; install libengine-pkcs11-openssl"
require_module

cd "$TEST_DIR"
ksp_matrix_tokens || true
write_engine_conf openssl.cnf
export OPENSSL_CONF=$TEST_DIR/openssl.cnf

# $1 = name, $2 = key URI, $3 = public key PEM the request must carry.
csr_test() {
    if check "csr-$1" openssl req -new -engine pkcs11 -keyform engine -key "$2" \
        -subj "/CN=ksp11-e2e-$1" -out "$1.csr"; then
        check "csr-$1-verifies" openssl req -verify -noout -in "$1.csr" || true
        if ksp_same_pubkey <(openssl req -in "$1.csr" -noout -pubkey) "$3"; then
            pass "csr-$1-has-token-pubkey"
        else
            fail "csr-$1-has-token-pubkey" "public key in CSR differs from the token's"
        fi
    fi
}

# Self-signed certificates with `openssl req -x509`; the RSA-PSS one needs
# salt = hash length. $3 = the token's public key PEM.
x509_test() {
    local name=$1 key=$2 pub=$3
    shift 3
    if check "x509-$name" openssl req -x509 -new -engine pkcs11 -keyform engine -key "$key" \
        -subj "/CN=ksp11-e2e-$name" -days 1 "$@" -out "$name.pem"; then
        check "x509-$name-verifies" openssl verify -CAfile "$name.pem" "$name.pem" || true
        check "x509-$name-has-token-pubkey" ksp_same_pubkey <(openssl x509 -in "$name.pem" \
            -noout -pubkey) "$pub" || true
    fi
}

# `openssl x509 -req -signkey`: a CSR turned into a self-signed certificate,
# signed by the token key.
x509_signkey_test() {
    local name=$1 key=$2
    if check "x509-signkey-$name" openssl x509 -req -in "$name.csr" -engine pkcs11 \
        -keyform engine -signkey "$key" -days 1 -out "$name-signkey.pem"; then
        check "x509-signkey-$name-verifies" openssl verify -CAfile "$name-signkey.pem" \
            "$name-signkey.pem" || true
    fi
}

head -c 4096 /dev/urandom >data
for t in $KSP_MATRIX_TOKENS; do
    RSA_KEY=$(ksp_key_uri "$t" rsa)
    EC_KEY=$(ksp_key_uri "$t" ec)
    csr_test "$t-rsa" "$RSA_KEY" "pub-$t-rsa.pem"
    csr_test "$t-ec" "$EC_KEY" "pub-$t-ec.pem"
    x509_test "$t-rsa" "$RSA_KEY" "pub-$t-rsa.pem"
    x509_test "$t-rsa-pss" "$RSA_KEY" "pub-$t-rsa.pem" -sigopt rsa_padding_mode:pss \
        -sigopt rsa_pss_saltlen:digest
    x509_test "$t-ec" "$EC_KEY" "pub-$t-ec.pem"
    x509_signkey_test "$t-rsa" "$RSA_KEY"
    x509_signkey_test "$t-ec" "$EC_KEY"

    # Plain signatures through the engine, verified with the public key only.
    if check "dgst-sign-$t-rsa" openssl dgst -sha256 -engine pkcs11 -keyform engine \
        -sign "$RSA_KEY" -out "sig.$t.rsa" data; then
        check "dgst-verify-$t-rsa" openssl dgst -sha256 -verify "pub-$t-rsa.pem" \
            -signature "sig.$t.rsa" data || true
    fi
    if check "dgst-sign-$t-rsa-pss" openssl dgst -sha384 -engine pkcs11 -keyform engine \
        -sign "$RSA_KEY" -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest \
        -out "sig.$t.pss" data; then
        check "dgst-verify-$t-rsa-pss" openssl dgst -sha384 -verify "pub-$t-rsa.pem" \
            -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest \
            -signature "sig.$t.pss" data || true
    fi
    if check "dgst-sign-$t-ecdsa" openssl dgst -sha256 -engine pkcs11 -keyform engine \
        -sign "$EC_KEY" -out "sig.$t.ec" data; then
        check "dgst-verify-$t-ecdsa" openssl dgst -sha256 -verify "pub-$t-ec.pem" \
            -signature "sig.$t.ec" data || true
    fi
done

check_fails wrong-pin-refused openssl req -new -engine pkcs11 -keyform engine \
    -key "pkcs11:token=soft;object=rsa;type=private;pin-value=9999" -subj /CN=x -out bad.csr || true
check_grep wrong-pin-is-pin-incorrect 'PIN incorrect' "$(ksp_outfile wrong-pin-refused)" || true

# PIN-less token: the engine signs without any PIN in the URI.
if check pinless-token make_pinless_token nopin "$KSP_SO_PIN"; then
    if check pinless-keygen p11 --token-label nopin --keypairgen --key-type EC:prime256v1 \
        --id 01 --label ec; then
        csr_test_pinless() {
            openssl req -new -engine pkcs11 -keyform engine \
                -key "pkcs11:token=nopin;object=ec;type=private" -subj /CN=ksp11-e2e-nopin \
                -out nopin.csr && openssl req -verify -noout -in nopin.csr
        }
        check pinless-csr csr_test_pinless || true
    fi
fi

ksp_finish
