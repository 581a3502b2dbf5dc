/*
 * C_KSP11_AttestKey of the vendor interface (include/ksp11/ksp11.h, issue 7):
 * the session and key checks of PKCS#11, then the backend's attestation.
 * Only TPM keys can be attested; a software key says so.
 */
#include <string.h>

#include "api.h"
#include "core.h"
#include "log.h"
#include "secmem.h"

#define ATTEST_NONCE_MAX 64
/* Upper bound of a bundle for a length query: the TPM structures are small;
 * the EK certificate in NV is at most a few KiB. */
#define ATTEST_BUNDLE_MAX 16384

CK_RV ksp_api_KSP11_AttestKey(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE key, const CK_BYTE *nonce,
                              CK_ULONG nonce_len, CK_BYTE *bundle, CK_ULONG *bundle_len)
{
    struct ksp_session *s = NULL;
    struct ksp_object *o = NULL;
    const struct ksp_backend_ops *ops = NULL;
    struct ksp_backend *be = NULL;
    struct ksp_buf out = {NULL, 0};

    if (!bundle_len || (!nonce && nonce_len) || nonce_len > ATTEST_NONCE_MAX)
        return ksp_trace("C_KSP11_AttestKey", CKR_ARGUMENTS_BAD);
    CK_RV rv = ksp_enter_session(session, &s);
    if (rv != CKR_OK)
        return ksp_trace("C_KSP11_AttestKey", rv);
    rv = ksp_object_get_inlock(s, key, &o);
    if (rv != CKR_OK) {
        rv = CKR_KEY_HANDLE_INVALID;
        goto out;
    }
    if (o->klass != CKO_PRIVATE_KEY) {
        rv = CKR_KEY_TYPE_INCONSISTENT;
        goto out;
    }
    if (o->backend != KSP11_BACKEND_TPM) {
        ksp_info("attest", "key %lu is a software key: software keys have no attestation", key);
        rv = CKR_KEY_FUNCTION_NOT_PERMITTED;
        goto out;
    }
    if (!bundle) {
        *bundle_len = ATTEST_BUNDLE_MAX;
        rv = CKR_OK;
        goto out;
    }
    rv = ksp_backend_get_inlock(KSP11_BACKEND_TPM, &ops, &be);
    if (rv == CKR_OK && !ops->attest)
        rv = CKR_FUNCTION_NOT_SUPPORTED;
    if (rv == CKR_OK)
        rv = ops->attest(be, &o->blob, nonce, nonce_len, &out);
    if (rv != CKR_OK)
        goto out;
    if (*bundle_len < out.len) {
        *bundle_len = out.len;
        rv = CKR_BUFFER_TOO_SMALL;
        goto out;
    }
    memcpy(bundle, out.p, out.len);
    *bundle_len = out.len;
out:
    ksp_buf_free(&out);
    ksp_leave();
    return ksp_trace("C_KSP11_AttestKey", rv);
}
