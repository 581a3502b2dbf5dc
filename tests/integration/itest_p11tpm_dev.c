/*
 * PKCS#11-level integration tests of the TPM as a shared, fallible device,
 * against swtpm without a resource manager: 100 key cycles leave nothing in
 * the TPM, fork (the child's own connection; parent and child signing at the
 * same time), PIN failures counted by the TPM and its lockout, swtpm killed
 * while a process signs and restarted. Run by tests/integration/p11_tpm.sh,
 * one fresh swtpm per suite (what they do is TPM-wide):
 *   itest_p11tpm_dev hygiene   100 cycles, fork
 *   itest_p11tpm_dev lockout   dictionary-attack counting and lockout
 *   itest_p11tpm_dev restart   swtpm killed and restarted
 * Environment: KSP11_ITEST_TCTI, the swtpm TCTI; KSP11_ITEST_SWTPM_DIR, its
 * state directory (restart).
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>

#include "p11tpm.h"

#ifndef KSP_SRCDIR
#define KSP_SRCDIR "."
#endif

/* ---- hygiene suite: cycles and fork ------------------------------------ */

START_TEST(hundred_cycles_leave_tpm_clean)
{
    CK_SESSION_HANDLE s = ksp_test_ready("cycles");
    CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
    uint8_t sig[128];

    for (int i = 0; i < 100; i++) {
        struct pair p;
        CK_ULONG siglen = sizeof(sig);
        CK_RV rv = gen(s, CKK_EC, "cycle", false, false, &p);

        ck_assert_msg(rv == CKR_OK, "cycle %d: C_GenerateKeyPair: %s", i, ksp_test_rv_name(rv));
        ck_assert_msg(ksp_test_get_ulong(s, p.priv, CKA_KSP11_BACKEND) == KSP11_BACKEND_TPM,
                      "cycle %d: key not in the TPM", i);
        rv = sign_rv(s, p.priv, &m, (const uint8_t *)MSG, strlen(MSG), sig, &siglen);
        ck_assert_msg(rv == CKR_OK, "cycle %d: C_Sign: %s", i, ksp_test_rv_name(rv));
        if (i % 10 == 0) {
            EVP_PKEY *pk = ksp_test_ossl_pubkey(s, p.pub);

            ck_assert_msg(
                ksp_test_ossl_verify(pk, &m, (const uint8_t *)MSG, strlen(MSG), sig, siglen),
                "cycle %d: OpenSSL rejects the signature", i);
            EVP_PKEY_free(pk);
        }
        KSP_ASSERT_OK(P11->C_DestroyObject(s, p.priv));
        KSP_ASSERT_OK(P11->C_DestroyObject(s, p.pub));
    }
    ck_assert_uint_eq(count_all(s), 0);
    ksp_test_finalize();
    assert_tpm_clean();
}
END_TEST

/* Sign MSG with ECDSA-SHA256 and verify it; CKR_OK or the first error
 * (CKR_SIGNATURE_INVALID: OpenSSL rejected it). No ck_assert: also used in
 * a forked child. */
static CK_RV sign_verify_rv(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE priv, EVP_PKEY *pk)
{
    CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
    uint8_t sig[128];
    CK_ULONG siglen = sizeof(sig);
    CK_RV rv = sign_rv(s, priv, &m, (const uint8_t *)MSG, strlen(MSG), sig, &siglen);

    if (rv == CKR_OK &&
        !ksp_test_ossl_verify(pk, &m, (const uint8_t *)MSG, strlen(MSG), sig, siglen)) {
        rv = CKR_SIGNATURE_INVALID;
    }
    return rv;
}

static CK_OBJECT_HANDLE find_rv(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const char *label)
{
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_LABEL, (void *)label, strlen(label)}};
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    CK_ULONG got = 0;

    if (P11->C_FindObjectsInit(s, t, 2) != CKR_OK || P11->C_FindObjects(s, &h, 1, &got) != CKR_OK ||
        P11->C_FindObjectsFinal(s) != CKR_OK || got != 1) {
        return CK_INVALID_HANDLE;
    }
    return h;
}

/* The forked child of the fork tests: its own C_Initialize, login
 * and 10 verified signatures. The exit code says where it failed; details
 * go to stderr as "# " lines. */
static int fork_child(void)
{
    CK_SLOT_ID slots[16];
    CK_ULONG n = 16, i;
    CK_SESSION_HANDLE s;
    CK_OBJECT_HANDLE priv, pub;
    CK_RV rv;
    EVP_PKEY *pk;

    /* behaviour.md: no C_Initialize of its own, no service. */
    if (P11->C_GetSlotList(CK_TRUE, NULL, &n) != CKR_CRYPTOKI_NOT_INITIALIZED) {
        return 10;
    }
    if (P11->C_Initialize(NULL) != CKR_OK) {
        return 11;
    }
    n = 16;
    if (P11->C_GetSlotList(CK_TRUE, slots, &n) != CKR_OK) {
        return 12;
    }
    for (i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;

        if (P11->C_GetTokenInfo(slots[i], &ti) == CKR_OK &&
            ksp_test_padded_eq(ti.label, sizeof(ti.label), "fork")) {
            break;
        }
    }
    if (i == n || P11->C_OpenSession(slots[i], CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK) {
        return 13;
    }
    rv = P11->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)KSP_TEST_USER_PIN, strlen(KSP_TEST_USER_PIN));
    if (rv != CKR_OK) {
        fprintf(stderr, "# forked child: C_Login: %s\n", ksp_test_rv_name(rv));
        return 14;
    }
    priv = find_rv(s, CKO_PRIVATE_KEY, "fk");
    pub = find_rv(s, CKO_PUBLIC_KEY, "fk");
    if (priv == CK_INVALID_HANDLE || pub == CK_INVALID_HANDLE) {
        return 15;
    }
    pk = ksp_test_ossl_pubkey(s, pub);
    for (int j = 0; j < 10; j++) {
        rv = sign_verify_rv(s, priv, pk);
        if (rv != CKR_OK) {
            fprintf(stderr, "# forked child: signature %d: %s\n", j, ksp_test_rv_name(rv));
            return 16;
        }
    }
    EVP_PKEY_free(pk);
    return P11->C_Finalize(NULL) == CKR_OK ? 0 : 17;
}

static int wait_child(pid_t pid, bool block)
{
    int st = 0;
    pid_t r;

    while ((r = waitpid(pid, &st, block ? 0 : WNOHANG)) < 0) {
        ck_assert_msg(errno == EINTR, "waitpid: %s", strerror(errno));
    }
    if (r == 0) {
        return -1;
    }
    return WIFSIGNALED(st) ? 128 + WTERMSIG(st) : WEXITSTATUS(st);
}

/* Token "fork" with the TPM key "fk", logged in; the key's OpenSSL twin. */
static CK_SESSION_HANDLE fork_token(struct pair *p, EVP_PKEY **pk)
{
    CK_SESSION_HANDLE s = ksp_test_ready("fork");

    gen_ok(s, CKK_EC, "fk", true, p);
    check_in_tpm(s, p, "fork key");
    *pk = ksp_test_ossl_pubkey(s, p->pub);
    KSP_ASSERT_OK(sign_verify_rv(s, p->priv, *pk));
    return s;
}

/*
 * fork after C_Initialize + login. A child that only exits, or initialises
 * and finalises, sends nothing on the parent's connection; a child that
 * initialises, logs in and signs does so with its own connection (the
 * parent waits meanwhile); the parent signs on after each.
 */
START_TEST(fork_child_uses_own_connection)
{
    struct pair p;
    EVP_PKEY *pk;
    CK_SESSION_HANDLE s = fork_token(&p, &pk);
    pid_t pid;

    fflush(NULL);
    pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        /* exit, not _exit: the module's and OpenSSL's exit handlers run. */
        exit(P11->C_Finalize(NULL) == CKR_CRYPTOKI_NOT_INITIALIZED ? 0 : 1);
    }
    ck_assert_int_eq(wait_child(pid, true), 0);
    KSP_ASSERT_OK(sign_verify_rv(s, p.priv, pk));
    pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        exit(P11->C_Initialize(NULL) == CKR_OK && P11->C_Finalize(NULL) == CKR_OK ? 0 : 1);
    }
    ck_assert_int_eq(wait_child(pid, true), 0);
    KSP_ASSERT_OK(sign_verify_rv(s, p.priv, pk));
    pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        _exit(fork_child());
    }
    ck_assert_msg(wait_child(pid, true) == 0, "forked child failed (exit code: see fork_child)");
    for (int i = 0; i < 5; i++) {
        KSP_ASSERT_OK(sign_verify_rv(s, p.priv, pk));
    }
    EVP_PKEY_free(pk);
}
END_TEST

/*
 * The same child while the parent keeps signing: every signature of both
 * verifies. tpm2-tss's swtpm TCTI connects per command, so the two
 * processes really interleave on one TPM without a resource manager.
 */
START_TEST(fork_child_and_parent_sign_concurrently)
{
    struct pair p;
    EVP_PKEY *pk;
    CK_SESSION_HANDLE s = fork_token(&p, &pk);
    pid_t pid;
    int rc = -1, ok = 0, bad = 0;
    CK_RV first = CKR_OK;

    fflush(NULL);
    pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        _exit(fork_child());
    }
    for (int i = 0; i < 5000 && rc < 0; i++) {
        CK_RV rv = sign_verify_rv(s, p.priv, pk);

        if (rv == CKR_OK) {
            ok++;
        } else if (bad++ == 0) {
            first = rv;
        }
        rc = wait_child(pid, false);
    }
    if (rc < 0) {
        kill(pid, SIGKILL);
        rc = wait_child(pid, true);
    }
    ck_assert_msg(rc == 0 && bad == 0,
                  "forked child exit %d (0 = ok, see fork_child); parent meanwhile: %d "
                  "signatures ok, %d failed (first: %s)",
                  rc, ok, bad, ksp_test_rv_name(first));
    for (int i = 0; i < 5; i++) {
        KSP_ASSERT_OK(sign_verify_rv(s, p.priv, pk));
    }
    EVP_PKEY_free(pk);
}
END_TEST

/* ---- lockout suite ------------------------------------------------------- */

START_TEST(tpm_counts_pin_failures_and_locks_out)
{
    unsigned long max, fails = 0;
    CK_SESSION_HANDLE s, so;
    CK_FLAGS f;
    struct pair p, nk, ok;
    uint8_t sig[128];
    CK_ULONG siglen = sizeof(sig);
    CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
    CK_RV rv;

    /* The module connects lazily: after C_Initialize the TPM is still ours. */
    max = tpm_prop("TPM2_PT_MAX_AUTH_FAIL");
    fprintf(stderr, "# swtpm TPM2_PT_MAX_AUTH_FAIL = %lu, LOCKOUT_INTERVAL = %lu s\n", max,
            tpm_prop("TPM2_PT_LOCKOUT_INTERVAL"));
    ck_assert_msg(max >= 2 && max <= 32, "TPM2_PT_MAX_AUTH_FAIL %lu", max);

    ksp_t.slot = ksp_test_init_token("nopin");
    ksp_test_init_user_pin(ksp_t.slot, "");
    s = ksp_test_open(ksp_t.slot, true);
    gen_ok(s, CKK_EC, "nk", true, &nk);
    check_in_tpm(s, &nk, "PIN-less token key");
    s = ksp_test_ready("other");
    gen_ok(s, CKK_EC, "ok", true, &ok);
    s = ksp_test_ready("lock");
    gen_ok(s, CKK_EC, "lk", true, &p);
    check_in_tpm(s, &p, "PIN token key");
    ksp_test_finalize();
    ck_assert_uint_eq(tpm_prop("TPM2_PT_LOCKOUT_COUNTER"), 0);

    ksp_test_initialize();
    s = ksp_test_open(ksp_test_find_slot("lock"), true);
    KSP_ASSERT_RV(login_rv(s, CKU_USER, "0000"), CKR_PIN_INCORRECT);
    fails++;
    ksp_t.slot = ksp_test_find_slot("lock");
    f = ksp_test_token_flags(ksp_t.slot);
    ck_assert_msg((f & CKF_USER_PIN_COUNT_LOW) && !(f & CKF_USER_PIN_LOCKED),
                  "flags 0x%lx after one wrong PIN", f);
    ksp_test_finalize();
    ck_assert_msg(tpm_prop("TPM2_PT_LOCKOUT_COUNTER") == 1, "the TPM did not count the wrong PIN");

    /* A new process sees the TPM's count; a right PIN does not reset it. */
    ksp_test_initialize();
    s = open_login("lock");
    f = ksp_test_token_flags(ksp_t.slot);
    ck_assert_msg(f & CKF_USER_PIN_COUNT_LOW, "flags 0x%lx: count not shown after restart", f);
    p = find_pair(s, "lk");
    sign_msg(s, &p, CKK_EC);
    KSP_ASSERT_OK(P11->C_Logout(s));
    so = open_login("other");
    ok = find_pair(so, "ok");
    ksp_t.slot = ksp_test_find_slot("lock");
    while (fails + 1 < max) {
        KSP_ASSERT_RV(login_rv(s, CKU_USER, "0000"), CKR_PIN_INCORRECT);
        fails++;
    }
    f = ksp_test_token_flags(ksp_t.slot);
    ck_assert_msg((f & CKF_USER_PIN_FINAL_TRY) && !(f & CKF_USER_PIN_LOCKED),
                  "flags 0x%lx after %lu of %lu failures", f, fails, max);
    KSP_ASSERT_RV2(login_rv(s, CKU_USER, "0000"), CKR_PIN_INCORRECT, CKR_PIN_LOCKED);
    f = ksp_test_token_flags(ksp_t.slot);
    ck_assert_msg(f & CKF_USER_PIN_LOCKED, "flags 0x%lx after %lu failures", f, max);
    KSP_ASSERT_RV(login_rv(s, CKU_USER, KSP_TEST_USER_PIN), CKR_PIN_LOCKED);
    KSP_ASSERT_RV(login_rv(s, CKU_SO, KSP_TEST_SO_PIN), CKR_PIN_LOCKED);
    /* TPM keys are noDA (tpm_keys.c): the lockout does not stop an
     * application that logged in before (tpm_noda.sh: across processes). */
    rv = sign_rv(so, ok.priv, &m, (const uint8_t *)MSG, strlen(MSG), sig, &siglen);
    ck_assert_msg(rv == CKR_OK, "during lockout, TPM key of a PIN token logged in before: %s",
                  ksp_test_rv_name(rv));
    ksp_test_finalize();
    ck_assert_uint_eq(tpm_prop("inLockout"), 1);

    /* PIN-less keys are noDA (semantics.md §1.4): lockout does not stop them. */
    ksp_test_initialize();
    s = ksp_test_open(ksp_test_find_slot("nopin"), true);
    nk = find_pair(s, "nk");
    sign_msg(s, &nk, CKK_EC);
}
END_TEST

/* ---- restart suite --------------------------------------------------------- */

struct killer {
    atomic_int signed_count;
    atomic_int done; /* the signing loop ended (early, if it failed) */
    atomic_int killed;
    pid_t pid;
};

static void *kill_swtpm(void *arg)
{
    struct killer *k = arg;
    struct timespec ms = {0, 1000000};

    while (atomic_load(&k->signed_count) < 10) {
        if (atomic_load(&k->done)) {
            return NULL;
        }
        nanosleep(&ms, NULL);
    }
    atomic_store(&k->killed, 1);
    kill(k->pid, SIGKILL);
    return NULL;
}

/* Dead or a zombie (a container's init may not reap the daemon). */
static bool process_gone(pid_t pid)
{
    char path[64], buf[256];
    FILE *f;
    const char *paren;
    bool gone = true;

    fmt(path, sizeof(path), "/proc/%ld/stat", (long)pid);
    f = fopen(path, "r");
    if (f == NULL) {
        return true;
    }
    if (fgets(buf, sizeof(buf), f) != NULL && (paren = strrchr(buf, ')')) != NULL) {
        gone = paren[1] == ' ' && paren[2] == 'Z';
    }
    fclose(f);
    return gone;
}

START_TEST(swtpm_killed_and_restarted)
{
    const char *dir = getenv("KSP11_ITEST_SWTPM_DIR");
    CK_SESSION_HANDLE s = ksp_test_ready("restart");
    CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
    struct killer k = {0};
    struct pair p;
    pthread_t th;
    char path[PATH_MAX], cmd[PATH_MAX * 2];
    uint8_t sig[128];
    CK_ULONG siglen;
    CK_RV rv = CKR_OK;
    FILE *f;
    long pid = 0;
    int i, attempt;
    struct timespec ms10 = {0, 10000000};

    ck_assert_msg(dir != NULL, "KSP11_ITEST_SWTPM_DIR not set");
    fmt(path, sizeof(path), "%s/swtpm.pid", dir);
    f = fopen(path, "r");
    ck_assert_msg(f != NULL && fscanf(f, "%ld", &pid) == 1 && pid > 1, "no pid in %s", path);
    fclose(f);
    k.pid = (pid_t)pid;
    gen_ok(s, CKK_EC, "rk", true, &p);
    check_in_tpm(s, &p, "restart key");

    ck_assert(pthread_create(&th, NULL, kill_swtpm, &k) == 0);
    for (i = 0; i < 1000000; i++) {
        siglen = sizeof(sig);
        rv = sign_rv(s, p.priv, &m, (const uint8_t *)MSG, strlen(MSG), sig, &siglen);
        if (rv != CKR_OK) {
            break;
        }
        atomic_fetch_add(&k.signed_count, 1);
    }
    atomic_store(&k.done, 1);
    pthread_join(th, NULL);
    ck_assert_msg(atomic_load(&k.killed), "C_Sign failed before swtpm was killed: %s",
                  ksp_test_rv_name(rv));
    ck_assert_msg(rv == CKR_DEVICE_ERROR || rv == CKR_DEVICE_REMOVED,
                  "C_Sign with swtpm killed: %s, expected CKR_DEVICE_ERROR or CKR_DEVICE_REMOVED",
                  ksp_test_rv_name(rv));
    for (i = 0; i < 3; i++) {
        siglen = sizeof(sig);
        KSP_ASSERT_RV2(sign_rv(s, p.priv, &m, (const uint8_t *)MSG, strlen(MSG), sig, &siglen),
                       CKR_DEVICE_ERROR, CKR_DEVICE_REMOVED);
    }
    {
        CK_TOKEN_INFO ti;

        /* Any code will do, as long as nothing crashes. */
        (void)P11->C_GetTokenInfo(ksp_t.slot, &ti);
    }

    for (i = 0; i < 500 && !process_gone(k.pid); i++) {
        nanosleep(&ms10, NULL);
    }
    ck_assert_msg(process_gone(k.pid), "swtpm %ld did not die", pid);
    fmt(cmd, sizeof(cmd), "%s/swtpm.sock", dir);
    unlink(cmd);
    unlink(path);
    fmt(cmd, sizeof(cmd), "bash -c '. \"%s/tests/lib/helpers.sh\" && start_swtpm2 \"%s\"'",
        KSP_SRCDIR, dir);
    ck_assert_msg(system(cmd) == 0, "restarting swtpm failed: %s", cmd);

    /* The same session first, then after a new login. */
    for (attempt = 1; attempt <= 6; attempt++) {
        if (attempt == 4) {
            P11->C_Logout(s);
            KSP_ASSERT_OK(login_rv(s, CKU_USER, KSP_TEST_USER_PIN));
        }
        siglen = sizeof(sig);
        rv = sign_rv(s, p.priv, &m, (const uint8_t *)MSG, strlen(MSG), sig, &siglen);
        if (rv == CKR_OK) {
            break;
        }
    }
    fprintf(stderr, "# after the restart: %s on attempt %d (%s)\n", ksp_test_rv_name(rv), attempt,
            attempt <= 3 ? "same session and login" : "after a new login");
    ck_assert_msg(rv == CKR_OK, "no signature after swtpm restarted: %s", ksp_test_rv_name(rv));
    sign_msg(s, &p, CKK_EC);
}
END_TEST

/* ---- suites -------------------------------------------------------------- */

int main(int argc, char **argv)
{
    const char *which = argc > 1 ? argv[1] : "hygiene";
    Suite *s = NULL;
    TCase *tc = NULL;

    if (strcmp(which, "hygiene") != 0 && strcmp(which, "lockout") != 0 &&
        strcmp(which, "restart") != 0) {
        fprintf(stderr, "usage: %s hygiene|lockout|restart\n", argv[0]);
        return 2;
    }
    s = suite_create("p11tpm-dev");
    add_tcase(s, which, true, &tc);
    if (strcmp(which, "hygiene") == 0) {
        tcase_add_test(tc, hundred_cycles_leave_tpm_clean);
        tcase_add_test(tc, fork_child_uses_own_connection);
        tcase_add_test(tc, fork_child_and_parent_sign_concurrently);
    } else if (strcmp(which, "lockout") == 0) {
        tcase_add_test(tc, tpm_counts_pin_failures_and_locks_out);
    } else {
        tcase_add_test(tc, swtpm_killed_and_restarted);
    }
    return run_suite(s);
}
