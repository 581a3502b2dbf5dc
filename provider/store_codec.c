/*
 * Store record encoding (DESIGN.md §5). Every file is one record:
 *
 *   magic[4] | version u16 | reserved u16 (0) | body_len u64 | body | sha256[32]
 *
 * Integers are little-endian and fixed-width; CK_ULONG values are stored as
 * u64. The SHA-256 covers header and body, so torn or bit-flipped files are
 * detected. Object body:
 *
 *   id[32] (lowercase hex) | backend u64 | nattrs u32 |
 *   nattrs * (type u64 | len u64 | value[len]) |
 *   blob_len u64 | blob | sealed_len u64 | sealed
 *
 * Metadata body (fixed size): label[33] (NUL-terminated, zero-padded) |
 * serial[16] | flags u32 | user_fails u32 | so_fails u32 | created u64 |
 * so_twk | user_twk (each kdf u32 | iterations u32 | salt16 | nonce12 | ct32 |
 * tag16) | pinless_twk[32] | so_tpm | user_tpm | pinless_tpm (each len u16 |
 * blob[1024] zero-padded | salt16).
 *
 * Decoders treat input as hostile: every length is checked against what is
 * left, and anything inconsistent is CKR_DATA_INVALID.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "ossl_ctx.h"
#include "secmem.h"
#include "store.h"
#include "store_codec.h"

#define VERSION    2u
#define HDR_LEN    16u
#define SUM_LEN    32u
#define MAX_ATTRS  1024u
#define WRAPPED_SZ 84u
#define TPMSEAL_SZ (2u + KSP_TPM_SEALED_MAX + 16u)
#define META_BODY  (33u + KSP_SERIAL_LEN + 12u + 8u + 2u * WRAPPED_SZ + 32u + 3u * TPMSEAL_SZ)
#define META_FLAGS (KSP_META_USER_PIN_SET | KSP_META_PINLESS | KSP_META_TPM)

static const uint8_t MAGIC_OBJ[4] = {'K', 'S', 'P', 'O'};
static const uint8_t MAGIC_META[4] = {'K', 'S', 'P', 'M'};
static const uint8_t MAGIC_GEN[4] = {'K', 'S', 'P', 'G'};

/* ---- little-endian writer over a buffer sized in advance ---- */

struct wr {
    uint8_t *p;
};

static void put_bytes(struct wr *w, const void *v, size_t n)
{
    if (n)
        memcpy(w->p, v, n);
    w->p += n;
}

static void put_u16(struct wr *w, uint16_t v)
{
    for (int i = 0; i < 2; i++)
        *w->p++ = (uint8_t)(v >> (8 * i));
}

static void put_u32(struct wr *w, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        *w->p++ = (uint8_t)(v >> (8 * i));
}

static void put_u64(struct wr *w, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        *w->p++ = (uint8_t)(v >> (8 * i));
}

/* ---- bounds-checked reader ---- */

struct rd {
    const uint8_t *p;
    size_t left;
};

static bool get_bytes(struct rd *r, size_t n, const uint8_t **out)
{
    if (n > r->left)
        return false;
    *out = r->p;
    r->p += n;
    r->left -= n;
    return true;
}

static bool get_u16(struct rd *r, uint16_t *v)
{
    const uint8_t *b;
    if (!get_bytes(r, 2, &b))
        return false;
    *v = (uint16_t)(b[0] | (b[1] << 8));
    return true;
}

static bool get_u32(struct rd *r, uint32_t *v)
{
    const uint8_t *b;
    if (!get_bytes(r, 4, &b))
        return false;
    *v = 0;
    for (int i = 3; i >= 0; i--)
        *v = (*v << 8) | b[i];
    return true;
}

static bool get_u64(struct rd *r, uint64_t *v)
{
    const uint8_t *b;
    if (!get_bytes(r, 8, &b))
        return false;
    *v = 0;
    for (int i = 7; i >= 0; i--)
        *v = (*v << 8) | b[i];
    return true;
}

/* ---- framing ---- */

static CK_RV sha256(const uint8_t *in, size_t len, uint8_t out[SUM_LEN])
{
    CK_RV rv = CKR_GENERAL_ERROR;
    OSSL_LIB_CTX *ctx = ksp_ossl_ctx();
    EVP_MD *md = NULL;
    unsigned int olen = 0;
    if (!ctx)
        goto out;
    md = EVP_MD_fetch(ctx, "SHA256", NULL);
    if (!md)
        goto out;
    if (!EVP_Digest(in, len, out, &olen, md, NULL) || olen != SUM_LEN)
        goto out;
    rv = CKR_OK;
out:
    EVP_MD_free(md);
    return rv;
}

/* Allocate a record of body_len bytes; the writer is positioned at the body. */
static CK_RV frame_begin(const uint8_t magic[4], size_t body_len, uint8_t **buf, struct wr *w)
{
    if (body_len > KSP_STORE_MAX_FILE - HDR_LEN - SUM_LEN)
        return CKR_DEVICE_MEMORY; /* the token cannot hold an object this big */
    uint8_t *b = malloc(HDR_LEN + body_len + SUM_LEN);
    if (!b)
        return CKR_HOST_MEMORY;
    w->p = b;
    put_bytes(w, magic, 4);
    put_u16(w, VERSION);
    put_u16(w, 0);
    put_u64(w, body_len);
    *buf = b;
    return CKR_OK;
}

static CK_RV frame_end(uint8_t *buf, size_t body_len)
{
    return sha256(buf, HDR_LEN + body_len, buf + HDR_LEN + body_len);
}

/* Check the frame and return a reader over the body. */
static CK_RV frame_open(const uint8_t magic[4], const uint8_t *in, size_t len, struct rd *body)
{
    CK_RV rv = CKR_DATA_INVALID;
    struct rd r = {in, len};
    const uint8_t *m;
    uint16_t version, reserved;
    uint64_t blen;
    uint8_t sum[SUM_LEN];
    if (!in || len < HDR_LEN + SUM_LEN || len > KSP_STORE_MAX_FILE)
        return CKR_DATA_INVALID;
    if (!get_bytes(&r, 4, &m) || memcmp(m, magic, 4) != 0)
        return CKR_DATA_INVALID;
    if (!get_u16(&r, &version) || version != VERSION || !get_u16(&r, &reserved) || reserved)
        return CKR_DATA_INVALID;
    /* Exact length: no truncation, no trailing garbage. */
    if (!get_u64(&r, &blen) || blen != len - HDR_LEN - SUM_LEN)
        return CKR_DATA_INVALID;
    rv = sha256(in, HDR_LEN + (size_t)blen, sum);
    if (rv != CKR_OK)
        return rv;
    if (ksp_memeq_ct(sum, in + HDR_LEN + blen, SUM_LEN) != 0)
        return CKR_DATA_INVALID;
    body->p = in + HDR_LEN;
    body->left = (size_t)blen;
    return CKR_OK;
}

/* CK_ULONG is 32 bits on some ABIs; the file always stores u64. */
static bool fits_ulong(uint64_t v)
{
    return v == (uint64_t)(CK_ULONG)v;
}

static bool is_hex_lower(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* ---- objects ---- */

void ksp_store_obj_free(struct ksp_store_obj *o)
{
    if (!o)
        return;
    ksp_attrs_free(&o->attrs);
    ksp_buf_free(&o->blob);
    ksp_buf_free(&o->sealed);
    memset(o, 0, sizeof(*o));
}

CK_RV ksp_store_obj_encode(const struct ksp_store_obj *o, uint8_t **out, size_t *out_len)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    uint8_t *buf = NULL;
    struct wr w;
    size_t body = KSP_OBJID_LEN + 8 + 4;

    if (!o || !out || !out_len)
        return CKR_ARGUMENTS_BAD;
    if (strlen(o->id) != KSP_OBJID_LEN || !is_hex_lower(o->id, KSP_OBJID_LEN))
        return CKR_ARGUMENTS_BAD;
    if (o->attrs.n > MAX_ATTRS)
        return CKR_DEVICE_MEMORY;
    if ((o->blob.len && !o->blob.p) || (o->sealed.len && !o->sealed.p))
        return CKR_ARGUMENTS_BAD;
    for (size_t i = 0; i < o->attrs.n; i++) {
        const CK_ATTRIBUTE *a = &o->attrs.v[i];
        if ((a->ulValueLen && !a->pValue) || a->ulValueLen > KSP_STORE_MAX_FILE)
            return CKR_ARGUMENTS_BAD;
        /* The decoder rejects duplicates, so never write one. */
        for (size_t j = 0; j < i; j++)
            if (o->attrs.v[j].type == a->type)
                return CKR_ARGUMENTS_BAD;
        body += 16 + a->ulValueLen;
        if (body > KSP_STORE_MAX_FILE)
            return CKR_DEVICE_MEMORY;
    }
    if (o->blob.len > KSP_STORE_MAX_FILE || o->sealed.len > KSP_STORE_MAX_FILE)
        return CKR_DEVICE_MEMORY;
    body += 8 + o->blob.len + 8 + o->sealed.len;

    rv = frame_begin(MAGIC_OBJ, body, &buf, &w);
    if (rv != CKR_OK)
        goto out;
    put_bytes(&w, o->id, KSP_OBJID_LEN);
    put_u64(&w, o->backend);
    put_u32(&w, (uint32_t)o->attrs.n);
    for (size_t i = 0; i < o->attrs.n; i++) {
        const CK_ATTRIBUTE *a = &o->attrs.v[i];
        put_u64(&w, a->type);
        put_u64(&w, a->ulValueLen);
        put_bytes(&w, a->pValue, a->ulValueLen);
    }
    put_u64(&w, o->blob.len);
    put_bytes(&w, o->blob.p, o->blob.len);
    put_u64(&w, o->sealed.len);
    put_bytes(&w, o->sealed.p, o->sealed.len);
    rv = frame_end(buf, body);
    if (rv != CKR_OK)
        goto out;
    *out = buf;
    *out_len = HDR_LEN + body + SUM_LEN;
    buf = NULL;
out:
    free(buf);
    return rv;
}

/* A u64 length followed by that many bytes, copied into a secret buffer. */
static CK_RV get_buf(struct rd *r, struct ksp_buf *b)
{
    uint64_t len;
    const uint8_t *p;
    if (!get_u64(r, &len) || len > r->left || !get_bytes(r, (size_t)len, &p))
        return CKR_DATA_INVALID;
    return ksp_buf_set(b, p, (size_t)len);
}

CK_RV ksp_store_obj_decode(const uint8_t *in, size_t len, struct ksp_store_obj *out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_store_obj o;
    struct rd r;
    const uint8_t *id;
    uint64_t backend;
    uint32_t nattrs;

    memset(&o, 0, sizeof(o));
    ksp_attrs_init(&o.attrs);
    if (!out)
        return CKR_ARGUMENTS_BAD;
    rv = frame_open(MAGIC_OBJ, in, len, &r);
    if (rv != CKR_OK)
        goto out;
    rv = CKR_DATA_INVALID;
    if (!get_bytes(&r, KSP_OBJID_LEN, &id) || !is_hex_lower((const char *)id, KSP_OBJID_LEN))
        goto out;
    memcpy(o.id, id, KSP_OBJID_LEN);
    o.id[KSP_OBJID_LEN] = '\0';
    if (!get_u64(&r, &backend) || !fits_ulong(backend))
        goto out;
    o.backend = (CK_ULONG)backend;
    /* Each attribute takes at least 16 bytes: a count beyond that is a lie. */
    if (!get_u32(&r, &nattrs) || nattrs > MAX_ATTRS || nattrs > r.left / 16)
        goto out;
    for (uint32_t i = 0; i < nattrs; i++) {
        uint64_t type, alen;
        const uint8_t *val;
        rv = CKR_DATA_INVALID;
        if (!get_u64(&r, &type) || !get_u64(&r, &alen) || !fits_ulong(type))
            goto out;
        if (alen > r.left || !get_bytes(&r, (size_t)alen, &val))
            goto out;
        if (ksp_attrs_find(&o.attrs, (CK_ATTRIBUTE_TYPE)type))
            goto out;
        rv = ksp_attrs_set(&o.attrs, (CK_ATTRIBUTE_TYPE)type, val, (CK_ULONG)alen);
        if (rv != CKR_OK)
            goto out;
    }
    rv = get_buf(&r, &o.blob);
    if (rv != CKR_OK)
        goto out;
    rv = get_buf(&r, &o.sealed);
    if (rv != CKR_OK)
        goto out;
    if (r.left != 0) {
        rv = CKR_DATA_INVALID;
        goto out;
    }
    *out = o;
    memset(&o, 0, sizeof(o));
    rv = CKR_OK;
out:
    ksp_store_obj_free(&o);
    return rv;
}

/* ---- token metadata ---- */

static void put_wrapped(struct wr *w, const struct ksp_wrapped *k)
{
    put_u32(w, k->kdf);
    put_u32(w, k->iterations);
    put_bytes(w, k->salt, sizeof(k->salt));
    put_bytes(w, k->nonce, sizeof(k->nonce));
    put_bytes(w, k->ct, sizeof(k->ct));
    put_bytes(w, k->tag, sizeof(k->tag));
}

static bool get_wrapped(struct rd *r, struct ksp_wrapped *k)
{
    const uint8_t *b;
    if (!get_u32(r, &k->kdf) || !get_u32(r, &k->iterations))
        return false;
    if (!get_bytes(r, sizeof(k->salt), &b))
        return false;
    memcpy(k->salt, b, sizeof(k->salt));
    if (!get_bytes(r, sizeof(k->nonce), &b))
        return false;
    memcpy(k->nonce, b, sizeof(k->nonce));
    if (!get_bytes(r, sizeof(k->ct), &b))
        return false;
    memcpy(k->ct, b, sizeof(k->ct));
    if (!get_bytes(r, sizeof(k->tag), &b))
        return false;
    memcpy(k->tag, b, sizeof(k->tag));
    return true;
}

static void put_tpm_sealed(struct wr *w, const struct ksp_tpm_sealed *t)
{
    put_u16(w, t->len);
    put_bytes(w, t->blob, sizeof(t->blob));
    put_bytes(w, t->salt, sizeof(t->salt));
}

static bool get_tpm_sealed(struct rd *r, struct ksp_tpm_sealed *t)
{
    const uint8_t *b;
    if (!get_u16(r, &t->len) || t->len > sizeof(t->blob))
        return false;
    if (!get_bytes(r, sizeof(t->blob), &b))
        return false;
    memcpy(t->blob, b, sizeof(t->blob));
    /* Canonical form: zero padding after the blob. */
    for (size_t i = t->len; i < sizeof(t->blob); i++)
        if (t->blob[i])
            return false;
    if (!get_bytes(r, sizeof(t->salt), &b))
        return false;
    memcpy(t->salt, b, sizeof(t->salt));
    return true;
}

/* Output holds the PIN-less TWK when set: callers wipe it before free(). */
CK_RV ksp_store_meta_encode(const struct ksp_token_meta *m, uint8_t **out, size_t *out_len)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    uint8_t *buf = NULL;
    struct wr w;
    char label[33];

    if (!m || !out || !out_len)
        return CKR_ARGUMENTS_BAD;
    size_t llen = strnlen(m->label, sizeof(m->label));
    if (llen >= sizeof(m->label) || strnlen(m->serial, sizeof(m->serial)) != KSP_SERIAL_LEN ||
        !is_hex_lower(m->serial, KSP_SERIAL_LEN) || (m->flags & ~META_FLAGS))
        return CKR_ARGUMENTS_BAD;
    memset(label, 0, sizeof(label));
    memcpy(label, m->label, llen);

    rv = frame_begin(MAGIC_META, META_BODY, &buf, &w);
    if (rv != CKR_OK)
        goto out;
    put_bytes(&w, label, sizeof(label));
    put_bytes(&w, m->serial, KSP_SERIAL_LEN);
    put_u32(&w, m->flags);
    put_u32(&w, m->user_fails);
    put_u32(&w, m->so_fails);
    put_u64(&w, m->created);
    put_wrapped(&w, &m->so_twk);
    put_wrapped(&w, &m->user_twk);
    put_bytes(&w, m->pinless_twk, sizeof(m->pinless_twk));
    put_tpm_sealed(&w, &m->so_tpm);
    put_tpm_sealed(&w, &m->user_tpm);
    put_tpm_sealed(&w, &m->pinless_tpm);
    rv = frame_end(buf, META_BODY);
    if (rv != CKR_OK)
        goto out;
    *out = buf;
    *out_len = HDR_LEN + META_BODY + SUM_LEN;
    buf = NULL;
out:
    if (buf) {
        ksp_wipe(buf, HDR_LEN + META_BODY + SUM_LEN);
        free(buf);
    }
    return rv;
}

CK_RV ksp_store_meta_decode(const uint8_t *in, size_t len, struct ksp_token_meta *out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_token_meta m;
    struct rd r;
    const uint8_t *b;

    memset(&m, 0, sizeof(m));
    if (!out)
        return CKR_ARGUMENTS_BAD;
    rv = frame_open(MAGIC_META, in, len, &r);
    if (rv != CKR_OK)
        goto out;
    rv = CKR_DATA_INVALID;
    if (r.left != META_BODY)
        goto out;
    /* Label: NUL within 33 bytes and zero padding after it (canonical form). */
    if (!get_bytes(&r, sizeof(m.label), &b))
        goto out;
    size_t llen = strnlen((const char *)b, sizeof(m.label));
    if (llen >= sizeof(m.label))
        goto out;
    for (size_t i = llen; i < sizeof(m.label); i++)
        if (b[i])
            goto out;
    memcpy(m.label, b, sizeof(m.label));
    if (!get_bytes(&r, KSP_SERIAL_LEN, &b) || !is_hex_lower((const char *)b, KSP_SERIAL_LEN))
        goto out;
    memcpy(m.serial, b, KSP_SERIAL_LEN);
    m.serial[KSP_SERIAL_LEN] = '\0';
    if (!get_u32(&r, &m.flags) || !get_u32(&r, &m.user_fails) || !get_u32(&r, &m.so_fails) ||
        !get_u64(&r, &m.created))
        goto out;
    /* Unknown flags mean a newer writer: a format change must bump VERSION. */
    if (m.flags & ~META_FLAGS)
        goto out;
    if (!get_wrapped(&r, &m.so_twk) || !get_wrapped(&r, &m.user_twk))
        goto out;
    if (!get_bytes(&r, sizeof(m.pinless_twk), &b))
        goto out;
    memcpy(m.pinless_twk, b, sizeof(m.pinless_twk));
    if (!get_tpm_sealed(&r, &m.so_tpm) || !get_tpm_sealed(&r, &m.user_tpm) ||
        !get_tpm_sealed(&r, &m.pinless_tpm))
        goto out;
    if (r.left != 0)
        goto out;
    memcpy(out, &m, sizeof(m)); /* padding too: callers may compare bytes */
    rv = CKR_OK;
out:
    ksp_wipe(&m, sizeof(m));
    return rv;
}

/* ---- generation counter ---- */

CK_RV ksp_store_gen_encode(uint64_t gen, uint8_t out[KSP_STORE_GEN_LEN])
{
    CK_RV rv = CKR_GENERAL_ERROR;
    uint8_t *buf = NULL;
    struct wr w;
    rv = frame_begin(MAGIC_GEN, 8, &buf, &w);
    if (rv != CKR_OK)
        return rv;
    put_u64(&w, gen);
    rv = frame_end(buf, 8);
    if (rv == CKR_OK)
        memcpy(out, buf, KSP_STORE_GEN_LEN);
    free(buf);
    return rv;
}

CK_RV ksp_store_gen_decode(const uint8_t *in, size_t len, uint64_t *out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct rd r;
    uint64_t gen;
    rv = frame_open(MAGIC_GEN, in, len, &r);
    if (rv != CKR_OK)
        return rv;
    if (!get_u64(&r, &gen) || r.left != 0)
        return CKR_DATA_INVALID;
    *out = gen;
    return CKR_OK;
}
