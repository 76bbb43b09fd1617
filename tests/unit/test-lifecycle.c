/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * App states and lifecycle operations (src/supervisor/lifecycle.h): the transition
 * table against its rules, and (as root) every operation on real sandboxes of a
 * real kernel: start, foreground/visible/background, freeze (the app's output
 * really stops and its cgroup says frozen), thaw, cache, kill, restart, stop, and
 * the refusals in the wrong state.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/macro.h"
#include "supervisor/lifecycle.h"
#include "supervisor/run.h"
#include "supervisor/storage.h"
#include "supervisor/supervisor-internal.h"
#include "skip.h"

typedef InstanceState S;

static bool in(S s, const S *set, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (set[i] == s)
                        return true;
        return false;
}

#define IN(s, ...) in(s, (const S[]){__VA_ARGS__}, sizeof((const S[]){__VA_ARGS__}) / sizeof(S))

#define INS INSTANCE_STATE_INSTALLED
#define STA INSTANCE_STATE_STARTING
#define FG  INSTANCE_STATE_FOREGROUND
#define VIS INSTANCE_STATE_VISIBLE
#define SVC INSTANCE_STATE_SERVICE
#define BG  INSTANCE_STATE_BACKGROUND
#define CAC INSTANCE_STATE_CACHED
#define FRZ INSTANCE_STATE_FROZEN
#define STO INSTANCE_STATE_STOPPING
#define STD INSTANCE_STATE_STOPPED
#define FAI INSTANCE_STATE_FAILED

/* The rules of docs/design.md "App states", written out once more: allowed (and
 * whether it is a no-op) for each state, op and kind. */
static bool rule(S s, LifecycleOp op, bool svc, bool *noop)
{
        *noop = false;
        switch (op) {
        case LIFECYCLE_START:
                return IN(s, INS, STA, STD, FAI);
        case LIFECYCLE_STOP:
                *noop = s == STO;
                return IN(s, STA, FG, VIS, SVC, BG, CAC, FRZ, STO);
        case LIFECYCLE_RESTART:
                return s != STO;
        case LIFECYCLE_FREEZE:
                *noop = s == FRZ;
                return IN(s, FG, VIS, SVC, BG, CAC, FRZ);
        case LIFECYCLE_THAW:
                return IN(s, FRZ, CAC);
        case LIFECYCLE_KILL:
                return IN(s, FG, VIS, SVC, BG, CAC, FRZ, STO);
        case LIFECYCLE_FOREGROUND:
                *noop = s == FG;
                return !svc && IN(s, FG, VIS, BG, CAC);
        case LIFECYCLE_BACKGROUND:
                *noop = IN(s, BG, CAC);
                return !svc && IN(s, FG, VIS, BG, CAC);
        case LIFECYCLE_CACHE:
                *noop = s == CAC;
                return IN(s, BG, CAC);
        default:
                return false;
        }
}

START_TEST(test_table_follows_the_rules)
{
        for (unsigned svc = 0; svc < 2; svc++)
                for (unsigned s = 0; s < _INSTANCE_STATE_MAX; s++)
                        for (unsigned op = 0; op < _LIFECYCLE_OP_MAX; op++) {
                                bool want_noop, noop = false;
                                bool want = rule(s, op, svc, &want_noop);
                                const char *why = NULL;
                                int r = lifecycle_check(s, op, svc, &noop, &why);

                                ck_assert_msg((r == 0) == want, "%s of a %s in state %s: %d",
                                              lifecycle_op_to_string(op), svc ? "service" : "app",
                                              instance_state_to_string(s), r);
                                if (r == 0)
                                        ck_assert_msg(noop == want_noop, "%s in %s: noop %d",
                                                      lifecycle_op_to_string(op),
                                                      instance_state_to_string(s), noop);
                                else {
                                        ck_assert_int_eq(r, -EBUSY);
                                        ck_assert_ptr_nonnull(why);
                                        ck_assert_uint_gt(strlen(why), 10);
                                }
                        }
}
END_TEST

START_TEST(test_refusals_say_why)
{
        const char *why = NULL;

        ck_assert_int_eq(lifecycle_check(INS, LIFECYCLE_FREEZE, false, NULL, &why), -EBUSY);
        ck_assert_str_eq(why, "it is not running; start it first");
        ck_assert_int_eq(lifecycle_check(FG, LIFECYCLE_START, false, NULL, &why), -EBUSY);
        ck_assert_ptr_nonnull(strstr(why, "restart"));
        ck_assert_int_eq(lifecycle_check(FRZ, LIFECYCLE_FOREGROUND, false, NULL, &why), -EBUSY);
        ck_assert_ptr_nonnull(strstr(why, "thaw it first"));
        ck_assert_int_eq(lifecycle_check(SVC, LIFECYCLE_BACKGROUND, true, NULL, &why), -EBUSY);
        ck_assert_ptr_nonnull(strstr(why, "service"));
        /* A frozen service is refused as a service. */
        ck_assert_int_eq(lifecycle_check(FRZ, LIFECYCLE_FOREGROUND, true, NULL, &why), -EBUSY);
        ck_assert_ptr_nonnull(strstr(why, "service"));
        ck_assert_int_eq(lifecycle_check(STO, LIFECYCLE_START, false, NULL, &why), -EBUSY);
        ck_assert_ptr_nonnull(strstr(why, "stopping"));
        ck_assert_int_eq(lifecycle_check(_INSTANCE_STATE_MAX, LIFECYCLE_START, false, NULL, &why),
                         -EINVAL);
        ck_assert_int_eq(lifecycle_check(INS, _LIFECYCLE_OP_MAX, false, NULL, NULL), -EINVAL);
}
END_TEST

START_TEST(test_state_words)
{
        static const char *const words[] = {"installed", "starting",   "foreground", "visible",
                                            "service",   "background", "cached",     "frozen",
                                            "stopping",  "stopped",    "failed"};

        ck_assert_uint_eq(ELEMENTSOF(words), _INSTANCE_STATE_MAX);
        for (unsigned i = 0; i < _INSTANCE_STATE_MAX; i++) {
                ck_assert_str_eq(instance_state_to_string(i), words[i]);
                ck_assert_int_eq(instance_state_from_string(words[i]), (int)i);
                ck_assert(instance_state_is_running(i) ==
                          (i >= INSTANCE_STATE_FOREGROUND && i <= INSTANCE_STATE_STOPPING));
        }
        ck_assert_ptr_null(instance_state_to_string(_INSTANCE_STATE_MAX));
        ck_assert_int_eq(instance_state_from_string("running"), -EINVAL);
        ck_assert_int_eq(instance_state_from_string(NULL), -EINVAL);
        for (unsigned i = 0; i < _LIFECYCLE_OP_MAX; i++)
                ck_assert_ptr_nonnull(lifecycle_op_to_string(i));
}
END_TEST

/* The real kernel. */

typedef struct Seen {
        char app[64];
        S from, to;
} Seen;

static Seen seen[256];
static size_t n_seen;
static unsigned n_status_state;

static void on_change(Instance *inst, S from, S to, void *ud)
{
        if (n_seen < ELEMENTSOF(seen)) {
                snprintf(seen[n_seen].app, sizeof seen[n_seen].app, "%s", inst->manifest->id);
                seen[n_seen].from = from;
                seen[n_seen].to = to;
                n_seen++;
        }
}

static void on_status(const json_t *rec, void *ud)
{
        const char *ev = json_string_value(json_object_get(rec, "event"));

        if (ev && strcmp(ev, "state") == 0)
                n_status_state++;
}

static bool was_seen(const char *app, S from, S to)
{
        for (size_t i = 0; i < n_seen; i++)
                if (strcmp(seen[i].app, app) == 0 && seen[i].from == from && seen[i].to == to)
                        return true;
        return false;
}

static char tmp_root[] = "/tmp/cella-test-lifecycle-XXXXXX";

static void make_app(const char *id, const char *kind, char *ret_dir, size_t n)
{
        char path[512];
        FILE *f;

        snprintf(ret_dir, n, "%s/%s", tmp_root, id);
        ck_assert_int_eq(mkdir(ret_dir, 0755), 0);
        snprintf(path, sizeof path, "%s/manifest.json", ret_dir);
        f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        fprintf(f,
                "{\"id\": \"%s\", \"runtime\": \"native\", \"entry\": \"main.sh\", "
                "\"kind\": \"%s\"}\n",
                id, kind);
        fclose(f);
        ck_assert_int_eq(chmod(path, 0644), 0);
        snprintf(path, sizeof path, "%s/main.sh", ret_dir);
        f = fopen(path, "w");
        ck_assert_ptr_nonnull(f);
        /* Output as long as it runs: a frozen app's log stops growing. */
        fprintf(f, "#!/bin/sh\ni=0\nwhile :; do echo \"tick $i\"; i=$((i+1)); sleep 0.02; done\n");
        fclose(f);
        ck_assert_int_eq(chmod(path, 0755), 0);
}

static Instance *add(Supervisor *s, const char *dir)
{
        _cleanup_free_ char *real = NULL;
        Manifest *m = NULL;
        Instance *inst = NULL;

        ck_assert_int_eq(supervisor_load_manifest(dir, &real, &m, NULL), 0);
        ck_assert_int_eq(supervisor_add(s, real, m, NULL, 0, &inst, NULL), 0);
        return inst;
}

static void on_deadline(uv_timer_t *t)
{
        *(bool *)t->data = true;
}

/* Runs s's loop until inst is in state want, at most ms. */
static bool run_until_state(Supervisor *s, Instance *inst, S want, unsigned ms)
{
        uv_timer_t t;
        bool late = false;

        if (instance_state(inst) == want)
                return true;
        uv_timer_init(&s->loop, &t);
        t.data = &late;
        uv_timer_start(&t, on_deadline, ms, 0);
        while (!late && instance_state(inst) != want)
                uv_run(&s->loop, UV_RUN_ONCE);
        uv_close((uv_handle_t *)&t, NULL);
        uv_run(&s->loop, UV_RUN_NOWAIT);
        return instance_state(inst) == want;
}

/* Runs the loop for ms (a window in which nothing may happen). */
static void run_for(Supervisor *s, unsigned ms)
{
        uv_timer_t t;
        bool late = false;

        uv_timer_init(&s->loop, &t);
        t.data = &late;
        uv_timer_start(&t, on_deadline, ms, 0);
        while (!late)
                uv_run(&s->loop, UV_RUN_ONCE);
        uv_close((uv_handle_t *)&t, NULL);
        uv_run(&s->loop, UV_RUN_NOWAIT);
}

static off_t log_size(const char *state, const char *id)
{
        char path[1024];
        struct stat st;

        snprintf(path, sizeof path, "%s/logs/%s.log", state, id);
        return stat(path, &st) == 0 ? st.st_size : -1;
}

/* Runs the loop until id's log has grown past size, at most ms. */
static bool run_until_log_grows(Supervisor *s, const char *state, const char *id, off_t size,
                                unsigned ms)
{
        uv_timer_t t;
        bool late = false;

        uv_timer_init(&s->loop, &t);
        t.data = &late;
        uv_timer_start(&t, on_deadline, ms, 0);
        while (!late && log_size(state, id) <= size)
                uv_run(&s->loop, UV_RUN_ONCE);
        uv_close((uv_handle_t *)&t, NULL);
        uv_run(&s->loop, UV_RUN_NOWAIT);
        return log_size(state, id) > size;
}

/* Each app state's CPU class (cpushare.c, docs/memory.md "CPU"): the running
 * states by importance, frozen as cached, the others left alone. */
START_TEST(test_cpu_classes)
{
        ck_assert_int_eq(supervisor_cpu_class(INSTANCE_STATE_FOREGROUND), CPU_CLASS_FOREGROUND);
        ck_assert_int_eq(supervisor_cpu_class(INSTANCE_STATE_VISIBLE), CPU_CLASS_VISIBLE);
        ck_assert_int_eq(supervisor_cpu_class(INSTANCE_STATE_SERVICE), CPU_CLASS_SERVICE);
        ck_assert_int_eq(supervisor_cpu_class(INSTANCE_STATE_BACKGROUND), CPU_CLASS_BACKGROUND);
        ck_assert_int_eq(supervisor_cpu_class(INSTANCE_STATE_CACHED), CPU_CLASS_CACHED);
        ck_assert_int_eq(supervisor_cpu_class(INSTANCE_STATE_FROZEN), CPU_CLASS_CACHED);
        ck_assert_int_eq(supervisor_cpu_class(INSTANCE_STATE_INSTALLED), -ENODATA);
        ck_assert_int_eq(supervisor_cpu_class(INSTANCE_STATE_STARTING), -ENODATA);
        ck_assert_int_eq(supervisor_cpu_class(INSTANCE_STATE_STOPPING), -ENODATA);
        ck_assert_int_eq(supervisor_cpu_class(INSTANCE_STATE_STOPPED), -ENODATA);
        ck_assert_int_eq(supervisor_cpu_class(INSTANCE_STATE_FAILED), -ENODATA);
        ck_assert_int_eq(supervisor_cpu_class(_INSTANCE_STATE_MAX), -ENODATA);
}
END_TEST

/* The CPU weight of inst's leaf (inspect's cgroup.cpu_weight, read back from
 * cpu.weight or cpu.shares), or -1 when the leaf has no cpu controller. */
static int weight_of(Instance *inst)
{
        json_t *rec = lifecycle_inspect(inst);
        json_t *w;
        int r;

        ck_assert_ptr_nonnull(rec);
        w = json_object_get(json_object_get(rec, "cgroup"), "cpu_weight");
        r = json_is_integer(w) ? (int)json_integer_value(w) : -1;
        json_decref(rec);
        return r;
}

/* inst's leaf has weight want (docs/memory.md "CPU"), where there is a cpu
 * controller. */
#define ck_weight(inst, want)                                                                      \
        do {                                                                                       \
                int _w = weight_of(inst);                                                          \
                ck_assert_msg(_w == -1 || _w == (want), "weight %d, want %d", _w, (want));         \
        } while (0)

START_TEST(test_real_kernel)
{
        char state[600], a_dir[300], b_dir[300], svc_dir[300], cmd[700];
        Supervisor *s = NULL;
        Instance *a, *b, *svc;
        LifecycleError e;
        CpuWeights cw;
        json_t *rec;
        off_t size;
        pid_t pid;

        if (geteuid() != 0)
                SKIP_TEST("needs root (real sandboxes and cgroups)");
        ck_assert_ptr_nonnull(mkdtemp(tmp_root));
        ck_assert_int_eq(chmod(tmp_root, 0755), 0);
        snprintf(state, sizeof state, "%s/state", tmp_root);
        make_app("org.test.life.a", "app", a_dir, sizeof a_dir);
        make_app("org.test.life.b", "app", b_dir, sizeof b_dir);
        make_app("org.test.life.svc", "service", svc_dir, sizeof svc_dir);

        cpu_weights_default(&cw);
        ck_assert_int_eq(supervisor_new(&(SupervisorOptions){.state_dir = state,
                                                             .uid_base = STATE_UID_BASE_DEFAULT,
                                                             .uid_count = STATE_UID_COUNT_DEFAULT,
                                                             .output = SUPERVISOR_OUTPUT_LOGS,
                                                             .json_status_fd = -1,
                                                             .no_prompt = true,
                                                             .cpu_weights = &cw},
                                        &s, NULL),
                         0);
        ck_assert_int_eq(lifecycle_listen(s, on_change, NULL), 0);
        ck_assert_int_eq(lifecycle_tap_status(s, on_status, NULL), 0);
        a = add(s, a_dir);
        b = add(s, b_dir);
        svc = add(s, svc_dir);
        ck_assert_int_eq(instance_state(a), INS);

        /* Nothing but start (and restart) in installed. */
        ck_assert_int_eq(lifecycle_freeze(a, &e), -EBUSY);
        ck_assert(e.wrong_state);
        ck_assert_int_eq(e.state, INS);
        ck_assert_ptr_nonnull(strstr(e.message, "org.test.life.a: cannot freeze it: it is "
                                                "installed"));
        ck_assert_int_eq(lifecycle_stop(a, false, &e), -EBUSY);
        ck_assert_int_eq(lifecycle_kill(a, SIGKILL, &e), -EBUSY);
        ck_assert_int_eq(lifecycle_foreground(a, &e), -EBUSY);

        /* start: foreground (cella run's kernel); a second one pushes it to visible. */
        ck_assert_int_eq(lifecycle_start(a, NULL, &e), 0);
        ck_assert_int_eq(instance_state(a), FG);
        ck_assert(was_seen("org.test.life.a", INS, FG));
        ck_assert_int_eq(lifecycle_start(a, NULL, &e), -EBUSY);
        ck_assert(e.wrong_state);
        ck_assert_int_eq(lifecycle_start(svc, NULL, &e), 0);
        ck_assert_int_eq(instance_state(svc), SVC);
        ck_assert_int_eq(lifecycle_start(b, &(LifecycleStart){.background = true}, &e), 0);
        ck_assert_int_eq(instance_state(b), BG);
        ck_assert_int_eq(instance_state(a), FG);
        ck_assert_int_eq(lifecycle_foreground(b, &e), 0);
        ck_assert_int_eq(instance_state(b), FG);
        ck_assert_int_eq(instance_state(a), VIS);
        ck_assert(was_seen("org.test.life.a", FG, VIS));
        ck_assert_int_eq(lifecycle_foreground(a, &e), 0);
        ck_assert_int_eq(instance_state(a), FG);
        ck_assert_int_eq(instance_state(b), VIS);
        ck_assert_int_eq(lifecycle_background(b, &e), 0);
        ck_assert_int_eq(instance_state(b), BG);
        /* Each state's CPU weight in its leaf (cpushare.c); read for sure where the
         * host has a v1 cpu controller (hybrid here) or a v2 one. */
        if (access("/sys/fs/cgroup/cpu/cpu.shares", F_OK) == 0 ||
            access("/sys/fs/cgroup/cpu.weight", F_OK) == 0)
                ck_assert_int_ne(weight_of(a), -1);
        ck_weight(a, 155);
        ck_weight(b, 11);
        ck_weight(svc, 100);
        ck_assert_int_eq(lifecycle_foreground(svc, &e), -EBUSY);
        ck_assert_ptr_nonnull(strstr(e.message, "service"));
        ck_assert_int_eq(lifecycle_background(svc, &e), -EBUSY);

        /* freeze: the cgroup says frozen and the app's output stops. */
        ck_assert(run_until_log_grows(s, state, "org.test.life.a", 0, 10000));
        ck_assert_int_eq(lifecycle_freeze(a, &e), 0);
        ck_assert_int_eq(instance_state(a), FRZ);
        ck_weight(a, 1);
        rec = lifecycle_inspect(a);
        ck_assert_ptr_nonnull(rec);
        ck_assert_str_eq(json_string_value(json_object_get(rec, "state")), "frozen");
        ck_assert(json_is_true(json_object_get(json_object_get(rec, "cgroup"), "frozen")));
        ck_assert_uint_gt(json_array_size(json_object_get(rec, "pids")), 0);
        json_decref(rec);
        size = log_size(state, "org.test.life.a");
        run_for(s, 300);
        ck_assert_int_eq(log_size(state, "org.test.life.a"), size);
        ck_assert_int_eq(lifecycle_freeze(a, &e), -EALREADY);
        ck_assert(e.wrong_state);
        ck_assert_int_eq(lifecycle_kill(a, SIGTERM, &e), -EBUSY);
        ck_assert_ptr_nonnull(strstr(e.message, "thaw it first"));
        ck_assert_int_eq(lifecycle_foreground(a, &e), -EBUSY);
        ck_assert_int_eq(lifecycle_thaw(a, &e), 0);
        ck_assert_int_eq(instance_state(a), FG);
        ck_weight(a, 155);
        ck_assert(run_until_log_grows(s, state, "org.test.life.a", size, 10000));
        ck_assert_int_eq(lifecycle_thaw(a, &e), -EBUSY);
        ck_assert(e.wrong_state);

        /* cache: a background app frozen by the kernel; foreground thaws it. */
        ck_assert_int_eq(lifecycle_cache(a, &e), -EBUSY);
        ck_assert_int_eq(lifecycle_cache(b, &e), 0);
        ck_assert_int_eq(instance_state(b), CAC);
        ck_weight(b, 1);
        size = log_size(state, "org.test.life.b");
        ck_assert_int_eq(lifecycle_foreground(b, &e), 0);
        ck_assert_int_eq(instance_state(b), FG);
        ck_assert_int_eq(instance_state(a), VIS);
        ck_weight(b, 155);
        ck_weight(a, 125);
        ck_assert(run_until_log_grows(s, state, "org.test.life.b", size, 10000));

        /* kill: the service dies of SIGKILL, which is a failure. */
        ck_assert_int_eq(lifecycle_kill(svc, 0, &e), -EINVAL);
        ck_assert_int_eq(lifecycle_kill(svc, SIGKILL, &e), 0);
        ck_assert(run_until_state(s, svc, FAI, 10000));
        rec = lifecycle_inspect(svc);
        ck_assert_str_eq(
                json_string_value(json_object_get(json_object_get(rec, "last_exit"), "how")),
                "killed");
        ck_assert_int_eq(
                json_integer_value(json_object_get(json_object_get(rec, "last_exit"), "status")),
                SIGKILL);
        ck_assert_int_gt(
                json_integer_value(json_object_get(json_object_get(rec, "last_exit"), "time_ms")),
                0);
        json_decref(rec);
        ck_assert_int_eq(lifecycle_kill(svc, SIGKILL, &e), -EBUSY);

        /* restart: stopping, then running again in its role, a new sandbox. */
        pid = b->run.sandbox->pid;
        ck_assert_int_eq(lifecycle_restart(b, &e), 0);
        ck_assert_int_eq(instance_state(b), STO);
        ck_assert_int_eq(lifecycle_start(b, NULL, &e), -EBUSY);
        ck_assert_ptr_nonnull(strstr(e.message, "stopping"));
        ck_assert(run_until_state(s, b, FG, 15000));
        ck_assert(was_seen("org.test.life.b", STO, STA) || was_seen("org.test.life.b", STO, FG));
        ck_assert_int_ne(b->run.sandbox->pid, pid);

        /* stop: stopped; stop again is refused, start brings it back. */
        ck_assert_int_eq(lifecycle_stop(a, false, &e), 0);
        ck_assert_int_eq(instance_state(a), STO);
        ck_assert(run_until_state(s, a, STD, 15000));
        ck_assert_int_eq(lifecycle_stop(a, false, &e), -EBUSY);
        ck_assert_ptr_nonnull(strstr(e.message, "it is stopped"));
        ck_assert_int_eq(lifecycle_restart(svc, &e), 0); /* a failed app starts again */
        ck_assert_int_eq(instance_state(svc), SVC);

        /* A stop of a frozen app thaws it first, so that it can take SIGTERM. */
        ck_assert_int_eq(lifecycle_freeze(b, &e), 0);
        ck_assert_int_eq(lifecycle_stop(b, false, &e), 0);
        ck_assert(run_until_state(s, b, STD, 15000));

        /* Every change was a status record. */
        ck_assert_uint_eq(n_status_state, n_seen);
        ck_assert_uint_gt(n_seen, 15);
        lifecycle_unlisten(s, on_change, NULL);
        lifecycle_untap_status(s, on_status, NULL);
        supervisor_free(s);
        /* Each app's /data file system stays mounted for the next kernel (storage.h). */
        ck_assert_int_ge(storage_release(state, "org.test.life.a"), 0);
        ck_assert_int_ge(storage_release(state, "org.test.life.b"), 0);
        ck_assert_int_ge(storage_release(state, "org.test.life.svc"), 0);
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_root);
        ck_assert_int_eq(system(cmd), 0);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("lifecycle");
        TCase *tc = tcase_create("core"), *root = tcase_create("root");
        SRunner *sr;

        if (skip_init() < 0)
                return EXIT_FAILURE;
        tcase_add_test(tc, test_table_follows_the_rules);
        tcase_add_test(tc, test_refusals_say_why);
        tcase_add_test(tc, test_state_words);
        tcase_add_test(tc, test_cpu_classes);
        suite_add_tcase(s, tc);
        tcase_add_test(root, test_real_kernel);
        tcase_set_timeout(root, 120);
        tcase_set_tags(root, "alone");
        suite_add_tcase(s, root);
        sr = srunner_create(s);
        return skip_run(sr);
}
