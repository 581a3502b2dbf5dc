/*
 * The TPM backend's blob format (backend.h "blob"): what the core stores for
 * a TPM key or sealed object, i.e. the public area and the parent-encrypted
 * private area the TPM gave us at TPM2_Create, in TPM wire format behind a
 * small header:
 *
 *   "KTPM" | version | kind (1 key, 2 sealed) | 0 0 | TPM2B_PUBLIC | TPM2B_PRIVATE
 *   version 2 (keys since issue 7) then: TPM2B_CREATION_DATA | TPM2B_DIGEST | TPMT_TK_CREATION
 *
 * The creation data, hash and ticket TPM2_Create returned let
 * TPM2_CertifyCreation prove later that the TPM made the key (tpm_attest.c).
 * Version 1 blobs (older keys, sealed objects) are read as before.
 *
 * A blob read back is hostile input (it comes from a file): every length is
 * checked by the unmarshalling, nothing may follow the private area, and the
 * public area must be one we could have created (no restricted key, no
 * policy, the attributes and parameters our templates use), so a planted blob
 * cannot turn into, say, a key whose use needs no authValue.
 */
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "secmem.h"
#include "tpm_int.h"

#define AREA KSP_TPM_AREA

#define BLOB_MAGIC   "KTPM"
#define BLOB_VERSION 1u
#define BLOB_V2      2u
#define BLOB_HDR     8u
#define BLOB_MAX                                                                                   \
    (BLOB_HDR + sizeof(TPM2B_PUBLIC) + sizeof(TPM2B_PRIVATE) + sizeof(TPM2B_CREATION_DATA) +       \
     sizeof(TPM2B_DIGEST) + sizeof(TPMT_TK_CREATION))

size_t ksp_tpm_curve_bytes(TPMI_ECC_CURVE c)
{
    switch (c) {
    case TPM2_ECC_NIST_P256:
        return 32;
    case TPM2_ECC_NIST_P384:
        return 48;
    default:
        return 0;
    }
}

CK_RV ksp_tpm_blob_write_key(const TPM2B_PUBLIC *pub, const TPM2B_PRIVATE *priv,
                             const TPM2B_CREATION_DATA *cd, const TPM2B_DIGEST *ch,
                             const TPMT_TK_CREATION *tk, struct ksp_buf *out)
{
    uint8_t *buf = NULL;
    size_t off = BLOB_HDR;
    TSS2_RC rc = TSS2_RC_SUCCESS;
    CK_RV rv = CKR_GENERAL_ERROR;

    buf = calloc(1, BLOB_MAX);
    if (buf == NULL) {
        return CKR_HOST_MEMORY;
    }
    memcpy(buf, BLOB_MAGIC, 4);
    buf[4] = BLOB_V2;
    buf[5] = (uint8_t)KSP_TPM_BLOB_KEY;
    rc = Tss2_MU_TPM2B_PUBLIC_Marshal(pub, buf, BLOB_MAX, &off);
    if (rc == TSS2_RC_SUCCESS) {
        rc = Tss2_MU_TPM2B_PRIVATE_Marshal(priv, buf, BLOB_MAX, &off);
    }
    if (rc == TSS2_RC_SUCCESS) {
        rc = Tss2_MU_TPM2B_CREATION_DATA_Marshal(cd, buf, BLOB_MAX, &off);
    }
    if (rc == TSS2_RC_SUCCESS) {
        rc = Tss2_MU_TPM2B_DIGEST_Marshal(ch, buf, BLOB_MAX, &off);
    }
    if (rc == TSS2_RC_SUCCESS) {
        rc = Tss2_MU_TPMT_TK_CREATION_Marshal(tk, buf, BLOB_MAX, &off);
    }
    if (rc != TSS2_RC_SUCCESS) {
        ksp_err(AREA, "marshalling a blob: %s", Tss2_RC_Decode(rc));
        rv = CKR_FUNCTION_FAILED;
    } else {
        rv = ksp_buf_set(out, buf, off);
    }
    free(buf);
    return rv;
}

CK_RV ksp_tpm_blob_write(enum ksp_tpm_blob_kind kind, const TPM2B_PUBLIC *pub,
                         const TPM2B_PRIVATE *priv, struct ksp_buf *out)
{
    uint8_t buf[BLOB_HDR + sizeof(TPM2B_PUBLIC) + sizeof(TPM2B_PRIVATE)];
    size_t off = BLOB_HDR;
    TSS2_RC rc = TSS2_RC_SUCCESS;

    memcpy(buf, BLOB_MAGIC, 4);
    buf[4] = BLOB_VERSION;
    buf[5] = (uint8_t)kind;
    buf[6] = 0;
    buf[7] = 0;
    rc = Tss2_MU_TPM2B_PUBLIC_Marshal(pub, buf, sizeof(buf), &off);
    if (rc == TSS2_RC_SUCCESS) {
        rc = Tss2_MU_TPM2B_PRIVATE_Marshal(priv, buf, sizeof(buf), &off);
    }
    if (rc != TSS2_RC_SUCCESS) {
        ksp_err(AREA, "marshalling a blob: %s", Tss2_RC_Decode(rc));
        return CKR_FUNCTION_FAILED;
    }
    return ksp_buf_set(out, buf, off);
}

/* The attributes and parameters our templates (tpm_keys.c, tpm_seal.c) set. */
static bool public_ok(enum ksp_tpm_blob_kind kind, const TPMT_PUBLIC *p)
{
    const TPMA_OBJECT fixed =
        TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_USERWITHAUTH;
    TPMA_OBJECT need = fixed;
    TPMA_OBJECT allowed = fixed | TPMA_OBJECT_NODA;
    TPMA_OBJECT a = p->objectAttributes;

    if (p->nameAlg != TPM2_ALG_SHA256 || p->authPolicy.size != 0) {
        return false;
    }
    if (kind == KSP_TPM_BLOB_SEALED) {
        const TPMS_KEYEDHASH_PARMS *kh = &p->parameters.keyedHashDetail;

        return p->type == TPM2_ALG_KEYEDHASH && (a & need) == need && (a & ~allowed) == 0 &&
               kh->scheme.scheme == TPM2_ALG_NULL && p->unique.keyedHash.size <= 32;
    }
    need |= TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_SIGN_ENCRYPT;
    allowed |= TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_DECRYPT;
    if ((a & need) != need || (a & ~allowed) != 0) {
        return false;
    }
    if (p->type == TPM2_ALG_RSA) {
        const TPMS_RSA_PARMS *r = &p->parameters.rsaDetail;

        /* The core's raw RSA (PSS synthesis, decryption) needs decrypt. */
        return (a & TPMA_OBJECT_DECRYPT) != 0 && r->symmetric.algorithm == TPM2_ALG_NULL &&
               r->scheme.scheme == TPM2_ALG_NULL &&
               (r->keyBits == 2048 || r->keyBits == 3072 || r->keyBits == 4096) &&
               (r->exponent == 0 || r->exponent == 65537) && p->unique.rsa.size == r->keyBits / 8;
    }
    if (p->type == TPM2_ALG_ECC) {
        const TPMS_ECC_PARMS *e = &p->parameters.eccDetail;
        size_t fs = ksp_tpm_curve_bytes(e->curveID);

        return fs != 0 && e->symmetric.algorithm == TPM2_ALG_NULL &&
               e->scheme.scheme == TPM2_ALG_NULL && e->kdf.scheme == TPM2_ALG_NULL &&
               p->unique.ecc.x.size > 0 && p->unique.ecc.x.size <= fs && p->unique.ecc.y.size > 0 &&
               p->unique.ecc.y.size <= fs;
    }
    return false;
}

CK_RV ksp_tpm_blob_read(enum ksp_tpm_blob_kind kind, const struct ksp_buf *blob, TPM2B_PUBLIC *pub,
                        TPM2B_PRIVATE *priv)
{
    size_t off = BLOB_HDR;
    TSS2_RC rc = TSS2_RC_SUCCESS;

    TPM2B_CREATION_DATA cd;
    TPM2B_DIGEST ch;
    TPMT_TK_CREATION tk;
    bool v2 = false;

    if (blob == NULL || blob->p == NULL || blob->len < BLOB_HDR || blob->len > BLOB_MAX) {
        ksp_debug(AREA, "blob: bad length %zu", blob != NULL ? blob->len : 0);
        return CKR_DATA_INVALID;
    }
    v2 = blob->p[4] == BLOB_V2 && kind == KSP_TPM_BLOB_KEY;
    if (memcmp(blob->p, BLOB_MAGIC, 4) != 0 || (blob->p[4] != BLOB_VERSION && !v2) ||
        blob->p[5] != (uint8_t)kind || blob->p[6] != 0 || blob->p[7] != 0) {
        ksp_debug(AREA, "blob: not a version %u blob of kind %d", BLOB_VERSION, (int)kind);
        return CKR_DATA_INVALID;
    }
    memset(pub, 0, sizeof(*pub));
    memset(priv, 0, sizeof(*priv));
    rc = Tss2_MU_TPM2B_PUBLIC_Unmarshal(blob->p, blob->len, &off, pub);
    /* tpm2-tss 3.2.1 does not check a TPM2B_PUBLIC's size against the area
     * it unmarshalled: we do, a blob has one encoding. */
    if (rc == TSS2_RC_SUCCESS &&
        ((size_t)blob->p[BLOB_HDR] << 8 | blob->p[BLOB_HDR + 1]) != off - BLOB_HDR - 2) {
        rc = TSS2_MU_RC_BAD_SIZE;
    }
    if (rc == TSS2_RC_SUCCESS) {
        rc = Tss2_MU_TPM2B_PRIVATE_Unmarshal(blob->p, blob->len, &off, priv);
    }
    if (rc == TSS2_RC_SUCCESS && v2) {
        /* tpm2-tss refuses to unmarshal a TPM2B into one with a size set. */
        memset(&cd, 0, sizeof(cd));
        memset(&ch, 0, sizeof(ch));
        memset(&tk, 0, sizeof(tk));
        rc = Tss2_MU_TPM2B_CREATION_DATA_Unmarshal(blob->p, blob->len, &off, &cd);
        if (rc == TSS2_RC_SUCCESS) {
            rc = Tss2_MU_TPM2B_DIGEST_Unmarshal(blob->p, blob->len, &off, &ch);
        }
        if (rc == TSS2_RC_SUCCESS) {
            rc = Tss2_MU_TPMT_TK_CREATION_Unmarshal(blob->p, blob->len, &off, &tk);
        }
    }
    if (rc != TSS2_RC_SUCCESS || off != blob->len || priv->size == 0) {
        ksp_debug(AREA, "blob: malformed TPM areas (%s, %zu of %zu bytes)",
                  rc != TSS2_RC_SUCCESS ? Tss2_RC_Decode(rc) : "trailing data", off, blob->len);
        return CKR_DATA_INVALID;
    }
    if (!public_ok(kind, &pub->publicArea)) {
        ksp_debug(AREA, "blob: public area is not one we create");
        return CKR_DATA_INVALID;
    }
    return CKR_OK;
}

CK_RV ksp_tpm_blob_read_creation(const struct ksp_buf *blob, TPM2B_CREATION_DATA *cd,
                                 TPM2B_DIGEST *ch, TPMT_TK_CREATION *tk)
{
    TPM2B_PUBLIC pub;
    TPM2B_PRIVATE priv;
    size_t off = BLOB_HDR;
    CK_RV rv = ksp_tpm_blob_read(KSP_TPM_BLOB_KEY, blob, &pub, &priv);

    if (rv != CKR_OK) {
        return rv;
    }
    if (blob->p[4] != BLOB_V2) {
        return CKR_KEY_FUNCTION_NOT_PERMITTED;
    }
    memset(&pub, 0, sizeof(pub));
    memset(&priv, 0, sizeof(priv));
    memset(cd, 0, sizeof(*cd));
    memset(ch, 0, sizeof(*ch));
    memset(tk, 0, sizeof(*tk));
    /* Checked by ksp_tpm_blob_read: these cannot fail now. */
    if (Tss2_MU_TPM2B_PUBLIC_Unmarshal(blob->p, blob->len, &off, &pub) != TSS2_RC_SUCCESS ||
        Tss2_MU_TPM2B_PRIVATE_Unmarshal(blob->p, blob->len, &off, &priv) != TSS2_RC_SUCCESS ||
        Tss2_MU_TPM2B_CREATION_DATA_Unmarshal(blob->p, blob->len, &off, cd) != TSS2_RC_SUCCESS ||
        Tss2_MU_TPM2B_DIGEST_Unmarshal(blob->p, blob->len, &off, ch) != TSS2_RC_SUCCESS ||
        Tss2_MU_TPMT_TK_CREATION_Unmarshal(blob->p, blob->len, &off, tk) != TSS2_RC_SUCCESS) {
        return CKR_DATA_INVALID;
    }
    return CKR_OK;
}
