/*
 * libFuzzer harness: the config file parser (provider/config.c,
 * ksp_config_parse), applied on top of the built-in defaults. Whatever the
 * text, the result must be a usable configuration: values in range, strings
 * NUL-terminated.
 */
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "fuzz_common.h"
#include "log.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    /* Paths with "~/" need a home directory. */
    setenv("HOME", "/nonexistent-home", 1);
    fuzz_quiet_log();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ksp_config c;
    memset(&c, 0, sizeof(c));
    c.log_level = KSP_LOG_WARN;
    c.fallback_software = true;
    c.allow_software_tpm = true;
    c.kdf_ms = 100;
    ksp_config_parse((const char *)data, size, &c);
    FUZZ_CHECK(c.log_level >= KSP_LOG_NONE && c.log_level <= KSP_LOG_DEBUG);
    FUZZ_CHECK(c.kdf_ms <= 10000);
    const char *s[] = {c.store_root, c.tcti, c.denylist, c.log_file};
    for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++)
        if (s[i])
            FUZZ_CHECK(strlen(s[i]) <= size + 32 + strlen("/nonexistent-home"));
    ksp_config_free(&c);
    return 0;
}
