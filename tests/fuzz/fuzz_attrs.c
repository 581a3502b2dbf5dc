/*
 * libFuzzer harness: attribute templates through the PKCS#11 entry points of
 * the module linked in (software backend, private temporary store):
 * C_CreateObject (then C_GetAttributeValue of the template's types and
 * C_DestroyObject), C_SetAttributeValue on fresh and long-lived objects,
 * C_FindObjectsInit/C_FindObjects/C_FindObjectsFinal and C_GenerateKeyPair.
 * Return codes are the module's business; crashes, sanitizer reports, leaks
 * and a private value read back in clear are findings.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

#define MAXT 12

static CK_FUNCTION_LIST_PTR f;
static CK_SLOT_ID slot;
static CK_SESSION_HANDLE holder; /* owns the long-lived session keys, logged in */
static CK_SESSION_HANDLE sess;   /* one per input: closing it destroys its objects */
static CK_OBJECT_HANDLE ec_pub, ec_priv, data_obj;

static void setup(void)
{
    static const uint8_t p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
    CK_BBOOL yes = CK_TRUE;
    CK_MECHANISM gen = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
    CK_ATTRIBUTE pub[] = {
        {CKA_EC_PARAMS, (void *)p256, sizeof(p256)}, {CKA_VERIFY, &yes, 1}, {CKA_LABEL, "ec", 2}};
    CK_ATTRIBUTE priv[] = {{CKA_SIGN, &yes, 1}, {CKA_DERIVE, &yes, 1}, {CKA_LABEL, "ec", 2}};
    CK_OBJECT_CLASS data = CKO_DATA;
    CK_ATTRIBUTE dt[] = {{CKA_CLASS, &data, sizeof(data)},
                         {CKA_TOKEN, &yes, 1},
                         {CKA_LABEL, "data", 4},
                         {CKA_VALUE, "hello", 5}};

    fuzz_module_setup(&f, &slot);
    holder = sess = fuzz_session(true);
    FUZZ_CHECK(f->C_GenerateKeyPair(sess, &gen, pub, 3, priv, 3, &ec_pub, &ec_priv) == CKR_OK);
    FUZZ_CHECK(f->C_CreateObject(sess, dt, 4, &data_obj) == CKR_OK);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    setup();
    return 0;
}

/* Read back every attribute of the template, with a length query first. */
static void read_back(CK_OBJECT_HANDLE h, const CK_ATTRIBUTE *t, CK_ULONG n)
{
    for (CK_ULONG i = 0; i < n; i++) {
        CK_ATTRIBUTE a = {t[i].type, NULL, 0};
        if (f->C_GetAttributeValue(sess, h, &a, 1) != CKR_OK)
            continue;
        FUZZ_CHECK(a.ulValueLen != CK_UNAVAILABLE_INFORMATION);
        FUZZ_CHECK(a.ulValueLen <= 16u * 1024 * 1024);
        a.pValue = malloc(a.ulValueLen ? a.ulValueLen : 1);
        FUZZ_CHECK(a.pValue != NULL);
        FUZZ_CHECK(f->C_GetAttributeValue(sess, h, &a, 1) == CKR_OK);
        free(a.pValue);
    }
    /* All at once into too-small buffers. */
    CK_ATTRIBUTE all[MAXT];
    uint8_t small[MAXT][2];
    for (CK_ULONG i = 0; i < n; i++) {
        all[i].type = t[i].type;
        all[i].pValue = small[i];
        all[i].ulValueLen = sizeof(small[i]);
    }
    (void)f->C_GetAttributeValue(sess, h, all, n);
}

/* Private objects read back only CKR_ATTRIBUTE_SENSITIVE for secrets. */
static void check_sensitive(CK_OBJECT_HANDLE h)
{
    static const CK_ATTRIBUTE_TYPE secrets[] = {CKA_PRIVATE_EXPONENT, CKA_PRIME_1,
                                                CKA_PRIME_2,          CKA_EXPONENT_1,
                                                CKA_EXPONENT_2,       CKA_COEFFICIENT};
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
        CK_ATTRIBUTE a = {secrets[i], NULL, 0};
        CK_RV rv = f->C_GetAttributeValue(sess, h, &a, 1);
        FUZZ_CHECK(rv != CKR_OK || a.ulValueLen == CK_UNAVAILABLE_INFORMATION);
    }
    CK_ATTRIBUTE v = {CKA_VALUE, NULL, 0};
    CK_OBJECT_CLASS cls = 0;
    CK_ATTRIBUTE c = {CKA_CLASS, &cls, sizeof(cls)};
    if (f->C_GetAttributeValue(sess, h, &c, 1) == CKR_OK && cls == CKO_PRIVATE_KEY)
        FUZZ_CHECK(f->C_GetAttributeValue(sess, h, &v, 1) != CKR_OK);
}

/* CKA_DESTROYABLE may have been set to FALSE by the template. */
static void destroy(CK_OBJECT_HANDLE h)
{
    CK_RV rv = f->C_DestroyObject(sess, h);
    FUZZ_CHECK(rv == CKR_OK || rv == CKR_ACTION_PROHIBITED);
}

/* RSA key generation above 2048 bits would take seconds per input under
 * the sanitizers: such sizes are asked for as 2048 (the unit suites cover
 * 3072 and 4096). */
static void cap_rsa_bits(CK_ATTRIBUTE *t, CK_ULONG n)
{
    for (CK_ULONG i = 0; i < n; i++)
        if (t[i].type == CKA_MODULUS_BITS && t[i].pValue && t[i].ulValueLen == sizeof(CK_ULONG)) {
            static CK_ULONG b2048 = 2048; /* the input itself is read-only */
            CK_ULONG bits;
            memcpy(&bits, t[i].pValue, sizeof(bits));
            if (bits > 2048 && bits <= 65536)
                t[i].pValue = &b2048;
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    CK_ATTRIBUTE t[MAXT], t2[MAXT];
    uint8_t vals[MAXT * 16], vals2[MAXT * 16];
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE, h2 = CK_INVALID_HANDLE;
    uint8_t op = fuzz_u8(&in);
    CK_ULONG n = fuzz_template(&in, t, MAXT, vals);
    sess = fuzz_session(false);

    switch (op % 4) {
    case 0:
        if (f->C_CreateObject(sess, t, n, &h) == CKR_OK) {
            read_back(h, t, n);
            check_sensitive(h);
            destroy(h);
        }
        break;
    case 1: {
        /* On a fresh copy of the data object, or on the long-lived keys. */
        CK_OBJECT_HANDLE target;
        uint8_t which = fuzz_u8(&in) % 4;
        if (which == 0 && f->C_CopyObject(sess, data_obj, NULL, 0, &h) == CKR_OK)
            target = h;
        else
            target = which == 1 ? ec_pub : which == 2 ? ec_priv : data_obj;
        if (f->C_SetAttributeValue(sess, target, t, n) == CKR_OK)
            read_back(target, t, n);
        check_sensitive(ec_priv);
        if (h != CK_INVALID_HANDLE)
            destroy(h);
        break;
    }
    case 2:
        if (f->C_FindObjectsInit(sess, t, n) == CKR_OK) {
            CK_OBJECT_HANDLE found[8];
            CK_ULONG nf = 0;
            CK_ULONG max = fuzz_u8(&in) % 9;
            CK_RV rv = f->C_FindObjects(sess, found, max, &nf);
            FUZZ_CHECK(rv != CKR_OK || nf <= max);
            FUZZ_CHECK(f->C_FindObjectsFinal(sess) == CKR_OK);
        }
        break;
    default: {
        static const CK_ULONG mechs[] = {CKM_EC_KEY_PAIR_GEN, CKM_RSA_PKCS_KEY_PAIR_GEN,
                                         CKM_RSA_X9_31_KEY_PAIR_GEN, CKM_AES_KEY_GEN};
        CK_MECHANISM m = {fuzz_pick(&in, mechs, 4), NULL, 0};
        CK_ULONG n2 = fuzz_template(&in, t2, MAXT, vals2);
        cap_rsa_bits(t, n);
        cap_rsa_bits(t2, n2);
        if (f->C_GenerateKeyPair(sess, &m, t, n, t2, n2, &h, &h2) == CKR_OK) {
            read_back(h, t, n);
            read_back(h2, t2, n2);
            check_sensitive(h2);
            destroy(h);
            destroy(h2);
        }
        break;
    }
    }
    FUZZ_CHECK(f->C_CloseSession(sess) == CKR_OK);
    return 0;
}
