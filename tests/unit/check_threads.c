/*
 * Threads (PKCS#11 3.0 §5.4 / §6.7.6): the module's finer locking. Software
 * keys sign without the library lock, so these check what a multi-threaded
 * host relies on: concurrent C_Sign on one key from many sessions gives valid
 * signatures; C_Logout and C_DestroyObject racing with signers neither crash
 * nor produce a bad signature (the key stays alive for calls in flight); and
 * with the application's mutex callbacks (no CKF_OS_LOCKING_OK) the module
 * locks through them, balanced.
 * Threads record outcomes; only the main thread asserts.
 */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/obj_mac.h>

#include "testlib.h"

#define NTHREADS 4

struct signer {
    CK_SLOT_ID slot;
    CK_MECHANISM mech;
    const char *label; /* key to (re)find by label */
    EVP_PKEY *pub;
    int rounds;         /* signatures to attempt */
    volatile int *stop; /* or run until *stop (racing tests) */
    int ok, bad_sig, refused, unexpected;
    CK_RV last_unexpected;
};

static CK_OBJECT_HANDLE find_key(CK_SESSION_HANDLE s, const char *label)
{
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_LABEL, (void *)label, strlen(label)}};
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    CK_ULONG n = 0;
    if (P11->C_FindObjectsInit(s, t, 2) != CKR_OK)
        return CK_INVALID_HANDLE;
    if (P11->C_FindObjects(s, &h, 1, &n) != CKR_OK || n != 1)
        h = CK_INVALID_HANDLE;
    P11->C_FindObjectsFinal(s);
    return h;
}

static void *sign_loop(void *arg)
{
    struct signer *w = arg;
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    uint8_t msg[48], sig[512];
    if (P11->C_OpenSession(w->slot, CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK) {
        w->unexpected++;
        return NULL;
    }
    CK_OBJECT_HANDLE key = find_key(s, w->label);
    for (int i = 0; w->stop ? !*w->stop : i < w->rounds; i++) {
        CK_ULONG len = sizeof(sig);
        memset(msg, i & 0xff, sizeof(msg));
        msg[0] = (uint8_t)(uintptr_t)w;
        CK_RV rv = P11->C_SignInit(s, &w->mech, key);
        if (rv == CKR_OK)
            rv = P11->C_Sign(s, msg, sizeof(msg), sig, &len);
        if (rv == CKR_OK) {
            if (ksp_test_ossl_verify(w->pub, &w->mech, msg, sizeof(msg), sig, len))
                w->ok++;
            else
                w->bad_sig++;
        } else if (rv == CKR_KEY_HANDLE_INVALID || rv == CKR_USER_NOT_LOGGED_IN ||
                   rv == CKR_OBJECT_HANDLE_INVALID) {
            /* Logged out or key destroyed meanwhile: find it again. */
            w->refused++;
            key = find_key(s, w->label);
        } else {
            w->unexpected++;
            w->last_unexpected = rv;
        }
    }
    P11->C_CloseSession(s);
    return NULL;
}

static void run_signers(struct signer *w, int n, void (*meanwhile)(void *), void *arg)
{
    pthread_t th[NTHREADS];
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, sign_loop, &w[i]), 0);
    if (meanwhile)
        meanwhile(arg);
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);
    for (int i = 0; i < n; i++) {
        ck_assert_msg(w[i].bad_sig == 0, "thread %d: %d signatures do not verify", i, w[i].bad_sig);
        ck_assert_msg(w[i].unexpected == 0, "thread %d: unexpected %s", i,
                      ksp_test_rv_name(w[i].last_unexpected));
    }
}

static void reinit_os_locking(void)
{
    CK_C_INITIALIZE_ARGS a = {.flags = CKF_OS_LOCKING_OK};
    ksp_test_finalize();
    KSP_ASSERT_OK(P11->C_Initialize(&a));
    ksp_t.initialized = true;
}

/* A token with a logged-in session and keys "rsa" and "ec" (token objects). */
static CK_SESSION_HANDLE keys(CK_SLOT_ID *slot, EVP_PKEY **rsa, EVP_PKEY **ec)
{
    CK_OBJECT_HANDLE pub = 0, priv = 0;
    CK_SESSION_HANDLE s = ksp_test_ready("threads");
    *slot = ksp_test_find_slot("threads");
    ksp_test_gen_rsa(s, 2048, "rsa", true, &pub, &priv);
    *rsa = ksp_test_ossl_pubkey(s, pub);
    ksp_test_gen_ec(s, NID_X9_62_prime256v1, "ec", true, &pub, &priv);
    *ec = ksp_test_ossl_pubkey(s, pub);
    return s;
}

START_TEST(test_parallel_sign)
{
    CK_SLOT_ID slot = 0;
    EVP_PKEY *rsa = NULL, *ec = NULL;
    reinit_os_locking();
    keys(&slot, &rsa, &ec);
    struct signer w[NTHREADS];
    memset(w, 0, sizeof(w));
    for (int i = 0; i < NTHREADS; i++) {
        bool r = i % 2 == 0;
        w[i] = (struct signer){slot,
                               {r ? CKM_SHA256_RSA_PKCS : CKM_ECDSA_SHA256, NULL, 0},
                               r ? "rsa" : "ec",
                               r ? rsa : ec,
                               40,
                               NULL};
    }
    run_signers(w, NTHREADS, NULL, NULL);
    for (int i = 0; i < NTHREADS; i++)
        ck_assert_int_eq(w[i].ok, 40);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
}
END_TEST

struct racer {
    CK_SESSION_HANDLE s;
    volatile int *stop;
};

/* Log out and in while the signers run, until each has signed a few times
 * after a logout (so calls in flight met a logout). */
static void logout_login(void *arg)
{
    struct racer *r = arg;
    for (int k = 0; k < 30; k++) {
        KSP_ASSERT_OK(P11->C_Logout(r->s));
        KSP_ASSERT_OK(P11->C_Login(r->s, CKU_USER, (CK_UTF8CHAR *)KSP_TEST_USER_PIN,
                                   strlen(KSP_TEST_USER_PIN)));
    }
    *r->stop = 1;
}

START_TEST(test_logout_races_signers)
{
    CK_SLOT_ID slot = 0;
    EVP_PKEY *rsa = NULL, *ec = NULL;
    volatile int stop = 0;
    reinit_os_locking();
    CK_SESSION_HANDLE s = keys(&slot, &rsa, &ec);
    struct signer w[2];
    memset(w, 0, sizeof(w));
    w[0] = (struct signer){slot, {CKM_SHA256_RSA_PKCS, NULL, 0}, "rsa", rsa, 0, &stop};
    w[1] = (struct signer){slot, {CKM_ECDSA_SHA256, NULL, 0}, "ec", ec, 0, &stop};
    struct racer r = {s, &stop};
    run_signers(w, 2, logout_login, &r);
    /* The token is usable afterwards, and the key signs. */
    w[0].stop = NULL;
    w[0].rounds = 3;
    w[0].ok = 0;
    run_signers(w, 1, NULL, NULL);
    ck_assert_int_eq(w[0].ok, 3);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
}
END_TEST

/* Destroy the key (a session object) while signers use it. */
static void destroy_key(void *arg)
{
    struct racer *r = arg;
    struct timespec ts = {0, 20 * 1000 * 1000};
    nanosleep(&ts, NULL);
    CK_OBJECT_HANDLE h = find_key(r->s, "sess");
    ck_assert(h != CK_INVALID_HANDLE);
    KSP_ASSERT_OK(P11->C_DestroyObject(r->s, h));
    nanosleep(&ts, NULL);
    *r->stop = 1;
}

START_TEST(test_destroy_races_signers)
{
    CK_SLOT_ID slot = 0;
    EVP_PKEY *rsa = NULL, *ec = NULL;
    volatile int stop = 0;
    CK_OBJECT_HANDLE pub = 0, priv = 0;
    reinit_os_locking();
    CK_SESSION_HANDLE s = keys(&slot, &rsa, &ec);
    ksp_test_gen_ec(s, NID_X9_62_prime256v1, "sess", false, &pub, &priv);
    EVP_PKEY *sp = ksp_test_ossl_pubkey(s, pub);
    struct signer w[NTHREADS];
    memset(w, 0, sizeof(w));
    for (int i = 0; i < NTHREADS; i++)
        w[i] = (struct signer){slot, {CKM_ECDSA_SHA256, NULL, 0}, "sess", sp, 0, &stop};
    struct racer r = {s, &stop};
    run_signers(w, NTHREADS, destroy_key, &r);
    ck_assert_int_eq(ksp_test_count(s, CKO_PRIVATE_KEY, "sess"), 0);
    EVP_PKEY_free(sp);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
}
END_TEST

/* Application mutex callbacks, counted. */
static pthread_mutex_t cb_mutex = PTHREAD_MUTEX_INITIALIZER;
static long cb_created, cb_locks, cb_unlocks, cb_held;

static CK_RV cb_create(CK_VOID_PTR_PTR m)
{
    pthread_mutex_t *p = malloc(sizeof(*p));
    if (!p)
        return CKR_HOST_MEMORY;
    pthread_mutex_init(p, NULL);
    __atomic_fetch_add(&cb_created, 1, __ATOMIC_SEQ_CST);
    *m = p;
    return CKR_OK;
}

static CK_RV cb_destroy(CK_VOID_PTR m)
{
    pthread_mutex_destroy(m);
    free(m);
    return CKR_OK;
}

static CK_RV cb_lock(CK_VOID_PTR m)
{
    pthread_mutex_lock(m);
    pthread_mutex_lock(&cb_mutex);
    cb_locks++;
    cb_held++;
    pthread_mutex_unlock(&cb_mutex);
    return CKR_OK;
}

static CK_RV cb_unlock(CK_VOID_PTR m)
{
    pthread_mutex_lock(&cb_mutex);
    cb_unlocks++;
    cb_held--;
    pthread_mutex_unlock(&cb_mutex);
    pthread_mutex_unlock(m);
    return CKR_OK;
}

START_TEST(test_app_mutex_callbacks)
{
    CK_SLOT_ID slot = 0;
    EVP_PKEY *rsa = NULL, *ec = NULL;
    CK_C_INITIALIZE_ARGS a = {.CreateMutex = cb_create,
                              .DestroyMutex = cb_destroy,
                              .LockMutex = cb_lock,
                              .UnlockMutex = cb_unlock};
    ksp_test_finalize();
    KSP_ASSERT_OK(P11->C_Initialize(&a));
    ksp_t.initialized = true;
    keys(&slot, &rsa, &ec);
    long before = cb_locks;
    struct signer w[2];
    memset(w, 0, sizeof(w));
    w[0] = (struct signer){slot, {CKM_SHA256_RSA_PKCS, NULL, 0}, "rsa", rsa, 20, NULL};
    w[1] = (struct signer){slot, {CKM_ECDSA_SHA256, NULL, 0}, "ec", ec, 20, NULL};
    run_signers(w, 2, NULL, NULL);
    ck_assert_int_eq(w[0].ok, 20);
    ck_assert_int_eq(w[1].ok, 20);
    ck_assert_int_ge(cb_created, 1);
    /* Every call went through the application's lock, and released it. */
    ck_assert_int_ge(cb_locks - before, 2 * 20 * 2);
    ck_assert_int_eq(cb_locks, cb_unlocks);
    ck_assert_int_eq(cb_held, 0);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("threads");
    TCase *tc = tcase_create("threads");
    ksp_test_add_fixtures(tc, true);
    tcase_set_timeout(tc, KSP_TEST_TIMEOUT);
    tcase_add_test(tc, test_parallel_sign);
    tcase_add_test(tc, test_logout_races_signers);
    tcase_add_test(tc, test_destroy_races_signers);
    tcase_add_test(tc, test_app_mutex_callbacks);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
