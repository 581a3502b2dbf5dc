#!/usr/bin/env bash
# Permission denied on the TPM device is a misconfiguration, reported as
# such (issue 3): a device node the user may not open (a stand-in file of
# mode 0600 owned by root; the test runs as nobody when started as root,
# since root ignores mode bits) makes `ksp11 status` say so with the remedy,
# the module log a warning naming the device, a key that requires hardware
# fail with CKR_DEVICE_ERROR, and other keys go to software with reason
# tpm-no-permission.
set -u

# shellcheck source=tests/lib/helpers.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/helpers.sh"

ksp_setup
require_module
tool=$KSP_BUILD/ksp11
[ -x "$tool" ] || {
    fail permission "$tool not built"
    ksp_finish
    exit 1
}
dev=$TEST_DIR/dev/tpmrm0
mkdir -p "$TEST_DIR/dev" "$TEST_DIR/p11"
: >"$dev"
as=()
if [ "$(id -u)" -eq 0 ]; then
    command -v setpriv >/dev/null || skip_all "setpriv (util-linux) not installed"
    chmod 600 "$dev"
    chmod 755 "$TEST_DIR" "$TEST_DIR/dev"
    chown 65534:65534 "$TEST_DIR/p11"
    as=(setpriv --reuid=65534 --regid=65534 --clear-groups)
else
    chmod 000 "$dev"
fi
chmod 700 "$TEST_DIR/p11"
mkdir -p "$TEST_DIR/p11/store"
[ "$(id -u)" -eq 0 ] && chown 65534:65534 "$TEST_DIR/p11/store"
log=$TEST_DIR/p11/ksp11.log
run() {
    "${as[@]}" env KSP11_TCTI="device:$dev" KSP11_STORE="$TEST_DIR/p11/store" \
        KSP11_LOG_FILE="$log" KSP11_LOG_LEVEL=info KSP11_CONF=/nonexistent \
        KSP11_KDF_ITERATIONS=1000 "$tool" --module "$KSP11_MODULE" "$@"
}

out=$(ksp_outfile status)
run status >"$out" 2>&1
check_grep "permission: status names the cause" "tpm-no-permission" "$out"
check_grep "permission: status gives the remedy" "join group tss|group that owns" "$out"
check "permission: init token" run init --label perm --so-pin 12345678 --pin 1234
out=$(ksp_outfile keygen-hw)
if run keygen --token perm --label hw --ec P-256 --require-hardware --pin 1234 >"$out" 2>&1; then
    fail "permission: hardware-only key refused" "keygen --require-hardware succeeded"
else
    check_grep "permission: hardware-only key refused (CKR_DEVICE_ERROR)" CKR_DEVICE_ERROR "$out"
fi
out=$(ksp_outfile keygen-soft)
run keygen --token perm --label soft --ec P-256 --pin 1234 >"$out" 2>&1
check_grep "permission: other keys fall back with the reason" "fallback: +tpm-no-permission" "$out"
check_grep "permission: module log warns, naming the device" \
    "warn policy: .*no access to $dev \(join group tss\)" "$log"
ksp_finish
