/*
 * Memory a forked child abandons on purpose (lib.c discard_state,
 * ossl_ctx.c ksp_ossl_ctx_forget): the parent's backend keys, backend state
 * and OpenSSL context may be mid-use by a thread that does not exist in the
 * child, so they are never freed there. ksp_abandon keeps such pointers
 * reachable from a static table, so leak checkers (LeakSanitizer, valgrind)
 * report only real leaks.
 */
#ifndef KSP_ABANDON_H
#define KSP_ABANDON_H

void ksp_abandon(const void *p);

#endif
