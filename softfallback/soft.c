/*
 * The software backend (DESIGN.md §3, style.md §3.6): keys generated and used
 * by OpenSSL 3 on the private library context, for machines without an
 * acceptable TPM. A key's secret is its PKCS#8 DER (the core stores it
 * encrypted under the token wrapping key); its blob is empty. Only EVP and
 * provider-based APIs: the legacy RSA_* / EC_KEY_* calls can route into an
 * ENGINE the host set as default. Private operations are in soft_op.c.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "ksp11/ksp11.h"
#include "log.h"
#include "ossl_ctx.h"
#include "secmem.h"
#include "soft.h"
#include "swcrypto_int.h"

#define AREA "soft"

/* Largest public exponent accepted at keygen: 256 bits (NIST SP 800-56B
 * rev. 2 §6.2 puts e below 2^256). */
#define MAX_EXP_BYTES 32

static const struct ksp_caps soft_caps = {
    .rsa_min_bits = 2048,
    .rsa_max_bits = 4096,
    .rsa_sizes = {2048, 3072, 4096, 0},
    .curves = {KSP_CURVE_P256, KSP_CURVE_P384, KSP_CURVE_P521, KSP_CURVE_NONE},
    .hardware = CK_FALSE,
    .native_pss = CK_TRUE,
};

static bool curve_supported(enum ksp_curve c)
{
    for (size_t i = 0; soft_caps.curves[i] != KSP_CURVE_NONE; i++) {
        if (soft_caps.curves[i] == c) {
            return true;
        }
    }
    return false;
}

static CK_RV soft_open(const struct ksp_config *cfg, struct ksp_backend **out)
{
    struct ksp_backend *be = NULL;

    (void)cfg;
    if (ksp_ossl_ctx() == NULL) {
        return CKR_FUNCTION_FAILED;
    }
    be = calloc(1, sizeof(*be));
    if (be == NULL) {
        return CKR_HOST_MEMORY;
    }
    *out = be;
    return CKR_OK;
}

static void soft_close(struct ksp_backend *be)
{
    free(be);
}

static const struct ksp_caps *soft_caps_get(struct ksp_backend *be)
{
    (void)be;
    return &soft_caps;
}

/* Outputs of keygen/import from a private key: PKCS#8 secret, empty blob and
 * the public key. Written only on success. */
static CK_RV finish_key(EVP_PKEY *pkey, struct ksp_buf *blob_out, struct ksp_buf *secret_out,
                        struct ksp_pubkey *pub_out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_buf secret = {NULL, 0};
    struct ksp_pubkey pub;

    memset(&pub, 0, sizeof(pub));
    rv = ksp_pkey_to_pkcs8(pkey, &secret);
    if (rv != CKR_OK) {
        goto out;
    }
    rv = ksp_pub_from_pkey(pkey, &pub);
    if (rv != CKR_OK) {
        goto out;
    }
    blob_out->p = NULL;
    blob_out->len = 0;
    *secret_out = secret;
    secret.p = NULL;
    secret.len = 0;
    *pub_out = pub;
    memset(&pub, 0, sizeof(pub));
    rv = CKR_OK;
out:
    ksp_pub_clear(&pub);
    ksp_buf_free(&secret);
    return rv;
}

/* The public exponent of a keyspec: odd, > 1, at most MAX_EXP_BYTES. */
static CK_RV keygen_exponent(const struct ksp_keyspec *spec, BIGNUM **out)
{
    const uint8_t *p = spec->pub_exp;
    size_t len = spec->pub_exp_len;
    BIGNUM *e = NULL;

    if (p == NULL) {
        e = BN_new();
        if (e == NULL || !BN_set_word(e, RSA_F4)) {
            BN_free(e);
            return CKR_HOST_MEMORY;
        }
        *out = e;
        return CKR_OK;
    }
    while (len > 0 && p[0] == 0) {
        p++;
        len--;
    }
    if (len == 0 || len > MAX_EXP_BYTES || (p[len - 1] & 1) == 0 || (len == 1 && p[0] == 1)) {
        ksp_debug(AREA, "public exponent refused (%zu bytes)", spec->pub_exp_len);
        return CKR_ATTRIBUTE_VALUE_INVALID;
    }
    e = BN_bin2bn(p, (int)len, NULL);
    if (e == NULL) {
        return CKR_HOST_MEMORY;
    }
    *out = e;
    return CKR_OK;
}

static CK_RV soft_keygen(struct ksp_backend *be, const struct ksp_keyspec *spec,
                         struct ksp_buf *blob_out, struct ksp_buf *secret_out,
                         struct ksp_pubkey *pub_out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    EVP_PKEY_CTX *pctx = NULL;
    EVP_PKEY *pkey = NULL;
    BIGNUM *e = NULL;
    bool size_ok = false;

    (void)be;
    if (spec->key_type == CKK_RSA) {
        for (size_t i = 0; soft_caps.rsa_sizes[i] != 0; i++) {
            size_ok = size_ok || soft_caps.rsa_sizes[i] == spec->modulus_bits;
        }
        if (!size_ok) {
            rv = CKR_KEY_SIZE_RANGE;
            goto out;
        }
        rv = keygen_exponent(spec, &e);
        if (rv != CKR_OK) {
            goto out;
        }
        pctx = EVP_PKEY_CTX_new_from_name(ksp_ossl_ctx(), "RSA", NULL);
        if (pctx == NULL || EVP_PKEY_keygen_init(pctx) != 1 ||
            EVP_PKEY_CTX_set_rsa_keygen_bits(pctx, (int)spec->modulus_bits) != 1 ||
            EVP_PKEY_CTX_set1_rsa_keygen_pubexp(pctx, e) != 1) {
            rv = ksp_soft_err("RSA keygen setup", CKR_FUNCTION_FAILED);
            goto out;
        }
    } else if (spec->key_type == CKK_EC) {
        if (!curve_supported(spec->curve)) {
            rv = CKR_CURVE_NOT_SUPPORTED;
            goto out;
        }
        pctx = EVP_PKEY_CTX_new_from_name(ksp_ossl_ctx(), "EC", NULL);
        if (pctx == NULL || EVP_PKEY_keygen_init(pctx) != 1 ||
            EVP_PKEY_CTX_set_group_name(pctx, ksp_ec_group_name(spec->curve)) != 1) {
            rv = ksp_soft_err("EC keygen setup", CKR_FUNCTION_FAILED);
            goto out;
        }
    } else {
        rv = CKR_KEY_TYPE_INCONSISTENT;
        goto out;
    }
    if (EVP_PKEY_generate(pctx, &pkey) != 1) {
        rv = ksp_soft_err("EVP_PKEY_generate", CKR_FUNCTION_FAILED);
        goto out;
    }
    rv = finish_key(pkey, blob_out, secret_out, pub_out);
out:
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(pctx);
    BN_free(e);
    return rv;
}

/* Key type, curve and size of a private key against our capabilities. */
static CK_RV check_key(EVP_PKEY *pkey, CK_KEY_TYPE *type, enum ksp_curve *curve)
{
    int bits = 0;

    if (EVP_PKEY_is_a(pkey, "RSA")) {
        bits = EVP_PKEY_get_bits(pkey);
        if (bits < (int)soft_caps.rsa_min_bits || bits > (int)soft_caps.rsa_max_bits) {
            ksp_debug(AREA, "RSA key of %d bits refused", bits);
            return CKR_KEY_SIZE_RANGE;
        }
        *type = CKK_RSA;
        *curve = KSP_CURVE_NONE;
        return CKR_OK;
    }
    if (EVP_PKEY_is_a(pkey, "EC")) {
        *curve = ksp_pkey_curve(pkey);
        if (!curve_supported(*curve)) {
            return CKR_CURVE_NOT_SUPPORTED;
        }
        *type = CKK_EC;
        return CKR_OK;
    }
    /* RSA-PSS-restricted keys, Ed25519, DSA, ... */
    ksp_debug(AREA, "private key of type %s refused", EVP_PKEY_get0_type_name(pkey));
    return CKR_KEY_TYPE_INCONSISTENT;
}

static CK_RV soft_import(struct ksp_backend *be, const uint8_t *pkcs8, size_t pkcs8_len,
                         struct ksp_buf *blob_out, struct ksp_buf *secret_out,
                         struct ksp_pubkey *pub_out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *cctx = NULL;
    CK_KEY_TYPE type = 0;
    enum ksp_curve curve = KSP_CURVE_NONE;

    (void)be;
    rv = ksp_pkey_from_pkcs8(pkcs8, pkcs8_len, &pkey);
    if (rv != CKR_OK) {
        goto out;
    }
    rv = check_key(pkey, &type, &curve);
    if (rv != CKR_OK) {
        goto out;
    }
    /* Imported material is hostile: the public half we report must match the
     * private half (EC: Q = dG; RSA: primes, n = pq, d, CRT values). */
    cctx = EVP_PKEY_CTX_new_from_pkey(ksp_ossl_ctx(), pkey, NULL);
    if (cctx == NULL) {
        rv = ksp_soft_err("EVP_PKEY_CTX_new_from_pkey", CKR_FUNCTION_FAILED);
        goto out;
    }
    if (EVP_PKEY_pairwise_check(cctx) != 1) {
        rv = ksp_soft_err("EVP_PKEY_pairwise_check", CKR_ATTRIBUTE_VALUE_INVALID);
        goto out;
    }
    /* Re-encoded, so the stored secret is our canonical form. */
    rv = finish_key(pkey, blob_out, secret_out, pub_out);
out:
    EVP_PKEY_CTX_free(cctx);
    EVP_PKEY_free(pkey);
    return rv;
}

static void soft_key_unload(struct ksp_bkey *key)
{
    if (key == NULL) {
        return;
    }
    EVP_PKEY_free(key->pkey);
    free(key->n);
    free(key);
}

static CK_RV soft_key_load(struct ksp_backend *be, const struct ksp_buf *blob,
                           const struct ksp_buf *secret, struct ksp_bkey **out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_bkey *key = NULL;
    BIGNUM *n = NULL;

    (void)be;
    (void)blob;
    if (secret == NULL || secret->len == 0) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    key = calloc(1, sizeof(*key));
    if (key == NULL) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    rv = ksp_pkey_from_pkcs8(secret->p, secret->len, &key->pkey);
    if (rv != CKR_OK) {
        goto out;
    }
    rv = check_key(key->pkey, &key->key_type, &key->curve);
    if (rv != CKR_OK) {
        goto out;
    }
    if (key->key_type == CKK_EC) {
        key->k = ksp_ec_field_bytes(key->curve);
    } else {
        if (EVP_PKEY_get_bn_param(key->pkey, OSSL_PKEY_PARAM_RSA_N, &n) != 1) {
            rv = ksp_soft_err("RSA modulus", CKR_FUNCTION_FAILED);
            goto out;
        }
        key->k = (size_t)BN_num_bytes(n);
        key->n = malloc(key->k);
        if (key->n == NULL) {
            rv = CKR_HOST_MEMORY;
            goto out;
        }
        if (BN_bn2binpad(n, key->n, (int)key->k) < 0) {
            rv = ksp_soft_err("BN_bn2binpad", CKR_FUNCTION_FAILED);
            goto out;
        }
    }
    *out = key;
    key = NULL;
    rv = CKR_OK;
out:
    BN_free(n);
    soft_key_unload(key);
    return rv;
}

const struct ksp_backend_ops ksp_soft_backend = {
    .name = "soft",
    .id = KSP11_BACKEND_SOFT,
    .open = soft_open,
    .close = soft_close,
    .caps = soft_caps_get,
    .keygen = soft_keygen,
    .import = soft_import,
    .key_load = soft_key_load,
    .key_unload = soft_key_unload,
    .private_op = ksp_soft_private_op,
    .thread_safe = CK_TRUE,
};
