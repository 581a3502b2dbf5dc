/*
 * Attestation facts of TPM keys (issue 7) against swtpm, run by
 * tests/integration/tpm_attest.sh: CKA_KSP11_TPM_PUBLIC is the key's TPM
 * public area (checked field by field: the key it holds is the PKCS#11
 * public key; fixedTPM, fixedParent and sensitiveDataOrigin are set) and
 * CKA_KSP11_TPM_NAME is its TPM name, recomputed here with OpenSSL; both are
 * read-only; software keys have them empty. C_KSP11_AttestKey's bundle:
 * TPM2_CertifyCreation over the key's name and our nonce, signed by the
 * endorsement-hierarchy AK (verified with OpenSSL, and refused once
 * tampered with), the AK and EK public areas; software keys refused.
 * Environment: KSP11_ITEST_TCTI, the swtpm TCTI.
 */
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <tss2/tss2_mu.h>

#include "p11tpm.h"

static void bytes_attr(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE t, uint8_t **v,
                       CK_ULONG *len)
{
    *v = NULL;
    *len = 0;
    KSP_ASSERT_OK(ksp_test_get_attr(s, h, t, v, len));
}

/* The public area and name of one half, parsed and checked. */
static void check_half(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_KEY_TYPE kt, TPM2B_PUBLIC *out,
                       uint8_t name_out[34])
{
    uint8_t *area = NULL, *name = NULL, *v = NULL;
    CK_ULONG alen = 0, nlen = 0, vlen = 0;
    size_t off = 0;
    uint8_t tpmt[sizeof(TPMT_PUBLIC)], md[32];
    size_t tlen = 0;
    unsigned mdlen = 0;
    TPMA_OBJECT want =
        TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN;

    bytes_attr(s, h, CKA_KSP11_TPM_PUBLIC, &area, &alen);
    bytes_attr(s, h, CKA_KSP11_TPM_NAME, &name, &nlen);
    memset(out, 0, sizeof(*out));
    ck_assert_msg(alen > 0 && Tss2_MU_TPM2B_PUBLIC_Unmarshal(area, alen, &off, out) == 0 &&
                      off == alen,
                  "CKA_KSP11_TPM_PUBLIC (%lu bytes) is not a TPM2B_PUBLIC", alen);
    ck_assert_msg((out->publicArea.objectAttributes & want) == want,
                  "object attributes 0x%x lack fixedTPM|fixedParent|sensitiveDataOrigin",
                  (unsigned)out->publicArea.objectAttributes);
    /* The name: nameAlg || SHA-256(TPMT_PUBLIC), recomputed independently. */
    ck_assert(Tss2_MU_TPMT_PUBLIC_Marshal(&out->publicArea, tpmt, sizeof(tpmt), &tlen) == 0);
    ck_assert(EVP_Digest(tpmt, tlen, md, &mdlen, EVP_sha256(), NULL) == 1);
    ck_assert_uint_eq(out->publicArea.nameAlg, TPM2_ALG_SHA256);
    ck_assert_msg(nlen == 34 && name[0] == 0x00 && name[1] == 0x0b && memcmp(name + 2, md, 32) == 0,
                  "CKA_KSP11_TPM_NAME is not the name of CKA_KSP11_TPM_PUBLIC");
    memcpy(name_out, name, 34);
    /* The key in the public area is the PKCS#11 public key. */
    if (kt == CKK_RSA) {
        bytes_attr(s, h, CKA_MODULUS, &v, &vlen);
        ck_assert_uint_eq(out->publicArea.type, TPM2_ALG_RSA);
        ck_assert_msg(vlen == out->publicArea.unique.rsa.size &&
                          memcmp(v, out->publicArea.unique.rsa.buffer, vlen) == 0,
                      "TPM public area holds another modulus than CKA_MODULUS");
    } else {
        const TPMS_ECC_POINT *q = &out->publicArea.unique.ecc;
        uint8_t *params = NULL;
        CK_ULONG plen = 0;

        bytes_attr(s, h, CKA_EC_PARAMS, &params, &plen);
        ck_assert_uint_eq(out->publicArea.type, TPM2_ALG_ECC);
        ck_assert_uint_eq(out->publicArea.parameters.eccDetail.curveID, TPM2_ECC_NIST_P256);
        free(params);
        if (ksp_test_get_attr(s, h, CKA_EC_POINT, &v, &vlen) == CKR_OK) {
            /* DER OCTET STRING (0x04 0x41) around 04 || X || Y. */
            ck_assert_msg(vlen == 67 && v[2] == 0x04 && q->x.size == 32 && q->y.size == 32 &&
                              memcmp(v + 3, q->x.buffer, 32) == 0 &&
                              memcmp(v + 35, q->y.buffer, 32) == 0,
                          "TPM public area holds another point than CKA_EC_POINT");
        }
    }
    free(v);
    free(area);
    free(name);
}

START_TEST(tpm_public_and_name)
{
    CK_SESSION_HANDLE s = ksp_test_ready("attest");
    CK_KEY_TYPE kts[] = {CKK_RSA, CKK_EC};

    for (int i = 0; i < 2; i++) {
        struct pair p;
        TPM2B_PUBLIC a, b;
        uint8_t na[34], nb[34];
        uint8_t junk[4] = {1, 2, 3, 4};
        CK_ATTRIBUTE set = {CKA_KSP11_TPM_NAME, junk, sizeof(junk)};

        gen_ok(s, kts[i], i == 0 ? "rsa" : "ec", true, &p);
        check_in_tpm(s, &p, "attested key");
        check_half(s, p.priv, kts[i], &a, na);
        check_half(s, p.pub, kts[i], &b, nb);
        ck_assert_msg(memcmp(na, nb, sizeof(na)) == 0, "the halves have different TPM names");
        /* Read-only, like the other vendor attributes. */
        KSP_ASSERT_RV(P11->C_SetAttributeValue(s, p.priv, &set, 1), CKR_ATTRIBUTE_READ_ONLY);
        set.type = CKA_KSP11_TPM_PUBLIC;
        KSP_ASSERT_RV(P11->C_SetAttributeValue(s, p.pub, &set, 1), CKR_ATTRIBUTE_READ_ONLY);
    }
}
END_TEST

/* RSA-4096 is beyond swtpm: the key goes to software and has no TPM facts. */
START_TEST(software_key_has_none)
{
    CK_SESSION_HANDLE s = ksp_test_ready("soft");
    CK_OBJECT_HANDLE pub, priv;
    uint8_t *v = NULL;
    CK_ULONG len = 1;

    ksp_test_gen_rsa(s, 4096, "big", true, &pub, &priv);
    ck_assert_uint_eq(ksp_test_get_ulong(s, priv, CKA_KSP11_BACKEND), KSP11_BACKEND_SOFT);
    bytes_attr(s, priv, CKA_KSP11_TPM_PUBLIC, &v, &len);
    ck_assert_uint_eq(len, 0);
    free(v);
    bytes_attr(s, pub, CKA_KSP11_TPM_NAME, &v, &len);
    ck_assert_uint_eq(len, 0);
    free(v);
}
END_TEST

static const CK_KSP11_FUNCTION_LIST *vendor(void)
{
    CK_RV (*get)(CK_UTF8CHAR_PTR, CK_VERSION_PTR, CK_INTERFACE_PTR_PTR, CK_FLAGS) = NULL;
    CK_INTERFACE *iface = NULL;
    const CK_KSP11_FUNCTION_LIST *fl = NULL;

    *(void **)&get = ksp_test_sym("C_GetInterface");
    ck_assert(get != NULL);
    KSP_ASSERT_OK(get((CK_UTF8CHAR_PTR)KSP11_INTERFACE_NAME, NULL, &iface, 0));
    fl = iface->pFunctionList;
    ck_assert_msg(fl->version.major == 1 && fl->version.minor >= 1, "vendor interface %u.%u",
                  fl->version.major, fl->version.minor);
    return fl;
}

/* The records of a bundle: "KSPA" 1 0 0 0, then (tag u16, len u32, value). */
static const uint8_t *record(const uint8_t *b, size_t len, uint16_t tag, size_t *rlen)
{
    size_t at = 8;

    ck_assert(len >= 8 && memcmp(b, "KSPA\x01\x00\x00\x00", 8) == 0);
    while (at + 6 <= len) {
        uint16_t t = (uint16_t)(b[at] << 8 | b[at + 1]);
        size_t n =
            (size_t)b[at + 2] << 24 | (size_t)b[at + 3] << 16 | (size_t)b[at + 4] << 8 | b[at + 5];

        ck_assert(n <= len - at - 6);
        if (t == tag) {
            *rlen = n;
            return b + at + 6;
        }
        at += 6 + n;
    }
    return NULL;
}

static EVP_PKEY *ak_key(const TPMT_PUBLIC *ak)
{
    uint8_t pt[65];
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    EVP_PKEY *pk = NULL;

    ck_assert(ak->unique.ecc.x.size == 32 && ak->unique.ecc.y.size == 32);
    pt[0] = 4;
    memcpy(pt + 1, ak->unique.ecc.x.buffer, 32);
    memcpy(pt + 33, ak->unique.ecc.y.buffer, 32);
    ck_assert(bld && ctx);
    ck_assert(OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0));
    ck_assert(OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt)));
    params = OSSL_PARAM_BLD_to_param(bld);
    ck_assert(EVP_PKEY_fromdata_init(ctx) == 1 &&
              EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) == 1);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    return pk;
}

/* Does the AK's ECDSA signature cover data? */
static bool ak_signed(EVP_PKEY *ak, const TPMT_SIGNATURE *sig, const uint8_t *data, size_t len)
{
    uint8_t md[32], der[128];
    unsigned mdlen = 0;
    unsigned char *p = der;
    ECDSA_SIG *es = ECDSA_SIG_new();
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(ak, NULL);
    int dlen = 0, ok = 0;

    ck_assert(sig->sigAlg == TPM2_ALG_ECDSA && sig->signature.ecdsa.hash == TPM2_ALG_SHA256);
    ck_assert(ECDSA_SIG_set0(es,
                             BN_bin2bn(sig->signature.ecdsa.signatureR.buffer,
                                       sig->signature.ecdsa.signatureR.size, NULL),
                             BN_bin2bn(sig->signature.ecdsa.signatureS.buffer,
                                       sig->signature.ecdsa.signatureS.size, NULL)) == 1);
    dlen = i2d_ECDSA_SIG(es, &p);
    ck_assert(dlen > 0);
    ck_assert(EVP_Digest(data, len, md, &mdlen, EVP_sha256(), NULL) == 1);
    ck_assert(ctx != NULL && EVP_PKEY_verify_init(ctx) == 1);
    ok = EVP_PKEY_verify(ctx, der, (size_t)dlen, md, mdlen);
    EVP_PKEY_CTX_free(ctx);
    ECDSA_SIG_free(es);
    return ok == 1;
}

START_TEST(attest_key_bundle)
{
    const CK_KSP11_FUNCTION_LIST *v = vendor();
    CK_SESSION_HANDLE s = ksp_test_ready("bundle");
    static const uint8_t nonce[16] = "ca-nonce-0123456";
    CK_KEY_TYPE kts[] = {CKK_RSA, CKK_EC};
    uint8_t first_ak[sizeof(TPM2B_PUBLIC)];
    size_t first_ak_len = 0;

    for (int i = 0; i < 2; i++) {
        struct pair p;
        uint8_t *b = NULL, *area = NULL, *name = NULL;
        CK_ULONG blen = 0, alen = 0, nlen = 0;
        const uint8_t *r = NULL;
        size_t rlen = 0, off = 0;
        TPM2B_ATTEST info;
        TPMS_ATTEST at;
        TPMT_SIGNATURE sig;
        TPM2B_PUBLIC ak, ek;
        EVP_PKEY *akpk = NULL;

        gen_ok(s, kts[i], i == 0 ? "rsa" : "ec", true, &p);
        KSP_ASSERT_OK(v->C_KSP11_AttestKey(s, p.priv, nonce, sizeof(nonce), NULL, &blen));
        b = malloc(blen);
        KSP_ASSERT_OK(v->C_KSP11_AttestKey(s, p.priv, nonce, sizeof(nonce), b, &blen));
        bytes_attr(s, p.priv, CKA_KSP11_TPM_PUBLIC, &area, &alen);
        bytes_attr(s, p.priv, CKA_KSP11_TPM_NAME, &name, &nlen);
        /* 1: the key's public area, as the attribute says. */
        r = record(b, blen, 1, &rlen);
        ck_assert_msg(r != NULL && rlen == alen && memcmp(r, area, alen) == 0,
                      "bundle key public area differs from CKA_KSP11_TPM_PUBLIC");
        /* 2: TPMS_ATTEST of type creation, over our nonce and the key's name. */
        r = record(b, blen, 2, &rlen);
        memset(&info, 0, sizeof(info));
        memset(&at, 0, sizeof(at));
        ck_assert(r != NULL && Tss2_MU_TPM2B_ATTEST_Unmarshal(r, rlen, &off, &info) == 0);
        off = 0;
        ck_assert(Tss2_MU_TPMS_ATTEST_Unmarshal(info.attestationData, info.size, &off, &at) == 0);
        ck_assert_uint_eq(at.magic, TPM2_GENERATED_VALUE);
        ck_assert_uint_eq(at.type, TPM2_ST_ATTEST_CREATION);
        ck_assert(at.extraData.size == sizeof(nonce) &&
                  memcmp(at.extraData.buffer, nonce, sizeof(nonce)) == 0);
        ck_assert_msg(at.attested.creation.objectName.size == nlen &&
                          memcmp(at.attested.creation.objectName.name, name, nlen) == 0,
                      "certified name is not the key's name");
        /* 4: the AK - restricted signing, fixedTPM; the same for every key. */
        r = record(b, blen, 4, &rlen);
        off = 0;
        memset(&ak, 0, sizeof(ak));
        ck_assert(r != NULL && Tss2_MU_TPM2B_PUBLIC_Unmarshal(r, rlen, &off, &ak) == 0);
        ck_assert((ak.publicArea.objectAttributes &
                   (TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_FIXEDTPM)) ==
                  (TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_FIXEDTPM));
        if (i == 0) {
            memcpy(first_ak, r, rlen);
            first_ak_len = rlen;
        } else {
            ck_assert_msg(rlen == first_ak_len && memcmp(r, first_ak, rlen) == 0,
                          "the AK changed between two attestations");
        }
        /* 3: the AK's signature over the TPMS_ATTEST, and not over a changed one. */
        r = record(b, blen, 3, &rlen);
        off = 0;
        memset(&sig, 0, sizeof(sig));
        ck_assert(r != NULL && Tss2_MU_TPMT_SIGNATURE_Unmarshal(r, rlen, &off, &sig) == 0);
        akpk = ak_key(&ak.publicArea);
        ck_assert_msg(ak_signed(akpk, &sig, info.attestationData, info.size),
                      "the AK's signature does not verify");
        info.attestationData[info.size - 1] ^= 1;
        ck_assert_msg(!ak_signed(akpk, &sig, info.attestationData, info.size),
                      "a tampered TPMS_ATTEST still verifies");
        EVP_PKEY_free(akpk);
        /* 5: the EK (RSA 2048, template L-1); 7: the nonce. */
        r = record(b, blen, 5, &rlen);
        off = 0;
        memset(&ek, 0, sizeof(ek));
        ck_assert(r != NULL && Tss2_MU_TPM2B_PUBLIC_Unmarshal(r, rlen, &off, &ek) == 0);
        ck_assert(ek.publicArea.type == TPM2_ALG_RSA && ek.publicArea.unique.rsa.size == 256);
        r = record(b, blen, 7, &rlen);
        ck_assert(r != NULL && rlen == sizeof(nonce) && memcmp(r, nonce, rlen) == 0);
        /* Too small a buffer: the exact length, nothing else. */
        {
            CK_ULONG small = 10;
            KSP_ASSERT_RV(v->C_KSP11_AttestKey(s, p.priv, nonce, sizeof(nonce), b, &small),
                          CKR_BUFFER_TOO_SMALL);
            ck_assert(small > 10 && small <= blen + 200);
        }
        free(b);
        free(area);
        free(name);
    }
    /* Software keys have no attestation. */
    {
        CK_OBJECT_HANDLE pub, priv;
        CK_ULONG len = 0;

        ksp_test_gen_rsa(s, 4096, "soft", true, &pub, &priv);
        KSP_ASSERT_RV(v->C_KSP11_AttestKey(s, priv, nonce, sizeof(nonce), NULL, &len),
                      CKR_KEY_FUNCTION_NOT_PERMITTED);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("attest");
    TCase *tc = NULL;

    add_tcase(s, "attest", true, &tc);
    tcase_add_test(tc, tpm_public_and_name);
    tcase_add_test(tc, software_key_has_none);
    tcase_add_test(tc, attest_key_bundle);
    return run_suite(s);
}
