/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cellad's config file (config.h, docs/config.md). */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "base/size.h"
#include "base/suggest.h"
#include "memory/config.h"

/* Larger than any sane config: a file past it is refused, not read. */
#define CONFIG_SIZE_MAX (256 * 1024)

typedef enum KeyType {
        KEY_SIZE,       /* bytes: an integer, or a string parse_size() takes, or "max" (0) */
        KEY_U32,        /* an integer in [min, max] */
        KEY_BOOL,       /* true or false */
        KEY_IPV4_RANGE, /* "A.B.C.D/N" inside RFC 1918: two uint32_t, address then prefix */
} KeyType;

typedef struct ConfigKey {
        const char *path; /* dotted: "memory.total" */
        KeyType type;
        size_t offset; /* into ManagerConfig */
        uint32_t min, max;
} ConfigKey;

#define U32(p, field, lo, hi)                                                                      \
        {                                                                                          \
                .path = p, .type = KEY_U32, .offset = offsetof(ManagerConfig, field), .min = lo,   \
                .max = hi                                                                          \
        }

/*
 * Every key, with its range; docs/config.md lists the same rows with the same
 * defaults (test-memory's test_config_doc checks both ways). Helpers adding keys (bands, actions,
 * CPU) add rows here.
 */
#define BOOL(p, field)                                                                             \
        {                                                                                          \
                .path = p, .type = KEY_BOOL, .offset = offsetof(ManagerConfig, field)              \
        }

static const ConfigKey config_keys[] = {
        {.path = "memory.total", .type = KEY_SIZE, .offset = offsetof(ManagerConfig, memory_total)},
        /* kernel/sched/psi.c: windows of 500 ms to 10 s. */
        U32("memory.psi.window_ms", psi_window_ms, 500, 10000),
        U32("memory.psi.fallback_window_ms", psi_fallback_window_ms, 500, 10000),
        U32("memory.sample.short_ms", sample_short_ms, 1, 10000),
        U32("memory.sample.long_ms", sample_long_ms, 1, 10000),
        U32("memory.level.moderate.some_ms", levels.level[MEMORY_LEVEL_MODERATE].some_ms, 0, 1000),
        U32("memory.level.moderate.full_ms", levels.level[MEMORY_LEVEL_MODERATE].full_ms, 0, 1000),
        U32("memory.level.moderate.free_percent", levels.level[MEMORY_LEVEL_MODERATE].free_percent,
            0, 100),
        U32("memory.level.low.some_ms", levels.level[MEMORY_LEVEL_LOW].some_ms, 0, 1000),
        U32("memory.level.low.full_ms", levels.level[MEMORY_LEVEL_LOW].full_ms, 0, 1000),
        U32("memory.level.low.free_percent", levels.level[MEMORY_LEVEL_LOW].free_percent, 0, 100),
        U32("memory.level.critical.some_ms", levels.level[MEMORY_LEVEL_CRITICAL].some_ms, 0, 1000),
        U32("memory.level.critical.full_ms", levels.level[MEMORY_LEVEL_CRITICAL].full_ms, 0, 1000),
        U32("memory.level.critical.free_percent", levels.level[MEMORY_LEVEL_CRITICAL].free_percent,
            0, 100),
        U32("memory.level.hysteresis_percent", levels.hysteresis_percent, 0, 100),
        /* Compressed swap (swap.h). */
        BOOL("memory.swap.caps", swap.enabled),
        U32("memory.swap.foreground_percent", swap.percent[CPU_CLASS_FOREGROUND], 0, 100),
        U32("memory.swap.visible_percent", swap.percent[CPU_CLASS_VISIBLE], 0, 100),
        U32("memory.swap.service_percent", swap.percent[CPU_CLASS_SERVICE], 0, 100),
        U32("memory.swap.background_percent", swap.percent[CPU_CLASS_BACKGROUND], 0, 100),
        U32("memory.swap.cached_percent", swap.percent[CPU_CLASS_CACHED], 0, 100),
        /* CPU weights by class (cpu.h): cgroup-v2.rst "Weights", 1..10000. */
        BOOL("cpu.weights", cpu.enabled),
        U32("cpu.weight.foreground", cpu.weight[CPU_CLASS_FOREGROUND], CPU_WEIGHT_MIN,
            CPU_WEIGHT_MAX),
        U32("cpu.weight.visible", cpu.weight[CPU_CLASS_VISIBLE], CPU_WEIGHT_MIN, CPU_WEIGHT_MAX),
        U32("cpu.weight.service", cpu.weight[CPU_CLASS_SERVICE], CPU_WEIGHT_MIN, CPU_WEIGHT_MAX),
        U32("cpu.weight.background", cpu.weight[CPU_CLASS_BACKGROUND], CPU_WEIGHT_MIN,
            CPU_WEIGHT_MAX),
        U32("cpu.weight.cached", cpu.weight[CPU_CLASS_CACHED], CPU_WEIGHT_MIN, CPU_WEIGHT_MAX),
        /* The manager's pacing and kill floors (policy.h, docs/memory.md "The manager"). */
        U32("memory.action.step_ms", policy.step_ms, 0, 10000),
        U32("memory.kill.interval_ms", policy.kill_interval_ms, 0, 60000),
        U32("memory.kill.floor.moderate", policy.kill_floor[MEMORY_LEVEL_MODERATE], 0, 1000),
        U32("memory.kill.floor.low", policy.kill_floor[MEMORY_LEVEL_LOW], 0, 1000),
        U32("memory.kill.floor.critical", policy.kill_floor[MEMORY_LEVEL_CRITICAL], 0, 1000),
        /* The app networks (docs/network.md, "App networks"). */
        {.path = "net.group.range",
         .type = KEY_IPV4_RANGE,
         .offset = offsetof(ManagerConfig, net_group_range),
         .min = 8,
         .max = 30},
        U32("net.group.prefix", net_group_prefix, 16, 30),
        /* The per-app proxy's port (docs/network.md "The proxy"); 0: no proxy. */
        U32("net.proxy.port", net_proxy_port, 0, 65535),
        /* net.connect's per-app limits (docs/network.md "Limits"). */
        U32("net.connections_max", net.conns_max, 1, 65536),
        U32("net.connect_rate", net.rate, 1, 100000),
        U32("net.connect_burst", net.burst, 1, 100000),
        /* The keystore's per-app quota (docs/ipc.md). */
        /* 512: keystore.list answers every key in one 64 KiB frame (~110 bytes a key). */
        U32("keystore.keys_max", keystore_keys_max, 1, 512),
        /* The ipc quotas (docs/ipc.md "Quotas"). */
        U32("ipc.objects_max", ipc.objects_max, 1, 65536),
        U32("ipc.handles_max", ipc.handles_max, 1, 65536),
        U32("ipc.shm_bytes_max", ipc.shm_bytes_max, 4096, UINT32_MAX),
        U32("ipc.pending_max", ipc.pending_max, 1, 1024),
        U32("ipc.queue_depth_max", ipc.queue_depth_max, 1, 1000000),
        U32("ipc.queued_bytes_max", ipc.queued_bytes_max, 65536, UINT32_MAX),
};

_Static_assert(offsetof(ManagerConfig, net_group_range_prefix) ==
                       offsetof(ManagerConfig, net_group_range) + sizeof(uint32_t),
               "KEY_IPV4_RANGE writes the prefix right after the address");

size_t manager_config_keys(const char **names, size_t max)
{
        for (size_t i = 0; names && i < ELEMENTSOF(config_keys) && i < max; i++)
                names[i] = config_keys[i].path;
        return ELEMENTSOF(config_keys);
}

void manager_config_default(ManagerConfig *ret)
{
        /* Padding too: test-memory compares whole configs with memcmp(). */
        memset(ret, 0, sizeof *ret);
        *ret = (ManagerConfig){
                .memory_total = 0,
                .psi_window_ms = MEMORY_SAMPLER_WINDOW_MS_DEFAULT,
                .psi_fallback_window_ms = 2000,
                .sample_short_ms = MEMORY_SAMPLER_SHORT_MS_DEFAULT,
                .sample_long_ms = MEMORY_SAMPLER_LONG_MS_DEFAULT,
                .net_proxy_port = MANAGER_CONFIG_NET_PROXY_PORT,
        };
        memory_level_config_default(&ret->levels);
        swap_caps_default(&ret->swap);
        cpu_weights_default(&ret->cpu);
        memory_policy_config_default(&ret->policy);
        ret->net_group_range = UINT32_C(0x0ad50000); /* 10.213.0.0/16 */
        ret->net_group_range_prefix = 16;
        ret->net_group_prefix = 24;
        /* The broker's defaults (broker.h BROKER_NET_*_DEFAULT), here as numbers:
         * libcella-memory does not include the broker. */
        ret->net.conns_max = 256;
        ret->net.rate = 50;
        ret->net.burst = 100;
        ret->keystore_keys_max = 64; /* BROKER_KEYSTORE_KEYS_DEFAULT */
        /* BROKER_IPC_*_DEFAULT, as numbers for the same reason. */
        ret->ipc.objects_max = 64;
        ret->ipc.handles_max = 256;
        ret->ipc.shm_bytes_max = 64u << 20;
        ret->ipc.pending_max = 16;
        ret->ipc.queue_depth_max = 1024;
        ret->ipc.queued_bytes_max = 4u << 20;
}

/*
 * "A.B.C.D/N" into *ret (host byte order) and *ret_prefix (min..max), refusing host
 * bits set and a range outside RFC 1918's private blocks (10.0.0.0/8, 172.16.0.0/12,
 * 192.168.0.0/16; RFC 1918 section 3). Returns 0 or -EINVAL with *why (static).
 */
static int parse_ipv4_range(const char *text, uint32_t min, uint32_t max, uint32_t *ret,
                            uint32_t *ret_prefix, const char **why)
{
        char buf[32], *slash, *end;
        unsigned long prefix;
        struct in_addr a;
        uint32_t addr, mask;

        *why = "expected an IPv4 range \"A.B.C.D/N\"";
        if (strlen(text) >= sizeof buf)
                return -EINVAL;
        snprintf(buf, sizeof buf, "%s", text);
        slash = strchr(buf, '/');
        if (!slash)
                return -EINVAL;
        *slash = 0;
        if (inet_pton(AF_INET, buf, &a) != 1)
                return -EINVAL;
        errno = 0;
        prefix = strtoul(slash + 1, &end, 10);
        if (!slash[1] || *end || errno)
                return -EINVAL;
        if (prefix < min || prefix > max) {
                *why = "the prefix length is out of range (8-30)";
                return -EINVAL;
        }
        addr = ntohl(a.s_addr);
        mask = (uint32_t)(UINT64_C(0xffffffff) << (32 - prefix));
        if (addr & ~mask) {
                *why = "host bits are set: give the range's first address";
                return -EINVAL;
        }
        if (!((addr & 0xff000000u) == 0x0a000000u && prefix >= 8) &&
            !((addr & 0xfff00000u) == 0xac100000u && prefix >= 12) &&
            !((addr & 0xffff0000u) == 0xc0a80000u && prefix >= 16)) {
                *why = "not inside a private range of RFC 1918 (10.0.0.0/8, 172.16.0.0/12, "
                       "192.168.0.0/16)";
                return -EINVAL;
        }
        *ret = addr;
        *ret_prefix = (uint32_t)prefix;
        return 0;
}

MemorySamplerConfig manager_config_sampler(const ManagerConfig *c, uint32_t window_ms)
{
        return (MemorySamplerConfig){
                .window_ms = window_ms,
                .short_ms = c->sample_short_ms,
                .long_ms = c->sample_long_ms,
        };
}

static int fail(char **ret_error, const char *name, const char *fmt, ...) _printf_(3, 4);
static int fail(char **ret_error, const char *name, const char *fmt, ...)
{
        _cleanup_free_ char *what = NULL;
        va_list ap;
        int r;

        if (!ret_error)
                return -EINVAL;
        va_start(ap, fmt);
        r = vasprintf(&what, fmt, ap);
        va_end(ap);
        if (r < 0 || asprintf(ret_error, "%s: %s", name, what) < 0) {
                *ret_error = NULL;
                return -ENOMEM;
        }
        return -EINVAL;
}

/* True if some key's path starts with prefix + ".". */
static bool is_section(const char *prefix)
{
        size_t n = strlen(prefix);

        for (size_t i = 0; i < ELEMENTSOF(config_keys); i++)
                if (strncmp(config_keys[i].path, prefix, n) == 0 && config_keys[i].path[n] == '.')
                        return true;
        return false;
}

static const ConfigKey *key_find(const char *path)
{
        for (size_t i = 0; i < ELEMENTSOF(config_keys); i++)
                if (strcmp(config_keys[i].path, path) == 0)
                        return &config_keys[i];
        return NULL;
}

/* The name one level below prefix ("" for the top) nearest to word, for a "did you
 * mean", into out (64 bytes). Returns true if there is one. */
static bool nearest_sibling(const char *prefix, const char *word, char out[static 64])
{
        char buf[ELEMENTSOF(config_keys)][64];
        const char *names[ELEMENTSOF(config_keys)], *near;
        size_t n = 0, np = strlen(prefix);

        for (size_t i = 0; i < ELEMENTSOF(config_keys); i++) {
                const char *p = config_keys[i].path, *dot;

                if (np && (strncmp(p, prefix, np) != 0 || p[np] != '.'))
                        continue;
                p += np ? np + 1 : 0;
                dot = strchr(p, '.');
                snprintf(buf[n], sizeof buf[n], "%.*s", dot ? (int)(dot - p) : (int)strlen(p), p);
                names[n] = buf[n];
                n++;
        }
        near = suggest_nearest(word, strlen(word), names, n);
        if (!near)
                return false;
        snprintf(out, 64, "%s", near);
        return true;
}

static int set_key(const ConfigKey *k, json_t *v, ManagerConfig *c, const char *name,
                   char **ret_error)
{
        void *field = (char *)c + k->offset;

        if (k->type == KEY_SIZE) {
                uint64_t bytes;

                if (json_is_integer(v) && json_integer_value(v) >= 0)
                        bytes = (uint64_t)json_integer_value(v);
                else if (json_is_string(v) && strcmp(json_string_value(v), "max") == 0)
                        bytes = 0;
                else if (!json_is_string(v) || parse_size(json_string_value(v), &bytes) < 0)
                        return fail(ret_error, name,
                                    "%s: expected a size: bytes as an integer, a string "
                                    "such as \"4G\" (K, M, G, T: powers of 1024) or \"max\"",
                                    k->path);
                if (bytes != 0 && bytes < MANAGER_CONFIG_TOTAL_MIN)
                        return fail(ret_error, name,
                                    "%s: %" PRIu64 " bytes is below the smallest budget, "
                                    "16M (or \"max\" for none)",
                                    k->path, bytes);
                *(uint64_t *)field = bytes;
                return 0;
        }
        if (k->type == KEY_IPV4_RANGE) {
                const char *why = NULL;

                if (!json_is_string(v) ||
                    parse_ipv4_range(json_string_value(v), k->min, k->max, (uint32_t *)field,
                                     (uint32_t *)field + 1, &why) < 0)
                        return fail(ret_error, name, "%s: %s", k->path,
                                    why ?: "expected an IPv4 range \"A.B.C.D/N\"");
                return 0;
        }
        if (k->type == KEY_BOOL) {
                if (!json_is_boolean(v))
                        return fail(ret_error, name, "%s: expected true or false", k->path);
                *(bool *)field = json_is_true(v);
                return 0;
        }
        if (!json_is_integer(v) || json_integer_value(v) < k->min || json_integer_value(v) > k->max)
                return fail(ret_error, name, "%s: expected an integer from %u to %u", k->path,
                            k->min, k->max);
        *(uint32_t *)field = (uint32_t)json_integer_value(v);
        return 0;
}

static int walk(json_t *obj, const char *prefix, ManagerConfig *c, const char *name,
                char **ret_error)
{
        const char *key;
        json_t *v;

        json_object_foreach(obj, key, v)
        {
                _cleanup_free_ char *path = NULL;
                const ConfigKey *k;
                int r;

                if (asprintf(&path, "%s%s%s", prefix, *prefix ? "." : "", key) < 0)
                        return -ENOMEM;
                if (is_section(path)) {
                        if (!json_is_object(v))
                                return fail(ret_error, name, "%s: expected an object", path);
                        r = walk(v, path, c, name, ret_error);
                        if (r < 0)
                                return r;
                        continue;
                }
                k = key_find(path);
                if (!k) {
                        char near[64];

                        if (nearest_sibling(prefix, key, near))
                                return fail(ret_error, name,
                                            "unknown key '%s' (did you mean '%s%s%s'?)", path,
                                            prefix, *prefix ? "." : "", near);
                        return fail(ret_error, name,
                                    "unknown key '%s' (the keys are listed in docs/config.md)",
                                    path);
                }
                r = set_key(k, v, c, name, ret_error);
                if (r < 0)
                        return r;
        }
        return 0;
}

int manager_config_parse(const char *name, const char *text, size_t size, ManagerConfig *ret,
                         char **ret_error)
{
        ManagerConfig c;
        json_error_t err;
        json_t *root;
        const char *why = NULL;
        int r;

        if (ret_error)
                *ret_error = NULL;
        if (!name || !text || !ret)
                return -EINVAL;
        manager_config_default(&c);
        root = json_loadb(text, size, JSON_REJECT_DUPLICATES, &err);
        if (!root)
                return fail(ret_error, name, "line %d, column %d: %s", err.line, err.column,
                            err.text);
        if (!json_is_object(root)) {
                json_decref(root);
                return fail(ret_error, name, "expected a JSON object at the top");
        }
        r = walk(root, "", &c, name, ret_error);
        json_decref(root);
        if (r < 0)
                return r;
        /* Figures that contradict each other. */
        if (c.psi_fallback_window_ms < c.psi_window_ms)
                return fail(ret_error, name,
                            "memory.psi.fallback_window_ms (%u) is shorter than "
                            "memory.psi.window_ms (%u)",
                            c.psi_fallback_window_ms, c.psi_window_ms);
        if (c.sample_short_ms > c.sample_long_ms || c.sample_long_ms > c.psi_window_ms)
                return fail(ret_error, name,
                            "memory.sample.short_ms (%u) <= memory.sample.long_ms (%u) <= "
                            "memory.psi.window_ms (%u) does not hold",
                            c.sample_short_ms, c.sample_long_ms, c.psi_window_ms);
        if (memory_level_config_check(&c.levels, &why) < 0)
                return fail(ret_error, name, "memory.level: %s", why);
        if (memory_policy_config_check(&c.policy, &why) < 0)
                return fail(ret_error, name, "memory.kill.floor: %s", why);
        if (c.net_group_prefix < c.net_group_range_prefix ||
            c.net_group_prefix - c.net_group_range_prefix > 16)
                return fail(ret_error, name,
                            "net.group.prefix (%u) must be from net.group.range's prefix length "
                            "(%u) to 16 more",
                            c.net_group_prefix, c.net_group_range_prefix);
        *ret = c;
        return 0;
}

/*
 * Opens path for reading and checks it may be trusted: a regular file owned by root
 * or by the caller's euid, writable by neither group nor others (whoever could
 * write it could lift the apps' budget or silence the manager). Returns the fd,
 * -ENOENT, -EPERM with *ret_why, or -errno of open/fstat.
 */
static int config_open(const char *path, const char **ret_why)
{
        _cleanup_close_ int fd = -EBADF;
        struct stat st;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                *ret_why = "not a regular file";
        else if (st.st_uid != 0 && st.st_uid != geteuid())
                *ret_why = "owned by another user than root";
        else if (st.st_mode & (S_IWGRP | S_IWOTH))
                *ret_why = "writable by group or others (chmod go-w)";
        else
                return TAKE_FD(fd);
        return -EPERM;
}

int manager_config_load(const char *state_dir, const char *etc_path, ManagerConfig *ret,
                        char **ret_path, char **ret_error)
{
        _cleanup_free_ char *path = NULL, *text = NULL;
        _cleanup_close_ int fd = -EBADF;
        const char *why = NULL;
        size_t size = 0;
        int r;

        if (ret_error)
                *ret_error = NULL;
        if (ret_path)
                *ret_path = NULL;
        if (!ret)
                return -EINVAL;
        if (state_dir && asprintf(&path, "%s/%s", state_dir, MANAGER_CONFIG_FILE) < 0)
                return -ENOMEM;
        fd = path ? config_open(path, &why) : -ENOENT;
        if (fd == -ENOENT) {
                free(path);
                path = strdup(etc_path ?: MANAGER_CONFIG_ETC_PATH);
                if (!path)
                        return -ENOMEM;
                fd = config_open(path, &why);
        }
        if (fd == -ENOENT) {
                manager_config_default(ret);
                return 0;
        }
        r = fd < 0 ? fd : read_full_fd(fd, CONFIG_SIZE_MAX, &text, &size);
        if (r < 0) {
                if (ret_error &&
                    asprintf(ret_error, "%s: %s: %s", path, why ? "refused" : "cannot read",
                             why           ? why
                             : r == -EFBIG ? "larger than 256 KiB"
                                           : strerror(-r)) < 0)
                        *ret_error = NULL;
                return r;
        }
        r = manager_config_parse(path, text, size, ret, ret_error);
        if (r < 0)
                return r;
        if (ret_path)
                *ret_path = TAKE_PTR(path);
        return 0;
}
