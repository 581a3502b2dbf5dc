/*
 * The ksp11 command: X.509 helpers of the certificate commands (x509.c).
 * OpenSSL builds the structures; the token signs them (key.c).
 */
#ifndef KSP11_TOOLS_X509_H
#define KSP11_TOOLS_X509_H

#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "cli.h"

int ksp_x509_subject(struct ksp_cli *cli, const char *arg, X509_NAME **out);
char *ksp_x509_name_text(const X509_NAME *name);
int ksp_x509_add_ext(struct ksp_cli *cli, X509V3_CTX *ctx, STACK_OF(X509_EXTENSION) * *sk, int nid,
                     const char *value, const char *what);
int ksp_x509_sign_cert(struct ksp_cli *cli, CK_SESSION_HANDLE s, const struct ksp_key *k, X509 *x,
                       X509 **out);
int ksp_x509_sign_req(struct ksp_cli *cli, CK_SESSION_HANDLE s, const struct ksp_key *k,
                      X509_REQ *req, X509_REQ **out);
int ksp_x509_read(const char *path, X509 **out);
int ksp_x509_out_check(const char *path);
int ksp_x509_write_pem(const char *path, X509 *x, X509_REQ *req);
int ksp_x509_store(struct ksp_cli *cli, CK_SESSION_HANDLE s, X509 *x, const unsigned char *id,
                   size_t id_len, const char *label, CK_OBJECT_HANDLE *out);
void ksp_x509_time_text(const ASN1_TIME *t, char *buf, size_t n);
char *ksp_x509_serial_text(const X509 *x);
int ksp_x509_find_value(struct ksp_cli *cli, CK_SESSION_HANDLE s, X509 *x, bool *found);

#endif
