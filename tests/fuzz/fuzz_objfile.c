/*
 * libFuzzer harness: the object-file decoder (provider/store_codec.c,
 * ksp_store_obj_decode). Every input is decoded as is (the checksum path) and
 * with its frame fixed up (body_len and SHA-256 rewritten) so that mutations
 * reach the body parser. A decoded object must re-encode to a record that
 * decodes again to the same bytes.
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "store.h"

static void roundtrip(const struct ksp_store_obj *o)
{
    uint8_t *enc = NULL, *enc2 = NULL;
    size_t len = 0, len2 = 0;
    struct ksp_store_obj o2;
    if (ksp_store_obj_encode(o, &enc, &len) != CKR_OK)
        return; /* e.g. limits the encoder enforces more strictly */
    memset(&o2, 0, sizeof(o2));
    FUZZ_CHECK(ksp_store_obj_decode(enc, len, &o2) == CKR_OK);
    FUZZ_CHECK(ksp_store_obj_encode(&o2, &enc2, &len2) == CKR_OK);
    FUZZ_CHECK(len == len2 && memcmp(enc, enc2, len) == 0);
    FUZZ_CHECK(strcmp(o->id, o2.id) == 0 && o->attrs.n == o2.attrs.n);
    ksp_store_obj_free(&o2);
    free(enc);
    free(enc2);
}

static void one(const uint8_t *data, size_t size)
{
    struct ksp_store_obj o;
    memset(&o, 0, sizeof(o));
    if (ksp_store_obj_decode(data, size, &o) == CKR_OK) {
        roundtrip(&o);
        ksp_store_obj_free(&o);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    fuzz_quiet_log();
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    one(data, size);
    uint8_t *copy = malloc(size ? size : 1);
    if (!copy)
        return 0;
    memcpy(copy, data, size);
    fuzz_fix_frame(copy, size);
    one(copy, size);
    free(copy);
    return 0;
}
