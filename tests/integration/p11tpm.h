/*
 * Shared helpers of the PKCS#11-level TPM integration tests
 * (itest_p11tpm.c, itest_p11tpm_dev.c): the module environment and its
 * re-initialisation, what the TPM says through tpm2_getcap over a connection
 * of our own, the per-test fixture (every TPM test ends with the TPM clean),
 * key generation, placement checks (vendor attributes) and signatures
 * verified by OpenSSL. Header-only (static inline) because the Makefile links
 * each itest program with tests/unit/testlib.c alone.
 */
#ifndef KSP11_ITEST_P11TPM_H
#define KSP11_ITEST_P11TPM_H

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/obj_mac.h>

#include "../unit/testlib.h"

#define NO_TPM_TCTI "swtpm:path=/nonexistent/sock"
#define DENY_ALL    "test-swtpm IBM 0.0 65535.65535 all\n"
#define MSG         "ksp11 TPM integration test message"

struct pair {
    CK_OBJECT_HANDLE pub, priv;
};

static const CK_BBOOL yes = CK_TRUE;

/* ---- environment and module life --------------------------------------- */

static inline const char *tpm_tcti(void)
{
    const char *t = getenv("KSP11_ITEST_TCTI");

    ck_assert_msg(t != NULL && *t != '\0', "KSP11_ITEST_TCTI not set (run p11_tpm.sh)");
    return t;
}

__attribute__((format(printf, 3, 4))) static inline void fmt(char *dst, size_t len, const char *f,
                                                             ...)
{
    va_list ap;
    int n;

    va_start(ap, f);
    n = vsnprintf(dst, len, f, ap);
    va_end(ap);
    ck_assert_msg(n >= 0 && (size_t)n < len, "string too long");
}

/* The module's view for the next C_Initialize: TCTI, deny list, config. */
static inline void module_env(const char *tcti, const char *denylist, const char *conf)
{
    if (tcti != NULL) {
        setenv("KSP11_TCTI", tcti, 1);
    } else {
        unsetenv("KSP11_TCTI");
    }
    if (denylist != NULL) {
        setenv("KSP11_DENYLIST", denylist, 1);
    } else {
        unsetenv("KSP11_DENYLIST");
    }
    setenv("KSP11_CONF", conf != NULL ? conf : "/nonexistent", 1);
}

/* C_Finalize (if needed) and C_Initialize under another environment: what a
 * new process would see. */
static inline void reinit(const char *tcti, const char *denylist, const char *conf)
{
    if (ksp_t.initialized) {
        ksp_test_finalize();
    }
    module_env(tcti, denylist, conf);
    ksp_test_initialize();
}

static inline void write_file(char *path, size_t len, const char *name, const char *text)
{
    FILE *f;

    fmt(path, len, "%s/%s", ksp_t.dir, name);
    f = fopen(path, "w");
    ck_assert_msg(f != NULL, "fopen(%s): %s", path, strerror(errno));
    fputs(text, f);
    ck_assert(fclose(f) == 0);
}

/* ---- what the TPM says, over a connection of our own -------------------- */

/* Runs tpm2_getcap ARGS against the test TPM; the module must not hold the
 * connection (swtpm serves one at a time), so a hang means it does. */
static inline void getcap(const char *args, char *out, size_t max)
{
    char cmd[512];
    size_t n = 0;
    FILE *p;
    int st;

    setenv("TPM2TOOLS_TCTI", tpm_tcti(), 1);
    fmt(cmd, sizeof(cmd), "timeout 30 tpm2_getcap %s 2>&1", args);
    p = popen(cmd, "r");
    ck_assert_msg(p != NULL, "popen(%s)", cmd);
    while (n + 1 < max) {
        size_t got = fread(out + n, 1, max - 1 - n, p);
        if (got == 0) {
            break;
        }
        n += got;
    }
    out[n] = '\0';
    st = pclose(p);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) != 124,
                  "tpm2_getcap %s timed out: something (the module?) still holds the TPM", args);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "tpm2_getcap %s failed:\n%s", args, out);
}

/* A value of `tpm2_getcap properties-variable` ("NAME: 0x3" or "  name: 1"). */
static inline unsigned long tpm_prop(const char *name)
{
    static char out[16384];
    char key[64];
    const char *p;

    getcap("properties-variable", out, sizeof(out));
    fmt(key, sizeof(key), "%s:", name);
    p = strstr(out, key);
    ck_assert_msg(p != NULL, "%s not in tpm2_getcap properties-variable:\n%s", name, out);
    return strtoul(p + strlen(key), NULL, 0);
}

/* DESIGN.md §7: after every TPM test no transient object or session may be
 * left (swtpm without a resource manager keeps them across connections). */
static inline void assert_tpm_clean(void)
{
    static const char *const kinds[] = {"handles-transient", "handles-loaded-session",
                                        "handles-saved-session"};
    char out[4096];

    for (size_t i = 0; i < 3; i++) {
        getcap(kinds[i], out, sizeof(out));
        ck_assert_msg(strstr(out, "0x") == NULL, "left in the TPM after C_Finalize (%s):\n%s",
                      kinds[i], out);
    }
}

/* ---- fixtures ------------------------------------------------------------ */

static inline void tpm_setup(void)
{
    ksp_test_setup_noinit();
    module_env(tpm_tcti(), NULL, NULL);
    ksp_test_initialize();
}

/* Finalize, then the TPM must be clean; the checked teardown of TPM tests. */
static inline void tpm_teardown(void)
{
    if (ksp_t.initialized) {
        ksp_test_finalize();
    }
    assert_tpm_clean();
    ksp_test_teardown();
}

/* The TPM 1.2 cannot be asked for handles by tpm2_getcap. */
static inline void tpm12_teardown(void)
{
    ksp_test_teardown();
}

static inline void add_tcase(Suite *s, const char *name, bool tpm2, TCase **out)
{
    TCase *tc = tcase_create(name);

    tcase_add_unchecked_fixture(tc, ksp_test_base_setup, ksp_test_base_teardown);
    tcase_add_checked_fixture(tc, tpm_setup, tpm2 ? tpm_teardown : tpm12_teardown);
    tcase_set_timeout(tc, KSP_TEST_TIMEOUT);
    suite_add_tcase(s, tc);
    *out = tc;
}

/* ---- keys ---------------------------------------------------------------- */

static inline CK_RV gen(CK_SESSION_HANDLE s, CK_KEY_TYPE kt, const char *label, bool token, bool hw,
                        struct pair *p)
{
    CK_ATTRIBUTE req[] = {{CKA_KSP11_REQUIRE_HARDWARE, (void *)&yes, sizeof(yes)}};

    p->pub = p->priv = CK_INVALID_HANDLE;
    if (kt == CKK_RSA) {
        return ksp_test_gen_keypair(s, CKM_RSA_PKCS_KEY_PAIR_GEN, 2048, label, token, NULL, 0,
                                    hw ? req : NULL, hw ? 1 : 0, &p->pub, &p->priv);
    }
    return ksp_test_gen_keypair(s, CKM_EC_KEY_PAIR_GEN, NID_X9_62_prime256v1, label, token, NULL, 0,
                                hw ? req : NULL, hw ? 1 : 0, &p->pub, &p->priv);
}

static inline void gen_ok(CK_SESSION_HANDLE s, CK_KEY_TYPE kt, const char *label, bool token,
                          struct pair *p)
{
    CK_RV rv = gen(s, kt, label, token, false, p);

    ck_assert_msg(rv == CKR_OK, "C_GenerateKeyPair %s \"%s\": %s", kt == CKK_RSA ? "RSA" : "EC",
                  label, ksp_test_rv_name(rv));
}

static inline struct pair find_pair(CK_SESSION_HANDLE s, const char *label)
{
    struct pair p = {ksp_test_find1(s, CKO_PUBLIC_KEY, label),
                     ksp_test_find1(s, CKO_PRIVATE_KEY, label)};

    return p;
}

/* A UTF-8 vendor attribute as a C string (malloc'd); NULL if not readable. */
static inline char *str_attr(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type,
                             CK_RV *rv)
{
    uint8_t *v = NULL;
    CK_ULONG len = 0;

    *rv = ksp_test_get_attr(s, h, type, &v, &len);
    return (char *)v;
}

/* Non-exportable, always (DESIGN.md §3), whichever backend holds the key. */
static inline void check_private_policy(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE priv, const char *ctx)
{
    ck_assert_msg(ksp_test_get_bool(s, priv, CKA_SENSITIVE), "%s: not CKA_SENSITIVE", ctx);
    ck_assert_msg(!ksp_test_get_bool(s, priv, CKA_EXTRACTABLE), "%s: CKA_EXTRACTABLE", ctx);
    ck_assert_msg(ksp_test_get_bool(s, priv, CKA_LOCAL), "%s: not CKA_LOCAL", ctx);
    ck_assert_msg(ksp_test_get_bool(s, priv, CKA_ALWAYS_SENSITIVE), "%s: not ALWAYS_SENSITIVE",
                  ctx);
    ck_assert_msg(ksp_test_get_bool(s, priv, CKA_NEVER_EXTRACTABLE), "%s: not NEVER_EXTRACTABLE",
                  ctx);
}

static inline void check_in_tpm(CK_SESSION_HANDLE s, const struct pair *p, const char *ctx)
{
    const CK_OBJECT_HANDLE hs[2] = {p->priv, p->pub};

    for (int i = 0; i < 2; i++) {
        const char *which = i == 0 ? "private" : "public";
        CK_RV rv;
        char *reason, *ident;

        ck_assert_msg(ksp_test_get_ulong(s, hs[i], CKA_KSP11_BACKEND) == KSP11_BACKEND_TPM,
                      "%s %s key: CKA_KSP11_BACKEND %lu, expected 1 (TPM)", ctx, which,
                      ksp_test_get_ulong(s, hs[i], CKA_KSP11_BACKEND));
        ck_assert_msg(ksp_test_get_ulong(s, hs[i], CKA_KSP11_IMPL_TYPE) ==
                          (KSP11_IMPL_HARDWARE | KSP11_IMPL_VIRTUAL),
                      "%s %s key: CKA_KSP11_IMPL_TYPE 0x%lx, expected 0x21 (hardware|virtual)", ctx,
                      which, ksp_test_get_ulong(s, hs[i], CKA_KSP11_IMPL_TYPE));
        reason = str_attr(s, hs[i], CKA_KSP11_FALLBACK_REASON, &rv);
        ck_assert_msg(rv == CKR_OK && reason[0] == '\0',
                      "%s %s key: CKA_KSP11_FALLBACK_REASON %s \"%s\", expected empty", ctx, which,
                      ksp_test_rv_name(rv), reason ? reason : "");
        ident = str_attr(s, hs[i], CKA_KSP11_TPM_IDENTITY, &rv);
        ck_assert_msg(rv == CKR_OK && strstr(ident, "manufacturer=IBM") != NULL,
                      "%s %s key: CKA_KSP11_TPM_IDENTITY %s \"%s\", expected manufacturer=IBM", ctx,
                      which, ksp_test_rv_name(rv), ident ? ident : "");
        free(reason);
        free(ident);
    }
    check_private_policy(s, p->priv, ctx);
}

static inline void check_in_soft(CK_SESSION_HANDLE s, const struct pair *p, const char *want,
                                 const char *ctx)
{
    const CK_OBJECT_HANDLE hs[2] = {p->priv, p->pub};

    for (int i = 0; i < 2; i++) {
        const char *which = i == 0 ? "private" : "public";
        CK_RV rv;
        char *reason;

        ck_assert_msg(ksp_test_get_ulong(s, hs[i], CKA_KSP11_BACKEND) == KSP11_BACKEND_SOFT,
                      "%s %s key: CKA_KSP11_BACKEND %lu, expected 2 (software)", ctx, which,
                      ksp_test_get_ulong(s, hs[i], CKA_KSP11_BACKEND));
        ck_assert_msg(ksp_test_get_ulong(s, hs[i], CKA_KSP11_IMPL_TYPE) == KSP11_IMPL_SOFTWARE,
                      "%s %s key: CKA_KSP11_IMPL_TYPE 0x%lx, expected 0x2", ctx, which,
                      ksp_test_get_ulong(s, hs[i], CKA_KSP11_IMPL_TYPE));
        reason = str_attr(s, hs[i], CKA_KSP11_FALLBACK_REASON, &rv);
        ck_assert_msg(rv == CKR_OK && strcmp(reason, want) == 0,
                      "%s %s key: CKA_KSP11_FALLBACK_REASON %s \"%s\", expected \"%s\"", ctx, which,
                      ksp_test_rv_name(rv), reason ? reason : "", want);
        free(reason);
    }
    check_private_policy(s, p->priv, ctx);
}

static inline CK_RV sign_rv(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE priv, CK_MECHANISM *m,
                            const uint8_t *data, size_t len, uint8_t *sig, CK_ULONG *siglen)
{
    CK_ULONG max = *siglen;
    CK_RV rv = P11->C_SignInit(s, m, priv);

    if (rv != CKR_OK) {
        return rv;
    }
    *siglen = 0;
    rv = P11->C_Sign(s, (CK_BYTE_PTR)data, len, NULL, siglen);
    if (rv != CKR_OK) {
        return rv;
    }
    if (*siglen > max) {
        return CKR_BUFFER_TOO_SMALL;
    }
    return P11->C_Sign(s, (CK_BYTE_PTR)data, len, sig, siglen);
}

/* Sign with the module, verify with OpenSSL and the public key object. */
static inline void sign_check(CK_SESSION_HANDLE s, const struct pair *p, CK_MECHANISM *m,
                              const uint8_t *data, size_t len)
{
    uint8_t sig[512];
    CK_ULONG siglen = sizeof(sig);
    const char *name = ksp_test_mech_name(m->mechanism);
    EVP_PKEY *pk;

    KSP_ASSERT_RV_CTX(name, sign_rv(s, p->priv, m, data, len, sig, &siglen), CKR_OK);
    pk = ksp_test_ossl_pubkey(s, p->pub);
    ck_assert_msg(ksp_test_ossl_verify(pk, m, data, len, sig, siglen),
                  "%s: OpenSSL rejects the signature", name);
    EVP_PKEY_free(pk);
}

static inline void sign_msg(CK_SESSION_HANDLE s, const struct pair *p, CK_KEY_TYPE kt)
{
    CK_MECHANISM m = {kt == CKK_RSA ? CKM_SHA256_RSA_PKCS : CKM_ECDSA_SHA256, NULL, 0};

    sign_check(s, p, &m, (const uint8_t *)MSG, strlen(MSG));
}

/* DigestInfo of SHA-256(MSG) (RFC 8017 §9.2 note 1). */
static inline CK_ULONG count_all(CK_SESSION_HANDLE s)
{
    return ksp_test_find(s, NULL, 0, NULL, 0);
}

static inline CK_SESSION_HANDLE open_login(const char *label)
{
    CK_SESSION_HANDLE s;

    ksp_t.slot = ksp_test_find_slot(label);
    s = ksp_test_open(ksp_t.slot, true);
    ksp_test_login(s, CKU_USER, KSP_TEST_USER_PIN);
    return s;
}

static inline CK_RV login_rv(CK_SESSION_HANDLE s, CK_USER_TYPE u, const char *pin)
{
    return P11->C_Login(s, u, (CK_UTF8CHAR_PTR)pin, strlen(pin));
}

/* Run a suite verbosely (one line per test, parsed by p11_tpm.sh). */
static inline int run_suite(Suite *s)
{
    SRunner *sr = srunner_create(s);
    int failed;

    srunner_run_all(sr, CK_VERBOSE);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}

#endif
