/*
 * RSA decryption paddings the core decodes itself, after a raw RSA operation
 * in a backend that cannot apply them natively (a TPM without the OAEP hash,
 * with another MGF1 hash, or a label: TPM2_RSA_Decrypt takes only
 * NUL-terminated labels). Constant time in the secret block.
 */
#ifndef KSP_RSA_PAD_H
#define KSP_RSA_PAD_H

#include <stddef.h>
#include <stdint.h>

#include "ksp11/pkcs11.h"

/*
 * EME-OAEP decoding (RFC 8017 §7.1.2 step 3) of em, the k-byte result of the
 * raw RSA operation. On success the message is written to the start of msg
 * (a buffer of at least k bytes; secret) and its length to *msg_len.
 * CKR_ENCRYPTED_DATA_INVALID for any decoding error, whichever check failed;
 * CKR_KEY_SIZE_RANGE if k is too small for the hash; CKR_MECHANISM_PARAM_INVALID
 * for an unknown hash. Does not branch on or index by the contents of em.
 */
CK_RV ksp_eme_oaep_decode(CK_MECHANISM_TYPE hash, CK_MECHANISM_TYPE mgf_hash, const uint8_t *label,
                          size_t label_len, const uint8_t *em, size_t k, uint8_t *msg,
                          size_t *msg_len);

#endif
