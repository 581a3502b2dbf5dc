#!/usr/bin/env bash
# The store under faults, end to end through the PKCS#11 API (issue 6, "Faults"):
#
#   write errors   fault_shim.so (LD_PRELOAD) fails every write-side call of
#                  each writing operation in turn with ENOSPC (the disk stays
#                  full, and once), EIO (once): a clean CKR_DEVICE_MEMORY /
#                  CKR_DEVICE_ERROR and exactly the old state, or CKR_OK and
#                  exactly the new one (fault_inject.c has the details)
#   full disk      as root: a 512 KiB tmpfs as the store, filled through the API
#   read-only      as root: the store on a tmpfs remounted read-only; anywhere:
#                  the shim returning EROFS for every write
#   corrupt files  truncated, bit-flipped, wrong-version, empty, aliased object
#                  files and metadata: the token opens, bad objects are skipped
#                  and logged, a token with bad metadata is skipped and logged
set -u
# shellcheck source=tests/lib/helpers.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/helpers.sh"

ksp_setup
require_module
FB=$KSP_BUILD/tests/faults
SHIM=$FB/fault_shim.so
for p in "$FB/fault_inject" "$FB/fault_store" "$SHIM"; do
    if [ ! -e "$p" ]; then
        fail store-faults "$p not built"
        ksp_finish
        exit 1
    fi
done

MOUNTS=()
cleanup_mounts() {
    local rc=$? m
    for m in "${MOUNTS[@]}"; do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null
    done
    ksp_cleanup "$rc"
}
trap cleanup_mounts EXIT

# fresh_store NAME: a new empty store directory as KSP11_STORE.
fresh_store() {
    export KSP11_STORE=$TEST_DIR/$1
    mkdir -p "$KSP11_STORE"
    chmod 700 "$KSP11_STORE"
}

# small_tmpfs NAME SIZE: as root, a tmpfs of SIZE as KSP11_STORE; 1 if impossible.
small_tmpfs() {
    local dir=$TEST_DIR/$1
    [ "$(id -u)" -eq 0 ] || return 1
    mkdir -p "$dir"
    mount -t tmpfs -o "size=$2,mode=0700" tmpfs "$dir" 2>/dev/null || return 1
    MOUNTS+=("$dir")
    export KSP11_STORE=$dir/store
    mkdir -m 700 "$KSP11_STORE"
}

# ---- write errors through the shim ----
for mode in "ENOSPC sticky" "ENOSPC" "EIO"; do
    fresh_store "shim-${mode// /-}"
    out=$(ksp_outfile "inject-$mode")
    # shellcheck disable=SC2086
    LD_PRELOAD=$SHIM "$FB/fault_inject" $mode >"$out" 2>&1
    rc=$?
    cat "$out" | grep -E '^(PASS|FAIL): ' || true
    # The program's own PASS/FAIL lines are counted; a crash is a failure too.
    if [ "$rc" -ne 0 ] && ! grep -q '^FAIL: ' "$out"; then
        fail "write errors $mode" "fault_inject exited $rc"
        show_tail "$out"
    elif grep -q '^FAIL: ' "$out"; then
        show_tail "$out" 40
    fi
done
# Count the program's lines in this script's totals too (for ksp_finish).
KSP_PASSED=$((KSP_PASSED + $(cat "$TEST_DIR"/out/inject-*.out | grep -c '^PASS: ')))
KSP_FAILED=$((KSP_FAILED + $(cat "$TEST_DIR"/out/inject-*.out | grep -c '^FAIL: ')))

# ---- a really full disk ----
if small_tmpfs full 512k; then
    check "full tmpfs: setup" "$FB/fault_store" setup full 3 &&
        check "full tmpfs: CKR_DEVICE_MEMORY, old state intact, delete works" \
            "$FB/fault_store" fill full
else
    skip "full tmpfs" "not root or cannot mount tmpfs; the shim's ENOSPC runs cover it"
fi

# ---- read-only store ----
if small_tmpfs ro 4m; then
    check "read-only mount: setup" "$FB/fault_store" setup ro 3 &&
        if mount -o remount,ro "$TEST_DIR/ro"; then
            check "read-only mount: login, find, sign work; writes CKR_TOKEN_WRITE_PROTECTED" \
                "$FB/fault_store" readonly ro
            mount -o remount,rw "$TEST_DIR/ro"
        else
            fail "read-only mount" "remount,ro failed"
        fi
else
    skip "read-only mount" "not root or cannot mount tmpfs; the shim's EROFS run covers it"
fi
fresh_store ro-shim
check "read-only (EROFS shim): setup" "$FB/fault_store" setup ro 3 &&
    check "read-only (EROFS shim): login, find, sign work; writes CKR_TOKEN_WRITE_PROTECTED" \
        env LD_PRELOAD="$SHIM" KSP_FAULT_DIR="$KSP11_STORE" KSP_FAULT_NTH=1 KSP_FAULT_STICKY=1 \
        KSP_FAULT_ERRNO=EROFS "$FB/fault_store" readonly ro

# ---- corrupt files ----
fresh_store corrupt
: >"$KSP11_LOG_FILE"
check "corrupt: setup good token" "$FB/fault_store" setup good 6
check "corrupt: setup token with bad metadata" "$FB/fault_store" setup badmeta 1
check "corrupt: setup token with wrong-version metadata" "$FB/fault_store" setup oldmeta 1

# token_dir LABEL: the directory of the token whose metadata holds LABEL.
token_dir() {
    grep -l -a -- "$1" "$KSP11_STORE"/*/token.meta | head -n 1 | xargs dirname
}
# data_files DIR: object files holding data objects (the fk-... labels).
data_files() {
    grep -l -a 'ksp11-faults' "$1"/*.obj
}
# set_version FILE V: rewrite the record's version field (u16 LE at offset 4)
# and its SHA-256 trailer, so only the version is wrong.
set_version() {
    local f=$1 v=$2 len body
    len=$(stat -c %s "$f")
    body=$TEST_DIR/rec.$$
    {
        head -c 4 "$f"
        printf "\\x$(printf %02x "$v")\\x00"
        tail -c +7 "$f" | head -c $((len - 6 - 32))
    } >"$body"
    openssl dgst -sha256 -binary "$body" >>"$body"
    cat "$body" >"$f"
    rm -f "$body"
}

GOOD=$(token_dir good)
mapfile -t DATA < <(data_files "$GOOD")
if [ "${#DATA[@]}" -ne 6 ]; then
    fail "corrupt: found ${#DATA[@]} data object files, expected 6"
else
    truncate -s $(($(stat -c %s "${DATA[0]}") / 2)) "${DATA[0]}"                   # truncated
    printf '\xff' | dd of="${DATA[1]}" bs=1 seek=40 conv=notrunc status=none     # bit flip
    set_version "${DATA[2]}" 3                                                    # newer format
    : >"${DATA[3]}"                                                               # empty
    cp "${DATA[4]}" "$GOOD/0123456789abcdef0123456789abcdef.obj"                  # alias
    printf 'half' >"$GOOD/.tmp.fedcba9876543210fedcba9876543210.1.0000"          # crash leftover
    printf 'junk' >"$GOOD/notanobject.obj"
    head -c 100 /dev/urandom >"$GOOD/generation"
    # Intact: DATA[4] (its alias is skipped) and DATA[5].
    truncate -s 100 "$(token_dir badmeta)/token.meta"
    set_version "$(token_dir oldmeta)/token.meta" 1
    check "corrupt: token opens, 2 intact data objects of 6, key signs" \
        "$FB/fault_store" check good 2
    check "corrupt: token with truncated metadata is skipped" "$FB/fault_store" absent badmeta
    check "corrupt: token with wrong-version metadata is skipped" "$FB/fault_store" absent oldmeta
    check_grep "corrupt: truncated/flipped/wrong-version objects logged" \
        "skipping corrupt object file .*$(basename "${DATA[0]}")" "$KSP11_LOG_FILE"
    n=$(grep -c "skipping corrupt object file" "$KSP11_LOG_FILE" || true)
    # Each load of the token logs each of the 4 bad files once.
    if [ "$n" -ge 4 ]; then pass "corrupt: every bad object logged ($n lines)"; else
        fail "corrupt: every bad object logged" "$n lines"
    fi
    check_grep "corrupt: aliased object logged" "holds object" "$KSP11_LOG_FILE"
    check_grep "corrupt: bad names logged" "not an object file name" "$KSP11_LOG_FILE"
    check_grep "corrupt: bad metadata logged" "skipping token" "$KSP11_LOG_FILE"
    # The good token can still be written to (the generation file is repaired).
    check "corrupt: token still writable" "$FB/fault_store" setup good2 1
fi

ksp_finish
