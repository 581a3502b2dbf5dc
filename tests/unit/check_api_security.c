/*
 * API suite: nothing private gets out (issue 6, "Security"). For generated
 * keys (TPM keys when tests/integration/api_on_tpm.sh provides a TPM) and
 * imported keys, every way to get private material out fails with the exact
 * code: reading sensitive components, making a key non-sensitive or
 * extractable, copying it with relaxed attributes, wrapping it, raw RSA as a
 * decryption oracle (also blinded), ECDH tricks (own point, invalid points,
 * concatenation mechanisms, extractable results).
 *
 * The store files and the debug log hold neither PIN nor key material
 * (scanned for each RSA component, the EC scalar and the key DER, raw, byte-
 * reversed, hex and base64), and the store's files and directories are
 * private even with umask 000. Wrong PINs guessed by concurrent processes are
 * all counted (software tokens; TPM tokens rely on the TPM's lockout, covered
 * by tests/integration/p11_tpm.sh).
 */
#include <dirent.h>
#include <limits.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include "store.h"
#include "testlib.h"

#define SEC_SO_PIN   "SoPin-9d7c2e51"
#define SEC_USER_PIN "UsrPin-4b1f8a"
#define SEC_NEW_PIN  "UsrPin-new-77e1c3"

static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;

static const CK_ATTRIBUTE_TYPE rsa_secret[] = {CKA_PRIVATE_EXPONENT, CKA_PRIME_1,
                                               CKA_PRIME_2,          CKA_EXPONENT_1,
                                               CKA_EXPONENT_2,       CKA_COEFFICIENT};

/* Generated (TPM keys on a TPM) and imported private keys of both types. */
struct keys {
    CK_OBJECT_HANDLE rsa_pub, rsa, ec_pub, ec, rsa_imp, ec_imp;
};

static void make_keys(CK_SESSION_HANDLE s, struct keys *k)
{
    EVP_PKEY *rsa = ksp_test_fixed_key(EVP_PKEY_RSA), *ec = ksp_test_fixed_key(EVP_PKEY_EC);
    ksp_test_gen_rsa(s, 2048, "g-rsa", true, &k->rsa_pub, &k->rsa);
    ksp_test_gen_ec(s, NID_X9_62_prime256v1, "g-ec", true, &k->ec_pub, &k->ec);
    k->rsa_imp = ksp_test_import_private(s, rsa, "i-rsa", true, NULL, 0);
    k->ec_imp = ksp_test_import_private(s, ec, "i-ec", true, NULL, 0);
    /* On a TPM the generated keys are TPM keys: the checks then cover both backends. */
    CK_ULONG want = ksp_test_tpm() ? KSP11_BACKEND_TPM : KSP11_BACKEND_SOFT;
    ck_assert_uint_eq(ksp_test_get_ulong(s, k->rsa, CKA_KSP11_BACKEND), want);
    ck_assert_uint_eq(ksp_test_get_ulong(s, k->ec, CKA_KSP11_BACKEND), want);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
}

/* ---- reading ---- */

static void check_unreadable(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE t,
                             const char *what)
{
    uint8_t buf[1024];
    char ctx[96];
    CK_ATTRIBUTE a = {t, NULL, 0};
    snprintf(ctx, sizeof(ctx), "%s attribute 0x%lx", what, (unsigned long)t);
    /* §5.7 C_GetAttributeValue: length query and read both refuse. */
    KSP_ASSERT_RV_CTX(ctx, P11->C_GetAttributeValue(s, h, &a, 1), CKR_ATTRIBUTE_SENSITIVE);
    ck_assert_msg(a.ulValueLen == CK_UNAVAILABLE_INFORMATION, "[%s] length %lu", ctx,
                  (unsigned long)a.ulValueLen);
    memset(buf, 0xA5, sizeof(buf));
    a = (CK_ATTRIBUTE){t, buf, sizeof(buf)};
    KSP_ASSERT_RV_CTX(ctx, P11->C_GetAttributeValue(s, h, &a, 1), CKR_ATTRIBUTE_SENSITIVE);
    ck_assert_msg(a.ulValueLen == CK_UNAVAILABLE_INFORMATION, "[%s] length %lu", ctx,
                  (unsigned long)a.ulValueLen);
    for (size_t i = 0; i < sizeof(buf); i++)
        ck_assert_msg(buf[i] == 0xA5, "[%s] buffer written at %zu", ctx, i);
}

static void check_key_unreadable(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, bool rsa,
                                 const char *what)
{
    if (rsa) {
        for (size_t i = 0; i < sizeof(rsa_secret) / sizeof(rsa_secret[0]); i++)
            check_unreadable(s, h, rsa_secret[i], what);
    } else {
        check_unreadable(s, h, CKA_VALUE, what);
    }
    ck_assert_msg(ksp_test_get_bool(s, h, CKA_SENSITIVE) == CK_TRUE, "%s: not sensitive", what);
    ck_assert_msg(ksp_test_get_bool(s, h, CKA_EXTRACTABLE) == CK_FALSE, "%s: extractable", what);
    /* A template mixing public and secret attributes: the public ones are
     * returned, the secret one refused, the call says CKR_ATTRIBUTE_SENSITIVE. */
    uint8_t pub[600], sec[600];
    CK_ATTRIBUTE mix[] = {
        {rsa ? CKA_MODULUS : CKA_EC_PARAMS, pub, sizeof(pub)},
        {rsa ? CKA_PRIVATE_EXPONENT : CKA_VALUE, sec, sizeof(sec)},
    };
    KSP_ASSERT_RV_CTX(what, P11->C_GetAttributeValue(s, h, mix, 2), CKR_ATTRIBUTE_SENSITIVE);
    ck_assert_msg(mix[0].ulValueLen > 0 && mix[0].ulValueLen != CK_UNAVAILABLE_INFORMATION,
                  "%s: public part not returned", what);
    ck_assert_msg(mix[1].ulValueLen == CK_UNAVAILABLE_INFORMATION, "%s: secret length given", what);
}

START_TEST(test_sensitive_unreadable)
{
    CK_SESSION_HANDLE s = ksp_test_ready("sec");
    struct keys k;
    make_keys(s, &k);
    check_key_unreadable(s, k.rsa, true, "generated RSA");
    check_key_unreadable(s, k.ec, false, "generated EC");
    check_key_unreadable(s, k.rsa_imp, true, "imported RSA");
    check_key_unreadable(s, k.ec_imp, false, "imported EC");
    ck_assert(ksp_test_get_bool(s, k.rsa, CKA_ALWAYS_SENSITIVE) == CK_TRUE);
    ck_assert(ksp_test_get_bool(s, k.rsa, CKA_NEVER_EXTRACTABLE) == CK_TRUE);
    /* The same from a fresh process (the store). */
    ksp_test_reinit();
    s = ksp_test_open(ksp_t.slot, false);
    ksp_test_login(s, CKU_USER, KSP_TEST_USER_PIN);
    check_key_unreadable(s, ksp_test_find1(s, CKO_PRIVATE_KEY, "g-rsa"), true, "reloaded RSA");
    check_key_unreadable(s, ksp_test_find1(s, CKO_PRIVATE_KEY, "i-ec"), false, "reloaded EC");
}
END_TEST

/* Imports asking for a readable key are refused outright. */
START_TEST(test_import_relaxed_refused)
{
    CK_SESSION_HANDLE s = ksp_test_ready("sec");
    EVP_PKEY *rsa = ksp_test_fixed_key(EVP_PKEY_RSA), *ec = ksp_test_fixed_key(EVP_PKEY_EC);
    CK_ATTRIBUTE nonsens = {CKA_SENSITIVE, &no, sizeof(no)};
    CK_ATTRIBUTE extract = {CKA_EXTRACTABLE, &yes, sizeof(yes)};
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    KSP_ASSERT_RV(ksp_test_import_private_rv(s, rsa, "x", true, &nonsens, 1, &h),
                  CKR_ATTRIBUTE_VALUE_INVALID);
    KSP_ASSERT_RV(ksp_test_import_private_rv(s, rsa, "x", false, &extract, 1, &h),
                  CKR_ATTRIBUTE_VALUE_INVALID);
    KSP_ASSERT_RV(ksp_test_import_private_rv(s, ec, "x", true, &extract, 1, &h),
                  CKR_ATTRIBUTE_VALUE_INVALID);
    ck_assert_uint_eq(ksp_test_count(s, CKO_PRIVATE_KEY, "x"), 0);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
}
END_TEST

/* ---- C_SetAttributeValue ---- */

static void check_one_way(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, const char *what)
{
    /* ALWAYS_SENSITIVE / NEVER_EXTRACTABLE record history (FALSE for an
     * imported key): flipping them either way would be a lie. */
    CK_BBOOL as = !ksp_test_get_bool(s, h, CKA_ALWAYS_SENSITIVE);
    CK_BBOOL ne = !ksp_test_get_bool(s, h, CKA_NEVER_EXTRACTABLE);
    CK_ATTRIBUTE tries[][2] = {
        {{CKA_SENSITIVE, &no, sizeof(no)}},
        {{CKA_EXTRACTABLE, &yes, sizeof(yes)}},
        {{CKA_ALWAYS_SENSITIVE, &as, sizeof(as)}},
        {{CKA_NEVER_EXTRACTABLE, &ne, sizeof(ne)}},
        {{CKA_LABEL, "ok", 2}, {CKA_SENSITIVE, &no, sizeof(no)}},
        {{CKA_EXTRACTABLE, &yes, sizeof(yes)}, {CKA_SENSITIVE, &no, sizeof(no)}},
    };
    CK_ULONG n[] = {1, 1, 1, 1, 2, 2};
    for (size_t i = 0; i < sizeof(n) / sizeof(n[0]); i++) {
        char ctx[64];
        snprintf(ctx, sizeof(ctx), "%s, template %zu", what, i);
        /* §4.2 table footnote 11 / 3.0 §4.9: one-way attributes. */
        KSP_ASSERT_RV_CTX(ctx, P11->C_SetAttributeValue(s, h, tries[i], n[i]),
                          CKR_ATTRIBUTE_READ_ONLY);
    }
    ck_assert(ksp_test_get_bool(s, h, CKA_SENSITIVE) == CK_TRUE);
    ck_assert(ksp_test_get_bool(s, h, CKA_EXTRACTABLE) == CK_FALSE);
    ck_assert(ksp_test_get_bool(s, h, CKA_ALWAYS_SENSITIVE) == !as);
    ck_assert(ksp_test_get_bool(s, h, CKA_NEVER_EXTRACTABLE) == !ne);
}

START_TEST(test_set_attribute_one_way)
{
    CK_SESSION_HANDLE s = ksp_test_ready("sec");
    struct keys k;
    make_keys(s, &k);
    check_one_way(s, k.rsa, "generated RSA");
    check_one_way(s, k.ec, "generated EC");
    check_one_way(s, k.rsa_imp, "imported RSA");
    check_one_way(s, k.ec_imp, "imported EC");
    /* Not even the label changed with a refused template (atomic). */
    ck_assert_uint_eq(ksp_test_count(s, CKO_PRIVATE_KEY, "ok"), 0);
    ksp_test_reinit();
    s = ksp_test_open(ksp_t.slot, false);
    ksp_test_login(s, CKU_USER, KSP_TEST_USER_PIN);
    CK_OBJECT_HANDLE h = ksp_test_find1(s, CKO_PRIVATE_KEY, "g-rsa");
    ck_assert(ksp_test_get_bool(s, h, CKA_SENSITIVE) == CK_TRUE);
    ck_assert(ksp_test_get_bool(s, h, CKA_EXTRACTABLE) == CK_FALSE);
}
END_TEST

/* ---- C_CopyObject ---- */

START_TEST(test_copy_refused)
{
    CK_SESSION_HANDLE s = ksp_test_ready("sec");
    struct keys k;
    CK_OBJECT_HANDLE keys[4];
    CK_ATTRIBUTE relax[][1] = {
        {{CKA_SENSITIVE, &no, sizeof(no)}},
        {{CKA_EXTRACTABLE, &yes, sizeof(yes)}},
        {{CKA_TOKEN, &no, sizeof(no)}},
        {{CKA_PRIVATE, &no, sizeof(no)}},
    };
    make_keys(s, &k);
    keys[0] = k.rsa;
    keys[1] = k.ec;
    keys[2] = k.rsa_imp;
    keys[3] = k.ec_imp;
    ck_assert_uint_eq(ksp_test_count(s, CKO_PRIVATE_KEY, NULL), 4);
    for (size_t i = 0; i < 4; i++) {
        CK_OBJECT_HANDLE out = CK_INVALID_HANDLE;
        ck_assert(ksp_test_get_bool(s, keys[i], CKA_COPYABLE) == CK_FALSE);
        /* 3.0 §4.4: CKA_COPYABLE FALSE -> CKR_ACTION_PROHIBITED. */
        KSP_ASSERT_RV(P11->C_CopyObject(s, keys[i], NULL, 0, &out), CKR_ACTION_PROHIBITED);
        for (size_t j = 0; j < 4; j++)
            KSP_ASSERT_RV(P11->C_CopyObject(s, keys[i], relax[j], 1, &out), CKR_ACTION_PROHIBITED);
        CK_ATTRIBUTE copyable = {CKA_COPYABLE, &yes, sizeof(yes)};
        KSP_ASSERT_RV(P11->C_SetAttributeValue(s, keys[i], &copyable, 1), CKR_ATTRIBUTE_READ_ONLY);
    }
    ck_assert_uint_eq(ksp_test_count(s, CKO_PRIVATE_KEY, NULL), 4);
}
END_TEST

/* ---- C_WrapKey ---- */

START_TEST(test_wrap_refused)
{
    CK_SESSION_HANDLE s = ksp_test_ready("sec");
    struct keys k;
    CK_MECHANISM mechs[] = {
        {CKM_RSA_PKCS, NULL, 0},
        {CKM_RSA_PKCS_OAEP, NULL, 0},
        {CKM_AES_KEY_WRAP, NULL, 0},
        {CKM_AES_KEY_WRAP_PAD, NULL, 0},
    };
    make_keys(s, &k);
    CK_OBJECT_HANDLE keys[] = {k.rsa, k.ec, k.rsa_imp, k.ec_imp};
    for (size_t i = 0; i < 4; i++) {
        for (size_t j = 0; j < sizeof(mechs) / sizeof(mechs[0]); j++) {
            uint8_t out[4096];
            CK_ULONG len = sizeof(out);
            char ctx[64];
            snprintf(ctx, sizeof(ctx), "key %zu, mechanism %zu", i, j);
            /* §5.15: a key with CKA_EXTRACTABLE FALSE cannot be wrapped. */
            KSP_ASSERT_RV_CTX(ctx, P11->C_WrapKey(s, &mechs[j], k.rsa_pub, keys[i], out, &len),
                              CKR_KEY_UNEXTRACTABLE);
            len = 0;
            KSP_ASSERT_RV_CTX(ctx, P11->C_WrapKey(s, &mechs[j], k.rsa_pub, keys[i], NULL, &len),
                              CKR_KEY_UNEXTRACTABLE);
        }
    }
}
END_TEST

/* ---- raw RSA as a decryption oracle ---- */

/* c = m^e mod n with the key's public half (OpenSSL, no padding). */
static size_t raw_encrypt(EVP_PKEY *pk, const uint8_t *m, size_t mlen, uint8_t *c)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pk, NULL);
    size_t clen = 512;
    ck_assert(ctx != NULL && EVP_PKEY_encrypt_init(ctx) == 1);
    ck_assert(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING) == 1);
    ck_assert(EVP_PKEY_encrypt(ctx, c, &clen, m, mlen) == 1);
    EVP_PKEY_CTX_free(ctx);
    return clen;
}

static void oracle(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE pub, CK_OBJECT_HANDLE priv,
                   const char *what)
{
    EVP_PKEY *pk = ksp_test_ossl_pubkey(s, pub);
    BIGNUM *n = NULL, *e = NULL;
    BN_CTX *bc = BN_CTX_new();
    uint8_t m[256], c[512], sig[512];
    size_t k = (size_t)EVP_PKEY_get_size(pk);
    CK_MECHANISM x509 = {CKM_RSA_X_509, NULL, 0}, pkcs = {CKM_RSA_PKCS, NULL, 0};
    int accepted = 0, pss_shaped = 0;

    ck_assert(k == 256);
    ck_assert(EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &n) == 1);
    ck_assert(EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &e) == 1);
    /* A secret the attacker wants: random, below n. */
    for (size_t i = 0; i < k; i++)
        m[i] = (uint8_t)(i * 37 + 11);
    m[0] = 0x00;
    size_t clen = raw_encrypt(pk, m, k, c);

    /* The key may not decrypt: §5.13 C_DecryptInit, CKA_DECRYPT FALSE. */
    ck_assert(ksp_test_get_bool(s, priv, CKA_DECRYPT) == CK_FALSE);
    KSP_ASSERT_RV_CTX(what, P11->C_DecryptInit(s, &pkcs, priv), CKR_KEY_FUNCTION_NOT_PERMITTED);
    KSP_ASSERT_RV2(P11->C_DecryptInit(s, &x509, priv), CKR_KEY_FUNCTION_NOT_PERMITTED,
                   CKR_MECHANISM_INVALID);
    /* Raw "signing" of the ciphertext is decryption: refused. */
    CK_ULONG sl = sizeof(sig);
    KSP_ASSERT_OK(P11->C_SignInit(s, &x509, priv));
    KSP_ASSERT_RV_CTX(what, P11->C_Sign(s, c, clen, sig, &sl), CKR_DATA_INVALID);
    /* Blinded: c * r^e for many r. Some land on the PSS trailer 0xBC with the
     * top bit clear; none may pass as a signature encoding. */
    BIGNUM *cb = BN_bin2bn(c, (int)clen, NULL), *r = BN_new(), *re = BN_new(), *x = BN_new();
    for (int i = 0; i < 3000; i++) {
        uint8_t blk[256];
        ck_assert(BN_rand_range(r, n) == 1);
        ck_assert(BN_mod_exp(re, r, e, n, bc) == 1);
        ck_assert(BN_mod_mul(x, cb, re, n, bc) == 1);
        ck_assert(BN_bn2binpad(x, blk, (int)k) == (int)k);
        if (blk[k - 1] != 0xBC || (blk[0] & 0x80))
            continue;
        pss_shaped++;
        sl = sizeof(sig);
        KSP_ASSERT_OK(P11->C_SignInit(s, &x509, priv));
        CK_RV rv = P11->C_Sign(s, blk, k, sig, &sl);
        if (rv == CKR_OK)
            accepted++;
        else
            KSP_ASSERT_RV_CTX(what, rv, CKR_DATA_INVALID);
    }
    ck_assert_msg(pss_shaped > 0, "no blinded block looked like PSS (bad luck: rerun)");
    ck_assert_msg(accepted == 0, "%s: raw RSA signed %d of %d blinded ciphertexts", what, accepted,
                  pss_shaped);
    fprintf(stderr, "# %s: %d PSS-shaped blinded ciphertexts, all refused\n", what, pss_shaped);
    BN_free(cb);
    BN_free(r);
    BN_free(re);
    BN_free(x);
    BN_free(n);
    BN_free(e);
    BN_CTX_free(bc);
    EVP_PKEY_free(pk);
}

START_TEST(test_rsa_raw_no_oracle)
{
    CK_SESSION_HANDLE s = ksp_test_ready("sec");
    CK_OBJECT_HANDLE pub, priv;
    CK_ATTRIBUTE signonly[] = {{CKA_DECRYPT, &no, sizeof(no)}};
    KSP_ASSERT_OK(ksp_test_gen_keypair(s, CKM_RSA_PKCS_KEY_PAIR_GEN, 2048, "so", true, NULL, 0,
                                       signonly, 1, &pub, &priv));
    oracle(s, pub, priv, "generated sign-only RSA");
    EVP_PKEY *rsa = ksp_test_fixed_key(EVP_PKEY_RSA);
    priv = ksp_test_import_private(s, rsa, "iso", true, signonly, 1);
    pub = ksp_test_import_public(s, rsa, "iso", true, NULL, 0);
    oracle(s, pub, priv, "imported sign-only RSA");
    EVP_PKEY_free(rsa);
}
END_TEST

/* ---- EC derivation ---- */

static CK_RV ecdh(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE base, const uint8_t *pt, size_t ptlen,
                  bool readable, CK_OBJECT_HANDLE *out)
{
    CK_ECDH1_DERIVE_PARAMS p = {CKD_NULL, 0, NULL, (CK_ULONG)ptlen, (CK_BYTE_PTR)pt};
    CK_MECHANISM m = {CKM_ECDH1_DERIVE, &p, sizeof(p)};
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &no, sizeof(no)},
        {CKA_SENSITIVE, readable ? &no : &yes, sizeof(CK_BBOOL)},
        {CKA_EXTRACTABLE, readable ? &yes : &no, sizeof(CK_BBOOL)},
    };
    return P11->C_DeriveKey(s, &m, base, t, 5, out);
}

START_TEST(test_ec_derive_no_leak)
{
    CK_SESSION_HANDLE s = ksp_test_ready("sec");
    EVP_PKEY *ec = ksp_test_fixed_key(EVP_PKEY_EC);
    CK_ATTRIBUTE noderive = {CKA_DERIVE, &no, sizeof(no)};
    CK_OBJECT_HANDLE gpub, gpriv, priv, nd, der = CK_INVALID_HANDLE;
    uint8_t own[160], d[32], bad[65];
    size_t ownlen = ksp_test_ec_point(ec, own, sizeof(own));
    BIGNUM *dbn = NULL;

    ck_assert(EVP_PKEY_get_bn_param(ec, OSSL_PKEY_PARAM_PRIV_KEY, &dbn) == 1);
    ck_assert(BN_bn2binpad(dbn, d, 32) == 32);
    BN_clear_free(dbn);
    priv = ksp_test_import_private(s, ec, "ecd", true, NULL, 0);
    nd = ksp_test_import_private(s, ec, "ecnd", true, &noderive, 1);
    ksp_test_gen_ec(s, NID_X9_62_prime256v1, "gen", true, &gpub, &gpriv);
    /* A generated key derives too (CKA_DERIVE defaults to TRUE for EC). */
    {
        EVP_PKEY *gp = ksp_test_ossl_pubkey(s, gpub);
        uint8_t gpt[160];
        size_t gl = ksp_test_ec_point(gp, gpt, sizeof(gpt));
        KSP_ASSERT_OK(ecdh(s, gpriv, gpt, gl, false, &der));
        gpt[gl - 1] ^= 1;
        KSP_ASSERT_RV(ecdh(s, gpriv, gpt, gl, false, &der), CKR_MECHANISM_PARAM_INVALID);
        EVP_PKEY_free(gp);
    }

    /* §5.18: CKA_DERIVE FALSE. */
    KSP_ASSERT_RV(ecdh(s, nd, own, ownlen, true, &der), CKR_KEY_FUNCTION_NOT_PERMITTED);
    /* Invalid-curve points would leak the scalar modulo small orders: refused. */
    memcpy(bad, own, 65);
    bad[64] ^= 0x01; /* off the curve */
    KSP_ASSERT_RV(ecdh(s, priv, bad, 65, true, &der), CKR_MECHANISM_PARAM_INVALID);
    uint8_t inf[] = {0x00};
    KSP_ASSERT_RV(ecdh(s, priv, inf, 1, true, &der), CKR_MECHANISM_PARAM_INVALID);
    memset(bad, 0, sizeof(bad));
    bad[0] = 0x04; /* (0, 0) */
    KSP_ASSERT_RV(ecdh(s, priv, bad, 65, true, &der), CKR_MECHANISM_PARAM_INVALID);

    /* ECDH with its own public point and CKD_NULL is ordinary ECDH: allowed,
     * and the result is x(d*d*G), never d. */
    KSP_ASSERT_OK(ecdh(s, priv, own, ownlen, true, &der));
    uint8_t *z = NULL;
    CK_ULONG zl = 0;
    KSP_ASSERT_OK(ksp_test_get_attr(s, der, CKA_VALUE, &z, &zl));
    ck_assert_uint_eq(zl, 32);
    ck_assert_msg(memcmp(z, d, 32) != 0, "ECDH with the own point returned the private scalar");
    {
        EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(ec, NULL);
        uint8_t want[32];
        size_t wl = sizeof(want);
        ck_assert(c && EVP_PKEY_derive_init(c) == 1 && EVP_PKEY_derive_set_peer(c, ec) == 1 &&
                  EVP_PKEY_derive(c, want, &wl) == 1 && wl == 32);
        ck_assert_msg(memcmp(z, want, 32) == 0, "ECDH result differs from OpenSSL's");
        EVP_PKEY_CTX_free(c);
    }
    free(z);
    /* A sensitive result stays unreadable and cannot be wrapped. */
    KSP_ASSERT_OK(ecdh(s, priv, own, ownlen, false, &der));
    check_unreadable(s, der, CKA_VALUE, "derived secret");
    CK_MECHANISM wm = {CKM_AES_KEY_WRAP, NULL, 0};
    uint8_t wout[256];
    CK_ULONG wl = sizeof(wout);
    KSP_ASSERT_RV(P11->C_WrapKey(s, &wm, priv, der, wout, &wl), CKR_KEY_UNEXTRACTABLE);

    /* Mechanisms that concatenate or extract key bits: not offered. */
    CK_MECHANISM_TYPE others[] = {CKM_CONCATENATE_BASE_AND_KEY,  CKM_CONCATENATE_BASE_AND_DATA,
                                  CKM_CONCATENATE_DATA_AND_BASE, CKM_XOR_BASE_AND_DATA,
                                  CKM_EXTRACT_KEY_FROM_KEY,      CKM_ECDH1_COFACTOR_DERIVE};
    CK_OBJECT_HANDLE o2 = priv;
    CK_KEY_DERIVATION_STRING_DATA sd = {(CK_BYTE_PTR) "abc", 3};
    for (size_t i = 0; i < sizeof(others) / sizeof(others[0]); i++) {
        CK_MECHANISM m = {others[i], &sd, sizeof(sd)};
        if (others[i] == CKM_CONCATENATE_BASE_AND_KEY)
            m = (CK_MECHANISM){others[i], &o2, sizeof(o2)};
        CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
        CK_KEY_TYPE kt = CKK_GENERIC_SECRET;
        CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)},
                            {CKA_KEY_TYPE, &kt, sizeof(kt)},
                            {CKA_SENSITIVE, &no, sizeof(no)},
                            {CKA_EXTRACTABLE, &yes, sizeof(yes)}};
        KSP_ASSERT_RV_CTX(ksp_test_mech_name(others[i]), P11->C_DeriveKey(s, &m, priv, t, 4, &der),
                          CKR_MECHANISM_INVALID);
    }
    EVP_PKEY_free(ec);
}
END_TEST

/* ---- PIN guessing by concurrent processes (software tokens) ---- */

struct gate {
    int go;    /* read end: one byte releases one guesser */
    int ready; /* write end: one byte when a guesser is set up */
};

static int guesser(void *arg)
{
    struct gate *g = arg;
    char go;
    int incorrect = 0;
    /* A fresh process: the parent finalised the module before forking. */
    if (P11->C_Initialize(NULL) != CKR_OK)
        return 100;
    CK_SESSION_HANDLE s;
    if (P11->C_OpenSession(ksp_t.slot, CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK)
        return 101;
    if (write(g->ready, "r", 1) != 1 || read(g->go, &go, 1) != 1)
        return 102;
    for (int i = 0; i < 4; i++) {
        CK_RV rv = P11->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR) "0000", 4);
        if (rv == CKR_PIN_INCORRECT)
            incorrect++;
        else if (rv != CKR_PIN_LOCKED)
            return 103;
    }
    P11->C_Finalize(NULL);
    return incorrect;
}

START_TEST(test_pin_guessing_concurrent)
{
    int go[2], ready[2];
    pid_t kids[5];
    int total = 0;
    char buf[5];
    if (ksp_test_tpm()) {
        fprintf(stderr, "# TPM token: the TPM counts failures (tests/integration/p11_tpm.sh)\n");
        return;
    }
    ksp_test_ready("sec");
    ksp_test_finalize();
    ck_assert(pipe(go) == 0 && pipe(ready) == 0);
    for (int i = 0; i < 5; i++) {
        fflush(NULL);
        kids[i] = fork();
        ck_assert(kids[i] >= 0);
        if (kids[i] == 0) {
            struct gate g = {go[0], ready[1]};
            close(go[1]);
            close(ready[0]);
            _exit(guesser(&g));
        }
    }
    close(go[0]);
    close(ready[1]);
    /* All five set up, then all released at once. */
    for (size_t got = 0; got < sizeof(buf);) {
        ssize_t r = read(ready[0], buf + got, sizeof(buf) - got);
        ck_assert_msg(r > 0, "a guesser died during setup");
        got += (size_t)r;
    }
    ck_assert(write(go[1], "ggggg", 5) == 5);
    close(go[1]);
    close(ready[0]);
    for (int i = 0; i < 5; i++) {
        int st;
        ck_assert(waitpid(kids[i], &st, 0) == kids[i]);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) <= 4, "guesser %d: status 0x%x", i, st);
        total += WEXITSTATUS(st);
    }
    /* 20 wrong guesses against a limit of 10: exactly 10 were tried. */
    ck_assert_msg(total == 10, "%d wrong PINs were checked before the lock (limit 10)", total);
    ksp_test_initialize();
    ck_assert(ksp_test_token_flags(ksp_t.slot) & CKF_USER_PIN_LOCKED);
    CK_SESSION_HANDLE s = ksp_test_open(ksp_t.slot, false);
    KSP_ASSERT_RV(
        P11->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)KSP_TEST_USER_PIN, strlen(KSP_TEST_USER_PIN)),
        CKR_PIN_LOCKED);
}
END_TEST

/* ---- secrets at rest and in the log ---- */

struct needle {
    char what[64];
    uint8_t *p;
    size_t len;
};

struct needles {
    struct needle n[256];
    size_t cnt;
};

static void add(struct needles *ns, const char *what, const uint8_t *p, size_t len)
{
    ck_assert(ns->cnt < 256);
    struct needle *n = &ns->n[ns->cnt++];
    snprintf(n->what, sizeof(n->what), "%s", what);
    n->p = malloc(len);
    memcpy(n->p, p, len);
    n->len = len;
}

/* The secret raw, byte-reversed, in hex (both cases) and base64. */
static void add_forms(struct needles *ns, const char *what, const uint8_t *p, size_t len)
{
    char name[64], *hex = malloc(2 * len + 1), *HEX = malloc(2 * len + 1);
    uint8_t *rev = malloc(len), *b64 = malloc(4 * len / 3 + 8);
    for (size_t i = 0; i < len; i++) {
        snprintf(hex + 2 * i, 3, "%02x", p[i]);
        snprintf(HEX + 2 * i, 3, "%02X", p[i]);
        rev[i] = p[len - 1 - i];
    }
    add(ns, what, p, len);
    snprintf(name, sizeof(name), "%s (reversed)", what);
    add(ns, name, rev, len);
    snprintf(name, sizeof(name), "%s (hex)", what);
    add(ns, name, (uint8_t *)hex, 2 * len);
    snprintf(name, sizeof(name), "%s (HEX)", what);
    add(ns, name, (uint8_t *)HEX, 2 * len);
    int bl = EVP_EncodeBlock(b64, p, (int)len);
    /* Base64 of a substring depends on its alignment: take the three offsets. */
    for (size_t off = 0; off < 3 && len > off + 12; off++) {
        bl = EVP_EncodeBlock(b64, p + off, (int)((len - off) / 3 * 3));
        snprintf(name, sizeof(name), "%s (base64+%zu)", what, off);
        add(ns, name, b64, (size_t)bl > 16 ? 16 : (size_t)bl);
    }
    free(hex);
    free(HEX);
    free(rev);
    free(b64);
}

static void add_bn(struct needles *ns, EVP_PKEY *pk, const char *param, const char *what)
{
    BIGNUM *bn = NULL;
    uint8_t buf[512];
    ck_assert(EVP_PKEY_get_bn_param(pk, param, &bn) == 1);
    int len = BN_bn2bin(bn, buf);
    BN_clear_free(bn);
    add_forms(ns, what, buf, (size_t)len);
}

static void add_der(struct needles *ns, EVP_PKEY *pk, const char *what)
{
    uint8_t *der = NULL;
    int len = i2d_PrivateKey(pk, &der);
    ck_assert(len > 0);
    /* The tail of the DER: the secret part, whatever the header. */
    add_forms(ns, what, der + len - 48, 48);
    OPENSSL_free(der);
}

static bool contains(const uint8_t *hay, size_t hl, const uint8_t *n, size_t nl)
{
    if (nl == 0 || hl < nl)
        return false;
    for (size_t i = 0; i + nl <= hl; i++)
        if (hay[i] == n[0] && memcmp(hay + i, n, nl) == 0)
            return true;
    return false;
}

/* Positive control: a public value that must be found, so the scan is known to see the data. */
static struct needle control;
static bool control_seen;

static void scan_file(const char *path, const struct needles *ns)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "open %s", path);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    rewind(f);
    uint8_t *buf = malloc((size_t)sz + 1);
    ck_assert(fread(buf, 1, (size_t)sz, f) == (size_t)sz);
    fclose(f);
    for (size_t i = 0; i < ns->cnt; i++)
        ck_assert_msg(!contains(buf, (size_t)sz, ns->n[i].p, ns->n[i].len), "%s holds %s", path,
                      ns->n[i].what);
    if (control.len && contains(buf, (size_t)sz, control.p, control.len))
        control_seen = true;
    free(buf);
}

/* Scan every file under dir; check modes: directories 0700, files 0600. */
static int scan_tree(const char *dir, const struct needles *ns)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int files = 0;
    ck_assert_msg(d != NULL, "opendir %s", dir);
    while ((de = readdir(d))) {
        char path[4096];
        struct stat st;
        if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        ck_assert(lstat(path, &st) == 0);
        if (S_ISDIR(st.st_mode)) {
            ck_assert_msg((st.st_mode & 07777) == 0700, "%s: mode %o", path, st.st_mode & 07777);
            files += scan_tree(path, ns);
        } else {
            ck_assert_msg(S_ISREG(st.st_mode), "%s: not a regular file", path);
            ck_assert_msg((st.st_mode & 07777) == 0600, "%s: mode %o", path, st.st_mode & 07777);
            scan_file(path, ns);
            files++;
        }
    }
    closedir(d);
    return files;
}

/* authValue of a TPM-sealed wrapping key: SHA-256("ksp11-tpm-auth-v1" ||
 * salt || PIN) (provider/auth.c), never sent in clear (salted sessions) nor
 * stored or logged. */
static void add_auth(struct needles *ns, const uint8_t salt[16], const char *pin, const char *what)
{
    uint8_t in[64 + 255], md[32];
    size_t n = 0;
    memcpy(in, "ksp11-tpm-auth-v1", 17);
    n = 17;
    memcpy(in + n, salt, 16);
    n += 16;
    memcpy(in + n, pin, strlen(pin));
    n += strlen(pin);
    ck_assert(EVP_Digest(in, n, md, NULL, EVP_sha256(), NULL) == 1);
    add_forms(ns, what, md, sizeof(md));
}

/* The token's metadata (store.h decodes it) gives the salts. */
static void add_tpm_auth(struct needles *ns)
{
    DIR *d = opendir(ksp_t.store);
    struct dirent *de;
    struct ksp_token_meta m;
    int tokens = 0;
    ck_assert(d != NULL);
    while ((de = readdir(d))) {
        char dir[PATH_MAX + 300];
        if (strlen(de->d_name) != KSP_SERIAL_LEN)
            continue;
        snprintf(dir, sizeof(dir), "%s/%s", ksp_t.store, de->d_name);
        KSP_ASSERT_OK(ksp_store_meta_read(dir, &m));
        tokens++;
        ck_assert_msg(!!(m.flags & KSP_META_TPM) == ksp_test_tpm(),
                      "wrapping key %ssealed in the TPM", m.flags & KSP_META_TPM ? "" : "not ");
        if (m.flags & KSP_META_TPM) {
            add_auth(ns, m.so_tpm.salt, SEC_SO_PIN, "SO authValue");
            add_auth(ns, m.user_tpm.salt, SEC_NEW_PIN, "user authValue");
        }
    }
    closedir(d);
    ck_assert_int_eq(tokens, 1);
}

START_TEST(test_no_secret_at_rest_or_logged)
{
    static struct needles ns;
    EVP_PKEY *rsa = ksp_test_fixed_key(EVP_PKEY_RSA), *ec = ksp_test_fixed_key(EVP_PKEY_EC);
    CK_UTF8CHAR label[32];
    CK_SESSION_HANDLE s;
    CK_OBJECT_HANDLE pub, priv, h;
    char path[PATH_MAX + 8];

    umask(0); /* the module must not depend on the caller's umask */
    /* The token is made here with distinctive PINs that can be searched for. */
    ksp_t.slot = ksp_test_empty_slot();
    ksp_test_pad(label, sizeof(label), "sec");
    KSP_ASSERT_OK(
        P11->C_InitToken(ksp_t.slot, (CK_UTF8CHAR_PTR)SEC_SO_PIN, strlen(SEC_SO_PIN), label));
    ksp_t.slot = ksp_test_find_slot("sec");
    s = ksp_test_open(ksp_t.slot, true);
    ksp_test_login(s, CKU_SO, SEC_SO_PIN);
    KSP_ASSERT_OK(P11->C_InitPIN(s, (CK_UTF8CHAR_PTR)SEC_USER_PIN, strlen(SEC_USER_PIN)));
    KSP_ASSERT_OK(P11->C_Logout(s));
    KSP_ASSERT_RV(P11->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR) "WrongPin-0000", 13),
                  CKR_PIN_INCORRECT);
    ksp_test_login(s, CKU_USER, SEC_USER_PIN);
    ksp_test_import_private(s, rsa, "i-rsa", true, NULL, 0);
    ksp_test_import_private(s, ec, "i-ec", true, NULL, 0);
    ksp_test_gen_rsa(s, 2048, "g-rsa", true, &pub, &priv);
    ksp_test_gen_ec(s, NID_X9_62_prime256v1, "g-ec", true, &pub, &priv);
    h = ksp_test_find1(s, CKO_PRIVATE_KEY, "i-rsa");
    {
        CK_MECHANISM m = {CKM_SHA256_RSA_PKCS, NULL, 0};
        uint8_t sig[512];
        CK_ULONG sl = sizeof(sig);
        KSP_ASSERT_OK(P11->C_SignInit(s, &m, h));
        KSP_ASSERT_OK(P11->C_Sign(s, (CK_BYTE_PTR) "data", 4, sig, &sl));
    }
    KSP_ASSERT_OK(P11->C_SetPIN(s, (CK_UTF8CHAR_PTR)SEC_USER_PIN, strlen(SEC_USER_PIN),
                                (CK_UTF8CHAR_PTR)SEC_NEW_PIN, strlen(SEC_NEW_PIN)));
    ksp_test_finalize();

    add_forms(&ns, "SO PIN", (const uint8_t *)SEC_SO_PIN, strlen(SEC_SO_PIN));
    add_forms(&ns, "user PIN", (const uint8_t *)SEC_USER_PIN, strlen(SEC_USER_PIN));
    add_forms(&ns, "new user PIN", (const uint8_t *)SEC_NEW_PIN, strlen(SEC_NEW_PIN));
    add_forms(&ns, "wrong PIN", (const uint8_t *)"WrongPin-0000", 13);
    add_bn(&ns, rsa, OSSL_PKEY_PARAM_RSA_D, "RSA d");
    add_bn(&ns, rsa, OSSL_PKEY_PARAM_RSA_FACTOR1, "RSA p");
    add_bn(&ns, rsa, OSSL_PKEY_PARAM_RSA_FACTOR2, "RSA q");
    add_bn(&ns, rsa, OSSL_PKEY_PARAM_RSA_EXPONENT1, "RSA dP");
    add_bn(&ns, rsa, OSSL_PKEY_PARAM_RSA_EXPONENT2, "RSA dQ");
    add_bn(&ns, rsa, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, "RSA qInv");
    add_bn(&ns, ec, OSSL_PKEY_PARAM_PRIV_KEY, "EC scalar");
    add_der(&ns, rsa, "RSA DER");
    add_der(&ns, ec, "EC DER");
    add_tpm_auth(&ns);
    {
        BIGNUM *n = NULL;
        static uint8_t mod[512];
        ck_assert(EVP_PKEY_get_bn_param(rsa, OSSL_PKEY_PARAM_RSA_N, &n) == 1);
        control = (struct needle){"RSA modulus", mod, (size_t)BN_bn2bin(n, mod)};
        BN_free(n);
    }
    int files = scan_tree(ksp_t.store, &ns);
    ck_assert_msg(control_seen, "the public modulus was not found: the scan sees nothing");
    ck_assert_msg(files >= 5, "only %d files in the store", files);
    snprintf(path, sizeof(path), "%s/log", ksp_t.dir);
    struct stat st;
    ck_assert_msg(stat(path, &st) == 0 && st.st_size > 0, "no debug log at %s", path);
    ck_assert_msg((st.st_mode & 0077) == 0, "log file mode %o", st.st_mode & 07777);
    scan_file(path, &ns);
    fprintf(stderr, "# %d store files and the debug log (%ld bytes): %zu patterns absent\n", files,
            (long)st.st_size, ns.cnt);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
}
END_TEST

static Suite *security_suite(void)
{
    Suite *s = suite_create("api_security");
    TCase *tc = tcase_create("extract");
    ksp_test_add_fixtures(tc, true);
    tcase_set_timeout(tc, KSP_TEST_TIMEOUT);
    tcase_add_test(tc, test_sensitive_unreadable);
    tcase_add_test(tc, test_import_relaxed_refused);
    tcase_add_test(tc, test_set_attribute_one_way);
    tcase_add_test(tc, test_copy_refused);
    tcase_add_test(tc, test_wrap_refused);
    tcase_add_test(tc, test_rsa_raw_no_oracle);
    tcase_add_test(tc, test_ec_derive_no_leak);
    suite_add_tcase(s, tc);
    tc = tcase_create("rest");
    ksp_test_add_fixtures(tc, true);
    tcase_set_timeout(tc, KSP_TEST_TIMEOUT);
    tcase_add_test(tc, test_no_secret_at_rest_or_logged);
    tcase_add_test(tc, test_pin_guessing_concurrent);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(security_suite());
    int failed;
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
