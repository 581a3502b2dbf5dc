/*
 * PKCS#11 3.0 §5.8-§5.15: encryption, decryption, digests, signatures,
 * key management and random numbers. Argument and state checks here; the work
 * is in op.c and keys.c.
 */
#include "api.h"
#include "core.h"
#include "keys.h"
#include "op.h"
#include "swcrypto.h"

static CK_RV op_init(const char *fn, CK_SESSION_HANDLE h, enum ksp_op_kind kind, CK_MECHANISM_PTR m,
                     CK_OBJECT_HANDLE k)
{
    struct ksp_session *s = NULL;
    CK_RV rv = ksp_enter_session(h, &s);
    if (rv != CKR_OK)
        return ksp_trace(fn, rv);
    rv = m ? ksp_op_init_inlock(s, kind, m, k) : CKR_ARGUMENTS_BAD;
    ksp_leave();
    return ksp_trace(fn, rv);
}

/* Look up the session and its active operation; on CKR_OK the lock is held. */
static CK_RV op_enter(CK_SESSION_HANDLE h, enum ksp_op_kind kind, struct ksp_session **s,
                      struct ksp_op **op)
{
    CK_RV rv = ksp_enter_session(h, s);
    if (rv != CKR_OK)
        return rv;
    rv = ksp_op_get_inlock(*s, kind, op);
    if (rv != CKR_OK)
        ksp_leave();
    return rv;
}

typedef CK_RV (*final_fn)(struct ksp_session *, uint8_t *, CK_ULONG *);

/*
 * Single-part call with output (C_Sign, C_Encrypt, C_Decrypt, C_Digest).
 * known_len: the output length is known before doing the work, so a length
 * query or a short buffer is answered without consuming the input (§5.2).
 */
static CK_RV single(const char *fn, CK_SESSION_HANDLE h, enum ksp_op_kind kind, bool known_len,
                    final_fn fin, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out,
                    CK_ULONG_PTR out_len)
{
    struct ksp_session *s = NULL;
    struct ksp_op *op = NULL;
    CK_RV rv = op_enter(h, kind, &s, &op);
    if (rv != CKR_OK)
        return ksp_trace(fn, rv);
    if ((!in && in_len) || !out_len) {
        ksp_op_end_inlock(s, kind);
        rv = CKR_ARGUMENTS_BAD;
        goto out;
    }
    if (ksp_op_updated(op)) {
        /* A multi-part operation is under way; finish it with *Final. */
        rv = CKR_OPERATION_ACTIVE;
        goto out;
    }
    if (known_len && (!out || *out_len < ksp_op_out_len(op))) {
        rv = out ? CKR_BUFFER_TOO_SMALL : CKR_OK;
        *out_len = ksp_op_out_len(op);
        goto out;
    }
    ksp_op_reset_input(op);
    rv = ksp_op_update_inlock(s, kind, in, in_len);
    if (rv == CKR_OK)
        rv = fin(s, out, out_len);
    /* A short decrypt buffer leaves the operation active (§5.2); reset the
     * input so the retry starts over. */
    if (rv == CKR_BUFFER_TOO_SMALL || (rv == CKR_OK && !out))
        ksp_op_reset_input(op);
out:
    ksp_leave();
    return ksp_trace(fn, rv);
}

static CK_RV update(const char *fn, CK_SESSION_HANDLE h, enum ksp_op_kind kind, CK_BYTE_PTR in,
                    CK_ULONG in_len)
{
    struct ksp_session *s = NULL;
    struct ksp_op *op = NULL;
    CK_RV rv = op_enter(h, kind, &s, &op);
    if (rv != CKR_OK)
        return ksp_trace(fn, rv);
    if (!in && in_len) {
        ksp_op_end_inlock(s, kind);
        rv = CKR_ARGUMENTS_BAD;
    } else {
        rv = ksp_op_update_inlock(s, kind, in, in_len);
    }
    ksp_leave();
    return ksp_trace(fn, rv);
}

static CK_RV final(const char *fn, CK_SESSION_HANDLE h, enum ksp_op_kind kind, final_fn fin,
                   CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
    struct ksp_session *s = NULL;
    struct ksp_op *op = NULL;
    CK_RV rv = op_enter(h, kind, &s, &op);
    if (rv != CKR_OK)
        return ksp_trace(fn, rv);
    if (!out_len) {
        ksp_op_end_inlock(s, kind);
        rv = CKR_ARGUMENTS_BAD;
    } else {
        rv = fin(s, out, out_len);
    }
    ksp_leave();
    return ksp_trace(fn, rv);
}

/* Multi-part encrypt/decrypt buffer their input (RSA is one block): no output
 * until *Final. */
static CK_RV update_out(const char *fn, CK_SESSION_HANDLE h, enum ksp_op_kind kind, CK_BYTE_PTR in,
                        CK_ULONG in_len, CK_ULONG_PTR out_len)
{
    if (!out_len)
        return ksp_trace(fn, CKR_ARGUMENTS_BAD);
    CK_RV rv = update(fn, h, kind, in, in_len);
    if (rv == CKR_OK)
        *out_len = 0;
    return rv;
}

CK_RV ksp_api_EncryptInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
    return op_init("C_EncryptInit", h, KSP_OPK_ENCRYPT, m, k);
}

CK_RV ksp_api_Encrypt(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out,
                      CK_ULONG_PTR out_len)
{
    return single("C_Encrypt", h, KSP_OPK_ENCRYPT, true, ksp_op_encrypt_final_inlock, in, in_len,
                  out, out_len);
}

CK_RV ksp_api_EncryptUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out,
                            CK_ULONG_PTR out_len)
{
    (void)out;
    return update_out("C_EncryptUpdate", h, KSP_OPK_ENCRYPT, in, in_len, out_len);
}

CK_RV ksp_api_EncryptFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
    return final("C_EncryptFinal", h, KSP_OPK_ENCRYPT, ksp_op_encrypt_final_inlock, out, out_len);
}

CK_RV ksp_api_DecryptInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
    return op_init("C_DecryptInit", h, KSP_OPK_DECRYPT, m, k);
}

CK_RV ksp_api_Decrypt(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out,
                      CK_ULONG_PTR out_len)
{
    return single("C_Decrypt", h, KSP_OPK_DECRYPT, false, ksp_op_decrypt_final_inlock, in, in_len,
                  out, out_len);
}

CK_RV ksp_api_DecryptUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out,
                            CK_ULONG_PTR out_len)
{
    (void)out;
    return update_out("C_DecryptUpdate", h, KSP_OPK_DECRYPT, in, in_len, out_len);
}

CK_RV ksp_api_DecryptFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
    return final("C_DecryptFinal", h, KSP_OPK_DECRYPT, ksp_op_decrypt_final_inlock, out, out_len);
}

CK_RV ksp_api_DigestInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m)
{
    return op_init("C_DigestInit", h, KSP_OPK_DIGEST, m, CK_INVALID_HANDLE);
}

CK_RV ksp_api_Digest(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR out,
                     CK_ULONG_PTR out_len)
{
    return single("C_Digest", h, KSP_OPK_DIGEST, true, ksp_op_digest_final_inlock, in, in_len, out,
                  out_len);
}

CK_RV ksp_api_DigestUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len)
{
    return update("C_DigestUpdate", h, KSP_OPK_DIGEST, in, in_len);
}

CK_RV ksp_api_DigestKey(CK_SESSION_HANDLE h, CK_OBJECT_HANDLE k)
{
    (void)k;
    struct ksp_session *s = NULL;
    struct ksp_op *op = NULL;
    CK_RV rv = op_enter(h, KSP_OPK_DIGEST, &s, &op);
    if (rv != CKR_OK)
        return ksp_trace("C_DigestKey", rv);
    ksp_leave();
    return ksp_trace("C_DigestKey", CKR_FUNCTION_NOT_SUPPORTED);
}

CK_RV ksp_api_DigestFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
    return final("C_DigestFinal", h, KSP_OPK_DIGEST, ksp_op_digest_final_inlock, out, out_len);
}

CK_RV ksp_api_SignInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
    return op_init("C_SignInit", h, KSP_OPK_SIGN, m, k);
}

CK_RV ksp_api_Sign(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR sig,
                   CK_ULONG_PTR sig_len)
{
    return single("C_Sign", h, KSP_OPK_SIGN, true, ksp_op_sign_final_inlock, in, in_len, sig,
                  sig_len);
}

CK_RV ksp_api_SignUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len)
{
    return update("C_SignUpdate", h, KSP_OPK_SIGN, in, in_len);
}

CK_RV ksp_api_SignFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR sig, CK_ULONG_PTR sig_len)
{
    return final("C_SignFinal", h, KSP_OPK_SIGN, ksp_op_sign_final_inlock, sig, sig_len);
}

CK_RV ksp_api_VerifyInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
    return op_init("C_VerifyInit", h, KSP_OPK_VERIFY, m, k);
}

CK_RV ksp_api_Verify(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR sig,
                     CK_ULONG sig_len)
{
    struct ksp_session *s = NULL;
    struct ksp_op *op = NULL;
    CK_RV rv = op_enter(h, KSP_OPK_VERIFY, &s, &op);
    if (rv != CKR_OK)
        return ksp_trace("C_Verify", rv);
    if ((!in && in_len) || (!sig && sig_len)) {
        ksp_op_end_inlock(s, KSP_OPK_VERIFY);
        rv = CKR_ARGUMENTS_BAD;
    } else if (ksp_op_updated(op)) {
        rv = CKR_OPERATION_ACTIVE;
    } else {
        rv = ksp_op_update_inlock(s, KSP_OPK_VERIFY, in, in_len);
        if (rv == CKR_OK)
            rv = ksp_op_verify_final_inlock(s, sig, sig_len);
    }
    ksp_leave();
    return ksp_trace("C_Verify", rv);
}

CK_RV ksp_api_VerifyUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len)
{
    return update("C_VerifyUpdate", h, KSP_OPK_VERIFY, in, in_len);
}

CK_RV ksp_api_VerifyFinal(CK_SESSION_HANDLE h, CK_BYTE_PTR sig, CK_ULONG sig_len)
{
    struct ksp_session *s = NULL;
    struct ksp_op *op = NULL;
    CK_RV rv = op_enter(h, KSP_OPK_VERIFY, &s, &op);
    if (rv != CKR_OK)
        return ksp_trace("C_VerifyFinal", rv);
    if (!sig && sig_len) {
        ksp_op_end_inlock(s, KSP_OPK_VERIFY);
        rv = CKR_ARGUMENTS_BAD;
    } else {
        rv = ksp_op_verify_final_inlock(s, sig, sig_len);
    }
    ksp_leave();
    return ksp_trace("C_VerifyFinal", rv);
}

/* Functions ksp11 does not offer: they still check the library and session
 * so that callers get the most precise error first. */
static CK_RV unsupported(const char *fn, CK_SESSION_HANDLE h)
{
    struct ksp_session *s = NULL;
    CK_RV rv = ksp_enter_session(h, &s);
    if (rv != CKR_OK)
        return ksp_trace(fn, rv);
    ksp_leave();
    return ksp_trace(fn, CKR_FUNCTION_NOT_SUPPORTED);
}

CK_RV ksp_api_SignRecoverInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
    (void)m;
    (void)k;
    return unsupported("C_SignRecoverInit", h);
}

CK_RV ksp_api_SignRecover(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len, CK_BYTE_PTR sig,
                          CK_ULONG_PTR sig_len)
{
    (void)in;
    (void)in_len;
    (void)sig;
    (void)sig_len;
    return unsupported("C_SignRecover", h);
}

CK_RV ksp_api_VerifyRecoverInit(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE k)
{
    (void)m;
    (void)k;
    return unsupported("C_VerifyRecoverInit", h);
}

CK_RV ksp_api_VerifyRecover(CK_SESSION_HANDLE h, CK_BYTE_PTR sig, CK_ULONG sig_len, CK_BYTE_PTR out,
                            CK_ULONG_PTR out_len)
{
    (void)sig;
    (void)sig_len;
    (void)out;
    (void)out_len;
    return unsupported("C_VerifyRecover", h);
}

CK_RV ksp_api_DigestEncryptUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len,
                                  CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
    (void)in;
    (void)in_len;
    (void)out;
    (void)out_len;
    return unsupported("C_DigestEncryptUpdate", h);
}

CK_RV ksp_api_DecryptDigestUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len,
                                  CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
    (void)in;
    (void)in_len;
    (void)out;
    (void)out_len;
    return unsupported("C_DecryptDigestUpdate", h);
}

CK_RV ksp_api_SignEncryptUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len,
                                CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
    (void)in;
    (void)in_len;
    (void)out;
    (void)out_len;
    return unsupported("C_SignEncryptUpdate", h);
}

CK_RV ksp_api_DecryptVerifyUpdate(CK_SESSION_HANDLE h, CK_BYTE_PTR in, CK_ULONG in_len,
                                  CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
    (void)in;
    (void)in_len;
    (void)out;
    (void)out_len;
    return unsupported("C_DecryptVerifyUpdate", h);
}

CK_RV ksp_api_GenerateKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR t, CK_ULONG n,
                          CK_OBJECT_HANDLE_PTR out)
{
    (void)t;
    (void)n;
    struct ksp_session *s = NULL;
    CK_RV rv = ksp_enter_session(h, &s);
    if (rv != CKR_OK)
        return ksp_trace("C_GenerateKey", rv);
    /* No symmetric key generation mechanism is offered. */
    rv = (!m || !out) ? CKR_ARGUMENTS_BAD : CKR_MECHANISM_INVALID;
    ksp_leave();
    return ksp_trace("C_GenerateKey", rv);
}

CK_RV ksp_api_GenerateKeyPair(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_ATTRIBUTE_PTR pt,
                              CK_ULONG pn, CK_ATTRIBUTE_PTR vt, CK_ULONG vn,
                              CK_OBJECT_HANDLE_PTR pub, CK_OBJECT_HANDLE_PTR priv)
{
    struct ksp_session *s = NULL;
    CK_RV rv = ksp_enter_session(h, &s);
    if (rv != CKR_OK)
        return ksp_trace("C_GenerateKeyPair", rv);
    if (!m || !pub || !priv || (!pt && pn) || (!vt && vn))
        rv = CKR_ARGUMENTS_BAD;
    else
        rv = ksp_keys_generate_inlock(s, m, pt, pn, vt, vn, pub, priv);
    ksp_leave();
    return ksp_trace("C_GenerateKeyPair", rv);
}

CK_RV ksp_api_WrapKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE wk,
                      CK_OBJECT_HANDLE k, CK_BYTE_PTR out, CK_ULONG_PTR out_len)
{
    (void)out;
    struct ksp_session *s = NULL;
    struct ksp_object *o = NULL, *w = NULL;
    CK_RV rv = ksp_enter_session(h, &s);
    if (rv != CKR_OK)
        return ksp_trace("C_WrapKey", rv);
    if (!m || !out_len) {
        rv = CKR_ARGUMENTS_BAD;
    } else if (ksp_object_get_inlock(s, k, &o) != CKR_OK) {
        rv = CKR_KEY_HANDLE_INVALID;
    } else if ((o->klass == CKO_PRIVATE_KEY || o->klass == CKO_SECRET_KEY) &&
               !ksp_attrs_bool(&o->attrs, CKA_EXTRACTABLE, false)) {
        /* §5.15 C_WrapKey: a key with CKA_EXTRACTABLE FALSE cannot be wrapped;
         * every ksp11 private key is such a key (DESIGN.md §3). */
        rv = CKR_KEY_UNEXTRACTABLE;
    } else if (ksp_object_get_inlock(s, wk, &w) != CKR_OK) {
        rv = CKR_WRAPPING_KEY_HANDLE_INVALID;
    } else {
        rv = CKR_MECHANISM_INVALID; /* no wrapping mechanism is offered */
    }
    ksp_leave();
    return ksp_trace("C_WrapKey", rv);
}

CK_RV ksp_api_UnwrapKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE uk,
                        CK_BYTE_PTR in, CK_ULONG in_len, CK_ATTRIBUTE_PTR t, CK_ULONG n,
                        CK_OBJECT_HANDLE_PTR out)
{
    struct ksp_session *s = NULL;
    struct ksp_object *u = NULL;
    CK_RV rv = ksp_enter_session(h, &s);
    if (rv != CKR_OK)
        return ksp_trace("C_UnwrapKey", rv);
    if (!m || !out || (!in && in_len) || (!t && n))
        rv = CKR_ARGUMENTS_BAD;
    else if (ksp_object_get_inlock(s, uk, &u) != CKR_OK)
        rv = CKR_UNWRAPPING_KEY_HANDLE_INVALID;
    else
        rv = CKR_MECHANISM_INVALID; /* no unwrapping mechanism is offered */
    ksp_leave();
    return ksp_trace("C_UnwrapKey", rv);
}

CK_RV ksp_api_DeriveKey(CK_SESSION_HANDLE h, CK_MECHANISM_PTR m, CK_OBJECT_HANDLE base,
                        CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_OBJECT_HANDLE_PTR out)
{
    struct ksp_session *s = NULL;
    CK_RV rv = ksp_enter_session(h, &s);
    if (rv != CKR_OK)
        return ksp_trace("C_DeriveKey", rv);
    if (!m || !out || (!t && n))
        rv = CKR_ARGUMENTS_BAD;
    else
        rv = ksp_keys_derive_inlock(s, m, base, t, n, out);
    ksp_leave();
    return ksp_trace("C_DeriveKey", rv);
}

CK_RV ksp_api_SeedRandom(CK_SESSION_HANDLE h, CK_BYTE_PTR seed, CK_ULONG len)
{
    struct ksp_session *s = NULL;
    CK_RV rv = ksp_enter_session(h, &s);
    if (rv != CKR_OK)
        return ksp_trace("C_SeedRandom", rv);
    /* The DRBG seeds itself from the operating system; application seed
     * material is not mixed in, and we say so rather than pretend. */
    rv = (!seed && len) ? CKR_ARGUMENTS_BAD : CKR_RANDOM_SEED_NOT_SUPPORTED;
    ksp_leave();
    return ksp_trace("C_SeedRandom", rv);
}

CK_RV ksp_api_GenerateRandom(CK_SESSION_HANDLE h, CK_BYTE_PTR out, CK_ULONG len)
{
    struct ksp_session *s = NULL;
    CK_RV rv = ksp_enter_session(h, &s);
    if (rv != CKR_OK)
        return ksp_trace("C_GenerateRandom", rv);
    if (!out && len)
        rv = CKR_ARGUMENTS_BAD;
    else if (len)
        rv = ksp_random(out, len);
    ksp_leave();
    return ksp_trace("C_GenerateRandom", rv);
}

CK_RV ksp_api_GetFunctionStatus(CK_SESSION_HANDLE h)
{
    struct ksp_session *s = NULL;
    CK_RV rv = ksp_enter_session(h, &s);
    if (rv != CKR_OK)
        return rv;
    ksp_leave();
    return CKR_FUNCTION_NOT_PARALLEL; /* §5.16 legacy functions */
}

CK_RV ksp_api_CancelFunction(CK_SESSION_HANDLE h)
{
    struct ksp_session *s = NULL;
    CK_RV rv = ksp_enter_session(h, &s);
    if (rv != CKR_OK)
        return rv;
    ksp_leave();
    return CKR_FUNCTION_NOT_PARALLEL;
}
