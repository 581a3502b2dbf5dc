/*
 * The vendor interface "Vendor ksp11" (include/ksp11/ksp11.h): the TPM
 * verdict of this process and how each token's wrapping key is protected,
 * for `ksp11 status`. Same discipline as the PKCS#11 entry points: init
 * check, lock, trace.
 */
#include <string.h>

#include "api.h"
#include "core.h"
#include "ksp11/ksp11.h"
#include "policy.h"
#include "store.h"

static void copy_text(CK_UTF8CHAR *dst, size_t n, const char *src)
{
    size_t len = strnlen(src, n - 1);
    memcpy(dst, src, len);
    dst[len] = '\0';
}

static CK_ULONG state_of(enum ksp_tpm_state s)
{
    switch (s) {
    case KSP_TPM_ACCEPTED:
        return KSP11_TPM_ACCEPTED;
    case KSP_TPM_ABSENT:
        return KSP11_TPM_ABSENT;
    case KSP_TPM_NO_PERMISSION:
        return KSP11_TPM_NO_PERMISSION;
    case KSP_TPM_12:
        return KSP11_TPM_12;
    case KSP_TPM_DENIED:
        return KSP11_TPM_DENIED;
    case KSP_TPM_UNREACHABLE:
    default:
        return KSP11_TPM_UNREACHABLE;
    }
}

CK_RV ksp_api_KSP11_GetTpmStatus(CK_KSP11_TPM_STATUS *out)
{
    if (!out)
        return ksp_trace("C_KSP11_GetTpmStatus", CKR_ARGUMENTS_BAD);
    CK_RV rv = ksp_enter();
    if (rv != CKR_OK)
        return ksp_trace("C_KSP11_GetTpmStatus", rv);
    const struct ksp_verdict *v = ksp_policy_verdict_inlock();
    CK_KSP11_TPM_STATUS st;
    memset(&st, 0, sizeof(st));
    st.state = state_of(v->state);
    st.deny_scope = v->denied_scope;
    st.virtual_tpm = v->virtual_tpm ? CK_TRUE : CK_FALSE;
    if (v->id.present) {
        st.spec_major = (CK_BYTE)(v->id.revision / 100);
        st.spec_minor = (CK_BYTE)(v->id.revision % 100);
        st.firmware1 = v->id.fw1;
        st.firmware2 = v->id.fw2;
        copy_text(st.manufacturer, sizeof(st.manufacturer), v->id.manufacturer);
        copy_text(st.vendor, sizeof(st.vendor), v->id.vendor);
    }
    copy_text(st.reason, sizeof(st.reason), v->reason);
    copy_text(st.rule, sizeof(st.rule), v->rule);
    copy_text(st.identity, sizeof(st.identity), v->identity);
    copy_text(st.detail, sizeof(st.detail), v->detail);
    ksp_leave();
    *out = st;
    return ksp_trace("C_KSP11_GetTpmStatus", CKR_OK);
}

CK_RV ksp_api_KSP11_GetTokenProtection(CK_SLOT_ID slot, CK_ULONG *protection)
{
    if (!protection)
        return ksp_trace("C_KSP11_GetTokenProtection", CKR_ARGUMENTS_BAD);
    CK_RV rv = ksp_enter();
    if (rv != CKR_OK)
        return ksp_trace("C_KSP11_GetTokenProtection", rv);
    struct ksp_token *t = ksp_token_by_slot_inlock(slot);
    CK_ULONG p = KSP11_PROTECT_NONE;
    if (!t) {
        rv = CKR_SLOT_ID_INVALID;
    } else if (t->initialized) {
        rv = ksp_token_meta_refresh_inlock(t);
        if (rv == CKR_OK && (t->meta.flags & KSP_META_USER_PIN_SET)) {
            if (t->meta.flags & KSP_META_TPM)
                p = KSP11_PROTECT_TPM;
            else if (t->meta.flags & KSP_META_PINLESS)
                p = KSP11_PROTECT_FILE;
            else
                p = KSP11_PROTECT_PIN;
        }
    }
    ksp_leave();
    if (rv == CKR_OK)
        *protection = p;
    return ksp_trace("C_KSP11_GetTokenProtection", rv);
}
