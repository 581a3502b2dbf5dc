/*
 * API suite, object management (PKCS#11 3.0 §4, §5.7): data objects,
 * certificates, public and private keys created and generated, session vs
 * token lifetime, private-object visibility, C_GetAttributeValue rules,
 * ksp11's private-key policy (behaviour.md), searching, and concurrent
 * writers in two processes.
 */
#include "testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/obj_mac.h>
#include <openssl/sha.h>
#include <openssl/x509.h>

#define BAD_OBJECT ((CK_OBJECT_HANDLE)0x7ffff00dUL)

static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;

static void assert_bool(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE t, CK_BBOOL want,
                        const char *name)
{
    CK_BBOOL got = ksp_test_get_bool(s, h, t);

    ck_assert_msg(got == want, "%s is %s, expected %s", name, got ? "TRUE" : "FALSE",
                  want ? "TRUE" : "FALSE");
}

static void assert_sensitive(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE t,
                             const char *name)
{
    CK_BYTE buf[1024];
    CK_ATTRIBUTE a = {t, buf, sizeof(buf)};

    KSP_ASSERT_RV(P11->C_GetAttributeValue(s, h, &a, 1), CKR_ATTRIBUTE_SENSITIVE);
    ck_assert_msg(a.ulValueLen == CK_UNAVAILABLE_INFORMATION,
                  "%s: ulValueLen %lu, expected CK_UNAVAILABLE_INFORMATION", name, a.ulValueLen);
}

static void assert_attr_eq(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE t,
                           const void *want, size_t len, const char *name)
{
    uint8_t *v = NULL;
    CK_ULONG n = 0;
    CK_RV rv = ksp_test_get_attr(s, h, t, &v, &n);

    ck_assert_msg(rv == CKR_OK, "%s: %s", name, ksp_test_rv_name(rv));
    ck_assert_msg(n == len && memcmp(v, want, len) == 0, "%s differs (length %lu, expected %zu)",
                  name, n, len);
    free(v);
}

static CK_RV set1(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE t, void *v,
                  CK_ULONG len)
{
    CK_ATTRIBUTE a = {t, v, len};

    return P11->C_SetAttributeValue(s, h, &a, 1);
}

/* ---- data objects -------------------------------------------------------- */

START_TEST(test_data_object)
{
    CK_SESSION_HANDLE s = ksp_test_ready("data");
    CK_OBJECT_HANDLE h = ksp_test_create_data(s, "first", false, false);
    CK_OBJECT_HANDLE c, t, h2;
    CK_OBJECT_CLASS cls = CKO_DATA, cert = CKO_CERTIFICATE;
    CK_ATTRIBUTE copy_label = {CKA_LABEL, "copy", 4};
    CK_ATTRIBUTE copy_token[] = {{CKA_TOKEN, &yes, 1}, {CKA_LABEL, "tcopy", 5}};
    CK_ATTRIBUTE a;

    assert_attr_eq(s, h, CKA_LABEL, "first", 5, "CKA_LABEL");
    assert_attr_eq(s, h, CKA_VALUE, "first", 5, "CKA_VALUE");
    assert_attr_eq(s, h, CKA_APPLICATION, "ksp11-test", 10, "CKA_APPLICATION");
    ck_assert_uint_eq(ksp_test_get_ulong(s, h, CKA_CLASS), CKO_DATA);
    assert_bool(s, h, CKA_TOKEN, CK_FALSE, "CKA_TOKEN");
    assert_bool(s, h, CKA_PRIVATE, CK_FALSE, "CKA_PRIVATE");
    assert_bool(s, h, CKA_MODIFIABLE, CK_TRUE, "default CKA_MODIFIABLE");
    assert_bool(s, h, CKA_COPYABLE, CK_TRUE, "default CKA_COPYABLE");
    assert_bool(s, h, CKA_DESTROYABLE, CK_TRUE, "default CKA_DESTROYABLE");

    KSP_ASSERT_OK(set1(s, h, CKA_LABEL, "renamed", 7));
    assert_attr_eq(s, h, CKA_LABEL, "renamed", 7, "CKA_LABEL after set");
    KSP_ASSERT_RV(set1(s, h, CKA_CLASS, &cert, sizeof(cert)), CKR_ATTRIBUTE_READ_ONLY);
    KSP_ASSERT_RV(set1(s, h, CKA_TOKEN, &yes, 1), CKR_ATTRIBUTE_READ_ONLY);
    assert_bool(s, h, CKA_TOKEN, CK_FALSE, "CKA_TOKEN after refused set");
    KSP_ASSERT_RV(set1(s, BAD_OBJECT, CKA_LABEL, "x", 1), CKR_OBJECT_HANDLE_INVALID);

    KSP_ASSERT_RV(P11->C_CopyObject(s, h, &copy_label, 1, NULL), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_OK(P11->C_CopyObject(s, h, &copy_label, 1, &c));
    ck_assert(c != h);
    assert_attr_eq(s, c, CKA_LABEL, "copy", 4, "copied CKA_LABEL");
    assert_attr_eq(s, c, CKA_VALUE, "first", 5, "copied CKA_VALUE");
    assert_attr_eq(s, h, CKA_LABEL, "renamed", 7, "original after copy");
    KSP_ASSERT_OK(P11->C_CopyObject(s, h, copy_token, 2, &t));
    assert_bool(s, t, CKA_TOKEN, CK_TRUE, "CKA_TOKEN of the token copy");

    KSP_ASSERT_OK(P11->C_DestroyObject(s, h));
    a = (CK_ATTRIBUTE){CKA_CLASS, &cls, sizeof(cls)};
    KSP_ASSERT_RV(P11->C_GetAttributeValue(s, h, &a, 1), CKR_OBJECT_HANDLE_INVALID);
    KSP_ASSERT_RV(P11->C_DestroyObject(s, h), CKR_OBJECT_HANDLE_INVALID);
    KSP_ASSERT_RV(P11->C_CopyObject(s, h, &copy_label, 1, &c), CKR_OBJECT_HANDLE_INVALID);
    /* Handles are never reused within a process. */
    h2 = ksp_test_create_data(s, "second", false, false);
    ck_assert_msg(h2 != h && h2 != c && h2 != t, "object handle %lu reused", h2);
    ck_assert_uint_eq(ksp_test_count(s, CKO_DATA, "renamed"), 0);
    ck_assert_uint_eq(ksp_test_count(s, CKO_DATA, "tcopy"), 1);
}
END_TEST

START_TEST(test_create_errors)
{
    CK_SESSION_HANDLE s = ksp_test_ready("create-errors");
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_ULONG four = 4;
    CK_OBJECT_HANDLE h;
    CK_ATTRIBUTE no_class[] = {{CKA_LABEL, "x", 1}};
    CK_ATTRIBUTE bad_type[] = {{CKA_CLASS, &cls, sizeof(cls)},
                               {CKA_VENDOR_DEFINED | 0x777, "x", 1}};
    CK_ATTRIBUTE bad_bool[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_TOKEN, &four, sizeof(four)}};
    CK_ATTRIBUTE ok[] = {{CKA_CLASS, &cls, sizeof(cls)}};

    KSP_ASSERT_RV(P11->C_CreateObject(s, NULL, 1, &h), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(P11->C_CreateObject(s, ok, 1, NULL), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(P11->C_CreateObject(s, no_class, 1, &h), CKR_TEMPLATE_INCOMPLETE);
    KSP_ASSERT_RV(P11->C_CreateObject(s, bad_type, 2, &h), CKR_ATTRIBUTE_TYPE_INVALID);
    KSP_ASSERT_RV(P11->C_CreateObject(s, bad_bool, 2, &h), CKR_ATTRIBUTE_VALUE_INVALID);
    ck_assert_uint_eq(ksp_test_count(s, CKO_DATA, NULL), 0);
    KSP_ASSERT_OK(P11->C_CreateObject(s, ok, 1, &h));
}
END_TEST

START_TEST(test_policy_attributes)
{
    CK_SESSION_HANDLE s = ksp_test_ready("policy");
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_OBJECT_HANDLE fixed, nocopy, keep, c;
    CK_ATTRIBUTE t1[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_MODIFIABLE, &no, 1}};
    CK_ATTRIBUTE t2[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_COPYABLE, &no, 1}};
    CK_ATTRIBUTE t3[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_DESTROYABLE, &no, 1}};
    CK_ATTRIBUTE relabel = {CKA_LABEL, "copy", 4};

    KSP_ASSERT_OK(P11->C_CreateObject(s, t1, 2, &fixed));
    KSP_ASSERT_OK(P11->C_CreateObject(s, t2, 2, &nocopy));
    KSP_ASSERT_OK(P11->C_CreateObject(s, t3, 2, &keep));
    /* PKCS#11 3.0 §5.1.6 CKR_ACTION_PROHIBITED: the MODIFIABLE/COPYABLE/DESTROYABLE policy. */
    KSP_ASSERT_RV(set1(s, fixed, CKA_LABEL, "x", 1), CKR_ACTION_PROHIBITED);
    KSP_ASSERT_RV(P11->C_CopyObject(s, nocopy, &relabel, 1, &c), CKR_ACTION_PROHIBITED);
    KSP_ASSERT_RV(P11->C_DestroyObject(s, keep), CKR_ACTION_PROHIBITED);
    /* COPYABLE may go TRUE -> FALSE only. */
    KSP_ASSERT_RV(set1(s, nocopy, CKA_COPYABLE, &yes, 1), CKR_ATTRIBUTE_READ_ONLY);
    KSP_ASSERT_OK(P11->C_DestroyObject(s, fixed));
    KSP_ASSERT_OK(P11->C_DestroyObject(s, nocopy));
}
END_TEST

/* ---- finding -------------------------------------------------------------- */

START_TEST(test_find_paging)
{
    CK_SESSION_HANDLE s = ksp_test_ready("find");
    CK_SESSION_HANDLE s2 = ksp_test_open(ksp_t.slot, false);
    CK_OBJECT_HANDLE made[5], got[8], h;
    CK_ULONG n, total = 0;
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_ATTRIBUTE by_label[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_LABEL, "page", 4}};
    CK_ATTRIBUTE by_modulus[] = {{CKA_MODULUS, "\x01", 1}};

    for (int i = 0; i < 5; i++) {
        made[i] = ksp_test_create_data(s, "page", false, false);
    }
    ksp_test_create_data(s, "other", false, false);

    KSP_ASSERT_RV(P11->C_FindObjects(s, got, 2, &n), CKR_OPERATION_NOT_INITIALIZED);
    KSP_ASSERT_RV(P11->C_FindObjectsFinal(s), CKR_OPERATION_NOT_INITIALIZED);
    KSP_ASSERT_RV(P11->C_FindObjectsInit(s, NULL, 1), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_OK(P11->C_FindObjectsInit(s, by_label, 2));
    KSP_ASSERT_RV(P11->C_FindObjectsInit(s, by_label, 2), CKR_OPERATION_ACTIVE);
    /* Another session's search is independent. */
    KSP_ASSERT_OK(P11->C_FindObjectsInit(s2, by_modulus, 1));
    KSP_ASSERT_RV(P11->C_FindObjects(s, NULL, 2, &n), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_RV(P11->C_FindObjects(s, got, 2, NULL), CKR_ARGUMENTS_BAD);
    for (;;) {
        n = 99;
        KSP_ASSERT_OK(P11->C_FindObjects(s, got + total, 2, &n));
        ck_assert_msg(n <= 2, "C_FindObjects returned %lu objects for ulMaxObjectCount 2", n);
        if (n == 0) {
            break;
        }
        total += n;
        ck_assert_msg(total <= 5, "more than 5 objects match");
    }
    ck_assert_uint_eq(total, 5);
    for (int i = 0; i < 5; i++) {
        bool found = false;

        for (CK_ULONG j = 0; j < total; j++) {
            found = found || got[j] == made[i];
        }
        ck_assert_msg(found, "object %lu not found", made[i]);
    }
    KSP_ASSERT_OK(P11->C_FindObjects(s, got, 2, &n));
    ck_assert_uint_eq(n, 0);
    KSP_ASSERT_OK(P11->C_FindObjectsFinal(s));
    KSP_ASSERT_RV(P11->C_FindObjects(s, got, 2, &n), CKR_OPERATION_NOT_INITIALIZED);

    /* An attribute the objects lack matches nothing (no error). */
    KSP_ASSERT_OK(P11->C_FindObjects(s2, &h, 1, &n));
    ck_assert_uint_eq(n, 0);
    KSP_ASSERT_OK(P11->C_FindObjectsFinal(s2));
    /* An empty template matches every visible object. */
    ck_assert_uint_ge(ksp_test_find(s, NULL, 0, NULL, 0), 6);
}
END_TEST

/* ---- lifetime and visibility ---------------------------------------------- */

START_TEST(test_session_vs_token)
{
    CK_SESSION_HANDLE a = ksp_test_ready("lifetime");
    CK_SESSION_HANDLE b = ksp_test_open(ksp_t.slot, true);
    CK_OBJECT_HANDLE sess, tok;
    CK_ATTRIBUTE lbl = {CKA_LABEL, NULL, 0};

    sess = ksp_test_create_data(a, "sess-obj", false, false);
    tok = ksp_test_create_data(a, "tok-obj", true, true);
    /* Session objects belong to the application: visible from b. */
    ck_assert_uint_eq(ksp_test_count(b, CKO_DATA, "sess-obj"), 1);
    KSP_ASSERT_OK(P11->C_GetAttributeValue(b, sess, &lbl, 1));
    KSP_ASSERT_OK(P11->C_CloseSession(a));
    ck_assert_msg(ksp_test_count(b, CKO_DATA, "sess-obj") == 0,
                  "session object outlived its session");
    KSP_ASSERT_RV(P11->C_GetAttributeValue(b, sess, &lbl, 1), CKR_OBJECT_HANDLE_INVALID);
    KSP_ASSERT_OK(P11->C_GetAttributeValue(b, tok, &lbl, 1));

    ksp_test_reinit();
    b = ksp_test_open(ksp_test_find_slot("lifetime"), true);
    ksp_test_login(b, CKU_USER, KSP_TEST_USER_PIN);
    tok = ksp_test_find1(b, CKO_DATA, "tok-obj");
    assert_attr_eq(b, tok, CKA_VALUE, "tok-obj", 7, "persisted CKA_VALUE");
    assert_bool(b, tok, CKA_PRIVATE, CK_TRUE, "persisted CKA_PRIVATE");
    ck_assert_uint_eq(ksp_test_count(b, CKO_DATA, "sess-obj"), 0);
}
END_TEST

START_TEST(test_private_objects_and_logout)
{
    CK_SESSION_HANDLE s = ksp_test_ready("visibility");
    CK_SESSION_HANDLE ro = ksp_test_open(ksp_t.slot, false);
    CK_OBJECT_HANDLE priv, pub, sesspriv, h;
    CK_ATTRIBUTE lbl = {CKA_LABEL, NULL, 0};
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_PRIVATE, &yes, 1}};

    priv = ksp_test_create_data(s, "priv", true, true);
    sesspriv = ksp_test_create_data(s, "sesspriv", false, true);
    pub = ksp_test_create_data(s, "pub", true, false);
    ck_assert_uint_eq(ksp_test_count(ro, CKO_DATA, NULL), 3);

    KSP_ASSERT_OK(P11->C_Logout(s));
    ck_assert_uint_eq(ksp_test_count(ro, CKO_DATA, NULL), 1);
    ck_assert_uint_eq(ksp_test_count(ro, CKO_DATA, "priv"), 0);
    KSP_ASSERT_RV(P11->C_GetAttributeValue(ro, priv, &lbl, 1), CKR_OBJECT_HANDLE_INVALID);
    KSP_ASSERT_RV(P11->C_GetAttributeValue(ro, sesspriv, &lbl, 1), CKR_OBJECT_HANDLE_INVALID);
    KSP_ASSERT_RV(P11->C_DestroyObject(s, priv), CKR_OBJECT_HANDLE_INVALID);
    KSP_ASSERT_OK(P11->C_GetAttributeValue(ro, pub, &lbl, 1));
    /* Private objects need the user. */
    KSP_ASSERT_RV(P11->C_CreateObject(s, t, 2, &h), CKR_USER_NOT_LOGGED_IN);

    ksp_test_login(ro, CKU_USER, KSP_TEST_USER_PIN);
    ck_assert_uint_eq(ksp_test_count(ro, CKO_DATA, "priv"), 1);
}
END_TEST

START_TEST(test_read_only_session)
{
    CK_SESSION_HANDLE rw = ksp_test_ready("readonly");
    CK_SESSION_HANDLE ro = ksp_test_open(ksp_t.slot, false);
    CK_OBJECT_HANDLE tok = ksp_test_create_data(rw, "tok", true, false);
    CK_OBJECT_HANDLE h, pub, priv;
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_ATTRIBUTE tt[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_TOKEN, &yes, 1}};
    CK_ATTRIBUTE st[] = {
        {CKA_CLASS, &cls, sizeof(cls)}, {CKA_TOKEN, &no, 1}, {CKA_PRIVATE, &no, 1}};
    CK_ATTRIBUTE to_token = {CKA_TOKEN, &yes, 1};

    /* PKCS#11 3.0 §5.7: token objects need a R/W session; session objects do not. */
    KSP_ASSERT_RV(P11->C_CreateObject(ro, tt, 2, &h), CKR_SESSION_READ_ONLY);
    KSP_ASSERT_OK(P11->C_CreateObject(ro, st, 3, &h));
    KSP_ASSERT_RV(set1(ro, tok, CKA_LABEL, "x", 1), CKR_SESSION_READ_ONLY);
    KSP_ASSERT_RV(P11->C_DestroyObject(ro, tok), CKR_SESSION_READ_ONLY);
    KSP_ASSERT_RV(P11->C_CopyObject(ro, h, &to_token, 1, &pub), CKR_SESSION_READ_ONLY);
    KSP_ASSERT_RV(ksp_test_gen_keypair(ro, CKM_EC_KEY_PAIR_GEN, NID_X9_62_prime256v1, "ro", true,
                                       NULL, 0, NULL, 0, &pub, &priv),
                  CKR_SESSION_READ_ONLY);
    KSP_ASSERT_OK(set1(ro, h, CKA_LABEL, "session", 7));
    KSP_ASSERT_OK(P11->C_DestroyObject(ro, h));

    /* A public R/O session can make public session objects too. */
    KSP_ASSERT_OK(P11->C_Logout(rw));
    KSP_ASSERT_OK(P11->C_CreateObject(ro, st, 3, &h));
}
END_TEST

START_TEST(test_object_size)
{
    CK_SESSION_HANDLE s = ksp_test_ready("size");
    CK_OBJECT_HANDLE h = ksp_test_create_data(s, "sized", false, false);
    CK_ULONG size = 0;

    KSP_ASSERT_RV(P11->C_GetObjectSize(s, h, NULL), CKR_ARGUMENTS_BAD);
    KSP_ASSERT_OK(P11->C_GetObjectSize(s, h, &size));
    ck_assert_msg(size > 0, "object size 0");
    KSP_ASSERT_RV(P11->C_GetObjectSize(s, BAD_OBJECT, &size), CKR_OBJECT_HANDLE_INVALID);
}
END_TEST

/* ---- certificates ---------------------------------------------------------- */

/* A self-signed certificate for the fixed EC key; DER outputs are malloc'd. */
static void make_cert(uint8_t **der, int *der_len, uint8_t **subj, int *subj_len)
{
    EVP_PKEY *pk = ksp_test_fixed_key(EVP_PKEY_EC);
    X509 *x = X509_new();
    X509_NAME *name = X509_NAME_new();

    ck_assert(x != NULL && name != NULL);
    ck_assert(X509_set_version(x, 2) == 1);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 4711);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)"ksp11 test", -1,
                               -1, 0);
    ck_assert(X509_set_subject_name(x, name) == 1 && X509_set_issuer_name(x, name) == 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    ck_assert(X509_set_pubkey(x, pk) == 1);
    ck_assert(X509_sign(x, pk, EVP_sha256()) > 0);
    *der = NULL;
    *der_len = i2d_X509(x, der);
    *subj = NULL;
    *subj_len = i2d_X509_NAME(name, subj);
    ck_assert(*der_len > 0 && *subj_len > 0);
    X509_NAME_free(name);
    X509_free(x);
    EVP_PKEY_free(pk);
}

START_TEST(test_certificate)
{
    CK_SESSION_HANDLE s = ksp_test_ready("certs");
    CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
    CK_CERTIFICATE_TYPE ct = CKC_X_509;
    uint8_t *der, *subj;
    int der_len, subj_len;
    CK_OBJECT_HANDLE h, found[2];
    CK_ULONG n;

    make_cert(&der, &der_len, &subj, &subj_len);
    {
        CK_ATTRIBUTE t[] = {
            {CKA_CLASS, &cls, sizeof(cls)}, {CKA_CERTIFICATE_TYPE, &ct, sizeof(ct)},
            {CKA_TOKEN, &yes, 1},           {CKA_PRIVATE, &no, 1},
            {CKA_LABEL, "client", 6},       {CKA_ID, "\x42\x43", 2},
            {CKA_SUBJECT, subj, subj_len},  {CKA_VALUE, der, der_len},
        };
        CK_ATTRIBUTE by_id[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_ID, "\x42\x43", 2}};

        KSP_ASSERT_RV(P11->C_CreateObject(s, t + 1, 7, &h), CKR_TEMPLATE_INCOMPLETE);
        /* PKCS#11 3.0 §4.6.3: CKA_CERTIFICATE_TYPE and CKA_SUBJECT are required. */
        {
            CK_ATTRIBUTE nt[] = {t[0], t[2], t[4], t[6], t[7]};
            CK_ATTRIBUTE ns[] = {t[0], t[1], t[2], t[4], t[7]};

            KSP_ASSERT_RV(P11->C_CreateObject(s, nt, 5, &h), CKR_TEMPLATE_INCOMPLETE);
            KSP_ASSERT_RV(P11->C_CreateObject(s, ns, 5, &h), CKR_TEMPLATE_INCOMPLETE);
        }
        KSP_ASSERT_OK(P11->C_CreateObject(s, t, 8, &h));
        assert_attr_eq(s, h, CKA_VALUE, der, (size_t)der_len, "certificate CKA_VALUE");
        assert_attr_eq(s, h, CKA_SUBJECT, subj, (size_t)subj_len, "certificate CKA_SUBJECT");
        ck_assert_uint_eq(ksp_test_get_ulong(s, h, CKA_CERTIFICATE_TYPE), CKC_X_509);
        ck_assert_uint_eq(ksp_test_get_ulong(s, h, CKA_CERTIFICATE_CATEGORY), 0);
        assert_bool(s, h, CKA_TRUSTED, CK_FALSE, "default CKA_TRUSTED");
        n = ksp_test_find(s, by_id, 2, found, 2);
        ck_assert_uint_eq(n, 1);
        ck_assert_uint_eq(found[0], h);

        /* A public token certificate: visible without login in the next process. */
        ksp_test_reinit();
        s = ksp_test_open(ksp_test_find_slot("certs"), false);
        h = ksp_test_find1(s, CKO_CERTIFICATE, "client");
        assert_attr_eq(s, h, CKA_VALUE, der, (size_t)der_len, "persisted certificate");
    }
    OPENSSL_free(der);
    OPENSSL_free(subj);
}
END_TEST

/* ---- imported keys ---------------------------------------------------------- */

static CK_RV sign_once(CK_SESSION_HANDLE s, CK_MECHANISM_TYPE mt, CK_OBJECT_HANDLE key,
                       const char *msg, CK_BYTE *sig, CK_ULONG *siglen)
{
    CK_MECHANISM m = {mt, NULL, 0};
    CK_RV rv = P11->C_SignInit(s, &m, key);

    if (rv != CKR_OK) {
        return rv;
    }
    return P11->C_Sign(s, (CK_BYTE_PTR)msg, strlen(msg), sig, siglen);
}

START_TEST(test_import_public_keys)
{
    CK_SESSION_HANDLE s = ksp_test_ready("pubkeys");
    EVP_PKEY *rsa = ksp_test_fixed_key(EVP_PKEY_RSA);
    EVP_PKEY *ec = ksp_test_fixed_key(EVP_PKEY_EC);
    CK_OBJECT_HANDLE hr = ksp_test_import_public(s, rsa, "rsa-pub", true, NULL, 0);
    CK_OBJECT_HANDLE he = ksp_test_import_public(s, ec, "ec-pub", false, NULL, 0);
    CK_OBJECT_HANDLE copy;
    CK_MECHANISM m;
    uint8_t point[80], der[96], params[16], sig[512];
    size_t plen, dlen, siglen;
    EVP_MD_CTX *ctx;
    CK_ATTRIBUTE relabel = {CKA_LABEL, "copy", 4};

    ck_assert_uint_eq(ksp_test_get_ulong(s, hr, CKA_KEY_TYPE), CKK_RSA);
    assert_bool(s, hr, CKA_LOCAL, CK_FALSE, "CKA_LOCAL of an imported key");
    plen = ksp_test_ec_point(ec, point, sizeof(point));
    dlen = ksp_test_der_octet(point, plen, der, sizeof(der));
    assert_attr_eq(s, he, CKA_EC_POINT, der, dlen, "CKA_EC_POINT");
    assert_attr_eq(s, he, CKA_EC_PARAMS, params,
                   ksp_test_ec_params(NID_X9_62_prime256v1, params, sizeof(params)),
                   "CKA_EC_PARAMS");

    /* The module verifies what OpenSSL signed with the matching private keys. */
    for (int k = 0; k < 2; k++) {
        EVP_PKEY *pk = k == 0 ? rsa : ec;
        CK_OBJECT_HANDLE h = k == 0 ? hr : he;

        m = (CK_MECHANISM){k == 0 ? CKM_SHA256_RSA_PKCS : CKM_ECDSA_SHA256, NULL, 0};
        ctx = EVP_MD_CTX_new();
        siglen = sizeof(sig);
        ck_assert(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pk) == 1);
        ck_assert(EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)"imported", 8) == 1);
        EVP_MD_CTX_free(ctx);
        if (k == 1) {
            /* DER ECDSA-Sig-Value -> r || s for PKCS#11. */
            const unsigned char *p = sig;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)siglen);

            ck_assert(es != NULL);
            BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32);
            BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32);
            siglen = 64;
            ECDSA_SIG_free(es);
        }
        KSP_ASSERT_OK(P11->C_VerifyInit(s, &m, h));
        KSP_ASSERT_OK(P11->C_Verify(s, (CK_BYTE_PTR) "imported", 8, sig, siglen));
    }
    /* Public keys may be copied. */
    KSP_ASSERT_OK(P11->C_CopyObject(s, he, &relabel, 1, &copy));
    assert_attr_eq(s, copy, CKA_EC_POINT, der, dlen, "copied CKA_EC_POINT");
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
}
END_TEST

START_TEST(test_import_private_keys)
{
    CK_SESSION_HANDLE s = ksp_test_ready("privkeys");
    EVP_PKEY *rsa = ksp_test_fixed_key(EVP_PKEY_RSA);
    EVP_PKEY *ec = ksp_test_fixed_key(EVP_PKEY_EC);
    CK_OBJECT_HANDLE hr = ksp_test_import_private(s, rsa, "rsa-priv", true, NULL, 0);
    CK_OBJECT_HANDLE he = ksp_test_import_private(s, ec, "ec-priv", true, NULL, 0);
    static const CK_ATTRIBUTE_TYPE rsa_secret[] = {CKA_PRIVATE_EXPONENT, CKA_PRIME_1,
                                                   CKA_PRIME_2,          CKA_EXPONENT_1,
                                                   CKA_EXPONENT_2,       CKA_COEFFICIENT};
    CK_BYTE sig[512];
    CK_ULONG siglen;
    CK_MECHANISM m;

    for (int k = 0; k < 2; k++) {
        CK_OBJECT_HANDLE h = k == 0 ? hr : he;

        assert_bool(s, h, CKA_SENSITIVE, CK_TRUE, "CKA_SENSITIVE");
        assert_bool(s, h, CKA_EXTRACTABLE, CK_FALSE, "CKA_EXTRACTABLE");
        assert_bool(s, h, CKA_COPYABLE, CK_FALSE, "CKA_COPYABLE");
        assert_bool(s, h, CKA_LOCAL, CK_FALSE, "CKA_LOCAL of an imported key");
        assert_bool(s, h, CKA_NEVER_EXTRACTABLE, CK_FALSE, "NEVER_EXTRACTABLE (imported)");
        assert_bool(s, h, CKA_ALWAYS_SENSITIVE, CK_FALSE, "ALWAYS_SENSITIVE (imported)");
        assert_bool(s, h, CKA_PRIVATE, CK_TRUE, "CKA_PRIVATE");
        ck_assert_uint_eq(ksp_test_get_ulong(s, h, CKA_KSP11_BACKEND), KSP11_BACKEND_SOFT);
        ck_assert_uint_eq(ksp_test_get_ulong(s, h, CKA_KSP11_IMPL_TYPE), KSP11_IMPL_SOFTWARE);
    }
    for (size_t i = 0; i < sizeof(rsa_secret) / sizeof(rsa_secret[0]); i++) {
        assert_sensitive(s, hr, rsa_secret[i], "RSA private component");
    }
    assert_sensitive(s, he, CKA_VALUE, "EC private value");
    {
        BIGNUM *n = NULL;
        uint8_t nb[256];

        ck_assert(EVP_PKEY_get_bn_param(rsa, "n", &n) == 1);
        ck_assert(BN_bn2binpad(n, nb, 256) == 256);
        BN_free(n);
        assert_attr_eq(s, hr, CKA_MODULUS, nb, 256, "CKA_MODULUS");
    }

    /* The imported keys work, in this process and the next. */
    for (int round = 0; round < 2; round++) {
        siglen = sizeof(sig);
        KSP_ASSERT_OK(sign_once(s, CKM_SHA256_RSA_PKCS, hr, "imported", sig, &siglen));
        m = (CK_MECHANISM){CKM_SHA256_RSA_PKCS, NULL, 0};
        ck_assert_msg(ksp_test_ossl_verify(rsa, &m, (const uint8_t *)"imported", 8, sig, siglen),
                      "RSA signature of the imported key does not verify");
        siglen = sizeof(sig);
        KSP_ASSERT_OK(sign_once(s, CKM_ECDSA_SHA256, he, "imported", sig, &siglen));
        m = (CK_MECHANISM){CKM_ECDSA_SHA256, NULL, 0};
        ck_assert_msg(ksp_test_ossl_verify(ec, &m, (const uint8_t *)"imported", 8, sig, siglen),
                      "ECDSA signature of the imported key does not verify");
        ksp_test_reinit();
        s = ksp_test_open(ksp_test_find_slot("privkeys"), true);
        ksp_test_login(s, CKU_USER, KSP_TEST_USER_PIN);
        hr = ksp_test_find1(s, CKO_PRIVATE_KEY, "rsa-priv");
        he = ksp_test_find1(s, CKO_PRIVATE_KEY, "ec-priv");
    }
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
}
END_TEST

START_TEST(test_import_private_policy)
{
    CK_SESSION_HANDLE s = ksp_test_ready("import-policy");
    EVP_PKEY *ec = ksp_test_fixed_key(EVP_PKEY_EC);
    CK_ATTRIBUTE sens_false = {CKA_SENSITIVE, &no, 1};
    CK_ATTRIBUTE extr_true = {CKA_EXTRACTABLE, &yes, 1};
    CK_ATTRIBUTE copy_true = {CKA_COPYABLE, &yes, 1};
    CK_ATTRIBUTE local_true = {CKA_LOCAL, &yes, 1};
    CK_ATTRIBUTE explicit_ok[] = {{CKA_SENSITIVE, &yes, 1}, {CKA_EXTRACTABLE, &no, 1}};
    CK_OBJECT_HANDLE h;

    KSP_ASSERT_RV(ksp_test_import_private_rv(s, ec, "k", false, &sens_false, 1, &h),
                  CKR_ATTRIBUTE_VALUE_INVALID);
    KSP_ASSERT_RV(ksp_test_import_private_rv(s, ec, "k", false, &extr_true, 1, &h),
                  CKR_ATTRIBUTE_VALUE_INVALID);
    KSP_ASSERT_RV(ksp_test_import_private_rv(s, ec, "k", false, &copy_true, 1, &h),
                  CKR_ATTRIBUTE_VALUE_INVALID);
    /* PKCS#11 3.0 §4.1.2: CKA_LOCAL cannot be given to C_CreateObject. */
    KSP_ASSERT_RV2(ksp_test_import_private_rv(s, ec, "k", false, &local_true, 1, &h),
                   CKR_ATTRIBUTE_READ_ONLY, CKR_TEMPLATE_INCONSISTENT);
    ck_assert_uint_eq(ksp_test_count(s, CKO_PRIVATE_KEY, NULL), 0);
    KSP_ASSERT_OK(ksp_test_import_private_rv(s, ec, "k", false, explicit_ok, 2, &h));

    KSP_ASSERT_OK(P11->C_Logout(s));
    KSP_ASSERT_RV(ksp_test_import_private_rv(s, ec, "k2", false, NULL, 0, &h),
                  CKR_USER_NOT_LOGGED_IN);
    EVP_PKEY_free(ec);
}
END_TEST

START_TEST(test_private_key_set_rules)
{
    CK_SESSION_HANDLE s = ksp_test_ready("set-rules");
    EVP_PKEY *rsa = ksp_test_fixed_key(EVP_PKEY_RSA);
    CK_OBJECT_HANDLE h = ksp_test_import_private(s, rsa, "rsa", true, NULL, 0);
    CK_OBJECT_HANDLE pub = ksp_test_import_public(s, rsa, "rsa", true, NULL, 0);
    CK_OBJECT_HANDLE c;
    CK_KEY_TYPE ec = CKK_EC;
    CK_ULONG backend = KSP11_BACKEND_TPM;
    CK_MECHANISM m = {CKM_SHA256_RSA_PKCS, NULL, 0};
    CK_ATTRIBUTE relabel = {CKA_LABEL, "copy", 4};

    /* One-way attributes (PKCS#11 3.0 §4.9 footnotes 11/12; §4.4 CKA_COPYABLE). */
    KSP_ASSERT_RV(set1(s, h, CKA_SENSITIVE, &no, 1), CKR_ATTRIBUTE_READ_ONLY);
    KSP_ASSERT_OK(set1(s, h, CKA_SENSITIVE, &yes, 1));
    KSP_ASSERT_RV(set1(s, h, CKA_EXTRACTABLE, &yes, 1), CKR_ATTRIBUTE_READ_ONLY);
    KSP_ASSERT_OK(set1(s, h, CKA_EXTRACTABLE, &no, 1));
    KSP_ASSERT_RV(set1(s, h, CKA_COPYABLE, &yes, 1), CKR_ATTRIBUTE_READ_ONLY);
    /* Attributes the token owns. */
    KSP_ASSERT_RV(set1(s, h, CKA_LOCAL, &yes, 1), CKR_ATTRIBUTE_READ_ONLY);
    KSP_ASSERT_RV(set1(s, h, CKA_ALWAYS_SENSITIVE, &yes, 1), CKR_ATTRIBUTE_READ_ONLY);
    KSP_ASSERT_RV(set1(s, h, CKA_NEVER_EXTRACTABLE, &yes, 1), CKR_ATTRIBUTE_READ_ONLY);
    KSP_ASSERT_RV(set1(s, h, CKA_KEY_TYPE, &ec, sizeof(ec)), CKR_ATTRIBUTE_READ_ONLY);
    KSP_ASSERT_RV(set1(s, h, CKA_MODULUS, "\x01\x02", 2), CKR_ATTRIBUTE_READ_ONLY);
    KSP_ASSERT_RV(set1(s, h, CKA_KSP11_BACKEND, &backend, sizeof(backend)),
                  CKR_ATTRIBUTE_READ_ONLY);
    assert_bool(s, h, CKA_SENSITIVE, CK_TRUE, "CKA_SENSITIVE after refused set");
    assert_bool(s, h, CKA_EXTRACTABLE, CK_FALSE, "CKA_EXTRACTABLE after refused set");
    ck_assert_uint_eq(ksp_test_get_ulong(s, h, CKA_KSP11_BACKEND), KSP11_BACKEND_SOFT);

    /* What a user may change. */
    KSP_ASSERT_OK(set1(s, h, CKA_LABEL, "renamed", 7));
    KSP_ASSERT_OK(set1(s, h, CKA_ID, "\x01\x02\x03", 3));
    assert_attr_eq(s, h, CKA_ID, "\x01\x02\x03", 3, "CKA_ID after set");
    KSP_ASSERT_OK(set1(s, h, CKA_SIGN, &no, 1));
    KSP_ASSERT_RV(P11->C_SignInit(s, &m, h), CKR_KEY_FUNCTION_NOT_PERMITTED);

    /* behaviour.md: private keys are never copied; public keys are. */
    KSP_ASSERT_RV(P11->C_CopyObject(s, h, &relabel, 1, &c), CKR_ACTION_PROHIBITED);
    KSP_ASSERT_OK(P11->C_CopyObject(s, pub, &relabel, 1, &c));

    /* The changes persist. */
    ksp_test_reinit();
    s = ksp_test_open(ksp_test_find_slot("set-rules"), true);
    ksp_test_login(s, CKU_USER, KSP_TEST_USER_PIN);
    h = ksp_test_find1(s, CKO_PRIVATE_KEY, "renamed");
    assert_bool(s, h, CKA_SIGN, CK_FALSE, "persisted CKA_SIGN");
    EVP_PKEY_free(rsa);
}
END_TEST

START_TEST(test_wrap_private_key)
{
    CK_SESSION_HANDLE s = ksp_test_ready("wrap");
    EVP_PKEY *rsa = ksp_test_fixed_key(EVP_PKEY_RSA);
    CK_OBJECT_HANDLE priv = ksp_test_import_private(s, rsa, "rsa", false, NULL, 0);
    CK_ATTRIBUTE wrap_attr = {CKA_WRAP, &yes, 1};
    CK_OBJECT_HANDLE pub = ksp_test_import_public(s, rsa, "rsa", false, &wrap_attr, 1);
    CK_OBJECT_HANDLE other = ksp_test_import_public(s, rsa, "rsa2", false, NULL, 0);
    CK_RSA_PKCS_OAEP_PARAMS oaep = {CKM_SHA256, CKG_MGF1_SHA256, CKZ_DATA_SPECIFIED, NULL, 0};
    CK_MECHANISM m = {CKM_RSA_PKCS_OAEP, &oaep, sizeof(oaep)};
    CK_BYTE out[512];
    CK_ULONG len = sizeof(out);

    KSP_ASSERT_RV(P11->C_WrapKey(s, &m, pub, priv, out, &len), CKR_KEY_UNEXTRACTABLE);
    len = sizeof(out);
    KSP_ASSERT_RV(P11->C_WrapKey(s, &m, pub, priv, NULL, &len), CKR_KEY_UNEXTRACTABLE);
    /* No wrapping mechanisms are offered at all. */
    len = sizeof(out);
    KSP_ASSERT_RV(P11->C_WrapKey(s, &m, pub, other, out, &len), CKR_MECHANISM_INVALID);
    EVP_PKEY_free(rsa);
}
END_TEST

/* ---- C_GetAttributeValue (PKCS#11 3.0 §5.7) -------------------------------- */

START_TEST(test_get_attribute_rules)
{
    CK_SESSION_HANDLE s = ksp_test_ready("getattr");
    EVP_PKEY *rsa = ksp_test_fixed_key(EVP_PKEY_RSA);
    CK_OBJECT_HANDLE h = ksp_test_import_private(s, rsa, "the-label", false, NULL, 0);
    CK_BYTE lbl[64], small[2], mod[512], big[64];
    CK_KEY_TYPE kt = 0;
    const CK_ULONG U = CK_UNAVAILABLE_INFORMATION;

    /* NULL pValue: length only. */
    {
        CK_ATTRIBUTE a = {CKA_MODULUS, NULL, 0};

        KSP_ASSERT_OK(P11->C_GetAttributeValue(s, h, &a, 1));
        ck_assert_uint_eq(a.ulValueLen, 256);
    }
    /* Larger buffer: value and exact length. */
    {
        CK_ATTRIBUTE a = {CKA_LABEL, big, sizeof(big)};

        KSP_ASSERT_OK(P11->C_GetAttributeValue(s, h, &a, 1));
        ck_assert_uint_eq(a.ulValueLen, 9);
        ck_assert(memcmp(big, "the-label", 9) == 0);
    }
    /* Single failures. */
    {
        CK_ATTRIBUTE a = {CKA_CERTIFICATE_TYPE, big, sizeof(big)};

        KSP_ASSERT_RV(P11->C_GetAttributeValue(s, h, &a, 1), CKR_ATTRIBUTE_TYPE_INVALID);
        ck_assert_uint_eq(a.ulValueLen, U);
        a = (CK_ATTRIBUTE){CKA_LABEL, small, sizeof(small)};
        KSP_ASSERT_RV(P11->C_GetAttributeValue(s, h, &a, 1), CKR_BUFFER_TOO_SMALL);
        ck_assert_uint_eq(a.ulValueLen, U);
        a = (CK_ATTRIBUTE){CKA_PRIME_1, NULL, 0};
        KSP_ASSERT_RV(P11->C_GetAttributeValue(s, h, &a, 1), CKR_ATTRIBUTE_SENSITIVE);
        ck_assert_uint_eq(a.ulValueLen, U);
    }
    /* Mixed: every entry is processed; the last error wins (behaviour.md). */
    {
        CK_ATTRIBUTE t[] = {
            {CKA_PRIVATE_EXPONENT, big, sizeof(big)}, {CKA_LABEL, lbl, sizeof(lbl)},
            {CKA_MODULUS, small, sizeof(small)},      {CKA_CERTIFICATE_TYPE, big, sizeof(big)},
            {CKA_KEY_TYPE, &kt, sizeof(kt)},
        };

        KSP_ASSERT_RV(P11->C_GetAttributeValue(s, h, t, 5), CKR_ATTRIBUTE_TYPE_INVALID);
        ck_assert_uint_eq(t[0].ulValueLen, U);
        ck_assert_uint_eq(t[1].ulValueLen, 9);
        ck_assert(memcmp(lbl, "the-label", 9) == 0);
        ck_assert_uint_eq(t[2].ulValueLen, U);
        ck_assert_uint_eq(t[3].ulValueLen, U);
        ck_assert_uint_eq(t[4].ulValueLen, sizeof(kt));
        ck_assert_uint_eq(kt, CKK_RSA);
    }
    {
        CK_ATTRIBUTE t[] = {
            {CKA_CERTIFICATE_TYPE, big, sizeof(big)},
            {CKA_MODULUS, NULL, 0},
            {CKA_COEFFICIENT, big, sizeof(big)},
        };

        KSP_ASSERT_RV(P11->C_GetAttributeValue(s, h, t, 3), CKR_ATTRIBUTE_SENSITIVE);
        ck_assert_uint_eq(t[0].ulValueLen, U);
        ck_assert_uint_eq(t[1].ulValueLen, 256);
        ck_assert_uint_eq(t[2].ulValueLen, U);
    }
    {
        CK_ATTRIBUTE t[] = {
            {CKA_PRIME_2, big, sizeof(big)},
            {CKA_VALUE_LEN, big, sizeof(big)},
            {CKA_MODULUS, mod, sizeof(mod)},
            {CKA_LABEL, small, sizeof(small)},
        };

        KSP_ASSERT_RV(P11->C_GetAttributeValue(s, h, t, 4), CKR_BUFFER_TOO_SMALL);
        ck_assert_uint_eq(t[0].ulValueLen, U);
        ck_assert_uint_eq(t[1].ulValueLen, U);
        ck_assert_uint_eq(t[2].ulValueLen, 256);
        ck_assert_uint_eq(t[3].ulValueLen, U);
    }
    {
        CK_ATTRIBUTE a = {CKA_LABEL, lbl, sizeof(lbl)};

        KSP_ASSERT_RV(P11->C_GetAttributeValue(s, h, NULL, 1), CKR_ARGUMENTS_BAD);
        KSP_ASSERT_RV(P11->C_GetAttributeValue(s, BAD_OBJECT, &a, 1), CKR_OBJECT_HANDLE_INVALID);
    }
    EVP_PKEY_free(rsa);
}
END_TEST

/* ---- key generation templates ------------------------------------------------ */

START_TEST(test_generate_templates)
{
    CK_SESSION_HANDLE s = ksp_test_ready("gen");
    CK_OBJECT_HANDLE pub, priv;
    CK_ATTRIBUTE id = {CKA_ID, "my-id", 5};
    CK_ATTRIBUTE sens_false = {CKA_SENSITIVE, &no, 1};
    CK_ATTRIBUTE extr_true = {CKA_EXTRACTABLE, &yes, 1};
    CK_ATTRIBUTE copy_true = {CKA_COPYABLE, &yes, 1};
    CK_MECHANISM rsa_gen = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
    CK_MECHANISM ec_gen = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
    CK_ATTRIBUTE bare[] = {{CKA_TOKEN, &no, 1}};
    CK_ULONG small = 1024, odd = 2500;
    CK_ATTRIBUTE bits_small = {CKA_MODULUS_BITS, &small, sizeof(small)};
    CK_ATTRIBUTE bits_odd = {CKA_MODULUS_BITS, &odd, sizeof(odd)};
    uint8_t k1[16];
    CK_ATTRIBUTE curve_k1 = {CKA_EC_PARAMS, k1, ksp_test_ec_params(NID_secp256k1, k1, sizeof(k1))};
    static const struct {
        int nid;
        size_t point_der;
    } curves[] = {{NID_X9_62_prime256v1, 67}, {NID_secp384r1, 99}, {NID_secp521r1, 136}};

    KSP_ASSERT_OK(ksp_test_gen_keypair(s, CKM_EC_KEY_PAIR_GEN, NID_X9_62_prime256v1, "with-id",
                                       false, &id, 1, &id, 1, &pub, &priv));
    assert_attr_eq(s, pub, CKA_ID, "my-id", 5, "public CKA_ID from the template");
    assert_attr_eq(s, priv, CKA_ID, "my-id", 5, "private CKA_ID from the template");

    KSP_ASSERT_RV(ksp_test_gen_keypair(s, CKM_EC_KEY_PAIR_GEN, NID_X9_62_prime256v1, "x", false,
                                       NULL, 0, &sens_false, 1, &pub, &priv),
                  CKR_ATTRIBUTE_VALUE_INVALID);
    KSP_ASSERT_RV(ksp_test_gen_keypair(s, CKM_EC_KEY_PAIR_GEN, NID_X9_62_prime256v1, "x", false,
                                       NULL, 0, &extr_true, 1, &pub, &priv),
                  CKR_ATTRIBUTE_VALUE_INVALID);
    KSP_ASSERT_RV(ksp_test_gen_keypair(s, CKM_EC_KEY_PAIR_GEN, NID_X9_62_prime256v1, "x", false,
                                       NULL, 0, &copy_true, 1, &pub, &priv),
                  CKR_ATTRIBUTE_VALUE_INVALID);
    ck_assert_uint_eq(ksp_test_count(s, CKO_PRIVATE_KEY, "x"), 0);

    /* PKCS#11 3.0 §2.1.4/§2.3.4: MODULUS_BITS and EC_PARAMS are required. */
    KSP_ASSERT_RV(P11->C_GenerateKeyPair(s, &rsa_gen, bare, 1, bare, 1, &pub, &priv),
                  CKR_TEMPLATE_INCOMPLETE);
    KSP_ASSERT_RV(P11->C_GenerateKeyPair(s, &ec_gen, bare, 1, bare, 1, &pub, &priv),
                  CKR_TEMPLATE_INCOMPLETE);
    KSP_ASSERT_RV(ksp_test_gen_keypair(s, CKM_RSA_PKCS_KEY_PAIR_GEN, 2048, "x", false, &bits_small,
                                       1, NULL, 0, &pub, &priv),
                  CKR_KEY_SIZE_RANGE);
    KSP_ASSERT_RV(ksp_test_gen_keypair(s, CKM_RSA_PKCS_KEY_PAIR_GEN, 2048, "x", false, &bits_odd, 1,
                                       NULL, 0, &pub, &priv),
                  CKR_KEY_SIZE_RANGE);
    KSP_ASSERT_RV2(ksp_test_gen_keypair(s, CKM_EC_KEY_PAIR_GEN, NID_X9_62_prime256v1, "x", false,
                                        &curve_k1, 1, NULL, 0, &pub, &priv),
                   CKR_CURVE_NOT_SUPPORTED, CKR_DOMAIN_PARAMS_INVALID);
    KSP_ASSERT_RV(
        ksp_test_gen_keypair(s, CKM_AES_KEY_GEN, 2048, "x", false, NULL, 0, NULL, 0, &pub, &priv),
        CKR_MECHANISM_INVALID);

    /* All three curves; the P-521 point needs a long-form DER length. */
    for (size_t i = 0; i < 3; i++) {
        uint8_t *pt = NULL;
        CK_ULONG len = 0;

        ksp_test_gen_ec(s, curves[i].nid, "curve", false, &pub, &priv);
        KSP_ASSERT_OK(ksp_test_get_attr(s, pub, CKA_EC_POINT, &pt, &len));
        ck_assert_msg(len == curves[i].point_der && pt[0] == 0x04,
                      "curve %d: CKA_EC_POINT of %lu bytes, expected a %zu-byte DER OCTET STRING",
                      curves[i].nid, len, curves[i].point_der);
        free(pt);
        EVP_PKEY_free(ksp_test_ossl_pubkey(s, pub));
    }
}
END_TEST

/* ---- generated keys (shared store) -------------------------------------------- */

static void populate_keys(CK_SESSION_HANDLE s)
{
    CK_OBJECT_HANDLE pub, priv;

    ksp_test_gen_rsa(s, 2048, "rsa", true, &pub, &priv);
    ksp_test_gen_ec(s, NID_X9_62_prime256v1, "ec", true, &pub, &priv);
}

static void keys_setup(void)
{
    ksp_test_shared_setup(populate_keys);
}

static void assert_vendor_attrs(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, const char *what)
{
    uint8_t *reason = NULL;
    CK_ULONG len = 0;
    CK_RV rv;

    if (ksp_test_tpm()) {
        /* swtpm: hardware backend, flagged virtual; no fallback reason. */
        ck_assert_msg(ksp_test_get_ulong(s, h, CKA_KSP11_BACKEND) == KSP11_BACKEND_TPM,
                      "%s: CKA_KSP11_BACKEND is not 1 (TPM)", what);
        ck_assert_msg(ksp_test_get_ulong(s, h, CKA_KSP11_IMPL_TYPE) ==
                          (KSP11_IMPL_HARDWARE | KSP11_IMPL_VIRTUAL),
                      "%s: CKA_KSP11_IMPL_TYPE is not 0x21", what);
        rv = ksp_test_get_attr(s, h, CKA_KSP11_FALLBACK_REASON, &reason, &len);
        ck_assert_msg(rv == CKR_OK && len == 0, "%s: TPM key with a fallback reason", what);
        free(reason);
        reason = NULL;
        rv = ksp_test_get_attr(s, h, CKA_KSP11_TPM_IDENTITY, &reason, &len);
        ck_assert_msg(rv == CKR_OK && len > 0 && strstr((char *)reason, "manufacturer=IBM"),
                      "%s: CKA_KSP11_TPM_IDENTITY does not name the TPM", what);
        free(reason);
        return;
    }
    ck_assert_msg(ksp_test_get_ulong(s, h, CKA_KSP11_BACKEND) == KSP11_BACKEND_SOFT,
                  "%s: CKA_KSP11_BACKEND is not 2 (soft)", what);
    ck_assert_msg(ksp_test_get_ulong(s, h, CKA_KSP11_IMPL_TYPE) == KSP11_IMPL_SOFTWARE,
                  "%s: CKA_KSP11_IMPL_TYPE is not 0x2", what);
    rv = ksp_test_get_attr(s, h, CKA_KSP11_FALLBACK_REASON, &reason, &len);
    ck_assert_msg(rv == CKR_OK, "%s: CKA_KSP11_FALLBACK_REASON: %s", what, ksp_test_rv_name(rv));
    ck_assert_msg(len > 0, "%s: empty fallback reason for a software key", what);
    if (access("/dev/tpmrm0", F_OK) != 0 && access("/dev/tpm0", F_OK) != 0) {
        ck_assert_msg(strcmp((char *)reason, "tpm-absent") == 0,
                      "%s: fallback reason \"%s\" on a machine without TPM", what, reason);
    }
    free(reason);
}

static void assert_generated_private(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_MECHANISM_TYPE gen)
{
    assert_bool(s, h, CKA_LOCAL, CK_TRUE, "CKA_LOCAL");
    assert_bool(s, h, CKA_SENSITIVE, CK_TRUE, "CKA_SENSITIVE");
    assert_bool(s, h, CKA_EXTRACTABLE, CK_FALSE, "CKA_EXTRACTABLE");
    assert_bool(s, h, CKA_ALWAYS_SENSITIVE, CK_TRUE, "CKA_ALWAYS_SENSITIVE");
    assert_bool(s, h, CKA_NEVER_EXTRACTABLE, CK_TRUE, "CKA_NEVER_EXTRACTABLE");
    assert_bool(s, h, CKA_COPYABLE, CK_FALSE, "CKA_COPYABLE");
    assert_bool(s, h, CKA_TOKEN, CK_TRUE, "CKA_TOKEN");
    assert_bool(s, h, CKA_PRIVATE, CK_TRUE, "CKA_PRIVATE");
    assert_bool(s, h, CKA_SIGN, CK_TRUE, "CKA_SIGN");
    ck_assert_uint_eq(ksp_test_get_ulong(s, h, CKA_CLASS), CKO_PRIVATE_KEY);
    ck_assert_uint_eq(ksp_test_get_ulong(s, h, CKA_KEY_GEN_MECHANISM), gen);
    assert_vendor_attrs(s, h, "private key");
}

START_TEST(test_generated_rsa)
{
    CK_SESSION_HANDLE s = ksp_t.session;
    CK_OBJECT_HANDLE priv = ksp_test_find1(s, CKO_PRIVATE_KEY, "rsa");
    CK_OBJECT_HANDLE pub = ksp_test_find1(s, CKO_PUBLIC_KEY, "rsa");
    uint8_t *mod = NULL, id[SHA_DIGEST_LENGTH];
    CK_ULONG mlen = 0;
    static const CK_ATTRIBUTE_TYPE secret[] = {CKA_PRIVATE_EXPONENT, CKA_PRIME_1,
                                               CKA_PRIME_2,          CKA_EXPONENT_1,
                                               CKA_EXPONENT_2,       CKA_COEFFICIENT};

    assert_generated_private(s, priv, CKM_RSA_PKCS_KEY_PAIR_GEN);
    assert_bool(s, priv, CKA_DECRYPT, CK_TRUE, "CKA_DECRYPT");
    ck_assert_uint_eq(ksp_test_get_ulong(s, priv, CKA_KEY_TYPE), CKK_RSA);
    for (size_t i = 0; i < sizeof(secret) / sizeof(secret[0]); i++) {
        assert_sensitive(s, priv, secret[i], "generated RSA component");
    }

    ck_assert_uint_eq(ksp_test_get_ulong(s, pub, CKA_CLASS), CKO_PUBLIC_KEY);
    assert_bool(s, pub, CKA_LOCAL, CK_TRUE, "public CKA_LOCAL");
    ck_assert_uint_eq(ksp_test_get_ulong(s, pub, CKA_KEY_GEN_MECHANISM), CKM_RSA_PKCS_KEY_PAIR_GEN);
    ck_assert_uint_eq(ksp_test_get_ulong(s, pub, CKA_MODULUS_BITS), 2048);
    assert_attr_eq(s, pub, CKA_PUBLIC_EXPONENT, "\x01\x00\x01", 3, "CKA_PUBLIC_EXPONENT");
    assert_vendor_attrs(s, pub, "public key");

    KSP_ASSERT_OK(ksp_test_get_attr(s, pub, CKA_MODULUS, &mod, &mlen));
    ck_assert_uint_eq(mlen, 256);
    assert_attr_eq(s, priv, CKA_MODULUS, mod, mlen, "private CKA_MODULUS");
    /* behaviour.md: CKA_ID = SHA-1 of the modulus, on both halves. */
    SHA1(mod, mlen, id);
    assert_attr_eq(s, pub, CKA_ID, id, sizeof(id), "public CKA_ID");
    assert_attr_eq(s, priv, CKA_ID, id, sizeof(id), "private CKA_ID");
    {
        CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
        CK_ATTRIBUTE by_id[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_ID, id, sizeof(id)}};
        CK_OBJECT_HANDLE found;

        ck_assert_uint_eq(ksp_test_find(s, by_id, 2, &found, 1), 1);
        ck_assert_uint_eq(found, priv);
    }
    free(mod);
}
END_TEST

START_TEST(test_generated_ec)
{
    CK_SESSION_HANDLE s = ksp_t.session;
    CK_OBJECT_HANDLE priv = ksp_test_find1(s, CKO_PRIVATE_KEY, "ec");
    CK_OBJECT_HANDLE pub = ksp_test_find1(s, CKO_PUBLIC_KEY, "ec");
    uint8_t params[16], id[SHA_DIGEST_LENGTH];
    uint8_t *pt = NULL;
    CK_ULONG len = 0;
    size_t plen = ksp_test_ec_params(NID_X9_62_prime256v1, params, sizeof(params));

    assert_generated_private(s, priv, CKM_EC_KEY_PAIR_GEN);
    assert_bool(s, priv, CKA_DERIVE, CK_TRUE, "CKA_DERIVE");
    ck_assert_uint_eq(ksp_test_get_ulong(s, priv, CKA_KEY_TYPE), CKK_EC);
    assert_sensitive(s, priv, CKA_VALUE, "generated EC private value");
    assert_attr_eq(s, priv, CKA_EC_PARAMS, params, plen, "private CKA_EC_PARAMS");
    assert_attr_eq(s, pub, CKA_EC_PARAMS, params, plen, "public CKA_EC_PARAMS");
    assert_bool(s, pub, CKA_LOCAL, CK_TRUE, "public CKA_LOCAL");
    ck_assert_uint_eq(ksp_test_get_ulong(s, pub, CKA_KEY_GEN_MECHANISM), CKM_EC_KEY_PAIR_GEN);
    assert_vendor_attrs(s, pub, "public key");

    /* CKA_EC_POINT: DER OCTET STRING around the uncompressed point. */
    KSP_ASSERT_OK(ksp_test_get_attr(s, pub, CKA_EC_POINT, &pt, &len));
    ck_assert_msg(len == 67 && pt[0] == 0x04 && pt[1] == 65 && pt[2] == 0x04,
                  "CKA_EC_POINT is not DER(OCTET STRING(04 || X || Y)) (%lu bytes)", len);
    /* behaviour.md: CKA_ID = SHA-1 of the raw point. */
    SHA1(pt + 2, 65, id);
    assert_attr_eq(s, pub, CKA_ID, id, sizeof(id), "public CKA_ID");
    assert_attr_eq(s, priv, CKA_ID, id, sizeof(id), "private CKA_ID");
    free(pt);
}
END_TEST

START_TEST(test_generated_logout_invalidates)
{
    CK_SESSION_HANDLE s = ksp_t.session;
    CK_OBJECT_HANDLE priv = ksp_test_find1(s, CKO_PRIVATE_KEY, "ec");
    CK_ATTRIBUTE lbl = {CKA_LABEL, NULL, 0};
    CK_MECHANISM m = {CKM_ECDSA, NULL, 0};

    KSP_ASSERT_OK(P11->C_Logout(s));
    KSP_ASSERT_RV(P11->C_GetAttributeValue(s, priv, &lbl, 1), CKR_OBJECT_HANDLE_INVALID);
    KSP_ASSERT_RV(P11->C_SignInit(s, &m, priv), CKR_KEY_HANDLE_INVALID);
    ck_assert_uint_eq(ksp_test_count(s, CKO_PRIVATE_KEY, NULL), 0);
    ksp_test_login(s, CKU_USER, KSP_TEST_USER_PIN);
    priv = ksp_test_find1(s, CKO_PRIVATE_KEY, "ec");
    KSP_ASSERT_OK(P11->C_SignInit(s, &m, priv));
}
END_TEST

/* ---- two processes writing ---------------------------------------------------- */

#define PER_WRITER 15

static int writer(void *arg)
{
    const char *prefix = arg;
    CK_SESSION_HANDLE s;
    char label[32];

    if (P11->C_Initialize(NULL) != CKR_OK) {
        return 2;
    }
    s = ksp_test_open(ksp_test_find_slot("concurrent"), true);
    ksp_test_login(s, CKU_USER, KSP_TEST_USER_PIN);
    for (int i = 0; i < PER_WRITER; i++) {
        snprintf(label, sizeof(label), "%s-%d", prefix, i);
        ksp_test_create_data(s, label, true, i % 2 == 0);
    }
    P11->C_Finalize(NULL);
    return 0;
}

static pid_t spawn(int (*fn)(void *), void *arg)
{
    pid_t pid;

    fflush(NULL);
    pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        _exit(fn(arg));
    }
    return pid;
}

START_TEST(test_concurrent_processes)
{
    static const char *const prefixes[] = {"child-a", "child-b", "parent"};
    CK_SESSION_HANDLE s = ksp_test_ready("concurrent");
    pid_t a, b;
    int status;
    char label[32];

    a = spawn(writer, (void *)prefixes[0]);
    b = spawn(writer, (void *)prefixes[1]);
    for (int i = 0; i < PER_WRITER; i++) {
        snprintf(label, sizeof(label), "%s-%d", prefixes[2], i);
        ksp_test_create_data(s, label, true, i % 2 == 0);
    }
    ck_assert(waitpid(a, &status, 0) == a);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer a: status 0x%x", status);
    ck_assert(waitpid(b, &status, 0) == b);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "writer b: status 0x%x", status);

    /* Other processes' objects show up at the next search. */
    for (int round = 0; round < 2; round++) {
        ck_assert_uint_eq(ksp_test_count(s, CKO_DATA, NULL), 3 * PER_WRITER);
        for (int p = 0; p < 3; p++) {
            for (int i = 0; i < PER_WRITER; i++) {
                snprintf(label, sizeof(label), "%s-%d", prefixes[p], i);
                ck_assert_msg(ksp_test_count(s, CKO_DATA, label) == 1, "\"%s\" lost", label);
            }
        }
        ksp_test_reinit();
        s = ksp_test_open(ksp_test_find_slot("concurrent"), true);
        ksp_test_login(s, CKU_USER, KSP_TEST_USER_PIN);
    }
}
END_TEST

static Suite *object_suite(void)
{
    Suite *su = suite_create("api_object");
    TCase *tc = tcase_create("objects");
    TCase *tk = tcase_create("keys");
    TCase *tg = tcase_create("generated");

    ksp_test_add_fixtures(tc, true);
    tcase_add_test(tc, test_data_object);
    tcase_add_test(tc, test_create_errors);
    tcase_add_test(tc, test_policy_attributes);
    tcase_add_test(tc, test_find_paging);
    tcase_add_test(tc, test_session_vs_token);
    tcase_add_test(tc, test_private_objects_and_logout);
    tcase_add_test(tc, test_read_only_session);
    tcase_add_test(tc, test_object_size);
    tcase_add_test(tc, test_certificate);
    tcase_add_test(tc, test_concurrent_processes);
    suite_add_tcase(su, tc);

    ksp_test_add_fixtures(tk, true);
    tcase_add_test(tk, test_import_public_keys);
    tcase_add_test(tk, test_import_private_keys);
    tcase_add_test(tk, test_import_private_policy);
    tcase_add_test(tk, test_private_key_set_rules);
    tcase_add_test(tk, test_wrap_private_key);
    tcase_add_test(tk, test_get_attribute_rules);
    tcase_add_test(tk, test_generate_templates);
    suite_add_tcase(su, tk);

    ksp_test_add_shared_fixtures(tg, keys_setup);
    tcase_add_test(tg, test_generated_rsa);
    tcase_add_test(tg, test_generated_ec);
    tcase_add_test(tg, test_generated_logout_invalidates);
    suite_add_tcase(su, tg);
    return su;
}

int main(void)
{
    SRunner *sr = srunner_create(object_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
