/*
 * Public-key operations of the core (swcrypto.h): verify, encrypt, key checks
 * and sizes, on keys given as the attribute values the core stores (n/e or
 * curve + raw point). EVP_PKEYs are built per call from those values with
 * OSSL_PARAM_BLD + EVP_PKEY_fromdata on the private context.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>

#include "log.h"
#include "ossl_ctx.h"
#include "secmem.h"
#include "swcrypto_int.h"

#define AREA "swcrypto"

/* Big-endian integer without its leading zero bytes. */
static const uint8_t *strip0(const struct ksp_buf *b, size_t *len)
{
    const uint8_t *p = b->p;
    size_t n = b->len;

    while (n > 0 && p[0] == 0) {
        p++;
        n--;
    }
    *len = n;
    return p;
}

static size_t int_bits(const uint8_t *p, size_t len)
{
    size_t bits = 0;

    if (len == 0) {
        return 0;
    }
    for (uint8_t top = p[0]; top != 0; top >>= 1) {
        bits++;
    }
    return (len - 1) * 8 + bits;
}

size_t ksp_pub_bits(const struct ksp_pubkey *pub)
{
    const uint8_t *n = NULL;
    size_t len = 0;

    if (pub->key_type == CKK_RSA) {
        n = strip0(&pub->modulus, &len);
        return int_bits(n, len);
    }
    if (pub->key_type == CKK_EC) {
        switch (pub->curve) {
        case KSP_CURVE_P256:
            return 256;
        case KSP_CURVE_P384:
            return 384;
        case KSP_CURVE_P521:
            return 521;
        default:
            return 0;
        }
    }
    return 0;
}

void ksp_pub_clear(struct ksp_pubkey *pub)
{
    ksp_buf_free(&pub->modulus);
    ksp_buf_free(&pub->pub_exp);
    ksp_buf_free(&pub->ec_point);
    memset(pub, 0, sizeof(*pub));
}

enum ksp_curve ksp_pkey_curve(EVP_PKEY *pkey)
{
    char name[64];
    size_t len = 0;
    int nid = NID_undef;

    if (!EVP_PKEY_is_a(pkey, "EC") ||
        EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof(name),
                                       &len) != 1) {
        return KSP_CURVE_NONE;
    }
    nid = OBJ_sn2nid(name);
    if (nid == NID_undef) {
        nid = EC_curve_nist2nid(name);
    }
    switch (nid) {
    case NID_X9_62_prime256v1:
        return KSP_CURVE_P256;
    case NID_secp384r1:
        return KSP_CURVE_P384;
    case NID_secp521r1:
        return KSP_CURVE_P521;
    default:
        return KSP_CURVE_NONE;
    }
}

/* BIGNUM param -> fresh ksp_buf, left-padded to pad bytes (0: minimal). */
static CK_RV bn_param(EVP_PKEY *pkey, const char *name, size_t pad, struct ksp_buf *out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    BIGNUM *bn = NULL;
    struct ksp_buf b = {NULL, 0};
    size_t len = 0;

    if (EVP_PKEY_get_bn_param(pkey, name, &bn) != 1) {
        rv = ksp_ossl_err(AREA, name, CKR_FUNCTION_FAILED);
        goto out;
    }
    len = (size_t)BN_num_bytes(bn);
    if (pad != 0 && len > pad) {
        rv = CKR_FUNCTION_FAILED;
        goto out;
    }
    rv = ksp_buf_alloc(&b, pad != 0 ? pad : (len > 0 ? len : 1));
    if (rv != CKR_OK) {
        goto out;
    }
    if (BN_bn2binpad(bn, b.p, (int)b.len) < 0) {
        rv = ksp_ossl_err(AREA, "BN_bn2binpad", CKR_FUNCTION_FAILED);
        goto out;
    }
    *out = b;
    b.p = NULL;
    b.len = 0;
    rv = CKR_OK;
out:
    ksp_buf_free(&b);
    BN_free(bn);
    return rv;
}

CK_RV ksp_pub_from_pkey(EVP_PKEY *pkey, struct ksp_pubkey *out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_pubkey pub;
    size_t fb = 0;

    memset(&pub, 0, sizeof(pub));
    if (EVP_PKEY_is_a(pkey, "RSA")) {
        pub.key_type = CKK_RSA;
        rv = bn_param(pkey, OSSL_PKEY_PARAM_RSA_N, 0, &pub.modulus);
        if (rv == CKR_OK) {
            rv = bn_param(pkey, OSSL_PKEY_PARAM_RSA_E, 0, &pub.pub_exp);
        }
    } else if (EVP_PKEY_is_a(pkey, "EC")) {
        struct ksp_buf x = {NULL, 0};
        struct ksp_buf y = {NULL, 0};

        pub.key_type = CKK_EC;
        pub.curve = ksp_pkey_curve(pkey);
        fb = ksp_ec_field_bytes(pub.curve);
        if (fb == 0) {
            rv = CKR_CURVE_NOT_SUPPORTED;
            goto out;
        }
        /* From the coordinates, not OSSL_PKEY_PARAM_PUB_KEY: that one keeps
         * whatever point form the key was decoded from (maybe compressed). */
        rv = bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_X, fb, &x);
        if (rv == CKR_OK) {
            rv = bn_param(pkey, OSSL_PKEY_PARAM_EC_PUB_Y, fb, &y);
        }
        if (rv == CKR_OK) {
            rv = ksp_buf_alloc(&pub.ec_point, 1 + 2 * fb);
        }
        if (rv == CKR_OK) {
            pub.ec_point.p[0] = 0x04;
            memcpy(pub.ec_point.p + 1, x.p, fb);
            memcpy(pub.ec_point.p + 1 + fb, y.p, fb);
        }
        ksp_buf_free(&x);
        ksp_buf_free(&y);
    } else {
        rv = CKR_KEY_TYPE_INCONSISTENT;
    }
    if (rv != CKR_OK) {
        goto out;
    }
    *out = pub;
    memset(&pub, 0, sizeof(pub));
out:
    ksp_pub_clear(&pub);
    return rv;
}

CK_RV ksp_pub_to_pkey(const struct ksp_pubkey *pub, EVP_PKEY **out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    OSSL_LIB_CTX *libctx = ksp_ossl_ctx();
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    EVP_PKEY *pkey = NULL;
    BIGNUM *n = NULL;
    BIGNUM *e = NULL;
    const char *type = NULL;

    if (libctx == NULL) {
        rv = CKR_FUNCTION_FAILED;
        goto out;
    }
    bld = OSSL_PARAM_BLD_new();
    if (bld == NULL) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    if (pub->key_type == CKK_RSA) {
        type = "RSA";
        if (pub->modulus.len == 0 || pub->pub_exp.len == 0) {
            rv = CKR_ATTRIBUTE_VALUE_INVALID;
            goto out;
        }
        n = BN_bin2bn(pub->modulus.p, (int)pub->modulus.len, NULL);
        e = BN_bin2bn(pub->pub_exp.p, (int)pub->pub_exp.len, NULL);
        if (n == NULL || e == NULL || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
            !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e)) {
            rv = ksp_ossl_err(AREA, "RSA params", CKR_FUNCTION_FAILED);
            goto out;
        }
    } else if (pub->key_type == CKK_EC) {
        const char *group = ksp_ec_group_name(pub->curve);
        size_t fb = ksp_ec_field_bytes(pub->curve);

        type = "EC";
        if (group == NULL) {
            rv = CKR_CURVE_NOT_SUPPORTED;
            goto out;
        }
        /* Only uncompressed points (04 || X || Y) are ever stored. */
        if (pub->ec_point.len != 1 + 2 * fb || pub->ec_point.p[0] != 0x04) {
            rv = CKR_ATTRIBUTE_VALUE_INVALID;
            goto out;
        }
        if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
            !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub->ec_point.p,
                                              pub->ec_point.len)) {
            rv = ksp_ossl_err(AREA, "EC params", CKR_FUNCTION_FAILED);
            goto out;
        }
    } else {
        rv = CKR_KEY_TYPE_INCONSISTENT;
        goto out;
    }
    params = OSSL_PARAM_BLD_to_param(bld);
    pctx = EVP_PKEY_CTX_new_from_name(libctx, type, NULL);
    if (params == NULL || pctx == NULL || EVP_PKEY_fromdata_init(pctx) != 1) {
        rv = ksp_ossl_err(AREA, "EVP_PKEY_fromdata_init", CKR_FUNCTION_FAILED);
        goto out;
    }
    if (EVP_PKEY_fromdata(pctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        /* e.g. an EC point that is not on the curve */
        rv = ksp_ossl_err(AREA, "EVP_PKEY_fromdata", CKR_ATTRIBUTE_VALUE_INVALID);
        goto out;
    }
    *out = pkey;
    pkey = NULL;
    rv = CKR_OK;
out:
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(pctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    BN_free(n);
    BN_free(e);
    return rv;
}

CK_RV ksp_pub_check(const struct ksp_pubkey *pub)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *cctx = NULL;
    const uint8_t *n = NULL;
    const uint8_t *e = NULL;
    size_t nlen = 0;
    size_t elen = 0;
    size_t bits = 0;

    if (pub->key_type == CKK_RSA) {
        n = strip0(&pub->modulus, &nlen);
        e = strip0(&pub->pub_exp, &elen);
        bits = int_bits(n, nlen);
        /* Below 1024 bits is broken; above 16384 is a denial of service. An
         * even modulus or exponent cannot be RSA; e = 1 is the identity. */
        if (bits < 1024 || bits > 16384 || (n[nlen - 1] & 1) == 0) {
            rv = CKR_ATTRIBUTE_VALUE_INVALID;
            goto out;
        }
        if (elen == 0 || (e[elen - 1] & 1) == 0 || (elen == 1 && e[0] == 1) ||
            int_bits(e, elen) >= bits) {
            rv = CKR_ATTRIBUTE_VALUE_INVALID;
            goto out;
        }
        rv = CKR_OK;
        goto out;
    }
    if (pub->key_type != CKK_EC) {
        rv = CKR_KEY_TYPE_INCONSISTENT;
        goto out;
    }
    rv = ksp_pub_to_pkey(pub, &pkey);
    if (rv != CKR_OK) {
        goto out;
    }
    /* On the curve, not the point at infinity, of the group's order. */
    cctx = EVP_PKEY_CTX_new_from_pkey(ksp_ossl_ctx(), pkey, NULL);
    if (cctx == NULL) {
        rv = ksp_ossl_err(AREA, "EVP_PKEY_CTX_new_from_pkey", CKR_FUNCTION_FAILED);
        goto out;
    }
    if (EVP_PKEY_public_check(cctx) != 1) {
        rv = ksp_ossl_err(AREA, "EVP_PKEY_public_check", CKR_ATTRIBUTE_VALUE_INVALID);
        goto out;
    }
    rv = CKR_OK;
out:
    EVP_PKEY_CTX_free(cctx);
    EVP_PKEY_free(pkey);
    return rv;
}

/* A public key's context, plus k (RSA modulus bytes or 2 * EC field bytes). */
static CK_RV pub_ctx(const struct ksp_pubkey *pub, EVP_PKEY **pkey, EVP_PKEY_CTX **ctx, size_t *k)
{
    CK_RV rv = ksp_pub_to_pkey(pub, pkey);

    if (rv != CKR_OK) {
        return rv;
    }
    *ctx = EVP_PKEY_CTX_new_from_pkey(ksp_ossl_ctx(), *pkey, NULL);
    if (*ctx == NULL) {
        return ksp_ossl_err(AREA, "EVP_PKEY_CTX_new_from_pkey", CKR_FUNCTION_FAILED);
    }
    if (pub->key_type == CKK_RSA) {
        *k = (ksp_pub_bits(pub) + 7) / 8;
    } else {
        *k = 2 * ksp_ec_field_bytes(pub->curve);
    }
    return CKR_OK;
}

/* Set RSA padding and, where given, the OAEP/PSS digests on a context. */
static CK_RV rsa_setup(EVP_PKEY_CTX *ctx, int pad, CK_MECHANISM_TYPE hash,
                       CK_MECHANISM_TYPE mgf_hash, bool sig_md)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    EVP_MD *md = NULL;
    EVP_MD *mgf = NULL;

    if (EVP_PKEY_CTX_set_rsa_padding(ctx, pad) != 1) {
        rv = ksp_ossl_err(AREA, "EVP_PKEY_CTX_set_rsa_padding", CKR_FUNCTION_FAILED);
        goto out;
    }
    if (pad != RSA_PKCS1_PSS_PADDING && pad != RSA_PKCS1_OAEP_PADDING) {
        rv = CKR_OK;
        goto out;
    }
    md = ksp_md_fetch(hash);
    mgf = ksp_md_fetch(mgf_hash);
    if (md == NULL || mgf == NULL) {
        rv = CKR_MECHANISM_PARAM_INVALID;
        goto out;
    }
    if ((sig_md && EVP_PKEY_CTX_set_signature_md(ctx, md) != 1) ||
        (!sig_md && EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md) != 1) ||
        EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, mgf) != 1) {
        rv = ksp_ossl_err(AREA, "RSA digest setup", CKR_FUNCTION_FAILED);
        goto out;
    }
    rv = CKR_OK;
out:
    EVP_MD_free(md);
    EVP_MD_free(mgf);
    return rv;
}

/* r||s (each half of sig_len) -> DER ECDSA-Sig-Value. */
static CK_RV ecdsa_rs_to_der(const uint8_t *sig, size_t sig_len, uint8_t **der, size_t *der_len)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    ECDSA_SIG *s = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, (int)(sig_len / 2), NULL);
    BIGNUM *sv = BN_bin2bn(sig + sig_len / 2, (int)(sig_len / 2), NULL);
    unsigned char *p = NULL;
    int len = 0;

    if (s == NULL || r == NULL || sv == NULL || ECDSA_SIG_set0(s, r, sv) != 1) {
        rv = ksp_ossl_err(AREA, "ECDSA_SIG", CKR_HOST_MEMORY);
        goto out;
    }
    r = NULL;
    sv = NULL;
    len = i2d_ECDSA_SIG(s, &p);
    if (len <= 0) {
        rv = ksp_ossl_err(AREA, "i2d_ECDSA_SIG", CKR_FUNCTION_FAILED);
        goto out;
    }
    *der = p;
    *der_len = (size_t)len;
    rv = CKR_OK;
out:
    BN_free(r);
    BN_free(sv);
    ECDSA_SIG_free(s);
    return rv;
}

/* CKM_RSA_X_509 verify: sig^e mod n must equal the data left-padded with zeros. */
static CK_RV verify_rsa_raw(EVP_PKEY_CTX *ctx, size_t k, const uint8_t *data, size_t data_len,
                            const uint8_t *sig, size_t sig_len)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    uint8_t *rec = NULL;
    size_t rec_len = k;

    if (data_len > k) {
        return CKR_DATA_LEN_RANGE;
    }
    rec = malloc(k);
    if (rec == NULL) {
        return CKR_HOST_MEMORY;
    }
    if (EVP_PKEY_verify_recover_init(ctx) != 1 ||
        rsa_setup(ctx, RSA_NO_PADDING, 0, 0, true) != CKR_OK) {
        rv = ksp_ossl_err(AREA, "verify_recover setup", CKR_FUNCTION_FAILED);
        goto out;
    }
    /* Fails when sig >= n: not a signature of anything. */
    if (EVP_PKEY_verify_recover(ctx, rec, &rec_len, sig, sig_len) != 1 || rec_len != k) {
        rv = ksp_ossl_err(AREA, "EVP_PKEY_verify_recover", CKR_SIGNATURE_INVALID);
        goto out;
    }
    for (size_t i = 0; i < k - data_len; i++) {
        if (rec[i] != 0) {
            rv = CKR_SIGNATURE_INVALID;
            goto out;
        }
    }
    rv = memcmp(rec + k - data_len, data, data_len) == 0 ? CKR_OK : CKR_SIGNATURE_INVALID;
out:
    free(rec);
    return rv;
}

CK_RV ksp_pub_verify(const struct ksp_pubkey *pub, const struct ksp_pubop *op, const uint8_t *data,
                     size_t data_len, const uint8_t *sig, size_t sig_len)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    uint8_t *der = NULL;
    size_t der_len = 0;
    size_t k = 0;
    int ok = 0;
    bool is_rsa = op->kind != KSP_PUB_ECDSA;

    if ((is_rsa && pub->key_type != CKK_RSA) || (!is_rsa && pub->key_type != CKK_EC)) {
        rv = CKR_KEY_TYPE_INCONSISTENT;
        goto out;
    }
    rv = pub_ctx(pub, &pkey, &ctx, &k);
    if (rv != CKR_OK) {
        goto out;
    }
    /* PKCS#11 3.0 §5.13 (C_Verify): a signature of the wrong length is
     * CKR_SIGNATURE_LEN_RANGE, not merely invalid. */
    if (sig == NULL || sig_len != k) {
        rv = CKR_SIGNATURE_LEN_RANGE;
        goto out;
    }
    switch (op->kind) {
    case KSP_PUB_RSA_RAW:
        rv = verify_rsa_raw(ctx, k, data, data_len, sig, sig_len);
        goto out;
    case KSP_PUB_RSA_PKCS1:
        /* No digest set: the recovered block's payload is compared with data
         * as given (a DigestInfo, or raw data for CKM_RSA_PKCS). */
        if (data_len > k - 11) {
            rv = CKR_DATA_LEN_RANGE;
            goto out;
        }
        if (EVP_PKEY_verify_init(ctx) != 1) {
            rv = ksp_ossl_err(AREA, "EVP_PKEY_verify_init", CKR_FUNCTION_FAILED);
            goto out;
        }
        rv = rsa_setup(ctx, RSA_PKCS1_PADDING, 0, 0, true);
        break;
    case KSP_PUB_RSA_PSS:
        if (data_len != ksp_hash_len(op->hash)) {
            rv = ksp_hash_len(op->hash) == 0 ? CKR_MECHANISM_PARAM_INVALID : CKR_DATA_LEN_RANGE;
            goto out;
        }
        if (op->salt_len > k) {
            rv = CKR_SIGNATURE_INVALID;
            goto out;
        }
        if (EVP_PKEY_verify_init(ctx) != 1) {
            rv = ksp_ossl_err(AREA, "EVP_PKEY_verify_init", CKR_FUNCTION_FAILED);
            goto out;
        }
        rv = rsa_setup(ctx, RSA_PKCS1_PSS_PADDING, op->hash, op->mgf_hash, true);
        if (rv == CKR_OK && EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, (int)op->salt_len) != 1) {
            rv = ksp_ossl_err(AREA, "set_rsa_pss_saltlen", CKR_FUNCTION_FAILED);
        }
        break;
    case KSP_PUB_ECDSA:
        rv = ecdsa_rs_to_der(sig, sig_len, &der, &der_len);
        if (rv != CKR_OK) {
            goto out;
        }
        sig = der;
        sig_len = der_len;
        if (EVP_PKEY_verify_init(ctx) != 1) {
            rv = ksp_ossl_err(AREA, "EVP_PKEY_verify_init", CKR_FUNCTION_FAILED);
            goto out;
        }
        rv = CKR_OK;
        break;
    default:
        rv = CKR_MECHANISM_INVALID;
        goto out;
    }
    if (rv != CKR_OK) {
        goto out;
    }
    ok = EVP_PKEY_verify(ctx, sig, sig_len, data, data_len);
    if (ok != 1) {
        rv = ksp_ossl_err(AREA, "EVP_PKEY_verify", CKR_SIGNATURE_INVALID);
        goto out;
    }
    rv = CKR_OK;
out:
    OPENSSL_free(der);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    return rv;
}

CK_RV ksp_pub_encrypt(const struct ksp_pubkey *pub, const struct ksp_pubop *op, const uint8_t *in,
                      size_t in_len, uint8_t *out, size_t *out_len)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    EVP_PKEY *pkey = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    uint8_t *block = NULL;
    size_t k = 0;
    size_t hlen = 0;
    size_t len = 0;
    int pad = 0;

    if (pub->key_type != CKK_RSA) {
        rv = CKR_KEY_TYPE_INCONSISTENT;
        goto out;
    }
    k = (ksp_pub_bits(pub) + 7) / 8;
    switch (op->kind) {
    case KSP_PUB_RSA_RAW:
        pad = RSA_NO_PADDING;
        if (in_len > k) {
            rv = CKR_DATA_LEN_RANGE;
            goto out;
        }
        break;
    case KSP_PUB_RSA_PKCS1:
        /* RFC 8017 §7.2.1 step 1. */
        pad = RSA_PKCS1_PADDING;
        if (k < 11 || in_len > k - 11) {
            rv = CKR_DATA_LEN_RANGE;
            goto out;
        }
        break;
    case KSP_PUB_RSA_OAEP:
        /* RFC 8017 §7.1.1 step 1b. */
        pad = RSA_PKCS1_OAEP_PADDING;
        hlen = ksp_hash_len(op->hash);
        if (hlen == 0 || ksp_hash_len(op->mgf_hash) == 0) {
            rv = CKR_MECHANISM_PARAM_INVALID;
            goto out;
        }
        if (k < 2 * hlen + 2 || in_len > k - 2 * hlen - 2) {
            rv = CKR_DATA_LEN_RANGE;
            goto out;
        }
        break;
    default:
        rv = CKR_MECHANISM_INVALID;
        goto out;
    }
    if (out == NULL) {
        *out_len = k;
        rv = CKR_OK;
        goto out;
    }
    if (*out_len < k) {
        *out_len = k;
        rv = CKR_BUFFER_TOO_SMALL;
        goto out;
    }
    rv = pub_ctx(pub, &pkey, &ctx, &k);
    if (rv != CKR_OK) {
        goto out;
    }
    if (pad == RSA_NO_PADDING) {
        /* CKM_RSA_X_509: input left-padded with zeros to k bytes, below n. */
        const uint8_t *n = strip0(&pub->modulus, &len);

        block = calloc(1, k);
        if (block == NULL) {
            rv = CKR_HOST_MEMORY;
            goto out;
        }
        memcpy(block + k - in_len, in, in_len);
        if (len != k || memcmp(block, n, k) >= 0) {
            rv = CKR_DATA_LEN_RANGE;
            goto out;
        }
        in = block;
        in_len = k;
    }
    if (EVP_PKEY_encrypt_init(ctx) != 1) {
        rv = ksp_ossl_err(AREA, "EVP_PKEY_encrypt_init", CKR_FUNCTION_FAILED);
        goto out;
    }
    rv = rsa_setup(ctx, pad, op->hash, op->mgf_hash, false);
    if (rv != CKR_OK) {
        goto out;
    }
    if (pad == RSA_PKCS1_OAEP_PADDING && op->label_len > 0) {
        /* The provider copies the label, so no ownership hand-over. */
        OSSL_PARAM p[2];

        if (op->label == NULL) {
            rv = CKR_MECHANISM_PARAM_INVALID;
            goto out;
        }
        p[0] = OSSL_PARAM_construct_octet_string(OSSL_ASYM_CIPHER_PARAM_OAEP_LABEL,
                                                 (void *)op->label, op->label_len);
        p[1] = OSSL_PARAM_construct_end();
        if (EVP_PKEY_CTX_set_params(ctx, p) != 1) {
            rv = ksp_ossl_err(AREA, "OAEP label", CKR_FUNCTION_FAILED);
            goto out;
        }
    }
    len = *out_len;
    if (EVP_PKEY_encrypt(ctx, out, &len, in, in_len) != 1) {
        rv = ksp_ossl_err(AREA, "EVP_PKEY_encrypt", CKR_FUNCTION_FAILED);
        goto out;
    }
    *out_len = len;
    rv = CKR_OK;
out:
    free(block);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pkey);
    return rv;
}
