#!/usr/bin/env bash
# End to end: GnuTLS with token keys. gnutls-cli authenticates with a client
# certificate and key given as pkcs11: URIs (both on the token) to `openssl
# s_server -Verify 1 -verify_return_error`, over the matrix {software key, TPM
# key (swtpm)} x {RSA-2048, P-256} x {TLS 1.2, TLS 1.3} (TLS 1.3 RSA means
# CKM_RSA_PKCS_PSS); certtool makes a self-signed certificate and a CSR with
# --load-privkey 'pkcs11:…', both checked with OpenSSL. GnuTLS reaches the
# module through --provider (a private module list, never the machine's
# p11-kit configuration); the PIN comes from GNUTLS_PIN. Negative: without a
# client certificate the server refuses. p11tool --list-all/--test-sign are in
# p11tool.sh.
set -uo pipefail
# shellcheck source=tests/lib/helpers.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/helpers.sh"

require_cmd gnutls-cli certtool openssl pkcs11-tool
ksp_setup
ksp_engine_path >/dev/null || skip_all "libp11 engine pkcs11.so not found; install libengine-pkcs11-openssl"
require_module
cd "$TEST_DIR" || exit 1

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
export GNUTLS_PIN=$KSP_PIN

# gnutls_get V CLI-ARGS...: GET / over TLS V; prints the server's page.
# gnutls-cli reads the request from stdin and prints the answer before it
# leaves on end of input and the server's close.
gnutls_get() {
    local v=$1
    shift
    printf 'GET / HTTP/1.0\r\n\r\n' |
        timeout 60 gnutls-cli --provider "$KSP11_MODULE" --x509cafile ca.pem \
            --priority "NORMAL:-VERS-ALL:+VERS-TLS$v" -p "$PORT" "$@" 127.0.0.1
}

for t in $KSP_MATRIX_TOKENS; do
    for k in $KSP_MATRIX_KEYS; do
        for v in 1.2 1.3; do
            n=gnutls-cli-$t-$k-tls${v/./}
            check "$n" gnutls_get "$v" --x509certfile "$(ksp_key_uri "$t" "$k" cert)" \
                --x509keyfile "$(ksp_key_uri "$t" "$k" private '')" || continue
            out=$(ksp_outfile "$n")
            check_grep "$n-protocol" "Protocol +: TLSv${v/./\\.}" "$out" || true
            check_grep "$n-client-verified" 'Verify return code: 0 \(ok\)' "$out" || true
            check_grep "$n-client-cert-seen" "Subject: CN ?= ?ksp11-$t-$k\$" "$out" || true
            if [ "$k" = rsa ] && [ "$v" = 1.3 ]; then
                check_grep "$n-pss" 'Peer signature type: RSA-PSS' "$out" || true
            fi
        done
    done
done

# Negative: no client certificate, no page.
gnutls_get 1.3 >no-cert.out 2>&1 || true
if grep -q 'Verify return code' no-cert.out; then
    fail gnutls-cli-no-client-cert-refused "got the page without a client certificate"
else
    check_grep gnutls-cli-no-client-cert-refused 'Certificate is required|alert' no-cert.out || true
fi

# certtool: self-signed certificate and CSR signed by the token key.
cat >cert.tmpl <<TMPL
cn = "ksp11-certtool"
expiration_days = 1
serial = 1
tls_www_client
signing_key
TMPL
for t in $KSP_MATRIX_TOKENS; do
    for k in $KSP_MATRIX_KEYS; do
        n=certtool-$t-$k
        key=$(ksp_key_uri "$t" "$k" private '')
        if check "$n-self-signed" certtool --provider "$KSP11_MODULE" --generate-self-signed \
            --load-privkey "$key" --template cert.tmpl --outfile "$n.pem"; then
            check "$n-self-signed-verifies" openssl verify -CAfile "$n.pem" "$n.pem" || true
            check "$n-self-signed-has-token-key" ksp_same_pubkey \
                <(openssl x509 -in "$n.pem" -noout -pubkey) "pub-$t-$k.pem" || true
        fi
        if check "$n-request" certtool --provider "$KSP11_MODULE" --generate-request \
            --load-privkey "$key" --template cert.tmpl --outfile "$n.csr"; then
            check "$n-request-verifies" openssl req -verify -noout -in "$n.csr" || true
            check "$n-request-has-token-key" ksp_same_pubkey \
                <(openssl req -in "$n.csr" -noout -pubkey) "pub-$t-$k.pem" || true
        fi
    done
done
# A wrong PIN: certtool cannot sign.
check_fails certtool-wrong-pin-refused env GNUTLS_PIN=9999 certtool --provider "$KSP11_MODULE" \
    --generate-self-signed --load-privkey "$(ksp_key_uri soft ec private '')" \
    --template cert.tmpl --outfile wrong.pem &&
    check_grep certtool-wrong-pin-reason 'Wrong PIN' "$(ksp_outfile certtool-wrong-pin-refused)" || true

if kill -0 "$SERVER_PID" 2>/dev/null; then pass s_server-alive; else fail s_server-alive "s_server exited"; fi
ksp_finish
