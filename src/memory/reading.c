/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Memory readings of a cgroup or of the machine (reading.h). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/macro.h"
#include "memory/reading.h"

/*
 * The largest file read: /proc/vmstat (about 5 KiB on Linux 6.x); a cgroup's
 * memory.stat is under 2 KiB. A file that fills the buffer is parsed as far as it
 * goes (the keys read are near the start of every file but vmstat).
 */
#define SOURCE_BUF_SIZE (16 * 1024)

/* v1's "no limit": PAGE_COUNTER_MAX pages (LONG_MAX / PAGE_SIZE) as bytes, rounded
 * down to a page: 9223372036854771712 with 4 KiB pages. Anything at or above 2^62
 * reads as unlimited. */
#define V1_UNLIMITED (UINT64_C(1) << 62)

typedef enum SourceFile {
        F_CURRENT, /* memory.current / memory.usage_in_bytes */
        F_STAT,    /* memory.stat */
        F_PEAK,    /* memory.peak / memory.max_usage_in_bytes */
        F_MAX,     /* memory.max / memory.limit_in_bytes */
        F_SWAP,    /* memory.swap.current / memory.memsw.usage_in_bytes */
        F_EVENTS,  /* memory.events / memory.oom_control */
        F_KMEM,    /* v1 memory.kmem.usage_in_bytes */
        F_PRESSURE,
        F_MEMINFO,
        F_VMSTAT,
        _F_MAX,
} SourceFile;

typedef enum SourceKind {
        SOURCE_V2,
        SOURCE_V1,
        SOURCE_MACHINE,
} SourceKind;

struct MemorySource {
        SourceKind kind;
        int fd[_F_MAX];
        char buf[SOURCE_BUF_SIZE];
};

static MemorySource *source_new(SourceKind kind)
{
        MemorySource *s = calloc(1, sizeof *s);

        if (!s)
                return NULL;
        s->kind = kind;
        for (size_t i = 0; i < _F_MAX; i++)
                s->fd[i] = -EBADF;
        return s;
}

MemorySource *memory_source_free(MemorySource *s)
{
        if (!s)
                return NULL;
        for (size_t i = 0; i < _F_MAX; i++)
                safe_close(s->fd[i]);
        free(s);
        return NULL;
}

/* Opens dir/name read-only into s->fd[f]. Returns 0, or -errno of open (-ENOENT for a
 * NULL dir). */
static int source_open(MemorySource *s, SourceFile f, const char *dir, const char *name)
{
        char path[4096];

        if (!dir)
                return -ENOENT;
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
                return -ENAMETOOLONG;
        s->fd[f] = open(path, O_RDONLY | O_CLOEXEC);
        return s->fd[f] < 0 ? negative_errno() : 0;
}

static int source_open_optional(MemorySource *s, SourceFile f, const char *dir, const char *name)
{
        int r = source_open(s, f, dir, name);

        return r == -ENOENT ? 0 : r;
}

static bool file_exists(const char *dir, const char *name)
{
        char path[4096];

        if (!dir || (size_t)snprintf(path, sizeof path, "%s/%s", dir, name) >= sizeof path)
                return false;
        return access(path, F_OK) == 0;
}

int memory_source_open_cgroup(const char *v1_memory_dir, const char *v2_dir, MemorySource **ret)
{
        MemorySource *s = NULL;
        int r;

        if (!ret)
                return -EINVAL;
        if (file_exists(v2_dir, "memory.current")) {
                s = source_new(SOURCE_V2);
                if (!s)
                        return -ENOMEM;
                r = source_open(s, F_CURRENT, v2_dir, "memory.current");
                if (r >= 0)
                        r = source_open(s, F_STAT, v2_dir, "memory.stat");
                if (r >= 0)
                        r = source_open(s, F_MAX, v2_dir, "memory.max");
                if (r >= 0)
                        r = source_open(s, F_EVENTS, v2_dir, "memory.events");
                if (r >= 0)
                        r = source_open_optional(s, F_PEAK, v2_dir, "memory.peak");
                if (r >= 0)
                        r = source_open_optional(s, F_SWAP, v2_dir, "memory.swap.current");
        } else if (file_exists(v1_memory_dir, "memory.usage_in_bytes")) {
                s = source_new(SOURCE_V1);
                if (!s)
                        return -ENOMEM;
                r = source_open(s, F_CURRENT, v1_memory_dir, "memory.usage_in_bytes");
                if (r >= 0)
                        r = source_open(s, F_STAT, v1_memory_dir, "memory.stat");
                if (r >= 0)
                        r = source_open(s, F_MAX, v1_memory_dir, "memory.limit_in_bytes");
                if (r >= 0)
                        r = source_open_optional(s, F_EVENTS, v1_memory_dir, "memory.oom_control");
                if (r >= 0)
                        r = source_open_optional(s, F_PEAK, v1_memory_dir,
                                                 "memory.max_usage_in_bytes");
                if (r >= 0)
                        r = source_open_optional(s, F_SWAP, v1_memory_dir,
                                                 "memory.memsw.usage_in_bytes");
                if (r >= 0)
                        r = source_open_optional(s, F_KMEM, v1_memory_dir,
                                                 "memory.kmem.usage_in_bytes");
        } else
                return -ENOENT;
        if (r >= 0)
                r = source_open_optional(s, F_PRESSURE, v2_dir, "memory.pressure");
        if (r < 0) {
                memory_source_free(s);
                return r;
        }
        *ret = s;
        return 0;
}

int memory_source_open_app(const Cgroup *cg, MemorySource **ret)
{
        if (!cg)
                return -EINVAL;
        return memory_source_open_cgroup(cgroup_path(cg, "memory"), cgroup_path(cg, ""), ret);
}

int memory_source_open_apps(CgroupManager *m, bool make, MemorySource **ret)
{
        const char *v1 = NULL, *v2 = NULL;
        int r;

        r = cgroup_manager_root(m, "memory", make, &v1);
        if (r < 0 && r != -ENOENT)
                return r;
        r = cgroup_manager_root(m, "", make, &v2);
        if (r < 0 && r != -ENOENT)
                return r;
        return memory_source_open_cgroup(v1, v2, ret);
}

int memory_source_open_machine(const char *proc_root, MemorySource **ret)
{
        MemorySource *s;
        int r;

        if (!ret)
                return -EINVAL;
        if (!proc_root)
                proc_root = "/proc";
        s = source_new(SOURCE_MACHINE);
        if (!s)
                return -ENOMEM;
        r = source_open(s, F_MEMINFO, proc_root, "meminfo");
        if (r >= 0)
                r = source_open_optional(s, F_VMSTAT, proc_root, "vmstat");
        if (r >= 0)
                r = source_open_optional(s, F_PRESSURE, proc_root, "pressure/memory");
        if (r < 0) {
                memory_source_free(s);
                return r;
        }
        *ret = s;
        return 0;
}

bool memory_source_is_v1(const MemorySource *s)
{
        return s && s->kind == SOURCE_V1;
}

/* Reads the file f whole into s->buf from offset 0. Returns its length or -errno. */
static ssize_t source_pread(MemorySource *s, SourceFile f)
{
        ssize_t n;

        do
                n = pread(s->fd[f], s->buf, sizeof s->buf - 1, 0);
        while (n < 0 && errno == EINTR);
        if (n < 0)
                return negative_errno();
        s->buf[n] = 0;
        return n;
}

/* Parses an unsigned decimal at p (leading blanks skipped); "max" is UINT64_MAX.
 * Returns 0 and *ret, -EINVAL. */
static int parse_u64_at(const char *p, uint64_t *ret)
{
        uint64_t v = 0;
        const char *q;

        while (*p == ' ' || *p == '\t')
                p++;
        if (strncmp(p, "max", 3) == 0) {
                *ret = UINT64_MAX;
                return 0;
        }
        for (q = p; *q >= '0' && *q <= '9'; q++) {
                if (v > (UINT64_MAX - (uint64_t)(*q - '0')) / 10)
                        return -EINVAL;
                v = v * 10 + (uint64_t)(*q - '0');
        }
        if (q == p)
                return -EINVAL;
        *ret = v;
        return 0;
}

/* The value of the line "<key><sep>value" in buf, into *ret. Returns 0, -ENODATA (no
 * such line), -EINVAL. */
static int keyed(const char *buf, const char *key, char sep, uint64_t *ret)
{
        size_t n = strlen(key);

        for (const char *l = buf; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL)
                if (strncmp(l, key, n) == 0 && l[n] == sep)
                        return parse_u64_at(l + n + 1, ret);
        return -ENODATA;
}

/* keyed() that leaves *ret as it is when the key is missing. */
static int keyed_optional(const char *buf, const char *key, char sep, uint64_t *ret)
{
        int r = keyed(buf, key, sep, ret);

        return r == -ENODATA ? 0 : r;
}

static int read_u64(MemorySource *s, SourceFile f, uint64_t *ret)
{
        ssize_t n;

        if (s->fd[f] < 0)
                return 0; /* optional and missing: *ret stays MEMORY_UNKNOWN */
        n = source_pread(s, f);
        if (n < 0)
                return (int)n;
        return parse_u64_at(s->buf, ret);
}

/*
 * PSI: "some avg10=0.00 avg60=0.00 avg300=0.00 total=6190857" and a "full" line
 * (psi.rst). avg10 as hundredths of a percent, total in microseconds.
 */
static int parse_psi_line(const char *buf, const char *which, uint32_t *ret_avg10,
                          uint64_t *ret_total)
{
        size_t n = strlen(which);

        for (const char *l = buf; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
                unsigned whole, frac;
                unsigned long long total;
                const char *t;

                if (strncmp(l, which, n) != 0 || l[n] != ' ')
                        continue;
                if (sscanf(l + n, " avg10=%u.%2u", &whole, &frac) != 2 || whole > 100)
                        return -EINVAL;
                t = strstr(l, "total=");
                if (!t || sscanf(t, "total=%llu", &total) != 1)
                        return -EINVAL;
                *ret_avg10 = whole * 100 + frac;
                *ret_total = total;
                return 0;
        }
        return -ENODATA;
}

static int read_psi(MemorySource *s, MemoryReading *m)
{
        ssize_t n;
        int r;

        if (s->fd[F_PRESSURE] < 0)
                return 0;
        n = source_pread(s, F_PRESSURE);
        if (n < 0)
                return n == -EOPNOTSUPP ? 0 : (int)n; /* psi=0 at boot: the file refuses reads */
        r = parse_psi_line(s->buf, "some", &m->some_avg10, &m->some_total_us);
        if (r < 0)
                return r;
        /* "full" is missing from the system-wide cpu file only; memory always has it. */
        r = parse_psi_line(s->buf, "full", &m->full_avg10, &m->full_total_us);
        if (r < 0)
                return r;
        m->has_psi = true;
        return 0;
}

static int read_v2(MemorySource *s, MemoryReading *m)
{
        uint64_t stack = 0, pagetables = 0, slab = 0;
        ssize_t n;
        int r;

        r = read_u64(s, F_CURRENT, &m->current);
        if (r >= 0)
                r = read_u64(s, F_MAX, &m->limit);
        if (r >= 0)
                r = read_u64(s, F_PEAK, &m->peak);
        if (r >= 0)
                r = read_u64(s, F_SWAP, &m->swap);
        if (r < 0)
                return r;
        n = source_pread(s, F_STAT);
        if (n < 0)
                return (int)n;
        r = keyed(s->buf, "anon", ' ', &m->anon);
        if (r >= 0)
                r = keyed(s->buf, "file", ' ', &m->file);
        if (r >= 0)
                r = keyed(s->buf, "shmem", ' ', &m->shmem);
        if (r >= 0)
                r = keyed_optional(s->buf, "inactive_file", ' ', &m->inactive_file);
        if (r >= 0)
                r = keyed_optional(s->buf, "kernel", ' ', &m->kernel);
        if (r >= 0 && m->kernel == MEMORY_UNKNOWN) {
                /* Before Linux 5.18 memory.stat had no "kernel" line: its main parts. */
                r = keyed_optional(s->buf, "kernel_stack", ' ', &stack);
                if (r >= 0)
                        r = keyed_optional(s->buf, "pagetables", ' ', &pagetables);
                if (r >= 0)
                        r = keyed_optional(s->buf, "slab", ' ', &slab);
                m->kernel = stack + pagetables + slab;
        }
        if (r < 0)
                return r;
        n = source_pread(s, F_EVENTS);
        if (n < 0)
                return (int)n;
        m->oom_kills = 0;
        /* oom_kill since Linux 4.13: without it, no kill is known. */
        return keyed_optional(s->buf, "oom_kill", ' ', &m->oom_kills);
}

static int read_v1(MemorySource *s, MemoryReading *m)
{
        uint64_t memsw = MEMORY_UNKNOWN;
        ssize_t n;
        int r;

        r = read_u64(s, F_CURRENT, &m->current);
        if (r >= 0)
                r = read_u64(s, F_MAX, &m->limit);
        if (r >= 0)
                r = read_u64(s, F_PEAK, &m->peak);
        if (r >= 0)
                r = read_u64(s, F_SWAP, &memsw);
        if (r >= 0)
                r = read_u64(s, F_KMEM, &m->kernel);
        if (r < 0)
                return r;
        if (m->limit >= V1_UNLIMITED)
                m->limit = MEMORY_UNKNOWN;
        if (memsw != MEMORY_UNKNOWN)
                m->swap = memsw > m->current ? memsw - m->current : 0;
        /* The total_* keys count the cgroup and its descendants (cgroup-v1/memory.rst
         * 5.2): the apps' parent holds no task of its own. */
        n = source_pread(s, F_STAT);
        if (n < 0)
                return (int)n;
        r = keyed(s->buf, "total_rss", ' ', &m->anon);
        if (r >= 0)
                r = keyed(s->buf, "total_cache", ' ', &m->file);
        if (r >= 0)
                r = keyed_optional(s->buf, "total_shmem", ' ', &m->shmem);
        if (r >= 0)
                r = keyed_optional(s->buf, "total_inactive_file", ' ', &m->inactive_file);
        if (r < 0)
                return r;
        m->oom_kills = 0;
        if (s->fd[F_EVENTS] < 0)
                return 0;
        n = source_pread(s, F_EVENTS);
        if (n < 0)
                return (int)n;
        return keyed_optional(s->buf, "oom_kill", ' ', &m->oom_kills);
}

static int read_machine(MemorySource *s, MemoryReading *m)
{
        uint64_t total, avail, buffers, cached, slab = 0, stack = 0, pt = 0, swt = 0, swf = 0;
        ssize_t n;
        int r;

        n = source_pread(s, F_MEMINFO);
        if (n < 0)
                return (int)n;
        /* meminfo: "MemTotal:       24589876 kB" */
        r = keyed(s->buf, "MemTotal", ':', &total);
        if (r >= 0)
                r = keyed(s->buf, "MemAvailable", ':', &avail);
        if (r >= 0)
                r = keyed(s->buf, "AnonPages", ':', &m->anon);
        if (r >= 0)
                r = keyed(s->buf, "Buffers", ':', &buffers);
        if (r >= 0)
                r = keyed(s->buf, "Cached", ':', &cached);
        if (r >= 0)
                r = keyed(s->buf, "Shmem", ':', &m->shmem);
        if (r >= 0)
                r = keyed_optional(s->buf, "Inactive(file)", ':', &m->inactive_file);
        if (r >= 0)
                r = keyed_optional(s->buf, "Slab", ':', &slab);
        if (r >= 0)
                r = keyed_optional(s->buf, "KernelStack", ':', &stack);
        if (r >= 0)
                r = keyed_optional(s->buf, "PageTables", ':', &pt);
        if (r >= 0)
                r = keyed_optional(s->buf, "SwapTotal", ':', &swt);
        if (r >= 0)
                r = keyed_optional(s->buf, "SwapFree", ':', &swf);
        if (r < 0)
                return r;
        m->limit = total * 1024;
        m->available = avail * 1024;
        m->current = total > avail ? (total - avail) * 1024 : 0;
        m->anon *= 1024;
        m->file = (buffers + cached) * 1024;
        m->shmem *= 1024;
        if (m->inactive_file != MEMORY_UNKNOWN)
                m->inactive_file *= 1024;
        m->kernel = (slab + stack + pt) * 1024;
        m->swap = swt > swf ? (swt - swf) * 1024 : 0;
        m->oom_kills = 0;
        if (s->fd[F_VMSTAT] < 0)
                return 0;
        n = source_pread(s, F_VMSTAT);
        if (n < 0)
                return (int)n;
        return keyed_optional(s->buf, "oom_kill", ' ', &m->oom_kills);
}

int memory_source_read(MemorySource *s, MemoryReading *ret)
{
        MemoryReading m = {
                .current = MEMORY_UNKNOWN,
                .anon = MEMORY_UNKNOWN,
                .file = MEMORY_UNKNOWN,
                .shmem = MEMORY_UNKNOWN,
                .kernel = MEMORY_UNKNOWN,
                .inactive_file = MEMORY_UNKNOWN,
                .peak = MEMORY_UNKNOWN,
                .limit = MEMORY_UNKNOWN,
                .available = MEMORY_UNKNOWN,
                .swap = MEMORY_UNKNOWN,
                .oom_kills = MEMORY_UNKNOWN,
                .some_total_us = MEMORY_UNKNOWN,
                .full_total_us = MEMORY_UNKNOWN,
        };
        int r;

        if (!s || !ret)
                return -EINVAL;
        switch (s->kind) {
        case SOURCE_V2:
                r = read_v2(s, &m);
                break;
        case SOURCE_V1:
                r = read_v1(s, &m);
                break;
        default:
                r = read_machine(s, &m);
                break;
        }
        if (r >= 0)
                r = read_psi(s, &m);
        if (r < 0)
                return r;
        if (s->kind != SOURCE_MACHINE && m.limit != MEMORY_UNKNOWN) {
                uint64_t ws = m.current;

                if (m.inactive_file != MEMORY_UNKNOWN)
                        ws = ws > m.inactive_file ? ws - m.inactive_file : 0;
                m.available = m.limit > ws ? m.limit - ws : 0;
        }
        *ret = m;
        return 0;
}
