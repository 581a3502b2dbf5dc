/*
 * Our own client of tpm2-abrmd (the "tabrmd" TCTI), instead of tpm2-tss's
 * libtss2-tcti-tabrmd.
 *
 * Why: that library talks D-Bus through GLib, whose bus connection is a
 * process-wide singleton served by a worker thread. After fork() the child
 * inherits the singleton but not the thread, so any later connection attempt
 * in the child waits for D-Bus replies that never come (25 s per try) -
 * tpm2-abrmd issues #529/#541. A PKCS#11 module lives in processes that fork
 * (web servers, ssh-agent, test runners), and must not bring GLib's threads
 * into them either.
 *
 * The abrmd protocol needs D-Bus only to open a connection: the method
 * com.intel.tss2.TctiTabrmd.CreateConnection returns a Unix socket (a
 * descriptor passed with the reply) and an id; TPM commands and responses
 * then travel over that socket as plain TPM byte streams. We make that one
 * call over a short-lived D-Bus connection of our own (tabrmd_dbus.c: the
 * few messages it takes, no library, no threads, no shared state) and keep
 * only the socket. Finalize merely closes the socket, so a forked child can
 * drop the parent's connection without disturbing it and open its own.
 * Cancel and SetLocality (D-Bus calls in abrmd) are not offered; ESAPI does
 * not use them.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "tpm_int.h"

#define AREA         KSP_TPM_AREA
#define TABRMD_MAGIC 0x6b7370746162726dULL /* "ksptabrm" */
#define TABRMD_NAME  "com.intel.tss2.Tabrmd"
#define TPM_HEADER   10

struct tabrmd_tcti {
    TSS2_TCTI_CONTEXT_COMMON_V1 common; /* must come first (tss2_tcti.h) */
    int fd;
    uint64_t id;
    bool receiving; /* a command was sent, its response not yet read */
    uint8_t header[TPM_HEADER];
    size_t got;    /* bytes of the current response read so far */
    uint32_t size; /* response size from the header, once got >= 10 */
};

static struct tabrmd_tcti *cast(TSS2_TCTI_CONTEXT *ctx)
{
    struct tabrmd_tcti *t = (struct tabrmd_tcti *)ctx;

    return t != NULL && t->common.magic == TABRMD_MAGIC ? t : NULL;
}

bool ksp_tpm_tabrmd_is(TSS2_TCTI_CONTEXT *ctx)
{
    return cast(ctx) != NULL;
}

static TSS2_RC tcti_transmit(TSS2_TCTI_CONTEXT *ctx, size_t size, const uint8_t *cmd)
{
    struct tabrmd_tcti *t = cast(ctx);
    size_t done = 0;

    if (t == NULL) {
        return TSS2_TCTI_RC_BAD_CONTEXT;
    }
    if (cmd == NULL || size < TPM_HEADER) {
        return TSS2_TCTI_RC_BAD_VALUE;
    }
    if (t->receiving) {
        return TSS2_TCTI_RC_BAD_SEQUENCE;
    }
    while (done < size) {
        /* MSG_NOSIGNAL: a dead abrmd is an error, not a SIGPIPE. */
        ssize_t n = send(t->fd, cmd + done, size - done, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n <= 0) {
            return TSS2_TCTI_RC_IO_ERROR;
        }
        done += (size_t)n;
    }
    t->receiving = true;
    t->got = 0;
    return TSS2_RC_SUCCESS;
}

/* Read up to len more bytes into dst, waiting at most timeout ms (-1:
 * forever) for the first. TRY_AGAIN on timeout; the caller resumes. */
static TSS2_RC read_some(struct tabrmd_tcti *t, uint8_t *dst, size_t len, int32_t timeout,
                         size_t *got)
{
    struct pollfd p = {.fd = t->fd, .events = POLLIN};
    ssize_t n = 0;
    int r = 0;

    do {
        r = poll(&p, 1, timeout < 0 ? -1 : timeout);
    } while (r < 0 && errno == EINTR);
    if (r == 0) {
        return TSS2_TCTI_RC_TRY_AGAIN;
    }
    if (r < 0) {
        return TSS2_TCTI_RC_IO_ERROR;
    }
    do {
        n = recv(t->fd, dst, len, 0);
    } while (n < 0 && errno == EINTR);
    if (n <= 0) {
        /* abrmd went away (or closed our connection). */
        return TSS2_TCTI_RC_NO_CONNECTION;
    }
    *got = (size_t)n;
    return TSS2_RC_SUCCESS;
}

static TSS2_RC tcti_receive(TSS2_TCTI_CONTEXT *ctx, size_t *size, uint8_t *rsp, int32_t timeout)
{
    struct tabrmd_tcti *t = cast(ctx);
    TSS2_RC rc = TSS2_RC_SUCCESS;
    size_t n = 0;

    if (t == NULL) {
        return TSS2_TCTI_RC_BAD_CONTEXT;
    }
    if (size == NULL || (rsp == NULL && *size != 0)) {
        return TSS2_TCTI_RC_BAD_REFERENCE;
    }
    if (!t->receiving) {
        return TSS2_TCTI_RC_BAD_SEQUENCE;
    }
    if (timeout < TSS2_TCTI_TIMEOUT_BLOCK) {
        return TSS2_TCTI_RC_BAD_VALUE;
    }
    while (t->got < TPM_HEADER) {
        rc = read_some(t, t->header + t->got, TPM_HEADER - t->got, timeout, &n);
        if (rc != TSS2_RC_SUCCESS) {
            return rc;
        }
        t->got += n;
        if (t->got == TPM_HEADER) {
            t->size = (uint32_t)t->header[2] << 24 | (uint32_t)t->header[3] << 16 |
                      (uint32_t)t->header[4] << 8 | t->header[5];
            if (t->size < TPM_HEADER || t->size > 65536) {
                t->receiving = false;
                return TSS2_TCTI_RC_MALFORMED_RESPONSE;
            }
        }
    }
    if (rsp == NULL) {
        *size = t->size;
        return TSS2_RC_SUCCESS;
    }
    if (*size < t->size) {
        *size = t->size;
        return TSS2_TCTI_RC_INSUFFICIENT_BUFFER;
    }
    memcpy(rsp, t->header, TPM_HEADER);
    while (t->got < t->size) {
        rc = read_some(t, rsp + t->got, t->size - t->got, timeout, &n);
        if (rc != TSS2_RC_SUCCESS) {
            /* What was read stays in rsp; the caller calls again with it. */
            return rc;
        }
        t->got += n;
    }
    *size = t->size;
    t->receiving = false;
    t->got = 0;
    return TSS2_RC_SUCCESS;
}

static void tcti_finalize(TSS2_TCTI_CONTEXT *ctx)
{
    struct tabrmd_tcti *t = cast(ctx);

    if (t == NULL) {
        return;
    }
    /* close() only: abrmd forgets the connection (and flushes what it
     * holds for it) when the last descriptor of the socket closes, which in
     * a forked child is not ours. */
    if (t->fd >= 0) {
        close(t->fd);
    }
    t->fd = -1;
    t->common.magic = 0;
}

static TSS2_RC tcti_not_implemented(TSS2_TCTI_CONTEXT *ctx)
{
    (void)ctx;
    return TSS2_TCTI_RC_NOT_IMPLEMENTED;
}

static TSS2_RC tcti_set_locality(TSS2_TCTI_CONTEXT *ctx, uint8_t locality)
{
    (void)ctx;
    (void)locality;
    return TSS2_TCTI_RC_NOT_IMPLEMENTED;
}

static TSS2_RC tcti_poll_handles(TSS2_TCTI_CONTEXT *ctx, TSS2_TCTI_POLL_HANDLE *h, size_t *n)
{
    struct tabrmd_tcti *t = cast(ctx);

    if (t == NULL) {
        return TSS2_TCTI_RC_BAD_CONTEXT;
    }
    if (n == NULL) {
        return TSS2_TCTI_RC_BAD_REFERENCE;
    }
    if (h != NULL && *n < 1) {
        return TSS2_TCTI_RC_INSUFFICIENT_BUFFER;
    }
    *n = 1;
    if (h != NULL) {
        h[0].fd = t->fd;
        h[0].events = POLLIN;
    }
    return TSS2_RC_SUCCESS;
}

/* "bus_name=X,bus_type=system|session" (tpm2-abrmd's TCTI syntax). */
static bool parse_conf(const char *conf, char *bus_name, size_t name_len, bool *session)
{
    const char *p = conf != NULL ? conf : "";

    snprintf(bus_name, name_len, "%s", TABRMD_NAME);
    *session = false;
    while (*p != '\0') {
        const char *end = strchr(p, ',');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);

        if (len > 9 && strncmp(p, "bus_name=", 9) == 0 && len - 9 < name_len) {
            memcpy(bus_name, p + 9, len - 9);
            bus_name[len - 9] = '\0';
        } else if (len == 16 && strncmp(p, "bus_type=session", 16) == 0) {
            *session = true;
        } else if (len == 15 && strncmp(p, "bus_type=system", 15) == 0) {
            *session = false;
        } else if (len > 0) {
            return false;
        }
        p += len;
        if (*p == ',') {
            p++;
        }
    }
    return true;
}

TSS2_RC ksp_tpm_tabrmd_init(const char *conf, TSS2_TCTI_CONTEXT **out, char *err, size_t err_len)
{
    TSS2_RC rc = TSS2_TCTI_RC_GENERAL_FAILURE;
    struct tabrmd_tcti *t = NULL;
    const char *address = NULL;
    bool session = false;
    char name[256];
    int fd = -1;
    uint64_t id = 0;

    if (!parse_conf(conf, name, sizeof(name), &session)) {
        snprintf(err, err_len, "bad tabrmd configuration \"%s\"", conf);
        return TSS2_TCTI_RC_BAD_VALUE;
    }
    /* D-Bus specification, "Well-known Message Bus Instances". No X11
     * autolaunch: that would spawn dbus-launch inside the host application. */
    if (session) {
        address = getenv("DBUS_SESSION_BUS_ADDRESS");
        if (address == NULL || *address == '\0') {
            snprintf(err, err_len, "bus_type=session but DBUS_SESSION_BUS_ADDRESS is not set");
            return TSS2_TCTI_RC_NO_CONNECTION;
        }
    } else {
        address = getenv("DBUS_SYSTEM_BUS_ADDRESS");
        if (address == NULL || *address == '\0') {
            address = "unix:path=/var/run/dbus/system_bus_socket";
        }
    }
    rc = ksp_tpm_tabrmd_dbus_connect(address, name, &fd, &id, err, err_len);
    if (rc != TSS2_RC_SUCCESS) {
        return rc;
    }
    t = calloc(1, sizeof(*t));
    if (t == NULL) {
        close(fd);
        return TSS2_TCTI_RC_MEMORY;
    }
    t->common.magic = TABRMD_MAGIC;
    t->common.version = 1;
    t->common.transmit = tcti_transmit;
    t->common.receive = tcti_receive;
    t->common.finalize = tcti_finalize;
    t->common.cancel = tcti_not_implemented;
    t->common.getPollHandles = tcti_poll_handles;
    t->common.setLocality = tcti_set_locality;
    t->fd = fd;
    t->id = id;
    ksp_debug(AREA, "tpm2-abrmd connection 0x%llx via %s", (unsigned long long)id, name);
    *out = (TSS2_TCTI_CONTEXT *)t;
    return TSS2_RC_SUCCESS;
}

void ksp_tpm_tabrmd_free(TSS2_TCTI_CONTEXT **ctx)
{
    if (ctx == NULL || *ctx == NULL) {
        return;
    }
    tcti_finalize(*ctx);
    free(*ctx);
    *ctx = NULL;
}
