/*
 * Software digests and random numbers of the core (swcrypto.h), plus the
 * helpers every swcrypto file shares: hash ids -> OpenSSL names and the
 * OpenSSL error queue -> log translation. All through the private context.
 */
#include <stdlib.h>

#include <openssl/err.h>
#include <openssl/evp.h>

#include "log.h"
#include "ossl_ctx.h"
#include "swcrypto_int.h"

#define AREA "swcrypto"

struct ksp_digest {
    EVP_MD_CTX *ctx;
    size_t len;
};

static const struct {
    CK_MECHANISM_TYPE mech;
    const char *name;
    size_t len;
} hashes[] = {
    {CKM_SHA_1, "SHA1", 20},      {CKM_SHA224, "SHA2-224", 28}, {CKM_SHA256, "SHA2-256", 32},
    {CKM_SHA384, "SHA2-384", 48}, {CKM_SHA512, "SHA2-512", 64},
};

size_t ksp_hash_len(CK_MECHANISM_TYPE hash)
{
    for (size_t i = 0; i < sizeof(hashes) / sizeof(hashes[0]); i++) {
        if (hashes[i].mech == hash) {
            return hashes[i].len;
        }
    }
    return 0;
}

const char *ksp_hash_ossl_name(CK_MECHANISM_TYPE hash)
{
    for (size_t i = 0; i < sizeof(hashes) / sizeof(hashes[0]); i++) {
        if (hashes[i].mech == hash) {
            return hashes[i].name;
        }
    }
    return NULL;
}

EVP_MD *ksp_md_fetch(CK_MECHANISM_TYPE hash)
{
    const char *name = ksp_hash_ossl_name(hash);
    OSSL_LIB_CTX *c = ksp_ossl_ctx();
    EVP_MD *md = NULL;

    if (name == NULL || c == NULL) {
        return NULL;
    }
    md = EVP_MD_fetch(c, name, NULL);
    if (md == NULL) {
        (void)ksp_ossl_err(AREA, "EVP_MD_fetch", CKR_FUNCTION_FAILED);
    }
    return md;
}

CK_RV ksp_ossl_err(const char *area, const char *what, CK_RV rv)
{
    /* The reason without the flag bits, so any library's malloc failure counts. */
    const unsigned long rmask = (1UL << ERR_RFLAGS_OFFSET) - 1;
    int level = KSP_LOG_ERROR;
    bool nomem = false;

    if (rv == CKR_SIGNATURE_INVALID || rv == CKR_ENCRYPTED_DATA_INVALID ||
        rv == CKR_ATTRIBUTE_VALUE_INVALID || rv == CKR_MECHANISM_PARAM_INVALID) {
        level = KSP_LOG_DEBUG;
    }
    for (;;) {
        const char *data = NULL;
        int flags = 0;
        char msg[256];
        unsigned long e = ERR_get_error_all(NULL, NULL, NULL, &data, &flags);

        if (e == 0) {
            break;
        }
        if (((unsigned long)ERR_GET_REASON(e) & rmask) == (ERR_R_MALLOC_FAILURE & rmask)) {
            nomem = true;
        }
        if (!ksp_log_enabled(level)) {
            continue;
        }
        ERR_error_string_n(e, msg, sizeof(msg));
        ksp_log(level, area, "%s: %s%s%s", what, msg, (flags & ERR_TXT_STRING) ? ": " : "",
                (flags & ERR_TXT_STRING) && data != NULL ? data : "");
    }
    if (nomem) {
        return CKR_HOST_MEMORY;
    }
    if (level == KSP_LOG_ERROR) {
        ksp_err(area, "%s failed (%s)", what, ksp_rv_name(rv));
    }
    return rv;
}

CK_RV ksp_digest_new(CK_MECHANISM_TYPE hash, struct ksp_digest **out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_digest *d = NULL;
    EVP_MD *md = NULL;

    if (ksp_hash_len(hash) == 0) {
        rv = CKR_MECHANISM_INVALID;
        goto out;
    }
    d = calloc(1, sizeof(*d));
    if (d == NULL) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    d->len = ksp_hash_len(hash);
    md = ksp_md_fetch(hash);
    if (md == NULL) {
        rv = CKR_FUNCTION_FAILED;
        goto out;
    }
    d->ctx = EVP_MD_CTX_new();
    if (d->ctx == NULL) {
        rv = CKR_HOST_MEMORY;
        goto out;
    }
    if (EVP_DigestInit_ex2(d->ctx, md, NULL) != 1) {
        rv = ksp_ossl_err(AREA, "EVP_DigestInit_ex2", CKR_FUNCTION_FAILED);
        goto out;
    }
    *out = d;
    d = NULL;
    rv = CKR_OK;
out:
    EVP_MD_free(md);
    ksp_digest_free(d);
    return rv;
}

CK_RV ksp_digest_update(struct ksp_digest *d, const uint8_t *in, size_t len)
{
    if (len == 0) {
        return CKR_OK;
    }
    if (EVP_DigestUpdate(d->ctx, in, len) != 1) {
        return ksp_ossl_err(AREA, "EVP_DigestUpdate", CKR_FUNCTION_FAILED);
    }
    return CKR_OK;
}

CK_RV ksp_digest_final(struct ksp_digest *d, uint8_t *out)
{
    unsigned int len = 0;

    if (EVP_DigestFinal_ex(d->ctx, out, &len) != 1 || len != d->len) {
        return ksp_ossl_err(AREA, "EVP_DigestFinal_ex", CKR_FUNCTION_FAILED);
    }
    return CKR_OK;
}

void ksp_digest_free(struct ksp_digest *d)
{
    if (d == NULL) {
        return;
    }
    /* EVP_MD_CTX_free cleanses the state (it may have hashed secrets). */
    EVP_MD_CTX_free(d->ctx);
    free(d);
}

CK_RV ksp_digest(CK_MECHANISM_TYPE hash, const uint8_t *in, size_t len, uint8_t *out)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    struct ksp_digest *d = NULL;

    rv = ksp_digest_new(hash, &d);
    if (rv != CKR_OK) {
        goto out;
    }
    rv = ksp_digest_update(d, in, len);
    if (rv != CKR_OK) {
        goto out;
    }
    rv = ksp_digest_final(d, out);
out:
    ksp_digest_free(d);
    return rv;
}

CK_RV ksp_random(uint8_t *buf, size_t len)
{
    if (ksp_ossl_random(buf, len) != 1) {
        (void)ksp_ossl_err(AREA, "RAND_bytes_ex", CKR_FUNCTION_FAILED);
        return CKR_FUNCTION_FAILED;
    }
    return CKR_OK;
}
