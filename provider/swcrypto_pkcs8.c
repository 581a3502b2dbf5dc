/*
 * PKCS#8 PrivateKeyInfo DER (RFC 5208) for import and for the soft backend's
 * key secret: from RSA components (PKCS#11 CKA_MODULUS..CKA_COEFFICIENT, with
 * missing CRT values derived) or an EC private scalar, and parsing it back.
 * Private values are held in secure BIGNUMs and wiped; everything on the
 * private OpenSSL context.
 */
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/decoder.h>
#include <openssl/ec.h>
#include <openssl/encoder.h>
#include <openssl/evp.h>
#include <openssl/obj_mac.h>
#include <openssl/param_build.h>

#include "log.h"
#include "ossl_ctx.h"
#include "secmem.h"
#include "swcrypto_int.h"

#define AREA "swcrypto"

/* Largest RSA modulus and EC scalar input we parse: bounds the work hostile
 * input can cause (16384-bit RSA, as ksp_pub_check). */
#define MAX_INT_BYTES 2048

CK_RV ksp_pkey_to_pkcs8(EVP_PKEY *pkey, struct ksp_buf *der)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    OSSL_ENCODER_CTX *ectx = NULL;
    unsigned char *data = NULL;
    size_t len = 0;
    struct ksp_buf b = {NULL, 0};

    ectx = OSSL_ENCODER_CTX_new_for_pkey(pkey, EVP_PKEY_KEYPAIR, "DER", "PrivateKeyInfo", NULL);
    if (ectx == NULL || OSSL_ENCODER_CTX_get_num_encoders(ectx) == 0) {
        rv = ksp_ossl_err(AREA, "OSSL_ENCODER_CTX_new_for_pkey", CKR_FUNCTION_FAILED);
        goto out;
    }
    if (OSSL_ENCODER_to_data(ectx, &data, &len) != 1 || data == NULL || len == 0) {
        rv = ksp_ossl_err(AREA, "OSSL_ENCODER_to_data", CKR_FUNCTION_FAILED);
        goto out;
    }
    rv = ksp_buf_set(&b, data, len);
    if (rv != CKR_OK) {
        goto out;
    }
    *der = b;
    rv = CKR_OK;
out:
    OPENSSL_clear_free(data, len);
    OSSL_ENCODER_CTX_free(ectx);
    return rv;
}

CK_RV ksp_pkey_from_pkcs8(const uint8_t *der, size_t len, EVP_PKEY **out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    OSSL_LIB_CTX *libctx = ksp_ossl_ctx();
    OSSL_DECODER_CTX *dctx = NULL;
    EVP_PKEY *pkey = NULL;
    const unsigned char *p = der;
    size_t left = len;

    if (libctx == NULL) {
        rv = CKR_FUNCTION_FAILED;
        goto out;
    }
    if (der == NULL || len == 0) {
        rv = CKR_ATTRIBUTE_VALUE_INVALID;
        goto out;
    }
    /* Plain DER PrivateKeyInfo only: no PEM, no encrypted PKCS#8, no
     * passphrase prompts inside a PKCS#11 call. */
    dctx = OSSL_DECODER_CTX_new_for_pkey(&pkey, "DER", "PrivateKeyInfo", NULL, EVP_PKEY_KEYPAIR,
                                         libctx, NULL);
    if (dctx == NULL) {
        rv = ksp_ossl_err(AREA, "OSSL_DECODER_CTX_new_for_pkey", CKR_FUNCTION_FAILED);
        goto out;
    }
    if (OSSL_DECODER_from_data(dctx, &p, &left) != 1 || pkey == NULL) {
        rv = ksp_ossl_err(AREA, "OSSL_DECODER_from_data", CKR_ATTRIBUTE_VALUE_INVALID);
        goto out;
    }
    if (left != 0) {
        ksp_debug(AREA, "%zu trailing bytes after PrivateKeyInfo", left);
        rv = CKR_ATTRIBUTE_VALUE_INVALID;
        goto out;
    }
    *out = pkey;
    pkey = NULL;
    rv = CKR_OK;
out:
    EVP_PKEY_free(pkey);
    OSSL_DECODER_CTX_free(dctx);
    return rv;
}

/* A secret BIGNUM (secure heap when there is one, constant-time ops). */
static BIGNUM *secret_bn(const struct ksp_buf *b)
{
    BIGNUM *bn = BN_secure_new();

    if (bn == NULL) {
        return NULL;
    }
    BN_set_flags(bn, BN_FLG_CONSTTIME);
    if (BN_bin2bn(b->p, (int)b->len, bn) == NULL) {
        BN_clear_free(bn);
        return NULL;
    }
    return bn;
}

/*
 * Recover p and q from (n, e, d): NIST SP 800-56B rev. 2 appendix C.2. Write
 * d*e - 1 = 2^s * t with t odd; for a base g, some g^(t*2^j) is a non-trivial
 * square root of 1 mod n with probability >= 1/2, and gcd(root - 1, n) = p.
 */
static CK_RV rsa_recover_pq(const BIGNUM *n, const BIGNUM *e, const BIGNUM *d, BN_CTX *bctx,
                            BIGNUM *p, BIGNUM *q)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    BIGNUM *t = NULL;
    BIGNUM *nm1 = NULL;
    BIGNUM *g = NULL;
    BIGNUM *y = NULL;
    BIGNUM *x = NULL;
    BIGNUM *rem = NULL;
    int s = 0;

    BN_CTX_start(bctx);
    t = BN_CTX_get(bctx);
    nm1 = BN_CTX_get(bctx);
    g = BN_CTX_get(bctx);
    y = BN_CTX_get(bctx);
    x = BN_CTX_get(bctx);
    rem = BN_CTX_get(bctx);
    if (rem == NULL || !BN_mul(t, d, e, bctx) || !BN_sub_word(t, 1) || !BN_copy(nm1, n) ||
        !BN_sub_word(nm1, 1)) {
        rv = ksp_ossl_err(AREA, "RSA factor recovery", CKR_HOST_MEMORY);
        goto out;
    }
    BN_set_flags(t, BN_FLG_CONSTTIME); /* derived from d */
    if (BN_is_zero(t) || BN_is_odd(t)) {
        rv = CKR_ATTRIBUTE_VALUE_INVALID; /* d*e - 1 is a multiple of lambda(n), so even */
        goto out;
    }
    while (!BN_is_odd(t)) {
        if (!BN_rshift1(t, t)) {
            goto fail;
        }
        s++;
    }
    for (BN_ULONG base = 2; base < 100; base++) {
        if (!BN_set_word(g, base) || !BN_mod_exp(y, g, t, n, bctx)) {
            goto fail;
        }
        if (BN_is_one(y) || BN_cmp(y, nm1) == 0) {
            continue;
        }
        for (int j = 0; j < s; j++) {
            if (!BN_mod_sqr(x, y, n, bctx)) {
                goto fail;
            }
            if (BN_is_one(x)) {
                /* y is a non-trivial root of 1. */
                if (!BN_sub_word(y, 1) || !BN_gcd(p, y, n, bctx) || !BN_div(q, rem, n, p, bctx)) {
                    goto fail;
                }
                if (BN_is_one(p) || !BN_is_zero(rem)) {
                    rv = CKR_ATTRIBUTE_VALUE_INVALID;
                    goto out;
                }
                rv = CKR_OK;
                goto out;
            }
            if (BN_cmp(x, nm1) == 0) {
                break;
            }
            if (!BN_copy(y, x)) {
                goto fail;
            }
        }
    }
    /* d does not match (n, e), or n is not a product of two primes. */
    rv = CKR_ATTRIBUTE_VALUE_INVALID;
    goto out;
fail:
    rv = ksp_ossl_err(AREA, "RSA factor recovery", CKR_FUNCTION_FAILED);
out:
    BN_CTX_end(bctx);
    return rv;
}

/* dp = d mod (p-1), dq = d mod (q-1), qinv = q^-1 mod p (RFC 8017 §3.2). */
static CK_RV rsa_crt(const BIGNUM *d, const BIGNUM *p, const BIGNUM *q, BN_CTX *bctx, BIGNUM *dp,
                     BIGNUM *dq, BIGNUM *qinv)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    BIGNUM *pm1 = NULL;
    BIGNUM *qm1 = NULL;

    BN_CTX_start(bctx);
    pm1 = BN_CTX_get(bctx);
    qm1 = BN_CTX_get(bctx);
    if (qm1 == NULL || !BN_copy(pm1, p) || !BN_sub_word(pm1, 1) || !BN_copy(qm1, q) ||
        !BN_sub_word(qm1, 1) || !BN_mod(dp, d, pm1, bctx) || !BN_mod(dq, d, qm1, bctx)) {
        rv = ksp_ossl_err(AREA, "RSA CRT values", CKR_FUNCTION_FAILED);
        goto out;
    }
    if (BN_mod_inverse(qinv, q, p, bctx) == NULL) {
        rv = ksp_ossl_err(AREA, "BN_mod_inverse", CKR_ATTRIBUTE_VALUE_INVALID);
        goto out;
    }
    rv = CKR_OK;
out:
    BN_CTX_end(bctx);
    return rv;
}

/* fromdata a private key of type from params, then PKCS#8-encode it. */
static CK_RV params_to_pkcs8(const char *type, OSSL_PARAM_BLD *bld, struct ksp_buf *der)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(ksp_ossl_ctx(), type, NULL);
    EVP_PKEY *pkey = NULL;

    if (params == NULL || pctx == NULL || EVP_PKEY_fromdata_init(pctx) != 1) {
        rv = ksp_ossl_err(AREA, "EVP_PKEY_fromdata_init", CKR_FUNCTION_FAILED);
        goto out;
    }
    if (EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_KEYPAIR, params) != 1) {
        rv = ksp_ossl_err(AREA, "EVP_PKEY_fromdata", CKR_ATTRIBUTE_VALUE_INVALID);
        goto out;
    }
    rv = ksp_pkey_to_pkcs8(pkey, der);
out:
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(pctx);
    /* The secret BIGNUMs went to the secure block, which this clears. */
    OSSL_PARAM_free(params);
    return rv;
}

CK_RV ksp_pkcs8_from_rsa(const struct ksp_buf comp[8], struct ksp_buf *der)
{
    static const char *const names[8] = {
        OSSL_PKEY_PARAM_RSA_N,         OSSL_PKEY_PARAM_RSA_E,
        OSSL_PKEY_PARAM_RSA_D,         OSSL_PKEY_PARAM_RSA_FACTOR1,
        OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_EXPONENT1,
        OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
    };
    CK_RV rv = CKR_GENERAL_ERROR;
    BIGNUM *bn[8] = {NULL};
    BN_CTX *bctx = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    BIGNUM *pq = NULL;
    bool have_pq = comp[3].len > 0 && comp[4].len > 0;
    bool have_crt = comp[5].len > 0 && comp[6].len > 0 && comp[7].len > 0;

    for (int i = 0; i < 3; i++) {
        if (comp[i].len == 0 || comp[i].p == NULL) {
            rv = CKR_TEMPLATE_INCOMPLETE; /* n, e and d are mandatory */
            goto out;
        }
    }
    for (int i = 0; i < 8; i++) {
        if (comp[i].len > MAX_INT_BYTES || (comp[i].len > 0 && comp[i].p == NULL)) {
            rv = CKR_ATTRIBUTE_VALUE_INVALID;
            goto out;
        }
    }
    bctx = BN_CTX_secure_new_ex(ksp_ossl_ctx());
    bld = OSSL_PARAM_BLD_new();
    if (bctx == NULL || bld == NULL) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    for (int i = 0; i < 8; i++) {
        bn[i] = secret_bn(&comp[i]);
        if (bn[i] == NULL) {
            rv = CKR_HOST_MEMORY;
            goto out;
        }
    }
    if (BN_num_bits(bn[0]) < 512 || !BN_is_odd(bn[0]) || !BN_is_odd(bn[1]) ||
        BN_cmp(bn[2], bn[0]) >= 0 || BN_is_zero(bn[2])) {
        rv = CKR_ATTRIBUTE_VALUE_INVALID;
        goto out;
    }
    if (!have_pq) {
        rv = rsa_recover_pq(bn[0], bn[1], bn[2], bctx, bn[3], bn[4]);
        if (rv != CKR_OK) {
            goto out;
        }
    }
    /* The factors must multiply to n; the backend's import checks the rest. */
    BN_CTX_start(bctx);
    pq = BN_CTX_get(bctx);
    if (pq == NULL || !BN_mul(pq, bn[3], bn[4], bctx)) {
        BN_CTX_end(bctx);
        rv = ksp_ossl_err(AREA, "BN_mul", CKR_FUNCTION_FAILED);
        goto out;
    }
    rv = BN_cmp(pq, bn[0]) == 0 ? CKR_OK : CKR_ATTRIBUTE_VALUE_INVALID;
    BN_CTX_end(bctx);
    if (rv != CKR_OK) {
        goto out;
    }
    if (!have_pq || !have_crt) {
        rv = rsa_crt(bn[2], bn[3], bn[4], bctx, bn[5], bn[6], bn[7]);
        if (rv != CKR_OK) {
            goto out;
        }
    }
    for (int i = 0; i < 8; i++) {
        if (!OSSL_PARAM_BLD_push_BN(bld, names[i], bn[i])) {
            rv = ksp_ossl_err(AREA, "OSSL_PARAM_BLD_push_BN", CKR_HOST_MEMORY);
            goto out;
        }
    }
    rv = params_to_pkcs8("RSA", bld, der);
out:
    OSSL_PARAM_BLD_free(bld);
    for (int i = 0; i < 8; i++) {
        BN_clear_free(bn[i]);
    }
    BN_CTX_free(bctx);
    return rv;
}

static int curve_nid(enum ksp_curve c)
{
    switch (c) {
    case KSP_CURVE_P256:
        return NID_X9_62_prime256v1;
    case KSP_CURVE_P384:
        return NID_secp384r1;
    case KSP_CURVE_P521:
        return NID_secp521r1;
    default:
        return NID_undef;
    }
}

CK_RV ksp_pkcs8_from_ec(enum ksp_curve c, const uint8_t *d, size_t d_len, struct ksp_buf *der)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    const char *group_name = ksp_ec_group_name(c);
    struct ksp_buf din = {(uint8_t *)d, d_len};
    EC_GROUP *group = NULL;
    EC_POINT *pt = NULL;
    BN_CTX *bctx = NULL;
    BIGNUM *priv = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    uint8_t pub[1 + 2 * 66];
    size_t pub_len = 0;

    if (group_name == NULL) {
        rv = CKR_CURVE_NOT_SUPPORTED;
        goto out;
    }
    if (d == NULL || d_len == 0 || d_len > MAX_INT_BYTES) {
        rv = CKR_ATTRIBUTE_VALUE_INVALID;
        goto out;
    }
    group = EC_GROUP_new_by_curve_name_ex(ksp_ossl_ctx(), NULL, curve_nid(c));
    bctx = BN_CTX_secure_new_ex(ksp_ossl_ctx());
    priv = secret_bn(&din);
    bld = OSSL_PARAM_BLD_new();
    if (group == NULL || bctx == NULL || priv == NULL || bld == NULL) {
        rv = ksp_ossl_err(AREA, "EC setup", CKR_HOST_MEMORY);
        goto out;
    }
    /* SEC 1 §3.2.1: the private key is an integer in [1, n-1]. */
    if (BN_is_zero(priv) || BN_cmp(priv, EC_GROUP_get0_order(group)) >= 0) {
        rv = CKR_ATTRIBUTE_VALUE_INVALID;
        goto out;
    }
    /* The public point, so the encoded key carries it (PKCS#11 gives CKA_VALUE only). */
    pt = EC_POINT_new(group);
    if (pt == NULL || EC_POINT_mul(group, pt, priv, NULL, NULL, bctx) != 1) {
        rv = ksp_ossl_err(AREA, "EC_POINT_mul", CKR_FUNCTION_FAILED);
        goto out;
    }
    pub_len = EC_POINT_point2oct(group, pt, POINT_CONVERSION_UNCOMPRESSED, pub, sizeof(pub), bctx);
    if (pub_len == 0) {
        rv = ksp_ossl_err(AREA, "EC_POINT_point2oct", CKR_FUNCTION_FAILED);
        goto out;
    }
    if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group_name, 0) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, pub_len)) {
        rv = ksp_ossl_err(AREA, "OSSL_PARAM_BLD_push", CKR_HOST_MEMORY);
        goto out;
    }
    rv = params_to_pkcs8("EC", bld, der);
out:
    OSSL_PARAM_BLD_free(bld);
    BN_clear_free(priv);
    EC_POINT_free(pt);
    BN_CTX_free(bctx);
    EC_GROUP_free(group);
    return rv;
}
