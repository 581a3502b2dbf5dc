#!/usr/bin/env bash
# `make install` / `make uninstall` into a DESTDIR (packaging/packaging.mk):
# every file lands where p11-kit and the man/pkg-config tools look, with its
# mode; the installed module and tool work; the public header compiles with
# p11-kit's pkcs11.h alone and a client built on it reaches the vendor
# interface of the installed module; p11-kit passes the module file's
# x-init-reserved: to the module as its config file; an existing config is never overwritten; the man
# pages render without warnings and ksp11(1) documents every command and
# option the tool's --help lists; uninstall removes what install put.
set -uo pipefail
. "$(dirname "$0")/../lib/helpers.sh"

require_cmd make pkg-config groff man cc p11-kit setpriv
require_module
ksp_setup

TOOL=$KSP_BUILD/ksp11
D=$TEST_DIR/root
# The PREFIX the module was built with (packaging.mk records it): installing
# with another one would rebuild the module under the other tests' feet.
PREFIX=/usr/local
[ -s "$KSP_BUILD/prefix.stamp" ] && PREFIX=$(cat "$KSP_BUILD/prefix.stamp")
P11_PATH=$(pkg-config --variable=p11_module_path p11-kit-1)
P11_CONFS=$(pkg-config --variable=p11_module_configs p11-kit-1)

# A make of our own, not a job of the `make check` that runs this script.
kmake() {
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make --no-print-directory -C "$KSP_ROOT" \
        BUILD="$KSP_BUILD" PREFIX="$PREFIX" DESTDIR="$D" "$@"
}

# expect_file PATH MODE: PASS when PATH is a regular file with MODE (octal).
expect_file() {
    local name="install-file:${1#"$D"}" mode
    if [ ! -f "$1" ]; then
        fail "$name" "missing"
        return
    fi
    mode=$(stat -c %a "$1")
    if [ "$mode" = "$2" ]; then
        pass "$name"
    else
        fail "$name" "mode $mode, want $2"
    fi
}

# --- install ---
check make-install kmake install || {
    ksp_finish
    exit 1
}
expect_file "$D$P11_PATH/ksp11-pkcs11.so" 644
expect_file "$D$P11_CONFS/ksp11.module" 644
expect_file "$D$PREFIX/bin/ksp11" 755
expect_file "$D/etc/ksp11/ksp11.conf" 644
expect_file "$D$PREFIX/share/ksp11/tpm-denylist.conf" 644
expect_file "$D$PREFIX/share/man/man1/ksp11.1" 644
expect_file "$D$PREFIX/share/man/man5/ksp11.conf.5" 644
expect_file "$D$PREFIX/share/man/man8/ksp11-pkcs11.8" 644
expect_file "$D$PREFIX/include/ksp11/ksp11.h" 644
expect_file "$D$PREFIX/lib/pkgconfig/ksp11.pc" 644
# Only the public header: the others are ksp11's internals.
n=$(find "$D$PREFIX/include" -type f | wc -l)
if [ "$n" -eq 1 ]; then pass install-only-public-header; else fail install-only-public-header "$n files"; fi

# The module file registers the module by its name in p11-kit's module path.
check_grep module-file-names-module '^module: ksp11-pkcs11\.so$' "$D$P11_CONFS/ksp11.module"
# The deny list compiled into the module is the installed one.
if grep -aqF "$PREFIX/share/ksp11/tpm-denylist.conf" "$D$P11_PATH/ksp11-pkcs11.so"; then
    pass module-knows-installed-denylist
else
    fail module-knows-installed-denylist "$PREFIX/share/ksp11/tpm-denylist.conf not in the module"
fi
if cmp -s "$KSP_ROOT/packaging/tpm-denylist.conf" "$D$PREFIX/share/ksp11/tpm-denylist.conf"; then
    pass installed-denylist-is-shipped-one
else
    fail installed-denylist-is-shipped-one
fi

# --- the installed tool and module work ---
status_out=$(ksp_outfile installed-tool-status)
if env -u KSP11_MODULE "$D$PREFIX/bin/ksp11" --module "$D$P11_PATH/ksp11-pkcs11.so" status \
    >"$status_out" 2>&1; then
    check_grep installed-tool-status "store root: +$KSP11_STORE" "$status_out"
else
    fail installed-tool-status "exit status"
    show_tail "$status_out"
fi
check installed-tool-version "$D$PREFIX/bin/ksp11" --version

# --- pkg-config and the public header ---
pcdir=$D$PREFIX/lib/pkgconfig
mod=$(PKG_CONFIG_PATH=$pcdir pkg-config --variable=module ksp11 2>/dev/null)
if [ "$mod" = "$P11_PATH/ksp11-pkcs11.so" ]; then
    pass pc-module-variable
else
    fail pc-module-variable "got '$mod'"
fi
cflags=$(PKG_CONFIG_PATH=$pcdir pkg-config --cflags ksp11 2>/dev/null)
if [[ " $cflags " == *" -I$PREFIX/include "* ]] && [[ "$cflags" == *p11-kit-1* ]]; then
    pass pc-cflags
else
    fail pc-cflags "got '$cflags'"
fi
# Compile against the installed header (DESTDIR stands in for / here), alone
# and after p11-kit's own pkcs11.h, with the values fixed by DESIGN.md §4.
cat >"$TEST_DIR/alone.c" <<'EOF'
#include <ksp11/ksp11.h>
_Static_assert(CKA_KSP11_BACKEND == 0xCB530001UL, "backend");
_Static_assert(CKA_KSP11_IMPL_TYPE == 0xCB530002UL, "impl type");
_Static_assert(CKA_KSP11_FALLBACK_REASON == 0xCB530003UL, "reason");
_Static_assert(CKA_KSP11_TPM_IDENTITY == 0xCB530004UL, "identity");
_Static_assert(CKA_KSP11_REQUIRE_HARDWARE == 0xCB530005UL, "require hw");
int main(void)
{
    CK_ATTRIBUTE a = {CKA_KSP11_BACKEND, 0, 0};
    return a.type == CKA_KSP11_BACKEND && KSP11_BACKEND_TPM == 1 && KSP11_IMPL_VIRTUAL == 0x20 ? 0 : 1;
}
EOF
printf '#include <p11-kit/pkcs11.h>\n#include <ksp11/ksp11.h>\n' >"$TEST_DIR/after.c"
printf 'int main(void) { return CKA_KSP11_REQUIRE_HARDWARE == 0xCB530005UL ? 0 : 1; }\n' >>"$TEST_DIR/after.c"
for t in alone after; do
    # shellcheck disable=SC2046 # pkg-config flags are words
    check "header-compiles-$t" cc -std=c11 -Wall -Wextra -Werror -I"$D$PREFIX/include" \
        $(pkg-config --cflags p11-kit-1) -o "$TEST_DIR/$t" "$TEST_DIR/$t.c" &&
        check "header-values-$t" "$TEST_DIR/$t"
done

# A client developer's program: the installed header only (plus p11-kit's),
# the DESTDIR-installed module by dlopen, the vendor interface through
# C_GetInterface. p11-kit 0.24's header is PKCS#11 2.40: the program declares
# CK_INTERFACE itself, as such a client must.
cat >"$TEST_DIR/vendor.c" <<'EOF'
#include <dlfcn.h>
#include <stdio.h>
#include <ksp11/ksp11.h>

#ifndef CKF_INTERFACE_FORK_SAFE
typedef struct CK_INTERFACE {
    CK_CHAR *pInterfaceName;
    CK_VOID_PTR pFunctionList;
    CK_FLAGS flags;
} CK_INTERFACE;
#endif
typedef CK_RV (*get_interface_fn)(CK_UTF8CHAR *, CK_VERSION *, CK_INTERFACE **, CK_FLAGS);

int main(int argc, char **argv)
{
    void *h = argc == 2 ? dlopen(argv[1], RTLD_NOW | RTLD_LOCAL) : NULL;
    if (!h)
        return 2;
    CK_C_GetFunctionList gfl = (CK_C_GetFunctionList)dlsym(h, "C_GetFunctionList");
    get_interface_fn gi = (get_interface_fn)dlsym(h, "C_GetInterface");
    CK_FUNCTION_LIST *f = NULL;
    CK_INTERFACE *iface = NULL;
    if (!gfl || !gi || gfl(&f) != CKR_OK || f->C_Initialize(NULL) != CKR_OK)
        return 3;
    if (gi((CK_UTF8CHAR *)KSP11_INTERFACE_NAME, NULL, &iface, 0) != CKR_OK || !iface)
        return 4;
    CK_KSP11_FUNCTION_LIST *v = iface->pFunctionList;
    CK_KSP11_TPM_STATUS st;
    if (v->version.major != 1 || v->C_KSP11_GetTpmStatus(&st) != CKR_OK)
        return 5;
    printf("tpm state %lu reason '%s' detail '%s'\n", st.state, (char *)st.reason,
           (char *)st.detail);
    if (st.state < KSP11_TPM_ACCEPTED || st.state > KSP11_TPM_DENIED ||
        (st.state != KSP11_TPM_ACCEPTED && st.reason[0] == '\0'))
        return 6;
    CK_SLOT_ID slots[16];
    CK_ULONG n = 16, tokens = 0, empty = 0;
    if (f->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK)
        return 7;
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;
        CK_ULONG prot = 99;
        if (f->C_GetTokenInfo(slots[i], &ti) != CKR_OK ||
            v->C_KSP11_GetTokenProtection(slots[i], &prot) != CKR_OK)
            return 8;
        int inited = (ti.flags & CKF_TOKEN_INITIALIZED) != 0;
        printf("slot %lu initialised %d protection %lu\n", slots[i], inited, prot);
        if (inited && prot != KSP11_PROTECT_PIN && prot != KSP11_PROTECT_TPM)
            return 9;
        if (!inited && prot != KSP11_PROTECT_NONE)
            return 10;
        tokens += inited;
        empty += !inited;
    }
    f->C_Finalize(NULL);
    return tokens == 1 && empty == 1 ? 0 : 11;
}
EOF
# shellcheck disable=SC2046 # pkg-config flags are words
if check vendor-client-compiles cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror \
    -I"$D$PREFIX/include" $(pkg-config --cflags p11-kit-1) -o "$TEST_DIR/vendor" \
    "$TEST_DIR/vendor.c" -ldl &&
    check vendor-client-token env -u KSP11_MODULE "$D$PREFIX/bin/ksp11" \
        --module "$D$P11_PATH/ksp11-pkcs11.so" init --label vendor --so-pin 12345678 --pin 1234; then
    check vendor-interface-from-public-header "$TEST_DIR/vendor" "$D$P11_PATH/ksp11-pkcs11.so"
fi

# p11-kit hands x-init-reserved: (commented out in the shipped module file) to
# C_Initialize, and the module reads it as its config file: the token of the
# store named only there shows up. p11-kit ignores user configuration for
# root, so as root this runs as user nobody, on copies it can read.
U=$TEST_DIR/xir
mkdir -p "$U/home/.config/pkcs11/modules"
cp "$D$P11_PATH/ksp11-pkcs11.so" "$U/ksp11-pkcs11.so"
printf 'store = %s\n' "$U/store" >"$U/ksp11.conf"
sed -e "s|^module:.*|module: $U/ksp11-pkcs11.so|" \
    -e "s|^#x-init-reserved:.*|x-init-reserved: $U/ksp11.conf|" \
    "$D$P11_CONFS/ksp11.module" >"$U/home/.config/pkcs11/modules/ksp11.module"
check_grep module-file-offers-x-init-reserved "^x-init-reserved: $U/ksp11.conf\$" \
    "$U/home/.config/pkcs11/modules/ksp11.module"
AS_USER=()
if [ "$(id -u)" -eq 0 ]; then
    AS_USER=(setpriv --reuid=nobody --regid=nogroup --clear-groups)
fi
if check x-init-reserved-token env KSP11_STORE="$U/store" "$TOOL" --module "$U/ksp11-pkcs11.so" \
    init --label xinit --so-pin 12345678 --pin 1234; then
    if [ ${#AS_USER[@]} -gt 0 ]; then
        chown -R nobody:nogroup "$U"
        chmod 711 "$TEST_DIR"
    fi
    out=$(ksp_outfile x-init-reserved-list-modules)
    if ! (cd "$U" && "${AS_USER[@]}" test -r "$U/ksp11-pkcs11.so"); then
        skip x-init-reserved "user nobody cannot reach $U (TMPDIR not traversable)"
    else
        (cd "$U" && "${AS_USER[@]}" env -u KSP11_STORE -u KSP11_CONF -u KSP11_LOG_FILE \
            HOME="$U/home" XDG_CONFIG_HOME="$U/home/.config" p11-kit list-modules) >"$out" 2>&1
        check_grep x-init-reserved-config-used '^    token: xinit$' "$out"
    fi
fi

# --- man pages ---
for page in "$D$PREFIX/share/man/man1/ksp11.1" "$D$PREFIX/share/man/man5/ksp11.conf.5" \
    "$D$PREFIX/share/man/man8/ksp11-pkcs11.8"; do
    name=man-renders:$(basename "$page")
    out=$(ksp_outfile "$name")
    {
        groff -ww -z -man "$page"
        MANWIDTH=80 man --warnings -l "$page" >/dev/null
    } >"$out" 2>&1
    if [ ! -s "$out" ]; then
        pass "$name"
    else
        fail "$name" "warnings"
        show_tail "$out"
    fi
done

# ksp11(1) documents every command and every option the tool's help shows.
# Compared without roff's escapes: \- is a hyphen.
man1=$TEST_DIR/ksp11.1.txt
sed 's/\\-/-/g' "$KSP_ROOT/packaging/man/ksp11.1" >"$man1"
cmds=$("$TOOL" --help | awk '/^Commands:/ { on = 1; next } on && /^  [a-z]/ { print $1; next } on { exit }')
if [ -z "$cmds" ]; then
    fail man-documents-commands "no commands in 'ksp11 --help'"
fi
missing=()
for cmd in $cmds; do
    grep -Eq "^\.B $cmd( |$)" "$man1" || missing+=("command $cmd")
    for opt in $("$TOOL" "$cmd" --help | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u); do
        grep -qE -- "$opt([^a-z0-9-]|\$)" "$man1" || missing+=("$cmd $opt")
    done
done
for opt in $("$TOOL" --help | grep -oE -- '--[a-z][a-z0-9-]*' | sort -u); do
    grep -qE -- "$opt([^a-z0-9-]|\$)" "$man1" || missing+=("global $opt")
done
if [ ${#missing[@]} -eq 0 ]; then
    pass man-documents-every-command-and-option
else
    fail man-documents-every-command-and-option \
        "packaging/man/ksp11.1 lacks: ${missing[*]}"
fi

# --- an existing config is the administrator's ---
echo "log_level = info" >>"$D/etc/ksp11/ksp11.conf"
cp "$D/etc/ksp11/ksp11.conf" "$TEST_DIR/edited.conf"
check make-install-again kmake install
if cmp -s "$TEST_DIR/edited.conf" "$D/etc/ksp11/ksp11.conf"; then
    pass install-keeps-edited-config
else
    fail install-keeps-edited-config
fi

# --- uninstall: everything but the edited config goes ---
check make-uninstall kmake uninstall
left=$(cd "$D" && find . -type f | sort)
if [ "$left" = "./etc/ksp11/ksp11.conf" ]; then
    pass uninstall-removes-all-but-edited-config
else
    fail uninstall-removes-all-but-edited-config "left: $(echo "$left" | tr '\n' ' ')"
fi

# A pristine install leaves nothing behind, not even its own directories.
rm -rf "$D"
check make-install-fresh kmake install
check make-uninstall-fresh kmake uninstall
left=$(cd "$D" && find . -type f | sort)
if [ -z "$left" ]; then
    pass uninstall-removes-everything
else
    fail uninstall-removes-everything "left: $(echo "$left" | tr '\n' ' ')"
fi
for dir in "$D/etc/ksp11" "$D$PREFIX/share/ksp11" "$D$PREFIX/include/ksp11"; do
    if [ -e "$dir" ]; then
        fail "uninstall-removes-dir:${dir#"$D"}" "still there"
    else
        pass "uninstall-removes-dir:${dir#"$D"}"
    fi
done

ksp_finish
