#!/usr/bin/env bash
# `make demo`:  scripts/demo.sh BUILD
#
# Mutual TLS with curl where the client key lives in a ksp11 token: a fresh
# token and RSA-2048 key, a self-signed client certificate (EKU clientAuth)
# made through OpenSSL's pkcs11 engine and stored on the token, an
# `openssl s_server` on 127.0.0.1 that requires that client certificate, and
# curl using nothing but pkcs11: URIs. Everything lives in a temporary
# directory; every process started is stopped by PID. Exits non-zero on any
# failure.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${1:-build}
case "$BUILD" in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
export KSP11_BUILD=$BUILD
# shellcheck source=tests/lib/helpers.sh
source "$ROOT/tests/lib/helpers.sh"

TOKEN=demo
KEY=client
SO_PIN=12345678
PIN=1234
KEY_URI="pkcs11:token=$TOKEN;object=$KEY;type=private;pin-value=$PIN"
CERT_URI="pkcs11:token=$TOKEN;object=$KEY;type=cert"

say() {
    printf '%s\n' "$*"
}

die() {
    say "demo FAILED: $*" >&2
    exit 1
}

# step NAME CMD...: run CMD quietly; on failure show its output and stop.
step() {
    local name=$1 out rc=0
    shift
    out=$TEST_DIR/$name.out
    "$@" >"$out" 2>&1 || rc=$?
    if [ "$rc" -ne 0 ]; then
        say "  '$*' failed (exit $rc):" >&2
        tail -n 20 "$out" | sed 's/^/    | /' >&2
        die "$name"
    fi
}

# key_backend KEY-LABEL: where the module says the key lives, read from the
# vendor attributes CKA_KSP11_BACKEND / _IMPL_TYPE / _FALLBACK_REASON
# (include/ksp11/ksp11.h) of its public key by a tiny PKCS#11 client compiled
# here (pkcs11-tool cannot show vendor attributes).
key_backend() {
    local src=$TEST_DIR/backend.c bin=$TEST_DIR/backend
    cat >"$src" <<'EOF_C'
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include <p11-kit/pkcs11.h>

/* include/ksp11/ksp11.h (DESIGN.md §4: values fixed forever) */
#define CKA_KSP11_BACKEND         0xCB530001UL
#define CKA_KSP11_IMPL_TYPE       0xCB530002UL
#define CKA_KSP11_FALLBACK_REASON 0xCB530003UL
#define KSP11_BACKEND_TPM         1UL
#define KSP11_BACKEND_SOFT        2UL
#define KSP11_IMPL_HARDWARE       0x01UL
#define KSP11_IMPL_VIRTUAL        0x20UL

int main(int argc, char **argv)
{
    CK_C_GetFunctionList get_list;
    CK_FUNCTION_LIST_PTR f;
    CK_SLOT_ID slots[64];
    CK_ULONG nslots = 64, i, found = 0;
    CK_SESSION_HANDLE s;
    CK_OBJECT_HANDLE obj;
    CK_OBJECT_CLASS cls = CKO_PUBLIC_KEY;
    CK_ULONG backend = 0, impl = 0;
    char reason[256] = "", label[32];
    void *h;

    if (argc != 4 || strlen(argv[2]) > sizeof(label))
        return 2;
    memset(label, ' ', sizeof(label));
    memcpy(label, argv[2], strlen(argv[2]));
    if (!(h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL)) ||
        !(get_list = (CK_C_GetFunctionList)dlsym(h, "C_GetFunctionList")) ||
        get_list(&f) != CKR_OK || f->C_Initialize(NULL) != CKR_OK ||
        f->C_GetSlotList(CK_TRUE, slots, &nslots) != CKR_OK) {
        printf("unknown (module did not load)\n");
        return 1;
    }
    for (i = 0; i < nslots && !found; i++) {
        CK_TOKEN_INFO ti;
        CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)},
                            {CKA_LABEL, argv[3], strlen(argv[3])}};
        if (f->C_GetTokenInfo(slots[i], &ti) != CKR_OK ||
            memcmp(ti.label, label, sizeof(label)) != 0 ||
            f->C_OpenSession(slots[i], CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK)
            continue;
        if (f->C_FindObjectsInit(s, t, 2) == CKR_OK) {
            f->C_FindObjects(s, &obj, 1, &found);
            f->C_FindObjectsFinal(s);
        }
    }
    if (!found) {
        printf("unknown (key not found)\n");
        return 1;
    }
    CK_ATTRIBUTE a[] = {{CKA_KSP11_BACKEND, &backend, sizeof(backend)},
                        {CKA_KSP11_IMPL_TYPE, &impl, sizeof(impl)},
                        {CKA_KSP11_FALLBACK_REASON, reason, sizeof(reason) - 1}};
    f->C_GetAttributeValue(s, obj, a, 3);
    if (a[0].ulValueLen != sizeof(backend)) {
        printf("not reported by this module (no CKA_KSP11_BACKEND)\n");
    } else if (backend == KSP11_BACKEND_TPM) {
        printf("TPM (CKA_KSP11_BACKEND=1, impl 0x%lx%s)\n", impl,
               (impl & KSP11_IMPL_VIRTUAL) ? ": a virtual/software TPM, not hardware"
               : (impl & KSP11_IMPL_HARDWARE) ? ": hardware" : "");
    } else if (backend == KSP11_BACKEND_SOFT) {
        if (a[2].ulValueLen == CK_UNAVAILABLE_INFORMATION)
            a[2].ulValueLen = 0;
        reason[a[2].ulValueLen] = 0;
        printf("software (CKA_KSP11_BACKEND=2, impl 0x%lx, reason: %s): not hardware-bound\n",
               impl, reason[0] ? reason : "none given");
    } else {
        printf("unknown (CKA_KSP11_BACKEND=%lu)\n", backend);
    }
    f->C_Finalize(NULL);
    return 0;
}
EOF_C
    # shellcheck disable=SC2046 # pkg-config output is a list of flags
    if ! cc -std=c11 -D_GNU_SOURCE $(pkg-config --cflags p11-kit-1 2>/dev/null) \
        -o "$bin" "$src" -ldl >"$TEST_DIR/backend-cc.out" 2>&1; then
        echo "unknown (could not build the attribute reader)"
        return 0
    fi
    "$bin" "$KSP11_MODULE" "$TOKEN" "$1" || true
}

keep_log_on_failure() {
    local rc=$?
    if [ "$rc" -ne 0 ] && [ -s "${KSP11_LOG_FILE:-}" ]; then
        cp "$KSP11_LOG_FILE" "$BUILD/demo-ksp11.log" 2>/dev/null &&
            say "  module log kept in $BUILD/demo-ksp11.log" >&2
    fi
    ksp_cleanup "$rc"
}

for tool in pkcs11-tool openssl curl; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not installed (run: make deps)"
done
[ -f "$KSP11_MODULE" ] || die "module $KSP11_MODULE not built (run: make)"
ENGINE=$(ksp_engine_path) || die "OpenSSL pkcs11 engine not installed (run: make deps)"

TEST_DIR=$(mktemp -d "${TMPDIR:-/tmp}/ksp11-demo.XXXXXX")
trap keep_log_on_failure EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
cd "$TEST_DIR"
# A private store and log; the machine's /etc/ksp11/ksp11.conf stays out of it.
export KSP11_STORE=$TEST_DIR/store
export KSP11_CONF=/nonexistent
export KSP11_LOG_FILE=$TEST_DIR/ksp11.log
export KSP11_LOG_LEVEL=info
unset KSP11_TCTI OPENSSL_CONF
mkdir -m 700 "$KSP11_STORE"
ksp_dev_module_env

say "ksp11 demo: curl does mutual TLS with a client key that stays inside a ksp11 token"
say "  module: $KSP11_MODULE"
say "  work dir: $TEST_DIR (removed at the end)"

# 1. A TPM to talk to.
if [ -c /dev/tpmrm0 ] && [ -r /dev/tpmrm0 ] && [ -w /dev/tpmrm0 ]; then
    say "[1/6] TPM: using this machine's TPM (/dev/tpmrm0)"
else
    why="no /dev/tpmrm0"
    [ -e /dev/tpmrm0 ] && why="/dev/tpmrm0 not accessible to $(id -un) (group tss)"
    if command -v swtpm >/dev/null 2>&1; then
        step swtpm start_swtpm2 "$TEST_DIR/swtpm"
        say "[1/6] TPM: $why -> started a throwaway software TPM 2.0 (swtpm, pid $(cat "$TEST_DIR/swtpm/swtpm.pid"))"
        say "      KSP11_TCTI=$KSP11_TCTI"
    else
        say "[1/6] TPM: $why and swtpm is not installed -> keys will be software keys"
    fi
fi

# 2. Token and PINs.
step init-token p11 --init-token --label "$TOKEN" --so-pin "$SO_PIN"
step init-pin p11 --token-label "$TOKEN" --init-pin --login --login-type so --so-pin "$SO_PIN" \
    --pin "$PIN"
say "[2/6] token '$TOKEN' created in $KSP11_STORE (SO PIN $SO_PIN, user PIN $PIN)"

# 3. The key, and where it really lives.
step keygen p11 --token-label "$TOKEN" --login --pin "$PIN" --keypairgen --key-type RSA:2048 \
    --id 01 --label "$KEY" --usage-sign
say "[3/6] RSA-2048 key '$KEY' generated on the token (private part never leaves the module)"
say "      backend: $(key_backend "$KEY")"

# 4. Self-signed client certificate, signed by the token key through the engine.
write_engine_conf "$TEST_DIR/engine.cnf"
step client-cert env OPENSSL_CONF="$TEST_DIR/engine.cnf" openssl req -x509 -new -engine pkcs11 \
    -keyform engine -key "$KEY_URI" -subj /CN=ksp11-demo-client -days 1 \
    -addext extendedKeyUsage=clientAuth -addext keyUsage=critical,digitalSignature \
    -out client.pem
step client-cert-der openssl x509 -in client.pem -outform DER -out client.der
step client-cert-store p11 --token-label "$TOKEN" --login --pin "$PIN" --write-object client.der \
    --type cert --id 01 --label "$KEY"
say "[4/6] self-signed client certificate CN=ksp11-demo-client (EKU clientAuth) signed by the"
say "      token key via OpenSSL's pkcs11 engine ($ENGINE), stored on the token"

# 5. A TLS server that insists on that client certificate.
step server-cert openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout server.key -subj /CN=127.0.0.1 -days 1 -addext subjectAltName=IP:127.0.0.1 \
    -out server.pem
if ! start_s_server "$TEST_DIR/s_server.log" -cert server.pem -key server.key -Verify 1 \
    -verify_return_error -CAfile client.pem -www; then
    tail -n 20 "$TEST_DIR/s_server.log" | sed 's/^/    | /' >&2
    die "openssl s_server did not start"
fi
say "[5/6] openssl s_server on 127.0.0.1:$S_SERVER_PORT (pid $S_SERVER_PID) requires a client"
say "      certificate and trusts only client.pem"

# 6. curl with pkcs11: URIs only.
say "[6/6] curl --cert '$CERT_URI' \\"
say "           --key '$KEY_URI' \\"
say "           --cacert server.pem https://127.0.0.1:$S_SERVER_PORT/"
step curl env OPENSSL_CONF="$TEST_DIR/engine.cnf" curl -sS --max-time 30 --cacert server.pem \
    --cert "$CERT_URI" --key "$KEY_URI" -o page.html "https://127.0.0.1:$S_SERVER_PORT/"
grep -q 'Verify return code: 0 (ok)' page.html ||
    die "the server did not report a verified client certificate (see page.html)"
grep -q 'CN *= *ksp11-demo-client' page.html ||
    die "the server did not see the token's client certificate"
say "      server replied:"
grep -E '^ *Protocol *:|Verify return code|Subject: *CN|Peer signature type' page.html |
    sed 's/^ */        /'
say "demo OK: the TLS client key was used through ksp11 and never left the token"
