/*
 * The ksp11 command: RFC 7512 pkcs11: URIs for objects, and hex helpers for
 * CKA_ID. Values are percent-encoded except for RFC 3986 unreserved
 * characters (stricter than RFC 7512 §2.3 requires, so a URI survives any
 * shell or config file it is pasted into); id is always fully encoded.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

struct sbuf {
    char *p;
    size_t len;
    size_t cap;
    bool oom;
};

static void put(struct sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 128;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void puts_(struct sbuf *b, const char *s)
{
    put(b, s, strlen(s));
}

/* RFC 3986 §2.3 */
static bool unreserved(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~';
}

static void put_pct(struct sbuf *b, const unsigned char *v, size_t n, bool all)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        if (!all && unreserved(v[i])) {
            put(b, (const char *)&v[i], 1);
        } else {
            char e[3] = {'%', hex[v[i] >> 4], hex[v[i] & 0xf]};
            put(b, e, 3);
        }
    }
}

char *ksp_uri_build(const char *token, const char *object, const char *type,
                    const unsigned char *id, size_t id_len)
{
    struct sbuf b = {0};
    const char *sep = "";

    puts_(&b, "pkcs11:");
    if (token) {
        puts_(&b, "token=");
        put_pct(&b, (const unsigned char *)token, strlen(token), false);
        sep = ";";
    }
    if (object) {
        puts_(&b, sep);
        puts_(&b, "object=");
        put_pct(&b, (const unsigned char *)object, strlen(object), false);
        sep = ";";
    }
    if (type) {
        puts_(&b, sep);
        puts_(&b, "type=");
        puts_(&b, type);
        sep = ";";
    }
    if (id && id_len) {
        puts_(&b, sep);
        puts_(&b, "id=");
        put_pct(&b, id, id_len, true);
    }
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* "0a1b", "0x0a1b" or "0a:1b"; an even number of digits, at least one byte. */
bool ksp_hex_parse(const char *s, unsigned char *out, size_t max, size_t *out_len)
{
    size_t n = 0;
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
        s += 2;
    while (*s) {
        if (*s == ':' && n > 0 && s[1] != '\0') {
            s++;
            continue;
        }
        int hi = hexval(s[0]);
        int lo = hi >= 0 ? hexval(s[1]) : -1;
        if (hi < 0 || lo < 0 || n >= max)
            return false;
        out[n++] = (unsigned char)(hi << 4 | lo);
        s += 2;
    }
    if (n == 0)
        return false;
    *out_len = n;
    return true;
}

void ksp_hex_format(const unsigned char *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 0xf];
    }
    out[2 * n] = '\0';
}

/* Percent-decode n bytes of s (RFC 3986 §2.1) into a fresh buffer. */
static unsigned char *pct_decode(const char *s, size_t n, size_t *out_len)
{
    unsigned char *out = malloc(n + 1);
    size_t o = 0;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            int hi = i + 2 < n ? hexval(s[i + 1]) : -1;
            int lo = hi >= 0 ? hexval(s[i + 2]) : -1;
            if (hi < 0 || lo < 0) {
                free(out);
                return NULL;
            }
            out[o++] = (unsigned char)(hi << 4 | lo);
            i += 2;
        } else {
            out[o++] = (unsigned char)s[i];
        }
    }
    out[o] = '\0';
    *out_len = o;
    return out;
}

/* A text attribute: decoded, NUL-free. */
static bool text_attr(const char *v, size_t n, char **out)
{
    size_t len = 0;
    unsigned char *d = pct_decode(v, n, &len);
    if (!d)
        return false;
    if (strlen((char *)d) != len) {
        free(d);
        return false;
    }
    free(*out);
    *out = (char *)d;
    return true;
}

/*
 * --key / --cert ARG [--id HEX]: ARG is a pkcs11: URI (RFC 7512; token=,
 * object=, id= are used, type= and the other path attributes are ignored:
 * the command knows which class it wants) or else a plain label.
 */
int ksp_ref_parse(struct ksp_cli *cli, const char *what, const char *arg, const char *id_hex,
                  struct ksp_ref *out)
{
    struct ksp_ref r = {0};
    if (arg && strncmp(arg, "pkcs11:", 7) == 0) {
        const char *p = arg + 7;
        const char *end = strchr(p, '?');
        if (!end)
            end = p + strlen(p);
        while (p < end) {
            const char *semi = memchr(p, ';', (size_t)(end - p));
            const char *stop = semi ? semi : end;
            const char *eq = memchr(p, '=', (size_t)(stop - p));
            if (!eq) {
                ksp_ref_free(&r);
                return ksp_cli_usage(cli, "%s: '%.*s' in the pkcs11: URI is not name=value", what,
                                     (int)(stop - p), p);
            }
            size_t klen = (size_t)(eq - p), vlen = (size_t)(stop - eq - 1);
            bool ok = true;
            if (klen == 5 && memcmp(p, "token", 5) == 0) {
                ok = text_attr(eq + 1, vlen, &r.token);
            } else if (klen == 6 && memcmp(p, "object", 6) == 0) {
                ok = text_attr(eq + 1, vlen, &r.label);
            } else if (klen == 2 && memcmp(p, "id", 2) == 0) {
                size_t len = 0;
                unsigned char *d = pct_decode(eq + 1, vlen, &len);
                ok = d && len > 0 && len <= sizeof(r.id);
                if (ok) {
                    memcpy(r.id, d, len);
                    r.id_len = len;
                }
                free(d);
            }
            if (!ok) {
                ksp_ref_free(&r);
                return ksp_cli_usage(cli, "%s: bad value of '%.*s' in the pkcs11: URI", what,
                                     (int)klen, p);
            }
            p = semi ? semi + 1 : end;
        }
    } else if (arg) {
        if (!arg[0]) {
            return ksp_cli_usage(cli, "%s needs a label or a pkcs11: URI", what);
        }
        r.label = strdup(arg);
        if (!r.label)
            return ksp_cli_err("out of memory");
    }
    if (id_hex) {
        if (r.id_len) {
            ksp_ref_free(&r);
            return ksp_cli_usage(cli, "give the id in the URI or with --id, not both");
        }
        if (!ksp_hex_parse(id_hex, r.id, sizeof(r.id), &r.id_len)) {
            ksp_ref_free(&r);
            return ksp_cli_usage(cli, "--id takes 1 to %d bytes in hex, e.g. 01a2", KSP_ID_MAX);
        }
    }
    if (!r.label && !r.id_len) {
        ksp_ref_free(&r);
        return ksp_cli_usage(cli,
                             "%s: name the object by label, id or pkcs11: URI (with object= "
                             "or id=)",
                             what);
    }
    *out = r;
    return KSP_EXIT_OK;
}

void ksp_ref_free(struct ksp_ref *r)
{
    free(r->token);
    free(r->label);
    memset(r, 0, sizeof(*r));
}
