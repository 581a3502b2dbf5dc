/*
 * The on-disk store (DESIGN.md §5): token directories, object files, the
 * metadata file and the generation counter. Record encoding lives in
 * store_codec.c; this file owns the file system side.
 *
 * Writers: flock(LOCK_EX) on <tokdir>/.lock around "write temp file, fsync,
 * rename, fsync directory, bump generation", so a crash leaves the old or the
 * new file and the counter never goes backwards. Readers take no lock (the
 * store may be read-only), never follow a symlink for the last component,
 * refuse non-regular and oversized files, and skip corrupt objects.
 *
 * Read-side errors: a missing token directory or metadata file is
 * CKR_TOKEN_NOT_PRESENT, a corrupt metadata file CKR_DATA_INVALID, other I/O
 * errors CKR_DEVICE_ERROR. Write-side errors follow store.h.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "log.h"
#include "ossl_ctx.h"
#include "secmem.h"
#include "store.h"
#include "store_codec.h"

#define AREA          "store"
#define LOCK_NAME     ".lock"
#define META_NAME     "token.meta"
#define GEN_NAME      "generation"
#define TMP_PREFIX    ".tmp."
#define OBJ_SUFFIX    ".obj"
#define STALE_TMP_SEC 60

/* ---- helpers ---- */

/* store.h: how a failed write is reported. */
static CK_RV write_rv(int e)
{
    switch (e) {
    case EROFS:
    case EACCES:
    case EPERM:
        return CKR_TOKEN_WRITE_PROTECTED;
    case ENOSPC:
    case EDQUOT:
        return CKR_DEVICE_MEMORY;
    case ENOMEM:
        return CKR_HOST_MEMORY;
    default:
        return CKR_DEVICE_ERROR;
    }
}

static CK_RV read_rv(int e)
{
    if (e == ENOENT)
        return CKR_TOKEN_NOT_PRESENT;
    if (e == ENOMEM)
        return CKR_HOST_MEMORY;
    return CKR_DEVICE_ERROR;
}

static bool is_hex_lower(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static bool valid_id(const char *id)
{
    return id && strnlen(id, KSP_OBJID_LEN + 1) == KSP_OBJID_LEN && is_hex_lower(id, KSP_OBJID_LEN);
}

/* "<id>.obj" with a well-formed id. */
static bool obj_name(const char *name)
{
    size_t n = strlen(name);
    return n == KSP_OBJID_LEN + strlen(OBJ_SUFFIX) && is_hex_lower(name, KSP_OBJID_LEN) &&
           strcmp(name + KSP_OBJID_LEN, OBJ_SUFFIX) == 0;
}

static CK_RV random_bytes(uint8_t *p, size_t n)
{
    OSSL_LIB_CTX *ctx = ksp_ossl_ctx();
    if (!ctx || RAND_bytes_ex(ctx, p, n, 0) != 1)
        return CKR_FUNCTION_FAILED;
    return CKR_OK;
}

static void to_hex(const uint8_t *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 0xf];
    }
    out[2 * n] = '\0';
}

static int open_dir(const char *path)
{
    return open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static int write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return errno;
        if (w == 0)
            return EIO;
        p += w;
        len -= (size_t)w;
    }
    return 0;
}

/*
 * Read a whole regular file of at most max bytes relative to dirfd without
 * following a final symlink. Returns 0 or an errno (EFBIG: too large,
 * EINVAL: not a regular file).
 */
static int read_file(int dirfd, const char *name, size_t max, uint8_t **data, size_t *len)
{
    int err = 0;
    uint8_t *buf = NULL;
    size_t got = 0;
    struct stat st;
    /* O_NONBLOCK: opening a FIFO planted in the store must not hang. */
    int fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return errno;
    if (fstat(fd, &st) != 0) {
        err = errno;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        err = EINVAL;
        goto out;
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > max) {
        err = EFBIG;
        goto out;
    }
    /* One byte more than allowed, so a file that grew is noticed. */
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        err = ENOMEM;
        goto out;
    }
    for (;;) {
        size_t room = (size_t)st.st_size + 1 - got;
        if (room == 0)
            break;
        ssize_t r = read(fd, buf + got, room);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            err = errno;
            goto out;
        }
        if (r == 0)
            break;
        got += (size_t)r;
    }
    if (got != (size_t)st.st_size) {
        err = EIO; /* changed under us: atomic writers never do this */
        goto out;
    }
    *data = buf;
    *len = got;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return err;
}

/* ---- writer side ---- */

/* Take the writer lock of a token directory; *lockfd is closed to release. */
static CK_RV lock_take(int dirfd, int *lockfd)
{
    int fd = openat(dirfd, LOCK_NAME, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
    if (fd < 0) {
        int e = errno;
        ksp_debug(AREA, "cannot open lock file: %s", strerror(e));
        return write_rv(e);
    }
    (void)fchmod(fd, 0600); /* umask may have narrowed it; another owner: EPERM, harmless */
    while (flock(fd, LOCK_EX) != 0) {
        if (errno != EINTR) {
            int e = errno;
            close(fd);
            ksp_err(AREA, "flock: %s", strerror(e));
            return CKR_DEVICE_ERROR;
        }
    }
    *lockfd = fd;
    return CKR_OK;
}

/*
 * Replace <dirfd>/name atomically with data: temp file, fsync, rename, fsync
 * of the directory (DESIGN.md §5). Caller holds the lock. *renamed (if not
 * NULL) is set once the new file is in place, even if a later step fails.
 */
static CK_RV write_atomic_inlock(int dirfd, const char *name, const uint8_t *data, size_t len,
                                 bool *renamed)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    char tmp[NAME_MAX + 1];
    uint8_t rnd[4];
    char rhex[9];
    int fd = -1;
    int err = 0;

    rv = random_bytes(rnd, sizeof(rnd));
    if (rv != CKR_OK)
        return rv;
    to_hex(rnd, sizeof(rnd), rhex);
    /* ".tmp.<id>.<pid>.<rand>": the id part without ".obj", so a leftover is
     * never mistaken for an object. */
    size_t nl = strlen(name);
    size_t sl = strlen(OBJ_SUFFIX);
    int keep = (int)(nl > sl && strcmp(name + nl - sl, OBJ_SUFFIX) == 0 ? nl - sl : nl);
    snprintf(tmp, sizeof(tmp), "%s%.*s.%ld.%s", TMP_PREFIX, keep, name, (long)getpid(), rhex);

    fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0600);
    if (fd < 0) {
        err = errno;
        goto fail;
    }
    /* Mode must not depend on the host's umask. */
    if (fchmod(fd, 0600) != 0) {
        err = errno;
        goto fail;
    }
    err = write_all(fd, data, len);
    if (err)
        goto fail;
    if (fsync(fd) != 0) {
        err = errno;
        goto fail;
    }
    if (close(fd) != 0) {
        fd = -1;
        err = errno;
        goto fail;
    }
    fd = -1;
    if (renameat(dirfd, tmp, dirfd, name) != 0) {
        err = errno;
        goto fail;
    }
    if (renamed)
        *renamed = true;
    /* The rename is durable only once the directory is. */
    if (fsync(dirfd) != 0 && errno != EINVAL) {
        err = errno;
        ksp_err(AREA, "fsync of token directory after writing %s: %s", name, strerror(err));
        return write_rv(err);
    }
    return CKR_OK;
fail:
    if (fd >= 0)
        close(fd);
    (void)unlinkat(dirfd, tmp, 0);
    ksp_err(AREA, "cannot write %s: %s", name, strerror(err));
    return write_rv(err);
}

/* Read the counter; a missing file is 0, a corrupt one is reported. */
static CK_RV gen_read(int dirfd, uint64_t *gen)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int err = read_file(dirfd, GEN_NAME, KSP_STORE_GEN_LEN, &buf, &len);
    if (err == ENOENT) {
        *gen = 0;
        return CKR_OK;
    }
    if (err == EFBIG)
        return CKR_DATA_INVALID;
    if (err)
        return read_rv(err);
    CK_RV rv = ksp_store_gen_decode(buf, len, gen);
    free(buf);
    return rv;
}

/* Every write bumps the counter so other processes notice (DESIGN.md §5). */
/* gens (may be NULL): the counter before and after the bump. */
static CK_RV gen_bump_inlock(int dirfd, uint64_t gens[2])
{
    CK_RV rv = CKR_GENERAL_ERROR;
    uint64_t gen = 0;
    uint8_t rec[KSP_STORE_GEN_LEN];
    rv = gen_read(dirfd, &gen);
    if (gens)
        gens[0] = rv == CKR_OK ? gen : UINT64_MAX;
    if (rv == CKR_DATA_INVALID) {
        /* Restart from the clock: far above any count a token reaches, and
         * different from whatever readers last saw. */
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        gen = (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
        ksp_warn(AREA, "corrupt generation file replaced");
    } else if (rv != CKR_OK) {
        return rv;
    }
    gen++;
    if (gen == 0 || gen == UINT64_MAX)
        gen = 1;
    rv = ksp_store_gen_encode(gen, rec);
    if (rv != CKR_OK)
        return rv;
    /* Overwrite the existing record in place: it needs no new space, so a
     * full disk cannot stop a write that did fit (or a delete) at this last
     * step. A torn record fails its checksum; readers then just reload. */
    int fd = openat(dirfd, GEN_NAME, O_WRONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
    if (fd >= 0) {
        struct stat st;
        int err = 0;
        if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size != (off_t)sizeof(rec))
            err = EINVAL; /* not ours or not the current size: replace it */
        else if (pwrite(fd, rec, sizeof(rec), 0) != (ssize_t)sizeof(rec) || fsync(fd) != 0)
            err = errno ? errno : EIO;
        close(fd);
        if (!err) {
            if (gens)
                gens[1] = gen;
            return CKR_OK;
        }
        if (err != EINVAL) {
            ksp_err(AREA, "cannot update the generation counter: %s", strerror(err));
            return write_rv(err);
        }
    }
    rv = write_atomic_inlock(dirfd, GEN_NAME, rec, sizeof(rec), NULL);
    if (gens)
        gens[1] = gen;
    return rv;
}

/* ".tmp.<name without .obj>.bak.<pid>": the old version of name while it is
 * replaced; a leftover is swept like any stale temporary file. */
static void backup_name(const char *name, char *out, size_t max)
{
    size_t nl = strlen(name);
    size_t sl = strlen(OBJ_SUFFIX);
    int keep = (int)(nl > sl && strcmp(name + nl - sl, OBJ_SUFFIX) == 0 ? nl - sl : nl);
    snprintf(out, max, "%s%.*s.bak.%ld", TMP_PREFIX, keep, name, (long)getpid());
}

/*
 * Write one file (or remove an object if data is NULL) and bump the counter,
 * under the lock. All or nothing: a call that fails leaves name as it was.
 * The old version is kept under a backup name (a hard link, or the removed
 * file renamed) until the counter is bumped, so a failure after the new
 * version became visible (directory fsync, counter) is undone.
 */
static CK_RV update_inlock(int dirfd, const char *name, const uint8_t *data, size_t len,
                           uint64_t gens[2])
{
    CK_RV rv = CKR_GENERAL_ERROR;
    char bak[NAME_MAX + 1];
    bool have_bak = false, changed = false;
    backup_name(name, bak, sizeof(bak));
    (void)unlinkat(dirfd, bak, 0); /* left by a crashed writer with our pid */
    if (data) {
        if (linkat(dirfd, name, dirfd, bak, 0) == 0) {
            have_bak = true;
        } else if (errno != ENOENT) {
            int e = errno;
            ksp_err(AREA, "cannot keep the old %s: %s", name, strerror(e));
            rv = write_rv(e);
            goto out;
        }
        rv = write_atomic_inlock(dirfd, name, data, len, &changed);
    } else if (renameat(dirfd, name, dirfd, bak) == 0) {
        have_bak = changed = true;
        rv = fsync(dirfd) == 0 || errno == EINVAL ? CKR_OK : write_rv(errno);
    } else if (errno == ENOENT) {
        rv = CKR_OK; /* someone else deleted it: still bump, harmless */
    } else {
        int e = errno;
        ksp_err(AREA, "cannot remove %s: %s", name, strerror(e));
        rv = write_rv(e);
    }
    if (rv == CKR_OK)
        rv = gen_bump_inlock(dirfd, gens);
    if (rv != CKR_OK && changed) {
        /* Undo: put the old version back (or remove the new file). */
        int r = have_bak ? renameat(dirfd, bak, dirfd, name) : unlinkat(dirfd, name, 0);
        if (r == 0) {
            have_bak = false;
            (void)fsync(dirfd);
            ksp_warn(AREA, "%s: update undone after %s", name, ksp_rv_name(rv));
        } else {
            ksp_err(AREA, "%s: cannot undo a failed update (%s): %s; the old version is %s", name,
                    ksp_rv_name(rv), strerror(errno), have_bak ? bak : "lost");
            have_bak = false; /* keep it */
        }
    }
out:
    if (have_bak)
        (void)unlinkat(dirfd, bak, 0);
    return rv;
}

/* Open and lock a token directory for writing; close both fds to release. */
static CK_RV open_locked(const char *tokdir, int *dirfd, int *lockfd)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    int fd = open_dir(tokdir);
    if (fd < 0) {
        int e = errno;
        ksp_err(AREA, "cannot open token directory %s: %s", tokdir, strerror(e));
        return e == ENOENT ? CKR_TOKEN_NOT_PRESENT : write_rv(e);
    }
    rv = lock_take(fd, lockfd);
    if (rv != CKR_OK) {
        close(fd);
        return rv;
    }
    *dirfd = fd;
    return CKR_OK;
}

static CK_RV locked_update(const char *tokdir, const char *name, const uint8_t *data, size_t len,
                           uint64_t gens[2])
{
    int dirfd = -1, lockfd = -1;
    CK_RV rv = open_locked(tokdir, &dirfd, &lockfd);
    if (rv != CKR_OK)
        return rv;
    /* LOCKED: token directory */
    rv = update_inlock(dirfd, name, data, len, gens);
    close(lockfd);
    close(dirfd);
    return rv;
}

/* ---- public: ids and tokens ---- */

CK_RV ksp_store_new_id(char id[KSP_OBJID_LEN + 1])
{
    uint8_t rnd[KSP_OBJID_LEN / 2];
    CK_RV rv = random_bytes(rnd, sizeof(rnd));
    if (rv != CKR_OK)
        return rv;
    to_hex(rnd, sizeof(rnd), id);
    return CKR_OK;
}

char *ksp_store_token_dir(const char *root, const char *serial)
{
    if (!root || !serial)
        return NULL;
    size_t rl = strlen(root);
    while (rl > 1 && root[rl - 1] == '/')
        rl--;
    size_t sl = strlen(serial);
    char *p = malloc(rl + 1 + sl + 1);
    if (!p)
        return NULL;
    memcpy(p, root, rl);
    p[rl] = '/';
    memcpy(p + rl + 1, serial, sl + 1);
    return p;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

CK_RV ksp_store_list_tokens(const char *root, char ***serials, size_t *n)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    char **list = NULL;
    size_t cnt = 0, cap = 0;
    DIR *d = NULL;
    int dirfd;

    if (!root || !serials || !n)
        return CKR_ARGUMENTS_BAD;
    dirfd = open_dir(root);
    if (dirfd < 0 && errno == ENOENT) {
        *serials = NULL; /* no store yet: no tokens */
        *n = 0;
        return CKR_OK;
    }
    if (dirfd < 0) {
        ksp_warn(AREA, "cannot open store root %s: %s", root, strerror(errno));
        rv = read_rv(errno);
        goto out;
    }
    d = fdopendir(dirfd);
    if (!d) {
        rv = read_rv(errno);
        close(dirfd);
        goto out;
    }
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno) {
                rv = read_rv(errno);
                goto out;
            }
            break;
        }
        if (strlen(de->d_name) != KSP_SERIAL_LEN || !is_hex_lower(de->d_name, KSP_SERIAL_LEN))
            continue;
        struct stat st;
        if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISDIR(st.st_mode))
            continue;
        char meta[NAME_MAX + sizeof("/" META_NAME)];
        snprintf(meta, sizeof(meta), "%s/%s", de->d_name, META_NAME);
        if (fstatat(dirfd, meta, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (cnt == cap) {
            size_t ncap = cap ? cap * 2 : 8;
            char **nl = realloc(list, ncap * sizeof(*nl));
            if (!nl) {
                rv = CKR_HOST_MEMORY;
                goto out;
            }
            list = nl;
            cap = ncap;
        }
        list[cnt] = strdup(de->d_name);
        if (!list[cnt]) {
            rv = CKR_HOST_MEMORY;
            goto out;
        }
        cnt++;
    }
    if (cnt > 1)
        qsort(list, cnt, sizeof(*list), cmp_str);
    *serials = list;
    *n = cnt;
    list = NULL;
    cnt = 0;
    rv = CKR_OK;
out:
    for (size_t i = 0; i < cnt; i++)
        free(list[i]);
    free(list);
    if (d)
        closedir(d);
    return rv;
}

/* mkdir -p with 0700 for every directory we create (umask-independent). */
static int mkdir_p(const char *path)
{
    char *p = strdup(path);
    int err = 0;
    if (!p)
        return ENOMEM;
    size_t len = strlen(p);
    for (size_t i = 1; i <= len && !err; i++) {
        if (p[i] != '/' && p[i] != '\0')
            continue;
        char c = p[i];
        p[i] = '\0';
        if (mkdir(p, 0700) == 0) {
            if (chmod(p, 0700) != 0)
                err = errno;
        } else if (errno == EEXIST) {
            struct stat st;
            if (stat(p, &st) != 0)
                err = errno;
            else if (!S_ISDIR(st.st_mode))
                err = ENOTDIR;
        } else {
            err = errno;
        }
        p[i] = c;
    }
    free(p);
    return err;
}

CK_RV ksp_store_token_create(const char *root, const struct ksp_token_meta *meta)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    char *tokdir = NULL;
    int err;

    if (!root || !root[0] || !meta)
        return CKR_ARGUMENTS_BAD;
    if (strnlen(meta->serial, sizeof(meta->serial)) != KSP_SERIAL_LEN ||
        !is_hex_lower(meta->serial, KSP_SERIAL_LEN))
        return CKR_ARGUMENTS_BAD;
    err = mkdir_p(root);
    if (err) {
        ksp_err(AREA, "cannot create store root %s: %s", root, strerror(err));
        rv = write_rv(err);
        goto out;
    }
    tokdir = ksp_store_token_dir(root, meta->serial);
    if (!tokdir) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    err = mkdir_p(tokdir);
    if (err) {
        ksp_err(AREA, "cannot create token directory %s: %s", tokdir, strerror(err));
        rv = write_rv(err);
        goto out;
    }
    rv = ksp_store_meta_write(tokdir, meta);
    if (rv == CKR_OK)
        ksp_info(AREA, "created token %s in %s", meta->serial, root);
out:
    free(tokdir);
    return rv;
}

CK_RV ksp_store_token_clear(const char *tokdir)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    int lockfd = -1;
    DIR *d = NULL;
    int dirfd = -1;

    if (!tokdir)
        return CKR_ARGUMENTS_BAD;
    dirfd = open_dir(tokdir);
    if (dirfd < 0) {
        rv = errno == ENOENT ? CKR_TOKEN_NOT_PRESENT : write_rv(errno);
        goto out;
    }
    rv = lock_take(dirfd, &lockfd);
    if (rv != CKR_OK)
        goto out;
    /* LOCKED: token directory */
    int scanfd = dup(dirfd);
    if (scanfd < 0 || !(d = fdopendir(scanfd))) {
        if (scanfd >= 0)
            close(scanfd);
        rv = write_rv(errno);
        goto out;
    }
    rv = CKR_OK;
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno)
                rv = CKR_DEVICE_ERROR;
            break;
        }
        if (!obj_name(de->d_name))
            continue;
        if (unlinkat(dirfd, de->d_name, 0) != 0 && errno != ENOENT) {
            int e = errno;
            ksp_err(AREA, "cannot remove %s: %s", de->d_name, strerror(e));
            rv = write_rv(e);
            break;
        }
    }
    if (fsync(dirfd) != 0 && errno != EINVAL && rv == CKR_OK)
        rv = write_rv(errno);
    /* Bump even after a partial clear: other processes must re-read. */
    CK_RV brv = gen_bump_inlock(dirfd, NULL);
    if (rv == CKR_OK)
        rv = brv;
out:
    if (d)
        closedir(d);
    if (lockfd >= 0)
        close(lockfd);
    if (dirfd >= 0)
        close(dirfd);
    return rv;
}

/* ---- metadata and generation ---- */

CK_RV ksp_store_meta_read(const char *tokdir, struct ksp_token_meta *out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    uint8_t *buf = NULL;
    size_t len = 0;
    int dirfd = -1;
    int err;

    if (!tokdir || !out)
        return CKR_ARGUMENTS_BAD;
    dirfd = open_dir(tokdir);
    if (dirfd < 0) {
        rv = read_rv(errno);
        goto out;
    }
    err = read_file(dirfd, META_NAME, KSP_STORE_MAX_FILE, &buf, &len);
    if (err == EFBIG || err == EINVAL || err == ELOOP) {
        ksp_warn(AREA, "%s/%s is not a regular file of sane size", tokdir, META_NAME);
        rv = CKR_DATA_INVALID;
        goto out;
    }
    if (err) {
        if (err != ENOENT)
            ksp_warn(AREA, "cannot read %s/%s: %s", tokdir, META_NAME, strerror(err));
        rv = read_rv(err);
        goto out;
    }
    rv = ksp_store_meta_decode(buf, len, out);
    if (rv == CKR_DATA_INVALID)
        ksp_warn(AREA, "corrupt token metadata in %s", tokdir);
out:
    if (buf) {
        ksp_wipe(buf, len); /* may hold a PIN-less token's TWK */
        free(buf);
    }
    if (dirfd >= 0)
        close(dirfd);
    return rv;
}

CK_RV ksp_store_meta_write(const char *tokdir, const struct ksp_token_meta *meta)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    uint8_t *buf = NULL;
    size_t len = 0;

    if (!tokdir || !meta)
        return CKR_ARGUMENTS_BAD;
    rv = ksp_store_meta_encode(meta, &buf, &len);
    if (rv != CKR_OK)
        goto out;
    rv = locked_update(tokdir, META_NAME, buf, len, NULL);
out:
    if (buf) {
        ksp_wipe(buf, len);
        free(buf);
    }
    return rv;
}

CK_RV ksp_store_meta_pin_count(const char *tokdir, bool so, enum ksp_pin_count op, uint32_t max,
                               struct ksp_token_meta *out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_token_meta m;
    uint8_t *buf = NULL;
    size_t len = 0;
    int dirfd = -1, lockfd = -1;

    if (!tokdir || !out)
        return CKR_ARGUMENTS_BAD;
    memset(&m, 0, sizeof(m));
    rv = open_locked(tokdir, &dirfd, &lockfd);
    if (rv != CKR_OK)
        return rv;
    /* LOCKED: token directory; the read-modify-write below is atomic with
     * respect to every other writer, so no process's count is lost. */
    rv = ksp_store_meta_read(tokdir, &m);
    if (rv != CKR_OK)
        goto out;
    uint32_t *fails = so ? &m.so_fails : &m.user_fails;
    uint32_t before = *fails;
    if (op == KSP_PIN_COUNT_CHARGE) {
        if (*fails >= max) {
            *out = m;
            rv = CKR_PIN_LOCKED;
            goto out;
        }
        (*fails)++;
    } else if (op == KSP_PIN_COUNT_RESET) {
        *fails = 0;
    } else if (*fails > 0) {
        (*fails)--;
    }
    if (*fails != before) {
        rv = ksp_store_meta_encode(&m, &buf, &len);
        if (rv == CKR_OK)
            rv = update_inlock(dirfd, META_NAME, buf, len, NULL);
    }
    if (rv == CKR_OK)
        *out = m;
out:
    if (buf) {
        ksp_wipe(buf, len);
        free(buf);
    }
    ksp_wipe(&m, sizeof(m));
    close(lockfd);
    close(dirfd);
    return rv;
}

CK_RV ksp_store_generation(const char *tokdir, uint64_t *gen)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    uint64_t g = 0;
    if (!tokdir || !gen)
        return CKR_ARGUMENTS_BAD;
    int dirfd = open_dir(tokdir);
    if (dirfd < 0) {
        if (errno == ENOENT) {
            *gen = 0;
            return CKR_OK;
        }
        return read_rv(errno);
    }
    rv = gen_read(dirfd, &g);
    close(dirfd);
    if (rv == CKR_DATA_INVALID) {
        /* Readers cannot repair it (no lock, maybe read-only); the next write
         * does. Report a value no valid counter holds so caches reload. */
        ksp_warn(AREA, "corrupt generation file in %s", tokdir);
        g = UINT64_MAX;
        rv = CKR_OK;
    }
    if (rv == CKR_OK)
        *gen = g;
    return rv;
}

/* ---- objects ---- */

void ksp_store_obj_free_all(struct ksp_store_obj *objs, size_t n)
{
    if (!objs)
        return;
    for (size_t i = 0; i < n; i++)
        ksp_store_obj_free(&objs[i]);
    free(objs);
}

static int cmp_obj(const void *a, const void *b)
{
    return strcmp(((const struct ksp_store_obj *)a)->id, ((const struct ksp_store_obj *)b)->id);
}

/*
 * Remove temp files a crashed writer left behind, but only if the writer lock
 * is free right now (never wait: readers take no locks) and they are old.
 */
static void sweep_tmp(int dirfd, char **names, size_t n)
{
    int fd = openat(dirfd, LOCK_NAME, O_RDWR | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
    if (fd < 0)
        return;
    if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
        /* LOCKED: token directory; no writer is mid-write now */
        for (size_t i = 0; i < n; i++)
            if (unlinkat(dirfd, names[i], 0) == 0)
                ksp_info(AREA, "removed stale temporary file %s", names[i]);
    }
    close(fd);
}

/* Load one object file; CKR_DATA_INVALID (logged) means "skip it". */
static CK_RV load_one(int dirfd, const char *tokdir, const char *name, struct ksp_store_obj *out)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    int err = read_file(dirfd, name, KSP_STORE_MAX_FILE, &buf, &len);
    if (err == ENOMEM)
        return CKR_HOST_MEMORY;
    if (err == ENOENT)
        return CKR_DATA_INVALID; /* deleted since readdir: not an error, not logged */
    if (err) {
        ksp_warn(AREA, "skipping %s/%s: %s", tokdir, name,
                 err == EFBIG    ? "too large"
                 : err == EINVAL ? "not a regular file"
                                 : strerror(err));
        return CKR_DATA_INVALID;
    }
    CK_RV rv = ksp_store_obj_decode(buf, len, out);
    free(buf);
    if (rv == CKR_DATA_INVALID) {
        ksp_warn(AREA, "skipping corrupt object file %s/%s", tokdir, name);
        return rv;
    }
    if (rv != CKR_OK)
        return rv;
    /* The name is the object's identity: a file copied under another name
     * would alias an object. */
    if (strncmp(out->id, name, KSP_OBJID_LEN) != 0) {
        ksp_warn(AREA, "skipping %s/%s: holds object %s", tokdir, name, out->id);
        ksp_store_obj_free(out);
        return CKR_DATA_INVALID;
    }
    return CKR_OK;
}

CK_RV ksp_store_obj_load_all(const char *tokdir, struct ksp_store_obj **objs, size_t *n)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_store_obj *list = NULL;
    size_t cnt = 0, cap = 0;
    char **stale = NULL;
    size_t nstale = 0;
    DIR *d = NULL;
    int dirfd = -1;
    time_t now = time(NULL);

    if (!tokdir || !objs || !n)
        return CKR_ARGUMENTS_BAD;
    dirfd = open_dir(tokdir);
    if (dirfd < 0) {
        rv = read_rv(errno);
        goto out;
    }
    int scanfd = dup(dirfd);
    if (scanfd < 0 || !(d = fdopendir(scanfd))) {
        if (scanfd >= 0)
            close(scanfd);
        rv = read_rv(errno);
        goto out;
    }
    for (;;) {
        errno = 0;
        struct dirent *de = readdir(d);
        if (!de) {
            if (errno) {
                rv = read_rv(errno);
                goto out;
            }
            break;
        }
        const char *name = de->d_name;
        if (strncmp(name, TMP_PREFIX, strlen(TMP_PREFIX)) == 0) {
            struct stat st;
            if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
                now - st.st_mtime > STALE_TMP_SEC) {
                char **ns = realloc(stale, (nstale + 1) * sizeof(*ns));
                if (ns) {
                    stale = ns;
                    stale[nstale] = strdup(name);
                    if (stale[nstale])
                        nstale++;
                }
            }
            continue;
        }
        size_t nl = strlen(name);
        if (nl < strlen(OBJ_SUFFIX) || strcmp(name + nl - strlen(OBJ_SUFFIX), OBJ_SUFFIX) != 0)
            continue;
        if (!obj_name(name)) {
            ksp_warn(AREA, "skipping %s/%s: not an object file name", tokdir, name);
            continue;
        }
        if (cnt == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            struct ksp_store_obj *nv = realloc(list, ncap * sizeof(*nv));
            if (!nv) {
                rv = CKR_HOST_MEMORY;
                goto out;
            }
            list = nv;
            cap = ncap;
        }
        memset(&list[cnt], 0, sizeof(list[cnt]));
        rv = load_one(dirfd, tokdir, name, &list[cnt]);
        if (rv == CKR_OK)
            cnt++;
        else if (rv != CKR_DATA_INVALID)
            goto out;
    }
    if (nstale)
        sweep_tmp(dirfd, stale, nstale);
    if (cnt > 1)
        qsort(list, cnt, sizeof(*list), cmp_obj);
    *objs = list;
    *n = cnt;
    list = NULL;
    cnt = 0;
    rv = CKR_OK;
out:
    ksp_store_obj_free_all(list, cnt);
    for (size_t i = 0; i < nstale; i++)
        free(stale[i]);
    free(stale);
    if (d)
        closedir(d);
    if (dirfd >= 0)
        close(dirfd);
    return rv;
}

CK_RV ksp_store_obj_write(const char *tokdir, const struct ksp_store_obj *o)
{
    return ksp_store_obj_write_gen(tokdir, o, NULL);
}

CK_RV ksp_store_obj_write_gen(const char *tokdir, const struct ksp_store_obj *o, uint64_t gens[2])
{
    CK_RV rv = CKR_GENERAL_ERROR;
    uint8_t *buf = NULL;
    size_t len = 0;
    char name[KSP_OBJID_LEN + sizeof(OBJ_SUFFIX)];

    if (!tokdir || !o || !valid_id(o->id))
        return CKR_ARGUMENTS_BAD;
    rv = ksp_store_obj_encode(o, &buf, &len);
    if (rv != CKR_OK)
        goto out;
    snprintf(name, sizeof(name), "%s%s", o->id, OBJ_SUFFIX);
    rv = locked_update(tokdir, name, buf, len, gens);
out:
    free(buf);
    return rv;
}

CK_RV ksp_store_obj_delete(const char *tokdir, const char *id)
{
    return ksp_store_obj_delete_gen(tokdir, id, NULL);
}

CK_RV ksp_store_obj_delete_gen(const char *tokdir, const char *id, uint64_t gens[2])
{
    char name[KSP_OBJID_LEN + sizeof(OBJ_SUFFIX)];
    if (!tokdir || !valid_id(id))
        return CKR_ARGUMENTS_BAD;
    snprintf(name, sizeof(name), "%s%s", id, OBJ_SUFFIX);
    return locked_update(tokdir, name, NULL, 0, gens);
}
