/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A container's cgroup, on cgroupfs or through systemd (cgroups.h). */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-bus.h>
#include <time.h>
#include <unistd.h>

#include "base/macro.h"
#include "oci/cgroups.h"

/* How long systemd may take to start or stop the scope. */
#define SCOPE_TIMEOUT_US (10ull * 1000 * 1000)

/*
 * libsystemd's sd-bus, loaded only for --systemd-cgroup (dlopen): linked, loading it
 * cost every cella-oci command ~0.5 ms on the test host (a program linked with
 * -lsystemd against one without, 300 runs each), and engines run several commands
 * per container start.
 */
typedef struct SdBus {
        int (*open_system)(sd_bus **);
        sd_bus *(*unref)(sd_bus *);
        int (*match_signal)(sd_bus *, sd_bus_slot **, const char *, const char *, const char *,
                            const char *, sd_bus_message_handler_t, void *);
        sd_bus_slot *(*slot_unref)(sd_bus_slot *);
        int (*call_method)(sd_bus *, const char *, const char *, const char *, const char *,
                           sd_bus_error *, sd_bus_message **, const char *, ...);
        int (*new_method_call)(sd_bus *, sd_bus_message **, const char *, const char *,
                               const char *, const char *);
        int (*append)(sd_bus_message *, const char *, ...);
        int (*open_container)(sd_bus_message *, char, const char *);
        int (*close_container)(sd_bus_message *);
        int (*call)(sd_bus *, sd_bus_message *, uint64_t, sd_bus_error *, sd_bus_message **);
        int (*read)(sd_bus_message *, const char *, ...);
        sd_bus_message *(*message_unref)(sd_bus_message *);
        int (*process)(sd_bus *, sd_bus_message **);
        int (*wait)(sd_bus *, uint64_t);
        void (*error_free)(sd_bus_error *);
} SdBus;

/* The sd-bus functions from libsystemd.so.0, or NULL with err saying why. */
static const SdBus *sd_bus_api(char *err, size_t errlen)
{
        static SdBus api;
        static bool loaded;
        void *h;

        if (loaded)
                return &api;
        h = dlopen("libsystemd.so.0", RTLD_NOW | RTLD_LOCAL);
        if (!h) {
                snprintf(err, errlen, "--systemd-cgroup: load libsystemd: %s", dlerror());
                return NULL;
        }
#define SYM(field, name)                                                                           \
        if (!(*(void **)&api.field = dlsym(h, name))) {                                            \
                snprintf(err, errlen, "--systemd-cgroup: libsystemd lacks %s", name);              \
                return NULL;                                                                       \
        }
        SYM(open_system, "sd_bus_open_system")
        SYM(unref, "sd_bus_unref")
        SYM(match_signal, "sd_bus_match_signal")
        SYM(slot_unref, "sd_bus_slot_unref")
        SYM(call_method, "sd_bus_call_method")
        SYM(new_method_call, "sd_bus_message_new_method_call")
        SYM(append, "sd_bus_message_append")
        SYM(open_container, "sd_bus_message_open_container")
        SYM(close_container, "sd_bus_message_close_container")
        SYM(call, "sd_bus_call")
        SYM(read, "sd_bus_message_read")
        SYM(message_unref, "sd_bus_message_unref")
        SYM(process, "sd_bus_process")
        SYM(wait, "sd_bus_wait")
        SYM(error_free, "sd_bus_error_free")
#undef SYM
        loaded = true;
        return &api;
}

/* sd_booted(3) without libsystemd: the system was booted with systemd when
 * /run/systemd/system/ is a directory. */
static bool systemd_running(void)
{
        struct stat st;

        return lstat("/run/systemd/system/", &st) == 0 && S_ISDIR(st.st_mode);
}

struct OciSystemdScope {
        char *unit;
        char *slice;
        bool started;
};

/* A part of "slice:prefix:name": [A-Za-z0-9_.:@-], as a unit name takes (systemd.unit(5)). */
static bool unit_chars(const char *s, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
                      (s[i] >= '0' && s[i] <= '9') || strchr("_.:@-", s[i])))
                        return false;
        return true;
}

/* "a-b.slice" -> "/a.slice/a-b.slice" (systemd.slice(5)); "-.slice" -> "". */
static int slice_expand(const char *slice, char **ret)
{
        size_t n = strlen(slice) - strlen(".slice");
        char *out, *o;

        if (strcmp(slice, "-.slice") == 0)
                return (*ret = strdup("")) ? 0 : -ENOMEM;
        if (n == 0 || slice[0] == '-' || slice[n - 1] == '-' || strstr(slice, "--"))
                return -EINVAL;
        out = o = malloc((n + 7) * (n + 1) + 1);
        if (!out)
                return -ENOMEM;
        for (size_t i = 0; i <= n; i++)
                if (i == n || slice[i] == '-')
                        o += sprintf(o, "/%.*s.slice", (int)i, slice);
        *o = 0;
        *ret = out;
        return 0;
}

int oci_cgroup_path(const char *path, const char *id, bool systemd, char **ret, char **ret_unit,
                    char *err, size_t errlen)
{
        _cleanup_free_ char *def = NULL, *expanded = NULL, *unit = NULL;
        const char *c1, *c2, *slice;
        size_t sl;

        if (!systemd) {
                if (!path || !*path) {
                        if (asprintf(&def, "/cella-oci/%s", id) < 0)
                                return -ENOMEM;
                        *ret = TAKE_PTR(def);
                } else if (!(*ret = strdup(path)))
                        return -ENOMEM;
                return 0;
        }
        if (!path || !*path) {
                if (asprintf(&def, "system.slice:cella-oci:%s", id) < 0)
                        return -ENOMEM;
                path = def;
        }
        c1 = strchr(path, ':');
        c2 = c1 ? strchr(c1 + 1, ':') : NULL;
        if (!c1 || !c2 || strchr(c2 + 1, ':') || !c2[1]) {
                snprintf(err, errlen,
                         "linux.cgroupsPath \"%s\": --systemd-cgroup takes \"slice:prefix:name\"",
                         path);
                return -EINVAL;
        }
        sl = (size_t)(c1 - path);
        slice = sl ? path : "system.slice";
        if (!sl)
                sl = strlen("system.slice");
        if (!unit_chars(slice, sl) || !unit_chars(c1 + 1, (size_t)(c2 - c1 - 1)) ||
            !unit_chars(c2 + 1, strlen(c2 + 1)) || sl < 7 ||
            strncmp(slice + sl - 6, ".slice", 6) != 0) {
                snprintf(err, errlen, "linux.cgroupsPath \"%s\": not a slice and unit name", path);
                return -EINVAL;
        }
        {
                _cleanup_free_ char *s = strndup(slice, sl);

                if (!s)
                        return -ENOMEM;
                if (slice_expand(s, &expanded) < 0) {
                        snprintf(err, errlen, "linux.cgroupsPath \"%s\": bad slice name", path);
                        return -EINVAL;
                }
        }
        if (c2 == c1 + 1 ? asprintf(&unit, "%s.scope", c2 + 1) < 0
                         : asprintf(&unit, "%.*s-%s.scope", (int)(c2 - c1 - 1), c1 + 1, c2 + 1) < 0)
                return -ENOMEM;
        if (asprintf(ret, "%s/%s", expanded, unit) < 0)
                return -ENOMEM;
        if (ret_unit)
                *ret_unit = TAKE_PTR(unit);
        return 0;
}

int oci_cgroup_prepare(const char *path, const char *id, bool systemd, const CgroupResources *res,
                       CgroupManager **ret_manager, OciSystemdScope **ret_scope, char *err,
                       size_t errlen)
{
        _cleanup_free_ char *p = NULL, *unit = NULL;
        CgroupManager *m = NULL;
        int r;

        *ret_manager = NULL;
        *ret_scope = NULL;
        if (systemd && !systemd_running()) {
                snprintf(err, errlen,
                         "--systemd-cgroup: systemd is not running on this host (no "
                         "/run/systemd/system): leave the flag out to use cgroupfs");
                return -EOPNOTSUPP;
        }
        r = oci_cgroup_path(path, id, systemd, &p, &unit, err, errlen);
        if (r < 0)
                return r;
        r = cgroup_manager_new(NULL, CGROUP_MODE_AUTO, NULL, &m);
        if (r < 0) {
                snprintf(err, errlen, "cgroups: no cgroup hierarchy found under /sys/fs/cgroup: %s",
                         strerror(-r));
                return r;
        }
        if (p[0] != '/') {
                /* runc takes it below its own cgroup; every later command would have to run
                 * in that same cgroup to find it again, and one that did not would signal,
                 * freeze or remove another cgroup's processes. */
                snprintf(err, errlen,
                         "linux.cgroupsPath \"%s\": a relative path is not supported (give "
                         "one from the hierarchy's root, \"/%s\")",
                         p, p);
                cgroup_manager_free(m);
                return -EINVAL;
        }
        r = cgroup_manager_set_path(m, p);
        if (r < 0) {
                snprintf(err, errlen,
                         "linux.cgroupsPath \"%s\": not a cgroup path (components of "
                         "[A-Za-z0-9._:@-] separated by '/', no \".\" or \"..\")",
                         p);
                cgroup_manager_free(m);
                return r;
        }
        r = cgroup_manager_add_controllers(m, CGROUP_CTRL_ALL, NULL);
        if (r >= 0 && res)
                r = cgroup_resources_check(m, res, err, errlen);
        else if (r < 0)
                snprintf(err, errlen, "cgroups: find the v1 hierarchies: %s", strerror(-r));
        if (r < 0) {
                cgroup_manager_free(m);
                return r;
        }
        /* A cgroup that holds processes already is someone else's (a service's, another
         * container's): joining it would put them under this container's limits, and
         * delete would kill them. */
        if (cgroup_manager_path_busy(m) > 0) {
                snprintf(err, errlen,
                         "linux.cgroupsPath \"%s\": that cgroup holds processes already "
                         "(another container's or a service's)",
                         p);
                cgroup_manager_free(m);
                return -EBUSY;
        }
        if (systemd) {
                OciSystemdScope *s = calloc(1, sizeof *s);
                const char *c1 = path && *path ? strchr(path, ':') : NULL;

                if (!s || !(s->slice = c1 && c1 != path ? strndup(path, (size_t)(c1 - path))
                                                        : strdup("system.slice"))) {
                        free(s);
                        cgroup_manager_free(m);
                        return -ENOMEM;
                }
                s->unit = TAKE_PTR(unit);
                *ret_scope = s;
        }
        *ret_manager = m;
        return 0;
}

/* oci_cgroup_open() with the controllers in extra added. */
static int cgroup_open_with(const char *path, unsigned extra, CgroupManager **ret_manager,
                            Cgroup **ret)
{
        CgroupManager *m = NULL;
        int r;

        r = cgroup_manager_new(NULL, CGROUP_MODE_AUTO, NULL, &m);
        if (r >= 0)
                r = cgroup_manager_set_path(m, path);
        if (r >= 0)
                r = cgroup_manager_add_controllers(m, extra, NULL);
        if (r >= 0)
                r = cgroup_open(m, path, ret);
        if (r < 0) {
                cgroup_manager_free(m);
                return r;
        }
        *ret_manager = m;
        return 0;
}

int oci_cgroup_open(const char *path, CgroupManager **ret_manager, Cgroup **ret)
{
        int r = cgroup_open_with(path, CGROUP_CTRL_ALL, ret_manager, ret);

        /* A container an older cella-oci made has cella's hierarchies only. */
        if (r == -ENOENT)
                r = cgroup_open_with(path, 0, ret_manager, ret);
        return r;
}

/* Waits for a JobRemoved of job path, at most SCOPE_TIMEOUT_US. */
typedef struct JobWait {
        const char *path;
        char *result;
} JobWait;

static const SdBus *bus_api; /* set by the callers below before any callback runs */

static int on_job_removed(sd_bus_message *m, void *userdata, sd_bus_error *e)
{
        JobWait *w = userdata;
        const char *path = NULL, *unit = NULL, *result = NULL;
        uint32_t id;

        (void)e;
        if (bus_api->read(m, "uoss", &id, &path, &unit, &result) < 0 || !w->path ||
            strcmp(path, w->path) != 0)
                return 0;
        free(w->result);
        w->result = strdup(result);
        return 0;
}

static int job_wait(const SdBus *api, sd_bus *bus, JobWait *w)
{
        for (unsigned i = 0; i < 100 && !w->result; i++) {
                int r;

                while ((r = api->process(bus, NULL)) > 0)
                        if (w->result)
                                break;
                if (r < 0)
                        return r;
                if (w->result)
                        break;
                r = api->wait(bus, SCOPE_TIMEOUT_US / 100);
                if (r < 0)
                        return r;
        }
        if (!w->result)
                return -ETIMEDOUT;
        return strcmp(w->result, "done") == 0 ? 0 : -EIO;
}

int oci_systemd_scope_attach(OciSystemdScope *s, pid_t pid, char *err, size_t errlen)
{
        const SdBus *api = sd_bus_api(err, errlen);
        sd_bus_message *m = NULL, *reply = NULL;
        sd_bus *bus = NULL;
        sd_bus_slot *slot = NULL;
        sd_bus_error e = SD_BUS_ERROR_NULL;
        JobWait w = {};
        const char *job = NULL;
        int r;

        if (!api)
                return -EOPNOTSUPP;
        bus_api = api;
        r = api->open_system(&bus);
        if (r < 0) {
                snprintf(err, errlen, "--systemd-cgroup: connect to systemd: %s", strerror(-r));
                return r;
        }
        r = api->match_signal(bus, &slot, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                              "org.freedesktop.systemd1.Manager", "JobRemoved", on_job_removed, &w);
        if (r >= 0)
                (void)api->call_method(bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                                       "org.freedesktop.systemd1.Manager", "Subscribe", NULL, NULL,
                                       "");
        if (r >= 0)
                r = api->new_method_call(bus, &m, "org.freedesktop.systemd1",
                                         "/org/freedesktop/systemd1",
                                         "org.freedesktop.systemd1.Manager", "StartTransientUnit");
        /* org.freedesktop.systemd1(5): name, mode, properties a(sv), aux a(sa(sv)). */
        if (r >= 0)
                r = api->append(m, "ss", s->unit, "fail");
        if (r >= 0)
                r = api->open_container(m, 'a', "(sv)");
        if (r >= 0)
                r = api->append(m, "(sv)(sv)(sv)(sv)", "Description", "s", "cella-oci container",
                                "Slice", "s", s->slice, "Delegate", "b", 1, "PIDs", "au", 1,
                                (uint32_t)pid);
        if (r >= 0)
                r = api->close_container(m);
        if (r >= 0)
                r = api->append(m, "a(sa(sv))", 0);
        if (r >= 0)
                r = api->call(bus, m, SCOPE_TIMEOUT_US, &e, &reply);
        if (r >= 0)
                r = api->read(reply, "o", &job);
        if (r >= 0) {
                w.path = job;
                r = job_wait(api, bus, &w);
        }
        if (r < 0)
                snprintf(err, errlen, "--systemd-cgroup: start the scope %s in %s: %s", s->unit,
                         s->slice,
                         e.message  ? e.message
                         : w.result ? w.result
                                    : strerror(-r));
        else
                s->started = true;
        api->error_free(&e);
        /* The slot before w goes: no callback sees w once it is gone. */
        api->slot_unref(slot);
        api->message_unref(reply);
        api->message_unref(m);
        api->unref(bus);
        free(w.result);
        return r;
}

const char *oci_systemd_scope_unit(const OciSystemdScope *s)
{
        return s ? s->unit : NULL;
}

int oci_systemd_unit_stop(const char *unit)
{
        const SdBus *api;
        sd_bus *bus = NULL;
        char err[256];
        int r;

        if (!systemd_running() || !(api = sd_bus_api(err, sizeof err)))
                return -EOPNOTSUPP;
        r = api->open_system(&bus);
        if (r < 0)
                return r;
        r = api->call_method(bus, "org.freedesktop.systemd1", "/org/freedesktop/systemd1",
                             "org.freedesktop.systemd1.Manager", "StopUnit", NULL, NULL, "ss", unit,
                             "replace");
        api->unref(bus);
        return r;
}

void oci_systemd_scope_stop(OciSystemdScope *s)
{
        if (s && s->started)
                (void)oci_systemd_unit_stop(s->unit);
}

OciSystemdScope *oci_systemd_scope_free(OciSystemdScope *s)
{
        if (!s)
                return NULL;
        free(s->unit);
        free(s->slice);
        free(s);
        return NULL;
}
