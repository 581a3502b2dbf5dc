/*
 * The attribute schema engine (DESIGN.md §2, style.md §3.5): the one place
 * that checks templates against the schemas of schema_tables.c for create,
 * generate, derive, copy and set, fills defaults and token-computed
 * attributes, and answers which attributes may be read or stored in clear.
 * It decides by row flags only; what an attribute means lives in the tables.
 */
#include <string.h>

#include "log.h"
#include "schema.h"
#include "schema_tables.h"

#define AREA "schema"

/* Deepest chain is generic secret / RSA private: 5 levels. */
#define MAX_DEPTH 8

static const char *op_name(enum ksp_schema_op op)
{
    switch (op) {
    case KSP_SCHEMA_CREATE:
        return "create";
    case KSP_SCHEMA_GENERATE:
        return "generate";
    case KSP_SCHEMA_DERIVE:
        return "derive";
    case KSP_SCHEMA_COPY:
        return "copy";
    case KSP_SCHEMA_SET:
        return "set";
    }
    return "?";
}

/* Log why a template was refused (attribute type only: values may be secret). */
static CK_RV reject(enum ksp_schema_op op, const struct ksp_schema *s, CK_ATTRIBUTE_TYPE type,
                    CK_RV rv, const char *why)
{
    ksp_debug(AREA, "%s %s: attribute 0x%lx refused (%s)", op_name(op), s ? s->name : "?",
              (unsigned long)type, why);
    return rv;
}

/* ---- values -------------------------------------------------------------- */

static bool bool_of(const CK_ATTRIBUTE *at)
{
    return *(const CK_BBOOL *)at->pValue != CK_FALSE;
}

/* The value type check of PKCS#11 3.0 §5.7 ("CKR_ATTRIBUTE_VALUE_INVALID: an
 * invalid value was specified"), then the row's own validator. */
static CK_RV check_value(const struct ksp_schema_row *row, const CK_ATTRIBUTE *at)
{
    const unsigned char *p = at->pValue;
    switch (row->kind) {
    case KSP_T_BOOL:
        if (at->ulValueLen != sizeof(CK_BBOOL) || (p[0] != CK_FALSE && p[0] != CK_TRUE))
            return CKR_ATTRIBUTE_VALUE_INVALID;
        break;
    case KSP_T_ULONG:
        if (at->ulValueLen != sizeof(CK_ULONG))
            return CKR_ATTRIBUTE_VALUE_INVALID;
        break;
    case KSP_T_DATE:
        /* CK_DATE is YYYYMMDD in ASCII digits; an empty value means no date. */
        if (at->ulValueLen != 0 && at->ulValueLen != sizeof(CK_DATE))
            return CKR_ATTRIBUTE_VALUE_INVALID;
        for (CK_ULONG i = 0; i < at->ulValueLen; i++)
            if (p[i] < '0' || p[i] > '9')
                return CKR_ATTRIBUTE_VALUE_INVALID;
        break;
    case KSP_T_MECHS:
        if (at->ulValueLen % sizeof(CK_MECHANISM_TYPE) != 0)
            return CKR_ATTRIBUTE_VALUE_INVALID;
        break;
    case KSP_T_BYTES:
    case KSP_T_BIGINT:
    case KSP_T_STRING:
        break;
    }
    return row->check ? row->check(at) : CKR_OK;
}

/* Equal as values of this row's kind (big integers ignore leading zeros). */
static bool values_equal(const struct ksp_schema_row *row, const CK_ATTRIBUTE *a,
                         const CK_ATTRIBUTE *b)
{
    const unsigned char *pa = a->pValue, *pb = b->pValue;
    CK_ULONG la = a->ulValueLen, lb = b->ulValueLen;
    if (row->kind == KSP_T_BIGINT) {
        while (la > 0 && *pa == 0) {
            pa++;
            la--;
        }
        while (lb > 0 && *pb == 0) {
            pb++;
            lb--;
        }
    }
    return la == lb && (la == 0 || memcmp(pa, pb, la) == 0);
}

/* A boolean of an existing object; absent or malformed reads as the row's default. */
static bool obj_bool(const struct ksp_schema *s, const struct ksp_attrs *obj,
                     CK_ATTRIBUTE_TYPE type)
{
    const struct ksp_schema_row *row = ksp_schema_row_find(s, type);
    return ksp_attrs_bool(obj, type, row && row->dflt == KSP_D_TRUE);
}

/* ---- choosing the schema -------------------------------------------------- */

/* PKCS#11 3.0 §4.2: CKA_CLASS (fn 1) and, for keys and certificates, the
 * subtype select the attribute table. */
static CK_RV leaf_of_template(const struct ksp_attrs *tmpl, const struct ksp_schema_leaf **out)
{
    CK_OBJECT_CLASS cls = 0;
    CK_ULONG sub = 0;
    CK_ATTRIBUTE_TYPE sattr = 0;
    CK_RV rv = ksp_attrs_ulong(tmpl, CKA_CLASS, &cls);
    if (rv != CKR_OK)
        return rv; /* CKR_TEMPLATE_INCOMPLETE or CKR_ATTRIBUTE_VALUE_INVALID */
    if (!ksp_schema_class_subtype(cls, &sattr))
        return CKR_ATTRIBUTE_VALUE_INVALID;
    if (sattr != KSP_NO_SUBTYPE) {
        rv = ksp_attrs_ulong(tmpl, sattr, &sub);
        if (rv != CKR_OK)
            return rv;
    }
    const struct ksp_schema_leaf *leaf = ksp_schema_leaf_find(cls, sub);
    if (!leaf)
        return CKR_ATTRIBUTE_VALUE_INVALID;
    *out = leaf;
    return CKR_OK;
}

static const struct ksp_schema_leaf *leaf_of_object(const struct ksp_attrs *obj)
{
    CK_OBJECT_CLASS cls = 0;
    CK_ULONG sub = 0;
    CK_ATTRIBUTE_TYPE sattr = 0;
    if (!obj || ksp_attrs_ulong(obj, CKA_CLASS, &cls) != CKR_OK)
        return NULL;
    if (!ksp_schema_class_subtype(cls, &sattr))
        return NULL;
    if (sattr != KSP_NO_SUBTYPE && ksp_attrs_ulong(obj, sattr, &sub) != CKR_OK)
        return NULL;
    return ksp_schema_leaf_find(cls, sub);
}

/* GENERATE: the token says what it made (schema.h). */
static CK_RV leaf_of_generate(const struct ksp_attrs *computed, const struct ksp_schema_leaf **out)
{
    if (!computed)
        return CKR_ARGUMENTS_BAD;
    CK_RV rv = leaf_of_template(computed, out);
    if (rv == CKR_TEMPLATE_INCOMPLETE) {
        ksp_err(AREA, "generate: computed attributes lack the class or key type");
        rv = CKR_ARGUMENTS_BAD;
    }
    return rv;
}

/* DERIVE: a secret key; class and key type come from the token, else the
 * template, else CKO_SECRET_KEY / CKK_GENERIC_SECRET (what CKM_ECDH1_DERIVE
 * yields). */
static CK_RV leaf_of_derive(const struct ksp_attrs *tmpl, const struct ksp_attrs *computed,
                            const struct ksp_schema_leaf **out)
{
    CK_ULONG v[2] = {CKO_SECRET_KEY, CKK_GENERIC_SECRET};
    const CK_ATTRIBUTE_TYPE types[2] = {CKA_CLASS, CKA_KEY_TYPE};
    for (int i = 0; i < 2; i++) {
        const struct ksp_attrs *src = NULL;
        if (computed && ksp_attrs_find(computed, types[i]))
            src = computed;
        else if (ksp_attrs_find(tmpl, types[i]))
            src = tmpl;
        if (src) {
            CK_RV rv = ksp_attrs_ulong(src, types[i], &v[i]);
            if (rv != CKR_OK)
                return rv;
        }
    }
    /* A derive mechanism makes a secret key; asking for another class
     * contradicts it. */
    if (v[0] != CKO_SECRET_KEY)
        return CKR_TEMPLATE_INCONSISTENT;
    const struct ksp_schema_leaf *leaf = ksp_schema_leaf_find(v[0], v[1]);
    if (!leaf)
        return CKR_ATTRIBUTE_VALUE_INVALID;
    *out = leaf;
    return CKR_OK;
}

/* ---- template checks ------------------------------------------------------ */

/* One template attribute against its row for `op`. Order: is it an attribute
 * of this object at all, does it merely restate the object's value (COPY/SET),
 * is the value well-formed, does ksp11 policy allow it, may `op` set it. */
static CK_RV check_attr(enum ksp_schema_op op, const struct ksp_schema_ctx *ctx,
                        const struct ksp_schema *s, const struct ksp_attrs *obj,
                        const struct ksp_attrs *computed, const CK_ATTRIBUTE *at)
{
    const struct ksp_schema_row *row = ksp_schema_row_find(s, at->type);
    bool so = ctx && ctx->so;

    /* PKCS#11 3.0 §5.7: not an attribute of this class/key type. */
    if (!row || (row->flags & KSP_A_UNSUPPORTED))
        return reject(op, s, at->type, CKR_ATTRIBUTE_TYPE_INVALID, "not in schema");
    if ((row->flags & KSP_A_TEMPLATE_ONLY) && op != KSP_SCHEMA_GENERATE)
        return reject(op, s, at->type, CKR_ATTRIBUTE_TYPE_INVALID, "generate-only");

    /* COPY/SET: restating the current value changes nothing, so it is always
     * fine (even where a template could no longer give it, e.g. the
     * CKA_MODULUS_BITS of an imported 512-bit key). */
    if (op == KSP_SCHEMA_COPY || op == KSP_SCHEMA_SET) {
        const CK_ATTRIBUTE *cur = ksp_attrs_find(obj, at->type);
        if (cur && values_equal(row, cur, at))
            return CKR_OK;
    }

    CK_RV rv = check_value(row, at);
    if (rv != CKR_OK)
        return reject(op, s, at->type, rv, "bad value");

    /* DESIGN.md §3: ksp11 fixes these values. A new object asking otherwise
     * is refused as a bad value; on an existing object the attribute is
     * read-only (semantics.md §1.3: going back on a one-way flag). */
    if ((row->flags & KSP_A_FORCED) && bool_of(at) != (row->dflt == KSP_D_TRUE))
        return reject(op, s, at->type,
                      op == KSP_SCHEMA_COPY || op == KSP_SCHEMA_SET ? CKR_ATTRIBUTE_READ_ONLY
                                                                    : CKR_ATTRIBUTE_VALUE_INVALID,
                      "ksp11 policy");

    bool setting_true = row->kind == KSP_T_BOOL && bool_of(at);
    switch (op) {
    case KSP_SCHEMA_CREATE:
        /* fn 2 (and 2, 4, 6) */
        if (row->flags & (KSP_A_NEVER_SETTABLE | KSP_A_NEVER_ON_CREATE))
            return reject(op, s, at->type, CKR_ATTRIBUTE_READ_ONLY, "token-computed");
        break;
    case KSP_SCHEMA_GENERATE:
    case KSP_SCHEMA_DERIVE:
        if (row->flags & KSP_A_GEN_PARAM) {
            const CK_ATTRIBUTE *c = computed ? ksp_attrs_find(computed, at->type) : NULL;
            if (c && !values_equal(row, c, at))
                return reject(op, s, at->type, CKR_TEMPLATE_INCONSISTENT, "differs from key");
            return CKR_OK;
        }
        /* fn 4, 6 (and 2, 4, 6) */
        if (row->flags & (KSP_A_NEVER_SETTABLE | KSP_A_SETTABLE_ONLY_ON_CREATE))
            return reject(op, s, at->type, CKR_ATTRIBUTE_READ_ONLY, "token-computed");
        break;
    case KSP_SCHEMA_COPY:
    case KSP_SCHEMA_SET:
        if (row->flags & (KSP_A_NEVER_SETTABLE | KSP_A_SETTABLE_ONLY_ON_CREATE))
            return reject(op, s, at->type, CKR_ATTRIBUTE_READ_ONLY, "fixed");
        /* fn 8 absent; §4.4 lets a copy change TOKEN, PRIVATE, MODIFIABLE. */
        if ((row->flags & KSP_A_UNCHANGEABLE) &&
            !(op == KSP_SCHEMA_COPY && (row->flags & KSP_A_CHANGE_ON_COPY)))
            return reject(op, s, at->type, CKR_ATTRIBUTE_READ_ONLY, "unchangeable");
        if (row->kind == KSP_T_BOOL) {
            bool now = obj_bool(s, obj, at->type);
            /* fn 11, fn 12 */
            if ((row->flags & KSP_A_CHANGE_TO_TRUE_ONLY) && now && !setting_true)
                return reject(op, s, at->type, CKR_ATTRIBUTE_READ_ONLY, "one-way (true)");
            if ((row->flags & KSP_A_CHANGE_TO_FALSE_ONLY) && !now && setting_true)
                return reject(op, s, at->type, CKR_ATTRIBUTE_READ_ONLY, "one-way (false)");
        }
        break;
    }
    /* fn 10 */
    if ((row->flags & KSP_A_SO_ONLY) && setting_true && !so)
        return reject(op, s, at->type, CKR_ATTRIBUTE_READ_ONLY, "SO only");
    return CKR_OK;
}

/* fn 1 (CREATE) and fn 3 (GENERATE): attributes the template must carry. */
static CK_RV check_required(enum ksp_schema_op op, const struct ksp_schema *leaf,
                            const struct ksp_attrs *tmpl)
{
    uint32_t need = op == KSP_SCHEMA_CREATE     ? KSP_A_REQUIRED_ON_CREATE
                    : op == KSP_SCHEMA_GENERATE ? KSP_A_REQUIRED_ON_GENERATE
                                                : 0;
    if (!need)
        return CKR_OK;
    for (const struct ksp_schema *s = leaf; s; s = s->parent) {
        for (size_t i = 0; i < s->nrows; i++) {
            const struct ksp_schema_row *row = &s->rows[i];
            if (ksp_schema_row_find(leaf, row->type) != row)
                continue; /* overridden by a more specific table */
            if ((row->flags & need) && !ksp_attrs_find(tmpl, row->type))
                return reject(op, leaf, row->type, CKR_TEMPLATE_INCOMPLETE, "missing");
        }
    }
    return CKR_OK;
}

/* ---- building the result -------------------------------------------------- */

static CK_RV add_default(const struct ksp_schema_row *row, struct ksp_attrs *out)
{
    switch (row->dflt) {
    case KSP_D_FALSE:
        return ksp_attrs_set_bool(out, row->type, false);
    case KSP_D_TRUE:
        return ksp_attrs_set_bool(out, row->type, true);
    case KSP_D_EMPTY:
        return ksp_attrs_set(out, row->type, NULL, 0);
    case KSP_D_ZERO:
        return ksp_attrs_set_ulong(out, row->type, 0);
    case KSP_D_NONE:
        break;
    }
    return CKR_OK;
}

/* CREATE/GENERATE/DERIVE: template, then ksp11's forced values, then what the
 * token computed (it wins), then defaults, then each level's computed
 * attributes from the root down. */
static CK_RV build_new(enum ksp_schema_op op, const struct ksp_schema *leaf,
                       const struct ksp_attrs *tmpl, const struct ksp_attrs *computed,
                       struct ksp_attrs *out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    const struct ksp_schema *chain[MAX_DEPTH];
    size_t depth = 0;

    for (size_t i = 0; i < tmpl->n; i++) {
        const struct ksp_schema_row *row = ksp_schema_row_find(leaf, tmpl->v[i].type);
        if (row && (row->flags & KSP_A_TEMPLATE_ONLY))
            continue; /* DESIGN.md §4: a request, not an attribute of the key */
        rv = ksp_attrs_set(out, tmpl->v[i].type, tmpl->v[i].pValue, tmpl->v[i].ulValueLen);
        if (rv != CKR_OK)
            goto out;
    }
    for (const struct ksp_schema *s = leaf; s; s = s->parent) {
        if (depth == MAX_DEPTH) {
            rv = CKR_GENERAL_ERROR;
            goto out;
        }
        chain[depth++] = s;
        for (size_t i = 0; i < s->nrows; i++) {
            const struct ksp_schema_row *row = &s->rows[i];
            if ((row->flags & KSP_A_FORCED) && ksp_schema_row_find(leaf, row->type) == row) {
                rv = add_default(row, out);
                if (rv != CKR_OK)
                    goto out;
            }
        }
    }
    for (size_t i = 0; computed && i < computed->n; i++) {
        rv = ksp_attrs_set(out, computed->v[i].type, computed->v[i].pValue,
                           computed->v[i].ulValueLen);
        if (rv != CKR_OK)
            goto out;
    }
    for (size_t d = 0; d < depth; d++) {
        for (size_t i = 0; i < chain[d]->nrows; i++) {
            const struct ksp_schema_row *row = &chain[d]->rows[i];
            if (ksp_schema_row_find(leaf, row->type) != row || ksp_attrs_find(out, row->type))
                continue;
            rv = add_default(row, out);
            if (rv != CKR_OK)
                goto out;
        }
    }
    for (size_t d = depth; d > 0; d--) {
        if (chain[d - 1]->finish) {
            rv = chain[d - 1]->finish(op, computed, out);
            if (rv != CKR_OK)
                goto out;
        }
    }
    rv = CKR_OK;
out:
    return rv;
}

static CK_RV apply_new(enum ksp_schema_op op, const struct ksp_schema_ctx *ctx,
                       const struct ksp_attrs *tmpl, const struct ksp_attrs *computed,
                       struct ksp_attrs *out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    const struct ksp_schema_leaf *leaf = NULL;

    if (op == KSP_SCHEMA_CREATE)
        rv = leaf_of_template(tmpl, &leaf);
    else if (op == KSP_SCHEMA_GENERATE)
        rv = leaf_of_generate(computed, &leaf);
    else
        rv = leaf_of_derive(tmpl, computed, &leaf);
    if (rv != CKR_OK) {
        ksp_debug(AREA, "%s: no schema for the template's class/type", op_name(op));
        goto out;
    }
    for (size_t i = 0; i < tmpl->n; i++) {
        rv = check_attr(op, ctx, leaf->schema, NULL, computed, &tmpl->v[i]);
        if (rv != CKR_OK)
            goto out;
    }
    rv = check_required(op, leaf->schema, tmpl);
    if (rv != CKR_OK)
        goto out;
    rv = build_new(op, leaf->schema, tmpl, computed, out);
out:
    return rv;
}

/* COPY/SET: PKCS#11 3.0 §5.7 C_CopyObject, C_SetAttributeValue. */
static CK_RV apply_change(enum ksp_schema_op op, const struct ksp_schema_ctx *ctx,
                          const struct ksp_attrs *obj, const struct ksp_attrs *tmpl,
                          struct ksp_attrs *out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    const struct ksp_schema_leaf *leaf = leaf_of_object(obj);

    if (!leaf) {
        ksp_err(AREA, "%s: object has no valid class/type", op_name(op));
        rv = CKR_GENERAL_ERROR;
        goto out;
    }
    /* 3.0 §4.4: CKA_COPYABLE FALSE -> C_CopyObject returns CKR_ACTION_PROHIBITED;
     * CKA_MODIFIABLE FALSE -> read-only object (the caller maps SET's code). */
    if (op == KSP_SCHEMA_COPY && !obj_bool(leaf->schema, obj, CKA_COPYABLE)) {
        rv = reject(op, leaf->schema, CKA_COPYABLE, CKR_ACTION_PROHIBITED, "not copyable");
        goto out;
    }
    if (op == KSP_SCHEMA_SET && !obj_bool(leaf->schema, obj, CKA_MODIFIABLE)) {
        rv = reject(op, leaf->schema, CKA_MODIFIABLE, CKR_ACTION_PROHIBITED, "not modifiable");
        goto out;
    }
    for (size_t i = 0; i < tmpl->n; i++) {
        rv = check_attr(op, ctx, leaf->schema, obj, NULL, &tmpl->v[i]);
        if (rv != CKR_OK)
            goto out;
    }
    rv = ksp_attrs_dup(obj, out);
    if (rv != CKR_OK)
        goto out;
    for (size_t i = 0; i < tmpl->n; i++) {
        rv = ksp_attrs_set(out, tmpl->v[i].type, tmpl->v[i].pValue, tmpl->v[i].ulValueLen);
        if (rv != CKR_OK)
            goto out;
    }
    /* 3.0 §4.4: the copy is a new object; the caller assigns its unique id. */
    if (op == KSP_SCHEMA_COPY)
        ksp_attrs_remove(out, CKA_UNIQUE_ID);
    rv = CKR_OK;
out:
    return rv;
}

CK_RV ksp_schema_apply(enum ksp_schema_op op, const struct ksp_schema_ctx *ctx,
                       const struct ksp_attrs *obj, const struct ksp_attrs *tmpl,
                       const struct ksp_attrs *computed, struct ksp_attrs *out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_attrs empty, res;
    ksp_attrs_init(&empty);
    ksp_attrs_init(&res);

    if (!out) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if (!tmpl)
        tmpl = &empty;
    switch (op) {
    case KSP_SCHEMA_CREATE:
    case KSP_SCHEMA_GENERATE:
    case KSP_SCHEMA_DERIVE:
        rv = apply_new(op, ctx, tmpl, computed, &res);
        break;
    case KSP_SCHEMA_COPY:
    case KSP_SCHEMA_SET:
        rv = obj ? apply_change(op, ctx, obj, tmpl, &res) : CKR_ARGUMENTS_BAD;
        break;
    default:
        rv = CKR_ARGUMENTS_BAD;
        break;
    }
    if (rv != CKR_OK)
        goto out;
    *out = res;
    ksp_attrs_init(&res);
out:
    ksp_attrs_free(&res);
    return rv;
}

enum ksp_attr_access ksp_schema_access(const struct ksp_attrs *obj, CK_ATTRIBUTE_TYPE type)
{
    const struct ksp_schema_leaf *leaf = leaf_of_object(obj);
    const struct ksp_schema_row *row = leaf ? ksp_schema_row_find(leaf->schema, type) : NULL;

    if (!row || (row->flags & (KSP_A_UNSUPPORTED | KSP_A_TEMPLATE_ONLY)))
        return KSP_ACCESS_INVALID;
    if (row->flags & KSP_A_SENSITIVE)
        return KSP_ACCESS_SENSITIVE;
    /* fn 7; an object missing the flags reads as protected (fail closed). */
    if ((row->flags & KSP_A_SECRET) &&
        (ksp_attrs_bool(obj, CKA_SENSITIVE, true) || !ksp_attrs_bool(obj, CKA_EXTRACTABLE, false)))
        return KSP_ACCESS_SENSITIVE;
    return KSP_ACCESS_OK;
}

bool ksp_schema_is_secret(const struct ksp_attrs *obj, CK_ATTRIBUTE_TYPE type)
{
    const struct ksp_schema_leaf *leaf = leaf_of_object(obj);
    const struct ksp_schema_row *row = leaf ? ksp_schema_row_find(leaf->schema, type) : NULL;
    return row && (row->flags & KSP_A_SECRET);
}
