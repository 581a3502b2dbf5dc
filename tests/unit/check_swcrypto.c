/*
 * Unit tests of the core's software crypto (provider/swcrypto_*.c,
 * provider/ossl_ctx.c): digests against published vectors, RSA encodings
 * (DigestInfo, EMSA-PKCS1, EMSA-PSS checked by OpenSSL itself), the
 * CKM_RSA_X_509 guard, public verify/encrypt/check, EC encodings, the ECDH
 * KDFs against X9.63 values, and PKCS#8 building. Independent checks use
 * OpenSSL's default context, never the code under test.
 */
#include <check.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "log.h"
#include "ossl_ctx.h"
#include "secmem.h"
#include "swcrypto.h"

#define ck_assert_rv(expr, want)                                                                   \
    do {                                                                                           \
        CK_RV got_rv_ = (expr);                                                                    \
        CK_RV want_rv_ = (want);                                                                   \
        ck_assert_msg(got_rv_ == want_rv_, "%s: got %s, want %s", #expr, ksp_rv_name(got_rv_),     \
                      ksp_rv_name(want_rv_));                                                      \
    } while (0)

/* Keys made once per TCase in the runner (unchecked fixture). */
static EVP_PKEY *rsa2048;
static EVP_PKEY *rsa1025; /* modBits = 8m + 1: EMSA-PSS gets a leading zero byte */
static EVP_PKEY *ecp256;
static EVP_PKEY *ecp521;

static size_t unhex(const char *hex, uint8_t *out)
{
    size_t n = strlen(hex) / 2;

    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;

        ck_assert_int_eq(sscanf(hex + 2 * i, "%2x", &v), 1);
        out[i] = (uint8_t)v;
    }
    return n;
}

static void keys_setup(void)
{
    rsa2048 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    rsa1025 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1025);
    ecp256 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    ecp521 = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-521");
    ck_assert_ptr_nonnull(rsa2048);
    ck_assert_ptr_nonnull(rsa1025);
    ck_assert_ptr_nonnull(ecp256);
    ck_assert_ptr_nonnull(ecp521);
}

static void keys_teardown(void)
{
    EVP_PKEY_free(rsa2048);
    EVP_PKEY_free(rsa1025);
    EVP_PKEY_free(ecp256);
    EVP_PKEY_free(ecp521);
}

/* A BIGNUM parameter of a key as a malloc'd big-endian ksp_buf (pad 0: minimal). */
static struct ksp_buf bn_of(EVP_PKEY *pk, const char *name, size_t pad)
{
    BIGNUM *bn = NULL;
    struct ksp_buf b;

    ck_assert_int_eq(EVP_PKEY_get_bn_param(pk, name, &bn), 1);
    b.len = pad != 0 ? pad : (size_t)BN_num_bytes(bn);
    ck_assert_rv(ksp_buf_alloc(&b, b.len), CKR_OK);
    ck_assert_int_eq(BN_bn2binpad(bn, b.p, (int)b.len), (int)b.len);
    BN_free(bn);
    return b;
}

/* The ksp_pubkey of an OpenSSL key, as the core would store it. */
static struct ksp_pubkey pub_of(EVP_PKEY *pk)
{
    struct ksp_pubkey pub;

    memset(&pub, 0, sizeof(pub));
    if (EVP_PKEY_is_a(pk, "RSA")) {
        pub.key_type = CKK_RSA;
        pub.modulus = bn_of(pk, OSSL_PKEY_PARAM_RSA_N, 0);
        pub.pub_exp = bn_of(pk, OSSL_PKEY_PARAM_RSA_E, 0);
    } else {
        uint8_t pt[200];
        size_t len = 0;

        pub.key_type = CKK_EC;
        pub.curve = EVP_PKEY_get_bits(pk) == 256 ? KSP_CURVE_P256 : KSP_CURVE_P521;
        ck_assert_int_eq(
            EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &len), 1);
        ck_assert_rv(ksp_buf_set(&pub.ec_point, pt, len), CKR_OK);
    }
    return pub;
}

static void pub_free(struct ksp_pubkey *pub)
{
    ksp_buf_free(&pub->modulus);
    ksp_buf_free(&pub->pub_exp);
    ksp_buf_free(&pub->ec_point);
}

/* Raw RSA private operation with OpenSSL (default context): in^d mod n. */
static void ossl_rsa_raw(EVP_PKEY *pk, const uint8_t *in, size_t k, uint8_t *out)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pk, NULL);
    size_t len = k;

    ck_assert_int_eq(EVP_PKEY_decrypt_init(ctx), 1);
    ck_assert_int_eq(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING), 1);
    ck_assert_int_eq(EVP_PKEY_decrypt(ctx, out, &len, in, k), 1);
    ck_assert_uint_eq(len, k);
    EVP_PKEY_CTX_free(ctx);
}

/* ---- ossl_ctx ---- */

START_TEST(test_ctx_private)
{
    OSSL_LIB_CTX *c = ksp_ossl_ctx();
    EVP_MD *md = NULL;

    ck_assert_ptr_nonnull(c);
    ck_assert_ptr_eq(ksp_ossl_ctx(), c);
    /* Not the global default context a host may have configured. */
    ck_assert_ptr_ne(c, OSSL_LIB_CTX_get0_global_default());
    md = EVP_MD_fetch(c, "SHA2-256", NULL);
    ck_assert_ptr_nonnull(md);
    EVP_MD_free(md);

    ksp_ossl_ctx_free();
    c = ksp_ossl_ctx();
    ck_assert_ptr_nonnull(c);
    md = EVP_MD_fetch(c, "SHA2-256", NULL);
    ck_assert_ptr_nonnull(md);
    EVP_MD_free(md);
}
END_TEST

static void *ctx_thread(void *arg)
{
    (void)arg;
    return ksp_ossl_ctx();
}

START_TEST(test_ctx_concurrent_create)
{
    pthread_t th[8];
    void *got[8];

    ksp_ossl_ctx_free();
    for (int i = 0; i < 8; i++) {
        ck_assert_int_eq(pthread_create(&th[i], NULL, ctx_thread, NULL), 0);
    }
    for (int i = 0; i < 8; i++) {
        ck_assert_int_eq(pthread_join(th[i], &got[i]), 0);
        ck_assert_ptr_nonnull(got[i]);
        ck_assert_ptr_eq(got[i], got[0]); /* one context, created once */
    }
    ck_assert_ptr_eq(ksp_ossl_ctx(), got[0]);
}
END_TEST

START_TEST(test_ctx_forget)
{
    OSSL_LIB_CTX *old = ksp_ossl_ctx();
    uint8_t a[32];

    ck_assert_ptr_nonnull(old);
    ksp_ossl_ctx_forget(); /* as a forked child does: old is leaked, not freed */
    ck_assert_ptr_ne(ksp_ossl_ctx(), old);
    ck_assert_ptr_nonnull(ksp_ossl_ctx());
    ck_assert_int_eq(ksp_ossl_random(a, sizeof(a)), 1);
    /* No other thread uses it here, so the test frees what the module leaks
     * on purpose, keeping leak checkers quiet: the module's reference to the
     * default provider (reached by loading it once more), then the context. */
    OSSL_PROVIDER *prov = OSSL_PROVIDER_load(old, "default");
    ck_assert_ptr_nonnull(prov);
    ck_assert_int_eq(OSSL_PROVIDER_unload(prov), 1);
    ck_assert_int_eq(OSSL_PROVIDER_unload(prov), 1);
    OSSL_LIB_CTX_free(old);
}
END_TEST

START_TEST(test_random)
{
    uint8_t a[32];
    uint8_t b[32];

    memset(a, 0, sizeof(a));
    memset(b, 0, sizeof(b));
    ck_assert_rv(ksp_random(a, sizeof(a)), CKR_OK);
    ck_assert_rv(ksp_random(b, sizeof(b)), CKR_OK);
    ck_assert_mem_ne(a, b, sizeof(a));
    ck_assert_rv(ksp_random(a, 0), CKR_OK);
}
END_TEST

/* ---- digests ---- */

static const struct {
    CK_MECHANISM_TYPE mech;
    const char *abc; /* FIPS 180-4 example "abc" */
} vectors[] = {
    {CKM_SHA_1, "a9993e364706816aba3e25717850c26c9cd0d89d"},
    {CKM_SHA224, "23097d223405d8228642a477bda255b32aadbce4bda0b3f7e36c9da7"},
    {CKM_SHA256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
    {CKM_SHA384,
     "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed8086072ba1e7cc2358"
     "baeca134c825a7"},
    {CKM_SHA512,
     "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a2192992a274fc1a836"
     "ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"},
};

START_TEST(test_digest_vectors)
{
    uint8_t want[64];
    uint8_t got[64];
    size_t n = unhex(vectors[_i].abc, want);
    struct ksp_digest *d = NULL;

    ck_assert_uint_eq(ksp_hash_len(vectors[_i].mech), n);
    ck_assert_rv(ksp_digest(vectors[_i].mech, (const uint8_t *)"abc", 3, got), CKR_OK);
    ck_assert_mem_eq(got, want, n);

    /* Multi-part, with an empty update in the middle. */
    memset(got, 0, sizeof(got));
    ck_assert_rv(ksp_digest_new(vectors[_i].mech, &d), CKR_OK);
    ck_assert_rv(ksp_digest_update(d, (const uint8_t *)"a", 1), CKR_OK);
    ck_assert_rv(ksp_digest_update(d, NULL, 0), CKR_OK);
    ck_assert_rv(ksp_digest_update(d, (const uint8_t *)"bc", 2), CKR_OK);
    ck_assert_rv(ksp_digest_final(d, got), CKR_OK);
    ksp_digest_free(d);
    ck_assert_mem_eq(got, want, n);
}
END_TEST

START_TEST(test_digest_unknown)
{
    struct ksp_digest *d = NULL;
    uint8_t out[64];

    ck_assert_uint_eq(ksp_hash_len(CKM_MD5), 0);
    ck_assert_uint_eq(ksp_hash_len(CKM_SHA256_RSA_PKCS), 0);
    ck_assert_rv(ksp_digest_new(CKM_MD5, &d), CKR_MECHANISM_INVALID);
    ck_assert_ptr_null(d);
    ck_assert_rv(ksp_digest(0x12345, (const uint8_t *)"x", 1, out), CKR_MECHANISM_INVALID);
}
END_TEST

/* ---- RSA encodings ---- */

START_TEST(test_digestinfo_sha256)
{
    uint8_t digest[32];
    uint8_t want[51];
    uint8_t out[19 + 64];
    size_t len = 0;

    /* RFC 8017 §9.2 note 1. */
    unhex("3031300d060960864801650304020105000420", want);
    for (size_t i = 0; i < 32; i++) {
        digest[i] = (uint8_t)i;
        want[19 + i] = (uint8_t)i;
    }
    ck_assert_rv(ksp_digestinfo(CKM_SHA256, digest, 32, out, &len), CKR_OK);
    ck_assert_uint_eq(len, 51);
    ck_assert_mem_eq(out, want, 51);

    ck_assert_rv(ksp_digestinfo(CKM_SHA256, digest, 31, out, &len), CKR_DATA_LEN_RANGE);
    ck_assert_rv(ksp_digestinfo(CKM_MD5, digest, 16, out, &len), CKR_MECHANISM_INVALID);
    ck_assert_rv(ksp_digestinfo(CKM_SHA_1, digest, 20, out, &len), CKR_OK);
    ck_assert_uint_eq(len, 35);
    uint8_t d64[64];
    memset(d64, 0xEE, sizeof(d64));
    ck_assert_rv(ksp_digestinfo(CKM_SHA512, d64, 64, out, &len), CKR_OK);
    ck_assert_mem_eq(out + 19, d64, 64);
    ck_assert_uint_eq(len, 83);
    ck_assert_uint_eq(out[18], 0x40);
}
END_TEST

START_TEST(test_emsa_pkcs1_shape)
{
    uint8_t t[51];
    uint8_t em[256];

    memset(t, 0xA5, sizeof(t));
    ck_assert_rv(ksp_emsa_pkcs1(t, sizeof(t), em, sizeof(em)), CKR_OK);
    ck_assert_uint_eq(em[0], 0x00);
    ck_assert_uint_eq(em[1], 0x01);
    for (size_t i = 2; i < 256 - 51 - 1; i++) {
        ck_assert_uint_eq(em[i], 0xFF);
    }
    ck_assert_uint_eq(em[256 - 51 - 1], 0x00);
    ck_assert_mem_eq(em + 256 - 51, t, 51);
    ck_assert(ksp_rsa_raw_sign_input_ok(em, 256, 2048));

    /* RFC 8017 §9.2: at most k - 11 bytes (eight bytes of padding). */
    uint8_t big[246];
    memset(big, 1, sizeof(big));
    ck_assert_rv(ksp_emsa_pkcs1(big, 245, em, 256), CKR_OK);
    ck_assert_rv(ksp_emsa_pkcs1(big, 246, em, 256), CKR_DATA_LEN_RANGE);
    ck_assert_rv(ksp_emsa_pkcs1(big, 0, em, 10), CKR_DATA_LEN_RANGE);
}
END_TEST

/* PSS-encode with our code, raw-sign with OpenSSL, verify with OpenSSL's own
 * PSS at salt = hash length, and with ksp_pub_verify. */
static void pss_case(EVP_PKEY *pk, CK_MECHANISM_TYPE hash, CK_MECHANISM_TYPE mgf,
                     const char *md_name, const char *mgf_name)
{
    size_t bits = (size_t)EVP_PKEY_get_bits(pk);
    size_t k = (bits + 7) / 8;
    size_t hlen = ksp_hash_len(hash);
    uint8_t mhash[64];
    uint8_t em[512];
    uint8_t sig[512];
    EVP_PKEY_CTX *ctx = NULL;
    struct ksp_pubkey pub = pub_of(pk);
    struct ksp_pubop op = {.kind = KSP_PUB_RSA_PSS, .hash = hash, .mgf_hash = mgf};

    ck_assert_rv(ksp_digest(hash, (const uint8_t *)"pss message", 11, mhash), CKR_OK);
    ck_assert_rv(ksp_emsa_pss(hash, mgf, hlen, mhash, hlen, bits, em), CKR_OK);
    /* The raw-RSA guard accepts exactly the PSS form ksp11 produces. */
    ck_assert(ksp_rsa_raw_sign_input_ok(em, k, bits) == (mgf == hash));
    ossl_rsa_raw(pk, em, k, sig);

    ctx = EVP_PKEY_CTX_new(pk, NULL);
    ck_assert_int_eq(EVP_PKEY_verify_init(ctx), 1);
    ck_assert_int_eq(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PSS_PADDING), 1);
    ck_assert_int_eq(EVP_PKEY_CTX_set_signature_md(ctx, EVP_get_digestbyname(md_name)), 1);
    ck_assert_int_eq(EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_get_digestbyname(mgf_name)), 1);
    ck_assert_int_eq(EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, (int)hlen), 1);
    ck_assert_int_eq(EVP_PKEY_verify(ctx, sig, k, mhash, hlen), 1);
    EVP_PKEY_CTX_free(ctx);

    op.salt_len = hlen;
    ck_assert_rv(ksp_pub_verify(&pub, &op, mhash, hlen, sig, k), CKR_OK);
    op.salt_len = 0; /* the salt really is hLen long */
    ck_assert_rv(ksp_pub_verify(&pub, &op, mhash, hlen, sig, k), CKR_SIGNATURE_INVALID);
    op.salt_len = hlen;
    mhash[0] ^= 1;
    ck_assert_rv(ksp_pub_verify(&pub, &op, mhash, hlen, sig, k), CKR_SIGNATURE_INVALID);
    pub_free(&pub);
}

START_TEST(test_emsa_pss_sha256)
{
    pss_case(rsa2048, CKM_SHA256, CKM_SHA256, "SHA256", "SHA256");
}
END_TEST

START_TEST(test_emsa_pss_mixed_mgf)
{
    pss_case(rsa2048, CKM_SHA384, CKM_SHA_1, "SHA384", "SHA1");
    pss_case(rsa2048, CKM_SHA512, CKM_SHA512, "SHA512", "SHA512");
}
END_TEST

START_TEST(test_emsa_pss_odd_modulus)
{
    /* 1025 bits: emLen = 128 < k = 129, so the block starts with 00. */
    pss_case(rsa1025, CKM_SHA256, CKM_SHA256, "SHA256", "SHA256");
    pss_case(rsa1025, CKM_SHA_1, CKM_SHA224, "SHA1", "SHA224");
}
END_TEST

START_TEST(test_emsa_pss_errors)
{
    uint8_t mhash[64] = {0};
    uint8_t em[256];

    ck_assert_rv(ksp_emsa_pss(CKM_SHA256, CKM_SHA256, 32, mhash, 31, 2048, em), CKR_DATA_LEN_RANGE);
    ck_assert_rv(ksp_emsa_pss(CKM_MD5, CKM_SHA256, 16, mhash, 16, 2048, em),
                 CKR_MECHANISM_PARAM_INVALID);
    ck_assert_rv(ksp_emsa_pss(CKM_SHA256, 0, 32, mhash, 32, 2048, em), CKR_MECHANISM_PARAM_INVALID);
    /* emLen = 256, hLen = 32: the largest salt is 256 - 32 - 2 = 222. */
    ck_assert_rv(ksp_emsa_pss(CKM_SHA256, CKM_SHA256, 222, mhash, 32, 2048, em), CKR_OK);
    /* Max-salt PSS leaves no zero padding to check: the guard refuses it. */
    ck_assert(!ksp_rsa_raw_sign_input_ok(em, 256, 2048));
    ck_assert_rv(ksp_emsa_pss(CKM_SHA256, CKM_SHA256, 223, mhash, 32, 2048, em),
                 CKR_KEY_SIZE_RANGE);
    /* Salt 0 is deterministic. */
    uint8_t em2[256];
    ck_assert_rv(ksp_emsa_pss(CKM_SHA256, CKM_SHA256, 0, mhash, 32, 2048, em), CKR_OK);
    ck_assert_rv(ksp_emsa_pss(CKM_SHA256, CKM_SHA256, 0, mhash, 32, 2048, em2), CKR_OK);
    ck_assert_mem_eq(em, em2, 256);
}
END_TEST

START_TEST(test_guard)
{
    uint8_t b[256];
    uint8_t t[35];

    /* PKCS#1 type 1. */
    memset(t, 7, sizeof(t));
    ck_assert_rv(ksp_emsa_pkcs1(t, sizeof(t), b, 256), CKR_OK);
    ck_assert(ksp_rsa_raw_sign_input_ok(b, 256, 2048));
    ck_assert(!ksp_rsa_raw_sign_input_ok(b, 256, 2056)); /* k must match the modulus */
    b[5] = 0xFE;                                         /* broken padding run */
    ck_assert(!ksp_rsa_raw_sign_input_ok(b, 256, 2048));

    /* Only seven FF bytes is not a PKCS#1 block. */
    memset(b, 0x33, sizeof(b));
    b[0] = 0x00;
    b[1] = 0x01;
    memset(b + 2, 0xFF, 7);
    b[9] = 0x00;
    ck_assert(!ksp_rsa_raw_sign_input_ok(b, 256, 2048));

    /* A PKCS#1 type 2 (encryption) block, as a raw decryption yields. */
    b[0] = 0x00;
    b[1] = 0x02;
    for (size_t i = 2; i < 240; i++) {
        b[i] = (uint8_t)(i * 7 + 1) == 0 ? 1 : (uint8_t)(i * 7 + 1);
    }
    b[240] = 0x00;
    memcpy(b + 241, "a secret message", 15);
    ck_assert(!ksp_rsa_raw_sign_input_ok(b, 256, 2048));

    /* Random blocks: a ciphertext is not a signature input. */
    for (int i = 0; i < 64; i++) {
        ck_assert_rv(ksp_random(b, sizeof(b)), CKR_OK);
        if (b[255] == 0xBC) {
            b[255] = 0xBD;
        }
        ck_assert(!ksp_rsa_raw_sign_input_ok(b, 256, 2048));
    }
    /* Trailer 0xBC but the top bit set (above emBits = 2047). */
    memset(b, 0x80, sizeof(b));
    b[255] = 0xBC;
    ck_assert(!ksp_rsa_raw_sign_input_ok(b, 256, 2048));
    /* Top bits clear and trailer 0xBC is only the shape of PSS: a blinded
     * ciphertext can be made to look like that, so it is refused. */
    b[0] = 0x7F;
    ck_assert(!ksp_rsa_raw_sign_input_ok(b, 256, 2048));
    for (int i = 0; i < 64; i++) {
        ck_assert_rv(ksp_random(b, sizeof(b)), CKR_OK);
        b[0] &= 0x7F;
        b[255] = 0xBC;
        ck_assert(!ksp_rsa_raw_sign_input_ok(b, 256, 2048));
    }
    /* A real PSS encoding (salt = hash length) passes for every hash. */
    static const CK_MECHANISM_TYPE hs[] = {CKM_SHA_1, CKM_SHA224, CKM_SHA256, CKM_SHA384,
                                           CKM_SHA512};
    uint8_t mh[64] = {1, 2, 3};
    for (size_t i = 0; i < 5; i++) {
        size_t hl = ksp_hash_len(hs[i]);
        ck_assert_rv(ksp_emsa_pss(hs[i], hs[i], hl, mh, hl, 2048, b), CKR_OK);
        ck_assert(ksp_rsa_raw_sign_input_ok(b, 256, 2048));
        b[100] ^= 0x01; /* one flipped bit in the masked padding */
        ck_assert(!ksp_rsa_raw_sign_input_ok(b, 256, 2048));
    }
    /* For 1025 bits the first byte must be zero. */
    uint8_t c[129];
    ck_assert_rv(ksp_emsa_pss(CKM_SHA256, CKM_SHA256, 32, mh, 32, 1025, c), CKR_OK);
    ck_assert(ksp_rsa_raw_sign_input_ok(c, 129, 1025));
    c[0] = 0x01;
    ck_assert(!ksp_rsa_raw_sign_input_ok(c, 129, 1025));
    /* PKCS#1 with a T longer than any DigestInfo is not a signature block. */
    uint8_t tl[100];
    memset(tl, 9, sizeof(tl));
    ck_assert_rv(ksp_emsa_pkcs1(tl, sizeof(tl), b, 256), CKR_OK);
    ck_assert(!ksp_rsa_raw_sign_input_ok(b, 256, 2048));
    ck_assert(!ksp_rsa_raw_sign_input_ok(NULL, 256, 2048));
}
END_TEST

START_TEST(test_guard_accepts_every_pss)
{
    uint8_t mhash[32] = {1, 2, 3};
    uint8_t em[256];

    for (int i = 0; i < 200; i++) {
        mhash[5] = (uint8_t)i;
        ck_assert_rv(ksp_emsa_pss(CKM_SHA256, CKM_SHA256, 32, mhash, 32, 2048, em), CKR_OK);
        ck_assert(ksp_rsa_raw_sign_input_ok(em, 256, 2048));
    }
}
END_TEST

/* ---- public-key operations ---- */

START_TEST(test_verify_rsa_pkcs1)
{
    struct ksp_pubkey pub = pub_of(rsa2048);
    struct ksp_pubop op = {.kind = KSP_PUB_RSA_PKCS1};
    const char *msg = "signed by OpenSSL";
    uint8_t sig[256];
    uint8_t d[32];
    uint8_t di[83];
    size_t sig_len = sizeof(sig);
    size_t di_len = 0;
    EVP_MD_CTX *mctx = EVP_MD_CTX_new();

    ck_assert_int_eq(EVP_DigestSignInit(mctx, NULL, EVP_sha256(), NULL, rsa2048), 1);
    ck_assert_int_eq(EVP_DigestSign(mctx, sig, &sig_len, (const uint8_t *)msg, strlen(msg)), 1);
    EVP_MD_CTX_free(mctx);
    ck_assert_uint_eq(sig_len, 256);

    ck_assert_rv(ksp_digest(CKM_SHA256, (const uint8_t *)msg, strlen(msg), d), CKR_OK);
    ck_assert_rv(ksp_digestinfo(CKM_SHA256, d, 32, di, &di_len), CKR_OK);
    ck_assert_rv(ksp_pub_verify(&pub, &op, di, di_len, sig, 256), CKR_OK);
    /* The bare digest is not what was signed. */
    ck_assert_rv(ksp_pub_verify(&pub, &op, d, 32, sig, 256), CKR_SIGNATURE_INVALID);
    ck_assert_rv(ksp_pub_verify(&pub, &op, di, di_len, sig, 255), CKR_SIGNATURE_LEN_RANGE);
    ck_assert_rv(ksp_pub_verify(&pub, &op, di, di_len, sig, 257), CKR_SIGNATURE_LEN_RANGE);
    sig[100] ^= 0x40;
    ck_assert_rv(ksp_pub_verify(&pub, &op, di, di_len, sig, 256), CKR_SIGNATURE_INVALID);
    /* An all-FF "signature" is >= n. */
    memset(sig, 0xFF, sizeof(sig));
    ck_assert_rv(ksp_pub_verify(&pub, &op, di, di_len, sig, 256), CKR_SIGNATURE_INVALID);
    op.kind = KSP_PUB_ECDSA;
    ck_assert_rv(ksp_pub_verify(&pub, &op, d, 32, sig, 64), CKR_KEY_TYPE_INCONSISTENT);
    pub_free(&pub);
}
END_TEST

START_TEST(test_verify_rsa_raw)
{
    struct ksp_pubkey pub = pub_of(rsa2048);
    struct ksp_pubop op = {.kind = KSP_PUB_RSA_RAW};
    uint8_t block[256];
    uint8_t sig[256];

    /* CKM_RSA_X_509: short data is compared left-padded with zeros. */
    memset(block, 0, sizeof(block));
    memcpy(block + 256 - 5, "hello", 5);
    ossl_rsa_raw(rsa2048, block, 256, sig);
    ck_assert_rv(ksp_pub_verify(&pub, &op, (const uint8_t *)"hello", 5, sig, 256), CKR_OK);
    ck_assert_rv(ksp_pub_verify(&pub, &op, block, 256, sig, 256), CKR_OK);
    ck_assert_rv(ksp_pub_verify(&pub, &op, (const uint8_t *)"hellp", 5, sig, 256),
                 CKR_SIGNATURE_INVALID);
    ck_assert_rv(ksp_pub_verify(&pub, &op, block, 256, sig, 128), CKR_SIGNATURE_LEN_RANGE);
    ck_assert_rv(ksp_pub_verify(&pub, &op, block, 257, sig, 256), CKR_DATA_LEN_RANGE);
    /* Left-padding means zeros: a block with a non-zero byte in front of
     * "hello" is not a signature of "hello". */
    block[10] = 0x01;
    ossl_rsa_raw(rsa2048, block, 256, sig);
    ck_assert_rv(ksp_pub_verify(&pub, &op, (const uint8_t *)"hello", 5, sig, 256),
                 CKR_SIGNATURE_INVALID);
    ck_assert_rv(ksp_pub_verify(&pub, &op, block, 256, sig, 256), CKR_OK);
    pub_free(&pub);
}
END_TEST

/* DER ECDSA-Sig-Value -> r||s, done here with OpenSSL for an independent check. */
static size_t der_to_rs(const uint8_t *der, size_t len, size_t fb, uint8_t *out)
{
    const unsigned char *p = der;
    ECDSA_SIG *s = d2i_ECDSA_SIG(NULL, &p, (long)len);
    const BIGNUM *r = NULL;
    const BIGNUM *sv = NULL;

    ck_assert_ptr_nonnull(s);
    ECDSA_SIG_get0(s, &r, &sv);
    ck_assert_int_eq(BN_bn2binpad(r, out, (int)fb), (int)fb);
    ck_assert_int_eq(BN_bn2binpad(sv, out + fb, (int)fb), (int)fb);
    ECDSA_SIG_free(s);
    return 2 * fb;
}

static void ecdsa_case(EVP_PKEY *pk, size_t fb, size_t dlen)
{
    struct ksp_pubkey pub = pub_of(pk);
    struct ksp_pubop op = {.kind = KSP_PUB_ECDSA};
    uint8_t digest[64];
    uint8_t der[160];
    uint8_t rs[132];
    size_t der_len = sizeof(der);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pk, NULL);

    memset(digest, 0x5A, sizeof(digest));
    ck_assert_int_eq(EVP_PKEY_sign_init(ctx), 1);
    ck_assert_int_eq(EVP_PKEY_sign(ctx, der, &der_len, digest, dlen), 1);
    EVP_PKEY_CTX_free(ctx);
    der_to_rs(der, der_len, fb, rs);

    ck_assert_rv(ksp_pub_verify(&pub, &op, digest, dlen, rs, 2 * fb), CKR_OK);
    ck_assert_rv(ksp_pub_verify(&pub, &op, digest, dlen, rs, 2 * fb - 1), CKR_SIGNATURE_LEN_RANGE);
    ck_assert_rv(ksp_pub_verify(&pub, &op, digest, dlen, der, der_len),
                 der_len == 2 * fb ? CKR_SIGNATURE_INVALID : CKR_SIGNATURE_LEN_RANGE);
    digest[0] ^= 1;
    ck_assert_rv(ksp_pub_verify(&pub, &op, digest, dlen, rs, 2 * fb), CKR_SIGNATURE_INVALID);
    memset(rs, 0, sizeof(rs));
    ck_assert_rv(ksp_pub_verify(&pub, &op, digest, dlen, rs, 2 * fb), CKR_SIGNATURE_INVALID);
    pub_free(&pub);
}

START_TEST(test_verify_ecdsa)
{
    ecdsa_case(ecp256, 32, 32);
    ecdsa_case(ecp256, 32, 20); /* any digest length */
    ecdsa_case(ecp256, 32, 64);
    ecdsa_case(ecp521, 66, 64);
}
END_TEST

/* Decrypt with OpenSSL (default context) what ksp_pub_encrypt produced. */
static size_t ossl_decrypt(EVP_PKEY *pk, int pad, const char *md, const uint8_t *label,
                           size_t label_len, const uint8_t *in, size_t in_len, uint8_t *out)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pk, NULL);
    size_t len = 512;

    ck_assert_int_eq(EVP_PKEY_decrypt_init(ctx), 1);
    ck_assert_int_eq(EVP_PKEY_CTX_set_rsa_padding(ctx, pad), 1);
    if (md != NULL) {
        ck_assert_int_eq(EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_get_digestbyname(md)), 1);
        ck_assert_int_eq(EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_get_digestbyname(md)), 1);
    }
    if (label_len > 0) {
        ck_assert_int_eq(
            EVP_PKEY_CTX_set0_rsa_oaep_label(ctx, OPENSSL_memdup(label, label_len), (int)label_len),
            1);
    }
    ck_assert_int_eq(EVP_PKEY_decrypt(ctx, out, &len, in, in_len), 1);
    EVP_PKEY_CTX_free(ctx);
    return len;
}

START_TEST(test_encrypt)
{
    struct ksp_pubkey pub = pub_of(rsa2048);
    struct ksp_pubop op = {.kind = KSP_PUB_RSA_OAEP, .hash = CKM_SHA256, .mgf_hash = CKM_SHA256};
    const uint8_t label[] = "label";
    uint8_t ct[256];
    uint8_t pt[512];
    uint8_t big[256];
    size_t len = 0;

    /* Length conventions (PKCS#11 3.0 §5.2). */
    ck_assert_rv(ksp_pub_encrypt(&pub, &op, (const uint8_t *)"m", 1, NULL, &len), CKR_OK);
    ck_assert_uint_eq(len, 256);
    len = 255;
    ck_assert_rv(ksp_pub_encrypt(&pub, &op, (const uint8_t *)"m", 1, ct, &len),
                 CKR_BUFFER_TOO_SMALL);
    ck_assert_uint_eq(len, 256);

    /* OAEP with a label. */
    op.label = label;
    op.label_len = 5;
    len = sizeof(ct);
    ck_assert_rv(ksp_pub_encrypt(&pub, &op, (const uint8_t *)"oaep secret", 11, ct, &len), CKR_OK);
    ck_assert_uint_eq(len, 256);
    ck_assert_uint_eq(
        ossl_decrypt(rsa2048, RSA_PKCS1_OAEP_PADDING, "SHA256", label, 5, ct, len, pt), 11);
    ck_assert_mem_eq(pt, "oaep secret", 11);
    /* RFC 8017 §7.1.1: mLen <= k - 2hLen - 2 = 190. */
    memset(big, 0x42, sizeof(big));
    len = sizeof(ct);
    ck_assert_rv(ksp_pub_encrypt(&pub, &op, big, 190, ct, &len), CKR_OK);
    len = sizeof(ct);
    ck_assert_rv(ksp_pub_encrypt(&pub, &op, big, 191, ct, &len), CKR_DATA_LEN_RANGE);
    op.hash = CKM_MD5;
    ck_assert_rv(ksp_pub_encrypt(&pub, &op, big, 1, ct, &len), CKR_MECHANISM_PARAM_INVALID);

    /* PKCS#1 v1.5. */
    op.kind = KSP_PUB_RSA_PKCS1;
    len = sizeof(ct);
    ck_assert_rv(ksp_pub_encrypt(&pub, &op, (const uint8_t *)"v15", 3, ct, &len), CKR_OK);
    ck_assert_uint_eq(ossl_decrypt(rsa2048, RSA_PKCS1_PADDING, NULL, NULL, 0, ct, len, pt), 3);
    ck_assert_mem_eq(pt, "v15", 3);
    len = sizeof(ct);
    ck_assert_rv(ksp_pub_encrypt(&pub, &op, big, 245, ct, &len), CKR_OK);
    ck_assert_rv(ksp_pub_encrypt(&pub, &op, big, 246, ct, &len), CKR_DATA_LEN_RANGE);

    /* Raw: input left-padded to k bytes and below n. */
    op.kind = KSP_PUB_RSA_RAW;
    len = sizeof(ct);
    ck_assert_rv(ksp_pub_encrypt(&pub, &op, (const uint8_t *)"raw", 3, ct, &len), CKR_OK);
    ck_assert_uint_eq(ossl_decrypt(rsa2048, RSA_NO_PADDING, NULL, NULL, 0, ct, len, pt), 256);
    ck_assert_mem_eq(pt + 253, "raw", 3);
    for (size_t i = 0; i < 253; i++) {
        ck_assert_uint_eq(pt[i], 0);
    }
    memset(big, 0xFF, sizeof(big));
    len = sizeof(ct);
    ck_assert_rv(ksp_pub_encrypt(&pub, &op, big, 256, ct, &len), CKR_DATA_LEN_RANGE);
    ck_assert_rv(ksp_pub_encrypt(&pub, &op, big, 257, ct, &len), CKR_DATA_LEN_RANGE);

    op.kind = KSP_PUB_RSA_PSS;
    ck_assert_rv(ksp_pub_encrypt(&pub, &op, big, 1, ct, &len), CKR_MECHANISM_INVALID);
    pub_free(&pub);
}
END_TEST

START_TEST(test_pub_check_and_bits)
{
    struct ksp_pubkey pub = pub_of(rsa2048);
    struct ksp_pubkey ec = pub_of(ecp256);
    struct ksp_pubkey ec521 = pub_of(ecp521);
    struct ksp_pubkey small = pub_of(rsa1025);
    uint8_t e_even[] = {0x01, 0x00, 0x00};
    uint8_t e_one[] = {0x01};
    uint8_t *saved = NULL;
    size_t saved_len = 0;

    ck_assert_rv(ksp_pub_check(&pub), CKR_OK);
    ck_assert_uint_eq(ksp_pub_bits(&pub), 2048);
    ck_assert_rv(ksp_pub_check(&small), CKR_OK); /* 1025 >= 1024 */
    ck_assert_uint_eq(ksp_pub_bits(&small), 1025);

    pub.modulus.p[pub.modulus.len - 1] ^= 1; /* even modulus */
    ck_assert_rv(ksp_pub_check(&pub), CKR_ATTRIBUTE_VALUE_INVALID);
    pub.modulus.p[pub.modulus.len - 1] ^= 1;
    saved = pub.pub_exp.p;
    saved_len = pub.pub_exp.len;
    pub.pub_exp.p = e_even;
    pub.pub_exp.len = sizeof(e_even);
    ck_assert_rv(ksp_pub_check(&pub), CKR_ATTRIBUTE_VALUE_INVALID);
    pub.pub_exp.p = e_one;
    pub.pub_exp.len = sizeof(e_one);
    ck_assert_rv(ksp_pub_check(&pub), CKR_ATTRIBUTE_VALUE_INVALID);
    pub.pub_exp.p = saved;
    pub.pub_exp.len = saved_len;
    /* 1016 bits: too short. */
    pub.modulus.len = 127;
    ck_assert_rv(ksp_pub_check(&pub), CKR_ATTRIBUTE_VALUE_INVALID);
    pub.modulus.len = 256;
    ck_assert_rv(ksp_pub_check(&pub), CKR_OK);

    ck_assert_rv(ksp_pub_check(&ec), CKR_OK);
    ck_assert_uint_eq(ksp_pub_bits(&ec), 256);
    ck_assert_rv(ksp_pub_check(&ec521), CKR_OK);
    ck_assert_uint_eq(ksp_pub_bits(&ec521), 521);
    ec.ec_point.p[64] ^= 1; /* Y changed: off the curve */
    ck_assert_rv(ksp_pub_check(&ec), CKR_ATTRIBUTE_VALUE_INVALID);
    ec.ec_point.p[64] ^= 1;
    ec.ec_point.p[0] = 0x02; /* not uncompressed */
    ck_assert_rv(ksp_pub_check(&ec), CKR_ATTRIBUTE_VALUE_INVALID);
    ec.ec_point.p[0] = 0x04;
    ec.curve = KSP_CURVE_P384; /* length does not match the curve */
    ck_assert_rv(ksp_pub_check(&ec), CKR_ATTRIBUTE_VALUE_INVALID);
    pub_free(&pub);
    pub_free(&ec);
    pub_free(&ec521);
    pub_free(&small);
}
END_TEST

/* ---- EC encodings ---- */

START_TEST(test_ec_params)
{
    static const struct {
        const char *hex;
        CK_RV rv;
        enum ksp_curve curve;
    } cases[] = {
        {"06082a8648ce3d030107", CKR_OK, KSP_CURVE_P256},
        {"06052b81040022", CKR_OK, KSP_CURVE_P384},
        {"06052b81040023", CKR_OK, KSP_CURVE_P521},
        {"06052b8104000a", CKR_CURVE_NOT_SUPPORTED, 0},             /* secp256k1 */
        {"06092b2403030208010107", CKR_CURVE_NOT_SUPPORTED, 0},     /* brainpoolP256r1 */
        {"3003020101", CKR_CURVE_NOT_SUPPORTED, 0},                 /* ecParameters */
        {"0500", CKR_CURVE_NOT_SUPPORTED, 0},                       /* implicitlyCA */
        {"130a7072696d6532353676", CKR_ATTRIBUTE_VALUE_INVALID, 0}, /* "prime256v" string */
        {"06082a8648ce3d0301", CKR_ATTRIBUTE_VALUE_INVALID, 0},     /* truncated */
        {"06082a8648ce3d03010700", CKR_ATTRIBUTE_VALUE_INVALID, 0}, /* trailing byte */
        {"0600", CKR_ATTRIBUTE_VALUE_INVALID, 0},
        {"ff", CKR_ATTRIBUTE_VALUE_INVALID, 0},
        {"", CKR_ATTRIBUTE_VALUE_INVALID, 0},
    };
    uint8_t der[32];

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        size_t n = unhex(cases[i].hex, der);
        enum ksp_curve c = KSP_CURVE_NONE;

        ck_assert_msg(ksp_ec_params_to_curve(der, n, &c) == cases[i].rv, "case %s", cases[i].hex);
        if (cases[i].rv == CKR_OK) {
            size_t len = 0;
            const uint8_t *p = ksp_ec_curve_params(c, &len);

            ck_assert_int_eq(c, cases[i].curve);
            ck_assert_uint_eq(len, n);
            ck_assert_mem_eq(p, der, n);
        }
    }
    ck_assert_uint_eq(ksp_ec_field_bytes(KSP_CURVE_P256), 32);
    ck_assert_uint_eq(ksp_ec_field_bytes(KSP_CURVE_P384), 48);
    ck_assert_uint_eq(ksp_ec_field_bytes(KSP_CURVE_P521), 66);
    ck_assert_uint_eq(ksp_ec_field_bytes(KSP_CURVE_NONE), 0);
}
END_TEST

START_TEST(test_ec_point_wrap_unwrap)
{
    uint8_t raw[133];
    uint8_t der[140];
    struct ksp_buf w = {NULL, 0};
    struct ksp_buf r = {NULL, 0};

    memset(raw, 0x3C, sizeof(raw));
    raw[0] = 0x04;
    /* P-256: 04 41 || point. */
    ck_assert_rv(ksp_ec_point_wrap(raw, 65, &w), CKR_OK);
    ck_assert_uint_eq(w.len, 67);
    ck_assert_uint_eq(w.p[0], 0x04);
    ck_assert_uint_eq(w.p[1], 0x41);
    ck_assert_mem_eq(w.p + 2, raw, 65);
    ck_assert_rv(ksp_ec_point_unwrap(KSP_CURVE_P256, w.p, w.len, &r), CKR_OK);
    ck_assert_uint_eq(r.len, 65);
    ck_assert_mem_eq(r.p, raw, 65);
    ksp_buf_free(&r);
    /* The raw form is accepted too (decided by the exact length). */
    ck_assert_rv(ksp_ec_point_unwrap(KSP_CURVE_P256, raw, 65, &r), CKR_OK);
    ck_assert_uint_eq(r.len, 65);
    ck_assert_mem_eq(r.p, raw, 65);
    ksp_buf_free(&r);
    /* Wrong curve for either form. */
    ck_assert_rv(ksp_ec_point_unwrap(KSP_CURVE_P384, w.p, w.len, &r), CKR_ATTRIBUTE_VALUE_INVALID);
    ck_assert_rv(ksp_ec_point_unwrap(KSP_CURVE_P384, raw, 65, &r), CKR_ATTRIBUTE_VALUE_INVALID);
    ksp_buf_free(&w);

    /* P-521: 133 bytes need the long length form 81 85. */
    ck_assert_rv(ksp_ec_point_wrap(raw, 133, &w), CKR_OK);
    ck_assert_uint_eq(w.len, 136);
    ck_assert_uint_eq(w.p[1], 0x81);
    ck_assert_uint_eq(w.p[2], 0x85);
    ck_assert_rv(ksp_ec_point_unwrap(KSP_CURVE_P521, w.p, w.len, &r), CKR_OK);
    ck_assert_mem_eq(r.p, raw, 133);
    ksp_buf_free(&r);
    ksp_buf_free(&w);

    /* Compressed points, raw or wrapped. */
    raw[0] = 0x02;
    ck_assert_rv(ksp_ec_point_unwrap(KSP_CURVE_P256, raw, 33, &r), CKR_ATTRIBUTE_VALUE_INVALID);
    der[0] = 0x04;
    der[1] = 33;
    memcpy(der + 2, raw, 33);
    ck_assert_rv(ksp_ec_point_unwrap(KSP_CURVE_P256, der, 35, &r), CKR_ATTRIBUTE_VALUE_INVALID);
    /* Wrapped, but the inner point is not uncompressed. */
    raw[0] = 0x04;
    ck_assert_rv(ksp_ec_point_wrap(raw, 65, &w), CKR_OK);
    w.p[2] = 0x06;
    ck_assert_rv(ksp_ec_point_unwrap(KSP_CURVE_P256, w.p, w.len, &r), CKR_ATTRIBUTE_VALUE_INVALID);
    w.p[2] = 0x04;
    w.p[1] = 0x42; /* length says one more byte than present */
    ck_assert_rv(ksp_ec_point_unwrap(KSP_CURVE_P256, w.p, w.len, &r), CKR_ATTRIBUTE_VALUE_INVALID);
    ck_assert_rv(ksp_ec_point_unwrap(KSP_CURVE_P256, w.p, 66, &r), CKR_ATTRIBUTE_VALUE_INVALID);
    ck_assert_rv(ksp_ec_point_unwrap(KSP_CURVE_NONE, raw, 65, &r), CKR_CURVE_NOT_SUPPORTED);
    ck_assert_ptr_null(r.p);
    ksp_buf_free(&w);
}
END_TEST

/* ---- ECDH KDF ---- */

START_TEST(test_kdf_null)
{
    uint8_t z[32];
    uint8_t out[32];

    for (size_t i = 0; i < sizeof(z); i++) {
        z[i] = (uint8_t)(i + 1);
    }
    ck_assert_rv(ksp_ecdh_kdf(CKD_NULL, z, 32, NULL, 0, out, 32), CKR_OK);
    ck_assert_mem_eq(out, z, 32);
    memset(out, 0, sizeof(out));
    ck_assert_rv(ksp_ecdh_kdf(CKD_NULL, z, 32, NULL, 0, out, 16), CKR_OK);
    ck_assert_mem_eq(out, z, 16); /* the leading bytes */
    ck_assert_rv(ksp_ecdh_kdf(CKD_NULL, z, 32, NULL, 0, out, 33), CKR_KEY_SIZE_RANGE);
    ck_assert_rv(ksp_ecdh_kdf(CKD_NULL, z, 32, z, 4, out, 16), CKR_MECHANISM_PARAM_INVALID);
    ck_assert_rv(ksp_ecdh_kdf(CKD_SHA1_KDF_ASN1, z, 32, NULL, 0, out, 16),
                 CKR_MECHANISM_PARAM_INVALID);
    ck_assert_rv(ksp_ecdh_kdf(0x77, z, 32, NULL, 0, out, 16), CKR_MECHANISM_PARAM_INVALID);
}
END_TEST

START_TEST(test_kdf_x963_vector)
{
    /* NIST CAVS X9.63 KDF, SHA-256, no SharedInfo, 128-bit key. */
    uint8_t z[24];
    uint8_t want[16];
    uint8_t out[16];

    unhex("96c05619d56c328ab95fe84b18264b08725b85e33fd34f08", z);
    unhex("443024c3dae66b95e6f5670601558f71", want);
    ck_assert_rv(ksp_ecdh_kdf(CKD_SHA256_KDF, z, sizeof(z), NULL, 0, out, 16), CKR_OK);
    ck_assert_mem_eq(out, want, 16);
}
END_TEST

START_TEST(test_kdf_x963_hand)
{
    /* Two blocks with SharedInfo: SHA256(Z || 00000001 || SI) || SHA256(Z || 00000002 || SI),
     * truncated to 40 bytes, computed here with OpenSSL directly. */
    uint8_t z[32];
    const uint8_t si[] = "shared info";
    uint8_t in[32 + 4 + sizeof(si)];
    uint8_t want[64];
    uint8_t out[40];
    unsigned int n = 0;

    memset(z, 0xC3, sizeof(z));
    for (uint8_t ctr = 1; ctr <= 2; ctr++) {
        memcpy(in, z, 32);
        in[32] = 0;
        in[33] = 0;
        in[34] = 0;
        in[35] = ctr;
        memcpy(in + 36, si, sizeof(si));
        ck_assert_int_eq(EVP_Digest(in, sizeof(in), want + 32 * (ctr - 1), &n, EVP_sha256(), NULL),
                         1);
    }
    ck_assert_rv(ksp_ecdh_kdf(CKD_SHA256_KDF, z, 32, si, sizeof(si), out, 40), CKR_OK);
    ck_assert_mem_eq(out, want, 40);
    /* Other hashes produce their own length and differ. */
    uint8_t o1[40];
    ck_assert_rv(ksp_ecdh_kdf(CKD_SHA1_KDF, z, 32, si, sizeof(si), o1, 40), CKR_OK);
    ck_assert_mem_ne(o1, out, 40);
    ck_assert_rv(ksp_ecdh_kdf(CKD_SHA512_KDF, z, 32, NULL, 0, o1, 40), CKR_OK);
    ck_assert_rv(ksp_ecdh_kdf(CKD_SHA224_KDF, z, 32, NULL, 0, o1, 40), CKR_OK);
    ck_assert_rv(ksp_ecdh_kdf(CKD_SHA384_KDF, z, 32, NULL, 0, o1, 40), CKR_OK);
    ck_assert_rv(ksp_ecdh_kdf(CKD_SHA256_KDF, z, 32, NULL, 0, o1, 0), CKR_KEY_SIZE_RANGE);
}
END_TEST

/* ---- PKCS#8 ---- */

static EVP_PKEY *parse_pkcs8(const struct ksp_buf *der)
{
    const unsigned char *p = der->p;
    PKCS8_PRIV_KEY_INFO *p8 = d2i_PKCS8_PRIV_KEY_INFO(NULL, &p, (long)der->len);
    EVP_PKEY *pk = NULL;

    ck_assert_ptr_nonnull(p8);
    ck_assert_ptr_eq(p, der->p + der->len);
    pk = EVP_PKCS82PKEY(p8);
    PKCS8_PRIV_KEY_INFO_free(p8);
    ck_assert_ptr_nonnull(pk);
    return pk;
}

static void rsa_components(EVP_PKEY *pk, struct ksp_buf comp[8])
{
    static const char *const names[8] = {
        OSSL_PKEY_PARAM_RSA_N,         OSSL_PKEY_PARAM_RSA_E,
        OSSL_PKEY_PARAM_RSA_D,         OSSL_PKEY_PARAM_RSA_FACTOR1,
        OSSL_PKEY_PARAM_RSA_FACTOR2,   OSSL_PKEY_PARAM_RSA_EXPONENT1,
        OSSL_PKEY_PARAM_RSA_EXPONENT2, OSSL_PKEY_PARAM_RSA_COEFFICIENT1,
    };

    for (int i = 0; i < 8; i++) {
        comp[i] = bn_of(pk, names[i], 0);
    }
}

START_TEST(test_pkcs8_rsa_full)
{
    struct ksp_buf comp[8];
    struct ksp_buf der = {NULL, 0};
    EVP_PKEY *pk = NULL;

    rsa_components(rsa2048, comp);
    ck_assert_rv(ksp_pkcs8_from_rsa(comp, &der), CKR_OK);
    pk = parse_pkcs8(&der);
    ck_assert(EVP_PKEY_is_a(pk, "RSA"));
    ck_assert_int_eq(EVP_PKEY_eq(pk, rsa2048), 1);
    struct ksp_buf d2 = bn_of(pk, OSSL_PKEY_PARAM_RSA_D, 0);
    ck_assert_uint_eq(d2.len, comp[2].len);
    ck_assert_mem_eq(d2.p, comp[2].p, d2.len);
    ksp_buf_free(&d2);
    EVP_PKEY_free(pk);
    ksp_buf_free(&der);
    for (int i = 0; i < 8; i++) {
        ksp_buf_free(&comp[i]);
    }
}
END_TEST

START_TEST(test_pkcs8_rsa_derived)
{
    struct ksp_buf comp[8];
    struct ksp_buf der = {NULL, 0};
    struct ksp_buf saved[5];
    EVP_PKEY *pk = NULL;
    EVP_PKEY_CTX *ctx = NULL;

    rsa_components(rsa2048, comp);
    /* Only n, e, d (PKCS#11 makes the CRT attributes optional): the factors
     * are recovered and the CRT values recomputed. */
    for (int i = 0; i < 5; i++) {
        saved[i] = comp[3 + i];
        comp[3 + i].p = NULL;
        comp[3 + i].len = 0;
    }
    ck_assert_rv(ksp_pkcs8_from_rsa(comp, &der), CKR_OK);
    pk = parse_pkcs8(&der);
    ctx = EVP_PKEY_CTX_new(pk, NULL);
    ck_assert_int_eq(EVP_PKEY_pairwise_check(ctx), 1);
    EVP_PKEY_CTX_free(ctx);
    ck_assert_int_eq(EVP_PKEY_eq(pk, rsa2048), 1);
    struct ksp_buf p = bn_of(pk, OSSL_PKEY_PARAM_RSA_FACTOR1, 0);
    ck_assert((p.len == saved[0].len && memcmp(p.p, saved[0].p, p.len) == 0) ||
              (p.len == saved[1].len && memcmp(p.p, saved[1].p, p.len) == 0));
    ksp_buf_free(&p);
    EVP_PKEY_free(pk);
    ksp_buf_free(&der);

    /* p and q present, CRT values missing. */
    comp[3] = saved[0];
    comp[4] = saved[1];
    ck_assert_rv(ksp_pkcs8_from_rsa(comp, &der), CKR_OK);
    pk = parse_pkcs8(&der);
    struct ksp_buf qinv = bn_of(pk, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, 0);
    ck_assert_uint_eq(qinv.len, saved[4].len);
    ck_assert_mem_eq(qinv.p, saved[4].p, qinv.len);
    ksp_buf_free(&qinv);
    EVP_PKEY_free(pk);
    ksp_buf_free(&der);

    /* Factors that do not multiply to n. */
    comp[3].p[comp[3].len - 1] ^= 2;
    ck_assert_rv(ksp_pkcs8_from_rsa(comp, &der), CKR_ATTRIBUTE_VALUE_INVALID);
    ck_assert_ptr_null(der.p);
    comp[3].p[comp[3].len - 1] ^= 2;

    /* A d that does not belong to (n, e): no factors can be recovered. */
    ksp_buf_free(&comp[3]);
    ksp_buf_free(&comp[4]);
    comp[2].p[comp[2].len - 1] ^= 4;
    ck_assert_rv(ksp_pkcs8_from_rsa(comp, &der), CKR_ATTRIBUTE_VALUE_INVALID);
    /* n, e, d are mandatory. */
    ksp_buf_free(&comp[2]);
    ck_assert_rv(ksp_pkcs8_from_rsa(comp, &der), CKR_TEMPLATE_INCOMPLETE);
    for (int i = 0; i < 8; i++) {
        ksp_buf_free(&comp[i]);
    }
    for (int i = 2; i < 5; i++) {
        ksp_buf_free(&saved[i]);
    }
}
END_TEST

START_TEST(test_pkcs8_ec)
{
    struct ksp_buf d = bn_of(ecp256, OSSL_PKEY_PARAM_PRIV_KEY, 32);
    struct ksp_buf der = {NULL, 0};
    EVP_PKEY *pk = NULL;
    uint8_t big[32];

    ck_assert_rv(ksp_pkcs8_from_ec(KSP_CURVE_P256, d.p, d.len, &der), CKR_OK);
    pk = parse_pkcs8(&der);
    /* Same public point: it was computed from the scalar. */
    ck_assert_int_eq(EVP_PKEY_eq(pk, ecp256), 1);
    EVP_PKEY_free(pk);
    ksp_buf_free(&der);

    memset(big, 0, sizeof(big));
    ck_assert_rv(ksp_pkcs8_from_ec(KSP_CURVE_P256, big, 32, &der), CKR_ATTRIBUTE_VALUE_INVALID);
    memset(big, 0xFF, sizeof(big)); /* >= the group order */
    ck_assert_rv(ksp_pkcs8_from_ec(KSP_CURVE_P256, big, 32, &der), CKR_ATTRIBUTE_VALUE_INVALID);
    ck_assert_rv(ksp_pkcs8_from_ec(KSP_CURVE_NONE, d.p, d.len, &der), CKR_CURVE_NOT_SUPPORTED);
    ck_assert_ptr_null(der.p);
    /* A small scalar is a valid key on P-521 too. */
    big[31] = 0x05;
    ck_assert_rv(ksp_pkcs8_from_ec(KSP_CURVE_P521, big + 31, 1, &der), CKR_OK);
    ksp_buf_free(&der);
    ksp_buf_free(&d);
}
END_TEST

static Suite *swcrypto_suite(void)
{
    Suite *s = suite_create("swcrypto");
    TCase *tc = tcase_create("core");

    tcase_add_unchecked_fixture(tc, keys_setup, keys_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_ctx_private);
    tcase_add_test(tc, test_ctx_concurrent_create);
    tcase_add_test(tc, test_ctx_forget);
    tcase_add_test(tc, test_random);
    tcase_add_loop_test(tc, test_digest_vectors, 0, sizeof(vectors) / sizeof(vectors[0]));
    tcase_add_test(tc, test_digest_unknown);
    tcase_add_test(tc, test_digestinfo_sha256);
    tcase_add_test(tc, test_emsa_pkcs1_shape);
    tcase_add_test(tc, test_emsa_pss_sha256);
    tcase_add_test(tc, test_emsa_pss_mixed_mgf);
    tcase_add_test(tc, test_emsa_pss_odd_modulus);
    tcase_add_test(tc, test_emsa_pss_errors);
    tcase_add_test(tc, test_guard);
    tcase_add_test(tc, test_guard_accepts_every_pss);
    tcase_add_test(tc, test_verify_rsa_pkcs1);
    tcase_add_test(tc, test_verify_rsa_raw);
    tcase_add_test(tc, test_verify_ecdsa);
    tcase_add_test(tc, test_encrypt);
    tcase_add_test(tc, test_pub_check_and_bits);
    tcase_add_test(tc, test_ec_params);
    tcase_add_test(tc, test_ec_point_wrap_unwrap);
    tcase_add_test(tc, test_kdf_null);
    tcase_add_test(tc, test_kdf_x963_vector);
    tcase_add_test(tc, test_kdf_x963_hand);
    tcase_add_test(tc, test_pkcs8_rsa_full);
    tcase_add_test(tc, test_pkcs8_rsa_derived);
    tcase_add_test(tc, test_pkcs8_ec);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(swcrypto_suite());
    int failed = 0;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
