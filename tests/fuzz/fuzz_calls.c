/*
 * libFuzzer harness: random sequences of PKCS#11 calls on the software
 * backend (the module linked in, token "fuzz" in a private store): sessions
 * opened and closed, logins and logouts as user and SO with right and wrong
 * PINs, objects created / copied / changed / destroyed, searches, key
 * generation, sign / verify / digest / encrypt / decrypt steps in any order,
 * C_Finalize + C_Initialize in the middle. Each input is a program of
 * one-byte opcodes with operands; handles are picked among those the
 * sequence obtained plus invalid ones.
 *
 * Between inputs the harness restores the token: all sessions closed, every
 * object the sequence made (label "fuzz-tmp") destroyed, the PIN-failure
 * counters reset by a correct login. The PINs themselves never change, and at
 * most two wrong PINs are tried per input, so a lockout cannot end the run.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

#define NSESS 4
#define NOBJ  16
#define TMP   "fuzz-tmp"

static CK_FUNCTION_LIST_PTR f;
static CK_SLOT_ID slot;

struct state {
    CK_SESSION_HANDLE s[NSESS];
    CK_OBJECT_HANDLE o[NOBJ];
    size_t ns, no;
    int wrong_pins;
};

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_module_setup(&f, &slot);
    return 0;
}

static CK_SESSION_HANDLE pick_s(struct state *st, struct fuzz_in *in)
{
    uint8_t b = fuzz_u8(in);
    if (st->ns == 0 || b >= 0xf0)
        return (CK_SESSION_HANDLE)b * 7919u; /* mostly invalid */
    return st->s[b % st->ns];
}

static CK_OBJECT_HANDLE pick_o(struct state *st, struct fuzz_in *in)
{
    uint8_t b = fuzz_u8(in);
    if (st->no == 0 || b >= 0xf0)
        return (CK_OBJECT_HANDLE)b * 104729u;
    return st->o[b % st->no];
}

static void add_o(struct state *st, CK_OBJECT_HANDLE h)
{
    if (st->no < NOBJ)
        st->o[st->no++] = h;
    else
        st->o[h % NOBJ] = h;
}

static void pin(struct state *st, struct fuzz_in *in, const char **p, CK_ULONG *len)
{
    uint8_t c = fuzz_u8(in) % 4;
    if ((c == 2 || c == 3) && st->wrong_pins >= 2)
        c = 0;
    switch (c) {
    case 0:
        *p = FUZZ_USER_PIN;
        *len = 4;
        break;
    case 1:
        *p = FUZZ_SO_PIN;
        *len = 8;
        break;
    case 2:
        st->wrong_pins++;
        *p = "0000";
        *len = 4;
        break;
    default: /* a short or empty PIN is refused before it counts */
        st->wrong_pins++;
        *p = "";
        *len = 0;
        break;
    }
}

static const CK_ULONG sign_mechs[] = {CKM_ECDSA,    CKM_ECDSA_SHA256, CKM_SHA256_RSA_PKCS,
                                      CKM_RSA_PKCS, CKM_SHA256,       CKM_RSA_PKCS_OAEP};

static void step(struct state *st, struct fuzz_in *in)
{
    static const uint8_t p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
    static CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    uint8_t buf[1024];
    CK_ULONG len = sizeof(buf);
    CK_SESSION_HANDLE s;
    CK_OBJECT_HANDLE h, h2;
    const char *p;
    CK_ULONG plen;
    CK_RV rv;

    switch (fuzz_u8(in) % 26) {
    case 0: { /* open */
        CK_FLAGS fl = CKF_SERIAL_SESSION | (fuzz_u8(in) % 2 ? CKF_RW_SESSION : 0);
        if (fuzz_u8(in) % 16 == 0)
            fl = 0; /* CKR_SESSION_PARALLEL_NOT_SUPPORTED */
        if (f->C_OpenSession(slot, fl, NULL, NULL, &s) == CKR_OK) {
            if (st->ns < NSESS)
                st->s[st->ns++] = s;
            else
                (void)f->C_CloseSession(s);
        }
        break;
    }
    case 1:
        s = pick_s(st, in);
        if (f->C_CloseSession(s) == CKR_OK)
            for (size_t i = 0; i < st->ns; i++)
                if (st->s[i] == s) {
                    st->s[i] = st->s[--st->ns];
                    break;
                }
        break;
    case 2:
        (void)f->C_CloseAllSessions(fuzz_u8(in) % 8 ? slot : slot + 99);
        st->ns = 0;
        break;
    case 3: {
        static const CK_ULONG users[] = {CKU_USER, CKU_SO, CKU_CONTEXT_SPECIFIC, 7};
        CK_ULONG u = fuzz_pick(in, users, 4);
        s = pick_s(st, in);
        pin(st, in, &p, &plen);
        rv = f->C_Login(s, u, (CK_UTF8CHAR_PTR)p, plen);
        if (rv == CKR_OK)
            st->wrong_pins = 0;
        break;
    }
    case 4:
        (void)f->C_Logout(pick_s(st, in));
        break;
    case 5: { /* a data object, token or session */
        CK_OBJECT_CLASS c = CKO_DATA;
        CK_ATTRIBUTE t[] = {{CKA_CLASS, &c, sizeof(c)},
                            {CKA_LABEL, TMP, sizeof(TMP) - 1},
                            {CKA_TOKEN, fuzz_u8(in) % 2 ? &yes : &no, 1},
                            {CKA_PRIVATE, fuzz_u8(in) % 2 ? &yes : &no, 1},
                            {CKA_VALUE, buf, fuzz_u8(in)}};
        memset(buf, 0x5a, sizeof(buf));
        if (f->C_CreateObject(pick_s(st, in), t, 5, &h) == CKR_OK)
            add_o(st, h);
        break;
    }
    case 6:
        (void)f->C_DestroyObject(pick_s(st, in), pick_o(st, in));
        break;
    case 7: { /* find by class */
        CK_OBJECT_CLASS c = fuzz_u8(in) % 4;
        CK_ATTRIBUTE t = {CKA_CLASS, &c, sizeof(c)};
        (void)f->C_FindObjectsInit(pick_s(st, in), &t, fuzz_u8(in) % 2);
        break;
    }
    case 8: {
        CK_OBJECT_HANDLE found[4];
        CK_ULONG nf = 0;
        if (f->C_FindObjects(pick_s(st, in), found, fuzz_u8(in) % 5, &nf) == CKR_OK)
            for (CK_ULONG i = 0; i < nf && i < 4; i++)
                add_o(st, found[i]);
        break;
    }
    case 9:
        (void)f->C_FindObjectsFinal(pick_s(st, in));
        break;
    case 10: {
        CK_ATTRIBUTE t[3] = {{CKA_LABEL, buf, fuzz_u8(in) % 64},
                             {fuzz_u8(in) % 2 ? CKA_VALUE : CKA_PRIVATE_EXPONENT, NULL, 0},
                             {CKA_CLASS, NULL, 0}};
        s = pick_s(st, in);
        h = pick_o(st, in);
        if (f->C_GetAttributeValue(s, h, t, 3) == CKR_BUFFER_TOO_SMALL)
            break;
        break;
    }
    case 11: {
        CK_ATTRIBUTE t = {CKA_LABEL, TMP, sizeof(TMP) - 1};
        CK_ATTRIBUTE t2 = {CKA_SENSITIVE, &no, 1};
        (void)f->C_SetAttributeValue(pick_s(st, in), pick_o(st, in), fuzz_u8(in) % 4 ? &t : &t2, 1);
        break;
    }
    case 12: { /* EC key pair */
        CK_MECHANISM m = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
        CK_BBOOL *tok = fuzz_u8(in) % 2 ? &yes : &no;
        CK_ATTRIBUTE pub[] = {{CKA_EC_PARAMS, (void *)p256, sizeof(p256)},
                              {CKA_LABEL, TMP, sizeof(TMP) - 1},
                              {CKA_TOKEN, tok, 1}};
        CK_ATTRIBUTE priv[] = {{CKA_SIGN, &yes, 1},
                               {CKA_LABEL, TMP, sizeof(TMP) - 1},
                               {CKA_TOKEN, tok, 1},
                               {CKA_DERIVE, &yes, 1}};
        if (f->C_GenerateKeyPair(pick_s(st, in), &m, pub, 3, priv, 4, &h, &h2) == CKR_OK) {
            add_o(st, h);
            add_o(st, h2);
        }
        break;
    }
    case 13: {
        CK_MECHANISM m = {fuzz_pick(in, sign_mechs, 6), NULL, 0};
        (void)f->C_SignInit(pick_s(st, in), &m, pick_o(st, in));
        break;
    }
    case 14: {
        size_t dl;
        const uint8_t *d = fuzz_bytes(in, 300, &dl);
        len = fuzz_u8(in) % 2 ? sizeof(buf) : fuzz_u8(in);
        (void)f->C_Sign(pick_s(st, in), (CK_BYTE_PTR)d, dl, fuzz_u8(in) % 4 ? buf : NULL, &len);
        break;
    }
    case 15: {
        size_t dl;
        const uint8_t *d = fuzz_bytes(in, 300, &dl);
        (void)f->C_SignUpdate(pick_s(st, in), (CK_BYTE_PTR)d, dl);
        break;
    }
    case 16:
        len = fuzz_u8(in) % 2 ? sizeof(buf) : fuzz_u8(in);
        (void)f->C_SignFinal(pick_s(st, in), fuzz_u8(in) % 4 ? buf : NULL, &len);
        break;
    case 17: {
        CK_MECHANISM m = {fuzz_pick(in, sign_mechs, 6), NULL, 0};
        (void)f->C_VerifyInit(pick_s(st, in), &m, pick_o(st, in));
        break;
    }
    case 18: {
        size_t dl, sl;
        const uint8_t *d = fuzz_bytes(in, 300, &dl);
        const uint8_t *sg = fuzz_bytes(in, 300, &sl);
        (void)f->C_Verify(pick_s(st, in), (CK_BYTE_PTR)d, dl, (CK_BYTE_PTR)sg, sl);
        break;
    }
    case 19: {
        CK_MECHANISM m = {CKM_SHA256, NULL, 0};
        (void)f->C_DigestInit(pick_s(st, in), &m);
        break;
    }
    case 20: {
        size_t dl;
        const uint8_t *d = fuzz_bytes(in, 300, &dl);
        s = pick_s(st, in);
        if (fuzz_u8(in) % 2)
            (void)f->C_DigestUpdate(s, (CK_BYTE_PTR)d, dl);
        else
            (void)f->C_Digest(s, (CK_BYTE_PTR)d, dl, buf, &len);
        break;
    }
    case 21: {
        CK_MECHANISM m = {fuzz_u8(in) % 2 ? CKM_RSA_PKCS : CKM_RSA_PKCS_OAEP, NULL, 0};
        s = pick_s(st, in);
        h = pick_o(st, in);
        if (fuzz_u8(in) % 2)
            (void)f->C_EncryptInit(s, &m, h);
        else
            (void)f->C_DecryptInit(s, &m, h);
        break;
    }
    case 22: {
        size_t dl;
        const uint8_t *d = fuzz_bytes(in, 300, &dl);
        s = pick_s(st, in);
        if (fuzz_u8(in) % 2)
            (void)f->C_Encrypt(s, (CK_BYTE_PTR)d, dl, buf, &len);
        else
            (void)f->C_Decrypt(s, (CK_BYTE_PTR)d, dl, buf, &len);
        break;
    }
    case 23: {
        CK_SESSION_INFO si;
        CK_ULONG sz;
        s = pick_s(st, in);
        (void)f->C_GetSessionInfo(s, &si);
        (void)f->C_GetObjectSize(s, pick_o(st, in), &sz);
        (void)f->C_GenerateRandom(s, buf, fuzz_u8(in));
        (void)f->C_GetOperationState(s, NULL, &len);
        break;
    }
    case 24: { /* copy with a template */
        CK_ATTRIBUTE t = {CKA_LABEL, TMP, sizeof(TMP) - 1};
        CK_ATTRIBUTE t2 = {CKA_EXTRACTABLE, &yes, 1};
        if (f->C_CopyObject(pick_s(st, in), pick_o(st, in), fuzz_u8(in) % 2 ? &t : &t2, 1, &h) ==
            CKR_OK)
            add_o(st, h);
        break;
    }
    default: /* a fresh "process": every handle becomes invalid */
        if (fuzz_u8(in) % 4 == 0) {
            FUZZ_CHECK(f->C_Finalize(NULL) == CKR_OK);
            FUZZ_CHECK(f->C_Initialize(NULL) == CKR_OK);
            st->ns = 0;
        } else {
            pin(st, in, &p, &plen);
            (void)f->C_SetPIN(pick_s(st, in), (CK_UTF8CHAR_PTR)p, plen, (CK_UTF8CHAR_PTR)p, plen);
        }
        break;
    }
}

/* Back to the starting state: no sessions, no temporary objects, the
 * failure counters reset. */
static void restore(void)
{
    CK_SESSION_HANDLE s;
    CK_ATTRIBUTE t = {CKA_LABEL, TMP, sizeof(TMP) - 1};
    CK_OBJECT_HANDLE found[32];
    CK_ULONG nf;

    FUZZ_CHECK(f->C_CloseAllSessions(slot) == CKR_OK);
    FUZZ_CHECK(f->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &s) ==
               CKR_OK);
    FUZZ_CHECK(f->C_Login(s, CKU_SO, (CK_UTF8CHAR_PTR)FUZZ_SO_PIN, 8) == CKR_OK);
    FUZZ_CHECK(f->C_Logout(s) == CKR_OK);
    FUZZ_CHECK(f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)FUZZ_USER_PIN, 4) == CKR_OK);
    do {
        FUZZ_CHECK(f->C_FindObjectsInit(s, &t, 1) == CKR_OK);
        FUZZ_CHECK(f->C_FindObjects(s, found, 32, &nf) == CKR_OK);
        FUZZ_CHECK(f->C_FindObjectsFinal(s) == CKR_OK);
        for (CK_ULONG i = 0; i < nf; i++)
            FUZZ_CHECK(f->C_DestroyObject(s, found[i]) == CKR_OK);
    } while (nf == 32);
    FUZZ_CHECK(f->C_CloseSession(s) == CKR_OK);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    struct state st;
    memset(&st, 0, sizeof(st));
    for (int i = 0; i < 64 && in.left > 0; i++)
        step(&st, &in);
    restore();
    return 0;
}
