/*
 * Shared by the libFuzzer harnesses (tests/fuzz/fuzz_*.c): a quiet debug log
 * (every log line is formatted, then written to /dev/null), checksum fix-up
 * of store records so mutations reach the decoders' bodies, a byte reader
 * over the fuzz input, and a software-backend module set-up (a token with a
 * user PIN in a private temporary store) for the PKCS#11-level harnesses.
 */
#ifndef KSP_FUZZ_COMMON_H
#define KSP_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ksp11/pkcs11.h"

#define FUZZ_SO_PIN   "12345678"
#define FUZZ_USER_PIN "1234"

/* Log everything at debug level to /dev/null (exercises the formatting). */
void fuzz_quiet_log(void);

/* Store records end in SHA-256(header | body) and carry body_len in the
 * header: rewrite both so a mutated record gets past the frame check. */
void fuzz_fix_frame(uint8_t *buf, size_t len);

/* Sequential reader over the input; reads past the end yield zeros. */
struct fuzz_in {
    const uint8_t *p;
    size_t left;
};
uint8_t fuzz_u8(struct fuzz_in *in);
uint32_t fuzz_u32(struct fuzz_in *in);
CK_ULONG fuzz_ulong(struct fuzz_in *in);
/* Up to max bytes (length from the input); *len set, returns a pointer into
 * the input (NULL when 0 bytes). */
const uint8_t *fuzz_bytes(struct fuzz_in *in, size_t max, size_t *len);
/* One of n values. */
CK_ULONG fuzz_pick(struct fuzz_in *in, const CK_ULONG *v, size_t n);

/* The module (linked in, not dlopen'ed) with a token "fuzz" (user PIN set)
 * in a temporary store removed at exit; *fl, *slot for the caller. Aborts if
 * the set-up fails: a harness that cannot start must not report success. */
void fuzz_module_setup(CK_FUNCTION_LIST_PTR *fl, CK_SLOT_ID *slot);
/* A R/W session on slot, logged in as the user when login. */
CK_SESSION_HANDLE fuzz_session(bool login);

/* Interesting attribute types and mechanisms, shared by the harnesses. */
extern const CK_ULONG fuzz_attr_types[];
extern const size_t fuzz_n_attr_types;
extern const CK_ULONG fuzz_mechs[];
extern const size_t fuzz_n_mechs;

/* Build a template of up to max attributes from the input into t; value
 * bytes point into the input or into vals (max * 16 bytes of scratch for
 * well-formed CK_ULONG / CK_BBOOL values). */
CK_ULONG fuzz_template(struct fuzz_in *in, CK_ATTRIBUTE *t, CK_ULONG max, uint8_t *vals);

#define FUZZ_CHECK(cond)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fuzz_fail(__FILE__, __LINE__, #cond);                                                  \
    } while (0)
void fuzz_fail(const char *file, int line, const char *what) __attribute__((noreturn));

#endif
