#!/usr/bin/env bash
# The module through tpm2-abrmd, the user-space TPM resource manager: a
# private D-Bus session bus (dbus-daemon with a config file in the temp dir),
# tpm2-abrmd --session in front of a throwaway swtpm, and the module pointed
# at it with KSP11_TCTI=tabrmd:bus_type=session. build/tests/itest_abrmd
# makes RSA and EC keys in the TPM, signs and decrypts (checked by OpenSSL),
# signs from two processes at once and from a forked child. Afterwards
# nothing the module made may be left: tpm2_getcap through abrmd, then, with
# abrmd stopped, directly at the TPM. Every daemon is stopped by its PID.
# (/dev/tpmrm0, the kernel resource manager, cannot be tested without a
# kernel TPM.)
set -u

# shellcheck source=tests/lib/helpers.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/helpers.sh"

ksp_setup
require_module
for c in swtpm tpm2-abrmd dbus-daemon tpm2_getcap; do
    if ! command -v "$c" >/dev/null 2>&1; then
        skip_all "$c not installed (scripts/install-deps.sh installs it)"
    fi
done
bin=$KSP_BUILD/tests/itest_abrmd
if [ ! -x "$bin" ]; then
    fail abrmd "$bin not built"
    ksp_finish
    exit 1
fi

# getcap_empty TCTI WHERE: no transient object, loaded or saved session.
getcap_empty() {
    local kind out ok=1
    for kind in handles-transient handles-loaded-session handles-saved-session; do
        if ! out=$(TPM2TOOLS_TCTI=$1 timeout 30 tpm2_getcap "$kind" 2>&1); then
            fail "abrmd: TPM clean ($2)" "tpm2_getcap $kind: $out"
            return
        fi
        if printf '%s' "$out" | grep -q 0x; then
            fail "abrmd: TPM clean ($2)" "left ($kind): $(echo "$out" | tr '\n' ' ')"
            ok=0
        fi
    done
    [ "$ok" = 1 ] && pass "abrmd: nothing left in the TPM ($2)"
}

start_swtpm2 "$TEST_DIR/tpm" || {
    fail abrmd "swtpm --tpm2 did not start"
    ksp_finish
    exit 1
}
swtpm_tcti=$KSP11_TCTI
unset KSP11_TCTI

# A session bus of our own, listening in the temp dir only.
cat >"$TEST_DIR/bus.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir=$TEST_DIR</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
CONF
if ! dbus-daemon --config-file="$TEST_DIR/bus.conf" --fork --print-address=1 --print-pid=1 \
    >"$TEST_DIR/bus.out" 2>"$TEST_DIR/bus.err"; then
    fail abrmd "dbus-daemon did not start: $(cat "$TEST_DIR/bus.err")"
    ksp_finish
    exit 1
fi
ksp_track_pid "$(sed -n 2p "$TEST_DIR/bus.out")"
DBUS_SESSION_BUS_ADDRESS=$(sed -n 1p "$TEST_DIR/bus.out")
export DBUS_SESSION_BUS_ADDRESS

# tpm2-abrmd refuses to run as root unless told (CI runs tests as root).
root_opt=
[ "$(id -u)" -eq 0 ] && root_opt=--allow-root
tpm2-abrmd --session $root_opt --tcti="$swtpm_tcti" >"$TEST_DIR/abrmd.log" 2>&1 &
abrmd_pid=$!
ksp_track_pid "$abrmd_pid"
abrmd_tcti=tabrmd:bus_type=session
ready=0
for _ in $(seq 1 50); do
    kill -0 "$abrmd_pid" 2>/dev/null || break
    if TPM2TOOLS_TCTI=$abrmd_tcti timeout 10 tpm2_getcap properties-fixed >/dev/null 2>&1; then
        ready=1
        break
    fi
    sleep 0.2
done
if [ "$ready" != 1 ]; then
    fail abrmd "tpm2-abrmd did not come up"
    show_tail "$TEST_DIR/abrmd.log"
    ksp_finish
    exit 1
fi

out=$(ksp_outfile itest_abrmd)
rc=0
KSP11_ITEST_TCTI=$abrmd_tcti "$bin" >"$out" 2>&1 || rc=$?
n=0
while IFS= read -r line; do
    kind=$(printf '%s' "$line" | cut -d: -f3)
    test=$(printf '%s' "$line" | cut -d: -f5)
    msg=$(printf '%s' "$line" | cut -d: -f7-)
    case "$kind" in
    P) pass "abrmd: $test" ;;
    F | E) fail "abrmd: $test" "${msg# }" ;;
    esac
    n=$((n + 1))
done < <(grep -E '^[^:]+:[0-9]+:[PFE]:' "$out" || true)
grep '^# ' "$out" || true
if [ "$n" -eq 0 ] || { [ "$rc" -ne 0 ] && ! grep -qE ':[0-9]+:[FE]:' "$out"; }; then
    fail abrmd "itest_abrmd exited $rc with $n results"
    show_tail "$out"
fi
getcap_empty "$abrmd_tcti" "through abrmd"
ksp_kill_pid "$abrmd_pid"
getcap_empty "$swtpm_tcti" "at the TPM, abrmd stopped"
ksp_finish
