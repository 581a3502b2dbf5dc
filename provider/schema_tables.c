/*
 * The attribute schemas (DESIGN.md §2, style.md §3.5): one const table per
 * (class, key type), chained by parent pointers:
 *
 *   common storage -> data object
 *                  -> certificate -> X.509 certificate
 *                  -> key -> asymmetric key (ksp11 vendor) -> public key  -> RSA / EC public
 *                                                          -> private key -> RSA / EC private
 *                         -> secret key -> generic secret
 *
 * Rows follow the PKCS#11 2.40 §4 attribute tables (3.0 adds CKA_COPYABLE,
 * CKA_DESTROYABLE, CKA_UNIQUE_ID); the footnote numbers are in the flag
 * comments of schema_tables.h. ksp11 policy (DESIGN.md §3) shows as
 * KSP_A_FORCED rows and as child rows that override a parent's row.
 * schema.c enforces the tables; nothing here knows about operations beyond
 * the per-level `finish` hooks that compute attributes.
 */
#include <string.h>

#include "ksp11/ksp11.h"
#include "schema_tables.h"

#define NROWS(r) (sizeof(r) / sizeof((r)[0]))

/* ---- validators ---------------------------------------------------------- */

static CK_ULONG ulong_of(const CK_ATTRIBUTE *at)
{
    CK_ULONG v = 0;
    memcpy(&v, at->pValue, sizeof(v));
    return v;
}

static CK_RV check_class(const CK_ATTRIBUTE *at)
{
    CK_ATTRIBUTE_TYPE sub = 0;
    return ksp_schema_class_subtype(ulong_of(at), &sub) ? CKR_OK : CKR_ATTRIBUTE_VALUE_INVALID;
}

static CK_RV check_key_type(const CK_ATTRIBUTE *at)
{
    CK_ULONG kt = ulong_of(at);
    for (size_t i = 0; i < ksp_schema_nleaves; i++)
        if (ksp_schema_leaves[i].subtype_attr == CKA_KEY_TYPE && ksp_schema_leaves[i].subtype == kt)
            return CKR_OK;
    return CKR_ATTRIBUTE_VALUE_INVALID;
}

static CK_RV check_cert_type(const CK_ATTRIBUTE *at)
{
    /* ksp11 supports X.509 public key certificates only (PKCS#11 2.40 §4.6.3). */
    return ulong_of(at) == CKC_X_509 ? CKR_OK : CKR_ATTRIBUTE_VALUE_INVALID;
}

static CK_RV check_modulus_bits(const CK_ATTRIBUTE *at)
{
    CK_ULONG bits = ulong_of(at);
    return bits >= 1024 && bits <= 16384 ? CKR_OK : CKR_ATTRIBUTE_VALUE_INVALID;
}

static CK_RV check_nonempty(const CK_ATTRIBUTE *at)
{
    return at->ulValueLen > 0 ? CKR_OK : CKR_ATTRIBUTE_VALUE_INVALID;
}

static CK_RV check_cert_category(const CK_ATTRIBUTE *at)
{
    /* PKCS#11 2.40 §4.6: unspecified (0), token user (1), authority (2), other entity (3). */
    return ulong_of(at) <= 3 ? CKR_OK : CKR_ATTRIBUTE_VALUE_INVALID;
}

static CK_RV check_value_len(const CK_ATTRIBUTE *at)
{
    return ulong_of(at) > 0 ? CKR_OK : CKR_ATTRIBUTE_VALUE_INVALID;
}

/* ---- finish hooks: attributes the token computes --------------------------- */

/* Set a computed attribute unless the caller's `computed` supplies it (it wins). */
static CK_RV put(struct ksp_attrs *out, const struct ksp_attrs *computed, CK_ATTRIBUTE_TYPE type,
                 const void *val, CK_ULONG len)
{
    if (computed && ksp_attrs_find(computed, type))
        return CKR_OK;
    return ksp_attrs_set(out, type, val, len);
}

static CK_RV put_bool(struct ksp_attrs *out, const struct ksp_attrs *computed,
                      CK_ATTRIBUTE_TYPE type, bool val)
{
    CK_BBOOL b = val ? CK_TRUE : CK_FALSE;
    return put(out, computed, type, &b, sizeof(b));
}

static CK_RV put_ulong(struct ksp_attrs *out, const struct ksp_attrs *computed,
                       CK_ATTRIBUTE_TYPE type, CK_ULONG val)
{
    return put(out, computed, type, &val, sizeof(val));
}

/* PKCS#11 2.40 §4.7: CKA_LOCAL is TRUE only for keys generated on the token;
 * CKA_KEY_GEN_MECHANISM is CK_UNAVAILABLE_INFORMATION unless the token
 * generated the key (the caller passes the mechanism in `computed`). */
static CK_RV key_finish(enum ksp_schema_op op, const struct ksp_attrs *computed,
                        struct ksp_attrs *out)
{
    CK_RV rv = put_bool(out, computed, CKA_LOCAL, op == KSP_SCHEMA_GENERATE);
    if (rv != CKR_OK)
        return rv;
    return put_ulong(out, computed, CKA_KEY_GEN_MECHANISM, CK_UNAVAILABLE_INFORMATION);
}

/* PKCS#11 2.40 §4.9: an imported private key was never known to be protected
 * (semantics.md §1.2), a generated one always was (ksp11 forces SENSITIVE and
 * !EXTRACTABLE). */
static CK_RV priv_finish(enum ksp_schema_op op, const struct ksp_attrs *computed,
                         struct ksp_attrs *out)
{
    bool born = op != KSP_SCHEMA_CREATE;
    CK_RV rv = put_bool(out, computed, CKA_ALWAYS_SENSITIVE,
                        born && ksp_attrs_bool(out, CKA_SENSITIVE, false));
    if (rv != CKR_OK)
        return rv;
    return put_bool(out, computed, CKA_NEVER_EXTRACTABLE,
                    born && !ksp_attrs_bool(out, CKA_EXTRACTABLE, true));
}

/* PKCS#11 2.40 §4.10: ALWAYS_SENSITIVE / NEVER_EXTRACTABLE start from the
 * key's own CKA_SENSITIVE / CKA_EXTRACTABLE. For DERIVE the caller may pass
 * the base key's history in `computed` instead. */
static CK_RV secret_finish(enum ksp_schema_op op, const struct ksp_attrs *computed,
                           struct ksp_attrs *out)
{
    (void)op;
    CK_RV rv =
        put_bool(out, computed, CKA_ALWAYS_SENSITIVE, ksp_attrs_bool(out, CKA_SENSITIVE, false));
    if (rv != CKR_OK)
        return rv;
    return put_bool(out, computed, CKA_NEVER_EXTRACTABLE,
                    !ksp_attrs_bool(out, CKA_EXTRACTABLE, true));
}

/* Generic secret keys (PKCS#11 2.40 mechanisms): CKA_VALUE_LEN is fn 2, the
 * length of CKA_VALUE. */
static CK_RV generic_finish(enum ksp_schema_op op, const struct ksp_attrs *computed,
                            struct ksp_attrs *out)
{
    (void)op;
    const CK_ATTRIBUTE *v = ksp_attrs_find(out, CKA_VALUE);
    if (!v)
        return CKR_OK;
    return put_ulong(out, computed, CKA_VALUE_LEN, v->ulValueLen);
}

/* RSA public keys (PKCS#11 2.40 mechanisms §2.1.2): CKA_MODULUS_BITS is fn 2;
 * it is the bit length of CKA_MODULUS, so compute it whenever that is known. */
static CK_RV rsa_pub_finish(enum ksp_schema_op op, const struct ksp_attrs *computed,
                            struct ksp_attrs *out)
{
    (void)op;
    const CK_ATTRIBUTE *m = ksp_attrs_find(out, CKA_MODULUS);
    if (!m)
        return CKR_OK;
    const unsigned char *p = m->pValue;
    CK_ULONG n = m->ulValueLen;
    while (n > 0 && *p == 0) {
        p++;
        n--;
    }
    CK_ULONG bits = 0;
    if (n > 0) {
        bits = (n - 1) * 8;
        for (unsigned char top = *p; top; top >>= 1)
            bits++;
    }
    return put_ulong(out, computed, CKA_MODULUS_BITS, bits);
}

/* ---- tables -------------------------------------------------------------- */

/* Shorthands for the recurring flag sets. */
#define KEY_MATERIAL (KSP_A_SETTABLE_ONLY_ON_CREATE | KSP_A_UNCHANGEABLE)
#define COMPUTED     (KSP_A_NEVER_SETTABLE | KSP_A_UNCHANGEABLE)

/* PKCS#11 2.40 §4.2 (common object) and §4.4 (storage), plus 3.0 §4.4. */
static const struct ksp_schema_row storage_rows[] = {
    {CKA_CLASS, KSP_T_ULONG, KSP_A_REQUIRED_ON_CREATE | KSP_A_UNCHANGEABLE | KSP_A_GEN_PARAM,
     KSP_D_NONE, check_class},
    {CKA_TOKEN, KSP_T_BOOL, KSP_A_UNCHANGEABLE | KSP_A_CHANGE_ON_COPY, KSP_D_FALSE, NULL},
    /* fn 9-like: token-specific default; private and secret keys override it. */
    {CKA_PRIVATE, KSP_T_BOOL, KSP_A_UNCHANGEABLE | KSP_A_CHANGE_ON_COPY, KSP_D_FALSE, NULL},
    {CKA_MODIFIABLE, KSP_T_BOOL, KSP_A_UNCHANGEABLE | KSP_A_CHANGE_ON_COPY, KSP_D_TRUE, NULL},
    /* §4.4: "Only the CKA_LABEL attribute can be modified after the object is created." */
    {CKA_LABEL, KSP_T_STRING, 0, KSP_D_EMPTY, NULL},
    /* 3.0: "Can't be set to TRUE once it is set to FALSE"; ksp11 does not
     * change it after creation at all. */
    {CKA_COPYABLE, KSP_T_BOOL, KSP_A_UNCHANGEABLE | KSP_A_CHANGE_TO_FALSE_ONLY, KSP_D_TRUE, NULL},
    /* 3.0; ksp11 policy: an indestructible object stays so (fn 12 semantics). */
    {CKA_DESTROYABLE, KSP_T_BOOL, KSP_A_CHANGE_TO_FALSE_ONLY, KSP_D_TRUE, NULL},
    /* 3.0 fn 2, 4, 6: assigned by the token (the caller, after apply). */
    {CKA_UNIQUE_ID, KSP_T_STRING, COMPUTED, KSP_D_NONE, NULL},
};
static const struct ksp_schema storage_schema = {
    "storage", NULL, storage_rows, NROWS(storage_rows), NULL,
};

/* PKCS#11 2.40 §4.5: no footnotes, so nothing changes after creation. */
static const struct ksp_schema_row data_rows[] = {
    {CKA_APPLICATION, KSP_T_STRING, KSP_A_UNCHANGEABLE, KSP_D_EMPTY, NULL},
    {CKA_OBJECT_ID, KSP_T_BYTES, KSP_A_UNCHANGEABLE, KSP_D_EMPTY, NULL},
    {CKA_VALUE, KSP_T_BYTES, KSP_A_UNCHANGEABLE, KSP_D_EMPTY, NULL},
};
static const struct ksp_schema data_schema = {
    "data", &storage_schema, data_rows, NROWS(data_rows), NULL,
};

/* PKCS#11 2.40 §4.6 (common certificate attributes). */
static const struct ksp_schema_row cert_rows[] = {
    {CKA_CERTIFICATE_TYPE, KSP_T_ULONG, KSP_A_REQUIRED_ON_CREATE | KSP_A_UNCHANGEABLE, KSP_D_NONE,
     check_cert_type},
    {CKA_TRUSTED, KSP_T_BOOL, KSP_A_SO_ONLY, KSP_D_FALSE, NULL},
    {CKA_CERTIFICATE_CATEGORY, KSP_T_ULONG, KSP_A_UNCHANGEABLE, KSP_D_ZERO, check_cert_category},
    {CKA_CHECK_VALUE, KSP_T_BYTES, KSP_A_UNCHANGEABLE, KSP_D_NONE, NULL},
    {CKA_START_DATE, KSP_T_DATE, KSP_A_UNCHANGEABLE, KSP_D_EMPTY, NULL},
    {CKA_END_DATE, KSP_T_DATE, KSP_A_UNCHANGEABLE, KSP_D_EMPTY, NULL},
    {CKA_PUBLIC_KEY_INFO, KSP_T_BYTES, KSP_A_UNCHANGEABLE, KSP_D_NONE, NULL},
};
static const struct ksp_schema cert_schema = {
    "certificate", &storage_schema, cert_rows, NROWS(cert_rows), NULL,
};

/* PKCS#11 2.40 §4.6.3 (X.509, unchanged since 2.10): "Only the CKA_ID, CKA_ISSUER, and
 * CKA_SERIAL_NUMBER attributes may be modified after the object is created." */
static const struct ksp_schema_row x509_rows[] = {
    {CKA_SUBJECT, KSP_T_BYTES, KSP_A_REQUIRED_ON_CREATE | KSP_A_UNCHANGEABLE, KSP_D_NONE, NULL},
    {CKA_ID, KSP_T_BYTES, 0, KSP_D_EMPTY, NULL},
    {CKA_ISSUER, KSP_T_BYTES, 0, KSP_D_EMPTY, NULL},
    {CKA_SERIAL_NUMBER, KSP_T_BYTES, 0, KSP_D_EMPTY, NULL},
    {CKA_VALUE, KSP_T_BYTES, KSP_A_REQUIRED_ON_CREATE | KSP_A_UNCHANGEABLE, KSP_D_NONE,
     check_nonempty},
    {CKA_URL, KSP_T_STRING, KSP_A_UNCHANGEABLE, KSP_D_EMPTY, NULL},
    {CKA_HASH_OF_SUBJECT_PUBLIC_KEY, KSP_T_BYTES, KSP_A_UNCHANGEABLE, KSP_D_EMPTY, NULL},
    {CKA_HASH_OF_ISSUER_PUBLIC_KEY, KSP_T_BYTES, KSP_A_UNCHANGEABLE, KSP_D_EMPTY, NULL},
    {CKA_JAVA_MIDP_SECURITY_DOMAIN, KSP_T_ULONG, KSP_A_UNCHANGEABLE, KSP_D_ZERO, NULL},
    {CKA_NAME_HASH_ALGORITHM, KSP_T_ULONG, KSP_A_UNCHANGEABLE, KSP_D_NONE, NULL},
};
static const struct ksp_schema x509_schema = {
    "x509-certificate", &cert_schema, x509_rows, NROWS(x509_rows), NULL,
};

/* PKCS#11 2.40 §4.7 (common key attributes). */
static const struct ksp_schema_row key_rows[] = {
    /* fn 1, 5 */
    {CKA_KEY_TYPE, KSP_T_ULONG, KSP_A_REQUIRED_ON_CREATE | KSP_A_UNCHANGEABLE | KSP_A_GEN_PARAM,
     KSP_D_NONE, check_key_type},
    {CKA_ID, KSP_T_BYTES, 0, KSP_D_EMPTY, NULL},                      /* fn 8 */
    {CKA_START_DATE, KSP_T_DATE, 0, KSP_D_EMPTY, NULL},               /* fn 8 */
    {CKA_END_DATE, KSP_T_DATE, 0, KSP_D_EMPTY, NULL},                 /* fn 8 */
    {CKA_DERIVE, KSP_T_BOOL, 0, KSP_D_FALSE, NULL},                   /* fn 8, 9 */
    {CKA_LOCAL, KSP_T_BOOL, COMPUTED, KSP_D_NONE, NULL},              /* fn 2, 4, 6 */
    {CKA_KEY_GEN_MECHANISM, KSP_T_ULONG, COMPUTED, KSP_D_NONE, NULL}, /* fn 2, 4, 6 */
    {CKA_ALLOWED_MECHANISMS, KSP_T_MECHS, KSP_A_UNCHANGEABLE, KSP_D_NONE, NULL},
};
static const struct ksp_schema key_schema = {
    "key", &storage_schema, key_rows, NROWS(key_rows), key_finish,
};

/* DESIGN.md §4: ksp11 vendor attributes of key pairs. The token records the
 * backend choice; a template may only ask for hardware. */
static const struct ksp_schema_row asym_rows[] = {
    {CKA_KSP11_BACKEND, KSP_T_ULONG, COMPUTED, KSP_D_NONE, NULL},
    {CKA_KSP11_IMPL_TYPE, KSP_T_ULONG, COMPUTED, KSP_D_NONE, NULL},
    {CKA_KSP11_FALLBACK_REASON, KSP_T_STRING, COMPUTED, KSP_D_NONE, NULL},
    {CKA_KSP11_TPM_IDENTITY, KSP_T_STRING, COMPUTED, KSP_D_NONE, NULL},
    {CKA_KSP11_TPM_PUBLIC, KSP_T_BYTES, COMPUTED, KSP_D_EMPTY, NULL},
    {CKA_KSP11_TPM_NAME, KSP_T_BYTES, COMPUTED, KSP_D_EMPTY, NULL},
    {CKA_KSP11_REQUIRE_HARDWARE, KSP_T_BOOL, KSP_A_TEMPLATE_ONLY, KSP_D_NONE, NULL},
};
static const struct ksp_schema asym_schema = {
    "asymmetric-key", &key_schema, asym_rows, NROWS(asym_rows), NULL,
};

/* PKCS#11 2.40 §4.8 (common public key attributes). Usage defaults are fn 9
 * (token-specific): verify yes, the rest per key type or off. */
static const struct ksp_schema_row pub_rows[] = {
    {CKA_SUBJECT, KSP_T_BYTES, 0, KSP_D_EMPTY, NULL},            /* fn 8 */
    {CKA_ENCRYPT, KSP_T_BOOL, 0, KSP_D_FALSE, NULL},             /* fn 8, 9 */
    {CKA_VERIFY, KSP_T_BOOL, 0, KSP_D_TRUE, NULL},               /* fn 8, 9 */
    {CKA_VERIFY_RECOVER, KSP_T_BOOL, 0, KSP_D_FALSE, NULL},      /* fn 8, 9 */
    {CKA_WRAP, KSP_T_BOOL, 0, KSP_D_FALSE, NULL},                /* fn 8, 9 */
    {CKA_TRUSTED, KSP_T_BOOL, KSP_A_SO_ONLY, KSP_D_FALSE, NULL}, /* fn 10 */
    {CKA_WRAP_TEMPLATE, KSP_T_BYTES, KSP_A_UNSUPPORTED, KSP_D_NONE, NULL},
    {CKA_PUBLIC_KEY_INFO, KSP_T_BYTES, KSP_A_UNCHANGEABLE, KSP_D_NONE, NULL},
};
static const struct ksp_schema pub_schema = {
    "public-key", &asym_schema, pub_rows, NROWS(pub_rows), NULL,
};

/* PKCS#11 2.40 mechanisms §2.1.2 (RSA public key objects). */
static const struct ksp_schema_row rsa_pub_rows[] = {
    /* fn 1, 4 */
    {CKA_MODULUS, KSP_T_BIGINT, KSP_A_REQUIRED_ON_CREATE | KEY_MATERIAL, KSP_D_NONE,
     check_nonempty},
    /* fn 2, 3: a generation parameter, computed from CKA_MODULUS otherwise. */
    {CKA_MODULUS_BITS, KSP_T_ULONG,
     KSP_A_NEVER_ON_CREATE | KSP_A_REQUIRED_ON_GENERATE | KSP_A_GEN_PARAM | KSP_A_UNCHANGEABLE,
     KSP_D_NONE, check_modulus_bits},
    /* fn 1; optional on generate (the token's default is 65537). */
    {CKA_PUBLIC_EXPONENT, KSP_T_BIGINT,
     KSP_A_REQUIRED_ON_CREATE | KSP_A_GEN_PARAM | KSP_A_UNCHANGEABLE, KSP_D_NONE, check_nonempty},
    /* RSA public keys encrypt by default (fn 9 choice). */
    {CKA_ENCRYPT, KSP_T_BOOL, 0, KSP_D_TRUE, NULL},
};
static const struct ksp_schema rsa_pub_schema = {
    "rsa-public-key", &pub_schema, rsa_pub_rows, NROWS(rsa_pub_rows), rsa_pub_finish,
};

/* PKCS#11 2.40 mechanisms §2.3.3 (EC public key objects). */
static const struct ksp_schema_row ec_pub_rows[] = {
    /* fn 1, 3 */
    {CKA_EC_PARAMS, KSP_T_BYTES,
     KSP_A_REQUIRED_ON_CREATE | KSP_A_REQUIRED_ON_GENERATE | KSP_A_GEN_PARAM | KSP_A_UNCHANGEABLE,
     KSP_D_NONE, check_nonempty},
    /* fn 1, 4 */
    {CKA_EC_POINT, KSP_T_BYTES, KSP_A_REQUIRED_ON_CREATE | KEY_MATERIAL, KSP_D_NONE,
     check_nonempty},
};
static const struct ksp_schema ec_pub_schema = {
    "ec-public-key", &pub_schema, ec_pub_rows, NROWS(ec_pub_rows), NULL,
};

/* PKCS#11 2.40 §4.9 (common private key attributes) with ksp11's policy
 * (DESIGN.md §3, semantics.md §1.3): non-exportable, not copyable, usage may
 * only narrow, nothing else changes after creation. */
static const struct ksp_schema_row priv_rows[] = {
    {CKA_PRIVATE, KSP_T_BOOL, KSP_A_UNCHANGEABLE | KSP_A_CHANGE_ON_COPY, KSP_D_TRUE, NULL},
    {CKA_COPYABLE, KSP_T_BOOL, KSP_A_FORCED | KSP_A_UNCHANGEABLE | KSP_A_CHANGE_TO_FALSE_ONLY,
     KSP_D_FALSE, NULL},
    {CKA_SUBJECT, KSP_T_BYTES, 0, KSP_D_EMPTY, NULL}, /* fn 8 */
    /* fn 8, 11; forced TRUE */
    {CKA_SENSITIVE, KSP_T_BOOL, KSP_A_FORCED | KSP_A_CHANGE_TO_TRUE_ONLY, KSP_D_TRUE, NULL},
    /* fn 8, 9; ksp11: only TRUE -> FALSE (usage may narrow, never widen). */
    {CKA_DECRYPT, KSP_T_BOOL, KSP_A_CHANGE_TO_FALSE_ONLY, KSP_D_FALSE, NULL},
    {CKA_SIGN, KSP_T_BOOL, KSP_A_CHANGE_TO_FALSE_ONLY, KSP_D_TRUE, NULL},
    {CKA_DERIVE, KSP_T_BOOL, KSP_A_CHANGE_TO_FALSE_ONLY, KSP_D_FALSE, NULL},
    /* fn 8, 9; not supported by ksp11: forced FALSE */
    {CKA_SIGN_RECOVER, KSP_T_BOOL, KSP_A_FORCED, KSP_D_FALSE, NULL},
    {CKA_UNWRAP, KSP_T_BOOL, KSP_A_FORCED, KSP_D_FALSE, NULL},
    /* fn 8, 12; forced FALSE */
    {CKA_EXTRACTABLE, KSP_T_BOOL, KSP_A_FORCED | KSP_A_CHANGE_TO_FALSE_ONLY, KSP_D_FALSE, NULL},
    {CKA_ALWAYS_SENSITIVE, KSP_T_BOOL, COMPUTED, KSP_D_NONE, NULL},  /* fn 2, 4, 6 */
    {CKA_NEVER_EXTRACTABLE, KSP_T_BOOL, COMPUTED, KSP_D_NONE, NULL}, /* fn 2, 4, 6 */
    /* fn 11; ksp11 never wraps private keys, so it is fixed at creation. */
    {CKA_WRAP_WITH_TRUSTED, KSP_T_BOOL, KSP_A_UNCHANGEABLE | KSP_A_CHANGE_TO_TRUE_ONLY, KSP_D_FALSE,
     NULL},
    {CKA_UNWRAP_TEMPLATE, KSP_T_BYTES, KSP_A_UNSUPPORTED, KSP_D_NONE, NULL},
    {CKA_ALWAYS_AUTHENTICATE, KSP_T_BOOL, KSP_A_UNCHANGEABLE, KSP_D_FALSE, NULL},
    {CKA_PUBLIC_KEY_INFO, KSP_T_BYTES, KSP_A_UNCHANGEABLE, KSP_D_NONE, NULL},
};
static const struct ksp_schema priv_schema = {
    "private-key", &asym_schema, priv_rows, NROWS(priv_rows), priv_finish,
};

/* PKCS#11 2.40 mechanisms §2.1.3 (RSA private key objects). ksp11 needs the public
 * exponent on import although the spec makes it optional (fn 4, 6 only). */
static const struct ksp_schema_row rsa_priv_rows[] = {
    {CKA_MODULUS, KSP_T_BIGINT, KSP_A_REQUIRED_ON_CREATE | KEY_MATERIAL, KSP_D_NONE,
     check_nonempty},
    {CKA_PUBLIC_EXPONENT, KSP_T_BIGINT, KSP_A_REQUIRED_ON_CREATE | KEY_MATERIAL, KSP_D_NONE,
     check_nonempty},
    /* fn 1, 4, 6, 7 */
    {CKA_PRIVATE_EXPONENT, KSP_T_BIGINT,
     KSP_A_REQUIRED_ON_CREATE | KEY_MATERIAL | KSP_A_SENSITIVE | KSP_A_SECRET, KSP_D_NONE,
     check_nonempty},
    /* fn 4, 6, 7 */
    {CKA_PRIME_1, KSP_T_BIGINT, KEY_MATERIAL | KSP_A_SENSITIVE | KSP_A_SECRET, KSP_D_NONE, NULL},
    {CKA_PRIME_2, KSP_T_BIGINT, KEY_MATERIAL | KSP_A_SENSITIVE | KSP_A_SECRET, KSP_D_NONE, NULL},
    {CKA_EXPONENT_1, KSP_T_BIGINT, KEY_MATERIAL | KSP_A_SENSITIVE | KSP_A_SECRET, KSP_D_NONE, NULL},
    {CKA_EXPONENT_2, KSP_T_BIGINT, KEY_MATERIAL | KSP_A_SENSITIVE | KSP_A_SECRET, KSP_D_NONE, NULL},
    {CKA_COEFFICIENT, KSP_T_BIGINT, KEY_MATERIAL | KSP_A_SENSITIVE | KSP_A_SECRET, KSP_D_NONE,
     NULL},
    /* RSA private keys decrypt by default (fn 9 choice); same rules as the parent row. */
    {CKA_DECRYPT, KSP_T_BOOL, KSP_A_CHANGE_TO_FALSE_ONLY, KSP_D_TRUE, NULL},
};
static const struct ksp_schema rsa_priv_schema = {
    "rsa-private-key", &priv_schema, rsa_priv_rows, NROWS(rsa_priv_rows), NULL,
};

/* PKCS#11 2.40 mechanisms §2.3.4 (EC private key objects). */
static const struct ksp_schema_row ec_priv_rows[] = {
    /* fn 1, 4, 6; ksp11 tolerates it in a generate template when it equals
     * the curve the token used (GEN_PARAM). */
    {CKA_EC_PARAMS, KSP_T_BYTES, KSP_A_REQUIRED_ON_CREATE | KSP_A_GEN_PARAM | KSP_A_UNCHANGEABLE,
     KSP_D_NONE, check_nonempty},
    /* fn 1, 4, 6, 7 */
    {CKA_VALUE, KSP_T_BIGINT,
     KSP_A_REQUIRED_ON_CREATE | KEY_MATERIAL | KSP_A_SENSITIVE | KSP_A_SECRET, KSP_D_NONE,
     check_nonempty},
    /* EC private keys agree keys (ECDH) by default (fn 9 choice). */
    {CKA_DERIVE, KSP_T_BOOL, KSP_A_CHANGE_TO_FALSE_ONLY, KSP_D_TRUE, NULL},
};
static const struct ksp_schema ec_priv_schema = {
    "ec-private-key", &priv_schema, ec_priv_rows, NROWS(ec_priv_rows), NULL,
};

/* PKCS#11 2.40 §4.10 (common secret key attributes): the spec's one-way rules,
 * no ksp11 restriction beyond a fail-closed default for CKA_EXTRACTABLE. */
static const struct ksp_schema_row secret_rows[] = {
    {CKA_PRIVATE, KSP_T_BOOL, KSP_A_UNCHANGEABLE | KSP_A_CHANGE_ON_COPY, KSP_D_TRUE, NULL},
    {CKA_SENSITIVE, KSP_T_BOOL, KSP_A_CHANGE_TO_TRUE_ONLY, KSP_D_FALSE, NULL}, /* fn 8, 11 */
    {CKA_ENCRYPT, KSP_T_BOOL, 0, KSP_D_FALSE, NULL},                           /* fn 8, 9 */
    {CKA_DECRYPT, KSP_T_BOOL, 0, KSP_D_FALSE, NULL},                           /* fn 8, 9 */
    {CKA_SIGN, KSP_T_BOOL, 0, KSP_D_FALSE, NULL},                              /* fn 8, 9 */
    {CKA_VERIFY, KSP_T_BOOL, 0, KSP_D_FALSE, NULL},                            /* fn 8, 9 */
    {CKA_WRAP, KSP_T_BOOL, 0, KSP_D_FALSE, NULL},                              /* fn 8, 9 */
    {CKA_UNWRAP, KSP_T_BOOL, 0, KSP_D_FALSE, NULL},                            /* fn 8, 9 */
    /* fn 8, 9, 12 */
    {CKA_EXTRACTABLE, KSP_T_BOOL, KSP_A_CHANGE_TO_FALSE_ONLY, KSP_D_FALSE, NULL},
    {CKA_ALWAYS_SENSITIVE, KSP_T_BOOL, COMPUTED, KSP_D_NONE, NULL},  /* fn 2, 4, 6 */
    {CKA_NEVER_EXTRACTABLE, KSP_T_BOOL, COMPUTED, KSP_D_NONE, NULL}, /* fn 2, 4, 6 */
    {CKA_CHECK_VALUE, KSP_T_BYTES, KSP_A_UNCHANGEABLE, KSP_D_NONE, NULL},
    {CKA_WRAP_WITH_TRUSTED, KSP_T_BOOL, KSP_A_CHANGE_TO_TRUE_ONLY, KSP_D_FALSE, NULL}, /* fn 11 */
    {CKA_TRUSTED, KSP_T_BOOL, KSP_A_SO_ONLY, KSP_D_FALSE, NULL},                       /* fn 10 */
};
static const struct ksp_schema secret_schema = {
    "secret-key", &key_schema, secret_rows, NROWS(secret_rows), secret_finish,
};

/* PKCS#11 2.40 mechanisms, generic secret key objects (what CKM_ECDH1_DERIVE
 * yields). */
static const struct ksp_schema_row generic_rows[] = {
    /* fn 1, 4, 6, 7 */
    {CKA_VALUE, KSP_T_BYTES, KSP_A_REQUIRED_ON_CREATE | KEY_MATERIAL | KSP_A_SECRET, KSP_D_NONE,
     check_nonempty},
    /* fn 2, 3; a derivation parameter too */
    {CKA_VALUE_LEN, KSP_T_ULONG,
     KSP_A_NEVER_ON_CREATE | KSP_A_REQUIRED_ON_GENERATE | KSP_A_GEN_PARAM | KSP_A_UNCHANGEABLE,
     KSP_D_NONE, check_value_len},
};
static const struct ksp_schema generic_schema = {
    "generic-secret-key", &secret_schema, generic_rows, NROWS(generic_rows), generic_finish,
};

const struct ksp_schema_leaf ksp_schema_leaves[] = {
    {CKO_DATA, KSP_NO_SUBTYPE, 0, &data_schema},
    {CKO_CERTIFICATE, CKA_CERTIFICATE_TYPE, CKC_X_509, &x509_schema},
    {CKO_PUBLIC_KEY, CKA_KEY_TYPE, CKK_RSA, &rsa_pub_schema},
    {CKO_PUBLIC_KEY, CKA_KEY_TYPE, CKK_EC, &ec_pub_schema},
    {CKO_PRIVATE_KEY, CKA_KEY_TYPE, CKK_RSA, &rsa_priv_schema},
    {CKO_PRIVATE_KEY, CKA_KEY_TYPE, CKK_EC, &ec_priv_schema},
    {CKO_SECRET_KEY, CKA_KEY_TYPE, CKK_GENERIC_SECRET, &generic_schema},
};
const size_t ksp_schema_nleaves = NROWS(ksp_schema_leaves);

/* ---- lookup -------------------------------------------------------------- */

bool ksp_schema_class_subtype(CK_OBJECT_CLASS cls, CK_ATTRIBUTE_TYPE *subtype_attr)
{
    for (size_t i = 0; i < ksp_schema_nleaves; i++) {
        if (ksp_schema_leaves[i].cls == cls) {
            *subtype_attr = ksp_schema_leaves[i].subtype_attr;
            return true;
        }
    }
    return false;
}

const struct ksp_schema_leaf *ksp_schema_leaf_find(CK_OBJECT_CLASS cls, CK_ULONG subtype)
{
    for (size_t i = 0; i < ksp_schema_nleaves; i++) {
        const struct ksp_schema_leaf *l = &ksp_schema_leaves[i];
        if (l->cls == cls && (l->subtype_attr == KSP_NO_SUBTYPE || l->subtype == subtype))
            return l;
    }
    return NULL;
}

const struct ksp_schema_row *ksp_schema_row_find(const struct ksp_schema *s, CK_ATTRIBUTE_TYPE type)
{
    for (; s; s = s->parent)
        for (size_t i = 0; i < s->nrows; i++)
            if (s->rows[i].type == type)
                return &s->rows[i];
    return NULL;
}
