/*
 * `ksp11 status`: the module (C_GetInfo), the store root, the TPM backend and
 * every slot: token label, serial, flags, PIN counters, object count and how
 * the token's wrapping key is protected. The TPM verdict (present? identity,
 * accepted or why not) and each token's protection come from the module's
 * vendor interface "Vendor ksp11" (include/ksp11/ksp11.h): the module decides,
 * the tool only reports.
 */
#include <stdlib.h>
#include <string.h>

#include "cli.h"

#define PROT_PIN       "PIN-protected: wrapping key under PIN-derived key (PBKDF2)"
#define PROT_NOPIN     "PIN-less: wrapping key protected by file permissions only"
#define PROT_UNSET     "no user PIN yet: the SO must set one (C_InitPIN) before keys can be made"
#define PROT_TPM_PIN   "PIN-protected: wrapping key sealed in the TPM under the PINs"
#define PROT_TPM_NOPIN "PIN-less: wrapping key sealed in the TPM"

struct token_status {
    bool has_protection; /* from the vendor interface */
    CK_ULONG protection; /* KSP11_PROTECT_* */
    bool counted;
    size_t keys_tpm, keys_soft; /* key pairs, counted by their public halves */
    bool all_objects;           /* false: not logged in, private objects not counted */
    size_t objects;
};

static void help(FILE *f)
{
    fputs("usage: ksp11 status [--json] [--pin PIN | --pin-source FILE]\n"
          "\n"
          "Show the module, the store root, the TPM (present? its identity, and the\n"
          "module's verdict: accepted, or why not: absent, unreachable, no permission,\n"
          "TPM 1.2, denied by a deny-list rule) and every token: slot, label, serial,\n"
          "flags, PIN counters, number of objects and how the token's wrapping key is\n"
          "protected (sealed in the TPM, PIN-derived key, or file permissions).\n"
          "Private objects are counted only when a PIN is given (--pin, --pin-source\n"
          "or $KSP11_PIN) or the token is PIN-less; status never prompts.\n",
          f);
}

static const char *protection(const CK_TOKEN_INFO *info, const struct token_status *st)
{
    if (!(info->flags & CKF_USER_PIN_INITIALIZED))
        return PROT_UNSET;
    if (st->has_protection && st->protection == KSP11_PROTECT_TPM)
        return ksp_p11_pinless(info) ? PROT_TPM_NOPIN : PROT_TPM_PIN;
    return ksp_p11_pinless(info) ? PROT_NOPIN : PROT_PIN;
}

static const char *verdict_name(CK_ULONG state)
{
    switch (state) {
    case KSP11_TPM_ACCEPTED:
        return "accepted";
    case KSP11_TPM_ABSENT:
        return "absent";
    case KSP11_TPM_UNREACHABLE:
        return "unreachable";
    case KSP11_TPM_NO_PERMISSION:
        return "no-permission";
    case KSP11_TPM_12:
        return "tpm-1.2";
    case KSP11_TPM_DENIED:
        return "denied";
    default:
        return "unknown";
    }
}

/* Copy a NUL-terminated field of n bytes that the module filled (trust, but cap). */
static void field(const CK_UTF8CHAR *in, size_t n, char *out)
{
    size_t len = strnlen((const char *)in, n);
    memcpy(out, in, len);
    out[len] = '\0';
}

struct tpm_view {
    bool known; /* the module has the vendor interface */
    CK_KSP11_TPM_STATUS st;
    char reason[97], rule[49], identity[161], detail[129], manufacturer[9], vendor[21];
};

static int read_tpm(const CK_KSP11_FUNCTION_LIST *v, struct tpm_view *out)
{
    memset(out, 0, sizeof(*out));
    if (!v)
        return KSP_EXIT_OK;
    CK_RV rv = v->C_KSP11_GetTpmStatus(&out->st);
    if (rv != CKR_OK)
        return ksp_cli_fail("cannot read the TPM status", rv);
    out->known = true;
    field(out->st.reason, sizeof(out->st.reason), out->reason);
    field(out->st.rule, sizeof(out->st.rule), out->rule);
    field(out->st.identity, sizeof(out->st.identity), out->identity);
    field(out->st.detail, sizeof(out->st.detail), out->detail);
    field(out->st.manufacturer, sizeof(out->st.manufacturer), out->manufacturer);
    field(out->st.vendor, sizeof(out->st.vendor), out->vendor);
    return KSP_EXIT_OK;
}

static void tpm_json(struct ksp_json *j, const struct tpm_view *t)
{
    char buf[32];
    ksp_json_obj_begin(j, "tpm");
    ksp_json_bool(j, "available", t->known && t->st.state == KSP11_TPM_ACCEPTED);
    if (!t->known) {
        ksp_json_str(j, "verdict", "unknown");
        ksp_json_str(j, "message", "the module does not report its TPM verdict");
        ksp_json_obj_end(j);
        return;
    }
    ksp_json_str(j, "verdict", verdict_name(t->st.state));
    ksp_json_str(j, "reason", t->reason);
    ksp_json_str(j, "rule", t->rule);
    ksp_json_str(j, "detail", t->detail);
    if (t->identity[0]) {
        ksp_json_str(j, "identity", t->identity);
        ksp_json_str(j, "manufacturer", t->manufacturer);
        ksp_json_str(j, "vendor", t->vendor);
        snprintf(buf, sizeof(buf), "%lu.%lu", (unsigned long)(t->st.firmware1 >> 16),
                 (unsigned long)(t->st.firmware1 & 0xffff));
        ksp_json_str(j, "firmware", buf);
        snprintf(buf, sizeof(buf), "%u.%02u", t->st.spec_major, t->st.spec_minor);
        ksp_json_str(j, "spec_revision", buf);
        ksp_json_bool(j, "virtual", t->st.virtual_tpm);
    }
    ksp_json_arr_begin(j, "denied_for");
    if (t->st.deny_scope & KSP11_DENY_RSA_KEYGEN)
        ksp_json_str(j, NULL, "rsa-keygen");
    if (t->st.deny_scope & KSP11_DENY_ECC_SIGN)
        ksp_json_str(j, NULL, "ecc-sign");
    ksp_json_arr_end(j);
    ksp_json_obj_end(j);
}

static void tpm_text(FILE *f, const struct tpm_view *t)
{
    if (!t->known) {
        fputs("TPM:         unknown (the module does not report its TPM verdict)\n", f);
        return;
    }
    if (t->st.state == KSP11_TPM_ACCEPTED) {
        fputs("TPM:         accepted: new keys are created in the TPM", f);
        if (t->st.deny_scope & (KSP11_DENY_RSA_KEYGEN | KSP11_DENY_ECC_SIGN)) {
            fputs(" (except ", f);
            if (t->st.deny_scope & KSP11_DENY_RSA_KEYGEN)
                fputs("RSA keys", f);
            if ((t->st.deny_scope & KSP11_DENY_RSA_KEYGEN) &&
                (t->st.deny_scope & KSP11_DENY_ECC_SIGN))
                fputs(" and ", f);
            if (t->st.deny_scope & KSP11_DENY_ECC_SIGN)
                fputs("EC keys", f);
            fputs(": deny rule ", f);
            ksp_text_put(f, t->rule);
            fputs(")", f);
        }
        fputc('\n', f);
    } else {
        fprintf(f, "TPM:         %s: new keys are created in software (fallback reason ",
                t->st.state == KSP11_TPM_NO_PERMISSION ? "present but NOT USABLE" : "not used");
        ksp_text_put(f, t->reason);
        fputs(")\n", f);
    }
    if (t->identity[0]) {
        fputs("  identity:  manufacturer ", f);
        ksp_text_put(f, t->manufacturer);
        fputs(", vendor \"", f);
        ksp_text_put(f, t->vendor);
        fprintf(f, "\", firmware %lu.%lu, spec %u.%02u%s\n", (unsigned long)(t->st.firmware1 >> 16),
                (unsigned long)(t->st.firmware1 & 0xffff), t->st.spec_major, t->st.spec_minor,
                t->st.virtual_tpm ? ", virtual (a software TPM)" : "");
    }
    if (t->detail[0]) {
        fputs("  verdict:   ", f);
        ksp_text_put(f, t->detail);
        fputc('\n', f);
    }
    if (t->st.state == KSP11_TPM_NO_PERMISSION)
        fputs("  hint:      add the user to the group that owns /dev/tpmrm0 (Debian: tss)\n", f);
}

/* Count the token objects this process can see; logs in only without prompting. */
static int count_objects(struct ksp_cli *cli, const struct ksp_slot *slot, struct token_status *st)
{
    CK_SESSION_HANDLE s = CK_INVALID_HANDLE;
    CK_OBJECT_HANDLE *objs = NULL;
    CK_BBOOL yes = CK_TRUE;
    CK_ATTRIBUTE tmpl[] = {{CKA_TOKEN, &yes, sizeof(yes)}};
    size_t n = 0;
    bool in = false;
    int rc = ksp_p11_session(cli, slot->id, false, &s);
    if (rc != KSP_EXIT_OK)
        return rc;
    rc = ksp_p11_login(cli, slot, s, false, &in);
    if (rc == KSP_EXIT_OK) {
        CK_RV rv = ksp_obj_find(cli, s, tmpl, 1, &objs, &n);
        if (rv != CKR_OK)
            rc = ksp_cli_fail("cannot search the token's objects", rv);
    }
    for (size_t i = 0; rc == KSP_EXIT_OK && i < n; i++) {
        /* Public halves are visible without login and say where the pair lives. */
        CK_ULONG cls = 0, be = 0;
        bool has_cls = false, has_be = false;
        if (ksp_obj_ulong(cli, s, objs[i], CKA_CLASS, &has_cls, &cls) != CKR_OK || !has_cls ||
            cls != CKO_PUBLIC_KEY)
            continue;
        if (ksp_obj_ulong(cli, s, objs[i], CKA_KSP11_BACKEND, &has_be, &be) != CKR_OK || !has_be)
            continue;
        if (be == KSP11_BACKEND_TPM)
            st->keys_tpm++;
        else if (be == KSP11_BACKEND_SOFT)
            st->keys_soft++;
    }
    if (rc == KSP_EXIT_OK) {
        st->counted = true;
        st->all_objects = in;
        st->objects = n;
    }
    free(objs);
    cli->f->C_CloseSession(s);
    return rc;
}

static void pin_json(struct ksp_json *j, const char *key, CK_FLAGS fl, CK_FLAGS low, CK_FLAGS final,
                     CK_FLAGS locked)
{
    ksp_json_obj_begin(j, key);
    ksp_json_bool(j, "count_low", fl & low);
    ksp_json_bool(j, "final_try", fl & final);
    ksp_json_bool(j, "locked", fl & locked);
    ksp_json_obj_end(j);
}

static void slot_json(struct ksp_json *j, const struct ksp_slot *s, const struct token_status *st)
{
    static const struct {
        CK_FLAGS flag;
        const char *name;
    } names[] = {
        {CKF_TOKEN_INITIALIZED, "token-initialized"},
        {CKF_LOGIN_REQUIRED, "login-required"},
        {CKF_USER_PIN_INITIALIZED, "user-pin-initialized"},
        {CKF_RNG, "rng"},
        {CKF_WRITE_PROTECTED, "write-protected"},
        {CKF_USER_PIN_COUNT_LOW, "user-pin-count-low"},
        {CKF_USER_PIN_FINAL_TRY, "user-pin-final-try"},
        {CKF_USER_PIN_LOCKED, "user-pin-locked"},
        {CKF_SO_PIN_COUNT_LOW, "so-pin-count-low"},
        {CKF_SO_PIN_FINAL_TRY, "so-pin-final-try"},
        {CKF_SO_PIN_LOCKED, "so-pin-locked"},
    };
    CK_FLAGS fl = s->info.flags;
    bool init = fl & CKF_TOKEN_INITIALIZED;

    ksp_json_obj_begin(j, NULL);
    ksp_json_uint(j, "slot", s->id);
    ksp_json_bool(j, "initialized", init);
    if (init) {
        ksp_json_str(j, "label", s->label);
        ksp_json_str(j, "serial", s->serial);
    }
    ksp_json_arr_begin(j, "flags");
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (fl & names[i].flag)
            ksp_json_str(j, NULL, names[i].name);
    }
    ksp_json_arr_end(j);
    if (init) {
        ksp_json_bool(j, "login_required", fl & CKF_LOGIN_REQUIRED);
        ksp_json_bool(j, "pin_less", ksp_p11_pinless(&s->info));
        pin_json(j, "user_pin", fl, CKF_USER_PIN_COUNT_LOW, CKF_USER_PIN_FINAL_TRY,
                 CKF_USER_PIN_LOCKED);
        pin_json(j, "so_pin", fl, CKF_SO_PIN_COUNT_LOW, CKF_SO_PIN_FINAL_TRY, CKF_SO_PIN_LOCKED);
        if (st->counted) {
            ksp_json_uint(j, "key_pairs_tpm", st->keys_tpm);
            ksp_json_uint(j, "key_pairs_software", st->keys_soft);
            ksp_json_uint(j, "objects", st->objects);
            ksp_json_str(j, "objects_counted", st->all_objects ? "all" : "public");
        }
        ksp_json_str(j, "protection", protection(&s->info, st));
        if (st->has_protection)
            ksp_json_bool(j, "tpm_protected", st->protection == KSP11_PROTECT_TPM);
    }
    ksp_json_obj_end(j);
}

static void pin_text(FILE *f, const char *who, CK_FLAGS fl, CK_FLAGS low, CK_FLAGS final,
                     CK_FLAGS locked)
{
    if (fl & locked)
        fprintf(f, "%s PIN LOCKED", who);
    else if (fl & final)
        fprintf(f, "%s PIN: one attempt left", who);
    else if (fl & low)
        fprintf(f, "%s PIN: recent wrong attempts", who);
    else
        fprintf(f, "%s PIN: no failed attempts", who);
}

static void slot_text(FILE *f, const struct ksp_slot *s, const struct token_status *st)
{
    CK_FLAGS fl = s->info.flags;
    if (!(fl & CKF_TOKEN_INITIALIZED)) {
        fprintf(f, "\nslot %lu: empty (create a token here with 'ksp11 init --label NAME')\n",
                (unsigned long)s->id);
        return;
    }
    fprintf(f, "\nslot %lu: token \"", (unsigned long)s->id);
    ksp_text_put(f, s->label);
    fputs("\"\n  serial:      ", f);
    ksp_text_put(f, s->serial);
    fputs("\n  flags:       token initialized", f);
    if (fl & CKF_LOGIN_REQUIRED)
        fputs(", login required", f);
    if (fl & CKF_USER_PIN_INITIALIZED)
        fputs(", user PIN initialized", f);
    if (ksp_p11_pinless(&s->info))
        fputs(", PIN-less", f);
    if (fl & CKF_RNG)
        fputs(", RNG", f);
    if (fl & CKF_WRITE_PROTECTED)
        fputs(", write protected", f);
    fputs("\n  PIN state:   ", f);
    pin_text(f, "user", fl, CKF_USER_PIN_COUNT_LOW, CKF_USER_PIN_FINAL_TRY, CKF_USER_PIN_LOCKED);
    fputs("; ", f);
    pin_text(f, "SO", fl, CKF_SO_PIN_COUNT_LOW, CKF_SO_PIN_FINAL_TRY, CKF_SO_PIN_LOCKED);
    fputc('\n', f);
    if (st->counted) {
        if (st->all_objects)
            fprintf(f, "  objects:     %zu\n", st->objects);
        else
            fprintf(f, "  objects:     %zu public (give a PIN to count private objects too)\n",
                    st->objects);
        fprintf(f, "  key pairs:   %zu in the TPM, %zu in software\n", st->keys_tpm, st->keys_soft);
    }
    fprintf(f, "  protection:  %s\n", protection(&s->info, st));
}

static void padded(FILE *f, const CK_UTF8CHAR *p, size_t n)
{
    char buf[65];
    ksp_p11_blank_trim(p, n < 64 ? n : 64, buf);
    ksp_text_put(f, buf);
}

int ksp_cmd_status(struct ksp_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {KSP_CLI_COMMON_OPTIONS, {NULL, 0, NULL, 0}};
    struct ksp_slot *slots = NULL;
    struct token_status *st = NULL;
    size_t n = 0;
    CK_INFO info;
    char store[PATH_MAX], man[33], desc[33];
    const char *origin = NULL;
    int rc = KSP_EXIT_OK;

    if (!ksp_cli_parse(cli, argc, argv, opts, NULL, NULL, help, &rc))
        return rc;
    rc = ksp_p11_open(cli);
    if (rc != KSP_EXIT_OK)
        return rc;
    CK_RV rv = cli->f->C_GetInfo(&info);
    if (rv != CKR_OK)
        return ksp_cli_fail("cannot read the library information", rv);
    bool have_store = ksp_conf_store_root(store, sizeof(store), &origin);
    rc = ksp_p11_slots(cli, &slots, &n);
    if (rc != KSP_EXIT_OK)
        return rc;
    st = calloc(n ? n : 1, sizeof(*st));
    if (!st) {
        free(slots);
        return ksp_cli_err("out of memory");
    }
    const CK_KSP11_FUNCTION_LIST *vendor = ksp_p11_vendor(cli);
    struct tpm_view tpm;
    for (size_t i = 0; i < n && rc == KSP_EXIT_OK; i++) {
        if (slots[i].info.flags & CKF_TOKEN_INITIALIZED)
            rc = count_objects(cli, &slots[i], &st[i]);
        if (rc == KSP_EXIT_OK && vendor &&
            vendor->C_KSP11_GetTokenProtection(slots[i].id, &st[i].protection) == CKR_OK)
            st[i].has_protection = true;
    }
    if (rc == KSP_EXIT_OK)
        rc = read_tpm(vendor, &tpm);
    if (rc != KSP_EXIT_OK)
        goto out;

    ksp_p11_blank_trim(info.manufacturerID, sizeof(info.manufacturerID), man);
    ksp_p11_blank_trim(info.libraryDescription, sizeof(info.libraryDescription), desc);
    if (cli->json) {
        struct ksp_json j;
        char ver[32];
        ksp_json_init(&j, stdout);
        ksp_json_obj_begin(&j, NULL);
        ksp_json_str(&j, "module", cli->module_path);
        ksp_json_obj_begin(&j, "library");
        ksp_json_str(&j, "manufacturer", man);
        ksp_json_str(&j, "description", desc);
        snprintf(ver, sizeof(ver), "%u.%u", info.cryptokiVersion.major, info.cryptokiVersion.minor);
        ksp_json_str(&j, "cryptoki_version", ver);
        snprintf(ver, sizeof(ver), "%u.%u", info.libraryVersion.major, info.libraryVersion.minor);
        ksp_json_str(&j, "library_version", ver);
        ksp_json_obj_end(&j);
        if (have_store)
            ksp_json_str(&j, "store_root", store);
        else
            ksp_json_null(&j, "store_root");
        ksp_json_str(&j, "store_root_from", origin);
        tpm_json(&j, &tpm);
        ksp_json_arr_begin(&j, "slots");
        for (size_t i = 0; i < n; i++)
            slot_json(&j, &slots[i], &st[i]);
        ksp_json_arr_end(&j);
        ksp_json_obj_end(&j);
        ksp_json_finish(&j);
    } else {
        FILE *f = stdout;
        fputs("library:     ", f);
        padded(f, info.libraryDescription, sizeof(info.libraryDescription));
        fprintf(f, " %u.%u (", info.libraryVersion.major, info.libraryVersion.minor);
        padded(f, info.manufacturerID, sizeof(info.manufacturerID));
        fprintf(f, ", Cryptoki %u.%u)\n", info.cryptokiVersion.major, info.cryptokiVersion.minor);
        fputs("module:      ", f);
        ksp_text_put(f, cli->module_path);
        fputs("\nstore root:  ", f);
        if (have_store) {
            ksp_text_put(f, store);
            fprintf(f, " (from %s)\n", origin);
        } else {
            fputs("unknown (set KSP11_STORE or HOME)\n", f);
        }
        tpm_text(f, &tpm);
        for (size_t i = 0; i < n; i++)
            slot_text(f, &slots[i], &st[i]);
    }
out:
    free(st);
    free(slots);
    return rc;
}
