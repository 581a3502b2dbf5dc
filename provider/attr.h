/*
 * Counted attribute lists that own their values (style.md §3.5, after p11-kit
 * common/attrs.h). Values are heap copies; freeing wipes them, because a list
 * may hold sensitive values (e.g. a template with CKA_VALUE).
 */
#ifndef KSP_ATTR_H
#define KSP_ATTR_H

#include <stdbool.h>
#include <stddef.h>

#include "ksp11/pkcs11.h"

struct ksp_attrs {
    CK_ATTRIBUTE *v;
    size_t n, cap;
};

void ksp_attrs_init(struct ksp_attrs *a);
/* Wipe and free every value and the array. */
void ksp_attrs_free(struct ksp_attrs *a);
CK_ATTRIBUTE *ksp_attrs_find(const struct ksp_attrs *a, CK_ATTRIBUTE_TYPE type);
/* Add or replace; copies len bytes of val (val may be NULL when len is 0). */
CK_RV ksp_attrs_set(struct ksp_attrs *a, CK_ATTRIBUTE_TYPE type, const void *val, CK_ULONG len);
CK_RV ksp_attrs_set_bool(struct ksp_attrs *a, CK_ATTRIBUTE_TYPE type, bool val);
CK_RV ksp_attrs_set_ulong(struct ksp_attrs *a, CK_ATTRIBUTE_TYPE type, CK_ULONG val);
/* Remove if present (value wiped). */
void ksp_attrs_remove(struct ksp_attrs *a, CK_ATTRIBUTE_TYPE type);
/* Value of a CK_BBOOL attribute, dflt if absent or malformed. */
bool ksp_attrs_bool(const struct ksp_attrs *a, CK_ATTRIBUTE_TYPE type, bool dflt);
/* Value of a CK_ULONG attribute: CKR_OK, or CKR_TEMPLATE_INCOMPLETE if absent,
 * CKR_ATTRIBUTE_VALUE_INVALID if it has the wrong length. */
CK_RV ksp_attrs_ulong(const struct ksp_attrs *a, CK_ATTRIBUTE_TYPE type, CK_ULONG *out);
/* Deep copy. */
CK_RV ksp_attrs_dup(const struct ksp_attrs *src, struct ksp_attrs *dst);
/* Build from a caller template (copies values; rejects NULL pValue with
 * non-zero length: CKR_ATTRIBUTE_VALUE_INVALID; duplicate types:
 * CKR_TEMPLATE_INCONSISTENT). */
CK_RV ksp_attrs_from_template(const CK_ATTRIBUTE *tmpl, CK_ULONG n, struct ksp_attrs *out);
/* True if every attribute of tmpl is present in a with an identical value. */
bool ksp_attrs_match(const struct ksp_attrs *a, const CK_ATTRIBUTE *tmpl, CK_ULONG n);

#endif
