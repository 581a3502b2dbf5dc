/*
 * The ksp11 command: where the module keeps its store, for `ksp11 status`.
 * Mirrors provider/config.c (environment > config file > built-in default)
 * for the one key the tool reports; the tool does not link the core, so only
 * the constants of config.h are shared. The file is read as hostile input:
 * size-capped, and a bad line is skipped.
 */
#include <fcntl.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "config.h"

#define CONF_MAX_SIZE (1024 * 1024)

static const char *env(const char *name)
{
    const char *v = secure_getenv(name);
    return v && v[0] ? v : NULL;
}

static bool home_dir(char *out, size_t n)
{
    const char *h = env("HOME");
    struct passwd pw, *res = NULL;
    char buf[4096];
    if (!h || h[0] != '/') {
        h = NULL;
        if (getpwuid_r(geteuid(), &pw, buf, sizeof(buf), &res) == 0 && res && res->pw_dir &&
            res->pw_dir[0] == '/')
            h = res->pw_dir;
    }
    if (!h)
        return false;
    int w = snprintf(out, n, "%s", h);
    return w > 0 && (size_t)w < n;
}

/* A path value as config.c takes it: a leading "~/" is the home directory. */
static bool set_path(char *out, size_t n, const char *v, size_t len)
{
    char home[PATH_MAX];
    int w;
    if (len >= 2 && v[0] == '~' && v[1] == '/') {
        if (!home_dir(home, sizeof(home)))
            return false;
        w = snprintf(out, n, "%s%.*s", home, (int)(len - 1), v + 1);
    } else {
        w = snprintf(out, n, "%.*s", (int)len, v);
    }
    return w > 0 && (size_t)w < n;
}

static bool is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

/* The last valid "store = value" line of text, if any. */
static bool store_from_text(const char *text, size_t len, char *out, size_t n)
{
    bool found = false;
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        const char *s = p;
        p = nl ? nl + 1 : end;
        while (s < e && is_space(*s))
            s++;
        while (e > s && is_space(e[-1]))
            e--;
        if (s == e || *s == '#' || memchr(s, '\0', (size_t)(e - s)))
            continue;
        const char *eq = memchr(s, '=', (size_t)(e - s));
        if (!eq)
            continue;
        const char *ke = eq;
        while (ke > s && is_space(ke[-1]))
            ke--;
        if (ke - s != 5 || memcmp(s, "store", 5) != 0)
            continue;
        const char *vs = eq + 1;
        while (vs < e && is_space(*vs))
            vs++;
        if (vs < e && set_path(out, n, vs, (size_t)(e - vs)))
            found = true;
    }
    return found;
}

static bool store_from_file(const char *path, char *out, size_t n)
{
    struct stat st;
    bool found = false;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return false;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size <= CONF_MAX_SIZE) {
        char *buf = malloc(CONF_MAX_SIZE + 1);
        size_t got = 0;
        ssize_t r = 0;
        while (buf && got <= CONF_MAX_SIZE) {
            r = read(fd, buf + got, CONF_MAX_SIZE + 1 - got);
            if (r <= 0)
                break;
            got += (size_t)r;
        }
        if (buf && r >= 0 && got <= CONF_MAX_SIZE)
            found = store_from_text(buf, got, out, n);
        free(buf);
    }
    close(fd);
    return found;
}

bool ksp_conf_store_root(char *out, size_t n, const char **origin)
{
    const char *v = env("KSP11_STORE");
    char home[PATH_MAX];
    int w;

    if (v && set_path(out, n, v, strlen(v))) {
        *origin = "KSP11_STORE";
        return true;
    }
    const char *conf = env("KSP11_CONF");
    if (store_from_file(conf ? conf : KSP_CONF_DEFAULT, out, n)) {
        *origin = "config file";
        return true;
    }
    *origin = "default";
    if (geteuid() == 0) {
        w = snprintf(out, n, "%s", KSP_MACHINE_STORE);
        return w > 0 && (size_t)w < n;
    }
    /* XDG Base Directory: a relative XDG_DATA_HOME is invalid and ignored. */
    v = env("XDG_DATA_HOME");
    if (v && v[0] == '/') {
        w = snprintf(out, n, "%s/ksp11", v);
        return w > 0 && (size_t)w < n;
    }
    if (!home_dir(home, sizeof(home)))
        return false;
    w = snprintf(out, n, "%s/.local/share/ksp11", home);
    return w > 0 && (size_t)w < n;
}
