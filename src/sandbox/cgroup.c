/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The cgroup manager: finds the hierarchies (v2, v1 or hybrid), works out cella's
 * root in each, makes and removes leaves, sweeps leftovers, and dispatches to the
 * backend's ops (cgroup-v1.c, cgroup-v2.c). Shared knob helpers live here too.
 */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "base/strv.h"
#include "base/time-util.h"
#include "sandbox/cgroup-internal.h"

#define CGROUP_FS_ROOT_DEFAULT "/sys/fs/cgroup"

/* Largest knob file read whole: cgroup.events, memory.events, cpu.stat are well under 1 KiB. */
#define CGROUP_KNOB_MAX 65536

/* Largest cgroup.procs cgroup_read_procs() reads: 7 bytes a pid, some 150,000 pids. */
#define CGROUP_PROCS_MAX (1024u * 1024u)

/* The v1 controllers the backends use, in slot order. */
static const char *const slot_names[_CGROUP_SLOT_MAX] = {
        [CGROUP_SLOT_MEMORY] = "memory",     [CGROUP_SLOT_PIDS] = "pids",
        [CGROUP_SLOT_CPU] = "cpu",           [CGROUP_SLOT_CPUACCT] = "cpuacct",
        [CGROUP_SLOT_FREEZER] = "freezer",   [CGROUP_SLOT_UNIFIED] = "",
        [CGROUP_SLOT_CPUSET] = "cpuset",     [CGROUP_SLOT_DEVICES] = "devices",
        [CGROUP_SLOT_BLKIO] = "blkio",       [CGROUP_SLOT_NET_CLS] = "net_cls",
        [CGROUP_SLOT_NET_PRIO] = "net_prio", [CGROUP_SLOT_HUGETLB] = "hugetlb",
};

CgroupSlot cgroup_ctrl_slot(unsigned ctrl)
{
        switch (ctrl) {
        case CGROUP_CTRL_CPUSET:
                return CGROUP_SLOT_CPUSET;
        case CGROUP_CTRL_DEVICES:
                return CGROUP_SLOT_DEVICES;
        case CGROUP_CTRL_BLKIO:
                return CGROUP_SLOT_BLKIO;
        case CGROUP_CTRL_NET_CLS:
                return CGROUP_SLOT_NET_CLS;
        case CGROUP_CTRL_NET_PRIO:
                return CGROUP_SLOT_NET_PRIO;
        default:
                return CGROUP_SLOT_HUGETLB;
        }
}

static void closedirp(DIR **d)
{
        if (*d)
                closedir(*d);
}

void cgroup_sleep_ms(unsigned ms)
{
        struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

        (void)RETRY_EINTR(nanosleep(&ts, &ts)); /* ts: what is left after a signal */
}

static bool streq(const char *a, const char *b)
{
        return strcmp(a, b) == 0;
}

static bool strv_has(char **l, const char *s)
{
        STRV_FOREACH (i, l)
                if (streq(*i, s))
                        return true;
        return false;
}

bool cgroup_list_contains(const char *list, const char *seps, const char *word)
{
        size_t n = strlen(word);

        for (const char *p = list; *p;) {
                size_t k = strcspn(p, seps);

                if (k == n && strncmp(p, word, n) == 0)
                        return true;
                p += k;
                p += strspn(p, seps);
        }
        return false;
}

/* A single path component built from app- or user-supplied text: no '/', not "." or "..". */
static bool component_valid(const char *s)
{
        return s[0] && !strchr(s, '/') && !streq(s, ".") && !streq(s, "..");
}

static bool label_valid(const char *label)
{
        size_t n;

        if (!label)
                return false;
        n = strlen(label);
        if (n == 0 || n > CGROUP_LABEL_MAX)
                return false;
        for (const char *p = label; *p; p++)
                if (!isascii((unsigned char)*p) ||
                    !(isalnum((unsigned char)*p) || *p == '.' || *p == '_' || *p == '-'))
                        return false;
        return component_valid(label);
}

static int knob_path(const char *dir, const char *knob, char *buf, size_t size)
{
        int n = snprintf(buf, size, "%s/%s", dir, knob);

        if (n < 0 || (size_t)n >= size)
                return -ENAMETOOLONG;
        return 0;
}

static bool knob_exists(const char *dir, const char *knob)
{
        char p[PATH_MAX];

        return knob_path(dir, knob, p, sizeof p) >= 0 && access(p, F_OK) >= 0;
}

int cgroup_write_knob(const char *dir, const char *knob, const char *value)
{
        char p[PATH_MAX];
        int r;

        r = knob_path(dir, knob, p, sizeof p);
        if (r < 0)
                return r;
        return write_string_at(AT_FDCWD, p, value);
}

int cgroup_write_knob_u64(const char *dir, const char *knob, uint64_t v)
{
        char buf[24];

        snprintf(buf, sizeof buf, "%" PRIu64, v);
        return cgroup_write_knob(dir, knob, buf);
}

int cgroup_read_knob(const char *dir, const char *knob, char **ret)
{
        char p[PATH_MAX];
        int r;

        if (!dir)
                return -ENOENT;
        r = knob_path(dir, knob, p, sizeof p);
        if (r < 0)
                return r;
        return read_file_at(AT_FDCWD, p, CGROUP_KNOB_MAX, ret, NULL);
}

/* Parses an unsigned decimal up to the end of s or a newline; "max" is UINT64_MAX. */
static int parse_u64(const char *s, size_t len, uint64_t *ret)
{
        uint64_t v = 0;

        while (len > 0 && isspace((unsigned char)s[len - 1]))
                len--;
        if (len == 3 && strncmp(s, "max", 3) == 0) {
                *ret = UINT64_MAX;
                return 0;
        }
        if (len == 0)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                unsigned d;

                if (!isdigit((unsigned char)s[i]))
                        return -EINVAL;
                d = (unsigned)(s[i] - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return -ERANGE;
                v = v * 10 + d;
        }
        *ret = v;
        return 0;
}

int cgroup_read_knob_u64(const char *dir, const char *knob, uint64_t *ret)
{
        _cleanup_free_ char *s = NULL;
        int r;

        r = cgroup_read_knob(dir, knob, &s);
        if (r < 0)
                return r;
        return parse_u64(s, strcspn(s, "\n"), ret);
}

/* The value of s's line "key value...": its start and, in *ret_len, its length up to
 * the newline; NULL if no line has that key. */
static const char *keyed_line(const char *s, const char *key, size_t *ret_len)
{
        size_t n = strlen(key);

        for (const char *line = s; *line;) {
                size_t len = strcspn(line, "\n");

                if (len > n && strncmp(line, key, n) == 0 && line[n] == ' ') {
                        *ret_len = len - n - 1;
                        return line + n + 1;
                }
                line += len;
                if (*line == '\n')
                        line++;
        }
        return NULL;
}

int cgroup_read_keyed_u64(const char *dir, const char *knob, const char *key, uint64_t *ret)
{
        _cleanup_free_ char *s = NULL;
        const char *v;
        size_t len;
        int r;

        r = cgroup_read_knob(dir, knob, &s);
        if (r < 0)
                return r;
        v = keyed_line(s, key, &len);
        return v ? parse_u64(v, len, ret) : -ENODATA;
}

int cgroup_read_pressure(const char *dir, const char *knob, const char *which, uint32_t *ret)
{
        _cleanup_free_ char *s = NULL;
        unsigned whole = 0, frac = 0;
        const char *v;
        size_t len;
        int r;

        r = cgroup_read_knob(dir, knob, &s);
        if (r < 0)
                return r;
        v = keyed_line(s, which, &len);
        if (!v)
                return -ENODATA;
        if (sscanf(v, "avg10=%u.%2u", &whole, &frac) < 1)
                return -EINVAL;
        *ret = whole > 100 ? 10000 : whole * 100 + frac;
        return 0;
}

int cgroup_read_procs(const char *dir, pid_t *pids, size_t max)
{
        _cleanup_free_ char *s = NULL;
        char p[PATH_MAX];
        size_t n = 0;
        int r;

        if (!dir)
                return -ENOENT;
        r = knob_path(dir, "cgroup.procs", p, sizeof p);
        if (r < 0)
                return r;
        r = read_file_at(AT_FDCWD, p, CGROUP_PROCS_MAX, &s, NULL);
        if (r < 0)
                return r;
        for (char *q = s, *end; *q && n < max; q = end) {
                long v = strtol(q, &end, 10);

                if (end == q)
                        break;
                if (v > 0 && v <= INT32_MAX)
                        pids[n++] = (pid_t)v;
                while (*end == '\n')
                        end++;
        }
        return (int)n;
}

int cgroup_wait_keyed(const char *dir, const char *knob, const char *key, uint64_t want,
                      unsigned timeout_ms)
{
        uint64_t deadline = now_monotonic_ms() + timeout_ms;

        for (;;) {
                uint64_t v;
                int r;

                r = cgroup_read_keyed_u64(dir, knob, key, &v);
                if (r < 0)
                        return r;
                if (v == want)
                        return 0;
                if (now_monotonic_ms() >= deadline)
                        return -ETIMEDOUT;
                cgroup_sleep_ms(1);
        }
}

/*
 * Walks dir/cgroup.procs; sends SIGKILL to each pid if kill_them. Returns the number of
 * pids listed (killing: the number signalled), or -errno. A pid that is gone by the
 * time of the kill (-ESRCH) is not counted.
 */
static int procs_walk(const char *dir, bool kill_them)
{
        _cleanup_(fclosep) FILE *f = NULL;
        char p[PATH_MAX];
        int pid, n = 0, r;

        r = knob_path(dir, "cgroup.procs", p, sizeof p);
        if (r < 0)
                return r;
        f = fopen(p, "re");
        if (!f)
                return negative_errno();
        while (fscanf(f, "%d", &pid) == 1) {
                if (pid <= 0)
                        continue;
                if (!kill_them)
                        n++;
                else if (kill(pid, SIGKILL) >= 0)
                        n++;
                else if (errno != ESRCH)
                        return negative_errno();
        }
        if (ferror(f))
                return -EIO;
        return n;
}

int cgroup_kill_procs(const char *dir)
{
        return procs_walk(dir, true);
}

int cgroup_wait_empty(Cgroup *cg, unsigned timeout_ms)
{
        const CgroupManager *m = cg->manager;
        uint64_t deadline = now_monotonic_ms() + timeout_ms;

        for (;;) {
                int busy = 0;

                for (size_t i = 0; i < m->n_hier; i++) {
                        int r = procs_walk(cg->leaf[i], false);

                        if (r == -ENOENT)
                                continue;
                        if (r < 0)
                                return r;
                        busy += r;
                }
                if (busy == 0)
                        return 0;
                if (now_monotonic_ms() >= deadline)
                        return -EBUSY;
                cgroup_sleep_ms(1);
        }
}

int cgroup_kill_loop(Cgroup *cg, int (*freeze)(Cgroup *cg, bool frozen))
{
        const CgroupManager *m = cg->manager;
        bool use_freeze = freeze != NULL;

        for (unsigned round = 0; round < CGROUP_KILL_ROUNDS; round++) {
                bool frozen = false;
                int n = 0, r = 0;

                /* A freeze that failed once (no freezer, or a task that never freezes:
                 * -ETIMEDOUT, already thawed) is not retried every round. */
                if (use_freeze) {
                        frozen = freeze(cg, true) >= 0;
                        use_freeze = frozen;
                }
                for (size_t i = 0; i < m->n_hier; i++) {
                        r = cgroup_kill_procs(cg->leaf[i]);
                        if (r == -ENOENT) {
                                r = 0;
                                continue;
                        }
                        if (r < 0)
                                break;
                        n += r;
                }
                /* Thaw even after an error: a frozen cgroup must not be left behind. On
                 * v1, SIGKILLed tasks only die once thawed. */
                if (frozen)
                        (void)freeze(cg, false);
                if (r < 0)
                        return r;
                if (n == 0)
                        return 0;
                cgroup_sleep_ms(1);
        }
        return -EBUSY;
}

int cgroup_mkdir(const char *path)
{
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
                return negative_errno();
        return 0;
}

int cgroup_rmdir(const char *path)
{
        for (unsigned i = 0; i < CGROUP_RMDIR_TRIES; i++) {
                if (rmdir(path) >= 0 || errno == ENOENT)
                        return 0;
                if (errno != EBUSY)
                        return negative_errno();
                cgroup_sleep_ms(CGROUP_RMDIR_RETRY_MS);
        }
        return -EBUSY;
}

const char *cgroup_leaf(const Cgroup *cg, CgroupSlot slot)
{
        int i = cg->manager->slot[slot];

        return i < 0 ? NULL : cg->leaf[i];
}

uint64_t cgroup_weight_to_shares(uint64_t weight)
{
        uint64_t s = weight * CGROUP_CPU_SHARES_DEFAULT / CGROUP_WEIGHT_DEFAULT;

        if (s < CGROUP_CPU_SHARES_MIN)
                return CGROUP_CPU_SHARES_MIN;
        if (s > CGROUP_CPU_SHARES_MAX)
                return CGROUP_CPU_SHARES_MAX;
        return s;
}

const char *cgroup_path_base(const CgroupManager *m, size_t i)
{
        return m->path[0] == '/' ? m->hier[i].mount : m->hier[i].parent;
}

/* cgroup_manager_set_path()'s form: components of [A-Za-z0-9._:@-], no "." or "..",
 * single '/' between them (one leading and one trailing allowed). */
static bool exact_path_valid(const char *path)
{
        size_t n = path ? strlen(path) : 0, comp = 0;

        if (n == 0 || n >= PATH_MAX)
                return false;
        for (const char *p = path[0] == '/' ? path + 1 : path;; p++) {
                if (*p == '/' || *p == 0) {
                        if (comp == 0)
                                /* "//", or "/" alone; a trailing '/' is fine. */
                                return *p == 0 && p > path + 1 && p[-1] == '/';
                        if ((comp == 1 && p[-1] == '.') ||
                            (comp == 2 && p[-1] == '.' && p[-2] == '.') || comp > NAME_MAX)
                                return false;
                        if (*p == 0)
                                return true;
                        comp = 0;
                        continue;
                }
                if (!isascii((unsigned char)*p) ||
                    !(isalnum((unsigned char)*p) || strchr("._:@-", *p)))
                        return false;
                comp++;
        }
}

/* With cgroup_manager_set_path(): makes the leaf's missing parents in hierarchy i,
 * from its base down (mode 0755), and on pure v2 enables cella's controllers in the
 * base and each parent, so that the leaf gets them (a hybrid host's cgroup2 has none
 * of them: they are bound to the v1 hierarchies). Returns 0 or -errno. */
static int path_parents_make(const CgroupManager *m, size_t i)
{
        const char *base = cgroup_path_base(m, i);
        _cleanup_free_ char *dir = NULL;
        size_t blen = strlen(base);
        bool enable = m->mode == CGROUP_MODE_V2;
        bool cpuset = !m->hier[i].unified && m->slot[CGROUP_SLOT_CPUSET] == (int)i;
        char *slash;
        int r;

        if (asprintf(&dir, "%s/%s", base, m->path + (m->path[0] == '/')) < 0)
                return -ENOMEM;
        /* Drop a trailing '/', then walk the parents below base. */
        if (dir[strlen(dir) - 1] == '/')
                dir[strlen(dir) - 1] = 0;
        r = cgroup_mkdir(base); /* a manager's parent that is not there yet */
        if (r >= 0 && cpuset)
                r = cgroup_v1_cpuset_inherit(base);
        if (r < 0)
                return r;
        if (enable) {
                r = cgroup_v2_enable_controllers_extra(base, m->extra);
                if (r < 0)
                        return r;
        }
        for (char *p = dir + blen + 1; (slash = strchr(p, '/')); p = slash + 1) {
                *slash = 0;
                r = cgroup_mkdir(dir);
                if (r >= 0 && cpuset)
                        r = cgroup_v1_cpuset_inherit(dir);
                if (r >= 0 && enable)
                        r = cgroup_v2_enable_controllers_extra(dir, m->extra);
                *slash = '/';
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Creates the leaves in the cgroup2 hierarchies (unified) or in the v1 ones; with
 * exclusive, a leaf that exists already is -EEXIST (none of this call's left made). */
static int create_some(Cgroup *cg, bool unified, bool exclusive)
{
        const CgroupManager *m = cg->manager;
        bool made[_CGROUP_SLOT_MAX] = {};
        int r = 0;

        for (size_t i = 0; i < m->n_hier; i++) {
                if (m->hier[i].unified != unified)
                        continue;
                r = m->path ? path_parents_make(m, i) : cgroup_mkdir(m->hier[i].root);
                if (r < 0)
                        break;
                if (mkdir(cg->leaf[i], 0755) >= 0)
                        made[i] = true;
                else if (errno != EEXIST || exclusive) {
                        r = negative_errno();
                        break;
                }
                if (!unified && m->slot[CGROUP_SLOT_CPUSET] == (int)i) {
                        r = cgroup_v1_cpuset_inherit(cg->leaf[i]);
                        if (r < 0)
                                break;
                }
        }
        if (r < 0)
                for (size_t i = 0; i < m->n_hier; i++)
                        if (made[i])
                                (void)rmdir(cg->leaf[i]);
        return r;
}

static int generic_create_some(Cgroup *cg, bool unified)
{
        return create_some(cg, unified, false);
}

int cgroup_generic_create(Cgroup *cg)
{
        int r = generic_create_some(cg, true);

        if (r < 0)
                return r;
        r = generic_create_some(cg, false);
        if (r < 0)
                (void)cgroup_generic_destroy(cg);
        return r;
}

int cgroup_generic_attach(Cgroup *cg, pid_t pid)
{
        const CgroupManager *m = cg->manager;
        char buf[16];

        snprintf(buf, sizeof buf, "%d", (int)pid);
        for (size_t i = 0; i < m->n_hier; i++) {
                int r = cgroup_write_knob(cg->leaf[i], "cgroup.procs", buf);

                if (r < 0)
                        return r;
        }
        return 0;
}

int cgroup_generic_destroy(Cgroup *cg)
{
        const CgroupManager *m = cg->manager;
        int ret = 0;

        for (size_t i = 0; i < m->n_hier; i++) {
                int r = cgroup_rmdir(cg->leaf[i]);

                if (r < 0 && ret == 0)
                        ret = r;
        }
        return ret;
}

/* Names of the subdirectories of path (symlinks not followed). 0 and *ret, or -errno. */
static int list_subdirs(const char *path, char ***ret)
{
        _cleanup_(closedirp) DIR *d = opendir(path);
        _cleanup_strv_free_ char **l = NULL;
        struct dirent *de;

        if (!d)
                return negative_errno();
        errno = 0;
        while ((de = readdir(d))) {
                struct stat st;
                int r;

                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (de->d_type == DT_UNKNOWN) {
                        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
                            !S_ISDIR(st.st_mode))
                                continue;
                } else if (de->d_type != DT_DIR)
                        continue;
                r = strv_extend(&l, de->d_name);
                if (r < 0)
                        return r;
                errno = 0;
        }
        if (errno > 0)
                return -errno;
        if (!l) {
                l = calloc(1, sizeof(char *));
                if (!l)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

/* True if dir is a v1 hierarchy root: has cgroup.procs and is not cgroup2. */
static bool is_v1_hierarchy(const char *dir)
{
        struct stat st;

        return stat(dir, &st) >= 0 && S_ISDIR(st.st_mode) && knob_exists(dir, "cgroup.procs") &&
               !knob_exists(dir, "cgroup.controllers");
}

/*
 * Finds the v1 hierarchy holding ctrl under fs_root: fs_root/<ctrl> if it is one
 * (separate mounts, or systemd's "cpu" -> "cpu,cpuacct" symlinks), else the entry
 * whose comma-separated name lists ctrl (a co-mount such as "cpu,cpuacct" without
 * symlinks). Returns 0 and *ret, -ENOENT, -ENOMEM.
 */
static int find_v1_hierarchy(const char *fs_root, const char *ctrl, char **ret)
{
        _cleanup_(closedirp) DIR *d = NULL;
        _cleanup_free_ char *p = NULL;
        struct dirent *de;

        if (asprintf(&p, "%s/%s", fs_root, ctrl) < 0)
                return -ENOMEM;
        if (is_v1_hierarchy(p)) {
                *ret = TAKE_PTR(p);
                return 0;
        }
        d = opendir(fs_root);
        if (!d)
                return errno == ENOENT || errno == ENOTDIR ? -ENOENT : negative_errno();
        while ((de = readdir(d))) {
                if (de->d_name[0] == '.' || !cgroup_list_contains(de->d_name, ",", ctrl))
                        continue;
                free(p);
                if (asprintf(&p, "%s/%s", fs_root, de->d_name) < 0) {
                        p = NULL;
                        return -ENOMEM;
                }
                if (is_v1_hierarchy(p)) {
                        *ret = TAKE_PTR(p);
                        return 0;
                }
        }
        return -ENOENT;
}

int cgroup_detect(const char *fs_root, CgroupMode *ret)
{
        _cleanup_free_ char *unified = NULL;
        bool v1 = false;

        if (!ret)
                return -EINVAL;
        if (!fs_root)
                fs_root = CGROUP_FS_ROOT_DEFAULT;
        if (knob_exists(fs_root, "cgroup.controllers")) {
                *ret = CGROUP_MODE_V2;
                return 0;
        }
        for (CgroupSlot s = 0; s < CGROUP_SLOT_UNIFIED && !v1; s++) {
                _cleanup_free_ char *p = NULL;
                int r = find_v1_hierarchy(fs_root, slot_names[s], &p);

                if (r == -ENOENT)
                        continue;
                if (r < 0)
                        return r;
                v1 = true;
        }
        if (!v1)
                return -ENOENT;
        if (asprintf(&unified, "%s/unified", fs_root) < 0)
                return -ENOMEM;
        *ret = knob_exists(unified, "cgroup.controllers") ? CGROUP_MODE_HYBRID : CGROUP_MODE_V1;
        return 0;
}

/*
 * Normalizes a cgroup path relative to a hierarchy root: drops empty and "."
 * components and leading/trailing slashes; refuses "..". "" is the root.
 * Returns 0 and *ret, -EINVAL, -ENOMEM.
 */
static int path_normalize(const char *p, char **ret)
{
        _cleanup_free_ char *out = calloc(1, strlen(p) + 1);
        size_t n = 0;

        if (!out)
                return -ENOMEM;
        while (*p) {
                size_t k = strcspn(p, "/");

                if (k == 2 && strncmp(p, "..", 2) == 0)
                        return -EINVAL;
                if (k > 0 && !(k == 1 && p[0] == '.')) {
                        if (n > 0)
                                out[n++] = '/';
                        memcpy(out + n, p, k);
                        n += k;
                }
                p += k;
                p += strspn(p, "/");
        }
        out[n] = 0;
        *ret = TAKE_PTR(out);
        return 0;
}

/*
 * /proc/self files read once per cgroup_manager_new(): /proc/self/cgroup whole, and
 * of /proc/self/mountinfo only as far as the mount points asked for so far (the
 * cgroup file systems are mounted at boot, near its start), kept as (root, point)
 * pairs. Its tail grows with every mount on the host, each app's /data among them
 * (an ext4 on a loop device, kept mounted: storage.c), and the kernel renders each
 * line as it is read: read whole with 100 more mounts, it cost every start about
 * 0.9 ms (bench/start's hello, paired median, docs/benchmarks.md).
 */
typedef struct ProcCache {
        char *cgroup;
        FILE *mountinfo; /* open, read up to here; NULL before the first look */
        bool mountinfo_eof;
        char **mounts; /* root, point, root, point, ... (n_mounts pairs) */
        size_t n_mounts;
} ProcCache;

static void proc_cache_done(ProcCache *pc)
{
        free(pc->cgroup);
        if (pc->mountinfo)
                fclose(pc->mountinfo);
        for (size_t i = 0; i < 2 * pc->n_mounts; i++)
                free(pc->mounts[i]);
        free(pc->mounts);
}

/*
 * A stream over path's contents, read once into *cache (kept by the caller for the
 * next call): cgroup_manager_new() consults /proc/self/cgroup and
 * /proc/self/mountinfo once per hierarchy, and reading each only once saved a third
 * of its time (mountinfo is now read incrementally: mount_root_at()). NULL with errno set on
 * failure.
 */
static FILE *open_cached(const char *path, char **cache)
{
        int r;

        if (!*cache) {
                r = read_file_at(AT_FDCWD, path, 4 * 1024 * 1024, cache, NULL);
                if (r < 0) {
                        errno = -r;
                        return NULL;
                }
        }
        if (!**cache) {
                errno = ENOENT;
                return NULL;
        }
        return fmemopen(*cache, strlen(*cache), "r");
}

/*
 * This process's cgroup in the hierarchy holding ctrl (NULL: the v2 one, the "0::"
 * line), from /proc/self/cgroup. Returns 0 and *ret, -ENOENT if not listed, -errno.
 */
static int self_cgroup(ProcCache *pc, const char *ctrl, char **ret)
{
        _cleanup_(fclosep) FILE *f = open_cached("/proc/self/cgroup", &pc->cgroup);
        _cleanup_free_ char *line = NULL;
        size_t size = 0;

        if (!f)
                return negative_errno();
        while (getline(&line, &size, f) > 0) {
                char *list, *path;

                line[strcspn(line, "\n")] = 0;
                list = strchr(line, ':');
                if (!list)
                        continue;
                *list++ = 0;
                path = strchr(list, ':');
                if (!path)
                        continue;
                *path++ = 0;
                if (ctrl ? cgroup_list_contains(list, ",", ctrl)
                         : (streq(line, "0") && list[0] == 0)) {
                        char *s = strdup(path);

                        if (!s)
                                return -ENOMEM;
                        *ret = s;
                        return 0;
                }
        }
        return -ENOENT;
}

/*
 * The "root" field of mount's /proc/self/mountinfo line: the part of the hierarchy a
 * mount shows when only a subtree is mounted (containers without a cgroup namespace).
 * Returns 0 and *ret, -ENOENT, -errno.
 */
/* *ret = a copy of s. Returns 0 or -ENOMEM. */
static int dup_to(char **ret, const char *s)
{
        *ret = strdup(s);
        return *ret ? 0 : -ENOMEM;
}

static int mount_root_at(ProcCache *pc, const char *point_wanted, char **ret)
{
        _cleanup_free_ char *line = NULL;
        size_t size = 0;

        for (size_t i = 0; i < pc->n_mounts; i++)
                if (streq(pc->mounts[2 * i + 1], point_wanted))
                        return dup_to(ret, pc->mounts[2 * i]);
        if (pc->mountinfo_eof)
                return -ENOENT;
        if (!pc->mountinfo) {
                pc->mountinfo = fopen("/proc/self/mountinfo", "re");
                if (!pc->mountinfo)
                        return negative_errno();
        }
        /* On from where the last look stopped, keeping what it passes. */
        while (getline(&line, &size, pc->mountinfo) > 0) {
                _cleanup_free_ char *root = NULL, *point = NULL;
                char **m;
                bool found;

                if (sscanf(line, "%*s %*s %*s %ms %ms", &root, &point) != 2)
                        continue;
                m = reallocarray(pc->mounts, 2 * (pc->n_mounts + 1), sizeof *m);
                if (!m)
                        return -ENOMEM;
                pc->mounts = m;
                found = streq(point, point_wanted);
                m[2 * pc->n_mounts] = TAKE_PTR(root);
                m[2 * pc->n_mounts + 1] = TAKE_PTR(point);
                pc->n_mounts++;
                if (found)
                        return dup_to(ret, m[2 * pc->n_mounts - 2]);
        }
        if (ferror(pc->mountinfo))
                return -EIO;
        pc->mountinfo_eof = true;
        return -ENOENT;
}

static int mount_root(ProcCache *pc, const char *mount, char **ret)
{
        _cleanup_free_ char *real = NULL;
        int r;

        /* The path as given is the mount point unless a symlink leads there
         * (systemd's cpu -> cpu,cpuacct): try it before paying for realpath(). */
        r = mount_root_at(pc, mount, ret);
        if (r != -ENOENT)
                return r;
        real = realpath(mount, NULL);
        if (!real)
                return negative_errno();
        return streq(real, mount) ? -ENOENT : mount_root_at(pc, real, ret);
}

/*
 * The default parent in one hierarchy: the cgroup this process is in (ctrl NULL: the
 * v2 one), made relative to what the mount shows. Not a cgroup filesystem (a test's
 * fake tree) or not listed: the hierarchy's root. Returns 0 and *ret, -errno.
 */
static int default_parent(ProcCache *pc, const char *mount, const char *ctrl, char **ret)
{
        _cleanup_free_ char *self = NULL, *root = NULL;
        const char *rel;
        struct statfs sfs;
        int r;

        if (statfs(mount, &sfs) < 0)
                return negative_errno();
        if (sfs.f_type != CGROUP_SUPER_MAGIC && sfs.f_type != CGROUP2_SUPER_MAGIC)
                return path_normalize("", ret);
        r = self_cgroup(pc, ctrl, &self);
        if (r == -ENOENT)
                return path_normalize("", ret);
        if (r < 0)
                return r;
        rel = self;
        if (mount_root(pc, mount, &root) >= 0 && !streq(root, "/")) {
                size_t n = strlen(root);

                if (strncmp(self, root, n) == 0 && (self[n] == '/' || self[n] == 0))
                        rel = self + n;
        }
        return path_normalize(rel, ret);
}

/*
 * Adds the hierarchy at mount (or finds it, if already added under another name) and
 * returns its index. parent: normalized, or NULL for the default (ctrl says which
 * /proc/self/cgroup line).
 */
static int hierarchy_add(CgroupManager *m, ProcCache *pc, const char *mount, bool unified,
                         const char *ctrl, const char *parent, int *ret_index)
{
        _cleanup_free_ char *def = NULL;
        CgroupHierarchy *h;
        struct stat st;
        int r;

        if (stat(mount, &st) < 0)
                return negative_errno();
        for (size_t i = 0; i < m->n_hier; i++)
                if (m->hier[i].dev == st.st_dev && m->hier[i].ino == st.st_ino) {
                        *ret_index = (int)i;
                        return 0;
                }
        if (!parent) {
                /* Pure v2: the hierarchy root (cgroup.h: no internal processes). */
                if (m->mode == CGROUP_MODE_V2)
                        r = path_normalize("", &def);
                else
                        r = default_parent(pc, mount, ctrl, &def);
                if (r < 0)
                        return r;
                parent = def;
        }
        h = &m->hier[m->n_hier];
        h->dev = st.st_dev;
        h->ino = st.st_ino;
        h->unified = unified;
        h->mount = strdup(mount);
        if (!h->mount)
                return -ENOMEM;
        m->n_hier++; /* owned by m from here on, freed with it */
        if (asprintf(&h->parent, "%s%s%s", mount, parent[0] ? "/" : "", parent) < 0) {
                h->parent = NULL;
                return -ENOMEM;
        }
        if (asprintf(&h->root, "%s/cella", h->parent) < 0) {
                h->root = NULL;
                return -ENOMEM;
        }
        *ret_index = (int)(m->n_hier - 1);
        return 0;
}

/* Frees the manager (not the cgroups it made: destroy those first). Takes NULL; returns NULL. */
CgroupManager *cgroup_manager_free(CgroupManager *m)
{
        if (!m)
                return NULL;
        for (size_t i = 0; i < m->n_hier; i++) {
                free(m->hier[i].mount);
                free(m->hier[i].parent);
                free(m->hier[i].root);
                free(m->hier[i].self);
                free(m->hier[i].leaf_dir);
        }
        strv_free(m->adopted);
        free(m->owner_tag);
        free(m->path);
        free(m->fs_root);
        free(m->parent_arg);
        free(m);
        return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(CgroupManager *, cgroup_manager_free)

int cgroup_manager_new(const char *fs_root, CgroupMode mode, const char *parent,
                       CgroupManager **ret)
{
        _cleanup_(cgroup_manager_freep) CgroupManager *m = NULL;
        _cleanup_(proc_cache_done) ProcCache pc = {};
        _cleanup_free_ char *norm = NULL;
        int r;

        if (!ret)
                return -EINVAL;
        if (!fs_root)
                fs_root = CGROUP_FS_ROOT_DEFAULT;
        if (parent) {
                r = path_normalize(parent, &norm);
                if (r < 0)
                        return r;
        }
        if (mode == CGROUP_MODE_AUTO) {
                r = cgroup_detect(fs_root, &mode);
                if (r < 0)
                        return r;
        }
        m = calloc(1, sizeof *m);
        if (!m)
                return -ENOMEM;
        m->mode = mode;
        m->fs_root = strdup(fs_root);
        if (!m->fs_root || (norm && !(m->parent_arg = strdup(norm))))
                return -ENOMEM;
        for (CgroupSlot s = 0; s < _CGROUP_SLOT_MAX; s++)
                m->slot[s] = -1;

        switch (mode) {
        case CGROUP_MODE_V2: {
                int i;

                if (!knob_exists(fs_root, "cgroup.controllers"))
                        return -ENOENT;
                r = hierarchy_add(m, &pc, fs_root, true, NULL, norm, &i);
                if (r < 0)
                        return r;
                /* The others once added (cgroup_manager_add_controllers()). */
                for (CgroupSlot s = 0; s <= CGROUP_SLOT_UNIFIED; s++)
                        m->slot[s] = i;
                m->ops = &cgroup_v2_ops;
                break;
        }
        case CGROUP_MODE_V1:
        case CGROUP_MODE_HYBRID:
                for (CgroupSlot s = 0; s < CGROUP_SLOT_UNIFIED; s++) {
                        _cleanup_free_ char *p = NULL;

                        /* Hybrid freezes through cgroup.freeze in the unified leaf. */
                        if (s == CGROUP_SLOT_FREEZER && mode == CGROUP_MODE_HYBRID)
                                continue;
                        r = find_v1_hierarchy(fs_root, slot_names[s], &p);
                        if (r == -ENOENT)
                                continue;
                        if (r < 0)
                                return r;
                        r = hierarchy_add(m, &pc, p, false, slot_names[s], norm, &m->slot[s]);
                        if (r < 0)
                                return r;
                }
                if (m->n_hier == 0)
                        return -ENOENT;
                if (mode == CGROUP_MODE_HYBRID) {
                        _cleanup_free_ char *u = NULL;

                        if (asprintf(&u, "%s/unified", fs_root) < 0)
                                return -ENOMEM;
                        if (!knob_exists(u, "cgroup.controllers"))
                                return -ENOENT;
                        r = hierarchy_add(m, &pc, u, true, NULL, norm,
                                          &m->slot[CGROUP_SLOT_UNIFIED]);
                        if (r < 0)
                                return r;
                        m->ops = &cgroup_hybrid_ops;
                } else
                        m->ops = &cgroup_v1_ops;
                break;
        default:
                return -EINVAL;
        }
        *ret = TAKE_PTR(m);
        return 0;
}

int cgroup_manager_add_controllers(CgroupManager *m, unsigned ctrls, unsigned *ret_missing)
{
        _cleanup_(proc_cache_done) ProcCache pc = {};
        _cleanup_free_ char *avail = NULL;
        unsigned missing = 0;
        int r;

        if (!m || (ctrls & ~CGROUP_CTRL_ALL))
                return -EINVAL;
        if (m->mode == CGROUP_MODE_V2) {
                /* One hierarchy: a controller's slot is it once the root offers the
                 * controller (devices has no cgroup2 controller: its eBPF program needs
                 * none, and cella-oci loads none). */
                r = cgroup_read_knob(m->hier[m->slot[CGROUP_SLOT_UNIFIED]].mount,
                                     "cgroup.controllers", &avail);
                if (r < 0)
                        return r;
                for (unsigned bit = 1; bit & CGROUP_CTRL_ALL; bit <<= 1) {
                        const char *c = bit == CGROUP_CTRL_CPUSET    ? "cpuset"
                                        : bit == CGROUP_CTRL_BLKIO   ? "io"
                                        : bit == CGROUP_CTRL_HUGETLB ? "hugetlb"
                                                                     : NULL;

                        if (!(ctrls & bit))
                                continue;
                        if (bit == CGROUP_CTRL_DEVICES ||
                            (c && cgroup_list_contains(avail, " \n", c))) {
                                m->extra |= bit;
                                m->slot[cgroup_ctrl_slot(bit)] = m->slot[CGROUP_SLOT_UNIFIED];
                        } else
                                missing |= bit;
                }
        } else {
                /* The manager's parent was given, or is the process's cgroup in each
                 * hierarchy (hierarchy_add()); an exact absolute path ignores it. */
                for (unsigned bit = 1; bit & CGROUP_CTRL_ALL; bit <<= 1) {
                        CgroupSlot s = cgroup_ctrl_slot(bit);
                        _cleanup_free_ char *p = NULL;

                        if (!(ctrls & bit) || m->slot[s] >= 0)
                                continue;
                        r = find_v1_hierarchy(m->fs_root, slot_names[s], &p);
                        if (r == -ENOENT) {
                                missing |= bit;
                                continue;
                        }
                        if (r < 0)
                                return r;
                        r = hierarchy_add(m, &pc, p, false, slot_names[s], m->parent_arg,
                                          &m->slot[s]);
                        if (r < 0)
                                return r;
                        m->extra |= bit;
                }
        }
        if (ret_missing)
                *ret_missing = missing;
        return 0;
}

/* The backend in use: never CGROUP_MODE_AUTO once the manager exists. */
CgroupMode cgroup_manager_mode(const CgroupManager *m)
{
        return m->mode;
}

/* The backend's ops (cgroup_v1_ops, cgroup_v2_ops or cgroup_hybrid_ops). */
const CgroupOps *cgroup_manager_ops(const CgroupManager *m)
{
        return m->ops;
}

int cgroup_manager_root(CgroupManager *m, const char *ctrl, bool make, const char **ret)
{
        int slot = -1;

        if (!m || !ctrl || !ret)
                return -EINVAL;
        for (CgroupSlot s = 0; s < _CGROUP_SLOT_MAX; s++)
                if (streq(ctrl, slot_names[s]))
                        slot = m->slot[s];
        if (slot < 0)
                return -ENOENT;
        if (make) {
                const CgroupHierarchy *h = &m->hier[slot];
                int r;

                /* As v2_create() does: on pure v2 the controllers must be on in the
                 * parent's subtree_control for the root's memory.max to exist. */
                r = cgroup_mkdir(h->root);
                if (r >= 0 && m->mode == CGROUP_MODE_V2)
                        r = cgroup_v2_enable_controllers(h->parent);
                if (r >= 0 && m->mode == CGROUP_MODE_V2)
                        r = cgroup_v2_enable_controllers(h->root);
                if (r < 0)
                        return r;
        }
        *ret = m->hier[slot].root;
        return 0;
}

/*
 * True if pid has exited and waits to be reaped (state Z in /proc/<pid>/stat, the
 * field after the last ')', proc(5)): an owner that is gone, whose parent has not
 * reaped it yet (or never will: an init that does not reap, as some containers'
 * pid 1). False if it runs or cannot be read.
 */
static bool pid_is_zombie(pid_t pid)
{
        char path[32], buf[512];
        _cleanup_close_ int fd = -EBADF;
        const char *p;
        ssize_t k;

        snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return false;
        k = read(fd, buf, sizeof buf - 1);
        if (k <= 0)
                return false;
        buf[k] = 0;
        p = strrchr(buf, ')');
        return p && p[1] == ' ' && p[2] == 'Z';
}

/* True if name ends in "@<pid>" and that pid does not exist, or is a zombie. */
static bool leaf_owner_dead(const char *name)
{
        const char *at = strrchr(name, '@');
        uint64_t pid;

        if (!at || strlen(at + 1) > 10 || parse_u64(at + 1, strlen(at + 1), &pid) < 0)
                return false;
        if (pid == 0 || pid == UINT64_MAX || pid > INT_MAX)
                return false;
        if (kill((pid_t)pid, 0) < 0)
                return errno == ESRCH;
        return pid_is_zombie((pid_t)pid);
}

/*
 * SIGKILLs every task in path and the cgroups below it, then thaws them: a task frozen
 * by the v1 freezer only acts on the signal once thawed (v2 frozen tasks die anyway).
 * Returns the number of tasks signalled.
 */
static int kill_tree(const char *path, unsigned depth)
{
        _cleanup_strv_free_ char **subs = NULL;
        int n = 0, r;

        r = cgroup_kill_procs(path);
        if (r > 0)
                n += r;
        (void)cgroup_write_knob(path, "freezer.state", "THAWED");
        (void)cgroup_write_knob(path, "cgroup.freeze", "0");
        if (depth >= CGROUP_SWEEP_MAX_DEPTH || list_subdirs(path, &subs) < 0)
                return n;
        STRV_FOREACH (s, subs) {
                _cleanup_free_ char *p = NULL;

                if (asprintf(&p, "%s/%s", path, *s) < 0)
                        return n;
                n += kill_tree(p, depth + 1);
        }
        return n;
}

/* rmdir path and every cgroup below it, deepest first. Returns 0 or -errno. */
static int remove_tree(const char *path, unsigned depth)
{
        _cleanup_strv_free_ char **subs = NULL;
        int r;

        if (depth > CGROUP_SWEEP_MAX_DEPTH)
                return -ELOOP;
        r = list_subdirs(path, &subs);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        STRV_FOREACH (s, subs) {
                _cleanup_free_ char *p = NULL;

                if (asprintf(&p, "%s/%s", path, *s) < 0)
                        return -ENOMEM;
                r = remove_tree(p, depth + 1);
                if (r < 0)
                        return r;
        }
        return cgroup_rmdir(path);
}

static int sweep_leaf(const CgroupHierarchy *h, const char *path)
{
        /* cgroup.kill takes the whole subtree at once (5.14+); the per-task loop catches
         * the rest and is all v1 has. With the owner dead nothing freezes this leaf, so a
         * fork race is only bounded by the rounds (and the leaf's pids.max). */
        if (h->unified)
                (void)cgroup_write_knob(path, "cgroup.kill", "1");
        for (unsigned round = 0; round < CGROUP_KILL_ROUNDS; round++) {
                if (kill_tree(path, 0) == 0)
                        break;
                cgroup_sleep_ms(1);
        }
        return remove_tree(path, 0);
}

/*
 * Kills and removes every leaf of m's hierarchies whose name pick(name, ud) takes
 * and that m has not adopted (cgroup_open()), cgroup2 hierarchies first
 * (cgroup.kill clears a leaf in one write). Best effort per leaf: what stays is
 * retried by the next sweep. Returns the number of leaf names removed in at least
 * one hierarchy, or -errno (-ENOMEM; listing a hierarchy's root failed).
 */
static int sweep_leaves(CgroupManager *m, bool (*pick)(const char *name, const void *ud),
                        const void *ud)
{
        _cleanup_strv_free_ char **removed = NULL;
        int r;

        for (int pass = 1; pass >= 0; pass--)
                for (size_t i = 0; i < m->n_hier; i++) {
                        const CgroupHierarchy *h = &m->hier[i];
                        _cleanup_strv_free_ char **names = NULL;

                        if (h->unified != (pass == 1))
                                continue;
                        r = list_subdirs(h->root, &names);
                        if (r == -ENOENT)
                                continue;
                        if (r < 0)
                                return r;
                        STRV_FOREACH (name, names) {
                                _cleanup_free_ char *p = NULL;

                                if (!pick(*name, ud) || strv_has(m->adopted, *name))
                                        continue;
                                if (asprintf(&p, "%s/%s", h->root, *name) < 0)
                                        return -ENOMEM;
                                if (sweep_leaf(h, p) < 0)
                                        continue;
                                if (!strv_has(removed, *name)) {
                                        r = strv_extend(&removed, *name);
                                        if (r < 0)
                                                return r;
                                }
                        }
                }
        return (int)strv_length(removed);
}

/* cgroup_sweep()'s pick: a leaf whose owner pid is dead. */
static bool pick_dead_owner(const char *name, const void *ud)
{
        (void)ud;
        return leaf_owner_dead(name);
}

int cgroup_sweep(CgroupManager *m)
{
        if (!m)
                return -EINVAL;
        return sweep_leaves(m, pick_dead_owner, NULL);
}

/* Forgets name in m->adopted (a handle of cgroup_open() going). */
static void adopted_forget(CgroupManager *m, const char *name)
{
        size_t n = strv_length(m->adopted);

        for (size_t i = 0; i < n; i++)
                if (streq(m->adopted[i], name)) {
                        free(m->adopted[i]);
                        m->adopted[i] = m->adopted[n - 1];
                        m->adopted[n - 1] = NULL;
                        return;
                }
}

static Cgroup *cgroup_free(Cgroup *cg)
{
        if (!cg)
                return NULL;
        if (cg->adopted && cg->name)
                adopted_forget(cg->manager, cg->name);
        for (size_t i = 0; i < _CGROUP_SLOT_MAX; i++)
                free(cg->leaf[i]);
        free(cg->name);
        free(cg);
        return NULL;
}

DEFINE_TRIVIAL_CLEANUP_FUNC(Cgroup *, cgroup_free)

/* The handle of cgroup_manager_set_path()'s leaf: its name the path, its leaf in
 * each hierarchy the path below that hierarchy's base. Takes cg (freed on failure). */
static int path_handle_fill(Cgroup *cg_in, Cgroup **ret)
{
        _cleanup_(cgroup_freep) Cgroup *cg = cg_in;
        const CgroupManager *m = cg->manager;

        cg->name = strdup(m->path);
        if (!cg->name)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_hier; i++)
                if (asprintf(&cg->leaf[i], "%s/%s", cgroup_path_base(m, i),
                             m->path + (m->path[0] == '/')) < 0) {
                        cg->leaf[i] = NULL;
                        return -ENOMEM;
                }
        *ret = TAKE_PTR(cg);
        return 0;
}

/* A handle for leaf "<label>@<owner>" in every hierarchy of m; nothing is made.
 * Returns 0 and *ret, -EINVAL, -ENOMEM. */
static int handle_new(CgroupManager *m, const char *label, Cgroup **ret)
{
        _cleanup_(cgroup_freep) Cgroup *cg = NULL;

        if (!m || !ret || !label_valid(label))
                return -EINVAL;
        cg = calloc(1, sizeof *cg);
        if (!cg)
                return -ENOMEM;
        cg->manager = m;
        if (m->path)
                return path_handle_fill(TAKE_PTR(cg), ret);
        if ((m->owner_tag ? asprintf(&cg->name, "%s@%s", label, m->owner_tag)
                          : asprintf(&cg->name, "%s@%d", label, (int)getpid())) < 0) {
                cg->name = NULL;
                return -ENOMEM;
        }
        if (!component_valid(cg->name))
                return -EINVAL;
        for (size_t i = 0; i < m->n_hier; i++)
                if (asprintf(&cg->leaf[i], "%s/%s", m->hier[i].root, cg->name) < 0) {
                        cg->leaf[i] = NULL;
                        return -ENOMEM;
                }
        *ret = TAKE_PTR(cg);
        return 0;
}

int cgroup_manager_set_path(CgroupManager *m, const char *path)
{
        char *p = NULL;

        if (!m || (path && !exact_path_valid(path)))
                return -EINVAL;
        if (path) {
                p = strdup(path);
                if (!p)
                        return -ENOMEM;
                if (strlen(p) > 1 && p[strlen(p) - 1] == '/')
                        p[strlen(p) - 1] = 0;
        }
        free(m->path);
        m->path = p;
        return 0;
}

int cgroup_manager_path_busy(CgroupManager *m)
{
        if (!m || !m->path)
                return -EINVAL;
        for (size_t i = 0; i < m->n_hier; i++) {
                _cleanup_free_ char *dir = NULL;
                pid_t pid;

                if (asprintf(&dir, "%s/%s", cgroup_path_base(m, i), m->path + (m->path[0] == '/')) <
                    0)
                        return -ENOMEM;
                if (cgroup_read_procs(dir, &pid, 1) > 0)
                        return 1;
        }
        return 0;
}

int cgroup_new_unified(CgroupManager *m, const char *label, Cgroup **ret)
{
        _cleanup_(cgroup_freep) Cgroup *cg = NULL;
        int r;

        r = handle_new(m, label, &cg);
        if (r < 0)
                return r;
        /* Pure v2 has nothing but the cgroup2 leaf: its own create (which also
         * enables the controllers) is the whole job. */
        r = m->mode == CGROUP_MODE_V2 ? m->ops->create(cg) : generic_create_some(cg, true);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(cg);
        return 0;
}

/* An owner tag of cgroup_manager_set_owner(): 1 to CGROUP_OWNER_TAG_MAX letters and
 * digits, starting with a letter (so never a pid). */
static bool owner_tag_valid(const char *tag, size_t n)
{
        if (n == 0 || n > CGROUP_OWNER_TAG_MAX || !isalpha((unsigned char)tag[0]))
                return false;
        for (size_t i = 0; i < n; i++)
                if (!isascii((unsigned char)tag[i]) || !isalnum((unsigned char)tag[i]))
                        return false;
        return true;
}

int cgroup_manager_set_owner(CgroupManager *m, const char *tag)
{
        char *t = NULL;

        if (!m || (tag && !owner_tag_valid(tag, strlen(tag))))
                return -EINVAL;
        if (tag && !(t = strdup(tag)))
                return -ENOMEM;
        free(m->owner_tag);
        m->owner_tag = t;
        return 0;
}

/* "<label>@<owner>": a valid label, an '@', and a pid in 1..INT_MAX or an owner
 * tag. *ret_owner (may be NULL) points at the owner in name. */
static bool leaf_name_valid(const char *name, const char **ret_owner)
{
        const char *at = name ? strrchr(name, '@') : NULL;
        _cleanup_free_ char *label = NULL;
        uint64_t pid;

        if (!at)
                return false;
        if (!owner_tag_valid(at + 1, strlen(at + 1)) &&
            (strlen(at + 1) > 10 || parse_u64(at + 1, strlen(at + 1), &pid) < 0 || pid == 0 ||
             pid > INT_MAX || at[1] == '0'))
                return false;
        label = strndup(name, (size_t)(at - name));
        if (!label || !label_valid(label))
                return false;
        if (ret_owner)
                *ret_owner = at + 1;
        return true;
}

int cgroup_open(CgroupManager *m, const char *name, Cgroup **ret)
{
        _cleanup_(cgroup_freep) Cgroup *cg = NULL;
        struct stat st;
        int r;

        if (m && m->path) {
                if (!ret || !name || strcmp(name, m->path) != 0)
                        return -EINVAL;
                cg = calloc(1, sizeof *cg);
                if (!cg)
                        return -ENOMEM;
                cg->manager = m;
                r = path_handle_fill(TAKE_PTR(cg), &cg);
                if (r < 0)
                        return r;
                for (size_t i = 0; i < m->n_hier; i++) {
                        if (stat(cg->leaf[i], &st) < 0)
                                return negative_errno();
                        if (!S_ISDIR(st.st_mode))
                                return -ENOTDIR;
                }
                *ret = TAKE_PTR(cg);
                return 0;
        }
        if (!m || !ret || !leaf_name_valid(name, NULL))
                return -EINVAL;
        cg = calloc(1, sizeof *cg);
        if (!cg)
                return -ENOMEM;
        cg->manager = m;
        cg->name = strdup(name);
        if (!cg->name)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_hier; i++) {
                if (asprintf(&cg->leaf[i], "%s/%s", m->hier[i].root, cg->name) < 0) {
                        cg->leaf[i] = NULL;
                        return -ENOMEM;
                }
                /* Every hierarchy the backend uses has the leaf (cgroup_new()). */
                if (stat(cg->leaf[i], &st) < 0)
                        return negative_errno();
                if (!S_ISDIR(st.st_mode))
                        return -ENOTDIR;
        }
        /* In use from now on, whatever its owner: a sweep must not take it (its
         * owner may be a keeper that is gone, its apps adopted since). */
        if (strv_extend(&m->adopted, name) < 0)
                return -ENOMEM;
        cg->adopted = true;
        *ret = TAKE_PTR(cg);
        return 0;
}

Cgroup *cgroup_close(Cgroup *cg)
{
        return cgroup_free(cg);
}

const char *cgroup_name(const Cgroup *cg)
{
        return cg ? cg->name : NULL;
}

typedef struct SweepOwned {
        const char *owner;
        char *const *keep;
} SweepOwned;

/* cgroup_sweep_owned()'s pick: a valid leaf of owner, or of a dead owner, not kept. */
static bool pick_owned(const char *name, const void *ud)
{
        const SweepOwned *w = ud;
        const char *o;

        return leaf_name_valid(name, &o) && (strcmp(o, w->owner) == 0 || leaf_owner_dead(name)) &&
               !strv_has((char **)w->keep, name);
}

int cgroup_sweep_owned(CgroupManager *m, const char *owner, char *const *keep)
{
        SweepOwned w = {.owner = owner, .keep = keep};

        if (!m || !owner || !owner_tag_valid(owner, strlen(owner)))
                return -EINVAL;
        return sweep_leaves(m, pick_owned, &w);
}

int cgroup_new_rest(Cgroup *cg)
{
        if (!cg)
                return -EINVAL;
        if (cg->manager->mode == CGROUP_MODE_V2)
                return 0;
        return generic_create_some(cg, false);
}

int cgroup_new_exclusive(CgroupManager *m, const char *label, Cgroup **ret)
{
        _cleanup_(cgroup_freep) Cgroup *cg = NULL;
        int r;

        r = handle_new(m, label, &cg);
        if (r < 0)
                return r;
        if (m->mode == CGROUP_MODE_V2) {
                /* v2_create()'s work, with an exclusive mkdir of the leaf. */
                const CgroupHierarchy *h = &m->hier[m->slot[CGROUP_SLOT_UNIFIED]];

                r = cgroup_mkdir(h->root);
                if (r >= 0)
                        r = cgroup_v2_enable_controllers(h->parent);
                if (r >= 0)
                        r = cgroup_v2_enable_controllers(h->root);
                if (r >= 0)
                        r = create_some(cg, true, true);
        } else {
                r = create_some(cg, true, true);
                if (r >= 0) {
                        r = create_some(cg, false, true);
                        /* The cgroup2 leaf is this call's (made new): it goes; the
                         * v1 leaf that exists is another's, and stays. */
                        for (size_t i = 0; r < 0 && i < m->n_hier; i++)
                                if (m->hier[i].unified)
                                        (void)rmdir(cg->leaf[i]);
                }
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(cg);
        return 0;
}

/* rename(2) that never replaces to: RENAME_NOREPLACE where the file system takes
 * it, else plain rename (kernfs: it refuses an existing target itself). */
static int rename_noreplace(const char *from, const char *to)
{
        if (renameat2(AT_FDCWD, from, AT_FDCWD, to, RENAME_NOREPLACE) >= 0)
                return 0;
        if (errno != EINVAL)
                return -1;
        return rename(from, to);
}

int cgroup_rename(Cgroup *cg, const char *label)
{
        const CgroupManager *m;
        char *leaf[_CGROUP_SLOT_MAX] = {};
        _cleanup_free_ char *name = NULL;
        const char *owner;
        size_t done = 0;
        int r = 0;

        if (!cg || !label_valid(label) || cg->adopted)
                return -EINVAL;
        m = cg->manager;
        /* cgroup2 has no rename (its kernfs ops lack one: EPERM): one name for the
         * leaf in every hierarchy, or none renamed. */
        for (size_t i = 0; i < m->n_hier; i++)
                if (m->hier[i].unified)
                        return -EOPNOTSUPP;
        owner = strrchr(cg->name, '@');
        if (!owner || asprintf(&name, "%s%s", label, owner) < 0) {
                name = NULL;
                return owner ? -ENOMEM : -EINVAL;
        }
        if (!component_valid(name))
                return -EINVAL;
        for (size_t i = 0; i < m->n_hier; i++)
                if (asprintf(&leaf[i], "%s/%s", m->hier[i].root, name) < 0) {
                        leaf[i] = NULL;
                        r = -ENOMEM;
                        goto out;
                }
        /* Never over another leaf: RENAME_NOREPLACE, which kernfs does not take
         * (EINVAL), and kernfs refuses a target that exists anyway (EEXIST). */
        for (; done < m->n_hier; done++)
                if (rename_noreplace(cg->leaf[done], leaf[done]) < 0) {
                        r = negative_errno();
                        break;
                }
        if (r < 0) {
                while (done-- > 0)
                        (void)rename_noreplace(leaf[done], cg->leaf[done]);
                goto out;
        }
        for (size_t i = 0; i < m->n_hier; i++) {
                free(cg->leaf[i]);
                cg->leaf[i] = TAKE_PTR(leaf[i]);
        }
        free(cg->name);
        cg->name = TAKE_PTR(name);
out:
        for (size_t i = 0; i < m->n_hier; i++)
                free(leaf[i]);
        return r;
}

int cgroup_new(CgroupManager *m, const char *label, Cgroup **ret)
{
        Cgroup *cg = NULL;
        int r;

        r = cgroup_new_unified(m, label, &cg);
        if (r < 0)
                return r;
        r = cgroup_new_rest(cg);
        if (r < 0) {
                cgroup_destroy(cg);
                return r;
        }
        *ret = cg;
        return 0;
}

/*
 * Applies limits (units in cgroup.h; 0 fields leave a knob alone). Checked here, before
 * anything is written: cpu_weight 1..10000, cpu_period_us 1000..1000000, cpu_quota_us
 * >= 1000 (the kernel's bounds, cgroup-internal.h). Returns 0, -EINVAL, -EOPNOTSUPP
 * (v1 without that controller mounted), or -errno of the write (-ENOENT: on v2 the
 * controller is not enabled for the leaf).
 */
int cgroup_set_limits(Cgroup *cg, const CgroupLimits *limits)
{
        int r;

        if (!cg || !limits)
                return -EINVAL;
        if (limits->cpu_weight != 0 &&
            (limits->cpu_weight < CGROUP_WEIGHT_MIN || limits->cpu_weight > CGROUP_WEIGHT_MAX))
                return -EINVAL;
        if (limits->cpu_period_us != 0 && (limits->cpu_period_us < CGROUP_CPU_PERIOD_MIN_US ||
                                           limits->cpu_period_us > CGROUP_CPU_PERIOD_MAX_US))
                return -EINVAL;
        if (limits->cpu_quota_us != 0 && limits->cpu_quota_us < CGROUP_CPU_QUOTA_MIN_US)
                return -EINVAL;
        r = cg->manager->ops->set_limits(cg, limits);
        if (r >= 0 && limits->resources)
                r = cgroup_apply_resources(cg, limits->resources, NULL);
        return r;
}

/*
 * Moves pid (0: the calling process, as cgroup.procs reads it) into the leaf in every
 * hierarchy the backend uses. Returns 0, -EINVAL, or -errno of the first write that
 * failed (-ESRCH: no such process); earlier hierarchies keep the task.
 */
int cgroup_join_prepare(Cgroup *cg, CgroupJoin *ret)
{
        const CgroupManager *m;
        CgroupJoin j = {.unified_fd = -EBADF};

        if (!cg)
                return -EINVAL;
        m = cg->manager;
        for (size_t i = 0; i < m->n_hier; i++) {
                if (m->hier[i].unified) {
                        j.unified_fd = open(cg->leaf[i], O_PATH | O_DIRECTORY | O_CLOEXEC);
                        if (j.unified_fd < 0)
                                goto fail;
                        continue;
                }
                if (j.n_v1 >= CGROUP_JOIN_MAX_V1) {
                        errno = E2BIG;
                        goto fail;
                }
                {
                        char path[PATH_MAX];

                        snprintf(path, sizeof path, "%s/tasks", cg->leaf[i]);
                        j.v1_fds[j.n_v1] = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
                        if (j.v1_fds[j.n_v1] < 0)
                                goto fail;
                        j.n_v1++;
                }
        }
        *ret = j;
        return 0;
fail : {
        int r = negative_errno();

        cgroup_join_done(&j);
        return r;
}
}

int cgroup_join_self(CgroupJoin *j)
{
        int r = 0;

        for (unsigned i = 0; i < j->n_v1; i++) {
                if (r == 0 && write(j->v1_fds[i], "0", 1) != 1)
                        r = negative_errno();
                j->v1_fds[i] = safe_close(j->v1_fds[i]);
        }
        j->n_v1 = 0;
        return r;
}

void cgroup_join_done(CgroupJoin *j)
{
        for (unsigned i = 0; i < j->n_v1; i++)
                j->v1_fds[i] = safe_close(j->v1_fds[i]);
        j->n_v1 = 0;
        j->unified_fd = safe_close(j->unified_fd);
}

int cgroup_attach(Cgroup *cg, pid_t pid)
{
        if (!cg || pid < 0)
                return -EINVAL;
        return cg->manager->ops->attach(cg, pid);
}

/*
 * Freezes (waiting until the kernel reports the cgroup frozen, at most
 * CGROUP_FREEZE_TIMEOUT_MS) or thaws. Returns 0, -ETIMEDOUT (then thawed again),
 * -EOPNOTSUPP (v1 without a freezer hierarchy), -errno.
 */
int cgroup_freeze(Cgroup *cg, bool frozen)
{
        if (!cg)
                return -EINVAL;
        return cg->manager->ops->freeze(cg, frozen);
}

/*
 * SIGKILLs every task in the cgroup and waits until its cgroup.procs are empty (zombies
 * are not listed; pids.current counts them until they are reaped). Returns 0, -EBUSY
 * if tasks remain after the bounded rounds, -errno.
 */
int cgroup_kill(Cgroup *cg)
{
        if (!cg)
                return -EINVAL;
        return cg->manager->ops->kill(cg);
}

/*
 * Reads the counters into *ret (units in cgroup.h). A counter whose controller the
 * backend lacks reads as 0 (memory_max as UINT64_MAX). Returns 0 or -errno.
 */
int cgroup_stats(Cgroup *cg, CgroupStats *ret)
{
        CgroupStats st = {.memory_max = UINT64_MAX};
        int r;

        if (!cg || !ret)
                return -EINVAL;
        r = cg->manager->ops->stats(cg, &st);
        if (r < 0)
                return r;
        *ret = st;
        return 0;
}

int cgroup_oom_kills(Cgroup *cg, uint64_t *ret)
{
        const char *mem;
        uint64_t n = 0;
        int r;

        if (!cg || !ret)
                return -EINVAL;
        if (cg->manager->mode == CGROUP_MODE_V2) {
                mem = cgroup_leaf(cg, CGROUP_SLOT_UNIFIED);
                r = mem ? cgroup_read_keyed_u64(mem, "memory.events", "oom_kill", &n) : 0;
        } else {
                mem = cgroup_leaf(cg, CGROUP_SLOT_MEMORY);
                r = mem ? cgroup_read_keyed_u64(mem, "memory.oom_control", "oom_kill", &n) : 0;
        }
        r = cgroup_optional(r);
        if (r < 0)
                return r;
        *ret = n;
        return 0;
}

/*
 * One rmdir per leaf, no retry: Linux refuses a leaf that still has tasks at once
 * (EBUSY), so this is a cheap test and removal in one. Returns 0 when every leaf is
 * gone, -EBUSY (or another -errno) when one is left.
 */
static int rmdir_all_once(Cgroup *cg)
{
        int ret = 0;

        for (size_t i = 0; i < cg->manager->n_hier; i++)
                if (rmdir(cg->leaf[i]) < 0 && errno != ENOENT && ret == 0)
                        ret = negative_errno();
        return ret;
}

Cgroup *cgroup_destroy(Cgroup *cg)
{
        if (!cg)
                return NULL;
        /* Usually the tasks are gone already (a sandbox's pid namespace dies with
         * its init): then the leaves just go, with no kill rounds to read through. */
        if (rmdir_all_once(cg) < 0) {
                (void)cg->manager->ops->kill(cg);
                (void)cg->manager->ops->destroy(cg);
        }
        return cgroup_free(cg);
}

const char *cgroup_path(const Cgroup *cg, const char *ctrl)
{
        if (!cg || !ctrl)
                return NULL;
        for (CgroupSlot s = 0; s < _CGROUP_SLOT_MAX; s++)
                if (streq(ctrl, slot_names[s]))
                        return cgroup_leaf(cg, s);
        return NULL;
}

/* The name of a controller slot that uses hierarchy i (NULL for the cgroup2 one), as
 * /proc/self/cgroup lists it. */
static const char *hierarchy_ctrl(const CgroupManager *m, size_t i)
{
        if (m->hier[i].unified)
                return NULL;
        for (CgroupSlot s = 0; s < CGROUP_SLOT_UNIFIED; s++)
                if (m->slot[s] == (int)i)
                        return slot_names[s];
        return NULL;
}

/* True if dir's cgroup.procs lists this process and no other. */
static bool cgroup_holds_only_self(const char *dir)
{
        pid_t pids[2];
        int n = cgroup_read_procs(dir, pids, ELEMENTSOF(pids));

        return n == 1 && pids[0] == getpid();
}

/* "<dir>/<name>", or NULL on -ENOMEM. */
static char *path_join2(const char *dir, const char *name)
{
        char *p;

        return asprintf(&p, "%s/%s", dir, name) < 0 ? NULL : p;
}

/*
 * True if dir (a cgroup directory under mount) and each cgroup above it up to mount
 * could only have been changed by us or root: owned by geteuid() or root, not
 * writable by group or others. A cgroup delegated to a user (systemd chowns
 * user@UID.service's subtree to UID) is not: that user could rename, remove or make
 * cgroups in it, and own what they make, so apps' leaves there would hold limits,
 * freezing and kills only as long as the user lets them.
 */
static bool cgroup_chain_trusted(const char *mount, const char *dir)
{
        _cleanup_free_ char *p = strdup(dir);
        size_t n = strlen(mount);
        uid_t me = geteuid();

        if (!p || strncmp(p, mount, n) != 0)
                return false;
        for (;;) {
                struct stat st;
                char *slash;

                if (stat(p, &st) < 0 || (st.st_uid != me && st.st_uid != 0) ||
                    (st.st_mode & (S_IWGRP | S_IWOTH)))
                        return false;
                if (strlen(p) <= n)
                        return true;
                slash = strrchr(p, '/');
                if (!slash || (size_t)(slash - p) < n)
                        return true;
                *slash = 0;
        }
}

/* How often cgroup_manager_enter_marked() makes its base again when a sweep removed
 * it under it (each time, another cellad's sweep must have found it empty). */
#define CGROUP_ENTER_TRIES 8

/* Records mark (a state directory's path) on the base dir as CGROUP_BASE_MARK_XATTR;
 * a mark already there and equal is kept. Returns 0 or -errno of setxattr(2)
 * (-EOPNOTSUPP: a file system without trusted xattrs, which is not fatal). */
static int base_mark(const char *dir, const char *mark)
{
        char got[PATH_MAX];
        ssize_t n = getxattr(dir, CGROUP_BASE_MARK_XATTR, got, sizeof got);

        if (n == (ssize_t)strlen(mark) && memcmp(got, mark, (size_t)n) == 0)
                return 0;
        if (setxattr(dir, CGROUP_BASE_MARK_XATTR, mark, strlen(mark), 0) < 0)
                return errno == EOPNOTSUPP || errno == ENOTSUP ? 0 : negative_errno();
        return 0;
}

int cgroup_manager_enter_marked(CgroupManager *m, const char *leaf, const char *base,
                                const char *mark)
{
        _cleanup_(proc_cache_done) ProcCache pc = {};
        char pid[16];
        int r;

        if (!m || !leaf || !base || !*leaf || !*base || strchr(leaf, '/') || strchr(base, '/') ||
            streq(leaf, "cella") || streq(base, "cella"))
                return -EINVAL;
        snprintf(pid, sizeof pid, "%d", (int)getpid());
        for (size_t i = 0; i < m->n_hier; i++) {
                CgroupHierarchy *h = &m->hier[i];
                _cleanup_free_ char *rel = NULL, *self = NULL, *b = NULL, *l = NULL;
                const char *last;
                bool made = false, trusted;

                r = default_parent(&pc, h->mount, hierarchy_ctrl(m, i), &rel);
                if (r < 0)
                        return r;
                self = rel[0] ? path_join2(h->mount, rel) : strdup(h->mount);
                if (!self)
                        return -ENOMEM;
                last = strrchr(rel, '/') ? strrchr(rel, '/') + 1 : rel;
                trusted = !rel[0] || cgroup_chain_trusted(h->mount, self);
                /* Started in a cgroup another user may change: cella's tree goes
                 * below the hierarchy's root, which is root's. */
                if (rel[0] && trusted && streq(last, leaf)) {
                        /* Already in a "<base>/<leaf>" (a re-exec): that base. */
                        b = strndup(self, strlen(self) - strlen(leaf) - 1);
                } else if (rel[0] && trusted && cgroup_holds_only_self(self)) {
                        /* A cgroup of its own (systemd's service with Delegate=yes). */
                        b = strdup(self);
                } else {
                        /* Shared (a shell's): a base made below it, or on pure v2 below
                         * the root (no internal processes: the shell's cgroup could not
                         * have children with controllers). */
                        b = path_join2((h->unified && m->mode == CGROUP_MODE_V2) || !trusted
                                               ? h->mount
                                               : self,
                                       base);
                        made = true;
                }
                if (!b)
                        return -ENOMEM;
                l = path_join2(b, leaf);
                if (!l)
                        return -ENOMEM;
                /* A base made for us may be removed by another cellad's sweep of
                 * empty bases (cgroup_manager_sweep_bases()) between the mkdir and
                 * the move, while it holds no process: made again, a few times. Once
                 * this process is in the leaf, no rmdir can take it. */
                for (unsigned tries = 0;; tries++) {
                        r = cgroup_mkdir(b);
                        if (r >= 0 && made && mark)
                                r = base_mark(b, mark);
                        if (r >= 0)
                                r = cgroup_mkdir(l);
                        if (r >= 0)
                                r = cgroup_write_knob(l, "cgroup.procs", pid);
                        if (r != -ENOENT || !made || tries >= CGROUP_ENTER_TRIES)
                                break;
                }
                if (r < 0)
                        return r;
                free(h->parent);
                free(h->root);
                h->root = path_join2(b, "cella");
                h->parent = TAKE_PTR(b);
                free(h->self);
                h->self = TAKE_PTR(self);
                free(h->leaf_dir);
                h->leaf_dir = TAKE_PTR(l);
                h->made_base = made;
                if (!h->root)
                        return -ENOMEM;
        }
        return 0;
}

int cgroup_manager_enter(CgroupManager *m, const char *leaf, const char *base)
{
        return cgroup_manager_enter_marked(m, leaf, base, NULL);
}

/*
 * rmdir(2) of dir, the leaf the caller has just left, retried while it is busy but
 * lists no process: a task that is exiting (a child of ours between its exit and
 * its reap, or a process of another daemon sharing the base as it ends) keeps a
 * cgroup busy for a moment after it has left cgroup.procs. At most 100 tries 2 ms
 * apart; a leaf that lists a process is another daemon's or live apps', and is left
 * at once.
 */
static void leaf_rmdir(const char *dir)
{
        for (int i = 0; i < 100; i++) {
                _cleanup_free_ char *procs = NULL;

                if (rmdir(dir) == 0 || errno != EBUSY)
                        return;
                if (cgroup_read_knob(dir, "cgroup.procs", &procs) < 0 || procs[0] != '\0')
                        return;
                (void)nanosleep(&(struct timespec){.tv_nsec = 2 * 1000 * 1000}, NULL);
        }
}

void cgroup_manager_leave(CgroupManager *m)
{
        char pid[16];

        if (!m)
                return;
        snprintf(pid, sizeof pid, "%d", (int)getpid());
        for (size_t i = 0; i < m->n_hier; i++) {
                CgroupHierarchy *h = &m->hier[i];

                if (!h->leaf_dir || !h->self)
                        continue;
                /* Back where it came from; its own base (systemd's service) stays. */
                if (streq(h->self, h->leaf_dir) ||
                    cgroup_write_knob(h->self, "cgroup.procs", pid) < 0)
                        continue;
                /* Each only if empty: another daemon or live apps keep it. */
                leaf_rmdir(h->leaf_dir);
                (void)rmdir(h->root);
                if (h->made_base)
                        (void)rmdir(h->parent);
        }
}

/* Whether the cgroup dir and every cgroup below it (at most 16 deep) list no
 * process; a cgroup that cannot be read counts as busy. */
static bool subtree_empty(const char *dir, unsigned depth)
{
        _cleanup_free_ char *procs = NULL;
        _cleanup_(closedirp) DIR *d = NULL;
        struct dirent *de;

        if (depth > 16 || cgroup_read_knob(dir, "cgroup.procs", &procs) < 0 || procs[0] != '\0')
                return false;
        d = opendir(dir);
        if (!d)
                return false;
        while ((de = readdir(d))) {
                _cleanup_free_ char *sub = NULL;

                if (de->d_type != DT_DIR || streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                sub = path_join2(dir, de->d_name);
                if (!sub || !subtree_empty(sub, depth + 1))
                        return false;
        }
        return true;
}

/* Removes the cgroups below dir and dir, children first, each only while guard
 * does not exist (a cellad that moved into it again: the base is its from then
 * on). Returns 0, or the -errno of the first rmdir that failed (-EBUSY: a process
 * came, -EEXIST: guard came back). */
static int subtree_remove(const char *dir, const char *guard, unsigned depth)
{
        _cleanup_(closedirp) DIR *d = NULL;
        struct dirent *de;
        int r;

        if (depth > 16)
                return -ELOOP;
        d = opendir(dir);
        if (!d)
                return errno == ENOENT ? 0 : negative_errno();
        while ((de = readdir(d))) {
                _cleanup_free_ char *sub = NULL;

                if (de->d_type != DT_DIR || streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                sub = path_join2(dir, de->d_name);
                if (!sub)
                        return -ENOMEM;
                r = subtree_remove(sub, guard, depth + 1);
                if (r < 0)
                        return r;
        }
        if (access(guard, F_OK) == 0)
                return -EEXIST;
        if (rmdir(dir) < 0 && errno != ENOENT)
                return negative_errno();
        return 0;
}

int cgroup_manager_sweep_bases(CgroupManager *m, const char *leaf, const char *prefix,
                               CgroupBaseGoneFn gone, void *userdata)
{
        int removed = 0;

        if (!m || !leaf || !prefix || !*prefix || !gone)
                return -EINVAL;
        for (size_t i = 0; i < m->n_hier; i++) {
                CgroupHierarchy *h = &m->hier[i];
                _cleanup_free_ char *above = NULL;
                _cleanup_(closedirp) DIR *d = NULL;
                const char *own;
                struct dirent *de;

                if (!h->made_base || !h->parent || !(own = strrchr(h->parent, '/')))
                        continue;
                above = strndup(h->parent, (size_t)(own - h->parent));
                own++;
                if (!above)
                        return -ENOMEM;
                d = opendir(above);
                if (!d)
                        continue;
                while ((de = readdir(d))) {
                        _cleanup_free_ char *base = NULL, *guard = NULL;
                        char mark[PATH_MAX];
                        ssize_t n;
                        int r;

                        if (de->d_type != DT_DIR || streq(de->d_name, own) ||
                            strncmp(de->d_name, prefix, strlen(prefix)) != 0)
                                continue;
                        base = path_join2(above, de->d_name);
                        guard = base ? path_join2(base, leaf) : NULL;
                        if (!guard)
                                return -ENOMEM;
                        n = getxattr(base, CGROUP_BASE_MARK_XATTR, mark, sizeof mark - 1);
                        if (n >= 0)
                                mark[n] = 0;
                        if (!gone(de->d_name + strlen(prefix), n >= 0 ? mark : NULL, userdata) ||
                            !subtree_empty(base, 0))
                                continue;
                        /* The leaf first: a cellad that moved in meanwhile keeps it
                         * (EBUSY), and one that moves in later makes it again, which
                         * stops the rest (guard). */
                        if (rmdir(guard) < 0 && errno != ENOENT)
                                continue;
                        /* A failure leaves the rest for a later sweep. */
                        r = subtree_remove(base, guard, 0);
                        if (r >= 0)
                                removed++;
                }
        }
        return removed;
}
