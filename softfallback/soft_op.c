/*
 * Private-key primitives of the software backend (backend.h enum ksp_prim):
 * raw RSA, PKCS#1 v1.5 and PSS signatures, PKCS#1 v1.5 and OAEP decryption,
 * ECDSA with r||s output and ECDH returning Z. Input is checked here so that
 * a bad length gets its precise PKCS#11 code rather than an OpenSSL failure.
 */
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "log.h"
#include "ossl_ctx.h"
#include "secmem.h"
#include "soft.h"
#include "swcrypto_int.h"

#define AREA "soft"

/* Padding and, for PSS/OAEP, the digests. */
static CK_RV rsa_params(EVP_PKEY_CTX *ctx, int pad, const struct ksp_prim_args *args)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    EVP_MD *md = NULL;
    EVP_MD *mgf = NULL;

    if (EVP_PKEY_CTX_set_rsa_padding(ctx, pad) != 1) {
        rv = ksp_soft_err("set_rsa_padding", CKR_FUNCTION_FAILED);
        goto out;
    }
    if (pad != RSA_PKCS1_PSS_PADDING && pad != RSA_PKCS1_OAEP_PADDING) {
        rv = CKR_OK;
        goto out;
    }
    md = ksp_md_fetch(args->hash);
    mgf = ksp_md_fetch(args->mgf_hash);
    if (md == NULL || mgf == NULL) {
        rv = CKR_MECHANISM_PARAM_INVALID;
        goto out;
    }
    if (pad == RSA_PKCS1_PSS_PADDING) {
        /* Salt length = hash length: the one PKCS#11 callers and TLS 1.3 use. */
        if (EVP_PKEY_CTX_set_signature_md(ctx, md) != 1 ||
            EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, RSA_PSS_SALTLEN_DIGEST) != 1 ||
            EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, mgf) != 1) {
            rv = ksp_soft_err("PSS parameters", CKR_FUNCTION_FAILED);
            goto out;
        }
    } else {
        if (EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md) != 1 ||
            EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, mgf) != 1) {
            rv = ksp_soft_err("OAEP parameters", CKR_FUNCTION_FAILED);
            goto out;
        }
        if (args->label_len > 0) {
            /* The provider copies the label, so no ownership hand-over. */
            OSSL_PARAM p[2];

            if (args->label == NULL) {
                rv = CKR_MECHANISM_PARAM_INVALID;
                goto out;
            }
            p[0] = OSSL_PARAM_construct_octet_string(OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL,
                                                     (void *)args->label, args->label_len);
            p[1] = OSSL_PARAM_construct_end();
            if (EVP_PKEY_CTX_set_params(ctx, p) != 1) {
                rv = ksp_soft_err("OAEP label", CKR_FUNCTION_FAILED);
                goto out;
            }
        }
    }
    rv = CKR_OK;
out:
    EVP_MD_free(md);
    EVP_MD_free(mgf);
    return rv;
}

/* RSA_RAW, RSA_PKCS1_SIGN, RSA_PSS_SIGN: k bytes into out (checked by caller). */
static CK_RV rsa_sign(struct ksp_bkey *key, EVP_PKEY_CTX *ctx, const struct ksp_prim_args *args,
                      const uint8_t *in, size_t in_len, uint8_t *out, size_t *out_len)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    size_t len = key->k;
    int ok = 0;

    if (args->prim == KSP_PRIM_RSA_RAW) {
        /* m^d mod n: a decryption with no padding is exactly that. */
        if (EVP_PKEY_decrypt_init(ctx) != 1) {
            return ksp_soft_err("EVP_PKEY_decrypt_init", CKR_FUNCTION_FAILED);
        }
        rv = rsa_params(ctx, RSA_NO_PADDING, args);
        if (rv != CKR_OK) {
            return rv;
        }
        ok = EVP_PKEY_decrypt(ctx, out, &len, in, in_len);
    } else {
        if (EVP_PKEY_sign_init(ctx) != 1) {
            return ksp_soft_err("EVP_PKEY_sign_init", CKR_FUNCTION_FAILED);
        }
        /* PKCS#1 without a digest set: OpenSSL pads the input as given
         * (a DigestInfo, or raw data for CKM_RSA_PKCS). */
        rv = rsa_params(
            ctx, args->prim == KSP_PRIM_RSA_PSS_SIGN ? RSA_PKCS1_PSS_PADDING : RSA_PKCS1_PADDING,
            args);
        if (rv != CKR_OK) {
            return rv;
        }
        ok = EVP_PKEY_sign(ctx, out, &len, in, in_len);
    }
    if (ok != 1 || len != key->k) {
        OPENSSL_cleanse(out, key->k);
        return ksp_soft_err("RSA private operation", CKR_FUNCTION_FAILED);
    }
    *out_len = len;
    return CKR_OK;
}

/* Decrypt into a k-byte secret buffer (OpenSSL wants room for k bytes),
 * then copy out the plaintext, whose length is known only now. */
static CK_RV rsa_decrypt(struct ksp_bkey *key, EVP_PKEY_CTX *ctx, const struct ksp_prim_args *args,
                         const uint8_t *in, size_t in_len, uint8_t *out, size_t *out_len)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_buf tmp = {NULL, 0};
    size_t len = 0;

    rv = ksp_buf_alloc(&tmp, key->k);
    if (rv != CKR_OK) {
        goto out;
    }
    if (EVP_PKEY_decrypt_init(ctx) != 1) {
        rv = ksp_soft_err("EVP_PKEY_decrypt_init", CKR_FUNCTION_FAILED);
        goto out;
    }
    rv = rsa_params(
        ctx, args->prim == KSP_PRIM_RSA_DECRYPT_OAEP ? RSA_PKCS1_OAEP_PADDING : RSA_PKCS1_PADDING,
        args);
    if (rv != CKR_OK) {
        goto out;
    }
    len = tmp.len;
    if (EVP_PKEY_decrypt(ctx, tmp.p, &len, in, in_len) != 1) {
        rv = ksp_soft_err("EVP_PKEY_decrypt", CKR_ENCRYPTED_DATA_INVALID);
        goto out;
    }
    if (*out_len < len) {
        /* PKCS#11 3.0 §5.2: the exact length, the operation stays active. */
        *out_len = len;
        rv = CKR_BUFFER_TOO_SMALL;
        goto out;
    }
    memcpy(out, tmp.p, len);
    *out_len = len;
    rv = CKR_OK;
out:
    ksp_buf_free(&tmp);
    return rv;
}

/* ECDSA: DER ECDSA-Sig-Value from OpenSSL -> r||s, each field-size bytes. */
static CK_RV ecdsa_sign(struct ksp_bkey *key, EVP_PKEY_CTX *ctx, const uint8_t *in, size_t in_len,
                        uint8_t *out, size_t *out_len)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    uint8_t *der = NULL;
    size_t der_len = 0;
    const unsigned char *p = NULL;
    ECDSA_SIG *sig = NULL;
    const BIGNUM *r = NULL;
    const BIGNUM *s = NULL;

    /* No digest set: the input is signed as given, truncated to the order's
     * bit length (X9.62), whatever its length. */
    if (EVP_PKEY_sign_init(ctx) != 1 || EVP_PKEY_sign(ctx, NULL, &der_len, in, in_len) != 1) {
        rv = ksp_soft_err("ECDSA setup", CKR_FUNCTION_FAILED);
        goto out;
    }
    der = OPENSSL_malloc(der_len);
    if (der == NULL) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    if (EVP_PKEY_sign(ctx, der, &der_len, in, in_len) != 1) {
        rv = ksp_soft_err("EVP_PKEY_sign", CKR_FUNCTION_FAILED);
        goto out;
    }
    p = der;
    sig = d2i_ECDSA_SIG(NULL, &p, (long)der_len);
    if (sig == NULL) {
        rv = ksp_soft_err("d2i_ECDSA_SIG", CKR_FUNCTION_FAILED);
        goto out;
    }
    ECDSA_SIG_get0(sig, &r, &s);
    if (BN_bn2binpad(r, out, (int)key->k) < 0 || BN_bn2binpad(s, out + key->k, (int)key->k) < 0) {
        rv = ksp_soft_err("ECDSA r||s", CKR_FUNCTION_FAILED);
        goto out;
    }
    *out_len = 2 * key->k;
    rv = CKR_OK;
out:
    ECDSA_SIG_free(sig);
    OPENSSL_free(der);
    return rv;
}

/* ECDH: Z = x coordinate of d * peer, field-size bytes (SEC 1 §3.3.1). */
static CK_RV ecdh_derive(struct ksp_bkey *key, EVP_PKEY_CTX *ctx, const uint8_t *in, size_t in_len,
                         uint8_t *out, size_t *out_len)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_pubkey peer_pub;
    EVP_PKEY *peer = NULL;
    size_t len = key->k;

    memset(&peer_pub, 0, sizeof(peer_pub));
    peer_pub.key_type = CKK_EC;
    peer_pub.curve = key->curve;
    peer_pub.ec_point.p = (uint8_t *)in; /* read only */
    peer_pub.ec_point.len = in_len;
    rv = ksp_pub_to_pkey(&peer_pub, &peer);
    if (rv != CKR_OK) {
        /* not on the curve: the public data of the mechanism is bad */
        rv = rv == CKR_ATTRIBUTE_VALUE_INVALID ? CKR_MECHANISM_PARAM_INVALID : rv;
        goto out;
    }
    if (EVP_PKEY_derive_init(ctx) != 1) {
        rv = ksp_soft_err("EVP_PKEY_derive_init", CKR_FUNCTION_FAILED);
        goto out;
    }
    /* validate_peer = 1: a full public-key check on the peer point. */
    if (EVP_PKEY_derive_set_peer_ex(ctx, peer, 1) != 1) {
        rv = ksp_soft_err("EVP_PKEY_derive_set_peer_ex", CKR_MECHANISM_PARAM_INVALID);
        goto out;
    }
    if (EVP_PKEY_derive(ctx, out, &len) != 1 || len != key->k) {
        OPENSSL_cleanse(out, key->k);
        rv = ksp_soft_err("EVP_PKEY_derive", CKR_FUNCTION_FAILED);
        goto out;
    }
    *out_len = len;
    rv = CKR_OK;
out:
    EVP_PKEY_free(peer);
    return rv;
}

/*
 * Check the input of a primitive and compute its output length (an upper
 * bound for decryption). Returns the precise PKCS#11 code for bad input.
 */
static CK_RV check_input(const struct ksp_bkey *key, const struct ksp_prim_args *args,
                         const uint8_t *in, size_t in_len, size_t *need)
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
        /* backend.h: a k-byte block below n (big-endian compare, same length). */
        if (in_len != key->k || memcmp(in, key->n, key->k) >= 0) {
            return CKR_DATA_LEN_RANGE;
        }
        *need = key->k;
        return CKR_OK;
    case KSP_PRIM_RSA_PKCS1_SIGN:
        /* RFC 8017 §9.2 step 3: tLen <= k - 11. */
        if (in_len > key->k - 11) {
            return CKR_DATA_LEN_RANGE;
        }
        *need = key->k;
        return CKR_OK;
    case KSP_PRIM_RSA_PSS_SIGN:
        hlen = ksp_hash_len(args->hash);
        if (hlen == 0 || ksp_hash_len(args->mgf_hash) == 0) {
            return CKR_MECHANISM_PARAM_INVALID;
        }
        if (in_len != hlen) {
            return CKR_DATA_LEN_RANGE;
        }
        /* RFC 8017 §9.1.1 step 3 with sLen = hLen (emLen >= k - 1). */
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
        if (hlen == 0 || ksp_hash_len(args->mgf_hash) == 0 ||
            (args->label == NULL && args->label_len > 0)) {
            return CKR_MECHANISM_PARAM_INVALID;
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

CK_RV ksp_soft_private_op(struct ksp_bkey *key, const struct ksp_prim_args *args, const uint8_t *in,
                          size_t in_len, uint8_t *out, size_t *out_len)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    EVP_PKEY_CTX *ctx = NULL;
    size_t need = 0;
    bool decrypt = false;

    if (key == NULL || args == NULL || out_len == NULL) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    rv = check_input(key, args, in, in_len, &need);
    if (rv != CKR_OK) {
        goto out;
    }
    decrypt = args->prim == KSP_PRIM_RSA_DECRYPT_PKCS1 || args->prim == KSP_PRIM_RSA_DECRYPT_OAEP;
    /* PKCS#11 3.0 §5.2: NULL asks for the length; too small says how much.
     * Decryption knows the exact length only after decrypting. */
    if (out == NULL) {
        *out_len = need;
        rv = CKR_OK;
        goto out;
    }
    if (!decrypt && *out_len < need) {
        *out_len = need;
        rv = CKR_BUFFER_TOO_SMALL;
        goto out;
    }
    ctx = EVP_PKEY_CTX_new_from_pkey(ksp_ossl_ctx(), key->pkey, NULL);
    if (ctx == NULL) {
        rv = ksp_soft_err("EVP_PKEY_CTX_new_from_pkey", CKR_FUNCTION_FAILED);
        goto out;
    }
    switch (args->prim) {
    case KSP_PRIM_RSA_RAW:
    case KSP_PRIM_RSA_PKCS1_SIGN:
    case KSP_PRIM_RSA_PSS_SIGN:
        rv = rsa_sign(key, ctx, args, in, in_len, out, out_len);
        break;
    case KSP_PRIM_RSA_DECRYPT_PKCS1:
    case KSP_PRIM_RSA_DECRYPT_OAEP:
        rv = rsa_decrypt(key, ctx, args, in, in_len, out, out_len);
        break;
    case KSP_PRIM_ECDSA:
        rv = ecdsa_sign(key, ctx, in, in_len, out, out_len);
        break;
    case KSP_PRIM_ECDH:
        rv = ecdh_derive(key, ctx, in, in_len, out, out_len);
        break;
    default:
        rv = CKR_MECHANISM_INVALID;
        break;
    }
out:
    EVP_PKEY_CTX_free(ctx);
    return rv;
}
