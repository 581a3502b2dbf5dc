/*
 * Private to store.c and store_codec.c: limits of the on-disk format and the
 * generation record. The object and metadata codecs are declared in store.h.
 */
#ifndef KSP_STORE_CODEC_H
#define KSP_STORE_CODEC_H

#include <stdint.h>

#include "ksp11/pkcs11.h"

/* No store file may be larger than this; readers refuse bigger files. */
#define KSP_STORE_MAX_FILE (16u * 1024u * 1024u)
/* Encoded size of the generation record. */
#define KSP_STORE_GEN_LEN 56u

/* Encode / decode the generation counter record; decode: CKR_DATA_INVALID if
 * the record is corrupt. */
CK_RV ksp_store_gen_encode(uint64_t gen, uint8_t out[KSP_STORE_GEN_LEN]);
CK_RV ksp_store_gen_decode(const uint8_t *in, size_t len, uint64_t *out);

#endif
