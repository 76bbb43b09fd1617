/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The store's methods on cellad's control socket (docs/api.md, "org.cella.Install"
 * and after): org.cella.Install, org.cella.Update, org.cella.Remove,
 * org.cella.ClearData (access MANAGE) and org.cella.List (READ).
 *
 * Install and Update take the bundle as the request's first fd (SCM_RIGHTS), never
 * a path: the daemon opens nothing a client names. The fd must be a sealed memfd
 * (F_SEAL_WRITE, F_SEAL_SHRINK, F_SEAL_GROW), which the CLI makes: its bytes cannot
 * change while the store reads them, and reading it cannot block (a pipe, a socket
 * or a file on a FUSE mount the client serves could stall the daemon). The install
 * itself (extraction, checks, fsync, the claim of a new id) runs on libuv's thread
 * pool, so the loop keeps serving apps and clients meanwhile; the store's flock
 * serialises installs. So does the question Remove and ClearData ask every other
 * kernel (control_ask_kernels(), which this daemon's own socket answers meanwhile),
 * and their change itself: the files, the /data image, the grants and state.db
 * records removed, which may take seconds (an app of many files, a large /data).
 * What runs there leaves its outcome in the job, logged and replied on the loop (the
 * loop's log writer is not for threads); the one message it may print itself is
 * state_dir_open()'s about a state directory that went bad under the daemon.
 *
 * The store's changes of this daemon run one at a time, in the order they were
 * asked for (StoreTask): an install of an id never runs between the removal of
 * that id's files and the forgetting of its claim in state.db. While a Remove or
 * ClearData of an app is under way, its starts are refused (store_app_dir_of(): a
 * start re-reads the installed version, reload.c). The store's work in flight is
 * bounded: STORE_TASKS_MAX in all, STORE_TASKS_PER_USER for each caller who is not
 * root (org.cella.LimitReached past either), so that a manager's requests cannot
 * take every thread of libuv's pool or the daemon's memory.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit.h"
#include "base/log.h"
#include "base/macro.h"
#include "base/strv.h"
#include "base/time-util.h"
#include "daemon/daemon-internal.h"
#include "policy/grants.h"
#include "policy/manifest.h"
#include "policy/signature.h"
#include "store/store.h"
#include "supervisor/exec.h"
#include "supervisor/forget.h"
#include "supervisor/state.h"
#include "supervisor/storage.h"
#include "supervisor/supervisor.h"

/* Error names of the store's methods (docs/api.md, "org.cella.Install" and after). */
#define STORE_ERROR_INVALID_BUNDLE  "org.cella.InvalidBundle"
#define STORE_ERROR_APP_EXISTS      "org.cella.AppExists"
#define STORE_ERROR_NOT_NEWER       "org.cella.NotNewer"
#define STORE_ERROR_SIGNER_MISMATCH "org.cella.SignerMismatch"
#define STORE_ERROR_ID_TAKEN        "org.cella.IdTaken"

#define REQUIRED_SEALS (F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW)

/* Store requests (Install, Update, Remove, ClearData) in flight at once: in all, and
 * for one caller who is not root. An install holds its bundle's memfd; each waits
 * for the one before it. */
#define STORE_TASKS_MAX      64u
#define STORE_TASKS_PER_USER 8u

/*
 * A store request from its acceptance to its reply: counted for the bounds (all
 * tasks in `tasks`), and its change run on the thread pool after the one before
 * (the queue). A task whose change has not begun when its client goes away is
 * dropped (drop()).
 */
typedef struct StoreTask StoreTask;
struct StoreTask {
        StoreTask *next; /* in tasks */
        StoreTask *next_queued;
        uv_work_t work; /* .data: the Job or Change */
        uv_work_cb run;
        uv_after_work_cb after;
        void (*drop)(StoreTask *t); /* frees a task whose change never ran */
        uid_t uid;
        const char *changing; /* the app a Remove or ClearData changes: no start meanwhile */
        bool queued, running;
};

static StoreTask *tasks; /* every task accepted and not ended */
static StoreTask *queue_head, *queue_tail;
static bool queue_busy; /* a task's change runs on the pool */
static uv_loop_t *queue_loop;

/* Accepts t for a caller of uid, its change to be run(data) on the thread pool,
 * after(data) on the loop, or drop(t) if it never runs: 0, or -EUSERS (the
 * caller's bound) / -EBUSY (the daemon's), replied by the caller of this. */
static int task_accept(StoreTask *t, void *data, uv_work_cb run, uv_after_work_cb after,
                       void (*drop)(StoreTask *t), uid_t uid)
{
        unsigned all = 0, mine = 0;

        t->work.data = data;
        t->run = run;
        t->after = after;
        t->drop = drop;

        for (StoreTask *x = tasks; x; x = x->next) {
                all++;
                mine += x->uid == uid;
        }
        if (all >= STORE_TASKS_MAX)
                return -EBUSY;
        if (uid != 0 && mine >= STORE_TASKS_PER_USER)
                return -EUSERS;
        t->uid = uid;
        t->next = tasks;
        tasks = t;
        return 0;
}

/* t ends (its reply is made, or nobody waits for it). */
static void task_end(StoreTask *t)
{
        for (StoreTask **p = &tasks; *p; p = &(*p)->next)
                if (*p == t) {
                        *p = t->next;
                        return;
                }
}

/* The limit reply for task_accept()'s r. */
static int reply_limit(ControlCall *call, int r)
{
        char msg[256];
        unsigned limit = r == -EUSERS ? STORE_TASKS_PER_USER : STORE_TASKS_MAX;

        snprintf(msg, sizeof msg,
                 r == -EUSERS ? "you have %u store requests (install, update, remove, "
                                "clear-data) in flight already: wait for one to end"
                              : "cellad has %u store requests (install, update, remove, "
                                "clear-data) in flight: try again later",
                 limit);
        return control_reply_error(
                call, DAEMON_ERROR_LIMIT_REACHED,
                json_pack("{s:s, s:s, s:i}", "message", msg, "limit",
                          r == -EUSERS ? "store_requests_per_user" : "store_requests", "value",
                          (int)limit));
}

static void queue_after(uv_work_t *w, int status);

/* Starts the next queued change, if none runs. */
static void queue_next(void)
{
        while (!queue_busy && queue_head) {
                StoreTask *t = queue_head;
                int r;

                queue_busy = true;
                t->running = true;
                r = uv_queue_work(queue_loop, &t->work, t->run, queue_after);
                if (r >= 0)
                        return;
                /* Never began: its after hears why, as a cancelled work would. */
                queue_after(&t->work, r);
        }
}

static void queue_after(uv_work_t *w, int status)
{
        StoreTask *t = queue_head;

        assert(t && &t->work == w);
        queue_head = t->next_queued;
        if (!queue_head)
                queue_tail = NULL;
        queue_busy = false;
        t->queued = false;
        t->after(w, status); /* may free t */
        queue_next();
}

/* Queues t's change (t->run on the pool, then t->after on the loop) after the others. */
static void queue_add(Daemon *d, StoreTask *t)
{
        queue_loop = daemon_loop(d);
        t->queued = true;
        t->next_queued = NULL;
        if (queue_tail)
                queue_tail->next_queued = t;
        else
                queue_head = t;
        queue_tail = t;
        queue_next();
}

/* The client of a queued task went away before its change began: it is dropped.
 * Returns whether it was. */
static bool queue_drop(StoreTask *t)
{
        StoreTask *prev = NULL;

        if (!t->queued || t->running)
                return false;
        for (StoreTask *x = queue_head; x; prev = x, x = x->next_queued)
                if (x == t) {
                        if (prev)
                                prev->next_queued = t->next_queued;
                        else
                                queue_head = t->next_queued;
                        if (queue_tail == t)
                                queue_tail = prev;
                        t->queued = false;
                        task_end(t);
                        t->drop(t);
                        return true;
                }
        return false;
}

/* Whether a Remove or ClearData of id is under way (its change queued or running). */
static bool app_changing(const char *id)
{
        for (StoreTask *x = tasks; x; x = x->next)
                if (x->changing && strcmp(x->changing, id) == 0)
                        return true;
        return false;
}

typedef struct Job {
        StoreTask task;
        Daemon *d;
        ControlCall *call; /* NULL once the client went away */
        int fd;
        StoreMode mode;
        char *expect_id;
        int r;
        StoreResult res;
        StoreError err;
        int claim_error;     /* claim_new() failed: the install was undone */
        bool grants_changed; /* record_requested() changed grants.db */
        char claim_message[1024];
        struct ucred by; /* the caller (SO_PEERCRED), for the audit log */
} Job;

/* The audit record of a store change for app id (may be NULL) by the caller by:
 * fields (stolen) with "what" and the caller's "by_uid", "by_pid" added. */
static void store_audit(Daemon *d, const char *id, const struct ucred *by, json_t *fields)
{
        if (!fields)
                return;
        json_object_set_new(fields, "by_uid", json_integer(by->uid));
        json_object_set_new(fields, "by_pid", json_integer(by->pid));
        supervisor_control_audit(daemon_supervisor(d), id && manifest_id_is_valid(id) ? id : NULL,
                                 fields);
}

static void job_free(Job *j)
{
        task_end(&j->task);
        safe_close(j->fd);
        free(j->expect_id);
        store_app_clear(&j->res.app);
        free(j);
}

static json_t *app_json(const StoreApp *a)
{
        return json_pack("{s:s, s:s, s:s?, s:b, s:s?, s:s?, s:s?, s:I, s:b, s:I, s:I}", "id", a->id,
                         "version", a->version, "dir", a->dir, "signed", a->public_key != NULL,
                         "key_id", a->key_id, "public_key", a->public_key, "previous", a->previous,
                         "installed_at_ms", (json_int_t)a->installed_at_ms, "autostart",
                         a->autostart, "files", (json_int_t)a->files, "bytes",
                         (json_int_t)a->bytes);
}

/* The error reply for a store failure r with err (docs/api.md). */
static int reply_store_error(ControlCall *call, const char *id, int r, const StoreError *err)
{
        static const char *const names[] = {
                [STORE_FAULT_BUNDLE] = STORE_ERROR_INVALID_BUNDLE,
                [STORE_FAULT_INSTALLED] = STORE_ERROR_APP_EXISTS,
                [STORE_FAULT_NOT_INSTALLED] = CONTROL_ERROR_NO_SUCH_APP,
                [STORE_FAULT_NOT_NEWER] = STORE_ERROR_NOT_NEWER,
                [STORE_FAULT_SIGNER] = STORE_ERROR_SIGNER_MISMATCH,
                [STORE_FAULT_ID] = CONTROL_ERROR_INVALID_PARAMETER,
        };
        const char *name = (unsigned)err->fault < ELEMENTSOF(names) && names[err->fault]
                                   ? names[err->fault]
                                   : CONTROL_ERROR_FAILED;
        json_t *p = json_pack("{s:s, s:i}", "message",
                              err->message[0] ? err->message : strerror(-r), "errno", -r);

        if (!p)
                return control_reply_errno(call, -ENOMEM, NULL);
        if (err->path[0])
                json_object_set_new(p, "entry", json_string(err->path));
        if (err->key[0])
                json_object_set_new(p, "key", json_string(err->key));
        if (id)
                json_object_set_new(p, "app", json_string(id));
        if (err->fault == STORE_FAULT_ID)
                json_object_set_new(p, "parameter", json_string("id"));
        return control_reply_error(call, name, p);
}

/* The key id signature_verify() gives the folder at launch (a trusted key), or ""
 * (unsigned, or not trusted): what the claim must carry to match the launch's. */
static void trusted_key_of(int dirfd, const char *state_dir, char id[SIGNATURE_KEY_ID_CHARS + 1])
{
        SignatureError se = {};

        if (signature_verify(dirfd, state_dir, id, &se) < 0)
                id[0] = 0;
}

/*
 * A new install claims its id now (state.db: its uid, and whose it is), so that an
 * id already held by another folder or key is refused here, with the way out, and
 * not at the first start. On the thread pool, after store_install() (a signed app's
 * check hashes every file). Returns 0; or undoes the install and returns the error,
 * with j->claim_error and j->claim_message set for the reply.
 */
static int claim_new(Job *j)
{
        Daemon *d = j->d;
        _cleanup_(state_freep) State *st = NULL;
        _cleanup_close_ int dirfd = -EBADF;
        char key_id[SIGNATURE_KEY_ID_CHARS + 1];
        StateClaim claim = {}, rec = {};
        StoreError e = {};
        int r;

        r = state_open(d->state_dir, d->o.uid_base, d->o.uid_count, &st);
        if (r >= 0) {
                dirfd = open(j->res.app.dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                r = dirfd < 0 ? -errno : 0;
        }
        if (r >= 0) {
                trusted_key_of(dirfd, d->state_dir, key_id);
                r = state_claim_of_folder(dirfd, key_id, &claim);
        }
        if (r >= 0)
                r = state_app_claim(st, j->res.app.id, &claim, now_realtime_ms(), &rec);
        state_claim_clear(&claim);
        if (r >= 0)
                return 0;
        (void)store_remove(d->state_dir, j->res.app.id, false, &e);
        if (r == -EEXIST)
                snprintf(j->claim_message, sizeof j->claim_message,
                         "the id %s belongs to another app: %s%s (docs/security.md, \"App "
                         "identity\"); 'cella forget %s' frees it, with that app's data and grants",
                         j->res.app.id, rec.key_id ? "the bundles signed by key " : "the folder ",
                         rec.key_id ?: rec.path ?: "?", j->res.app.id);
        else if (r == -ENOTUNIQ)
                snprintf(j->claim_message, sizeof j->claim_message,
                         "the id %s lies in the namespace of the installed app %s (%s%s), which "
                         "another signer holds (docs/security.md, \"App identity\")",
                         j->res.app.id, rec.id ?: "?", rec.key_id ? "key " : "the folder ",
                         rec.key_id ?: rec.path ?: "?");
        else
                snprintf(j->claim_message, sizeof j->claim_message,
                         "cannot record the app's id in state.db: %s; nothing was installed",
                         strerror(-r));
        state_claim_clear(&rec);
        j->claim_error = r;
        return r;
}

static void on_abort(ControlCall *call, void *ud)
{
        Job *j = ud;

        (void)call;
        j->call = NULL;
        /* Not begun: dropped. Begun: it goes on; nobody hears how it ended. */
        (void)queue_drop(&j->task);
}

static void job_drop(StoreTask *t)
{
        job_free(t->work.data);
}

/*
 * Records what the installed version's manifest requests in grants.db (its normal
 * rights granted, the others waiting for the user), as its first start would: so
 * that `cella grant APP RIGHT` and `cella permissions APP` work between `cella
 * install` and that start (docs/capabilities.md, "Install"). On the thread pool, after
 * the install. A failure is only logged: the start records them again.
 */
static void record_requested(Job *j)
{
        _cleanup_(grants_freep) Grants *g = NULL;
        _cleanup_(manifest_freep) Manifest *m = NULL;
        _cleanup_close_ int dirfd = -EBADF;
        const char *bad = NULL, *why = NULL;
        ManifestError merr = {};
        int r;

        dirfd = open(j->res.app.dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        r = dirfd < 0 ? -errno : manifest_load_at(dirfd, j->res.app.dir, &m, &merr);
        if (r >= 0)
                r = grants_open(j->d->state_dir, &g);
        if (r >= 0)
                r = grants_install_as(g, m, j->res.app.key_id != NULL, j->res.app.key_id,
                                      grants_now_ms(), &bad, &why);
        j->grants_changed = r > 0;
        if (r < 0)
                log_warning("install: the rights %s requests are recorded at its first start: "
                            "%s%s%s",
                            j->res.app.id, bad ? bad : strerror(-r), why ? ": " : "", why ?: "");
}

static void work_install(uv_work_t *w)
{
        Job *j = w->data;

        j->r = store_install(j->d->state_dir, j->fd, j->mode, j->expect_id, now_realtime_ms(),
                             &j->res, &j->err);
        if (j->r == 0 && j->mode == STORE_MODE_INSTALL)
                (void)claim_new(j);
        if (j->r == 0 && j->claim_error == 0)
                record_requested(j);
}

/*
 * After an update of app id: if it runs in this cellad, it is restarted (stopped,
 * then started in the role it had), and the start runs the new version (reload.c),
 * with the new version's rights (docs/store.md, "Updates and running apps": as
 * Android stops an app when its package is replaced). An app that does not run is
 * left as it is: its next start runs the new version. Returns whether it restarts.
 */
static bool restart_updated(Daemon *d, const char *id)
{
        Instance *inst = supervisor_find(daemon_supervisor(d), id);
        LifecycleError e = {};
        InstanceState st;

        if (!inst)
                return false;
        st = instance_state(inst);
        if (!instance_state_is_running(st) || st == INSTANCE_STATE_STOPPING)
                return false; /* its next start (or the one due) runs the new version */
        if (lifecycle_restart(inst, &e) < 0) {
                log_warning("update: %s runs its previous version until it is restarted: %s", id,
                            e.message);
                return false;
        }
        log_info("update: restarting %s into its new version", id);
        return true;
}

static void after_install(uv_work_t *w, int status)
{
        Job *j = w->data;
        const char *what = j->mode == STORE_MODE_UPDATE ? "update" : "install";

        if (status < 0 && j->r == 0)
                j->r = status; /* cancelled: never started */
        if (j->err.warning[0])
                log_warning("%s: %s", what, j->err.warning);
        if (j->r < 0) {
                log_info("%s refused: %s%s%s%s%s", what, j->err.path, j->err.path[0] ? ": " : "",
                         j->err.key, j->err.key[0] ? ": " : "", j->err.message);
                store_audit(j->d, j->expect_id, &j->by,
                            json_pack("{s:s, s:s, s:i}", "what",
                                      j->mode == STORE_MODE_UPDATE ? "update-refused"
                                                                   : "install-refused",
                                      "error", j->err.message, "errno", -j->r));
                if (j->call)
                        (void)reply_store_error(j->call, j->expect_id, j->r, &j->err);
                job_free(j);
                return;
        }
        if (j->claim_error < 0) {
                log_info("%s refused: %s", what, j->claim_message);
                store_audit(j->d, j->res.app.id, &j->by,
                            json_pack("{s:s, s:s, s:i}", "what", "install-refused", "error",
                                      j->claim_message, "errno", -j->claim_error));
                if (j->call)
                        (void)control_reply_error(
                                j->call,
                                j->claim_error == -EEXIST || j->claim_error == -ENOTUNIQ
                                        ? STORE_ERROR_ID_TAKEN
                                        : CONTROL_ERROR_FAILED,
                                json_pack("{s:s, s:s, s:i}", "message", j->claim_message, "app",
                                          j->res.app.id, "errno", -j->claim_error));
                job_free(j);
                return;
        }
        store_cache_forget(j->d->store_cache, j->res.app.id); /* a new current */
        /* What it exports or its key may change what running apps reach. */
        if (j->grants_changed)
                supervisor_grants_changed(daemon_supervisor(j->d), NULL);
        log_info("%s: %s %s%s%s (%s%s)", j->res.replaced ? "updated" : "installed", j->res.app.id,
                 j->res.app.version, j->res.replaced ? ", was " : "",
                 j->res.replaced ? j->res.app.previous : "",
                 j->res.app.key_id ? "signed by key " : "unsigned", j->res.app.key_id ?: "");
        store_audit(j->d, j->res.app.id, &j->by,
                    json_pack("{s:s, s:s, s:s?, s:s?}", "what",
                              j->res.replaced ? "updated" : "installed", "version",
                              j->res.app.version, "previous",
                              j->res.replaced ? j->res.app.previous : NULL, "key_id",
                              j->res.app.key_id));
        if (j->call) {
                json_t *p = app_json(&j->res.app);
                bool restarted = j->res.replaced && restart_updated(j->d, j->res.app.id);

                if (p) {
                        json_object_set_new(p, "replaced", json_boolean(j->res.replaced));
                        json_object_set_new(p, "restarted", json_boolean(restarted));
                }
                (void)(p ? control_reply(j->call, p) : control_reply_errno(j->call, -ENOMEM, NULL));
        }
        job_free(j);
}

/* Install and Update: {"id": ID (Update, optional: the bundle must be that app)} and
 * the bundle as fd 0. */
static int method_install_or_update(ControlCall *call, json_t *params, Daemon *d, StoreMode mode)
{
        _cleanup_close_ int fd = -EBADF;
        const char *id = NULL;
        bool missing = false;
        struct stat st;
        Job *j;
        int seals, r;

        if (mode == STORE_MODE_UPDATE) {
                id = control_param_app(call, params, "id", &missing);
                if (!id && !missing)
                        return 0; /* replied */
        }
        fd = control_call_take_fd(call, 0);
        if (fd < 0)
                return control_reply_invalid_parameter(
                        call, "bundle",
                        "no bundle: pass the bundle as a sealed memfd with the request "
                        "(SCM_RIGHTS), as 'cella install' does");
        seals = fcntl(fd, F_GET_SEALS);
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || seals < 0 ||
            (seals & REQUIRED_SEALS) != REQUIRED_SEALS)
                return control_reply_invalid_parameter(
                        call, "bundle",
                        "the bundle must be a memfd sealed against writing, shrinking and "
                        "growing (F_SEAL_WRITE, F_SEAL_SHRINK, F_SEAL_GROW): the daemon reads "
                        "nothing a client could change or stall");
        if (lseek(fd, 0, SEEK_SET) < 0)
                return control_reply_errno(call, -errno, "cannot rewind the bundle");
        j = calloc(1, sizeof *j);
        if (!j)
                return -ENOMEM;
        *j = (Job){.d = d, .call = call, .fd = TAKE_FD(fd), .mode = mode};
        if (control_call_peer(call))
                j->by = *control_call_peer(call);
        if (id && !(j->expect_id = strdup(id))) {
                safe_close(j->fd);
                free(j);
                return -ENOMEM;
        }
        r = task_accept(&j->task, j, work_install, after_install, job_drop, j->by.uid);
        if (r < 0) {
                free(j->expect_id);
                safe_close(j->fd);
                free(j);
                return reply_limit(call, r);
        }
        control_call_on_abort(call, on_abort, j);
        queue_add(d, &j->task);
        return 0;
}

static int method_install(ControlCall *call, json_t *params, void *userdata)
{
        return method_install_or_update(call, params, userdata, STORE_MODE_INSTALL);
}

static int method_update(ControlCall *call, json_t *params, void *userdata)
{
        return method_install_or_update(call, params, userdata, STORE_MODE_UPDATE);
}

/*
 * Whether app id runs in this cellad, or is about to (lifecycle.h: any state but
 * installed, stopped and failed; starting includes a restart due after its delay):
 * Remove and ClearData refuse then (org.cella.AppState), as `cella forget` refuses a
 * running app; the app is stopped with `cella stop` first. A stopped app is not in
 * use: Remove drops it from the supervisor (daemon_app_forget()).
 */
static bool app_in_use(Daemon *d, const char *id)
{
        Instance *inst = supervisor_find(daemon_supervisor(d), id);
        InstanceState st;

        if (!inst)
                return false;
        st = instance_state(inst);
        return st != INSTANCE_STATE_INSTALLED && st != INSTANCE_STATE_STOPPED &&
               st != INSTANCE_STATE_FAILED;
}

static int reply_in_use(ControlCall *call, const char *id, const char *what, pid_t kernel)
{
        char msg[512];

        if (kernel > 0)
                snprintf(msg, sizeof msg,
                         "%s is an app of the running cella kernel %d: stop it first; nothing "
                         "was %s",
                         id, (int)kernel, what);
        else
                snprintf(msg, sizeof msg,
                         "%s is an app of this cellad: stop it first ('cella stop %s'); "
                         "nothing was %s",
                         id, id, what);
        return control_reply_error(call, CONTROL_ERROR_APP_STATE,
                                   kernel > 0 ? json_pack("{s:s, s:s, s:i}", "message", msg, "app",
                                                          id, "kernel_pid", (int)kernel)
                                              : json_pack("{s:s, s:s}", "message", msg, "app", id));
}

/* Remove and ClearData: first, on the thread pool, whether another kernel on the
 * state directory (a `cella run` or `cella boot`) has the app, as `cella forget`
 * asks; then, on the loop, whether this daemon runs it; then the change itself, on
 * the pool again, in the store's queue (StoreTask), no start of the app meanwhile;
 * then, on the loop, the reply. */
typedef struct Change {
        StoreTask task;
        uv_work_t ask;
        Daemon *d;
        ControlCall *call; /* NULL once the client went away */
        char *id;
        bool remove, keep_data;
        pid_t holder;    /* a kernel that has the app */
        pid_t mute;      /* a kernel that did not answer (it may have it) */
        int r;           /* of control_ask_kernels(), then of the change */
        struct ucred by; /* the caller (SO_PEERCRED), for the audit log */
        /* The change's outcome (on the pool): */
        StoreError err;
        bool store_failed; /* store_remove() failed: err says why */
        bool forget_failed;
        bool cleared; /* ClearData: there was data */
} Change;

static void change_free(Change *c)
{
        task_end(&c->task);
        free(c->id);
        free(c);
}

static void change_drop(StoreTask *t)
{
        change_free(t->work.data);
}

static int on_kernel(pid_t pid, json_t *reply, void *ud)
{
        Change *c = ud;
        json_t *apps = json_object_get(control_reply_parameters(reply), "apps"), *e;
        size_t i;

        if (pid == getpid())
                return 0; /* this cellad: its supervisor answers (app_in_use) */
        json_array_foreach(apps, i, e)
        {
                const char *id = json_string_value(json_object_get(e, "id"));

                if (id && strcmp(id, c->id) == 0 && c->holder == 0)
                        c->holder = pid;
        }
        return 0;
}

static void on_mute(pid_t pid, int error, void *ud)
{
        Change *c = ud;

        (void)error;
        if (pid != getpid() && c->mute == 0)
                c->mute = pid;
}

static void work_ask(uv_work_t *w)
{
        Change *c = w->data;

        c->r = control_ask_kernels(c->d->state_dir, "org.cella.Ps", NULL, CONTROL_CLIENT_TIMEOUT_MS,
                                   on_kernel, on_mute, c);
}

static void change_abort(ControlCall *call, void *ud)
{
        Change *c = ud;

        (void)call;
        c->call = NULL;
        /* Nothing is done for a client that went away, unless the change began. */
        (void)queue_drop(&c->task);
}

/* On the pool, the store's queue: the change. Remove: the store's files, then
 * (unless keep_data) its data, grants and uid as `cella forget` (app_forget()).
 * ClearData: the app's /data (a new one at its next start). */
static void work_change(uv_work_t *w)
{
        Change *c = w->data;
        Daemon *d = c->d;
        _cleanup_(grants_freep) Grants *g = NULL;
        _cleanup_(state_freep) State *st = NULL;
        AppForgetStep step;
        int r;

        if (c->remove) {
                r = store_remove(d->state_dir, c->id, c->keep_data, &c->err);
                if (r < 0) {
                        c->store_failed = true;
                        c->r = r;
                        return;
                }
                if (c->keep_data) {
                        c->r = 0;
                        return;
                }
                r = state_open(d->state_dir, d->o.uid_base, d->o.uid_count, &st);
                if (r >= 0)
                        r = grants_open(d->state_dir, &g);
                if (r >= 0)
                        r = app_forget(d->state_dir, g, st, c->id, &step);
                c->forget_failed = r < 0;
                c->r = r;
                return;
        }
        r = storage_release(d->state_dir, c->id);
        if (r >= 0)
                r = state_open(d->state_dir, d->o.uid_base, d->o.uid_count, &st);
        if (r >= 0)
                r = state_app_clear_data(st, c->id);
        c->cleared = r > 0;
        c->r = r;
}

/* On the loop, after the change: the stopped instance of a removed app dropped, the
 * audit record, the reply. */
static void after_change(uv_work_t *w, int status)
{
        Change *c = w->data;
        const char *what = c->remove ? "removed" : "cleared";

        if (status < 0) {
                if (c->call)
                        (void)control_reply_errno(c->call, status, "cannot queue the change");
                change_free(c);
                return;
        }
        if (c->remove && c->store_failed) {
                store_audit(c->d, c->id, &c->by,
                            json_pack("{s:s, s:s, s:i}", "what", "remove-refused", "error",
                                      c->err.message, "errno", -c->r));
                if (c->call)
                        (void)reply_store_error(c->call, c->id, c->r, &c->err);
                change_free(c);
                return;
        }
        if (c->remove) {
                log_info("removed %s%s", c->id, c->keep_data ? " (its data kept)" : "");
                store_cache_forget(c->d->store_cache, c->id);
                /* Its stopped instance goes too: a later install of the id starts afresh. */
                daemon_app_forget(c->d, c->id);
                /* And the queues it created, which this kernel holds (app_forget()
                 * skips a store held by a kernel: this one). */
                if (!c->keep_data && !c->forget_failed)
                        supervisor_app_forgotten(daemon_supervisor(c->d), c->id);
        } else if (c->r >= 0)
                log_info("cleared the data of %s", c->id);
        store_audit(c->d, c->id, &c->by,
                    c->remove ? json_pack("{s:s, s:b, s:b}", "what", what, "data_kept",
                                          c->keep_data, "data_forgotten", !c->forget_failed)
                              : json_pack("{s:s, s:b, s:i}", "what", what, "cleared", c->cleared,
                                          "errno", c->r < 0 ? -c->r : 0));
        if (c->call) {
                if (c->forget_failed)
                        (void)control_reply_errno(c->call, c->r,
                                                  "removed the app, but not its data and grants: "
                                                  "'cella forget' them");
                else if (!c->remove && c->r < 0)
                        (void)control_reply_errno(c->call, c->r, "cannot clear the app's data");
                else if (c->remove)
                        (void)control_reply(c->call, json_pack("{s:s, s:b}", "id", c->id,
                                                               "data_kept", c->keep_data));
                else
                        (void)control_reply(c->call, json_pack("{s:s, s:b}", "id", c->id, "cleared",
                                                               c->cleared));
        }
        change_free(c);
}

static void after_ask(uv_work_t *w, int status)
{
        Change *c = w->data;
        const char *what = c->remove ? "removed" : "cleared";

        if (!c->call) {
                change_free(c);
                return;
        }
        if (status < 0 || (c->r < 0 && c->r != -EACCES)) {
                (void)control_reply_errno(c->call, status < 0 ? status : c->r,
                                          "cannot ask the running kernels whether they have "
                                          "the app");
        } else if (c->holder > 0)
                (void)reply_in_use(c->call, c->id, what, c->holder);
        else if (c->mute > 0) {
                char msg[512];

                snprintf(msg, sizeof msg,
                         "the cella kernel %d on %s did not answer within %u s, so %s may be "
                         "one of its apps: nothing was %s; try again",
                         (int)c->mute, c->d->state_dir, CONTROL_CLIENT_TIMEOUT_MS / 1000, c->id,
                         what);
                (void)control_reply_error(c->call, CONTROL_ERROR_APP_STATE,
                                          json_pack("{s:s, s:s}", "message", msg, "app", c->id));
        } else if (app_in_use(c->d, c->id)) /* again: it may have started meanwhile */
                (void)reply_in_use(c->call, c->id, what, 0);
        else {
                /* From here until after_change(), no start of the app (app_changing()). */
                c->task.changing = c->id;
                log_info("%s %s", c->remove ? "removing" : "clearing the data of", c->id);
                queue_add(c->d, &c->task);
                return;
        }
        change_free(c);
}

/* Remove {"id": ID, "keep_data": false} and ClearData {"id": ID}. */
static int method_change(ControlCall *call, json_t *params, Daemon *d, bool remove)
{
        json_t *kd = json_object_get(params, "keep_data");
        const char *id;
        bool missing = false;
        Change *c;
        int r;

        id = control_param_app(call, params, "id", &missing);
        if (!id)
                return missing ? control_reply_invalid_parameter(call, "id", "expected an app id")
                               : 0;
        if (remove && kd && !json_is_null(kd) && !json_is_boolean(kd))
                return control_reply_invalid_parameter(call, "keep_data", "expected true or false");
        if (!remove && kd)
                return control_reply_invalid_parameter(call, "keep_data",
                                                       "ClearData takes no keep_data");
        if (!remove) {
                StoreApp a;

                r = store_get(d->state_dir, id, &a);
                if (r == -ENOENT)
                        return control_reply_error(
                                call, CONTROL_ERROR_NO_SUCH_APP,
                                json_pack("{s:s, s:s}", "message", "not installed", "app", id));
                if (r < 0)
                        return control_reply_errno(call, r, "cannot read the store");
                store_app_clear(&a);
        }
        if (app_in_use(d, id))
                return reply_in_use(call, id, remove ? "removed" : "cleared", 0);
        if (app_changing(id))
                return control_reply_error(
                        call, CONTROL_ERROR_APP_STATE,
                        json_pack("{s:s, s:s}", "message",
                                  "a remove or clear-data of the app is under way", "app", id));
        c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        *c = (Change){.d = d, .call = call, .remove = remove, .keep_data = json_is_true(kd)};
        if (control_call_peer(call))
                c->by = *control_call_peer(call);
        c->id = strdup(id);
        if (!c->id) {
                free(c);
                return -ENOMEM;
        }
        c->ask.data = c;
        r = task_accept(&c->task, c, work_change, after_change, change_drop, c->by.uid);
        if (r < 0) {
                free(c->id);
                free(c);
                return reply_limit(call, r);
        }
        r = uv_queue_work(daemon_loop(d), &c->ask, work_ask, after_ask);
        if (r < 0) {
                change_free(c);
                return control_reply_errno(call, r, "cannot queue the check");
        }
        control_call_on_abort(call, change_abort, c);
        return 0;
}

static int method_remove(ControlCall *call, json_t *params, void *userdata)
{
        return method_change(call, params, userdata, true);
}

static int method_clear_data(ControlCall *call, json_t *params, void *userdata)
{
        return method_change(call, params, userdata, false);
}

/* {}: {"apps": [...]} sorted by id. */
static int method_list(ControlCall *call, json_t *params, void *userdata)
{
        Daemon *d = userdata;
        StoreApp *apps = NULL;
        json_t *arr;
        size_t n = 0;
        int r;

        (void)params;
        r = store_list(d->state_dir, &apps, &n);
        if (r < 0)
                return control_reply_errno(call, r, "cannot list the store");
        arr = json_array();
        for (size_t i = 0; arr && i < n; i++)
                if (json_array_append_new(arr, app_json(&apps[i])) < 0) {
                        json_decref(arr);
                        arr = NULL;
                }
        store_app_free_many(apps, n);
        if (!arr)
                return -ENOMEM;
        return control_reply(call, json_pack("{s:o}", "apps", arr));
}

static const ControlMethod store_methods[] = {
        {"org.cella.Install", CONTROL_ACCESS_MANAGE, method_install},
        {"org.cella.Update", CONTROL_ACCESS_MANAGE, method_update},
        {"org.cella.Remove", CONTROL_ACCESS_MANAGE, method_remove},
        {"org.cella.ClearData", CONTROL_ACCESS_MANAGE, method_clear_data},
        {"org.cella.List", CONTROL_ACCESS_READ, method_list},
};

/* supervisor_set_app_dir_fn()'s resolver: the store's installed version of id. */
static int store_app_dir_of(const char *id, char **ret_dir, void *userdata)
{
        Daemon *d = userdata;

        /* A start while its files or data are being removed would run what goes. */
        if (app_changing(id))
                return -EBUSY;
        /* Checked against the store at each lookup (store.h, store_cache_app_dir()):
         * a change made by another process is seen too. */
        if (d->store_cache)
                return store_cache_app_dir(d->store_cache, id, ret_dir);
        return store_app_dir(daemon_state_dir(d), id, ret_dir);
}

/* supervisor_set_installed_fn()'s lister: every installed app's version folder. */
static int store_installed_dirs(char ***ret_dirs, void *userdata)
{
        Daemon *d = userdata;
        _cleanup_strv_free_ char **dirs = NULL;
        StoreApp *list = NULL;
        size_t n = 0;
        int r = store_list(daemon_state_dir(d), &list, &n);

        for (size_t i = 0; r >= 0 && i < n; i++)
                r = strv_extend(&dirs, list[i].dir);
        store_app_free_many(list, n);
        if (r < 0)
                return r;
        *ret_dirs = TAKE_PTR(dirs);
        return 0;
}

int daemon_store_methods(Daemon *d)
{
        int r;

        /* What installs killed with a previous daemon left (docs/store.md "Atomicity"). */
        r = store_sweep(daemon_state_dir(d));
        if (r > 0)
                log_info("store: removed %d leftover(s) of interrupted installs", r);
        else if (r < 0)
                log_warning_errno(r, "cannot sweep %s/apps of interrupted installs: %m",
                                  daemon_state_dir(d));
        /* Every start and restart runs the version installed then (reload.c), found
         * through the installed-version cache (without it, if there is no memory for
         * it, through the store itself). */
        if (store_cache_new(daemon_state_dir(d), &d->store_cache) < 0)
                log_warning("no memory for the installed-version cache: starts ask the store");
        /* Every start and restart runs the version installed then (reload.c). */
        supervisor_set_app_dir_fn(daemon_supervisor(d), store_app_dir_of, d);
        /* A packed group's host has a slot for each installed member (group.c). */
        supervisor_set_installed_fn(daemon_supervisor(d), store_installed_dirs, d);
        r = control_add_methods(daemon_control(d), store_methods, ELEMENTSOF(store_methods), d);
        if (r < 0)
                return log_error_errno(r, "cannot add the store's methods: %m");
        return 0;
}
