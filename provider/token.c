/*
 * Slots and tokens: discovery under the store root, CK_TOKEN_INFO, and
 * C_InitToken (PKCS#11 3.0 §5.5). Every initialised token directory is a slot;
 * one extra slot always holds an uninitialised token for C_InitToken.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core.h"
#include "log.h"
#include "policy.h"
#include "secmem.h"
#include "swcrypto.h"
#include "twk.h"

static struct ksp_token *token_new(void)
{
    struct ksp_token *t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->slot = ksp_lib.next_slot++;
    t->login = KSP_NO_USER;
    return t;
}

void ksp_token_free(struct ksp_token *t)
{
    if (!t)
        return;
    while (t->objects) {
        struct ksp_object *o = t->objects;
        t->objects = o->next;
        ksp_object_free(o);
    }
    ksp_objindex_invalidate_inlock(t);
    ksp_buf_free(&t->twk);
    ksp_wipe(&t->meta, sizeof(t->meta));
    free(t->dir);
    free(t);
}

static void append(struct ksp_token *t)
{
    struct ksp_token **pp = &ksp_lib.tokens;
    while (*pp)
        pp = &(*pp)->next;
    *pp = t;
}

static struct ksp_token *by_serial(const char *serial)
{
    for (struct ksp_token *t = ksp_lib.tokens; t; t = t->next)
        if (t->initialized && strcmp(t->serial, serial) == 0)
            return t;
    return NULL;
}

CK_RV ksp_tokens_refresh_inlock(void)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    char **serials = NULL;
    size_t n = 0;
    bool have_empty = false;

    rv = ksp_store_list_tokens(ksp_lib.cfg.store_root, &serials, &n);
    if (rv != CKR_OK) {
        ksp_warn("token", "cannot list tokens under %s: %s", ksp_lib.cfg.store_root,
                 ksp_rv_name(rv));
        n = 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (by_serial(serials[i]))
            continue;
        struct ksp_token *t = token_new();
        if (!t) {
            rv = CKR_HOST_MEMORY;
            goto out;
        }
        t->dir = ksp_store_token_dir(ksp_lib.cfg.store_root, serials[i]);
        if (!t->dir || ksp_store_meta_read(t->dir, &t->meta) != CKR_OK) {
            ksp_warn("token", "skipping token %s: unreadable metadata", serials[i]);
            ksp_lib.next_slot--;
            ksp_token_free(t);
            continue;
        }
        t->initialized = true;
        snprintf(t->serial, sizeof(t->serial), "%s", serials[i]);
        append(t);
    }
    for (struct ksp_token *t = ksp_lib.tokens; t; t = t->next)
        have_empty |= !t->initialized;
    if (!have_empty) {
        struct ksp_token *t = token_new();
        if (!t) {
            rv = CKR_HOST_MEMORY;
            goto out;
        }
        append(t);
    }
    rv = CKR_OK;
out:
    for (size_t i = 0; i < n; i++)
        free(serials[i]);
    free(serials);
    return rv;
}

struct ksp_token *ksp_token_by_slot_inlock(CK_SLOT_ID slot)
{
    if (!ksp_lib.tokens)
        ksp_tokens_refresh_inlock();
    for (struct ksp_token *t = ksp_lib.tokens; t; t = t->next)
        if (t->slot == slot)
            return t;
    return NULL;
}

bool ksp_token_pinless(const struct ksp_token *t)
{
    return t->initialized && (t->meta.flags & KSP_META_PINLESS);
}

CK_RV ksp_token_meta_refresh_inlock(struct ksp_token *t)
{
    struct ksp_token_meta m;
    if (!t->initialized)
        return CKR_OK;
    CK_RV rv = ksp_store_meta_read(t->dir, &m);
    if (rv != CKR_OK) {
        ksp_warn("token", "token %s: metadata unreadable: %s", t->serial, ksp_rv_name(rv));
        return CKR_DEVICE_ERROR;
    }
    t->meta = m;
    ksp_wipe(&m, sizeof(m));
    return CKR_OK;
}

static CK_FLAGS pin_flags(CK_ULONG fails, CK_ULONG max, CK_FLAGS low, CK_FLAGS final,
                          CK_FLAGS locked)
{
    if (fails >= max)
        return locked;
    if (fails + 1 == max)
        return low | final;
    return fails ? low : 0;
}

/* A TPM-sealed token's PIN state is the TPM's dictionary-attack state, which
 * is shared by every authorisation on that TPM (semantics.md §1.4). */
static CK_FLAGS tpm_pin_flags(void)
{
    const struct ksp_backend_ops *tpm = NULL;
    struct ksp_backend *be = NULL;
    struct ksp_da_state da;
    if (ksp_backend_get_inlock(KSP11_BACKEND_TPM, &tpm, &be) != CKR_OK ||
        tpm->da_state(be, &da) != CKR_OK)
        return 0;
    if (da.locked)
        return CKF_USER_PIN_LOCKED | CKF_SO_PIN_LOCKED;
    if (!da.max_failures)
        return 0;
    return pin_flags(da.failures, da.max_failures, CKF_USER_PIN_COUNT_LOW, CKF_USER_PIN_FINAL_TRY,
                     CKF_USER_PIN_LOCKED) |
           pin_flags(da.failures, da.max_failures, CKF_SO_PIN_COUNT_LOW, CKF_SO_PIN_FINAL_TRY,
                     CKF_SO_PIN_LOCKED);
}

CK_RV ksp_token_info_inlock(struct ksp_token *t, CK_TOKEN_INFO *info)
{
    memset(info, 0, sizeof(*info));
    if (t->initialized)
        ksp_token_meta_refresh_inlock(t);
    ksp_pad(info->label, sizeof(info->label), t->initialized ? t->meta.label : "");
    ksp_pad(info->manufacturerID, sizeof(info->manufacturerID), "ksp11");
    ksp_pad(info->model, sizeof(info->model), "ksp11");
    ksp_pad(info->serialNumber, sizeof(info->serialNumber), t->initialized ? t->serial : "");
    info->flags = CKF_RNG;
    if (t->initialized) {
        info->flags |= CKF_TOKEN_INITIALIZED;
        if (t->meta.flags & KSP_META_USER_PIN_SET)
            info->flags |= CKF_USER_PIN_INITIALIZED;
        if (!(t->meta.flags & KSP_META_PINLESS))
            info->flags |= CKF_LOGIN_REQUIRED;
        if (t->meta.flags & KSP_META_TPM) {
            info->flags |= tpm_pin_flags();
        } else {
            info->flags |= pin_flags(t->meta.user_fails, KSP_MAX_PIN_FAIL, CKF_USER_PIN_COUNT_LOW,
                                     CKF_USER_PIN_FINAL_TRY, CKF_USER_PIN_LOCKED);
            info->flags |= pin_flags(t->meta.so_fails, KSP_MAX_PIN_FAIL, CKF_SO_PIN_COUNT_LOW,
                                     CKF_SO_PIN_FINAL_TRY, CKF_SO_PIN_LOCKED);
        }
    }
    CK_ULONG all = 0, rw = 0;
    for (struct ksp_session *s = ksp_lib.sessions; s; s = s->next) {
        if (s->token != t)
            continue;
        all++;
        if (s->flags & CKF_RW_SESSION)
            rw++;
    }
    info->ulMaxSessionCount = CK_EFFECTIVELY_INFINITE;
    info->ulSessionCount = all;
    info->ulMaxRwSessionCount = CK_EFFECTIVELY_INFINITE;
    info->ulRwSessionCount = rw;
    info->ulMaxPinLen = KSP_MAX_PIN_LEN;
    info->ulMinPinLen = KSP_MIN_PIN_LEN;
    info->ulTotalPublicMemory = CK_UNAVAILABLE_INFORMATION;
    info->ulFreePublicMemory = CK_UNAVAILABLE_INFORMATION;
    info->ulTotalPrivateMemory = CK_UNAVAILABLE_INFORMATION;
    info->ulFreePrivateMemory = CK_UNAVAILABLE_INFORMATION;
    info->hardwareVersion.major = 0;
    info->hardwareVersion.minor = 0;
    info->firmwareVersion.major = KSP11_VERSION_MAJOR;
    info->firmwareVersion.minor = KSP11_VERSION_MINOR;
    /* No clock on the token: utcTime is left blank (flags lack CKF_CLOCK_ON_TOKEN). */
    memset(info->utcTime, ' ', sizeof(info->utcTime));
    return CKR_OK;
}

/* Label from the 32-byte blank-padded field of C_InitToken. */
static void label_from_field(const uint8_t field[32], char out[33])
{
    size_t n = 32;
    while (n > 0 && (field[n - 1] == ' ' || field[n - 1] == '\0'))
        n--;
    memcpy(out, field, n);
    out[n] = '\0';
}

static CK_RV new_serial(char out[KSP_SERIAL_LEN + 1])
{
    uint8_t r[KSP_SERIAL_LEN / 2];
    CK_RV rv = ksp_random(r, sizeof(r));
    if (rv != CKR_OK)
        return rv;
    for (size_t i = 0; i < sizeof(r); i++)
        snprintf(out + 2 * i, 3, "%02x", r[i]);
    return CKR_OK;
}

static void drop_objects(struct ksp_token *t)
{
    while (t->objects) {
        struct ksp_object *o = t->objects;
        t->objects = o->next;
        ksp_object_free(o);
    }
    t->objects_loaded = false;
    ksp_objindex_invalidate_inlock(t);
    t->generation = 0;
}

CK_RV ksp_token_init_inlock(struct ksp_token *t, const uint8_t *so_pin, size_t so_len,
                            const uint8_t label[32])
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_buf twk = {0};
    struct ksp_token_meta m;

    memset(&m, 0, sizeof(m));
    if (t->initialized) {
        /* Re-initialisation: the SO PIN must match (PKCS#11 3.0 §5.6 C_InitToken). */
        rv = ksp_auth_login_inlock(t, CKU_SO, so_pin, so_len);
        if (rv != CKR_OK)
            goto out;
        ksp_auth_logout_inlock(t);
        m = t->meta;
        rv = ksp_store_token_clear(t->dir);
        if (rv != CKR_OK)
            goto out;
        drop_objects(t);
    } else {
        rv = new_serial(m.serial);
        if (rv != CKR_OK)
            goto out;
        m.created = (uint64_t)time(NULL);
    }
    label_from_field(label, m.label);
    /* With an acceptable TPM the new TWK is sealed in it (DESIGN.md §3). */
    m.flags = ksp_policy_tpm_usable_inlock() ? KSP_META_TPM : 0;
    m.user_fails = 0;
    m.so_fails = 0;
    memset(&m.so_twk, 0, sizeof(m.so_twk));
    memset(&m.user_twk, 0, sizeof(m.user_twk));
    ksp_wipe(m.pinless_twk, sizeof(m.pinless_twk));
    memset(&m.so_tpm, 0, sizeof(m.so_tpm));
    memset(&m.user_tpm, 0, sizeof(m.user_tpm));
    memset(&m.pinless_tpm, 0, sizeof(m.pinless_tpm));
    rv = ksp_twk_new(&twk);
    if (rv != CKR_OK)
        goto out;
    rv = ksp_auth_protect_new(&m, &twk, so_pin, so_len);
    if (rv != CKR_OK)
        goto out;
    if (t->initialized) {
        rv = ksp_store_meta_write(t->dir, &m);
    } else {
        rv = ksp_store_token_create(ksp_lib.cfg.store_root, &m);
        if (rv == CKR_OK) {
            t->dir = ksp_store_token_dir(ksp_lib.cfg.store_root, m.serial);
            if (!t->dir)
                rv = CKR_HOST_MEMORY;
        }
    }
    if (rv != CKR_OK)
        goto out;
    if (!t->initialized) {
        memcpy(t->serial, m.serial, sizeof(t->serial));
        t->initialized = true;
    }
    t->meta = m;
    ksp_info("token", "token %s initialised, label \"%s\"", t->serial, m.label);
    rv = CKR_OK;
out:
    if (rv != CKR_OK)
        ksp_warn("token", "C_InitToken failed: %s", ksp_rv_name(rv));
    ksp_buf_free(&twk);
    ksp_wipe(&m, sizeof(m));
    return rv;
}
