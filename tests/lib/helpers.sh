# shellcheck shell=bash
#
# Shared helpers for the shell tests (tests/integration, tests/e2e) and the demo.
# Source it; it defines functions and variables only and starts nothing by itself.
#
#   ksp_setup            temp dir + cleanup trap + the KSP11_* test environment
#   start_swtpm2 DIR     throwaway TPM 2.0 on a Unix socket, exports KSP11_TCTI
#   start_swtpm12 DIR    the same for a TPM 1.2 (for the refusal path)
#   start_s_server ...   openssl s_server on 127.0.0.1:<free port>
#   pass/fail/skip       the "PASS: x" / "FAIL: x" / "SKIP: x (why)" lines run-all.sh counts
#   check NAME CMD...    run CMD, its output to a file, PASS or FAIL (with the output)
#   p11 ARGS...          pkcs11-tool --module "$KSP11_MODULE" ARGS...
#   ksp_finish           last line of a test script: exit 1 if anything failed
#
# Everything started here is recorded by PID and killed by PID in the trap;
# only loopback addresses and Unix sockets are used.

KSP_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
KSP_BUILD=${KSP11_BUILD:-$KSP_ROOT/build}
case "$KSP_BUILD" in /*) ;; *) KSP_BUILD=$KSP_ROOT/$KSP_BUILD ;; esac
# The module under test. Override with KSP11_MODULE=/path/to/module.so.
KSP11_MODULE=${KSP11_MODULE:-$KSP_BUILD/ksp11-pkcs11.so}
export KSP11_MODULE

KSP_PASSED=0
KSP_FAILED=0
KSP_SKIPPED=0
KSP_PIDS=()
KSP_PIDFILES=()
TEST_DIR=

# Result lines. Names are one word-ish; the reason of a skip goes in parentheses.
pass() {
    KSP_PASSED=$((KSP_PASSED + 1))
    echo "PASS: $1"
}

fail() {
    KSP_FAILED=$((KSP_FAILED + 1))
    echo "FAIL: $1${2:+ ($2)}"
}

skip() {
    KSP_SKIPPED=$((KSP_SKIPPED + 1))
    echo "SKIP: $1 (${2:-no reason given})"
}

# Skip the whole script (a tool is missing): one SKIP line, exit 0.
skip_all() {
    skip "$(basename "$0" .sh)" "$1"
    exit 0
}

# require_cmd CMD...: skip the script when a command is missing.
require_cmd() {
    local c
    for c in "$@"; do
        command -v "$c" >/dev/null 2>&1 || skip_all "$c not installed; scripts/install-deps.sh provides it"
    done
}

# The module itself missing is a failure, not a skip: it is what we test.
require_module() {
    if [ ! -f "$KSP11_MODULE" ]; then
        fail "$(basename "$0" .sh)-module" "module $KSP11_MODULE not built"
        exit 1
    fi
}

# Print the indented tail of a file (used on failure).
show_tail() {
    [ -f "$1" ] || return 0
    tail -n "${2:-25}" "$1" | sed 's/^/    | /'
}

# check NAME CMD...: run CMD with stdout+stderr in $TEST_DIR/out/NAME.out.
# PASS when it exits 0, else FAIL with the tail of its output.
# Returns CMD's status so callers can stop a dependent sequence.
check() {
    local name=$1 rc=0 out
    shift
    out=$(ksp_outfile "$name")
    "$@" >"$out" 2>&1 || rc=$?
    if [ "$rc" -eq 0 ]; then
        pass "$name"
    else
        fail "$name" "exit $rc: $*"
        show_tail "$out"
    fi
    return "$rc"
}

# check_fails NAME CMD...: PASS when CMD refuses cleanly: exit status 1..125.
# A crash (killed by a signal) or a timeout is a FAIL, not a refusal.
check_fails() {
    local name=$1 rc=0 out
    shift
    out=$(ksp_outfile "$name")
    "$@" >"$out" 2>&1 || rc=$?
    if [ "$rc" -ge 1 ] && [ "$rc" -le 125 ]; then
        pass "$name"
        return 0
    fi
    if [ "$rc" -eq 0 ]; then
        fail "$name" "succeeded but should have failed: $*"
    else
        fail "$name" "crashed or timed out (exit $rc): $*"
    fi
    show_tail "$out"
    return 1
}

# check_grep NAME PATTERN FILE: PASS when the extended regex PATTERN is in FILE.
check_grep() {
    if grep -Eq -- "$2" "$3"; then
        pass "$1"
        return 0
    fi
    fail "$1" "'$2' not found in $(basename "$3")"
    show_tail "$3"
    return 1
}

ksp_outfile() {
    mkdir -p "$TEST_DIR/out"
    echo "$TEST_DIR/out/$(printf '%s' "$1" | tr -c 'A-Za-z0-9_.-' '_').out"
}

# Summary and exit status of a test script.
ksp_finish() {
    echo "# $(basename "$0"): $KSP_PASSED passed, $KSP_FAILED failed, $KSP_SKIPPED skipped"
    [ "$KSP_FAILED" -eq 0 ]
}

# Remember a PID to kill in the cleanup trap.
ksp_track_pid() {
    KSP_PIDS+=("$1")
}

# Kill one PID we started: TERM, wait up to ~2 s, then KILL.
ksp_kill_pid() {
    local pid=$1 i
    [ -n "$pid" ] || return 0
    kill -0 "$pid" 2>/dev/null || return 0
    kill "$pid" 2>/dev/null || true
    for i in 1 2 3 4 5 6 7 8 9 10; do
        kill -0 "$pid" 2>/dev/null || return 0
        sleep 0.2
        : "$i"
    done
    kill -9 "$pid" 2>/dev/null || true
}

# ksp_cleanup [RC]: the EXIT trap; exits with RC (default: the status at entry).
ksp_cleanup() {
    local rc=${1:-$?} pid f
    set +e
    for pid in "${KSP_PIDS[@]}"; do
        ksp_kill_pid "$pid"
    done
    for f in "${KSP_PIDFILES[@]}"; do
        [ -f "$f" ] && ksp_kill_pid "$(cat "$f")"
    done
    # Keep the module log next to the test log for post-mortems.
    if [ -n "${KSP11_LOG_FILE:-}" ] && [ -s "$KSP11_LOG_FILE" ] && [ -n "${KSP11_TEST_LOG_DIR:-}" ]; then
        cp "$KSP11_LOG_FILE" \
            "$KSP11_TEST_LOG_DIR/$(basename "$(dirname "$0")")-$(basename "$0" .sh).module.log" 2>/dev/null
    fi
    if [ -n "$TEST_DIR" ] && [ -d "$TEST_DIR" ]; then
        if [ -n "${KSP11_KEEP_TEST_DIR:-}" ]; then
            echo "# kept $TEST_DIR" >&2
        else
            rm -rf "$TEST_DIR"
        fi
    fi
    exit "$rc"
}

# ksp_setup: a fresh temp dir with cleanup, and the test environment of
# behaviour.md (own store, fast KDF, debug log, machine config ignored, no TPM).
ksp_setup() {
    TEST_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ksp11-test.XXXXXX")
    trap ksp_cleanup EXIT
    trap 'exit 130' INT
    trap 'exit 143' TERM
    export KSP11_STORE=$TEST_DIR/store
    export KSP11_KDF_ITERATIONS=1000
    export KSP11_LOG_FILE=$TEST_DIR/ksp11.log
    export KSP11_LOG_LEVEL=debug
    export KSP11_CONF=/nonexistent
    unset KSP11_TCTI
    mkdir -p "$KSP11_STORE"
    chmod 700 "$KSP11_STORE"
    ksp_dev_module_env
}

# Development aid only: when KSP11_MODULE points at SoftHSMv2 (used to debug
# these scripts before ksp11 worked), give it a private token directory too.
ksp_dev_module_env() {
    case "$(basename "$KSP11_MODULE")" in
    *softhsm*)
        mkdir -p "$TEST_DIR/softhsm-tokens"
        printf 'directories.tokendir = %s\nobjectstore.backend = file\n' \
            "$TEST_DIR/softhsm-tokens" >"$TEST_DIR/softhsm2.conf"
        export SOFTHSM2_CONF=$TEST_DIR/softhsm2.conf
        ;;
    esac
}

# Wait up to $2 tenths of a second for a path to exist.
ksp_wait_path() {
    local i
    for ((i = 0; i < $2; i++)); do
        [ -e "$1" ] && return 0
        sleep 0.1
    done
    return 1
}

# start_swtpm DIR [--tpm2]: shared body of start_swtpm2 / start_swtpm12.
ksp_start_swtpm() {
    local dir=$1
    shift
    mkdir -p "$dir"
    swtpm socket "$@" --tpmstate dir="$dir" \
        --server type=unixio,path="$dir/swtpm.sock" \
        --ctrl type=unixio,path="$dir/swtpm.sock.ctrl" \
        --flags not-need-init,startup-clear \
        --pid file="$dir/swtpm.pid" --log file="$dir/swtpm.log" --daemon || return 1
    KSP_PIDFILES+=("$dir/swtpm.pid")
    ksp_wait_path "$dir/swtpm.sock" 50 || return 1
    ksp_wait_path "$dir/swtpm.pid" 50 || return 1
    export KSP11_TCTI="swtpm:path=$dir/swtpm.sock"
}

start_swtpm2() {
    ksp_start_swtpm "$1" --tpm2
}

# swtpm 0.7 accepts not-need-init,startup-clear for TPM 1.2 as well.
start_swtpm12() {
    ksp_start_swtpm "$1"
}

# Is something listening on 127.0.0.1:$1? (bash's /dev/tcp, no extra tools)
ksp_port_busy() {
    (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# A port on 127.0.0.1 nothing listens on right now. Races are handled by the
# caller retrying when its bind fails.
pick_port() {
    local port i
    for i in $(seq 1 50); do
        port=$((20000 + (RANDOM * 32768 + RANDOM) % 40000))
        if ! ksp_port_busy "$port"; then
            echo "$port"
            return 0
        fi
        : "$i"
    done
    return 1
}

# start_s_server LOGFILE S_SERVER-ARGS...: openssl s_server on 127.0.0.1 with a
# free port; sets S_SERVER_PORT and S_SERVER_PID; retries if the port was taken.
start_s_server() {
    local log=$1 try i
    shift
    S_SERVER_PORT=
    S_SERVER_PID=
    for try in 1 2 3 4 5; do
        S_SERVER_PORT=$(pick_port) || return 1
        openssl s_server -accept "127.0.0.1:$S_SERVER_PORT" "$@" </dev/null >"$log" 2>&1 &
        S_SERVER_PID=$!
        ksp_track_pid "$S_SERVER_PID"
        for i in $(seq 1 100); do
            if ! kill -0 "$S_SERVER_PID" 2>/dev/null; then
                break
            fi
            if grep -q '^ACCEPT' "$log" 2>/dev/null && ksp_port_busy "$S_SERVER_PORT"; then
                return 0
            fi
            sleep 0.1
            : "$i"
        done
        ksp_kill_pid "$S_SERVER_PID"
        # Only a lost race for the port is worth another try.
        grep -qi 'in use\|bind' "$log" 2>/dev/null || return 1
        : "$try"
    done
    return 1
}

# pkcs11-tool bound to the module under test.
p11() {
    pkcs11-tool --module "$KSP11_MODULE" "$@"
}

# The slot id (as pkcs11-tool prints it, e.g. 0x2) of the first slot holding an
# uninitialised token: ksp11 always offers one next to the initialised tokens.
# `pkcs11-tool --init-token` without --slot would pick the first token instead.
empty_slot() {
    p11 -L 2>/dev/null | awk '
        /^Slot [0-9]+ \(0x[0-9a-fA-F]+\)/ { id = $3; gsub(/[():]/, "", id) }
        /token state: +uninitialized/ { print id; found = 1; exit }
        END { exit !found }'
}

# token_flags LABEL: pkcs11-tool's "token flags" line for the token LABEL.
token_flags() {
    p11 -L 2>/dev/null | awk -v want="$1" '
        /^Slot / { label = "" }
        /token label +:/ { sub(/^[^:]*: /, ""); label = $0 }
        /token flags +:/ && label == want { print; found = 1 }
        END { exit !found }'
}

# make_pinless_token LABEL SO-PIN: a new token whose user PIN is empty
# (behaviour.md: SO C_InitPIN with ulPinLen 0 -> no login required).
make_pinless_token() {
    local slot
    slot=$(empty_slot) || return 1
    p11 --slot "$slot" --init-token --label "$1" --so-pin "$2" &&
        p11 --token-label "$1" --init-pin --login --login-type so --so-pin "$2" --pin ''
}

# The libp11 OpenSSL engine shipped by libengine-pkcs11-openssl.
ksp_engine_path() {
    local dir
    dir=$(openssl version -e 2>/dev/null | sed -n 's/^ENGINESDIR: "\(.*\)"$/\1/p')
    for f in "$dir/pkcs11.so" /usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so \
        /usr/lib/*/engines-3/pkcs11.so; do
        [ -f "$f" ] && {
            echo "$f"
            return 0
        }
    done
    return 1
}

# write_engine_conf FILE: an openssl.cnf that loads engine "pkcs11" with our
# module (use as OPENSSL_CONF). Also has what `openssl req` needs.
write_engine_conf() {
    local engine
    engine=$(ksp_engine_path) || return 1
    cat >"$1" <<EOF
openssl_conf = openssl_init

[openssl_init]
engines = engine_section

[engine_section]
pkcs11 = pkcs11_section

[pkcs11_section]
engine_id = pkcs11
dynamic_path = $engine
MODULE_PATH = $KSP11_MODULE
init = 0

[req]
distinguished_name = req_dn
prompt = no

[req_dn]
CN = unused
EOF
}

# der_to_pubpem IN.der OUT.pem: a public key read with pkcs11-tool as PEM.
der_to_pubpem() {
    openssl pkey -pubin -inform DER -in "$1" -out "$2"
}

# ---------------------------------------------------------------------------
# The consumer matrix (tests/e2e: curl, s_client, GnuTLS, NSS, OpenSSH, p11-kit)
#
#   ksp_matrix_tokens    token "soft" (keys in software) and token "tpm" (keys in
#                        a swtpm TPM 2.0), each with user PIN $KSP_PIN and key
#                        pairs rsa (RSA-2048, id 01) and ec (P-256, id 02)
#   ksp_matrix_pki       throwaway CA, server cert for 127.0.0.1, and a client
#                        certificate per matrix key (CSR signed on the token
#                        through the libp11 engine), stored next to the key
#   ksp_key_uri T K [type] [pin]   pkcs11: URI of a matrix object
# KSP_MATRIX_TOKENS lists the tokens that exist ("soft tpm", or "soft" when
# swtpm is missing: the TPM half is then one SKIP line, never a pass).

KSP_PIN=1234
KSP_SO_PIN=12345678
KSP_MATRIX_TOKENS=
KSP_MATRIX_KEYS="rsa ec"

# ksp_key_id KEY: the CKA_ID (hex) of matrix key KEY.
ksp_key_id() {
    case "$1" in rsa) echo 01 ;; ec) echo 02 ;; *) return 1 ;; esac
}

# ksp_key_uri TOKEN KEY [TYPE [PIN]]: TYPE private (default), public or cert;
# a private key URI carries pin-value=PIN (default $KSP_PIN; '' for none).
ksp_key_uri() {
    local type=${3:-private} pin=${4-$KSP_PIN} uri
    uri="pkcs11:token=$1;object=$2;type=$type"
    if [ "$type" = private ] && [ -n "$pin" ]; then
        uri="$uri;pin-value=$pin"
    fi
    echo "$uri"
}

# ksp_new_token LABEL: initialise the empty slot's token as LABEL with
# $KSP_SO_PIN and user PIN $KSP_PIN.
ksp_new_token() {
    local slot
    slot=$(empty_slot) || return 1
    p11 --slot "$slot" --init-token --label "$1" --so-pin "$KSP_SO_PIN" &&
        p11 --token-label "$1" --init-pin --login --login-type so --so-pin "$KSP_SO_PIN" \
            --pin "$KSP_PIN"
}

# ksp_matrix_keygen TOKEN: the rsa and ec key pairs on TOKEN, and their public
# keys as $TEST_DIR/pub-TOKEN-KEY.pem (read back from the token).
ksp_matrix_keygen() {
    local t=$1
    p11 --token-label "$t" --login --pin "$KSP_PIN" --keypairgen --key-type RSA:2048 \
        --id 01 --label rsa &&
        p11 --token-label "$t" --login --pin "$KSP_PIN" --keypairgen --key-type EC:prime256v1 \
            --id 02 --label ec || return 1
    local k
    for k in $KSP_MATRIX_KEYS; do
        p11 --token-label "$t" --read-object --type pubkey --id "$(ksp_key_id "$k")" \
            -o "$TEST_DIR/pub-$t-$k.der" &&
            der_to_pubpem "$TEST_DIR/pub-$t-$k.der" "$TEST_DIR/pub-$t-$k.pem" || return 1
    done
}

# ksp_token_backend_is TOKEN NAME: every key object of TOKEN has backend NAME
# ("TPM" or "software"), according to `ksp11 list --json`.
ksp_token_backend_is() {
    local json n_all n_want
    json=$("$KSP_BUILD/ksp11" list --token "$1" --json --pin "$KSP_PIN") || return 1
    n_all=$(printf '%s\n' "$json" | grep -c '"backend_name":' || true)
    n_want=$(printf '%s\n' "$json" | grep -c "\"backend_name\": \"$2\"" || true)
    echo "token $1: $n_want of $n_all key objects have backend $2"
    [ "$n_all" -eq 4 ] && [ "$n_want" -eq 4 ]
}

# ksp_matrix_tokens: the two tokens of the matrix (see above). The software
# token is made before the TPM exists (keys fall back: tpm-absent); then swtpm
# starts (KSP11_TCTI exported) and the TPM token's keys go into it. Both stay
# usable in the same store. Prints check lines; returns non-zero when the
# software half failed (the TPM half failing only drops "tpm" from the list).
ksp_matrix_tokens() {
    KSP_MATRIX_TOKENS=
    check matrix-soft-token ksp_new_token soft &&
        check matrix-soft-keygen ksp_matrix_keygen soft &&
        check matrix-soft-backend ksp_token_backend_is soft software || return 1
    KSP_MATRIX_TOKENS=soft
    if ! command -v swtpm >/dev/null 2>&1; then
        skip matrix-tpm "swtpm not installed: the TPM half of the matrix is not run"
        return 0
    fi
    if ! start_swtpm2 "$TEST_DIR/swtpm"; then
        fail matrix-tpm-swtpm "swtpm --tpm2 did not start"
        show_tail "$TEST_DIR/swtpm/swtpm.log"
        return 0
    fi
    check matrix-tpm-token ksp_new_token tpm &&
        check matrix-tpm-keygen ksp_matrix_keygen tpm &&
        check matrix-tpm-backend ksp_token_backend_is tpm TPM &&
        KSP_MATRIX_TOKENS="soft tpm"
    return 0
}

# ksp_matrix_pki: in $TEST_DIR: ca.pem/ca.key (P-256 CA), server.pem/server.key
# (P-256, SAN IP:127.0.0.1, serverAuth) and, for every matrix key,
# client-TOKEN-KEY.pem (CN=ksp11-TOKEN-KEY, clientAuth) whose CSR was signed by
# the token key through the libp11 engine; the certificate is written to the
# token with the key's id and label. Needs $TEST_DIR/engine.cnf (made here).
ksp_matrix_pki() {
    local d=$TEST_DIR t k
    write_engine_conf "$d/engine.cnf" || return 1
    printf 'subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n' >"$d/server.ext"
    printf 'extendedKeyUsage=clientAuth\nkeyUsage=critical,digitalSignature\n' >"$d/client.ext"
    check matrix-pki-ca openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$d/ca.key" -subj /CN=ksp11-e2e-ca -days 1 -out "$d/ca.pem" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign &&
        check matrix-pki-server-csr openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
            -nodes -keyout "$d/server.key" -subj /CN=127.0.0.1 -out "$d/server.csr" &&
        check matrix-pki-server-cert openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" \
            -CAkey "$d/ca.key" -CAcreateserial -days 1 -extfile "$d/server.ext" \
            -out "$d/server.pem" || return 1
    for t in $KSP_MATRIX_TOKENS; do
        for k in $KSP_MATRIX_KEYS; do
            check "matrix-pki-csr-$t-$k" env OPENSSL_CONF="$d/engine.cnf" openssl req -new \
                -engine pkcs11 -keyform engine -key "$(ksp_key_uri "$t" "$k")" \
                -subj "/CN=ksp11-$t-$k" -out "$d/client-$t-$k.csr" &&
                check "matrix-pki-cert-$t-$k" openssl x509 -req -in "$d/client-$t-$k.csr" \
                    -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial -days 1 \
                    -extfile "$d/client.ext" -out "$d/client-$t-$k.pem" &&
                openssl x509 -in "$d/client-$t-$k.pem" -outform DER -out "$d/client-$t-$k.der" &&
                check "matrix-pki-cert-$t-$k-on-token" p11 --token-label "$t" --login \
                    --pin "$KSP_PIN" --write-object "$d/client-$t-$k.der" --type cert \
                    --id "$(ksp_key_id "$k")" --label "$k" || return 1
        done
    done
}

# ksp_same_pubkey A.pem B.pem: the two files hold the same public key.
ksp_same_pubkey() {
    local a b
    a=$(openssl pkey -pubin -in "$1" -outform DER 2>/dev/null | od -An -tx1) || return 1
    b=$(openssl pkey -pubin -in "$2" -outform DER 2>/dev/null | od -An -tx1) || return 1
    [ -n "$a" ] && [ "$a" = "$b" ]
}

# ksp_wait_port PORT [TENTHS]: wait until something listens on 127.0.0.1:PORT.
ksp_wait_port() {
    local i
    for ((i = 0; i < ${2:-100}; i++)); do
        ksp_port_busy "$1" && return 0
        sleep 0.1
    done
    return 1
}
