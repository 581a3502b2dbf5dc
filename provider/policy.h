/*
 * The TPM policy (DESIGN.md §3): is there an acceptable TPM 2.0, and which
 * backend holds a new key. The verdict is computed once per process, on
 * first need (never in C_Initialize), and logged in one line.
 */
#ifndef KSP_POLICY_H
#define KSP_POLICY_H

#include <stdbool.h>

#include "core.h"

enum ksp_tpm_state {
    KSP_TPM_ACCEPTED = 1,  /* usable (possibly with scoped deny rules) */
    KSP_TPM_ABSENT,        /* no TPM device / not configured */
    KSP_TPM_UNREACHABLE,   /* configured or present but not answering */
    KSP_TPM_NO_PERMISSION, /* present but access denied: a misconfiguration */
    KSP_TPM_12,            /* a TPM 1.2: refused */
    KSP_TPM_DENIED,        /* a deny rule with scope `all`, or a refused software TPM */
};

struct ksp_verdict {
    enum ksp_tpm_state state;
    unsigned denied_scope; /* enum ksp_deny_scope bits that apply */
    char rule[48];         /* first matching deny rule */
    char reason[96];       /* fallback reason when the TPM is not used at all */
    char identity[160];    /* CKA_KSP11_TPM_IDENTITY text */
    bool virtual_tpm;      /* software TPM (swtpm) */
    struct ksp_tpm_identity id;
    char detail[128]; /* for the log and `ksp11 status` */
};

struct ksp_choice {
    const struct ksp_backend_ops *ops;
    CK_ULONG backend_id; /* KSP11_BACKEND_* */
    CK_ULONG impl_type;  /* KSP11_IMPL_* bits */
    char reason[96];     /* CKA_KSP11_FALLBACK_REASON; empty for TPM keys */
    char identity[160];  /* CKA_KSP11_TPM_IDENTITY; empty for software keys */
};

/* The verdict for this process (computed on first call). */
const struct ksp_verdict *ksp_policy_verdict_inlock(void);
/* Forget the verdict (C_Finalize, fork): the next call decides again. */
void ksp_policy_reset(void);
/* Choose the backend for a new key; spec NULL means an import. Hardware
 * required and unavailable: CKR_DEVICE_ERROR when the TPM is present but not
 * usable (unreachable, no permission), else CKR_TEMPLATE_INCONSISTENT;
 * fallback disabled: the same codes. */
CK_RV ksp_policy_choose_inlock(const struct ksp_keyspec *spec, bool require_hw,
                               struct ksp_choice *out);
/* Is the TPM usable for sealing token wrapping keys? */
bool ksp_policy_tpm_usable_inlock(void);

#endif
