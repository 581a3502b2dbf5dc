/*
 * PKCS#11-level integration tests of the TPM backend, the TPM policy and the
 * software fallback (DESIGN.md §3-§4) against swtpm: where keys go and what
 * they say about it (vendor attributes), every mechanism checked by OpenSSL,
 * the deny list (both orders), the config, CKA_KSP11_REQUIRE_HARDWARE, and a
 * TPM 1.2. The module is loaded with dlopen (tests/unit/testlib) and used only
 * through its function list. Run by tests/integration/p11_tpm.sh:
 *   itest_p11tpm main     TPM 2.0 swtpm
 *   itest_p11tpm tpm12    TPM 1.2 swtpm: software fallback "tpm-1.2", silent
 * Environment: KSP11_ITEST_TCTI, the swtpm TCTI.
 */
#include <fcntl.h>

#include <openssl/ec.h>
#include <openssl/rsa.h>

#include "p11tpm.h"

/* ---- fixture of the mechanism tests ------------------------------------- */

/* Shared token with one RSA-2048 and one P-256 token key made in the TPM
 * once (unchecked, in the runner); each test logs in afresh. */
static void shared_env(void)
{
    char path[PATH_MAX];

    fmt(path, sizeof(path), "%s/store", ksp_t.base);
    ck_assert(mkdir(path, 0700) == 0 || errno == EEXIST);
    setenv("KSP11_STORE", path, 1);
    setenv("KSP11_KDF_ITERATIONS", "1000", 1);
    fmt(path, sizeof(path), "%s/log.%ld", ksp_t.base, (long)getpid());
    setenv("KSP11_LOG_FILE", path, 1);
    setenv("KSP11_LOG_LEVEL", "debug", 1);
    module_env(tpm_tcti(), NULL, NULL);
}

static void shared_setup(void)
{
    CK_SESSION_HANDLE s;
    CK_OBJECT_HANDLE pub, priv;

    ksp_test_base_setup();
    shared_env();
    ksp_test_load();
    ksp_test_initialize();
    s = ksp_test_ready(KSP_TEST_SHARED_TOKEN);
    ksp_test_gen_rsa(s, 2048, "rsa", true, &pub, &priv);
    ksp_test_gen_ec(s, NID_X9_62_prime256v1, "ec", true, &pub, &priv);
    ksp_test_finalize();
    ksp_test_unload();
}

static void shared_child_setup(void)
{
    shared_env();
    ksp_t.own_dir = false;
    fmt(ksp_t.dir, sizeof(ksp_t.dir), "%s", ksp_t.base);
    ksp_test_load();
    ksp_test_initialize();
    ksp_t.slot = ksp_test_find_slot(KSP_TEST_SHARED_TOKEN);
    ksp_t.session = ksp_test_open(ksp_t.slot, true);
    ksp_test_login(ksp_t.session, CKU_USER, KSP_TEST_USER_PIN);
}

static size_t digest_info(uint8_t *out)
{
    static const uint8_t prefix[] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                                     0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};

    memcpy(out, prefix, sizeof(prefix));
    ksp_test_digest(CKM_SHA256, (const uint8_t *)MSG, strlen(MSG), out + sizeof(prefix));
    return sizeof(prefix) + 32;
}

static void rsa_sign_all(CK_SESSION_HANDLE s, const struct pair *p)
{
    CK_RSA_PKCS_PSS_PARAMS pss256 = {CKM_SHA256, CKG_MGF1_SHA256, 32};
    CK_RSA_PKCS_PSS_PARAMS pss384 = {CKM_SHA384, CKG_MGF1_SHA384, 48};
    CK_MECHANISM pkcs = {CKM_RSA_PKCS, NULL, 0};
    CK_MECHANISM sha256 = {CKM_SHA256_RSA_PKCS, NULL, 0};
    CK_MECHANISM pss = {CKM_RSA_PKCS_PSS, &pss256, sizeof(pss256)};
    CK_MECHANISM pss_sha256 = {CKM_SHA256_RSA_PKCS_PSS, &pss256, sizeof(pss256)};
    CK_MECHANISM pss_sha384 = {CKM_SHA384_RSA_PKCS_PSS, &pss384, sizeof(pss384)};
    CK_MECHANISM x509 = {CKM_RSA_X_509, NULL, 0};
    const uint8_t *msg = (const uint8_t *)MSG;
    uint8_t di[64], hash[32], block[256], sig[512];
    size_t dlen = digest_info(di);
    CK_ULONG siglen = sizeof(sig);
    EVP_PKEY *pk;

    sign_check(s, p, &pkcs, di, dlen);
    sign_check(s, p, &sha256, msg, strlen(MSG));
    ksp_test_digest(CKM_SHA256, msg, strlen(MSG), hash);
    sign_check(s, p, &pss, hash, sizeof(hash));
    sign_check(s, p, &pss_sha256, msg, strlen(MSG));
    sign_check(s, p, &pss_sha384, msg, strlen(MSG));

    /* CKM_RSA_X_509 on a PKCS#1 v1.5 type-1 block (RFC 8017 §9.2). */
    block[0] = 0x00;
    block[1] = 0x01;
    memset(block + 2, 0xff, sizeof(block) - 3 - dlen);
    block[sizeof(block) - dlen - 1] = 0x00;
    memcpy(block + sizeof(block) - dlen, di, dlen);
    sign_check(s, p, &x509, block, sizeof(block));
    /* ... which is an ordinary PKCS#1 v1.5 signature of the DigestInfo. */
    KSP_ASSERT_OK(sign_rv(s, p->priv, &x509, block, sizeof(block), sig, &siglen));
    pk = ksp_test_ossl_pubkey(s, p->pub);
    ck_assert_msg(ksp_test_ossl_verify(pk, &pkcs, di, dlen, sig, siglen),
                  "CKM_RSA_X_509 of a type-1 block is not a valid PKCS#1 v1.5 signature");
    EVP_PKEY_free(pk);
}

static void ec_sign_all(CK_SESSION_HANDLE s, const struct pair *p)
{
    CK_MECHANISM ecdsa = {CKM_ECDSA, NULL, 0};
    CK_MECHANISM sha256 = {CKM_ECDSA_SHA256, NULL, 0};
    CK_MECHANISM sha384 = {CKM_ECDSA_SHA384, NULL, 0};
    const uint8_t *msg = (const uint8_t *)MSG;
    uint8_t hash[32];

    ksp_test_digest(CKM_SHA256, msg, strlen(MSG), hash);
    sign_check(s, p, &ecdsa, hash, sizeof(hash));
    sign_check(s, p, &sha256, msg, strlen(MSG));
    sign_check(s, p, &sha384, msg, strlen(MSG));
}

/* OpenSSL encrypts to the public key object, the module decrypts. */
static void decrypt_check(CK_SESSION_HANDLE s, const struct pair *p, bool oaep)
{
    CK_RSA_PKCS_OAEP_PARAMS op = {CKM_SHA256, CKG_MGF1_SHA256, CKZ_DATA_SPECIFIED, NULL, 0};
    CK_MECHANISM m = {oaep ? CKM_RSA_PKCS_OAEP : CKM_RSA_PKCS, oaep ? &op : NULL,
                      oaep ? sizeof(op) : 0};
    const char *name = ksp_test_mech_name(m.mechanism);
    EVP_PKEY *pk = ksp_test_ossl_pubkey(s, p->pub);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pk, NULL);
    uint8_t ct[512], pt[512];
    size_t ctlen = sizeof(ct);
    CK_ULONG ptlen = 0;

    ck_assert(ctx != NULL && EVP_PKEY_encrypt_init(ctx) == 1);
    if (oaep) {
        ck_assert(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) == 1);
        ck_assert(EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) == 1);
        ck_assert(EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, EVP_sha256()) == 1);
    } else {
        ck_assert(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) == 1);
    }
    ck_assert(EVP_PKEY_encrypt(ctx, ct, &ctlen, (const uint8_t *)MSG, strlen(MSG)) == 1);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pk);

    KSP_ASSERT_RV_CTX(name, P11->C_DecryptInit(s, &m, p->priv), CKR_OK);
    KSP_ASSERT_RV_CTX(name, P11->C_Decrypt(s, ct, ctlen, NULL, &ptlen), CKR_OK);
    ck_assert_msg(ptlen >= strlen(MSG) && ptlen <= sizeof(pt), "%s: length %lu", name, ptlen);
    KSP_ASSERT_RV_CTX(name, P11->C_Decrypt(s, ct, ctlen, pt, &ptlen), CKR_OK);
    ck_assert_msg(ptlen == strlen(MSG) && memcmp(pt, MSG, ptlen) == 0,
                  "%s: decrypted %lu bytes differ from what OpenSSL encrypted", name, ptlen);
}

/* Number of objects a session sees (all classes). */
/* ---- stdout/stderr capture (the module must never write there) ---------- */

struct capture {
    int out, err;
    char path[PATH_MAX];
};

static void capture_begin(struct capture *c)
{
    int fd;

    fmt(c->path, sizeof(c->path), "%s/stdio.txt", ksp_t.dir);
    fflush(NULL);
    fd = open(c->path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ck_assert(fd >= 0);
    c->out = dup(1);
    c->err = dup(2);
    ck_assert(c->out >= 0 && c->err >= 0 && dup2(fd, 1) == 1 && dup2(fd, 2) == 2);
    close(fd);
}

static void capture_end_empty(struct capture *c, const char *ctx)
{
    char buf[512] = "";
    FILE *f;
    size_t n;

    fflush(NULL);
    ck_assert(dup2(c->out, 1) == 1 && dup2(c->err, 2) == 2);
    close(c->out);
    close(c->err);
    f = fopen(c->path, "r");
    ck_assert(f != NULL);
    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    ck_assert_msg(n == 0, "%s: the module wrote to stdout/stderr:\n%s", ctx, buf);
}

/* ---- main suite: placement and every mechanism --------------------------- */

START_TEST(keys_are_in_the_tpm)
{
    CK_SESSION_HANDLE s = ksp_t.session;
    struct pair rsa = find_pair(s, "rsa"), ec = find_pair(s, "ec");

    check_in_tpm(s, &rsa, "RSA-2048");
    check_in_tpm(s, &ec, "P-256");
    ck_assert_uint_eq(ksp_test_get_ulong(s, rsa.pub, CKA_MODULUS_BITS), 2048);
    ck_assert_uint_eq(ksp_test_get_ulong(s, rsa.priv, CKA_KEY_GEN_MECHANISM),
                      CKM_RSA_PKCS_KEY_PAIR_GEN);
    ck_assert_uint_eq(ksp_test_get_ulong(s, ec.priv, CKA_KEY_GEN_MECHANISM), CKM_EC_KEY_PAIR_GEN);
}
END_TEST

START_TEST(rsa_sign_mechanisms)
{
    struct pair p = find_pair(ksp_t.session, "rsa");

    rsa_sign_all(ksp_t.session, &p);
}
END_TEST

START_TEST(rsa_decrypt_mechanisms)
{
    struct pair p = find_pair(ksp_t.session, "rsa");

    decrypt_check(ksp_t.session, &p, false);
    decrypt_check(ksp_t.session, &p, true);
}
END_TEST

START_TEST(ec_sign_mechanisms)
{
    struct pair p = find_pair(ksp_t.session, "ec");

    ec_sign_all(ksp_t.session, &p);
}
END_TEST

START_TEST(ecdh_agrees_with_openssl)
{
    CK_SESSION_HANDLE s = ksp_t.session;
    struct pair p = find_pair(s, "ec");
    EVP_PKEY *peer = EVP_EC_gen("P-256");
    EVP_PKEY *mine = ksp_test_ossl_pubkey(s, p.pub);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(peer, NULL);
    uint8_t point[80], z[80], *got = NULL;
    size_t zlen = sizeof(z);
    CK_ULONG glen = 0;
    CK_ECDH1_DERIVE_PARAMS dp = {CKD_NULL, 0, NULL, 0, point};
    CK_MECHANISM m = {CKM_ECDH1_DERIVE, &dp, sizeof(dp)};
    CK_OBJECT_CLASS sk = CKO_SECRET_KEY;
    CK_KEY_TYPE gs = CKK_GENERIC_SECRET;
    CK_BBOOL no = CK_FALSE;
    CK_ATTRIBUTE t[] = {
        {CKA_CLASS, &sk, sizeof(sk)}, {CKA_KEY_TYPE, &gs, sizeof(gs)},    {CKA_TOKEN, &no, 1},
        {CKA_SENSITIVE, &no, 1},      {CKA_EXTRACTABLE, (void *)&yes, 1},
    };
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;

    ck_assert(peer != NULL && ctx != NULL);
    ck_assert(EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer(ctx, mine) == 1);
    ck_assert(EVP_PKEY_derive(ctx, z, &zlen) == 1);
    dp.ulPublicDataLen = ksp_test_ec_point(peer, point, sizeof(point));
    KSP_ASSERT_OK(P11->C_DeriveKey(s, &m, p.priv, t, 5, &h));
    KSP_ASSERT_OK(ksp_test_get_attr(s, h, CKA_VALUE, &got, &glen));
    ck_assert_msg(glen == zlen && memcmp(got, z, zlen) == 0,
                  "ECDH with the TPM key differs from OpenSSL's (%lu vs %zu bytes)", glen, zlen);
    free(got);
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(peer);
    EVP_PKEY_free(mine);
}
END_TEST

/* ---- main suite: deny list, config, REQUIRE_HARDWARE --------------------- */

/* A token made while the TPM is denied has a software-wrapped TWK; when the
 * rule goes, new keys go to the TPM, old ones stay software and work. */
START_TEST(denied_then_allowed)
{
    char deny[PATH_MAX], empty[PATH_MAX];
    CK_SESSION_HANDLE s;
    struct pair ec, rsa, tpm;

    write_file(deny, sizeof(deny), "deny.conf", "# test rule\n" DENY_ALL);
    write_file(empty, sizeof(empty), "empty.conf", "");
    reinit(tpm_tcti(), deny, NULL);
    s = ksp_test_ready("deny-first");
    gen_ok(s, CKK_EC, "soft-ec", true, &ec);
    check_in_soft(s, &ec, "tpm-denied:test-swtpm", "EC, rule all");
    sign_msg(s, &ec, CKK_EC);
    gen_ok(s, CKK_RSA, "soft-rsa", false, &rsa);
    check_in_soft(s, &rsa, "tpm-denied:test-swtpm", "RSA, rule all");
    sign_msg(s, &rsa, CKK_RSA);

    reinit(tpm_tcti(), empty, NULL);
    s = open_login("deny-first");
    ec = find_pair(s, "soft-ec");
    check_in_soft(s, &ec, "tpm-denied:test-swtpm", "old EC key, rule gone");
    sign_msg(s, &ec, CKK_EC);
    gen_ok(s, CKK_EC, "tpm-ec", true, &tpm);
    check_in_tpm(s, &tpm, "new EC key, rule gone");
    sign_msg(s, &tpm, CKK_EC);
}
END_TEST

/* A token made under the accepted TPM has its TWK sealed there: it still logs
 * in (and its TPM keys still sign) when a rule denies the TPM for new keys,
 * and it cannot log in without the TPM; a token made while denied can. */
START_TEST(allowed_then_denied)
{
    char deny[PATH_MAX], empty[PATH_MAX];
    CK_SESSION_HANDLE s;
    struct pair tpm, soft;

    write_file(deny, sizeof(deny), "deny.conf", DENY_ALL);
    write_file(empty, sizeof(empty), "empty.conf", "");
    reinit(tpm_tcti(), empty, NULL);
    s = ksp_test_ready("tpm-first");
    gen_ok(s, CKK_EC, "tpm-ec", true, &tpm);
    check_in_tpm(s, &tpm, "EC, empty deny list");

    reinit(tpm_tcti(), deny, NULL);
    s = open_login("tpm-first");
    tpm = find_pair(s, "tpm-ec");
    check_in_tpm(s, &tpm, "old TPM key, rule all");
    sign_msg(s, &tpm, CKK_EC);
    gen_ok(s, CKK_EC, "new-ec", true, &soft);
    check_in_soft(s, &soft, "tpm-denied:test-swtpm", "new EC key, rule all");
    sign_msg(s, &soft, CKK_EC);
    (void)ksp_test_ready("made-denied");

    reinit(NO_TPM_TCTI, empty, NULL);
    s = open_login("made-denied");
    s = ksp_test_open(ksp_test_find_slot("tpm-first"), true);
    KSP_ASSERT_RV2(
        P11->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)KSP_TEST_USER_PIN, strlen(KSP_TEST_USER_PIN)),
        CKR_DEVICE_ERROR, CKR_DEVICE_REMOVED);
}
END_TEST

static void scoped_rule(const char *rule, const char *reason, CK_KEY_TYPE denied)
{
    char path[PATH_MAX];
    CK_SESSION_HANDLE s;
    struct pair rsa, ec;

    write_file(path, sizeof(path), "scoped.conf", rule);
    reinit(tpm_tcti(), path, NULL);
    s = ksp_test_ready("scoped");
    gen_ok(s, CKK_RSA, "rsa", false, &rsa);
    gen_ok(s, CKK_EC, "ec", false, &ec);
    if (denied == CKK_RSA) {
        check_in_soft(s, &rsa, reason, "RSA, rsa-keygen rule");
        check_in_tpm(s, &ec, "EC, rsa-keygen rule");
    } else {
        check_in_tpm(s, &rsa, "RSA, ecc-sign rule");
        check_in_soft(s, &ec, reason, "EC, ecc-sign rule");
    }
    sign_msg(s, &rsa, CKK_RSA);
    sign_msg(s, &ec, CKK_EC);
}

START_TEST(rule_rsa_keygen_scope)
{
    scoped_rule("test-rsa IBM 0.0 65535.65535 rsa-keygen\n", "tpm-denied:test-rsa", CKK_RSA);
}
END_TEST

START_TEST(rule_ecc_sign_scope)
{
    scoped_rule("test-ecc IBM 0.0 65535.65535 ecc-sign\n", "tpm-denied:test-ecc", CKK_EC);
}
END_TEST

START_TEST(config_refuses_software_tpm)
{
    char conf[PATH_MAX];
    CK_SESSION_HANDLE s;
    struct pair ec;

    write_file(conf, sizeof(conf), "ksp11.conf", "# test\nallow_software_tpm = no\n");
    reinit(tpm_tcti(), NULL, conf);
    s = ksp_test_ready("no-swtpm");
    gen_ok(s, CKK_EC, "ec", true, &ec);
    check_in_soft(s, &ec, "tpm-denied:software-tpm", "EC, allow_software_tpm = no");
    sign_msg(s, &ec, CKK_EC);
}
END_TEST

START_TEST(require_hardware_with_tpm)
{
    CK_SESSION_HANDLE s = ksp_test_ready("hw");
    struct pair rsa, ec;

    KSP_ASSERT_OK(gen(s, CKK_EC, "ec", true, true, &ec));
    check_in_tpm(s, &ec, "EC, REQUIRE_HARDWARE");
    sign_msg(s, &ec, CKK_EC);
    KSP_ASSERT_OK(gen(s, CKK_RSA, "rsa", false, true, &rsa));
    check_in_tpm(s, &rsa, "RSA, REQUIRE_HARDWARE");
    sign_msg(s, &rsa, CKK_RSA);
}
END_TEST

START_TEST(require_hardware_without_tpm)
{
    struct capture cap;
    CK_SESSION_HANDLE s;
    struct pair p;

    capture_begin(&cap);
    reinit(NO_TPM_TCTI, NULL, NULL);
    s = ksp_test_ready("nohw");
    KSP_ASSERT_RV2(gen(s, CKK_EC, "ec-hw", true, true, &p), CKR_DEVICE_ERROR,
                   CKR_TEMPLATE_INCONSISTENT);
    KSP_ASSERT_RV2(gen(s, CKK_RSA, "rsa-hw", false, true, &p), CKR_DEVICE_ERROR,
                   CKR_TEMPLATE_INCONSISTENT);
    ck_assert_msg(count_all(s) == 0, "%lu objects left by the refused C_GenerateKeyPair",
                  count_all(s));
    gen_ok(s, CKK_EC, "ec", true, &p);
    check_in_soft(s, &p, "tpm-unreachable", "EC without REQUIRE_HARDWARE, no TPM");
    sign_msg(s, &p, CKK_EC);
    reinit(NO_TPM_TCTI, NULL, NULL);
    s = open_login("nohw");
    ck_assert_msg(count_all(s) == 2, "%lu token objects, expected the fallback pair only",
                  count_all(s));
    ksp_test_finalize();
    capture_end_empty(&cap, "no TPM");
}
END_TEST

/* ---- tpm12 suite ------------------------------------------------------- */

START_TEST(tpm12_falls_back_silently)
{
    struct capture cap;
    CK_SESSION_HANDLE s;
    struct pair rsa, ec;

    capture_begin(&cap);
    reinit(tpm_tcti(), NULL, NULL);
    s = ksp_test_ready("tpm12");
    gen_ok(s, CKK_EC, "ec", true, &ec);
    check_in_soft(s, &ec, "tpm-1.2", "EC, TPM 1.2");
    sign_msg(s, &ec, CKK_EC);
    gen_ok(s, CKK_RSA, "rsa", false, &rsa);
    check_in_soft(s, &rsa, "tpm-1.2", "RSA, TPM 1.2");
    sign_msg(s, &rsa, CKK_RSA);
    KSP_ASSERT_RV2(gen(s, CKK_EC, "hw", false, true, &ec), CKR_DEVICE_ERROR,
                   CKR_TEMPLATE_INCONSISTENT);
    reinit(tpm_tcti(), NULL, NULL);
    s = open_login("tpm12");
    ec = find_pair(s, "ec");
    sign_msg(s, &ec, CKK_EC);
    ksp_test_finalize();
    capture_end_empty(&cap, "TPM 1.2");
}
END_TEST

/* ---- suites -------------------------------------------------------------- */

static Suite *main_suite(void)
{
    Suite *s = suite_create("p11tpm-main");
    TCase *tc = tcase_create("shared");

    tcase_add_unchecked_fixture(tc, shared_setup, ksp_test_base_teardown);
    tcase_add_checked_fixture(tc, shared_child_setup, tpm_teardown);
    tcase_set_timeout(tc, KSP_TEST_TIMEOUT);
    tcase_add_test(tc, keys_are_in_the_tpm);
    tcase_add_test(tc, rsa_sign_mechanisms);
    tcase_add_test(tc, rsa_decrypt_mechanisms);
    tcase_add_test(tc, ec_sign_mechanisms);
    tcase_add_test(tc, ecdh_agrees_with_openssl);
    suite_add_tcase(s, tc);

    add_tcase(s, "policy", true, &tc);
    tcase_add_test(tc, denied_then_allowed);
    tcase_add_test(tc, allowed_then_denied);
    tcase_add_test(tc, rule_rsa_keygen_scope);
    tcase_add_test(tc, rule_ecc_sign_scope);
    tcase_add_test(tc, config_refuses_software_tpm);
    tcase_add_test(tc, require_hardware_with_tpm);
    tcase_add_test(tc, require_hardware_without_tpm);
    return s;
}

int main(int argc, char **argv)
{
    const char *which = argc > 1 ? argv[1] : "main";
    Suite *s = NULL;
    TCase *tc = NULL;

    if (strcmp(which, "main") == 0) {
        s = main_suite();
    } else if (strcmp(which, "tpm12") == 0) {
        s = suite_create("p11tpm-tpm12");
        add_tcase(s, "tpm12", false, &tc);
        tcase_add_test(tc, tpm12_falls_back_silently);
    } else {
        fprintf(stderr, "usage: %s main|tpm12\n", argv[0]);
        return 2;
    }
    return run_suite(s);
}
