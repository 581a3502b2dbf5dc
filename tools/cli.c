/*
 * The ksp11 command: option parsing shared by every subcommand, and the one
 * format of error messages ("ksp11: <what failed>: <CKR name> (0x...)").
 * Usage errors exit 2, failed operations 1 or a more precise code (cli.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "cli.h"

/* Print the unknown/incomplete option the way the user typed it. */
static const char *offender(int argc, char **argv)
{
    if (optind > 0 && optind <= argc && argv[optind - 1])
        return argv[optind - 1];
    return "?";
}

bool ksp_cli_parse(struct ksp_cli *cli, int argc, char **argv, const struct option *opts,
                   ksp_cli_opt_fn fn, void *ctx, void (*help)(FILE *), int *rc)
{
    /* getopt's own messages are replaced by ours, so every usage error has
     * the same shape and the same exit code. optind = 0 fully re-initialises
     * glibc's getopt (main.c already ran it once over the global options). */
    opterr = 0;
    optind = 0;
    for (;;) {
        int c = getopt_long(argc, argv, ":h", opts, NULL);
        if (c == -1)
            break;
        /* "--label --ec P-256": getopt takes "--ec" as the label. A value
         * starting with "--" must be given as --label=--x. */
        if (optarg && optind >= 2 && argv[optind - 1] == optarg && strncmp(optarg, "--", 2) == 0) {
            *rc = ksp_cli_usage(cli, "option '%s' needs a value (not '%s'; write %s=VALUE)",
                                argv[optind - 2], optarg, argv[optind - 2]);
            return false;
        }
        switch (c) {
        case 'h':
            help(stdout);
            *rc = KSP_EXIT_OK;
            return false;
        case KSP_OPT_JSON:
            cli->json = true;
            break;
        case KSP_OPT_MODULE:
            cli->module_opt = optarg;
            break;
        case KSP_OPT_PIN:
            cli->pin_opt = optarg;
            break;
        case KSP_OPT_PIN_SOURCE:
            cli->pin_source = optarg;
            break;
        case ':':
            *rc = ksp_cli_usage(cli, "option '%s' needs a value", offender(argc, argv));
            return false;
        case '?':
            if (optopt > 0 && optopt < 0x100)
                *rc = ksp_cli_usage(cli, "unknown option '-%c'", optopt);
            else
                *rc = ksp_cli_usage(cli, "unknown option '%s'", offender(argc, argv));
            return false;
        default: {
            int r = fn ? fn(cli, ctx, c, optarg) : KSP_EXIT_USAGE;
            if (r != KSP_EXIT_OK) {
                *rc = r;
                return false;
            }
            break;
        }
        }
    }
    if (optind < argc) {
        *rc = ksp_cli_usage(cli, "unexpected argument '%s'", argv[optind]);
        return false;
    }
    if (cli->pin_opt && cli->pin_source) {
        *rc = ksp_cli_usage(cli, "--pin and --pin-source are mutually exclusive");
        return false;
    }
    return true;
}

int ksp_cli_usage(const struct ksp_cli *cli, const char *fmt, ...)
{
    va_list ap;
    const char *cmd = cli && cli->cmd ? cli->cmd : NULL;
    fprintf(stderr, "ksp11%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\nTry 'ksp11%s%s --help'.\n", cmd ? " " : "", cmd ? cmd : "");
    return KSP_EXIT_USAGE;
}

int ksp_cli_err(const char *fmt, ...)
{
    va_list ap;
    fputs("ksp11: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return KSP_EXIT_FAIL;
}

int ksp_cli_fail(const char *what, CK_RV rv)
{
    fprintf(stderr, "ksp11: %s: %s (0x%08lx)\n", what, ksp_ckr_name(rv), (unsigned long)rv);
    return KSP_EXIT_FAIL;
}

/* Decimal only: "0x800" or "2k" for a key size is a typo, not a request. */
bool ksp_cli_parse_ulong(const char *s, unsigned long max, unsigned long *out)
{
    if (!s || s[0] < '0' || s[0] > '9')
        return false;
    errno = 0;
    char *end = NULL;
    unsigned long v = strtoul(s, &end, 10);
    if (errno != 0 || !end || *end != '\0' || v > max)
        return false;
    *out = v;
    return true;
}

/* The exit code a failed PKCS#11 call deserves (see cli.h). */
int ksp_cli_rv_exit(CK_RV rv)
{
    switch (rv) {
    case CKR_PIN_INCORRECT:
    case CKR_PIN_LOCKED:
    case CKR_PIN_LEN_RANGE:
    case CKR_PIN_EXPIRED:
    case CKR_PIN_INVALID:
        return KSP_EXIT_AUTH;
    default:
        return KSP_EXIT_FAIL;
    }
}

/* A message, then OpenSSL's own reason (the first error queued) if it has one. */
int ksp_cli_ssl_err(int rc, const char *fmt, ...)
{
    va_list ap;
    char reason[256] = "";
    unsigned long e = ERR_peek_error();
    if (e)
        ERR_error_string_n(e, reason, sizeof(reason));
    ERR_clear_error();
    fputs("ksp11: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (reason[0])
        fprintf(stderr, " (%s)", reason);
    fputc('\n', stderr);
    return rc;
}
