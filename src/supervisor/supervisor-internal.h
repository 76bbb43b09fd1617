/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/* Shared by supervisor.c (the kernel) and instance.c (one app's runs). */

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <uv.h>

#include "audit/audit.h"
#include "broker/broker.h"
#include "ipc/bus.h"
#include "policy/grants.h"
#include "sandbox/sandbox.h"
#include "sandbox/seccomp.h"
#include "supervisor/applog.h"
#include "supervisor/control.h"
#include "supervisor/prompt.h"
#include "supervisor/launch.h"
#include "supervisor/restart.h"
#include "supervisor/state.h"
#include "supervisor/supervisor.h"

#define SUPERVISOR_PUMP_BUFFER   65536 /* bytes copied per read, one pipe's default capacity */
#define SUPERVISOR_STOP_GRACE_MS 5000  /* SIGTERM, then SIGKILL after this (systemd: 90 s) */
/* HEAD of the audit log lags its records by at most this (AuditOptions.sync_lag_ms):
 * journald's SyncIntervalSec is 5 min; auditd syncs every 50 records or so. */
#define SUPERVISOR_AUDIT_SYNC_LAG_MS 5000

typedef struct Pump {
        Instance *inst;
        int from, to; /* from: pipe read end (ours); to: where its bytes go (or log) */
        AppLog *log;  /* not NULL: bytes go here instead of to */
        bool open;
        bool closing; /* uv_close() called, callback pending */
        uv_poll_t poll;
} Pump;

struct Instance {
        Supervisor *sup;
        Manifest *manifest;
        char *app_dir;
        char *data_dir;
        char **extra_args;
        unsigned wave;
        bool signed_ok;
        bool installed; /* its rights are recorded in grants.db (instance_install) */
        InstanceState state;

        Sandbox *sandbox;
        uv_poll_t sandbox_poll;
        bool sandbox_poll_init;
        uv_poll_t notify_poll; /* the seccomp listener: denied calls wait on it */
        bool notify_poll_init;
        SeccompDenials *denials; /* of the current run */
        unsigned polls_closing;  /* sandbox_poll/notify_poll closes not yet called back */
        Pump out, err, in;
        AppLog *log;
        BrokerApp *broker_app;
        uid_t uid;
        int64_t started_ms;  /* wall clock of the last start */
        uint64_t started_ns; /* monotonic */
        bool stop_requested; /* we asked it to stop: no restart */
        uv_timer_t timer;    /* restart delay, stop grace */
        bool timer_init;
        RestartState restart;
        unsigned restarts;
        int exit_code;
        SandboxExit last_exit;
};

struct Supervisor {
        SupervisorOptions o;
        uv_loop_t loop;
        bool loop_ready;
        State *state;
        Grants *grants;
        AuditLog *audit;
        Bus *bus;
        Broker *broker;
        BrokerHost *host;
        CgroupManager *cgm;
        SeccompProgram *filter;
        Prompt *prompt;
        struct PromptCall *prompt_calls; /* questions the broker is waiting on */
        Control *control;
        uv_signal_t signals[3];
        unsigned n_signals;
        uv_check_t flush;
        bool flush_init;
        int interrupts;
        bool stopping;
        bool freeing; /* supervisor_free() runs: no more reports or restarts */
        bool running; /* in supervisor_loop()'s uv_run() */
        bool ready;   /* supervisor_ready() ran; ready_code is its result */
        int ready_code;
        Instance **apps;
        size_t n_apps;
};

/* instance.c */
void instance_free(Instance *inst);
/* Asks inst to stop: SIGTERM, SIGKILL after the grace period (kill: at once). */
void instance_stop(Instance *inst, bool kill);
/* True if inst runs or will run again by itself. */
bool instance_active(const Instance *inst);
/* A JSON record for `cella ps`. */
json_t *instance_record(const Instance *inst);

/* supervisor.c */
/* Opens grants, audit log, bus, prompt, control socket and broker, once. Returns 0
 * or a CELLA_EXIT_* code (printed). Called once the first sandbox runs. */
int supervisor_ready(Supervisor *s);
/* Verifies inst's bundle signature and records its rights in grants.db (once per
 * kernel). Needs supervisor_ready(). Returns 0 or a CELLA_EXIT_* code (printed). */
int instance_install(Instance *inst);
/* Writes o (one JSON line) to the status fd, if any, and drops o either way. */
void supervisor_status(Supervisor *s, json_t *o);
/* Appends a lifecycle record to the audit log (fields: stolen). */
void supervisor_audit(Supervisor *s, const char *app, const char *event, json_t *fields);
/* Called by instance.c whenever an instance's state changed: may end the loop. */
void supervisor_changed(Supervisor *s);
Instance *supervisor_find(Supervisor *s, const char *id);
