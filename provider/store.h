/*
 * The on-disk store (DESIGN.md §5). One directory per token under the store
 * root, named by the token serial; one file per object; a metadata file.
 *
 * Writes are atomic (temp file, fsync, rename, fsync dir) and serialised on an
 * flock of <tokdir>/.lock; readers take no lock and work on a read-only store.
 * Every write bumps a generation counter (<tokdir>/generation) so other
 * processes can notice changes cheaply. Files are 0600, directories 0700.
 * Every record carries a magic, a version and lengths; every parser treats the
 * file as hostile: a corrupt object file is skipped and logged.
 *
 * Errors: EROFS/EACCES/EPERM on write -> CKR_TOKEN_WRITE_PROTECTED,
 * ENOSPC/EDQUOT -> CKR_DEVICE_MEMORY, other I/O errors -> CKR_DEVICE_ERROR,
 * malloc failure -> CKR_HOST_MEMORY.
 */
#ifndef KSP_STORE_H
#define KSP_STORE_H

#include <stdbool.h>
#include <stdint.h>

#include "attr.h"
#include "ksp11/backend.h"

#define KSP_SERIAL_LEN 16 /* hex chars */
#define KSP_OBJID_LEN  32 /* hex chars (128 random bits) */

/* A wrapped token wrapping key: AES-256-GCM under a key derived from a PIN. */
struct ksp_wrapped {
    uint32_t kdf;        /* KSP_KDF_* (twk.h) */
    uint32_t iterations; /* PBKDF2 iterations */
    uint8_t salt[16];
    uint8_t nonce[12];
    uint8_t ct[32];
    uint8_t tag[16];
};

#define KSP_META_USER_PIN_SET 0x1u /* user PIN initialised */
#define KSP_META_PINLESS      0x2u /* no login required */
#define KSP_META_TPM          0x4u /* TWK sealed in the TPM (the *_tpm fields), not PIN-wrapped */

/* A TWK sealed in the TPM: the backend's sealed-object blob and the salt of the
 * PIN -> authValue derivation. len 0 = unset. */
#define KSP_TPM_SEALED_MAX 1024
struct ksp_tpm_sealed {
    uint16_t len;
    uint8_t blob[KSP_TPM_SEALED_MAX];
    uint8_t salt[16];
};

struct ksp_token_meta {
    char label[33]; /* UTF-8, NUL-terminated, at most 32 bytes */
    char serial[KSP_SERIAL_LEN + 1];
    uint32_t flags;              /* KSP_META_* */
    uint32_t user_fails;         /* consecutive failed user logins */
    uint32_t so_fails;           /* consecutive failed SO logins */
    uint64_t created;            /* UTC seconds */
    struct ksp_wrapped so_twk;   /* always set */
    struct ksp_wrapped user_twk; /* valid when KSP_META_USER_PIN_SET and not PINLESS */
    uint8_t pinless_twk[32];     /* valid when KSP_META_PINLESS and not KSP_META_TPM */
    /* With KSP_META_TPM: the TWK sealed under the SO PIN, the user PIN, and
     * (PIN-less tokens) under an empty authValue with noDA. */
    struct ksp_tpm_sealed so_tpm, user_tpm, pinless_tpm;
};

/* One persisted object. */
struct ksp_store_obj {
    char id[KSP_OBJID_LEN + 1]; /* file name; unique within the token */
    struct ksp_attrs attrs;     /* all stored (non-secret) attributes */
    CK_ULONG backend;           /* KSP11_BACKEND_* (0 for non-key objects) */
    struct ksp_buf blob;        /* backend blob, not secret */
    struct ksp_buf sealed;      /* secret, already encrypted by the core (twk.h) */
};

void ksp_store_obj_free(struct ksp_store_obj *o);

/* Make a fresh random object id (hex, NUL-terminated). */
CK_RV ksp_store_new_id(char id[KSP_OBJID_LEN + 1]);

/* Serials of initialised tokens under root (sorted). A missing root is an
 * empty list. Caller frees each string and the array. */
CK_RV ksp_store_list_tokens(const char *root, char ***serials, size_t *n);
/* Path of a token directory (malloc'd). */
char *ksp_store_token_dir(const char *root, const char *serial);

/* Create root (0700, with parents) and the token directory, then write meta.
 * Fails with CKR_TOKEN_WRITE_PROTECTED if root is not writable. */
CK_RV ksp_store_token_create(const char *root, const struct ksp_token_meta *meta);
/* Remove every object of a token (re-initialisation), keeping the directory. */
CK_RV ksp_store_token_clear(const char *tokdir);

CK_RV ksp_store_meta_read(const char *tokdir, struct ksp_token_meta *out);
CK_RV ksp_store_meta_write(const char *tokdir, const struct ksp_token_meta *meta);

/*
 * PIN failure counting for software tokens: under the writer lock, re-read the
 * metadata and change one counter (so_fails if so, else user_fails), so that
 * concurrent processes never lose a count.
 *   CHARGE  below max: add one and write; at max: CKR_PIN_LOCKED, nothing written
 *   RESET   set to 0 (written only if it was not 0)
 *   REFUND  take one back (not below 0)
 * *out gets the metadata as now on disk (with CKR_OK and CKR_PIN_LOCKED).
 */
enum ksp_pin_count { KSP_PIN_COUNT_CHARGE, KSP_PIN_COUNT_RESET, KSP_PIN_COUNT_REFUND };
CK_RV ksp_store_meta_pin_count(const char *tokdir, bool so, enum ksp_pin_count op, uint32_t max,
                               struct ksp_token_meta *out);

/* Generation counter; 0 if the file does not exist yet. */
CK_RV ksp_store_generation(const char *tokdir, uint64_t *gen);

/* Load all objects; corrupt files are logged and skipped. */
CK_RV ksp_store_obj_load_all(const char *tokdir, struct ksp_store_obj **objs, size_t *n);
void ksp_store_obj_free_all(struct ksp_store_obj *objs, size_t n);
/* Create or replace an object atomically. */
CK_RV ksp_store_obj_write(const char *tokdir, const struct ksp_store_obj *o);
/* Delete; a missing object is CKR_OK (someone else deleted it). */
CK_RV ksp_store_obj_delete(const char *tokdir, const char *id);
/* The same, also giving the generation counter just before and after this
 * write (taken under the writers' lock): a cache that was at gens[0] is
 * current at gens[1] once it applies this change itself. */
CK_RV ksp_store_obj_write_gen(const char *tokdir, const struct ksp_store_obj *o, uint64_t gens[2]);
CK_RV ksp_store_obj_delete_gen(const char *tokdir, const char *id, uint64_t gens[2]);

/* Serialisation, exposed for unit tests and fuzzing. Parsers never trust len. */
CK_RV ksp_store_obj_encode(const struct ksp_store_obj *o, uint8_t **out, size_t *out_len);
CK_RV ksp_store_obj_decode(const uint8_t *in, size_t len, struct ksp_store_obj *out);
CK_RV ksp_store_meta_encode(const struct ksp_token_meta *m, uint8_t **out, size_t *out_len);
CK_RV ksp_store_meta_decode(const uint8_t *in, size_t len, struct ksp_token_meta *out);

#endif
