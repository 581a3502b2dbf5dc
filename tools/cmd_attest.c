/*
 * `ksp11 attest`: write the attestation bundle of a TPM key (the module's
 * C_KSP11_AttestKey, packaging/attestation.md) to a file, with the PKCS#11
 * public key of the key added as record 8 (DER SubjectPublicKeyInfo), for a
 * CA to check with `ksp11 verify-attestation`. Software keys have none.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/x509.h>

#include "cli.h"

struct attest_opts {
    const char *token;
    const char *key;
    const char *id;
    const char *nonce;
    const char *out;
};

enum { OPT_TOKEN = KSP_OPT_CMD, OPT_KEY, OPT_ID, OPT_NONCE, OPT_OUT };

static void help(FILE *f)
{
    fputs("usage: ksp11 attest --key LABEL|URI [--token TOKEN] [--id HEX] --out FILE\n"
          "                    [--nonce HEX] [--pin PIN | --pin-source FILE] [--json]\n"
          "\n"
          "Write an attestation bundle for a key generated in the TPM: the TPM's\n"
          "TPM2_CertifyCreation of the key, signed by an attestation key of the\n"
          "endorsement hierarchy, with the key, AK and EK public areas, the EK\n"
          "certificate when the TPM has one, and the key's PKCS#11 public key.\n"
          "  --nonce HEX   the CA's challenge (1 to 64 bytes), echoed in the signed data\n"
          "Check it with 'ksp11 verify-attestation'. Software keys have no attestation.\n",
          f);
}

static int opt(struct ksp_cli *cli, void *ctx, int id, const char *arg)
{
    struct attest_opts *o = ctx;
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
    case OPT_NONCE:
        o->nonce = arg;
        break;
    case OPT_OUT:
        o->out = arg;
        break;
    default:
        return ksp_cli_usage(cli, "unknown option");
    }
    return KSP_EXIT_OK;
}

/* Record 8 of the bundle: the PKCS#11 public key as SubjectPublicKeyInfo. */
static int write_bundle(const char *path, const unsigned char *b, size_t n, const struct ksp_key *k)
{
    unsigned char *spki = NULL;
    int len = i2d_PUBKEY(k->pkey, &spki);
    unsigned char h[6];
    FILE *f = NULL;
    int rc = KSP_EXIT_OK;

    if (len <= 0)
        return ksp_cli_ssl_err(KSP_EXIT_FAIL, "cannot encode the public key");
    h[0] = 0;
    h[1] = 8;
    h[2] = (unsigned char)(len >> 24);
    h[3] = (unsigned char)(len >> 16);
    h[4] = (unsigned char)(len >> 8);
    h[5] = (unsigned char)len;
    f = fopen(path, "wb");
    if (!f || fwrite(b, 1, n, f) != n || fwrite(h, 1, 6, f) != 6 ||
        fwrite(spki, 1, (size_t)len, f) != (size_t)len) {
        rc = ksp_cli_err("cannot write %s", path);
        rc = KSP_EXIT_INPUT;
    }
    if (f && fclose(f) != 0 && rc == KSP_EXIT_OK)
        rc = KSP_EXIT_INPUT;
    OPENSSL_free(spki);
    return rc;
}

int ksp_cmd_attest(struct ksp_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {KSP_CLI_COMMON_OPTIONS,
                                         {"token", required_argument, NULL, OPT_TOKEN},
                                         {"key", required_argument, NULL, OPT_KEY},
                                         {"id", required_argument, NULL, OPT_ID},
                                         {"nonce", required_argument, NULL, OPT_NONCE},
                                         {"out", required_argument, NULL, OPT_OUT},
                                         {NULL, 0, NULL, 0}};
    struct attest_opts a = {0};
    struct ksp_ref ref;
    struct ksp_key key;
    struct ksp_slot slot;
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    unsigned char nonce[64], *b = NULL;
    size_t nonce_len = 0;
    CK_ULONG blen = 0;
    bool in = false;
    int rc = KSP_EXIT_OK;

    memset(&ref, 0, sizeof(ref));
    memset(&key, 0, sizeof(key));
    if (!ksp_cli_parse(cli, argc, argv, opts, opt, &a, help, &rc))
        return rc;
    if (!a.key || !a.out)
        return ksp_cli_usage(cli, "--key and --out are required");
    if (a.nonce && !ksp_hex_parse(a.nonce, nonce, sizeof(nonce), &nonce_len))
        return ksp_cli_usage(cli, "--nonce takes 1 to 64 bytes in hex");
    rc = ksp_ref_parse(cli, "--key", a.key, a.id, &ref);
    if (rc != KSP_EXIT_OK)
        return rc;
    rc = ksp_p11_open_token(cli, a.token ? a.token : ref.token, false, &slot, &s, &in);
    if (rc == KSP_EXIT_OK)
        rc = ksp_key_find(cli, s, &ref, &key);
    if (rc != KSP_EXIT_OK)
        goto out;
    const CK_KSP11_FUNCTION_LIST *v = ksp_p11_vendor(cli);
    if (!v || v->version.minor < 1) {
        rc = ksp_cli_err("the module has no attestation (vendor interface 1.1 needed)");
        rc = KSP_EXIT_FAIL;
        goto out;
    }
    CK_RV rv = v->C_KSP11_AttestKey(s, key.priv, nonce, (CK_ULONG)nonce_len, NULL, &blen);
    if (rv == CKR_KEY_FUNCTION_NOT_PERMITTED) {
        ksp_cli_err("\"%s\" has no attestation: it is a software key, or a TPM key made before "
                    "ksp11 kept creation data",
                    key.label ? key.label : a.key);
        rc = KSP_EXIT_REFUSED;
        goto out;
    }
    if (rv == CKR_OK) {
        b = malloc(blen);
        if (!b)
            rv = CKR_HOST_MEMORY;
    }
    if (rv == CKR_OK)
        rv = v->C_KSP11_AttestKey(s, key.priv, nonce, (CK_ULONG)nonce_len, b, &blen);
    if (rv != CKR_OK) {
        rc = ksp_cli_fail("the TPM could not attest the key", rv);
        goto out;
    }
    rc = write_bundle(a.out, b, blen, &key);
    if (rc != KSP_EXIT_OK)
        goto out;
    if (cli->json) {
        struct ksp_json j;
        ksp_json_init(&j, stdout);
        ksp_json_obj_begin(&j, NULL);
        ksp_json_str(&j, "token", slot.label);
        ksp_json_str(&j, "bundle", a.out);
        ksp_json_obj_end(&j);
        ksp_json_finish(&j);
    } else {
        printf("attestation bundle of \"%s\" written to %s\n", key.label ? key.label : a.key,
               a.out);
    }
out:
    free(b);
    ksp_key_free(&key);
    ksp_ref_free(&ref);
    ksp_p11_close_session(cli, s, in);
    return rc;
}
