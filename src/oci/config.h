/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * An OCI bundle's config.json (the OCI runtime specification, config.md and
 * config-linux.md, version 1.0.0 to 1.2.x), parsed with jansson into plain C:
 * what cella-oci needs to build a sandbox through src/sandbox/ (spec.h) and to
 * run the lifecycle (hooks, annotations). Every string is owned by the OciConfig.
 * A field the spec marks optional and the file leaves out is NULL, 0 or false,
 * with its *_set flag false where 0 is a meaningful value.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Bounds on what a config may hold (a hostile config must not make cella-oci
 * allocate without end). */
#define OCI_CONFIG_MAX_BYTES (4u * 1024 * 1024) /* config.json, process.json */
#define OCI_MAX_ITEMS        4096               /* entries of any one array or object */
/* JSON values in a whole config (podman's holds about 500, Docker's default seccomp
 * profile about 1500): bounds the parser's memory at a few MB, where 4 MiB of "0,"
 * would make jansson build a tree of 90 MB. */
#define OCI_MAX_VALUES (64u * 1024)

typedef struct OciUser {
        uid_t uid;
        gid_t gid;
        uint32_t umask;
        bool umask_set;
        gid_t *additional_gids;
        size_t n_additional_gids;
} OciUser;

/* capabilities(7) as bit masks: bit n is capability n; names the kernel does not know
 * are refused by the parser ("CAP_FOO" in process.capabilities.bounding[3]). */
typedef struct OciCaps {
        uint64_t bounding, effective, inheritable, permitted, ambient;
        bool set; /* process.capabilities present */
} OciCaps;

typedef struct OciRlimit {
        int resource; /* RLIMIT_*, from "RLIMIT_NOFILE" etc. */
        uint64_t soft, hard;
} OciRlimit;

typedef struct OciConsoleSize {
        unsigned short height, width;
} OciConsoleSize;

typedef struct OciProcess {
        bool terminal;
        OciConsoleSize console_size; /* 0x0: not given */
        OciUser user;
        char **args; /* NULL-terminated, at least one */
        char **env;  /* NULL-terminated ("KEY=value") */
        char *cwd;   /* absolute */
        OciCaps caps;
        OciRlimit *rlimits;
        size_t n_rlimits;
        bool no_new_privileges;
        char *apparmor_profile; /* kept for `state`, not applied (docs/oci.md) */
        char *selinux_label;
        int oom_score_adj;
        bool oom_score_adj_set;
} OciProcess;

typedef struct OciMount {
        char *destination; /* absolute */
        char *type;        /* NULL: a bind if options say so */
        char *source;
        char **options; /* NULL-terminated, as written ("nosuid", "mode=755", "rbind") */
} OciMount;

typedef struct OciHook {
        char *path; /* absolute host path */
        char **args;
        char **env;
        int timeout; /* seconds; 0: none given */
} OciHook;

typedef enum OciHookKind {
        OCI_HOOK_PRESTART,
        OCI_HOOK_CREATE_RUNTIME,
        OCI_HOOK_CREATE_CONTAINER,
        OCI_HOOK_START_CONTAINER,
        OCI_HOOK_POSTSTART,
        OCI_HOOK_POSTSTOP,
        _OCI_HOOK_MAX,
} OciHookKind;

typedef struct OciNamespace {
        int type;   /* CLONE_NEWPID, ... from "pid", "network", "mount", "ipc", "uts", "user",
                       "cgroup" ("time" is refused: not supported) */
        char *path; /* NULL: a new one; else a namespace file to join */
} OciNamespace;

typedef struct OciIdMapping {
        uint32_t container_id, host_id, size;
} OciIdMapping;

typedef struct OciDevice {
        char *path;
        char type; /* 'c', 'b', 'u' (as 'c'), 'p' */
        int64_t major, minor;
        uint32_t file_mode;
        bool file_mode_set;
        uid_t uid;
        gid_t gid;
} OciDevice;

/* linux.resources.devices[]: a device cgroup rule (config-linux.md "Device allowlist"). */
typedef struct OciDeviceRule {
        bool allow;
        char type;      /* 'a' (the default), 'c', 'b' */
        int64_t major;  /* -1: any (absent) */
        int64_t minor;  /* -1: any */
        char access[4]; /* subset of "rwm"; absent: "rwm" */
} OciDeviceRule;

/* linux.resources.hugepageLimits[] */
typedef struct OciHugepageLimit {
        char *page_size; /* "2MB" */
        uint64_t limit;  /* bytes */
} OciHugepageLimit;

/* linux.resources.network.priorities[] */
typedef struct OciIfPriority {
        char *name;
        uint32_t priority;
} OciIfPriority;

/* linux.resources: the parts cella maps onto its cgroups (CgroupLimits, CgroupResources);
 * the rest is kept as given so that `cella-oci` can say which it ignored. */
typedef struct OciResources {
        int64_t memory_limit; /* bytes; 0: none (-1 in the file: unlimited, also 0 here) */
        int64_t memory_swap;  /* memory+swap bytes; 0: none */
        int64_t pids_limit;   /* 0: none */
        int64_t cpu_quota;    /* microseconds per period; 0: none */
        uint64_t cpu_period;  /* microseconds; 0: default */
        uint64_t cpu_shares;  /* v1 shares (2..262144); 0: none */
        char *cpuset_cpus, *cpuset_mems;
        int64_t memory_reservation; /* bytes; 0: none (-1: none either) */
        bool swappiness_set;
        uint64_t swappiness; /* 0..100 */
        bool disable_oom_killer;
        bool memory_kernel_set, memory_kernel_tcp_set; /* deprecated: noted, not applied */
        bool devices_set; /* linux.resources.devices was given (even empty) */
        OciDeviceRule *devices;
        size_t n_devices;
        uint64_t blkio_weight; /* 10..1000; 0: none */
        OciHugepageLimit *hugepage_limits;
        size_t n_hugepage_limits;
        bool classid_set;
        uint32_t classid;
        OciIfPriority *priorities;
        size_t n_priorities;
        char **unified_keys; /* linux.resources.unified: keys and values side by side */
        char **unified_values;
        size_t n_unified;
        char **ignored; /* JSON paths of fields set and not applied ("linux.resources.blockIO") */
} OciResources;

typedef enum OciSeccompAction {
        OCI_SCMP_KILL,         /* SCMP_ACT_KILL, SCMP_ACT_KILL_THREAD */
        OCI_SCMP_KILL_PROCESS, /* SCMP_ACT_KILL_PROCESS */
        OCI_SCMP_TRAP,
        OCI_SCMP_ERRNO,
        OCI_SCMP_TRACE,
        OCI_SCMP_ALLOW,
        OCI_SCMP_LOG,
        OCI_SCMP_NOTIFY,
} OciSeccompAction;

typedef struct OciSeccompArg {
        unsigned index;
        uint64_t value, value_two;
        int op; /* enum scmp_compare from libseccomp (SCMP_CMP_EQ, ...) */
} OciSeccompArg;

typedef struct OciSeccompRule {
        char **names;
        OciSeccompAction action;
        unsigned errno_ret; /* SCMP_ACT_ERRNO's errno; EPERM when not given */
        bool errno_ret_set;
        OciSeccompArg *args;
        size_t n_args;
} OciSeccompRule;

typedef struct OciSeccomp {
        OciSeccompAction default_action;
        unsigned default_errno_ret;
        bool default_errno_ret_set;
        char **architectures; /* "SCMP_ARCH_X86_64", ... */
        char **flags;         /* "SECCOMP_FILTER_FLAG_LOG", ... */
        char *listener_path;  /* a seccomp agent's socket; refused (docs/oci.md) */
        OciSeccompRule *rules;
        size_t n_rules;
} OciSeccomp;

typedef struct OciConfig {
        char *oci_version;
        char *root_path; /* as written (relative to the bundle, or absolute) */
        bool root_readonly;
        OciProcess process;
        bool process_set; /* create needs it; a config for `state` alone may lack it */
        char *hostname;
        char *domainname;
        OciMount *mounts;
        size_t n_mounts;
        OciHook *hooks[_OCI_HOOK_MAX];
        size_t n_hooks[_OCI_HOOK_MAX];
        char **annotation_keys; /* annotations, keys and values side by side */
        char **annotation_values;
        size_t n_annotations;

        /* linux */
        OciNamespace *namespaces;
        size_t n_namespaces;
        OciIdMapping *uid_mappings, *gid_mappings;
        size_t n_uid_mappings, n_gid_mappings;
        OciDevice *devices;
        size_t n_devices;
        char *cgroups_path;
        OciResources resources;
        char **sysctl_keys;
        char **sysctl_values;
        size_t n_sysctls;
        OciSeccomp *seccomp; /* NULL: none asked */
        char *rootfs_propagation;
        char **masked_paths;
        char **readonly_paths;
        char *mount_label;
        char *personality_domain; /* "LINUX", "LINUX32"; kept, LINUX32 refused */

        /* Fields the parser took but cella does not apply, and capability names this
         * kernel lacks (left out of the masks), one line each with its JSON path
         * ("process.ioPriority: not applied"); NULL-terminated or NULL. oci_spec_build()
         * copies them into OciSpecBuild.notes. */
        char **notes;
} OciConfig;

/*
 * Parses a config.json's text (len bytes, at most OCI_CONFIG_MAX_BYTES; need not be
 * NUL-terminated) into *ret (free with oci_config_free). Checks types, required
 * fields (ociVersion, root.path where the spec asks for it, process.args and cwd when
 * process is present), value ranges and names (capabilities, rlimits, namespace
 * types, seccomp actions and operators). Unknown fields are ignored, as the spec
 * asks of runtimes. Returns 0, or -EINVAL with a message in err (size errlen) naming
 * the JSON path and what was wrong ("process.rlimits[2].type: unknown rlimit
 * RLIMIT_FOO"), -E2BIG (too large, or an array over OCI_MAX_ITEMS), -ENOMEM.
 */
int oci_config_parse(const char *text, size_t len, OciConfig **ret, char *err, size_t errlen);

/* oci_config_parse() of the file <bundle>/config.json (a regular file, at most
 * OCI_CONFIG_MAX_BYTES). Errors as oci_config_parse(), plus the -errno of open or
 * read with err naming the file. */
int oci_config_load(const char *bundle, OciConfig **ret, char *err, size_t errlen);

/*
 * Parses a process.json (`cella-oci exec --process`): an OCI "process" object
 * alone, into *ret (free with oci_process_done). Errors as oci_config_parse(), paths
 * named from "process".
 */
int oci_process_parse(const char *text, size_t len, OciProcess *ret, char *err, size_t errlen);
void oci_process_done(OciProcess *p);

/* The name of capability cap ("CAP_CHOWN" for 0), from linux/capability.h up to
 * CAP_CHECKPOINT_RESTORE (40), or NULL. */
const char *oci_capability_name(int cap);

/*
 * Copies in to out (size bytes, NUL-terminated, cut when full) with every byte outside
 * printable ASCII written as \xNN, so that a config's strings quoted in a message or a
 * note cannot send escape sequences to a terminal or forge lines in a log. Returns out.
 */
char *oci_escape(const char *in, char *out, size_t size);

/* The annotation's value, or NULL. */
const char *oci_config_annotation(const OciConfig *c, const char *key);

/* Frees c; takes NULL; returns NULL. */
OciConfig *oci_config_free(OciConfig *c);
