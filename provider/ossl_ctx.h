/*
 * The private OpenSSL library context (DESIGN.md §6): every OpenSSL call made
 * by ksp11 (core and soft backend) fetches from this context with the default
 * provider loaded explicitly, so a host's engine or pkcs11 provider can never
 * route our crypto back into a PKCS#11 module (possibly us).
 */
#ifndef KSP_OSSL_CTX_H
#define KSP_OSSL_CTX_H

#include <openssl/types.h>

/* The context; created on first use (thread-safe), NULL on failure. */
OSSL_LIB_CTX *ksp_ossl_ctx(void);
/* Free it (C_Finalize). A later ksp_ossl_ctx() creates a new one. */
void ksp_ossl_ctx_free(void);
/* Drop the context inherited over fork without freeing shared state. */
void ksp_ossl_ctx_forget(void);
/* Fill buf with random bytes from the private context's DRBG. */
int ksp_ossl_random(unsigned char *buf, size_t len);

#endif
