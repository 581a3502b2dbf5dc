/*
 * The PKCS#11 header ksp11 builds against: p11-kit's 2.40 header plus the
 * PKCS#11 3.0 definitions it lacks (p11-kit 0.24.1 on Debian 12 predates them).
 * Values are from the OASIS PKCS#11 3.0 base specification, §3 and §5.
 */
#ifndef KSP11_PKCS11_H
#define KSP11_PKCS11_H

#include <p11-kit/pkcs11.h>

#ifndef CKA_UNIQUE_ID
#define CKA_UNIQUE_ID 0x00000004UL
#endif
#ifndef CKF_INTERFACE_FORK_SAFE
#define CKF_INTERFACE_FORK_SAFE 0x00000001UL
#endif
#ifndef CKR_OPERATION_CANCEL_FAILED
#define CKR_OPERATION_CANCEL_FAILED 0x00000202UL
#endif
#ifndef CKU_CONTEXT_SPECIFIC
#define CKU_CONTEXT_SPECIFIC 2UL
#endif

/* PKCS#11 3.0 §5.2 C_GetInterfaceList / C_GetInterface. */
typedef struct CK_INTERFACE {
    CK_CHAR *pInterfaceName;
    CK_VOID_PTR pFunctionList;
    CK_FLAGS flags;
} CK_INTERFACE;
typedef CK_INTERFACE *CK_INTERFACE_PTR;
typedef CK_INTERFACE_PTR *CK_INTERFACE_PTR_PTR;

typedef CK_RV (*CK_C_GetInterfaceList)(CK_INTERFACE_PTR, CK_ULONG_PTR);
typedef CK_RV (*CK_C_GetInterface)(CK_UTF8CHAR_PTR, CK_VERSION_PTR, CK_INTERFACE_PTR_PTR, CK_FLAGS);

typedef CK_ULONG CK_USER_TYPE_3;
typedef CK_RV (*ksp_fn_generic)(void);

/*
 * PKCS#11 3.0 function list: the 2.40 list (same order, same types) followed
 * by the 3.0 additions. Declared as a struct whose first member is the 2.40
 * list so the prefix layout is identical by construction.
 */
typedef struct CK_FUNCTION_LIST_3_0 {
    CK_FUNCTION_LIST base;
    CK_RV (*C_GetInterfaceList)(CK_INTERFACE_PTR, CK_ULONG_PTR);
    CK_RV (*C_GetInterface)(CK_UTF8CHAR_PTR, CK_VERSION_PTR, CK_INTERFACE_PTR_PTR, CK_FLAGS);
    CK_RV (*C_LoginUser)
    (CK_SESSION_HANDLE, CK_USER_TYPE, CK_UTF8CHAR_PTR, CK_ULONG, CK_UTF8CHAR_PTR, CK_ULONG);
    CK_RV (*C_SessionCancel)(CK_SESSION_HANDLE, CK_FLAGS);
    ksp_fn_generic C_MessageEncryptInit;
    ksp_fn_generic C_EncryptMessage;
    ksp_fn_generic C_EncryptMessageBegin;
    ksp_fn_generic C_EncryptMessageNext;
    ksp_fn_generic C_MessageEncryptFinal;
    ksp_fn_generic C_MessageDecryptInit;
    ksp_fn_generic C_DecryptMessage;
    ksp_fn_generic C_DecryptMessageBegin;
    ksp_fn_generic C_DecryptMessageNext;
    ksp_fn_generic C_MessageDecryptFinal;
    ksp_fn_generic C_MessageSignInit;
    ksp_fn_generic C_SignMessage;
    ksp_fn_generic C_SignMessageBegin;
    ksp_fn_generic C_SignMessageNext;
    ksp_fn_generic C_MessageSignFinal;
    ksp_fn_generic C_MessageVerifyInit;
    ksp_fn_generic C_VerifyMessage;
    ksp_fn_generic C_VerifyMessageBegin;
    ksp_fn_generic C_VerifyMessageNext;
    ksp_fn_generic C_MessageVerifyFinal;
} CK_FUNCTION_LIST_3_0;

#endif
