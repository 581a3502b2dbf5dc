/*
 * TPM keys are noDA (tpm/tpm_keys.c): a dictionary-attack lockout caused by
 * PIN guessing stops new logins (the PIN-sealed wrapping key is
 * DA-protected) but not an application that logged in before. Against
 * swtpm without a resource manager, run by tests/integration/tpm_noda.sh:
 *   process A (this test)   logs in, keeps its session, signs (RSA + EC)
 *   process B (fork child)  guesses PINs until CKR_PIN_LOCKED, sees the flag
 *   process A               still signs; OpenSSL verifies; flags say locked
 *   process C (fork child)  C_Login with the right PIN: CKR_PIN_LOCKED
 * Environment: KSP11_ITEST_TCTI, the swtpm TCTI.
 */
#include "p11tpm.h"

#define MAX_GUESSES 64

/* Exit codes of the children say where they failed; details as "# " lines. */
static CK_SESSION_HANDLE child_session(CK_SLOT_ID *slot)
{
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;

    if (P11->C_Initialize(NULL) != CKR_OK) {
        _exit(10);
    }
    *slot = ksp_test_find_slot("noda");
    if (P11->C_OpenSession(*slot, CKF_SERIAL_SESSION, NULL, NULL, &s) != CKR_OK) {
        _exit(11);
    }
    return s;
}

/* Process B: wrong PINs until the TPM locks out. */
static int guess_pins(void)
{
    CK_SLOT_ID slot = 0;
    CK_SESSION_HANDLE s = child_session(&slot);
    CK_RV rv = CKR_OK;
    int n = 0;

    for (n = 0; n < MAX_GUESSES; n++) {
        rv = login_rv(s, CKU_USER, "wrong-guess");
        if (rv != CKR_PIN_INCORRECT) {
            break;
        }
    }
    fprintf(stderr, "# process B: %d wrong PINs, then C_Login -> %s\n", n, ksp_test_rv_name(rv));
    if (rv != CKR_PIN_LOCKED) {
        return 20;
    }
    if (!(ksp_test_token_flags(slot) & CKF_USER_PIN_LOCKED)) {
        return 21;
    }
    return P11->C_Finalize(NULL) == CKR_OK ? 0 : 22;
}

/* Process C: the right PIN, during the lockout. */
static int login_right_pin(void)
{
    CK_SLOT_ID slot = 0;
    CK_SESSION_HANDLE s = child_session(&slot);
    CK_RV rv = login_rv(s, CKU_USER, KSP_TEST_USER_PIN);

    fprintf(stderr, "# process C: C_Login with the right PIN -> %s\n", ksp_test_rv_name(rv));
    if (rv != CKR_PIN_LOCKED) {
        return 30;
    }
    if (!(ksp_test_token_flags(slot) & CKF_USER_PIN_LOCKED)) {
        return 31;
    }
    return P11->C_Finalize(NULL) == CKR_OK ? 0 : 32;
}

static int run_child(int (*fn)(void))
{
    pid_t pid;
    int st = 0;

    fflush(NULL);
    pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        _exit(fn());
    }
    while (waitpid(pid, &st, 0) < 0) {
        ck_assert_msg(errno == EINTR, "waitpid: %s", strerror(errno));
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

START_TEST(lockout_spares_logged_in_session)
{
    CK_SESSION_HANDLE s = ksp_test_ready("noda");
    struct pair rsa, ec;
    CK_FLAGS f;
    int rc;

    gen_ok(s, CKK_RSA, "rk", true, &rsa);
    gen_ok(s, CKK_EC, "ek", true, &ec);
    check_in_tpm(s, &rsa, "RSA key");
    check_in_tpm(s, &ec, "EC key");
    sign_msg(s, &rsa, CKK_RSA);
    sign_msg(s, &ec, CKK_EC);
    ck_assert_uint_eq(tpm_prop("inLockout"), 0);

    rc = run_child(guess_pins);
    ck_assert_msg(rc == 0, "process B (PIN guesser) exit %d (see guess_pins)", rc);
    ck_assert_msg(tpm_prop("inLockout") == 1, "the TPM is not in lockout after process B");
    f = ksp_test_token_flags(ksp_t.slot);
    ck_assert_msg(f & CKF_USER_PIN_LOCKED, "process A: flags 0x%lx during lockout", f);

    /* Process A signs on with both keys, over its existing login. */
    for (int i = 0; i < 3; i++) {
        sign_msg(s, &rsa, CKK_RSA);
        sign_msg(s, &ec, CKK_EC);
    }
    {
        CK_RSA_PKCS_PSS_PARAMS pp = {CKM_SHA256, CKG_MGF1_SHA256, 32};
        CK_MECHANISM pss = {CKM_SHA256_RSA_PKCS_PSS, &pp, sizeof(pp)};

        sign_check(s, &rsa, &pss, (const uint8_t *)MSG, strlen(MSG));
    }

    rc = run_child(login_right_pin);
    ck_assert_msg(rc == 0, "process C (new login) exit %d (see login_right_pin)", rc);
    /* ... and A is still unaffected. */
    sign_msg(s, &ec, CKK_EC);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("noda");
    TCase *tc = NULL;

    add_tcase(s, "noda", true, &tc);
    tcase_add_test(tc, lockout_spares_logged_in_session);
    return run_suite(s);
}
