/*
 * Counted attribute lists: the one place attribute values are copied, compared
 * and freed.
 */
#include <stdlib.h>
#include <string.h>

#include "attr.h"
#include "secmem.h"

void ksp_attrs_init(struct ksp_attrs *a)
{
    a->v = NULL;
    a->n = 0;
    a->cap = 0;
}

static void free_value(CK_ATTRIBUTE *at)
{
    if (at->pValue) {
        ksp_wipe(at->pValue, at->ulValueLen);
        free(at->pValue);
    }
    at->pValue = NULL;
    at->ulValueLen = 0;
}

void ksp_attrs_free(struct ksp_attrs *a)
{
    for (size_t i = 0; i < a->n; i++)
        free_value(&a->v[i]);
    free(a->v);
    ksp_attrs_init(a);
}

CK_ATTRIBUTE *ksp_attrs_find(const struct ksp_attrs *a, CK_ATTRIBUTE_TYPE type)
{
    for (size_t i = 0; i < a->n; i++)
        if (a->v[i].type == type)
            return &a->v[i];
    return NULL;
}

CK_RV ksp_attrs_set(struct ksp_attrs *a, CK_ATTRIBUTE_TYPE type, const void *val, CK_ULONG len)
{
    void *copy = NULL;
    if (len > 0) {
        if (!val)
            return CKR_ARGUMENTS_BAD;
        copy = malloc(len);
        if (!copy)
            return CKR_HOST_MEMORY;
        memcpy(copy, val, len);
    }
    CK_ATTRIBUTE *at = ksp_attrs_find(a, type);
    if (at) {
        free_value(at);
    } else {
        if (a->n == a->cap) {
            size_t cap = a->cap ? a->cap * 2 : 16;
            CK_ATTRIBUTE *nv = realloc(a->v, cap * sizeof(*nv));
            if (!nv) {
                free(copy);
                return CKR_HOST_MEMORY;
            }
            a->v = nv;
            a->cap = cap;
        }
        at = &a->v[a->n++];
        at->type = type;
    }
    at->pValue = copy;
    at->ulValueLen = len;
    return CKR_OK;
}

CK_RV ksp_attrs_set_bool(struct ksp_attrs *a, CK_ATTRIBUTE_TYPE type, bool val)
{
    CK_BBOOL b = val ? CK_TRUE : CK_FALSE;
    return ksp_attrs_set(a, type, &b, sizeof(b));
}

CK_RV ksp_attrs_set_ulong(struct ksp_attrs *a, CK_ATTRIBUTE_TYPE type, CK_ULONG val)
{
    return ksp_attrs_set(a, type, &val, sizeof(val));
}

void ksp_attrs_remove(struct ksp_attrs *a, CK_ATTRIBUTE_TYPE type)
{
    CK_ATTRIBUTE *at = ksp_attrs_find(a, type);
    if (!at)
        return;
    free_value(at);
    size_t idx = (size_t)(at - a->v);
    memmove(&a->v[idx], &a->v[idx + 1], (a->n - idx - 1) * sizeof(*at));
    a->n--;
}

bool ksp_attrs_bool(const struct ksp_attrs *a, CK_ATTRIBUTE_TYPE type, bool dflt)
{
    const CK_ATTRIBUTE *at = ksp_attrs_find(a, type);
    if (!at || at->ulValueLen != sizeof(CK_BBOOL) || !at->pValue)
        return dflt;
    return *(const CK_BBOOL *)at->pValue != CK_FALSE;
}

CK_RV ksp_attrs_ulong(const struct ksp_attrs *a, CK_ATTRIBUTE_TYPE type, CK_ULONG *out)
{
    const CK_ATTRIBUTE *at = ksp_attrs_find(a, type);
    if (!at)
        return CKR_TEMPLATE_INCOMPLETE;
    if (at->ulValueLen != sizeof(CK_ULONG) || !at->pValue)
        return CKR_ATTRIBUTE_VALUE_INVALID;
    memcpy(out, at->pValue, sizeof(CK_ULONG));
    return CKR_OK;
}

CK_RV ksp_attrs_dup(const struct ksp_attrs *src, struct ksp_attrs *dst)
{
    struct ksp_attrs tmp;
    ksp_attrs_init(&tmp);
    for (size_t i = 0; i < src->n; i++) {
        CK_RV rv = ksp_attrs_set(&tmp, src->v[i].type, src->v[i].pValue, src->v[i].ulValueLen);
        if (rv != CKR_OK) {
            ksp_attrs_free(&tmp);
            return rv;
        }
    }
    *dst = tmp;
    return CKR_OK;
}

CK_RV ksp_attrs_from_template(const CK_ATTRIBUTE *tmpl, CK_ULONG n, struct ksp_attrs *out)
{
    struct ksp_attrs tmp;
    ksp_attrs_init(&tmp);
    if (n > 0 && !tmpl)
        return CKR_ARGUMENTS_BAD;
    for (CK_ULONG i = 0; i < n; i++) {
        CK_RV rv = CKR_OK;
        if (tmpl[i].ulValueLen > 0 && !tmpl[i].pValue)
            rv = CKR_ATTRIBUTE_VALUE_INVALID;
        else if (tmpl[i].ulValueLen == CK_UNAVAILABLE_INFORMATION)
            rv = CKR_ATTRIBUTE_VALUE_INVALID;
        else if (ksp_attrs_find(&tmp, tmpl[i].type))
            rv = CKR_TEMPLATE_INCONSISTENT;
        else
            rv = ksp_attrs_set(&tmp, tmpl[i].type, tmpl[i].pValue, tmpl[i].ulValueLen);
        if (rv != CKR_OK) {
            ksp_attrs_free(&tmp);
            return rv;
        }
    }
    *out = tmp;
    return CKR_OK;
}

bool ksp_attrs_match(const struct ksp_attrs *a, const CK_ATTRIBUTE *tmpl, CK_ULONG n)
{
    for (CK_ULONG i = 0; i < n; i++) {
        const CK_ATTRIBUTE *at = ksp_attrs_find(a, tmpl[i].type);
        if (!at || at->ulValueLen != tmpl[i].ulValueLen)
            return false;
        /* A search template may carry a length without a value (pValue NULL):
         * it matches nothing, and memcmp must never see NULL (UBSan, fuzz/attrs). */
        if (at->ulValueLen && (!tmpl[i].pValue || !at->pValue ||
                               memcmp(at->pValue, tmpl[i].pValue, at->ulValueLen) != 0))
            return false;
    }
    return true;
}
