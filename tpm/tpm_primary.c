/*
 * The storage primary and the per-operation plumbing on top of it (DESIGN.md
 * §3 "TPM hygiene"): salted HMAC sessions so that authValues never cross the
 * TPM interface in clear, loading a blob under the primary, creating children
 * of it, and flushing what we loaded. Behind a resource manager the primary
 * stays loaded while the connection lives (one of the 3 transient slots it
 * gives us); without one it is flushed at the end of every call (see
 * keep_primary() in tpm_ctx.c). Everything else is flushed by the operation
 * that loaded it.
 */
#include <string.h>

/* ENGINE_* is deprecated in OpenSSL 3 but is what a host's engine uses. */
#define OPENSSL_SUPPRESS_DEPRECATED
#include <openssl/engine.h>
#include <openssl/evp.h>

#include "log.h"
#include "tpm_int.h"

#define AREA KSP_TPM_AREA

/* TCG "TPM 2.0 Provisioning Guidance", the ECC P-256 SRK template: a
 * restricted decryption key, AES-128-CFB, SHA-256 name, empty unique. */
static void srk_template(TPM2B_PUBLIC *t)
{
    TPMS_ECC_PARMS *e = &t->publicArea.parameters.eccDetail;

    memset(t, 0, sizeof(*t));
    t->publicArea.type = TPM2_ALG_ECC;
    t->publicArea.nameAlg = TPM2_ALG_SHA256;
    t->publicArea.objectAttributes = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT |
                                     TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                     TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                                     TPMA_OBJECT_NODA;
    e->symmetric.algorithm = TPM2_ALG_AES;
    e->symmetric.keyBits.aes = 128;
    e->symmetric.mode.aes = TPM2_ALG_CFB;
    e->scheme.scheme = TPM2_ALG_NULL;
    e->curveID = TPM2_ECC_NIST_P256;
    e->kdf.scheme = TPM2_ALG_NULL;
}

/* A parent we can create and load under: restricted, decrypt, not sign,
 * fixed, with a symmetric algorithm (TPM 2.0 Part 1 §25.1 storage keys). */
static bool is_storage_key(const TPMT_PUBLIC *p)
{
    const TPMA_OBJECT need = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT | TPMA_OBJECT_FIXEDTPM |
                             TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_USERWITHAUTH;
    TPM2_ALG_ID sym = TPM2_ALG_NULL;

    if (p->type == TPM2_ALG_ECC) {
        sym = p->parameters.eccDetail.symmetric.algorithm;
    } else if (p->type == TPM2_ALG_RSA) {
        sym = p->parameters.rsaDetail.symmetric.algorithm;
    } else {
        return false;
    }
    return (p->objectAttributes & need) == need &&
           (p->objectAttributes & TPMA_OBJECT_SIGN_ENCRYPT) == 0 && sym == TPM2_ALG_AES;
}

/* Use 0x81000001 if it holds a storage key. *found false if it does not. */
static CK_RV try_persistent(struct ksp_backend *be, bool *found)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    ESYS_TR tr = ESYS_TR_NONE;
    TPM2B_PUBLIC *pub = NULL;
    TSS2_RC rc = TSS2_RC_SUCCESS;

    *found = false;
    rc = Esys_TR_FromTPMPublic(be->esys, KSP_TPM_SRK_HANDLE, ESYS_TR_NONE, ESYS_TR_NONE,
                               ESYS_TR_NONE, &tr);
    if (rc == TSS2_RC_SUCCESS) {
        rc = Esys_ReadPublic(be->esys, tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub, NULL,
                             NULL);
    }
    if (rc != TSS2_RC_SUCCESS) {
        if ((rc & TSS2_RC_LAYER_MASK) == TSS2_TPM_RC_LAYER) {
            /* TPM_RC_HANDLE: nothing persistent there, the usual case. */
            rv = CKR_OK;
        } else {
            rv = ksp_tpm_rv(be, rc, "reading the persistent SRK 0x81000001");
        }
        goto out;
    }
    if (!is_storage_key(&pub->publicArea)) {
        ksp_info(AREA, "0x81000001 is not a storage key: using a primary of our own");
        rv = CKR_OK;
        goto out;
    }
    be->primary = tr;
    be->primary_persistent = true;
    be->primary_pub = *pub; /* for salting our own sessions (tpm_sess.c) */
    be->primary_pub_valid = true;
    tr = ESYS_TR_NONE;
    *found = true;
    rv = CKR_OK;
out:
    if (tr != ESYS_TR_NONE) {
        /* Persistent: drop ESAPI's record only, never flush. */
        Esys_TR_Close(be->esys, &tr);
    }
    Esys_Free(pub);
    return rv;
}

CK_RV ksp_tpm_primary_inlock(struct ksp_backend *be)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    TPM2B_SENSITIVE_CREATE sens;
    TPM2B_PUBLIC tmpl;
    TPM2B_DATA outside;
    TPML_PCR_SELECTION pcr;
    ESYS_TR tr = ESYS_TR_NONE;
    TPM2B_PUBLIC *out_pub = NULL;
    TSS2_RC rc = TSS2_RC_SUCCESS;
    bool found = false;

    if (be->primary != ESYS_TR_NONE) {
        return CKR_OK;
    }
    rv = try_persistent(be, &found);
    if (rv != CKR_OK || found) {
        return rv;
    }
    memset(&sens, 0, sizeof(sens));
    memset(&outside, 0, sizeof(outside));
    memset(&pcr, 0, sizeof(pcr));
    srk_template(&tmpl);
    /* Owner hierarchy with its (empty) password: nothing secret crosses. */
    rc =
        Esys_CreatePrimary(be->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                           &sens, &tmpl, &outside, &pcr, &tr, &out_pub, NULL, NULL, NULL);
    if (rc != TSS2_RC_SUCCESS) {
        TSS2_RC base = ksp_tpm_rc_base(rc);

        rv = ksp_tpm_rv(be, rc, "TPM2_CreatePrimary (storage key)");
        if (base == TPM2_RC_BAD_AUTH || base == TPM2_RC_AUTH_FAIL) {
            /* Not the user's PIN: the owner hierarchy has a password. */
            ksp_err(AREA, "the owner hierarchy has a password: provision a storage key at "
                          "0x81000001 (e.g. tpm2_createprimary + tpm2_evictcontrol)");
            rv = CKR_DEVICE_ERROR;
        }
        return rv;
    }
    be->primary = tr;
    be->primary_persistent = false;
    if (out_pub != NULL) {
        be->primary_pub = *out_pub;
        be->primary_pub_valid = true;
        Esys_Free(out_pub);
    }
    return CKR_OK;
}

void ksp_tpm_primary_done_inlock(struct ksp_backend *be)
{
    if (!be->keep_primary && !be->primary_persistent) {
        ksp_tpm_primary_drop_inlock(be, !be->dead);
    }
}

void ksp_tpm_primary_drop_inlock(struct ksp_backend *be, bool flush)
{
    TSS2_RC rc = TSS2_RC_SUCCESS;

    if (be->primary == ESYS_TR_NONE) {
        return;
    }
    if (be->esys != NULL) {
        if (be->primary_persistent) {
            Esys_TR_Close(be->esys, &be->primary);
        } else if (flush) {
            rc = Esys_FlushContext(be->esys, be->primary);
            if (rc != TSS2_RC_SUCCESS) {
                ksp_debug(AREA, "flushing the primary: %s", Tss2_RC_Decode(rc));
            }
        }
    }
    /* Otherwise ESAPI's record goes with Esys_Finalize. */
    be->primary = ESYS_TR_NONE;
    be->primary_pub_valid = false;
    be->primary_persistent = false;
}

/*
 * TPM2_StartAuthSession salted with the primary. tpm2-tss 3.2.1 makes the
 * salt's ephemeral EC key with EVP_PKEY_CTX_new_id(EVP_PKEY_EC, NULL) on
 * OpenSSL's default context, which picks up a host's default EC engine:
 * `openssl -engine pkcs11` and curl make libp11's engine the default, whose
 * EC keygen fails (and could route into a PKCS#11 module: us). tpm2-tss has
 * no crypto hook, so for this one call we take that engine out of the EC
 * table and put it back as the default afterwards (issue 3: our crypto must
 * never route into the host's engine). Other host threads briefly get
 * OpenSSL's own EC method for new contexts made by id; keys bound to the
 * engine are unaffected.
 */
static TSS2_RC start_salted(struct ksp_backend *be, TPMT_SYM_DEF *sym, ESYS_TR *s)
{
    ENGINE *e = ENGINE_get_pkey_meth_engine(EVP_PKEY_EC);
    if (e)
        ENGINE_unregister_pkey_meths(e);
    TSS2_RC rc =
        Esys_StartAuthSession(be->esys, be->primary, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                              ESYS_TR_NONE, NULL, TPM2_SE_HMAC, sym, TPM2_ALG_SHA256, s);
    if (e) {
        ENGINE_set_default_pkey_meths(e);
        ENGINE_finish(e);
    }
    return rc;
}

CK_RV ksp_tpm_session_inlock(struct ksp_backend *be, TPMA_SESSION attrs, ESYS_TR *out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    TPMT_SYM_DEF sym;
    ESYS_TR s = ESYS_TR_NONE;
    TSS2_RC rc = TSS2_RC_SUCCESS;

    rv = ksp_tpm_primary_inlock(be);
    if (rv != CKR_OK) {
        return rv;
    }
    memset(&sym, 0, sizeof(sym));
    sym.algorithm = TPM2_ALG_AES;
    sym.keyBits.aes = 128;
    sym.mode.aes = TPM2_ALG_CFB;
    /* Salted with the primary: the session key is unknown to anyone who
     * watches the bus, so HMACs and parameter encryption protect the
     * authValues and the secrets we send and receive. */
    rc = start_salted(be, &sym, &s);
    if (rc != TSS2_RC_SUCCESS) {
        return ksp_tpm_rv(be, rc, "TPM2_StartAuthSession");
    }
    rc = Esys_TRSess_SetAttributes(be->esys, s, TPMA_SESSION_CONTINUESESSION | attrs, 0xFF);
    if (rc != TSS2_RC_SUCCESS) {
        rv = ksp_tpm_rv(be, rc, "session attributes");
        ksp_tpm_flush_inlock(be, &s);
        return rv;
    }
    *out = s;
    return CKR_OK;
}

/* Load and Create authorize the parent only: a refused authorization there
 * is not the user's PIN but a storage key that wants a password. */
static CK_RV parent_rv(struct ksp_backend *be, CK_RV rv)
{
    if (rv == CKR_PIN_INCORRECT) {
        ksp_err(AREA, "the storage key%s refuses an empty password",
                be->primary_persistent ? " at 0x81000001" : "");
        return CKR_DEVICE_ERROR;
    }
    return rv;
}

CK_RV ksp_tpm_load_inlock(struct ksp_backend *be, const TPM2B_PUBLIC *pub,
                          const TPM2B_PRIVATE *priv, const TPM2B_AUTH *auth, ESYS_TR *out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    ESYS_TR h = ESYS_TR_NONE;
    TSS2_RC rc = TSS2_RC_SUCCESS;

    rv = ksp_tpm_primary_inlock(be);
    if (rv != CKR_OK) {
        return rv;
    }
    /* The parent's authValue is empty: a password session carries nothing
     * secret, and inPrivate is encrypted by the parent. */
    rc = Esys_Load(be->esys, be->primary, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, priv, pub,
                   &h);
    if (rc != TSS2_RC_SUCCESS) {
        rv = parent_rv(be, ksp_tpm_rv(be, rc, "TPM2_Load"));
        /* A parameter the TPM refuses is the blob: altered, or made by
         * another TPM or under another primary. */
        if ((rc & TSS2_RC_LAYER_MASK) == TSS2_TPM_RC_LAYER && (rc & TPM2_RC_FMT1) != 0 &&
            (rc & TPM2_RC_P) != 0) {
            rv = CKR_DATA_INVALID;
        }
        return rv;
    }
    rc = Esys_TR_SetAuth(be->esys, h, auth);
    if (rc != TSS2_RC_SUCCESS) {
        rv = ksp_tpm_rv(be, rc, "Esys_TR_SetAuth");
        ksp_tpm_flush_inlock(be, &h);
        return rv;
    }
    *out = h;
    return CKR_OK;
}

void ksp_tpm_flush_inlock(struct ksp_backend *be, ESYS_TR *h)
{
    TPM2_HANDLE tpm_handle = 0;
    TPM2B_AUTH empty;
    TSS2_RC rc = TSS2_RC_SUCCESS;

    if (*h == ESYS_TR_NONE || be->esys == NULL) {
        *h = ESYS_TR_NONE;
        return;
    }
    memset(&empty, 0, sizeof(empty));
    if (Esys_TR_GetTpmHandle(be->esys, *h, &tpm_handle) == TSS2_RC_SUCCESS &&
        (tpm_handle >> TPM2_HR_SHIFT) == TPM2_HT_TRANSIENT) {
        /* ESAPI frees its copy of the authValue without wiping it. */
        (void)Esys_TR_SetAuth(be->esys, *h, &empty);
    }
    rc = Esys_FlushContext(be->esys, *h);
    if (rc != TSS2_RC_SUCCESS) {
        (void)ksp_tpm_rv(be, rc, "TPM2_FlushContext");
    }
    *h = ESYS_TR_NONE;
}

CK_RV ksp_tpm_create_inlock(struct ksp_backend *be, const TPM2B_SENSITIVE_CREATE *sens,
                            const TPM2B_PUBLIC *tmpl, TPM2B_PRIVATE **priv_out,
                            TPM2B_PUBLIC **pub_out)
{
    return ksp_tpm_create_ex_inlock(be, sens, tmpl, priv_out, pub_out, NULL);
}

CK_RV ksp_tpm_create_ex_inlock(struct ksp_backend *be, const TPM2B_SENSITIVE_CREATE *sens,
                               const TPM2B_PUBLIC *tmpl, TPM2B_PRIVATE **priv_out,
                               TPM2B_PUBLIC **pub_out, struct ksp_tpm_creation *creation)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    ESYS_TR s = ESYS_TR_NONE;
    TPM2B_DATA outside;
    TPML_PCR_SELECTION pcr;
    TSS2_RC rc = TSS2_RC_SUCCESS;

    /* TPMA_SESSION_DECRYPT: inSensitive (the new object's authValue and, for
     * sealed data, the data) travels encrypted. */
    rv = ksp_tpm_session_inlock(be, TPMA_SESSION_DECRYPT, &s);
    if (rv != CKR_OK) {
        return rv;
    }
    memset(&outside, 0, sizeof(outside));
    memset(&pcr, 0, sizeof(pcr));
    rc = Esys_Create(be->esys, be->primary, s, ESYS_TR_NONE, ESYS_TR_NONE, sens, tmpl, &outside,
                     &pcr, priv_out, pub_out, creation != NULL ? &creation->data : NULL,
                     creation != NULL ? &creation->hash : NULL,
                     creation != NULL ? &creation->ticket : NULL);
    rv = rc == TSS2_RC_SUCCESS ? CKR_OK : parent_rv(be, ksp_tpm_rv(be, rc, "TPM2_Create"));
    ksp_tpm_flush_inlock(be, &s);
    return rv;
}

TPMI_ALG_HASH ksp_tpm_hash_alg(CK_MECHANISM_TYPE hash)
{
    switch (hash) {
    case CKM_SHA_1:
        return TPM2_ALG_SHA1;
    case CKM_SHA256:
        return TPM2_ALG_SHA256;
    case CKM_SHA384:
        return TPM2_ALG_SHA384;
    case CKM_SHA512:
        return TPM2_ALG_SHA512;
    default:
        return TPM2_ALG_ERROR;
    }
}
