/*
 * RSA encodings the core synthesises (RFC 8017 §9): DigestInfo, the
 * EMSA-PKCS1-v1_5 block, EMSA-PSS-ENCODE with MGF1, and the guard that limits
 * CKM_RSA_X_509 signing to inputs shaped like a signature block.
 * Hand-written on the digest API: no RSA key is involved here.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "log.h"
#include "swcrypto_int.h"

#define AREA "swcrypto"

/* RFC 8017 §9.2 note 1: DER of DigestInfo up to (and including) the OCTET
 * STRING header of the digest. */
static const struct {
    CK_MECHANISM_TYPE hash;
    uint8_t len;
    uint8_t der[19];
} di_prefix[] = {
    {CKM_SHA_1,
     15,
     {0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04, 0x14}},
    {CKM_SHA224,
     19,
     {0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x04,
      0x05, 0x00, 0x04, 0x1c}},
    {CKM_SHA256,
     19,
     {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
      0x05, 0x00, 0x04, 0x20}},
    {CKM_SHA384,
     19,
     {0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x02,
      0x05, 0x00, 0x04, 0x30}},
    {CKM_SHA512,
     19,
     {0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x03,
      0x05, 0x00, 0x04, 0x40}},
};

CK_RV ksp_digestinfo(CK_MECHANISM_TYPE hash, const uint8_t *digest, size_t dlen, uint8_t *out,
                     size_t *out_len)
{
    for (size_t i = 0; i < sizeof(di_prefix) / sizeof(di_prefix[0]); i++) {
        if (di_prefix[i].hash != hash) {
            continue;
        }
        if (dlen != ksp_hash_len(hash)) {
            return CKR_DATA_LEN_RANGE;
        }
        memcpy(out, di_prefix[i].der, di_prefix[i].len);
        memmove(out + di_prefix[i].len, digest, dlen); /* digest may sit in out */
        *out_len = di_prefix[i].len + dlen;
        return CKR_OK;
    }
    return CKR_MECHANISM_INVALID;
}

CK_RV ksp_emsa_pkcs1(const uint8_t *t, size_t t_len, uint8_t *em, size_t k)
{
    /* RFC 8017 §9.2 step 3: at least 8 bytes of 0xFF padding. */
    if (k < 11 || t_len > k - 11) {
        return CKR_DATA_LEN_RANGE;
    }
    em[0] = 0x00;
    em[1] = 0x01;
    memset(em + 2, 0xFF, k - 3 - t_len);
    em[k - t_len - 1] = 0x00;
    memmove(em + k - t_len, t, t_len);
    return CKR_OK;
}

/* RFC 8017 §B.2.1: XOR MGF1(seed, mask_len) into out. */
CK_RV ksp_mgf1_xor(CK_MECHANISM_TYPE hash, const uint8_t *seed, size_t seed_len, uint8_t *out,
                   size_t mask_len)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    size_t hlen = ksp_hash_len(hash);
    uint8_t block[64];
    struct ksp_digest *d = NULL;
    uint32_t counter = 0;

    for (size_t done = 0; done < mask_len; done += hlen, counter++) {
        uint8_t c[4] = {(uint8_t)(counter >> 24), (uint8_t)(counter >> 16), (uint8_t)(counter >> 8),
                        (uint8_t)counter};
        size_t n = mask_len - done < hlen ? mask_len - done : hlen;

        rv = ksp_digest_new(hash, &d);
        if (rv != CKR_OK) {
            goto out;
        }
        rv = ksp_digest_update(d, seed, seed_len);
        if (rv == CKR_OK) {
            rv = ksp_digest_update(d, c, sizeof(c));
        }
        if (rv == CKR_OK) {
            rv = ksp_digest_final(d, block);
        }
        ksp_digest_free(d);
        d = NULL;
        if (rv != CKR_OK) {
            goto out;
        }
        for (size_t i = 0; i < n; i++) {
            out[done + i] ^= block[i];
        }
    }
    rv = CKR_OK;
out:
    OPENSSL_cleanse(block, sizeof(block));
    return rv;
}

CK_RV ksp_emsa_pss(CK_MECHANISM_TYPE hash, CK_MECHANISM_TYPE mgf_hash, size_t slen,
                   const uint8_t *mhash, size_t mlen, size_t mod_bits, uint8_t *em)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    size_t hlen = ksp_hash_len(hash);
    size_t em_bits = mod_bits - 1;
    size_t em_len = (em_bits + 7) / 8;
    size_t k = (mod_bits + 7) / 8;
    size_t db_len = 0;
    uint8_t *e = NULL; /* EM proper, after the optional leading zero of the k-byte block */
    uint8_t *salt = NULL;
    uint8_t *h = NULL;
    struct ksp_digest *d = NULL;
    static const uint8_t zeros[8];

    if (hlen == 0 || ksp_hash_len(mgf_hash) == 0) {
        rv = CKR_MECHANISM_PARAM_INVALID;
        goto out;
    }
    /* RFC 8017 §9.1.1 step 2: mHash must be a digest of the chosen hash. */
    if (mlen != hlen) {
        rv = CKR_DATA_LEN_RANGE;
        goto out;
    }
    /* Step 3: emLen >= hLen + sLen + 2, else "encoding error". */
    if (mod_bits < 2 || em_len < hlen + 2 || slen > em_len - hlen - 2) {
        rv = CKR_KEY_SIZE_RANGE;
        goto out;
    }
    db_len = em_len - hlen - 1;
    e = em + (k - em_len);
    h = e + db_len;
    if (slen > 0) {
        salt = malloc(slen);
        if (salt == NULL) {
            rv = CKR_HOST_MEMORY;
            goto out;
        }
        rv = ksp_random(salt, slen);
        if (rv != CKR_OK) {
            goto out;
        }
    }
    /* Steps 5-6: H = Hash(00*8 || mHash || salt), written in place. */
    rv = ksp_digest_new(hash, &d);
    if (rv != CKR_OK) {
        goto out;
    }
    rv = ksp_digest_update(d, zeros, sizeof(zeros));
    if (rv == CKR_OK) {
        rv = ksp_digest_update(d, mhash, mlen);
    }
    if (rv == CKR_OK && slen > 0) {
        rv = ksp_digest_update(d, salt, slen);
    }
    if (rv == CKR_OK) {
        rv = ksp_digest_final(d, h);
    }
    if (rv != CKR_OK) {
        goto out;
    }
    /* Steps 7-8: DB = PS || 0x01 || salt. */
    memset(em, 0, k - em_len);
    memset(e, 0, db_len - slen - 1);
    e[db_len - slen - 1] = 0x01;
    if (slen > 0) {
        memcpy(e + db_len - slen, salt, slen);
    }
    /* Steps 9-10: maskedDB = DB xor MGF1(H). */
    rv = ksp_mgf1_xor(mgf_hash, h, hlen, e, db_len);
    if (rv != CKR_OK) {
        goto out;
    }
    /* Step 11: clear the leftmost 8*emLen - emBits bits. */
    e[0] &= (uint8_t)(0xFF >> (8 * em_len - em_bits));
    /* Step 12. */
    e[em_len - 1] = 0xBC;
    rv = CKR_OK;
out:
    ksp_digest_free(d);
    if (salt != NULL) {
        OPENSSL_cleanse(salt, slen);
        free(salt);
    }
    return rv;
}

/* Longest T a signature block carries: a SHA-512 DigestInfo (19 + 64). */
#define MAX_T_LEN 83u

/*
 * True if em (em_len bytes, em_bits significant) is a complete EMSA-PSS
 * encoding (RFC 8017 §9.1.2 steps 4-10) with hash `hash`, MGF1 of the same
 * hash and salt length = hash length: the only PSS form ksp11 produces.
 * Checking the zero padding of DB, not just the 0xBC trailer, is what makes
 * a blinded ciphertext fail: a random block passes with probability 2^-(8 *
 * (em_len - 2 * hLen - 2)).
 */
static bool is_pss(CK_MECHANISM_TYPE hash, const uint8_t *em, size_t em_len, size_t em_bits)
{
    size_t hlen = ksp_hash_len(hash);
    uint8_t db[1024];
    bool ok = false;
    if (em_len < 2 * hlen + 2 || em_len - hlen - 1 > sizeof(db))
        return false;
    size_t db_len = em_len - hlen - 1;
    memcpy(db, em, db_len);
    if (ksp_mgf1_xor(hash, em + db_len, hlen, db, db_len) != CKR_OK)
        goto out;
    db[0] &= (uint8_t)(0xFF >> (8 * em_len - em_bits));
    size_t ps = db_len - hlen - 1;
    uint8_t acc = 0;
    for (size_t i = 0; i < ps; i++)
        acc |= db[i];
    ok = acc == 0 && db[ps] == 0x01;
out:
    OPENSSL_cleanse(db, sizeof(db));
    return ok;
}

/*
 * The CKM_RSA_X_509 sign guard (semantics.md §5 recommendation 4): raw RSA
 * signs only a complete signature encoding, so that it can never serve as a
 * decryption oracle, not even for blinded ciphertexts.
 */
bool ksp_rsa_raw_sign_input_ok(const uint8_t *block, size_t k, size_t mod_bits)
{
    static const CK_MECHANISM_TYPE hashes[] = {CKM_SHA_1, CKM_SHA224, CKM_SHA256, CKM_SHA384,
                                               CKM_SHA512};
    size_t i = 2;

    if (block == NULL || mod_bits < 512 || k != (mod_bits + 7) / 8) {
        return false;
    }
    /* EMSA-PKCS1-v1_5 (RFC 8017 §9.2): 00 01 FF..FF 00 T, where T is at most a
     * DigestInfo, so the FF run covers all but MAX_T_LEN + 3 bytes. */
    if (block[0] == 0x00 && block[1] == 0x01) {
        while (i < k && block[i] == 0xFF) {
            i++;
        }
        if (i < k && block[i] == 0x00 && i - 2 >= 8 && k - i - 1 <= MAX_T_LEN) {
            return true;
        }
    }
    /* EMSA-PSS (RFC 8017 §9.1.2): emBits = modBits - 1; a leading zero byte
     * when modBits - 1 is a multiple of 8. */
    size_t em_bits = mod_bits - 1;
    size_t em_len = (em_bits + 7) / 8;
    for (i = 0; i < k - em_len; i++) {
        if (block[i] != 0x00) {
            return false;
        }
    }
    const uint8_t *e = block + (k - em_len);
    if ((e[0] & (uint8_t) ~(0xFF >> (8 * em_len - em_bits))) != 0 || e[em_len - 1] != 0xBC) {
        return false;
    }
    for (i = 0; i < sizeof(hashes) / sizeof(hashes[0]); i++) {
        if (is_pss(hashes[i], e, em_len, em_bits)) {
            return true;
        }
    }
    return false;
}
