/*
 * Sealed data and the dictionary-attack state (DESIGN.md §3 "Token wrapping
 * key", semantics.md §1.4): the core seals a token's wrapping key in a TPM
 * keyedhash object whose authValue derives from the PIN, so that PIN guessing
 * meets the TPM's lockout. The data goes in over a session that encrypts
 * inSensitive and comes out over one that encrypts the response; every TPM
 * structure that held it is wiped.
 */
#include <string.h>

#include "log.h"
#include "secmem.h"
#include "tpm_int.h"

#define AREA KSP_TPM_AREA

static void sealed_template(CK_BBOOL no_da, TPM2B_PUBLIC *t)
{
    TPMT_PUBLIC *p = &t->publicArea;

    memset(t, 0, sizeof(*t));
    p->type = TPM2_ALG_KEYEDHASH;
    p->nameAlg = TPM2_ALG_SHA256;
    /* No sensitiveDataOrigin: we supply the data (TPM 2.0 Part 3 §12.1). */
    p->objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_USERWITHAUTH;
    if (no_da) {
        p->objectAttributes |= TPMA_OBJECT_NODA;
    }
    p->parameters.keyedHashDetail.scheme.scheme = TPM2_ALG_NULL;
}

CK_RV ksp_tpm_seal(struct ksp_backend *be, const struct ksp_buf *data, const struct ksp_buf *auth,
                   CK_BBOOL no_da, struct ksp_buf *blob_out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_tpm_call call;
    TPM2B_SENSITIVE_CREATE sens;
    TPM2B_PUBLIC tmpl;
    TPM2B_PRIVATE *priv = NULL;
    TPM2B_PUBLIC *pub = NULL;

    memset(&sens, 0, sizeof(sens));
    if (be == NULL || data == NULL || blob_out == NULL || (data->len > 0 && data->p == NULL) ||
        (auth != NULL && auth->len > 0 && auth->p == NULL)) {
        return CKR_ARGUMENTS_BAD;
    }
    if (data->len == 0 || data->len > KSP_TPM_SEAL_MAX) {
        return CKR_DATA_LEN_RANGE;
    }
    if (auth != NULL && auth->len > 32) {
        return CKR_PIN_LEN_RANGE;
    }
    sealed_template(no_da, &tmpl);
    sens.sensitive.data.size = (UINT16)data->len;
    memcpy(sens.sensitive.data.buffer, data->p, data->len);
    if (auth != NULL && auth->len > 0) {
        sens.sensitive.userAuth.size = (UINT16)auth->len;
        memcpy(sens.sensitive.userAuth.buffer, auth->p, auth->len);
    }
    ksp_tpm_lock(be, &call);
    for (int attempt = 0;; attempt++) {
        rv = ksp_tpm_connect_inlock(be);
        if (rv == CKR_OK) {
            rv = ksp_tpm_create_inlock(be, &sens, &tmpl, &priv, &pub);
        }
        if (!ksp_tpm_again_inlock(be, rv, attempt)) {
            break;
        }
    }
    ksp_tpm_unlock(be, &call);
    if (rv == CKR_OK) {
        rv = ksp_tpm_blob_write(KSP_TPM_BLOB_SEALED, pub, priv, blob_out);
    }
    ksp_wipe(&sens, sizeof(sens));
    Esys_Free(priv);
    Esys_Free(pub);
    return rv;
}

/* One attempt: load, unseal over an encrypting session, flush. */
static CK_RV unseal_inlock(struct ksp_backend *be, const TPM2B_PUBLIC *pub,
                           const TPM2B_PRIVATE *priv, const TPM2B_AUTH *auth,
                           struct ksp_buf *data_out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    ESYS_TR h = ESYS_TR_NONE;
    ESYS_TR s = ESYS_TR_NONE;
    TPM2B_SENSITIVE_DATA *data = NULL;
    TSS2_RC rc = TSS2_RC_SUCCESS;

    rv = ksp_tpm_connect_inlock(be);
    if (rv != CKR_OK) {
        goto out;
    }
    rv = ksp_tpm_load_inlock(be, pub, priv, auth, &h);
    if (rv != CKR_OK) {
        goto out;
    }
    /* TPMA_SESSION_ENCRYPT: outData comes back encrypted; the HMAC session
     * proves the authValue without sending it. */
    rv = ksp_tpm_session_inlock(be, TPMA_SESSION_ENCRYPT, &s);
    if (rv != CKR_OK) {
        goto out;
    }
    ksp_tpm_primary_done_inlock(be);
    rc = Esys_Unseal(be->esys, h, s, ESYS_TR_NONE, ESYS_TR_NONE, &data);
    if (rc != TSS2_RC_SUCCESS) {
        /* Wrong auth: CKR_PIN_INCORRECT (counted by the TPM unless noDA);
         * lockout: CKR_PIN_LOCKED (tpm_rc.c). */
        rv = ksp_tpm_rv(be, rc, "TPM2_Unseal");
        goto out;
    }
    rv = ksp_buf_set(data_out, data->buffer, data->size);
out:
    if (data != NULL) {
        ksp_wipe(data, sizeof(*data));
        Esys_Free(data);
    }
    ksp_tpm_flush_inlock(be, &s);
    ksp_tpm_flush_inlock(be, &h);
    return rv;
}

CK_RV ksp_tpm_unseal(struct ksp_backend *be, const struct ksp_buf *blob, const struct ksp_buf *auth,
                     struct ksp_buf *data_out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_tpm_call call;
    TPM2B_PUBLIC pub;
    TPM2B_PRIVATE priv;
    TPM2B_AUTH a;
    struct ksp_buf data = {NULL, 0};

    memset(&a, 0, sizeof(a));
    if (be == NULL || blob == NULL || data_out == NULL ||
        (auth != NULL && auth->len > 0 && auth->p == NULL)) {
        return CKR_ARGUMENTS_BAD;
    }
    if (auth != NULL && auth->len > 32) {
        return CKR_PIN_LEN_RANGE;
    }
    rv = ksp_tpm_blob_read(KSP_TPM_BLOB_SEALED, blob, &pub, &priv);
    if (rv != CKR_OK) {
        return rv;
    }
    if (auth != NULL && auth->len > 0) {
        a.size = (UINT16)auth->len;
        memcpy(a.buffer, auth->p, auth->len);
    }
    ksp_tpm_lock(be, &call);
    for (int attempt = 0;; attempt++) {
        /* Our own session first (tpm_sess.c), ESAPI where it cannot. */
        rv = ksp_tpm_fast_unseal_inlock(be, &pub, &priv, &a, &data);
        if (rv == CKR_FUNCTION_NOT_SUPPORTED) {
            rv = unseal_inlock(be, &pub, &priv, &a, &data);
        }
        /* Only failures where TPM2_Unseal never ran are retried: a wrong
         * PIN repeated would count twice. */
        if (!ksp_tpm_again_inlock(be, rv, attempt)) {
            break;
        }
    }
    ksp_tpm_unlock(be, &call);
    ksp_wipe(&a, sizeof(a));
    if (rv == CKR_OK) {
        *data_out = data;
    }
    return rv;
}

CK_RV ksp_tpm_da_state(struct ksp_backend *be, struct ksp_da_state *out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_tpm_call call;
    TPMS_CAPABILITY_DATA *cap = NULL;
    TPMI_YES_NO more = TPM2_NO;
    TSS2_RC rc = TSS2_RC_SUCCESS;
    struct ksp_da_state st;
    int seen = 0;

    if (be == NULL || out == NULL) {
        return CKR_ARGUMENTS_BAD;
    }
    memset(&st, 0, sizeof(st));
    ksp_tpm_lock(be, &call);
    rv = ksp_tpm_connect_inlock(be);
    if (rv != CKR_OK) {
        goto out;
    }
    /* TPM_PT_PERMANENT (0x200) .. TPM_PT_MAX_AUTH_FAIL (0x20F) in one call. */
    rc = Esys_GetCapability(be->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                            TPM2_CAP_TPM_PROPERTIES, TPM2_PT_PERMANENT,
                            TPM2_PT_MAX_AUTH_FAIL - TPM2_PT_PERMANENT + 1, &more, &cap);
    if (rc != TSS2_RC_SUCCESS) {
        rv = ksp_tpm_rv(be, rc, "TPM2_GetCapability (DA state)");
        goto out;
    }
    for (UINT32 i = 0; i < cap->data.tpmProperties.count && i < TPM2_MAX_TPM_PROPERTIES; i++) {
        const TPMS_TAGGED_PROPERTY *tp = &cap->data.tpmProperties.tpmProperty[i];

        if (tp->property == TPM2_PT_PERMANENT) {
            st.locked = (tp->value & TPMA_PERMANENT_INLOCKOUT) != 0 ? CK_TRUE : CK_FALSE;
            seen |= 1;
        } else if (tp->property == TPM2_PT_LOCKOUT_COUNTER) {
            st.failures = tp->value;
            seen |= 2;
        } else if (tp->property == TPM2_PT_MAX_AUTH_FAIL) {
            st.max_failures = tp->value;
            seen |= 4;
        }
    }
    if (seen != 7) {
        ksp_err(AREA, "the TPM did not report its dictionary-attack state");
        rv = CKR_DEVICE_ERROR;
        goto out;
    }
    *out = st;
    rv = CKR_OK;
out:
    Esys_Free(cap);
    ksp_tpm_unlock(be, &call);
    return rv;
}
