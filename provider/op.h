/*
 * Session operations (op.c). All functions need the library lock held. The
 * *_final functions end the operation except on a length query or
 * CKR_BUFFER_TOO_SMALL (PKCS#11 3.0 §5.2).
 */
#ifndef KSP_OP_H
#define KSP_OP_H

#include "core.h"
#include "mech.h"

/* Common *Init checks: mechanism, key handle, class, key type, usage, allowed
 * mechanisms. kind KSP_OPK_COUNT means derive. */
CK_RV ksp_key_check_inlock(struct ksp_session *s, const CK_MECHANISM *m, CK_OBJECT_HANDLE kh,
                           enum ksp_op_kind kind, const struct ksp_mech **row_out,
                           struct ksp_object **key_out);
CK_RV ksp_op_init_inlock(struct ksp_session *s, enum ksp_op_kind kind, const CK_MECHANISM *m,
                         CK_OBJECT_HANDLE kh);
CK_RV ksp_op_get_inlock(struct ksp_session *s, enum ksp_op_kind kind, struct ksp_op **out);
/* Feed input; an error ends the operation. */
CK_RV ksp_op_update_inlock(struct ksp_session *s, enum ksp_op_kind kind, const uint8_t *in,
                           size_t len);
CK_RV ksp_op_sign_final_inlock(struct ksp_session *s, uint8_t *out, CK_ULONG *out_len);
CK_RV ksp_op_verify_final_inlock(struct ksp_session *s, const uint8_t *sig, size_t sig_len);
CK_RV ksp_op_digest_final_inlock(struct ksp_session *s, uint8_t *out, CK_ULONG *out_len);
CK_RV ksp_op_encrypt_final_inlock(struct ksp_session *s, uint8_t *out, CK_ULONG *out_len);
CK_RV ksp_op_decrypt_final_inlock(struct ksp_session *s, uint8_t *out, CK_ULONG *out_len);
void ksp_op_end_inlock(struct ksp_session *s, enum ksp_op_kind kind);
bool ksp_op_updated(const struct ksp_op *op);
/* Output length of the operation (signature, ciphertext bound, digest). */
size_t ksp_op_out_len(const struct ksp_op *op);
/* Forget buffered raw input (single-part calls retried after BUFFER_TOO_SMALL). */
void ksp_op_reset_input(struct ksp_op *op);

#endif
