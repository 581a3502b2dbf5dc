/*
 * Capabilities of the TPM (backend.h struct ksp_caps): RSA sizes and curves
 * from TPM2_TestParms, and whether the TPM's own RSASSA-PSS uses salt = hash
 * length. That is decided by experiment (semantics.md §5 recommendation 2:
 * TPM_PT_MODES misleads, libtpms reports 0 yet signs with salt = hLen): sign a
 * fixed digest with a throwaway RSA-2048 key and verify strictly.
 *
 * The probe generates an RSA key, seconds on a hardware TPM, so its result is
 * cached across processes in <store_root>/.tpm-caps, keyed by the TPM's
 * identity (manufacturer, vendor string, firmware 1 and 2). The file is
 * written atomically (0600, in a 0700 directory) and read back as hostile
 * input: anything but the exact format means "probe again".
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"
#include "swcrypto.h"
#include "tpm_int.h"

#define AREA KSP_TPM_AREA

#define CACHE_MAGIC "ksp11-tpm-caps 1"
#define CACHE_MAX   1024

static const CK_ULONG rsa_probe[] = {2048, 3072};

static const struct {
    enum ksp_curve curve;
    TPMI_ECC_CURVE id;
    const char *name;
} curve_probe[] = {
    {KSP_CURVE_P256, TPM2_ECC_NIST_P256, "p256"},
    {KSP_CURVE_P384, TPM2_ECC_NIST_P384, "p384"},
};

#define N_RSA    (sizeof(rsa_probe) / sizeof(rsa_probe[0]))
#define N_CURVES (sizeof(curve_probe) / sizeof(curve_probe[0]))

static void caps_empty(struct ksp_caps *c)
{
    memset(c, 0, sizeof(*c));
    c->hardware = CK_TRUE;
}

/* ---- probing ---- */

/* *ok: the TPM accepts these parameters. Only transport errors fail. */
static CK_RV test_parms(struct ksp_backend *be, const TPMT_PUBLIC_PARMS *parms, bool *ok)
{
    TSS2_RC rc = Esys_TestParms(be->esys, ESYS_TR_NONE, ESYS_TR_NONE, ESYS_TR_NONE, parms);

    *ok = rc == TSS2_RC_SUCCESS;
    if (rc == TSS2_RC_SUCCESS || (rc & TSS2_RC_LAYER_MASK) == TSS2_TPM_RC_LAYER) {
        return CKR_OK;
    }
    return ksp_tpm_rv(be, rc, "TPM2_TestParms");
}

/* A fixed SHA-256-sized digest; its value does not matter. */
static const uint8_t probe_digest[32] = {
    0x6b, 0x73, 0x70, 0x31, 0x31, 0x20, 0x50, 0x53, 0x53, 0x20, 0x70, 0x72, 0x6f, 0x62, 0x65, 0x00,
    0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10,
};

/* *native: TPM2_Sign(RSAPSS, SHA-256) verifies with salt length 32. */
static CK_RV pss_probe(struct ksp_backend *be, bool *native)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    TPM2B_PUBLIC tmpl;
    TPM2B_SENSITIVE_CREATE sens;
    TPM2B_DATA outside;
    TPML_PCR_SELECTION pcr;
    TPM2B_DIGEST digest;
    TPMT_SIG_SCHEME scheme;
    TPMT_TK_HASHCHECK ticket;
    TPM2B_PUBLIC *pub = NULL;
    TPMT_SIGNATURE *sig = NULL;
    ESYS_TR h = ESYS_TR_NONE;
    TSS2_RC rc = TSS2_RC_SUCCESS;
    struct ksp_pubkey pk;
    struct ksp_pubop op;
    static const uint8_t f4[3] = {0x01, 0x00, 0x01};

    *native = false;
    memset(&tmpl, 0, sizeof(tmpl));
    memset(&sens, 0, sizeof(sens));
    memset(&outside, 0, sizeof(outside));
    memset(&pcr, 0, sizeof(pcr));
    memset(&digest, 0, sizeof(digest));
    memset(&scheme, 0, sizeof(scheme));
    memset(&ticket, 0, sizeof(ticket));
    tmpl.publicArea.type = TPM2_ALG_RSA;
    tmpl.publicArea.nameAlg = TPM2_ALG_SHA256;
    tmpl.publicArea.objectAttributes = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
                                       TPMA_OBJECT_SENSITIVEDATAORIGIN | TPMA_OBJECT_USERWITHAUTH |
                                       TPMA_OBJECT_SIGN_ENCRYPT | TPMA_OBJECT_NODA;
    tmpl.publicArea.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
    tmpl.publicArea.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
    tmpl.publicArea.parameters.rsaDetail.keyBits = 2048;
    /* A primary in the NULL hierarchy: gone at the next reset even if we
     * crash before flushing it, and no storage key is needed. */
    rc = Esys_CreatePrimary(be->esys, ESYS_TR_RH_NULL, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE,
                            &sens, &tmpl, &outside, &pcr, &h, &pub, NULL, NULL, NULL);
    if (rc != TSS2_RC_SUCCESS) {
        rv = (rc & TSS2_RC_LAYER_MASK) == TSS2_TPM_RC_LAYER ? CKR_OK
                                                            : ksp_tpm_rv(be, rc, "PSS probe key");
        goto out;
    }
    digest.size = sizeof(probe_digest);
    memcpy(digest.buffer, probe_digest, sizeof(probe_digest));
    scheme.scheme = TPM2_ALG_RSAPSS;
    scheme.details.rsapss.hashAlg = TPM2_ALG_SHA256;
    ticket.tag = TPM2_ST_HASHCHECK;
    ticket.hierarchy = TPM2_RH_NULL;
    rc = Esys_Sign(be->esys, h, ESYS_TR_PASSWORD, ESYS_TR_NONE, ESYS_TR_NONE, &digest, &scheme,
                   &ticket, &sig);
    if (rc != TSS2_RC_SUCCESS) {
        /* No RSAPSS at all (e.g. a libtpms profile without it). */
        rv = (rc & TSS2_RC_LAYER_MASK) == TSS2_TPM_RC_LAYER ? CKR_OK
                                                            : ksp_tpm_rv(be, rc, "PSS probe sign");
        goto out;
    }
    memset(&pk, 0, sizeof(pk));
    pk.key_type = CKK_RSA;
    pk.modulus.p = pub->publicArea.unique.rsa.buffer; /* read only */
    pk.modulus.len = pub->publicArea.unique.rsa.size;
    pk.pub_exp.p = (uint8_t *)f4;
    pk.pub_exp.len = sizeof(f4);
    memset(&op, 0, sizeof(op));
    op.kind = KSP_PUB_RSA_PSS;
    op.hash = CKM_SHA256;
    op.mgf_hash = CKM_SHA256;
    op.salt_len = 32; /* strictly the hash length: what TLS 1.3 verifiers demand */
    *native =
        sig->sigAlg == TPM2_ALG_RSAPSS &&
        ksp_pub_verify(&pk, &op, probe_digest, sizeof(probe_digest),
                       sig->signature.rsapss.sig.buffer, sig->signature.rsapss.sig.size) == CKR_OK;
    rv = CKR_OK;
out:
    ksp_tpm_flush_inlock(be, &h);
    Esys_Free(pub);
    Esys_Free(sig);
    return rv;
}

static CK_RV probe(struct ksp_backend *be, struct ksp_caps *c)
{
    CK_RV rv = CKR_GENERAL_ERROR;
    TPMT_PUBLIC_PARMS parms;
    size_t n = 0;
    bool ok = false;
    bool rsa2048 = false;
    bool native = false;

    caps_empty(c);
    for (size_t i = 0; i < N_RSA; i++) {
        memset(&parms, 0, sizeof(parms));
        parms.type = TPM2_ALG_RSA;
        parms.parameters.rsaDetail.symmetric.algorithm = TPM2_ALG_NULL;
        parms.parameters.rsaDetail.scheme.scheme = TPM2_ALG_NULL;
        parms.parameters.rsaDetail.keyBits = (TPMI_RSA_KEY_BITS)rsa_probe[i];
        rv = test_parms(be, &parms, &ok);
        if (rv != CKR_OK) {
            return rv;
        }
        if (ok) {
            c->rsa_sizes[n++] = rsa_probe[i];
            rsa2048 = rsa2048 || rsa_probe[i] == 2048;
        }
    }
    if (n > 0) {
        c->rsa_min_bits = c->rsa_sizes[0];
        c->rsa_max_bits = c->rsa_sizes[n - 1];
    }
    n = 0;
    for (size_t i = 0; i < N_CURVES; i++) {
        memset(&parms, 0, sizeof(parms));
        parms.type = TPM2_ALG_ECC;
        parms.parameters.eccDetail.symmetric.algorithm = TPM2_ALG_NULL;
        parms.parameters.eccDetail.scheme.scheme = TPM2_ALG_NULL;
        parms.parameters.eccDetail.curveID = curve_probe[i].id;
        parms.parameters.eccDetail.kdf.scheme = TPM2_ALG_NULL;
        rv = test_parms(be, &parms, &ok);
        if (rv != CKR_OK) {
            return rv;
        }
        if (ok) {
            c->curves[n++] = curve_probe[i].curve;
        }
    }
    if (rsa2048) {
        rv = pss_probe(be, &native);
        if (rv != CKR_OK) {
            return rv;
        }
    }
    c->native_pss = native ? CK_TRUE : CK_FALSE;
    ksp_info(AREA, "TPM capabilities probed: RSA %lu..%lu, %zu curves, PSS salt = hash length: %s",
             c->rsa_min_bits, c->rsa_max_bits, n, native ? "native" : "synthesised");
    return CKR_OK;
}

/* ---- the cache file ---- */

static void hex(const char *s, char *out, size_t cap)
{
    size_t o = 0;

    if (s[0] == '\0') {
        snprintf(out, cap, "-");
        return;
    }
    for (size_t i = 0; s[i] != '\0' && o + 3 <= cap; i++) {
        o += (size_t)snprintf(out + o, cap - o, "%02x", (unsigned char)s[i]);
    }
}

/* The line that keys the cache: the identity of this TPM. */
static void id_line(const struct ksp_tpm_identity *id, char *out, size_t cap)
{
    char m[2 * sizeof(id->manufacturer) + 2];
    char v[2 * sizeof(id->vendor) + 2];

    hex(id->manufacturer, m, sizeof(m));
    hex(id->vendor, v, sizeof(v));
    snprintf(out, cap, "tpm %s %s %08x %08x", m, v, (unsigned)id->fw1, (unsigned)id->fw2);
}

static int format_cache(const struct ksp_tpm_identity *id, const struct ksp_caps *c, char *out,
                        size_t cap)
{
    char line[128];
    size_t o = 0;

    id_line(id, line, sizeof(line));
    o += (size_t)snprintf(out + o, cap - o, "%s\n%s\nrsa", CACHE_MAGIC, line);
    for (size_t i = 0; i < 4 && c->rsa_sizes[i] != 0 && o < cap; i++) {
        o += (size_t)snprintf(out + o, cap - o, " %lu", c->rsa_sizes[i]);
    }
    if (o < cap) {
        o += (size_t)snprintf(out + o, cap - o, "\nec");
    }
    for (size_t i = 0; i < 4 && c->curves[i] != KSP_CURVE_NONE && o < cap; i++) {
        for (size_t j = 0; j < N_CURVES; j++) {
            if (curve_probe[j].curve == c->curves[i] && o < cap) {
                o += (size_t)snprintf(out + o, cap - o, " %s", curve_probe[j].name);
            }
        }
    }
    if (o < cap) {
        o += (size_t)snprintf(out + o, cap - o, "\npss %d\n", c->native_pss ? 1 : 0);
    }
    return o < cap ? (int)o : -1;
}

/* "rsa 2048 3072": known sizes, strictly increasing. */
static bool parse_rsa(char *line, struct ksp_caps *c)
{
    char *save = NULL;
    char *tok = strtok_r(line, " ", &save);
    size_t n = 0;

    if (tok == NULL || strcmp(tok, "rsa") != 0) {
        return false;
    }
    while ((tok = strtok_r(NULL, " ", &save)) != NULL) {
        bool known = false;

        for (size_t i = 0; i < N_RSA; i++) {
            char want[16];

            snprintf(want, sizeof(want), "%lu", rsa_probe[i]);
            if (strcmp(tok, want) == 0) {
                known = true;
                /* rsa_sizes stays 0-terminated */
                if (n >= 3 || (n > 0 && c->rsa_sizes[n - 1] >= rsa_probe[i])) {
                    return false;
                }
                c->rsa_sizes[n++] = rsa_probe[i];
            }
        }
        if (!known) {
            return false;
        }
    }
    if (n > 0) {
        c->rsa_min_bits = c->rsa_sizes[0];
        c->rsa_max_bits = c->rsa_sizes[n - 1];
    }
    return true;
}

/* "ec p256 p384": known curves, each once. */
static bool parse_ec(char *line, struct ksp_caps *c)
{
    char *save = NULL;
    char *tok = strtok_r(line, " ", &save);
    size_t n = 0;

    if (tok == NULL || strcmp(tok, "ec") != 0) {
        return false;
    }
    while ((tok = strtok_r(NULL, " ", &save)) != NULL) {
        bool known = false;

        for (size_t i = 0; i < N_CURVES && !known; i++) {
            if (strcmp(tok, curve_probe[i].name) != 0) {
                continue;
            }
            for (size_t j = 0; j < n; j++) {
                if (c->curves[j] == curve_probe[i].curve) {
                    return false;
                }
            }
            if (n >= 3) {
                return false;
            }
            c->curves[n++] = curve_probe[i].curve;
            known = true;
        }
        if (!known) {
            return false;
        }
    }
    return true;
}

/* Exactly five lines: magic, identity (must be ours), rsa, ec, pss. */
static bool parse_cache(char *text, size_t len, const char *want_id, struct ksp_caps *c)
{
    char *lines[5];
    char *p = text;

    caps_empty(c);
    if (len == 0 || text[len - 1] != '\n' || memchr(text, '\0', len) != NULL) {
        return false;
    }
    text[len - 1] = '\0';
    for (int i = 0; i < 5; i++) {
        if (p == NULL) {
            return false;
        }
        lines[i] = p;
        p = strchr(p, '\n');
        if (p != NULL) {
            *p++ = '\0';
        }
    }
    if (p != NULL) {
        return false;
    }
    if (strcmp(lines[0], CACHE_MAGIC) != 0 || strcmp(lines[1], want_id) != 0 ||
        !parse_rsa(lines[2], c) || !parse_ec(lines[3], c)) {
        return false;
    }
    if (strcmp(lines[4], "pss 1") == 0) {
        c->native_pss = CK_TRUE;
    } else if (strcmp(lines[4], "pss 0") != 0) {
        return false;
    }
    return true;
}

static bool read_cache(const struct ksp_backend *be, struct ksp_caps *c)
{
    char text[CACHE_MAX + 1];
    char want[128];
    struct stat st;
    ssize_t n = 0;
    int fd = -1;
    bool ok = false;

    if (be->caps_path == NULL) {
        return false;
    }
    fd = open(be->caps_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        return false;
    }
    /* Ours (or root's, for the machine store), a regular file, small. */
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size > CACHE_MAX ||
        (st.st_uid != geteuid() && st.st_uid != 0)) {
        close(fd);
        return false;
    }
    n = read(fd, text, CACHE_MAX + 1);
    close(fd);
    if (n <= 0 || n > CACHE_MAX) {
        return false;
    }
    id_line(&be->ident, want, sizeof(want));
    ok = parse_cache(text, (size_t)n, want, c);
    if (!ok) {
        ksp_debug(AREA, "%s: stale or malformed, probing again", be->caps_path);
    }
    return ok;
}

static void write_cache(const struct ksp_backend *be, const struct ksp_caps *c)
{
    char text[CACHE_MAX];
    char dir[PATH_MAX];
    char tmp[PATH_MAX];
    const char *slash = NULL;
    int len = 0;
    int fd = -1;

    if (be->caps_path == NULL) {
        return;
    }
    len = format_cache(&be->ident, c, text, sizeof(text));
    slash = strrchr(be->caps_path, '/');
    if (len < 0 || slash == NULL || (size_t)(slash - be->caps_path) >= sizeof(dir) ||
        snprintf(tmp, sizeof(tmp), "%s.XXXXXX", be->caps_path) >= (int)sizeof(tmp)) {
        return;
    }
    memcpy(dir, be->caps_path, (size_t)(slash - be->caps_path));
    dir[slash - be->caps_path] = '\0';
    /* The store root itself may not exist yet; its parent must. */
    if (dir[0] != '\0' && mkdir(dir, 0700) != 0 && errno != EEXIST) {
        ksp_debug(AREA, "capability cache not written: %s: %s", dir, strerror(errno));
        return;
    }
    fd = mkostemp(tmp, O_CLOEXEC); /* mode 0600 */
    if (fd < 0) {
        ksp_debug(AREA, "capability cache not written: %s", strerror(errno));
        return;
    }
    if (write(fd, text, (size_t)len) != len || fsync(fd) != 0) {
        close(fd);
        unlink(tmp);
        return;
    }
    close(fd);
    /* Atomic: a reader sees the old file or the new one. */
    if (rename(tmp, be->caps_path) != 0) {
        unlink(tmp);
    }
}

const struct ksp_caps *ksp_tpm_caps_inlock(struct ksp_backend *be)
{
    struct ksp_caps c;

    if (be->caps_valid) {
        return &be->caps;
    }
    /* The cache is keyed by the identity: we need the TPM to answer. */
    if (ksp_tpm_connect_inlock(be) != CKR_OK) {
        caps_empty(&be->caps);
        return &be->caps;
    }
    if (read_cache(be, &c)) {
        be->caps = c;
        be->caps_valid = true;
        return &be->caps;
    }
    if (probe(be, &c) != CKR_OK) {
        /* Not cached: the next call probes again. */
        caps_empty(&be->caps);
        return &be->caps;
    }
    be->caps = c;
    be->caps_valid = true;
    write_cache(be, &c);
    return &be->caps;
}

const struct ksp_caps *ksp_tpm_caps(struct ksp_backend *be)
{
    struct ksp_tpm_call call;
    const struct ksp_caps *c = NULL;

    if (be == NULL) {
        return NULL;
    }
    ksp_tpm_lock(be, &call);
    c = ksp_tpm_caps_inlock(be);
    ksp_tpm_unlock(be, &call);
    return c;
}
