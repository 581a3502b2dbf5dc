/*
 * The signing hot path of the TPM backend: our own salted HMAC session,
 * computed with SAPI + MU and OpenSSL on ksp11's private library context,
 * instead of ESAPI's session code (tpm2-tss 3.2.1 builds a fresh OpenSSL
 * library context for every hash, HMAC and nonce: ~2 ms of host CPU per
 * authorised command, more than the TPM itself needs for an ECDSA).
 *
 * Security is ESAPI's: the key's authValue never crosses the TPM interface.
 * The session is salted with the storage primary (TPM 2.0 Part 1 §19.6.13,
 * §11.4.10: the salt travels ECDH- or RSA-OAEP-encrypted to the primary), so
 * the session key is unknown on the bus; each command carries
 * HMAC(sessionKey || authValue, cpHash || nonceCaller || nonceTPM || attrs)
 * (Part 1 §19.6.5, §19.6.8) and each response's HMAC is checked before its
 * result is used. Only operations whose input and output are public use this
 * path: TPM2_Sign (PSS, ECDSA) and TPM2_RSA_Decrypt on a block that is a
 * signature encoding (the signature is the output). Decryptions and ECDH
 * keep ESAPI with response encryption (tpm_ops.c).
 *
 * Behind a resource manager the key stays loaded and the session continues
 * across calls (the manager flushes both when this process goes), so a
 * steady-state signature is one TPM command. Without one, nothing of ours
 * stays loaded between calls (tpm_ctx.c keep_primary()): load, sign, flush;
 * unless KSP11_TPM_KEEP=1 says ksp11 alone uses that TPM, when the
 * cross-process lock's record (tpm_lock.c) lets the next process flush what
 * we kept.
 */
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/rsa.h>
#include <tss2/tss2_sys.h>

#include "log.h"
#include "ossl_ctx.h"
#include "secmem.h"
#include "swcrypto.h"
#include "tpm_int.h"

#define AREA KSP_TPM_AREA
#define HLEN 32u /* SHA-256: the session's and the keys' nameAlg */
/* TPM warnings that mean "send it again" (ESAPI retries them internally;
 * SAPI does not): the command did not run. */
#define RC_AGAIN(rc) ((rc) == TPM2_RC_RETRY || (rc) == TPM2_RC_YIELDED || (rc) == TPM2_RC_TESTING)
#define MAX_AGAIN    32
/* Internal to this file: run_authorised saw RC_AGAIN, prepare and run again. */
#define CKR_AGAIN CKR_FUNCTION_REJECTED

/* ---- crypto on the private library context ---- */

static bool sha256(const uint8_t *const *parts, const size_t *lens, size_t n, uint8_t out[HLEN])
{
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    EVP_MD *md = EVP_MD_fetch(ksp_ossl_ctx(), "SHA256", NULL);
    bool ok = c && md && EVP_DigestInit_ex(c, md, NULL) == 1;
    for (size_t i = 0; ok && i < n; i++)
        ok = EVP_DigestUpdate(c, parts[i], lens[i]) == 1;
    ok = ok && EVP_DigestFinal_ex(c, out, NULL) == 1;
    EVP_MD_CTX_free(c);
    EVP_MD_free(md);
    return ok;
}

static bool hmac256(const uint8_t *key, size_t klen, const uint8_t *const *parts,
                    const size_t *lens, size_t n, uint8_t out[HLEN])
{
    EVP_MAC *mac = EVP_MAC_fetch(ksp_ossl_ctx(), "HMAC", NULL);
    EVP_MAC_CTX *c = mac ? EVP_MAC_CTX_new(mac) : NULL;
    OSSL_PARAM p[2] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, "SHA256", 0),
                       OSSL_PARAM_construct_end()};
    size_t olen = 0;
    bool ok = c && EVP_MAC_init(c, key, klen, p) == 1;
    for (size_t i = 0; ok && i < n; i++)
        ok = EVP_MAC_update(c, parts[i], lens[i]) == 1;
    ok = ok && EVP_MAC_final(c, out, &olen, HLEN) == 1 && olen == HLEN;
    EVP_MAC_CTX_free(c);
    EVP_MAC_free(mac);
    return ok;
}

static void be32(uint32_t v, uint8_t out[4])
{
    out[0] = (uint8_t)(v >> 24);
    out[1] = (uint8_t)(v >> 16);
    out[2] = (uint8_t)(v >> 8);
    out[3] = (uint8_t)v;
}

/* KDFa (Part 1 §11.4.10.2) for one SHA-256 block: sessionKey. */
static bool kdfa(const uint8_t *key, size_t klen, const char *label, const TPM2B_NONCE *u,
                 const TPM2B_NONCE *v, uint8_t out[HLEN])
{
    uint8_t ctr[4], bits[4];
    be32(1, ctr);
    be32(HLEN * 8, bits);
    const uint8_t *parts[] = {ctr, (const uint8_t *)label, u->buffer, v->buffer, bits};
    size_t lens[] = {4, strlen(label) + 1, u->size, v->size, 4};
    return hmac256(key, klen, parts, lens, 5, out);
}

/* ---- the salt (Part 1 §19.6.13, Part 1 Annex C.6.1 / B.10.3) ---- */

/* Key types by OID, not "EC"/"RSA": OpenSSL 3.0 maps those names to a NID and
 * then takes a host ENGINE registered as default for that NID (curl and
 * `openssl -engine pkcs11` register libp11's) even on our private context, and
 * an engine context cannot do fromdata. The OIDs are aliases of the default
 * provider's key managers with no NID mapping, so they always fetch from lc. */
#define KEYTYPE_EC  "1.2.840.10045.2.1"
#define KEYTYPE_RSA "1.2.840.113549.1.1.1"

/* A fresh P-256 key on lc (EVP_PKEY_Q_keygen would go by the name "EC"). */
static EVP_PKEY *ephemeral_p256(OSSL_LIB_CTX *lc)
{
    EVP_PKEY *k = NULL;
    EVP_PKEY_CTX *pc = EVP_PKEY_CTX_new_from_name(lc, KEYTYPE_EC, NULL);
    if (!pc || EVP_PKEY_keygen_init(pc) != 1 || EVP_PKEY_CTX_set_group_name(pc, "P-256") != 1 ||
        EVP_PKEY_generate(pc, &k) != 1) {
        EVP_PKEY_free(k);
        k = NULL;
    }
    EVP_PKEY_CTX_free(pc);
    return k;
}

/* ECC primary: ephemeral ECDH on P-256, salt = KDFe(Z, "SECRET", Qe.x, Qs.x). */
static CK_RV salt_ecc(const TPMT_PUBLIC *pp, uint8_t salt[HLEN], TPM2B_ENCRYPTED_SECRET *enc)
{
    CK_RV rv = CKR_DEVICE_ERROR;
    OSSL_LIB_CTX *lc = ksp_ossl_ctx();
    EVP_PKEY *eph = NULL, *peer = NULL;
    EVP_PKEY_CTX *pc = NULL;
    uint8_t pt[65], mine[65], z[HLEN];
    size_t zlen = sizeof(z), mlen = 0;
    const TPMS_ECC_POINT *q = &pp->unique.ecc;

    if (pp->parameters.eccDetail.curveID != TPM2_ECC_NIST_P256 || q->x.size != 32 ||
        q->y.size != 32)
        return CKR_FUNCTION_NOT_SUPPORTED;
    pt[0] = 0x04;
    memcpy(pt + 1, q->x.buffer, 32);
    memcpy(pt + 33, q->y.buffer, 32);
    OSSL_PARAM p[3] = {OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0),
                       OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt)),
                       OSSL_PARAM_construct_end()};
    pc = EVP_PKEY_CTX_new_from_name(lc, KEYTYPE_EC, NULL);
    if (!pc || EVP_PKEY_fromdata_init(pc) != 1 ||
        EVP_PKEY_fromdata(pc, &peer, EVP_PKEY_PUBLIC_KEY, p) != 1)
        goto out;
    EVP_PKEY_CTX_free(pc);
    pc = NULL;
    eph = ephemeral_p256(lc);
    if (!eph ||
        EVP_PKEY_get_octet_string_param(eph, OSSL_PKEY_PARAM_PUB_KEY, mine, sizeof(mine), &mlen) !=
            1 ||
        mlen != 65)
        goto out;
    pc = EVP_PKEY_CTX_new_from_pkey(lc, eph, NULL);
    if (!pc || EVP_PKEY_derive_init(pc) != 1 || EVP_PKEY_derive_set_peer(pc, peer) != 1 ||
        EVP_PKEY_derive(pc, z, &zlen) != 1 || zlen != 32)
        goto out;
    {
        uint8_t ctr[4];
        be32(1, ctr);
        const uint8_t *parts[] = {ctr, z, (const uint8_t *)"SECRET", mine + 1, q->x.buffer};
        size_t lens[] = {4, 32, 7, 32, 32};
        if (!sha256(parts, lens, 5, salt))
            goto out;
    }
    {
        TPMS_ECC_POINT e;
        size_t off = 0;
        memset(&e, 0, sizeof(e));
        e.x.size = 32;
        memcpy(e.x.buffer, mine + 1, 32);
        e.y.size = 32;
        memcpy(e.y.buffer, mine + 33, 32);
        if (Tss2_MU_TPMS_ECC_POINT_Marshal(&e, enc->secret, sizeof(enc->secret), &off) !=
            TSS2_RC_SUCCESS)
            goto out;
        enc->size = (UINT16)off;
    }
    rv = CKR_OK;
out:
    ksp_wipe(z, sizeof(z));
    EVP_PKEY_CTX_free(pc);
    EVP_PKEY_free(eph);
    EVP_PKEY_free(peer);
    return rv;
}

/* RSA primary: a random salt, RSA-OAEP(SHA-256, label "SECRET"). */
static CK_RV salt_rsa(const TPMT_PUBLIC *pp, uint8_t salt[HLEN], TPM2B_ENCRYPTED_SECRET *enc)
{
    CK_RV rv = CKR_DEVICE_ERROR;
    OSSL_LIB_CTX *lc = ksp_ossl_ctx();
    EVP_PKEY *pk = NULL;
    EVP_PKEY_CTX *pc = NULL;
    BIGNUM *n = NULL, *bn_e = NULL;
    OSSL_PARAM_BLD *b = NULL;
    OSSL_PARAM *p = NULL;
    char *label = NULL;
    uint8_t e[4] = {0, 1, 0, 1};
    size_t outlen = sizeof(enc->secret);
    uint32_t exp = pp->parameters.rsaDetail.exponent;

    if (pp->parameters.rsaDetail.keyBits != pp->unique.rsa.size * 8u)
        return CKR_FUNCTION_NOT_SUPPORTED;
    if (exp != 0)
        be32(exp, e);
    n = BN_bin2bn(pp->unique.rsa.buffer, pp->unique.rsa.size, NULL);
    bn_e = BN_bin2bn(e, 4, NULL);
    b = OSSL_PARAM_BLD_new();
    if (n && bn_e && b && OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_N, n) == 1 &&
        OSSL_PARAM_BLD_push_BN(b, OSSL_PKEY_PARAM_RSA_E, bn_e) == 1)
        p = OSSL_PARAM_BLD_to_param(b);
    pc = p ? EVP_PKEY_CTX_new_from_name(lc, KEYTYPE_RSA, NULL) : NULL;
    if (!pc || EVP_PKEY_fromdata_init(pc) != 1 ||
        EVP_PKEY_fromdata(pc, &pk, EVP_PKEY_PUBLIC_KEY, p) != 1)
        goto out;
    EVP_PKEY_CTX_free(pc);
    pc = EVP_PKEY_CTX_new_from_pkey(lc, pk, NULL);
    /* The label is "SECRET" with its NUL (Part 1 Annex B.10.3). */
    label = OPENSSL_malloc(7);
    if (!pc || !label || ksp_ossl_random(salt, HLEN) != 1 || EVP_PKEY_encrypt_init(pc) != 1 ||
        EVP_PKEY_CTX_set_rsa_padding(pc, RSA_PKCS1_OAEP_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_oaep_md_name(pc, "SHA256", NULL) != 1)
        goto out;
    memcpy(label, "SECRET", 7);
    if (EVP_PKEY_CTX_set0_rsa_oaep_label(pc, label, 7) != 1)
        goto out;
    label = NULL; /* owned by pc now */
    if (EVP_PKEY_encrypt(pc, enc->secret, &outlen, salt, HLEN) != 1)
        goto out;
    enc->size = (UINT16)outlen;
    rv = CKR_OK;
out:
    OPENSSL_free(label);
    EVP_PKEY_CTX_free(pc);
    EVP_PKEY_free(pk);
    OSSL_PARAM_free(p);
    OSSL_PARAM_BLD_free(b);
    BN_free(n);
    BN_free(bn_e);
    return rv;
}

/* ---- the session ---- */

void ksp_tpm_sess_end_inlock(struct ksp_backend *be, struct ksp_tpm_sess *s, bool flush)
{
    if (s->handle != 0 && flush && be->sys != NULL) {
        TSS2_RC rc = Tss2_Sys_FlushContext(be->sys, s->handle);
        /* Gone already (a failed last command may have ended it): fine,
         * and not a sign that the TPM lost our handles. */
        if (rc != TSS2_RC_SUCCESS)
            ksp_debug(AREA, "flushing our session 0x%08x: 0x%x", s->handle, (unsigned)rc);
    }
    ksp_wipe(s, sizeof(*s));
}

static CK_RV sess_start(struct ksp_backend *be, struct ksp_tpm_sess *s)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    TPM2B_ENCRYPTED_SECRET enc;
    TPM2B_NONCE caller, tpm;
    TPMT_SYM_DEF sym;
    TPMI_SH_AUTH_SESSION h = 0;
    TPM2_HANDLE parent = 0;
    uint8_t salt[HLEN];
    TSS2_RC rc = TSS2_RC_SUCCESS;

    rv = ksp_tpm_primary_inlock(be);
    if (rv != CKR_OK)
        return rv;
    if (!be->primary_pub_valid) {
        TPM2B_PUBLIC *pub = NULL;
        rc = Esys_ReadPublic(be->esys, be->primary, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, &pub,
                             NULL, NULL);
        if (rc != TSS2_RC_SUCCESS)
            return ksp_tpm_rv(be, rc, "TPM2_ReadPublic (primary)");
        be->primary_pub = *pub;
        be->primary_pub_valid = true;
        Esys_Free(pub);
    }
    if (Esys_TR_GetTpmHandle(be->esys, be->primary, &parent) != TSS2_RC_SUCCESS)
        return CKR_DEVICE_ERROR;
    memset(&enc, 0, sizeof(enc));
    rv = be->primary_pub.publicArea.type == TPM2_ALG_ECC
             ? salt_ecc(&be->primary_pub.publicArea, salt, &enc)
         : be->primary_pub.publicArea.type == TPM2_ALG_RSA
             ? salt_rsa(&be->primary_pub.publicArea, salt, &enc)
             : CKR_FUNCTION_NOT_SUPPORTED;
    if (rv != CKR_OK)
        goto out;
    memset(&caller, 0, sizeof(caller));
    memset(&tpm, 0, sizeof(tpm));
    caller.size = HLEN;
    if (ksp_ossl_random(caller.buffer, HLEN) != 1) {
        rv = CKR_FUNCTION_FAILED;
        goto out;
    }
    memset(&sym, 0, sizeof(sym));
    /* AES-128-CFB for the responses that carry a secret (unseal). */
    sym.algorithm = TPM2_ALG_AES;
    sym.keyBits.aes = 128;
    sym.mode.aes = TPM2_ALG_CFB;
    rc = Tss2_Sys_StartAuthSession(be->sys, parent, TPM2_RH_NULL, NULL, &caller, &enc, TPM2_SE_HMAC,
                                   &sym, TPM2_ALG_SHA256, &h, &tpm, NULL);
    if (rc != TSS2_RC_SUCCESS) {
        rv = ksp_tpm_rv(be, rc, "TPM2_StartAuthSession (own)");
        goto out;
    }
    memset(s, 0, sizeof(*s));
    s->handle = h;
    s->nonce_tpm = tpm;
    /* Part 1 §19.6.8: sessionKey = KDFa(salt, "ATH", nonceTPM, nonceCaller);
     * unbound, so the salt alone is the key. */
    if (!kdfa(salt, HLEN, "ATH", &tpm, &caller, s->key)) {
        ksp_tpm_sess_end_inlock(be, s, true);
        rv = CKR_FUNCTION_FAILED;
        goto out;
    }
    rv = CKR_OK;
out:
    ksp_wipe(salt, sizeof(salt));
    return rv;
}

/* Part 1 §19.6.5 / §19.6.8 HMAC key: sessionKey || authValue without
 * trailing zeros (the TPM stores authValues trimmed). */
static size_t hmac_key(const struct ksp_tpm_sess *s, const TPM2B_AUTH *auth, uint8_t *k)
{
    size_t alen = auth->size;
    while (alen > 0 && auth->buffer[alen - 1] == 0)
        alen--;
    memcpy(k, s->key, HLEN);
    memcpy(k + HLEN, auth->buffer, alen);
    return HLEN + alen;
}

/*
 * Execute the command prepared in be->sys (one handle: the key, whose name is
 * `name`), authorised by session s with the key's authValue; the response's
 * HMAC is verified before the caller reads the result.
 */
static CK_RV run_authorised(struct ksp_backend *be, struct ksp_tpm_sess *s, TPM2_CC cc,
                            const TPM2B_NAME *name, const TPM2B_AUTH *auth, TPMA_SESSION extra,
                            TPM2B_NONCE *caller_out, const char *what)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    const uint8_t *cp = NULL, *rp = NULL;
    size_t cplen = 0, rplen = 0, klen = 0;
    uint8_t ccb[4], rcb[4] = {0, 0, 0, 0}, cphash[HLEN], rphash[HLEN], mac[HLEN];
    uint8_t k[HLEN + sizeof(auth->buffer)];
    TSS2L_SYS_AUTH_COMMAND cmd;
    TSS2L_SYS_AUTH_RESPONSE rsp;
    TPM2B_NONCE caller;
    /* The session's last command (nothing is kept between calls): without
     * continueSession the TPM ends it itself, saving a TPM2_FlushContext. */
    bool last = !be->keep_objects;
    TPMA_SESSION attrs = (last ? 0 : TPMA_SESSION_CONTINUESESSION) | extra;
    TSS2_RC rc = TSS2_RC_SUCCESS;

    be32(cc, ccb);
    if (Tss2_Sys_GetCpBuffer(be->sys, &cplen, &cp) != TSS2_RC_SUCCESS)
        return CKR_DEVICE_ERROR;
    {
        const uint8_t *parts[] = {ccb, name->name, cp};
        size_t lens[] = {4, name->size, cplen};
        if (!sha256(parts, lens, 3, cphash))
            return CKR_FUNCTION_FAILED;
    }
    memset(&caller, 0, sizeof(caller));
    caller.size = HLEN;
    if (ksp_ossl_random(caller.buffer, HLEN) != 1)
        return CKR_FUNCTION_FAILED;
    klen = hmac_key(s, auth, k);
    memset(&cmd, 0, sizeof(cmd));
    cmd.count = 1;
    cmd.auths[0].sessionHandle = s->handle;
    cmd.auths[0].nonce = caller;
    cmd.auths[0].sessionAttributes = attrs;
    cmd.auths[0].hmac.size = HLEN;
    {
        const uint8_t *parts[] = {cphash, caller.buffer, s->nonce_tpm.buffer, &attrs};
        size_t lens[] = {HLEN, caller.size, s->nonce_tpm.size, 1};
        if (!hmac256(k, klen, parts, lens, 4, cmd.auths[0].hmac.buffer)) {
            rv = CKR_FUNCTION_FAILED;
            goto out;
        }
    }
    if (Tss2_Sys_SetCmdAuths(be->sys, &cmd) != TSS2_RC_SUCCESS) {
        rv = CKR_DEVICE_ERROR;
        goto out;
    }
    rc = Tss2_Sys_Execute(be->sys);
    if (RC_AGAIN(rc)) {
        rv = CKR_AGAIN; /* not run: the session is unchanged */
        ksp_wipe(k, sizeof(k));
        return rv;
    }
    if (rc != TSS2_RC_SUCCESS) {
        rv = ksp_tpm_rv(be, rc, what);
        goto out;
    }
    memset(&rsp, 0, sizeof(rsp));
    if (Tss2_Sys_GetRspAuths(be->sys, &rsp) != TSS2_RC_SUCCESS || rsp.count != 1 ||
        Tss2_Sys_GetRpBuffer(be->sys, &rplen, &rp) != TSS2_RC_SUCCESS ||
        rsp.auths[0].hmac.size != HLEN || rsp.auths[0].nonce.size < 16 ||
        rsp.auths[0].nonce.size > sizeof(s->nonce_tpm.buffer)) {
        rv = CKR_DEVICE_ERROR;
        goto out;
    }
    {
        const uint8_t *parts[] = {rcb, ccb, rp};
        size_t lens[] = {4, 4, rplen};
        const uint8_t ra = rsp.auths[0].sessionAttributes;
        const uint8_t *hparts[] = {rphash, rsp.auths[0].nonce.buffer, caller.buffer, &ra};
        size_t hlens[] = {HLEN, rsp.auths[0].nonce.size, caller.size, 1};
        if (!sha256(parts, lens, 3, rphash) || !hmac256(k, klen, hparts, hlens, 4, mac)) {
            rv = CKR_FUNCTION_FAILED;
            goto out;
        }
    }
    if (CRYPTO_memcmp(mac, rsp.auths[0].hmac.buffer, HLEN) != 0) {
        /* Not the TPM's answer (or not to us): use nothing of it. */
        ksp_err(AREA, "%s: the response HMAC does not verify", what);
        rv = CKR_DEVICE_ERROR;
        goto out;
    }
    s->nonce_tpm = rsp.auths[0].nonce;
    if (caller_out != NULL)
        *caller_out = caller;
    if (last)
        s->handle = 0; /* ended by the TPM; the key material stays for unseal's KDFa */
    rv = CKR_OK;
out:
    ksp_wipe(k, sizeof(k));
    if (rv != CKR_OK)
        s->broken = true;
    return rv;
}

/* ---- the hot path ---- */

bool ksp_tpm_fast_applies(const struct ksp_bkey *key, const struct ksp_prim_args *args,
                          const uint8_t *in, size_t in_len)
{
    switch (args->prim) {
    case KSP_PRIM_RSA_PSS_SIGN:
    case KSP_PRIM_ECDSA:
        return true;
    case KSP_PRIM_RSA_RAW:
        /* Only a block that is a PKCS#1 v1.5 / PSS signature encoding: its
         * result is a signature, public. Raw decryption keeps ESAPI. */
        return in_len == key->k &&
               ksp_rsa_raw_sign_input_ok(in, key->k,
                                         key->pub.publicArea.parameters.rsaDetail.keyBits);
    default:
        return false;
    }
}

/* The loaded handle of key: the cached one (behind a resource manager), or
 * a fresh Load. *fresh says it must be flushed after the call. */
static CK_RV key_handle(struct ksp_backend *be, struct ksp_bkey *key, ESYS_TR *h, TPM2B_NAME *name,
                        bool *fresh)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    TPM2B_NAME *n = NULL;

    for (int i = 0; i < KSP_TPM_HOT_KEYS; i++) {
        if (be->hot[i].key == key && be->hot[i].h != ESYS_TR_NONE) {
            *h = be->hot[i].h;
            *name = be->hot[i].name;
            *fresh = false;
            be->hot[i].used = ++be->hot_clock;
            return CKR_OK;
        }
    }
    rv = ksp_tpm_load_inlock(be, &key->pub, &key->priv, &key->auth, h);
    if (rv != CKR_OK)
        return rv;
    if (Esys_TR_GetName(be->esys, *h, &n) != TSS2_RC_SUCCESS || n->size > sizeof(name->name)) {
        Esys_Free(n);
        ksp_tpm_flush_inlock(be, h);
        return CKR_DEVICE_ERROR;
    }
    *name = *n;
    Esys_Free(n);
    *fresh = true;
    if (!be->keep_objects)
        return CKR_OK;
    /* Keep it: evict the least recently used entry. */
    int v = 0;
    for (int i = 1; i < KSP_TPM_HOT_KEYS; i++)
        if (be->hot[i].used < be->hot[v].used)
            v = i;
    ksp_tpm_hot_evict_inlock(be, v);
    be->hot[v].key = key;
    key->hot = true;
    be->hot[v].h = *h;
    be->hot[v].name = *name;
    be->hot[v].used = ++be->hot_clock;
    *fresh = false;
    return CKR_OK;
}

void ksp_tpm_hot_evict_inlock(struct ksp_backend *be, int i)
{
    if (be->hot[i].h != ESYS_TR_NONE)
        ksp_tpm_flush_inlock(be, &be->hot[i].h);
    if (be->hot[i].key != NULL)
        be->hot[i].key->hot = false;
    memset(&be->hot[i], 0, sizeof(be->hot[i]));
    be->hot[i].h = ESYS_TR_NONE;
}

void ksp_tpm_hot_forget_inlock(struct ksp_backend *be, const struct ksp_bkey *key)
{
    for (int i = 0; i < KSP_TPM_HOT_KEYS; i++)
        if (be->hot[i].key == key)
            ksp_tpm_hot_evict_inlock(be, i);
}

/* Everything cached on this connection: flushed if `flush`, else forgotten
 * (a dead connection, a restarted TPM or a forked child). */
void ksp_tpm_hot_drop_inlock(struct ksp_backend *be, bool flush)
{
    for (int i = 0; i < KSP_TPM_HOT_KEYS; i++) {
        if (!flush && be->hot[i].h != ESYS_TR_NONE) {
            /* Gone from the TPM: drop ESAPI's record only (no I/O). */
            if (be->esys != NULL)
                (void)Esys_TR_Close(be->esys, &be->hot[i].h);
            be->hot[i].h = ESYS_TR_NONE;
        }
        ksp_tpm_hot_evict_inlock(be, i);
    }
    ksp_tpm_sess_end_inlock(be, &be->hsess, flush);
}

static CK_RV put_padded(const uint8_t *src, size_t n, uint8_t *out, size_t len)
{
    while (n > len && src[0] == 0) {
        src++;
        n--;
    }
    if (n > len)
        return CKR_DEVICE_ERROR;
    memset(out, 0, len - n);
    memcpy(out + len - n, src, n);
    return CKR_OK;
}

/* One TPM command with the prepared key and session. */
static CK_RV fast_cmd(struct ksp_backend *be, struct ksp_bkey *key, TPM2_HANDLE kh,
                      const TPM2B_NAME *name, const struct ksp_prim_args *args, const uint8_t *in,
                      size_t in_len, uint8_t *out, size_t *out_len)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    TSS2_RC rc = TSS2_RC_SUCCESS;
    size_t fs = key->k;

    if (args->prim == KSP_PRIM_RSA_RAW) {
        TPM2B_PUBLIC_KEY_RSA ct, msg;
        TPMT_RSA_DECRYPT scheme;
        TPM2B_DATA label;
        memset(&ct, 0, sizeof(ct));
        memset(&msg, 0, sizeof(msg));
        memset(&scheme, 0, sizeof(scheme));
        memset(&label, 0, sizeof(label));
        ct.size = (UINT16)in_len;
        memcpy(ct.buffer, in, in_len);
        scheme.scheme = TPM2_ALG_NULL;
        rv = CKR_AGAIN;
        for (int i = 0; i < MAX_AGAIN && rv == CKR_AGAIN; i++) {
            rc = Tss2_Sys_RSA_Decrypt_Prepare(be->sys, kh, &ct, &scheme, &label);
            if (rc != TSS2_RC_SUCCESS)
                return ksp_tpm_rv(be, rc, "RSA_Decrypt_Prepare");
            rv = run_authorised(be, &be->hsess, TPM2_CC_RSA_Decrypt, name, &key->auth, 0, NULL,
                                "TPM2_RSA_Decrypt");
        }
        if (rv != CKR_OK)
            return rv == CKR_AGAIN ? CKR_DEVICE_ERROR : rv;
        rc = Tss2_Sys_RSA_Decrypt_Complete(be->sys, &msg);
        if (rc != TSS2_RC_SUCCESS)
            return ksp_tpm_rv(be, rc, "TPM2_RSA_Decrypt");
        rv = put_padded(msg.buffer, msg.size, out, key->k);
        if (rv == CKR_OK)
            *out_len = key->k;
        return rv;
    }
    TPM2B_DIGEST digest;
    TPMT_SIG_SCHEME scheme;
    TPMT_TK_HASHCHECK ticket;
    TPMT_SIGNATURE sig;
    memset(&digest, 0, sizeof(digest));
    memset(&scheme, 0, sizeof(scheme));
    memset(&ticket, 0, sizeof(ticket));
    memset(&sig, 0, sizeof(sig));
    ticket.tag = TPM2_ST_HASHCHECK;
    ticket.hierarchy = TPM2_RH_NULL;
    if (args->prim == KSP_PRIM_RSA_PSS_SIGN) {
        scheme.scheme = TPM2_ALG_RSAPSS;
        scheme.details.rsapss.hashAlg = ksp_tpm_hash_alg(args->hash);
        digest.size = (UINT16)in_len;
        memcpy(digest.buffer, in, in_len);
    } else {
        /* As tpm_ops.c sign(): e is the leftmost field-size bytes (SEC 1
         * §4.1.3), handed over with the hash of that length. */
        scheme.scheme = TPM2_ALG_ECDSA;
        scheme.details.ecdsa.hashAlg = fs == 32 ? TPM2_ALG_SHA256 : TPM2_ALG_SHA384;
        digest.size = (UINT16)fs;
        if (in_len >= fs)
            memcpy(digest.buffer, in, fs);
        else
            memcpy(digest.buffer + fs - in_len, in, in_len);
    }
    rv = CKR_AGAIN;
    for (int i = 0; i < MAX_AGAIN && rv == CKR_AGAIN; i++) {
        rc = Tss2_Sys_Sign_Prepare(be->sys, kh, &digest, &scheme, &ticket);
        if (rc != TSS2_RC_SUCCESS)
            return ksp_tpm_rv(be, rc, "Sign_Prepare");
        rv = run_authorised(be, &be->hsess, TPM2_CC_Sign, name, &key->auth, 0, NULL, "TPM2_Sign");
    }
    if (rv != CKR_OK)
        return rv == CKR_AGAIN ? CKR_DEVICE_ERROR : rv;
    rc = Tss2_Sys_Sign_Complete(be->sys, &sig);
    if (rc != TSS2_RC_SUCCESS)
        return ksp_tpm_rv(be, rc, "TPM2_Sign");
    if (args->prim == KSP_PRIM_RSA_PSS_SIGN) {
        if (sig.sigAlg != TPM2_ALG_RSAPSS)
            return CKR_DEVICE_ERROR;
        rv =
            put_padded(sig.signature.rsapss.sig.buffer, sig.signature.rsapss.sig.size, out, key->k);
        *out_len = key->k;
        return rv;
    }
    if (sig.sigAlg != TPM2_ALG_ECDSA)
        return CKR_DEVICE_ERROR;
    rv = put_padded(sig.signature.ecdsa.signatureR.buffer, sig.signature.ecdsa.signatureR.size, out,
                    fs);
    if (rv == CKR_OK)
        rv = put_padded(sig.signature.ecdsa.signatureS.buffer, sig.signature.ecdsa.signatureS.size,
                        out + fs, fs);
    *out_len = 2 * fs;
    return rv;
}

CK_RV ksp_tpm_fast_inlock(struct ksp_backend *be, struct ksp_bkey *key,
                          const struct ksp_prim_args *args, const uint8_t *in, size_t in_len,
                          uint8_t *out, size_t *out_len)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    ESYS_TR h = ESYS_TR_NONE;
    TPM2_HANDLE kh = 0;
    TPM2B_NAME name;
    bool fresh = false;

    rv = ksp_tpm_connect_inlock(be);
    if (rv != CKR_OK)
        return rv;
    if (be->sys == NULL)
        return CKR_FUNCTION_NOT_SUPPORTED;
    rv = key_handle(be, key, &h, &name, &fresh);
    if (rv != CKR_OK)
        goto out;
    if (be->hsess.handle == 0 || be->hsess.broken) {
        ksp_tpm_sess_end_inlock(be, &be->hsess, be->hsess.handle != 0);
        rv = sess_start(be, &be->hsess);
        if (rv != CKR_OK)
            goto out;
    }
    /* The key is loaded and the session salted: without a resource
     * manager the primary's slot is given back before the TPM works. */
    ksp_tpm_primary_done_inlock(be);
    if (Esys_TR_GetTpmHandle(be->esys, h, &kh) != TSS2_RC_SUCCESS) {
        rv = CKR_DEVICE_ERROR;
        goto out;
    }
    rv = fast_cmd(be, key, kh, &name, args, in, in_len, out, out_len);
out:
    if (be->hsess.handle != 0 && (!be->keep_objects || be->hsess.broken || be->dead))
        ksp_tpm_sess_end_inlock(be, &be->hsess, !be->dead);
    else if (be->hsess.handle == 0)
        ksp_wipe(&be->hsess, sizeof(be->hsess)); /* ended by the TPM */
    if (fresh)
        ksp_tpm_flush_inlock(be, &h);
    else if (rv != CKR_OK && (be->dead || be->stale))
        ksp_tpm_hot_drop_inlock(be, false);
    return rv;
}

void ksp_tpm_key_forget(struct ksp_bkey *key)
{
    struct ksp_tpm_call call;
    struct ksp_backend *be = key->be;
    bool cached = false;

    /* Only a key kept loaded refers to its backend here: a key unloaded
     * after its backend was closed (tests do) must not touch it. */
    if (be == NULL || !key->hot)
        return;
    ksp_tpm_lock(be, &call);
    for (int i = 0; i < KSP_TPM_HOT_KEYS; i++)
        cached |= be->hot[i].key == key;
    if (cached)
        ksp_tpm_hot_forget_inlock(be, key);
    ksp_tpm_unlock(be, &call);
}

/*
 * TPM2_Unseal over our own session with response encryption (Part 1
 * §21.3): outData comes back AES-128-CFB encrypted under
 * KDFa(sessionKey || authValue, "CFB", nonceTPM, nonceCaller); the sealed
 * object is loaded for this call only. CKR_FUNCTION_NOT_SUPPORTED: use ESAPI.
 */
CK_RV ksp_tpm_fast_unseal_inlock(struct ksp_backend *be, const TPM2B_PUBLIC *pub,
                                 const TPM2B_PRIVATE *priv, const TPM2B_AUTH *auth,
                                 struct ksp_buf *data_out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    ESYS_TR h = ESYS_TR_NONE;
    TPM2_HANDLE th = 0;
    TPM2B_NAME *n = NULL;
    TPM2B_NAME name;
    TPM2B_SENSITIVE_DATA data;
    TPM2B_NONCE caller;
    uint8_t k[HLEN + sizeof(auth->buffer)], kiv[HLEN];
    EVP_CIPHER_CTX *c = NULL;
    EVP_CIPHER *aes = NULL;
    int outl = 0;
    TSS2_RC rc = TSS2_RC_SUCCESS;

    memset(&data, 0, sizeof(data));
    rv = ksp_tpm_connect_inlock(be);
    if (rv != CKR_OK)
        return rv;
    if (be->sys == NULL)
        return CKR_FUNCTION_NOT_SUPPORTED;
    rv = ksp_tpm_load_inlock(be, pub, priv, auth, &h);
    if (rv != CKR_OK)
        return rv;
    if (Esys_TR_GetName(be->esys, h, &n) != TSS2_RC_SUCCESS || n->size > sizeof(name.name) ||
        Esys_TR_GetTpmHandle(be->esys, h, &th) != TSS2_RC_SUCCESS) {
        rv = CKR_DEVICE_ERROR;
        goto out;
    }
    name = *n;
    if (be->hsess.handle == 0 || be->hsess.broken) {
        ksp_tpm_sess_end_inlock(be, &be->hsess, be->hsess.handle != 0);
        rv = sess_start(be, &be->hsess);
        if (rv != CKR_OK)
            goto out;
    }
    ksp_tpm_primary_done_inlock(be);
    rv = CKR_AGAIN;
    for (int i = 0; i < MAX_AGAIN && rv == CKR_AGAIN; i++) {
        rc = Tss2_Sys_Unseal_Prepare(be->sys, th);
        if (rc != TSS2_RC_SUCCESS) {
            rv = ksp_tpm_rv(be, rc, "Unseal_Prepare");
            goto out;
        }
        rv = run_authorised(be, &be->hsess, TPM2_CC_Unseal, &name, auth, TPMA_SESSION_ENCRYPT,
                            &caller, "TPM2_Unseal");
    }
    if (rv == CKR_AGAIN)
        rv = CKR_DEVICE_ERROR;
    if (rv != CKR_OK)
        goto out;
    rc = Tss2_Sys_Unseal_Complete(be->sys, &data);
    if (rc != TSS2_RC_SUCCESS) {
        rv = ksp_tpm_rv(be, rc, "TPM2_Unseal");
        goto out;
    }
    {
        size_t klen = hmac_key(&be->hsess, auth, k);
        uint8_t ctr[4], bits[4];
        be32(1, ctr);
        be32(256, bits);
        /* nonceNewer = the TPM's (from this response), nonceOlder = ours. */
        const uint8_t *parts[] = {ctr, (const uint8_t *)"CFB", be->hsess.nonce_tpm.buffer,
                                  caller.buffer, bits};
        size_t lens[] = {4, 4, be->hsess.nonce_tpm.size, caller.size, 4};
        if (!hmac256(k, klen, parts, lens, 5, kiv)) {
            rv = CKR_FUNCTION_FAILED;
            goto out;
        }
    }
    aes = EVP_CIPHER_fetch(ksp_ossl_ctx(), "AES-128-CFB", NULL);
    c = EVP_CIPHER_CTX_new();
    if (aes == NULL || c == NULL || EVP_DecryptInit_ex2(c, aes, kiv, kiv + 16, NULL) != 1 ||
        EVP_DecryptUpdate(c, data.buffer, &outl, data.buffer, data.size) != 1 ||
        outl != data.size) {
        rv = CKR_FUNCTION_FAILED;
        goto out;
    }
    rv = ksp_buf_set(data_out, data.buffer, data.size);
out:
    if (rv != CKR_OK && rv != CKR_FUNCTION_NOT_SUPPORTED)
        be->hsess.broken = be->hsess.broken || rv != CKR_PIN_INCORRECT;
    if (be->hsess.handle != 0 && (!be->keep_objects || be->hsess.broken || be->dead))
        ksp_tpm_sess_end_inlock(be, &be->hsess, !be->dead);
    else if (be->hsess.handle == 0)
        ksp_wipe(&be->hsess, sizeof(be->hsess)); /* ended by the TPM */
    EVP_CIPHER_CTX_free(c);
    EVP_CIPHER_free(aes);
    Esys_Free(n);
    ksp_wipe(k, sizeof(k));
    ksp_wipe(kiv, sizeof(kiv));
    ksp_wipe(&data, sizeof(data));
    ksp_tpm_flush_inlock(be, &h);
    return rv;
}
