#!/usr/bin/env bash
# The Debian packages (packaging/debian, built by packaging/build-deb.sh):
# they build out of tree without touching the repository, hold the files
# where Debian's p11-kit looks (module, module file, conffile, deny list, man
# pages, header, pkg-config file), pass lintian, and - as root only - install
# into the real system: p11-kit lists the module, the installed `ksp11`
# finds it, a p11-kit-proxy consumer (OpenSSL's pkcs11 engine with no module
# path) signs with a token key; then the packages are purged and every file
# is gone. The packages are never left installed (EXIT trap), and concurrent
# runs of this test on one machine take turns (flock).
#
# The package's own unit-test run is skipped (DEB_BUILD_OPTIONS=nocheck):
# `make check` runs those tests already.
set -uo pipefail
. "$(dirname "$0")/../lib/helpers.sh"

require_cmd dpkg-buildpackage dpkg-deb dh fakeroot lintian flock pkcs11-tool openssl p11-kit
ksp_setup

P11_PATH=/usr/lib/x86_64-linux-gnu/pkcs11
P11_CONFS=/usr/share/p11-kit/modules
MODULE_FILES=("$P11_PATH/ksp11-pkcs11.so" "$P11_CONFS/ksp11.module" /usr/bin/ksp11
    /etc/ksp11/ksp11.conf /usr/share/ksp11/tpm-denylist.conf /usr/include/ksp11/ksp11.h)
DEB_DIR=$TEST_DIR/deb

repo_state() {
    git -C "$KSP_ROOT" status --porcelain 2>/dev/null
}

# --- build ---
before=$(repo_state)
if ! check deb-build env DEB_BUILD_OPTIONS="nocheck parallel=2" \
    bash "$KSP_ROOT/packaging/build-deb.sh" "$DEB_DIR"; then
    ksp_finish
    exit 1
fi
if [ "$(repo_state)" = "$before" ]; then
    pass deb-build-leaves-repo-as-it-was
else
    fail deb-build-leaves-repo-as-it-was "git status changed"
fi

shopt -s nullglob
debs=("$DEB_DIR"/ksp11_*_amd64.deb)
devs=("$DEB_DIR"/ksp11-dev_*_amd64.deb)
shopt -u nullglob
DEB=${debs[0]:-}
DEV=${devs[0]:-}
if [ -z "$DEB" ] || [ -z "$DEV" ]; then
    fail deb-files "ksp11 and ksp11-dev .deb expected in $DEB_DIR"
    ksp_finish
    exit 1
fi

# --- contents ---
contents=$(ksp_outfile deb-contents)
dpkg-deb -c "$DEB" >"$contents"
dpkg-deb -c "$DEV" >>"$contents"
for f in "$P11_PATH/ksp11-pkcs11.so" "$P11_CONFS/ksp11.module" /usr/bin/ksp11 \
    /etc/ksp11/ksp11.conf /usr/share/ksp11/tpm-denylist.conf /usr/share/man/man1/ksp11.1.gz \
    /usr/share/man/man5/ksp11.conf.5.gz /usr/share/man/man8/ksp11-pkcs11.8.gz \
    /usr/include/ksp11/ksp11.h /usr/lib/x86_64-linux-gnu/pkgconfig/ksp11.pc \
    /usr/share/doc/ksp11/attestation.md; do
    check_grep "deb-has:$f" " \.$f(\.gz)?\$" "$contents"
done
conffiles=$(dpkg-deb -I "$DEB" conffiles 2>/dev/null)
if [ "$conffiles" = "/etc/ksp11/ksp11.conf" ]; then
    pass deb-conffile
else
    fail deb-conffile "conffiles: '$conffiles'"
fi
# PREFIX=/usr: the module looks for the deny list where the package puts it.
mkdir -p "$TEST_DIR/x"
dpkg-deb -x "$DEB" "$TEST_DIR/x"
if grep -aqF /usr/share/ksp11/tpm-denylist.conf "$TEST_DIR/x$P11_PATH/ksp11-pkcs11.so" &&
    ! grep -aqF /usr/local/share/ksp11 "$TEST_DIR/x$P11_PATH/ksp11-pkcs11.so"; then
    pass deb-module-denylist-path
else
    fail deb-module-denylist-path "module does not name /usr/share/ksp11/tpm-denylist.conf"
fi
depends=$(dpkg-deb -f "$DEB" Depends)
if [[ "$depends" == *libtss2-esys* && "$depends" == *libssl3* && "$depends" == *libtss2-tcti-device0* ]]; then
    pass deb-depends
else
    fail deb-depends "Depends: $depends"
fi

# --- lintian (errors and warnings fail; overrides carry their reasons) ---
check deb-lintian lintian --fail-on error,warning "$DEB_DIR"/ksp11_*_amd64.changes

# --- install into the real system (root only) ---
if [ "$(id -u)" -ne 0 ]; then
    skip deb-install "not root: dpkg -i needs root (CI runs as root)"
    ksp_finish
    exit
fi

# Machine-wide: /run/lock, or /tmp in containers without it.
lockdir=/run/lock
[ -d "$lockdir" ] && [ -w "$lockdir" ] || lockdir=/tmp
lock=$lockdir/ksp11-debian-package-test.lock
exec 9>"$lock"
if ! flock -w 600 9; then
    fail deb-install "another run held $lock for 10 minutes"
    ksp_finish
    exit 1
fi
# dpkg waits for nobody: retry while another dpkg/apt holds its lock.
dpkg_locked() {
    local out=$1 i
    shift
    for i in $(seq 1 60); do
        DEBIAN_FRONTEND=noninteractive "$@" >"$out" 2>&1 && return 0
        grep -qi 'lock' "$out" || return 1
        sleep 2
        : "$i"
    done
    return 1
}

# A run killed before its purge (SIGKILL) leaves this marker: finish its job.
marker=$lockdir/ksp11-debian-package-test.installed
if [ -e "$marker" ]; then
    if dpkg_locked "$(ksp_outfile purge-previous-run)" dpkg -P ksp11-dev ksp11; then
        rm -f "$marker"
        pass purge-left-over-from-killed-run
    else
        fail purge-left-over-from-killed-run "dpkg -P failed"
        show_tail "$(ksp_outfile purge-previous-run)"
    fi
fi

# Never replace a ksp11 installed some other way.
present=
dpkg-query -W -f='${Status}' ksp11 2>/dev/null | grep -q 'ok installed' && present="package ksp11"
for f in "${MODULE_FILES[@]}" /etc/ksp11; do
    [ -e "$f" ] && present="$f"
done
if [ -n "$present" ]; then
    skip deb-install "ksp11 is already installed on this machine ($present); not touching it"
    ksp_finish
    exit
fi

installed=0
purge() {
    [ "$installed" -eq 1 ] || return 0
    installed=0
    dpkg_locked "$(ksp_outfile deb-purge)" dpkg -P ksp11-dev ksp11 && rm -f "$marker"
}
# shellcheck disable=SC2154 # rc is assigned inside the trap
trap 'rc=$?; purge; ksp_cleanup "$rc"' EXIT

installed=1
: >"$marker"
out=$(ksp_outfile deb-install)
if dpkg_locked "$out" dpkg -i "$DEB" "$DEV"; then
    pass deb-install
else
    fail deb-install "dpkg -i failed"
    show_tail "$out"
fi
if [ "$(dpkg-query -W -f='${Status}' ksp11 2>/dev/null)" = "install ok installed" ]; then
    pass deb-installed-state
else
    fail deb-installed-state "$(dpkg-query -W -f='${Status}' ksp11 2>&1)"
fi

# From here on: the installed module with its installed config, the test's
# own store and log; the installed tool finds the module by itself.
unset KSP11_CONF KSP11_MODULE OPENSSL_CONF

out=$(ksp_outfile p11-kit-list-modules)
p11-kit list-modules >"$out" 2>&1
check_grep p11-kit-lists-ksp11 '^ksp11: ksp11-pkcs11\.so$' "$out"

out=$(ksp_outfile installed-ksp11-status)
if /usr/bin/ksp11 status >"$out" 2>&1; then
    check_grep installed-ksp11-status "^module: +$P11_PATH/ksp11-pkcs11\.so$" "$out"
else
    fail installed-ksp11-status "exit status"
    show_tail "$out"
fi

PROXY=$(dirname "$P11_PATH")/p11-kit-proxy.so
if check installed-ksp11-init /usr/bin/ksp11 init --label debtest --so-pin 12345678 --pin 1234 &&
    check installed-ksp11-keygen /usr/bin/ksp11 keygen --token debtest --label k --ec P-256 --pin 1234; then
    out=$(ksp_outfile proxy-lists-token)
    pkcs11-tool --module "$PROXY" -L >"$out" 2>&1
    check_grep proxy-lists-token 'token label +: debtest' "$out"
    # The libp11 engine loads p11-kit-proxy.so when no MODULE_PATH is set.
    head -c 32 /dev/urandom >"$TEST_DIR/digest"
    if check proxy-engine-sign openssl pkeyutl -engine pkcs11 -keyform engine \
        -inkey 'pkcs11:token=debtest;object=k;type=private;pin-value=1234' \
        -sign -in "$TEST_DIR/digest" -out "$TEST_DIR/sig" &&
        check proxy-read-pubkey pkcs11-tool --module "$PROXY" --token-label debtest \
            --read-object --type pubkey --label k -o "$TEST_DIR/pub.der"; then
        check proxy-signature-verifies openssl pkeyutl -verify -pubin -keyform DER \
            -inkey "$TEST_DIR/pub.der" -in "$TEST_DIR/digest" -sigfile "$TEST_DIR/sig"
    fi
fi

if grep -rqs '^path-exclude=/usr/share/man' /etc/dpkg/dpkg.cfg.d/; then
    skip installed-man-pages "dpkg excludes /usr/share/man on this system"
else
    for page in ksp11 ksp11.conf ksp11-pkcs11; do
        out=$(ksp_outfile "installed-man-$page")
        if man -w "$page" >"$out" 2>&1 && [ -z "$(MANWIDTH=80 man --warnings "$page" 2>&1 >/dev/null)" ]; then
            pass "installed-man-$page"
        else
            fail "installed-man-$page" "man $page missing or renders with warnings"
        fi
    done
fi

# --- purge: nothing of ksp11 is left ---
if purge; then
    pass deb-purge
else
    fail deb-purge "dpkg -P failed"
    show_tail "$(ksp_outfile deb-purge)"
fi
if dpkg-query -W -f='${Status}' ksp11 2>/dev/null | grep -q 'ok installed'; then
    fail deb-purged-state "still installed"
else
    pass deb-purged-state
fi
left=()
for f in "${MODULE_FILES[@]}" /etc/ksp11 /usr/share/ksp11; do
    [ -e "$f" ] && left+=("$f")
done
if [ ${#left[@]} -eq 0 ]; then
    pass deb-purge-removes-files
else
    fail deb-purge-removes-files "left: ${left[*]}"
fi
out=$(ksp_outfile p11-kit-after-purge)
p11-kit list-modules >"$out" 2>&1
if grep -q '^ksp11:' "$out"; then
    fail p11-kit-forgets-ksp11 "still listed after purge"
else
    pass p11-kit-forgets-ksp11
fi

ksp_finish
