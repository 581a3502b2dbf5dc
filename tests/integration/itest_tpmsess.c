/*
 * The TPM backend's signing hot path (tpm/tpm_sess.c: our own salted HMAC
 * session over SAPI) and its cross-process lock (tpm/tpm_lock.c), against
 * swtpm without a resource manager; run by tests/integration/tpm_sess.sh,
 * which puts the counting TCTI (bench/tcti_count.c) in front of swtpm, so
 * the tests see every command that crosses the TPM interface:
 *   - a key's authValue never appears in any command or response, unsealed
 *     data only encrypted, and every TPM2_Sign / TPM2_RSA_Decrypt /
 *     TPM2_Unseal carries an HMAC session, never a password (TPM_RS_PW);
 *   - a wrong authValue is refused by the TPM (our HMAC is what it checks);
 *   - with KSP11_TPM_KEEP=1 a steady-state signature is one TPM command;
 *   - what a process left loaded (it exited without C_Finalize) is flushed
 *     by the next one through the lock's record;
 *   - 4 processes signing at once never meet a full TPM (no
 *     TPM_RC_OBJECT_MEMORY reaches any of them) and every signature verifies.
 * Signatures are checked with ksp_pub_verify (OpenSSL). CK_FORK is on.
 */
#include <check.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"
#include "ksp11/backend.h"
#include "log.h"
#include "secmem.h"
#include "swcrypto.h"
#include "../../tpm/tpm_diag.h"

#define ck_assert_rv(expr, want)                                                                   \
    do {                                                                                           \
        CK_RV got_rv_ = (expr);                                                                    \
        CK_RV want_rv_ = (want);                                                                   \
        ck_assert_msg(got_rv_ == want_rv_, "%s: got %s, want %s", #expr, ksp_rv_name(got_rv_),     \
                      ksp_rv_name(want_rv_));                                                      \
    } while (0)

#define OPS          (&ksp_tpm_backend)
#define COUNT_OBJMEM 1025

static struct ksp_config cfg;
static char dir[64];
static const char *plain_tcti; /* swtpm:path=... (no counting), for the diag */

struct tkey {
    struct ksp_buf blob, secret;
    struct ksp_pubkey pub;
};

static uint64_t counter(size_t slot)
{
    const char *path = getenv("KSP_TCTI_COUNT_FILE");
    uint64_t v = 0;
    int fd = path ? open(path, O_RDONLY) : -1;
    if (fd >= 0) {
        if (pread(fd, &v, sizeof(v), (off_t)(slot * sizeof(v))) != (ssize_t)sizeof(v))
            v = 0;
        close(fd);
    }
    return v;
}

static void setup(void)
{
    ck_assert_ptr_nonnull(getenv("KSP11_TCTI"));
    plain_tcti = getenv("KSP_TEST_PLAIN_TCTI");
    ck_assert_ptr_nonnull(plain_tcti);
    snprintf(dir, sizeof(dir), "/tmp/ksp11-itest-sess.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    setenv("KSP11_CONF", "/nonexistent", 1);
    setenv("KSP11_STORE", dir, 1);
    ck_assert_rv(ksp_config_load(NULL, &cfg), CKR_OK);
    ksp_log_open(&cfg);
}

static void teardown(void)
{
    char cmd[96];
    ksp_config_free(&cfg);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", dir);
}

static void assert_clean(void)
{
    CK_ULONG o = 1, s = 1;
    ck_assert_rv(ksp_tpm_diag_loaded(plain_tcti, &o, &s), CKR_OK);
    ck_assert_msg(o == 0 && s == 0, "left in the TPM: %lu objects, %lu sessions", o, s);
}

static void gen_ec(struct ksp_backend *be, struct tkey *t)
{
    struct ksp_keyspec spec = {
        .key_type = CKK_EC, .curve = KSP_CURVE_P256, .sign = CK_TRUE, .no_da = CK_TRUE};
    memset(t, 0, sizeof(*t));
    ck_assert_rv(OPS->keygen(be, &spec, &t->blob, &t->secret, &t->pub), CKR_OK);
    ck_assert_uint_eq(t->secret.len, 32);
}

static void gen_rsa(struct ksp_backend *be, struct tkey *t)
{
    struct ksp_keyspec spec = {.key_type = CKK_RSA,
                               .modulus_bits = 2048,
                               .sign = CK_TRUE,
                               .decrypt = CK_TRUE,
                               .no_da = CK_TRUE};
    memset(t, 0, sizeof(*t));
    ck_assert_rv(OPS->keygen(be, &spec, &t->blob, &t->secret, &t->pub), CKR_OK);
}

static void tkey_free(struct tkey *t)
{
    ksp_buf_free(&t->blob);
    ksp_buf_free(&t->secret);
    ksp_buf_free(&t->pub.modulus);
    ksp_buf_free(&t->pub.pub_exp);
    ksp_buf_free(&t->pub.ec_point);
}

/* ECDSA over a fixed digest with a loaded key; verified. */
static CK_RV sign_ec(struct ksp_bkey *k, const struct ksp_pubkey *pub, uint8_t tag)
{
    struct ksp_prim_args a = {.prim = KSP_PRIM_ECDSA};
    struct ksp_pubop p = {.kind = KSP_PUB_ECDSA};
    uint8_t md[32], sig[64];
    size_t len = sizeof(sig);
    memset(md, tag, sizeof(md));
    CK_RV rv = OPS->private_op(k, &a, md, sizeof(md), sig, &len);
    if (rv == CKR_OK && ksp_pub_verify(pub, &p, md, sizeof(md), sig, len) != CKR_OK)
        rv = CKR_SIGNATURE_INVALID;
    return rv;
}

static bool contains(const uint8_t *hay, size_t n, const uint8_t *needle, size_t m)
{
    for (size_t i = 0; i + m <= n; i++)
        if (memcmp(hay + i, needle, m) == 0)
            return true;
    return false;
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

START_TEST(auth_never_in_clear)
{
    char dump[96];
    struct ksp_backend *be = NULL;
    struct ksp_bkey *ke = NULL, *kr = NULL;
    struct tkey te, tr;
    snprintf(dump, sizeof(dump), "%s/dump", dir);
    setenv("KSP_TCTI_DUMP_FILE", dump, 1);
    ck_assert_rv(OPS->open(&cfg, &be), CKR_OK);
    gen_ec(be, &te);
    gen_rsa(be, &tr);
    ck_assert_rv(OPS->key_load(be, &te.blob, &te.secret, &ke), CKR_OK);
    ck_assert_rv(OPS->key_load(be, &tr.blob, &tr.secret, &kr), CKR_OK);
    for (int i = 0; i < 3; i++)
        ck_assert_rv(sign_ec(ke, &te.pub, (uint8_t)i), CKR_OK);
    /* RSA through raw RSA on a PKCS#1 v1.5 encoding (the core's path). */
    uint8_t di[51] = {0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01,
                      0x65, 0x03, 0x04, 0x02, 0x01, 0x05, 0x00, 0x04, 0x20};
    uint8_t em[256], sig[256];
    size_t len = sizeof(sig);
    memset(di + 19, 0x5a, 32);
    ck_assert_rv(ksp_emsa_pkcs1(di, sizeof(di), em, sizeof(em)), CKR_OK);
    struct ksp_prim_args raw = {.prim = KSP_PRIM_RSA_RAW};
    ck_assert_rv(OPS->private_op(kr, &raw, em, sizeof(em), sig, &len), CKR_OK);
    struct ksp_pubop p = {.kind = KSP_PUB_RSA_PKCS1};
    ck_assert_rv(ksp_pub_verify(&tr.pub, &p, di, sizeof(di), sig, len), CKR_OK);
    /* Sealed data (a token wrapping key) comes back encrypted. */
    uint8_t secret[32], pin_auth[32];
    struct ksp_buf sdata = {secret, sizeof(secret)}, sauth = {pin_auth, sizeof(pin_auth)};
    struct ksp_buf sblob = {NULL, 0}, out = {NULL, 0};
    memset(secret, 0xC3, sizeof(secret));
    memset(pin_auth, 0x3C, sizeof(pin_auth));
    ck_assert_rv(OPS->seal(be, &sdata, &sauth, CK_TRUE, &sblob), CKR_OK);
    ck_assert_rv(OPS->unseal(be, &sblob, &sauth, &out), CKR_OK);
    ck_assert_uint_eq(out.len, sizeof(secret));
    ck_assert_mem_eq(out.p, secret, sizeof(secret));
    pin_auth[0] ^= 1;
    ksp_buf_free(&out);
    ck_assert_rv(OPS->unseal(be, &sblob, &sauth, &out), CKR_PIN_INCORRECT);
    pin_auth[0] ^= 1;
    ksp_buf_free(&sblob);
    OPS->key_unload(ke);
    OPS->key_unload(kr);
    OPS->close(be);
    unsetenv("KSP_TCTI_DUMP_FILE");

    /* Everything that crossed the interface. */
    FILE *f = fopen(dump, "rb");
    ck_assert_ptr_nonnull(f);
    static uint8_t all[1 << 20];
    size_t n = fread(all, 1, sizeof(all), f);
    fclose(f);
    ck_assert_uint_gt(n, 0);
    ck_assert_msg(!contains(all, n, te.secret.p, te.secret.len), "EC authValue in clear");
    ck_assert_msg(!contains(all, n, tr.secret.p, tr.secret.len), "RSA authValue in clear");
    ck_assert_msg(!contains(all, n, secret, sizeof(secret)), "sealed data in clear");
    ck_assert_msg(!contains(all, n, pin_auth, sizeof(pin_auth)), "sealed object's auth in clear");
    int signs = 0, decrypts = 0;
    for (size_t off = 0; off + 4 <= n;) {
        size_t sz = be32(all + off) & 0x7FFFFFFFu;
        bool response = (all[off] & 0x80) != 0;
        const uint8_t *c = all + off + 4;
        ck_assert_uint_le(off + 4 + sz, n);
        ck_assert_uint_ge(sz, 10);
        uint32_t cc = be32(c + 6);
        if (!response && (cc == 0x15D || cc == 0x159 ||
                          cc == 0x15E)) { /* Sign, RSA_Decrypt, Unseal: one handle */
            ck_assert_msg(c[0] == 0x80 && c[1] == 0x02, "cc 0x%x without sessions", cc);
            uint32_t sh = be32(c + 18); /* header 10, handle 4, authSize 4 */
            ck_assert_msg(sh != 0x40000009u, "cc 0x%x authorised by a password", cc);
            ck_assert_msg((sh >> 24) == 0x02, "cc 0x%x: session 0x%08x is not HMAC", cc, sh);
            signs += cc == 0x15D;
            decrypts += cc == 0x159;
        }
        off += 4 + sz;
    }
    ck_assert_int_eq(signs, 3);
    ck_assert_int_eq(decrypts, 1);
    tkey_free(&te);
    tkey_free(&tr);
    assert_clean();
}
END_TEST

START_TEST(wrong_auth_refused)
{
    struct ksp_backend *be = NULL;
    struct ksp_bkey *k = NULL;
    struct tkey t;
    ck_assert_rv(OPS->open(&cfg, &be), CKR_OK);
    gen_ec(be, &t);
    t.secret.p[7] ^= 0x01;
    ck_assert_rv(OPS->key_load(be, &t.blob, &t.secret, &k), CKR_OK);
    CK_RV rv = sign_ec(k, &t.pub, 1);
    ck_assert_msg(rv == CKR_PIN_INCORRECT, "a wrong authValue gave %s", ksp_rv_name(rv));
    OPS->key_unload(k);
    t.secret.p[7] ^= 0x01;
    ck_assert_rv(OPS->key_load(be, &t.blob, &t.secret, &k), CKR_OK);
    ck_assert_rv(sign_ec(k, &t.pub, 2), CKR_OK);
    /* A truncated authValue is a different one (unless the byte cut is a
     * trailing zero, which the TPM ignores: Part 1 §19.6.5). */
    OPS->key_unload(k);
    if (t.secret.p[31] != 0) {
        t.secret.len = 31;
        ck_assert_rv(OPS->key_load(be, &t.blob, &t.secret, &k), CKR_OK);
        ck_assert_rv(sign_ec(k, &t.pub, 3), CKR_PIN_INCORRECT);
        t.secret.len = 32;
        OPS->key_unload(k);
    }
    OPS->close(be);
    tkey_free(&t);
    assert_clean();
}
END_TEST

START_TEST(keep_mode_one_command)
{
    struct ksp_backend *be = NULL;
    struct ksp_bkey *k = NULL;
    struct tkey t;
    setenv("KSP11_TPM_KEEP", "1", 1);
    ck_assert_rv(OPS->open(&cfg, &be), CKR_OK);
    gen_ec(be, &t);
    ck_assert_rv(OPS->key_load(be, &t.blob, &t.secret, &k), CKR_OK);
    ck_assert_rv(sign_ec(k, &t.pub, 0), CKR_OK);
    uint64_t c0 = counter(0);
    for (int i = 1; i <= 5; i++)
        ck_assert_rv(sign_ec(k, &t.pub, (uint8_t)i), CKR_OK);
    ck_assert_uint_eq(counter(0) - c0, 5);
    OPS->key_unload(k);
    OPS->close(be);
    unsetenv("KSP11_TPM_KEEP");
    tkey_free(&t);
    assert_clean();
}
END_TEST

/* A process that keeps its objects and exits without closing. */
static void leave_objects(const struct tkey *t)
{
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct ksp_backend *b = NULL;
        struct ksp_bkey *k = NULL;
        setenv("KSP11_TPM_KEEP", "1", 1);
        if (OPS->open(&cfg, &b) != CKR_OK || OPS->key_load(b, &t->blob, &t->secret, &k) != CKR_OK ||
            sign_ec(k, &t->pub, 9) != CKR_OK)
            _exit(1);
        _exit(0); /* no key_unload, no close: primary, key and session stay */
    }
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed (status %d)", st);
}

START_TEST(leftovers_flushed_by_next)
{
    struct ksp_backend *be = NULL;
    struct ksp_bkey *k = NULL;
    struct tkey t;
    ck_assert_rv(OPS->open(&cfg, &be), CKR_OK);
    gen_ec(be, &t);
    OPS->close(be);
    leave_objects(&t);
    CK_ULONG o = 0, s = 0;
    ck_assert_rv(ksp_tpm_diag_loaded(plain_tcti, &o, &s), CKR_OK);
    ck_assert_msg(o >= 1 && s >= 1, "the child left nothing (%lu, %lu)", o, s);
    /* Two more such processes would fill the TPM without the record. */
    leave_objects(&t);
    uint64_t objmem = counter(COUNT_OBJMEM);
    ck_assert_rv(OPS->open(&cfg, &be), CKR_OK);
    ck_assert_rv(OPS->key_load(be, &t.blob, &t.secret, &k), CKR_OK);
    ck_assert_rv(sign_ec(k, &t.pub, 1), CKR_OK);
    ck_assert_uint_eq(counter(COUNT_OBJMEM), objmem);
    OPS->key_unload(k);
    OPS->close(be);
    tkey_free(&t);
    assert_clean();
}
END_TEST

START_TEST(four_processes_sign)
{
    struct ksp_backend *be = NULL;
    struct tkey t;
    pid_t pids[4];
    ck_assert_rv(OPS->open(&cfg, &be), CKR_OK);
    gen_ec(be, &t);
    OPS->close(be);
    uint64_t objmem = counter(COUNT_OBJMEM), c0 = counter(0);
    for (int i = 0; i < 4; i++) {
        pids[i] = fork();
        ck_assert_int_ge(pids[i], 0);
        if (pids[i] == 0) {
            struct ksp_backend *b = NULL;
            struct ksp_bkey *k = NULL;
            alarm(120);
            if (OPS->open(&cfg, &b) != CKR_OK || OPS->key_load(b, &t.blob, &t.secret, &k) != CKR_OK)
                _exit(2);
            for (int j = 0; j < 15; j++)
                if (sign_ec(k, &t.pub, (uint8_t)(i * 16 + j)) != CKR_OK)
                    _exit(3);
            OPS->key_unload(k);
            OPS->close(b);
            _exit(0);
        }
    }
    for (int i = 0; i < 4; i++) {
        int st = 0;
        ck_assert_int_eq(waitpid(pids[i], &st, 0), pids[i]);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "process %d: status %d", i, st);
    }
    /* 60 signatures happened, and no process ever met a full TPM. */
    ck_assert_uint_ge(counter(0 + 1 + (0x15D & 0x3FF)), 60);
    ck_assert_uint_gt(counter(0), c0);
    ck_assert_uint_eq(counter(COUNT_OBJMEM), objmem);
    tkey_free(&t);
    assert_clean();
}
END_TEST

int main(void)
{
    Suite *su = suite_create("tpm_sess");
    TCase *tc = tcase_create("tpm_sess");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 240);
    tcase_add_test(tc, auth_never_in_clear);
    tcase_add_test(tc, wrong_auth_refused);
    tcase_add_test(tc, keep_mode_one_command);
    tcase_add_test(tc, leftovers_flushed_by_next);
    tcase_add_test(tc, four_processes_sign);
    suite_add_tcase(su, tc);
    SRunner *sr = srunner_create(su);
    srunner_run_all(sr, CK_ENV);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
