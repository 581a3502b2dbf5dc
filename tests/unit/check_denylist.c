/*
 * Unit tests for the TPM deny list (provider/denylist.c): parsing hostile
 * text, matching identities by manufacturer, firmware range and scope, and
 * the packaged data file being the built-in list.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "denylist.h"

static struct ksp_tpm_identity ident(const char *man, unsigned major, unsigned minor)
{
    struct ksp_tpm_identity id;
    memset(&id, 0, sizeof(id));
    snprintf(id.manufacturer, sizeof(id.manufacturer), "%s", man);
    id.fw1 = (major << 16) | minor;
    id.present = CK_TRUE;
    return id;
}

static unsigned match(const struct ksp_denylist *l, const char *man, unsigned major, unsigned minor)
{
    struct ksp_tpm_identity id = ident(man, major, minor);
    return ksp_denylist_match(l, &id, NULL);
}

START_TEST(test_default_list)
{
    struct ksp_denylist l = {0};
    ck_assert_int_eq(ksp_denylist_parse(ksp_denylist_default, strlen(ksp_denylist_default), &l),
                     CKR_OK);
    ck_assert_uint_ge(l.n, 10);
    /* ROCA: vulnerable Infineon firmware denies RSA key generation only. */
    ck_assert_uint_eq(match(&l, "IFX", 7, 61), KSP_DENY_RSA_KEYGEN);
    ck_assert_uint_eq(match(&l, "IFX", 4, 33), KSP_DENY_RSA_KEYGEN);
    ck_assert_uint_eq(match(&l, "IFX", 133, 32), KSP_DENY_RSA_KEYGEN);
    /* Fixed builds seen in the wild (semantics.md §2.1). */
    ck_assert_uint_eq(match(&l, "IFX", 7, 63), 0);
    ck_assert_uint_eq(match(&l, "IFX", 5, 63), 0);
    ck_assert_uint_eq(match(&l, "IFX", 4, 34), 0);
    /* TPM-FAIL: ECC signing on ST33 and Intel PTT. */
    ck_assert_uint_eq(match(&l, "STM", 73, 5), KSP_DENY_ECC_SIGN);
    ck_assert_uint_eq(match(&l, "STM", 73, 20), 0);
    ck_assert_uint_eq(match(&l, "STM", 71, 16), 0);
    ck_assert_uint_eq(match(&l, "INTC", 11, 7), KSP_DENY_ECC_SIGN);
    /* swtpm and AMD (commented out by default) are not denied. */
    ck_assert_uint_eq(match(&l, "IBM", 0x2019, 0x1023), 0);
    ck_assert_uint_eq(match(&l, "AMD", 3, 0), 0);
    ksp_denylist_free(&l);
}
END_TEST

START_TEST(test_hostile_text)
{
    static const char text[] = "# comment\n"
                               "\n"
                               "   \t \n"
                               "ok-rule IBM 0.0 65535.65535 all\n"
                               "too few fields\n"
                               "bad-scope IBM 1.0 2.0 everything\n"
                               "bad-fw IBM 1 2.0 all\n"
                               "bad-order IBM 5.0 4.0 all\n"
                               "big-fw IBM 70000.0 70001.0 all\n"
                               "long-manufacturer ABCDE 1.0 2.0 all\n"
                               "extra IBM 1.0 2.0 all more\n"
                               "nul\0rule IBM 1.0 2.0 all\n"
                               "ecc IFX 1.0 1.5 ecc-sign\n"
                               "rsa IFX 1.2 1.9 rsa-keygen";
    struct ksp_denylist l = {0};
    ck_assert_int_eq(ksp_denylist_parse(text, sizeof(text) - 1, &l), CKR_OK);
    ck_assert_uint_eq(l.n, 3);
    ck_assert_str_eq(l.rules[0].id, "ok-rule");
    /* Scopes of overlapping rules add up; the first match is reported. */
    struct ksp_tpm_identity id = ident("IFX", 1, 3);
    const struct ksp_deny_rule *first = NULL;
    ck_assert_uint_eq(ksp_denylist_match(&l, &id, &first), KSP_DENY_ECC_SIGN | KSP_DENY_RSA_KEYGEN);
    ck_assert_str_eq(first->id, "ecc");
    ck_assert_uint_eq(match(&l, "IBM", 1, 1), KSP_DENY_ALL);
    /* A trailing space or NUL in the TPM's manufacturer field does not matter. */
    struct ksp_tpm_identity padded = ident("IBM ", 1, 1);
    ck_assert_uint_eq(ksp_denylist_match(&l, &padded, NULL), KSP_DENY_ALL);
    ksp_denylist_free(&l);

    /* Random bytes never crash the parser. */
    char junk[4096];
    srand(7);
    for (int round = 0; round < 200; round++) {
        for (size_t i = 0; i < sizeof(junk); i++)
            junk[i] = (char)(rand() % 7 == 0 ? '\n' : rand());
        struct ksp_denylist j = {0};
        ck_assert_int_eq(ksp_denylist_parse(junk, sizeof(junk), &j), CKR_OK);
        ksp_denylist_free(&j);
    }
}
END_TEST

START_TEST(test_load_locations)
{
    char dir[] = "/tmp/ksp11-deny-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof(path), "%s/list.conf", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs("only-rule STM 1.0 2.0 all\n", f);
    fclose(f);
    struct ksp_denylist l;
    ck_assert_int_eq(ksp_denylist_load(path, &l), CKR_OK);
    ck_assert_str_eq(l.source, path);
    ck_assert_uint_eq(l.n, 1);
    ksp_denylist_free(&l);
    /* An unreadable override falls through to the next location. */
    char missing[300];
    snprintf(missing, sizeof(missing), "%s/missing.conf", dir);
    ck_assert_int_eq(ksp_denylist_load(missing, &l), CKR_OK);
    ck_assert_uint_ge(l.n, 10);
    ksp_denylist_free(&l);
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(test_packaged_file_is_builtin)
{
    FILE *f = fopen(KSP_SRCDIR "/packaging/tpm-denylist.conf", "r");
    ck_assert_msg(f != NULL, "packaging/tpm-denylist.conf missing");
    static char buf[65536];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    ck_assert_str_eq(buf, ksp_denylist_default);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("denylist");
    TCase *tc = tcase_create("denylist");
    tcase_add_test(tc, test_default_list);
    tcase_add_test(tc, test_hostile_text);
    tcase_add_test(tc, test_load_locations);
    tcase_add_test(tc, test_packaged_file_is_builtin);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
