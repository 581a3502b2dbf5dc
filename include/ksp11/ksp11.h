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

/* Values of CKA_KSP11_BACKEND. */
#define KSP11_BACKEND_NONE 0UL
#define KSP11_BACKEND_TPM  1UL
#define KSP11_BACKEND_SOFT 2UL

/* Bits of CKA_KSP11_IMPL_TYPE (same values as CNG NCRYPT_IMPL_*_FLAG). */
#define KSP11_IMPL_HARDWARE 0x01UL
#define KSP11_IMPL_SOFTWARE 0x02UL
#define KSP11_IMPL_VIRTUAL  0x20UL

#endif
