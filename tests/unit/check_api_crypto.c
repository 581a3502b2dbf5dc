/*
 * API suite, cryptographic functions (PKCS#11 3.0 §5.8-§5.15, mechanisms of
 * §2.1 and §2.3): every mechanism of behaviour.md, signed and verified by the
 * module and checked independently with OpenSSL, encryption, digests, ECDH,
 * random, key usage enforcement, operation-state errors, and the functions
 * that are not supported.
 *
 * Keys: RSA-2048, RSA-3072, P-256 and P-384 token keys generated once per run
 * in a shared store (testlib), plus the fixed OpenSSL test keys imported as
 * session objects where a test needs special attributes.
 */
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/kdf.h>
#include <openssl/obj_mac.h>
#include <openssl/rsa.h>

static CK_BBOOL no = CK_FALSE;

/* DER DigestInfo prefix for SHA-256 (RFC 8017 §9.2 note 1). */
static const uint8_t sha256_prefix[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                        0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};

static void fill(uint8_t *buf, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++) {
        buf[i] = (uint8_t)(seed * 31 + i * 7 + (i >> 3));
    }
}

struct keypair {
    const char *label;
    CK_OBJECT_HANDLE priv, pub;
    EVP_PKEY *pk;   /* public key rebuilt from the module's attributes */
    EVP_PKEY *full; /* the private key in OpenSSL, for imported keys only */
    CK_ULONG siglen;
};

static void get_pair(struct keypair *kp, const char *label)
{
    CK_SESSION_HANDLE s = ksp_t.session;

    kp->label = label;
    kp->full = NULL;
    kp->priv = ksp_test_find1(s, CKO_PRIVATE_KEY, label);
    kp->pub = ksp_test_find1(s, CKO_PUBLIC_KEY, label);
    kp->pk = ksp_test_ossl_pubkey(s, kp->pub);
    if (EVP_PKEY_get_base_id(kp->pk) == EVP_PKEY_EC) {
        kp->siglen = 2 * (CK_ULONG)((EVP_PKEY_get_bits(kp->pk) + 7) / 8);
    } else {
        kp->siglen = (CK_ULONG)EVP_PKEY_get_size(kp->pk);
    }
}

static void put_pair(struct keypair *kp)
{
    EVP_PKEY_free(kp->pk);
}

/*
 * Sign data with mechanism m single-part and multi-part, following the
 * PKCS#11 buffer rules, verify with the module and with OpenSSL, and check
 * that bad signatures are refused with the right codes.
 */
static void check_sign(const struct keypair *kp, const CK_MECHANISM *m, const uint8_t *data,
                       size_t len, bool deterministic)
{
    CK_SESSION_HANDLE s = ksp_t.session;
    const char *mn = ksp_test_mech_name(m->mechanism);
    char ctx[96];
    CK_MECHANISM mech = *m;
    CK_BYTE sig[1024], sig2[1024], bad[1024];
    CK_ULONG siglen = 0, siglen2;
    size_t cut1 = len / 3, cut2 = 2 * len / 3;
    CK_RV rv;

    snprintf(ctx, sizeof(ctx), "%s/%s", kp->label, mn);

    /* Single part: length query, too small, then the real call. */
    KSP_ASSERT_RV_CTX(ctx, P11->C_SignInit(s, &mech, kp->priv), CKR_OK);
    rv = P11->C_Sign(s, (CK_BYTE_PTR)data, len, NULL, &siglen);
    ck_assert_msg(rv == CKR_OK, "%s/%s length query: %s", kp->label, mn, ksp_test_rv_name(rv));
    ck_assert_msg(siglen == kp->siglen, "%s/%s: length %lu, expected %lu", kp->label, mn, siglen,
                  kp->siglen);
    siglen = kp->siglen - 1;
    rv = P11->C_Sign(s, (CK_BYTE_PTR)data, len, sig, &siglen);
    ck_assert_msg(rv == CKR_BUFFER_TOO_SMALL, "%s/%s short buffer: %s", kp->label, mn,
                  ksp_test_rv_name(rv));
    ck_assert_msg(siglen == kp->siglen, "%s/%s: BUFFER_TOO_SMALL set length %lu", kp->label, mn,
                  siglen);
    siglen = sizeof(sig);
    rv = P11->C_Sign(s, (CK_BYTE_PTR)data, len, sig, &siglen);
    ck_assert_msg(rv == CKR_OK, "%s/%s after BUFFER_TOO_SMALL: %s (operation must stay active)",
                  kp->label, mn, ksp_test_rv_name(rv));
    ck_assert_uint_eq(siglen, kp->siglen);
    siglen2 = sizeof(sig2);
    KSP_ASSERT_RV_CTX(ctx, P11->C_Sign(s, (CK_BYTE_PTR)data, len, sig2, &siglen2),
                      CKR_OPERATION_NOT_INITIALIZED);
    ck_assert_msg(ksp_test_ossl_verify(kp->pk, m, data, len, sig, siglen),
                  "%s/%s: OpenSSL rejects the signature", kp->label, mn);

    /* Module verification, single part. */
    KSP_ASSERT_RV_CTX(ctx, P11->C_VerifyInit(s, &mech, kp->pub), CKR_OK);
    rv = P11->C_Verify(s, (CK_BYTE_PTR)data, len, sig, siglen);
    ck_assert_msg(rv == CKR_OK, "%s/%s C_Verify: %s", kp->label, mn, ksp_test_rv_name(rv));

    /* Multi-part sign, with the same buffer rules on C_SignFinal. */
    KSP_ASSERT_RV_CTX(ctx, P11->C_SignInit(s, &mech, kp->priv), CKR_OK);
    KSP_ASSERT_RV_CTX(ctx, P11->C_SignUpdate(s, (CK_BYTE_PTR)data, cut1), CKR_OK);
    KSP_ASSERT_RV_CTX(ctx, P11->C_SignUpdate(s, (CK_BYTE_PTR)data + cut1, cut2 - cut1), CKR_OK);
    KSP_ASSERT_RV_CTX(ctx, P11->C_SignUpdate(s, (CK_BYTE_PTR)data + cut2, len - cut2), CKR_OK);
    siglen2 = 0;
    KSP_ASSERT_RV_CTX(ctx, P11->C_SignFinal(s, NULL, &siglen2), CKR_OK);
    ck_assert_uint_eq(siglen2, kp->siglen);
    siglen2 = 1;
    KSP_ASSERT_RV_CTX(ctx, P11->C_SignFinal(s, sig2, &siglen2), CKR_BUFFER_TOO_SMALL);
    ck_assert_uint_eq(siglen2, kp->siglen);
    siglen2 = sizeof(sig2);
    rv = P11->C_SignFinal(s, sig2, &siglen2);
    ck_assert_msg(rv == CKR_OK, "%s/%s C_SignFinal: %s", kp->label, mn, ksp_test_rv_name(rv));
    ck_assert_msg(ksp_test_ossl_verify(kp->pk, m, data, len, sig2, siglen2),
                  "%s/%s: OpenSSL rejects the multi-part signature", kp->label, mn);
    if (deterministic) {
        ck_assert_msg(siglen2 == siglen && memcmp(sig, sig2, siglen) == 0,
                      "%s/%s: single and multi-part signatures differ", kp->label, mn);
    }
    KSP_ASSERT_RV_CTX(ctx, P11->C_SignFinal(s, sig2, &siglen2), CKR_OPERATION_NOT_INITIALIZED);

    /* Module verification, multi-part. */
    KSP_ASSERT_RV_CTX(ctx, P11->C_VerifyInit(s, &mech, kp->pub), CKR_OK);
    KSP_ASSERT_RV_CTX(ctx, P11->C_VerifyUpdate(s, (CK_BYTE_PTR)data, cut1), CKR_OK);
    KSP_ASSERT_RV_CTX(ctx, P11->C_VerifyUpdate(s, (CK_BYTE_PTR)data + cut1, len - cut1), CKR_OK);
    rv = P11->C_VerifyFinal(s, sig2, siglen2);
    ck_assert_msg(rv == CKR_OK, "%s/%s C_VerifyFinal: %s", kp->label, mn, ksp_test_rv_name(rv));

    /* Refusals (PKCS#11 3.0 §5.13). */
    memcpy(bad, sig, siglen);
    bad[siglen / 2] ^= 0x40;
    KSP_ASSERT_RV_CTX(ctx, P11->C_VerifyInit(s, &mech, kp->pub), CKR_OK);
    KSP_ASSERT_RV_CTX(ctx, P11->C_Verify(s, (CK_BYTE_PTR)data, len, bad, siglen),
                      CKR_SIGNATURE_INVALID);
    KSP_ASSERT_RV_CTX(ctx, P11->C_VerifyInit(s, &mech, kp->pub), CKR_OK);
    KSP_ASSERT_RV_CTX(ctx, P11->C_Verify(s, (CK_BYTE_PTR)data, len, sig, siglen - 1),
                      CKR_SIGNATURE_LEN_RANGE);
    KSP_ASSERT_RV_CTX(ctx, P11->C_VerifyInit(s, &mech, kp->pub), CKR_OK);
    KSP_ASSERT_RV_CTX(ctx, P11->C_VerifyUpdate(s, (CK_BYTE_PTR)data, len), CKR_OK);
    KSP_ASSERT_RV_CTX(ctx, P11->C_VerifyFinal(s, bad, siglen), CKR_SIGNATURE_INVALID);
    KSP_ASSERT_RV_CTX(ctx, P11->C_VerifyInit(s, &mech, kp->pub), CKR_OK);
    KSP_ASSERT_RV_CTX(ctx, P11->C_Verify(s, (CK_BYTE_PTR)data, len, sig, siglen + 1),
                      CKR_SIGNATURE_LEN_RANGE);
    /* Any verification result ends the operation. */
    KSP_ASSERT_RV_CTX(ctx, P11->C_Verify(s, (CK_BYTE_PTR)data, len, sig, siglen),
                      CKR_OPERATION_NOT_INITIALIZED);
}

struct hashinfo {
    CK_MECHANISM_TYPE digest, rsa, pss, ecdsa;
    CK_RSA_PKCS_MGF_TYPE mgf;
    CK_ULONG len;
};

static const struct hashinfo hashes[] = {
    {CKM_SHA_1, CKM_SHA1_RSA_PKCS, CKM_SHA1_RSA_PKCS_PSS, CKM_ECDSA_SHA1, CKG_MGF1_SHA1, 20},
    {CKM_SHA224, CKM_SHA224_RSA_PKCS, CKM_SHA224_RSA_PKCS_PSS, CKM_ECDSA_SHA224, CKG_MGF1_SHA224,
     28},
    {CKM_SHA256, CKM_SHA256_RSA_PKCS, CKM_SHA256_RSA_PKCS_PSS, CKM_ECDSA_SHA256, CKG_MGF1_SHA256,
     32},
    {CKM_SHA384, CKM_SHA384_RSA_PKCS, CKM_SHA384_RSA_PKCS_PSS, CKM_ECDSA_SHA384, CKG_MGF1_SHA384,
     48},
    {CKM_SHA512, CKM_SHA512_RSA_PKCS, CKM_SHA512_RSA_PKCS_PSS, CKM_ECDSA_SHA512, CKG_MGF1_SHA512,
     64},
};
#define N_HASHES (sizeof(hashes) / sizeof(hashes[0]))

static void rsa_all_mechanisms(const char *label, bool all_hashes)
{
    struct keypair kp;
    uint8_t msg[300], di[sizeof(sha256_prefix) + 32], hash[64];

    get_pair(&kp, label);
    fill(msg, sizeof(msg), 1);
    for (size_t i = 0; i < N_HASHES; i++) {
        const struct hashinfo *h = &hashes[i];
        CK_RSA_PKCS_PSS_PARAMS pp = {h->digest, h->mgf, h->len};
        CK_MECHANISM m = {h->rsa, NULL, 0};
        CK_MECHANISM pss = {h->pss, &pp, sizeof(pp)};
        CK_MECHANISM raw_pss = {CKM_RSA_PKCS_PSS, &pp, sizeof(pp)};

        if (!all_hashes && h->digest != CKM_SHA256 && h->digest != CKM_SHA384) {
            continue;
        }
        check_sign(&kp, &m, msg, sizeof(msg), true);
        check_sign(&kp, &pss, msg, sizeof(msg), false);
        ksp_test_digest(h->digest, msg, sizeof(msg), hash);
        check_sign(&kp, &raw_pss, hash, h->len, false);
    }
    /* CKM_RSA_PKCS signs a DigestInfo the caller built. */
    {
        CK_MECHANISM m = {CKM_RSA_PKCS, NULL, 0};

        memcpy(di, sha256_prefix, sizeof(sha256_prefix));
        ksp_test_digest(CKM_SHA256, msg, sizeof(msg), di + sizeof(sha256_prefix));
        check_sign(&kp, &m, di, sizeof(di), true);
    }
    put_pair(&kp);
}

START_TEST(test_rsa2048_sign)
{
    rsa_all_mechanisms("rsa", true);
}
END_TEST

START_TEST(test_rsa3072_sign)
{
    rsa_all_mechanisms("rsa3072", false);
}
END_TEST

static void ec_all_mechanisms(const char *label)
{
    struct keypair kp;
    uint8_t msg[300], hash[64];
    CK_MECHANISM raw = {CKM_ECDSA, NULL, 0};
    size_t hlen;

    get_pair(&kp, label);
    fill(msg, sizeof(msg), 2);
    for (size_t i = 0; i < N_HASHES; i++) {
        CK_MECHANISM m = {hashes[i].ecdsa, NULL, 0};

        check_sign(&kp, &m, msg, sizeof(msg), false);
    }
    /* Raw ECDSA over a hash of the curve's size. */
    hlen = ksp_test_digest(kp.siglen == 64 ? CKM_SHA256 : CKM_SHA384, msg, sizeof(msg), hash);
    check_sign(&kp, &raw, hash, hlen, false);
    put_pair(&kp);
}

START_TEST(test_p256_sign)
{
    ec_all_mechanisms("ec");
}
END_TEST

START_TEST(test_p384_sign)
{
    ec_all_mechanisms("ec384");
}
END_TEST

START_TEST(test_rsa_x509)
{
    CK_SESSION_HANDLE s = ksp_t.session;
    struct keypair kp;
    CK_MECHANISM x509 = {CKM_RSA_X_509, NULL, 0};
    CK_MECHANISM pkcs = {CKM_RSA_PKCS, NULL, 0};
    uint8_t block[256], di[sizeof(sha256_prefix) + 32], em[256];
    CK_BYTE sig[256], ref[256];
    CK_ULONG siglen, reflen;
    size_t k = 256, emlen = sizeof(em);

    get_pair(&kp, "rsa");
    /* A random block that is neither a type-1 nor a PSS encoding. */
    fill(block, k, 9);
    block[0] = 0x00;
    block[1] = 0x02;
    block[k - 1] = 0x55;
    siglen = sizeof(sig);
    KSP_ASSERT_OK(P11->C_SignInit(s, &x509, kp.priv));
    KSP_ASSERT_RV(P11->C_Sign(s, block, k, sig, &siglen), CKR_DATA_INVALID);
    KSP_ASSERT_RV(P11->C_Sign(s, block, k, sig, &siglen), CKR_OPERATION_NOT_INITIALIZED);

    /* A PKCS#1 v1.5 type-1 block is signed: the same as CKM_RSA_PKCS. */
    memcpy(di, sha256_prefix, sizeof(sha256_prefix));
    fill(di + sizeof(sha256_prefix), 32, 3);
    block[0] = 0x00;
    block[1] = 0x01;
    memset(block + 2, 0xff, k - 3 - sizeof(di));
    block[k - sizeof(di) - 1] = 0x00;
    memcpy(block + k - sizeof(di), di, sizeof(di));
    check_sign(&kp, &x509, block, k, true);
    siglen = sizeof(sig);
    KSP_ASSERT_OK(P11->C_SignInit(s, &x509, kp.priv));
    KSP_ASSERT_OK(P11->C_Sign(s, block, k, sig, &siglen));
    reflen = sizeof(ref);
    KSP_ASSERT_OK(P11->C_SignInit(s, &pkcs, kp.priv));
    KSP_ASSERT_OK(P11->C_Sign(s, di, sizeof(di), ref, &reflen));
    ck_assert_msg(siglen == reflen && memcmp(sig, ref, siglen) == 0,
                  "CKM_RSA_X_509 of a type-1 block differs from CKM_RSA_PKCS");

    /* A PSS encoding is signed too: recover one from a PSS signature. */
    {
        CK_RSA_PKCS_PSS_PARAMS pp = {CKM_SHA256, CKG_MGF1_SHA256, 32};
        CK_MECHANISM pss = {CKM_RSA_PKCS_PSS, &pp, sizeof(pp)};
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(kp.pk, NULL);

        reflen = sizeof(ref);
        KSP_ASSERT_OK(P11->C_SignInit(s, &pss, kp.priv));
        KSP_ASSERT_OK(P11->C_Sign(s, di + sizeof(sha256_prefix), 32, ref, &reflen));
        ck_assert(ctx != NULL && EVP_PKEY_verify_recover_init(ctx) == 1);
        ck_assert(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING) == 1);
        ck_assert(EVP_PKEY_verify_recover(ctx, em, &emlen, ref, reflen) == 1 && emlen == k);
        EVP_PKEY_CTX_free(ctx);
        siglen = sizeof(sig);
        KSP_ASSERT_OK(P11->C_SignInit(s, &x509, kp.priv));
        KSP_ASSERT_OK(P11->C_Sign(s, em, k, sig, &siglen));
        ck_assert_msg(siglen == reflen && memcmp(sig, ref, siglen) == 0,
                      "CKM_RSA_X_509 of a PSS block differs from the PSS signature");
    }

    /* behaviour.md: CKM_RSA_X_509 neither encrypts nor decrypts. */
    KSP_ASSERT_RV(P11->C_EncryptInit(s, &x509, kp.pub), CKR_MECHANISM_INVALID);
    KSP_ASSERT_RV(P11->C_DecryptInit(s, &x509, kp.priv), CKR_MECHANISM_INVALID);
    put_pair(&kp);
}
END_TEST

START_TEST(test_raw_length_limits)
{
    CK_SESSION_HANDLE s = ksp_t.session;
    struct keypair kp;
    CK_MECHANISM pkcs = {CKM_RSA_PKCS, NULL, 0};
    uint8_t big[300];
    CK_BYTE sig[256];
    CK_ULONG siglen = sizeof(sig);
    CK_RV rv;

    get_pair(&kp, "rsa");
    fill(big, sizeof(big), 4);
    /* PKCS#1 v1.5 leaves room for k - 11 bytes. */
    KSP_ASSERT_OK(P11->C_SignInit(s, &pkcs, kp.priv));
    KSP_ASSERT_RV(P11->C_Sign(s, big, 256 - 10, sig, &siglen), CKR_DATA_LEN_RANGE);
    /* Multi-part raw mechanisms buffer up to the modulus size only: the
     * excess is refused by C_SignUpdate or, at the latest, C_SignFinal, and
     * the error ends the operation. */
    KSP_ASSERT_OK(P11->C_SignInit(s, &pkcs, kp.priv));
    KSP_ASSERT_OK(P11->C_SignUpdate(s, big, 100));
    rv = P11->C_SignUpdate(s, big, 200);
    ck_assert_msg(rv == CKR_OK || rv == CKR_DATA_LEN_RANGE, "C_SignUpdate past k: %s",
                  ksp_test_rv_name(rv));
    if (rv == CKR_OK) {
        KSP_ASSERT_RV(P11->C_SignFinal(s, sig, &siglen), CKR_DATA_LEN_RANGE);
    }
    KSP_ASSERT_RV(P11->C_SignFinal(s, sig, &siglen), CKR_OPERATION_NOT_INITIALIZED);
    /* Within k - 11 bytes, multi-part CKM_RSA_PKCS works. */
    KSP_ASSERT_OK(P11->C_SignInit(s, &pkcs, kp.priv));
    KSP_ASSERT_OK(P11->C_SignUpdate(s, big, 100));
    KSP_ASSERT_OK(P11->C_SignUpdate(s, big + 100, 145));
    siglen = sizeof(sig);
    KSP_ASSERT_OK(P11->C_SignFinal(s, sig, &siglen));
    ck_assert(ksp_test_ossl_verify(kp.pk, &pkcs, big, 245, sig, siglen));
    put_pair(&kp);
}
END_TEST

START_TEST(test_pss_params)
{
    CK_SESSION_HANDLE s = ksp_t.session;
    struct keypair kp;
    CK_RSA_PKCS_PSS_PARAMS bad[] = {
        {CKM_SHA256, CKG_MGF1_SHA256, 20}, /* salt != hash length */
        {CKM_SHA256, CKG_MGF1_SHA256, 0},
        {CKM_SHA256, CKG_MGF1_SHA1, 32}, /* MGF1 hash != hash */
        {CKM_MD5, CKG_MGF1_SHA256, 16},
    };
    CK_RSA_PKCS_PSS_PARAMS good = {CKM_SHA256, CKG_MGF1_SHA256, 32};
    CK_RSA_PKCS_PSS_PARAMS sha1 = {CKM_SHA_1, CKG_MGF1_SHA1, 20};
    CK_MECHANISM m;

    get_pair(&kp, "rsa");
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CK_MECHANISM_TYPE types[] = {CKM_RSA_PKCS_PSS, CKM_SHA256_RSA_PKCS_PSS};

        for (int t = 0; t < 2; t++) {
            m = (CK_MECHANISM){types[t], &bad[i], sizeof(bad[i])};
            KSP_ASSERT_RV(P11->C_SignInit(s, &m, kp.priv), CKR_MECHANISM_PARAM_INVALID);
            KSP_ASSERT_RV(P11->C_VerifyInit(s, &m, kp.pub), CKR_MECHANISM_PARAM_INVALID);
        }
    }
    m = (CK_MECHANISM){CKM_RSA_PKCS_PSS, NULL, 0};
    KSP_ASSERT_RV(P11->C_SignInit(s, &m, kp.priv), CKR_MECHANISM_PARAM_INVALID);
    m = (CK_MECHANISM){CKM_RSA_PKCS_PSS, &good, sizeof(good) - 1};
    KSP_ASSERT_RV(P11->C_SignInit(s, &m, kp.priv), CKR_MECHANISM_PARAM_INVALID);
    /* The hash in the parameters must be the mechanism's hash. */
    m = (CK_MECHANISM){CKM_SHA256_RSA_PKCS_PSS, &sha1, sizeof(sha1)};
    KSP_ASSERT_RV(P11->C_SignInit(s, &m, kp.priv), CKR_MECHANISM_PARAM_INVALID);
    /* Nothing was left active by the refusals. */
    m = (CK_MECHANISM){CKM_SHA256_RSA_PKCS_PSS, &good, sizeof(good)};
    KSP_ASSERT_OK(P11->C_SignInit(s, &m, kp.priv));
    put_pair(&kp);
}
END_TEST

/* ---- encryption ------------------------------------------------------------ */

static CK_MECHANISM_TYPE mgf_md(CK_RSA_PKCS_MGF_TYPE mgf)
{
    for (size_t i = 0; i < N_HASHES; i++) {
        if (hashes[i].mgf == mgf)
            return hashes[i].digest;
    }
    ck_abort_msg("unknown MGF 0x%lx", mgf);
    return 0;
}

static void ossl_crypt(bool encrypt, EVP_PKEY *pk, const CK_MECHANISM *m, const uint8_t *in,
                       size_t len, uint8_t *out, size_t *outlen)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pk, NULL);

    ck_assert(ctx != NULL);
    ck_assert((encrypt ? EVP_PKEY_encrypt_init(ctx) : EVP_PKEY_decrypt_init(ctx)) == 1);
    if (m->mechanism == CKM_RSA_PKCS_OAEP) {
        const CK_RSA_PKCS_OAEP_PARAMS *p = m->pParameter;

        ck_assert(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) == 1);
        ck_assert(EVP_PKEY_CTX_set_rsa_oaep_md(ctx, ksp_test_md(p->hashAlg)) == 1);
        ck_assert(EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, ksp_test_md(mgf_md(p->mgf))) == 1);
        if (p->ulSourceDataLen > 0) {
            void *label = OPENSSL_memdup(p->pSourceData, p->ulSourceDataLen);

            ck_assert(EVP_PKEY_CTX_set0_rsa_oaep_label(ctx, label, (int)p->ulSourceDataLen) == 1);
        }
    } else {
        ck_assert(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1);
    }
    if (encrypt) {
        ck_assert(EVP_PKEY_encrypt(ctx, out, outlen, in, len) == 1);
    } else {
        ck_assert_msg(EVP_PKEY_decrypt(ctx, out, outlen, in, len) == 1,
                      "OpenSSL cannot decrypt the module's ciphertext");
    }
    EVP_PKEY_CTX_free(ctx);
}

static void check_crypt(const struct keypair *kp, const CK_MECHANISM *m, const char *what)
{
    CK_SESSION_HANDLE s = ksp_t.session;
    CK_MECHANISM mech = *m;
    uint8_t msg[32], ct[512], pt[512];
    CK_ULONG ctlen = 0, ptlen = 0, k = kp->siglen;
    size_t olen = sizeof(ct);
    CK_RV rv;

    fill(msg, sizeof(msg), 5);
    /* Module encrypts with the public key. */
    KSP_ASSERT_RV_CTX(what, P11->C_EncryptInit(s, &mech, kp->pub), CKR_OK);
    KSP_ASSERT_RV_CTX(what, P11->C_Encrypt(s, msg, sizeof(msg), NULL, &ctlen), CKR_OK);
    ck_assert_msg(ctlen == k, "%s: encrypt length %lu, expected %lu", what, ctlen, k);
    ctlen = k - 1;
    KSP_ASSERT_RV_CTX(what, P11->C_Encrypt(s, msg, sizeof(msg), ct, &ctlen), CKR_BUFFER_TOO_SMALL);
    ctlen = sizeof(ct);
    rv = P11->C_Encrypt(s, msg, sizeof(msg), ct, &ctlen);
    ck_assert_msg(rv == CKR_OK, "%s: C_Encrypt after BUFFER_TOO_SMALL: %s", what,
                  ksp_test_rv_name(rv));
    ck_assert_uint_eq(ctlen, k);

    /* ... and decrypts with the private key, with the same buffer rules. */
    KSP_ASSERT_RV_CTX(what, P11->C_DecryptInit(s, &mech, kp->priv), CKR_OK);
    KSP_ASSERT_RV_CTX(what, P11->C_Decrypt(s, ct, ctlen, NULL, &ptlen), CKR_OK);
    ck_assert_msg(ptlen >= sizeof(msg) && ptlen <= k, "%s: decrypt length query %lu", what, ptlen);
    ptlen = 4;
    KSP_ASSERT_RV_CTX(what, P11->C_Decrypt(s, ct, ctlen, pt, &ptlen), CKR_BUFFER_TOO_SMALL);
    ptlen = sizeof(pt);
    rv = P11->C_Decrypt(s, ct, ctlen, pt, &ptlen);
    ck_assert_msg(rv == CKR_OK, "%s: C_Decrypt: %s", what, ksp_test_rv_name(rv));
    ck_assert_msg(ptlen == sizeof(msg) && memcmp(pt, msg, sizeof(msg)) == 0,
                  "%s: decrypted text differs", what);
    KSP_ASSERT_RV_CTX(what, P11->C_Decrypt(s, ct, ctlen, pt, &ptlen),
                      CKR_OPERATION_NOT_INITIALIZED);

    /* Independent: OpenSSL decrypts what the module encrypted ... */
    if (kp->full != NULL) {
        uint8_t opt[512];
        size_t optlen = sizeof(opt);

        ossl_crypt(false, kp->full, m, ct, ctlen, opt, &optlen);
        ck_assert_msg(optlen == sizeof(msg) && memcmp(opt, msg, sizeof(msg)) == 0,
                      "%s: OpenSSL decrypts the module's ciphertext to something else", what);
    }
    /* ... and the module decrypts what OpenSSL encrypted. */
    ossl_crypt(true, kp->pk, m, msg, sizeof(msg), ct, &olen);
    KSP_ASSERT_RV_CTX(what, P11->C_DecryptInit(s, &mech, kp->priv), CKR_OK);
    ptlen = sizeof(pt);
    rv = P11->C_Decrypt(s, ct, olen, pt, &ptlen);
    ck_assert_msg(rv == CKR_OK, "%s: decrypting OpenSSL's ciphertext: %s", what,
                  ksp_test_rv_name(rv));
    ck_assert_msg(ptlen == sizeof(msg) && memcmp(pt, msg, sizeof(msg)) == 0,
                  "%s: OpenSSL's plaintext differs", what);

    /* PKCS#11 3.0 §5.10: bad ciphertexts. Raw-encrypt a block whose padding
     * is certainly wrong (block type 5; OAEP hash check), so the test is
     * deterministic. */
    {
        EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(kp->pk, NULL);
        uint8_t em[512];

        fill(em, k, 8);
        em[0] = 0x00;
        em[1] = 0x05;
        olen = sizeof(ct);
        ck_assert(ctx != NULL && EVP_PKEY_encrypt_init(ctx) == 1);
        ck_assert(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING) == 1);
        ck_assert(EVP_PKEY_encrypt(ctx, ct, &olen, em, k) == 1 && olen == k);
        EVP_PKEY_CTX_free(ctx);
    }
    KSP_ASSERT_RV_CTX(what, P11->C_DecryptInit(s, &mech, kp->priv), CKR_OK);
    ptlen = sizeof(pt);
    KSP_ASSERT_RV_CTX(what, P11->C_Decrypt(s, ct, olen, pt, &ptlen), CKR_ENCRYPTED_DATA_INVALID);
    KSP_ASSERT_RV_CTX(what, P11->C_DecryptInit(s, &mech, kp->priv), CKR_OK);
    ptlen = sizeof(pt);
    KSP_ASSERT_RV_CTX(what, P11->C_Decrypt(s, ct, olen - 1, pt, &ptlen),
                      CKR_ENCRYPTED_DATA_LEN_RANGE);
}

/* OAEP-decrypt ct with the module under m; expect rv (and, on CKR_OK, msg). */
static void module_oaep_decrypt(const struct keypair *kp, const CK_RSA_PKCS_OAEP_PARAMS *p,
                                const uint8_t *ct, size_t ctlen, const uint8_t *msg, size_t mlen,
                                CK_RV want, const char *what)
{
    CK_SESSION_HANDLE s = ksp_t.session;
    CK_MECHANISM m = {CKM_RSA_PKCS_OAEP, (void *)p, sizeof(*p)};
    uint8_t pt[512];
    CK_ULONG ptlen = sizeof(pt);

    KSP_ASSERT_RV_CTX(what, P11->C_DecryptInit(s, &m, kp->priv), CKR_OK);
    KSP_ASSERT_RV_CTX(what, P11->C_Decrypt(s, (CK_BYTE_PTR)ct, ctlen, pt, &ptlen), want);
    if (want == CKR_OK) {
        ck_assert_msg(ptlen == mlen && (mlen == 0 || memcmp(pt, msg, mlen) == 0),
                      "%s: decrypted %lu bytes, expected %zu", what, ptlen, mlen);
    }
}

/*
 * OAEP decoding at its edges, against OpenSSL's encryption: empty and
 * longest messages (the decoder moves the message into place by shifts), a
 * binary label with NUL bytes (which TPM2_RSA_Decrypt cannot take), and
 * ciphertexts that must not decode: other label, other hash, other MGF1
 * hash, and a value not below the modulus.
 */
static void check_oaep_edges(const struct keypair *kp)
{
    static const uint8_t bin_label[] = {0x00, 0x01, 0x00, 0xff, 0x00};
    CK_RSA_PKCS_OAEP_PARAMS sha256 = {CKM_SHA256, CKG_MGF1_SHA256, CKZ_DATA_SPECIFIED, NULL, 0};
    CK_RSA_PKCS_OAEP_PARAMS sha1 = {CKM_SHA_1, CKG_MGF1_SHA1, CKZ_DATA_SPECIFIED, NULL, 0};
    CK_RSA_PKCS_OAEP_PARAMS bin = {CKM_SHA256, CKG_MGF1_SHA256, CKZ_DATA_SPECIFIED,
                                   (void *)bin_label, sizeof(bin_label)};
    CK_RSA_PKCS_OAEP_PARAMS mgf1 = {CKM_SHA256, CKG_MGF1_SHA1, CKZ_DATA_SPECIFIED, NULL, 0};
    CK_RSA_PKCS_OAEP_PARAMS lbl = {CKM_SHA256, CKG_MGF1_SHA256, CKZ_DATA_SPECIFIED,
                                   (void *)"a label", 7};
    const CK_RSA_PKCS_OAEP_PARAMS *all[] = {&sha256, &sha1, &bin, &mgf1, &lbl};
    size_t k = kp->siglen;
    uint8_t msg[512], ct[512];
    size_t olen = 0;

    fill(msg, sizeof(msg), 9);
    for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
        const CK_RSA_PKCS_OAEP_PARAMS *p = all[i];
        CK_MECHANISM m = {CKM_RSA_PKCS_OAEP, (void *)p, sizeof(*p)};
        size_t hlen = (size_t)EVP_MD_get_size(ksp_test_md(p->hashAlg));
        size_t lens[] = {0, 1, k - 2 * hlen - 3, k - 2 * hlen - 2};
        char what[96];

        for (size_t j = 0; j < sizeof(lens) / sizeof(lens[0]); j++) {
            snprintf(what, sizeof(what), "OAEP edge %zu: %zu-byte message", i, lens[j]);
            olen = sizeof(ct);
            ossl_crypt(true, kp->pk, &m, msg, lens[j], ct, &olen);
            module_oaep_decrypt(kp, p, ct, olen, msg, lens[j], CKR_OK, what);
        }
        /* One byte over the longest message: the module refuses to encrypt it. */
        {
            CK_ULONG ctlen = sizeof(ct);

            KSP_ASSERT_RV(P11->C_EncryptInit(ksp_t.session, &m, kp->pub), CKR_OK);
            KSP_ASSERT_RV(P11->C_Encrypt(ksp_t.session, msg, k - 2 * hlen - 1, ct, &ctlen),
                          CKR_DATA_LEN_RANGE);
        }
    }
    /* Encrypted under one set of parameters, decrypted under another. */
    olen = sizeof(ct);
    {
        CK_MECHANISM m = {CKM_RSA_PKCS_OAEP, &bin, sizeof(bin)};
        ossl_crypt(true, kp->pk, &m, msg, 16, ct, &olen);
    }
    module_oaep_decrypt(kp, &sha256, ct, olen, NULL, 0, CKR_ENCRYPTED_DATA_INVALID,
                        "binary label, decrypted without");
    module_oaep_decrypt(kp, &lbl, ct, olen, NULL, 0, CKR_ENCRYPTED_DATA_INVALID,
                        "binary label, decrypted with another");
    module_oaep_decrypt(kp, &mgf1, ct, olen, NULL, 0, CKR_ENCRYPTED_DATA_INVALID,
                        "MGF1-SHA256, decrypted with MGF1-SHA1");
    module_oaep_decrypt(kp, &bin, ct, olen, msg, 16, CKR_OK, "binary label");
    olen = sizeof(ct);
    {
        CK_MECHANISM m = {CKM_RSA_PKCS_OAEP, &sha256, sizeof(sha256)};
        ossl_crypt(true, kp->pk, &m, msg, 16, ct, &olen);
    }
    module_oaep_decrypt(kp, &sha1, ct, olen, NULL, 0, CKR_ENCRYPTED_DATA_INVALID,
                        "SHA-256, decrypted as SHA-1");
    module_oaep_decrypt(kp, &bin, ct, olen, NULL, 0, CKR_ENCRYPTED_DATA_INVALID,
                        "no label, decrypted with a binary one");
    /* All ones: not below the modulus. */
    memset(ct, 0xff, k);
    module_oaep_decrypt(kp, &sha256, ct, k, NULL, 0, CKR_ENCRYPTED_DATA_INVALID,
                        "ciphertext >= modulus");
    module_oaep_decrypt(kp, &bin, ct, k, NULL, 0, CKR_ENCRYPTED_DATA_INVALID,
                        "ciphertext >= modulus, binary label");
}

START_TEST(test_rsa_encrypt)
{
    CK_SESSION_HANDLE s = ksp_t.session;
    struct keypair kp, big;
    CK_MECHANISM pkcs = {CKM_RSA_PKCS, NULL, 0};
    uint8_t msg[256], ct[256];
    CK_ULONG ctlen = sizeof(ct);
    char what[64];

    get_pair(&kp, "rsa");
    check_crypt(&kp, &pkcs, "CKM_RSA_PKCS");
    /* Every OAEP hash, with and without a label, on TPM keys as on software
     * keys: what the TPM cannot do natively (SHA-224, a label, an MGF1 hash
     * other than the OAEP hash) the core decodes after a raw RSA operation. */
    for (size_t i = 0; i < N_HASHES; i++) {
        CK_RSA_PKCS_OAEP_PARAMS p = {hashes[i].digest, hashes[i].mgf, CKZ_DATA_SPECIFIED, NULL, 0};
        CK_MECHANISM m = {CKM_RSA_PKCS_OAEP, &p, sizeof(p)};

        snprintf(what, sizeof(what), "OAEP %s", ksp_test_mech_name(hashes[i].digest));
        check_crypt(&kp, &m, what);
        p.pSourceData = (void *)"a label";
        p.ulSourceDataLen = 7;
        snprintf(what, sizeof(what), "OAEP %s with label", ksp_test_mech_name(hashes[i].digest));
        check_crypt(&kp, &m, what);
    }
    /* MGF1 with another hash than the OAEP hash, both ways round. */
    {
        static const CK_RSA_PKCS_OAEP_PARAMS mixed[] = {
            {CKM_SHA256, CKG_MGF1_SHA1, CKZ_DATA_SPECIFIED, NULL, 0},
            {CKM_SHA_1, CKG_MGF1_SHA256, CKZ_DATA_SPECIFIED, NULL, 0},
            {CKM_SHA384, CKG_MGF1_SHA512, CKZ_DATA_SPECIFIED, (void *)"lbl", 3},
            {CKM_SHA512, CKG_MGF1_SHA224, CKZ_DATA_SPECIFIED, NULL, 0},
        };

        for (size_t i = 0; i < sizeof(mixed) / sizeof(mixed[0]); i++) {
            CK_RSA_PKCS_OAEP_PARAMS p = mixed[i];
            CK_MECHANISM m = {CKM_RSA_PKCS_OAEP, &p, sizeof(p)};

            snprintf(what, sizeof(what), "OAEP %s, MGF1 %s", ksp_test_mech_name(p.hashAlg),
                     ksp_test_mech_name(mgf_md(p.mgf)));
            check_crypt(&kp, &m, what);
        }
    }
    check_oaep_edges(&kp);
    /* Too long for PKCS#1 v1.5 padding. */
    fill(msg, sizeof(msg), 6);
    KSP_ASSERT_OK(P11->C_EncryptInit(s, &pkcs, kp.pub));
    KSP_ASSERT_RV(P11->C_Encrypt(s, msg, 256 - 10, ct, &ctlen), CKR_DATA_LEN_RANGE);
    /* OAEP parameters: a known MGF and hash, a known source. */
    {
        static const CK_RSA_PKCS_OAEP_PARAMS bad[] = {
            {CKM_SHA256, 0x99, CKZ_DATA_SPECIFIED, NULL, 0},
            {CKM_MD5, CKG_MGF1_SHA256, CKZ_DATA_SPECIFIED, NULL, 0},
            {CKM_SHA256, CKG_MGF1_SHA256, 0x77, NULL, 0},
            {CKM_SHA256, CKG_MGF1_SHA256, CKZ_DATA_SPECIFIED, NULL, 4},
        };

        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            CK_RSA_PKCS_OAEP_PARAMS p = bad[i];
            CK_MECHANISM m = {CKM_RSA_PKCS_OAEP, &p, sizeof(p)};

            KSP_ASSERT_RV(P11->C_EncryptInit(s, &m, kp.pub), CKR_MECHANISM_PARAM_INVALID);
            KSP_ASSERT_RV(P11->C_DecryptInit(s, &m, kp.priv), CKR_MECHANISM_PARAM_INVALID);
        }
        CK_MECHANISM m = {CKM_RSA_PKCS_OAEP, NULL, 0};
        KSP_ASSERT_RV(P11->C_EncryptInit(s, &m, kp.pub), CKR_MECHANISM_PARAM_INVALID);
    }
    /* behaviour.md: no encryption with the private key. */
    /* Encryption needs a public key (§5.8): a private key is the wrong type. */
    KSP_ASSERT_RV(P11->C_EncryptInit(s, &pkcs, kp.priv), CKR_KEY_TYPE_INCONSISTENT);
    put_pair(&kp);

    get_pair(&big, "rsa3072");
    {
        CK_RSA_PKCS_OAEP_PARAMS p = {CKM_SHA384, CKG_MGF1_SHA384, CKZ_DATA_SPECIFIED, NULL, 0};
        CK_MECHANISM m = {CKM_RSA_PKCS_OAEP, &p, sizeof(p)};

        check_crypt(&big, &m, "RSA-3072 OAEP SHA-384");
    }
    put_pair(&big);

    /* An imported key, whose private half OpenSSL has too. */
    {
        CK_RSA_PKCS_OAEP_PARAMS p = {CKM_SHA256, CKG_MGF1_SHA256, CKZ_DATA_SPECIFIED,
                                     (void *)"a label", 7};
        CK_MECHANISM m = {CKM_RSA_PKCS_OAEP, &p, sizeof(p)};
        struct keypair fx;

        fx.label = "fixed";
        fx.full = ksp_test_fixed_key(EVP_PKEY_RSA);
        fx.priv = ksp_test_import_private(s, fx.full, "fixed", false, NULL, 0);
        fx.pub = ksp_test_import_public(s, fx.full, "fixed", false, NULL, 0);
        fx.pk = ksp_test_ossl_pubkey(s, fx.pub);
        fx.siglen = 256;
        check_crypt(&fx, &pkcs, "imported key, CKM_RSA_PKCS");
        check_crypt(&fx, &m, "imported key, OAEP SHA-256 with label");
        EVP_PKEY_free(fx.full);
        put_pair(&fx);
    }
}
END_TEST

/* ---- usage enforcement ------------------------------------------------------ */

START_TEST(test_usage_enforcement)
{
    CK_SESSION_HANDLE s = ksp_t.session;
    EVP_PKEY *rsa = ksp_test_fixed_key(EVP_PKEY_RSA);
    EVP_PKEY *ec = ksp_test_fixed_key(EVP_PKEY_EC);
    CK_ATTRIBUTE nosign[] = {{CKA_SIGN, &no, 1}, {CKA_DECRYPT, &no, 1}};
    CK_ATTRIBUTE noverify[] = {{CKA_VERIFY, &no, 1}, {CKA_ENCRYPT, &no, 1}};
    CK_ATTRIBUTE noderive = {CKA_DERIVE, &no, 1};
    CK_MECHANISM_TYPE allowed[] = {CKM_SHA256_RSA_PKCS};
    CK_ATTRIBUTE restricted = {CKA_ALLOWED_MECHANISMS, allowed, sizeof(allowed)};
    CK_OBJECT_HANDLE k_nosign = ksp_test_import_private(s, rsa, "nosign", false, nosign, 2);
    CK_OBJECT_HANDLE k_noverify = ksp_test_import_public(s, rsa, "noverify", false, noverify, 2);
    CK_OBJECT_HANDLE k_noderive = ksp_test_import_private(s, ec, "noderive", false, &noderive, 1);
    CK_OBJECT_HANDLE k_restricted = ksp_test_import_private(s, rsa, "restr", false, &restricted, 1);
    CK_OBJECT_HANDLE ec_priv = ksp_test_find1(s, CKO_PRIVATE_KEY, "ec");
    CK_OBJECT_HANDLE ec_pub = ksp_test_find1(s, CKO_PUBLIC_KEY, "ec");
    CK_OBJECT_HANDLE rsa_priv = ksp_test_find1(s, CKO_PRIVATE_KEY, "rsa");
    CK_OBJECT_HANDLE data = ksp_test_create_data(s, "not-a-key", false, false);
    CK_MECHANISM sha256rsa = {CKM_SHA256_RSA_PKCS, NULL, 0};
    CK_MECHANISM pkcs = {CKM_RSA_PKCS, NULL, 0};
    CK_MECHANISM ecdsa = {CKM_ECDSA_SHA256, NULL, 0};
    CK_MECHANISM digest = {CKM_SHA256, NULL, 0};
    uint8_t point[80];
    CK_ECDH1_DERIVE_PARAMS dp = {CKD_NULL, 0, NULL, 0, point};
    CK_MECHANISM ecdh = {CKM_ECDH1_DERIVE, &dp, sizeof(dp)};
    CK_OBJECT_CLASS sk = CKO_SECRET_KEY;
    CK_KEY_TYPE gs = CKK_GENERIC_SECRET;
    CK_ATTRIBUTE dt[] = {{CKA_CLASS, &sk, sizeof(sk)}, {CKA_KEY_TYPE, &gs, sizeof(gs)}};
    CK_OBJECT_HANDLE derived;
    CK_BYTE sig[512];
    CK_ULONG siglen = sizeof(sig);

    dp.ulPublicDataLen = ksp_test_ec_point(ec, point, sizeof(point));
    /* PKCS#11 3.0 §5.13: usage attributes are checked at *Init. */
    KSP_ASSERT_RV(P11->C_SignInit(s, &sha256rsa, k_nosign), CKR_KEY_FUNCTION_NOT_PERMITTED);
    KSP_ASSERT_RV(P11->C_DecryptInit(s, &pkcs, k_nosign), CKR_KEY_FUNCTION_NOT_PERMITTED);
    KSP_ASSERT_RV(P11->C_VerifyInit(s, &sha256rsa, k_noverify), CKR_KEY_FUNCTION_NOT_PERMITTED);
    KSP_ASSERT_RV(P11->C_EncryptInit(s, &pkcs, k_noverify), CKR_KEY_FUNCTION_NOT_PERMITTED);
    KSP_ASSERT_RV(P11->C_DeriveKey(s, &ecdh, k_noderive, dt, 2, &derived),
                  CKR_KEY_FUNCTION_NOT_PERMITTED);
    KSP_ASSERT_RV(P11->C_Sign(s, (CK_BYTE_PTR) "x", 1, sig, &siglen),
                  CKR_OPERATION_NOT_INITIALIZED);

    /* CKA_ALLOWED_MECHANISMS restricts. */
    KSP_ASSERT_RV(P11->C_SignInit(s, &pkcs, k_restricted), CKR_MECHANISM_INVALID);
    KSP_ASSERT_RV(P11->C_DecryptInit(s, &pkcs, k_restricted), CKR_MECHANISM_INVALID);
    KSP_ASSERT_OK(P11->C_SignInit(s, &sha256rsa, k_restricted));
    KSP_ASSERT_OK(P11->C_Sign(s, (CK_BYTE_PTR) "x", 1, sig, &siglen));

    /* Mechanism and key type must agree. */
    KSP_ASSERT_RV(P11->C_SignInit(s, &sha256rsa, ec_priv), CKR_KEY_TYPE_INCONSISTENT);
    KSP_ASSERT_RV(P11->C_VerifyInit(s, &sha256rsa, ec_pub), CKR_KEY_TYPE_INCONSISTENT);
    KSP_ASSERT_RV(P11->C_SignInit(s, &ecdsa, rsa_priv), CKR_KEY_TYPE_INCONSISTENT);
    KSP_ASSERT_RV(P11->C_DeriveKey(s, &ecdh, rsa_priv, dt, 2, &derived), CKR_KEY_TYPE_INCONSISTENT);

    /* Handles that are not keys, and mechanisms that do not sign. */
    KSP_ASSERT_RV(P11->C_SignInit(s, &ecdsa, data), CKR_KEY_HANDLE_INVALID);
    KSP_ASSERT_RV(P11->C_SignInit(s, &ecdsa, 0x7ffff00dUL), CKR_KEY_HANDLE_INVALID);
    KSP_ASSERT_RV(P11->C_SignInit(s, &ecdsa, CK_INVALID_HANDLE), CKR_KEY_HANDLE_INVALID);
    KSP_ASSERT_RV(P11->C_SignInit(s, &digest, ec_priv), CKR_MECHANISM_INVALID);
    KSP_ASSERT_RV(P11->C_SignInit(s, NULL, ec_priv), CKR_ARGUMENTS_BAD);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
}
END_TEST

/* ---- digests ---------------------------------------------------------------- */

START_TEST(test_digests)
{
    CK_SESSION_HANDLE s = ksp_t.session;
    static uint8_t big[1 << 16];
    uint8_t want[64], got[64];
    CK_ULONG len;
    CK_MECHANISM md5 = {CKM_MD5, NULL, 0};

    fill(big, sizeof(big), 7);
    for (size_t i = 0; i < N_HASHES; i++) {
        CK_MECHANISM m = {hashes[i].digest, NULL, 0};
        const char *mn = ksp_test_mech_name(m.mechanism);
        size_t wlen = ksp_test_digest(m.mechanism, big, sizeof(big), want);

        KSP_ASSERT_OK(P11->C_DigestInit(s, &m));
        KSP_ASSERT_RV(P11->C_DigestInit(s, &m), CKR_OPERATION_ACTIVE);
        len = 0;
        KSP_ASSERT_OK(P11->C_Digest(s, big, sizeof(big), NULL, &len));
        ck_assert_msg(len == wlen, "%s: length %lu, expected %zu", mn, len, wlen);
        len = wlen - 1;
        KSP_ASSERT_RV(P11->C_Digest(s, big, sizeof(big), got, &len), CKR_BUFFER_TOO_SMALL);
        ck_assert_uint_eq(len, wlen);
        len = sizeof(got);
        KSP_ASSERT_OK(P11->C_Digest(s, big, sizeof(big), got, &len));
        ck_assert_msg(len == wlen && memcmp(got, want, wlen) == 0, "%s differs from OpenSSL", mn);
        KSP_ASSERT_RV(P11->C_Digest(s, big, sizeof(big), got, &len), CKR_OPERATION_NOT_INITIALIZED);

        /* Multi-part with odd split points. */
        KSP_ASSERT_OK(P11->C_DigestInit(s, &m));
        KSP_ASSERT_OK(P11->C_DigestUpdate(s, big, 1));
        KSP_ASSERT_OK(P11->C_DigestUpdate(s, big + 1, 0));
        KSP_ASSERT_OK(P11->C_DigestUpdate(s, big + 1, 1000));
        KSP_ASSERT_OK(P11->C_DigestUpdate(s, big + 1001, sizeof(big) - 1001));
        len = 0;
        KSP_ASSERT_OK(P11->C_DigestFinal(s, NULL, &len));
        ck_assert_uint_eq(len, wlen);
        len = 1;
        KSP_ASSERT_RV(P11->C_DigestFinal(s, got, &len), CKR_BUFFER_TOO_SMALL);
        len = sizeof(got);
        KSP_ASSERT_OK(P11->C_DigestFinal(s, got, &len));
        ck_assert_msg(len == wlen && memcmp(got, want, wlen) == 0, "multi-part %s differs", mn);

        /* The empty message. */
        wlen = ksp_test_digest(m.mechanism, big, 0, want);
        KSP_ASSERT_OK(P11->C_DigestInit(s, &m));
        len = sizeof(got);
        KSP_ASSERT_OK(P11->C_Digest(s, big, 0, got, &len));
        ck_assert_msg(len == wlen && memcmp(got, want, wlen) == 0, "empty %s differs", mn);
    }
    len = sizeof(got);
    KSP_ASSERT_RV(P11->C_Digest(s, big, 1, got, &len), CKR_OPERATION_NOT_INITIALIZED);
    KSP_ASSERT_RV(P11->C_DigestUpdate(s, big, 1), CKR_OPERATION_NOT_INITIALIZED);
    KSP_ASSERT_RV(P11->C_DigestFinal(s, got, &len), CKR_OPERATION_NOT_INITIALIZED);
    KSP_ASSERT_RV(P11->C_DigestInit(s, &md5), CKR_MECHANISM_INVALID);
    KSP_ASSERT_RV(P11->C_DigestInit(s, NULL), CKR_ARGUMENTS_BAD);

    /* Digests need no login. */
    KSP_ASSERT_OK(P11->C_Logout(s));
    {
        CK_MECHANISM m = {CKM_SHA256, NULL, 0};

        KSP_ASSERT_OK(P11->C_DigestInit(s, &m));
        len = sizeof(got);
        KSP_ASSERT_OK(P11->C_Digest(s, big, 10, got, &len));
    }
}
END_TEST

/* ---- ECDH ---------------------------------------------------------------------- */

/* ANSI X9.63 KDF, which PKCS#11 3.0 §2.3.15 uses: OpenSSL's X963KDF. */
static void x963(CK_MECHANISM_TYPE hash, const uint8_t *z, size_t zlen, const uint8_t *shared,
                 size_t slen, uint8_t *out, size_t outlen)
{
    EVP_KDF *kdf = EVP_KDF_fetch(NULL, OSSL_KDF_NAME_X963KDF, NULL);
    EVP_KDF_CTX *ctx = EVP_KDF_CTX_new(kdf);
    OSSL_PARAM params[4];

    ck_assert(kdf != NULL && ctx != NULL);
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST,
                                                 (char *)EVP_MD_get0_name(ksp_test_md(hash)), 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)z, zlen);
    params[2] = OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)shared, slen);
    params[3] = OSSL_PARAM_construct_end();
    ck_assert(EVP_KDF_derive(ctx, out, outlen, params) == 1);
    EVP_KDF_CTX_free(ctx);
    EVP_KDF_free(kdf);
}

static CK_OBJECT_HANDLE derive(CK_OBJECT_HANDLE priv, CK_ECDH1_DERIVE_PARAMS *dp,
                               CK_ULONG value_len, CK_BBOOL sensitive)
{
    CK_SESSION_HANDLE s = ksp_t.session;
    CK_MECHANISM m = {CKM_ECDH1_DERIVE, dp, sizeof(*dp)};
    CK_OBJECT_CLASS sk = CKO_SECRET_KEY;
    CK_KEY_TYPE gs = CKK_GENERIC_SECRET;
    CK_BBOOL extractable = sensitive ? CK_FALSE : CK_TRUE;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &sk, sizeof(sk)},
        {CKA_KEY_TYPE, &gs, sizeof(gs)},
        {CKA_TOKEN, &no, 1},
        {CKA_SENSITIVE, &sensitive, 1},
        {CKA_EXTRACTABLE, &extractable, 1},
        {CKA_VALUE_LEN, &value_len, sizeof(value_len)},
    };
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    CK_RV rv = P11->C_DeriveKey(s, &m, priv, t, value_len ? 6 : 5, &h);

    ck_assert_msg(rv == CKR_OK, "C_DeriveKey kdf %lu len %lu: %s", dp->kdf, value_len,
                  ksp_test_rv_name(rv));
    return h;
}

static void ecdh_with(const char *label, int nid)
{
    CK_SESSION_HANDLE s = ksp_t.session;
    struct keypair kp;
    EVP_PKEY *peer = EVP_EC_gen(OBJ_nid2sn(nid));
    EVP_PKEY_CTX *ctx;
    uint8_t point[160], z[80], want[100], *got = NULL;
    size_t plen, zlen = sizeof(z);
    CK_ULONG glen = 0;
    CK_OBJECT_HANDLE h;
    static const struct {
        CK_ULONG kdf;
        CK_MECHANISM_TYPE hash;
    } kdfs[] = {{CKD_SHA1_KDF, CKM_SHA_1},
                {CKD_SHA224_KDF, CKM_SHA224},
                {CKD_SHA256_KDF, CKM_SHA256},
                {CKD_SHA384_KDF, CKM_SHA384},
                {CKD_SHA512_KDF, CKM_SHA512}};

    ck_assert(peer != NULL);
    get_pair(&kp, label);
    plen = ksp_test_ec_point(peer, point, sizeof(point));
    /* OpenSSL's own ECDH: peer private x module public. */
    ctx = EVP_PKEY_CTX_new(peer, NULL);
    ck_assert(ctx != NULL && EVP_PKEY_derive_init(ctx) == 1);
    ck_assert(EVP_PKEY_derive_set_peer(ctx, kp.pk) == 1);
    ck_assert(EVP_PKEY_derive(ctx, z, &zlen) == 1);
    EVP_PKEY_CTX_free(ctx);

    {
        CK_ECDH1_DERIVE_PARAMS dp = {CKD_NULL, 0, NULL, plen, point};

        h = derive(kp.priv, &dp, 0, CK_FALSE);
        KSP_ASSERT_OK(ksp_test_get_attr(s, h, CKA_VALUE, &got, &glen));
        ck_assert_msg(glen == zlen && memcmp(got, z, zlen) == 0,
                      "%s CKD_NULL: derived value differs from OpenSSL's ECDH", label);
        free(got);
        ck_assert_uint_eq(ksp_test_get_ulong(s, h, CKA_CLASS), CKO_SECRET_KEY);
        ck_assert_uint_eq(ksp_test_get_ulong(s, h, CKA_KEY_TYPE), CKK_GENERIC_SECRET);
        ck_assert_uint_eq(ksp_test_get_ulong(s, h, CKA_VALUE_LEN), zlen);
        ck_assert_msg(!ksp_test_get_bool(s, h, CKA_LOCAL), "derived key has CKA_LOCAL TRUE");

        /* Sensitive derived keys keep their value. */
        h = derive(kp.priv, &dp, 0, CK_TRUE);
        {
            CK_BYTE buf[80];
            CK_ATTRIBUTE a = {CKA_VALUE, buf, sizeof(buf)};

            KSP_ASSERT_RV(P11->C_GetAttributeValue(s, h, &a, 1), CKR_ATTRIBUTE_SENSITIVE);
        }
    }
    for (size_t i = 0; i < sizeof(kdfs) / sizeof(kdfs[0]); i++) {
        CK_ECDH1_DERIVE_PARAMS dp = {kdfs[i].kdf, 5, (CK_BYTE_PTR) "ksp11", plen, point};
        CK_ULONG lens[] = {32, 70};

        for (int j = 0; j < 2; j++) {
            h = derive(kp.priv, &dp, lens[j], CK_FALSE);
            x963(kdfs[i].hash, z, zlen, (const uint8_t *)"ksp11", 5, want, lens[j]);
            KSP_ASSERT_OK(ksp_test_get_attr(s, h, CKA_VALUE, &got, &glen));
            ck_assert_msg(glen == lens[j] && memcmp(got, want, lens[j]) == 0,
                          "%s KDF %lu, %lu bytes: value differs from X9.63 over OpenSSL's Z", label,
                          kdfs[i].kdf, lens[j]);
            free(got);
        }
    }
    /* Parameter errors. */
    {
        CK_ECDH1_DERIVE_PARAMS nullkdf_shared = {CKD_NULL, 5, (CK_BYTE_PTR) "ksp11", plen, point};
        CK_ECDH1_DERIVE_PARAMS badkdf = {0x99, 0, NULL, plen, point};
        CK_MECHANISM m = {CKM_ECDH1_DERIVE, NULL, 0};
        CK_OBJECT_CLASS sk = CKO_SECRET_KEY;
        CK_KEY_TYPE gs = CKK_GENERIC_SECRET;
        CK_ATTRIBUTE t[] = {{CKA_CLASS, &sk, sizeof(sk)}, {CKA_KEY_TYPE, &gs, sizeof(gs)}};

        KSP_ASSERT_RV(P11->C_DeriveKey(s, &m, kp.priv, t, 2, &h), CKR_MECHANISM_PARAM_INVALID);
        m.pParameter = &nullkdf_shared;
        m.ulParameterLen = sizeof(nullkdf_shared);
        KSP_ASSERT_RV(P11->C_DeriveKey(s, &m, kp.priv, t, 2, &h), CKR_MECHANISM_PARAM_INVALID);
        m.pParameter = &badkdf;
        m.ulParameterLen = sizeof(badkdf);
        KSP_ASSERT_RV(P11->C_DeriveKey(s, &m, kp.priv, t, 2, &h), CKR_MECHANISM_PARAM_INVALID);
    }
    EVP_PKEY_free(peer);
    put_pair(&kp);
}

START_TEST(test_ecdh_p256)
{
    ecdh_with("ec", NID_X9_62_prime256v1);
}
END_TEST

START_TEST(test_ecdh_p384)
{
    ecdh_with("ec384", NID_secp384r1);
}
END_TEST

/* ---- random, unsupported functions, operation state ----------------------------- */

START_TEST(test_random)
{
    CK_SESSION_HANDLE s = ksp_t.session;
    uint8_t a[64], b[64], zero[64] = {0};

    memset(a, 0, sizeof(a));
    memset(b, 0, sizeof(b));
    KSP_ASSERT_OK(P11->C_GenerateRandom(s, a, 0));
    KSP_ASSERT_OK(P11->C_GenerateRandom(s, a, sizeof(a)));
    KSP_ASSERT_OK(P11->C_GenerateRandom(s, b, sizeof(b)));
    ck_assert_msg(memcmp(a, zero, sizeof(a)) != 0, "C_GenerateRandom left zeros");
    ck_assert_msg(memcmp(a, b, sizeof(a)) != 0, "two C_GenerateRandom calls agree");
    KSP_ASSERT_RV(P11->C_GenerateRandom(s, NULL, 16), CKR_ARGUMENTS_BAD);
    /* The DRBG seeds itself from the OS and does not mix in caller seed:
     * PKCS#11 3.0 §5.15 says so with CKR_RANDOM_SEED_NOT_SUPPORTED. */
    KSP_ASSERT_RV(P11->C_SeedRandom(s, (CK_BYTE_PTR) "more entropy", 12),
                  CKR_RANDOM_SEED_NOT_SUPPORTED);
    KSP_ASSERT_RV(P11->C_SeedRandom(s, NULL, 8), CKR_ARGUMENTS_BAD);
    /* No login needed. */
    KSP_ASSERT_OK(P11->C_Logout(s));
    KSP_ASSERT_OK(P11->C_GenerateRandom(s, a, sizeof(a)));
}
END_TEST

START_TEST(test_not_supported)
{
    CK_SESSION_HANDLE s = ksp_t.session;
    CK_OBJECT_HANDLE priv = ksp_test_find1(s, CKO_PRIVATE_KEY, "rsa");
    CK_OBJECT_HANDLE pub = ksp_test_find1(s, CKO_PUBLIC_KEY, "rsa");
    CK_MECHANISM pkcs = {CKM_RSA_PKCS, NULL, 0};
    CK_MECHANISM sha = {CKM_SHA256, NULL, 0};
    CK_MECHANISM gen = {CKM_GENERIC_SECRET_KEY_GEN, NULL, 0};
    CK_MECHANISM aes = {CKM_AES_KEY_GEN, NULL, 0};
    CK_ULONG len32 = 32;
    CK_ATTRIBUTE kt[] = {{CKA_VALUE_LEN, &len32, sizeof(len32)}};
    CK_BYTE in[32], out[512];
    CK_ULONG outlen = sizeof(out);
    CK_OBJECT_HANDLE h;
    CK_SLOT_ID slot;

    memset(in, 1, sizeof(in));
    KSP_ASSERT_RV(P11->C_SignRecoverInit(s, &pkcs, priv), CKR_FUNCTION_NOT_SUPPORTED);
    KSP_ASSERT_RV(P11->C_SignRecover(s, in, 32, out, &outlen), CKR_FUNCTION_NOT_SUPPORTED);
    KSP_ASSERT_RV(P11->C_VerifyRecoverInit(s, &pkcs, pub), CKR_FUNCTION_NOT_SUPPORTED);
    outlen = sizeof(out);
    KSP_ASSERT_RV(P11->C_VerifyRecover(s, in, 32, out, &outlen), CKR_FUNCTION_NOT_SUPPORTED);
    outlen = sizeof(out);
    KSP_ASSERT_RV(P11->C_DigestEncryptUpdate(s, in, 32, out, &outlen), CKR_FUNCTION_NOT_SUPPORTED);
    KSP_ASSERT_RV(P11->C_DecryptDigestUpdate(s, in, 32, out, &outlen), CKR_FUNCTION_NOT_SUPPORTED);
    KSP_ASSERT_RV(P11->C_SignEncryptUpdate(s, in, 32, out, &outlen), CKR_FUNCTION_NOT_SUPPORTED);
    KSP_ASSERT_RV(P11->C_DecryptVerifyUpdate(s, in, 32, out, &outlen), CKR_FUNCTION_NOT_SUPPORTED);
    outlen = sizeof(out);
    KSP_ASSERT_RV(P11->C_GetOperationState(s, out, &outlen), CKR_FUNCTION_NOT_SUPPORTED);
    KSP_ASSERT_RV(P11->C_SetOperationState(s, in, 32, 0, 0), CKR_FUNCTION_NOT_SUPPORTED);
    KSP_ASSERT_OK(P11->C_DigestInit(s, &sha));
    KSP_ASSERT_RV(P11->C_DigestKey(s, pub), CKR_FUNCTION_NOT_SUPPORTED);
    KSP_ASSERT_RV(P11->C_WaitForSlotEvent(CKF_DONT_BLOCK, &slot, NULL), CKR_FUNCTION_NOT_SUPPORTED);
    /* PKCS#11 3.0 §5.20: legacy parallel functions. */
    KSP_ASSERT_RV(P11->C_GetFunctionStatus(s), CKR_FUNCTION_NOT_PARALLEL);
    KSP_ASSERT_RV(P11->C_CancelFunction(s), CKR_FUNCTION_NOT_PARALLEL);
    /* No symmetric key generation. */
    KSP_ASSERT_RV(P11->C_GenerateKey(s, &gen, kt, 1, &h), CKR_MECHANISM_INVALID);
    KSP_ASSERT_RV(P11->C_GenerateKey(s, &aes, kt, 1, &h), CKR_MECHANISM_INVALID);
}
END_TEST

START_TEST(test_operation_state)
{
    CK_SESSION_HANDLE s = ksp_t.session;
    CK_SESSION_HANDLE other = ksp_test_open(ksp_t.slot, true);
    struct keypair kp;
    CK_MECHANISM first = {CKM_SHA256_RSA_PKCS, NULL, 0};
    CK_MECHANISM second = {CKM_SHA1_RSA_PKCS, NULL, 0};
    CK_MECHANISM pkcs = {CKM_RSA_PKCS, NULL, 0};
    CK_BYTE sig[512], ct[512];
    CK_ULONG siglen = sizeof(sig), ctlen = sizeof(ct);

    get_pair(&kp, "rsa");
    KSP_ASSERT_RV(P11->C_Sign(s, (CK_BYTE_PTR) "m", 1, sig, &siglen),
                  CKR_OPERATION_NOT_INITIALIZED);
    KSP_ASSERT_RV(P11->C_SignUpdate(s, (CK_BYTE_PTR) "m", 1), CKR_OPERATION_NOT_INITIALIZED);
    KSP_ASSERT_RV(P11->C_SignFinal(s, sig, &siglen), CKR_OPERATION_NOT_INITIALIZED);
    KSP_ASSERT_RV(P11->C_Verify(s, (CK_BYTE_PTR) "m", 1, sig, 256), CKR_OPERATION_NOT_INITIALIZED);
    KSP_ASSERT_RV(P11->C_VerifyUpdate(s, (CK_BYTE_PTR) "m", 1), CKR_OPERATION_NOT_INITIALIZED);
    KSP_ASSERT_RV(P11->C_VerifyFinal(s, sig, 256), CKR_OPERATION_NOT_INITIALIZED);
    KSP_ASSERT_RV(P11->C_Encrypt(s, (CK_BYTE_PTR) "m", 1, ct, &ctlen),
                  CKR_OPERATION_NOT_INITIALIZED);
    KSP_ASSERT_RV(P11->C_Decrypt(s, ct, 256, sig, &siglen), CKR_OPERATION_NOT_INITIALIZED);

    /* A second *Init fails and leaves the first operation intact. */
    KSP_ASSERT_OK(P11->C_SignInit(s, &first, kp.priv));
    KSP_ASSERT_RV(P11->C_SignInit(s, &second, kp.priv), CKR_OPERATION_ACTIVE);
    /* Operations are per session. */
    KSP_ASSERT_OK(P11->C_SignInit(other, &second, kp.priv));
    KSP_ASSERT_OK(P11->C_Sign(s, (CK_BYTE_PTR) "message", 7, sig, &siglen));
    ck_assert_msg(ksp_test_ossl_verify(kp.pk, &first, (const uint8_t *)"message", 7, sig, siglen),
                  "the refused C_SignInit replaced the active operation");
    siglen = sizeof(sig);
    KSP_ASSERT_OK(P11->C_Sign(other, (CK_BYTE_PTR) "message", 7, sig, &siglen));
    ck_assert(ksp_test_ossl_verify(kp.pk, &second, (const uint8_t *)"message", 7, sig, siglen));

    /* One operation at a time per session (PKCS#11 3.0 §5.6); finish each. */
    KSP_ASSERT_OK(P11->C_VerifyInit(s, &second, kp.pub));
    KSP_ASSERT_RV(P11->C_VerifyInit(s, &second, kp.pub), CKR_OPERATION_ACTIVE);
    KSP_ASSERT_OK(P11->C_Verify(s, (CK_BYTE_PTR) "message", 7, sig, siglen));
    KSP_ASSERT_OK(P11->C_EncryptInit(s, &pkcs, kp.pub));
    KSP_ASSERT_RV(P11->C_EncryptInit(s, &pkcs, kp.pub), CKR_OPERATION_ACTIVE);
    ctlen = sizeof(ct);
    KSP_ASSERT_OK(P11->C_Encrypt(s, (CK_BYTE_PTR) "m", 1, ct, &ctlen));
    KSP_ASSERT_OK(P11->C_DecryptInit(s, &pkcs, kp.priv));
    KSP_ASSERT_RV(P11->C_DecryptInit(s, &pkcs, kp.priv), CKR_OPERATION_ACTIVE);
    siglen = sizeof(sig);
    KSP_ASSERT_OK(P11->C_Decrypt(s, ct, ctlen, sig, &siglen));
    ck_assert(siglen == 1 && sig[0] == 'm');

    /* Closing the session ends its operations; the other is unaffected. */
    KSP_ASSERT_OK(P11->C_SignInit(other, &first, kp.priv));
    KSP_ASSERT_OK(P11->C_CloseSession(s));
    siglen = sizeof(sig);
    KSP_ASSERT_OK(P11->C_Sign(other, (CK_BYTE_PTR) "m", 1, sig, &siglen));
    put_pair(&kp);
}
END_TEST

/* ---- suite ---------------------------------------------------------------------- */

static void populate_keys(CK_SESSION_HANDLE s)
{
    CK_OBJECT_HANDLE pub, priv;

    ksp_test_gen_rsa(s, 2048, "rsa", true, &pub, &priv);
    ksp_test_gen_rsa(s, 3072, "rsa3072", true, &pub, &priv);
    ksp_test_gen_ec(s, NID_X9_62_prime256v1, "ec", true, &pub, &priv);
    ksp_test_gen_ec(s, NID_secp384r1, "ec384", true, &pub, &priv);
}

static void keys_setup(void)
{
    ksp_test_shared_setup(populate_keys);
}

static Suite *crypto_suite(void)
{
    Suite *su = suite_create("api_crypto");
    TCase *tc = tcase_create("crypto");

    ksp_test_add_shared_fixtures(tc, keys_setup);
    tcase_add_test(tc, test_rsa2048_sign);
    tcase_add_test(tc, test_rsa3072_sign);
    tcase_add_test(tc, test_p256_sign);
    tcase_add_test(tc, test_p384_sign);
    tcase_add_test(tc, test_rsa_x509);
    tcase_add_test(tc, test_raw_length_limits);
    tcase_add_test(tc, test_pss_params);
    tcase_add_test(tc, test_rsa_encrypt);
    tcase_add_test(tc, test_usage_enforcement);
    tcase_add_test(tc, test_digests);
    tcase_add_test(tc, test_ecdh_p256);
    tcase_add_test(tc, test_ecdh_p384);
    tcase_add_test(tc, test_random);
    tcase_add_test(tc, test_not_supported);
    tcase_add_test(tc, test_operation_state);
    suite_add_tcase(su, tc);
    return su;
}

int main(void)
{
    SRunner *sr = srunner_create(crypto_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
