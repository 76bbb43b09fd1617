/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * proc.list and proc.signal: the app's own processes. "Own" is the app's cgroup:
 * the processes listed in its cgroup.procs, which an app cannot leave (its jail has
 * no cgroupfs). Pids go out and come in as the app sees them, the last entry of
 * NSpid in /proc/PID/status (its pid namespace is the innermost one).
 *
 * Both run on the threadpool, one call of an app at a time (below).
 *
 * proc.signal resolves the app's pid to a host pid, pins that process with a pidfd,
 * then checks, through the pidfd, that the pinned process is still that pid in the
 * app's namespace and still in the app's cgroup, and signals the pidfd: a pid that
 * was reused between the lookup and the signal can never be hit.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "base/time-util.h"
#include "broker/broker-internal.h"
#include "broker/calls/cgroup-read.h"

#define SIGNAL_MAX 64 /* _NSIG - 1 on Linux */

/* The cgroup directory whose cgroup.procs lists the app's processes. */
static const char *procs_dir(const BrokerAppInfo *info)
{
        return info->pids_cgroup      ? info->pids_cgroup
               : info->memory_cgroup  ? info->memory_cgroup
               : info->unified_cgroup ? info->unified_cgroup
                                      : info->cpu_cgroup;
}

/* Host pids of the app's processes, at most max. Returns the count, or -errno. */
static int app_pids(const BrokerAppInfo *info, pid_t *pids, size_t max)
{
        return cgroup_read_procs(procs_dir(info), pids, max);
}

/* The last NSpid entry of a /proc status text (the pid in the innermost namespace)
 * and, if ret_host, the first (the pid in ours). Returns 0 or -ENOENT. */
static int parse_nspid(const char *status, pid_t *ret_ns, pid_t *ret_host)
{
        const char *l = strstr(status, "\nNSpid:");
        long v, last = -1, first = -1;
        char *end;

        if (!l)
                return -ENOENT;
        l += strlen("\nNSpid:");
        for (;;) {
                v = strtol(l, &end, 10);
                if (end == l)
                        break;
                if (first < 0)
                        first = v;
                last = v;
                l = end;
        }
        if (last <= 0)
                return -ENOENT;
        *ret_ns = (pid_t)last;
        if (ret_host)
                *ret_host = (pid_t)first;
        return 0;
}

static int read_proc(pid_t pid, const char *file, char **ret)
{
        char path[64];

        snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, file);
        return read_file_at(AT_FDCWD, path, 64 * 1024, ret, NULL);
}

/* ---- proc.list ------------------------------------------------------------------------ */

typedef struct ProcInfo {
        pid_t host_pid, ns_pid, host_ppid;
        char name[16];
        char state[2];
        uint64_t rss_bytes, cpu_time_ns, start_time_ns;
} ProcInfo;

/* Fills p from /proc/PID/stat (proc(5): fields 3 state, 4 ppid, 14 utime, 15 stime,
 * 22 starttime in clock ticks, 24 rss in pages) and NSpid of /proc/PID/status. */
static int proc_read(pid_t pid, ProcInfo *p)
{
        _cleanup_free_ char *stat = NULL, *status = NULL;
        unsigned long long utime, stime, start;
        long long rss;
        char *open, *close;
        int ppid;
        long tck = sysconf(_SC_CLK_TCK), page = sysconf(_SC_PAGESIZE);

        if (read_proc(pid, "stat", &stat) < 0 || read_proc(pid, "status", &status) < 0)
                return -ESRCH;
        open = strchr(stat, '(');
        close = strrchr(stat, ')'); /* comm may hold ')' itself */
        if (!open || !close || close < open)
                return -EINVAL;
        *p = (ProcInfo){.host_pid = pid};
        snprintf(p->name, sizeof p->name, "%.*s",
                 close - open - 1 > 15 ? 15 : (int)(close - open - 1), open + 1);
        if (sscanf(close + 1,
                   " %1s %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %*d %*d %*d %*d %*d %*d "
                   "%llu %*u %lld",
                   p->state, &ppid, &utime, &stime, &start, &rss) != 6)
                return -EINVAL;
        if (parse_nspid(status, &p->ns_pid, NULL) < 0)
                return -EINVAL;
        p->host_ppid = ppid;
        if (tck <= 0)
                tck = 100;
        p->cpu_time_ns = (utime + stime) * (1000000000ull / (uint64_t)tck);
        p->start_time_ns = start * (1000000000ull / (uint64_t)tck);
        p->rss_bytes = rss > 0 ? (uint64_t)rss * (uint64_t)page : 0;
        return 0;
}

static void app_cgroup_stats(const BrokerAppInfo *info, Cella__V1__CgroupStats *s)
{
        CgroupMemory mem;
        uint64_t v;

        if (cgroup_memory(info, &mem) == 0) {
                s->memory_current_bytes = mem.current;
                s->memory_limit_bytes = mem.limit;
        }
        if (cgroup_read_knob_u64(info->pids_cgroup, "pids.current", &v) == 0 ||
            cgroup_read_knob_u64(info->unified_cgroup, "pids.current", &v) == 0)
                s->pids_current = v;
        if (cgroup_read_knob_u64(info->pids_cgroup, "pids.max", &v) == 0 ||
            cgroup_read_knob_u64(info->unified_cgroup, "pids.max", &v) == 0)
                s->pids_limit = v == UINT64_MAX ? 0 : v;

        /* cpuacct.usage lives in the cpuacct hierarchy: the cpu one when the two
         * are co-mounted (cpu,cpuacct), its own where they are mounted apart. */
        if ((info->cpuacct_cgroup &&
             cgroup_read_knob_u64(info->cpuacct_cgroup, "cpuacct.usage", &v) == 0) ||
            (info->cpu_cgroup && cgroup_read_knob_u64(info->cpu_cgroup, "cpuacct.usage", &v) == 0))
                s->cpu_usage_ns = v;
        else if (cgroup_read_keyed_u64(info->unified_cgroup, "cpu.stat", "usage_usec", &v) == 0)
                s->cpu_usage_ns = v * 1000;

        /* v1 cpu.shares 1024 is v2 cpu.weight 100 (the kernel's own mapping in
         * cgroup v1 <-> v2 conversions, Documentation/admin-guide/cgroup-v2.rst). */
        if (cgroup_read_knob_u64(info->cpu_cgroup, "cpu.shares", &v) == 0) {
                v = v * 100 / 1024;
                s->cpu_weight = (uint32_t)(v < 1 ? 1 : v > 10000 ? 10000 : v);
        } else if (cgroup_read_knob_u64(info->unified_cgroup, "cpu.weight", &v) == 0)
                s->cpu_weight = (uint32_t)(v > 10000 ? 10000 : v);
        else
                s->cpu_weight = 100;

        {
                uint64_t quota = 0, period = 0;

                if (cgroup_read_knob_u64(info->cpu_cgroup, "cpu.cfs_quota_us", &quota) == 0 &&
                    cgroup_read_knob_u64(info->cpu_cgroup, "cpu.cfs_period_us", &period) == 0 &&
                    quota != UINT64_MAX && (int64_t)quota > 0 && period > 0)
                        s->cpu_quota_millis = (uint32_t)(quota * 1000 / period);
        }
}

/* ---- running on the threadpool ------------------------------------------------------ */

/*
 * proc.list reads two /proc files per process of the app (up to BROKER_PROCS_MAX),
 * and proc.signal up to one per process to find the pid: tens of milliseconds for
 * an app of a thousand processes, which on the kernel's loop delayed every other
 * app's calls. Both run on libuv's threadpool instead, one call of an app at a
 * time (the others wait in order, as outstanding calls of the app): an app keeps
 * at most one worker busy, and every call is answered from a read made after it
 * arrived. The worker's CPU time is charged to the app (broker_app_charge_cpu():
 * `worker_cpu_ms` of its detach record), not written per call, so that the records
 * of a flood stay alike and coalesce.
 */
typedef struct ProcState ProcState;

typedef struct ProcJob {
        uv_work_t req;
        ProcState *st;    /* NULL once the app went away: the job frees itself */
        BrokerCall *call; /* NULL once cancelled: the result is dropped */
        bool is_signal;
        int32_t pid, signal; /* proc.signal: the app's pid, the signal */
        BrokerAppInfo info;  /* the strings below, for the worker */
        char *dirs[5];       /* memory, pids, cpu, unified, cpuacct cgroup dirs (copies) */
        int error;           /* > 0: the errno to answer */
        const char *message; /* static */
        ProcInfo *procs;     /* proc.list: BROKER_PROCS_MAX entries */
        pid_t *ppids;        /* the parent of each as the app sees it, 0 if none */
        size_t n;
        Cella__V1__CgroupStats stats; /* proc.list */
        uint64_t cpu_ns;              /* CLOCK_THREAD_CPUTIME_ID the work took */
        struct ProcJob *next;         /* in the app's queue */
} ProcJob;

/* Per app (BROKER_SLOT_PROC): the job running and those waiting. A handle on no
 * right, closed when the app detaches. */
struct ProcState {
        BrokerHandle handle;
        BrokerApp *app;
        ProcJob *running;
        ProcJob *head, *tail;
};

static ProcJob *job_free(ProcJob *j)
{
        if (!j)
                return NULL;
        for (size_t i = 0; i < ELEMENTSOF(j->dirs); i++)
                free(j->dirs[i]);
        free(j->procs);
        free(j->ppids);
        free(j);
        return NULL;
}

static void list_work(ProcJob *j)
{
        _cleanup_free_ pid_t *pids = calloc(BROKER_PROCS_MAX, sizeof(pid_t));
        int r;

        j->procs = calloc(BROKER_PROCS_MAX, sizeof(ProcInfo));
        j->ppids = calloc(BROKER_PROCS_MAX, sizeof(pid_t));
        if (!pids || !j->procs || !j->ppids) {
                j->error = ENOMEM;
                return;
        }
        r = app_pids(&j->info, pids, BROKER_PROCS_MAX);
        if (r < 0) {
                j->error = r == -ENOENT ? ENODATA : -r;
                j->message = "the app's cgroup cannot be read";
                return;
        }
        for (int i = 0; i < r; i++)
                if (proc_read(pids[i], &j->procs[j->n]) == 0) /* gone meanwhile: left out */
                        j->n++;
        /* The parent as the app sees it; a parent outside the app is 0. */
        for (size_t i = 0; i < j->n; i++)
                for (size_t k = 0; k < j->n; k++)
                        if (j->procs[k].host_pid == j->procs[i].host_ppid)
                                j->ppids[i] = j->procs[k].ns_pid;
        app_cgroup_stats(&j->info, &j->stats);
}

static void signal_work(ProcJob *j);

static void job_work(uv_work_t *req)
{
        ProcJob *j = req->data;
        uint64_t t0 = now_clock_ns(CLOCK_THREAD_CPUTIME_ID);

        if (j->is_signal)
                signal_work(j);
        else
                list_work(j);
        j->cpu_ns = now_clock_ns(CLOCK_THREAD_CPUTIME_ID) - t0;
}

static void job_done(uv_work_t *req, int status);

/* Starts the next waiting job of st, if none runs. */
static void jobs_next(ProcState *st)
{
        while (!st->running && st->head) {
                ProcJob *j = st->head;
                int r;

                st->head = j->next;
                if (!st->head)
                        st->tail = NULL;
                j->next = NULL;
                r = uv_queue_work(broker_options(broker_app_broker(st->app))->loop, &j->req,
                                  job_work, job_done);
                if (r == 0) {
                        st->running = j;
                        return;
                }
                if (j->call) {
                        j->call->cancel = NULL;
                        j->call->handler_data = NULL;
                        broker_reply_error(j->call, -r, "the kernel could not start the call");
                }
                job_free(j);
        }
}

static void list_reply(ProcJob *j)
{
        Cella__V1__ProcListReply m = CELLA__V1__PROC_LIST_REPLY__INIT;
        _cleanup_free_ Cella__V1__Process *out = calloc(j->n + 1, sizeof(Cella__V1__Process));
        _cleanup_free_ Cella__V1__Process **outp = calloc(j->n + 1, sizeof(Cella__V1__Process *));

        if (!out || !outp) {
                broker_reply_error(j->call, ENOMEM, NULL);
                return;
        }
        for (size_t i = 0; i < j->n; i++) {
                Cella__V1__Process *p = &out[i];

                cella__v1__process__init(p);
                p->pid = j->procs[i].ns_pid;
                p->ppid = j->ppids[i];
                p->name = j->procs[i].name;
                p->state = j->procs[i].state;
                p->rss_bytes = j->procs[i].rss_bytes;
                p->cpu_time_ns = j->procs[i].cpu_time_ns;
                p->start_time_ns = j->procs[i].start_time_ns;
                outp[i] = p;
        }
        m.n_processes = j->n;
        m.processes = outp;
        m.cgroup = &j->stats;
        broker_reply(j->call, &m.base, NULL, 0);
}

static void job_done(uv_work_t *req, int status)
{
        ProcJob *j = req->data;
        ProcState *st = j->st;
        BrokerCall *c = j->call;

        if (st)
                st->running = NULL;
        if (st)
                broker_app_charge_cpu(st->app, j->cpu_ns);
        if (c && st) {
                c->cancel = NULL;
                c->handler_data = NULL;
                if (status != 0)
                        broker_reply_error(c, ECANCELED, NULL);
                else if (j->error)
                        broker_reply_error(c, j->error, j->message);
                else if (j->is_signal) {
                        Cella__V1__ProcSignalReply reply = CELLA__V1__PROC_SIGNAL_REPLY__INIT;

                        broker_reply(c, &reply.base, NULL, 0);
                } else
                        list_reply(j);
        }
        job_free(j);
        if (st)
                jobs_next(st);
}

/* The core's cancel hook: a waiting job is dropped, a running one forgets c. */
static void job_cancel(BrokerCall *c)
{
        ProcJob *j = c->handler_data;
        ProcState *st = j ? j->st : NULL;

        c->handler_data = NULL;
        if (!j || !st)
                return;
        if (st->running == j) {
                j->call = NULL;
                return;
        }
        for (ProcJob **p = &st->head, *prev = NULL; *p; prev = *p, p = &(*p)->next)
                if (*p == j) {
                        *p = j->next;
                        if (st->tail == j)
                                st->tail = prev;
                        job_free(j);
                        return;
                }
}

static void proc_state_close(BrokerHandle *h)
{
        ProcState *st = (ProcState *)((char *)h - offsetof(ProcState, handle));

        /* The waiting calls were abandoned (job_cancel) before the handles closed. */
        while (st->head) {
                ProcJob *j = st->head;

                st->head = j->next;
                job_free(j);
        }
        if (st->running) {
                st->running->st = NULL;
                st->running->call = NULL;
        }
        broker_app_set_slot(h->app, BROKER_SLOT_PROC, NULL);
        free(st);
}

/* Queues c's job on the app's threadpool turn. */
static void job_submit(BrokerCall *c, bool is_signal, int32_t pid, int32_t signal)
{
        const BrokerAppInfo *info = broker_app_info(c->app);
        const char *src[5] = {info->memory_cgroup, info->pids_cgroup, info->cpu_cgroup,
                              info->unified_cgroup, info->cpuacct_cgroup};
        ProcState *st = broker_app_slot(c->app, BROKER_SLOT_PROC);
        ProcJob *j = calloc(1, sizeof *j);

        if (!j) {
                broker_reply_error(c, ENOMEM, NULL);
                return;
        }
        for (size_t i = 0; i < ELEMENTSOF(src); i++)
                if (src[i] && !(j->dirs[i] = strdup(src[i]))) {
                        job_free(j);
                        broker_reply_error(c, ENOMEM, NULL);
                        return;
                }
        if (!st) {
                st = calloc(1, sizeof *st);
                if (!st) {
                        job_free(j);
                        broker_reply_error(c, ENOMEM, NULL);
                        return;
                }
                st->app = c->app;
                broker_app_set_slot(c->app, BROKER_SLOT_PROC, st);
                broker_handle_add(c->app, &st->handle, NULL, proc_state_close);
        }
        cella__v1__cgroup_stats__init(&j->stats);
        j->req.data = j;
        j->st = st;
        j->call = c;
        j->is_signal = is_signal;
        j->pid = pid;
        j->signal = signal;
        j->info = (BrokerAppInfo){
                .memory_cgroup = j->dirs[0],
                .pids_cgroup = j->dirs[1],
                .cpu_cgroup = j->dirs[2],
                .unified_cgroup = j->dirs[3],
                .cpuacct_cgroup = j->dirs[4],
                .pidfd = -EBADF,
        };
        c->handler_data = j;
        c->cancel = job_cancel;
        if (st->tail)
                st->tail->next = j;
        else
                st->head = j;
        st->tail = j;
        jobs_next(st);
}

static void proc_list(BrokerCall *c)
{
        job_submit(c, false, 0, 0);
}

/* ---- proc.signal ------------------------------------------------------------------------ */

static const char *proc_signal_right(const ProtobufCMessage *req, char *buf, size_t size,
                                     int *ret_error)
{
        const Cella__V1__ProcSignalRequest *m = (const void *)req;

        if (m->pid <= 0 || m->signal < 1 || m->signal > SIGNAL_MAX)
                *ret_error = -EINVAL;
        return NULL; /* the app's own processes: no right */
}

/* True if host pid h is among the app's processes now. */
static bool in_app(const BrokerAppInfo *info, pid_t h, pid_t *pids)
{
        int n = app_pids(info, pids, BROKER_PROCS_MAX);

        for (int i = 0; i < n; i++)
                if (pids[i] == h)
                        return true;
        return false;
}

/* The pid and NSpid of the process a pidfd pins, from /proc/self/fdinfo (Linux 5.10+:
 * "Pid:" is -1 once it has exited). Returns 0, -ESRCH (exited), -errno. */
static int pidfd_pids(int pidfd, pid_t *ret_host, pid_t *ret_ns)
{
        _cleanup_free_ char *s = NULL;
        char path[64];
        const char *l;
        int r;

        snprintf(path, sizeof path, "/proc/self/fdinfo/%d", pidfd);
        r = read_file_at(AT_FDCWD, path, 4096, &s, NULL);
        if (r < 0)
                return r;
        l = strstr(s, "\nPid:");
        if (!l || strtol(l + 5, NULL, 10) <= 0)
                return -ESRCH;
        return parse_nspid(s, ret_ns, ret_host);
}

/* On a worker: finds the app's process j->pid, pins it with a pidfd, checks it is
 * still that one and still the app's, and signals it. Sets j->error on failure. */
static void signal_work(ProcJob *j)
{
        _cleanup_free_ pid_t *pids = calloc(BROKER_PROCS_MAX, sizeof(pid_t));
        _cleanup_close_ int pidfd = -EBADF;
        pid_t host = 0, h, ns;
        int n;

        if (!pids) {
                j->error = ENOMEM;
                return;
        }
        n = app_pids(&j->info, pids, BROKER_PROCS_MAX);
        for (int i = 0; i < n && !host; i++) {
                _cleanup_free_ char *status = NULL;

                if (read_proc(pids[i], "status", &status) == 0 &&
                    parse_nspid(status, &ns, NULL) == 0 && ns == j->pid)
                        host = pids[i];
        }
        j->error = ESRCH;
        j->message = "no such process of the app";
        if (!host)
                return;
        pidfd = (int)syscall(SYS_pidfd_open, host, 0);
        if (pidfd < 0)
                return;
        /* The pinned process must be the one found, and still the app's: checked after
         * the cgroup is read again, while the pidfd shows it alive. */
        if (!in_app(&j->info, host, pids) || pidfd_pids(pidfd, &h, &ns) < 0 || h != host ||
            ns != j->pid)
                return;
        if (syscall(SYS_pidfd_send_signal, pidfd, j->signal, NULL, 0) < 0) {
                j->error = errno;
                j->message = "the signal could not be sent";
                return;
        }
        j->error = 0;
        j->message = NULL;
}

static void proc_signal(BrokerCall *c)
{
        const Cella__V1__ProcSignalRequest *m = (const void *)c->request;

        const BrokerAppInfo *info = broker_app_info(c->app);

        c->audit_fields = json_pack("{s:i, s:i}", "pid", m->pid, "signal", m->signal);
        /* A packed group's processes are its host, shared by every member: none is a
         * member's own to signal (a SIGKILL would end its neighbours too). */
        if (info->manifest && info->manifest->isolation == MANIFEST_ISOLATION_PACKED) {
                broker_reply_error(c, EPERM,
                                   "a packed group's processes are shared by its members");
                return;
        }
        job_submit(c, true, m->pid, m->signal);
}

const BrokerCallDef broker_calls_proc[] = {
        {CELLA__V1__OPCODE__OPCODE_PROC_LIST, NULL, proc_list},
        {CELLA__V1__OPCODE__OPCODE_PROC_SIGNAL, proc_signal_right, proc_signal},
        {0},
};
