/*
 * libFuzzer harness: mechanism parameters. C_SignInit, C_VerifyInit,
 * C_EncryptInit, C_DecryptInit, C_DigestInit, C_SignRecoverInit and
 * C_DeriveKey with fuzzed CK_MECHANISM (type, pParameter bytes or a
 * structured PSS / OAEP / ECDH1 parameter block, ulParameterLen) on RSA and
 * EC keys of the software backend, then the operation itself on fuzzed data
 * (length query, short buffer, full buffer, multi-part). The parameter block
 * is allocated with exactly ulParameterLen bytes so that reading past it is a
 * sanitizer report.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"

static CK_FUNCTION_LIST_PTR f;
static CK_SLOT_ID slot;
static CK_SESSION_HANDLE holder; /* owns the session keys, stays logged in */
static CK_SESSION_HANDLE sess;   /* one per input */
static CK_OBJECT_HANDLE keys[5]; /* rsa pub, rsa priv, ec pub, ec priv, data object */

static void setup(void)
{
    static const uint8_t p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
    CK_BBOOL yes = CK_TRUE;
    CK_ULONG bits = 2048;
    CK_MECHANISM ecgen = {CKM_EC_KEY_PAIR_GEN, NULL, 0};
    CK_MECHANISM rsagen = {CKM_RSA_PKCS_KEY_PAIR_GEN, NULL, 0};
    CK_ATTRIBUTE ecpub[] = {{CKA_EC_PARAMS, (void *)p256, sizeof(p256)}, {CKA_VERIFY, &yes, 1}};
    CK_ATTRIBUTE ecpriv[] = {{CKA_SIGN, &yes, 1}, {CKA_DERIVE, &yes, 1}};
    CK_ATTRIBUTE rsapub[] = {
        {CKA_MODULUS_BITS, &bits, sizeof(bits)}, {CKA_VERIFY, &yes, 1}, {CKA_ENCRYPT, &yes, 1}};
    CK_ATTRIBUTE rsapriv[] = {{CKA_SIGN, &yes, 1}, {CKA_DECRYPT, &yes, 1}};
    CK_OBJECT_CLASS data = CKO_DATA;
    CK_ATTRIBUTE dt[] = {{CKA_CLASS, &data, sizeof(data)}, {CKA_VALUE, "x", 1}};

    fuzz_module_setup(&f, &slot);
    holder = sess = fuzz_session(true);
    FUZZ_CHECK(f->C_GenerateKeyPair(sess, &rsagen, rsapub, 3, rsapriv, 2, &keys[0], &keys[1]) ==
               CKR_OK);
    FUZZ_CHECK(f->C_GenerateKeyPair(sess, &ecgen, ecpub, 2, ecpriv, 2, &keys[2], &keys[3]) ==
               CKR_OK);
    FUZZ_CHECK(f->C_CreateObject(sess, dt, 2, &keys[4]) == CKR_OK);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    setup();
    return 0;
}

static const CK_ULONG hashes[] = {
    CKM_SHA_1, CKM_SHA224, CKM_SHA256, CKM_SHA384, CKM_SHA512, CKM_MD5, 0x2b0 /* CKM_SHA3_256 */,
    0};
static const CK_ULONG mgfs[] = {CKG_MGF1_SHA1,   CKG_MGF1_SHA224, CKG_MGF1_SHA256,
                                CKG_MGF1_SHA384, CKG_MGF1_SHA512, 0};

/* The parameter block: exactly plen bytes, maybe holding a structure. */
static void *make_param(struct fuzz_in *in, CK_ULONG *plen, uint8_t *scratch, size_t scratch_len)
{
    uint8_t kind = fuzz_u8(in) % 6;
    size_t len;
    const uint8_t *b;
    void *p = NULL;
    switch (kind) {
    case 0: /* NULL with a length */
        *plen = fuzz_u8(in) % 2 ? fuzz_ulong(in) : 0;
        return NULL;
    case 1: /* raw bytes */
        b = fuzz_bytes(in, 256, &len);
        p = malloc(len ? len : 1);
        if (p && len)
            memcpy(p, b, len);
        *plen = len;
        return p;
    case 2: { /* PSS */
        CK_RSA_PKCS_PSS_PARAMS pss = {fuzz_pick(in, hashes, 8), fuzz_pick(in, mgfs, 6),
                                      fuzz_u8(in) % 4 ? (CK_ULONG)(fuzz_u8(in) % 80)
                                                      : fuzz_ulong(in)};
        len = sizeof(pss) - (fuzz_u8(in) % 8 == 0 ? 1 : 0);
        p = malloc(sizeof(pss));
        if (p)
            memcpy(p, &pss, sizeof(pss));
        *plen = len;
        return p;
    }
    case 3: { /* OAEP, label pointing at input-derived bytes of honest length */
        b = fuzz_bytes(in, scratch_len, &len);
        if (len)
            memcpy(scratch, b, len);
        CK_RSA_PKCS_OAEP_PARAMS oaep = {fuzz_pick(in, hashes, 8), fuzz_pick(in, mgfs, 6),
                                        fuzz_u8(in) % 3, len ? scratch : NULL, len};
        if (fuzz_u8(in) % 8 == 0)
            oaep.pSourceData = NULL; /* with a length: must be refused */
        p = malloc(sizeof(oaep));
        if (p)
            memcpy(p, &oaep, sizeof(oaep));
        *plen = sizeof(oaep) + (fuzz_u8(in) % 8 == 0 ? 8 : 0);
        if (*plen != sizeof(oaep)) {
            void *q = realloc(p, *plen);
            if (q)
                memset((uint8_t *)q + sizeof(oaep), 0, 8);
            else
                free(p);
            p = q;
        }
        return p;
    }
    default: { /* ECDH1 derive: public data from the input (or the EC public key) */
        b = fuzz_bytes(in, scratch_len, &len);
        if (len)
            memcpy(scratch, b, len);
        static const CK_ULONG kdfs[] = {CKD_NULL, CKD_SHA1_KDF, CKD_SHA256_KDF, 0x77};
        CK_ECDH1_DERIVE_PARAMS ec = {fuzz_pick(in, kdfs, 4), 0, NULL, len, len ? scratch : NULL};
        if (fuzz_u8(in) % 4 == 0) {
            size_t sl;
            const uint8_t *sd = fuzz_bytes(in, 64, &sl);
            ec.pSharedData = (CK_BYTE_PTR)sd;
            ec.ulSharedDataLen = sl;
        }
        if (fuzz_u8(in) % 4 == 0) {
            /* A real point: the EC key's own CKA_EC_POINT. */
            CK_ATTRIBUTE a = {CKA_EC_POINT, scratch, scratch_len};
            if (f->C_GetAttributeValue(sess, keys[2], &a, 1) == CKR_OK) {
                ec.pPublicData = scratch;
                ec.ulPublicDataLen = a.ulValueLen;
                if (a.ulValueLen > 2 && fuzz_u8(in) % 2)
                    ec.ulPublicDataLen -= 2; /* drop the DER wrapping: raw point */
                if (a.ulValueLen > 2 && ec.ulPublicDataLen != a.ulValueLen)
                    ec.pPublicData = scratch + 2;
            }
        }
        p = malloc(sizeof(ec));
        if (p)
            memcpy(p, &ec, sizeof(ec));
        *plen = sizeof(ec);
        return p;
    }
    }
}

/* Run one single-part operation: length query, too-short buffer, real call. */
typedef CK_RV (*one_shot)(CK_SESSION_HANDLE, CK_BYTE_PTR, CK_ULONG, CK_BYTE_PTR, CK_ULONG_PTR);

static void run_one_shot(one_shot fn, const uint8_t *in, size_t in_len, uint8_t mode)
{
    CK_ULONG len = 0;
    CK_RV rv = fn(sess, (CK_BYTE_PTR)in, in_len, NULL, &len);
    if (rv != CKR_OK)
        return; /* the operation ended */
    FUZZ_CHECK(len <= 64 * 1024);
    uint8_t *out = malloc(len + 1);
    FUZZ_CHECK(out != NULL);
    if (mode & 1 && len > 0) {
        CK_ULONG small = len - 1;
        rv = fn(sess, (CK_BYTE_PTR)in, in_len, out, &small);
        FUZZ_CHECK(rv == CKR_BUFFER_TOO_SMALL || rv == CKR_OK || small <= len);
        if (rv != CKR_BUFFER_TOO_SMALL) {
            free(out);
            return;
        }
    }
    CK_ULONG got = len;
    rv = fn(sess, (CK_BYTE_PTR)in, in_len, out, &got);
    FUZZ_CHECK(rv != CKR_OK || got <= len);
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct fuzz_in in = {data, size};
    uint8_t scratch[512];
    sess = fuzz_session(false);
    uint8_t op = fuzz_u8(&in) % 8;
    uint8_t mode = fuzz_u8(&in);
    CK_OBJECT_HANDLE key = keys[fuzz_u8(&in) % 5];
    if (mode & 0x80)
        key = 0x7fffffff; /* a handle nobody made */
    CK_MECHANISM m;
    m.mechanism = fuzz_u8(&in) % 8 ? fuzz_pick(&in, fuzz_mechs, fuzz_n_mechs) : fuzz_ulong(&in);
    m.pParameter = make_param(&in, &m.ulParameterLen, scratch, sizeof(scratch));
    size_t dlen;
    const uint8_t *d = fuzz_bytes(&in, 1024, &dlen);
    CK_RV rv;

    switch (op) {
    case 0: /* sign, single or multi-part */
        if (f->C_SignInit(sess, &m, key) != CKR_OK)
            break;
        if (mode & 2) {
            run_one_shot(f->C_Sign, d, dlen, mode);
        } else {
            rv = f->C_SignUpdate(sess, (CK_BYTE_PTR)d, dlen);
            if (rv == CKR_OK) {
                uint8_t sig[1024];
                CK_ULONG sl = (mode & 4) ? 1 : sizeof(sig);
                rv = f->C_SignFinal(sess, sig, &sl);
                if (rv == CKR_BUFFER_TOO_SMALL) {
                    sl = sizeof(sig);
                    (void)f->C_SignFinal(sess, sig, &sl);
                }
            }
        }
        break;
    case 1: { /* verify with a signature from the input */
        if (f->C_VerifyInit(sess, &m, key) != CKR_OK)
            break;
        size_t sl;
        const uint8_t *s = fuzz_bytes(&in, 1024, &sl);
        if (mode & 2)
            (void)f->C_Verify(sess, (CK_BYTE_PTR)d, dlen, (CK_BYTE_PTR)s, sl);
        else if (f->C_VerifyUpdate(sess, (CK_BYTE_PTR)d, dlen) == CKR_OK)
            (void)f->C_VerifyFinal(sess, (CK_BYTE_PTR)s, sl);
        break;
    }
    case 2:
        if (f->C_EncryptInit(sess, &m, key) == CKR_OK)
            run_one_shot(f->C_Encrypt, d, dlen, mode);
        break;
    case 3:
        if (f->C_DecryptInit(sess, &m, key) == CKR_OK)
            run_one_shot(f->C_Decrypt, d, dlen, mode);
        break;
    case 4:
        if (f->C_DigestInit(sess, &m) != CKR_OK)
            break;
        if (mode & 2)
            run_one_shot(f->C_Digest, d, dlen, mode);
        else if (f->C_DigestUpdate(sess, (CK_BYTE_PTR)d, dlen) == CKR_OK) {
            uint8_t md[128];
            CK_ULONG ml = sizeof(md);
            if (mode & 4)
                (void)f->C_DigestKey(sess, key);
            (void)f->C_DigestFinal(sess, md, &ml);
        }
        break;
    case 5:
        if (f->C_SignRecoverInit(sess, &m, key) == CKR_OK)
            run_one_shot(f->C_SignRecover, d, dlen, mode);
        break;
    case 6:
        if (f->C_VerifyRecoverInit(sess, &m, key) == CKR_OK)
            run_one_shot(f->C_VerifyRecover, d, dlen, mode);
        break;
    default: {
        CK_ATTRIBUTE t[8];
        uint8_t vals[8 * 16];
        CK_ULONG n = fuzz_template(&in, t, 8, vals);
        CK_OBJECT_HANDLE out = CK_INVALID_HANDLE;
        if (f->C_DeriveKey(sess, &m, key, t, n, &out) == CKR_OK) {
            /* The template may have said CKA_DESTROYABLE = FALSE. */
            CK_RV drv = f->C_DestroyObject(sess, out);
            FUZZ_CHECK(drv == CKR_OK || drv == CKR_ACTION_PROHIBITED);
        }
        break;
    }
    }
    /* Closing the session ends whatever operation is still active. */
    FUZZ_CHECK(f->C_CloseSession(sess) == CKR_OK);
    free(m.pParameter);
    return 0;
}
