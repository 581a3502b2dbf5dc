/*
 * `ksp11 init`: create a token in the empty slot (the one whose token lacks
 * CKF_TOKEN_INITIALIZED), then log in as SO and set the user PIN. With
 * --no-pin, C_InitPIN gets an empty PIN, which makes the token PIN-less
 * (behaviour.md): its wrapping key is then protected by file permissions only.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define LABEL_MAX 32 /* CK_TOKEN_INFO.label */

struct init_opts {
    const char *label;
    const char *so_pin;
    bool no_pin;
};

enum { OPT_LABEL = KSP_OPT_CMD, OPT_SO_PIN, OPT_NO_PIN };

static void help(FILE *f)
{
    fputs("usage: ksp11 init --label LABEL [--so-pin PIN] [--pin PIN | --pin-source FILE |\n"
          "                  --no-pin] [--json]\n"
          "\n"
          "Create a token named LABEL (at most 32 bytes) in the module's empty slot,\n"
          "set its SO PIN and its user PIN, and print its serial.\n"
          "  --so-pin PIN   the SO PIN (else $KSP11_SO_PIN, else a prompt)\n"
          "  --pin PIN      the user PIN (else --pin-source, $KSP11_PIN, else a prompt)\n"
          "  --no-pin       a PIN-less token, for daemons: no login needed, and the\n"
          "                 token's wrapping key is protected by the TPM when there is\n"
          "                 an acceptable one, else by file permissions only\n"
          "PINs are 4 to 255 bytes.\n",
          f);
}

static int opt(struct ksp_cli *cli, void *ctx, int id, const char *arg)
{
    struct init_opts *o = ctx;
    switch (id) {
    case OPT_LABEL:
        o->label = arg;
        return KSP_EXIT_OK;
    case OPT_SO_PIN:
        o->so_pin = arg;
        return KSP_EXIT_OK;
    case OPT_NO_PIN:
        o->no_pin = true;
        return KSP_EXIT_OK;
    default:
        return ksp_cli_usage(cli, "unknown option");
    }
}

static int check_label(struct ksp_cli *cli, const char *label)
{
    size_t n = strlen(label);
    if (n == 0)
        return ksp_cli_usage(cli, "--label must not be empty");
    if (n > LABEL_MAX)
        return ksp_cli_usage(cli, "--label is %zu bytes; a token label has at most %d", n,
                             LABEL_MAX);
    /* Trailing blanks are padding in CK_TOKEN_INFO: the label would not be found again. */
    if (label[n - 1] == ' ')
        return ksp_cli_usage(cli, "--label must not end with a space");
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)label[i];
        if (c < 0x20 || c == 0x7f)
            return ksp_cli_usage(cli, "--label must not contain control characters");
    }
    return KSP_EXIT_OK;
}

/* Both PINs before anything changes on disk. */
static bool get_pins(struct ksp_cli *cli, const struct init_opts *io, struct ksp_pin *so,
                     struct ksp_pin *user, int *rc)
{
    memset(so, 0, sizeof(*so));
    memset(user, 0, sizeof(*user));
    if (io->so_pin) {
        if (!io->so_pin[0] || strlen(io->so_pin) > KSP_PIN_MAX) {
            *rc = ksp_cli_usage(cli, "--so-pin must be 1 to %d bytes", KSP_PIN_MAX);
            return false;
        }
        so->len = strlen(io->so_pin);
        memcpy(so->buf, io->so_pin, so->len);
        so->set = true;
    } else {
        const char *v = getenv("KSP11_SO_PIN");
        if (v && v[0]) {
            if (strlen(v) > KSP_PIN_MAX) {
                *rc = ksp_cli_err("$KSP11_SO_PIN is longer than %d bytes", KSP_PIN_MAX);
                return false;
            }
            so->len = strlen(v);
            memcpy(so->buf, v, so->len);
            so->set = true;
        } else if (ksp_pin_have_terminal()) {
            if (!ksp_pin_prompt("New SO PIN: ", true, so, rc))
                return false;
        } else {
            *rc = ksp_cli_usage(cli, "no SO PIN: give --so-pin or $KSP11_SO_PIN");
            return false;
        }
    }
    if (io->no_pin) {
        user->set = true;
        return true;
    }
    if (!ksp_pin_from_options(cli, "KSP11_PIN", user, rc))
        return false;
    if (user->set)
        return true;
    if (ksp_pin_have_terminal())
        return ksp_pin_prompt("New user PIN: ", true, user, rc);
    *rc = ksp_cli_usage(cli, "no user PIN: give --pin, --pin-source, $KSP11_PIN or --no-pin");
    return false;
}

/* The slot to initialise; refuses a label another token already has. */
static int pick_slot(struct ksp_cli *cli, const char *label, CK_SLOT_ID *out)
{
    struct ksp_slot *slots = NULL;
    size_t n = 0;
    bool found = false;
    int rc = ksp_p11_slots(cli, &slots, &n);
    if (rc != KSP_EXIT_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (!(slots[i].info.flags & CKF_TOKEN_INITIALIZED)) {
            if (!found)
                *out = slots[i].id;
            found = true;
        } else if (strcmp(slots[i].label, label) == 0) {
            /* pkcs11: URIs name tokens by label; two alike would be ambiguous. */
            ksp_cli_err("a token labelled \"%s\" already exists (serial %s)", label,
                        slots[i].serial);
            free(slots);
            return KSP_EXIT_REFUSED;
        }
    }
    free(slots);
    if (!found)
        return ksp_cli_err("the module offers no empty slot to create a token in");
    return KSP_EXIT_OK;
}

/* SO login, C_InitPIN (empty for --no-pin), logout. */
static int set_user_pin(struct ksp_cli *cli, CK_SLOT_ID slot, const struct ksp_pin *so,
                        const struct ksp_pin *user)
{
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    int rc = ksp_p11_session(cli, slot, true, &s);
    if (rc != KSP_EXIT_OK)
        return rc;
    CK_RV rv = cli->f->C_Login(s, CKU_SO, (CK_UTF8CHAR_PTR)so->buf, (CK_ULONG)so->len);
    if (rv != CKR_OK) {
        rc = ksp_cli_fail("SO login to the new token failed", rv);
        goto out;
    }
    /* A non-NULL pointer with length 0: an empty PIN, not a protected
     * authentication path (PKCS#11 3.0 §5.6 C_InitPIN). */
    rv = cli->f->C_InitPIN(s, (CK_UTF8CHAR_PTR)user->buf, (CK_ULONG)user->len);
    if (rv != CKR_OK) {
        rc = ksp_cli_fail("cannot set the user PIN", rv);
        if (rv == CKR_PIN_LEN_RANGE || rv == CKR_PIN_INVALID)
            rc = ksp_cli_usage(cli, "the user PIN must be 4 to 255 bytes (or --no-pin)");
    }
    cli->f->C_Logout(s);
out:
    cli->f->C_CloseSession(s);
    return rc;
}

int ksp_cmd_init(struct ksp_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {KSP_CLI_COMMON_OPTIONS,
                                         {"label", required_argument, NULL, OPT_LABEL},
                                         {"so-pin", required_argument, NULL, OPT_SO_PIN},
                                         {"no-pin", no_argument, NULL, OPT_NO_PIN},
                                         {NULL, 0, NULL, 0}};
    struct init_opts io = {0};
    struct ksp_pin so, user;
    CK_UTF8CHAR label32[LABEL_MAX];
    CK_SLOT_ID slot = 0;
    CK_TOKEN_INFO info;
    char serial[17];
    int rc = KSP_EXIT_OK;

    memset(&so, 0, sizeof(so));
    memset(&user, 0, sizeof(user));
    if (!ksp_cli_parse(cli, argc, argv, opts, opt, &io, help, &rc))
        return rc;
    if (!io.label)
        return ksp_cli_usage(cli, "--label is required");
    rc = check_label(cli, io.label);
    if (rc != KSP_EXIT_OK)
        return rc;
    if (io.no_pin && (cli->pin_opt || cli->pin_source))
        return ksp_cli_usage(cli, "--no-pin and --pin/--pin-source are mutually exclusive");
    if (!get_pins(cli, &io, &so, &user, &rc))
        goto out;
    rc = ksp_p11_open(cli);
    if (rc == KSP_EXIT_OK)
        rc = pick_slot(cli, io.label, &slot);
    if (rc != KSP_EXIT_OK)
        goto out;

    memset(label32, ' ', sizeof(label32));
    memcpy(label32, io.label, strlen(io.label));
    CK_RV rv = cli->f->C_InitToken(slot, (CK_UTF8CHAR_PTR)so.buf, (CK_ULONG)so.len, label32);
    if (rv != CKR_OK) {
        rc = ksp_cli_fail("cannot create the token", rv);
        if (rv == CKR_PIN_LEN_RANGE || rv == CKR_PIN_INVALID)
            rc = ksp_cli_usage(cli, "the SO PIN must be 4 to 255 bytes");
        goto out;
    }
    rc = set_user_pin(cli, slot, &so, &user);
    rv = cli->f->C_GetTokenInfo(slot, &info);
    if (rv != CKR_OK) {
        if (rc == KSP_EXIT_OK)
            rc = ksp_cli_fail("cannot read the new token's information", rv);
        goto out;
    }
    ksp_p11_blank_trim(info.serialNumber, sizeof(info.serialNumber), serial);
    if (rc != KSP_EXIT_OK) {
        /* The token exists but has no usable user PIN: say which one it is. */
        fprintf(stderr,
                "ksp11: token \"%s\" (serial %s) exists but has no user PIN; set one as SO "
                "(pkcs11-tool --init-pin --login --login-type so)\n",
                io.label, serial);
        goto out;
    }
    bool pinless = ksp_p11_pinless(&info);
    if (cli->json) {
        struct ksp_json j;
        ksp_json_init(&j, stdout);
        ksp_json_obj_begin(&j, NULL);
        ksp_json_str(&j, "label", io.label);
        ksp_json_str(&j, "serial", serial);
        ksp_json_uint(&j, "slot", slot);
        ksp_json_bool(&j, "pin_less", pinless);
        ksp_json_obj_end(&j);
        ksp_json_finish(&j);
    } else {
        printf("token \"%s\" created in slot %lu\nserial: %s\n", io.label, (unsigned long)slot,
               serial);
        if (pinless)
            puts("PIN-less: no login needed; the wrapping key is protected by file "
                 "permissions only");
        else
            puts("PIN-protected: wrapping key under PIN-derived key (PBKDF2)");
    }
out:
    ksp_pin_wipe(&so);
    ksp_pin_wipe(&user);
    return rc;
}
