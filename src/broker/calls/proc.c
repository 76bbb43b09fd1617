/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * proc.list and proc.signal: the app's own processes. "Own" is the app's cgroup:
 * the processes listed in its cgroup.procs, which an app cannot leave (its jail has
 * no cgroupfs). Pids go out and come in as the app sees them, the last entry of
 * NSpid in /proc/PID/status (its pid namespace is the innermost one).
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
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "broker/broker-internal.h"
#include "broker/calls/cgroup-read.h"

#define PROCS_FILE_MAX (1024u * 1024u) /* bytes of a cgroup.procs file we read */
#define SIGNAL_MAX     64              /* _NSIG - 1 on Linux */

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
        _cleanup_free_ char *path = NULL, *s = NULL;
        const char *dir = procs_dir(info);
        size_t n = 0;
        int r;

        if (!dir)
                return -ENOENT;
        if (asprintf(&path, "%s/cgroup.procs", dir) < 0)
                return -ENOMEM;
        r = read_file_at(AT_FDCWD, path, PROCS_FILE_MAX, &s, NULL);
        if (r < 0)
                return r;
        for (char *p = s, *end; *p && n < max; p = end) {
                long v = strtol(p, &end, 10);

                if (end == p)
                        break;
                if (v > 0 && v <= INT32_MAX)
                        pids[n++] = (pid_t)v;
                while (*end == '\n')
                        end++;
        }
        return (int)n;
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

static void cgroup_stats(const BrokerAppInfo *info, Cella__V1__CgroupStats *s)
{
        CgroupMemory mem;
        uint64_t v;

        if (cgroup_memory(info, &mem) == 0) {
                s->memory_current_bytes = mem.current;
                s->memory_limit_bytes = mem.limit;
        }
        if (cgroup_read_u64(info->pids_cgroup, "pids.current", &v) == 0 ||
            cgroup_read_u64(info->unified_cgroup, "pids.current", &v) == 0)
                s->pids_current = v;
        if (cgroup_read_u64(info->pids_cgroup, "pids.max", &v) == 0 ||
            cgroup_read_u64(info->unified_cgroup, "pids.max", &v) == 0)
                s->pids_limit = v == UINT64_MAX ? 0 : v;

        if (info->cpu_cgroup && cgroup_read_u64(info->cpu_cgroup, "cpuacct.usage", &v) == 0)
                s->cpu_usage_ns = v;
        else if (cgroup_read_key(info->unified_cgroup, "cpu.stat", "usage_usec", &v) == 0)
                s->cpu_usage_ns = v * 1000;

        /* v1 cpu.shares 1024 is v2 cpu.weight 100 (the kernel's own mapping in
         * cgroup v1 <-> v2 conversions, Documentation/admin-guide/cgroup-v2.rst). */
        if (cgroup_read_u64(info->cpu_cgroup, "cpu.shares", &v) == 0) {
                v = v * 100 / 1024;
                s->cpu_weight = (uint32_t)(v < 1 ? 1 : v > 10000 ? 10000 : v);
        } else if (cgroup_read_u64(info->unified_cgroup, "cpu.weight", &v) == 0)
                s->cpu_weight = (uint32_t)(v > 10000 ? 10000 : v);
        else
                s->cpu_weight = 100;

        {
                uint64_t quota = 0, period = 0;

                if (cgroup_read_u64(info->cpu_cgroup, "cpu.cfs_quota_us", &quota) == 0 &&
                    cgroup_read_u64(info->cpu_cgroup, "cpu.cfs_period_us", &period) == 0 &&
                    quota != UINT64_MAX && (int64_t)quota > 0 && period > 0)
                        s->cpu_quota_millis = (uint32_t)(quota * 1000 / period);
        }
}

static void proc_list(BrokerCall *c)
{
        Cella__V1__ProcListReply m = CELLA__V1__PROC_LIST_REPLY__INIT;
        Cella__V1__CgroupStats stats = CELLA__V1__CGROUP_STATS__INIT;
        const BrokerAppInfo *info = broker_app_info(c->app);
        _cleanup_free_ pid_t *pids = NULL;
        _cleanup_free_ ProcInfo *procs = NULL;
        _cleanup_free_ Cella__V1__Process *out = NULL;
        _cleanup_free_ Cella__V1__Process **outp = NULL;
        size_t n = 0;
        int r;

        pids = calloc(BROKER_PROCS_MAX, sizeof(pid_t));
        procs = calloc(BROKER_PROCS_MAX, sizeof(ProcInfo));
        out = calloc(BROKER_PROCS_MAX, sizeof(Cella__V1__Process));
        outp = calloc(BROKER_PROCS_MAX, sizeof(Cella__V1__Process *));
        if (!pids || !procs || !out || !outp) {
                broker_reply_error(c, ENOMEM, NULL);
                return;
        }
        r = app_pids(info, pids, BROKER_PROCS_MAX);
        if (r < 0) {
                broker_reply_error(c, r == -ENOENT ? ENODATA : -r,
                                   "the app's cgroup cannot be read");
                return;
        }
        for (int i = 0; i < r; i++)
                if (proc_read(pids[i], &procs[n]) == 0) /* gone meanwhile: left out */
                        n++;

        for (size_t i = 0; i < n; i++) {
                Cella__V1__Process *p = &out[i];
                pid_t ppid = 0;

                /* The parent as the app sees it; a parent outside the app is 0. */
                for (size_t j = 0; j < n; j++)
                        if (procs[j].host_pid == procs[i].host_ppid)
                                ppid = procs[j].ns_pid;
                cella__v1__process__init(p);
                p->pid = procs[i].ns_pid;
                p->ppid = ppid;
                p->name = procs[i].name;
                p->state = procs[i].state;
                p->rss_bytes = procs[i].rss_bytes;
                p->cpu_time_ns = procs[i].cpu_time_ns;
                p->start_time_ns = procs[i].start_time_ns;
                outp[i] = p;
        }
        cgroup_stats(info, &stats);
        m.n_processes = n;
        m.processes = outp;
        m.cgroup = &stats;
        broker_reply(c, &m.base, NULL, 0);
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

static void proc_signal(BrokerCall *c)
{
        const Cella__V1__ProcSignalRequest *m = (const void *)c->request;
        Cella__V1__ProcSignalReply reply = CELLA__V1__PROC_SIGNAL_REPLY__INIT;
        const BrokerAppInfo *info = broker_app_info(c->app);
        _cleanup_free_ pid_t *pids = calloc(BROKER_PROCS_MAX, sizeof(pid_t));
        _cleanup_close_ int pidfd = -EBADF;
        pid_t host = 0, h, ns;
        int n;

        if (!pids) {
                broker_reply_error(c, ENOMEM, NULL);
                return;
        }
        c->audit_fields = json_pack("{s:i, s:i}", "pid", m->pid, "signal", m->signal);
        n = app_pids(info, pids, BROKER_PROCS_MAX);
        for (int i = 0; i < n && !host; i++) {
                _cleanup_free_ char *status = NULL;

                if (read_proc(pids[i], "status", &status) == 0 &&
                    parse_nspid(status, &ns, NULL) == 0 && ns == m->pid)
                        host = pids[i];
        }
        if (!host) {
                broker_reply_error(c, ESRCH, "no such process of the app");
                return;
        }
        pidfd = (int)syscall(SYS_pidfd_open, host, 0);
        if (pidfd < 0) {
                broker_reply_error(c, ESRCH, "no such process of the app");
                return;
        }
        /* The pinned process must be the one found, and still the app's: checked after
         * the cgroup is read again, while the pidfd shows it alive. */
        if (!in_app(info, host, pids) || pidfd_pids(pidfd, &h, &ns) < 0 || h != host ||
            ns != m->pid) {
                broker_reply_error(c, ESRCH, "no such process of the app");
                return;
        }
        if (syscall(SYS_pidfd_send_signal, pidfd, m->signal, NULL, 0) < 0) {
                broker_reply_error(c, errno, "the signal could not be sent");
                return;
        }
        broker_reply(c, &reply.base, NULL, 0);
}

const BrokerCallDef broker_calls_proc[] = {
        {CELLA__V1__OPCODE__OPCODE_PROC_LIST, BROKER_CLASS_COSTLY, NULL, proc_list},
        {CELLA__V1__OPCODE__OPCODE_PROC_SIGNAL, BROKER_CLASS_COSTLY, proc_signal_right,
         proc_signal},
        {0},
};
