/*
 * Cryptographic operations of a session (PKCS#11 3.0 §5.8-§5.12): init checks,
 * multi-part buffering, hashing and the padding the backend cannot do, all
 * driven by the mechanism table. Backends only see prepared input.
 *
 * Buffer convention (§5.2): a NULL output asks for the length; a short buffer
 * gives CKR_BUFFER_TOO_SMALL with the length and leaves the operation active.
 * Any other result of a final/single-part call ends the operation.
 */
#include <stdlib.h>
#include <string.h>

#include "core.h"
#include "log.h"
#include "mech.h"
#include "op.h"
#include "rsa_pad.h"
#include "secmem.h"
#include "swcrypto.h"

#define MAX_RAW_INPUT 2048 /* buffered raw input (ECDSA digests, RSA blocks) */

struct ksp_op {
    enum ksp_op_kind kind;
    const struct ksp_mech *mech;
    struct ksp_mparams params;
    CK_OBJECT_HANDLE key;  /* sign/decrypt: private key */
    struct ksp_pubkey pub; /* verify/encrypt: public key */
    size_t key_bits;
    size_t out_len; /* signature / ciphertext length; digest length */
    struct ksp_digest *dg;
    uint8_t *buf; /* raw mechanisms: accumulated input */
    size_t len;
    bool updated; /* a C_*Update was made */
};

void ksp_op_free(struct ksp_op *op)
{
    if (!op)
        return;
    ksp_mparams_free(&op->params);
    ksp_pubkey_free(&op->pub);
    ksp_digest_free(op->dg);
    if (op->buf) {
        ksp_wipe(op->buf, MAX_RAW_INPUT);
        free(op->buf);
    }
    free(op);
}

static void end_op(struct ksp_session *s, enum ksp_op_kind kind)
{
    ksp_op_free(s->ops[kind]);
    s->ops[kind] = NULL;
}

/* The usage attribute each operation needs on its key (§4.8 table of key attrs). */
static CK_ATTRIBUTE_TYPE usage_attr(enum ksp_op_kind kind)
{
    switch (kind) {
    case KSP_OPK_SIGN:
        return CKA_SIGN;
    case KSP_OPK_VERIFY:
        return CKA_VERIFY;
    case KSP_OPK_ENCRYPT:
        return CKA_ENCRYPT;
    case KSP_OPK_DECRYPT:
        return CKA_DECRYPT;
    default:
        return CKA_DERIVE;
    }
}

static CK_FLAGS mech_flag(enum ksp_op_kind kind)
{
    switch (kind) {
    case KSP_OPK_SIGN:
        return CKF_SIGN;
    case KSP_OPK_VERIFY:
        return CKF_VERIFY;
    case KSP_OPK_ENCRYPT:
        return CKF_ENCRYPT;
    case KSP_OPK_DECRYPT:
        return CKF_DECRYPT;
    case KSP_OPK_DIGEST:
        return CKF_DIGEST;
    default:
        return CKF_DERIVE;
    }
}

CK_RV ksp_key_check_inlock(struct ksp_session *s, const CK_MECHANISM *m, CK_OBJECT_HANDLE kh,
                           enum ksp_op_kind kind, const struct ksp_mech **row_out,
                           struct ksp_object **key_out)
{
    const struct ksp_mech *row = ksp_mech_find(m->mechanism);
    struct ksp_object *key = NULL;
    CK_ULONG kt = 0;

    if (!row || !(row->flags & mech_flag(kind)))
        return CKR_MECHANISM_INVALID;
    CK_RV rv = ksp_object_get_inlock(s, kh, &key);
    /* §5.8-5.12 *Init: a handle that is not a key is an invalid key handle. */
    if (rv != CKR_OK || (key->klass != CKO_PUBLIC_KEY && key->klass != CKO_PRIVATE_KEY &&
                         key->klass != CKO_SECRET_KEY))
        return CKR_KEY_HANDLE_INVALID;
    CK_OBJECT_CLASS want =
        (kind == KSP_OPK_SIGN || kind == KSP_OPK_DECRYPT || kind == KSP_OPK_COUNT) ? CKO_PRIVATE_KEY
                                                                                   : CKO_PUBLIC_KEY;
    if (ksp_attrs_ulong(&key->attrs, CKA_KEY_TYPE, &kt) != CKR_OK || key->klass != want ||
        kt != row->key_type)
        return CKR_KEY_TYPE_INCONSISTENT;
    if (!ksp_attrs_bool(&key->attrs, usage_attr(kind), false)) {
        ksp_info("op", "key %lu: %s not permitted by its usage attributes", kh,
                 kind == KSP_OPK_SIGN ? "sign" : "this operation");
        return CKR_KEY_FUNCTION_NOT_PERMITTED;
    }
    /* CKA_ALLOWED_MECHANISMS (§4.8): when present and non-empty, a whitelist. */
    const CK_ATTRIBUTE *am = ksp_attrs_find(&key->attrs, CKA_ALLOWED_MECHANISMS);
    if (am && am->ulValueLen >= sizeof(CK_MECHANISM_TYPE)) {
        const CK_MECHANISM_TYPE *list = am->pValue;
        size_t n = am->ulValueLen / sizeof(CK_MECHANISM_TYPE);
        bool ok = false;
        for (size_t i = 0; i < n && !ok; i++)
            ok = list[i] == m->mechanism;
        if (!ok)
            return CKR_MECHANISM_INVALID;
    }
    *row_out = row;
    *key_out = key;
    return CKR_OK;
}

static size_t rsa_bits(const struct ksp_object *key)
{
    const CK_ATTRIBUTE *n = ksp_attrs_find(&key->attrs, CKA_MODULUS);
    if (!n || !n->ulValueLen)
        return 0;
    const uint8_t *p = n->pValue;
    size_t len = n->ulValueLen, bits = len * 8;
    for (size_t i = 0; i < len && p[i] == 0; i++)
        bits -= 8;
    if (bits) {
        uint8_t top = p[len - bits / 8];
        for (int b = 7; b >= 0 && !(top & (1u << b)); b--)
            bits--;
    }
    return bits;
}

CK_RV ksp_op_init_inlock(struct ksp_session *s, enum ksp_op_kind kind, const CK_MECHANISM *m,
                         CK_OBJECT_HANDLE kh)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    const struct ksp_mech *row = NULL;
    struct ksp_object *key = NULL;
    struct ksp_op *op = NULL;

    if (s->ops[kind])
        return CKR_OPERATION_ACTIVE;
    op = calloc(1, sizeof(*op));
    if (!op)
        return CKR_HOST_MEMORY;
    op->kind = kind;
    if (kind == KSP_OPK_DIGEST) {
        row = ksp_mech_find(m->mechanism);
        if (!row || !(row->flags & CKF_DIGEST)) {
            rv = CKR_MECHANISM_INVALID;
            goto out;
        }
    } else {
        rv = ksp_key_check_inlock(s, m, kh, kind, &row, &key);
        if (rv != CKR_OK)
            goto out;
    }
    op->mech = row;
    rv = ksp_mech_params(row, m, &op->params);
    if (rv != CKR_OK)
        goto out;
    if (row->hash) {
        rv = ksp_digest_new(row->hash, &op->dg);
        if (rv != CKR_OK)
            goto out;
    }
    if (kind == KSP_OPK_DIGEST) {
        op->out_len = ksp_hash_len(row->hash);
    } else {
        op->key = kh;
        if (row->key_type == CKK_RSA) {
            op->key_bits = rsa_bits(key);
            op->out_len = (op->key_bits + 7) / 8;
        } else {
            const CK_ATTRIBUTE *p = ksp_attrs_find(&key->attrs, CKA_EC_PARAMS);
            enum ksp_curve c = KSP_CURVE_NONE;
            if (!p || ksp_ec_params_to_curve(p->pValue, p->ulValueLen, &c) != CKR_OK) {
                rv = CKR_KEY_TYPE_INCONSISTENT;
                goto out;
            }
            op->key_bits = ksp_ec_field_bytes(c) * 8;
            op->out_len = 2 * ksp_ec_field_bytes(c);
        }
        if (op->key_bits < row->min_bits || op->key_bits > row->max_bits) {
            rv = CKR_KEY_SIZE_RANGE;
            goto out;
        }
        if (row->pad == KSP_PAD_PSS && row->key_type == CKK_RSA &&
            op->out_len < ksp_hash_len(op->params.hash) * 2 + 2) {
            rv = CKR_KEY_SIZE_RANGE;
            goto out;
        }
        if (kind == KSP_OPK_VERIFY || kind == KSP_OPK_ENCRYPT) {
            rv = ksp_object_pubkey(key, &op->pub);
            if (rv != CKR_OK)
                goto out;
        } else {
            /* Load (unseal) now, so a missing login fails at *Init. */
            const struct ksp_backend_ops *ops = NULL;
            struct ksp_bkey *bk = NULL;
            rv = ksp_object_bkey_inlock(key, &ops, &bk);
            if (rv != CKR_OK)
                goto out;
        }
    }
    s->ops[kind] = op;
    op = NULL;
    rv = CKR_OK;
out:
    ksp_op_free(op);
    return rv;
}

CK_RV ksp_op_get_inlock(struct ksp_session *s, enum ksp_op_kind kind, struct ksp_op **out)
{
    if (!s->ops[kind])
        return CKR_OPERATION_NOT_INITIALIZED;
    *out = s->ops[kind];
    return CKR_OK;
}

static CK_RV op_update(struct ksp_op *op, const uint8_t *in, size_t len)
{
    if (op->dg)
        return ksp_digest_update(op->dg, in, len);
    if (!op->buf) {
        op->buf = malloc(MAX_RAW_INPUT);
        if (!op->buf)
            return CKR_HOST_MEMORY;
    }
    if (len > MAX_RAW_INPUT - op->len)
        return CKR_DATA_LEN_RANGE;
    if (len) /* in may be NULL for an empty part; memcpy(NULL) is undefined */
        memcpy(op->buf + op->len, in, len);
    op->len += len;
    return CKR_OK;
}

CK_RV ksp_op_update_inlock(struct ksp_session *s, enum ksp_op_kind kind, const uint8_t *in,
                           size_t len)
{
    struct ksp_op *op = s->ops[kind];
    CK_RV rv = op_update(op, in, len);
    op->updated = true;
    if (rv != CKR_OK)
        end_op(s, kind);
    return rv;
}

/* The message representative: the digest for hash mechanisms, else the input. */
static CK_RV message(struct ksp_op *op, uint8_t *md, const uint8_t **msg, size_t *msg_len)
{
    if (op->dg) {
        CK_RV rv = ksp_digest_final(op->dg, md);
        ksp_digest_free(op->dg);
        op->dg = NULL;
        if (rv != CKR_OK)
            return rv;
        *msg = md;
        *msg_len = ksp_hash_len(op->mech->hash);
        return CKR_OK;
    }
    *msg = op->buf ? op->buf : (const uint8_t *)"";
    *msg_len = op->len;
    return CKR_OK;
}

static CK_RV rsa_raw(const struct ksp_backend_ops *ops, struct ksp_bkey *bk, const uint8_t *em,
                     size_t k, uint8_t *out, size_t *out_len)
{
    struct ksp_prim_args a = {.prim = KSP_PRIM_RSA_RAW};
    return ops->private_op(bk, &a, em, k, out, out_len);
}

/* Sign with a loaded key; may run without the library lock (it touches only
 * op, which the caller detached from its session, and the held key). */
static CK_RV sign_with(struct ksp_op *op, const struct ksp_backend_ops *ops, struct ksp_bkey *bk,
                       const uint8_t *msg, size_t mlen, uint8_t *out, size_t *out_len)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    uint8_t t[128 + 64];
    size_t tlen = sizeof(t), k = op->out_len;
    uint8_t *em = NULL;

    struct ksp_prim_args a = {.hash = op->params.hash, .mgf_hash = op->params.mgf_hash};
    switch (op->mech->pad) {
    case KSP_PAD_PKCS1:
        if (op->mech->hash) {
            rv = ksp_digestinfo(op->mech->hash, msg, mlen, t, &tlen);
            if (rv != CKR_OK)
                return rv;
            msg = t;
            mlen = tlen;
        }
        if (mlen + 11 > k)
            return CKR_DATA_LEN_RANGE;
        a.prim = KSP_PRIM_RSA_PKCS1_SIGN;
        rv = ops->private_op(bk, &a, msg, mlen, out, out_len);
        if (rv != CKR_MECHANISM_INVALID)
            return rv;
        /* Synthesise: pad here, raw RSA in the backend. */
        em = malloc(k);
        if (!em)
            return CKR_HOST_MEMORY;
        rv = ksp_emsa_pkcs1(msg, mlen, em, k);
        if (rv == CKR_OK)
            rv = rsa_raw(ops, bk, em, k, out, out_len);
        break;
    case KSP_PAD_PSS:
        if (mlen != ksp_hash_len(op->params.hash))
            return CKR_DATA_LEN_RANGE;
        a.prim = KSP_PRIM_RSA_PSS_SIGN;
        rv = ops->private_op(bk, &a, msg, mlen, out, out_len);
        if (rv != CKR_MECHANISM_INVALID)
            return rv;
        em = malloc(k);
        if (!em)
            return CKR_HOST_MEMORY;
        rv = ksp_emsa_pss(op->params.hash, op->params.mgf_hash, op->params.salt_len, msg, mlen,
                          op->key_bits, em);
        if (rv == CKR_OK)
            rv = rsa_raw(ops, bk, em, k, out, out_len);
        break;
    case KSP_PAD_X509:
        if (mlen > k)
            return CKR_DATA_LEN_RANGE;
        em = calloc(1, k);
        if (!em)
            return CKR_HOST_MEMORY;
        memcpy(em + (k - mlen), msg, mlen);
        /* Raw RSA signs only what looks like a signature encoding, so it can
         * never decrypt (semantics.md §5 recommendation 4). */
        if (!ksp_rsa_raw_sign_input_ok(em, k, op->key_bits)) {
            ksp_warn("op", "CKM_RSA_X_509 sign input is not a PKCS#1/PSS encoding: refused");
            rv = CKR_DATA_INVALID;
            break;
        }
        rv = rsa_raw(ops, bk, em, k, out, out_len);
        break;
    case KSP_PAD_ECDSA:
        a.prim = KSP_PRIM_ECDSA;
        rv = ops->private_op(bk, &a, msg, mlen, out, out_len);
        break;
    default:
        rv = CKR_MECHANISM_INVALID;
    }
    if (em) {
        ksp_wipe(em, k);
        free(em);
    }
    return rv;
}

/* Sign the message representative; out has op->out_len bytes. A
 * thread-safe backend signs without the library lock (core.h, finer
 * locking): op must already be detached from s, and s is not used after. */
static CK_RV do_sign(struct ksp_session *s, struct ksp_op *op, const uint8_t *msg, size_t mlen,
                     uint8_t *out, size_t *out_len)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_object *key = NULL;
    const struct ksp_backend_ops *ops = NULL;
    struct ksp_bkey *bk = NULL;
    struct ksp_keyhold *hold = NULL;

    rv = ksp_object_get_inlock(s, op->key, &key);
    if (rv != CKR_OK)
        return CKR_KEY_HANDLE_INVALID;
    rv = ksp_object_bkey_inlock(key, &ops, &bk);
    if (rv != CKR_OK)
        return rv;
    if (!ops->thread_safe || ksp_object_hold_inlock(key, &hold) != CKR_OK)
        return sign_with(op, ops, bk, msg, mlen, out, out_len);
    ksp_lib_suspend();
    rv = sign_with(op, ops, bk, msg, mlen, out, out_len);
    ksp_lib_resume();
    ksp_object_hold_release_inlock(hold);
    return rv;
}

static CK_RV do_verify(struct ksp_op *op, const uint8_t *msg, size_t mlen, const uint8_t *sig,
                       size_t sig_len)
{
    struct ksp_pubop p = {
        .hash = op->params.hash, .mgf_hash = op->params.mgf_hash, .salt_len = op->params.salt_len};
    uint8_t t[128 + 64];
    size_t tlen = sizeof(t);
    switch (op->mech->pad) {
    case KSP_PAD_PKCS1:
        p.kind = KSP_PUB_RSA_PKCS1;
        if (op->mech->hash) {
            CK_RV rv = ksp_digestinfo(op->mech->hash, msg, mlen, t, &tlen);
            if (rv != CKR_OK)
                return rv;
            msg = t;
            mlen = tlen;
        }
        break;
    case KSP_PAD_PSS:
        if (mlen != ksp_hash_len(op->params.hash))
            return CKR_DATA_LEN_RANGE;
        p.kind = KSP_PUB_RSA_PSS;
        break;
    case KSP_PAD_X509:
        if (mlen > op->out_len)
            return CKR_DATA_LEN_RANGE;
        p.kind = KSP_PUB_RSA_RAW;
        break;
    case KSP_PAD_ECDSA:
        p.kind = KSP_PUB_ECDSA;
        break;
    default:
        return CKR_MECHANISM_INVALID;
    }
    if (sig_len != op->out_len)
        return CKR_SIGNATURE_LEN_RANGE;
    return ksp_pub_verify(&op->pub, &p, msg, mlen, sig, sig_len);
}

CK_RV ksp_op_sign_final_inlock(struct ksp_session *s, uint8_t *out, CK_ULONG *out_len)
{
    struct ksp_op *op = s->ops[KSP_OPK_SIGN];
    uint8_t md[64];
    const uint8_t *msg = NULL;
    size_t mlen = 0, len = op->out_len;
    CK_RV rv = CKR_GENERAL_ERROR;

    if (!out) {
        *out_len = op->out_len;
        return CKR_OK;
    }
    if (*out_len < op->out_len) {
        *out_len = op->out_len;
        return CKR_BUFFER_TOO_SMALL;
    }
    /* The operation ends here whatever the result (§5.12 C_Sign); detached
     * now because do_sign may release the library lock. */
    s->ops[KSP_OPK_SIGN] = NULL;
    rv = message(op, md, &msg, &mlen);
    if (rv == CKR_OK)
        rv = do_sign(s, op, msg, mlen, out, &len);
    if (rv == CKR_OK)
        *out_len = len;
    ksp_wipe(md, sizeof(md));
    ksp_op_free(op);
    return rv;
}

CK_RV ksp_op_verify_final_inlock(struct ksp_session *s, const uint8_t *sig, size_t sig_len)
{
    struct ksp_op *op = s->ops[KSP_OPK_VERIFY];
    uint8_t md[64];
    const uint8_t *msg = NULL;
    size_t mlen = 0;
    CK_RV rv = message(op, md, &msg, &mlen);
    if (rv == CKR_OK)
        rv = do_verify(op, msg, mlen, sig, sig_len);
    end_op(s, KSP_OPK_VERIFY);
    return rv;
}

CK_RV ksp_op_digest_final_inlock(struct ksp_session *s, uint8_t *out, CK_ULONG *out_len)
{
    struct ksp_op *op = s->ops[KSP_OPK_DIGEST];
    if (!out) {
        *out_len = op->out_len;
        return CKR_OK;
    }
    if (*out_len < op->out_len) {
        *out_len = op->out_len;
        return CKR_BUFFER_TOO_SMALL;
    }
    CK_RV rv = ksp_digest_final(op->dg, out);
    if (rv == CKR_OK)
        *out_len = op->out_len;
    end_op(s, KSP_OPK_DIGEST);
    return rv;
}

CK_RV ksp_op_encrypt_final_inlock(struct ksp_session *s, uint8_t *out, CK_ULONG *out_len)
{
    struct ksp_op *op = s->ops[KSP_OPK_ENCRYPT];
    struct ksp_pubop p = {.hash = op->params.hash,
                          .mgf_hash = op->params.mgf_hash,
                          .label = op->params.label,
                          .label_len = op->params.label_len};
    p.kind = op->mech->pad == KSP_PAD_OAEP ? KSP_PUB_RSA_OAEP : KSP_PUB_RSA_PKCS1;
    if (!out) {
        *out_len = op->out_len;
        return CKR_OK;
    }
    if (*out_len < op->out_len) {
        *out_len = op->out_len;
        return CKR_BUFFER_TOO_SMALL;
    }
    size_t len = *out_len;
    CK_RV rv =
        ksp_pub_encrypt(&op->pub, &p, op->buf ? op->buf : (const uint8_t *)"", op->len, out, &len);
    if (rv == CKR_OK)
        *out_len = len;
    end_op(s, KSP_OPK_ENCRYPT);
    return rv;
}

/*
 * Decrypt op->buf (k bytes) into out (k bytes, secret). The backend decodes
 * the padding when it can; when it cannot (CKR_MECHANISM_INVALID: a TPM
 * without the OAEP hash, another MGF1 hash, a label) the core decodes OAEP
 * itself after a raw RSA operation, the way do_sign() pads signatures.
 */
static CK_RV do_decrypt(struct ksp_op *op, const struct ksp_backend_ops *ops, struct ksp_bkey *bk,
                        uint8_t *out, size_t *out_len)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_prim_args a = {.hash = op->params.hash,
                              .mgf_hash = op->params.mgf_hash,
                              .label = op->params.label,
                              .label_len = op->params.label_len};
    size_t k = op->out_len, em_len = k;
    uint8_t *em = NULL;

    switch (op->mech->pad) {
    case KSP_PAD_PKCS1:
        a.prim = KSP_PRIM_RSA_DECRYPT_PKCS1;
        return ops->private_op(bk, &a, op->buf, op->len, out, out_len);
    case KSP_PAD_OAEP:
        a.prim = KSP_PRIM_RSA_DECRYPT_OAEP;
        rv = ops->private_op(bk, &a, op->buf, op->len, out, out_len);
        if (rv != CKR_MECHANISM_INVALID)
            return rv;
        break;
    default:
        return CKR_MECHANISM_INVALID;
    }
    ksp_debug("op",
              "OAEP (hash 0x%lx, MGF1 0x%lx, label %zu bytes) not native in the %s backend: "
              "raw RSA + decoding in the core",
              (unsigned long)op->params.hash, (unsigned long)op->params.mgf_hash,
              op->params.label_len, ops->name);
    em = ksp_secmem_alloc(k);
    if (!em)
        return CKR_HOST_MEMORY;
    rv = rsa_raw(ops, bk, op->buf, k, em, &em_len);
    /* A ciphertext not below the modulus is not a ciphertext (RFC 8017 §5.1.2). */
    if (rv == CKR_DATA_LEN_RANGE)
        rv = CKR_ENCRYPTED_DATA_INVALID;
    if (rv == CKR_OK && em_len != k)
        rv = CKR_DEVICE_ERROR;
    if (rv == CKR_OK)
        rv = ksp_eme_oaep_decode(op->params.hash, op->params.mgf_hash, op->params.label,
                                 op->params.label_len, em, k, out, out_len);
    ksp_secmem_free(em, k);
    return rv;
}

CK_RV ksp_op_decrypt_final_inlock(struct ksp_session *s, uint8_t *out, CK_ULONG *out_len)
{
    struct ksp_op *op = s->ops[KSP_OPK_DECRYPT];
    struct ksp_object *key = NULL;
    const struct ksp_backend_ops *ops = NULL;
    struct ksp_bkey *bk = NULL;
    uint8_t *tmp = NULL;
    size_t len = op->out_len;
    CK_RV rv = CKR_GENERAL_ERROR;

    if (!out) {
        /* §5.2: the length returned may exceed the final length. */
        *out_len = op->out_len;
        return CKR_OK;
    }
    if (op->len != op->out_len) {
        rv = CKR_ENCRYPTED_DATA_LEN_RANGE;
        goto done;
    }
    rv = ksp_object_get_inlock(s, op->key, &key);
    if (rv != CKR_OK) {
        rv = CKR_KEY_HANDLE_INVALID;
        goto done;
    }
    rv = ksp_object_bkey_inlock(key, &ops, &bk);
    if (rv != CKR_OK)
        goto done;
    tmp = ksp_secmem_alloc(op->out_len);
    if (!tmp) {
        rv = CKR_HOST_MEMORY;
        goto done;
    }
    rv = do_decrypt(op, ops, bk, tmp, &len);
    if (rv != CKR_OK)
        goto done;
    if (*out_len < len) {
        *out_len = len;
        ksp_secmem_free(tmp, op->out_len);
        return CKR_BUFFER_TOO_SMALL; /* the operation stays active */
    }
    memcpy(out, tmp, len);
    *out_len = len;
done:
    if (tmp)
        ksp_secmem_free(tmp, op->out_len);
    end_op(s, KSP_OPK_DECRYPT);
    return rv;
}

void ksp_op_end_inlock(struct ksp_session *s, enum ksp_op_kind kind)
{
    end_op(s, kind);
}

bool ksp_op_updated(const struct ksp_op *op)
{
    return op->updated;
}

size_t ksp_op_out_len(const struct ksp_op *op)
{
    return op->out_len;
}

void ksp_op_reset_input(struct ksp_op *op)
{
    op->len = 0;
    op->updated = false;
}
