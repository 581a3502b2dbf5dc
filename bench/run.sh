#!/bin/bash
# `make bench` (issue 5): the ksp11 benchmark against its ceilings.
#
# Starts its own swtpm (Unix socket, temp dir) and, for the resource-manager
# rows, tpm2-abrmd on a private D-Bus session bus; a counting TCTI
# (bench/tcti_count.c) sits in front of the TPM to count the commands that
# reach it. Every signature is verified with OpenSSL; any failure ends the run
# with a non-zero status. Prints the table and keeps it in
# $BUILD/bench/results.txt. Not a test: numbers depend on the machine.
#
# BENCH_QUICK=1 shortens every part (fewer rounds), for a smoke run;
# BENCH_PARTS="sign cold tool objects abrmd" picks parts (default: all).
set -euo pipefail

BUILD=${1:-build}
case "$BUILD" in /*) ;; *) BUILD=$(pwd)/$BUILD ;; esac
export KSP11_BUILD=$BUILD
# shellcheck source=../tests/lib/helpers.sh
. "$(dirname "$0")/../tests/lib/helpers.sh"

B=$BUILD/bench/bench
M=$BUILD/ksp11-pkcs11.so
COUNT_TCTI=$BUILD/bench/libtss2-tcti-kspcount.so
OUT=$BUILD/bench/results.txt
Q=${BENCH_QUICK:-0}
r() { if [ "$Q" = 1 ]; then echo "$2"; else echo "$1"; fi; }
# BENCH_PARTS="sign cold tool objects abrmd" (default: all) runs only those parts.
part() { [ -z "${BENCH_PARTS:-}" ] || [[ " $BENCH_PARTS " == *" $1 "* ]]; }

for c in swtpm pkcs11-tool openssl; do
    command -v "$c" >/dev/null || { echo "bench: $c is missing (scripts/install-deps.sh)" >&2; exit 1; }
done
[ -x "$B" ] && [ -f "$COUNT_TCTI" ] && [ -f "$M" ] || { echo "bench: build first (make bench)" >&2; exit 1; }

ksp_setup
# Production settings, not the test ones: the default PIN KDF cost, no debug log.
unset KSP11_KDF_ITERATIONS
export KSP11_LOG_LEVEL=error
export KSP_TCTI_COUNT_FILE=$TEST_DIR/tpm-commands
D=$TEST_DIR
export BENCH_ERR_FILE=$D/child.err

start_swtpm2 "$D/tpm" >/dev/null
SOCK=$D/tpm/swtpm.sock
# The provisioned storage key most machines have (TCG provisioning guidance):
# a persistent ECC SRK at 0x81000001, used by the ceiling and by ksp11 alike.
if [ "${BENCH_NO_SRK:-0}" != 1 ] && command -v tpm2_createprimary >/dev/null; then
    TPM2TOOLS_TCTI="swtpm:path=$SOCK" tpm2_createprimary -Q -C o -g sha256 -G ecc256:aes128cfb \
        -a 'restricted|decrypt|fixedtpm|fixedparent|sensitivedataorigin|userwithauth|noda' \
        -c "$D/srk.ctx" &&
        TPM2TOOLS_TCTI="swtpm:path=$SOCK" tpm2_evictcontrol -Q -C o -c "$D/srk.ctx" 0x81000001 &&
        TPM2TOOLS_TCTI="swtpm:path=$SOCK" tpm2_flushcontext -t ||
        echo "bench: no persistent SRK (continuing with transient primaries)" >&2
    SRK_NOTE="persistent SRK 0x81000001"
else
    SRK_NOTE="transient primary"
fi
TPM_TCTI="$COUNT_TCTI:swtpm:path=$SOCK"
NO_TPM="swtpm:path=$D/no-tpm.sock"

TPM_ENV="KSP11_STORE=$D/tpmstore KSP11_TCTI=$TPM_TCTI"
SOFT_ENV="KSP11_STORE=$D/softstore KSP11_TCTI=$NO_TPM"
# PIN-less tokens (daemons, the machine's certificate): no login, no PIN KDF.
TPM0_ENV="KSP11_STORE=$D/tpmstore0 KSP11_TCTI=$TPM_TCTI"
SOFT0_ENV="KSP11_STORE=$D/softstore0 KSP11_TCTI=$NO_TPM"
for s in tpmstore softstore tpmstore0 softstore0; do
    mkdir -p "$D/$s" && chmod 700 "$D/$s"
done

{
    echo "ksp11 benchmark, $(date -u '+%Y-%m-%d %H:%M UTC'), $(uname -srm)"
    echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), $(nproc) cores;" \
        "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "TPM: swtpm $(swtpm --version 2>&1 | head -1 | grep -o '[0-9][0-9.]*' | head -1), $SRK_NOTE;" \
        "OpenSSL $(openssl version | cut -d' ' -f2); tpm2-tss $(pkg-config --modversion tss2-esys)"
} | tee "$OUT"

# Keys (and keygen times).
env $TPM_ENV "$B" setup "$M" "$(r 3 1)" tpm | tee -a "$OUT"
env $SOFT_ENV "$B" setup "$M" "$(r 5 1)" soft | tee -a "$OUT"
env $TPM0_ENV "$B" setup "$M" 0 tpm pinless
env $SOFT0_ENV "$B" setup "$M" 0 soft pinless

if part sign; then
# C_Sign against the ceilings, interleaved rounds.
env $TPM_ENV "$B" sign "$M" tpm "$(r 5 2)" "$(r 10 3)" 1,2,4 all | tee -a "$OUT"
# The same TPM used by ksp11 alone: keys and session stay loaded (tpm/tpm_lock.c).
env $TPM_ENV KSP11_TPM_KEEP=1 "$B" sign "$M" tpm "$(r 5 2)" "$(r 10 3)" 1 all \
    "swtpm, no resource manager, KSP11_TPM_KEEP=1" | tee -a "$OUT"
env $SOFT_ENV "$B" sign "$M" soft "$(r 7 2)" "$(r 200 20)" 1,2,4 all | tee -a "$OUT"
fi

if part cold; then
# Cold start: a fresh process from dlopen to its first verified signature.
"$B" procs "cold start (dlopen -> C_Initialize -> C_Login -> find -> first verified signature)" \
    "$(r 9 2)" \
    "TPM RSA-2048|$TPM_ENV|$B cold $M rsa" \
    "TPM P-256|$TPM_ENV|$B cold $M ec" \
    "software RSA-2048|$SOFT_ENV|$B cold $M rsa" \
    "software P-256|$SOFT_ENV|$B cold $M ec" \
    "TPM P-256, PIN-less token|$TPM0_ENV|$B cold $M ec nologin" \
    "software P-256, PIN-less token|$SOFT0_ENV|$B cold $M ec nologin" | tee -a "$OUT"
fi

if part tool; then
# A whole pkcs11-tool process against openssl dgst with a PEM key.
printf 'the message signed by every process of this benchmark\n' >"$D/msg"
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$D/key.pem" 2>/dev/null
openssl pkey -in "$D/key.pem" -pubout -out "$D/key.pub.pem"
for s in tpm soft tpm0 soft0; do
    case $s in tpm) e=$TPM_ENV ;; soft) e=$SOFT_ENV ;; tpm0) e=$TPM0_ENV ;; *) e=$SOFT0_ENV ;; esac
    login="--login --pin 1234"
    case $s in *0) login= ;; esac
    env $e pkcs11-tool --module "$M" --token-label bench --read-object --type pubkey --label rsa \
        -o "$D/$s.pub.der" >/dev/null 2>&1
    der_to_pubpem "$D/$s.pub.der" "$D/$s.pub.pem"
    # pkcs11-tool 0.23 picks the signing key by --id only.
    env $e pkcs11-tool --module "$M" --token-label bench $login -O --type privkey 2>/dev/null |
        awk '/label:/ { l = $2 } /ID:/ && l == "rsa" { print $2; exit }' >"$D/$s.id"
done
P11SIGN="pkcs11-tool --module $M --token-label bench --sign -m SHA256-RSA-PKCS -i $D/msg"
P11LOGIN="--login --pin 1234"
"$B" procs "whole process: pkcs11-tool --sign vs openssl dgst -sign (RSA-2048, SHA-256)" "$(r 9 2)" \
    "openssl dgst -sign key.pem|-|openssl dgst -sha256 -sign $D/key.pem -out $D/o.sig $D/msg|openssl dgst -sha256 -verify $D/key.pub.pem -signature $D/o.sig $D/msg >/dev/null" \
    "pkcs11-tool, software key|$SOFT_ENV|$P11SIGN $P11LOGIN --id $(cat "$D/soft.id") -o $D/s.sig|openssl dgst -sha256 -verify $D/soft.pub.pem -signature $D/s.sig $D/msg >/dev/null" \
    "pkcs11-tool, TPM key|$TPM_ENV|$P11SIGN $P11LOGIN --id $(cat "$D/tpm.id") -o $D/t.sig|openssl dgst -sha256 -verify $D/tpm.pub.pem -signature $D/t.sig $D/msg >/dev/null" \
    "pkcs11-tool, TPM key, PIN-less|$TPM0_ENV|$P11SIGN --id $(cat "$D/tpm0.id") -o $D/t0.sig|openssl dgst -sha256 -verify $D/tpm0.pub.pem -signature $D/t0.sig $D/msg >/dev/null" \
    "pkcs11-tool, software key, PIN-less|$SOFT0_ENV|$P11SIGN --id $(cat "$D/soft0.id") -o $D/s0.sig|openssl dgst -sha256 -verify $D/soft0.pub.pem -signature $D/s0.sig $D/msg >/dev/null" |
    tee -a "$OUT"
fi

if part objects; then
# Tokens with 0, 1,000 and 10,000 objects (software tokens: no TPM involved;
# C_Login is PBKDF2 with 100,000 iterations on each).
OBJ_ARGS=()
for n in 0 1000 $(r 10000 2000); do
    mkdir -p "$D/obj$n" && chmod 700 "$D/obj$n"
    # One PBKDF2 iteration count for the three tokens (it is calibrated at
    # token creation, which here happens minutes apart): the rows then differ
    # by their objects only.
    env KSP11_STORE="$D/obj$n" KSP11_TCTI="$NO_TPM" KSP11_KDF_ITERATIONS=100000 \
        "$B" populate "$M" "$n"
    printf 'store = %s\ntcti = %s\nlog_level = error\n' "$D/obj$n" "$NO_TPM" >"$D/obj$n.conf"
    OBJ_ARGS+=("$n:$D/obj$n.conf")
done
env -u KSP11_STORE -u KSP11_TCTI -u KSP11_LOG_LEVEL -u KSP11_LOG_FILE \
    "$B" objects "$M" "$(r 5 2)" "${OBJ_ARGS[@]}" | tee -a "$OUT"
fi

# Behind tpm2-abrmd (the resource-manager case, like /dev/tpmrm0): the
# commands the TPM itself receives per C_Sign, counted under abrmd.
if ! part abrmd; then
    :
elif command -v tpm2-abrmd >/dev/null && command -v dbus-daemon >/dev/null; then
    cat >"$D/bus.conf" <<CONF
<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>session</type>
  <listen>unix:dir=$D</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow send_destination="*" eavesdrop="true"/>
    <allow eavesdrop="true"/>
    <allow own="*"/>
  </policy>
</busconfig>
CONF
    dbus-daemon --config-file="$D/bus.conf" --fork --print-address=1 --print-pid=1 >"$D/dbus.out"
    ksp_track_pid "$(sed -n 2p "$D/dbus.out")"
    export DBUS_SESSION_BUS_ADDRESS
    DBUS_SESSION_BUS_ADDRESS=$(sed -n 1p "$D/dbus.out")
    root_opt=
    [ "$(id -u)" -eq 0 ] && root_opt=--allow-root
    tpm2-abrmd --session $root_opt --tcti="$TPM_TCTI" >"$D/abrmd.log" 2>&1 &
    ABRMD_PID=$!
    ksp_track_pid $ABRMD_PID
    ABRMD="tabrmd:bus_type=session"
    ready=0
    for _ in $(seq 1 50); do
        kill -0 "$ABRMD_PID" 2>/dev/null || break
        if TPM2TOOLS_TCTI=$ABRMD timeout 10 tpm2_getcap properties-fixed >/dev/null 2>&1; then
            ready=1
            break
        fi
        sleep 0.2
    done
    if [ "$ready" = 1 ]; then
        env KSP11_STORE="$D/tpmstore" KSP11_TCTI="$ABRMD" "$B" sign "$M" tpm "$(r 5 2)" "$(r 10 3)" \
            1 all "tpm2-abrmd in front (commands counted at the TPM)" | tee -a "$OUT"
    else
        echo "(tpm2-abrmd rows skipped: tpm2-abrmd did not come up: $(tail -1 "$D/abrmd.log"))" |
            tee -a "$OUT"
    fi
else
    echo "(tpm2-abrmd rows skipped: tpm2-abrmd or dbus-daemon not installed)" | tee -a "$OUT"
fi
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT"
echo "bench: all signatures verified; table in $OUT"
