/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * cellad's config file (docs/config.md): the memory and CPU manager's thresholds,
 * budget and intervals. JSON (as manifests), one object whose keys nest:
 * "memory.total" is {"memory": {"total": "4G"}}. Every key is optional; a key left
 * out keeps its default. A file that does not parse, a key this table does not
 * know, a value of the wrong type or out of range, or figures that contradict each
 * other are an error naming the file and the key (or the line and column, for
 * JSON syntax), and cellad refuses to start on it.
 *
 * Where: "<state>/cellad.conf" if it exists, else "/etc/cella/cellad.conf" if it
 * exists, else the defaults; one file is read, never both: a state directory is one
 * cellad (a tenant, a test) and its file is the whole truth for it, while /etc
 * serves the machine's default cellad. See docs/config.md for why.
 */

#include <stdint.h>

#include "memory/cpu.h"
#include "memory/level.h"
#include "memory/policy.h"
#include "memory/sampler.h"
#include "memory/swap.h"

#define MANAGER_CONFIG_FILE     "cellad.conf"
#define MANAGER_CONFIG_ETC_PATH "/etc/cella/cellad.conf"

/* net.proxy.port's default: the per-app proxy's port in each app's own network
 * namespace (NETPROXY_PORT_DEFAULT, src/supervisor/netproxy.h, says why this one). */
#define MANAGER_CONFIG_NET_PROXY_PORT 61080

/* The smallest memory.total taken: below it no app starts at all. */
#define MANAGER_CONFIG_TOTAL_MIN (UINT64_C(16) << 20)

typedef struct ManagerConfig {
        uint64_t memory_total;           /* bytes; 0: no budget (the apps' parent unlimited) */
        uint32_t psi_window_ms;          /* PSI trigger window asked for (default 1000) */
        uint32_t psi_fallback_window_ms; /* window used when that is refused (default 2000) */
        uint32_t sample_short_ms;        /* sampler interval under high pressure (10) */
        uint32_t sample_long_ms;         /* sampler interval otherwise (100) */
        MemoryLevelConfig levels;        /* level.h */
        SwapCaps swap;  /* memory.swap.*: caps by class where memory is compressed (swap.h) */
        CpuWeights cpu; /* cpu.*: weights by class (cpu.h) */
        MemoryPolicyConfig policy; /* the manager's pacing and kill floors (policy.h) */
        /* net.group.*: the app networks' addresses (docs/network.md, "App networks"). */
        uint32_t net_group_range;        /* first address, host byte order (10.213.0.0) */
        uint32_t net_group_range_prefix; /* its prefix length (16) */
        uint32_t net_group_prefix;       /* each network's prefix length (24) */
        uint32_t net_proxy_port;         /* net.proxy.port: the per-app proxy's port, 0: none */
        /* net.*: net.connect's per-app limits, handed to the broker (docs/network.md
         * "Limits"; the defaults are broker.h's BROKER_NET_*_DEFAULT). */
        struct {
                uint32_t conns_max; /* connections open at once */
                uint32_t rate;      /* new connections a second */
                uint32_t burst;     /* and the bucket they come from */
        } net;
        /* keystore.keys_max: keys per app in the kernel's keystore (docs/ipc.md
         * "Keystore"; the default is broker.h's BROKER_KEYSTORE_KEYS_DEFAULT). */
        uint32_t keystore_keys_max;
        /* ipc.*: the ipc quotas, handed to the broker (docs/ipc.md "Quotas",
         * docs/config.md; the defaults are broker.h's BROKER_IPC_*_DEFAULT). */
        struct {
                uint32_t objects_max;      /* objects one app created that live */
                uint32_t handles_max;      /* handles one app holds */
                uint32_t shm_bytes_max;    /* bytes of shared memory one app created */
                uint32_t pending_max;      /* offers of one app waiting for an accept */
                uint32_t queue_depth_max;  /* messages of the deepest queue */
                uint32_t queued_bytes_max; /* bytes waiting in one app's queues */
        } ipc;
} ManagerConfig;

/* The defaults (docs/config.md) into *ret. */
void manager_config_default(ManagerConfig *ret);

/*
 * Parses size bytes of JSON text (need not be NUL-terminated) into *ret, on top of
 * the defaults. name: the file's name, for messages. Returns 0, or -EINVAL and
 * *ret_error ("<name>: <what>", caller frees; NULL if ret_error is NULL), or
 * -ENOMEM.
 */
int manager_config_parse(const char *name, const char *text, size_t size, ManagerConfig *ret,
                         char **ret_error);

/*
 * Finds and reads the config: "<state_dir>/cellad.conf", else etc_path (NULL:
 * MANAGER_CONFIG_ETC_PATH), else the defaults. A file that exists must be a
 * regular file owned by root (or the caller's euid) and writable by neither group
 * nor others, else it is -EPERM: whoever could write it could lift the apps'
 * budget. *ret_path: the file read (caller frees), NULL for the defaults; may be
 * NULL. Returns 0, -EINVAL with *ret_error as manager_config_parse(), or -EPERM or
 * the -errno of reading a file that exists (also in *ret_error).
 */
int manager_config_load(const char *state_dir, const char *etc_path, ManagerConfig *ret,
                        char **ret_path, char **ret_error);

/*
 * The dotted names of every key the parser knows ("memory.total", ...), in the
 * order of docs/config.md's table: up to max of them into names (static strings).
 * Returns how many keys there are (which may exceed max). For the test that checks
 * docs/config.md against the parser.
 */
size_t manager_config_keys(const char **names, size_t max);

/* The sampler's config of c for a trigger window of window_ms. */
MemorySamplerConfig manager_config_sampler(const ManagerConfig *c, uint32_t window_ms);
