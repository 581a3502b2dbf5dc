/*
 * The mechanism table (DESIGN.md §2): one const row per mechanism with its
 * CK_MECHANISM_INFO, key type, the hash the core computes, the padding/shape
 * step, and a parameter validator. C_GetMechanismList/Info and every *Init
 * read it; nothing else switches on mechanism types.
 */
#ifndef KSP_MECH_H
#define KSP_MECH_H

#include <stddef.h>
#include <stdint.h>

#include "ksp11/pkcs11.h"

enum ksp_pad {
    KSP_PAD_DIGEST = 1, /* plain digest mechanism */
    KSP_PAD_PKCS1,      /* RSA PKCS#1 v1.5 (sign: type 1 over DigestInfo/data; enc: type 2) */
    KSP_PAD_PSS,        /* RSA-PSS, salt = hash length */
    KSP_PAD_OAEP,       /* RSA-OAEP */
    KSP_PAD_X509,       /* raw RSA, sign input EMSA-guarded */
    KSP_PAD_ECDSA,      /* ECDSA over a digest */
    KSP_PAD_ECDH,       /* ECDH1 derive */
    KSP_PAD_KEYGEN,     /* key pair generation */
};

/* Validated mechanism parameters (copies owned by the operation). */
struct ksp_mparams {
    CK_MECHANISM_TYPE hash;     /* PSS/OAEP hash */
    CK_MECHANISM_TYPE mgf_hash; /* MGF1 hash */
    size_t salt_len;
    uint8_t *label; /* OAEP label (malloc'd) */
    size_t label_len;
    CK_ULONG kdf;    /* ECDH */
    uint8_t *shared; /* ECDH shared data (malloc'd) */
    size_t shared_len;
    uint8_t *peer; /* ECDH public data (malloc'd) */
    size_t peer_len;
};

struct ksp_mech {
    CK_MECHANISM_TYPE type;
    CK_ULONG min_bits, max_bits;
    CK_FLAGS flags;         /* CKF_SIGN, CKF_VERIFY, ... */
    CK_KEY_TYPE key_type;   /* CKK_RSA, CKK_EC, or CK_UNAVAILABLE_INFORMATION */
    CK_MECHANISM_TYPE hash; /* hash the core computes first; 0 = none */
    enum ksp_pad pad;
    CK_RV (*validate)(const struct ksp_mech *row, const CK_MECHANISM *m, struct ksp_mparams *out);
};

const struct ksp_mech *ksp_mech_find(CK_MECHANISM_TYPE type);
size_t ksp_mech_count(void);
const struct ksp_mech *ksp_mech_at(size_t i);
/* Validate m against its row; on success *out holds owned copies. */
CK_RV ksp_mech_params(const struct ksp_mech *row, const CK_MECHANISM *m, struct ksp_mparams *out);
void ksp_mparams_free(struct ksp_mparams *p);

#endif
