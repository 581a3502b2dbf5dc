#!/usr/bin/env bash
# End to end: OpenSSL 3 uses token keys through libp11's "pkcs11" engine
# (libengine-pkcs11-openssl), loaded from a private openssl.cnf that points it at
# the module: CSRs and self-signed certificates from pkcs11: URIs, RSA (PKCS#1
# v1.5 and PSS) and ECDSA signatures checked with the public key alone.
set -euo pipefail
# shellcheck source=tests/lib/helpers.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/helpers.sh"

require_cmd openssl pkcs11-tool
ksp_setup
ksp_engine_path >/dev/null || skip_all "libp11 engine pkcs11.so not found; install libengine-pkcs11-openssl"
require_module

PIN=1234
U=(--token-label t --login --pin "$PIN")
RSA_KEY="pkcs11:token=t;object=k;type=private;pin-value=$PIN"
EC_KEY="pkcs11:token=t;object=ec;type=private;pin-value=$PIN"
cd "$TEST_DIR"

check setup-init-token p11 --init-token --label t --so-pin 12345678
check setup-init-pin p11 --token-label t --init-pin --login --login-type so --so-pin 12345678 --pin "$PIN"
check setup-keygen-rsa p11 "${U[@]}" --keypairgen --key-type RSA:2048 --id 01 --label k
check setup-keygen-ec p11 "${U[@]}" --keypairgen --key-type EC:prime256v1 --id 02 --label ec
check setup-read-rsa-pub p11 --token-label t --read-object --type pubkey --id 01 -o rsa.der
check setup-rsa-pub-pem der_to_pubpem rsa.der rsa.pub.pem
check setup-read-ec-pub p11 --token-label t --read-object --type pubkey --id 02 -o ec.der
check setup-ec-pub-pem der_to_pubpem ec.der ec.pub.pem

write_engine_conf openssl.cnf
export OPENSSL_CONF=$TEST_DIR/openssl.cnf

# $1 = name, $2 = key URI, $3 = public key PEM the request must carry.
csr_test() {
    if check "csr-$1" openssl req -new -engine pkcs11 -keyform engine -key "$2" \
        -subj "/CN=ksp11-e2e-$1" -out "$1.csr"; then
        check "csr-$1-verifies" openssl req -verify -noout -in "$1.csr" || true
        if cmp -s <(openssl req -in "$1.csr" -noout -pubkey) <(openssl pkey -pubin -in "$3"); then
            pass "csr-$1-has-token-pubkey"
        else
            fail "csr-$1-has-token-pubkey" "public key in CSR differs from the token's"
        fi
    fi
}
csr_test rsa "$RSA_KEY" rsa.pub.pem
csr_test ec "$EC_KEY" ec.pub.pem

# Self-signed certificates; the RSA-PSS one needs salt = hash length.
x509_test() {
    local name=$1 key=$2
    shift 2
    if check "x509-$name" openssl req -x509 -new -engine pkcs11 -keyform engine -key "$key" \
        -subj "/CN=ksp11-e2e-$name" -days 1 "$@" -out "$name.pem"; then
        check "x509-$name-verifies" openssl verify -CAfile "$name.pem" "$name.pem" || true
    fi
}
x509_test rsa "$RSA_KEY"
x509_test rsa-pss "$RSA_KEY" -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest
x509_test ec "$EC_KEY"

# Plain signatures through the engine, verified with the public key only.
head -c 4096 /dev/urandom >data
if check dgst-sign-rsa openssl dgst -sha256 -engine pkcs11 -keyform engine -sign "$RSA_KEY" \
    -out sig.rsa data; then
    check dgst-verify-rsa openssl dgst -sha256 -verify rsa.pub.pem -signature sig.rsa data || true
fi
if check dgst-sign-rsa-pss openssl dgst -sha384 -engine pkcs11 -keyform engine -sign "$RSA_KEY" \
    -sigopt rsa_padding_mode:pss -sigopt rsa_pss_saltlen:digest -out sig.pss data; then
    check dgst-verify-rsa-pss openssl dgst -sha384 -verify rsa.pub.pem -sigopt rsa_padding_mode:pss \
        -sigopt rsa_pss_saltlen:digest -signature sig.pss data || true
fi
if check dgst-sign-ecdsa openssl dgst -sha256 -engine pkcs11 -keyform engine -sign "$EC_KEY" \
    -out sig.ec data; then
    check dgst-verify-ecdsa openssl dgst -sha256 -verify ec.pub.pem -signature sig.ec data || true
fi

check_fails wrong-pin-refused openssl req -new -engine pkcs11 -keyform engine \
    -key "pkcs11:token=t;object=k;type=private;pin-value=9999" -subj /CN=x -out bad.csr || true
check_grep wrong-pin-is-pin-incorrect 'PIN incorrect' "$(ksp_outfile wrong-pin-refused)" || true

# PIN-less token: the engine signs without any PIN in the URI.
if check pinless-token make_pinless_token nopin 12345678; then
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
