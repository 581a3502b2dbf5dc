/*
 * Backend choice for new keys (policy.c).
 */
#ifndef KSP_POLICY_H
#define KSP_POLICY_H

#include <stdbool.h>

#include "core.h"

struct ksp_choice {
    const struct ksp_backend_ops *ops;
    CK_ULONG backend_id;  /* KSP11_BACKEND_* */
    CK_ULONG impl_type;   /* KSP11_IMPL_* bits */
    char reason[96];      /* CKA_KSP11_FALLBACK_REASON; empty for TPM keys */
    char identity[128];   /* CKA_KSP11_TPM_IDENTITY */
};

/* Choose the backend for spec; CKR_TEMPLATE_INCONSISTENT when hardware is
 * required and unavailable, CKR_DEVICE_ERROR when fallback is disabled. */
CK_RV ksp_policy_choose_inlock(const struct ksp_keyspec *spec, bool require_hw,
                               struct ksp_choice *out);

#endif
