/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * system.info, system.time, system.uptime, system.env, app.info, memory.stats: what
 * an app may know about the machine and about itself. None needs a right; all are
 * the cheap class except app.info (costly: it copies the grant list).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "base/strv.h"
#include "base/time-util.h"
#include "broker/broker-internal.h"
#include "broker/calls/cgroup-read.h"
#include "config.h"

#define FILE_SMALL_MAX (64u * 1024u) /* bytes of a cgroup or /proc file we read */

/* ---- the app's memory (cgroup-read.h) ------------------------------------------------ */

/* A v1 limit of "no limit" reads as PAGE_COUNTER_MAX pages (0x7ffffffffffff000 on
 * x86-64); anything from 2^62 up is treated as none. */
static uint64_t limit_or_zero(uint64_t v)
{
        return v >= (1ull << 62) ? 0 : v;
}

int cgroup_memory(const BrokerAppInfo *info, CgroupMemory *ret)
{
        CgroupMemory m = {};
        uint64_t v;

        if (info->memory_cgroup) { /* v1 */
                const char *d = info->memory_cgroup;

                if (cgroup_read_knob_u64(d, "memory.usage_in_bytes", &v) == 0)
                        m.current = v;
                if (cgroup_read_knob_u64(d, "memory.limit_in_bytes", &v) == 0)
                        m.limit = limit_or_zero(v);
                if (cgroup_read_knob_u64(d, "memory.max_usage_in_bytes", &v) == 0)
                        m.peak = v;
                if (cgroup_read_keyed_u64(d, "memory.stat", "total_rss", &v) == 0 ||
                    cgroup_read_keyed_u64(d, "memory.stat", "rss", &v) == 0)
                        m.anon = v;
                if (cgroup_read_keyed_u64(d, "memory.stat", "total_cache", &v) == 0 ||
                    cgroup_read_keyed_u64(d, "memory.stat", "cache", &v) == 0)
                        m.file = v;
                if (cgroup_read_keyed_u64(d, "memory.stat", "total_swap", &v) == 0 ||
                    cgroup_read_keyed_u64(d, "memory.stat", "swap", &v) == 0)
                        m.swap = v;
        } else if (info->unified_cgroup &&
                   cgroup_read_knob_u64(info->unified_cgroup, "memory.current", &v) == 0) {
                const char *d = info->unified_cgroup;

                m.current = v;
                if (cgroup_read_knob_u64(d, "memory.max", &v) == 0)
                        m.limit = v == UINT64_MAX ? 0 : v;
                if (cgroup_read_knob_u64(d, "memory.peak", &v) == 0)
                        m.peak = v;
                if (cgroup_read_knob_u64(d, "memory.swap.current", &v) == 0)
                        m.swap = v;
                if (cgroup_read_keyed_u64(d, "memory.stat", "anon", &v) == 0)
                        m.anon = v;
                if (cgroup_read_keyed_u64(d, "memory.stat", "file", &v) == 0)
                        m.file = v;
        } else
                return -ENOENT;

        /* PSI lives in the v2 cgroup, also on hybrid hosts (docs/design.md section 5). */
        (void)cgroup_read_pressure(info->unified_cgroup, "memory.pressure", "some", &m.some_avg10);
        (void)cgroup_read_pressure(info->unified_cgroup, "memory.pressure", "full", &m.full_avg10);
        *ret = m;
        return 0;
}

/*
 * The level from PSI, with the thresholds of Android's lmkd (lmkd.cpp psi_thresholds:
 * low = "some" 70 ms per 1 s, medium = "some" 100 ms per 1 s, critical = "full" 70 ms
 * per 1 s), applied to the 10 s averages: some >= 7% low, some >= 10% medium, full
 * >= 7% critical. Best effort: without PSI the level is NORMAL. Usage near the limit
 * raises it too (>= 90% of the limit low, >= 97% medium), since a v1 memory cgroup
 * reclaims only at its limit.
 */
static Cella__V1__MemoryLevel memory_level(const CgroupMemory *m)
{
        Cella__V1__MemoryLevel l = CELLA__V1__MEMORY_LEVEL__MEMORY_LEVEL_NORMAL;

        if (m->full_avg10 >= 700)
                return CELLA__V1__MEMORY_LEVEL__MEMORY_LEVEL_CRITICAL;
        if (m->some_avg10 >= 1000)
                l = CELLA__V1__MEMORY_LEVEL__MEMORY_LEVEL_MEDIUM;
        else if (m->some_avg10 >= 700)
                l = CELLA__V1__MEMORY_LEVEL__MEMORY_LEVEL_LOW;
        if (m->limit > 0) {
                if (m->current >= m->limit / 100 * 97)
                        l = CELLA__V1__MEMORY_LEVEL__MEMORY_LEVEL_MEDIUM > l
                                    ? CELLA__V1__MEMORY_LEVEL__MEMORY_LEVEL_MEDIUM
                                    : l;
                else if (m->current >= m->limit / 100 * 90 &&
                         l < CELLA__V1__MEMORY_LEVEL__MEMORY_LEVEL_LOW)
                        l = CELLA__V1__MEMORY_LEVEL__MEMORY_LEVEL_LOW;
        }
        return l;
}

/* ---- system.* ------------------------------------------------------------------------ */

/* MemTotal / MemAvailable of /proc/meminfo, in bytes. */
static void meminfo(uint64_t *total, uint64_t *available)
{
        _cleanup_free_ char *s = NULL;

        *total = *available = 0;
        if (read_file_at(AT_FDCWD, "/proc/meminfo", FILE_SMALL_MAX, &s, NULL) < 0)
                return;
        for (char *l = s; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
                unsigned long long kb;

                if (sscanf(l, "MemTotal: %llu kB", &kb) == 1)
                        *total = (uint64_t)kb * 1024;
                else if (sscanf(l, "MemAvailable: %llu kB", &kb) == 1)
                        *available = (uint64_t)kb * 1024;
        }
}

static void system_info(BrokerCall *c)
{
        Cella__V1__SystemInfoReply m = CELLA__V1__SYSTEM_INFO_REPLY__INIT;
        const BrokerAppInfo *info = broker_app_info(c->app);
        struct utsname u;
        cpu_set_t set;

        if (uname(&u) < 0) {
                broker_reply_error(c, errno, "uname failed");
                return;
        }
        m.cella_version = (char *)CELLA_VERSION;
        m.os_name = u.sysname;
        m.os_release = u.release;
        m.machine = u.machine;
        /* The app's cpuset is its init's affinity mask (pid 0: ours, for tests). */
        CPU_ZERO(&set);
        if (sched_getaffinity(info->pid > 0 ? info->pid : 0, sizeof set, &set) == 0)
                m.cpu_count = (uint32_t)CPU_COUNT(&set);
        if (m.cpu_count == 0)
                m.cpu_count = 1;
        meminfo(&m.memory_total_bytes, &m.memory_available_bytes);
        broker_reply(c, &m.base, NULL, 0);
}

static void system_time(BrokerCall *c)
{
        Cella__V1__SystemTimeReply m = CELLA__V1__SYSTEM_TIME_REPLY__INIT;
        struct timespec rt;
        struct tm tm;

        clock_gettime(CLOCK_REALTIME, &rt);
        m.realtime_ns = (int64_t)rt.tv_sec * 1000000000 + rt.tv_nsec;
        m.monotonic_ns = (int64_t)now_clock_ns(CLOCK_MONOTONIC);
        if (localtime_r(&rt.tv_sec, &tm))
                m.utc_offset_s = (int32_t)tm.tm_gmtoff;
        broker_reply(c, &m.base, NULL, 0);
}

/* CLOCK_MONOTONIC when the supervisor's process started (loaded): the kernel's start. */
static uint64_t kernel_start_ns;

__attribute__((constructor)) static void note_start(void)
{
        kernel_start_ns = now_clock_ns(CLOCK_MONOTONIC);
}

static void system_uptime(BrokerCall *c)
{
        Cella__V1__SystemUptimeReply m = CELLA__V1__SYSTEM_UPTIME_REPLY__INIT;
        const BrokerAppInfo *info = broker_app_info(c->app);
        int64_t now = grants_now_ms();

        m.system_ns = now_clock_ns(CLOCK_BOOTTIME);
        m.kernel_ns = now_clock_ns(CLOCK_MONOTONIC) - kernel_start_ns;
        m.app_ns = info->started_ms > 0 && now > info->started_ms
                           ? (uint64_t)(now - info->started_ms) * 1000000ull
                           : 0;
        broker_reply(c, &m.base, NULL, 0);
}

/* The environment rebuilt as launch.c builds it, for an app attached without one. */
static int env_fallback(const Manifest *mf, char ***ret)
{
        _cleanup_strv_free_ char **l = NULL;

        if (strv_extend(&l, "HOME=/data") < 0 || strv_extend(&l, "TMPDIR=/tmp") < 0 ||
            strv_extend(&l, "CELLA_FD=3") < 0 || strv_extendf(&l, "CELLA_APP_ID=%s", mf->id) < 0)
                return -ENOMEM;
        STRV_FOREACH (e, mf->env)
                if (strv_extend(&l, *e) < 0)
                        return -ENOMEM;
        *ret = TAKE_PTR(l);
        return 0;
}

static void system_env(BrokerCall *c)
{
        Cella__V1__SystemEnvReply m = CELLA__V1__SYSTEM_ENV_REPLY__INIT;
        const BrokerAppInfo *info = broker_app_info(c->app);
        _cleanup_strv_free_ char **fallback = NULL;
        _cleanup_free_ char **keep = NULL;
        char *const *env = info->env;
        size_t n = 0, bytes = 0;

        if (!env) {
                if (env_fallback(info->manifest, &fallback) < 0) {
                        broker_reply_error(c, ENOMEM, NULL);
                        return;
                }
                env = fallback;
        }
        keep = calloc(BROKER_ENV_MAX + 1, sizeof(char *));
        if (!keep) {
                broker_reply_error(c, ENOMEM, NULL);
                return;
        }
        /* Bounded as the reply says (256 entries of at most 4095 bytes), and so that
         * the body fits a frame: entries past either bound are left out. */
        for (char *const *e = env; *e && n < BROKER_ENV_MAX; e++) {
                size_t l = strlen(*e);

                if (l > 4095 || bytes + l + 4 > CHANNEL_BODY_MAX - 16)
                        continue;
                bytes += l + 4;
                keep[n++] = *e;
        }
        m.n_env = n;
        m.env = keep;
        broker_reply(c, &m.base, NULL, 0);
}

/* ---- app.info, memory.stats ---------------------------------------------------------- */

static void app_info(BrokerCall *c)
{
        Cella__V1__AppInfoReply m = CELLA__V1__APP_INFO_REPLY__INIT;
        Cella__V1__AppLimits lim = CELLA__V1__APP_LIMITS__INIT;
        const Manifest *mf = broker_app_info(c->app)->manifest;
        _cleanup_free_ char **granted = NULL;
        const Grant *g;
        size_t n;

        g = broker_app_grants(c->app, &n);
        granted = calloc(n + 1, sizeof(char *));
        if (!granted) {
                broker_reply_error(c, ENOMEM, NULL);
                return;
        }
        for (size_t i = 0; i < n; i++)
                granted[i] = (char *)g[i].right;

        m.id = mf->id;
        m.name = mf->name ?: mf->id;
        m.version = mf->version ?: (char *)"0";
        m.kind = (char *)manifest_kind_to_string(mf->kind);
        m.runtime = (char *)manifest_runtime_to_string(mf->runtime);
        m.n_requested = strv_length(mf->permissions);
        m.requested = mf->permissions;
        m.n_granted = n;
        m.granted = granted;
        lim.memory_bytes = mf->limits.memory;
        lim.pids = mf->limits.pids;
        lim.cpu_millis =
                (uint32_t)(mf->limits.cpu_milli > UINT32_MAX ? UINT32_MAX : mf->limits.cpu_milli);
        lim.files = mf->limits.files;
        lim.storage_bytes = mf->limits.storage;
        lim.tmp_bytes = mf->limits.tmp;
        m.limits = &lim;
        broker_reply(c, &m.base, NULL, 0);
}

static void memory_stats(BrokerCall *c)
{
        Cella__V1__MemoryStatsReply m = CELLA__V1__MEMORY_STATS_REPLY__INIT;
        CgroupMemory cm;
        int r;

        r = cgroup_memory(broker_app_info(c->app), &cm);
        if (r < 0) {
                broker_reply_error(c, r == -ENOENT ? ENODATA : -r,
                                   "the app has no memory cgroup to read");
                return;
        }
        m.current_bytes = cm.current;
        m.limit_bytes = cm.limit;
        m.peak_bytes = cm.peak;
        m.swap_bytes = cm.swap;
        m.anon_bytes = cm.anon;
        m.file_bytes = cm.file;
        m.level = memory_level(&cm);
        m.pressure_some_avg10 = cm.some_avg10;
        broker_reply(c, &m.base, NULL, 0);
}

const BrokerCallDef broker_calls_system[] = {
        {CELLA__V1__OPCODE__OPCODE_SYSTEM_INFO, NULL, system_info},
        {CELLA__V1__OPCODE__OPCODE_SYSTEM_TIME, NULL, system_time},
        {CELLA__V1__OPCODE__OPCODE_SYSTEM_UPTIME, NULL, system_uptime},
        {CELLA__V1__OPCODE__OPCODE_SYSTEM_ENV, NULL, system_env},
        {CELLA__V1__OPCODE__OPCODE_APP_INFO, NULL, app_info},
        {CELLA__V1__OPCODE__OPCODE_MEMORY_STATS, NULL, memory_stats},
        {0},
};
