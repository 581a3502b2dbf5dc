#!/usr/bin/env bash
# End to end: `openssl s_client -engine pkcs11 -keyform engine -key 'pkcs11:…'`
# (the key stays on the token, the certificate is a file) against
# `openssl s_server -Verify 1 -verify_return_error`, over the full matrix
# {software key, TPM key (swtpm)} x {RSA-2048, P-256} x {TLS 1.2, TLS 1.3}; the
# server's status page must show the verified client certificate. RSA with
# PKCS#1 v1.5 forced too (TLS 1.2). Negative: s_client with the certificate but
# a wrong PIN gets no page.
set -euo pipefail
# shellcheck source=tests/lib/helpers.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/helpers.sh"

require_cmd openssl pkcs11-tool
ksp_setup
ksp_engine_path >/dev/null || skip_all "libp11 engine pkcs11.so not found; install libengine-pkcs11-openssl"
require_module
cd "$TEST_DIR"

ksp_matrix_tokens || true
ksp_matrix_pki || {
    fail setup-pki "CA, server or client certificates missing"
    ksp_finish
    exit 1
}
if ! start_s_server s_server.log -cert server.pem -key server.key -Verify 1 -verify_return_error \
    -www -CAfile ca.pem; then
    fail s_server-start "openssl s_server did not start"
    show_tail s_server.log
    exit 1
fi
PORT=$S_SERVER_PORT
SERVER_PID=$S_SERVER_PID
if ! start_s_server s_server_pkcs1.log -cert server.pem -key server.key -Verify 1 \
    -verify_return_error -www -CAfile ca.pem -client_sigalgs RSA+SHA256:ECDSA+SHA256; then
    fail s_server-pkcs1-start "openssl s_server did not start"
    show_tail s_server_pkcs1.log
    exit 1
fi
PORT_PKCS1=$S_SERVER_PORT

# s_client_get PORT TOKEN KEY PIN S_CLIENT-ARGS...: GET / with the token key;
# prints the server's answer. -quiet waits for the server to close (-www does
# after one page); timeout bounds a hung handshake.
s_client_get() {
    local port=$1 t=$2 k=$3 pin=$4
    shift 4
    printf 'GET / HTTP/1.0\r\n\r\n' |
        OPENSSL_CONF=$TEST_DIR/engine.cnf timeout 60 openssl s_client -quiet \
            -connect "127.0.0.1:$port" -servername 127.0.0.1 -CAfile ca.pem -verify_return_error \
            -engine pkcs11 -keyform engine -key "$(ksp_key_uri "$t" "$k" private "$pin")" \
            -cert "client-$t-$k.pem" "$@"
}

# One handshake: the page must show TLS version, verified client cert, subject.
s_client_case() {
    local name=$1 port=$2 t=$3 k=$4 v=$5 out
    shift 5
    check "s_client-$name" s_client_get "$port" "$t" "$k" "$KSP_PIN" "-tls1_${v#1.}" "$@" || return 1
    out=$(ksp_outfile "s_client-$name")
    check_grep "s_client-$name-protocol" "Protocol +: TLSv${v/./\\.}" "$out" || true
    check_grep "s_client-$name-client-verified" 'Verify return code: 0 \(ok\)' "$out" || true
    check_grep "s_client-$name-client-cert-seen" "Subject: CN ?= ?ksp11-$t-$k\$" "$out" || true
}

for t in $KSP_MATRIX_TOKENS; do
    for k in $KSP_MATRIX_KEYS; do
        for v in 1.2 1.3; do
            s_client_case "$t-$k-tls${v/./}" "$PORT" "$t" "$k" "$v" || true
        done
    done
    if s_client_case "$t-rsa-tls12-pkcs1" "$PORT_PKCS1" "$t" rsa 1.2; then
        check_grep "s_client-$t-rsa-tls12-pkcs1-sigtype" 'Peer signature type: RSA$' \
            "$(ksp_outfile "s_client-$t-rsa-tls12-pkcs1")" || true
    fi
    # A wrong PIN: no key, no page (s_client may still exit 0 after a failed load).
    s_client_get "$PORT" "$t" ec 9999 -tls1_3 >"wrong-pin-$t.out" 2>&1 || true
    if grep -q 'Verify return code: 0' "wrong-pin-$t.out"; then
        fail "s_client-$t-wrong-pin-refused" "got the page with a wrong PIN"
        show_tail "wrong-pin-$t.out"
    else
        check_grep "s_client-$t-wrong-pin-refused" 'PIN incorrect|unable to load|Login failed' \
            "wrong-pin-$t.out" || true
    fi
done

if kill -0 "$SERVER_PID" 2>/dev/null; then pass s_server-alive; else fail s_server-alive "s_server exited"; fi
ksp_finish
