/*
 * Backend policy (DESIGN.md §3): which backend holds a new key, and why.
 * This build has only the software backend, so every key falls back; the
 * reason is recorded on the key and logged once per process.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "core.h"
#include "log.h"
#include "policy.h"

static bool logged;

CK_RV ksp_policy_choose_inlock(const struct ksp_keyspec *spec, bool require_hw,
                               struct ksp_choice *out)
{
    const char *reason = NULL;
    (void)spec;
    /* A TPM that is configured or present but that this build cannot use is
     * not "absent": say so instead of pretending. */
    if (ksp_lib.cfg.tcti || access("/dev/tpmrm0", F_OK) == 0)
        reason = "tpm-backend-unavailable";
    else
        reason = "tpm-absent";
    if (require_hw) {
        ksp_warn("policy", "key requires hardware but the TPM is not usable (%s)", reason);
        return CKR_TEMPLATE_INCONSISTENT;
    }
    if (!ksp_lib.cfg.fallback_software) {
        ksp_warn("policy", "no TPM (%s) and fallback = none: key refused", reason);
        return CKR_DEVICE_ERROR;
    }
    if (!logged) {
        ksp_info("policy", "keys are created in software: %s", reason);
        logged = true;
    }
    memset(out, 0, sizeof(*out));
    out->ops = ksp_lib.soft_ops;
    out->backend_id = KSP11_BACKEND_SOFT;
    out->impl_type = KSP11_IMPL_SOFTWARE;
    snprintf(out->reason, sizeof(out->reason), "%s", reason);
    return CKR_OK;
}
