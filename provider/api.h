/*
 * The PKCS#11 entry points (api_*.c), one file per chapter of PKCS#11 3.0 §5.
 * Each does argument checks, the init/fork check, session lookup, the lock,
 * login-state policy and tracing, then one core call. p11_entry.c puts them
 * into the function lists.
 */
#ifndef KSP_API_H
#define KSP_API_H

#include "ksp11/pkcs11.h"
#include "log.h"

/* Trace the return value of an entry point at debug level. */
static inline CK_RV ksp_trace(const char *fn, CK_RV rv)
{
    if (ksp_log_enabled(KSP_LOG_DEBUG))
        ksp_log(KSP_LOG_DEBUG, "api", "%s -> %s", fn, ksp_rv_name(rv));
    return rv;
}

/* §5.4 general purpose, §5.5 slot and token management */
CK_RV ksp_api_Initialize(CK_VOID_PTR args);
CK_RV ksp_api_Finalize(CK_VOID_PTR reserved);
CK_RV ksp_api_GetInfo(CK_INFO_PTR info);
CK_RV ksp_api_GetSlotList(CK_BBOOL present, CK_SLOT_ID_PTR list, CK_ULONG_PTR count);
CK_RV ksp_api_GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info);
CK_RV ksp_api_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info);
CK_RV ksp_api_GetMechanismList(CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR count);
CK_RV ksp_api_GetMechanismInfo(CK_SLOT_ID slot, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR info);
CK_RV ksp_api_InitToken(CK_SLOT_ID slot, CK_UTF8CHAR_PTR pin, CK_ULONG len, CK_UTF8CHAR_PTR label);
CK_RV ksp_api_InitPIN(CK_SESSION_HANDLE h, CK_UTF8CHAR_PTR pin, CK_ULONG len);
CK_RV ksp_api_SetPIN(CK_SESSION_HANDLE h, CK_UTF8CHAR_PTR old, CK_ULONG old_len,
                     CK_UTF8CHAR_PTR pin, CK_ULONG len);
CK_RV ksp_api_WaitForSlotEvent(CK_FLAGS flags, CK_SLOT_ID_PTR slot, CK_VOID_PTR reserved);

/* §5.6 session management */
CK_RV ksp_api_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app, CK_NOTIFY notify,
                          CK_SESSION_HANDLE_PTR h);
CK_RV ksp_api_CloseSession(CK_SESSION_HANDLE h);
CK_RV ksp_api_CloseAllSessions(CK_SLOT_ID slot);
CK_RV ksp_api_GetSessionInfo(CK_SESSION_HANDLE h, CK_SESSION_INFO_PTR info);
CK_RV ksp_api_GetOperationState(CK_SESSION_HANDLE h, CK_BYTE_PTR state, CK_ULONG_PTR len);
CK_RV ksp_api_SetOperationState(CK_SESSION_HANDLE h, CK_BYTE_PTR state, CK_ULONG len,
                                CK_OBJECT_HANDLE enc, CK_OBJECT_HANDLE auth);
CK_RV ksp_api_Login(CK_SESSION_HANDLE h, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, CK_ULONG len);
CK_RV ksp_api_Logout(CK_SESSION_HANDLE h);

/* §5.7 object management */
CK_RV ksp_api_CreateObject(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR t, CK_ULONG n,
                           CK_OBJECT_HANDLE_PTR out);
CK_RV ksp_api_CopyObject(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR t, CK_ULONG n,
                         CK_OBJECT_HANDLE_PTR out);
CK_RV ksp_api_DestroyObject(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o);
CK_RV ksp_api_GetObjectSize(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, CK_ULONG_PTR size);
CK_RV ksp_api_GetAttributeValue(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR t,
                                CK_ULONG n);
CK_RV ksp_api_SetAttributeValue(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE o, CK_ATTRIBUTE_PTR t,
                                CK_ULONG n);
CK_RV ksp_api_FindObjectsInit(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR t, CK_ULONG n);
CK_RV ksp_api_FindObjects(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE_PTR out, CK_ULONG max,
                          CK_ULONG_PTR count);
CK_RV ksp_api_FindObjectsFinal(CK_SESSION_HANDLE h);

/* §5.8-§5.15 crypto */
CK_RV ksp_api_EncryptInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k);
CK_RV ksp_api_Encrypt(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out,
                      CK_ULONG_PTR out_len);
CK_RV ksp_api_EncryptUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out,
                            CK_ULONG_PTR out_len);
CK_RV ksp_api_EncryptFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR out_len);
CK_RV ksp_api_DecryptInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k);
CK_RV ksp_api_Decrypt(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out,
                      CK_ULONG_PTR out_len);
CK_RV ksp_api_DecryptUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out,
                            CK_ULONG_PTR out_len);
CK_RV ksp_api_DecryptFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR out_len);
CK_RV ksp_api_DigestInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m);
CK_RV ksp_api_Digest(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out,
                     CK_ULONG_PTR out_len);
CK_RV ksp_api_DigestUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len);
CK_RV ksp_api_DigestKey(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE k);
CK_RV ksp_api_DigestFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR out_len);
CK_RV ksp_api_SignInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k);
CK_RV ksp_api_Sign(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR sig,
                   CK_ULONG_PTR sig_len);
CK_RV ksp_api_SignUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len);
CK_RV ksp_api_SignFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len);
CK_RV ksp_api_SignRecoverInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k);
CK_RV ksp_api_SignRecover(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR sig,
                          CK_ULONG_PTR sig_len);
CK_RV ksp_api_VerifyInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k);
CK_RV ksp_api_Verify(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR sig,
                     CK_ULONG sig_len);
CK_RV ksp_api_VerifyUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len);
CK_RV ksp_api_VerifyFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR sig, CK_ULONG sig_len);
CK_RV ksp_api_VerifyRecoverInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k);
CK_RV ksp_api_VerifyRecover(CK_SESSION_HANDLE h, CK_BYTE_PTR sig, CK_ULONG sig_len, CK_BYTE_PTR out,
                            CK_ULONG_PTR out_len);
CK_RV ksp_api_DigestEncryptUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len,
                                  CK_BYTE_PTR out, CK_ULONG_PTR out_len);
CK_RV ksp_api_DecryptDigestUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len,
                                  CK_BYTE_PTR out, CK_ULONG_PTR out_len);
CK_RV ksp_api_SignEncryptUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len,
                                CK_BYTE_PTR out, CK_ULONG_PTR out_len);
CK_RV ksp_api_DecryptVerifyUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len,
                                  CK_BYTE_PTR out, CK_ULONG_PTR out_len);
CK_RV ksp_api_GenerateKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR t, CK_ULONG n,
                          CK_OBJECT_HANDLE_PTR out);
CK_RV ksp_api_GenerateKeyPair(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR pt,
                              CK_ULONG pn, CK_ATTRIBUTE_PTR vt, CK_ULONG vn,
                              CK_OBJECT_HANDLE_PTR pub, CK_OBJECT_HANDLE_PTR priv);
CK_RV ksp_api_WrapKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE wk,
                      CK_OBJECT_HANDLE k, CK_BYTE_PTR out, CK_ULONG_PTR out_len);
CK_RV ksp_api_UnwrapKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE uk,
                        CK_BYTE_PTR in, CK_ULONG in_len, CK_ATTRIBUTE_PTR t, CK_ULONG n,
                        CK_OBJECT_HANDLE_PTR out);
CK_RV ksp_api_DeriveKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE base,
                        CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR out);
CK_RV ksp_api_SeedRandom(CK_SESSION_HANDLE h, CK_BYTE_PTR seed, CK_ULONG len);
CK_RV ksp_api_GenerateRandom(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG len);
CK_RV ksp_api_GetFunctionStatus(CK_SESSION_HANDLE h);
CK_RV ksp_api_CancelFunction(CK_SESSION_HANDLE h);

/* The vendor interface "Vendor ksp11" (api_vendor.c). */
struct CK_KSP11_TPM_STATUS;
CK_RV ksp_api_KSP11_GetTpmStatus(struct CK_KSP11_TPM_STATUS *out);
CK_RV ksp_api_KSP11_AttestKey(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE key, const CK_BYTE *nonce,
                              CK_ULONG nonce_len, CK_BYTE *bundle, CK_ULONG *bundle_len);
CK_RV ksp_api_KSP11_GetTokenProtection(CK_SLOT_ID slot, CK_ULONG *protection);

#endif
