/*
 * libFuzzer harness: the TPM deny-list parser (provider/denylist.c,
 * ksp_denylist_parse) and matching of the parsed rules against TPM
 * identities taken from the rules themselves and from the input.
 */
#include <string.h>

#include "denylist.h"
#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet_log();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ksp_denylist l;
    memset(&l, 0, sizeof(l));
    if (ksp_denylist_parse((const char *)data, size, &l) != CKR_OK)
        return 0;
    FUZZ_CHECK(l.n == 0 || l.rules != NULL);
    for (size_t i = 0; i < l.n && i < 64; i++) {
        const struct ksp_deny_rule *r = &l.rules[i], *first = NULL;
        FUZZ_CHECK(memchr(r->id, 0, sizeof(r->id)) != NULL);
        FUZZ_CHECK(memchr(r->manufacturer, 0, sizeof(r->manufacturer)) != NULL);
        FUZZ_CHECK(r->fw_min <= r->fw_max);
        struct ksp_tpm_identity id;
        memset(&id, 0, sizeof(id));
        id.present = CK_TRUE;
        memcpy(id.manufacturer, r->manufacturer, sizeof(id.manufacturer));
        id.fw1 = r->fw_min;
        /* A TPM inside a rule's range is matched by at least that rule. */
        unsigned scope = ksp_denylist_match(&l, &id, &first);
        FUZZ_CHECK((scope & r->scope) == r->scope && first != NULL);
    }
    struct ksp_tpm_identity any;
    memset(&any, 0, sizeof(any));
    any.present = CK_TRUE;
    if (size >= 8) {
        memcpy(any.manufacturer, data, 4);
        memcpy(&any.fw1, data + 4, 4);
    }
    (void)ksp_denylist_match(&l, &any, NULL);
    ksp_denylist_free(&l);
    return 0;
}
