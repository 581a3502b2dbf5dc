/*
 * Secret buffers (style.md §3.8): every ksp_buf and secret allocation comes
 * from here. Each allocation gets whole pages of its own, so mlock and
 * MADV_DONTDUMP cover exactly this secret and munlock on free cannot unlock a
 * neighbour that is still in use. Both are best effort (RLIMIT_MEMLOCK, no
 * CAP_IPC_LOCK): a failure leaves the buffer usable, only swappable/dumpable.
 *
 * We are a guest in someone else's process: RLIMIT_MEMLOCK is shared with the
 * host, which may need it for its own secrets, so we lock at most half of it
 * (and never more than LOCK_BUDGET_MAX). For the same reason we never use
 * CRYPTO_secure_malloc_init, which is process-global.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "secmem.h"

/*
 * A small header in front of the caller's pointer records the mapping size, so
 * a buffer is wiped completely even if its owner shortened ksp_buf.len after
 * allocation (e.g. to the real length of a decryption).
 */
#define HDR_MAGIC       0x6b73706d656d3131ULL /* "kspmem11" */
#define HDR_SIZE        16u
#define HDR_LOCKED      1u /* in hdr.total, whose low bits are free (page multiple) */
#define LOCK_BUDGET_MAX (4u * 1024u * 1024u)

struct hdr {
    uint64_t magic;
    uint64_t total; /* bytes from the header to the end of the last page | HDR_LOCKED */
};

static pthread_once_t budget_once = PTHREAD_ONCE_INIT;
static size_t lock_budget;
static atomic_size_t locked_bytes;

static void budget_init(void)
{
    struct rlimit rl;
    size_t b = LOCK_BUDGET_MAX;
    if (getrlimit(RLIMIT_MEMLOCK, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur / 2 < b)
        b = (size_t)(rl.rlim_cur / 2);
    lock_budget = b;
}

/* Reserve total bytes of the lock budget; false if it would be exceeded. */
static bool budget_take(size_t total)
{
    pthread_once(&budget_once, budget_init);
    size_t cur = atomic_load(&locked_bytes);
    do {
        if (total > lock_budget || cur > lock_budget - total)
            return false;
    } while (!atomic_compare_exchange_weak(&locked_bytes, &cur, cur + total));
    return true;
}

static size_t page_size(void)
{
    long ps = sysconf(_SC_PAGESIZE);
    return ps > 0 ? (size_t)ps : 4096u;
}

void *ksp_secmem_alloc(size_t len)
{
    size_t ps = page_size();
    if (len > SIZE_MAX - HDR_SIZE - ps)
        return NULL;
    size_t total = (len + HDR_SIZE + ps - 1) / ps * ps;
    void *base = NULL;
    if (posix_memalign(&base, ps, total) != 0)
        return NULL;
    memset(base, 0, total);
    /* Best effort: failures only mean the pages may be swapped or dumped. */
    struct hdr h = {HDR_MAGIC, total};
    if (budget_take(total)) {
        if (mlock(base, total) == 0)
            h.total |= HDR_LOCKED;
        else
            atomic_fetch_sub(&locked_bytes, total);
    }
    (void)madvise(base, total, MADV_DONTDUMP);
    memcpy(base, &h, sizeof(h));
    return (uint8_t *)base + HDR_SIZE;
}

void ksp_secmem_free(void *p, size_t len)
{
    if (!p)
        return;
    uint8_t *base = (uint8_t *)p - HDR_SIZE;
    struct hdr h;
    memcpy(&h, base, sizeof(h));
    if (h.magic != HDR_MAGIC) {
        /*
         * Not ours: a plain heap buffer handed to us by mistake. Wipe what we
         * were told about and release it the way it was allocated.
         */
        OPENSSL_cleanse(p, len);
        free(p);
        return;
    }
    size_t total = (size_t)(h.total & ~(uint64_t)HDR_LOCKED);
    OPENSSL_cleanse(base, total);
    (void)madvise(base, total, MADV_DODUMP);
    if (h.total & HDR_LOCKED) {
        (void)munlock(base, total);
        atomic_fetch_sub(&locked_bytes, total);
    }
    free(base);
}

void ksp_wipe(void *p, size_t len)
{
    if (p && len)
        OPENSSL_cleanse(p, len);
}

CK_RV ksp_buf_alloc(struct ksp_buf *b, size_t len)
{
    uint8_t *p = ksp_secmem_alloc(len);
    if (!p)
        return CKR_HOST_MEMORY;
    b->p = p;
    b->len = len;
    return CKR_OK;
}

CK_RV ksp_buf_set(struct ksp_buf *b, const void *p, size_t len)
{
    if (len && !p)
        return CKR_ARGUMENTS_BAD;
    uint8_t *q = ksp_secmem_alloc(len);
    if (!q)
        return CKR_HOST_MEMORY;
    if (len)
        memcpy(q, p, len);
    b->p = q;
    b->len = len;
    return CKR_OK;
}

void ksp_buf_free(struct ksp_buf *b)
{
    if (!b)
        return;
    ksp_secmem_free(b->p, b->len);
    b->p = NULL;
    b->len = 0;
}

int ksp_memeq_ct(const void *a, const void *b, size_t len)
{
    if (len == 0)
        return 0;
    return CRYPTO_memcmp(a, b, len) != 0;
}
