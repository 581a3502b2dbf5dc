/*
 * PKCS#11 3.0 §5.7 object management.
 */
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "core.h"
#include "keys.h"
#include "schema.h"
#include "secmem.h"
#include "twk.h"

CK_RV ksp_api_CreateObject(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR t, CK_ULONG n,
                           CK_OBJECT_HANDLE_PTR out)
{
    struct ksp_session *s = NULL;
    CK_RV rv = ksp_enter_session(h, &s);
    if (rv != CKR_OK)
        return ksp_trace("C_CreateObject", rv);
    if (!out || (!t && n))
        rv = CKR_ARGUMENTS_BAD;
    else
        rv = ksp_keys_create_inlock(s, t, n, out);
    ksp_leave();
    return ksp_trace("C_CreateObject", rv);
}

CK_RV ksp_api_CopyObject(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE oh, CK_ATTRIBUTE_PTR t, CK_ULONG n,
                         CK_OBJECT_HANDLE_PTR out)
{
    struct ksp_session *s = NULL;
    struct ksp_object *o = NULL;
    struct ksp_attrs tmpl, res;
    struct ksp_buf secret = {0};
    struct ksp_schema_ctx ctx = {0};

    ksp_attrs_init(&tmpl);
    ksp_attrs_init(&res);
    CK_RV rv = ksp_enter_session(h, &s);
    if (rv != CKR_OK)
        return ksp_trace("C_CopyObject", rv);
    if (!out || (!t && n)) {
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    rv = ksp_object_get_inlock(s, oh, &o);
    if (rv != CKR_OK)
        goto out;
    rv = ksp_attrs_from_template(t, n, &tmpl);
    if (rv != CKR_OK)
        goto out;
    ctx.so = s->token->login == CKU_SO;
    rv = ksp_schema_apply(KSP_SCHEMA_COPY, &ctx, &o->attrs, &tmpl, NULL, &res);
    if (rv != CKR_OK)
        goto out;
    rv = ksp_session_can_write_inlock(s, ksp_attrs_bool(&res, CKA_TOKEN, false),
                                      ksp_attrs_bool(&res, CKA_PRIVATE, false));
    if (rv != CKR_OK)
        goto out;
    if (o->sealed.len) {
        /* Sealed values are bound to their object id: reseal for the copy. */
        const struct ksp_buf *twk = NULL;
        rv = ksp_auth_twk_inlock(s->token, &twk);
        if (rv == CKR_OK)
            rv = ksp_unseal(twk, (const uint8_t *)o->id, KSP_OBJID_LEN, &o->sealed, &secret);
        if (rv != CKR_OK)
            goto out;
    }
    struct ksp_buf blob = {0};
    if (o->blob.len) {
        rv = ksp_buf_set(&blob, o->blob.p, o->blob.len);
        if (rv != CKR_OK)
            goto out;
    }
    rv = ksp_object_add_inlock(s, &res, o->backend, &blob, &secret, out);
    ksp_buf_free(&blob);
out:
    ksp_attrs_free(&tmpl);
    ksp_attrs_free(&res);
    ksp_buf_free(&secret);
    ksp_leave();
    return ksp_trace("C_CopyObject", rv);
}

CK_RV ksp_api_DestroyObject(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE oh)
{
    struct ksp_session *s = NULL;
    struct ksp_object *o = NULL;
    CK_RV rv = ksp_enter_session(h, &s);
    if (rv != CKR_OK)
        return ksp_trace("C_DestroyObject", rv);
    rv = ksp_object_get_inlock(s, oh, &o);
    if (rv == CKR_OK)
        rv = ksp_session_can_write_inlock(s, o->on_token, o->is_private);
    /* §4.4 CKA_DESTROYABLE (3.0): FALSE forbids destruction. */
    if (rv == CKR_OK && !ksp_attrs_bool(&o->attrs, CKA_DESTROYABLE, true))
        rv = CKR_ACTION_PROHIBITED;
    if (rv == CKR_OK)
        rv = ksp_object_destroy_inlock(s, o);
    ksp_leave();
    return ksp_trace("C_DestroyObject", rv);
}

CK_RV ksp_api_GetObjectSize(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE oh, CK_ULONG_PTR size)
{
    struct ksp_session *s = NULL;
    struct ksp_object *o = NULL;
    CK_RV rv = ksp_enter_session(h, &s);
    if (rv != CKR_OK)
        return ksp_trace("C_GetObjectSize", rv);
    rv = ksp_object_get_inlock(s, oh, &o);
    if (rv == CKR_OK && !size)
        rv = CKR_ARGUMENTS_BAD;
    if (rv == CKR_OK) {
        CK_ULONG n = o->blob.len + o->sealed.len;
        for (size_t i = 0; i < o->attrs.n; i++)
            n += o->attrs.v[i].ulValueLen + 2 * sizeof(CK_ULONG);
        *size = n;
    }
    ksp_leave();
    return ksp_trace("C_GetObjectSize", rv);
}

CK_RV ksp_api_GetAttributeValue(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE oh, CK_ATTRIBUTE_PTR t,
                                CK_ULONG n)
{
    struct ksp_session *s = NULL;
    struct ksp_object *o = NULL;
    CK_RV rv = ksp_enter_session(h, &s);
    if (rv != CKR_OK)
        return ksp_trace("C_GetAttributeValue", rv);
    rv = ksp_object_get_inlock(s, oh, &o);
    if (rv == CKR_OK && !t && n)
        rv = CKR_ARGUMENTS_BAD;
    if (rv != CKR_OK)
        goto out;
    /* §5.7 C_GetAttributeValue: handle every entry; report one of the errors. */
    for (CK_ULONG i = 0; i < n; i++) {
        CK_ATTRIBUTE *a = &t[i];
        const CK_ATTRIBUTE *v = NULL;
        switch (ksp_schema_access(&o->attrs, a->type)) {
        case KSP_ACCESS_SENSITIVE:
            a->ulValueLen = CK_UNAVAILABLE_INFORMATION;
            rv = CKR_ATTRIBUTE_SENSITIVE;
            continue;
        case KSP_ACCESS_INVALID:
            a->ulValueLen = CK_UNAVAILABLE_INFORMATION;
            rv = CKR_ATTRIBUTE_TYPE_INVALID;
            continue;
        case KSP_ACCESS_OK:
            v = ksp_attrs_find(&o->attrs, a->type);
            break;
        }
        if (!v) {
            a->ulValueLen = CK_UNAVAILABLE_INFORMATION;
            rv = CKR_ATTRIBUTE_TYPE_INVALID;
        } else if (!a->pValue) {
            a->ulValueLen = v->ulValueLen;
        } else if (a->ulValueLen >= v->ulValueLen) {
            if (v->ulValueLen)
                memcpy(a->pValue, v->pValue, v->ulValueLen);
            a->ulValueLen = v->ulValueLen;
        } else {
            a->ulValueLen = CK_UNAVAILABLE_INFORMATION;
            rv = CKR_BUFFER_TOO_SMALL;
        }
    }
out:
    ksp_leave();
    return ksp_trace("C_GetAttributeValue", rv);
}

CK_RV ksp_api_SetAttributeValue(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE oh, CK_ATTRIBUTE_PTR t,
                                CK_ULONG n)
{
    struct ksp_session *s = NULL;
    struct ksp_object *o = NULL;
    struct ksp_attrs tmpl, res;
    struct ksp_schema_ctx ctx = {0};

    ksp_attrs_init(&tmpl);
    ksp_attrs_init(&res);
    CK_RV rv = ksp_enter_session(h, &s);
    if (rv != CKR_OK)
        return ksp_trace("C_SetAttributeValue", rv);
    rv = ksp_object_get_inlock(s, oh, &o);
    if (rv == CKR_OK && !t && n)
        rv = CKR_ARGUMENTS_BAD;
    if (rv == CKR_OK)
        rv = ksp_session_can_write_inlock(s, o->on_token, o->is_private);
    if (rv == CKR_OK)
        rv = ksp_attrs_from_template(t, n, &tmpl);
    if (rv != CKR_OK)
        goto out;
    ctx.so = s->token->login == CKU_SO;
    rv = ksp_schema_apply(KSP_SCHEMA_SET, &ctx, &o->attrs, &tmpl, NULL, &res);
    if (rv != CKR_OK)
        goto out;
    /* Swap in the new list; put the old one back if it cannot be stored. */
    struct ksp_attrs old = o->attrs;
    o->attrs = res;
    ksp_attrs_init(&res);
    rv = ksp_object_store_inlock(o);
    if (rv != CKR_OK) {
        res = o->attrs;
        o->attrs = old;
    } else {
        ksp_attrs_free(&old);
    }
out:
    ksp_attrs_free(&tmpl);
    ksp_attrs_free(&res);
    ksp_leave();
    return ksp_trace("C_SetAttributeValue", rv);
}

CK_RV ksp_api_FindObjectsInit(CK_SESSION_HANDLE h, CK_ATTRIBUTE_PTR t, CK_ULONG n)
{
    struct ksp_session *s = NULL;
    CK_RV rv = ksp_enter_session(h, &s);
    if (rv != CKR_OK)
        return ksp_trace("C_FindObjectsInit", rv);
    if (!t && n)
        rv = CKR_ARGUMENTS_BAD;
    else if (s->find_active)
        rv = CKR_OPERATION_ACTIVE;
    else
        rv = ksp_find_init_inlock(s, t, n);
    ksp_leave();
    return ksp_trace("C_FindObjectsInit", rv);
}

CK_RV ksp_api_FindObjects(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE_PTR out, CK_ULONG max,
                          CK_ULONG_PTR count)
{
    struct ksp_session *s = NULL;
    CK_RV rv = ksp_enter_session(h, &s);
    if (rv != CKR_OK)
        return ksp_trace("C_FindObjects", rv);
    if (!s->find_active) {
        rv = CKR_OPERATION_NOT_INITIALIZED;
    } else if (!count || (!out && max)) {
        rv = CKR_ARGUMENTS_BAD;
    } else {
        CK_ULONG k = 0;
        while (k < max && s->find.pos < s->find.n)
            out[k++] = s->find.handles[s->find.pos++];
        *count = k;
    }
    ksp_leave();
    return ksp_trace("C_FindObjects", rv);
}

CK_RV ksp_api_FindObjectsFinal(CK_SESSION_HANDLE h)
{
    struct ksp_session *s = NULL;
    CK_RV rv = ksp_enter_session(h, &s);
    if (rv != CKR_OK)
        return ksp_trace("C_FindObjectsFinal", rv);
    if (!s->find_active) {
        rv = CKR_OPERATION_NOT_INITIALIZED;
    } else {
        free(s->find.handles);
        memset(&s->find, 0, sizeof(s->find));
        s->find_active = false;
    }
    ksp_leave();
    return ksp_trace("C_FindObjectsFinal", rv);
}
