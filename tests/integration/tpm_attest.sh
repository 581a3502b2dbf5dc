#!/usr/bin/env bash
# Attestation of TPM keys (issue 7) on throwaway swtpms: build/tests/itest_attest
# (one PASS/FAIL line per Check test), then `ksp11 attest` and
# `ksp11 verify-attestation` on a TPM with an EK certificate made by
# swtpm_setup and its local CA: RSA and EC keys verify (nonce, EK chain), and
# tampering with each part (public area, attributes, certified data,
# signature, PKCS#11 key, nonce, EK chain) is refused; a software key refuses
# to attest. Every swtpm is stopped by its PID.
set -u

# shellcheck source=tests/lib/helpers.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/helpers.sh"

require_cmd swtpm tpm2_getcap
ksp_setup
require_module
bin=$KSP_BUILD/tests/itest_attest
if [ ! -x "$bin" ]; then
    fail attest "$bin not built"
    ksp_finish
    exit 1
fi
start_swtpm2 "$TEST_DIR/tpm" || {
    fail attest "swtpm --tpm2 did not start"
    ksp_finish
    exit 1
}
out=$(ksp_outfile itest_attest)
rc=0
KSP11_ITEST_TCTI=$KSP11_TCTI "$bin" >"$out" 2>&1 || rc=$?
n=0
while IFS= read -r line; do
    kind=$(printf '%s' "$line" | cut -d: -f3)
    test=$(printf '%s' "$line" | cut -d: -f5)
    msg=$(printf '%s' "$line" | cut -d: -f7-)
    case "$kind" in
    P) pass "attest: $test" ;;
    F | E) fail "attest: $test" "${msg# }" ;;
    esac
    n=$((n + 1))
done < <(grep -E '^[^:]+:[0-9]+:[PFE]:' "$out" || true)
if [ "$n" -eq 0 ] || { [ "$rc" -ne 0 ] && ! grep -qE ':[0-9]+:[FE]:' "$out"; }; then
    fail attest "itest_attest exited $rc with $n results"
    show_tail "$out"
fi
ksp_kill_pid "$(cat "$TEST_DIR/tpm/swtpm.pid")"

# ---- ksp11 attest / verify-attestation with an EK certificate -------------
# A TPM manufactured by swtpm's own tooling: swtpm_setup puts an EK
# certificate, issued by swtpm_localca's CA (created in the temp dir), in NV.
if ! command -v swtpm_setup >/dev/null || ! command -v swtpm_localca >/dev/null; then
    skip "attest: ksp11 attest/verify-attestation" "swtpm_setup/swtpm_localca not installed"
    ksp_finish
    exit $?
fi
ca=$TEST_DIR/ca
mkdir -p "$ca" "$TEST_DIR/ek"
cat >"$TEST_DIR/localca.conf" <<CONF
statedir = $ca
signingkey = $ca/signkey.pem
issuercert = $ca/issuercert.pem
certserial = $ca/certserial
CONF
cat >"$TEST_DIR/setup.conf" <<CONF
create_certs_tool = /usr/bin/swtpm_localca
create_certs_tool_config = $TEST_DIR/localca.conf
create_certs_tool_options = /etc/swtpm-localca.options
active_pcr_banks = sha256
CONF
if ! swtpm_setup --tpm2 --tpmstate "$TEST_DIR/ek" --create-ek-cert --config "$TEST_DIR/setup.conf" \
    >"$TEST_DIR/setup.log" 2>&1; then
    fail "attest: swtpm_setup --create-ek-cert" "see below"
    show_tail "$TEST_DIR/setup.log"
    ksp_finish
    exit 1
fi
start_swtpm2 "$TEST_DIR/ek" || {
    fail attest "swtpm with EK certificate did not start"
    ksp_finish
    exit 1
}
tool=$KSP_BUILD/ksp11
export KSP11_PIN=1234
check "attest: init token" "$tool" init --label att --so-pin 12345678 --pin 1234
check "attest: RSA key in the TPM" "$tool" keygen --token att --label rk --rsa 2048 --require-hardware
check "attest: EC key in the TPM" "$tool" keygen --token att --label ek --ec P-256 --require-hardware
check "attest: software key" "$tool" keygen --token att --label sk --rsa 4096
nonce=00112233445566778899aabbccddeeff
roots=$ca/swtpm-localca-rootca-cert.pem
for k in rk ek; do
    check "attest: ksp11 attest $k" "$tool" attest --token att --key "$k" --nonce "$nonce" \
        --out "$TEST_DIR/$k.att"
    check "attest: verify-attestation $k (nonce, EK chain)" "$tool" verify-attestation \
        --in "$TEST_DIR/$k.att" --nonce "$nonce" --ca-roots "$roots" --ca-chain "$ca/issuercert.pem"
done
out=$(ksp_outfile attest-soft)
rc=0
"$tool" attest --token att --key sk --out "$TEST_DIR/sk.att" >"$out" 2>&1 || rc=$?
if [ "$rc" -eq 6 ] && grep -q "software key" "$out"; then
    pass "attest: a software key refuses to attest, saying why"
else
    fail "attest: a software key refuses to attest, saying why" "exit $rc"
    show_tail "$out"
fi

# rec_off FILE TAG: "offset length" of a bundle record's value.
rec_off() {
    local f=$1 tag=$2 at=8 size t l
    size=$(stat -c %s "$f")
    while [ "$at" -lt "$size" ]; do
        read -r t l < <(od -An -tu1 -j "$at" -N 6 "$f" |
            awk '{print $1 * 256 + $2, (($3 * 256 + $4) * 256 + $5) * 256 + $6}')
        if [ "$t" = "$tag" ]; then
            echo "$((at + 6)) $l"
            return 0
        fi
        at=$((at + 6 + l))
    done
    return 1
}
# tamper NAME TAG WHERE MASK: a copy of rk.att with one byte of record TAG
# XORed (WHERE: offset in the record, or "last"), which must not verify.
tamper() {
    local name=$1 off len at byte f=$TEST_DIR/tampered-$1.att
    cp "$TEST_DIR/rk.att" "$f"
    read -r off len < <(rec_off "$f" "$2")
    if [ "$3" = last ]; then at=$((off + len - 1)); else at=$((off + $3)); fi
    byte=$(od -An -tu1 -j "$at" -N 1 "$f" | tr -d ' ')
    printf "\\$(printf '%03o' $((byte ^ $4)))" | dd of="$f" bs=1 seek="$at" conv=notrunc status=none
    check_fails "attest: tampered $name is refused" "$tool" verify-attestation --in "$f" \
        --nonce "$nonce" --ca-roots "$roots" --ca-chain "$ca/issuercert.pem"
}
tamper "public area (modulus)" 1 last 1
tamper "attributes (fixedTPM cleared)" 1 9 2
tamper "certified data" 2 last 1
tamper "signature" 3 last 1
tamper "PKCS#11 public key" 8 last 1
check_fails "attest: wrong nonce is refused" "$tool" verify-attestation --in "$TEST_DIR/rk.att" \
    --nonce 00 --ca-roots "$roots" --ca-chain "$ca/issuercert.pem"
# An EK chain to another CA.
openssl req -x509 -newkey rsa:2048 -nodes -keyout "$TEST_DIR/other.key" -out "$TEST_DIR/other.pem" \
    -subj /CN=other-ca -days 2 >/dev/null 2>&1
check_fails "attest: EK certificate from another CA is refused" "$tool" verify-attestation \
    --in "$TEST_DIR/rk.att" --nonce "$nonce" --ca-roots "$TEST_DIR/other.pem"
ksp_finish
