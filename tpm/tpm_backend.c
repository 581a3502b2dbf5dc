/*
 * The TPM 2.0 backend's vtable (backend.h), and the diagnostics of
 * tpm_diag.h. The entry points live in tpm_ctx.c (open, close, forget,
 * identity), tpm_caps.c, tpm_keys.c, tpm_ops.c and tpm_seal.c.
 */
#include <string.h>

#include "ksp11/ksp11.h"
#include "log.h"
#include "tpm_diag.h"
#include "tpm_int.h"

#define AREA KSP_TPM_AREA

/* tss2's TPM2_HR_TRANSIENT shifts TPM2_HT_TRANSIENT (0x80, promoted to int)
 * left by 24: undefined behaviour that UBSan reports. Same value, unsigned. */
#define HR_TRANSIENT ((TPM2_HC)TPM2_HT_TRANSIENT << TPM2_HR_SHIFT)

const struct ksp_backend_ops ksp_tpm_backend = {
    .name = "tpm",
    .id = KSP11_BACKEND_TPM,
    .open = ksp_tpm_open,
    .close = ksp_tpm_close,
    .caps = ksp_tpm_caps,
    .keygen = ksp_tpm_keygen,
    .import = NULL, /* importing external keys into the TPM: not yet */
    .key_load = ksp_tpm_key_load,
    .key_unload = ksp_tpm_key_unload,
    .private_op = ksp_tpm_private_op,
    /* One ESAPI context per instance: the core serialises private_op. */
    .thread_safe = CK_FALSE,
    .identity = ksp_tpm_identity,
    .seal = ksp_tpm_seal,
    .unseal = ksp_tpm_unseal,
    .da_state = ksp_tpm_da_state,
    .forget = ksp_tpm_forget,
    .key_public = ksp_tpm_key_public,
    .attest = ksp_tpm_attest,
};

/* Handles in [first, first + 0x00FFFFFF] that the TPM lists. */
static TSS2_RC count_handles(ESYS_CONTEXT *esys, TPM2_HANDLE first, CK_ULONG *n)
{
    TPMI_YES_NO more = TPM2_YES;
    TPM2_HANDLE next = first;

    /* Bounded: a TPM holds a few dozen handles of one type at most. */
    for (int round = 0; more == TPM2_YES && round < 64; round++) {
        TPMS_CAPABILITY_DATA *cap = NULL;
        const TPML_HANDLE *hl = NULL;
        TPM2_HANDLE last = 0;
        TSS2_RC rc = Esys_GetCapability(esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                        TPM2_CAP_HANDLES, next, TPM2_MAX_CAP_HANDLES, &more, &cap);

        if (rc != TSS2_RC_SUCCESS) {
            return rc;
        }
        hl = &cap->data.handles;
        for (UINT32 i = 0; i < hl->count && i < TPM2_MAX_CAP_HANDLES; i++) {
            if ((hl->handle[i] >> TPM2_HR_SHIFT) == (first >> TPM2_HR_SHIFT)) {
                (*n)++;
            }
        }
        /* hl points into cap: read before Esys_Free; the count is the TPM's word */
        UINT32 count = hl->count < TPM2_MAX_CAP_HANDLES ? hl->count : TPM2_MAX_CAP_HANDLES;
        last = count > 0 ? hl->handle[count - 1] : 0;
        Esys_Free(cap);
        if (count == 0 || last < next || (last >> TPM2_HR_SHIFT) != (first >> TPM2_HR_SHIFT)) {
            break;
        }
        next = last + 1;
    }
    return TSS2_RC_SUCCESS;
}

CK_RV ksp_tpm_diag_loaded(const char *tcti, CK_ULONG *objects, CK_ULONG *sessions)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    TSS2_TCTI_CONTEXT *t = NULL;
    ESYS_CONTEXT *esys = NULL;
    TSS2_RC rc = TSS2_RC_SUCCESS;
    CK_ULONG o = 0;
    CK_ULONG s = 0;

    if (tcti == NULL || objects == NULL || sessions == NULL) {
        return CKR_ARGUMENTS_BAD;
    }
    ksp_tpm_quiet_tss();
    rc = Tss2_TctiLdr_Initialize(tcti, &t);
    if (rc == TSS2_RC_SUCCESS) {
        rc = Esys_Initialize(&esys, t, NULL);
    }
    if (rc == TSS2_RC_SUCCESS) {
        rc = count_handles(esys, HR_TRANSIENT, &o);
    }
    if (rc == TSS2_RC_SUCCESS) {
        rc = count_handles(esys, TPM2_HR_HMAC_SESSION, &s);
    }
    if (rc == TSS2_RC_SUCCESS) {
        rc = count_handles(esys, TPM2_HR_POLICY_SESSION, &s);
    }
    if (rc != TSS2_RC_SUCCESS) {
        ksp_debug(AREA, "diag: %s", Tss2_RC_Decode(rc));
        rv = CKR_DEVICE_ERROR;
        goto out;
    }
    *objects = o;
    *sessions = s;
    rv = CKR_OK;
out:
    if (esys != NULL) {
        Esys_Finalize(&esys);
    }
    if (t != NULL) {
        Tss2_TctiLdr_Finalize(&t);
    }
    return rv;
}
