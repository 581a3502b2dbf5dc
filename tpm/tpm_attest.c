/*
 * Key attestation of the TPM backend (issue 7): the public facts a CA needs
 * to check that a key was born in this TPM and cannot leave it - the key's
 * TPM public area and its TPM name (TPM 2.0 Part 1 §16: nameAlg || H(public
 * area)), exposed as CKA_KSP11_TPM_PUBLIC / CKA_KSP11_TPM_NAME. The public
 * area carries the object attributes (fixedTPM, fixedParent,
 * sensitiveDataOrigin) that say so; the name binds them to the key.
 */
#include <string.h>

#include "log.h"
#include "secmem.h"
#include "swcrypto.h"
#include "tpm_int.h"

#define AREA KSP_TPM_AREA

CK_RV ksp_tpm_name(const TPMT_PUBLIC *p, TPM2B_NAME *name)
{
    uint8_t buf[sizeof(TPMT_PUBLIC)];
    size_t off = 0;
    TSS2_RC rc = Tss2_MU_TPMT_PUBLIC_Marshal(p, buf, sizeof(buf), &off);

    /* Our keys (tpm_blob.c public_ok) all use SHA-256 as nameAlg. */
    if (rc != TSS2_RC_SUCCESS || p->nameAlg != TPM2_ALG_SHA256) {
        return CKR_FUNCTION_FAILED;
    }
    memset(name, 0, sizeof(*name));
    name->name[0] = (uint8_t)(TPM2_ALG_SHA256 >> 8);
    name->name[1] = (uint8_t)TPM2_ALG_SHA256;
    if (ksp_digest(CKM_SHA256, buf, off, name->name + 2) != CKR_OK) {
        return CKR_FUNCTION_FAILED;
    }
    name->size = 2 + 32;
    return CKR_OK;
}

CK_RV ksp_tpm_key_public(const struct ksp_buf *blob, struct ksp_buf *public_out,
                         struct ksp_buf *name_out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    TPM2B_PUBLIC pub;
    TPM2B_PRIVATE priv;
    TPM2B_NAME name;
    uint8_t buf[sizeof(TPM2B_PUBLIC)];
    size_t off = 0;
    struct ksp_buf a = {NULL, 0}, n = {NULL, 0};

    rv = ksp_tpm_blob_read(KSP_TPM_BLOB_KEY, blob, &pub, &priv);
    ksp_wipe(&priv, sizeof(priv));
    if (rv != CKR_OK) {
        return rv;
    }
    if (Tss2_MU_TPM2B_PUBLIC_Marshal(&pub, buf, sizeof(buf), &off) != TSS2_RC_SUCCESS) {
        return CKR_FUNCTION_FAILED;
    }
    rv = ksp_tpm_name(&pub.publicArea, &name);
    if (rv == CKR_OK) {
        rv = ksp_buf_set(&a, buf, off);
    }
    if (rv == CKR_OK) {
        rv = ksp_buf_set(&n, name.name, name.size);
    }
    if (rv != CKR_OK) {
        ksp_buf_free(&a);
        ksp_buf_free(&n);
        return rv;
    }
    *public_out = a;
    *name_out = n;
    return CKR_OK;
}
