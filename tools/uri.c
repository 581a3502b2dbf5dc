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
