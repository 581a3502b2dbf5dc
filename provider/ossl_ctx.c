/*
 * The private OpenSSL library context (DESIGN.md §6, style.md §3.6).
 *
 * Every OpenSSL call ksp11 makes fetches from this context. It is created with
 * OSSL_LIB_CTX_new() (which reads no openssl.cnf) and the "default" provider is
 * loaded into it explicitly, so neither a host's ENGINE set as default nor a
 * pkcs11 provider from the system configuration can route our crypto back into
 * a PKCS#11 module - possibly ourselves, which would deadlock or recurse.
 */
#include <pthread.h>
#include <stdatomic.h>

#include <openssl/provider.h>
#include <openssl/rand.h>

#include "abandon.h"
#include "log.h"
#include "ossl_ctx.h"

#define AREA "ossl"

static pthread_mutex_t ctx_lock = PTHREAD_MUTEX_INITIALIZER;
/* Published with release order after the provider is loaded, so the lock-free
 * fast path never sees a context without its provider. */
static _Atomic(OSSL_LIB_CTX *) ctx_ptr;
static OSSL_PROVIDER *ctx_default; /* LOCKED: ctx_lock */

OSSL_LIB_CTX *ksp_ossl_ctx(void)
{
    OSSL_LIB_CTX *c = atomic_load_explicit(&ctx_ptr, memory_order_acquire);
    OSSL_PROVIDER *prov = NULL;

    if (c != NULL) {
        return c;
    }
    pthread_mutex_lock(&ctx_lock);
    /* LOCKED: ctx_lock */
    c = atomic_load_explicit(&ctx_ptr, memory_order_relaxed);
    if (c != NULL) {
        goto out;
    }
    c = OSSL_LIB_CTX_new();
    if (c == NULL) {
        ksp_err(AREA, "OSSL_LIB_CTX_new failed");
        goto out;
    }
    prov = OSSL_PROVIDER_load(c, "default");
    if (prov == NULL) {
        ksp_err(AREA, "cannot load the OpenSSL default provider into the private context");
        OSSL_LIB_CTX_free(c);
        c = NULL;
        goto out;
    }
    ctx_default = prov;
    atomic_store_explicit(&ctx_ptr, c, memory_order_release);
out:
    pthread_mutex_unlock(&ctx_lock);
    return c;
}

void ksp_ossl_ctx_free(void)
{
    OSSL_LIB_CTX *c = NULL;

    pthread_mutex_lock(&ctx_lock);
    /* LOCKED: ctx_lock. The caller (C_Finalize) guarantees no other thread
     * still uses objects fetched from the context. */
    c = atomic_exchange_explicit(&ctx_ptr, NULL, memory_order_acq_rel);
    if (ctx_default != NULL) {
        OSSL_PROVIDER_unload(ctx_default);
        ctx_default = NULL;
    }
    OSSL_LIB_CTX_free(c);
    pthread_mutex_unlock(&ctx_lock);
}

void ksp_ossl_ctx_forget(void)
{
    /*
     * In a forked child the parent's context may be mid-use by a thread that no
     * longer exists (its locks possibly held), so it is leaked on purpose and
     * the next ksp_ossl_ctx() builds a fresh one with fresh DRBG state. The
     * mutex is re-initialised for the same reason.
     */
    pthread_mutex_t fresh = PTHREAD_MUTEX_INITIALIZER;

    ksp_abandon(atomic_load_explicit(&ctx_ptr, memory_order_relaxed));
    ksp_abandon(ctx_default);
    ctx_lock = fresh;
    ctx_default = NULL;
    atomic_store_explicit(&ctx_ptr, NULL, memory_order_release);
}

int ksp_ossl_random(unsigned char *buf, size_t len)
{
    OSSL_LIB_CTX *c = ksp_ossl_ctx();

    if (c == NULL) {
        return 0;
    }
    if (len == 0) {
        return 1;
    }
    return RAND_bytes_ex(c, buf, len, 0) == 1;
}
