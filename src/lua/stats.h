/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The scheduler statistics a cella-lua host publishes (docs/lua-api.md "Packed
 * mode", "Statistics"): a shared memory file (a memfd the supervisor creates,
 * sizes with clua_stats_size() and passes to the host) holding one CLuaStatsHost
 * followed by one CLuaStatsApp per app, in the order of the host's spec. The host
 * writes every field with relaxed 64/32-bit atomic stores; a reader (the
 * supervisor, for `cella stats`) loads them the same way, may see two fields from
 * different moments, and must bound n_apps by what the file's size holds. The
 * file carries only counters: app ids are the reader's own (the spec's order).
 */

#include <stddef.h>
#include <stdint.h>

#define CLUA_STATS_MAGIC   0x4c415453u /* "STAL" little-endian */
#define CLUA_STATS_VERSION 1u

/* Scheduling policy of a host (the manifest's "scheduler"). */
typedef enum CLuaSchedPolicy {
        CLUA_SCHED_FAIR = 0,        /* CFS-like: least weighted virtual runtime first */
        CLUA_SCHED_PRIORITY = 1,    /* strict priority, preemptive; round-robin within one */
        CLUA_SCHED_ROUND_ROBIN = 2, /* FIFO of ready apps, one time slice each */
} CLuaSchedPolicy;

/* What an app is doing (CLuaStatsApp.state). */
typedef enum CLuaAppState {
        CLUA_APP_STARTING = 0, /* not yet run its main chunk */
        CLUA_APP_READY = 1,    /* has work queued, waits for the CPU */
        CLUA_APP_RUNNING = 2,  /* on the CPU now */
        CLUA_APP_WAITING = 3,  /* idle: waits for a timer, a message or a reply */
        CLUA_APP_EXITED = 4,   /* returned with nothing left to wait for: fault 0 */
        CLUA_APP_FAILED = 5,   /* ended by a fault (CLuaStatsApp.fault) */
} CLuaAppState;

/* An app's CPU class (CLuaStatsApp.cpu_class), from the supervisor's PRIORITY
 * messages (hostctl.h): its state's class, docs/memory.md "CPU". The supervisor's
 * CpuClass (src/memory/cpu.h) in the same order, plus one; 0: never told. */
typedef enum CLuaCpuClass {
        CLUA_CPU_CLASS_NONE = 0,
        CLUA_CPU_CLASS_FOREGROUND = 1,
        CLUA_CPU_CLASS_VISIBLE = 2,
        CLUA_CPU_CLASS_SERVICE = 3,
        CLUA_CPU_CLASS_BACKGROUND = 4,
        CLUA_CPU_CLASS_CACHED = 5,
        _CLUA_CPU_CLASS_MAX,
} CLuaCpuClass;

/* The word of class c: "" for NONE, "foreground" .. "cached", NULL out of range. */
static inline const char *clua_cpu_class_to_string(uint32_t c)
{
        static const char *const names[_CLUA_CPU_CLASS_MAX] = {"",        "foreground", "visible",
                                                               "service", "background", "cached"};

        return c < _CLUA_CPU_CLASS_MAX ? names[c] : NULL;
}

typedef struct CLuaStatsHost {
        uint32_t magic;       /* CLUA_STATS_MAGIC once the host has started */
        uint32_t version;     /* CLUA_STATS_VERSION */
        uint32_t n_apps;      /* CLuaStatsApp records that follow */
        uint32_t policy;      /* CLuaSchedPolicy */
        uint64_t slice_ns;    /* the time slice, ns */
        uint64_t slices;      /* slices run, all apps */
        uint64_t preemptions; /* slices ended by the host (slice over, or a higher priority) */
        uint64_t yields;      /* slices ended by the app (callback done, waiting for a reply) */
        uint64_t switches;    /* slices that ran a different app than the one before */
        uint64_t cpu_ns;      /* CPU time of the host thread, ns */
        uint64_t started;     /* apps whose main chunk has run (ended or waiting) */
        uint64_t reserved[7];
} CLuaStatsHost;

typedef struct CLuaStatsApp {
        uint32_t state;   /* CLuaAppState */
        int32_t priority; /* -20..19: the manifest's "priority" (nice values), or since a
                             PRIORITY (hostctl.h) the one its CPU class gives */
        uint32_t weight;  /* the fair scheduler's weight from priority (1024 at 0) */
        uint32_t fault;   /* 0, or the cella-lua exit code of its fault: 1 error, 3 memory, 4 CPU */
        uint64_t slices;  /* slices it ran */
        uint64_t preemptions;       /* of them, ended by the host */
        uint64_t yields;            /* of them, ended by the app itself */
        uint64_t callbacks;         /* callbacks run to completion (the main chunk is one) */
        uint64_t cpu_ns;            /* CPU time, ns */
        uint64_t vruntime_ns;       /* weighted virtual runtime, ns (fair scheduler; else 0) */
        uint64_t memory_bytes;      /* its Lua heap now */
        uint64_t memory_peak_bytes; /* its Lua heap's peak */
        /* The supervisor's number of the slot's run (hostctl.h, a JOIN's run): 0 for
         * the apps of the spec, then each JOIN's, stored (release) after the
         * record was reset for it; a reader loads it (acquire) before the rest. */
        uint64_t run;
        /* Its CPU class (CLuaCpuClass) and the priority the manifest asked for,
         * before the class's (priority above is the one the host schedules by);
         * both set by a PRIORITY, 0 until one came. */
        uint32_t cpu_class;
        int32_t base_priority;
        uint64_t reserved[4];
} CLuaStatsApp;

_Static_assert(sizeof(CLuaStatsHost) == 128, "the stats file's layout");
_Static_assert(sizeof(CLuaStatsApp) == 128, "the stats file's layout");

/* Bytes of a stats file for n_apps apps. */
static inline size_t clua_stats_size(uint32_t n_apps)
{
        return sizeof(CLuaStatsHost) + (size_t)n_apps * sizeof(CLuaStatsApp);
}
