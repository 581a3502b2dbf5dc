#!/usr/bin/env bash
# End to end: `ksp11 check-cert --role client-auth` against certificates made
# with OpenSSL for token keys (imported with import-cert) and from files:
# a good one passes all six requirements (exit 0); wrong EKU, key usage
# without keyEncipherment, SHA-1, expired, not yet valid, RSA-1024 and a key
# the token does not hold each fail exactly their requirement (exit 7).
# Text and --json; bad input (unknown role, missing certificate, garbage).
set -euo pipefail
# shellcheck source=tests/lib/helpers.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/helpers.sh"

require_cmd python3 openssl
ksp_setup
require_module
# shellcheck source=tests/lib/tool_helpers.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/tool_helpers.sh"
tool_require

PIN=1234
cd "$TEST_DIR"
ossl_quiet() {
    "$@" >/dev/null 2>&1
}

check setup-init ksp init --label t --so-pin 12345678 --pin "$PIN" || exit 1
check setup-selfsign ksp selfsign --token t --label good --subject /CN=good --out good.pem \
    --pin "$PIN" || exit 1
check setup-keygen ksp keygen --token t --label bad --rsa 2048 --id b0 --pin "$PIN" || exit 1
check setup-keygen-ec ksp keygen --token t --label badec --ec P-256 --id b1 --pin "$PIN" || exit 1
check setup-csr ksp csr --token t --key bad --subject /CN=bad --out bad.csr --pin "$PIN" || exit 1
check setup-csr-ec ksp csr --token t --key badec --subject /CN=badec --out badec.csr --pin "$PIN" ||
    exit 1

# A CA run by `openssl ca`, which can set any validity period.
check setup-ca ossl_quiet openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout ca.key -subj /CN=ksp11-check-ca -days 3650 -out ca.pem \
    -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign ||
    exit 1
mkdir -p newcerts
: >index.txt
echo 1000 >serial
cat >ca.cnf <<CNF
[ca]
default_ca = ca_any
[ca_any]
dir = .
database = index.txt
new_certs_dir = newcerts
serial = serial
policy = policy_any
default_md = sha256
default_days = 30
unique_subject = no
[policy_any]
commonName = supplied
CNF
printf 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' >good.ext
printf 'extendedKeyUsage=serverAuth\nkeyUsage=critical,digitalSignature,keyEncipherment\n' >server.ext
printf 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n' >ku80.ext
printf 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n' >ec.ext
# ca_sign OUT CSR EXT [openssl ca options...]
ca_sign() {
    local out=$1 csr=$2 ext=$3
    shift 3
    ossl_quiet openssl ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -notext \
        -in "$csr" -extfile "$ext" -out "$out" "$@"
}
check make-ca-good ca_sign ca-good.pem bad.csr good.ext || true
check make-wrong-eku ca_sign wrong-eku.pem bad.csr server.ext || true
check make-ku-80 ca_sign ku80.pem bad.csr ku80.ext || true
check make-sha1 ca_sign sha1.pem bad.csr good.ext -md sha1 || true
check make-expired ca_sign expired.pem bad.csr good.ext -startdate 20200101000000Z \
    -enddate 20210101000000Z || true
check make-future ca_sign future.pem bad.csr good.ext -startdate 20990101000000Z \
    -enddate 20991231000000Z || true
check make-ec-good ca_sign ec-good.pem badec.csr ec.ext || true
check make-rsa1024 ossl_quiet openssl req -x509 -newkey rsa:1024 -nodes -keyout rsa1024.key \
    -subj /CN=weak -days 30 -out rsa1024.pem -addext extendedKeyUsage=clientAuth \
    -addext keyUsage=critical,digitalSignature,keyEncipherment || true
check make-not-on-token ossl_quiet openssl req -x509 -newkey rsa:2048 -nodes -keyout other.key \
    -subj /CN=other -days 30 -out other.pem -addext extendedKeyUsage=clientAuth \
    -addext keyUsage=critical,digitalSignature,keyEncipherment || true

# --- the good ones: every requirement passes, exit 0 ---
check good-on-token ksp check-cert --token t --cert good --pin "$PIN" || true
out=$(ksp_outfile good-on-token)
for r in eku-client-auth key-usage signature-sha2 key-strength validity private-key; do
    check_grep "good-pass-$r" "^  PASS  $r " "$out" || true
done
check_grep good-summary '^6 of 6 requirements met' "$out" || true
check_grep good-private-key-detail "PASS  private-key +private key 'good' \\(id [0-9a-f]+, software\\)" \
    "$out" || true
check good-by-uri ksp check-cert --cert 'pkcs11:token=t;object=good;type=cert' --pin "$PIN" || true
check good-from-file ksp check-cert --in good.pem --pin "$PIN" || true
check_stdout good-json good.json ksp check-cert --token t --cert good --json --pin "$PIN" || true
json_check good-json-all-pass good.json \
    'd["pass"] is True and d["role"] == "client-auth" and len(d["requirements"]) == 6 and
     all(r["pass"] for r in d["requirements"])' || true
check ca-good-from-file ksp check-cert --in ca-good.pem --pin "$PIN" || true
check ec-good-from-file ksp check-cert --in ec-good.pem --pin "$PIN" || true
check_grep ec-key-usage-80-enough 'PASS  key-usage +keyUsage: digitalSignature$' \
    "$(ksp_outfile ec-good-from-file)" || true

# expect_only_fail NAME REQUIREMENT CMD...: exit 7, REQUIREMENT is the one FAIL.
expect_only_fail() {
    local name=$1 req=$2 out fails
    shift 2
    expect_rc "$name-exits-7" 7 "$@" || return 0
    out=$(ksp_outfile "$name-exits-7")
    fails=$(grep -E '^  FAIL  ' "$out" | awk '{print $2}' | tr '\n' ' ')
    if [ "$fails" = "$req " ]; then
        pass "$name-fails-$req"
    else
        fail "$name-fails-$req" "failed requirements: '$fails'"
        show_tail "$out"
    fi
}

# --- each defect fails its requirement: certificates imported onto the token ---
check import-wrong-eku ksp import-cert --token t --in wrong-eku.pem --pin "$PIN" || true
expect_only_fail wrong-eku eku-client-auth ksp check-cert --token t --cert bad --pin "$PIN"
check_grep wrong-eku-detail 'FAIL  eku-client-auth +extendedKeyUsage: TLS Web Server Authentication \(no clientAuth\)' \
    "$(ksp_outfile wrong-eku-exits-7)" || true
check import-expired ksp import-cert --token t --in expired.pem --replace --pin "$PIN" || true
expect_only_fail expired validity ksp check-cert --token t --id b0 --pin "$PIN"
check_grep expired-detail 'FAIL  validity +expired on 2021-01-01T00:00:00Z' \
    "$(ksp_outfile expired-exits-7)" || true
check import-sha1 ksp import-cert --token t --in sha1.pem --replace --pin "$PIN" || true
expect_only_fail sha1 signature-sha2 ksp check-cert --token t --cert bad --pin "$PIN"
check_grep sha1-detail 'FAIL  signature-sha2 +signature algorithm ecdsa-with-SHA1' \
    "$(ksp_outfile sha1-exits-7)" || true
ksp check-cert --token t --cert bad --json --pin "$PIN" >sha1.json 2>/dev/null || true
json_check sha1-json-fails sha1.json \
    'd["pass"] is False and [r["name"] for r in d["requirements"] if not r["pass"]] == ["signature-sha2"]' ||
    true

# --- and from files ---
expect_only_fail ku-80-rsa key-usage ksp check-cert --in ku80.pem --pin "$PIN"
expect_only_fail future validity ksp check-cert --in future.pem --pin "$PIN"
check_grep future-detail 'FAIL  validity +not valid before 2099-01-01' \
    "$(ksp_outfile future-exits-7)" || true
# RSA-1024 with no key on the token: two failures.
expect_rc rsa1024-exits-7 7 ksp check-cert --in rsa1024.pem --pin "$PIN" || true
check_grep rsa1024-key-strength 'FAIL  key-strength +RSA-1024 \(needs at least 2048 bits\)' \
    "$(ksp_outfile rsa1024-exits-7)" || true
check_grep rsa1024-summary '^4 of 6 requirements met' "$(ksp_outfile rsa1024-exits-7)" || true
expect_rc import-rsa1024-refused-6 6 ksp import-cert --token t --in rsa1024.pem --pin "$PIN" || true
expect_only_fail not-on-token private-key ksp check-cert --in other.pem --pin "$PIN"

# --- bad input ---
expect_rc check-unknown-role-2 2 ksp check-cert --cert good --role server-auth --pin "$PIN" || true
expect_rc check-no-selector-2 2 ksp check-cert --token t --pin "$PIN" || true
expect_rc check-both-selectors-2 2 ksp check-cert --cert good --in good.pem --pin "$PIN" || true
expect_rc check-missing-cert-3 3 ksp check-cert --token t --cert nosuch --pin "$PIN" || true
expect_rc check-unknown-token-3 3 ksp check-cert --token nosuch --cert good --pin "$PIN" || true
printf 'garbage\n' >garbage.pem
expect_rc check-garbage-file-5 5 ksp check-cert --in garbage.pem --pin "$PIN" || true
expect_rc check-wrong-pin-4 4 ksp check-cert --cert good --pin 9999 || true
expect_rc check-help-0 0 ksp check-cert --help || true
check_grep check-help-lists-role '^  client-auth' "$(ksp_outfile check-help-0)" || true

ksp_finish
