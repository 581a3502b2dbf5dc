/*
 * Object and key creation (keys.c). The library lock must be held.
 */
#ifndef KSP_KEYS_H
#define KSP_KEYS_H

#include "core.h"

CK_RV ksp_keys_create_inlock(struct ksp_session *s, const CK_ATTRIBUTE *tmpl, CK_ULONG n,
                             CK_OBJECT_HANDLE *out);
CK_RV ksp_keys_generate_inlock(struct ksp_session *s, const CK_MECHANISM *m, const CK_ATTRIBUTE *pt,
                               CK_ULONG pn, const CK_ATTRIBUTE *vt, CK_ULONG vn,
                               CK_OBJECT_HANDLE *hpub, CK_OBJECT_HANDLE *hpriv);
CK_RV ksp_keys_derive_inlock(struct ksp_session *s, const CK_MECHANISM *m, CK_OBJECT_HANDLE base,
                             const CK_ATTRIBUTE *tmpl, CK_ULONG n, CK_OBJECT_HANDLE *out);

#endif
