/*
 * The ksp11 command: global options, subcommand dispatch, --help and the
 * exit codes (cli.h). A subcommand is one row of the commands table.
 *
 * Global options may come before the subcommand (`ksp11 --json list`) or
 * after it (`ksp11 list --json`); each subcommand parses its own options.
 */
#include <string.h>

#include "cli.h"

struct command {
    const char *name;
    int (*run)(struct ksp_cli *cli, int argc, char **argv);
    const char *summary;
};

/* Attestation (issue 7): cmd_attest.c, cmd_verify_attestation.c. */
int ksp_cmd_attest(struct ksp_cli *cli, int argc, char **argv);
int ksp_cmd_verify_attestation(struct ksp_cli *cli, int argc, char **argv);

static const struct command commands[] = {
    {"status", ksp_cmd_status, "TPM verdict, store and tokens, and how keys are protected"},
    {"list", ksp_cmd_list, "objects on the tokens, with their backend and pkcs11: URI"},
    {"init", ksp_cmd_init, "create a token in the empty slot and set its PINs"},
    {"keygen", ksp_cmd_keygen, "generate a non-exportable RSA or EC key pair"},
    {"delete", ksp_cmd_delete, "delete a key pair and certificate by label or id"},
    {"selfsign", ksp_cmd_selfsign, "new key pair + self-signed client certificate on the token"},
    {"csr", ksp_cmd_csr, "PKCS#10 certificate request signed by a token key"},
    {"import-cert", ksp_cmd_import_cert, "store a certificate next to its key on the token"},
    {"check-cert", ksp_cmd_check_cert, "check a certificate against the PKI rules of a role"},
    {"attest", ksp_cmd_attest, "attestation bundle: proof that a key was born in the TPM"},
    {"verify-attestation", ksp_cmd_verify_attestation, "check an attestation bundle (no TPM needed)"},
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void help(FILE *f)
{
    fputs("usage: ksp11 [--module PATH] [--json] COMMAND [OPTIONS]\n"
          "\n"
          "A PKCS#11 client of the ksp11 module: keys in the TPM when an acceptable\n"
          "TPM 2.0 is present, else non-exportable keys in the encrypted software store.\n"
          "\n"
          "Commands:\n",
          f);
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fputs("\n"
          "Options accepted by every command:\n"
          "  --module PATH      the PKCS#11 module to load (default: $KSP11_MODULE, else\n"
          "                     ksp11-pkcs11.so next to this program, else the installed one)\n"
          "  --json             machine-readable output on stdout\n"
          "  --pin PIN          user PIN (visible to other users in ps; prefer the others)\n"
          "  --pin-source FILE  read the user PIN from the first line of FILE ('-': stdin)\n"
          "  -h, --help         help of the command\n"
          "  --version          print the version\n"
          "Without --pin or --pin-source the PIN comes from $KSP11_PIN, else a prompt\n"
          "when stdin is a terminal. Long operations (key generation) show a spinner\n"
          "with the elapsed time on stderr when it is a terminal, nothing otherwise.\n"
          "\n"
          "Exit status:\n"
          "  0  success\n"
          "  1  the operation failed (module, token or system error)\n"
          "  2  usage error (bad option or value, PIN needed but none given)\n"
          "  3  no such token, key or certificate\n"
          "  4  login failed: wrong or locked PIN\n"
          "  5  a file cannot be read or written, or is not a certificate\n"
          "  6  refused: label or certificate exists already, certificate does not\n"
          "     match any key, hardware required but no acceptable TPM\n"
          "  7  check-cert: a requirement of the role is not met\n"
          "Run 'ksp11 COMMAND --help' for the options of a command.\n",
          f);
}

static const struct command *find_command(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++) {
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    }
    return NULL;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        KSP_CLI_COMMON_OPTIONS, {"version", no_argument, NULL, 'V'}, {NULL, 0, NULL, 0}};
    struct ksp_cli cli = {0};
    int rc = KSP_EXIT_OK;

    /* '+': stop at the subcommand; its options are its own. */
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, "+:h", opts, NULL);
        if (c == -1)
            break;
        switch (c) {
        case 'h':
            help(stdout);
            return KSP_EXIT_OK;
        case 'V':
            printf("ksp11 %d.%d\n", KSP11_VERSION_MAJOR, KSP11_VERSION_MINOR);
            return KSP_EXIT_OK;
        case KSP_OPT_JSON:
            cli.json = true;
            break;
        case KSP_OPT_MODULE:
            cli.module_opt = optarg;
            break;
        case KSP_OPT_PIN:
            cli.pin_opt = optarg;
            break;
        case KSP_OPT_PIN_SOURCE:
            cli.pin_source = optarg;
            break;
        case ':':
            return ksp_cli_usage(&cli, "option '%s' needs a value", argv[optind - 1]);
        default:
            if (optopt > 0 && optopt < 0x100)
                return ksp_cli_usage(&cli, "unknown option '-%c'", optopt);
            return ksp_cli_usage(&cli, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind >= argc)
        return ksp_cli_usage(&cli, "no command given");

    const char *name = argv[optind];
    if (strcmp(name, "help") == 0) {
        /* `ksp11 help CMD` is `ksp11 CMD --help`. */
        if (optind + 1 >= argc) {
            help(stdout);
            return KSP_EXIT_OK;
        }
        const struct command *hc = find_command(argv[optind + 1]);
        if (!hc)
            return ksp_cli_usage(&cli, "unknown command '%s'", argv[optind + 1]);
        char *hargv[] = {argv[optind + 1], "--help", NULL};
        cli.cmd = hc->name;
        return hc->run(&cli, 2, hargv);
    }
    const struct command *cmd = find_command(name);
    if (!cmd)
        return ksp_cli_usage(&cli, "unknown command '%s'", name);
    cli.cmd = cmd->name;
    rc = cmd->run(&cli, argc - optind, argv + optind);
    ksp_p11_close(&cli);
    if (fflush(stdout) != 0 && rc == KSP_EXIT_OK)
        rc = ksp_cli_err("cannot write the output");
    return rc;
}
