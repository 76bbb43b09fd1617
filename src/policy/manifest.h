/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The app manifest (docs/design.md section 3; the format is documented in
 * docs/manifest.md). Parsing is strict: unknown keys, wrong types and bad values
 * are errors that name the file, the key and what was expected.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Bounds on what a manifest may hold; every one has a test at the bound. */
#define MANIFEST_MAX_SIZE      (64u * 1024u) /* bytes of manifest.json */
#define MANIFEST_ID_MAX        128u          /* bytes of "id" */
#define MANIFEST_STRING_MAX    256u          /* name, version, entry, one arg/permission */
#define MANIFEST_LIST_MAX      64u   /* entries of args, depends, permissions, exports, env */
#define MANIFEST_ENV_VALUE_MAX 1024u /* bytes of one env value */
#define MANIFEST_GROUP_MAX     64u   /* bytes of "group" ([a-z0-9_-]) */
/* limits.storage of a manifest that sets none, in bytes: the size of the app's
 * /data file system (src/supervisor/storage.c, docs/manifest.md "limits"). What
 * fs.usage and proc limits report as the quota then. */
#define MANIFEST_STORAGE_DEFAULT (1ull << 30)

/* "priority": nice values, as setpriority(2) and the fair scheduler's weight table
 * (docs/lua-api.md "Schedulers"). */
#define MANIFEST_PRIORITY_MIN (-20)
#define MANIFEST_PRIORITY_MAX 19

typedef enum ManifestRuntime {
        MANIFEST_RUNTIME_NATIVE,
        MANIFEST_RUNTIME_LUA,
} ManifestRuntime;

typedef enum ManifestKind {
        MANIFEST_KIND_APP,
        MANIFEST_KIND_SERVICE,
} ManifestKind;

typedef enum ManifestRestart {
        MANIFEST_RESTART_NO,
        MANIFEST_RESTART_ON_FAILURE,
        MANIFEST_RESTART_ALWAYS,
} ManifestRestart;

/* Where a Lua app runs: its own sandbox, or a group's shared cella-lua host. */
typedef enum ManifestIsolation {
        MANIFEST_ISOLATION_SANDBOX,
        MANIFEST_ISOLATION_PACKED,
} ManifestIsolation;

/* The scheduler of a packed group's host; the values are src/lua/stats.h's
 * CLuaSchedPolicy. */
typedef enum ManifestScheduler {
        MANIFEST_SCHEDULER_FAIR = 0,
        MANIFEST_SCHEDULER_PRIORITY = 1,
        MANIFEST_SCHEDULER_ROUND_ROBIN = 2,
} ManifestScheduler;

/* Resource limits; a 0 field means "not set" (the caller applies its default). */
typedef struct ManifestLimits {
        uint64_t memory;    /* bytes ("64M"): cgroup memory limit */
        uint64_t pids;      /* count: cgroup pids.max */
        uint64_t cpu_milli; /* thousandths of one CPU ("cpu": 0.5 -> 500): cgroup quota */
        uint64_t files;     /* count: RLIMIT_NOFILE */
        uint64_t storage;   /* bytes: /data size (src/supervisor/storage.c); 0 = not set */
        uint64_t tmp;       /* bytes: size of the /tmp tmpfs */
} ManifestLimits;

/* "ports" (docs/manifest.md, docs/network.md "Port forwarding"): one forward of a
 * host port into the app's network namespace. */
#define MANIFEST_PORT_ADDRESS_MAX 46u /* INET6_ADDRSTRLEN: a numeric address and its NUL */
typedef struct ManifestPort {
        uint16_t host; /* 1..65535: the port cellad listens on, on the host */
        uint16_t app;  /* 1..65535: the port on 127.0.0.1 inside the app's namespace */
        bool udp;      /* "proto": "udp"; false: "tcp" (the default) */
        /* "address": the host address to listen on, numeric (IPv4 or IPv6); "" (the
         * key absent): every address, IPv4 and IPv6, as docker and podman's -p do */
        char address[MANIFEST_PORT_ADDRESS_MAX];
} ManifestPort;

typedef struct Manifest {
        char *id;      /* reverse-DNS, validated (manifest_id_is_valid) */
        char *name;    /* display name; defaults to id */
        char *version; /* free text; defaults to "0" */
        ManifestRuntime runtime;
        char *entry; /* relative path inside the app folder, no "..", not absolute */
        char **args; /* NULL-terminated, never NULL */
        ManifestKind kind;
        char **depends;     /* app ids, NULL-terminated, never NULL */
        char **permissions; /* "name" or "name:scope", NULL-terminated, never NULL */
        char **exports;     /* rights others may hold on this app's namespace ("bus.subscribe:
                               <id>.tick", "bus.send", "app.launch"); as permissions */
        char **env;         /* "KEY=VALUE", NULL-terminated, never NULL */
        ManifestLimits limits;
        ManifestRestart restart;
        ManifestIsolation isolation;
        char *group; /* packed only: 1..MANIFEST_GROUP_MAX of [a-z0-9_-]; else NULL */
        ManifestScheduler scheduler; /* packed only; fair unless has_scheduler */
        bool has_scheduler;          /* "scheduler" was set (boot checks a group agrees) */
        int priority;                /* Lua only: MANIFEST_PRIORITY_MIN..MAX, default 0 */
        bool autostart;      /* "autostart": cellad starts the installed app when it starts */
        ManifestPort *ports; /* "ports": n_ports entries (at most MANIFEST_LIST_MAX), or NULL */
        size_t n_ports;
} Manifest;

/* Filled by the parser on failure; owned by the caller. */
typedef struct ManifestError {
        char file[256]; /* the manifest's path as the caller named it */
        char key[128];  /* JSON path of the offending key, e.g. "limits.memory", "args[2]"; "" for
                           syntax */
        char message[384]; /* what was wrong and what was expected */
        int line;          /* 1-based line for JSON syntax errors, else 0 */
        int column;
} ManifestError;

/*
 * Parses a manifest from memory.
 * data/size: the JSON text (size bytes; need not be NUL-terminated), at most
 * MANIFEST_MAX_SIZE. filename: used only in error messages.
 * Returns 0 and *ret (free with manifest_free), or -EINVAL (bad content, err filled),
 * -EFBIG (too large, err filled), -ENOMEM.
 */
int manifest_parse(const char *data, size_t size, const char *filename, Manifest **ret,
                   ManifestError *err);

/*
 * Loads <dir>/manifest.json. dirfd: an open directory (the app folder). The file is
 * opened with openat2(RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS), so a
 * manifest.json that is a symlink out of the folder is refused (-ELOOP/-EXDEV).
 * dir_name: the folder's path as the user gave it, for messages.
 * Returns 0 and *ret, or -errno with err filled (ENOENT when there is no manifest).
 */
int manifest_load_at(int dirfd, const char *dir_name, Manifest **ret, ManifestError *err);

/* Frees m; takes NULL; returns NULL. */
Manifest *manifest_free(Manifest *m);

/*
 * True if id is a valid app id: 2 to MANIFEST_ID_MAX bytes; at least two dot-separated
 * labels (reverse-DNS, as Android's applicationId and Flatpak's app ids); each label
 * 1-63 chars of [A-Za-z0-9_-], not starting with a digit or '-'.
 * Source: Flatpak's app-id rules (flatpak_is_valid_name) and Android applicationId.
 */
bool manifest_id_is_valid(const char *id);

/*
 * The rows behind the parser's enum-like keys and its numbers (the limits and
 * "priority"): one row per key, read by one generic parser per kind, so a new key
 * of either kind is one row in manifest.c (and its field in Manifest). Exposed so
 * that the unit tests check every row (tests/unit/test-manifest.c), the fuzz harness
 * checks every parsed value against its row, and tools can describe the format.
 */

/* A key whose value is one of a fixed set of names, stored as a C enum. */
typedef struct ManifestEnumKey {
        const char *key;           /* JSON key at the top level: "restart" */
        const char *const *values; /* the spellings, indexed by the enum's value */
        size_t n_values;
        bool required;     /* a manifest without the key is an error */
        int default_value; /* stored when the key is absent and not required */
        size_t offset;     /* of the enum (int-sized) in Manifest */
        size_t set_offset; /* of a bool in Manifest set when the key is given; SIZE_MAX: none */
} ManifestEnumKey;

/* How a number is written in the manifest and kept in Manifest. */
typedef enum ManifestUnit {
        MANIFEST_UNIT_BYTES, /* a size: "64M" (base/size.h) or a JSON integer; kept in bytes */
        MANIFEST_UNIT_COUNT, /* a JSON integer, kept as it is */
        MANIFEST_UNIT_CPU,   /* a JSON number of CPUs (0.5); kept in thousandths, rounded */
} ManifestUnit;

/* A key whose value is a number with a unit and inclusive bounds. */
typedef struct ManifestNumberKey {
        const char *parent; /* the object holding the key: "limits", or "" for the top level */
        const char *key;    /* "memory"; its JSON path is "limits.memory" */
        ManifestUnit unit;
        int64_t min;           /* inclusive, in the kept unit (bytes, count, thousandths) */
        uint64_t max;          /* inclusive, in the kept unit; UINT64_MAX: no bound */
        int64_t default_value; /* stored when the key is absent (0 for a limit: not set) */
        size_t offset;         /* of the field in Manifest */
        size_t size;      /* of the field: sizeof(uint64_t) (min >= 0) or sizeof(int) (signed) */
        const char *note; /* said after the bounds in messages ("a nice value"), or NULL */
} ManifestNumberKey;

/* The rows, in the order they are parsed; *ret_n their number. Never NULL. */
const ManifestEnumKey *manifest_enum_keys(size_t *ret_n);
const ManifestNumberKey *manifest_number_keys(size_t *ret_n);

/*
 * A "ports" entry's "address" (s, len bytes): NULL when it is a numeric IPv4 or IPv6
 * address (inet_pton(3)'s forms, no zone, no brackets), else why not (a static
 * English phrase). Shared with `cella port add` (the same rule at runtime).
 */
const char *manifest_port_address_invalid_reason(const char *s, size_t len);

/* Names for messages: "native"/"lua", "app"/"service", "no"/"on-failure"/"always". */
const char *manifest_runtime_to_string(ManifestRuntime r);
const char *manifest_kind_to_string(ManifestKind k);
const char *manifest_restart_to_string(ManifestRestart r);
/* "sandbox"/"packed"; "fair"/"priority"/"round-robin". */
const char *manifest_isolation_to_string(ManifestIsolation i);
const char *manifest_scheduler_to_string(ManifestScheduler s);

static inline void manifest_freep(Manifest **m)
{
        manifest_free(*m);
}
