/*
 * API robustness suite: every C_* function of the PKCS#11 3.0 function list
 * called with NULL pointers, zero and huge lengths, invalid slot / session /
 * object handles and in the wrong state (not initialised, no session, wrong
 * login state, no operation, operation active), with the exact return code
 * PKCS#11 3.0 (§5, §6.7 session states, §5.2 buffer convention) requires.
 * Where the specification allows two codes, both are accepted (RV2).
 */
#include "testlib.h"

#include <stdio.h>
#include <string.h>

#define BAD_SLOT    ((CK_SLOT_ID)0x7ffff00dUL)
#define BAD_SESSION ((CK_SESSION_HANDLE)0x7ffff00dUL)
#define BAD_OBJECT  ((CK_OBJECT_HANDLE)0x7ffff00dUL)
#define HUGE        (~(CK_ULONG)0)

static CK_FUNCTION_LIST_3_0 *fl30(void)
{
    CK_RV (*get)
    (CK_UTF8CHAR_PTR, CK_VERSION_PTR, CK_INTERFACE_PTR_PTR, CK_FLAGS) =
        (CK_RV(*)(CK_UTF8CHAR_PTR, CK_VERSION_PTR, CK_INTERFACE_PTR_PTR, CK_FLAGS))ksp_test_sym(
            "C_GetInterface");
    CK_VERSION v = {3, 0};
    CK_INTERFACE_PTR itf = NULL;

    ck_assert_ptr_nonnull(get);
    KSP_ASSERT_OK(get((CK_UTF8CHAR_PTR) "PKCS 11", &v, &itf, 0));
    ck_assert_ptr_nonnull(itf);
    return itf->pFunctionList;
}

/* The 3.0 message-based functions (§5.13-5.16): not implemented, so
 * CKR_FUNCTION_NOT_SUPPORTED in any state. Their entries are generic
 * pointers; the module's stub reads no argument. */
static void assert_message_functions_unsupported(CK_FUNCTION_LIST_3_0 *x)
{
    ksp_fn_generic fns[] = {
        x->C_MessageEncryptInit,  x->C_EncryptMessage,      x->C_EncryptMessageBegin,
        x->C_EncryptMessageNext,  x->C_MessageEncryptFinal, x->C_MessageDecryptInit,
        x->C_DecryptMessage,      x->C_DecryptMessageBegin, x->C_DecryptMessageNext,
        x->C_MessageDecryptFinal, x->C_MessageSignInit,     x->C_SignMessage,
        x->C_SignMessageBegin,    x->C_SignMessageNext,     x->C_MessageSignFinal,
        x->C_MessageVerifyInit,   x->C_VerifyMessage,       x->C_VerifyMessageBegin,
        x->C_VerifyMessageNext,   x->C_MessageVerifyFinal,
    };
    for (size_t i = 0; i < sizeof(fns) / sizeof(fns[0]); i++) {
        ck_assert_ptr_nonnull(fns[i]);
        ck_assert_msg(fns[i]() == CKR_FUNCTION_NOT_SUPPORTED, "message function %zu", i);
    }
}

/* ---- not initialised: §5.4, every function but the four that may run
 * before C_Initialize returns CKR_CRYPTOKI_NOT_INITIALIZED ---- */

START_TEST(test_not_initialized)
{
    CK_FUNCTION_LIST_3_0 *x = fl30();
    CK_FUNCTION_LIST *f = &x->base;
    CK_INFO info;
    CK_SLOT_ID slot = 1;
    CK_ULONG n = 0;
    CK_SLOT_INFO si;
    CK_TOKEN_INFO ti;
    CK_MECHANISM_INFO mi;
    CK_SESSION_HANDLE s = 1;
    CK_SESSION_INFO sinfo;
    CK_OBJECT_HANDLE h = 0, h2 = 0;
    CK_BYTE buf[64];
    CK_ULONG len = sizeof(buf);
    CK_UTF8CHAR label[32];
    CK_MECHANISM m = {CKM_SHA256, NULL, 0};
    CK_ATTRIBUTE a = {CKA_LABEL, buf, 4};
    const CK_RV NI = CKR_CRYPTOKI_NOT_INITIALIZED;

    memset(label, ' ', sizeof(label));
    KSP_ASSERT_RV(f->C_Finalize(NULL), NI);
    KSP_ASSERT_RV(f->C_GetInfo(&info), NI);
    KSP_ASSERT_RV(f->C_GetSlotList(CK_FALSE, NULL, &n), NI);
    KSP_ASSERT_RV(f->C_GetSlotInfo(slot, &si), NI);
    KSP_ASSERT_RV(f->C_GetTokenInfo(slot, &ti), NI);
    KSP_ASSERT_RV(f->C_GetMechanismList(slot, NULL, &n), NI);
    KSP_ASSERT_RV(f->C_GetMechanismInfo(slot, CKM_SHA256, &mi), NI);
    KSP_ASSERT_RV(f->C_InitToken(slot, (CK_UTF8CHAR_PTR) "12345678", 8, label), NI);
    KSP_ASSERT_RV(f->C_InitPIN(s, (CK_UTF8CHAR_PTR) "1234", 4), NI);
    KSP_ASSERT_RV(f->C_SetPIN(s, (CK_UTF8CHAR_PTR) "1234", 4, (CK_UTF8CHAR_PTR) "4321", 4), NI);
    KSP_ASSERT_RV(f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s), NI);
    KSP_ASSERT_RV(f->C_CloseSession(s), NI);
    KSP_ASSERT_RV(f->C_CloseAllSessions(slot), NI);
    KSP_ASSERT_RV(f->C_GetSessionInfo(s, &sinfo), NI);
    KSP_ASSERT_RV(f->C_GetOperationState(s, NULL, &len), NI);
    KSP_ASSERT_RV(f->C_SetOperationState(s, buf, 8, 0, 0), NI);
    KSP_ASSERT_RV(f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR) "1234", 4), NI);
    KSP_ASSERT_RV(f->C_Logout(s), NI);
    KSP_ASSERT_RV(f->C_CreateObject(s, &a, 1, &h), NI);
    KSP_ASSERT_RV(f->C_CopyObject(s, 1, &a, 1, &h), NI);
    KSP_ASSERT_RV(f->C_DestroyObject(s, 1), NI);
    KSP_ASSERT_RV(f->C_GetObjectSize(s, 1, &n), NI);
    KSP_ASSERT_RV(f->C_GetAttributeValue(s, 1, &a, 1), NI);
    KSP_ASSERT_RV(f->C_SetAttributeValue(s, 1, &a, 1), NI);
    KSP_ASSERT_RV(f->C_FindObjectsInit(s, &a, 1), NI);
    KSP_ASSERT_RV(f->C_FindObjects(s, &h, 1, &n), NI);
    KSP_ASSERT_RV(f->C_FindObjectsFinal(s), NI);
    KSP_ASSERT_RV(f->C_EncryptInit(s, &m, 1), NI);
    KSP_ASSERT_RV(f->C_Encrypt(s, buf, 8, buf, &len), NI);
    KSP_ASSERT_RV(f->C_EncryptUpdate(s, buf, 8, buf, &len), NI);
    KSP_ASSERT_RV(f->C_EncryptFinal(s, buf, &len), NI);
    KSP_ASSERT_RV(f->C_DecryptInit(s, &m, 1), NI);
    KSP_ASSERT_RV(f->C_Decrypt(s, buf, 8, buf, &len), NI);
    KSP_ASSERT_RV(f->C_DecryptUpdate(s, buf, 8, buf, &len), NI);
    KSP_ASSERT_RV(f->C_DecryptFinal(s, buf, &len), NI);
    KSP_ASSERT_RV(f->C_DigestInit(s, &m), NI);
    KSP_ASSERT_RV(f->C_Digest(s, buf, 8, buf, &len), NI);
    KSP_ASSERT_RV(f->C_DigestUpdate(s, buf, 8), NI);
    KSP_ASSERT_RV(f->C_DigestKey(s, 1), NI);
    KSP_ASSERT_RV(f->C_DigestFinal(s, buf, &len), NI);
    KSP_ASSERT_RV(f->C_SignInit(s, &m, 1), NI);
    KSP_ASSERT_RV(f->C_Sign(s, buf, 8, buf, &len), NI);
    KSP_ASSERT_RV(f->C_SignUpdate(s, buf, 8), NI);
    KSP_ASSERT_RV(f->C_SignFinal(s, buf, &len), NI);
    KSP_ASSERT_RV(f->C_SignRecoverInit(s, &m, 1), NI);
    KSP_ASSERT_RV(f->C_SignRecover(s, buf, 8, buf, &len), NI);
    KSP_ASSERT_RV(f->C_VerifyInit(s, &m, 1), NI);
    KSP_ASSERT_RV(f->C_Verify(s, buf, 8, buf, 8), NI);
    KSP_ASSERT_RV(f->C_VerifyUpdate(s, buf, 8), NI);
    KSP_ASSERT_RV(f->C_VerifyFinal(s, buf, 8), NI);
    KSP_ASSERT_RV(f->C_VerifyRecoverInit(s, &m, 1), NI);
    KSP_ASSERT_RV(f->C_VerifyRecover(s, buf, 8, buf, &len), NI);
    KSP_ASSERT_RV(f->C_DigestEncryptUpdate(s, buf, 8, buf, &len), NI);
    KSP_ASSERT_RV(f->C_DecryptDigestUpdate(s, buf, 8, buf, &len), NI);
    KSP_ASSERT_RV(f->C_SignEncryptUpdate(s, buf, 8, buf, &len), NI);
    KSP_ASSERT_RV(f->C_DecryptVerifyUpdate(s, buf, 8, buf, &len), NI);
    KSP_ASSERT_RV(f->C_GenerateKey(s, &m, &a, 1, &h), NI);
    KSP_ASSERT_RV(f->C_GenerateKeyPair(s, &m, &a, 1, &a, 1, &h, &h2), NI);
    KSP_ASSERT_RV(f->C_WrapKey(s, &m, 1, 2, buf, &len), NI);
    KSP_ASSERT_RV(f->C_UnwrapKey(s, &m, 1, buf, 8, &a, 1, &h), NI);
    KSP_ASSERT_RV(f->C_DeriveKey(s, &m, 1, &a, 1, &h), NI);
    KSP_ASSERT_RV(f->C_SeedRandom(s, buf, 8), NI);
    KSP_ASSERT_RV(f->C_GenerateRandom(s, buf, 8), NI);
    KSP_ASSERT_RV(f->C_GetFunctionStatus(s), NI);
    KSP_ASSERT_RV(f->C_CancelFunction(s), NI);
    KSP_ASSERT_RV(f->C_WaitForSlotEvent(CKF_DONT_BLOCK, &slot, NULL), NI);
    /* 3.0 functions ksp11 does not implement: not supported, in any state. */
    KSP_ASSERT_RV2(
        x->C_LoginUser(s, CKU_USER, (CK_UTF8CHAR_PTR) "1234", 4, (CK_UTF8CHAR_PTR) "u", 1), NI,
        CKR_FUNCTION_NOT_SUPPORTED);
    KSP_ASSERT_RV2(x->C_SessionCancel(s, 0), NI, CKR_FUNCTION_NOT_SUPPORTED);
    assert_message_functions_unsupported(x);
    /* The four allowed before C_Initialize (§5.2, §5.4). */
    CK_FUNCTION_LIST_PTR l = NULL;
    KSP_ASSERT_OK(f->C_GetFunctionList(&l));
    KSP_ASSERT_OK(x->C_GetInterfaceList(NULL, &n));
    ck_assert_uint_ge(n, 1);
}
END_TEST

/* ---- NULL pointers: CKR_ARGUMENTS_BAD (§5.1 "CKR_ARGUMENTS_BAD ... a NULL
 * pointer where one is not allowed"), checked in every state where the
 * function would otherwise proceed ---- */

/* A token with user PIN, a logged-in R/W session, an EC key pair and a data
 * object. */
struct env {
    CK_SESSION_HANDLE s;
    CK_OBJECT_HANDLE pub, priv, data;
};

static void make_env(struct env *e)
{
    e->s = ksp_test_ready("robust");
    ksp_test_gen_ec(e->s, NID_X9_62_prime256v1, "ec", false, &e->pub, &e->priv);
    e->data = ksp_test_create_data(e->s, "data", false, false);
}

START_TEST(test_null_general)
{
    CK_FUNCTION_LIST_3_0 *x = fl30();
    CK_FUNCTION_LIST *f = &x->base;
    CK_ULONG n = 0;
    CK_SLOT_ID slot;
    CK_UTF8CHAR label[32];
    CK_SESSION_HANDLE s;
    struct env e;

    make_env(&e);
    slot = ksp_t.slot;
    memset(label, ' ', sizeof(label));
    KSP_ASSERT_RV(f->C_GetFunctionList(NULL), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(x->C_GetInterfaceList(NULL, NULL), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(x->C_GetInterface(NULL, NULL, NULL, 0), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_Finalize((CK_VOID_PTR)&n), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_GetInfo(NULL), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_GetSlotList(CK_FALSE, NULL, NULL), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_GetSlotInfo(slot, NULL), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_GetTokenInfo(slot, NULL), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_GetMechanismList(slot, NULL, NULL), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_GetMechanismInfo(slot, CKM_SHA256, NULL), CKR_ARGUMENTS_BAD);
    /* Slot events are not supported: either answer is right. */
    KSP_ASSERT_RV2(f->C_WaitForSlotEvent(CKF_DONT_BLOCK, NULL, NULL), CKR_ARGUMENTS_BAD,
                   CKR_FUNCTION_NOT_SUPPORTED);
    /* C_InitToken: the label is required (§5.6); the PIN pointer with a length too. */
    KSP_ASSERT_RV(f->C_InitToken(ksp_test_empty_slot(), (CK_UTF8CHAR_PTR) "12345678", 8, NULL),
                  CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_InitToken(ksp_test_empty_slot(), NULL, 8, label), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, NULL), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_GetSessionInfo(e.s, NULL), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_SetPIN(e.s, NULL, 4, (CK_UTF8CHAR_PTR) "4321", 4), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_SetPIN(e.s, (CK_UTF8CHAR_PTR)KSP_TEST_USER_PIN, 4, NULL, 4),
                  CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_GenerateRandom(e.s, NULL, 8), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV2(f->C_SeedRandom(e.s, NULL, 8), CKR_ARGUMENTS_BAD, CKR_RANDOM_SEED_NOT_SUPPORTED);
    KSP_ASSERT_RV2(f->C_GetOperationState(e.s, NULL, NULL), CKR_ARGUMENTS_BAD,
                   CKR_FUNCTION_NOT_SUPPORTED);
    /* Login needs a fresh session state: log out first. */
    KSP_ASSERT_OK(f->C_Logout(e.s));
    KSP_ASSERT_RV(f->C_Login(e.s, CKU_USER, NULL, 4), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_Login(e.s, CKU_SO, NULL, 8), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_OK(f->C_Login(e.s, CKU_SO, (CK_UTF8CHAR_PTR)KSP_TEST_SO_PIN, 8));
    KSP_ASSERT_RV(f->C_InitPIN(e.s, NULL, 4), CKR_ARGUMENTS_BAD);
    /* Nothing above broke the token: another SO session opens. */
    KSP_ASSERT_OK(f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s));
    KSP_ASSERT_OK(f->C_CloseSession(s));
}
END_TEST

START_TEST(test_null_objects)
{
    CK_FUNCTION_LIST_3_0 *x = fl30();
    CK_FUNCTION_LIST *f = &x->base;
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE, found[2];
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_ATTRIBUTE t = {CKA_CLASS, &cls, sizeof(cls)};
    CK_ULONG n = 0;
    struct env e;

    make_env(&e);
    KSP_ASSERT_RV(f->C_CreateObject(e.s, NULL, 1, &h), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_CreateObject(e.s, &t, 1, NULL), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_CreateObject(e.s, NULL, HUGE, &h), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_CopyObject(e.s, e.data, NULL, 1, &h), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_CopyObject(e.s, e.data, NULL, 0, NULL), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_GetObjectSize(e.s, e.data, NULL), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_GetAttributeValue(e.s, e.data, NULL, 1), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_SetAttributeValue(e.s, e.data, NULL, 1), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_FindObjectsInit(e.s, NULL, 1), CKR_ARGUMENTS_BAD);
    /* NULL with count 0 matches everything (§5.7 C_FindObjectsInit). */
    KSP_ASSERT_OK(f->C_FindObjectsInit(e.s, NULL, 0));
    KSP_ASSERT_RV(f->C_FindObjects(e.s, NULL, 2, &n), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_FindObjects(e.s, found, 2, NULL), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_OK(f->C_FindObjects(e.s, found, 0, &n));
    ck_assert_uint_eq(n, 0);
    KSP_ASSERT_OK(f->C_FindObjects(e.s, found, 2, &n));
    ck_assert_uint_eq(n, 2);
    KSP_ASSERT_OK(f->C_FindObjectsFinal(e.s));
}
END_TEST

static const uint8_t data32[32] = {1, 2, 3};

START_TEST(test_null_crypto)
{
    CK_FUNCTION_LIST_3_0 *x = fl30();
    CK_FUNCTION_LIST *f = &x->base;
    CK_MECHANISM ecdsa = {CKM_ECDSA_SHA256, NULL, 0};
    CK_MECHANISM sha = {CKM_SHA256, NULL, 0};
    CK_MECHANISM ecgen = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
    CK_MECHANISM ecdh = {CKM_ECDH1_DERIVE, NULL, 0};
    CK_BYTE out[512];
    CK_ULONG len = sizeof(out);
    CK_OBJECT_HANDLE h = 0, h2 = 0;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE t = {CKA_SIGN, &yes, 1};
    struct env e;

    make_env(&e);
    /* *Init with a NULL mechanism. */
    KSP_ASSERT_RV(f->C_SignInit(e.s, NULL, e.priv), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_VerifyInit(e.s, NULL, e.pub), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_EncryptInit(e.s, NULL, e.pub), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_DecryptInit(e.s, NULL, e.priv), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_DigestInit(e.s, NULL), CKR_ARGUMENTS_BAD);
    /* Recovery is not supported (no mechanism offers it). */
    KSP_ASSERT_RV2(f->C_SignRecoverInit(e.s, NULL, e.priv), CKR_ARGUMENTS_BAD,
                   CKR_FUNCTION_NOT_SUPPORTED);
    KSP_ASSERT_RV2(f->C_VerifyRecoverInit(e.s, NULL, e.pub), CKR_ARGUMENTS_BAD,
                   CKR_FUNCTION_NOT_SUPPORTED);
    KSP_ASSERT_RV(f->C_GenerateKey(e.s, NULL, &t, 1, &h), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_GenerateKeyPair(e.s, NULL, &t, 1, &t, 1, &h, &h2), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_GenerateKeyPair(e.s, &ecgen, &t, 1, &t, 1, NULL, &h2), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_GenerateKeyPair(e.s, &ecgen, &t, 1, &t, 1, &h, NULL), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_WrapKey(e.s, NULL, e.pub, e.priv, out, &len), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_UnwrapKey(e.s, NULL, e.priv, out, 8, &t, 1, &h), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_UnwrapKey(e.s, &ecdsa, e.priv, NULL, 8, &t, 1, &h), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_UnwrapKey(e.s, &ecdsa, e.priv, out, 8, NULL, 1, &h), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_UnwrapKey(e.s, &ecdsa, e.priv, out, 8, &t, 1, NULL), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_WrapKey(e.s, &ecdsa, e.pub, e.priv, out, NULL), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_DeriveKey(e.s, NULL, e.priv, &t, 1, &h), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_DeriveKey(e.s, &ecdh, e.priv, &t, 1, NULL), CKR_ARGUMENTS_BAD);

    /* Single-part and multi-part calls with an active operation. A NULL
     * length pointer or NULL data with a length ends nothing but the call. */
    KSP_ASSERT_OK(f->C_SignInit(e.s, &ecdsa, e.priv));
    KSP_ASSERT_RV(f->C_Sign(e.s, NULL, 32, out, &len), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_OK(f->C_SignInit(e.s, &ecdsa, e.priv));
    KSP_ASSERT_RV(f->C_Sign(e.s, (CK_BYTE_PTR)data32, 32, out, NULL), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_OK(f->C_SignInit(e.s, &ecdsa, e.priv));
    KSP_ASSERT_RV(f->C_SignUpdate(e.s, NULL, 32), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_OK(f->C_SignInit(e.s, &ecdsa, e.priv));
    /* An empty part may come with a NULL pointer. */
    KSP_ASSERT_OK(f->C_SignUpdate(e.s, NULL, 0));
    KSP_ASSERT_RV(f->C_SignFinal(e.s, out, NULL), CKR_ARGUMENTS_BAD);

    KSP_ASSERT_OK(f->C_VerifyInit(e.s, &ecdsa, e.pub));
    KSP_ASSERT_RV(f->C_Verify(e.s, NULL, 32, out, 64), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_OK(f->C_VerifyInit(e.s, &ecdsa, e.pub));
    KSP_ASSERT_RV(f->C_Verify(e.s, (CK_BYTE_PTR)data32, 32, NULL, 64), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_OK(f->C_VerifyInit(e.s, &ecdsa, e.pub));
    KSP_ASSERT_RV(f->C_VerifyUpdate(e.s, NULL, 32), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_OK(f->C_VerifyInit(e.s, &ecdsa, e.pub));
    KSP_ASSERT_OK(f->C_VerifyUpdate(e.s, NULL, 0));
    KSP_ASSERT_RV(f->C_VerifyFinal(e.s, NULL, 64), CKR_ARGUMENTS_BAD);

    KSP_ASSERT_OK(f->C_DigestInit(e.s, &sha));
    KSP_ASSERT_RV(f->C_Digest(e.s, NULL, 32, out, &len), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_OK(f->C_DigestInit(e.s, &sha));
    KSP_ASSERT_RV(f->C_Digest(e.s, (CK_BYTE_PTR)data32, 32, out, NULL), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_OK(f->C_DigestInit(e.s, &sha));
    KSP_ASSERT_RV(f->C_DigestUpdate(e.s, NULL, 32), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_OK(f->C_DigestInit(e.s, &sha));
    KSP_ASSERT_OK(f->C_DigestUpdate(e.s, NULL, 0));
    KSP_ASSERT_RV(f->C_DigestFinal(e.s, out, NULL), CKR_ARGUMENTS_BAD);
}
END_TEST

/* ---- invalid handles ---- */

START_TEST(test_invalid_slot)
{
    CK_FUNCTION_LIST_3_0 *x = fl30();
    CK_FUNCTION_LIST *f = &x->base;
    CK_SLOT_INFO si;
    CK_TOKEN_INFO ti;
    CK_MECHANISM_INFO mi;
    CK_ULONG n = 0;
    CK_SESSION_HANDLE s;
    CK_UTF8CHAR label[32];

    memset(label, ' ', sizeof(label));
    KSP_ASSERT_RV(f->C_GetSlotInfo(BAD_SLOT, &si), CKR_SLOT_ID_INVALID);
    KSP_ASSERT_RV(f->C_GetTokenInfo(BAD_SLOT, &ti), CKR_SLOT_ID_INVALID);
    KSP_ASSERT_RV(f->C_GetMechanismList(BAD_SLOT, NULL, &n), CKR_SLOT_ID_INVALID);
    KSP_ASSERT_RV(f->C_GetMechanismInfo(BAD_SLOT, CKM_SHA256, &mi), CKR_SLOT_ID_INVALID);
    KSP_ASSERT_RV(f->C_InitToken(BAD_SLOT, (CK_UTF8CHAR_PTR) "12345678", 8, label),
                  CKR_SLOT_ID_INVALID);
    KSP_ASSERT_RV(f->C_OpenSession(BAD_SLOT, CKF_SERIAL_SESSION, NULL, NULL, &s),
                  CKR_SLOT_ID_INVALID);
    KSP_ASSERT_RV(f->C_CloseAllSessions(BAD_SLOT), CKR_SLOT_ID_INVALID);
    /* An uninitialised token: no mechanism is refused, but no session info. */
    KSP_ASSERT_RV(f->C_GetMechanismInfo(ksp_test_empty_slot(), CKM_VENDOR_DEFINED, &mi),
                  CKR_MECHANISM_INVALID);
}
END_TEST

/* Every function that takes a session, with one that never existed and with
 * one that was closed: CKR_SESSION_HANDLE_INVALID. */
static void all_session_functions(CK_FUNCTION_LIST *f, CK_SESSION_HANDLE s, const struct env *e)
{
    CK_SESSION_INFO si;
    CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
    CK_MECHANISM sha = {CKM_SHA256, NULL, 0};
    CK_BYTE buf[64];
    CK_ULONG len = sizeof(buf), n = 0;
    CK_OBJECT_HANDLE h = 0, h2 = 0;
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_ATTRIBUTE a = {CKA_CLASS, &cls, sizeof(cls)};
    const CK_RV SI = CKR_SESSION_HANDLE_INVALID;

    KSP_ASSERT_RV(f->C_InitPIN(s, (CK_UTF8CHAR_PTR) "1234", 4), SI);
    KSP_ASSERT_RV(f->C_SetPIN(s, (CK_UTF8CHAR_PTR) "1234", 4, (CK_UTF8CHAR_PTR) "4321", 4), SI);
    KSP_ASSERT_RV(f->C_CloseSession(s), SI);
    KSP_ASSERT_RV(f->C_GetSessionInfo(s, &si), SI);
    KSP_ASSERT_RV2(f->C_GetOperationState(s, NULL, &len), SI, CKR_FUNCTION_NOT_SUPPORTED);
    KSP_ASSERT_RV2(f->C_SetOperationState(s, buf, 8, 0, 0), SI, CKR_FUNCTION_NOT_SUPPORTED);
    KSP_ASSERT_RV(f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR) "1234", 4), SI);
    KSP_ASSERT_RV(f->C_Logout(s), SI);
    KSP_ASSERT_RV(f->C_CreateObject(s, &a, 1, &h), SI);
    KSP_ASSERT_RV(f->C_CopyObject(s, e->data, NULL, 0, &h), SI);
    KSP_ASSERT_RV(f->C_DestroyObject(s, e->data), SI);
    KSP_ASSERT_RV(f->C_GetObjectSize(s, e->data, &n), SI);
    KSP_ASSERT_RV(f->C_GetAttributeValue(s, e->data, &a, 1), SI);
    KSP_ASSERT_RV(f->C_SetAttributeValue(s, e->data, &a, 1), SI);
    KSP_ASSERT_RV(f->C_FindObjectsInit(s, &a, 1), SI);
    KSP_ASSERT_RV(f->C_FindObjects(s, &h, 1, &n), SI);
    KSP_ASSERT_RV(f->C_FindObjectsFinal(s), SI);
    KSP_ASSERT_RV(f->C_EncryptInit(s, &m, e->pub), SI);
    KSP_ASSERT_RV(f->C_Encrypt(s, buf, 8, buf, &len), SI);
    KSP_ASSERT_RV(f->C_EncryptUpdate(s, buf, 8, buf, &len), SI);
    KSP_ASSERT_RV(f->C_EncryptFinal(s, buf, &len), SI);
    KSP_ASSERT_RV(f->C_DecryptInit(s, &m, e->priv), SI);
    KSP_ASSERT_RV(f->C_Decrypt(s, buf, 8, buf, &len), SI);
    KSP_ASSERT_RV(f->C_DecryptUpdate(s, buf, 8, buf, &len), SI);
    KSP_ASSERT_RV(f->C_DecryptFinal(s, buf, &len), SI);
    KSP_ASSERT_RV(f->C_DigestInit(s, &sha), SI);
    KSP_ASSERT_RV(f->C_Digest(s, buf, 8, buf, &len), SI);
    KSP_ASSERT_RV(f->C_DigestUpdate(s, buf, 8), SI);
    KSP_ASSERT_RV(f->C_DigestKey(s, e->priv), SI);
    KSP_ASSERT_RV(f->C_DigestFinal(s, buf, &len), SI);
    KSP_ASSERT_RV(f->C_SignInit(s, &m, e->priv), SI);
    KSP_ASSERT_RV(f->C_Sign(s, buf, 8, buf, &len), SI);
    KSP_ASSERT_RV(f->C_SignUpdate(s, buf, 8), SI);
    KSP_ASSERT_RV(f->C_SignFinal(s, buf, &len), SI);
    KSP_ASSERT_RV(f->C_SignRecoverInit(s, &m, e->priv), SI);
    KSP_ASSERT_RV(f->C_SignRecover(s, buf, 8, buf, &len), SI);
    KSP_ASSERT_RV(f->C_VerifyInit(s, &m, e->pub), SI);
    KSP_ASSERT_RV(f->C_Verify(s, buf, 8, buf, 8), SI);
    KSP_ASSERT_RV(f->C_VerifyUpdate(s, buf, 8), SI);
    KSP_ASSERT_RV(f->C_VerifyFinal(s, buf, 8), SI);
    KSP_ASSERT_RV(f->C_VerifyRecoverInit(s, &m, e->pub), SI);
    KSP_ASSERT_RV(f->C_VerifyRecover(s, buf, 8, buf, &len), SI);
    KSP_ASSERT_RV2(f->C_DigestEncryptUpdate(s, buf, 8, buf, &len), SI, CKR_FUNCTION_NOT_SUPPORTED);
    KSP_ASSERT_RV2(f->C_DecryptDigestUpdate(s, buf, 8, buf, &len), SI, CKR_FUNCTION_NOT_SUPPORTED);
    KSP_ASSERT_RV2(f->C_SignEncryptUpdate(s, buf, 8, buf, &len), SI, CKR_FUNCTION_NOT_SUPPORTED);
    KSP_ASSERT_RV2(f->C_DecryptVerifyUpdate(s, buf, 8, buf, &len), SI, CKR_FUNCTION_NOT_SUPPORTED);
    KSP_ASSERT_RV2(f->C_GenerateKey(s, &m, &a, 1, &h), SI, CKR_FUNCTION_NOT_SUPPORTED);
    KSP_ASSERT_RV(f->C_GenerateKeyPair(s, &m, &a, 1, &a, 1, &h, &h2), SI);
    KSP_ASSERT_RV2(f->C_WrapKey(s, &m, e->pub, e->priv, buf, &len), SI, CKR_FUNCTION_NOT_SUPPORTED);
    KSP_ASSERT_RV2(f->C_UnwrapKey(s, &m, e->priv, buf, 8, &a, 1, &h), SI,
                   CKR_FUNCTION_NOT_SUPPORTED);
    KSP_ASSERT_RV(f->C_DeriveKey(s, &m, e->priv, &a, 1, &h), SI);
    KSP_ASSERT_RV2(f->C_SeedRandom(s, buf, 8), SI, CKR_RANDOM_SEED_NOT_SUPPORTED);
    KSP_ASSERT_RV(f->C_GenerateRandom(s, buf, 8), SI);
    /* Legacy functions (§5.16): not parallel, whatever the handle. */
    KSP_ASSERT_RV2(f->C_GetFunctionStatus(s), SI, CKR_FUNCTION_NOT_PARALLEL);
    KSP_ASSERT_RV2(f->C_CancelFunction(s), SI, CKR_FUNCTION_NOT_PARALLEL);
}

START_TEST(test_invalid_session)
{
    CK_SESSION_HANDLE closed;
    struct env e;

    make_env(&e);
    all_session_functions(&fl30()->base, BAD_SESSION, &e);
    all_session_functions(&fl30()->base, CK_INVALID_HANDLE, &e);
    closed = ksp_test_open(ksp_t.slot, true);
    KSP_ASSERT_OK(P11->C_CloseSession(closed));
    all_session_functions(&fl30()->base, closed, &e);
    /* The objects and the other session survived all that. */
    ck_assert_uint_eq(ksp_test_get_ulong(e.s, e.data, CKA_CLASS), CKO_DATA);
}
END_TEST

START_TEST(test_invalid_object)
{
    CK_FUNCTION_LIST_3_0 *x = fl30();
    CK_FUNCTION_LIST *f = &x->base;
    CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
    CK_MECHANISM ecdh = {CKM_ECDH1_DERIVE, NULL, 0};
    CK_MECHANISM rsa = {CKM_RSA_PKCS, NULL, 0};
    CK_OBJECT_HANDLE h = 0;
    CK_ULONG n = 0;
    CK_BYTE buf[64];
    CK_ULONG len = sizeof(buf);
    CK_ATTRIBUTE a = {CKA_LABEL, buf, sizeof(buf)};
    struct env e;

    make_env(&e);
    const CK_OBJECT_HANDLE bad[] = {BAD_OBJECT, CK_INVALID_HANDLE};
    for (size_t i = 0; i < 2; i++) {
        CK_OBJECT_HANDLE o = bad[i];
        KSP_ASSERT_RV(f->C_CopyObject(e.s, o, NULL, 0, &h), CKR_OBJECT_HANDLE_INVALID);
        KSP_ASSERT_RV(f->C_DestroyObject(e.s, o), CKR_OBJECT_HANDLE_INVALID);
        KSP_ASSERT_RV(f->C_GetObjectSize(e.s, o, &n), CKR_OBJECT_HANDLE_INVALID);
        KSP_ASSERT_RV(f->C_GetAttributeValue(e.s, o, &a, 1), CKR_OBJECT_HANDLE_INVALID);
        KSP_ASSERT_RV(f->C_SetAttributeValue(e.s, o, &a, 1), CKR_OBJECT_HANDLE_INVALID);
        KSP_ASSERT_RV(f->C_SignInit(e.s, &m, o), CKR_KEY_HANDLE_INVALID);
        KSP_ASSERT_RV(f->C_VerifyInit(e.s, &m, o), CKR_KEY_HANDLE_INVALID);
        KSP_ASSERT_RV(f->C_EncryptInit(e.s, &rsa, o), CKR_KEY_HANDLE_INVALID);
        KSP_ASSERT_RV(f->C_DecryptInit(e.s, &rsa, o), CKR_KEY_HANDLE_INVALID);
        KSP_ASSERT_RV(f->C_DeriveKey(e.s, &ecdh, o, NULL, 0, &h), CKR_KEY_HANDLE_INVALID);
        KSP_ASSERT_RV2(f->C_SignRecoverInit(e.s, &m, o), CKR_KEY_HANDLE_INVALID,
                       CKR_FUNCTION_NOT_SUPPORTED);
        KSP_ASSERT_RV2(f->C_VerifyRecoverInit(e.s, &m, o), CKR_KEY_HANDLE_INVALID,
                       CKR_FUNCTION_NOT_SUPPORTED);
        KSP_ASSERT_RV(f->C_WrapKey(e.s, &m, o, e.pub, buf, &len), CKR_WRAPPING_KEY_HANDLE_INVALID);
        KSP_ASSERT_RV(f->C_WrapKey(e.s, &m, e.pub, o, buf, &len), CKR_KEY_HANDLE_INVALID);
        KSP_ASSERT_RV(f->C_UnwrapKey(e.s, &m, o, buf, 8, NULL, 0, &h),
                      CKR_UNWRAPPING_KEY_HANDLE_INVALID);
    }
    /* A destroyed object's handle is invalid from then on. */
    KSP_ASSERT_OK(f->C_DestroyObject(e.s, e.data));
    KSP_ASSERT_RV(f->C_GetAttributeValue(e.s, e.data, &a, 1), CKR_OBJECT_HANDLE_INVALID);
    KSP_ASSERT_RV(f->C_DestroyObject(e.s, e.data), CKR_OBJECT_HANDLE_INVALID);
    /* A data object is no key. */
    CK_OBJECT_HANDLE d = ksp_test_create_data(e.s, "d2", false, false);
    KSP_ASSERT_RV(f->C_SignInit(e.s, &m, d), CKR_KEY_HANDLE_INVALID);
}
END_TEST

/* ---- wrong states ---- */

START_TEST(test_operation_not_initialized)
{
    CK_FUNCTION_LIST_3_0 *x = fl30();
    CK_FUNCTION_LIST *f = &x->base;
    CK_BYTE buf[128];
    CK_ULONG len = sizeof(buf), n = 0;
    CK_OBJECT_HANDLE h;
    CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
    CK_MECHANISM sha = {CKM_SHA256, NULL, 0};
    const CK_RV ON = CKR_OPERATION_NOT_INITIALIZED;
    struct env e;

    make_env(&e);
    KSP_ASSERT_RV(f->C_Encrypt(e.s, buf, 8, buf, &len), ON);
    KSP_ASSERT_RV(f->C_EncryptUpdate(e.s, buf, 8, buf, &len), ON);
    KSP_ASSERT_RV(f->C_EncryptFinal(e.s, buf, &len), ON);
    KSP_ASSERT_RV(f->C_Decrypt(e.s, buf, 8, buf, &len), ON);
    KSP_ASSERT_RV(f->C_DecryptUpdate(e.s, buf, 8, buf, &len), ON);
    KSP_ASSERT_RV(f->C_DecryptFinal(e.s, buf, &len), ON);
    KSP_ASSERT_RV(f->C_Digest(e.s, buf, 8, buf, &len), ON);
    KSP_ASSERT_RV(f->C_DigestUpdate(e.s, buf, 8), ON);
    KSP_ASSERT_RV(f->C_DigestKey(e.s, e.priv), ON);
    KSP_ASSERT_RV(f->C_DigestFinal(e.s, buf, &len), ON);
    KSP_ASSERT_RV(f->C_Sign(e.s, buf, 8, buf, &len), ON);
    KSP_ASSERT_RV(f->C_SignUpdate(e.s, buf, 8), ON);
    KSP_ASSERT_RV(f->C_SignFinal(e.s, buf, &len), ON);
    KSP_ASSERT_RV2(f->C_SignRecover(e.s, buf, 8, buf, &len), ON, CKR_FUNCTION_NOT_SUPPORTED);
    KSP_ASSERT_RV(f->C_Verify(e.s, buf, 8, buf, 8), ON);
    KSP_ASSERT_RV(f->C_VerifyUpdate(e.s, buf, 8), ON);
    KSP_ASSERT_RV(f->C_VerifyFinal(e.s, buf, 8), ON);
    KSP_ASSERT_RV2(f->C_VerifyRecover(e.s, buf, 8, buf, &len), ON, CKR_FUNCTION_NOT_SUPPORTED);
    KSP_ASSERT_RV(f->C_FindObjects(e.s, &h, 1, &n), ON);
    KSP_ASSERT_RV(f->C_FindObjectsFinal(e.s), ON);
    /* The context-specific login needs an operation (§5.6 C_Login). */
    KSP_ASSERT_RV(f->C_Login(e.s, CKU_CONTEXT_SPECIFIC, (CK_UTF8CHAR_PTR)KSP_TEST_USER_PIN, 4), ON);

    /* Operation active: a second *Init of the same kind. */
    KSP_ASSERT_OK(f->C_SignInit(e.s, &m, e.priv));
    KSP_ASSERT_RV(f->C_SignInit(e.s, &m, e.priv), CKR_OPERATION_ACTIVE);
    KSP_ASSERT_OK(f->C_DigestInit(e.s, &sha));
    KSP_ASSERT_RV(f->C_DigestInit(e.s, &sha), CKR_OPERATION_ACTIVE);
    KSP_ASSERT_OK(f->C_FindObjectsInit(e.s, NULL, 0));
    KSP_ASSERT_RV(f->C_FindObjectsInit(e.s, NULL, 0), CKR_OPERATION_ACTIVE);
    KSP_ASSERT_OK(f->C_FindObjectsFinal(e.s));
    KSP_ASSERT_RV(f->C_FindObjectsFinal(e.s), ON);
    /* A signature ends the operation; the next call has none. */
    len = sizeof(buf);
    KSP_ASSERT_OK(f->C_Sign(e.s, (CK_BYTE_PTR)data32, 32, buf, &len));
    KSP_ASSERT_RV(f->C_Sign(e.s, (CK_BYTE_PTR)data32, 32, buf, &len), ON);
    /* An error other than CKR_BUFFER_TOO_SMALL ends it too (§5.2). */
    KSP_ASSERT_OK(f->C_SignInit(e.s, &m, e.priv));
    KSP_ASSERT_RV(f->C_Sign(e.s, NULL, 32, buf, &len), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(f->C_SignUpdate(e.s, buf, 8), ON);
}
END_TEST

START_TEST(test_login_states)
{
    CK_FUNCTION_LIST_3_0 *x = fl30();
    CK_FUNCTION_LIST *f = &x->base;
    CK_SESSION_HANDLE ro, rw, s2;
    CK_OBJECT_HANDLE h, pub, priv;
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL yes = CK_TRUE;
    CK_UTF8CHAR label[32];
    CK_ATTRIBUTE priv_data[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_PRIVATE, &yes, 1}};
    CK_ATTRIBUTE tok_data[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_TOKEN, &yes, 1}};
    CK_SLOT_ID slot = ksp_test_init_token("states");

    memset(label, ' ', sizeof(label));
    ksp_test_init_user_pin(slot, KSP_TEST_USER_PIN);
    /* §5.6: only serial sessions. */
    KSP_ASSERT_RV(f->C_OpenSession(slot, 0, NULL, NULL, &s2), CKR_SESSION_PARALLEL_NOT_SUPPORTED);
    ro = ksp_test_open(slot, false);
    rw = ksp_test_open(slot, true);

    /* Public sessions. */
    KSP_ASSERT_RV(f->C_Logout(rw), CKR_USER_NOT_LOGGED_IN);
    KSP_ASSERT_RV(f->C_InitPIN(rw, (CK_UTF8CHAR_PTR) "5678", 4), CKR_USER_NOT_LOGGED_IN);
    KSP_ASSERT_RV(f->C_CreateObject(rw, priv_data, 2, &h), CKR_USER_NOT_LOGGED_IN);
    KSP_ASSERT_RV(f->C_CreateObject(ro, tok_data, 2, &h), CKR_SESSION_READ_ONLY);
    KSP_ASSERT_RV(f->C_SetPIN(ro, (CK_UTF8CHAR_PTR)KSP_TEST_USER_PIN, 4,
                              (CK_UTF8CHAR_PTR)KSP_TEST_USER_PIN, 4),
                  CKR_SESSION_READ_ONLY);
    KSP_ASSERT_RV(ksp_test_gen_keypair(rw, CKM_EC_KEY_PAIR_GEN, NID_X9_62_prime256v1, "k", false,
                                       NULL, 0, NULL, 0, &pub, &priv),
                  CKR_USER_NOT_LOGGED_IN);
    KSP_ASSERT_RV(f->C_Login(rw, 7, (CK_UTF8CHAR_PTR)KSP_TEST_USER_PIN, 4), CKR_USER_TYPE_INVALID);
    /* SO login with a read-only session open (§5.6 C_Login). */
    KSP_ASSERT_RV(f->C_Login(rw, CKU_SO, (CK_UTF8CHAR_PTR)KSP_TEST_SO_PIN, 8),
                  CKR_SESSION_READ_ONLY_EXISTS);
    /* User logged in: again as user or as SO. */
    KSP_ASSERT_OK(f->C_Login(rw, CKU_USER, (CK_UTF8CHAR_PTR)KSP_TEST_USER_PIN, 4));
    KSP_ASSERT_RV(f->C_Login(ro, CKU_USER, (CK_UTF8CHAR_PTR)KSP_TEST_USER_PIN, 4),
                  CKR_USER_ALREADY_LOGGED_IN);
    KSP_ASSERT_RV(f->C_Login(rw, CKU_SO, (CK_UTF8CHAR_PTR)KSP_TEST_SO_PIN, 8),
                  CKR_USER_ANOTHER_ALREADY_LOGGED_IN);
    KSP_ASSERT_RV(f->C_InitPIN(rw, (CK_UTF8CHAR_PTR) "5678", 4), CKR_USER_NOT_LOGGED_IN);
    /* Token objects from a read-only session, even logged in. */
    KSP_ASSERT_RV(f->C_CreateObject(ro, tok_data, 2, &h), CKR_SESSION_READ_ONLY);
    /* Sessions open: no re-initialisation (§5.5 C_InitToken). */
    KSP_ASSERT_RV(f->C_InitToken(slot, (CK_UTF8CHAR_PTR)KSP_TEST_SO_PIN, 8, label),
                  CKR_SESSION_EXISTS);
    KSP_ASSERT_OK(f->C_Logout(rw));
    KSP_ASSERT_RV(f->C_Logout(rw), CKR_USER_NOT_LOGGED_IN);
    KSP_ASSERT_OK(f->C_CloseAllSessions(slot));
    KSP_ASSERT_RV(f->C_CloseSession(ro), CKR_SESSION_HANDLE_INVALID);
}
END_TEST

/* ---- zero and huge lengths ---- */

START_TEST(test_lengths)
{
    CK_FUNCTION_LIST_3_0 *x = fl30();
    CK_FUNCTION_LIST *f = &x->base;
    CK_SLOT_ID slots[16];
    CK_MECHANISM_TYPE mechs[64];
    CK_ULONG n, len, need;
    CK_BYTE buf[512];
    CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
    CK_OBJECT_CLASS cls = 0;
    CK_ATTRIBUTE a = {CKA_CLASS, &cls, HUGE};
    CK_ATTRIBUTE nullval = {CKA_LABEL, NULL, HUGE};
    CK_OBJECT_CLASS data = CKO_DATA;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &data, sizeof(data)}, {CKA_LABEL, NULL, HUGE}};
    CK_OBJECT_HANDLE h;
    CK_UTF8CHAR label[32];
    struct env e;

    make_env(&e);
    memset(label, ' ', sizeof(label));
    /* §5.2 buffer convention: too small -> CKR_BUFFER_TOO_SMALL and the size. */
    n = 0;
    KSP_ASSERT_RV(f->C_GetSlotList(CK_FALSE, slots, &n), CKR_BUFFER_TOO_SMALL);
    ck_assert_uint_ge(n, 2);
    n = 0;
    KSP_ASSERT_RV(f->C_GetMechanismList(ksp_t.slot, mechs, &n), CKR_BUFFER_TOO_SMALL);
    ck_assert_uint_ge(n, 10);
    n = 64;
    KSP_ASSERT_OK(f->C_GetMechanismList(ksp_t.slot, mechs, &n));

    /* Sign: length query, zero-length buffer, then the real call: the
     * operation survives CKR_BUFFER_TOO_SMALL. */
    KSP_ASSERT_OK(f->C_SignInit(e.s, &m, e.priv));
    KSP_ASSERT_OK(f->C_Sign(e.s, (CK_BYTE_PTR)data32, 32, NULL, &need));
    ck_assert_uint_ge(need, 64);
    len = 0;
    KSP_ASSERT_RV(f->C_Sign(e.s, (CK_BYTE_PTR)data32, 32, buf, &len), CKR_BUFFER_TOO_SMALL);
    ck_assert_uint_eq(len, need);
    len = sizeof(buf);
    KSP_ASSERT_OK(f->C_Sign(e.s, (CK_BYTE_PTR)data32, 32, buf, &len));
    ck_assert_uint_le(len, need);

    /* Empty input is data too: a signature of nothing. */
    KSP_ASSERT_OK(f->C_SignInit(e.s, &m, e.priv));
    len = sizeof(buf);
    KSP_ASSERT_OK(f->C_Sign(e.s, (CK_BYTE_PTR)data32, 0, buf, &len));

    /* Attribute lengths: a huge buffer length is only an upper bound... */
    KSP_ASSERT_OK(f->C_GetAttributeValue(e.s, e.data, &a, 1));
    ck_assert_uint_eq(a.ulValueLen, sizeof(CK_OBJECT_CLASS));
    ck_assert_uint_eq(cls, CKO_DATA);
    /* ... and a NULL value asks for the length, whatever ulValueLen says. */
    KSP_ASSERT_OK(f->C_GetAttributeValue(e.s, e.data, &nullval, 1));
    ck_assert_uint_eq(nullval.ulValueLen, 4);
    /* In a template, a NULL value with a length is no value (attr.h). */
    KSP_ASSERT_RV(f->C_CreateObject(e.s, t, 2, &h), CKR_ATTRIBUTE_VALUE_INVALID);
    KSP_ASSERT_RV(f->C_SetAttributeValue(e.s, e.data, &t[1], 1), CKR_ATTRIBUTE_VALUE_INVALID);

    /* PINs: lengths out of range are refused before any byte is read;
     * C_Login has no CKR_PIN_LEN_RANGE (§5.6): such a PIN is incorrect. */
    KSP_ASSERT_OK(f->C_Logout(e.s));
    KSP_ASSERT_RV(f->C_Login(e.s, CKU_USER, (CK_UTF8CHAR_PTR)KSP_TEST_USER_PIN, HUGE),
                  CKR_PIN_INCORRECT);
    KSP_ASSERT_RV2(f->C_Login(e.s, CKU_USER, (CK_UTF8CHAR_PTR) "", 0), CKR_PIN_LEN_RANGE,
                   CKR_PIN_INCORRECT);
    KSP_ASSERT_OK(f->C_Login(e.s, CKU_USER, (CK_UTF8CHAR_PTR)KSP_TEST_USER_PIN, 4));
    KSP_ASSERT_RV(f->C_SetPIN(e.s, (CK_UTF8CHAR_PTR)KSP_TEST_USER_PIN, 4,
                              (CK_UTF8CHAR_PTR)KSP_TEST_USER_PIN, HUGE),
                  CKR_PIN_LEN_RANGE);
    KSP_ASSERT_RV(
        f->C_InitToken(ksp_test_empty_slot(), (CK_UTF8CHAR_PTR)KSP_TEST_SO_PIN, HUGE, label),
        CKR_PIN_LEN_RANGE);
    /* The counter did not move: the right PIN still works as before. */
    ck_assert(!(ksp_test_token_flags(ksp_t.slot) & CKF_USER_PIN_COUNT_LOW));

    /* Zero-length random and find. */
    KSP_ASSERT_OK(f->C_GenerateRandom(e.s, buf, 0));
    KSP_ASSERT_OK(f->C_FindObjectsInit(e.s, NULL, 0));
    n = 1;
    KSP_ASSERT_OK(f->C_FindObjects(e.s, &h, 0, &n));
    ck_assert_uint_eq(n, 0);
    KSP_ASSERT_OK(f->C_FindObjectsFinal(e.s));
}
END_TEST

static Suite *robust_suite(void)
{
    Suite *su = suite_create("api_robust");
    TCase *tn = tcase_create("not_initialized");
    TCase *tc = tcase_create("robust");

    ksp_test_add_fixtures(tn, false);
    tcase_add_test(tn, test_not_initialized);
    suite_add_tcase(su, tn);

    ksp_test_add_fixtures(tc, true);
    tcase_add_test(tc, test_null_general);
    tcase_add_test(tc, test_null_objects);
    tcase_add_test(tc, test_null_crypto);
    tcase_add_test(tc, test_invalid_slot);
    tcase_add_test(tc, test_invalid_session);
    tcase_add_test(tc, test_invalid_object);
    tcase_add_test(tc, test_operation_not_initialized);
    tcase_add_test(tc, test_login_states);
    tcase_add_test(tc, test_lengths);
    suite_add_tcase(su, tc);
    return su;
}

int main(void)
{
    SRunner *sr = srunner_create(robust_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
