#!/usr/bin/env bash
# End to end: the Configuration Manager client scenario with nothing but
# `ksp11 selfsign`: a key pair and a self-signed client certificate on a
# software token and on a TPM token (swtpm), then curl (libp11 engine, pkcs11:
# URIs as selfsign printed them) authenticates to `openssl s_server -Verify 1
# -verify_return_error` that trusts exactly those certificates, also from a
# PIN-less TPM token (the machine's certificate: no PIN anywhere); a client
# without the key is refused. check-cert passes on the TPM certificate, and a
# CSR signed in the TPM verifies.
# Progress: nothing on stderr when it is not a terminal; on a terminal
# (script -qc) the RSA key generation in the TPM shows "... done".
set -euo pipefail
# shellcheck source=tests/lib/helpers.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/helpers.sh"

require_cmd python3 openssl curl
ksp_setup
ksp_engine_path >/dev/null || skip_all "libp11 engine pkcs11.so not found; install libengine-pkcs11-openssl"
curl --version | grep -q OpenSSL || skip_all "curl is not built with OpenSSL (no engine support)"
require_module
# shellcheck source=tests/lib/tool_helpers.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/tool_helpers.sh"
tool_require

PIN=1234
cd "$TEST_DIR"
write_engine_conf engine.cnf
eng() {
    OPENSSL_CONF=$TEST_DIR/engine.cnf "$@"
}

# selfsign_json TOKEN LABEL ARGS...: selfsign with --json into LABEL.json and
# the PEM into LABEL.pem.
selfsign_json() {
    local token=$1 label=$2
    shift 2
    ksp selfsign --token "$token" --label "$label" --subject "/CN=ksp11-$label" --days 2 \
        --out "$label.pem" --json --pin "$PIN" "$@" >"$label.json"
}
# uri_of LABEL FIELD: a URI from the selfsign JSON (certificate_uri, or the key's).
uri_of() {
    python3 - "$1.json" "$2" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print(d["certificate_uri"] if sys.argv[2] == "cert" else d["objects"][0]["uri"])
PY
}

# --- software token (made before any TPM exists: keys fall back) ---
check soft-init ksp init --label soft --so-pin 12345678 --pin "$PIN" || exit 1
# Not a terminal: no progress output at all, just the result.
check soft-selfsign-rsa selfsign_json soft soft-rsa || exit 1
if grep -Eq 'generating|done \(|'$'\r' "$(ksp_outfile soft-selfsign-rsa)"; then
    fail progress-silent-without-terminal "progress output on a non-terminal stderr"
    show_tail "$(ksp_outfile soft-selfsign-rsa)"
else
    pass progress-silent-without-terminal
fi
check soft-selfsign-ec selfsign_json soft soft-ec --type ec || true
json_check soft-rsa-is-software soft-rsa.json 'd["objects"][0]["backend_name"] == "software"' || true

# --- TPM token ---
LABELS="soft-rsa soft-ec"
if ! command -v swtpm >/dev/null 2>&1; then
    skip tpm-selfsign "swtpm not installed: the TPM half is not run"
elif ! start_swtpm2 "$TEST_DIR/swtpm"; then
    fail tpm-swtpm "swtpm --tpm2 did not start"
    show_tail "$TEST_DIR/swtpm/swtpm.log"
else
    check tpm-init ksp init --label tpm --so-pin 12345678 --pin "$PIN" || exit 1
    # On a terminal (script gives the command a pty): progress, then done.
    if command -v script >/dev/null 2>&1; then
        check tpm-selfsign-rsa-terminal script -qec "'$KSP_TOOL' --module '$KSP11_MODULE' \
            selfsign --token tpm --label tpm-rsa --subject /CN=ksp11-tpm-rsa --days 2 \
            --out tpm-rsa.pem --require-hardware --pin $PIN" /dev/null || true
        check_grep progress-on-terminal 'generating an RSA-2048 key\.\.\. done \([0-9]+s\)' \
            "$(ksp_outfile tpm-selfsign-rsa-terminal)" || true
        check_grep tpm-rsa-is-tpm 'backend: +TPM' "$(ksp_outfile tpm-selfsign-rsa-terminal)" || true
        ksp list --token tpm --json --pin "$PIN" >tpm-list.json 2>/dev/null || true
        python3 - tpm-list.json >tpm-rsa.json <<'PY' || true
import json, sys
d = json.load(open(sys.argv[1]))
objs = [o for o in d["tokens"][0]["objects"] if o["label"] == "tpm-rsa"]
cert = dict(next(o for o in objs if o["class"] == "private"))
print(json.dumps({"certificate_uri": cert["uri"].replace("type=private", "type=cert"),
                  "objects": [cert]}))
PY
    else
        skip progress-on-terminal "script (util-linux) not installed"
        check tpm-selfsign-rsa selfsign_json tpm tpm-rsa --require-hardware || true
    fi
    check tpm-selfsign-ec selfsign_json tpm tpm-ec --type ec --require-hardware || true
    json_check tpm-ec-is-tpm tpm-ec.json 'd["objects"][0]["backend_name"] == "TPM"' || true
    check tpm-rsa-check-cert ksp check-cert --token tpm --cert tpm-rsa --pin "$PIN" || true
    check_grep tpm-rsa-check-cert-tpm "PASS  private-key +private key 'tpm-rsa' .*TPM\\)" \
        "$(ksp_outfile tpm-rsa-check-cert)" || true
    check tpm-rsa-verifies openssl verify -CAfile tpm-rsa.pem -purpose sslclient tpm-rsa.pem || true
    # A PKCS#10 request signed in the TPM verifies.
    check tpm-csr ksp csr --token tpm --key tpm-rsa --san DNS:client.example --eku clientAuth \
        --out tpm-rsa.csr --pin "$PIN" || true
    check tpm-csr-verifies openssl req -in tpm-rsa.csr -noout -verify || true
    # The machine's own certificate: a PIN-less token, no PIN anywhere.
    check machine-init ksp init --label machine --so-pin 12345678 --no-pin || true
    check_stdout machine-selfsign machine.json ksp selfsign --token machine --label machine \
        --subject /CN=ksp11-machine --days 2 --out machine.pem --json || true
    json_check machine-is-tpm machine.json 'd["objects"][0]["backend_name"] == "TPM"' || true
    LABELS="$LABELS tpm-rsa tpm-ec machine"
fi

# --- the server trusts exactly the self-signed client certificates ---
: >trust.pem
for l in $LABELS; do
    [ -s "$l.pem" ] && cat "$l.pem" >>trust.pem
done
check server-cert openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout server.key -subj /CN=127.0.0.1 -days 1 -out server.pem \
    -addext subjectAltName=IP:127.0.0.1 -addext extendedKeyUsage=serverAuth || exit 1
if ! start_s_server s_server.log -cert server.pem -key server.key -Verify 1 -verify_return_error \
    -www -CAfile trust.pem; then
    fail s_server-start "openssl s_server did not start"
    show_tail s_server.log
    exit 1
fi

for l in $LABELS; do
    [ -s "$l.json" ] || continue
    cert_uri=$(uri_of "$l" cert 2>/dev/null) || true
    key_uri="$(uri_of "$l" key 2>/dev/null)" || true
    [ "$l" = machine ] || key_uri="$key_uri;pin-value=$PIN"
    for v in 1.3 1.2; do
        page=page-$l-$v.html
        check "curl-$l-tls$v" eng curl -sS --max-time 60 --cacert server.pem \
            --tlsv"$v" --tls-max "$v" --cert "$cert_uri" --key "$key_uri" -o "$page" \
            "https://127.0.0.1:$S_SERVER_PORT/" || continue
        check_grep "curl-$l-tls$v-verified" 'Verify return code: 0 \(ok\)' "$page" || true
        check_grep "curl-$l-tls$v-cert-seen" "Subject: CN ?= ?ksp11-$l" "$page" || true
    done
done
check_fails curl-no-client-key-refused curl -sS --max-time 30 --cacert server.pem \
    -o /dev/null "https://127.0.0.1:$S_SERVER_PORT/" || true

ksp_finish
