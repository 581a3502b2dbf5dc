/*
 * The benchmark's shared declarations (bench.c: PKCS#11 and OpenSSL parts,
 * bench_tpm.c: the raw tpm2-tss ceiling). Not part of the module.
 */
#ifndef KSP_BENCH_H
#define KSP_BENCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

/* Monotonic time in seconds. */
double bench_now(void);
/* Fatal error: print and exit 2 (a benchmark that cannot run is a failure). */
void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* OpenSSL public keys from raw components. */
EVP_PKEY *bench_pkey_rsa(const uint8_t *n, size_t nlen, const uint8_t *e, size_t elen);
EVP_PKEY *bench_pkey_p256(const uint8_t *point, size_t len); /* 04||X||Y */

/* Verify a signature made over msg (32 bytes = SHA-256 digest for the raw
 * kinds). kind: 'p' RSA PKCS#1 v1.5 SHA-256, 's' RSA-PSS SHA-256 salt 32,
 * 'e' ECDSA SHA-256 with r||s, 'E' ECDSA with DER. hashed: msg is already the
 * digest. Returns true if valid. */
bool bench_verify(EVP_PKEY *pk, char kind, bool hashed, const uint8_t *msg, size_t mlen,
                  const uint8_t *sig, size_t slen);

/* Counters of the counting TCTI (bench/tcti_count.c); 0 when not in use. */
uint64_t bench_tpm_commands(void);

/* ---- bench_tpm.c: the raw tpm2-tss ceiling ---- */
struct bench_tpm;
/* Connect with KSP11_TCTI, create an RSA-2048 and a P-256 signing key with
 * a password authValue under the storage primary. NULL if no TCTI. */
struct bench_tpm *bench_tpm_open(void);
/* Load key ('r' or 'e') and make `n` TPM2_Sign calls with password auth,
 * each verified; returns the seconds spent in the n calls only. */
double bench_tpm_sign(struct bench_tpm *t, char which, int n);
void bench_tpm_close(struct bench_tpm *t);
/* (Re)connect / disconnect (swtpm serves one connection at a time). */
void bench_tpm_connect(struct bench_tpm *t);
void bench_tpm_disconnect(struct bench_tpm *t);

#endif
