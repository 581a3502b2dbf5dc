/*
 * Object and key creation: C_CreateObject (including private key import),
 * C_GenerateKeyPair and C_DeriveKey (ECDH). Templates go through the schema
 * engine; key material through the chosen backend. A failure leaves no
 * object behind (semantics.md §1.1: the template is the finalize step).
 */
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "keys.h"
#include "log.h"
#include "op.h"
#include "policy.h"
#include "schema.h"
#include "secmem.h"
#include "swcrypto.h"

static struct ksp_schema_ctx schema_ctx(const struct ksp_session *s)
{
    struct ksp_schema_ctx c = {.so = s->token->login == CKU_SO};
    return c;
}

/* Refuse writes the session may not make (§5.6 access rules). */
static CK_RV can_create(struct ksp_session *s, const struct ksp_attrs *a)
{
    return ksp_session_can_write_inlock(s, ksp_attrs_bool(a, CKA_TOKEN, false),
                                        ksp_attrs_bool(a, CKA_PRIVATE, false));
}

/* Vendor attributes describing where a key lives (DESIGN.md §4). */
static CK_RV add_vendor(struct ksp_attrs *c, const struct ksp_choice *ch)
{
    CK_RV rv = ksp_attrs_set_ulong(c, CKA_KSP11_BACKEND, ch->backend_id);
    if (rv == CKR_OK)
        rv = ksp_attrs_set_ulong(c, CKA_KSP11_IMPL_TYPE, ch->impl_type);
    if (rv == CKR_OK)
        rv = ksp_attrs_set(c, CKA_KSP11_FALLBACK_REASON, ch->reason, strlen(ch->reason));
    if (rv == CKR_OK)
        rv = ksp_attrs_set(c, CKA_KSP11_TPM_IDENTITY, ch->identity, strlen(ch->identity));
    return rv;
}

/* CKA_KSP11_TPM_PUBLIC / _NAME of a TPM key on both halves (issue 7: what a
 * CA's tools need to check an attestation against the key). */
static CK_RV add_tpm_public(struct ksp_attrs *pub_c, struct ksp_attrs *priv_c,
                            const struct ksp_backend_ops *ops, const struct ksp_buf *blob)
{
    struct ksp_buf area = {0}, name = {0};
    CK_RV rv = ops->key_public(blob, &area, &name);
    if (rv == CKR_OK)
        rv = ksp_attrs_set(pub_c, CKA_KSP11_TPM_PUBLIC, area.p, area.len);
    if (rv == CKR_OK)
        rv = ksp_attrs_set(pub_c, CKA_KSP11_TPM_NAME, name.p, name.len);
    if (rv == CKR_OK)
        rv = ksp_attrs_set(priv_c, CKA_KSP11_TPM_PUBLIC, area.p, area.len);
    if (rv == CKR_OK)
        rv = ksp_attrs_set(priv_c, CKA_KSP11_TPM_NAME, name.p, name.len);
    ksp_buf_free(&area);
    ksp_buf_free(&name);
    return rv;
}

/* Public values of a key as attributes (both halves of a pair carry them). */
static CK_RV add_public(struct ksp_attrs *c, const struct ksp_pubkey *pk, bool is_public)
{
    CK_RV rv = CKR_OK;
    if (pk->key_type == CKK_RSA) {
        rv = ksp_attrs_set(c, CKA_MODULUS, pk->modulus.p, pk->modulus.len);
        if (rv == CKR_OK)
            rv = ksp_attrs_set(c, CKA_PUBLIC_EXPONENT, pk->pub_exp.p, pk->pub_exp.len);
        if (rv == CKR_OK && is_public)
            rv = ksp_attrs_set_ulong(c, CKA_MODULUS_BITS, ksp_pub_bits(pk));
        return rv;
    }
    size_t plen = 0;
    const uint8_t *params = ksp_ec_curve_params(pk->curve, &plen);
    rv = ksp_attrs_set(c, CKA_EC_PARAMS, params, plen);
    if (rv == CKR_OK && is_public) {
        struct ksp_buf der = {0};
        rv = ksp_ec_point_wrap(pk->ec_point.p, pk->ec_point.len, &der);
        if (rv == CKR_OK)
            rv = ksp_attrs_set(c, CKA_EC_POINT, der.p, der.len);
        ksp_buf_free(&der);
    }
    return rv;
}

/* CKA_ID default: SHA-1 of the public value (semantics.md §1.1, NSS convention). */
static CK_RV default_id(const struct ksp_pubkey *pk, uint8_t id[20])
{
    const struct ksp_buf *v = pk->key_type == CKK_RSA ? &pk->modulus : &pk->ec_point;
    return ksp_digest(CKM_SHA_1, v->p, v->len, id);
}

/* Keyspec from the generation templates (PKCS#11 current mechanisms §2.1.4, §2.3.6). */
static CK_RV keyspec(const CK_MECHANISM *m, const struct ksp_attrs *pub,
                     const struct ksp_attrs *priv, struct ksp_keyspec *spec)
{
    memset(spec, 0, sizeof(*spec));
    if (m->mechanism == CKM_RSA_PKCS_KEY_PAIR_GEN) {
        CK_ULONG bits = 0;
        CK_RV rv = ksp_attrs_ulong(pub, CKA_MODULUS_BITS, &bits);
        if (rv != CKR_OK)
            return rv;
        spec->key_type = CKK_RSA;
        spec->modulus_bits = bits;
        const CK_ATTRIBUTE *e = ksp_attrs_find(pub, CKA_PUBLIC_EXPONENT);
        if (e && e->ulValueLen) {
            spec->pub_exp = e->pValue;
            spec->pub_exp_len = e->ulValueLen;
        }
        spec->decrypt = ksp_attrs_bool(priv, CKA_DECRYPT, true);
    } else {
        const CK_ATTRIBUTE *p = ksp_attrs_find(pub, CKA_EC_PARAMS);
        if (!p)
            return CKR_TEMPLATE_INCOMPLETE;
        CK_RV rv = ksp_ec_params_to_curve(p->pValue, p->ulValueLen, &spec->curve);
        if (rv != CKR_OK)
            return rv;
        spec->key_type = CKK_EC;
        spec->derive = ksp_attrs_bool(priv, CKA_DERIVE, true);
    }
    spec->sign = ksp_attrs_bool(priv, CKA_SIGN, true);
    return CKR_OK;
}

static CK_RV check_caps(const struct ksp_caps *caps, const struct ksp_keyspec *spec)
{
    if (spec->key_type == CKK_RSA) {
        for (size_t i = 0; i < 4 && caps->rsa_sizes[i]; i++)
            if (caps->rsa_sizes[i] == spec->modulus_bits)
                return CKR_OK;
        return CKR_KEY_SIZE_RANGE;
    }
    for (size_t i = 0; i < 4 && caps->curves[i] != KSP_CURVE_NONE; i++)
        if (caps->curves[i] == spec->curve)
            return CKR_OK;
    return CKR_CURVE_NOT_SUPPORTED;
}

CK_RV ksp_keys_generate_inlock(struct ksp_session *s, const CK_MECHANISM *m, const CK_ATTRIBUTE *pt,
                               CK_ULONG pn, const CK_ATTRIBUTE *vt, CK_ULONG vn,
                               CK_OBJECT_HANDLE *hpub, CK_OBJECT_HANDLE *hpriv)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_attrs pub_t, priv_t, pub_c, priv_c, pub_o, priv_o;
    struct ksp_keyspec spec;
    struct ksp_choice ch;
    struct ksp_backend *be = NULL;
    struct ksp_buf blob = {0}, secret = {0};
    struct ksp_pubkey pk;
    struct ksp_schema_ctx ctx = schema_ctx(s);
    CK_OBJECT_HANDLE h1 = CK_INVALID_HANDLE, h2 = CK_INVALID_HANDLE;
    uint8_t id[20];

    memset(&pk, 0, sizeof(pk));
    ksp_attrs_init(&pub_t);
    ksp_attrs_init(&priv_t);
    ksp_attrs_init(&pub_c);
    ksp_attrs_init(&priv_c);
    ksp_attrs_init(&pub_o);
    ksp_attrs_init(&priv_o);

    const struct ksp_mech *row = ksp_mech_find(m->mechanism);
    if (!row || row->pad != KSP_PAD_KEYGEN) {
        rv = CKR_MECHANISM_INVALID;
        goto out;
    }
    struct ksp_mparams none;
    rv = ksp_mech_params(row, m, &none);
    if (rv != CKR_OK)
        goto out;
    rv = ksp_attrs_from_template(pt, pn, &pub_t);
    if (rv == CKR_OK)
        rv = ksp_attrs_from_template(vt, vn, &priv_t);
    if (rv != CKR_OK)
        goto out;
    rv = keyspec(m, &pub_t, &priv_t, &spec);
    if (rv != CKR_OK)
        goto out;
    spec.no_da = ksp_token_pinless(s->token);

    bool require_hw = ksp_attrs_bool(&priv_t, CKA_KSP11_REQUIRE_HARDWARE, false) ||
                      ksp_attrs_bool(&pub_t, CKA_KSP11_REQUIRE_HARDWARE, false);
    /* Validate both templates before any key material exists: the class and
     * key type are known from the mechanism. */
    CK_ULONG kt = spec.key_type, cls_pub = CKO_PUBLIC_KEY, cls_priv = CKO_PRIVATE_KEY;
    rv = ksp_attrs_set_ulong(&pub_c, CKA_CLASS, cls_pub);
    if (rv == CKR_OK)
        rv = ksp_attrs_set_ulong(&pub_c, CKA_KEY_TYPE, kt);
    if (rv == CKR_OK)
        rv = ksp_attrs_set_ulong(&pub_c, CKA_KEY_GEN_MECHANISM, m->mechanism);
    if (rv == CKR_OK)
        rv = ksp_attrs_set_ulong(&priv_c, CKA_CLASS, cls_priv);
    if (rv == CKR_OK)
        rv = ksp_attrs_set_ulong(&priv_c, CKA_KEY_TYPE, kt);
    if (rv == CKR_OK)
        rv = ksp_attrs_set_ulong(&priv_c, CKA_KEY_GEN_MECHANISM, m->mechanism);
    if (rv != CKR_OK)
        goto out;
    rv = ksp_schema_apply(KSP_SCHEMA_GENERATE, &ctx, NULL, &pub_t, &pub_c, &pub_o);
    if (rv == CKR_OK)
        rv = ksp_schema_apply(KSP_SCHEMA_GENERATE, &ctx, NULL, &priv_t, &priv_c, &priv_o);
    if (rv != CKR_OK)
        goto out;
    rv = can_create(s, &pub_o);
    if (rv == CKR_OK)
        rv = can_create(s, &priv_o);
    if (rv != CKR_OK)
        goto out;
    /* The private half is sealed under the TWK: it must be available. */
    const struct ksp_buf *twk = NULL;
    rv = ksp_auth_twk_inlock(s->token, &twk);
    if (rv != CKR_OK)
        goto out;

    rv = ksp_policy_choose_inlock(&spec, require_hw, &ch);
    if (rv != CKR_OK)
        goto out;
    rv = ksp_backend_get_inlock(ch.backend_id, NULL, &be);
    if (rv != CKR_OK)
        goto out;
    rv = check_caps(ch.ops->caps(be), &spec);
    if (rv != CKR_OK)
        goto out;
    rv = ch.ops->keygen(be, &spec, &blob, &secret, &pk);
    if (rv != CKR_OK) {
        ksp_warn("keys", "key generation in %s failed: %s", ch.ops->name, ksp_rv_name(rv));
        goto out;
    }

    /* Computed values, then the engine once more with everything known. */
    ksp_attrs_free(&pub_o);
    ksp_attrs_free(&priv_o);
    rv = add_public(&pub_c, &pk, true);
    if (rv == CKR_OK)
        rv = add_public(&priv_c, &pk, false);
    if (rv == CKR_OK)
        rv = add_vendor(&pub_c, &ch);
    if (rv == CKR_OK)
        rv = add_vendor(&priv_c, &ch);
    if (rv == CKR_OK && ch.ops->key_public)
        rv = add_tpm_public(&pub_c, &priv_c, ch.ops, &blob);
    if (rv == CKR_OK)
        rv = default_id(&pk, id);
    if (rv != CKR_OK)
        goto out;
    const CK_ATTRIBUTE *tid = ksp_attrs_find(&priv_t, CKA_ID);
    if (!tid)
        tid = ksp_attrs_find(&pub_t, CKA_ID);
    const void *idv = tid ? tid->pValue : id;
    CK_ULONG idl = tid ? tid->ulValueLen : sizeof(id);
    if (!ksp_attrs_find(&pub_t, CKA_ID))
        rv = ksp_attrs_set(&pub_c, CKA_ID, idv, idl);
    if (rv == CKR_OK && !ksp_attrs_find(&priv_t, CKA_ID))
        rv = ksp_attrs_set(&priv_c, CKA_ID, idv, idl);
    if (rv == CKR_OK)
        rv = ksp_schema_apply(KSP_SCHEMA_GENERATE, &ctx, NULL, &pub_t, &pub_c, &pub_o);
    if (rv == CKR_OK)
        rv = ksp_schema_apply(KSP_SCHEMA_GENERATE, &ctx, NULL, &priv_t, &priv_c, &priv_o);
    if (rv != CKR_OK)
        goto out;

    rv = ksp_object_add_inlock(s, &pub_o, KSP11_BACKEND_NONE, NULL, NULL, &h1);
    if (rv != CKR_OK)
        goto out;
    rv = ksp_object_add_inlock(s, &priv_o, ch.backend_id, &blob, &secret, &h2);
    if (rv != CKR_OK) {
        struct ksp_object *o = NULL;
        if (ksp_object_get_inlock(s, h1, &o) == CKR_OK)
            ksp_object_destroy_inlock(s, o);
        goto out;
    }
    ksp_info("keys", "token %s: generated %s key pair in %s (%s%s)", s->token->serial,
             kt == CKK_RSA ? "RSA" : "EC", ch.ops->name, ch.reason[0] ? "fallback: " : "",
             ch.reason[0] ? ch.reason : "hardware");
    *hpub = h1;
    *hpriv = h2;
    rv = CKR_OK;
out:
    ksp_attrs_free(&pub_t);
    ksp_attrs_free(&priv_t);
    ksp_attrs_free(&pub_c);
    ksp_attrs_free(&priv_c);
    ksp_attrs_free(&pub_o);
    ksp_attrs_free(&priv_o);
    ksp_buf_free(&blob);
    ksp_buf_free(&secret);
    ksp_pubkey_free(&pk);
    return rv;
}

/* PKCS#8 from the components in a private key template. */
static CK_RV template_pkcs8(const struct ksp_attrs *t, CK_ULONG kt, struct ksp_buf *der)
{
    if (kt == CKK_RSA) {
        static const CK_ATTRIBUTE_TYPE order[8] = {
            CKA_MODULUS, CKA_PUBLIC_EXPONENT, CKA_PRIVATE_EXPONENT, CKA_PRIME_1,
            CKA_PRIME_2, CKA_EXPONENT_1,      CKA_EXPONENT_2,       CKA_COEFFICIENT};
        struct ksp_buf comp[8];
        for (int i = 0; i < 8; i++) {
            const CK_ATTRIBUTE *a = ksp_attrs_find(t, order[i]);
            comp[i].p = a ? a->pValue : NULL;
            comp[i].len = a ? a->ulValueLen : 0;
        }
        return ksp_pkcs8_from_rsa(comp, der);
    }
    const CK_ATTRIBUTE *p = ksp_attrs_find(t, CKA_EC_PARAMS);
    const CK_ATTRIBUTE *d = ksp_attrs_find(t, CKA_VALUE);
    enum ksp_curve c = KSP_CURVE_NONE;
    if (!p || !d)
        return CKR_TEMPLATE_INCOMPLETE;
    CK_RV rv = ksp_ec_params_to_curve(p->pValue, p->ulValueLen, &c);
    if (rv != CKR_OK)
        return rv;
    return ksp_pkcs8_from_ec(c, d->pValue, d->ulValueLen, der);
}

/* Drop attributes that must never be stored in clear (schema says which). */
static void strip_secret(struct ksp_attrs *o)
{
    for (size_t i = 0; i < o->n;) {
        if (ksp_schema_is_secret(o, o->v[i].type))
            ksp_attrs_remove(o, o->v[i].type);
        else
            i++;
    }
}

CK_RV ksp_keys_create_inlock(struct ksp_session *s, const CK_ATTRIBUTE *tmpl, CK_ULONG n,
                             CK_OBJECT_HANDLE *out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_attrs t, c, o;
    struct ksp_schema_ctx ctx = schema_ctx(s);
    struct ksp_buf der = {0}, blob = {0}, secret = {0};
    struct ksp_pubkey pk;
    CK_ULONG backend = KSP11_BACKEND_NONE;

    memset(&pk, 0, sizeof(pk));
    ksp_attrs_init(&t);
    ksp_attrs_init(&c);
    ksp_attrs_init(&o);
    rv = ksp_attrs_from_template(tmpl, n, &t);
    if (rv != CKR_OK)
        goto out;
    CK_ULONG cls = CK_UNAVAILABLE_INFORMATION, kt = CK_UNAVAILABLE_INFORMATION;
    ksp_attrs_ulong(&t, CKA_CLASS, &cls);
    ksp_attrs_ulong(&t, CKA_KEY_TYPE, &kt);
    struct ksp_choice ch;
    memset(&ch, 0, sizeof(ch));
    if (cls == CKO_PRIVATE_KEY) {
        rv = ksp_policy_choose_inlock(NULL, false, &ch);
        if (rv != CKR_OK)
            goto out;
        rv = add_vendor(&c, &ch);
        if (rv != CKR_OK)
            goto out;
    }
    rv = ksp_schema_apply(KSP_SCHEMA_CREATE, &ctx, NULL, &t, &c, &o);
    if (rv != CKR_OK)
        goto out;
    rv = can_create(s, &o);
    if (rv != CKR_OK)
        goto out;

    if (cls == CKO_PRIVATE_KEY) {
        struct ksp_backend *be = NULL;
        const struct ksp_buf *twk = NULL;
        rv = ksp_auth_twk_inlock(s->token, &twk);
        if (rv != CKR_OK)
            goto out;
        rv = template_pkcs8(&t, kt, &der);
        if (rv != CKR_OK)
            goto out;
        rv = ksp_backend_get_inlock(ch.backend_id, NULL, &be);
        if (rv != CKR_OK)
            goto out;
        if (!ch.ops->import) {
            rv = CKR_TEMPLATE_INCONSISTENT;
            goto out;
        }
        rv = ch.ops->import(be, der.p, der.len, &blob, &secret, &pk);
        if (rv != CKR_OK)
            goto out;
        backend = ch.backend_id;
        ksp_info("keys", "token %s: imported %s private key into %s", s->token->serial,
                 kt == CKK_RSA ? "RSA" : "EC", ch.ops->name);
    } else if (cls == CKO_PUBLIC_KEY) {
        rv = ksp_object_pubkey_from_attrs(&o, &pk);
        if (rv == CKR_OK)
            rv = ksp_pub_check(&pk);
        if (rv != CKR_OK) {
            rv = CKR_ATTRIBUTE_VALUE_INVALID;
            goto out;
        }
    } else if (cls == CKO_SECRET_KEY && ksp_schema_access(&o, CKA_VALUE) != KSP_ACCESS_OK) {
        const CK_ATTRIBUTE *v = ksp_attrs_find(&o, CKA_VALUE);
        if (v) {
            rv = ksp_buf_set(&secret, v->pValue, v->ulValueLen);
            if (rv != CKR_OK)
                goto out;
        }
    }
    if (cls == CKO_PRIVATE_KEY || (cls == CKO_SECRET_KEY && secret.len))
        strip_secret(&o);
    rv = ksp_object_add_inlock(s, &o, backend, &blob, &secret, out);
out:
    ksp_attrs_free(&t);
    ksp_attrs_free(&c);
    ksp_attrs_free(&o);
    ksp_buf_free(&der);
    ksp_buf_free(&blob);
    ksp_buf_free(&secret);
    ksp_pubkey_free(&pk);
    return rv;
}

CK_RV ksp_keys_derive_inlock(struct ksp_session *s, const CK_MECHANISM *m, CK_OBJECT_HANDLE base,
                             const CK_ATTRIBUTE *tmpl, CK_ULONG n, CK_OBJECT_HANDLE *out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    const struct ksp_mech *row = NULL;
    struct ksp_object *key = NULL;
    struct ksp_mparams p;
    struct ksp_attrs t, c, o;
    struct ksp_buf peer = {0}, value = {0};
    uint8_t *z = NULL;
    size_t zlen = 0, fb = 0;
    struct ksp_schema_ctx ctx = schema_ctx(s);
    enum ksp_curve curve = KSP_CURVE_NONE;

    memset(&p, 0, sizeof(p));
    ksp_attrs_init(&t);
    ksp_attrs_init(&c);
    ksp_attrs_init(&o);
    rv = ksp_key_check_inlock(s, m, base, KSP_OPK_COUNT, &row, &key);
    if (rv != CKR_OK)
        goto out;
    rv = ksp_mech_params(row, m, &p);
    if (rv != CKR_OK)
        goto out;
    const CK_ATTRIBUTE *ep = ksp_attrs_find(&key->attrs, CKA_EC_PARAMS);
    if (!ep || ksp_ec_params_to_curve(ep->pValue, ep->ulValueLen, &curve) != CKR_OK) {
        rv = CKR_KEY_TYPE_INCONSISTENT;
        goto out;
    }
    fb = ksp_ec_field_bytes(curve);
    rv = ksp_ec_point_unwrap(curve, p.peer, p.peer_len, &peer);
    if (rv != CKR_OK) {
        rv = CKR_MECHANISM_PARAM_INVALID;
        goto out;
    }
    rv = ksp_attrs_from_template(tmpl, n, &t);
    if (rv != CKR_OK)
        goto out;
    /* Length of the derived value: CKA_VALUE_LEN, or all of Z with CKD_NULL. */
    CK_ULONG vlen = 0;
    rv = ksp_attrs_ulong(&t, CKA_VALUE_LEN, &vlen);
    if (rv == CKR_TEMPLATE_INCOMPLETE && p.kdf == CKD_NULL) {
        vlen = fb;
        rv = CKR_OK;
    }
    if (rv != CKR_OK)
        goto out;
    if (vlen == 0 || vlen > 1024 || (p.kdf == CKD_NULL && vlen > fb)) {
        rv = CKR_ATTRIBUTE_VALUE_INVALID;
        goto out;
    }
    const struct ksp_backend_ops *ops = NULL;
    struct ksp_bkey *bk = NULL;
    rv = ksp_object_bkey_inlock(key, &ops, &bk);
    if (rv != CKR_OK)
        goto out;
    z = ksp_secmem_alloc(fb);
    rv = ksp_buf_alloc(&value, vlen);
    if (!z || rv != CKR_OK) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    zlen = fb;
    struct ksp_prim_args a = {.prim = KSP_PRIM_ECDH};
    rv = ops->private_op(bk, &a, peer.p, peer.len, z, &zlen);
    if (rv == CKR_OK)
        rv = ksp_ecdh_kdf(p.kdf, z, zlen, p.shared, p.shared_len, value.p, vlen);
    if (rv != CKR_OK)
        goto out;
    rv = ksp_attrs_set_ulong(&c, CKA_CLASS, CKO_SECRET_KEY);
    if (rv == CKR_OK)
        rv = ksp_attrs_set_ulong(&c, CKA_KEY_TYPE, CKK_GENERIC_SECRET);
    if (rv == CKR_OK)
        rv = ksp_attrs_set(&c, CKA_VALUE, value.p, value.len);
    if (rv == CKR_OK)
        rv = ksp_attrs_set_ulong(&c, CKA_VALUE_LEN, vlen);
    if (rv == CKR_OK)
        rv = ksp_schema_apply(KSP_SCHEMA_DERIVE, &ctx, NULL, &t, &c, &o);
    if (rv == CKR_OK)
        rv = can_create(s, &o);
    if (rv != CKR_OK)
        goto out;
    /* A value that can never be read back is never stored in clear. */
    bool sealed = ksp_schema_access(&o, CKA_VALUE) != KSP_ACCESS_OK;
    if (sealed)
        strip_secret(&o);
    rv = ksp_object_add_inlock(s, &o, KSP11_BACKEND_NONE, NULL, sealed ? &value : NULL, out);
out:
    if (z)
        ksp_secmem_free(z, fb);
    ksp_mparams_free(&p);
    ksp_attrs_free(&t);
    ksp_attrs_free(&c);
    ksp_attrs_free(&o);
    ksp_buf_free(&peer);
    ksp_buf_free(&value);
    return rv;
}
