/*
 * The ksp11 benchmark (issue 5; `make bench` runs it through bench/run.sh).
 * One program, several modes that run.sh calls in one run:
 *   setup MODULE [ROUNDS TAG [pinless]]  init token "bench", keys "rsa" and "ec"; keygen times
 *   populate MODULE N               a token with N data objects labelled obj-<i>
 *   sign MODULE tpm|soft ROUNDS N THREADS MECHS
 *                                   C_Sign vs the ceiling (raw TPM / in-process
 *                                   OpenSSL), interleaved rounds, medians, ratios
 *   cold MODULE LABEL [nologin]     one cold start (dlopen .. first verified signature)
 *   procs ROUNDS SPEC...            whole processes, interleaved, medians
 *   objects MODULE ROUNDS CONF...   C_Initialize / C_Login / find per store
 * Every signature made is verified with OpenSSL; a failure ends the run with
 * status 2. Times are medians over rounds; nothing here is a test.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/param_build.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>

#include "bench.h"
#include "ksp11/pkcs11.h"

#define PIN    "1234"
#define SO_PIN "12345678"
#define MAXR   64

static CK_FUNCTION_LIST *p11;
static void *module_handle;

double bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void bench_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "bench: FAILED: ");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n");
    va_end(ap);
    exit(2);
}

#define CK(call)                                                                                   \
    do {                                                                                           \
        CK_RV rv_ = (call);                                                                        \
        if (rv_ != CKR_OK)                                                                         \
            bench_die("%s: 0x%lx (line %d)", #call, (unsigned long)rv_, __LINE__);                 \
    } while (0)

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    double t[MAXR * 4];
    if (n <= 0)
        return 0;
    memcpy(t, v, sizeof(double) * (size_t)n);
    qsort(t, (size_t)n, sizeof(double), cmp_d);
    return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

/* ---- counting TCTI ---- */

static uint64_t *counts;

static const char *cc_name(unsigned cc)
{
    switch (cc) {
    case 0x15D:
        return "Sign";
    case 0x159:
        return "RSA_Decrypt";
    case 0x161:
        return "ContextLoad";
    case 0x162:
        return "ContextSave";
    case 0x165:
        return "FlushContext";
    case 0x157:
        return "Load";
    case 0x176:
        return "StartAuthSession";
    case 0x173:
        return "ReadPublic";
    case 0x17A:
        return "GetCapability";
    case 0x131:
        return "CreatePrimary";
    case 0x15E:
        return "Unseal";
    default:
        return "?";
    }
}

/* Per command code counts, to say which commands a call costs. */
static void snapshot(uint64_t *v)
{
    bench_tpm_commands();
    for (int i = 0; i < 1024; i++)
        v[i] = counts ? __atomic_load_n(&counts[1 + i], __ATOMIC_RELAXED) : 0;
}

static void breakdown(const char *what, const uint64_t *a, const uint64_t *b, int n)
{
    printf("  TPM commands per %s:", what);
    for (int i = 0; i < 1024; i++)
        if (b[i] > a[i])
            printf(" %s %.1f", cc_name((unsigned)i), (double)(b[i] - a[i]) / n);
    printf("\n");
}

uint64_t bench_tpm_commands(void)
{
    static bool tried;
    if (!tried) {
        tried = true;
        const char *path = getenv("KSP_TCTI_COUNT_FILE");
        int fd = path ? open(path, O_RDONLY | O_CLOEXEC) : -1;
        if (fd >= 0) {
            void *p = mmap(NULL, 1026 * 8, PROT_READ, MAP_SHARED, fd, 0);
            counts = p == MAP_FAILED ? NULL : p;
            close(fd);
        }
    }
    return counts ? __atomic_load_n(&counts[0], __ATOMIC_RELAXED) : 0;
}

/* ---- OpenSSL ---- */

EVP_PKEY *bench_pkey_rsa(const uint8_t *n, size_t nlen, const uint8_t *e, size_t elen)
{
    EVP_PKEY *pk = NULL;
    OSSL_PARAM_BLD *b = OSSL_PARAM_BLD_new();
    BIGNUM *bn = BN_bin2bn(n, (int)nlen, NULL), *be = BN_bin2bn(e, (int)elen, NULL);
    OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_N, bn);
    OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_E, be);
    OSSL_PARAM *p = OSSL_PARAM_BLD_to_param(b);
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
    if (!c || EVP_PKEY_fromdata_init(c) <= 0 ||
        EVP_PKEY_fromdata(c, &pk, EVP_PKEY_PUBLIC_KEY, p) <= 0)
        bench_die("RSA public key");
    EVP_PKEY_CTX_free(c);
    OSSL_PARAM_free(p);
    OSSL_PARAM_BLD_free(b);
    BN_free(bn);
    BN_free(be);
    return pk;
}

EVP_PKEY *bench_pkey_p256(const uint8_t *point, size_t len)
{
    EVP_PKEY *pk = NULL;
    OSSL_PARAM p[3] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)point, len),
        OSSL_PARAM_construct_end()};
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    if (!c || EVP_PKEY_fromdata_init(c) <= 0 ||
        EVP_PKEY_fromdata(c, &pk, EVP_PKEY_PUBLIC_KEY, p) <= 0)
        bench_die("EC public key");
    EVP_PKEY_CTX_free(c);
    return pk;
}

/* r||s -> DER ECDSA-Sig-Value. */
static int ecdsa_der(const uint8_t *rs, size_t len, uint8_t *der)
{
    ECDSA_SIG *s = ECDSA_SIG_new();
    ECDSA_SIG_set0(s, BN_bin2bn(rs, (int)len / 2, NULL),
                   BN_bin2bn(rs + len / 2, (int)len / 2, NULL));
    uint8_t *p = der;
    int n = i2d_ECDSA_SIG(s, &p);
    ECDSA_SIG_free(s);
    return n;
}

bool bench_verify(EVP_PKEY *pk, char kind, bool hashed, const uint8_t *msg, size_t mlen,
                  const uint8_t *sig, size_t slen)
{
    uint8_t md[32], der[80];
    unsigned mdlen = 0;
    if (!hashed) {
        EVP_Digest(msg, mlen, md, &mdlen, EVP_sha256(), NULL);
        msg = md;
        mlen = 32;
    }
    if (kind == 'e') {
        int n = ecdsa_der(sig, slen, der);
        if (n <= 0)
            return false;
        sig = der;
        slen = (size_t)n;
    }
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new(pk, NULL);
    bool ok = c && EVP_PKEY_verify_init(c) > 0;
    if (ok && kind != 'e' && kind != 'E') {
        ok = EVP_PKEY_CTX_set_rsa_padding(c, kind == 's' ? RSA_PKCS1_PSS_PADDING
                                                         : RSA_PKCS1_PADDING) > 0 &&
             EVP_PKEY_CTX_set_signature_md(c, EVP_sha256()) > 0;
        if (ok && kind == 's')
            ok = EVP_PKEY_CTX_set_rsa_pss_saltlen(c, 32) > 0 &&
                 EVP_PKEY_CTX_set_rsa_mgf1_md(c, EVP_sha256()) > 0;
    }
    ok = ok && EVP_PKEY_verify(c, sig, slen, msg, mlen) == 1;
    EVP_PKEY_CTX_free(c);
    return ok;
}

/* ---- PKCS#11 ---- */

static void load_module(const char *path)
{
    CK_C_GetFunctionList gfl = NULL;
    module_handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!module_handle)
        bench_die("dlopen %s: %s", path, dlerror());
    *(void **)&gfl = dlsym(module_handle, "C_GetFunctionList");
    if (!gfl || gfl(&p11) != CKR_OK)
        bench_die("C_GetFunctionList");
}

static void init(const char *conf)
{
    CK_C_INITIALIZE_ARGS a = {.flags = CKF_OS_LOCKING_OK, .pReserved = (void *)conf};
    CK(p11->C_Initialize(&a));
}

/* The slot of token "bench", or the empty slot when want_empty. */
static CK_SLOT_ID find_slot(bool want_empty)
{
    CK_SLOT_ID slots[16];
    CK_ULONG n = 16;
    CK(p11->C_GetSlotList(CK_TRUE, slots, &n));
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;
        CK(p11->C_GetTokenInfo(slots[i], &ti));
        bool inited = (ti.flags & CKF_TOKEN_INITIALIZED) != 0;
        if (want_empty ? !inited : (inited && memcmp(ti.label, "bench ", 6) == 0))
            return slots[i];
    }
    bench_die("no %s slot", want_empty ? "empty" : "bench");
}

static CK_SESSION_HANDLE open_rw(CK_SLOT_ID slot)
{
    CK_SESSION_HANDLE s = 0;
    CK(p11->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s));
    return s;
}

static CK_OBJECT_HANDLE find_one(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const char *label)
{
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_LABEL, (void *)label, strlen(label)}};
    CK_OBJECT_HANDLE h = 0;
    CK_ULONG n = 0;
    CK(p11->C_FindObjectsInit(s, t, 2));
    CK(p11->C_FindObjects(s, &h, 1, &n));
    CK(p11->C_FindObjectsFinal(s));
    if (n != 1)
        bench_die("object %s not found", label);
    return h;
}

/* A PIN-less token (daemons, the machine's own certificate): no C_Login. */
static bool pinless;

static CK_SLOT_ID make_token(void)
{
    CK_SLOT_ID slot = find_slot(true);
    CK_UTF8CHAR label[32];
    memset(label, ' ', 32);
    memcpy(label, "bench", 5);
    CK(p11->C_InitToken(slot, (CK_UTF8CHAR *)SO_PIN, 8, label));
    slot = find_slot(false);
    CK_SESSION_HANDLE s = open_rw(slot);
    CK(p11->C_Login(s, CKU_SO, (CK_UTF8CHAR *)SO_PIN, 8));
    CK(p11->C_InitPIN(s, (CK_UTF8CHAR *)PIN, pinless ? 0 : 4));
    CK(p11->C_Logout(s));
    CK(p11->C_CloseSession(s));
    return slot;
}

static double keygen(CK_SESSION_HANDLE s, bool rsa, const char *label)
{
    CK_BBOOL yes = CK_TRUE;
    CK_ULONG bits = 2048;
    static const uint8_t p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
    CK_MECHANISM m = {rsa ? CKM_RSA_PKCS_KEY_PAIR_GEN : CKM_EC_KEY_PAIR_GEN, NULL, 0};
    CK_ATTRIBUTE pub[] = {{CKA_TOKEN, &yes, 1},
                          {CKA_LABEL, (void *)label, strlen(label)},
                          {CKA_VERIFY, &yes, 1},
                          rsa ? (CK_ATTRIBUTE){CKA_MODULUS_BITS, &bits, sizeof(bits)}
                              : (CK_ATTRIBUTE){CKA_EC_PARAMS, (void *)p256, sizeof(p256)}};
    CK_ATTRIBUTE priv[] = {{CKA_TOKEN, &yes, 1},
                           {CKA_LABEL, (void *)label, strlen(label)},
                           {CKA_SIGN, &yes, 1},
                           {CKA_PRIVATE, &yes, 1}};
    CK_OBJECT_HANDLE hp = 0, hv = 0;
    double t0 = bench_now();
    CK(p11->C_GenerateKeyPair(s, &m, pub, 4, priv, 4, &hp, &hv));
    return bench_now() - t0;
}

/* setup: token + the two benchmark keys; keygen timed over `rounds` extra pairs. */
static int do_setup(int argc, char **argv)
{
    int rounds = argc > 3 ? atoi(argv[3]) : 3;
    const char *tag = argc > 4 ? argv[4] : "";
    double tr[MAXR], te[MAXR];
    pinless = argc > 5 && strcmp(argv[5], "pinless") == 0;
    load_module(argv[2]);
    init(NULL);
    CK_SESSION_HANDLE s = open_rw(make_token());
    if (!pinless)
        CK(p11->C_Login(s, CKU_USER, (CK_UTF8CHAR *)PIN, 4));
    keygen(s, true, "rsa");
    keygen(s, false, "ec");
    if (rounds > MAXR)
        rounds = MAXR;
    for (int r = 0; r < rounds; r++) {
        tr[r] = keygen(s, true, "kg-rsa");
        te[r] = keygen(s, false, "kg-ec");
    }
    if (rounds > 0) {
        printf("keygen %-4s RSA-2048 (C_GenerateKeyPair)      %9.1f ms  (median of %d)\n", tag,
               median(tr, rounds) * 1e3, rounds);
        printf("keygen %-4s P-256    (C_GenerateKeyPair)      %9.1f ms  (median of %d)\n", tag,
               median(te, rounds) * 1e3, rounds);
    }
    CK(p11->C_Finalize(NULL));
    return 0;
}

/* populate: a token with n public data objects (the find/initialise rows). */
static int do_populate(int argc, char **argv)
{
    int n = argc > 3 ? atoi(argv[3]) : 0;
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    char label[32];
    uint8_t value[64];
    load_module(argv[2]);
    init(NULL);
    CK_SESSION_HANDLE s = open_rw(make_token());
    memset(value, 0x5a, sizeof(value));
    for (int i = 0; i < n; i++) {
        snprintf(label, sizeof(label), "obj-%d", i);
        CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)},
                            {CKA_TOKEN, &yes, 1},
                            {CKA_PRIVATE, &no, 1},
                            {CKA_LABEL, label, strlen(label)},
                            {CKA_VALUE, value, sizeof(value)}};
        CK_OBJECT_HANDLE h = 0;
        CK(p11->C_CreateObject(s, t, 5, &h));
    }
    CK(p11->C_Finalize(NULL));
    return 0;
}

/* ---- signing ---- */

struct mech {
    const char *name;
    CK_MECHANISM_TYPE type;
    char key;    /* 'r' or 'e' */
    char vkind;  /* bench_verify kind */
    bool hashed; /* input is a SHA-256 digest (or its DigestInfo) */
};

static const struct mech mechs[] = {
    {"CKM_SHA256_RSA_PKCS", CKM_SHA256_RSA_PKCS, 'r', 'p', false},
    {"CKM_SHA256_RSA_PKCS_PSS", CKM_SHA256_RSA_PKCS_PSS, 'r', 's', false},
    {"CKM_RSA_PKCS", CKM_RSA_PKCS, 'r', 'p', true},
    {"CKM_ECDSA", CKM_ECDSA, 'e', 'e', true},
    {"CKM_ECDSA_SHA256", CKM_ECDSA_SHA256, 'e', 'e', false},
};
#define NMECH (sizeof(mechs) / sizeof(mechs[0]))

static const uint8_t sha256_di[19] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                      0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};

struct keyset {
    CK_OBJECT_HANDLE priv[2]; /* r, e */
    EVP_PKEY *pub[2];
    EVP_PKEY *ossl[2]; /* in-process ceiling keys (soft) */
};

static EVP_PKEY *module_pub(CK_SESSION_HANDLE s, char which)
{
    CK_OBJECT_HANDLE h = find_one(s, CKO_PUBLIC_KEY, which == 'r' ? "rsa" : "ec");
    uint8_t a[600], b[16];
    if (which == 'r') {
        CK_ATTRIBUTE t[] = {{CKA_MODULUS, a, sizeof(a)}, {CKA_PUBLIC_EXPONENT, b, sizeof(b)}};
        CK(p11->C_GetAttributeValue(s, h, t, 2));
        return bench_pkey_rsa(a, t[0].ulValueLen, b, t[1].ulValueLen);
    }
    CK_ATTRIBUTE t[] = {{CKA_EC_POINT, a, sizeof(a)}};
    CK(p11->C_GetAttributeValue(s, h, t, 1));
    if (t[0].ulValueLen != 67 || a[0] != 0x04 || a[1] != 65)
        bench_die("unexpected CKA_EC_POINT");
    return bench_pkey_p256(a + 2, 65);
}

struct signjob {
    CK_SLOT_ID slot;
    const struct mech *m;
    CK_OBJECT_HANDLE key;
    int n;
    uint8_t (*msg)[64];
    uint8_t (*sig)[256];
    CK_ULONG *slen;
    pthread_barrier_t *bar;
};

static void message(const struct mech *m, uint8_t *buf, const uint8_t **in, CK_ULONG *len)
{
    /* buf holds 64 random bytes; hashed mechanisms sign its first 32 as a
     * digest (CKM_RSA_PKCS: inside a DigestInfo). */
    static __thread uint8_t di[19 + 32];
    if (!m->hashed) {
        *in = buf;
        *len = 64;
    } else if (m->type == CKM_RSA_PKCS) {
        memcpy(di, sha256_di, 19);
        memcpy(di + 19, buf, 32);
        *in = di;
        *len = sizeof(di);
    } else {
        *in = buf;
        *len = 32;
    }
}

static void *sign_thread(void *arg)
{
    struct signjob *j = arg;
    CK_SESSION_HANDLE s = 0;
    CK_RSA_PKCS_PSS_PARAMS pss = {CKM_SHA256, CKG_MGF1_SHA256, 32};
    CK_MECHANISM m = {j->m->type, NULL, 0};
    if (j->m->type == CKM_SHA256_RSA_PKCS_PSS) {
        m.pParameter = &pss;
        m.ulParameterLen = sizeof(pss);
    }
    CK(p11->C_OpenSession(j->slot, CKF_SERIAL_SESSION, NULL, NULL, &s));
    pthread_barrier_wait(j->bar);
    for (int i = 0; i < j->n; i++) {
        const uint8_t *in = NULL;
        CK_ULONG len = 0;
        message(j->m, j->msg[i], &in, &len);
        j->slen[i] = 256;
        CK(p11->C_SignInit(s, &m, j->key));
        CK(p11->C_Sign(s, (CK_BYTE_PTR)in, len, j->sig[i], &j->slen[i]));
    }
    pthread_barrier_wait(j->bar);
    CK(p11->C_CloseSession(s));
    return NULL;
}

/* threads x n signatures with ksp11; all verified. Returns seconds. */
static double ksp_sign(CK_SLOT_ID slot, struct keyset *ks, const struct mech *m, int threads, int n)
{
    struct signjob j[8];
    pthread_t th[8];
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)threads + 1);
    for (int t = 0; t < threads; t++) {
        j[t] = (struct signjob){slot,
                                m,
                                ks->priv[m->key == 'r' ? 0 : 1],
                                n,
                                malloc(64 * (size_t)n),
                                malloc(256 * (size_t)n),
                                calloc((size_t)n, sizeof(CK_ULONG)),
                                &bar};
        RAND_bytes((uint8_t *)j[t].msg, 64 * n);
        pthread_create(&th[t], NULL, sign_thread, &j[t]);
    }
    pthread_barrier_wait(&bar);
    double t0 = bench_now();
    pthread_barrier_wait(&bar);
    double el = bench_now() - t0;
    for (int t = 0; t < threads; t++) {
        pthread_join(th[t], NULL);
        for (int i = 0; i < n; i++)
            if (!bench_verify(ks->pub[m->key == 'r' ? 0 : 1], m->vkind, m->hashed, j[t].msg[i],
                              m->hashed ? 32 : 64, j[t].sig[i], j[t].slen[i]))
                bench_die("%s: ksp11 signature %d of thread %d does not verify", m->name, i, t);
        free(j[t].msg);
        free(j[t].sig);
        free(j[t].slen);
    }
    pthread_barrier_destroy(&bar);
    return el;
}

/* In-process OpenSSL, the way an application signs with a key it holds. */
static double ossl_sign(struct keyset *ks, const struct mech *m, int n)
{
    uint8_t(*msg)[64] = malloc(64 * (size_t)n), (*sig)[256] = malloc(256 * (size_t)n);
    size_t *slen = calloc((size_t)n, sizeof(size_t));
    EVP_PKEY *pk = ks->ossl[m->key == 'r' ? 0 : 1];
    RAND_bytes((uint8_t *)msg, 64 * n);
    double t0 = bench_now();
    for (int i = 0; i < n; i++) {
        slen[i] = 256;
        uint8_t der[80];
        size_t dlen = sizeof(der);
        uint8_t *out = m->key == 'e' ? der : sig[i];
        size_t *olen = m->key == 'e' ? &dlen : &slen[i];
        EVP_PKEY_CTX *pc = NULL;
        int ok = 0;
        if (!m->hashed) {
            EVP_MD_CTX *md = EVP_MD_CTX_new();
            ok = EVP_DigestSignInit(md, &pc, EVP_sha256(), NULL, pk) > 0;
            if (ok && m->vkind == 's')
                ok = EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PSS_PADDING) > 0 &&
                     EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, 32) > 0;
            ok = ok && EVP_DigestSign(md, out, olen, msg[i], 64) > 0;
            EVP_MD_CTX_free(md);
        } else {
            pc = EVP_PKEY_CTX_new(pk, NULL);
            ok = EVP_PKEY_sign_init(pc) > 0;
            if (ok && m->key == 'r')
                ok = EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_PADDING) > 0 &&
                     EVP_PKEY_CTX_set_signature_md(pc, EVP_sha256()) > 0;
            ok = ok && EVP_PKEY_sign(pc, out, olen, msg[i], 32) > 0;
            EVP_PKEY_CTX_free(pc);
        }
        if (!ok)
            bench_die("OpenSSL sign");
        if (m->key == 'e') {
            /* DER -> r||s, the shape ksp11 returns (not timed separately:
             * it is part of what a PKCS#11 caller gets for free). */
            const uint8_t *p = der;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)dlen);
            const BIGNUM *r = NULL, *s = NULL;
            ECDSA_SIG_get0(es, &r, &s);
            BN_bn2binpad(r, sig[i], 32);
            BN_bn2binpad(s, sig[i] + 32, 32);
            ECDSA_SIG_free(es);
            slen[i] = 64;
        }
    }
    double el = bench_now() - t0;
    for (int i = 0; i < n; i++)
        if (!bench_verify(pk, m->vkind, m->hashed, msg[i], m->hashed ? 32 : 64, sig[i], slen[i]))
            bench_die("%s: OpenSSL signature %d does not verify", m->name, i);
    free(msg);
    free(sig);
    free(slen);
    return el;
}

/* sign MODULE tpm|soft ROUNDS N THREADS(csv) MECHS(csv of indexes or "all") */
static int do_sign(int argc, char **argv)
{
    if (argc < 7)
        bench_die("usage: sign MODULE tpm|soft ROUNDS N THREADS MECHS");
    bool tpm = strcmp(argv[3], "tpm") == 0;
    int rounds = atoi(argv[4]), n = atoi(argv[5]);
    int thr[4], nthr = 0;
    bool want[NMECH];
    for (char *p = argv[6]; *p && nthr < 4;) {
        thr[nthr++] = (int)strtol(p, &p, 10);
        if (*p == ',')
            p++;
    }
    for (size_t i = 0; i < NMECH; i++)
        want[i] = strcmp(argv[7], "all") == 0 || strstr(argv[7], mechs[i].name + 4) != NULL;
    if (rounds > MAXR)
        rounds = MAXR;
    const char *where = argc > 8 ? argv[8] : (tpm ? "swtpm, no resource manager" : "");

    struct keyset ks = {0};
    struct bench_tpm *raw = tpm ? bench_tpm_open() : NULL;
    if (tpm && !raw)
        bench_die("no TPM (KSP11_TCTI)");
    if (!tpm) {
        ks.ossl[0] = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
        ks.ossl[1] = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    }
    load_module(argv[2]);
    double ceil_t[2][MAXR], ksp_t[NMECH][4][MAXR], cmds[NMECH][MAXR], ceil_cmds[2][MAXR];
    static uint64_t snap_a[1024], snap_b[1024], snap_d[NMECH][1024];
    static const uint64_t zero[1024];
    char why[NMECH][40];
    memset(why, 0, sizeof(why));
    for (int r = 0; r < rounds; r++) {
        if (raw)
            bench_tpm_disconnect(raw);
        /* The module's part of the round: a fresh C_Initialize + login (not
         * timed), a warm-up signature per mechanism, then the timed calls. */
        init(NULL);
        CK_SLOT_ID slot = find_slot(false);
        CK_SESSION_HANDLE s = open_rw(slot);
        CK(p11->C_Login(s, CKU_USER, (CK_UTF8CHAR *)PIN, 4));
        ks.priv[0] = find_one(s, CKO_PRIVATE_KEY, "rsa");
        ks.priv[1] = find_one(s, CKO_PRIVATE_KEY, "ec");
        if (!ks.pub[0]) {
            ks.pub[0] = module_pub(s, 'r');
            ks.pub[1] = module_pub(s, 'e');
        }
        for (size_t i = 0; i < NMECH; i++)
            if (want[i])
                ksp_sign(slot, &ks, &mechs[i], 1, 1);
        for (size_t i = 0; i < NMECH; i++) {
            if (!want[i])
                continue;
            for (int t = 0; t < nthr; t++) {
                uint64_t c0 = bench_tpm_commands();
                if (t == 0 && r == rounds - 1 && tpm)
                    snapshot(snap_a);
                double el = ksp_sign(slot, &ks, &mechs[i], thr[t], n);
                ksp_t[i][t][r] = el / (n * thr[t]); /* seconds per signature */
                if (t == 0)
                    cmds[i][r] = (double)(bench_tpm_commands() - c0) / n;
                if (t == 0 && r == rounds - 1 && tpm) {
                    snapshot(snap_b);
                    snprintf(why[i], sizeof(why[i]), "%s", mechs[i].name);
                    memcpy(snap_d[i], snap_b, sizeof(snap_b));
                    for (int c = 0; c < 1024; c++)
                        snap_d[i][c] -= snap_a[c];
                }
            }
        }
        CK(p11->C_Finalize(NULL));
        for (int k = 0; k < 2; k++) {
            uint64_t c0 = bench_tpm_commands();
            if (tpm)
                ceil_t[k][r] = bench_tpm_sign(raw, k == 0 ? 'r' : 'e', n) / n;
            else
                ceil_t[k][r] = ossl_sign(&ks, &mechs[k == 0 ? 0 : 4], n) / n;
            /* The load and flush around the timed calls count too: only
             * the steady state (n large) approaches 1 per signature. */
            ceil_cmds[k][r] = (double)(bench_tpm_commands() - c0) / n;
        }
    }
    printf("\n-- C_Sign, %s keys%s%s: %d rounds x %d signatures, medians, all verified --\n",
           tpm ? "TPM" : "software", where[0] ? ", " : "", where, rounds, n);
    printf("%-34s %9s %9s %8s", "", "ms/sig", "sig/s", "ratio");
    for (int t = 1; t < nthr; t++)
        printf("  %dthr x", thr[t]);
    printf("%s\n", tpm ? "  TPM cmds/sig" : "");
    for (int k = 0; k < 2; k++) {
        double c = median(ceil_t[k], rounds);
        printf(
            "%-34s %9.3f %9.0f %8s",
            tpm ? (k ? "ceiling: raw ESAPI P-256 ECDSA" : "ceiling: raw ESAPI RSA-2048 PKCS1")
                : (k ? "ceiling: OpenSSL EVP P-256 ECDSA" : "ceiling: OpenSSL EVP RSA-2048 PKCS1"),
            c * 1e3, 1 / c, "1.00");
        if (tpm) {
            for (int t = 1; t < nthr; t++)
                printf("  %7s", "");
            /* The ceiling's key load and flush around its calls count too. */
            printf("  %6.1f", median(ceil_cmds[k], rounds));
        }
        printf("\n");
    }
    for (size_t i = 0; i < NMECH; i++) {
        if (!want[i])
            continue;
        double one = median(ksp_t[i][0], rounds);
        double c = median(ceil_t[mechs[i].key == 'r' ? 0 : 1], rounds);
        printf("ksp11 %-28s %9.3f %9.0f %7.2fx", mechs[i].name, one * 1e3, 1 / one, c / one);
        for (int t = 1; t < nthr; t++)
            printf("  %6.2fx", one / median(ksp_t[i][t], rounds));
        if (tpm)
            printf("  %6.1f", median(cmds[i], rounds));
        printf("\n");
    }
    if (nthr > 1)
        printf("(Nthr x = throughput with N threads, one session each, over 1 thread)\n");
    for (size_t i = 0; i < NMECH; i++)
        if (tpm && why[i][0] && (i == 0 || i == 4))
            breakdown(why[i], zero, snap_d[i], n);
    bench_tpm_close(raw);
    return 0;
}

/* ---- cold start, whole processes, object counts ---- */

static long rss_kb(void)
{
    long pages = 0, rss = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &rss) != 2)
            rss = 0;
        fclose(f);
    }
    return rss * (sysconf(_SC_PAGESIZE) / 1024);
}

/* cold MODULE KEYLABEL: one fresh process' path to its first verified
 * signature (CKM_SHA256_RSA_PKCS or CKM_ECDSA_SHA256 by the key's label). */
static int do_cold(int argc, char **argv)
{
    if (argc < 4)
        bench_die("usage: cold MODULE rsa|ec");
    bool rsa = strcmp(argv[3], "rsa") == 0;
    long rss0 = rss_kb();
    struct timespec cpu0, cpu1;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu0);
    double t0 = bench_now();
    load_module(argv[2]);
    uint64_t c0 = bench_tpm_commands();
    double t1 = bench_now();
    init(NULL);
    double t2 = bench_now();
    uint64_t c1 = bench_tpm_commands();
    CK_SLOT_ID slot = find_slot(false);
    CK_SESSION_HANDLE s = 0;
    CK(p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s));
    double t3 = bench_now();
    if (argc < 5 || strcmp(argv[4], "nologin") != 0)
        CK(p11->C_Login(s, CKU_USER, (CK_UTF8CHAR *)PIN, 4));
    double t4 = bench_now();
    CK_OBJECT_HANDLE k = find_one(s, CKO_PRIVATE_KEY, argv[3]);
    EVP_PKEY *pub = module_pub(s, rsa ? 'r' : 'e');
    double t5 = bench_now();
    uint8_t msg[64], sig[256];
    CK_ULONG slen = sizeof(sig);
    CK_MECHANISM m = {rsa ? CKM_SHA256_RSA_PKCS : CKM_ECDSA_SHA256, NULL, 0};
    RAND_bytes(msg, sizeof(msg));
    CK(p11->C_SignInit(s, &m, k));
    CK(p11->C_Sign(s, msg, sizeof(msg), sig, &slen));
    double t6 = bench_now();
    if (!bench_verify(pub, rsa ? 'p' : 'e', false, msg, sizeof(msg), sig, slen))
        bench_die("cold start signature does not verify");
    double t7 = bench_now();
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu1);
    long rss1 = rss_kb();
    uint64_t c2 = bench_tpm_commands();
    /* cpu_ms: this process' CPU time over the same span (the part the
     * machine's load does not inflate; the TPM's own time is swtpm's). */
    printf("total_ms=%.3f cpu_ms=%.3f dlopen_ms=%.3f init_ms=%.3f login_ms=%.3f find_ms=%.3f "
           "sign_ms=%.3f init_cmds=%llu cmds=%llu rss_kib=%ld\n",
           (t7 - t0) * 1e3,
           ((double)(cpu1.tv_sec - cpu0.tv_sec) + (double)(cpu1.tv_nsec - cpu0.tv_nsec) / 1e9) *
               1e3,
           (t1 - t0) * 1e3, (t2 - t1) * 1e3, (t4 - t3) * 1e3, (t5 - t4) * 1e3, (t6 - t5) * 1e3,
           (unsigned long long)(c1 - c0), (unsigned long long)(c2 - c0), rss1 - rss0);
    EVP_PKEY_free(pub);
    /* Like many hosts: exit without C_Finalize (a cold start's real cost). */
    if (getenv("BENCH_FINALIZE"))
        CK(p11->C_Finalize(NULL));
    return 0;
}

#define MAXSPEC 8
#define MAXKV   12

struct spec {
    char *name, *env, *cmd, *verify;
    double wall[MAXR];
    char keys[MAXKV][24];
    double vals[MAXKV][MAXR];
    int nkv;
};

static void split(char *s, char **v, int max, int *n)
{
    *n = 0;
    for (char *tok = strtok(s, " "); tok && *n < max - 1; tok = strtok(NULL, " "))
        v[(*n)++] = tok;
    v[*n] = NULL;
}

static void run_spec(struct spec *sp, int r)
{
    int fd[2];
    char buf[4096];
    size_t got = 0;
    if (pipe(fd) != 0)
        bench_die("pipe");
    double t0 = bench_now();
    pid_t pid = fork();
    if (pid == 0) {
        char env[1024], cmd[2048], *ev[32], *av[64];
        int ne = 0, na = 0;
        snprintf(env, sizeof(env), "%s", sp->env);
        snprintf(cmd, sizeof(cmd), "%s", sp->cmd);
        split(env, ev, 32, &ne);
        split(cmd, av, 64, &na);
        for (int i = 0; i < ne; i++)
            putenv(ev[i]);
        dup2(fd[1], 1);
        /* Children's chatter (pkcs11-tool prints its algorithm) goes to
         * BENCH_ERR_FILE; shown if the child fails. */
        const char *ef = getenv("BENCH_ERR_FILE");
        int efd = ef ? open(ef, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600) : -1;
        if (efd >= 0)
            dup2(efd, 2);
        close(fd[0]);
        close(fd[1]);
        execvp(av[0], av);
        _exit(127);
    }
    close(fd[1]);
    for (ssize_t k; (k = read(fd[0], buf + got, sizeof(buf) - 1 - got)) > 0;)
        got += (size_t)k;
    close(fd[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    sp->wall[r] = bench_now() - t0;
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
        const char *ef = getenv("BENCH_ERR_FILE");
        FILE *f = ef ? fopen(ef, "r") : NULL;
        for (int c; f && (c = fgetc(f)) != EOF;)
            fputc(c, stderr);
        if (f)
            fclose(f);
        bench_die("%s: %s exited with status %d", sp->name, sp->cmd, st);
    }
    buf[got] = '\0';
    for (char *tok = strtok(buf, " \n"); tok; tok = strtok(NULL, " \n")) {
        char *eq = strchr(tok, '=');
        if (!eq)
            continue;
        *eq = '\0';
        int i = 0;
        while (i < sp->nkv && strcmp(sp->keys[i], tok) != 0)
            i++;
        if (i == sp->nkv && sp->nkv < MAXKV)
            snprintf(sp->keys[sp->nkv++], sizeof(sp->keys[0]), "%s", tok);
        if (i < MAXKV)
            sp->vals[i][r] = strtod(eq + 1, NULL);
    }
    if (sp->verify && sp->verify[0] && system(sp->verify) != 0)
        bench_die("%s: the signature does not verify (%s)", sp->name, sp->verify);
}

/* procs TITLE ROUNDS "NAME|ENV|CMD|VERIFY"...: interleaved whole processes. */
static int do_procs(int argc, char **argv)
{
    struct spec sp[MAXSPEC];
    int ns = 0, rounds = atoi(argv[3]);
    if (rounds > MAXR)
        rounds = MAXR;
    for (int i = 4; i < argc && ns < MAXSPEC; i++) {
        struct spec *p = &sp[ns++];
        memset(p, 0, sizeof(*p));
        p->name = strtok(argv[i], "|");
        p->env = strtok(NULL, "|");
        p->cmd = strtok(NULL, "|");
        p->verify = strtok(NULL, "|");
        if (p->env && strcmp(p->env, "-") == 0)
            p->env = "";
        if (!p->cmd)
            bench_die("bad spec %s", p->name);
    }
    for (int r = 0; r < rounds; r++)
        for (int i = 0; i < ns; i++)
            run_spec(&sp[i], r);
    printf("\n-- %s: %d interleaved rounds, medians --\n", argv[2], rounds);
    double ref = median(sp[0].wall, rounds);
    for (int i = 0; i < ns; i++) {
        double w = median(sp[i].wall, rounds);
        printf("%-40s process %8.2f ms  %5.2fx", sp[i].name, w * 1e3, w / ref);
        for (int k = 0; k < sp[i].nkv; k++) {
            double v = median(sp[i].vals[k], rounds);
            printf("  %s %.*f", sp[i].keys[k], strstr(sp[i].keys[k], "_ms") ? 2 : 0, v);
        }
        printf("\n");
    }
    return 0;
}

/* objects MODULE ROUNDS N:CONF...: C_Initialize, C_Login and find by label
 * on tokens holding N objects; conf files name the stores (pReserved). */
static int do_objects(int argc, char **argv)
{
    int rounds = atoi(argv[3]), nc = 0;
    int count[4];
    char *conf[4];
    double ti[4][MAXR], tl[4][MAXR], tf1[4][MAXR], tf[4][MAXR];
    if (rounds > MAXR)
        rounds = MAXR;
    for (int i = 4; i < argc && nc < 4; i++, nc++) {
        count[nc] = atoi(argv[i]);
        conf[nc] = strchr(argv[i], ':') + 1;
    }
    load_module(argv[2]);
    for (int r = 0; r < rounds; r++) {
        for (int c = 0; c < nc; c++) {
            char label[32];
            snprintf(label, sizeof(label), "obj-%d", count[c] / 2);
            double t0 = bench_now();
            init(conf[c]);
            double t1 = bench_now();
            CK_SLOT_ID slot = find_slot(false);
            CK_SESSION_HANDLE s = 0;
            CK(p11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s));
            double t2 = bench_now();
            CK(p11->C_Login(s, CKU_USER, (CK_UTF8CHAR *)PIN, 4));
            double t3 = bench_now();
            for (int k = 0; k < 2; k++) {
                CK_ATTRIBUTE t[] = {{CKA_LABEL, label, strlen(label)}};
                CK_OBJECT_HANDLE h[2];
                CK_ULONG n = 0;
                double a = bench_now();
                CK(p11->C_FindObjectsInit(s, t, 1));
                CK(p11->C_FindObjects(s, h, 2, &n));
                CK(p11->C_FindObjectsFinal(s));
                double b = bench_now();
                if (n != (count[c] ? 1u : 0u))
                    bench_die("find %s: %lu objects", label, (unsigned long)n);
                (k ? tf : tf1)[c][r] = b - a;
            }
            CK(p11->C_Finalize(NULL));
            ti[c][r] = t1 - t0;
            tl[c][r] = t3 - t2;
        }
    }
    printf("\n-- token with N objects: %d interleaved rounds, medians (ms) --\n", rounds);
    printf("%-10s %12s %10s %14s %10s %16s\n", "objects", "C_Initialize", "C_Login", "first find",
           "find", "init+login ratio");
    double base = median(ti[0], rounds) + median(tl[0], rounds);
    for (int c = 0; c < nc; c++)
        printf("%-10d %12.3f %10.3f %14.3f %10.3f %15.2fx\n", count[c], median(ti[c], rounds) * 1e3,
               median(tl[c], rounds) * 1e3, median(tf1[c], rounds) * 1e3,
               median(tf[c], rounds) * 1e3, (median(ti[c], rounds) + median(tl[c], rounds)) / base);
    return 0;
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    /* tpm2-tss logs to stderr unless told otherwise (the ceiling's probe
     * for a persistent SRK is an expected TPM error). */
    setenv("TSS2_LOG", "all+NONE", 0);
    if (argc < 3)
        bench_die("usage: bench setup|populate|sign|cold|procs|objects ...");
    if (strcmp(argv[1], "setup") == 0)
        return do_setup(argc, argv);
    if (strcmp(argv[1], "populate") == 0)
        return do_populate(argc, argv);
    if (strcmp(argv[1], "sign") == 0)
        return do_sign(argc, argv);
    if (strcmp(argv[1], "cold") == 0)
        return do_cold(argc, argv);
    if (strcmp(argv[1], "procs") == 0)
        return do_procs(argc, argv);
    if (strcmp(argv[1], "objects") == 0)
        return do_objects(argc, argv);
    bench_die("unknown mode %s", argv[1]);
}
