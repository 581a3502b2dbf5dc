/*
 * LD_PRELOAD fault injector for the store's write path: makes the Nth (and,
 * "sticky", every later) write-side file system call under one directory fail
 * with a chosen errno, as a full disk (ENOSPC), a failing disk (EIO) or a
 * read-only file system (EROFS) would. Runs anywhere, root or not.
 *
 * Write-side calls: open/openat/creat for writing or creating, write, pwrite,
 * fsync, fdatasync, ftruncate, fchmod, chmod, rename/renameat/renameat2,
 * unlink/unlinkat, mkdir/mkdirat, link/linkat. A call counts only when the
 * path (or the fd's path, via /proc/self/fd) lies under KSP_FAULT_DIR.
 *
 * Control, by environment (read at the first call) or from the test program
 * through dlsym(RTLD_DEFAULT, "ksp_fault_arm") and friends:
 *   KSP_FAULT_DIR=/path     only calls under this directory count
 *   KSP_FAULT_NTH=N         the Nth counted call fails (1 = the first); 0 = off
 *   KSP_FAULT_ERRNO=ENOSPC|EIO|EROFS|EACCES|EDQUOT   (default ENOSPC)
 *   KSP_FAULT_STICKY=1      every counted call from the Nth on fails
 *
 * A full disk fails only what needs space: creating files and directories,
 * links, writes that extend a file, fsync of a file created by this process.
 * Overwriting allocated bytes, renaming and removing still work, as on
 * ext4/xfs/tmpfs.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define EXPORT __attribute__((visibility("default")))

static char dir[PATH_MAX];
static size_t dirlen;
static atomic_long nth;
static atomic_long calls;
static atomic_long fired;
static atomic_int err = ENOSPC;
static atomic_bool sticky;
static pthread_once_t once = PTHREAD_ONCE_INIT;
static bool writes(int flags)
{
    return (flags & (O_WRONLY | O_RDWR | O_CREAT | O_TRUNC)) != 0;
}

/* fds opened with O_CREAT (the last open of that number) */
#define MAXFD 4096
static atomic_bool created[MAXFD];

static bool full_disk(void)
{
    int e = atomic_load(&err);
    return e == ENOSPC || e == EDQUOT;
}

static bool exists_at(int dfd, const char *path)
{
    struct stat st;
    return fstatat(dfd, path, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

/* Does this open make a new file (the only open a full disk refuses)? */
static bool creates(int dfd, const char *path, int flags)
{
    return (flags & O_CREAT) && !exists_at(dfd, path);
}

/* May this open be failed? Under a full disk only when it creates. */
static bool open_counts(int dfd, const char *path, int flags, bool *made)
{
    *made = creates(dfd, path, flags);
    return writes(flags) && (!full_disk() || *made);
}

static int track(int fd, bool made)
{
    if (fd >= 0 && fd < MAXFD)
        atomic_store(&created[fd], made);
    return fd;
}

/* Would this write need new space? */
static bool extends(int fd, size_t n, off_t off, bool at_pos)
{
    struct stat st;
    if (fstat(fd, &st) != 0)
        return true;
    if (at_pos)
        off = lseek(fd, 0, SEEK_CUR);
    return off < 0 || (off_t)(off + (off_t)n) > st.st_size;
}

static int parse_errno(const char *s)
{
    if (!s || !*s)
        return ENOSPC;
    if (!strcmp(s, "EIO"))
        return EIO;
    if (!strcmp(s, "EROFS"))
        return EROFS;
    if (!strcmp(s, "EACCES"))
        return EACCES;
    if (!strcmp(s, "EDQUOT"))
        return EDQUOT;
    if (!strcmp(s, "EPERM"))
        return EPERM;
    return ENOSPC;
}

static void init_env(void)
{
    const char *d = getenv("KSP_FAULT_DIR");
    if (d && *d && !realpath(d, dir))
        snprintf(dir, sizeof(dir), "%s", d);
    dirlen = strlen(dir);
    while (dirlen > 1 && dir[dirlen - 1] == '/')
        dir[--dirlen] = 0;
    const char *n = getenv("KSP_FAULT_NTH");
    atomic_store(&nth, n ? atol(n) : 0);
    atomic_store(&err, parse_errno(getenv("KSP_FAULT_ERRNO")));
    const char *st = getenv("KSP_FAULT_STICKY");
    atomic_store(&sticky, st && *st == '1');
}

/* ---- control API for test programs ---- */

EXPORT void ksp_fault_arm(long n, int e, int is_sticky)
{
    pthread_once(&once, init_env);
    atomic_store(&calls, 0);
    atomic_store(&fired, 0);
    atomic_store(&err, e);
    atomic_store(&sticky, is_sticky != 0);
    atomic_store(&nth, n);
}

EXPORT void ksp_fault_disarm(void)
{
    atomic_store(&nth, 0);
}

EXPORT long ksp_fault_calls(void)
{
    return atomic_load(&calls);
}

EXPORT long ksp_fault_fired(void)
{
    return atomic_load(&fired);
}

EXPORT void ksp_fault_set_dir(const char *d)
{
    pthread_once(&once, init_env);
    if (!realpath(d, dir))
        snprintf(dir, sizeof(dir), "%s", d);
    dirlen = strlen(dir);
}

/* ---- matching ---- */

static bool under(const char *p)
{
    if (!dirlen)
        return true;
    return strncmp(p, dir, dirlen) == 0 && (p[dirlen] == '/' || p[dirlen] == 0);
}

static bool fd_path(int fd, char *out, size_t max)
{
    char link[64];
    snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, out, max - 1);
    if (n < 0)
        return false;
    out[n] = 0;
    return true;
}

static bool fd_under(int fd)
{
    char p[PATH_MAX];
    return fd_path(fd, p, sizeof(p)) && under(p);
}

static bool at_under(int dirfd, const char *path)
{
    char p[PATH_MAX];
    if (!path)
        return false;
    if (path[0] == '/')
        return under(path);
    if (dirfd == AT_FDCWD) {
        if (!getcwd(p, sizeof(p)))
            return false;
    } else if (!fd_path(dirfd, p, sizeof(p))) {
        return false;
    }
    size_t l = strlen(p);
    snprintf(p + l, sizeof(p) - l, "/%s", path);
    return under(p);
}

/* Count one write-side call under the directory; true = make it fail. */
static bool hit(bool matches)
{
    pthread_once(&once, init_env);
    long n = atomic_load(&nth);
    if (n <= 0 || !matches)
        return false;
    long c = atomic_fetch_add(&calls, 1) + 1;
    if (c == n || (c > n && atomic_load(&sticky))) {
        atomic_fetch_add(&fired, 1);
        errno = atomic_load(&err);
        return true;
    }
    return false;
}

/* The next definition of name (libc's), looked up once. */
#define REAL(name)                                                                                 \
    static __typeof__(&name) real_##name;                                                          \
    if (!real_##name)                                                                              \
        real_##name = (__typeof__(&name))dlsym(RTLD_NEXT, #name);

static mode_t mode_arg(int flags, va_list ap)
{
    return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

EXPORT int open(const char *path, int flags, ...)
{
    REAL(open);
    va_list ap;
    va_start(ap, flags);
    mode_t m = mode_arg(flags, ap);
    va_end(ap);
    bool made;
    if (open_counts(AT_FDCWD, path, flags, &made) && hit(at_under(AT_FDCWD, path)))
        return -1;
    return track(real_open(path, flags, m), made);
}

EXPORT int open64(const char *path, int flags, ...)
{
    REAL(open64);
    va_list ap;
    va_start(ap, flags);
    mode_t m = mode_arg(flags, ap);
    va_end(ap);
    bool made;
    if (open_counts(AT_FDCWD, path, flags, &made) && hit(at_under(AT_FDCWD, path)))
        return -1;
    return track(real_open64(path, flags, m), made);
}

EXPORT int openat(int dfd, const char *path, int flags, ...)
{
    REAL(openat);
    va_list ap;
    va_start(ap, flags);
    mode_t m = mode_arg(flags, ap);
    va_end(ap);
    bool made;
    if (open_counts(dfd, path, flags, &made) && hit(at_under(dfd, path)))
        return -1;
    return track(real_openat(dfd, path, flags, m), made);
}

EXPORT int openat64(int dfd, const char *path, int flags, ...)
{
    REAL(openat64);
    va_list ap;
    va_start(ap, flags);
    mode_t m = mode_arg(flags, ap);
    va_end(ap);
    bool made;
    if (open_counts(dfd, path, flags, &made) && hit(at_under(dfd, path)))
        return -1;
    return track(real_openat64(dfd, path, flags, m), made);
}

EXPORT int creat(const char *path, mode_t m)
{
    REAL(creat);
    if (hit(at_under(AT_FDCWD, path)))
        return -1;
    return real_creat(path, m);
}

EXPORT ssize_t write(int fd, const void *buf, size_t n)
{
    REAL(write);
    /* Only fds of regular files: never the test's pipes or the terminal. */
    if (atomic_load(&nth) > 0 && fd > 2 && !(full_disk() && !extends(fd, n, 0, true)) &&
        hit(fd_under(fd)))
        return -1;
    return real_write(fd, buf, n);
}

EXPORT ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
    REAL(pwrite);
    if (atomic_load(&nth) > 0 && fd > 2 && !(full_disk() && !extends(fd, n, off, false)) &&
        hit(fd_under(fd)))
        return -1;
    return real_pwrite(fd, buf, n, off);
}

EXPORT int fsync(int fd)
{
    REAL(fsync);
    if (atomic_load(&nth) > 0 && !(full_disk() && !(fd >= 0 && fd < MAXFD && created[fd])) &&
        hit(fd_under(fd)))
        return -1;
    return real_fsync(fd);
}

EXPORT int fdatasync(int fd)
{
    REAL(fdatasync);
    if (atomic_load(&nth) > 0 && !(full_disk() && !(fd >= 0 && fd < MAXFD && created[fd])) &&
        hit(fd_under(fd)))
        return -1;
    return real_fdatasync(fd);
}

EXPORT int ftruncate(int fd, off_t len)
{
    REAL(ftruncate);
    if (atomic_load(&nth) > 0 && hit(fd_under(fd)))
        return -1;
    return real_ftruncate(fd, len);
}

EXPORT int fchmod(int fd, mode_t m)
{
    REAL(fchmod);
    if (atomic_load(&nth) > 0 && hit(fd_under(fd)))
        return -1;
    return real_fchmod(fd, m);
}

EXPORT int chmod(const char *path, mode_t m)
{
    REAL(chmod);
    if (hit(at_under(AT_FDCWD, path)))
        return -1;
    return real_chmod(path, m);
}

EXPORT int rename(const char *a, const char *b)
{
    REAL(rename);
    if (!full_disk() && hit(at_under(AT_FDCWD, a) || at_under(AT_FDCWD, b)))
        return -1;
    return real_rename(a, b);
}

EXPORT int renameat(int da, const char *a, int db, const char *b)
{
    REAL(renameat);
    if (!full_disk() && hit(at_under(da, a) || at_under(db, b)))
        return -1;
    return real_renameat(da, a, db, b);
}

EXPORT int renameat2(int da, const char *a, int db, const char *b, unsigned fl)
{
    REAL(renameat2);
    if (!full_disk() && hit(at_under(da, a) || at_under(db, b)))
        return -1;
    return real_renameat2(da, a, db, b, fl);
}

EXPORT int unlink(const char *path)
{
    REAL(unlink);
    if (!full_disk() && hit(at_under(AT_FDCWD, path)))
        return -1;
    return real_unlink(path);
}

EXPORT int unlinkat(int dfd, const char *path, int fl)
{
    REAL(unlinkat);
    if (!full_disk() && hit(at_under(dfd, path)))
        return -1;
    return real_unlinkat(dfd, path, fl);
}

EXPORT int mkdir(const char *path, mode_t m)
{
    REAL(mkdir);
    if (!(full_disk() && exists_at(AT_FDCWD, path)) && hit(at_under(AT_FDCWD, path)))
        return -1;
    return real_mkdir(path, m);
}

EXPORT int mkdirat(int dfd, const char *path, mode_t m)
{
    REAL(mkdirat);
    if (!(full_disk() && exists_at(dfd, path)) && hit(at_under(dfd, path)))
        return -1;
    return real_mkdirat(dfd, path, m);
}

EXPORT int link(const char *a, const char *b)
{
    REAL(link);
    if (exists_at(AT_FDCWD, a) && hit(at_under(AT_FDCWD, b)))
        return -1;
    return real_link(a, b);
}

EXPORT int linkat(int da, const char *a, int db, const char *b, int fl)
{
    REAL(linkat);
    if (exists_at(da, a) && hit(at_under(db, b)))
        return -1;
    return real_linkat(da, a, db, b, fl);
}
