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

/* Exit codes: documented in `ksp11 --help`. */
#define KSP_EXIT_OK    0
#define KSP_EXIT_FAIL  1
#define KSP_EXIT_USAGE 2

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
    char *reason; /* CKA_KSP11_FALLBACK_REASON; NULL if absent */
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

#endif
