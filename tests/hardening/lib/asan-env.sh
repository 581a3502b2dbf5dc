# shellcheck shell=bash
#
# The environment of an ASan + UBSan test run (make check-asan,
# tests/hardening/asan.sh). Source it, then call asan_env_setup DIR.
#
# Our own programs (unit and API suites, itest_*, build-asan/ksp11) are ASan
# builds: they run with leak detection on and stop at the first report.
# External programs that dlopen the module (pkcs11-tool, p11tool, curl, the
# openssl CLI with the libp11 engine, p11-kit, gnutls/nss/ssh tools) are not:
# for them we put wrappers first in PATH that LD_PRELOAD the sanitizer
# runtimes, so the module's own checks work inside them. Leaks of those
# programs' own libraries are suppressed by lib/lsan-external.supp, which names
# only third-party libraries, never ours. Nothing else (bash, swtpm, grep) is
# preloaded.

ASAN_ENV_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

# Programs that load the module (or OpenSSL engines/providers that do).
# ssh-agent: its ssh-pkcs11-helper (exec'ed by path) loads the module and inherits
# the preload; ssh-add itself never loads it.
ASAN_ENV_TOOLS="pkcs11-tool p11tool openssl p11-kit certtool gnutls-cli modutil certutil
ssh ssh-keygen ssh-agent trust"
# Not curl: Debian 12's curl deadlocks in glibc's setlocale() at start-up
# whenever libasan is preloaded (the lock's reader count underflows; with or
# without the module). curl runs unwrapped instead, and an OPENSSL_CONF that
# names the ASan module is rewritten for it to the regular build's module
# (BUILD without "-asan"): the e2e scripts that use curl run entirely, only
# the curl process itself is not sanitized.
# e2e scripts not run under ASan: they build the module themselves (make
# install with BUILD, dpkg-buildpackage) and so test the packaging of a regular
# build, not this one; run here they rebuild or remove the ASan module.
ASAN_E2E_EXCLUDE="install debian_package"

asan_runtime() {
    # The runtimes the module is linked against (gcc's libasan/libubsan).
    local so=$1
    ldd "$so" 2>/dev/null | awk '/lib(asan|ubsan)\.so/ { print $3 }' | tr '\n' ' '
}

# asan_env_setup DIR MODULE: wrappers in DIR/bin, exports the *SAN_OPTIONS.
asan_env_setup() {
    local dir=$1 module=$2 preload tool real plain
    plain=$(dirname "$module")
    plain=${plain%-asan}/$(basename "$module")
    preload=$(asan_runtime "$module")
    if [ -z "$preload" ]; then
        echo "asan-env: $module is not an ASan build" >&2
        return 1
    fi
    mkdir -p "$dir/bin"
    for tool in $ASAN_ENV_TOOLS; do
        real=$(command -v "$tool" 2>/dev/null) || continue
        case "$real" in "$dir"/*) continue ;; esac
        cat >"$dir/bin/$tool" <<WRAP
#!/bin/sh
# ASan wrapper (tests/hardening/lib/asan-env.sh): the module inside is an ASan build.
LD_PRELOAD="$preload\${LD_PRELOAD:+ \$LD_PRELOAD}" ASAN_OPTIONS="\$ASAN_EXTERNAL_OPTIONS" \\
    LSAN_OPTIONS="\$LSAN_EXTERNAL_OPTIONS" exec "$real" "\$@"
WRAP
        chmod 755 "$dir/bin/$tool"
    done
    real=$(command -v curl 2>/dev/null)
    if [ -n "$real" ]; then
        cat >"$dir/bin/curl" <<WRAP
#!/bin/sh
# curl under an ASan run (tests/hardening/lib/asan-env.sh): not preloaded, on the
# regular build of the module.
conf=\${OPENSSL_CONF:-}
if [ -n "\$conf" ] && [ -f "\$conf" ] && grep -qF "$module" "\$conf"; then
    tmp=\$(mktemp) || exit 125
    sed "s|$module|$plain|g" "\$conf" >"\$tmp"
    rc=0
    OPENSSL_CONF=\$tmp "$real" "\$@" || rc=\$?
    rm -f "\$tmp"
    exit \$rc
fi
exec "$real" "\$@"
WRAP
        chmod 755 "$dir/bin/curl"
    fi
    export PATH="$dir/bin:$PATH"
    local common="abort_on_error=0:halt_on_error=1:detect_odr_violation=0:verify_asan_link_order=0"
    common="$common:check_initialization_order=1:strict_string_checks=1:detect_stack_use_after_return=1"
    # Our binaries: everything on, leaks included; exit code 23 marks a report.
    export ASAN_OPTIONS="$common:detect_leaks=1:exitcode=23"
    # External programs: the same checks; their libraries' leaks suppressed.
    # Full (slow) unwinding: the third-party libraries have no frame pointers,
    # and a suppression can only match frames the stack trace contains.
    # Their reports go to files (ASAN_REPORT_DIR/<program>.<pid>): the tests
    # only keep the tail of a failing program's output.
    export ASAN_REPORT_DIR=$dir/reports
    mkdir -p "$ASAN_REPORT_DIR"
    # halt_on_error=0: an error the runtime finds inside a third-party program
    # (e.g. OpenSC 0.23 pkcs11-tool reads freed OSSL_PARAMs when it exports an
    # EC public key) is reported, not fatal; the module's own code is built
    # with -fno-sanitize-recover and still aborts, and check-asan.sh fails on
    # any report whose stack passes through the module.
    export ASAN_EXTERNAL_OPTIONS="${common/halt_on_error=1/halt_on_error=0}:detect_leaks=1:exitcode=23:fast_unwind_on_malloc=0"
    ASAN_EXTERNAL_OPTIONS="$ASAN_EXTERNAL_OPTIONS:log_path=$ASAN_REPORT_DIR/external:log_exe_name=1"
    # Suppressions only in the external programs' processes, never in ours.
    export LSAN_EXTERNAL_OPTIONS="suppressions=$ASAN_ENV_DIR/lsan-external.supp:print_suppressions=0"
    unset LSAN_OPTIONS
    # ASan runs 2-3x slower: give Check's per-test timeouts room.
    export CK_TIMEOUT_MULTIPLIER=${CK_TIMEOUT_MULTIPLIER:-4}
    export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1:exitcode=23"
}
