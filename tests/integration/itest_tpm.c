/*
 * Integration tests of the TPM backend (tpm/) against swtpm, driven by
 * tests/integration/tpm_backend.sh, which starts the TPMs and exports
 * KSP11_TCTI. Every result is checked independently: signatures with
 * ksp_pub_verify (PSS strictly with salt = hash length), ECDH against
 * OpenSSL, and the TPM's handle lists over a connection of the test's own
 * (after every test no transient object or session may be left loaded; while
 * a backend is connected only its storage primary may stay).
 *
 *   itest_tpm main     TPM 2.0 swtpm: identity, caps and their cache, keys,
 *                      every primitive, sealing, corrupted blobs, 100 cycles,
 *                      fork; plus the no-TPM cases
 *   itest_tpm tpm12    TPM 1.2 swtpm: refused cleanly, nothing on stderr
 *   itest_tpm lockout  fresh TPM 2.0 swtpm: dictionary-attack lockout
 *   itest_tpm persistent  fresh TPM 2.0 swtpm: a storage key at 0x81000001
 *   itest_tpm restart  KSP11_TEST_SWTPM_DIR: swtpm killed and restarted
 *   itest_tpm notpm    absent / unreachable / forbidden / TPM 1.2 by sysfs
 *
 * CK_FORK is on: each test runs in its own process with its own backend.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>

#include "config.h"
#include "ksp11/backend.h"
#include "ksp11/ksp11.h"
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

#define OPS (&ksp_tpm_backend)

static struct ksp_config cfg;
static struct ksp_backend *be;
static char store[96]; /* <base_dir>/t.XXXXXX */
static const char *tcti;
static CK_ULONG base_objects, base_sessions;

/* A generated key and its loaded handle. */
struct tkey {
    struct ksp_buf blob, secret;
    struct ksp_pubkey pub;
    struct ksp_bkey *k;
};

static void loaded(CK_ULONG *objects, CK_ULONG *sessions)
{
    ck_assert_rv(ksp_tpm_diag_loaded(tcti, objects, sessions), CKR_OK);
}

/* swtpm has no resource manager: between calls nothing of ours is loaded,
 * unless the backend keeps its primary (keep_mode, KSP11_TPM_KEEP_PRIMARY=1,
 * what it does behind /dev/tpmrm0): then that primary and nothing else. */
static bool keep_mode;

static void assert_only_primary(void)
{
    CK_ULONG o = 0, s = 0;

    loaded(&o, &s);
    ck_assert_msg(o <= base_objects + (keep_mode ? 1 : 0),
                  "%lu transient objects loaded (base %lu)", o, base_objects);
    ck_assert_msg(s == base_sessions, "%lu sessions loaded (base %lu)", s, base_sessions);
}

/* Reopen the backend under test with the primary kept loaded. */
static void reopen_keeping_primary(void)
{
    OPS->close(be);
    be = NULL;
    setenv("KSP11_TPM_KEEP_PRIMARY", "1", 1);
    keep_mode = true;
    ck_assert_rv(OPS->open(&cfg, &be), CKR_OK);
}

static void assert_nothing_loaded(void)
{
    CK_ULONG o = 0, s = 0;

    loaded(&o, &s);
    ck_assert_msg(o == base_objects && s == base_sessions, "left loaded: %lu objects, %lu sessions",
                  o, s);
}

/* The runner's directory (made in main, removed there: a failed assertion
 * ends a test process with _exit, skipping its teardown) and the test's
 * store inside it. A failing test can leak a primary only in keep mode;
 * otherwise nothing of ours is loaded between calls (tpm_ctx.c). */
static char base_dir[64]; /* "/tmp/ksp11-itest-tpm.XXXXXX" */

static void rm_rf(const char *dir)
{
    char cmd[160];

    if (strncmp(dir, "/tmp/ksp11-itest-tpm.", 21) == 0) {
        snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
        if (system(cmd) != 0) {
            fprintf(stderr, "could not remove %s\n", dir);
        }
    }
}

static void rm_store(void)
{
    rm_rf(store);
    store[0] = '\0';
}

static void config_setup(void)
{
    snprintf(store, sizeof(store), "%s/t.XXXXXX", base_dir);
    ck_assert_ptr_nonnull(mkdtemp(store));
    setenv("KSP11_CONF", "/nonexistent", 1);
    setenv("KSP11_STORE", store, 1);
    ck_assert_rv(ksp_config_load(NULL, &cfg), CKR_OK);
    ksp_log_open(&cfg);
}

static void setup(void)
{
    tcti = getenv("KSP11_TCTI");
    ck_assert_msg(tcti != NULL, "KSP11_TCTI not set (run tests/integration/tpm_backend.sh)");
    config_setup();
    ck_assert_str_eq(cfg.tcti, tcti);
    loaded(&base_objects, &base_sessions);
    ck_assert_rv(OPS->open(&cfg, &be), CKR_OK);
}

static void teardown(void)
{
    OPS->close(be);
    be = NULL;
    assert_nothing_loaded();
    ksp_config_free(&cfg);
    rm_store();
}

static void tkey_free(struct tkey *t)
{
    OPS->key_unload(t->k);
    ksp_buf_free(&t->blob);
    ksp_buf_free(&t->secret);
    ksp_buf_free(&t->pub.modulus);
    ksp_buf_free(&t->pub.pub_exp);
    ksp_buf_free(&t->pub.ec_point);
    memset(t, 0, sizeof(*t));
}

static void gen(struct ksp_backend *b, const struct ksp_keyspec *spec, struct tkey *t)
{
    memset(t, 0, sizeof(*t));
    ck_assert_rv(OPS->keygen(b, spec, &t->blob, &t->secret, &t->pub), CKR_OK);
    ck_assert_uint_eq(t->secret.len, 32);
    ck_assert_rv(OPS->key_load(b, &t->blob, &t->secret, &t->k), CKR_OK);
}

static void gen_rsa(struct tkey *t, CK_ULONG bits)
{
    struct ksp_keyspec spec = {.key_type = CKK_RSA,
                               .modulus_bits = bits,
                               .sign = CK_TRUE,
                               .decrypt = CK_TRUE,
                               .no_da = CK_TRUE};

    gen(be, &spec, t);
    ck_assert_uint_eq(t->pub.modulus.len, bits / 8);
    ck_assert_uint_ge(t->pub.modulus.p[0], 0x80);
    ck_assert_uint_eq(t->pub.pub_exp.len, 3);
    ck_assert_mem_eq(t->pub.pub_exp.p, "\x01\x00\x01", 3);
}

static void gen_ec(struct ksp_backend *b, struct tkey *t, enum ksp_curve c, CK_BBOOL derive)
{
    struct ksp_keyspec spec = {
        .key_type = CKK_EC, .curve = c, .sign = CK_TRUE, .derive = derive, .no_da = CK_TRUE};

    gen(b, &spec, t);
    ck_assert_uint_eq(t->pub.ec_point.len, 1 + 2 * ksp_ec_field_bytes(c));
    ck_assert_uint_eq(t->pub.ec_point.p[0], 0x04);
}

static CK_RV op(struct ksp_bkey *k, enum ksp_prim prim, CK_MECHANISM_TYPE hash, const uint8_t *in,
                size_t in_len, uint8_t *out, size_t *out_len)
{
    struct ksp_prim_args a = {.prim = prim, .hash = hash, .mgf_hash = hash};

    return OPS->private_op(k, &a, in, in_len, out, out_len);
}

static CK_RV verify(const struct ksp_pubkey *pub, int kind, CK_MECHANISM_TYPE hash, size_t salt,
                    const uint8_t *data, size_t len, const uint8_t *sig, size_t sig_len)
{
    struct ksp_pubop p = {.hash = hash, .mgf_hash = hash, .salt_len = salt};

    p.kind = kind;
    return ksp_pub_verify(pub, &p, data, len, sig, sig_len);
}

static void digest(CK_MECHANISM_TYPE hash, const char *msg, uint8_t *out)
{
    ck_assert_rv(ksp_digest(hash, (const uint8_t *)msg, strlen(msg), out), CKR_OK);
}

/* ---- identity and capabilities ---- */

START_TEST(test_identity)
{
    struct ksp_tpm_identity id, again;

    ck_assert_rv(OPS->identity(be, &id), CKR_OK);
    ck_assert_msg(id.present, "not present: %s (%s)", id.error, id.detail);
    ck_assert(!id.is_tpm12);
    ck_assert_str_eq(id.manufacturer, "IBM");
    ck_assert_ptr_nonnull(strstr(id.vendor, "SW"));
    ck_assert_uint_ne(id.fw1, 0);
    ck_assert_uint_ge(id.revision, 100);
    ck_assert_str_eq(id.error, "");
    ck_assert_rv(OPS->identity(be, &again), CKR_OK);
    ck_assert_mem_eq(&id, &again, sizeof(id));
    /* Reading the identity needs no key: nothing loaded. */
    assert_nothing_loaded();
}
END_TEST

static bool has_rsa(const struct ksp_caps *c, CK_ULONG bits)
{
    for (int i = 0; i < 4 && c->rsa_sizes[i] != 0; i++) {
        if (c->rsa_sizes[i] == bits) {
            return true;
        }
    }
    return false;
}

static bool has_curve(const struct ksp_caps *c, enum ksp_curve cv)
{
    for (int i = 0; i < 4 && c->curves[i] != KSP_CURVE_NONE; i++) {
        if (c->curves[i] == cv) {
            return true;
        }
    }
    return false;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");

    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

static size_t read_file(const char *path, char *buf, size_t cap)
{
    FILE *f = fopen(path, "r");
    size_t n = 0;

    ck_assert_ptr_nonnull(f);
    n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
    return n;
}

/* A second instance of the backend reads the cache; returns native_pss. */
static CK_BBOOL native_pss_of_new_instance(void)
{
    struct ksp_backend *b2 = NULL;
    CK_BBOOL native = CK_FALSE;

    ck_assert_rv(OPS->open(&cfg, &b2), CKR_OK);
    native = OPS->caps(b2)->native_pss;
    OPS->close(b2);
    return native;
}

START_TEST(test_caps_and_cache)
{
    const struct ksp_caps *c = OPS->caps(be);
    char path[PATH_MAX];
    char text[1024];
    char *p = NULL;
    struct stat st;

    ck_assert_ptr_nonnull(c);
    ck_assert(c->hardware);
    ck_assert(has_rsa(c, 2048));
    ck_assert(has_curve(c, KSP_CURVE_P256));
    ck_assert_uint_eq(c->rsa_min_bits, 2048);
    /* Debian 12's libtpms 0.9 signs PSS with salt = hash length
     * (semantics.md §5) even though it reports TPM_PT_MODES = 0. */
    ck_assert(c->native_pss);
    assert_only_primary();

    /* Cached across processes in <store_root>/.tpm-caps, 0600. */
    snprintf(path, sizeof(path), "%s/.tpm-caps", store);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_uint_eq(st.st_mode & 0777, 0600);
    read_file(path, text, sizeof(text));
    ck_assert_msg(strstr(text, "ksp11-tpm-caps 1\ntpm 49424d 535720202054504d ") != NULL &&
                      strstr(text, "\npss 1\n") != NULL,
                  "cache file:\n%s", text);

    /* A second instance believes the file: edit the verdict and see it. */
    p = strstr(text, "\npss 1\n");
    p[5] = '0';
    write_file(path, text);
    ck_assert(!native_pss_of_new_instance());
    /* Another TPM's entry is ignored: probed again and rewritten. */
    p = strstr(text, "tpm 49424d ");
    ck_assert_ptr_nonnull(p);
    p[4] = '5';
    write_file(path, text);
    ck_assert(native_pss_of_new_instance());
    read_file(path, text, sizeof(text));
    ck_assert_ptr_nonnull(strstr(text, "tpm 49424d "));
    /* Garbage is hostile input: ignored, probed again. */
    write_file(path, "ksp11-tpm-caps 1\ntpm \xff\n\n\n\n\n\n");
    ck_assert(native_pss_of_new_instance());
    write_file(path, "");
    ck_assert(native_pss_of_new_instance());
}
END_TEST

/* ---- RSA ---- */

START_TEST(test_rsa_sign)
{
    struct tkey t;
    uint8_t md[64], em[512], sig[512], ti[128];
    size_t len = 0, tlen = sizeof(ti);
    static const CK_MECHANISM_TYPE hashes[] = {CKM_SHA_1, CKM_SHA256, CKM_SHA384, CKM_SHA512};

    gen_rsa(&t, 2048);
    assert_only_primary();
    for (size_t i = 0; i < 4; i++) {
        CK_MECHANISM_TYPE h = hashes[i];
        size_t hl = ksp_hash_len(h);

        digest(h, "message to sign", md);
        /* The core's PSS synthesis: EMSA-PSS here, raw RSA in the TPM. */
        ck_assert_rv(ksp_emsa_pss(h, h, hl, md, hl, 2048, em), CKR_OK);
        len = sizeof(sig);
        ck_assert_rv(op(t.k, KSP_PRIM_RSA_RAW, 0, em, 256, sig, &len), CKR_OK);
        ck_assert_uint_eq(len, 256);
        ck_assert_rv(verify(&t.pub, KSP_PUB_RSA_PSS, h, hl, md, hl, sig, len), CKR_OK);

        /* Native PSS: strictly salt = hash length (TLS 1.3). */
        len = sizeof(sig);
        ck_assert_rv(op(t.k, KSP_PRIM_RSA_PSS_SIGN, h, md, hl, sig, &len), CKR_OK);
        ck_assert_uint_eq(len, 256);
        ck_assert_rv(verify(&t.pub, KSP_PUB_RSA_PSS, h, hl, md, hl, sig, len), CKR_OK);
        ck_assert_rv(verify(&t.pub, KSP_PUB_RSA_PSS, h, 0, md, hl, sig, len),
                     CKR_SIGNATURE_INVALID);

        /* PKCS#1 v1.5 is padded by the core, raw RSA here. */
        tlen = sizeof(ti);
        ck_assert_rv(ksp_digestinfo(h, md, hl, ti, &tlen), CKR_OK);
        ck_assert_rv(op(t.k, KSP_PRIM_RSA_PKCS1_SIGN, 0, ti, tlen, sig, &len),
                     CKR_MECHANISM_INVALID);
        ck_assert_rv(ksp_emsa_pkcs1(ti, tlen, em, 256), CKR_OK);
        len = sizeof(sig);
        ck_assert_rv(op(t.k, KSP_PRIM_RSA_RAW, 0, em, 256, sig, &len), CKR_OK);
        ck_assert_rv(verify(&t.pub, KSP_PUB_RSA_PKCS1, h, 0, ti, tlen, sig, len), CKR_OK);
    }
    /* Output-length convention (backend.h). */
    len = 0;
    ck_assert_rv(op(t.k, KSP_PRIM_RSA_RAW, 0, em, 256, NULL, &len), CKR_OK);
    ck_assert_uint_eq(len, 256);
    len = 255;
    ck_assert_rv(op(t.k, KSP_PRIM_RSA_RAW, 0, em, 256, sig, &len), CKR_BUFFER_TOO_SMALL);
    ck_assert_uint_eq(len, 256);
    /* Bad input, answered before the TPM. */
    len = sizeof(sig);
    ck_assert_rv(op(t.k, KSP_PRIM_RSA_RAW, 0, em, 255, sig, &len), CKR_DATA_LEN_RANGE);
    memset(em, 0xFF, 256);
    ck_assert_rv(op(t.k, KSP_PRIM_RSA_RAW, 0, em, 256, sig, &len), CKR_DATA_LEN_RANGE);
    ck_assert_rv(op(t.k, KSP_PRIM_ECDSA, 0, md, 32, sig, &len), CKR_KEY_TYPE_INCONSISTENT);
    {
        /* MGF1 with another hash: left to the core's synthesis. */
        struct ksp_prim_args a = {
            .prim = KSP_PRIM_RSA_PSS_SIGN, .hash = CKM_SHA256, .mgf_hash = CKM_SHA_1};

        ck_assert_rv(OPS->private_op(t.k, &a, md, 32, sig, &len), CKR_MECHANISM_INVALID);
    }
    assert_only_primary();
    tkey_free(&t);
}
END_TEST

START_TEST(test_rsa_decrypt)
{
    struct tkey t;
    static const char msg[] = "the token wrapping key";
    uint8_t ct[512], pt[512];
    size_t ct_len = 0, len = 0;
    struct ksp_pubop enc = {.kind = KSP_PUB_RSA_PKCS1};
    static const CK_MECHANISM_TYPE oaep[] = {CKM_SHA_1, CKM_SHA256};

    gen_rsa(&t, 2048);
    ct_len = sizeof(ct);
    ck_assert_rv(ksp_pub_encrypt(&t.pub, &enc, (const uint8_t *)msg, sizeof(msg), ct, &ct_len),
                 CKR_OK);
    ck_assert_uint_eq(ct_len, 256);
    len = 0;
    ck_assert_rv(op(t.k, KSP_PRIM_RSA_DECRYPT_PKCS1, 0, ct, ct_len, NULL, &len), CKR_OK);
    ck_assert_uint_eq(len, 256 - 11);
    /* Too small: the exact length, after decrypting. */
    len = 5;
    ck_assert_rv(op(t.k, KSP_PRIM_RSA_DECRYPT_PKCS1, 0, ct, ct_len, pt, &len),
                 CKR_BUFFER_TOO_SMALL);
    ck_assert_uint_eq(len, sizeof(msg));
    ck_assert_rv(op(t.k, KSP_PRIM_RSA_DECRYPT_PKCS1, 0, ct, ct_len, pt, &len), CKR_OK);
    ck_assert_uint_eq(len, sizeof(msg));
    ck_assert_mem_eq(pt, msg, sizeof(msg));
    /* A valid RSA input that is not a PKCS#1 encryption block. */
    ct[0] = 0;
    ct[100] ^= 1;
    len = sizeof(pt);
    ck_assert_rv(op(t.k, KSP_PRIM_RSA_DECRYPT_PKCS1, 0, ct, 256, pt, &len),
                 CKR_ENCRYPTED_DATA_INVALID);
    ck_assert_rv(op(t.k, KSP_PRIM_RSA_DECRYPT_PKCS1, 0, ct, 255, pt, &len),
                 CKR_ENCRYPTED_DATA_LEN_RANGE);

    for (size_t i = 0; i < 2; i++) {
        struct ksp_pubop o = {.kind = KSP_PUB_RSA_OAEP, .hash = oaep[i], .mgf_hash = oaep[i]};
        struct ksp_prim_args a = {
            .prim = KSP_PRIM_RSA_DECRYPT_OAEP, .hash = oaep[i], .mgf_hash = oaep[i]};

        ct_len = sizeof(ct);
        ck_assert_rv(ksp_pub_encrypt(&t.pub, &o, (const uint8_t *)msg, sizeof(msg), ct, &ct_len),
                     CKR_OK);
        len = sizeof(pt);
        ck_assert_rv(OPS->private_op(t.k, &a, ct, ct_len, pt, &len), CKR_OK);
        ck_assert_uint_eq(len, sizeof(msg));
        ck_assert_mem_eq(pt, msg, sizeof(msg));
        /* TPM OAEP labels are NUL-terminated strings: not native, the core
         * decodes a labelled OAEP after RSA_RAW (backend.h). */
        a.label = (const uint8_t *)"label";
        a.label_len = 5;
        ck_assert_rv(OPS->private_op(t.k, &a, ct, ct_len, pt, &len), CKR_MECHANISM_INVALID);
        /* Not native: MGF1 with another hash, SHA-224 (backend.h: the
         * core may synthesise what returns CKR_MECHANISM_INVALID). */
        a.label = NULL;
        a.label_len = 0;
        a.mgf_hash = CKM_SHA512;
        ck_assert_rv(OPS->private_op(t.k, &a, ct, ct_len, pt, &len), CKR_MECHANISM_INVALID);
        a.hash = CKM_SHA224;
        a.mgf_hash = CKM_SHA224;
        ck_assert_rv(OPS->private_op(t.k, &a, ct, ct_len, pt, &len), CKR_MECHANISM_INVALID);
    }
    assert_only_primary();
    tkey_free(&t);
}
END_TEST

START_TEST(test_rsa_3072_and_wrong_auth)
{
    struct tkey t;
    struct ksp_bkey *bad = NULL;
    struct ksp_da_state da0, da1;
    uint8_t md[32], sig[384];
    size_t len = sizeof(sig);

    if (!has_rsa(OPS->caps(be), 3072)) {
        return;
    }
    gen_rsa(&t, 3072);
    digest(CKM_SHA256, "3072", md);
    ck_assert_rv(op(t.k, KSP_PRIM_RSA_PSS_SIGN, CKM_SHA256, md, 32, sig, &len), CKR_OK);
    ck_assert_uint_eq(len, 384);
    ck_assert_rv(verify(&t.pub, KSP_PUB_RSA_PSS, CKM_SHA256, 32, md, 32, sig, len), CKR_OK);

    /* A wrong authValue: PIN_INCORRECT, and a noDA key does not count. */
    ck_assert_rv(OPS->da_state(be, &da0), CKR_OK);
    t.secret.p[0] ^= 0x55;
    ck_assert_rv(OPS->key_load(be, &t.blob, &t.secret, &bad), CKR_OK);
    len = sizeof(sig);
    ck_assert_rv(op(bad, KSP_PRIM_RSA_PSS_SIGN, CKM_SHA256, md, 32, sig, &len), CKR_PIN_INCORRECT);
    ck_assert_rv(OPS->da_state(be, &da1), CKR_OK);
    ck_assert_uint_eq(da1.failures, da0.failures);
    OPS->key_unload(bad);
    assert_only_primary();
    tkey_free(&t);
}
END_TEST

START_TEST(test_keygen_refusals)
{
    static const uint8_t e3[] = {0x03};
    static const uint8_t f4_padded[] = {0x00, 0x01, 0x00, 0x01};
    struct ksp_keyspec spec = {.key_type = CKK_RSA, .modulus_bits = 2048, .sign = CK_TRUE};
    struct ksp_buf blob = {NULL, 0}, secret = {NULL, 0};
    struct ksp_pubkey pub;
    struct tkey t;

    memset(&pub, 0, sizeof(pub));
    /* Only 65537, as most TPMs (semantics.md §1.4). */
    spec.pub_exp = e3;
    spec.pub_exp_len = sizeof(e3);
    ck_assert_rv(OPS->keygen(be, &spec, &blob, &secret, &pub), CKR_TEMPLATE_INCONSISTENT);
    spec.modulus_bits = 4096;
    spec.pub_exp = NULL;
    spec.pub_exp_len = 0;
    ck_assert_rv(OPS->keygen(be, &spec, &blob, &secret, &pub), CKR_KEY_SIZE_RANGE);
    spec.modulus_bits = 1024;
    ck_assert_rv(OPS->keygen(be, &spec, &blob, &secret, &pub), CKR_KEY_SIZE_RANGE);
    spec.key_type = CKK_EC;
    spec.curve = KSP_CURVE_P521;
    ck_assert_rv(OPS->keygen(be, &spec, &blob, &secret, &pub), CKR_CURVE_NOT_SUPPORTED);
    spec.key_type = CKK_AES;
    ck_assert_rv(OPS->keygen(be, &spec, &blob, &secret, &pub), CKR_KEY_TYPE_INCONSISTENT);
    ck_assert_ptr_null(blob.p);
    ck_assert_ptr_null(secret.p);
    ck_assert_ptr_null(pub.modulus.p);
    /* 65537 with a leading zero byte is 65537. */
    memset(&spec, 0, sizeof(spec));
    spec.key_type = CKK_RSA;
    spec.modulus_bits = 2048;
    spec.pub_exp = f4_padded;
    spec.pub_exp_len = sizeof(f4_padded);
    spec.no_da = CK_TRUE;
    memset(&t, 0, sizeof(t));
    ck_assert_rv(OPS->keygen(be, &spec, &t.blob, &t.secret, &t.pub), CKR_OK);
    ck_assert_mem_eq(t.pub.pub_exp.p, "\x01\x00\x01", 3);
    assert_only_primary();
    tkey_free(&t);
}
END_TEST

/* ---- ECC ---- */

/* An OpenSSL EVP_PKEY for a raw uncompressed point (default context). */
static EVP_PKEY *ossl_pub(enum ksp_curve c, const struct ksp_buf *point)
{
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    EVP_PKEY *pk = NULL;

    ck_assert_ptr_nonnull(bld);
    ck_assert_ptr_nonnull(ctx);
    ck_assert(OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                              c == KSP_CURVE_P256 ? "P-256" : "P-384", 0));
    ck_assert(OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point->p, point->len));
    params = OSSL_PARAM_BLD_to_param(bld);
    ck_assert_ptr_nonnull(params);
    ck_assert_int_eq(EVP_PKEY_fromdata_init(ctx), 1);
    ck_assert_int_eq(EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params), 1);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    return pk;
}

static void ecdh_check(struct tkey *t, enum ksp_curve c)
{
    size_t fs = ksp_ec_field_bytes(c);
    EVP_PKEY *peer = EVP_EC_gen(c == KSP_CURVE_P256 ? "P-256" : "P-384");
    EVP_PKEY *tpm_pub = ossl_pub(c, &t->pub.ec_point);
    EVP_PKEY_CTX *dctx = NULL;
    uint8_t point[1 + 2 * 48], z[48], z_ossl[48];
    size_t point_len = 0, len = sizeof(z), zl = sizeof(z_ossl);

    ck_assert_ptr_nonnull(peer);
    ck_assert_int_eq(EVP_PKEY_get_octet_string_param(peer, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY,
                                                     point, sizeof(point), &point_len),
                     1);
    ck_assert_uint_eq(point_len, 1 + 2 * fs);
    ck_assert_rv(op(t->k, KSP_PRIM_ECDH, 0, point, point_len, z, &len), CKR_OK);
    ck_assert_uint_eq(len, fs);
    dctx = EVP_PKEY_CTX_new(peer, NULL);
    ck_assert_ptr_nonnull(dctx);
    ck_assert_int_eq(EVP_PKEY_derive_init(dctx), 1);
    ck_assert_int_eq(EVP_PKEY_derive_set_peer(dctx, tpm_pub), 1);
    ck_assert_int_eq(EVP_PKEY_derive(dctx, z_ossl, &zl), 1);
    ck_assert_uint_eq(zl, fs);
    ck_assert_mem_eq(z, z_ossl, fs);
    /* A point off the curve, and a point of the wrong length. */
    point[point_len - 1] ^= 1;
    len = sizeof(z);
    ck_assert_rv(op(t->k, KSP_PRIM_ECDH, 0, point, point_len, z, &len),
                 CKR_MECHANISM_PARAM_INVALID);
    ck_assert_rv(op(t->k, KSP_PRIM_ECDH, 0, point, point_len - 1, z, &len),
                 CKR_MECHANISM_PARAM_INVALID);
    EVP_PKEY_CTX_free(dctx);
    EVP_PKEY_free(peer);
    EVP_PKEY_free(tpm_pub);
}

START_TEST(test_ec)
{
    static const enum ksp_curve curves[2] = {KSP_CURVE_P256, KSP_CURVE_P384};
    /* SHA-1, SHA-224, SHA-256, SHA-384, SHA-512 sized digests, and odd ones. */
    static const size_t dlens[] = {20, 28, 32, 48, 64, 1, 33, 65};
    const struct ksp_caps *caps = OPS->caps(be);

    for (int ci = 0; ci < 2; ci++) {
        struct tkey t, nod;
        size_t fs = ksp_ec_field_bytes(curves[ci]);
        uint8_t md[65], sig[96];
        size_t len = 0;

        if (!has_curve(caps, curves[ci])) {
            ck_assert_int_eq(curves[ci], KSP_CURVE_P384); /* P-256 is required */
            continue;
        }
        gen_ec(be, &t, curves[ci], CK_TRUE);
        for (size_t i = 0; i < sizeof(dlens) / sizeof(dlens[0]); i++) {
            for (size_t j = 0; j < dlens[i]; j++) {
                md[j] = (uint8_t)(0xA5 ^ (j * 7) ^ dlens[i]);
            }
            len = sizeof(sig);
            ck_assert_rv(op(t.k, KSP_PRIM_ECDSA, 0, md, dlens[i], sig, &len), CKR_OK);
            ck_assert_uint_eq(len, 2 * fs);
            /* As any ECDSA verifier reads a digest of that length. */
            ck_assert_msg(verify(&t.pub, KSP_PUB_ECDSA, 0, 0, md, dlens[i], sig, len) == CKR_OK,
                          "ECDSA curve %d digest %zu bytes", (int)curves[ci], dlens[i]);
        }
        len = 0;
        ck_assert_rv(op(t.k, KSP_PRIM_ECDSA, 0, md, 32, NULL, &len), CKR_OK);
        ck_assert_uint_eq(len, 2 * fs);
        len = 2 * fs - 1;
        ck_assert_rv(op(t.k, KSP_PRIM_ECDSA, 0, md, 32, sig, &len), CKR_BUFFER_TOO_SMALL);
        len = sizeof(sig);
        ck_assert_rv(op(t.k, KSP_PRIM_ECDSA, 0, md, 0, sig, &len), CKR_DATA_LEN_RANGE);
        ck_assert_rv(op(t.k, KSP_PRIM_RSA_RAW, 0, md, 32, sig, &len), CKR_KEY_TYPE_INCONSISTENT);
        ecdh_check(&t, curves[ci]);

        /* Made without derive: the TPM refuses ECDH_ZGen. */
        gen_ec(be, &nod, curves[ci], CK_FALSE);
        len = sizeof(sig);
        ck_assert_rv(op(nod.k, KSP_PRIM_ECDH, 0, t.pub.ec_point.p, t.pub.ec_point.len, sig, &len),
                     CKR_KEY_FUNCTION_NOT_PERMITTED);
        assert_only_primary();
        tkey_free(&nod);
        tkey_free(&t);
    }
}
END_TEST

/* ---- sealing and the DA counter ---- */

START_TEST(test_seal)
{
    uint8_t secret[32];
    struct ksp_buf data = {secret, sizeof(secret)};
    struct ksp_buf auth = {(uint8_t *)"correct horse battery staple", 28};
    struct ksp_buf wrong = {(uint8_t *)"correct horse battery stapler", 29};
    struct ksp_buf none = {NULL, 0};
    struct ksp_buf blob = {NULL, 0}, blob_noda = {NULL, 0}, out = {NULL, 0};
    struct ksp_da_state da0, da1, da2;
    uint8_t big[129];
    struct ksp_buf too_big = {big, sizeof(big)};
    struct tkey t;

    ck_assert_rv(ksp_random(secret, sizeof(secret)), CKR_OK);
    ck_assert_rv(OPS->seal(be, &data, &auth, CK_FALSE, &blob), CKR_OK);
    ck_assert_rv(OPS->unseal(be, &blob, &auth, &out), CKR_OK);
    ck_assert_uint_eq(out.len, sizeof(secret));
    ck_assert_mem_eq(out.p, secret, sizeof(secret));
    ksp_buf_free(&out);
    assert_only_primary();

    /* Wrong auth: PIN_INCORRECT, and the TPM counts it. */
    ck_assert_rv(OPS->da_state(be, &da0), CKR_OK);
    ck_assert_uint_ge(da0.max_failures, 1);
    ck_assert(!da0.locked);
    ck_assert_rv(OPS->unseal(be, &blob, &wrong, &out), CKR_PIN_INCORRECT);
    ck_assert_ptr_null(out.p);
    ck_assert_rv(OPS->da_state(be, &da1), CKR_OK);
    ck_assert_uint_eq(da1.failures, da0.failures + 1);
    assert_only_primary();

    /* noDA (PIN-less tokens): refused but not counted. */
    ck_assert_rv(OPS->seal(be, &data, &none, CK_TRUE, &blob_noda), CKR_OK);
    ck_assert_rv(OPS->unseal(be, &blob_noda, &none, &out), CKR_OK);
    ck_assert_mem_eq(out.p, secret, sizeof(secret));
    ksp_buf_free(&out);
    ck_assert_rv(OPS->unseal(be, &blob_noda, &auth, &out), CKR_PIN_INCORRECT);
    ck_assert_rv(OPS->da_state(be, &da2), CKR_OK);
    ck_assert_uint_eq(da2.failures, da1.failures);

    /* Limits and kinds. */
    memset(big, 1, sizeof(big));
    ck_assert_rv(OPS->seal(be, &too_big, &auth, CK_FALSE, &out), CKR_DATA_LEN_RANGE);
    gen_ec(be, &t, KSP_CURVE_P256, CK_FALSE);
    ck_assert_rv(OPS->unseal(be, &t.blob, &auth, &out), CKR_DATA_INVALID);
    ck_assert_rv(OPS->key_load(be, &blob, &auth, &t.k), CKR_DATA_INVALID);
    ck_assert_ptr_nonnull(t.k); /* untouched on failure */
    assert_only_primary();
    tkey_free(&t);
    ksp_buf_free(&blob);
    ksp_buf_free(&blob_noda);
}
END_TEST

/* ---- hostile blobs ---- */

static void expect_load_invalid(const struct ksp_buf *secret, const uint8_t *p, size_t len)
{
    struct ksp_buf b = {NULL, 0};
    struct ksp_bkey *k = NULL;

    ck_assert_rv(ksp_buf_set(&b, p, len), CKR_OK);
    ck_assert_rv(OPS->key_load(be, &b, secret, &k), CKR_DATA_INVALID);
    ck_assert_ptr_null(k);
    ksp_buf_free(&b);
}

START_TEST(test_corrupt_blob)
{
    struct tkey t;
    uint8_t b[2048], md[32] = {1}, sig[64];
    size_t n = 0, len = 0;
    struct ksp_buf long_secret = {b, 33};
    struct ksp_bkey *k = NULL;
    const unsigned seed0 = (unsigned)time(NULL);
    unsigned seed = seed0;

    gen_ec(be, &t, KSP_CURVE_P256, CK_FALSE);
    n = t.blob.len;
    ck_assert_uint_le(n, sizeof(b));
    for (size_t cut = 0; cut < n; cut++) {
        expect_load_invalid(&t.secret, t.blob.p, cut);
    }
    memcpy(b, t.blob.p, n);
    b[n] = 0;
    expect_load_invalid(&t.secret, b, n + 1); /* trailing byte */
    const size_t hdr[] = {0, 4, 5, 6, 7};     /* magic, version, kind, reserved */
    for (size_t i = 0; i < 5; i++) {
        memcpy(b, t.blob.p, n);
        b[hdr[i]] ^= 0x40;
        expect_load_invalid(&t.secret, b, n);
    }
    /* objectAttributes (header 8 + size 2 + type 2 + nameAlg 2, big-endian):
     * a restricted key, or one usable by policy only, is not ours. */
    memcpy(b, t.blob.p, n);
    b[15] |= 0x01; /* restricted (bit 16) */
    expect_load_invalid(&t.secret, b, n);
    memcpy(b, t.blob.p, n);
    b[17] &= (uint8_t)~0x40; /* userWithAuth (bit 6) */
    expect_load_invalid(&t.secret, b, n);
    memcpy(b, t.blob.p, n);
    b[9] ^= 0x01; /* TPM2B_PUBLIC size: one encoding only */
    expect_load_invalid(&t.secret, b, n);
    ck_assert_rv(OPS->key_load(be, &t.blob, &long_secret, &k), CKR_DATA_INVALID);

    /* Well-formed but altered: the TPM's integrity check refuses it, and
     * nothing stays loaded. The areas end before the creation data that
     * version-2 blobs carry after them (tpm_blob.c), which the TPM does not
     * check at load: the last byte of TPM2B_PRIVATE is altered. */
    const size_t pub_sz = (size_t)t.blob.p[8] << 8 | t.blob.p[9];
    const size_t priv_at = 10 + pub_sz;
    const size_t areas = priv_at + 2 + ((size_t)t.blob.p[priv_at] << 8 | t.blob.p[priv_at + 1]);
    ck_assert_uint_le(areas, n);
    memcpy(b, t.blob.p, n);
    b[areas - 1] ^= 0x01;
    {
        struct ksp_buf altered = {b, n};

        ck_assert_rv(OPS->key_load(be, &altered, &t.secret, &k), CKR_OK);
        len = sizeof(sig);
        ck_assert_rv(op(k, KSP_PRIM_ECDSA, 0, md, 32, sig, &len), CKR_DATA_INVALID);
        OPS->key_unload(k);
        k = NULL;
    }
    assert_only_primary();
    /* Random damage: a clean error every time, never a crash or a leak. */
    for (int i = 0; i < 100; i++) {
        struct ksp_buf fuzzed = {b, n};
        CK_RV rv = CKR_OK;

        memcpy(b, t.blob.p, n);
        for (int j = 0; j < 1 + i % 3; j++) {
            size_t at = (size_t)rand_r(&seed) % areas;

            b[at] ^= (uint8_t)(1 + rand_r(&seed) % 255);
        }
        if (memcmp(b, t.blob.p, n) == 0) {
            continue; /* two flips cancelled out */
        }
        rv = OPS->key_load(be, &fuzzed, &t.secret, &k);
        if (rv != CKR_OK) {
            ck_assert_msg(rv == CKR_DATA_INVALID, "fuzzed blob %d (seed %u): %s", i, seed0,
                          ksp_rv_name(rv));
            continue;
        }
        len = sizeof(sig);
        rv = op(k, KSP_PRIM_ECDSA, 0, md, 32, sig, &len);
        /* Any change to the areas breaks the TPM's integrity check. */
        ck_assert_msg(rv == CKR_DATA_INVALID, "fuzzed blob %d (seed %u): %s", i, seed0,
                      ksp_rv_name(rv));
        OPS->key_unload(k);
        k = NULL;
    }
    assert_only_primary();
    tkey_free(&t);
}
END_TEST

/* ---- many cycles ---- */

START_TEST(test_cycles)
{
    uint8_t md[32], sig[512];

    digest(CKM_SHA256, "cycle", md);
    for (int i = 0; i < 100; i++) {
        struct tkey t;
        size_t len = sizeof(sig);

        if (i == 50) {
            assert_only_primary();
            reopen_keeping_primary();
        }
        if (i % 25 == 0) {
            gen_rsa(&t, 2048);
            ck_assert_rv(op(t.k, KSP_PRIM_RSA_PSS_SIGN, CKM_SHA256, md, 32, sig, &len), CKR_OK);
            ck_assert_rv(verify(&t.pub, KSP_PUB_RSA_PSS, CKM_SHA256, 32, md, 32, sig, len), CKR_OK);
        } else {
            gen_ec(be, &t, KSP_CURVE_P256, CK_FALSE);
            ck_assert_rv(op(t.k, KSP_PRIM_ECDSA, 0, md, 32, sig, &len), CKR_OK);
            ck_assert_rv(verify(&t.pub, KSP_PUB_ECDSA, 0, 0, md, 32, sig, len), CKR_OK);
        }
        tkey_free(&t);
    }
    assert_only_primary();
    {
        CK_ULONG o = 0, sess = 0;

        loaded(&o, &sess);
        ck_assert_uint_eq(o, base_objects + 1); /* kept, and only it */
    }
}
END_TEST

/* ---- fork ---- */

static int sign_ok(struct ksp_bkey *k, const struct ksp_pubkey *pub)
{
    uint8_t md[32] = {7}, sig[64];
    size_t len = sizeof(sig);

    return op(k, KSP_PRIM_ECDSA, 0, md, 32, sig, &len) == CKR_OK &&
           verify(pub, KSP_PUB_ECDSA, 0, 0, md, 32, sig, len) == CKR_OK;
}

START_TEST(test_fork)
{
    struct tkey t;
    pid_t pid = 0;
    int status = 0;

    /* The parent keeps its primary loaded: a child that flushed it (or
     * anything of the parent's) would break the parent's next call. */
    reopen_keeping_primary();
    gen_ec(be, &t, KSP_CURVE_P256, CK_FALSE);
    ck_assert(sign_ok(t.k, &t.pub));
    /* The child forgets the parent's connection and uses its own. */
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        struct ksp_backend *b2 = NULL;
        struct ksp_bkey *k2 = NULL;
        int ok = 0;

        OPS->key_unload(t.k);
        OPS->forget(be);
        ok = OPS->open(&cfg, &b2) == CKR_OK &&
             OPS->key_load(b2, &t.blob, &t.secret, &k2) == CKR_OK && sign_ok(k2, &t.pub);
        OPS->key_unload(k2);
        OPS->close(b2);
        _exit(ok ? 0 : 1);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    ck_assert(sign_ok(t.k, &t.pub));
    assert_only_primary();

    /* A child that just carries on with the inherited instance: the backend
     * notices the fork, drops the connection silently, makes its own. */
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        int ok = sign_ok(t.k, &t.pub);

        OPS->close(be);
        _exit(ok ? 0 : 1);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
    ck_assert(sign_ok(t.k, &t.pub));
    assert_only_primary();
    tkey_free(&t);
}
END_TEST

/* ---- no TPM: absent, unreachable, forbidden, TPM 1.2 by sysfs ---- */

static int saved_stderr = -1;
static char errfile[PATH_MAX];

/* Everything the backend (and tpm2-tss) writes to fd 2 goes to a file. */
static void capture_stderr(void)
{
    int fd = -1;

    snprintf(errfile, sizeof(errfile), "%s/stderr", store);
    fd = open(errfile, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    fflush(stderr);
    saved_stderr = dup(2);
    ck_assert_int_ge(saved_stderr, 0);
    ck_assert_int_eq(dup2(fd, 2), 2);
    close(fd);
}

static void assert_stderr_empty(void)
{
    struct stat st;

    fflush(stderr);
    ck_assert_int_eq(dup2(saved_stderr, 2), 2);
    close(saved_stderr);
    ck_assert_int_eq(stat(errfile, &st), 0);
    ck_assert_msg(st.st_size == 0, "%ld bytes written to stderr", (long)st.st_size);
}

/* identity() of a fresh instance for tcti_conf. */
static void identity_of(const char *tcti_conf, struct ksp_tpm_identity *id)
{
    struct ksp_config c = cfg;
    struct ksp_backend *b = NULL;

    c.tcti = (char *)tcti_conf;
    ck_assert_rv(OPS->open(&c, &b), CKR_OK);
    ck_assert_rv(OPS->identity(b, id), CKR_OK);
    OPS->close(b);
}

static void notpm_setup(void)
{
    char sys[PATH_MAX];

    config_setup();
    /* A sysfs of our own, empty unless a test fills it. */
    snprintf(sys, sizeof(sys), "%s/sys", store);
    ck_assert_int_eq(mkdir(sys, 0700), 0);
    setenv("KSP11_SYSFS_ROOT", sys, 1);
}

static void notpm_teardown(void)
{
    ksp_config_free(&cfg);
    rm_store();
}

static void fake_sysfs(const char *file, const char *content)
{
    char path[PATH_MAX];
    char cmd[PATH_MAX + 32];

    snprintf(path, sizeof(path), "%s/sys/class/tpm/tpm0", store);
    snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", path);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(path, sizeof(path), "%s/sys/class/tpm/tpm0/%s", store, file);
    write_file(path, content);
}

START_TEST(test_absent_unreachable)
{
    struct ksp_tpm_identity id;
    struct ksp_config c = cfg;
    struct ksp_backend *b = NULL;
    struct ksp_keyspec spec = {.key_type = CKK_EC, .curve = KSP_CURVE_P256, .sign = CK_TRUE};
    struct ksp_buf blob = {NULL, 0}, secret = {NULL, 0};
    struct ksp_pubkey pub;
    struct ksp_da_state da;
    const struct ksp_caps *caps = NULL;
    char tc[PATH_MAX + 32];

    capture_stderr();
    snprintf(tc, sizeof(tc), "swtpm:path=%s/no-such.sock", store);
    identity_of(tc, &id);
    ck_assert(!id.present);
    ck_assert(!id.is_tpm12);
    ck_assert_str_eq(id.error, "unreachable");
    ck_assert_str_ne(id.detail, "");

    snprintf(tc, sizeof(tc), "device:%s/tpmrm0", store);
    identity_of(tc, &id);
    ck_assert(!id.present);
    ck_assert_str_eq(id.error, "absent");

    /* Open never connects; every operation then says why it cannot. */
    c.tcti = tc;
    ck_assert_rv(OPS->open(&c, &b), CKR_OK);
    memset(&pub, 0, sizeof(pub));
    ck_assert_rv(OPS->keygen(b, &spec, &blob, &secret, &pub), CKR_DEVICE_REMOVED);
    ck_assert_rv(OPS->da_state(b, &da), CKR_DEVICE_REMOVED);
    caps = OPS->caps(b);
    ck_assert_ptr_nonnull(caps);
    ck_assert_uint_eq(caps->rsa_sizes[0], 0);
    ck_assert_int_eq(caps->curves[0], KSP_CURVE_NONE);
    OPS->close(b);

    snprintf(tc, sizeof(tc), "swtpm:path=%s/no-such.sock", store);
    c.tcti = tc;
    ck_assert_rv(OPS->open(&c, &b), CKR_OK);
    ck_assert_rv(OPS->keygen(b, &spec, &blob, &secret, &pub), CKR_DEVICE_ERROR);
    OPS->close(b);

    /* The default order on a machine without TPM and without tabrmd. */
    if (access("/dev/tpmrm0", F_OK) != 0) {
        identity_of(NULL, &id);
        ck_assert(!id.present);
        ck_assert_str_eq(id.error, "absent");
    }
    assert_stderr_empty();
}
END_TEST

START_TEST(test_permission_denied)
{
    struct ksp_tpm_identity id;
    char dev[PATH_MAX], tc[PATH_MAX + 16];
    pid_t pid = 0;
    int status = 0;

    snprintf(dev, sizeof(dev), "%s/tpmrm0", store);
    write_file(dev, "");
    ck_assert_int_eq(chmod(dev, 0600), 0);
    ck_assert_int_eq(chmod(store, 0755), 0);
    ck_assert_int_eq(chmod(base_dir, 0755), 0); /* the file itself must refuse */
    snprintf(tc, sizeof(tc), "device:%s", dev);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* As root the mode bits do not apply: be nobody. */
        if (geteuid() != 0) {
            if (chmod(dev, 0) != 0) {
                _exit(3);
            }
        } else if (setgid(65534) != 0 || setuid(65534) != 0) {
            _exit(2);
        }
        identity_of(tc, &id);
        _exit(!id.present && strcmp(id.error, "permission-denied") == 0 &&
                      strstr(id.detail, "join group tss") != NULL
                  ? 0
                  : 1);
    }
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "child status %d", status);
}
END_TEST

START_TEST(test_sysfs_tpm12)
{
    struct ksp_tpm_identity id;
    char tc[PATH_MAX + 16];

    capture_stderr();
    snprintf(tc, sizeof(tc), "device:%s/tpm0", store);
    /* Linux >= 5.6: tpm_version_major. */
    fake_sysfs("tpm_version_major", "1\n");
    identity_of(tc, &id);
    ck_assert(!id.present);
    ck_assert(id.is_tpm12);
    ck_assert_str_eq(id.error, "tpm-1.2");
    /* A 2.0 chip whose device node is missing is just absent. */
    fake_sysfs("tpm_version_major", "2\n");
    identity_of(tc, &id);
    ck_assert(!id.is_tpm12);
    ck_assert_str_eq(id.error, "absent");
    /* Older kernels: only TPM 1.2 chips have caps. */
    fake_sysfs("caps", "Manufacturer: 0x49465800\nTCG version: 1.2\n");
    identity_of(tc, &id);
    ck_assert(!id.is_tpm12); /* the version file wins */
    snprintf(tc, sizeof(tc), "rm %s/sys/class/tpm/tpm0/tpm_version_major", store);
    ck_assert_int_eq(system(tc), 0);
    snprintf(tc, sizeof(tc), "device:%s/tpmrm0", store);
    identity_of(tc, &id);
    ck_assert(id.is_tpm12);
    ck_assert_str_eq(id.error, "tpm-1.2");
    assert_stderr_empty();
}
END_TEST

/* ---- TPM 1.2 over the wire ---- */

START_TEST(test_tpm12)
{
    struct ksp_tpm_identity id;
    struct ksp_keyspec spec = {.key_type = CKK_EC, .curve = KSP_CURVE_P256, .sign = CK_TRUE};
    struct ksp_buf blob = {NULL, 0}, secret = {NULL, 0};
    struct ksp_pubkey pub;
    struct ksp_backend *b = NULL;

    capture_stderr();
    ck_assert_rv(OPS->open(&cfg, &b), CKR_OK);
    ck_assert_rv(OPS->identity(b, &id), CKR_OK);
    ck_assert(!id.present);
    ck_assert(id.is_tpm12);
    ck_assert_str_eq(id.error, "tpm-1.2");
    ck_assert_ptr_nonnull(strstr(id.detail, "0x00C4"));
    memset(&pub, 0, sizeof(pub));
    ck_assert_rv(OPS->keygen(b, &spec, &blob, &secret, &pub), CKR_DEVICE_ERROR);
    ck_assert_uint_eq(OPS->caps(b)->rsa_sizes[0], 0);
    OPS->close(b);
    assert_stderr_empty();
}
END_TEST

static void tpm12_setup(void)
{
    tcti = getenv("KSP11_TCTI");
    ck_assert_ptr_nonnull(tcti);
    config_setup();
}

/* ---- dictionary-attack lockout (its own swtpm: lockout is TPM-wide) ---- */

START_TEST(test_lockout)
{
    struct ksp_buf data = {(uint8_t *)"0123456789abcdef0123456789abcdef", 32};
    struct ksp_buf auth = {(uint8_t *)"right", 5}, wrong = {(uint8_t *)"wrong", 5};
    struct ksp_buf blob = {NULL, 0}, blob_noda = {NULL, 0}, out = {NULL, 0};
    struct ksp_da_state da;
    struct tkey t;
    uint8_t md[32] = {3}, sig[64];
    size_t len = sizeof(sig);
    CK_RV rv = CKR_OK;
    int tries = 0;

    ck_assert_rv(OPS->seal(be, &data, &auth, CK_FALSE, &blob), CKR_OK);
    ck_assert_rv(OPS->seal(be, &data, &auth, CK_TRUE, &blob_noda), CKR_OK);
    gen_ec(be, &t, KSP_CURVE_P256, CK_FALSE); /* noDA key */
    ck_assert_rv(OPS->da_state(be, &da), CKR_OK);
    ck_assert(!da.locked);
    while ((rv = OPS->unseal(be, &blob, &wrong, &out)) == CKR_PIN_INCORRECT) {
        ck_assert_int_le(++tries, (int)da.max_failures);
    }
    ck_assert_rv(rv, CKR_PIN_LOCKED);
    ck_assert_int_eq(tries, (int)(da.max_failures - da.failures));
    ck_assert_rv(OPS->da_state(be, &da), CKR_OK);
    ck_assert(da.locked);
    /* Locked out: even the right PIN; noDA objects keep working. */
    ck_assert_rv(OPS->unseal(be, &blob, &auth, &out), CKR_PIN_LOCKED);
    ck_assert_rv(OPS->unseal(be, &blob_noda, &auth, &out), CKR_OK);
    ck_assert_mem_eq(out.p, data.p, data.len);
    ksp_buf_free(&out);
    ck_assert_rv(op(t.k, KSP_PRIM_ECDSA, 0, md, 32, sig, &len), CKR_OK);
    assert_only_primary();
    tkey_free(&t);
    ksp_buf_free(&blob);
    ksp_buf_free(&blob_noda);
}
END_TEST

/* ---- a persistent storage key at 0x81000001 (made with tpm2-tools) ---- */

static void tpm2_tools(const char *args)
{
    char cmd[1024];

    snprintf(cmd, sizeof(cmd), "cd %s && export TPM2TOOLS_TCTI='%s' && (%s) >>tools.log 2>&1",
             store, tcti, args);
    ck_assert_msg(system(cmd) == 0, "failed: %s", args);
}

START_TEST(test_persistent_srk)
{
    struct tkey t, t2;
    CK_ULONG o = 0, s = 0;

    /* An RSA storage key there (ours would be ECC): used, and it takes no
     * transient slot even when the primary is kept. */
    tpm2_tools("tpm2_createprimary -Q -C o -g sha256 -G rsa2048:aes128cfb -c srk.ctx && "
               "tpm2_evictcontrol -Q -C o -c srk.ctx 0x81000001 && tpm2_flushcontext -t");
    loaded(&base_objects, &base_sessions);
    reopen_keeping_primary();
    gen_ec(be, &t, KSP_CURVE_P256, CK_FALSE);
    ck_assert(sign_ok(t.k, &t.pub));
    loaded(&o, &s);
    ck_assert_uint_eq(o, base_objects);
    ck_assert_uint_eq(s, base_sessions);
    OPS->close(be);
    be = NULL;

    /* A signing key there is no parent: we make our own primary, and a key
     * made under the persistent one no longer loads. */
    tpm2_tools("tpm2_evictcontrol -Q -C o -c 0x81000001 && "
               "tpm2_createprimary -Q -C o -G ecc256 -a "
               "'fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign' -c sig.ctx && "
               "tpm2_evictcontrol -Q -C o -c sig.ctx 0x81000001 && tpm2_flushcontext -t");
    ck_assert_rv(OPS->open(&cfg, &be), CKR_OK);
    gen_ec(be, &t2, KSP_CURVE_P256, CK_FALSE);
    ck_assert(sign_ok(t2.k, &t2.pub));
    loaded(&o, &s);
    ck_assert_uint_eq(o, base_objects + 1);
    OPS->key_unload(t.k);
    ck_assert_rv(OPS->key_load(be, &t.blob, &t.secret, &t.k), CKR_OK);
    {
        uint8_t md[32] = {9}, sig[64];
        size_t len = sizeof(sig);

        ck_assert_rv(op(t.k, KSP_PRIM_ECDSA, 0, md, 32, sig, &len), CKR_DATA_INVALID);
    }
    tkey_free(&t);
    tkey_free(&t2);
}
END_TEST

/* ---- swtpm killed and restarted (KSP11_TEST_SWTPM_DIR) ---- */

static pid_t swtpm_pid(const char *dir)
{
    char path[PATH_MAX], buf[32];

    snprintf(path, sizeof(path), "%s/swtpm.pid", dir);
    read_file(path, buf, sizeof(buf));
    return (pid_t)atol(buf);
}

static void swtpm_kill(const char *dir)
{
    pid_t pid = swtpm_pid(dir);
    struct timespec ts = {0, 50 * 1000 * 1000};

    ck_assert_int_gt(pid, 1);
    ck_assert_int_eq(kill(pid, SIGTERM), 0);
    for (int i = 0; i < 200 && kill(pid, 0) == 0; i++) {
        nanosleep(&ts, NULL);
    }
    ck_assert_msg(kill(pid, 0) != 0, "swtpm %d did not exit", (int)pid);
}

static void swtpm_start(const char *dir)
{
    char cmd[4 * PATH_MAX];
    struct timespec ts = {0, 50 * 1000 * 1000};
    CK_ULONG o = 0, s = 0;

    snprintf(cmd, sizeof(cmd),
             "swtpm socket --tpm2 --tpmstate dir=%s --server type=unixio,path=%s/swtpm.sock "
             "--ctrl type=unixio,path=%s/swtpm.sock.ctrl --flags not-need-init,startup-clear "
             "--pid file=%s/swtpm.pid --log file=%s/swtpm.log --daemon",
             dir, dir, dir, dir, dir);
    ck_assert_int_eq(system(cmd), 0);
    for (int i = 0; i < 100 && ksp_tpm_diag_loaded(tcti, &o, &s) != CKR_OK; i++) {
        nanosleep(&ts, NULL);
    }
    loaded(&o, &s);
}

START_TEST(test_restart)
{
    const char *dir = getenv("KSP11_TEST_SWTPM_DIR");
    struct tkey t;
    struct ksp_tpm_identity id;
    struct ksp_da_state da;

    ck_assert_msg(dir != NULL, "KSP11_TEST_SWTPM_DIR not set");
    /* With the primary kept, a restart leaves the backend stale handles. */
    reopen_keeping_primary();
    gen_ec(be, &t, KSP_CURVE_P256, CK_FALSE);
    ck_assert(sign_ok(t.k, &t.pub));

    /* TPM gone mid-session: a device error, nothing worse. */
    swtpm_kill(dir);
    {
        uint8_t md[32] = {1}, sig[64];
        size_t len = sizeof(sig);

        ck_assert_rv(op(t.k, KSP_PRIM_ECDSA, 0, md, 32, sig, &len), CKR_DEVICE_ERROR);
        ck_assert_rv(op(t.k, KSP_PRIM_ECDSA, 0, md, 32, sig, &len), CKR_DEVICE_ERROR);
    }
    ck_assert_rv(OPS->da_state(be, &da), CKR_DEVICE_ERROR);
    ck_assert_rv(OPS->identity(be, &id), CKR_OK); /* cached */
    ck_assert(id.present);

    /* Back (same state directory, so the same storage primary): the same
     * instance and the same key work again. */
    swtpm_start(dir);
    base_objects = 0;
    base_sessions = 0;
    ck_assert(sign_ok(t.k, &t.pub));
    assert_only_primary();

    /* Restarted between two calls: our handles are stale, and the backend
     * reconnects within the call. */
    swtpm_kill(dir);
    swtpm_start(dir);
    ck_assert(sign_ok(t.k, &t.pub));
    assert_only_primary();
    tkey_free(&t);
}
END_TEST

/* ---- suites ---- */

static void add_notpm(Suite *s)
{
    TCase *tc = tcase_create("notpm");

    tcase_add_checked_fixture(tc, notpm_setup, notpm_teardown);
    tcase_add_test(tc, test_absent_unreachable);
    tcase_add_test(tc, test_permission_denied);
    tcase_add_test(tc, test_sysfs_tpm12);
    suite_add_tcase(s, tc);
}

static TCase *tpm_tcase(const char *name, void (*su)(void), void (*td)(void))
{
    TCase *tc = tcase_create(name);

    /* RSA key generation in swtpm, 100 cycles: far beyond Check's 4 s. */
    tcase_set_timeout(tc, 600);
    tcase_add_checked_fixture(tc, su, td);
    return tc;
}

static Suite *make_suite(const char *which)
{
    Suite *s = suite_create(which);
    TCase *tc = NULL;

    if (strcmp(which, "main") == 0) {
        tc = tpm_tcase(which, setup, teardown);
        tcase_add_test(tc, test_identity);
        tcase_add_test(tc, test_caps_and_cache);
        tcase_add_test(tc, test_rsa_sign);
        tcase_add_test(tc, test_rsa_decrypt);
        tcase_add_test(tc, test_rsa_3072_and_wrong_auth);
        tcase_add_test(tc, test_keygen_refusals);
        tcase_add_test(tc, test_ec);
        tcase_add_test(tc, test_seal);
        tcase_add_test(tc, test_corrupt_blob);
        tcase_add_test(tc, test_cycles);
        tcase_add_test(tc, test_fork);
        suite_add_tcase(s, tc);
        add_notpm(s);
    } else if (strcmp(which, "tpm12") == 0) {
        tc = tpm_tcase(which, tpm12_setup, notpm_teardown);
        tcase_add_test(tc, test_tpm12);
        suite_add_tcase(s, tc);
    } else if (strcmp(which, "lockout") == 0) {
        tc = tpm_tcase(which, setup, teardown);
        tcase_add_test(tc, test_lockout);
        suite_add_tcase(s, tc);
    } else if (strcmp(which, "persistent") == 0) {
        tc = tpm_tcase(which, setup, teardown);
        tcase_add_test(tc, test_persistent_srk);
        suite_add_tcase(s, tc);
    } else if (strcmp(which, "restart") == 0) {
        tc = tpm_tcase(which, setup, teardown);
        tcase_add_test(tc, test_restart);
        suite_add_tcase(s, tc);
    } else {
        add_notpm(s);
    }
    return s;
}

int main(int argc, char **argv)
{
    const char *which = argc > 1 ? argv[1] : "main";
    SRunner *sr = NULL;
    int failed = 0;

    if (strcmp(which, "main") != 0 && strcmp(which, "tpm12") != 0 &&
        strcmp(which, "lockout") != 0 && strcmp(which, "restart") != 0 &&
        strcmp(which, "persistent") != 0 && strcmp(which, "notpm") != 0) {
        fprintf(stderr, "usage: %s [main|tpm12|lockout|persistent|restart|notpm]\n", argv[0]);
        return 2;
    }
    snprintf(base_dir, sizeof(base_dir), "/tmp/ksp11-itest-tpm.XXXXXX");
    if (mkdtemp(base_dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    sr = srunner_create(make_suite(which));
    /* CK_VERBOSITY=verbose (tpm_backend.sh) lists every test. */
    srunner_run_all(sr, CK_ENV);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    rm_rf(base_dir);
    return failed != 0;
}
