/*
 * Small shared library of the fault, load and crash test programs
 * (tests/faults/fault_*.c): the module loaded with dlopen and driven only through
 * its function list, token/session/object helpers that abort the process
 * with a message on an unexpected return code, and OpenSSL checks.
 *
 * Not the Check fixture of tests/unit/testlib.c: these programs fork, get
 * killed and run threads, and report by exit status and stderr lines.
 * The module is $KSP11_MODULE, else $KSP11_BUILD/ksp11-pkcs11.so, else
 * build/ksp11-pkcs11.so.
 */
#ifndef KSP11_FAULTS_FL_H
#define KSP11_FAULTS_FL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "ksp11/pkcs11.h"

#define FL_SO_PIN   "12345678"
#define FL_USER_PIN "1234"

extern CK_FUNCTION_LIST *fl_p11;
#define FLP (fl_p11)

/* Print "<prog>: message" and exit(2) (1 is kept for "an assertion failed"). */
void fl_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
/* An assertion about the module's behaviour failed: message, exit(1). */
void fl_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
const char *fl_rv(CK_RV rv);
/* Abort with the call text unless rv is CKR_OK. */
#define FL_OK(expr)                                                                                \
    do {                                                                                           \
        CK_RV fl_rv_ = (expr);                                                                     \
        if (fl_rv_ != CKR_OK)                                                                      \
            fl_fail("%s:%d: %s -> %s", __FILE__, __LINE__, #expr, fl_rv(fl_rv_));                  \
    } while (0)

void fl_set_prog(const char *argv0);
void fl_load(void);           /* dlopen + C_GetFunctionList, no C_Initialize */
void fl_initialize(void);     /* C_Initialize with CKF_OS_LOCKING_OK */
CK_RV fl_initialize_rv(void); /* the same, returning the code */
void fl_finalize(void);       /* C_Finalize, code ignored */
void fl_reinit(void);         /* C_Finalize + C_Initialize */

/* Slots and sessions. */
CK_SLOT_ID fl_find_slot(const char *label); /* aborts when missing */
bool fl_slot_by_label(const char *label, CK_SLOT_ID *out);
/* A new token LABEL with FL_SO_PIN and user PIN FL_USER_PIN; returns its slot. */
CK_SLOT_ID fl_make_token(const char *label);
CK_SESSION_HANDLE fl_open(CK_SLOT_ID slot, bool rw);
CK_RV fl_login_rv(CK_SESSION_HANDLE s, CK_USER_TYPE u, const char *pin);
CK_SESSION_HANDLE fl_open_user(CK_SLOT_ID slot, bool rw); /* open + user login */

/* Objects. */
CK_RV fl_attr(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE t, uint8_t **val,
              CK_ULONG *len); /* malloc'd, NUL one past *len */
CK_ULONG fl_ulong(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, CK_ATTRIBUTE_TYPE t);
/* All objects matching tmpl (n may be 0): malloc'd array, count in *cnt. */
CK_RV fl_find(CK_SESSION_HANDLE s, const CK_ATTRIBUTE *tmpl, CK_ULONG n, CK_OBJECT_HANDLE **out,
              CK_ULONG *cnt);
/* A token data object whose label encodes a digest of its value (fl_data_label). */
CK_RV fl_create_data(CK_SESSION_HANDLE s, const uint8_t *val, size_t len, unsigned gen, bool token,
                     CK_OBJECT_HANDLE *out);
/* "fk-<16 hex of SHA-256(gen || value)>-<gen>" */
void fl_data_label(const uint8_t *val, size_t len, unsigned gen, char out[64]);
/* Does the object's label match its value? *why gets a reason when not. */
bool fl_data_consistent(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h, const char **why);

/* Keys: EC P-256 or RSA-2048 pair, private CKA_SIGN, public CKA_VERIFY. */
CK_RV fl_gen_ec(CK_SESSION_HANDLE s, const char *label, bool token, CK_OBJECT_HANDLE *pub,
                CK_OBJECT_HANDLE *priv);
CK_RV fl_gen_rsa(CK_SESSION_HANDLE s, const char *label, bool token, CK_OBJECT_HANDLE *pub,
                 CK_OBJECT_HANDLE *priv);
/* Public key of a key object as an OpenSSL key (NULL on any error). */
EVP_PKEY *fl_pubkey(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE h);
/* Sign data with CKM_ECDSA_SHA256 or CKM_SHA256_RSA_PKCS (by key type). */
CK_RV fl_sign(CK_SESSION_HANDLE s, CK_OBJECT_HANDLE priv, CK_KEY_TYPE kt, const uint8_t *data,
              size_t len, uint8_t *sig, CK_ULONG *siglen);
/* OpenSSL verifies a signature made by fl_sign. */
bool fl_verify(EVP_PKEY *pk, const uint8_t *data, size_t len, const uint8_t *sig, size_t siglen);

/* Misc. */
void fl_hex(const uint8_t *in, size_t n, char *out); /* 2n+1 chars */
uint32_t fl_rand(void);                              /* thread-safe, seeded by pid and time */
void fl_sleep_us(long us);

#endif
