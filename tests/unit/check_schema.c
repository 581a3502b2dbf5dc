/*
 * Unit tests of the attribute schema engine (provider/schema.c) and its
 * tables (provider/schema_tables.c). The tables are the spec, so the first
 * half walks them as data: every row of every schema, for every operation,
 * must be treated as its flags say. The second half pins down, with
 * hard-coded expectations, what users rely on: ksp11's private key policy,
 * the one-way rules, defaults, generate/derive results and read access.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ksp11/ksp11.h"
#include "schema.h"
#include "schema_tables.h"

#define ck_assert_rv(expr, want)                                                                   \
    do {                                                                                           \
        CK_RV got_rv_ = (expr);                                                                    \
        CK_RV want_rv_ = (want);                                                                   \
        ck_assert_msg(got_rv_ == want_rv_, "%s: got 0x%lx, want 0x%lx", #expr,                     \
                      (unsigned long)got_rv_, (unsigned long)want_rv_);                            \
    } while (0)

#define CREATE   KSP_SCHEMA_CREATE
#define GENERATE KSP_SCHEMA_GENERATE
#define DERIVE   KSP_SCHEMA_DERIVE
#define COPY     KSP_SCHEMA_COPY
#define SET      KSP_SCHEMA_SET
#define MAX_ROWS 96

static const struct ksp_schema_ctx USER = {.so = false};
static const struct ksp_schema_ctx SO = {.so = true};

/* ---- helpers --------------------------------------------------------------- */

struct val {
    unsigned char b[32];
    CK_ULONG len;
};

static void add(struct ksp_attrs *a, CK_ATTRIBUTE_TYPE t, const void *v, CK_ULONG len)
{
    ck_assert_rv(ksp_attrs_set(a, t, v, len), CKR_OK);
}

static void add_ul(struct ksp_attrs *a, CK_ATTRIBUTE_TYPE t, CK_ULONG v)
{
    add(a, t, &v, sizeof(v));
}

static void add_b(struct ksp_attrs *a, CK_ATTRIBUTE_TYPE t, bool v)
{
    ck_assert_rv(ksp_attrs_set_bool(a, t, v), CKR_OK);
}

/* Make t the one-attribute template { type: v }. */
static const struct ksp_attrs *one(struct ksp_attrs *t, CK_ATTRIBUTE_TYPE type, const void *v,
                                   CK_ULONG len)
{
    ksp_attrs_free(t);
    add(t, type, v, len);
    return t;
}

static const struct ksp_attrs *one_b(struct ksp_attrs *t, CK_ATTRIBUTE_TYPE type, bool v)
{
    CK_BBOOL b = v ? CK_TRUE : CK_FALSE;
    return one(t, type, &b, 1);
}

static bool has(const struct ksp_attrs *a, CK_ATTRIBUTE_TYPE t, const void *v, CK_ULONG len)
{
    const CK_ATTRIBUTE *at = ksp_attrs_find(a, t);
    return at && at->ulValueLen == len && (len == 0 || memcmp(at->pValue, v, len) == 0);
}

static bool has_ul(const struct ksp_attrs *a, CK_ATTRIBUTE_TYPE t, CK_ULONG v)
{
    return has(a, t, &v, sizeof(v));
}

static bool has_b(const struct ksp_attrs *a, CK_ATTRIBUTE_TYPE t, bool v)
{
    CK_BBOOL b = v ? CK_TRUE : CK_FALSE;
    return has(a, t, &b, sizeof(b));
}

/* Apply and keep only the return code. */
static CK_RV run(enum ksp_schema_op op, const struct ksp_schema_ctx *ctx,
                 const struct ksp_attrs *obj, const struct ksp_attrs *t, const struct ksp_attrs *c)
{
    struct ksp_attrs o;
    CK_RV rv = ksp_schema_apply(op, ctx, obj, t, c, &o);
    if (rv == CKR_OK)
        ksp_attrs_free(&o);
    return rv;
}

static CK_RV create(const struct ksp_attrs *t, struct ksp_attrs *out)
{
    return ksp_schema_apply(CREATE, &USER, NULL, t, NULL, out);
}

/* t without its i-th attribute. */
static void without(const struct ksp_attrs *t, size_t i, struct ksp_attrs *out)
{
    ksp_attrs_init(out);
    for (size_t j = 0; j < t->n; j++)
        if (j != i)
            add(out, t->v[j].type, t->v[j].pValue, t->v[j].ulValueLen);
}

/* The effective rows of a schema chain (a child's row hides its parent's). */
static size_t rows_of(const struct ksp_schema *leaf, const struct ksp_schema_row **out)
{
    size_t n = 0;
    for (const struct ksp_schema *s = leaf; s; s = s->parent)
        for (size_t i = 0; i < s->nrows; i++)
            if (ksp_schema_row_find(leaf, s->rows[i].type) == &s->rows[i]) {
                ck_assert_uint_lt(n, MAX_ROWS);
                out[n++] = &s->rows[i];
            }
    return n;
}

/* A valid value for a row; variant 0 is the row's default where it has one,
 * variant 1 differs from variant 0. False when no such value exists. */
static bool sample(const struct ksp_schema_leaf *leaf, const struct ksp_schema_row *row,
                   int variant, struct val *v)
{
    static const unsigned char b0[] = {0x01, 0x00, 0x01}, b1[] = {0x04, 0x05};
    memset(v, 0, sizeof(*v));
    if (row->type == CKA_CLASS || row->type == leaf->subtype_attr) {
        CK_ULONG x = row->type == CKA_CLASS ? leaf->cls : leaf->subtype, y = x;
        for (size_t i = 0; variant && i < ksp_schema_nleaves && y == x; i++) {
            const struct ksp_schema_leaf *l = &ksp_schema_leaves[i];
            if (row->type == CKA_CLASS)
                y = l->cls;
            else if (l->subtype_attr == row->type)
                y = l->subtype;
        }
        if (variant && y == x)
            return false;
        memcpy(v->b, &y, sizeof(y));
        v->len = sizeof(y);
        return true;
    }
    switch (row->kind) {
    case KSP_T_BOOL:
        v->b[0] = (row->dflt == KSP_D_TRUE) != (variant != 0);
        v->len = 1;
        return true;
    case KSP_T_ULONG: {
        static const CK_ULONG cand[] = {1, 2, 3, 32, 2048, 4096};
        int seen = 0;
        for (size_t i = 0; i < sizeof(cand) / sizeof(cand[0]); i++) {
            CK_ULONG c = cand[i];
            CK_ATTRIBUTE at = {row->type, &c, sizeof(c)};
            if ((!row->check || row->check(&at) == CKR_OK) && seen++ == variant) {
                memcpy(v->b, &c, sizeof(c));
                v->len = sizeof(c);
                return true;
            }
        }
        return false;
    }
    case KSP_T_DATE:
        memcpy(v->b, variant ? "20250202" : "20240101", 8);
        v->len = 8;
        return true;
    case KSP_T_MECHS: {
        CK_MECHANISM_TYPE m[2] = {CKM_RSA_PKCS, CKM_ECDSA};
        v->len = (CK_ULONG)(variant + 1) * sizeof(m[0]);
        memcpy(v->b, m, v->len);
        return true;
    }
    case KSP_T_BYTES:
    case KSP_T_BIGINT:
    case KSP_T_STRING:
        break;
    }
    v->len = variant ? sizeof(b1) : sizeof(b0);
    memcpy(v->b, variant ? b1 : b0, v->len);
    return true;
}

/* The smallest template `op` accepts: for CREATE class, subtype and the fn 1
 * rows; for GENERATE the fn 3 rows; for DERIVE nothing. */
static void base_template(enum ksp_schema_op op, const struct ksp_schema_leaf *leaf,
                          struct ksp_attrs *t)
{
    const struct ksp_schema_row *rows[MAX_ROWS];
    size_t n = rows_of(leaf->schema, rows);
    uint32_t need = op == CREATE     ? KSP_A_REQUIRED_ON_CREATE
                    : op == GENERATE ? KSP_A_REQUIRED_ON_GENERATE
                                     : 0;
    ksp_attrs_init(t);
    if (op == CREATE) {
        add_ul(t, CKA_CLASS, leaf->cls);
        if (leaf->subtype_attr != KSP_NO_SUBTYPE)
            add_ul(t, leaf->subtype_attr, leaf->subtype);
    }
    for (size_t i = 0; i < n; i++) {
        struct val v;
        if ((rows[i]->flags & need) && !ksp_attrs_find(t, rows[i]->type)) {
            ck_assert(sample(leaf, rows[i], 0, &v));
            add(t, rows[i]->type, v.b, v.len);
        }
    }
}

/* What GENERATE/DERIVE's caller passes: class, type, key material, the
 * parameters it used, the mechanism and ksp11's vendor attributes. NULL for
 * CREATE. */
static struct ksp_attrs *computed_for(enum ksp_schema_op op, const struct ksp_schema_leaf *leaf,
                                      struct ksp_attrs *c)
{
    const struct ksp_schema_row *rows[MAX_ROWS];
    size_t n = rows_of(leaf->schema, rows);
    ksp_attrs_init(c);
    if (op == CREATE)
        return NULL;
    add_ul(c, CKA_CLASS, leaf->cls);
    add_ul(c, leaf->subtype_attr, leaf->subtype);
    for (size_t i = 0; i < n; i++) {
        const struct ksp_schema_row *r = rows[i];
        bool vendor = (r->type & CKA_VENDOR_DEFINED) && (r->flags & KSP_A_NEVER_SETTABLE);
        struct val v;
        if (ksp_attrs_find(c, r->type))
            continue;
        if ((r->flags & (KSP_A_SETTABLE_ONLY_ON_CREATE | KSP_A_GEN_PARAM)) || vendor) {
            ck_assert(sample(leaf, r, 0, &v));
            add(c, r->type, v.b, v.len);
        }
    }
    if (op == GENERATE)
        add_ul(c, CKA_KEY_GEN_MECHANISM, CKM_RSA_PKCS_KEY_PAIR_GEN);
    return c;
}

/* A created object of `leaf` (with one extra template attribute if t != 0)
 * and a unique id as the core would add. False if create refuses the extra. */
static bool make_obj(const struct ksp_schema_leaf *leaf, CK_ATTRIBUTE_TYPE t, const struct val *v,
                     struct ksp_attrs *obj)
{
    struct ksp_attrs tmpl;
    base_template(CREATE, leaf, &tmpl);
    if (t)
        add(&tmpl, t, v->b, v->len);
    CK_RV rv = ksp_schema_apply(CREATE, &SO, NULL, &tmpl, NULL, obj);
    ksp_attrs_free(&tmpl);
    if (rv == CKR_OK)
        add(obj, CKA_UNIQUE_ID, "id-1", 4);
    return rv == CKR_OK;
}

/* Does the walk of `op` apply to this leaf? */
static bool leaf_for(enum ksp_schema_op op, const struct ksp_schema_leaf *leaf)
{
    if (op == GENERATE)
        return leaf->subtype_attr == CKA_KEY_TYPE;
    if (op == DERIVE)
        return leaf->cls == CKO_SECRET_KEY;
    return true;
}

/* Every attribute type any schema knows, plus one nobody knows. */
static size_t universe(CK_ATTRIBUTE_TYPE *types, size_t max)
{
    size_t n = 0;
    for (size_t l = 0; l < ksp_schema_nleaves; l++)
        for (const struct ksp_schema *s = ksp_schema_leaves[l].schema; s; s = s->parent)
            for (size_t i = 0; i < s->nrows; i++) {
                bool dup = false;
                for (size_t j = 0; j < n; j++)
                    dup = dup || types[j] == s->rows[i].type;
                if (!dup) {
                    ck_assert_uint_lt(n, max);
                    types[n++] = s->rows[i].type;
                }
            }
    types[n++] = CKA_VENDOR_DEFINED | 0x1234UL;
    return n;
}

/* ---- walks over the tables ------------------------------------------------ */

/* Sanity of the data itself: the flag combinations the engine relies on. */
START_TEST(tables_consistent)
{
    for (size_t l = 0; l < ksp_schema_nleaves; l++) {
        const struct ksp_schema_leaf *leaf = &ksp_schema_leaves[l];
        const struct ksp_schema_row *rows[MAX_ROWS];
        size_t n = rows_of(leaf->schema, rows);
        ck_assert_ptr_eq(ksp_schema_leaf_find(leaf->cls, leaf->subtype), leaf);
        for (size_t i = 0; i < n; i++) {
            uint32_t f = rows[i]->flags;
            bool is_bool = rows[i]->kind == KSP_T_BOOL;
            /* forced values are booleans with a default to force */
            if (f & KSP_A_FORCED)
                ck_assert(is_bool && rows[i]->dflt != KSP_D_NONE);
            if (f & (KSP_A_CHANGE_TO_TRUE_ONLY | KSP_A_CHANGE_TO_FALSE_ONLY | KSP_A_SO_ONLY))
                ck_assert(is_bool);
            /* key material and token-computed values never change afterwards */
            if (f & (KSP_A_SETTABLE_ONLY_ON_CREATE | KSP_A_NEVER_SETTABLE))
                ck_assert(f & KSP_A_UNCHANGEABLE);
            /* a value nobody may give cannot be required */
            if (f & KSP_A_NEVER_SETTABLE)
                ck_assert(!(f & (KSP_A_REQUIRED_ON_CREATE | KSP_A_REQUIRED_ON_GENERATE)));
            if (f & KSP_A_NEVER_ON_CREATE)
                ck_assert(!(f & KSP_A_REQUIRED_ON_CREATE));
            /* never-readable values are secret (kept off disk) */
            if (f & KSP_A_SENSITIVE)
                ck_assert(f & KSP_A_SECRET);
        }
    }
}
END_TEST

/* Defaults of every row on the smallest created object of `leaf`. */
static void check_defaults(const struct ksp_schema_leaf *leaf, const struct ksp_attrs *t,
                           const struct ksp_attrs *o)
{
    const struct ksp_schema_row *rows[MAX_ROWS];
    size_t n = rows_of(leaf->schema, rows);
    for (size_t i = 0; i < n; i++) {
        const struct ksp_schema_row *r = rows[i];
        const CK_ATTRIBUTE *at = ksp_attrs_find(o, r->type);
        if (r->flags & (KSP_A_TEMPLATE_ONLY | KSP_A_UNSUPPORTED))
            ck_assert_msg(!at, "%s: 0x%lx kept", leaf->schema->name, r->type);
        if (ksp_attrs_find(t, r->type) || r->dflt == KSP_D_NONE)
            continue;
        ck_assert_msg(at, "%s: default of 0x%lx missing", leaf->schema->name, r->type);
        if (r->kind == KSP_T_BOOL)
            ck_assert(has_b(o, r->type, r->dflt == KSP_D_TRUE));
        else
            ck_assert(r->dflt == KSP_D_ZERO ? has_ul(o, r->type, 0) : at->ulValueLen == 0);
    }
    /* everything in the result belongs to the object's schema */
    for (size_t i = 0; i < o->n; i++)
        ck_assert_msg(ksp_schema_access(o, o->v[i].type) != KSP_ACCESS_INVALID, "%s: stray 0x%lx",
                      leaf->schema->name, o->v[i].type);
}

/* What CREATE/GENERATE/DERIVE must answer for a template with value variant
 * `var` of row r, per its flags (computed holds variant 0 of every GEN_PARAM). */
static CK_RV expect_new(enum ksp_schema_op op, const struct ksp_schema_row *r, const struct val *v,
                        int var, bool so)
{
    if ((r->flags & KSP_A_UNSUPPORTED) || ((r->flags & KSP_A_TEMPLATE_ONLY) && op != GENERATE))
        return CKR_ATTRIBUTE_TYPE_INVALID;
    if ((r->flags & KSP_A_FORCED) && var)
        return CKR_ATTRIBUTE_VALUE_INVALID;
    if (op == CREATE && (r->flags & (KSP_A_NEVER_SETTABLE | KSP_A_NEVER_ON_CREATE)))
        return CKR_ATTRIBUTE_READ_ONLY;
    if (op != CREATE && (r->flags & KSP_A_GEN_PARAM))
        return var ? CKR_TEMPLATE_INCONSISTENT : CKR_OK;
    if (op != CREATE && (r->flags & (KSP_A_NEVER_SETTABLE | KSP_A_SETTABLE_ONLY_ON_CREATE)))
        return CKR_ATTRIBUTE_READ_ONLY;
    if ((r->flags & KSP_A_SO_ONLY) && v->b[0] && !so)
        return CKR_ATTRIBUTE_READ_ONLY;
    return CKR_OK;
}

/* For each schema: the smallest template works (with defaults on create);
 * dropping any of it is CKR_TEMPLATE_INCOMPLETE (fn 1, fn 3); then each row,
 * both sample values, as user and as SO, must get what its flags say. */
static void walk_new(enum ksp_schema_op op)
{
    for (size_t l = 0; l < ksp_schema_nleaves; l++) {
        const struct ksp_schema_leaf *leaf = &ksp_schema_leaves[l];
        const struct ksp_schema_row *rows[MAX_ROWS];
        size_t n = rows_of(leaf->schema, rows);
        struct ksp_attrs base, c, t, o;
        if (!leaf_for(op, leaf))
            continue;
        base_template(op, leaf, &base);
        const struct ksp_attrs *cp = computed_for(op, leaf, &c);
        ck_assert_rv(ksp_schema_apply(op, &USER, NULL, &base, cp, &o), CKR_OK);
        if (op == CREATE)
            check_defaults(leaf, &base, &o);
        ksp_attrs_free(&o);
        for (size_t i = 0; op != DERIVE && i < base.n; i++) {
            without(&base, i, &t);
            ck_assert_msg(run(op, &USER, NULL, &t, cp) == CKR_TEMPLATE_INCOMPLETE,
                          "%s without 0x%lx", leaf->schema->name, base.v[i].type);
            ksp_attrs_free(&t);
        }
        for (size_t i = 0; i < n; i++) {
            const struct ksp_schema_row *r = rows[i];
            bool picks_schema = r->type == CKA_CLASS || r->type == leaf->subtype_attr;
            for (int var = 0; var < 4; var++) {
                struct val v;
                bool so = var >= 2;
                if (!sample(leaf, r, var % 2, &v) || (op == CREATE && picks_schema && var % 2))
                    continue;
                ck_assert_rv(ksp_attrs_dup(&base, &t), CKR_OK);
                add(&t, r->type, v.b, v.len);
                CK_RV want = expect_new(op, r, &v, var % 2, so);
                CK_RV rv = ksp_schema_apply(op, so ? &SO : &USER, NULL, &t, cp, &o);
                ck_assert_msg(rv == want, "op %d %s 0x%lx v%d: got 0x%lx want 0x%lx", op,
                              leaf->schema->name, r->type, var, rv, want);
                if (rv == CKR_OK) {
                    if (r->flags & KSP_A_TEMPLATE_ONLY)
                        ck_assert(!ksp_attrs_find(&o, r->type));
                    else if (!(cp && ksp_attrs_find(cp, r->type)))
                        ck_assert_msg(has(&o, r->type, v.b, v.len), "%s: 0x%lx not kept",
                                      leaf->schema->name, r->type);
                    /* the token's values win, verbatim */
                    for (size_t k = 0; cp && k < cp->n; k++)
                        ck_assert(has(&o, cp->v[k].type, cp->v[k].pValue, cp->v[k].ulValueLen));
                    if (leaf->subtype_attr == CKA_KEY_TYPE)
                        ck_assert(has_b(&o, CKA_LOCAL, op == GENERATE));
                    ksp_attrs_free(&o);
                }
                ksp_attrs_free(&t);
            }
        }
        ksp_attrs_free(&base);
        ksp_attrs_free(&c);
    }
}

START_TEST(walk_create)
{
    walk_new(CREATE);
}
END_TEST

START_TEST(walk_generate)
{
    walk_new(GENERATE);
}
END_TEST

START_TEST(walk_derive)
{
    walk_new(DERIVE);
}
END_TEST

/* Malformed values of each kind, for every row a create template may carry. */
START_TEST(walk_bad_values)
{
    static const unsigned char two = 2, bad_date[8] = {'2', '0', '2', '4', '0', '1', '0', 'x'};
    CK_ULONG ul = 1;
    struct {
        enum ksp_attr_kind kind;
        const void *v;
        CK_ULONG len;
    } bad[] = {
        {KSP_T_BOOL, &ul, sizeof(ul)}, {KSP_T_BOOL, &two, 1},
        {KSP_T_BOOL, NULL, 0},         {KSP_T_ULONG, &two, 1},
        {KSP_T_ULONG, NULL, 0},        {KSP_T_DATE, bad_date, 7},
        {KSP_T_DATE, bad_date, 8},     {KSP_T_MECHS, &ul, sizeof(ul) - 1},
    };
    for (size_t l = 0; l < ksp_schema_nleaves; l++) {
        const struct ksp_schema_leaf *leaf = &ksp_schema_leaves[l];
        const struct ksp_schema_row *rows[MAX_ROWS];
        size_t n = rows_of(leaf->schema, rows);
        for (size_t i = 0; i < n; i++) {
            for (size_t b = 0; b < sizeof(bad) / sizeof(bad[0]); b++) {
                struct ksp_attrs t;
                if (bad[b].kind != rows[i]->kind ||
                    (rows[i]->flags & (KSP_A_UNSUPPORTED | KSP_A_TEMPLATE_ONLY)))
                    continue;
                base_template(CREATE, leaf, &t);
                add(&t, rows[i]->type, bad[b].v, bad[b].len);
                ck_assert_msg(run(CREATE, &SO, NULL, &t, NULL) == CKR_ATTRIBUTE_VALUE_INVALID,
                              "%s 0x%lx bad value %zu", leaf->schema->name, rows[i]->type, b);
                ksp_attrs_free(&t);
            }
        }
    }
}
END_TEST

/* What COPY/SET must answer for changing `r` of `obj` to `nv`, per the flags. */
static CK_RV expect_change(enum ksp_schema_op op, const struct ksp_schema_leaf *leaf,
                           const struct ksp_schema_row *r, const struct ksp_attrs *obj,
                           const struct val *nv, bool so)
{
    const CK_ATTRIBUTE *cur = ksp_attrs_find(obj, r->type);
    const struct ksp_schema_row *cr = ksp_schema_row_find(leaf->schema, CKA_COPYABLE);
    if (op == COPY && !ksp_attrs_bool(obj, CKA_COPYABLE, cr->dflt == KSP_D_TRUE))
        return CKR_ACTION_PROHIBITED;
    if (op == SET && !ksp_attrs_bool(obj, CKA_MODIFIABLE, true))
        return CKR_ACTION_PROHIBITED;
    if (cur && cur->ulValueLen == nv->len && memcmp(cur->pValue, nv->b, nv->len) == 0)
        return CKR_OK;
    if ((r->flags & KSP_A_FORCED) && nv->b[0] != (r->dflt == KSP_D_TRUE))
        return CKR_ATTRIBUTE_READ_ONLY;
    if (r->flags & (KSP_A_NEVER_SETTABLE | KSP_A_SETTABLE_ONLY_ON_CREATE))
        return CKR_ATTRIBUTE_READ_ONLY;
    if ((r->flags & KSP_A_UNCHANGEABLE) && !(op == COPY && (r->flags & KSP_A_CHANGE_ON_COPY)))
        return CKR_ATTRIBUTE_READ_ONLY;
    if (r->kind == KSP_T_BOOL) {
        bool now = ksp_attrs_bool(obj, r->type, r->dflt == KSP_D_TRUE), to = nv->b[0];
        if ((r->flags & KSP_A_CHANGE_TO_TRUE_ONLY) && now && !to)
            return CKR_ATTRIBUTE_READ_ONLY;
        if ((r->flags & KSP_A_CHANGE_TO_FALSE_ONLY) && !now && to)
            return CKR_ATTRIBUTE_READ_ONLY;
        if ((r->flags & KSP_A_SO_ONLY) && to && !so)
            return CKR_ATTRIBUTE_READ_ONLY;
    }
    return CKR_OK;
}

/* Change each row of each schema, from each starting value create allows. */
static void walk_change(enum ksp_schema_op op)
{
    for (size_t l = 0; l < ksp_schema_nleaves; l++) {
        const struct ksp_schema_leaf *leaf = &ksp_schema_leaves[l];
        const struct ksp_schema_row *rows[MAX_ROWS];
        size_t n = rows_of(leaf->schema, rows);
        for (size_t i = 0; i < n; i++) {
            const struct ksp_schema_row *r = rows[i];
            if (r->flags & (KSP_A_UNSUPPORTED | KSP_A_TEMPLATE_ONLY))
                continue;
            /* start 0: the base object; 1, 2: created with variant 0 / 1 of r */
            for (int start = 0; start < 3; start++) {
                struct val sv, nv;
                struct ksp_attrs obj, t, o;
                if ((start && !sample(leaf, r, start - 1, &sv)) ||
                    !make_obj(leaf, start ? r->type : 0, &sv, &obj))
                    continue;
                const CK_ATTRIBUTE *cur = ksp_attrs_find(&obj, r->type);
                /* the new value: whichever variant differs from the current one */
                bool got = sample(leaf, r, 0, &nv);
                if (cur && cur->ulValueLen == nv.len && !memcmp(cur->pValue, nv.b, nv.len))
                    got = sample(leaf, r, 1, &nv);
                ksp_attrs_init(&t);
                for (int so = 0; got && so < 2; so++) {
                    CK_RV want = expect_change(op, leaf, r, &obj, &nv, so);
                    CK_RV rv = ksp_schema_apply(op, so ? &SO : &USER, &obj,
                                                one(&t, r->type, nv.b, nv.len), NULL, &o);
                    ck_assert_msg(rv == want, "op %d %s 0x%lx start %d so %d: got 0x%lx want 0x%lx",
                                  op, leaf->schema->name, r->type, start, so, rv, want);
                    if (rv == CKR_OK) {
                        ck_assert(has(&o, r->type, nv.b, nv.len));
                        /* a copy is a new object: the caller assigns its id */
                        ck_assert(!ksp_attrs_find(&o, CKA_UNIQUE_ID) == (op == COPY));
                        ck_assert_uint_eq(o.n, obj.n + (cur ? 0 : 1) - (op == COPY));
                        ksp_attrs_free(&o);
                    }
                    /* restating the current value is always fine */
                    if (cur && want != CKR_ACTION_PROHIBITED)
                        ck_assert_rv(run(op, so ? &SO : &USER, &obj,
                                         one(&t, r->type, cur->pValue, cur->ulValueLen), NULL),
                                     CKR_OK);
                }
                ksp_attrs_free(&t);
                ksp_attrs_free(&obj);
            }
        }
    }
}

START_TEST(walk_set)
{
    walk_change(SET);
}
END_TEST

START_TEST(walk_copy)
{
    walk_change(COPY);
}
END_TEST

/* Every attribute type any schema knows, against every schema: read access
 * and secrecy per the flags; types foreign to a schema are refused. */
START_TEST(walk_access_and_foreign_types)
{
    CK_ATTRIBUTE_TYPE types[MAX_ROWS * 2];
    size_t nt = universe(types, MAX_ROWS * 2 - 1);
    for (size_t l = 0; l < ksp_schema_nleaves; l++) {
        const struct ksp_schema_leaf *leaf = &ksp_schema_leaves[l];
        struct ksp_attrs obj, t;
        ck_assert(make_obj(leaf, 0, NULL, &obj));
        bool hidden = ksp_attrs_bool(&obj, CKA_SENSITIVE, true) ||
                      !ksp_attrs_bool(&obj, CKA_EXTRACTABLE, false);
        for (size_t i = 0; i < nt; i++) {
            const struct ksp_schema_row *r = ksp_schema_row_find(leaf->schema, types[i]);
            bool foreign = !r || (r->flags & (KSP_A_UNSUPPORTED | KSP_A_TEMPLATE_ONLY));
            enum ksp_attr_access want = KSP_ACCESS_OK;
            if (foreign)
                want = KSP_ACCESS_INVALID;
            else if ((r->flags & KSP_A_SENSITIVE) || ((r->flags & KSP_A_SECRET) && hidden))
                want = KSP_ACCESS_SENSITIVE;
            ck_assert_msg(ksp_schema_access(&obj, types[i]) == want, "%s 0x%lx", leaf->schema->name,
                          types[i]);
            ck_assert(ksp_schema_is_secret(&obj, types[i]) == (r && (r->flags & KSP_A_SECRET)));
            if (!foreign)
                continue;
            base_template(CREATE, leaf, &t);
            add(&t, types[i], NULL, 0);
            ck_assert_msg(run(CREATE, &SO, NULL, &t, NULL) == CKR_ATTRIBUTE_TYPE_INVALID,
                          "%s create 0x%lx", leaf->schema->name, types[i]);
            ck_assert_rv(run(SET, &SO, &obj, one(&t, types[i], NULL, 0), NULL),
                         CKR_ATTRIBUTE_TYPE_INVALID);
            ck_assert_rv(run(COPY, &SO, &obj, &t, NULL), ksp_attrs_bool(&obj, CKA_COPYABLE, 0)
                                                             ? CKR_ATTRIBUTE_TYPE_INVALID
                                                             : CKR_ACTION_PROHIBITED);
            ksp_attrs_free(&t);
        }
        ksp_attrs_free(&obj);
    }
}
END_TEST

/* ---- explicit behaviour --------------------------------------------------- */

static const unsigned char MOD[4] = {0x00, 0xc1, 0x02, 0x03}; /* 0xc10203: 24 bits */
static const unsigned char EXP[3] = {0x01, 0x00, 0x01};
static const unsigned char P256[10] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
static const unsigned char P384[7] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};

/* Expected values: a CK_BBOOL (B), a CK_ULONG (U), empty (E) or absent (A). */
struct want {
    CK_ATTRIBUTE_TYPE type;
    char kind;
    CK_ULONG v;
};
#define B(t, v)                                                                                    \
    {                                                                                              \
        t, 'B', v                                                                                  \
    }
#define U(t, v)                                                                                    \
    {                                                                                              \
        t, 'U', v                                                                                  \
    }
#define E(t)                                                                                       \
    {                                                                                              \
        t, 'E', 0                                                                                  \
    }
#define A(t)                                                                                       \
    {                                                                                              \
        t, 'A', 0                                                                                  \
    }

static void check_wants(const struct ksp_attrs *o, const struct want *w, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bool ok = w[i].kind == 'B'   ? has_b(o, w[i].type, w[i].v)
                  : w[i].kind == 'U' ? has_ul(o, w[i].type, w[i].v)
                  : w[i].kind == 'E' ? has(o, w[i].type, NULL, 0)
                                     : !ksp_attrs_find(o, w[i].type);
        ck_assert_msg(ok, "attribute 0x%lx is not %c %lu", w[i].type, w[i].kind, w[i].v);
    }
}
#define CHECK_WANTS(o, ...)                                                                        \
    do {                                                                                           \
        const struct want w_[] = {__VA_ARGS__};                                                    \
        check_wants(o, w_, sizeof(w_) / sizeof(w_[0]));                                            \
    } while (0)

static void key_tmpl(struct ksp_attrs *t, CK_OBJECT_CLASS cls, CK_KEY_TYPE kt)
{
    ksp_attrs_init(t);
    add_ul(t, CKA_CLASS, cls);
    add_ul(t, CKA_KEY_TYPE, kt);
    if (kt == CKK_RSA) {
        add(t, CKA_MODULUS, MOD, sizeof(MOD));
        add(t, CKA_PUBLIC_EXPONENT, EXP, sizeof(EXP));
        if (cls == CKO_PRIVATE_KEY)
            add(t, CKA_PRIVATE_EXPONENT, "\x05", 1);
    } else if (kt == CKK_EC) {
        add(t, CKA_EC_PARAMS, P256, sizeof(P256));
        add(t, cls == CKO_PRIVATE_KEY ? CKA_VALUE : CKA_EC_POINT, "\x04\x07", 2);
    } else {
        add(t, CKA_VALUE, "0123456789abcdef", 16);
    }
}

static void secret_obj(bool sensitive, bool extractable, struct ksp_attrs *o)
{
    struct ksp_attrs t;
    key_tmpl(&t, CKO_SECRET_KEY, CKK_GENERIC_SECRET);
    add_b(&t, CKA_SENSITIVE, sensitive);
    add_b(&t, CKA_EXTRACTABLE, extractable);
    ck_assert_rv(create(&t, o), CKR_OK);
    ksp_attrs_free(&t);
}

/* SET one boolean on obj; on success obj becomes the result. */
static CK_RV set_bool(struct ksp_attrs *obj, CK_ATTRIBUTE_TYPE type, bool v)
{
    struct ksp_attrs t, o;
    ksp_attrs_init(&t);
    CK_RV rv = ksp_schema_apply(SET, &USER, obj, one_b(&t, type, v), NULL, &o);
    ksp_attrs_free(&t);
    if (rv == CKR_OK) {
        ksp_attrs_free(obj);
        *obj = o;
    }
    return rv;
}

START_TEST(create_class_and_type_errors)
{
    struct ksp_attrs t, o;
    ksp_attrs_init(&t);
    add(&t, CKA_LABEL, "x", 1);
    ck_assert_rv(create(&t, &o), CKR_TEMPLATE_INCOMPLETE); /* no CKA_CLASS */
    add(&t, CKA_CLASS, "\x01", 1);
    ck_assert_rv(create(&t, &o), CKR_ATTRIBUTE_VALUE_INVALID); /* short CK_ULONG */
    add_ul(&t, CKA_CLASS, CKO_HW_FEATURE);
    ck_assert_rv(create(&t, &o), CKR_ATTRIBUTE_VALUE_INVALID);
    add_ul(&t, CKA_CLASS, CKO_PRIVATE_KEY);
    ck_assert_rv(create(&t, &o), CKR_TEMPLATE_INCOMPLETE); /* no CKA_KEY_TYPE */
    add_ul(&t, CKA_KEY_TYPE, CKK_DSA);
    ck_assert_rv(create(&t, &o), CKR_ATTRIBUTE_VALUE_INVALID);
    add_ul(&t, CKA_CLASS, CKO_SECRET_KEY);
    add_ul(&t, CKA_KEY_TYPE, CKK_AES);
    ck_assert_rv(create(&t, &o), CKR_ATTRIBUTE_VALUE_INVALID);
    ksp_attrs_free(&t);

    add_ul(&t, CKA_CLASS, CKO_CERTIFICATE);
    add(&t, CKA_SUBJECT, "s", 1);
    add(&t, CKA_VALUE, "v", 1);
    ck_assert_rv(create(&t, &o), CKR_TEMPLATE_INCOMPLETE); /* no CKA_CERTIFICATE_TYPE */
    add_ul(&t, CKA_CERTIFICATE_TYPE, CKC_X_509_ATTR_CERT);
    ck_assert_rv(create(&t, &o), CKR_ATTRIBUTE_VALUE_INVALID);
    add_ul(&t, CKA_CERTIFICATE_TYPE, CKC_X_509);
    ck_assert_rv(create(&t, &o), CKR_OK);
    ck_assert(has_ul(&o, CKA_CERTIFICATE_CATEGORY, 0) && has_b(&o, CKA_TRUSTED, false));
    ck_assert(has_b(&o, CKA_PRIVATE, false) && has(&o, CKA_START_DATE, NULL, 0));
    ksp_attrs_free(&o);
    add_ul(&t, CKA_CERTIFICATE_CATEGORY, 4);
    ck_assert_rv(create(&t, &o), CKR_ATTRIBUTE_VALUE_INVALID);
    ksp_attrs_free(&t);
}
END_TEST

START_TEST(create_defaults_and_computed)
{
    struct ksp_attrs t, o;

    /* RSA public: modulus bits from the modulus; MODULUS_BITS itself is fn 2 */
    key_tmpl(&t, CKO_PUBLIC_KEY, CKK_RSA);
    ck_assert_rv(create(&t, &o), CKR_OK);
    CHECK_WANTS(&o, U(CKA_MODULUS_BITS, 24), B(CKA_TOKEN, 0), B(CKA_PRIVATE, 0),
                B(CKA_MODIFIABLE, 1), B(CKA_COPYABLE, 1), B(CKA_DESTROYABLE, 1), E(CKA_LABEL),
                E(CKA_ID), E(CKA_SUBJECT), E(CKA_START_DATE), E(CKA_END_DATE), B(CKA_ENCRYPT, 1),
                B(CKA_VERIFY, 1), B(CKA_VERIFY_RECOVER, 0), B(CKA_WRAP, 0), B(CKA_DERIVE, 0),
                B(CKA_TRUSTED, 0), B(CKA_LOCAL, 0), A(CKA_UNIQUE_ID),
                U(CKA_KEY_GEN_MECHANISM, CK_UNAVAILABLE_INFORMATION));
    ksp_attrs_free(&o);
    add_ul(&t, CKA_MODULUS_BITS, 2048);
    ck_assert_rv(create(&t, &o), CKR_ATTRIBUTE_READ_ONLY);
    ksp_attrs_free(&t);

    /* EC public: no encryption by default */
    key_tmpl(&t, CKO_PUBLIC_KEY, CKK_EC);
    ck_assert_rv(create(&t, &o), CKR_OK);
    CHECK_WANTS(&o, B(CKA_ENCRYPT, 0), B(CKA_VERIFY, 1), A(CKA_MODULUS_BITS));
    ksp_attrs_free(&o);
    ksp_attrs_remove(&t, CKA_EC_POINT);
    ck_assert_rv(create(&t, &o), CKR_TEMPLATE_INCOMPLETE);
    ksp_attrs_free(&t);

    /* imported RSA private key: never known to be protected; ksp11 forces the rest */
    key_tmpl(&t, CKO_PRIVATE_KEY, CKK_RSA);
    ck_assert_rv(create(&t, &o), CKR_OK);
    CHECK_WANTS(&o, B(CKA_PRIVATE, 1), B(CKA_COPYABLE, 0), B(CKA_SENSITIVE, 1),
                B(CKA_EXTRACTABLE, 0), B(CKA_ALWAYS_SENSITIVE, 0), B(CKA_NEVER_EXTRACTABLE, 0),
                B(CKA_LOCAL, 0), B(CKA_SIGN, 1), B(CKA_DECRYPT, 1), B(CKA_SIGN_RECOVER, 0),
                B(CKA_UNWRAP, 0), B(CKA_DERIVE, 0), B(CKA_ALWAYS_AUTHENTICATE, 0),
                B(CKA_WRAP_WITH_TRUSTED, 0), E(CKA_SUBJECT), A(CKA_MODULUS_BITS));
    ksp_attrs_free(&o);
    /* primes are optional, the public exponent is not */
    ksp_attrs_remove(&t, CKA_PUBLIC_EXPONENT);
    ck_assert_rv(create(&t, &o), CKR_TEMPLATE_INCOMPLETE);
    ksp_attrs_free(&t);

    key_tmpl(&t, CKO_PRIVATE_KEY, CKK_EC);
    ck_assert_rv(create(&t, &o), CKR_OK);
    CHECK_WANTS(&o, B(CKA_DECRYPT, 0), B(CKA_DERIVE, 1), B(CKA_SIGN, 1));
    ksp_attrs_free(&o);
    ksp_attrs_free(&t);

    /* secret key: VALUE_LEN and the history flags follow the key's own flags */
    secret_obj(true, true, &o);
    CHECK_WANTS(&o, U(CKA_VALUE_LEN, 16), B(CKA_PRIVATE, 1), B(CKA_ALWAYS_SENSITIVE, 1),
                B(CKA_NEVER_EXTRACTABLE, 0));
    ksp_attrs_free(&o);
    secret_obj(false, false, &o);
    CHECK_WANTS(&o, B(CKA_ALWAYS_SENSITIVE, 0), B(CKA_NEVER_EXTRACTABLE, 1));
    ksp_attrs_free(&o);

    ksp_attrs_init(&t);
    add_ul(&t, CKA_CLASS, CKO_DATA);
    ck_assert_rv(create(&t, &o), CKR_OK);
    CHECK_WANTS(&o, E(CKA_VALUE), E(CKA_APPLICATION), B(CKA_PRIVATE, 0), A(CKA_LOCAL));
    ksp_attrs_free(&o);
    ksp_attrs_free(&t);
}
END_TEST

/* Token-computed attributes are CKR_ATTRIBUTE_READ_ONLY in a create template
 * (fn 2, semantics.md §1.3; the walks check foreign types). */
START_TEST(create_refusals)
{
    static const CK_ATTRIBUTE_TYPE ro[] = {
        CKA_LOCAL,
        CKA_KEY_GEN_MECHANISM,
        CKA_ALWAYS_SENSITIVE,
        CKA_NEVER_EXTRACTABLE,
        CKA_UNIQUE_ID,
        CKA_KSP11_BACKEND,
        CKA_KSP11_FALLBACK_REASON,
        CKA_KSP11_IMPL_TYPE,
        CKA_KSP11_TPM_IDENTITY,
    };
    struct ksp_attrs t;
    for (size_t i = 0; i < sizeof(ro) / sizeof(ro[0]); i++) {
        key_tmpl(&t, CKO_PRIVATE_KEY, CKK_RSA);
        add_b(&t, ro[i], false);
        if (run(CREATE, &USER, NULL, &t, NULL) == CKR_ATTRIBUTE_VALUE_INVALID)
            add_ul(&t, ro[i], 1); /* not a boolean */
        ck_assert_msg(run(CREATE, &USER, NULL, &t, NULL) == CKR_ATTRIBUTE_READ_ONLY, "0x%lx",
                      ro[i]);
        ksp_attrs_free(&t);
    }
}
END_TEST

START_TEST(private_key_policy_refusals)
{
    struct {
        CK_ATTRIBUTE_TYPE type;
        bool v;
    } refused[] = {
        {CKA_SENSITIVE, false},   {CKA_EXTRACTABLE, true}, {CKA_COPYABLE, true},
        {CKA_SIGN_RECOVER, true}, {CKA_UNWRAP, true},
    };
    struct ksp_attrs t, c, obj, one_t;
    ksp_attrs_init(&one_t);
    key_tmpl(&t, CKO_PRIVATE_KEY, CKK_EC);
    ck_assert_rv(create(&t, &obj), CKR_OK);
    ksp_attrs_free(&t);
    ksp_attrs_init(&c);
    add_ul(&c, CKA_CLASS, CKO_PRIVATE_KEY);
    add_ul(&c, CKA_KEY_TYPE, CKK_EC);
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        /* refused in a create and a generate template, even from the SO ... */
        key_tmpl(&t, CKO_PRIVATE_KEY, CKK_RSA);
        add_b(&t, refused[i].type, refused[i].v);
        ck_assert_rv(run(CREATE, &SO, NULL, &t, NULL), CKR_ATTRIBUTE_VALUE_INVALID);
        one_b(&one_t, refused[i].type, refused[i].v);
        ck_assert_rv(run(GENERATE, &SO, NULL, &one_t, &c), CKR_ATTRIBUTE_VALUE_INVALID);
        /* ... and read-only on an existing key (semantics.md §1.3) */
        ck_assert_rv(run(SET, &SO, &obj, &one_t, NULL), CKR_ATTRIBUTE_READ_ONLY);
        /* asking for the forced value is fine */
        ck_assert_rv(run(SET, &SO, &obj, one_b(&one_t, refused[i].type, !refused[i].v), NULL),
                     CKR_OK);
        ksp_attrs_free(&t);
    }
    ksp_attrs_free(&one_t);
    ksp_attrs_free(&obj);
    ksp_attrs_free(&c);
}
END_TEST

START_TEST(private_key_one_way_rules)
{
    struct ksp_attrs t, obj, o;
    key_tmpl(&t, CKO_PRIVATE_KEY, CKK_EC);
    add_b(&t, CKA_DECRYPT, true);
    ck_assert_rv(create(&t, &obj), CKR_OK);
    ksp_attrs_free(&t);

    /* usage may narrow, never widen (DESIGN.md §3) */
    static const CK_ATTRIBUTE_TYPE usage[] = {CKA_SIGN, CKA_DECRYPT, CKA_DERIVE};
    for (size_t i = 0; i < 3; i++) {
        ck_assert_rv(set_bool(&obj, usage[i], true), CKR_OK); /* current value */
        ck_assert_rv(set_bool(&obj, usage[i], false), CKR_OK);
        ck_assert(has_b(&obj, usage[i], false));
        ck_assert_rv(set_bool(&obj, usage[i], true), CKR_ATTRIBUTE_READ_ONLY);
    }
    ck_assert_rv(set_bool(&obj, CKA_DESTROYABLE, false), CKR_OK);
    ck_assert_rv(set_bool(&obj, CKA_DESTROYABLE, true), CKR_ATTRIBUTE_READ_ONLY);
    static const CK_ATTRIBUTE_TYPE fixed[] = {
        CKA_MODIFIABLE,        CKA_TOKEN, CKA_PRIVATE,          CKA_ALWAYS_AUTHENTICATE,
        CKA_WRAP_WITH_TRUSTED, CKA_LOCAL, CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        bool now = ksp_attrs_bool(&obj, fixed[i], false);
        ck_assert_msg(set_bool(&obj, fixed[i], !now) == CKR_ATTRIBUTE_READ_ONLY, "0x%lx", fixed[i]);
    }

    /* renames and identifiers are allowed */
    ksp_attrs_init(&t);
    add(&t, CKA_LABEL, "new", 3);
    add(&t, CKA_ID, "\x01\x02", 2);
    add(&t, CKA_SUBJECT, "subj", 4);
    add(&t, CKA_START_DATE, "20240101", 8);
    ck_assert_rv(ksp_schema_apply(SET, &USER, &obj, &t, NULL, &o), CKR_OK);
    ck_assert(has(&o, CKA_LABEL, "new", 3) && has(&o, CKA_ID, "\x01\x02", 2));
    ck_assert_uint_eq(o.n, obj.n);
    ksp_attrs_free(&o);

    /* key material, class and type never change; restating them is fine */
    ck_assert_rv(run(SET, &SO, &obj, one(&t, CKA_EC_PARAMS, P384, sizeof(P384)), NULL),
                 CKR_ATTRIBUTE_READ_ONLY);
    CK_ULONG rsa = CKK_RSA, ec = CKK_EC;
    ck_assert_rv(run(SET, &SO, &obj, one(&t, CKA_KEY_TYPE, &rsa, sizeof(rsa)), NULL),
                 CKR_ATTRIBUTE_READ_ONLY);
    ck_assert_rv(run(SET, &SO, &obj, one(&t, CKA_KEY_TYPE, &ec, sizeof(ec)), NULL), CKR_OK);
    ck_assert_rv(run(SET, &SO, &obj, one(&t, CKA_EC_PARAMS, P256, sizeof(P256)), NULL), CKR_OK);

    /* a private key is never copied */
    ksp_attrs_free(&t);
    ck_assert_rv(run(COPY, &SO, &obj, &t, NULL), CKR_ACTION_PROHIBITED);
    ksp_attrs_free(&obj);
}
END_TEST

START_TEST(copy_and_modifiable_rules)
{
    struct ksp_attrs obj, t, o;
    secret_obj(true, false, &obj);
    add(&obj, CKA_UNIQUE_ID, "u1", 2);
    ksp_attrs_init(&t);
    /* a copy may not relax the one-way rules nor change the key */
    ck_assert_rv(run(COPY, &SO, &obj, one_b(&t, CKA_SENSITIVE, false), NULL),
                 CKR_ATTRIBUTE_READ_ONLY);
    ck_assert_rv(run(COPY, &SO, &obj, one_b(&t, CKA_EXTRACTABLE, true), NULL),
                 CKR_ATTRIBUTE_READ_ONLY);
    ck_assert_rv(run(COPY, &SO, &obj, one(&t, CKA_VALUE, "other", 5), NULL),
                 CKR_ATTRIBUTE_READ_ONLY);
    /* what a copy may change (2.40 §4.4) */
    ksp_attrs_free(&t);
    add_b(&t, CKA_TOKEN, true);
    add_b(&t, CKA_PRIVATE, false);
    add_b(&t, CKA_MODIFIABLE, false);
    add(&t, CKA_LABEL, "copy", 4);
    ck_assert_rv(ksp_schema_apply(COPY, &USER, &obj, &t, NULL, &o), CKR_OK);
    ck_assert(has_b(&o, CKA_TOKEN, true) && has_b(&o, CKA_MODIFIABLE, false));
    ck_assert(has_b(&o, CKA_SENSITIVE, true) && has_b(&o, CKA_EXTRACTABLE, false));
    ck_assert(!ksp_attrs_find(&o, CKA_UNIQUE_ID)); /* the caller assigns a new one */
    ck_assert(has(&obj, CKA_UNIQUE_ID, "u1", 2) && has_b(&obj, CKA_TOKEN, false));
    /* a read-only object: no set (the caller maps the code), but a copy may
     * make it modifiable again */
    ck_assert_rv(run(SET, &SO, &o, one(&t, CKA_LABEL, "x", 1), NULL), CKR_ACTION_PROHIBITED);
    add_b(&t, CKA_MODIFIABLE, true);
    ck_assert_rv(run(COPY, &USER, &o, &t, NULL), CKR_OK);
    ksp_attrs_free(&o);
    /* ... and a set may not change CKA_TOKEN */
    ck_assert_rv(run(SET, &SO, &obj, one_b(&t, CKA_TOKEN, true), NULL), CKR_ATTRIBUTE_READ_ONLY);
    ksp_attrs_free(&obj);

    /* CKA_COPYABLE FALSE -> CKR_ACTION_PROHIBITED (3.0 §4.4) */
    ksp_attrs_free(&t);
    add_ul(&t, CKA_CLASS, CKO_DATA);
    add_b(&t, CKA_COPYABLE, false);
    ck_assert_rv(create(&t, &obj), CKR_OK);
    ksp_attrs_free(&t);
    ck_assert_rv(run(COPY, &SO, &obj, &t, NULL), CKR_ACTION_PROHIBITED);
    ksp_attrs_free(&obj);
}
END_TEST

START_TEST(secret_key_one_way_rules)
{
    struct ksp_attrs obj, t, o;
    secret_obj(false, true, &obj);
    ck_assert_rv(set_bool(&obj, CKA_SENSITIVE, true), CKR_OK);
    ck_assert_rv(set_bool(&obj, CKA_SENSITIVE, false), CKR_ATTRIBUTE_READ_ONLY);
    ck_assert_rv(set_bool(&obj, CKA_EXTRACTABLE, false), CKR_OK);
    ck_assert_rv(set_bool(&obj, CKA_EXTRACTABLE, true), CKR_ATTRIBUTE_READ_ONLY);
    ck_assert_rv(set_bool(&obj, CKA_WRAP_WITH_TRUSTED, true), CKR_OK);
    ck_assert_rv(set_bool(&obj, CKA_WRAP_WITH_TRUSTED, false), CKR_ATTRIBUTE_READ_ONLY);
    /* history flags are not recomputed by a later change */
    ck_assert(has_b(&obj, CKA_ALWAYS_SENSITIVE, false));
    ck_assert(has_b(&obj, CKA_NEVER_EXTRACTABLE, false));
    /* usage flags carry fn 8: both ways */
    ck_assert_rv(set_bool(&obj, CKA_ENCRYPT, true), CKR_OK);
    ck_assert_rv(set_bool(&obj, CKA_ENCRYPT, false), CKR_OK);
    /* fn 10: CKA_TRUSTED TRUE only by the SO */
    ck_assert_rv(set_bool(&obj, CKA_TRUSTED, true), CKR_ATTRIBUTE_READ_ONLY);
    ksp_attrs_init(&t);
    ck_assert_rv(ksp_schema_apply(SET, &SO, &obj, one_b(&t, CKA_TRUSTED, true), NULL, &o), CKR_OK);
    ck_assert(has_b(&o, CKA_TRUSTED, true));
    ksp_attrs_free(&obj);
    obj = o;
    ck_assert_rv(set_bool(&obj, CKA_TRUSTED, true), CKR_OK); /* unchanged */
    ck_assert_rv(set_bool(&obj, CKA_TRUSTED, false), CKR_OK);
    ksp_attrs_free(&t);
    ksp_attrs_free(&obj);
}
END_TEST

START_TEST(certificate_set_rules)
{
    struct ksp_attrs t, obj;
    ksp_attrs_init(&t);
    add_ul(&t, CKA_CLASS, CKO_CERTIFICATE);
    add_ul(&t, CKA_CERTIFICATE_TYPE, CKC_X_509);
    add(&t, CKA_SUBJECT, "subject", 7);
    add(&t, CKA_VALUE, "\x30\x00", 2);
    ck_assert_rv(create(&t, &obj), CKR_OK);
    /* 2.40 §4.6.3: only ID, ISSUER, SERIAL_NUMBER (and the label) change */
    ksp_attrs_free(&t);
    add(&t, CKA_ID, "i", 1);
    add(&t, CKA_ISSUER, "is", 2);
    add(&t, CKA_SERIAL_NUMBER, "\x02\x01\x01", 3);
    add(&t, CKA_LABEL, "l", 1);
    ck_assert_rv(run(SET, &USER, &obj, &t, NULL), CKR_OK);
    static const CK_ATTRIBUTE_TYPE fixed[] = {CKA_SUBJECT, CKA_VALUE, CKA_URL, CKA_START_DATE};
    for (size_t i = 0; i < 4; i++)
        ck_assert_msg(run(SET, &SO, &obj, one(&t, fixed[i], "20300101", 8), NULL) ==
                          CKR_ATTRIBUTE_READ_ONLY,
                      "0x%lx", fixed[i]);
    ksp_attrs_free(&obj);
    ksp_attrs_free(&t);
}
END_TEST

/* Computed values of an RSA key pair half as keys.c passes them. */
static void rsa_computed(CK_OBJECT_CLASS cls, struct ksp_attrs *c)
{
    key_tmpl(c, cls, CKK_RSA);
    ksp_attrs_remove(c, CKA_PRIVATE_EXPONENT);
    add_ul(c, CKA_KEY_GEN_MECHANISM, CKM_RSA_PKCS_KEY_PAIR_GEN);
    add_ul(c, CKA_KSP11_BACKEND, KSP11_BACKEND_SOFT);
    add(c, CKA_KSP11_FALLBACK_REASON, "tpm-absent", 10);
    add(c, CKA_ID, "computed-id", 11);
    if (cls == CKO_PUBLIC_KEY)
        add_ul(c, CKA_MODULUS_BITS, 2048);
}

START_TEST(generate_computed_values_win)
{
    struct ksp_attrs t, c, o, t2;
    rsa_computed(CKO_PUBLIC_KEY, &c);
    ksp_attrs_init(&t);
    add_ul(&t, CKA_MODULUS_BITS, 2048);
    add(&t, CKA_PUBLIC_EXPONENT, "\x00\x01\x00\x01", 4); /* same integer, leading zero */
    add(&t, CKA_ID, "template-id", 11);
    add_b(&t, CKA_TOKEN, true);
    add_b(&t, CKA_KSP11_REQUIRE_HARDWARE, false);
    ck_assert_rv(ksp_schema_apply(GENERATE, &USER, NULL, &t, &c, &o), CKR_OK);
    ck_assert(has(&o, CKA_ID, "computed-id", 11) && has(&o, CKA_PUBLIC_EXPONENT, EXP, 3));
    CHECK_WANTS(&o, U(CKA_MODULUS_BITS, 2048), U(CKA_KEY_GEN_MECHANISM, CKM_RSA_PKCS_KEY_PAIR_GEN),
                U(CKA_KSP11_BACKEND, KSP11_BACKEND_SOFT), B(CKA_LOCAL, 1), B(CKA_TOKEN, 1),
                A(CKA_KSP11_REQUIRE_HARDWARE));
    ksp_attrs_free(&o);

    CK_ULONG bits = 512, tpm = KSP11_BACKEND_TPM, priv = CKO_PRIVATE_KEY, ec = CKK_EC;
    struct {
        CK_ATTRIBUTE_TYPE type;
        const void *v;
        CK_ULONG len;
        CK_RV want;
    } cases[] = {
        {CKA_PUBLIC_EXPONENT, "\x03", 1, CKR_TEMPLATE_INCONSISTENT},
        {CKA_MODULUS_BITS, &bits, sizeof(bits), CKR_ATTRIBUTE_VALUE_INVALID},
        {CKA_MODULUS, MOD, sizeof(MOD), CKR_ATTRIBUTE_READ_ONLY},
        {CKA_KSP11_BACKEND, &tpm, sizeof(tpm), CKR_ATTRIBUTE_READ_ONLY},
        {CKA_KSP11_REQUIRE_HARDWARE, "\x02", 1, CKR_ATTRIBUTE_VALUE_INVALID},
        {CKA_CLASS, &priv, sizeof(priv), CKR_TEMPLATE_INCONSISTENT},
        {CKA_KEY_TYPE, &ec, sizeof(ec), CKR_TEMPLATE_INCONSISTENT},
        {CKA_VALUE, "x", 1, CKR_ATTRIBUTE_TYPE_INVALID},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ck_assert_rv(ksp_attrs_dup(&t, &t2), CKR_OK);
        add(&t2, cases[i].type, cases[i].v, cases[i].len);
        ck_assert_msg(run(GENERATE, &USER, NULL, &t2, &c) == cases[i].want, "case %zu", i);
        ksp_attrs_free(&t2);
    }
    /* fn 3: no modulus size, no key */
    ksp_attrs_remove(&t, CKA_MODULUS_BITS);
    ck_assert_rv(run(GENERATE, &USER, NULL, &t, &c), CKR_TEMPLATE_INCOMPLETE);
    ksp_attrs_free(&t);
    ksp_attrs_free(&c);

    /* the private half: born protected; the public exponent is no parameter here */
    rsa_computed(CKO_PRIVATE_KEY, &c);
    add_b(&t, CKA_SIGN, true);
    add_b(&t, CKA_KSP11_REQUIRE_HARDWARE, true);
    ck_assert_rv(ksp_schema_apply(GENERATE, &USER, NULL, &t, &c, &o), CKR_OK);
    CHECK_WANTS(&o, B(CKA_ALWAYS_SENSITIVE, 1), B(CKA_NEVER_EXTRACTABLE, 1), B(CKA_SENSITIVE, 1),
                B(CKA_EXTRACTABLE, 0), B(CKA_LOCAL, 1), B(CKA_COPYABLE, 0),
                A(CKA_KSP11_REQUIRE_HARDWARE));
    ck_assert(has(&o, CKA_KSP11_FALLBACK_REASON, "tpm-absent", 10));
    ksp_attrs_free(&o);
    add(&t, CKA_PUBLIC_EXPONENT, EXP, sizeof(EXP));
    ck_assert_rv(run(GENERATE, &USER, NULL, &t, &c), CKR_ATTRIBUTE_READ_ONLY);
    ksp_attrs_free(&t);
    ksp_attrs_free(&c);

    /* the caller must say what it generated */
    ck_assert_rv(run(GENERATE, &USER, NULL, &t, &c), CKR_ARGUMENTS_BAD);
    ck_assert_rv(run(GENERATE, &USER, NULL, &t, NULL), CKR_ARGUMENTS_BAD);
}
END_TEST

START_TEST(generate_ec_params_on_private_template)
{
    struct ksp_attrs t, c, o;
    ksp_attrs_init(&c);
    add_ul(&c, CKA_CLASS, CKO_PRIVATE_KEY);
    add_ul(&c, CKA_KEY_TYPE, CKK_EC);
    add(&c, CKA_EC_PARAMS, P256, sizeof(P256));
    ksp_attrs_init(&t);
    ck_assert_rv(ksp_schema_apply(GENERATE, &USER, NULL, one(&t, CKA_EC_PARAMS, P256, 10), &c, &o),
                 CKR_OK);
    ck_assert(has_b(&o, CKA_DERIVE, true));
    ck_assert(has_ul(&o, CKA_KEY_GEN_MECHANISM, CK_UNAVAILABLE_INFORMATION));
    ksp_attrs_free(&o);
    ck_assert_rv(run(GENERATE, &USER, NULL, one(&t, CKA_EC_PARAMS, P384, 7), &c),
                 CKR_TEMPLATE_INCONSISTENT);
    ck_assert_rv(run(GENERATE, &USER, NULL, one(&t, CKA_VALUE, "\x01", 1), &c),
                 CKR_ATTRIBUTE_READ_ONLY);
    ksp_attrs_free(&t);
    ksp_attrs_free(&c);
}
END_TEST

START_TEST(derive_secret_key)
{
    struct ksp_attrs t, c, o;
    ksp_attrs_init(&c);
    add_ul(&c, CKA_CLASS, CKO_SECRET_KEY);
    add_ul(&c, CKA_KEY_TYPE, CKK_GENERIC_SECRET);
    add(&c, CKA_VALUE, "0123456789abcdef", 16);
    add_ul(&c, CKA_VALUE_LEN, 16);

    ksp_attrs_init(&t); /* an empty template is a complete request */
    ck_assert_rv(ksp_schema_apply(DERIVE, &USER, NULL, &t, &c, &o), CKR_OK);
    CHECK_WANTS(&o, U(CKA_CLASS, CKO_SECRET_KEY), U(CKA_VALUE_LEN, 16), B(CKA_LOCAL, 0),
                U(CKA_KEY_GEN_MECHANISM, CK_UNAVAILABLE_INFORMATION), B(CKA_SENSITIVE, 0),
                B(CKA_EXTRACTABLE, 0), B(CKA_ALWAYS_SENSITIVE, 0), B(CKA_NEVER_EXTRACTABLE, 1));
    ck_assert_int_eq(ksp_schema_access(&o, CKA_VALUE), KSP_ACCESS_SENSITIVE);
    ksp_attrs_free(&o);

    /* what pkcs11-provider / libp11 ask for: a readable shared secret */
    add_ul(&t, CKA_CLASS, CKO_SECRET_KEY);
    add_ul(&t, CKA_KEY_TYPE, CKK_GENERIC_SECRET);
    add_b(&t, CKA_SENSITIVE, false);
    add_b(&t, CKA_EXTRACTABLE, true);
    add_ul(&t, CKA_VALUE_LEN, 16);
    ck_assert_rv(ksp_schema_apply(DERIVE, &USER, NULL, &t, &c, &o), CKR_OK);
    ck_assert_int_eq(ksp_schema_access(&o, CKA_VALUE), KSP_ACCESS_OK);
    ck_assert(ksp_schema_is_secret(&o, CKA_VALUE));
    ksp_attrs_free(&o);

    add_ul(&t, CKA_VALUE_LEN, 32);
    ck_assert_rv(run(DERIVE, &USER, NULL, &t, &c), CKR_TEMPLATE_INCONSISTENT);
    add_ul(&t, CKA_VALUE_LEN, 0);
    ck_assert_rv(run(DERIVE, &USER, NULL, &t, &c), CKR_ATTRIBUTE_VALUE_INVALID);
    ksp_attrs_remove(&t, CKA_VALUE_LEN);
    add_ul(&t, CKA_KEY_TYPE, CKK_AES); /* not a key type ksp11 knows */
    ck_assert_rv(run(DERIVE, &USER, NULL, &t, &c), CKR_ATTRIBUTE_VALUE_INVALID);
    add_ul(&t, CKA_KEY_TYPE, CKK_EC); /* known, but not what the mechanism made */
    ck_assert_rv(run(DERIVE, &USER, NULL, &t, &c), CKR_TEMPLATE_INCONSISTENT);
    add_ul(&t, CKA_KEY_TYPE, CKK_GENERIC_SECRET);
    add_ul(&t, CKA_CLASS, CKO_DATA);
    ck_assert_rv(run(DERIVE, &USER, NULL, &t, NULL), CKR_TEMPLATE_INCONSISTENT);
    ck_assert_rv(run(DERIVE, &USER, NULL, one(&t, CKA_VALUE, "x", 1), &c), CKR_ATTRIBUTE_READ_ONLY);
    ck_assert_rv(run(DERIVE, &USER, NULL, one_b(&t, CKA_KSP11_REQUIRE_HARDWARE, true), &c),
                 CKR_ATTRIBUTE_TYPE_INVALID);
    ksp_attrs_free(&t);
    ksp_attrs_free(&c);
}
END_TEST

START_TEST(access_sensitive_attributes)
{
    static const CK_ATTRIBUTE_TYPE hidden[] = {CKA_PRIVATE_EXPONENT, CKA_PRIME_1,
                                               CKA_PRIME_2,          CKA_EXPONENT_1,
                                               CKA_EXPONENT_2,       CKA_COEFFICIENT};
    struct ksp_attrs t, o;
    key_tmpl(&t, CKO_PRIVATE_KEY, CKK_RSA);
    ck_assert_rv(create(&t, &o), CKR_OK);
    for (size_t i = 0; i < 6; i++) {
        ck_assert_int_eq(ksp_schema_access(&o, hidden[i]), KSP_ACCESS_SENSITIVE);
        ck_assert(ksp_schema_is_secret(&o, hidden[i]));
    }
    /* components stay hidden even if a (tampered) object claims otherwise */
    add_b(&o, CKA_SENSITIVE, false);
    add_b(&o, CKA_EXTRACTABLE, true);
    for (size_t i = 0; i < 6; i++)
        ck_assert_int_eq(ksp_schema_access(&o, hidden[i]), KSP_ACCESS_SENSITIVE);
    ck_assert_int_eq(ksp_schema_access(&o, CKA_MODULUS), KSP_ACCESS_OK);
    ck_assert(!ksp_schema_is_secret(&o, CKA_MODULUS));
    ck_assert_int_eq(ksp_schema_access(&o, CKA_KSP11_BACKEND), KSP_ACCESS_OK);
    ck_assert_int_eq(ksp_schema_access(&o, CKA_KSP11_REQUIRE_HARDWARE), KSP_ACCESS_INVALID);
    ck_assert_int_eq(ksp_schema_access(&o, CKA_VALUE), KSP_ACCESS_INVALID);
    ck_assert_int_eq(ksp_schema_access(&o, CKA_UNWRAP_TEMPLATE), KSP_ACCESS_INVALID);
    ck_assert_int_eq(ksp_schema_access(&o, CKA_VENDOR_DEFINED | 9UL), KSP_ACCESS_INVALID);
    ksp_attrs_free(&o);
    ksp_attrs_free(&t);

    key_tmpl(&t, CKO_PRIVATE_KEY, CKK_EC);
    ck_assert_rv(create(&t, &o), CKR_OK);
    ck_assert_int_eq(ksp_schema_access(&o, CKA_VALUE), KSP_ACCESS_SENSITIVE);
    ck_assert_int_eq(ksp_schema_access(&o, CKA_EC_PARAMS), KSP_ACCESS_OK);
    ksp_attrs_free(&o);
    ksp_attrs_free(&t);

    /* fn 7 on a secret key */
    secret_obj(false, true, &o);
    ck_assert_int_eq(ksp_schema_access(&o, CKA_VALUE), KSP_ACCESS_OK);
    ksp_attrs_free(&o);
    secret_obj(true, true, &o);
    ck_assert_int_eq(ksp_schema_access(&o, CKA_VALUE), KSP_ACCESS_SENSITIVE);
    ksp_attrs_free(&o);
    secret_obj(false, false, &o);
    ck_assert_int_eq(ksp_schema_access(&o, CKA_VALUE), KSP_ACCESS_SENSITIVE);
    ck_assert_int_eq(ksp_schema_access(&o, CKA_VALUE_LEN), KSP_ACCESS_OK);
    ck_assert(ksp_schema_is_secret(&o, CKA_VALUE));
    ksp_attrs_free(&o);

    /* an object without a valid class answers nothing */
    ck_assert_int_eq(ksp_schema_access(&o, CKA_LABEL), KSP_ACCESS_INVALID);
    ck_assert(!ksp_schema_is_secret(&o, CKA_VALUE));
}
END_TEST

START_TEST(wrong_length_and_bad_arguments)
{
    struct ksp_attrs t, o, obj;
    CK_ULONG big_true = CK_TRUE;
    key_tmpl(&t, CKO_PRIVATE_KEY, CKK_RSA);
    add(&t, CKA_SIGN, &big_true, sizeof(big_true)); /* a CK_ULONG where a CK_BBOOL goes */
    ck_assert_rv(create(&t, &o), CKR_ATTRIBUTE_VALUE_INVALID);
    add(&t, CKA_SIGN, "\x01", 1);
    add(&t, CKA_KEY_TYPE, "\x00", 1);
    ck_assert_rv(create(&t, &o), CKR_ATTRIBUTE_VALUE_INVALID);
    ksp_attrs_free(&t);

    secret_obj(false, true, &obj);
    ck_assert_rv(run(SET, &USER, &obj, one(&t, CKA_ENCRYPT, "\x01\x00", 2), NULL),
                 CKR_ATTRIBUTE_VALUE_INVALID);
    ck_assert_rv(run(SET, &USER, &obj, one(&t, CKA_ENCRYPT, "\xff", 1), NULL),
                 CKR_ATTRIBUTE_VALUE_INVALID);
    ck_assert_rv(run(SET, &USER, &obj, one(&t, CKA_END_DATE, "2024-1-1", 8), NULL),
                 CKR_ATTRIBUTE_VALUE_INVALID);

    /* a failed call leaves the output alone */
    ksp_attrs_init(&o);
    add(&o, CKA_LABEL, "sentinel", 8);
    struct ksp_attrs before = o;
    ck_assert_rv(ksp_schema_apply(SET, &USER, &obj, &t, NULL, &o), CKR_ATTRIBUTE_VALUE_INVALID);
    ck_assert(o.v == before.v && o.n == before.n && has(&o, CKA_LABEL, "sentinel", 8));
    ck_assert_rv(ksp_schema_apply(CREATE, &USER, NULL, &t, NULL, NULL), CKR_ARGUMENTS_BAD);
    ck_assert_rv(run(SET, &USER, NULL, &t, NULL), CKR_ARGUMENTS_BAD);
    ck_assert_rv(run(COPY, &USER, NULL, &t, NULL), CKR_ARGUMENTS_BAD);
    ksp_attrs_free(&t);
    ksp_attrs_free(&o);
    ksp_attrs_free(&obj);
}
END_TEST

static Suite *schema_suite(void)
{
    Suite *s = suite_create("schema");
    TCase *tw = tcase_create("walk"), *te = tcase_create("explicit");
    tcase_add_test(tw, tables_consistent);
    tcase_add_test(tw, walk_create);
    tcase_add_test(tw, walk_generate);
    tcase_add_test(tw, walk_derive);
    tcase_add_test(tw, walk_bad_values);
    tcase_add_test(tw, walk_set);
    tcase_add_test(tw, walk_copy);
    tcase_add_test(tw, walk_access_and_foreign_types);
    tcase_add_test(te, create_class_and_type_errors);
    tcase_add_test(te, create_defaults_and_computed);
    tcase_add_test(te, create_refusals);
    tcase_add_test(te, private_key_policy_refusals);
    tcase_add_test(te, private_key_one_way_rules);
    tcase_add_test(te, copy_and_modifiable_rules);
    tcase_add_test(te, secret_key_one_way_rules);
    tcase_add_test(te, certificate_set_rules);
    tcase_add_test(te, generate_computed_values_win);
    tcase_add_test(te, generate_ec_params_on_private_template);
    tcase_add_test(te, derive_secret_key);
    tcase_add_test(te, access_sensitive_attributes);
    tcase_add_test(te, wrong_length_and_bad_arguments);
    suite_add_tcase(s, tw);
    suite_add_tcase(s, te);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(schema_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
