/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The control socket (src/supervisor/control.c): the request parser, and a kernel
 * side on a real loop driven by clients in a thread (the client side blocks).
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/macro.h"
#include "base/time-util.h"
#include "supervisor/control.h"
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

int main(void)
{
        Suite *s = suite_create("control");
        TCase *tp = tcase_create("parse"), *tk = tcase_create("kernel");
        const char *only = getenv("CK_RUN_CASE");
        SRunner *sr;
        int failed;

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
        suite_add_tcase(s, tp);
        suite_add_tcase(s, tk);
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
                suite_add_tcase(s, root);
        }
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
