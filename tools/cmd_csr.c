/*
 * `ksp11 csr`: a PKCS#10 certificate request (RFC 2986) for an existing token
 * key: subject, subjectAltName and extendedKeyUsage from the options (as an
 * extensionRequest attribute, RFC 2985 §5.4.2), signed by the key through
 * C_Sign with SHA-256 and verified before it is written.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include "x509.h"

struct csr_opts {
    const char *token;
    const char *key;
    const char *id;
    const char *subject;
    const char *out;
    char *san; /* joined with ',' */
    char *eku;
};

enum { OPT_TOKEN = KSP_OPT_CMD, OPT_KEY, OPT_ID, OPT_SUBJECT, OPT_SAN, OPT_EKU, OPT_OUT };

static void help(FILE *f)
{
    fputs("usage: ksp11 csr [--token TOKEN] (--key LABEL|URI | --id HEX) [--subject NAME]\n"
          "                 [--san LIST] [--eku LIST] [--out FILE]\n"
          "                 [--pin PIN | --pin-source FILE] [--json]\n"
          "\n"
          "Write a PKCS#10 certificate request for a key on the token, signed by that\n"
          "key (SHA-256), as PEM.\n"
          "  --token TOKEN   token label or serial (default: the URI's token, else the\n"
          "                  only token)\n"
          "  --key KEY       the private key: its label, or a pkcs11: URI (token=,\n"
          "                  object=, id=)\n"
          "  --id HEX        the key's CKA_ID (alone or with --key LABEL)\n"
          "  --subject NAME  /CN=host/O=Example, as openssl req -subj takes it; '\\'\n"
          "                  escapes '/' in a value (default: /CN=<host name>)\n"
          "  --san LIST      subjectAltName, e.g. DNS:host.example,IP:10.0.0.1,\n"
          "                  email:a@example,URI:https://x (may be repeated)\n"
          "  --eku LIST      extendedKeyUsage: clientAuth, serverAuth, codeSigning,\n"
          "                  emailProtection, ... or dotted OIDs, comma-separated (may\n"
          "                  be repeated)\n"
          "  --out FILE      where to write the PEM (default: stdout)\n"
          "With --json: the subject, the key's URI and the PEM in a JSON object.\n",
          f);
}

static int append(char **dst, const char *arg)
{
    size_t old = *dst ? strlen(*dst) : 0;
    char *p = realloc(*dst, old + strlen(arg) + 2);
    if (!p)
        return ksp_cli_err("out of memory");
    if (old)
        p[old++] = ',';
    strcpy(p + old, arg);
    *dst = p;
    return KSP_EXIT_OK;
}

static int opt(struct ksp_cli *cli, void *ctx, int id, const char *arg)
{
    struct csr_opts *o = ctx;
    switch (id) {
    case OPT_TOKEN:
        o->token = arg;
        break;
    case OPT_KEY:
        o->key = arg;
        break;
    case OPT_ID:
        o->id = arg;
        break;
    case OPT_SUBJECT:
        o->subject = arg;
        break;
    case OPT_OUT:
        o->out = arg;
        break;
    case OPT_SAN:
    case OPT_EKU:
        if (!arg[0])
            return ksp_cli_usage(cli, "%s needs a value", id == OPT_SAN ? "--san" : "--eku");
        return append(id == OPT_SAN ? &o->san : &o->eku, arg);
    default:
        return ksp_cli_usage(cli, "unknown option");
    }
    return KSP_EXIT_OK;
}

static int build_exts(struct ksp_cli *cli, const struct csr_opts *o, STACK_OF(X509_EXTENSION) * *sk)
{
    X509V3_CTX ctx;
    int rc = KSP_EXIT_OK;
    X509V3_set_ctx(&ctx, NULL, NULL, NULL, NULL, 0);
    if (o->san)
        rc = ksp_x509_add_ext(cli, &ctx, sk, NID_subject_alt_name, o->san, "--san");
    if (rc == KSP_EXIT_OK && o->eku)
        rc = ksp_x509_add_ext(cli, &ctx, sk, NID_ext_key_usage, o->eku, "--eku");
    return rc;
}

static int report(struct ksp_cli *cli, const char *token, const struct ksp_key *k, X509_REQ *req,
                  const char *out)
{
    if (!cli->json)
        return ksp_x509_write_pem(out ? out : "-", NULL, req);
    int rc = out ? ksp_x509_write_pem(out, NULL, req) : KSP_EXIT_OK;
    if (rc != KSP_EXIT_OK)
        return rc;
    BIO *b = BIO_new(BIO_s_mem());
    char *pem = NULL;
    long n = 0;
    if (!b || !PEM_write_bio_X509_REQ(b, req) || (n = BIO_get_mem_data(b, &pem)) <= 0) {
        BIO_free(b);
        return ksp_cli_ssl_err(KSP_EXIT_FAIL, "cannot encode the request");
    }
    char *copy = strndup(pem, (size_t)n);
    BIO_free(b);
    char *subject = ksp_x509_name_text(X509_REQ_get_subject_name(req));
    char *uri = ksp_uri_build(token, k->label, "private", k->id, k->id_len);
    struct ksp_json j;
    ksp_json_init(&j, stdout);
    ksp_json_obj_begin(&j, NULL);
    ksp_json_str(&j, "token", token);
    ksp_json_str(&j, "subject", subject ? subject : "");
    if (uri)
        ksp_json_str(&j, "key_uri", uri);
    if (out)
        ksp_json_str(&j, "pem_file", out);
    ksp_json_str(&j, "pem", copy ? copy : "");
    ksp_json_obj_end(&j);
    ksp_json_finish(&j);
    free(copy);
    free(subject);
    free(uri);
    return KSP_EXIT_OK;
}

int ksp_cmd_csr(struct ksp_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {KSP_CLI_COMMON_OPTIONS,
                                         {"token", required_argument, NULL, OPT_TOKEN},
                                         {"key", required_argument, NULL, OPT_KEY},
                                         {"id", required_argument, NULL, OPT_ID},
                                         {"subject", required_argument, NULL, OPT_SUBJECT},
                                         {"san", required_argument, NULL, OPT_SAN},
                                         {"eku", required_argument, NULL, OPT_EKU},
                                         {"out", required_argument, NULL, OPT_OUT},
                                         {NULL, 0, NULL, 0}};
    struct csr_opts co = {0};
    struct ksp_ref ref = {0};
    struct ksp_slot slot;
    struct ksp_key key = {.priv = CK_INVALID_HANDLE, .pub = CK_INVALID_HANDLE};
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    STACK_OF(X509_EXTENSION) *exts = NULL;
    X509_NAME *subject = NULL;
    X509_REQ *req = NULL, *signed_req = NULL;
    bool in = false;
    int rc = KSP_EXIT_OK;

    if (!ksp_cli_parse(cli, argc, argv, opts, opt, &co, help, &rc))
        goto out;
    if (!co.key && !co.id) {
        rc = ksp_cli_usage(cli, "--key (label or pkcs11: URI) or --id is required");
        goto out;
    }
    if (co.out && !co.out[0]) {
        rc = ksp_cli_usage(cli, "--out needs a file name");
        goto out;
    }
    rc = co.out ? ksp_x509_out_check(co.out) : KSP_EXIT_OK;
    if (rc == KSP_EXIT_OK)
        rc = ksp_ref_parse(cli, "--key", co.key, co.id, &ref);
    if (rc != KSP_EXIT_OK)
        goto out;
    if (co.token && ref.token && strcmp(co.token, ref.token) != 0) {
        rc = ksp_cli_usage(cli, "--token and the token of --key differ");
        goto out;
    }
    rc = ksp_x509_subject(cli, co.subject, &subject);
    if (rc == KSP_EXIT_OK)
        rc = build_exts(cli, &co, &exts);
    if (rc != KSP_EXIT_OK)
        goto out;

    rc = ksp_p11_open_token(cli, co.token ? co.token : ref.token, false, &slot, &s, &in);
    if (rc == KSP_EXIT_OK)
        rc = ksp_key_find(cli, s, &ref, &key);
    if (rc != KSP_EXIT_OK)
        goto out;
    req = X509_REQ_new();
    if (!req || !X509_REQ_set_version(req, X509_REQ_VERSION_1) ||
        !X509_REQ_set_subject_name(req, subject) || !X509_REQ_set_pubkey(req, key.pkey) ||
        (exts && !X509_REQ_add_extensions(req, exts))) {
        rc = ksp_cli_ssl_err(KSP_EXIT_FAIL, "cannot build the request");
        goto out;
    }
    rc = ksp_x509_sign_req(cli, s, &key, req, &signed_req);
    if (rc == KSP_EXIT_OK)
        rc = report(cli, slot.label, &key, signed_req, co.out);
out:
    X509_REQ_free(req);
    X509_REQ_free(signed_req);
    X509_NAME_free(subject);
    sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
    ksp_key_free(&key);
    ksp_ref_free(&ref);
    free(co.san);
    free(co.eku);
    ksp_p11_close_session(cli, s, in);
    return rc;
}
