/*
 * Secret buffers (style.md §3.8): locked where allowed, excluded from core
 * dumps, wiped on free. Used for PINs, wrapping keys, authValues and unwrapped
 * key material.
 */
#ifndef KSP_SECMEM_H
#define KSP_SECMEM_H

#include <stddef.h>
#include <stdint.h>

#include "ksp11/backend.h"

/* Allocate len zeroed bytes as a secret buffer; NULL on failure. */
void *ksp_secmem_alloc(size_t len);
/* Wipe and free a buffer from ksp_secmem_alloc; len must be the allocated size. */
void ksp_secmem_free(void *p, size_t len);
/* Wipe len bytes (not optimised away). */
void ksp_wipe(void *p, size_t len);

/* Allocate b->p as a secret buffer of len bytes. CKR_HOST_MEMORY on failure. */
CK_RV ksp_buf_alloc(struct ksp_buf *b, size_t len);
/* Copy len bytes into a fresh secret buffer. */
CK_RV ksp_buf_set(struct ksp_buf *b, const void *p, size_t len);
/* Wipe and free; leaves {NULL, 0}. Safe on an empty buffer. */
void ksp_buf_free(struct ksp_buf *b);

/* Constant-time comparison; 0 when equal. */
int ksp_memeq_ct(const void *a, const void *b, size_t len);

#endif
