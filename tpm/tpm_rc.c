/*
 * TSS2 return codes -> PKCS#11 (DESIGN.md §6 "Errors", style.md §3.4): the one
 * place that translates them. It logs the decoded code (Tss2_RC_Decode) and
 * notices when the connection can no longer be trusted - a transport failure,
 * or a TPM that forgot our handles because it restarted - so the next call
 * reconnects. Callers special-case a code only where its meaning depends on
 * the command (e.g. TPM_RC_VALUE at keygen is a key size the TPM refuses).
 */
#include "log.h"
#include "tpm_int.h"

#define AREA KSP_TPM_AREA

TSS2_RC ksp_tpm_rc_base(TSS2_RC rc)
{
    if ((rc & TSS2_RC_LAYER_MASK) != TSS2_TPM_RC_LAYER) {
        return rc;
    }
    /* TPM 2.0 Part 2 §6.6.3: format-one codes carry the number of the
     * handle, parameter or session in bits 6 and 8-11. */
    if ((rc & TPM2_RC_FMT1) != 0) {
        return rc & (TPM2_RC_FMT1 | 0x3Fu);
    }
    return rc & 0xFFFu;
}

/* A TPM (not transport) code. */
static CK_RV tpm_code_rv(struct ksp_backend *be, TSS2_RC base, bool *expected)
{
    switch (base) {
    case TPM2_RC_AUTH_FAIL: /* DA counter incremented */
    case TPM2_RC_BAD_AUTH:  /* noDA object */
        *expected = true;
        return CKR_PIN_INCORRECT;
    case TPM2_RC_LOCKOUT:
        *expected = true;
        return CKR_PIN_LOCKED;
    case TPM2_RC_OBJECT_MEMORY:
    case TPM2_RC_SESSION_MEMORY:
    case TPM2_RC_MEMORY:
    case TPM2_RC_OBJECT_HANDLES:
    case TPM2_RC_SESSION_HANDLES:
        return CKR_DEVICE_MEMORY;
    case TPM2_RC_SIZE:
        *expected = true;
        return CKR_DATA_LEN_RANGE;
    case TPM2_RC_VALUE:
    case TPM2_RC_ECC_POINT:
    case TPM2_RC_NO_RESULT:
        *expected = true;
        return CKR_DATA_INVALID;
    case TPM2_RC_INTEGRITY: /* a blob not made by this TPM, or altered */
        *expected = true;
        return CKR_DATA_INVALID;
    case TPM2_RC_KEY_SIZE:
        *expected = true;
        return CKR_KEY_SIZE_RANGE;
    case TPM2_RC_CURVE:
        *expected = true;
        return CKR_CURVE_NOT_SUPPORTED;
    case TPM2_RC_SCHEME:
    case TPM2_RC_HASH:
    case TPM2_RC_SYMMETRIC:
    case TPM2_RC_KDF:
        *expected = true;
        return CKR_MECHANISM_INVALID;
    case TPM2_RC_ATTRIBUTES: /* e.g. ECDH with a key made without decrypt */
        *expected = true;
        return CKR_KEY_FUNCTION_NOT_PERMITTED;
    case TPM2_RC_INITIALIZE:
    case TPM2_RC_REFERENCE_H0:
    case TPM2_RC_REFERENCE_H1:
    case TPM2_RC_REFERENCE_H2:
    case TPM2_RC_REFERENCE_H3:
    case TPM2_RC_REFERENCE_H4:
    case TPM2_RC_REFERENCE_H5:
    case TPM2_RC_REFERENCE_H6:
    case TPM2_RC_REFERENCE_S0:
    case TPM2_RC_REFERENCE_S1:
    case TPM2_RC_REFERENCE_S2:
    case TPM2_RC_REFERENCE_S3:
    case TPM2_RC_REFERENCE_S4:
    case TPM2_RC_REFERENCE_S5:
    case TPM2_RC_REFERENCE_S6:
        /* The TPM was restarted under us (swtpm restarts, or a resource
         * manager lost our space): our handles are gone and the command
         * did not run, so it may be repeated after a reconnect. */
        be->dead = true;
        be->stale = true;
        return CKR_DEVICE_ERROR;
    default:
        return CKR_DEVICE_ERROR;
    }
}

CK_RV ksp_tpm_rv(struct ksp_backend *be, TSS2_RC rc, const char *what)
{
    TSS2_RC layer = rc & TSS2_RC_LAYER_MASK;
    TSS2_RC base = ksp_tpm_rc_base(rc);
    TSS2_RC code = rc & 0xFFFFu; /* TSS2_BASE_RC_* of the non-TPM layers */
    CK_RV rv = CKR_DEVICE_ERROR;
    bool expected = false;

    if (rc == TSS2_RC_SUCCESS) {
        return CKR_OK;
    }
    if (layer == TSS2_TPM_RC_LAYER) {
        rv = tpm_code_rv(be, base, &expected);
    } else if (layer == TSS2_TCTI_RC_LAYER) {
        /* Transport: swtpm gone, device error, tabrmd down. */
        be->dead = true;
        rv = CKR_DEVICE_ERROR;
    } else if (rc == TSS2_ESYS_RC_MEMORY || code == TSS2_BASE_RC_MEMORY) {
        rv = CKR_HOST_MEMORY;
    } else if (code == TSS2_BASE_RC_MALFORMED_RESPONSE ||
               code == TSS2_BASE_RC_INSUFFICIENT_RESPONSE || code == TSS2_BASE_RC_BAD_SEQUENCE ||
               code == TSS2_BASE_RC_RSP_AUTH_FAILED || code == TSS2_BASE_RC_GENERAL_FAILURE ||
               code == TSS2_BASE_RC_IO_ERROR) {
        /* The ESAPI/SAPI state no longer matches the TPM's (a response that
         * does not parse or authenticate, or a TPM 1.2 answering): rebuild
         * the context rather than trust it. */
        be->dead = true;
        rv = CKR_DEVICE_ERROR;
    }
    if (be->stale) {
        /* Recovered by a reconnect, usually within the same call. */
        ksp_warn(AREA, "%s: 0x%08x %s: the TPM lost our handles (restarted?), reconnecting", what,
                 (unsigned)rc, Tss2_RC_Decode(rc));
    } else if (expected) {
        ksp_debug(AREA, "%s: 0x%08x %s -> %s", what, (unsigned)rc, Tss2_RC_Decode(rc),
                  ksp_rv_name(rv));
    } else {
        ksp_err(AREA, "%s: 0x%08x %s -> %s%s", what, (unsigned)rc, Tss2_RC_Decode(rc),
                ksp_rv_name(rv), be->dead ? " (reconnecting on the next call)" : "");
    }
    return rv;
}
