/*
 * EME-OAEP decoding in the core (RFC 8017 §7.1.2), for backends that can do
 * the raw RSA operation but not the OAEP variant asked for (rsa_pad.h).
 *
 * Why constant time: the block comes out of the private key, and a decoder
 * whose timing or result depends on which check failed (leading byte, label
 * hash, padding separator) is a Manger/Bleichenbacher oracle. Every check is
 * folded into one all-ones/all-zeros mask, the separator is searched over the
 * whole block, and the message is moved into place by a shift whose steps do
 * not depend on the secret length. Only the final verdict is a branch, as the
 * PKCS#11 return code has to reveal it anyway.
 */
#include <string.h>

#include "rsa_pad.h"
#include "secmem.h"
#include "swcrypto.h"

/* Masks: all ones (true) or all zeros (false). */
static size_t ct_msb(size_t a)
{
    return (size_t)0 - (a >> (sizeof(a) * 8 - 1));
}

static size_t ct_is_zero(size_t a)
{
    return ct_msb(~a & (a - 1));
}

static size_t ct_eq(size_t a, size_t b)
{
    return ct_is_zero(a ^ b);
}

static size_t ct_sel(size_t mask, size_t a, size_t b)
{
    return (mask & a) | (~mask & b);
}

CK_RV ksp_eme_oaep_decode(CK_MECHANISM_TYPE hash, CK_MECHANISM_TYPE mgf_hash, const uint8_t *label,
                          size_t label_len, const uint8_t *em, size_t k, uint8_t *msg,
                          size_t *msg_len)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    size_t hlen = ksp_hash_len(hash);
    uint8_t lhash[64];
    uint8_t *buf = NULL;
    size_t good = 0, found = 0, zero_index = 0, diff = 0;

    if (hlen == 0 || ksp_hash_len(mgf_hash) == 0) {
        return CKR_MECHANISM_PARAM_INVALID;
    }
    /* RFC 8017 §7.1.2 step 1c: k >= 2hLen + 2 (a property of the key). */
    if (k < 2 * hlen + 2) {
        return CKR_KEY_SIZE_RANGE;
    }
    size_t db_len = k - hlen - 1;
    /* The message area follows lHash' and at least the 0x01 separator. */
    size_t max_len = db_len - hlen - 1;

    buf = ksp_secmem_alloc(k);
    if (buf == NULL) {
        return CKR_HOST_MEMORY;
    }
    uint8_t *seed = buf;
    uint8_t *db = buf + hlen;
    memcpy(buf, em + 1, k - 1);

    rv = ksp_digest(hash, label_len ? label : (const uint8_t *)"", label_len, lhash);
    if (rv == CKR_OK) {
        rv = ksp_mgf1_xor(mgf_hash, db, db_len, seed, hlen);
    }
    if (rv == CKR_OK) {
        rv = ksp_mgf1_xor(mgf_hash, seed, hlen, db, db_len);
    }
    if (rv != CKR_OK) {
        goto out;
    }

    /* Step 3g: Y = 0, lHash' = lHash, PS = 00.., then 01. */
    good = ct_is_zero(em[0]);
    for (size_t i = 0; i < hlen; i++) {
        diff |= (size_t)(db[i] ^ lhash[i]);
    }
    good &= ct_is_zero(diff);
    for (size_t i = hlen; i < db_len; i++) {
        size_t is_one = ct_eq(db[i], 1);
        size_t is_zero = ct_is_zero(db[i]);

        zero_index = ct_sel(~found & is_one, i, zero_index);
        found |= is_one;
        /* Before the separator, only zeros are allowed. */
        good &= found | is_zero;
    }
    good &= found;

    /* The message starts off bytes into the area; with !good the value is
     * masked so that the shift below still runs the same steps. */
    size_t off = (zero_index - hlen) & good;
    size_t mlen = (db_len - zero_index - 1) & good;
    uint8_t *area = db + hlen + 1;

    for (size_t step = 1; step < max_len; step <<= 1) {
        size_t mask = ~ct_is_zero(off & step);

        for (size_t i = 0; i < max_len; i++) {
            uint8_t src = i + step < max_len ? area[i + step] : 0;

            area[i] = (uint8_t)ct_sel(mask, src, area[i]);
        }
    }
    if (!good) {
        rv = CKR_ENCRYPTED_DATA_INVALID;
        goto out;
    }
    memcpy(msg, area, mlen);
    *msg_len = mlen;
    rv = CKR_OK;
out:
    ksp_wipe(lhash, sizeof(lhash));
    ksp_secmem_free(buf, k);
    return rv;
}
