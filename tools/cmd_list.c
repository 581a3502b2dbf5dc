/*
 * `ksp11 list`: the objects of every token (or of one), with class, key type
 * and size, backend, fallback reason and a pkcs11: URI to paste into curl.
 * Logs in only when a PIN is given; never prompts.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

struct list_opts {
    const char *token;
};

enum { OPT_TOKEN = KSP_OPT_CMD };

static void help(FILE *f)
{
    fputs("usage: ksp11 list [--token LABEL] [--json] [--pin PIN | --pin-source FILE]\n"
          "\n"
          "List the objects of every token, or of the token named by LABEL (or its\n"
          "serial): class, key type and size, backend (TPM or software), why a key is\n"
          "in software, and a pkcs11: URI (RFC 7512) for it. Private keys are shown\n"
          "only when logged in: give --pin, --pin-source or $KSP11_PIN (PIN-less\n"
          "tokens need none). list never prompts.\n",
          f);
}

static int opt(struct ksp_cli *cli, void *ctx, int id, const char *arg)
{
    struct list_opts *o = ctx;
    if (id != OPT_TOKEN)
        return KSP_EXIT_USAGE;
    if (!arg[0])
        return ksp_cli_usage(cli, "--token needs a label");
    o->token = arg;
    return KSP_EXIT_OK;
}

static int class_rank(CK_OBJECT_CLASS c)
{
    switch (c) {
    case CKO_PRIVATE_KEY:
        return 0;
    case CKO_PUBLIC_KEY:
        return 1;
    case CKO_CERTIFICATE:
        return 2;
    default:
        return 3;
    }
}

/* Stable, readable order: by label, then id, then private/public/cert. */
static int cmp_obj(const void *pa, const void *pb)
{
    const struct ksp_obj *a = pa, *b = pb;
    int c = strcmp(a->label ? a->label : "", b->label ? b->label : "");
    if (c)
        return c;
    size_t n = a->id_len < b->id_len ? a->id_len : b->id_len;
    c = n ? memcmp(a->id, b->id, n) : 0;
    if (c)
        return c;
    if (a->id_len != b->id_len)
        return a->id_len < b->id_len ? -1 : 1;
    return class_rank(a->cls) - class_rank(b->cls);
}

static int list_token(struct ksp_cli *cli, const struct ksp_slot *slot, struct ksp_json *j)
{
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    CK_OBJECT_HANDLE *handles = NULL;
    struct ksp_obj *objs = NULL;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE tmpl[] = {{CKA_TOKEN, &yes, sizeof(yes)}};
    size_t n = 0, got = 0;
    bool in = false;
    CK_RV rv;

    int rc = ksp_p11_session(cli, slot->id, false, &s);
    if (rc != KSP_EXIT_OK)
        return rc;
    rc = ksp_p11_login(cli, slot, s, false, &in);
    if (rc != KSP_EXIT_OK)
        goto out;
    rv = ksp_obj_find(cli, s, tmpl, 1, &handles, &n);
    if (rv != CKR_OK) {
        rc = ksp_cli_fail("cannot search the token's objects", rv);
        goto out;
    }
    objs = calloc(n ? n : 1, sizeof(*objs));
    if (!objs) {
        rc = ksp_cli_err("out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        rv = ksp_obj_read(cli, s, handles[i], &objs[got]);
        /* Another process may have deleted it since C_FindObjects. */
        if (rv == CKR_OBJECT_HANDLE_INVALID)
            continue;
        if (rv != CKR_OK) {
            rc = ksp_cli_fail("cannot read an object's attributes", rv);
            goto out;
        }
        got++;
    }
    qsort(objs, got, sizeof(*objs), cmp_obj);

    if (j) {
        ksp_json_obj_begin(j, NULL);
        ksp_json_uint(j, "slot", slot->id);
        ksp_json_str(j, "label", slot->label);
        ksp_json_str(j, "serial", slot->serial);
        ksp_json_bool(j, "logged_in", in);
        ksp_json_arr_begin(j, "objects");
        for (size_t i = 0; i < got; i++)
            ksp_obj_json(j, slot->label, &objs[i]);
        ksp_json_arr_end(j);
        ksp_json_obj_end(j);
    } else {
        fputs("token \"", stdout);
        ksp_text_put(stdout, slot->label);
        fputs("\" (serial ", stdout);
        ksp_text_put(stdout, slot->serial);
        printf(", slot %lu): %zu object%s\n", (unsigned long)slot->id, got, got == 1 ? "" : "s");
        if (!in)
            puts("  (not logged in: private objects are not shown; give --pin, --pin-source "
                 "or $KSP11_PIN)");
        for (size_t i = 0; i < got; i++)
            ksp_obj_text(stdout, slot->label, &objs[i]);
    }
out:
    for (size_t i = 0; objs && i < got; i++)
        ksp_obj_free(&objs[i]);
    free(objs);
    free(handles);
    cli->f->C_CloseSession(s);
    return rc;
}

int ksp_cmd_list(struct ksp_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {
        KSP_CLI_COMMON_OPTIONS, {"token", required_argument, NULL, OPT_TOKEN}, {NULL, 0, NULL, 0}};
    struct list_opts lo = {0};
    struct ksp_slot *slots = NULL, one;
    struct ksp_json j;
    size_t n = 0;
    int rc = KSP_EXIT_OK;
    char *jbuf = NULL;
    size_t jlen = 0;
    FILE *jf = NULL;

    if (!ksp_cli_parse(cli, argc, argv, opts, opt, &lo, help, &rc))
        return rc;
    rc = ksp_p11_open(cli);
    if (rc != KSP_EXIT_OK)
        return rc;
    if (lo.token) {
        rc = ksp_p11_find_token(cli, lo.token, &one);
        if (rc != KSP_EXIT_OK)
            return rc;
        slots = malloc(sizeof(*slots));
        if (!slots)
            return ksp_cli_err("out of memory");
        slots[0] = one;
        n = 1;
    } else {
        rc = ksp_p11_slots(cli, &slots, &n);
        if (rc != KSP_EXIT_OK)
            return rc;
    }
    if (cli->json) {
        /* Buffered: a failure half-way must not leave half a document. */
        jf = open_memstream(&jbuf, &jlen);
        if (!jf) {
            free(slots);
            return ksp_cli_err("out of memory");
        }
        ksp_json_init(&j, jf);
        ksp_json_obj_begin(&j, NULL);
        ksp_json_arr_begin(&j, "tokens");
    }
    size_t shown = 0;
    for (size_t i = 0; i < n && rc == KSP_EXIT_OK; i++) {
        if (!(slots[i].info.flags & CKF_TOKEN_INITIALIZED))
            continue;
        if (!cli->json && shown > 0)
            putchar('\n');
        rc = list_token(cli, &slots[i], cli->json ? &j : NULL);
        shown++;
    }
    if (cli->json && rc == KSP_EXIT_OK) {
        ksp_json_arr_end(&j);
        ksp_json_obj_end(&j);
        ksp_json_finish(&j);
    } else if (!cli->json && shown == 0) {
        puts("no tokens (create one with 'ksp11 init --label NAME')");
    }
    if (jf) {
        fclose(jf);
        if (rc == KSP_EXIT_OK)
            fwrite(jbuf, 1, jlen, stdout);
        free(jbuf);
    }
    free(slots);
    return rc;
}
