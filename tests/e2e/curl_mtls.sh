#!/usr/bin/env bash
# End to end: mutual TLS with curl (OpenSSL build) whose client key stays on the
# token. A throwaway CA signs a server certificate and, from CSRs made through the
# libp11 engine, client certificates for an RSA and an EC token key; the client
# certificates are stored on the token next to their keys. curl reaches a local
# `openssl s_server` that demands a client certificate, over TLS 1.2 and 1.3,
# with nothing but pkcs11: URIs. Negative: without the client key it is refused.
set -euo pipefail
# shellcheck source=tests/lib/helpers.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/helpers.sh"

require_cmd curl openssl pkcs11-tool
ksp_setup
ksp_engine_path >/dev/null || skip_all "libp11 engine pkcs11.so not found; install libengine-pkcs11-openssl"
curl --version | grep -q OpenSSL || skip_all "curl is not built with OpenSSL (no engine support)"
require_module

PIN=1234
U=(--token-label t --login --pin "$PIN")
cd "$TEST_DIR"
write_engine_conf engine.cnf
# Only the token-facing commands get the engine config; plain CA work does not need it.
eng() {
    OPENSSL_CONF=$TEST_DIR/engine.cnf "$@"
}

check setup-init-token p11 --init-token --label t --so-pin 12345678
check setup-init-pin p11 --token-label t --init-pin --login --login-type so --so-pin 12345678 --pin "$PIN"
check setup-keygen-rsa p11 "${U[@]}" --keypairgen --key-type RSA:2048 --id 01 --label rsa
check setup-keygen-ec p11 "${U[@]}" --keypairgen --key-type EC:prime256v1 --id 02 --label ec

# CA and server certificate (software keys: only the client side is under test).
ossl_quiet() {
    "$@" >/dev/null 2>&1
}
check setup-ca ossl_quiet openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout ca.key -subj /CN=ksp11-e2e-ca -days 1 -out ca.pem \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >server.ext
printf 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n' >client.ext
check setup-server-csr ossl_quiet openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout server.key -subj /CN=127.0.0.1 -out server.csr
check setup-server-cert ossl_quiet openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key \
    -CAcreateserial -days 1 -extfile server.ext -out server.pem

# client_cert NAME ID [TOKEN [PIN]]: client certificate for token key NAME (label
# NAME, id ID): CSR through the engine, signed by the CA, written back to the
# token with the key's id. An empty PIN means a PIN-less token.
client_cert() {
    local name=$1 id=$2 token=${3:-t} pin=${4-$PIN} uri login=()
    uri="pkcs11:token=$token;object=$name;type=private"
    if [ -n "$pin" ]; then
        uri="$uri;pin-value=$pin"
        login=(--login --pin "$pin")
    fi
    check "client-csr-$name" eng openssl req -new -engine pkcs11 -keyform engine -key "$uri" \
        -subj "/CN=ksp11-e2e-client-$name" -out "client-$name.csr" || return 1
    check "client-cert-$name" ossl_quiet openssl x509 -req -in "client-$name.csr" -CA ca.pem \
        -CAkey ca.key -CAcreateserial -days 1 -extfile client.ext -out "client-$name.pem" || return 1
    openssl x509 -in "client-$name.pem" -outform DER -out "client-$name.der"
    check "client-cert-$name-on-token" p11 --token-label "$token" "${login[@]}" \
        --write-object "client-$name.der" --type cert --id "$id" --label "$name" || return 1
}
client_cert rsa 01 || true
client_cert ec 02 || true
# A PIN-less token (behaviour.md), as a daemon or the machine itself would use.
PINLESS=0
if check setup-pinless-token make_pinless_token nopin 12345678 &&
    check setup-pinless-keygen p11 --token-label nopin --keypairgen --key-type EC:prime256v1 \
        --id 01 --label nopin && client_cert nopin 01 nopin ''; then
    PINLESS=1
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

# curl_mtls NAME KEY PORT CURL-TLS-ARGS...: one mTLS request with token key
# KEY; the server's status page must show the verified client certificate.
# TOKEN and KEY_PIN (empty: PIN-less) select the token.
TOKEN=t
KEY_PIN=$PIN
curl_mtls() {
    local name=$1 key=$2 port=$3 page keyuri
    shift 3
    page=$TEST_DIR/page-$name.html
    keyuri="pkcs11:token=$TOKEN;object=$key;type=private${KEY_PIN:+;pin-value=$KEY_PIN}"
    check "curl-$name" eng curl -sS --max-time 30 --cacert ca.pem "$@" \
        --cert "pkcs11:token=$TOKEN;object=$key;type=cert" --key "$keyuri" \
        -o "$page" "https://127.0.0.1:$port/" || return 0
    check_grep "curl-$name-client-verified" 'Verify return code: 0 \(ok\)' "$page" || true
    check_grep "curl-$name-client-cert-seen" "Subject: CN ?= ?ksp11-e2e-client-$key" "$page" || true
}
curl_mtls rsa-tls13 rsa "$PORT" --tlsv1.3 --tls-max 1.3
check_grep curl-rsa-tls13-protocol 'Protocol +: TLSv1\.3' "$TEST_DIR/page-rsa-tls13.html" || true
check_grep curl-rsa-tls13-pss 'Peer signature type: RSA-PSS' "$TEST_DIR/page-rsa-tls13.html" || true
curl_mtls rsa-tls12 rsa "$PORT" --tlsv1.2 --tls-max 1.2
check_grep curl-rsa-tls12-protocol 'Protocol +: TLSv1\.2' "$TEST_DIR/page-rsa-tls12.html" || true
curl_mtls rsa-tls12-pkcs1 rsa "$PORT_PKCS1" --tlsv1.2 --tls-max 1.2
check_grep curl-rsa-tls12-pkcs1-sigtype 'Peer signature type: RSA$' "$TEST_DIR/page-rsa-tls12-pkcs1.html" || true
curl_mtls ec-tls13 ec "$PORT" --tlsv1.3 --tls-max 1.3
check_grep curl-ec-tls13-protocol 'Protocol +: TLSv1\.3' "$TEST_DIR/page-ec-tls13.html" || true
curl_mtls ec-tls12 ec "$PORT" --tlsv1.2 --tls-max 1.2
check_grep curl-ec-tls12-protocol 'Protocol +: TLSv1\.2' "$TEST_DIR/page-ec-tls12.html" || true
if [ "$PINLESS" -eq 1 ]; then
    TOKEN=nopin KEY_PIN='' curl_mtls pinless-tls13 nopin "$PORT" --tlsv1.3 --tls-max 1.3
fi

# Negative: the server refuses a client without a certificate, and a wrong PIN
# gets curl nowhere.
check_fails curl-no-client-cert-refused curl -sS --max-time 30 --cacert ca.pem \
    -o /dev/null "https://127.0.0.1:$PORT/" || true
check_grep curl-no-client-cert-reason 'certificate required|handshake failure|alert' \
    "$(ksp_outfile curl-no-client-cert-refused)" || true
check_fails curl-wrong-pin-refused eng curl -sS --max-time 30 --cacert ca.pem \
    --cert "pkcs11:token=t;object=rsa;type=cert" \
    --key "pkcs11:token=t;object=rsa;type=private;pin-value=9999" \
    -o /dev/null "https://127.0.0.1:$PORT/" || true
check_grep curl-wrong-pin-reason 'Login failed|PIN incorrect|failed to load private key' \
    "$(ksp_outfile curl-wrong-pin-refused)" || true

# The server survived every handshake above.
if kill -0 "$SERVER_PID" 2>/dev/null; then pass s_server-alive; else fail s_server-alive "s_server exited"; fi

ksp_finish
