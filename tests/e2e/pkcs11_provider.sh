#!/usr/bin/env bash
# End to end: OpenSSL 3's pkcs11-provider (https://github.com/latchset/pkcs11-provider)
# with the module, where it is installed. Debian 12 does not package it: then this
# script prints one SKIP line and never fails. When present (pkcs11.so in
# OpenSSL's modules directory, or KSP11_PKCS11_PROVIDER=/path/to/pkcs11.so) and
# loadable, a private openssl.cnf loads it next to the default provider, pointed at
# the module; `openssl s_client -key 'pkcs11:…'` (the key through the provider's
# store) authenticates to `openssl s_server -Verify 1 -verify_return_error` over
# {software, TPM} x {RSA-2048, P-256} x {TLS 1.2, TLS 1.3}; TLS 1.3 with RSA
# needs CKM_RSA_PKCS_PSS, and the provider needs C_GetInterface (PKCS#11 3.0).
set -uo pipefail
# shellcheck source=tests/lib/helpers.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/helpers.sh"

require_cmd openssl pkcs11-tool
MODDIR=$(openssl version -m | sed -n 's/^MODULESDIR: "\(.*\)"$/\1/p')
PROV=${KSP11_PKCS11_PROVIDER:-$MODDIR/pkcs11.so}
[ -f "$PROV" ] || skip_all "pkcs11-provider not installed ($PROV missing; not packaged in Debian 12)"
ksp_setup
require_module
cd "$TEST_DIR" || exit 1

printf '%s' "$KSP_PIN" >pin.txt
cat >provider.cnf <<EOF2
openssl_conf = openssl_init

[openssl_init]
providers = provider_sect

[provider_sect]
default = default_sect
pkcs11 = pkcs11_sect

[default_sect]
activate = 1

[pkcs11_sect]
module = $PROV
pkcs11-module-path = $KSP11_MODULE
pkcs11-module-token-pin = file:$TEST_DIR/pin.txt
activate = 1
EOF2
prov() {
    OPENSSL_CONF=$TEST_DIR/provider.cnf "$@"
}
# `openssl list` exits 0 even when a provider fails to load: read its listing.
prov openssl list -providers >providers.txt 2>&1
if ! grep -q '^ *pkcs11$' providers.txt || grep -q 'error' providers.txt; then
    skip_all "pkcs11-provider at $PROV does not load (openssl list -providers does not list it)"
fi
pass provider-loads

ksp_matrix_tokens || true
ksp_matrix_pki || {
    fail setup-pki "CA, server or client certificates missing"
    ksp_finish
    exit 1
}

# The public keys through the provider's store are the token's.
for t in $KSP_MATRIX_TOKENS; do
    for k in $KSP_MATRIX_KEYS; do
        if check "provider-pubkey-$t-$k" prov openssl pkey -pubin \
            -in "$(ksp_key_uri "$t" "$k" public)" -pubout -out "prov-pub-$t-$k.pem"; then
            check "provider-pubkey-$t-$k-is-token-key" ksp_same_pubkey "prov-pub-$t-$k.pem" \
                "pub-$t-$k.pem" || true
        fi
    done
done

if ! start_s_server s_server.log -cert server.pem -key server.key -Verify 1 -verify_return_error \
    -www -CAfile ca.pem; then
    fail s_server-start "openssl s_server did not start"
    show_tail s_server.log
    ksp_finish
    exit 1
fi
for t in $KSP_MATRIX_TOKENS; do
    for k in $KSP_MATRIX_KEYS; do
        for v in 1.2 1.3; do
            n=provider-s_client-$t-$k-tls${v/./}
            provider_get() {
                printf 'GET / HTTP/1.0\r\n\r\n' |
                    prov timeout 60 openssl s_client -quiet -connect "127.0.0.1:$S_SERVER_PORT" \
                        -servername 127.0.0.1 -CAfile ca.pem -verify_return_error \
                        -key "$(ksp_key_uri "$t" "$k" private '')" -cert "client-$t-$k.pem" \
                        "-tls1_${v#1.}"
            }
            check "$n" provider_get || continue
            out=$(ksp_outfile "$n")
            check_grep "$n-protocol" "Protocol +: TLSv${v/./\\.}" "$out" || true
            check_grep "$n-client-verified" 'Verify return code: 0 \(ok\)' "$out" || true
            check_grep "$n-client-cert-seen" "Subject: CN ?= ?ksp11-$t-$k\$" "$out" || true
        done
    done
done
ksp_finish
