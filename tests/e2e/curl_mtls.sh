#!/usr/bin/env bash
# End to end: mutual TLS with curl (Debian's OpenSSL build) whose client key
# stays on the token: the matrix {software key, TPM key (swtpm)} x {RSA-2048,
# P-256} x {TLS 1.2, TLS 1.3} against `openssl s_server -Verify 1
# -verify_return_error`, with nothing but pkcs11: URIs (certificate and key on
# the token; the client certificates come from CSRs signed through the libp11
# engine, see ksp_matrix_pki). RSA also with PKCS#1 v1.5 forced (TLS 1.2), and a
# PIN-less token. Negative: a client without the key, or with a wrong PIN, is
# refused.
set -euo pipefail
# shellcheck source=tests/lib/helpers.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/helpers.sh"

require_cmd curl openssl pkcs11-tool
ksp_setup
ksp_engine_path >/dev/null || skip_all "libp11 engine pkcs11.so not found; install libengine-pkcs11-openssl"
curl --version | grep -q OpenSSL || skip_all "curl is not built with OpenSSL (no engine support)"
require_module
cd "$TEST_DIR"

# A PIN-less token (behaviour.md), as a daemon or the machine itself would use;
# made first, while there is no TPM: its key is a software key.
PINLESS=0
if check setup-pinless-token make_pinless_token nopin "$KSP_SO_PIN" &&
    check setup-pinless-keygen p11 --token-label nopin --keypairgen --key-type EC:prime256v1 \
        --id 01 --label nopin; then
    PINLESS=1
fi
ksp_matrix_tokens || true
ksp_matrix_pki || {
    fail setup-pki "CA, server or client certificates missing"
    ksp_finish
    exit 1
}
if [ "$PINLESS" -eq 1 ]; then
    PINLESS=0
    check setup-pinless-csr env OPENSSL_CONF=engine.cnf openssl req -new -engine pkcs11 \
        -keyform engine -key "pkcs11:token=nopin;object=nopin;type=private" \
        -subj /CN=ksp11-nopin-nopin -out client-nopin.csr &&
        check setup-pinless-cert openssl x509 -req -in client-nopin.csr -CA ca.pem -CAkey ca.key \
            -CAcreateserial -days 1 -extfile client.ext -out client-nopin.pem &&
        openssl x509 -in client-nopin.pem -outform DER -out client-nopin.der &&
        check setup-pinless-cert-on-token p11 --token-label nopin --write-object client-nopin.der \
            --type cert --id 01 --label nopin && PINLESS=1
fi

if ! start_s_server s_server.log -cert server.pem -key server.key -Verify 1 -verify_return_error \
    -www -CAfile ca.pem; then
    fail s_server-start "openssl s_server did not start"
    show_tail s_server.log
    exit 1
fi
PORT=$S_SERVER_PORT
SERVER_PID=$S_SERVER_PID
# A second server that accepts only PKCS#1 v1.5 / ECDSA client signatures:
# forces CKM_RSA_PKCS (TLS 1.2) where the first one negotiates RSA-PSS.
if ! start_s_server s_server_pkcs1.log -cert server.pem -key server.key -Verify 1 \
    -verify_return_error -www -CAfile ca.pem -client_sigalgs RSA+SHA256:ECDSA+SHA256; then
    fail s_server-pkcs1-start "openssl s_server did not start"
    show_tail s_server_pkcs1.log
    exit 1
fi
PORT_PKCS1=$S_SERVER_PORT

# curl_mtls NAME TOKEN KEY PIN PORT CURL-TLS-ARGS...: one mTLS request with
# token key KEY of TOKEN (PIN empty: PIN-less); the server's status page must
# show the verified client certificate.
curl_mtls() {
    local name=$1 token=$2 key=$3 pin=$4 port=$5 page
    shift 5
    page=$TEST_DIR/page-$name.html
    check "curl-$name" env OPENSSL_CONF="$TEST_DIR/engine.cnf" curl -sS --max-time 60 \
        --cacert ca.pem "$@" --cert "$(ksp_key_uri "$token" "$key" cert)" \
        --key "$(ksp_key_uri "$token" "$key" private "$pin")" \
        -o "$page" "https://127.0.0.1:$port/" || return 1
    check_grep "curl-$name-client-verified" 'Verify return code: 0 \(ok\)' "$page" || true
    check_grep "curl-$name-client-cert-seen" "Subject: CN ?= ?ksp11-$token-$key\$" "$page" || true
}

for t in $KSP_MATRIX_TOKENS; do
    for k in $KSP_MATRIX_KEYS; do
        for v in 1.2 1.3; do
            n=$t-$k-tls${v/./}
            curl_mtls "$n" "$t" "$k" "$KSP_PIN" "$PORT" "--tlsv$v" --tls-max "$v" || continue
            check_grep "curl-$n-protocol" "Protocol +: TLSv${v/./\\.}" "page-$n.html" || true
        done
        # RSA client signatures: PSS (TLS 1.3 and by default in 1.2), PKCS#1 v1.5 when forced.
        if [ "$k" = rsa ]; then
            check_grep "curl-$t-rsa-tls13-pss" 'Peer signature type: RSA-PSS' "page-$t-rsa-tls13.html" || true
            n=$t-rsa-tls12-pkcs1
            curl_mtls "$n" "$t" rsa "$KSP_PIN" "$PORT_PKCS1" --tlsv1.2 --tls-max 1.2 &&
                check_grep "curl-$n-sigtype" 'Peer signature type: RSA$' "page-$n.html" || true
        fi
    done
done
# The PIN from a file (pin-source), not on the command line.
printf '%s' "$KSP_PIN" >pin.txt
for t in $KSP_MATRIX_TOKENS; do
    check "curl-$t-pin-source" env OPENSSL_CONF="$TEST_DIR/engine.cnf" curl -sS --max-time 60 \
        --cacert ca.pem --tlsv1.3 --cert "$(ksp_key_uri "$t" ec cert)" \
        --key "pkcs11:token=$t;object=ec;type=private;pin-source=file:$TEST_DIR/pin.txt" \
        -o "page-$t-pin-source.html" "https://127.0.0.1:$PORT/" &&
        check_grep "curl-$t-pin-source-client-cert-seen" "Subject: CN ?= ?ksp11-$t-ec\$" \
            "page-$t-pin-source.html" || true
done
if [ "$PINLESS" -eq 1 ]; then
    curl_mtls pinless-tls13 nopin nopin '' "$PORT" --tlsv1.3 --tls-max 1.3 || true
fi

# Negative: the server refuses a client without a certificate, and a wrong PIN
# gets curl nowhere.
check_fails curl-no-client-cert-refused curl -sS --max-time 60 --cacert ca.pem \
    -o /dev/null "https://127.0.0.1:$PORT/" || true
check_grep curl-no-client-cert-reason 'certificate required|handshake failure|alert' \
    "$(ksp_outfile curl-no-client-cert-refused)" || true
for t in $KSP_MATRIX_TOKENS; do
    check_fails "curl-$t-wrong-pin-refused" env OPENSSL_CONF="$TEST_DIR/engine.cnf" curl -sS \
        --max-time 60 --cacert ca.pem --cert "$(ksp_key_uri "$t" rsa cert)" \
        --key "$(ksp_key_uri "$t" rsa private 9999)" \
        -o /dev/null "https://127.0.0.1:$PORT/" || true
    check_grep "curl-$t-wrong-pin-reason" 'Login failed|PIN incorrect|failed to load private key' \
        "$(ksp_outfile "curl-$t-wrong-pin-refused")" || true
done

# The server survived every handshake above.
if kill -0 "$SERVER_PID" 2>/dev/null; then pass s_server-alive; else fail s_server-alive "s_server exited"; fi

ksp_finish
