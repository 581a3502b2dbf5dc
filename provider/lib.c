/*
 * Library lifecycle: C_Initialize / C_Finalize semantics, the library lock,
 * fork detection (PKCS#11 3.0 §5.4), and lazy backend opening.
 *
 * Locking: one library lock serialises all core state. It is either a pthread
 * mutex (CKF_OS_LOCKING_OK or no args) or the application's callbacks. The
 * private-key work of a thread-safe backend runs with it released
 * (ksp_lib_suspend/resume, core.h), so signing scales with threads; the TPM
 * backend has its own lock per connection.
 * Fork: we record getpid() at C_Initialize and compare at every entry; a child
 * that did not call C_Initialize gets CKR_CRYPTOKI_NOT_INITIALIZED and its
 * inherited state is discarded without being used (no pthread_atfork: it
 * cannot be unregistered from a dlclose'd module, semantics.md §6.3).
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "abandon.h"
#include "core.h"
#include "log.h"
#include "ossl_ctx.h"
#include "policy.h"
#include "secmem.h"

struct ksp_lib ksp_lib;

/* The lock lives outside ksp_lib so that discarding state never touches it. */
static pthread_mutex_t os_lock = PTHREAD_MUTEX_INITIALIZER;
static CK_C_INITIALIZE_ARGS app_args;
static void *app_mutex;
static bool use_app_mutex;
/* Serialises C_Initialize/C_Finalize themselves against each other. */
static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;

static void lock(void)
{
    if (use_app_mutex)
        app_args.LockMutex(app_mutex);
    else
        pthread_mutex_lock(&os_lock);
}

static void unlock(void)
{
    if (use_app_mutex)
        app_args.UnlockMutex(app_mutex);
    else
        pthread_mutex_unlock(&os_lock);
}

/* Bounded: a process forks a few times at most; beyond this, pointers are
 * dropped (and leak checkers would say so). volatile: stores to a table that
 * is never read must not be optimised away. */
#define ABANDON_MAX 1024
static const void *volatile abandoned[ABANDON_MAX];
static size_t n_abandoned;

void ksp_abandon(const void *p)
{
    if (p && n_abandoned < ABANDON_MAX)
        abandoned[n_abandoned++] = p;
}

/*
 * Free every piece of state. `inherited` means we are in a forked child:
 * nothing may be sent to a backend connection owned by the parent, so
 * backends are dropped without close and loaded keys without unload.
 */
static void discard_state(bool inherited)
{
    while (ksp_lib.sessions) {
        struct ksp_session *s = ksp_lib.sessions;
        ksp_lib.sessions = s->next;
        for (int i = 0; i < KSP_OPK_COUNT; i++)
            ksp_op_free(s->ops[i]);
        free(s->find.handles);
        free(s);
    }
    while (ksp_lib.session_objects) {
        struct ksp_object *o = ksp_lib.session_objects;
        ksp_lib.session_objects = o->next;
        if (inherited) {
            ksp_abandon(o->bkey);
            o->bkey = NULL;
        }
        ksp_object_free(o);
    }
    while (ksp_lib.tokens) {
        struct ksp_token *t = ksp_lib.tokens;
        ksp_lib.tokens = t->next;
        if (inherited)
            for (struct ksp_object *o = t->objects; o; o = o->next) {
                ksp_abandon(o->bkey);
                o->bkey = NULL;
            }
        ksp_token_free(t);
    }
    if (ksp_lib.soft && !inherited)
        ksp_soft_backend.close(ksp_lib.soft);
    else
        ksp_abandon(ksp_lib.soft);
    ksp_lib.soft = NULL;
    /* The TPM connection of a parent must not be used by its child. */
    if (ksp_lib.tpm) {
        const struct ksp_backend_ops *tpm = ksp_backend_ops_by_id(KSP11_BACKEND_TPM);
        (inherited ? tpm->forget : tpm->close)(ksp_lib.tpm);
    }
    ksp_lib.tpm = NULL;
    ksp_policy_reset();
    ksp_config_free(&ksp_lib.cfg);
    if (inherited)
        ksp_ossl_ctx_forget();
    else
        ksp_ossl_ctx_free();
    ksp_lib.initialized = false;
}

static CK_RV check_args(const CK_C_INITIALIZE_ARGS *args)
{
    /* PKCS#11 3.0 §5.4 C_Initialize: all four callbacks or none. */
    int n = !!args->CreateMutex + !!args->DestroyMutex + !!args->LockMutex + !!args->UnlockMutex;
    if (n != 0 && n != 4)
        return CKR_ARGUMENTS_BAD;
    if (args->flags & ~(CKF_LIBRARY_CANT_CREATE_OS_THREADS | CKF_OS_LOCKING_OK))
        return CKR_ARGUMENTS_BAD;
    return CKR_OK;
}

CK_RV ksp_lib_initialize(CK_C_INITIALIZE_ARGS *args)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    const char *conf = NULL;

    pthread_mutex_lock(&init_lock);
    if (ksp_lib.initialized) {
        if (ksp_lib.pid == getpid()) {
            rv = CKR_CRYPTOKI_ALREADY_INITIALIZED;
            goto out;
        }
        /* A forked child re-initialising: drop the parent's state unused. */
        discard_state(true);
        pthread_mutex_init(&os_lock, NULL);
        use_app_mutex = false;
    }
    memset(&app_args, 0, sizeof(app_args));
    if (args) {
        rv = check_args(args);
        if (rv != CKR_OK)
            goto out;
        /* With CKF_OS_LOCKING_OK we may use native locks (and do); without it
         * but with callbacks, we must use the callbacks (§5.4 case 3). */
        if (!(args->flags & CKF_OS_LOCKING_OK) && args->CreateMutex) {
            if (args->CreateMutex(&app_mutex) != CKR_OK) {
                rv = CKR_CANT_LOCK;
                goto out;
            }
            app_args = *args;
            use_app_mutex = true;
        }
        conf = args->pReserved;
    }

    memset(&ksp_lib, 0, sizeof(ksp_lib));
    rv = ksp_config_load(conf, &ksp_lib.cfg);
    if (rv != CKR_OK)
        goto out;
    ksp_log_open(&ksp_lib.cfg);
    ksp_lib.pid = getpid();
    ksp_lib.next_slot = 1;
    ksp_lib.next_session = 1;
    ksp_lib.next_object = 1;
    ksp_lib.soft_ops = &ksp_soft_backend;
    ksp_lib.initialized = true;
    ksp_debug("lib", "initialized (store %s)", ksp_lib.cfg.store_root);
    rv = CKR_OK;
out:
    if (rv != CKR_OK && use_app_mutex && rv != CKR_CRYPTOKI_ALREADY_INITIALIZED) {
        app_args.DestroyMutex(app_mutex);
        use_app_mutex = false;
    }
    pthread_mutex_unlock(&init_lock);
    return rv;
}

CK_RV ksp_lib_finalize(void)
{
    pthread_mutex_lock(&init_lock);
    if (!ksp_lib.initialized || ksp_lib.pid != getpid()) {
        pthread_mutex_unlock(&init_lock);
        return CKR_CRYPTOKI_NOT_INITIALIZED;
    }
    lock();
    for (struct ksp_token *t = ksp_lib.tokens; t; t = t->next)
        ksp_auth_logout_inlock(t);
    discard_state(false);
    unlock();
    ksp_log_close();
    if (use_app_mutex) {
        app_args.DestroyMutex(app_mutex);
        use_app_mutex = false;
    }
    pthread_mutex_unlock(&init_lock);
    return CKR_OK;
}

CK_RV ksp_enter(void)
{
    if (!ksp_lib.initialized || ksp_lib.pid != getpid())
        return CKR_CRYPTOKI_NOT_INITIALIZED;
    lock();
    if (!ksp_lib.initialized) {
        unlock();
        return CKR_CRYPTOKI_NOT_INITIALIZED;
    }
    return CKR_OK;
}

void ksp_leave(void)
{
    unlock();
}

void ksp_lib_suspend(void)
{
    unlock();
}

void ksp_lib_resume(void)
{
    lock();
}

CK_RV ksp_enter_session(CK_SESSION_HANDLE h, struct ksp_session **s)
{
    CK_RV rv = ksp_enter();
    if (rv != CKR_OK)
        return rv;
    rv = ksp_session_get_inlock(h, s);
    if (rv != CKR_OK)
        unlock();
    return rv;
}

const struct ksp_backend_ops *ksp_backend_ops_by_id(CK_ULONG id)
{
    switch (id) {
    case KSP11_BACKEND_SOFT:
        return &ksp_soft_backend;
    case KSP11_BACKEND_TPM:
        return &ksp_tpm_backend;
    default:
        return NULL;
    }
}

CK_RV ksp_backend_get_inlock(CK_ULONG id, const struct ksp_backend_ops **ops,
                             struct ksp_backend **out)
{
    const struct ksp_backend_ops *o = ksp_backend_ops_by_id(id);
    struct ksp_backend **slot = id == KSP11_BACKEND_TPM ? &ksp_lib.tpm : &ksp_lib.soft;
    if (!o)
        return CKR_FUNCTION_FAILED;
    if (!*slot) {
        CK_RV rv = o->open(&ksp_lib.cfg, slot);
        if (rv != CKR_OK) {
            ksp_err("lib", "%s backend failed to open: %s", o->name, ksp_rv_name(rv));
            return rv;
        }
    }
    if (ops)
        *ops = o;
    *out = *slot;
    return CKR_OK;
}

void ksp_pad(CK_UTF8CHAR *dst, size_t dst_len, const char *src)
{
    size_t n = src ? strlen(src) : 0;
    if (n > dst_len)
        n = dst_len;
    memset(dst, ' ', dst_len);
    if (n)
        memcpy(dst, src, n);
}
