/*
 * The one log (DESIGN.md §1, style.md §3.9): a file when configured, syslog
 * otherwise, never stdout/stderr. One line per call, written with a single
 * write(2) on an O_APPEND descriptor so lines of concurrent processes sharing
 * the file never interleave. Also owns the CKR_* name table used by traces.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

#define LINE_MAX_LEN 2048

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static atomic_int log_level = KSP_LOG_WARN;
static int log_fd = -1;   /* LOCKED: log_mu */
static pid_t log_pid = 0; /* process that last (re)configured the log */

static const char *const level_names[] = {"none", "error", "warn", "info", "debug"};

static void close_file_inlock(void)
{
    if (log_fd >= 0)
        (void)close(log_fd);
    log_fd = -1;
}

void ksp_log_open(const struct ksp_config *cfg)
{
    /*
     * A child forked while another thread held log_mu would inherit it locked;
     * we get here from the child's own C_Initialize, single-threaded, so a
     * fresh mutex is safe (no pthread_atfork: DESIGN.md §3).
     */
    pid_t pid = getpid();
    if (log_pid != 0 && log_pid != pid)
        pthread_mutex_init(&log_mu, NULL);

    int level = cfg ? cfg->log_level : KSP_LOG_WARN;
    if (level < KSP_LOG_NONE || level > KSP_LOG_DEBUG)
        level = KSP_LOG_WARN;

    int fd = -1;
    int open_errno = 0;
    if (cfg && cfg->log_file && cfg->log_file[0]) {
        fd = open(cfg->log_file, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY, 0600);
        if (fd < 0)
            open_errno = errno;
    }

    pthread_mutex_lock(&log_mu);
    close_file_inlock();
    log_fd = fd;
    log_pid = pid;
    atomic_store(&log_level, level);
    pthread_mutex_unlock(&log_mu);

    if (open_errno)
        ksp_warn("log", "cannot open log file %s: %s; using syslog", cfg->log_file,
                 strerror(open_errno));
}

void ksp_log_close(void)
{
    pthread_mutex_lock(&log_mu);
    close_file_inlock();
    pthread_mutex_unlock(&log_mu);
}

int ksp_log_enabled(int level)
{
    return level > KSP_LOG_NONE && level <= atomic_load(&log_level);
}

/* Control characters (e.g. a newline in a hostile file name) would split or
 * forge log lines. */
static void sanitize(char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c < 0x20 || c == 0x7f)
            *s = c == '\t' ? ' ' : '?';
    }
}

static int syslog_prio(int level)
{
    switch (level) {
    case KSP_LOG_ERROR:
        return LOG_ERR;
    case KSP_LOG_WARN:
        return LOG_WARNING;
    case KSP_LOG_INFO:
        return LOG_INFO;
    default:
        return LOG_DEBUG;
    }
}

void ksp_log(int level, const char *area, const char *fmt, ...)
{
    if (!ksp_log_enabled(level))
        return;
    int saved_errno = errno;
    if (!area)
        area = KSP_LOG_AREA_DEFAULT;

    char msg[LINE_MAX_LEN];
    va_list ap;
    va_start(ap, fmt);
    int m = vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (m < 0)
        snprintf(msg, sizeof(msg), "(unformattable message)");
    else if ((size_t)m >= sizeof(msg))
        memcpy(msg + sizeof(msg) - 4, "...", 4);
    sanitize(msg);

    /* Format outside the lock; only the write itself is serialised. */
    struct timespec ts;
    struct tm tm;
    char stamp[96];
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(stamp, sizeof(stamp), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(ts.tv_nsec / 1000000L % 1000));
    char line[LINE_MAX_LEN + 128];
    int n = snprintf(line, sizeof(line), "%s ksp11[%ld] %s %s: %s\n", stamp, (long)getpid(),
                     level_names[level], area, msg);
    size_t len = n <= 0 ? 0 : (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1;
    if (len)
        line[len - 1] = '\n';

    bool to_file = false;
    pthread_mutex_lock(&log_mu);
    if (log_fd >= 0) {
        to_file = true;
        /* One write(2): O_APPEND makes it atomic with respect to other
         * writers of the same file. A short write is not retried, since a
         * second write could land after another process's line. */
        ssize_t w;
        do {
            w = len ? write(log_fd, line, len) : 0;
        } while (w < 0 && errno == EINTR);
    }
    pthread_mutex_unlock(&log_mu);

    if (!to_file) {
        /*
         * No openlog(): the ident and options are process-global and belong to
         * the host application. Our name and pid go into the message instead.
         */
        syslog(LOG_USER | syslog_prio(level), "ksp11[%ld] %s %s: %s", (long)getpid(),
               level_names[level], area, msg);
    }
    errno = saved_errno;
}

int ksp_log_level_parse(const char *s)
{
    if (!s)
        return -1;
    for (int i = KSP_LOG_NONE; i <= KSP_LOG_DEBUG; i++)
        if (strcasecmp(s, level_names[i]) == 0)
            return i;
    if (strcasecmp(s, "warning") == 0)
        return KSP_LOG_WARN;
    if (s[0] >= '0' && s[0] <= '4' && s[1] == '\0')
        return s[0] - '0';
    return -1;
}

#include "ksp11/ckr_names.h"

const char *ksp_rv_name(CK_RV rv)
{
    for (size_t i = 0; i < sizeof(ksp_ckr_names) / sizeof(ksp_ckr_names[0]); i++)
        if (ksp_ckr_names[i].rv == rv)
            return ksp_ckr_names[i].name;
    static _Thread_local char buf[32];
    snprintf(buf, sizeof(buf), "CKR_0x%08lX", (unsigned long)rv);
    return buf;
}
