/*
 * libFuzzer harness: the token metadata decoder and the generation record
 * (provider/store_codec.c, ksp_store_meta_decode, ksp_store_gen_decode),
 * as is and with the frame fixed up. Decoded metadata must re-encode to the
 * same bytes (the format is canonical).
 */
#include <stdlib.h>
#include <string.h>

#include "fuzz_common.h"
#include "store.h"
#include "store_codec.h"

static void one(const uint8_t *data, size_t size)
{
    struct ksp_token_meta m;
    uint64_t gen;
    memset(&m, 0, sizeof(m));
    if (ksp_store_meta_decode(data, size, &m) == CKR_OK) {
        uint8_t *enc = NULL;
        size_t len = 0;
        FUZZ_CHECK(ksp_store_meta_encode(&m, &enc, &len) == CKR_OK);
        FUZZ_CHECK(len == size && memcmp(enc, data, len) == 0);
        free(enc);
    }
    if (ksp_store_gen_decode(data, size, &gen) == CKR_OK) {
        uint8_t enc[KSP_STORE_GEN_LEN];
        FUZZ_CHECK(ksp_store_gen_encode(gen, enc) == CKR_OK);
        FUZZ_CHECK(size == KSP_STORE_GEN_LEN && memcmp(enc, data, size) == 0);
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
