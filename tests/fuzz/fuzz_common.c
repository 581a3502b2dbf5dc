/*
 * Helpers shared by the libFuzzer harnesses (see fuzz_common.h).
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "config.h"
#include "fuzz_common.h"
#include "ksp11/ksp11.h"
#include "log.h"

void fuzz_fail(const char *file, int line, const char *what)
{
    fprintf(stderr, "fuzz: %s:%d: check failed: %s\n", file, line, what);
    abort();
}

void fuzz_quiet_log(void)
{
    struct ksp_config cfg;
    memset(&cfg, 0, sizeof(cfg));
    cfg.log_level = KSP_LOG_DEBUG;
    cfg.log_file = (char *)"/dev/null";
    ksp_log_open(&cfg);
}

void fuzz_fix_frame(uint8_t *buf, size_t len)
{
    /* magic[4] | version u16 | reserved u16 | body_len u64 | body | sha256 */
    if (len < 16 + 32)
        return;
    uint64_t body = len - 16 - 32;
    for (int i = 0; i < 8; i++)
        buf[8 + i] = (uint8_t)(body >> (8 * i));
    SHA256(buf, len - 32, buf + len - 32);
}

uint8_t fuzz_u8(struct fuzz_in *in)
{
    if (!in->left)
        return 0;
    in->left--;
    return *in->p++;
}

uint32_t fuzz_u32(struct fuzz_in *in)
{
    uint32_t v = 0;
    for (int i = 0; i < 4; i++)
        v |= (uint32_t)fuzz_u8(in) << (8 * i);
    return v;
}

CK_ULONG fuzz_ulong(struct fuzz_in *in)
{
    /* Mostly small values, sometimes anything (incl. ~0): one tag byte. */
    uint8_t tag = fuzz_u8(in);
    switch (tag & 3) {
    case 0:
        return tag >> 2;
    case 1:
        return fuzz_u32(in);
    case 2:
        return (CK_ULONG)fuzz_u32(in) << 32 | fuzz_u32(in);
    default:
        return ~(CK_ULONG)0 - (tag >> 2);
    }
}

const uint8_t *fuzz_bytes(struct fuzz_in *in, size_t max, size_t *len)
{
    size_t n = fuzz_u8(in);
    if (n > 200)
        n = (n - 200) * 64; /* a few larger values */
    if (n > max)
        n = max;
    if (n > in->left)
        n = in->left;
    *len = n;
    if (!n)
        return NULL;
    const uint8_t *p = in->p;
    in->p += n;
    in->left -= n;
    return p;
}

CK_ULONG fuzz_pick(struct fuzz_in *in, const CK_ULONG *v, size_t n)
{
    return v[fuzz_u8(in) % n];
}

const CK_ULONG fuzz_attr_types[] = {
    CKA_CLASS,
    CKA_TOKEN,
    CKA_PRIVATE,
    CKA_LABEL,
    CKA_APPLICATION,
    CKA_VALUE,
    CKA_OBJECT_ID,
    CKA_CERTIFICATE_TYPE,
    CKA_ISSUER,
    CKA_SERIAL_NUMBER,
    CKA_SUBJECT,
    CKA_ID,
    CKA_KEY_TYPE,
    CKA_SENSITIVE,
    CKA_ENCRYPT,
    CKA_DECRYPT,
    CKA_WRAP,
    CKA_UNWRAP,
    CKA_SIGN,
    CKA_SIGN_RECOVER,
    CKA_VERIFY,
    CKA_VERIFY_RECOVER,
    CKA_DERIVE,
    CKA_START_DATE,
    CKA_END_DATE,
    CKA_MODULUS,
    CKA_MODULUS_BITS,
    CKA_PUBLIC_EXPONENT,
    CKA_PRIVATE_EXPONENT,
    CKA_PRIME_1,
    CKA_PRIME_2,
    CKA_EXPONENT_1,
    CKA_EXPONENT_2,
    CKA_COEFFICIENT,
    CKA_PUBLIC_KEY_INFO,
    CKA_VALUE_LEN,
    CKA_EXTRACTABLE,
    CKA_LOCAL,
    CKA_NEVER_EXTRACTABLE,
    CKA_ALWAYS_SENSITIVE,
    CKA_KEY_GEN_MECHANISM,
    CKA_MODIFIABLE,
    CKA_COPYABLE,
    CKA_DESTROYABLE,
    CKA_EC_PARAMS,
    CKA_EC_POINT,
    CKA_ALWAYS_AUTHENTICATE,
    CKA_WRAP_WITH_TRUSTED,
    CKA_TRUSTED,
    CKA_ALLOWED_MECHANISMS,
    CKA_UNIQUE_ID,
    CKA_CHECK_VALUE,
    CKA_URL,
    CKA_HASH_OF_SUBJECT_PUBLIC_KEY,
    CKA_HASH_OF_ISSUER_PUBLIC_KEY,
    CKA_CERTIFICATE_CATEGORY,
    CKA_JAVA_MIDP_SECURITY_DOMAIN,
    CKA_NAME_HASH_ALGORITHM,
    CKA_WRAP_TEMPLATE,
    CKA_UNWRAP_TEMPLATE,
    CKA_DERIVE_TEMPLATE,
    CKA_KSP11_BACKEND,
    CKA_KSP11_IMPL_TYPE,
    CKA_KSP11_FALLBACK_REASON,
    CKA_KSP11_TPM_IDENTITY,
    CKA_KSP11_REQUIRE_HARDWARE,
};
const size_t fuzz_n_attr_types = sizeof(fuzz_attr_types) / sizeof(fuzz_attr_types[0]);

const CK_ULONG fuzz_mechs[] = {
    CKM_RSA_PKCS_KEY_PAIR_GEN,
    CKM_EC_KEY_PAIR_GEN,
    CKM_RSA_PKCS,
    CKM_RSA_X_509,
    CKM_RSA_PKCS_PSS,
    CKM_RSA_PKCS_OAEP,
    CKM_SHA1_RSA_PKCS,
    CKM_SHA224_RSA_PKCS,
    CKM_SHA256_RSA_PKCS,
    CKM_SHA384_RSA_PKCS,
    CKM_SHA512_RSA_PKCS,
    CKM_SHA1_RSA_PKCS_PSS,
    CKM_SHA224_RSA_PKCS_PSS,
    CKM_SHA256_RSA_PKCS_PSS,
    CKM_SHA384_RSA_PKCS_PSS,
    CKM_SHA512_RSA_PKCS_PSS,
    CKM_ECDSA,
    CKM_ECDSA_SHA1,
    CKM_ECDSA_SHA224,
    CKM_ECDSA_SHA256,
    CKM_ECDSA_SHA384,
    CKM_ECDSA_SHA512,
    CKM_ECDH1_DERIVE,
    CKM_SHA_1,
    CKM_SHA224,
    CKM_SHA256,
    CKM_SHA384,
    CKM_SHA512,
    CKM_AES_KEY_GEN,
    CKM_GENERIC_SECRET_KEY_GEN,
    CKM_AES_CBC_PAD,
    CKM_VENDOR_DEFINED,
};
const size_t fuzz_n_mechs = sizeof(fuzz_mechs) / sizeof(fuzz_mechs[0]);

/* DER OIDs of the curves the module knows, and one it does not. */
static const uint8_t p256[] = {0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07};
static const uint8_t p384[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x22};
static const uint8_t secp256k1[] = {0x06, 0x05, 0x2b, 0x81, 0x04, 0x00, 0x0a};

CK_ULONG fuzz_template(struct fuzz_in *in, CK_ATTRIBUTE *t, CK_ULONG max, uint8_t *vals)
{
    static const CK_ULONG classes[] = {CKO_DATA,        CKO_CERTIFICATE, CKO_PUBLIC_KEY,
                                       CKO_PRIVATE_KEY, CKO_SECRET_KEY,  CKO_VENDOR_DEFINED};
    static const CK_ULONG key_types[] = {CKK_RSA, CKK_EC, CKK_AES, CKK_GENERIC_SECRET, CKK_DSA};
    CK_ULONG n = fuzz_u8(in) % (max + 1);
    for (CK_ULONG i = 0; i < n; i++) {
        uint8_t sel = fuzz_u8(in);
        uint8_t *v = vals + 16 * i;
        size_t len;
        t[i].type = (sel & 0x80) ? fuzz_ulong(in) : fuzz_attr_types[sel % fuzz_n_attr_types];
        switch (fuzz_u8(in) % 8) {
        case 0: /* CK_BBOOL, sometimes not 0/1 */
            v[0] = fuzz_u8(in) % 3;
            t[i].pValue = v;
            t[i].ulValueLen = 1;
            break;
        case 1: /* CK_ULONG */
        {
            CK_ULONG u = fuzz_ulong(in);
            memcpy(v, &u, sizeof(u));
            t[i].pValue = v;
            t[i].ulValueLen = sizeof(u);
            break;
        }
        case 2: /* a class or key type, well-formed */
        {
            bool cls = t[i].type == CKA_CLASS || (t[i].type != CKA_KEY_TYPE && (sel & 1));
            CK_ULONG u = cls ? fuzz_pick(in, classes, 6) : fuzz_pick(in, key_types, 5);
            memcpy(v, &u, sizeof(u));
            t[i].pValue = v;
            t[i].ulValueLen = sizeof(u);
            break;
        }
        case 3: /* NULL value with some length */
            t[i].pValue = NULL;
            t[i].ulValueLen = fuzz_ulong(in);
            break;
        case 4: /* an EC curve */
        {
            uint8_t c = fuzz_u8(in) % 3;
            t[i].pValue = (void *)(c == 0 ? p256 : c == 1 ? p384 : secp256k1);
            t[i].ulValueLen = c == 0 ? sizeof(p256) : c == 1 ? sizeof(p384) : sizeof(secp256k1);
            break;
        }
        default: /* bytes from the input */
            t[i].pValue = (void *)fuzz_bytes(in, 4096, &len);
            t[i].ulValueLen = len;
            break;
        }
    }
    return n;
}

/* ---- module set-up ---- */

static CK_FUNCTION_LIST_PTR mod;
static CK_SLOT_ID mod_slot;
static char store_dir[256];

static void rm_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char sub[1024];
            snprintf(sub, sizeof(sub), "%s/%s", path, e->d_name);
            rm_tree(sub);
        }
        if (d)
            closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void cleanup(void)
{
    if (mod)
        mod->C_Finalize(NULL);
    if (store_dir[0])
        rm_tree(store_dir);
}

static void pad(CK_UTF8CHAR *dst, size_t n, const char *s)
{
    memset(dst, ' ', n);
    memcpy(dst, s, strlen(s));
}

void fuzz_module_setup(CK_FUNCTION_LIST_PTR *fl, CK_SLOT_ID *slot)
{
    if (mod) {
        *fl = mod;
        *slot = mod_slot;
        return;
    }
    /* KSP11_FUZZ_TMP (a directory its caller removes: libFuzzer does not
     * always run exit handlers), else tmpfs when there is one: every
     * token-object write is a file. */
    const char *base = getenv("KSP11_FUZZ_TMP");
    if (!base || !base[0])
        base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(store_dir, sizeof(store_dir), "%s/ksp11-fuzz.XXXXXX", base);
    FUZZ_CHECK(mkdtemp(store_dir) != NULL);
    atexit(cleanup);
    setenv("KSP11_STORE", store_dir, 1);
    setenv("KSP11_KDF_ITERATIONS", "1", 1);
    setenv("KSP11_CONF", "/nonexistent", 1);
    setenv("KSP11_LOG_FILE", "/dev/null", 1);
    setenv("KSP11_LOG_LEVEL", "debug", 1);
    unsetenv("KSP11_TCTI");
    /* No TPM: a device TCTI must not be found by accident. */
    setenv("KSP11_TCTI", "swtpm:path=/nonexistent/ksp11-fuzz.sock", 1);

    CK_FUNCTION_LIST_PTR f = NULL;
    FUZZ_CHECK(C_GetFunctionList(&f) == CKR_OK);
    FUZZ_CHECK(f->C_Initialize(NULL) == CKR_OK);
    CK_SLOT_ID slots[16];
    CK_ULONG ns = 16;
    FUZZ_CHECK(f->C_GetSlotList(CK_FALSE, slots, &ns) == CKR_OK && ns > 0);
    CK_SLOT_ID s = slots[ns - 1];
    CK_UTF8CHAR label[32];
    pad(label, sizeof(label), "fuzz");
    FUZZ_CHECK(f->C_InitToken(s, (CK_UTF8CHAR_PTR)FUZZ_SO_PIN, 8, label) == CKR_OK);
    /* The token may now sit in another slot: find it by label. */
    ns = 16;
    FUZZ_CHECK(f->C_GetSlotList(CK_TRUE, slots, &ns) == CKR_OK);
    bool found = false;
    for (CK_ULONG i = 0; i < ns && !found; i++) {
        CK_TOKEN_INFO ti;
        if (f->C_GetTokenInfo(slots[i], &ti) == CKR_OK && (ti.flags & CKF_TOKEN_INITIALIZED) &&
            memcmp(ti.label, label, sizeof(label)) == 0) {
            s = slots[i];
            found = true;
        }
    }
    FUZZ_CHECK(found);
    CK_SESSION_HANDLE h;
    FUZZ_CHECK(f->C_OpenSession(s, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &h) == CKR_OK);
    FUZZ_CHECK(f->C_Login(h, CKU_SO, (CK_UTF8CHAR_PTR)FUZZ_SO_PIN, 8) == CKR_OK);
    FUZZ_CHECK(f->C_InitPIN(h, (CK_UTF8CHAR_PTR)FUZZ_USER_PIN, 4) == CKR_OK);
    FUZZ_CHECK(f->C_Logout(h) == CKR_OK);
    FUZZ_CHECK(f->C_CloseSession(h) == CKR_OK);
    mod = f;
    mod_slot = s;
    *fl = f;
    *slot = s;
}

CK_SESSION_HANDLE fuzz_session(bool login)
{
    CK_SESSION_HANDLE h;
    FUZZ_CHECK(mod->C_OpenSession(mod_slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, NULL, NULL, &h) ==
               CKR_OK);
    if (login) {
        CK_RV rv = mod->C_Login(h, CKU_USER, (CK_UTF8CHAR_PTR)FUZZ_USER_PIN, 4);
        FUZZ_CHECK(rv == CKR_OK || rv == CKR_USER_ALREADY_LOGGED_IN);
    }
    return h;
}
