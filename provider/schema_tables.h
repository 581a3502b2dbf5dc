/*
 * The attribute schemas as data (style.md §3.5): the row and table types, the
 * flag vocabulary (after kryoptic's OAFlags, each flag citing the PKCS#11
 * footnote it encodes) and the lookup of a schema by class and key type.
 * Internal to schema.c and schema_tables.c; exposed to tests/unit/check_schema.c
 * so the tests can walk the tables. Everyone else uses schema.h.
 */
#ifndef KSP_SCHEMA_TABLES_H
#define KSP_SCHEMA_TABLES_H

#include <stddef.h>
#include <stdint.h>

#include "schema.h"

/* Value types (kryoptic ATTRMAP): how a template value is checked. */
enum ksp_attr_kind {
    KSP_T_BOOL,   /* CK_BBOOL: exactly sizeof(CK_BBOOL), CK_FALSE or CK_TRUE */
    KSP_T_ULONG,  /* CK_ULONG: exactly sizeof(CK_ULONG) */
    KSP_T_BYTES,  /* byte array, any length */
    KSP_T_BIGINT, /* big-endian unsigned integer; equal values may differ in leading zeros */
    KSP_T_STRING, /* RFC 2279 string, any length */
    KSP_T_DATE,   /* CK_DATE: empty, or 8 ASCII digits YYYYMMDD */
    KSP_T_MECHS,  /* CK_MECHANISM_TYPE array: a multiple of sizeof(CK_MECHANISM_TYPE) */
};

/*
 * Row flags. PKCS#11 2.40 §4.2 table 10 footnotes ("fn") are referred to by
 * number; PKCS#11 3.0 §4.2 keeps the same numbering.
 */
/* fn 1: must be specified when the object is created with C_CreateObject. */
#define KSP_A_REQUIRED_ON_CREATE (1u << 0)
/* fn 2: must not be specified in a C_CreateObject template (the token
 * computes it from other attributes, e.g. CKA_MODULUS_BITS, CKA_VALUE_LEN). */
#define KSP_A_NEVER_ON_CREATE (1u << 1)
/* fn 3: must be specified when the object is generated (C_GenerateKey[Pair]). */
#define KSP_A_REQUIRED_ON_GENERATE (1u << 2)
/* fn 4, 6: key material; only a C_CreateObject template may carry it, the
 * token computes it on generate and derive. */
#define KSP_A_SETTABLE_ONLY_ON_CREATE (1u << 3)
/* fn 2, 4, 6 together: token-computed, never in any template (CKA_LOCAL,
 * CKA_ALWAYS_SENSITIVE, CKA_UNIQUE_ID, ksp11's read-only vendor attributes). */
#define KSP_A_NEVER_SETTABLE (1u << 4)
/* No fn 8: fixed when the object is made; C_SetAttributeValue and
 * C_CopyObject may not change it (CKR_ATTRIBUTE_READ_ONLY). Rows without this
 * flag carry fn 8 ("may be modified after object is created"). */
#define KSP_A_UNCHANGEABLE (1u << 5)
/* 2.40 §4.4: "CKA_TOKEN, CKA_PRIVATE and CKA_MODIFIABLE attributes can be
 * changed in the process of copying an object": lifts UNCHANGEABLE for COPY. */
#define KSP_A_CHANGE_ON_COPY (1u << 6)
/* fn 11: cannot be changed once CK_TRUE; may only go FALSE -> TRUE. */
#define KSP_A_CHANGE_TO_TRUE_ONLY (1u << 7)
/* fn 12: cannot be changed once CK_FALSE; may only go TRUE -> FALSE. */
#define KSP_A_CHANGE_TO_FALSE_ONLY (1u << 8)
/* ksp11 policy over fn 7 (DESIGN.md §3): never revealed, whatever
 * CKA_SENSITIVE/CKA_EXTRACTABLE say (private key components). */
#define KSP_A_SENSITIVE (1u << 9)
/* fn 7: secret key material: cannot be revealed while CKA_SENSITIVE is TRUE
 * or CKA_EXTRACTABLE is FALSE; never written to disk in clear. */
#define KSP_A_SECRET (1u << 10)
/* fn 10: can only be set to CK_TRUE by the SO (CKA_TRUSTED). */
#define KSP_A_SO_ONLY (1u << 11)
/* ksp11: a generation/derivation parameter the token also reports (class, key
 * type, CKA_MODULUS_BITS, CKA_EC_PARAMS, CKA_VALUE_LEN...). Allowed in a
 * GENERATE/DERIVE template; when `computed` holds it too the values must be
 * equal, else CKR_TEMPLATE_INCONSISTENT. */
#define KSP_A_GEN_PARAM (1u << 12)
/* ksp11 policy (DESIGN.md §3, non-exportable): the value is fixed to the
 * row's default. A create/generate/derive template asking otherwise is
 * CKR_ATTRIBUTE_VALUE_INVALID; a copy/set one CKR_ATTRIBUTE_READ_ONLY. */
#define KSP_A_FORCED (1u << 13)
/* ksp11 vendor, DESIGN.md §4: accepted (and validated) only in a GENERATE
 * template, never kept on the object (CKA_KSP11_REQUIRE_HARDWARE). */
#define KSP_A_TEMPLATE_ONLY (1u << 14)
/* Defined by the spec for this class but not supported by ksp11
 * (CKA_WRAP_TEMPLATE, CKA_UNWRAP_TEMPLATE): CKR_ATTRIBUTE_TYPE_INVALID. */
#define KSP_A_UNSUPPORTED (1u << 15)

/* Default added on CREATE/GENERATE/DERIVE when neither the template nor the
 * token supplies the attribute. */
enum ksp_attr_dflt {
    KSP_D_NONE,  /* no default: absent unless given */
    KSP_D_FALSE, /* CK_FALSE */
    KSP_D_TRUE,  /* CK_TRUE */
    KSP_D_EMPTY, /* zero-length value */
    KSP_D_ZERO,  /* CK_ULONG 0 */
};

struct ksp_schema_row {
    CK_ATTRIBUTE_TYPE type;
    enum ksp_attr_kind kind;
    uint32_t flags;
    enum ksp_attr_dflt dflt;
    /* Extra value check after the kind check; CKR_OK or a CKR_ATTRIBUTE_* code. */
    CK_RV (*check)(const CK_ATTRIBUTE *at);
};

struct ksp_schema {
    const char *name;
    const struct ksp_schema *parent;
    const struct ksp_schema_row *rows;
    size_t nrows;
    /* Attributes this level computes on CREATE/GENERATE/DERIVE (p11-kit
     * builder "populate"); must not replace types present in `computed`.
     * Run from the root down, after defaults. NULL when none. */
    CK_RV (*finish)(enum ksp_schema_op op, const struct ksp_attrs *computed, struct ksp_attrs *out);
};

/* Sentinel for a class without a subtype attribute (CKO_DATA). */
#define KSP_NO_SUBTYPE ((CK_ATTRIBUTE_TYPE)~0UL)

/* One supported (class, subtype) and the most specific schema of its chain. */
struct ksp_schema_leaf {
    CK_OBJECT_CLASS cls;
    CK_ATTRIBUTE_TYPE subtype_attr; /* CKA_KEY_TYPE, CKA_CERTIFICATE_TYPE or KSP_NO_SUBTYPE */
    CK_ULONG subtype;
    const struct ksp_schema *schema;
};

extern const struct ksp_schema_leaf ksp_schema_leaves[];
extern const size_t ksp_schema_nleaves;

/* The subtype attribute of a supported class (KSP_NO_SUBTYPE for data);
 * false if the class is not supported at all. */
bool ksp_schema_class_subtype(CK_OBJECT_CLASS cls, CK_ATTRIBUTE_TYPE *subtype_attr);
/* The leaf for (class, subtype), or NULL if unsupported; subtype is ignored
 * for classes without one. */
const struct ksp_schema_leaf *ksp_schema_leaf_find(CK_OBJECT_CLASS cls, CK_ULONG subtype);
/* The effective row for `type` in the chain of `s`: the most specific table
 * wins, so a child may override a parent's row (e.g. CKA_PRIVATE's default). */
const struct ksp_schema_row *ksp_schema_row_find(const struct ksp_schema *s,
                                                 CK_ATTRIBUTE_TYPE type);

#endif
