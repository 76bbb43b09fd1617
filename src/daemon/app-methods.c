/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The daemon's app methods (docs/api.md, "Apps"): org.cella.{Ps, Inspect, Start,
 * Stop, Restart, Freeze, Thaw, Kill, Foreground, Background, Logs, Events} on the
 * control API v2 (supervisor/control.h), over the daemon's Supervisor and the
 * store's installed apps. The work is lifecycle.c's; this file turns parameters
 * into calls and states into replies and errors:
 *
 *   org.cella.NoSuchApp        the app is neither known to the kernel nor installed
 *   org.cella.AppState         the op is refused in the app's state (parameters.state)
 *   org.cella.InvalidParameter a parameter is missing or of the wrong shape
 *   org.cella.Failed           the op failed (parameters.errno, parameters.message)
 *
 * Stop and Restart with "wait": true reply once the app has stopped (or runs again),
 * else at once; Ps, Logs and Events with "more" stream until the client goes away.
 * In daemon mode these Ps and Stop replace the kernel's own (supervisor.c), on
 * run/<pid>.sock as on cellad.sock.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit.h"
#include "base/log.h"
#include "base/macro.h"
#include "base/strv.h"
#include "base/time-util.h"
#include "daemon/daemon-internal.h"
#include "store/store.h"
#include "supervisor/applog.h"
#include "supervisor/control.h"
#include "supervisor/lifecycle.h"
#include "supervisor/memory-actions.h"
#include "supervisor/run.h"
#include "supervisor/supervisor.h"

/* ps --watch: at most one snapshot per client this often (ms), whatever the rate of
 * state changes (a boot of 1,000 apps makes thousands). */
#define APP_WATCH_MIN_MS 100
/* Logs: bytes read from the log per reply, and how often a followed log is looked
 * at (ms) besides the kernel's own writes to it. */
/* Events: bytes queued for a client past which its replay waits (a quarter of the
 * control server's bound), and the taps kept for a client while its replay runs. */
#define APP_EVENTS_QUEUED   (CONTROL_OUTPUT_MAX / 4u)
#define APP_EVENTS_LIVE_MAX 4096u
#define APP_LOGS_CHUNK      (64u * 1024u)
#define APP_LOGS_POLL_MS    250
/* Bytes of JSON the log's first reply may take: one reply's bound (CONTROL_OUTPUT_MAX),
 * less room for the envelope. */
#define APP_LOGS_MAX (CONTROL_OUTPUT_MAX - 4096u)

typedef enum StreamKind {
        STREAM_WAIT_STOPPED, /* Stop: replies once the app has stopped */
        STREAM_WAIT_RUNNING, /* Restart: replies once it runs again */
        STREAM_PS,           /* Ps with more */
        STREAM_EVENTS,       /* Events with more */
        STREAM_LOGS,         /* Logs with more */
} StreamKind;

typedef struct AppMethods AppMethods;

typedef struct Stream {
        AppMethods *am;
        StreamKind kind;
        ControlCall *call;
        Instance *inst; /* WAIT_*, LOGS */
        bool dirty;     /* PS: a change not yet sent */
        bool all;       /* PS */
        bool seen_stop; /* WAIT_RUNNING: it left the running states once */
        char *log_path; /* LOGS: <state>/logs/<id>.log */
        uint64_t log_pos;
        uint64_t log_ino;
        struct Stream *next;
} Stream;

struct AppMethods {
        Daemon *d;
        Supervisor *s;
        Stream *streams;
        struct Replaying *replays; /* Events calls replaying the audit log */
        uv_timer_t tick;           /* ps --watch's rate bound and logs -f's look */
        bool tick_init;
        uint64_t last_ps_ms;
        uint64_t ps_cost_ms; /* what the last snapshots took to make and send */
};

static AppMethods app_methods;

static int reply_no_app(ControlCall *call, const char *id)
{
        char msg[256];

        snprintf(msg, sizeof msg, "no app %s is installed or known to cellad", id);
        return control_reply_error(call, "org.cella.NoSuchApp",
                                   json_pack("{s:s, s:s}", "message", msg, "app", id));
}

static int reply_invalid(ControlCall *call, const char *param, const char *why)
{
        char msg[256];

        snprintf(msg, sizeof msg, "parameter %s: %s", param, why);
        return control_reply_error(call, "org.cella.InvalidParameter",
                                   json_pack("{s:s, s:s}", "message", msg, "parameter", param));
}

static int reply_lifecycle_error(ControlCall *call, Instance *inst, const LifecycleError *e)
{
        if (e->wrong_state)
                return control_reply_error(call, "org.cella.AppState",
                                           json_pack("{s:s, s:s, s:s}", "message", e->message,
                                                     "app", instance_manifest(inst)->id, "state",
                                                     instance_state_to_string(e->state)));
        return control_reply_error(call, "org.cella.Failed",
                                   json_pack("{s:s, s:i, s:s}", "message", e->message, "errno",
                                             e->error, "app", instance_manifest(inst)->id));
}

/* {"app", "state", "pid"} of inst now. */
static json_t *state_reply(Instance *inst)
{
        return json_pack("{s:s, s:s, s:i}", "app", instance_manifest(inst)->id, "state",
                         instance_state_to_string(instance_state(inst)), "pid",
                         (int)instance_pid(inst));
}

/* The "app" parameter: a valid app id, or an InvalidParameter reply (*ret NULL). */
static const char *app_param(ControlCall *call, json_t *params)
{
        const char *id = json_string_value(json_object_get(params, "app"));

        if (!id || !manifest_id_is_valid(id)) {
                reply_invalid(call, "app",
                              "expected an app id (a string such as org.example.notes)");
                return NULL;
        }
        return id;
}

/* The installed app id's folder, or NULL (not installed): the version the store's
 * current names now (store_app_dir(); daemon.h, Contract 2). */
static char *installed_dir(AppMethods *am, const char *id)
{
        char *dir = NULL;

        if (store_app_dir(daemon_state_dir(am->d), id, &dir) < 0)
                return NULL;
        return dir;
}

/* The ids of the installed apps (and their versions), into *ret_ids and *ret_versions
 * (strv, caller frees), from store_list(). Returns 0 or -errno. */
static int installed_list(AppMethods *am, char ***ret_ids, char ***ret_versions)
{
        _cleanup_strv_free_ char **ids = NULL, **versions = NULL;
        StoreApp *list = NULL;
        size_t n = 0;
        int r = store_list(daemon_state_dir(am->d), &list, &n);

        if (r < 0)
                return r;
        for (size_t i = 0; r >= 0 && i < n; i++) {
                r = strv_extend(&ids, list[i].id);
                if (r >= 0)
                        r = strv_extend(&versions, list[i].version ?: "");
        }
        store_app_free_many(list, n);
        if (r < 0)
                return r;
        *ret_ids = TAKE_PTR(ids);
        *ret_versions = TAKE_PTR(versions);
        return 0;
}

/*
 * The Instance of id: the kernel's, or (add) the installed app's, added to the
 * kernel now (supervisor_add). NULL after a reply (NoSuchApp, or the failure to
 * add it).
 */
static Instance *find_app(AppMethods *am, ControlCall *call, const char *id, bool add)
{
        _cleanup_free_ char *dir = NULL, *real = NULL;
        SupervisorError err = {};
        Instance *inst = supervisor_find(am->s, id);
        Manifest *m = NULL;
        int r;

        if (inst)
                return inst;
        dir = installed_dir(am, id);
        if (!dir) {
                reply_no_app(call, id);
                return NULL;
        }
        if (!add) {
                /* Installed, never started by this cellad: the table's "installed" row. */
                const char *method = control_call_method(call), *why = NULL;
                char op[32], msg[384];
                size_t i = 0;

                for (const char *p = strrchr(method, '.') + 1; *p && i < sizeof op - 1; p++)
                        op[i++] = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
                op[i] = 0;
                (void)lifecycle_check(INSTANCE_STATE_INSTALLED, LIFECYCLE_STOP, false, NULL, &why);
                snprintf(msg, sizeof msg, "%s: cannot %s it: it is installed: %s", id, op, why);
                control_reply_error(call, CONTROL_ERROR_APP_STATE,
                                    json_pack("{s:s, s:s, s:s}", "message", msg, "app", id, "state",
                                              "installed"));
                return NULL;
        }
        r = supervisor_load_manifest(dir, &real, &m, &err);
        if (r >= 0 && strcmp(m->id, id) != 0) {
                manifest_free(m);
                r = -EINVAL;
                log_error("%s: its manifest's id is not %s", dir, id);
        }
        if (r >= 0)
                r = supervisor_add(am->s, real, m, NULL, 0, &inst, &err);
        if (r < 0) {
                char msg[512];

                snprintf(msg, sizeof msg, "%s: cannot load the installed app from %s: %s", id, dir,
                         log_last_error()[0] ? log_last_error() : strerror(-r));
                control_reply_error(
                        call, "org.cella.Failed",
                        json_pack("{s:s, s:i, s:s}", "message", msg, "errno", -r, "app", id));
                return NULL;
        }
        return inst;
}

static void stream_free(Stream *st)
{
        free(st->log_path);
        free(st);
}

static void stream_unlink(Stream *st)
{
        for (Stream **p = &st->am->streams; *p; p = &(*p)->next)
                if (*p == st) {
                        *p = st->next;
                        return;
                }
}

static void on_stream_abort(ControlCall *call, void *ud)
{
        Stream *st = ud;

        stream_unlink(st);
        stream_free(st);
}

static Stream *stream_new(AppMethods *am, ControlCall *call, StreamKind kind, Instance *inst)
{
        Stream *st = calloc(1, sizeof *st);

        if (!st)
                return NULL;
        st->am = am;
        st->kind = kind;
        st->call = call;
        st->inst = inst;
        st->next = am->streams;
        am->streams = st;
        control_call_on_abort(call, on_stream_abort, st);
        return st;
}

/* The final reply of st's call: st goes. */
static void stream_end(Stream *st, json_t *reply)
{
        ControlCall *call = st->call;

        stream_unlink(st);
        control_call_on_abort(call, NULL, NULL);
        stream_free(st);
        control_reply(call, reply);
}

/* ---- Ps ---------------------------------------------------------------------- */

static json_t *ps_snapshot(AppMethods *am, bool all)
{
        Supervisor *s = am->s;
        json_t *apps = supervisor_ps_records(s);
        if (all) {
                _cleanup_strv_free_ char **ids = NULL, **versions = NULL;

                if (installed_list(am, &ids, &versions) >= 0)
                        for (size_t i = 0; apps && ids && ids[i]; i++) {
                                if (supervisor_find(s, ids[i]))
                                        continue;
                                json_array_append_new(
                                        apps, json_pack("{s:s, s:s, s:b, s:i, s:s}", "id", ids[i],
                                                        "state", "installed", "running", false,
                                                        "pid", 0, "version", versions[i]));
                        }
        }
        return json_pack("{s:o}", "apps", apps ?: json_array());
}

static void tick_arm(AppMethods *am, uint64_t ms);

static int method_ps(ControlCall *call, json_t *params, void *ud)
{
        AppMethods *am = ud;
        bool all;
        Stream *st;

        if (!control_param_flag(call, params, "all", &all))
                return 0;
        if (!control_call_more(call))
                return control_reply(call, ps_snapshot(am, all));
        st = stream_new(am, call, STREAM_PS, NULL);
        if (!st)
                return -ENOMEM;
        st->all = all;
        am->last_ps_ms = now_monotonic_ms();
        return control_reply_continues(call, ps_snapshot(am, all));
}

/* ---- Inspect, and the ops -------------------------------------------------------- */

static int method_inspect(ControlCall *call, json_t *params, void *ud)
{
        AppMethods *am = ud;
        const char *id = app_param(call, params);
        _cleanup_free_ char *dir = NULL;
        Instance *inst;

        if (!id)
                return 0;
        inst = supervisor_find(am->s, id);
        if (inst)
                return control_reply(call, lifecycle_inspect(inst));
        dir = installed_dir(am, id);
        if (!dir)
                return reply_no_app(call, id);
        return control_reply(call,
                             json_pack("{s:s, s:s, s:b, s:s, s:n}", "id", id, "state", "installed",
                                       "running", false, "app_dir", dir, "last_exit"));
}

static int method_start(ControlCall *call, json_t *params, void *ud)
{
        AppMethods *am = ud;
        const char *id = app_param(call, params);
        json_t *args = json_object_get(params, "args");
        _cleanup_strv_free_ char **argv = NULL;
        LifecycleError e = {};
        Instance *inst;
        bool background;
        size_t i;
        json_t *a;

        if (!id)
                return 0;
        if (args && !json_is_array(args))
                return reply_invalid(call, "args", "expected an array of strings");
        json_array_foreach(args, i, a)
        {
                if (!json_is_string(a) || strlen(json_string_value(a)) > MANIFEST_STRING_MAX)
                        return reply_invalid(call, "args", "expected strings of at most 256 bytes");
                if (strv_extend(&argv, json_string_value(a)) < 0)
                        return -ENOMEM;
        }
        if (json_array_size(args) > MANIFEST_LIST_MAX)
                return reply_invalid(call, "args", "at most 64 arguments");
        if (!control_param_flag(call, params, "background", &background))
                return 0;
        inst = find_app(am, call, id, true);
        if (!inst)
                return 0;
        if (lifecycle_start(inst,
                            &(LifecycleStart){.args = args ? (argv ?: (char *[]){NULL}) : NULL,
                                              .background = background},
                            &e) < 0)
                return reply_lifecycle_error(call, inst, &e);
        return control_reply(call, state_reply(inst));
}

static int method_stop(ControlCall *call, json_t *params, void *ud)
{
        AppMethods *am = ud;
        const char *id = app_param(call, params);
        LifecycleError e = {};
        Instance *inst;
        Stream *st;
        bool kill, wait;

        if (!id)
                return 0;
        if (!control_param_flag(call, params, "kill", &kill) ||
            !control_param_flag(call, params, "wait", &wait))
                return 0;
        inst = find_app(am, call, id, false);
        if (!inst)
                return 0;
        if (lifecycle_stop(inst, kill, &e) < 0)
                return reply_lifecycle_error(call, inst, &e);
        if (!instance_state_is_running(instance_state(inst)) || !wait)
                return control_reply(call, state_reply(inst));
        st = stream_new(am, call, STREAM_WAIT_STOPPED, inst);
        return st ? 0 : -ENOMEM;
}

static int method_restart(ControlCall *call, json_t *params, void *ud)
{
        AppMethods *am = ud;
        const char *id = app_param(call, params);
        LifecycleError e = {};
        Instance *inst;
        Stream *st;
        InstanceState s;
        bool wait;

        if (!id || !control_param_flag(call, params, "wait", &wait))
                return 0;
        inst = find_app(am, call, id, true);
        if (!inst)
                return 0;
        if (lifecycle_restart(inst, &e) < 0)
                return reply_lifecycle_error(call, inst, &e);
        s = instance_state(inst);
        if ((instance_state_is_running(s) && s != INSTANCE_STATE_STOPPING) || !wait)
                return control_reply(call, state_reply(inst));
        st = stream_new(am, call, STREAM_WAIT_RUNNING, inst);
        return st ? 0 : -ENOMEM;
}

/* Freeze, Thaw, Foreground, Background: one call, the state after it. */
static int simple_op(ControlCall *call, json_t *params, AppMethods *am,
                     int (*op)(Instance *, LifecycleError *))
{
        const char *id = app_param(call, params);
        LifecycleError e = {};
        Instance *inst;
        uint64_t t0;
        json_t *reply;

        if (!id)
                return 0;
        inst = find_app(am, call, id, false);
        if (!inst)
                return 0;
        t0 = now_monotonic_ns();
        if (op(inst, &e) < 0)
                return reply_lifecycle_error(call, inst, &e);
        reply = state_reply(inst);
        if (reply)
                json_object_set_new(reply, "duration_us",
                                    json_integer((json_int_t)((now_monotonic_ns() - t0) / 1000)));
        return control_reply(call, reply);
}

static int method_freeze(ControlCall *call, json_t *params, void *ud)
{
        return simple_op(call, params, ud, lifecycle_freeze);
}

static int method_thaw(ControlCall *call, json_t *params, void *ud)
{
        return simple_op(call, params, ud, lifecycle_thaw);
}

static int method_foreground(ControlCall *call, json_t *params, void *ud)
{
        return simple_op(call, params, ud, lifecycle_foreground);
}

static int method_background(ControlCall *call, json_t *params, void *ud)
{
        return simple_op(call, params, ud, lifecycle_background);
}

static int method_kill(ControlCall *call, json_t *params, void *ud)
{
        AppMethods *am = ud;
        const char *id = app_param(call, params);
        json_t *sig = json_object_get(params, "signal");
        LifecycleError e = {};
        Instance *inst;
        int signum = SIGKILL;

        if (!id)
                return 0;
        if (sig &&
            (!json_is_integer(sig) || json_integer_value(sig) < 1 || json_integer_value(sig) > 64))
                return reply_invalid(call, "signal", "expected a signal number 1..64");
        if (sig)
                signum = (int)json_integer_value(sig);
        inst = find_app(am, call, id, false);
        if (!inst)
                return 0;
        if (lifecycle_kill(inst, signum, &e) < 0)
                return reply_lifecycle_error(call, inst, &e);
        return control_reply(call, state_reply(inst));
}

/* ---- MemoryAction ------------------------------------------------------------------ */

/*
 * org.cella.MemoryAction {app, action, level?}: one action of the memory manager by
 * hand (docs/api.md; supervisor/memory-actions.h), recorded as the manager's own
 * would be. level: "moderate", "low", "critical"; default "critical" for kill,
 * "moderate" otherwise (restore, freeze and thaw take none).
 */
static int method_memory_action(ControlCall *call, json_t *params, void *ud)
{
        static const char *const actions[] = {"trim",   "reclaim", "restore",
                                              "freeze", "thaw",    "kill"};
        AppMethods *am = ud;
        const char *id = app_param(call, params);
        const char *action = json_string_value(json_object_get(params, "action"));
        json_t *lv = json_object_get(params, "level");
        MemoryLevel level = MEMORY_LEVEL_MODERATE;
        LifecycleError e = {};
        Instance *inst;
        uint64_t t0;
        json_t *reply;
        size_t a;
        int r;

        if (!id)
                return 0;
        for (a = 0; action && a < ELEMENTSOF(actions); a++)
                if (strcmp(action, actions[a]) == 0)
                        break;
        if (!action || a == ELEMENTSOF(actions))
                return reply_invalid(call, "action",
                                     "expected trim, reclaim, restore, freeze, thaw or kill");
        if (strcmp(action, "kill") == 0)
                level = MEMORY_LEVEL_CRITICAL;
        if (lv &&
            (!json_is_string(lv) || memory_action_level_parse(json_string_value(lv), &level) < 0 ||
             level == MEMORY_LEVEL_NORMAL))
                return reply_invalid(call, "level", "expected moderate, low or critical");
        inst = find_app(am, call, id, false);
        if (!inst)
                return 0;
        t0 = now_monotonic_ns();
        switch (a) {
        case 0:
                r = supervisor_memory_trim(inst, level, &e);
                break;
        case 1:
                r = supervisor_memory_reclaim(inst, level, &e);
                break;
        case 2:
                r = supervisor_memory_restore(inst, &e);
                break;
        case 3:
                r = supervisor_memory_freeze(inst, &e);
                break;
        case 4:
                r = supervisor_memory_thaw(inst, &e);
                break;
        default:
                r = supervisor_memory_kill(inst, level, &e);
                break;
        }
        if (r < 0)
                return reply_lifecycle_error(call, inst, &e);
        reply = state_reply(inst);
        if (reply) {
                json_object_set_new(reply, "action", json_string(action));
                json_object_set_new(reply, "level", json_string(memory_action_level_name(level)));
                json_object_set_new(reply, "duration_us",
                                    json_integer((json_int_t)((now_monotonic_ns() - t0) / 1000)));
        }
        return control_reply(call, reply);
}

/* ---- Logs -------------------------------------------------------------------------- */

/* Sends what st's log holds past st->log_pos (a rotation starts it over), as
 * {"app", "data"} replies that continue. Returns 0 or -errno. */
static int logs_send_new(Stream *st)
{
        _cleanup_close_ int fd = open(st->log_path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        struct stat sb;
        char *buf;
        ssize_t k;

        if (fd < 0)
                return errno == ENOENT ? 0 : -errno;
        if (fstat(fd, &sb) < 0)
                return -errno;
        if ((uint64_t)sb.st_ino != st->log_ino || (uint64_t)sb.st_size < st->log_pos) {
                /* Rotated (applog.h): the new file from its start. */
                st->log_ino = (uint64_t)sb.st_ino;
                st->log_pos = 0;
        }
        buf = malloc(APP_LOGS_CHUNK);
        if (!buf)
                return -ENOMEM;
        while ((k = pread(fd, buf, APP_LOGS_CHUNK, (off_t)st->log_pos)) > 0) {
                size_t used = 0;
                /* Valid UTF-8 (a JSON string): a character cut by the chunk waits for
                 * the next read, an ill-formed byte is sent as U+FFFD. */
                json_t *data = daemon_log_json_string(buf, (size_t)k, &used);

                if (!data) {
                        free(buf);
                        return -ENOMEM;
                }
                if (used == 0) {
                        json_decref(data);
                        break; /* only the start of a character yet */
                }
                st->log_pos += used;
                if (control_reply_continues(st->call, json_pack("{s:s, s:o}", "app",
                                                                instance_manifest(st->inst)->id,
                                                                "data", data)) < 0)
                        break; /* the client is gone or too slow: its abort ends the stream */
        }
        free(buf);
        return k < 0 ? -errno : 0;
}

static int method_logs(ControlCall *call, json_t *params, void *ud)
{
        AppMethods *am = ud;
        const char *id = app_param(call, params);
        json_t *lines = json_object_get(params, "lines"), *since = json_object_get(params, "since");
        _cleanup_free_ char *path = NULL, *dir = NULL;
        _cleanup_close_ int dirfd = -EBADF;
        bool truncated = false;
        int64_t since_us = 0;
        uint64_t pos, ino;
        Instance *inst;
        json_t *text;
        Stream *st;

        if (!id)
                return 0;
        if (lines && (!json_is_integer(lines) || json_integer_value(lines) < 0))
                return reply_invalid(call, "lines", "expected a number of lines >= 0");
        if (since &&
            (!json_is_string(since) ||
             audit_parse_since(json_string_value(since), now_realtime_us(), &since_us) < 0))
                return reply_invalid(call, "since",
                                     "expected an RFC 3339 time or date, or an age such as "
                                     "10m, 2h, 1d");
        inst = find_app(am, call, id, false);
        if (!inst)
                return 0;
        if (asprintf(&dir, "%s/logs", daemon_state_dir(am->d)) < 0 ||
            asprintf(&path, "%s/%s.log", dir, id) < 0)
                return -ENOMEM;
        dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        /* The rotated files too, as cella logs reads them (logread.c). */
        text = dirfd >= 0
                       ? daemon_log_tail(dirfd, id, lines ? (uint64_t)json_integer_value(lines) : 0,
                                         since_us, APP_LOGS_MAX, &pos, &ino, &truncated)
                       : (pos = ino = 0, json_string(""));
        if (!text)
                return -ENOMEM;
        if (!control_call_more(call))
                return control_reply(call, json_pack("{s:s, s:o, s:b}", "app", id, "data", text,
                                                     "truncated", truncated));
        st = stream_new(am, call, STREAM_LOGS, inst);
        if (!st) {
                json_decref(text);
                return -ENOMEM;
        }
        st->log_path = TAKE_PTR(path);
        st->log_pos = pos;
        st->log_ino = ino;
        tick_arm(am, APP_LOGS_POLL_MS);
        return control_reply_continues(call, json_pack("{s:s, s:o, s:b}", "app", id, "data", text,
                                                       "truncated", truncated));
}

/* ---- Events ------------------------------------------------------------------------- */

/* What an event is about, for filters and the CLI's column. */
static const char *event_kind(const json_t *rec)
{
        const char *ev = json_string_value(json_object_get(rec, "event"));
        const char *how = json_string_value(json_object_get(rec, "how"));

        if (json_is_true(json_object_get(rec, "oom_killed")) ||
            json_integer_value(json_object_get(rec, "oom_kills")) > 0)
                return "memory";
        if (how && strcmp(how, "killed") == 0)
                return "kill";
        if (ev && (strcmp(ev, "grant") == 0 || strcmp(ev, "call") == 0 ||
                   strcmp(ev, "notification") == 0))
                return "permission";
        return "lifecycle";
}

/* audit records replayed, as events: lifecycle, grant and seccomp records, and the
 * calls that were refused. On the replay's thread (replay.c): touches only rec. */
static json_t *replay_select(const json_t *rec)
{
        const char *ev = json_string_value(json_object_get(rec, "event"));
        const char *decision = json_string_value(json_object_get(rec, "decision"));
        json_t *o;

        if (!ev || (strcmp(ev, "call") == 0 && (!decision || strcmp(decision, "allowed") == 0)))
                return NULL;
        o = json_deep_copy(rec);
        if (!o)
                return NULL;
        json_object_set_new(o, "source", json_string("audit"));
        json_object_set_new(o, "kind", json_string(event_kind(rec)));
        return o;
}

/* The status record rec (a tap) as an event, at time when. */
static json_t *tap_event(const json_t *rec, const char *when)
{
        json_t *o = json_deep_copy(rec);

        if (!o)
                return NULL;
        json_object_set_new(o, "time", json_string(when));
        json_object_set_new(o, "source", json_string("status"));
        json_object_set_new(o, "kind", json_string(event_kind(rec)));
        return o;
}

/* An Events call whose replay of the audit log runs (replay.c). */
typedef struct Replaying {
        AppMethods *am;
        ControlCall *call;
        DaemonReplay *replay;
        unsigned sent;
        json_t *live;     /* with more: the taps during the replay, sent after it */
        unsigned dropped; /* taps past APP_EVENTS_LIVE_MAX */
        struct Replaying *next;
} Replaying;

static void replaying_free(Replaying *rp)
{
        for (Replaying **p = &rp->am->replays; *p; p = &(*p)->next)
                if (*p == rp) {
                        *p = rp->next;
                        break;
                }
        json_decref(rp->live);
        free(rp);
}

static void replay_batch(json_t *events, void *ud)
{
        Replaying *rp = ud;
        size_t i;
        json_t *ev;

        if (!control_call_more(rp->call)) {
                rp->sent += (unsigned)json_array_size(events); /* counted only */
                return;
        }
        json_array_foreach(events, i, ev)
        {
                if (control_reply_continues(rp->call, json_pack("{s:O}", "event", ev)) < 0)
                        return; /* gone or too slow: its abort cancels the replay */
                rp->sent++;
        }
}

static bool replay_busy(void *ud)
{
        Replaying *rp = ud;

        return control_call_queued(rp->call) > APP_EVENTS_QUEUED;
}

static void replay_done(int r, const AuditVerifyReport *report, void *ud)
{
        Replaying *rp = ud;
        AppMethods *am = rp->am;
        ControlCall *call = rp->call;
        json_t *live = TAKE_PTR(rp->live);
        unsigned sent = rp->sent, dropped = rp->dropped;
        size_t i;
        json_t *ev;

        if (r < 0 && r != -ENOENT)
                log_warning("events: the audit log's replay stopped: %s",
                            report->message[0] ? report->message : strerror(-r));
        control_call_on_abort(call, NULL, NULL);
        replaying_free(rp);
        if (!control_call_more(call)) {
                json_decref(live);
                (void)control_reply(call, json_pack("{s:I}", "replayed", (json_int_t)sent));
                return;
        }
        if (!stream_new(am, call, STREAM_EVENTS, NULL)) {
                json_decref(live);
                (void)control_reply_errno(call, -ENOMEM, NULL);
                return;
        }
        /* A first reply says the stream is live: what follows happens now (the taps
         * that came during the replay first). */
        (void)control_reply_continues(call,
                                      json_pack("{s:b, s:I, s:I}", "live", true, "replayed",
                                                (json_int_t)sent, "dropped", (json_int_t)dropped));
        json_array_foreach(live, i, ev)(void)
                control_reply_continues(call, json_pack("{s:O}", "event", ev));
        json_decref(live);
}

static void replay_abort(ControlCall *call, void *ud)
{
        Replaying *rp = ud;

        daemon_replay_cancel(rp->replay);
        replaying_free(rp);
}

static const DaemonReplayOps replay_ops = {
        .select = replay_select,
        .batch = replay_batch,
        .busy = replay_busy,
        .done = replay_done,
};

static void events_tap(const json_t *rec, void *ud)
{
        AppMethods *am = ud;
        char when[40];

        if (!audit_format_time(now_realtime_us(), when, sizeof when))
                when[0] = 0;
        for (Stream *st = am->streams; st; st = st->next) {
                json_t *o;

                if (st->kind != STREAM_EVENTS)
                        continue;
                o = tap_event(rec, when);
                if (o)
                        control_reply_continues(st->call, json_pack("{s:o}", "event", o));
        }
        for (Replaying *rp = am->replays; rp; rp = rp->next) {
                json_t *o;

                if (!control_call_more(rp->call))
                        continue;
                if (json_array_size(rp->live) >= APP_EVENTS_LIVE_MAX || !rp->live ||
                    !(o = tap_event(rec, when)) || json_array_append_new(rp->live, o) < 0)
                        rp->dropped++;
        }
}

static int method_events(ControlCall *call, json_t *params, void *ud)
{
        AppMethods *am = ud;
        json_t *since = json_object_get(params, "since");
        AuditFilter filter = {};
        Replaying *rp;
        Stream *st;
        int r;

        if (!since) {
                if (!control_call_more(call))
                        return control_reply(call, json_pack("{s:I}", "replayed", (json_int_t)0));
                st = stream_new(am, call, STREAM_EVENTS, NULL);
                if (!st)
                        return -ENOMEM;
                return control_reply_continues(
                        call, json_pack("{s:b, s:I}", "live", true, "replayed", (json_int_t)0));
        }
        if (!json_is_string(since) ||
            audit_parse_since(json_string_value(since), now_realtime_us(), &filter.since_usec) < 0)
                return reply_invalid(call, "since",
                                     "expected an RFC 3339 time or date, or an age such as 10m, "
                                     "2h, 1d");
        filter.has_since = true;
        /* The replay reads the whole chain: off the loop (replay.c). */
        rp = calloc(1, sizeof *rp);
        if (!rp)
                return -ENOMEM;
        *rp = (Replaying){.am = am, .call = call, .live = json_array()};
        r = daemon_replay_start(daemon_loop(am->d), daemon_state_dir(am->d), &filter, &replay_ops,
                                rp, &rp->replay);
        if (r < 0) {
                json_decref(rp->live);
                free(rp);
                return control_reply_errno(call, r, "cannot start the audit log's replay");
        }
        rp->next = am->replays;
        am->replays = rp;
        control_call_on_abort(call, replay_abort, rp);
        return 0;
}

/* ---- state changes and the tick -------------------------------------------------- */

static void on_state(Instance *inst, InstanceState from, InstanceState to, void *ud)
{
        AppMethods *am = ud;
        Stream *next;
        bool ps = false;

        for (Stream *st = am->streams; st; st = next) {
                next = st->next;
                switch (st->kind) {
                case STREAM_PS:
                        st->dirty = ps = true;
                        break;
                case STREAM_WAIT_STOPPED:
                        if (st->inst == inst && !instance_state_is_running(to) &&
                            to != INSTANCE_STATE_STARTING)
                                stream_end(st, state_reply(inst));
                        break;
                case STREAM_WAIT_RUNNING:
                        if (st->inst != inst)
                                break;
                        if (to == INSTANCE_STATE_FAILED) {
                                ControlCall *call = st->call;
                                char msg[256];

                                stream_unlink(st);
                                control_call_on_abort(call, NULL, NULL);
                                stream_free(st);
                                snprintf(msg, sizeof msg, "%s: it did not start again: %s",
                                         instance_manifest(inst)->id,
                                         log_last_error()[0] ? log_last_error() : "failed");
                                control_reply_error(call, "org.cella.Failed",
                                                    json_pack("{s:s, s:i, s:s}", "message", msg,
                                                              "errno", EIO, "app",
                                                              instance_manifest(inst)->id));
                        } else if (instance_state_is_running(to) && to != INSTANCE_STATE_STOPPING)
                                stream_end(st, state_reply(inst));
                        break;
                default:
                        break;
                }
        }
        if (ps)
                tick_arm(am, 0);
}

static void on_tick(uv_timer_t *t)
{
        AppMethods *am = t->data;
        uint64_t now = now_monotonic_ms(), t0 = now_monotonic_ns();
        /* ps --watch's bound: at most one snapshot per APP_WATCH_MIN_MS, and no more
         * than a tenth of the loop's time on them (a snapshot of 1,000 apps reads
         * their cgroups: tens of ms). */
        uint64_t gap = MAX((uint64_t)APP_WATCH_MIN_MS, 10 * am->ps_cost_ms);
        json_t *snap[2] = {NULL, NULL}; /* without and with "all", made once a tick */
        bool logs = false, ps_wait = false, sent = false;

        for (Stream *st = am->streams; st; st = st->next) {
                if (st->kind == STREAM_LOGS) {
                        logs = true;
                        (void)logs_send_new(st);
                } else if (st->kind == STREAM_PS && st->dirty) {
                        if (now - am->last_ps_ms < gap) {
                                ps_wait = true;
                                continue;
                        }
                        if (!snap[st->all])
                                snap[st->all] = ps_snapshot(am, st->all);
                        st->dirty = false;
                        sent = true;
                        control_reply_continues(st->call, json_incref(snap[st->all]));
                }
        }
        json_decref(snap[0]);
        json_decref(snap[1]);
        if (sent) {
                am->last_ps_ms = now;
                am->ps_cost_ms = (now_monotonic_ns() - t0) / 1000000;
        }
        if (ps_wait)
                tick_arm(am, gap - (now - am->last_ps_ms));
        else if (logs)
                tick_arm(am, APP_LOGS_POLL_MS);
}

static void tick_arm(AppMethods *am, uint64_t ms)
{
        if (!am->tick_init) {
                if (uv_timer_init(daemon_loop(am->d), &am->tick) < 0)
                        return;
                am->tick.data = am;
                am->tick_init = true;
        }
        if (ms == 0 && uv_is_active((uv_handle_t *)&am->tick))
                return;
        (void)uv_timer_start(&am->tick, on_tick, ms ?: 1, 0);
}

static const ControlMethod methods[] = {
        {"org.cella.Ps", CONTROL_ACCESS_READ, method_ps},
        {"org.cella.Inspect", CONTROL_ACCESS_READ, method_inspect},
        {"org.cella.Logs", CONTROL_ACCESS_READ, method_logs},
        {"org.cella.Events", CONTROL_ACCESS_READ, method_events},
        {"org.cella.Start", CONTROL_ACCESS_MANAGE, method_start},
        {"org.cella.Stop", CONTROL_ACCESS_MANAGE, method_stop},
        {"org.cella.Restart", CONTROL_ACCESS_MANAGE, method_restart},
        {"org.cella.Freeze", CONTROL_ACCESS_MANAGE, method_freeze},
        {"org.cella.Thaw", CONTROL_ACCESS_MANAGE, method_thaw},
        {"org.cella.Kill", CONTROL_ACCESS_MANAGE, method_kill},
        {"org.cella.Foreground", CONTROL_ACCESS_MANAGE, method_foreground},
        {"org.cella.Background", CONTROL_ACCESS_MANAGE, method_background},
        {"org.cella.MemoryAction", CONTROL_ACCESS_ROOT, method_memory_action},
};

void daemon_app_forget(Daemon *d, const char *id)
{
        AppMethods *am = &app_methods;
        Instance *inst = supervisor_find(daemon_supervisor(d), id);
        Stream *next;
        int r;

        if (!inst)
                return;
        for (Stream *st = am->streams; st; st = next) {
                next = st->next;
                if (st->inst != inst)
                        continue;
                if (st->kind == STREAM_LOGS) {
                        stream_end(st, json_pack("{s:s, s:b}", "app", id, "removed", true));
                } else {
                        ControlCall *call = st->call;

                        stream_unlink(st);
                        control_call_on_abort(call, NULL, NULL);
                        stream_free(st);
                        (void)reply_no_app(call, id);
                }
        }
        r = supervisor_drop_app(daemon_supervisor(d), inst);
        if (r < 0)
                log_warning_errno(r, "%s: removed, but its instance stays listed (stopped): %m",
                                  id);
}

int daemon_app_methods(Daemon *d)
{
        AppMethods *am = &app_methods;
        int r;

        *am = (AppMethods){.d = d, .s = daemon_supervisor(d)};
        r = lifecycle_listen(am->s, on_state, am);
        if (r >= 0)
                r = lifecycle_tap_status(am->s, events_tap, am);
        if (r >= 0)
                r = control_add_methods(daemon_control(d), methods, ELEMENTSOF(methods), am);
        if (r < 0)
                return log_error_errno(r, "cannot register the app methods: %m");
        return 0;
}
