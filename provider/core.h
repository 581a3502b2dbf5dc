/*
 * Core state shared by the provider files: the library, tokens, sessions,
 * objects and operations. Everything here is protected by the library lock
 * (lib.c) unless a comment says otherwise; functions that need it held end in
 * _inlock.
 */
#ifndef KSP_CORE_H
#define KSP_CORE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "attr.h"
#include "config.h"
#include "ksp11/backend.h"
#include "ksp11/ksp11.h"
#include "store.h"

#define KSP_NO_USER      ((CK_USER_TYPE)-1)
#define KSP_MAX_PIN_FAIL 10u
#define KSP_MIN_PIN_LEN  4u
#define KSP_MAX_PIN_LEN  255u

struct ksp_session;
struct ksp_token;
struct ksp_op;
struct ksp_keyhold;

struct ksp_object {
    CK_OBJECT_HANDLE handle;
    struct ksp_token *token;
    struct ksp_session *owner;  /* session objects: the creating session; else NULL */
    char id[KSP_OBJID_LEN + 1]; /* store file id, also CKA_UNIQUE_ID */
    struct ksp_attrs attrs;     /* every attribute except secret components */
    CK_OBJECT_CLASS klass;
    bool on_token;            /* CKA_TOKEN */
    bool is_private;          /* CKA_PRIVATE */
    CK_ULONG backend;         /* KSP11_BACKEND_* for keys with private material */
    struct ksp_buf blob;      /* backend blob (not secret) */
    struct ksp_buf sealed;    /* secret part sealed under the token TWK */
    struct ksp_bkey *bkey;    /* loaded backend key, cached while logged in */
    struct ksp_keyhold *hold; /* users of bkey outside the library lock, or NULL */
    struct ksp_object *next;
};

struct ksp_token {
    CK_SLOT_ID slot;
    bool initialized; /* false: the empty slot for C_InitToken */
    char serial[KSP_SERIAL_LEN + 1];
    char *dir;                  /* token directory; NULL for the empty slot */
    struct ksp_token_meta meta; /* cached metadata */
    CK_USER_TYPE login;         /* CKU_USER, CKU_SO or KSP_NO_USER */
    struct ksp_buf twk;         /* token wrapping key while available */
    struct ksp_object *objects; /* token objects (cache of the store) */
    bool objects_loaded;
    uint64_t generation;         /* store generation of the cache */
    struct ksp_objindex *lindex; /* label index of objects, NULL until needed */
    struct ksp_token *next;
};

/* Operation kinds a session can have active at once (one of each). */
enum ksp_op_kind {
    KSP_OPK_FIND = 0,
    KSP_OPK_SIGN,
    KSP_OPK_VERIFY,
    KSP_OPK_ENCRYPT,
    KSP_OPK_DECRYPT,
    KSP_OPK_DIGEST,
    KSP_OPK_COUNT,
};

struct ksp_find {
    CK_OBJECT_HANDLE *handles;
    size_t n, pos;
};

struct ksp_session {
    CK_SESSION_HANDLE handle;
    struct ksp_token *token;
    CK_FLAGS flags; /* CKF_SERIAL_SESSION | CKF_RW_SESSION */
    struct ksp_op *ops[KSP_OPK_COUNT];
    struct ksp_find find;
    bool find_active;
    struct ksp_session *next;
};

struct ksp_lib {
    bool initialized;
    pid_t pid;
    struct ksp_config cfg;
    struct ksp_token *tokens;
    struct ksp_session *sessions;
    struct ksp_object *session_objects;
    CK_SLOT_ID next_slot;
    CK_SESSION_HANDLE next_session;
    CK_OBJECT_HANDLE next_object;
    const struct ksp_backend_ops *soft_ops;
    struct ksp_backend *soft; /* opened lazily */
    struct ksp_backend *tpm;  /* opened lazily; connects on first use */
};

extern struct ksp_lib ksp_lib;

/* ---- lib.c: lifecycle, lock, fork ---- */
CK_RV ksp_lib_initialize(CK_C_INITIALIZE_ARGS *args);
CK_RV ksp_lib_finalize(void);
/* Take the library lock after checking initialisation and fork (PKCS#11 3.0
 * §5.4: a child must call C_Initialize). On CKR_OK the lock is held. */
CK_RV ksp_enter(void);
void ksp_leave(void);
/*
 * Finer locking: a call on a thread-safe backend (ops->thread_safe) runs the
 * backend's private-key work without the library lock, so threads sign in
 * parallel. The caller holds the lock, takes a hold on the key
 * (ksp_object_hold_inlock: the key outlives C_Logout / C_DestroyObject from
 * another thread until released), detaches what it uses from the session,
 * then suspend ... resume, then releases the hold. Between the two nothing
 * of the library's state (sessions, objects, tokens) may be touched. The lock
 * is the same one either way (pthread or the application's callbacks).
 */
void ksp_lib_suspend(void);
void ksp_lib_resume(void);
/* ksp_enter, then look up a session; on CKR_OK the lock is held. */
CK_RV ksp_enter_session(CK_SESSION_HANDLE h, struct ksp_session **s);
/* The backend with a KSP11_BACKEND_* id, opened on first use. ops may be NULL. */
CK_RV ksp_backend_get_inlock(CK_ULONG id, const struct ksp_backend_ops **ops,
                             struct ksp_backend **out);
/* The ops of a backend id, or NULL. */
const struct ksp_backend_ops *ksp_backend_ops_by_id(CK_ULONG id);

/* ---- token.c ---- */
/* Rescan the store root for tokens; keeps existing slots; ensures one empty slot. */
CK_RV ksp_tokens_refresh_inlock(void);
struct ksp_token *ksp_token_by_slot_inlock(CK_SLOT_ID slot);
void ksp_token_free(struct ksp_token *t);
CK_RV ksp_token_info_inlock(struct ksp_token *t, CK_TOKEN_INFO *info);
CK_RV ksp_token_init_inlock(struct ksp_token *t, const uint8_t *so_pin, size_t so_len,
                            const uint8_t label[32]);
/* Re-read metadata from disk (other processes may have changed counters). */
CK_RV ksp_token_meta_refresh_inlock(struct ksp_token *t);
bool ksp_token_pinless(const struct ksp_token *t);

/* ---- auth.c: PINs and login ---- */
/* Add the SO protector of a fresh TWK to m (TPM-sealed if m->flags has
 * KSP_META_TPM, else PIN-wrapped). */
CK_RV ksp_auth_protect_new(struct ksp_token_meta *m, const struct ksp_buf *twk,
                           const uint8_t *so_pin, size_t so_len);
CK_RV ksp_auth_login_inlock(struct ksp_token *t, CK_USER_TYPE user, const uint8_t *pin, size_t len);
void ksp_auth_logout_inlock(struct ksp_token *t);
CK_RV ksp_auth_init_pin_inlock(struct ksp_token *t, const uint8_t *pin, size_t len);
CK_RV ksp_auth_set_pin_inlock(struct ksp_token *t, CK_USER_TYPE who, const uint8_t *old_pin,
                              size_t old_len, const uint8_t *new_pin, size_t new_len);
/* The TWK if available (logged in or PIN-less), else CKR_USER_NOT_LOGGED_IN. */
CK_RV ksp_auth_twk_inlock(struct ksp_token *t, const struct ksp_buf **twk);

/* ---- session.c ---- */
CK_RV ksp_session_get_inlock(CK_SESSION_HANDLE h, struct ksp_session **out);
CK_RV ksp_session_open_inlock(struct ksp_token *t, CK_FLAGS flags, struct ksp_session **out);
void ksp_session_close_inlock(struct ksp_session *s);
bool ksp_token_has_sessions_inlock(const struct ksp_token *t, bool rw_only, bool ro_only);
CK_STATE ksp_session_state_inlock(const struct ksp_session *s);
/* Access matrix (PKCS#11 3.0 §5.6, table "session states"). */
bool ksp_session_can_read_inlock(const struct ksp_session *s, const struct ksp_object *o);
CK_RV ksp_session_can_write_inlock(const struct ksp_session *s, bool on_token, bool is_private);
void ksp_op_free(struct ksp_op *op);

/* ---- object.c ---- */
CK_RV ksp_object_get_inlock(struct ksp_session *s, CK_OBJECT_HANDLE h, struct ksp_object **out);
CK_RV ksp_objects_load_inlock(struct ksp_token *t);
/* Make a new object from complete attrs (+ key parts) and register it
 * (persisting token objects). Takes ownership of attrs and blob; secret (the
 * backend's secret part, plaintext) is sealed under the token's TWK. */
CK_RV ksp_object_add_inlock(struct ksp_session *s, struct ksp_attrs *attrs, CK_ULONG backend,
                            struct ksp_buf *blob, const struct ksp_buf *secret,
                            CK_OBJECT_HANDLE *out);
CK_RV ksp_object_destroy_inlock(struct ksp_session *s, struct ksp_object *o);
/* Persist a modified token object (attrs already replaced). */
CK_RV ksp_object_store_inlock(struct ksp_object *o);
void ksp_object_free(struct ksp_object *o);
/* Drop loaded backend keys of a token (logout). */
void ksp_objects_unload_keys_inlock(struct ksp_token *t);
/* A hold on o's loaded key (o->bkey must be loaded) for use outside the
 * lock; release with the lock held again. */
CK_RV ksp_object_hold_inlock(struct ksp_object *o, struct ksp_keyhold **out);
void ksp_object_hold_release_inlock(struct ksp_keyhold *h);
/* Loaded backend key of a private-key object (unseals with the TWK). */
CK_RV ksp_object_bkey_inlock(struct ksp_object *o, const struct ksp_backend_ops **ops,
                             struct ksp_bkey **out);
/* Public key of a key object, from its attributes; free with ksp_pubkey_free. */
CK_RV ksp_object_pubkey(const struct ksp_object *o, struct ksp_pubkey *out);
CK_RV ksp_object_pubkey_from_attrs(const struct ksp_attrs *attrs, struct ksp_pubkey *out);
void ksp_pubkey_free(struct ksp_pubkey *pk);
/* Remove session objects owned by s. */
void ksp_objects_drop_session_inlock(struct ksp_session *s);
/* Find support. */
CK_RV ksp_find_init_inlock(struct ksp_session *s, const CK_ATTRIBUTE *tmpl, CK_ULONG n);

/* ---- objindex.c: label index of a token's object cache ---- */
/* Drop the index (any change to t->objects or to an object's attributes). */
void ksp_objindex_invalidate_inlock(struct ksp_token *t);
/* Token objects whose label may equal `label` (a superset: match them),
 * in list order; *out is malloc'd. */
CK_RV ksp_objindex_lookup_inlock(struct ksp_token *t, const CK_ATTRIBUTE *label,
                                 struct ksp_object ***out, size_t *n_out);

/* ---- helpers ---- */
/* Copy a string into a space-padded PKCS#11 field. */
void ksp_pad(CK_UTF8CHAR *dst, size_t dst_len, const char *src);

#endif
