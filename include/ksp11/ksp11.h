/*
 * ksp11 public header: vendor-defined attributes and constants.
 *
 * Values are CKA_VENDOR_DEFINED | 0x4B530000 ("KS") | n and are fixed forever
 * (DESIGN.md §4). Installed as <ksp11/ksp11.h> for client developers
 * (`pkg-config --cflags ksp11`), so it depends on nothing of ksp11's own:
 * include it after any PKCS#11 header, or alone and it brings p11-kit's.
 * (Inside ksp11, "ksp11/pkcs11.h" adds the PKCS#11 3.0 definitions.)
 */
#ifndef KSP11_KSP11_H
#define KSP11_KSP11_H

#ifndef CKA_VENDOR_DEFINED
#include <p11-kit/pkcs11.h>
#endif

#define KSP11_VENDOR_BASE (CKA_VENDOR_DEFINED | 0x4B530000UL)

/* CK_ULONG, read-only: which backend holds the key. */
#define CKA_KSP11_BACKEND (KSP11_VENDOR_BASE | 1UL)
/* CK_ULONG, read-only: CNG NCRYPT_IMPL_* bits. */
#define CKA_KSP11_IMPL_TYPE (KSP11_VENDOR_BASE | 2UL)
/* UTF-8, read-only: why a key is in software; empty for TPM keys. */
#define CKA_KSP11_FALLBACK_REASON (KSP11_VENDOR_BASE | 3UL)
/* UTF-8, read-only: identity of the TPM the key was made in. */
#define CKA_KSP11_TPM_IDENTITY (KSP11_VENDOR_BASE | 4UL)
/* CK_BBOOL, template-only: refuse to fall back to software. */
#define CKA_KSP11_REQUIRE_HARDWARE (KSP11_VENDOR_BASE | 5UL)
/* Bytes, read-only: a TPM key's public area as the TPM marshals it
 * (TPM2B_PUBLIC); empty for software keys and TPM keys made before 0.1. */
#define CKA_KSP11_TPM_PUBLIC (KSP11_VENDOR_BASE | 6UL)
/* Bytes, read-only: the key's TPM name, nameAlg (2 bytes) || nameAlg digest of
 * the TPMT_PUBLIC inside CKA_KSP11_TPM_PUBLIC; what TPM2_Certify(Creation)
 * certifies. Empty where CKA_KSP11_TPM_PUBLIC is. */
#define CKA_KSP11_TPM_NAME (KSP11_VENDOR_BASE | 7UL)

/* Values of CKA_KSP11_BACKEND. */
#define KSP11_BACKEND_NONE 0UL
#define KSP11_BACKEND_TPM  1UL
#define KSP11_BACKEND_SOFT 2UL

/* Bits of CKA_KSP11_IMPL_TYPE (same values as CNG NCRYPT_IMPL_*_FLAG). */
#define KSP11_IMPL_HARDWARE 0x01UL
#define KSP11_IMPL_SOFTWARE 0x02UL
#define KSP11_IMPL_VIRTUAL  0x20UL

/*
 * Vendor interface "Vendor ksp11" (C_GetInterfaceList / C_GetInterface,
 * PKCS#11 3.0 §5.2): what the PKCS#11 object model cannot say, for
 * `ksp11 status`. Call after C_Initialize. Strings are NUL-terminated UTF-8.
 */
#define KSP11_INTERFACE_NAME "Vendor ksp11"

/* CK_KSP11_TPM_STATUS.state: the process's verdict on the TPM (DESIGN.md §3). */
#define KSP11_TPM_ACCEPTED      1UL /* keys go to the TPM (deny_scope may exclude some) */
#define KSP11_TPM_ABSENT        2UL /* no TPM device, nothing configured */
#define KSP11_TPM_UNREACHABLE   3UL /* configured or present, not answering */
#define KSP11_TPM_NO_PERMISSION 4UL /* present, access denied */
#define KSP11_TPM_12            5UL /* a TPM 1.2: refused */
#define KSP11_TPM_DENIED        6UL /* deny rule with scope all, or a refused software TPM */

/* CK_KSP11_TPM_STATUS.deny_scope bits. */
#define KSP11_DENY_ALL        0x1UL
#define KSP11_DENY_RSA_KEYGEN 0x2UL
#define KSP11_DENY_ECC_SIGN   0x4UL

typedef struct CK_KSP11_TPM_STATUS {
    CK_ULONG state;            /* KSP11_TPM_* */
    CK_ULONG deny_scope;       /* KSP11_DENY_* bits of the matching rule */
    CK_BBOOL virtual_tpm;      /* a software TPM (swtpm) */
    CK_BYTE spec_major;        /* TPM_PT_REVISION / 100 ... */
    CK_BYTE spec_minor;        /* ... and % 100 */
    CK_ULONG firmware1;        /* TPM_PT_FIRMWARE_VERSION_1 */
    CK_ULONG firmware2;        /* TPM_PT_FIRMWARE_VERSION_2 */
    CK_UTF8CHAR manufacturer[8]; /* e.g. "IFX", "IBM" */
    CK_UTF8CHAR vendor[20];      /* TPM_PT_VENDOR_STRING_* */
    CK_UTF8CHAR reason[96];      /* the fallback reason ("tpm-absent", ...); empty if accepted */
    CK_UTF8CHAR rule[48];        /* the matching deny rule; empty if none */
    CK_UTF8CHAR identity[160];   /* as CKA_KSP11_TPM_IDENTITY; empty if no TPM 2.0 answered */
    CK_UTF8CHAR detail[128];     /* human-readable detail */
} CK_KSP11_TPM_STATUS;

/* C_KSP11_GetTokenProtection: how a token's wrapping key is protected. */
#define KSP11_PROTECT_NONE    0UL /* the empty slot, or no user PIN yet */
#define KSP11_PROTECT_PIN     1UL /* under a PIN-derived key */
#define KSP11_PROTECT_TPM     2UL /* sealed in the TPM (under the PINs, unless PIN-less) */
#define KSP11_PROTECT_FILE    3UL /* PIN-less without a TPM: file permissions only */

typedef struct CK_KSP11_FUNCTION_LIST {
    CK_VERSION version; /* 1.0 */
    CK_RV (*C_KSP11_GetTpmStatus)(CK_KSP11_TPM_STATUS *status);
    CK_RV (*C_KSP11_GetTokenProtection)(CK_SLOT_ID slot, CK_ULONG *protection);
    /* Version 1.1: an attestation bundle (packaging/attestation.md) for a TPM
     * private key: TPM2_CertifyCreation by an attestation key of the
     * endorsement hierarchy with `nonce` (at most 64 bytes) as qualifying
     * data, the AK and EK public areas, the EK certificate from NV if any.
     * Buffer convention of PKCS#11 §5.2 (a NULL bundle gives an upper bound).
     * CKR_KEY_FUNCTION_NOT_PERMITTED for software keys. */
    CK_RV (*C_KSP11_AttestKey)(CK_SESSION_HANDLE session, CK_OBJECT_HANDLE key,
                               const CK_BYTE *nonce, CK_ULONG nonce_len, CK_BYTE *bundle,
                               CK_ULONG *bundle_len);
} CK_KSP11_FUNCTION_LIST;

#endif
