/*
 * `ksp11 selfsign`: the Configuration Manager client-certificate scenario in
 * one step. A new non-exportable key pair on the token (keygen's templates,
 * so --require-hardware works the same) and a self-signed X.509 v3
 * certificate for it: EKU clientAuth, key usage digitalSignature (+
 * keyEncipherment for RSA, critical), SHA-256, random serial, stored on the
 * token with the key's CKA_ID and label. If the certificate cannot be made,
 * the new key pair is deleted again, so a retry starts clean.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/bn.h>
#include <openssl/evp.h>

#include "x509.h"

#define DAYS_MAX 36500UL

struct selfsign_opts {
    const char *token;
    const char *label;
    const char *type;
    const char *bits;
    const char *curve;
    const char *id;
    const char *subject;
    const char *days;
    const char *out;
    char *san; /* the --san values joined with ',' */
    bool require_hw;
};

enum {
    OPT_TOKEN = KSP_OPT_CMD,
    OPT_LABEL,
    OPT_TYPE,
    OPT_BITS,
    OPT_CURVE,
    OPT_ID,
    OPT_SUBJECT,
    OPT_SAN,
    OPT_DAYS,
    OPT_OUT,
    OPT_REQUIRE_HW,
};

static void help(FILE *f)
{
    fputs("usage: ksp11 selfsign [--token TOKEN] --label LABEL [--type rsa|ec]\n"
          "                      [--bits BITS | --curve CURVE] [--subject /CN=name/O=org]\n"
          "                      [--san DNS:name,IP:addr,...] [--days DAYS] [--id HEX]\n"
          "                      [--require-hardware] [--out FILE]\n"
          "                      [--pin PIN | --pin-source FILE] [--json]\n"
          "\n"
          "Create a non-exportable key pair on TOKEN and a self-signed X.509 v3 client\n"
          "certificate for it, signed by the token key with SHA-256, and store the\n"
          "certificate on the token next to the key (same CKA_ID and label).\n"
          "  --token TOKEN       token label or serial (default: the only token)\n"
          "  --label LABEL       CKA_LABEL of the key pair and the certificate\n"
          "  --type rsa|ec       key type (default: rsa)\n"
          "  --bits BITS         RSA key size (default: 2048)\n"
          "  --curve CURVE       EC curve: P-256 (default), P-384 or P-521\n"
          "  --subject NAME      subject in OpenSSL's one-line form, as openssl req -subj\n"
          "                      takes it: /CN=host/O=Example; '\\' escapes '/' in a value\n"
          "                      (default: /CN=<host name>); the issuer is the same\n"
          "  --san LIST          subjectAltName entries, e.g. DNS:host.example,IP:10.0.0.1,\n"
          "                      email:a@example (OpenSSL syntax; may be repeated)\n"
          "  --days DAYS         validity from now (default: 365)\n"
          "  --id HEX            CKA_ID (default: the module's, from the public key)\n"
          "  --require-hardware  fail instead of creating the key in software when no\n"
          "                      acceptable TPM is available\n"
          "  --out FILE          also write the certificate as PEM to FILE ('-': stdout)\n"
          "The certificate has: basicConstraints CA:FALSE, keyUsage (critical)\n"
          "digitalSignature + keyEncipherment for RSA, digitalSignature for EC (RFC 5480),\n"
          "extendedKeyUsage clientAuth (1.3.6.1.5.5.7.3.2), subjectKeyIdentifier, and a\n"
          "random 127-bit serial. Prints the pkcs11: URIs to give curl --cert and --key.\n",
          f);
}

static int add_san(struct selfsign_opts *o, const char *arg)
{
    size_t old = o->san ? strlen(o->san) : 0;
    char *p = realloc(o->san, old + strlen(arg) + 2);
    if (!p)
        return ksp_cli_err("out of memory");
    if (old)
        p[old++] = ',';
    strcpy(p + old, arg);
    o->san = p;
    return KSP_EXIT_OK;
}

static int opt(struct ksp_cli *cli, void *ctx, int id, const char *arg)
{
    struct selfsign_opts *o = ctx;
    switch (id) {
    case OPT_TOKEN:
        o->token = arg;
        break;
    case OPT_LABEL:
        o->label = arg;
        break;
    case OPT_TYPE:
        o->type = arg;
        break;
    case OPT_BITS:
        o->bits = arg;
        break;
    case OPT_CURVE:
        o->curve = arg;
        break;
    case OPT_ID:
        o->id = arg;
        break;
    case OPT_SUBJECT:
        o->subject = arg;
        break;
    case OPT_SAN:
        if (!arg[0])
            return ksp_cli_usage(cli, "--san needs a value, e.g. DNS:host.example");
        return add_san(o, arg);
    case OPT_DAYS:
        o->days = arg;
        break;
    case OPT_OUT:
        o->out = arg;
        break;
    case OPT_REQUIRE_HW:
        o->require_hw = true;
        break;
    default:
        return ksp_cli_usage(cli, "unknown option");
    }
    return KSP_EXIT_OK;
}

/* The certificate extensions; SAN first checked before any key exists. */
static int extensions(struct ksp_cli *cli, X509 *x, CK_KEY_TYPE kt, const char *san)
{
    STACK_OF(X509_EXTENSION) *sk = NULL;
    X509V3_CTX ctx;
    int rc = KSP_EXIT_OK;

    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    rc = ksp_x509_add_ext(cli, &ctx, &sk, NID_basic_constraints, "critical,CA:FALSE",
                          "basicConstraints");
    if (rc == KSP_EXIT_OK)
        rc = ksp_x509_add_ext(cli, &ctx, &sk, NID_key_usage,
                              kt == CKK_RSA ? "critical,digitalSignature,keyEncipherment"
                                            : "critical,digitalSignature",
                              "keyUsage");
    if (rc == KSP_EXIT_OK)
        rc = ksp_x509_add_ext(cli, &ctx, &sk, NID_ext_key_usage, "clientAuth", "extendedKeyUsage");
    if (rc == KSP_EXIT_OK && x)
        rc = ksp_x509_add_ext(cli, &ctx, &sk, NID_subject_key_identifier, "hash",
                              "subjectKeyIdentifier");
    if (rc == KSP_EXIT_OK && san)
        rc = ksp_x509_add_ext(cli, &ctx, &sk, NID_subject_alt_name, san, "--san");
    for (int i = 0; rc == KSP_EXIT_OK && x && i < sk_X509_EXTENSION_num(sk); i++) {
        if (!X509_add_ext(x, sk_X509_EXTENSION_value(sk, i), -1))
            rc = ksp_cli_ssl_err(KSP_EXIT_FAIL, "cannot add an extension");
    }
    sk_X509_EXTENSION_pop_free(sk, X509_EXTENSION_free);
    return rc;
}

/* A positive, non-zero random serial of at most 127 bits (RFC 5280 §4.1.2.2). */
static bool random_serial(X509 *x)
{
    BIGNUM *bn = BN_new();
    bool ok = false;
    while (bn && BN_rand(bn, 127, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) == 1) {
        if (!BN_is_zero(bn)) {
            ok = BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) != NULL;
            break;
        }
    }
    BN_free(bn);
    return ok;
}

static int make_cert(struct ksp_cli *cli, CK_SESSION_HANDLE s, const struct ksp_key *k,
                     X509_NAME *subject, unsigned long days, const char *san, X509 **out)
{
    X509 *x = X509_new();
    int rc = KSP_EXIT_OK;
    if (!x || !X509_set_version(x, X509_VERSION_3) || !random_serial(x) ||
        !X509_set_subject_name(x, subject) || !X509_set_issuer_name(x, subject) ||
        !X509_gmtime_adj(X509_getm_notBefore(x), 0) ||
        !X509_time_adj_ex(X509_getm_notAfter(x), (int)days, 0, NULL) ||
        !X509_set_pubkey(x, k->pkey)) {
        X509_free(x);
        return ksp_cli_ssl_err(KSP_EXIT_FAIL, "cannot build the certificate");
    }
    rc = extensions(cli, x, k->type, san);
    if (rc == KSP_EXIT_OK)
        rc = ksp_x509_sign_cert(cli, s, k, x, out);
    X509_free(x);
    return rc;
}

static void report(struct ksp_cli *cli, const char *token, const struct ksp_obj *priv, X509 *x,
                   const char *out_path)
{
    char *subject = ksp_x509_name_text(X509_get_subject_name(x));
    char *serial = ksp_x509_serial_text(x);
    struct ksp_obj cert = *priv;
    cert.cls = CKO_CERTIFICATE;
    char *cert_uri = ksp_obj_uri(token, &cert);
    char *key_uri = ksp_obj_uri(token, priv);
    char nb[32], na[32], desc[64];
    ksp_x509_time_text(X509_get0_notBefore(x), nb, sizeof(nb));
    ksp_x509_time_text(X509_get0_notAfter(x), na, sizeof(na));
    ksp_obj_describe(priv, desc, sizeof(desc));

    if (cli->json) {
        struct ksp_json j;
        ksp_json_init(&j, stdout);
        ksp_json_obj_begin(&j, NULL);
        ksp_json_str(&j, "token", token);
        ksp_json_str(&j, "subject", subject ? subject : "");
        ksp_json_str(&j, "serial", serial ? serial : "");
        ksp_json_str(&j, "not_before", nb);
        ksp_json_str(&j, "not_after", na);
        if (cert_uri)
            ksp_json_str(&j, "certificate_uri", cert_uri);
        if (out_path)
            ksp_json_str(&j, "pem_file", out_path);
        ksp_json_arr_begin(&j, "objects");
        ksp_obj_json(&j, token, priv);
        ksp_json_arr_end(&j);
        ksp_json_obj_end(&j);
        ksp_json_finish(&j);
    } else {
        const char *be = ksp_obj_backend_name(priv);
        printf("created %s key pair and self-signed certificate \"", desc);
        ksp_text_put(stdout, priv->label ? priv->label : "");
        fputs("\" on token \"", stdout);
        ksp_text_put(stdout, token);
        puts("\"");
        fputs("  subject:     ", stdout);
        ksp_text_put(stdout, subject ? subject : "?");
        printf("\n  serial:      %s\n", serial ? serial : "?");
        printf("  valid:       %s to %s\n", nb, na);
        printf("  backend:     %s\n", be ? be : "unknown");
        fputs("  fallback:    ", stdout);
        ksp_text_put(stdout, priv->reason && priv->reason[0] ? priv->reason : "none");
        putchar('\n');
        printf("  certificate: %s\n", cert_uri ? cert_uri : "-");
        printf("  private key: %s\n", key_uri ? key_uri : "-");
        if (out_path && strcmp(out_path, "-") != 0)
            printf("  PEM file:    %s\n", out_path);
        if (cert_uri && key_uri)
            printf("curl: curl --cert '%s' --key '%s' https://...\n", cert_uri, key_uri);
    }
    free(subject);
    free(serial);
    free(cert_uri);
    free(key_uri);
}

/* Undo a key pair made for a certificate that could not be made. */
static void discard(struct ksp_cli *cli, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE pub,
                    CK_OBJECT_HANDLE priv)
{
    cli->f->C_DestroyObject(s, priv);
    cli->f->C_DestroyObject(s, pub);
    fputs("ksp11: the new key pair was deleted again\n", stderr);
}

int ksp_cmd_selfsign(struct ksp_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {KSP_CLI_COMMON_OPTIONS,
                                         {"token", required_argument, NULL, OPT_TOKEN},
                                         {"label", required_argument, NULL, OPT_LABEL},
                                         {"type", required_argument, NULL, OPT_TYPE},
                                         {"bits", required_argument, NULL, OPT_BITS},
                                         {"curve", required_argument, NULL, OPT_CURVE},
                                         {"id", required_argument, NULL, OPT_ID},
                                         {"subject", required_argument, NULL, OPT_SUBJECT},
                                         {"san", required_argument, NULL, OPT_SAN},
                                         {"days", required_argument, NULL, OPT_DAYS},
                                         {"out", required_argument, NULL, OPT_OUT},
                                         {"require-hardware", no_argument, NULL, OPT_REQUIRE_HW},
                                         {NULL, 0, NULL, 0}};
    struct selfsign_opts so = {0};
    struct ksp_slot slot;
    struct ksp_key key = {.priv = CK_INVALID_HANDLE, .pub = CK_INVALID_HANDLE};
    struct ksp_obj priv = {0};
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    CK_OBJECT_HANDLE hpub = CK_INVALID_HANDLE, hpriv = CK_INVALID_HANDLE, hcert = CK_INVALID_HANDLE;
    X509_NAME *subject = NULL;
    X509 *cert = NULL;
    unsigned char id[KSP_ID_MAX];
    size_t id_len = 0;
    unsigned long bits = 2048, days = 365;
    int curve = 0;
    bool rsa = true, in = false;
    int rc = KSP_EXIT_OK;

    if (!ksp_cli_parse(cli, argc, argv, opts, opt, &so, help, &rc))
        goto out;
    rc = KSP_EXIT_USAGE;
    if (so.token && !so.token[0]) {
        ksp_cli_usage(cli, "--token needs a label");
        goto out;
    }
    if (!so.label || !so.label[0] || ksp_has_control(so.label)) {
        ksp_cli_usage(cli, "--label is required (no control characters)");
        goto out;
    }
    if (so.type && strcasecmp(so.type, "ec") == 0) {
        rsa = false;
    } else if (so.type && strcasecmp(so.type, "rsa") != 0) {
        ksp_cli_usage(cli, "--type takes rsa or ec, not '%s'", so.type);
        goto out;
    }
    if (so.bits && (!rsa || !ksp_cli_parse_ulong(so.bits, 16384, &bits) || bits < 2048)) {
        ksp_cli_usage(cli, rsa ? "--bits takes an RSA key size of at least 2048, e.g. 3072"
                               : "--bits is for RSA keys; use --curve with --type ec");
        goto out;
    }
    if (so.curve) {
        curve = ksp_keygen_curve(so.curve);
        if (rsa || curve < 0) {
            ksp_cli_usage(cli, rsa ? "--curve is for EC keys (--type ec)"
                                   : "--curve takes P-256, P-384 or P-521");
            goto out;
        }
    }
    if (so.days && (!ksp_cli_parse_ulong(so.days, DAYS_MAX, &days) || days == 0)) {
        ksp_cli_usage(cli, "--days takes a number of days from 1 to %lu", DAYS_MAX);
        goto out;
    }
    if (so.id && !ksp_hex_parse(so.id, id, sizeof(id), &id_len)) {
        ksp_cli_usage(cli, "--id takes 1 to %d bytes in hex, e.g. 01a2", KSP_ID_MAX);
        goto out;
    }
    if (so.out && !so.out[0]) {
        ksp_cli_usage(cli, "--out needs a file name");
        goto out;
    }
    rc = so.out ? ksp_x509_out_check(so.out) : KSP_EXIT_OK;
    if (rc == KSP_EXIT_OK)
        rc = ksp_x509_subject(cli, so.subject, &subject);
    /* Extensions without a certificate: only the syntax of --san is checked. */
    if (rc == KSP_EXIT_OK)
        rc = extensions(cli, NULL, rsa ? CKK_RSA : CKK_EC, so.san);
    if (rc != KSP_EXIT_OK)
        goto out;

    rc = ksp_p11_open_token(cli, so.token, true, &slot, &s, &in);
    if (rc == KSP_EXIT_OK)
        rc = ksp_keygen_label_free(cli, s, so.label);
    if (rc != KSP_EXIT_OK)
        goto out;
    struct ksp_keyspec ks = {.rsa = rsa,
                             .bits = bits,
                             .curve = curve,
                             .label = so.label,
                             .id = id_len ? id : NULL,
                             .id_len = id_len,
                             .require_hw = so.require_hw};
    rc = ksp_keygen_generate(cli, s, &ks, &hpub, &hpriv);
    if (rc != KSP_EXIT_OK)
        goto out;
    rc = ksp_key_load(cli, s, hpriv, &key);
    if (rc == KSP_EXIT_OK)
        rc = make_cert(cli, s, &key, subject, days, so.san, &cert);
    if (rc == KSP_EXIT_OK)
        rc = ksp_x509_store(cli, s, cert, key.id, key.id_len, so.label, &hcert);
    if (rc == KSP_EXIT_OK && so.out)
        rc = ksp_x509_write_pem(so.out, cert, NULL);
    if (rc == KSP_EXIT_OK) {
        CK_RV rv = ksp_obj_read(cli, s, hpriv, &priv);
        if (rv != CKR_OK)
            rc = ksp_cli_fail("certificate stored, but reading the key back failed", rv);
    }
    if (rc != KSP_EXIT_OK) {
        if (hcert != CK_INVALID_HANDLE)
            cli->f->C_DestroyObject(s, hcert);
        discard(cli, s, hpub, hpriv);
        goto out;
    }
    report(cli, slot.label, &priv, cert, so.out);
out:
    ksp_obj_free(&priv);
    ksp_key_free(&key);
    X509_free(cert);
    X509_NAME_free(subject);
    free(so.san);
    ksp_p11_close_session(cli, s, in);
    return rc;
}
