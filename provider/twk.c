/*
 * Token wrapping key (DESIGN.md §3): generation, PIN wrapping
 * (PBKDF2-HMAC-SHA256 -> 32-byte KEK -> AES-256-GCM) and sealing of object
 * secrets under the TWK (AES-256-GCM, nonce || ciphertext || tag). All crypto
 * is fetched from the private library context (ossl_ctx.h); every
 * intermediate that touches a key is wiped.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "log.h"
#include "ossl_ctx.h"
#include "secmem.h"
#include "twk.h"

#define AREA      "twk"
#define NONCE_LEN 12
#define TAG_LEN   16
#define KEK_LEN   32

#define ITER_FLOOR 10000u
#define ITER_CAP   10000000u
#define ITER_PROBE 2000u

static const uint8_t twk_aad[] = "ksp11-twk-v1";

static CK_RV random_bytes(uint8_t *p, size_t n)
{
    OSSL_LIB_CTX *ctx = ksp_ossl_ctx();
    if (!ctx || RAND_bytes_ex(ctx, p, n, 0) != 1) {
        ksp_err(AREA, "random generator failed");
        return CKR_FUNCTION_FAILED;
    }
    return CKR_OK;
}

CK_RV ksp_twk_new(struct ksp_buf *twk)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_buf k = {0};
    if (!twk)
        return CKR_ARGUMENTS_BAD;
    rv = ksp_buf_alloc(&k, KSP_TWK_LEN);
    if (rv != CKR_OK)
        goto out;
    rv = random_bytes(k.p, k.len);
    if (rv != CKR_OK)
        goto out;
    *twk = k;
    k.p = NULL;
out:
    ksp_buf_free(&k);
    return rv;
}

/* PBKDF2-HMAC-SHA256(pin, salt, iterations) -> kek[KEK_LEN]. */
static CK_RV derive_kek(const uint8_t *pin, size_t pin_len, const uint8_t *salt, size_t salt_len,
                        uint32_t iterations, uint8_t *kek)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    OSSL_LIB_CTX *ctx = ksp_ossl_ctx();
    EVP_KDF *kdf = NULL;
    EVP_KDF_CTX *kctx = NULL;
    uint64_t iter = iterations;
    /* An empty PIN (PIN-less tokens, tests) still needs a valid pointer. */
    static uint8_t empty;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD,
                                          pin_len ? (void *)pin : (void *)&empty, pin_len),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, salt_len),
        OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_ITER, &iter),
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, "SHA256", 0),
        OSSL_PARAM_construct_end(),
    };
    if (!ctx)
        goto out;
    kdf = EVP_KDF_fetch(ctx, "PBKDF2", NULL);
    if (!kdf)
        goto out;
    kctx = EVP_KDF_CTX_new(kdf);
    if (!kctx) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    if (EVP_KDF_derive(kctx, kek, KEK_LEN, params) != 1)
        goto out;
    rv = CKR_OK;
out:
    if (rv != CKR_OK)
        ksp_err(AREA, "PBKDF2 failed");
    EVP_KDF_CTX_free(kctx); /* cleanses its copy of the password */
    EVP_KDF_free(kdf);
    return rv;
}

/*
 * AES-256-GCM one-shot. enc: in -> out, tag written. !enc: in -> out, tag
 * checked; a mismatch is CKR_ENCRYPTED_DATA_INVALID.
 */
static CK_RV gcm(int enc, const uint8_t *key, const uint8_t *nonce, const uint8_t *aad,
                 size_t aad_len, const uint8_t *in, size_t len, uint8_t *out, uint8_t *tag)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    OSSL_LIB_CTX *ctx = ksp_ossl_ctx();
    EVP_CIPHER *cipher = NULL;
    EVP_CIPHER_CTX *c = NULL;
    int outl = 0;

    if (len > INT_MAX || aad_len > INT_MAX)
        return CKR_DATA_LEN_RANGE;
    if (!ctx)
        goto out;
    cipher = EVP_CIPHER_fetch(ctx, "AES-256-GCM", NULL);
    c = EVP_CIPHER_CTX_new();
    if (!cipher || !c)
        goto out;
    /* The default nonce length of GCM in OpenSSL is 12 bytes. */
    if (EVP_CipherInit_ex2(c, cipher, key, nonce, enc, NULL) != 1)
        goto out;
    if (aad_len && EVP_CipherUpdate(c, NULL, &outl, aad, (int)aad_len) != 1)
        goto out;
    if (len && EVP_CipherUpdate(c, out, &outl, in, (int)len) != 1)
        goto out;
    if (!enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) != 1)
        goto out;
    if (EVP_CipherFinal_ex(c, out + (len ? (size_t)outl : 0), &outl) != 1) {
        rv = enc ? CKR_GENERAL_ERROR : CKR_ENCRYPTED_DATA_INVALID;
        goto out;
    }
    if (enc && EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, TAG_LEN, tag) != 1)
        goto out;
    rv = CKR_OK;
out:
    EVP_CIPHER_CTX_free(c); /* cleanses the key schedule */
    EVP_CIPHER_free(cipher);
    return rv;
}

/* ---- PBKDF2 iteration count ---- */

static pthread_once_t probe_once = PTHREAD_ONCE_INIT;
static double iters_per_ms; /* 0: probe failed */

static void probe(void)
{
    static const uint8_t pin[] = "ksp11-probe";
    uint8_t salt[16] = {0};
    uint8_t kek[KEK_LEN];
    struct timespec a, b;
    /* The first derivation pays for fetching; time the second. */
    if (derive_kek(pin, sizeof(pin) - 1, salt, sizeof(salt), 1, kek) != CKR_OK)
        return;
    clock_gettime(CLOCK_MONOTONIC, &a);
    CK_RV rv = derive_kek(pin, sizeof(pin) - 1, salt, sizeof(salt), ITER_PROBE, kek);
    clock_gettime(CLOCK_MONOTONIC, &b);
    ksp_wipe(kek, sizeof(kek));
    if (rv != CKR_OK)
        return;
    double ms = (double)(b.tv_sec - a.tv_sec) * 1e3 + (double)(b.tv_nsec - a.tv_nsec) / 1e6;
    if (ms > 0)
        iters_per_ms = ITER_PROBE / ms;
}

/*
 * KSP11_KDF_ITERATIONS=<n> (n > 0) replaces the measurement, without the
 * 10000 floor: the test suites use it to keep PIN operations fast. It lowers
 * the protection of PIN-wrapped keys, so it is read with secure_getenv (never
 * honoured in setuid programs) and must not be set in production.
 */
static uint32_t env_iterations(void)
{
    const char *v = secure_getenv("KSP11_KDF_ITERATIONS");
    if (!v || v[0] < '1' || v[0] > '9')
        return 0;
    errno = 0;
    char *end = NULL;
    unsigned long long n = strtoull(v, &end, 10);
    if (errno || *end)
        return 0;
    return n > ITER_CAP ? ITER_CAP : (uint32_t)n;
}

uint32_t ksp_kdf_iterations(unsigned ms)
{
    uint32_t forced = env_iterations();
    if (forced)
        return forced;
    pthread_once(&probe_once, probe);
    double n = iters_per_ms * (double)ms;
    if (n < ITER_FLOOR)
        return ITER_FLOOR;
    if (n > ITER_CAP)
        return ITER_CAP;
    return (uint32_t)n;
}

/* ---- wrapping the TWK under a PIN ---- */

CK_RV ksp_twk_wrap(const struct ksp_buf *twk, const uint8_t *pin, size_t pin_len,
                   uint32_t iterations, struct ksp_wrapped *out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_wrapped w;
    uint8_t *kek = NULL;

    memset(&w, 0, sizeof(w));
    if (!twk || !twk->p || twk->len != KSP_TWK_LEN || (pin_len && !pin) || !out)
        return CKR_ARGUMENTS_BAD;
    if (iterations == 0 || iterations > ITER_CAP)
        return CKR_ARGUMENTS_BAD;
    kek = ksp_secmem_alloc(KEK_LEN);
    if (!kek)
        return CKR_HOST_MEMORY;
    w.kdf = KSP_KDF_PBKDF2_SHA256;
    w.iterations = iterations;
    rv = random_bytes(w.salt, sizeof(w.salt));
    if (rv != CKR_OK)
        goto out;
    rv = random_bytes(w.nonce, sizeof(w.nonce));
    if (rv != CKR_OK)
        goto out;
    rv = derive_kek(pin, pin_len, w.salt, sizeof(w.salt), iterations, kek);
    if (rv != CKR_OK)
        goto out;
    rv = gcm(1, kek, w.nonce, twk_aad, sizeof(twk_aad) - 1, twk->p, KSP_TWK_LEN, w.ct, w.tag);
    if (rv != CKR_OK)
        goto out;
    *out = w;
out:
    ksp_secmem_free(kek, KEK_LEN);
    ksp_wipe(&w, sizeof(w));
    return rv;
}

CK_RV ksp_twk_unwrap(const struct ksp_wrapped *w, const uint8_t *pin, size_t pin_len,
                     struct ksp_buf *twk_out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_buf k = {0};
    uint8_t *kek = NULL;
    uint8_t tag[TAG_LEN];

    if (!w || (pin_len && !pin) || !twk_out)
        return CKR_ARGUMENTS_BAD;
    /* Read back from disk: hostile. A huge count would hang the caller. */
    if (w->kdf != KSP_KDF_PBKDF2_SHA256 || w->iterations == 0 || w->iterations > ITER_CAP) {
        ksp_warn(AREA, "wrapped key with unknown KDF %u or bad iteration count", w->kdf);
        return CKR_DATA_INVALID;
    }
    kek = ksp_secmem_alloc(KEK_LEN);
    if (!kek)
        return CKR_HOST_MEMORY;
    rv = ksp_buf_alloc(&k, KSP_TWK_LEN);
    if (rv != CKR_OK)
        goto out;
    rv = derive_kek(pin, pin_len, w->salt, sizeof(w->salt), w->iterations, kek);
    if (rv != CKR_OK)
        goto out;
    memcpy(tag, w->tag, sizeof(tag));
    rv = gcm(0, kek, w->nonce, twk_aad, sizeof(twk_aad) - 1, w->ct, KSP_TWK_LEN, k.p, tag);
    /* A tag mismatch under a PIN-derived key means a wrong PIN. */
    if (rv == CKR_ENCRYPTED_DATA_INVALID)
        rv = CKR_PIN_INCORRECT;
    if (rv != CKR_OK)
        goto out;
    *twk_out = k;
    k.p = NULL;
out:
    ksp_buf_free(&k);
    ksp_secmem_free(kek, KEK_LEN);
    return rv;
}

/* ---- sealing object secrets under the TWK ---- */

CK_RV ksp_seal(const struct ksp_buf *twk, const uint8_t *aad, size_t aad_len,
               const struct ksp_buf *pt, struct ksp_buf *out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_buf s = {0};

    if (!twk || !twk->p || twk->len != KSP_TWK_LEN || (aad_len && !aad) || !pt ||
        (pt->len && !pt->p) || !out)
        return CKR_ARGUMENTS_BAD;
    if (pt->len > INT_MAX - NONCE_LEN - TAG_LEN)
        return CKR_DATA_LEN_RANGE;
    rv = ksp_buf_alloc(&s, NONCE_LEN + pt->len + TAG_LEN);
    if (rv != CKR_OK)
        goto out;
    rv = random_bytes(s.p, NONCE_LEN);
    if (rv != CKR_OK)
        goto out;
    rv = gcm(1, twk->p, s.p, aad, aad_len, pt->p, pt->len, s.p + NONCE_LEN,
             s.p + NONCE_LEN + pt->len);
    if (rv != CKR_OK)
        goto out;
    *out = s;
    s.p = NULL;
out:
    ksp_buf_free(&s);
    return rv;
}

CK_RV ksp_unseal(const struct ksp_buf *twk, const uint8_t *aad, size_t aad_len,
                 const struct ksp_buf *sealed, struct ksp_buf *out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_buf p = {0};
    uint8_t tag[TAG_LEN];

    if (!twk || !twk->p || twk->len != KSP_TWK_LEN || (aad_len && !aad) || !sealed || !out)
        return CKR_ARGUMENTS_BAD;
    if (!sealed->p || sealed->len < NONCE_LEN + TAG_LEN)
        return CKR_ENCRYPTED_DATA_INVALID;
    size_t ct_len = sealed->len - NONCE_LEN - TAG_LEN;
    rv = ksp_buf_alloc(&p, ct_len);
    if (rv != CKR_OK)
        goto out;
    memcpy(tag, sealed->p + NONCE_LEN + ct_len, TAG_LEN);
    rv = gcm(0, twk->p, sealed->p, aad, aad_len, sealed->p + NONCE_LEN, ct_len, p.p, tag);
    if (rv != CKR_OK)
        goto out;
    *out = p;
    p.p = NULL;
out:
    ksp_buf_free(&p); /* wipes unauthenticated plaintext on failure */
    return rv;
}
