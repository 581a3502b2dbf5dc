/*
 * Write errors in the store, injected at every write-side call of an
 * operation in turn (fault_shim.so, LD_PRELOAD): for each operation that
 * writes (C_CreateObject, C_SetAttributeValue, C_DestroyObject,
 * C_GenerateKeyPair, C_SetPIN, a failed C_Login that counts, C_InitToken),
 * fail its 1st, 2nd, ... counted call until it runs through untouched, and
 * after each attempt check:
 *
 *   - the return code is the one ksp11 documents (store.h), following PKCS#11
 *     3.0 §5.1: a full disk (ENOSPC/EDQUOT) is CKR_DEVICE_MEMORY ("the token
 *     does not have sufficient memory"), an I/O error (EIO) CKR_DEVICE_ERROR,
 *     a read-only file system (EROFS) CKR_TOKEN_WRITE_PROTECTED; CKR_OK only
 *     when the failed call was one the store may ignore;
 *   - the state: what this process sees and what a fresh C_Initialize reads
 *     from disk is exactly the state before the call when it failed, exactly
 *     the new one when it succeeded (every object compared by class, label,
 *     and value digest; data labels encode a digest of their value; every
 *     private key still signs and the signature verifies); the PIN in force is
 *     the old one after a failed C_SetPIN.
 *
 * usage: fault_inject ENOSPC|EIO [sticky]   (KSP11_STORE set, shim preloaded)
 * Prints one "PASS: ..." / "FAIL: ..." line per operation; exit 1 on failure.
 */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fl.h"

static void (*arm)(long, int, int);
static void (*disarm)(void);
static long (*nfired)(void);

static int inj_errno;
static int inj_sticky;
static CK_SLOT_ID slot;
static CK_SESSION_HANDLE sess;
static const char *pin = FL_USER_PIN;
static const char *pin_alt = "98765";
static unsigned token_seq;
static int failures;

/* ---- snapshots: one sorted line per object ---- */

struct snap {
    char **line;
    size_t n;
};

static void snap_free(struct snap *s)
{
    for (size_t i = 0; i < s->n; i++)
        free(s->line[i]);
    free(s->line);
    s->line = NULL;
    s->n = 0;
}

static int cmp_line(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The objects visible in session s; false (with *why) when one is broken. */
static bool snapshot(CK_SESSION_HANDLE s, struct snap *out, char *why, size_t wl)
{
    CK_OBJECT_HANDLE *h = NULL;
    CK_ULONG n = 0;
    CK_RV rv = fl_find(s, NULL, 0, &h, &n);
    out->line = NULL;
    out->n = 0;
    if (rv != CKR_OK) {
        snprintf(why, wl, "C_FindObjects: %s", fl_rv(rv));
        return false;
    }
    out->line = calloc(n ? n : 1, sizeof(char *));
    for (CK_ULONG i = 0; i < n; i++) {
        CK_OBJECT_CLASS cls = fl_ulong(s, h[i], CKA_CLASS);
        uint8_t *label = NULL, *val = NULL;
        CK_ULONG ll = 0, vl = 0;
        char line[256], digest[17] = "-";
        if (fl_attr(s, h[i], CKA_LABEL, &label, &ll) != CKR_OK) {
            snprintf(why, wl, "object %lu: CKA_LABEL unreadable", (unsigned long)h[i]);
            goto bad;
        }
        if (cls == CKO_DATA) {
            const char *r = NULL;
            if (!fl_data_consistent(s, h[i], &r)) {
                snprintf(why, wl, "data object '%s': %s", label, r);
                free(label);
                goto bad;
            }
        } else if (cls == CKO_PUBLIC_KEY) {
            EVP_PKEY *pk = fl_pubkey(s, h[i]);
            if (!pk) {
                snprintf(why, wl, "public key '%s' unusable", label);
                free(label);
                goto bad;
            }
            EVP_PKEY_free(pk);
            if (fl_attr(s, h[i], CKA_EC_POINT, &val, &vl) == CKR_OK && vl >= 8)
                fl_hex(val + vl - 8, 8, digest);
            free(val);
        } else if (cls == CKO_PRIVATE_KEY) {
            uint8_t sig[512];
            CK_ULONG sl = sizeof(sig);
            CK_KEY_TYPE kt = fl_ulong(s, h[i], CKA_KEY_TYPE);
            rv = fl_sign(s, h[i], kt, (const uint8_t *)"x", 1, sig, &sl);
            if (rv != CKR_OK) {
                snprintf(why, wl, "private key '%s' does not sign: %s", label, fl_rv(rv));
                free(label);
                goto bad;
            }
        }
        snprintf(line, sizeof(line), "%lu|%s|%s", (unsigned long)cls, (char *)label, digest);
        free(label);
        out->line[out->n++] = strdup(line);
    }
    qsort(out->line, out->n, sizeof(char *), cmp_line);
    free(h);
    return true;
bad:
    free(h);
    snap_free(out);
    return false;
}

static bool snap_eq(const struct snap *a, const struct snap *b)
{
    if (a->n != b->n)
        return false;
    for (size_t i = 0; i < a->n; i++)
        if (strcmp(a->line[i], b->line[i]) != 0)
            return false;
    return true;
}

static void snap_print(const char *name, const struct snap *s)
{
    fprintf(stderr, "  %s (%zu objects):\n", name, s->n);
    for (size_t i = 0; i < s->n; i++)
        fprintf(stderr, "    %s\n", s->line[i]);
}

/* ---- fresh view ---- */

static void relogin(void)
{
    sess = fl_open(slot, true);
    CK_RV rv = fl_login_rv(sess, CKU_USER, pin);
    if (rv != CKR_OK)
        fl_fail("login with the PIN in force failed after reload: %s", fl_rv(rv));
}

static void reload(void)
{
    fl_reinit();
    slot = fl_find_slot("wt");
    relogin();
}

/* ---- operations under test ---- */

static CK_OBJECT_HANDLE first_data(void)
{
    CK_OBJECT_CLASS cls = CKO_DATA;
    CK_ATTRIBUTE t = {CKA_CLASS, &cls, sizeof(cls)};
    CK_OBJECT_HANDLE *h = NULL, r = CK_INVALID_HANDLE;
    CK_ULONG n = 0;
    FL_OK(fl_find(sess, &t, 1, &h, &n));
    if (n)
        r = h[0];
    free(h);
    return r;
}

static CK_RV op_create(void)
{
    uint8_t v[64];
    CK_OBJECT_HANDLE h;
    for (size_t i = 0; i < sizeof(v); i++)
        v[i] = (uint8_t)fl_rand();
    return fl_create_data(sess, v, 1 + fl_rand() % sizeof(v), fl_rand() % 1000, true, &h);
}

static CK_RV op_set_label(void)
{
    CK_OBJECT_HANDLE h = first_data();
    uint8_t *v = NULL;
    CK_ULONG vl = 0;
    char label[64];
    FL_OK(fl_attr(sess, h, CKA_VALUE, &v, &vl));
    fl_data_label(v, vl, 1000 + fl_rand() % 1000, label);
    free(v);
    CK_ATTRIBUTE t = {CKA_LABEL, label, strlen(label)};
    return FLP->C_SetAttributeValue(sess, h, &t, 1);
}

static CK_RV op_destroy(void)
{
    return FLP->C_DestroyObject(sess, first_data());
}

static CK_RV op_genkey(void)
{
    CK_OBJECT_HANDLE pub, priv;
    char label[32];
    snprintf(label, sizeof(label), "fe-%u", fl_rand() % 100000);
    return fl_gen_ec(sess, label, true, &pub, &priv);
}

static CK_RV op_set_pin(void)
{
    CK_RV rv = FLP->C_SetPIN(sess, (CK_UTF8CHAR_PTR)pin, strlen(pin), (CK_UTF8CHAR_PTR)pin_alt,
                             strlen(pin_alt));
    if (rv == CKR_OK) {
        const char *t = pin;
        pin = pin_alt;
        pin_alt = t;
    }
    return rv;
}

static CK_RV op_bad_login(void)
{
    CK_SESSION_HANDLE s2 = fl_open(slot, false);
    FL_OK(FLP->C_Logout(sess));
    CK_RV rv = fl_login_rv(s2, CKU_USER, "0000");
    (void)FLP->C_CloseSession(s2);
    return rv;
}

static CK_RV op_init_token(void)
{
    CK_SLOT_ID list[64];
    CK_ULONG n = 64;
    CK_UTF8CHAR lab[32];
    char name[32];
    FL_OK(FLP->C_GetSlotList(CK_TRUE, list, &n));
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;
        FL_OK(FLP->C_GetTokenInfo(list[i], &ti));
        if (ti.flags & CKF_TOKEN_INITIALIZED)
            continue;
        snprintf(name, sizeof(name), "nt-%u", ++token_seq);
        memset(lab, ' ', sizeof(lab));
        memcpy(lab, name, strlen(name));
        return FLP->C_InitToken(list[i], (CK_UTF8CHAR_PTR)FL_SO_PIN, strlen(FL_SO_PIN), lab);
    }
    fl_fail("no empty slot");
}

/* Tokens by label, as one string, for C_InitToken's before/after. */
static void token_list(char *out, size_t max)
{
    CK_SLOT_ID list[64];
    CK_ULONG n = 64;
    out[0] = 0;
    FL_OK(FLP->C_GetSlotList(CK_TRUE, list, &n));
    for (CK_ULONG i = 0; i < n; i++) {
        CK_TOKEN_INFO ti;
        FL_OK(FLP->C_GetTokenInfo(list[i], &ti));
        if (!(ti.flags & CKF_TOKEN_INITIALIZED))
            continue;
        size_t l = strlen(out);
        snprintf(out + l, max - l, "%.32s;", (char *)ti.label);
    }
}

static bool rv_allowed(CK_RV rv)
{
    switch (inj_errno) {
    case ENOSPC:
    case EDQUOT:
        return rv == CKR_DEVICE_MEMORY;
    case EROFS:
        return rv == CKR_TOKEN_WRITE_PROTECTED;
    default:
        return rv == CKR_DEVICE_ERROR;
    }
}

struct op {
    const char *name;
    CK_RV (*fn)(void);
    CK_RV ok_rv; /* the result without a fault */
};

static const struct op ops[] = {
    {"C_CreateObject", op_create, CKR_OK},
    {"C_SetAttributeValue", op_set_label, CKR_OK},
    {"C_DestroyObject", op_destroy, CKR_OK},
    {"C_GenerateKeyPair", op_genkey, CKR_OK},
    {"C_SetPIN", op_set_pin, CKR_OK},
    {"C_Login(wrong PIN)", op_bad_login, CKR_PIN_INCORRECT},
    {"C_InitToken", op_init_token, CKR_OK},
};

/* One operation with the fault at every call in turn. */
static void run_op(const struct op *op)
{
    char why[512] = "";
    bool ok = true;
    long n;
    for (n = 1; n < 200 && ok; n++) {
        struct snap before = {0}, mine = {0}, fresh = {0};
        char tok_before[2048], tok_after[2048];
        const char *pin_before = pin;
        /* Enough data objects for set/destroy. */
        while (first_data() == CK_INVALID_HANDLE)
            FL_OK(op_create());
        if (!snapshot(sess, &before, why, sizeof(why)))
            fl_fail("%s: state before attempt %ld is broken: %s", op->name, n, why);
        token_list(tok_before, sizeof(tok_before));

        arm(n, inj_errno, inj_sticky);
        CK_RV rv = op->fn();
        long fired = nfired();
        /* Still armed (sticky: the disk is still full): reading must work. */
        struct snap during = {0};
        if (inj_sticky && fired && op->fn != op_bad_login && op->fn != op_init_token &&
            !snapshot(sess, &during, why, sizeof(why))) {
            snprintf(why + strlen(why), sizeof(why) - strlen(why),
                     " (read while the disk is full)");
            ok = false;
        }
        snap_free(&during);
        disarm();

        if (ok && !fired) {
            /* The fault was never reached: the operation ran through. */
            if (rv != op->ok_rv) {
                snprintf(why, sizeof(why), "without a fault: %s", fl_rv(rv));
                ok = false;
            }
            snap_free(&before);
            if (op->fn == op_bad_login)
                relogin();
            break;
        }
        if (ok && !(rv_allowed(rv) || rv == op->ok_rv)) {
            snprintf(why, sizeof(why), "fault at call %ld: %s", n, fl_rv(rv));
            ok = false;
        }
        bool changed = rv == op->ok_rv && op->fn != op_bad_login;
        if (ok && op->fn != op_bad_login && op->fn != op_init_token &&
            !snapshot(sess, &mine, why, sizeof(why))) {
            ok = false;
        } else if (ok && op->fn != op_bad_login && op->fn != op_init_token) {
            if (!changed && !snap_eq(&before, &mine)) {
                snprintf(why, sizeof(why), "fault at call %ld (%s): this process's view changed", n,
                         fl_rv(rv));
                snap_print("before", &before);
                snap_print("after", &mine);
                ok = false;
            }
        }
        if (op->fn == op_bad_login || op->fn == op_init_token)
            mine = (struct snap){0};
        if (ok) {
            if (op->fn == op_set_pin && !changed && pin != pin_before)
                fl_fail("internal: PIN swapped on failure");
            reload();
            if (!snapshot(sess, &fresh, why, sizeof(why))) {
                snprintf(why + strlen(why), sizeof(why) - strlen(why),
                         " (fault at call %ld, %s; after reload)", n, fl_rv(rv));
                ok = false;
            } else {
                const struct snap *want = changed ? &mine : &before;
                if (op->fn == op_bad_login || op->fn == op_init_token)
                    want = &before;
                if (!snap_eq(want, &fresh)) {
                    snprintf(why, sizeof(why),
                             "fault at call %ld (%s): the store does not hold the %s state", n,
                             fl_rv(rv), changed ? "new" : "old");
                    snap_print("expected", want);
                    snap_print("on disk", &fresh);
                    ok = false;
                }
                snap_free(&fresh);
            }
            if (ok && op->fn == op_init_token) {
                token_list(tok_after, sizeof(tok_after));
                bool same = strcmp(tok_before, tok_after) == 0;
                if (rv == CKR_OK ? same : !same) {
                    snprintf(
                        why, sizeof(why),
                        "C_InitToken fault at call %ld (%s): tokens before '%.200s' after '%.200s'",
                        n, fl_rv(rv), tok_before, tok_after);
                    ok = false;
                }
            }
        }
        snap_free(&before);
        snap_free(&mine);
    }
    if (ok && n >= 200) {
        snprintf(why, sizeof(why), "still faulting after 200 calls");
        ok = false;
    }
    if (ok) {
        printf("PASS: %s %s%s (%ld fault points)\n", op->name, strerror(inj_errno),
               inj_sticky ? " sticky" : "", n - 1);
    } else {
        printf("FAIL: %s %s%s (%s)\n", op->name, strerror(inj_errno), inj_sticky ? " sticky" : "",
               why);
        failures++;
        reload(); /* go on from whatever is on disk */
    }
    fflush(stdout);
}

int main(int argc, char **argv)
{
    fl_set_prog(argv[0]);
    if (argc < 2)
        fl_die("usage: fault_inject ENOSPC|EIO|EROFS [sticky]");
    inj_errno = !strcmp(argv[1], "EIO") ? EIO : !strcmp(argv[1], "EROFS") ? EROFS : ENOSPC;
    inj_sticky = argc > 2 && !strcmp(argv[2], "sticky");
    arm = (void (*)(long, int, int))dlsym(RTLD_DEFAULT, "ksp_fault_arm");
    disarm = (void (*)(void))dlsym(RTLD_DEFAULT, "ksp_fault_disarm");
    nfired = (long (*)(void))dlsym(RTLD_DEFAULT, "ksp_fault_fired");
    void (*set_dir)(const char *) =
        (void (*)(const char *))dlsym(RTLD_DEFAULT, "ksp_fault_set_dir");
    if (!arm || !disarm || !nfired || !set_dir)
        fl_die("fault_shim.so is not preloaded");
    const char *store = getenv("KSP11_STORE");
    if (!store)
        fl_die("KSP11_STORE not set");
    set_dir(store);

    fl_initialize();
    slot = fl_make_token("wt");
    relogin();
    FL_OK(op_create());
    FL_OK(op_create());
    FL_OK(op_genkey());
    for (size_t i = 0; i < sizeof(ops) / sizeof(ops[0]); i++)
        run_op(&ops[i]);
    fl_finalize();
    return failures ? 1 : 0;
}
