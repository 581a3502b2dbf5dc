/*
 * `ksp11 import-cert`: store a certificate (PEM or DER) on the token next to
 * its key. The key is found by public key: the certificate's
 * SubjectPublicKeyInfo must equal the public key of a key pair on the token,
 * whose CKA_ID (and, by default, label) the certificate gets. No matching key,
 * the same certificate already there, or another certificate for that key
 * (without --replace) are refusals (exit 6), not silent successes.
 */
#include <stdlib.h>
#include <string.h>

#include "x509.h"

struct import_opts {
    const char *token;
    const char *in;
    const char *label;
    bool replace;
};

enum { OPT_TOKEN = KSP_OPT_CMD, OPT_IN, OPT_LABEL, OPT_REPLACE };

static void help(FILE *f)
{
    fputs("usage: ksp11 import-cert [--token TOKEN] --in FILE [--label LABEL] [--replace]\n"
          "                         [--pin PIN | --pin-source FILE] [--json]\n"
          "\n"
          "Store the X.509 certificate in FILE (PEM or DER; '-': stdin) on TOKEN next to\n"
          "the key pair whose public key is the certificate's, with the key's CKA_ID.\n"
          "  --token TOKEN  token label or serial (default: the only token)\n"
          "  --label LABEL  CKA_LABEL of the certificate (default: the key's label)\n"
          "  --replace      delete the certificates the key had before (renewal)\n"
          "Refused (exit 6): no key on the token has the certificate's public key; the\n"
          "certificate is on the token already; the key has another certificate and\n"
          "--replace was not given.\n",
          f);
}

static int opt(struct ksp_cli *cli, void *ctx, int id, const char *arg)
{
    struct import_opts *o = ctx;
    switch (id) {
    case OPT_TOKEN:
        o->token = arg;
        break;
    case OPT_IN:
        o->in = arg;
        break;
    case OPT_LABEL:
        o->label = arg;
        break;
    case OPT_REPLACE:
        o->replace = true;
        break;
    default:
        return ksp_cli_usage(cli, "unknown option");
    }
    return KSP_EXIT_OK;
}

/* The certificates already stored for the key id. */
static int key_certs(struct ksp_cli *cli, CK_SESSION_HANDLE s, const struct ksp_key *k,
                     CK_OBJECT_HANDLE **out, size_t *n)
{
    CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
    CK_ATTRIBUTE tmpl[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_ID, k->id, (CK_ULONG)k->id_len}};
    *out = NULL;
    *n = 0;
    if (!k->id_len)
        return KSP_EXIT_OK;
    CK_RV rv = ksp_obj_find(cli, s, tmpl, 2, out, n);
    if (rv != CKR_OK)
        return ksp_cli_fail("cannot search the token's certificates", rv);
    return KSP_EXIT_OK;
}

static void report(struct ksp_cli *cli, const char *token, const struct ksp_key *k, X509 *x,
                   const char *label, size_t replaced)
{
    char *subject = ksp_x509_name_text(X509_get_subject_name(x));
    char *cert_uri = ksp_uri_build(token, label, "cert", k->id, k->id_len);
    char *key_uri = k->priv != CK_INVALID_HANDLE
                        ? ksp_uri_build(token, k->label, "private", k->id, k->id_len)
                        : NULL;
    char *hex = malloc(k->id_len * 2 + 1);
    if (hex)
        ksp_hex_format(k->id, k->id_len, hex);
    if (cli->json) {
        struct ksp_json j;
        ksp_json_init(&j, stdout);
        ksp_json_obj_begin(&j, NULL);
        ksp_json_str(&j, "token", token);
        ksp_json_str(&j, "label", label);
        ksp_json_str(&j, "id", hex ? hex : "");
        ksp_json_str(&j, "subject", subject ? subject : "");
        ksp_json_uint(&j, "replaced", replaced);
        if (cert_uri)
            ksp_json_str(&j, "certificate_uri", cert_uri);
        if (key_uri)
            ksp_json_str(&j, "key_uri", key_uri);
        else
            ksp_json_null(&j, "key_uri");
        ksp_json_obj_end(&j);
        ksp_json_finish(&j);
    } else {
        fputs("imported certificate \"", stdout);
        ksp_text_put(stdout, label);
        fputs("\" on token \"", stdout);
        ksp_text_put(stdout, token);
        puts("\"");
        fputs("  subject:     ", stdout);
        ksp_text_put(stdout, subject ? subject : "?");
        printf("\n  id:          %s (the key's)\n", hex ? hex : "?");
        if (replaced)
            printf("  replaced:    %zu older certificate%s\n", replaced, replaced == 1 ? "" : "s");
        printf("  certificate: %s\n", cert_uri ? cert_uri : "-");
        printf("  private key: %s\n",
               key_uri ? key_uri : "(not visible: log in to see it; the public key matched)");
    }
    free(hex);
    free(subject);
    free(cert_uri);
    free(key_uri);
}

int ksp_cmd_import_cert(struct ksp_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {KSP_CLI_COMMON_OPTIONS,
                                         {"token", required_argument, NULL, OPT_TOKEN},
                                         {"in", required_argument, NULL, OPT_IN},
                                         {"label", required_argument, NULL, OPT_LABEL},
                                         {"replace", no_argument, NULL, OPT_REPLACE},
                                         {NULL, 0, NULL, 0}};
    struct import_opts io = {0};
    struct ksp_slot slot;
    struct ksp_key key = {.priv = CK_INVALID_HANDLE, .pub = CK_INVALID_HANDLE};
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    CK_OBJECT_HANDLE *old = NULL, h = CK_INVALID_HANDLE;
    size_t n_old = 0;
    X509 *x = NULL;
    bool in = false, found = false;
    int rc = KSP_EXIT_OK;

    if (!ksp_cli_parse(cli, argc, argv, opts, opt, &io, help, &rc))
        return rc;
    if (!io.in || !io.in[0])
        return ksp_cli_usage(cli, "--in FILE is required (PEM or DER certificate; '-': stdin)");
    if (io.label && (!io.label[0] || ksp_has_control(io.label)))
        return ksp_cli_usage(cli, "--label must be non-empty, without control characters");
    rc = ksp_x509_read(io.in, &x);
    if (rc != KSP_EXIT_OK)
        return rc;
    const EVP_PKEY *pkey = X509_get0_pubkey(x);
    if (!pkey) {
        rc = ksp_cli_ssl_err(KSP_EXIT_INPUT, "%s: the certificate's public key is not usable",
                             io.in);
        goto out;
    }
    rc = ksp_p11_open_token(cli, io.token, true, &slot, &s, &in);
    if (rc == KSP_EXIT_OK)
        rc = ksp_x509_find_value(cli, s, x, &found);
    if (rc != KSP_EXIT_OK)
        goto out;
    if (found) {
        ksp_cli_err("this certificate is on token \"%s\" already", slot.label);
        rc = KSP_EXIT_REFUSED;
        goto out;
    }
    rc = ksp_key_match(cli, s, pkey, false, &key, &found);
    if (rc != KSP_EXIT_OK)
        goto out;
    if (!found) {
        ksp_cli_err("no key on token \"%s\" has the certificate's public key: it belongs to "
                    "another key (not imported)",
                    slot.label);
        rc = KSP_EXIT_REFUSED;
        goto out;
    }
    if (!key.id_len) {
        rc = ksp_cli_err("the matching key has no CKA_ID to link the certificate to");
        goto out;
    }
    rc = key_certs(cli, s, &key, &old, &n_old);
    if (rc != KSP_EXIT_OK)
        goto out;
    if (n_old && !io.replace) {
        ksp_cli_err("the key \"%s\" has a certificate already; give --replace to replace it",
                    key.label ? key.label : "");
        rc = KSP_EXIT_REFUSED;
        goto out;
    }
    const char *label = io.label ? io.label : key.label && key.label[0] ? key.label : "cert";
    rc = ksp_x509_store(cli, s, x, key.id, key.id_len, label, &h);
    if (rc != KSP_EXIT_OK)
        goto out;
    /* The new one is stored: only now do the old ones go. */
    for (size_t i = 0; i < n_old; i++) {
        CK_RV rv = cli->f->C_DestroyObject(s, old[i]);
        if (rv != CKR_OK && rv != CKR_OBJECT_HANDLE_INVALID) {
            rc = ksp_cli_fail("the certificate was imported, but an old one could not be "
                              "deleted",
                              rv);
            goto out;
        }
    }
    report(cli, slot.label, &key, x, label, n_old);
out:
    free(old);
    ksp_key_free(&key);
    X509_free(x);
    ksp_p11_close_session(cli, s, in);
    return rc;
}
