#!/usr/bin/env bash
# End to end: NSS with token keys. `modutil -add` puts the module into a fresh
# NSS database (a temp dir, never the user's); modutil lists its tokens,
# `certutil -L -h all` lists the certificates stored on the tokens, `certutil
# -K` their keys. Signatures made by NSS with the token keys are checked by
# OpenSSL: (1) NSS's TLS client tstclnt authenticates to `openssl s_server
# -Verify 1 -verify_return_error` with the token certificate (nickname
# TOKEN:LABEL) over the matrix {software key, TPM key (swtpm)} x {RSA-2048,
# P-256} x {TLS 1.2, TLS 1.3}: the server verifies the CertificateVerify
# signature made on the token; (2) `certutil -C` issues a certificate signed by
# each token key, whose signature OpenSSL verifies with the token's public key.
# The module is marked FRIENDLY (certificates readable without login, which is
# true for ksp11): otherwise NSS logs in before looking a nickname up, and
# certutil has no password for that lookup but a terminal prompt.
set -uo pipefail
# shellcheck source=tests/lib/helpers.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/helpers.sh"

require_cmd modutil certutil tstclnt openssl pkcs11-tool
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

DB=sql:$TEST_DIR/nssdb
mkdir nssdb
printf '%s\n' "$KSP_PIN" >pin.txt
check nss-new-db certutil -N -d "$DB" --empty-password || {
    ksp_finish
    exit 1
}
# modutil asks to confirm when a browser could be running; -force skips that.
if check modutil-add modutil -dbdir "$DB" -add ksp11 -libfile "$KSP11_MODULE" -force; then
    if check modutil-list modutil -dbdir "$DB" -list ksp11; then
        for t in $KSP_MATRIX_TOKENS; do
            check_grep "modutil-list-token-$t" "Token Name: +$t +\$" "$(ksp_outfile modutil-list)" ||
                true
        done
    fi
    check modutil-friendly modutil -dbdir "$DB" -default ksp11 -mechanisms FRIENDLY -force || true
fi

# certutil -L -h all: the token certificates appear as TOKEN:LABEL.
if check certutil-L-all certutil -L -d "$DB" -h all -f pin.txt; then
    for t in $KSP_MATRIX_TOKENS; do
        for k in $KSP_MATRIX_KEYS; do
            check_grep "certutil-L-lists-$t-$k" "^$t:$k +u,u,u" "$(ksp_outfile certutil-L-all)" || true
        done
    done
fi
for t in $KSP_MATRIX_TOKENS; do
    if check "certutil-L-$t-rsa-pem" certutil -L -d "$DB" -n "$t:rsa" -a; then
        check "certutil-L-$t-rsa-is-token-cert" cmp <(openssl x509 -in "client-$t-rsa.pem" \
            -outform DER) <(openssl x509 -in "$(ksp_outfile "certutil-L-$t-rsa-pem")" \
            -outform DER) || true
    fi
    if check "certutil-K-$t" certutil -K -d "$DB" -h "$t" -f pin.txt; then
        for k in $KSP_MATRIX_KEYS; do
            check_grep "certutil-K-$t-lists-$k" "> +(rsa|ec) +[0-9a-f]+ +$k\$" \
                "$(ksp_outfile "certutil-K-$t")" || true
        done
    fi
done

# (1) TLS through NSS; the server verifies the token key's signature.
check nss-trust-ca certutil -A -d "$DB" -n ksp11-e2e-ca -t C,, -i ca.pem
if ! start_s_server s_server.log -cert server.pem -key server.key -Verify 1 -verify_return_error \
    -www -CAfile ca.pem; then
    fail s_server-start "openssl s_server did not start"
    show_tail s_server.log
else
    printf 'GET / HTTP/1.0\r\n\r\n' >request.txt
    for t in $KSP_MATRIX_TOKENS; do
        for k in $KSP_MATRIX_KEYS; do
            for v in 1.2 1.3; do
                n=tstclnt-$t-$k-tls${v/./}
                check "$n" timeout 60 tstclnt -h 127.0.0.1 -p "$S_SERVER_PORT" -d "$DB" \
                    -n "$t:$k" -w "$KSP_PIN" -V "tls$v:tls$v" -A request.txt || continue
                out=$(ksp_outfile "$n")
                check_grep "$n-protocol" "Protocol +: TLSv${v/./\\.}" "$out" || true
                check_grep "$n-client-verified" 'Verify return code: 0 \(ok\)' "$out" || true
                check_grep "$n-client-cert-seen" "Subject: CN ?= ?ksp11-$t-$k\$" "$out" || true
            done
        done
    done
    # Negative: a wrong PIN, no key, no page.
    timeout 60 tstclnt -h 127.0.0.1 -p "$S_SERVER_PORT" -d "$DB" -n "soft:ec" -w 9999 \
        -V tls1.3:tls1.3 -A request.txt >wrong-pin.out 2>&1 || true
    if grep -q 'Verify return code: 0' wrong-pin.out; then
        fail tstclnt-wrong-pin-refused "got the page with a wrong PIN"
    else
        pass tstclnt-wrong-pin-refused
    fi
fi

# verify_cert_sig CERT.der PUB.pem: the signature of CERT verifies with PUB
# (no chain rules: the issuer here is an end-entity certificate).
verify_cert_sig() {
    local c=$1 pub=$2 off hl len
    openssl asn1parse -inform DER -in "$c" -strparse 4 -noout -out "$c.tbs" || return 1
    # The signature BIT STRING: the last element at depth 1 (skip its unused-bits byte).
    read -r off hl len < <(openssl asn1parse -inform DER -in "$c" |
        sed -n 's/^ *\([0-9]*\):d=1 *hl=\([0-9]*\) *l= *\([0-9]*\) *prim: *BIT STRING.*/\1 \2 \3/p' |
        tail -n 1)
    [ -n "$len" ] || return 1
    tail -c "+$((off + hl + 2))" "$c" | head -c "$((len - 1))" >"$c.sig"
    openssl dgst -sha256 -verify "$pub" -signature "$c.sig" "$c.tbs"
}

# (2) certutil -C: the token key (through its certificate) signs a new certificate.
check certutil-C-request openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout leaf.key -subj /CN=ksp11-nss-issued -outform DER -out leaf.csr.der
serial=100
for t in $KSP_MATRIX_TOKENS; do
    for k in $KSP_MATRIX_KEYS; do
        serial=$((serial + 1))
        n=certutil-C-$t-$k
        if check "$n" certutil -C -d "$DB" -c "$t:$k" -i leaf.csr.der -o "$n.der" -f pin.txt \
            -m "$serial" -v 1 -Z SHA256; then
            check "$n-issuer" cmp <(openssl x509 -inform DER -in "$n.der" -noout -issuer) \
                <(openssl x509 -in "client-$t-$k.pem" -noout -subject | sed 's/^subject/issuer/') ||
                true
            check "$n-signature-verifies" verify_cert_sig "$n.der" "pub-$t-$k.pem" || true
        fi
    done
done
# The check can fail: a certificate signed by another key does not verify.
if [ -f certutil-C-soft-ec.der ] && [ -f pub-soft-rsa.pem ]; then
    check_fails certutil-C-other-key-does-not-verify verify_cert_sig certutil-C-soft-ec.der \
        pub-soft-rsa.pem || true
fi

ksp_finish
