/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The proxy's handshakes (proxy.h): HTTP/1.x CONNECT and absolute-form requests
 * (RFC 9112, RFC 9110), SOCKS5 (RFC 1928), as a pure state machine.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "net/proxy.h"

enum {
        STATE_START,
        STATE_HTTP,          /* reading an HTTP head */
        STATE_SOCKS_HELLO,   /* reading SOCKS5's method selection */
        STATE_SOCKS_REQUEST, /* reading SOCKS5's request */
        STATE_FINISHED,      /* CONNECT or REFUSE returned */
};

/* SOCKS5 (RFC 1928) */
#define SOCKS_VERSION              0x05
#define SOCKS_METHOD_NONE          0x00
#define SOCKS_METHOD_REFUSED       0xff
#define SOCKS_CMD_CONNECT          0x01
#define SOCKS_ATYP_IPV4            0x01
#define SOCKS_ATYP_DOMAIN          0x03
#define SOCKS_ATYP_IPV6            0x04
#define SOCKS_REP_OK               0x00
#define SOCKS_REP_FAILURE          0x01
#define SOCKS_REP_NOT_ALLOWED      0x02
#define SOCKS_REP_NET_UNREACHABLE  0x03
#define SOCKS_REP_HOST_UNREACHABLE 0x04
#define SOCKS_REP_REFUSED          0x05
#define SOCKS_REP_COMMAND          0x07
#define SOCKS_REP_ATYP             0x08

#define ELEMENTSOF(x)  (sizeof(x) / sizeof((x)[0]))
#define _printf_(a, b) __attribute__((format(printf, a, b)))

/* The most headers named by Connection that are dropped; more is refused. */
#define CONNECTION_TOKENS_MAX 16

void proxy_conn_init(ProxyConn *c)
{
        *c = (ProxyConn){};
}

void proxy_conn_done(ProxyConn *c)
{
        free(c->to_peer);
        c->to_peer = NULL;
        c->n_to_peer = 0;
}

size_t proxy_conn_room(const ProxyConn *c)
{
        return sizeof c->in - c->n_in;
}

const char *proxy_kind_to_string(ProxyKind kind)
{
        switch (kind) {
        case PROXY_KIND_HTTP_CONNECT:
                return "http-connect";
        case PROXY_KIND_HTTP_FORWARD:
                return "http";
        case PROXY_KIND_SOCKS5:
                return "socks5";
        default:
                return "?";
        }
}

/* Copies why into dst (size > 0) with every control byte and non-ASCII byte replaced
 * by '?', so a reply or log line stays one line of text. */
static void one_line(char *dst, size_t size, const char *why)
{
        size_t i = 0;

        for (; why && why[i] && i + 1 < size; i++) {
                unsigned char ch = (unsigned char)why[i];

                dst[i] = ch < 0x20 || ch >= 0x7f ? '?' : (char)ch;
        }
        dst[i] = 0;
}

static const char *http_reason(int status)
{
        switch (status) {
        case 400:
                return "Bad Request";
        case 403:
                return "Forbidden";
        case 405:
                return "Method Not Allowed";
        case 408:
                return "Request Timeout";
        case 429:
                return "Too Many Requests";
        case 431:
                return "Request Header Fields Too Large";
        case 504:
                return "Gateway Timeout";
        case 505:
                return "HTTP Version Not Supported";
        default:
                return "Bad Gateway";
        }
}

size_t proxy_http_reply(int status, const char *why, char *buf, size_t size)
{
        char line[PROXY_REPLY_MAX];

        if (size < 64)
                return 0;
        size_t cap = size > 224 ? size - 224 : 16; /* room left for the head */
        int k, h;

        if (cap > sizeof line - 8)
                cap = sizeof line - 8;
        one_line(line, cap, why);
        k = (int)strlen(line) + 8; /* "cella: " + line + "\n" */
        h = snprintf(buf, size,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain; charset=utf-8\r\n"
                     "Content-Length: %d\r\nConnection: close\r\n\r\ncella: %s\n",
                     status, http_reason(status), k, line);
        if (h < 0)
                return 0;
        return (size_t)h < size ? (size_t)h : size - 1;
}

/* A SOCKS5 reply (RFC 1928 6) with BND.ADDR 0.0.0.0:0: the app cannot use where the
 * connection comes from (it is not in its namespace). 10 bytes into buf. */
static size_t socks_reply(char *buf, uint8_t rep)
{
        const uint8_t r[10] = {SOCKS_VERSION, rep, 0x00, SOCKS_ATYP_IPV4};

        memcpy(buf, r, sizeof r);
        return sizeof r;
}

static int status_of_error(int error)
{
        switch (error) {
        case -EACCES:
        case -EPERM:
                return 403;
        case -EAGAIN:
        case -EMFILE:
                return 429;
        case -ETIMEDOUT:
                return 504;
        case -EINVAL:
                return 400;
        default:
                return 502;
        }
}

static uint8_t socks_rep_of_error(int error)
{
        switch (error) {
        case -EACCES:
        case -EPERM:
                return SOCKS_REP_NOT_ALLOWED;
        case -ENETUNREACH:
                return SOCKS_REP_NET_UNREACHABLE;
        case -EHOSTUNREACH:
        case -ENOENT:
        case -ETIMEDOUT:
                return SOCKS_REP_HOST_UNREACHABLE;
        case -ECONNREFUSED:
                return SOCKS_REP_REFUSED;
        default:
                return SOCKS_REP_FAILURE;
        }
}

size_t proxy_refusal(ProxyKind kind, int error, const char *why, char *buf, size_t size)
{
        char text[256];

        if (size < 64)
                return 0;
        if (kind == PROXY_KIND_SOCKS5)
                return socks_reply(buf, socks_rep_of_error(error));
        if (!why || !*why) {
                snprintf(text, sizeof text, "%s", strerror(error < 0 ? -error : EIO));
                why = text;
        }
        return proxy_http_reply(status_of_error(error), why, buf, size);
}

/* Refuses with an HTTP reply; c takes no more input. */
_printf_(3, 4) static ProxyStep http_refuse(ProxyConn *c, int status, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(c->why, sizeof c->why, fmt, ap);
        va_end(ap);
        c->n_out = proxy_http_reply(status, c->why, c->out, sizeof c->out);
        c->state = STATE_FINISHED;
        return PROXY_STEP_REFUSE;
}

/* Refuses with a SOCKS5 reply rep; c takes no more input. */
_printf_(3, 4) static ProxyStep socks_refuse(ProxyConn *c, uint8_t rep, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(c->why, sizeof c->why, fmt, ap);
        va_end(ap);
        c->n_out += socks_reply(c->out + c->n_out, rep);
        c->state = STATE_FINISHED;
        return PROXY_STEP_REFUSE;
}

/* A name's bytes: letters, digits, '-', '_' (seen in real names), '.'. The broker
 * checks the rest (src/net/addr.c); this keeps logs and audit records plain. */
static bool host_name_ok(const char *s, size_t n)
{
        if (n == 0 || n > 253)
                return false;
        for (size_t i = 0; i < n; i++) {
                char ch = s[i];

                if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                      (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.'))
                        return false;
        }
        return true;
}

/* An IPv6 literal's bytes (no zone: an app has no interface to name). */
static bool host_v6_ok(const char *s, size_t n)
{
        if (n < 2 || n > 45)
                return false;
        for (size_t i = 0; i < n; i++) {
                char ch = s[i];

                if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') ||
                      (ch >= 'A' && ch <= 'F') || ch == ':' || ch == '.'))
                        return false;
        }
        return true;
}

/* Decimal port digits (1..5 of them, 1..65535) into *ret. */
static bool port_parse(const char *s, size_t n, uint16_t *ret)
{
        unsigned v = 0;

        if (n == 0 || n > 5)
                return false;
        for (size_t i = 0; i < n; i++) {
                if (s[i] < '0' || s[i] > '9')
                        return false;
                v = v * 10 + (unsigned)(s[i] - '0');
        }
        if (v == 0 || v > 65535)
                return false;
        *ret = (uint16_t)v;
        return true;
}

/*
 * An authority, "host:port", "[v6]:port", or without ":port" (then default_port,
 * 0: the port is required). Fills c->host and c->port. Returns NULL or what is
 * wrong with it.
 */
static const char *authority_parse(ProxyConn *c, const char *s, size_t n, uint16_t default_port)
{
        const char *host, *colon = NULL;
        size_t n_host;

        if (memchr(s, '@', n))
                return "a user name in the URL is not passed on: give it to the server";
        if (n > 0 && s[0] == '[') {
                const char *close = memchr(s, ']', n);

                if (!close)
                        return "an IPv6 address without its closing ']'";
                host = s + 1;
                n_host = (size_t)(close - host);
                if (!host_v6_ok(host, n_host))
                        return "not an IPv6 address between [ and ]";
                if ((size_t)(close + 1 - s) < n) {
                        if (close[1] != ':')
                                return "something other than ':port' after the IPv6 address";
                        colon = close + 1;
                }
        } else {
                host = s;
                colon = memchr(s, ':', n);
                n_host = colon ? (size_t)(colon - s) : n;
                if (!host_name_ok(host, n_host))
                        return "the host is not a DNS name or an IPv4 address";
        }
        if (colon && colon + 1 < s + n) {
                if (!port_parse(colon + 1, (size_t)(s + n - colon - 1), &c->port))
                        return "the port is not a number from 1 to 65535";
        } else if (default_port)
                c->port = default_port;
        else
                return "no port (CONNECT takes host:port)";
        memcpy(c->host, host, n_host);
        c->host[n_host] = 0;
        return NULL;
}

/* RFC 9110 5.6.2: tchar. */
static bool is_tchar(char ch)
{
        return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
               (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

typedef struct Line {
        const char *p;
        size_t n; /* without the line end */
} Line;

/* Whether header name h (n bytes) is one the proxy drops: Host (set from the URL),
 * Connection, Keep-Alive, Proxy-* (for the proxy, RFC 9110 7.6.1), and the ones
 * the app's Connection header named. */
static bool header_dropped(const char *h, size_t n, const Line *named, size_t n_named)
{
        static const char *const always[] = {"host",    "connection", "keep-alive",
                                             "upgrade", "te",         "trailer"};

        for (size_t i = 0; i < ELEMENTSOF(always); i++)
                if (strlen(always[i]) == n && strncasecmp(h, always[i], n) == 0)
                        return true;
        if (n >= 6 && strncasecmp(h, "proxy-", 6) == 0)
                return true;
        for (size_t i = 0; i < n_named; i++)
                if (named[i].n == n && strncasecmp(h, named[i].p, n) == 0)
                        return true;
        return false;
}

/* Appends n bytes of s to b (room checked by the caller's allocation). */
static char *put(char *b, const void *s, size_t n)
{
        memcpy(b, s, n);
        return b + n;
}

/* The head is in[0..head) (with its blank line), its text without the blank line in
 * [0..text). Parses it and answers. */
static ProxyStep http_head(ProxyConn *c, size_t text, size_t head)
{
        const char *s = (const char *)c->in;
        Line lines[128];
        size_t n_lines = 0, pos = 0;
        Line named[CONNECTION_TOKENS_MAX];
        size_t n_named = 0;
        const char *sp1, *sp2, *target, *version, *err;
        size_t n_method, n_target;

        if (memchr(s, 0, text))
                return http_refuse(c, 400, "a NUL byte in the request head");
        while (pos < text) {
                const char *nl = memchr(s + pos, '\n', text - pos);
                size_t end = nl ? (size_t)(nl - s) : text, n = end - pos;

                if (n > 0 && s[end - 1] == '\r')
                        n--;
                if (memchr(s + pos, '\r', n))
                        return http_refuse(c, 400, "a bare CR in the request head");
                if (n_lines == ELEMENTSOF(lines))
                        return http_refuse(c, 431, "more than %zu header lines",
                                           ELEMENTSOF(lines) - 1);
                lines[n_lines++] = (Line){s + pos, n};
                pos = end + 1;
        }
        if (n_lines == 0)
                return http_refuse(c, 400, "an empty request");

        /* The request line: method SP target SP HTTP/1.x */
        sp1 = memchr(lines[0].p, ' ', lines[0].n);
        sp2 = sp1 ? memchr(sp1 + 1, ' ', (size_t)(lines[0].p + lines[0].n - sp1 - 1)) : NULL;
        if (!sp1 || !sp2 || memchr(sp2 + 1, ' ', (size_t)(lines[0].p + lines[0].n - sp2 - 1)))
                return http_refuse(c, 400, "the request line is not 'METHOD TARGET HTTP/1.1'");
        n_method = (size_t)(sp1 - lines[0].p);
        target = sp1 + 1;
        n_target = (size_t)(sp2 - target);
        version = sp2 + 1;
        for (size_t i = 0; i < n_method; i++)
                if (!is_tchar(lines[0].p[i]))
                        return http_refuse(c, 400, "the method is not a token");
        if (n_method == 0 || n_target == 0)
                return http_refuse(c, 400, "the request line is not 'METHOD TARGET HTTP/1.1'");
        if ((size_t)(lines[0].p + lines[0].n - version) != 8 ||
            (strncmp(version, "HTTP/1.1", 8) != 0 && strncmp(version, "HTTP/1.0", 8) != 0))
                return http_refuse(c, 505, "only HTTP/1.0 and HTTP/1.1 are spoken here");

        /* The headers: no folding (RFC 9112 5.2: a proxy refuses it), tokens for
         * names, and Connection's list of hop-by-hop names. */
        for (size_t i = 1; i < n_lines; i++) {
                const char *colon = memchr(lines[i].p, ':', lines[i].n);

                if (lines[i].n > 0 && (lines[i].p[0] == ' ' || lines[i].p[0] == '\t'))
                        return http_refuse(c, 400, "a folded header line (obs-fold)");
                if (!colon || colon == lines[i].p)
                        return http_refuse(c, 400, "a header line without 'name:'");
                for (const char *q = lines[i].p; q < colon; q++)
                        if (!is_tchar(*q))
                                return http_refuse(c, 400, "a header name that is not a token");
                if ((size_t)(colon - lines[i].p) == 10 &&
                    strncasecmp(lines[i].p, "connection", 10) == 0) {
                        const char *q = colon + 1, *e = lines[i].p + lines[i].n;

                        while (q < e) {
                                const char *t;

                                while (q < e && (*q == ' ' || *q == '\t' || *q == ','))
                                        q++;
                                t = q;
                                while (q < e && is_tchar(*q))
                                        q++;
                                if (q == t) {
                                        if (q < e)
                                                return http_refuse(c, 400,
                                                                   "a bad Connection header");
                                        break;
                                }
                                if (n_named == ELEMENTSOF(named))
                                        return http_refuse(c, 400,
                                                           "a Connection header naming more "
                                                           "than %d headers",
                                                           CONNECTION_TOKENS_MAX);
                                named[n_named++] = (Line){t, (size_t)(q - t)};
                        }
                }
        }

        if (n_method == 7 && memcmp(lines[0].p, "CONNECT", 7) == 0) {
                c->kind = PROXY_KIND_HTTP_CONNECT;
                err = authority_parse(c, target, n_target, 0);
                if (err)
                        return http_refuse(c, 400, "CONNECT %.*s: %s",
                                           (int)(n_target < 64 ? n_target : 64), target, err);
                c->n_to_app = (size_t)snprintf(c->to_app, sizeof c->to_app, "%s",
                                               "HTTP/1.1 200 Connection established\r\n\r\n");
                if (c->n_in > head) {
                        c->to_peer = malloc(c->n_in - head);
                        if (!c->to_peer)
                                return http_refuse(c, 502, "out of memory");
                        memcpy(c->to_peer, c->in + head, c->n_in - head);
                        c->n_to_peer = c->n_in - head;
                }
                c->state = STATE_FINISHED;
                return PROXY_STEP_CONNECT;
        }

        /* An absolute-form request for an http:// URL. */
        {
                const char *auth, *path, *end = target + n_target;
                size_t n_auth, n_path, size;
                char *b;

                if (n_target < 7 || strncasecmp(target, "http://", 7) != 0) {
                        if (n_target >= 8 && strncasecmp(target, "https://", 8) == 0)
                                return http_refuse(c, 400,
                                                   "an https:// URL is reached through CONNECT "
                                                   "(the client's TLS end to end), not forwarded");
                        return http_refuse(c, 400,
                                           "this is cella's proxy: send CONNECT host:port or an "
                                           "absolute http:// URL");
                }
                auth = target + 7;
                path = auth;
                while (path < end && *path != '/' && *path != '?' && *path != '#')
                        path++;
                n_auth = (size_t)(path - auth);
                if (n_auth == 0)
                        return http_refuse(c, 400, "a URL without a host");
                err = authority_parse(c, auth, n_auth, 80);
                if (err)
                        return http_refuse(c, 400, "%.*s: %s", (int)(n_target < 64 ? n_target : 64),
                                           target, err);
                n_path = (size_t)(end - path);
                if (n_path > 0 && *path == '#')
                        n_path = 0; /* a fragment is not sent (RFC 9110 4.2.4) */
                for (size_t i = 0; i < n_path; i++)
                        if ((unsigned char)path[i] <= 0x20 || (unsigned char)path[i] >= 0x7f)
                                return http_refuse(c, 400, "a URL with a space or control byte");

                c->kind = PROXY_KIND_HTTP_FORWARD;
                /* The new head is the old one less the scheme and authority, plus
                 * Host (authority), "Connection: close", a '/' at most, and a CR
                 * for each line that ended with a bare LF. */
                size = c->n_in + n_lines + n_auth + 64;
                b = c->to_peer = malloc(size);
                if (!b)
                        return http_refuse(c, 502, "out of memory");
                b = put(b, lines[0].p, n_method + 1);
                if (n_path == 0 || *path != '/')
                        b = put(b, "/", 1);
                b = put(b, path, n_path);
                b = put(b, " ", 1);
                b = put(b, version, 8);
                b = put(b, "\r\nHost: ", 8);
                b = put(b, auth, n_auth);
                b = put(b, "\r\n", 2);
                for (size_t i = 1; i < n_lines; i++) {
                        const char *colon = memchr(lines[i].p, ':', lines[i].n);

                        if (header_dropped(lines[i].p, (size_t)(colon - lines[i].p), named,
                                           n_named))
                                continue;
                        b = put(b, lines[i].p, lines[i].n);
                        b = put(b, "\r\n", 2);
                }
                b = put(b, "Connection: close\r\n\r\n", 21);
                b = put(b, c->in + head, c->n_in - head);
                c->n_to_peer = (size_t)(b - c->to_peer);
                c->state = STATE_FINISHED;
                return PROXY_STEP_CONNECT;
        }
}

static ProxyStep http_feed(ProxyConn *c)
{
        const char *s = (const char *)c->in;
        /* From where the last search stopped, less the 3 bytes an end cut in two
         * leaves before it. */
        size_t from = c->scanned > 3 ? c->scanned - 3 : 0;
        const char *crlf = memmem(s + from, c->n_in - from, "\r\n\r\n", 4);
        const char *lf = memmem(s + from, c->n_in - from, "\n\n", 2);
        size_t text, head;

        /* A request starts with a method, a token: anything else (TLS sent to the
         * proxy port as it is, a stray byte) is refused at once, not after a timeout. */
        if (!is_tchar(s[0]))
                return http_refuse(c, 400,
                                   "this is cella's proxy: send CONNECT host:port, an absolute "
                                   "http:// URL, or SOCKS5");
        if (lf && (!crlf || lf < crlf)) {
                text = (size_t)(lf - s) + 1;
                head = text + 1;
        } else if (crlf) {
                text = (size_t)(crlf - s) + 2;
                head = text + 2;
        } else {
                if (c->n_in >= sizeof c->in)
                        return http_refuse(c, 431, "a request head over %u bytes",
                                           PROXY_HANDSHAKE_MAX);
                c->scanned = c->n_in;
                return PROXY_STEP_MORE;
        }
        return http_head(c, text, head);
}

static ProxyStep socks_feed(ProxyConn *c)
{
        const uint8_t *p;
        size_t n, need;

        if (c->state == STATE_SOCKS_HELLO) {
                bool none = false;

                if (c->n_in < 2)
                        return PROXY_STEP_MORE;
                need = 2 + (size_t)c->in[1];
                if (c->in[1] == 0) {
                        c->out[c->n_out++] = SOCKS_VERSION;
                        c->out[c->n_out++] = (char)SOCKS_METHOD_REFUSED;
                        snprintf(c->why, sizeof c->why, "a SOCKS5 greeting with no method");
                        c->state = STATE_FINISHED;
                        return PROXY_STEP_REFUSE;
                }
                if (c->n_in < need)
                        return PROXY_STEP_MORE;
                for (size_t i = 2; i < need; i++)
                        none = none || c->in[i] == SOCKS_METHOD_NONE;
                c->out[c->n_out++] = SOCKS_VERSION;
                if (!none) {
                        c->out[c->n_out++] = (char)SOCKS_METHOD_REFUSED;
                        snprintf(c->why, sizeof c->why,
                                 "SOCKS5 without 'no authentication': the proxy asks for none");
                        c->state = STATE_FINISHED;
                        return PROXY_STEP_REFUSE;
                }
                c->out[c->n_out++] = SOCKS_METHOD_NONE;
                c->done = need;
                c->state = STATE_SOCKS_REQUEST;
        }

        /* VER CMD RSV ATYP DST.ADDR DST.PORT */
        p = c->in + c->done;
        n = c->n_in - c->done;
        if (n < 5)
                return PROXY_STEP_MORE;
        if (p[0] != SOCKS_VERSION)
                return socks_refuse(c, SOCKS_REP_FAILURE, "a SOCKS request of version %u",
                                    (unsigned)p[0]);
        if (p[1] != SOCKS_CMD_CONNECT)
                return socks_refuse(c, SOCKS_REP_COMMAND,
                                    "SOCKS5 command %u: only CONNECT (1) is served",
                                    (unsigned)p[1]);
        switch (p[3]) {
        case SOCKS_ATYP_IPV4:
                need = 4 + 4 + 2;
                break;
        case SOCKS_ATYP_IPV6:
                need = 4 + 16 + 2;
                break;
        case SOCKS_ATYP_DOMAIN:
                need = 4 + 1 + (size_t)p[4] + 2;
                break;
        default:
                return socks_refuse(c, SOCKS_REP_ATYP, "SOCKS5 address type %u", (unsigned)p[3]);
        }
        if (n < need)
                return PROXY_STEP_MORE;
        c->port = (uint16_t)(p[need - 2] << 8 | p[need - 1]);
        if (c->port == 0)
                return socks_refuse(c, SOCKS_REP_FAILURE, "SOCKS5 CONNECT to port 0");
        if (p[3] == SOCKS_ATYP_IPV4)
                inet_ntop(AF_INET, p + 4, c->host, sizeof c->host);
        else if (p[3] == SOCKS_ATYP_IPV6)
                inet_ntop(AF_INET6, p + 4, c->host, sizeof c->host);
        else {
                if (!host_name_ok((const char *)p + 5, p[4]))
                        return socks_refuse(c, SOCKS_REP_HOST_UNREACHABLE,
                                            "the SOCKS5 host is not a DNS name or an address");
                memcpy(c->host, p + 5, p[4]);
                c->host[p[4]] = 0;
        }
        c->n_to_app = socks_reply(c->to_app, SOCKS_REP_OK);
        if (n > need) {
                c->to_peer = malloc(n - need);
                if (!c->to_peer)
                        return socks_refuse(c, SOCKS_REP_FAILURE, "out of memory");
                memcpy(c->to_peer, p + need, n - need);
                c->n_to_peer = n - need;
        }
        c->state = STATE_FINISHED;
        return PROXY_STEP_CONNECT;
}

ProxyStep proxy_feed(ProxyConn *c, const void *data, size_t n)
{
        c->n_out = 0;
        if (c->state == STATE_FINISHED) {
                snprintf(c->why, sizeof c->why, "the handshake is over");
                return PROXY_STEP_REFUSE;
        }
        if (n > proxy_conn_room(c)) {
                if (c->kind == PROXY_KIND_SOCKS5)
                        return socks_refuse(c, SOCKS_REP_FAILURE,
                                            "a SOCKS5 handshake over %u bytes",
                                            PROXY_HANDSHAKE_MAX);
                return http_refuse(c, 431, "a request head over %u bytes", PROXY_HANDSHAKE_MAX);
        }
        if (n == 0)
                return PROXY_STEP_MORE;
        memcpy(c->in + c->n_in, data, n);
        c->n_in += n;
        if (c->state == STATE_START) {
                if (c->in[0] == SOCKS_VERSION) {
                        c->kind = PROXY_KIND_SOCKS5;
                        c->state = STATE_SOCKS_HELLO;
                } else {
                        c->kind = PROXY_KIND_HTTP_FORWARD; /* until a CONNECT is seen */
                        c->state = STATE_HTTP;
                }
        }
        if (c->kind == PROXY_KIND_SOCKS5)
                return socks_feed(c);
        return http_feed(c);
}
