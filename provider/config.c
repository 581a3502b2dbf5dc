/*
 * Configuration (DESIGN.md §1): built-in defaults < config file < environment.
 * The file is hostile input: every bad line is logged and skipped, never
 * fatal. Environment variables are read with secure_getenv so that a setuid
 * host cannot be steered into writing logs or stores where the caller wants.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include <stdio.h>
#include "log.h"

#define AREA "config"

/* Larger files are refused as a whole: a config is a few hundred bytes. */
#define CONF_MAX_SIZE (1024 * 1024)
#define KDF_MS_MAX    10000u

static const char *env(const char *name)
{
    const char *v = secure_getenv(name);
    return v && v[0] ? v : NULL;
}

/* Home directory of the effective user: $HOME, else the password database. */
static char *home_dir(void)
{
    const char *h = env("HOME");
    if (h && h[0] == '/')
        return strdup(h);
    struct passwd pw, *res = NULL;
    char buf[4096];
    if (getpwuid_r(geteuid(), &pw, buf, sizeof(buf), &res) == 0 && res && res->pw_dir &&
        res->pw_dir[0] == '/')
        return strdup(res->pw_dir);
    return NULL;
}

static char *join(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    char *s = malloc(la + lb + 1);
    if (!s)
        return NULL;
    memcpy(s, a, la);
    memcpy(s + la, b, lb + 1);
    return s;
}

/*
 * Copy a path value, expanding a leading "~/". Returns NULL (and logs) if the
 * home directory is unknown; *oom is set on allocation failure.
 */
static char *expand_path(const char *v, bool *oom)
{
    char *out = NULL;
    if (strncmp(v, "~/", 2) != 0) {
        out = strdup(v);
        if (!out)
            *oom = true;
        return out;
    }
    char *home = home_dir();
    if (!home) {
        ksp_warn(AREA, "cannot expand '~/': home directory unknown");
        return NULL;
    }
    out = join(home, v + 1);
    free(home);
    if (!out)
        *oom = true;
    return out;
}

static int parse_bool(const char *v)
{
    static const char *const yes[] = {"yes", "true", "on", "1"};
    static const char *const no[] = {"no", "false", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0)
            return 1;
        if (strcasecmp(v, no[i]) == 0)
            return 0;
    }
    return -1;
}

static bool parse_uint(const char *v, unsigned long max, unsigned long *out)
{
    if (v[0] < '0' || v[0] > '9')
        return false;
    errno = 0;
    char *end = NULL;
    unsigned long n = strtoul(v, &end, 10);
    if (errno || *end != '\0' || n > max)
        return false;
    *out = n;
    return true;
}

/* Replace *slot with a copy of v (NULL v or "" clears it). */
static bool set_str(char **slot, const char *v, bool path, bool *oom)
{
    char *n = NULL;
    if (v && v[0]) {
        n = path ? expand_path(v, oom) : strdup(v);
        if (!n) {
            if (!path)
                *oom = true;
            return false;
        }
    }
    free(*slot);
    *slot = n;
    return true;
}

/*
 * Apply one setting; where says "file:line" or the variable name for the log.
 * Returns false only on allocation failure.
 */
static bool apply(struct ksp_config *cfg, const char *key, const char *v, const char *where)
{
    bool oom = false;
    bool ok = true;
    unsigned long n = 0;
    int b = 0;

    if (strcmp(key, "store") == 0) {
        if (!v[0])
            ok = false;
        else
            ok = set_str(&cfg->store_root, v, true, &oom);
    } else if (strcmp(key, "tcti") == 0) {
        ok = set_str(&cfg->tcti, v, false, &oom);
    } else if (strcmp(key, "denylist") == 0) {
        ok = set_str(&cfg->denylist, v, true, &oom);
    } else if (strcmp(key, "log_file") == 0) {
        ok = set_str(&cfg->log_file, v, true, &oom);
    } else if (strcmp(key, "log_level") == 0) {
        b = ksp_log_level_parse(v);
        ok = b >= 0;
        if (ok)
            cfg->log_level = b;
    } else if (strcmp(key, "fallback") == 0) {
        if (strcasecmp(v, "software") == 0)
            cfg->fallback_software = true;
        else if (strcasecmp(v, "none") == 0)
            cfg->fallback_software = false;
        else
            ok = false;
    } else if (strcmp(key, "allow_software_tpm") == 0) {
        b = parse_bool(v);
        ok = b >= 0;
        if (ok)
            cfg->allow_software_tpm = b == 1;
    } else if (strcmp(key, "kdf_ms") == 0) {
        ok = parse_uint(v, KDF_MS_MAX, &n) && n > 0;
        if (ok)
            cfg->kdf_ms = (unsigned)n;
    } else {
        ksp_warn(AREA, "%s: unknown key '%.64s' ignored", where, key);
        return true;
    }
    if (oom)
        return false;
    if (!ok)
        ksp_warn(AREA, "%s: bad value for %s ignored", where, key);
    return true;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static bool key_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* Parse one line [s, e); false only on allocation failure. */
static bool parse_line(struct ksp_config *cfg, const char *s, const char *e, size_t lineno)
{
    char where[48];
    snprintf(where, sizeof(where), "line %zu", lineno);
    while (s < e && is_space(*s))
        s++;
    while (e > s && is_space(e[-1]))
        e--;
    if (s == e || *s == '#')
        return true;
    if (memchr(s, '\0', (size_t)(e - s))) {
        ksp_warn(AREA, "%s: NUL byte, line ignored", where);
        return true;
    }
    const char *eq = memchr(s, '=', (size_t)(e - s));
    if (!eq) {
        ksp_warn(AREA, "%s: no '=', line ignored", where);
        return true;
    }
    const char *ke = eq;
    while (ke > s && is_space(ke[-1]))
        ke--;
    const char *vs = eq + 1;
    while (vs < e && is_space(*vs))
        vs++;
    size_t klen = (size_t)(ke - s);
    bool key_ok = klen > 0 && klen <= 32;
    for (const char *p = s; key_ok && p < ke; p++)
        key_ok = key_char(*p);
    if (!key_ok) {
        ksp_warn(AREA, "%s: malformed key, line ignored", where);
        return true;
    }
    char key[33];
    memcpy(key, s, klen);
    key[klen] = '\0';
    size_t vlen = (size_t)(e - vs);
    char *val = malloc(vlen + 1);
    if (!val)
        return false;
    memcpy(val, vs, vlen);
    val[vlen] = '\0';
    bool ok = apply(cfg, key, val, where);
    free(val);
    return ok;
}

/* Returns false only on allocation failure (cfg then partially updated). */
static bool parse_text(const char *text, size_t len, struct ksp_config *cfg)
{
    const char *p = text;
    const char *end = text + len;
    size_t lineno = 0;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        if (!parse_line(cfg, p, le, ++lineno))
            return false;
        p = nl ? nl + 1 : end;
    }
    return true;
}

void ksp_config_parse(const char *text, size_t len, struct ksp_config *cfg)
{
    if (!cfg || (!text && len))
        return;
    if (!parse_text(text, len, cfg))
        ksp_err(AREA, "out of memory while parsing the configuration");
}

/*
 * Read the whole config file. *data NULL with CKR_OK: no usable file (missing,
 * unreadable, not regular, too large; the last three are logged).
 */
static CK_RV read_conf(const char *path, char **data, size_t *len)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    char *buf = NULL;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    struct stat st;
    *data = NULL;
    *len = 0;
    if (fd < 0) {
        if (errno != ENOENT && errno != ENOTDIR)
            ksp_warn(AREA, "cannot open %s: %s", path, strerror(errno));
        rv = CKR_OK;
        goto out;
    }
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > CONF_MAX_SIZE) {
        ksp_warn(AREA, "%s is not a regular file of at most %d bytes; ignored", path,
                 CONF_MAX_SIZE);
        rv = CKR_OK;
        goto out;
    }
    buf = malloc(CONF_MAX_SIZE + 1);
    if (!buf) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    size_t got = 0;
    while (got <= CONF_MAX_SIZE) {
        ssize_t r = read(fd, buf + got, CONF_MAX_SIZE + 1 - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            ksp_warn(AREA, "cannot read %s: %s", path, strerror(errno));
            rv = CKR_OK;
            goto out;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    if (got > CONF_MAX_SIZE) {
        ksp_warn(AREA, "%s grew beyond %d bytes; ignored", path, CONF_MAX_SIZE);
        rv = CKR_OK;
        goto out;
    }
    *data = buf;
    *len = got;
    buf = NULL;
    rv = CKR_OK;
out:
    free(buf);
    if (fd >= 0)
        close(fd);
    return rv;
}

static CK_RV default_store(char **out)
{
    if (geteuid() == 0) {
        *out = strdup(KSP_MACHINE_STORE);
        return *out ? CKR_OK : CKR_HOST_MEMORY;
    }
    /* XDG Base Directory: relative values are invalid and must be ignored. */
    const char *xdg = env("XDG_DATA_HOME");
    if (xdg && xdg[0] == '/') {
        *out = join(xdg, "/ksp11");
        return *out ? CKR_OK : CKR_HOST_MEMORY;
    }
    char *home = home_dir();
    if (!home) {
        ksp_err(AREA, "no store root: set KSP11_STORE, or HOME");
        return CKR_FUNCTION_FAILED;
    }
    *out = join(home, "/.local/share/ksp11");
    free(home);
    return *out ? CKR_OK : CKR_HOST_MEMORY;
}

static const struct {
    const char *var;
    const char *key;
} env_keys[] = {
    {"KSP11_STORE", "store"},       {"KSP11_TCTI", "tcti"},
    {"KSP11_DENYLIST", "denylist"}, {"KSP11_LOG_LEVEL", "log_level"},
    {"KSP11_LOG_FILE", "log_file"}, {"KSP11_KDF_MS", "kdf_ms"},
};

CK_RV ksp_config_load(const char *path, struct ksp_config *out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_config cfg = {0};
    char *text = NULL;
    size_t len = 0;

    cfg.log_level = KSP_LOG_WARN;
    cfg.fallback_software = true;
    cfg.allow_software_tpm = true;
    cfg.kdf_ms = 100;

    const char *file = path ? path : env("KSP11_CONF");
    if (!file)
        file = KSP_CONF_DEFAULT;
    rv = read_conf(file, &text, &len);
    if (rv != CKR_OK)
        goto out;
    if (text) {
        cfg.conf_path = strdup(file);
        if (!cfg.conf_path || !parse_text(text, len, &cfg)) {
            rv = CKR_HOST_MEMORY;
            goto out;
        }
    }
    for (size_t i = 0; i < sizeof(env_keys) / sizeof(env_keys[0]); i++) {
        const char *v = env(env_keys[i].var);
        if (v && !apply(&cfg, env_keys[i].key, v, env_keys[i].var)) {
            rv = CKR_HOST_MEMORY;
            goto out;
        }
    }
    if (!cfg.store_root) {
        rv = default_store(&cfg.store_root);
        if (rv != CKR_OK)
            goto out;
    }
    *out = cfg;
    memset(&cfg, 0, sizeof(cfg));
    rv = CKR_OK;
out:
    free(text);
    ksp_config_free(&cfg);
    return rv;
}

void ksp_config_free(struct ksp_config *cfg)
{
    if (!cfg)
        return;
    free(cfg->conf_path);
    free(cfg->store_root);
    free(cfg->tcti);
    free(cfg->denylist);
    free(cfg->log_file);
    memset(cfg, 0, sizeof(*cfg));
}
