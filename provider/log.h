/*
 * The one log (DESIGN.md §1): never stdout/stderr; a file when configured,
 * syslog otherwise; off below the configured level. Never log secrets.
 */
#ifndef KSP_LOG_H
#define KSP_LOG_H

#include "ksp11/pkcs11.h"

enum ksp_log_level {
    KSP_LOG_NONE = 0,
    KSP_LOG_ERROR = 1,
    KSP_LOG_WARN = 2,
    KSP_LOG_INFO = 3,
    KSP_LOG_DEBUG = 4,
};

struct ksp_config;

/* (Re)configure from cfg; safe to call again after fork or re-init. */
void ksp_log_open(const struct ksp_config *cfg);
void ksp_log_close(void);
/* Current threshold, so callers can skip expensive formatting. */
int ksp_log_enabled(int level);
void ksp_log(int level, const char *area, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Name of a CKR_* value ("CKR_PIN_INCORRECT"), or "CKR_0x..." in a static buffer. */
const char *ksp_rv_name(CK_RV rv);
/* Parse "none|error|warn|info|debug" or a digit; -1 if unknown. */
int ksp_log_level_parse(const char *s);

#define KSP_LOG_AREA_DEFAULT "core"
#define ksp_err(area, ...)   ksp_log(KSP_LOG_ERROR, area, __VA_ARGS__)
#define ksp_warn(area, ...)  ksp_log(KSP_LOG_WARN, area, __VA_ARGS__)
#define ksp_info(area, ...)  ksp_log(KSP_LOG_INFO, area, __VA_ARGS__)
#define ksp_debug(area, ...) ksp_log(KSP_LOG_DEBUG, area, __VA_ARGS__)

#endif
