/*
 * `ksp11 keygen`: C_GenerateKeyPair of a token RSA or EC key pair. The private
 * key signs (RSA keys also decrypt), the public key verifies; the module makes
 * private keys sensitive and non-exportable whatever backend holds them.
 * --require-hardware sets CKA_KSP11_REQUIRE_HARDWARE, so the module refuses
 * rather than fall back to software.
 */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

struct keygen_opts {
    const char *token;
    const char *label;
    const char *rsa;
    const char *ec;
    const char *id;
    bool require_hw;
};

enum { OPT_TOKEN = KSP_OPT_CMD, OPT_LABEL, OPT_RSA, OPT_EC, OPT_ID, OPT_REQUIRE_HW };

/* Curve names and the DER OIDs of CKA_EC_PARAMS (RFC 5480 §2.1.1.1). */
static const struct {
    const char *name;
    const char *alias[2];
    unsigned char der[10];
    CK_ULONG len;
} curves[] = {
    {"P-256",
     {"prime256v1", "secp256r1"},
     {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07},
     10},
    {"P-384", {"secp384r1", "nistp384"}, {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22}, 7},
    {"P-521", {"secp521r1", "nistp521"}, {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x23}, 7},
};

static void help(FILE *f)
{
    fputs("usage: ksp11 keygen --token TOKEN --label LABEL (--rsa BITS | --ec CURVE)\n"
          "                    [--id HEX] [--require-hardware] [--pin PIN | --pin-source FILE]\n"
          "                    [--json]\n"
          "\n"
          "Generate a non-exportable key pair on TOKEN (label or serial).\n"
          "  --rsa BITS          RSA key of BITS bits (the module offers 2048, 3072, 4096)\n"
          "  --ec CURVE          EC key on P-256, P-384 or P-521\n"
          "  --label LABEL       CKA_LABEL of both halves (the object= of the URI)\n"
          "  --id HEX            CKA_ID of both halves (default: SHA-1 of the public key)\n"
          "  --require-hardware  fail instead of creating the key in software when no\n"
          "                      acceptable TPM is available\n"
          "Prints the key's backend, why it is in software if it is, and its pkcs11: URI.\n",
          f);
}

static int opt(struct ksp_cli *cli, void *ctx, int id, const char *arg)
{
    struct keygen_opts *o = ctx;
    switch (id) {
    case OPT_TOKEN:
        o->token = arg;
        break;
    case OPT_LABEL:
        o->label = arg;
        break;
    case OPT_RSA:
        o->rsa = arg;
        break;
    case OPT_EC:
        o->ec = arg;
        break;
    case OPT_ID:
        o->id = arg;
        break;
    case OPT_REQUIRE_HW:
        o->require_hw = true;
        break;
    default:
        return ksp_cli_usage(cli, "unknown option");
    }
    return KSP_EXIT_OK;
}

int ksp_keygen_curve(const char *name)
{
    for (size_t i = 0; i < sizeof(curves) / sizeof(curves[0]); i++) {
        if (strcasecmp(name, curves[i].name) == 0 || strcasecmp(name, curves[i].alias[0]) == 0 ||
            strcasecmp(name, curves[i].alias[1]) == 0)
            return (int)i;
    }
    return -1;
}

const char *ksp_keygen_curve_name(int curve)
{
    if (curve < 0 || (size_t)curve >= sizeof(curves) / sizeof(curves[0]))
        return "?";
    return curves[curve].name;
}

bool ksp_has_control(const char *s)
{
    for (; *s; s++) {
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return true;
    }
    return false;
}

/* Refuse a second key with the same label: object= in URIs would be ambiguous. */
int ksp_keygen_label_free(struct ksp_cli *cli, CK_SESSION_HANDLE s, const char *label)
{
    CK_OBJECT_HANDLE *h = NULL;
    size_t n = 0;
    CK_ATTRIBUTE tmpl[] = {{CKA_LABEL, (void *)label, (CK_ULONG)strlen(label)}};
    CK_RV rv = ksp_obj_find(cli, s, tmpl, 1, &h, &n);
    free(h);
    if (rv != CKR_OK)
        return ksp_cli_fail("cannot search the token's objects", rv);
    if (n > 0) {
        ksp_cli_err("an object labelled \"%s\" already exists on this token; delete it "
                    "first ('ksp11 delete') or choose another label",
                    label);
        return KSP_EXIT_REFUSED;
    }
    return KSP_EXIT_OK;
}

static void report(struct ksp_cli *cli, const char *token, const struct ksp_obj *priv,
                   const struct ksp_obj *pub)
{
    char desc[64];
    if (cli->json) {
        struct ksp_json j;
        ksp_json_init(&j, stdout);
        ksp_json_obj_begin(&j, NULL);
        ksp_json_str(&j, "token", token);
        ksp_json_arr_begin(&j, "objects");
        ksp_obj_json(&j, token, priv);
        ksp_obj_json(&j, token, pub);
        ksp_json_arr_end(&j);
        ksp_json_obj_end(&j);
        ksp_json_finish(&j);
        return;
    }
    char *uri = ksp_obj_uri(token, priv);
    char *puri = ksp_obj_uri(token, pub);
    char *hex = malloc(priv->id_len * 2 + 1);
    const char *be = ksp_obj_backend_name(priv);
    ksp_obj_describe(priv, desc, sizeof(desc));
    printf("generated %s key pair \"", desc);
    ksp_text_put(stdout, priv->label ? priv->label : "");
    fputs("\" on token \"", stdout);
    ksp_text_put(stdout, token);
    puts("\"");
    if (hex) {
        ksp_hex_format(priv->id, priv->id_len, hex);
        printf("  id:          %s\n", hex);
    }
    printf("  backend:     %s\n", be ? be : "unknown");
    fputs("  fallback:    ", stdout);
    ksp_text_put(stdout, priv->reason && priv->reason[0] ? priv->reason : "none");
    putchar('\n');
    printf("  private key: %s\n", uri ? uri : "-");
    printf("  public key:  %s\n", puri ? puri : "-");
    free(hex);
    free(puri);
    free(uri);
}

static int read_pair(struct ksp_cli *cli, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE hpriv,
                     CK_OBJECT_HANDLE hpub, struct ksp_obj *priv, struct ksp_obj *pub)
{
    CK_RV rv = ksp_obj_read(cli, s, hpriv, priv);
    if (rv == CKR_OK)
        rv = ksp_obj_read(cli, s, hpub, pub);
    if (rv != CKR_OK)
        return ksp_cli_fail("key generated, but reading it back failed", rv);
    return KSP_EXIT_OK;
}

/* C_GenerateKeyPair with the tool's templates; errors are reported here. */
int ksp_keygen_generate(struct ksp_cli *cli, CK_SESSION_HANDLE s, const struct ksp_keyspec *ks,
                        CK_OBJECT_HANDLE *out_pub, CK_OBJECT_HANDLE *out_priv)
{
    CK_BBOOL yes = CK_TRUE;
    CK_KEY_TYPE kt = ks->rsa ? CKK_RSA : CKK_EC;
    CK_OBJECT_CLASS cpub = CKO_PUBLIC_KEY, cpriv = CKO_PRIVATE_KEY;
    CK_ULONG mod_bits = ks->bits;
    CK_BYTE exponent[] = {0x01, 0x00, 0x01};
    CK_ULONG label_len = (CK_ULONG)strlen(ks->label);
    CK_ATTRIBUTE pubt[12], privt[12];
    CK_ULONG npub = 0, npriv = 0;
    char what[64];
    int rc = KSP_EXIT_OK;

#define ADD(t, n, type, ptr, len) (t[n++] = (CK_ATTRIBUTE){(type), (void *)(ptr), (len)})
    ADD(pubt, npub, CKA_CLASS, &cpub, sizeof(cpub));
    ADD(pubt, npub, CKA_KEY_TYPE, &kt, sizeof(kt));
    ADD(pubt, npub, CKA_TOKEN, &yes, sizeof(yes));
    ADD(pubt, npub, CKA_VERIFY, &yes, sizeof(yes));
    ADD(pubt, npub, CKA_LABEL, ks->label, label_len);
    ADD(privt, npriv, CKA_CLASS, &cpriv, sizeof(cpriv));
    ADD(privt, npriv, CKA_KEY_TYPE, &kt, sizeof(kt));
    ADD(privt, npriv, CKA_TOKEN, &yes, sizeof(yes));
    ADD(privt, npriv, CKA_PRIVATE, &yes, sizeof(yes));
    ADD(privt, npriv, CKA_SENSITIVE, &yes, sizeof(yes));
    ADD(privt, npriv, CKA_SIGN, &yes, sizeof(yes));
    ADD(privt, npriv, CKA_LABEL, ks->label, label_len);
    if (ks->rsa) {
        ADD(pubt, npub, CKA_MODULUS_BITS, &mod_bits, sizeof(mod_bits));
        ADD(pubt, npub, CKA_PUBLIC_EXPONENT, exponent, sizeof(exponent));
        ADD(pubt, npub, CKA_ENCRYPT, &yes, sizeof(yes));
        ADD(privt, npriv, CKA_DECRYPT, &yes, sizeof(yes));
    } else {
        ADD(pubt, npub, CKA_EC_PARAMS, curves[ks->curve].der, curves[ks->curve].len);
    }
    if (ks->id_len) {
        ADD(pubt, npub, CKA_ID, ks->id, ks->id_len);
        ADD(privt, npriv, CKA_ID, ks->id, ks->id_len);
    }
    if (ks->require_hw)
        ADD(privt, npriv, CKA_KSP11_REQUIRE_HARDWARE, &yes, sizeof(yes));
#undef ADD

    CK_MECHANISM mech = {ks->rsa ? CKM_RSA_PKCS_KEY_PAIR_GEN : CKM_EC_KEY_PAIR_GEN, NULL, 0};
    if (ks->rsa)
        snprintf(what, sizeof(what), "generating an RSA-%lu key", ks->bits);
    else
        snprintf(what, sizeof(what), "generating an EC %s key", curves[ks->curve].name);
    /* RSA key generation in a real TPM can take a minute: show that it is alive. */
    struct ksp_progress *pg = ksp_progress_start(what);
    CK_OBJECT_HANDLE hpub = CK_INVALID_HANDLE, hpriv = CK_INVALID_HANDLE;
    CK_RV rv = cli->f->C_GenerateKeyPair(s, &mech, pubt, npub, privt, npriv, &hpub, &hpriv);
    ksp_progress_stop(pg);
    if (rv != CKR_OK) {
        if (ks->require_hw && rv == CKR_TEMPLATE_INCONSISTENT) {
            ksp_cli_fail("key generation refused: --require-hardware, but no acceptable TPM "
                         "is available (see 'ksp11 status')",
                         rv);
            rc = KSP_EXIT_REFUSED;
        } else if (rv == CKR_DEVICE_ERROR) {
            rc = ksp_cli_fail("key generation failed (no acceptable TPM, and the configuration "
                              "may forbid software fallback: fallback = none)",
                              rv);
        } else {
            rc = ksp_cli_fail("key generation failed", rv);
        }
        return rc;
    }
    *out_pub = hpub;
    *out_priv = hpriv;
    return KSP_EXIT_OK;
}

int ksp_cmd_keygen(struct ksp_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {KSP_CLI_COMMON_OPTIONS,
                                         {"token", required_argument, NULL, OPT_TOKEN},
                                         {"label", required_argument, NULL, OPT_LABEL},
                                         {"rsa", required_argument, NULL, OPT_RSA},
                                         {"ec", required_argument, NULL, OPT_EC},
                                         {"id", required_argument, NULL, OPT_ID},
                                         {"require-hardware", no_argument, NULL, OPT_REQUIRE_HW},
                                         {NULL, 0, NULL, 0}};
    struct keygen_opts ko = {0};
    struct ksp_slot slot;
    struct ksp_obj priv = {0}, pub = {0};
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    unsigned char id[KSP_ID_MAX];
    size_t id_len = 0;
    unsigned long bits = 0;
    int curve = -1;
    bool in = false;
    int rc = KSP_EXIT_OK;

    if (!ksp_cli_parse(cli, argc, argv, opts, opt, &ko, help, &rc))
        return rc;
    if (!ko.token || !ko.token[0])
        return ksp_cli_usage(cli, "--token is required");
    if (!ko.label || !ko.label[0])
        return ksp_cli_usage(cli, "--label is required");
    if (ksp_has_control(ko.label))
        return ksp_cli_usage(cli, "--label must not contain control characters");
    if (!ko.rsa == !ko.ec)
        return ksp_cli_usage(cli, "give exactly one of --rsa BITS and --ec CURVE");
    if (ko.rsa && (!ksp_cli_parse_ulong(ko.rsa, 16384, &bits) || bits < 1024))
        return ksp_cli_usage(cli, "--rsa takes a key size in bits, e.g. 3072");
    if (ko.ec) {
        curve = ksp_keygen_curve(ko.ec);
        if (curve < 0)
            return ksp_cli_usage(cli, "--ec takes P-256, P-384 or P-521, not '%s'", ko.ec);
    }
    if (ko.id && !ksp_hex_parse(ko.id, id, sizeof(id), &id_len))
        return ksp_cli_usage(cli, "--id takes 1 to %d bytes in hex, e.g. 01a2", KSP_ID_MAX);

    rc = ksp_p11_open(cli);
    if (rc == KSP_EXIT_OK)
        rc = ksp_p11_find_token(cli, ko.token, &slot);
    if (rc == KSP_EXIT_OK)
        rc = ksp_p11_session(cli, slot.id, true, &s);
    if (rc != KSP_EXIT_OK)
        return rc;
    rc = ksp_p11_login(cli, &slot, s, true, &in);
    if (rc == KSP_EXIT_OK)
        rc = ksp_keygen_label_free(cli, s, ko.label);
    if (rc != KSP_EXIT_OK)
        goto out;

    struct ksp_keyspec ks = {.rsa = ko.rsa != NULL,
                             .bits = bits,
                             .curve = curve,
                             .label = ko.label,
                             .id = id_len ? id : NULL,
                             .id_len = id_len,
                             .require_hw = ko.require_hw};
    CK_OBJECT_HANDLE hpub = CK_INVALID_HANDLE, hpriv = CK_INVALID_HANDLE;
    rc = ksp_keygen_generate(cli, s, &ks, &hpub, &hpriv);
    if (rc != KSP_EXIT_OK)
        goto out;
    rc = read_pair(cli, s, hpriv, hpub, &priv, &pub);
    if (rc == KSP_EXIT_OK)
        report(cli, slot.label, &priv, &pub);
out:
    ksp_obj_free(&priv);
    ksp_obj_free(&pub);
    if (in && s != CK_INVALID_HANDLE)
        cli->f->C_Logout(s);
    cli->f->C_CloseSession(s);
    return rc;
}
