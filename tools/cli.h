/*
 * The ksp11 command: shared declarations of the tool (its .c files only).
 *
 * The tool is a plain PKCS#11 client: it dlopens the module and talks to it
 * through its function list, exactly as curl or pkcs11-tool would. Nothing
 * here links the core library.
 */
#ifndef KSP11_TOOLS_CLI_H
#define KSP11_TOOLS_CLI_H

#include <getopt.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "ksp11/pkcs11.h"
#include "ksp11/ksp11.h"

/* Exit codes: documented in `ksp11 --help` (main.c), one meaning each. */
#define KSP_EXIT_OK        0 /* success */
#define KSP_EXIT_FAIL      1 /* the operation failed (module, token or system error) */
#define KSP_EXIT_USAGE     2 /* bad command line */
#define KSP_EXIT_NOT_FOUND 3 /* no such token, key or certificate */
#define KSP_EXIT_AUTH      4 /* login failed: wrong or locked PIN */
#define KSP_EXIT_INPUT     5 /* a file cannot be read or written, or is malformed */
#define KSP_EXIT_REFUSED   6 /* refused: exists already, mismatch, hardware unavailable */
#define KSP_EXIT_CHECK     7 /* check-cert: a requirement is not met */

/* PKCS#11 ulMaxPinLen of the module (behaviour.md). */
#define KSP_PIN_MAX 255
/* CKA_ID values the tool accepts on the command line. */
#define KSP_ID_MAX 128

#define KSP_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Long option ids shared by every subcommand (command ones start at KSP_OPT_CMD). */
enum {
    KSP_OPT_JSON = 0x100,
    KSP_OPT_MODULE,
    KSP_OPT_PIN,
    KSP_OPT_PIN_SOURCE,
    KSP_OPT_CMD = 0x200,
};

#define KSP_CLI_COMMON_OPTIONS                                                                     \
    {"json", no_argument, NULL, KSP_OPT_JSON},                                                     \
        {"module", required_argument, NULL, KSP_OPT_MODULE},                                       \
        {"pin", required_argument, NULL, KSP_OPT_PIN},                                             \
        {"pin-source", required_argument, NULL, KSP_OPT_PIN_SOURCE},                               \
    {                                                                                              \
        "help", no_argument, NULL, 'h'                                                             \
    }

/* A PIN in a fixed buffer, wiped by ksp_pin_wipe. */
struct ksp_pin {
    bool set;
    size_t len;
    char buf[KSP_PIN_MAX + 2];
};

struct ksp_cli {
    const char *cmd;        /* subcommand, for messages */
    bool json;              /* --json */
    const char *module_opt; /* --module */
    const char *pin_opt;    /* --pin (points into argv) */
    const char *pin_source; /* --pin-source */
    char module_path[PATH_MAX];
    void *dl;
    CK_FUNCTION_LIST_PTR f;
    bool initialized;
};

/* One slot with a token present. */
struct ksp_slot {
    CK_SLOT_ID id;
    CK_TOKEN_INFO info;
    char label[33];  /* trailing blanks removed */
    char serial[17]; /* trailing blanks removed */
};

/* What the list/keygen commands show about one object. */
struct ksp_obj {
    CK_OBJECT_HANDLE handle;
    CK_OBJECT_CLASS cls;
    bool has_key_type;
    CK_KEY_TYPE key_type;
    char *label; /* NUL-terminated copy; NULL when the object has none */
    unsigned char *id;
    size_t id_len;
    CK_ULONG bits;     /* RSA modulus bits, 0 if unknown */
    const char *curve; /* "P-256"...; NULL if unknown or not EC */
    bool has_backend;
    CK_ULONG backend;
    bool has_impl;
    CK_ULONG impl;
    char *reason;       /* CKA_KSP11_FALLBACK_REASON; NULL if absent */
    char *tpm_identity; /* CKA_KSP11_TPM_IDENTITY; NULL or "" if none */
    char *subject;      /* X.509 certificates: subject, one-line form; NULL if unparsable */
    char not_after[32]; /* and the end of validity, "" if unknown */
};

/* A token key pair as the certificate commands use it (key.c). */
struct ksp_key {
    CK_OBJECT_HANDLE priv;    /* CK_INVALID_HANDLE when only the public half is visible */
    CK_OBJECT_HANDLE pub;     /* CK_INVALID_HANDLE when the token has no public key object */
    CK_KEY_TYPE type;         /* CKK_RSA or CKK_EC */
    struct evp_pkey_st *pkey; /* the public key */
    char *label;
    unsigned char *id;
    size_t id_len;
};

/* What --key / --cert name on the command line: a pkcs11: URI, or a label. */
struct ksp_ref {
    char *token; /* token= of the URI; NULL if not given */
    char *label; /* object= or the plain label; NULL if not given */
    unsigned char id[KSP_ID_MAX];
    size_t id_len; /* 0: no id */
};

/* Tiny streaming JSON writer (json.c). */
#define KSP_JSON_MAX_DEPTH 16
struct ksp_json {
    FILE *f;
    int depth;
    bool need_comma[KSP_JSON_MAX_DEPTH];
};

/* cli.c: option parsing and messages. */
typedef int (*ksp_cli_opt_fn)(struct ksp_cli *cli, void *ctx, int id, const char *arg);
bool ksp_cli_parse(struct ksp_cli *cli, int argc, char **argv, const struct option *opts,
                   ksp_cli_opt_fn fn, void *ctx, void (*help)(FILE *), int *rc);
int ksp_cli_usage(const struct ksp_cli *cli, const char *fmt, ...) KSP_PRINTF(2, 3);
int ksp_cli_err(const char *fmt, ...) KSP_PRINTF(1, 2);
int ksp_cli_fail(const char *what, CK_RV rv);
int ksp_cli_rv_exit(CK_RV rv);
int ksp_cli_ssl_err(int rc, const char *fmt, ...) KSP_PRINTF(2, 3);
bool ksp_cli_parse_ulong(const char *s, unsigned long max, unsigned long *out);

/* ckr.c */
const char *ksp_ckr_name(CK_RV rv);

/* pin.c */
bool ksp_pin_from_options(struct ksp_cli *cli, const char *env_name, struct ksp_pin *out, int *rc);
bool ksp_pin_prompt(const char *prompt, bool confirm, struct ksp_pin *out, int *rc);
bool ksp_pin_have_terminal(void);
void ksp_pin_wipe(struct ksp_pin *pin);

/* p11.c */
int ksp_p11_open(struct ksp_cli *cli);
void ksp_p11_close(struct ksp_cli *cli);
int ksp_p11_slots(struct ksp_cli *cli, struct ksp_slot **out, size_t *out_n);
int ksp_p11_find_token(struct ksp_cli *cli, const char *name, struct ksp_slot *out);
int ksp_p11_open_token(struct ksp_cli *cli, const char *name, bool rw, struct ksp_slot *slot,
                       CK_SESSION_HANDLE *s, bool *logged_in);
void ksp_p11_close_session(struct ksp_cli *cli, CK_SESSION_HANDLE s, bool logged_in);
const CK_KSP11_FUNCTION_LIST *ksp_p11_vendor(struct ksp_cli *cli);
int ksp_p11_session(struct ksp_cli *cli, CK_SLOT_ID slot, bool rw, CK_SESSION_HANDLE *out);
int ksp_p11_login(struct ksp_cli *cli, const struct ksp_slot *slot, CK_SESSION_HANDLE s,
                  bool required, bool *logged_in);
bool ksp_p11_pinless(const CK_TOKEN_INFO *info);
void ksp_p11_blank_trim(const CK_UTF8CHAR *in, size_t n, char *out);

/* obj.c */
CK_RV ksp_obj_find(struct ksp_cli *cli, CK_SESSION_HANDLE s, CK_ATTRIBUTE *tmpl, CK_ULONG n,
                   CK_OBJECT_HANDLE **out, size_t *out_n);
CK_RV ksp_obj_read(struct ksp_cli *cli, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
                   struct ksp_obj *out);
void ksp_obj_free(struct ksp_obj *o);
CK_RV ksp_obj_attr(struct ksp_cli *cli, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
                   CK_ATTRIBUTE_TYPE type, unsigned char **out, size_t *out_len);
CK_RV ksp_obj_ulong(struct ksp_cli *cli, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h,
                    CK_ATTRIBUTE_TYPE type, bool *has, CK_ULONG *out);
const char *ksp_obj_type_name(CK_OBJECT_CLASS cls);
void ksp_obj_describe(const struct ksp_obj *o, char *buf, size_t n);
const char *ksp_obj_backend_name(const struct ksp_obj *o);
char *ksp_obj_uri(const char *token, const struct ksp_obj *o);
void ksp_obj_json(struct ksp_json *j, const char *token, const struct ksp_obj *o);
void ksp_obj_text(FILE *f, const char *token, const struct ksp_obj *o);

/* uri.c */
char *ksp_uri_build(const char *token, const char *object, const char *type,
                    const unsigned char *id, size_t id_len);
bool ksp_hex_parse(const char *s, unsigned char *out, size_t max, size_t *out_len);
void ksp_hex_format(const unsigned char *in, size_t n, char *out);
int ksp_ref_parse(struct ksp_cli *cli, const char *what, const char *arg, const char *id_hex,
                  struct ksp_ref *out);
void ksp_ref_free(struct ksp_ref *r);

/* key.c: token key pairs for the certificate commands (OpenSSL public keys). */
int ksp_key_find(struct ksp_cli *cli, CK_SESSION_HANDLE s, const struct ksp_ref *ref,
                 struct ksp_key *out);
int ksp_key_load(struct ksp_cli *cli, CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, struct ksp_key *out);
int ksp_key_match(struct ksp_cli *cli, CK_SESSION_HANDLE s, const struct evp_pkey_st *want,
                  bool need_private, struct ksp_key *out, bool *found);
int ksp_key_sign(struct ksp_cli *cli, CK_SESSION_HANDLE s, const struct ksp_key *k,
                 const unsigned char *data, size_t n, unsigned char **sig, size_t *sig_len);
void ksp_key_free(struct ksp_key *k);

/* keygen (cmd_keygen.c), shared with selfsign. */
struct ksp_keyspec {
    bool rsa;
    unsigned long bits; /* RSA */
    int curve;          /* EC: index from ksp_keygen_curve */
    const char *label;
    const unsigned char *id;
    size_t id_len;
    bool require_hw;
};
int ksp_keygen_curve(const char *name);
const char *ksp_keygen_curve_name(int curve);
int ksp_keygen_generate(struct ksp_cli *cli, CK_SESSION_HANDLE s, const struct ksp_keyspec *ks,
                        CK_OBJECT_HANDLE *pub, CK_OBJECT_HANDLE *priv);
int ksp_keygen_label_free(struct ksp_cli *cli, CK_SESSION_HANDLE s, const char *label);
bool ksp_has_control(const char *s);

/* progress.c: a spinner with elapsed time on stderr, only when it is a terminal. */
struct ksp_progress;
struct ksp_progress *ksp_progress_start(const char *what);
void ksp_progress_stop(struct ksp_progress *p);

/* json.c: JSON and terminal-safe text output. */
void ksp_json_init(struct ksp_json *j, FILE *f);
void ksp_json_obj_begin(struct ksp_json *j, const char *key);
void ksp_json_obj_end(struct ksp_json *j);
void ksp_json_arr_begin(struct ksp_json *j, const char *key);
void ksp_json_arr_end(struct ksp_json *j);
void ksp_json_str(struct ksp_json *j, const char *key, const char *v);
void ksp_json_uint(struct ksp_json *j, const char *key, unsigned long long v);
void ksp_json_bool(struct ksp_json *j, const char *key, bool v);
void ksp_json_null(struct ksp_json *j, const char *key);
void ksp_json_finish(struct ksp_json *j);
void ksp_text_put(FILE *f, const char *s);

/* conf.c */
bool ksp_conf_store_root(char *out, size_t n, const char **origin);

/* Subcommands (cmd_*.c). */
int ksp_cmd_status(struct ksp_cli *cli, int argc, char **argv);
int ksp_cmd_list(struct ksp_cli *cli, int argc, char **argv);
int ksp_cmd_init(struct ksp_cli *cli, int argc, char **argv);
int ksp_cmd_keygen(struct ksp_cli *cli, int argc, char **argv);
int ksp_cmd_delete(struct ksp_cli *cli, int argc, char **argv);
int ksp_cmd_selfsign(struct ksp_cli *cli, int argc, char **argv);
int ksp_cmd_csr(struct ksp_cli *cli, int argc, char **argv);
int ksp_cmd_import_cert(struct ksp_cli *cli, int argc, char **argv);
int ksp_cmd_check_cert(struct ksp_cli *cli, int argc, char **argv);

#endif
