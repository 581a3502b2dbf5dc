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

struct rv_name {
    CK_RV rv;
    const char *name;
};

#define RV(x)                                                                                      \
    {                                                                                              \
        x, #x                                                                                      \
    }

/* PKCS#11 2.40 §5.1 return values, plus the 3.0 additions (3.0 §5.1). */
static const struct rv_name rv_names[] = {
    RV(CKR_OK),
    RV(CKR_CANCEL),
    RV(CKR_HOST_MEMORY),
    RV(CKR_SLOT_ID_INVALID),
    RV(CKR_GENERAL_ERROR),
    RV(CKR_FUNCTION_FAILED),
    RV(CKR_ARGUMENTS_BAD),
    RV(CKR_NO_EVENT),
    RV(CKR_NEED_TO_CREATE_THREADS),
    RV(CKR_CANT_LOCK),
    RV(CKR_ATTRIBUTE_READ_ONLY),
    RV(CKR_ATTRIBUTE_SENSITIVE),
    RV(CKR_ATTRIBUTE_TYPE_INVALID),
    RV(CKR_ATTRIBUTE_VALUE_INVALID),
    RV(CKR_ACTION_PROHIBITED),
    RV(CKR_DATA_INVALID),
    RV(CKR_DATA_LEN_RANGE),
    RV(CKR_DEVICE_ERROR),
    RV(CKR_DEVICE_MEMORY),
    RV(CKR_DEVICE_REMOVED),
    RV(CKR_ENCRYPTED_DATA_INVALID),
    RV(CKR_ENCRYPTED_DATA_LEN_RANGE),
    RV(CKR_FUNCTION_CANCELED),
    RV(CKR_FUNCTION_NOT_PARALLEL),
    RV(CKR_FUNCTION_NOT_SUPPORTED),
    RV(CKR_KEY_HANDLE_INVALID),
    RV(CKR_KEY_SIZE_RANGE),
    RV(CKR_KEY_TYPE_INCONSISTENT),
    RV(CKR_KEY_NOT_NEEDED),
    RV(CKR_KEY_CHANGED),
    RV(CKR_KEY_NEEDED),
    RV(CKR_KEY_INDIGESTIBLE),
    RV(CKR_KEY_FUNCTION_NOT_PERMITTED),
    RV(CKR_KEY_NOT_WRAPPABLE),
    RV(CKR_KEY_UNEXTRACTABLE),
    RV(CKR_MECHANISM_INVALID),
    RV(CKR_MECHANISM_PARAM_INVALID),
    RV(CKR_OBJECT_HANDLE_INVALID),
    RV(CKR_OPERATION_ACTIVE),
    RV(CKR_OPERATION_NOT_INITIALIZED),
    RV(CKR_PIN_INCORRECT),
    RV(CKR_PIN_INVALID),
    RV(CKR_PIN_LEN_RANGE),
    RV(CKR_PIN_EXPIRED),
    RV(CKR_PIN_LOCKED),
    RV(CKR_SESSION_CLOSED),
    RV(CKR_SESSION_COUNT),
    RV(CKR_SESSION_HANDLE_INVALID),
    RV(CKR_SESSION_PARALLEL_NOT_SUPPORTED),
    RV(CKR_SESSION_READ_ONLY),
    RV(CKR_SESSION_EXISTS),
    RV(CKR_SESSION_READ_ONLY_EXISTS),
    RV(CKR_SESSION_READ_WRITE_SO_EXISTS),
    RV(CKR_SIGNATURE_INVALID),
    RV(CKR_SIGNATURE_LEN_RANGE),
    RV(CKR_TEMPLATE_INCOMPLETE),
    RV(CKR_TEMPLATE_INCONSISTENT),
    RV(CKR_TOKEN_NOT_PRESENT),
    RV(CKR_TOKEN_NOT_RECOGNIZED),
    RV(CKR_TOKEN_WRITE_PROTECTED),
    RV(CKR_UNWRAPPING_KEY_HANDLE_INVALID),
    RV(CKR_UNWRAPPING_KEY_SIZE_RANGE),
    RV(CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT),
    RV(CKR_USER_ALREADY_LOGGED_IN),
    RV(CKR_USER_NOT_LOGGED_IN),
    RV(CKR_USER_PIN_NOT_INITIALIZED),
    RV(CKR_USER_TYPE_INVALID),
    RV(CKR_USER_ANOTHER_ALREADY_LOGGED_IN),
    RV(CKR_USER_TOO_MANY_TYPES),
    RV(CKR_WRAPPED_KEY_INVALID),
    RV(CKR_WRAPPED_KEY_LEN_RANGE),
    RV(CKR_WRAPPING_KEY_HANDLE_INVALID),
    RV(CKR_WRAPPING_KEY_SIZE_RANGE),
    RV(CKR_WRAPPING_KEY_TYPE_INCONSISTENT),
    RV(CKR_RANDOM_SEED_NOT_SUPPORTED),
    RV(CKR_RANDOM_NO_RNG),
    RV(CKR_DOMAIN_PARAMS_INVALID),
    RV(CKR_CURVE_NOT_SUPPORTED),
    RV(CKR_BUFFER_TOO_SMALL),
    RV(CKR_SAVED_STATE_INVALID),
    RV(CKR_INFORMATION_SENSITIVE),
    RV(CKR_STATE_UNSAVEABLE),
    RV(CKR_CRYPTOKI_NOT_INITIALIZED),
    RV(CKR_CRYPTOKI_ALREADY_INITIALIZED),
    RV(CKR_MUTEX_BAD),
    RV(CKR_MUTEX_NOT_LOCKED),
    RV(CKR_NEW_PIN_MODE),
    RV(CKR_NEXT_OTP),
    RV(CKR_EXCEEDED_MAX_ITERATIONS),
    RV(CKR_FIPS_SELF_TEST_FAILED),
    RV(CKR_LIBRARY_LOAD_FAILED),
    RV(CKR_PIN_TOO_WEAK),
    RV(CKR_PUBLIC_KEY_INVALID),
    RV(CKR_FUNCTION_REJECTED),
    {0x201UL, "CKR_TOKEN_RESOURCE_EXCEEDED"},
    {0x202UL, "CKR_OPERATION_CANCEL_FAILED"},
    {0x203UL, "CKR_KEY_EXHAUSTED"},
    RV(CKR_VENDOR_DEFINED),
};

const char *ksp_rv_name(CK_RV rv)
{
    for (size_t i = 0; i < sizeof(rv_names) / sizeof(rv_names[0]); i++)
        if (rv_names[i].rv == rv)
            return rv_names[i].name;
    static _Thread_local char buf[32];
    snprintf(buf, sizeof(buf), "CKR_0x%08lX", (unsigned long)rv);
    return buf;
}
