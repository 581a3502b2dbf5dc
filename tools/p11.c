/*
 * The ksp11 command: the module as any PKCS#11 client sees it. Finds and
 * dlopens the module, C_Initialize/C_Finalize, slots and tokens by label or
 * serial, sessions, and the user login (PIN sources in pin.c).
 *
 * Module path: --module, else $KSP11_MODULE, else ksp11-pkcs11.so next to
 * this program (a build tree), else the installed module in p11-kit's module
 * directory. A build-tree binary thus never talks to a stale installed module.
 */
#include <dlfcn.h>
#include <errno.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

/* p11-kit's module directory (pkg-config p11-kit-1 p11_module_path). The
 * Makefile may pass it; otherwise Debian's multiarch default is assumed. */
#ifndef KSP11_P11_MODULE_PATH
#if defined(__x86_64__)
#define KSP11_P11_MODULE_PATH "/usr/lib/x86_64-linux-gnu/pkcs11"
#elif defined(__aarch64__)
#define KSP11_P11_MODULE_PATH "/usr/lib/aarch64-linux-gnu/pkcs11"
#elif defined(__i386__)
#define KSP11_P11_MODULE_PATH "/usr/lib/i386-linux-gnu/pkcs11"
#elif defined(__arm__)
#define KSP11_P11_MODULE_PATH "/usr/lib/arm-linux-gnueabihf/pkcs11"
#else
#define KSP11_P11_MODULE_PATH "/usr/lib/pkcs11"
#endif
#endif

#define MODULE_NAME "ksp11-pkcs11.so"

static bool set_path(struct ksp_cli *cli, const char *p)
{
    size_t n = strlen(p);
    if (n >= sizeof(cli->module_path))
        return false;
    memcpy(cli->module_path, p, n + 1);
    return true;
}

/* The module next to /proc/self/exe, if there is one. */
static bool sibling_module(char *out, size_t n)
{
    char exe[PATH_MAX];
    ssize_t r = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (r <= 0)
        return false;
    exe[r] = '\0';
    int w = snprintf(out, n, "%s/%s", dirname(exe), MODULE_NAME);
    return w > 0 && (size_t)w < n && access(out, F_OK) == 0;
}

static int resolve_module(struct ksp_cli *cli)
{
    char p[PATH_MAX];
    const char *env = getenv("KSP11_MODULE");
    if (cli->module_opt && cli->module_opt[0]) {
        if (!set_path(cli, cli->module_opt))
            return ksp_cli_usage(cli, "--module path is too long");
        return KSP_EXIT_OK;
    }
    if (cli->module_opt)
        return ksp_cli_usage(cli, "--module needs a path");
    if (env && env[0]) {
        if (!set_path(cli, env))
            return ksp_cli_err("$KSP11_MODULE is too long");
        return KSP_EXIT_OK;
    }
    if (sibling_module(p, sizeof(p))) {
        set_path(cli, p);
        return KSP_EXIT_OK;
    }
    set_path(cli, KSP11_P11_MODULE_PATH "/" MODULE_NAME);
    if (access(cli->module_path, F_OK) == 0)
        return KSP_EXIT_OK;
    return ksp_cli_err("no ksp11 module found (not next to this program, not at %s); "
                       "use --module PATH or $KSP11_MODULE",
                       cli->module_path);
}

int ksp_p11_open(struct ksp_cli *cli)
{
    CK_C_GetFunctionList get = NULL;
    CK_FUNCTION_LIST_PTR f = NULL;
    int rc = resolve_module(cli);
    if (rc != KSP_EXIT_OK)
        return rc;
    /* RTLD_LOCAL: the module's symbols must not satisfy anyone else's. */
    cli->dl = dlopen(cli->module_path, RTLD_NOW | RTLD_LOCAL);
    if (!cli->dl)
        return ksp_cli_err("cannot load module %s: %s", cli->module_path, dlerror());
    *(void **)&get = dlsym(cli->dl, "C_GetFunctionList");
    if (!get)
        return ksp_cli_err("%s is not a PKCS#11 module (no C_GetFunctionList)", cli->module_path);
    CK_RV rv = get(&f);
    if (rv != CKR_OK || !f)
        return ksp_cli_fail("C_GetFunctionList", rv != CKR_OK ? rv : CKR_GENERAL_ERROR);
    cli->f = f;
    rv = f->C_Initialize(NULL);
    if (rv != CKR_OK)
        return ksp_cli_fail("cannot initialise the module", rv);
    cli->initialized = true;
    return KSP_EXIT_OK;
}

void ksp_p11_close(struct ksp_cli *cli)
{
    if (cli->initialized)
        cli->f->C_Finalize(NULL);
    cli->initialized = false;
    cli->f = NULL;
    if (cli->dl)
        dlclose(cli->dl);
    cli->dl = NULL;
}

/* Copy a blank-padded PKCS#11 string of n bytes without its trailing blanks. */
void ksp_p11_blank_trim(const CK_UTF8CHAR *in, size_t n, char *out)
{
    while (n > 0 && (in[n - 1] == ' ' || in[n - 1] == '\0'))
        n--;
    memcpy(out, in, n);
    out[n] = '\0';
}

/* PIN-less token (behaviour.md): user PIN set, yet no login required. */
bool ksp_p11_pinless(const CK_TOKEN_INFO *info)
{
    return (info->flags & CKF_USER_PIN_INITIALIZED) && !(info->flags & CKF_LOGIN_REQUIRED);
}

int ksp_p11_slots(struct ksp_cli *cli, struct ksp_slot **out, size_t *out_n)
{
    CK_SLOT_ID *ids = NULL;
    struct ksp_slot *slots = NULL;
    CK_ULONG n = 0;
    size_t got = 0;
    CK_RV rv;

    /* PKCS#11 3.0 §5.5: the count may change between the two calls. */
    for (int tries = 0; tries < 5; tries++) {
        rv = cli->f->C_GetSlotList(CK_TRUE, NULL, &n);
        if (rv != CKR_OK)
            return ksp_cli_fail("cannot list the slots", rv);
        free(ids);
        ids = calloc(n ? n : 1, sizeof(*ids));
        if (!ids)
            return ksp_cli_err("out of memory");
        rv = cli->f->C_GetSlotList(CK_TRUE, ids, &n);
        if (rv != CKR_BUFFER_TOO_SMALL)
            break;
    }
    if (rv != CKR_OK) {
        free(ids);
        return ksp_cli_fail("cannot list the slots", rv);
    }
    slots = calloc(n ? n : 1, sizeof(*slots));
    if (!slots) {
        free(ids);
        return ksp_cli_err("out of memory");
    }
    for (CK_ULONG i = 0; i < n; i++) {
        struct ksp_slot *s = &slots[got];
        rv = cli->f->C_GetTokenInfo(ids[i], &s->info);
        if (rv == CKR_TOKEN_NOT_PRESENT)
            continue;
        if (rv != CKR_OK) {
            free(ids);
            free(slots);
            return ksp_cli_fail("cannot read the token information", rv);
        }
        s->id = ids[i];
        ksp_p11_blank_trim(s->info.label, sizeof(s->info.label), s->label);
        ksp_p11_blank_trim(s->info.serialNumber, sizeof(s->info.serialNumber), s->serial);
        got++;
    }
    free(ids);
    *out = slots;
    *out_n = got;
    return KSP_EXIT_OK;
}

int ksp_p11_find_token(struct ksp_cli *cli, const char *name, struct ksp_slot *out)
{
    struct ksp_slot *slots = NULL;
    size_t n = 0, by_label = 0, by_serial = 0;
    struct ksp_slot label_hit = {0}, serial_hit = {0};
    int rc = ksp_p11_slots(cli, &slots, &n);
    if (rc != KSP_EXIT_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (!(slots[i].info.flags & CKF_TOKEN_INITIALIZED))
            continue;
        if (!name) {
            /* No name: the only token there is. */
            label_hit = slots[i];
            by_label++;
            continue;
        }
        if (strcmp(slots[i].label, name) == 0) {
            label_hit = slots[i];
            by_label++;
        }
        if (strcmp(slots[i].serial, name) == 0) {
            serial_hit = slots[i];
            by_serial++;
        }
    }
    free(slots);
    if (by_label == 1) {
        *out = label_hit;
        return KSP_EXIT_OK;
    }
    if (!name) {
        if (by_label == 0) {
            ksp_cli_err("there is no token yet; create one with 'ksp11 init'");
            return KSP_EXIT_NOT_FOUND;
        }
        return ksp_cli_usage(
            cli, "there are %zu tokens: name one with --token (see 'ksp11 status')", by_label);
    }
    if (by_label > 1)
        return ksp_cli_usage(cli,
                             "%zu tokens are labelled \"%s\"; name the token by its serial "
                             "(see 'ksp11 status')",
                             by_label, name);
    if (by_serial == 1) {
        *out = serial_hit;
        return KSP_EXIT_OK;
    }
    ksp_cli_err("no token labelled \"%s\" (see 'ksp11 status')", name);
    return KSP_EXIT_NOT_FOUND;
}

int ksp_p11_session(struct ksp_cli *cli, CK_SLOT_ID slot, bool rw, CK_SESSION_HANDLE *out)
{
    CK_FLAGS flags = CKF_SERIAL_SESSION | (rw ? CKF_RW_SESSION : 0);
    CK_RV rv = cli->f->C_OpenSession(slot, flags, NULL, NULL, out);
    if (rv != CKR_OK)
        return ksp_cli_fail("cannot open a session", rv);
    return KSP_EXIT_OK;
}

/* After a failed login, say what the PIN counter flags now mean. */
static void pin_counter_hint(struct ksp_cli *cli, CK_SLOT_ID slot)
{
    CK_TOKEN_INFO info;
    if (cli->f->C_GetTokenInfo(slot, &info) != CKR_OK)
        return;
    if (info.flags & CKF_USER_PIN_LOCKED)
        fputs("ksp11: the user PIN is locked; only the SO can unlock it (C_InitPIN)\n", stderr);
    else if (info.flags & CKF_USER_PIN_FINAL_TRY)
        fputs("ksp11: one more wrong PIN locks the token's user PIN\n", stderr);
}

int ksp_p11_login(struct ksp_cli *cli, const struct ksp_slot *slot, CK_SESSION_HANDLE s,
                  bool required, bool *logged_in)
{
    CK_TOKEN_INFO info;
    struct ksp_pin pin;
    char what[128];
    int rc = KSP_EXIT_OK;
    CK_RV rv = cli->f->C_GetTokenInfo(slot->id, &info);

    *logged_in = false;
    if (rv != CKR_OK)
        return ksp_cli_fail("cannot read the token information", rv);
    if (!(info.flags & CKF_USER_PIN_INITIALIZED)) {
        if (!required)
            return KSP_EXIT_OK;
        return ksp_cli_err("token \"%s\" has no user PIN yet (C_InitPIN was never called); "
                           "re-create it with 'ksp11 init'",
                           slot->label);
    }
    if (ksp_p11_pinless(&info)) {
        /* Sessions of a PIN-less token start in the user state. */
        *logged_in = true;
        return KSP_EXIT_OK;
    }
    if (!ksp_pin_from_options(cli, "KSP11_PIN", &pin, &rc))
        return rc;
    if (!pin.set) {
        if (!required)
            return KSP_EXIT_OK;
        if (!ksp_pin_have_terminal())
            return ksp_cli_usage(cli,
                                 "token \"%s\" needs its user PIN: give --pin, --pin-source "
                                 "or $KSP11_PIN",
                                 slot->label);
        char prompt[96];
        snprintf(prompt, sizeof(prompt), "User PIN for token \"%s\": ", slot->label);
        if (!ksp_pin_prompt(prompt, false, &pin, &rc))
            return rc;
    }
    rv = cli->f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)pin.buf, (CK_ULONG)pin.len);
    ksp_pin_wipe(&pin);
    if (rv == CKR_USER_ALREADY_LOGGED_IN)
        rv = CKR_OK;
    if (rv != CKR_OK) {
        snprintf(what, sizeof(what), "login to token \"%s\" failed", slot->label);
        ksp_cli_fail(what, rv);
        rc = ksp_cli_rv_exit(rv);
        if (rv == CKR_PIN_INCORRECT)
            pin_counter_hint(cli, slot->id);
        return rc;
    }
    *logged_in = true;
    return KSP_EXIT_OK;
}

/* Load the module, find the token (NULL: the only one), open a session and
 * log in (PIN from the options, else a prompt on a terminal). */
int ksp_p11_open_token(struct ksp_cli *cli, const char *name, bool rw, struct ksp_slot *slot,
                       CK_SESSION_HANDLE *s, bool *logged_in)
{
    CK_SESSION_HANDLE sess = CK_INVALID_HANDLE;
    bool in = false;
    int rc = ksp_p11_open(cli);
    if (rc == KSP_EXIT_OK)
        rc = ksp_p11_find_token(cli, name, slot);
    if (rc == KSP_EXIT_OK)
        rc = ksp_p11_session(cli, slot->id, rw, &sess);
    if (rc != KSP_EXIT_OK)
        return rc;
    rc = ksp_p11_login(cli, slot, sess, true, &in);
    if (rc != KSP_EXIT_OK) {
        cli->f->C_CloseSession(sess);
        return rc;
    }
    *s = sess;
    *logged_in = in;
    return KSP_EXIT_OK;
}

void ksp_p11_close_session(struct ksp_cli *cli, CK_SESSION_HANDLE s, bool logged_in)
{
    if (s == CK_INVALID_HANDLE || !cli->f)
        return;
    if (logged_in)
        cli->f->C_Logout(s);
    cli->f->C_CloseSession(s);
}

/* The module's vendor interface (ksp11.h), NULL when the module has none
 * (another PKCS#11 module, or an older ksp11). */
const CK_KSP11_FUNCTION_LIST *ksp_p11_vendor(struct ksp_cli *cli)
{
    CK_C_GetInterface get = NULL;
    CK_INTERFACE_PTR iface = NULL;
    if (!cli->dl)
        return NULL;
    *(void **)&get = dlsym(cli->dl, "C_GetInterface");
    if (!get || get((CK_UTF8CHAR_PTR)KSP11_INTERFACE_NAME, NULL, &iface, 0) != CKR_OK || !iface ||
        !iface->pFunctionList)
        return NULL;
    const CK_KSP11_FUNCTION_LIST *fl = iface->pFunctionList;
    if (fl->version.major != 1)
        return NULL;
    return fl;
}
