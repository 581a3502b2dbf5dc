/*
 * The cross-process lock of a TPM without a resource manager (swtpm, mssim,
 * /dev/tpmN). Such a TPM has 3 transient object slots shared by every
 * process; without coordination two ksp11 processes that each need 2 slots
 * run into TPM_RC_OBJECT_MEMORY and must back off and retry. Instead each
 * entry point holds an exclusive flock(2) around its whole TPM command
 * sequence (ksp_tpm_lock .. ksp_tpm_unlock), so processes take turns and
 * multi-process use is deterministic.
 *
 * Where the lock lives: it must be the same file for every process that uses
 * that TPM, whatever its store, so it is named after the TPM:
 *   KSP11_TPM_LOCK if set (an explicit path);
 *   beside the socket for socket TCTIs: "<path>.ksp11-lock" (swtpm, mssim);
 *   /run/lock/ksp11-<device>.lock for a device (/dev/tpm0);
 *   else "<store root>/.tpm-lock" (then only processes sharing that store
 *   coordinate: still correct for them).
 * The file holds a small record (hostile input: validated) naming the last
 * holder and what it left loaded: only with KSP11_TPM_KEEP=1 does a process
 * keep its primary, keys and session loaded between calls (a TPM used by
 * ksp11 alone); the next holder that is not that process flushes them (they
 * may belong to a process that has exited), and the owner, when it takes the
 * lock again and finds another name in the record, forgets its cache.
 * Behind a resource manager none of this is needed and nothing is locked.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "log.h"
#include "swcrypto.h"
#include "tpm_int.h"

#define AREA        KSP_TPM_AREA
#define REC_MAGIC   0x4b53504cu /* "KSPL" */
#define REC_VERSION 1u

struct rec {
    uint32_t magic;
    uint32_t version;
    uint64_t owner;
    uint32_t count;
    uint32_t handle[KSP_TPM_XLOCK_MAX];
};

/* "<...>path=<p>[,...]" -> p, for socket TCTIs. */
static bool socket_path(const char *conf, char *out, size_t max)
{
    const char *p = strstr(conf, "path=");
    if (p == NULL)
        return false;
    p += 5;
    size_t n = strcspn(p, ",");
    if (n == 0 || n + 1 > max)
        return false;
    memcpy(out, p, n);
    out[n] = '\0';
    return true;
}

static int open_lock(const char *path)
{
    return open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
}

CK_RV ksp_tpm_xlock_init(struct ksp_backend *be, const char *tcti_name, const char *tcti_args,
                         const char *store_root)
{
    char path[PATH_MAX];
    const char *env = secure_getenv("KSP11_TPM_LOCK");

    be->xlock_fd = -1;
    be->xlock_path = NULL;
    if (env != NULL && env[0] != '\0') {
        snprintf(path, sizeof(path), "%s", env);
    } else if (strcmp(tcti_name, "device") == 0) {
        const char *base = strrchr(tcti_args, '/');
        base = base != NULL ? base + 1 : tcti_args;
        snprintf(path, sizeof(path), "/run/lock/ksp11-%s.lock", base[0] ? base : "tpm");
        if (access("/run/lock", W_OK) != 0 && store_root != NULL)
            snprintf(path, sizeof(path), "%s/.tpm-lock", store_root);
    } else if (socket_path(tcti_args, path, sizeof(path) - 12)) {
        strcat(path, ".ksp11-lock");
    } else if (store_root != NULL) {
        snprintf(path, sizeof(path), "%s/.tpm-lock", store_root);
    } else {
        return CKR_OK; /* nowhere to coordinate: the retry path remains */
    }
    be->xlock_path = strdup(path);
    return be->xlock_path != NULL ? CKR_OK : CKR_HOST_MEMORY;
}

void ksp_tpm_xlock_free(struct ksp_backend *be)
{
    if (be->xlock_fd >= 0)
        close(be->xlock_fd);
    be->xlock_fd = -1;
    free(be->xlock_path);
    be->xlock_path = NULL;
}

void ksp_tpm_xlock_forget_fd(struct ksp_backend *be)
{
    /* A forked child shares the parent's open file description, and with it
     * the parent's flock: it must open its own. */
    if (be->xlock_fd >= 0)
        close(be->xlock_fd);
    be->xlock_fd = -1;
    be->xlock_held = false;
    be->xlock_owner = 0;
}

static bool flushable(uint32_t h)
{
    uint32_t type = h >> 24;
    /* Transient objects and HMAC/policy sessions only; never persistent
     * or NV handles, whatever the file says. */
    return type == 0x80u || type == 0x02u || type == 0x03u;
}

void ksp_tpm_xlock_take_inlock(struct ksp_backend *be)
{
    struct rec r;

    if (!be->xlock_wanted || be->xlock_path == NULL || be->xlock_held)
        return;
    if (be->xlock_owner == 0) {
        /* Who we are in the record: random, so a reused pid is not us. */
        if (ksp_random((uint8_t *)&be->xlock_owner, sizeof(be->xlock_owner)) != CKR_OK ||
            be->xlock_owner == 0)
            be->xlock_owner = ((uint64_t)getpid() << 32) | 1u;
    }
    if (be->xlock_fd < 0) {
        be->xlock_fd = open_lock(be->xlock_path);
        if (be->xlock_fd < 0) {
            ksp_debug(AREA, "TPM lock %s: %s (continuing without)", be->xlock_path,
                      strerror(errno));
            return;
        }
    }
    while (flock(be->xlock_fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            ksp_debug(AREA, "flock %s: %s", be->xlock_path, strerror(errno));
            return;
        }
    }
    be->xlock_held = true;
    memset(&r, 0, sizeof(r));
    if (pread(be->xlock_fd, &r, sizeof(r), 0) != (ssize_t)sizeof(r) || r.magic != REC_MAGIC ||
        r.version != REC_VERSION || r.count > KSP_TPM_XLOCK_MAX)
        memset(&r, 0, sizeof(r));
    if (r.owner == be->xlock_owner)
        return; /* nobody came between: what we keep loaded is still there */
    /* Someone else held the TPM since: what we kept was flushed by them. */
    ksp_tpm_hot_drop_inlock(be, false);
    if (be->keep_objects)
        ksp_tpm_primary_drop_inlock(be, false);
    be->nforeign = 0;
    for (uint32_t i = 0; i < r.count; i++)
        if (flushable(r.handle[i]))
            be->foreign[be->nforeign++] = r.handle[i];
    if (be->esys != NULL && !be->dead)
        ksp_tpm_xlock_flush_foreign_inlock(be);
}

void ksp_tpm_xlock_flush_foreign_inlock(struct ksp_backend *be)
{
    for (uint32_t i = 0; i < be->nforeign; i++) {
        TSS2_RC rc =
            be->sys != NULL ? Tss2_Sys_FlushContext(be->sys, be->foreign[i]) : TSS2_RC_SUCCESS;
        /* Gone already (TPM restarted, or its owner flushed it): fine. */
        ksp_debug(AREA, "flushed 0x%08x left by another process: 0x%x", be->foreign[i],
                  (unsigned)rc);
    }
    be->nforeign = 0;
}

void ksp_tpm_xlock_release_inlock(struct ksp_backend *be)
{
    struct rec r;
    TPM2_HANDLE h = 0;

    if (!be->xlock_held)
        return;
    memset(&r, 0, sizeof(r));
    r.magic = REC_MAGIC;
    r.version = REC_VERSION;
    r.owner = be->xlock_owner;
    if (be->esys != NULL && !be->dead) {
        for (int i = 0; i < KSP_TPM_HOT_KEYS; i++)
            if (be->hot[i].key != NULL && be->hot[i].h != ESYS_TR_NONE &&
                Esys_TR_GetTpmHandle(be->esys, be->hot[i].h, &h) == TSS2_RC_SUCCESS)
                r.handle[r.count++] = h;
        if (be->hsess.handle != 0)
            r.handle[r.count++] = be->hsess.handle;
        if (be->primary != ESYS_TR_NONE && !be->primary_persistent &&
            Esys_TR_GetTpmHandle(be->esys, be->primary, &h) == TSS2_RC_SUCCESS)
            r.handle[r.count++] = h;
    }
    if (pwrite(be->xlock_fd, &r, sizeof(r), 0) != (ssize_t)sizeof(r))
        ksp_debug(AREA, "TPM lock record: %s", strerror(errno));
    flock(be->xlock_fd, LOCK_UN);
    be->xlock_held = false;
}
