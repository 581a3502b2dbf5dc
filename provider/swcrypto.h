/*
 * Software crypto of the core (DESIGN.md §2): hashing, padding and encodings
 * the core synthesises, public-key verify and encrypt, ECDH KDFs, EC
 * parameter and point encodings. All through the private OpenSSL context.
 * No private keys ever come here.
 */
#ifndef KSP_SWCRYPTO_H
#define KSP_SWCRYPTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ksp11/backend.h"

/* ---- digests ---- */
struct ksp_digest;
/* Digest length of a CKM_SHA_1/SHA224/SHA256/SHA384/SHA512 mechanism, 0 if unknown. */
size_t ksp_hash_len(CK_MECHANISM_TYPE hash);
CK_RV ksp_digest_new(CK_MECHANISM_TYPE hash, struct ksp_digest **out);
CK_RV ksp_digest_update(struct ksp_digest *d, const uint8_t *in, size_t len);
/* Writes ksp_hash_len() bytes to out. The context can't be updated after. */
CK_RV ksp_digest_final(struct ksp_digest *d, uint8_t *out);
void ksp_digest_free(struct ksp_digest *d);
/* One-shot. */
CK_RV ksp_digest(CK_MECHANISM_TYPE hash, const uint8_t *in, size_t len, uint8_t *out);

/* ---- RSA encodings (RFC 8017) ---- */
/* DER DigestInfo for hash||digest into out (buffer of at least 19+64 bytes). */
CK_RV ksp_digestinfo(CK_MECHANISM_TYPE hash, const uint8_t *digest, size_t dlen, uint8_t *out,
                     size_t *out_len);
/* EMSA-PKCS1-v1_5: 00 01 FF.. 00 || t into a k-byte block. CKR_DATA_LEN_RANGE
 * if t_len > k - 11. */
CK_RV ksp_emsa_pkcs1(const uint8_t *t, size_t t_len, uint8_t *em, size_t k);
/* EMSA-PSS-ENCODE of mhash with salt length slen and MGF1(mgf_hash), for a
 * modulus of mod_bits; writes k = ceil(mod_bits/8) bytes (leading 0 if needed). */
CK_RV ksp_emsa_pss(CK_MECHANISM_TYPE hash, CK_MECHANISM_TYPE mgf_hash, size_t slen,
                   const uint8_t *mhash, size_t mlen, size_t mod_bits, uint8_t *em);
/* RFC 8017 §B.2.1: XOR MGF1(hash, seed) into the mask_len bytes of out. */
CK_RV ksp_mgf1_xor(CK_MECHANISM_TYPE hash, const uint8_t *seed, size_t seed_len, uint8_t *out,
                   size_t mask_len);
/* The CKM_RSA_X_509 sign guard: true only if block (k bytes, k = modulus
 * length) is a well-formed EMSA-PKCS1-v1_5 block (00 01 FF{8,} 00 ...) or
 * shaped like EMSA-PSS (the top bits above mod_bits-1 clear, last byte 0xBC). */
bool ksp_rsa_raw_sign_input_ok(const uint8_t *block, size_t k, size_t mod_bits);

/* ---- public-key operations ---- */
/* Parameters of a public operation, mirroring the mechanism. */
struct ksp_pubop {
    enum {
        KSP_PUB_RSA_RAW = 1, /* verify: sig^e == data (left-padded); encrypt: raw */
        KSP_PUB_RSA_PKCS1,   /* verify: data is the DigestInfo/raw message; encrypt: type 2 */
        KSP_PUB_RSA_PSS,     /* verify: data is the digest */
        KSP_PUB_RSA_OAEP,    /* encrypt */
        KSP_PUB_ECDSA,       /* verify: data is the digest (any length) */
    } kind;
    CK_MECHANISM_TYPE hash;     /* PSS, OAEP */
    CK_MECHANISM_TYPE mgf_hash; /* PSS, OAEP */
    size_t salt_len;            /* PSS */
    const uint8_t *label;       /* OAEP */
    size_t label_len;
};
/* CKR_OK, CKR_SIGNATURE_INVALID or CKR_SIGNATURE_LEN_RANGE. ECDSA signatures are r||s. */
CK_RV ksp_pub_verify(const struct ksp_pubkey *pub, const struct ksp_pubop *op, const uint8_t *data,
                     size_t data_len, const uint8_t *sig, size_t sig_len);
/* Output length convention of PKCS#11 (NULL out asks; CKR_BUFFER_TOO_SMALL). */
CK_RV ksp_pub_encrypt(const struct ksp_pubkey *pub, const struct ksp_pubop *op, const uint8_t *in,
                      size_t in_len, uint8_t *out, size_t *out_len);
/* Check a public key is well-formed (RSA n odd, >= 1024 bits, e odd > 1; EC
 * point on the curve). CKR_ATTRIBUTE_VALUE_INVALID otherwise. */
CK_RV ksp_pub_check(const struct ksp_pubkey *pub);
/* Modulus length in bits (RSA) or field bits (EC). */
size_t ksp_pub_bits(const struct ksp_pubkey *pub);

/* ---- EC encodings ---- */
/* CKA_EC_PARAMS DER (namedCurve OID) <-> curve id. CKR_CURVE_NOT_SUPPORTED for
 * other curves, CKR_ATTRIBUTE_VALUE_INVALID/CKR_DOMAIN_PARAMS_INVALID for garbage. */
CK_RV ksp_ec_params_to_curve(const uint8_t *der, size_t len, enum ksp_curve *out);
/* DER of a curve's OID; static storage. */
const uint8_t *ksp_ec_curve_params(enum ksp_curve c, size_t *len);
/* Field size in bytes (32, 48, 66). */
size_t ksp_ec_field_bytes(enum ksp_curve c);
/* CKA_EC_POINT is a DER OCTET STRING around the raw point. */
CK_RV ksp_ec_point_wrap(const uint8_t *raw, size_t len, struct ksp_buf *der);
/* Accept either DER OCTET STRING or raw uncompressed point (both occur in the
 * wild for CKM_ECDH1_DERIVE public data); output is the raw point. */
CK_RV ksp_ec_point_unwrap(enum ksp_curve c, const uint8_t *in, size_t len, struct ksp_buf *raw);

/* ---- ECDH KDF (PKCS#11 §6.3.16, ANSI X9.63 KDF with SHA-x) ---- */
/* kdf: CKD_NULL (out = Z truncated/len check) or CKD_SHA1_KDF..CKD_SHA512_KDF. */
CK_RV ksp_ecdh_kdf(CK_ULONG kdf, const uint8_t *z, size_t z_len, const uint8_t *shared,
                   size_t shared_len, uint8_t *out, size_t out_len);

/* ---- DER helpers used by import ---- */
/* Build PKCS#8 DER from RSA components (n, e, d, p, q, dp, dq, qinv; any of
 * p..qinv may be empty) or from EC (curve, private scalar, optional point). */
CK_RV ksp_pkcs8_from_rsa(const struct ksp_buf comp[8], struct ksp_buf *der);
CK_RV ksp_pkcs8_from_ec(enum ksp_curve c, const uint8_t *d, size_t d_len, struct ksp_buf *der);

/* Random bytes: CKR_OK or CKR_FUNCTION_FAILED. */
CK_RV ksp_random(uint8_t *buf, size_t len);

#endif
