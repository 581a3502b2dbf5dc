#!/usr/bin/env bash
# End to end: p11-kit.
# (A) Discovery: the shipped packaging/ksp11.module (its module: line pointed at
#     the module under test) in a private p11-kit user configuration (a temp
#     $HOME) makes `p11-kit list-modules` show ksp11, and p11-kit-proxy
#     consumers find it with no module path: pkcs11-tool on p11-kit-proxy.so
#     makes a token, a key and a signature; `p11tool --list-tokens` lists it;
#     `openssl -engine pkcs11` (libp11's default module is p11-kit-proxy) signs a
#     CSR with it. p11-kit ignores user configuration for root, so as root this
#     part runs as user nobody (own store, software keys; the TPM is in (B)).
# (B) Remoting: `p11-kit server --provider <module>` exports the TPM token; a
#     client through p11-kit-client.so (P11_KIT_SERVER_ADDRESS) lists it, signs
#     with its TPM keys (checked by OpenSSL) and curl authenticates with the TPM
#     key through it; the server is stopped by PID.
set -uo pipefail
# shellcheck source=tests/lib/helpers.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/helpers.sh"

require_cmd p11-kit pkcs11-tool p11tool openssl
ksp_setup
require_module
cd "$TEST_DIR" || exit 1
LIBDIR=$(pkg-config --variable=libdir p11-kit-1 2>/dev/null || echo /usr/lib/x86_64-linux-gnu)
PROXY=$LIBDIR/p11-kit-proxy.so
CLIENT=$(pkg-config --variable=p11_module_path p11-kit-1 2>/dev/null ||
    echo /usr/lib/x86_64-linux-gnu/pkcs11)/p11-kit-client.so
[ -f "$PROXY" ] || PROXY=/usr/lib/x86_64-linux-gnu/p11-kit-proxy.so
[ -f "$CLIENT" ] || CLIENT=/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so

# ---- (A) discovery through a private p11-kit configuration ----
U=$TEST_DIR/user
mkdir -p "$U/home/.config/pkcs11/modules" "$U/store"
chmod 700 "$U/store"
# A copy of the module the other user can surely read (the tree may be under /root).
UMOD=$U/ksp11-pkcs11.so
cp "$KSP11_MODULE" "$UMOD"
sed "s|^module:.*|module: $UMOD|" "$KSP_ROOT/packaging/ksp11.module" \
    >"$U/home/.config/pkcs11/modules/ksp11.module"
AS_USER=()
if [ "$(id -u)" -eq 0 ]; then
    chown -R nobody:nogroup "$U"
    chmod 711 "$TEST_DIR"
    AS_USER=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
fi
# as_user CMD...: CMD with the private p11-kit configuration and store.
as_user() {
    (cd "$U" && "${AS_USER[@]}" env -u KSP11_TCTI -u OPENSSL_CONF HOME="$U/home" \
        XDG_CONFIG_HOME="$U/home/.config" KSP11_STORE="$U/store" \
        KSP11_LOG_FILE="$U/ksp11.log" "$@")
}
px() {
    as_user pkcs11-tool --module "$PROXY" "$@"
}

if ! as_user test -r "$UMOD"; then
    skip p11-kit-discovery "user nobody cannot reach $U (TMPDIR not traversable)"
elif check p11-kit-list-modules as_user p11-kit list-modules; then
    check_grep p11-kit-list-modules-ksp11 "^ksp11: $UMOD" \
        "$(ksp_outfile p11-kit-list-modules)" || true
fi
# The ksp11 slot with an uninitialised token, as the proxy numbers it.
proxy_empty_slot() {
    px -L 2>/dev/null | sed -n 's/^Slot [0-9]* (\(0x[0-9a-fA-F]*\)): ksp11 new token.*/\1/p' | head -n 1
}
SLOT=$(proxy_empty_slot)
if ! as_user test -r "$UMOD"; then
    : # skipped above
elif [ -z "$SLOT" ]; then
    fail proxy-sees-ksp11-slot "pkcs11-tool on p11-kit-proxy.so lists no ksp11 slot"
    px -L >proxy-L.out 2>&1
    show_tail proxy-L.out
else
    pass proxy-sees-ksp11-slot
    check proxy-init-token px --slot "$SLOT" --init-token --label proxy --so-pin "$KSP_SO_PIN" &&
        check proxy-init-pin px --token-label proxy --init-pin --login --login-type so \
            --so-pin "$KSP_SO_PIN" --pin "$KSP_PIN" &&
        check proxy-keygen px --token-label proxy --login --pin "$KSP_PIN" --keypairgen \
            --key-type EC:prime256v1 --id 01 --label ec &&
        check proxy-read-pubkey px --token-label proxy --read-object --type pubkey --id 01 \
            -o "$U/ec.der" &&
        der_to_pubpem "$U/ec.der" proxy-ec.pem
    if check p11-kit-list-modules-token as_user p11-kit list-modules; then
        check_grep p11-kit-list-modules-shows-token 'token: proxy$' \
            "$(ksp_outfile p11-kit-list-modules-token)" || true
    fi
    head -c 1000 /dev/urandom >"$U/data"
    chmod 644 "$U/data"
    if check proxy-sign px --token-label proxy --login --pin "$KSP_PIN" --sign \
        --mechanism ECDSA-SHA256 --signature-format openssl --id 01 -i "$U/data" -o "$U/sig"; then
        check proxy-sign-verifies openssl dgst -sha256 -verify proxy-ec.pem -signature "$U/sig" \
            "$U/data" || true
    fi
    # GnuTLS without --provider: the modules p11-kit knows.
    if check p11tool-list-tokens as_user p11tool --list-tokens; then
        check_grep p11tool-list-tokens-ksp11 'URL: pkcs11:model=ksp11;manufacturer=ksp11;.*token=proxy' \
            "$(ksp_outfile p11tool-list-tokens)" || true
    fi
    # libp11 engine with its default module, p11-kit-proxy: no module path anywhere.
    if ksp_engine_path >/dev/null; then
        if check proxy-engine-csr as_user openssl req -new -engine pkcs11 -keyform engine \
            -key "pkcs11:token=proxy;object=ec;type=private;pin-value=$KSP_PIN" \
            -subj /CN=ksp11-proxy -out "$U/proxy.csr"; then
            check proxy-engine-csr-verifies openssl req -verify -noout -in "$U/proxy.csr" || true
            check proxy-engine-csr-has-token-key ksp_same_pubkey \
                <(openssl req -in "$U/proxy.csr" -noout -pubkey) proxy-ec.pem || true
        fi
    else
        skip proxy-engine "libp11 engine pkcs11.so not found"
    fi
fi

# ---- (B) p11-kit server exporting the TPM token, p11-kit-client.so ----
ksp_matrix_tokens || true
case " $KSP_MATRIX_TOKENS " in
*" tpm "*) ;;
*)
    skip p11-kit-server "no TPM token (swtpm missing or failed above)"
    ksp_finish
    exit $?
    ;;
esac
[ -f "$CLIENT" ] || {
    skip p11-kit-server "p11-kit-client.so not found"
    ksp_finish
    exit $?
}
SOCK=$TEST_DIR/p11kit.sock
p11-kit server -f --provider "$KSP11_MODULE" -n "$SOCK" 'pkcs11:token=tpm' >p11kit-server.out 2>&1 &
SERVER_PID=$!
ksp_track_pid "$SERVER_PID"
if ! ksp_wait_path "$SOCK" 150 || ! kill -0 "$SERVER_PID" 2>/dev/null; then
    fail p11-kit-server-start "p11-kit server did not start"
    show_tail p11kit-server.out
    ksp_finish
    exit 1
fi
pass p11-kit-server-start
check_grep p11-kit-server-address "P11_KIT_SERVER_ADDRESS=unix:path=$SOCK" p11kit-server.out || true
export P11_KIT_SERVER_ADDRESS=unix:path=$SOCK
pc() {
    pkcs11-tool --module "$CLIENT" "$@"
}
if check client-list-slots pc -L; then
    check_grep client-sees-tpm-token 'token label +: tpm$' "$(ksp_outfile client-list-slots)" || true
fi
head -c 1000 /dev/urandom >data
openssl dgst -sha256 -binary data >data.sha256
# Raw ECDSA and PSS over a digest (what TLS stacks send), PKCS#1 v1.5 with hashing.
if check client-sign-tpm-ecdsa pc --token-label tpm --login --pin "$KSP_PIN" --sign \
    --mechanism ECDSA --signature-format openssl --id 02 -i data.sha256 -o sig.ec; then
    check client-sign-tpm-ecdsa-verifies openssl pkeyutl -verify -pubin -inkey pub-tpm-ec.pem \
        -in data.sha256 -sigfile sig.ec || true
fi
if check client-sign-tpm-rsa-pkcs pc --token-label tpm --login --pin "$KSP_PIN" --sign \
    --mechanism SHA256-RSA-PKCS --id 01 -i data -o sig.rsa; then
    check client-sign-tpm-rsa-pkcs-verifies openssl dgst -sha256 -verify pub-tpm-rsa.pem \
        -signature sig.rsa data || true
fi
if check client-sign-tpm-rsa-pss pc --token-label tpm --login --pin "$KSP_PIN" --sign \
    --mechanism RSA-PKCS-PSS --hash-algorithm SHA256 --mgf MGF1-SHA256 --id 01 \
    -i data.sha256 -o sig.pss; then
    check client-sign-tpm-rsa-pss-verifies openssl pkeyutl -verify -pubin -inkey pub-tpm-rsa.pem \
        -in data.sha256 -sigfile sig.pss -pkeyopt digest:sha256 -pkeyopt rsa_padding_mode:pss \
        -pkeyopt rsa_pss_saltlen:digest || true
fi
check_fails client-wrong-pin-refused pc --token-label tpm --login --pin 9999 --list-objects || true
check_grep client-wrong-pin-is-pin-incorrect CKR_PIN_INCORRECT \
    "$(ksp_outfile client-wrong-pin-refused)" || true

# curl, TLS 1.3, TPM RSA key (PSS) through the p11-kit remoting.
if command -v curl >/dev/null && ksp_engine_path >/dev/null &&
    curl --version | grep -q OpenSSL; then
    if ksp_matrix_pki; then
        KSP11_MODULE=$CLIENT write_engine_conf client-engine.cnf
        if start_s_server s_server.log -cert server.pem -key server.key -Verify 1 \
            -verify_return_error -www -CAfile ca.pem; then
            if check client-curl-tpm-rsa-tls13 env OPENSSL_CONF="$TEST_DIR/client-engine.cnf" \
                curl -sS --max-time 60 --cacert ca.pem --tlsv1.3 \
                --cert "$(ksp_key_uri tpm rsa cert)" --key "$(ksp_key_uri tpm rsa)" \
                -o page.html "https://127.0.0.1:$S_SERVER_PORT/"; then
                check_grep client-curl-tpm-rsa-tls13-verified 'Verify return code: 0 \(ok\)' page.html ||
                    true
                check_grep client-curl-tpm-rsa-tls13-cert 'Subject: CN ?= ?ksp11-tpm-rsa$' page.html ||
                    true
            fi
        else
            fail client-curl-s_server "openssl s_server did not start"
        fi
    else
        fail client-curl-pki "test PKI failed"
    fi
else
    skip client-curl "curl (OpenSSL build) or the libp11 engine missing"
fi

# Stop the server by PID: it goes, and its socket with it.
kill "$SERVER_PID" 2>/dev/null
for _ in $(seq 1 50); do
    kill -0 "$SERVER_PID" 2>/dev/null || break
    sleep 0.1
done
if kill -0 "$SERVER_PID" 2>/dev/null; then
    fail p11-kit-server-stops "still running after SIGTERM"
else
    pass p11-kit-server-stops
fi
ksp_finish
