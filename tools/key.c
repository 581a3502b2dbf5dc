/*
 * The ksp11 command: token key pairs for the certificate commands. Finds a
 * private key by label / id / pkcs11: URI, or by its public key (the
 * SubjectPublicKeyInfo of a certificate); turns the token's public key
 * (CKA_MODULUS + CKA_PUBLIC_EXPONENT, or CKA_EC_PARAMS + CKA_EC_POINT) into an
 * OpenSSL EVP_PKEY; signs with C_Sign (SHA-256), returning what X.509 wants:
 * PKCS#1 v1.5 bytes, or an ECDSA-Sig-Value in DER (the token gives r || s).
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>

#include "cli.h"

void ksp_key_free(struct ksp_key *k)
{
    EVP_PKEY_free(k->pkey);
    free(k->label);
    free(k->id);
    memset(k, 0, sizeof(*k));
    k->priv = k->pub = CK_INVALID_HANDLE;
}

static EVP_PKEY *from_params(const char *type, OSSL_PARAM_BLD *bld)
{
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (params && ctx && EVP_PKEY_fromdata_init(ctx) == 1)
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

static EVP_PKEY *rsa_pkey(const unsigned char *n, size_t nlen, const unsigned char *e, size_t elen)
{
    EVP_PKEY *pkey = NULL;
    BIGNUM *bn = BN_bin2bn(n, (int)nlen, NULL);
    BIGNUM *be = BN_bin2bn(e, (int)elen, NULL);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (bn && be && bld && OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn) &&
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, be))
        pkey = from_params("RSA", bld);
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn);
    BN_free(be);
    return pkey;
}

/* CKA_EC_POINT is a DER OCTET STRING (PKCS#11 2.40 §2.3.3); some tokens store
 * the bare uncompressed point, which is accepted too. */
static EVP_PKEY *ec_pkey(const unsigned char *params, size_t plen, const unsigned char *point,
                         size_t qlen)
{
    EVP_PKEY *pkey = NULL;
    const unsigned char *p = params;
    ASN1_OBJECT *oid = d2i_ASN1_OBJECT(NULL, &p, (long)plen);
    ASN1_OCTET_STRING *os = NULL;
    const unsigned char *q = point;
    const unsigned char *pt = point;
    size_t ptlen = qlen;
    OSSL_PARAM_BLD *bld = NULL;
    const char *group = NULL;

    if (!oid || p != params + plen)
        goto out;
    group = OBJ_nid2sn(OBJ_obj2nid(oid));
    if (!group || OBJ_obj2nid(oid) == NID_undef)
        goto out;
    os = d2i_ASN1_OCTET_STRING(NULL, &q, (long)qlen);
    if (os && q == point + qlen) {
        pt = ASN1_STRING_get0_data(os);
        ptlen = (size_t)ASN1_STRING_length(os);
    }
    bld = OSSL_PARAM_BLD_new();
    if (bld && OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, ptlen))
        pkey = from_params("EC", bld);
out:
    OSSL_PARAM_BLD_free(bld);
    ASN1_OCTET_STRING_free(os);
    ASN1_OBJECT_free(oid);
    return pkey;
}

/* The public key of a key object: from itself, or for a private key without
 * the public components (EC) from the public object with the same id. */
static CK_RV read_pkey(struct ksp_cli *cli, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_KEY_TYPE kt,
                       EVP_PKEY **out)
{
    unsigned char *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    CK_RV rv = CKR_OK;

    *out = NULL;
    if (kt == CKK_RSA) {
        rv = ksp_obj_attr(cli, s, h, CKA_MODULUS, &a, &alen);
        if (rv == CKR_OK)
            rv = ksp_obj_attr(cli, s, h, CKA_PUBLIC_EXPONENT, &b, &blen);
        if (rv == CKR_OK && a && b && alen > 0 && blen > 0)
            *out = rsa_pkey(a, alen, b, blen);
    } else if (kt == CKK_EC) {
        rv = ksp_obj_attr(cli, s, h, CKA_EC_PARAMS, &a, &alen);
        if (rv == CKR_OK)
            rv = ksp_obj_attr(cli, s, h, CKA_EC_POINT, &b, &blen);
        if (rv == CKR_OK && a && b && alen > 0 && blen > 0)
            *out = ec_pkey(a, alen, b, blen);
    }
    free(a);
    free(b);
    return rv;
}

/* The first object of class cls with this key type and id (CK_INVALID_HANDLE: none). */
static CK_RV find_half(struct ksp_cli *cli, CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls,
                       CK_KEY_TYPE kt, const unsigned char *id, size_t id_len,
                       CK_OBJECT_HANDLE *out)
{
    CK_OBJECT_HANDLE *h = NULL;
    size_t n = 0;
    CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof(cls)},
                           {CKA_KEY_TYPE, &kt, sizeof(kt)},
                           {CKA_ID, (void *)id, (CK_ULONG)id_len}};
    *out = CK_INVALID_HANDLE;
    if (!id_len)
        return CKR_OK;
    CK_RV rv = ksp_obj_find(cli, s, tmpl, 3, &h, &n);
    if (rv == CKR_OK && n > 0)
        *out = h[0];
    free(h);
    return rv;
}

/* quiet: a key that cannot be used is no error (when searching by public key). */
static int load(struct ksp_cli *cli, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, bool quiet,
                struct ksp_key *out)
{
    struct ksp_key k = {.priv = CK_INVALID_HANDLE, .pub = CK_INVALID_HANDLE};
    CK_OBJECT_CLASS cls = 0;
    bool has = false;
    size_t n = 0;
    unsigned char *label = NULL;
    CK_RV rv = ksp_obj_ulong(cli, s, h, CKA_CLASS, &has, &cls);
    if (rv == CKR_OK && (!has || (cls != CKO_PRIVATE_KEY && cls != CKO_PUBLIC_KEY)))
        rv = CKR_KEY_TYPE_INCONSISTENT;
    if (rv == CKR_OK)
        rv = ksp_obj_ulong(cli, s, h, CKA_KEY_TYPE, &has, &k.type);
    if (rv == CKR_OK && (!has || (k.type != CKK_RSA && k.type != CKK_EC)))
        rv = CKR_KEY_TYPE_INCONSISTENT;
    if (rv == CKR_OK)
        rv = ksp_obj_attr(cli, s, h, CKA_LABEL, &label, &n);
    k.label = (char *)label;
    if (rv == CKR_OK)
        rv = ksp_obj_attr(cli, s, h, CKA_ID, &k.id, &k.id_len);
    if (rv == CKR_OK) {
        if (cls == CKO_PRIVATE_KEY) {
            k.priv = h;
            rv = find_half(cli, s, CKO_PUBLIC_KEY, k.type, k.id, k.id_len, &k.pub);
        } else {
            k.pub = h;
            rv = find_half(cli, s, CKO_PRIVATE_KEY, k.type, k.id, k.id_len, &k.priv);
        }
    }
    if (rv == CKR_OK && k.pub != CK_INVALID_HANDLE)
        rv = read_pkey(cli, s, k.pub, k.type, &k.pkey);
    if (rv == CKR_OK && !k.pkey && k.priv != CK_INVALID_HANDLE)
        rv = read_pkey(cli, s, k.priv, k.type, &k.pkey);
    if (rv != CKR_OK) {
        ksp_key_free(&k);
        return quiet ? KSP_EXIT_FAIL : ksp_cli_fail("cannot read the key from the token", rv);
    }
    if (!k.pkey) {
        ksp_key_free(&k);
        return quiet ? KSP_EXIT_FAIL
                     : ksp_cli_err(
                           "the token does not show the public half of the key (no public key "
                           "object with the same id)");
    }
    *out = k;
    return KSP_EXIT_OK;
}

int ksp_key_load(struct ksp_cli *cli, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, struct ksp_key *out)
{
    return load(cli, s, h, false, out);
}

int ksp_key_find(struct ksp_cli *cli, CK_SESSION_HANDLE s, const struct ksp_ref *ref,
                 struct ksp_key *out)
{
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE tmpl[3];
    CK_ULONG nt = 0;
    CK_OBJECT_HANDLE *h = NULL;
    size_t n = 0;

    tmpl[nt++] = (CK_ATTRIBUTE){CKA_CLASS, &cls, sizeof(cls)};
    if (ref->label)
        tmpl[nt++] = (CK_ATTRIBUTE){CKA_LABEL, ref->label, (CK_ULONG)strlen(ref->label)};
    if (ref->id_len)
        tmpl[nt++] = (CK_ATTRIBUTE){CKA_ID, (void *)ref->id, (CK_ULONG)ref->id_len};
    CK_RV rv = ksp_obj_find(cli, s, tmpl, nt, &h, &n);
    if (rv != CKR_OK)
        return ksp_cli_fail("cannot search the token's keys", rv);
    if (n != 1) {
        char hex[2 * KSP_ID_MAX + 1];
        free(h);
        ksp_hex_format(ref->id, ref->id_len, hex);
        if (n > 1)
            return ksp_cli_usage(cli,
                                 "%zu private keys match; name one by its id (see 'ksp11 "
                                 "list')",
                                 n);
        ksp_cli_err("no private key%s%s%s%s%s on the token (see 'ksp11 list')",
                    ref->label ? " labelled \"" : "", ref->label ? ref->label : "",
                    ref->label ? "\"" : "", ref->id_len ? " with id " : "", ref->id_len ? hex : "");
        return KSP_EXIT_NOT_FOUND;
    }
    CK_OBJECT_HANDLE one = h[0];
    free(h);
    return ksp_key_load(cli, s, one, out);
}

/* Is there a key of class cls whose public key equals want? */
static int match_class(struct ksp_cli *cli, CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls,
                       const EVP_PKEY *want, struct ksp_key *out, bool *found)
{
    CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof(cls)}};
    CK_OBJECT_HANDLE *h = NULL;
    size_t n = 0;
    int rc = KSP_EXIT_OK;
    CK_RV rv = ksp_obj_find(cli, s, tmpl, 1, &h, &n);
    if (rv != CKR_OK)
        return ksp_cli_fail("cannot search the token's keys", rv);
    for (size_t i = 0; i < n && !*found; i++) {
        struct ksp_key k;
        /* Keys the tool cannot use (other types, no public half) are skipped quietly. */
        CK_KEY_TYPE kt = 0;
        bool has = false;
        if (ksp_obj_ulong(cli, s, h[i], CKA_KEY_TYPE, &has, &kt) != CKR_OK || !has ||
            (kt != CKK_RSA && kt != CKK_EC))
            continue;
        if (load(cli, s, h[i], true, &k) != KSP_EXIT_OK)
            continue;
        if (EVP_PKEY_eq(k.pkey, want) == 1) {
            *out = k;
            *found = true;
        } else {
            ksp_key_free(&k);
        }
    }
    free(h);
    return rc;
}

int ksp_key_match(struct ksp_cli *cli, CK_SESSION_HANDLE s, const EVP_PKEY *want, bool need_private,
                  struct ksp_key *out, bool *found)
{
    *found = false;
    int rc = match_class(cli, s, CKO_PRIVATE_KEY, want, out, found);
    if (rc == KSP_EXIT_OK && !*found && !need_private)
        rc = match_class(cli, s, CKO_PUBLIC_KEY, want, out, found);
    return rc;
}

/* r || s from the token into a DER ECDSA-Sig-Value (RFC 5480 / X9.62). */
static bool ecdsa_der(const unsigned char *rs, size_t n, unsigned char **out, size_t *out_len)
{
    bool ok = false;
    ECDSA_SIG *sig = NULL;
    BIGNUM *r = NULL, *sv = NULL;
    unsigned char *der = NULL;
    if (n == 0 || n % 2)
        return false;
    r = BN_bin2bn(rs, (int)(n / 2), NULL);
    sv = BN_bin2bn(rs + n / 2, (int)(n / 2), NULL);
    sig = ECDSA_SIG_new();
    if (!r || !sv || !sig || !ECDSA_SIG_set0(sig, r, sv))
        goto out;
    r = sv = NULL;
    int len = i2d_ECDSA_SIG(sig, &der);
    if (len <= 0)
        goto out;
    *out = malloc((size_t)len);
    if (!*out)
        goto out;
    memcpy(*out, der, (size_t)len);
    *out_len = (size_t)len;
    ok = true;
out:
    OPENSSL_free(der);
    ECDSA_SIG_free(sig);
    BN_free(r);
    BN_free(sv);
    return ok;
}

int ksp_key_sign(struct ksp_cli *cli, CK_SESSION_HANDLE s, const struct ksp_key *k,
                 const unsigned char *data, size_t n, unsigned char **sig, size_t *sig_len)
{
    CK_MECHANISM mech = {k->type == CKK_RSA ? CKM_SHA256_RSA_PKCS : CKM_ECDSA_SHA256, NULL, 0};
    CK_ULONG len = 0;
    unsigned char *buf = NULL;
    if (k->priv == CK_INVALID_HANDLE)
        return ksp_cli_err("the private key is not visible (not logged in?)");
    CK_RV rv = cli->f->C_SignInit(s, &mech, k->priv);
    if (rv == CKR_OK)
        rv = cli->f->C_Sign(s, (CK_BYTE_PTR)data, (CK_ULONG)n, NULL, &len);
    if (rv == CKR_OK && (len == 0 || len > 4096))
        rv = CKR_GENERAL_ERROR;
    if (rv == CKR_OK) {
        buf = malloc(len);
        if (!buf)
            rv = CKR_HOST_MEMORY;
    }
    if (rv == CKR_OK)
        rv = cli->f->C_Sign(s, (CK_BYTE_PTR)data, (CK_ULONG)n, buf, &len);
    if (rv != CKR_OK) {
        free(buf);
        return ksp_cli_fail("signing with the token key failed", rv);
    }
    if (k->type == CKK_RSA) {
        *sig = buf;
        *sig_len = len;
        return KSP_EXIT_OK;
    }
    bool ok = ecdsa_der(buf, len, sig, sig_len);
    free(buf);
    if (!ok)
        return ksp_cli_err("the token returned a malformed ECDSA signature");
    return KSP_EXIT_OK;
}
