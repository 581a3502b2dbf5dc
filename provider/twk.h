/*
 * Token wrapping key (DESIGN.md §3): a random 256-bit key per token, wrapped
 * under PIN-derived keys; private material of objects is sealed under it with
 * AES-256-GCM.
 */
#ifndef KSP_TWK_H
#define KSP_TWK_H

#include "store.h"

#define KSP_TWK_LEN           32
#define KSP_KDF_PBKDF2_SHA256 1u

/* Fresh random TWK in a secret buffer. */
CK_RV ksp_twk_new(struct ksp_buf *twk);
/* PBKDF2 iterations that take about ms milliseconds here (measured once per
 * process and cached). Never below 10000. */
uint32_t ksp_kdf_iterations(unsigned ms);
/* Wrap twk under pin with `iterations` PBKDF2-SHA256 rounds (fresh salt, nonce). */
CK_RV ksp_twk_wrap(const struct ksp_buf *twk, const uint8_t *pin, size_t pin_len,
                   uint32_t iterations, struct ksp_wrapped *out);
/* Unwrap: CKR_PIN_INCORRECT if the tag does not verify. */
CK_RV ksp_twk_unwrap(const struct ksp_wrapped *w, const uint8_t *pin, size_t pin_len,
                     struct ksp_buf *twk_out);

/* Seal pt under twk; aad binds it to its object (e.g. the object id).
 * Output: nonce(12) || ciphertext || tag(16). */
CK_RV ksp_seal(const struct ksp_buf *twk, const uint8_t *aad, size_t aad_len,
               const struct ksp_buf *pt, struct ksp_buf *out);
/* Open; CKR_ENCRYPTED_DATA_INVALID if it does not authenticate. Output is a
 * secret buffer. */
CK_RV ksp_unseal(const struct ksp_buf *twk, const uint8_t *aad, size_t aad_len,
                 const struct ksp_buf *sealed, struct ksp_buf *out);

#endif
