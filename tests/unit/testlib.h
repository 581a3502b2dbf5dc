/*
 * Shared fixture of the API suites (check_api_*.c): a temporary store per
 * test, the module loaded with dlopen and driven only through its function
 * list, token/session/key helpers and independent OpenSSL checks.
 *
 * The module comes from $KSP11_TEST_MODULE, else $KSP11_BUILD/ksp11-pkcs11.so,
 * else build/ksp11-pkcs11.so.
 * Nothing here knows the module's internals.
 */
#ifndef KSP11_TESTLIB_H
#define KSP11_TESTLIB_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <check.h>
#include <openssl/evp.h>

#include "ksp11/pkcs11.h"
#include "ksp11/ksp11.h"

#define KSP_TEST_SO_PIN       "12345678"
#define KSP_TEST_USER_PIN     "1234"
#define KSP_TEST_SHARED_TOKEN "shared"
#define KSP_TEST_TIMEOUT      120

/* Per-process state of the fixture; each Check test runs in its own process. */
struct ksp_test {
    void *dl;
    CK_FUNCTION_LIST *fl;
    bool initialized;
    bool own_dir;         /* dir is removed by the checked teardown */
    char base[PATH_MAX];  /* per-TCase directory (unchecked fixture) */
    char dir[PATH_MAX];   /* this test's directory */
    char store[PATH_MAX]; /* KSP11_STORE */
    CK_SLOT_ID slot;      /* token made by ksp_test_ready / shared setup */
    CK_SESSION_HANDLE session;
};

extern struct ksp_test ksp_t;

#define P11 (ksp_t.fl)

/* Assert an exact return code, naming both codes on failure. */
#define KSP_ASSERT_RV(expr, want)                                                                  \
    do {                                                                                           \
        CK_RV got_rv_ = (expr);                                                                    \
        CK_RV want_rv_ = (want);                                                                   \
        ck_assert_msg(got_rv_ == want_rv_, "%s\n  returned %s (0x%lx), expected %s (0x%lx)",       \
                      #expr, ksp_test_rv_name(got_rv_), got_rv_, ksp_test_rv_name(want_rv_),       \
                      want_rv_);                                                                   \
    } while (0)

#define KSP_ASSERT_OK(expr) KSP_ASSERT_RV(expr, CKR_OK)

/* The same, prefixed with a context string (key, mechanism) for helpers
 * that run one check sequence over many cases. */
#define KSP_ASSERT_RV_CTX(ctx, expr, want)                                                         \
    do {                                                                                           \
        CK_RV got_rv_ = (expr);                                                                    \
        CK_RV want_rv_ = (want);                                                                   \
        ck_assert_msg(got_rv_ == want_rv_, "[%s] %s\n  returned %s (0x%lx), expected %s (0x%lx)",  \
                      (ctx), #expr, ksp_test_rv_name(got_rv_), got_rv_,                            \
                      ksp_test_rv_name(want_rv_), want_rv_);                                       \
    } while (0)

/* For the few places where the specification allows exactly two codes. */
#define KSP_ASSERT_RV2(expr, want1, want2)                                                         \
    do {                                                                                           \
        CK_RV got_rv_ = (expr);                                                                    \
        ck_assert_msg(got_rv_ == (want1) || got_rv_ == (want2),                                    \
                      "%s\n  returned %s (0x%lx), expected %s or %s", #expr,                       \
                      ksp_test_rv_name(got_rv_), got_rv_, ksp_test_rv_name(want1),                 \
                      ksp_test_rv_name(want2));                                                    \
    } while (0)

const char *ksp_test_rv_name(CK_RV rv);
const char *ksp_test_mech_name(CK_MECHANISM_TYPE mech);

/* Fixtures. The base dir is made in the runner (unchecked) so that a failed
 * test, which exits without its checked teardown, leaks nothing. */
void ksp_test_base_setup(void);
void ksp_test_base_teardown(void);
void ksp_test_setup(void);        /* own dir, env, dlopen, C_Initialize(NULL) */
void ksp_test_setup_noinit(void); /* own dir, env, dlopen */
void ksp_test_teardown(void);
void ksp_test_add_fixtures(TCase *tc, bool initialize);

/*
 * Shared key store: the unchecked setup makes token KSP_TEST_SHARED_TOKEN with
 * user PIN, lets populate() create token objects, then C_Finalize + dlclose.
 * Each test then loads the module afresh and logs in (ksp_t.session).
 * Tests of such a TCase create session objects only.
 */
void ksp_test_shared_setup(void (*populate)(CK_SESSION_HANDLE));
void ksp_test_shared_child_setup(void);
void ksp_test_add_shared_fixtures(TCase *tc, void (*unchecked_setup)(void));

/* Module lifecycle. */
void ksp_test_load(void);
void ksp_test_unload(void);
void *ksp_test_sym(const char *name);
void ksp_test_initialize(void);
void ksp_test_finalize(void);
void ksp_test_reinit(void); /* C_Finalize + C_Initialize: a fresh "process" */

/* Blank-padded fixed-size fields. */
void ksp_test_pad(CK_UTF8CHAR *dst, size_t len, const char *s);
bool ksp_test_padded_eq(const CK_UTF8CHAR *field, size_t len, const char *s);

/* Slots, tokens, sessions. */
CK_ULONG ksp_test_slots(CK_SLOT_ID *out, CK_ULONG max);
CK_SLOT_ID ksp_test_empty_slot(void);
CK_SLOT_ID ksp_test_find_slot(const char *label);
CK_SLOT_ID ksp_test_init_token(const char *label);
void ksp_test_init_user_pin(CK_SLOT_ID slot, const char *pin); /* "" = PIN-less */
CK_SESSION_HANDLE ksp_test_open(CK_SLOT_ID slot, bool rw);
void ksp_test_login(CK_SESSION_HANDLE s, CK_USER_TYPE user, const char *pin);
CK_SESSION_HANDLE ksp_test_ready(const char *label);
CK_FLAGS ksp_test_token_flags(CK_SLOT_ID slot);
CK_STATE ksp_test_state(CK_SESSION_HANDLE s);

/* Objects. Values returned by ksp_test_get_attr are malloc'd and
 * NUL-terminated one byte past *len. */
CK_RV ksp_test_get_attr(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type,
                        uint8_t **val, CK_ULONG *len);
CK_ULONG ksp_test_get_ulong(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type);
/* True when the suite runs against a TPM (KSP11_TEST_TCTI is set): generated
 * keys are then TPM keys. */
bool ksp_test_tpm(void);
CK_BBOOL ksp_test_get_bool(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE type);
CK_ULONG ksp_test_find(CK_SESSION_HANDLE s, const CK_ATTRIBUTE *tmpl, CK_ULONG n,
                       CK_OBJECT_HANDLE *out, CK_ULONG max);
CK_OBJECT_HANDLE ksp_test_find1(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const char *label);
CK_ULONG ksp_test_count(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const char *label);
CK_OBJECT_HANDLE ksp_test_create_data(CK_SESSION_HANDLE s, const char *label, bool token,
                                      bool private_obj);

/* Key generation. Extra attributes replace defaults of the same type. */
CK_RV ksp_test_gen_keypair(CK_SESSION_HANDLE s, CK_MECHANISM_TYPE mech, CK_ULONG bits_or_nid,
                           const char *label, bool token, const CK_ATTRIBUTE *pub_extra,
                           CK_ULONG npub, const CK_ATTRIBUTE *priv_extra, CK_ULONG npriv,
                           CK_OBJECT_HANDLE *pub, CK_OBJECT_HANDLE *priv);
void ksp_test_gen_rsa(CK_SESSION_HANDLE s, CK_ULONG bits, const char *label, bool token,
                      CK_OBJECT_HANDLE *pub, CK_OBJECT_HANDLE *priv);
void ksp_test_gen_ec(CK_SESSION_HANDLE s, int nid, const char *label, bool token,
                     CK_OBJECT_HANDLE *pub, CK_OBJECT_HANDLE *priv);
size_t ksp_test_ec_params(int nid, uint8_t *out, size_t max);

/* OpenSSL side. */
const EVP_MD *ksp_test_md(CK_MECHANISM_TYPE mech);
size_t ksp_test_digest(CK_MECHANISM_TYPE mech, const uint8_t *in, size_t len, uint8_t *out);
EVP_PKEY *ksp_test_fixed_key(int type); /* EVP_PKEY_RSA (2048) or EVP_PKEY_EC (P-256) */
EVP_PKEY *ksp_test_ossl_pubkey(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h);
bool ksp_test_ossl_verify(EVP_PKEY *pk, const CK_MECHANISM *mech, const uint8_t *data, size_t len,
                          const uint8_t *sig, size_t siglen);
size_t ksp_test_ec_point(EVP_PKEY *pk, uint8_t *out, size_t max); /* raw point */
size_t ksp_test_der_octet(const uint8_t *in, size_t len, uint8_t *out, size_t max);
CK_RV ksp_test_import_private_rv(CK_SESSION_HANDLE s, EVP_PKEY *pk, const char *label, bool token,
                                 const CK_ATTRIBUTE *extra, CK_ULONG n, CK_OBJECT_HANDLE *out);
CK_OBJECT_HANDLE ksp_test_import_private(CK_SESSION_HANDLE s, EVP_PKEY *pk, const char *label,
                                         bool token, const CK_ATTRIBUTE *extra, CK_ULONG n);
CK_OBJECT_HANDLE ksp_test_import_public(CK_SESSION_HANDLE s, EVP_PKEY *pk, const char *label,
                                        bool token, const CK_ATTRIBUTE *extra, CK_ULONG n);

/* Runs fn in a child process; returns its exit status, or 128 + signal. */
int ksp_test_fork(int (*fn)(void *), void *arg);

#endif
