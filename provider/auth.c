/*
 * PINs and login (PKCS#11 3.0 §5.6): the token wrapping key (TWK) is wrapped
 * under the SO PIN and the user PIN; logging in unwraps it. Failed attempts
 * are counted in the token metadata, so they persist across processes; at
 * KSP_MAX_PIN_FAIL the PIN is locked and only the SO (C_InitPIN) can reset the
 * user PIN. PIN-less tokens keep the TWK in the 0600 metadata file.
 */
#include <string.h>

#include "core.h"
#include "log.h"
#include "secmem.h"
#include "twk.h"

static CK_RV write_meta(struct ksp_token *t)
{
    CK_RV rv = ksp_store_meta_write(t->dir, &t->meta);
    if (rv != CKR_OK)
        ksp_err("auth", "token %s: cannot write metadata: %s", t->serial, ksp_rv_name(rv));
    return rv;
}

/* Check pin against one wrapped TWK, counting failures. */
static CK_RV verify(struct ksp_token *t, bool so, const uint8_t *pin, size_t len,
                    struct ksp_buf *twk_out)
{
    CK_RV rv = ksp_token_meta_refresh_inlock(t);
    if (rv != CKR_OK)
        return rv;
    uint32_t *fails = so ? &t->meta.so_fails : &t->meta.user_fails;
    const struct ksp_wrapped *w = so ? &t->meta.so_twk : &t->meta.user_twk;
    if (*fails >= KSP_MAX_PIN_FAIL) {
        ksp_warn("auth", "token %s: %s PIN is locked", t->serial, so ? "SO" : "user");
        return CKR_PIN_LOCKED;
    }
    rv = ksp_twk_unwrap(w, pin, len, twk_out);
    if (rv == CKR_PIN_INCORRECT) {
        (*fails)++;
        ksp_warn("auth", "token %s: wrong %s PIN (%u of %u)", t->serial, so ? "SO" : "user",
                 *fails, KSP_MAX_PIN_FAIL);
        CK_RV wrv = write_meta(t);
        return wrv == CKR_OK ? CKR_PIN_INCORRECT : wrv;
    }
    if (rv != CKR_OK)
        return rv;
    if (*fails) {
        *fails = 0;
        rv = write_meta(t);
        if (rv != CKR_OK) {
            ksp_buf_free(twk_out);
            return rv;
        }
    }
    return CKR_OK;
}

CK_RV ksp_auth_login_inlock(struct ksp_token *t, CK_USER_TYPE user, const uint8_t *pin,
                            size_t len)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_buf twk = {0};

    if (user == CKU_USER && !(t->meta.flags & KSP_META_USER_PIN_SET))
        return CKR_USER_PIN_NOT_INITIALIZED;
    rv = verify(t, user == CKU_SO, pin, len, &twk);
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
        CK_RV rv = ksp_buf_set(&t->twk, t->meta.pinless_twk, sizeof(t->meta.pinless_twk));
        if (rv != CKR_OK)
            return rv;
        *twk = &t->twk;
        return CKR_OK;
    }
    return CKR_USER_NOT_LOGGED_IN;
}

/* Store twk as the user's: wrapped under pin, or in clear for a PIN-less token. */
static CK_RV set_user_twk(struct ksp_token *t, const struct ksp_buf *twk, const uint8_t *pin,
                          size_t len)
{
    struct ksp_token_meta m = t->meta;
    CK_RV rv = CKR_GENERAL_ERROR;

    if (len == 0) {
        memcpy(m.pinless_twk, twk->p, sizeof(m.pinless_twk));
        memset(&m.user_twk, 0, sizeof(m.user_twk));
        m.flags |= KSP_META_PINLESS | KSP_META_USER_PIN_SET;
    } else {
        rv = ksp_twk_wrap(twk, pin, len, ksp_kdf_iterations(ksp_lib.cfg.kdf_ms), &m.user_twk);
        if (rv != CKR_OK)
            goto out;
        ksp_wipe(m.pinless_twk, sizeof(m.pinless_twk));
        m.flags = (m.flags & ~KSP_META_PINLESS) | KSP_META_USER_PIN_SET;
    }
    m.user_fails = 0;
    rv = ksp_store_meta_write(t->dir, &m);
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
        rv = verify(t, true, old_pin, old_len, &twk);
        if (rv != CKR_OK)
            goto out;
        struct ksp_token_meta m = t->meta;
        rv = ksp_twk_wrap(&twk, new_pin, new_len, ksp_kdf_iterations(ksp_lib.cfg.kdf_ms),
                          &m.so_twk);
        if (rv == CKR_OK)
            rv = ksp_store_meta_write(t->dir, &m);
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
        if (old_len != 0) {
            rv = CKR_PIN_INCORRECT;
            goto out;
        }
        rv = ksp_buf_set(&twk, t->meta.pinless_twk, sizeof(t->meta.pinless_twk));
    } else {
        rv = verify(t, false, old_pin, old_len, &twk);
    }
    if (rv != CKR_OK)
        goto out;
    rv = set_user_twk(t, &twk, new_pin, new_len);
out:
    ksp_buf_free(&twk);
    return rv;
}
