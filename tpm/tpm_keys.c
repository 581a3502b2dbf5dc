/*
 * TPM key pairs (DESIGN.md §3): generation with TPM2_Create under the storage
 * primary, and the loaded-key handle. Keys are made fixedTPM|fixedParent|
 * sensitiveDataOrigin (they never leave this TPM), unrestricted with a NULL
 * scheme (semantics.md §5 recommendation 1: RSA keys sign and decrypt so that
 * PSS with salt = hash length can be synthesised from raw RSA), noDA, and
 * with a random 32-byte authValue that the core keeps encrypted under the
 * token wrapping key. Why noDA for every key: a 256-bit random authValue
 * cannot be guessed, so dictionary-attack protection adds nothing to it,
 * while a lockout caused by someone guessing the PIN (the PIN meets the DA
 * counter at the sealed wrapping key, tpm_seal.c) must not stop sessions
 * that logged in before from signing. Keys made earlier without noDA load
 * and work as before (tpm_blob.c accepts both). key_load only parses: the key is
 * loaded into the TPM by each operation (tpm_ops.c) and flushed after it.
 */
#include <string.h>

#include "log.h"
#include "secmem.h"
#include "swcrypto.h"
#include "tpm_int.h"

#define AREA KSP_TPM_AREA

static const uint8_t f4[3] = {0x01, 0x00, 0x01};

/* Public exponent of a keyspec: only 65537, which every TPM supports. */
static CK_RV exponent_ok(const struct ksp_keyspec *spec)
{
    const uint8_t *p = spec->pub_exp;
    size_t len = spec->pub_exp_len;

    if (p == NULL) {
        return CKR_OK;
    }
    while (len > 0 && p[0] == 0) {
        p++;
        len--;
    }
    if (len != sizeof(f4) || memcmp(p, f4, sizeof(f4)) != 0) {
        ksp_debug(AREA, "keygen: public exponent other than 65537 refused");
        return CKR_TEMPLATE_INCONSISTENT;
    }
    return CKR_OK;
}

static CK_RV key_template(const struct ksp_keyspec *spec, TPM2B_PUBLIC *t)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    TPMT_PUBLIC *p = &t->publicArea;

    memset(t, 0, sizeof(*t));
    p->nameAlg = TPM2_ALG_SHA256;
    p->objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                          TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                          TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_NODA;
    if (spec->key_type == CKK_RSA) {
        if (spec->modulus_bits != 2048 && spec->modulus_bits != 3072) {
            return CKR_KEY_SIZE_RANGE;
        }
        rv = exponent_ok(spec);
        if (rv != CKR_OK) {
            return rv;
        }
        p->type = TPM2_ALG_RSA;
        p->objectAttributes |= TPMA_OBJECT_DECRYPT;
        p->parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
        p->parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
        p->parameters.rsaDetail.keyBits = (TPMI_RSA_KEY_BITS)spec->modulus_bits;
        p->parameters.rsaDetail.exponent = 0; /* 0 = 65537 */
        return CKR_OK;
    }
    if (spec->key_type == CKK_EC) {
        p->type = TPM2_ALG_ECC;
        if (spec->curve == KSP_CURVE_P256) {
            p->parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
        } else if (spec->curve == KSP_CURVE_P384) {
            p->parameters.eccDetail.curveID = TPM2_ECC_NIST_P384;
        } else {
            return CKR_CURVE_NOT_SUPPORTED;
        }
        /* ECDH_ZGen needs the decrypt attribute. */
        if (spec->derive) {
            p->objectAttributes |= TPMA_OBJECT_DECRYPT;
        }
        p->parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
        p->parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
        p->parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
        return CKR_OK;
    }
    return CKR_KEY_TYPE_INCONSISTENT;
}

static void pub_clear(struct ksp_pubkey *pk)
{
    ksp_buf_free(&pk->modulus);
    ksp_buf_free(&pk->pub_exp);
    ksp_buf_free(&pk->ec_point);
    memset(pk, 0, sizeof(*pk));
}

/* backend.h struct ksp_pubkey from a TPM public area: RSA n (no leading
 * zero) and e; EC 04||X||Y with coordinates left-padded to the field size. */
static CK_RV pub_from_tpm(const TPMT_PUBLIC *p, struct ksp_pubkey *out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_pubkey pk;

    memset(&pk, 0, sizeof(pk));
    if (p->type == TPM2_ALG_RSA) {
        const uint8_t *n = p->unique.rsa.buffer;
        size_t len = p->unique.rsa.size;

        while (len > 0 && n[0] == 0) {
            n++;
            len--;
        }
        pk.key_type = CKK_RSA;
        rv = ksp_buf_set(&pk.modulus, n, len);
        if (rv == CKR_OK) {
            rv = ksp_buf_set(&pk.pub_exp, f4, sizeof(f4));
        }
    } else {
        size_t fs = ksp_tpm_curve_bytes(p->parameters.eccDetail.curveID);
        const TPM2B_ECC_PARAMETER *x = &p->unique.ecc.x;
        const TPM2B_ECC_PARAMETER *y = &p->unique.ecc.y;

        if (fs == 0 || x->size > fs || y->size > fs) {
            return CKR_DEVICE_ERROR;
        }
        pk.key_type = CKK_EC;
        pk.curve = fs == 32 ? KSP_CURVE_P256 : KSP_CURVE_P384;
        rv = ksp_buf_alloc(&pk.ec_point, 1 + 2 * fs);
        if (rv == CKR_OK) {
            memset(pk.ec_point.p, 0, pk.ec_point.len);
            pk.ec_point.p[0] = 0x04;
            memcpy(pk.ec_point.p + 1 + fs - x->size, x->buffer, x->size);
            memcpy(pk.ec_point.p + 1 + 2 * fs - y->size, y->buffer, y->size);
        }
    }
    if (rv != CKR_OK) {
        pub_clear(&pk);
        return rv;
    }
    *out = pk;
    return CKR_OK;
}

CK_RV ksp_tpm_keygen(struct ksp_backend *be, const struct ksp_keyspec *spec,
                     struct ksp_buf *blob_out, struct ksp_buf *secret_out,
                     struct ksp_pubkey *pub_out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_tpm_call call;
    bool locked = false;
    TPM2B_PUBLIC tmpl;
    TPM2B_SENSITIVE_CREATE sens;
    TPM2B_PRIVATE *priv = NULL;
    TPM2B_PUBLIC *pub = NULL;
    struct ksp_tpm_creation creation = {NULL, NULL, NULL};
    struct ksp_buf secret = {NULL, 0};
    struct ksp_buf blob = {NULL, 0};
    struct ksp_pubkey pk;

    memset(&sens, 0, sizeof(sens));
    memset(&pk, 0, sizeof(pk));
    if (be == NULL || spec == NULL || blob_out == NULL || secret_out == NULL || pub_out == NULL) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    rv = key_template(spec, &tmpl);
    if (rv != CKR_OK) {
        goto out;
    }
    rv = ksp_buf_alloc(&secret, KSP_TPM_AUTH_LEN);
    if (rv != CKR_OK) {
        goto out;
    }
    rv = ksp_random(secret.p, secret.len);
    if (rv != CKR_OK) {
        goto out;
    }
    sens.sensitive.userAuth.size = (UINT16)secret.len;
    memcpy(sens.sensitive.userAuth.buffer, secret.p, secret.len);

    ksp_tpm_lock(be, &call);
    locked = true;
    for (int attempt = 0;; attempt++) {
        rv = ksp_tpm_connect_inlock(be);
        if (rv == CKR_OK) {
            rv = ksp_tpm_create_ex_inlock(be, &sens, &tmpl, &priv, &pub, &creation);
        }
        if (!ksp_tpm_again_inlock(be, rv, attempt)) {
            break;
        }
    }
    ksp_tpm_unlock(be, &call);
    locked = false;
    if (rv != CKR_OK) {
        /* TPM_RC_VALUE on a size or curve means the TPM cannot make it. */
        if (rv == CKR_DATA_INVALID || rv == CKR_MECHANISM_INVALID) {
            rv = spec->key_type == CKK_RSA ? CKR_KEY_SIZE_RANGE : CKR_CURVE_NOT_SUPPORTED;
        }
        goto out;
    }
    rv = ksp_tpm_blob_write_key(pub, priv, creation.data, creation.hash, creation.ticket, &blob);
    if (rv != CKR_OK) {
        goto out;
    }
    rv = pub_from_tpm(&pub->publicArea, &pk);
    if (rv != CKR_OK) {
        goto out;
    }
    *blob_out = blob;
    *secret_out = secret;
    *pub_out = pk;
    blob = (struct ksp_buf){NULL, 0};
    secret = (struct ksp_buf){NULL, 0};
    memset(&pk, 0, sizeof(pk));
    rv = CKR_OK;
out:
    if (locked) {
        ksp_tpm_unlock(be, &call);
    }
    ksp_wipe(&sens, sizeof(sens));
    Esys_Free(priv);
    Esys_Free(pub);
    Esys_Free(creation.data);
    Esys_Free(creation.hash);
    Esys_Free(creation.ticket);
    ksp_buf_free(&secret);
    ksp_buf_free(&blob);
    pub_clear(&pk);
    return rv;
}

CK_RV ksp_tpm_key_load(struct ksp_backend *be, const struct ksp_buf *blob,
                       const struct ksp_buf *secret, struct ksp_bkey **out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_bkey *key = NULL;
    const TPMT_PUBLIC *p = NULL;

    if (be == NULL || blob == NULL || out == NULL) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    /* The authValue is at most the nameAlg's digest size (SHA-256). */
    if (secret != NULL && (secret->len > sizeof(key->auth.buffer) || secret->len > 32 ||
                           (secret->len > 0 && secret->p == NULL))) {
        rv = CKR_DATA_INVALID;
        goto out;
    }
    key = ksp_secmem_alloc(sizeof(*key));
    if (key == NULL) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    rv = ksp_tpm_blob_read(KSP_TPM_BLOB_KEY, blob, &key->pub, &key->priv);
    if (rv != CKR_OK) {
        goto out;
    }
    p = &key->pub.publicArea;
    key->be = be;
    if (p->type == TPM2_ALG_RSA) {
        key->key_type = CKK_RSA;
        key->curve = KSP_CURVE_NONE;
        key->k = p->unique.rsa.size;
    } else {
        key->key_type = CKK_EC;
        key->curve =
            p->parameters.eccDetail.curveID == TPM2_ECC_NIST_P256 ? KSP_CURVE_P256 : KSP_CURVE_P384;
        key->k = ksp_tpm_curve_bytes(p->parameters.eccDetail.curveID);
    }
    if (secret != NULL && secret->len > 0) {
        key->auth.size = (UINT16)secret->len;
        memcpy(key->auth.buffer, secret->p, secret->len);
    }
    *out = key;
    key = NULL;
    rv = CKR_OK;
out:
    if (key != NULL) {
        ksp_secmem_free(key, sizeof(*key));
    }
    return rv;
}

void ksp_tpm_key_unload(struct ksp_bkey *key)
{
    /* Loaded in the TPM between operations only behind a resource manager
     * (tpm_sess.c): flushed here. */
    if (key != NULL) {
        ksp_tpm_key_forget(key);
        ksp_secmem_free(key, sizeof(*key));
    }
}
