/*
 * Unit tests of the core's EME-OAEP decoder (provider/rsa_pad_oaep.c), the
 * path TPM keys take for OAEP variants the TPM cannot do natively. The
 * encoded blocks come from OpenSSL itself: an OAEP encryption under a
 * throwaway key, opened again with a raw (no padding) decryption.
 */
#include <check.h>
#include <stdio.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "log.h"
#include "rsa_pad.h"
#include "swcrypto.h"

#define ck_assert_rv(expr, want)                                                                   \
    do {                                                                                           \
        CK_RV got_rv_ = (expr);                                                                    \
        CK_RV want_rv_ = (want);                                                                   \
        ck_assert_msg(got_rv_ == want_rv_, "%s: got %s, want %s", #expr, ksp_rv_name(got_rv_),     \
                      ksp_rv_name(want_rv_));                                                      \
    } while (0)

static EVP_PKEY *rsa2048;

static void keys_setup(void)
{
    rsa2048 = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
}

static void keys_teardown(void)
{
    EVP_PKEY_free(rsa2048);
}

static const EVP_MD *md_of(CK_MECHANISM_TYPE h)
{
    switch (h) {
    case CKM_SHA_1:
        return EVP_sha1();
    case CKM_SHA224:
        return EVP_sha224();
    case CKM_SHA256:
        return EVP_sha256();
    case CKM_SHA384:
        return EVP_sha384();
    default:
        return EVP_sha512();
    }
}

/* The EM block OpenSSL's OAEP encoding gives for msg (k bytes into em). */
static size_t ossl_em(CK_MECHANISM_TYPE hash, CK_MECHANISM_TYPE mgf, const uint8_t *label,
                      size_t label_len, const uint8_t *msg, size_t mlen, uint8_t *em)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(rsa2048, NULL);
    uint8_t ct[512];
    size_t ctlen = sizeof(ct), emlen = 512;

    ck_assert(ctx != NULL && EVP_PKEY_encrypt_init(ctx) == 1);
    ck_assert(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) == 1);
    ck_assert(EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md_of(hash)) == 1);
    ck_assert(EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md_of(mgf)) == 1);
    if (label_len > 0) {
        ck_assert(EVP_PKEY_CTX_set0_rsa_oaep_label(ctx, OPENSSL_memdup(label, label_len),
                                                   (int)label_len) == 1);
    }
    ck_assert(EVP_PKEY_encrypt(ctx, ct, &ctlen, msg, mlen) == 1);
    EVP_PKEY_CTX_free(ctx);
    ctx = EVP_PKEY_CTX_new(rsa2048, NULL);
    ck_assert(ctx != NULL && EVP_PKEY_decrypt_init(ctx) == 1);
    ck_assert(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_NO_PADDING) == 1);
    ck_assert(EVP_PKEY_decrypt(ctx, em, &emlen, ct, ctlen) == 1);
    EVP_PKEY_CTX_free(ctx);
    ck_assert_uint_eq(emlen, 256);
    return emlen;
}

static const CK_MECHANISM_TYPE all_hashes[] = {CKM_SHA_1, CKM_SHA224, CKM_SHA256, CKM_SHA384,
                                               CKM_SHA512};
#define N_ALL (sizeof(all_hashes) / sizeof(all_hashes[0]))

/* Every hash x MGF1 hash, with no label, a text label and a binary one, for
 * the shortest, a middle and the longest message. */
START_TEST(test_oaep_decode_roundtrip)
{
    static const uint8_t bin[] = {0x00, 0xff, 0x00, 0x01};
    const struct {
        const uint8_t *p;
        size_t len;
    } labels[] = {{NULL, 0}, {(const uint8_t *)"label", 5}, {bin, sizeof(bin)}};
    uint8_t msg[256], em[512], out[512];

    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (uint8_t)(i * 7 + 3);
    for (size_t h = 0; h < N_ALL; h++) {
        size_t hlen = ksp_hash_len(all_hashes[h]);
        size_t lens[] = {0, 1, 17, 256 - 2 * hlen - 3, 256 - 2 * hlen - 2};

        for (size_t g = 0; g < N_ALL; g++) {
            for (size_t l = 0; l < sizeof(labels) / sizeof(labels[0]); l++) {
                for (size_t n = 0; n < sizeof(lens) / sizeof(lens[0]); n++) {
                    size_t k = ossl_em(all_hashes[h], all_hashes[g], labels[l].p, labels[l].len,
                                       msg, lens[n], em);
                    size_t outlen = 0;

                    ck_assert_rv(ksp_eme_oaep_decode(all_hashes[h], all_hashes[g], labels[l].p,
                                                     labels[l].len, em, k, out, &outlen),
                                 CKR_OK);
                    ck_assert_msg(outlen == lens[n] && memcmp(out, msg, outlen) == 0,
                                  "hash %zu mgf %zu label %zu len %zu: got %zu bytes", h, g, l,
                                  lens[n], outlen);
                }
            }
        }
    }
}
END_TEST

/* Any changed byte of the block, and any other parameter, fails alike. */
START_TEST(test_oaep_decode_rejects)
{
    uint8_t msg[32], em[512], bad[512], out[512];
    size_t outlen = 12345;

    memset(msg, 0x5a, sizeof(msg));
    size_t k = ossl_em(CKM_SHA256, CKM_SHA256, (const uint8_t *)"L", 1, msg, sizeof(msg), em);

    for (size_t i = 0; i < k; i++) {
        memcpy(bad, em, k);
        bad[i] ^= (uint8_t)(1u << (i % 8));
        ck_assert_rv(ksp_eme_oaep_decode(CKM_SHA256, CKM_SHA256, (const uint8_t *)"L", 1, bad, k,
                                         out, &outlen),
                     CKR_ENCRYPTED_DATA_INVALID);
    }
    ck_assert_uint_eq(outlen, 12345); /* never written on failure */
    ck_assert_rv(ksp_eme_oaep_decode(CKM_SHA256, CKM_SHA256, NULL, 0, em, k, out, &outlen),
                 CKR_ENCRYPTED_DATA_INVALID);
    ck_assert_rv(
        ksp_eme_oaep_decode(CKM_SHA256, CKM_SHA256, (const uint8_t *)"L\0", 2, em, k, out, &outlen),
        CKR_ENCRYPTED_DATA_INVALID);
    ck_assert_rv(
        ksp_eme_oaep_decode(CKM_SHA256, CKM_SHA_1, (const uint8_t *)"L", 1, em, k, out, &outlen),
        CKR_ENCRYPTED_DATA_INVALID);
    ck_assert_rv(
        ksp_eme_oaep_decode(CKM_SHA384, CKM_SHA256, (const uint8_t *)"L", 1, em, k, out, &outlen),
        CKR_ENCRYPTED_DATA_INVALID);
    /* A block with no 01 separator after the zeros, and one with a nonzero
     * byte before it, built by hand: all-zero DB with a valid lHash would
     * need the mask; instead zero the whole block (Y = 0, but nothing else
     * matches). */
    memset(bad, 0, k);
    ck_assert_rv(ksp_eme_oaep_decode(CKM_SHA256, CKM_SHA256, NULL, 0, bad, k, out, &outlen),
                 CKR_ENCRYPTED_DATA_INVALID);
    ck_assert_uint_eq(outlen, 12345);
    /* The key must fit the hash: k >= 2 hLen + 2. */
    ck_assert_rv(ksp_eme_oaep_decode(CKM_SHA512, CKM_SHA512, NULL, 0, em, 129, out, &outlen),
                 CKR_KEY_SIZE_RANGE);
    ck_assert_rv(ksp_eme_oaep_decode(CKM_MD5, CKM_SHA256, NULL, 0, em, k, out, &outlen),
                 CKR_MECHANISM_PARAM_INVALID);
}
END_TEST

/* The decoder by itself, with a DB built by hand so each check is hit on its
 * own: a valid block, then one byte of PS made nonzero, then no separator. */
START_TEST(test_oaep_decode_handmade)
{
    const size_t k = 128, hlen = 32, db_len = k - hlen - 1;
    uint8_t em[128], db[128], seed[32], out[128];
    size_t outlen = 0;

    for (int variant = 0; variant < 3; variant++) {
        memset(db, 0, sizeof(db));
        ck_assert_rv(ksp_digest(CKM_SHA256, (const uint8_t *)"", 0, db), CKR_OK);
        /* PS of 40 zeros, then 01, then the message "hi". */
        db[db_len - 3] = variant == 2 ? 0x02 : 0x01;
        db[db_len - 2] = 'h';
        db[db_len - 1] = 'i';
        if (variant == 1)
            db[hlen + 5] = 0x07;
        memset(seed, 0x42, sizeof(seed));
        em[0] = 0;
        memcpy(em + 1, seed, hlen);
        memcpy(em + 1 + hlen, db, db_len);
        /* maskedDB = DB xor MGF(seed); maskedSeed = seed xor MGF(maskedDB). */
        ck_assert_rv(ksp_mgf1_xor(CKM_SHA256, seed, hlen, em + 1 + hlen, db_len), CKR_OK);
        ck_assert_rv(ksp_mgf1_xor(CKM_SHA256, em + 1 + hlen, db_len, em + 1, hlen), CKR_OK);
        CK_RV rv = ksp_eme_oaep_decode(CKM_SHA256, CKM_SHA256, NULL, 0, em, k, out, &outlen);
        if (variant == 0) {
            ck_assert_rv(rv, CKR_OK);
            ck_assert_uint_eq(outlen, 2);
            ck_assert(memcmp(out, "hi", 2) == 0);
        } else {
            ck_assert_rv(rv, CKR_ENCRYPTED_DATA_INVALID);
        }
    }
}
END_TEST

int main(void)
{
    Suite *su = suite_create("rsa_pad");
    TCase *tc = tcase_create("oaep");
    SRunner *sr = NULL;
    int failed = 0;

    tcase_add_unchecked_fixture(tc, keys_setup, keys_teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_oaep_decode_roundtrip);
    tcase_add_test(tc, test_oaep_decode_rejects);
    tcase_add_test(tc, test_oaep_decode_handmade);
    suite_add_tcase(su, tc);
    sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
