/*
 * Shared helpers of the fault, load and crash test programs (see fl.h).
 */
#include <dlfcn.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>
#include <openssl/x509.h>

#include "fl.h"
#include "ksp11/ckr_names.h"

CK_FUNCTION_LIST *fl_p11;
static const char *prog = "faults";
static void *dl;

static const uint8_t p256_oid[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};

void fl_set_prog(const char *argv0)
{
    const char *b = strrchr(argv0, '/');
    prog = b ? b + 1 : argv0;
}

static void vmsg(const char *fmt, va_list ap)
{
    char buf[1024];
    vsnprintf(buf, sizeof(buf), fmt, ap);
    fprintf(stderr, "%s[%ld]: %s\n", prog, (long)getpid(), buf);
}

void fl_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(fmt, ap);
    va_end(ap);
    exit(2);
}

void fl_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vmsg(fmt, ap);
    va_end(ap);
    exit(1);
}

const char *fl_rv(CK_RV rv)
{
    static __thread char buf[32];
    for (size_t i = 0; i < sizeof(ksp_ckr_names) / sizeof(ksp_ckr_names[0]); i++)
        if (ksp_ckr_names[i].rv == rv)
            return ksp_ckr_names[i].name;
    snprintf(buf, sizeof(buf), "0x%lx", (unsigned long)rv);
    return buf;
}

void fl_load(void)
{
    char path[PATH_MAX];
    const char *mod = getenv("KSP11_MODULE");
    if (!mod || !*mod) {
        const char *b = getenv("KSP11_BUILD");
        snprintf(path, sizeof(path), "%s/ksp11-pkcs11.so", b && *b ? b : "build");
        mod = path;
    }
    dl = dlopen(mod, RTLD_NOW | RTLD_LOCAL);
    if (!dl)
        fl_die("dlopen %s: %s", mod, dlerror());
    CK_C_GetFunctionList gfl = (CK_C_GetFunctionList)dlsym(dl, "C_GetFunctionList");
    if (!gfl)
        fl_die("no C_GetFunctionList in %s", mod);
    FL_OK(gfl(&fl_p11));
}

CK_RV fl_initialize_rv(void)
{
    CK_C_INITIALIZE_ARGS a = {0};
    a.flags = CKF_OS_LOCKING_OK;
    if (!fl_p11)
        fl_load();
    return FLP->C_Initialize(&a);
}

void fl_initialize(void)
{
    FL_OK(fl_initialize_rv());
}

void fl_finalize(void)
{
    (void)FLP->C_Finalize(NULL);
}

void fl_reinit(void)
{
    fl_finalize();
    fl_initialize();
}

static void pad(CK_UTF8CHAR *dst, size_t len, const char *s)
{
    size_t n = strlen(s);
    memset(dst, ' ', len);
    memcpy(dst, s, n < len ? n : len);
}

static bool padded_eq(const CK_UTF8CHAR *f, size_t len, const char *s)
{
    size_t n = strlen(s);
    if (n > len || memcmp(f, s, n) != 0)
        return false;
    for (size_t i = n; i < len; i++)
        if (f[i] != ' ')
            return false;
    return true;
}

static CK_ULONG slots(CK_SLOT_ID *out, CK_ULONG max)
{
    CK_ULONG n = max;
    FL_OK(FLP->C_GetSlotList(CK_TRUE, out, &n));
    return n;
}

bool fl_slot_by_label(const char *label, CK_SLOT_ID *out)
{
    CK_SLOT_ID list[64];
    CK_ULONG n = slots(list, 64);
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;
        if (FLP->C_GetTokenInfo(list[i], &ti) != CKR_OK)
            continue;
        if ((ti.flags & CKF_TOKEN_INITIALIZED) && padded_eq(ti.label, 32, label)) {
            *out = list[i];
            return true;
        }
    }
    return false;
}

CK_SLOT_ID fl_find_slot(const char *label)
{
    CK_SLOT_ID s;
    if (!fl_slot_by_label(label, &s))
        fl_fail("no token labelled '%s'", label);
    return s;
}

CK_SLOT_ID fl_make_token(const char *label)
{
    CK_SLOT_ID list[64];
    CK_ULONG n = slots(list, 64);
    CK_UTF8CHAR lab[32];
    CK_SLOT_ID slot = (CK_SLOT_ID)-1;
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;
        FL_OK(FLP->C_GetTokenInfo(list[i], &ti));
        if (!(ti.flags & CKF_TOKEN_INITIALIZED)) {
            slot = list[i];
            break;
        }
    }
    if (slot == (CK_SLOT_ID)-1)
        fl_fail("no empty slot for token '%s'", label);
    pad(lab, sizeof(lab), label);
    FL_OK(FLP->C_InitToken(slot, (CK_UTF8CHAR_PTR)FL_SO_PIN, strlen(FL_SO_PIN), lab));
    slot = fl_find_slot(label);
    CK_SESSION_HANDLE s = fl_open(slot, true);
    FL_OK(fl_login_rv(s, CKU_SO, FL_SO_PIN));
    FL_OK(FLP->C_InitPIN(s, (CK_UTF8CHAR_PTR)FL_USER_PIN, strlen(FL_USER_PIN)));
    FL_OK(FLP->C_Logout(s));
    FL_OK(FLP->C_CloseSession(s));
    return slot;
}

CK_SESSION_HANDLE fl_open(CK_SLOT_ID slot, bool rw)
{
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    FL_OK(FLP->C_OpenSession(slot, CKF_SERIAL_SESSION | (rw ? CKF_RW_SESSION : 0), NULL, NULL, &s));
    return s;
}

CK_RV fl_login_rv(CK_SESSION_HANDLE s, CK_USER_TYPE u, const char *pin)
{
    return FLP->C_Login(s, u, (CK_UTF8CHAR_PTR)pin, strlen(pin));
}

CK_SESSION_HANDLE fl_open_user(CK_SLOT_ID slot, bool rw)
{
    CK_SESSION_HANDLE s = fl_open(slot, rw);
    CK_RV rv = fl_login_rv(s, CKU_USER, FL_USER_PIN);
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN)
        fl_fail("C_Login(user) -> %s", fl_rv(rv));
    return s;
}

CK_RV fl_attr(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE t, uint8_t **val,
              CK_ULONG *len)
{
    CK_ATTRIBUTE a = {t, NULL, 0};
    CK_RV rv = FLP->C_GetAttributeValue(s, h, &a, 1);
    if (rv != CKR_OK)
        return rv;
    if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION)
        return CKR_GENERAL_ERROR;
    uint8_t *p = malloc(a.ulValueLen + 1);
    if (!p)
        fl_die("out of memory");
    a.pValue = p;
    rv = FLP->C_GetAttributeValue(s, h, &a, 1);
    if (rv != CKR_OK) {
        free(p);
        return rv;
    }
    p[a.ulValueLen] = 0;
    *val = p;
    *len = a.ulValueLen;
    return CKR_OK;
}

CK_ULONG fl_ulong(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE t)
{
    CK_ULONG v = 0;
    CK_ATTRIBUTE a = {t, &v, sizeof(v)};
    FL_OK(FLP->C_GetAttributeValue(s, h, &a, 1));
    return v;
}

CK_RV fl_find(CK_SESSION_HANDLE s, const CK_ATTRIBUTE *tmpl, CK_ULONG n, CK_OBJECT_HANDLE **out,
              CK_ULONG *cnt)
{
    CK_OBJECT_HANDLE *all = NULL;
    CK_ULONG total = 0, got = 0;
    CK_RV rv = FLP->C_FindObjectsInit(s, (CK_ATTRIBUTE_PTR)tmpl, n);
    if (rv != CKR_OK)
        return rv;
    do {
        CK_OBJECT_HANDLE *na = realloc(all, (total + 64) * sizeof(*na));
        if (!na)
            fl_die("out of memory");
        all = na;
        rv = FLP->C_FindObjects(s, all + total, 64, &got);
        if (rv != CKR_OK) {
            (void)FLP->C_FindObjectsFinal(s);
            free(all);
            return rv;
        }
        total += got;
    } while (got == 64);
    rv = FLP->C_FindObjectsFinal(s);
    if (rv != CKR_OK) {
        free(all);
        return rv;
    }
    *out = all;
    *cnt = total;
    return CKR_OK;
}

void fl_hex(const uint8_t *in, size_t n, char *out)
{
    static const char h[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = h[in[i] >> 4];
        out[2 * i + 1] = h[in[i] & 15];
    }
    out[2 * n] = 0;
}

void fl_data_label(const uint8_t *val, size_t len, unsigned gen, char out[64])
{
    uint8_t md[32];
    char hex[65];
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    uint8_t g[4] = {(uint8_t)(gen >> 24), (uint8_t)(gen >> 16), (uint8_t)(gen >> 8), (uint8_t)gen};
    if (!c || EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1 || EVP_DigestUpdate(c, g, 4) != 1 ||
        EVP_DigestUpdate(c, val, len) != 1 || EVP_DigestFinal_ex(c, md, NULL) != 1)
        fl_die("SHA-256 failed");
    EVP_MD_CTX_free(c);
    fl_hex(md, 8, hex);
    snprintf(out, 64, "fk-%.16s-%u", hex, gen);
}

CK_RV fl_create_data(CK_SESSION_HANDLE s, const uint8_t *val, size_t len, unsigned gen, bool token,
                     CK_OBJECT_HANDLE *out)
{
    char label[64];
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL tok = token ? CK_TRUE : CK_FALSE, priv = CK_TRUE;
    fl_data_label(val, len, gen, label);
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &cls, sizeof(cls)},        {CKA_TOKEN, &tok, sizeof(tok)},
        {CKA_PRIVATE, &priv, sizeof(priv)},    {CKA_LABEL, label, strlen(label)},
        {CKA_APPLICATION, "ksp11-faults", 12}, {CKA_VALUE, (void *)val, len},
    };
    return FLP->C_CreateObject(s, t, sizeof(t) / sizeof(t[0]), out);
}

bool fl_data_consistent(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, const char **why)
{
    uint8_t *label = NULL, *val = NULL, *app = NULL;
    CK_ULONG ll = 0, vl = 0, al = 0;
    char want[64];
    unsigned gen = 0;
    bool ok = false;
    *why = NULL;
    if (fl_attr(s, h, CKA_LABEL, &label, &ll) != CKR_OK) {
        *why = "CKA_LABEL unreadable";
        goto out;
    }
    if (fl_attr(s, h, CKA_VALUE, &val, &vl) != CKR_OK) {
        *why = "CKA_VALUE unreadable";
        goto out;
    }
    if (fl_attr(s, h, CKA_APPLICATION, &app, &al) != CKR_OK || al != 12 ||
        memcmp(app, "ksp11-faults", 12) != 0) {
        *why = "CKA_APPLICATION wrong";
        goto out;
    }
    const char *dash = strrchr((const char *)label, '-');
    if (ll < 4 || memcmp(label, "fk-", 3) != 0 || !dash || sscanf(dash + 1, "%u", &gen) != 1) {
        *why = "label not of the form fk-<hash>-<gen>";
        goto out;
    }
    fl_data_label(val, vl, gen, want);
    if (strlen(want) != ll || memcmp(want, label, ll) != 0) {
        *why = "label does not match the value";
        goto out;
    }
    ok = true;
out:
    free(label);
    free(val);
    free(app);
    return ok;
}

static CK_RV gen_pair(CK_SESSION_HANDLE s, CK_MECHANISM_TYPE mt, const char *label, bool token,
                      CK_OBJECT_HANDLE *pub, CK_OBJECT_HANDLE *priv)
{
    CK_MECHANISM m = {mt, NULL, 0};
    CK_BBOOL tr = CK_TRUE, tok = token ? CK_TRUE : CK_FALSE;
    CK_ULONG bits = 2048;
    uint8_t e[] = {1, 0, 1};
    uint8_t id[8];
    for (size_t i = 0; i < sizeof(id); i++)
        id[i] = (uint8_t)fl_rand();
    CK_ATTRIBUTE pt[4] = {
        {CKA_TOKEN, &tok, sizeof(tok)},
        {CKA_VERIFY, &tr, sizeof(tr)},
        {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_ID, id, sizeof(id)},
    };
    CK_ATTRIBUTE pt_ec[5], pt_rsa[6];
    CK_ATTRIBUTE *ptp;
    CK_ULONG pn;
    memcpy(pt_ec, pt, sizeof(pt));
    memcpy(pt_rsa, pt, sizeof(pt));
    if (mt == CKM_EC_KEY_PAIR_GEN) {
        pt_ec[4] = (CK_ATTRIBUTE){CKA_EC_PARAMS, (void *)p256_oid, sizeof(p256_oid)};
        ptp = pt_ec;
        pn = 5;
    } else {
        pt_rsa[4] = (CK_ATTRIBUTE){CKA_MODULUS_BITS, &bits, sizeof(bits)};
        pt_rsa[5] = (CK_ATTRIBUTE){CKA_PUBLIC_EXPONENT, e, sizeof(e)};
        ptp = pt_rsa;
        pn = 6;
    }
    CK_ATTRIBUTE vt[] = {
        {CKA_TOKEN, &tok, sizeof(tok)}, {CKA_PRIVATE, &tr, sizeof(tr)},
        {CKA_SIGN, &tr, sizeof(tr)},    {CKA_LABEL, (void *)label, strlen(label)},
        {CKA_ID, id, sizeof(id)},
    };
    return FLP->C_GenerateKeyPair(s, &m, ptp, pn, vt, sizeof(vt) / sizeof(vt[0]), pub, priv);
}

CK_RV fl_gen_ec(CK_SESSION_HANDLE s, const char *label, bool token, CK_OBJECT_HANDLE *pub,
                CK_OBJECT_HANDLE *priv)
{
    return gen_pair(s, CKM_EC_KEY_PAIR_GEN, label, token, pub, priv);
}

CK_RV fl_gen_rsa(CK_SESSION_HANDLE s, const char *label, bool token, CK_OBJECT_HANDLE *pub,
                 CK_OBJECT_HANDLE *priv)
{
    return gen_pair(s, CKM_RSA_PKCS_KEY_PAIR_GEN, label, token, pub, priv);
}

static EVP_PKEY *fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
    EVP_PKEY *pk = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (params && c && EVP_PKEY_fromdata_init(c) == 1)
        (void)EVP_PKEY_fromdata(c, &pk, EVP_PKEY_PUBLIC_KEY, params);
    EVP_PKEY_CTX_free(c);
    OSSL_PARAM_free(params);
    return pk;
}

EVP_PKEY *fl_pubkey(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h)
{
    CK_KEY_TYPE kt = 0;
    CK_ATTRIBUTE a = {CKA_KEY_TYPE, &kt, sizeof(kt)};
    uint8_t *x = NULL, *y = NULL;
    CK_ULONG xl = 0, yl = 0;
    EVP_PKEY *pk = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (!bld || FLP->C_GetAttributeValue(s, h, &a, 1) != CKR_OK)
        goto out;
    if (kt == CKK_RSA) {
        if (fl_attr(s, h, CKA_MODULUS, &x, &xl) != CKR_OK ||
            fl_attr(s, h, CKA_PUBLIC_EXPONENT, &y, &yl) != CKR_OK)
            goto out;
        BIGNUM *n = BN_bin2bn(x, (int)xl, NULL), *e = BN_bin2bn(y, (int)yl, NULL);
        if (n && e && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) == 1 &&
            OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) == 1)
            pk = fromdata("RSA", bld);
        BN_free(n);
        BN_free(e);
    } else if (kt == CKK_EC) {
        if (fl_attr(s, h, CKA_EC_PARAMS, &x, &xl) != CKR_OK ||
            fl_attr(s, h, CKA_EC_POINT, &y, &yl) != CKR_OK)
            goto out;
        if (xl != sizeof(p256_oid) || memcmp(x, p256_oid, xl) != 0)
            goto out;
        /* CKA_EC_POINT is a DER OCTET STRING around the point. */
        if (yl < 2 || y[0] != 0x04 || y[1] != yl - 2)
            goto out;
        if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ==
                1 &&
            OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, y + 2, yl - 2) == 1)
            pk = fromdata("EC", bld);
    }
out:
    OSSL_PARAM_BLD_free(bld);
    free(x);
    free(y);
    return pk;
}

CK_RV fl_sign(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE priv, CK_KEY_TYPE kt, const uint8_t *data,
              size_t len, uint8_t *sig, CK_ULONG *siglen)
{
    CK_MECHANISM m = {kt == CKK_RSA ? CKM_SHA256_RSA_PKCS : CKM_ECDSA_SHA256, NULL, 0};
    CK_RV rv = FLP->C_SignInit(s, &m, priv);
    if (rv != CKR_OK)
        return rv;
    return FLP->C_Sign(s, (CK_BYTE_PTR)data, len, sig, siglen);
}

bool fl_verify(EVP_PKEY *pk, const uint8_t *data, size_t len, const uint8_t *sig, size_t siglen)
{
    bool ok = false;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (!c)
        return false;
    if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC) {
        /* PKCS#11 ECDSA is r || s; OpenSSL wants DER. */
        ECDSA_SIG *es = ECDSA_SIG_new();
        size_t h = siglen / 2;
        uint8_t *der = NULL;
        int dl_ = 0;
        if (es && siglen % 2 == 0 &&
            ECDSA_SIG_set0(es, BN_bin2bn(sig, (int)h, NULL), BN_bin2bn(sig + h, (int)h, NULL)))
            dl_ = i2d_ECDSA_SIG(es, &der);
        if (dl_ > 0 && EVP_DigestVerifyInit(c, NULL, EVP_sha256(), NULL, pk) == 1)
            ok = EVP_DigestVerify(c, der, (size_t)dl_, data, len) == 1;
        OPENSSL_free(der);
        ECDSA_SIG_free(es);
    } else if (EVP_DigestVerifyInit(c, NULL, EVP_sha256(), NULL, pk) == 1) {
        ok = EVP_DigestVerify(c, sig, siglen, data, len) == 1;
    }
    EVP_MD_CTX_free(c);
    return ok;
}

uint32_t fl_rand(void)
{
    static __thread uint64_t st;
    static __thread pid_t seeded;
    if (!st || seeded != getpid()) { /* a forked child must not repeat its parent */
        seeded = getpid();
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        st = ((uint64_t)getpid() << 32) ^ (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^
             (uint64_t)(uintptr_t)&st;
        if (!st)
            st = 1;
    }
    /* xorshift64* */
    st ^= st >> 12;
    st ^= st << 25;
    st ^= st >> 27;
    return (uint32_t)((st * 2685821657736338717ULL) >> 32);
}

void fl_sleep_us(long us)
{
    struct timespec ts = {us / 1000000, (us % 1000000) * 1000};
    while (nanosleep(&ts, &ts) != 0) {
    }
}
