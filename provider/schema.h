/*
 * Attribute rules as data (DESIGN.md §2, style.md §3.5): one const schema per
 * (class, key type), chained storage -> key -> private key -> RSA private key,
 * enforced by one engine for create / generate / copy / set. No other file
 * switches on CKA values.
 *
 * ksp11 policy on top of the spec (DESIGN.md §3): private keys are always
 * CKA_SENSITIVE=TRUE, CKA_EXTRACTABLE=FALSE, CKA_COPYABLE=FALSE; a template
 * asking otherwise fails with CKR_ATTRIBUTE_VALUE_INVALID. Secret keys (ECDH
 * output) follow the spec's one-way rules and may be extractable.
 */
#ifndef KSP_SCHEMA_H
#define KSP_SCHEMA_H

#include <stdbool.h>

#include "attr.h"

enum ksp_schema_op {
    KSP_SCHEMA_CREATE,   /* C_CreateObject: template is the whole object */
    KSP_SCHEMA_GENERATE, /* C_GenerateKeyPair: template + token-computed values */
    KSP_SCHEMA_DERIVE,   /* C_DeriveKey: template for the derived secret key */
    KSP_SCHEMA_COPY,     /* C_CopyObject: template modifies a copy of obj */
    KSP_SCHEMA_SET,      /* C_SetAttributeValue: template modifies obj */
};

/* Who is acting, for attributes only the SO may set (CKA_TRUSTED). */
struct ksp_schema_ctx {
    bool so; /* session is in an SO state */
};

/*
 * Validate `tmpl` for `op` and produce the object's complete attribute list.
 *
 * CREATE/GENERATE/DERIVE: `obj` is NULL on entry and `out` receives the
 *   complete list: template + defaults of every schema row + the values the
 *   token computes. For GENERATE and DERIVE the caller passes the
 *   token-computed values (CKA_MODULUS, CKA_PUBLIC_EXPONENT, CKA_EC_POINT,
 *   CKA_VALUE_LEN/CKA_VALUE for derive, CKA_KEY_GEN_MECHANISM, the vendor
 *   attributes...) in `computed`; these bypass the "not settable" checks.
 *   The engine sets CKA_LOCAL, CKA_ALWAYS_SENSITIVE, CKA_NEVER_EXTRACTABLE,
 *   CKA_KEY_GEN_MECHANISM (CK_UNAVAILABLE_INFORMATION on create) as the spec
 *   says for `op`.
 *   For GENERATE the class and key type are in `computed` (CKA_CLASS,
 *   CKA_KEY_TYPE); a template entry contradicting them is
 *   CKR_TEMPLATE_INCONSISTENT.
 * COPY/SET: `obj` is the existing object's attributes; `out` receives the
 *   modified complete list (obj itself is not changed).
 *
 * Return codes (PKCS#11 3.0 §4.1 and §5.7):
 *   CKR_ATTRIBUTE_TYPE_INVALID   attribute not valid for this class/key type
 *   CKR_ATTRIBUTE_VALUE_INVALID  wrong length/value, or ksp11 policy refuses it
 *   CKR_ATTRIBUTE_READ_ONLY      not settable in this op (e.g. CKA_LOCAL; a one-way
 *                                flag going back; CKA_TRUSTED by a non-SO)
 *   CKR_TEMPLATE_INCOMPLETE      a required attribute is missing (e.g. CKA_CLASS,
 *                                CKA_MODULUS on create)
 *   CKR_TEMPLATE_INCONSISTENT    class/key type contradicted, unsupported class
 *   CKR_ACTION_PROHIBITED        COPY of CKA_COPYABLE=FALSE, SET of CKA_MODIFIABLE=FALSE
 *                                (the caller maps SET to CKR_ATTRIBUTE_READ_ONLY per spec)
 */
CK_RV ksp_schema_apply(enum ksp_schema_op op, const struct ksp_schema_ctx *ctx,
                       const struct ksp_attrs *obj, const struct ksp_attrs *tmpl,
                       const struct ksp_attrs *computed, struct ksp_attrs *out);

/* How C_GetAttributeValue treats one attribute of an object. */
enum ksp_attr_access {
    KSP_ACCESS_OK,        /* readable; value may be absent from the list (-> invalid) */
    KSP_ACCESS_SENSITIVE, /* CKR_ATTRIBUTE_SENSITIVE */
    KSP_ACCESS_INVALID,   /* CKR_ATTRIBUTE_TYPE_INVALID: not an attribute of this object */
};
enum ksp_attr_access ksp_schema_access(const struct ksp_attrs *obj, CK_ATTRIBUTE_TYPE type);

/* Attributes that must not be written to disk in clear (private key
 * components, secret key CKA_VALUE): true for those. The core keeps them out
 * of the stored attribute list. */
bool ksp_schema_is_secret(const struct ksp_attrs *obj, CK_ATTRIBUTE_TYPE type);

#endif
