/*
 * `ksp11 check-cert`: check a certificate (on the token, or a file) against
 * the PKI requirements of a role and print each requirement as PASS or FAIL.
 * Exit 0 iff every requirement passes, 7 if one fails. One role today,
 * client-auth (Configuration Manager's client certificate: EKU clientAuth,
 * key usage a0, SHA-2, RSA >= 2048 or P-256+, valid now, private key on the
 * token); a role is a row of the roles table naming its requirement checks.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>

#include "x509.h"

struct check_opts {
    const char *token;
    const char *cert;
    const char *id;
    const char *in;
    const char *role;
};

enum { OPT_TOKEN = KSP_OPT_CMD, OPT_CERT, OPT_ID, OPT_IN, OPT_ROLE };

/* What the checks look at. */
struct subject {
    X509 *x;
    EVP_PKEY *pkey;     /* the certificate's public key */
    bool key_found;     /* the token holds the matching private key */
    struct ksp_key key; /* that key */
    const char *backend;
};

typedef bool (*check_fn)(const struct subject *c, char *detail, size_t n);

struct requirement {
    const char *name;
    check_fn fn;
};

#define MAX_REQS 8
struct role {
    const char *name;
    const char *summary;
    struct requirement reqs[MAX_REQS];
};

static bool eku_client_auth(const struct subject *c, char *detail, size_t n);
static bool key_usage_a0(const struct subject *c, char *detail, size_t n);
static bool signature_sha2(const struct subject *c, char *detail, size_t n);
static bool key_strength(const struct subject *c, char *detail, size_t n);
static bool validity(const struct subject *c, char *detail, size_t n);
static bool private_key(const struct subject *c, char *detail, size_t n);

static const struct role roles[] = {
    {"client-auth",
     "TLS client authentication (Configuration Manager client certificate)",
     {{"eku-client-auth", eku_client_auth},
      {"key-usage", key_usage_a0},
      {"signature-sha2", signature_sha2},
      {"key-strength", key_strength},
      {"validity", validity},
      {"private-key", private_key}}},
};

static void help(FILE *f)
{
    fputs("usage: ksp11 check-cert [--token TOKEN] (--cert LABEL|URI | --id HEX | --in FILE)\n"
          "                        [--role ROLE] [--pin PIN | --pin-source FILE] [--json]\n"
          "\n"
          "Check a certificate against the PKI requirements of ROLE and print each one\n"
          "as PASS or FAIL. Exit status 0 when all pass, 7 when one fails.\n"
          "  --token TOKEN  token label or serial (default: the URI's token, else the\n"
          "                 only token); it must hold the certificate's private key\n"
          "  --cert CERT    a certificate on the token: its label or a pkcs11: URI\n"
          "  --id HEX       the certificate's CKA_ID (alone or with --cert LABEL)\n"
          "  --in FILE      a certificate file instead (PEM or DER; '-': stdin)\n"
          "  --role ROLE    the requirements to check (default: client-auth)\n"
          "Roles:\n",
          f);
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++)
        fprintf(f, "  %-13s %s\n", roles[i].name, roles[i].summary);
    fputs("Requirements of client-auth:\n"
          "  eku-client-auth  extendedKeyUsage present and contains clientAuth\n"
          "                   (1.3.6.1.5.5.7.3.2)\n"
          "  key-usage        keyUsage present with digitalSignature, and for RSA keys\n"
          "                   keyEncipherment too (a0)\n"
          "  signature-sha2   signed with SHA-224, SHA-256, SHA-384 or SHA-512\n"
          "  key-strength     RSA of at least 2048 bits, or EC on P-256, P-384, P-521\n"
          "  validity         valid now (notBefore <= now <= notAfter)\n"
          "  private-key      the token holds the private key of the certificate\n",
          f);
}

static int opt(struct ksp_cli *cli, void *ctx, int id, const char *arg)
{
    struct check_opts *o = ctx;
    switch (id) {
    case OPT_TOKEN:
        o->token = arg;
        break;
    case OPT_CERT:
        o->cert = arg;
        break;
    case OPT_ID:
        o->id = arg;
        break;
    case OPT_IN:
        o->in = arg;
        break;
    case OPT_ROLE:
        o->role = arg;
        break;
    default:
        return ksp_cli_usage(cli, "unknown option");
    }
    return KSP_EXIT_OK;
}

static bool eku_client_auth(const struct subject *c, char *detail, size_t n)
{
    int crit = 0;
    EXTENDED_KEY_USAGE *eku = X509_get_ext_d2i(c->x, NID_ext_key_usage, &crit, NULL);
    bool found = false;
    size_t used = 0;
    if (!eku) {
        snprintf(detail, n,
                 crit == -1 ? "no extendedKeyUsage extension"
                            : "extendedKeyUsage is malformed or repeated");
        return false;
    }
    used = (size_t)snprintf(detail, n, "extendedKeyUsage:");
    for (int i = 0; i < sk_ASN1_OBJECT_num(eku); i++) {
        ASN1_OBJECT *o = sk_ASN1_OBJECT_value(eku, i);
        char name[80];
        if (OBJ_obj2nid(o) == NID_client_auth)
            found = true;
        OBJ_obj2txt(name, sizeof(name), o, 0);
        if (used < n)
            used += (size_t)snprintf(detail + used, n - used, "%s %s", i ? "," : "", name);
    }
    sk_ASN1_OBJECT_pop_free(eku, ASN1_OBJECT_free);
    if (!found && used < n)
        snprintf(detail + used, n - used, " (no clientAuth)");
    return found;
}

static bool key_usage_a0(const struct subject *c, char *detail, size_t n)
{
    static const struct {
        uint32_t bit;
        const char *name;
    } bits[] = {{KU_DIGITAL_SIGNATURE, "digitalSignature"},
                {KU_NON_REPUDIATION, "nonRepudiation"},
                {KU_KEY_ENCIPHERMENT, "keyEncipherment"},
                {KU_DATA_ENCIPHERMENT, "dataEncipherment"},
                {KU_KEY_AGREEMENT, "keyAgreement"},
                {KU_KEY_CERT_SIGN, "keyCertSign"},
                {KU_CRL_SIGN, "cRLSign"},
                {KU_ENCIPHER_ONLY, "encipherOnly"},
                {KU_DECIPHER_ONLY, "decipherOnly"}};
    uint32_t ku = X509_get_key_usage(c->x);
    bool rsa = EVP_PKEY_get_base_id(c->pkey) == EVP_PKEY_RSA;
    uint32_t need = KU_DIGITAL_SIGNATURE | (rsa ? KU_KEY_ENCIPHERMENT : 0);
    size_t used = 0;
    if (X509_get_extension_flags(c->x) & EXFLAG_INVALID) {
        snprintf(detail, n, "the certificate's extensions are malformed");
        return false;
    }
    if (ku == UINT32_MAX) {
        snprintf(detail, n, "no keyUsage extension (needs digitalSignature%s)",
                 rsa ? ", keyEncipherment" : "");
        return false;
    }
    used = (size_t)snprintf(detail, n, "keyUsage:");
    for (size_t i = 0; i < sizeof(bits) / sizeof(bits[0]); i++) {
        if ((ku & bits[i].bit) && used < n)
            used += (size_t)snprintf(detail + used, n - used, "%s %s",
                                     used > strlen("keyUsage:") ? "," : "", bits[i].name);
    }
    if ((ku & need) != need && used < n)
        snprintf(detail + used, n - used, " (needs digitalSignature%s)",
                 rsa ? ", keyEncipherment" : "");
    return (ku & need) == need;
}

static bool signature_sha2(const struct subject *c, char *detail, size_t n)
{
    int md = NID_undef, pk = NID_undef, secbits = 0;
    uint32_t flags = 0;
    int sig = X509_get_signature_nid(c->x);
    const char *name = OBJ_nid2ln(sig);
    if (!X509_get_signature_info(c->x, &md, &pk, &secbits, &flags)) {
        snprintf(detail, n, "signature algorithm %s is not understood", name ? name : "?");
        return false;
    }
    bool ok = md == NID_sha224 || md == NID_sha256 || md == NID_sha384 || md == NID_sha512;
    snprintf(detail, n, "signature algorithm %s (hash %s)", name ? name : "?",
             md != NID_undef ? OBJ_nid2sn(md) : "unknown");
    return ok;
}

static bool key_strength(const struct subject *c, char *detail, size_t n)
{
    int type = EVP_PKEY_get_base_id(c->pkey);
    if (type == EVP_PKEY_RSA) {
        int bits = EVP_PKEY_get_bits(c->pkey);
        snprintf(detail, n, "RSA-%d%s", bits, bits >= 2048 ? "" : " (needs at least 2048 bits)");
        return bits >= 2048;
    }
    if (type == EVP_PKEY_EC) {
        char group[64] = "";
        EVP_PKEY_get_utf8_string_param(c->pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                       NULL);
        bool ok = strcmp(group, "prime256v1") == 0 || strcmp(group, "secp384r1") == 0 ||
                  strcmp(group, "secp521r1") == 0;
        snprintf(detail, n, "EC %s%s", group[0] ? group : "(unknown curve)",
                 ok ? "" : " (needs P-256, P-384 or P-521)");
        return ok;
    }
    snprintf(detail, n, "%s key (needs RSA or EC)", OBJ_nid2sn(type) ? OBJ_nid2sn(type) : "other");
    return false;
}

static bool validity(const struct subject *c, char *detail, size_t n)
{
    char nb[32], na[32];
    const ASN1_TIME *b = X509_get0_notBefore(c->x), *a = X509_get0_notAfter(c->x);
    ksp_x509_time_text(b, nb, sizeof(nb));
    ksp_x509_time_text(a, na, sizeof(na));
    int before = X509_cmp_current_time(b), after = X509_cmp_current_time(a);
    if (before == 0 || after == 0) {
        snprintf(detail, n, "malformed validity dates");
        return false;
    }
    if (before > 0) {
        snprintf(detail, n, "not valid before %s", nb);
        return false;
    }
    if (after < 0) {
        snprintf(detail, n, "expired on %s", na);
        return false;
    }
    snprintf(detail, n, "valid from %s to %s", nb, na);
    return true;
}

static bool private_key(const struct subject *c, char *detail, size_t n)
{
    if (!c->key_found) {
        snprintf(detail, n, "no private key on the token has the certificate's public key");
        return false;
    }
    char hex[2 * KSP_ID_MAX + 1] = "";
    if (c->key.id_len <= KSP_ID_MAX)
        ksp_hex_format(c->key.id, c->key.id_len, hex);
    snprintf(detail, n, "private key '%s' (id %s, %s)", c->key.label ? c->key.label : "", hex,
             c->backend ? c->backend : "unknown backend");
    return true;
}

/* The one certificate named by ref on the token. */
static int token_cert(struct ksp_cli *cli, CK_SESSION_HANDLE s, const struct ksp_ref *ref,
                      X509 **out)
{
    CK_OBJECT_CLASS cls = CKO_CERTIFICATE;
    CK_ATTRIBUTE tmpl[3];
    CK_ULONG nt = 0;
    CK_OBJECT_HANDLE *h = NULL;
    size_t n = 0, len = 0;
    unsigned char *der = NULL;

    tmpl[nt++] = (CK_ATTRIBUTE){CKA_CLASS, &cls, sizeof(cls)};
    if (ref->label)
        tmpl[nt++] = (CK_ATTRIBUTE){CKA_LABEL, ref->label, (CK_ULONG)strlen(ref->label)};
    if (ref->id_len)
        tmpl[nt++] = (CK_ATTRIBUTE){CKA_ID, (void *)ref->id, (CK_ULONG)ref->id_len};
    CK_RV rv = ksp_obj_find(cli, s, tmpl, nt, &h, &n);
    if (rv != CKR_OK)
        return ksp_cli_fail("cannot search the token's certificates", rv);
    if (n != 1) {
        free(h);
        if (n > 1)
            return ksp_cli_usage(cli, "%zu certificates match; name one by label and id", n);
        ksp_cli_err("no such certificate on the token (see 'ksp11 list')");
        return KSP_EXIT_NOT_FOUND;
    }
    rv = ksp_obj_attr(cli, s, h[0], CKA_VALUE, &der, &len);
    free(h);
    if (rv != CKR_OK)
        return ksp_cli_fail("cannot read the certificate", rv);
    const unsigned char *p = der;
    X509 *x = der ? d2i_X509(NULL, &p, (long)len) : NULL;
    bool whole = x && p == der + len;
    free(der);
    if (!whole) {
        X509_free(x);
        return ksp_cli_ssl_err(KSP_EXIT_INPUT, "the certificate on the token is malformed");
    }
    *out = x;
    return KSP_EXIT_OK;
}

static void print_results(struct ksp_cli *cli, const struct role *r, const struct subject *c,
                          const char *token, const char *source, bool *all)
{
    char detail[512];
    char *subject = ksp_x509_name_text(X509_get_subject_name(c->x));
    size_t passed = 0, total = 0;
    struct ksp_json j;

    if (cli->json) {
        ksp_json_init(&j, stdout);
        ksp_json_obj_begin(&j, NULL);
        ksp_json_str(&j, "role", r->name);
        ksp_json_str(&j, "token", token);
        ksp_json_str(&j, "source", source);
        ksp_json_str(&j, "subject", subject ? subject : "");
        ksp_json_arr_begin(&j, "requirements");
    } else {
        /* source is quoted already; its parts were checked for control characters. */
        printf("certificate %s: ", source);
        ksp_text_put(stdout, subject ? subject : "?");
        printf("\nrole %s: %s\n", r->name, r->summary);
    }
    for (size_t i = 0; i < MAX_REQS && r->reqs[i].name; i++) {
        detail[0] = '\0';
        bool ok = r->reqs[i].fn(c, detail, sizeof(detail));
        total++;
        passed += ok;
        if (cli->json) {
            ksp_json_obj_begin(&j, NULL);
            ksp_json_str(&j, "name", r->reqs[i].name);
            ksp_json_bool(&j, "pass", ok);
            ksp_json_str(&j, "detail", detail);
            ksp_json_obj_end(&j);
        } else {
            printf("  %s  %-16s ", ok ? "PASS" : "FAIL", r->reqs[i].name);
            ksp_text_put(stdout, detail);
            putchar('\n');
        }
    }
    *all = passed == total;
    if (cli->json) {
        ksp_json_arr_end(&j);
        ksp_json_bool(&j, "pass", *all);
        ksp_json_obj_end(&j);
        ksp_json_finish(&j);
    } else {
        printf("%zu of %zu requirements met: %s\n", passed, total,
               *all ? "the certificate fits the role" : "the certificate does NOT fit the role");
    }
    free(subject);
}

int ksp_cmd_check_cert(struct ksp_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {KSP_CLI_COMMON_OPTIONS,
                                         {"token", required_argument, NULL, OPT_TOKEN},
                                         {"cert", required_argument, NULL, OPT_CERT},
                                         {"id", required_argument, NULL, OPT_ID},
                                         {"in", required_argument, NULL, OPT_IN},
                                         {"role", required_argument, NULL, OPT_ROLE},
                                         {NULL, 0, NULL, 0}};
    struct check_opts co = {0};
    struct ksp_ref ref = {0};
    struct ksp_slot slot;
    struct subject c = {.key = {.priv = CK_INVALID_HANDLE, .pub = CK_INVALID_HANDLE}};
    struct ksp_obj kobj = {0};
    const struct role *role = NULL;
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    char source[1024];
    bool in = false, all = false;
    int rc = KSP_EXIT_OK;

    if (!ksp_cli_parse(cli, argc, argv, opts, opt, &co, help, &rc))
        return rc;
    for (size_t i = 0; i < sizeof(roles) / sizeof(roles[0]); i++) {
        if (strcasecmp(co.role ? co.role : "client-auth", roles[i].name) == 0)
            role = &roles[i];
    }
    if (!role)
        return ksp_cli_usage(cli, "unknown role '%s' (roles: client-auth)", co.role);
    if (co.in && (co.cert || co.id))
        return ksp_cli_usage(cli, "give --in FILE or a certificate on the token, not both");
    if (co.in && !co.in[0])
        return ksp_cli_usage(cli, "--in needs a file name");
    if (!co.in) {
        if (!co.cert && !co.id)
            return ksp_cli_usage(cli, "name the certificate: --cert, --id or --in FILE");
        rc = ksp_ref_parse(cli, "--cert", co.cert, co.id, &ref);
        if (rc != KSP_EXIT_OK)
            return rc;
        if (co.token && ref.token && strcmp(co.token, ref.token) != 0) {
            rc = ksp_cli_usage(cli, "--token and the token of --cert differ");
            goto out;
        }
    } else {
        rc = ksp_x509_read(co.in, &c.x);
        if (rc != KSP_EXIT_OK)
            goto out;
    }
    rc = ksp_p11_open_token(cli, co.token ? co.token : ref.token, false, &slot, &s, &in);
    if (rc == KSP_EXIT_OK && !c.x)
        rc = token_cert(cli, s, &ref, &c.x);
    if (rc != KSP_EXIT_OK)
        goto out;
    c.pkey = X509_get0_pubkey(c.x);
    if (!c.pkey) {
        rc = ksp_cli_ssl_err(KSP_EXIT_INPUT, "the certificate's public key is not usable");
        goto out;
    }
    rc = ksp_key_match(cli, s, c.pkey, true, &c.key, &c.key_found);
    if (rc != KSP_EXIT_OK)
        goto out;
    if (c.key_found && ksp_obj_read(cli, s, c.key.priv, &kobj) == CKR_OK)
        c.backend = ksp_obj_backend_name(&kobj);
    if ((ref.label && ksp_has_control(ref.label)) || ksp_has_control(slot.label) ||
        (co.in && ksp_has_control(co.in))) {
        snprintf(source, sizeof(source), "(name with control characters)");
    } else if (co.in) {
        snprintf(source, sizeof(source), "%s", co.in);
    } else {
        char hex[2 * KSP_ID_MAX + 1];
        ksp_hex_format(ref.id, ref.id_len, hex);
        snprintf(source, sizeof(source), "%s%s%s%s%s%s on token \"%s\"", ref.label ? "\"" : "",
                 ref.label ? ref.label : "", ref.label ? "\"" : "",
                 ref.label && ref.id_len ? " " : "", ref.id_len ? "id " : "", hex, slot.label);
    }
    print_results(cli, role, &c, slot.label, source, &all);
    rc = all ? KSP_EXIT_OK : KSP_EXIT_CHECK;
out:
    ksp_obj_free(&kobj);
    ksp_key_free(&c.key);
    X509_free(c.x);
    ksp_ref_free(&ref);
    ksp_p11_close_session(cli, s, in);
    return rc;
}
