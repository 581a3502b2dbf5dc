#!/usr/bin/env bash
# End to end: an OpenSSL process whose openssl.cnf makes libp11's "pkcs11"
# engine the DEFAULT for all algorithms (default_algorithms = ALL, as curl's
# engine set-up and `openssl -engine` effectively do) signs with TPM keys
# (swtpm): `openssl pkeyutl -sign` and `openssl req -new -x509` through the
# engine, checked with the public key read by pkcs11-tool, without the
# engine. Every engine run is bounded (60 s); a hung one gets a gdb backtrace
# of all its threads before it is killed. This proves that the module's own
# crypto and tpm2-tss's session crypto (salted sessions) do not route back
# into the engine. Finally nothing may be left loaded in the TPM.
set -u
# shellcheck source=tests/lib/helpers.sh
source "$(dirname "${BASH_SOURCE[0]}")/../lib/helpers.sh"

require_cmd openssl pkcs11-tool swtpm tpm2_getcap
ksp_setup
ENGINE=$(ksp_engine_path) || skip_all "libp11 engine pkcs11.so not found; install libengine-pkcs11-openssl"
require_module
if ! start_swtpm2 "$TEST_DIR/swtpm"; then
    fail engine-default-swtpm "swtpm --tpm2 did not start"
    show_tail "$TEST_DIR/swtpm/swtpm.log"
    ksp_finish
    exit 1
fi
cd "$TEST_DIR" || exit 1

PIN=1234
SO_PIN=12345678
U=(--token-label t --login --pin "$PIN")
RSA_KEY="pkcs11:token=t;object=rsa;type=private;pin-value=$PIN"
EC_KEY="pkcs11:token=t;object=ec;type=private;pin-value=$PIN"
DEADLINE=60

# run_bounded NAME CMD...: like check, but CMD runs in the background for at
# most $DEADLINE seconds; if it is still running then, gdb prints the
# backtrace of every thread into its output before it is killed.
run_bounded() {
    local name=$1 out pid i rc=0
    shift
    out=$(ksp_outfile "$name")
    "$@" >"$out" 2>&1 &
    pid=$!
    for ((i = 0; i < DEADLINE * 10; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
        {
            echo "=== hung after ${DEADLINE}s; backtrace of pid $pid ==="
            timeout 60 gdb -q -batch -p "$pid" -ex 'thread apply all bt' 2>&1
        } >>"$out"
        kill -9 "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        fail "$name" "hung for ${DEADLINE}s: $*"
        show_tail "$out" 60
        return 124
    fi
    wait "$pid" || rc=$?
    if [ "$rc" -eq 0 ]; then
        pass "$name"
    else
        fail "$name" "exit $rc: $*"
        show_tail "$out"
    fi
    return "$rc"
}

# The engine as the default for everything, with the module under test.
cat >engine.cnf <<EOF
openssl_conf = openssl_init

[openssl_init]
engines = engine_section

[engine_section]
pkcs11 = pkcs11_section

[pkcs11_section]
engine_id = pkcs11
dynamic_path = $ENGINE
MODULE_PATH = $KSP11_MODULE
default_algorithms = ALL
init = 1

[req]
distinguished_name = req_dn
prompt = no

[req_dn]
CN = unused
EOF

# eng CMD...: CMD with the engine configuration.
eng() {
    OPENSSL_CONF=$TEST_DIR/engine.cnf "$@"
}

# The keys are in the TPM: 2 pairs, public and private, backend 1.
keys_in_tpm() {
    local n
    "$KSP_BUILD/ksp11" list --json --pin "$PIN" >list.json || return 1
    n=$(grep -c '"backend": 1,' list.json)
    echo "objects with backend 1 (TPM): $n"
    [ "$n" -eq 4 ]
}

# No transient object or session of ours left in the TPM (no resource manager).
tpm_clean() {
    local kind out
    for kind in handles-transient handles-loaded-session handles-saved-session; do
        out=$(TPM2TOOLS_TCTI=$KSP11_TCTI timeout 30 tpm2_getcap "$kind") || return 1
        echo "$kind: $out"
        if printf '%s' "$out" | grep -q 0x; then
            return 1
        fi
    done
}

setup_ok=1
check setup-init-token p11 --slot "$(empty_slot)" --init-token --label t --so-pin "$SO_PIN" &&
    check setup-init-pin p11 --token-label t --init-pin --login --login-type so \
        --so-pin "$SO_PIN" --pin "$PIN" &&
    check setup-keygen-rsa p11 "${U[@]}" --keypairgen --key-type RSA:2048 --id 01 --label rsa &&
    check setup-keygen-ec p11 "${U[@]}" --keypairgen --key-type EC:prime256v1 --id 02 --label ec &&
    check setup-keys-in-tpm keys_in_tpm &&
    check setup-read-rsa-pub p11 --token-label t --read-object --type pubkey --id 01 -o rsa.der &&
    check setup-rsa-pub-pem der_to_pubpem rsa.der rsa.pub.pem &&
    check setup-read-ec-pub p11 --token-label t --read-object --type pubkey --id 02 -o ec.der &&
    check setup-ec-pub-pem der_to_pubpem ec.der ec.pub.pem || setup_ok=0

if [ "$setup_ok" -eq 1 ]; then
    head -c 4096 /dev/urandom >data
    openssl dgst -sha256 -binary -out data.sha256 data

    # pkeyutl: the engine signs a SHA-256 digest; OpenSSL alone verifies.
    if run_bounded engine-default-pkeyutl-ec eng openssl pkeyutl -engine pkcs11 -keyform engine \
        -inkey "$EC_KEY" -sign -in data.sha256 -out sig.ec; then
        check engine-default-pkeyutl-ec-verifies openssl pkeyutl -verify -pubin \
            -inkey ec.pub.pem -in data.sha256 -sigfile sig.ec
    fi
    if run_bounded engine-default-pkeyutl-rsa eng openssl pkeyutl -engine pkcs11 -keyform engine \
        -inkey "$RSA_KEY" -sign -pkeyopt digest:sha256 -in data.sha256 -out sig.rsa; then
        check engine-default-pkeyutl-rsa-verifies openssl pkeyutl -verify -pubin \
            -inkey rsa.pub.pem -pkeyopt digest:sha256 -in data.sha256 -sigfile sig.rsa
    fi

    # req -new -x509: self-signed certificates through the engine.
    for k in ec rsa; do
        uri=$EC_KEY
        [ "$k" = rsa ] && uri=$RSA_KEY
        if run_bounded "engine-default-x509-$k" eng openssl req -new -x509 -engine pkcs11 \
            -keyform engine -key "$uri" -sha256 -days 1 -subj "/CN=ksp11-tpm-$k" \
            -out "$k.crt"; then
            check "engine-default-x509-$k-verifies" openssl verify -CAfile "$k.crt" "$k.crt"
            if cmp -s <(openssl x509 -in "$k.crt" -noout -pubkey) \
                <(openssl pkey -pubin -in "$k.pub.pem"); then
                pass "engine-default-x509-$k-has-token-key"
            else
                fail "engine-default-x509-$k-has-token-key" "certificate key is not the token's"
            fi
        fi
    done
fi

check engine-default-tpm-clean tpm_clean
ksp_finish
