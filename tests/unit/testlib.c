/*
 * Shared fixture of the API suites: temporary store per test, module loaded
 * with dlopen and used only through its function list, token/session/key
 * helpers, and OpenSSL (default library context) as the independent check of
 * what the module computes.
 */
#include "testlib.h"

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

struct ksp_test ksp_t;

#define DEFAULT_MODULE "build/ksp11-pkcs11.so"

/* ---- names for messages ------------------------------------------------ */

struct name {
    CK_ULONG v;
    const char *s;
};

/* Name tables, packed several to a line. */
/* clang-format off */
#define N(x) {x, #x}
static const struct name rv_names[] = {
    N(CKR_OK), N(CKR_CANCEL), N(CKR_HOST_MEMORY), N(CKR_SLOT_ID_INVALID), N(CKR_GENERAL_ERROR),
    N(CKR_FUNCTION_FAILED), N(CKR_ARGUMENTS_BAD), N(CKR_NO_EVENT), N(CKR_NEED_TO_CREATE_THREADS),
    N(CKR_CANT_LOCK), N(CKR_ATTRIBUTE_READ_ONLY), N(CKR_ATTRIBUTE_SENSITIVE),
    N(CKR_ATTRIBUTE_TYPE_INVALID), N(CKR_ATTRIBUTE_VALUE_INVALID), N(CKR_ACTION_PROHIBITED),
    N(CKR_DATA_INVALID), N(CKR_DATA_LEN_RANGE), N(CKR_DEVICE_ERROR), N(CKR_DEVICE_MEMORY),
    N(CKR_DEVICE_REMOVED), N(CKR_ENCRYPTED_DATA_INVALID), N(CKR_ENCRYPTED_DATA_LEN_RANGE),
    N(CKR_FUNCTION_CANCELED), N(CKR_FUNCTION_NOT_PARALLEL), N(CKR_FUNCTION_NOT_SUPPORTED),
    N(CKR_KEY_HANDLE_INVALID), N(CKR_KEY_SIZE_RANGE), N(CKR_KEY_TYPE_INCONSISTENT),
    N(CKR_KEY_NOT_NEEDED), N(CKR_KEY_CHANGED), N(CKR_KEY_NEEDED), N(CKR_KEY_INDIGESTIBLE),
    N(CKR_KEY_FUNCTION_NOT_PERMITTED), N(CKR_KEY_NOT_WRAPPABLE), N(CKR_KEY_UNEXTRACTABLE),
    N(CKR_MECHANISM_INVALID), N(CKR_MECHANISM_PARAM_INVALID), N(CKR_OBJECT_HANDLE_INVALID),
    N(CKR_OPERATION_ACTIVE), N(CKR_OPERATION_NOT_INITIALIZED), N(CKR_PIN_INCORRECT),
    N(CKR_PIN_INVALID), N(CKR_PIN_LEN_RANGE), N(CKR_PIN_EXPIRED), N(CKR_PIN_LOCKED),
    N(CKR_SESSION_CLOSED), N(CKR_SESSION_COUNT), N(CKR_SESSION_HANDLE_INVALID),
    N(CKR_SESSION_PARALLEL_NOT_SUPPORTED), N(CKR_SESSION_READ_ONLY), N(CKR_SESSION_EXISTS),
    N(CKR_SESSION_READ_ONLY_EXISTS), N(CKR_SESSION_READ_WRITE_SO_EXISTS), N(CKR_SIGNATURE_INVALID),
    N(CKR_SIGNATURE_LEN_RANGE), N(CKR_TEMPLATE_INCOMPLETE), N(CKR_TEMPLATE_INCONSISTENT),
    N(CKR_TOKEN_NOT_PRESENT), N(CKR_TOKEN_NOT_RECOGNIZED), N(CKR_TOKEN_WRITE_PROTECTED),
    N(CKR_UNWRAPPING_KEY_SIZE_RANGE), N(CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT),
    N(CKR_USER_ALREADY_LOGGED_IN), N(CKR_USER_NOT_LOGGED_IN), N(CKR_USER_PIN_NOT_INITIALIZED),
    N(CKR_USER_TYPE_INVALID), N(CKR_USER_ANOTHER_ALREADY_LOGGED_IN), N(CKR_USER_TOO_MANY_TYPES),
    N(CKR_WRAPPED_KEY_INVALID), N(CKR_WRAPPED_KEY_LEN_RANGE), N(CKR_WRAPPING_KEY_HANDLE_INVALID),
    N(CKR_WRAPPING_KEY_SIZE_RANGE), N(CKR_WRAPPING_KEY_TYPE_INCONSISTENT),
    N(CKR_RANDOM_SEED_NOT_SUPPORTED), N(CKR_RANDOM_NO_RNG), N(CKR_DOMAIN_PARAMS_INVALID),
    N(CKR_CURVE_NOT_SUPPORTED), N(CKR_BUFFER_TOO_SMALL), N(CKR_SAVED_STATE_INVALID),
    N(CKR_INFORMATION_SENSITIVE), N(CKR_STATE_UNSAVEABLE), N(CKR_CRYPTOKI_NOT_INITIALIZED),
    N(CKR_CRYPTOKI_ALREADY_INITIALIZED), N(CKR_MUTEX_BAD), N(CKR_MUTEX_NOT_LOCKED),
    N(CKR_NEW_PIN_MODE), N(CKR_NEXT_OTP), N(CKR_EXCEEDED_MAX_ITERATIONS),
    N(CKR_FIPS_SELF_TEST_FAILED), N(CKR_LIBRARY_LOAD_FAILED), N(CKR_PIN_TOO_WEAK),
    N(CKR_PUBLIC_KEY_INVALID), N(CKR_FUNCTION_REJECTED), N(CKR_OPERATION_CANCEL_FAILED),
};

static const struct name mech_names[] = {
    N(CKM_RSA_PKCS_KEY_PAIR_GEN), N(CKM_RSA_PKCS), N(CKM_RSA_X_509), N(CKM_RSA_PKCS_OAEP),
    N(CKM_RSA_PKCS_PSS), N(CKM_SHA1_RSA_PKCS), N(CKM_SHA224_RSA_PKCS), N(CKM_SHA256_RSA_PKCS),
    N(CKM_SHA384_RSA_PKCS), N(CKM_SHA512_RSA_PKCS), N(CKM_SHA1_RSA_PKCS_PSS),
    N(CKM_SHA224_RSA_PKCS_PSS), N(CKM_SHA256_RSA_PKCS_PSS), N(CKM_SHA384_RSA_PKCS_PSS),
    N(CKM_SHA512_RSA_PKCS_PSS), N(CKM_EC_KEY_PAIR_GEN), N(CKM_ECDSA), N(CKM_ECDSA_SHA1),
    N(CKM_ECDSA_SHA224), N(CKM_ECDSA_SHA256), N(CKM_ECDSA_SHA384), N(CKM_ECDSA_SHA512),
    N(CKM_ECDH1_DERIVE), N(CKM_SHA_1), N(CKM_SHA224), N(CKM_SHA256), N(CKM_SHA384), N(CKM_SHA512),
};
/* clang-format on */
#undef N

static const char *lookup(const struct name *t, size_t n, CK_ULONG v, char *buf, size_t len)
{
    for (size_t i = 0; i < n; i++) {
        if (t[i].v == v) {
            return t[i].s;
        }
    }
    snprintf(buf, len, "0x%lx", v);
    return buf;
}

const char *ksp_test_rv_name(CK_RV rv)
{
    static char buf[4][32];
    static unsigned idx;

    idx = (idx + 1) % 4;
    return lookup(rv_names, sizeof(rv_names) / sizeof(rv_names[0]), rv, buf[idx], sizeof(buf[idx]));
}

const char *ksp_test_mech_name(CK_MECHANISM_TYPE mech)
{
    static char buf[4][32];
    static unsigned idx;

    idx = (idx + 1) % 4;
    return lookup(mech_names, sizeof(mech_names) / sizeof(mech_names[0]), mech, buf[idx],
                  sizeof(buf[idx]));
}

/* ---- fixture ------------------------------------------------------------ */

/* snprintf for paths: a truncated path is a test setup failure. */
__attribute__((format(printf, 3, 4))) static void path_fmt(char *dst, size_t len, const char *fmt,
                                                           ...)
{
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(dst, len, fmt, ap);
    va_end(ap);
    ck_assert_msg(n >= 0 && (size_t)n < len, "path too long");
}

/* $KSP11_TEST_MODULE, else the module of $KSP11_BUILD (set by
 * tests/run-all.sh), else build/ksp11-pkcs11.so relative to the cwd. */
static const char *module_path(void)
{
    static char path[PATH_MAX];
    const char *p = getenv("KSP11_TEST_MODULE");
    const char *build = getenv("KSP11_BUILD");

    if (p != NULL && *p != '\0') {
        return p;
    }
    if (build != NULL && *build != '\0' &&
        (size_t)snprintf(path, sizeof(path), "%s/ksp11-pkcs11.so", build) < sizeof(path)) {
        return path;
    }
    return DEFAULT_MODULE;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    remove(path);
    return 0;
}

static void rm_rf(const char *path)
{
    if (path[0] == '\0' || getenv("KSP11_TEST_KEEP") != NULL) {
        return;
    }
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

void ksp_test_base_setup(void)
{
    const char *tmp = getenv("TMPDIR");

    if (tmp == NULL || *tmp == '\0') {
        tmp = "/tmp";
    }
    path_fmt(ksp_t.base, sizeof(ksp_t.base), "%s/ksp11-test-XXXXXX", tmp);
    ck_assert_msg(mkdtemp(ksp_t.base) != NULL, "mkdtemp(%s): %s", ksp_t.base, strerror(errno));
}

void ksp_test_base_teardown(void)
{
    rm_rf(ksp_t.base);
    ksp_t.base[0] = '\0';
}

bool ksp_test_tpm(void)
{
    const char *t = getenv("KSP11_TEST_TCTI");
    return t && *t;
}

/* Environment of behaviour.md for the module, rooted at dir. */
static void set_env(const char *dir)
{
    char path[PATH_MAX];

    path_fmt(ksp_t.store, sizeof(ksp_t.store), "%s/store", dir);
    if (mkdir(ksp_t.store, 0700) != 0 && errno != EEXIST) {
        ck_abort_msg("mkdir(%s): %s", ksp_t.store, strerror(errno));
    }
    setenv("KSP11_STORE", ksp_t.store, 1);
    setenv("KSP11_KDF_ITERATIONS", "1000", 1);
    path_fmt(path, sizeof(path), "%s/log", dir);
    setenv("KSP11_LOG_FILE", path, 1);
    setenv("KSP11_LOG_LEVEL", "debug", 1);
    setenv("KSP11_CONF", "/nonexistent", 1);
    /* The same suites run against a TPM when a script provides one
     * (tests/integration/api_on_tpm.sh); otherwise keys are software keys. */
    if (ksp_test_tpm())
        setenv("KSP11_TCTI", getenv("KSP11_TEST_TCTI"), 1);
    else
        unsetenv("KSP11_TCTI");

    /* Only to smoke-test this harness against SoftHSMv2: its token
     * directory goes into the same temporary store. */
    if (strstr(module_path(), "softhsm") != NULL) {
        FILE *f;

        path_fmt(path, sizeof(path), "%s/softhsm2.conf", dir);
        f = fopen(path, "w");
        ck_assert_msg(f != NULL, "fopen(%s)", path);
        fprintf(f, "directories.tokendir = %s\nobjectstore.backend = file\nlog.level = ERROR\n",
                ksp_t.store);
        fclose(f);
        setenv("SOFTHSM2_CONF", path, 1);
    }
}

static void make_test_dir(void)
{
    const char *parent = ksp_t.base;

    if (parent[0] == '\0') {
        parent = getenv("TMPDIR");
        if (parent == NULL || *parent == '\0') {
            parent = "/tmp";
        }
    }
    path_fmt(ksp_t.dir, sizeof(ksp_t.dir), "%s/t-XXXXXX", parent);
    ck_assert_msg(mkdtemp(ksp_t.dir) != NULL, "mkdtemp(%s): %s", ksp_t.dir, strerror(errno));
    ksp_t.own_dir = true;
    set_env(ksp_t.dir);
}

void ksp_test_load(void)
{
    CK_C_GetFunctionList get;
    CK_RV rv;

    ksp_t.dl = dlopen(module_path(), RTLD_NOW | RTLD_LOCAL);
    ck_assert_msg(ksp_t.dl != NULL, "dlopen(%s): %s", module_path(), dlerror());
    get = (CK_C_GetFunctionList)ksp_test_sym("C_GetFunctionList");
    ck_assert_msg(get != NULL, "C_GetFunctionList not exported by %s", module_path());
    rv = get(&ksp_t.fl);
    ck_assert_msg(rv == CKR_OK && ksp_t.fl != NULL, "C_GetFunctionList: %s", ksp_test_rv_name(rv));
}

void ksp_test_unload(void)
{
    if (ksp_t.dl != NULL) {
        dlclose(ksp_t.dl);
    }
    ksp_t.dl = NULL;
    ksp_t.fl = NULL;
}

void *ksp_test_sym(const char *name)
{
    void *p;

    ck_assert_msg(ksp_t.dl != NULL, "module not loaded");
    /* POSIX: a void * from dlsym may hold a function pointer. */
    p = dlsym(ksp_t.dl, name);
    return p;
}

void ksp_test_initialize(void)
{
    KSP_ASSERT_OK(P11->C_Initialize(NULL));
    ksp_t.initialized = true;
}

void ksp_test_finalize(void)
{
    KSP_ASSERT_OK(P11->C_Finalize(NULL));
    ksp_t.initialized = false;
}

void ksp_test_reinit(void)
{
    ksp_test_finalize();
    ksp_test_initialize();
}

void ksp_test_setup_noinit(void)
{
    make_test_dir();
    ksp_test_load();
}

void ksp_test_setup(void)
{
    ksp_test_setup_noinit();
    ksp_test_initialize();
}

void ksp_test_teardown(void)
{
    if (ksp_t.fl != NULL && ksp_t.initialized) {
        P11->C_Finalize(NULL);
    }
    ksp_t.initialized = false;
    ksp_test_unload();
    if (ksp_t.own_dir) {
        rm_rf(ksp_t.dir);
    }
    ksp_t.own_dir = false;
}

void ksp_test_add_fixtures(TCase *tc, bool initialize)
{
    tcase_add_unchecked_fixture(tc, ksp_test_base_setup, ksp_test_base_teardown);
    tcase_add_checked_fixture(tc, initialize ? ksp_test_setup : ksp_test_setup_noinit,
                              ksp_test_teardown);
    tcase_set_timeout(tc, KSP_TEST_TIMEOUT);
}

void ksp_test_shared_setup(void (*populate)(CK_SESSION_HANDLE))
{
    CK_SESSION_HANDLE s;

    ksp_test_base_setup();
    set_env(ksp_t.base);
    ksp_test_load();
    ksp_test_initialize();
    s = ksp_test_ready(KSP_TEST_SHARED_TOKEN);
    if (populate != NULL) {
        populate(s);
    }
    ksp_test_finalize();
    ksp_test_unload();
}

void ksp_test_shared_child_setup(void)
{
    char path[PATH_MAX];

    set_env(ksp_t.base);
    /* One log per test process, next to the shared store. */
    path_fmt(path, sizeof(path), "%s/log.%ld", ksp_t.base, (long)getpid());
    setenv("KSP11_LOG_FILE", path, 1);
    ksp_t.own_dir = false;
    ksp_test_load();
    ksp_test_initialize();
    ksp_t.slot = ksp_test_find_slot(KSP_TEST_SHARED_TOKEN);
    ksp_t.session = ksp_test_open(ksp_t.slot, true);
    ksp_test_login(ksp_t.session, CKU_USER, KSP_TEST_USER_PIN);
}

void ksp_test_add_shared_fixtures(TCase *tc, void (*unchecked_setup)(void))
{
    tcase_add_unchecked_fixture(tc, unchecked_setup, ksp_test_base_teardown);
    tcase_add_checked_fixture(tc, ksp_test_shared_child_setup, ksp_test_teardown);
    tcase_set_timeout(tc, KSP_TEST_TIMEOUT);
}

/* ---- tokens and sessions ------------------------------------------------ */

void ksp_test_pad(CK_UTF8CHAR *dst, size_t len, const char *s)
{
    size_t n = strlen(s);

    memset(dst, ' ', len);
    memcpy(dst, s, n < len ? n : len);
}

bool ksp_test_padded_eq(const CK_UTF8CHAR *field, size_t len, const char *s)
{
    CK_UTF8CHAR want[256];

    if (len > sizeof(want)) {
        return false;
    }
    ksp_test_pad(want, len, s);
    return memcmp(want, field, len) == 0;
}

CK_ULONG ksp_test_slots(CK_SLOT_ID *out, CK_ULONG max)
{
    CK_ULONG n = 0;

    KSP_ASSERT_OK(P11->C_GetSlotList(CK_FALSE, NULL, &n));
    ck_assert_msg(n <= max, "%lu slots, more than the %lu expected at most", n, max);
    KSP_ASSERT_OK(P11->C_GetSlotList(CK_FALSE, out, &n));
    return n;
}

CK_SLOT_ID ksp_test_empty_slot(void)
{
    CK_SLOT_ID slots[64];
    CK_ULONG n = ksp_test_slots(slots, 64);
    CK_ULONG found = 0;
    CK_SLOT_ID slot = 0;

    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;

        KSP_ASSERT_OK(P11->C_GetTokenInfo(slots[i], &ti));
        if (!(ti.flags & CKF_TOKEN_INITIALIZED)) {
            slot = slots[i];
            found++;
        }
    }
    ck_assert_msg(found == 1, "%lu slots without CKF_TOKEN_INITIALIZED among %lu, expected 1",
                  found, n);
    return slot;
}

CK_SLOT_ID ksp_test_find_slot(const char *label)
{
    CK_SLOT_ID slots[64];
    CK_ULONG n = ksp_test_slots(slots, 64);

    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;

        KSP_ASSERT_OK(P11->C_GetTokenInfo(slots[i], &ti));
        if ((ti.flags & CKF_TOKEN_INITIALIZED) &&
            ksp_test_padded_eq(ti.label, sizeof(ti.label), label)) {
            return slots[i];
        }
    }
    ck_abort_msg("no initialised token labelled \"%s\" among %lu slots", label, n);
    return 0;
}

CK_SLOT_ID ksp_test_init_token(const char *label)
{
    CK_UTF8CHAR padded[32];
    CK_SLOT_ID slot = ksp_test_empty_slot();

    ksp_test_pad(padded, sizeof(padded), label);
    KSP_ASSERT_OK(
        P11->C_InitToken(slot, (CK_UTF8CHAR_PTR)KSP_TEST_SO_PIN, strlen(KSP_TEST_SO_PIN), padded));
    /* ksp11 keeps the slot id; looking the token up by label also copes with
     * modules that renumber (SoftHSM). */
    return ksp_test_find_slot(label);
}

CK_SESSION_HANDLE ksp_test_open(CK_SLOT_ID slot, bool rw)
{
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    CK_FLAGS f = CKF_SERIAL_SESSION | (rw ? CKF_RW_SESSION : 0);

    KSP_ASSERT_OK(P11->C_OpenSession(slot, f, NULL, NULL, &s));
    ck_assert_msg(s != CK_INVALID_HANDLE, "C_OpenSession gave CK_INVALID_HANDLE");
    return s;
}

void ksp_test_login(CK_SESSION_HANDLE s, CK_USER_TYPE user, const char *pin)
{
    KSP_ASSERT_OK(P11->C_Login(s, user, (CK_UTF8CHAR_PTR)pin, strlen(pin)));
}

void ksp_test_init_user_pin(CK_SLOT_ID slot, const char *pin)
{
    CK_SESSION_HANDLE s = ksp_test_open(slot, true);

    ksp_test_login(s, CKU_SO, KSP_TEST_SO_PIN);
    KSP_ASSERT_OK(P11->C_InitPIN(s, (CK_UTF8CHAR_PTR)pin, strlen(pin)));
    KSP_ASSERT_OK(P11->C_Logout(s));
    KSP_ASSERT_OK(P11->C_CloseSession(s));
}

CK_SESSION_HANDLE ksp_test_ready(const char *label)
{
    ksp_t.slot = ksp_test_init_token(label);
    ksp_test_init_user_pin(ksp_t.slot, KSP_TEST_USER_PIN);
    ksp_t.session = ksp_test_open(ksp_t.slot, true);
    ksp_test_login(ksp_t.session, CKU_USER, KSP_TEST_USER_PIN);
    return ksp_t.session;
}

CK_FLAGS ksp_test_token_flags(CK_SLOT_ID slot)
{
    CK_TOKEN_INFO ti;

    KSP_ASSERT_OK(P11->C_GetTokenInfo(slot, &ti));
    return ti.flags;
}

CK_STATE ksp_test_state(CK_SESSION_HANDLE s)
{
    CK_SESSION_INFO si;

    KSP_ASSERT_OK(P11->C_GetSessionInfo(s, &si));
    return si.state;
}

/* ---- objects ------------------------------------------------------------ */

CK_RV ksp_test_get_attr(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type,
                        uint8_t **val, CK_ULONG *len)
{
    CK_ATTRIBUTE a = {type, NULL, 0};
    CK_RV rv = P11->C_GetAttributeValue(s, h, &a, 1);

    if (rv != CKR_OK) {
        return rv;
    }
    ck_assert_msg(a.ulValueLen != CK_UNAVAILABLE_INFORMATION,
                  "attribute 0x%lx: CKR_OK with CK_UNAVAILABLE_INFORMATION", type);
    a.pValue = calloc(1, a.ulValueLen + 1);
    ck_assert(a.pValue != NULL);
    rv = P11->C_GetAttributeValue(s, h, &a, 1);
    if (rv != CKR_OK) {
        free(a.pValue);
        return rv;
    }
    *val = a.pValue;
    *len = a.ulValueLen;
    return CKR_OK;
}

CK_ULONG ksp_test_get_ulong(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type)
{
    CK_ULONG v = 0;
    CK_ATTRIBUTE a = {type, &v, sizeof(v)};
    CK_RV rv = P11->C_GetAttributeValue(s, h, &a, 1);

    ck_assert_msg(rv == CKR_OK, "C_GetAttributeValue(0x%lx) on object %lu: %s", type, h,
                  ksp_test_rv_name(rv));
    ck_assert_msg(a.ulValueLen == sizeof(CK_ULONG), "attribute 0x%lx has length %lu", type,
                  a.ulValueLen);
    return v;
}

CK_BBOOL ksp_test_get_bool(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type)
{
    CK_BBOOL v = 0x55;
    CK_ATTRIBUTE a = {type, &v, sizeof(v)};
    CK_RV rv = P11->C_GetAttributeValue(s, h, &a, 1);

    ck_assert_msg(rv == CKR_OK, "C_GetAttributeValue(0x%lx) on object %lu: %s", type, h,
                  ksp_test_rv_name(rv));
    ck_assert_msg(a.ulValueLen == 1 && (v == CK_TRUE || v == CK_FALSE),
                  "attribute 0x%lx: length %lu value %u is not a CK_BBOOL", type, a.ulValueLen, v);
    return v;
}

CK_ULONG ksp_test_find(CK_SESSION_HANDLE s, const CK_ATTRIBUTE *tmpl, CK_ULONG n,
                       CK_OBJECT_HANDLE *out, CK_ULONG max)
{
    CK_ULONG total = 0;

    KSP_ASSERT_OK(P11->C_FindObjectsInit(s, (CK_ATTRIBUTE_PTR)tmpl, n));
    for (;;) {
        CK_OBJECT_HANDLE h[16];
        CK_ULONG got = 0;

        KSP_ASSERT_OK(P11->C_FindObjects(s, h, 16, &got));
        ck_assert_msg(got <= 16, "C_FindObjects returned %lu > ulMaxObjectCount", got);
        if (got == 0) {
            break;
        }
        for (CK_ULONG i = 0; i < got; i++) {
            if (out != NULL && total < max) {
                out[total] = h[i];
            }
            total++;
        }
    }
    KSP_ASSERT_OK(P11->C_FindObjectsFinal(s));
    return total;
}

CK_ULONG ksp_test_count(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const char *label)
{
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_LABEL, (void *)label, label != NULL ? strlen(label) : 0},
    };

    return ksp_test_find(s, t, label != NULL ? 2 : 1, NULL, 0);
}

CK_OBJECT_HANDLE ksp_test_find1(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const char *label)
{
    CK_OBJECT_HANDLE h[4];
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_LABEL, (void *)label, strlen(label)},
    };
    CK_ULONG n = ksp_test_find(s, t, 2, h, 4);

    ck_assert_msg(n == 1, "%lu objects of class %lu labelled \"%s\", expected 1", n, cls, label);
    return h[0];
}

CK_OBJECT_HANDLE ksp_test_create_data(CK_SESSION_HANDLE s, const char *label, bool token,
                                      bool private_obj)
{
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL tok = token ? CK_TRUE : CK_FALSE;
    CK_BBOOL priv = private_obj ? CK_TRUE : CK_FALSE;
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},      {CKA_TOKEN, &tok, sizeof(tok)},
        {CKA_PRIVATE, &priv, sizeof(priv)},  {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_APPLICATION, "ksp11-test", 10}, {CKA_VALUE, (void *)label, strlen(label)},
    };

    KSP_ASSERT_OK(P11->C_CreateObject(s, t, 6, &h));
    ck_assert_msg(h != CK_INVALID_HANDLE, "C_CreateObject gave CK_INVALID_HANDLE");
    return h;
}

/* ---- key generation ----------------------------------------------------- */

#define MAX_TMPL 32

static CK_ULONG merge(CK_ATTRIBUTE *t, CK_ULONG n, const CK_ATTRIBUTE *extra, CK_ULONG nextra)
{
    for (CK_ULONG i = 0; i < nextra; i++) {
        CK_ULONG j;

        for (j = 0; j < n; j++) {
            if (t[j].type == extra[i].type) {
                break;
            }
        }
        ck_assert(j < MAX_TMPL);
        t[j] = extra[i];
        if (j == n) {
            n++;
        }
    }
    return n;
}

size_t ksp_test_ec_params(int nid, uint8_t *out, size_t max)
{
    ASN1_OBJECT *obj = OBJ_nid2obj(nid);
    int len;
    unsigned char *p = out;

    ck_assert_msg(obj != NULL, "unknown curve nid %d", nid);
    len = i2d_ASN1_OBJECT(obj, NULL);
    ck_assert(len > 0 && (size_t)len <= max);
    i2d_ASN1_OBJECT(obj, &p);
    return (size_t)len;
}

CK_RV ksp_test_gen_keypair(CK_SESSION_HANDLE s, CK_MECHANISM_TYPE mech, CK_ULONG bits_or_nid,
                           const char *label, bool token, const CK_ATTRIBUTE *pub_extra,
                           CK_ULONG npub, const CK_ATTRIBUTE *priv_extra, CK_ULONG npriv,
                           CK_OBJECT_HANDLE *pub, CK_OBJECT_HANDLE *priv)
{
    static CK_BBOOL yes = CK_TRUE;
    static CK_BYTE exponent[] = {0x01, 0x00, 0x01};
    CK_BBOOL tok = token ? CK_TRUE : CK_FALSE;
    CK_OBJECT_CLASS pub_cls = CKO_PUBLIC_KEY, priv_cls = CKO_PRIVATE_KEY;
    CK_KEY_TYPE kt = mech == CKM_EC_KEY_PAIR_GEN ? CKK_EC : CKK_RSA;
    CK_ULONG bits = bits_or_nid;
    uint8_t params[32];
    CK_MECHANISM m = {mech, NULL, 0};
    CK_ATTRIBUTE pt[MAX_TMPL] = {
        {CKA_CLASS, &pub_cls, sizeof(pub_cls)}, {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &tok, sizeof(tok)},         {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_VERIFY, &yes, sizeof(yes)},
    };
    CK_ATTRIBUTE vt[MAX_TMPL] = {
        {CKA_CLASS, &priv_cls, sizeof(priv_cls)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &tok, sizeof(tok)},
        {CKA_PRIVATE, &yes, sizeof(yes)},
        {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_SIGN, &yes, sizeof(yes)},
        {CKA_SENSITIVE, &yes, sizeof(yes)},
    };
    CK_ULONG np = 5, nv = 7;

    if (kt == CKK_RSA) {
        pt[np++] = (CK_ATTRIBUTE){CKA_MODULUS_BITS, &bits, sizeof(bits)};
        pt[np++] = (CK_ATTRIBUTE){CKA_PUBLIC_EXPONENT, exponent, sizeof(exponent)};
        pt[np++] = (CK_ATTRIBUTE){CKA_ENCRYPT, &yes, sizeof(yes)};
        vt[nv++] = (CK_ATTRIBUTE){CKA_DECRYPT, &yes, sizeof(yes)};
    } else {
        size_t plen = ksp_test_ec_params((int)bits_or_nid, params, sizeof(params));

        pt[np++] = (CK_ATTRIBUTE){CKA_EC_PARAMS, params, plen};
        vt[nv++] = (CK_ATTRIBUTE){CKA_DERIVE, &yes, sizeof(yes)};
    }
    np = merge(pt, np, pub_extra, npub);
    nv = merge(vt, nv, priv_extra, npriv);
    return P11->C_GenerateKeyPair(s, &m, pt, np, vt, nv, pub, priv);
}

void ksp_test_gen_rsa(CK_SESSION_HANDLE s, CK_ULONG bits, const char *label, bool token,
                      CK_OBJECT_HANDLE *pub, CK_OBJECT_HANDLE *priv)
{
    CK_RV rv = ksp_test_gen_keypair(s, CKM_RSA_PKCS_KEY_PAIR_GEN, bits, label, token, NULL, 0, NULL,
                                    0, pub, priv);

    ck_assert_msg(rv == CKR_OK, "C_GenerateKeyPair RSA-%lu \"%s\": %s", bits, label,
                  ksp_test_rv_name(rv));
}

void ksp_test_gen_ec(CK_SESSION_HANDLE s, int nid, const char *label, bool token,
                     CK_OBJECT_HANDLE *pub, CK_OBJECT_HANDLE *priv)
{
    CK_RV rv = ksp_test_gen_keypair(s, CKM_EC_KEY_PAIR_GEN, (CK_ULONG)nid, label, token, NULL, 0,
                                    NULL, 0, pub, priv);

    ck_assert_msg(rv == CKR_OK, "C_GenerateKeyPair EC %s \"%s\": %s", OBJ_nid2sn(nid), label,
                  ksp_test_rv_name(rv));
}

/* ---- OpenSSL side ------------------------------------------------------- */

const EVP_MD *ksp_test_md(CK_MECHANISM_TYPE mech)
{
    switch (mech) {
    case CKM_SHA_1:
    case CKM_SHA1_RSA_PKCS:
    case CKM_SHA1_RSA_PKCS_PSS:
    case CKM_ECDSA_SHA1:
        return EVP_sha1();
    case CKM_SHA224:
    case CKM_SHA224_RSA_PKCS:
    case CKM_SHA224_RSA_PKCS_PSS:
    case CKM_ECDSA_SHA224:
        return EVP_sha224();
    case CKM_SHA256:
    case CKM_SHA256_RSA_PKCS:
    case CKM_SHA256_RSA_PKCS_PSS:
    case CKM_ECDSA_SHA256:
        return EVP_sha256();
    case CKM_SHA384:
    case CKM_SHA384_RSA_PKCS:
    case CKM_SHA384_RSA_PKCS_PSS:
    case CKM_ECDSA_SHA384:
        return EVP_sha384();
    case CKM_SHA512:
    case CKM_SHA512_RSA_PKCS:
    case CKM_SHA512_RSA_PKCS_PSS:
    case CKM_ECDSA_SHA512:
        return EVP_sha512();
    default:
        return NULL;
    }
}

size_t ksp_test_digest(CK_MECHANISM_TYPE mech, const uint8_t *in, size_t len, uint8_t *out)
{
    unsigned int n = 0;
    const EVP_MD *md = ksp_test_md(mech);

    ck_assert_msg(md != NULL, "no digest for %s", ksp_test_mech_name(mech));
    ck_assert(EVP_Digest(in, len, out, &n, md, NULL) == 1);
    return n;
}

static const char fixed_rsa_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDGKg1Xmfuv7NUa\n"
    "5dvEb+A6JYNGEstWvf0Ij9EboqCDbayOrn1S5WPynzSo8Rfp/vdSGWWxiXfh7+SS\n"
    "w6r1QAkyobhp2Rz5LgrCAVkQCXVvPLKSTm3tEc1PntZ2uiKbGIcUdeEAX9aHLuVP\n"
    "Jc2JppQJKsGu4IXaljbzol05C1znrBCc53gL2mafjE44W7WTEy0LdSl/gmypv5uE\n"
    "meaD1aUDGk032e0Engr2tujU2apoC0h7sVUY0GsWZDIMyuYgTSR9HjYzlO4isQX6\n"
    "60rtEX3uWWhRXR8aFa3MBlZexYl4S+mlAfzEuN25OUuRz1Pq/8SKNW7LXCka4T16\n"
    "d8e/OXmfAgMBAAECggEAPXPCAnYOjo5nwbkhb2fwRafnbz4Zz7MIOnT6+FJ0630B\n"
    "45dp5uCbH5zOhEuLynVWdh/JIQbL5gVyQS8rn3V1xL1RBoYdTYrBLEultmrwf4f3\n"
    "qpZm0XtRS40q3dO4MpenICm0Fl0iFnbtBp/m/vZo9vTK7nPTHqexr9kchrmm3HK8\n"
    "CI0Qpez+S94Q+sBeeIjgwpHrvqcrNL4f+88iLVj/GwTV3U/cHSFMD7f5LZ2rWOZO\n"
    "vUSiVLQ0o8HlWBnniDAY+nDOCVUPacRm9fDsgm6rUD/BaLX09yoKniRjByVJtWwO\n"
    "RIIDWiIsKs03+DwxECeZ5O/baoeJzZfzPTKuqp3YlQKBgQDxLHMTMvrwDUezGEkE\n"
    "0AjFY6XYNIZXV2v6cyRmu7nkKuwZkpyzyH++cJydnN/BHpAcuy/TPa8ejZjosF8x\n"
    "/PcJeXdIrYT09S8j34z51chV8/V7PF9ffeoE2JOYFYG24ozbjTmogpUt8ZWTTDhq\n"
    "crq4RhVTgNHO4JVIOf56ZERoHQKBgQDSWLp24pbRWRhmvWCARHtOx0+P9vMquuPs\n"
    "N+Hj3Y7B+Lx6WK0hME98IZWLDivRb2Z0YYtX+1T6IU8hWvgRgBS4+iUF3toot9xT\n"
    "6OWNACTp5GV60MPpGb+zQJzhxpZfvgNhjHBwxkFCRLC3OhfoD5r4/+nc2L8WuqFm\n"
    "iM8PJrbT6wKBgC89WqkHEloU79dnyV209hLb6u9HkoznJdJf3WB2IvpLYgW8Tw90\n"
    "FXmTC0pgIP/t4aKPE9YXvgaJC8uASJU9DJKBhVjqDCIDKKGpNy70rhIQACSMdc35\n"
    "lu4uEfL3O3o8NAUJS6LzOQ9Pw9GfW2mWYXaY27KIiBAys2r7WRpWK4QNAoGACLhu\n"
    "+pDISeOUtGWzg33TUt/Gd6R4TlQzMM7cSZMc4QPL5JKakt6q3O2TgpFS1br1l2uX\n"
    "2EzuJ/SLkElyMV+K/GQ6drTXfIqq0ru8EI1p+lxirKXNCXPs06ShHGccQtng0AF/\n"
    "g91kRTgNz3rUFOXYuev6KRK/UVTpbhPL6cfkGoMCgYEAkMKvKxwrgNYoGX5LChiH\n"
    "vAhP/K+OWxhRPUtQZaV6a79hdJqjEmiOmShCm+/QtGvjtaHYzmVnkF0KW1buEZ/Z\n"
    "gxBCZj84uHUe5wfcaFz/ggOLB2oJauyNWjY2H8V9wey686OpvQn8qtoCVYa4LTEd\n"
    "ZRwhvS5XNlG1RU+2X3Vx6iA=\n"
    "-----END PRIVATE KEY-----\n";

static const char fixed_ec_pem[] =
    "-----BEGIN PRIVATE KEY-----\n"
    "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgbsyz/1x1LfX9BMgc\n"
    "42A7A+7UkkcL8QXTAoUS+dINki+hRANCAASvuwLuxFaKLfzpDgi4YgEqYU6vloZn\n"
    "Wtt3smvJvTBSY2REfKgG1cbVuVIWgEj1+4WfDzdLeDi/2O9GO3T3Ul6U\n"
    "-----END PRIVATE KEY-----\n";

EVP_PKEY *ksp_test_fixed_key(int type)
{
    const char *pem = type == EVP_PKEY_RSA ? fixed_rsa_pem : fixed_ec_pem;
    BIO *bio = BIO_new_mem_buf(pem, -1);
    EVP_PKEY *pk;

    ck_assert(bio != NULL);
    pk = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    ck_assert_msg(pk != NULL, "cannot parse the fixed test key");
    return pk;
}

size_t ksp_test_der_octet(const uint8_t *in, size_t len, uint8_t *out, size_t max)
{
    size_t hdr = len < 128 ? 2 : (len < 256 ? 3 : 4);

    ck_assert(len < 65536 && len + hdr <= max);
    out[0] = 0x04;
    if (len < 128) {
        out[1] = (uint8_t)len;
    } else if (len < 256) {
        out[1] = 0x81;
        out[2] = (uint8_t)len;
    } else {
        out[1] = 0x82;
        out[2] = (uint8_t)(len >> 8);
        out[3] = (uint8_t)len;
    }
    memcpy(out + hdr, in, len);
    return hdr + len;
}

size_t ksp_test_ec_point(EVP_PKEY *pk, uint8_t *out, size_t max)
{
    size_t len = 0;

    ck_assert(EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_PUB_KEY, out, max, &len) == 1);
    return len;
}

static EVP_PKEY *pkey_fromdata(const char *alg, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, alg, NULL);
    EVP_PKEY *pk = NULL;

    ck_assert(params != NULL && ctx != NULL);
    ck_assert(EVP_PKEY_fromdata_init(ctx) == 1);
    if (EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        pk = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pk;
}

EVP_PKEY *ksp_test_ossl_pubkey(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h)
{
    CK_KEY_TYPE kt = ksp_test_get_ulong(s, h, CKA_KEY_TYPE);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pk = NULL;
    uint8_t *a = NULL, *b = NULL;
    CK_ULONG alen = 0, blen = 0;
    CK_RV rv;

    ck_assert(bld != NULL);
    if (kt == CKK_RSA) {
        BIGNUM *n, *e;

        rv = ksp_test_get_attr(s, h, CKA_MODULUS, &a, &alen);
        ck_assert_msg(rv == CKR_OK, "CKA_MODULUS: %s", ksp_test_rv_name(rv));
        rv = ksp_test_get_attr(s, h, CKA_PUBLIC_EXPONENT, &b, &blen);
        ck_assert_msg(rv == CKR_OK, "CKA_PUBLIC_EXPONENT: %s", ksp_test_rv_name(rv));
        n = BN_bin2bn(a, (int)alen, NULL);
        e = BN_bin2bn(b, (int)blen, NULL);
        ck_assert(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) == 1);
        ck_assert(OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) == 1);
        pk = pkey_fromdata("RSA", bld);
        BN_free(n);
        BN_free(e);
    } else {
        const unsigned char *p;
        ASN1_OBJECT *oid;
        ASN1_OCTET_STRING *pt;
        const char *group;

        ck_assert_msg(kt == CKK_EC, "key type %lu is neither RSA nor EC", kt);
        rv = ksp_test_get_attr(s, h, CKA_EC_PARAMS, &a, &alen);
        ck_assert_msg(rv == CKR_OK, "CKA_EC_PARAMS: %s", ksp_test_rv_name(rv));
        rv = ksp_test_get_attr(s, h, CKA_EC_POINT, &b, &blen);
        ck_assert_msg(rv == CKR_OK, "CKA_EC_POINT: %s", ksp_test_rv_name(rv));
        p = a;
        oid = d2i_ASN1_OBJECT(NULL, &p, (long)alen);
        ck_assert_msg(oid != NULL && p == a + alen, "CKA_EC_PARAMS is not a DER OID");
        group = OBJ_nid2sn(OBJ_obj2nid(oid));
        ASN1_OBJECT_free(oid);
        ck_assert_msg(group != NULL, "CKA_EC_PARAMS names an unknown curve");
        p = b;
        pt = d2i_ASN1_OCTET_STRING(NULL, &p, (long)blen);
        ck_assert_msg(pt != NULL && p == b + blen,
                      "CKA_EC_POINT is not a DER OCTET STRING (PKCS#11 3.0 §2.3.3)");
        ck_assert(OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) == 1);
        ck_assert(OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY,
                                                   ASN1_STRING_get0_data(pt),
                                                   (size_t)ASN1_STRING_length(pt)) == 1);
        pk = pkey_fromdata("EC", bld);
        ASN1_OCTET_STRING_free(pt);
    }
    free(a);
    free(b);
    OSSL_PARAM_BLD_free(bld);
    ck_assert_msg(pk != NULL, "OpenSSL refuses the public key of object %lu", h);
    return pk;
}

/* PKCS#11 ECDSA signatures are r || s; OpenSSL wants DER. */
static size_t ecdsa_to_der(const uint8_t *sig, size_t len, uint8_t *out, size_t max)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, (int)(len / 2), NULL);
    BIGNUM *s = BN_bin2bn(sig + len / 2, (int)(len / 2), NULL);
    unsigned char *p = out;
    int n;

    ck_assert(es != NULL && r != NULL && s != NULL);
    ECDSA_SIG_set0(es, r, s);
    n = i2d_ECDSA_SIG(es, NULL);
    ck_assert(n > 0 && (size_t)n <= max);
    i2d_ECDSA_SIG(es, &p);
    ECDSA_SIG_free(es);
    return (size_t)n;
}

static const EVP_MD *mgf_md(CK_RSA_PKCS_MGF_TYPE mgf)
{
    switch (mgf) {
    case CKG_MGF1_SHA1:
        return EVP_sha1();
    case CKG_MGF1_SHA224:
        return EVP_sha224();
    case CKG_MGF1_SHA256:
        return EVP_sha256();
    case CKG_MGF1_SHA384:
        return EVP_sha384();
    case CKG_MGF1_SHA512:
        return EVP_sha512();
    default:
        return NULL;
    }
}

/* PSS as PKCS#11 defines it, verified strictly: salt length must equal sLen. */
static bool set_pss(EVP_PKEY_CTX *pctx, const CK_MECHANISM *mech)
{
    const CK_RSA_PKCS_PSS_PARAMS *pp = mech->pParameter;

    if (pp == NULL || mech->ulParameterLen != sizeof(*pp) || mgf_md(pp->mgf) == NULL) {
        return false;
    }
    return EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
           EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, mgf_md(pp->mgf)) == 1 &&
           EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, (int)pp->sLen) == 1;
}

bool ksp_test_ossl_verify(EVP_PKEY *pk, const CK_MECHANISM *mech, const uint8_t *data, size_t len,
                          const uint8_t *sig, size_t siglen)
{
    CK_MECHANISM_TYPE m = mech->mechanism;
    const EVP_MD *md = ksp_test_md(m);
    bool ec = EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC;
    uint8_t der[256];
    uint8_t rec[1024];
    bool ok = false;

    if (ec) {
        if (siglen == 0 || siglen % 2 != 0) {
            return false;
        }
        siglen = ecdsa_to_der(sig, siglen, der, sizeof(der));
        sig = der;
    }
    if (md != NULL) {
        /* Hash-and-sign mechanisms. */
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        EVP_PKEY_CTX *pctx = NULL;

        ck_assert(ctx != NULL);
        ck_assert(EVP_DigestVerifyInit(ctx, &pctx, md, NULL, pk) == 1);
        if (!ec && (m == CKM_SHA1_RSA_PKCS_PSS || m == CKM_SHA224_RSA_PKCS_PSS ||
                    m == CKM_SHA256_RSA_PKCS_PSS || m == CKM_SHA384_RSA_PKCS_PSS ||
                    m == CKM_SHA512_RSA_PKCS_PSS)) {
            ck_assert_msg(set_pss(pctx, mech), "bad PSS parameters given to the verifier");
        }
        ok = EVP_DigestVerify(ctx, sig, siglen, data, len) == 1;
        EVP_MD_CTX_free(ctx);
        return ok;
    }

    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new(pk, NULL);

    ck_assert(pctx != NULL);
    if (m == CKM_RSA_X_509) {
        size_t rlen = sizeof(rec);
        size_t k = (size_t)EVP_PKEY_get_size(pk);

        ck_assert(EVP_PKEY_verify_recover_init(pctx) == 1);
        ck_assert(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_NO_PADDING) == 1);
        if (len <= k && EVP_PKEY_verify_recover(pctx, rec, &rlen, sig, siglen) == 1 && rlen == k) {
            /* Raw RSA: the input is taken as a big-endian number. */
            ok = true;
            for (size_t i = 0; i < k - len; i++) {
                ok = ok && rec[i] == 0;
            }
            ok = ok && memcmp(rec + (k - len), data, len) == 0;
        }
    } else {
        ck_assert(EVP_PKEY_verify_init(pctx) == 1);
        if (m == CKM_RSA_PKCS_PSS) {
            const CK_RSA_PKCS_PSS_PARAMS *pp = mech->pParameter;

            ck_assert(pp != NULL);
            ck_assert(EVP_PKEY_CTX_set_signature_md(pctx, ksp_test_md(pp->hashAlg)) == 1);
            ck_assert_msg(set_pss(pctx, mech), "bad PSS parameters given to the verifier");
        } else if (m == CKM_RSA_PKCS) {
            /* No digest set: OpenSSL compares the recovered DigestInfo. */
            ck_assert(EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1);
        } else {
            ck_assert_msg(m == CKM_ECDSA, "no OpenSSL check for %s", ksp_test_mech_name(m));
        }
        ok = EVP_PKEY_verify(pctx, sig, siglen, data, len) == 1;
    }
    EVP_PKEY_CTX_free(pctx);
    return ok;
}

/* ---- importing keys ----------------------------------------------------- */

struct bnattr {
    CK_ATTRIBUTE_TYPE type;
    const char *param;
};

static const struct bnattr rsa_priv_bns[] = {
    {CKA_MODULUS, OSSL_PKEY_PARAM_RSA_N},
    {CKA_PUBLIC_EXPONENT, OSSL_PKEY_PARAM_RSA_E},
    {CKA_PRIVATE_EXPONENT, OSSL_PKEY_PARAM_RSA_D},
    {CKA_PRIME_1, OSSL_PKEY_PARAM_RSA_FACTOR1},
    {CKA_PRIME_2, OSSL_PKEY_PARAM_RSA_FACTOR2},
    {CKA_EXPONENT_1, OSSL_PKEY_PARAM_RSA_EXPONENT1},
    {CKA_EXPONENT_2, OSSL_PKEY_PARAM_RSA_EXPONENT2},
    {CKA_COEFFICIENT, OSSL_PKEY_PARAM_RSA_COEFFICIENT1},
};

static CK_RV import_key(CK_SESSION_HANDLE s, EVP_PKEY *pk, bool private_key, const char *label,
                        bool token, const CK_ATTRIBUTE *extra, CK_ULONG nextra,
                        CK_OBJECT_HANDLE *out)
{
    static CK_BBOOL yes = CK_TRUE;
    CK_OBJECT_CLASS cls = private_key ? CKO_PRIVATE_KEY : CKO_PUBLIC_KEY;
    bool ec = EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC;
    CK_KEY_TYPE kt = ec ? CKK_EC : CKK_RSA;
    CK_BBOOL tok = token ? CK_TRUE : CK_FALSE;
    CK_ATTRIBUTE t[MAX_TMPL] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &tok, sizeof(tok)},
        {CKA_LABEL, (void *)label, strlen(label)},
    };
    CK_ULONG n = 4;
    uint8_t bufs[8][600];
    uint8_t params[32], point[160], der_point[170];
    CK_RV rv;

    if (private_key) {
        t[n++] = (CK_ATTRIBUTE){CKA_PRIVATE, &yes, sizeof(yes)};
        t[n++] = (CK_ATTRIBUTE){CKA_SIGN, &yes, sizeof(yes)};
        t[n++] = (CK_ATTRIBUTE){ec ? CKA_DERIVE : CKA_DECRYPT, &yes, sizeof(yes)};
    } else {
        t[n++] = (CK_ATTRIBUTE){CKA_VERIFY, &yes, sizeof(yes)};
        if (!ec) {
            t[n++] = (CK_ATTRIBUTE){CKA_ENCRYPT, &yes, sizeof(yes)};
        }
    }
    if (ec) {
        char group[64];
        int nid;

        ck_assert(EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group,
                                                 sizeof(group), NULL) == 1);
        nid = OBJ_sn2nid(group);
        if (nid == NID_undef) {
            nid = EC_curve_nist2nid(group);
        }
        t[n++] =
            (CK_ATTRIBUTE){CKA_EC_PARAMS, params, ksp_test_ec_params(nid, params, sizeof(params))};
        if (private_key) {
            BIGNUM *d = NULL;
            int bytes = (EVP_PKEY_get_bits(pk) + 7) / 8;

            ck_assert(EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_PRIV_KEY, &d) == 1);
            ck_assert(BN_bn2binpad(d, bufs[0], bytes) == bytes);
            BN_clear_free(d);
            t[n++] = (CK_ATTRIBUTE){CKA_VALUE, bufs[0], (CK_ULONG)bytes};
        } else {
            size_t plen = ksp_test_ec_point(pk, point, sizeof(point));

            t[n++] = (CK_ATTRIBUTE){CKA_EC_POINT, der_point,
                                    ksp_test_der_octet(point, plen, der_point, sizeof(der_point))};
        }
    } else {
        size_t count = private_key ? 8 : 2;

        for (size_t i = 0; i < count; i++) {
            BIGNUM *bn = NULL;
            int len;

            ck_assert(EVP_PKEY_get_bn_param(pk, rsa_priv_bns[i].param, &bn) == 1);
            len = BN_bn2bin(bn, bufs[i]);
            BN_clear_free(bn);
            t[n++] = (CK_ATTRIBUTE){rsa_priv_bns[i].type, bufs[i], (CK_ULONG)len};
        }
    }
    n = merge(t, n, extra, nextra);
    rv = P11->C_CreateObject(s, t, n, out);
    OPENSSL_cleanse(bufs, sizeof(bufs));
    return rv;
}

CK_RV ksp_test_import_private_rv(CK_SESSION_HANDLE s, EVP_PKEY *pk, const char *label, bool token,
                                 const CK_ATTRIBUTE *extra, CK_ULONG n, CK_OBJECT_HANDLE *out)
{
    return import_key(s, pk, true, label, token, extra, n, out);
}

CK_OBJECT_HANDLE ksp_test_import_private(CK_SESSION_HANDLE s, EVP_PKEY *pk, const char *label,
                                         bool token, const CK_ATTRIBUTE *extra, CK_ULONG n)
{
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    CK_RV rv = import_key(s, pk, true, label, token, extra, n, &h);

    ck_assert_msg(rv == CKR_OK, "C_CreateObject(private key \"%s\"): %s", label,
                  ksp_test_rv_name(rv));
    return h;
}

CK_OBJECT_HANDLE ksp_test_import_public(CK_SESSION_HANDLE s, EVP_PKEY *pk, const char *label,
                                        bool token, const CK_ATTRIBUTE *extra, CK_ULONG n)
{
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    CK_RV rv = import_key(s, pk, false, label, token, extra, n, &h);

    ck_assert_msg(rv == CKR_OK, "C_CreateObject(public key \"%s\"): %s", label,
                  ksp_test_rv_name(rv));
    return h;
}

/* ---- processes ---------------------------------------------------------- */

int ksp_test_fork(int (*fn)(void *), void *arg)
{
    int status = 0;
    pid_t pid;

    fflush(NULL);
    pid = fork();
    ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
    if (pid == 0) {
        /* _exit: the child must not run the parent's atexit handlers. */
        _exit(fn(arg));
    }
    while (waitpid(pid, &status, 0) < 0) {
        ck_assert_msg(errno == EINTR, "waitpid: %s", strerror(errno));
    }
    if (WIFSIGNALED(status)) {
        return 128 + WTERMSIG(status);
    }
    return WEXITSTATUS(status);
}
