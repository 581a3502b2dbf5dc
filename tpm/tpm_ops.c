/*
 * Private-key primitives of the TPM backend (backend.h enum ksp_prim): raw
 * RSA and the RSA decryptions through TPM2_RSA_Decrypt, native RSA-PSS and
 * ECDSA through TPM2_Sign, ECDH through TPM2_ECDH_ZGen. Each call loads the
 * key under the primary, uses it over a salted HMAC session (response
 * encryption where a secret comes back) and flushes key and session on every
 * path. Input is checked first, so a bad length gets its precise PKCS#11 code
 * without a TPM round trip; PKCS#1 v1.5 signatures, and PSS when the TPM's
 * own salt is not the hash length, are left to the core (CKR_MECHANISM_INVALID
 * -> padding in software + KSP_PRIM_RSA_RAW).
 */
#include <string.h>

#include "log.h"
#include "secmem.h"
#include "swcrypto.h"
#include "tpm_int.h"

#define AREA KSP_TPM_AREA

/* Output length (an upper bound for decryption) and input checks, before
 * any TPM I/O. Mirrors softfallback/soft_op.c so both backends answer bad
 * input alike. */
static CK_RV check_input(struct ksp_bkey *key, const struct ksp_prim_args *args, const uint8_t *in,
                         size_t in_len, size_t *need)
{
    size_t hlen = 0;
    bool rsa = args->prim != KSP_PRIM_ECDSA && args->prim != KSP_PRIM_ECDH;

    if (rsa != (key->key_type == CKK_RSA)) {
        return CKR_KEY_TYPE_INCONSISTENT;
    }
    if (in == NULL && in_len > 0) {
        return CKR_ARGUMENTS_BAD;
    }
    switch (args->prim) {
    case KSP_PRIM_RSA_RAW:
        /* backend.h: a k-byte block below n (big-endian, same length). */
        if (in_len != key->k || memcmp(in, key->pub.publicArea.unique.rsa.buffer, key->k) >= 0) {
            return CKR_DATA_LEN_RANGE;
        }
        *need = key->k;
        return CKR_OK;
    case KSP_PRIM_RSA_PKCS1_SIGN:
        /* TPM2_Sign with RSASSA needs a known DigestInfo and a sign-only
         * scheme; the core pads and calls RSA_RAW instead. */
        return CKR_MECHANISM_INVALID;
    case KSP_PRIM_RSA_PSS_SIGN:
        hlen = ksp_hash_len(args->hash);
        if (hlen == 0 || ksp_hash_len(args->mgf_hash) == 0) {
            return CKR_MECHANISM_PARAM_INVALID;
        }
        /* The TPM's MGF1 uses the signing hash; other hashes are
         * synthesised by the core. */
        if (ksp_tpm_hash_alg(args->hash) == TPM2_ALG_ERROR || args->mgf_hash != args->hash) {
            return CKR_MECHANISM_INVALID;
        }
        if (in_len != hlen) {
            return CKR_DATA_LEN_RANGE;
        }
        /* RFC 8017 §9.1.1 step 3 with sLen = hLen. */
        if (key->k - 1 < 2 * hlen + 2) {
            return CKR_KEY_SIZE_RANGE;
        }
        *need = key->k;
        return CKR_OK;
    case KSP_PRIM_RSA_DECRYPT_PKCS1:
        if (in_len != key->k) {
            return CKR_ENCRYPTED_DATA_LEN_RANGE;
        }
        *need = key->k - 11;
        return CKR_OK;
    case KSP_PRIM_RSA_DECRYPT_OAEP:
        hlen = ksp_hash_len(args->hash);
        if (hlen == 0 || ksp_hash_len(args->mgf_hash) == 0) {
            return CKR_MECHANISM_PARAM_INVALID;
        }
        /* Not native, so the core decodes after RSA_RAW (backend.h): the
         * TPM's MGF1 is the OAEP hash; SHA-224 is rare in TPMs; and TPM 2.0
         * Part 1 Annex B.4 takes the label as a NUL-terminated string it
         * hashes with the NUL, so a PKCS#11 label (binary, any bytes) would
         * decrypt to a different result. */
        if (ksp_tpm_hash_alg(args->hash) == TPM2_ALG_ERROR || args->mgf_hash != args->hash ||
            args->label_len > 0) {
            return CKR_MECHANISM_INVALID;
        }
        if (in_len != key->k) {
            return CKR_ENCRYPTED_DATA_LEN_RANGE;
        }
        if (key->k < 2 * hlen + 2) {
            return CKR_KEY_SIZE_RANGE;
        }
        *need = key->k - 2 * hlen - 2;
        return CKR_OK;
    case KSP_PRIM_ECDSA:
        if (in_len == 0) {
            return CKR_DATA_LEN_RANGE;
        }
        *need = 2 * key->k;
        return CKR_OK;
    case KSP_PRIM_ECDH:
        /* Raw uncompressed point 04 || X || Y (the core unwraps DER). */
        if (in_len != 1 + 2 * key->k || in[0] != 0x04) {
            return CKR_MECHANISM_PARAM_INVALID;
        }
        *need = key->k;
        return CKR_OK;
    default:
        return CKR_MECHANISM_INVALID;
    }
}

/* Left-pad a TPM big-endian number to exactly len bytes into out. */
static CK_RV put_padded(const uint8_t *src, size_t src_len, uint8_t *out, size_t len)
{
    while (src_len > len && src[0] == 0) {
        src++;
        src_len--;
    }
    if (src_len > len) {
        return CKR_DEVICE_ERROR;
    }
    memset(out, 0, len - src_len);
    memcpy(out + len - src_len, src, src_len);
    return CKR_OK;
}

/* RSA_RAW / DECRYPT_*: TPM2_RSA_Decrypt with scheme NULL, RSAES or OAEP. */
static CK_RV rsa_decrypt(struct ksp_backend *be, struct ksp_bkey *key, ESYS_TR h, ESYS_TR s,
                         const struct ksp_prim_args *args, const uint8_t *in, size_t in_len,
                         uint8_t *out, size_t *out_len)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    TPM2B_PUBLIC_KEY_RSA ct;
    TPMT_RSA_DECRYPT scheme;
    TPM2B_DATA label;
    TPM2B_PUBLIC_KEY_RSA *msg = NULL;
    TSS2_RC rc = TSS2_RC_SUCCESS;

    memset(&ct, 0, sizeof(ct));
    memset(&scheme, 0, sizeof(scheme));
    memset(&label, 0, sizeof(label));
    if (in_len > sizeof(ct.buffer)) {
        return CKR_DATA_LEN_RANGE;
    }
    ct.size = (UINT16)in_len;
    memcpy(ct.buffer, in, in_len);
    if (args->prim == KSP_PRIM_RSA_RAW) {
        scheme.scheme = TPM2_ALG_NULL;
    } else if (args->prim == KSP_PRIM_RSA_DECRYPT_PKCS1) {
        scheme.scheme = TPM2_ALG_RSAES;
    } else {
        scheme.scheme = TPM2_ALG_OAEP;
        scheme.details.oaep.hashAlg = ksp_tpm_hash_alg(args->hash);
    }
    rc = Esys_RSA_Decrypt(be->esys, h, s, ESYS_TR_NONE, ESYS_TR_NONE, &ct, &scheme, &label, &msg);
    if (rc != TSS2_RC_SUCCESS) {
        /* The padding did not decode: TPM_RC_VALUE in the reference code,
         * TPM_RC_FAILURE in libtpms 0.9, which hands RSAES/OAEP to OpenSSL
         * (the TPM keeps working: it is not failure mode). */
        if (args->prim != KSP_PRIM_RSA_RAW &&
            (ksp_tpm_rc_base(rc) == TPM2_RC_VALUE || rc == TPM2_RC_FAILURE)) {
            ksp_debug(AREA, "TPM2_RSA_Decrypt: 0x%08x, ciphertext does not decode", (unsigned)rc);
            rv = CKR_ENCRYPTED_DATA_INVALID;
            goto out;
        }
        rv = ksp_tpm_rv(be, rc, "TPM2_RSA_Decrypt");
        goto out;
    }
    if (args->prim == KSP_PRIM_RSA_RAW) {
        rv = put_padded(msg->buffer, msg->size, out, key->k);
        if (rv == CKR_OK) {
            *out_len = key->k;
        }
        goto out;
    }
    if (*out_len < msg->size) {
        /* PKCS#11 3.0 §5.2: the exact length, the operation stays active. */
        *out_len = msg->size;
        rv = CKR_BUFFER_TOO_SMALL;
        goto out;
    }
    memcpy(out, msg->buffer, msg->size);
    *out_len = msg->size;
    rv = CKR_OK;
out:
    if (msg != NULL) {
        ksp_wipe(msg, sizeof(*msg));
        Esys_Free(msg);
    }
    return rv;
}

/* RSA_PSS_SIGN and ECDSA: TPM2_Sign on the (prepared) digest. */
static CK_RV sign(struct ksp_backend *be, struct ksp_bkey *key, ESYS_TR h, ESYS_TR s,
                  const struct ksp_prim_args *args, const uint8_t *in, size_t in_len, uint8_t *out,
                  size_t *out_len)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    TPM2B_DIGEST digest;
    TPMT_SIG_SCHEME scheme;
    TPMT_TK_HASHCHECK ticket;
    TPMT_SIGNATURE *sig = NULL;
    TSS2_RC rc = TSS2_RC_SUCCESS;
    size_t fs = key->k;

    memset(&digest, 0, sizeof(digest));
    memset(&scheme, 0, sizeof(scheme));
    memset(&ticket, 0, sizeof(ticket));
    /* An unrestricted key signs any digest: the NULL ticket will do. */
    ticket.tag = TPM2_ST_HASHCHECK;
    ticket.hierarchy = TPM2_RH_NULL;
    if (args->prim == KSP_PRIM_RSA_PSS_SIGN) {
        scheme.scheme = TPM2_ALG_RSAPSS;
        scheme.details.rsapss.hashAlg = ksp_tpm_hash_alg(args->hash);
        digest.size = (UINT16)in_len;
        memcpy(digest.buffer, in, in_len);
    } else {
        /*
         * ECDSA signs e = the leftmost n-bit part of the digest (SEC 1
         * §4.1.3 step 5; n = 256/384 = 8 x field bytes for our curves). A
         * longer digest cut to the field size, or a shorter one left-padded
         * with zeros, is the same integer e, so we always hand the TPM
         * exactly field-size bytes with the hash of that length. Any digest
         * length gives the signature a software ECDSA would give.
         */
        scheme.scheme = TPM2_ALG_ECDSA;
        scheme.details.ecdsa.hashAlg = fs == 32 ? TPM2_ALG_SHA256 : TPM2_ALG_SHA384;
        digest.size = (UINT16)fs;
        if (in_len >= fs) {
            memcpy(digest.buffer, in, fs);
        } else {
            memcpy(digest.buffer + fs - in_len, in, in_len);
        }
    }
    rc = Esys_Sign(be->esys, h, s, ESYS_TR_NONE, ESYS_TR_NONE, &digest, &scheme, &ticket, &sig);
    if (rc != TSS2_RC_SUCCESS) {
        rv = ksp_tpm_rv(be, rc, "TPM2_Sign");
        goto out;
    }
    if (args->prim == KSP_PRIM_RSA_PSS_SIGN) {
        if (sig->sigAlg != TPM2_ALG_RSAPSS) {
            rv = CKR_DEVICE_ERROR;
            goto out;
        }
        rv = put_padded(sig->signature.rsapss.sig.buffer, sig->signature.rsapss.sig.size, out,
                        key->k);
        *out_len = key->k;
    } else {
        if (sig->sigAlg != TPM2_ALG_ECDSA) {
            rv = CKR_DEVICE_ERROR;
            goto out;
        }
        rv = put_padded(sig->signature.ecdsa.signatureR.buffer,
                        sig->signature.ecdsa.signatureR.size, out, fs);
        if (rv == CKR_OK) {
            rv = put_padded(sig->signature.ecdsa.signatureS.buffer,
                            sig->signature.ecdsa.signatureS.size, out + fs, fs);
        }
        *out_len = 2 * fs;
    }
out:
    Esys_Free(sig);
    return rv;
}

/* ECDH: Z = x coordinate of d * peer (SEC 1 §3.3.1), field-size bytes. */
static CK_RV ecdh(struct ksp_backend *be, struct ksp_bkey *key, ESYS_TR h, ESYS_TR s,
                  const uint8_t *in, uint8_t *out, size_t *out_len)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    TPM2B_ECC_POINT peer;
    TPM2B_ECC_POINT *z = NULL;
    TSS2_RC rc = TSS2_RC_SUCCESS;
    size_t fs = key->k;

    memset(&peer, 0, sizeof(peer));
    peer.point.x.size = (UINT16)fs;
    memcpy(peer.point.x.buffer, in + 1, fs);
    peer.point.y.size = (UINT16)fs;
    memcpy(peer.point.y.buffer, in + 1 + fs, fs);
    rc = Esys_ECDH_ZGen(be->esys, h, s, ESYS_TR_NONE, ESYS_TR_NONE, &peer, &z);
    if (rc != TSS2_RC_SUCCESS) {
        rv = ksp_tpm_rv(be, rc, "TPM2_ECDH_ZGen");
        /* TPM_RC_ECC_POINT / NO_RESULT: the peer point is not on the curve. */
        if (rv == CKR_DATA_INVALID || rv == CKR_DATA_LEN_RANGE) {
            rv = CKR_MECHANISM_PARAM_INVALID;
        }
        goto out;
    }
    rv = put_padded(z->point.x.buffer, z->point.x.size, out, fs);
    *out_len = fs;
out:
    if (z != NULL) {
        ksp_wipe(z, sizeof(*z));
        Esys_Free(z);
    }
    return rv;
}

/* One attempt: load, session, operate, flush. */
static CK_RV run_inlock(struct ksp_backend *be, struct ksp_bkey *key,
                        const struct ksp_prim_args *args, const uint8_t *in, size_t in_len,
                        uint8_t *out, size_t *out_len)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    ESYS_TR h = ESYS_TR_NONE;
    ESYS_TR s = ESYS_TR_NONE;
    /* Plaintexts and shared secrets come back encrypted. */
    TPMA_SESSION attrs = args->prim == KSP_PRIM_RSA_DECRYPT_PKCS1 ||
                                 args->prim == KSP_PRIM_RSA_DECRYPT_OAEP ||
                                 args->prim == KSP_PRIM_ECDH
                             ? TPMA_SESSION_ENCRYPT
                             : 0;

    rv = ksp_tpm_connect_inlock(be);
    if (rv != CKR_OK) {
        goto out;
    }
    rv = ksp_tpm_load_inlock(be, &key->pub, &key->priv, &key->auth, &h);
    if (rv != CKR_OK) {
        goto out;
    }
    rv = ksp_tpm_session_inlock(be, attrs, &s);
    if (rv != CKR_OK) {
        goto out;
    }
    ksp_tpm_primary_done_inlock(be);
    switch (args->prim) {
    case KSP_PRIM_RSA_RAW:
    case KSP_PRIM_RSA_DECRYPT_PKCS1:
    case KSP_PRIM_RSA_DECRYPT_OAEP:
        rv = rsa_decrypt(be, key, h, s, args, in, in_len, out, out_len);
        break;
    case KSP_PRIM_RSA_PSS_SIGN:
    case KSP_PRIM_ECDSA:
        rv = sign(be, key, h, s, args, in, in_len, out, out_len);
        break;
    case KSP_PRIM_ECDH:
        rv = ecdh(be, key, h, s, in, out, out_len);
        break;
    default:
        rv = CKR_MECHANISM_INVALID;
        break;
    }
out:
    ksp_tpm_flush_inlock(be, &s);
    ksp_tpm_flush_inlock(be, &h);
    return rv;
}

CK_RV ksp_tpm_private_op(struct ksp_bkey *key, const struct ksp_prim_args *args, const uint8_t *in,
                         size_t in_len, uint8_t *out, size_t *out_len)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_backend *be = NULL;
    struct ksp_tpm_call call;
    size_t need = 0;
    size_t len = 0;
    bool decrypt = false;

    if (key == NULL || args == NULL || out_len == NULL) {
        return CKR_ARGUMENTS_BAD;
    }
    be = key->be;
    rv = check_input(key, args, in, in_len, &need);
    if (rv != CKR_OK) {
        return rv;
    }
    decrypt = args->prim == KSP_PRIM_RSA_DECRYPT_PKCS1 || args->prim == KSP_PRIM_RSA_DECRYPT_OAEP;
    /* PKCS#11 3.0 §5.2: NULL asks for the length; too small says how much.
     * Decryption knows the exact length only after decrypting. */
    if (out == NULL) {
        *out_len = need;
        return CKR_OK;
    }
    if (!decrypt && *out_len < need) {
        *out_len = need;
        return CKR_BUFFER_TOO_SMALL;
    }
    ksp_tpm_lock(be, &call);
    if (args->prim == KSP_PRIM_RSA_PSS_SIGN && !ksp_tpm_caps_inlock(be)->native_pss) {
        /* The TPM's PSS salt is not the hash length (or is unknown): the
         * core pads with salt = hLen and calls RSA_RAW (semantics.md §5). */
        rv = CKR_MECHANISM_INVALID;
        goto out;
    }
    for (int attempt = 0;; attempt++) {
        len = *out_len;
        /* Signatures take the hot path (tpm_sess.c); the rest ESAPI. */
        rv = ksp_tpm_fast_applies(key, args, in, in_len)
                 ? ksp_tpm_fast_inlock(be, key, args, in, in_len, out, &len)
                 : CKR_FUNCTION_NOT_SUPPORTED;
        if (rv == CKR_FUNCTION_NOT_SUPPORTED) {
            rv = run_inlock(be, key, args, in, in_len, out, &len);
        }
        if (!ksp_tpm_again_inlock(be, rv, attempt)) {
            break;
        }
    }
    if (rv == CKR_OK || rv == CKR_BUFFER_TOO_SMALL) {
        *out_len = len;
    }
out:
    ksp_tpm_unlock(be, &call);
    return rv;
}
