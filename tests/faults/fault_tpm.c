/*
 * The TPM vanishes under load (issue 6, "Faults"): swtpm is killed with
 * SIGKILL while threads of this process sign and generate TPM keys in loops,
 * then started again on the same state directory, several cycles:
 *
 *   cycle % 3 == 0   a signing loop
 *   cycle % 3 == 1   a key generation loop
 *   cycle % 3 == 2   two signing threads and a key generation thread at once
 *
 * Checked each cycle: every call that fails returns CKR_DEVICE_ERROR or
 * CKR_DEVICE_REMOVED (also the calls made while the TPM stays dead), no key
 * generation falls back to software behind the caller's back, the objects on
 * the token stay consistent (every generated pair is complete, no half-written
 * object, the count matches the successful generations), and after the
 * restart the same process, in the same session where it can, signs again
 * (a new login allowed after 3 attempts) and generates again; every
 * signature is verified by OpenSSL.
 *
 * usage: fault_tpm CYCLES  with KSP11_TCTI (swtpm), KSP11_FAULT_SWTPM_DIR (its
 * state dir, with swtpm.pid) and KSP11_FAULT_RESTART (a shell command that
 * starts it again). Exit 0 when everything held.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fl.h"

#define CKA_BACKEND 0xCB530001UL /* CKA_KSP11_BACKEND */

static CK_SLOT_ID slot;
static CK_SESSION_HANDLE main_s;
static atomic_int progress; /* successful operations this cycle */
static atomic_bool killed;
static atomic_bool stop;
static atomic_int keygens; /* complete TPM key pairs made so far */
static int cycle;

struct loop {
    pthread_t th;
    bool keygen;
    CK_SESSION_HANDLE s;
    CK_OBJECT_HANDLE key;
    EVP_PKEY *pub;
    long ok;
    CK_RV first; /* first failure */
    char err[256];
};

static bool device_gone(CK_RV rv)
{
    return rv == CKR_DEVICE_ERROR || rv == CKR_DEVICE_REMOVED;
}

static CK_OBJECT_HANDLE find1(CK_SESSION_HANDLE s, CK_OBJECT_CLASS cls, const char *label)
{
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof(cls)}, {CKA_LABEL, (void *)label, strlen(label)}};
    CK_OBJECT_HANDLE *h = NULL, r = CK_INVALID_HANDLE;
    CK_ULONG n = 0;
    if (fl_find(s, t, 2, &h, &n) == CKR_OK && n == 1)
        r = h[0];
    free(h);
    return r;
}

static CK_RV sign_verify(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE key, EVP_PKEY *pub)
{
    uint8_t sig[128], msg[32];
    CK_ULONG sl = sizeof(sig);
    for (size_t i = 0; i < sizeof(msg); i++)
        msg[i] = (uint8_t)fl_rand();
    CK_RV rv = fl_sign(s, key, CKK_EC, msg, sizeof(msg), sig, &sl);
    if (rv == CKR_OK && !fl_verify(pub, msg, sizeof(msg), sig, sl))
        rv = CKR_SIGNATURE_INVALID;
    return rv;
}

static CK_RV keygen(CK_SESSION_HANDLE s, const char *label, char *err, size_t el)
{
    CK_OBJECT_HANDLE pub, priv;
    CK_ULONG be = 0;
    CK_ATTRIBUTE a = {CKA_BACKEND, &be, sizeof(be)};
    CK_RV rv = fl_gen_ec(s, label, true, &pub, &priv);
    if (rv != CKR_OK)
        return rv;
    rv = FLP->C_GetAttributeValue(s, priv, &a, 1);
    if (rv == CKR_OK && be != 1) {
        snprintf(err, el, "key %s was generated in software (backend %lu)%s", label,
                 (unsigned long)be, atomic_load(&killed) ? " while the TPM was gone" : "");
        return CKR_GENERAL_ERROR;
    }
    atomic_fetch_add(&keygens, 1);
    return rv;
}

static void *run_loop(void *arg)
{
    struct loop *l = arg;
    int after = 0;
    for (unsigned n = 0; !atomic_load(&stop); n++) {
        CK_RV rv;
        if (l->keygen) {
            char label[32];
            snprintf(label, sizeof(label), "kg-%d-%u-%lx", cycle, n, (unsigned long)l->th % 997);
            rv = keygen(l->s, label, l->err, sizeof(l->err));
            if (l->err[0])
                return NULL;
        } else {
            rv = sign_verify(l->s, l->key, l->pub);
        }
        if (rv == CKR_OK) {
            if (after) {
                snprintf(l->err, sizeof(l->err), "succeeded with the TPM gone");
                return NULL;
            }
            l->ok++;
            atomic_fetch_add(&progress, 1);
            continue;
        }
        if (!device_gone(rv) || !atomic_load(&killed)) {
            snprintf(l->err, sizeof(l->err), "%s %s with the TPM %s",
                     l->keygen ? "C_GenerateKeyPair" : "C_Sign", fl_rv(rv),
                     atomic_load(&killed) ? "gone" : "still there");
            return NULL;
        }
        if (!l->first)
            l->first = rv;
        /* A few more calls with the TPM dead: the same clean codes. */
        if (++after >= 3)
            return NULL;
    }
    return NULL;
}

static long swtpm_pid(void)
{
    char path[4096];
    long pid = 0;
    snprintf(path, sizeof(path), "%s/swtpm.pid", getenv("KSP11_FAULT_SWTPM_DIR"));
    FILE *f = fopen(path, "r");
    if (!f || fscanf(f, "%ld", &pid) != 1)
        fl_die("no pid in %s", path);
    fclose(f);
    return pid;
}

/* Dead or a zombie (a container's init may not reap the daemon). */
static bool gone(long pid)
{
    char path[64], buf[512];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return true;
    bool z = false;
    if (fgets(buf, sizeof(buf), f)) {
        const char *p = strrchr(buf, ')');
        z = p && p[1] == ' ' && p[2] == 'Z';
    }
    fclose(f);
    return z;
}

static void *killer(void *arg)
{
    int want = *(int *)arg;
    while (atomic_load(&progress) < want && !atomic_load(&stop))
        fl_sleep_us(1000);
    if (atomic_load(&stop))
        return NULL;
    fl_sleep_us(fl_rand() % 30000);
    atomic_store(&killed, true);
    kill((pid_t)swtpm_pid(), SIGKILL);
    return NULL;
}

static void restart(void)
{
    long pid = swtpm_pid();
    char path[4096];
    for (int i = 0; i < 500 && !gone(pid); i++)
        fl_sleep_us(10000);
    if (!gone(pid))
        fl_fail("swtpm %ld did not die", pid);
    snprintf(path, sizeof(path), "%s/swtpm.sock", getenv("KSP11_FAULT_SWTPM_DIR"));
    unlink(path);
    snprintf(path, sizeof(path), "%s/swtpm.pid", getenv("KSP11_FAULT_SWTPM_DIR"));
    unlink(path);
    if (system(getenv("KSP11_FAULT_RESTART")) != 0)
        fl_fail("restarting swtpm failed");
}

/* Every pair complete, every key usable, one pair per successful keygen. */
static void check_objects(bool tpm_up)
{
    CK_OBJECT_HANDLE *h = NULL;
    CK_ULONG n = 0;
    int pubs = 0, privs = 0;
    FL_OK(fl_find(main_s, NULL, 0, &h, &n));
    for (CK_ULONG i = 0; i < n; i++) {
        CK_OBJECT_CLASS cls = fl_ulong(main_s, h[i], CKA_CLASS);
        uint8_t *label = NULL;
        CK_ULONG ll = 0;
        FL_OK(fl_attr(main_s, h[i], CKA_LABEL, &label, &ll));
        if (cls == CKO_PUBLIC_KEY) {
            EVP_PKEY *pk = fl_pubkey(main_s, h[i]);
            if (!pk)
                fl_fail("public key %s does not parse", label);
            CK_OBJECT_HANDLE priv = find1(main_s, CKO_PRIVATE_KEY, (char *)label);
            if (priv == CK_INVALID_HANDLE)
                fl_fail("key pair %s has no private key", label);
            CK_RV rv = tpm_up ? sign_verify(main_s, priv, pk) : CKR_OK;
            if (rv != CKR_OK)
                fl_fail("key %s does not sign after the restart: %s", label, fl_rv(rv));
            EVP_PKEY_free(pk);
            pubs++;
        } else if (cls == CKO_PRIVATE_KEY) {
            if (find1(main_s, CKO_PUBLIC_KEY, (char *)label) == CK_INVALID_HANDLE)
                fl_fail("key pair %s has no public key", label);
            privs++;
        }
        free(label);
    }
    free(h);
    /* "base" is the pair made in setup. */
    if (pubs != privs || pubs != atomic_load(&keygens))
        fl_fail("%d public and %d private keys for %d generated pairs", pubs, privs,
                atomic_load(&keygens));
}

int main(int argc, char **argv)
{
    fl_set_prog(argv[0]);
    if (argc < 2 || !getenv("KSP11_FAULT_SWTPM_DIR") || !getenv("KSP11_FAULT_RESTART"))
        fl_die("usage: fault_tpm CYCLES (KSP11_FAULT_SWTPM_DIR, KSP11_FAULT_RESTART set)");
    int cycles = atoi(argv[1]);
    char err[256] = "";
    fl_initialize();
    slot = fl_make_token("tk");
    main_s = fl_open_user(slot, true);
    FL_OK(keygen(main_s, "base", err, sizeof(err)));
    if (err[0])
        fl_fail("%s", err);
    CK_OBJECT_HANDLE base = find1(main_s, CKO_PRIVATE_KEY, "base");
    EVP_PKEY *base_pub = fl_pubkey(main_s, find1(main_s, CKO_PUBLIC_KEY, "base"));

    for (cycle = 0; cycle < cycles; cycle++) {
        struct loop loops[3];
        int nl = 0, want;
        const char *kind = cycle % 3 == 0 ? "sign" : cycle % 3 == 1 ? "keygen" : "sign+keygen";
        pthread_t kt;
        memset(loops, 0, sizeof(loops));
        atomic_store(&progress, 0);
        atomic_store(&killed, false);
        atomic_store(&stop, false);
        if (cycle % 3 != 1) {
            for (int i = 0; i < (cycle % 3 == 2 ? 2 : 1); i++) {
                loops[nl].s = i == 0 ? main_s : fl_open(slot, false);
                loops[nl].key = base;
                loops[nl].pub = base_pub;
                nl++;
            }
        }
        if (cycle % 3 != 0) {
            loops[nl].keygen = true;
            loops[nl].s = fl_open(slot, true);
            nl++;
        }
        want = cycle % 3 == 1 ? 1 + (int)(fl_rand() % 3) : 5 + (int)(fl_rand() % 20);
        for (int i = 0; i < nl; i++)
            if (pthread_create(&loops[i].th, NULL, run_loop, &loops[i]) != 0)
                fl_die("pthread_create");
        if (pthread_create(&kt, NULL, killer, &want) != 0)
            fl_die("pthread_create");
        for (int i = 0; i < nl; i++)
            pthread_join(loops[i].th, NULL);
        atomic_store(&stop, true);
        pthread_join(kt, NULL);
        for (int i = 0; i < nl; i++) {
            if (loops[i].err[0])
                fl_fail("cycle %d (%s): %s", cycle, kind, loops[i].err);
            if (!loops[i].first)
                fl_fail("cycle %d (%s): a loop ended without a failure", cycle, kind);
        }
        if (!atomic_load(&killed))
            fl_fail("cycle %d: swtpm was not killed", cycle);
        /* With the TPM gone: nothing crashes, the token still lists its objects. */
        CK_TOKEN_INFO ti;
        (void)FLP->C_GetTokenInfo(slot, &ti);
        check_objects(false);

        restart();
        CK_RV rv = CKR_OK;
        int attempt;
        for (attempt = 1; attempt <= 6; attempt++) {
            if (attempt == 4) {
                (void)FLP->C_Logout(main_s);
                rv = fl_login_rv(main_s, CKU_USER, FL_USER_PIN);
                if (rv != CKR_OK)
                    fl_fail("cycle %d: login after the restart: %s", cycle, fl_rv(rv));
                base = find1(main_s, CKO_PRIVATE_KEY, "base"); /* handles renumbered */
            }
            rv = sign_verify(main_s, base, base_pub);
            if (rv == CKR_OK)
                break;
            if (!device_gone(rv))
                fl_fail("cycle %d: C_Sign after the restart: %s", cycle, fl_rv(rv));
        }
        if (rv != CKR_OK)
            fl_fail("cycle %d: no signature after the restart: %s", cycle, fl_rv(rv));
        char label[32];
        snprintf(label, sizeof(label), "after-%d", cycle);
        rv = keygen(main_s, label, err, sizeof(err));
        if (rv != CKR_OK || err[0])
            fl_fail("cycle %d: C_GenerateKeyPair after the restart: %s %s", cycle, fl_rv(rv), err);
        check_objects(true);
        for (int i = 0; i < nl; i++)
            if (loops[i].s != main_s)
                (void)FLP->C_CloseSession(loops[i].s);
        printf("cycle %d (%s): failed cleanly with %s; signed again on attempt %d%s\n", cycle, kind,
               fl_rv(loops[0].first), attempt, attempt >= 4 ? " (after a new login)" : "");
        fflush(stdout);
    }
    printf("%d cycles, %d TPM key pairs, all complete and usable\n", cycles, atomic_load(&keygens));
    EVP_PKEY_free(base_pub);
    fl_finalize();
    return 0;
}
