/*
 * API suite, session and login functions (PKCS#11 3.0 §5.6, §6.7 session
 * states): open/close, the session state table for user and SO, login errors,
 * C_InitPIN/C_SetPIN, PIN counters and lockout (persisting across processes),
 * and PIN-less tokens as behaviour.md defines them.
 */
#include "testlib.h"

#include <stdio.h>
#include <string.h>

#define BAD_SESSION ((CK_SESSION_HANDLE)0x7ffff00dUL)

#define PIN_FLAGS                                                                                  \
    (CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_LOCKED |                       \
     CKF_SO_PIN_COUNT_LOW | CKF_SO_PIN_FINAL_TRY | CKF_SO_PIN_LOCKED)

static CK_SLOT_ID token_with_pin(const char *label)
{
    CK_SLOT_ID slot = ksp_test_init_token(label);

    ksp_test_init_user_pin(slot, KSP_TEST_USER_PIN);
    return slot;
}

static void assert_state(CK_SESSION_HANDLE s, CK_STATE want, const char *when)
{
    CK_STATE got = ksp_test_state(s);

    ck_assert_msg(got == want, "%s: session %lu in state %lu, expected %lu", when, s, got, want);
}

static CK_RV login(CK_SESSION_HANDLE s, CK_USER_TYPE u, const char *pin)
{
    return P11->C_Login(s, u, (CK_UTF8CHAR_PTR)pin, strlen(pin));
}

static bool contains(const CK_SESSION_HANDLE *v, size_t n, CK_SESSION_HANDLE h)
{
    for (size_t i = 0; i < n; i++) {
        if (v[i] == h) {
            return true;
        }
    }
    return false;
}

START_TEST(test_open_close)
{
    CK_SLOT_ID slot = token_with_pin("open");
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE, seen[8];
    CK_SESSION_INFO si;

    /* PKCS#11 3.0 §5.6: CKF_SERIAL_SESSION must always be set. */
    KSP_ASSERT_RV(P11->C_OpenSession(slot, 0, NULL, NULL, &s), CKR_SESSION_PARALLEL_NOT_SUPPORTED);
    KSP_ASSERT_RV(P11->C_OpenSession(slot, CKF_RW_SESSION, NULL, NULL, &s),
                  CKR_SESSION_PARALLEL_NOT_SUPPORTED);
    KSP_ASSERT_RV(P11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, NULL),
                  CKR_ARGUMENTS_BAD);

    seen[0] = ksp_test_open(slot, false);
    KSP_ASSERT_RV(P11->C_GetSessionInfo(seen[0], NULL), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_OK(P11->C_GetSessionInfo(seen[0], &si));
    ck_assert_uint_eq(si.slotID, slot);
    ck_assert_uint_eq(si.state, CKS_RO_PUBLIC_SESSION);
    ck_assert_uint_eq(si.flags, CKF_SERIAL_SESSION);

    seen[1] = ksp_test_open(slot, true);
    ck_assert(seen[1] != seen[0]);
    KSP_ASSERT_OK(P11->C_GetSessionInfo(seen[1], &si));
    ck_assert_uint_eq(si.slotID, slot);
    ck_assert_uint_eq(si.state, CKS_RW_PUBLIC_SESSION);
    ck_assert_uint_eq(si.flags, CKF_SERIAL_SESSION | CKF_RW_SESSION);

    KSP_ASSERT_OK(P11->C_CloseSession(seen[0]));
    KSP_ASSERT_RV(P11->C_CloseSession(seen[0]), CKR_SESSION_HANDLE_INVALID);
    KSP_ASSERT_RV(P11->C_GetSessionInfo(seen[0], &si), CKR_SESSION_HANDLE_INVALID);
    KSP_ASSERT_OK(P11->C_GetSessionInfo(seen[1], &si));
    KSP_ASSERT_OK(P11->C_CloseSession(seen[1]));

    /* Handles are never reused within a process. */
    for (size_t i = 2; i < 8; i++) {
        s = ksp_test_open(slot, i % 2 == 0);
        ck_assert_msg(!contains(seen, i, s), "session handle %lu reused", s);
        seen[i] = s;
        if (i % 3 == 0) {
            KSP_ASSERT_OK(P11->C_CloseSession(s));
        }
    }
}
END_TEST

START_TEST(test_states_user)
{
    CK_SLOT_ID slot = token_with_pin("states");
    CK_SESSION_HANDLE ro = ksp_test_open(slot, false);
    CK_SESSION_HANDLE rw = ksp_test_open(slot, true);
    CK_SESSION_HANDLE ro2, rw2;

    assert_state(ro, CKS_RO_PUBLIC_SESSION, "before login");
    assert_state(rw, CKS_RW_PUBLIC_SESSION, "before login");
    /* A user may log in through a read-only session; login is per application. */
    KSP_ASSERT_OK(login(ro, CKU_USER, KSP_TEST_USER_PIN));
    assert_state(ro, CKS_RO_USER_FUNCTIONS, "user login");
    assert_state(rw, CKS_RW_USER_FUNCTIONS, "user login");
    ro2 = ksp_test_open(slot, false);
    rw2 = ksp_test_open(slot, true);
    assert_state(ro2, CKS_RO_USER_FUNCTIONS, "opened after user login");
    assert_state(rw2, CKS_RW_USER_FUNCTIONS, "opened after user login");
    KSP_ASSERT_OK(P11->C_Logout(rw2));
    assert_state(ro, CKS_RO_PUBLIC_SESSION, "logout");
    assert_state(rw, CKS_RW_PUBLIC_SESSION, "logout");
    assert_state(ro2, CKS_RO_PUBLIC_SESSION, "logout");
    assert_state(rw2, CKS_RW_PUBLIC_SESSION, "logout");
}
END_TEST

START_TEST(test_states_so)
{
    CK_SLOT_ID slot = token_with_pin("so-states");
    CK_SESSION_HANDLE a = ksp_test_open(slot, true);
    CK_SESSION_HANDLE b = ksp_test_open(slot, true);
    CK_SESSION_HANDLE c, r = CK_INVALID_HANDLE;

    KSP_ASSERT_OK(login(a, CKU_SO, KSP_TEST_SO_PIN));
    assert_state(a, CKS_RW_SO_FUNCTIONS, "SO login");
    assert_state(b, CKS_RW_SO_FUNCTIONS, "SO login");
    c = ksp_test_open(slot, true);
    assert_state(c, CKS_RW_SO_FUNCTIONS, "opened after SO login");
    /* PKCS#11 3.0 §5.6: no read-only session while the SO is logged in. */
    KSP_ASSERT_RV(P11->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &r),
                  CKR_SESSION_READ_WRITE_SO_EXISTS);
    KSP_ASSERT_OK(P11->C_Logout(b));
    assert_state(a, CKS_RW_PUBLIC_SESSION, "SO logout");
    assert_state(c, CKS_RW_PUBLIC_SESSION, "SO logout");
    r = ksp_test_open(slot, false);
    assert_state(r, CKS_RO_PUBLIC_SESSION, "after SO logout");
}
END_TEST

START_TEST(test_so_login_ro_exists)
{
    CK_SLOT_ID slot = token_with_pin("ro-exists");
    CK_SESSION_HANDLE ro = ksp_test_open(slot, false);
    CK_SESSION_HANDLE rw = ksp_test_open(slot, true);

    KSP_ASSERT_RV(login(rw, CKU_SO, KSP_TEST_SO_PIN), CKR_SESSION_READ_ONLY_EXISTS);
    KSP_ASSERT_RV(login(ro, CKU_SO, KSP_TEST_SO_PIN), CKR_SESSION_READ_ONLY_EXISTS);
    assert_state(rw, CKS_RW_PUBLIC_SESSION, "refused SO login");
    KSP_ASSERT_OK(P11->C_CloseSession(ro));
    KSP_ASSERT_OK(login(rw, CKU_SO, KSP_TEST_SO_PIN));
    assert_state(rw, CKS_RW_SO_FUNCTIONS, "SO login");
}
END_TEST

START_TEST(test_login_errors)
{
    CK_SLOT_ID fresh = ksp_test_init_token("no-user-pin");
    CK_SLOT_ID slot = token_with_pin("login");
    CK_SESSION_HANDLE a = ksp_test_open(slot, true);
    CK_SESSION_HANDLE b = ksp_test_open(slot, true);
    CK_SESSION_HANDLE f = ksp_test_open(fresh, true);

    KSP_ASSERT_RV(login(f, CKU_USER, KSP_TEST_USER_PIN), CKR_USER_PIN_NOT_INITIALIZED);
    KSP_ASSERT_RV(P11->C_Login(a, 7, (CK_UTF8CHAR_PTR) "1234", 4), CKR_USER_TYPE_INVALID);
    KSP_ASSERT_RV(P11->C_Login(a, CKU_USER, NULL, 4), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(login(a, CKU_USER, "9999"), CKR_PIN_INCORRECT);
    KSP_ASSERT_RV(login(BAD_SESSION, CKU_USER, KSP_TEST_USER_PIN), CKR_SESSION_HANDLE_INVALID);

    KSP_ASSERT_OK(login(a, CKU_USER, KSP_TEST_USER_PIN));
    KSP_ASSERT_RV(login(a, CKU_USER, KSP_TEST_USER_PIN), CKR_USER_ALREADY_LOGGED_IN);
    KSP_ASSERT_RV(login(b, CKU_USER, KSP_TEST_USER_PIN), CKR_USER_ALREADY_LOGGED_IN);
    KSP_ASSERT_RV(login(b, CKU_SO, KSP_TEST_SO_PIN), CKR_USER_ANOTHER_ALREADY_LOGGED_IN);
    assert_state(b, CKS_RW_USER_FUNCTIONS, "after refused SO login");
    KSP_ASSERT_OK(P11->C_Logout(a));

    KSP_ASSERT_OK(login(b, CKU_SO, KSP_TEST_SO_PIN));
    KSP_ASSERT_RV(login(a, CKU_SO, KSP_TEST_SO_PIN), CKR_USER_ALREADY_LOGGED_IN);
    KSP_ASSERT_RV(login(a, CKU_USER, KSP_TEST_USER_PIN), CKR_USER_ANOTHER_ALREADY_LOGGED_IN);
    assert_state(a, CKS_RW_SO_FUNCTIONS, "after refused user login");
    KSP_ASSERT_OK(P11->C_Logout(a));
}
END_TEST

START_TEST(test_logout)
{
    CK_SLOT_ID slot = token_with_pin("logout");
    CK_SESSION_HANDLE s = ksp_test_open(slot, false);

    KSP_ASSERT_RV(P11->C_Logout(s), CKR_USER_NOT_LOGGED_IN);
    KSP_ASSERT_OK(login(s, CKU_USER, KSP_TEST_USER_PIN));
    KSP_ASSERT_OK(P11->C_Logout(s));
    KSP_ASSERT_RV(P11->C_Logout(s), CKR_USER_NOT_LOGGED_IN);
    KSP_ASSERT_RV(P11->C_Logout(BAD_SESSION), CKR_SESSION_HANDLE_INVALID);
}
END_TEST

START_TEST(test_close_all_logs_out)
{
    CK_SLOT_ID slot = token_with_pin("closeall");
    CK_SLOT_ID other = token_with_pin("untouched");
    CK_SESSION_HANDLE a = ksp_test_open(slot, true);
    CK_SESSION_HANDLE b = ksp_test_open(slot, false);
    CK_SESSION_HANDLE o = ksp_test_open(other, false);
    CK_SESSION_HANDLE s;
    CK_SESSION_INFO si;

    KSP_ASSERT_OK(login(o, CKU_USER, KSP_TEST_USER_PIN));
    KSP_ASSERT_OK(login(a, CKU_USER, KSP_TEST_USER_PIN));
    KSP_ASSERT_OK(P11->C_CloseAllSessions(slot));
    KSP_ASSERT_RV(P11->C_GetSessionInfo(a, &si), CKR_SESSION_HANDLE_INVALID);
    KSP_ASSERT_RV(P11->C_GetSessionInfo(b, &si), CKR_SESSION_HANDLE_INVALID);
    /* Another token's sessions and login survive. */
    assert_state(o, CKS_RO_USER_FUNCTIONS, "other token after C_CloseAllSessions");

    s = ksp_test_open(slot, false);
    assert_state(s, CKS_RO_PUBLIC_SESSION, "after C_CloseAllSessions");
    KSP_ASSERT_RV(P11->C_Logout(s), CKR_USER_NOT_LOGGED_IN);

    /* PKCS#11 3.0 §5.6: closing the last session logs the user out too. */
    KSP_ASSERT_OK(login(s, CKU_USER, KSP_TEST_USER_PIN));
    KSP_ASSERT_OK(P11->C_CloseSession(s));
    s = ksp_test_open(slot, true);
    assert_state(s, CKS_RW_PUBLIC_SESSION, "after closing the last session");
}
END_TEST

START_TEST(test_invalid_handles)
{
    CK_SLOT_ID slot = token_with_pin("handles");
    CK_SESSION_HANDLE closed = ksp_test_open(slot, true);
    CK_SESSION_HANDLE live = ksp_test_open(slot, true);
    CK_SESSION_HANDLE bad[3];
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_BBOOL no = CK_FALSE;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_TOKEN, &no, sizeof(no)}};
    CK_MECHANISM dm = {CKM_SHA256, NULL, 0};
    CK_OBJECT_HANDLE h;
    CK_SESSION_INFO si;
    CK_BYTE buf[32];
    CK_OBJECT_HANDLE data;

    data = ksp_test_create_data(live, "d", false, false);
    KSP_ASSERT_OK(P11->C_CloseSession(closed));
    bad[0] = CK_INVALID_HANDLE;
    bad[1] = BAD_SESSION;
    bad[2] = closed;
    for (int i = 0; i < 3; i++) {
        CK_SESSION_HANDLE s = bad[i];

        KSP_ASSERT_RV(P11->C_GetSessionInfo(s, &si), CKR_SESSION_HANDLE_INVALID);
        KSP_ASSERT_RV(P11->C_CloseSession(s), CKR_SESSION_HANDLE_INVALID);
        KSP_ASSERT_RV(login(s, CKU_USER, KSP_TEST_USER_PIN), CKR_SESSION_HANDLE_INVALID);
        KSP_ASSERT_RV(P11->C_Logout(s), CKR_SESSION_HANDLE_INVALID);
        KSP_ASSERT_RV(P11->C_InitPIN(s, (CK_UTF8CHAR_PTR) "5678", 4), CKR_SESSION_HANDLE_INVALID);
        KSP_ASSERT_RV(P11->C_SetPIN(s, (CK_UTF8CHAR_PTR) "1234", 4, (CK_UTF8CHAR_PTR) "5678", 4),
                      CKR_SESSION_HANDLE_INVALID);
        KSP_ASSERT_RV(P11->C_CreateObject(s, t, 2, &h), CKR_SESSION_HANDLE_INVALID);
        KSP_ASSERT_RV(P11->C_GetAttributeValue(s, data, t, 1), CKR_SESSION_HANDLE_INVALID);
        KSP_ASSERT_RV(P11->C_FindObjectsInit(s, t, 1), CKR_SESSION_HANDLE_INVALID);
        KSP_ASSERT_RV(P11->C_DigestInit(s, &dm), CKR_SESSION_HANDLE_INVALID);
        KSP_ASSERT_RV(P11->C_SignInit(s, &dm, data), CKR_SESSION_HANDLE_INVALID);
        KSP_ASSERT_RV(P11->C_GenerateRandom(s, buf, sizeof(buf)), CKR_SESSION_HANDLE_INVALID);
    }
    /* The live session is unaffected. */
    assert_state(live, CKS_RW_PUBLIC_SESSION, "after invalid-handle calls");
}
END_TEST

START_TEST(test_init_pin)
{
    CK_SLOT_ID slot = ksp_test_init_token("initpin");
    CK_SESSION_HANDLE ro = ksp_test_open(slot, false);
    CK_SESSION_HANDLE rw = ksp_test_open(slot, true);
    CK_UTF8CHAR long_pin[256];

    memset(long_pin, '7', sizeof(long_pin));
    /* PKCS#11 3.0 §5.6: only in the "R/W SO Functions" state. */
    KSP_ASSERT_RV(P11->C_InitPIN(rw, (CK_UTF8CHAR_PTR) "1234", 4), CKR_USER_NOT_LOGGED_IN);
    KSP_ASSERT_RV(P11->C_InitPIN(ro, (CK_UTF8CHAR_PTR) "1234", 4), CKR_USER_NOT_LOGGED_IN);
    KSP_ASSERT_OK(P11->C_CloseSession(ro));
    KSP_ASSERT_OK(login(rw, CKU_SO, KSP_TEST_SO_PIN));
    KSP_ASSERT_RV(P11->C_InitPIN(rw, (CK_UTF8CHAR_PTR) "123", 3), CKR_PIN_LEN_RANGE);
    KSP_ASSERT_RV(P11->C_InitPIN(rw, long_pin, 256), CKR_PIN_LEN_RANGE);
    ck_assert(!(ksp_test_token_flags(slot) & CKF_USER_PIN_INITIALIZED));
    KSP_ASSERT_OK(P11->C_InitPIN(rw, long_pin, 255));
    ck_assert(ksp_test_token_flags(slot) & CKF_USER_PIN_INITIALIZED);
    KSP_ASSERT_OK(P11->C_Logout(rw));
    KSP_ASSERT_OK(P11->C_Login(rw, CKU_USER, long_pin, 255));
    /* A user session is not an SO session. */
    KSP_ASSERT_RV(P11->C_InitPIN(rw, (CK_UTF8CHAR_PTR) "1234", 4), CKR_USER_NOT_LOGGED_IN);
    KSP_ASSERT_OK(P11->C_Logout(rw));

    KSP_ASSERT_OK(login(rw, CKU_SO, KSP_TEST_SO_PIN));
    KSP_ASSERT_OK(P11->C_InitPIN(rw, (CK_UTF8CHAR_PTR) "4321", 4));
    KSP_ASSERT_OK(P11->C_Logout(rw));
    KSP_ASSERT_RV(P11->C_Login(rw, CKU_USER, long_pin, 255), CKR_PIN_INCORRECT);
    KSP_ASSERT_OK(login(rw, CKU_USER, "4321"));
}
END_TEST

START_TEST(test_set_pin_user)
{
    CK_SLOT_ID slot = token_with_pin("setpin");
    CK_SESSION_HANDLE rw = ksp_test_open(slot, true);
    CK_SESSION_HANDLE ro = ksp_test_open(slot, false);

    KSP_ASSERT_OK(login(rw, CKU_USER, KSP_TEST_USER_PIN));
    /* PKCS#11 3.0 §5.6: C_SetPIN needs a R/W session. */
    KSP_ASSERT_RV(P11->C_SetPIN(ro, (CK_UTF8CHAR_PTR) "1234", 4, (CK_UTF8CHAR_PTR) "5678", 4),
                  CKR_SESSION_READ_ONLY);
    KSP_ASSERT_RV(P11->C_SetPIN(rw, (CK_UTF8CHAR_PTR) "0000", 4, (CK_UTF8CHAR_PTR) "5678", 4),
                  CKR_PIN_INCORRECT);
    KSP_ASSERT_RV(P11->C_SetPIN(rw, (CK_UTF8CHAR_PTR) "1234", 4, (CK_UTF8CHAR_PTR) "567", 3),
                  CKR_PIN_LEN_RANGE);
    KSP_ASSERT_OK(P11->C_SetPIN(rw, (CK_UTF8CHAR_PTR) "1234", 4, (CK_UTF8CHAR_PTR) "5678", 4));
    KSP_ASSERT_OK(P11->C_Logout(rw));
    KSP_ASSERT_RV(login(rw, CKU_USER, "1234"), CKR_PIN_INCORRECT);
    KSP_ASSERT_OK(login(rw, CKU_USER, "5678"));
    KSP_ASSERT_OK(P11->C_Logout(rw));

    /* In a R/W public session C_SetPIN changes the user PIN. */
    KSP_ASSERT_OK(P11->C_SetPIN(rw, (CK_UTF8CHAR_PTR) "5678", 4, (CK_UTF8CHAR_PTR) "24680", 5));
    assert_state(rw, CKS_RW_PUBLIC_SESSION, "C_SetPIN does not log in");
    KSP_ASSERT_OK(login(rw, CKU_USER, "24680"));

    /* The new PIN is what the next process sees. */
    ksp_test_reinit();
    rw = ksp_test_open(ksp_test_find_slot("setpin"), true);
    KSP_ASSERT_RV(login(rw, CKU_USER, "5678"), CKR_PIN_INCORRECT);
    KSP_ASSERT_OK(login(rw, CKU_USER, "24680"));
}
END_TEST

START_TEST(test_set_pin_so)
{
    CK_SLOT_ID slot = token_with_pin("setsopin");
    CK_SESSION_HANDLE rw = ksp_test_open(slot, true);
    CK_UTF8CHAR label[32];

    KSP_ASSERT_OK(login(rw, CKU_SO, KSP_TEST_SO_PIN));
    KSP_ASSERT_RV(
        P11->C_SetPIN(rw, (CK_UTF8CHAR_PTR) "00000000", 8, (CK_UTF8CHAR_PTR) "87654321", 8),
        CKR_PIN_INCORRECT);
    KSP_ASSERT_OK(
        P11->C_SetPIN(rw, (CK_UTF8CHAR_PTR)KSP_TEST_SO_PIN, 8, (CK_UTF8CHAR_PTR) "87654321", 8));
    KSP_ASSERT_OK(P11->C_Logout(rw));
    KSP_ASSERT_RV(login(rw, CKU_SO, KSP_TEST_SO_PIN), CKR_PIN_INCORRECT);
    KSP_ASSERT_OK(login(rw, CKU_SO, "87654321"));
    KSP_ASSERT_OK(P11->C_Logout(rw));
    /* The user PIN is unchanged. */
    KSP_ASSERT_OK(login(rw, CKU_USER, KSP_TEST_USER_PIN));
    KSP_ASSERT_OK(P11->C_CloseSession(rw));
    /* C_InitToken checks the new SO PIN. */
    ksp_test_pad(label, sizeof(label), "setsopin");
    KSP_ASSERT_RV(P11->C_InitToken(slot, (CK_UTF8CHAR_PTR)KSP_TEST_SO_PIN, 8, label),
                  CKR_PIN_INCORRECT);
    KSP_ASSERT_OK(P11->C_InitToken(slot, (CK_UTF8CHAR_PTR) "87654321", 8, label));
}
END_TEST

static void fail_logins(CK_SESSION_HANDLE s, CK_USER_TYPE u, int n)
{
    const char *bad = u == CKU_SO ? "00000000" : "0000";

    for (int i = 0; i < n; i++) {
        KSP_ASSERT_RV(login(s, u, bad), CKR_PIN_INCORRECT);
    }
}

static void assert_pin_flags(CK_SLOT_ID slot, CK_FLAGS want, const char *when)
{
    CK_FLAGS got = ksp_test_token_flags(slot) & PIN_FLAGS;

    ck_assert_msg(got == want, "%s: PIN flags 0x%lx, expected 0x%lx", when, got, want);
}

static int locked_child(void *arg)
{
    CK_SESSION_HANDLE s;
    CK_RV rv;

    (void)arg;
    KSP_ASSERT_OK(P11->C_Initialize(NULL));
    s = ksp_test_open(ksp_test_find_slot("lockout"), true);
    rv = login(s, CKU_USER, KSP_TEST_USER_PIN);
    if (rv != CKR_PIN_LOCKED) {
        fprintf(stderr, "other process: right PIN on a locked token gave %s\n",
                ksp_test_rv_name(rv));
        return 1;
    }
    P11->C_Finalize(NULL);
    return 0;
}

START_TEST(test_user_pin_lockout)
{
    CK_SLOT_ID slot = token_with_pin("lockout");
    CK_SESSION_HANDLE s = ksp_test_open(slot, true);
    CK_RV rv;
    int status;

    assert_pin_flags(slot, 0, "fresh");
    fail_logins(s, CKU_USER, 1);
    assert_pin_flags(slot, CKF_USER_PIN_COUNT_LOW, "after 1 failure");
    fail_logins(s, CKU_USER, 7);
    ck_assert_msg(!(ksp_test_token_flags(slot) & (CKF_USER_PIN_FINAL_TRY | CKF_USER_PIN_LOCKED)),
                  "8 failures: FINAL_TRY/LOCKED set too early");
    fail_logins(s, CKU_USER, 1);
    ck_assert_msg(ksp_test_token_flags(slot) & CKF_USER_PIN_FINAL_TRY,
                  "9 failures (1 attempt left) without CKF_USER_PIN_FINAL_TRY");
    ck_assert(!(ksp_test_token_flags(slot) & CKF_USER_PIN_LOCKED));
    /* The 10th wrong PIN is incorrect; reporting the lock at once is as good. */
    KSP_ASSERT_RV2(login(s, CKU_USER, "0000"), CKR_PIN_INCORRECT, CKR_PIN_LOCKED);
    ck_assert_msg(ksp_test_token_flags(slot) & CKF_USER_PIN_LOCKED,
                  "10 failures without CKF_USER_PIN_LOCKED");
    KSP_ASSERT_RV(login(s, CKU_USER, KSP_TEST_USER_PIN), CKR_PIN_LOCKED);
    assert_state(s, CKS_RW_PUBLIC_SESSION, "locked PIN");

    /* The lock is on the token, not in this process. */
    ksp_test_reinit();
    slot = ksp_test_find_slot("lockout");
    ck_assert(ksp_test_token_flags(slot) & CKF_USER_PIN_LOCKED);
    s = ksp_test_open(slot, true);
    KSP_ASSERT_RV(login(s, CKU_USER, KSP_TEST_USER_PIN), CKR_PIN_LOCKED);
    status = ksp_test_fork(locked_child, NULL);
    ck_assert_msg(status == 0, "other process: status %d", status);

    /* Only the SO unlocks, by setting a new user PIN. */
    KSP_ASSERT_OK(login(s, CKU_SO, KSP_TEST_SO_PIN));
    KSP_ASSERT_OK(P11->C_InitPIN(s, (CK_UTF8CHAR_PTR) "5678", 4));
    KSP_ASSERT_OK(P11->C_Logout(s));
    assert_pin_flags(slot, 0, "after C_InitPIN");
    rv = login(s, CKU_USER, "5678");
    ck_assert_msg(rv == CKR_OK, "login after SO unlock: %s", ksp_test_rv_name(rv));
}
END_TEST

START_TEST(test_user_pin_count_reset_and_persist)
{
    CK_SLOT_ID slot = token_with_pin("count");
    CK_SESSION_HANDLE s = ksp_test_open(slot, true);

    fail_logins(s, CKU_USER, 3);
    assert_pin_flags(slot, CKF_USER_PIN_COUNT_LOW, "after 3 failures");
    KSP_ASSERT_OK(login(s, CKU_USER, KSP_TEST_USER_PIN));
    assert_pin_flags(slot, 0, "success resets the counter");
    KSP_ASSERT_OK(P11->C_Logout(s));

    fail_logins(s, CKU_USER, 9);
    ck_assert(ksp_test_token_flags(slot) & CKF_USER_PIN_FINAL_TRY);
    KSP_ASSERT_OK(login(s, CKU_USER, KSP_TEST_USER_PIN));
    KSP_ASSERT_OK(P11->C_Logout(s));
    /* Had the count not been reset, the 10th failure would lock. */
    fail_logins(s, CKU_USER, 5);
    ck_assert(!(ksp_test_token_flags(slot) & CKF_USER_PIN_LOCKED));

    /* 5 failures here + 4 in the next process = 9: one attempt left. */
    ksp_test_reinit();
    slot = ksp_test_find_slot("count");
    s = ksp_test_open(slot, true);
    ck_assert_msg(ksp_test_token_flags(slot) & CKF_USER_PIN_COUNT_LOW,
                  "failure count lost across processes");
    fail_logins(s, CKU_USER, 4);
    ck_assert_msg(ksp_test_token_flags(slot) & CKF_USER_PIN_FINAL_TRY,
                  "the failure count does not persist across processes");
    ck_assert(!(ksp_test_token_flags(slot) & CKF_USER_PIN_LOCKED));
    KSP_ASSERT_OK(login(s, CKU_USER, KSP_TEST_USER_PIN));
}
END_TEST

START_TEST(test_so_pin_lockout)
{
    CK_SLOT_ID slot = token_with_pin("solock");
    CK_SESSION_HANDLE s = ksp_test_open(slot, true);

    fail_logins(s, CKU_SO, 1);
    assert_pin_flags(slot, CKF_SO_PIN_COUNT_LOW, "after 1 SO failure");
    fail_logins(s, CKU_SO, 8);
    ck_assert_msg(ksp_test_token_flags(slot) & CKF_SO_PIN_FINAL_TRY,
                  "9 SO failures without CKF_SO_PIN_FINAL_TRY");
    ck_assert(!(ksp_test_token_flags(slot) & CKF_SO_PIN_LOCKED));
    KSP_ASSERT_RV2(login(s, CKU_SO, "00000000"), CKR_PIN_INCORRECT, CKR_PIN_LOCKED);
    ck_assert_msg(ksp_test_token_flags(slot) & CKF_SO_PIN_LOCKED,
                  "10 SO failures without CKF_SO_PIN_LOCKED");
    KSP_ASSERT_RV(login(s, CKU_SO, KSP_TEST_SO_PIN), CKR_PIN_LOCKED);
    ck_assert_msg(!(ksp_test_token_flags(slot) & CKF_USER_PIN_LOCKED), "SO lock locked the user");
    KSP_ASSERT_OK(login(s, CKU_USER, KSP_TEST_USER_PIN));
    KSP_ASSERT_OK(P11->C_Logout(s));

    ksp_test_reinit();
    slot = ksp_test_find_slot("solock");
    s = ksp_test_open(slot, true);
    KSP_ASSERT_RV(login(s, CKU_SO, KSP_TEST_SO_PIN), CKR_PIN_LOCKED);
}
END_TEST

START_TEST(test_pinless_token)
{
    CK_SLOT_ID slot = ksp_test_init_token("pinless");
    CK_SESSION_HANDLE rw, ro, so;
    CK_TOKEN_INFO ti;

    ksp_test_init_user_pin(slot, "");
    KSP_ASSERT_OK(P11->C_GetTokenInfo(slot, &ti));
    ck_assert_msg(!(ti.flags & CKF_LOGIN_REQUIRED), "PIN-less token has CKF_LOGIN_REQUIRED");
    ck_assert_msg(ti.flags & CKF_USER_PIN_INITIALIZED, "PIN-less token lacks USER_PIN_INITIALIZED");

    ro = ksp_test_open(slot, false);
    rw = ksp_test_open(slot, true);
    assert_state(ro, CKS_RO_USER_FUNCTIONS, "PIN-less RO session");
    assert_state(rw, CKS_RW_USER_FUNCTIONS, "PIN-less RW session");
    ksp_test_create_data(rw, "secret", true, true);
    ck_assert_uint_eq(ksp_test_count(ro, CKO_DATA, "secret"), 1);
    KSP_ASSERT_RV(login(rw, CKU_USER, KSP_TEST_USER_PIN), CKR_USER_ALREADY_LOGGED_IN);
    KSP_ASSERT_RV(P11->C_Login(rw, CKU_USER, (CK_UTF8CHAR_PTR) "", 0), CKR_USER_ALREADY_LOGGED_IN);
    KSP_ASSERT_OK(P11->C_Logout(rw));
    assert_state(rw, CKS_RW_USER_FUNCTIONS, "C_Logout on a PIN-less token");
    ck_assert_uint_eq(ksp_test_count(ro, CKO_DATA, "secret"), 1);

    /* The SO still logs in with R/W sessions only. */
    KSP_ASSERT_RV(login(rw, CKU_SO, KSP_TEST_SO_PIN), CKR_SESSION_READ_ONLY_EXISTS);
    KSP_ASSERT_OK(P11->C_CloseSession(ro));
    KSP_ASSERT_OK(login(rw, CKU_SO, KSP_TEST_SO_PIN));
    assert_state(rw, CKS_RW_SO_FUNCTIONS, "SO on a PIN-less token");
    so = ksp_test_open(slot, true);
    assert_state(so, CKS_RW_SO_FUNCTIONS, "opened while the SO is logged in");
    KSP_ASSERT_OK(P11->C_Logout(rw));
    KSP_ASSERT_OK(P11->C_CloseAllSessions(slot));

    /* Another process sees the same. */
    ksp_test_reinit();
    slot = ksp_test_find_slot("pinless");
    ro = ksp_test_open(slot, false);
    assert_state(ro, CKS_RO_USER_FUNCTIONS, "PIN-less after reload");
    ck_assert_uint_eq(ksp_test_count(ro, CKO_DATA, "secret"), 1);

    /* Setting a PIN makes it a normal token again. */
    rw = ksp_test_open(slot, true);
    KSP_ASSERT_OK(P11->C_SetPIN(rw, (CK_UTF8CHAR_PTR) "", 0, (CK_UTF8CHAR_PTR) "1234", 4));
    ck_assert_msg(ksp_test_token_flags(slot) & CKF_LOGIN_REQUIRED,
                  "C_SetPIN did not make the token PIN-protected");
    KSP_ASSERT_OK(P11->C_CloseAllSessions(slot));
    ro = ksp_test_open(slot, false);
    assert_state(ro, CKS_RO_PUBLIC_SESSION, "after C_SetPIN");
    ck_assert_uint_eq(ksp_test_count(ro, CKO_DATA, "secret"), 0);
    KSP_ASSERT_RV(login(ro, CKU_USER, "0000"), CKR_PIN_INCORRECT);
    KSP_ASSERT_OK(login(ro, CKU_USER, "1234"));
    ck_assert_uint_eq(ksp_test_count(ro, CKO_DATA, "secret"), 1);
}
END_TEST

START_TEST(test_login_per_token)
{
    CK_SLOT_ID a = token_with_pin("tok-a");
    CK_SLOT_ID b = token_with_pin("tok-b");
    CK_SESSION_HANDLE sa = ksp_test_open(a, true);
    CK_SESSION_HANDLE sb = ksp_test_open(b, true);

    KSP_ASSERT_OK(login(sa, CKU_USER, KSP_TEST_USER_PIN));
    assert_state(sb, CKS_RW_PUBLIC_SESSION, "other token after login");
    KSP_ASSERT_OK(login(sb, CKU_SO, KSP_TEST_SO_PIN));
    assert_state(sa, CKS_RW_USER_FUNCTIONS, "user token after SO login elsewhere");
    KSP_ASSERT_OK(P11->C_Logout(sa));
    assert_state(sb, CKS_RW_SO_FUNCTIONS, "SO token after logout elsewhere");
}
END_TEST

static Suite *session_suite(void)
{
    Suite *su = suite_create("api_session");
    TCase *tc = tcase_create("sessions");
    TCase *tp = tcase_create("pins");

    ksp_test_add_fixtures(tc, true);
    tcase_add_test(tc, test_open_close);
    tcase_add_test(tc, test_states_user);
    tcase_add_test(tc, test_states_so);
    tcase_add_test(tc, test_so_login_ro_exists);
    tcase_add_test(tc, test_login_errors);
    tcase_add_test(tc, test_logout);
    tcase_add_test(tc, test_close_all_logs_out);
    tcase_add_test(tc, test_invalid_handles);
    tcase_add_test(tc, test_login_per_token);
    suite_add_tcase(su, tc);

    ksp_test_add_fixtures(tp, true);
    tcase_add_test(tp, test_init_pin);
    tcase_add_test(tp, test_set_pin_user);
    tcase_add_test(tp, test_set_pin_so);
    tcase_add_test(tp, test_user_pin_lockout);
    tcase_add_test(tp, test_user_pin_count_reset_and_persist);
    tcase_add_test(tp, test_so_pin_lockout);
    tcase_add_test(tp, test_pinless_token);
    suite_add_tcase(su, tp);
    return su;
}

int main(void)
{
    SRunner *sr = srunner_create(session_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
