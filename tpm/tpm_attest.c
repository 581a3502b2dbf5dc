/*
 * Key attestation of the TPM backend (issue 7): the public facts a CA needs
 * to check that a key was born in this TPM and cannot leave it - the key's
 * TPM public area and its TPM name (TPM 2.0 Part 1 §16: nameAlg || H(public
 * area)), exposed as CKA_KSP11_TPM_PUBLIC / CKA_KSP11_TPM_NAME. The public
 * area carries the object attributes (fixedTPM, fixedParent,
 * sensitiveDataOrigin) that say so; the name binds them to the key.
 */
#include <stdlib.h>
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

/* ---- TPM2_CertifyCreation by an attestation key (issue 7) ---- */

/* TCG EK Credential Profile 2.3 §2.1.5.1, template L-1 (RSA 2048) and its
 * certificate's NV index; the policy is PolicySecret(TPM_RH_ENDORSEMENT). */
#define EK_CERT_NV_RSA 0x01c00002u
static const uint8_t ek_policy[32] = {
    0x83, 0x71, 0x97, 0x67, 0x44, 0x84, 0xb3, 0xf8, 0x1a, 0x90, 0xcc, 0x8d, 0x46, 0xa5, 0xd7, 0x24,
    0xfd, 0x52, 0xd7, 0x6e, 0x06, 0x52, 0x0b, 0x64, 0xf2, 0xa1, 0xda, 0x1b, 0x33, 0x14, 0x69, 0xaa};

static void ek_template(TPM2B_PUBLIC *t)
{
    TPMT_PUBLIC *p = &t->publicArea;

    memset(t, 0, sizeof(*t));
    p->type = TPM2_ALG_RSA;
    p->nameAlg = TPM2_ALG_SHA256;
    p->objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                          TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_ADMINWITHPOLICY |
                          TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
    p->authPolicy.size = sizeof(ek_policy);
    memcpy(p->authPolicy.buffer, ek_policy, sizeof(ek_policy));
    p->parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_AES;
    p->parameters.rsaDetail.symmetric.keyBits.aes = 128;
    p->parameters.rsaDetail.symmetric.mode.aes = TPM2_ALG_CFB;
    p->parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
    p->parameters.rsaDetail.keyBits = 2048;
    p->unique.rsa.size = 256;
}

/* The attestation key: an ECC P-256 restricted signing primary in the
 * endorsement hierarchy (ECDSA/SHA-256). A primary is derived from the
 * hierarchy's seed, so every call gets the same AK. */
static void ak_template(TPM2B_PUBLIC *t)
{
    TPMT_PUBLIC *p = &t->publicArea;

    memset(t, 0, sizeof(*t));
    p->type = TPM2_ALG_ECC;
    p->nameAlg = TPM2_ALG_SHA256;
    p->objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                          TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                          TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_NODA;
    p->parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
    p->parameters.eccDetail.scheme.scheme = TPM2_ALG_ECDSA;
    p->parameters.eccDetail.scheme.details.ecdsa.hashAlg = TPM2_ALG_SHA256;
    p->parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
    p->parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
}

/* A primary in the endorsement hierarchy (empty endorsement auth). */
static CK_RV endorsement_primary(struct ksp_backend *be, const TPM2B_PUBLIC *tmpl, ESYS_TR *h,
                                 TPM2B_PUBLIC **pub)
{
    TPM2B_SENSITIVE_CREATE sens;
    TPM2B_DATA outside;
    TPML_PCR_SELECTION pcr;
    TSS2_RC rc = TSS2_RC_SUCCESS;

    memset(&sens, 0, sizeof(sens));
    memset(&outside, 0, sizeof(outside));
    memset(&pcr, 0, sizeof(pcr));
    rc = Esys_CreatePrimary(be->esys, ESYS_TR_RH_ENDORSEMENT, ESYS_TR_PASSWORD, ESYS_TR_NONE,
                            ESYS_TR_NONE, &sens, tmpl, &outside, &pcr, h, pub, NULL, NULL, NULL);
    if (rc != TSS2_RC_SUCCESS) {
        return ksp_tpm_rv(be, rc, "TPM2_CreatePrimary (endorsement)");
    }
    return CKR_OK;
}

/* The EK certificate from NV, if the manufacturer (or swtpm_setup) put one
 * there; out stays empty otherwise. */
static CK_RV read_ek_cert(struct ksp_backend *be, struct ksp_buf *out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    ESYS_TR nv = ESYS_TR_NONE;
    TPM2B_NV_PUBLIC *np = NULL;
    uint8_t *cert = NULL;
    size_t size = 0, done = 0;
    TSS2_RC rc = Esys_TR_FromTPMPublic(be->esys, EK_CERT_NV_RSA, ESYS_TR_NONE, ESYS_TR_NONE,
                                       ESYS_TR_NONE, &nv);

    if (rc != TSS2_RC_SUCCESS) {
        ksp_debug(AREA, "no EK certificate at NV 0x%08x", EK_CERT_NV_RSA);
        return CKR_OK;
    }
    rc = Esys_NV_ReadPublic(be->esys, nv, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &np, NULL);
    if (rc != TSS2_RC_SUCCESS) {
        rv = ksp_tpm_rv(be, rc, "TPM2_NV_ReadPublic");
        goto out;
    }
    size = np->nvPublic.dataSize;
    cert = malloc(size > 0 ? size : 1);
    if (cert == NULL) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    while (done < size) {
        TPM2B_MAX_NV_BUFFER *chunk = NULL;
        UINT16 n = (UINT16)(size - done > 512 ? 512 : size - done);

        /* The index authorises its own reads (TPMA_NV_AUTHREAD, empty auth). */
        rc = Esys_NV_Read(be->esys, nv, nv, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, n,
                          (UINT16)done, &chunk);
        if (rc != TSS2_RC_SUCCESS || chunk->size != n) {
            Esys_Free(chunk);
            rv = rc != TSS2_RC_SUCCESS ? ksp_tpm_rv(be, rc, "TPM2_NV_Read") : CKR_DEVICE_ERROR;
            goto out;
        }
        memcpy(cert + done, chunk->buffer, n);
        done += n;
        Esys_Free(chunk);
    }
    rv = ksp_buf_set(out, cert, size);
out:
    free(cert);
    Esys_Free(np);
    Esys_TR_Close(be->esys, &nv);
    return rv;
}

/* Bundle writer: "KSPA" 1 0 0 0, then (tag u16, length u32, value) records,
 * big-endian (packaging/attestation.md). */
struct tlv {
    uint8_t *p;
    size_t len, cap;
    bool fail;
};

static void tlv_put(struct tlv *w, uint16_t tag, const void *v, size_t len)
{
    uint8_t h[6] = {(uint8_t)(tag >> 8),  (uint8_t)tag,        (uint8_t)(len >> 24),
                    (uint8_t)(len >> 16), (uint8_t)(len >> 8), (uint8_t)len};

    if (w->fail || len > 0xffffff || w->len + 6 + len > w->cap) {
        w->fail = true;
        return;
    }
    memcpy(w->p + w->len, h, 6);
    memcpy(w->p + w->len + 6, v, len);
    w->len += 6 + len;
}

/* tag <- TPM2B_PUBLIC, TPM2B_ATTEST or TPMT_SIGNATURE, marshalled. */
#define TLV_MU(w, tag, type, val)                                                                  \
    do {                                                                                           \
        uint8_t b_[sizeof(*(val)) + 16];                                                           \
        size_t o_ = 0;                                                                             \
        if (Tss2_MU_##type##_Marshal((val), b_, sizeof(b_), &o_) != TSS2_RC_SUCCESS)               \
            (w)->fail = true;                                                                      \
        else                                                                                       \
            tlv_put((w), (tag), b_, o_);                                                           \
    } while (0)

CK_RV ksp_tpm_attest(struct ksp_backend *be, const struct ksp_buf *blob, const uint8_t *nonce,
                     size_t nonce_len, struct ksp_buf *out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_tpm_call call;
    TPM2B_PUBLIC pub, ak_t, ek_t;
    TPM2B_PRIVATE priv;
    TPM2B_CREATION_DATA cd;
    TPM2B_DIGEST ch;
    TPMT_TK_CREATION tk;
    TPM2B_DATA qual;
    TPMT_SIG_SCHEME scheme;
    TPM2B_AUTH none;
    TPM2B_PUBLIC *ak_pub = NULL, *ek_pub = NULL;
    TPM2B_ATTEST *info = NULL;
    TPMT_SIGNATURE *sig = NULL;
    ESYS_TR key = ESYS_TR_NONE, ak = ESYS_TR_NONE, ek = ESYS_TR_NONE;
    struct ksp_buf ek_cert = {NULL, 0};
    struct tlv w = {NULL, 0, 0, false};
    TSS2_RC rc = TSS2_RC_SUCCESS;

    if (be == NULL || blob == NULL || out == NULL || (nonce == NULL && nonce_len > 0)) {
        return CKR_ARGUMENTS_BAD;
    }
    if (nonce_len > sizeof(qual.buffer)) {
        return CKR_ARGUMENTS_BAD;
    }
    rv = ksp_tpm_blob_read_creation(blob, &cd, &ch, &tk);
    if (rv == CKR_KEY_FUNCTION_NOT_PERMITTED) {
        ksp_warn(AREA, "attest: the key was made before ksp11 kept creation data; make a new key");
    }
    if (rv != CKR_OK) {
        return rv;
    }
    rv = ksp_tpm_blob_read(KSP_TPM_BLOB_KEY, blob, &pub, &priv);
    if (rv != CKR_OK) {
        return rv;
    }
    memset(&qual, 0, sizeof(qual));
    qual.size = (UINT16)nonce_len;
    if (nonce_len > 0) {
        memcpy(qual.buffer, nonce, nonce_len);
    }
    memset(&scheme, 0, sizeof(scheme));
    scheme.scheme = TPM2_ALG_NULL; /* the AK's own: ECDSA/SHA-256 */
    memset(&none, 0, sizeof(none));
    ak_template(&ak_t);
    ek_template(&ek_t);

    ksp_tpm_lock(be, &call);
    rv = ksp_tpm_connect_inlock(be);
    if (rv == CKR_OK) {
        /* CertifyCreation needs no authorisation for the key itself. */
        rv = ksp_tpm_load_inlock(be, &pub, &priv, &none, &key);
    }
    if (rv == CKR_OK) {
        ksp_tpm_primary_done_inlock(be);
        rv = endorsement_primary(be, &ak_t, &ak, &ak_pub);
    }
    if (rv == CKR_OK) {
        rc = Esys_CertifyCreation(be->esys, ak, key, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                                  &qual, &ch, &scheme, &tk, &info, &sig);
        if (rc != TSS2_RC_SUCCESS) {
            rv = ksp_tpm_rv(be, rc, "TPM2_CertifyCreation");
        }
    }
    ksp_tpm_flush_inlock(be, &key);
    ksp_tpm_flush_inlock(be, &ak);
    if (rv == CKR_OK) {
        rv = endorsement_primary(be, &ek_t, &ek, &ek_pub);
        ksp_tpm_flush_inlock(be, &ek);
    }
    if (rv == CKR_OK) {
        rv = read_ek_cert(be, &ek_cert);
    }
    ksp_tpm_unlock(be, &call);
    if (rv != CKR_OK) {
        goto out;
    }
    w.cap = 16 + 6 * 8 + sizeof(TPM2B_PUBLIC) * 3 + sizeof(TPM2B_ATTEST) + sizeof(TPMT_SIGNATURE) +
            ek_cert.len + nonce_len + 256;
    w.p = malloc(w.cap);
    if (w.p == NULL) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    memcpy(w.p, "KSPA\x01\x00\x00\x00", 8);
    w.len = 8;
    TLV_MU(&w, 1, TPM2B_PUBLIC, &pub);
    TLV_MU(&w, 2, TPM2B_ATTEST, info);
    TLV_MU(&w, 3, TPMT_SIGNATURE, sig);
    TLV_MU(&w, 4, TPM2B_PUBLIC, ak_pub);
    TLV_MU(&w, 5, TPM2B_PUBLIC, ek_pub);
    if (ek_cert.len > 0) {
        tlv_put(&w, 6, ek_cert.p, ek_cert.len);
    }
    tlv_put(&w, 7, qual.buffer, qual.size);
    if (w.fail) {
        rv = CKR_FUNCTION_FAILED;
        goto out;
    }
    rv = ksp_buf_set(out, w.p, w.len);
    ksp_info(AREA, "attest: CertifyCreation by the endorsement-hierarchy AK%s",
             ek_cert.len > 0 ? ", EK certificate included" : ", no EK certificate in NV");
out:
    ksp_wipe(&priv, sizeof(priv));
    free(w.p);
    ksp_buf_free(&ek_cert);
    Esys_Free(ak_pub);
    Esys_Free(ek_pub);
    Esys_Free(info);
    Esys_Free(sig);
    return rv;
}
