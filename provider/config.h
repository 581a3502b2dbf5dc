/*
 * Configuration (DESIGN.md §1): built-in defaults < config file < environment.
 * The config file is hostile input: unknown keys and bad values are logged and
 * ignored, never fatal.
 *
 * File format: one `key = value` per line, `#` comments, blank lines ignored.
 * Keys: store, tcti, denylist, log_level, log_file, fallback (software|none),
 * allow_software_tpm (yes|no), kdf_ms (integer, PIN KDF target time).
 * Environment: KSP11_CONF (file path), KSP11_STORE, KSP11_TCTI, KSP11_DENYLIST,
 * KSP11_LOG_LEVEL, KSP11_LOG_FILE, KSP11_KDF_MS.
 */
#ifndef KSP_CONFIG_H
#define KSP_CONFIG_H

#include <stdbool.h>

#include "ksp11/pkcs11.h"

#define KSP_CONF_DEFAULT  "/etc/ksp11/ksp11.conf"
#define KSP_MACHINE_STORE "/var/lib/ksp11"
#ifndef KSP_DENYLIST_DEFAULT /* set by the Makefile from PREFIX */
#define KSP_DENYLIST_DEFAULT "/usr/share/ksp11/tpm-denylist.conf"
#endif
#define KSP_DENYLIST_ETC "/etc/ksp11/tpm-denylist.conf"

struct ksp_config {
    char *conf_path;         /* the file that was read, or NULL */
    char *store_root;        /* always set after ksp_config_load */
    char *tcti;              /* NULL = default order (device, then tabrmd) */
    char *denylist;          /* NULL = default locations */
    char *log_file;          /* NULL = syslog */
    int log_level;           /* enum ksp_log_level; default KSP_LOG_WARN */
    bool fallback_software;  /* default true */
    bool allow_software_tpm; /* default true (swtpm accepted, flagged virtual) */
    unsigned kdf_ms;         /* PIN KDF target milliseconds; default 100 */
};

/*
 * Load the configuration. path: explicit config file (from pReserved), or NULL
 * for KSP11_CONF, else KSP_CONF_DEFAULT. A missing file is not an error.
 * Store root default: $KSP11_STORE, else the config, else
 * $XDG_DATA_HOME/ksp11 (~/.local/share/ksp11) for non-root users and
 * KSP_MACHINE_STORE for root.
 */
CK_RV ksp_config_load(const char *path, struct ksp_config *out);
void ksp_config_free(struct ksp_config *cfg);

/* Parse config text (for tests and fuzzing); applies on top of *cfg. */
void ksp_config_parse(const char *text, size_t len, struct ksp_config *cfg);

#endif
