/*
 * PKCS#11 3.0 §5.6 session management: sessions, login and logout.
 */
#include <string.h>

#include "api.h"
#include "core.h"

CK_RV ksp_api_OpenSession(CK_SLOT_ID slot, CK_FLAGS flags, CK_VOID_PTR app, CK_NOTIFY notify,
                          CK_SESSION_HANDLE_PTR h)
{
    (void)app;
    (void)notify; /* we never call back into the application */
    struct ksp_session *s = NULL;
    CK_RV rv = ksp_enter();
    if (rv != CKR_OK)
        return rv;
    struct ksp_token *t = ksp_token_by_slot_inlock(slot);
    if (!t) {
        rv = CKR_SLOT_ID_INVALID;
    } else if (!h) {
        rv = CKR_ARGUMENTS_BAD;
    } else if (!(flags & CKF_SERIAL_SESSION)) {
        /* §5.6: CKF_SERIAL_SESSION must always be set (legacy parallel sessions). */
        rv = CKR_SESSION_PARALLEL_NOT_SUPPORTED;
    } else if (!t->initialized) {
        rv = CKR_TOKEN_NOT_RECOGNIZED;
    } else if (!(flags & CKF_RW_SESSION) && t->login == CKU_SO) {
        rv = CKR_SESSION_READ_WRITE_SO_EXISTS;
    } else {
        rv = ksp_session_open_inlock(t, flags, &s);
        if (rv == CKR_OK)
            *h = s->handle;
    }
    ksp_leave();
    return ksp_trace("C_OpenSession", rv);
}

CK_RV ksp_api_CloseSession(CK_SESSION_HANDLE h)
{
    struct ksp_session *s = NULL;
    CK_RV rv = ksp_enter();
    if (rv != CKR_OK)
        return rv;
    rv = ksp_session_get_inlock(h, &s);
    if (rv == CKR_OK)
        ksp_session_close_inlock(s);
    ksp_leave();
    return ksp_trace("C_CloseSession", rv);
}

CK_RV ksp_api_CloseAllSessions(CK_SLOT_ID slot)
{
    CK_RV rv = ksp_enter();
    if (rv != CKR_OK)
        return rv;
    struct ksp_token *t = ksp_token_by_slot_inlock(slot);
    if (!t) {
        rv = CKR_SLOT_ID_INVALID;
    } else {
        struct ksp_session *s = ksp_lib.sessions;
        while (s) {
            struct ksp_session *next = s->next;
            if (s->token == t)
                ksp_session_close_inlock(s);
            s = next;
        }
    }
    ksp_leave();
    return ksp_trace("C_CloseAllSessions", rv);
}

CK_RV ksp_api_GetSessionInfo(CK_SESSION_HANDLE h, CK_SESSION_INFO_PTR info)
{
    struct ksp_session *s = NULL;
    CK_RV rv = ksp_enter();
    if (rv != CKR_OK)
        return rv;
    rv = ksp_session_get_inlock(h, &s);
    if (rv == CKR_OK && !info)
        rv = CKR_ARGUMENTS_BAD;
    if (rv == CKR_OK) {
        memset(info, 0, sizeof(*info));
        info->slotID = s->token->slot;
        info->state = ksp_session_state_inlock(s);
        info->flags = s->flags;
        info->ulDeviceError = 0;
    }
    ksp_leave();
    return ksp_trace("C_GetSessionInfo", rv);
}

CK_RV ksp_api_GetOperationState(CK_SESSION_HANDLE h, CK_BYTE_PTR state, CK_ULONG_PTR len)
{
    (void)state;
    (void)len;
    struct ksp_session *s = NULL;
    CK_RV rv = ksp_enter();
    if (rv != CKR_OK)
        return rv;
    rv = ksp_session_get_inlock(h, &s);
    if (rv == CKR_OK)
        rv = CKR_FUNCTION_NOT_SUPPORTED; /* key operations hold backend state */
    ksp_leave();
    return ksp_trace("C_GetOperationState", rv);
}

CK_RV ksp_api_SetOperationState(CK_SESSION_HANDLE h, CK_BYTE_PTR state, CK_ULONG len,
                                CK_OBJECT_HANDLE enc, CK_OBJECT_HANDLE auth)
{
    (void)state;
    (void)len;
    (void)enc;
    (void)auth;
    struct ksp_session *s = NULL;
    CK_RV rv = ksp_enter();
    if (rv != CKR_OK)
        return rv;
    rv = ksp_session_get_inlock(h, &s);
    if (rv == CKR_OK)
        rv = CKR_FUNCTION_NOT_SUPPORTED;
    ksp_leave();
    return ksp_trace("C_SetOperationState", rv);
}

CK_RV ksp_api_Login(CK_SESSION_HANDLE h, CK_USER_TYPE user, CK_UTF8CHAR_PTR pin, CK_ULONG len)
{
    struct ksp_session *s = NULL;
    CK_RV rv = ksp_enter();
    if (rv != CKR_OK)
        return rv;
    rv = ksp_session_get_inlock(h, &s);
    if (rv != CKR_OK)
        goto out;
    struct ksp_token *t = s->token;
    if (user != CKU_SO && user != CKU_USER && user != CKU_CONTEXT_SPECIFIC) {
        rv = CKR_USER_TYPE_INVALID;
        goto out;
    }
    if (!pin && len) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if (user == CKU_CONTEXT_SPECIFIC) {
        /* No key of ours has CKA_ALWAYS_AUTHENTICATE, so no operation needs it. */
        rv = CKR_OPERATION_NOT_INITIALIZED;
        goto out;
    }
    /* §5.6 C_Login return values, in the spec's order of precedence. */
    /* On a PIN-less token the user is always logged in; the SO may still log
     * in (to manage PINs) while nobody else explicitly is. */
    CK_USER_TYPE cur = t->login;
    if (cur == KSP_NO_USER && user == CKU_USER && ksp_token_pinless(t))
        cur = CKU_USER;
    if (cur == user) {
        rv = CKR_USER_ALREADY_LOGGED_IN;
        goto out;
    }
    if (cur != KSP_NO_USER) {
        rv = CKR_USER_ANOTHER_ALREADY_LOGGED_IN;
        goto out;
    }
    if (user == CKU_SO && ksp_token_has_sessions_inlock(t, false, true)) {
        rv = CKR_SESSION_READ_ONLY_EXISTS;
        goto out;
    }
    /* A PIN outside the token's length range cannot be right; refuse it
     * without spending one of the user's attempts on it. */
    if (len < KSP_MIN_PIN_LEN || len > KSP_MAX_PIN_LEN) {
        rv = CKR_PIN_INCORRECT;
        goto out;
    }
    rv = ksp_auth_login_inlock(t, user, pin, len);
out:
    ksp_leave();
    return ksp_trace("C_Login", rv);
}

CK_RV ksp_api_Logout(CK_SESSION_HANDLE h)
{
    struct ksp_session *s = NULL;
    CK_RV rv = ksp_enter();
    if (rv != CKR_OK)
        return rv;
    rv = ksp_session_get_inlock(h, &s);
    if (rv != CKR_OK)
        goto out;
    if (s->token->login == KSP_NO_USER) {
        /* A PIN-less token's user cannot log out; saying OK keeps clients simple. */
        rv = ksp_token_pinless(s->token) ? CKR_OK : CKR_USER_NOT_LOGGED_IN;
        goto out;
    }
    ksp_auth_logout_inlock(s->token);
    ksp_info("auth", "token %s: logged out", s->token->serial);
out:
    ksp_leave();
    return ksp_trace("C_Logout", rv);
}
