/*
 * The label index of a token's object cache: C_FindObjectsInit with CKA_LABEL
 * in the template (how TLS stacks and pkcs11: URIs find their key) looks up
 * candidates by label hash instead of matching every object's attributes,
 * so a token with 10,000 objects answers in microseconds.
 *
 * The index is a sorted array of (label hash, list position, object) built
 * on first need from t->objects and dropped whenever the cache changes
 * (ksp_objindex_invalidate_inlock: reload, create, destroy, set attributes),
 * so it can never name an object that is gone. Protected by the library lock.
 */
#include <stdlib.h>
#include <string.h>

#include "core.h"

struct ksp_objindex_ent {
    uint64_t hash;
    size_t pos; /* position in t->objects: results keep the list's order */
    struct ksp_object *o;
};

struct ksp_objindex {
    struct ksp_objindex_ent *e;
    size_t n;
};

static uint64_t fnv1a(const void *p, size_t len)
{
    const uint8_t *b = p;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= b[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static uint64_t label_hash(const struct ksp_object *o)
{
    const CK_ATTRIBUTE *l = ksp_attrs_find(&o->attrs, CKA_LABEL);
    /* No label and an empty label hash alike; the full match decides. */
    return l && l->ulValueLen ? fnv1a(l->pValue, l->ulValueLen) : fnv1a("", 0);
}

static int cmp_ent(const void *a, const void *b)
{
    const struct ksp_objindex_ent *x = a, *y = b;
    if (x->hash != y->hash)
        return x->hash < y->hash ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

void ksp_objindex_invalidate_inlock(struct ksp_token *t)
{
    if (!t->lindex)
        return;
    free(t->lindex->e);
    free(t->lindex);
    t->lindex = NULL;
}

static CK_RV build(struct ksp_token *t)
{
    size_t n = 0;
    for (struct ksp_object *o = t->objects; o; o = o->next)
        n++;
    struct ksp_objindex *ix = calloc(1, sizeof(*ix));
    if (!ix)
        return CKR_HOST_MEMORY;
    ix->e = calloc(n ? n : 1, sizeof(*ix->e));
    if (!ix->e) {
        free(ix);
        return CKR_HOST_MEMORY;
    }
    size_t i = 0;
    for (struct ksp_object *o = t->objects; o; o = o->next, i++)
        ix->e[i] = (struct ksp_objindex_ent){label_hash(o), i, o};
    ix->n = n;
    qsort(ix->e, n, sizeof(*ix->e), cmp_ent);
    t->lindex = ix;
    return CKR_OK;
}

CK_RV ksp_objindex_lookup_inlock(struct ksp_token *t, const CK_ATTRIBUTE *label,
                                 struct ksp_object ***out, size_t *n_out)
{
    if (!t->lindex) {
        CK_RV rv = build(t);
        if (rv != CKR_OK)
            return rv;
    }
    const struct ksp_objindex *ix = t->lindex;
    /* A template label with a length but no value (pValue NULL) must not be
     * read (fuzz/attrs); it then matches nothing (ksp_attrs_match). */
    uint64_t h =
        label->ulValueLen && label->pValue ? fnv1a(label->pValue, label->ulValueLen) : fnv1a("", 0);
    size_t lo = 0, hi = ix->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ix->e[mid].hash < h)
            lo = mid + 1;
        else
            hi = mid;
    }
    size_t end = lo;
    while (end < ix->n && ix->e[end].hash == h)
        end++;
    struct ksp_object **v = malloc((end - lo ? end - lo : 1) * sizeof(*v));
    if (!v)
        return CKR_HOST_MEMORY;
    for (size_t i = lo; i < end; i++)
        v[i - lo] = ix->e[i].o; /* sorted by (hash, pos): list order */
    *out = v;
    *n_out = end - lo;
    return CKR_OK;
}
