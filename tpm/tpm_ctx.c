/*
 * The connection of the TPM backend (DESIGN.md §3 "TPM hygiene",
 * semantics.md §2.2-§2.3): which TCTI, the lazy connect (open() only records
 * the configuration), the reconnect after a transport failure, the fork rule
 * (a child drops the parent's connection without a byte to the TPM), and the
 * TPM's identity, including telling a missing, forbidden, unreachable or
 * TPM 1.2 device apart.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "swcrypto.h"
#include "tpm_int.h"

#define AREA KSP_TPM_AREA

/* DESIGN.md §1: device first, then the user-space resource manager. Never a
 * network TCTI unless configured. */
#define TCTI_DEVICE_DEFAULT "device:/dev/tpmrm0"
#define TCTI_ABRMD_DEFAULT  "tabrmd"

static pthread_once_t quiet_once = PTHREAD_ONCE_INIT;

static void quiet_init(void)
{
    /* tpm2-tss logs its errors to stderr unless TSS2_LOG says otherwise, and
     * a PKCS#11 module never writes to its host's stdout/stderr (DESIGN.md
     * §1): a missing TPM or a TPM 1.2 would print several lines into every
     * ssh or curl run. tpm2-tss reads the variable at its first log call, so
     * this runs before our first Tss2 call. A TSS2_LOG the user set (to debug
     * tpm2-tss) is kept. */
    if (getenv("TSS2_LOG") == NULL) {
        setenv("TSS2_LOG", "all+NONE", 0);
    }
}

void ksp_tpm_quiet_tss(void)
{
    pthread_once(&quiet_once, quiet_init);
}

/* ---- locking, SIGPIPE, fork ---- */

static void disconnect_inlock(struct ksp_backend *be, bool talk);

void ksp_tpm_lock(struct ksp_backend *be, struct ksp_tpm_call *call)
{
    sigset_t pipe_set;
    sigset_t pending;
    pid_t pid = 0;

    pthread_mutex_lock(&be->lock);
    /* Socket TCTIs write() to swtpm/the simulator; if it died, a SIGPIPE
     * would kill the host. Block it for the duration of the call and
     * consume one we caused (ksp_tpm_unlock). */
    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigemptyset(&pending);
    sigpending(&pending);
    call->pipe_was_pending = sigismember(&pending, SIGPIPE) == 1;
    pthread_sigmask(SIG_BLOCK, &pipe_set, &call->old_mask);
    pid = getpid();
    if (pid != be->pid) {
        /* DESIGN.md §3: a forked child never reuses the parent's connection
         * (its descriptor and TPM objects belong to the parent). */
        ksp_debug(AREA, "fork detected: dropping the inherited TPM connection");
        disconnect_inlock(be, false);
        ksp_tpm_xlock_forget_fd(be);
        be->pid = pid;
    }
    /* No resource manager: one process at a time at the TPM (tpm_lock.c). */
    ksp_tpm_xlock_take_inlock(be);
}

void ksp_tpm_unlock(struct ksp_backend *be, struct ksp_tpm_call *call)
{
    sigset_t pipe_set;
    sigset_t pending;
    struct timespec zero = {0, 0};

    /* Without a resource manager nothing of ours stays loaded between calls
     * (keep_primary()). A persistent primary takes no slot. */
    if (be->esys != NULL) {
        ksp_tpm_primary_done_inlock(be);
    }
    ksp_tpm_xlock_release_inlock(be);

    sigemptyset(&pipe_set);
    sigaddset(&pipe_set, SIGPIPE);
    sigemptyset(&pending);
    if (!call->pipe_was_pending && sigpending(&pending) == 0 &&
        sigismember(&pending, SIGPIPE) == 1) {
        (void)sigtimedwait(&pipe_set, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &call->old_mask, NULL);
    pthread_mutex_unlock(&be->lock);
}

#define MAX_ATTEMPTS 12

bool ksp_tpm_again_inlock(struct ksp_backend *be, CK_RV rv, int attempt)
{
    struct timespec wait = {0, 0};
    long ms = 0;
    uint8_t r = 0;

    if (attempt + 1 >= MAX_ATTEMPTS) {
        return false;
    }
    if (rv == CKR_DEVICE_ERROR && be->stale) {
        ksp_debug(AREA, "TPM lost our handles (restarted?): reconnecting");
        return true;
    }
    if (rv == CKR_DEVICE_MEMORY && !be->keep_primary) {
        /* No resource manager: the 3 object slots are shared with every
         * process using this TPM, each holding 1-2 for milliseconds. Free
         * ours and back off: 5 ms doubling up to 320 ms, jittered so that
         * two waiting processes do not retry in step; about 2 s in all. */
        ksp_tpm_primary_drop_inlock(be, !be->dead);
        ms = 5L << (attempt < 6 ? attempt : 6);
        if (ksp_random(&r, 1) == CKR_OK) {
            ms = ms / 2 + (ms * r) / 255;
        }
        wait.tv_sec = ms / 1000;
        wait.tv_nsec = (ms % 1000) * 1000 * 1000;
        ksp_debug(AREA, "TPM object memory full: retrying in %ld ms", ms);
        nanosleep(&wait, NULL);
        return true;
    }
    return false;
}

/* ---- TCTI names and the Linux device checks ---- */

/* "device:/dev/tpmrm0" -> "device", args "/dev/tpmrm0". A library name
 * (libtss2-tcti-swtpm.so.0, or a path to it) counts as its short name. */
static void tcti_name(const char *conf, char *name, size_t name_len, const char **args)
{
    const char *colon = strchr(conf, ':');
    const char *s = conf;
    size_t len = colon != NULL ? (size_t)(colon - conf) : strlen(conf);
    const char *dot = NULL;

    *args = colon != NULL ? colon + 1 : "";
    for (const char *q = conf; q < conf + len; q++) {
        if (*q == '/') {
            s = q + 1;
        }
    }
    len -= (size_t)(s - conf);
    if (len > 13 && strncmp(s, "libtss2-tcti-", 13) == 0) {
        s += 13;
        len -= 13;
    }
    dot = memchr(s, '.', len);
    if (dot != NULL) {
        len = (size_t)(dot - s);
    }
    if (len >= name_len) {
        len = name_len - 1;
    }
    memcpy(name, s, len);
    name[len] = '\0';
}

/* The N of /dev/tpmrmN or /dev/tpmN, for sysfs; 0 if the name says nothing. */
static unsigned device_index(const char *path)
{
    const char *base = strrchr(path, '/');
    unsigned long n = 0;
    char *end = NULL;

    base = base != NULL ? base + 1 : path;
    if (strncmp(base, "tpmrm", 5) == 0) {
        base += 5;
    } else if (strncmp(base, "tpm", 3) == 0) {
        base += 3;
    } else {
        return 0;
    }
    n = strtoul(base, &end, 10);
    return end != base && *end == '\0' && n < 1000 ? (unsigned)n : 0;
}

/* semantics.md §2.3: tpm_version_major (Linux >= 5.6) says 1 or 2; older
 * kernels expose caps only for TPM 1.2 chips. Nothing is sent to the chip. */
static bool sysfs_says_tpm12(unsigned idx)
{
    const char *root = secure_getenv("KSP11_SYSFS_ROOT");
    char path[PATH_MAX];
    char buf[8];
    ssize_t n = 0;
    int fd = -1;

    if (root == NULL || root[0] == '\0') {
        root = "/sys";
    }
    snprintf(path, sizeof(path), "%s/class/tpm/tpm%u/tpm_version_major", root, idx);
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd >= 0) {
        n = read(fd, buf, sizeof(buf));
        close(fd);
        return n >= 1 && buf[0] == '1' && (n == 1 || buf[1] == '\n');
    }
    snprintf(path, sizeof(path), "%s/class/tpm/tpm%u/caps", root, idx);
    if (access(path, F_OK) == 0) {
        return true;
    }
    snprintf(path, sizeof(path), "%s/class/tpm/tpm%u/device/caps", root, idx);
    return access(path, F_OK) == 0;
}

static void set_error(struct ksp_tpm_identity *id, const char *error, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_error(struct ksp_tpm_identity *id, const char *error, const char *fmt, ...)
{
    va_list ap;

    id->present = CK_FALSE;
    snprintf(id->error, sizeof(id->error), "%s", error);
    va_start(ap, fmt);
    vsnprintf(id->detail, sizeof(id->detail), fmt, ap);
    va_end(ap);
}

/* ---- identity (semantics.md §2.2) ---- */

/* Append the printable, non-NUL bytes of a big-endian 4-byte string. */
static void append4(uint32_t v, char *dst, size_t cap)
{
    size_t len = strlen(dst);

    for (int shift = 24; shift >= 0; shift -= 8) {
        char c = (char)((v >> shift) & 0xFF);
        if (c == '\0' || len + 1 >= cap) {
            continue;
        }
        dst[len++] = (c >= 0x20 && c < 0x7F) ? c : '?';
    }
    dst[len] = '\0';
}

/* semantics.md §2.2: trailing NUL/space trimmed (inner spaces kept:
 * swtpm's vendor string is "SW   TPM"). */
static void trim(char *s)
{
    size_t len = strlen(s);

    while (len > 0 && s[len - 1] == ' ') {
        s[--len] = '\0';
    }
}

/* One TPM2_GetCapability(TPM_PROPERTIES, TPM_PT_FIXED, 64) loop. */
static TSS2_RC read_identity(ESYS_CONTEXT *esys, struct ksp_tpm_identity *id)
{
    TSS2_RC rc = TSS2_RC_SUCCESS;
    TPMI_YES_NO more = TPM2_YES;
    UINT32 next = TPM2_PT_FIXED;
    uint32_t manufacturer = 0;
    uint32_t vendor[4] = {0, 0, 0, 0};

    memset(id, 0, sizeof(*id));
    /* Bounded: the fixed group has < 256 properties. */
    for (int round = 0; more == TPM2_YES && round < 8; round++) {
        TPMS_CAPABILITY_DATA *cap = NULL;
        const TPML_TAGGED_TPM_PROPERTY *pl = NULL;
        UINT32 last = 0;

        rc = Esys_GetCapability(esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE,
                                TPM2_CAP_TPM_PROPERTIES, next, 64, &more, &cap);
        if (rc != TSS2_RC_SUCCESS) {
            return rc;
        }
        pl = &cap->data.tpmProperties;
        if (cap->capability != TPM2_CAP_TPM_PROPERTIES || pl->count == 0 ||
            pl->count > TPM2_MAX_TPM_PROPERTIES) {
            Esys_Free(cap);
            break;
        }
        for (UINT32 i = 0; i < pl->count; i++) {
            UINT32 v = pl->tpmProperty[i].value;

            switch (pl->tpmProperty[i].property) {
            case TPM2_PT_LEVEL:
                id->level = v;
                break;
            case TPM2_PT_REVISION:
                id->revision = v;
                break;
            case TPM2_PT_DAY_OF_YEAR:
                id->day_of_year = v;
                break;
            case TPM2_PT_YEAR:
                id->year = v;
                break;
            case TPM2_PT_MANUFACTURER:
                manufacturer = v;
                break;
            case TPM2_PT_VENDOR_STRING_1:
            case TPM2_PT_VENDOR_STRING_2:
            case TPM2_PT_VENDOR_STRING_3:
            case TPM2_PT_VENDOR_STRING_4:
                vendor[pl->tpmProperty[i].property - TPM2_PT_VENDOR_STRING_1] = v;
                break;
            case TPM2_PT_FIRMWARE_VERSION_1:
                id->fw1 = v;
                break;
            case TPM2_PT_FIRMWARE_VERSION_2:
                id->fw2 = v;
                break;
            case TPM2_PT_MODES:
                id->modes = v;
                break;
            default:
                break;
            }
        }
        last = pl->tpmProperty[pl->count - 1].property;
        Esys_Free(cap);
        if (last < next || last >= TPM2_PT_VAR - 1) {
            break;
        }
        next = last + 1;
    }
    append4(manufacturer, id->manufacturer, sizeof(id->manufacturer));
    for (int i = 0; i < 4; i++) {
        append4(vendor[i], id->vendor, sizeof(id->vendor));
    }
    trim(id->manufacturer);
    trim(id->vendor);
    id->present = CK_TRUE;
    return TSS2_RC_SUCCESS;
}

/* semantics.md §2.3 item 3: a TPM 1.2 answers a TPM 2.0 command with tag
 * TPM_TAG_RSP_COMMAND (0x00C4). tpm2-tss 3.2.1 reports that as
 * TSS2_SYS_RC_GENERAL_FAILURE (0x00080001); this confirms it on the wire with
 * a raw TPM2_GetCapability. */
static bool answers_as_tpm12(TSS2_TCTI_CONTEXT *tcti)
{
    static const uint8_t cmd[] = {0x80, 0x01, 0x00, 0x00, 0x00, 0x16, 0x00, 0x00, 0x01, 0x7A, 0x00,
                                  0x00, 0x00, 0x06, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01};
    uint8_t rsp[4096];
    size_t len = sizeof(rsp);
    TSS2_RC rc = TSS2_RC_SUCCESS;

    rc = Tss2_Tcti_Transmit(tcti, sizeof(cmd), cmd);
    if (rc != TSS2_RC_SUCCESS) {
        return false;
    }
    rc = Tss2_Tcti_Receive(tcti, &len, rsp, TSS2_TCTI_TIMEOUT_BLOCK);
    return rc == TSS2_RC_SUCCESS && len >= 10 && rsp[0] == 0x00 && rsp[1] == 0xC4;
}

/*
 * Whether the storage primary stays loaded between calls. Behind a resource
 * manager (/dev/tpmrmN, tabrmd) it does: the manager flushes it when this
 * process goes, and it saves a CreatePrimary per call. On a TPM without one
 * (swtpm, mssim, /dev/tpmN) an object left loaded stays until the TPM
 * restarts, and many PKCS#11 hosts exit without C_Finalize: three such
 * processes fill the TPM's object slots for everyone (TPM_RC_OBJECT_MEMORY).
 * There every entry point flushes the primary before it returns.
 * KSP11_TPM_KEEP_PRIMARY=1/0 overrides (a TPM used by one long-lived process).
 */
static bool behind_rm(const char *name, const char *args)
{
    const char *base = strrchr(args, '/');

    base = base != NULL ? base + 1 : args;
    return strcmp(name, "tabrmd") == 0 ||
           (strcmp(name, "device") == 0 && strncmp(base, "tpmrm", 5) == 0);
}

static bool keep_primary(const char *name, const char *args)
{
    const char *env = secure_getenv("KSP11_TPM_KEEP_PRIMARY");

    if (env != NULL && (strcmp(env, "1") == 0 || strcmp(env, "0") == 0)) {
        return env[0] == '1';
    }
    return behind_rm(name, args);
}

/* Finalize a TCTI from the loader or from tpm_tabrmd.c. */
static void tcti_free(TSS2_TCTI_CONTEXT **tcti)
{
    if (*tcti == NULL) {
        return;
    }
    if (ksp_tpm_tabrmd_is(*tcti)) {
        ksp_tpm_tabrmd_free(tcti);
    } else {
        Tss2_TctiLdr_Finalize(tcti);
    }
    *tcti = NULL;
}

/* A connection that worked. */
struct conn {
    TSS2_TCTI_CONTEXT *tcti;
    ESYS_CONTEXT *esys;
    bool quiet_finalize;
    bool keep_primary;
    bool behind_rm;
};

/* Try one TCTI: CKR_OK with *c and a present identity, or an error with
 * id->error/detail saying why. */
static CK_RV try_tcti(const char *conf, struct ksp_tpm_identity *id, struct conn *c)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    char name[32];
    const char *args = NULL;
    bool device = false;
    TSS2_TCTI_CONTEXT *tcti = NULL;
    ESYS_CONTEXT *esys = NULL;
    TSS2_RC rc = TSS2_RC_SUCCESS;

    memset(id, 0, sizeof(*id));
    tcti_name(conf, name, sizeof(name), &args);
    device = strcmp(name, "device") == 0;
    if (device) {
        const char *path = args[0] != '\0' ? args : NULL;

        if (sysfs_says_tpm12(path != NULL ? device_index(path) : 0)) {
            id->is_tpm12 = CK_TRUE;
            set_error(id, "tpm-1.2", "the TPM is version 1.2 (sysfs); only TPM 2.0 is used");
            rv = CKR_DEVICE_ERROR;
            goto out;
        }
        /* AT_EACCESS: the rights the open() in the TCTI will have. */
        if (path != NULL && faccessat(AT_FDCWD, path, R_OK | W_OK, AT_EACCESS) != 0) {
            int e = errno;

            if (e == ENOENT || e == ENOTDIR) {
                set_error(id, "absent", "no TPM device %s", path);
                rv = CKR_DEVICE_REMOVED;
            } else if (e == EACCES || e == EPERM || e == EROFS) {
                /* semantics.md §4 item 11: udev gives tpmrm* to group tss. */
                set_error(id, "permission-denied", "no access to %s (join group tss)", path);
                rv = CKR_DEVICE_ERROR;
            } else {
                set_error(id, "unreachable", "%s: %s", path, strerror(e));
                rv = CKR_DEVICE_ERROR;
            }
            goto out;
        }
    }
    if (strcmp(name, "tabrmd") == 0) {
        /* tpm_tabrmd.c: tpm2-tss's tabrmd TCTI is not fork-safe (GLib). */
        char err[200] = "";

        rc = ksp_tpm_tabrmd_init(args, &tcti, err, sizeof(err));
        if (rc != TSS2_RC_SUCCESS) {
            set_error(id, "unreachable", "TCTI \"%s\": %s", conf, err);
            rv = CKR_DEVICE_ERROR;
            goto out;
        }
    } else {
        rc = Tss2_TctiLdr_Initialize(conf, &tcti);
    }
    if (rc != TSS2_RC_SUCCESS) {
        /* No errno comes back through the loader: for a socket TCTI this is
         * a refused connection or a missing socket. */
        set_error(id, "unreachable", "TCTI \"%s\": %s", conf, Tss2_RC_Decode(rc));
        rv = CKR_DEVICE_ERROR;
        goto out;
    }
    rc = Esys_Initialize(&esys, tcti, NULL);
    if (rc != TSS2_RC_SUCCESS) {
        set_error(id, "unreachable", "ESAPI: %s", Tss2_RC_Decode(rc));
        rv = rc == TSS2_ESYS_RC_MEMORY ? CKR_HOST_MEMORY : CKR_DEVICE_ERROR;
        goto out;
    }
    rc = read_identity(esys, id);
    if (rc == TSS2_SYS_RC_GENERAL_FAILURE && answers_as_tpm12(tcti)) {
        memset(id, 0, sizeof(*id));
        id->is_tpm12 = CK_TRUE;
        set_error(id, "tpm-1.2", "the TPM behind \"%s\" is version 1.2 (response tag 0x00C4)",
                  conf);
        rv = CKR_DEVICE_ERROR;
        goto out;
    }
    if (rc != TSS2_RC_SUCCESS) {
        memset(id, 0, sizeof(*id));
        set_error(id, "unreachable", "TCTI \"%s\": TPM2_GetCapability: %s", conf,
                  Tss2_RC_Decode(rc));
        rv = rc == TSS2_ESYS_RC_MEMORY ? CKR_HOST_MEMORY : CKR_DEVICE_ERROR;
        goto out;
    }
    c->tcti = tcti;
    c->esys = esys;
    /* Their finalize only closes a descriptor (mssim's sends a session-end
     * message, tabrmd's talks D-Bus): safe in a forked child. */
    c->quiet_finalize = device || strcmp(name, "swtpm") == 0 || ksp_tpm_tabrmd_is(tcti);
    c->keep_primary = keep_primary(name, args);
    c->behind_rm = behind_rm(name, args);
    tcti = NULL;
    esys = NULL;
    rv = CKR_OK;
out:
    if (esys != NULL) {
        Esys_Finalize(&esys);
    }
    tcti_free(&tcti);
    return rv;
}

static bool same_tpm(const struct ksp_tpm_identity *a, const struct ksp_tpm_identity *b)
{
    return strcmp(a->manufacturer, b->manufacturer) == 0 && strcmp(a->vendor, b->vendor) == 0 &&
           a->fw1 == b->fw1 && a->fw2 == b->fw2;
}

/* tabrmd is reached over the D-Bus system bus. Without one, libtss2-tcti-tabrmd
 * reports the failed connection through GLib's g_critical, i.e. on the host's
 * stderr (DESIGN.md §1: never), so the default fallback is not tried then. */
static bool system_bus_present(void)
{
    const char *addr = getenv("DBUS_SYSTEM_BUS_ADDRESS");
    return (addr != NULL && addr[0] != '\0') || access("/run/dbus/system_bus_socket", F_OK) == 0 ||
           access("/var/run/dbus/system_bus_socket", F_OK) == 0;
}

static bool env_is(const char *name, const char *value)
{
    const char *v = secure_getenv(name);
    return v != NULL && strcmp(v, value) == 0;
}

/* A SAPI context over the connection's TCTI for the signing hot path
 * (tpm_sess.c); without one that path is simply not taken. */
static void open_sys(struct ksp_backend *be)
{
    TSS2_ABI_VERSION abi = TSS2_ABI_VERSION_CURRENT;
    size_t size = Tss2_Sys_GetContextSize(0);
    TSS2_SYS_CONTEXT *sys = calloc(1, size);

    if (sys != NULL && Tss2_Sys_Initialize(sys, size, be->tcti, &abi) != TSS2_RC_SUCCESS) {
        free(sys);
        sys = NULL;
    }
    be->sys = sys;
}

CK_RV ksp_tpm_connect_inlock(struct ksp_backend *be)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_tpm_identity id;
    struct conn c = {NULL, NULL, false, false, false};

    if (be->esys != NULL && !be->dead) {
        return CKR_OK;
    }
    if (be->esys != NULL || be->tcti != NULL) {
        disconnect_inlock(be, true);
    }
    ksp_tpm_quiet_tss();
    if (be->tcti_conf != NULL) {
        rv = try_tcti(be->tcti_conf, &id, &c);
    } else {
        rv = try_tcti(TCTI_DEVICE_DEFAULT, &id, &c);
        if (rv != CKR_OK && rv != CKR_HOST_MEMORY && !id.is_tpm12) {
            struct ksp_tpm_identity id2;

            if (system_bus_present() && try_tcti(TCTI_ABRMD_DEFAULT, &id2, &c) == CKR_OK) {
                id = id2;
                rv = CKR_OK;
            }
        }
    }
    if (rv != CKR_OK) {
        /* identity() reports why, until a TPM 2.0 has answered once. */
        if (!be->ident_valid) {
            be->ident = id;
        }
        ksp_debug(AREA, "no TPM connection (%s): %s", id.error, id.detail);
        return rv;
    }
    if (be->ident_valid && !same_tpm(&be->ident, &id)) {
        /* Capabilities are a property of the TPM: probe again. */
        ksp_info(AREA, "a different TPM answers now (%s %s)", id.manufacturer, id.vendor);
        be->caps_valid = false;
    }
    be->ident = id;
    be->ident_valid = true;
    be->tcti = c.tcti;
    be->esys = c.esys;
    be->quiet_finalize = c.quiet_finalize;
    be->behind_rm = c.behind_rm;
    /* KSP11_TPM_KEEP=1: ksp11 alone uses this TPM without a resource
     * manager; keep what we load, under the cross-process lock's record. */
    be->keep_objects = c.behind_rm || (be->xlock_path != NULL && env_is("KSP11_TPM_KEEP", "1"));
    be->keep_primary = c.keep_primary || be->keep_objects;
    be->dead = false;
    open_sys(be);
    if (be->nforeign > 0) {
        ksp_tpm_xlock_flush_foreign_inlock(be);
    }
    ksp_debug(AREA, "connected: %s %s fw 0x%08x.0x%08x spec %u", id.manufacturer, id.vendor, id.fw1,
              id.fw2, id.revision);
    return CKR_OK;
}

/*
 * In a forked child, also close what the parent had open to a socket TPM
 * (swtpm, the simulator) but the TCTI context no longer names: the socket of
 * a command a parent thread had in flight at fork. Left open here it keeps
 * swtpm (one connection at a time) waiting on this process while the parent
 * waits for swtpm's answer, holding the cross-process TPM lock this child
 * then waits for (tests/faults/load.sh, fork while threads sign). Only
 * sockets connected to the TPM's own Unix socket path are closed.
 */
static void close_inherited_tpm_sockets(const char *conf)
{
    const char *p = conf != NULL ? strstr(conf, "path=") : NULL;
    struct sockaddr_un sa;
    char path[sizeof(sa.sun_path)];
    if (p == NULL)
        return;
    p += 5;
    size_t n = strcspn(p, ",");
    if (n == 0 || n >= sizeof(path))
        return;
    memcpy(path, p, n);
    path[n] = '\0';
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        char *end = NULL;
        long fd = strtol(de->d_name, &end, 10);
        struct stat st;
        socklen_t sl = sizeof(sa);
        if (end == de->d_name || *end != '\0' || fd < 0 || fd == dirfd(d))
            continue;
        if (fstat((int)fd, &st) != 0 || !S_ISSOCK(st.st_mode))
            continue;
        memset(&sa, 0, sizeof(sa));
        if (getpeername((int)fd, (struct sockaddr *)&sa, &sl) != 0 || sa.sun_family != AF_UNIX ||
            strncmp(sa.sun_path, path, sizeof(sa.sun_path)) != 0)
            continue;
        close((int)fd);
        ksp_debug(AREA, "forked child: closed an inherited connection to %s", path);
    }
    closedir(d);
}

/* Close the TCTI. In a forked child (!talk) only TCTIs whose finalize merely
 * closes are finalized; for others we close the descriptors they report and
 * leave the small context allocated rather than let it talk. */
static void close_tcti(struct ksp_backend *be, bool talk)
{
    TSS2_TCTI_POLL_HANDLE handles[8];
    size_t n = 0;

    if (be->tcti == NULL) {
        return;
    }
    if (talk || be->quiet_finalize) {
        tcti_free(&be->tcti);
        be->tcti = NULL;
        if (!talk)
            close_inherited_tpm_sockets(be->tcti_conf);
        return;
    }
    if (Tss2_Tcti_GetPollHandles(be->tcti, NULL, &n) == TSS2_RC_SUCCESS && n > 0 &&
        n <= sizeof(handles) / sizeof(handles[0]) &&
        Tss2_Tcti_GetPollHandles(be->tcti, handles, &n) == TSS2_RC_SUCCESS) {
        for (size_t i = 0; i < n; i++) {
            close(handles[i].fd);
        }
    }
    ksp_debug(AREA, "forked child: TCTI context left allocated so that it sends nothing");
    be->tcti = NULL;
    close_inherited_tpm_sockets(be->tcti_conf);
}

static void disconnect_inlock(struct ksp_backend *be, bool talk)
{
    /* A dead connection's objects are gone with the TPM's restart or with
     * the descriptor; only a live one flushes what it loaded. */
    ksp_tpm_hot_drop_inlock(be, talk && !be->dead && be->esys != NULL);
    ksp_tpm_primary_drop_inlock(be, talk && !be->dead);
    if (be->sys != NULL) {
        Tss2_Sys_Finalize(be->sys);
        free(be->sys);
        be->sys = NULL;
    }
    if (be->esys != NULL) {
        /* We own the TCTI, so this frees memory and sends nothing. */
        Esys_Finalize(&be->esys);
        be->esys = NULL;
    }
    close_tcti(be, talk);
    be->dead = false;
    be->stale = false;
}

/* ---- entry points ---- */

CK_RV ksp_tpm_open(const struct ksp_config *cfg, struct ksp_backend **out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_backend *be = NULL;

    if (out == NULL) {
        return CKR_ARGUMENTS_BAD;
    }
    ksp_tpm_quiet_tss();
    be = calloc(1, sizeof(*be));
    if (be == NULL) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    if (pthread_mutex_init(&be->lock, NULL) != 0) {
        free(be);
        be = NULL;
        rv = CKR_CANT_LOCK;
        goto out;
    }
    be->pid = getpid();
    be->primary = ESYS_TR_NONE;
    be->xlock_fd = -1;
    for (int i = 0; i < KSP_TPM_HOT_KEYS; i++) {
        be->hot[i].h = ESYS_TR_NONE;
    }
    be->caps.hardware = CK_TRUE;
    if (cfg != NULL && cfg->tcti != NULL && cfg->tcti[0] != '\0') {
        be->tcti_conf = strdup(cfg->tcti);
        if (be->tcti_conf == NULL) {
            rv = CKR_HOST_MEMORY;
            goto out;
        }
    }
    if (cfg != NULL && cfg->store_root != NULL && cfg->store_root[0] != '\0') {
        if (asprintf(&be->caps_path, "%s/.tpm-caps", cfg->store_root) < 0) {
            be->caps_path = NULL;
            rv = CKR_HOST_MEMORY;
            goto out;
        }
    }
    {
        char name[32];
        const char *args = NULL;
        const char *conf = be->tcti_conf != NULL ? be->tcti_conf : TCTI_DEVICE_DEFAULT;

        tcti_name(conf, name, sizeof(name), &args);
        /* The wrapped TCTI of a wrapper ("<lib>:swtpm:path=...") counts. */
        be->xlock_wanted = be->tcti_conf != NULL && !behind_rm(name, args) &&
                           strstr(be->tcti_conf, "tabrmd") == NULL &&
                           strstr(be->tcti_conf, "tpmrm") == NULL;
        rv = ksp_tpm_xlock_init(be, name, args, cfg != NULL ? cfg->store_root : NULL);
        if (rv != CKR_OK) {
            goto out;
        }
    }
    /* No TPM I/O here: open() must stay cheap; we connect on first need. */
    *out = be;
    be = NULL;
    rv = CKR_OK;
out:
    if (be != NULL) {
        ksp_tpm_close(be);
    }
    return rv;
}

static void free_instance(struct ksp_backend *be)
{
    ksp_tpm_xlock_free(be);
    free(be->tcti_conf);
    free(be->caps_path);
    free(be);
}

void ksp_tpm_close(struct ksp_backend *be)
{
    struct ksp_tpm_call call;

    if (be == NULL) {
        return;
    }
    if (be->pid != getpid()) {
        ksp_tpm_forget(be);
        return;
    }
    ksp_tpm_lock(be, &call);
    disconnect_inlock(be, true);
    ksp_tpm_unlock(be, &call);
    pthread_mutex_destroy(&be->lock);
    free_instance(be);
}

void ksp_tpm_forget(struct ksp_backend *be)
{
    if (be == NULL) {
        return;
    }
    /* No lock: the thread that held it may not exist in this process. Not
     * destroyed either, for the same reason (a Linux mutex owns nothing). */
    disconnect_inlock(be, false);
    free_instance(be);
}

CK_RV ksp_tpm_identity(struct ksp_backend *be, struct ksp_tpm_identity *out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_tpm_call call;

    if (be == NULL || out == NULL) {
        return CKR_ARGUMENTS_BAD;
    }
    ksp_tpm_lock(be, &call);
    rv = CKR_OK;
    if (!be->ident_valid) {
        /* backend.h: no TPM is CKR_OK with present FALSE and the reason. */
        rv = ksp_tpm_connect_inlock(be);
        rv = rv == CKR_HOST_MEMORY ? rv : CKR_OK;
    }
    if (rv == CKR_OK) {
        *out = be->ident;
    }
    ksp_tpm_unlock(be, &call);
    return rv;
}
