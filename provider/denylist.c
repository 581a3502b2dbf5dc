/*
 * TPM deny list: parser, loader and matcher (denylist.h).
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "denylist.h"
#include "log.h"

#define MAX_FILE  (256 * 1024)
#define MAX_RULES 1024

/* Keep in sync with packaging/tpm-denylist.conf (a test compares them). */
const char ksp_denylist_default[] =
    "# ksp11 TPM deny list (semantics.md 2.1). Format:\n"
    "#   rule-id manufacturer fw-min fw-max scope\n"
    "# scope: all | rsa-keygen | ecc-sign. Firmware is TPM_PT_FIRMWARE_VERSION_1\n"
    "# read as major.minor.\n"
    "#\n"
    "# Infineon RSALib weak RSA key generation (ROCA, CVE-2017-15361).\n"
    "IFX-ROCA-CVE-2017-15361-4.x    IFX 0.0    4.33   rsa-keygen\n"
    "IFX-ROCA-CVE-2017-15361-4.4x   IFX 4.40   4.42   rsa-keygen\n"
    "IFX-ROCA-CVE-2017-15361-5.x    IFX 5.0    5.61   rsa-keygen\n"
    "IFX-ROCA-CVE-2017-15361-6.x    IFX 6.0    6.42   rsa-keygen\n"
    "IFX-ROCA-CVE-2017-15361-7.x    IFX 7.0    7.61   rsa-keygen\n"
    "IFX-ROCA-CVE-2017-15361-133.x  IFX 133.0  133.32 rsa-keygen\n"
    "# STMicroelectronics ST33 ECDSA timing leak (TPM-FAIL, CVE-2019-16863).\n"
    "STM-TPMFAIL-CVE-2019-16863-71  STM 71.0   71.12  ecc-sign\n"
    "STM-TPMFAIL-CVE-2019-16863-73  STM 73.0   73.9   ecc-sign\n"
    "STM-TPMFAIL-CVE-2019-16863-74  STM 74.0   74.16  ecc-sign\n"
    "# Intel PTT ECDSA timing leak (TPM-FAIL, CVE-2019-11090); fixed in the\n"
    "# INTEL-SA-00241 CSME trains. The PTT firmware encoding is unverified on\n"
    "# hardware: these ranges cover CSME 11.0-11.7 only.\n"
    "INTC-TPMFAIL-CVE-2019-11090-11 INTC 11.0  11.7   ecc-sign\n"
    "# AMD fTPM (faulTPM, physical attacker). Allowed by default, as Windows does;\n"
    "# uncomment in /etc/ksp11/tpm-denylist.conf if your threat model includes\n"
    "# physical access.\n"
    "#AMD-faulTPM                   AMD 0.0    65535.65535 all\n";

static void trim_manufacturer(const char *in, char out[5])
{
    size_t n = strnlen(in, 4);
    memcpy(out, in, n);
    while (n > 0 && (out[n - 1] == ' ' || out[n - 1] == '\0'))
        n--;
    out[n] = '\0';
}

static int parse_fw(const char *s, uint32_t *out)
{
    char *end = NULL;
    errno = 0;
    unsigned long major = strtoul(s, &end, 10);
    if (errno || end == s || *end != '.' || major > 0xFFFF)
        return -1;
    const char *m = end + 1;
    unsigned long minor = strtoul(m, &end, 10);
    if (errno || end == m || *end != '\0' || minor > 0xFFFF)
        return -1;
    *out = (uint32_t)((major << 16) | minor);
    return 0;
}

static int parse_scope(const char *s, unsigned *out)
{
    if (strcmp(s, "all") == 0)
        *out = KSP_DENY_ALL;
    else if (strcmp(s, "rsa-keygen") == 0)
        *out = KSP_DENY_RSA_KEYGEN;
    else if (strcmp(s, "ecc-sign") == 0)
        *out = KSP_DENY_ECC_SIGN;
    else
        return -1;
    return 0;
}

static int parse_line(char *line, struct ksp_deny_rule *r)
{
    char *f[6] = {0};
    int n = 0;
    for (char *tok = strtok(line, " \t\r"); tok && n < 6; tok = strtok(NULL, " \t\r"))
        f[n++] = tok;
    if (n != 5 || strlen(f[0]) >= sizeof(r->id) || strlen(f[1]) > 4)
        return -1;
    for (const char *p = f[0]; *p; p++)
        if (*p < 0x21 || *p > 0x7e)
            return -1;
    memset(r, 0, sizeof(*r));
    memcpy(r->id, f[0], strlen(f[0]));
    trim_manufacturer(f[1], r->manufacturer);
    if (parse_fw(f[2], &r->fw_min) || parse_fw(f[3], &r->fw_max) || r->fw_min > r->fw_max ||
        parse_scope(f[4], &r->scope))
        return -1;
    return 0;
}

CK_RV ksp_denylist_parse(const char *text, size_t len, struct ksp_denylist *list)
{
    size_t pos = 0, lineno = 0;
    char line[512];
    while (pos < len) {
        size_t start = pos;
        while (pos < len && text[pos] != '\n')
            pos++;
        size_t n = pos - start;
        pos++;
        lineno++;
        if (n == 0 || text[start] == '#')
            continue;
        if (n >= sizeof(line) || memchr(text + start, '\0', n)) {
            ksp_warn("policy", "deny list %s line %zu: malformed, skipped", list->source, lineno);
            continue;
        }
        memcpy(line, text + start, n);
        line[n] = '\0';
        bool blank = true;
        for (size_t i = 0; i < n && blank; i++)
            blank = line[i] == ' ' || line[i] == '\t' || line[i] == '\r';
        if (blank)
            continue;
        struct ksp_deny_rule r;
        if (parse_line(line, &r) != 0) {
            ksp_warn("policy", "deny list %s line %zu: malformed, skipped", list->source, lineno);
            continue;
        }
        if (list->n >= MAX_RULES) {
            ksp_warn("policy", "deny list %s: more than %d rules, rest ignored", list->source,
                     MAX_RULES);
            break;
        }
        struct ksp_deny_rule *nr = realloc(list->rules, (list->n + 1) * sizeof(*nr));
        if (!nr)
            return CKR_HOST_MEMORY;
        list->rules = nr;
        list->rules[list->n++] = r;
    }
    return CKR_OK;
}

static char *read_small_file(const char *path, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return NULL;
    struct stat st;
    char *buf = NULL;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= MAX_FILE) {
        buf = malloc((size_t)st.st_size + 1);
        ssize_t got = buf ? read(fd, buf, (size_t)st.st_size) : -1;
        if (got < 0) {
            free(buf);
            buf = NULL;
        } else {
            *len = (size_t)got;
        }
    }
    close(fd);
    return buf;
}

CK_RV ksp_denylist_load(const char *path, struct ksp_denylist *list)
{
    const char *candidates[] = {path, KSP_DENYLIST_ETC, KSP_DENYLIST_DEFAULT};
    memset(list, 0, sizeof(*list));
    for (size_t i = 0; i < sizeof(candidates) / sizeof(candidates[0]); i++) {
        if (!candidates[i] || !*candidates[i])
            continue;
        size_t len = 0;
        char *text = read_small_file(candidates[i], &len);
        if (!text) {
            if (i == 0)
                ksp_warn("policy", "deny list %s cannot be read: using the next location",
                         candidates[i]);
            continue;
        }
        snprintf(list->source, sizeof(list->source), "%s", candidates[i]);
        CK_RV rv = ksp_denylist_parse(text, len, list);
        free(text);
        return rv;
    }
    snprintf(list->source, sizeof(list->source), "built-in");
    return ksp_denylist_parse(ksp_denylist_default, strlen(ksp_denylist_default), list);
}

void ksp_denylist_free(struct ksp_denylist *list)
{
    free(list->rules);
    memset(list, 0, sizeof(*list));
}

unsigned ksp_denylist_match(const struct ksp_denylist *list, const struct ksp_tpm_identity *id,
                            const struct ksp_deny_rule **first)
{
    unsigned scope = 0;
    char man[5];
    trim_manufacturer(id->manufacturer, man);
    if (first)
        *first = NULL;
    for (size_t i = 0; i < list->n; i++) {
        const struct ksp_deny_rule *r = &list->rules[i];
        if (strcmp(r->manufacturer, man) != 0 || id->fw1 < r->fw_min || id->fw1 > r->fw_max)
            continue;
        if (first && !*first)
            *first = r;
        scope |= r->scope;
    }
    return scope;
}
