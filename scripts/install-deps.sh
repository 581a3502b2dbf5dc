#!/usr/bin/env bash
# Install every Debian 12 package the build, the tests and the demo need.
# Does nothing, quickly and silently, when all of them are already installed
# (checked with dpkg-query; no apt-get update then). Otherwise installs the
# missing ones with apt-get, as root or through sudo.
set -euo pipefail

PACKAGES=(
    # build
    build-essential pkg-config libssl-dev libp11-kit-dev libtss2-dev check clang
    # p11-kit (module registration, proxy)
    p11-kit p11-kit-modules
    # TPM: throwaway software TPMs for the tests and the demo, tpm2-tools, and
    # tpm2-abrmd on a private D-Bus session bus (resource-manager tests)
    swtpm swtpm-tools tpm2-tools tpm2-abrmd dbus
    libtss2-tcti-tabrmd0 # the tabrmd TCTI (client side), not a dependency of tpm2-abrmd
    # end-to-end clients
    opensc gnutls-bin libengine-pkcs11-openssl curl openssl libnss3-tools
    openssh-client openssh-server
    # memory checking and fuzzing (clang's libFuzzer, ASan, UBSan)
    valgrind libclang-rt-14-dev
    # the Debian package (packaging/debian) and its lint
    debhelper dpkg-dev fakeroot lintian
)

missing=()
for p in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
    if [ "$status" != "install ok installed" ]; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-deps: missing packages and no apt-get (Debian 12 expected): ${missing[*]}" >&2
    exit 1
fi

SUDO=()
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=(sudo)
    else
        echo "install-deps: need root (or sudo) to install: ${missing[*]}" >&2
        exit 1
    fi
fi

echo "install-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
# The package lists may be stale or absent on a fresh machine or container.
"${SUDO[@]}" apt-get update -qq
"${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "${missing[@]}"
