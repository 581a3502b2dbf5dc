/*
 * The ksp11 command: where PINs come from. In order: --pin, --pin-source FILE
 * (first line; "-" is stdin), an environment variable (KSP11_PIN, or
 * KSP11_SO_PIN for the SO PIN of `init`), else a prompt with echo off when
 * stdin is a terminal. PIN buffers are wiped with OPENSSL_cleanse.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cli.h"

static bool copy_pin(const char *s, size_t len, struct ksp_pin *out)
{
    if (len > KSP_PIN_MAX)
        return false;
    memcpy(out->buf, s, len);
    out->buf[len] = '\0';
    out->len = len;
    out->set = true;
    return true;
}

/* First line of fd, without its "\n" or "\r\n"; false if longer than a PIN. */
static bool read_line(int fd, struct ksp_pin *out, int *err)
{
    size_t n = 0;
    *err = 0;
    for (;;) {
        char c;
        ssize_t r = read(fd, &c, 1);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            *err = errno;
            OPENSSL_cleanse(out->buf, sizeof(out->buf));
            return false;
        }
        if (r == 0 || c == '\n')
            break;
        if (n > KSP_PIN_MAX) {
            OPENSSL_cleanse(out->buf, sizeof(out->buf));
            return false;
        }
        out->buf[n++] = c;
    }
    if (n > 0 && out->buf[n - 1] == '\r')
        n--;
    if (n > KSP_PIN_MAX) {
        OPENSSL_cleanse(out->buf, sizeof(out->buf));
        return false;
    }
    out->buf[n] = '\0';
    out->len = n;
    out->set = true;
    return true;
}

static bool from_file(const char *path, struct ksp_pin *out, int *rc)
{
    int err = 0;
    bool ok = false;
    if (strncmp(path, "file:", 5) == 0)
        path += 5;
    int fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) {
        ksp_cli_err("cannot open PIN file %s: %s", path, strerror(errno));
        *rc = KSP_EXIT_INPUT;
        return false;
    }
    ok = read_line(fd, out, &err);
    if (fd != STDIN_FILENO)
        close(fd);
    if (!ok) {
        if (err)
            ksp_cli_err("cannot read PIN file %s: %s", path, strerror(err));
        else
            ksp_cli_err("PIN in %s is longer than %d bytes", path, KSP_PIN_MAX);
        *rc = KSP_EXIT_INPUT;
        return false;
    }
    return true;
}

bool ksp_pin_from_options(struct ksp_cli *cli, const char *env_name, struct ksp_pin *out, int *rc)
{
    memset(out, 0, sizeof(*out));
    if (cli->pin_opt) {
        if (!copy_pin(cli->pin_opt, strlen(cli->pin_opt), out)) {
            *rc = ksp_cli_usage(cli, "--pin is longer than %d bytes", KSP_PIN_MAX);
            return false;
        }
        return true;
    }
    if (cli->pin_source)
        return from_file(cli->pin_source, out, rc);
    const char *v = env_name ? getenv(env_name) : NULL;
    if (v && v[0]) {
        if (!copy_pin(v, strlen(v), out)) {
            *rc = ksp_cli_err("$%s is longer than %d bytes", env_name, KSP_PIN_MAX);
            return false;
        }
    }
    return true;
}

bool ksp_pin_have_terminal(void)
{
    return isatty(STDIN_FILENO) == 1;
}

/* Terminal state to restore if a signal arrives while echo is off. */
static struct termios saved_tio;
static volatile sig_atomic_t echo_off;

static void restore_and_reraise(int sig)
{
    if (echo_off)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
    signal(sig, SIG_DFL);
    raise(sig);
}

static bool prompt_once(const char *prompt, struct ksp_pin *out, int *rc)
{
    struct sigaction sa = {0}, old_int, old_term, old_hup;
    struct termios tio;
    int err = 0;
    bool ok = false;

    if (tcgetattr(STDIN_FILENO, &saved_tio) != 0) {
        *rc = ksp_cli_err("cannot read the terminal settings: %s", strerror(errno));
        return false;
    }
    sa.sa_handler = restore_and_reraise;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    sigaction(SIGHUP, &sa, &old_hup);
    tio = saved_tio;
    tio.c_lflag &= ~(tcflag_t)(ECHO | ECHOE | ECHOK | ECHONL);
    fputs(prompt, stderr);
    fflush(stderr);
    if (tcsetattr(STDIN_FILENO, TCSAFLUSH, &tio) == 0)
        echo_off = 1;
    ok = read_line(STDIN_FILENO, out, &err);
    if (echo_off)
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &saved_tio);
    echo_off = 0;
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    sigaction(SIGHUP, &old_hup, NULL);
    fputc('\n', stderr);
    if (!ok) {
        if (err)
            *rc = ksp_cli_err("cannot read the PIN: %s", strerror(err));
        else
            *rc = ksp_cli_err("PIN is longer than %d bytes", KSP_PIN_MAX);
    }
    return ok;
}

bool ksp_pin_prompt(const char *prompt, bool confirm, struct ksp_pin *out, int *rc)
{
    struct ksp_pin again;
    memset(out, 0, sizeof(*out));
    if (!prompt_once(prompt, out, rc))
        return false;
    if (!confirm)
        return true;
    memset(&again, 0, sizeof(again));
    bool ok = prompt_once("Repeat it: ", &again, rc);
    if (ok && (again.len != out->len || CRYPTO_memcmp(again.buf, out->buf, out->len) != 0)) {
        *rc = ksp_cli_err("the PINs do not match");
        ok = false;
    }
    ksp_pin_wipe(&again);
    if (!ok)
        ksp_pin_wipe(out);
    return ok;
}

void ksp_pin_wipe(struct ksp_pin *pin)
{
    OPENSSL_cleanse(pin, sizeof(*pin));
}
