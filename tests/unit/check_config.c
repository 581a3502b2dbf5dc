/*
 * Unit tests of provider/config.c (defaults < file < environment, hostile
 * files) and provider/log.c (file destination, levels, line format, CKR_*
 * names).
 */
#include <check.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "log.h"

static char dir[256];
static char conf[300];

static const char *const env_vars[] = {"KSP11_CONF",     "KSP11_STORE",     "KSP11_TCTI",
                                       "KSP11_DENYLIST", "KSP11_LOG_LEVEL", "KSP11_LOG_FILE",
                                       "KSP11_KDF_MS",   "XDG_DATA_HOME"};

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void setup(void)
{
    snprintf(dir, sizeof(dir), "/tmp/ksp11-config-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(conf, sizeof(conf), "%s/ksp11.conf", dir);
    for (size_t i = 0; i < sizeof(env_vars) / sizeof(env_vars[0]); i++)
        unsetenv(env_vars[i]);
    setenv("HOME", "/home/tester", 1);
    /* Warnings about bad lines go to a file, not to the host's syslog. */
    struct ksp_config lc = {0};
    char lp[300];
    snprintf(lp, sizeof(lp), "%s/config.log", dir);
    lc.log_file = lp;
    lc.log_level = KSP_LOG_DEBUG;
    ksp_log_open(&lc);
}

static void teardown(void)
{
    ksp_log_close();
    nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void write_file(const char *path, const char *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return strdup("");
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    return strdup(buf);
}

static size_t count_char(const char *s, char c)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == c;
    return n;
}

/* ---- config ---- */

START_TEST(test_defaults_missing_file)
{
    struct ksp_config c;
    snprintf(conf, sizeof(conf), "%s/does-not-exist.conf", dir);
    ck_assert_uint_eq(ksp_config_load(conf, &c), CKR_OK);
    ck_assert_ptr_null(c.conf_path);
    ck_assert_ptr_null(c.tcti);
    ck_assert_ptr_null(c.denylist);
    ck_assert_ptr_null(c.log_file);
    ck_assert_int_eq(c.log_level, KSP_LOG_WARN);
    ck_assert(c.fallback_software);
    ck_assert(c.allow_software_tpm);
    ck_assert_uint_eq(c.kdf_ms, 100);
    if (geteuid() == 0)
        ck_assert_str_eq(c.store_root, KSP_MACHINE_STORE);
    else
        ck_assert_str_eq(c.store_root, "/home/tester/.local/share/ksp11");
    ksp_config_free(&c);
    ck_assert_ptr_null(c.store_root);
}
END_TEST

START_TEST(test_xdg_store_root)
{
    struct ksp_config c;
    snprintf(conf, sizeof(conf), "%s/none.conf", dir);
    setenv("XDG_DATA_HOME", "/data/x", 1);
    ck_assert_uint_eq(ksp_config_load(conf, &c), CKR_OK);
    if (geteuid() == 0)
        ck_assert_str_eq(c.store_root, KSP_MACHINE_STORE);
    else
        ck_assert_str_eq(c.store_root, "/data/x/ksp11");
    ksp_config_free(&c);
    /* XDG Base Directory: a relative value is ignored. */
    setenv("XDG_DATA_HOME", "relative/dir", 1);
    ck_assert_uint_eq(ksp_config_load(conf, &c), CKR_OK);
    if (geteuid() != 0)
        ck_assert_str_eq(c.store_root, "/home/tester/.local/share/ksp11");
    ksp_config_free(&c);
}
END_TEST

static const char full_conf[] = "# ksp11 test configuration\n"
                                "\n"
                                "store = /srv/ksp11\n"
                                "  tcti=swtpm:path=/tmp/x/swtpm.sock  \n"
                                "denylist = ~/deny.conf\r\n"
                                "log_level = debug\n"
                                "log_file = /var/log/ksp11.log\n"
                                "fallback = none\n"
                                "allow_software_tpm = no\n"
                                "kdf_ms = 250\n";

START_TEST(test_file_all_keys)
{
    struct ksp_config c;
    write_file(conf, full_conf, sizeof(full_conf) - 1);
    ck_assert_uint_eq(ksp_config_load(conf, &c), CKR_OK);
    ck_assert_str_eq(c.conf_path, conf);
    ck_assert_str_eq(c.store_root, "/srv/ksp11");
    ck_assert_str_eq(c.tcti, "swtpm:path=/tmp/x/swtpm.sock");
    ck_assert_str_eq(c.denylist, "/home/tester/deny.conf");
    ck_assert_int_eq(c.log_level, KSP_LOG_DEBUG);
    ck_assert_str_eq(c.log_file, "/var/log/ksp11.log");
    ck_assert(!c.fallback_software);
    ck_assert(!c.allow_software_tpm);
    ck_assert_uint_eq(c.kdf_ms, 250);
    ksp_config_free(&c);
}
END_TEST

START_TEST(test_env_beats_file)
{
    struct ksp_config c;
    write_file(conf, full_conf, sizeof(full_conf) - 1);
    setenv("KSP11_STORE", "~/store", 1);
    setenv("KSP11_TCTI", "device:/dev/tpmrm1", 1);
    setenv("KSP11_DENYLIST", "/etc/deny", 1);
    setenv("KSP11_LOG_LEVEL", "error", 1);
    setenv("KSP11_LOG_FILE", "/tmp/other.log", 1);
    setenv("KSP11_KDF_MS", "40", 1);
    ck_assert_uint_eq(ksp_config_load(conf, &c), CKR_OK);
    ck_assert_str_eq(c.store_root, "/home/tester/store");
    ck_assert_str_eq(c.tcti, "device:/dev/tpmrm1");
    ck_assert_str_eq(c.denylist, "/etc/deny");
    ck_assert_int_eq(c.log_level, KSP_LOG_ERROR);
    ck_assert_str_eq(c.log_file, "/tmp/other.log");
    ck_assert_uint_eq(c.kdf_ms, 40);
    ck_assert(!c.fallback_software); /* not overridable: from the file */
    ksp_config_free(&c);

    /* A bad environment value is ignored, the file's value stays. */
    setenv("KSP11_LOG_LEVEL", "loud", 1);
    setenv("KSP11_KDF_MS", "-5", 1);
    ck_assert_uint_eq(ksp_config_load(conf, &c), CKR_OK);
    ck_assert_int_eq(c.log_level, KSP_LOG_DEBUG);
    ck_assert_uint_eq(c.kdf_ms, 250);
    ksp_config_free(&c);
}
END_TEST

START_TEST(test_conf_path_selection)
{
    struct ksp_config c;
    char other[320];
    snprintf(other, sizeof(other), "%s/other.conf", dir);
    write_file(conf, "tcti = from-env-path\n", 21);
    write_file(other, "tcti = from-explicit\n", 21);
    setenv("KSP11_CONF", conf, 1);
    ck_assert_uint_eq(ksp_config_load(NULL, &c), CKR_OK);
    ck_assert_str_eq(c.tcti, "from-env-path");
    ck_assert_str_eq(c.conf_path, conf);
    ksp_config_free(&c);
    ck_assert_uint_eq(ksp_config_load(other, &c), CKR_OK); /* explicit path wins */
    ck_assert_str_eq(c.tcti, "from-explicit");
    ksp_config_free(&c);
    /* A directory is not a config file: ignored, not fatal. */
    ck_assert_uint_eq(ksp_config_load(dir, &c), CKR_OK);
    ck_assert_ptr_null(c.conf_path);
    ck_assert_ptr_null(c.tcti);
    ksp_config_free(&c);
}
END_TEST

START_TEST(test_bad_lines_ignored)
{
    /* Good lines around every kind of bad one still apply. */
    size_t big = 1 << 20;
    char *text = malloc(big + 1024);
    size_t n = 0;
    n += (size_t)sprintf(text + n, "tcti = first\n");
    n += (size_t)sprintf(text + n, "this line has no equals sign\n");
    n += (size_t)sprintf(text + n, "= no key\n");
    n += (size_t)sprintf(text + n, "bad key! = x\n");
    n += (size_t)sprintf(text + n, "unknown_key = 1\n");
    n += (size_t)sprintf(text + n, "log_level = loud\n");
    n += (size_t)sprintf(text + n, "allow_software_tpm = perhaps\n");
    n += (size_t)sprintf(text + n, "fallback = tpm-only\n");
    n += (size_t)sprintf(text + n, "kdf_ms = 0\n");
    n += (size_t)sprintf(text + n, "kdf_ms = 12abc\n");
    n += (size_t)sprintf(text + n, "kdf_ms = 99999999999999999999999\n");
    n += (size_t)sprintf(text + n, "store =\n");
    memcpy(text + n, "denylist = /a\0/b\n", 17); /* NUL inside a line */
    n += 17;
    n += (size_t)sprintf(text + n, "log_file = ");
    memset(text + n, 'x', big); /* one very long line */
    n += big;
    text[n++] = '\n';
    n += (size_t)sprintf(text + n, "log_level = info\n");
    n += (size_t)sprintf(text + n, "kdf_ms = 7"); /* no final newline */

    struct ksp_config c = {0};
    c.log_level = KSP_LOG_WARN;
    c.fallback_software = true;
    c.allow_software_tpm = true;
    c.kdf_ms = 100;
    ksp_config_parse(text, n, &c);
    ck_assert_str_eq(c.tcti, "first");
    ck_assert_int_eq(c.log_level, KSP_LOG_INFO);
    ck_assert(c.allow_software_tpm);
    ck_assert(c.fallback_software);
    ck_assert_uint_eq(c.kdf_ms, 7);
    ck_assert_ptr_null(c.store_root);
    ck_assert_ptr_null(c.denylist);
    ck_assert_ptr_nonnull(c.log_file); /* a long path is still a path */
    ck_assert_uint_eq(strlen(c.log_file), big);
    ksp_config_free(&c);

    /* Empty tcti resets to the default order; parse on NULL/empty is safe. */
    c.tcti = strdup("x");
    ksp_config_parse("tcti =   \n", 10, &c);
    ck_assert_ptr_null(c.tcti);
    ksp_config_parse(NULL, 0, &c);
    ksp_config_parse("", 0, &c);
    ksp_config_free(&c);
    free(text);

    char lp[300];
    snprintf(lp, sizeof(lp), "%s/config.log", dir);
    char *log = read_all(lp);
    ck_assert_ptr_nonnull(strstr(log, "line 2: no '='"));
    ck_assert_ptr_nonnull(strstr(log, "unknown key 'unknown_key'"));
    ck_assert_ptr_nonnull(strstr(log, "NUL byte"));
    free(log);
}
END_TEST

START_TEST(test_file_with_nul_and_garbage)
{
    static const char data[] = "tcti = ok\n\0\0\0garbage\xff\xfe\nfallback = none\n";
    write_file(conf, data, sizeof(data) - 1);
    struct ksp_config c;
    ck_assert_uint_eq(ksp_config_load(conf, &c), CKR_OK);
    ck_assert_str_eq(c.tcti, "ok");
    ck_assert(!c.fallback_software);
    ksp_config_free(&c);
}
END_TEST

/* ---- log ---- */

START_TEST(test_log_level_parse_and_names)
{
    ck_assert_int_eq(ksp_log_level_parse("none"), KSP_LOG_NONE);
    ck_assert_int_eq(ksp_log_level_parse("ERROR"), KSP_LOG_ERROR);
    ck_assert_int_eq(ksp_log_level_parse("warn"), KSP_LOG_WARN);
    ck_assert_int_eq(ksp_log_level_parse("info"), KSP_LOG_INFO);
    ck_assert_int_eq(ksp_log_level_parse("debug"), KSP_LOG_DEBUG);
    ck_assert_int_eq(ksp_log_level_parse("3"), KSP_LOG_INFO);
    ck_assert_int_eq(ksp_log_level_parse("5"), -1);
    ck_assert_int_eq(ksp_log_level_parse("33"), -1);
    ck_assert_int_eq(ksp_log_level_parse(""), -1);
    ck_assert_int_eq(ksp_log_level_parse(NULL), -1);

    ck_assert_str_eq(ksp_rv_name(CKR_OK), "CKR_OK");
    ck_assert_str_eq(ksp_rv_name(CKR_PIN_INCORRECT), "CKR_PIN_INCORRECT");
    ck_assert_str_eq(ksp_rv_name(CKR_TOKEN_WRITE_PROTECTED), "CKR_TOKEN_WRITE_PROTECTED");
    ck_assert_str_eq(ksp_rv_name(CKR_ACTION_PROHIBITED), "CKR_ACTION_PROHIBITED");
    ck_assert_str_eq(ksp_rv_name(CKR_FUNCTION_REJECTED), "CKR_FUNCTION_REJECTED");
    ck_assert_str_eq(ksp_rv_name(0x202UL), "CKR_OPERATION_CANCEL_FAILED");
    ck_assert_str_eq(ksp_rv_name(0x12345UL), "CKR_0x00012345");
    ck_assert_str_eq(ksp_rv_name(CKR_VENDOR_DEFINED | 7UL), "CKR_0x80000007");
}
END_TEST

START_TEST(test_log_file_lines)
{
    char lp[300], lp2[300];
    snprintf(lp, sizeof(lp), "%s/a.log", dir);
    snprintf(lp2, sizeof(lp2), "%s/b.log", dir);
    mode_t old = umask(0);
    struct ksp_config c = {0};
    c.log_file = lp;
    c.log_level = KSP_LOG_INFO;
    ksp_log_open(&c);
    umask(old);
    ck_assert(ksp_log_enabled(KSP_LOG_INFO));
    ck_assert(!ksp_log_enabled(KSP_LOG_DEBUG));
    ck_assert(!ksp_log_enabled(KSP_LOG_NONE));
    ksp_info("store", "hello %d", 42);
    ksp_debug("store", "not shown");
    ksp_warn("api", "two\nlines\rhere");
    struct stat st;
    ck_assert_int_eq(stat(lp, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0600);

    /* Re-opening switches files (and closes the old one). */
    c.log_file = lp2;
    c.log_level = KSP_LOG_ERROR;
    ksp_log_open(&c);
    ksp_warn("api", "filtered");
    ksp_err("api", "to b");

    char *a = read_all(lp);
    ck_assert_uint_eq(count_char(a, '\n'), 2);
    char stamp[32];
    int pid = 0;
    char level[16], area[16];
    ck_assert_int_eq(sscanf(a, "%31s ksp11[%d] %15s %15[^:]:", stamp, &pid, level, area), 4);
    ck_assert_int_eq(pid, getpid());
    ck_assert_str_eq(level, "info");
    ck_assert_str_eq(area, "store");
    /* 2024-01-02T03:04:05.678Z */
    ck_assert_uint_eq(strlen(stamp), 24);
    ck_assert_int_eq(stamp[4], '-');
    ck_assert_int_eq(stamp[10], 'T');
    ck_assert_int_eq(stamp[23], 'Z');
    ck_assert_ptr_nonnull(strstr(a, ": hello 42\n"));
    ck_assert_ptr_nonnull(strstr(a, " warn api: two?lines?here\n"));
    ck_assert_ptr_null(strstr(a, "not shown"));
    ck_assert_ptr_null(strstr(a, "to b"));
    free(a);
    char *b = read_all(lp2);
    ck_assert_ptr_null(strstr(b, "filtered"));
    ck_assert_ptr_nonnull(strstr(b, " error api: to b\n"));
    free(b);

    c.log_level = KSP_LOG_NONE;
    ksp_log_open(&c);
    ksp_err("api", "silence");
    b = read_all(lp2);
    ck_assert_ptr_null(strstr(b, "silence"));
    free(b);
}
END_TEST

START_TEST(test_log_long_message_one_line)
{
    char lp[300];
    snprintf(lp, sizeof(lp), "%s/long.log", dir);
    struct ksp_config c = {0};
    c.log_file = lp;
    c.log_level = KSP_LOG_DEBUG;
    ksp_log_open(&c);
    char *big = malloc(10000);
    memset(big, 'y', 9999);
    big[9999] = '\0';
    ksp_debug("t", "%s", big);
    free(big);
    char *a = read_all(lp);
    ck_assert_uint_eq(count_char(a, '\n'), 1);
    ck_assert_ptr_nonnull(strstr(a, "...\n"));
    free(a);
}
END_TEST

#define LINES_PER_PROC 300

/* Lines of concurrent processes sharing the file never interleave. */
START_TEST(test_log_concurrent_processes)
{
    char lp[300];
    snprintf(lp, sizeof(lp), "%s/shared.log", dir);
    struct ksp_config c = {0};
    c.log_file = lp;
    c.log_level = KSP_LOG_INFO;
    ksp_log_open(&c);
    pid_t pids[2];
    for (int p = 0; p < 2; p++) {
        pids[p] = fork();
        ck_assert_int_ge(pids[p], 0);
        if (pids[p] == 0) {
            ksp_log_open(&c); /* as a child's C_Initialize would */
            char pad[400];
            memset(pad, 'a' + p, sizeof(pad) - 1);
            pad[sizeof(pad) - 1] = '\0';
            for (int i = 0; i < LINES_PER_PROC; i++)
                ksp_info("mp", "%d %s end", i, pad);
            _exit(0);
        }
    }
    for (int p = 0; p < 2; p++) {
        int st = 0;
        waitpid(pids[p], &st, 0);
        ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    FILE *f = fopen(lp, "r");
    ck_assert_ptr_nonnull(f);
    char line[1024];
    int count = 0;
    while (fgets(line, sizeof(line), f)) {
        count++;
        size_t l = strlen(line);
        ck_assert_msg(l > 5 && strcmp(line + l - 5, " end\n") == 0, "torn line: %s", line);
        const char *m = strstr(line, " mp: ");
        ck_assert_ptr_nonnull(m);
    }
    fclose(f);
    ck_assert_int_eq(count, 2 * LINES_PER_PROC);
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("config");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_defaults_missing_file);
    tcase_add_test(tc, test_xdg_store_root);
    tcase_add_test(tc, test_file_all_keys);
    tcase_add_test(tc, test_env_beats_file);
    tcase_add_test(tc, test_conf_path_selection);
    tcase_add_test(tc, test_bad_lines_ignored);
    tcase_add_test(tc, test_file_with_nul_and_garbage);
    suite_add_tcase(s, tc);

    TCase *lg = tcase_create("log");
    tcase_add_checked_fixture(lg, setup, teardown);
    tcase_add_test(lg, test_log_level_parse_and_names);
    tcase_add_test(lg, test_log_file_lines);
    tcase_add_test(lg, test_log_long_message_one_line);
    tcase_add_test(lg, test_log_concurrent_processes);
    suite_add_tcase(s, lg);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
