/*
 * TPM policy and backend choice (DESIGN.md §3, semantics.md §2). Acceptable
 * TPM = TPM 2.0, not matched by a deny rule (scoped: all / rsa-keygen /
 * ecc-sign), and, for software TPMs, allowed by `allow_software_tpm`.
 * Every decision is logged; keys record the reason in vendor attributes.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core.h"
#include "denylist.h"
#include "log.h"
#include "policy.h"

static struct ksp_verdict verdict;

/* snprintf whose truncation of long identity strings is intended. */
__attribute__((format(printf, 3, 4))) static void text(char *dst, size_t n, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(dst, n, fmt, ap);
    va_end(ap);
}
static bool decided;

void ksp_policy_reset(void)
{
    memset(&verdict, 0, sizeof(verdict));
    decided = false;
}

static bool is_software_tpm(const struct ksp_tpm_identity *id)
{
    /* swtpm/libtpms: manufacturer "IBM", vendor "SW   TPM" (semantics.md §2.4). */
    return strcmp(id->manufacturer, "IBM") == 0 && strstr(id->vendor, "SW") != NULL;
}

static void describe(struct ksp_verdict *v)
{
    const struct ksp_tpm_identity *id = &v->id;
    text(v->identity, sizeof(v->identity),
         "manufacturer=%s vendor=%s firmware=%u.%u (0x%08x.0x%08x) spec=%u.%02u%s",
         id->manufacturer, id->vendor, id->fw1 >> 16, id->fw1 & 0xFFFF, id->fw1, id->fw2,
         id->revision / 100, id->revision % 100, v->virtual_tpm ? " virtual" : "");
}

static void decide(void)
{
    struct ksp_verdict *v = &verdict;
    struct ksp_backend *be = NULL;
    struct ksp_denylist list;

    memset(v, 0, sizeof(*v));
    const struct ksp_backend_ops *tpm = NULL;
    CK_RV rv = ksp_backend_get_inlock(KSP11_BACKEND_TPM, &tpm, &be);
    if (rv == CKR_OK)
        rv = tpm->identity(be, &v->id);
    if (rv != CKR_OK) {
        v->state = KSP_TPM_UNREACHABLE;
        text(v->reason, sizeof(v->reason), "tpm-unreachable");
        text(v->detail, sizeof(v->detail), "TPM backend failed: %s", ksp_rv_name(rv));
        return;
    }
    if (!v->id.present) {
        text(v->detail, sizeof(v->detail), "%s", v->id.detail);
        if (v->id.is_tpm12 || strcmp(v->id.error, "tpm-1.2") == 0) {
            v->state = KSP_TPM_12;
            text(v->reason, sizeof(v->reason), "tpm-1.2");
        } else if (strcmp(v->id.error, "permission-denied") == 0) {
            v->state = KSP_TPM_NO_PERMISSION;
            text(v->reason, sizeof(v->reason), "tpm-no-permission");
        } else if (strcmp(v->id.error, "absent") == 0) {
            v->state = KSP_TPM_ABSENT;
            text(v->reason, sizeof(v->reason), "tpm-absent");
        } else {
            v->state = KSP_TPM_UNREACHABLE;
            text(v->reason, sizeof(v->reason), "tpm-unreachable");
        }
        return;
    }
    v->virtual_tpm = is_software_tpm(&v->id);
    describe(v);
    if (v->virtual_tpm && !ksp_lib.cfg.allow_software_tpm) {
        v->state = KSP_TPM_DENIED;
        text(v->rule, sizeof(v->rule), "software-tpm");
        text(v->reason, sizeof(v->reason), "tpm-denied:software-tpm");
        text(v->detail, sizeof(v->detail), "software TPM refused by allow_software_tpm = no");
        return;
    }
    if (ksp_denylist_load(ksp_lib.cfg.denylist, &list) != CKR_OK) {
        /* Out of memory reading the list: fail closed for this process. */
        v->state = KSP_TPM_DENIED;
        text(v->reason, sizeof(v->reason), "tpm-denied:denylist-unreadable");
        return;
    }
    const struct ksp_deny_rule *r = NULL;
    v->denied_scope = ksp_denylist_match(&list, &v->id, &r);
    if (r)
        text(v->rule, sizeof(v->rule), "%s", r->id);
    if (v->denied_scope & KSP_DENY_ALL) {
        v->state = KSP_TPM_DENIED;
        text(v->reason, sizeof(v->reason), "tpm-denied:%s", v->rule);
        text(v->detail, sizeof(v->detail), "denied by rule %s (%s)", v->rule, list.source);
    } else {
        v->state = KSP_TPM_ACCEPTED;
        text(v->detail, sizeof(v->detail), "%s%s%s", r ? "partly denied by rule " : "accepted",
             r ? v->rule : "", r ? "" : "");
    }
    ksp_denylist_free(&list);
}

const struct ksp_verdict *ksp_policy_verdict_inlock(void)
{
    if (!decided) {
        decide();
        decided = true;
        int level = verdict.state == KSP_TPM_NO_PERMISSION ? KSP_LOG_WARN : KSP_LOG_INFO;
        if (verdict.state == KSP_TPM_ACCEPTED)
            ksp_log(level, "policy", "TPM accepted: %s; %s", verdict.identity, verdict.detail);
        else
            ksp_log(level, "policy", "TPM not used (%s): %s%s%s", verdict.reason, verdict.detail,
                    verdict.identity[0] ? "; " : "", verdict.identity);
    }
    return &verdict;
}

bool ksp_policy_tpm_usable_inlock(void)
{
    return ksp_policy_verdict_inlock()->state == KSP_TPM_ACCEPTED;
}

/* Why the TPM may not hold this key even though it is accepted, or NULL. */
static const char *tpm_refuses(const struct ksp_verdict *v, const struct ksp_keyspec *spec,
                               char *buf, size_t len)
{
    struct ksp_backend *be = NULL;
    if (!spec)
        return "unsupported-by-tpm"; /* imports stay in software */
    unsigned need = spec->key_type == CKK_RSA ? KSP_DENY_RSA_KEYGEN : KSP_DENY_ECC_SIGN;
    if (v->denied_scope & need) {
        text(buf, len, "tpm-denied:%s", v->rule);
        return buf;
    }
    const struct ksp_backend_ops *tpm = NULL;
    if (ksp_backend_get_inlock(KSP11_BACKEND_TPM, &tpm, &be) != CKR_OK)
        return "tpm-unreachable";
    const struct ksp_caps *caps = tpm->caps(be);
    bool ok = false;
    if (caps && spec->key_type == CKK_RSA) {
        for (size_t i = 0; i < 4 && caps->rsa_sizes[i] && !ok; i++)
            ok = caps->rsa_sizes[i] == spec->modulus_bits;
    } else if (caps) {
        for (size_t i = 0; i < 4 && caps->curves[i] != KSP_CURVE_NONE && !ok; i++)
            ok = caps->curves[i] == spec->curve;
    }
    return ok ? NULL : "unsupported-by-tpm";
}

CK_RV ksp_policy_choose_inlock(const struct ksp_keyspec *spec, bool require_hw,
                               struct ksp_choice *out)
{
    const struct ksp_verdict *v = ksp_policy_verdict_inlock();
    char buf[96];
    const char *why = v->reason;

    memset(out, 0, sizeof(*out));
    if (v->state == KSP_TPM_ACCEPTED) {
        why = tpm_refuses(v, spec, buf, sizeof(buf));
        if (!why) {
            out->ops = ksp_backend_ops_by_id(KSP11_BACKEND_TPM);
            out->backend_id = KSP11_BACKEND_TPM;
            out->impl_type = KSP11_IMPL_HARDWARE | (v->virtual_tpm ? KSP11_IMPL_VIRTUAL : 0);
            text(out->identity, sizeof(out->identity), "%s", v->identity);
            return CKR_OK;
        }
    }
    bool device_problem = v->state == KSP_TPM_UNREACHABLE || v->state == KSP_TPM_NO_PERMISSION;
    if (require_hw || !ksp_lib.cfg.fallback_software) {
        ksp_warn("policy", "key refused: %s and %s (%s)",
                 require_hw ? "the template requires hardware" : "fallback = none",
                 "the TPM cannot hold it", why);
        return device_problem ? CKR_DEVICE_ERROR : CKR_TEMPLATE_INCONSISTENT;
    }
    ksp_info("policy", "key goes to software: %s", why);
    out->ops = ksp_lib.soft_ops;
    out->backend_id = KSP11_BACKEND_SOFT;
    out->impl_type = KSP11_IMPL_SOFTWARE;
    text(out->reason, sizeof(out->reason), "%s", why);
    return CKR_OK;
}
