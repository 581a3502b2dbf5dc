/*
 * The ksp11 command: output escaping. A small streaming JSON writer (RFC 8259,
 * pretty-printed) and terminal-safe text. Labels and reasons come from the
 * token, i.e. from files anyone with write access to the store could craft:
 * invalid UTF-8 becomes U+FFFD in JSON and \xNN in text, and control
 * characters never reach the terminal.
 */
#include <string.h>

#include "cli.h"

/* Length of the valid UTF-8 sequence at p (RFC 3629 §4), 0 if invalid. */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned char c = p[0];
    size_t len;
    unsigned long cp;
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3f);
    }
    /* Overlong forms, UTF-16 surrogates, beyond U+10FFFF. */
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return len;
}

void ksp_text_put(FILE *f, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    while (n > 0) {
        size_t l = utf8_len(p, n);
        /* C0, DEL and C1 controls (U+0080..U+009F = C2 80..C2 9F) are escaped. */
        bool ctl = l == 1 ? (p[0] < 0x20 || p[0] == 0x7f) : (l == 2 && p[0] == 0xc2 && p[1] < 0xa0);
        if (l == 0 || ctl) {
            fprintf(f, "\\x%02x", p[0]);
            l = 1;
        } else if (p[0] == '\\' || p[0] == '"') {
            /* Labels are printed in quotes: keep them unambiguous. */
            fputc('\\', f);
            fputc(p[0], f);
        } else {
            fwrite(p, 1, l, f);
        }
        p += l;
        n -= l;
    }
}

static void json_string(FILE *f, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s);
    fputc('"', f);
    while (n > 0) {
        size_t l = utf8_len(p, n);
        if (l == 0) {
            fputs("\\ufffd", f);
            l = 1;
        } else if (l > 1) {
            fwrite(p, 1, l, f);
        } else if (p[0] == '"' || p[0] == '\\') {
            fputc('\\', f);
            fputc(p[0], f);
        } else if (p[0] == '\n') {
            fputs("\\n", f);
        } else if (p[0] == '\r') {
            fputs("\\r", f);
        } else if (p[0] == '\t') {
            fputs("\\t", f);
        } else if (p[0] < 0x20 || p[0] == 0x7f) {
            fprintf(f, "\\u%04x", p[0]);
        } else {
            fputc(p[0], f);
        }
        p += l;
        n -= l;
    }
    fputc('"', f);
}

void ksp_json_init(struct ksp_json *j, FILE *f)
{
    memset(j, 0, sizeof(*j));
    j->f = f;
}

/* Separator, newline and indentation before a value; then its key, if any. */
static void prefix(struct ksp_json *j, const char *key)
{
    if (j->depth > 0) {
        if (j->need_comma[j->depth])
            fputc(',', j->f);
        fputc('\n', j->f);
        for (int i = 0; i < j->depth; i++)
            fputs("  ", j->f);
        j->need_comma[j->depth] = true;
    }
    if (key) {
        json_string(j->f, key);
        fputs(": ", j->f);
    }
}

static void open_(struct ksp_json *j, const char *key, char c)
{
    prefix(j, key);
    fputc(c, j->f);
    if (j->depth < KSP_JSON_MAX_DEPTH - 1)
        j->depth++;
    j->need_comma[j->depth] = false;
}

static void close_(struct ksp_json *j, char c)
{
    bool had_members = j->need_comma[j->depth];
    if (j->depth > 0)
        j->depth--;
    if (had_members) {
        fputc('\n', j->f);
        for (int i = 0; i < j->depth; i++)
            fputs("  ", j->f);
    }
    fputc(c, j->f);
}

void ksp_json_obj_begin(struct ksp_json *j, const char *key)
{
    open_(j, key, '{');
}

void ksp_json_obj_end(struct ksp_json *j)
{
    close_(j, '}');
}

void ksp_json_arr_begin(struct ksp_json *j, const char *key)
{
    open_(j, key, '[');
}

void ksp_json_arr_end(struct ksp_json *j)
{
    close_(j, ']');
}

void ksp_json_str(struct ksp_json *j, const char *key, const char *v)
{
    prefix(j, key);
    json_string(j->f, v ? v : "");
}

void ksp_json_uint(struct ksp_json *j, const char *key, unsigned long long v)
{
    prefix(j, key);
    fprintf(j->f, "%llu", v);
}

void ksp_json_bool(struct ksp_json *j, const char *key, bool v)
{
    prefix(j, key);
    fputs(v ? "true" : "false", j->f);
}

void ksp_json_null(struct ksp_json *j, const char *key)
{
    prefix(j, key);
    fputs("null", j->f);
}

void ksp_json_finish(struct ksp_json *j)
{
    fputc('\n', j->f);
}
