/*
 * A counting TCTI for the benchmark (not part of the module): it wraps
 * another TCTI and counts every command that reaches it, by command code, in
 * a small file shared by all processes (KSP_TCTI_COUNT_FILE, mmap'd, atomic
 * adds). Put it between a client and swtpm ("<path>/libtss2-tcti-kspcount.so:
 * swtpm:path=..."), or between tpm2-abrmd and swtpm to count what the TPM
 * itself receives behind the resource manager.
 * KSP_TCTI_DUMP_FILE (tests): every command and response is also appended to
 * that file as a 4-byte big-endian length (top bit set for a response) and
 * the bytes, so a test can check what crossed the TPM interface.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <tss2/tss2_tcti.h>
#include <tss2/tss2_tctildr.h>

/* [0] total, [1 + (cc & 0x3FF)] per command code, [COUNT_OBJMEM] responses
 * TPM_RC_OBJECT_MEMORY (the TPM's transient slots were full). */
#define COUNT_SLOTS  1026
#define COUNT_OBJMEM 1025
#define COUNT_MAGIC  0x4b5350434f554e54ULL

struct count_ctx {
    TSS2_TCTI_CONTEXT_COMMON_V2 common;
    TSS2_TCTI_CONTEXT *inner;
    uint64_t *counts;
    int dump_fd;
};

static uint64_t *map_counts(void)
{
    const char *path = getenv("KSP_TCTI_COUNT_FILE");
    size_t len = COUNT_SLOTS * sizeof(uint64_t);
    if (!path)
        return NULL;
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0)
        return NULL;
    if (ftruncate(fd, (off_t)len) != 0) {
        close(fd);
        return NULL;
    }
    void *p = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    close(fd);
    return p == MAP_FAILED ? NULL : p;
}

static struct count_ctx *cc_of(TSS2_TCTI_CONTEXT *c)
{
    return (struct count_ctx *)c;
}

static TSS2_RC tx(TSS2_TCTI_CONTEXT *c, size_t size, const uint8_t *cmd)
{
    struct count_ctx *x = cc_of(c);
    if (x->counts && size >= 10) {
        uint32_t code =
            (uint32_t)cmd[6] << 24 | (uint32_t)cmd[7] << 16 | (uint32_t)cmd[8] << 8 | cmd[9];
        __atomic_fetch_add(&x->counts[0], 1, __ATOMIC_RELAXED);
        __atomic_fetch_add(&x->counts[1 + (code & 0x3FF)], 1, __ATOMIC_RELAXED);
    }
    if (x->dump_fd >= 0) {
        uint8_t len[4] = {(uint8_t)(size >> 24), (uint8_t)(size >> 16), (uint8_t)(size >> 8),
                          (uint8_t)size};
        /* One write per record (O_APPEND): records of processes never mix. */
        uint8_t buf[4 + 4096];
        if (size <= 4096) {
            memcpy(buf, len, 4);
            memcpy(buf + 4, cmd, size);
            if (write(x->dump_fd, buf, 4 + size) < 0) {
                /* a test will notice the missing record */
            }
        }
    }
    return Tss2_Tcti_Transmit(x->inner, size, cmd);
}

static TSS2_RC rx(TSS2_TCTI_CONTEXT *c, size_t *size, uint8_t *rsp, int32_t timeout)
{
    struct count_ctx *x = cc_of(c);
    TSS2_RC rc = Tss2_Tcti_Receive(x->inner, size, rsp, timeout);
    if (rc == TSS2_RC_SUCCESS && rsp && x->counts && *size >= 10) {
        uint32_t r =
            (uint32_t)rsp[6] << 24 | (uint32_t)rsp[7] << 16 | (uint32_t)rsp[8] << 8 | rsp[9];
        if ((r & 0x9FF) == 0x902) /* TPM_RC_OBJECT_MEMORY */
            __atomic_fetch_add(&x->counts[COUNT_OBJMEM], 1, __ATOMIC_RELAXED);
    }
    if (rc == TSS2_RC_SUCCESS && rsp && x->dump_fd >= 0 && *size <= 4096) {
        /* Responses too, their length tagged with the top bit. */
        uint8_t buf[4 + 4096];
        uint32_t n = (uint32_t)*size | 0x80000000u;
        buf[0] = (uint8_t)(n >> 24);
        buf[1] = (uint8_t)(n >> 16);
        buf[2] = (uint8_t)(n >> 8);
        buf[3] = (uint8_t)n;
        memcpy(buf + 4, rsp, *size);
        if (write(x->dump_fd, buf, 4 + *size) < 0) {
            /* a test will notice the missing record */
        }
    }
    return rc;
}

static void fin(TSS2_TCTI_CONTEXT *c)
{
    struct count_ctx *x = cc_of(c);
    if (x->inner)
        Tss2_TctiLdr_Finalize(&x->inner);
    if (x->counts)
        munmap(x->counts, COUNT_SLOTS * sizeof(uint64_t));
    if (x->dump_fd >= 0)
        close(x->dump_fd);
    x->dump_fd = -1;
    x->counts = NULL;
}

static TSS2_RC cancel(TSS2_TCTI_CONTEXT *c)
{
    return Tss2_Tcti_Cancel(cc_of(c)->inner);
}

static TSS2_RC polls(TSS2_TCTI_CONTEXT *c, TSS2_TCTI_POLL_HANDLE *h, size_t *n)
{
    return Tss2_Tcti_GetPollHandles(cc_of(c)->inner, h, n);
}

static TSS2_RC locality(TSS2_TCTI_CONTEXT *c, uint8_t l)
{
    return Tss2_Tcti_SetLocality(cc_of(c)->inner, l);
}

static TSS2_RC sticky(TSS2_TCTI_CONTEXT *c, TPM2_HANDLE *h, uint8_t s)
{
    return Tss2_Tcti_MakeSticky(cc_of(c)->inner, h, s);
}

static TSS2_RC init(TSS2_TCTI_CONTEXT *c, size_t *size, const char *conf)
{
    struct count_ctx *x = (struct count_ctx *)c;
    if (!size)
        return TSS2_TCTI_RC_BAD_VALUE;
    if (!c) {
        *size = sizeof(*x);
        return TSS2_RC_SUCCESS;
    }
    if (*size < sizeof(*x))
        return TSS2_TCTI_RC_INSUFFICIENT_BUFFER;
    memset(x, 0, sizeof(*x));
    x->dump_fd = -1;
    TSS2_RC rc = Tss2_TctiLdr_Initialize(conf, &x->inner);
    if (rc != TSS2_RC_SUCCESS)
        return rc;
    x->common.v1.magic = COUNT_MAGIC;
    x->common.v1.version = 2;
    x->common.v1.transmit = tx;
    x->common.v1.receive = rx;
    x->common.v1.finalize = fin;
    x->common.v1.cancel = cancel;
    x->common.v1.getPollHandles = polls;
    x->common.v1.setLocality = locality;
    x->common.makeSticky = sticky;
    x->counts = map_counts();
    const char *dump = getenv("KSP_TCTI_DUMP_FILE");
    if (dump)
        x->dump_fd = open(dump, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    return TSS2_RC_SUCCESS;
}

static const TSS2_TCTI_INFO info = {
    .version = 2,
    .name = "kspcount",
    .description = "ksp11 bench: counts commands, forwards to another TCTI",
    .config_help = "<inner TCTI conf>; KSP_TCTI_COUNT_FILE names the counter file",
    .init = init,
};

__attribute__((visibility("default"))) const TSS2_TCTI_INFO *Tss2_Tcti_Info(void)
{
    return &info;
}
