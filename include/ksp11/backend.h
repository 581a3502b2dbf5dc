/*
 * The backend vtable (DESIGN.md §2, style.md §3.6).
 *
 * A backend holds private keys and performs one-shot private-key primitives on
 * prepared input. It never sees templates, sessions or the store. Everything
 * else (hashing, verification, public-key encryption, padding a backend cannot
 * do itself, multi-part buffering) is done by the core's mechanism table.
 *
 * Key material crosses this interface in two opaque parts, both produced by
 * keygen/import and handed back at key_load:
 *   blob   - not secret (e.g. TPM public+private areas); stored as is;
 *   secret - secret (e.g. the PKCS#8 key of the soft backend, or a TPM key's
 *            authValue); the core stores it encrypted under the token wrapping key.
 * Either may be empty for a given backend.
 */
#ifndef KSP11_BACKEND_H
#define KSP11_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "ksp11/pkcs11.h"

struct ksp_backend; /* backend instance, opaque to the core */
struct ksp_bkey;    /* a loaded key, opaque to the core */
struct ksp_config;

/* Owned byte buffer. The free function in provider/secmem.h wipes it. */
struct ksp_buf {
    uint8_t *p;
    size_t len;
};

/* Curves by a small stable id; the core maps CKA_EC_PARAMS to these. */
enum ksp_curve {
    KSP_CURVE_NONE = 0,
    KSP_CURVE_P256 = 1,
    KSP_CURVE_P384 = 2,
    KSP_CURVE_P521 = 3,
};

/* What to generate. */
struct ksp_keyspec {
    CK_KEY_TYPE key_type;   /* CKK_RSA or CKK_EC */
    CK_ULONG modulus_bits;  /* RSA */
    const uint8_t *pub_exp; /* RSA, big-endian; NULL = 65537 */
    size_t pub_exp_len;
    enum ksp_curve curve; /* EC */
    /* Usage the key must support (the TPM sets object attributes from these). */
    CK_BBOOL sign, decrypt, derive;
    CK_BBOOL no_da; /* TPM: PIN-less token, create with noDA */
};

/* A public key as the core stores it in attributes. */
struct ksp_pubkey {
    CK_KEY_TYPE key_type;
    struct ksp_buf modulus;  /* RSA, big-endian, no leading zero */
    struct ksp_buf pub_exp;  /* RSA, big-endian */
    enum ksp_curve curve;    /* EC */
    struct ksp_buf ec_point; /* EC, raw uncompressed point 04||X||Y (not DER-wrapped) */
};

/* Private-key primitive requested by the core. */
enum ksp_prim {
    KSP_PRIM_RSA_RAW = 1,       /* in: k-byte block < n; out: in^d mod n (k bytes). */
    KSP_PRIM_RSA_PKCS1_SIGN,    /* in: DigestInfo or raw data; backend pads type 1. */
    KSP_PRIM_RSA_PSS_SIGN,      /* in: digest of `hash`; salt length = hash length. */
    KSP_PRIM_RSA_DECRYPT_PKCS1, /* in: k-byte ciphertext; out: plaintext. */
    KSP_PRIM_RSA_DECRYPT_OAEP,  /* in: ciphertext; hash/mgf_hash/label below. */
    KSP_PRIM_ECDSA,             /* in: digest (any length); out: r||s, each field-size bytes. */
    KSP_PRIM_ECDH,              /* in: peer point, raw uncompressed; out: Z (x coordinate). */
};

struct ksp_prim_args {
    enum ksp_prim prim;
    CK_MECHANISM_TYPE hash;     /* CKM_SHA_1, CKM_SHA256, ... (PSS, OAEP) */
    CK_MECHANISM_TYPE mgf_hash; /* MGF1 hash (PSS, OAEP) */
    const uint8_t *label;       /* OAEP label */
    size_t label_len;
};

/* What a backend can do; used for the mechanism list and the backend choice. */
struct ksp_caps {
    CK_ULONG rsa_min_bits, rsa_max_bits; /* 0/0: no RSA */
    CK_ULONG rsa_sizes[4];               /* exact sizes supported (0-terminated) */
    enum ksp_curve curves[4];            /* supported curves (KSP_CURVE_NONE-terminated) */
    CK_BBOOL hardware;                   /* private ops run in hardware */
    CK_BBOOL native_pss;                 /* RSA_PSS_SIGN with salt = hash length natively */
};

/* What a TPM says about itself (semantics.md §2.2), read once per process. */
struct ksp_tpm_identity {
    CK_BBOOL present;     /* a TPM 2.0 answered */
    CK_BBOOL is_tpm12;    /* the device is a TPM 1.2 (refused) */
    char manufacturer[5]; /* TPM_PT_MANUFACTURER as ASCII, trailing NUL/space trimmed */
    char vendor[17];      /* TPM_PT_VENDOR_STRING_1..4 concatenated, trimmed */
    uint32_t fw1, fw2;    /* TPM_PT_FIRMWARE_VERSION_1/2 */
    uint32_t revision;    /* TPM_PT_REVISION (spec revision x 100) */
    uint32_t level, year, day_of_year;
    uint32_t modes; /* TPM_PT_MODES */
    /* When !present: why ("absent", "permission-denied", "unreachable", "tpm-1.2"). */
    char error[32];
    char detail[128]; /* human-readable detail for the log */
};

/* Dictionary-attack state of the TPM (TPM_PT_LOCKOUT_COUNTER etc.). */
struct ksp_da_state {
    CK_ULONG failures;     /* TPM_PT_LOCKOUT_COUNTER */
    CK_ULONG max_failures; /* TPM_PT_MAX_AUTH_FAIL */
    CK_BBOOL locked;       /* TPMA_PERMANENT inLockout */
};

struct ksp_backend_ops {
    const char *name; /* "tpm", "soft" */
    CK_ULONG id;      /* KSP11_BACKEND_TPM or KSP11_BACKEND_SOFT */

    CK_RV (*open)(const struct ksp_config *cfg, struct ksp_backend **out);
    void (*close)(struct ksp_backend *be);
    /* Capabilities; never NULL after a successful open. */
    const struct ksp_caps *(*caps)(struct ksp_backend *be);

    /* Generate a key pair. blob/secret/pub are written only on success. */
    CK_RV (*keygen)
    (struct ksp_backend *be, const struct ksp_keyspec *spec, struct ksp_buf *blob_out,
     struct ksp_buf *secret_out, struct ksp_pubkey *pub_out);
    /*
     * Import a private key given as DER (PKCS#8 PrivateKeyInfo). May be NULL if
     * the backend cannot import. Outputs as keygen.
     */
    CK_RV (*import)
    (struct ksp_backend *be, const uint8_t *pkcs8, size_t pkcs8_len, struct ksp_buf *blob_out,
     struct ksp_buf *secret_out, struct ksp_pubkey *pub_out);
    /* Make a key usable. The backend copies what it needs from blob and secret. */
    CK_RV (*key_load)
    (struct ksp_backend *be, const struct ksp_buf *blob, const struct ksp_buf *secret,
     struct ksp_bkey **out);
    void (*key_unload)(struct ksp_bkey *key);
    /*
     * Run one primitive. A NULL out asks for the length (*out_len set, CKR_OK).
     * Too small: CKR_BUFFER_TOO_SMALL with *out_len set. A backend that cannot do
     * a primitive natively returns CKR_MECHANISM_INVALID and the core synthesises
     * it from KSP_PRIM_RSA_RAW where possible.
     */
    CK_RV (*private_op)
    (struct ksp_bkey *key, const struct ksp_prim_args *args, const uint8_t *in, size_t in_len,
     uint8_t *out, size_t *out_len);
    /* True if concurrent private_op calls on different keys need no lock. */
    CK_BBOOL thread_safe;

    /* ---- TPM-only entries; NULL in the soft backend ---- */
    /* Connect if needed and read the TPM's identity (once; cached). A missing,
     * unreachable, forbidden or 1.2 TPM is CKR_OK with out->present FALSE and
     * out->error set; only internal failures are errors. */
    CK_RV (*identity)(struct ksp_backend *be, struct ksp_tpm_identity *out);
    /* Seal data (<= 128 bytes) in a TPM sealed-data object under the storage
     * primary with authValue `auth` (<= 32 bytes); no_da sets noDA. */
    CK_RV (*seal)
    (struct ksp_backend *be, const struct ksp_buf *data, const struct ksp_buf *auth, CK_BBOOL no_da,
     struct ksp_buf *blob_out);
    /* Unseal over an encrypted session. Wrong auth: CKR_PIN_INCORRECT (the TPM
     * counts it); lockout: CKR_PIN_LOCKED. data_out is a secret buffer. */
    CK_RV (*unseal)
    (struct ksp_backend *be, const struct ksp_buf *blob, const struct ksp_buf *auth,
     struct ksp_buf *data_out);
    CK_RV (*da_state)(struct ksp_backend *be, struct ksp_da_state *out);
    /* In a forked child: release memory and descriptors without sending
     * anything to the TPM (the connection belongs to the parent). */
    void (*forget)(struct ksp_backend *be);
    /* TPM-only (NULL elsewhere): the public facts of a key blob, for
     * CKA_KSP11_TPM_PUBLIC (the marshalled TPM2B_PUBLIC) and
     * CKA_KSP11_TPM_NAME. No TPM I/O. */
    CK_RV (*key_public)(const struct ksp_buf *blob, struct ksp_buf *public_out,
                        struct ksp_buf *name_out);
    /* TPM-only (NULL elsewhere): an attestation bundle for a key blob, with
     * `nonce` as qualifying data (packaging/attestation.md).
     * CKR_KEY_FUNCTION_NOT_PERMITTED for a key without creation data. */
    CK_RV (*attest)(struct ksp_backend *be, const struct ksp_buf *blob, const uint8_t *nonce,
                    size_t nonce_len, struct ksp_buf *bundle_out);
};

extern const struct ksp_backend_ops ksp_tpm_backend;

extern const struct ksp_backend_ops ksp_soft_backend;

#endif
