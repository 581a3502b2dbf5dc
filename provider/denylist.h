/*
 * The TPM deny list (DESIGN.md §3, semantics.md §2.1): rules naming a TPM
 * manufacturer, a firmware range and what is denied. Data, not code: a file
 * (KSP11_DENYLIST, the config's `denylist`, /etc/ksp11/tpm-denylist.conf,
 * /usr/share/ksp11/tpm-denylist.conf, first that exists) or, when none exists,
 * the built-in default list, which is the same text the package installs.
 *
 * Line format (hostile input: bad lines are logged and skipped):
 *   <rule-id> <manufacturer> <fw-min> <fw-max> <scope>
 * fw-min/fw-max are "major.minor" of TPM_PT_FIRMWARE_VERSION_1 read as
 * (major << 16) | minor; scope is all, rsa-keygen or ecc-sign; `#` starts a
 * comment line.
 */
#ifndef KSP_DENYLIST_H
#define KSP_DENYLIST_H

#include <stddef.h>
#include <stdint.h>

#include "ksp11/backend.h"

enum ksp_deny_scope {
    KSP_DENY_ALL = 1,
    KSP_DENY_RSA_KEYGEN = 2,
    KSP_DENY_ECC_SIGN = 4,
};

struct ksp_deny_rule {
    char id[48];
    char manufacturer[5];
    uint32_t fw_min, fw_max; /* (major << 16) | minor */
    unsigned scope;          /* enum ksp_deny_scope bits */
};

struct ksp_denylist {
    struct ksp_deny_rule *rules;
    size_t n;
    char source[256]; /* file path or "built-in" */
};

/* Parse text (any bytes) into list; never fails on bad lines. */
CK_RV ksp_denylist_parse(const char *text, size_t len, struct ksp_denylist *list);
/* Load from the first existing location (path: explicit override or NULL). */
CK_RV ksp_denylist_load(const char *path, struct ksp_denylist *list);
void ksp_denylist_free(struct ksp_denylist *list);
/* Union of the scopes of every rule matching id, and the first matching rule
 * (NULL if none). */
unsigned ksp_denylist_match(const struct ksp_denylist *list, const struct ksp_tpm_identity *id,
                            const struct ksp_deny_rule **first);

/* The built-in default list text. */
extern const char ksp_denylist_default[];

#endif
