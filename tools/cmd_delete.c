/*
 * `ksp11 delete`: destroy the token objects with a label and/or id (the key
 * pair and its certificate, typically) and report how many went. Logs in
 * first, so private keys are found too.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

struct delete_opts {
    const char *token;
    const char *label;
    const char *id;
};

enum { OPT_TOKEN = KSP_OPT_CMD, OPT_LABEL, OPT_ID };

static void help(FILE *f)
{
    fputs("usage: ksp11 delete --token TOKEN (--label LABEL | --id HEX)\n"
          "                    [--pin PIN | --pin-source FILE] [--json]\n"
          "\n"
          "Delete every token object on TOKEN (label or serial) whose CKA_LABEL is\n"
          "LABEL and/or whose CKA_ID is HEX: private key, public key, certificate.\n"
          "With both, an object must match both. Fails when nothing matches.\n",
          f);
}

static int opt(struct ksp_cli *cli, void *ctx, int id, const char *arg)
{
    struct delete_opts *o = ctx;
    switch (id) {
    case OPT_TOKEN:
        o->token = arg;
        break;
    case OPT_LABEL:
        o->label = arg;
        break;
    case OPT_ID:
        o->id = arg;
        break;
    default:
        return ksp_cli_usage(cli, "unknown option");
    }
    return KSP_EXIT_OK;
}

int ksp_cmd_delete(struct ksp_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {KSP_CLI_COMMON_OPTIONS,
                                         {"token", required_argument, NULL, OPT_TOKEN},
                                         {"label", required_argument, NULL, OPT_LABEL},
                                         {"id", required_argument, NULL, OPT_ID},
                                         {NULL, 0, NULL, 0}};
    struct delete_opts d = {0};
    struct ksp_slot slot;
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    CK_OBJECT_HANDLE *h = NULL;
    unsigned char id[KSP_ID_MAX];
    size_t id_len = 0, n = 0, deleted = 0;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE tmpl[3];
    CK_ULONG nt = 0;
    bool in = false;
    int rc = KSP_EXIT_OK;

    if (!ksp_cli_parse(cli, argc, argv, opts, opt, &d, help, &rc))
        return rc;
    if (!d.token || !d.token[0])
        return ksp_cli_usage(cli, "--token is required");
    if (!d.label && !d.id)
        return ksp_cli_usage(cli, "give --label or --id (or both)");
    if (d.label && !d.label[0])
        return ksp_cli_usage(cli, "--label must not be empty");
    if (d.id && !ksp_hex_parse(d.id, id, sizeof(id), &id_len))
        return ksp_cli_usage(cli, "--id takes 1 to %d bytes in hex, e.g. 01a2", KSP_ID_MAX);

    tmpl[nt++] = (CK_ATTRIBUTE){CKA_TOKEN, &yes, sizeof(yes)};
    if (d.label)
        tmpl[nt++] = (CK_ATTRIBUTE){CKA_LABEL, (void *)d.label, (CK_ULONG)strlen(d.label)};
    if (d.id)
        tmpl[nt++] = (CK_ATTRIBUTE){CKA_ID, id, (CK_ULONG)id_len};

    rc = ksp_p11_open(cli);
    if (rc == KSP_EXIT_OK)
        rc = ksp_p11_find_token(cli, d.token, &slot);
    if (rc == KSP_EXIT_OK)
        rc = ksp_p11_session(cli, slot.id, true, &s);
    if (rc != KSP_EXIT_OK)
        return rc;
    rc = ksp_p11_login(cli, &slot, s, true, &in);
    if (rc != KSP_EXIT_OK)
        goto out;
    CK_RV rv = ksp_obj_find(cli, s, tmpl, nt, &h, &n);
    if (rv != CKR_OK) {
        rc = ksp_cli_fail("cannot search the token's objects", rv);
        goto out;
    }
    if (n == 0) {
        ksp_cli_err("no object on token \"%s\" matches", slot.label);
        rc = KSP_EXIT_NOT_FOUND;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        rv = cli->f->C_DestroyObject(s, h[i]);
        /* Gone already (another process): nothing left to do for it. */
        if (rv == CKR_OBJECT_HANDLE_INVALID)
            continue;
        if (rv != CKR_OK) {
            rc = ksp_cli_fail("cannot delete an object", rv);
            fprintf(stderr, "ksp11: %zu of %zu matching objects were deleted\n", deleted, n);
            goto out;
        }
        deleted++;
    }
    if (cli->json) {
        struct ksp_json j;
        ksp_json_init(&j, stdout);
        ksp_json_obj_begin(&j, NULL);
        ksp_json_str(&j, "token", slot.label);
        ksp_json_uint(&j, "deleted", deleted);
        ksp_json_obj_end(&j);
        ksp_json_finish(&j);
    } else {
        printf("deleted %zu object%s from token \"", deleted, deleted == 1 ? "" : "s");
        ksp_text_put(stdout, slot.label);
        puts("\"");
    }
out:
    free(h);
    if (in)
        cli->f->C_Logout(s);
    cli->f->C_CloseSession(s);
    return rc;
}
