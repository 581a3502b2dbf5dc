/*
 * PINs and login (PKCS#11 3.0 §5.6). The token wrapping key (TWK) has up to
 * three protectors: the SO PIN, the user PIN, and (PIN-less tokens) none.
 *
 * With an acceptable TPM (DESIGN.md §3) each protector is a TPM sealed-data
 * object whose authValue is derived from the PIN, so guessing meets the TPM's
 * dictionary-attack lockout and the TWK never exists outside this machine;
 * the PIN-less protector uses an empty authValue with noDA. Without a TPM the
 * TWK is wrapped under a PBKDF2 key, failed attempts are counted in the token
 * metadata (persisting across processes), and at KSP_MAX_PIN_FAIL the PIN is
 * locked until the SO resets it with C_InitPIN.
 */
#include <string.h>

#include "core.h"
#include "log.h"
#include "secmem.h"
#include "swcrypto.h"
#include "twk.h"

enum protector { P_SO, P_USER, P_PINLESS };

static const char *protector_name(enum protector p)
{
    return p == P_SO ? "SO" : p == P_USER ? "user" : "PIN-less";
}

static struct ksp_tpm_sealed *tpm_slot(struct ksp_token_meta *m, enum protector p)
{
    return p == P_SO ? &m->so_tpm : p == P_USER ? &m->user_tpm : &m->pinless_tpm;
}

/* authValue = SHA-256("ksp11-tpm-auth-v1" || salt || PIN): never the raw PIN
 * (semantics.md §1.4); the TPM's lockout, not the hash, resists guessing. */
static CK_RV tpm_auth(const uint8_t salt[16], const uint8_t *pin, size_t len, struct ksp_buf *auth)
{
    static const char label[] = "ksp11-tpm-auth-v1";
    struct ksp_buf in = {0};
    size_t n = sizeof(label) - 1 + 16 + len;
    CK_RV rv = ksp_buf_alloc(&in, n);
    if (rv != CKR_OK)
        return rv;
    memcpy(in.p, label, sizeof(label) - 1);
    memcpy(in.p + sizeof(label) - 1, salt, 16);
    if (len)
        memcpy(in.p + sizeof(label) - 1 + 16, pin, len);
    rv = ksp_buf_alloc(auth, 32);
    if (rv == CKR_OK)
        rv = ksp_digest(CKM_SHA256, in.p, n, auth->p);
    if (rv != CKR_OK)
        ksp_buf_free(auth);
    ksp_buf_free(&in);
    return rv;
}

static CK_RV tpm_backend(const struct ksp_backend_ops **ops, struct ksp_backend **be)
{
    CK_RV rv = ksp_backend_get_inlock(KSP11_BACKEND_TPM, ops, be);
    return rv == CKR_OK ? CKR_OK : CKR_DEVICE_ERROR;
}

/* Add protector p of twk (opened by pin) to m. */
static CK_RV protect(struct ksp_token_meta *m, enum protector p, const struct ksp_buf *twk,
                     const uint8_t *pin, size_t len)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    if (m->flags & KSP_META_TPM) {
        const struct ksp_backend_ops *tpm = NULL;
        struct ksp_backend *be = NULL;
        struct ksp_buf auth = {0}, blob = {0};
        struct ksp_tpm_sealed *slot = tpm_slot(m, p);
        rv = tpm_backend(&tpm, &be);
        if (rv == CKR_OK)
            rv = ksp_random(slot->salt, sizeof(slot->salt));
        if (rv == CKR_OK)
            rv = tpm_auth(slot->salt, pin, len, &auth);
        if (rv == CKR_OK)
            rv = tpm->seal(be, twk, &auth, p == P_PINLESS, &blob);
        if (rv == CKR_OK && blob.len > sizeof(slot->blob))
            rv = CKR_DEVICE_ERROR;
        if (rv == CKR_OK) {
            memset(slot->blob, 0, sizeof(slot->blob));
            memcpy(slot->blob, blob.p, blob.len);
            slot->len = (uint16_t)blob.len;
        }
        ksp_buf_free(&auth);
        ksp_buf_free(&blob);
        return rv;
    }
    if (p == P_PINLESS) {
        memcpy(m->pinless_twk, twk->p, sizeof(m->pinless_twk));
        return CKR_OK;
    }
    return ksp_twk_wrap(twk, pin, len, ksp_kdf_iterations(ksp_lib.cfg.kdf_ms),
                        p == P_SO ? &m->so_twk : &m->user_twk);
}

/* Open protector p with pin. CKR_PIN_INCORRECT / CKR_PIN_LOCKED as the TPM says. */
static CK_RV unprotect(struct ksp_token *t, enum protector p, const uint8_t *pin, size_t len,
                       struct ksp_buf *twk)
{
    struct ksp_token_meta *m = &t->meta;
    if (m->flags & KSP_META_TPM) {
        const struct ksp_backend_ops *tpm = NULL;
        struct ksp_backend *be = NULL;
        struct ksp_buf auth = {0};
        struct ksp_tpm_sealed *slot = tpm_slot(m, p);
        struct ksp_buf blob = {slot->blob, slot->len};
        if (!slot->len)
            return CKR_USER_PIN_NOT_INITIALIZED;
        CK_RV rv = tpm_backend(&tpm, &be);
        if (rv == CKR_OK)
            rv = tpm_auth(slot->salt, pin, len, &auth);
        if (rv == CKR_OK)
            rv = tpm->unseal(be, &blob, &auth, twk);
        ksp_buf_free(&auth);
        return rv;
    }
    if (p == P_PINLESS)
        return ksp_buf_set(twk, m->pinless_twk, sizeof(m->pinless_twk));
    return ksp_twk_unwrap(p == P_SO ? &m->so_twk : &m->user_twk, pin, len, twk);
}

static CK_RV write_meta(struct ksp_token *t, const struct ksp_token_meta *m)
{
    CK_RV rv = ksp_store_meta_write(t->dir, m);
    if (rv != CKR_OK)
        ksp_err("auth", "token %s: cannot write metadata: %s", t->serial, ksp_rv_name(rv));
    return rv;
}

/* Where the TPM does not count failures, the store does: the attempt is
 * charged before the PIN is checked and refunded only after it proved right,
 * under the store's writer lock. So concurrent guessers in many processes
 * cannot lose each other's counts, and a process killed between the check and
 * the count has been counted already. A store that cannot be written
 * (read-only, full) cannot count: the PIN is then checked uncounted, so that
 * logging in keeps working there, and the log says so. */
static CK_RV charge(struct ksp_token *t, enum protector p, bool *counted)
{
    struct ksp_token_meta m;
    CK_RV rv =
        ksp_store_meta_pin_count(t->dir, p == P_SO, KSP_PIN_COUNT_CHARGE, KSP_MAX_PIN_FAIL, &m);
    *counted = rv == CKR_OK;
    if (rv == CKR_OK || rv == CKR_PIN_LOCKED)
        t->meta = m;
    ksp_wipe(&m, sizeof(m));
    if (rv == CKR_PIN_LOCKED) {
        ksp_warn("auth", "token %s: %s PIN is locked", t->serial, protector_name(p));
        return rv;
    }
    if (rv == CKR_TOKEN_WRITE_PROTECTED || rv == CKR_DEVICE_MEMORY || rv == CKR_DEVICE_ERROR) {
        ksp_warn("auth", "token %s: cannot count %s PIN attempts (%s): checking uncounted",
                 t->serial, protector_name(p), ksp_rv_name(rv));
        rv = ksp_token_meta_refresh_inlock(t);
        if (rv != CKR_OK)
            return rv;
        if ((p == P_SO ? t->meta.so_fails : t->meta.user_fails) >= KSP_MAX_PIN_FAIL) {
            ksp_warn("auth", "token %s: %s PIN is locked", t->serial, protector_name(p));
            return CKR_PIN_LOCKED;
        }
        return CKR_OK;
    }
    return rv;
}

static CK_RV settle(struct ksp_token *t, enum protector p, enum ksp_pin_count op)
{
    struct ksp_token_meta m;
    CK_RV rv = ksp_store_meta_pin_count(t->dir, p == P_SO, op, KSP_MAX_PIN_FAIL, &m);
    if (rv == CKR_OK)
        t->meta = m;
    else
        ksp_err("auth", "token %s: cannot update the %s PIN failure count: %s", t->serial,
                protector_name(p), ksp_rv_name(rv));
    ksp_wipe(&m, sizeof(m));
    return rv;
}

/* Check pin against protector p, counting failures where the TPM does not. */
static CK_RV verify(struct ksp_token *t, enum protector p, const uint8_t *pin, size_t len,
                    struct ksp_buf *twk_out)
{
    bool counted = false;
    CK_RV rv = ksp_token_meta_refresh_inlock(t);
    if (rv != CKR_OK)
        return rv;
    if (t->meta.flags & KSP_META_TPM) {
        rv = unprotect(t, p, pin, len, twk_out);
        if (rv == CKR_PIN_INCORRECT || rv == CKR_PIN_LOCKED)
            ksp_warn("auth", "token %s: %s PIN %s (the TPM counts failures)", t->serial,
                     protector_name(p), rv == CKR_PIN_LOCKED ? "locked out" : "wrong");
        return rv;
    }
    rv = charge(t, p, &counted);
    if (rv != CKR_OK)
        return rv;
    rv = unprotect(t, p, pin, len, twk_out);
    if (rv == CKR_PIN_INCORRECT) {
        ksp_warn("auth", "token %s: wrong %s PIN (%u of %u)", t->serial, protector_name(p),
                 p == P_SO ? t->meta.so_fails : t->meta.user_fails, KSP_MAX_PIN_FAIL);
        return rv;
    }
    if (!counted)
        return rv;
    /* Right PIN: the count starts again. Any other failure was no guess. */
    CK_RV srv = settle(t, p, rv == CKR_OK ? KSP_PIN_COUNT_RESET : KSP_PIN_COUNT_REFUND);
    if (rv == CKR_OK && srv != CKR_OK) {
        ksp_buf_free(twk_out);
        rv = srv;
    }
    return rv;
}

CK_RV ksp_auth_protect_new(struct ksp_token_meta *m, const struct ksp_buf *twk,
                           const uint8_t *so_pin, size_t so_len)
{
    return protect(m, P_SO, twk, so_pin, so_len);
}

CK_RV ksp_auth_login_inlock(struct ksp_token *t, CK_USER_TYPE user, const uint8_t *pin, size_t len)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_buf twk = {0};

    if (user == CKU_USER && !(t->meta.flags & KSP_META_USER_PIN_SET))
        return CKR_USER_PIN_NOT_INITIALIZED;
    rv = verify(t, user == CKU_SO ? P_SO : P_USER, pin, len, &twk);
    if (rv != CKR_OK)
        return rv;
    ksp_buf_free(&t->twk);
    t->twk = twk;
    t->login = user;
    ksp_info("auth", "token %s: %s logged in", t->serial, user == CKU_SO ? "SO" : "user");
    return CKR_OK;
}

void ksp_auth_logout_inlock(struct ksp_token *t)
{
    ksp_objects_unload_keys_inlock(t);
    ksp_buf_free(&t->twk);
    t->login = KSP_NO_USER;
}

CK_RV ksp_auth_twk_inlock(struct ksp_token *t, const struct ksp_buf **twk)
{
    if (t->twk.p) {
        *twk = &t->twk;
        return CKR_OK;
    }
    if (ksp_token_pinless(t)) {
        CK_RV rv = unprotect(t, P_PINLESS, NULL, 0, &t->twk);
        if (rv != CKR_OK) {
            ksp_err("auth", "token %s: PIN-less wrapping key unavailable: %s", t->serial,
                    ksp_rv_name(rv));
            return rv;
        }
        *twk = &t->twk;
        return CKR_OK;
    }
    return CKR_USER_NOT_LOGGED_IN;
}

/* Protect twk as the user's: by pin, or PIN-less when pin is empty. */
static CK_RV set_user_twk(struct ksp_token *t, const struct ksp_buf *twk, const uint8_t *pin,
                          size_t len)
{
    struct ksp_token_meta m = t->meta;
    CK_RV rv = protect(&m, len ? P_USER : P_PINLESS, twk, pin, len);
    if (rv != CKR_OK)
        goto out;
    if (len == 0) {
        memset(&m.user_twk, 0, sizeof(m.user_twk));
        memset(&m.user_tpm, 0, sizeof(m.user_tpm));
        m.flags |= KSP_META_PINLESS | KSP_META_USER_PIN_SET;
    } else {
        ksp_wipe(m.pinless_twk, sizeof(m.pinless_twk));
        memset(&m.pinless_tpm, 0, sizeof(m.pinless_tpm));
        m.flags = (m.flags & ~KSP_META_PINLESS) | KSP_META_USER_PIN_SET;
    }
    m.user_fails = 0;
    rv = write_meta(t, &m);
    if (rv != CKR_OK)
        goto out;
    t->meta = m;
    ksp_info("auth", "token %s: user PIN %s", t->serial,
             len ? "set" : "removed (token is now PIN-less)");
out:
    ksp_wipe(&m, sizeof(m));
    return rv;
}

static CK_RV check_len(size_t len)
{
    /* Empty means PIN-less (README "PIN-less tokens"); otherwise §5.6 ranges. */
    if (len != 0 && (len < KSP_MIN_PIN_LEN || len > KSP_MAX_PIN_LEN))
        return CKR_PIN_LEN_RANGE;
    return CKR_OK;
}

CK_RV ksp_auth_init_pin_inlock(struct ksp_token *t, const uint8_t *pin, size_t len)
{
    const struct ksp_buf *twk = NULL;
    CK_RV rv = check_len(len);
    if (rv != CKR_OK)
        return rv;
    rv = ksp_token_meta_refresh_inlock(t);
    if (rv != CKR_OK)
        return rv;
    rv = ksp_auth_twk_inlock(t, &twk);
    if (rv != CKR_OK)
        return rv;
    return set_user_twk(t, twk, pin, len);
}

CK_RV ksp_auth_set_pin_inlock(struct ksp_token *t, CK_USER_TYPE who, const uint8_t *old_pin,
                              size_t old_len, const uint8_t *new_pin, size_t new_len)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_buf twk = {0};

    if (who == CKU_SO) {
        if (new_len < KSP_MIN_PIN_LEN || new_len > KSP_MAX_PIN_LEN)
            return CKR_PIN_LEN_RANGE;
        rv = verify(t, P_SO, old_pin, old_len, &twk);
        if (rv != CKR_OK)
            goto out;
        struct ksp_token_meta m = t->meta;
        rv = protect(&m, P_SO, &twk, new_pin, new_len);
        if (rv == CKR_OK)
            rv = write_meta(t, &m);
        if (rv == CKR_OK)
            t->meta = m;
        ksp_wipe(&m, sizeof(m));
        goto out;
    }
    rv = check_len(new_len);
    if (rv != CKR_OK)
        goto out;
    if (!(t->meta.flags & KSP_META_USER_PIN_SET)) {
        rv = CKR_USER_PIN_NOT_INITIALIZED;
        goto out;
    }
    if (ksp_token_pinless(t)) {
        /* The current PIN of a PIN-less token is the empty one. */
        rv = old_len ? CKR_PIN_INCORRECT : unprotect(t, P_PINLESS, NULL, 0, &twk);
    } else {
        rv = verify(t, P_USER, old_pin, old_len, &twk);
    }
    if (rv != CKR_OK)
        goto out;
    rv = set_user_twk(t, &twk, new_pin, new_len);
out:
    ksp_buf_free(&twk);
    return rv;
}
