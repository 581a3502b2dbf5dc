/*
 * Sessions (PKCS#11 3.0 §5.6): handles, states and the access matrix.
 *
 * Login state is per token per application, so a session's state derives from
 * its token's login and its own RW flag:
 *
 *               RO session              RW session
 *   public      CKS_RO_PUBLIC_SESSION   CKS_RW_PUBLIC_SESSION
 *   user        CKS_RO_USER_FUNCTIONS   CKS_RW_USER_FUNCTIONS
 *   SO          (not allowed)           CKS_RW_SO_FUNCTIONS
 *
 * Objects:      public session   user   SO
 *   public      read (RW: write) r/w    r/w (RW session)
 *   private     -                r/w    -
 * Token objects need a RW session to be written (§4.1.1 note on R/O sessions).
 */
#include <stdlib.h>

#include "core.h"
#include "log.h"

CK_RV ksp_session_get_inlock(CK_SESSION_HANDLE h, struct ksp_session **out)
{
    for (struct ksp_session *s = ksp_lib.sessions; s; s = s->next) {
        if (s->handle == h) {
            *out = s;
            return CKR_OK;
        }
    }
    return CKR_SESSION_HANDLE_INVALID;
}

CK_RV ksp_session_open_inlock(struct ksp_token *t, CK_FLAGS flags, struct ksp_session **out)
{
    struct ksp_session *s = calloc(1, sizeof(*s));
    if (!s)
        return CKR_HOST_MEMORY;
    s->handle = ksp_lib.next_session++;
    s->token = t;
    s->flags = flags & (CKF_SERIAL_SESSION | CKF_RW_SESSION);
    s->next = ksp_lib.sessions;
    ksp_lib.sessions = s;
    *out = s;
    return CKR_OK;
}

void ksp_session_close_inlock(struct ksp_session *s)
{
    struct ksp_token *t = s->token;
    struct ksp_session **pp = &ksp_lib.sessions;
    while (*pp && *pp != s)
        pp = &(*pp)->next;
    if (*pp)
        *pp = s->next;
    for (int i = 0; i < KSP_OPK_COUNT; i++)
        ksp_op_free(s->ops[i]);
    free(s->find.handles);
    ksp_objects_drop_session_inlock(s);
    free(s);
    /* §5.6 C_CloseSession: closing the last session logs the application out. */
    if (!ksp_token_has_sessions_inlock(t, false, false) && t->login != KSP_NO_USER)
        ksp_auth_logout_inlock(t);
}

bool ksp_token_has_sessions_inlock(const struct ksp_token *t, bool rw_only, bool ro_only)
{
    for (struct ksp_session *s = ksp_lib.sessions; s; s = s->next) {
        if (s->token != t)
            continue;
        bool rw = (s->flags & CKF_RW_SESSION) != 0;
        if (rw_only && !rw)
            continue;
        if (ro_only && rw)
            continue;
        return true;
    }
    return false;
}

/* The effective user of a token: its login, or the user on a PIN-less token. */
static CK_USER_TYPE effective_user(const struct ksp_token *t)
{
    if (t->login != KSP_NO_USER)
        return t->login;
    return ksp_token_pinless(t) ? CKU_USER : KSP_NO_USER;
}

CK_STATE ksp_session_state_inlock(const struct ksp_session *s)
{
    bool rw = (s->flags & CKF_RW_SESSION) != 0;
    switch (effective_user(s->token)) {
    case CKU_SO:
        return CKS_RW_SO_FUNCTIONS;
    case CKU_USER:
        return rw ? CKS_RW_USER_FUNCTIONS : CKS_RO_USER_FUNCTIONS;
    default:
        return rw ? CKS_RW_PUBLIC_SESSION : CKS_RO_PUBLIC_SESSION;
    }
}

bool ksp_session_can_read_inlock(const struct ksp_session *s, const struct ksp_object *o)
{
    /* Session objects are visible to every session of the application that
     * made them (PKCS#11 3.0 §4.4), i.e. of this process. */
    if (o->token != s->token)
        return false;
    if (o->is_private && effective_user(s->token) != CKU_USER)
        return false;
    return true;
}

CK_RV ksp_session_can_write_inlock(const struct ksp_session *s, bool on_token, bool is_private)
{
    if (on_token && !(s->flags & CKF_RW_SESSION))
        return CKR_SESSION_READ_ONLY;
    if (is_private && effective_user(s->token) != CKU_USER)
        return CKR_USER_NOT_LOGGED_IN;
    return CKR_OK;
}
