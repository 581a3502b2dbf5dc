/*
 * The TPM ceiling of the benchmark: plain tpm2-tss ESAPI, the key resident,
 * password authorisation, one TPM2_Sign per signature. This is the fastest a
 * client of this TPM can sign; ksp11 is measured against it. Every signature
 * is verified with OpenSSL.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>
#include <tss2/tss2_esys.h>
#include <tss2/tss2_tctildr.h>

#include "bench.h"

struct bench_tpm {
    TSS2_TCTI_CONTEXT *tcti;
    ESYS_CONTEXT *esys;
    ESYS_TR primary;
    bool primary_persistent;
    TPM2B_PUBLIC *pub[2];
    TPM2B_PRIVATE *priv[2];
    EVP_PKEY *pk[2];
};

static const TPM2B_AUTH password = {.size = 16, .buffer = "bench-password!!"};

static void srk_template(TPM2B_PUBLIC *t)
{
    memset(t, 0, sizeof(*t));
    t->publicArea.type = TPM2_ALG_ECC;
    t->publicArea.nameAlg = TPM2_ALG_SHA256;
    t->publicArea.objectAttributes = TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT |
                                     TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                     TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                                     TPMA_OBJECT_NODA;
    t->publicArea.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_AES;
    t->publicArea.parameters.eccDetail.symmetric.keyBits.aes = 128;
    t->publicArea.parameters.eccDetail.symmetric.mode.aes = TPM2_ALG_CFB;
    t->publicArea.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
    t->publicArea.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
    t->publicArea.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
}

static void key_template(TPM2B_PUBLIC *t, char which)
{
    memset(t, 0, sizeof(*t));
    t->publicArea.nameAlg = TPM2_ALG_SHA256;
    t->publicArea.objectAttributes = TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_FIXEDTPM |
                                     TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |
                                     TPMA_OBJECT_USERWITHAUTH;
    if (which == 'r') {
        t->publicArea.type = TPM2_ALG_RSA;
        t->publicArea.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
        t->publicArea.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
        t->publicArea.parameters.rsaDetail.keyBits = 2048;
    } else {
        t->publicArea.type = TPM2_ALG_ECC;
        t->publicArea.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
        t->publicArea.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
        t->publicArea.parameters.eccDetail.curveID = TPM2_ECC_NIST_P256;
        t->publicArea.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
    }
}

static void primary(struct bench_tpm *t)
{
    ESYS_TR tr = ESYS_TR_NONE;
    TPM2B_PUBLIC *p = NULL;
    if (Esys_TR_FromTPMPublic(t->esys, 0x81000001u, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                              &tr) == TSS2_RC_SUCCESS &&
        Esys_ReadPublic(t->esys, tr, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &p, NULL, NULL) ==
            TSS2_RC_SUCCESS) {
        Esys_Free(p);
        t->primary = tr;
        t->primary_persistent = true;
        return;
    }
    TPM2B_SENSITIVE_CREATE sens = {0};
    TPM2B_PUBLIC tmpl;
    TPM2B_DATA outside = {0};
    TPML_PCR_SELECTION pcr = {0};
    srk_template(&tmpl);
    TSS2_RC rc =
        Esys_CreatePrimary(t->esys, ESYS_TR_RH_OWNER, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                           &sens, &tmpl, &outside, &pcr, &t->primary, NULL, NULL, NULL, NULL);
    if (rc != TSS2_RC_SUCCESS)
        bench_die("raw TPM: CreatePrimary: 0x%x", rc);
    t->primary_persistent = false;
}

static void primary_done(struct bench_tpm *t)
{
    if (!t->primary_persistent)
        Esys_FlushContext(t->esys, t->primary);
    else
        Esys_TR_Close(t->esys, &t->primary);
    t->primary = ESYS_TR_NONE;
}

/* swtpm serves one connection at a time: the ceiling and the module take
 * turns, each connected only for its own part of a round. */
void bench_tpm_connect(struct bench_tpm *t)
{
    const char *conf = getenv("KSP11_TCTI");
    if (t->esys)
        return;
    if (Tss2_TctiLdr_Initialize(conf, &t->tcti) != TSS2_RC_SUCCESS ||
        Esys_Initialize(&t->esys, t->tcti, NULL) != TSS2_RC_SUCCESS)
        bench_die("raw TPM: cannot connect to %s", conf);
}

void bench_tpm_disconnect(struct bench_tpm *t)
{
    if (!t->esys)
        return;
    Esys_Finalize(&t->esys);
    Tss2_TctiLdr_Finalize(&t->tcti);
    t->esys = NULL;
    t->tcti = NULL;
}

struct bench_tpm *bench_tpm_open(void)
{
    const char *conf = getenv("KSP11_TCTI");
    if (!conf || !*conf)
        return NULL;
    struct bench_tpm *t = calloc(1, sizeof(*t));
    if (!t)
        bench_die("oom");
    bench_tpm_connect(t);
    primary(t);
    for (int i = 0; i < 2; i++) {
        TPM2B_SENSITIVE_CREATE sens = {0};
        TPM2B_PUBLIC tmpl;
        TPM2B_DATA outside = {0};
        TPML_PCR_SELECTION pcr = {0};
        sens.sensitive.userAuth = password;
        key_template(&tmpl, i == 0 ? 'r' : 'e');
        TSS2_RC rc =
            Esys_Create(t->esys, t->primary, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &sens,
                        &tmpl, &outside, &pcr, &t->priv[i], &t->pub[i], NULL, NULL, NULL);
        if (rc != TSS2_RC_SUCCESS)
            bench_die("raw TPM: Create: 0x%x", rc);
        const TPMT_PUBLIC *pa = &t->pub[i]->publicArea;
        if (i == 0) {
            static const uint8_t e65537[] = {1, 0, 1};
            t->pk[i] = bench_pkey_rsa(pa->unique.rsa.buffer, pa->unique.rsa.size, e65537, 3);
        } else {
            uint8_t pt[65];
            pt[0] = 4;
            memcpy(pt + 1, pa->unique.ecc.x.buffer, 32);
            memcpy(pt + 33, pa->unique.ecc.y.buffer, 32);
            t->pk[i] = bench_pkey_p256(pt, sizeof(pt));
        }
    }
    primary_done(t);
    return t;
}

double bench_tpm_sign(struct bench_tpm *t, char which, int n)
{
    int i = which == 'r' ? 0 : 1;
    ESYS_TR key = ESYS_TR_NONE;
    bench_tpm_connect(t);
    primary(t);
    TSS2_RC rc = Esys_Load(t->esys, t->primary, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                           t->priv[i], t->pub[i], &key);
    if (rc != TSS2_RC_SUCCESS)
        bench_die("raw TPM: Load: 0x%x", rc);
    primary_done(t);
    Esys_TR_SetAuth(t->esys, key, &password);
    TPMT_SIGNATURE **sigs = calloc((size_t)n, sizeof(*sigs));
    uint8_t(*dg)[32] = calloc((size_t)n, 32);
    if (!sigs || !dg)
        bench_die("oom");
    RAND_bytes((uint8_t *)dg, 32 * n);
    TPMT_SIG_SCHEME scheme = {0};
    TPMT_TK_HASHCHECK ticket = {.tag = TPM2_ST_HASHCHECK, .hierarchy = TPM2_RH_NULL};
    scheme.scheme = i == 0 ? TPM2_ALG_RSASSA : TPM2_ALG_ECDSA;
    scheme.details.any.hashAlg = TPM2_ALG_SHA256;
    double t0 = bench_now();
    for (int k = 0; k < n; k++) {
        TPM2B_DIGEST d = {.size = 32};
        memcpy(d.buffer, dg[k], 32);
        rc = Esys_Sign(t->esys, key, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &d, &scheme,
                       &ticket, &sigs[k]);
        if (rc != TSS2_RC_SUCCESS)
            bench_die("raw TPM: Sign: 0x%x", rc);
    }
    double el = bench_now() - t0;
    Esys_FlushContext(t->esys, key);
    for (int k = 0; k < n; k++) {
        bool ok = false;
        if (i == 0) {
            ok = bench_verify(t->pk[0], 'p', true, dg[k], 32, sigs[k]->signature.rsassa.sig.buffer,
                              sigs[k]->signature.rsassa.sig.size);
        } else {
            uint8_t rs[64] = {0};
            const TPM2B_ECC_PARAMETER *r = &sigs[k]->signature.ecdsa.signatureR;
            const TPM2B_ECC_PARAMETER *s = &sigs[k]->signature.ecdsa.signatureS;
            if (r->size <= 32 && s->size <= 32) {
                memcpy(rs + 32 - r->size, r->buffer, r->size);
                memcpy(rs + 64 - s->size, s->buffer, s->size);
                ok = bench_verify(t->pk[1], 'e', true, dg[k], 32, rs, 64);
            }
        }
        if (!ok)
            bench_die("raw TPM: signature %d does not verify", k);
        Esys_Free(sigs[k]);
    }
    free(sigs);
    free(dg);
    return el;
}

void bench_tpm_close(struct bench_tpm *t)
{
    if (!t)
        return;
    for (int i = 0; i < 2; i++) {
        Esys_Free(t->pub[i]);
        Esys_Free(t->priv[i]);
        EVP_PKEY_free(t->pk[i]);
    }
    bench_tpm_disconnect(t);
    free(t);
}
