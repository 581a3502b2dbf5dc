/*
 * The ksp11 command: reading and showing objects. Attributes are fetched one
 * at a time so an attribute a class does not have (CKR_ATTRIBUTE_TYPE_INVALID)
 * only leaves that field empty; values read back are treated as untrusted.
 */
#include <stdlib.h>
#include <string.h>

#include "x509.h"

/* DER OBJECT IDENTIFIERs as found in CKA_EC_PARAMS (RFC 5480 §2.1.1.1). */
static const struct {
    const char *name;
    unsigned char der[10];
    size_t len;
} curves[] = {
    {"P-256", {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07}, 10},
    {"P-384", {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22}, 7},
    {"P-521", {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23}, 7},
};

CK_RV ksp_obj_find(struct ksp_cli *cli, CK_SESSION_HANDLE s, CK_ATTRIBUTE *tmpl, CK_ULONG n,
                   CK_OBJECT_HANDLE **out, size_t *out_n)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    CK_OBJECT_HANDLE *all = NULL;
    size_t count = 0, cap = 0;

    rv = cli->f->C_FindObjectsInit(s, tmpl, n);
    if (rv != CKR_OK)
        return rv;
    for (;;) {
        CK_OBJECT_HANDLE batch[64];
        CK_ULONG got = 0;
        rv = cli->f->C_FindObjects(s, batch, 64, &got);
        if (rv != CKR_OK || got == 0)
            break;
        if (got > 64) {
            rv = CKR_GENERAL_ERROR;
            break;
        }
        if (count + got > cap) {
            size_t ncap = cap ? cap * 2 : 64;
            while (ncap < count + got)
                ncap *= 2;
            CK_OBJECT_HANDLE *p = realloc(all, ncap * sizeof(*p));
            if (!p) {
                rv = CKR_HOST_MEMORY;
                break;
            }
            all = p;
            cap = ncap;
        }
        memcpy(all + count, batch, got * sizeof(*batch));
        count += got;
    }
    CK_RV frv = cli->f->C_FindObjectsFinal(s);
    if (rv == CKR_OK)
        rv = frv;
    if (rv != CKR_OK) {
        free(all);
        return rv;
    }
    *out = all;
    *out_n = count;
    return CKR_OK;
}

/*
 * One attribute into a fresh buffer, NUL-terminated for convenience.
 * *out NULL with CKR_OK: the object has no such (readable) attribute.
 */
static CK_RV get_attr(struct ksp_cli *cli, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
                      CK_ATTRIBUTE_TYPE type, unsigned char **out, size_t *out_len)
{
    CK_ATTRIBUTE a = {type, NULL, 0};
    *out = NULL;
    *out_len = 0;
    CK_RV rv = cli->f->C_GetAttributeValue(s, h, &a, 1);
    if (rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_ATTRIBUTE_SENSITIVE)
        return CKR_OK;
    if (rv != CKR_OK)
        return rv;
    if (a.ulValueLen == CK_UNAVAILABLE_INFORMATION || a.ulValueLen > 1024 * 1024)
        return CKR_OK;
    unsigned char *buf = calloc(1, a.ulValueLen + 1);
    if (!buf)
        return CKR_HOST_MEMORY;
    a.pValue = buf;
    rv = cli->f->C_GetAttributeValue(s, h, &a, 1);
    if (rv != CKR_OK || a.ulValueLen == CK_UNAVAILABLE_INFORMATION) {
        free(buf);
        return rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_ATTRIBUTE_SENSITIVE ? CKR_OK : rv;
    }
    *out = buf;
    *out_len = a.ulValueLen;
    return CKR_OK;
}

static CK_RV get_ulong(struct ksp_cli *cli, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
                       CK_ATTRIBUTE_TYPE type, bool *has, CK_ULONG *out)
{
    CK_ULONG v = 0;
    CK_ATTRIBUTE a = {type, &v, sizeof(v)};
    *has = false;
    CK_RV rv = cli->f->C_GetAttributeValue(s, h, &a, 1);
    if (rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_ATTRIBUTE_SENSITIVE)
        return CKR_OK;
    if (rv != CKR_OK)
        return rv;
    if (a.ulValueLen != sizeof(v))
        return CKR_OK;
    *has = true;
    *out = v;
    return CKR_OK;
}

/* Bit length of a big-endian unsigned integer. */
static CK_ULONG int_bits(const unsigned char *p, size_t n)
{
    while (n > 0 && p[0] == 0) {
        p++;
        n--;
    }
    if (n == 0)
        return 0;
    CK_ULONG bits = (CK_ULONG)(n - 1) * 8;
    for (unsigned c = p[0]; c; c >>= 1)
        bits++;
    return bits;
}

static CK_RV read_key_size(struct ksp_cli *cli, CK_SESSION_HANDLE s, struct ksp_obj *o)
{
    CK_RV rv = CKR_OK;
    unsigned char *v = NULL;
    size_t n = 0;
    bool has = false;
    CK_ULONG ul = 0;

    if (o->key_type == CKK_RSA) {
        if (o->cls == CKO_PUBLIC_KEY) {
            rv = get_ulong(cli, s, o->handle, CKA_MODULUS_BITS, &has, &ul);
            if (rv != CKR_OK || has) {
                o->bits = has ? ul : 0;
                return rv;
            }
        }
        /* Private keys have no CKA_MODULUS_BITS; the modulus is public. */
        rv = get_attr(cli, s, o->handle, CKA_MODULUS, &v, &n);
        if (rv == CKR_OK && v)
            o->bits = int_bits(v, n);
    } else if (o->key_type == CKK_EC) {
        rv = get_attr(cli, s, o->handle, CKA_EC_PARAMS, &v, &n);
        for (size_t i = 0; rv == CKR_OK && v && i < sizeof(curves) / sizeof(curves[0]); i++) {
            if (n == curves[i].len && memcmp(v, curves[i].der, n) == 0)
                o->curve = curves[i].name;
        }
    } else if (o->cls == CKO_SECRET_KEY) {
        rv = get_ulong(cli, s, o->handle, CKA_VALUE_LEN, &has, &ul);
        if (rv == CKR_OK && has && ul < (CK_ULONG)-1 / 8)
            o->bits = ul * 8;
    }
    free(v);
    return rv;
}

/* Subject and end of validity of an X.509 certificate object; a value that
 * does not parse is shown as such, not treated as an error. */
static CK_RV read_cert(struct ksp_cli *cli, CK_SESSION_HANDLE s, struct ksp_obj *o)
{
    unsigned char *der = NULL;
    size_t n = 0;
    CK_RV rv = get_attr(cli, s, o->handle, CKA_VALUE, &der, &n);
    if (rv != CKR_OK || !der)
        return rv;
    const unsigned char *p = der;
    X509 *x = d2i_X509(NULL, &p, (long)n);
    if (x && p == der + n) {
        o->subject = ksp_x509_name_text(X509_get_subject_name(x));
        ksp_x509_time_text(X509_get0_notAfter(x), o->not_after, sizeof(o->not_after));
    }
    X509_free(x);
    free(der);
    return CKR_OK;
}

CK_RV ksp_obj_read(struct ksp_cli *cli, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
                   struct ksp_obj *out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_obj o = {0};
    bool has = false;
    unsigned char *v = NULL;
    size_t n = 0;

    o.handle = h;
    rv = get_ulong(cli, s, h, CKA_CLASS, &has, &o.cls);
    if (rv == CKR_OK && !has)
        rv = CKR_ATTRIBUTE_TYPE_INVALID;
    if (rv != CKR_OK)
        goto out;
    rv = get_attr(cli, s, h, CKA_LABEL, &v, &n);
    if (rv != CKR_OK)
        goto out;
    o.label = (char *)v;
    rv = get_attr(cli, s, h, CKA_ID, &o.id, &o.id_len);
    if (rv != CKR_OK)
        goto out;
    if (o.cls == CKO_PRIVATE_KEY || o.cls == CKO_PUBLIC_KEY || o.cls == CKO_SECRET_KEY) {
        rv = get_ulong(cli, s, h, CKA_KEY_TYPE, &o.has_key_type, &o.key_type);
        if (rv == CKR_OK && o.has_key_type)
            rv = read_key_size(cli, s, &o);
        if (rv == CKR_OK)
            rv = get_ulong(cli, s, h, CKA_KSP11_BACKEND, &o.has_backend, &o.backend);
        if (rv == CKR_OK)
            rv = get_ulong(cli, s, h, CKA_KSP11_IMPL_TYPE, &o.has_impl, &o.impl);
        if (rv == CKR_OK)
            rv = get_attr(cli, s, h, CKA_KSP11_FALLBACK_REASON, &v, &n);
        if (rv != CKR_OK)
            goto out;
        o.reason = (char *)v;
        rv = get_attr(cli, s, h, CKA_KSP11_TPM_IDENTITY, &v, &n);
        if (rv != CKR_OK)
            goto out;
        o.tpm_identity = (char *)v;
    } else if (o.cls == CKO_CERTIFICATE) {
        rv = read_cert(cli, s, &o);
        if (rv != CKR_OK)
            goto out;
    }
    *out = o;
    memset(&o, 0, sizeof(o));
    rv = CKR_OK;
out:
    ksp_obj_free(&o);
    return rv;
}

void ksp_obj_free(struct ksp_obj *o)
{
    free(o->label);
    free(o->id);
    free(o->reason);
    free(o->subject);
    free(o->tpm_identity);
    memset(o, 0, sizeof(*o));
}

/* RFC 7512 §2.3 "type" values. */
const char *ksp_obj_type_name(CK_OBJECT_CLASS cls)
{
    switch (cls) {
    case CKO_PRIVATE_KEY:
        return "private";
    case CKO_PUBLIC_KEY:
        return "public";
    case CKO_CERTIFICATE:
        return "cert";
    case CKO_DATA:
        return "data";
    case CKO_SECRET_KEY:
        return "secret-key";
    default:
        return NULL;
    }
}

static const char *class_text(CK_OBJECT_CLASS cls)
{
    switch (cls) {
    case CKO_PRIVATE_KEY:
        return "private key";
    case CKO_PUBLIC_KEY:
        return "public key";
    case CKO_CERTIFICATE:
        return "certificate";
    case CKO_DATA:
        return "data";
    case CKO_SECRET_KEY:
        return "secret key";
    default:
        return "object";
    }
}

static const char *key_type_name(const struct ksp_obj *o)
{
    if (!o->has_key_type)
        return NULL;
    switch (o->key_type) {
    case CKK_RSA:
        return "RSA";
    case CKK_EC:
        return "EC";
    case CKK_GENERIC_SECRET:
        return "generic-secret";
    case CKK_AES:
        return "AES";
    default:
        return "other";
    }
}

void ksp_obj_describe(const struct ksp_obj *o, char *buf, size_t n)
{
    const char *kt = key_type_name(o);
    if (!kt)
        snprintf(buf, n, "%s", o->cls == CKO_CERTIFICATE ? "X.509" : "-");
    else if (o->key_type == CKK_EC)
        snprintf(buf, n, "EC %s", o->curve ? o->curve : "(unknown curve)");
    else if (o->bits)
        snprintf(buf, n, "%s-%lu", kt, (unsigned long)o->bits);
    else
        snprintf(buf, n, "%s", kt);
}

const char *ksp_obj_backend_name(const struct ksp_obj *o)
{
    if (!o->has_backend)
        return NULL;
    switch (o->backend) {
    case KSP11_BACKEND_TPM:
        return "TPM";
    case KSP11_BACKEND_SOFT:
        return "software";
    case KSP11_BACKEND_NONE:
        return "none";
    default:
        return "unknown";
    }
}

char *ksp_obj_uri(const char *token, const struct ksp_obj *o)
{
    return ksp_uri_build(token, o->label, ksp_obj_type_name(o->cls), o->id, o->id_len);
}

static void impl_text(CK_ULONG impl, char *buf, size_t n)
{
    snprintf(buf, n, "0x%lx%s%s%s", (unsigned long)impl,
             (impl & KSP11_IMPL_HARDWARE) ? " hardware" : "",
             (impl & KSP11_IMPL_SOFTWARE) ? " software" : "",
             (impl & KSP11_IMPL_VIRTUAL) ? " virtual" : "");
}

void ksp_obj_json(struct ksp_json *j, const char *token, const struct ksp_obj *o)
{
    char *hex = malloc(o->id_len * 2 + 1);
    char *uri = ksp_obj_uri(token, o);
    const char *type = ksp_obj_type_name(o->cls);

    ksp_json_obj_begin(j, NULL);
    if (o->label)
        ksp_json_str(j, "label", o->label);
    else
        ksp_json_null(j, "label");
    if (o->id && hex) {
        ksp_hex_format(o->id, o->id_len, hex);
        ksp_json_str(j, "id", hex);
    } else {
        ksp_json_null(j, "id");
    }
    if (type)
        ksp_json_str(j, "class", type);
    else
        ksp_json_uint(j, "class", o->cls);
    if (o->has_key_type) {
        ksp_json_str(j, "key_type", key_type_name(o));
        if (o->bits)
            ksp_json_uint(j, "bits", o->bits);
        if (o->key_type == CKK_EC) {
            if (o->curve)
                ksp_json_str(j, "curve", o->curve);
            else
                ksp_json_null(j, "curve");
        }
    }
    if (o->has_backend) {
        ksp_json_uint(j, "backend", o->backend);
        ksp_json_str(j, "backend_name", ksp_obj_backend_name(o));
    }
    if (o->has_impl)
        ksp_json_uint(j, "impl_type", o->impl);
    if (o->reason)
        ksp_json_str(j, "fallback_reason", o->reason);
    if (o->tpm_identity && o->tpm_identity[0])
        ksp_json_str(j, "tpm_identity", o->tpm_identity);
    if (o->cls == CKO_CERTIFICATE && o->subject) {
        ksp_json_str(j, "subject", o->subject);
        ksp_json_str(j, "not_after", o->not_after);
    }
    if (uri)
        ksp_json_str(j, "uri", uri);
    ksp_json_obj_end(j);
    free(uri);
    free(hex);
}

void ksp_obj_text(FILE *f, const char *token, const struct ksp_obj *o)
{
    char desc[64], impl[64];
    char *uri = ksp_obj_uri(token, o);
    char *hex = malloc(o->id_len * 2 + 1);

    ksp_obj_describe(o, desc, sizeof(desc));
    fprintf(f, "  %-12s %-10s label \"", class_text(o->cls), desc);
    ksp_text_put(f, o->label ? o->label : "");
    fputs("\"", f);
    if (o->id && o->id_len && hex) {
        ksp_hex_format(o->id, o->id_len, hex);
        fprintf(f, "  id %s", hex);
    }
    fputc('\n', f);
    if (o->has_backend || o->has_impl || o->reason) {
        const char *be = ksp_obj_backend_name(o);
        fprintf(f, "      backend: %s", be ? be : "-");
        if (o->has_impl) {
            impl_text(o->impl, impl, sizeof(impl));
            fprintf(f, ", impl type %s", impl);
        }
        if (o->reason && o->reason[0]) {
            fputs(", fallback reason: ", f);
            ksp_text_put(f, o->reason);
        }
        fputc('\n', f);
        if (o->tpm_identity && o->tpm_identity[0]) {
            fputs("      TPM: ", f);
            ksp_text_put(f, o->tpm_identity);
            fputc('\n', f);
        }
    }
    if (o->cls == CKO_CERTIFICATE) {
        fputs("      subject: ", f);
        ksp_text_put(f, o->subject ? o->subject : "(not a parsable X.509 certificate)");
        if (o->subject)
            fprintf(f, ", valid until %s", o->not_after);
        fputc('\n', f);
    }
    if (uri)
        fprintf(f, "      uri: %s\n", uri);
    free(hex);
    free(uri);
}

CK_RV ksp_obj_attr(struct ksp_cli *cli, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
                   CK_ATTRIBUTE_TYPE type, unsigned char **out, size_t *out_len)
{
    return get_attr(cli, s, h, type, out, out_len);
}

CK_RV ksp_obj_ulong(struct ksp_cli *cli, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
                    CK_ATTRIBUTE_TYPE type, bool *has, CK_ULONG *out)
{
    return get_ulong(cli, s, h, type, has, out);
}
