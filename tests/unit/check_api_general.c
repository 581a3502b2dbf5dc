/*
 * API suite, general and slot/token functions (PKCS#11 3.0 §5.4-§5.5):
 * function lists and interfaces, C_Initialize/C_Finalize variants, C_GetInfo,
 * slots, tokens, C_InitToken, mechanisms, and fork. Drives the built module
 * through dlopen (testlib.c).
 */
#include "testlib.h"

#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/obj_mac.h>

#define BAD_SLOT ((CK_SLOT_ID)0x7ffffff0UL)

/* Every 2.40 function pointer of a list must be set. */
static void assert_full_list(const CK_FUNCTION_LIST *fl, size_t size, const char *what)
{
    size_t first = offsetof(CK_FUNCTION_LIST, C_Initialize);
    size_t n = (size - first) / sizeof(ksp_fn_generic);

    for (size_t i = 0; i < n; i++) {
        ksp_fn_generic fn;

        memcpy(&fn, (const char *)fl + first + i * sizeof(fn), sizeof(fn));
        ck_assert_msg(fn != NULL, "%s: function pointer #%zu is NULL", what, i);
    }
}

/*
 * Calls every 2.40 function except C_Initialize/C_GetFunctionList with
 * well-formed arguments and checks that each returns want. Returns 0, or 1
 * with a description in why. No ck_assert: also used in forked children.
 */
static int sweep(CK_FUNCTION_LIST *fl, CK_RV want, char *why, size_t whylen)
{
    CK_SLOT_ID slot = 0, slots[4];
    CK_ULONG n = 4, len = 64;
    CK_INFO info;
    CK_SLOT_INFO si;
    CK_TOKEN_INFO ti;
    CK_MECHANISM_INFO mi;
    CK_MECHANISM_TYPE mechs[4];
    CK_SESSION_INFO ssi;
    CK_SESSION_HANDLE s = 1;
    CK_OBJECT_HANDLE h = 1, h2 = 0;
    CK_BYTE buf[64], out[64];
    CK_BYTE label[32];
    CK_ULONG outlen = sizeof(out);
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_ATTRIBUTE attr = {CKA_CLASS, &cls, sizeof(cls)};
    CK_MECHANISM mech = {CKM_SHA256, NULL, 0};
    CK_MECHANISM kg = {CKM_EC_KEY_PAIR_GEN, NULL, 0};

    memset(buf, 0x11, sizeof(buf));
    memset(label, ' ', sizeof(label));
#define EXPECT(call)                                                                               \
    do {                                                                                           \
        CK_RV r_ = (call);                                                                         \
        outlen = sizeof(out);                                                                      \
        n = 4;                                                                                     \
        if (r_ != want) {                                                                          \
            snprintf(why, whylen, "%s returned %s, expected %s", #call, ksp_test_rv_name(r_),      \
                     ksp_test_rv_name(want));                                                      \
            return 1;                                                                              \
        }                                                                                          \
    } while (0)
    EXPECT(fl->C_GetInfo(&info));
    EXPECT(fl->C_GetSlotList(CK_FALSE, slots, &n));
    EXPECT(fl->C_GetSlotInfo(slot, &si));
    EXPECT(fl->C_GetTokenInfo(slot, &ti));
    EXPECT(fl->C_GetMechanismList(slot, mechs, &n));
    EXPECT(fl->C_GetMechanismInfo(slot, CKM_SHA256, &mi));
    EXPECT(fl->C_InitToken(slot, (CK_UTF8CHAR_PTR)KSP_TEST_SO_PIN, 8, label));
    EXPECT(fl->C_InitPIN(s, (CK_UTF8CHAR_PTR) "1234", 4));
    EXPECT(fl->C_SetPIN(s, (CK_UTF8CHAR_PTR) "1234", 4, (CK_UTF8CHAR_PTR) "5678", 4));
    EXPECT(fl->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s));
    EXPECT(fl->C_CloseSession(s));
    EXPECT(fl->C_CloseAllSessions(slot));
    EXPECT(fl->C_GetSessionInfo(s, &ssi));
    EXPECT(fl->C_GetOperationState(s, out, &outlen));
    EXPECT(fl->C_SetOperationState(s, buf, 16, 0, 0));
    EXPECT(fl->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR) "1234", 4));
    EXPECT(fl->C_Logout(s));
    EXPECT(fl->C_CreateObject(s, &attr, 1, &h2));
    EXPECT(fl->C_CopyObject(s, h, &attr, 1, &h2));
    EXPECT(fl->C_DestroyObject(s, h));
    EXPECT(fl->C_GetObjectSize(s, h, &len));
    EXPECT(fl->C_GetAttributeValue(s, h, &attr, 1));
    EXPECT(fl->C_SetAttributeValue(s, h, &attr, 1));
    EXPECT(fl->C_FindObjectsInit(s, &attr, 1));
    EXPECT(fl->C_FindObjects(s, &h2, 1, &n));
    EXPECT(fl->C_FindObjectsFinal(s));
    EXPECT(fl->C_EncryptInit(s, &mech, h));
    EXPECT(fl->C_Encrypt(s, buf, 16, out, &outlen));
    EXPECT(fl->C_EncryptUpdate(s, buf, 16, out, &outlen));
    EXPECT(fl->C_EncryptFinal(s, out, &outlen));
    EXPECT(fl->C_DecryptInit(s, &mech, h));
    EXPECT(fl->C_Decrypt(s, buf, 16, out, &outlen));
    EXPECT(fl->C_DecryptUpdate(s, buf, 16, out, &outlen));
    EXPECT(fl->C_DecryptFinal(s, out, &outlen));
    EXPECT(fl->C_DigestInit(s, &mech));
    EXPECT(fl->C_Digest(s, buf, 16, out, &outlen));
    EXPECT(fl->C_DigestUpdate(s, buf, 16));
    EXPECT(fl->C_DigestKey(s, h));
    EXPECT(fl->C_DigestFinal(s, out, &outlen));
    EXPECT(fl->C_SignInit(s, &mech, h));
    EXPECT(fl->C_Sign(s, buf, 16, out, &outlen));
    EXPECT(fl->C_SignUpdate(s, buf, 16));
    EXPECT(fl->C_SignFinal(s, out, &outlen));
    EXPECT(fl->C_SignRecoverInit(s, &mech, h));
    EXPECT(fl->C_SignRecover(s, buf, 16, out, &outlen));
    EXPECT(fl->C_VerifyInit(s, &mech, h));
    EXPECT(fl->C_Verify(s, buf, 16, buf, 16));
    EXPECT(fl->C_VerifyUpdate(s, buf, 16));
    EXPECT(fl->C_VerifyFinal(s, buf, 16));
    EXPECT(fl->C_VerifyRecoverInit(s, &mech, h));
    EXPECT(fl->C_VerifyRecover(s, buf, 16, out, &outlen));
    EXPECT(fl->C_DigestEncryptUpdate(s, buf, 16, out, &outlen));
    EXPECT(fl->C_DecryptDigestUpdate(s, buf, 16, out, &outlen));
    EXPECT(fl->C_SignEncryptUpdate(s, buf, 16, out, &outlen));
    EXPECT(fl->C_DecryptVerifyUpdate(s, buf, 16, out, &outlen));
    EXPECT(fl->C_GenerateKey(s, &kg, &attr, 1, &h2));
    EXPECT(fl->C_GenerateKeyPair(s, &kg, &attr, 1, &attr, 1, &h2, &h2));
    EXPECT(fl->C_WrapKey(s, &mech, h, h, out, &outlen));
    EXPECT(fl->C_UnwrapKey(s, &mech, h, buf, 16, &attr, 1, &h2));
    EXPECT(fl->C_DeriveKey(s, &mech, h, &attr, 1, &h2));
    EXPECT(fl->C_SeedRandom(s, buf, 16));
    EXPECT(fl->C_GenerateRandom(s, out, 16));
    EXPECT(fl->C_GetFunctionStatus(s));
    EXPECT(fl->C_CancelFunction(s));
    EXPECT(fl->C_WaitForSlotEvent(CKF_DONT_BLOCK, &slot, NULL));
    EXPECT(fl->C_Finalize(NULL));
#undef EXPECT
    return 0;
}

static const char *iface_name(const CK_INTERFACE *i)
{
    return (const char *)i->pInterfaceName;
}

static CK_VERSION iface_version(const CK_INTERFACE *i)
{
    return ((const CK_FUNCTION_LIST *)i->pFunctionList)->version;
}

/* ---- entry points, before C_Initialize ------------------------------------ */

START_TEST(test_function_list)
{
    CK_C_GetFunctionList get = (CK_C_GetFunctionList)ksp_test_sym("C_GetFunctionList");
    CK_FUNCTION_LIST *fl = NULL;

    ck_assert(get != NULL);
    KSP_ASSERT_RV(get(NULL), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_OK(get(&fl));
    ck_assert_ptr_nonnull(fl);
    /* The C_GetFunctionList list is the 2.40 one (behaviour: CK_INFO 2.40). */
    ck_assert_msg(fl->version.major == 2 && fl->version.minor == 40,
                  "C_GetFunctionList version %u.%u, expected 2.40", fl->version.major,
                  fl->version.minor);
    assert_full_list(fl, sizeof(*fl), "C_GetFunctionList");
    /* Nothing but the three entry points is exported. */
    ck_assert_ptr_null(ksp_test_sym("C_Initialize"));
    ck_assert_ptr_null(ksp_test_sym("C_Sign"));
}
END_TEST

START_TEST(test_interface_list)
{
    CK_C_GetInterfaceList list = (CK_C_GetInterfaceList)ksp_test_sym("C_GetInterfaceList");
    CK_INTERFACE ifs[4];
    CK_ULONG n = 0;
    CK_VERSION v;

    ck_assert_msg(list != NULL, "C_GetInterfaceList is not exported");
    KSP_ASSERT_RV(list(NULL, NULL), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_OK(list(NULL, &n));
    ck_assert_uint_eq(n, 3);
    n = 1;
    KSP_ASSERT_RV(list(ifs, &n), CKR_BUFFER_TOO_SMALL);
    ck_assert_msg(n == 3, "CKR_BUFFER_TOO_SMALL must set the count (got %lu)", n);
    n = 4;
    KSP_ASSERT_OK(list(ifs, &n));
    ck_assert_uint_eq(n, 3);
    /* The vendor interface comes last (include/ksp11/ksp11.h). */
    ck_assert_str_eq(iface_name(&ifs[2]), "Vendor ksp11");
    v = iface_version(&ifs[2]);
    /* 1.1 added C_KSP11_AttestKey. */
    ck_assert_msg(v.major == 1 && v.minor == 1, "vendor interface %u.%u, expected 1.1", v.major,
                  v.minor);
    for (int i = 0; i < 2; i++) {
        ck_assert_ptr_nonnull(ifs[i].pInterfaceName);
        ck_assert_str_eq(iface_name(&ifs[i]), "PKCS 11");
        ck_assert_ptr_nonnull(ifs[i].pFunctionList);
    }
    v = iface_version(&ifs[0]);
    ck_assert_msg(v.major == 3 && v.minor == 0, "first interface is %u.%u, expected 3.0", v.major,
                  v.minor);
    v = iface_version(&ifs[1]);
    ck_assert_msg(v.major == 2 && v.minor == 40, "second interface is %u.%u, expected 2.40",
                  v.major, v.minor);
    assert_full_list(ifs[0].pFunctionList, sizeof(CK_FUNCTION_LIST_3_0), "3.0 interface");
    assert_full_list(ifs[1].pFunctionList, sizeof(CK_FUNCTION_LIST), "2.40 interface");
}
END_TEST

START_TEST(test_get_interface)
{
    CK_C_GetInterface get = (CK_C_GetInterface)ksp_test_sym("C_GetInterface");
    CK_INTERFACE *i = NULL;
    CK_VERSION v240 = {2, 40}, v30 = {3, 0}, v99 = {9, 9};
    CK_VERSION v;

    ck_assert_msg(get != NULL, "C_GetInterface is not exported");
    KSP_ASSERT_RV(get(NULL, NULL, NULL, 0), CKR_ARGUMENTS_BAD);

    KSP_ASSERT_OK(get(NULL, NULL, &i, 0));
    ck_assert_ptr_nonnull(i);
    ck_assert_str_eq(iface_name(i), "PKCS 11");
    v = iface_version(i);
    ck_assert_msg(v.major == 3 && v.minor == 0, "default interface %u.%u, expected 3.0", v.major,
                  v.minor);

    i = NULL;
    KSP_ASSERT_OK(get((CK_UTF8CHAR_PTR) "PKCS 11", NULL, &i, 0));
    v = iface_version(i);
    ck_assert_msg(v.major == 3 && v.minor == 0, "\"PKCS 11\" default %u.%u, expected 3.0", v.major,
                  v.minor);

    i = NULL;
    KSP_ASSERT_OK(get((CK_UTF8CHAR_PTR) "PKCS 11", &v240, &i, 0));
    v = iface_version(i);
    ck_assert_msg(v.major == 2 && v.minor == 40, "asked 2.40, got %u.%u", v.major, v.minor);

    i = NULL;
    KSP_ASSERT_OK(get((CK_UTF8CHAR_PTR) "PKCS 11", &v30, &i, 0));
    v = iface_version(i);
    ck_assert_msg(v.major == 3 && v.minor == 0, "asked 3.0, got %u.%u", v.major, v.minor);

    /* PKCS#11 3.0 §5.4: no match; the listed codes leave only these two. */
    i = NULL;
    KSP_ASSERT_RV2(get((CK_UTF8CHAR_PTR) "Vendor X", NULL, &i, 0), CKR_ARGUMENTS_BAD,
                   CKR_FUNCTION_FAILED);
    ck_assert_ptr_null(i);
    KSP_ASSERT_RV2(get((CK_UTF8CHAR_PTR) "PKCS 11", &v99, &i, 0), CKR_ARGUMENTS_BAD,
                   CKR_FUNCTION_FAILED);
    ck_assert_ptr_null(i);
}
END_TEST

START_TEST(test_not_initialized)
{
    char why[256] = "";

    ck_assert_msg(sweep(P11, CKR_CRYPTOKI_NOT_INITIALIZED, why, sizeof(why)) == 0,
                  "before C_Initialize: %s", why);
    /* And again after an initialize/finalize cycle. */
    ksp_test_initialize();
    ksp_test_finalize();
    ck_assert_msg(sweep(P11, CKR_CRYPTOKI_NOT_INITIALIZED, why, sizeof(why)) == 0,
                  "after C_Finalize: %s", why);
}
END_TEST

START_TEST(test_initialize_finalize)
{
    CK_INFO info;
    int dummy = 0;

    KSP_ASSERT_OK(P11->C_Initialize(NULL));
    ksp_t.initialized = true;
    KSP_ASSERT_RV(P11->C_Initialize(NULL), CKR_CRYPTOKI_ALREADY_INITIALIZED);
    KSP_ASSERT_OK(P11->C_GetInfo(&info));
    /* PKCS#11 3.0 §5.4: pReserved of C_Finalize must be NULL. */
    KSP_ASSERT_RV(P11->C_Finalize(&dummy), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_OK(P11->C_GetInfo(&info));
    KSP_ASSERT_OK(P11->C_Finalize(NULL));
    ksp_t.initialized = false;
    KSP_ASSERT_RV(P11->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);
    KSP_ASSERT_RV(P11->C_GetInfo(&info), CKR_CRYPTOKI_NOT_INITIALIZED);
    KSP_ASSERT_OK(P11->C_Initialize(NULL));
    ksp_t.initialized = true;
    KSP_ASSERT_OK(P11->C_GetInfo(&info));
}
END_TEST

START_TEST(test_initialize_plain_args)
{
    CK_C_INITIALIZE_ARGS args;

    memset(&args, 0, sizeof(args));
    KSP_ASSERT_OK(P11->C_Initialize(&args));
    ksp_t.initialized = true;
    KSP_ASSERT_RV(P11->C_Initialize(&args), CKR_CRYPTOKI_ALREADY_INITIALIZED);
    ksp_test_finalize();

    args.flags = CKF_OS_LOCKING_OK;
    KSP_ASSERT_OK(P11->C_Initialize(&args));
    ksp_t.initialized = true;
    ksp_test_finalize();

    args.flags = CKF_OS_LOCKING_OK | CKF_LIBRARY_CANT_CREATE_OS_THREADS;
    KSP_ASSERT_OK(P11->C_Initialize(&args));
    ksp_t.initialized = true;
    ksp_test_finalize();
}
END_TEST

/* Application mutex callbacks that count their calls. */
static int n_create, n_destroy, n_lock, n_unlock;

static CK_RV mx_create(CK_VOID_PTR_PTR out)
{
    pthread_mutex_t *m = malloc(sizeof(*m));

    if (m == NULL) {
        return CKR_HOST_MEMORY;
    }
    pthread_mutex_init(m, NULL);
    __atomic_add_fetch(&n_create, 1, __ATOMIC_SEQ_CST);
    *out = m;
    return CKR_OK;
}

static CK_RV mx_destroy(CK_VOID_PTR p)
{
    if (p == NULL) {
        return CKR_MUTEX_BAD;
    }
    pthread_mutex_destroy(p);
    free(p);
    __atomic_add_fetch(&n_destroy, 1, __ATOMIC_SEQ_CST);
    return CKR_OK;
}

static CK_RV mx_lock(CK_VOID_PTR p)
{
    if (p == NULL) {
        return CKR_MUTEX_BAD;
    }
    pthread_mutex_lock(p);
    __atomic_add_fetch(&n_lock, 1, __ATOMIC_SEQ_CST);
    return CKR_OK;
}

static CK_RV mx_unlock(CK_VOID_PTR p)
{
    if (p == NULL) {
        return CKR_MUTEX_BAD;
    }
    __atomic_add_fetch(&n_unlock, 1, __ATOMIC_SEQ_CST);
    pthread_mutex_unlock(p);
    return CKR_OK;
}

START_TEST(test_initialize_partial_callbacks)
{
    /* PKCS#11 3.0 §5.4: some but not all four callbacks -> CKR_ARGUMENTS_BAD. */
    for (unsigned mask = 1; mask < 15; mask++) {
        for (int os = 0; os < 2; os++) {
            CK_C_INITIALIZE_ARGS args;
            CK_RV rv;

            memset(&args, 0, sizeof(args));
            args.flags = os ? CKF_OS_LOCKING_OK : 0;
            args.CreateMutex = (mask & 1) ? mx_create : NULL;
            args.DestroyMutex = (mask & 2) ? mx_destroy : NULL;
            args.LockMutex = (mask & 4) ? mx_lock : NULL;
            args.UnlockMutex = (mask & 8) ? mx_unlock : NULL;
            rv = P11->C_Initialize(&args);
            ck_assert_msg(rv == CKR_ARGUMENTS_BAD,
                          "callback mask 0x%x, flags 0x%lx: %s, expected CKR_ARGUMENTS_BAD", mask,
                          args.flags, ksp_test_rv_name(rv));
        }
    }
    /* The library stays usable after the refusals. */
    ksp_test_initialize();
}
END_TEST

START_TEST(test_initialize_counting_callbacks)
{
    CK_C_INITIALIZE_ARGS args;
    CK_SESSION_HANDLE s;
    CK_SLOT_ID slot;

    memset(&args, 0, sizeof(args));
    args.CreateMutex = mx_create;
    args.DestroyMutex = mx_destroy;
    args.LockMutex = mx_lock;
    args.UnlockMutex = mx_unlock;
    /* No CKF_OS_LOCKING_OK: behaviour.md says the callbacks are used. */
    KSP_ASSERT_OK(P11->C_Initialize(&args));
    ksp_t.initialized = true;
    slot = ksp_test_init_token("locks");
    ksp_test_init_user_pin(slot, KSP_TEST_USER_PIN);
    s = ksp_test_open(slot, true);
    ksp_test_login(s, CKU_USER, KSP_TEST_USER_PIN);
    ksp_test_create_data(s, "d", false, true);
    ck_assert_msg(n_create > 0, "CreateMutex was never called");
    ck_assert_msg(n_lock > 0, "LockMutex was never called");
    ck_assert_msg(n_lock == n_unlock, "%d locks but %d unlocks after the calls returned", n_lock,
                  n_unlock);
    KSP_ASSERT_OK(P11->C_CloseSession(s));
    ksp_test_finalize();
    ck_assert_msg(n_destroy == n_create, "%d mutexes created, %d destroyed by C_Finalize", n_create,
                  n_destroy);
    ck_assert_int_eq(n_lock, n_unlock);

    /* With CKF_OS_LOCKING_OK as well, either locking is acceptable. Slot ids
     * are only stable within one C_Initialize. */
    args.flags = CKF_OS_LOCKING_OK;
    KSP_ASSERT_OK(P11->C_Initialize(&args));
    ksp_t.initialized = true;
    s = ksp_test_open(ksp_test_find_slot("locks"), false);
    KSP_ASSERT_OK(P11->C_CloseSession(s));
    ksp_test_finalize();
    ck_assert_int_eq(n_lock, n_unlock);
    ck_assert_int_eq(n_destroy, n_create);
}
END_TEST

START_TEST(test_initialize_reserved_config)
{
    CK_C_INITIALIZE_ARGS args;
    char path[PATH_MAX + 16];
    FILE *f;

    /* behaviour.md: pReserved is a config file path (p11-kit x-init-reserved). */
    snprintf(path, sizeof(path), "%s/empty.conf", ksp_t.dir);
    f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("# no settings\n", f);
    fclose(f);
    memset(&args, 0, sizeof(args));
    args.flags = CKF_OS_LOCKING_OK;
    args.pReserved = path;
    KSP_ASSERT_OK(P11->C_Initialize(&args));
    ksp_t.initialized = true;
    ksp_test_init_token("reserved");
}
END_TEST

/* ---- after C_Initialize ------------------------------------------------- */

START_TEST(test_get_info)
{
    CK_INFO info;

    KSP_ASSERT_RV(P11->C_GetInfo(NULL), CKR_ARGUMENTS_BAD);
    memset(&info, 0, sizeof(info));
    KSP_ASSERT_OK(P11->C_GetInfo(&info));
    ck_assert_msg(info.cryptokiVersion.major == 2 && info.cryptokiVersion.minor == 40,
                  "cryptokiVersion %u.%u, expected 2.40", info.cryptokiVersion.major,
                  info.cryptokiVersion.minor);
    ck_assert_msg(ksp_test_padded_eq(info.manufacturerID, 32, "ksp11"),
                  "manufacturerID is not \"ksp11\" blank padded: \"%.32s\"", info.manufacturerID);
    ck_assert_msg(ksp_test_padded_eq(info.libraryDescription, 32, "ksp11 PKCS#11 module"),
                  "libraryDescription: \"%.32s\"", info.libraryDescription);
    ck_assert_uint_eq(info.flags, 0);
}
END_TEST

typedef CK_RV (*fn_mech_init)(CK_SESSION_HANDLE, CK_MECHANISM_PTR, CK_OBJECT_HANDLE);
typedef CK_RV (*fn_final)(CK_SESSION_HANDLE);

START_TEST(test_v3_functions_not_supported)
{
    CK_C_GetInterface get = (CK_C_GetInterface)ksp_test_sym("C_GetInterface");
    CK_INTERFACE *i = NULL;
    CK_FUNCTION_LIST_3_0 *f3;
    CK_SESSION_HANDLE s;
    CK_MECHANISM m = {CKM_ECDSA, NULL, 0};
    CK_SLOT_ID slot;
    fn_mech_init inits[4];
    CK_INFO info;

    ck_assert_msg(get != NULL, "C_GetInterface is not exported");
    KSP_ASSERT_OK(get(NULL, NULL, &i, 0));
    f3 = i->pFunctionList;
    /* The 3.0 list reaches the same, initialised library. */
    KSP_ASSERT_OK(f3->base.C_GetInfo(&info));
    slot = ksp_test_init_token("v3");
    ksp_test_init_user_pin(slot, KSP_TEST_USER_PIN);
    s = ksp_test_open(slot, true);
    KSP_ASSERT_RV(
        f3->C_LoginUser(s, CKU_USER, (CK_UTF8CHAR_PTR) "1234", 4, (CK_UTF8CHAR_PTR) "bob", 3),
        CKR_FUNCTION_NOT_SUPPORTED);
    KSP_ASSERT_RV(f3->C_SessionCancel(s, CKF_SIGN), CKR_FUNCTION_NOT_SUPPORTED);
    /* The message functions share their first three parameters' types. */
    memcpy(&inits[0], &f3->C_MessageEncryptInit, sizeof(inits[0]));
    memcpy(&inits[1], &f3->C_MessageDecryptInit, sizeof(inits[1]));
    memcpy(&inits[2], &f3->C_MessageSignInit, sizeof(inits[2]));
    memcpy(&inits[3], &f3->C_MessageVerifyInit, sizeof(inits[3]));
    for (int k = 0; k < 4; k++) {
        KSP_ASSERT_RV(inits[k](s, &m, 1), CKR_FUNCTION_NOT_SUPPORTED);
    }
    {
        fn_final fins[4];

        memcpy(&fins[0], &f3->C_MessageEncryptFinal, sizeof(fins[0]));
        memcpy(&fins[1], &f3->C_MessageDecryptFinal, sizeof(fins[1]));
        memcpy(&fins[2], &f3->C_MessageSignFinal, sizeof(fins[2]));
        memcpy(&fins[3], &f3->C_MessageVerifyFinal, sizeof(fins[3]));
        for (int k = 0; k < 4; k++) {
            KSP_ASSERT_RV(fins[k](s), CKR_FUNCTION_NOT_SUPPORTED);
        }
    }
    KSP_ASSERT_OK(P11->C_CloseSession(s));
}
END_TEST

START_TEST(test_slot_list)
{
    CK_SLOT_ID slots[8];
    CK_ULONG n = 0;

    KSP_ASSERT_RV(P11->C_GetSlotList(CK_FALSE, NULL, NULL), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_OK(P11->C_GetSlotList(CK_FALSE, NULL, &n));
    ck_assert_msg(n == 1, "fresh store: %lu slots, expected exactly 1 (the empty one)", n);
    n = 0;
    KSP_ASSERT_OK(P11->C_GetSlotList(CK_TRUE, NULL, &n));
    ck_assert_msg(n == 1, "tokenPresent: %lu slots, expected 1", n);
    n = 0;
    KSP_ASSERT_RV(P11->C_GetSlotList(CK_FALSE, slots, &n), CKR_BUFFER_TOO_SMALL);
    ck_assert_msg(n == 1, "CKR_BUFFER_TOO_SMALL must set the count (got %lu)", n);

    ksp_test_init_token("first");
    n = 0;
    KSP_ASSERT_OK(P11->C_GetSlotList(CK_TRUE, NULL, &n));
    ck_assert_msg(n == 2, "one token: %lu slots, expected 2 (token + empty)", n);
    n = 1;
    KSP_ASSERT_RV(P11->C_GetSlotList(CK_TRUE, slots, &n), CKR_BUFFER_TOO_SMALL);
    ck_assert_uint_eq(n, 2);
    n = 8;
    KSP_ASSERT_OK(P11->C_GetSlotList(CK_TRUE, slots, &n));
    ck_assert_uint_eq(n, 2);
    ck_assert_msg(slots[0] != slots[1], "duplicate slot id %lu", slots[0]);
}
END_TEST

START_TEST(test_empty_slot_info)
{
    CK_SLOT_ID slot = ksp_test_empty_slot();
    CK_SLOT_INFO si;
    CK_TOKEN_INFO ti;

    KSP_ASSERT_RV(P11->C_GetSlotInfo(slot, NULL), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_OK(P11->C_GetSlotInfo(slot, &si));
    ck_assert_msg(si.flags & CKF_TOKEN_PRESENT, "empty slot lacks CKF_TOKEN_PRESENT");
    for (size_t i = 0; i < sizeof(si.slotDescription); i++) {
        ck_assert_msg(si.slotDescription[i] != 0, "slotDescription not blank padded");
    }
    for (size_t i = 0; i < sizeof(si.manufacturerID); i++) {
        ck_assert_msg(si.manufacturerID[i] != 0, "slot manufacturerID not blank padded");
    }
    KSP_ASSERT_RV(P11->C_GetTokenInfo(slot, NULL), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_OK(P11->C_GetTokenInfo(slot, &ti));
    ck_assert_msg(!(ti.flags & CKF_TOKEN_INITIALIZED), "empty slot's token is initialised");
    ck_assert_msg(!(ti.flags & CKF_USER_PIN_INITIALIZED), "empty token has a user PIN");
}
END_TEST

static bool is_hex16(const CK_UTF8CHAR *s)
{
    for (int i = 0; i < 16; i++) {
        bool hex = (s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
                   (s[i] >= 'A' && s[i] <= 'F');

        if (!hex) {
            return false;
        }
    }
    return true;
}

START_TEST(test_token_info)
{
    const char *label = "0123456789abcdef0123456789ABCDEF"; /* all 32 bytes */
    CK_SLOT_ID empty = ksp_test_empty_slot();
    CK_SLOT_ID slot = ksp_test_init_token(label);
    CK_FLAGS base = CKF_RNG | CKF_TOKEN_INITIALIZED | CKF_LOGIN_REQUIRED;
    CK_TOKEN_INFO ti;
    CK_SLOT_INFO si;
    CK_SESSION_HANDLE s1, s2;
    char dir[PATH_MAX + 32];
    struct stat st;

    ck_assert_msg(slot == empty, "C_InitToken moved the token from slot %lu to %lu", empty, slot);
    KSP_ASSERT_OK(P11->C_GetSlotInfo(slot, &si));
    ck_assert(si.flags & CKF_TOKEN_PRESENT);
    KSP_ASSERT_OK(P11->C_GetTokenInfo(slot, &ti));
    ck_assert_msg(memcmp(ti.label, label, 32) == 0, "label \"%.32s\"", ti.label);
    ck_assert_msg(ksp_test_padded_eq(ti.manufacturerID, 32, "ksp11"), "manufacturerID \"%.32s\"",
                  ti.manufacturerID);
    ck_assert_msg(ksp_test_padded_eq(ti.model, 16, "ksp11"), "model \"%.16s\"", ti.model);
    ck_assert_msg(is_hex16(ti.serialNumber), "serialNumber \"%.16s\" is not 16 hex chars",
                  ti.serialNumber);
    ck_assert_msg(ti.flags == base, "token flags 0x%lx, expected 0x%lx", ti.flags, base);
    ck_assert_uint_eq(ti.ulMinPinLen, 4);
    ck_assert_uint_eq(ti.ulMaxPinLen, 255);
    ck_assert_uint_eq(ti.ulMaxSessionCount, CK_EFFECTIVELY_INFINITE);
    ck_assert(ti.ulSessionCount == 0 || ti.ulSessionCount == CK_UNAVAILABLE_INFORMATION);

    /* Store layout: one directory per token, named by the serial. */
    snprintf(dir, sizeof(dir), "%s/%.16s", ksp_t.store, ti.serialNumber);
    ck_assert_msg(stat(dir, &st) == 0 && S_ISDIR(st.st_mode), "no token directory %s", dir);

    s1 = ksp_test_open(slot, false);
    s2 = ksp_test_open(slot, true);
    KSP_ASSERT_OK(P11->C_GetTokenInfo(slot, &ti));
    ck_assert(ti.ulSessionCount == 2 || ti.ulSessionCount == CK_UNAVAILABLE_INFORMATION);
    ck_assert(ti.ulRwSessionCount == 1 || ti.ulRwSessionCount == CK_UNAVAILABLE_INFORMATION);
    KSP_ASSERT_OK(P11->C_CloseSession(s1));
    KSP_ASSERT_OK(P11->C_CloseSession(s2));

    ksp_test_init_user_pin(slot, KSP_TEST_USER_PIN);
    KSP_ASSERT_OK(P11->C_GetTokenInfo(slot, &ti));
    ck_assert_msg(ti.flags == (base | CKF_USER_PIN_INITIALIZED),
                  "after C_InitPIN flags 0x%lx, expected 0x%lx", ti.flags,
                  base | CKF_USER_PIN_INITIALIZED);

    /* A fresh library instance sees the same token. */
    ksp_test_reinit();
    slot = ksp_test_find_slot(label);
    KSP_ASSERT_OK(P11->C_GetTokenInfo(slot, &ti));
    ck_assert_msg(ti.flags == (base | CKF_USER_PIN_INITIALIZED), "after reload flags 0x%lx",
                  ti.flags);
}
END_TEST

START_TEST(test_second_token)
{
    CK_SLOT_ID a = ksp_test_init_token("alpha");
    CK_SLOT_ID empty = ksp_test_empty_slot();
    CK_SLOT_ID b, slots[8];
    CK_TOKEN_INFO ta, tb;
    CK_ULONG n;

    ck_assert_msg(empty != a, "the empty slot reuses the token's slot id %lu", a);
    b = ksp_test_init_token("beta");
    ck_assert_msg(b == empty, "the second token is not in the former empty slot");
    ck_assert_msg(ksp_test_find_slot("alpha") == a, "the first token changed slot");
    n = ksp_test_slots(slots, 8);
    ck_assert_msg(n == 3, "%lu slots with two tokens, expected 3", n);
    KSP_ASSERT_OK(P11->C_GetTokenInfo(a, &ta));
    KSP_ASSERT_OK(P11->C_GetTokenInfo(b, &tb));
    ck_assert_msg(memcmp(ta.serialNumber, tb.serialNumber, 16) != 0, "two tokens, one serial");

    ksp_test_reinit();
    n = ksp_test_slots(slots, 8);
    ck_assert_msg(n == 3, "after reload %lu slots, expected 3", n);
    ksp_test_find_slot("alpha");
    ksp_test_find_slot("beta");
    ksp_test_empty_slot();
}
END_TEST

START_TEST(test_init_token_args)
{
    CK_SLOT_ID slot = ksp_test_empty_slot();
    CK_UTF8CHAR label[32];

    ksp_test_pad(label, sizeof(label), "args");
    KSP_ASSERT_RV(P11->C_InitToken(slot, (CK_UTF8CHAR_PTR)KSP_TEST_SO_PIN, 8, NULL),
                  CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(P11->C_InitToken(slot, (CK_UTF8CHAR_PTR) "123", 3, label), CKR_PIN_LEN_RANGE);
    ck_assert_msg(!(ksp_test_token_flags(slot) & CKF_TOKEN_INITIALIZED),
                  "a refused C_InitToken initialised the token");
    KSP_ASSERT_RV(P11->C_InitToken(BAD_SLOT, (CK_UTF8CHAR_PTR)KSP_TEST_SO_PIN, 8, label),
                  CKR_SLOT_ID_INVALID);
    KSP_ASSERT_OK(P11->C_InitToken(slot, (CK_UTF8CHAR_PTR) "1234", 4, label));
}
END_TEST

START_TEST(test_init_token_reinit)
{
    CK_SESSION_HANDLE s = ksp_test_ready("before");
    CK_SLOT_ID slot = ksp_t.slot;
    CK_UTF8CHAR label[32];
    CK_TOKEN_INFO t0, t1;
    CK_SESSION_HANDLE r;

    ksp_test_create_data(s, "public-obj", true, false);
    ksp_test_create_data(s, "private-obj", true, true);
    KSP_ASSERT_OK(P11->C_GetTokenInfo(slot, &t0));
    KSP_ASSERT_OK(P11->C_CloseAllSessions(slot));

    ksp_test_pad(label, sizeof(label), "after");
    KSP_ASSERT_RV(P11->C_InitToken(slot, (CK_UTF8CHAR_PTR) "87654321", 8, label),
                  CKR_PIN_INCORRECT);
    KSP_ASSERT_OK(P11->C_GetTokenInfo(slot, &t1));
    ck_assert_msg(memcmp(t1.label, t0.label, 32) == 0, "a refused re-init changed the label");

    KSP_ASSERT_OK(P11->C_InitToken(slot, (CK_UTF8CHAR_PTR)KSP_TEST_SO_PIN, 8, label));
    KSP_ASSERT_OK(P11->C_GetTokenInfo(slot, &t1));
    ck_assert_msg(ksp_test_padded_eq(t1.label, 32, "after"), "label \"%.32s\"", t1.label);
    ck_assert_msg(memcmp(t1.serialNumber, t0.serialNumber, 16) == 0, "re-init changed serial");
    ck_assert_msg(!(t1.flags & CKF_USER_PIN_INITIALIZED), "user PIN survived re-init");
    ck_assert(t1.flags & CKF_TOKEN_INITIALIZED);

    r = ksp_test_open(slot, true);
    ck_assert_uint_eq(ksp_test_count(r, CKO_DATA, NULL), 0);
    KSP_ASSERT_RV(P11->C_Login(r, CKU_USER, (CK_UTF8CHAR_PTR)KSP_TEST_USER_PIN, 4),
                  CKR_USER_PIN_NOT_INITIALIZED);
    ksp_test_login(r, CKU_SO, KSP_TEST_SO_PIN);
    KSP_ASSERT_OK(P11->C_InitPIN(r, (CK_UTF8CHAR_PTR)KSP_TEST_USER_PIN, 4));
    KSP_ASSERT_OK(P11->C_Logout(r));
    ksp_test_login(r, CKU_USER, KSP_TEST_USER_PIN);
    ck_assert_msg(ksp_test_count(r, CKO_DATA, NULL) == 0, "objects survived C_InitToken");

    /* Also gone for the next process. */
    ksp_test_reinit();
    slot = ksp_test_find_slot("after");
    r = ksp_test_open(slot, true);
    ksp_test_login(r, CKU_USER, KSP_TEST_USER_PIN);
    ck_assert_uint_eq(ksp_test_count(r, CKO_DATA, NULL), 0);
}
END_TEST

START_TEST(test_init_token_session_exists)
{
    CK_SLOT_ID a = ksp_test_init_token("busy");
    CK_SLOT_ID b = ksp_test_init_token("other");
    CK_UTF8CHAR label[32];
    CK_SESSION_HANDLE s;

    ksp_test_pad(label, sizeof(label), "busy");
    s = ksp_test_open(a, false);
    KSP_ASSERT_RV(P11->C_InitToken(a, (CK_UTF8CHAR_PTR)KSP_TEST_SO_PIN, 8, label),
                  CKR_SESSION_EXISTS);
    KSP_ASSERT_OK(P11->C_CloseSession(s));
    s = ksp_test_open(a, true);
    KSP_ASSERT_RV(P11->C_InitToken(a, (CK_UTF8CHAR_PTR)KSP_TEST_SO_PIN, 8, label),
                  CKR_SESSION_EXISTS);
    KSP_ASSERT_OK(P11->C_CloseSession(s));
    /* Sessions with another token do not count. */
    s = ksp_test_open(b, true);
    KSP_ASSERT_OK(P11->C_InitToken(a, (CK_UTF8CHAR_PTR)KSP_TEST_SO_PIN, 8, label));
    KSP_ASSERT_OK(P11->C_CloseSession(s));
}
END_TEST

START_TEST(test_slot_id_invalid)
{
    CK_SLOT_INFO si;
    CK_TOKEN_INFO ti;
    CK_MECHANISM_INFO mi;
    CK_MECHANISM_TYPE m[64];
    CK_ULONG n = 64;
    CK_SESSION_HANDLE s;

    KSP_ASSERT_RV(P11->C_GetSlotInfo(BAD_SLOT, &si), CKR_SLOT_ID_INVALID);
    KSP_ASSERT_RV(P11->C_GetTokenInfo(BAD_SLOT, &ti), CKR_SLOT_ID_INVALID);
    KSP_ASSERT_RV(P11->C_GetMechanismList(BAD_SLOT, m, &n), CKR_SLOT_ID_INVALID);
    KSP_ASSERT_RV(P11->C_GetMechanismInfo(BAD_SLOT, CKM_SHA256, &mi), CKR_SLOT_ID_INVALID);
    KSP_ASSERT_RV(P11->C_OpenSession(BAD_SLOT, CKF_SERIAL_SESSION, NULL, NULL, &s),
                  CKR_SLOT_ID_INVALID);
    KSP_ASSERT_RV(P11->C_CloseAllSessions(BAD_SLOT), CKR_SLOT_ID_INVALID);
}
END_TEST

struct expect_mech {
    CK_MECHANISM_TYPE type;
    CK_FLAGS need;   /* flags that must be set */
    CK_FLAGS forbid; /* flags that must be clear */
    int kind;        /* 0 digest, 1 RSA, 2 EC */
};

#define CRYPT (CKF_ENCRYPT | CKF_DECRYPT)
#define SIGV  (CKF_SIGN | CKF_VERIFY)
#define NEVER (CKF_WRAP | CKF_UNWRAP | CKF_SIGN_RECOVER | CKF_VERIFY_RECOVER | CKF_GENERATE)

/* The mechanism list of behaviour.md (software backend). */
static const struct expect_mech expected_mechs[] = {
    {CKM_RSA_PKCS_KEY_PAIR_GEN, CKF_GENERATE_KEY_PAIR, SIGV | CRYPT, 1},
    {CKM_EC_KEY_PAIR_GEN, CKF_GENERATE_KEY_PAIR, SIGV | CRYPT, 2},
    {CKM_RSA_PKCS, SIGV | CRYPT, CKF_DERIVE, 1},
    {CKM_RSA_X_509, SIGV, CRYPT | CKF_DERIVE, 1},
    {CKM_RSA_PKCS_PSS, SIGV, CRYPT, 1},
    {CKM_SHA1_RSA_PKCS, SIGV, CRYPT, 1},
    {CKM_SHA224_RSA_PKCS, SIGV, CRYPT, 1},
    {CKM_SHA256_RSA_PKCS, SIGV, CRYPT, 1},
    {CKM_SHA384_RSA_PKCS, SIGV, CRYPT, 1},
    {CKM_SHA512_RSA_PKCS, SIGV, CRYPT, 1},
    {CKM_SHA1_RSA_PKCS_PSS, SIGV, CRYPT, 1},
    {CKM_SHA224_RSA_PKCS_PSS, SIGV, CRYPT, 1},
    {CKM_SHA256_RSA_PKCS_PSS, SIGV, CRYPT, 1},
    {CKM_SHA384_RSA_PKCS_PSS, SIGV, CRYPT, 1},
    {CKM_SHA512_RSA_PKCS_PSS, SIGV, CRYPT, 1},
    {CKM_RSA_PKCS_OAEP, CRYPT, SIGV, 1},
    {CKM_ECDSA, SIGV, CRYPT, 2},
    {CKM_ECDSA_SHA1, SIGV, CRYPT, 2},
    {CKM_ECDSA_SHA224, SIGV, CRYPT, 2},
    {CKM_ECDSA_SHA256, SIGV, CRYPT, 2},
    {CKM_ECDSA_SHA384, SIGV, CRYPT, 2},
    {CKM_ECDSA_SHA512, SIGV, CRYPT, 2},
    {CKM_ECDH1_DERIVE, CKF_DERIVE, SIGV | CRYPT, 2},
    {CKM_SHA_1, CKF_DIGEST, SIGV | CRYPT, 0},
    {CKM_SHA224, CKF_DIGEST, SIGV | CRYPT, 0},
    {CKM_SHA256, CKF_DIGEST, SIGV | CRYPT, 0},
    {CKM_SHA384, CKF_DIGEST, SIGV | CRYPT, 0},
    {CKM_SHA512, CKF_DIGEST, SIGV | CRYPT, 0},
};
#define N_EXPECTED (sizeof(expected_mechs) / sizeof(expected_mechs[0]))

START_TEST(test_mechanism_list)
{
    CK_SLOT_ID slot = ksp_test_init_token("mechs");
    CK_MECHANISM_TYPE list[128];
    CK_ULONG n = 0, count;

    KSP_ASSERT_RV(P11->C_GetMechanismList(slot, NULL, NULL), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_OK(P11->C_GetMechanismList(slot, NULL, &n));
    ck_assert_msg(n >= N_EXPECTED && n <= 128, "%lu mechanisms, expected %zu", n, N_EXPECTED);
    count = n;
    n = 1;
    KSP_ASSERT_RV(P11->C_GetMechanismList(slot, list, &n), CKR_BUFFER_TOO_SMALL);
    ck_assert_msg(n == count, "CKR_BUFFER_TOO_SMALL set the count to %lu, not %lu", n, count);
    n = 128;
    KSP_ASSERT_OK(P11->C_GetMechanismList(slot, list, &n));
    ck_assert_uint_eq(n, count);
    for (size_t e = 0; e < N_EXPECTED; e++) {
        bool found = false;

        for (CK_ULONG i = 0; i < n; i++) {
            found = found || list[i] == expected_mechs[e].type;
        }
        ck_assert_msg(found, "%s missing from C_GetMechanismList",
                      ksp_test_mech_name(expected_mechs[e].type));
    }
    for (CK_ULONG i = 0; i < n; i++) {
        bool known = false;

        for (size_t e = 0; e < N_EXPECTED; e++) {
            known = known || list[i] == expected_mechs[e].type;
        }
        ck_assert_msg(known, "mechanism 0x%lx listed but not in behaviour.md", list[i]);
        for (CK_ULONG j = 0; j < i; j++) {
            ck_assert_msg(list[j] != list[i], "%s listed twice", ksp_test_mech_name(list[i]));
        }
    }
}
END_TEST

START_TEST(test_mechanism_info)
{
    CK_SLOT_ID slot = ksp_test_init_token("mechinfo");
    CK_MECHANISM_INFO mi;

    KSP_ASSERT_RV(P11->C_GetMechanismInfo(slot, CKM_SHA256, NULL), CKR_ARGUMENTS_BAD);
    for (size_t e = 0; e < N_EXPECTED; e++) {
        const struct expect_mech *x = &expected_mechs[e];
        const char *name = ksp_test_mech_name(x->type);

        memset(&mi, 0, sizeof(mi));
        KSP_ASSERT_OK(P11->C_GetMechanismInfo(slot, x->type, &mi));
        ck_assert_msg((mi.flags & x->need) == x->need, "%s flags 0x%lx lack 0x%lx", name, mi.flags,
                      x->need);
        ck_assert_msg((mi.flags & (x->forbid | NEVER)) == 0, "%s flags 0x%lx include 0x%lx", name,
                      mi.flags, mi.flags & (x->forbid | NEVER));
        ck_assert_msg(mi.ulMinKeySize <= mi.ulMaxKeySize, "%s: min %lu > max %lu", name,
                      mi.ulMinKeySize, mi.ulMaxKeySize);
        if (x->kind == 1) {
            ck_assert_msg(mi.ulMinKeySize <= 2048 && mi.ulMaxKeySize >= 4096,
                          "%s: key sizes %lu..%lu do not cover 2048..4096 bits", name,
                          mi.ulMinKeySize, mi.ulMaxKeySize);
        } else if (x->kind == 2) {
            ck_assert_msg(mi.ulMinKeySize <= 256 && mi.ulMaxKeySize >= 521,
                          "%s: key sizes %lu..%lu do not cover 256..521 bits", name,
                          mi.ulMinKeySize, mi.ulMaxKeySize);
        }
    }
    KSP_ASSERT_OK(P11->C_GetMechanismInfo(slot, CKM_RSA_PKCS_KEY_PAIR_GEN, &mi));
    ck_assert_msg(mi.ulMinKeySize == 2048 && mi.ulMaxKeySize == 4096,
                  "RSA key generation %lu..%lu, expected 2048..4096", mi.ulMinKeySize,
                  mi.ulMaxKeySize);
    KSP_ASSERT_OK(P11->C_GetMechanismInfo(slot, CKM_EC_KEY_PAIR_GEN, &mi));
    ck_assert_msg(mi.ulMinKeySize == 256 && mi.ulMaxKeySize == 521,
                  "EC key generation %lu..%lu, expected 256..521", mi.ulMinKeySize,
                  mi.ulMaxKeySize);

    KSP_ASSERT_RV(P11->C_GetMechanismInfo(slot, CKM_AES_CBC, &mi), CKR_MECHANISM_INVALID);
    KSP_ASSERT_RV(P11->C_GetMechanismInfo(slot, CKM_MD5, &mi), CKR_MECHANISM_INVALID);
    KSP_ASSERT_RV(P11->C_GetMechanismInfo(slot, CKM_GENERIC_SECRET_KEY_GEN, &mi),
                  CKR_MECHANISM_INVALID);
    KSP_ASSERT_RV(P11->C_GetMechanismInfo(slot, 0x7fff1234UL, &mi), CKR_MECHANISM_INVALID);
}
END_TEST

/* ---- fork ---------------------------------------------------------------- */

static int fork_child(void *arg)
{
    char why[256] = "";
    CK_SLOT_ID slot;
    CK_SESSION_HANDLE s;
    CK_OBJECT_HANDLE pub, priv, parent_priv, parent_pub;
    CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
    CK_BYTE sig[128];
    CK_ULONG siglen = sizeof(sig);
    EVP_PKEY *pk;

    (void)arg;
    /* Inherited state is not this process's library instance. */
    if (sweep(P11, CKR_CRYPTOKI_NOT_INITIALIZED, why, sizeof(why)) != 0) {
        fprintf(stderr, "forked child before C_Initialize: %s\n", why);
        return 10;
    }
    if (P11->C_Initialize(NULL) != CKR_OK) {
        fprintf(stderr, "forked child: C_Initialize failed\n");
        return 11;
    }
    slot = ksp_test_find_slot("forked");
    s = ksp_test_open(slot, true);
    ksp_test_login(s, CKU_USER, KSP_TEST_USER_PIN);
    ksp_test_gen_ec(s, NID_X9_62_prime256v1, "child-key", false, &pub, &priv);
    KSP_ASSERT_OK(P11->C_SignInit(s, &m, priv));
    KSP_ASSERT_OK(P11->C_Sign(s, (CK_BYTE_PTR) "from the child", 14, sig, &siglen));
    pk = ksp_test_ossl_pubkey(s, pub);
    if (!ksp_test_ossl_verify(pk, &m, (const uint8_t *)"from the child", 14, sig, siglen)) {
        fprintf(stderr, "forked child: signature does not verify\n");
        return 12;
    }
    EVP_PKEY_free(pk);
    /* The parent's token key is usable too. */
    parent_priv = ksp_test_find1(s, CKO_PRIVATE_KEY, "parent-key");
    parent_pub = ksp_test_find1(s, CKO_PUBLIC_KEY, "parent-key");
    siglen = sizeof(sig);
    KSP_ASSERT_OK(P11->C_SignInit(s, &m, parent_priv));
    KSP_ASSERT_OK(P11->C_Sign(s, (CK_BYTE_PTR) "x", 1, sig, &siglen));
    pk = ksp_test_ossl_pubkey(s, parent_pub);
    if (!ksp_test_ossl_verify(pk, &m, (const uint8_t *)"x", 1, sig, siglen)) {
        fprintf(stderr, "forked child: parent key signature does not verify\n");
        return 13;
    }
    EVP_PKEY_free(pk);
    KSP_ASSERT_OK(P11->C_Finalize(NULL));
    return 0;
}

START_TEST(test_fork)
{
    CK_SESSION_HANDLE s = ksp_test_ready("forked");
    CK_OBJECT_HANDLE pub, priv;
    CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
    CK_BYTE sig[128];
    CK_ULONG siglen = sizeof(sig);
    CK_SESSION_INFO si;
    int status;

    ksp_test_gen_ec(s, NID_X9_62_prime256v1, "parent-key", true, &pub, &priv);
    status = ksp_test_fork(fork_child, NULL);
    ck_assert_msg(status == 0, "forked child failed with status %d (see stderr)", status);
    /* The parent's instance is untouched by the child's C_Initialize/C_Finalize. */
    KSP_ASSERT_OK(P11->C_GetSessionInfo(s, &si));
    ck_assert_uint_eq(si.state, CKS_RW_USER_FUNCTIONS);
    KSP_ASSERT_OK(P11->C_SignInit(s, &m, priv));
    KSP_ASSERT_OK(P11->C_Sign(s, (CK_BYTE_PTR) "parent", 6, sig, &siglen));
}
END_TEST

static Suite *general_suite(void)
{
    Suite *su = suite_create("api_general");
    TCase *tc = tcase_create("before_init");
    TCase *ti = tcase_create("initialised");

    ksp_test_add_fixtures(tc, false);
    tcase_add_test(tc, test_function_list);
    tcase_add_test(tc, test_interface_list);
    tcase_add_test(tc, test_get_interface);
    tcase_add_test(tc, test_not_initialized);
    tcase_add_test(tc, test_initialize_finalize);
    tcase_add_test(tc, test_initialize_plain_args);
    tcase_add_test(tc, test_initialize_partial_callbacks);
    tcase_add_test(tc, test_initialize_counting_callbacks);
    tcase_add_test(tc, test_initialize_reserved_config);
    suite_add_tcase(su, tc);

    ksp_test_add_fixtures(ti, true);
    tcase_add_test(ti, test_get_info);
    tcase_add_test(ti, test_v3_functions_not_supported);
    tcase_add_test(ti, test_slot_list);
    tcase_add_test(ti, test_empty_slot_info);
    tcase_add_test(ti, test_token_info);
    tcase_add_test(ti, test_second_token);
    tcase_add_test(ti, test_init_token_args);
    tcase_add_test(ti, test_init_token_reinit);
    tcase_add_test(ti, test_init_token_session_exists);
    tcase_add_test(ti, test_slot_id_invalid);
    tcase_add_test(ti, test_mechanism_list);
    tcase_add_test(ti, test_mechanism_info);
    tcase_add_test(ti, test_fork);
    suite_add_tcase(su, ti);
    return su;
}

int main(void)
{
    SRunner *sr = srunner_create(general_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
