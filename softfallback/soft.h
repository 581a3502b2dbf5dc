/*
 * Internals of the software backend (DESIGN.md §3): the key handle and the
 * functions its files share. Only the files of softfallback/ include it.
 */
#ifndef KSP_SOFT_H
#define KSP_SOFT_H

#include <openssl/evp.h>

#include "ksp11/backend.h"

struct ksp_backend {
    int unused; /* the soft backend keeps no per-instance state */
};

/* A loaded key: the private EVP_PKEY (private context) and what private_op
 * needs to check input without asking OpenSSL. Read-only after key_load, so
 * concurrent private_op calls on one key are safe. */
struct ksp_bkey {
    EVP_PKEY *pkey;
    CK_KEY_TYPE key_type; /* CKK_RSA or CKK_EC */
    enum ksp_curve curve; /* EC */
    size_t k;             /* RSA modulus bytes, or EC field bytes */
    uint8_t *n;           /* RSA modulus, big-endian, k bytes */
};

/* Empty the OpenSSL error queue into the log; rv, or CKR_HOST_MEMORY if an
 * allocation failed. */
CK_RV ksp_soft_err(const char *what, CK_RV rv);

/* backend.h private_op for the soft backend (soft_op.c). */
CK_RV ksp_soft_private_op(struct ksp_bkey *key, const struct ksp_prim_args *args, const uint8_t *in,
                          size_t in_len, uint8_t *out, size_t *out_len);

#endif
