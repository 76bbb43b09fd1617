/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A packed group's host spec and the stats file of a Lua host (luahost.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "supervisor/launch.h"
#include "supervisor/luahost.h"

int luahost_scheduler(const Manifest *const *ms, size_t n, ManifestScheduler *ret, size_t *ret_a,
                      size_t *ret_b)
{
        ManifestScheduler sched = MANIFEST_SCHEDULER_FAIR;
        size_t first = SIZE_MAX;

        for (size_t i = 0; i < n; i++) {
                if (!ms[i]->has_scheduler)
                        continue;
                if (first == SIZE_MAX) {
                        first = i;
                        sched = ms[i]->scheduler;
                } else if (ms[i]->scheduler != sched) {
                        *ret_a = first;
                        *ret_b = i;
                        return -EINVAL;
                }
        }
        *ret = sched;
        return 0;
}

ManifestRestart luahost_restart(const Manifest *const *ms, size_t n)
{
        ManifestRestart r = MANIFEST_RESTART_NO;

        for (size_t i = 0; i < n; i++)
                if (ms[i]->restart == MANIFEST_RESTART_ALWAYS)
                        r = MANIFEST_RESTART_ALWAYS;
                else if (ms[i]->restart == MANIFEST_RESTART_ON_FAILURE && r == MANIFEST_RESTART_NO)
                        r = MANIFEST_RESTART_ON_FAILURE;
        return r;
}

uint64_t luahost_memory(const Manifest *const *ms, size_t n)
{
        uint64_t sum = 0;

        for (size_t i = 0; i < n; i++) {
                uint64_t m = ms[i]->limits.memory ?: LUAHOST_MEMBER_MEMORY;

                sum = sum > UINT64_MAX - m ? UINT64_MAX : sum + m;
        }
        return sum;
}

static json_t *app_spec(const LuaHostApp *a, bool fds)
{
        const Manifest *m = a->manifest;
        json_t *o, *args = json_array();
        char *entry = NULL, *data = NULL;

        if (!args || asprintf(&entry, "/apps/%s/%s", m->id, m->entry) < 0) {
                json_decref(args);
                return NULL;
        }
        if (asprintf(&data, "/data/%s", m->id) < 0) {
                free(entry);
                json_decref(args);
                return NULL;
        }
        for (size_t i = 0; m->args[i]; i++)
                json_array_append_new(args, json_string(m->args[i]));
        for (size_t i = 0; a->extra_args && a->extra_args[i]; i++)
                json_array_append_new(args, json_string(a->extra_args[i]));
        o = json_pack("{s:s, s:s, s:o, s:s, s:i, s:I}", "id", m->id, "entry", entry, "args", args,
                      "data", data, "priority", m->priority, "memory",
                      (json_int_t)launch_lua_memory_cap(m->limits.memory ?: LUAHOST_MEMBER_MEMORY));
        free(entry);
        free(data);
        if (o && fds && a->channel_fd >= 0)
                json_object_set_new(o, "channel_fd", json_integer(a->channel_fd));
        if (o && fds && a->log_fd >= 0)
                json_object_set_new(o, "log_fd", json_integer(a->log_fd));
        return o;
}

int luahost_spec_build(ManifestScheduler scheduler, const LuaHostApp *apps, size_t n,
                       size_t n_slots, int stats_fd, int control_fd, char **ret)
{
        json_t *spec, *list;
        char *text;

        if (n == 0 || n > LUAHOST_APPS_MAX || !apps || !manifest_scheduler_to_string(scheduler))
                return -EINVAL;
        if (n_slots && (n_slots < n || n_slots > LUAHOST_APPS_MAX))
                return -EINVAL;
        for (size_t i = 0; i < n; i++)
                if (!apps[i].manifest)
                        return -EINVAL;
        if (n_slots) {
                /* Each app in a slot of its own. */
                _cleanup_free_ bool *used = calloc(n_slots, sizeof *used);

                if (!used)
                        return -ENOMEM;
                for (size_t i = 0; i < n; i++) {
                        if (apps[i].slot < 0 || (size_t)apps[i].slot >= n_slots ||
                            used[apps[i].slot])
                                return -EINVAL;
                        used[apps[i].slot] = true;
                }
        }
        list = json_array();
        spec = json_pack("{s:s, s:i, s:o}", "scheduler", manifest_scheduler_to_string(scheduler),
                         "slice_ms", (int)LUAHOST_SLICE_MS, "apps", list);
        if (!spec)
                return -ENOMEM;
        if (stats_fd >= 0)
                json_object_set_new(spec, "stats_fd", json_integer(stats_fd));
        if (control_fd >= 0)
                json_object_set_new(spec, "control_fd", json_integer(control_fd));
        if (n_slots)
                json_object_set_new(spec, "slots", json_integer((json_int_t)n_slots));
        for (size_t i = 0; i < n; i++) {
                json_t *a = app_spec(&apps[i], true);

                if (a && n_slots)
                        json_object_set_new(a, "slot", json_integer(apps[i].slot));
                if (!a || json_array_append_new(list, a) < 0) {
                        json_decref(spec);
                        return -ENOMEM;
                }
        }
        text = json_dumps(spec, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(spec);
        if (!text)
                return -ENOMEM;
        *ret = text;
        return 0;
}

int luahost_join_build(const LuaHostApp *a, uint32_t index, uint32_t run, void **ret,
                       size_t *ret_len)
{
        CLuaCtlHeader h;
        json_t *o;
        char *text, *msg;
        size_t len;

        if (!a || !a->manifest || run == 0)
                return -EINVAL;
        o = app_spec(a, false);
        if (!o)
                return -ENOMEM;
        text = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
        json_decref(o);
        if (!text)
                return -ENOMEM;
        len = strlen(text);
        if (len > CLUA_CTL_MSG_MAX - sizeof h) {
                free(text);
                return -EMSGSIZE;
        }
        msg = malloc(sizeof h + len);
        if (!msg) {
                free(text);
                return -ENOMEM;
        }
        h = (CLuaCtlHeader){.magic = CLUA_CTL_MAGIC,
                            .type = CLUA_CTL_JOIN,
                            .n_fds = a->log_fd >= 0 ? 2 : 1,
                            .index = index,
                            .run = run,
                            .len = (uint32_t)len};
        memcpy(msg, &h, sizeof h);
        memcpy(msg + sizeof h, text, len);
        free(text);
        *ret = msg;
        *ret_len = sizeof h + len;
        return 0;
}

void luahost_stop_build(uint32_t index, uint32_t run, CLuaCtlHeader *ret)
{
        *ret = (CLuaCtlHeader){
                .magic = CLUA_CTL_MAGIC, .type = CLUA_CTL_STOP, .index = index, .run = run};
}

int luahost_priority_build(uint32_t index, uint32_t run, uint32_t cpu_class, int priority,
                           void *buf, size_t size)
{
        CLuaCtlHeader h = {
                .magic = CLUA_CTL_MAGIC, .type = CLUA_CTL_PRIORITY, .index = index, .run = run};
        int n;

        if (cpu_class == CLUA_CPU_CLASS_NONE || cpu_class >= _CLUA_CPU_CLASS_MAX ||
            priority < -20 || priority > 19)
                return -EINVAL;
        if (!buf || size < LUAHOST_PRIORITY_MSG_MAX)
                return -ENOBUFS;
        n = snprintf((char *)buf + sizeof h, size - sizeof h, "{\"class\":\"%s\",\"priority\":%d}",
                     clua_cpu_class_to_string(cpu_class), priority);
        if (n < 2 || (size_t)n > CLUA_CTL_PRIORITY_MAX)
                return -ENOBUFS;
        h.len = (uint32_t)n;
        memcpy(buf, &h, sizeof h);
        return (int)(sizeof h + (size_t)n);
}

int luastats_new(uint32_t n_apps, LuaStats **ret)
{
        _cleanup_close_ int fd = -EBADF;
        size_t size;
        void *map;
        LuaStats *s;

        if (n_apps == 0 || n_apps > LUAHOST_APPS_MAX)
                return -EINVAL;
        size = clua_stats_size(n_apps);
        fd = memfd_create("cella-lua-stats", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return negative_errno();
        if (ftruncate(fd, (off_t)size) < 0 ||
            fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
                return negative_errno();
        map = mmap(NULL, size, PROT_READ, MAP_SHARED, fd, 0);
        if (map == MAP_FAILED)
                return negative_errno();
        s = malloc(sizeof *s);
        if (!s) {
                munmap(map, size);
                return -ENOMEM;
        }
        *s = (LuaStats){.fd = TAKE_FD(fd), .map = map, .size = size, .n_apps = n_apps};
        *ret = s;
        return 0;
}

LuaStats *luastats_free(LuaStats *s)
{
        if (!s)
                return NULL;
        if (s->map)
                munmap((void *)s->map, s->size);
        safe_close(s->fd);
        free(s);
        return NULL;
}

#define LOAD(field) __atomic_load_n(&(field), __ATOMIC_RELAXED)

int luastats_host(const LuaStats *s, CLuaStatsHost *ret)
{
        const CLuaStatsHost *h = s->map;
        uint32_t magic = LOAD(h->magic);

        if (magic == 0)
                return -EAGAIN;
        /* The host writes this file: trust none of it beyond its fixed size. */
        if (magic != CLUA_STATS_MAGIC || LOAD(h->version) != CLUA_STATS_VERSION ||
            LOAD(h->n_apps) != s->n_apps)
                return -EPROTO;
        *ret = (CLuaStatsHost){
                .magic = magic,
                .version = CLUA_STATS_VERSION,
                .n_apps = s->n_apps,
                .policy = LOAD(h->policy),
                .slice_ns = LOAD(h->slice_ns),
                .slices = LOAD(h->slices),
                .preemptions = LOAD(h->preemptions),
                .yields = LOAD(h->yields),
                .switches = LOAD(h->switches),
                .cpu_ns = LOAD(h->cpu_ns),
                .started = LOAD(h->started),
        };
        return 0;
}

int luastats_app(const LuaStats *s, uint32_t i, CLuaStatsApp *ret)
{
        const CLuaStatsApp *a;
        CLuaStatsHost h;
        int r;

        if (i >= s->n_apps)
                return -ERANGE;
        r = luastats_host(s, &h);
        if (r < 0)
                return r;
        a = (const CLuaStatsApp *)((const char *)s->map + sizeof(CLuaStatsHost)) + i;
        *ret = (CLuaStatsApp){.run = __atomic_load_n(&a->run, __ATOMIC_ACQUIRE)};
        *ret = (CLuaStatsApp){
                .run = ret->run,
                .state = LOAD(a->state),
                .priority = LOAD(a->priority),
                .weight = LOAD(a->weight),
                .fault = LOAD(a->fault),
                .slices = LOAD(a->slices),
                .preemptions = LOAD(a->preemptions),
                .yields = LOAD(a->yields),
                .callbacks = LOAD(a->callbacks),
                .cpu_ns = LOAD(a->cpu_ns),
                .vruntime_ns = LOAD(a->vruntime_ns),
                .memory_bytes = LOAD(a->memory_bytes),
                .cpu_class = LOAD(a->cpu_class),
                .base_priority = LOAD(a->base_priority),
                .memory_peak_bytes = LOAD(a->memory_peak_bytes),
        };
        return 0;
}

const char *luastats_state_to_string(uint32_t state)
{
        static const char *const names[] = {
                [CLUA_APP_STARTING] = "starting", [CLUA_APP_READY] = "ready",
                [CLUA_APP_RUNNING] = "running",   [CLUA_APP_WAITING] = "waiting",
                [CLUA_APP_EXITED] = "exited",     [CLUA_APP_FAILED] = "failed",
        };

        return state < ELEMENTSOF(names) ? names[state] : "unknown";
}

const char *luastats_fault_reason(int code)
{
        switch (code) {
        case 1:
                return "uncaught Lua error";
        case 3:
                return "memory limit of the Lua state exceeded";
        case 4:
                return "CPU budget exceeded";
        default:
                return NULL;
        }
}

static double ms_of(uint64_t ns)
{
        return (double)ns / 1e6;
}

json_t *luastats_json(const LuaStats *s, const char *const *ids, const char *only)
{
        CLuaStatsHost h;
        json_t *o, *apps;

        if (luastats_host(s, &h) < 0)
                return NULL;
        apps = json_array();
        o = json_pack("{s:s, s:f, s:I, s:I, s:I, s:I, s:f, s:I, s:o}", "scheduler",
                      manifest_scheduler_to_string((ManifestScheduler)h.policy) ?: "unknown",
                      "slice_ms", ms_of(h.slice_ns), "slices", (json_int_t)h.slices, "preemptions",
                      (json_int_t)h.preemptions, "yields", (json_int_t)h.yields, "switches",
                      (json_int_t)h.switches, "cpu_ms", ms_of(h.cpu_ns), "started",
                      (json_int_t)h.started, "apps", apps);
        for (uint32_t i = 0; o && i < s->n_apps; i++) {
                CLuaStatsApp a;
                json_t *r;

                if (!ids[i] || (only && strcmp(only, ids[i]) != 0))
                        continue; /* a slot with no app running */
                if (luastats_app(s, i, &a) < 0)
                        break;
                r = json_pack("{s:s, s:s, s:i, s:i, s:I, s:I, s:I, s:I, s:f, s:f, s:I, s:I, s:i}",
                              "id", ids[i], "state", luastats_state_to_string(a.state), "priority",
                              (int)a.priority, "weight", (int)a.weight, "slices",
                              (json_int_t)a.slices, "preemptions", (json_int_t)a.preemptions,
                              "yields", (json_int_t)a.yields, "callbacks", (json_int_t)a.callbacks,
                              "cpu_ms", ms_of(a.cpu_ns), "vruntime_ms", ms_of(a.vruntime_ns),
                              "memory_kib", (json_int_t)(a.memory_bytes / 1024), "memory_peak_kib",
                              (json_int_t)(a.memory_peak_bytes / 1024), "fault", (int)a.fault);
                /* The CPU class its state gives it (docs/memory.md "CPU"), and the
                 * priority its manifest asked for, once the kernel told the host. */
                if (r && a.cpu_class != CLUA_CPU_CLASS_NONE &&
                    clua_cpu_class_to_string(a.cpu_class)) {
                        json_object_set_new(r, "class",
                                            json_string(clua_cpu_class_to_string(a.cpu_class)));
                        json_object_set_new(r, "base_priority", json_integer(a.base_priority));
                }
                if (!r || json_array_append_new(apps, r) < 0) {
                        json_decref(o);
                        return NULL;
                }
        }
        return o;
}
