/*
 * Internals of the TPM 2.0 backend (DESIGN.md §3 "TPM hygiene"): the backend
 * instance, the loaded-key handle and the functions the files of tpm/ share.
 * Only the .c files of tpm/ include it; with them it is the only code that
 * includes tss2.
 *
 * Locking: one mutex per backend instance serialises every use of its ESAPI
 * context (ESAPI is single-threaded). Functions named *_inlock need it held,
 * taken with ksp_tpm_lock() which also notices a fork.
 */
#ifndef KSP_TPM_INT_H
#define KSP_TPM_INT_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/types.h>

#include <tss2/tss2_esys.h>
#include <tss2/tss2_mu.h>
#include <tss2/tss2_rc.h>
#include <tss2/tss2_sys.h>
#include <tss2/tss2_tctildr.h>

#include "ksp11/backend.h"

#define KSP_TPM_AREA "tpm"
/* TCG "Provisioning Guidance": the storage primary's persistent handle. */
#define KSP_TPM_SRK_HANDLE 0x81000001u
/* Length of the random authValue of keys (= SHA-256, the nameAlg). */
#define KSP_TPM_AUTH_LEN 32u
/* backend.h: seal takes at most 128 bytes. */
#define KSP_TPM_SEAL_MAX 128u

/* Our own HMAC session (tpm_sess.c). handle 0: none. */
struct ksp_tpm_sess {
    TPM2_HANDLE handle;
    uint8_t key[32]; /* sessionKey */
    TPM2B_NONCE nonce_tpm;
    bool broken; /* out of step with the TPM: flush and start another */
};

/* A key kept loaded between calls behind a resource manager (tpm_sess.c). */
#define KSP_TPM_HOT_KEYS  2
#define KSP_TPM_XLOCK_MAX (KSP_TPM_HOT_KEYS + 2) /* keys, session, primary */
struct ksp_tpm_hot {
    struct ksp_bkey *key; /* NULL: free */
    ESYS_TR h;
    TPM2B_NAME name;
    uint64_t used;
};

struct ksp_backend {
    pthread_mutex_t lock;
    pid_t pid;       /* the process that owns the connection */
    char *tcti_conf; /* cfg->tcti; NULL = device:/dev/tpmrm0, then tabrmd */
    char *caps_path; /* "<store_root>/.tpm-caps", NULL = no cache */
    /* LOCKED: lock, from here on */
    TSS2_TCTI_CONTEXT *tcti;
    ESYS_CONTEXT *esys;
    bool quiet_finalize; /* this TCTI's finalize only closes (device, swtpm) */
    bool keep_primary;   /* keep the primary loaded between calls (see tpm_ctx.c) */
    bool dead;           /* transport failed or TPM restarted: reconnect first */
    bool stale;          /* the TPM lost our handles: the command did not run */
    ESYS_TR primary;     /* storage primary, ESYS_TR_NONE until needed */
    bool primary_persistent;
    struct ksp_tpm_identity ident; /* last identity read, or why none */
    bool ident_valid;              /* ident came from a TPM 2.0 */
    struct ksp_caps caps;
    bool caps_valid;
    /* The signing hot path (tpm_sess.c) */
    TSS2_SYS_CONTEXT *sys;    /* SAPI over the same TCTI, NULL if unavailable */
    bool behind_rm;           /* tabrmd or /dev/tpmrmN: keys and session may stay */
    TPM2B_PUBLIC primary_pub; /* for salting, valid while primary is */
    bool primary_pub_valid;
    struct ksp_tpm_hot hot[KSP_TPM_HOT_KEYS];
    uint64_t hot_clock;
    struct ksp_tpm_sess hsess;
    bool keep_objects; /* keys, session (and primary) stay loaded between calls */
    /* Cross-process lock without a resource manager (tpm_lock.c) */
    bool xlock_wanted; /* decided at open(): no resource manager in the TCTI */
    char *xlock_path;
    int xlock_fd;
    bool xlock_held;
    uint64_t xlock_owner;
    uint32_t foreign[KSP_TPM_XLOCK_MAX]; /* left by another process: flush */
    uint32_t nforeign;
};

/* A loaded key: what the TPM needs to load it again for every operation. It
 * holds the authValue, so it lives in a secret buffer (ksp_secmem_alloc). */
struct ksp_bkey {
    struct ksp_backend *be;
    TPM2B_PUBLIC pub;
    TPM2B_PRIVATE priv;
    TPM2B_AUTH auth;
    CK_KEY_TYPE key_type; /* CKK_RSA or CKK_EC */
    enum ksp_curve curve; /* EC */
    size_t k;             /* RSA modulus bytes, or EC field bytes */
    bool hot;             /* kept loaded in be->hot (tpm_sess.c) */
};

/* SIGPIPE raised by a TCTI writing to a dead socket must not kill the host:
 * it is blocked around TPM I/O and a pending one we caused is consumed. */
struct ksp_tpm_call {
    sigset_t old_mask;
    bool pipe_was_pending;
};

/* ---- tpm_ctx.c ---- */
/* Lock the instance for one entry point; a forked child drops the inherited
 * connection without talking to the TPM. */
void ksp_tpm_lock(struct ksp_backend *be, struct ksp_tpm_call *call);
void ksp_tpm_unlock(struct ksp_backend *be, struct ksp_tpm_call *call);
/* Connect if not connected (or reconnect after a failure). CKR_DEVICE_REMOVED
 * when there is no TPM, CKR_DEVICE_ERROR when it is unusable (1.2, no access,
 * unreachable); be->ident says why. */
CK_RV ksp_tpm_connect_inlock(struct ksp_backend *be);
/* After attempt number `attempt` (from 0) of an entry point failed with rv:
 * true to run it again, after a reconnect (the TPM restarted: the command
 * never ran) or a short wait (a TPM without resource manager whose object
 * slots other processes hold for a moment). Bounded. */
bool ksp_tpm_again_inlock(struct ksp_backend *be, CK_RV rv, int attempt);
/* Silence tpm2-tss's own logging before the first Tss2 call. */
void ksp_tpm_quiet_tss(void);

/* ---- tpm_rc.c ---- */
/* The TPM code without its handle/parameter/session number (format 1), or
 * rc unchanged for other layers. */
TSS2_RC ksp_tpm_rc_base(TSS2_RC rc);
/* Translate rc for `what`, log it decoded, and mark the connection dead on
 * transport failures or lost handles. Never CKR_GENERAL_ERROR. */
CK_RV ksp_tpm_rv(struct ksp_backend *be, TSS2_RC rc, const char *what);

/* ---- tpm_primary.c ---- */
/* Storage primary: the persistent SRK if it is one, else CreatePrimary. */
CK_RV ksp_tpm_primary_inlock(struct ksp_backend *be);
/* This call needs the primary no more (its key is loaded, its session
 * salted): without a resource manager flush it now, so that we hold one
 * object slot, not two, while the TPM works (keep_primary() in tpm_ctx.c). */
void ksp_tpm_primary_done_inlock(struct ksp_backend *be);
/* Forget the primary; flush it from the TPM if `flush` and it is ours. */
void ksp_tpm_primary_drop_inlock(struct ksp_backend *be, bool flush);
/* An HMAC session salted with the primary, AES-128-CFB, SHA-256, with
 * continueSession and `attrs` (TPMA_SESSION_DECRYPT / _ENCRYPT). */
CK_RV ksp_tpm_session_inlock(struct ksp_backend *be, TPMA_SESSION attrs, ESYS_TR *out);
/* Load an object under the primary and give ESAPI its authValue. */
CK_RV ksp_tpm_load_inlock(struct ksp_backend *be, const TPM2B_PUBLIC *pub,
                          const TPM2B_PRIVATE *priv, const TPM2B_AUTH *auth, ESYS_TR *out);
/* Flush a transient object or session (errors logged, ignored); *h = NONE.
 * The copy of an authValue ESAPI keeps is overwritten first. */
void ksp_tpm_flush_inlock(struct ksp_backend *be, ESYS_TR *h);
/* Create a child of the primary over a salted session that encrypts
 * inSensitive. outPrivate/outPublic are Esys_Free'd by the caller. */
CK_RV ksp_tpm_create_inlock(struct ksp_backend *be, const TPM2B_SENSITIVE_CREATE *sens,
                            const TPM2B_PUBLIC *tmpl, TPM2B_PRIVATE **priv_out,
                            TPM2B_PUBLIC **pub_out);
/* What TPM2_Create says about the creation of a key (TPM 2.0 Part 3 §12.1),
 * kept for TPM2_CertifyCreation (tpm_attest.c); Esys_Free'd by the caller. */
struct ksp_tpm_creation {
    TPM2B_CREATION_DATA *data;
    TPM2B_DIGEST *hash;
    TPMT_TK_CREATION *ticket;
};
/* ksp_tpm_create_inlock that also returns the creation data (NULL: not). */
CK_RV ksp_tpm_create_ex_inlock(struct ksp_backend *be, const TPM2B_SENSITIVE_CREATE *sens,
                               const TPM2B_PUBLIC *tmpl, TPM2B_PRIVATE **priv_out,
                               TPM2B_PUBLIC **pub_out, struct ksp_tpm_creation *creation);
/* TPM algorithm of a CKM_SHA* mechanism, TPM2_ALG_ERROR if none. */
TPMI_ALG_HASH ksp_tpm_hash_alg(CK_MECHANISM_TYPE hash);

/* ---- tpm_attest.c ---- */
/* backend.h key_public. */
CK_RV ksp_tpm_key_public(const struct ksp_buf *blob, struct ksp_buf *public_out,
                         struct ksp_buf *name_out);
/* backend.h attest. */
CK_RV ksp_tpm_attest(struct ksp_backend *be, const struct ksp_buf *blob, const uint8_t *nonce,
                     size_t nonce_len, struct ksp_buf *out);
/* The TPM name of a public area: nameAlg || H_nameAlg(TPMT_PUBLIC). */
CK_RV ksp_tpm_name(const TPMT_PUBLIC *p, TPM2B_NAME *name);

/* ---- tpm_tabrmd.c ---- */
/* A TCTI to tpm2-abrmd without GLib (fork-safe); conf as tpm2-abrmd's TCTI
 * ("bus_name=...,bus_type=system|session"). On failure err says why. */
TSS2_RC ksp_tpm_tabrmd_init(const char *conf, TSS2_TCTI_CONTEXT **out, char *err, size_t err_len);
/* True for a context made by ksp_tpm_tabrmd_init. */
bool ksp_tpm_tabrmd_is(TSS2_TCTI_CONTEXT *ctx);
/* Close the socket and free; sends nothing (safe in a forked child). */
void ksp_tpm_tabrmd_free(TSS2_TCTI_CONTEXT **ctx);
/* tpm_tabrmd_dbus.c: over the bus at `address`, ask abrmd (bus_name) for a
 * connection: its socket (*fd_out, owned by the caller) and id. */
TSS2_RC ksp_tpm_tabrmd_dbus_connect(const char *address, const char *bus_name, int *fd_out,
                                    uint64_t *id_out, char *err, size_t err_len);

/* ---- tpm_sess.c: the signing hot path (own salted HMAC session) ---- */
/* Whether a private_op can take the hot path (public input and output). */
bool ksp_tpm_fast_applies(const struct ksp_bkey *key, const struct ksp_prim_args *args,
                          const uint8_t *in, size_t in_len);
/* One attempt on the hot path; CKR_FUNCTION_NOT_SUPPORTED: use ESAPI. */
CK_RV ksp_tpm_fast_inlock(struct ksp_backend *be, struct ksp_bkey *key,
                          const struct ksp_prim_args *args, const uint8_t *in, size_t in_len,
                          uint8_t *out, size_t *out_len);
void ksp_tpm_sess_end_inlock(struct ksp_backend *be, struct ksp_tpm_sess *s, bool flush);
/* TPM2_Unseal over our own session with response encryption. */
CK_RV ksp_tpm_fast_unseal_inlock(struct ksp_backend *be, const TPM2B_PUBLIC *pub,
                                 const TPM2B_PRIVATE *priv, const TPM2B_AUTH *auth,
                                 struct ksp_buf *data_out);
void ksp_tpm_hot_evict_inlock(struct ksp_backend *be, int i);
/* key is being unloaded: flush its cached handle. */
void ksp_tpm_hot_forget_inlock(struct ksp_backend *be, const struct ksp_bkey *key);
/* The connection goes: flush (if `flush`) or forget keys and session. */
void ksp_tpm_hot_drop_inlock(struct ksp_backend *be, bool flush);
/* key_unload's part: take the lock and forget key's cached handle. */
void ksp_tpm_key_forget(struct ksp_bkey *key);

/* ---- tpm_lock.c: cross-process lock without a resource manager ---- */
CK_RV ksp_tpm_xlock_init(struct ksp_backend *be, const char *tcti_name, const char *tcti_args,
                         const char *store_root);
void ksp_tpm_xlock_free(struct ksp_backend *be);
/* After fork: the inherited descriptor (and its flock) is the parent's. */
void ksp_tpm_xlock_forget_fd(struct ksp_backend *be);
void ksp_tpm_xlock_take_inlock(struct ksp_backend *be);
void ksp_tpm_xlock_release_inlock(struct ksp_backend *be);
/* Flush what another process left loaded (once connected). */
void ksp_tpm_xlock_flush_foreign_inlock(struct ksp_backend *be);

/* ---- tpm_blob.c ---- */
enum ksp_tpm_blob_kind {
    KSP_TPM_BLOB_KEY = 1,    /* RSA or ECC key pair */
    KSP_TPM_BLOB_SEALED = 2, /* keyedhash sealed data */
};
/* magic "KTPM" | version | kind | 0 0 | TPM2B_PUBLIC | TPM2B_PRIVATE */
CK_RV ksp_tpm_blob_write(enum ksp_tpm_blob_kind kind, const TPM2B_PUBLIC *pub,
                         const TPM2B_PRIVATE *priv, struct ksp_buf *out);
/* Parse and validate a blob (hostile input): CKR_DATA_INVALID if it is not a
 * well-formed blob of `kind` with the attributes we create. */
CK_RV ksp_tpm_blob_read(enum ksp_tpm_blob_kind kind, const struct ksp_buf *blob, TPM2B_PUBLIC *pub,
                        TPM2B_PRIVATE *priv);
/* A key blob with the creation data of its key (version 2). */
CK_RV ksp_tpm_blob_write_key(const TPM2B_PUBLIC *pub, const TPM2B_PRIVATE *priv,
                             const TPM2B_CREATION_DATA *cd, const TPM2B_DIGEST *ch,
                             const TPMT_TK_CREATION *tk, struct ksp_buf *out);
/* The creation data of a key blob; CKR_KEY_FUNCTION_NOT_PERMITTED for a key
 * made before ksp11 kept it (version 1). The blob must have passed
 * ksp_tpm_blob_read. */
CK_RV ksp_tpm_blob_read_creation(const struct ksp_buf *blob, TPM2B_CREATION_DATA *cd,
                                 TPM2B_DIGEST *ch, TPMT_TK_CREATION *tk);
/* Field bytes of a supported TPM curve, 0 otherwise. */
size_t ksp_tpm_curve_bytes(TPMI_ECC_CURVE c);

/* ---- entry points (backend.h), reached through ksp_tpm_backend ---- */
CK_RV ksp_tpm_open(const struct ksp_config *cfg, struct ksp_backend **out);
void ksp_tpm_close(struct ksp_backend *be);
void ksp_tpm_forget(struct ksp_backend *be);
CK_RV ksp_tpm_identity(struct ksp_backend *be, struct ksp_tpm_identity *out);
const struct ksp_caps *ksp_tpm_caps(struct ksp_backend *be);
/* caps probing with the lock held (private_op needs native_pss). */
const struct ksp_caps *ksp_tpm_caps_inlock(struct ksp_backend *be);
CK_RV ksp_tpm_keygen(struct ksp_backend *be, const struct ksp_keyspec *spec,
                     struct ksp_buf *blob_out, struct ksp_buf *secret_out,
                     struct ksp_pubkey *pub_out);
CK_RV ksp_tpm_key_load(struct ksp_backend *be, const struct ksp_buf *blob,
                       const struct ksp_buf *secret, struct ksp_bkey **out);
void ksp_tpm_key_unload(struct ksp_bkey *key);
CK_RV ksp_tpm_private_op(struct ksp_bkey *key, const struct ksp_prim_args *args, const uint8_t *in,
                         size_t in_len, uint8_t *out, size_t *out_len);
CK_RV ksp_tpm_seal(struct ksp_backend *be, const struct ksp_buf *data, const struct ksp_buf *auth,
                   CK_BBOOL no_da, struct ksp_buf *blob_out);
CK_RV ksp_tpm_unseal(struct ksp_backend *be, const struct ksp_buf *blob, const struct ksp_buf *auth,
                     struct ksp_buf *data_out);
CK_RV ksp_tpm_da_state(struct ksp_backend *be, struct ksp_da_state *out);

#endif
