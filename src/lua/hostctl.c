/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The host spec's app objects and the host control channel's messages (hostctl.h). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "lua/alloc.h"
#include "lua/hostctl.h"

static int fail(char *err, size_t errlen, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
        va_list ap;

        if (err && errlen) {
                va_start(ap, fmt);
                vsnprintf(err, errlen, fmt, ap);
                va_end(ap);
        }
        return -EINVAL;
}

/* Integer key of o in lo..hi, or def when absent. */
static int get_int(json_t *o, const char *key, json_int_t lo, json_int_t hi, json_int_t def,
                   json_int_t *ret, char *err, size_t errlen)
{
        json_t *v = json_object_get(o, key);

        if (!v) {
                *ret = def;
                return 0;
        }
        if (!json_is_integer(v) || json_integer_value(v) < lo || json_integer_value(v) > hi)
                return fail(err, errlen, "\"%s\": expected an integer from %lld to %lld", key,
                            (long long)lo, (long long)hi);
        *ret = json_integer_value(v);
        return 0;
}

int clua_spec_app_parse(json_t *v, bool fds_inline, CLuaSpecApp *ret, char *err, size_t errlen)
{
        static const char *const keys[] = {"id",         "entry",  "args",   "data",
                                           "priority",   "memory", "cpu_ms", "cpu_total_ms",
                                           "channel_fd", "log_fd", "slot",   NULL};
        /* "channel_fd", "log_fd" and "slot" are the last: not known in a JOIN. */
        size_t n_keys = fds_inline ? 11 : 8;
        CLuaSpecApp a = {.channel_fd = -1, .log_fd = -1, .slot = -1};
        const char *key;
        json_t *f, *args;
        json_int_t x;
        size_t i;

        if (!json_is_object(v))
                return fail(err, errlen, "expected an object");
        json_object_foreach(v, key, f)
        {
                bool known = false;

                for (i = 0; i < n_keys; i++)
                        known |= strcmp(keys[i], key) == 0;
                if (!known)
                        return fail(err, errlen, "unknown key \"%.64s\"", key);
        }
        f = json_object_get(v, "id");
        if (!json_is_string(f) || json_string_length(f) == 0 || json_string_length(f) > 255 ||
            strlen(json_string_value(f)) != json_string_length(f))
                return fail(err, errlen, "\"id\": expected a string of 1 to 255 bytes");
        a.id = json_string_value(f);
        f = json_object_get(v, "entry");
        if (!json_is_string(f) || json_string_value(f)[0] != '/' ||
            strlen(json_string_value(f)) != json_string_length(f))
                return fail(err, errlen, "\"entry\": expected an absolute path");
        a.entry = json_string_value(f);
        f = json_object_get(v, "data");
        if (f &&
            (!json_is_string(f) || json_string_value(f)[0] != '/' || json_string_length(f) > 1024 ||
             strlen(json_string_value(f)) != json_string_length(f)))
                return fail(err, errlen, "\"data\": expected an absolute path");
        a.data = f ? json_string_value(f) : NULL;
        args = json_object_get(v, "args");
        if (args && (!json_is_array(args) || json_array_size(args) > CLUA_SPEC_ARGS_MAX))
                return fail(err, errlen, "\"args\": expected an array of at most %u strings",
                            CLUA_SPEC_ARGS_MAX);
        json_array_foreach(args, i, f)
        {
                if (!json_is_string(f))
                        return fail(err, errlen, "\"args\": expected strings");
                a.args[a.n_args++] = json_string_value(f);
        }
        if (fds_inline) {
                if (get_int(v, "channel_fd", 3, 1 << 20, -1, &x, err, errlen) < 0)
                        return -EINVAL;
                a.channel_fd = (int)x;
                if (get_int(v, "log_fd", 1, 1 << 20, -1, &x, err, errlen) < 0)
                        return -EINVAL;
                a.log_fd = (int)x;
                if (get_int(v, "slot", 0, 65535, -1, &x, err, errlen) < 0)
                        return -EINVAL;
                a.slot = (int)x;
        }
        if (get_int(v, "priority", -20, 19, 0, &x, err, errlen) < 0)
                return -EINVAL;
        a.priority = (int)x;
        if (get_int(v, "memory", (json_int_t)CLUA_ALLOC_MIN_CAP, (json_int_t)1 << 40, 0, &x, err,
                    errlen) < 0)
                return -EINVAL;
        a.memory_cap = (uint64_t)x;
        if (get_int(v, "cpu_ms", 1, (json_int_t)CLUA_SPEC_BUDGET_MS, 0, &x, err, errlen) < 0)
                return -EINVAL;
        a.callback_ns = (uint64_t)x * 1000000u;
        if (get_int(v, "cpu_total_ms", 0, (json_int_t)CLUA_SPEC_BUDGET_MS, 0, &x, err, errlen) < 0)
                return -EINVAL;
        a.total_ns = (uint64_t)x * 1000000u;
        *ret = a;
        return 0;
}

static int bad(char *err, size_t errlen, const char *what)
{
        if (err && errlen)
                snprintf(err, errlen, "%s", what);
        return -EBADMSG;
}

/* A PRIORITY refused for what: frees its JSON, says "PRIORITY: what". */
static int priority_bad(CLuaCtlMsg *m, char *err, size_t errlen, const char *what)
{
        json_decref(m->json);
        m->json = NULL;
        if (err && errlen)
                snprintf(err, errlen, "PRIORITY: %s", what);
        return -EBADMSG;
}

int clua_ctl_parse(const void *buf, size_t len, unsigned n_fds, uint32_t n_slots, CLuaCtlMsg *ret,
                   char *err, size_t errlen)
{
        CLuaCtlHeader h;
        CLuaCtlMsg m = {};
        json_error_t jerr;
        char why[192];

        if (len < sizeof h)
                return bad(err, errlen, "shorter than its header");
        if (len > CLUA_CTL_MSG_MAX)
                return bad(err, errlen, "longer than a message may be");
        memcpy(&h, buf, sizeof h);
        if (h.magic != CLUA_CTL_MAGIC)
                return bad(err, errlen, "bad magic");
        if (h.reserved != 0)
                return bad(err, errlen, "reserved field not 0");
        if (h.len != len - sizeof h)
                return bad(err, errlen, "length field does not match the packet");
        if (h.n_fds != n_fds)
                return bad(err, errlen, "fd count does not match the fds that came");
        if (h.index >= n_slots)
                return bad(err, errlen, "slot out of range");
        m = (CLuaCtlMsg){
                .type = (CLuaCtlType)h.type, .index = h.index, .run = h.run, .n_fds = n_fds};
        switch (h.type) {
        case CLUA_CTL_STOP:
                if (n_fds != 0 || h.len != 0)
                        return bad(err, errlen, "STOP carries no fds and no JSON");
                *ret = m;
                return 0;
        case CLUA_CTL_JOIN:
                if (n_fds < 1 || n_fds > CLUA_CTL_FDS_MAX)
                        return bad(err, errlen, "JOIN carries 1 or 2 fds");
                /* Run 0 is the spec's apps': a JOIN's is its own. */
                if (h.run == 0)
                        return bad(err, errlen, "JOIN with run 0");
                m.json = json_loadb((const char *)buf + sizeof h, h.len, JSON_REJECT_DUPLICATES,
                                    &jerr);
                if (!m.json) {
                        snprintf(why, sizeof why, "JOIN: JSON: %s", jerr.text);
                        return bad(err, errlen, why);
                }
                if (clua_spec_app_parse(m.json, false, &m.app, why + 6, sizeof why - 6) < 0) {
                        memcpy(why, "JOIN: ", 6);
                        json_decref(m.json);
                        return bad(err, errlen, why);
                }
                *ret = m;
                return 0;
        case CLUA_CTL_PRIORITY: {
                json_t *c, *pr;
                const char *key;
                json_t *v;

                if (n_fds != 0)
                        return bad(err, errlen, "PRIORITY carries no fds");
                if (h.len < 2 || h.len > CLUA_CTL_PRIORITY_MAX)
                        return bad(err, errlen, "PRIORITY: JSON of 2 to 256 bytes expected");
                m.json = json_loadb((const char *)buf + sizeof h, h.len, JSON_REJECT_DUPLICATES,
                                    &jerr);
                if (!m.json) {
                        snprintf(why, sizeof why, "PRIORITY: JSON: %s", jerr.text);
                        return bad(err, errlen, why);
                }
                if (!json_is_object(m.json))
                        return priority_bad(&m, err, errlen, "expected an object");
                json_object_foreach(m.json, key, v)
                {
                        if (strcmp(key, "class") != 0 && strcmp(key, "priority") != 0)
                                return priority_bad(&m, err, errlen, "unknown key");
                }
                c = json_object_get(m.json, "class");
                m.cpu_class = CLUA_CPU_CLASS_NONE;
                for (uint32_t i = CLUA_CPU_CLASS_FOREGROUND;
                     json_is_string(c) && i < _CLUA_CPU_CLASS_MAX; i++)
                        if (strcmp(json_string_value(c), clua_cpu_class_to_string(i)) == 0 &&
                            strlen(json_string_value(c)) == json_string_length(c))
                                m.cpu_class = i;
                if (m.cpu_class == CLUA_CPU_CLASS_NONE)
                        return priority_bad(&m, err, errlen,
                                            "\"class\": expected \"foreground\", \"visible\", "
                                            "\"service\", \"background\" or \"cached\"");
                pr = json_object_get(m.json, "priority");
                if (!json_is_integer(pr) || json_integer_value(pr) < -20 ||
                    json_integer_value(pr) > 19)
                        return priority_bad(&m, err, errlen,
                                            "\"priority\": expected an integer from -20 to 19");
                m.priority = (int)json_integer_value(pr);
                /* Only the two fields are used: the JSON is not kept. */
                m.json = (json_decref(m.json), NULL);
                *ret = m;
                return 0;
        }
        default:
                return bad(err, errlen, "unknown type");
        }
}

void clua_ctl_msg_done(CLuaCtlMsg *m)
{
        json_decref(m->json);
        *m = (CLuaCtlMsg){};
}

int clua_ctl_recv(int fd, void *buf, size_t size, size_t *ret_len, int *fds, unsigned *ret_n_fds)
{
        union {
                struct cmsghdr h;
                char b[CMSG_SPACE(CLUA_CTL_FDS_MAX * sizeof(int))];
        } cbuf;
        struct iovec iov = {.iov_base = buf, .iov_len = size};
        struct msghdr msg = {
                .msg_iov = &iov,
                .msg_iovlen = 1,
                .msg_control = cbuf.b,
                .msg_controllen = sizeof cbuf.b,
        };
        unsigned n = 0;
        bool extra = false;
        ssize_t got;

        memset(&cbuf, 0, sizeof cbuf);
        do
                got = recvmsg(fd, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
        while (got < 0 && errno == EINTR);
        if (got < 0)
                return errno == EWOULDBLOCK ? -EAGAIN : -errno;
        for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
                if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS) {
                        size_t k = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);

                        for (size_t i = 0; i < k; i++) {
                                int x;

                                memcpy(&x, CMSG_DATA(c) + i * sizeof(int), sizeof x);
                                if (n < CLUA_CTL_FDS_MAX)
                                        fds[n++] = x;
                                else {
                                        close(x);
                                        extra = true;
                                }
                        }
                } else
                        extra = true;
        }
        if (extra || (msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC))) {
                for (unsigned i = 0; i < n; i++)
                        close(fds[i]);
                return -EBADMSG;
        }
        if (got == 0 && n == 0)
                return 0;
        *ret_len = (size_t)got;
        *ret_n_fds = n;
        return 1;
}
