/*
 * PKCS#11 3.0 §5.4 general-purpose functions and §5.5 slot and token
 * management.
 */
#include <string.h>

#include "api.h"
#include "core.h"
#include "mech.h"

CK_RV ksp_api_Initialize(CK_VOID_PTR args)
{
    return ksp_trace("C_Initialize", ksp_lib_initialize(args));
}

CK_RV ksp_api_Finalize(CK_VOID_PTR reserved)
{
    /* §5.4: pReserved must be NULL. */
    if (reserved)
        return CKR_ARGUMENTS_BAD;
    return ksp_lib_finalize();
}

CK_RV ksp_api_GetInfo(CK_INFO_PTR info)
{
    CK_RV rv = ksp_enter();
    if (rv != CKR_OK)
        return rv;
    if (!info) {
        rv = CKR_ARGUMENTS_BAD;
    } else {
        memset(info, 0, sizeof(*info));
        info->cryptokiVersion.major = 2;
        info->cryptokiVersion.minor = 40;
        ksp_pad(info->manufacturerID, sizeof(info->manufacturerID), "ksp11");
        info->flags = 0;
        ksp_pad(info->libraryDescription, sizeof(info->libraryDescription), "ksp11 PKCS#11 module");
        info->libraryVersion.major = KSP11_VERSION_MAJOR;
        info->libraryVersion.minor = KSP11_VERSION_MINOR;
    }
    ksp_leave();
    return ksp_trace("C_GetInfo", rv);
}

CK_RV ksp_api_GetSlotList(CK_BBOOL present, CK_SLOT_ID_PTR list, CK_ULONG_PTR count)
{
    (void)present; /* every slot has a token present */
    CK_RV rv = ksp_enter();
    if (rv != CKR_OK)
        return rv;
    if (!count) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    rv = ksp_tokens_refresh_inlock();
    if (rv != CKR_OK)
        goto out;
    CK_ULONG n = 0;
    for (struct ksp_token *t = ksp_lib.tokens; t; t = t->next)
        n++;
    if (!list) {
        *count = n;
        goto out;
    }
    if (*count < n) {
        *count = n;
        rv = CKR_BUFFER_TOO_SMALL;
        goto out;
    }
    n = 0;
    for (struct ksp_token *t = ksp_lib.tokens; t; t = t->next)
        list[n++] = t->slot;
    *count = n;
out:
    ksp_leave();
    return ksp_trace("C_GetSlotList", rv);
}

CK_RV ksp_api_GetSlotInfo(CK_SLOT_ID slot, CK_SLOT_INFO_PTR info)
{
    CK_RV rv = ksp_enter();
    if (rv != CKR_OK)
        return rv;
    struct ksp_token *t = ksp_token_by_slot_inlock(slot);
    if (!t) {
        rv = CKR_SLOT_ID_INVALID;
    } else if (!info) {
        rv = CKR_ARGUMENTS_BAD;
    } else {
        memset(info, 0, sizeof(*info));
        ksp_pad(info->slotDescription, sizeof(info->slotDescription),
                t->initialized ? "ksp11 token" : "ksp11 new token");
        ksp_pad(info->manufacturerID, sizeof(info->manufacturerID), "ksp11");
        /* The token is a directory of the store: always present, not removable. */
        info->flags = CKF_TOKEN_PRESENT;
        info->firmwareVersion.major = KSP11_VERSION_MAJOR;
        info->firmwareVersion.minor = KSP11_VERSION_MINOR;
    }
    ksp_leave();
    return ksp_trace("C_GetSlotInfo", rv);
}

CK_RV ksp_api_GetTokenInfo(CK_SLOT_ID slot, CK_TOKEN_INFO_PTR info)
{
    CK_RV rv = ksp_enter();
    if (rv != CKR_OK)
        return rv;
    struct ksp_token *t = ksp_token_by_slot_inlock(slot);
    if (!t)
        rv = CKR_SLOT_ID_INVALID;
    else if (!info)
        rv = CKR_ARGUMENTS_BAD;
    else
        rv = ksp_token_info_inlock(t, info);
    ksp_leave();
    return ksp_trace("C_GetTokenInfo", rv);
}

CK_RV ksp_api_GetMechanismList(CK_SLOT_ID slot, CK_MECHANISM_TYPE_PTR list, CK_ULONG_PTR count)
{
    CK_RV rv = ksp_enter();
    if (rv != CKR_OK)
        return rv;
    CK_ULONG n = ksp_mech_count();
    if (!ksp_token_by_slot_inlock(slot)) {
        rv = CKR_SLOT_ID_INVALID;
    } else if (!count) {
        rv = CKR_ARGUMENTS_BAD;
    } else if (!list) {
        *count = n;
    } else if (*count < n) {
        *count = n;
        rv = CKR_BUFFER_TOO_SMALL;
    } else {
        for (CK_ULONG i = 0; i < n; i++)
            list[i] = ksp_mech_at(i)->type;
        *count = n;
    }
    ksp_leave();
    return ksp_trace("C_GetMechanismList", rv);
}

CK_RV ksp_api_GetMechanismInfo(CK_SLOT_ID slot, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR info)
{
    CK_RV rv = ksp_enter();
    if (rv != CKR_OK)
        return rv;
    const struct ksp_mech *m = ksp_mech_find(type);
    if (!ksp_token_by_slot_inlock(slot)) {
        rv = CKR_SLOT_ID_INVALID;
    } else if (!m) {
        rv = CKR_MECHANISM_INVALID;
    } else if (!info) {
        rv = CKR_ARGUMENTS_BAD;
    } else {
        info->ulMinKeySize = m->min_bits;
        info->ulMaxKeySize = m->max_bits;
        info->flags = m->flags;
    }
    ksp_leave();
    return ksp_trace("C_GetMechanismInfo", rv);
}

CK_RV ksp_api_InitToken(CK_SLOT_ID slot, CK_UTF8CHAR_PTR pin, CK_ULONG len, CK_UTF8CHAR_PTR label)
{
    CK_RV rv = ksp_enter();
    if (rv != CKR_OK)
        return rv;
    struct ksp_token *t = ksp_token_by_slot_inlock(slot);
    if (!t) {
        rv = CKR_SLOT_ID_INVALID;
    } else if (!pin || !label) {
        /* No protected authentication path: the SO PIN is required. */
        rv = CKR_ARGUMENTS_BAD;
    } else if (len < KSP_MIN_PIN_LEN || len > KSP_MAX_PIN_LEN) {
        rv = CKR_PIN_LEN_RANGE;
    } else if (ksp_token_has_sessions_inlock(t, false, false)) {
        /* §5.5 C_InitToken: no sessions may be open on the token. */
        rv = CKR_SESSION_EXISTS;
    } else {
        rv = ksp_token_init_inlock(t, pin, len, label);
        if (rv == CKR_OK)
            ksp_tokens_refresh_inlock();
    }
    ksp_leave();
    return ksp_trace("C_InitToken", rv);
}

CK_RV ksp_api_InitPIN(CK_SESSION_HANDLE h, CK_UTF8CHAR_PTR pin, CK_ULONG len)
{
    struct ksp_session *s = NULL;
    CK_RV rv = ksp_enter();
    if (rv != CKR_OK)
        return rv;
    rv = ksp_session_get_inlock(h, &s);
    if (rv != CKR_OK)
        goto out;
    /* §5.6 C_InitPIN: only in the "R/W SO Functions" state. */
    if (ksp_session_state_inlock(s) != CKS_RW_SO_FUNCTIONS) {
        rv = CKR_USER_NOT_LOGGED_IN;
        goto out;
    }
    if (!pin && len) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    rv = ksp_auth_init_pin_inlock(s->token, pin, len);
out:
    ksp_leave();
    return ksp_trace("C_InitPIN", rv);
}

CK_RV ksp_api_SetPIN(CK_SESSION_HANDLE h, CK_UTF8CHAR_PTR old, CK_ULONG old_len,
                     CK_UTF8CHAR_PTR pin, CK_ULONG len)
{
    struct ksp_session *s = NULL;
    CK_RV rv = ksp_enter();
    if (rv != CKR_OK)
        return rv;
    rv = ksp_session_get_inlock(h, &s);
    if (rv != CKR_OK)
        goto out;
    if ((!old && old_len) || (!pin && len)) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    /* §5.6 C_SetPIN: only in R/W sessions; changes the PIN of whoever is
     * logged in, or the user PIN when nobody is. */
    if (!(s->flags & CKF_RW_SESSION)) {
        rv = CKR_SESSION_READ_ONLY;
        goto out;
    }
    struct ksp_token *t = s->token;
    bool was_pinless = ksp_token_pinless(t);
    CK_USER_TYPE who = t->login == CKU_SO ? CKU_SO : CKU_USER;
    rv = ksp_auth_set_pin_inlock(t, who, old, old_len, pin, len);
    /* A PIN-less token that just got a PIN: the application stays logged in. */
    if (rv == CKR_OK && was_pinless && !ksp_token_pinless(t))
        t->login = CKU_USER;
out:
    ksp_leave();
    return ksp_trace("C_SetPIN", rv);
}

CK_RV ksp_api_WaitForSlotEvent(CK_FLAGS flags, CK_SLOT_ID_PTR slot, CK_VOID_PTR reserved)
{
    (void)flags;
    (void)slot;
    (void)reserved;
    CK_RV rv = ksp_enter();
    if (rv != CKR_OK)
        return rv;
    ksp_leave();
    /* Tokens are store directories; there are no insertion events to wait for. */
    return ksp_trace("C_WaitForSlotEvent", CKR_FUNCTION_NOT_SUPPORTED);
}
