#!/usr/bin/env bash
# End to end: the certificate commands of ksp11 on a software token, each
# result checked independently with OpenSSL and pkcs11-tool.
#   selfsign     X.509 v3 (version, SHA-256, keyUsage critical a0 / 80 for EC,
#                EKU clientAuth, subject, SAN, validity), self-signature and
#                sslclient purpose verified, its key IS the token key, stored on
#                the token (same DER, same CKA_ID), random serials, --json;
#                bad input leaves no key behind
#   csr          PKCS#10 verified by openssl req -verify, subject, SAN, EKU,
#                its key is the token key; key by label, URI, id; --json
#   import-cert  PEM, DER, stdin; next to the key with the key's id; refusals:
#                duplicate, other cert for the key without --replace, no
#                matching key; malformed / empty / missing files
set -euo pipefail
# shellcheck source=tests/lib/helpers.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/helpers.sh"

require_cmd python3 openssl pkcs11-tool
ksp_setup
require_module
# shellcheck source=tests/lib/tool_helpers.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/tool_helpers.sh"
tool_require

PIN=1234
SO_PIN=12345678
cd "$TEST_DIR"

# text_has NAME FILE REGEX: `openssl x509|req -text` output of FILE contains REGEX.
cert_text() {
    openssl x509 -in "$1" -noout -text 2>&1
}
# token_pub LABEL OUT.pem: the public key object LABEL as read by pkcs11-tool.
token_pub() {
    p11 --token-label t --read-object --type pubkey --label "$1" -o "$2.der" >/dev/null 2>&1 &&
        der_to_pubpem "$2.der" "$2"
}
# no_objects LABEL: nothing on token t has label LABEL.
no_objects() {
    ! p11 --token-label t --login --pin "$PIN" --list-objects 2>/dev/null |
        grep -q "label: *$1\$"
}

check setup-init ksp init --label t --so-pin "$SO_PIN" --pin "$PIN" || exit 1

# --- selfsign, RSA (the default) ---
check selfsign-rsa ksp selfsign --token t --label cm --subject "/CN=cm-client/O=ksp11 test" \
    --days 30 --out cm.pem --pin "$PIN" || exit 1
out=$(ksp_outfile selfsign-rsa)
check_grep selfsign-rsa-says 'created RSA-2048 key pair and self-signed certificate "cm" on token "t"' \
    "$out" || true
check_grep selfsign-rsa-cert-uri '^  certificate: pkcs11:token=t;object=cm;type=cert;id=%' "$out" || true
check_grep selfsign-rsa-key-uri '^  private key: pkcs11:token=t;object=cm;type=private;id=%' "$out" ||
    true
check_grep selfsign-rsa-curl-line "^curl: curl --cert 'pkcs11:token=t;object=cm;type=cert" "$out" ||
    true
cert_text cm.pem >cm.txt
check_grep selfsign-v3 'Version: 3 \(0x2\)' cm.txt || true
check_grep selfsign-sha256 'Signature Algorithm: sha256WithRSAEncryption' cm.txt || true
check_grep selfsign-subject 'Subject: CN ?= ?cm-client, O ?= ?ksp11 test' cm.txt || true
check_grep selfsign-issuer-is-subject 'Issuer: CN ?= ?cm-client, O ?= ?ksp11 test' cm.txt || true
check_grep selfsign-rsa-2048 'Public-Key: \(2048 bit\)' cm.txt || true
if grep -A1 'X509v3 Key Usage: critical' cm.txt | grep -q '^ *Digital Signature, Key Encipherment$'; then
    pass selfsign-key-usage-critical-a0
else
    fail selfsign-key-usage-critical-a0 "keyUsage is not critical digitalSignature+keyEncipherment"
fi
if grep -A1 'X509v3 Extended Key Usage' cm.txt | grep -q '^ *TLS Web Client Authentication$'; then
    pass selfsign-eku-client-auth
else
    fail selfsign-eku-client-auth "EKU is not exactly clientAuth"
fi
check_grep selfsign-not-ca 'CA:FALSE' cm.txt || true
check selfsign-verifies-sslclient openssl verify -CAfile cm.pem -purpose sslclient cm.pem || true
# 30 days: valid in 29 days, not in 31 (openssl -checkend, no clock games).
check selfsign-days-30-lasts openssl x509 -in cm.pem -noout -checkend $((29 * 86400)) || true
check_fails selfsign-days-30-ends openssl x509 -in cm.pem -noout -checkend $((31 * 86400)) || true
# The certificate's key is the token's key.
openssl x509 -in cm.pem -noout -pubkey >cm-cert-pub.pem
if token_pub cm cm-token-pub.pem && ksp_same_pubkey cm-cert-pub.pem cm-token-pub.pem; then
    pass selfsign-cert-key-is-token-key
else
    fail selfsign-cert-key-is-token-key "public keys differ"
fi
# Stored on the token: the same DER, with the key's CKA_ID.
openssl x509 -in cm.pem -outform DER -out cm.der
if p11 --token-label t --read-object --type cert --label cm -o cm-token.der >/dev/null 2>&1 &&
    cmp -s cm.der cm-token.der; then
    pass selfsign-cert-on-token
else
    fail selfsign-cert-on-token "the token's certificate differs from --out"
fi
ksp list --token t --json --pin "$PIN" >list.json 2>/dev/null || true
json_check selfsign-cert-id-is-key-id list.json \
    'len({o["id"] for o in d["tokens"][0]["objects"] if o["label"] == "cm"}) == 1 and
     sorted(o["class"] for o in d["tokens"][0]["objects"] if o["label"] == "cm") ==
         ["cert", "private", "public"]' || true

json_check list-cert-subject list.json \
    'any(o["class"] == "cert" and o["label"] == "cm" and o["subject"] == "/CN=cm-client/O=ksp11 test"
         and o["not_after"].endswith("Z") for o in d["tokens"][0]["objects"])' || true
ksp list --token t --pin "$PIN" >list.txt 2>&1 || true
check_grep list-cert-text 'certificate +X\.509 +label "cm"' list.txt || true
check_grep list-cert-subject-text 'subject: /CN=cm-client/O=ksp11 test, valid until 20[0-9-]+T' \
    list.txt || true

# --- selfsign, EC, JSON, default subject = host name, only token = default ---
check_stdout selfsign-ec selfsign-ec.json ksp selfsign --label cm-ec --type ec --out cm-ec.pem --json --pin "$PIN" || true
json_check selfsign-ec-json selfsign-ec.json \
    'd["token"] == "t" and d["subject"] == "/CN='"$(hostname)"'" and
     d["certificate_uri"].startswith("pkcs11:token=t;object=cm-ec;type=cert;id=") and
     d["objects"][0]["curve"] == "P-256" and d["objects"][0]["backend_name"] == "software"' || true
cert_text cm-ec.pem >cm-ec.txt
check_grep selfsign-ec-sha256 'Signature Algorithm: ecdsa-with-SHA256' cm-ec.txt || true
check_grep selfsign-ec-hostname "Subject: CN ?= ?$(hostname)\$" cm-ec.txt || true
if grep -A1 'X509v3 Key Usage: critical' cm-ec.txt | grep -q '^ *Digital Signature$'; then
    pass selfsign-ec-key-usage-digital-signature
else
    fail selfsign-ec-key-usage-digital-signature "EC keyUsage is not critical digitalSignature"
fi
check selfsign-ec-verifies openssl verify -CAfile cm-ec.pem -purpose sslclient cm-ec.pem || true
s1=$(openssl x509 -in cm.pem -noout -serial)
s2=$(openssl x509 -in cm-ec.pem -noout -serial)
if [ -n "$s1" ] && [ "$s1" != "$s2" ]; then pass selfsign-serials-differ; else fail selfsign-serials-differ "$s1"; fi

check selfsign-san ksp selfsign --token t --label cm-san --type ec --curve P-384 \
    --subject /CN=san --san DNS:host.example --san IP:127.0.0.1,email:ops@example.org \
    --out cm-san.pem --pin "$PIN" || true
cert_text cm-san.pem >cm-san.txt
check_grep selfsign-san-entries 'DNS:host.example, IP Address:127.0.0.1, email:ops@example.org' \
    cm-san.txt || true
check_grep selfsign-p384 'ASN1 OID: secp384r1' cm-san.txt || true

# --- selfsign refusals: the right exit code, and no key left behind ---
expect_rc selfsign-label-exists-6 6 ksp selfsign --token t --label cm --pin "$PIN" || true
expect_rc selfsign-bad-san-2 2 ksp selfsign --token t --label bad1 --san FOO:x --pin "$PIN" || true
check no-key-after-bad-san no_objects bad1 || true
expect_rc selfsign-bad-subject-2 2 ksp selfsign --token t --label bad2 --subject CN=x --pin "$PIN" ||
    true
expect_rc selfsign-unknown-attr-2 2 ksp selfsign --token t --label bad2 --subject /XX=x --pin "$PIN" ||
    true
expect_rc selfsign-days-0-2 2 ksp selfsign --token t --label bad2 --days 0 --pin "$PIN" || true
expect_rc selfsign-bad-type-2 2 ksp selfsign --token t --label bad2 --type dsa --pin "$PIN" || true
expect_rc selfsign-rsa-1024-2 2 ksp selfsign --token t --label bad2 --bits 1024 --pin "$PIN" || true
expect_rc selfsign-no-label-2 2 ksp selfsign --token t --pin "$PIN" || true
expect_rc selfsign-require-hardware-6 6 ksp selfsign --token t --label bad3 --require-hardware \
    --pin "$PIN" || true
check no-key-after-require-hardware no_objects bad3 || true
expect_rc selfsign-out-unwritable-5 5 ksp selfsign --token t --label bad5 --out no-dir/x.pem \
    --pin "$PIN" || true
check no-key-after-unwritable-out no_objects bad5 || true
expect_rc selfsign-unknown-token-3 3 ksp selfsign --token nope --label bad4 --pin "$PIN" || true
expect_rc selfsign-wrong-pin-4 4 ksp selfsign --token t --label bad4 --pin 9999 || true
check no-key-after-wrong-pin no_objects bad4 || true

# --- csr ---
check csr-keygen ksp keygen --token t --label k1 --rsa 2048 --id c1 --pin "$PIN" || true
check csr-rsa ksp csr --token t --key k1 --subject "/CN=k1.example/O=Ex\\/ample" \
    --san DNS:k1.example,IP:127.0.0.1 --eku clientAuth,serverAuth,1.3.6.1.5.5.7.3.4 \
    --out k1.csr --pin "$PIN" || true
check csr-verifies openssl req -in k1.csr -noout -verify || true
openssl req -in k1.csr -noout -text >k1.txt 2>&1 || true
check_grep csr-subject 'Subject: CN ?= ?k1.example, O ?= ?Ex/ample' k1.txt || true
check_grep csr-sha256 'Signature Algorithm: sha256WithRSAEncryption' k1.txt || true
check_grep csr-san 'DNS:k1.example, IP Address:127.0.0.1' k1.txt || true
check_grep csr-eku 'TLS Web Client Authentication, TLS Web Server Authentication, E-mail Protection' \
    k1.txt || true
openssl req -in k1.csr -noout -pubkey >k1-csr-pub.pem 2>/dev/null || true
if token_pub k1 k1-token-pub.pem && ksp_same_pubkey k1-csr-pub.pem k1-token-pub.pem; then
    pass csr-key-is-token-key
else
    fail csr-key-is-token-key "public keys differ"
fi
check csr-by-uri ksp csr --key 'pkcs11:token=t;object=k1;type=private' --out k1-uri.csr --pin "$PIN" ||
    true
check csr-by-uri-id ksp csr --key 'pkcs11:token=t;id=%c1' --out k1-id.csr --pin "$PIN" || true
check csr-by-id ksp csr --token t --id c1 --pin "$PIN" || true
check_grep csr-stdout-pem '^-----BEGIN CERTIFICATE REQUEST-----$' "$(ksp_outfile csr-by-id)" || true
check_stdout csr-ec csr-ec.json ksp csr --token t --key cm-ec --json --pin "$PIN" || true
json_check csr-json csr-ec.json \
    'd["subject"] == "/CN='"$(hostname)"'" and d["key_uri"].startswith("pkcs11:token=t;object=cm-ec;") and
     d["pem"].startswith("-----BEGIN CERTIFICATE REQUEST-----")' || true
python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pem"], end="")' \
    csr-ec.json >ec.csr 2>/dev/null || true
check csr-ec-verifies openssl req -in ec.csr -noout -verify || true
expect_rc csr-missing-key-3 3 ksp csr --token t --key nosuchkey --pin "$PIN" || true
expect_rc csr-no-key-2 2 ksp csr --token t --pin "$PIN" || true
expect_rc csr-bad-eku-2 2 ksp csr --token t --key k1 --eku notAnEku --pin "$PIN" || true
expect_rc csr-bad-san-2 2 ksp csr --token t --key k1 --san nonsense --pin "$PIN" || true
expect_rc csr-bad-uri-2 2 ksp csr --key 'pkcs11:token=t;object' --pin "$PIN" || true
expect_rc csr-token-mismatch-2 2 ksp csr --token t --key 'pkcs11:token=u;object=k1' --pin "$PIN" ||
    true

# --- import-cert ---
ossl_quiet() {
    "$@" >/dev/null 2>&1
}
check setup-ca ossl_quiet openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout ca.key -subj /CN=ksp11-tool-ca -days 2 -out ca.pem \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign || true
printf 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' >client.ext
check setup-k1-cert ossl_quiet openssl x509 -req -in k1.csr -CA ca.pem -CAkey ca.key \
    -CAcreateserial -days 1 -extfile client.ext -out k1.pem || true
check setup-k1-cert2 ossl_quiet openssl x509 -req -in k1.csr -CA ca.pem -CAkey ca.key \
    -CAcreateserial -days 2 -extfile client.ext -out k1-renewed.pem || true
openssl x509 -in k1-renewed.pem -outform DER -out k1-renewed.der 2>/dev/null || true

check import-pem ksp import-cert --token t --in k1.pem --pin "$PIN" || true
check_grep import-says 'imported certificate "k1" on token "t"' "$(ksp_outfile import-pem)" || true
check_grep import-uses-key-id 'id: +c1 \(the key.s\)' "$(ksp_outfile import-pem)" || true
openssl x509 -in k1.pem -outform DER -out k1.der
if p11 --token-label t --read-object --type cert --id c1 -o k1-token.der >/dev/null 2>&1 &&
    cmp -s k1.der k1-token.der; then
    pass import-cert-on-token-with-key-id
else
    fail import-cert-on-token-with-key-id "no certificate with id c1, or a different one"
fi
expect_rc import-duplicate-6 6 ksp import-cert --token t --in k1.pem --pin "$PIN" || true
check_grep import-duplicate-message 'on token "t" already' "$(ksp_outfile import-duplicate-6)" || true
expect_rc import-duplicate-der-6 6 ksp import-cert --token t --in k1.der --pin "$PIN" || true
expect_rc import-second-cert-6 6 ksp import-cert --token t --in k1-renewed.der --pin "$PIN" || true
check_grep import-second-cert-message 'give --replace' "$(ksp_outfile import-second-cert-6)" || true
check_stdout import-replace-der-json import-replace.json ksp import-cert --token t --in k1-renewed.der --replace --json \
    --pin "$PIN" || true
json_check import-replace-json import-replace.json \
    'd["label"] == "k1" and d["id"] == "c1" and d["replaced"] == 1 and
     d["certificate_uri"] == "pkcs11:token=t;object=k1;type=cert;id=%c1"' || true
n_certs=$(p11 --token-label t --list-objects --type cert 2>/dev/null | grep -c 'ID: *c1$' || true)
if [ "$n_certs" = 1 ]; then pass import-replace-leaves-one; else fail import-replace-leaves-one "$n_certs certificates with id c1"; fi
# Mismatch: the CA's certificate belongs to no token key.
expect_rc import-mismatch-6 6 ksp import-cert --token t --in ca.pem --pin "$PIN" || true
check_grep import-mismatch-message "no key on token \"t\" has the certificate's public key" \
    "$(ksp_outfile import-mismatch-6)" || true
# From stdin, with a label of its own (the EC key had no certificate after a delete).
check import-setup-ec-cert ossl_quiet openssl x509 -req -in ec.csr -CA ca.pem -CAkey ca.key \
    -CAcreateserial -days 1 -extfile client.ext -out ec-ca.pem || true
import_stdin() {
    "$KSP_TOOL" --module "$KSP11_MODULE" import-cert --token t --in - --label ec-by-ca \
        --replace --pin "$PIN" <ec-ca.pem
}
check import-stdin import_stdin || true
check_grep import-stdin-label 'imported certificate "ec-by-ca"' "$(ksp_outfile import-stdin)" || true
# Malformed input: exit 5, nothing stored.
head -c 300 k1.pem >truncated.pem
head -c 200 k1.der >truncated.der
printf 'not a certificate\n' >garbage.txt
: >empty.pem
expect_rc import-truncated-pem-5 5 ksp import-cert --token t --in truncated.pem --pin "$PIN" || true
expect_rc import-truncated-der-5 5 ksp import-cert --token t --in truncated.der --pin "$PIN" || true
expect_rc import-garbage-5 5 ksp import-cert --token t --in garbage.txt --pin "$PIN" || true
expect_rc import-empty-5 5 ksp import-cert --token t --in empty.pem --pin "$PIN" || true
expect_rc import-missing-file-5 5 ksp import-cert --token t --in nonexistent.pem --pin "$PIN" || true
check_grep import-missing-file-message 'cannot open nonexistent.pem' \
    "$(ksp_outfile import-missing-file-5)" || true
expect_rc import-no-in-2 2 ksp import-cert --token t --pin "$PIN" || true

ksp_finish
