/*
 * Unit tests of provider/twk.c (TWK wrap under a PIN, seal/unseal of object
 * secrets, PBKDF2 iteration policy) and provider/secmem.c (secret buffers).
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <unistd.h>
#include <string.h>

#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

#include "config.h"
#include "log.h"
#include "secmem.h"
#include "twk.h"

#define ck_assert_rv(expr, want)                                                                   \
    do {                                                                                           \
        CK_RV got_rv_ = (expr);                                                                    \
        CK_RV want_rv_ = (want);                                                                   \
        ck_assert_msg(got_rv_ == want_rv_, "%s: got %s, want %s", #expr, ksp_rv_name(got_rv_),     \
                      ksp_rv_name(want_rv_));                                                      \
    } while (0)

/* Low counts keep the tests fast; the KDF is the same. */
#define ITER 1000u

static const uint8_t pin[] = "123456";
static const uint8_t aad[] = "0123456789abcdef0123456789abcdef";

static void setup(void)
{
    /* These tests provoke warnings on purpose: keep them out of syslog. */
    struct ksp_config quiet = {0};
    quiet.log_level = KSP_LOG_NONE;
    ksp_log_open(&quiet);
    setenv("KSP11_KDF_ITERATIONS", "1000", 1);
}

/* ---- secmem ---- */

START_TEST(test_secmem)
{
    uint8_t *p = ksp_secmem_alloc(100);
    ck_assert_ptr_nonnull(p);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(p[i], 0);
    memset(p, 0xAB, 100);
    ksp_secmem_free(p, 100);
    ksp_secmem_free(NULL, 10);

    struct ksp_buf b = {0};
    ck_assert_rv(ksp_buf_set(&b, "secret", 6), CKR_OK);
    ck_assert_uint_eq(b.len, 6);
    ck_assert_mem_eq(b.p, "secret", 6);
    b.len = 2; /* owners may shorten a buffer; free must still be safe */
    ksp_buf_free(&b);
    ck_assert_ptr_null(b.p);
    ck_assert_uint_eq(b.len, 0);
    ksp_buf_free(&b); /* twice is fine */

    ck_assert_rv(ksp_buf_alloc(&b, 0), CKR_OK);
    ck_assert_ptr_nonnull(b.p);
    ksp_buf_free(&b);
    ck_assert_rv(ksp_buf_alloc(&b, 70000), CKR_OK); /* spans pages */
    memset(b.p, 1, b.len);
    ksp_buf_free(&b);
    ck_assert_rv(ksp_buf_set(&b, NULL, 5), CKR_ARGUMENTS_BAD);

    uint8_t x[4] = {1, 2, 3, 4}, y[4] = {1, 2, 3, 4};
    ck_assert_int_eq(ksp_memeq_ct(x, y, 4), 0);
    y[3] = 5;
    ck_assert_int_ne(ksp_memeq_ct(x, y, 4), 0);
    ck_assert_int_eq(ksp_memeq_ct(x, y, 3), 0);

    uint8_t w[8];
    memset(w, 0x77, sizeof(w));
    ksp_wipe(w, sizeof(w));
    for (size_t i = 0; i < sizeof(w); i++)
        ck_assert_int_eq(w[i], 0);
}
END_TEST

/* Locked memory of this process in kB (VmLck), -1 if unknown. */
static long vm_locked_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmLck: %ld kB", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

/* Secrets are locked in RAM, but never more than half of RLIMIT_MEMLOCK, which
 * the host process shares with us. */
#if defined(__SANITIZE_ADDRESS__)
#define KSP_ASAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define KSP_ASAN_BUILD 1
#endif
#endif

START_TEST(test_secmem_lock_budget)
{
#ifdef KSP_ASAN_BUILD
    /* ASan's mlock interceptor does nothing: VmLck cannot move. */
    fprintf(stderr, "check_twk: ASan build, lock test skipped\n");
    return;
#endif
    struct rlimit rl;
    ck_assert_int_eq(getrlimit(RLIMIT_MEMLOCK, &rl), 0);
    long before = vm_locked_kb();
    if (before < 0 || rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur < 64 * 1024 ||
        rl.rlim_cur > 64u * 1024 * 1024) {
        fprintf(stderr, "check_twk: VmLck or RLIMIT_MEMLOCK unsuitable, lock test skipped\n");
        return;
    }
    void *p = ksp_secmem_alloc(32);
    ck_assert_int_gt(vm_locked_kb(), before);
    ksp_secmem_free(p, 32);
    ck_assert_int_eq(vm_locked_kb(), before);

    long page = sysconf(_SC_PAGESIZE);
    size_t n = (size_t)(rl.rlim_cur / 2 / (rlim_t)page) + 16;
    void **v = calloc(n, sizeof(*v));
    for (size_t i = 0; i < n; i++) {
        v[i] = ksp_secmem_alloc(32); /* over budget: still allocated, just not locked */
        ck_assert_ptr_nonnull(v[i]);
    }
    ck_assert_int_le(vm_locked_kb() - before, (long)(rl.rlim_cur / 2 / 1024));
    for (size_t i = 0; i < n; i++)
        ksp_secmem_free(v[i], 32);
    free(v);
    ck_assert_int_eq(vm_locked_kb(), before);
}
END_TEST

/* ---- TWK ---- */

START_TEST(test_twk_new)
{
    struct ksp_buf a = {0}, b = {0};
    ck_assert_rv(ksp_twk_new(&a), CKR_OK);
    ck_assert_rv(ksp_twk_new(&b), CKR_OK);
    ck_assert_uint_eq(a.len, KSP_TWK_LEN);
    ck_assert_int_ne(memcmp(a.p, b.p, KSP_TWK_LEN), 0);
    ksp_buf_free(&a);
    ksp_buf_free(&b);
}
END_TEST

START_TEST(test_wrap_unwrap)
{
    struct ksp_buf twk = {0}, out = {0};
    struct ksp_wrapped w, w2;
    ck_assert_rv(ksp_twk_new(&twk), CKR_OK);
    ck_assert_rv(ksp_twk_wrap(&twk, pin, 6, ITER, &w), CKR_OK);
    ck_assert_uint_eq(w.kdf, KSP_KDF_PBKDF2_SHA256);
    ck_assert_uint_eq(w.iterations, ITER);
    ck_assert_int_ne(memcmp(w.ct, twk.p, 32), 0); /* not in the clear */
    ck_assert_rv(ksp_twk_unwrap(&w, pin, 6, &out), CKR_OK);
    ck_assert_uint_eq(out.len, KSP_TWK_LEN);
    ck_assert_mem_eq(out.p, twk.p, KSP_TWK_LEN);
    ksp_buf_free(&out);

    /* Fresh salt and nonce every time. */
    ck_assert_rv(ksp_twk_wrap(&twk, pin, 6, ITER, &w2), CKR_OK);
    ck_assert_int_ne(memcmp(w.salt, w2.salt, sizeof(w.salt)), 0);
    ck_assert_int_ne(memcmp(w.nonce, w2.nonce, sizeof(w.nonce)), 0);

    /* Wrong PIN: a prefix, one changed byte, a longer PIN, the empty PIN. */
    ck_assert_rv(ksp_twk_unwrap(&w, pin, 5, &out), CKR_PIN_INCORRECT);
    ck_assert_rv(ksp_twk_unwrap(&w, (const uint8_t *)"123457", 6, &out), CKR_PIN_INCORRECT);
    ck_assert_rv(ksp_twk_unwrap(&w, (const uint8_t *)"1234567", 7, &out), CKR_PIN_INCORRECT);
    ck_assert_rv(ksp_twk_unwrap(&w, NULL, 0, &out), CKR_PIN_INCORRECT);
    ck_assert_ptr_null(out.p);

    /* Any tampering with the stored record looks like a wrong PIN. */
    for (int field = 0; field < 4; field++) {
        w2 = w;
        uint8_t *f = field == 0 ? w2.salt : field == 1 ? w2.nonce : field == 2 ? w2.ct : w2.tag;
        f[field] ^= 0x80;
        ck_assert_rv(ksp_twk_unwrap(&w2, pin, 6, &out), CKR_PIN_INCORRECT);
    }
    w2 = w;
    w2.iterations = ITER + 1;
    ck_assert_rv(ksp_twk_unwrap(&w2, pin, 6, &out), CKR_PIN_INCORRECT);
    /* Hostile parameters are refused before any work. */
    w2 = w;
    w2.iterations = 0;
    ck_assert_rv(ksp_twk_unwrap(&w2, pin, 6, &out), CKR_DATA_INVALID);
    w2.iterations = 0xFFFFFFFFu;
    ck_assert_rv(ksp_twk_unwrap(&w2, pin, 6, &out), CKR_DATA_INVALID);
    w2 = w;
    w2.kdf = 7;
    ck_assert_rv(ksp_twk_unwrap(&w2, pin, 6, &out), CKR_DATA_INVALID);
    ck_assert_rv(ksp_twk_unwrap(&w, pin, 6, &out), CKR_OK); /* original still good */
    ksp_buf_free(&out);

    /* An empty PIN (PIN-less token) works like any other. */
    ck_assert_rv(ksp_twk_wrap(&twk, NULL, 0, ITER, &w), CKR_OK);
    ck_assert_rv(ksp_twk_unwrap(&w, NULL, 0, &out), CKR_OK);
    ck_assert_mem_eq(out.p, twk.p, KSP_TWK_LEN);
    ksp_buf_free(&out);
    ck_assert_rv(ksp_twk_unwrap(&w, pin, 6, &out), CKR_PIN_INCORRECT);

    struct ksp_buf short_key = {twk.p, 16};
    ck_assert_rv(ksp_twk_wrap(&short_key, pin, 6, ITER, &w), CKR_ARGUMENTS_BAD);
    ck_assert_rv(ksp_twk_wrap(&twk, pin, 6, 0, &w), CKR_ARGUMENTS_BAD);
    ksp_buf_free(&twk);
}
END_TEST

START_TEST(test_seal_unseal)
{
    struct ksp_buf twk = {0}, other = {0};
    ck_assert_rv(ksp_twk_new(&twk), CKR_OK);
    ck_assert_rv(ksp_twk_new(&other), CKR_OK);
    size_t lens[] = {0, 1, 15, 16, 17, 1218, 70000};
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
        struct ksp_buf pt = {0}, s = {0}, s2 = {0}, back = {0};
        ck_assert_rv(ksp_buf_alloc(&pt, lens[k]), CKR_OK);
        for (size_t i = 0; i < pt.len; i++)
            pt.p[i] = (uint8_t)(i * 7 + k);
        ck_assert_rv(ksp_seal(&twk, aad, 32, &pt, &s), CKR_OK);
        ck_assert_uint_eq(s.len, 12 + pt.len + 16);
        if (pt.len >= 16)
            ck_assert_int_ne(memcmp(s.p + 12, pt.p, 16), 0);
        ck_assert_rv(ksp_seal(&twk, aad, 32, &pt, &s2), CKR_OK);
        ck_assert_int_ne(memcmp(s.p, s2.p, 12), 0); /* random nonce */
        ck_assert_rv(ksp_unseal(&twk, aad, 32, &s, &back), CKR_OK);
        ck_assert_uint_eq(back.len, pt.len);
        if (pt.len)
            ck_assert_mem_eq(back.p, pt.p, pt.len);
        ksp_buf_free(&back);

        /* Wrong AAD (another object), wrong key, no AAD. */
        ck_assert_rv(ksp_unseal(&twk, aad, 31, &s, &back), CKR_ENCRYPTED_DATA_INVALID);
        ck_assert_rv(
            ksp_unseal(&twk, (const uint8_t *)"fedcba9876543210fedcba9876543210", 32, &s, &back),
            CKR_ENCRYPTED_DATA_INVALID);
        ck_assert_rv(ksp_unseal(&twk, NULL, 0, &s, &back), CKR_ENCRYPTED_DATA_INVALID);
        ck_assert_rv(ksp_unseal(&other, aad, 32, &s, &back), CKR_ENCRYPTED_DATA_INVALID);
        ck_assert_ptr_null(back.p);

        /* Every byte (nonce, ciphertext, tag) is authenticated. Sample long
         * inputs to keep the test short. */
        size_t step = s.len > 200 ? s.len / 97 : 1;
        for (size_t i = 0; i < s.len; i += step) {
            s.p[i] ^= 0x01;
            ck_assert_rv(ksp_unseal(&twk, aad, 32, &s, &back), CKR_ENCRYPTED_DATA_INVALID);
            s.p[i] ^= 0x01;
        }
        struct ksp_buf trunc = {s.p, s.len - 1};
        ck_assert_rv(ksp_unseal(&twk, aad, 32, &trunc, &back), CKR_ENCRYPTED_DATA_INVALID);
        ksp_buf_free(&pt);
        ksp_buf_free(&s);
        ksp_buf_free(&s2);
    }
    uint8_t tiny[27] = {0};
    struct ksp_buf t = {tiny, sizeof(tiny)}, back = {0};
    ck_assert_rv(ksp_unseal(&twk, aad, 32, &t, &back), CKR_ENCRYPTED_DATA_INVALID);
    ksp_buf_free(&twk);
    ksp_buf_free(&other);
}
END_TEST

START_TEST(test_kdf_iterations)
{
    /* The environment override wins, without the floor. */
    setenv("KSP11_KDF_ITERATIONS", "1000", 1);
    ck_assert_uint_eq(ksp_kdf_iterations(100), 1000);
    setenv("KSP11_KDF_ITERATIONS", "5", 1);
    ck_assert_uint_eq(ksp_kdf_iterations(100), 5);
    setenv("KSP11_KDF_ITERATIONS", "999999999999", 1);
    ck_assert_uint_eq(ksp_kdf_iterations(100), 10000000);

    /* Invalid overrides are ignored: measured, never below the floor. */
    const char *bad[] = {"0", "-3", "abc", "12x", ""};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setenv("KSP11_KDF_ITERATIONS", bad[i], 1);
        ck_assert_uint_ge(ksp_kdf_iterations(100), 10000);
    }
    unsetenv("KSP11_KDF_ITERATIONS");
    ck_assert_uint_eq(ksp_kdf_iterations(0), 10000);
    uint32_t a = ksp_kdf_iterations(50);
    ck_assert_uint_ge(a, 10000);
    ck_assert_uint_le(a, 10000000);
    /* Measured once and cached: the same target gives the same count, and
     * a longer target never gives fewer iterations. */
    ck_assert_uint_eq(ksp_kdf_iterations(50), a);
    ck_assert_uint_ge(ksp_kdf_iterations(500), a);
    /* 1000 s worth of iterations exceeds the cap, unless the KDF runs under
     * valgrind (tests/hardening/valgrind.sh), some 50 times slower. */
    if (!RUNNING_ON_VALGRIND)
        ck_assert_uint_eq(ksp_kdf_iterations(1000000), 10000000);
}
END_TEST

static Suite *twk_suite(void)
{
    Suite *s = suite_create("twk");
    TCase *tc = tcase_create("twk");
    tcase_add_checked_fixture(tc, setup, NULL);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_secmem);
    tcase_add_test(tc, test_secmem_lock_budget);
    tcase_add_test(tc, test_twk_new);
    tcase_add_test(tc, test_wrap_unwrap);
    tcase_add_test(tc, test_seal_unseal);
    tcase_add_test(tc, test_kdf_iterations);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(twk_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
