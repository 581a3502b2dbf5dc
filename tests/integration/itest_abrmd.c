/*
 * The module through tpm2-abrmd (resource manager on a private D-Bus session
 * bus, in front of swtpm), run by tests/integration/tpm_abrmd.sh with
 * KSP11_ITEST_TCTI=tabrmd:bus_type=session: keys made in the TPM, signatures
 * and decryption checked by OpenSSL, two processes signing at the same time,
 * and a child forked after the parent used the TPM signing over its own
 * abrmd connection (tpm/tpm_tabrmd.c: tpm2-tss's GLib-based tabrmd TCTI
 * cannot connect in such a child). Each test ends with the TPM clean as
 * abrmd shows it; the script checks the TPM itself after abrmd stops.
 */
#include <signal.h>

#include <openssl/rsa.h>

#include "p11tpm.h"

#define SIGNS 10

static CK_RV sign_verify_rv(CK_SESSION_HANDLE s, const struct pair *p, EVP_PKEY *pk)
{
    CK_MECHANISM m = {CKM_ECDSA_SHA256, NULL, 0};
    uint8_t sig[256];
    CK_ULONG siglen = sizeof(sig);
    CK_RV rv = sign_rv(s, p->priv, &m, (const uint8_t *)MSG, strlen(MSG), sig, &siglen);

    if (rv == CKR_OK &&
        !ksp_test_ossl_verify(pk, &m, (const uint8_t *)MSG, strlen(MSG), sig, siglen)) {
        rv = CKR_SIGNATURE_INVALID;
    }
    return rv;
}

/* A child process: its own C_Initialize, login and SIGNS verified
 * signatures with the EC key "ek" of token "abrmd". Exit code: where it
 * failed. */
static int child_signs(void)
{
    CK_SLOT_ID slot;
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    struct pair p;
    EVP_PKEY *pk = NULL;
    CK_RV rv;

    if (P11->C_Initialize(NULL) != CKR_OK) {
        return 10;
    }
    slot = ksp_test_find_slot("abrmd");
    if (P11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK) {
        return 11;
    }
    rv = login_rv(s, CKU_USER, KSP_TEST_USER_PIN);
    if (rv != CKR_OK) {
        fprintf(stderr, "# child: C_Login: %s\n", ksp_test_rv_name(rv));
        return 12;
    }
    p = find_pair(s, "ek");
    pk = ksp_test_ossl_pubkey(s, p.pub);
    for (int i = 0; i < SIGNS; i++) {
        rv = sign_verify_rv(s, &p, pk);
        if (rv != CKR_OK) {
            fprintf(stderr, "# child: signature %d: %s\n", i, ksp_test_rv_name(rv));
            return 13;
        }
    }
    EVP_PKEY_free(pk);
    return P11->C_Finalize(NULL) == CKR_OK ? 0 : 14;
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

static CK_SESSION_HANDLE token_with_keys(struct pair *rsa, struct pair *ec)
{
    CK_SESSION_HANDLE s = ksp_test_ready("abrmd");

    gen_ok(s, CKK_RSA, "rk", true, rsa);
    gen_ok(s, CKK_EC, "ek", true, ec);
    check_in_tpm(s, rsa, "RSA key through abrmd");
    check_in_tpm(s, ec, "EC key through abrmd");
    return s;
}

START_TEST(keys_sign_decrypt)
{
    struct pair rsa, ec;
    CK_SESSION_HANDLE s = token_with_keys(&rsa, &ec);
    CK_RSA_PKCS_PSS_PARAMS pp = {CKM_SHA256, CKG_MGF1_SHA256, 32};
    CK_MECHANISM pss = {CKM_SHA256_RSA_PKCS_PSS, &pp, sizeof(pp)};
    CK_MECHANISM ecdsa384 = {CKM_ECDSA_SHA384, NULL, 0};
    CK_RSA_PKCS_OAEP_PARAMS op = {CKM_SHA256, CKG_MGF1_SHA256, CKZ_DATA_SPECIFIED, NULL, 0};
    CK_MECHANISM oaep = {CKM_RSA_PKCS_OAEP, &op, sizeof(op)};
    uint8_t ct[256], pt[256];
    size_t ctlen = sizeof(ct);
    CK_ULONG ptlen = sizeof(pt);
    EVP_PKEY *pk = ksp_test_ossl_pubkey(s, rsa.pub);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(pk, NULL);

    sign_msg(s, &rsa, CKK_RSA);
    sign_check(s, &rsa, &pss, (const uint8_t *)MSG, strlen(MSG));
    sign_msg(s, &ec, CKK_EC);
    sign_check(s, &ec, &ecdsa384, (const uint8_t *)MSG, strlen(MSG));
    /* OpenSSL encrypts, the TPM decrypts. */
    ck_assert(ctx != NULL && EVP_PKEY_encrypt_init(ctx) == 1);
    ck_assert(EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) == 1);
    ck_assert(EVP_PKEY_CTX_set_rsa_oaep_md(ctx, EVP_sha256()) == 1);
    ck_assert(EVP_PKEY_encrypt(ctx, ct, &ctlen, (const uint8_t *)MSG, strlen(MSG)) == 1);
    KSP_ASSERT_OK(P11->C_DecryptInit(s, &oaep, rsa.priv));
    KSP_ASSERT_OK(P11->C_Decrypt(s, ct, ctlen, pt, &ptlen));
    ck_assert(ptlen == strlen(MSG) && memcmp(pt, MSG, ptlen) == 0);
    /* tpm_tabrmd.c: the module reached abrmd without GLib's D-Bus, whose
     * threads would break a later fork of this process. */
    {
        FILE *f = fopen("/proc/self/maps", "r");
        char line[512];

        ck_assert(f != NULL);
        while (fgets(line, sizeof(line), f) != NULL) {
            ck_assert_msg(strstr(line, "libgio-2.0") == NULL && strstr(line, "tcti-tabrmd") == NULL,
                          "GLib's D-Bus is loaded in the process: %s", line);
        }
        fclose(f);
    }
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(pk);
}
END_TEST

/* The parent has used the TPM through abrmd; a forked child initialises
 * and signs over its own connection; the parent signs on. */
START_TEST(fork_child_signs)
{
    struct pair rsa, ec;
    CK_SESSION_HANDLE s = token_with_keys(&rsa, &ec);
    EVP_PKEY *pk = ksp_test_ossl_pubkey(s, ec.pub);
    pid_t pid;
    int rc;

    KSP_ASSERT_OK(sign_verify_rv(s, &ec, pk));
    fflush(NULL);
    pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        _exit(child_signs());
    }
    rc = wait_child(pid, true);
    ck_assert_msg(rc == 0, "forked child exit %d (see child_signs)", rc);
    for (int i = 0; i < 3; i++) {
        KSP_ASSERT_OK(sign_verify_rv(s, &ec, pk));
    }
    EVP_PKEY_free(pk);
}
END_TEST

/* Two processes signing at the same time, each over its own abrmd
 * connection: every signature of both verifies. */
START_TEST(two_processes_sign_concurrently)
{
    struct pair rsa, ec;
    CK_SESSION_HANDLE s = token_with_keys(&rsa, &ec);
    EVP_PKEY *pk = ksp_test_ossl_pubkey(s, ec.pub);
    int rc = -1, ok = 0, bad = 0;
    CK_RV first = CKR_OK;
    pid_t pid;

    fflush(NULL);
    pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        _exit(child_signs());
    }
    for (int i = 0; i < 2000 && rc < 0; i++) {
        CK_RV rv = sign_verify_rv(s, &ec, pk);

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
    fprintf(stderr, "# parent signed %d times while the child signed %d\n", ok, SIGNS);
    ck_assert_msg(rc == 0 && bad == 0,
                  "child exit %d (see child_signs); parent: %d ok, %d failed (first: %s)", rc, ok,
                  bad, ksp_test_rv_name(first));
    EVP_PKEY_free(pk);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("abrmd");
    TCase *tc = NULL;

    add_tcase(s, "abrmd", true, &tc);
    tcase_add_test(tc, keys_sign_decrypt);
    tcase_add_test(tc, fork_child_signs);
    tcase_add_test(tc, two_processes_sign_concurrently);
    return run_suite(s);
}
