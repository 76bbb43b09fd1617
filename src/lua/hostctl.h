/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The host control channel of a packed group's cella-lua host (docs/lua-api.md
 * "Joining a running host"): a SOCK_SEQPACKET pair whose one end the supervisor
 * keeps and whose other end the host's spec names ("control_fd"). The supervisor
 * sends; the host only reads (the supervisor shuts its own reading side, so
 * nothing a host writes reaches it). One message is one packet: a CLuaCtlHeader,
 * then hdr.len bytes of JSON, with hdr.n_fds fds in one SCM_RIGHTS record.
 *
 *   JOIN (index, run, n_fds 1 or 2, JSON): start an app in slot index (< the
 *        spec's apps, that slot's app ended): the JSON is one object of the
 *        spec's "apps" without "channel_fd" and "log_fd"; fds[0] is its broker
 *        channel, fds[1] (n_fds 2) its log. run is written into the slot's stats
 *        record (CLuaStatsApp.run) before anything else of the new run.
 *   STOP (index, run, no fds, no JSON): end the app in slot index if the run
 *        it started with is run (a stop meant for an older run is ignored).
 *   PRIORITY (index, run, no fds, JSON {"class": word, "priority": -20..19}): the
 *        app in slot index, if it runs as run, is now of CPU class word
 *        ("foreground", "visible", "service", "background", "cached": its state,
 *        docs/memory.md "CPU") and schedules at priority (a nice value: the fair
 *        scheduler's weight, the priority scheduler's level; the round-robin
 *        scheduler has none). A PRIORITY for an older run is ignored.
 *
 * This header is shared by cella-lua (which parses) and the supervisor (which
 * builds, src/supervisor/luahost.c); it needs jansson and lua/stats.h only.
 */

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "lua/stats.h" /* CLuaCpuClass */

#define CLUA_CTL_MAGIC        0x4c544348u /* "HCTL" little-endian */
#define CLUA_CTL_MSG_MAX      65536u      /* bytes of one message, header included */
#define CLUA_CTL_FDS_MAX      2u          /* fds of one message */
#define CLUA_CTL_PRIORITY_MAX 256u        /* bytes of a PRIORITY's JSON */
/* The spec's bounds on one app (docs/lua-api.md "The host spec"). */
#define CLUA_SPEC_ARGS_MAX  200u
#define CLUA_SPEC_BUDGET_MS (24ull * 3600 * 1000) /* one day */

typedef enum CLuaCtlType {
        CLUA_CTL_JOIN = 1,
        CLUA_CTL_STOP = 2,
        CLUA_CTL_PRIORITY = 3,
} CLuaCtlType;

typedef struct CLuaCtlHeader {
        uint32_t magic;    /* CLUA_CTL_MAGIC */
        uint16_t type;     /* CLuaCtlType */
        uint16_t n_fds;    /* fds the packet carries: JOIN 1 or 2, STOP and PRIORITY 0 */
        uint32_t index;    /* the app's slot: its record in the spec and the stats file */
        uint32_t run;      /* the run of the slot: a JOIN's new one (>= 1); a STOP's, the
                              run it is for (0: an app of the spec) */
        uint32_t len;      /* bytes of JSON after the header: JOIN 2..MSG_MAX-24, STOP 0,
                              PRIORITY 2..CLUA_CTL_PRIORITY_MAX */
        uint32_t reserved; /* 0 */
} CLuaCtlHeader;

_Static_assert(sizeof(CLuaCtlHeader) == 24, "the host control message's layout");

/* One app of a spec or of a JOIN, as parsed: strings point into the JSON it came from. */
typedef struct CLuaSpecApp {
        const char *id;    /* 1..255 bytes */
        const char *entry; /* absolute path */
        const char *data;  /* absolute path of at most 1024 bytes, or NULL */
        const char *args[CLUA_SPEC_ARGS_MAX];
        size_t n_args;
        int channel_fd;       /* -1 if none (always -1 from a JOIN: its fds come apart) */
        int log_fd;           /* -1 if none */
        int priority;         /* -20..19 */
        int slot;             /* a spec's "slot" (0..65535), or -1 (its place in "apps") */
        uint64_t memory_cap;  /* bytes, 0 = default */
        uint64_t callback_ns; /* 0 = default */
        uint64_t total_ns;    /* 0 = none */
} CLuaSpecApp;

/*
 * Parses one object v of the spec's "apps" (docs/lua-api.md "The host spec") into
 * *ret. fds_inline: whether "channel_fd" and "log_fd" may appear (a spec) or not
 * (a JOIN, whose fds come in SCM_RIGHTS). Returns 0, or -EINVAL with err (errlen
 * bytes, NUL-terminated) naming the key and what was expected.
 */
int clua_spec_app_parse(json_t *v, bool fds_inline, CLuaSpecApp *ret, char *err, size_t errlen);
/* fds_inline also allows "slot" (a JOIN's slot is its header's index). */

/* A parsed control message; json (NULL for STOP) owns app's strings. */
typedef struct CLuaCtlMsg {
        CLuaCtlType type;
        uint32_t index;
        uint32_t run;
        unsigned n_fds;
        json_t *json;
        CLuaSpecApp app;    /* JOIN */
        uint32_t cpu_class; /* PRIORITY: CLUA_CPU_CLASS_FOREGROUND..CACHED (stats.h) */
        int priority;       /* PRIORITY: -20..19 */
} CLuaCtlMsg;

/*
 * Parses the packet buf (len bytes) that came with n_fds fds. n_slots: the host's
 * slots (an index must be below it). Returns 0 and *ret (clua_ctl_msg_done() it),
 * or -EBADMSG with err saying what is wrong (short, bad magic, unknown type, fds
 * or length not as the type says, an index out of range, a JOIN with run 0, JSON
 * that is not one app object; a PRIORITY whose JSON is not exactly {"class",
 * "priority"} with a known class word and an integer -20..19). Never reads past
 * len.
 */
int clua_ctl_parse(const void *buf, size_t len, unsigned n_fds, uint32_t n_slots, CLuaCtlMsg *ret,
                   char *err, size_t errlen);

/* Frees what *m holds. */
void clua_ctl_msg_done(CLuaCtlMsg *m);

/*
 * Receives one packet from the control channel fd without blocking into buf (size
 * bytes, at least CLUA_CTL_MSG_MAX), with its fds (O_CLOEXEC) in fds (room for
 * CLUA_CTL_FDS_MAX). Returns 1 and *ret_len, *ret_n_fds; 0 at EOF; -EAGAIN when
 * none is queued; -EBADMSG for a packet that was truncated or came with more fds
 * or other control data than fit (whatever fds came are closed); or -errno.
 */
int clua_ctl_recv(int fd, void *buf, size_t size, size_t *ret_len, int *fds, unsigned *ret_n_fds);
