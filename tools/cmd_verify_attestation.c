/*
 * `ksp11 verify-attestation`: check an attestation bundle offline, on a CA
 * host without a TPM (packaging/attestation.md): the AK's signature over the
 * TPMS_ATTEST, that it certifies the creation of the key whose name is that
 * of the bundled public area, the object attributes (fixedTPM, fixedParent,
 * sensitiveDataOrigin), that the public area holds the PKCS#11 public key,
 * the nonce, and the EK certificate against the CA roots given. The TPM
 * structures are parsed here (big-endian, TPM 2.0 Part 2) - the bundle is
 * hostile input, every length is checked.
 */
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include "cli.h"

#define ALG_RSA     0x0001u
#define ALG_NULL    0x0010u
#define ALG_SHA256  0x000bu
#define ALG_RSAES   0x0015u
#define ALG_ECDSA   0x0018u
#define ALG_ECDAA   0x001au
#define ALG_ECC     0x0023u
#define CURVE_P256  0x0003u
#define CURVE_P384  0x0004u
#define GENERATED   0xff544347u
#define ST_CREATION 0x801au
#define A_FIXEDTPM  (1u << 1)
#define A_FIXEDPAR  (1u << 4)
#define A_SENSORIG  (1u << 5)
#define A_RESTRICT  (1u << 16)
#define A_SIGN      (1u << 18)

struct rd {
    const unsigned char *p;
    size_t len, at;
    bool bad;
};

static unsigned rd_u(struct rd *r, size_t n)
{
    unsigned v = 0;
    if (r->bad || n > r->len - r->at) {
        r->bad = true;
        return 0;
    }
    for (size_t i = 0; i < n; i++)
        v = v << 8 | r->p[r->at + i];
    r->at += n;
    return v;
}

static const unsigned char *rd_2b(struct rd *r, size_t *n)
{
    *n = rd_u(r, 2);
    if (r->bad || *n > r->len - r->at) {
        r->bad = true;
        *n = 0;
        return NULL;
    }
    const unsigned char *p = r->p + r->at;
    r->at += *n;
    return p;
}

struct tpub {
    unsigned type, attrs, curve;
    unsigned long exponent; /* RSA; 0 in the TPM means 65537 */
    const unsigned char *tpmt, *n, *x, *y;
    size_t tpmt_len, n_len, x_len, y_len;
};

/* A TPM2B_PUBLIC (TPM 2.0 Part 2 §12.2.5) of an RSA or ECC key. */
static bool parse_public(const unsigned char *b, size_t len, struct tpub *out)
{
    struct rd r = {b, len, 0, false};
    size_t n = 0, size = rd_u(&r, 2);
    memset(out, 0, sizeof(*out));
    if (r.bad || size != len - 2)
        return false;
    out->tpmt = b + 2;
    out->tpmt_len = size;
    out->type = rd_u(&r, 2);
    rd_u(&r, 2); /* nameAlg */
    out->attrs = rd_u(&r, 4);
    rd_2b(&r, &n);                 /* authPolicy */
    if (rd_u(&r, 2) != ALG_NULL) { /* symmetric: keyBits, mode */
        rd_u(&r, 2);
        rd_u(&r, 2);
    }
    unsigned scheme = rd_u(&r, 2);
    if (scheme != ALG_NULL && scheme != ALG_RSAES)
        rd_u(&r, scheme == ALG_ECDAA ? 4 : 2);
    if (out->type == ALG_RSA) {
        rd_u(&r, 2); /* keyBits */
        out->exponent = rd_u(&r, 4);
        out->n = rd_2b(&r, &out->n_len);
    } else if (out->type == ALG_ECC) {
        out->curve = rd_u(&r, 2);
        if (rd_u(&r, 2) != ALG_NULL) /* kdf */
            rd_u(&r, 2);
        out->x = rd_2b(&r, &out->x_len);
        out->y = rd_2b(&r, &out->y_len);
    } else {
        return false;
    }
    return !r.bad && r.at == len;
}

static const unsigned char *record(const unsigned char *b, size_t len, unsigned tag, size_t *n)
{
    size_t at = 8;
    while (at + 6 <= len) {
        unsigned t = (unsigned)b[at] << 8 | b[at + 1];
        size_t l =
            (size_t)b[at + 2] << 24 | (size_t)b[at + 3] << 16 | (size_t)b[at + 4] << 8 | b[at + 5];
        if (l > len - at - 6)
            return NULL;
        if (t == tag) {
            *n = l;
            return b + at + 6;
        }
        at += 6 + l;
    }
    return NULL;
}

static EVP_PKEY *ecc_key(const struct tpub *p)
{
    unsigned char pt[1 + 2 * 48];
    size_t fs = p->curve == CURVE_P256 ? 32 : p->curve == CURVE_P384 ? 48 : 0;
    EVP_PKEY *pk = NULL;
    if (!fs || p->x_len > fs || p->y_len > fs)
        return NULL;
    memset(pt, 0, sizeof(pt));
    pt[0] = 4;
    memcpy(pt + 1 + fs - p->x_len, p->x, p->x_len);
    memcpy(pt + 1 + 2 * fs - p->y_len, p->y, p->y_len);
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    OSSL_PARAM *params = NULL;
    if (bld && ctx &&
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME,
                                        fs == 32 ? "prime256v1" : "secp384r1", 0) &&
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, 1 + 2 * fs))
        params = OSSL_PARAM_BLD_to_param(bld);
    if (params && EVP_PKEY_fromdata_init(ctx) == 1)
        EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EVP_PKEY_CTX_free(ctx);
    return pk;
}

/* ECDSA/SHA-256 TPMT_SIGNATURE over data by key. */
static bool sig_ok(EVP_PKEY *key, const unsigned char *sig, size_t slen, const unsigned char *data,
                   size_t dlen)
{
    struct rd r = {sig, slen, 0, false};
    size_t rl = 0, sl = 0;
    unsigned char md[32], der[160], *p = der;
    bool ok = false;
    if (rd_u(&r, 2) != ALG_ECDSA || rd_u(&r, 2) != ALG_SHA256)
        return false;
    const unsigned char *rb = rd_2b(&r, &rl), *sb = rd_2b(&r, &sl);
    if (r.bad || r.at != slen || !EVP_Digest(data, dlen, md, NULL, EVP_sha256(), NULL))
        return false;
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *br = BN_bin2bn(rb, (int)rl, NULL), *bs = BN_bin2bn(sb, (int)sl, NULL);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(key, NULL);
    if (es && br && bs && ECDSA_SIG_set0(es, br, bs) == 1) {
        br = bs = NULL;
        int n = i2d_ECDSA_SIG(es, &p);
        ok = n > 0 && ctx && EVP_PKEY_verify_init(ctx) == 1 &&
             EVP_PKEY_verify(ctx, der, (size_t)n, md, sizeof(md)) == 1;
    }
    BN_free(br);
    BN_free(bs);
    ECDSA_SIG_free(es);
    EVP_PKEY_CTX_free(ctx);
    return ok;
}

/* Does the TPM public area hold the same key as the SubjectPublicKeyInfo? */
static bool same_key(const struct tpub *t, EVP_PKEY *pk)
{
    bool ok = false;
    if (t->type == ALG_RSA && EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA) {
        BIGNUM *n = NULL, *e = NULL, *tn = BN_bin2bn(t->n, (int)t->n_len, NULL);
        ok = EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &n) == 1 &&
             EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &e) == 1 && tn &&
             BN_cmp(n, tn) == 0 && BN_get_word(e) == (t->exponent ? t->exponent : 65537);
        BN_free(n);
        BN_free(e);
        BN_free(tn);
    } else if (t->type == ALG_ECC && EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC) {
        EVP_PKEY *tk = ecc_key(t);
        ok = tk && EVP_PKEY_eq(tk, pk) == 1;
        EVP_PKEY_free(tk);
    }
    return ok;
}

struct verify_opts {
    const char *in;
    const char *nonce;
    const char *roots;
    const char *chain;
};

enum { OPT_IN = KSP_OPT_CMD, OPT_NONCE, OPT_ROOTS, OPT_CHAIN };

static void help(FILE *f)
{
    fputs("usage: ksp11 verify-attestation --in FILE [--nonce HEX]\n"
          "                    [--ca-roots PEM [--ca-chain PEM]] [--json]\n"
          "\n"
          "Check an attestation bundle from 'ksp11 attest', without a TPM: the\n"
          "attestation key's signature, that it certifies the creation of the bundled\n"
          "key in the TPM, the key's attributes (fixedTPM, fixedParent,\n"
          "sensitiveDataOrigin: non-exportable, born in the TPM), the PKCS#11 public\n"
          "key, the nonce, and the EK certificate against the TPM manufacturers' CA\n"
          "roots (--ca-roots; intermediate certificates in --ca-chain). Exit status 0\n"
          "when every check passes, 7 when one fails.\n",
          f);
}

static int opt(struct ksp_cli *cli, void *ctx, int id, const char *arg)
{
    struct verify_opts *o = ctx;
    switch (id) {
    case OPT_IN:
        o->in = arg;
        break;
    case OPT_NONCE:
        o->nonce = arg;
        break;
    case OPT_ROOTS:
        o->roots = arg;
        break;
    case OPT_CHAIN:
        o->chain = arg;
        break;
    default:
        return ksp_cli_usage(cli, "unknown option");
    }
    return KSP_EXIT_OK;
}

static unsigned char *read_all(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    unsigned char *b = NULL;
    long len = 0;
    if (!f)
        return NULL;
    if (fseek(f, 0, SEEK_END) == 0 && (len = ftell(f)) > 0 && len < (1L << 20) &&
        fseek(f, 0, SEEK_SET) == 0 && (b = malloc((size_t)len)) &&
        fread(b, 1, (size_t)len, f) != (size_t)len) {
        free(b);
        b = NULL;
    }
    fclose(f);
    *n = (size_t)len;
    return b;
}

/* Load every certificate of a PEM file into a stack. */
static STACK_OF(X509) * load_certs(const char *path)
{
    STACK_OF(X509) *sk = sk_X509_new_null();
    FILE *f = fopen(path, "r");
    X509 *c = NULL;
    if (!sk || !f) {
        if (f)
            fclose(f);
        sk_X509_free(sk);
        return NULL;
    }
    while ((c = PEM_read_X509(f, NULL, NULL, NULL)) != NULL)
        sk_X509_push(sk, c);
    fclose(f);
    if (sk_X509_num(sk) == 0) {
        sk_X509_free(sk);
        return NULL;
    }
    return sk;
}

/* The EK certificate: its key is the bundle's EK, its chain ends in a root. */
static const char *check_ek(const struct verify_opts *o, const unsigned char *cert, size_t clen,
                            const struct tpub *ek)
{
    const unsigned char *p = cert;
    X509 *x = d2i_X509(NULL, &p, (long)clen);
    STACK_OF(X509) *roots = NULL, *chain = NULL;
    X509_STORE *st = NULL;
    X509_STORE_CTX *ctx = NULL;
    const char *why = NULL;
    if (!x || p != cert + clen) {
        why = "the EK certificate is not DER X.509";
        goto out;
    }
    if (!same_key(ek, X509_get0_pubkey(x))) {
        why = "the EK certificate is not for the bundle's EK";
        goto out;
    }
    roots = load_certs(o->roots);
    if (!roots) {
        why = "no certificate in --ca-roots";
        goto out;
    }
    if (o->chain && !(chain = load_certs(o->chain))) {
        why = "no certificate in --ca-chain";
        goto out;
    }
    st = X509_STORE_new();
    ctx = X509_STORE_CTX_new();
    for (int i = 0; st && i < sk_X509_num(roots); i++)
        X509_STORE_add_cert(st, sk_X509_value(roots, i));
    if (!st || !ctx || X509_STORE_CTX_init(ctx, st, x, chain) != 1) {
        why = "cannot set up the certificate check";
        goto out;
    }
    /* EK certificates carry TPM-specific critical extensions (TCG EK
     * Credential Profile §3.2); their chain and signatures are what we check. */
    X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_IGNORE_CRITICAL);
    if (X509_verify_cert(ctx) != 1)
        why = X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx));
out:
    X509_STORE_CTX_free(ctx);
    X509_STORE_free(st);
    sk_X509_pop_free(roots, X509_free);
    sk_X509_pop_free(chain, X509_free);
    X509_free(x);
    return why;
}

int ksp_cmd_verify_attestation(struct ksp_cli *cli, int argc, char **argv)
{
    static const struct option opts[] = {KSP_CLI_COMMON_OPTIONS,
                                         {"in", required_argument, NULL, OPT_IN},
                                         {"nonce", required_argument, NULL, OPT_NONCE},
                                         {"ca-roots", required_argument, NULL, OPT_ROOTS},
                                         {"ca-chain", required_argument, NULL, OPT_CHAIN},
                                         {NULL, 0, NULL, 0}};
    struct verify_opts o = {0};
    unsigned char nonce[64];
    size_t nonce_len = 0, n = 0, len = 0;
    unsigned char *b = NULL;
    const char *fail = NULL, *ek_note = "not checked (no --ca-roots)";
    struct tpub key, ak, ek;
    EVP_PKEY *akpk = NULL, *spki = NULL;
    int rc = KSP_EXIT_OK;

    if (!ksp_cli_parse(cli, argc, argv, opts, opt, &o, help, &rc))
        return rc;
    if (!o.in)
        return ksp_cli_usage(cli, "--in is required");
    if (o.nonce && !ksp_hex_parse(o.nonce, nonce, sizeof(nonce), &nonce_len))
        return ksp_cli_usage(cli, "--nonce takes 1 to 64 bytes in hex");
    if (o.chain && !o.roots)
        return ksp_cli_usage(cli, "--ca-chain needs --ca-roots");
    b = read_all(o.in, &len);
    if (!b || len < 8 || memcmp(b, "KSPA\x01\x00\x00\x00", 8) != 0) {
        free(b);
        ksp_cli_err("%s is not a ksp11 attestation bundle (version 1)", o.in);
        return KSP_EXIT_INPUT;
    }
    const unsigned char *kp = record(b, len, 1, &n);
    size_t kn = n;
    const unsigned char *att = record(b, len, 2, &n);
    size_t an = n;
    const unsigned char *sig = record(b, len, 3, &n);
    size_t sn = n;
    const unsigned char *akp = record(b, len, 4, &n);
    size_t akn = n;
    const unsigned char *ekp = record(b, len, 5, &n);
    size_t ekn = n;
    const unsigned char *cert = record(b, len, 6, &n);
    size_t cn = cert ? n : 0;
    const unsigned char *pk = record(b, len, 8, &n);
    size_t pn = n;
    if (!kp || !att || !sig || !akp || !ekp || !pk || !parse_public(kp, kn, &key) ||
        !parse_public(akp, akn, &ak) || !parse_public(ekp, ekn, &ek)) {
        fail = "the bundle is incomplete or malformed";
        goto done;
    }
    /* The AK: a restricted signing key of this TPM, which signed the data. */
    if (ak.type != ALG_ECC ||
        (ak.attrs & (A_RESTRICT | A_SIGN | A_FIXEDTPM)) != (A_RESTRICT | A_SIGN | A_FIXEDTPM)) {
        fail = "the attestation key is not a restricted signing key fixed to the TPM";
        goto done;
    }
    struct rd r = {att, an, 0, false};
    size_t alen = rd_u(&r, 2);
    if (r.bad || alen != an - 2) {
        fail = "malformed TPM2B_ATTEST";
        goto done;
    }
    akpk = ecc_key(&ak);
    if (!akpk || !sig_ok(akpk, sig, sn, att + 2, alen)) {
        fail = "the attestation key's signature does not verify";
        goto done;
    }
    /* TPMS_ATTEST: magic, type, qualifiedSigner, extraData, clockInfo,
     * firmwareVersion, then TPMS_CREATION_INFO. */
    unsigned magic = rd_u(&r, 4), type = rd_u(&r, 2);
    size_t qn = 0, xn = 0, on = 0, hn = 0;
    rd_2b(&r, &qn);
    const unsigned char *extra = rd_2b(&r, &xn);
    rd_u(&r, 8 + 4 + 4 + 1);
    rd_u(&r, 8);
    const unsigned char *oname = rd_2b(&r, &on);
    rd_2b(&r, &hn);
    if (r.bad || r.at != an || magic != GENERATED || type != ST_CREATION) {
        fail = "the signed data is not a TPM2_CertifyCreation";
        goto done;
    }
    if (o.nonce && (xn != nonce_len || memcmp(extra, nonce, xn) != 0)) {
        fail = "the nonce differs";
        goto done;
    }
    /* The certified name is the bundled public area's. */
    unsigned char name[34] = {0x00, 0x0b};
    if (!EVP_Digest(key.tpmt, key.tpmt_len, name + 2, NULL, EVP_sha256(), NULL) || on != 34 ||
        memcmp(oname, name, 34) != 0) {
        fail = "the certified name is not that of the bundled key";
        goto done;
    }
    if ((key.attrs & (A_FIXEDTPM | A_FIXEDPAR | A_SENSORIG)) !=
        (A_FIXEDTPM | A_FIXEDPAR | A_SENSORIG)) {
        fail = "the key may leave the TPM or was not generated in it";
        goto done;
    }
    const unsigned char *pp = pk;
    spki = d2i_PUBKEY(NULL, &pp, (long)pn);
    if (!spki || pp != pk + pn || !same_key(&key, spki)) {
        fail = "the PKCS#11 public key is not the attested key";
        goto done;
    }
    if (o.roots) {
        if (!cert) {
            fail = "the TPM has no EK certificate to check";
            goto done;
        }
        fail = check_ek(&o, cert, cn, &ek);
        if (fail)
            goto done;
        ek_note = "verified against --ca-roots";
    } else if (!cert) {
        ek_note = "none in the bundle";
    }
done:
    if (cli->json) {
        struct ksp_json j;
        ksp_json_init(&j, stdout);
        ksp_json_obj_begin(&j, NULL);
        ksp_json_bool(&j, "valid", fail == NULL);
        if (fail)
            ksp_json_str(&j, "error", fail);
        ksp_json_str(&j, "ek_certificate", fail ? "" : ek_note);
        ksp_json_obj_end(&j);
        ksp_json_finish(&j);
    } else if (!fail) {
        printf("attestation valid: %s key generated in a TPM, fixedTPM|fixedParent|"
               "sensitiveDataOrigin; nonce %s; EK certificate %s\n",
               key.type == ALG_RSA ? "RSA" : "EC", o.nonce ? "matches" : "not checked", ek_note);
    }
    if (fail) {
        ksp_cli_err("attestation NOT valid: %s", fail);
        rc = KSP_EXIT_CHECK;
    }
    EVP_PKEY_free(akpk);
    EVP_PKEY_free(spki);
    free(b);
    return rc;
}
