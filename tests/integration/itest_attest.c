/*
 * Attestation facts of TPM keys (issue 7) against swtpm, run by
 * tests/integration/tpm_attest.sh: CKA_KSP11_TPM_PUBLIC is the key's TPM
 * public area (checked field by field: the key it holds is the PKCS#11
 * public key; fixedTPM, fixedParent and sensitiveDataOrigin are set) and
 * CKA_KSP11_TPM_NAME is its TPM name, recomputed here with OpenSSL; both are
 * read-only; software keys have them empty.
 * Environment: KSP11_ITEST_TCTI, the swtpm TCTI.
 */
#include <openssl/evp.h>
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

int main(void)
{
    Suite *s = suite_create("attest");
    TCase *tc = NULL;

    add_tcase(s, "attest", true, &tc);
    tcase_add_test(tc, tpm_public_and_name);
    tcase_add_test(tc, software_key_has_none);
    return run_suite(s);
}
