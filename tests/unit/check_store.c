/*
 * Unit tests of the on-disk store (provider/store.c, store_codec.c): record
 * round trips, hostile records, atomic replace, generation counter, modes,
 * write protection and concurrent writers.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "config.h"
#include "log.h"
#include "secmem.h"
#include "store.h"

#define ck_assert_rv(expr, want)                                                                   \
    do {                                                                                           \
        CK_RV got_rv_ = (expr);                                                                    \
        CK_RV want_rv_ = (want);                                                                   \
        ck_assert_msg(got_rv_ == want_rv_, "%s: got %s, want %s", #expr, ksp_rv_name(got_rv_),     \
                      ksp_rv_name(want_rv_));                                                      \
    } while (0)

#define SERIAL "0123456789abcdef"

static char root[256];
static char tokdir[300];
static char logpath[300];

static int rm_cb(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    chmod(path, 0700);
    return remove(path);
}

static void rm_rf(const char *path)
{
    /* Make read-only directories removable first. */
    chmod(path, 0700);
    nftw(path, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

static void make_meta(struct ksp_token_meta *m, const char *serial)
{
    memset(m, 0, sizeof(*m));
    snprintf(m->label, sizeof(m->label), "test token");
    snprintf(m->serial, sizeof(m->serial), "%s", serial);
    m->flags = KSP_META_USER_PIN_SET;
    m->user_fails = 2;
    m->so_fails = 1;
    m->created = 1700000000;
    m->so_twk.kdf = 1;
    m->so_twk.iterations = 12345;
    memset(m->so_twk.salt, 0x11, sizeof(m->so_twk.salt));
    memset(m->so_twk.nonce, 0x22, sizeof(m->so_twk.nonce));
    memset(m->so_twk.ct, 0x33, sizeof(m->so_twk.ct));
    memset(m->so_twk.tag, 0x44, sizeof(m->so_twk.tag));
    m->user_twk = m->so_twk;
    m->user_twk.iterations = 54321;
}

static void setup(void)
{
    snprintf(root, sizeof(root), "/tmp/ksp11-store-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(root));
    snprintf(logpath, sizeof(logpath), "%s/log", root);
    struct ksp_config cfg = {0};
    cfg.log_file = logpath;
    cfg.log_level = KSP_LOG_DEBUG;
    ksp_log_open(&cfg);
    strcat(root, "/store");
    snprintf(tokdir, sizeof(tokdir), "%s/%s", root, SERIAL);
}

static void teardown(void)
{
    ksp_log_close();
    char *slash = strrchr(root, '/');
    *slash = '\0';
    rm_rf(root);
}

static void create_token(void)
{
    struct ksp_token_meta m;
    make_meta(&m, SERIAL);
    ck_assert_rv(ksp_store_token_create(root, &m), CKR_OK);
}

/* An object with a few attributes of different shapes. */
static void make_obj(struct ksp_store_obj *o, const char *id, CK_ULONG label_n)
{
    memset(o, 0, sizeof(*o));
    if (id)
        snprintf(o->id, sizeof(o->id), "%s", id);
    else
        ck_assert_rv(ksp_store_new_id(o->id), CKR_OK);
    ksp_attrs_init(&o->attrs);
    char label[32];
    snprintf(label, sizeof(label), "label-%lu", label_n);
    ck_assert_rv(ksp_attrs_set_ulong(&o->attrs, CKA_CLASS, CKO_PRIVATE_KEY), CKR_OK);
    ck_assert_rv(ksp_attrs_set(&o->attrs, CKA_LABEL, label, strlen(label)), CKR_OK);
    ck_assert_rv(ksp_attrs_set(&o->attrs, CKA_ID, NULL, 0), CKR_OK);
    ck_assert_rv(ksp_attrs_set_bool(&o->attrs, CKA_TOKEN, true), CKR_OK);
    ck_assert_rv(ksp_attrs_set_ulong(&o->attrs, CKA_VENDOR_DEFINED | 0x4B530001UL, 2), CKR_OK);
    o->backend = 2;
    ck_assert_rv(ksp_buf_set(&o->blob, "public-blob", 11), CKR_OK);
    ck_assert_rv(ksp_buf_set(&o->sealed, "\x00\x01\x02sealed", 9), CKR_OK);
}

static void assert_obj_eq(const struct ksp_store_obj *a, const struct ksp_store_obj *b)
{
    ck_assert_str_eq(a->id, b->id);
    ck_assert_uint_eq(a->backend, b->backend);
    ck_assert_uint_eq(a->attrs.n, b->attrs.n);
    for (size_t i = 0; i < a->attrs.n; i++) {
        const CK_ATTRIBUTE *x = &a->attrs.v[i];
        const CK_ATTRIBUTE *y = ksp_attrs_find(&b->attrs, x->type);
        ck_assert_ptr_nonnull(y);
        ck_assert_uint_eq(x->ulValueLen, y->ulValueLen);
        if (x->ulValueLen)
            ck_assert_mem_eq(x->pValue, y->pValue, x->ulValueLen);
    }
    ck_assert_uint_eq(a->blob.len, b->blob.len);
    ck_assert_mem_eq(a->blob.p, b->blob.p, a->blob.len);
    ck_assert_uint_eq(a->sealed.len, b->sealed.len);
    ck_assert_mem_eq(a->sealed.p, b->sealed.p, a->sealed.len);
}

/* Recompute the SHA-256 trailer, so a structural fault is not caught merely
 * by the checksum. */
static void reseal(uint8_t *buf, size_t len)
{
    unsigned int olen = 0;
    ck_assert(EVP_Digest(buf, len - 32, buf + len - 32, &olen, EVP_sha256(), NULL));
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void write_raw(const char *dir, const char *name, const void *data, size_t len)
{
    char path[600];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
    close(fd);
}

static size_t count_entries(const char *dir, const char *prefix)
{
    size_t n = 0;
    DIR *d = opendir(dir);
    ck_assert_ptr_nonnull(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL)
        if (strncmp(de->d_name, prefix, strlen(prefix)) == 0)
            n++;
    closedir(d);
    return n;
}

static bool log_contains(const char *needle)
{
    FILE *f = fopen(logpath, "r");
    if (!f)
        return false;
    char line[4096];
    bool found = false;
    while (!found && fgets(line, sizeof(line), f))
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

static uint64_t gen_of(void)
{
    uint64_t g = 0;
    ck_assert_rv(ksp_store_generation(tokdir, &g), CKR_OK);
    return g;
}

static mode_t mode_of(const char *path)
{
    struct stat st;
    ck_assert_int_eq(lstat(path, &st), 0);
    return st.st_mode & 07777;
}

/* ---- codec ---- */

START_TEST(test_obj_roundtrip)
{
    struct ksp_store_obj o, d;
    uint8_t *buf = NULL;
    size_t len = 0;
    make_obj(&o, NULL, 1);
    ck_assert_rv(ksp_store_obj_encode(&o, &buf, &len), CKR_OK);
    ck_assert_rv(ksp_store_obj_decode(buf, len, &d), CKR_OK);
    assert_obj_eq(&o, &d);
    ksp_store_obj_free(&d);
    free(buf);
    ksp_store_obj_free(&o);
}
END_TEST

START_TEST(test_meta_roundtrip)
{
    struct ksp_token_meta m, d;
    uint8_t *buf = NULL;
    size_t len = 0;
    memset(&d, 0xee, sizeof(d));
    make_meta(&m, SERIAL);
    m.flags = KSP_META_PINLESS;
    memset(m.pinless_twk, 0x5a, sizeof(m.pinless_twk));
    ck_assert_rv(ksp_store_meta_encode(&m, &buf, &len), CKR_OK);
    ck_assert_rv(ksp_store_meta_decode(buf, len, &d), CKR_OK);
    ck_assert_mem_eq(&m, &d, sizeof(m));
    free(buf);
}
END_TEST

START_TEST(test_encode_rejects_bad_input)
{
    struct ksp_store_obj o;
    uint8_t *buf = NULL;
    size_t len = 0;
    make_obj(&o, "0123456789ABCDEF0123456789abcdef", 1); /* uppercase: not an id */
    ck_assert_rv(ksp_store_obj_encode(&o, &buf, &len), CKR_ARGUMENTS_BAD);
    snprintf(o.id, sizeof(o.id), "abc");
    ck_assert_rv(ksp_store_obj_encode(&o, &buf, &len), CKR_ARGUMENTS_BAD);
    ck_assert_ptr_null(buf);
    ksp_store_obj_free(&o);

    struct ksp_token_meta m;
    make_meta(&m, "0123456789abcdeg");
    ck_assert_rv(ksp_store_meta_encode(&m, &buf, &len), CKR_ARGUMENTS_BAD);
    make_meta(&m, SERIAL);
    memset(m.label, 'x', sizeof(m.label)); /* no NUL */
    ck_assert_rv(ksp_store_meta_encode(&m, &buf, &len), CKR_ARGUMENTS_BAD);
}
END_TEST

/* Every truncation, every extension and every single-bit flip is rejected. */
START_TEST(test_decode_truncated_flipped)
{
    struct ksp_store_obj o, d;
    uint8_t *buf = NULL;
    size_t len = 0;
    make_obj(&o, NULL, 7);
    ck_assert_rv(ksp_store_obj_encode(&o, &buf, &len), CKR_OK);
    for (size_t l = 0; l < len; l++)
        ck_assert_rv(ksp_store_obj_decode(buf, l, &d), CKR_DATA_INVALID);
    uint8_t *big = malloc(len + 1);
    memcpy(big, buf, len);
    big[len] = 0;
    ck_assert_rv(ksp_store_obj_decode(big, len + 1, &d), CKR_DATA_INVALID);
    free(big);
    for (size_t i = 0; i < len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            buf[i] ^= (uint8_t)(1u << bit);
            ck_assert_rv(ksp_store_obj_decode(buf, len, &d), CKR_DATA_INVALID);
            buf[i] ^= (uint8_t)(1u << bit);
        }
    }
    ck_assert_rv(ksp_store_obj_decode(buf, len, &d), CKR_OK);
    ksp_store_obj_free(&d);
    free(buf);
    ksp_store_obj_free(&o);
}
END_TEST

/*
 * Object layout (store_codec.c): header 16 | id 32 | backend 8 | nattrs 4 |
 * attrs (type 8 | len 8 | value) ... | blob | sealed | sha256 32.
 */
#define OFF_VERSION 4
#define OFF_BODYLEN 8
#define OFF_ID      16
#define OFF_NATTRS  56
#define OFF_ATTR0   60

/* Structurally wrong records with a valid checksum. */
START_TEST(test_decode_structural)
{
    struct ksp_store_obj o, d;
    uint8_t *buf = NULL, *b = NULL;
    size_t len = 0;
    make_obj(&o, NULL, 3);
    ck_assert_rv(ksp_store_obj_encode(&o, &buf, &len), CKR_OK);
    b = malloc(len + 64);

    /* sanity: reseal of the unchanged record still decodes */
    memcpy(b, buf, len);
    reseal(b, len);
    ck_assert_rv(ksp_store_obj_decode(b, len, &d), CKR_OK);
    ksp_store_obj_free(&d);

    memcpy(b, buf, len);
    b[0] = 'X'; /* wrong magic */
    reseal(b, len);
    ck_assert_rv(ksp_store_obj_decode(b, len, &d), CKR_DATA_INVALID);

    memcpy(b, buf, len);
    b[OFF_VERSION] = 99; /* a version we do not know */
    reseal(b, len);
    ck_assert_rv(ksp_store_obj_decode(b, len, &d), CKR_DATA_INVALID);

    memcpy(b, buf, len);
    put64(b + OFF_BODYLEN, len); /* length field lies */
    reseal(b, len);
    ck_assert_rv(ksp_store_obj_decode(b, len, &d), CKR_DATA_INVALID);

    memcpy(b, buf, len);
    b[OFF_ID] = 'G'; /* id not hex */
    reseal(b, len);
    ck_assert_rv(ksp_store_obj_decode(b, len, &d), CKR_DATA_INVALID);

    memcpy(b, buf, len);
    b[OFF_NATTRS] = b[OFF_NATTRS + 1] = b[OFF_NATTRS + 2] = b[OFF_NATTRS + 3] = 0xff;
    reseal(b, len);
    ck_assert_rv(ksp_store_obj_decode(b, len, &d), CKR_DATA_INVALID);

    memcpy(b, buf, len);
    put64(b + OFF_ATTR0 + 8, 1u << 30); /* attribute longer than the file */
    reseal(b, len);
    ck_assert_rv(ksp_store_obj_decode(b, len, &d), CKR_DATA_INVALID);

    memcpy(b, buf, len);
    put64(b + OFF_ATTR0 + 8, UINT64_MAX);
    reseal(b, len);
    ck_assert_rv(ksp_store_obj_decode(b, len, &d), CKR_DATA_INVALID);

    /* Duplicate attribute type: the second attribute gets the first's type.
     * The first is CKA_CLASS with an 8-byte value. */
    memcpy(b, buf, len);
    memcpy(b + OFF_ATTR0 + 16 + 8, b + OFF_ATTR0, 8);
    reseal(b, len);
    ck_assert_rv(ksp_store_obj_decode(b, len, &d), CKR_DATA_INVALID);

    /* Trailing garbage inside the body, with a consistent body length. */
    memcpy(b, buf, len - 32);
    b[len - 32] = 0xAA;
    put64(b + OFF_BODYLEN, len - 48 + 1);
    reseal(b, len + 1);
    ck_assert_rv(ksp_store_obj_decode(b, len + 1, &d), CKR_DATA_INVALID);

    /* Wrong record kind: a metadata record is not an object. */
    struct ksp_token_meta m;
    uint8_t *mb = NULL;
    size_t ml = 0;
    make_meta(&m, SERIAL);
    ck_assert_rv(ksp_store_meta_encode(&m, &mb, &ml), CKR_OK);
    ck_assert_rv(ksp_store_obj_decode(mb, ml, &d), CKR_DATA_INVALID);
    ck_assert_rv(ksp_store_meta_decode(buf, len, &m), CKR_DATA_INVALID);
    free(mb);

    free(b);
    free(buf);
    ksp_store_obj_free(&o);
}
END_TEST

/* Metadata layout: header 16 | label 33 | serial 16 | flags 4 | ... */
START_TEST(test_meta_structural)
{
    struct ksp_token_meta m, d;
    uint8_t *buf = NULL;
    size_t len = 0;
    make_meta(&m, SERIAL);
    ck_assert_rv(ksp_store_meta_encode(&m, &buf, &len), CKR_OK);
    uint8_t *b = malloc(len);

    memcpy(b, buf, len);
    memset(b + 16, 'A', 33); /* label without NUL */
    reseal(b, len);
    ck_assert_rv(ksp_store_meta_decode(b, len, &d), CKR_DATA_INVALID);

    memcpy(b, buf, len);
    b[16 + 32] = 'z'; /* garbage after the NUL */
    reseal(b, len);
    ck_assert_rv(ksp_store_meta_decode(b, len, &d), CKR_DATA_INVALID);

    memcpy(b, buf, len);
    b[16 + 33] = 'Q'; /* serial not hex */
    reseal(b, len);
    ck_assert_rv(ksp_store_meta_decode(b, len, &d), CKR_DATA_INVALID);

    memcpy(b, buf, len);
    b[16 + 33 + 16] = 0x80; /* unknown flag */
    reseal(b, len);
    ck_assert_rv(ksp_store_meta_decode(b, len, &d), CKR_DATA_INVALID);

    memcpy(b, buf, len);
    b[len - 40] ^= 1; /* pinless twk byte, checksum not updated */
    ck_assert_rv(ksp_store_meta_decode(b, len, &d), CKR_DATA_INVALID);

    for (size_t l = 0; l < len; l++)
        ck_assert_rv(ksp_store_meta_decode(buf, l, &d), CKR_DATA_INVALID);
    free(b);
    free(buf);
}
END_TEST

/* ---- file system ---- */

START_TEST(test_token_create_list_meta)
{
    char **serials = NULL;
    size_t n = 99;
    ck_assert_rv(ksp_store_list_tokens(root, &serials, &n), CKR_OK); /* root missing */
    ck_assert_uint_eq(n, 0);
    free(serials);

    create_token();
    struct ksp_token_meta m, r;
    memset(&r, 0, sizeof(r));
    make_meta(&m, "fedcba9876543210");
    ck_assert_rv(ksp_store_token_create(root, &m), CKR_OK);

    /* Look-alikes that are not tokens. */
    char p[600];
    snprintf(p, sizeof(p), "%s/0000000000000000", root); /* no token.meta */
    ck_assert_int_eq(mkdir(p, 0700), 0);
    snprintf(p, sizeof(p), "%s/ABCDEF0123456789", root); /* uppercase */
    ck_assert_int_eq(mkdir(p, 0700), 0);
    write_raw(p, "token.meta", "x", 1);
    write_raw(root, "1111111111111111", "file", 4); /* a file */

    ck_assert_rv(ksp_store_list_tokens(root, &serials, &n), CKR_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(serials[0], SERIAL);
    ck_assert_str_eq(serials[1], "fedcba9876543210");
    for (size_t i = 0; i < n; i++)
        free(serials[i]);
    free(serials);

    ck_assert_rv(ksp_store_meta_read(tokdir, &r), CKR_OK);
    make_meta(&m, SERIAL);
    ck_assert_mem_eq(&m, &r, sizeof(m));

    m.user_fails = 7;
    memset(m.label, 0, sizeof(m.label)); /* stored zero-padded */
    snprintf(m.label, sizeof(m.label), "renamed");
    ck_assert_rv(ksp_store_meta_write(tokdir, &m), CKR_OK);
    ck_assert_rv(ksp_store_meta_read(tokdir, &r), CKR_OK);
    ck_assert_mem_eq(&m, &r, sizeof(m));

    char *dir = ksp_store_token_dir("/x/y/", SERIAL);
    ck_assert_str_eq(dir, "/x/y/" SERIAL);
    free(dir);

    snprintf(p, sizeof(p), "%s/nosuch", root);
    ck_assert_rv(ksp_store_meta_read(p, &r), CKR_TOKEN_NOT_PRESENT);
    write_raw(tokdir, "token.meta", "garbage", 7);
    ck_assert_rv(ksp_store_meta_read(tokdir, &r), CKR_DATA_INVALID);
}
END_TEST

START_TEST(test_modes_umask_independent)
{
    mode_t masks[] = {0, 0277};
    for (size_t i = 0; i < 2; i++) {
        mode_t old = umask(masks[i]);
        char sub[400];
        snprintf(sub, sizeof(sub), "%s/u%zu/a/b", root, i);
        struct ksp_token_meta m;
        make_meta(&m, SERIAL);
        ck_assert_rv(ksp_store_token_create(sub, &m), CKR_OK);
        char td[500], p[600];
        snprintf(td, sizeof(td), "%s/%s", sub, SERIAL);
        struct ksp_store_obj o;
        make_obj(&o, NULL, 1);
        ck_assert_rv(ksp_store_obj_write(td, &o), CKR_OK);
        umask(old);

        snprintf(p, sizeof(p), "%s/u%zu", root, i);
        ck_assert_uint_eq(mode_of(p), 0700);
        ck_assert_uint_eq(mode_of(sub), 0700);
        ck_assert_uint_eq(mode_of(td), 0700);
        const char *files[] = {"token.meta", ".lock", "generation"};
        for (size_t f = 0; f < 3; f++) {
            snprintf(p, sizeof(p), "%s/%s", td, files[f]);
            ck_assert_msg(mode_of(p) == 0600, "%s has mode %o", p, mode_of(p));
        }
        snprintf(p, sizeof(p), "%s/%s.obj", td, o.id);
        ck_assert_uint_eq(mode_of(p), 0600);
        ksp_store_obj_free(&o);
    }
}
END_TEST

START_TEST(test_objects_generation)
{
    struct ksp_store_obj *objs = NULL;
    size_t n = 0;
    uint64_t g0 = gen_of();
    ck_assert_uint_eq(g0, 0); /* no token yet */
    ck_assert_rv(ksp_store_obj_load_all(tokdir, &objs, &n), CKR_TOKEN_NOT_PRESENT);

    create_token();
    uint64_t g = gen_of();
    ck_assert_uint_gt(g, g0);

    struct ksp_store_obj o[3];
    for (int i = 0; i < 3; i++) {
        make_obj(&o[i], NULL, (CK_ULONG)i);
        ck_assert_rv(ksp_store_obj_write(tokdir, &o[i]), CKR_OK);
        uint64_t ng = gen_of();
        ck_assert_uint_gt(ng, g);
        g = ng;
    }
    ck_assert_rv(ksp_store_obj_load_all(tokdir, &objs, &n), CKR_OK);
    ck_assert_uint_eq(n, 3);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            ck_assert_int_lt(strcmp(objs[i - 1].id, objs[i].id), 0); /* sorted */
        for (int j = 0; j < 3; j++)
            if (strcmp(objs[i].id, o[j].id) == 0)
                assert_obj_eq(&o[j], &objs[i]);
    }
    ksp_store_obj_free_all(objs, n);

    ck_assert_rv(ksp_store_obj_delete(tokdir, o[1].id), CKR_OK);
    ck_assert_uint_gt(gen_of(), g);
    g = gen_of();
    ck_assert_rv(ksp_store_obj_delete(tokdir, o[1].id), CKR_OK); /* already gone */
    ck_assert_rv(ksp_store_obj_delete(tokdir, "../../etc/passwd"), CKR_ARGUMENTS_BAD);
    ck_assert_rv(ksp_store_obj_load_all(tokdir, &objs, &n), CKR_OK);
    ck_assert_uint_eq(n, 2);
    ksp_store_obj_free_all(objs, n);

    struct ksp_token_meta m;
    make_meta(&m, SERIAL);
    g = gen_of();
    ck_assert_rv(ksp_store_meta_write(tokdir, &m), CKR_OK);
    ck_assert_uint_gt(gen_of(), g);

    g = gen_of();
    ck_assert_rv(ksp_store_token_clear(tokdir), CKR_OK);
    ck_assert_uint_gt(gen_of(), g);
    ck_assert_rv(ksp_store_obj_load_all(tokdir, &objs, &n), CKR_OK);
    ck_assert_uint_eq(n, 0);
    free(objs);
    ck_assert_uint_eq(count_entries(tokdir, ""), 5); /* . .. .lock generation token.meta */
    ck_assert_rv(ksp_store_meta_read(tokdir, &m), CKR_OK);
    for (int i = 0; i < 3; i++)
        ksp_store_obj_free(&o[i]);
}
END_TEST

START_TEST(test_atomic_replace)
{
    create_token();
    struct ksp_store_obj o, o2;
    struct ksp_store_obj *objs = NULL;
    size_t n = 0;
    make_obj(&o, NULL, 1);
    ck_assert_rv(ksp_store_obj_write(tokdir, &o), CKR_OK);
    make_obj(&o2, o.id, 2);
    ksp_buf_free(&o2.sealed);
    ck_assert_rv(ksp_buf_set(&o2.sealed, "replaced", 8), CKR_OK);
    ck_assert_rv(ksp_store_obj_write(tokdir, &o2), CKR_OK);
    ck_assert_rv(ksp_store_obj_load_all(tokdir, &objs, &n), CKR_OK);
    ck_assert_uint_eq(n, 1);
    assert_obj_eq(&o2, &objs[0]);
    ksp_store_obj_free_all(objs, n);
    ck_assert_uint_eq(count_entries(tokdir, ".tmp."), 0);
    ck_assert_uint_eq(count_entries(tokdir, o.id), 1);
    ksp_store_obj_free(&o);
    ksp_store_obj_free(&o2);
}
END_TEST

/* Good objects load even when the directory holds every kind of bad file. */
START_TEST(test_corrupt_files_skipped)
{
    create_token();
    struct ksp_store_obj good[3];
    for (int i = 0; i < 3; i++) {
        make_obj(&good[i], NULL, (CK_ULONG)i);
        ck_assert_rv(ksp_store_obj_write(tokdir, &good[i]), CKR_OK);
    }
    uint8_t *buf = NULL;
    size_t len = 0;
    struct ksp_store_obj bad;
    char name[64], id[KSP_OBJID_LEN + 1];

    make_obj(&bad, NULL, 9);
    ck_assert_rv(ksp_store_obj_encode(&bad, &buf, &len), CKR_OK);
    /* truncated (torn write) */
    snprintf(name, sizeof(name), "%s.obj", bad.id);
    write_raw(tokdir, name, buf, len / 2);
    /* bit-flipped, under another id */
    ck_assert_rv(ksp_store_new_id(id), CKR_OK);
    buf[len / 2] ^= 0x10;
    snprintf(name, sizeof(name), "%s.obj", id);
    write_raw(tokdir, name, buf, len);
    buf[len / 2] ^= 0x10;
    /* valid record, but the name does not match the id inside */
    ck_assert_rv(ksp_store_new_id(id), CKR_OK);
    snprintf(name, sizeof(name), "%s.obj", id);
    write_raw(tokdir, name, buf, len);
    /* wrong version with a valid checksum */
    ksp_store_obj_free(&bad);
    make_obj(&bad, NULL, 10);
    free(buf);
    ck_assert_rv(ksp_store_obj_encode(&bad, &buf, &len), CKR_OK);
    buf[OFF_VERSION] = 9;
    reseal(buf, len);
    snprintf(name, sizeof(name), "%s.obj", bad.id);
    write_raw(tokdir, name, buf, len);
    /* oversized (sparse, 16 MiB + 1) */
    char p[600];
    ck_assert_rv(ksp_store_new_id(id), CKR_OK);
    snprintf(p, sizeof(p), "%s/%s.obj", tokdir, id);
    int fd = open(p, O_WRONLY | O_CREAT, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(ftruncate(fd, 16 * 1024 * 1024 + 1), 0);
    close(fd);
    /* symlink to a good object, directory, FIFO (must not block) */
    char target[600];
    snprintf(target, sizeof(target), "%s/%s.obj", tokdir, good[0].id);
    ck_assert_rv(ksp_store_new_id(id), CKR_OK);
    snprintf(p, sizeof(p), "%s/%s.obj", tokdir, id);
    ck_assert_int_eq(symlink(target, p), 0);
    ck_assert_rv(ksp_store_new_id(id), CKR_OK);
    snprintf(p, sizeof(p), "%s/%s.obj", tokdir, id);
    ck_assert_int_eq(mkdir(p, 0700), 0);
    ck_assert_rv(ksp_store_new_id(id), CKR_OK);
    snprintf(p, sizeof(p), "%s/%s.obj", tokdir, id);
    ck_assert_int_eq(mkfifo(p, 0600), 0);
    /* names that are not objects; an empty file */
    write_raw(tokdir, "foo.obj", "x", 1);
    write_raw(tokdir, ".tmp.0123.1.abcd", "x", 1);
    ck_assert_rv(ksp_store_new_id(id), CKR_OK);
    snprintf(name, sizeof(name), "%s.obj", id);
    write_raw(tokdir, name, "", 0);

    struct ksp_store_obj *objs = NULL;
    size_t n = 0;
    ck_assert_rv(ksp_store_obj_load_all(tokdir, &objs, &n), CKR_OK);
    ck_assert_uint_eq(n, 3);
    for (size_t i = 0; i < n; i++) {
        bool found = false;
        for (int j = 0; j < 3; j++)
            found = found || strcmp(objs[i].id, good[j].id) == 0;
        ck_assert(found);
    }
    ksp_store_obj_free_all(objs, n);
    ck_assert(log_contains("skipping corrupt object file"));
    ck_assert(log_contains("too large"));
    ck_assert(log_contains("holds object"));
    for (int i = 0; i < 3; i++)
        ksp_store_obj_free(&good[i]);
    ksp_store_obj_free(&bad);
    free(buf);
}
END_TEST

START_TEST(test_generation_corrupt_and_stale_tmp)
{
    create_token();
    uint64_t g = gen_of();
    write_raw(tokdir, "generation", "nonsense", 8);
    uint64_t bad = gen_of(); /* readers survive a corrupt counter ... */
    ck_assert_uint_ne(bad, g);
    struct ksp_store_obj o;
    make_obj(&o, NULL, 1);
    ck_assert_rv(ksp_store_obj_write(tokdir, &o), CKR_OK); /* ... and writers repair it */
    uint64_t fixed = gen_of();
    ck_assert_uint_ne(fixed, bad);
    ck_assert_uint_ne(fixed, g);
    ck_assert_rv(ksp_store_obj_write(tokdir, &o), CKR_OK);
    ck_assert_uint_gt(gen_of(), fixed);

    /* A crashed writer's temp file is swept once it is old; a fresh one stays. */
    write_raw(tokdir, ".tmp.old.1.00000000", "x", 1);
    write_raw(tokdir, ".tmp.new.1.00000000", "x", 1);
    char p[600];
    snprintf(p, sizeof(p), "%s/.tmp.old.1.00000000", tokdir);
    struct timespec ts[2] = {{time(NULL) - 3600, 0}, {time(NULL) - 3600, 0}};
    ck_assert_int_eq(utimensat(AT_FDCWD, p, ts, 0), 0);
    struct ksp_store_obj *objs = NULL;
    size_t n = 0;
    ck_assert_rv(ksp_store_obj_load_all(tokdir, &objs, &n), CKR_OK);
    ck_assert_uint_eq(n, 1);
    ksp_store_obj_free_all(objs, n);
    ck_assert_int_eq(access(p, F_OK), -1);
    ck_assert_uint_eq(count_entries(tokdir, ".tmp.new"), 1);
    ksp_store_obj_free(&o);
}
END_TEST

START_TEST(test_new_id)
{
    char a[KSP_OBJID_LEN + 1], b[KSP_OBJID_LEN + 1];
    ck_assert_rv(ksp_store_new_id(a), CKR_OK);
    ck_assert_rv(ksp_store_new_id(b), CKR_OK);
    ck_assert_uint_eq(strlen(a), KSP_OBJID_LEN);
    ck_assert_uint_eq(strspn(a, "0123456789abcdef"), KSP_OBJID_LEN);
    ck_assert_str_ne(a, b);
}
END_TEST

START_TEST(test_not_a_directory)
{
    /* A store root below a regular file: ENOTDIR is an I/O error, not
     * write protection (store.h). */
    char base[400], r[500];
    snprintf(base, sizeof(base), "%s-file", root);
    write_raw("/", base + 1, "x", 1);
    snprintf(r, sizeof(r), "%s/store", base);
    struct ksp_token_meta m;
    make_meta(&m, SERIAL);
    ck_assert_rv(ksp_store_token_create(r, &m), CKR_DEVICE_ERROR);
    char **s = NULL;
    size_t n = 0;
    ck_assert_rv(ksp_store_list_tokens(r, &s, &n), CKR_DEVICE_ERROR);
    unlink(base);
}
END_TEST

/* True if this process can create files in a mode-0500 directory (root with
 * CAP_DAC_OVERRIDE), in which case permission tests prove nothing. */
static bool dac_override(const char *dir)
{
    char p[600];
    snprintf(p, sizeof(p), "%s/probe", dir);
    int fd = open(p, O_WRONLY | O_CREAT, 0600);
    if (fd < 0)
        return false;
    close(fd);
    unlink(p);
    return true;
}

START_TEST(test_write_protected)
{
    create_token();
    struct ksp_store_obj o;
    make_obj(&o, NULL, 1);
    ck_assert_rv(ksp_store_obj_write(tokdir, &o), CKR_OK);
    ck_assert_int_eq(chmod(tokdir, 0500), 0);
    if (dac_override(tokdir)) {
        fprintf(stderr, "check_store: running with CAP_DAC_OVERRIDE (root): "
                        "CKR_TOKEN_WRITE_PROTECTED assertions skipped\n");
    } else {
        struct ksp_store_obj o2;
        make_obj(&o2, NULL, 2);
        ck_assert_rv(ksp_store_obj_write(tokdir, &o2), CKR_TOKEN_WRITE_PROTECTED);
        ksp_store_obj_free(&o2);
        ck_assert_rv(ksp_store_obj_delete(tokdir, o.id), CKR_TOKEN_WRITE_PROTECTED);
        char sub[400];
        snprintf(sub, sizeof(sub), "%s/sub", tokdir);
        struct ksp_token_meta m;
        make_meta(&m, SERIAL);
        ck_assert_rv(ksp_store_token_create(sub, &m), CKR_TOKEN_WRITE_PROTECTED);
    }
    /* Readers work on a read-only store either way. */
    struct ksp_store_obj *objs = NULL;
    size_t n = 0;
    ck_assert_rv(ksp_store_obj_load_all(tokdir, &objs, &n), CKR_OK);
    ck_assert_uint_eq(n, 1);
    ksp_store_obj_free_all(objs, n);
    struct ksp_token_meta r;
    ck_assert_rv(ksp_store_meta_read(tokdir, &r), CKR_OK);
    chmod(tokdir, 0700);
    ksp_store_obj_free(&o);
}
END_TEST

#define PER_CHILD 40

static void child_writer(int which)
{
    for (int i = 0; i < PER_CHILD; i++) {
        struct ksp_store_obj o;
        make_obj(&o, NULL, (CK_ULONG)(which * 1000 + i));
        if (ksp_store_obj_write(tokdir, &o) != CKR_OK)
            _exit(1);
        ksp_store_obj_free(&o);
    }
    _exit(0);
}

/* Two processes writing at once lose neither objects nor generation bumps. */
START_TEST(test_concurrent_writers)
{
    create_token();
    uint64_t g = gen_of();
    pid_t pids[2];
    for (int c = 0; c < 2; c++) {
        pids[c] = fork();
        ck_assert_int_ge(pids[c], 0);
        if (pids[c] == 0)
            child_writer(c);
    }
    for (int c = 0; c < 2; c++) {
        int st = 0;
        ck_assert_int_eq(waitpid(pids[c], &st, 0), pids[c]);
        ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    }
    struct ksp_store_obj *objs = NULL;
    size_t n = 0;
    ck_assert_rv(ksp_store_obj_load_all(tokdir, &objs, &n), CKR_OK);
    ck_assert_uint_eq(n, 2 * PER_CHILD);
    ksp_store_obj_free_all(objs, n);
    ck_assert_uint_eq(gen_of(), g + 2 * PER_CHILD);
    ck_assert_uint_eq(count_entries(tokdir, ".tmp."), 0);
}
END_TEST

static Suite *store_suite(void)
{
    Suite *s = suite_create("store");
    TCase *codec = tcase_create("codec");
    tcase_add_checked_fixture(codec, setup, teardown);
    tcase_add_test(codec, test_obj_roundtrip);
    tcase_add_test(codec, test_meta_roundtrip);
    tcase_add_test(codec, test_encode_rejects_bad_input);
    tcase_add_test(codec, test_decode_truncated_flipped);
    tcase_add_test(codec, test_decode_structural);
    tcase_add_test(codec, test_meta_structural);
    suite_add_tcase(s, codec);

    TCase *fs = tcase_create("fs");
    tcase_add_checked_fixture(fs, setup, teardown);
    tcase_set_timeout(fs, 60);
    tcase_add_test(fs, test_token_create_list_meta);
    tcase_add_test(fs, test_modes_umask_independent);
    tcase_add_test(fs, test_objects_generation);
    tcase_add_test(fs, test_atomic_replace);
    tcase_add_test(fs, test_corrupt_files_skipped);
    tcase_add_test(fs, test_generation_corrupt_and_stale_tmp);
    tcase_add_test(fs, test_new_id);
    tcase_add_test(fs, test_not_a_directory);
    tcase_add_test(fs, test_write_protected);
    tcase_add_test(fs, test_concurrent_writers);
    suite_add_tcase(s, fs);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(store_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed != 0;
}
