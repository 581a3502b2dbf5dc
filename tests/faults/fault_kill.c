/*
 * Crash consistency: a child process creates, modifies and destroys token
 * objects in a loop (data objects whose label encodes a digest of their value,
 * C_SetAttributeValue of a data label, of a public key's CKA_LABEL + CKA_ID
 * together, EC key pair generation) and is killed with SIGKILL at a random
 * moment, N times. After every few kills and at the end a fresh process
 * checks (issue 6, "Faults"):
 *
 *   - the token opens and the user logs in;
 *   - every object is whole: data labels match their values, a public key's
 *     label matches its CKA_ID (both written in one C_SetAttributeValue),
 *     public keys parse, private keys sign;
 *   - what the API lists is exactly the object files in the token directory
 *     (so no temporary file became an object, and no object file is corrupt).
 *
 * usage: fault_kill KILLS MAX_DELAY_US   (KSP11_STORE set; the parent never
 * loads the module, every child does). Exit 0 when everything held.
 */
#include <dirent.h>
#include <fcntl.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fl.h"

#define TOKEN    "kt"
#define MAX_OBJS 40

/* "fi-<16 hex of SHA-256(id)>" */
static void id_label(const uint8_t *id, size_t len, char out[32])
{
    uint8_t md[32];
    char hex[65];
    EVP_Digest(id, len, md, NULL, EVP_sha256(), NULL);
    fl_hex(md, 8, hex);
    snprintf(out, 32, "fi-%.16s", hex);
}

/* ---- the child being killed ---- */

static void churn(int ready_fd)
{
    fl_initialize();
    CK_SESSION_HANDLE s = fl_open_user(fl_find_slot(TOKEN), true);
    CK_OBJECT_HANDLE *h = NULL;
    CK_ULONG n = 0;
    FL_OK(fl_find(s, NULL, 0, &h, &n));
    h = realloc(h, (n + 100000) * sizeof(*h));
    if (write(ready_fd, "r", 1) != 1)
        fl_die("ready pipe: %s", strerror(errno));
    close(ready_fd);
    for (unsigned it = 0;; it++) {
        unsigned r = fl_rand() % 100;
        if (n >= MAX_OBJS && r < 60)
            r = 70; /* keep the token small: destroy instead of create */
        if (r < 45 || n < 2) {
            uint8_t v[256];
            size_t len = 1 + fl_rand() % sizeof(v);
            for (size_t i = 0; i < len; i++)
                v[i] = (uint8_t)fl_rand();
            FL_OK(fl_create_data(s, v, len, fl_rand() % 1000, true, &h[n]));
            n++;
        } else if (r < 52) {
            CK_OBJECT_HANDLE pub, priv;
            char label[32];
            snprintf(label, sizeof(label), "fe-%u", it);
            FL_OK(fl_gen_ec(s, label, true, &pub, &priv));
            h[n++] = pub;
            h[n++] = priv;
        } else if (r < 68) {
            CK_OBJECT_HANDLE o = h[fl_rand() % n];
            CK_OBJECT_CLASS cls = fl_ulong(s, o, CKA_CLASS);
            if (cls == CKO_DATA) {
                uint8_t *v = NULL;
                CK_ULONG vl = 0;
                char label[64];
                FL_OK(fl_attr(s, o, CKA_VALUE, &v, &vl));
                fl_data_label(v, vl, 1000 + it % 1000, label);
                free(v);
                CK_ATTRIBUTE t = {CKA_LABEL, label, strlen(label)};
                FL_OK(FLP->C_SetAttributeValue(s, o, &t, 1));
            } else if (cls == CKO_PUBLIC_KEY) {
                uint8_t id[16];
                char label[32];
                for (size_t i = 0; i < sizeof(id); i++)
                    id[i] = (uint8_t)fl_rand();
                id_label(id, sizeof(id), label);
                CK_ATTRIBUTE t[] = {{CKA_ID, id, sizeof(id)}, {CKA_LABEL, label, strlen(label)}};
                FL_OK(FLP->C_SetAttributeValue(s, o, t, 2));
            }
        } else {
            CK_ULONG i = fl_rand() % n;
            FL_OK(FLP->C_DestroyObject(s, h[i]));
            h[i] = h[--n];
        }
    }
}

/* ---- the checker ---- */

static bool obj_file(const char *name)
{
    size_t n = strlen(name);
    if (n != 36 || strcmp(name + 32, ".obj") != 0)
        return false;
    for (size_t i = 0; i < 32; i++)
        if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'f')))
            return false;
    return true;
}

/* Object files and temporary files in the (only) token directory; with
 * age > 0, temporary files are made that many seconds old first. */
static void scan_files(size_t *objs, size_t *tmps, int age)
{
    const char *root = getenv("KSP11_STORE");
    char path[PATH_MAX];
    DIR *d = opendir(root), *td;
    struct dirent *de;
    *objs = *tmps = 0;
    if (!d)
        fl_die("opendir %s", root);
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", root, de->d_name);
        if (!(td = opendir(path)))
            continue;
        struct dirent *fe;
        while ((fe = readdir(td))) {
            if (obj_file(fe->d_name))
                (*objs)++;
            else if (!strncmp(fe->d_name, ".tmp.", 5)) {
                (*tmps)++;
                if (age > 0) {
                    struct timespec t[2];
                    clock_gettime(CLOCK_REALTIME, &t[0]);
                    t[0].tv_sec -= age;
                    t[1] = t[0];
                    if (utimensat(dirfd(td), fe->d_name, t, AT_SYMLINK_NOFOLLOW) != 0)
                        fl_die("utimensat %s: %s", fe->d_name, strerror(errno));
                }
            }
        }
        closedir(td);
    }
    closedir(d);
}

static void verify(void)
{
    fl_initialize();
    CK_SESSION_HANDLE s = fl_open_user(fl_find_slot(TOKEN), false);
    CK_OBJECT_HANDLE *h = NULL;
    CK_ULONG n = 0;
    size_t files, tmps;
    FL_OK(fl_find(s, NULL, 0, &h, &n));
    for (CK_ULONG i = 0; i < n; i++) {
        CK_OBJECT_CLASS cls = fl_ulong(s, h[i], CKA_CLASS);
        uint8_t *label = NULL, *id = NULL;
        CK_ULONG ll = 0, il = 0;
        const char *why = NULL;
        FL_OK(fl_attr(s, h[i], CKA_LABEL, &label, &ll));
        if (cls == CKO_DATA) {
            if (!fl_data_consistent(s, h[i], &why))
                fl_fail("data object '%s' is damaged: %s", label, why);
        } else if (cls == CKO_PUBLIC_KEY) {
            EVP_PKEY *pk = fl_pubkey(s, h[i]);
            if (!pk)
                fl_fail("public key '%s' does not parse", label);
            EVP_PKEY_free(pk);
            if (!strncmp((char *)label, "fi-", 3)) {
                char want[32];
                FL_OK(fl_attr(s, h[i], CKA_ID, &id, &il));
                id_label(id, il, want);
                if (strcmp(want, (char *)label) != 0)
                    fl_fail("public key '%s': CKA_ID and CKA_LABEL from different writes", label);
            } else if (strncmp((char *)label, "fe-", 3) != 0) {
                fl_fail("public key with label '%s'", label);
            }
        } else if (cls == CKO_PRIVATE_KEY) {
            uint8_t sig[128];
            CK_ULONG sl = sizeof(sig);
            CK_RV rv = fl_sign(s, h[i], CKK_EC, (const uint8_t *)"m", 1, sig, &sl);
            if (rv != CKR_OK)
                fl_fail("private key '%s' does not sign: %s", label, fl_rv(rv));
        } else {
            fl_fail("object of class %lu", (unsigned long)cls);
        }
        free(label);
        free(id);
        id = NULL;
    }
    scan_files(&files, &tmps, 0);
    if (files != n)
        fl_fail("the API lists %lu objects, the token directory holds %zu object files",
                (unsigned long)n, files);
    printf("# %lu objects, all whole; %zu temporary files left by killed writers\n",
           (unsigned long)n, tmps);
    fflush(stdout);
    fl_finalize();
    exit(0);
}

static int run_child(void (*fn)(void))
{
    int st;
    pid_t p = fork();
    if (p < 0)
        fl_die("fork: %s", strerror(errno));
    if (p == 0)
        fn();
    waitpid(p, &st, 0);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static void setup(void)
{
    fl_initialize();
    fl_make_token(TOKEN);
    fl_finalize();
    exit(0);
}

/* Temporary files killed writers left behind are removed once stale
 * (older than a minute: store.c) by the next reader, and never loaded. */
static int sweep(void)
{
    size_t objs, tmps, objs2, tmps2;
    scan_files(&objs, &tmps, 120);
    if (tmps == 0)
        fl_fail("no temporary files were left by the killed writers");
    int rc = run_child(verify);
    if (rc != 0)
        fl_fail("verify failed (%d)", rc);
    scan_files(&objs2, &tmps2, 0);
    if (tmps2 != 0 || objs2 != objs)
        fl_fail("%zu stale temporary files of %zu still there, %zu object files (was %zu)", tmps2,
                tmps, objs2, objs);
    printf("%zu stale temporary files swept, %zu object files untouched\n", tmps, objs);
    return 0;
}

int main(int argc, char **argv)
{
    fl_set_prog(argv[0]);
    if (argc == 2 && !strcmp(argv[1], "sweep"))
        return sweep();
    if (argc < 3)
        fl_die("usage: fault_kill KILLS MAX_DELAY_US | fault_kill sweep");
    int kills = atoi(argv[1]);
    long maxus = atol(argv[2]);
    int every = kills / 10 > 0 ? kills / 10 : 1;
    int rc = run_child(setup);
    if (rc != 0)
        fl_fail("setup failed (%d)", rc);
    for (int i = 1; i <= kills; i++) {
        int pfd[2], st;
        char c;
        if (pipe(pfd) != 0)
            fl_die("pipe");
        pid_t p = fork();
        if (p < 0)
            fl_die("fork");
        if (p == 0) {
            close(pfd[0]);
            churn(pfd[1]);
        }
        close(pfd[1]);
        struct pollfd pf = {pfd[0], POLLIN, 0};
        if (poll(&pf, 1, 60000) != 1 || read(pfd[0], &c, 1) != 1) {
            kill(p, SIGKILL);
            waitpid(p, &st, 0);
            fl_fail("kill %d: the child did not get ready (exit %d)", i,
                    WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
        }
        close(pfd[0]);
        fl_sleep_us((long)(fl_rand() % (uint32_t)(maxus + 1)));
        kill(p, SIGKILL);
        waitpid(p, &st, 0);
        if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
            fl_fail("kill %d: the child ended by itself (%s %d) before SIGKILL", i,
                    WIFEXITED(st) ? "exit" : "signal",
                    WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
        if (i % every == 0 || i == kills) {
            rc = run_child(verify);
            if (rc != 0)
                fl_fail("after %d kills the token is not consistent (%d)", i, rc);
        }
    }
    printf("%d kills, token consistent after each check\n", kills);
    return 0;
}
