/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libcella's typed calls: arguments checked against the limits of cella.h, packed
 * into the request message of proto/cella.proto, the reply unpacked into the public
 * structs. Results with strings or arrays are built as one allocation (measured in
 * a first pass, filled in a second) so the caller frees them with one cella_free().
 */
#include <errno.h>
#include <fcntl.h>
#include <stdalign.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/macro.h"
#include "wire/wire.h"
#include "lib/client.h"

/* 0 if s fits: NULL or "" only when optional, at most max bytes. -EINVAL otherwise. */
static int check_str(const char *s, size_t max, bool required)
{
        if (!s)
                return required ? -EINVAL : 0;
        if (required && !*s)
                return -EINVAL;
        return strnlen(s, max + 1) > max ? -EINVAL : 0;
}

static int check_payload(const void *data, size_t len)
{
        if (len > 0 && !data)
                return -EINVAL;
        return len > CELLA_PAYLOAD_MAX ? -EMSGSIZE : 0;
}

/* protobuf-c packs a NULL string as "" but only when it has a default; pass "". */
static char *str_or_empty(const char *s)
{
        return (char *)(s ? s : "");
}

/* Makes a synchronous call and unpacks the reply. ret_reply, if not NULL, gets the
 * reply itself (for its fds). */
static int call(Cella *c, uint16_t opcode, const ProtobufCMessage *req, ProtobufCMessage **ret,
                CellaReply **ret_reply)
{
        _cleanup_reply_ CellaReply *reply = NULL;
        int r;

        r = client_call(c, opcode, req, &reply);
        if (r < 0)
                return r;
        r = client_reply_unpack(reply, ret);
        if (r < 0)
                return r;
        if (ret_reply)
                *ret_reply = TAKE_PTR(reply);
        return 0;
}

/* ---- one-allocation results ---------------------------------------------------- */

typedef struct Block {
        uint8_t *base; /* NULL while measuring */
        size_t size;
} Block;

static void *block_alloc(Block *b, size_t n, size_t align)
{
        void *p;

        b->size = (b->size + align - 1) & ~(align - 1);
        p = b->base ? b->base + b->size : NULL;
        b->size += n;
        return p;
}

static char *block_str(Block *b, const char *s)
{
        size_t n;
        char *p;

        s = s ? s : "";
        n = strlen(s) + 1;
        p = block_alloc(b, n, 1);
        if (p)
                memcpy(p, s, n);
        return p;
}

static void *block_bytes(Block *b, const void *data, size_t n)
{
        void *p = block_alloc(b, n, 1);

        if (p && n > 0)
                memcpy(p, data, n);
        return p;
}

static char **block_strv(Block *b, char **v, size_t n)
{
        char **a = block_alloc(b, (n + 1) * sizeof(char *), alignof(char *));

        for (size_t i = 0; i < n; i++) {
                char *s = block_str(b, v[i]);

                if (a)
                        a[i] = s;
        }
        if (a)
                a[n] = NULL;
        return a;
}

/* Runs fn twice: to measure, then to fill one zeroed allocation; fn's first
 * block_alloc() is the result's root struct. */
static int block_build(void (*fn)(Block *b, const ProtobufCMessage *m), const ProtobufCMessage *m,
                       void **ret)
{
        Block b = {};

        fn(&b, m);
        b.base = calloc(1, b.size > 0 ? b.size : 1);
        if (!b.base)
                return -ENOMEM;
        b.size = 0;
        fn(&b, m);
        *ret = b.base;
        return 0;
}

/* ---- system -------------------------------------------------------------------- */

static void build_system_info(Block *b, const ProtobufCMessage *pm)
{
        const Cella__V1__SystemInfoReply *m = (const void *)pm;
        CellaSystemInfo *x = block_alloc(b, sizeof(*x), alignof(CellaSystemInfo));
        const char *v = block_str(b, m->cella_version), *n = block_str(b, m->os_name),
                   *rel = block_str(b, m->os_release), *mach = block_str(b, m->machine);

        if (x)
                *x = (CellaSystemInfo){
                        .cella_version = v,
                        .os_name = n,
                        .os_release = rel,
                        .machine = mach,
                        .cpu_count = m->cpu_count,
                        .memory_total_bytes = m->memory_total_bytes,
                        .memory_available_bytes = m->memory_available_bytes,
                };
}

int cella_system_info(Cella *c, CellaSystemInfo **ret)
{
        Cella__V1__SystemInfoRequest req = CELLA__V1__SYSTEM_INFO_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *m = NULL;
        int r;

        if (!ret)
                return -EINVAL;
        r = call(c, CELLA_OP_SYSTEM_INFO, &req.base, &m, NULL);
        if (r < 0)
                return r;
        return block_build(build_system_info, m, (void **)ret);
}

int cella_system_time(Cella *c, CellaTime *ret)
{
        Cella__V1__SystemTimeRequest req = CELLA__V1__SYSTEM_TIME_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *pm = NULL;
        const Cella__V1__SystemTimeReply *m;
        int r;

        if (!ret)
                return -EINVAL;
        r = call(c, CELLA_OP_SYSTEM_TIME, &req.base, &pm, NULL);
        if (r < 0)
                return r;
        m = (const void *)pm;
        *ret = (CellaTime){
                .realtime_ns = m->realtime_ns,
                .monotonic_ns = m->monotonic_ns,
                .utc_offset_s = m->utc_offset_s,
        };
        return 0;
}

int cella_system_uptime(Cella *c, CellaUptime *ret)
{
        Cella__V1__SystemUptimeRequest req = CELLA__V1__SYSTEM_UPTIME_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *pm = NULL;
        const Cella__V1__SystemUptimeReply *m;
        int r;

        if (!ret)
                return -EINVAL;
        r = call(c, CELLA_OP_SYSTEM_UPTIME, &req.base, &pm, NULL);
        if (r < 0)
                return r;
        m = (const void *)pm;
        *ret = (CellaUptime){
                .system_ns = m->system_ns,
                .kernel_ns = m->kernel_ns,
                .app_ns = m->app_ns,
        };
        return 0;
}

static void build_env(Block *b, const ProtobufCMessage *pm)
{
        const Cella__V1__SystemEnvReply *m = (const void *)pm;

        block_strv(b, m->env, m->n_env);
}

int cella_system_env(Cella *c, char ***ret)
{
        Cella__V1__SystemEnvRequest req = CELLA__V1__SYSTEM_ENV_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *m = NULL;
        int r;

        if (!ret)
                return -EINVAL;
        r = call(c, CELLA_OP_SYSTEM_ENV, &req.base, &m, NULL);
        if (r < 0)
                return r;
        return block_build(build_env, m, (void **)ret);
}

/* ---- proc ---------------------------------------------------------------------- */

static void build_proc_list(Block *b, const ProtobufCMessage *pm)
{
        const Cella__V1__ProcListReply *m = (const void *)pm;
        CellaProcList *x = block_alloc(b, sizeof(*x), alignof(CellaProcList));
        CellaProcess *p =
                block_alloc(b, m->n_processes * sizeof(CellaProcess), alignof(CellaProcess));

        for (size_t i = 0; i < m->n_processes; i++) {
                const Cella__V1__Process *q = m->processes[i];
                const char *name = block_str(b, q->name);

                if (p)
                        p[i] = (CellaProcess){
                                .pid = q->pid,
                                .ppid = q->ppid,
                                .name = name,
                                .state = q->state && q->state[0] ? q->state[0] : '?',
                                .rss_bytes = q->rss_bytes,
                                .cpu_time_ns = q->cpu_time_ns,
                                .start_time_ns = q->start_time_ns,
                        };
        }
        if (!x)
                return;
        x->n_processes = m->n_processes;
        x->processes = p;
        if (m->cgroup)
                x->cgroup = (CellaCgroupStats){
                        .memory_current_bytes = m->cgroup->memory_current_bytes,
                        .memory_limit_bytes = m->cgroup->memory_limit_bytes,
                        .pids_current = m->cgroup->pids_current,
                        .pids_limit = m->cgroup->pids_limit,
                        .cpu_usage_ns = m->cgroup->cpu_usage_ns,
                        .cpu_weight = m->cgroup->cpu_weight,
                        .cpu_quota_millis = m->cgroup->cpu_quota_millis,
                };
}

int cella_proc_list(Cella *c, CellaProcList **ret)
{
        Cella__V1__ProcListRequest req = CELLA__V1__PROC_LIST_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *m = NULL;
        int r;

        if (!ret)
                return -EINVAL;
        r = call(c, CELLA_OP_PROC_LIST, &req.base, &m, NULL);
        if (r < 0)
                return r;
        return block_build(build_proc_list, m, (void **)ret);
}

int cella_proc_signal(Cella *c, int pid, int signal)
{
        Cella__V1__ProcSignalRequest req = CELLA__V1__PROC_SIGNAL_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *m = NULL;

        if (pid <= 0 || signal < 1 || signal > 64)
                return -EINVAL;
        req.pid = pid;
        req.signal = signal;
        return call(c, CELLA_OP_PROC_SIGNAL, &req.base, &m, NULL);
}

/* ---- app ----------------------------------------------------------------------- */

static void build_app_info(Block *b, const ProtobufCMessage *pm)
{
        const Cella__V1__AppInfoReply *m = (const void *)pm;
        CellaAppInfo *x = block_alloc(b, sizeof(*x), alignof(CellaAppInfo));
        const char *id = block_str(b, m->id), *name = block_str(b, m->name),
                   *version = block_str(b, m->version), *kind = block_str(b, m->kind),
                   *runtime = block_str(b, m->runtime);
        char **requested = block_strv(b, m->requested, m->n_requested);
        char **granted = block_strv(b, m->granted, m->n_granted);

        if (!x)
                return;
        *x = (CellaAppInfo){
                .id = id,
                .name = name,
                .version = version,
                .kind = kind,
                .runtime = runtime,
                .requested = requested,
                .granted = granted,
        };
        if (m->limits)
                x->limits = (CellaAppLimits){
                        .memory_bytes = m->limits->memory_bytes,
                        .pids = m->limits->pids,
                        .cpu_millis = m->limits->cpu_millis,
                        .files = m->limits->files,
                        .storage_bytes = m->limits->storage_bytes,
                        .tmp_bytes = m->limits->tmp_bytes,
                };
}

int cella_app_info(Cella *c, CellaAppInfo **ret)
{
        Cella__V1__AppInfoRequest req = CELLA__V1__APP_INFO_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *m = NULL;
        int r;

        if (!ret)
                return -EINVAL;
        r = call(c, CELLA_OP_APP_INFO, &req.base, &m, NULL);
        if (r < 0)
                return r;
        return block_build(build_app_info, m, (void **)ret);
}

int cella_app_launch(Cella *c, const char *app_id, const char *action, const void *data, size_t len,
                     const char *content_type)
{
        Cella__V1__AppLaunchRequest req = CELLA__V1__APP_LAUNCH_REQUEST__INIT;
        Cella__V1__Intent intent = CELLA__V1__INTENT__INIT;
        _cleanup_unpacked_ ProtobufCMessage *pm = NULL;
        int r;

        if (check_str(app_id, CELLA_ID_MAX, true) < 0 ||
            check_str(action, CELLA_ACTION_MAX, false) < 0 ||
            check_str(content_type, CELLA_CONTENT_TYPE_MAX, false) < 0)
                return -EINVAL;
        r = check_payload(data, len);
        if (r < 0)
                return r;

        intent.action = str_or_empty(action);
        intent.data = (ProtobufCBinaryData){.len = len, .data = (uint8_t *)data};
        intent.content_type = str_or_empty(content_type);
        req.app_id = (char *)app_id;
        req.intent = &intent;
        r = call(c, CELLA_OP_APP_LAUNCH, &req.base, &pm, NULL);
        if (r < 0)
                return r;
        return ((const Cella__V1__AppLaunchReply *)(const void *)pm)->already_running ? 1 : 0;
}

/* ---- fs ------------------------------------------------------------------------ */

/* Maps open(2) flags onto FsOpenFlag bits; -EINVAL for anything else. */
static int fs_flags(int flags, uint32_t *ret)
{
        /* Not O_DIRECTORY: directories are never passed (cella_fs_list()). */
        const int allowed = O_ACCMODE | O_CREAT | O_EXCL | O_TRUNC | O_APPEND | O_CLOEXEC;
        uint32_t f = 0;

        if (flags & ~allowed)
                return -EINVAL;
        switch (flags & O_ACCMODE) {
        case O_RDONLY:
                f = CELLA__V1__FS_OPEN_FLAG__FS_OPEN_FLAG_READ;
                break;
        case O_WRONLY:
                f = CELLA__V1__FS_OPEN_FLAG__FS_OPEN_FLAG_WRITE;
                break;
        case O_RDWR:
                f = CELLA__V1__FS_OPEN_FLAG__FS_OPEN_FLAG_READ |
                    CELLA__V1__FS_OPEN_FLAG__FS_OPEN_FLAG_WRITE;
                break;
        default:
                return -EINVAL;
        }
        if (flags & O_CREAT)
                f |= CELLA__V1__FS_OPEN_FLAG__FS_OPEN_FLAG_CREATE;
        if (flags & O_EXCL)
                f |= CELLA__V1__FS_OPEN_FLAG__FS_OPEN_FLAG_EXCLUSIVE;
        if (flags & O_TRUNC)
                f |= CELLA__V1__FS_OPEN_FLAG__FS_OPEN_FLAG_TRUNCATE;
        if (flags & O_APPEND)
                f |= CELLA__V1__FS_OPEN_FLAG__FS_OPEN_FLAG_APPEND;
        *ret = f;
        return 0;
}

int cella_fs_open(Cella *c, const char *root, const char *path, int flags, unsigned mode,
                  int *ret_fd)
{
        Cella__V1__FsOpenRequest req = CELLA__V1__FS_OPEN_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *m = NULL;
        _cleanup_reply_ CellaReply *reply = NULL;
        uint32_t f;
        int r;

        if (!ret_fd || check_str(root, CELLA_ROOT_MAX, true) < 0 ||
            check_str(path, CELLA_PATH_MAX, true) < 0 || path[0] == '/' || mode > 0777)
                return -EINVAL;
        r = fs_flags(flags, &f);
        if (r < 0)
                return r;

        req.root = (char *)root;
        req.path = (char *)path;
        req.flags = f;
        req.mode = mode;
        r = call(c, CELLA_OP_FS_OPEN, &req.base, &m, &reply);
        if (r < 0)
                return r;
        /* wire_unpack() checked that exactly one fd came. */
        *ret_fd = cella_reply_take_fd(reply, 0);
        return 0;
}

/* 0 if root and path fit what every call on a root takes, -EINVAL otherwise. */
static int check_root_path(const char *root, const char *path)
{
        if (check_str(root, CELLA_ROOT_MAX, true) < 0 || check_str(path, CELLA_PATH_MAX, true) < 0)
                return -EINVAL;
        return 0;
}

static void build_fs_list(Block *b, const ProtobufCMessage *pm)
{
        const Cella__V1__FsListReply *m = (const void *)pm;
        CellaFsList *x = block_alloc(b, sizeof(*x), alignof(CellaFsList));
        CellaFsEntry *e =
                block_alloc(b, m->n_entries * sizeof(CellaFsEntry), alignof(CellaFsEntry));

        for (size_t i = 0; i < m->n_entries; i++) {
                const Cella__V1__FsEntry *q = m->entries[i];
                const char *name = block_str(b, q->name);

                if (e)
                        e[i] = (CellaFsEntry){
                                .name = name,
                                .type = (unsigned)q->type <= CELLA_FS_OTHER ? (CellaFsType)q->type
                                                                            : CELLA_FS_UNKNOWN,
                                .size_bytes = q->size_bytes,
                                .mtime_ns = q->mtime_ns,
                        };
        }
        if (!x)
                return;
        x->n_entries = m->n_entries;
        x->entries = e;
        x->next_cookie = m->next_cookie;
        x->end = m->end;
        x->skipped = m->skipped;
}

int cella_fs_list(Cella *c, const char *root, const char *path, uint64_t cookie,
                  unsigned max_entries, CellaFsList **ret)
{
        Cella__V1__FsListRequest req = CELLA__V1__FS_LIST_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *m = NULL;
        int r;

        if (!ret || check_root_path(root, path) < 0 || max_entries > CELLA_FS_LIST_MAX ||
            cookie > (uint64_t)INT64_MAX)
                return -EINVAL;
        req.root = (char *)root;
        req.path = (char *)path;
        req.cookie = cookie;
        req.max_entries = max_entries;
        r = call(c, CELLA_OP_FS_LIST, &req.base, &m, NULL);
        if (r < 0)
                return r;
        return block_build(build_fs_list, m, (void **)ret);
}

int cella_fs_stat(Cella *c, const char *root, const char *path, int flags, CellaFsStat *ret)
{
        Cella__V1__FsStatRequest req = CELLA__V1__FS_STAT_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *pm = NULL;
        const Cella__V1__FsStatReply *m;
        int r;

        if (!ret || check_root_path(root, path) < 0 || (flags & ~AT_SYMLINK_NOFOLLOW))
                return -EINVAL;
        req.root = (char *)root;
        req.path = (char *)path;
        req.no_follow = flags & AT_SYMLINK_NOFOLLOW;
        r = call(c, CELLA_OP_FS_STAT, &req.base, &pm, NULL);
        if (r < 0)
                return r;
        m = (const void *)pm;
        *ret = (CellaFsStat){
                .type = (unsigned)m->type <= CELLA_FS_OTHER ? (CellaFsType)m->type
                                                            : CELLA_FS_UNKNOWN,
                .mode = m->mode,
                .size_bytes = m->size_bytes,
                .mtime_ns = m->mtime_ns,
        };
        return 0;
}

int cella_fs_mkdir(Cella *c, const char *root, const char *path, unsigned mode)
{
        Cella__V1__FsMkdirRequest req = CELLA__V1__FS_MKDIR_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *pm = NULL;

        if (check_root_path(root, path) < 0 || mode > 0777)
                return -EINVAL;
        req.root = (char *)root;
        req.path = (char *)path;
        req.mode = mode;
        return call(c, CELLA_OP_FS_MKDIR, &req.base, &pm, NULL);
}

int cella_fs_rename(Cella *c, const char *root, const char *old_path, const char *new_path,
                    unsigned flags)
{
        Cella__V1__FsRenameRequest req = CELLA__V1__FS_RENAME_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *pm = NULL;

        if (check_root_path(root, old_path) < 0 || check_str(new_path, CELLA_PATH_MAX, true) < 0 ||
            (flags != 0 && flags != CELLA_FS_RENAME_NOREPLACE && flags != CELLA_FS_RENAME_EXCHANGE))
                return -EINVAL;
        req.root = (char *)root;
        req.old_path = (char *)old_path;
        req.new_path = (char *)new_path;
        req.flags = flags;
        return call(c, CELLA_OP_FS_RENAME, &req.base, &pm, NULL);
}

int cella_fs_unlink(Cella *c, const char *root, const char *path)
{
        Cella__V1__FsUnlinkRequest req = CELLA__V1__FS_UNLINK_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *pm = NULL;

        if (check_root_path(root, path) < 0)
                return -EINVAL;
        req.root = (char *)root;
        req.path = (char *)path;
        return call(c, CELLA_OP_FS_UNLINK, &req.base, &pm, NULL);
}

int cella_fs_usage(Cella *c, CellaFsUsage *ret)
{
        Cella__V1__FsUsageRequest req = CELLA__V1__FS_USAGE_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *pm = NULL;
        const Cella__V1__FsUsageReply *m;
        int r;

        if (!ret)
                return -EINVAL;
        r = call(c, CELLA_OP_FS_USAGE, &req.base, &pm, NULL);
        if (r < 0)
                return r;
        m = (const void *)pm;
        *ret = (CellaFsUsage){
                .data_used_bytes = m->data_used_bytes,
                .data_quota_bytes = m->data_quota_bytes,
                .tmp_used_bytes = m->tmp_used_bytes,
                .tmp_quota_bytes = m->tmp_quota_bytes,
        };
        return 0;
}

/* ---- timer --------------------------------------------------------------------- */

int cella_timer_create(Cella *c, uint64_t initial_ms, uint64_t interval_ms, uint64_t cookie,
                       uint64_t *ret_timer_id)
{
        Cella__V1__TimerCreateRequest req = CELLA__V1__TIMER_CREATE_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *pm = NULL;
        int r;

        if (!ret_timer_id || initial_ms > (1ull << 40) || interval_ms > (1ull << 40))
                return -EINVAL;
        req.initial_ms = initial_ms;
        req.interval_ms = interval_ms;
        req.cookie = cookie;
        r = call(c, CELLA_OP_TIMER_CREATE, &req.base, &pm, NULL);
        if (r < 0)
                return r;
        *ret_timer_id = ((const Cella__V1__TimerCreateReply *)(const void *)pm)->timer_id;
        return 0;
}

int cella_timer_cancel(Cella *c, uint64_t timer_id)
{
        Cella__V1__TimerCancelRequest req = CELLA__V1__TIMER_CANCEL_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *m = NULL;

        req.timer_id = timer_id;
        return call(c, CELLA_OP_TIMER_CANCEL, &req.base, &m, NULL);
}

/* ---- perm ---------------------------------------------------------------------- */

int cella_perm_query(Cella *c, const char *permission, CellaPermState *ret_state)
{
        Cella__V1__PermQueryRequest req = CELLA__V1__PERM_QUERY_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *pm = NULL;
        int r;

        if (!ret_state || check_str(permission, CELLA_PERMISSION_MAX, true) < 0)
                return -EINVAL;
        req.permission = (char *)permission;
        r = call(c, CELLA_OP_PERM_QUERY, &req.base, &pm, NULL);
        if (r < 0)
                return r;
        *ret_state = (CellaPermState)((const Cella__V1__PermQueryReply *)(const void *)pm)->state;
        return 0;
}

static int perm_request_build(const char *permission, const char *reason,
                              Cella__V1__PermRequestRequest *req)
{
        if (check_str(permission, CELLA_PERMISSION_MAX, true) < 0 ||
            check_str(reason, CELLA_REASON_MAX, false) < 0)
                return -EINVAL;
        req->permission = (char *)permission;
        req->reason = str_or_empty(reason);
        return 0;
}

int cella_perm_request_result(const CellaReply *reply, CellaPermState *ret_state,
                              bool *ret_one_time)
{
        _cleanup_unpacked_ ProtobufCMessage *pm = NULL;
        const Cella__V1__PermRequestReply *m;
        int r;

        if (!reply || !ret_state || reply->opcode != CELLA_OP_PERM_REQUEST)
                return -EINVAL;
        r = client_reply_unpack(reply, &pm);
        if (r < 0)
                return r;
        m = (const void *)pm;
        *ret_state = (CellaPermState)m->state;
        if (ret_one_time)
                *ret_one_time = m->one_time;
        return 0;
}

int cella_perm_request(Cella *c, const char *permission, const char *reason,
                       CellaPermState *ret_state, bool *ret_one_time)
{
        Cella__V1__PermRequestRequest req = CELLA__V1__PERM_REQUEST_REQUEST__INIT;
        _cleanup_reply_ CellaReply *reply = NULL;
        int r;

        if (!ret_state)
                return -EINVAL;
        r = perm_request_build(permission, reason, &req);
        if (r < 0)
                return r;
        r = client_call(c, CELLA_OP_PERM_REQUEST, &req.base, &reply);
        if (r < 0)
                return r;
        return cella_perm_request_result(reply, ret_state, ret_one_time);
}

int cella_perm_request_async(Cella *c, const char *permission, const char *reason, CellaReplyFn cb,
                             void *userdata, uint64_t *ret_request_id)
{
        Cella__V1__PermRequestRequest req = CELLA__V1__PERM_REQUEST_REQUEST__INIT;
        int r;

        r = perm_request_build(permission, reason, &req);
        if (r < 0)
                return r;
        return client_call_async(c, CELLA_OP_PERM_REQUEST, &req.base, cb, userdata, ret_request_id);
}

static void build_perm_list(Block *b, const ProtobufCMessage *pm)
{
        const Cella__V1__PermListReply *m = (const void *)pm;
        CellaPermList *x = block_alloc(b, sizeof(*x), alignof(CellaPermList));
        CellaPermEntry *e =
                block_alloc(b, m->n_permissions * sizeof(CellaPermEntry), alignof(CellaPermEntry));

        for (size_t i = 0; i < m->n_permissions; i++) {
                const Cella__V1__PermEntry *q = m->permissions[i];
                const char *name = block_str(b, q->permission);

                if (e)
                        e[i] = (CellaPermEntry){
                                .permission = name,
                                .state = (CellaPermState)q->state,
                                .level = (CellaPermLevel)q->level,
                                .one_time = q->one_time,
                        };
        }
        if (x)
                *x = (CellaPermList){.n_entries = m->n_permissions, .entries = e};
}

int cella_perm_list(Cella *c, CellaPermList **ret)
{
        Cella__V1__PermListRequest req = CELLA__V1__PERM_LIST_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *m = NULL;
        int r;

        if (!ret)
                return -EINVAL;
        r = call(c, CELLA_OP_PERM_LIST, &req.base, &m, NULL);
        if (r < 0)
                return r;
        return block_build(build_perm_list, m, (void **)ret);
}

/* ---- notify -------------------------------------------------------------------- */

int cella_notify_post(Cella *c, const char *title, const char *body, CellaUrgency urgency,
                      const char *tag, uint64_t *ret_notification_id)
{
        Cella__V1__NotifyPostRequest req = CELLA__V1__NOTIFY_POST_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *pm = NULL;
        int r;

        if (check_str(title, CELLA_TITLE_MAX, true) < 0 ||
            check_str(body, CELLA_TEXT_MAX, false) < 0 ||
            check_str(tag, CELLA_TAG_MAX, false) < 0 || (unsigned)urgency > CELLA_URGENCY_CRITICAL)
                return -EINVAL;
        req.title = (char *)title;
        req.body = str_or_empty(body);
        req.urgency = (Cella__V1__Urgency)urgency;
        req.tag = str_or_empty(tag);
        r = call(c, CELLA_OP_NOTIFY_POST, &req.base, &pm, NULL);
        if (r < 0)
                return r;
        if (ret_notification_id)
                *ret_notification_id =
                        ((const Cella__V1__NotifyPostReply *)(const void *)pm)->notification_id;
        return 0;
}

/* ---- memory -------------------------------------------------------------------- */

int cella_memory_stats(Cella *c, CellaMemoryStats *ret)
{
        Cella__V1__MemoryStatsRequest req = CELLA__V1__MEMORY_STATS_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *pm = NULL;
        const Cella__V1__MemoryStatsReply *m;
        int r;

        if (!ret)
                return -EINVAL;
        r = call(c, CELLA_OP_MEMORY_STATS, &req.base, &pm, NULL);
        if (r < 0)
                return r;
        m = (const void *)pm;
        *ret = (CellaMemoryStats){
                .current_bytes = m->current_bytes,
                .limit_bytes = m->limit_bytes,
                .peak_bytes = m->peak_bytes,
                .swap_bytes = m->swap_bytes,
                .anon_bytes = m->anon_bytes,
                .file_bytes = m->file_bytes,
                .level = (CellaMemoryLevel)m->level,
                .pressure_some_avg10 = m->pressure_some_avg10,
        };
        return 0;
}

/* ---- bus ----------------------------------------------------------------------- */

int cella_bus_publish(Cella *c, const char *topic, const void *data, size_t len,
                      const char *content_type)
{
        Cella__V1__BusPublishRequest req = CELLA__V1__BUS_PUBLISH_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *pm = NULL;
        uint32_t delivered;
        int r;

        if (check_str(topic, CELLA_TOPIC_MAX, true) < 0 ||
            check_str(content_type, CELLA_CONTENT_TYPE_MAX, false) < 0)
                return -EINVAL;
        r = check_payload(data, len);
        if (r < 0)
                return r;
        req.topic = (char *)topic;
        req.data = (ProtobufCBinaryData){.len = len, .data = (uint8_t *)data};
        req.content_type = str_or_empty(content_type);
        r = call(c, CELLA_OP_BUS_PUBLISH, &req.base, &pm, NULL);
        if (r < 0)
                return r;
        delivered = ((const Cella__V1__BusPublishReply *)(const void *)pm)->delivered;
        return delivered > INT32_MAX ? INT32_MAX : (int)delivered;
}

/* ---- bus.publish_batch ---- */

_Static_assert(CELLA_BUS_BATCH_MAX <= SIZE_MAX / sizeof(Cella__V1__BusPublishRequest), "bound");

/* The request of a batch: n structs and their pointer array, one allocation. */
typedef struct Batch {
        Cella__V1__BusPublishBatchRequest req;
        Cella__V1__BusPublishRequest *ptr[CELLA_BUS_BATCH_MAX];
        Cella__V1__BusPublishRequest msg[];
} Batch;

static void batch_freep(Batch **b)
{
        free(*b);
}

/* Checks msgs[0..n) against cella.h's bounds and builds the request (free() it). The
 * distinct-topic bound and the body size are left to the kernel and to packing. */
static int batch_build(const CellaBusMessage *msgs, size_t n, Batch **ret)
{
        Batch *b;
        int r;

        if (!msgs || n == 0 || n > CELLA_BUS_BATCH_MAX)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                if (check_str(msgs[i].topic, CELLA_TOPIC_MAX, true) < 0 ||
                    check_str(msgs[i].content_type, CELLA_CONTENT_TYPE_MAX, false) < 0)
                        return -EINVAL;
                r = check_payload(msgs[i].data, msgs[i].len);
                if (r < 0)
                        return r;
        }
        b = malloc(sizeof *b + n * sizeof b->msg[0]);
        if (!b)
                return -ENOMEM;
        b->req = (Cella__V1__BusPublishBatchRequest)CELLA__V1__BUS_PUBLISH_BATCH_REQUEST__INIT;
        for (size_t i = 0; i < n; i++) {
                b->msg[i] = (Cella__V1__BusPublishRequest)CELLA__V1__BUS_PUBLISH_REQUEST__INIT;
                b->msg[i].topic = (char *)msgs[i].topic;
                b->msg[i].data =
                        (ProtobufCBinaryData){.len = msgs[i].len, .data = (uint8_t *)msgs[i].data};
                b->msg[i].content_type = str_or_empty(msgs[i].content_type);
                b->ptr[i] = &b->msg[i];
        }
        b->req.n_messages = n;
        b->req.messages = b->ptr;
        *ret = b;
        return 0;
}

size_t cella_bus_batch_fit(const CellaBusMessage *msgs, size_t n)
{
        size_t body = 0, i;

        if (!msgs)
                return 0;
        for (i = 0; i < n && i < CELLA_BUS_BATCH_MAX; i++) {
                Cella__V1__BusPublishRequest m = CELLA__V1__BUS_PUBLISH_REQUEST__INIT;
                size_t len, v = 1;

                m.topic = str_or_empty(msgs[i].topic);
                m.data = (ProtobufCBinaryData){.len = msgs[i].len, .data = (uint8_t *)msgs[i].data};
                m.content_type = str_or_empty(msgs[i].content_type);
                len = protobuf_c_message_get_packed_size(&m.base);
                for (size_t x = len; x >= 0x80; x >>= 7)
                        v++;
                /* field 1's tag, the length, the message */
                if (1 + v + len > CELLA_BODY_MAX - body)
                        break;
                body += 1 + v + len;
        }
        return i;
}

int cella_bus_publish_batch_result(const CellaReply *reply, uint64_t *ret_delivered)
{
        _cleanup_unpacked_ ProtobufCMessage *m = NULL;
        int r;

        if (!reply || reply->opcode != CELLA_OP_BUS_PUBLISH_BATCH)
                return -EINVAL;
        r = client_reply_unpack(reply, &m);
        if (r < 0)
                return r;
        if (ret_delivered)
                *ret_delivered =
                        ((const Cella__V1__BusPublishBatchReply *)(const void *)m)->delivered;
        return 0;
}

int cella_bus_publish_batch(Cella *c, const CellaBusMessage *msgs, size_t n,
                            uint64_t *ret_delivered)
{
        _cleanup_(batch_freep) Batch *b = NULL;
        _cleanup_reply_ CellaReply *reply = NULL;
        int r;

        r = batch_build(msgs, n, &b);
        if (r < 0)
                return r;
        r = client_call(c, CELLA_OP_BUS_PUBLISH_BATCH, &b->req.base, &reply);
        if (r < 0)
                return r;
        return cella_bus_publish_batch_result(reply, ret_delivered);
}

int cella_bus_publish_batch_async(Cella *c, const CellaBusMessage *msgs, size_t n, CellaReplyFn cb,
                                  void *userdata, uint64_t *ret_request_id)
{
        _cleanup_(batch_freep) Batch *b = NULL;
        int r;

        r = batch_build(msgs, n, &b);
        if (r < 0)
                return r;
        return client_call_async(c, CELLA_OP_BUS_PUBLISH_BATCH, &b->req.base, cb, userdata,
                                 ret_request_id);
}

/*
 * Hands each message of a BusMessagesEvent body (len bytes) to the app's event
 * callback as its own CELLA_EVENT_BUS_MESSAGE, in order (client.h). The body is decoded
 * whole first, so a frame that does not decode delivers nothing here. Each event's
 * body is that message's own encoding: the frame is walked alongside the decoded
 * array, whose entries protobuf-c keeps in wire order.
 */
int client_event_bus_messages(Cella *c, const void *body, size_t len)
{
        _cleanup_unpacked_ ProtobufCMessage *pm = NULL;
        const Cella__V1__BusMessagesEvent *m;
        const uint8_t *p = body, *end = p + len;
        ChannelFrame f = {
                .opcode = CELLA_EVENT_BUS_MESSAGES,
                .flags = CHANNEL_FLAG_EVENT,
                .body = body,
                .body_len = len,
        };
        size_t i = 0;
        int r;

        r = wire_unpack(&f, &pm);
        if (r < 0)
                return r;
        m = (const void *)pm;
        while (p < end && i < m->n_messages) {
                const Cella__V1__BusMessageEvent *x = m->messages[i];
                ChannelField fl;
                CellaEvent ev;

                /* wire_unpack() accepted the body: the walk cannot fail, but stays
                 * bounded by it anyway. */
                if (channel_next_field(&p, end, &fl) < 0)
                        return -EBADMSG;
                if (fl.number != 1 || fl.wire_type != 2)
                        continue; /* a field of a later version */
                ev = (CellaEvent){
                        .opcode = CELLA_EVENT_BUS_MESSAGE,
                        .decoded = true,
                        .body = fl.data,
                        .body_len = fl.len,
                        .bus =
                                {
                                        .subscription_id = x->subscription_id,
                                        .topic = x->topic,
                                        .sender = x->sender,
                                        .data = x->data.data,
                                        .len = x->data.len,
                                        .content_type = x->content_type,
                                        .reply_token = x->reply_token,
                                },
                };
                i++;
                client_event_emit(c, &ev);
        }
        return 0;
}

int cella_bus_subscribe(Cella *c, const char *pattern, uint64_t *ret_subscription_id)
{
        Cella__V1__BusSubscribeRequest req = CELLA__V1__BUS_SUBSCRIBE_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *pm = NULL;
        int r;

        if (!ret_subscription_id || check_str(pattern, CELLA_TOPIC_MAX, true) < 0)
                return -EINVAL;
        req.pattern = (char *)pattern;
        req.batch = true; /* client_event_bus_messages() splits the batched frames */
        r = call(c, CELLA_OP_BUS_SUBSCRIBE, &req.base, &pm, NULL);
        if (r < 0)
                return r;
        *ret_subscription_id =
                ((const Cella__V1__BusSubscribeReply *)(const void *)pm)->subscription_id;
        return 0;
}

int cella_bus_unsubscribe(Cella *c, uint64_t subscription_id)
{
        Cella__V1__BusUnsubscribeRequest req = CELLA__V1__BUS_UNSUBSCRIBE_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *m = NULL;

        req.subscription_id = subscription_id;
        return call(c, CELLA_OP_BUS_UNSUBSCRIBE, &req.base, &m, NULL);
}

int cella_bus_send(Cella *c, const char *app_id, const void *data, size_t len,
                   const char *content_type)
{
        Cella__V1__BusSendRequest req = CELLA__V1__BUS_SEND_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *m = NULL;
        int r;

        if (check_str(app_id, CELLA_ID_MAX, true) < 0 ||
            check_str(content_type, CELLA_CONTENT_TYPE_MAX, false) < 0)
                return -EINVAL;
        r = check_payload(data, len);
        if (r < 0)
                return r;
        req.app_id = (char *)app_id;
        req.data = (ProtobufCBinaryData){.len = len, .data = (uint8_t *)data};
        req.content_type = str_or_empty(content_type);
        return call(c, CELLA_OP_BUS_SEND, &req.base, &m, NULL);
}

static int bus_request_build(const char *app_id, const char *topic, const void *data, size_t len,
                             const char *content_type, uint32_t timeout_ms,
                             Cella__V1__BusRequestRequest *req)
{
        if (check_str(app_id, CELLA_ID_MAX, true) < 0 ||
            check_str(topic, CELLA_TOPIC_MAX, true) < 0 ||
            check_str(content_type, CELLA_CONTENT_TYPE_MAX, false) < 0 || timeout_ms > 600000)
                return -EINVAL;
        req->app_id = (char *)app_id;
        req->topic = (char *)topic;
        req->data = (ProtobufCBinaryData){.len = len, .data = (uint8_t *)data};
        req->content_type = str_or_empty(content_type);
        req->timeout_ms = timeout_ms;
        return check_payload(data, len);
}

static void build_bus_reply(Block *b, const ProtobufCMessage *pm)
{
        const Cella__V1__BusRequestReply *m = (const void *)pm;
        CellaBusReply *x = block_alloc(b, sizeof(*x), alignof(CellaBusReply));
        const void *data = block_bytes(b, m->data.data, m->data.len);
        const char *ct = block_str(b, m->content_type), *responder = block_str(b, m->responder);

        if (x)
                *x = (CellaBusReply){
                        .data = data,
                        .len = m->data.len,
                        .content_type = ct,
                        .responder = responder,
                };
}

int cella_bus_request_result(const CellaReply *reply, CellaBusReply **ret)
{
        _cleanup_unpacked_ ProtobufCMessage *m = NULL;
        int r;

        if (!reply || !ret || reply->opcode != CELLA_OP_BUS_REQUEST)
                return -EINVAL;
        r = client_reply_unpack(reply, &m);
        if (r < 0)
                return r;
        return block_build(build_bus_reply, m, (void **)ret);
}

int cella_bus_request(Cella *c, const char *app_id, const char *topic, const void *data, size_t len,
                      const char *content_type, uint32_t timeout_ms, CellaBusReply **ret)
{
        Cella__V1__BusRequestRequest req = CELLA__V1__BUS_REQUEST_REQUEST__INIT;
        _cleanup_reply_ CellaReply *reply = NULL;
        int r;

        if (!ret)
                return -EINVAL;
        r = bus_request_build(app_id, topic, data, len, content_type, timeout_ms, &req);
        if (r < 0)
                return r;
        r = client_call(c, CELLA_OP_BUS_REQUEST, &req.base, &reply);
        if (r < 0)
                return r;
        return cella_bus_request_result(reply, ret);
}

int cella_bus_request_async(Cella *c, const char *app_id, const char *topic, const void *data,
                            size_t len, const char *content_type, uint32_t timeout_ms,
                            CellaReplyFn cb, void *userdata, uint64_t *ret_request_id)
{
        Cella__V1__BusRequestRequest req = CELLA__V1__BUS_REQUEST_REQUEST__INIT;
        int r;

        r = bus_request_build(app_id, topic, data, len, content_type, timeout_ms, &req);
        if (r < 0)
                return r;
        return client_call_async(c, CELLA_OP_BUS_REQUEST, &req.base, cb, userdata, ret_request_id);
}

int cella_bus_reply(Cella *c, uint64_t reply_token, int error, const void *data, size_t len,
                    const char *content_type)
{
        Cella__V1__BusReplyRequest req = CELLA__V1__BUS_REPLY_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *m = NULL;
        int r;

        if (reply_token == 0 || error > 0 || error < -4095 ||
            check_str(content_type, CELLA_CONTENT_TYPE_MAX, false) < 0)
                return -EINVAL;
        r = check_payload(data, len);
        if (r < 0)
                return r;
        req.reply_token = reply_token;
        req.errnum = -error;
        req.data = (ProtobufCBinaryData){.len = len, .data = (uint8_t *)data};
        req.content_type = str_or_empty(content_type);
        return call(c, CELLA_OP_BUS_REPLY, &req.base, &m, NULL);
}

/* ---- net --------------------------------------------------------------------------- */

int cella_net_connect(Cella *c, const char *host, unsigned port, CellaNetProto proto,
                      CellaNetInfo *info)
{
        Cella__V1__NetConnectRequest req = CELLA__V1__NET_CONNECT_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *m = NULL;
        _cleanup_reply_ CellaReply *reply = NULL;
        const Cella__V1__NetConnectReply *rep;
        int r;

        if (info)
                memset(info, 0, sizeof(*info));
        /* 253: a DNS name; an IPv6 literal with brackets and a zone is shorter. */
        if (check_str(host, 253 + 2, true) < 0 || port == 0 || port > 65535 ||
            (proto != CELLA_NET_TCP && proto != CELLA_NET_UDP))
                return -EINVAL;
        req.host = (char *)host;
        req.port = port;
        req.proto = proto == CELLA_NET_UDP ? CELLA__V1__NET_PROTO__NET_PROTO_UDP
                                           : CELLA__V1__NET_PROTO__NET_PROTO_TCP;
        r = client_call(c, CELLA_OP_NET_CONNECT, &req.base, &reply);
        if (r < 0)
                return r;
        if (reply->error) {
                if (info)
                        snprintf(info->why, sizeof(info->why), "%s", reply->error_message);
                return reply->error;
        }
        r = client_reply_unpack(reply, &m);
        if (r < 0)
                return r;
        rep = (const Cella__V1__NetConnectReply *)m;
        if (info) {
                snprintf(info->address, sizeof(info->address), "%s", rep->address);
                snprintf(info->right, sizeof(info->right), "%s", rep->right);
                info->connection_id = rep->connection_id;
        }
        /* wire_unpack() checked that exactly one fd came. */
        return cella_reply_take_fd(reply, 0);
}

/* ---- keystore (docs/ipc.md) --------------------------------------------- */

static int check_key_name(const char *name)
{
        if (check_str(name, CELLA_KEY_NAME_MAX, true) < 0)
                return -EINVAL;
        for (const char *p = name; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' ||
                      *p == '.' || *p == '-'))
                        return -EINVAL;
        return 0;
}

/* Copies a public key of a reply (32 bytes, else -EBADMSG) to pub (may be NULL). */
static int copy_public(const ProtobufCBinaryData *b, uint8_t *pub)
{
        if (b->len != CELLA_KEY_PUBLIC_BYTES)
                return -EBADMSG;
        if (pub)
                memcpy(pub, b->data, CELLA_KEY_PUBLIC_BYTES);
        return 0;
}

int cella_keystore_create(Cella *c, const char *name, CellaKeyKind kind, uint8_t *pub)
{
        Cella__V1__KeystoreCreateRequest req = CELLA__V1__KEYSTORE_CREATE_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *pm = NULL;
        const Cella__V1__KeystoreCreateReply *m;
        int r;

        if (check_key_name(name) < 0 ||
            (kind != CELLA_KEY_ED25519 && kind != CELLA_KEY_X25519 && kind != CELLA_KEY_SECRET))
                return -EINVAL;
        req.name = (char *)name;
        req.kind = (Cella__V1__KeystoreKind)kind;
        r = call(c, CELLA_OP_KEYSTORE_CREATE, &req.base, &pm, NULL);
        if (r < 0)
                return r;
        m = (const void *)pm;
        if (kind == CELLA_KEY_SECRET) {
                if (pub)
                        memset(pub, 0, CELLA_KEY_PUBLIC_BYTES);
                return 0;
        }
        return copy_public(&m->public_key, pub);
}

int cella_keystore_sign(Cella *c, const char *name, const void *data, size_t len,
                        uint8_t sig[CELLA_KEY_SIG_BYTES])
{
        Cella__V1__KeystoreSignRequest req = CELLA__V1__KEYSTORE_SIGN_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *pm = NULL;
        const Cella__V1__KeystoreSignReply *m;
        int r;

        if (check_key_name(name) < 0 || !sig || (!data && len))
                return -EINVAL;
        if (len > CELLA_KEY_DATA_MAX)
                return -EMSGSIZE;
        req.name = (char *)name;
        req.data = (ProtobufCBinaryData){.data = (uint8_t *)data, .len = len};
        r = call(c, CELLA_OP_KEYSTORE_SIGN, &req.base, &pm, NULL);
        if (r < 0)
                return r;
        m = (const void *)pm;
        if (m->signature.len != CELLA_KEY_SIG_BYTES)
                return -EBADMSG;
        memcpy(sig, m->signature.data, CELLA_KEY_SIG_BYTES);
        return 0;
}

int cella_keystore_verify(Cella *c, const uint8_t pub[CELLA_KEY_PUBLIC_BYTES], const void *data,
                          size_t len, const uint8_t sig[CELLA_KEY_SIG_BYTES])
{
        Cella__V1__KeystoreVerifyRequest req = CELLA__V1__KEYSTORE_VERIFY_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *pm = NULL;
        int r;

        if (!pub || !sig || (!data && len))
                return -EINVAL;
        if (len > CELLA_KEY_DATA_MAX)
                return -EMSGSIZE;
        req.public_key =
                (ProtobufCBinaryData){.data = (uint8_t *)pub, .len = CELLA_KEY_PUBLIC_BYTES};
        req.data = (ProtobufCBinaryData){.data = (uint8_t *)data, .len = len};
        req.signature = (ProtobufCBinaryData){.data = (uint8_t *)sig, .len = CELLA_KEY_SIG_BYTES};
        r = call(c, CELLA_OP_KEYSTORE_VERIFY, &req.base, &pm, NULL);
        if (r < 0)
                return r;
        return ((const Cella__V1__KeystoreVerifyReply *)(const void *)pm)->valid ? 0 : -EBADMSG;
}

/* Copies a reply's bytes b into out (out_size bytes): -ENOBUFS if they do not fit. */
static int copy_out(const ProtobufCBinaryData *b, void *out, size_t out_size, size_t *ret_len)
{
        if (b->len > out_size)
                return -ENOBUFS;
        if (b->len)
                memcpy(out, b->data, b->len);
        if (ret_len)
                *ret_len = b->len;
        return 0;
}

int cella_keystore_seal(Cella *c, const char *name, const void *pt, size_t len, const void *ad,
                        size_t ad_len, void *box, size_t box_size, size_t *ret_len)
{
        Cella__V1__KeystoreSealRequest req = CELLA__V1__KEYSTORE_SEAL_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *pm = NULL;
        int r;

        if (check_key_name(name) < 0 || !box || (!pt && len) || (!ad && ad_len))
                return -EINVAL;
        if (len > CELLA_KEY_DATA_MAX || ad_len > CELLA_KEY_AD_MAX)
                return -EMSGSIZE;
        if (box_size < len + CELLA_KEY_BOX_OVERHEAD)
                return -ENOBUFS;
        req.name = (char *)name;
        req.plaintext = (ProtobufCBinaryData){.data = (uint8_t *)pt, .len = len};
        req.associated_data = (ProtobufCBinaryData){.data = (uint8_t *)ad, .len = ad_len};
        r = call(c, CELLA_OP_KEYSTORE_SEAL, &req.base, &pm, NULL);
        if (r < 0)
                return r;
        return copy_out(&((const Cella__V1__KeystoreSealReply *)(const void *)pm)->box, box,
                        box_size, ret_len);
}

int cella_keystore_seal_to(Cella *c, const uint8_t pub[CELLA_KEY_PUBLIC_BYTES], const void *pt,
                           size_t len, void *box, size_t box_size, size_t *ret_len)
{
        Cella__V1__KeystoreSealRequest req = CELLA__V1__KEYSTORE_SEAL_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *pm = NULL;
        int r;

        if (!pub || !box || (!pt && len))
                return -EINVAL;
        if (len > CELLA_KEY_DATA_MAX)
                return -EMSGSIZE;
        if (box_size < len + CELLA_KEY_SEALED_OVERHEAD)
                return -ENOBUFS;
        req.public_key =
                (ProtobufCBinaryData){.data = (uint8_t *)pub, .len = CELLA_KEY_PUBLIC_BYTES};
        req.plaintext = (ProtobufCBinaryData){.data = (uint8_t *)pt, .len = len};
        r = call(c, CELLA_OP_KEYSTORE_SEAL, &req.base, &pm, NULL);
        if (r < 0)
                return r;
        return copy_out(&((const Cella__V1__KeystoreSealReply *)(const void *)pm)->box, box,
                        box_size, ret_len);
}

int cella_keystore_open(Cella *c, const char *name, const void *box, size_t len, const void *ad,
                        size_t ad_len, void *pt, size_t pt_size, size_t *ret_len)
{
        Cella__V1__KeystoreOpenRequest req = CELLA__V1__KEYSTORE_OPEN_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *pm = NULL;
        int r;

        if (check_key_name(name) < 0 || !pt || (!box && len) || (!ad && ad_len))
                return -EINVAL;
        if (len > CELLA_KEY_DATA_MAX + CELLA_KEY_SEALED_OVERHEAD || ad_len > CELLA_KEY_AD_MAX)
                return -EMSGSIZE;
        req.name = (char *)name;
        req.box = (ProtobufCBinaryData){.data = (uint8_t *)box, .len = len};
        req.associated_data = (ProtobufCBinaryData){.data = (uint8_t *)ad, .len = ad_len};
        r = call(c, CELLA_OP_KEYSTORE_OPEN, &req.base, &pm, NULL);
        if (r < 0)
                return r;
        return copy_out(&((const Cella__V1__KeystoreOpenReply *)(const void *)pm)->plaintext, pt,
                        pt_size, ret_len);
}

int cella_keystore_public_key(Cella *c, const char *name, CellaKeyKind *ret_kind, uint8_t *pub)
{
        Cella__V1__KeystorePublicKeyRequest req = CELLA__V1__KEYSTORE_PUBLIC_KEY_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *pm = NULL;
        const Cella__V1__KeystorePublicKeyReply *m;
        int r;

        if (check_key_name(name) < 0)
                return -EINVAL;
        req.name = (char *)name;
        r = call(c, CELLA_OP_KEYSTORE_PUBLIC_KEY, &req.base, &pm, NULL);
        if (r < 0)
                return r;
        m = (const void *)pm;
        if (ret_kind)
                *ret_kind = (CellaKeyKind)m->kind;
        return copy_public(&m->public_key, pub);
}

int cella_keystore_peer_public_key(Cella *c, const char *app_id, const char *name,
                                   CellaKeyKind *ret_kind, uint8_t *pub)
{
        Cella__V1__KeystorePeerPublicKeyRequest req =
                CELLA__V1__KEYSTORE_PEER_PUBLIC_KEY_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *pm = NULL;
        const Cella__V1__KeystorePeerPublicKeyReply *m;
        int r;

        if (check_str(app_id, CELLA_ID_MAX, true) < 0 || check_key_name(name) < 0)
                return -EINVAL;
        req.app_id = (char *)app_id;
        req.name = (char *)name;
        r = call(c, CELLA_OP_KEYSTORE_PEER_PUBLIC_KEY, &req.base, &pm, NULL);
        if (r < 0)
                return r;
        m = (const void *)pm;
        if (ret_kind)
                *ret_kind = (CellaKeyKind)m->kind;
        return copy_public(&m->public_key, pub);
}

int cella_keystore_delete(Cella *c, const char *name)
{
        Cella__V1__KeystoreDeleteRequest req = CELLA__V1__KEYSTORE_DELETE_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *pm = NULL;

        if (check_key_name(name) < 0)
                return -EINVAL;
        req.name = (char *)name;
        return call(c, CELLA_OP_KEYSTORE_DELETE, &req.base, &pm, NULL);
}

int cella_keystore_list(Cella *c, CellaKey **ret, size_t *ret_n, unsigned *ret_keys_max)
{
        Cella__V1__KeystoreListRequest req = CELLA__V1__KEYSTORE_LIST_REQUEST__INIT;
        _cleanup_unpacked_ ProtobufCMessage *pm = NULL;
        const Cella__V1__KeystoreListReply *m;
        CellaKey *v;
        int r;

        if (!ret || !ret_n)
                return -EINVAL;
        r = call(c, CELLA_OP_KEYSTORE_LIST, &req.base, &pm, NULL);
        if (r < 0)
                return r;
        m = (const void *)pm;
        v = calloc(m->n_keys ?: 1, sizeof *v);
        if (!v)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_keys; i++) {
                const Cella__V1__KeystoreKey *k = m->keys[i];

                snprintf(v[i].name, sizeof v[i].name, "%s", k->name ? k->name : "");
                v[i].kind = (CellaKeyKind)k->kind;
                if (k->public_key.len == CELLA_KEY_PUBLIC_BYTES)
                        memcpy(v[i].public_key, k->public_key.data, CELLA_KEY_PUBLIC_BYTES);
                v[i].created_ms = k->created_ms;
        }
        *ret = v;
        *ret_n = m->n_keys;
        if (ret_keys_max)
                *ret_keys_max = m->keys_max;
        return 0;
}
