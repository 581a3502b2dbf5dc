/*
 * Unit tests of the software backend (softfallback/): capabilities, key
 * generation, import and load, and every private primitive, each verified
 * with ksp_pub_verify / decrypted after ksp_pub_encrypt and, where cheap,
 * independently with OpenSSL's default context. Buffer-length conventions
 * and the precise error codes for bad input are asserted too.
 * RSA keys are generated once per TCase (unchecked fixture): they are slow.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "ksp11/backend.h"
#include "ksp11/ksp11.h"
#include "log.h"
#include "secmem.h"
#include "swcrypto.h"

#define ck_assert_rv(expr, want)                                                                   \
    do {                                                                                           \
        CK_RV got_rv_ = (expr);                                                                    \
        CK_RV want_rv_ = (want);                                                                   \
        ck_assert_msg(got_rv_ == want_rv_, "%s: got %s, want %s", #expr, ksp_rv_name(got_rv_),     \
                      ksp_rv_name(want_rv_));                                                      \
    } while (0)

#define OPS (&ksp_soft_backend)

/* A generated key: what keygen returned, and the loaded handle. */
struct tkey {
    struct ksp_buf blob, secret;
    struct ksp_pubkey pub;
    struct ksp_bkey *k;
};

static struct ksp_backend *be;
static struct tkey rsa;   /* RSA 2048, e = 65537 */
static struct tkey ec[3]; /* P-256, P-384, P-521 */
static const enum ksp_curve curves[3] = {KSP_CURVE_P256, KSP_CURVE_P384, KSP_CURVE_P521};
static const size_t fbytes[3] = {32, 48, 66};

static void gen(const struct ksp_keyspec *spec, struct tkey *t)
{
    memset(t, 0, sizeof(*t));
    ck_assert_rv(OPS->keygen(be, spec, &t->blob, &t->secret, &t->pub), CKR_OK);
    ck_assert_rv(OPS->key_load(be, &t->blob, &t->secret, &t->k), CKR_OK);
}

static void tkey_free(struct tkey *t)
{
    OPS->key_unload(t->k);
    ksp_buf_free(&t->blob);
    ksp_buf_free(&t->secret);
    ksp_buf_free(&t->pub.modulus);
    ksp_buf_free(&t->pub.pub_exp);
    ksp_buf_free(&t->pub.ec_point);
}

static void keys_setup(void)
{
    struct ksp_keyspec spec = {.key_type = CKK_RSA, .modulus_bits = 2048, .sign = CK_TRUE};

    ck_assert_rv(OPS->open(NULL, &be), CKR_OK);
    gen(&spec, &rsa);
    for (int i = 0; i < 3; i++) {
        struct ksp_keyspec es = {.key_type = CKK_EC, .curve = curves[i], .sign = CK_TRUE};

        gen(&es, &ec[i]);
    }
}

static void keys_teardown(void)
{
    tkey_free(&rsa);
    for (int i = 0; i < 3; i++) {
        tkey_free(&ec[i]);
    }
    OPS->close(be);
}

/* The key's private half as OpenSSL parses it (default context). */
static EVP_PKEY *ossl_priv(const struct tkey *t)
{
    const unsigned char *p = t->secret.p;
    PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)t->secret.len);
    EVP_PKEY *pk = NULL;

    ck_assert_ptr_nonnull(p8);
    pk = EVP_PKCS82PKEY(p8);
    PKCS8_PRIV_KEY_INFO_free(p8);
    ck_assert_ptr_nonnull(pk);
    return pk;
}

static CK_RV op(struct tkey *t, enum ksp_prim prim, CK_MECHANISM_TYPE hash, const uint8_t *in,
                size_t in_len, uint8_t *out, size_t *out_len)
{
    struct ksp_prim_args a = {.prim = prim, .hash = hash, .mgf_hash = hash};

    return OPS->private_op(t->k, &a, in, in_len, out, out_len);
}

/* ---- backend basics ---- */

START_TEST(test_caps)
{
    const struct ksp_caps *c = OPS->caps(be);

    ck_assert_str_eq(OPS->name, "soft");
    ck_assert_uint_eq(OPS->id, KSP11_BACKEND_SOFT);
    ck_assert(OPS->thread_safe == CK_TRUE);
    ck_assert_ptr_nonnull(OPS->import);
    ck_assert_uint_eq(c->rsa_min_bits, 2048);
    ck_assert_uint_eq(c->rsa_max_bits, 4096);
    ck_assert_uint_eq(c->rsa_sizes[0], 2048);
    ck_assert_uint_eq(c->rsa_sizes[1], 3072);
    ck_assert_uint_eq(c->rsa_sizes[2], 4096);
    ck_assert_uint_eq(c->rsa_sizes[3], 0);
    ck_assert_int_eq(c->curves[0], KSP_CURVE_P256);
    ck_assert_int_eq(c->curves[1], KSP_CURVE_P384);
    ck_assert_int_eq(c->curves[2], KSP_CURVE_P521);
    ck_assert_int_eq(c->curves[3], KSP_CURVE_NONE);
    ck_assert(c->hardware == CK_FALSE);
    ck_assert(c->native_pss == CK_TRUE);
}
END_TEST

START_TEST(test_keygen_rsa)
{
    EVP_PKEY *pk = ossl_priv(&rsa);
    BIGNUM *n = NULL;
    uint8_t nb[256];

    ck_assert_int_eq(rsa.pub.key_type, CKK_RSA);
    ck_assert_uint_eq(rsa.pub.modulus.len, 256);
    ck_assert_uint_ne(rsa.pub.modulus.p[0], 0); /* no leading zero */
    ck_assert_uint_eq(rsa.pub.pub_exp.len, 3);
    ck_assert_mem_eq(rsa.pub.pub_exp.p, "\x01\x00\x01", 3);
    ck_assert_uint_eq(rsa.blob.len, 0);
    ck_assert_rv(ksp_pub_check(&rsa.pub), CKR_OK);
    ck_assert_uint_eq(ksp_pub_bits(&rsa.pub), 2048);
    /* The secret is PKCS#8 of the same key. */
    ck_assert(EVP_PKEY_is_a(pk, "RSA"));
    ck_assert_int_eq(EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &n), 1);
    ck_assert_int_eq(BN_bn2binpad(n, nb, 256), 256);
    ck_assert_mem_eq(nb, rsa.pub.modulus.p, 256);
    BN_free(n);
    EVP_PKEY_free(pk);
}
END_TEST

START_TEST(test_keygen_ec)
{
    struct tkey *t = &ec[_i];
    EVP_PKEY *pk = ossl_priv(t);
    uint8_t pt[200];
    size_t len = 0;

    ck_assert_int_eq(t->pub.key_type, CKK_EC);
    ck_assert_int_eq(t->pub.curve, curves[_i]);
    ck_assert_uint_eq(t->pub.ec_point.len, 1 + 2 * fbytes[_i]);
    ck_assert_uint_eq(t->pub.ec_point.p[0], 0x04);
    ck_assert_uint_eq(t->blob.len, 0);
    ck_assert_rv(ksp_pub_check(&t->pub), CKR_OK);
    ck_assert_int_eq(
        EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &len), 1);
    ck_assert_uint_eq(len, t->pub.ec_point.len);
    ck_assert_mem_eq(pt, t->pub.ec_point.p, len);
    EVP_PKEY_free(pk);
}
END_TEST

START_TEST(test_keygen_exponent)
{
    /* One extra RSA key: a caller-chosen public exponent (leading zero ignored). */
    const uint8_t e3[] = {0x00, 0x03};
    struct ksp_keyspec spec = {
        .key_type = CKK_RSA, .modulus_bits = 2048, .pub_exp = e3, .pub_exp_len = sizeof(e3)};
    struct tkey t;
    uint8_t in[32];
    uint8_t di[83];
    uint8_t sig[256];
    size_t di_len = 0;
    size_t len = sizeof(sig);
    struct ksp_pubop pop = {.kind = KSP_PUB_RSA_PKCS1};

    gen(&spec, &t);
    ck_assert_uint_eq(t.pub.pub_exp.len, 1);
    ck_assert_uint_eq(t.pub.pub_exp.p[0], 3);
    memset(in, 9, sizeof(in));
    ck_assert_rv(ksp_digestinfo(CKM_SHA256, in, 32, di, &di_len), CKR_OK);
    ck_assert_rv(op(&t, KSP_PRIM_RSA_PKCS1_SIGN, 0, di, di_len, sig, &len), CKR_OK);
    ck_assert_rv(ksp_pub_verify(&t.pub, &pop, di, di_len, sig, len), CKR_OK);
    tkey_free(&t);
}
END_TEST

START_TEST(test_keygen_bad)
{
    struct ksp_keyspec spec = {.key_type = CKK_RSA, .modulus_bits = 1024};
    struct ksp_buf blob = {NULL, 0};
    struct ksp_buf secret = {NULL, 0};
    struct ksp_pubkey pub;
    const uint8_t even[] = {0x01, 0x00, 0x00};
    const uint8_t one[] = {0x00, 0x01};
    uint8_t huge[33];

    memset(&pub, 0, sizeof(pub));
    ck_assert_rv(OPS->keygen(be, &spec, &blob, &secret, &pub), CKR_KEY_SIZE_RANGE);
    spec.modulus_bits = 2049;
    ck_assert_rv(OPS->keygen(be, &spec, &blob, &secret, &pub), CKR_KEY_SIZE_RANGE);
    spec.modulus_bits = 8192;
    ck_assert_rv(OPS->keygen(be, &spec, &blob, &secret, &pub), CKR_KEY_SIZE_RANGE);
    spec.modulus_bits = 2048;
    spec.pub_exp = even;
    spec.pub_exp_len = sizeof(even);
    ck_assert_rv(OPS->keygen(be, &spec, &blob, &secret, &pub), CKR_ATTRIBUTE_VALUE_INVALID);
    spec.pub_exp = one;
    spec.pub_exp_len = sizeof(one);
    ck_assert_rv(OPS->keygen(be, &spec, &blob, &secret, &pub), CKR_ATTRIBUTE_VALUE_INVALID);
    memset(huge, 0xFF, sizeof(huge));
    spec.pub_exp = huge;
    spec.pub_exp_len = sizeof(huge);
    ck_assert_rv(OPS->keygen(be, &spec, &blob, &secret, &pub), CKR_ATTRIBUTE_VALUE_INVALID);
    spec.pub_exp_len = 0; /* non-NULL but empty */
    ck_assert_rv(OPS->keygen(be, &spec, &blob, &secret, &pub), CKR_ATTRIBUTE_VALUE_INVALID);

    struct ksp_keyspec es = {.key_type = CKK_EC, .curve = KSP_CURVE_NONE};
    ck_assert_rv(OPS->keygen(be, &es, &blob, &secret, &pub), CKR_CURVE_NOT_SUPPORTED);
    es.key_type = CKK_DSA;
    ck_assert_rv(OPS->keygen(be, &es, &blob, &secret, &pub), CKR_KEY_TYPE_INCONSISTENT);
    /* Outputs untouched on failure. */
    ck_assert_ptr_null(secret.p);
    ck_assert_ptr_null(pub.modulus.p);
}
END_TEST

/* ---- RSA primitives ---- */

START_TEST(test_rsa_raw)
{
    uint8_t in[256];
    uint8_t out[256];
    uint8_t back[256];
    size_t len = sizeof(out);
    struct ksp_pubop pop = {.kind = KSP_PUB_RSA_RAW};
    EVP_PKEY *pk = ossl_priv(&rsa);
    EVP_PKEY_CTX *ctx = NULL;
    size_t blen = sizeof(back);

    ck_assert_rv(ksp_random(in, sizeof(in)), CKR_OK);
    in[0] = 0x00; /* below n */
    ck_assert_rv(op(&rsa, KSP_PRIM_RSA_RAW, 0, in, 256, out, &len), CKR_OK);
    ck_assert_uint_eq(len, 256);
    ck_assert_rv(ksp_pub_verify(&rsa.pub, &pop, in, 256, out, 256), CKR_OK);
    /* Independently: out^e mod n == in. */
    ctx = EVP_PKEY_CTX_new(pk, NULL);
    ck_assert_int_eq(EVP_PKEY_encrypt_init(ctx), 1);
    ck_assert_int_eq(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING), 1);
    ck_assert_int_eq(EVP_PKEY_encrypt(ctx, back, &blen, out, 256), 1);
    ck_assert_mem_eq(back, in, 256);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pk);

    /* backend.h: exactly k bytes, below n. */
    len = sizeof(out);
    ck_assert_rv(op(&rsa, KSP_PRIM_RSA_RAW, 0, in + 1, 255, out, &len), CKR_DATA_LEN_RANGE);
    ck_assert_rv(op(&rsa, KSP_PRIM_RSA_RAW, 0, rsa.pub.modulus.p, 256, out, &len),
                 CKR_DATA_LEN_RANGE);
    memset(in, 0xFF, sizeof(in));
    ck_assert_rv(op(&rsa, KSP_PRIM_RSA_RAW, 0, in, 256, out, &len), CKR_DATA_LEN_RANGE);
}
END_TEST

START_TEST(test_rsa_pkcs1_sign)
{
    const char *msg = "sign me";
    uint8_t d[32];
    uint8_t di[83];
    uint8_t sig[256];
    size_t di_len = 0;
    size_t len = 0;
    struct ksp_pubop pop = {.kind = KSP_PUB_RSA_PKCS1};
    EVP_PKEY *pk = ossl_priv(&rsa);
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();
    uint8_t big[246];

    ck_assert_rv(ksp_digest(CKM_SHA256, (const uint8_t *)msg, strlen(msg), d), CKR_OK);
    ck_assert_rv(ksp_digestinfo(CKM_SHA256, d, 32, di, &di_len), CKR_OK);

    /* Length conventions. */
    ck_assert_rv(op(&rsa, KSP_PRIM_RSA_PKCS1_SIGN, 0, di, di_len, NULL, &len), CKR_OK);
    ck_assert_uint_eq(len, 256);
    len = 255;
    ck_assert_rv(op(&rsa, KSP_PRIM_RSA_PKCS1_SIGN, 0, di, di_len, sig, &len), CKR_BUFFER_TOO_SMALL);
    ck_assert_uint_eq(len, 256);

    len = sizeof(sig);
    ck_assert_rv(op(&rsa, KSP_PRIM_RSA_PKCS1_SIGN, 0, di, di_len, sig, &len), CKR_OK);
    ck_assert_uint_eq(len, 256);
    ck_assert_rv(ksp_pub_verify(&rsa.pub, &pop, di, di_len, sig, len), CKR_OK);
    /* Independently: a standard RSASSA-PKCS1-v1_5 SHA-256 signature of msg. */
    ck_assert_int_eq(EVP_DigestVerifyInit(mctx, NULL, EVP_sha256(), NULL, pk), 1);
    ck_assert_int_eq(EVP_DigestVerify(mctx, sig, len, (const uint8_t *)msg, strlen(msg)), 1);
    EVP_MD_CTX_free(mctx);
    EVP_PKEY_free(pk);

    /* Raw data (CKM_RSA_PKCS) is padded as given. */
    len = sizeof(sig);
    ck_assert_rv(op(&rsa, KSP_PRIM_RSA_PKCS1_SIGN, 0, (const uint8_t *)"raw", 3, sig, &len),
                 CKR_OK);
    ck_assert_rv(ksp_pub_verify(&rsa.pub, &pop, (const uint8_t *)"raw", 3, sig, len), CKR_OK);
    /* At most k - 11 bytes. */
    memset(big, 1, sizeof(big));
    len = sizeof(sig);
    ck_assert_rv(op(&rsa, KSP_PRIM_RSA_PKCS1_SIGN, 0, big, 245, sig, &len), CKR_OK);
    len = sizeof(sig);
    ck_assert_rv(op(&rsa, KSP_PRIM_RSA_PKCS1_SIGN, 0, big, 246, sig, &len), CKR_DATA_LEN_RANGE);
}
END_TEST

static void pss_case(CK_MECHANISM_TYPE hash, CK_MECHANISM_TYPE mgf, const EVP_MD *md,
                     const EVP_MD *mgf_md)
{
    size_t hlen = ksp_hash_len(hash);
    uint8_t d[64];
    uint8_t sig[256];
    size_t len = sizeof(sig);
    struct ksp_prim_args a = {.prim = KSP_PRIM_RSA_PSS_SIGN, .hash = hash, .mgf_hash = mgf};
    struct ksp_pubop pop = {
        .kind = KSP_PUB_RSA_PSS, .hash = hash, .mgf_hash = mgf, .salt_len = hlen};
    EVP_PKEY *pk = ossl_priv(&rsa);
    EVP_PKEY_CTX *ctx = NULL;

    memset(d, 0x77, sizeof(d));
    ck_assert_rv(OPS->private_op(rsa.k, &a, d, hlen, sig, &len), CKR_OK);
    ck_assert_uint_eq(len, 256);
    ck_assert_rv(ksp_pub_verify(&rsa.pub, &pop, d, hlen, sig, len), CKR_OK);
    /* The salt length is the hash length, not something else that verifies. */
    pop.salt_len = hlen + 1;
    ck_assert_rv(ksp_pub_verify(&rsa.pub, &pop, d, hlen, sig, len), CKR_SIGNATURE_INVALID);
    /* Independently with OpenSSL. */
    ctx = EVP_PKEY_CTX_new(pk, NULL);
    ck_assert_int_eq(EVP_PKEY_verify_init(ctx), 1);
    ck_assert_int_eq(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING), 1);
    ck_assert_int_eq(EVP_PKEY_CTX_set_signature_md(ctx, md), 1);
    ck_assert_int_eq(EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, mgf_md), 1);
    ck_assert_int_eq(EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, (int)hlen), 1);
    ck_assert_int_eq(EVP_PKEY_verify(ctx, sig, len, d, hlen), 1);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pk);
    /* The raw-sign guard accepts what a PSS signature opens to, in the form
     * ksp11 uses (MGF1 hash = hash; salt = hash length). */
    uint8_t em[256];
    struct ksp_pubop raw = {.kind = KSP_PUB_RSA_RAW};
    len = sizeof(em);
    ck_assert_rv(ksp_pub_encrypt(&rsa.pub, &raw, sig, 256, em, &len), CKR_OK);
    ck_assert(ksp_rsa_raw_sign_input_ok(em, 256, 2048) == (hash == mgf));
}

START_TEST(test_rsa_pss_sign)
{
    pss_case(CKM_SHA256, CKM_SHA256, EVP_sha256(), EVP_sha256());
    pss_case(CKM_SHA384, CKM_SHA_1, EVP_sha384(), EVP_sha1());
    pss_case(CKM_SHA512, CKM_SHA512, EVP_sha512(), EVP_sha512());
    pss_case(CKM_SHA_1, CKM_SHA224, EVP_sha1(), EVP_sha224());
}
END_TEST

START_TEST(test_rsa_pss_bad)
{
    uint8_t d[64] = {0};
    uint8_t sig[256];
    size_t len = sizeof(sig);
    struct ksp_prim_args a = {
        .prim = KSP_PRIM_RSA_PSS_SIGN, .hash = CKM_SHA256, .mgf_hash = CKM_SHA256};

    ck_assert_rv(OPS->private_op(rsa.k, &a, d, 31, sig, &len), CKR_DATA_LEN_RANGE);
    ck_assert_rv(OPS->private_op(rsa.k, &a, d, 48, sig, &len), CKR_DATA_LEN_RANGE);
    a.hash = CKM_MD5;
    ck_assert_rv(OPS->private_op(rsa.k, &a, d, 16, sig, &len), CKR_MECHANISM_PARAM_INVALID);
    a.hash = CKM_SHA256;
    a.mgf_hash = 0;
    ck_assert_rv(OPS->private_op(rsa.k, &a, d, 32, sig, &len), CKR_MECHANISM_PARAM_INVALID);
}
END_TEST

START_TEST(test_rsa_decrypt_pkcs1)
{
    struct ksp_pubop pop = {.kind = KSP_PUB_RSA_PKCS1};
    uint8_t ct[256];
    uint8_t pt[256];
    size_t ct_len = sizeof(ct);
    size_t len = 0;
    CK_RV rv = CKR_GENERAL_ERROR;

    ck_assert_rv(ksp_pub_encrypt(&rsa.pub, &pop, (const uint8_t *)"top secret", 10, ct, &ct_len),
                 CKR_OK);
    /* NULL: an upper bound (k - 11). */
    ck_assert_rv(op(&rsa, KSP_PRIM_RSA_DECRYPT_PKCS1, 0, ct, ct_len, NULL, &len), CKR_OK);
    ck_assert_uint_eq(len, 245);
    /* A buffer of the exact plaintext length is enough; one less is not, and
     * the exact length is reported. */
    len = 9;
    ck_assert_rv(op(&rsa, KSP_PRIM_RSA_DECRYPT_PKCS1, 0, ct, ct_len, pt, &len),
                 CKR_BUFFER_TOO_SMALL);
    ck_assert_uint_eq(len, 10);
    len = 10;
    ck_assert_rv(op(&rsa, KSP_PRIM_RSA_DECRYPT_PKCS1, 0, ct, ct_len, pt, &len), CKR_OK);
    ck_assert_uint_eq(len, 10);
    ck_assert_mem_eq(pt, "top secret", 10);

    len = sizeof(pt);
    ck_assert_rv(op(&rsa, KSP_PRIM_RSA_DECRYPT_PKCS1, 0, ct, 255, pt, &len),
                 CKR_ENCRYPTED_DATA_LEN_RANGE);
    ck_assert_rv(op(&rsa, KSP_PRIM_RSA_DECRYPT_PKCS1, 0, ct, 0, pt, &len),
                 CKR_ENCRYPTED_DATA_LEN_RANGE);
    /* A corrupted ciphertext: an error, or (OpenSSL implicit rejection) a
     * different, deterministic-looking plaintext; never the original. */
    ct[128] ^= 0x01;
    len = sizeof(pt);
    rv = op(&rsa, KSP_PRIM_RSA_DECRYPT_PKCS1, 0, ct, ct_len, pt, &len);
    ck_assert(rv == CKR_ENCRYPTED_DATA_INVALID ||
              (rv == CKR_OK && (len != 10 || memcmp(pt, "top secret", 10) != 0)));
}
END_TEST

START_TEST(test_rsa_decrypt_oaep)
{
    const uint8_t label[] = {1, 2, 3, 4};
    struct ksp_pubop pop = {.kind = KSP_PUB_RSA_OAEP,
                            .hash = CKM_SHA256,
                            .mgf_hash = CKM_SHA256,
                            .label = label,
                            .label_len = sizeof(label)};
    struct ksp_prim_args a = {.prim = KSP_PRIM_RSA_DECRYPT_OAEP,
                              .hash = CKM_SHA256,
                              .mgf_hash = CKM_SHA256,
                              .label = label,
                              .label_len = sizeof(label)};
    uint8_t ct[256];
    uint8_t pt[256];
    size_t ct_len = sizeof(ct);
    size_t len = 0;
    EVP_PKEY *pk = ossl_priv(&rsa);
    EVP_PKEY_CTX *ctx = NULL;

    ck_assert_rv(ksp_pub_encrypt(&rsa.pub, &pop, (const uint8_t *)"oaep!", 5, ct, &ct_len), CKR_OK);
    ck_assert_rv(OPS->private_op(rsa.k, &a, ct, ct_len, NULL, &len), CKR_OK);
    ck_assert_uint_eq(len, 256 - 2 * 32 - 2);
    len = sizeof(pt);
    ck_assert_rv(OPS->private_op(rsa.k, &a, ct, ct_len, pt, &len), CKR_OK);
    ck_assert_uint_eq(len, 5);
    ck_assert_mem_eq(pt, "oaep!", 5);
    /* The label is bound in: another label fails. */
    a.label_len = 3;
    len = sizeof(pt);
    ck_assert_rv(OPS->private_op(rsa.k, &a, ct, ct_len, pt, &len), CKR_ENCRYPTED_DATA_INVALID);
    a.label_len = sizeof(label);
    a.mgf_hash = CKM_SHA_1;
    ck_assert_rv(OPS->private_op(rsa.k, &a, ct, ct_len, pt, &len), CKR_ENCRYPTED_DATA_INVALID);
    a.mgf_hash = CKM_SHA_1;
    a.hash = CKM_SHA_1;
    a.label = NULL;
    a.label_len = 0;

    /* SHA-1 without a label, encrypted by OpenSSL itself. */
    ct_len = sizeof(ct);
    ctx = EVP_PKEY_CTX_new(pk, NULL);
    ck_assert_int_eq(EVP_PKEY_encrypt_init(ctx), 1);
    ck_assert_int_eq(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING), 1);
    ck_assert_int_eq(EVP_PKEY_encrypt(ctx, ct, &ct_len, (const uint8_t *)"sha1", 4), 1);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pk);
    len = sizeof(pt);
    ck_assert_rv(OPS->private_op(rsa.k, &a, ct, ct_len, pt, &len), CKR_OK);
    ck_assert_uint_eq(len, 4);
    ck_assert_mem_eq(pt, "sha1", 4);

    ck_assert_rv(OPS->private_op(rsa.k, &a, ct, 100, pt, &len), CKR_ENCRYPTED_DATA_LEN_RANGE);
    a.hash = CKM_MD5;
    ck_assert_rv(OPS->private_op(rsa.k, &a, ct, ct_len, pt, &len), CKR_MECHANISM_PARAM_INVALID);
}
END_TEST

START_TEST(test_key_type_mismatch)
{
    uint8_t d[32] = {0};
    uint8_t out[256];
    size_t len = sizeof(out);

    ck_assert_rv(op(&rsa, KSP_PRIM_ECDSA, 0, d, 32, out, &len), CKR_KEY_TYPE_INCONSISTENT);
    ck_assert_rv(op(&rsa, KSP_PRIM_ECDH, 0, d, 32, out, &len), CKR_KEY_TYPE_INCONSISTENT);
    ck_assert_rv(op(&ec[0], KSP_PRIM_RSA_PKCS1_SIGN, 0, d, 32, out, &len),
                 CKR_KEY_TYPE_INCONSISTENT);
    ck_assert_rv(op(&ec[0], KSP_PRIM_RSA_RAW, 0, d, 32, out, &len), CKR_KEY_TYPE_INCONSISTENT);
    ck_assert_rv(op(&rsa, (enum ksp_prim)99, 0, d, 32, out, &len), CKR_MECHANISM_INVALID);
}
END_TEST

/* ---- EC primitives ---- */

START_TEST(test_ecdsa)
{
    struct tkey *t = &ec[_i];
    size_t fb = fbytes[_i];
    struct ksp_pubop pop = {.kind = KSP_PUB_ECDSA};
    uint8_t d[64];
    uint8_t sig[132];
    size_t len = 0;
    static const size_t dlens[] = {20, 32, 48, 64};
    EVP_PKEY *pk = ossl_priv(t);

    ck_assert_rv(op(t, KSP_PRIM_ECDSA, 0, d, 32, NULL, &len), CKR_OK);
    ck_assert_uint_eq(len, 2 * fb);
    len = 2 * fb - 1;
    ck_assert_rv(op(t, KSP_PRIM_ECDSA, 0, d, 32, sig, &len), CKR_BUFFER_TOO_SMALL);
    ck_assert_uint_eq(len, 2 * fb);

    for (size_t i = 0; i < sizeof(dlens) / sizeof(dlens[0]); i++) {
        ECDSA_SIG *es = ECDSA_SIG_new();
        BIGNUM *r = NULL;
        BIGNUM *s = NULL;
        unsigned char *der = NULL;
        int der_len = 0;
        EVP_PKEY_CTX *ctx = NULL;

        memset(d, (int)(0x30 + i), sizeof(d));
        len = sizeof(sig);
        ck_assert_rv(op(t, KSP_PRIM_ECDSA, 0, d, dlens[i], sig, &len), CKR_OK);
        ck_assert_uint_eq(len, 2 * fb);
        ck_assert_rv(ksp_pub_verify(&t->pub, &pop, d, dlens[i], sig, len), CKR_OK);
        /* Independently: r||s back to DER, verified by OpenSSL. */
        r = BN_bin2bn(sig, (int)fb, NULL);
        s = BN_bin2bn(sig + fb, (int)fb, NULL);
        ck_assert_int_eq(ECDSA_SIG_set0(es, r, s), 1);
        der_len = i2d_ECDSA_SIG(es, &der);
        ck_assert_int_gt(der_len, 0);
        ctx = EVP_PKEY_CTX_new(pk, NULL);
        ck_assert_int_eq(EVP_PKEY_verify_init(ctx), 1);
        ck_assert_int_eq(EVP_PKEY_verify(ctx, der, (size_t)der_len, d, dlens[i]), 1);
        EVP_PKEY_CTX_free(ctx);
        OPENSSL_free(der);
        ECDSA_SIG_free(es);
        d[0] ^= 1;
        ck_assert_rv(ksp_pub_verify(&t->pub, &pop, d, dlens[i], sig, len), CKR_SIGNATURE_INVALID);
    }
    EVP_PKEY_free(pk);
}
END_TEST

START_TEST(test_ecdh)
{
    struct tkey *a = &ec[_i];
    size_t fb = fbytes[_i];
    struct ksp_keyspec es = {.key_type = CKK_EC, .curve = curves[_i], .derive = CK_TRUE};
    struct tkey b;
    uint8_t zab[66];
    uint8_t zba[66];
    uint8_t bad[133];
    size_t len = 0;

    gen(&es, &b);
    ck_assert_rv(op(a, KSP_PRIM_ECDH, 0, b.pub.ec_point.p, b.pub.ec_point.len, NULL, &len), CKR_OK);
    ck_assert_uint_eq(len, fb);
    len = fb - 1;
    ck_assert_rv(op(a, KSP_PRIM_ECDH, 0, b.pub.ec_point.p, b.pub.ec_point.len, zab, &len),
                 CKR_BUFFER_TOO_SMALL);
    ck_assert_uint_eq(len, fb);
    len = sizeof(zab);
    ck_assert_rv(op(a, KSP_PRIM_ECDH, 0, b.pub.ec_point.p, b.pub.ec_point.len, zab, &len), CKR_OK);
    ck_assert_uint_eq(len, fb);
    len = sizeof(zba);
    ck_assert_rv(op(&b, KSP_PRIM_ECDH, 0, a->pub.ec_point.p, a->pub.ec_point.len, zba, &len),
                 CKR_OK);
    ck_assert_uint_eq(len, fb);
    ck_assert_mem_eq(zab, zba, fb);

    /* Independently: OpenSSL's own derive gives the same Z. */
    EVP_PKEY *pa = ossl_priv(a);
    EVP_PKEY *pb = ossl_priv(&b);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pa, NULL);
    uint8_t z[66];
    size_t zl = sizeof(z);
    ck_assert_int_eq(EVP_PKEY_derive_init(ctx), 1);
    ck_assert_int_eq(EVP_PKEY_derive_set_peer(ctx, pb), 1);
    ck_assert_int_eq(EVP_PKEY_derive(ctx, z, &zl), 1);
    ck_assert_uint_eq(zl, fb);
    ck_assert_mem_eq(z, zab, fb);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pa);
    EVP_PKEY_free(pb);

    /* Off the curve, wrong length, compressed, another curve's point. */
    memcpy(bad, b.pub.ec_point.p, b.pub.ec_point.len);
    bad[b.pub.ec_point.len - 1] ^= 1;
    len = sizeof(zab);
    ck_assert_rv(op(a, KSP_PRIM_ECDH, 0, bad, b.pub.ec_point.len, zab, &len),
                 CKR_MECHANISM_PARAM_INVALID);
    ck_assert_rv(op(a, KSP_PRIM_ECDH, 0, b.pub.ec_point.p, b.pub.ec_point.len - 1, zab, &len),
                 CKR_MECHANISM_PARAM_INVALID);
    bad[0] = 0x02;
    ck_assert_rv(op(a, KSP_PRIM_ECDH, 0, bad, 1 + fb, zab, &len), CKR_MECHANISM_PARAM_INVALID);
    const struct tkey *other = &ec[(_i + 1) % 3];
    ck_assert_rv(op(a, KSP_PRIM_ECDH, 0, other->pub.ec_point.p, other->pub.ec_point.len, zab, &len),
                 CKR_MECHANISM_PARAM_INVALID);
    tkey_free(&b);
}
END_TEST

/* ---- import and load ---- */

static void import_check_sign(const struct ksp_buf *der, const struct ksp_pubkey *want)
{
    struct ksp_buf blob = {NULL, 0};
    struct ksp_buf secret = {NULL, 0};
    struct ksp_pubkey pub;
    struct ksp_bkey *k = NULL;
    uint8_t d[32];
    uint8_t di[83];
    uint8_t sig[256];
    size_t di_len = 0;
    size_t len = sizeof(sig);
    struct ksp_prim_args a = {.prim = KSP_PRIM_RSA_PKCS1_SIGN};
    struct ksp_pubop pop = {.kind = KSP_PUB_RSA_PKCS1};

    memset(&pub, 0, sizeof(pub));
    memset(d, 0x42, sizeof(d));
    ck_assert_rv(OPS->import(be, der->p, der->len, &blob, &secret, &pub), CKR_OK);
    ck_assert_uint_eq(blob.len, 0);
    ck_assert_int_eq(pub.key_type, want->key_type);
    if (want->key_type == CKK_RSA) {
        ck_assert_uint_eq(pub.modulus.len, want->modulus.len);
        ck_assert_mem_eq(pub.modulus.p, want->modulus.p, pub.modulus.len);
        ck_assert_mem_eq(pub.pub_exp.p, want->pub_exp.p, want->pub_exp.len);
    } else {
        ck_assert_int_eq(pub.curve, want->curve);
        ck_assert_uint_eq(pub.ec_point.len, want->ec_point.len);
        ck_assert_mem_eq(pub.ec_point.p, want->ec_point.p, pub.ec_point.len);
    }
    ck_assert_rv(OPS->key_load(be, &blob, &secret, &k), CKR_OK);
    if (want->key_type == CKK_RSA) {
        ck_assert_rv(ksp_digestinfo(CKM_SHA256, d, 32, di, &di_len), CKR_OK);
    } else {
        memcpy(di, d, 32);
        di_len = 32;
        a.prim = KSP_PRIM_ECDSA;
        pop.kind = KSP_PUB_ECDSA;
    }
    ck_assert_rv(OPS->private_op(k, &a, di, di_len, sig, &len), CKR_OK);
    ck_assert_rv(ksp_pub_verify(want, &pop, di, di_len, sig, len), CKR_OK);
    OPS->key_unload(k);
    ksp_buf_free(&secret);
    ksp_buf_free(&pub.modulus);
    ksp_buf_free(&pub.pub_exp);
    ksp_buf_free(&pub.ec_point);
}

static struct ksp_buf bn_of(EVP_PKEY *pk, const char *name, size_t pad)
{
    BIGNUM *bn = NULL;
    struct ksp_buf b = {NULL, 0};

    ck_assert_int_eq(EVP_PKEY_get_bn_param(pk, name, &bn), 1);
    ck_assert_rv(ksp_buf_alloc(&b, pad != 0 ? pad : (size_t)BN_num_bytes(bn)), CKR_OK);
    ck_assert_int_eq(BN_bn2binpad(bn, b.p, (int)b.len), (int)b.len);
    BN_free(bn);
    return b;
}

START_TEST(test_import_rsa_components)
{
    static const char *const names[8] = {
        OSSL_PKEY_PARAM_RSA_N,         OSSL_PKEY_PARAM_RSA_E,
        OSSL_PKEY_PARAM_RSA_D,         OSSL_PKEY_PARAM_RSA_FACTOR1,
        OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_EXPONENT1,
        OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
    };
    EVP_PKEY *pk = ossl_priv(&rsa);
    struct ksp_buf comp[8];
    struct ksp_buf der = {NULL, 0};

    for (int i = 0; i < 8; i++) {
        comp[i] = bn_of(pk, names[i], 0);
    }
    ck_assert_rv(ksp_pkcs8_from_rsa(comp, &der), CKR_OK);
    import_check_sign(&der, &rsa.pub);
    ksp_buf_free(&der);
    /* n, e, d only. */
    for (int i = 3; i < 8; i++) {
        ksp_buf_free(&comp[i]);
    }
    ck_assert_rv(ksp_pkcs8_from_rsa(comp, &der), CKR_OK);
    import_check_sign(&der, &rsa.pub);
    ksp_buf_free(&der);
    for (int i = 0; i < 8; i++) {
        ksp_buf_free(&comp[i]);
    }
    EVP_PKEY_free(pk);
}
END_TEST

START_TEST(test_import_ec_scalar)
{
    EVP_PKEY *pk = ossl_priv(&ec[_i]);
    struct ksp_buf d = bn_of(pk, OSSL_PKEY_PARAM_PRIV_KEY, 0);
    struct ksp_buf der = {NULL, 0};

    ck_assert_rv(ksp_pkcs8_from_ec(curves[_i], d.p, d.len, &der), CKR_OK);
    import_check_sign(&der, &ec[_i].pub);
    /* The secret of a generated key imports as itself. */
    import_check_sign(&ec[_i].secret, &ec[_i].pub);
    ksp_buf_free(&der);
    ksp_buf_free(&d);
    EVP_PKEY_free(pk);
}
END_TEST

/* PKCS#8 of a key given as OpenSSL params (default context). */
static struct ksp_buf encode_params(const char *type, OSSL_PARAM *params)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pk = NULL;
    PKCS8_PRIV_KEY_INFO *p8 = NULL;
    unsigned char *der = NULL;
    int len = 0;
    struct ksp_buf b = {NULL, 0};

    ck_assert_int_eq(EVP_PKEY_fromdata_init(ctx), 1);
    ck_assert_int_eq(EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_KEYPAIR, params), 1);
    p8 = EVP_PKEY2PKCS8(pk);
    ck_assert_ptr_nonnull(p8);
    len = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);
    ck_assert_int_gt(len, 0);
    ck_assert_rv(ksp_buf_set(&b, der, (size_t)len), CKR_OK);
    OPENSSL_free(der);
    PKCS8_PRIV_KEY_INFO_free(p8);
    EVP_PKEY_free(pk);
    EVP_PKEY_CTX_free(ctx);
    return b;
}

START_TEST(test_import_hostile)
{
    struct ksp_buf blob = {NULL, 0};
    struct ksp_buf secret = {NULL, 0};
    struct ksp_pubkey pub;
    uint8_t junk[64];

    memset(&pub, 0, sizeof(pub));
    memset(junk, 0x30, sizeof(junk));
    ck_assert_rv(OPS->import(be, junk, sizeof(junk), &blob, &secret, &pub),
                 CKR_ATTRIBUTE_VALUE_INVALID);
    ck_assert_rv(OPS->import(be, junk, 0, &blob, &secret, &pub), CKR_ATTRIBUTE_VALUE_INVALID);
    /* Trailing garbage after a valid PrivateKeyInfo. */
    {
        struct ksp_buf t = {NULL, 0};

        ck_assert_rv(ksp_buf_alloc(&t, ec[0].secret.len + 1), CKR_OK);
        memcpy(t.p, ec[0].secret.p, ec[0].secret.len);
        ck_assert_rv(OPS->import(be, t.p, t.len, &blob, &secret, &pub),
                     CKR_ATTRIBUTE_VALUE_INVALID);
        ck_assert_rv(OPS->import(be, t.p, t.len - 2, &blob, &secret, &pub),
                     CKR_ATTRIBUTE_VALUE_INVALID);
        ksp_buf_free(&t);
    }
    /* EC private scalar of key A with the public point of key B: the public
     * half we would report must not be a lie. */
    {
        EVP_PKEY *a = ossl_priv(&ec[0]);
        struct ksp_buf d = bn_of(a, OSSL_PKEY_PARAM_PRIV_KEY, 0);
        BIGNUM *bn = BN_bin2bn(d.p, (int)d.len, NULL);
        uint8_t pt[65];
        OSSL_PARAM params[4];
        struct ksp_buf der;
        uint8_t pb[65];
        struct ksp_keyspec es = {.key_type = CKK_EC, .curve = KSP_CURVE_P256};
        struct tkey b;
        unsigned char bnbuf[32];

        gen(&es, &b);
        memcpy(pb, b.pub.ec_point.p, 65);
        memcpy(pt, pb, 65);
        /* OSSL_PARAM BIGNUMs are native-endian. */
        ck_assert_int_eq(BN_bn2nativepad(bn, bnbuf, 32), 32);
        params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0);
        params[1] = OSSL_PARAM_construct_BN(OSSL_PKEY_PARAM_PRIV_KEY, bnbuf, 32);
        params[2] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt, 65);
        params[3] = OSSL_PARAM_construct_end();
        der = encode_params("EC", params);
        ck_assert_rv(OPS->import(be, der.p, der.len, &blob, &secret, &pub),
                     CKR_ATTRIBUTE_VALUE_INVALID);
        ksp_buf_free(&der);
        ksp_buf_free(&d);
        BN_free(bn);
        EVP_PKEY_free(a);
        tkey_free(&b);
    }
    /* RSA below the backend's minimum size. */
    {
        EVP_PKEY *small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
        PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(small);
        unsigned char *der = NULL;
        int len = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);

        ck_assert_int_gt(len, 0);
        ck_assert_rv(OPS->import(be, der, (size_t)len, &blob, &secret, &pub), CKR_KEY_SIZE_RANGE);
        OPENSSL_free(der);
        PKCS8_PRIV_KEY_INFO_free(p8);
        EVP_PKEY_free(small);
    }
    /* Another key type (Ed25519). */
    {
        EVP_PKEY *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
        PKCS8_PRIV_KEY_INFO *p8 = EVP_PKEY2PKCS8(ed);
        unsigned char *der = NULL;
        int len = i2d_PKCS8_PRIV_KEY_INFO(p8, &der);

        ck_assert_int_gt(len, 0);
        ck_assert_rv(OPS->import(be, der, (size_t)len, &blob, &secret, &pub),
                     CKR_KEY_TYPE_INCONSISTENT);
        OPENSSL_free(der);
        PKCS8_PRIV_KEY_INFO_free(p8);
        EVP_PKEY_free(ed);
    }
    ck_assert_ptr_null(secret.p);
    ck_assert_ptr_null(pub.ec_point.p);
}
END_TEST

START_TEST(test_key_load_bad)
{
    struct ksp_buf empty = {NULL, 0};
    struct ksp_buf junk = {NULL, 0};
    struct ksp_bkey *k = NULL;

    ck_assert_rv(OPS->key_load(be, &empty, &empty, &k), CKR_ARGUMENTS_BAD);
    ck_assert_rv(ksp_buf_alloc(&junk, 40), CKR_OK);
    memset(junk.p, 0x04, junk.len);
    ck_assert_rv(OPS->key_load(be, &empty, &junk, &k), CKR_ATTRIBUTE_VALUE_INVALID);
    ck_assert_ptr_null(k);
    ksp_buf_free(&junk);
    OPS->key_unload(NULL);
}
END_TEST

static Suite *soft_suite(void)
{
    Suite *s = suite_create("soft");
    TCase *tc = tcase_create("backend");

    tcase_add_unchecked_fixture(tc, keys_setup, keys_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_caps);
    tcase_add_test(tc, test_keygen_rsa);
    tcase_add_loop_test(tc, test_keygen_ec, 0, 3);
    tcase_add_test(tc, test_keygen_exponent);
    tcase_add_test(tc, test_keygen_bad);
    tcase_add_test(tc, test_rsa_raw);
    tcase_add_test(tc, test_rsa_pkcs1_sign);
    tcase_add_test(tc, test_rsa_pss_sign);
    tcase_add_test(tc, test_rsa_pss_bad);
    tcase_add_test(tc, test_rsa_decrypt_pkcs1);
    tcase_add_test(tc, test_rsa_decrypt_oaep);
    tcase_add_test(tc, test_key_type_mismatch);
    tcase_add_loop_test(tc, test_ecdsa, 0, 3);
    tcase_add_loop_test(tc, test_ecdh, 0, 3);
    tcase_add_test(tc, test_import_rsa_components);
    tcase_add_loop_test(tc, test_import_ec_scalar, 0, 3);
    tcase_add_test(tc, test_import_hostile);
    tcase_add_test(tc, test_key_load_bad);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(soft_suite());
    int failed = 0;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
