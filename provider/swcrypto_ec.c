/*
 * EC encodings and the ECDH key derivation functions of the core:
 * CKA_EC_PARAMS (namedCurve OIDs only) <-> curve ids, CKA_EC_POINT DER
 * wrapping, and the PKCS#11 CKD_* KDFs (ANSI X9.63 with SHA-x). Pure byte
 * handling on hostile input plus the digest API.
 */
#include <string.h>

#include <openssl/crypto.h>

#include "log.h"
#include "secmem.h"
#include "swcrypto_int.h"

#define AREA "swcrypto"

/* RFC 5480 §2.1.1.1 / SEC 2: namedCurve OIDs, DER with tag and length. */
static const uint8_t oid_p256[] = {0x06, 0x08, 0x2A, 0x86, 0x48, 0xCE, 0x3D, 0x03, 0x01, 0x07};
static const uint8_t oid_p384[] = {0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x22};
static const uint8_t oid_p521[] = {0x06, 0x05, 0x2B, 0x81, 0x04, 0x00, 0x23};

static const struct {
    enum ksp_curve curve;
    const uint8_t *oid;
    size_t oid_len;
    size_t field_bytes;
    const char *group;
} curves[] = {
    {KSP_CURVE_P256, oid_p256, sizeof(oid_p256), 32, "P-256"},
    {KSP_CURVE_P384, oid_p384, sizeof(oid_p384), 48, "P-384"},
    {KSP_CURVE_P521, oid_p521, sizeof(oid_p521), 66, "P-521"},
};
#define NCURVES (sizeof(curves) / sizeof(curves[0]))

const uint8_t *ksp_ec_curve_params(enum ksp_curve c, size_t *len)
{
    for (size_t i = 0; i < NCURVES; i++) {
        if (curves[i].curve == c) {
            *len = curves[i].oid_len;
            return curves[i].oid;
        }
    }
    *len = 0;
    return NULL;
}

size_t ksp_ec_field_bytes(enum ksp_curve c)
{
    for (size_t i = 0; i < NCURVES; i++) {
        if (curves[i].curve == c) {
            return curves[i].field_bytes;
        }
    }
    return 0;
}

const char *ksp_ec_group_name(enum ksp_curve c)
{
    for (size_t i = 0; i < NCURVES; i++) {
        if (curves[i].curve == c) {
            return curves[i].group;
        }
    }
    return NULL;
}

/*
 * Parse one DER TLV header at in[0..len): tag, definite length (short form or
 * long form of up to 3 bytes, minimal). On success *hdr is the header size and
 * *clen the content length, and the TLV must span exactly len bytes.
 */
static bool der_tlv_exact(const uint8_t *in, size_t len, uint8_t *tag, size_t *hdr, size_t *clen)
{
    size_t n = 0;
    size_t l = 0;

    if (len < 2) {
        return false;
    }
    *tag = in[0];
    if ((in[0] & 0x1F) == 0x1F) {
        return false; /* high tag numbers never occur here */
    }
    if (in[1] < 0x80) {
        l = in[1];
        n = 2;
    } else {
        size_t nb = in[1] & 0x7F;

        if (nb == 0 || nb > 3 || len < 2 + nb || in[2] == 0) {
            return false; /* indefinite, oversized or non-minimal */
        }
        for (size_t i = 0; i < nb; i++) {
            l = (l << 8) | in[2 + i];
        }
        if (l < 0x80) {
            return false; /* DER: short form was required */
        }
        n = 2 + nb;
    }
    if (len - n != l) {
        return false;
    }
    *hdr = n;
    *clen = l;
    return true;
}

CK_RV ksp_ec_params_to_curve(const uint8_t *der, size_t len, enum ksp_curve *out)
{
    uint8_t tag = 0;
    size_t hdr = 0;
    size_t clen = 0;

    if (der == NULL) {
        return CKR_ATTRIBUTE_VALUE_INVALID;
    }
    for (size_t i = 0; i < NCURVES; i++) {
        if (len == curves[i].oid_len && memcmp(der, curves[i].oid, len) == 0) {
            *out = curves[i].curve;
            return CKR_OK;
        }
    }
    /* X9.62 Parameters ::= CHOICE { ecParameters SEQUENCE, namedCurve OID,
     * implicitlyCA NULL }: well-formed but not ours is "not supported". */
    if (!der_tlv_exact(der, len, &tag, &hdr, &clen)) {
        return CKR_ATTRIBUTE_VALUE_INVALID;
    }
    if ((tag == 0x06 && clen > 0) || tag == 0x30 || (tag == 0x05 && clen == 0)) {
        ksp_debug(AREA, "EC parameters (tag 0x%02x, %zu bytes) name an unsupported curve", tag,
                  len);
        return CKR_CURVE_NOT_SUPPORTED;
    }
    return CKR_ATTRIBUTE_VALUE_INVALID;
}

CK_RV ksp_ec_point_wrap(const uint8_t *raw, size_t len, struct ksp_buf *der)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_buf b = {NULL, 0};
    size_t hdr = len < 0x80 ? 2 : (len < 0x100 ? 3 : 4);

    if (raw == NULL || len == 0 || len > 0xFFFF) {
        return CKR_ATTRIBUTE_VALUE_INVALID;
    }
    rv = ksp_buf_alloc(&b, hdr + len);
    if (rv != CKR_OK) {
        return rv;
    }
    b.p[0] = 0x04; /* OCTET STRING */
    if (hdr == 2) {
        b.p[1] = (uint8_t)len;
    } else if (hdr == 3) {
        b.p[1] = 0x81;
        b.p[2] = (uint8_t)len;
    } else {
        b.p[1] = 0x82;
        b.p[2] = (uint8_t)(len >> 8);
        b.p[3] = (uint8_t)len;
    }
    memcpy(b.p + hdr, raw, len);
    *der = b;
    return CKR_OK;
}

CK_RV ksp_ec_point_unwrap(enum ksp_curve c, const uint8_t *in, size_t len, struct ksp_buf *raw)
{
    size_t fb = ksp_ec_field_bytes(c);
    size_t plen = 1 + 2 * fb;
    uint8_t tag = 0;
    size_t hdr = 0;
    size_t clen = 0;

    if (fb == 0) {
        return CKR_CURVE_NOT_SUPPORTED;
    }
    if (in == NULL) {
        return CKR_ATTRIBUTE_VALUE_INVALID;
    }
    /* A raw uncompressed point also starts with 0x04, like the OCTET STRING
     * tag: the exact length tells them apart (the DER form is 2-3 bytes longer). */
    if (len == plen && in[0] == 0x04) {
        return ksp_buf_set(raw, in, len);
    }
    if (der_tlv_exact(in, len, &tag, &hdr, &clen) && tag == 0x04 && clen == plen &&
        in[hdr] == 0x04) {
        return ksp_buf_set(raw, in + hdr, clen);
    }
    /* Compressed (02/03) and hybrid (06/07) points are refused. */
    return CKR_ATTRIBUTE_VALUE_INVALID;
}

/* ANSI X9.63 §3.6.1: K = Hash(Z || Counter || SharedInfo) for Counter = 1, 2, ...
 * (32-bit big-endian), concatenated and truncated to out_len. */
static CK_RV x963_kdf(CK_MECHANISM_TYPE hash, const uint8_t *z, size_t z_len, const uint8_t *shared,
                      size_t shared_len, uint8_t *out, size_t out_len)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    size_t hlen = ksp_hash_len(hash);
    struct ksp_digest *d = NULL;
    uint8_t block[64];
    uint32_t counter = 1;

    for (size_t done = 0; done < out_len; done += hlen, counter++) {
        uint8_t c[4] = {(uint8_t)(counter >> 24), (uint8_t)(counter >> 16), (uint8_t)(counter >> 8),
                        (uint8_t)counter};
        size_t n = out_len - done < hlen ? out_len - done : hlen;

        rv = ksp_digest_new(hash, &d);
        if (rv != CKR_OK) {
            goto out;
        }
        rv = ksp_digest_update(d, z, z_len);
        if (rv == CKR_OK) {
            rv = ksp_digest_update(d, c, sizeof(c));
        }
        if (rv == CKR_OK && shared_len > 0) {
            rv = ksp_digest_update(d, shared, shared_len);
        }
        if (rv == CKR_OK) {
            rv = ksp_digest_final(d, block);
        }
        ksp_digest_free(d);
        d = NULL;
        if (rv != CKR_OK) {
            goto out;
        }
        memcpy(out + done, block, n);
    }
    rv = CKR_OK;
out:
    OPENSSL_cleanse(block, sizeof(block));
    if (rv != CKR_OK) {
        OPENSSL_cleanse(out, out_len); /* no partial key material */
    }
    return rv;
}

CK_RV ksp_ecdh_kdf(CK_ULONG kdf, const uint8_t *z, size_t z_len, const uint8_t *shared,
                   size_t shared_len, uint8_t *out, size_t out_len)
{
    CK_MECHANISM_TYPE hash = 0;

    if (z == NULL || z_len == 0 || (shared == NULL && shared_len > 0)) {
        return CKR_ARGUMENTS_BAD;
    }
    if (out_len == 0) {
        return CKR_KEY_SIZE_RANGE;
    }
    switch (kdf) {
    case CKD_NULL:
        /* PKCS#11 3.0 §6.3.16 (CK_ECDH1_DERIVE_PARAMS): with CKD_NULL,
         * pSharedData must be NULL and ulSharedDataLen zero. */
        if (shared_len != 0) {
            return CKR_MECHANISM_PARAM_INVALID;
        }
        if (out_len > z_len) {
            return CKR_KEY_SIZE_RANGE;
        }
        memcpy(out, z, out_len);
        return CKR_OK;
    case CKD_SHA1_KDF:
        hash = CKM_SHA_1;
        break;
    case CKD_SHA224_KDF:
        hash = CKM_SHA224;
        break;
    case CKD_SHA256_KDF:
        hash = CKM_SHA256;
        break;
    case CKD_SHA384_KDF:
        hash = CKM_SHA384;
        break;
    case CKD_SHA512_KDF:
        hash = CKM_SHA512;
        break;
    default:
        return CKR_MECHANISM_PARAM_INVALID;
    }
    /* X9.63: at most (2^32 - 1) hash blocks; keep far below it anyway. */
    if (out_len > 255 * ksp_hash_len(hash)) {
        return CKR_KEY_SIZE_RANGE;
    }
    return x963_kdf(hash, z, z_len, shared, shared_len, out, out_len);
}
