/*
 * The one D-Bus exchange tpm_tabrmd.c needs, spoken directly (D-Bus
 * specification 0.41: addresses, SASL EXTERNAL with Unix descriptor
 * passing, the message wire format): connect to the bus, say Hello, call
 * com.intel.tss2.TctiTabrmd.CreateConnection on abrmd and take the socket
 * descriptor and the connection id from the reply. The bus connection is
 * closed before returning. Everything read from the bus is checked as
 * hostile input; every read and write has a timeout.
 */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "tpm_int.h"

#define TABRMD_PATH  "/com/intel/tss2/Tabrmd/Tcti"
#define TABRMD_IFACE "com.intel.tss2.TctiTabrmd"
#define BUS_NAME     "org.freedesktop.DBus"
#define BUS_PATH     "/org/freedesktop/DBus"
#define IO_TIMEOUT_S 10
#define MSG_MAX      65536u /* far above anything these replies need */
#define FDS_MAX      8

/* Header field codes and message types (specification, "Message Format"). */
enum { F_PATH = 1, F_INTERFACE = 2, F_MEMBER = 3, F_ERROR_NAME = 4, F_REPLY_SERIAL = 5 };
enum { F_DESTINATION = 6, F_SIGNATURE = 8, F_UNIX_FDS = 9 };
enum { T_CALL = 1, T_RETURN = 2, T_ERROR = 3 };

struct wbuf {
    uint8_t b[512];
    size_t len;
    bool overflow;
};

struct rmsg {
    uint8_t *b;
    size_t len;
    bool big; /* big-endian message */
    uint8_t type;
    uint32_t reply_serial;
    char signature[16];
    char error_name[128];
    size_t body; /* offset of the body */
    int fds[FDS_MAX];
    size_t nfds;
};

__attribute__((format(printf, 3, 4))) static void say(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
}

/* ---- writing (little-endian) ---- */

static void w_pad(struct wbuf *w, size_t a)
{
    while (w->len % a != 0) {
        if (w->len >= sizeof(w->b)) {
            w->overflow = true;
            return;
        }
        w->b[w->len++] = 0;
    }
}

static void w_bytes(struct wbuf *w, const void *p, size_t n)
{
    if (n > sizeof(w->b) - w->len) {
        w->overflow = true;
        return;
    }
    memcpy(w->b + w->len, p, n);
    w->len += n;
}

static void w_u32(struct wbuf *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};

    w_pad(w, 4);
    w_bytes(w, b, 4);
}

/* A header field (code, variant of type 's' or 'o'). */
static void w_field(struct wbuf *w, uint8_t code, char type, const char *s)
{
    uint8_t sig[3] = {1, (uint8_t)type, 0};
    size_t n = strlen(s);

    w_pad(w, 8);
    w_bytes(w, &code, 1);
    w_bytes(w, sig, 3);
    w_u32(w, (uint32_t)n);
    w_bytes(w, s, n + 1);
}

/* A method call without arguments. */
static bool build_call(struct wbuf *w, uint32_t serial, const char *dest, const char *path,
                       const char *iface, const char *member)
{
    const uint8_t fixed[4] = {'l', T_CALL, 0, 1};
    size_t array_at = 0;

    memset(w, 0, sizeof(*w));
    w_bytes(w, fixed, 4);
    w_u32(w, 0); /* body length */
    w_u32(w, serial);
    w_u32(w, 0); /* header fields length, set below */
    array_at = w->len;
    w_field(w, F_PATH, 'o', path);
    w_field(w, F_INTERFACE, 's', iface);
    w_field(w, F_MEMBER, 's', member);
    w_field(w, F_DESTINATION, 's', dest);
    if (w->overflow) {
        return false;
    }
    uint32_t alen = (uint32_t)(w->len - array_at);
    w->b[12] = (uint8_t)alen;
    w->b[13] = (uint8_t)(alen >> 8);
    w->b[14] = (uint8_t)(alen >> 16);
    w->b[15] = (uint8_t)(alen >> 24);
    w_pad(w, 8);
    return !w->overflow;
}

/* ---- socket I/O ---- */

static bool send_all(int fd, const void *p, size_t n)
{
    const uint8_t *b = p;

    while (n > 0) {
        ssize_t r = send(fd, b, n, MSG_NOSIGNAL);

        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return false;
        }
        b += r;
        n -= (size_t)r;
    }
    return true;
}

/* Read exactly n bytes, keeping descriptors that come with them. */
static bool recv_all(int fd, uint8_t *p, size_t n, struct rmsg *m)
{
    while (n > 0) {
        union {
            struct cmsghdr h;
            char b[CMSG_SPACE(sizeof(int) * FDS_MAX)];
        } ctl;
        struct iovec iov = {.iov_base = p, .iov_len = n};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        ssize_t r = 0;

        mh.msg_control = ctl.b;
        mh.msg_controllen = sizeof(ctl.b);
        r = recvmsg(fd, &mh, MSG_CMSG_CLOEXEC);
        if (r < 0 && errno == EINTR) {
            continue;
        }
        if (r <= 0) {
            return false;
        }
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c != NULL; c = CMSG_NXTHDR(&mh, c)) {
            if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) {
                continue;
            }
            size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
            int *fds = (int *)(void *)CMSG_DATA(c);

            for (size_t i = 0; i < k; i++) {
                if (m != NULL && m->nfds < FDS_MAX) {
                    m->fds[m->nfds++] = fds[i];
                } else {
                    close(fds[i]);
                }
            }
        }
        p += r;
        n -= (size_t)r;
    }
    return true;
}

/* One "\r\n"-terminated line of the SASL exchange, byte by byte so that
 * nothing of the binary stream after BEGIN is consumed. */
static bool read_line(int fd, char *line, size_t max)
{
    size_t n = 0;

    while (n + 1 < max) {
        uint8_t c = 0;

        if (!recv_all(fd, &c, 1, NULL)) {
            return false;
        }
        line[n++] = (char)c;
        if (n >= 2 && line[n - 2] == '\r' && line[n - 1] == '\n') {
            line[n - 2] = '\0';
            return true;
        }
    }
    return false;
}

/* ---- reading ---- */

static uint32_t r_u32(const struct rmsg *m, size_t at)
{
    const uint8_t *b = m->b + at;

    return m->big ? (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]
                  : (uint32_t)b[3] << 24 | (uint32_t)b[2] << 16 | (uint32_t)b[1] << 8 | b[0];
}

static uint64_t r_u64(const struct rmsg *m, size_t at)
{
    uint64_t lo = r_u32(m, at + (m->big ? 4 : 0));
    uint64_t hi = r_u32(m, at + (m->big ? 0 : 4));

    return hi << 32 | lo;
}

static size_t align(size_t at, size_t a)
{
    return (at + a - 1) / a * a;
}

/* Parse the header fields in m->b[16 .. end). */
static bool parse_fields(struct rmsg *m, size_t end)
{
    size_t at = 16;

    while (at < end) {
        at = align(at, 8);
        if (at + 4 > end) {
            return at == end;
        }
        uint8_t code = m->b[at];
        uint8_t siglen = m->b[at + 1];

        if (siglen != 1 || m->b[at + 3] != 0) {
            return false;
        }
        char type = (char)m->b[at + 2];

        at += 4;
        if (type == 'u') {
            at = align(at, 4);
            if (at + 4 > end) {
                return false;
            }
            if (code == F_REPLY_SERIAL) {
                m->reply_serial = r_u32(m, at);
            }
            at += 4;
        } else if (type == 's' || type == 'o') {
            at = align(at, 4);
            if (at + 4 > end) {
                return false;
            }
            uint32_t n = r_u32(m, at);

            at += 4;
            if (n >= end - at || m->b[at + n] != 0) {
                return false;
            }
            if (code == F_ERROR_NAME) {
                snprintf(m->error_name, sizeof(m->error_name), "%s", (const char *)m->b + at);
            }
            at += n + 1;
        } else if (type == 'g') {
            if (at >= end) {
                return false;
            }
            uint8_t n = m->b[at++];

            if (n >= end - at || m->b[at + n] != 0) {
                return false;
            }
            if (code == F_SIGNATURE) {
                if (n >= sizeof(m->signature)) {
                    return false;
                }
                memcpy(m->signature, m->b + at, (size_t)n + 1);
            }
            at += (size_t)n + 1;
        } else {
            /* No other type occurs in the fields we may receive. */
            return false;
        }
    }
    return true;
}

static void rmsg_clear(struct rmsg *m)
{
    for (size_t i = 0; i < m->nfds; i++) {
        close(m->fds[i]);
    }
    free(m->b);
    memset(m, 0, sizeof(*m));
}

static bool read_msg(int fd, struct rmsg *m)
{
    uint8_t fixed[16];

    memset(m, 0, sizeof(*m));
    if (!recv_all(fd, fixed, sizeof(fixed), m)) {
        return false;
    }
    if ((fixed[0] != 'l' && fixed[0] != 'B') || fixed[3] != 1) {
        return false;
    }
    m->big = fixed[0] == 'B';
    m->type = fixed[1];
    m->b = fixed; /* for r_u32 on the fixed part */
    uint32_t body_len = r_u32(m, 4);
    uint32_t fields_len = r_u32(m, 12);

    m->b = NULL;
    if (fields_len > MSG_MAX || body_len > MSG_MAX) {
        return false;
    }
    m->body = align(16 + (size_t)fields_len, 8);
    m->len = m->body + body_len;
    m->b = malloc(m->len);
    if (m->b == NULL) {
        return false;
    }
    memcpy(m->b, fixed, sizeof(fixed));
    if (!recv_all(fd, m->b + 16, m->len - 16, m)) {
        return false;
    }
    return parse_fields(m, 16 + (size_t)fields_len);
}

/* CreateConnection's reply: the id (body "t", or "aht" in older abrmd with
 * the descriptor index first) and the one descriptor passed with it. */
static bool take_reply(struct rmsg *m, int *fd, uint64_t *id)
{
    size_t at = m->body;
    uint32_t index = 0;

    if (strcmp(m->signature, "aht") == 0) {
        if (at + 4 > m->len) {
            return false;
        }
        uint32_t alen = r_u32(m, at);

        at += 4;
        if (alen != 4 || at + 4 > m->len) {
            return false;
        }
        index = r_u32(m, at);
        at += 4;
    } else if (strcmp(m->signature, "t") != 0) {
        return false;
    }
    at = align(at, 8);
    if (at + 8 > m->len || index >= m->nfds) {
        return false;
    }
    *id = r_u64(m, at);
    *fd = m->fds[index];
    m->fds[index] = m->fds[--m->nfds];
    return true;
}

/* ---- connecting ---- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

/* Unescape a D-Bus address value (%XX) into out. */
static bool unescape(const char *v, size_t len, char *out, size_t max)
{
    size_t n = 0;

    for (size_t i = 0; i < len; i++) {
        int c = (unsigned char)v[i];

        if (c == '%') {
            if (i + 2 >= len || hexval(v[i + 1]) < 0 || hexval(v[i + 2]) < 0) {
                return false;
            }
            c = hexval(v[i + 1]) * 16 + hexval(v[i + 2]);
            i += 2;
        }
        if (c == 0 || n + 1 >= max) {
            return false;
        }
        out[n++] = (char)c;
    }
    out[n] = '\0';
    return n > 0;
}

/* Connect to the first usable "unix:path=" or "unix:abstract=" entry. */
static int connect_bus(const char *address, char *err, size_t err_len)
{
    const char *entry = address;

    say(err, err_len, "no usable unix: entry in the bus address \"%s\"", address);
    while (entry != NULL && *entry != '\0') {
        const char *next = strchr(entry, ';');
        size_t elen = next != NULL ? (size_t)(next - entry) : strlen(entry);

        if (elen > 5 && strncmp(entry, "unix:", 5) == 0) {
            const char *kv = entry + 5;
            const char *eend = entry + elen;

            while (kv < eend) {
                const char *comma = memchr(kv, ',', (size_t)(eend - kv));
                size_t kvlen = comma != NULL ? (size_t)(comma - kv) : (size_t)(eend - kv);
                struct sockaddr_un sa;
                bool abstract = kvlen > 9 && strncmp(kv, "abstract=", 9) == 0;
                bool path = kvlen > 5 && strncmp(kv, "path=", 5) == 0;

                memset(&sa, 0, sizeof(sa));
                sa.sun_family = AF_UNIX;
                if ((abstract || path) &&
                    unescape(kv + (abstract ? 9 : 5), kvlen - (abstract ? 9 : 5),
                             sa.sun_path + (abstract ? 1 : 0),
                             sizeof(sa.sun_path) - (abstract ? 1 : 0))) {
                    /* Abstract: a leading NUL, no trailing one; a path
                     * counts its NUL. One more byte either way. */
                    socklen_t sl = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 +
                                               strlen(sa.sun_path + (abstract ? 1 : 0)));
                    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                    struct timeval tv = {.tv_sec = IO_TIMEOUT_S};

                    if (fd < 0) {
                        say(err, err_len, "socket: %s", strerror(errno));
                        return -1;
                    }
                    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
                    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
                    if (connect(fd, (struct sockaddr *)&sa, sl) == 0) {
                        return fd;
                    }
                    say(err, err_len, "D-Bus %s%s: %s", abstract ? "@" : "",
                        sa.sun_path + (abstract ? 1 : 0), strerror(errno));
                    close(fd);
                }
                kv = comma != NULL ? comma + 1 : eend;
            }
        }
        entry = next != NULL ? next + 1 : NULL;
    }
    return -1;
}

/* SASL EXTERNAL as our uid, with descriptor passing. */
static bool authenticate(int fd, char *err, size_t err_len)
{
    char uid[32], line[512], cmd[128];
    size_t n = 0;

    snprintf(uid, sizeof(uid), "%lu", (unsigned long)geteuid());
    n = (size_t)snprintf(cmd, sizeof(cmd), "%cAUTH EXTERNAL ", '\0');
    for (const char *p = uid; *p != '\0'; p++) {
        n += (size_t)snprintf(cmd + n, sizeof(cmd) - n, "%02x", (unsigned char)*p);
    }
    n += (size_t)snprintf(cmd + n, sizeof(cmd) - n, "\r\n");
    if (!send_all(fd, cmd, n) || !read_line(fd, line, sizeof(line))) {
        say(err, err_len, "D-Bus authentication: no answer");
        return false;
    }
    if (strncmp(line, "OK ", 3) != 0) {
        say(err, err_len, "D-Bus authentication refused: %.100s", line);
        return false;
    }
    if (!send_all(fd, "NEGOTIATE_UNIX_FD\r\n", 19) || !read_line(fd, line, sizeof(line)) ||
        strcmp(line, "AGREE_UNIX_FD") != 0) {
        say(err, err_len, "the D-Bus bus does not pass descriptors");
        return false;
    }
    return send_all(fd, "BEGIN\r\n", 7);
}

TSS2_RC ksp_tpm_tabrmd_dbus_connect(const char *address, const char *bus_name, int *fd_out,
                                    uint64_t *id_out, char *err, size_t err_len)
{
    TSS2_RC rc = TSS2_TCTI_RC_NO_CONNECTION;
    struct wbuf w;
    struct rmsg m;
    int bus = -1;

    memset(&m, 0, sizeof(m));
    bus = connect_bus(address, err, err_len);
    if (bus < 0) {
        return TSS2_TCTI_RC_NO_CONNECTION;
    }
    if (!authenticate(bus, err, err_len)) {
        goto out;
    }
    /* Hello (serial 1) makes us a bus client; then the call (serial 2). */
    if (!build_call(&w, 1, BUS_NAME, BUS_PATH, BUS_NAME, "Hello") || !send_all(bus, w.b, w.len) ||
        !build_call(&w, 2, bus_name, TABRMD_PATH, TABRMD_IFACE, "CreateConnection") ||
        !send_all(bus, w.b, w.len)) {
        say(err, err_len, "D-Bus: cannot send to the bus");
        goto out;
    }
    /* Skip the Hello reply and signals (NameAcquired) until our answer. */
    for (int i = 0; i < 16; i++) {
        if (!read_msg(bus, &m)) {
            say(err, err_len, "D-Bus: no valid reply to CreateConnection");
            rc = TSS2_TCTI_RC_MALFORMED_RESPONSE;
            goto out;
        }
        if ((m.type == T_RETURN || m.type == T_ERROR) && m.reply_serial != 0) {
            if (m.type == T_ERROR) {
                /* e.g. org.freedesktop.DBus.Error.ServiceUnknown: no abrmd. */
                say(err, err_len, "%s: %s", m.reply_serial == 1 ? "Hello" : "CreateConnection",
                    m.error_name[0] != '\0' ? m.error_name : "error");
                goto out;
            }
            if (m.reply_serial == 2) {
                if (!take_reply(&m, fd_out, id_out)) {
                    say(err, err_len, "unexpected CreateConnection reply (signature \"%s\")",
                        m.signature);
                    rc = TSS2_TCTI_RC_MALFORMED_RESPONSE;
                    goto out;
                }
                rc = TSS2_RC_SUCCESS;
                goto out;
            }
        }
        rmsg_clear(&m);
    }
    say(err, err_len, "D-Bus: no reply to CreateConnection");
out:
    rmsg_clear(&m);
    close(bus);
    return rc;
}
