/*
 * The store under hostile conditions, end to end through the API (driven by
 * tests/faults/store_faults.sh, which prepares the conditions):
 *
 *   fault_store setup LABEL NDATA     token LABEL with NDATA data objects and an
 *                                     EC key pair "key" (labels encode digests)
 *   fault_store fill LABEL            the store is on a full file system: create
 *                                     objects until one fails; it must fail
 *                                     with CKR_DEVICE_MEMORY, leave no trace, and
 *                                     everything written before must reload;
 *                                     destroying works on the full disk and
 *                                     frees room for a new object
 *   fault_store readonly LABEL        the store is read-only: login, find, sign
 *                                     work; every token write is refused with
 *                                     CKR_TOKEN_WRITE_PROTECTED (or, if the token
 *                                     says CKF_WRITE_PROTECTED, R/W sessions are
 *                                     refused as PKCS#11 3.0 §5.6 says); session
 *                                     objects still work
 *   fault_store check LABEL NDATA     the token opens, logs in, shows exactly
 *                                     NDATA intact data objects (others skipped)
 *                                     and the key still signs
 *   fault_store absent LABEL          no token LABEL, but the module works
 *
 * Exit 0 when all holds, 1 with a message otherwise.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fl.h"

static CK_OBJECT_CLASS data_cls = CKO_DATA;

static CK_ULONG count_data(CK_SESSION_HANDLE s, bool check)
{
    CK_ATTRIBUTE t = {CKA_CLASS, &data_cls, sizeof(data_cls)};
    CK_OBJECT_HANDLE *h = NULL;
    CK_ULONG n = 0;
    FL_OK(fl_find(s, &t, 1, &h, &n));
    for (CK_ULONG i = 0; check && i < n; i++) {
        const char *why = NULL;
        if (!fl_data_consistent(s, h[i], &why))
            fl_fail("data object %lu: %s", (unsigned long)h[i], why);
    }
    free(h);
    return n;
}

static CK_RV new_data(CK_SESSION_HANDLE s, size_t len, bool token, CK_OBJECT_HANDLE *h)
{
    uint8_t v[4096];
    if (len > sizeof(v))
        len = sizeof(v);
    for (size_t i = 0; i < len; i++)
        v[i] = (uint8_t)fl_rand();
    return fl_create_data(s, v, len, fl_rand() % 100000, token, h);
}

static CK_OBJECT_HANDLE find_key(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls)
{
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_LABEL, "key", 3}};
    CK_OBJECT_HANDLE *h = NULL, r;
    CK_ULONG n = 0;
    FL_OK(fl_find(s, t, 2, &h, &n));
    if (n != 1)
        fl_fail("%lu objects of class %lu labelled 'key', expected 1", (unsigned long)n,
                (unsigned long)cls);
    r = h[0];
    free(h);
    return r;
}

/* The key pair signs and OpenSSL verifies with the public key read via the API. */
static void check_sign(CK_SESSION_HANDLE s)
{
    CK_OBJECT_HANDLE priv = find_key(s, CKO_PRIVATE_KEY), pub = find_key(s, CKO_PUBLIC_KEY);
    uint8_t sig[256];
    CK_ULONG sl = sizeof(sig);
    static const uint8_t msg[] = "signed from a hostile store";
    FL_OK(fl_sign(s, priv, CKK_EC, msg, sizeof(msg), sig, &sl));
    EVP_PKEY *pk = fl_pubkey(s, pub);
    if (!pk || !fl_verify(pk, msg, sizeof(msg), sig, sl))
        fl_fail("signature does not verify");
    EVP_PKEY_free(pk);
}

static int do_setup(const char *label, int ndata)
{
    CK_OBJECT_HANDLE h, pub, priv;
    CK_SLOT_ID slot = fl_make_token(label);
    CK_SESSION_HANDLE s = fl_open_user(slot, true);
    for (int i = 0; i < ndata; i++)
        FL_OK(new_data(s, 16 + fl_rand() % 200, true, &h));
    FL_OK(fl_gen_ec(s, "key", true, &pub, &priv));
    check_sign(s);
    return 0;
}

static int do_check(const char *label, CK_ULONG want)
{
    CK_SESSION_HANDLE s = fl_open_user(fl_find_slot(label), false);
    CK_ULONG n = count_data(s, true);
    if (n != want)
        fl_fail("%lu data objects, expected %lu", (unsigned long)n, (unsigned long)want);
    check_sign(s);
    printf("token %s: %lu intact data objects, key signs\n", label, (unsigned long)n);
    return 0;
}

static int do_absent(const char *label)
{
    CK_SLOT_ID slot;
    CK_INFO info;
    FL_OK(FLP->C_GetInfo(&info));
    if (fl_slot_by_label(label, &slot))
        fl_fail("token %s is listed", label);
    return 0;
}

static int do_fill(const char *label)
{
    CK_SLOT_ID slot = fl_find_slot(label);
    CK_SESSION_HANDLE s = fl_open_user(slot, true);
    CK_ULONG before = count_data(s, true), made = 0;
    CK_OBJECT_HANDLE h, last = CK_INVALID_HANDLE;
    CK_RV rv = CKR_OK;
    for (int i = 0; i < 100000; i++) {
        rv = new_data(s, 3000, true, &h);
        if (rv != CKR_OK)
            break;
        last = h;
        made++;
    }
    if (rv != CKR_DEVICE_MEMORY)
        fl_fail("creating on a full disk: %s after %lu objects, expected CKR_DEVICE_MEMORY",
                fl_rv(rv), (unsigned long)made);
    if (made == 0)
        fl_fail("the file system was full before the test started");
    /* The same process still sees exactly what was written. */
    CK_ULONG now = count_data(s, true);
    if (now != before + made)
        fl_fail("this process sees %lu data objects, expected %lu", (unsigned long)now,
                (unsigned long)(before + made));
    /* Reading, logging in and signing need no space. */
    check_sign(s);
    fl_reinit();
    slot = fl_find_slot(label);
    s = fl_open_user(slot, true);
    now = count_data(s, true);
    if (now != before + made)
        fl_fail("after reload %lu data objects, expected %lu", (unsigned long)now,
                (unsigned long)(before + made));
    check_sign(s);
    /* Wrong PINs on a full disk: refused, and the right one still works. */
    CK_SESSION_HANDLE s2 = fl_open(slot, false);
    FL_OK(FLP->C_Logout(s));
    rv = fl_login_rv(s2, CKU_USER, "0000");
    if (rv == CKR_OK)
        fl_fail("a wrong PIN logged in on a full disk");
    FL_OK(fl_login_rv(s2, CKU_USER, FL_USER_PIN));
    /* Deleting works on a full disk and makes room. */
    CK_ATTRIBUTE t = {CKA_CLASS, &data_cls, sizeof(data_cls)};
    CK_OBJECT_HANDLE *all = NULL;
    CK_ULONG n = 0;
    FL_OK(fl_find(s, &t, 1, &all, &n));
    for (CK_ULONG i = 0; i < n && i < 3; i++) {
        rv = FLP->C_DestroyObject(s, all[i]);
        if (rv != CKR_OK)
            fl_fail("C_DestroyObject on a full disk: %s", fl_rv(rv));
    }
    free(all);
    (void)last;
    FL_OK(new_data(s, 100, true, &h));
    fl_reinit();
    s = fl_open_user(fl_find_slot(label), false);
    now = count_data(s, true);
    CK_ULONG want = before + made - (n < 3 ? n : 3) + 1;
    if (now != want)
        fl_fail("after deleting and creating: %lu data objects, expected %lu", (unsigned long)now,
                (unsigned long)want);
    printf("full disk after %lu objects: CKR_DEVICE_MEMORY, state intact, delete works\n",
           (unsigned long)made);
    return 0;
}

static void expect_wp(const char *what, CK_RV rv)
{
    if (rv != CKR_TOKEN_WRITE_PROTECTED)
        fl_fail("%s on a read-only store: %s, expected CKR_TOKEN_WRITE_PROTECTED", what, fl_rv(rv));
}

static int do_readonly(const char *label)
{
    CK_SLOT_ID slot = fl_find_slot(label);
    CK_TOKEN_INFO ti;
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    CK_OBJECT_HANDLE h, pub, priv;
    FL_OK(FLP->C_GetTokenInfo(slot, &ti));
    if (ti.flags & CKF_WRITE_PROTECTED) {
        /* PKCS#11 3.0 §5.6 C_OpenSession: R/W on a write-protected token. */
        CK_RV rv = FLP->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s);
        if (rv != CKR_TOKEN_WRITE_PROTECTED)
            fl_fail("R/W session on a CKF_WRITE_PROTECTED token: %s", fl_rv(rv));
        s = fl_open_user(slot, false);
        printf("token flags CKF_WRITE_PROTECTED; R/W sessions refused\n");
    } else {
        s = fl_open_user(slot, true);
        printf("token flags without CKF_WRITE_PROTECTED; writes checked one by one\n");
    }
    CK_ULONG n = count_data(s, true);
    check_sign(s);
    if (!(ti.flags & CKF_WRITE_PROTECTED)) {
        CK_ATTRIBUTE t = {CKA_CLASS, &data_cls, sizeof(data_cls)};
        CK_OBJECT_HANDLE *all = NULL;
        CK_ULONG na = 0;
        expect_wp("C_CreateObject", new_data(s, 50, true, &h));
        expect_wp("C_GenerateKeyPair", fl_gen_ec(s, "ro", true, &pub, &priv));
        FL_OK(fl_find(s, &t, 1, &all, &na));
        if (na == 0)
            fl_fail("no data objects to modify");
        CK_ATTRIBUTE lab = {CKA_LABEL, "changed", 7};
        expect_wp("C_SetAttributeValue", FLP->C_SetAttributeValue(s, all[0], &lab, 1));
        expect_wp("C_DestroyObject", FLP->C_DestroyObject(s, all[0]));
        free(all);
        expect_wp("C_SetPIN",
                  FLP->C_SetPIN(s, (CK_UTF8CHAR_PTR)FL_USER_PIN, 4, (CK_UTF8CHAR_PTR) "5555", 4));
        /* Session objects live in memory: still fine. */
        FL_OK(new_data(s, 50, false, &h));
        FL_OK(fl_gen_ec(s, "ro-session", false, &pub, &priv));
        FL_OK(FLP->C_DestroyObject(s, h));
    }
    /* A wrong PIN cannot be counted here: refused all the same. */
    CK_SESSION_HANDLE s2 = fl_open(slot, false);
    FL_OK(FLP->C_Logout(s));
    CK_RV rv = fl_login_rv(s2, CKU_USER, "0000");
    if (rv == CKR_OK)
        fl_fail("a wrong PIN logged in on a read-only store");
    printf("wrong PIN on a read-only store: %s\n", fl_rv(rv));
    FL_OK(fl_login_rv(s2, CKU_USER, FL_USER_PIN));
    if (count_data(s, true) != n)
        fl_fail("the object count changed");
    fl_reinit();
    s = fl_open_user(fl_find_slot(label), false);
    if (count_data(s, true) != n)
        fl_fail("the object count changed after reload");
    check_sign(s);
    return 0;
}

int main(int argc, char **argv)
{
    fl_set_prog(argv[0]);
    if (argc < 3)
        fl_die("usage: fault_store setup|fill|readonly|check|absent LABEL [N]");
    const char *mode = argv[1], *label = argv[2];
    int n = argc > 3 ? atoi(argv[3]) : 0;
    int rc;
    fl_initialize();
    if (!strcmp(mode, "setup"))
        rc = do_setup(label, n);
    else if (!strcmp(mode, "fill"))
        rc = do_fill(label);
    else if (!strcmp(mode, "readonly"))
        rc = do_readonly(label);
    else if (!strcmp(mode, "check"))
        rc = do_check(label, (CK_ULONG)n);
    else if (!strcmp(mode, "absent"))
        rc = do_absent(label);
    else
        fl_die("unknown mode %s", mode);
    fl_finalize();
    return rc;
}
