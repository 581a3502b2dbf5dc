/*
 * The only exported symbols (provider/ksp11.map): C_GetFunctionList,
 * C_GetInterfaceList and C_GetInterface (PKCS#11 3.0 §5.2). Two interfaces
 * named "PKCS 11": 3.0 (the 2.40 list plus the 3.0 functions, which ksp11
 * does not implement) and 2.40 for older consumers such as p11-kit 0.24;
 * then "Vendor ksp11" (TPM verdict, token protection; ksp11.h).
 */
#include <string.h>

#include "api.h"
#include "core.h"
#include "ksp11/ksp11.h"

#define KSP_EXPORT __attribute__((visibility("default")))

static CK_RV login_user(CK_SESSION_HANDLE h, CK_USER_TYPE u, CK_UTF8CHAR_PTR pin, CK_ULONG len,
                        CK_UTF8CHAR_PTR user, CK_ULONG user_len)
{
    (void)h;
    (void)u;
    (void)pin;
    (void)len;
    (void)user;
    (void)user_len;
    return CKR_FUNCTION_NOT_SUPPORTED;
}

static CK_RV session_cancel(CK_SESSION_HANDLE h, CK_FLAGS flags)
{
    (void)h;
    (void)flags;
    return CKR_FUNCTION_NOT_SUPPORTED;
}

/* Message-based functions (3.0 §5.13-ish): all unsupported. Callers cast the
 * pointer to the right prototype; returning without reading arguments is
 * safe under the platform calling convention for any argument list. */
static CK_RV message_unsupported(void)
{
    return CKR_FUNCTION_NOT_SUPPORTED;
}

#define FUNCTIONS_2_40                                                                             \
    ksp_api_Initialize, ksp_api_Finalize, ksp_api_GetInfo, C_GetFunctionList, ksp_api_GetSlotList, \
        ksp_api_GetSlotInfo, ksp_api_GetTokenInfo, ksp_api_GetMechanismList,                       \
        ksp_api_GetMechanismInfo, ksp_api_InitToken, ksp_api_InitPIN, ksp_api_SetPIN,              \
        ksp_api_OpenSession, ksp_api_CloseSession, ksp_api_CloseAllSessions,                       \
        ksp_api_GetSessionInfo, ksp_api_GetOperationState, ksp_api_SetOperationState,              \
        ksp_api_Login, ksp_api_Logout, ksp_api_CreateObject, ksp_api_CopyObject,                   \
        ksp_api_DestroyObject, ksp_api_GetObjectSize, ksp_api_GetAttributeValue,                   \
        ksp_api_SetAttributeValue, ksp_api_FindObjectsInit, ksp_api_FindObjects,                   \
        ksp_api_FindObjectsFinal, ksp_api_EncryptInit, ksp_api_Encrypt, ksp_api_EncryptUpdate,     \
        ksp_api_EncryptFinal, ksp_api_DecryptInit, ksp_api_Decrypt, ksp_api_DecryptUpdate,         \
        ksp_api_DecryptFinal, ksp_api_DigestInit, ksp_api_Digest, ksp_api_DigestUpdate,            \
        ksp_api_DigestKey, ksp_api_DigestFinal, ksp_api_SignInit, ksp_api_Sign,                    \
        ksp_api_SignUpdate, ksp_api_SignFinal, ksp_api_SignRecoverInit, ksp_api_SignRecover,       \
        ksp_api_VerifyInit, ksp_api_Verify, ksp_api_VerifyUpdate, ksp_api_VerifyFinal,             \
        ksp_api_VerifyRecoverInit, ksp_api_VerifyRecover, ksp_api_DigestEncryptUpdate,             \
        ksp_api_DecryptDigestUpdate, ksp_api_SignEncryptUpdate, ksp_api_DecryptVerifyUpdate,       \
        ksp_api_GenerateKey, ksp_api_GenerateKeyPair, ksp_api_WrapKey, ksp_api_UnwrapKey,          \
        ksp_api_DeriveKey, ksp_api_SeedRandom, ksp_api_GenerateRandom, ksp_api_GetFunctionStatus,  \
        ksp_api_CancelFunction, ksp_api_WaitForSlotEvent

static CK_FUNCTION_LIST list_2_40 = {{2, 40}, FUNCTIONS_2_40};

static CK_RV get_interface_list(CK_INTERFACE_PTR list, CK_ULONG_PTR count);
static CK_RV get_interface(CK_UTF8CHAR_PTR name, CK_VERSION_PTR version, CK_INTERFACE_PTR_PTR out,
                           CK_FLAGS flags);

static CK_FUNCTION_LIST_3_0 list_3_0 = {
    {{3, 0}, FUNCTIONS_2_40}, get_interface_list,  get_interface,       login_user,
    session_cancel,           message_unsupported, message_unsupported, message_unsupported,
    message_unsupported,      message_unsupported, message_unsupported, message_unsupported,
    message_unsupported,      message_unsupported, message_unsupported, message_unsupported,
    message_unsupported,      message_unsupported, message_unsupported, message_unsupported,
    message_unsupported,      message_unsupported, message_unsupported, message_unsupported,
    message_unsupported,
};

/* The vendor interface (include/ksp11/ksp11.h); like every function list it
 * starts with its CK_VERSION, which get_interface reads. */
static CK_KSP11_FUNCTION_LIST list_vendor = {
    {1, 1},
    ksp_api_KSP11_GetTpmStatus,
    ksp_api_KSP11_GetTokenProtection,
    ksp_api_KSP11_AttestKey,
};

static CK_INTERFACE interfaces[3] = {
    {(CK_CHAR *)"PKCS 11", &list_3_0, 0},
    {(CK_CHAR *)"PKCS 11", &list_2_40, 0},
    {(CK_CHAR *)KSP11_INTERFACE_NAME, &list_vendor, 0},
};

KSP_EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR out)
{
    if (!out)
        return CKR_ARGUMENTS_BAD;
    *out = &list_2_40;
    return CKR_OK;
}

static CK_RV get_interface_list(CK_INTERFACE_PTR list, CK_ULONG_PTR count)
{
    CK_ULONG n = sizeof(interfaces) / sizeof(interfaces[0]);
    if (!count)
        return CKR_ARGUMENTS_BAD;
    if (!list) {
        *count = n;
        return CKR_OK;
    }
    if (*count < n) {
        *count = n;
        return CKR_BUFFER_TOO_SMALL;
    }
    memcpy(list, interfaces, sizeof(interfaces));
    *count = n;
    return CKR_OK;
}

static CK_RV get_interface(CK_UTF8CHAR_PTR name, CK_VERSION_PTR version, CK_INTERFACE_PTR_PTR out,
                           CK_FLAGS flags)
{
    if (!out)
        return CKR_ARGUMENTS_BAD;
    for (size_t i = 0; i < sizeof(interfaces) / sizeof(interfaces[0]); i++) {
        const CK_FUNCTION_LIST *fl = interfaces[i].pFunctionList;
        if (name && strcmp((const char *)name, (const char *)interfaces[i].pInterfaceName) != 0)
            continue;
        if (version && (version->major != fl->version.major || version->minor != fl->version.minor))
            continue;
        /* We set no interface flags; a caller demanding one gets nothing. */
        if ((flags & interfaces[i].flags) != flags)
            continue;
        *out = &interfaces[i];
        return CKR_OK;
    }
    return CKR_ARGUMENTS_BAD;
}

KSP_EXPORT CK_RV C_GetInterfaceList(CK_INTERFACE_PTR list, CK_ULONG_PTR count)
{
    return get_interface_list(list, count);
}

KSP_EXPORT CK_RV C_GetInterface(CK_UTF8CHAR_PTR name, CK_VERSION_PTR version,
                                CK_INTERFACE_PTR_PTR out, CK_FLAGS flags)
{
    return get_interface(name, version, out, flags);
}
