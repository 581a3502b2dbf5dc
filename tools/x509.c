/*
 * The ksp11 command: X.509 certificates and PKCS#10 requests signed by a
 * token key. OpenSSL 3.0 cannot sign with a key it does not hold (no
 * provider for our module here), so the to-be-signed part is built and
 * encoded by OpenSSL, signed through C_Sign, and the signed structure
 *   SEQUENCE { tbs, AlgorithmIdentifier, BIT STRING signature }
 * (RFC 5280 §4.1, RFC 2986 §4.2) is assembled here and parsed back, then
 * verified with the public key before anyone sees it.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/pem.h>

#include "x509.h"

#define INPUT_MAX (1024 * 1024)

/*
 * --subject in OpenSSL's one-line form, as `openssl req -subj` takes it:
 * "/CN=host/O=Example Ltd"; a backslash escapes the next character ("\/").
 * Without --subject: CN=<host name>.
 */
int ksp_x509_subject(struct ksp_cli *cli, const char *arg, X509_NAME **out)
{
    char host[256];
    X509_NAME *name = X509_NAME_new();
    char *buf = NULL;
    int rc = KSP_EXIT_USAGE;

    if (!name)
        return ksp_cli_err("out of memory");
    if (!arg) {
        if (gethostname(host, sizeof(host)) != 0 || !host[0]) {
            X509_NAME_free(name);
            return ksp_cli_err("cannot get the host name; give --subject");
        }
        host[sizeof(host) - 1] = '\0';
        if (!X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (unsigned char *)host, -1, -1,
                                        0)) {
            X509_NAME_free(name);
            return ksp_cli_ssl_err(KSP_EXIT_FAIL, "the host name \"%s\" is not a valid CN", host);
        }
        *out = name;
        return KSP_EXIT_OK;
    }
    if (arg[0] != '/') {
        rc = ksp_cli_usage(cli, "--subject takes the form /CN=name/O=org (like openssl req -subj)");
        goto out;
    }
    buf = malloc(strlen(arg) + 1);
    if (!buf) {
        rc = ksp_cli_err("out of memory");
        goto out;
    }
    const char *p = arg + 1;
    while (*p) {
        /* One "type=value" up to the next unescaped '/'. */
        size_t n = 0;
        char *eq = NULL;
        while (*p && *p != '/') {
            if (*p == '\\' && p[1])
                p++;
            else if (*p == '=' && !eq)
                eq = buf + n;
            buf[n++] = *p++;
        }
        buf[n] = '\0';
        if (*p == '/')
            p++;
        if (!eq || eq == buf || !eq[1]) {
            rc = ksp_cli_usage(cli, "--subject: '%s' is not TYPE=value (e.g. /CN=host/O=org)", buf);
            goto out;
        }
        *eq = '\0';
        if (!X509_NAME_add_entry_by_txt(name, buf, MBSTRING_UTF8, (unsigned char *)eq + 1, -1, -1,
                                        0)) {
            ERR_clear_error();
            rc = ksp_cli_usage(cli, "--subject: unknown attribute type '%s' or bad value", buf);
            goto out;
        }
    }
    if (X509_NAME_entry_count(name) == 0) {
        rc = ksp_cli_usage(cli, "--subject is empty");
        goto out;
    }
    *out = name;
    name = NULL;
    rc = KSP_EXIT_OK;
out:
    free(buf);
    X509_NAME_free(name);
    return rc;
}

/* The name in the same one-line form (non-ASCII as \xNN); malloc'd. */
char *ksp_x509_name_text(const X509_NAME *name)
{
    char *s = X509_NAME_oneline(name, NULL, 0);
    char *copy = s ? strdup(s) : NULL;
    OPENSSL_free(s);
    return copy;
}

/* One extension from OpenSSL's configuration syntax ("critical,digitalSignature"). */
int ksp_x509_add_ext(struct ksp_cli *cli, X509V3_CTX *ctx, STACK_OF(X509_EXTENSION) * *sk, int nid,
                     const char *value, const char *what)
{
    X509_EXTENSION *ext = X509V3_EXT_nconf_nid(NULL, ctx, nid, value);
    if (!ext) {
        char reason[256] = "";
        unsigned long e = ERR_peek_last_error();
        if (e)
            ERR_error_string_n(e, reason, sizeof(reason));
        ERR_clear_error();
        return ksp_cli_usage(cli, "%s: cannot use '%s'%s%s", what, value, reason[0] ? ": " : "",
                             reason);
    }
    if (!X509v3_add_ext(sk, ext, -1)) {
        X509_EXTENSION_free(ext);
        return ksp_cli_err("out of memory");
    }
    X509_EXTENSION_free(ext);
    return KSP_EXIT_OK;
}

/* sha256WithRSAEncryption (NULL parameters, RFC 4055 §5) or ecdsa-with-SHA256
 * (parameters absent, RFC 5758 §3.2). */
static bool set_sigalg(X509_ALGOR *alg, CK_KEY_TYPE kt)
{
    if (kt == CKK_RSA)
        return X509_ALGOR_set0(alg, OBJ_nid2obj(NID_sha256WithRSAEncryption), V_ASN1_NULL, NULL);
    return X509_ALGOR_set0(alg, OBJ_nid2obj(NID_ecdsa_with_SHA256), V_ASN1_UNDEF, NULL);
}

static size_t len_size(size_t n)
{
    return n < 0x80 ? 1 : n < 0x100 ? 2 : n < 0x10000 ? 3 : 4;
}

static unsigned char *put_hdr(unsigned char *p, unsigned char tag, size_t n)
{
    *p++ = tag;
    if (n < 0x80) {
        *p++ = (unsigned char)n;
    } else {
        size_t ls = len_size(n) - 1;
        *p++ = (unsigned char)(0x80 | ls);
        for (size_t i = ls; i > 0; i--)
            *p++ = (unsigned char)(n >> (8 * (i - 1)));
    }
    return p;
}

/* SEQUENCE { tbs, alg, BIT STRING (no unused bits) sig } into *out. */
static int assemble(const unsigned char *tbs, size_t tbs_len, CK_KEY_TYPE kt,
                    const unsigned char *sig, size_t sig_len, unsigned char **out, size_t *out_len)
{
    X509_ALGOR *alg = X509_ALGOR_new();
    unsigned char *alg_der = NULL;
    int alg_len = alg && set_sigalg(alg, kt) ? i2d_X509_ALGOR(alg, &alg_der) : -1;
    X509_ALGOR_free(alg);
    if (alg_len <= 0)
        return ksp_cli_ssl_err(KSP_EXIT_FAIL, "cannot encode the signature algorithm");
    size_t bits = 1 + sig_len;
    size_t body = tbs_len + (size_t)alg_len + 1 + len_size(bits) + bits;
    size_t total = 1 + len_size(body) + body;
    unsigned char *der = malloc(total), *p = der;
    if (!der) {
        OPENSSL_free(alg_der);
        return ksp_cli_err("out of memory");
    }
    p = put_hdr(p, 0x30, body);
    memcpy(p, tbs, tbs_len);
    p += tbs_len;
    memcpy(p, alg_der, (size_t)alg_len);
    p += alg_len;
    p = put_hdr(p, 0x03, bits);
    *p++ = 0x00;
    memcpy(p, sig, sig_len);
    OPENSSL_free(alg_der);
    *out = der;
    *out_len = total;
    return KSP_EXIT_OK;
}

/* tbs DER -> token signature -> signed DER. */
static int sign_tbs(struct ksp_cli *cli, CK_SESSION_HANDLE s, const struct ksp_key *k,
                    unsigned char *tbs, int tbs_len, unsigned char **der, size_t *der_len)
{
    unsigned char *sig = NULL;
    size_t sig_len = 0;
    if (tbs_len <= 0)
        return ksp_cli_ssl_err(KSP_EXIT_FAIL, "cannot encode the data to be signed");
    int rc = ksp_key_sign(cli, s, k, tbs, (size_t)tbs_len, &sig, &sig_len);
    if (rc == KSP_EXIT_OK)
        rc = assemble(tbs, (size_t)tbs_len, k->type, sig, sig_len, der, der_len);
    free(sig);
    return rc;
}

int ksp_x509_sign_cert(struct ksp_cli *cli, CK_SESSION_HANDLE s, const struct ksp_key *k, X509 *x,
                       X509 **out)
{
    unsigned char *tbs = NULL, *der = NULL;
    size_t der_len = 0;
    /* OpenSSL 3.0 has no setter for the TBSCertificate's signature field (only
     * X509_sign sets it, with a key it holds); the algorithm is an ordinary
     * mutable X509_ALGOR inside x, and i2d_re_X509_tbs re-encodes it. */
    X509_ALGOR *tbs_alg = (X509_ALGOR *)X509_get0_tbs_sigalg(x);
    if (!set_sigalg(tbs_alg, k->type))
        return ksp_cli_ssl_err(KSP_EXIT_FAIL, "cannot set the signature algorithm");
    int tbs_len = i2d_re_X509_tbs(x, &tbs);
    int rc = sign_tbs(cli, s, k, tbs, tbs_len, &der, &der_len);
    OPENSSL_free(tbs);
    if (rc != KSP_EXIT_OK)
        return rc;
    const unsigned char *p = der;
    X509 *signed_x = d2i_X509(NULL, &p, (long)der_len);
    bool whole = signed_x && p == der + der_len;
    free(der);
    if (!whole || X509_verify(signed_x, k->pkey) != 1) {
        X509_free(signed_x);
        return ksp_cli_ssl_err(KSP_EXIT_FAIL,
                               "the certificate signed by the token does not verify with its "
                               "public key");
    }
    *out = signed_x;
    return KSP_EXIT_OK;
}

int ksp_x509_sign_req(struct ksp_cli *cli, CK_SESSION_HANDLE s, const struct ksp_key *k,
                      X509_REQ *req, X509_REQ **out)
{
    unsigned char *tbs = NULL, *der = NULL;
    size_t der_len = 0;
    int tbs_len = i2d_re_X509_REQ_tbs(req, &tbs);
    int rc = sign_tbs(cli, s, k, tbs, tbs_len, &der, &der_len);
    OPENSSL_free(tbs);
    if (rc != KSP_EXIT_OK)
        return rc;
    const unsigned char *p = der;
    X509_REQ *signed_req = d2i_X509_REQ(NULL, &p, (long)der_len);
    bool whole = signed_req && p == der + der_len;
    free(der);
    if (!whole || X509_REQ_verify(signed_req, k->pkey) != 1) {
        X509_REQ_free(signed_req);
        return ksp_cli_ssl_err(KSP_EXIT_FAIL,
                               "the request signed by the token does not verify with its public "
                               "key");
    }
    *out = signed_req;
    return KSP_EXIT_OK;
}

/* A whole file (or stdin for "-"), at most INPUT_MAX bytes. */
static int slurp(const char *path, unsigned char **out, size_t *out_len)
{
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t n = 0;
    if (!f) {
        ksp_cli_err("cannot open %s: %m", path);
        return KSP_EXIT_INPUT;
    }
    buf = malloc(INPUT_MAX + 1);
    if (buf)
        n = fread(buf, 1, INPUT_MAX + 1, f);
    bool bad = !buf || ferror(f);
    if (f != stdin)
        fclose(f);
    if (bad || n > INPUT_MAX || n == 0) {
        free(buf);
        ksp_cli_err("cannot read %s: %s", path,
                    !buf            ? "out of memory"
                    : n == 0        ? "empty"
                    : n > INPUT_MAX ? "too large"
                                    : "I/O error");
        return KSP_EXIT_INPUT;
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return KSP_EXIT_OK;
}

/* A certificate in PEM ("-----BEGIN CERTIFICATE-----") or DER; nothing else. */
int ksp_x509_read(const char *path, X509 **out)
{
    unsigned char *buf = NULL;
    size_t n = 0;
    X509 *x = NULL;
    int rc = slurp(path, &buf, &n);
    if (rc != KSP_EXIT_OK)
        return rc;
    if (memmem(buf, n, "-----BEGIN", 10)) {
        BIO *b = BIO_new_mem_buf(buf, (int)n);
        x = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
        BIO_free(b);
    } else {
        const unsigned char *p = buf;
        x = d2i_X509(NULL, &p, (long)n);
        if (x && p != buf + n) {
            X509_free(x);
            x = NULL;
        }
    }
    free(buf);
    if (!x)
        return ksp_cli_ssl_err(KSP_EXIT_INPUT, "%s is not a PEM or DER X.509 certificate", path);
    ERR_clear_error();
    *out = x;
    return KSP_EXIT_OK;
}

/* PEM to path ("-": stdout). */
int ksp_x509_write_pem(const char *path, X509 *x, X509_REQ *req)
{
    bool to_stdout = strcmp(path, "-") == 0;
    FILE *f = to_stdout ? stdout : fopen(path, "w");
    if (!f)
        return ksp_cli_err("cannot create %s: %m", path);
    int ok = x ? PEM_write_X509(f, x) : PEM_write_X509_REQ(f, req);
    if (to_stdout) {
        ok = ok && fflush(f) == 0;
    } else if (fclose(f) != 0) {
        ok = 0;
    }
    if (!ok)
        return ksp_cli_ssl_err(KSP_EXIT_FAIL, "cannot write %s", path);
    return KSP_EXIT_OK;
}

/* DER of one part of the certificate, for a PKCS#11 attribute. */
#define I2D(fn, v, out) ((out) = NULL, fn((v), &(out)))

/* Is this exact certificate (CKA_VALUE) on the token already? */
int ksp_x509_find_value(struct ksp_cli *cli, CK_SESSION_HANDLE s, X509 *x, bool *found)
{
    CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
    unsigned char *der = NULL;
    CK_OBJECT_HANDLE *h = NULL;
    size_t n = 0;
    int len = I2D(i2d_X509, x, der);
    if (len <= 0)
        return ksp_cli_ssl_err(KSP_EXIT_FAIL, "cannot encode the certificate");
    CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_VALUE, der, (CK_ULONG)len}};
    CK_RV rv = ksp_obj_find(cli, s, tmpl, 2, &h, &n);
    OPENSSL_free(der);
    free(h);
    if (rv != CKR_OK)
        return ksp_cli_fail("cannot search the token's certificates", rv);
    *found = n > 0;
    return KSP_EXIT_OK;
}

/* A CKO_CERTIFICATE (PKCS#11 2.40 §4.6.3) next to the key with id. */
int ksp_x509_store(struct ksp_cli *cli, CK_SESSION_HANDLE s, X509 *x, const unsigned char *id,
                   size_t id_len, const char *label, CK_OBJECT_HANDLE *out)
{
    CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
    CK_CERTIFICATE_TYPE ct = CKC_X_509;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    unsigned char *value = NULL, *subject = NULL, *issuer = NULL, *serial = NULL;
    int value_len = I2D(i2d_X509, x, value);
    int subject_len = I2D(i2d_X509_NAME, X509_get_subject_name(x), subject);
    int issuer_len = I2D(i2d_X509_NAME, X509_get_issuer_name(x), issuer);
    int serial_len = I2D(i2d_ASN1_INTEGER, X509_get0_serialNumber(x), serial);
    int rc = KSP_EXIT_OK;

    if (value_len <= 0 || subject_len <= 0 || issuer_len <= 0 || serial_len <= 0) {
        rc = ksp_cli_ssl_err(KSP_EXIT_FAIL, "cannot encode the certificate");
        goto out;
    }
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_CERTIFICATE_TYPE, &ct, sizeof(ct)},
        {CKA_TOKEN, &yes, sizeof(yes)},
        /* Public, so TLS clients find it before logging in. */
        {CKA_PRIVATE, &no, sizeof(no)},
        {CKA_VALUE, value, (CK_ULONG)value_len},
        {CKA_SUBJECT, subject, (CK_ULONG)subject_len},
        {CKA_ISSUER, issuer, (CK_ULONG)issuer_len},
        {CKA_SERIAL_NUMBER, serial, (CK_ULONG)serial_len},
        {CKA_ID, (void *)id, (CK_ULONG)id_len},
        {CKA_LABEL, (void *)label, (CK_ULONG)strlen(label)},
    };
    CK_OBJECT_HANDLE h = CK_INVALID_HANDLE;
    CK_RV rv = cli->f->C_CreateObject(s, tmpl, sizeof(tmpl) / sizeof(tmpl[0]), &h);
    if (rv != CKR_OK) {
        rc = ksp_cli_fail("cannot store the certificate on the token", rv);
        goto out;
    }
    *out = h;
out:
    OPENSSL_free(value);
    OPENSSL_free(subject);
    OPENSSL_free(issuer);
    OPENSSL_free(serial);
    return rc;
}

/* "2027-11-22T07:35:15Z" */
void ksp_x509_time_text(const ASN1_TIME *t, char *buf, size_t n)
{
    struct tm tm;
    if (!t || !ASN1_TIME_to_tm(t, &tm) || !strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, n, "?");
}

/* The serial number in hex, lower case; malloc'd. */
char *ksp_x509_serial_text(const X509 *x)
{
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    char *copy = hex ? strdup(hex) : NULL;
    for (char *p = copy; p && *p; p++) {
        if (*p >= 'A' && *p <= 'F')
            *p = (char)(*p - 'A' + 'a');
    }
    OPENSSL_free(hex);
    BN_free(bn);
    return copy;
}

/* Before any key is made: can --out be written? (exit 5 if not) */
int ksp_x509_out_check(const char *path)
{
    if (strcmp(path, "-") == 0)
        return KSP_EXIT_OK;
    if (access(path, F_OK) == 0) {
        if (access(path, W_OK) == 0)
            return KSP_EXIT_OK;
    } else {
        char *copy = strdup(path);
        if (!copy)
            return ksp_cli_err("out of memory");
        char *slash = strrchr(copy, '/');
        const char *dir = slash ? (slash == copy ? "/" : copy) : ".";
        if (slash && slash != copy)
            *slash = '\0';
        int ok = access(dir, W_OK | X_OK) == 0;
        free(copy);
        if (ok)
            return KSP_EXIT_OK;
    }
    ksp_cli_err("cannot write %s: %m", path);
    return KSP_EXIT_INPUT;
}
