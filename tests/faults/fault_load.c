/*
 * Load and concurrency (issue 6): several processes x several threads on one
 * token for a bounded time, and fork while other threads keep signing.
 *
 *   fault_load setup            token "load": a software EC key "soft"
 *                               (imported, so always in software) and a
 *                               generated EC key "hw" (a TPM key when
 *                               KSP11_TCTI is set; checked)
 *   fault_load run P T SECONDS  P processes x T threads. Every thread opens
 *                               its own session and, at random: signs with
 *                               both keys (OpenSSL verifies each signature
 *                               against the public key read via the API),
 *                               creates and destroys its own token objects,
 *                               finds them by label, reads token and session
 *                               info; thread 0 also closes and reopens its
 *                               session and logs out and in. Afterwards every
 *                               object a thread kept is there exactly once,
 *                               nothing it destroyed is, and a fresh process
 *                               sees the same total.
 *   fault_load fork N           threads sign with both keys while the main
 *                               thread forks N children; each child
 *                               initialises again, logs in, signs with both
 *                               keys and exits; no child hangs (60 s alarm)
 *
 * Strict: the only errors tolerated are CKR_USER_NOT_LOGGED_IN and invalid
 * handles after thread 0 of the same process logged out (an epoch counter
 * tells; ksp11 renumbers private objects at C_Logout). Without a resource
 * manager the processes share the TPM's few object slots under ksp11's
 * cross-process lock, so CKR_DEVICE_MEMORY is a failure too (set
 * KSP11_LOAD_TPM_RETRIES=N to retry it instead, counted, when comparing).
 * Prints a summary line; exit 0 when everything held.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>

#include "fl.h"

#define TOKEN         "load"
#define MAX_OWN       64
#define TPM_TRIES_MAX 50

static const uint8_t p256_oid[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};

static CK_SLOT_ID slot;
static atomic_uint epoch; /* odd while thread 0 is logged out */
static atomic_bool stop;
static atomic_long tpm_retries;
static bool have_hw;
static time_t deadline;
static int run_tag; /* the run's parent pid: labels of this run start "ld-<tag>-" */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- setup ---- */

static void import_soft(CK_SESSION_HANDLE s)
{
    EVP_PKEY *pk = EVP_EC_gen("P-256");
    BIGNUM *d = NULL;
    uint8_t dv[32], pt[65], der[67];
    size_t ptl = 0;
    CK_OBJECT_CLASS pc = CKO_PRIVATE_KEY, uc = CKO_PUBLIC_KEY;
    CK_KEY_TYPE kt = CKK_EC;
    CK_BBOOL tr = CK_TRUE;
    CK_OBJECT_HANDLE h;
    if (!pk || EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_PRIV_KEY, &d) != 1 ||
        BN_bn2binpad(d, dv, 32) != 32 ||
        EVP_PKEY_get_octet_string_param(pk, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt), &ptl) != 1 ||
        ptl != 65)
        fl_die("OpenSSL EC key");
    BN_clear_free(d);
    der[0] = 0x04;
    der[1] = 65;
    memcpy(der + 2, pt, 65);
    CK_ATTRIBUTE priv[] = {
        {CKA_CLASS, &pc, sizeof(pc)},
        {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &tr, sizeof(tr)},
        {CKA_PRIVATE, &tr, sizeof(tr)},
        {CKA_SIGN, &tr, sizeof(tr)},
        {CKA_LABEL, "soft", 4},
        {CKA_EC_PARAMS, (void *)p256_oid, sizeof(p256_oid)},
        {CKA_VALUE, dv, sizeof(dv)},
    };
    CK_ATTRIBUTE pub[] = {
        {CKA_CLASS, &uc, sizeof(uc)},     {CKA_KEY_TYPE, &kt, sizeof(kt)},
        {CKA_TOKEN, &tr, sizeof(tr)},     {CKA_VERIFY, &tr, sizeof(tr)},
        {CKA_LABEL, "soft", 4},           {CKA_EC_PARAMS, (void *)p256_oid, sizeof(p256_oid)},
        {CKA_EC_POINT, der, sizeof(der)},
    };
    FL_OK(FLP->C_CreateObject(s, priv, sizeof(priv) / sizeof(priv[0]), &h));
    FL_OK(FLP->C_CreateObject(s, pub, sizeof(pub) / sizeof(pub[0]), &h));
    OPENSSL_cleanse(dv, sizeof(dv));
    EVP_PKEY_free(pk);
}

static CK_OBJECT_HANDLE find1(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const char *label)
{
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_LABEL, (void *)label, strlen(label)}};
    CK_OBJECT_HANDLE *h = NULL, r = CK_INVALID_HANDLE;
    CK_ULONG n = 0;
    CK_RV rv = fl_find(s, t, 2, &h, &n);
    if (rv == CKR_OK && n == 1)
        r = h[0];
    free(h);
    return r;
}

static int do_setup(void)
{
    CK_OBJECT_HANDLE pub, priv;
    CK_ULONG backend = 0;
    slot = fl_make_token(TOKEN);
    CK_SESSION_HANDLE s = fl_open_user(slot, true);
    import_soft(s);
    FL_OK(fl_gen_ec(s, "hw", true, &pub, &priv));
    CK_ATTRIBUTE a = {0xCB530001UL /* CKA_KSP11_BACKEND */, &backend, sizeof(backend)};
    FL_OK(FLP->C_GetAttributeValue(s, priv, &a, 1));
    const char *tcti = getenv("KSP11_TCTI");
    if (tcti && *tcti && backend != 1)
        fl_fail("with a TPM the generated key is not a TPM key (backend %lu)",
                (unsigned long)backend);
    printf("setup: soft key imported, generated key in the %s\n",
           backend == 1 ? "TPM" : "software");
    return 0;
}

/* ---- workers ---- */

struct keyset {
    CK_OBJECT_HANDLE soft, hw;
    EVP_PKEY *soft_pub, *hw_pub;
};

struct worker {
    int proc, tid;
    pthread_t th;
    long signs, creates, destroys, finds, relogins, sessions, tolerated;
    char own[MAX_OWN][48];
    CK_OBJECT_HANDLE own_h[MAX_OWN];
    int nown;
    unsigned seq;
    unsigned seen; /* epoch when the handles above were looked up */
    bool stale;    /* handles to be looked up again (a logout interrupted it) */
    char err[512];
};

static bool in_window(unsigned e0)
{
    return (e0 & 1) || atomic_load(&epoch) != e0;
}

static bool tolerable(CK_RV rv)
{
    return rv == CKR_USER_NOT_LOGGED_IN || rv == CKR_KEY_HANDLE_INVALID ||
           rv == CKR_OBJECT_HANDLE_INVALID;
}

#define WFAIL(w, ...)                                                                              \
    do {                                                                                           \
        snprintf((w)->err, sizeof((w)->err), __VA_ARGS__);                                         \
        return false;                                                                              \
    } while (0)

/* Look up the keys and this thread's own objects. A C_Logout makes every
 * handle of a private object invalid for good (ksp11 renumbers them), so
 * this runs again after each logout the thread notices. */
static bool load_keys(struct worker *w, CK_SESSION_HANDLE s, struct keyset *k)
{
    unsigned e0 = atomic_load(&epoch);
    EVP_PKEY_free(k->soft_pub);
    EVP_PKEY_free(k->hw_pub);
    memset(k, 0, sizeof(*k));
    w->seen = e0;
    w->stale = true;
    k->soft = find1(s, CKO_PRIVATE_KEY, "soft");
    k->soft_pub = fl_pubkey(s, find1(s, CKO_PUBLIC_KEY, "soft"));
    if (have_hw) {
        k->hw = find1(s, CKO_PRIVATE_KEY, "hw");
        k->hw_pub = fl_pubkey(s, find1(s, CKO_PUBLIC_KEY, "hw"));
    }
    for (int i = 0; i < w->nown; i++) {
        CK_OBJECT_CLASS cls = CKO_DATA;
        CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)},
                            {CKA_LABEL, w->own[i], strlen(w->own[i])}};
        CK_OBJECT_HANDLE *h = NULL;
        CK_ULONG n = 0;
        CK_RV rv = fl_find(s, t, 2, &h, &n);
        w->own_h[i] = rv == CKR_OK && n == 1 ? h[0] : CK_INVALID_HANDLE;
        free(h);
        if (w->own_h[i] == CK_INVALID_HANDLE && !in_window(e0))
            WFAIL(w, "own object %s: %s, found %lu times", w->own[i], fl_rv(rv), (unsigned long)n);
    }
    bool found = k->soft != CK_INVALID_HANDLE && k->soft_pub &&
                 (!have_hw || (k->hw != CK_INVALID_HANDLE && k->hw_pub));
    if (!found && !in_window(e0))
        WFAIL(w, "keys not found");
    /* Logged out meanwhile: whatever was found may be stale already. */
    w->stale = !found || in_window(e0);
    return true;
}

static CK_RV login(CK_SESSION_HANDLE s)
{
    CK_RV rv = fl_login_rv(s, CKU_USER, FL_USER_PIN);
    return rv == CKR_USER_ALREADY_LOGGED_IN ? CKR_OK : rv;
}

/* One signature with key h, verified; TPM object-memory errors retried. */
static CK_RV sign_one(struct worker *w, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, EVP_PKEY *pub,
                      bool tpm)
{
    uint8_t msg[48], sig[128];
    CK_ULONG sl;
    CK_RV rv = CKR_OK;
    snprintf((char *)msg, sizeof(msg), "p%d t%d n%ld %08x", w->proc, w->tid, w->signs, fl_rand());
    static int tries = -1;
    if (tries < 0) {
        const char *e = getenv("KSP11_LOAD_TPM_RETRIES");
        tries = 1 + (e ? atoi(e) : 0);
        if (tries > TPM_TRIES_MAX)
            tries = TPM_TRIES_MAX;
    }
    for (int i = 0; i < tries; i++) {
        sl = sizeof(sig);
        rv = fl_sign(s, h, CKK_EC, msg, sizeof(msg), sig, &sl);
        if (!(tpm && rv == CKR_DEVICE_MEMORY))
            break;
        atomic_fetch_add(&tpm_retries, 1);
        fl_sleep_us(1000 + fl_rand() % 5000);
    }
    if (rv != CKR_OK)
        return rv;
    if (!fl_verify(pub, msg, sizeof(msg), sig, sl))
        return CKR_SIGNATURE_INVALID;
    w->signs++;
    return CKR_OK;
}

static bool step(struct worker *w, CK_SESSION_HANDLE *s, struct keyset *k)
{
    unsigned r = fl_rand() % 100;
    unsigned e0 = atomic_load(&epoch);
    if (w->stale || e0 != w->seen) {
        CK_RV lrv = login(*s);
        if (lrv != CKR_OK && !in_window(e0))
            WFAIL(w, "login after a logout: %s", fl_rv(lrv));
        return load_keys(w, *s, k);
    }
    CK_RV rv = CKR_OK;
    const char *what = "";
    if (r < 30) {
        what = "sign (software key)";
        rv = sign_one(w, *s, k->soft, k->soft_pub, false);
    } else if (r < 50) {
        what = "sign (generated key)";
        if (have_hw)
            rv = sign_one(w, *s, k->hw, k->hw_pub, getenv("KSP11_TCTI") != NULL);
    } else if (r < 65 && w->nown < MAX_OWN) {
        what = "C_CreateObject";
        uint8_t v[32];
        char label[48];
        CK_OBJECT_CLASS cls = CKO_DATA;
        CK_BBOOL tr = CK_TRUE;
        for (size_t i = 0; i < sizeof(v); i++)
            v[i] = (uint8_t)fl_rand();
        snprintf(label, sizeof(label), "ld-%d-%d-%d-%u", run_tag, (int)getpid(), w->tid, w->seq++);
        CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)},
                            {CKA_TOKEN, &tr, sizeof(tr)},
                            {CKA_PRIVATE, &tr, sizeof(tr)},
                            {CKA_LABEL, label, strlen(label)},
                            {CKA_VALUE, v, sizeof(v)}};
        CK_OBJECT_HANDLE h;
        rv = FLP->C_CreateObject(*s, t, 5, &h);
        if (rv == CKR_OK) {
            snprintf(w->own[w->nown], sizeof(w->own[0]), "%s", label);
            w->own_h[w->nown++] = h;
            w->creates++;
        }
    } else if (r < 75 && w->nown > 0) {
        what = "C_DestroyObject";
        int i = (int)(fl_rand() % (unsigned)w->nown);
        rv = FLP->C_DestroyObject(*s, w->own_h[i]);
        if (rv == CKR_OK) {
            w->nown--;
            memcpy(w->own[i], w->own[w->nown], sizeof(w->own[0]));
            w->own_h[i] = w->own_h[w->nown];
            w->destroys++;
        }
    } else if (r < 82 && w->nown > 0) {
        what = "find own object";
        int i = (int)(fl_rand() % (unsigned)w->nown);
        CK_OBJECT_CLASS cls = CKO_DATA;
        CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)},
                            {CKA_LABEL, w->own[i], strlen(w->own[i])}};
        CK_OBJECT_HANDLE *h = NULL;
        CK_ULONG n = 0;
        rv = fl_find(*s, t, 2, &h, &n);
        free(h);
        if (rv == CKR_OK && n != 1 && !in_window(w->seen))
            WFAIL(w, "object %s found %lu times", w->own[i], (unsigned long)n);
        if (rv == CKR_OK)
            w->finds++;
    } else if (r < 86 && w->tid == 0) {
        what = "close and reopen the session";
        rv = FLP->C_CloseSession(*s);
        if (rv == CKR_OK) {
            rv = FLP->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, s);
            w->sessions++;
        }
    } else if (r < 88 && w->tid == 0) {
        what = "logout and login";
        atomic_fetch_add(&epoch, 1);
        rv = FLP->C_Logout(*s);
        if (rv == CKR_USER_NOT_LOGGED_IN)
            rv = CKR_OK; /* a worker logged in again meanwhile, or not yet */
        if (rv == CKR_OK)
            rv = login(*s);
        atomic_fetch_add(&epoch, 1);
        w->relogins++;
    } else {
        CK_TOKEN_INFO ti;
        CK_SESSION_INFO si;
        what = "C_GetTokenInfo/C_GetSessionInfo";
        rv = FLP->C_GetTokenInfo(slot, &ti);
        if (rv == CKR_OK)
            rv = FLP->C_GetSessionInfo(*s, &si);
    }
    if (rv == CKR_OK)
        return true;
    if (tolerable(rv) && in_window(w->seen)) {
        /* Thread 0 logged out since this thread looked its handles up. */
        w->tolerated++;
        w->stale = true;
        return true;
    }
    {
        /* Details for the report: is the key still where this thread thinks? */
        CK_OBJECT_HANDLE again = find1(*s, CKO_PRIVATE_KEY, "soft");
        WFAIL(w, "%s: %s (epoch %u -> %u; software key handle %lu, found now as %lu)", what,
              fl_rv(rv), e0, atomic_load(&epoch), (unsigned long)k->soft, (unsigned long)again);
    }
}

static void *work(void *arg)
{
    struct worker *w = arg;
    struct keyset k = {0};
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    CK_RV rv = FLP->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s);
    if (rv != CKR_OK) {
        snprintf(w->err, sizeof(w->err), "C_OpenSession: %s", fl_rv(rv));
        return NULL;
    }
    if ((rv = login(s)) != CKR_OK) {
        snprintf(w->err, sizeof(w->err), "C_Login: %s", fl_rv(rv));
        return NULL;
    }
    if (!load_keys(w, s, &k))
        return NULL;
    while (!atomic_load(&stop) && time(NULL) < deadline)
        if (!step(w, &s, &k))
            break;
    EVP_PKEY_free(k.soft_pub);
    EVP_PKEY_free(k.hw_pub);
    /* The session stays open: the last close would log everyone out. */
    return NULL;
}

/* Every object this process's threads kept is there exactly once; nothing else of theirs. */
static bool check_own(struct worker *ws, int nw, int proc, long *kept)
{
    CK_SESSION_HANDLE s = fl_open_user(slot, false);
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_ATTRIBUTE t = {CKA_CLASS, &cls, sizeof(cls)};
    CK_OBJECT_HANDLE *h = NULL;
    CK_ULONG n = 0;
    char prefix[32];
    long mine = 0, want = 0;
    FL_OK(fl_find(s, &t, 1, &h, &n));
    snprintf(prefix, sizeof(prefix), "ld-%d-%d-", run_tag, (int)getpid());
    for (CK_ULONG i = 0; i < n; i++) {
        uint8_t *label = NULL;
        CK_ULONG ll = 0;
        FL_OK(fl_attr(s, h[i], CKA_LABEL, &label, &ll));
        if (!strncmp((char *)label, prefix, strlen(prefix))) {
            bool found = false;
            mine++;
            for (int j = 0; j < nw && !found; j++)
                for (int o = 0; o < ws[j].nown && !found; o++)
                    found = !strcmp(ws[j].own[o], (char *)label);
            if (!found) {
                fprintf(stderr, "process %d: object %s is there but was destroyed\n", proc, label);
                free(label);
                free(h);
                return false;
            }
        }
        free(label);
    }
    free(h);
    for (int j = 0; j < nw; j++)
        want += ws[j].nown;
    if (mine != want) {
        fprintf(stderr, "process %d: %ld of its objects on the token, %ld kept\n", proc, mine,
                want);
        return false;
    }
    *kept = want;
    return true;
}

static int run_proc(int proc, int nthreads, int outfd)
{
    struct worker *ws = calloc((size_t)nthreads, sizeof(*ws));
    long kept = 0, signs = 0, tol = 0, rel = 0, ses = 0, cr = 0, de = 0;
    int failed = 0;
    fl_initialize();
    slot = fl_find_slot(TOKEN);
    /* A session held for the whole run keeps the login while threads come
     * and go (the last C_CloseSession logs the user out, §5.6). */
    CK_SESSION_HANDLE keep = fl_open_user(slot, false);
    (void)keep;
    for (int i = 0; i < nthreads; i++) {
        ws[i].proc = proc;
        ws[i].tid = i;
        if (pthread_create(&ws[i].th, NULL, work, &ws[i]) != 0)
            fl_die("pthread_create");
    }
    for (int i = 0; i < nthreads; i++) {
        pthread_join(ws[i].th, NULL);
        if (ws[i].err[0]) {
            fprintf(stderr, "process %d thread %d: %s\n", proc, i, ws[i].err);
            failed = 1;
        }
        signs += ws[i].signs;
        tol += ws[i].tolerated;
        rel += ws[i].relogins;
        ses += ws[i].sessions;
        cr += ws[i].creates;
        de += ws[i].destroys;
    }
    if (!failed && !check_own(ws, nthreads, proc, &kept))
        failed = 1;
    char line[256];
    int n = snprintf(line, sizeof(line), "%d %ld %ld %ld %ld %ld %ld %ld %ld\n", proc, kept, signs,
                     cr, de, rel, ses, tol, (long)atomic_load(&tpm_retries));
    if (write(outfd, line, (size_t)n) != n)
        failed = 1;
    fl_finalize();
    free(ws);
    return failed;
}

static long count_all(void)
{
    fl_initialize();
    slot = fl_find_slot(TOKEN);
    CK_SESSION_HANDLE s = fl_open_user(slot, false);
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_ATTRIBUTE t = {CKA_CLASS, &cls, sizeof(cls)};
    CK_OBJECT_HANDLE *h = NULL;
    CK_ULONG n = 0;
    FL_OK(fl_find(s, &t, 1, &h, &n));
    /* Labels are unique per creation: a duplicate means an object appeared twice. */
    char **labels = calloc(n ? n : 1, sizeof(char *)), prefix[32];
    long mine = 0;
    snprintf(prefix, sizeof(prefix), "ld-%d-", run_tag);
    for (CK_ULONG i = 0; i < n; i++) {
        CK_ULONG ll;
        FL_OK(fl_attr(s, h[i], CKA_LABEL, (uint8_t **)&labels[i], &ll));
        for (CK_ULONG j = 0; j < i; j++)
            if (!strcmp(labels[i], labels[j]))
                fl_fail("object %s listed twice", labels[i]);
        mine += !strncmp(labels[i], prefix, strlen(prefix));
    }
    for (CK_ULONG i = 0; i < n; i++)
        free(labels[i]);
    free(labels);
    free(h);
    fl_finalize();
    return mine;
}

static int do_run(int procs, int threads, int seconds)
{
    int pfd[2];
    pid_t *kids = calloc((size_t)procs, sizeof(pid_t));
    long total = 0, sums[8] = {0};
    int failed = 0;
    char buf[8192];
    size_t got = 0;
    double t0 = now();
    if (pipe(pfd) != 0)
        fl_die("pipe");
    deadline = time(NULL) + seconds;
    run_tag = (int)getpid();
    fl_load();
    {
        /* Is there a generated key worth signing with? (always: software or TPM) */
        have_hw = true;
    }
    for (int p = 0; p < procs; p++) {
        kids[p] = fork();
        if (kids[p] < 0)
            fl_die("fork");
        if (kids[p] == 0) {
            close(pfd[0]);
            alarm((unsigned)seconds + 240); /* a hang ends as SIGALRM, reported below */
            _exit(run_proc(p, threads, pfd[1]));
        }
    }
    close(pfd[1]);
    for (;;) {
        ssize_t r = read(pfd[0], buf + got, sizeof(buf) - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    buf[got] = 0;
    for (int p = 0; p < procs; p++) {
        int st;
        waitpid(kids[p], &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "process %d: %s %d\n", p, WIFEXITED(st) ? "exit" : "signal",
                    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
            failed = 1;
        }
    }
    for (char *line = strtok(buf, "\n"); line; line = strtok(NULL, "\n")) {
        long v[9];
        if (sscanf(line, "%ld %ld %ld %ld %ld %ld %ld %ld %ld", &v[0], &v[1], &v[2], &v[3], &v[4],
                   &v[5], &v[6], &v[7], &v[8]) == 9) {
            total += v[1];
            for (int i = 0; i < 7; i++)
                sums[i] += v[2 + i];
        }
    }
    if (failed)
        fl_fail("a process failed (see above)");
    /* A fresh process: the store holds exactly what the workers kept. */
    int st;
    pid_t c = fork();
    if (c == 0)
        _exit(count_all() == total ? 0 : 1);
    waitpid(c, &st, 0);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fl_fail("a fresh process does not see the %ld objects the workers kept", total);
    printf("%d processes x %d threads, %.0f s: %ld verified signatures, %ld creates, %ld destroys, "
           "%ld logouts, %ld session reopens, %ld tolerated (logged out meanwhile), "
           "%ld TPM retries; %ld objects kept, all found exactly once\n",
           procs, threads, now() - t0, sums[0], sums[1], sums[2], sums[3], sums[4], sums[5],
           sums[6], total);
    free(kids);
    return 0;
}

/* ---- fork while signing ---- */

struct signer {
    pthread_t th;
    CK_OBJECT_HANDLE key;
    EVP_PKEY *pub;
    bool tpm;
    long ok;
    char err[256];
};

static void *sign_loop(void *arg)
{
    struct signer *sg = arg;
    struct worker w = {0};
    CK_SESSION_HANDLE s = fl_open(slot, false);
    while (!atomic_load(&stop)) {
        CK_RV rv = sign_one(&w, s, sg->key, sg->pub, sg->tpm);
        if (rv != CKR_OK) {
            snprintf(sg->err, sizeof(sg->err), "parent signing during forks: %s", fl_rv(rv));
            break;
        }
        sg->ok++;
    }
    return NULL;
}

static int fork_child(void)
{
    struct worker w = {0};
    struct keyset k = {0};
    alarm(60);
    /* PKCS#11 3.0 §5.4: the child must initialise again. */
    CK_RV rv = fl_initialize_rv();
    if (rv != CKR_OK) {
        fprintf(stderr, "child C_Initialize: %s\n", fl_rv(rv));
        return 3;
    }
    slot = fl_find_slot(TOKEN);
    CK_SESSION_HANDLE s = fl_open_user(slot, false);
    if (!load_keys(&w, s, &k)) {
        fprintf(stderr, "child: %s\n", w.err);
        return 4;
    }
    for (int i = 0; i < 3; i++) {
        if ((rv = sign_one(&w, s, k.soft, k.soft_pub, false)) != CKR_OK ||
            (rv = sign_one(&w, s, k.hw, k.hw_pub, getenv("KSP11_TCTI") != NULL)) != CKR_OK) {
            fprintf(stderr, "child sign: %s\n", fl_rv(rv));
            return 5;
        }
    }
    fl_finalize();
    return 0;
}

static int do_fork(int forks)
{
    struct signer sg[2] = {0};
    struct worker w = {0};
    struct keyset k = {0};
    int bad = 0;
    fl_initialize();
    slot = fl_find_slot(TOKEN);
    have_hw = true;
    CK_SESSION_HANDLE s = fl_open_user(slot, false);
    if (!load_keys(&w, s, &k))
        fl_fail("%s", w.err);
    sg[0] = (struct signer){.key = k.soft, .pub = k.soft_pub};
    sg[1] = (struct signer){.key = k.hw, .pub = k.hw_pub, .tpm = getenv("KSP11_TCTI") != NULL};
    for (int i = 0; i < 2; i++)
        if (pthread_create(&sg[i].th, NULL, sign_loop, &sg[i]) != 0)
            fl_die("pthread_create");
    for (int i = 0; i < forks; i++) {
        int st;
        fflush(NULL);
        pid_t p = fork();
        if (p < 0)
            fl_die("fork");
        if (p == 0)
            _exit(fork_child());
        waitpid(p, &st, 0);
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            fprintf(stderr, "fork %d: child %s %d%s\n", i, WIFEXITED(st) ? "exit" : "signal",
                    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st),
                    WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM ? " (hung)" : "");
            bad++;
        }
        fl_sleep_us(fl_rand() % 20000);
    }
    atomic_store(&stop, true);
    for (int i = 0; i < 2; i++) {
        pthread_join(sg[i].th, NULL);
        if (sg[i].err[0]) {
            fprintf(stderr, "%s\n", sg[i].err);
            bad++;
        }
    }
    EVP_PKEY_free(k.soft_pub); /* LeakSanitizer (make check-asan) checks exits too */
    EVP_PKEY_free(k.hw_pub);
    if (bad)
        fl_fail("%d failures", bad);
    printf("%d forks while 2 threads signed (%ld + %ld verified signatures): every child "
           "initialised, logged in and signed with both keys\n",
           forks, sg[0].ok, sg[1].ok);
    fl_finalize();
    return 0;
}

int main(int argc, char **argv)
{
    fl_set_prog(argv[0]);
    if (argc < 2)
        fl_die("usage: fault_load setup | run PROCS THREADS SECONDS | fork N");
    if (!strcmp(argv[1], "setup")) {
        fl_initialize();
        int rc = do_setup();
        fl_finalize();
        return rc;
    }
    if (!strcmp(argv[1], "run") && argc == 5)
        return do_run(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));
    if (!strcmp(argv[1], "fork") && argc == 3)
        return do_fork(atoi(argv[2]));
    fl_die("bad arguments");
}
