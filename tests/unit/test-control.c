/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The control socket (src/supervisor/control.c): the request parser, and a kernel
 * side on a real loop driven by clients in a thread (the client side blocks).
 */
#include <check.h>
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <linux/sockios.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/ioctl.h>
#include <sys/param.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/macro.h"
#include "base/time-util.h"
#include "supervisor/control.h"
#include "skip.h"
#include "uv-wait.h"

#define PS_LINE "{\"method\":\"org.cella.Ps\"}\n"

static char state[] = "/tmp/cella-control-XXXXXX";

static void setup(void)
{
        ck_assert_ptr_nonnull(mkdtemp(state));
}

static void teardown(void)
{
        char cmd[128];

        snprintf(cmd, sizeof cmd, "rm -rf %s", state);
        ck_assert_int_eq(system(cmd), 0);
        memcpy(state + strlen(state) - 6, "XXXXXX", 6);
}

/* --- the parser --- */

static int parse(const char *s, ControlRequest *req, const char **error)
{
        *error = NULL;
        return control_request_parse(s, strlen(s), req, error);
}

START_TEST(test_parse_valid)
{
        ControlRequest req;
        const char *error;

        ck_assert_int_eq(parse("{\"method\":\"org.cella.Ps\"}", &req, &error), 0);
        ck_assert_str_eq(req.method, "org.cella.Ps");
        ck_assert(json_is_object(req.parameters));
        ck_assert_uint_eq(json_object_size(req.parameters), 0);
        ck_assert(!req.more && !req.oneway);
        control_request_done(&req);
        ck_assert_ptr_null(req.root);

        ck_assert_int_eq(parse(" {\"parameters\":{\"app\":\"org.x.a\"},\"method\":\"a.B9\","
                               "\"more\":true}\r",
                               &req, &error),
                         0);
        ck_assert_str_eq(req.method, "a.B9");
        ck_assert_str_eq(json_string_value(json_object_get(req.parameters, "app")), "org.x.a");
        ck_assert(req.more && !req.oneway);
        control_request_done(&req);

        ck_assert_int_eq(parse("{\"method\":\"org.cella.GrantsChanged\",\"parameters\":null,"
                               "\"oneway\":true,\"more\":false}",
                               &req, &error),
                         0);
        ck_assert(json_is_object(req.parameters));
        ck_assert(req.oneway && !req.more);
        control_request_done(&req);
}
END_TEST

START_TEST(test_parse_refused)
{
        static const char *const bad[] = {
                "",
                "garbage",
                "{\"method\":\"org.cella.Ps\"",
                "[\"org.cella.Ps\"]",
                "\"org.cella.Ps\"",
                "{}",
                "{\"method\":1}",
                "{\"method\":\"Ps\"}",
                "{\"method\":\"org.cella.\"}",
                "{\"method\":\".org.cella\"}",
                "{\"method\":\"org..cella\"}",
                "{\"method\":\"org.cella.9s\"}",
                "{\"method\":\"org.cella.P-s\"}",
                "{\"method\":\"org.cella.P\\u0000s\"}",
                "{\"method\":\"org.cella.Ps\"} {\"method\":\"org.cella.Ps\"}",
                "{\"method\":\"org.cella.Ps\",\"method\":\"org.cella.Stop\"}",
                "{\"method\":\"org.cella.Ps\",\"op\":\"ps\"}",
                "{\"op\":\"ps\"}",
                "{\"method\":\"org.cella.Ps\",\"parameters\":[]}",
                "{\"method\":\"org.cella.Ps\",\"parameters\":\"x\"}",
                "{\"method\":\"org.cella.Ps\",\"more\":1}",
                "{\"method\":\"org.cella.Ps\",\"oneway\":\"yes\"}",
                "{\"method\":\"org.cella.Ps\",\"more\":true,\"oneway\":true}",
        };
        ControlRequest req = {.method = "untouched"};
        const char *error;

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                ck_assert_msg(parse(bad[i], &req, &error) == -EINVAL, "accepted: %s", bad[i]);
                ck_assert_ptr_nonnull(error);
                ck_assert_str_eq(req.method, "untouched"); /* *ret only on success */
        }
}
END_TEST

START_TEST(test_parse_bounds)
{
        ControlRequest req;
        const char *error;
        char name[CONTROL_METHOD_MAX + 8];
        char line[CONTROL_LINE_MAX + 16];
        size_t n;

        /* A method name of CONTROL_METHOD_MAX bytes is fine, one more is not. */
        memset(name, 'a', sizeof name);
        name[1] = '.';
        name[CONTROL_METHOD_MAX] = 0;
        snprintf(line, sizeof line, "{\"method\":\"%s\"}", name);
        ck_assert_int_eq(parse(line, &req, &error), 0);
        ck_assert_uint_eq(strlen(req.method), CONTROL_METHOD_MAX);
        control_request_done(&req);
        name[CONTROL_METHOD_MAX] = 'a';
        name[CONTROL_METHOD_MAX + 1] = 0;
        snprintf(line, sizeof line, "{\"method\":\"%s\"}", name);
        ck_assert_int_eq(parse(line, &req, &error), -EINVAL);

        /* A line just under the limit parses (padded with spaces), at it is E2BIG. */
        n = CONTROL_LINE_MAX - 1;
        memset(line, ' ', n);
        memcpy(line, "{\"method\":\"org.cella.Ps\"}", 25);
        ck_assert_int_eq(control_request_parse(line, n, &req, &error), 0);
        control_request_done(&req);
        ck_assert_int_eq(control_request_parse(line, n + 1, &req, &error), -E2BIG);
}
END_TEST

/* --- a kernel on a loop, clients in a thread --- */

typedef struct Kernel {
        uv_loop_t loop;
        uv_async_t async;
        Control *control;
        int list_calls;
        bool big; /* list a reply past CONTROL_OUTPUT_MAX */
        int changed_calls;
        char changed_app[MANIFEST_ID_MAX + 1];
        bool changed_null;
} Kernel;

static int k_ps(ControlCall *call, json_t *params, void *ud)
{
        Kernel *k = ud;

        k->list_calls++;
        if (k->big) {
                char *s = malloc(CONTROL_OUTPUT_MAX);
                json_t *a;

                memset(s, 'x', CONTROL_OUTPUT_MAX - 1);
                s[CONTROL_OUTPUT_MAX - 1] = 0;
                a = json_pack("{s:[{s:s}]}", "apps", "id", s);
                free(s);
                return control_reply(call, a);
        }
        return control_reply(call, json_pack("{s:[{s:s,s:i,s:s},{s:s,s:i,s:s}]}", "apps", "id",
                                             "org.x.one", "pid", 100, "state", "running", "id",
                                             "org.x.two", "pid", 200, "state", "stopped"));
}

static int k_changed(ControlCall *call, json_t *params, void *ud)
{
        Kernel *k = ud;
        const char *app;
        bool missing;

        app = control_param_app(call, params, "app", &missing);
        if (!app && !missing)
                return 0;
        k->changed_calls++;
        k->changed_null = !app;
        snprintf(k->changed_app, sizeof k->changed_app, "%s", app ?: "");
        return control_reply(call, NULL);
}

static int k_stop(ControlCall *call, json_t *params, void *ud)
{
        const char *app;
        bool missing;

        app = control_param_app(call, params, "app", &missing);
        if (missing)
                return control_reply_invalid_parameter(call, "app", "missing");
        if (!app)
                return 0;
        if (strcmp(app, "org.x.one") != 0)
                return control_reply_error(call, CONTROL_ERROR_NO_SUCH_APP,
                                           json_pack("{s:s}", "app", app));
        return control_reply(call, NULL);
}

static const ControlMethod k_methods[] = {
        {"org.cella.Ps", CONTROL_ACCESS_READ, k_ps},
        {"org.cella.GrantsChanged", CONTROL_ACCESS_MANAGE, k_changed},
        {"org.cella.Stop", CONTROL_ACCESS_MANAGE, k_stop},
};

static void on_async(uv_async_t *a)
{
        uv_stop(a->loop);
}

static void kernel_start(Kernel *k)
{
        memset(k, 0, sizeof *k);
        ck_assert_int_eq(uv_loop_init(&k->loop), 0);
        ck_assert_int_eq(uv_async_init(&k->loop, &k->async, on_async), 0);
        ck_assert_int_eq(control_new(&k->loop, &k->control), 0);
        ck_assert_int_eq(control_add_methods(k->control, k_methods, ELEMENTSOF(k_methods), k), 0);
        ck_assert_int_eq(control_listen_kernel(k->control, state), 0);
}

static void kernel_stop(Kernel *k)
{
        k->control = control_close(k->control);
        uv_close((uv_handle_t *)&k->async, NULL);
        uv_run(&k->loop, UV_RUN_DEFAULT);
        ck_assert_int_eq(uv_loop_close(&k->loop), 0);
}

typedef struct Job {
        Kernel *k;
        void *(*fn)(struct Job *);
        const char *method;
        json_t *request; /* the parameters */
        json_t *replies; /* [[pid, reply], ...] */
        json_t *mutes;   /* [[pid, error], ...]: control_ask_kernels()'s mute calls */
        unsigned timeout_ms;
        int result;
        char text[CONTROL_LINE_MAX * 2]; /* raw client: what came back */
        const char *send;
        size_t send_len;
        bool shut_wr;
} Job;

static void *job_main(void *arg)
{
        Job *j = arg;

        j->fn(j);
        uv_async_send(&j->k->async);
        return NULL;
}

/* Runs j->fn in a thread while the loop serves it. */
static void run_job(Job *j)
{
        pthread_t t;

        ck_assert_int_eq(pthread_create(&t, NULL, job_main, j), 0);
        uv_run(&j->k->loop, UV_RUN_DEFAULT);
        ck_assert_int_eq(pthread_join(t, NULL), 0);
}

static int collect(pid_t pid, json_t *reply, void *ud)
{
        Job *j = ud;

        json_array_append_new(j->replies, json_pack("[iO]", (int)pid, reply));
        return 0;
}

static void *client_job(Job *j)
{
        j->replies = json_array();
        j->result = control_each_kernel(state, j->method, j->request, collect, j);
        return NULL;
}

/* A raw client: connects, sends j->send, reads until EOF or a 500 ms silence. */
static void *raw_job(Job *j)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        struct timeval tv = {.tv_usec = 500000};
        size_t len = 0;
        int fd;

        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", control_path(j->k->control));
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
                j->result = -errno;
                return NULL;
        }
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (j->send_len && send(fd, j->send, j->send_len, MSG_NOSIGNAL) < 0)
                j->result = -errno;
        if (j->shut_wr)
                shutdown(fd, SHUT_WR);
        for (;;) {
                ssize_t n = read(fd, j->text + len, sizeof j->text - 1 - len);

                if (n <= 0) {
                        /* 1: the kernel closed (a reset if it left input unread) */
                        j->result = n == 0 || errno == ECONNRESET ? 1 : 0;
                        break;
                }
                len += (size_t)n;
        }
        j->text[len] = 0;
        close(fd);
        return NULL;
}

static json_t *reply_of(Job *j, size_t i)
{
        return json_array_get(json_array_get(j->replies, i), 1);
}

START_TEST(test_listen_layout)
{
        Kernel k;
        char path[256];
        struct stat st;

        kernel_start(&k);
        snprintf(path, sizeof path, "%s/run/%d.sock", state, (int)getpid());
        ck_assert_str_eq(control_path(k.control), path);
        ck_assert_int_eq(lstat(path, &st), 0);
        ck_assert(S_ISSOCK(st.st_mode));
        ck_assert_int_eq(st.st_mode & 07777, 0600);
        snprintf(path, sizeof path, "%s/run", state);
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_int_eq(st.st_mode & 07777, 0700);
        kernel_stop(&k);
        /* closed: the socket is gone */
        snprintf(path, sizeof path, "%s/run/%d.sock", state, (int)getpid());
        ck_assert_int_eq(lstat(path, &st), -1);
        ck_assert_int_eq(errno, ENOENT);
}
END_TEST

START_TEST(test_ps_and_grants_changed)
{
        Kernel k;
        Job j = {.k = &k, .fn = client_job};
        json_t *r;

        kernel_start(&k);
        j.method = "org.cella.Ps";
        run_job(&j);
        ck_assert_int_eq(j.result, 1);
        ck_assert_int_eq(json_integer_value(json_array_get(json_array_get(j.replies, 0), 0)),
                         getpid());
        r = json_object_get(control_reply_parameters(reply_of(&j, 0)), "apps");
        ck_assert_uint_eq(json_array_size(r), 2);
        ck_assert_str_eq(json_string_value(json_object_get(json_array_get(r, 1), "id")),
                         "org.x.two");
        ck_assert_int_eq(k.list_calls, 1);
        json_decref(j.request);
        json_decref(j.replies);

        ck_assert_int_eq(control_notify_grants_changed(state, "bad id"), -EINVAL);
        j.method = "org.cella.GrantsChanged";
        j.request = json_pack("{s:s}", "app", "org.x.one");
        run_job(&j);
        ck_assert_int_eq(j.result, 1);
        ck_assert_ptr_null(control_reply_error_name(reply_of(&j, 0)));
        ck_assert_int_eq(k.changed_calls, 1);
        ck_assert_str_eq(k.changed_app, "org.x.one");
        json_decref(j.request);
        json_decref(j.replies);

        j.request = json_pack("{s:n}", "app");
        run_job(&j);
        ck_assert_int_eq(k.changed_calls, 2);
        ck_assert(k.changed_null);
        json_decref(j.request);
        json_decref(j.replies);

        j.method = "org.cella.Stop";
        j.request = json_pack("{s:s}", "app", "org.x.zzz");
        run_job(&j);
        ck_assert_str_eq(control_reply_error_name(reply_of(&j, 0)), CONTROL_ERROR_NO_SUCH_APP);
        ck_assert_str_eq(json_string_value(
                                 json_object_get(control_reply_parameters(reply_of(&j, 0)), "app")),
                         "org.x.zzz");
        json_decref(j.request);
        json_decref(j.replies);
        kernel_stop(&k);
}
END_TEST

/* A kernel tells the others (control_notify_other_kernels): never itself, and without
 * waiting for a reply: the line is in the other's socket before it is even accepted. */
START_TEST(test_notify_other_kernels)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        _cleanup_close_ int lfd = -EBADF, cfd = -EBADF;
        char line[256];
        ssize_t n;
        Kernel k;

        kernel_start(&k);
        /* Only our own kernel: nobody to tell, and ours is not asked. */
        ck_assert_int_eq(control_notify_other_kernels(state, "org.x.one"), 0);
        ck_assert_int_eq(k.changed_calls, 0);

        /* Another kernel's socket (pid 1 is alive, so it is not swept as stale) that
         * accepts nothing until the call has returned. */
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s/run/1.sock", state);
        lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_ge(lfd, 0);
        ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof sa), 0);
        ck_assert_int_eq(listen(lfd, 4), 0);
        ck_assert_int_eq(control_notify_other_kernels(state, "org.x.one"), 1);
        ck_assert_int_eq(control_notify_other_kernels(state, NULL), 1);
        ck_assert_int_eq(control_notify_other_kernels(state, "bad id"), -EINVAL);
        ck_assert_int_eq(k.changed_calls, 0);

        cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        ck_assert_int_ge(cfd, 0);
        n = read(cfd, line, sizeof line - 1);
        ck_assert_int_gt(n, 0);
        line[n] = 0;
        ck_assert_str_eq(line, "{\"method\":\"org.cella.GrantsChanged\",\"parameters\":{\"app\":"
                               "\"org.x.one\"},\"oneway\":true}\n");
        ck_assert_int_eq(read(cfd, line, sizeof line), 0); /* and hung up */
        cfd = safe_close(cfd);
        cfd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
        ck_assert_int_ge(cfd, 0);
        n = read(cfd, line, sizeof line - 1);
        ck_assert_int_gt(n, 0);
        line[n] = 0;
        ck_assert_str_eq(line, "{\"method\":\"org.cella.GrantsChanged\",\"parameters\":{},"
                               "\"oneway\":true}\n");
        ck_assert_int_eq(unlink(sa.sun_path), 0);
        kernel_stop(&k);
}
END_TEST

START_TEST(test_garbage_then_valid_on_one_connection)
{
        static const char in[] = "hello there\n{\"method\":\"org.cella.Nope\"}\n"
                                 "{\"method\":\"org.cella.Stop\",\"parameters\":{\"app\":3}}\n"
                                 "\n{\"method\":\"org.cella.Ps\"}\n"
                                 "{\"method\":\"org.cella.Stop\",\"parameters\":{\"app\":"
                                 "\"org.x.one\"}}\n";
        static const char *const errors[] = {CONTROL_ERROR_INVALID_REQUEST,
                                             CONTROL_ERROR_METHOD_NOT_FOUND,
                                             CONTROL_ERROR_INVALID_PARAMETER};
        Kernel k;
        Job j = {.k = &k, .fn = raw_job, .send = in, .send_len = sizeof in - 1};
        json_error_t jerr;
        json_t *r;
        char *line, *save = NULL;
        int n = 0;

        kernel_start(&k);
        run_job(&j);
        /* five requests (the empty line is none), five replies, in order; the
         * connection stayed open */
        for (line = strtok_r(j.text, "\n", &save); line; line = strtok_r(NULL, "\n", &save), n++) {
                r = json_loads(line, 0, &jerr);
                ck_assert_msg(r != NULL, "not JSON: %s", line);
                if (n < 3) {
                        ck_assert_msg(control_reply_error_name(r) &&
                                              strcmp(control_reply_error_name(r), errors[n]) == 0,
                                      "not %s: %s", errors[n], line);
                        ck_assert(json_is_string(
                                json_object_get(control_reply_parameters(r), "message")));
                } else if (n == 3)
                        ck_assert_uint_eq(json_array_size(json_object_get(
                                                  control_reply_parameters(r), "apps")),
                                          2);
                else
                        ck_assert_msg(!control_reply_error_name(r), "error: %s", line);
                json_decref(r);
        }
        ck_assert_int_eq(n, 5);
        ck_assert_int_eq(j.result, 0); /* not closed by the kernel: the client timed out */
        kernel_stop(&k);
}
END_TEST

START_TEST(test_half_closed_client_gets_its_reply)
{
        static const char in[] = PS_LINE;
        Kernel k;
        Job j = {.k = &k, .fn = raw_job, .send = in, .send_len = sizeof in - 1, .shut_wr = true};

        kernel_start(&k);
        run_job(&j);
        ck_assert_ptr_nonnull(strstr(j.text, "\"apps\""));
        ck_assert_int_eq(j.result, 1); /* then the kernel closed */
        kernel_stop(&k);
}
END_TEST

START_TEST(test_oversize_line_is_refused_and_dropped)
{
        static char in[CONTROL_LINE_MAX + 100];
        Kernel k;
        Job j = {.k = &k, .fn = raw_job, .send = in, .send_len = sizeof in};

        memset(in, 'x', sizeof in);
        kernel_start(&k);
        run_job(&j);
        ck_assert_ptr_nonnull(strstr(j.text, "\"error\""));
        ck_assert_ptr_nonnull(strstr(j.text, "longer"));
        ck_assert_int_eq(j.result, 1);
        /* and the kernel carries on */
        j = (Job){.k = &k, .fn = raw_job, .send = PS_LINE, .send_len = sizeof PS_LINE - 1};
        run_job(&j);
        ck_assert_ptr_nonnull(strstr(j.text, "org.x.one"));
        kernel_stop(&k);
}
END_TEST

START_TEST(test_connection_bound)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        _cleanup_free_ int *fds = NULL;
        char buf[256] = "";
        ssize_t n = -1;
        unsigned max;
        Kernel k;

        kernel_start(&k);
        max = control_connections_max(k.control);
        ck_assert_uint_ge(max, CONTROL_CONNECTIONS_MIN);
        fds = calloc(max + 1, sizeof *fds);
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", control_path(k.control));
        for (unsigned i = 0; i <= max; i++) {
                fds[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
                ck_assert_int_ge(fds[i], 0);
                ck_assert_int_eq(connect(fds[i], (struct sockaddr *)&sa, sizeof sa), 0);
                for (int t = 0; t < 5; t++)
                        uv_run(&k.loop, UV_RUN_NOWAIT);
        }
        ck_assert_uint_eq(control_connections(k.control), max);
        /* the one past the bound is told so and closed */
        for (int64_t end = test_now_ms() + 5000; n < 0 && test_now_ms() < end;) {
                n = read(fds[max], buf, sizeof buf - 1);
                if (n >= 0)
                        break;
                uv_run(&k.loop, UV_RUN_NOWAIT);
                uv_wait_event(&k.loop, fds[max], 100);
        }
        ck_assert_int_gt(n, 0);
        buf[n] = 0;
        ck_assert_ptr_nonnull(strstr(buf, CONTROL_ERROR_BUSY));
        /* a slot frees when a client leaves */
        close(fds[0]);
        for (int t = 0; t < 10; t++)
                uv_run(&k.loop, UV_RUN_NOWAIT);
        ck_assert_uint_eq(control_connections(k.control), max - 1);
        for (unsigned i = 1; i <= max; i++)
                close(fds[i]);
        kernel_stop(&k);
}
END_TEST

/* A client that asks and leaves before the reply: the send fails (EPIPE), the
 * connection is dropped, and the kernel goes on (it once restarted the poll of
 * the closing handle: libuv's assertion ended the kernel). */
START_TEST(test_client_gone_before_its_reply)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        Kernel k;
        Job j;

        kernel_start(&k);
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", control_path(k.control));
        for (int round = 0; round < 3; round++) {
                int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

                ck_assert_int_ge(fd, 0);
                ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
                ck_assert_int_eq(send(fd, PS_LINE, sizeof PS_LINE - 1, MSG_NOSIGNAL),
                                 (ssize_t)sizeof PS_LINE - 1);
                close(fd);
                for (int64_t end = test_now_ms() + 5000;
                     (k.list_calls <= round || control_connections(k.control) > 0) &&
                     test_now_ms() < end;) {
                        uv_run(&k.loop, UV_RUN_NOWAIT);
                        uv_wait_event(&k.loop, -1, 100);
                }
                ck_assert_int_eq(k.list_calls, round + 1);
                ck_assert_uint_eq(control_connections(k.control), 0);
        }
        j = (Job){.k = &k, .fn = raw_job, .send = PS_LINE, .send_len = sizeof PS_LINE - 1};
        run_job(&j);
        ck_assert_ptr_nonnull(strstr(j.text, "org.x.one"));
        kernel_stop(&k);
}
END_TEST

START_TEST(test_reply_too_large)
{
        Kernel k;
        Job j = {.k = &k, .fn = raw_job, .send = PS_LINE, .send_len = sizeof PS_LINE - 1};

        kernel_start(&k);
        k.big = true;
        run_job(&j);
        ck_assert_msg(strstr(j.text, "larger than the output bound"), "got %.100s", j.text);
        ck_assert_ptr_nonnull(strstr(j.text, CONTROL_ERROR_FAILED));
        ck_assert_uint_lt(strlen(j.text), 200);
        kernel_stop(&k);
}
END_TEST

START_TEST(test_idle_client_dropped)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        struct timespec start, now;
        char buf[512];
        Kernel k;
        int fd;

        kernel_start(&k);
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", control_path(k.control));
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        (void)!write(fd, "{\"method\":", 10); /* half a request, then silence */
        clock_gettime(CLOCK_MONOTONIC, &start);
        do {
                uv_run(&k.loop, UV_RUN_NOWAIT);
                uv_wait_event(&k.loop, -1, 1000); /* the idle timer's next turn */
                clock_gettime(CLOCK_MONOTONIC, &now);
                if (now.tv_sec - start.tv_sec < CONTROL_IDLE_MS / 1000 - 1)
                        ck_assert_uint_eq(control_connections(k.control), 1);
        } while (control_connections(k.control) > 0 && now.tv_sec - start.tv_sec < 20);
        ck_assert_uint_eq(control_connections(k.control), 0);
        ck_assert_int_ge(now.tv_sec - start.tv_sec, CONTROL_IDLE_MS / 1000 - 1);
        ck_assert_int_gt(read(fd, buf, sizeof buf), 0); /* told */
        ck_assert_ptr_nonnull(memmem(buf, sizeof buf, CONTROL_ERROR_TIMEOUT, 15));
        while (read(fd, buf, sizeof buf) > 0)
                ;
        ck_assert_int_eq(read(fd, buf, sizeof buf), 0); /* closed */
        close(fd);
        kernel_stop(&k);
}
END_TEST

/* Makes run/<pid>.sock for a dead pid, with nothing listening on it. */
static pid_t make_stale_socket(void)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        char dir[64];
        pid_t pid;
        int fd;

        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0)
                _exit(0);
        ck_assert_int_eq(waitpid(pid, NULL, 0), pid);
        snprintf(dir, sizeof dir, "%s/run", state);
        mkdir(dir, 0700);
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s/%d.sock", dir, (int)pid);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        close(fd);
        ck_assert_int_eq(access(sa.sun_path, F_OK), 0);
        return pid;
}

static bool socket_exists(pid_t pid)
{
        char path[256];

        snprintf(path, sizeof path, "%s/run/%d.sock", state, (int)pid);
        return access(path, F_OK) == 0;
}

START_TEST(test_stale_sockets_removed)
{
        json_t *req = NULL;
        Kernel k;
        Job j = {.k = &k, .fn = client_job, .method = "org.cella.Ps"};
        pid_t dead;

        /* by the client, which finds no kernel */
        dead = make_stale_socket();
        ck_assert_int_eq(control_each_kernel(state, "org.cella.Ps", req, collect, &j), 0);
        ck_assert(!socket_exists(dead));

        /* by a kernel starting */
        dead = make_stale_socket();
        kernel_start(&k);
        ck_assert(!socket_exists(dead));
        /* a live pid's socket that refuses (a kernel between bind and rename, say) stays:
         * pid 1 is alive */
        {
                struct sockaddr_un sa = {.sun_family = AF_UNIX};
                int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

                snprintf(sa.sun_path, sizeof sa.sun_path, "%s/run/1.sock", state);
                ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
                close(fd);
        }
        run_job(&j);
        ck_assert_int_eq(j.result, 1); /* only ours answered */
        ck_assert(socket_exists(1));
        json_decref(j.replies);
        kernel_stop(&k);
        json_decref(req);
}
END_TEST

static void on_mute(pid_t pid, int error, void *ud)
{
        Job *j = ud;

        json_array_append_new(j->mutes, json_pack("[ii]", (int)pid, error));
}

static void *ask_job(Job *j)
{
        j->replies = json_array();
        j->mutes = json_array();
        j->result = control_ask_kernels(state, j->method, j->request, j->timeout_ms, collect,
                                        on_mute, j);
        return NULL;
}

/* Kernels that are alive but do not answer (their socket accepts, nothing reads
 * it) are asked at the same time as the others: three mute kernels cost one
 * deadline, not three, each is reported to the mute callback with -ETIMEDOUT, and
 * the kernel that answers is still listed. */
START_TEST(test_mute_kernels_asked_at_once)
{
        json_t *req = json_object();
        Kernel k;
        Job j = {.k = &k,
                 .fn = ask_job,
                 .method = "org.cella.Ps",
                 .request = req,
                 .timeout_ms = 1000};
        pid_t kids[3];
        int listeners[3], hold[2];
        uint64_t t0, elapsed;

        kernel_start(&k);
        ck_assert_int_eq(pipe2(hold, O_CLOEXEC), 0);
        for (size_t i = 0; i < ELEMENTSOF(kids); i++) {
                struct sockaddr_un sa = {.sun_family = AF_UNIX};
                char c;

                /* a live pid that owns a socket nobody reads: a stopped kernel */
                kids[i] = fork();
                ck_assert_int_ge(kids[i], 0);
                if (kids[i] == 0) {
                        close(hold[1]);
                        _exit(read(hold[0], &c, 1) < 0);
                }
                snprintf(sa.sun_path, sizeof sa.sun_path, "%s/run/%d.sock", state, (int)kids[i]);
                listeners[i] = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                ck_assert_int_eq(bind(listeners[i], (struct sockaddr *)&sa, sizeof sa), 0);
                ck_assert_int_eq(listen(listeners[i], 8), 0);
        }
        close(hold[0]);

        t0 = now_monotonic_ms();
        run_job(&j);
        elapsed = now_monotonic_ms() - t0;
        ck_assert_int_eq(j.result, 1);
        ck_assert_int_eq(json_array_size(j.replies), 1);
        ck_assert_int_eq(json_integer_value(json_array_get(json_array_get(j.replies, 0), 0)),
                         getpid());
        ck_assert_int_eq(json_array_size(j.mutes), 3);
        for (size_t i = 0; i < 3; i++) {
                json_t *m = json_array_get(j.mutes, i);
                bool known = false;

                for (size_t n = 0; n < 3; n++)
                        known |= json_integer_value(json_array_get(m, 0)) == kids[n];
                ck_assert(known);
                ck_assert_int_eq(json_integer_value(json_array_get(m, 1)), -ETIMEDOUT);
        }
        /* one deadline: asked one after the other they would take 3 s */
        ck_assert_uint_ge(elapsed, 1000);
        ck_assert_uint_lt(elapsed, 2500);

        close(hold[1]);
        for (size_t i = 0; i < 3; i++) {
                close(listeners[i]);
                ck_assert_int_eq(waitpid(kids[i], NULL, 0), kids[i]);
        }
        json_decref(j.replies);
        json_decref(j.mutes);
        kernel_stop(&k);
        json_decref(req);
}
END_TEST

START_TEST(test_no_run_dir_means_no_kernels)
{
        json_t *req = json_object();
        Job j = {.replies = json_array()};

        ck_assert_int_eq(control_each_kernel(state, "org.cella.Ps", req, collect, &j), 0);
        ck_assert_int_eq(control_notify_grants_changed(state, "org.x.one"), 0);
        ck_assert_int_eq(
                control_each_kernel("/nonexistent/cella", "org.cella.Ps", req, collect, &j), 0);
        ck_assert_int_eq(control_each_kernel(state, NULL, req, collect, &j), -EINVAL);
        ck_assert_int_eq(control_each_kernel(state, "ps", req, collect, &j), -EINVAL);
        json_decref(req);
        json_decref(j.replies);
}
END_TEST

START_TEST(test_foreign_run_dir_refused)
{
        char dir[256];
        Control *c = NULL;
        uv_loop_t loop;

        snprintf(dir, sizeof dir, "%s/run", state);
        ck_assert_int_eq(mkdir(dir, 0777), 0);
        ck_assert_int_eq(chown(dir, 65534, 65534), 0);
        ck_assert_int_eq(uv_loop_init(&loop), 0);
        ck_assert_int_eq(control_new(&loop, &c), 0);
        ck_assert_int_eq(control_listen_kernel(c, state), -EPERM);
        c = control_close(c);
        uv_run(&loop, UV_RUN_DEFAULT);
        ck_assert_int_eq(uv_loop_close(&loop), 0);
}
END_TEST

/* The peer check: even through a loosened directory, another uid gets nothing. */
START_TEST(test_other_uid_is_refused)
{
        char dir[256];
        Kernel k;
        pid_t pid;
        int status;

        kernel_start(&k);
        snprintf(dir, sizeof dir, "%s/run", state);
        ck_assert_int_eq(chmod(state, 0755), 0);
        ck_assert_int_eq(chmod(dir, 0755), 0);
        ck_assert_int_eq(chmod(control_path(k.control), 0666), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                struct sockaddr_un sa = {.sun_family = AF_UNIX};
                char buf[64];
                ssize_t n;
                int fd;

                if (setresgid(65534, 65534, 65534) < 0 || setresuid(65534, 65534, 65534) < 0)
                        _exit(10);
                snprintf(sa.sun_path, sizeof sa.sun_path, "%s", control_path(k.control));
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
                        _exit(11);
                (void)!write(fd, PS_LINE, sizeof PS_LINE - 1);
                n = read(fd, buf, sizeof buf);
                _exit(n == 0 || (n < 0 && errno == ECONNRESET) ? 0 : 12); /* closed, no reply */
        }
        while (waitpid(pid, &status, WNOHANG) == 0)
                uv_run(&k.loop, UV_RUN_NOWAIT);
        ck_assert(WIFEXITED(status));
        ck_assert_int_eq(WEXITSTATUS(status), 0);
        ck_assert_int_eq(k.list_calls, 0);
        kernel_stop(&k);
}
END_TEST

/* --- the API on a public socket: every error name, pipelining, streams, fds,
 * bounds, many clients, access --- */

typedef struct Api {
        uv_loop_t loop;
        uv_async_t async;
        Control *control;
        char path[100]; /* the public socket */
        uv_timer_t later;
        ControlCall *later_call;
        ControlCall *held; /* a stream kept open until the client goes */
        int aborted;
        int flood_error; /* what control_reply_continues() said to the flood */
        unsigned flood_sent;
        int fds_seen;
} Api;

static int api_echo(ControlCall *call, json_t *params, void *ud)
{
        return control_reply(call, json_deep_copy(params));
}

static int api_fail(ControlCall *call, json_t *params, void *ud)
{
        return -ENOENT; /* no reply: org.cella.Failed with errno 2 */
}

static int api_ok(ControlCall *call, json_t *params, void *ud)
{
        return control_reply(call, json_pack("{s:s}", "method", control_call_method(call)));
}

static void on_later(uv_timer_t *t)
{
        Api *a = t->data;

        control_reply(TAKE_PTR(a->later_call), json_pack("{s:s}", "said", "later"));
}

/* Replies from the loop, 20 ms later: a request pipelined after it waits. */
static int api_later(ControlCall *call, json_t *params, void *ud)
{
        Api *a = ud;

        ck_assert_ptr_null(a->later_call);
        a->later_call = call;
        return uv_timer_start(&a->later, on_later, 20, 0);
}

static void on_held_abort(ControlCall *call, void *ud)
{
        Api *a = ud;

        ck_assert_ptr_eq(call, a->held);
        a->held = NULL;
        a->aborted++;
}

/* {"count": N, "hold": bool}: N replies that continue, then the last one, or (hold)
 * none: the stream stays open until the client goes. */
static int api_stream(ControlCall *call, json_t *params, void *ud)
{
        Api *a = ud;
        json_int_t n = json_integer_value(json_object_get(params, "count"));

        if (!control_call_more(call))
                return control_reply_invalid_parameter(call, "more", "a stream needs more");
        for (json_int_t i = 0; i < n; i++)
                ck_assert_int_eq(control_reply_continues(call, json_pack("{s:I}", "i", i)), 0);
        if (json_is_true(json_object_get(params, "hold"))) {
                a->held = call;
                control_call_on_abort(call, on_held_abort, a);
                return 0;
        }
        return control_reply(call, json_pack("{s:I}", "i", n));
}

/* A stream of 64 KiB replies, sent as fast as the loop runs, to a reader that does
 * not read: control_reply_continues() must refuse past the output bound. */
static int api_flood(ControlCall *call, json_t *params, void *ud)
{
        Api *a = ud;
        char *blob = malloc(64 * 1024);
        int r = 0;

        memset(blob, 'f', 64 * 1024 - 1);
        blob[64 * 1024 - 1] = 0;
        control_call_on_abort(call, on_held_abort, a);
        a->held = call;
        while (r == 0 && a->flood_sent < 1000) {
                size_t before = control_call_queued(call);

                r = control_reply_continues(call, json_pack("{s:s}", "blob", blob));
                if (r == 0)
                        a->flood_sent++;
                if (r == 0) /* queued, or taken by the socket at once */
                        ck_assert_uint_le(control_call_queued(call), before + 64 * 1024 + 64);
                ck_assert_uint_le(control_call_queued(call), CONTROL_OUTPUT_MAX);
        }
        ck_assert_uint_eq(control_call_queued(call), 0); /* dropped */
        free(blob);
        a->flood_error = r;
        return 0; /* the abort callback ends it */
}

/* Takes the first fd and reads what it holds; the others stay (and are closed by
 * the server after the call). */
static int api_fds(ControlCall *call, json_t *params, void *ud)
{
        Api *a = ud;
        unsigned n = control_call_n_fds(call);
        char buf[64] = "";
        int fd;

        a->fds_seen = (int)n;
        fd = control_call_take_fd(call, 0);
        if (fd >= 0) {
                ssize_t k = read(fd, buf, sizeof buf - 1);

                buf[k > 0 ? k : 0] = 0;
                close(fd);
                ck_assert_int_eq(control_call_take_fd(call, 0), -EBADF); /* taken */
        }
        ck_assert_int_eq(control_call_take_fd(call, CONTROL_FDS_MAX), -EBADF);
        return control_reply(call, json_pack("{s:i,s:s}", "n", (int)n, "data", buf));
}

static int api_app(ControlCall *call, json_t *params, void *ud)
{
        const char *app;
        bool missing;

        app = control_param_app(call, params, "app", &missing);
        if (missing)
                return control_reply_invalid_parameter(call, "app", "missing");
        if (!app)
                return 0;
        if (strcmp(app, "org.x.frozen") == 0)
                return control_reply_error(call, CONTROL_ERROR_APP_STATE,
                                           json_pack("{s:s,s:s}", "app", app, "state", "frozen"));
        return control_reply_error(call, CONTROL_ERROR_NO_SUCH_APP, json_pack("{s:s}", "app", app));
}

static const ControlMethod api_methods[] = {
        {"org.test.Echo", CONTROL_ACCESS_ANYONE, api_echo},
        {"org.test.Fail", CONTROL_ACCESS_ANYONE, api_fail},
        {"org.test.Root", CONTROL_ACCESS_ROOT, api_ok},
        {"org.test.Manage", CONTROL_ACCESS_MANAGE, api_ok},
        {"org.test.Read", CONTROL_ACCESS_READ, api_ok},
        {"org.test.Later", CONTROL_ACCESS_ANYONE, api_later},
        {"org.test.Stream", CONTROL_ACCESS_ANYONE, api_stream},
        {"org.test.Flood", CONTROL_ACCESS_ANYONE, api_flood},
        {"org.test.Fds", CONTROL_ACCESS_ANYONE, api_fds},
        {"org.test.App", CONTROL_ACCESS_ANYONE, api_app},
};

static void api_start(Api *a)
{
        static const ControlMethod dup = {"org.test.Echo", CONTROL_ACCESS_ROOT, api_echo};
        static const ControlMethod bad = {"Echo", CONTROL_ACCESS_ROOT, api_echo};

        memset(a, 0, sizeof *a);
        ck_assert_int_eq(uv_loop_init(&a->loop), 0);
        ck_assert_int_eq(uv_async_init(&a->loop, &a->async, on_async), 0);
        ck_assert_int_eq(uv_timer_init(&a->loop, &a->later), 0);
        a->later.data = a;
        ck_assert_int_eq(control_new(&a->loop, &a->control), 0);
        ck_assert_int_eq(control_add_methods(a->control, api_methods, ELEMENTSOF(api_methods), a),
                         0);
        ck_assert_int_eq(control_add_methods(a->control, &dup, 1, a), -EEXIST);
        ck_assert_int_eq(control_add_methods(a->control, &bad, 1, a), -EINVAL);
        snprintf(a->path, sizeof a->path, "%s/api.sock", state);
        ck_assert_int_eq(control_listen_path(a->control, a->path), 0);
}

static void api_stop(Api *a)
{
        struct stat st;

        a->control = control_close(a->control);
        uv_close((uv_handle_t *)&a->async, NULL);
        uv_close((uv_handle_t *)&a->later, NULL);
        uv_run(&a->loop, UV_RUN_DEFAULT);
        ck_assert_int_eq(uv_loop_close(&a->loop), 0);
        ck_assert_int_eq(lstat(a->path, &st), -1); /* unlinked */
}

typedef struct ApiJob {
        Api *a;
        void (*fn)(struct ApiJob *);
        json_t *replies; /* every reply of the last call, in order */
        int result;
        int extra;
        char text[256 * 1024];
} ApiJob;

static void *api_job_main(void *arg)
{
        ApiJob *j = arg;

        j->fn(j);
        uv_async_send(&j->a->async);
        return NULL;
}

static void api_run(ApiJob *j)
{
        pthread_t t;

        ck_assert_int_eq(pthread_create(&t, NULL, api_job_main, j), 0);
        uv_run(&j->a->loop, UV_RUN_DEFAULT);
        ck_assert_int_eq(pthread_join(t, NULL), 0);
}

static int api_collect(json_t *reply, bool continues, void *ud)
{
        ApiJob *j = ud;

        if (continues != json_is_true(json_object_get(reply, "continues")))
                return -EBADMSG;
        json_array_append(j->replies, reply);
        return 0;
}

/* A raw client of path: sends what, reads until EOF or a 2 s silence into text. */
static int raw_exchange(const char *path, const char *what, size_t len, char *text, size_t size)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        struct timeval tv = {.tv_sec = 2};
        size_t got = 0;
        int fd, r = 0;

        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
                return -errno;
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (len && send(fd, what, len, MSG_NOSIGNAL) < 0)
                r = -errno;
        for (;;) {
                ssize_t n = read(fd, text + got, size - 1 - got);

                if (n <= 0) {
                        r = n == 0 || errno == ECONNRESET ? 1 : r; /* 1: closed by the server */
                        break;
                }
                got += (size_t)n;
        }
        text[got] = 0;
        close(fd);
        return r;
}

static json_t *line_at(const char *text, unsigned i)
{
        const char *p = text;

        for (; i > 0 && p; i--) {
                p = strchr(p, '\n');
                if (p)
                        p++;
        }
        if (!p || !*p)
                return NULL;
        return json_loadb(p, strcspn(p, "\n"), 0, NULL);
}

static void errors_job(ApiJob *j)
{
        static const char in[] =
                "{\"method\":\"org.test.Fail\"}\n"
                "{\"method\":\"org.test.Nope\"}\n"
                "{\"method\":\"org.test.App\",\"parameters\":{\"app\":\"../etc\"}}\n"
                "{\"method\":\"org.test.App\",\"parameters\":{\"app\":\"org.x.gone\"}}\n"
                "{\"method\":\"org.test.App\",\"parameters\":{\"app\":\"org.x.frozen\"}}\n"
                "not json\n"
                "{\"method\":\"org.test.Echo\",\"oneway\":true}\n"
                "{\"method\":\"org.test.Echo\",\"parameters\":{\"x\":[1]}}\n";

        j->result = raw_exchange(j->a->path, in, sizeof in - 1, j->text, sizeof j->text);
}

/* Each error the server or a method gives, in the documented shape, in the order
 * of the requests; a oneway request gets nothing; the connection stays open. */
START_TEST(test_api_error_names)
{
        static const char *const want[] = {
                CONTROL_ERROR_FAILED,
                CONTROL_ERROR_METHOD_NOT_FOUND,
                CONTROL_ERROR_INVALID_PARAMETER,
                CONTROL_ERROR_NO_SUCH_APP,
                CONTROL_ERROR_APP_STATE,
                CONTROL_ERROR_INVALID_REQUEST,
        };
        Api a;
        ApiJob j = {.a = &a, .fn = errors_job};
        json_t *r, *p;

        api_start(&a);
        api_run(&j);
        ck_assert_int_eq(j.result, 0); /* not closed: the client timed out */
        for (unsigned i = 0; i < ELEMENTSOF(want); i++) {
                r = line_at(j.text, i);
                ck_assert_msg(r, "reply %u missing: %s", i, j.text);
                ck_assert_str_eq(control_reply_error_name(r), want[i]);
                p = control_reply_parameters(r);
                ck_assert(json_is_string(json_object_get(p, "message")));
                if (i == 0)
                        ck_assert_int_eq(json_integer_value(json_object_get(p, "errno")), ENOENT);
                if (i == 1)
                        ck_assert_str_eq(json_string_value(json_object_get(p, "method")),
                                         "org.test.Nope");
                if (i == 2)
                        ck_assert_str_eq(json_string_value(json_object_get(p, "parameter")), "app");
                if (i == 4)
                        ck_assert_str_eq(json_string_value(json_object_get(p, "state")), "frozen");
                json_decref(r);
        }
        /* the oneway Echo said nothing; the last Echo is the 7th line */
        r = line_at(j.text, ELEMENTSOF(want));
        ck_assert_ptr_null(control_reply_error_name(r));
        ck_assert_int_eq(json_integer_value(json_array_get(
                                 json_object_get(control_reply_parameters(r), "x"), 0)),
                         1);
        json_decref(r);
        ck_assert_ptr_null(line_at(j.text, ELEMENTSOF(want) + 1));
        api_stop(&a);
}
END_TEST

static void pipeline_job(ApiJob *j)
{
        static const char in[] = "{\"method\":\"org.test.Later\"}\n"
                                 "{\"method\":\"org.test.Echo\",\"parameters\":{\"n\":1}}\n"
                                 "{\"method\":\"org.test.Later\"}\n"
                                 "{\"method\":\"org.test.Echo\",\"parameters\":{\"n\":2}}\n";

        j->result = raw_exchange(j->a->path, in, sizeof in - 1, j->text, sizeof j->text);
}

/* Requests pipelined in one write are answered in their order, even when the first
 * one's reply comes later from the loop and the next could be answered at once. */
START_TEST(test_api_pipelining_in_order)
{
        Api a;
        ApiJob j = {.a = &a, .fn = pipeline_job};
        json_t *r;

        api_start(&a);
        api_run(&j);
        for (unsigned i = 0; i < 4; i++) {
                r = line_at(j.text, i);
                ck_assert_msg(r, "reply %u missing: %s", i, j.text);
                if (i % 2 == 0)
                        ck_assert_str_eq(json_string_value(json_object_get(
                                                 control_reply_parameters(r), "said")),
                                         "later");
                else
                        ck_assert_int_eq(json_integer_value(
                                                 json_object_get(control_reply_parameters(r), "n")),
                                         i / 2 + 1);
                json_decref(r);
        }
        api_stop(&a);
}
END_TEST

static void stream_job(ApiJob *j)
{
        _cleanup_control_client_ ControlClient *cl = NULL;

        j->replies = json_array();
        j->result = control_client_connect(j->a->path, &cl);
        if (j->result < 0)
                return;
        j->result = control_client_call(cl, "org.test.Stream", json_pack("{s:i}", "count", 3), NULL,
                                        0, true, api_collect, j);
        if (j->result != 0)
                return;
        /* a stream asked without "more" is refused by its method */
        j->extra = control_client_call(cl, "org.test.Stream", json_pack("{s:i}", "count", 3), NULL,
                                       0, false, NULL, NULL);
}

static int stop_after_two(json_t *reply, bool continues, void *ud)
{
        ApiJob *j = ud;

        json_array_append(j->replies, reply);
        return json_array_size(j->replies) == 2 ? -ECANCELED : 0;
}

static void held_job(ApiJob *j)
{
        ControlClient *cl = NULL;

        j->replies = json_array();
        j->result = control_client_connect(j->a->path, &cl);
        if (j->result < 0)
                return;
        j->result = control_client_call(cl, "org.test.Stream",
                                        json_pack("{s:i,s:b}", "count", 2, "hold", 1), NULL, 0,
                                        true, stop_after_two, j);
        control_client_free(cl); /* the client goes mid-stream */
}

START_TEST(test_api_stream_and_abort)
{
        Api a;
        ApiJob j = {.a = &a, .fn = stream_job};

        api_start(&a);
        api_run(&j);
        ck_assert_int_eq(j.result, 0);
        ck_assert_uint_eq(json_array_size(j.replies), 4);
        for (unsigned i = 0; i < 4; i++) {
                json_t *r = json_array_get(j.replies, i);

                ck_assert_int_eq(json_is_true(json_object_get(r, "continues")), i < 3);
                ck_assert_int_eq(
                        json_integer_value(json_object_get(control_reply_parameters(r), "i")), i);
        }
        ck_assert_int_eq(j.extra, 1); /* an error reply */
        json_decref(j.replies);

        /* A client that goes mid-stream: the method hears of it once, from the loop. */
        j = (ApiJob){.a = &a, .fn = held_job};
        api_run(&j);
        ck_assert_int_eq(j.result, -ECANCELED);
        for (int64_t end = test_now_ms() + 5000; a.aborted == 0 && test_now_ms() < end;) {
                uv_run(&a.loop, UV_RUN_NOWAIT);
                uv_wait_event(&a.loop, -1, 100);
        }
        ck_assert_int_eq(a.aborted, 1);
        ck_assert_ptr_null(a.held);
        for (int64_t end = test_now_ms() + 5000;
             control_connections(a.control) > 0 && test_now_ms() < end;) {
                uv_run(&a.loop, UV_RUN_NOWAIT);
                uv_wait_event(&a.loop, -1, 100);
        }
        ck_assert_uint_eq(control_connections(a.control), 0);
        json_decref(j.replies);

        /* A stream held open when the server closes: aborted too. */
        j = (ApiJob){.a = &a, .fn = held_job};
        api_run(&j);
        api_stop(&a);
        ck_assert_int_eq(a.aborted, 2);
        json_decref(j.replies);
}
END_TEST

/* Waits (an event: poll) until fd reads EOF, at most 5 s. */
static bool eof_within(int fd)
{
        char c;

        for (int64_t end = test_now_ms() + 5000; test_now_ms() < end;) {
                struct pollfd p = {.fd = fd, .events = POLLIN};

                if (poll(&p, 1, 100) > 0 && read(fd, &c, 1) == 0)
                        return true;
        }
        return false;
}

/* Sends what with fds on its first byte. */
static ssize_t send_with_fds(int sock, const char *what, size_t len, const int *fds, size_t n)
{
        union {
                struct cmsghdr align;
                char buf[CMSG_SPACE(sizeof(int) * 8)];
        } cbuf = {};
        struct iovec iov = {.iov_base = (void *)what, .iov_len = len};
        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
        struct cmsghdr *cm;

        mh.msg_control = &cbuf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * n);
        cm = CMSG_FIRSTHDR(&mh);
        cm->cmsg_level = SOL_SOCKET;
        cm->cmsg_type = SCM_RIGHTS;
        cm->cmsg_len = CMSG_LEN(sizeof(int) * n);
        memcpy(CMSG_DATA(cm), fds, sizeof(int) * n);
        return sendmsg(sock, &mh, MSG_NOSIGNAL);
}

/* Waits until the server has read everything sock sent (SIOCOUTQ: a Unix socket's
 * bytes not yet taken by its peer). */
static bool peer_read_all(int sock)
{
        for (int64_t end = test_now_ms() + 5000; test_now_ms() < end;) {
                int q = -1;

                if (ioctl(sock, SIOCOUTQ, &q) == 0 && q == 0)
                        return true;
                struct pollfd p = {.fd = -1};
                (void)poll(&p, 0, 5); /* the server runs in the main thread */
        }
        return false;
}

static int reply_param_int(json_t *replies, const char *key)
{
        json_t *last = json_array_get(replies, json_array_size(replies) - 1);

        return (int)json_integer_value(json_object_get(control_reply_parameters(last), key));
}

static void fds_job(ApiJob *j)
{
        _cleanup_control_client_ ControlClient *cl = NULL;
        int p[6][2], fds[6];
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int sock, n = 0;
        static char big[CONTROL_LINE_MAX + 64];

        for (int i = 0; i < 6; i++) {
                ck_assert_int_eq(pipe2(p[i], O_CLOEXEC), 0);
                fds[i] = p[i][1];
        }
        j->replies = json_array();
        ck_assert_int_eq(control_client_connect(j->a->path, &cl), 0);

        /* one fd, taken by the method, which reads what the pipe holds */
        ck_assert_int_eq(write(p[0][1], "hello", 5), 5);
        {
                int rd = p[0][0];

                ck_assert_int_eq(control_client_call(cl, "org.test.Fds", NULL, &rd, 1, false,
                                                     api_collect, j),
                                 0);
        }
        ck_assert_int_eq(reply_param_int(j->replies, "n"), 1);
        ck_assert_str_eq(json_string_value(json_object_get(
                                 control_reply_parameters(json_array_get(j->replies, 0)), "data")),
                         "hello");

        /* four: the three the method did not take are closed after the call */
        ck_assert_int_eq(
                control_client_call(cl, "org.test.Fds", NULL, fds + 1, 4, false, api_collect, j),
                0);
        ck_assert_int_eq(reply_param_int(j->replies, "n"), 4);
        for (int i = 1; i <= 4; i++)
                p[i][1] = safe_close(p[i][1]); /* ours; the server's are the last */
        for (int i = 1; i <= 4; i++)
                ck_assert_msg(eof_within(p[i][0]), "fd %d still open in the server", i);

        /* more than CONTROL_FDS_MAX (5): the client refuses; raw, the server keeps 5 */
        ck_assert_int_eq(control_client_call(cl, "org.test.Fds", NULL, fds, CONTROL_FDS_MAX + 1,
                                             false, NULL, NULL),
                         -EINVAL);
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", j->a->path);
        sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_eq(connect(sock, (struct sockaddr *)&sa, sizeof sa), 0);
        {
                static const char req[] = "{\"method\":\"org.test.Fds\"}\n";
                int six[6];
                char buf[256];
                ssize_t k;

                for (int i = 0; i < 6; i++)
                        six[i] = p[5][1];
                ck_assert_int_eq(send_with_fds(sock, req, sizeof req - 1, six, 6),
                                 (ssize_t)sizeof req - 1);
                k = read(sock, buf, sizeof buf - 1);
                ck_assert_int_gt(k, 0);
                buf[k] = 0;
                ck_assert_msg(strstr(buf, "\"n\":5"), "%s", buf);

                /* fds on a byte that is not a request's first: closed, the request
                 * gets none */
                ck_assert_int_eq(send(sock, "{\"method\":", 10, MSG_NOSIGNAL), 10);
                ck_assert(peer_read_all(sock));
                ck_assert_int_eq(send_with_fds(sock, "\"org.test.Fds\"}\n", 16, &p[5][1], 1), 16);
                k = read(sock, buf, sizeof buf - 1);
                ck_assert_int_gt(k, 0);
                buf[k] = 0;
                ck_assert_msg(strstr(buf, "\"n\":0"), "%s", buf);
                p[5][1] = safe_close(p[5][1]);
                ck_assert_msg(eof_within(p[5][0]), "a stray fd stayed open in the server");

                /* fds with a line over the bound: closed, and the client dropped */
                ck_assert_int_eq(pipe2(p[5], O_CLOEXEC), 0);
                memset(big, ' ', sizeof big);
                big[0] = '{';
                (void)send_with_fds(sock, big, sizeof big, &p[5][1], 1);
                p[5][1] = safe_close(p[5][1]);
                ck_assert_msg(eof_within(p[5][0]), "an fd of a long line stayed open");
                while ((k = read(sock, buf, sizeof buf - 1)) > 0)
                        n++;
                ck_assert_int_eq(k, 0);
                ck_assert_int_gt(n, 0); /* the error line came first */
        }
        close(sock);
        for (int i = 0; i < 6; i++) {
                safe_close(p[i][0]);
                if (i == 0 || i == 5)
                        safe_close(p[i][1]);
        }
        j->result = 0;
}

START_TEST(test_api_fd_passing)
{
        Api a;
        ApiJob j = {.a = &a, .fn = fds_job, .result = -1};

        api_start(&a);
        api_run(&j);
        ck_assert_int_eq(j.result, 0);
        json_decref(j.replies);
        api_stop(&a);
}
END_TEST

/* Two requests read together, the second with a descriptor: it is the second's
 * (the socket's kernel ends a read with the message that carried descriptors),
 * whatever came before it in the same read. */
START_TEST(test_api_fds_of_a_pipelined_request)
{
        static const char a_line[] = "{\"method\":\"org.test.Echo\",\"parameters\":{\"a\":1}}\n";
        static const char b_line[] = "{\"method\":\"org.test.Fds\"}\n";
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        char text[1024] = "";
        size_t got = 0;
        int sock, p[2];
        json_t *r;
        Api a;

        api_start(&a);
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", a.path);
        ck_assert_int_eq(pipe2(p, O_CLOEXEC), 0);
        ck_assert_int_eq(write(p[1], "piped", 5), 5);
        sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_eq(connect(sock, (struct sockaddr *)&sa, sizeof sa), 0);
        /* both are in the socket before the server runs: one read takes both */
        ck_assert_int_eq(send(sock, a_line, sizeof a_line - 1, MSG_NOSIGNAL),
                         (ssize_t)sizeof a_line - 1);
        ck_assert_int_eq(send_with_fds(sock, b_line, sizeof b_line - 1, &p[0], 1),
                         (ssize_t)sizeof b_line - 1);
        p[0] = safe_close(p[0]);
        for (int64_t end = test_now_ms() + 5000; test_now_ms() < end;) {
                const char *nl = strchr(text, '\n');
                ssize_t k;

                if (nl && strchr(nl + 1, '\n'))
                        break; /* both replies */
                uv_run(&a.loop, UV_RUN_NOWAIT);
                uv_wait_event(&a.loop, sock, 100);
                k = recv(sock, text + got, sizeof text - 1 - got, MSG_DONTWAIT);
                if (k > 0)
                        got += (size_t)k;
                text[got] = 0;
        }
        r = line_at(text, 1);
        ck_assert_msg(r, "no second reply: %s", text);
        ck_assert_int_eq(json_integer_value(json_object_get(control_reply_parameters(r), "n")), 1);
        ck_assert_str_eq(json_string_value(json_object_get(control_reply_parameters(r), "data")),
                         "piped");
        json_decref(r);
        close(sock);
        close(p[1]);
        api_stop(&a);
}
END_TEST

/* A stream to a client that never reads: the server queues at most
 * CONTROL_OUTPUT_MAX bytes for it, then the method is told (-ENOBUFS), the client
 * is sent org.cella.Overrun and dropped, and the call is aborted. */
START_TEST(test_api_output_bound_stalled_reader)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        static const char req[] = "{\"method\":\"org.test.Flood\",\"more\":true}\n";
        int sock, rcv = 4096;
        char *buf = malloc(CONTROL_OUTPUT_MAX);
        size_t got = 0;
        ssize_t k;
        Api a;

        api_start(&a);
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", a.path);
        sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_eq(setsockopt(sock, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof rcv), 0);
        ck_assert_int_eq(connect(sock, (struct sockaddr *)&sa, sizeof sa), 0);
        ck_assert_int_eq(send(sock, req, sizeof req - 1, MSG_NOSIGNAL), (ssize_t)sizeof req - 1);
        for (int64_t end = test_now_ms() + 10000; a.aborted == 0 && test_now_ms() < end;) {
                uv_run(&a.loop, UV_RUN_NOWAIT);
                uv_wait_event(&a.loop, -1, 100);
        }
        ck_assert_int_eq(a.flood_error, -ENOBUFS);
        ck_assert_int_eq(a.aborted, 1);
        /* what was queued fit the bound: 64 replies of 64 KiB */
        ck_assert_uint_le((uint64_t)a.flood_sent * 64 * 1024, CONTROL_OUTPUT_MAX);
        ck_assert_uint_ge(a.flood_sent, 16);
        ck_assert_uint_eq(control_connections(a.control), 0);
        /* the client reads what reached its socket, then the Overrun line, then EOF */
        while ((k = read(sock, buf + got, CONTROL_OUTPUT_MAX - 1 - got)) > 0)
                got += (size_t)k;
        buf[got] = 0;
        ck_assert_msg(strstr(buf, CONTROL_ERROR_OVERRUN), "no Overrun in %zu bytes", got);
        close(sock);
        free(buf);
        api_stop(&a);
}
END_TEST

static void listen_fd_job(ApiJob *j)
{
        _cleanup_control_client_ ControlClient *cl = NULL;
        char path[128];

        j->replies = json_array();
        snprintf(path, sizeof path, "%s/passed.sock", state);
        j->result = control_client_connect(path, &cl);
        if (j->result == 0)
                j->result = control_client_call(cl, "org.test.Echo", json_pack("{s:i}", "fd", 1),
                                                NULL, 0, false, api_collect, j);
}

static void serve_fd_job(ApiJob *j)
{
        _cleanup_control_client_ ControlClient *cl = NULL;

        j->replies = json_array();
        j->result = control_client_new_fd(j->extra, &cl);
        if (j->result == 0)
                j->result = control_client_call(cl, "org.test.Root", NULL, NULL, 0, false,
                                                api_collect, j);
}

/* A socket systemd passed (control_listen_fd): served like the public one; what is
 * not a listening Unix stream socket is refused (and closed). */
START_TEST(test_api_listen_fd)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        ApiJob j;
        int fd, pair[2];
        Api a;

        api_start(&a);
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s/passed.sock", state);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        ck_assert_int_eq(control_listen_fd(a.control, fd), -EINVAL); /* not listening yet */
        ck_assert_int_eq(fcntl(fd, F_GETFD), -1);                    /* taken and closed */
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        ck_assert_int_eq(unlink(sa.sun_path), 0);
        ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
        ck_assert_int_eq(listen(fd, 8), 0);
        ck_assert_int_eq(control_listen_fd(a.control, fd), 0);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, pair), 0);
        ck_assert_int_eq(control_listen_fd(a.control, pair[0]), -EINVAL);
        close(pair[1]);
        /* one kernel socket per Control */
        ck_assert_int_eq(control_listen_kernel(a.control, state), 0);
        ck_assert_int_eq(control_listen_kernel(a.control, state), -EEXIST);

        j = (ApiJob){.a = &a, .fn = listen_fd_job};
        api_run(&j);
        ck_assert_int_eq(j.result, 0);
        ck_assert_int_eq(reply_param_int(j.replies, "fd"), 1);
        json_decref(j.replies);

        /* A connected socket served as a client (control_serve_fd): its peer is us,
         * root, so it may call a root method; a datagram socket is refused. */
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0, pair), 0);
        ck_assert_int_eq(control_serve_fd(a.control, pair[0], false), -EINVAL);
        close(pair[1]);
        ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, pair), 0);
        ck_assert_int_eq(control_serve_fd(a.control, pair[0], false), 0);
        j = (ApiJob){.a = &a, .fn = serve_fd_job, .extra = pair[1]};
        api_run(&j);
        ck_assert_int_eq(j.result, 0);
        ck_assert_str_eq(json_string_value(json_object_get(
                                 control_reply_parameters(json_array_get(j.replies, 0)), "method")),
                         "org.test.Root");
        json_decref(j.replies);
        api_stop(&a);
        ck_assert_int_eq(unlink(sa.sun_path), 0); /* a passed socket's file is its owner's */
}
END_TEST

#define ROUND_TRIPS 2000

static int cmp_i64(const void *x, const void *y)
{
        int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;

        return (a > b) - (a < b);
}

static int64_t now_us(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void round_trip_job(ApiJob *j)
{
        _cleanup_control_client_ ControlClient *cl = NULL;
        static int64_t took[ROUND_TRIPS];

        j->result = control_client_connect(j->a->path, &cl);
        for (int i = 0; j->result == 0 && i < ROUND_TRIPS; i++) {
                int64_t t0 = now_us();

                j->result = control_client_call(cl, "org.test.Echo", json_pack("{s:i}", "i", i),
                                                NULL, 0, false, NULL, NULL);
                took[i] = now_us() - t0;
        }
        if (j->result != 0)
                return;
        qsort(took, ROUND_TRIPS, sizeof took[0], cmp_i64);
        j->extra = (int)took[ROUND_TRIPS / 2];
        printf("control: %d calls one after the other on one connection: p50 %" PRId64
               " us, p99 %" PRId64 " us\n",
               ROUND_TRIPS, took[ROUND_TRIPS / 2], took[ROUND_TRIPS * 99 / 100]);
}

/* The cost of a call: a client in a thread, the server on its loop, one call at a
 * time (the figure is printed; the bound only catches a call that waits on a
 * timer instead of the socket). */
START_TEST(test_api_round_trip)
{
        ApiJob j;
        Api a;

        api_start(&a);
        j = (ApiJob){.a = &a, .fn = round_trip_job};
        api_run(&j);
        ck_assert_int_eq(j.result, 0);
        ck_assert_int_lt(j.extra, 20000);
        api_stop(&a);
}
END_TEST

/* Raises RLIMIT_NOFILE's soft limit to at least want (up to the hard limit).
 * Returns whether it is at least want now. */
static bool raise_nofile(rlim_t want)
{
        struct rlimit rl;

        if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
                return false;
        if (rl.rlim_cur >= want)
                return true;
        if (rl.rlim_max < want && geteuid() == 0)
                rl.rlim_max = want; /* root may raise the hard limit */
        rl.rlim_cur = MIN(want, rl.rlim_max);
        return setrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur >= want;
}

#define MANY 1000

typedef struct Many {
        Api *a;
        int served;      /* clients that got their reply */
        int64_t took_ms; /* from the first connect to the last reply */
        int error;
        int hold[2]; /* the clients stay connected until the test has counted them */
} Many;

/* MANY clients connect at once, each sends one request, and all wait together. */
static void *many_main(void *arg)
{
        Many *m = arg;
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        static struct pollfd p[MANY];
        static char got[MANY];
        static const char req[] = "{\"method\":\"org.test.Echo\",\"parameters\":{\"k\":1}}\n";
        int64_t t0 = test_now_ms(), end = t0 + 30000;

        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", m->a->path);
        memset(got, 0, sizeof got);
        for (int i = 0; i < MANY; i++) {
                p[i].fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                p[i].events = POLLIN;
                if (p[i].fd < 0 || connect(p[i].fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
                    send(p[i].fd, req, sizeof req - 1, MSG_NOSIGNAL) != (ssize_t)sizeof req - 1) {
                        m->error = -errno;
                        break;
                }
        }
        while (m->error == 0 && m->served < MANY && test_now_ms() < end) {
                if (poll(p, MANY, 1000) <= 0)
                        continue;
                for (int i = 0; i < MANY; i++) {
                        char buf[512];
                        ssize_t n;

                        if (!(p[i].revents & (POLLIN | POLLHUP)) || got[i])
                                continue;
                        n = read(p[i].fd, buf, sizeof buf - 1);
                        if (n > 0) {
                                buf[n] = 0;
                                if (strstr(buf, "\"k\":1")) {
                                        got[i] = 1;
                                        m->served++;
                                } else
                                        m->error = -EBADMSG; /* Busy, say */
                        } else
                                m->error = -ECONNRESET;
                        p[i].fd = -p[i].fd - 1; /* poll skips it now */
                }
        }
        m->took_ms = test_now_ms() - t0;
        uv_async_send(&m->a->async);
        {
                char c;

                (void)!read(m->hold[0], &c, 1);
        }
        for (int i = 0; i < MANY; i++)
                close(p[i].fd < 0 ? -p[i].fd - 1 : p[i].fd);
        return NULL;
}

/* A thousand clients at once are all served (docs/api.md, "Bounds"). */
START_TEST(test_api_thousand_clients)
{
        Many m = {};
        pthread_t t;
        Api a;

        if (!raise_nofile(2 * MANY + 2 * CONTROL_FDS_RESERVED + 64))
                SKIP_TEST("RLIMIT_NOFILE cannot be raised to %d", 2 * MANY + 320);
        api_start(&a);
        m.a = &a;
        ck_assert_uint_ge(control_connections_max(a.control), MANY);
        ck_assert_int_eq(pipe2(m.hold, O_CLOEXEC), 0);
        ck_assert_int_eq(pthread_create(&t, NULL, many_main, &m), 0);
        uv_run(&a.loop, UV_RUN_DEFAULT);
        /* every one is still connected: served at once, not one after the other */
        ck_assert_uint_eq(control_connections(a.control), MANY);
        close(m.hold[1]);
        ck_assert_int_eq(pthread_join(t, NULL), 0);
        close(m.hold[0]);
        ck_assert_int_eq(m.error, 0);
        ck_assert_int_eq(m.served, MANY);
        printf("control: %d clients at once served in %" PRId64 " ms\n", MANY, m.took_ms);
        api_stop(&a);
}
END_TEST

/* --- access: a real non-root user, refused and allowed --- */

#define TEST_USER "cella-test-control"

static uid_t test_uid;
static gid_t test_gid, cella_gid, other_gid;
static bool made_group, had_group;

/* Before the case, in the runner's own process (an unchecked fixture): whether the
 * group "cella" is the host's, to be kept. */
static void access_before(void)
{
        had_group = getgrnam(CONTROL_GROUP) != NULL;
}

/* Creates the user (and the group "cella" when missing); 0, or 77 to skip. */
static int access_setup(void)
{
        struct passwd *pw;
        struct group *gr;

        if (geteuid() != 0 || access("/usr/sbin/useradd", X_OK) < 0 ||
            access("/usr/sbin/groupadd", X_OK) < 0)
                return 77;
        (void)!system("/usr/sbin/userdel " TEST_USER " >/dev/null 2>&1");
        if (system("/usr/sbin/useradd --system --no-create-home " TEST_USER) != 0)
                return 77;
        gr = getgrnam(CONTROL_GROUP);
        if (!gr) {
                if (system("/usr/sbin/groupadd --system " CONTROL_GROUP) != 0)
                        return 77;
                made_group = true;
                gr = getgrnam(CONTROL_GROUP);
        }
        pw = getpwnam(TEST_USER);
        if (!pw || !gr)
                return 77;
        test_uid = pw->pw_uid;
        test_gid = pw->pw_gid;
        cella_gid = gr->gr_gid;
        other_gid = 65533; /* a group the daemon opens read-only methods to */
        return 0;
}

static void access_teardown(void)
{
        (void)!system("/usr/sbin/userdel " TEST_USER " >/dev/null 2>&1");
        if (made_group)
                (void)!system("/usr/sbin/groupdel " CONTROL_GROUP " >/dev/null 2>&1");
        made_group = false;
}

/* After the case, in the runner's own process, even when the test failed (its
 * forked process then ended without its own teardown): the user, and the group if
 * the test made it, are removed. */
static void access_after(void)
{
        if (geteuid() != 0)
                return;
        (void)!system("/usr/sbin/userdel " TEST_USER " >/dev/null 2>&1");
        if (!had_group && getgrnam(CONTROL_GROUP))
                (void)!system("/usr/sbin/groupdel " CONTROL_GROUP " >/dev/null 2>&1");
}

static int denied_name(json_t *reply, bool continues, void *ud)
{
        const char *e = control_reply_error_name(reply);

        snprintf(ud, 64, "%s", e ?: "");
        return 0;
}

/* In a child that really is the test user with groups (n of them): calls each
 * method and writes one byte per call to the pipe: 'y' allowed, 'n' refused with
 * org.cella.PermissionDenied, '?' anything else. */
static void as_user(Api *a, gid_t primary, const gid_t *groups, size_t n, char *ret, size_t n_ret)
{
        static const char *const methods[] = {"org.test.Root", "org.test.Manage", "org.test.Read",
                                              "org.test.Echo"};
        int pfd[2], status;
        pid_t pid;
        ssize_t k;

        ck_assert_uint_eq(n_ret, ELEMENTSOF(methods));
        ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                close(pfd[0]);
                if (setgroups(n, groups) < 0 || setresgid(primary, primary, primary) < 0 ||
                    setresuid(test_uid, test_uid, test_uid) < 0 || getuid() != test_uid)
                        _exit(10);
                for (size_t i = 0; i < ELEMENTSOF(methods); i++) {
                        ControlClient *cl = NULL;
                        char name[64] = "";
                        char c = '?';
                        int r;

                        if (control_client_connect(a->path, &cl) < 0)
                                _exit(11);
                        r = control_client_call(cl, methods[i], NULL, NULL, 0, false, denied_name,
                                                name);
                        if (r == 0)
                                c = 'y';
                        else if (r == 1 && strcmp(name, CONTROL_ERROR_PERMISSION_DENIED) == 0)
                                c = 'n';
                        control_client_free(cl);
                        if (write(pfd[1], &c, 1) != 1)
                                _exit(12);
                }
                _exit(0);
        }
        close(pfd[1]);
        while (waitpid(pid, &status, WNOHANG) == 0) {
                uv_run(&a->loop, UV_RUN_NOWAIT);
                uv_wait_event(&a->loop, -1, 20);
        }
        ck_assert(WIFEXITED(status));
        ck_assert_int_eq(WEXITSTATUS(status), 0);
        k = read(pfd[0], ret, n_ret);
        ck_assert_int_eq(k, (ssize_t)n_ret);
        close(pfd[0]);
}

/* In a child that is the test user: CONTROL_CONNECTIONS_PER_USER connections
 * held open, then one more, which must be told org.cella.Busy; exit 0 if so. */
static void as_user_many(Api *a)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        int status;
        pid_t pid;

        /* the connections of the calls before have gone (else one going while the
         * child connects frees a slot before its last connection) */
        for (int64_t end = test_now_ms() + 5000;
             control_connections(a->control) > 0 && test_now_ms() < end;) {
                uv_run(&a->loop, UV_RUN_NOWAIT);
                uv_wait_event(&a->loop, -1, 100);
        }
        ck_assert_uint_eq(control_connections(a->control), 0);
        snprintf(sa.sun_path, sizeof sa.sun_path, "%s", a->path);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                struct timeval tv = {.tv_sec = 10};
                char buf[256];
                ssize_t n;
                int fd = -1;

                if (setgroups(0, NULL) < 0 || setresgid(test_gid, test_gid, test_gid) < 0 ||
                    setresuid(test_uid, test_uid, test_uid) < 0)
                        _exit(10);
                for (unsigned i = 0; i <= CONTROL_CONNECTIONS_PER_USER; i++) {
                        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                        if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
                                _exit(11);
                }
                setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
                n = read(fd, buf, sizeof buf - 1);
                if (n <= 0)
                        _exit(12);
                buf[n] = 0;
                _exit(strstr(buf, CONTROL_ERROR_BUSY) ? 0 : 13);
        }
        while (waitpid(pid, &status, WNOHANG) == 0) {
                uv_run(&a->loop, UV_RUN_NOWAIT);
                uv_wait_event(&a->loop, -1, 20);
        }
        ck_assert(WIFEXITED(status));
        ck_assert_int_eq(WEXITSTATUS(status), 0);
        /* the child's connections went with it */
        for (int64_t end = test_now_ms() + 5000;
             control_connections(a->control) > 0 && test_now_ms() < end;) {
                uv_run(&a->loop, UV_RUN_NOWAIT);
                uv_wait_event(&a->loop, -1, 100);
        }
        ck_assert_uint_eq(control_connections(a->control), 0);
}

START_TEST(test_api_access_real_user)
{
        char got[4];
        Api a;
        int r;

        r = access_setup();
        if (r == 77) {
                access_teardown();
                SKIP_TEST("needs root, useradd and groupadd");
        }
        ck_assert_int_eq(chmod(state, 0711), 0);
        api_start(&a);

        /* A stranger: only what anyone may call. */
        as_user(&a, test_gid, NULL, 0, got, sizeof got);
        ck_assert_msg(memcmp(got, "nnny", 4) == 0, "stranger: %.4s", got);
        /* and it cannot take every connection */
        as_user_many(&a);

        /* Opened read-only methods by uid, then by a group it is in. */
        ck_assert_int_eq(control_set_readers(a.control, &test_uid, 1, NULL, 0), 0);
        as_user(&a, test_gid, NULL, 0, got, sizeof got);
        ck_assert_msg(memcmp(got, "nnyy", 4) == 0, "reader by uid: %.4s", got);
        ck_assert_int_eq(control_set_readers(a.control, NULL, 0, &other_gid, 1), 0);
        as_user(&a, test_gid, NULL, 0, got, sizeof got);
        ck_assert_msg(memcmp(got, "nnny", 4) == 0, "not in the readers' group: %.4s", got);
        as_user(&a, test_gid, &other_gid, 1, got, sizeof got);
        ck_assert_msg(memcmp(got, "nnyy", 4) == 0, "reader by group: %.4s", got);
        ck_assert_int_eq(control_set_readers(a.control, NULL, 0, NULL, 0), 0);

        /* A member of "cella", supplementary or primary: manages, not root. */
        as_user(&a, test_gid, &cella_gid, 1, got, sizeof got);
        ck_assert_msg(memcmp(got, "nyyy", 4) == 0, "group cella: %.4s", got);
        as_user(&a, cella_gid, NULL, 0, got, sizeof got);
        ck_assert_msg(memcmp(got, "nyyy", 4) == 0, "primary group cella: %.4s", got);

        /* Root: everything; and the refusal is org.cella.PermissionDenied by name. */
        {
                _cleanup_control_client_ ControlClient *cl = NULL;
                char name[64] = "";
                pid_t pid;
                int pfd[2], status;

                ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
                pid = fork();
                ck_assert_int_ge(pid, 0);
                if (pid == 0) {
                        close(pfd[0]);
                        if (setgroups(0, NULL) < 0 || setresgid(test_gid, test_gid, test_gid) < 0 ||
                            setresuid(test_uid, test_uid, test_uid) < 0 ||
                            control_client_connect(a.path, &cl) < 0 ||
                            control_client_call(cl, "org.test.Manage", NULL, NULL, 0, false,
                                                denied_name, name) != 1)
                                _exit(10);
                        _exit(write(pfd[1], name, strlen(name)) > 0 ? 0 : 11);
                }
                close(pfd[1]);
                while (waitpid(pid, &status, WNOHANG) == 0) {
                        uv_run(&a.loop, UV_RUN_NOWAIT);
                        uv_wait_event(&a.loop, -1, 20);
                }
                ck_assert_int_eq(WEXITSTATUS(status), 0);
                ck_assert_int_gt(read(pfd[0], name, sizeof name - 1), 0);
                close(pfd[0]);
                ck_assert_str_eq(name, CONTROL_ERROR_PERMISSION_DENIED);
        }
        api_stop(&a);
        access_teardown();
}
END_TEST

/* While >= 0, a lookup of the group "cella" waits for a byte on it (or its EOF): an
 * NSS source as slow as the test wants. getgrnam_r() of this executable comes before
 * libc's (and the sanitizer's), so the Control's own lookup calls it. */
static int group_gate = -1;

int getgrnam_r(const char *name, struct group *grp, char *buf, size_t size, struct group **ret)
{
        static int (*real)(const char *, struct group *, char *, size_t, struct group **);

        if (!real)
                real = (int (*)(const char *, struct group *, char *, size_t,
                                struct group **))dlsym(RTLD_NEXT, "getgrnam_r");
        if (group_gate >= 0 && name && strcmp(name, CONTROL_GROUP) == 0) {
                char c;

                (void)!read(group_gate, &c, 1);
        }
        return real(name, grp, buf, size, ret);
}

/* The lookup of the group "cella" runs off the loop: while it is stuck (LDAP down),
 * root is served, and the stranger whose level needs it waits, then is served once
 * it is done (ordering, not timing: the stuck lookup ends only when the test says). */
START_TEST(test_group_lookup_off_the_loop)
{
        int gate[2], res[2], status;
        pid_t user, root;
        char c = 0;
        Api a;
        int r;

        r = access_setup();
        if (r == 77) {
                access_teardown();
                SKIP_TEST("needs root, useradd and groupadd");
        }
        ck_assert_int_eq(chmod(state, 0711), 0);
        api_start(&a);
        ck_assert_int_eq(pipe2(gate, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(res, O_CLOEXEC), 0);
        group_gate = gate[0];
        user = fork();
        ck_assert_int_ge(user, 0);
        if (user == 0) {
                ControlClient *cl = NULL;

                if (setgroups(0, NULL) < 0 || setresgid(test_gid, test_gid, test_gid) < 0 ||
                    setresuid(test_uid, test_uid, test_uid) < 0 ||
                    control_client_connect(a.path, &cl) < 0 ||
                    control_client_call(cl, "org.test.Echo", NULL, NULL, 0, false, NULL, NULL) != 0)
                        _exit(10);
                _exit(write(res[1], "u", 1) == 1 ? 0 : 11);
        }
        /* Its connection, whose lookup is now stuck. */
        for (int64_t end = test_now_ms() + 10000;
             control_connections(a.control) < 1 && test_now_ms() < end;) {
                uv_run(&a.loop, UV_RUN_NOWAIT);
                uv_wait_event(&a.loop, -1, 20);
        }
        ck_assert_uint_eq(control_connections(a.control), 1);
        root = fork();
        ck_assert_int_ge(root, 0);
        if (root == 0) {
                ControlClient *cl = NULL;

                if (control_client_connect(a.path, &cl) < 0 ||
                    control_client_call(cl, "org.test.Root", NULL, NULL, 0, false, NULL, NULL) != 0)
                        _exit(10);
                _exit(0);
        }
        while (waitpid(root, &status, WNOHANG) == 0) {
                uv_run(&a.loop, UV_RUN_NOWAIT);
                uv_wait_event(&a.loop, -1, 20);
        }
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "root was not served");
        /* Root was answered while the user's lookup was stuck: the user was not. */
        {
                struct pollfd p = {.fd = res[0], .events = POLLIN};

                ck_assert_int_eq(poll(&p, 1, 0), 0);
        }
        ck_assert_int_eq(write(gate[1], "g", 1), 1);
        while (waitpid(user, &status, WNOHANG) == 0) {
                uv_run(&a.loop, UV_RUN_NOWAIT);
                uv_wait_event(&a.loop, -1, 20);
        }
        ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0, "user: %d", status);
        ck_assert_int_eq(read(res[0], &c, 1), 1);
        ck_assert_int_eq(c, 'u');
        group_gate = -1;
        close(gate[1]); /* a lookup still to come passes */
        close(gate[0]);
        close(res[0]);
        close(res[1]);
        api_stop(&a);
        access_teardown();
}
END_TEST

/* --- hostile peers and hostile servers (docs/security.md, "The control socket") --- */

/* A socket some other user bound (uid 65534 here) where the client looks for a
 * daemon: control_client_connect() refuses it before sending a byte, so a root CLI
 * never hands it a bundle's fd nor shows its replies. The same socket served by root
 * is taken (the other tests). */
START_TEST(test_client_refuses_foreign_server)
{
        char path[100], got = 0;
        ControlClient *cl = NULL;
        int ready[2], said[2], status;
        pid_t pid;

        snprintf(path, sizeof path, "%s/cellad.sock", state);
        ck_assert_int_eq(chmod(state, 0777), 0);
        ck_assert_int_eq(pipe2(ready, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(said, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                struct sockaddr_un sa = {.sun_family = AF_UNIX};
                char buf[256], c;
                ssize_t n;
                int fd, k;

                if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
                    setresuid(65534, 65534, 65534) < 0)
                        _exit(10);
                snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
                    chmod(path, 0666) < 0 || listen(fd, 4) < 0)
                        _exit(11);
                if (write(ready[1], "r", 1) != 1)
                        _exit(12);
                k = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
                if (k < 0)
                        _exit(13);
                /* What the client sent before it went: nothing, or the request. */
                n = read(k, buf, sizeof buf);
                c = n > 0 ? 'y' : 'n';
                _exit(write(said[1], &c, 1) == 1 ? 0 : 14);
        }
        close(ready[1]);
        close(said[1]);
        ck_assert_int_eq(read(ready[0], &got, 1), 1);
        ck_assert_int_eq(control_client_connect(path, &cl), -EPERM);
        ck_assert_ptr_null(cl);
        ck_assert_int_eq(read(said[0], &got, 1), 1);
        ck_assert_int_eq(got, 'n'); /* not one byte of a request reached it */
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert(WIFEXITED(status));
        ck_assert_int_eq(WEXITSTATUS(status), 0);
        close(ready[0]);
        close(said[0]);
        ck_assert_int_eq(chmod(state, 0700), 0);
}
END_TEST

/* A peer who is neither root nor the daemon's user makes the server look the group
 * "cella" up (NSS: /etc/group here, LDAP elsewhere), on the kernel's loop. 400
 * connections of such a peer, one after the other, must not cost 400 lookups (a
 * local user could stall the loop with them): the opens of /etc/group are counted
 * with inotify while they run. */
#define LOOKUP_CONNECTIONS 400
START_TEST(test_group_lookup_not_per_connection)
{
        unsigned opens = 0;
        int in, status;
        Api a;
        pid_t pid;

        ck_assert_int_eq(chmod(state, 0711), 0);
        api_start(&a);
        in = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
        ck_assert_int_ge(in, 0);
        /* IN_CLOSE_NOWRITE too: inotify merges an event with the one before it when
         * they are the same, so opens alone would count as one. */
        if (inotify_add_watch(in, "/etc/group", IN_OPEN | IN_CLOSE_NOWRITE) < 0) {
                close(in);
                api_stop(&a);
                SKIP_TEST("no /etc/group to watch");
        }
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
                    setresuid(65534, 65534, 65534) < 0)
                        _exit(10);
                for (int i = 0; i < LOOKUP_CONNECTIONS; i++) {
                        ControlClient *cl = NULL;

                        if (control_client_connect(a.path, &cl) < 0 ||
                            control_client_call(cl, "org.test.Echo", NULL, NULL, 0, false, NULL,
                                                NULL) != 0)
                                _exit(11);
                        control_client_free(cl);
                }
                _exit(0);
        }
        while (waitpid(pid, &status, WNOHANG) == 0) {
                uv_run(&a.loop, UV_RUN_NOWAIT);
                uv_wait_event(&a.loop, -1, 20);
        }
        ck_assert(WIFEXITED(status));
        ck_assert_int_eq(WEXITSTATUS(status), 0);
        for (;;) {
                char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
                ssize_t n = read(in, buf, sizeof buf);

                if (n <= 0)
                        break;
                for (char *p = buf; p < buf + n;
                     p += sizeof(struct inotify_event) + ((struct inotify_event *)p)->len)
                        opens += (((struct inotify_event *)p)->mask & IN_OPEN) != 0;
        }
        close(in);
        api_stop(&a);
        /* One lookup, or a few if another process on the host opened the file
         * meanwhile: never one per connection. */
        ck_assert_msg(opens < LOOKUP_CONNECTIONS / 8,
                      "/etc/group opened %u times for %d "
                      "connections",
                      opens, LOOKUP_CONNECTIONS);
}
END_TEST

/* A kernel whose open-file limit leaves it 16 connections (CONTROL_CONNECTIONS_MIN)
 * and a local user (uid 65534) who holds as many as it may, under its own cap of
 * 64: the last slots are root's, who is still served. */
START_TEST(test_last_connections_are_the_managers)
{
        struct rlimit rl = {.rlim_cur = CONTROL_FDS_RESERVED + 2 * CONTROL_CONNECTIONS_MIN};
        int held[2], release[2], status, root_status, served = 0;
        pid_t pid, root;
        Api a;

        {
                struct rlimit cur;

                ck_assert_int_eq(getrlimit(RLIMIT_NOFILE, &cur), 0);
                rl.rlim_max = cur.rlim_max;
        }
        ck_assert_int_eq(setrlimit(RLIMIT_NOFILE, &rl), 0); /* this forked test only */
        ck_assert_int_eq(chmod(state, 0711), 0);
        api_start(&a);
        ck_assert_uint_eq(control_connections_max(a.control), CONTROL_CONNECTIONS_MIN);
        ck_assert_int_eq(pipe2(held, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(release, O_CLOEXEC), 0);
        pid = fork();
        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                ControlClient *cl[CONTROL_CONNECTIONS_MIN];
                char n = 0, c;

                close(held[0]);
                close(release[1]);
                if (setgroups(0, NULL) < 0 || setresgid(65534, 65534, 65534) < 0 ||
                    setresuid(65534, 65534, 65534) < 0)
                        _exit(10);
                /* As many as it is served: each call answered, or Busy. */
                for (unsigned i = 0; i < CONTROL_CONNECTIONS_MIN; i++) {
                        cl[i] = NULL;
                        if (control_client_connect(a.path, &cl[i]) < 0)
                                _exit(11);
                        if (control_client_call(cl[i], "org.test.Echo", NULL, NULL, 0, false, NULL,
                                                NULL) == 0)
                                n++;
                }
                if (write(held[1], &n, 1) != 1)
                        _exit(12);
                (void)!read(release[0], &c, 1); /* holds them until then */
                _exit(0);
        }
        close(held[1]);
        close(release[0]);
        for (;;) {
                char n;
                struct pollfd p = {.fd = held[0], .events = POLLIN};

                uv_run(&a.loop, UV_RUN_NOWAIT);
                if (poll(&p, 1, 0) == 1) {
                        ck_assert_int_eq(read(held[0], &n, 1), 1);
                        served = n;
                        break;
                }
                uv_wait_event(&a.loop, held[0], 20);
        }
        /* It got every slot but the reserved ones. */
        ck_assert_int_eq(served, (int)(CONTROL_CONNECTIONS_MIN -
                                       CONTROL_CONNECTIONS_RESERVED(CONTROL_CONNECTIONS_MIN)));
        root = fork();
        ck_assert_int_ge(root, 0);
        if (root == 0) {
                ControlClient *cl = NULL;

                _exit(control_client_connect(a.path, &cl) == 0 &&
                                      control_client_call(cl, "org.test.Root", NULL, NULL, 0, false,
                                                          NULL, NULL) == 0
                              ? 0
                              : 20);
        }
        while (waitpid(root, &root_status, WNOHANG) == 0) {
                uv_run(&a.loop, UV_RUN_NOWAIT);
                uv_wait_event(&a.loop, -1, 20);
        }
        ck_assert(WIFEXITED(root_status));
        ck_assert_int_eq(WEXITSTATUS(root_status), 0); /* root was served */
        ck_assert_int_eq(write(release[1], "x", 1), 1);
        while (waitpid(pid, &status, WNOHANG) == 0) {
                uv_run(&a.loop, UV_RUN_NOWAIT);
                uv_wait_event(&a.loop, -1, 20);
        }
        ck_assert(WIFEXITED(status));
        ck_assert_int_eq(WEXITSTATUS(status), 0);
        close(held[0]);
        close(release[1]);
        api_stop(&a);
}
END_TEST

/* The number of descriptors this process holds. */
static unsigned open_fds(void)
{
        unsigned n = 0;
        DIR *d = opendir("/proc/self/fd");
        struct dirent *de;

        ck_assert_ptr_nonnull(d);
        while ((de = readdir(d)))
                n += de->d_name[0] != '.';
        closedir(d);
        return n - 1; /* the directory's own */
}

/* A hostile server on the other end of control_client_call(): descriptors sent with
 * its replies are never installed in the client, a "continues" to a call that did
 * not ask for more ends the call (EBADMSG) instead of reading on for ever, and a
 * reply line that never ends is refused at CONTROL_REPLY_MAX (EBADMSG), its memory
 * bounded. */
START_TEST(test_client_survives_a_hostile_server)
{
        for (int round = 0; round < 2; round++) {
                ControlClient *cl = NULL;
                unsigned before;
                int sv[2], status, r;
                pid_t pid;

                ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
                pid = fork();
                ck_assert_int_ge(pid, 0);
                if (pid == 0) {
                        static const char cont[] = "{\"parameters\":{},\"continues\":true}\n";
                        union {
                                struct cmsghdr align;
                                char buf[CMSG_SPACE(sizeof(int))];
                        } cm = {};
                        struct iovec iov = {.iov_base = (char *)cont, .iov_len = sizeof cont - 1};
                        struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};
                        char buf[256];
                        int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

                        close(sv[0]);
                        if (read(sv[1], buf, sizeof buf) <= 0)
                                _exit(10);
                        if (round == 0) {
                                struct cmsghdr *c;

                                mh.msg_control = &cm;
                                mh.msg_controllen = sizeof cm.buf;
                                c = CMSG_FIRSTHDR(&mh);
                                c->cmsg_level = SOL_SOCKET;
                                c->cmsg_type = SCM_RIGHTS;
                                c->cmsg_len = CMSG_LEN(sizeof(int));
                                memcpy(CMSG_DATA(c), &fd, sizeof fd);
                                for (int i = 0; i < 100; i++)
                                        if (sendmsg(sv[1], &mh, MSG_NOSIGNAL) < 0)
                                                _exit(0); /* the client went */
                        } else {
                                static char blob[1 << 16];

                                memset(blob, 'x', sizeof blob);
                                (void)!write(sv[1], "{\"parameters\":\"", 15);
                                for (;;)
                                        if (send(sv[1], blob, sizeof blob, MSG_NOSIGNAL) < 0)
                                                _exit(0); /* the client went */
                        }
                        _exit(0);
                }
                close(sv[1]);
                before = open_fds();
                ck_assert_int_eq(control_client_new_fd(sv[0], &cl), 0);
                r = control_client_call(cl, "org.test.Echo", NULL, NULL, 0, false, NULL, NULL);
                ck_assert_int_eq(r, -EBADMSG);
                ck_assert_uint_eq(open_fds(), before); /* none of its descriptors */
                control_client_free(cl);
                ck_assert_int_eq(waitpid(pid, &status, 0), pid);
                ck_assert(WIFEXITED(status));
                ck_assert_int_eq(WEXITSTATUS(status), 0);
        }
}
END_TEST

int main(void)
{
        Suite *s = suite_create("control");
        TCase *tp = tcase_create("parse"), *tk = tcase_create("kernel"), *ta = tcase_create("api");
        TCase *many = tcase_create("many"), *acc = tcase_create("access");
        const char *only = getenv("CK_RUN_CASE");
        SRunner *sr;

        if (skip_init() < 0)
                return EXIT_FAILURE;
        tcase_add_test(tp, test_parse_valid);
        tcase_add_test(tp, test_parse_refused);
        tcase_add_test(tp, test_parse_bounds);
        tcase_add_checked_fixture(tk, setup, teardown);
        tcase_set_timeout(tk, 30);
        tcase_add_test(tk, test_listen_layout);
        tcase_add_test(tk, test_ps_and_grants_changed);
        tcase_add_test(tk, test_notify_other_kernels);
        tcase_add_test(tk, test_garbage_then_valid_on_one_connection);
        tcase_add_test(tk, test_half_closed_client_gets_its_reply);
        tcase_add_test(tk, test_oversize_line_is_refused_and_dropped);
        tcase_add_test(tk, test_connection_bound);
        tcase_add_test(tk, test_reply_too_large);
        tcase_add_test(tk, test_client_gone_before_its_reply);
        tcase_add_test(tk, test_idle_client_dropped);
        tcase_add_test(tk, test_stale_sockets_removed);
        tcase_add_test(tk, test_no_run_dir_means_no_kernels);
        tcase_add_test(tk, test_mute_kernels_asked_at_once);
        tcase_add_checked_fixture(ta, setup, teardown);
        tcase_set_timeout(ta, 60);
        tcase_add_test(ta, test_api_error_names);
        tcase_add_test(ta, test_api_pipelining_in_order);
        tcase_add_test(ta, test_api_stream_and_abort);
        tcase_add_test(ta, test_api_fd_passing);
        tcase_add_test(ta, test_api_fds_of_a_pipelined_request);
        tcase_add_test(ta, test_api_output_bound_stalled_reader);
        tcase_add_test(ta, test_api_listen_fd);
        tcase_add_test(ta, test_api_round_trip);
        tcase_add_test(ta, test_client_survives_a_hostile_server);
        suite_add_tcase(s, tp);
        suite_add_tcase(s, tk);
        suite_add_tcase(s, ta);
        /* Each may be skipped (exit 77): a test case of its own, which meson runs as
         * a test of its own (tests/unit/meson.build). */
        tcase_set_tags(many, "alone");
        tcase_add_checked_fixture(many, setup, teardown);
        tcase_set_timeout(many, 120);
        tcase_add_test(many, test_api_thousand_clients);
        suite_add_tcase(s, many);
        tcase_set_tags(acc, "alone");
        tcase_add_checked_fixture(acc, setup, teardown);
        tcase_add_unchecked_fixture(acc, access_before, access_after);
        tcase_set_timeout(acc, 60);
        tcase_add_test(acc, test_api_access_real_user);
        tcase_add_test(acc, test_group_lookup_off_the_loop);
        suite_add_tcase(s, acc);
        /* chown and setresuid need root: a test case of its own, which meson runs as a
         * test of its own (tests/unit/meson.build) that exits 77, skipped, as another
         * user. */
        if (geteuid() != 0) {
                printf("SKIP: root: a foreign run dir and another uid's peer need root\n");
                if (only && strcmp(only, "root") == 0)
                        return 77;
        } else {
                TCase *root = tcase_create("root");

                tcase_set_tags(root, "alone");
                tcase_add_checked_fixture(root, setup, teardown);
                tcase_set_timeout(root, 30);
                tcase_add_test(root, test_foreign_run_dir_refused);
                tcase_add_test(root, test_other_uid_is_refused);
                tcase_add_test(root, test_client_refuses_foreign_server);
                tcase_add_test(root, test_group_lookup_not_per_connection);
                tcase_add_test(root, test_last_connections_are_the_managers);
                suite_add_tcase(s, root);
        }
        sr = srunner_create(s);
        return skip_run(sr);
}
