/*
 * Objects: handles, the per-token cache of the store, session objects,
 * persistence, search, and loading private keys into their backend.
 *
 * Handles are never reused within a process. Token objects are cached per
 * token and reloaded when the store's generation counter moves (another
 * process wrote), matched by store id so handles stay stable.
 * PKCS#11 3.0 §5.6 C_Logout: private session objects are destroyed and
 * handles to private token objects become invalid (they get new handles).
 */
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "log.h"
#include "secmem.h"
#include "swcrypto.h"
#include "twk.h"

/* Users of a loaded key outside the library lock (core.h "finer locking").
 * Changed only with the lock held. */
struct ksp_keyhold {
    struct ksp_bkey *bkey;
    const struct ksp_backend_ops *ops;
    unsigned users;
    bool orphan; /* the object let go of the key: the last user unloads it */
};

CK_RV ksp_object_hold_inlock(struct ksp_object *o, struct ksp_keyhold **out)
{
    if (!o->bkey)
        return CKR_GENERAL_ERROR;
    if (!o->hold) {
        o->hold = calloc(1, sizeof(*o->hold));
        if (!o->hold)
            return CKR_HOST_MEMORY;
        o->hold->bkey = o->bkey;
        o->hold->ops = ksp_backend_ops_by_id(o->backend);
    }
    o->hold->users++;
    *out = o->hold;
    return CKR_OK;
}

void ksp_object_hold_release_inlock(struct ksp_keyhold *h)
{
    if (--h->users == 0 && h->orphan) {
        if (h->ops)
            h->ops->key_unload(h->bkey);
        free(h);
    }
}

/* The object lets go of its loaded key: unloaded now, or by its last user. */
static void drop_bkey(struct ksp_object *o)
{
    struct ksp_keyhold *h = o->hold;
    o->hold = NULL;
    if (h && h->users > 0 && h->bkey == o->bkey) {
        h->orphan = true;
        o->bkey = NULL;
        return;
    }
    free(h);
    if (o->bkey) {
        const struct ksp_backend_ops *ops = ksp_backend_ops_by_id(o->backend);
        if (ops)
            ops->key_unload(o->bkey);
    }
    o->bkey = NULL;
}

void ksp_object_free(struct ksp_object *o)
{
    if (!o)
        return;
    drop_bkey(o);
    ksp_attrs_free(&o->attrs);
    ksp_buf_free(&o->blob);
    ksp_buf_free(&o->sealed);
    free(o);
}

static void fill_flags(struct ksp_object *o)
{
    CK_ULONG klass = CKO_DATA;
    ksp_attrs_ulong(&o->attrs, CKA_CLASS, &klass);
    o->klass = klass;
    o->on_token = ksp_attrs_bool(&o->attrs, CKA_TOKEN, false);
    o->is_private = ksp_attrs_bool(&o->attrs, CKA_PRIVATE, false);
}

static struct ksp_object *find_handle(struct ksp_object *list, CK_OBJECT_HANDLE h)
{
    for (struct ksp_object *o = list; o; o = o->next)
        if (o->handle == h)
            return o;
    return NULL;
}

static struct ksp_object *from_store(struct ksp_token *t, struct ksp_store_obj *so)
{
    struct ksp_object *o = calloc(1, sizeof(*o));
    if (!o)
        return NULL;
    o->handle = ksp_lib.next_object++;
    o->token = t;
    memcpy(o->id, so->id, sizeof(o->id));
    o->attrs = so->attrs;
    ksp_attrs_init(&so->attrs);
    o->backend = so->backend;
    o->blob = so->blob;
    o->sealed = so->sealed;
    so->blob = (struct ksp_buf){0};
    so->sealed = (struct ksp_buf){0};
    fill_flags(o);
    return o;
}

CK_RV ksp_objects_load_inlock(struct ksp_token *t)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_store_obj *objs = NULL;
    size_t n = 0;
    uint64_t gen = 0;

    if (!t->initialized)
        return CKR_OK;
    rv = ksp_store_generation(t->dir, &gen);
    if (rv != CKR_OK)
        return rv;
    if (t->objects_loaded && gen == t->generation)
        return CKR_OK;
    rv = ksp_store_obj_load_all(t->dir, &objs, &n);
    if (rv != CKR_OK)
        return rv;
    ksp_objindex_invalidate_inlock(t);

    struct ksp_object *fresh = NULL, **tail = &fresh;
    for (size_t i = 0; i < n; i++) {
        /* Keep the cached object (handle, loaded key) when its record is unchanged. */
        struct ksp_object **pp = &t->objects, *o = NULL;
        while (*pp && strcmp((*pp)->id, objs[i].id) != 0)
            pp = &(*pp)->next;
        if (*pp) {
            o = *pp;
            *pp = o->next;
            o->next = NULL;
            ksp_attrs_free(&o->attrs);
            o->attrs = objs[i].attrs;
            ksp_attrs_init(&objs[i].attrs);
            fill_flags(o);
        } else {
            o = from_store(t, &objs[i]);
            if (!o) {
                rv = CKR_HOST_MEMORY;
                break;
            }
        }
        *tail = o;
        tail = &o->next;
    }
    /* Whatever remains in the old cache was deleted by someone else. */
    while (t->objects) {
        struct ksp_object *o = t->objects;
        t->objects = o->next;
        ksp_object_free(o);
    }
    t->objects = fresh;
    if (rv == CKR_OK) {
        t->objects_loaded = true;
        t->generation = gen;
    }
    ksp_store_obj_free_all(objs, n);
    return rv;
}

CK_RV ksp_object_get_inlock(struct ksp_session *s, CK_OBJECT_HANDLE h, struct ksp_object **out)
{
    struct ksp_object *o = find_handle(ksp_lib.session_objects, h);
    if (!o) {
        if (!s->token->objects_loaded)
            ksp_objects_load_inlock(s->token);
        o = find_handle(s->token->objects, h);
    }
    if (!o || !ksp_session_can_read_inlock(s, o))
        return CKR_OBJECT_HANDLE_INVALID;
    *out = o;
    return CKR_OK;
}

static CK_RV to_store(const struct ksp_object *o, struct ksp_store_obj *so)
{
    memset(so, 0, sizeof(*so));
    memcpy(so->id, o->id, sizeof(so->id));
    so->attrs = o->attrs;
    so->backend = o->backend;
    so->blob = o->blob;
    so->sealed = o->sealed;
    return CKR_OK;
}

/* Our own write moved the store from gens[0] to gens[1]: if the cache was
 * current before it, it is current after it (we apply the change ourselves),
 * so the next call does not reload every object. */
static void own_write(struct ksp_token *t, const uint64_t gens[2])
{
    if (t->objects_loaded && gens[0] == t->generation && gens[0] != UINT64_MAX)
        t->generation = gens[1];
}

CK_RV ksp_object_store_inlock(struct ksp_object *o)
{
    struct ksp_store_obj so;
    uint64_t gens[2] = {UINT64_MAX, 0};
    if (!o->on_token)
        return CKR_OK;
    ksp_objindex_invalidate_inlock(o->token); /* attributes changed */
    to_store(o, &so);
    CK_RV rv = ksp_store_obj_write_gen(o->token->dir, &so, gens);
    if (rv == CKR_OK)
        own_write(o->token, gens);
    if (rv != CKR_OK)
        ksp_err("object", "token %s: cannot write object %s: %s", o->token->serial, o->id,
                ksp_rv_name(rv));
    return rv;
}

CK_RV ksp_object_add_inlock(struct ksp_session *s, struct ksp_attrs *attrs, CK_ULONG backend,
                            struct ksp_buf *blob, const struct ksp_buf *secret,
                            CK_OBJECT_HANDLE *out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_object *o = calloc(1, sizeof(*o));
    if (!o)
        return CKR_HOST_MEMORY;
    o->token = s->token;
    rv = ksp_store_new_id(o->id);
    if (rv != CKR_OK)
        goto out;
    rv = ksp_attrs_set(attrs, CKA_UNIQUE_ID, o->id, KSP_OBJID_LEN);
    if (rv != CKR_OK)
        goto out;
    o->attrs = *attrs;
    ksp_attrs_init(attrs);
    o->backend = backend;
    if (blob) {
        o->blob = *blob;
        *blob = (struct ksp_buf){0};
    }
    if (secret && secret->len) {
        /* Seal under the TWK, bound to this object's id. */
        const struct ksp_buf *twk = NULL;
        rv = ksp_auth_twk_inlock(s->token, &twk);
        if (rv != CKR_OK)
            goto out;
        rv = ksp_seal(twk, (const uint8_t *)o->id, KSP_OBJID_LEN, secret, &o->sealed);
        if (rv != CKR_OK)
            goto out;
    }
    fill_flags(o);
    if (o->on_token) {
        rv = ksp_objects_load_inlock(s->token);
        if (rv != CKR_OK)
            goto out;
        rv = ksp_object_store_inlock(o);
        if (rv != CKR_OK)
            goto out;
        o->next = s->token->objects;
        s->token->objects = o;
        ksp_objindex_invalidate_inlock(s->token);
    } else {
        o->owner = s;
        o->next = ksp_lib.session_objects;
        ksp_lib.session_objects = o;
    }
    o->handle = ksp_lib.next_object++;
    *out = o->handle;
    o = NULL;
    rv = CKR_OK;
out:
    ksp_object_free(o);
    return rv;
}

static bool unlink_obj(struct ksp_object **list, struct ksp_object *o)
{
    for (struct ksp_object **pp = list; *pp; pp = &(*pp)->next) {
        if (*pp == o) {
            *pp = o->next;
            return true;
        }
    }
    return false;
}

CK_RV ksp_object_destroy_inlock(struct ksp_session *s, struct ksp_object *o)
{
    (void)s;
    if (o->on_token) {
        uint64_t gens[2] = {UINT64_MAX, 0};
        CK_RV rv = ksp_store_obj_delete_gen(o->token->dir, o->id, gens);
        if (rv != CKR_OK)
            return rv;
        own_write(o->token, gens);
        unlink_obj(&o->token->objects, o);
        ksp_objindex_invalidate_inlock(o->token);
    } else {
        unlink_obj(&ksp_lib.session_objects, o);
    }
    ksp_object_free(o);
    return CKR_OK;
}

void ksp_objects_drop_session_inlock(struct ksp_session *s)
{
    struct ksp_object **pp = &ksp_lib.session_objects;
    while (*pp) {
        struct ksp_object *o = *pp;
        if (o->owner == s) {
            *pp = o->next;
            ksp_object_free(o);
        } else {
            pp = &o->next;
        }
    }
}

void ksp_objects_unload_keys_inlock(struct ksp_token *t)
{
    /* Private session objects of this token are destroyed (§5.6 C_Logout). */
    struct ksp_object **pp = &ksp_lib.session_objects;
    while (*pp) {
        struct ksp_object *o = *pp;
        if (o->token == t && o->is_private) {
            *pp = o->next;
            ksp_object_free(o);
        } else {
            pp = &o->next;
        }
    }
    for (struct ksp_object *o = t->objects; o; o = o->next) {
        drop_bkey(o);
        /* Old handles to private objects must stay invalid forever. */
        if (o->is_private)
            o->handle = ksp_lib.next_object++;
    }
}

CK_RV ksp_object_bkey_inlock(struct ksp_object *o, const struct ksp_backend_ops **ops,
                             struct ksp_bkey **out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    const struct ksp_buf *twk = NULL;
    struct ksp_buf secret = {0};
    struct ksp_backend *be = NULL;

    if (o->bkey) {
        *ops = ksp_backend_ops_by_id(o->backend);
        *out = o->bkey;
        return CKR_OK;
    }
    rv = ksp_backend_get_inlock(o->backend, ops, &be);
    if (rv != CKR_OK) {
        ksp_err("object", "object %s: backend %lu is not available", o->id, o->backend);
        goto out;
    }
    rv = ksp_auth_twk_inlock(o->token, &twk);
    if (rv != CKR_OK)
        goto out;
    if (o->sealed.len) {
        rv = ksp_unseal(twk, (const uint8_t *)o->id, KSP_OBJID_LEN, &o->sealed, &secret);
        if (rv != CKR_OK) {
            ksp_err("object", "object %s: sealed key does not open: %s", o->id, ksp_rv_name(rv));
            goto out;
        }
    }
    rv = (*ops)->key_load(be, &o->blob, &secret, &o->bkey);
    if (rv != CKR_OK)
        goto out;
    *out = o->bkey;
out:
    ksp_buf_free(&secret);
    return rv;
}

CK_RV ksp_object_pubkey(const struct ksp_object *o, struct ksp_pubkey *out)
{
    return ksp_object_pubkey_from_attrs(&o->attrs, out);
}

CK_RV ksp_object_pubkey_from_attrs(const struct ksp_attrs *attrs, struct ksp_pubkey *out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    CK_ULONG kt = 0;
    struct ksp_pubkey pk;

    memset(&pk, 0, sizeof(pk));
    rv = ksp_attrs_ulong(attrs, CKA_KEY_TYPE, &kt);
    if (rv != CKR_OK)
        return CKR_KEY_TYPE_INCONSISTENT;
    pk.key_type = kt;
    if (kt == CKK_RSA) {
        const CK_ATTRIBUTE *n = ksp_attrs_find(attrs, CKA_MODULUS);
        const CK_ATTRIBUTE *e = ksp_attrs_find(attrs, CKA_PUBLIC_EXPONENT);
        if (!n || !e || !n->ulValueLen || !e->ulValueLen)
            return CKR_KEY_HANDLE_INVALID;
        rv = ksp_buf_set(&pk.modulus, n->pValue, n->ulValueLen);
        if (rv == CKR_OK)
            rv = ksp_buf_set(&pk.pub_exp, e->pValue, e->ulValueLen);
    } else if (kt == CKK_EC) {
        const CK_ATTRIBUTE *p = ksp_attrs_find(attrs, CKA_EC_PARAMS);
        const CK_ATTRIBUTE *q = ksp_attrs_find(attrs, CKA_EC_POINT);
        if (!p)
            return CKR_KEY_HANDLE_INVALID;
        rv = ksp_ec_params_to_curve(p->pValue, p->ulValueLen, &pk.curve);
        if (rv == CKR_OK && q)
            rv = ksp_ec_point_unwrap(pk.curve, q->pValue, q->ulValueLen, &pk.ec_point);
    } else {
        return CKR_KEY_TYPE_INCONSISTENT;
    }
    if (rv != CKR_OK) {
        ksp_pubkey_free(&pk);
        return rv;
    }
    *out = pk;
    return CKR_OK;
}

void ksp_pubkey_free(struct ksp_pubkey *pk)
{
    ksp_buf_free(&pk->modulus);
    ksp_buf_free(&pk->pub_exp);
    ksp_buf_free(&pk->ec_point);
}

CK_RV ksp_find_init_inlock(struct ksp_session *s, const CK_ATTRIBUTE *tmpl, CK_ULONG n)
{
    size_t cap = 0, cnt = 0;
    CK_OBJECT_HANDLE *hs = NULL;
    struct ksp_object **cand = NULL;
    size_t ncand = 0;
    const CK_ATTRIBUTE *label = NULL;
    CK_RV rv = ksp_objects_load_inlock(s->token);
    if (rv != CKR_OK)
        return rv;
    for (CK_ULONG i = 0; i < n && !label; i++)
        if (tmpl[i].type == CKA_LABEL)
            label = &tmpl[i];
    if (label) {
        /* Token objects by label through the index; session objects below. */
        rv = ksp_objindex_lookup_inlock(s->token, label, &cand, &ncand);
        if (rv != CKR_OK)
            return rv;
    }
    struct ksp_object *lists[2] = {label ? NULL : s->token->objects, ksp_lib.session_objects};
    for (int l = -1; l < 2; l++) {
        size_t ci = 0;
        for (struct ksp_object *o = l < 0 ? (ncand ? cand[0] : NULL) : lists[l]; o;
             o = l < 0 ? (++ci < ncand ? cand[ci] : NULL) : o->next) {
            if (!ksp_session_can_read_inlock(s, o) || !ksp_attrs_match(&o->attrs, tmpl, n))
                continue;
            if (cnt == cap) {
                cap = cap ? cap * 2 : 16;
                CK_OBJECT_HANDLE *nh = realloc(hs, cap * sizeof(*nh));
                if (!nh) {
                    free(hs);
                    free(cand);
                    return CKR_HOST_MEMORY;
                }
                hs = nh;
            }
            hs[cnt++] = o->handle;
        }
    }
    free(cand);
    free(s->find.handles);
    s->find.handles = hs;
    s->find.n = cnt;
    s->find.pos = 0;
    s->find_active = true;
    return CKR_OK;
}
