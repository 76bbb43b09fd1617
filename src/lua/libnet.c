/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella.net: tcp, http and websocket clients over connections the broker makes
 * (docs/lua-api.md "cella.net", docs/network.md "Lua").
 *
 * Every connection starts with the kernel call net.connect (OPCODE_NET_CONNECT):
 * the broker checks the app's net.connect right, resolves the name once, connects
 * to a vetted address and passes the app its end of a relay (an AF_UNIX socket).
 * The task waits for that reply suspended, as for any kernel call; then its I/O
 * on the socket waits in the host's epoll set (iowait.c), so only the calling
 * task is suspended, never the host.
 *
 * http drives libcurl's multi interface from the host's loop
 * (curl_multi_socket_action() on the fd watch and a C timer), hands libcurl the
 * broker's socket (CURLOPT_OPENSOCKETFUNCTION, CURL_SOCKOPT_ALREADY_CONNECTED,
 * CURLOPT_RESOLVE to the vetted address: libcurl looks up no name and opens no
 * socket of its own) and follows redirects itself, each hop a new net.connect, so
 * the rights are checked again at every hop.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <wslay/wslay.h>
#include <lauxlib.h>
#include <pthread.h>

#include "base/time-util.h"
#include "wire/wire.h"
#include "lua/alloc.h"
#include "lua/host.h"
#include "lua/lua-modules.h"
#include "lua/libnet.h"
#include "lua/netutil.h"

/* The net.connect call (proto/cella.proto). Its reply is unpacked here with its
 * own descriptor, so this module needs nothing of the call but the proto. */
#define NET_CONNECT_OP ((uint16_t)CELLA__V1__OPCODE__OPCODE_NET_CONNECT)

#define CONN_MT "cella.net.conn"
#define HTTP_MT "cella.net.request"

/* Defaults and bounds (docs/lua-api.md "cella.net"). */
#define NET_TIMEOUT_DEFAULT_MS 30000u
#define NET_TIMEOUT_MAX_MS     600000u
#define NET_READ_DEFAULT       65536u
#define NET_READ_MAX           (1024u * 1024u)
#define HTTP_BODY_DEFAULT      (8u * 1024u * 1024u)
#define HTTP_BODY_MAX          (256u * 1024u * 1024u)
#define HTTP_HEADERS_MAX       (64u * 1024u)
#define HTTP_REDIRECTS_DEFAULT 5
#define HTTP_REDIRECTS_MAX     20
#define HTTP_REQ_HEADERS_MAX   100

/* ---- libcurl, once per process, its memory charged to the app ---------------- */

static void *ext_calloc(size_t n, size_t size)
{
        void *p;

        if (size && n > SIZE_MAX / size)
                return NULL;
        p = clua_ext_malloc(n * size);
        if (p)
                memset(p, 0, n * size);
        return p;
}

static char *ext_strdup(const char *s)
{
        size_t n = strlen(s) + 1;
        char *p = clua_ext_malloc(n);

        if (p)
                memcpy(p, s, n);
        return p;
}

static CURLcode curl_init_result = CURLE_FAILED_INIT;

static void curl_init_once(void)
{
        /* libcurl's own blocks carry the app's charge as jansson's and SQLite's
         * do (alloc.h): a transfer's buffers count against the app's memory. */
        (void)clua_alloc_global_init();
        curl_init_result = curl_global_init_mem(CURL_GLOBAL_DEFAULT, clua_ext_malloc, clua_ext_free,
                                                clua_ext_realloc, ext_strdup, ext_calloc);
}

int clua_net_global_init(void)
{
        static pthread_once_t once = PTHREAD_ONCE_INIT;

        pthread_once(&once, curl_init_once);
        return curl_init_result == CURLE_OK ? 0 : -EIO;
}

/* ---- options --------------------------------------------------------------- */

/* A timeout in milliseconds from field name of the table at index t (default dflt):
 * 1..NET_TIMEOUT_MAX_MS. Returns nanoseconds. */
static uint64_t opt_timeout_ms(lua_State *L, int t, const char *name, uint32_t dflt)
{
        lua_Integer ms;

        if (t == 0 || lua_getfield(L, t, name) == LUA_TNIL) {
                if (t)
                        lua_pop(L, 1);
                return (uint64_t)dflt * 1000000u;
        }
        if (!lua_isinteger(L, -1))
                luaL_error(L, "cella.net: %s must be an integer (milliseconds)", name);
        ms = lua_tointeger(L, -1);
        lua_pop(L, 1);
        if (ms < 1 || ms > NET_TIMEOUT_MAX_MS)
                luaL_error(L, "cella.net: %s out of range 1..%d ms", name, (int)NET_TIMEOUT_MAX_MS);
        return (uint64_t)ms * 1000000u;
}

static lua_Integer opt_int(lua_State *L, int t, const char *name, lua_Integer dflt, lua_Integer min,
                           lua_Integer max)
{
        lua_Integer v;

        if (t == 0 || lua_getfield(L, t, name) == LUA_TNIL) {
                if (t)
                        lua_pop(L, 1);
                return dflt;
        }
        if (!lua_isinteger(L, -1))
                luaL_error(L, "cella.net: %s must be an integer", name);
        v = lua_tointeger(L, -1);
        lua_pop(L, 1);
        if (v < min || v > max)
                luaL_error(L, "cella.net: %s out of range %d..%d", name, (int)min, (int)max);
        return v;
}

/* ---- the broker's connection -------------------------------------------------- */

/* The error of a net.connect the kernel refused, as the app reads it. */
static int connect_error(lua_State *L, const char *fname, const char *host, int port,
                         CellaReply *reply)
{
        const char *why =
                reply->error_message && *reply->error_message ? reply->error_message : NULL;

        if (reply->error == -EACCES || reply->error == -EPERM)
                return luaL_error(L, "%s: %s:%d refused: %s%s%s", fname, host, port,
                                  strerror(-reply->error), why ? ": " : "", why ?: "");
        if (reply->error == -ENOSYS || reply->error == -EOPNOTSUPP)
                return luaL_error(L, "%s: %s:%d: this kernel has no net.connect call", fname, host,
                                  port);
        return luaL_error(L, "%s: %s:%d: %s%s%s", fname, host, port, strerror(-reply->error),
                          why ? ": " : "", why ?: "");
}

/* Takes the relay's fd out of a successful net.connect reply (non-blocking), its
 * address into addr (size bytes) and right. Returns the fd or raises. */
static int connect_take(lua_State *L, const char *fname, const char *host, int port,
                        CellaReply *reply, char *addr, size_t size, char *right, size_t rsize)
{
        Cella__V1__NetConnectReply *r;
        int fd;

        if (reply->error)
                connect_error(L, fname, host, port, reply);
        if (reply->n_fds < 1 || reply->fds[0] < 0)
                luaL_error(L, "%s: %s:%d: the kernel's reply carries no socket", fname, host, port);
        r = cella__v1__net_connect_reply__unpack(NULL, reply->body_len, reply->body);
        if (!r)
                luaL_error(L, "%s: %s:%d: the kernel's reply does not decode", fname, host, port);
        snprintf(addr, size, "%s", r->address ?: "");
        if (right)
                snprintf(right, rsize, "%s", r->right ?: "");
        cella__v1__net_connect_reply__free_unpacked(r, NULL);
        fd = reply->fds[0];
        reply->fds[0] = -1;
        if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) < 0) {
                int e = errno;

                close(fd);
                luaL_error(L, "%s: %s", fname, strerror(e));
        }
        return fd;
}

/* Checks a host argument (1..NET_HOST_MAX bytes, no NUL) and a port (1..65535). */
static const char *check_host(lua_State *L, int i)
{
        return clua_check_str(L, i, 1, NET_HOST_MAX, NULL);
}

static unsigned check_port(lua_State *L, int i)
{
        lua_Integer p = luaL_checkinteger(L, i);

        luaL_argcheck(L, p >= 1 && p <= 65535, i, "port out of range 1..65535");
        return (unsigned)p;
}

/* ---- cella.net.tcp ------------------------------------------------------------- */

/* Watches c's fd for what its waiting tasks and the caller (want) need. */
static void conn_watch(NetConn *c, uint32_t want)
{
        (void)clua_fd_watch_duplex(&c->watch, c->fd, c->rwait, c->wwait, want);
}

static void conn_ready(CLuaFdWatch *w, uint32_t ev)
{
        NetConn *c = w->userdata;

        clua_io_wake_duplex(ev, &c->rwait, &c->wwait);
        /* Level-triggered: stop watching what no task waits for any more. */
        conn_watch(c, 0);
}

void clua_net_conn_close(NetConn *c)
{
        clua_fd_watch_stop(&c->watch);
        if (c->fd >= 0)
                close(c->fd);
        c->fd = -1;
        /* Tasks waiting on it go on, and see it closed. */
        clua_io_wake(&c->rwait);
        clua_io_wake(&c->wwait);
}

static int conn_gc(lua_State *L)
{
        NetConn *c = luaL_checkudata(L, 1, CONN_MT);

        clua_net_conn_close(c);
        return 0;
}

NetConn *clua_net_conn_push(lua_State *L, int fd)
{
        NetConn *c = lua_newuserdatauv(L, sizeof(*c), 0);

        memset(c, 0, sizeof(*c));
        c->watch.fd = -1;
        c->watch.app = clua_app_of(L);
        c->watch.cb = conn_ready;
        c->watch.userdata = c;
        c->timeout_ns = (uint64_t)NET_TIMEOUT_DEFAULT_MS * 1000000u;
        c->fd = fd;
        luaL_setmetatable(L, CONN_MT);
        return c;
}

static NetConn *check_conn(lua_State *L, int i)
{
        return luaL_checkudata(L, i, CONN_MT);
}

/* decode of tcp.connect: arguments 1 host, 2 port, 3 options. Pushes the conn. */
static int decode_tcp_connect(lua_State *L, CellaReply *reply)
{
        const char *host = lua_tostring(L, 1);
        int port = (int)lua_tointeger(L, 2);
        uint64_t timeout_ns =
                opt_timeout_ms(L, lua_istable(L, 3) ? 3 : 0, "timeout_ms", NET_TIMEOUT_DEFAULT_MS);
        NetConn *c = clua_net_conn_push(L, -1);

        c->fd = connect_take(L, "cella.net.tcp.connect", host, port, reply, c->address,
                             sizeof c->address, c->right, sizeof c->right);
        c->timeout_ns = timeout_ns;
        return 1;
}

static int tcp_connect(lua_State *L)
{
        Cella__V1__NetConnectRequest req = CELLA__V1__NET_CONNECT_REQUEST__INIT;

        req.host = (char *)check_host(L, 1);
        req.port = check_port(L, 2);
        if (!lua_isnoneornil(L, 3)) {
                luaL_checktype(L, 3, LUA_TTABLE);
                (void)opt_timeout_ms(L, 3, "timeout_ms", NET_TIMEOUT_DEFAULT_MS);
        }
        lua_settop(L, 3);
        req.proto = CELLA__V1__NET_PROTO__NET_PROTO_TCP;
        return clua_kernel_call(L, "cella.net.tcp.connect", NET_CONNECT_OP, &req.base,
                                decode_tcp_connect);
}

/* conn:read([max]) -> up to max bytes (1..1 MiB, default 64 KiB), or nil at the
 * end of the stream. Waits for data up to the connection's timeout. */
static int conn_read_k(lua_State *L, int status, lua_KContext ctx)
{
        NetConn *c = check_conn(L, 1);
        size_t max = (size_t)lua_tointeger(L, 2);
        luaL_Buffer b;
        char *p;
        ssize_t n;

        (void)ctx;
        if (status == LUA_YIELD && clua_io_resumed(L, &c->rwait) && c->fd >= 0)
                return luaL_error(L, "cella.net.tcp: read: timed out after %d ms",
                                  (int)(c->timeout_ns / 1000000u));
        if (c->fd < 0)
                return luaL_error(L, "cella.net.tcp: read: the connection is closed");
        if (c->rwait)
                return luaL_error(L, "cella.net.tcp: read: another task is reading");
        p = luaL_buffinitsize(L, &b, max);
        n = recv(c->fd, p, max, MSG_DONTWAIT);
        if (n > 0) {
                luaL_pushresultsize(&b, (size_t)n);
                return 1;
        }
        if (n == 0) {
                lua_pushnil(L);
                return 1;
        }
        if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                return luaL_error(L, "cella.net.tcp: read: %s", strerror(errno));
        lua_settop(L, 2);
        conn_watch(c, EPOLLIN | EPOLLRDHUP);
        return clua_io_wait(L, &c->rwait, c->timeout_ns, conn_read_k, 0);
}

static int conn_read(lua_State *L)
{
        lua_Integer max = luaL_optinteger(L, 2, NET_READ_DEFAULT);

        check_conn(L, 1);
        luaL_argcheck(L, max >= 1 && max <= NET_READ_MAX, 2, "out of range 1..1048576 bytes");
        lua_settop(L, 1);
        lua_pushinteger(L, max);
        return conn_read_k(L, LUA_OK, 0);
}

/* conn:write(data): all of data, waiting while the relay's buffer is full (each
 * wait up to the timeout). ctx: the bytes written so far. */
static int conn_write_k(lua_State *L, int status, lua_KContext ctx)
{
        NetConn *c = check_conn(L, 1);
        size_t len, off = (size_t)ctx;
        const char *s = lua_tolstring(L, 2, &len);

        if (status == LUA_YIELD && clua_io_resumed(L, &c->wwait) && c->fd >= 0)
                return luaL_error(L, "cella.net.tcp: write: timed out after %d ms",
                                  (int)(c->timeout_ns / 1000000u));
        if (c->wwait)
                return luaL_error(L, "cella.net.tcp: write: another task is writing");
        while (off < len) {
                ssize_t n;

                if (c->fd < 0)
                        return luaL_error(L, "cella.net.tcp: write: the connection is closed");
                n = send(c->fd, s + off, len - off, MSG_DONTWAIT | MSG_NOSIGNAL);
                if (n >= 0) {
                        off += (size_t)n;
                        continue;
                }
                if (errno == EINTR)
                        continue;
                if (errno != EAGAIN && errno != EWOULDBLOCK)
                        return luaL_error(L, "cella.net.tcp: write: %s", strerror(errno));
                conn_watch(c, EPOLLOUT);
                return clua_io_wait(L, &c->wwait, c->timeout_ns, conn_write_k, (lua_KContext)off);
        }
        lua_pushinteger(L, (lua_Integer)len);
        return 1;
}

static int conn_write(lua_State *L)
{
        check_conn(L, 1);
        luaL_checkstring(L, 2);
        lua_settop(L, 2);
        return conn_write_k(L, LUA_OK, 0);
}

static int conn_close(lua_State *L)
{
        clua_net_conn_close(check_conn(L, 1));
        return 0;
}

/* conn:shutdown(): no more writes (the peer reads the end of the stream). */
static int conn_shutdown(lua_State *L)
{
        NetConn *c = check_conn(L, 1);

        if (c->fd >= 0 && shutdown(c->fd, SHUT_WR) < 0)
                return luaL_error(L, "cella.net.tcp: shutdown: %s", strerror(errno));
        return 0;
}

/* conn:settimeout(ms): each later read or write waits at most ms milliseconds. */
static int conn_settimeout(lua_State *L)
{
        NetConn *c = check_conn(L, 1);
        lua_Integer ms = luaL_checkinteger(L, 2);

        luaL_argcheck(L, ms >= 1 && ms <= NET_TIMEOUT_MAX_MS, 2, "out of range 1..600000 ms");
        c->timeout_ns = (uint64_t)ms * 1000000u;
        return 0;
}

/* conn:info() -> {address, right} */
static int conn_info(lua_State *L)
{
        NetConn *c = check_conn(L, 1);

        lua_createtable(L, 0, 3);
        lua_pushstring(L, c->address);
        lua_setfield(L, -2, "address");
        lua_pushstring(L, c->right);
        lua_setfield(L, -2, "right");
        lua_pushboolean(L, c->fd < 0);
        lua_setfield(L, -2, "closed");
        return 1;
}

static const luaL_Reg conn_methods[] = {
        {"read", conn_read},
        {"write", conn_write},
        {"close", conn_close},
        {"shutdown", conn_shutdown},
        {"settimeout", conn_settimeout},
        {"info", conn_info},
        {NULL, NULL},
};

/*
 * libcurl 7.88 (Debian 12's) calls connect() on a socket its
 * CURLOPT_SOCKOPTFUNCTION called connected (CURL_SOCKOPT_ALREADY_CONNECTED): a
 * regression of 7.88.0 (curl issue 10626, fixed in 8.0.0 by pull request 10648),
 * which fails on the broker's AF_UNIX socket ("Immediate connect fail: Invalid
 * argument"). This connect() stands in for libc's for the process (the
 * executable's definition comes first): on the one fd http_open_socket() just gave
 * libcurl, on this thread, it answers "connected" without a system call; on every
 * other fd it is the system call. glibc's own callers use its internal __connect,
 * never this.
 */
static __thread int preconnected_fd = -1;

int connect(int fd, const struct sockaddr *addr, socklen_t len)
{
        if (fd >= 0 && fd == preconnected_fd) {
                preconnected_fd = -1;
                return 0;
        }
        return (int)syscall(SYS_connect, fd, addr, len);
}

/* ---- cella.net.http -------------------------------------------------------------- */

/* One request, its hops included: userdata of class "cella.net.request" at stack
 * index 2 of http.request's frame; its user values 1 and 2 anchor the body and
 * the CA strings libcurl points into. */
/*
 * A libcurl transfer (an http hop, a websocket's connect) run by its own task:
 * the loop's fd watch and C timer only note what came and wake the task, which
 * then calls curl_multi_socket_action() itself. So libcurl's work (TLS, decoding,
 * the body's copies) runs in the app's slices, preempted between calls and under
 * its CPU budget, never in the host's loop where a packed group's other apps wait.
 */
typedef struct CurlXfer {
        curl_socket_t sock; /* libcurl's socket, CURL_SOCKET_BAD when none */
        uint32_t want;      /* what libcurl waits for on it (EPOLLIN, EPOLLOUT) */
        uint32_t got;       /* what the loop saw since the task last ran libcurl */
        bool got_timeout;   /* libcurl's timeout is due */
        bool done;          /* the transfer ended, with result */
        CURLcode result;
} CurlXfer;

static void xfer_init(CurlXfer *x)
{
        *x = (CurlXfer){.sock = CURL_SOCKET_BAD};
}

/* From the owner's fd watch: notes ev. The fd stays watched (no epoll_ctl() per
 * event): until the woken task has run, the loop may see it again, and only notes
 * it again. */
static void xfer_seen(CurlXfer *x, CLuaFdWatch *w, uint32_t ev)
{
        (void)w;
        x->got |= ev;
}

/* libcurl's CURLMOPT_SOCKETFUNCTION, for the owner's: what it waits for on s. */
static int xfer_socket(CurlXfer *x, CLuaFdWatch *w, curl_socket_t s, int what)
{
        uint32_t ev = 0;

        if (what == CURL_POLL_REMOVE) {
                if (w->fd == s)
                        clua_fd_watch_stop(w);
                x->sock = CURL_SOCKET_BAD;
                x->want = 0;
                return 0;
        }
        if (what & CURL_POLL_IN)
                ev |= EPOLLIN;
        if (what & CURL_POLL_OUT)
                ev |= EPOLLOUT;
        x->sock = s;
        x->want = ev;
        return clua_fd_watch_set(w, s, ev) < 0 ? -1 : 0;
}

/* libcurl's CURLMOPT_TIMERFUNCTION, for the owner's: a timeout of 0 is run by the
 * task at once (xfer_run()), a later one by the owner's C timer (on_timer). */
static int xfer_timer(CurlXfer *x, CLuaApp *app, CLuaTimer **timer, long timeout_ms,
                      void (*on_timer)(void *), void *data)
{
        clua_timer_remove_cb(app, timer);
        if (timeout_ms < 0)
                return 0;
        if (timeout_ms == 0) {
                x->got_timeout = true;
                return 0;
        }
        return clua_timer_add_cb(app, (uint64_t)timeout_ms * 1000000u, on_timer, data, timer) < 0
                       ? -1
                       : 0;
}

/* In the task: runs libcurl for what came; then watches what it waits for. */
static void xfer_run(CurlXfer *x, CURLM *multi, CLuaFdWatch *w)
{
        int running, left;
        CURLMsg *m;

        while (!x->done && (x->got || x->got_timeout)) {
                if (x->got_timeout) {
                        x->got_timeout = false;
                        (void)curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
                } else {
                        int mask = 0;

                        if (x->got & EPOLLIN)
                                mask |= CURL_CSELECT_IN;
                        if (x->got & EPOLLOUT)
                                mask |= CURL_CSELECT_OUT;
                        if (x->got & (EPOLLERR | EPOLLHUP))
                                mask |= CURL_CSELECT_ERR;
                        x->got = 0;
                        if (x->sock != CURL_SOCKET_BAD)
                                (void)curl_multi_socket_action(multi, x->sock, mask, &running);
                }
                while ((m = curl_multi_info_read(multi, &left)))
                        if (m->msg == CURLMSG_DONE) {
                                x->done = true;
                                x->result = m->data.result;
                        }
        }
        if (!x->done && x->want && x->sock != CURL_SOCKET_BAD && w->fd < 0)
                (void)clua_fd_watch_set(w, x->sock, x->want);
}

typedef struct NetHttp {
        CLuaApp *app;
        CURLM *multi;
        CURL *easy;
        struct curl_slist *headers, *resolve;
        CLuaFdWatch watch;
        CLuaWait *wait;
        CLuaTimer *timer;
        int fd;       /* the broker's socket until libcurl takes it, else -1 */
        bool closing; /* being freed: libcurl's callbacks do nothing */
        CurlXfer x;   /* the hop's transfer */
        char *url;    /* this hop's URL (malloc'd) */
        NetTarget target;
        char method[17];
        const char *body; /* in the options table (user value 1) */
        size_t body_len;
        bool has_body;
        const char *ca_pem;
        size_t ca_len;
        uint64_t deadline_ns;
        int max_redirects, hops;
        size_t max_body;
        char *resp; /* clua_ext_* blocks: charged to the app */
        size_t resp_len, resp_cap;
        char *hdr;
        size_t hdr_len, hdr_cap;
        bool too_large;     /* the body passed max_body or the memory cap */
        bool hdr_too_large; /* the headers passed HTTP_HEADERS_MAX */
        char address[64];
        char errbuf[CURL_ERROR_SIZE];
} NetHttp;

/* Ends the hop's transfer: libcurl's handles go (closing its socket), its watch,
 * its timer. The response buffers stay. */
static void http_hop_end(NetHttp *r)
{
        /* libcurl has called connect() on it by now, or never will. */
        preconnected_fd = -1;
        r->closing = true;
        clua_timer_remove_cb(r->app, &r->timer);
        if (r->multi && r->easy)
                curl_multi_remove_handle(r->multi, r->easy);
        if (r->easy)
                curl_easy_cleanup(r->easy);
        if (r->multi)
                curl_multi_cleanup(r->multi);
        r->easy = NULL;
        r->multi = NULL;
        clua_fd_watch_stop(&r->watch);
        if (r->fd >= 0)
                close(r->fd);
        r->fd = -1;
        curl_slist_free_all(r->resolve);
        r->resolve = NULL;
        r->closing = false;
        xfer_init(&r->x);
}

static int http_gc(lua_State *L)
{
        NetHttp *r = luaL_checkudata(L, 1, HTTP_MT);

        if (!r->app)
                return 0;
        http_hop_end(r);
        r->closing = true;
        curl_slist_free_all(r->headers);
        r->headers = NULL;
        free(r->url);
        r->url = NULL;
        clua_ext_free(r->resp);
        clua_ext_free(r->hdr);
        r->resp = r->hdr = NULL;
        r->app = NULL;
        return 0;
}

/* Appends n bytes to a charged buffer of at most max bytes; false when it would
 * pass max or the app's memory cap. */
static bool buf_add(char **buf, size_t *len, size_t *cap, size_t max, const char *p, size_t n)
{
        if (n > max - *len)
                return false;
        if (*len + n > *cap) {
                size_t c = *cap ? *cap : 4096;
                char *b;

                while (c < *len + n)
                        c = c > max / 2 ? max : c * 2;
                b = clua_ext_realloc(*buf, c);
                if (!b)
                        return false;
                *buf = b;
                *cap = c;
        }
        memcpy(*buf + *len, p, n);
        *len += n;
        return true;
}

static size_t http_on_body(char *p, size_t size, size_t n, void *userdata)
{
        NetHttp *r = userdata;

        if (!buf_add(&r->resp, &r->resp_len, &r->resp_cap, r->max_body, p, n)) {
                r->too_large = true;
                return 0; /* CURLE_WRITE_ERROR */
        }
        (void)size;
        return n;
}

static size_t http_on_header(char *p, size_t size, size_t n, void *userdata)
{
        NetHttp *r = userdata;

        (void)size;
        /* A status line starts a response (an interim 1xx one came first). */
        if (n >= 5 && memcmp(p, "HTTP/", 5) == 0)
                r->hdr_len = 0;
        if (!buf_add(&r->hdr, &r->hdr_len, &r->hdr_cap, HTTP_HEADERS_MAX, p, n)) {
                r->hdr_too_large = true;
                return 0;
        }
        return n;
}

static void http_on_fd(CLuaFdWatch *w, uint32_t ev)
{
        NetHttp *r = w->userdata;

        xfer_seen(&r->x, w, ev);
        clua_io_wake(&r->wait);
}

static void http_on_timer(void *data)
{
        NetHttp *r = data;

        r->x.got_timeout = true;
        clua_io_wake(&r->wait);
}

static int http_socket_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
        NetHttp *r = userp;

        (void)e;
        (void)socketp;
        return r->closing ? 0 : xfer_socket(&r->x, &r->watch, s, what);
}

static int http_timer_cb(CURLM *m, long timeout_ms, void *userp)
{
        NetHttp *r = userp;

        (void)m;
        return r->closing ? 0 : xfer_timer(&r->x, r->app, &r->timer, timeout_ms, http_on_timer, r);
}

/* libcurl's socket is the broker's: no socket of its own, no connect. */
static curl_socket_t http_open_socket(void *userp, curlsocktype purpose, struct curl_sockaddr *a)
{
        NetHttp *r = userp;
        int fd = r->fd;

        (void)a;
        if (purpose != CURLSOCKTYPE_IPCXN || fd < 0)
                return CURL_SOCKET_BAD;
        r->fd = -1;
        preconnected_fd = fd;
        return fd;
}

static int http_sockopt(void *userp, curl_socket_t fd, curlsocktype purpose)
{
        (void)userp;
        (void)fd;
        (void)purpose;
        return CURL_SOCKOPT_ALREADY_CONNECTED;
}

static int http_close_socket(void *userp, curl_socket_t fd)
{
        NetHttp *r = userp;

        if (r->watch.fd == fd)
                clua_fd_watch_stop(&r->watch);
        return close(fd);
}

#define SETOPT(o, v)                                                                               \
        do {                                                                                       \
                if (curl_easy_setopt(r->easy, o, v) != CURLE_OK)                                   \
                        goto fail;                                                                 \
        } while (0)

/* Sets up the hop's transfer over r->fd. Returns 0 or -ENOMEM / -EIO. */
static int http_hop_setup(NetHttp *r)
{
        char entry[NET_HOST_MAX + 96];
        uint64_t now = now_monotonic_ns();
        long left_ms = r->deadline_ns > now ? (long)((r->deadline_ns - now) / 1000000u) : 1;

        r->multi = curl_multi_init();
        r->easy = curl_easy_init();
        if (!r->multi || !r->easy)
                return -ENOMEM;
        r->errbuf[0] = 0;
        SETOPT(CURLOPT_URL, r->url);
        SETOPT(CURLOPT_ERRORBUFFER, r->errbuf);
        SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
        SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
        /* The environment's HTTP_PROXY & co. (the per-app proxy's) are not for
         * this: the connection is the broker's already. */
        SETOPT(CURLOPT_PROXY, "");
        SETOPT(CURLOPT_NOPROXY, "*");
        SETOPT(CURLOPT_OPENSOCKETFUNCTION, http_open_socket);
        SETOPT(CURLOPT_OPENSOCKETDATA, r);
        SETOPT(CURLOPT_SOCKOPTFUNCTION, http_sockopt);
        SETOPT(CURLOPT_SOCKOPTDATA, r);
        SETOPT(CURLOPT_CLOSESOCKETFUNCTION, http_close_socket);
        SETOPT(CURLOPT_CLOSESOCKETDATA, r);
        SETOPT(CURLOPT_TCP_NODELAY, 0L); /* an AF_UNIX socket: no TCP options */
        SETOPT(CURLOPT_FORBID_REUSE, 1L);
        SETOPT(CURLOPT_FRESH_CONNECT, 1L);
        SETOPT(CURLOPT_NOSIGNAL, 1L);
        SETOPT(CURLOPT_TIMEOUT_MS, left_ms > 0 ? left_ms : 1L);
        SETOPT(CURLOPT_WRITEFUNCTION, http_on_body);
        SETOPT(CURLOPT_WRITEDATA, r);
        SETOPT(CURLOPT_HEADERFUNCTION, http_on_header);
        SETOPT(CURLOPT_HEADERDATA, r);
        SETOPT(CURLOPT_ACCEPT_ENCODING, "");
        /* One read per readiness (libcurl's default 16 KiB made a task switch per
         * 16 KiB of a bulk body). */
        SETOPT(CURLOPT_BUFFERSIZE, 256L * 1024L);
        if (getenv("CELLA_NET_DEBUG"))
                SETOPT(CURLOPT_VERBOSE, 1L);
        SETOPT(CURLOPT_SSL_VERIFYPEER, 1L);
        SETOPT(CURLOPT_SSL_VERIFYHOST, 2L);
        if (r->ca_pem) {
                struct curl_blob blob = {
                        .data = (void *)r->ca_pem, .len = r->ca_len, .flags = CURL_BLOB_COPY};

                SETOPT(CURLOPT_CAINFO_BLOB, &blob);
        }
        /* The vetted address for the URL's name: libcurl resolves nothing (a
         * literal address needs no entry). */
        if (r->target.host[0] != '[' && !strchr(r->target.host, ':')) {
                bool v6 = strchr(r->address, ':') != NULL;

                snprintf(entry, sizeof entry, "%s:%u:%s%s%s", r->target.host, r->target.port,
                         v6 ? "[" : "", r->address, v6 ? "]" : "");
                r->resolve = curl_slist_append(NULL, entry);
                if (!r->resolve)
                        return -ENOMEM;
                SETOPT(CURLOPT_RESOLVE, r->resolve);
        }
        if (r->headers)
                SETOPT(CURLOPT_HTTPHEADER, r->headers);
        if (strcmp(r->method, "HEAD") == 0)
                SETOPT(CURLOPT_NOBODY, 1L);
        else if (r->has_body) {
                SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
                SETOPT(CURLOPT_POSTFIELDS, r->body);
                if (strcmp(r->method, "POST") != 0)
                        SETOPT(CURLOPT_CUSTOMREQUEST, r->method);
        } else if (strcmp(r->method, "GET") != 0)
                SETOPT(CURLOPT_CUSTOMREQUEST, r->method);
        if (curl_multi_setopt(r->multi, CURLMOPT_SOCKETFUNCTION, http_socket_cb) != CURLM_OK ||
            curl_multi_setopt(r->multi, CURLMOPT_SOCKETDATA, r) != CURLM_OK ||
            curl_multi_setopt(r->multi, CURLMOPT_TIMERFUNCTION, http_timer_cb) != CURLM_OK ||
            curl_multi_setopt(r->multi, CURLMOPT_TIMERDATA, r) != CURLM_OK)
                return -EIO;
        r->resp_len = 0;
        r->hdr_len = 0;
        r->too_large = false;
        r->hdr_too_large = false;
        xfer_init(&r->x);
        if (curl_multi_add_handle(r->multi, r->easy) != CURLM_OK)
                return -EIO;
        return 0;
fail:
        return -EIO;
}

#undef SETOPT

static int http_hop(lua_State *L, NetHttp *r);

/* Pushes the response headers as a table: lower-case names, repeated fields
 * joined with ", " (RFC 9110 5.3). */
static void push_headers(lua_State *L, NetHttp *r)
{
        const char *p = r->hdr, *end = r->hdr + r->hdr_len;
        luaL_Buffer b;

        lua_newtable(L);
        while (p < end) {
                const char *eol = memchr(p, '\n', (size_t)(end - p));
                const char *line = p, *colon, *v, *ve;

                eol = eol ?: end;
                p = eol + 1;
                colon = memchr(line, ':', (size_t)(eol - line));
                if (!colon || !net_header_name_ok(line, (size_t)(colon - line)))
                        continue; /* the status line, the blank line */
                v = colon + 1;
                ve = eol;
                while (v < ve && (*v == ' ' || *v == '\t'))
                        v++;
                while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                        ve--;
                luaL_buffinit(L, &b);
                for (const char *c = line; c < colon; c++)
                        luaL_addchar(&b, (char)(*c >= 'A' && *c <= 'Z' ? *c - 'A' + 'a' : *c));
                luaL_pushresult(&b);
                lua_pushvalue(L, -1);
                if (lua_rawget(L, -3) == LUA_TSTRING) {
                        lua_pushliteral(L, ", ");
                        lua_pushlstring(L, v, (size_t)(ve - v));
                        lua_concat(L, 3);
                } else {
                        lua_pop(L, 1);
                        lua_pushlstring(L, v, (size_t)(ve - v));
                }
                lua_rawset(L, -3);
        }
}

/* The value of response header name (lower-case) in the headers table on top,
 * or NULL. */
static const char *header_of(lua_State *L, const char *name)
{
        const char *v;

        lua_getfield(L, -1, name);
        v = lua_tostring(L, -1);
        lua_pop(L, 1); /* the table keeps it */
        return v;
}

/* The hop ended: the result, or the next hop. */
static int http_done_k(lua_State *L, int status, lua_KContext ctx)
{
        NetHttp *r = luaL_checkudata(L, 2, HTTP_MT);
        long code = 0;
        const char *loc;

        (void)ctx;
        if (status == LUA_YIELD)
                (void)clua_io_resumed(L, &r->wait);
        xfer_run(&r->x, r->multi, &r->watch);
        if (!r->x.done)
                return clua_io_wait(L, &r->wait, 0, http_done_k, 0);
        if (r->x.result != CURLE_OK) {
                CURLcode rc = r->x.result;
                char msg[CURL_ERROR_SIZE + 64];

                snprintf(msg, sizeof msg, "%s", r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc));
                http_hop_end(r);
                if (r->hdr_too_large)
                        return luaL_error(L,
                                          "cella.net.http: %s: response headers larger than "
                                          "%d bytes",
                                          r->url, (int)HTTP_HEADERS_MAX);
                if (r->too_large)
                        return luaL_error(L,
                                          "cella.net.http: %s: response larger than %d bytes "
                                          "(max_body) or than the app's memory allows",
                                          r->url, (int)r->max_body);
                if (rc == CURLE_OPERATION_TIMEDOUT)
                        return luaL_error(L, "cella.net.http: %s: timed out (timeout_ms)", r->url);
                return luaL_error(L, "cella.net.http: %s: %s", r->url, msg);
        }
        (void)curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
        http_hop_end(r);
        lua_settop(L, 2);
        push_headers(L, r);
        loc = header_of(L, "location");
        if (net_is_redirect(code) && loc && r->max_redirects > 0) {
                NetTarget old = r->target;
                bool keep_body;
                char *next = NULL;
                int e;

                if (r->hops >= r->max_redirects)
                        return luaL_error(L,
                                          "cella.net.http: %s: more than %d redirects "
                                          "(max_redirects)",
                                          r->url, r->max_redirects);
                e = net_url_resolve(r->url, loc, &next);
                if (e < 0)
                        return luaL_error(L,
                                          "cella.net.http: %s: redirect to a bad location "
                                          "'%s': %s",
                                          r->url, loc,
                                          e == -EPROTONOSUPPORT ? "not http or https"
                                                                : strerror(-e));
                free(r->url);
                r->url = next;
                if (net_url_target(r->url, NET_SCHEME_HTTP | NET_SCHEME_HTTPS, &r->target, NULL) <
                    0)
                        return luaL_error(L, "cella.net.http: bad redirect URL %s", r->url);
                {
                        const char *m = net_redirect_method(code, r->method, &keep_body);

                        if (m != r->method) /* a static string, or the method itself */
                                snprintf(r->method, sizeof r->method, "%s", m);
                }
                if (!keep_body)
                        r->has_body = false;
                /* Credentials stay with their origin (as curl without
                 * CURLOPT_UNRESTRICTED_AUTH, and browsers). */
                if (!net_same_origin(&old, &r->target)) {
                        struct curl_slist *kept = NULL;

                        for (struct curl_slist *h = r->headers; h; h = h->next) {
                                if (strncasecmp(h->data, "authorization:", 14) == 0 ||
                                    strncasecmp(h->data, "cookie:", 7) == 0 ||
                                    strncasecmp(h->data, "proxy-authorization:", 20) == 0)
                                        continue;
                                struct curl_slist *n = curl_slist_append(kept, h->data);

                                if (!n) {
                                        curl_slist_free_all(kept);
                                        return clua_doom(L, CLUA_MEMORY);
                                }
                                kept = n;
                        }
                        curl_slist_free_all(r->headers);
                        r->headers = kept;
                }
                r->hops++;
                lua_settop(L, 2);
                return http_hop(L, r);
        }
        lua_createtable(L, 0, 5);
        lua_pushinteger(L, code);
        lua_setfield(L, -2, "status");
        lua_pushvalue(L, -2);
        lua_setfield(L, -2, "headers");
        lua_pushlstring(L, r->resp ? r->resp : "", r->resp_len);
        lua_setfield(L, -2, "body");
        lua_pushstring(L, r->url);
        lua_setfield(L, -2, "url");
        lua_pushstring(L, r->address);
        lua_setfield(L, -2, "address");
        clua_ext_free(r->resp);
        clua_ext_free(r->hdr);
        r->resp = r->hdr = NULL;
        r->resp_len = r->resp_cap = r->hdr_len = r->hdr_cap = 0;
        return 1;
}

/* decode of a hop's net.connect: takes the socket into the request (index 2). */
static int decode_http_connect(lua_State *L, CellaReply *reply)
{
        NetHttp *r = luaL_checkudata(L, 2, HTTP_MT);

        r->fd = connect_take(L, r->hops ? "cella.net.http: redirect" : "cella.net.http",
                             r->target.host, (int)r->target.port, reply, r->address,
                             sizeof r->address, NULL, 0);
        return 0;
}

static int http_connected_k(lua_State *L, int status, lua_KContext ctx)
{
        NetHttp *r = luaL_checkudata(L, 2, HTTP_MT);
        int e;

        (void)status;
        (void)ctx;
        if (now_monotonic_ns() >= r->deadline_ns)
                return luaL_error(L, "cella.net.http: %s: timed out (timeout_ms)", r->url);
        e = http_hop_setup(r);
        if (e < 0) {
                http_hop_end(r);
                if (e == -ENOMEM)
                        return clua_doom(L, CLUA_MEMORY);
                return luaL_error(L, "cella.net.http: %s: cannot set up the transfer", r->url);
        }
        return http_done_k(L, LUA_OK, 0);
}

static int http_hop(lua_State *L, NetHttp *r)
{
        Cella__V1__NetConnectRequest req = CELLA__V1__NET_CONNECT_REQUEST__INIT;

        req.host = r->target.host;
        req.port = r->target.port;
        req.proto = CELLA__V1__NET_PROTO__NET_PROTO_TCP;
        return clua_kernel_call_k(L, "cella.net.http", NET_CONNECT_OP, &req.base,
                                  decode_http_connect, http_connected_k, 0);
}

/* Reads the request's options (table at index 1) into r. */
static void http_options(lua_State *L, NetHttp *r)
{
        const char *s;
        size_t len;
        int e;

        if (lua_getfield(L, 1, "url") != LUA_TSTRING)
                luaL_error(L, "cella.net.http.request: url must be a string");
        s = lua_tolstring(L, -1, &len);
        if (strlen(s) != len)
                luaL_error(L, "cella.net.http.request: url contains a NUL byte");
        e = net_url_target(s, NET_SCHEME_HTTP | NET_SCHEME_HTTPS, &r->target, &r->url);
        if (e == -ENOMEM)
                clua_doom(L, CLUA_MEMORY);
        if (e < 0)
                luaL_error(L, "cella.net.http.request: %s: %s", s,
                           e == -EPROTONOSUPPORT ? "not an http or https URL" : "not a URL");
        lua_pop(L, 1);

        snprintf(r->method, sizeof r->method, "GET");
        if (lua_getfield(L, 1, "method") != LUA_TNIL) {
                s = lua_tolstring(L, -1, &len);
                if (!s || !net_method_ok(s, len))
                        luaL_error(L, "cella.net.http.request: method must be an upper-case "
                                      "token of 1..16 bytes (\"GET\", \"POST\")");
                memcpy(r->method, s, len + 1);
        }
        lua_pop(L, 1);

        if (lua_getfield(L, 1, "body") != LUA_TNIL) {
                if (lua_type(L, -1) != LUA_TSTRING)
                        luaL_error(L, "cella.net.http.request: body must be a string");
                r->body = lua_tolstring(L, -1, &r->body_len);
                r->has_body = true;
                /* The request keeps the string alive for libcurl, whatever the
                 * options table becomes meanwhile. */
                lua_pushvalue(L, -1);
                lua_setiuservalue(L, 2, 1);
        }
        lua_pop(L, 1);
        if (r->has_body && (strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0))
                luaL_error(L, "cella.net.http.request: a %s request has no body", r->method);

        if (lua_getfield(L, 1, "ca_pem") != LUA_TNIL) {
                if (lua_type(L, -1) != LUA_TSTRING)
                        luaL_error(L, "cella.net.http.request: ca_pem must be a string (PEM "
                                      "certificates)");
                r->ca_pem = lua_tolstring(L, -1, &r->ca_len);
                lua_pushvalue(L, -1);
                lua_setiuservalue(L, 2, 2);
        }
        lua_pop(L, 1);

        r->deadline_ns =
                now_monotonic_ns() + opt_timeout_ms(L, 1, "timeout_ms", NET_TIMEOUT_DEFAULT_MS);
        r->max_redirects =
                (int)opt_int(L, 1, "max_redirects", HTTP_REDIRECTS_DEFAULT, 0, HTTP_REDIRECTS_MAX);
        r->max_body = (size_t)opt_int(L, 1, "max_body", HTTP_BODY_DEFAULT, 0, HTTP_BODY_MAX);

        if (lua_getfield(L, 1, "headers") != LUA_TNIL) {
                int n = 0;

                if (!lua_istable(L, -1))
                        luaL_error(L, "cella.net.http.request: headers must be a table");
                lua_pushnil(L);
                while (lua_next(L, -2)) {
                        size_t nl, vl;
                        const char *name, *value;
                        struct curl_slist *h;
                        luaL_Buffer b;

                        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                                luaL_error(L, "cella.net.http.request: headers: names and "
                                              "values must be strings");
                        name = lua_tolstring(L, -2, &nl);
                        value = lua_tolstring(L, -1, &vl);
                        if (!net_header_name_ok(name, nl))
                                luaL_error(L, "cella.net.http.request: headers: bad name '%s'",
                                           name);
                        if (!net_header_value_ok(value, vl))
                                luaL_error(L,
                                           "cella.net.http.request: headers: the value of "
                                           "%s has CR, LF or NUL, or is longer than 8 KiB",
                                           name);
                        if (++n > HTTP_REQ_HEADERS_MAX)
                                luaL_error(L, "cella.net.http.request: more than %d headers",
                                           HTTP_REQ_HEADERS_MAX);
                        luaL_buffinit(L, &b);
                        luaL_addlstring(&b, name, nl);
                        /* "Name;" sends an empty value (curl_slist's rule). */
                        luaL_addstring(&b, vl ? ": " : ";");
                        luaL_addlstring(&b, value, vl);
                        luaL_pushresult(&b);
                        h = curl_slist_append(r->headers, lua_tostring(L, -1));
                        if (!h)
                                clua_doom(L, CLUA_MEMORY);
                        r->headers = h;
                        lua_pop(L, 2);
                }
        }
        lua_pop(L, 1);
        /* No "Expect: 100-continue" round trip before a large body. */
        if (r->has_body) {
                struct curl_slist *h = curl_slist_append(r->headers, "Expect:");

                if (!h)
                        clua_doom(L, CLUA_MEMORY);
                r->headers = h;
        }
}

/* http.request(opts) -> {status, headers, body, url, address} */
static int http_request(lua_State *L)
{
        NetHttp *r;

        luaL_checktype(L, 1, LUA_TTABLE);
        lua_settop(L, 1);
        if (clua_net_global_init() < 0)
                return luaL_error(L, "cella.net.http: libcurl failed to initialize");
        r = lua_newuserdatauv(L, sizeof(*r), 2);
        memset(r, 0, sizeof(*r));
        xfer_init(&r->x);
        r->fd = -1;
        r->watch.fd = -1;
        luaL_setmetatable(L, HTTP_MT);
        r->app = clua_app_of(L);
        r->watch.app = r->app;
        r->watch.cb = http_on_fd;
        r->watch.userdata = r;
        http_options(L, r);
        lua_settop(L, 2);
        return http_hop(L, r);
}

/* http.get(url[, opts]) */
static int http_get(lua_State *L)
{
        const char *url = luaL_checkstring(L, 1);

        if (lua_isnoneornil(L, 2))
                lua_newtable(L);
        else {
                luaL_checktype(L, 2, LUA_TTABLE);
                lua_pushvalue(L, 2);
        }
        lua_pushstring(L, url);
        lua_setfield(L, -2, "url");
        lua_pushliteral(L, "GET");
        lua_setfield(L, -2, "method");
        lua_replace(L, 1);
        lua_settop(L, 1);
        return http_request(L);
}

/* http.post(url, body[, opts]) */
static int http_post(lua_State *L)
{
        const char *url = luaL_checkstring(L, 1);

        luaL_checkstring(L, 2);
        if (lua_isnoneornil(L, 3))
                lua_newtable(L);
        else {
                luaL_checktype(L, 3, LUA_TTABLE);
                lua_pushvalue(L, 3);
        }
        lua_pushstring(L, url);
        lua_setfield(L, -2, "url");
        lua_pushvalue(L, 2);
        lua_setfield(L, -2, "body");
        lua_pushliteral(L, "POST");
        lua_setfield(L, -2, "method");
        lua_replace(L, 1);
        lua_settop(L, 1);
        return http_request(L);
}

/* ---- cella.net.websocket ------------------------------------------------------- */

/*
 * A WebSocket client (RFC 6455): libcurl connects over the broker's socket
 * (CURLOPT_CONNECT_ONLY: TCP, and TLS for wss, verified as http's) and then carries
 * bytes (curl_easy_send/recv); cella writes the opening handshake and checks the
 * answer (netutil.c); wslay (Debian's libwslay) does the framing: masking, control
 * frames, fragments, answering pings.
 */

#define WS_MT              "cella.net.websocket"
#define WS_MESSAGE_DEFAULT (1024u * 1024u)
#define WS_MESSAGE_MAX     (16u * 1024u * 1024u)
#define WS_HEAD_MAX        16384u
#define WS_QUEUE_MAX       4096u

typedef enum WsPhase {
        WS_CONNECTING, /* libcurl connects (TLS) */
        WS_HANDSHAKE,  /* the opening handshake is written and read */
        WS_OPEN,
        WS_CLOSED,
} WsPhase;

typedef struct WsMsg {
        struct WsMsg *next;
        uint8_t opcode;
        size_t len;
        char data[];
} WsMsg;

typedef struct NetWs {
        CLuaApp *app;
        CURLM *multi;
        CURL *easy;
        struct curl_slist *resolve;
        CLuaFdWatch watch;
        CLuaTimer *timer;
        CLuaWait *rwait, *wwait;
        int fd;   /* the broker's socket until libcurl takes it */
        int sock; /* libcurl's socket once connected */
        WsPhase phase;
        CurlXfer x; /* the connect */
        bool closing, eof, failed;
        NetTarget target;
        char *url;
        char address[64];
        const char *ca_pem;
        size_t ca_len;
        uint64_t timeout_ns, deadline_ns;
        size_t max_message;
        char *out; /* the handshake request (clua_ext_*) */
        size_t out_len, out_off;
        char *in; /* the handshake answer, then bytes after it for wslay */
        size_t in_len, in_cap, in_off;
        char accept[29];
        wslay_event_context_ptr ctx;
        WsMsg *head, *tail;
        unsigned n_msgs;
        int close_code;
        char close_reason[124];
        /* Bytes of the app's memory cap held for wslay's own buffers (its malloc's,
         * not counted by the allocator): a message being reassembled and one
         * being sent, max_message each. */
        size_t reserved;
        char errmsg[CURL_ERROR_SIZE];
} NetWs;

static void ws_watch(NetWs *w, uint32_t want)
{
        uint32_t ev = want;

        if (w->sock < 0)
                return;
        if (w->rwait && !w->rwait->done)
                ev |= EPOLLIN | EPOLLRDHUP;
        if (w->wwait && !w->wwait->done)
                ev |= EPOLLOUT;
        (void)clua_fd_watch_set(&w->watch, w->sock, ev);
}

static void ws_on_fd(CLuaFdWatch *fw, uint32_t ev)
{
        NetWs *w = fw->userdata;

        if (w->closing)
                return;
        if (w->phase == WS_CONNECTING) {
                xfer_seen(&w->x, fw, ev);
                clua_io_wake(&w->rwait);
                return;
        }
        if (ev & (EPOLLIN | EPOLLERR | EPOLLHUP | EPOLLRDHUP))
                clua_io_wake(&w->rwait);
        if (ev & (EPOLLOUT | EPOLLERR | EPOLLHUP))
                clua_io_wake(&w->wwait);
        ws_watch(w, 0);
}

static void ws_on_timer(void *data)
{
        NetWs *w = data;

        w->x.got_timeout = true;
        clua_io_wake(&w->rwait);
}

static int ws_socket_cb(CURL *e, curl_socket_t s, int what, void *userp, void *socketp)
{
        NetWs *w = userp;

        (void)e;
        (void)socketp;
        if (w->closing || w->phase != WS_CONNECTING)
                return 0;
        return xfer_socket(&w->x, &w->watch, s, what);
}

static int ws_timer_cb(CURLM *m, long timeout_ms, void *userp)
{
        NetWs *w = userp;

        (void)m;
        if (w->closing || w->phase != WS_CONNECTING)
                return 0;
        return xfer_timer(&w->x, w->app, &w->timer, timeout_ms, ws_on_timer, w);
}

static curl_socket_t ws_open_socket(void *userp, curlsocktype purpose, struct curl_sockaddr *a)
{
        NetWs *w = userp;
        int fd = w->fd;

        (void)a;
        if (purpose != CURLSOCKTYPE_IPCXN || fd < 0)
                return CURL_SOCKET_BAD;
        w->fd = -1;
        preconnected_fd = fd;
        return fd;
}

static int ws_close_socket(void *userp, curl_socket_t fd)
{
        NetWs *w = userp;

        if (w->watch.fd == fd)
                clua_fd_watch_stop(&w->watch);
        if (w->sock == fd)
                w->sock = -1;
        return close(fd);
}

static void ws_free_msgs(NetWs *w)
{
        while (w->head) {
                WsMsg *m = w->head;

                w->head = m->next;
                clua_ext_free(m);
        }
        w->tail = NULL;
        w->n_msgs = 0;
}

/* Ends the connection: wslay's context, libcurl's handles (closing the socket). */
static void ws_end(NetWs *w)
{
        preconnected_fd = -1;
        w->closing = true;
        clua_timer_remove_cb(w->app, &w->timer);
        if (w->ctx)
                wslay_event_context_free(w->ctx);
        w->ctx = NULL;
        clua_fd_watch_stop(&w->watch);
        if (w->multi && w->easy)
                curl_multi_remove_handle(w->multi, w->easy);
        if (w->easy)
                curl_easy_cleanup(w->easy);
        if (w->multi)
                curl_multi_cleanup(w->multi);
        w->easy = NULL;
        w->multi = NULL;
        w->sock = -1;
        if (w->fd >= 0)
                close(w->fd);
        w->fd = -1;
        curl_slist_free_all(w->resolve);
        w->resolve = NULL;
        w->phase = WS_CLOSED;
        w->closing = false;
        /* wslay's buffers went with its context */
        w->app->alloc.used -= w->reserved;
        w->reserved = 0;
        clua_io_wake(&w->rwait);
        clua_io_wake(&w->wwait);
}

static int ws_gc(lua_State *L)
{
        NetWs *w = luaL_checkudata(L, 1, WS_MT);

        if (!w->app)
                return 0;
        ws_end(w);
        w->closing = true;
        ws_free_msgs(w);
        free(w->url);
        w->url = NULL;
        clua_ext_free(w->out);
        clua_ext_free(w->in);
        w->out = w->in = NULL;
        w->app = NULL;
        return 0;
}

/* ---- wslay's callbacks: bytes through libcurl ---- */

static ssize_t ws_recv_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags,
                          void *user)
{
        NetWs *w = user;
        size_t n = 0;
        CURLcode rc;

        (void)flags;
        if (w->in_off < w->in_len) {
                n = w->in_len - w->in_off < len ? w->in_len - w->in_off : len;
                memcpy(buf, w->in + w->in_off, n);
                w->in_off += n;
                return (ssize_t)n;
        }
        rc = curl_easy_recv(w->easy, buf, len, &n);
        if (rc == CURLE_AGAIN) {
                wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
                return -1;
        }
        if (rc != CURLE_OK || n == 0) {
                if (rc != CURLE_OK) {
                        w->failed = true;
                        snprintf(w->errmsg, sizeof w->errmsg, "%s", curl_easy_strerror(rc));
                } else
                        w->eof = true;
                wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
                return -1;
        }
        return (ssize_t)n;
}

static ssize_t ws_send_cb(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags,
                          void *user)
{
        NetWs *w = user;
        size_t n = 0;
        CURLcode rc;

        (void)flags;
        rc = curl_easy_send(w->easy, data, len, &n);
        if (rc == CURLE_AGAIN) {
                wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
                return -1;
        }
        if (rc != CURLE_OK) {
                w->failed = true;
                snprintf(w->errmsg, sizeof w->errmsg, "%s", curl_easy_strerror(rc));
                wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
                return -1;
        }
        return (ssize_t)n;
}

static int ws_genmask_cb(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
        (void)ctx;
        (void)user;
        /* RFC 6455 5.3: an unpredictable masking key per frame. */
        return RAND_bytes(buf, (int)len) == 1 ? 0 : -1;
}

static void ws_on_msg_cb(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *a,
                         void *user)
{
        NetWs *w = user;
        WsMsg *m;

        (void)ctx;
        if (a->opcode == WSLAY_CONNECTION_CLOSE) {
                size_t n = a->msg_length > 2 ? a->msg_length - 2 : 0;

                w->close_code = a->status_code ? a->status_code : 1005;
                if (n >= sizeof w->close_reason)
                        n = sizeof w->close_reason - 1;
                if (n)
                        memcpy(w->close_reason, a->msg + 2, n);
                w->close_reason[n] = 0;
                return;
        }
        if (a->opcode != WSLAY_TEXT_FRAME && a->opcode != WSLAY_BINARY_FRAME)
                return; /* pongs; pings were answered by wslay */
        if (w->n_msgs >= WS_QUEUE_MAX || (a->opcode == WSLAY_TEXT_FRAME &&
                                          !net_utf8_valid((const char *)a->msg, a->msg_length))) {
                /* RFC 6455 7.4.1: 1007 for text that is not UTF-8; 1008 (policy)
                 * for a peer that floods the queue. */
                (void)wslay_event_queue_close(ctx, w->n_msgs >= WS_QUEUE_MAX ? 1008 : 1007, NULL,
                                              0);
                return;
        }
        m = clua_ext_malloc(sizeof(*m) + a->msg_length);
        if (!m) {
                (void)wslay_event_queue_close(ctx, 1009, NULL, 0); /* too big for us */
                return;
        }
        m->next = NULL;
        m->opcode = a->opcode;
        m->len = a->msg_length;
        if (a->msg_length)
                memcpy(m->data, a->msg, a->msg_length);
        if (w->tail)
                w->tail->next = m;
        else
                w->head = m;
        w->tail = m;
        w->n_msgs++;
}

/* Moves what can move: reads what the socket holds (messages queue up), writes
 * what wslay has queued (pongs, closes, sends). A fatal error closes. */
static void ws_pump(NetWs *w)
{
        if (!w->ctx || w->phase != WS_OPEN)
                return;
        if (wslay_event_want_read(w->ctx) && wslay_event_recv(w->ctx) < 0)
                w->eof = true;
        if (wslay_event_want_write(w->ctx) && wslay_event_send(w->ctx) < 0)
                w->eof = true;
        if (w->eof || (!wslay_event_want_read(w->ctx) && !wslay_event_want_write(w->ctx)))
                ws_end(w);
}

static NetWs *check_ws(lua_State *L, int i)
{
        return luaL_checkudata(L, i, WS_MT);
}

/* Raises the error a closed connection's call gets. */
static int ws_closed_error(lua_State *L, NetWs *w, const char *fn)
{
        if (w->failed)
                return luaL_error(L, "cella.net.websocket: %s: the connection failed: %s", fn,
                                  w->errmsg);
        return luaL_error(L, "cella.net.websocket: %s: the connection is closed", fn);
}

/* ws:receive() -> data, "text" | "binary"; or nil, close code, reason once closed */
static int ws_receive_k(lua_State *L, int status, lua_KContext ctx)
{
        NetWs *w = check_ws(L, 1);
        bool timed_out = false;

        (void)ctx;
        if (status == LUA_YIELD)
                timed_out = clua_io_resumed(L, &w->rwait);
        else if (w->rwait)
                return luaL_error(L, "cella.net.websocket: receive: another task is receiving");
        for (;;) {
                if (w->head) {
                        WsMsg *m = w->head;

                        lua_pushlstring(L, m->data, m->len);
                        lua_pushstring(L, m->opcode == WSLAY_TEXT_FRAME ? "text" : "binary");
                        w->head = m->next;
                        if (!w->head)
                                w->tail = NULL;
                        w->n_msgs--;
                        clua_ext_free(m);
                        return 2;
                }
                if (w->phase != WS_OPEN) {
                        if (w->failed)
                                return ws_closed_error(L, w, "receive");
                        lua_pushnil(L);
                        lua_pushinteger(L, w->close_code ? w->close_code : 1006);
                        lua_pushstring(L, w->close_reason);
                        return 3;
                }
                if (timed_out)
                        return luaL_error(L, "cella.net.websocket: receive: timed out after %d ms",
                                          (int)(w->timeout_ns / 1000000u));
                ws_pump(w);
                if (w->head || w->phase != WS_OPEN)
                        continue;
                ws_watch(w, EPOLLIN | EPOLLRDHUP | (wslay_event_want_write(w->ctx) ? EPOLLOUT : 0));
                return clua_io_wait(L, &w->rwait, w->timeout_ns, ws_receive_k, 0);
        }
}

static int ws_receive(lua_State *L)
{
        check_ws(L, 1);
        lua_settop(L, 1);
        return ws_receive_k(L, LUA_OK, 0);
}

/* Waits until wslay's queue is written (send, ping, close). */
static int ws_flush_k(lua_State *L, int status, lua_KContext ctx)
{
        NetWs *w = check_ws(L, 1);

        if (status == LUA_YIELD && clua_io_resumed(L, &w->wwait) && w->phase == WS_OPEN &&
            wslay_event_want_write(w->ctx))
                return luaL_error(L, "cella.net.websocket: send: timed out after %d ms",
                                  (int)(w->timeout_ns / 1000000u));
        for (;;) {
                if (w->phase != WS_OPEN)
                        return ctx ? 0 : ws_closed_error(L, w, "send");
                if (!wslay_event_want_write(w->ctx))
                        return 0;
                if (wslay_event_send(w->ctx) < 0) {
                        ws_end(w);
                        continue;
                }
                if (!wslay_event_want_write(w->ctx))
                        return 0;
                ws_watch(w, EPOLLOUT);
                return clua_io_wait(L, &w->wwait, w->timeout_ns, ws_flush_k, ctx);
        }
}

static int ws_queue(lua_State *L, NetWs *w, uint8_t opcode, const char *s, size_t len)
{
        struct wslay_event_msg m = {.opcode = opcode, .msg = (const uint8_t *)s, .msg_length = len};
        int r;

        if (w->phase != WS_OPEN)
                return ws_closed_error(L, w, "send");
        if (w->wwait)
                return luaL_error(L, "cella.net.websocket: send: another task is sending");
        r = wslay_event_queue_msg(w->ctx, &m);
        if (r == WSLAY_ERR_NOMEM)
                return clua_doom(L, CLUA_MEMORY);
        if (r < 0)
                return luaL_error(L, "cella.net.websocket: send: the connection is closing");
        return 0;
}

/* ws:send(data[, "text" | "binary"]) — text (the default) must be UTF-8 */
static int ws_send(lua_State *L)
{
        static const char *const kinds[] = {"text", "binary", NULL};
        NetWs *w = check_ws(L, 1);
        size_t len;
        const char *s = luaL_checklstring(L, 2, &len);
        int kind = luaL_checkoption(L, 3, "text", kinds);

        luaL_argcheck(L, len <= w->max_message, 2, "message larger than max_message");
        luaL_argcheck(L, kind == 1 || net_utf8_valid(s, len), 2,
                      "text is not UTF-8 (send it as \"binary\")");
        lua_settop(L, 1);
        ws_queue(L, w, kind == 0 ? WSLAY_TEXT_FRAME : WSLAY_BINARY_FRAME, s, len);
        return ws_flush_k(L, LUA_OK, 0);
}

/* ws:ping([data]) — the pong comes back through wslay (not returned by receive) */
static int ws_ping(lua_State *L)
{
        NetWs *w = check_ws(L, 1);
        size_t len = 0;
        const char *s = luaL_optlstring(L, 2, "", &len);

        luaL_argcheck(L, len <= 125, 2, "ping data longer than 125 bytes (RFC 6455 5.5)");
        lua_settop(L, 1);
        ws_queue(L, w, WSLAY_PING, s, len);
        return ws_flush_k(L, LUA_OK, 0);
}

/* After close's frame went out: waits for the peer's (what it sends before is
 * dropped), then ends the connection. */
static int ws_close_k(lua_State *L, int status, lua_KContext ctx)
{
        NetWs *w = check_ws(L, 1);
        bool timed_out = false;

        (void)ctx;
        if (status == LUA_YIELD)
                timed_out = clua_io_resumed(L, &w->rwait);
        for (;;) {
                ws_free_msgs(w);
                if (w->phase != WS_OPEN || timed_out || wslay_event_get_close_received(w->ctx)) {
                        bool clean = w->phase == WS_OPEN ? wslay_event_get_close_received(w->ctx)
                                                         : w->close_code != 0;

                        ws_end(w);
                        lua_pushboolean(L, clean);
                        return 1;
                }
                ws_pump(w);
                if (w->phase != WS_OPEN)
                        continue;
                if (wslay_event_get_close_received(w->ctx))
                        continue;
                ws_watch(w, EPOLLIN | EPOLLRDHUP);
                return clua_io_wait(L, &w->rwait, w->timeout_ns, ws_close_k, 0);
        }
}

static int ws_close_flushed_k(lua_State *L, int status, lua_KContext ctx)
{
        NetWs *w = check_ws(L, 1);

        (void)ctx;
        if (status == LUA_YIELD)
                (void)clua_io_resumed(L, &w->wwait);
        if (w->phase == WS_OPEN && wslay_event_want_write(w->ctx) &&
            wslay_event_send(w->ctx) >= 0 && wslay_event_want_write(w->ctx) && status == LUA_OK) {
                ws_watch(w, EPOLLOUT);
                return clua_io_wait(L, &w->wwait, w->timeout_ns, ws_close_flushed_k, 0);
        }
        return ws_close_k(L, LUA_OK, 0);
}

/* ws:close([code[, reason]]) -> clean: sends a close frame (code 1000 by default),
 * waits for the peer's (up to the timeout), ends the connection. */
static int ws_close(lua_State *L)
{
        NetWs *w = check_ws(L, 1);
        lua_Integer code = luaL_optinteger(L, 2, 1000);
        size_t len = 0;
        const char *reason = luaL_optlstring(L, 3, "", &len);

        luaL_argcheck(L, code == 1000 || (code >= 3000 && code <= 4999), 2,
                      "close code 1000 or 3000..4999 (RFC 6455 7.4)");
        luaL_argcheck(L, len <= 123, 3, "reason longer than 123 bytes");
        lua_settop(L, 1);
        if (w->phase != WS_OPEN || w->rwait || w->wwait) {
                /* Not open, or another task waits on it: end it now. */
                bool was_open = w->phase == WS_OPEN;

                ws_end(w);
                lua_pushboolean(L, !was_open && w->close_code != 0);
                return 1;
        }
        if (!wslay_event_get_close_sent(w->ctx))
                (void)wslay_event_queue_close(w->ctx, (uint16_t)code, (const uint8_t *)reason, len);
        return ws_close_flushed_k(L, LUA_OK, 0);
}

/* ws:info() -> {address, url, protocol} */
static int ws_info(lua_State *L)
{
        NetWs *w = check_ws(L, 1);

        lua_createtable(L, 0, 3);
        lua_pushstring(L, w->address);
        lua_setfield(L, -2, "address");
        lua_pushstring(L, w->url ? w->url : "");
        lua_setfield(L, -2, "url");
        lua_pushboolean(L, w->phase != WS_OPEN);
        lua_setfield(L, -2, "closed");
        return 1;
}

/* ---- connect: net.connect, libcurl (TLS), the handshake ---- */

static int ws_fail(lua_State *L, NetWs *w, const char *what)
{
        char msg[CURL_ERROR_SIZE + 128];

        snprintf(msg, sizeof msg, "%s", what);
        ws_end(w);
        return luaL_error(L, "cella.net.websocket.connect: %s: %s", w->url, msg);
}

static int ws_handshake_k(lua_State *L, int status, lua_KContext ctx);

/* The handshake: writes the request, reads the answer's head. */
static int ws_handshake_k(lua_State *L, int status, lua_KContext ctx)
{
        NetWs *w = luaL_checkudata(L, 2, WS_MT);
        bool timed_out = false;

        (void)ctx;
        if (status == LUA_YIELD)
                timed_out = clua_io_resumed(L, w->out_off < w->out_len ? &w->wwait : &w->rwait);
        for (;;) {
                size_t n = 0;
                CURLcode rc;
                char *end;

                if (timed_out || now_monotonic_ns() >= w->deadline_ns)
                        return ws_fail(L, w, "timed out (timeout_ms)");
                if (w->phase != WS_HANDSHAKE)
                        return ws_fail(L, w, "the connection closed");
                if (w->out_off < w->out_len) {
                        rc = curl_easy_send(w->easy, w->out + w->out_off, w->out_len - w->out_off,
                                            &n);
                        if (rc == CURLE_AGAIN) {
                                ws_watch(w, EPOLLOUT);
                                return clua_io_wait(L, &w->wwait,
                                                    w->deadline_ns - now_monotonic_ns(),
                                                    ws_handshake_k, 0);
                        }
                        if (rc != CURLE_OK)
                                return ws_fail(L, w, curl_easy_strerror(rc));
                        w->out_off += n;
                        continue;
                }
                if (w->in_len == w->in_cap)
                        return ws_fail(L, w, "the answer's head is longer than 16 KiB");
                rc = curl_easy_recv(w->easy, w->in + w->in_len, w->in_cap - w->in_len, &n);
                if (rc == CURLE_AGAIN) {
                        ws_watch(w, EPOLLIN | EPOLLRDHUP);
                        return clua_io_wait(L, &w->rwait, w->deadline_ns - now_monotonic_ns(),
                                            ws_handshake_k, 0);
                }
                if (rc != CURLE_OK)
                        return ws_fail(L, w, curl_easy_strerror(rc));
                if (n == 0)
                        return ws_fail(L, w, "the server closed the connection in the handshake");
                w->in_len += n;
                end = memmem(w->in, w->in_len, "\r\n\r\n", 4);
                if (end) {
                        size_t head = (size_t)(end - w->in) + 4;
                        const char *why = NULL;
                        static const struct wslay_event_callbacks cb = {
                                .recv_callback = ws_recv_cb,
                                .send_callback = ws_send_cb,
                                .genmask_callback = ws_genmask_cb,
                                .on_msg_recv_callback = ws_on_msg_cb,
                        };

                        if (net_ws_check_response(w->in, head, w->accept, &why) < 0) {
                                char msg[256];

                                snprintf(msg, sizeof msg, "handshake refused: %s (%.*s)", why,
                                         (int)strcspn(w->in, "\r\n") > 80
                                                 ? 80
                                                 : (int)strcspn(w->in, "\r\n"),
                                         w->in);
                                return ws_fail(L, w, msg);
                        }
                        /* Frames the server sent right after its head go to wslay first. */
                        w->in_off = head;
                        if (wslay_event_context_client_init(&w->ctx, &cb, w) != 0)
                                return clua_doom(L, CLUA_MEMORY);
                        wslay_event_config_set_max_recv_msg_length(w->ctx, w->max_message);
                        w->phase = WS_OPEN;
                        lua_settop(L, 2);
                        return 1;
                }
        }
}

static int ws_connected_k(lua_State *L, int status, lua_KContext ctx)
{
        NetWs *w = luaL_checkudata(L, 2, WS_MT);
        curl_socket_t sock = CURL_SOCKET_BAD;

        (void)ctx;
        if (status == LUA_YIELD)
                (void)clua_io_resumed(L, &w->rwait);
        xfer_run(&w->x, w->multi, &w->watch);
        if (!w->x.done) {
                if (now_monotonic_ns() >= w->deadline_ns)
                        return ws_fail(L, w, "timed out (timeout_ms)");
                return clua_io_wait(L, &w->rwait, 0, ws_connected_k, 0);
        }
        if (w->x.result != CURLE_OK)
                return ws_fail(L, w, w->errmsg[0] ? w->errmsg : curl_easy_strerror(w->x.result));
        if (curl_easy_getinfo(w->easy, CURLINFO_ACTIVESOCKET, &sock) != CURLE_OK ||
            sock == CURL_SOCKET_BAD)
                return ws_fail(L, w, "no socket after the connect");
        clua_timer_remove_cb(w->app, &w->timer);
        w->sock = sock;
        w->phase = WS_HANDSHAKE;
        clua_fd_watch_stop(&w->watch);
        return ws_handshake_k(L, LUA_OK, 0);
}

/*
 * OpenSSL refuses a write retried from another address ("bad write retry") unless
 * SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER is set: wslay masks each chunk of a
 * client's frame into a buffer of its own call and sends that, so a retry after
 * CURLE_AGAIN sends the same bytes, of the same length, from another place.
 */
static CURLcode ws_ssl_ctx(CURL *c, void *ssl_ctx, void *userp)
{
        (void)c;
        (void)userp;
        SSL_CTX_set_mode((SSL_CTX *)ssl_ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
        return CURLE_OK;
}

#define WSOPT(o, v)                                                                                \
        do {                                                                                       \
                if (curl_easy_setopt(w->easy, o, v) != CURLE_OK)                                   \
                        return ws_fail(L, w, "cannot set up the connection");                      \
        } while (0)

/* After net.connect: libcurl connects over the socket (TLS for wss). */
static int ws_broker_k(lua_State *L, int status, lua_KContext ctx)
{
        NetWs *w = luaL_checkudata(L, 2, WS_MT);
        char url[NET_HOST_MAX + 32], entry[NET_HOST_MAX + 96];

        (void)status;
        (void)ctx;
        w->multi = curl_multi_init();
        w->easy = curl_easy_init();
        if (!w->multi || !w->easy)
                return clua_doom(L, CLUA_MEMORY);
        snprintf(url, sizeof url, "%s://%s:%u/", w->target.tls ? "https" : "http", w->target.host,
                 w->target.port);
        w->errmsg[0] = 0;
        WSOPT(CURLOPT_URL, url);
        WSOPT(CURLOPT_CONNECT_ONLY, 1L);
        WSOPT(CURLOPT_ERRORBUFFER, w->errmsg);
        WSOPT(CURLOPT_PROTOCOLS_STR, "http,https");
        WSOPT(CURLOPT_PROXY, "");
        WSOPT(CURLOPT_NOPROXY, "*");
        WSOPT(CURLOPT_OPENSOCKETFUNCTION, ws_open_socket);
        WSOPT(CURLOPT_OPENSOCKETDATA, w);
        WSOPT(CURLOPT_SOCKOPTFUNCTION, http_sockopt);
        WSOPT(CURLOPT_CLOSESOCKETFUNCTION, ws_close_socket);
        WSOPT(CURLOPT_CLOSESOCKETDATA, w);
        WSOPT(CURLOPT_TCP_NODELAY, 0L);
        /* No CURLOPT_FORBID_REUSE: it would close the connection when the connect
         * ends; a CONNECT_ONLY connection is never reused for another transfer. */
        WSOPT(CURLOPT_NOSIGNAL, 1L);
        WSOPT(CURLOPT_CONNECTTIMEOUT_MS,
              (long)((w->deadline_ns - now_monotonic_ns()) / 1000000u) + 1);
        WSOPT(CURLOPT_SSL_VERIFYPEER, 1L);
        WSOPT(CURLOPT_SSL_VERIFYHOST, 2L);
        if (w->target.tls)
                WSOPT(CURLOPT_SSL_CTX_FUNCTION, ws_ssl_ctx);
        if (getenv("CELLA_NET_DEBUG"))
                WSOPT(CURLOPT_VERBOSE, 1L);
        if (w->ca_pem) {
                struct curl_blob blob = {
                        .data = (void *)w->ca_pem, .len = w->ca_len, .flags = CURL_BLOB_COPY};

                WSOPT(CURLOPT_CAINFO_BLOB, &blob);
        }
        if (w->target.host[0] != '[' && !strchr(w->target.host, ':')) {
                bool v6 = strchr(w->address, ':') != NULL;

                snprintf(entry, sizeof entry, "%s:%u:%s%s%s", w->target.host, w->target.port,
                         v6 ? "[" : "", w->address, v6 ? "]" : "");
                w->resolve = curl_slist_append(NULL, entry);
                if (!w->resolve)
                        return clua_doom(L, CLUA_MEMORY);
                WSOPT(CURLOPT_RESOLVE, w->resolve);
        }
        if (curl_multi_setopt(w->multi, CURLMOPT_SOCKETFUNCTION, ws_socket_cb) != CURLM_OK ||
            curl_multi_setopt(w->multi, CURLMOPT_SOCKETDATA, w) != CURLM_OK ||
            curl_multi_setopt(w->multi, CURLMOPT_TIMERFUNCTION, ws_timer_cb) != CURLM_OK ||
            curl_multi_setopt(w->multi, CURLMOPT_TIMERDATA, w) != CURLM_OK ||
            curl_multi_add_handle(w->multi, w->easy) != CURLM_OK)
                return ws_fail(L, w, "cannot set up the connection");
        return ws_connected_k(L, LUA_OK, 0);
}

#undef WSOPT

static int decode_ws_connect(lua_State *L, CellaReply *reply)
{
        NetWs *w = luaL_checkudata(L, 2, WS_MT);

        w->fd = connect_take(L, "cella.net.websocket.connect", w->target.host, (int)w->target.port,
                             reply, w->address, sizeof w->address, NULL, 0);
        return 0;
}

/* Pushes the header lines of the options' headers table (index opts, 0 for
 * none) as one string "Name: value\r\n...", each checked. */
static void ws_headers(lua_State *L, int opts)
{
        int n = 0, base;

        if (!opts || lua_getfield(L, opts, "headers") == LUA_TNIL) {
                if (opts)
                        lua_pop(L, 1);
                lua_pushliteral(L, "");
                return;
        }
        if (!lua_istable(L, -1))
                luaL_error(L, "cella.net.websocket.connect: headers must be a table");
        base = lua_gettop(L); /* the table; the lines go below it */
        lua_pushnil(L);
        while (lua_next(L, base)) {
                size_t nl, vl;
                const char *name, *value;

                if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                        luaL_error(L, "cella.net.websocket.connect: headers: names and values "
                                      "must be strings");
                name = lua_tolstring(L, -2, &nl);
                value = lua_tolstring(L, -1, &vl);
                if (!net_header_name_ok(name, nl) || !net_header_value_ok(value, vl))
                        luaL_error(L,
                                   "cella.net.websocket.connect: headers: bad header '%s' (a "
                                   "token name; no CR, LF or NUL in the value)",
                                   name);
                if (++n > HTTP_REQ_HEADERS_MAX)
                        luaL_error(L, "cella.net.websocket.connect: more than %d headers",
                                   HTTP_REQ_HEADERS_MAX);
                luaL_checkstack(L, 4, "headers");
                lua_pushfstring(L, "%s: %s\r\n", name, value);
                lua_insert(L, base); /* below the table */
                base++;
                lua_pop(L, 1); /* the value; the key stays for lua_next */
        }
        lua_pop(L, 1); /* the table */
        lua_concat(L, n);
}

/* Builds the opening handshake's request (RFC 6455 4.1) into w->out. */
static void ws_request(lua_State *L, NetWs *w, int opts)
{
        CURLU *u = curl_url();
        char *path = NULL, *query = NULL;
        unsigned char nonce[16];
        char key[25];
        luaL_Buffer b;
        size_t len;
        const char *s;
        bool dflt_port = w->target.port == (w->target.tls ? 443 : 80);
        int hidx;

        if (!u)
                clua_doom(L, CLUA_MEMORY);
        if (curl_url_set(u, CURLUPART_URL, w->url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
            curl_url_get(u, CURLUPART_PATH, &path, 0) != CURLUE_OK) {
                curl_url_cleanup(u);
                luaL_error(L, "cella.net.websocket.connect: %s: not a URL", w->url);
        }
        (void)curl_url_get(u, CURLUPART_QUERY, &query, 0);
        if (RAND_bytes(nonce, sizeof nonce) != 1) {
                curl_free(path);
                curl_free(query);
                curl_url_cleanup(u);
                luaL_error(L, "cella.net.websocket.connect: no random bytes for the key");
        }
        EVP_EncodeBlock((unsigned char *)key, nonce, sizeof nonce);
        net_ws_accept(key, w->accept);
        ws_headers(L, opts);
        hidx = lua_gettop(L);
        luaL_buffinit(L, &b);
        luaL_addstring(&b, "GET ");
        luaL_addstring(&b, path);
        if (query) {
                luaL_addchar(&b, '?');
                luaL_addstring(&b, query);
        }
        curl_free(path);
        curl_free(query);
        curl_url_cleanup(u);
        luaL_addstring(&b, " HTTP/1.1\r\nHost: ");
        luaL_addstring(&b, w->target.host);
        if (!dflt_port) {
                lua_pushfstring(L, ":%d", (int)w->target.port);
                luaL_addvalue(&b);
        }
        luaL_addstring(&b, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ");
        luaL_addstring(&b, key);
        luaL_addstring(&b, "\r\nSec-WebSocket-Version: 13\r\n");
        lua_pushvalue(L, hidx);
        luaL_addvalue(&b);
        luaL_addstring(&b, "\r\n");
        luaL_pushresult(&b);
        s = lua_tolstring(L, -1, &len);
        w->out = clua_ext_malloc(len);
        if (!w->out)
                clua_doom(L, CLUA_MEMORY);
        memcpy(w->out, s, len);
        w->out_len = len;
        lua_pop(L, 2);
}

/* websocket.connect(url[, {headers, timeout_ms, max_message, ca_pem}]) -> ws */
static int ws_connect(lua_State *L)
{
        Cella__V1__NetConnectRequest req = CELLA__V1__NET_CONNECT_REQUEST__INIT;
        const char *url = clua_check_str(L, 1, 1, NET_URL_MAX, NULL);
        int opts = lua_isnoneornil(L, 2) ? 0 : 2;
        NetWs *w;
        int e;

        if (opts)
                luaL_checktype(L, 2, LUA_TTABLE);
        lua_settop(L, 2);
        if (clua_net_global_init() < 0)
                return luaL_error(L, "cella.net.websocket: libcurl failed to initialize");
        w = lua_newuserdatauv(L, sizeof(*w), 1); /* index 3 */
        memset(w, 0, sizeof(*w));
        xfer_init(&w->x);
        w->fd = -1;
        w->sock = -1;
        w->watch.fd = -1;
        luaL_setmetatable(L, WS_MT);
        w->app = clua_app_of(L);
        w->watch.app = w->app;
        w->watch.cb = ws_on_fd;
        w->watch.userdata = w;
        e = net_url_target(url, NET_SCHEME_WS | NET_SCHEME_WSS, &w->target, &w->url);
        if (e == -ENOMEM)
                return clua_doom(L, CLUA_MEMORY);
        if (e < 0)
                return luaL_error(L, "cella.net.websocket.connect: %s: %s", url,
                                  e == -EPROTONOSUPPORT ? "not a ws or wss URL" : "not a URL");
        w->timeout_ns = opt_timeout_ms(L, opts, "timeout_ms", NET_TIMEOUT_DEFAULT_MS);
        w->deadline_ns = now_monotonic_ns() + w->timeout_ns;
        w->max_message =
                (size_t)opt_int(L, opts, "max_message", WS_MESSAGE_DEFAULT, 1, WS_MESSAGE_MAX);
        {
                CLuaAlloc *a = &w->app->alloc;
                size_t need = 2 * w->max_message;

                if (a->used > a->cap || need > a->cap - a->used)
                        return luaL_error(L,
                                          "cella.net.websocket.connect: max_message %d needs "
                                          "%d bytes of the app's memory limit free",
                                          (int)w->max_message, (int)need);
                a->used += need;
                if (a->used > a->peak)
                        a->peak = a->used;
                w->reserved = need;
        }
        if (opts && lua_getfield(L, opts, "ca_pem") != LUA_TNIL) {
                if (lua_type(L, -1) != LUA_TSTRING)
                        return luaL_error(L, "cella.net.websocket.connect: ca_pem must be a "
                                             "string (PEM certificates)");
                w->ca_pem = lua_tolstring(L, -1, &w->ca_len);
                lua_pushvalue(L, -1);
                lua_setiuservalue(L, 3, 1);
        }
        if (opts)
                lua_pop(L, 1);
        ws_request(L, w, opts);
        w->in_cap = WS_HEAD_MAX;
        w->in = clua_ext_malloc(w->in_cap);
        if (!w->in)
                return clua_doom(L, CLUA_MEMORY);
        /* The continuations find the userdata at index 2. */
        lua_replace(L, 2);
        lua_settop(L, 2);
        req.host = w->target.host;
        req.port = w->target.port;
        req.proto = CELLA__V1__NET_PROTO__NET_PROTO_TCP;
        return clua_kernel_call_k(L, "cella.net.websocket.connect", NET_CONNECT_OP, &req.base,
                                  decode_ws_connect, ws_broker_k, 0);
}

static const luaL_Reg ws_methods[] = {
        {"send", ws_send},   {"receive", ws_receive}, {"ping", ws_ping},
        {"close", ws_close}, {"info", ws_info},       {NULL, NULL},
};

/* ---- the module ------------------------------------------------------------------ */

int luaopen_cella_net(lua_State *L)
{
        static const luaL_Reg tcp_fns[] = {
                {"connect", tcp_connect},
                {NULL, NULL},
        };
        static const luaL_Reg http_fns[] = {
                {"request", http_request},
                {"get", http_get},
                {"post", http_post},
                {NULL, NULL},
        };
        static const luaL_Reg ws_fns[] = {
                {"connect", ws_connect},
                {NULL, NULL},
        };

        cella_lua_defclass(L, CONN_MT, conn_methods, conn_gc);
        cella_lua_defclass(L, HTTP_MT, NULL, http_gc);
        cella_lua_defclass(L, WS_MT, ws_methods, ws_gc);
        lua_createtable(L, 0, 3);
        luaL_newlib(L, tcp_fns);
        lua_setfield(L, -2, "tcp");
        luaL_newlib(L, http_fns);
        lua_setfield(L, -2, "http");
        luaL_newlib(L, ws_fns);
        lua_setfield(L, -2, "websocket");
        return 1;
}
