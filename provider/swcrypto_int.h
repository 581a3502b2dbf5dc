/*
 * Internals shared by the swcrypto_*.c files and the soft backend: OpenSSL
 * names for our ids, EVP_PKEY <-> struct ksp_pubkey, PKCS#8 encoding and the
 * OpenSSL error queue -> log + CK_RV helper. Only code that already includes
 * OpenSSL headers includes this.
 */
#ifndef KSP_SWCRYPTO_INT_H
#define KSP_SWCRYPTO_INT_H

#include <openssl/evp.h>

#include "swcrypto.h"

/* OpenSSL digest name of CKM_SHA_1..CKM_SHA512, NULL if unknown. */
const char *ksp_hash_ossl_name(CK_MECHANISM_TYPE hash);
/* The digest fetched from the private context; NULL if unknown or on failure.
 * Free with EVP_MD_free. */
EVP_MD *ksp_md_fetch(CK_MECHANISM_TYPE hash);
/* OpenSSL group name ("P-256", ...) of a curve, NULL if unknown. */
const char *ksp_ec_group_name(enum ksp_curve c);

/*
 * Empty the OpenSSL error queue into the log (area, what: context) and return
 * rv, or CKR_HOST_MEMORY if the queue held an allocation failure. Logged at
 * debug level for the expected outcomes (bad signature, bad ciphertext), at
 * error level otherwise.
 */
CK_RV ksp_ossl_err(const char *area, const char *what, CK_RV rv);

/* Build a public EVP_PKEY (private context) from n/e or curve+raw point.
 * CKR_ATTRIBUTE_VALUE_INVALID if OpenSSL rejects the values (e.g. a point not
 * on the curve), CKR_KEY_TYPE_INCONSISTENT for an unknown key type. */
CK_RV ksp_pub_to_pkey(const struct ksp_pubkey *pub, EVP_PKEY **out);
/* Fill a ksp_pubkey (fresh ksp_buf members) from an RSA or EC EVP_PKEY. */
CK_RV ksp_pub_from_pkey(EVP_PKEY *pkey, struct ksp_pubkey *out);
/* Free the buffers of a ksp_pubkey and zero it. */
void ksp_pub_clear(struct ksp_pubkey *pub);
/* Curve of an EC EVP_PKEY, KSP_CURVE_NONE if not one of ours. */
enum ksp_curve ksp_pkey_curve(EVP_PKEY *pkey);

/* PKCS#8 PrivateKeyInfo DER of a private key, in a secret buffer. */
CK_RV ksp_pkey_to_pkcs8(EVP_PKEY *pkey, struct ksp_buf *der);
/* Parse PKCS#8 PrivateKeyInfo DER (unencrypted) into a key on the private
 * context. CKR_ATTRIBUTE_VALUE_INVALID if it does not parse. */
CK_RV ksp_pkey_from_pkcs8(const uint8_t *der, size_t len, EVP_PKEY **out);

#endif
