/*
 * Mechanism table and parameter validators (PKCS#11 3.0 §6 "Mechanisms",
 * the RSA §2.1 and EC §2.3 sections of the current mechanisms spec).
 */
#include <stdlib.h>
#include <string.h>

#include "mech.h"
#include "swcrypto.h"

#define SIGNV      (CKF_SIGN | CKF_VERIFY)
#define RSA_OP_MIN 1024
#define RSA_OP_MAX 16384

static CK_RV no_params(const struct ksp_mech *row, const CK_MECHANISM *m, struct ksp_mparams *out)
{
    (void)row;
    (void)out;
    if (m->pParameter || m->ulParameterLen)
        return CKR_MECHANISM_PARAM_INVALID;
    return CKR_OK;
}

static CK_MECHANISM_TYPE mgf_to_hash(CK_RSA_PKCS_MGF_TYPE mgf)
{
    switch (mgf) {
    case CKG_MGF1_SHA1:
        return CKM_SHA_1;
    case CKG_MGF1_SHA224:
        return CKM_SHA224;
    case CKG_MGF1_SHA256:
        return CKM_SHA256;
    case CKG_MGF1_SHA384:
        return CKM_SHA384;
    case CKG_MGF1_SHA512:
        return CKM_SHA512;
    default:
        return 0;
    }
}

/*
 * PSS: CK_RSA_PKCS_PSS_PARAMS required. For CKM_SHAx_RSA_PKCS_PSS the hash must
 * be the mechanism's (§2.1.15). ksp11 accepts only MGF1 with the same hash and
 * sLen = hLen, the form TLS 1.3 uses and every TPM can be made to produce
 * (semantics.md §5).
 */
static CK_RV pss_params(const struct ksp_mech *row, const CK_MECHANISM *m, struct ksp_mparams *out)
{
    const CK_RSA_PKCS_PSS_PARAMS *p = m->pParameter;
    if (!p || m->ulParameterLen != sizeof(*p))
        return CKR_MECHANISM_PARAM_INVALID;
    if (ksp_hash_len(p->hashAlg) == 0 || (row->hash && p->hashAlg != row->hash))
        return CKR_MECHANISM_PARAM_INVALID;
    if (mgf_to_hash(p->mgf) != p->hashAlg || p->sLen != ksp_hash_len(p->hashAlg))
        return CKR_MECHANISM_PARAM_INVALID;
    out->hash = p->hashAlg;
    out->mgf_hash = p->hashAlg;
    out->salt_len = p->sLen;
    return CKR_OK;
}

static CK_RV oaep_params(const struct ksp_mech *row, const CK_MECHANISM *m, struct ksp_mparams *out)
{
    (void)row;
    const CK_RSA_PKCS_OAEP_PARAMS *p = m->pParameter;
    if (!p || m->ulParameterLen != sizeof(*p))
        return CKR_MECHANISM_PARAM_INVALID;
    /* Any MGF1 hash: backends that cannot use another one natively leave
     * the decoding to the core (rsa_pad_oaep.c). */
    if (ksp_hash_len(p->hashAlg) == 0 || mgf_to_hash(p->mgf) == 0)
        return CKR_MECHANISM_PARAM_INVALID;
    /* §2.1.8: source is 0 or CKZ_DATA_SPECIFIED; data only with the latter. */
    if (p->source != 0 && p->source != CKZ_DATA_SPECIFIED)
        return CKR_MECHANISM_PARAM_INVALID;
    if (p->ulSourceDataLen && (!p->pSourceData || p->source != CKZ_DATA_SPECIFIED))
        return CKR_MECHANISM_PARAM_INVALID;
    out->hash = p->hashAlg;
    out->mgf_hash = mgf_to_hash(p->mgf);
    if (p->ulSourceDataLen) {
        out->label = malloc(p->ulSourceDataLen);
        if (!out->label)
            return CKR_HOST_MEMORY;
        memcpy(out->label, p->pSourceData, p->ulSourceDataLen);
        out->label_len = p->ulSourceDataLen;
    }
    return CKR_OK;
}

static CK_RV ecdh_params(const struct ksp_mech *row, const CK_MECHANISM *m, struct ksp_mparams *out)
{
    (void)row;
    const CK_ECDH1_DERIVE_PARAMS *p = m->pParameter;
    if (!p || m->ulParameterLen != sizeof(*p))
        return CKR_MECHANISM_PARAM_INVALID;
    switch (p->kdf) {
    case CKD_NULL:
        /* §2.3.17: with CKD_NULL there must be no shared data. */
        if (p->ulSharedDataLen || p->pSharedData)
            return CKR_MECHANISM_PARAM_INVALID;
        break;
    case CKD_SHA1_KDF:
    case CKD_SHA224_KDF:
    case CKD_SHA256_KDF:
    case CKD_SHA384_KDF:
    case CKD_SHA512_KDF:
        if (p->ulSharedDataLen && !p->pSharedData)
            return CKR_MECHANISM_PARAM_INVALID;
        break;
    default:
        return CKR_MECHANISM_PARAM_INVALID;
    }
    if (!p->pPublicData || !p->ulPublicDataLen)
        return CKR_MECHANISM_PARAM_INVALID;
    out->kdf = p->kdf;
    out->peer = malloc(p->ulPublicDataLen);
    if (!out->peer)
        return CKR_HOST_MEMORY;
    memcpy(out->peer, p->pPublicData, p->ulPublicDataLen);
    out->peer_len = p->ulPublicDataLen;
    if (p->ulSharedDataLen) {
        out->shared = malloc(p->ulSharedDataLen);
        if (!out->shared)
            return CKR_HOST_MEMORY;
        memcpy(out->shared, p->pSharedData, p->ulSharedDataLen);
        out->shared_len = p->ulSharedDataLen;
    }
    return CKR_OK;
}

#define RSA_SIGN(t, h, p, v)                                                                       \
    {                                                                                              \
        t, RSA_OP_MIN, RSA_OP_MAX, SIGNV, CKK_RSA, h, p, v                                         \
    }
#define EC_SIGN(t, h)                                                                              \
    {                                                                                              \
        t, 256, 521, SIGNV, CKK_EC, h, KSP_PAD_ECDSA, no_params                                    \
    }
#define DIGEST(t)                                                                                  \
    {                                                                                              \
        t, 0, 0, CKF_DIGEST, CK_UNAVAILABLE_INFORMATION, t, KSP_PAD_DIGEST, no_params              \
    }

static const struct ksp_mech mechs[] = {
    {CKM_RSA_PKCS_KEY_PAIR_GEN, 2048, 4096, CKF_GENERATE_KEY_PAIR, CKK_RSA, 0, KSP_PAD_KEYGEN,
     no_params},
    {CKM_EC_KEY_PAIR_GEN, 256, 521,
     CKF_GENERATE_KEY_PAIR | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS, CKK_EC, 0,
     KSP_PAD_KEYGEN, no_params},
    {CKM_RSA_PKCS, RSA_OP_MIN, RSA_OP_MAX, SIGNV | CKF_ENCRYPT | CKF_DECRYPT, CKK_RSA, 0,
     KSP_PAD_PKCS1, no_params},
    RSA_SIGN(CKM_RSA_X_509, 0, KSP_PAD_X509, no_params),
    RSA_SIGN(CKM_RSA_PKCS_PSS, 0, KSP_PAD_PSS, pss_params),
    RSA_SIGN(CKM_SHA1_RSA_PKCS, CKM_SHA_1, KSP_PAD_PKCS1, no_params),
    RSA_SIGN(CKM_SHA224_RSA_PKCS, CKM_SHA224, KSP_PAD_PKCS1, no_params),
    RSA_SIGN(CKM_SHA256_RSA_PKCS, CKM_SHA256, KSP_PAD_PKCS1, no_params),
    RSA_SIGN(CKM_SHA384_RSA_PKCS, CKM_SHA384, KSP_PAD_PKCS1, no_params),
    RSA_SIGN(CKM_SHA512_RSA_PKCS, CKM_SHA512, KSP_PAD_PKCS1, no_params),
    RSA_SIGN(CKM_SHA1_RSA_PKCS_PSS, CKM_SHA_1, KSP_PAD_PSS, pss_params),
    RSA_SIGN(CKM_SHA224_RSA_PKCS_PSS, CKM_SHA224, KSP_PAD_PSS, pss_params),
    RSA_SIGN(CKM_SHA256_RSA_PKCS_PSS, CKM_SHA256, KSP_PAD_PSS, pss_params),
    RSA_SIGN(CKM_SHA384_RSA_PKCS_PSS, CKM_SHA384, KSP_PAD_PSS, pss_params),
    RSA_SIGN(CKM_SHA512_RSA_PKCS_PSS, CKM_SHA512, KSP_PAD_PSS, pss_params),
    {CKM_RSA_PKCS_OAEP, RSA_OP_MIN, RSA_OP_MAX, CKF_ENCRYPT | CKF_DECRYPT, CKK_RSA, 0, KSP_PAD_OAEP,
     oaep_params},
    EC_SIGN(CKM_ECDSA, 0),
    EC_SIGN(CKM_ECDSA_SHA1, CKM_SHA_1),
    EC_SIGN(CKM_ECDSA_SHA224, CKM_SHA224),
    EC_SIGN(CKM_ECDSA_SHA256, CKM_SHA256),
    EC_SIGN(CKM_ECDSA_SHA384, CKM_SHA384),
    EC_SIGN(CKM_ECDSA_SHA512, CKM_SHA512),
    {CKM_ECDH1_DERIVE, 256, 521, CKF_DERIVE | CKF_EC_F_P | CKF_EC_NAMEDCURVE | CKF_EC_UNCOMPRESS,
     CKK_EC, 0, KSP_PAD_ECDH, ecdh_params},
    DIGEST(CKM_SHA_1),
    DIGEST(CKM_SHA224),
    DIGEST(CKM_SHA256),
    DIGEST(CKM_SHA384),
    DIGEST(CKM_SHA512),
};

const struct ksp_mech *ksp_mech_find(CK_MECHANISM_TYPE type)
{
    for (size_t i = 0; i < sizeof(mechs) / sizeof(mechs[0]); i++)
        if (mechs[i].type == type)
            return &mechs[i];
    return NULL;
}

size_t ksp_mech_count(void)
{
    return sizeof(mechs) / sizeof(mechs[0]);
}

const struct ksp_mech *ksp_mech_at(size_t i)
{
    return i < ksp_mech_count() ? &mechs[i] : NULL;
}

CK_RV ksp_mech_params(const struct ksp_mech *row, const CK_MECHANISM *m, struct ksp_mparams *out)
{
    struct ksp_mparams p;
    memset(&p, 0, sizeof(p));
    if (m->ulParameterLen && !m->pParameter)
        return CKR_MECHANISM_PARAM_INVALID;
    CK_RV rv = row->validate(row, m, &p);
    if (rv != CKR_OK) {
        ksp_mparams_free(&p);
        return rv;
    }
    *out = p;
    return CKR_OK;
}

void ksp_mparams_free(struct ksp_mparams *p)
{
    free(p->label);
    free(p->shared);
    free(p->peer);
    memset(p, 0, sizeof(*p));
}
