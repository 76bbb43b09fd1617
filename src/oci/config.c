/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The config.json parser (config.h; the OCI runtime specification, config.md and
 * config-linux.md, 1.0.0 to 1.2.x). A bundle's config is written by a container
 * engine, and through its image and command line by whoever the engine serves, so
 * every value is checked here against the spec's types and a named bound before
 * anything else reads it. Errors name the file, the JSON path and what was wrong;
 * values quoted back are escaped and cut to QUOTE_MAX bytes.
 *
 * JSON null counts as absent (Go engines write "field": null for nil slices). Unknown
 * fields are ignored, as config.md asks ("Runtimes MUST ignore unknown properties");
 * known fields cella does not apply are listed in OciConfig.notes.
 *
 * Integers: jansson reads them as signed 64-bit; the spec's uint64 fields may hold
 * more (RLIM_INFINITY), so such literals are marked before jansson reads the text
 * (big_uints_mark) and taken back where a uint64 is wanted.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "base/strv.h"
#include "oci/config.h"

/* Bytes of escaped input quoted back in a message before it is cut with "...". */
#define QUOTE_MAX 64u
/* Bytes of a JSON path in a message ("linux.seccomp.syscalls[12].args[3].op"). */
#define PATH_MAX_LEN 256u
/* user_namespaces(7): at most 340 lines in a uid_map or gid_map (since Linux 4.15). */
#define ID_MAP_LINES_MAX 340u
/* The kernel's MINORBITS (20) and the 12 bits left for the major in a dev_t. */
#define DEV_MAJOR_MAX 0xfffu
#define DEV_MINOR_MAX 0xfffffu
/* seccomp(2): a system call has six arguments. */
#define SECCOMP_ARGS_MAX 6u

/* linux/capability.h, capability numbers 0..40. */
static const char *const cap_names[] = {
        "CAP_CHOWN",
        "CAP_DAC_OVERRIDE",
        "CAP_DAC_READ_SEARCH",
        "CAP_FOWNER",
        "CAP_FSETID",
        "CAP_KILL",
        "CAP_SETGID",
        "CAP_SETUID",
        "CAP_SETPCAP",
        "CAP_LINUX_IMMUTABLE",
        "CAP_NET_BIND_SERVICE",
        "CAP_NET_BROADCAST",
        "CAP_NET_ADMIN",
        "CAP_NET_RAW",
        "CAP_IPC_LOCK",
        "CAP_IPC_OWNER",
        "CAP_SYS_MODULE",
        "CAP_SYS_RAWIO",
        "CAP_SYS_CHROOT",
        "CAP_SYS_PTRACE",
        "CAP_SYS_PACCT",
        "CAP_SYS_ADMIN",
        "CAP_SYS_BOOT",
        "CAP_SYS_NICE",
        "CAP_SYS_RESOURCE",
        "CAP_SYS_TIME",
        "CAP_SYS_TTY_CONFIG",
        "CAP_MKNOD",
        "CAP_LEASE",
        "CAP_AUDIT_WRITE",
        "CAP_AUDIT_CONTROL",
        "CAP_SETFCAP",
        "CAP_MAC_OVERRIDE",
        "CAP_MAC_ADMIN",
        "CAP_SYSLOG",
        "CAP_WAKE_ALARM",
        "CAP_BLOCK_SUSPEND",
        "CAP_AUDIT_READ",
        "CAP_PERFMON",
        "CAP_BPF",
        "CAP_CHECKPOINT_RESTORE",
};

static const struct {
        const char *name;
        int resource;
} rlimit_names[] = {
        {"RLIMIT_AS", RLIMIT_AS},
        {"RLIMIT_CORE", RLIMIT_CORE},
        {"RLIMIT_CPU", RLIMIT_CPU},
        {"RLIMIT_DATA", RLIMIT_DATA},
        {"RLIMIT_FSIZE", RLIMIT_FSIZE},
        {"RLIMIT_LOCKS", RLIMIT_LOCKS},
        {"RLIMIT_MEMLOCK", RLIMIT_MEMLOCK},
        {"RLIMIT_MSGQUEUE", RLIMIT_MSGQUEUE},
        {"RLIMIT_NICE", RLIMIT_NICE},
        {"RLIMIT_NOFILE", RLIMIT_NOFILE},
        {"RLIMIT_NPROC", RLIMIT_NPROC},
        {"RLIMIT_RSS", RLIMIT_RSS},
        {"RLIMIT_RTPRIO", RLIMIT_RTPRIO},
        {"RLIMIT_RTTIME", RLIMIT_RTTIME},
        {"RLIMIT_SIGPENDING", RLIMIT_SIGPENDING},
        {"RLIMIT_STACK", RLIMIT_STACK},
};

static const struct {
        const char *name;
        int type;
} namespace_names[] = {
        {"pid", CLONE_NEWPID},       {"network", CLONE_NEWNET}, {"mount", CLONE_NEWNS},
        {"ipc", CLONE_NEWIPC},       {"uts", CLONE_NEWUTS},     {"user", CLONE_NEWUSER},
        {"cgroup", CLONE_NEWCGROUP},
};

static const struct {
        const char *name;
        OciSeccompAction action;
} seccomp_actions[] = {
        {"SCMP_ACT_KILL", OCI_SCMP_KILL},
        {"SCMP_ACT_KILL_THREAD", OCI_SCMP_KILL},
        {"SCMP_ACT_KILL_PROCESS", OCI_SCMP_KILL_PROCESS},
        {"SCMP_ACT_TRAP", OCI_SCMP_TRAP},
        {"SCMP_ACT_ERRNO", OCI_SCMP_ERRNO},
        {"SCMP_ACT_TRACE", OCI_SCMP_TRACE},
        {"SCMP_ACT_ALLOW", OCI_SCMP_ALLOW},
        {"SCMP_ACT_LOG", OCI_SCMP_LOG},
        {"SCMP_ACT_NOTIFY", OCI_SCMP_NOTIFY},
};

/* libseccomp's enum scmp_compare (seccomp.h): SCMP_CMP_NE = 1 ... SCMP_CMP_MASKED_EQ = 7. */
static const char *const seccomp_ops[] = {
        NULL,          "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE",
        "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_MASKED_EQ",
};

/* config-linux.md "Seccomp": the architectures and flags a config may name. */
static const char *const seccomp_archs[] = {
        "SCMP_ARCH_X86",     "SCMP_ARCH_X86_64",   "SCMP_ARCH_X32",         "SCMP_ARCH_ARM",
        "SCMP_ARCH_AARCH64", "SCMP_ARCH_MIPS",     "SCMP_ARCH_MIPS64",      "SCMP_ARCH_MIPS64N32",
        "SCMP_ARCH_MIPSEL",  "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC",
        "SCMP_ARCH_PPC64",   "SCMP_ARCH_PPC64LE",  "SCMP_ARCH_S390",        "SCMP_ARCH_S390X",
        "SCMP_ARCH_PARISC",  "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64",     "SCMP_ARCH_LOONGARCH64",
        "SCMP_ARCH_M68K",    "SCMP_ARCH_SH",       "SCMP_ARCH_SHEB",
};

static const char *const seccomp_flags[] = {
        "SECCOMP_FILTER_FLAG_TSYNC",
        "SECCOMP_FILTER_FLAG_LOG",
        "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
        "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
};

/* config-linux.md "Rootfs Mount Propagation". */
static const char *const propagation_names[] = {
        "private", "rprivate", "shared", "rshared", "slave", "rslave", "unbindable", "runbindable",
};

static const char *const hook_names[_OCI_HOOK_MAX] = {
        [OCI_HOOK_PRESTART] = "prestart",
        [OCI_HOOK_CREATE_RUNTIME] = "createRuntime",
        [OCI_HOOK_CREATE_CONTAINER] = "createContainer",
        [OCI_HOOK_START_CONTAINER] = "startContainer",
        [OCI_HOOK_POSTSTART] = "poststart",
        [OCI_HOOK_POSTSTOP] = "poststop",
};

const char *oci_capability_name(int cap)
{
        if (cap < 0 || (size_t)cap >= ELEMENTSOF(cap_names))
                return NULL;
        return cap_names[cap];
}

typedef struct Parser {
        const char *file; /* "config.json", "process.json": first word of every message */
        char *err;
        size_t errlen;
        char ***notes; /* OciConfig.notes, or NULL (process.json) */
} Parser;

/* s escaped (\" \\ \xNN for bytes outside printable ASCII) and cut to QUOTE_MAX, in quotes. */
static void quote(const char *s, char *buf, size_t size)
{
        size_t o = 0, n = 0;

        if (size < 8) {
                if (size)
                        buf[0] = 0;
                return;
        }
        buf[o++] = '"';
        for (; *s && o + 8 < size; s++, n++) {
                unsigned char c = (unsigned char)*s;

                if (n >= QUOTE_MAX) {
                        memcpy(buf + o, "...", 3);
                        o += 3;
                        break;
                }
                if (c == '"' || c == '\\') {
                        buf[o++] = '\\';
                        buf[o++] = (char)c;
                } else if (c < 0x20 || c >= 0x7f) {
                        o += (size_t)snprintf(buf + o, size - o, "\\x%02x", c);
                } else
                        buf[o++] = (char)c;
        }
        buf[o++] = '"';
        buf[o] = 0;
}

char *oci_escape(const char *in, char *out, size_t size)
{
        size_t o = 0;

        if (size == 0)
                return out;
        for (; *in && o + 1 < size; in++) {
                unsigned char c = (unsigned char)*in;

                if (c >= 0x20 && c < 0x7f) {
                        out[o++] = (char)c;
                        continue;
                }
                if (o + 5 > size)
                        break;
                snprintf(out + o, size - o, "\\x%02x", c);
                o += 4;
        }
        out[o] = 0;
        return out;
}

_printf_(4, 5) static int fail(Parser *p, int r, const char *path, const char *fmt, ...)
{
        char msg[1024];
        va_list ap;
        int n;

        if (!p->err || p->errlen == 0)
                return r;
        n = snprintf(msg, sizeof msg, "%s: %s%s", p->file, path, *path ? ": " : "");
        if (n < 0 || (size_t)n >= sizeof msg)
                n = 0;
        va_start(ap, fmt);
        vsnprintf(msg + n, sizeof msg - (size_t)n, fmt, ap);
        va_end(ap);
        oci_escape(msg, p->err, p->errlen);
        return r;
}

static int oom(Parser *p)
{
        return fail(p, -ENOMEM, "", "out of memory");
}

static int note(Parser *p, const char *path, const char *what)
{
        char raw[512], line[512];

        if (!p->notes)
                return 0;
        snprintf(raw, sizeof raw, "%s: %s", path, what);
        if (strv_extend(p->notes, oci_escape(raw, line, sizeof line)) < 0)
                return oom(p);
        return 0;
}

/* snprintf into a PATH_MAX_LEN buffer; a longer path is cut (it only names a place). */
_printf_(2, 3) static void path_format(char *buf, const char *fmt, ...)
{
        va_list ap;

        va_start(ap, fmt);
        vsnprintf(buf, PATH_MAX_LEN, fmt, ap);
        va_end(ap);
}

static void path_key(char *buf, const char *path, const char *key)
{
        path_format(buf, "%s%s%s", path, *path ? "." : "", key);
}

static void path_index(char *buf, const char *path, size_t i)
{
        path_format(buf, "%s[%zu]", path, i);
}

static const char *json_type_name(const json_t *v)
{
        switch (json_typeof(v)) {
        case JSON_OBJECT:
                return "an object";
        case JSON_ARRAY:
                return "an array";
        case JSON_STRING:
                return "a string";
        case JSON_INTEGER:
                return "an integer";
        case JSON_REAL:
                return "a real number";
        case JSON_TRUE:
        case JSON_FALSE:
                return "a boolean";
        case JSON_NULL:
                return "null";
        }
        return "a JSON value";
}

/* o's member key, or NULL when absent or null; an error if required and absent. */
static int member(Parser *p, const json_t *o, const char *path, const char *key, bool required,
                  json_t **ret)
{
        json_t *v = o ? json_object_get(o, key) : NULL;
        char sub[PATH_MAX_LEN];

        *ret = NULL;
        if (v && json_is_null(v))
                v = NULL;
        if (!v && required) {
                path_key(sub, path, key);
                return fail(p, -EINVAL, sub, "missing (required)");
        }
        *ret = v;
        return 0;
}

static int want_type(Parser *p, const json_t *v, const char *path, json_type type, const char *what)
{
        if (json_typeof(v) != type)
                return fail(p, -EINVAL, path, "must be %s, not %s", what, json_type_name(v));
        return 0;
}

/* An object member that must be an object. */
static int get_object(Parser *p, const json_t *o, const char *path, const char *key, bool required,
                      json_t **ret)
{
        char sub[PATH_MAX_LEN];
        int r;

        r = member(p, o, path, key, required, ret);
        if (r < 0 || !*ret)
                return r;
        path_key(sub, path, key);
        r = want_type(p, *ret, sub, JSON_OBJECT, "an object");
        if (r < 0)
                return r;
        if (json_object_size(*ret) > OCI_MAX_ITEMS)
                return fail(p, -E2BIG, sub, "more than %u members", OCI_MAX_ITEMS);
        return 0;
}

/* An object member that must be an array of at most OCI_MAX_ITEMS. */
static int get_array(Parser *p, const json_t *o, const char *path, const char *key, bool required,
                     json_t **ret)
{
        char sub[PATH_MAX_LEN];
        int r;

        r = member(p, o, path, key, required, ret);
        if (r < 0 || !*ret)
                return r;
        path_key(sub, path, key);
        r = want_type(p, *ret, sub, JSON_ARRAY, "an array");
        if (r < 0)
                return r;
        if (json_array_size(*ret) > OCI_MAX_ITEMS)
                return fail(p, -E2BIG, sub, "more than %u entries", OCI_MAX_ITEMS);
        return 0;
}

/* v (at path) as a string copy: a JSON string without NUL bytes. */
static int string_value(Parser *p, const json_t *v, const char *path, char **ret)
{
        const char *s;
        int r;

        r = want_type(p, v, path, JSON_STRING, "a string");
        if (r < 0)
                return r;
        s = json_string_value(v);
        /* jansson refuses \u0000 without JSON_ALLOW_NUL; checked again all the same. */
        if (strlen(s) != json_string_length(v))
                return fail(p, -EINVAL, path, "contains a NUL byte");
        *ret = strdup(s);
        if (!*ret)
                return oom(p);
        return 0;
}

static int get_string(Parser *p, const json_t *o, const char *path, const char *key, bool required,
                      char **ret)
{
        char sub[PATH_MAX_LEN];
        json_t *v = NULL;
        int r;

        r = member(p, o, path, key, required, &v);
        if (r < 0 || !v)
                return r;
        path_key(sub, path, key);
        return string_value(p, v, sub, ret);
}

/* A string that must be an absolute path (config.md says which are). */
static int get_abs_path(Parser *p, const json_t *o, const char *path, const char *key,
                        bool required, char **ret)
{
        char sub[PATH_MAX_LEN], q[QUOTE_MAX + 8];
        int r;

        r = get_string(p, o, path, key, required, ret);
        if (r < 0 || !*ret)
                return r;
        if ((*ret)[0] != '/') {
                path_key(sub, path, key);
                quote(*ret, q, sizeof q);
                return fail(p, -EINVAL, sub, "%s is not an absolute path", q);
        }
        return 0;
}

static int get_bool(Parser *p, const json_t *o, const char *path, const char *key, bool *ret)
{
        char sub[PATH_MAX_LEN];
        json_t *v = NULL;
        int r;

        r = member(p, o, path, key, false, &v);
        if (r < 0 || !v)
                return r;
        path_key(sub, path, key);
        if (!json_is_boolean(v))
                return fail(p, -EINVAL, sub, "must be a boolean, not %s", json_type_name(v));
        *ret = json_is_true(v);
        return 0;
}

/* v (at path) as an integer in min..max. */
/*
 * jansson reads integers as int64_t and refuses larger ones, but the spec's uint64
 * fields hold them: an rlimit of RLIM_INFINITY is 18446744073709551615 (Docker's
 * `--ulimit core=-1`). big_uints_mark() rewrites each integer literal above INT64_MAX
 * (and at most UINT64_MAX) into a string of BIG_UINT_MARK and its digits before
 * jansson reads the text; uint_value() takes it back in the uint64 fields, and
 * everywhere else it is out of range.
 */
#define BIG_UINT_MARK "\x01u64:"

/* v's value when it is a marked big integer, in *ret. */
static bool big_uint(const json_t *v, uint64_t *ret)
{
        const char *s;
        char *end;

        if (!json_is_string(v))
                return false;
        s = json_string_value(v);
        if (strncmp(s, BIG_UINT_MARK, strlen(BIG_UINT_MARK)) != 0)
                return false;
        s += strlen(BIG_UINT_MARK);
        errno = 0;
        *ret = strtoull(s, &end, 10);
        return errno == 0 && *end == 0 && end != s;
}

static int int_value(Parser *p, const json_t *v, const char *path, int64_t min, int64_t max,
                     int64_t *ret)
{
        json_int_t n;
        uint64_t u;

        if (big_uint(v, &u))
                return fail(p, -EINVAL, path, "%llu is out of range (%lld to %lld)",
                            (unsigned long long)u, (long long)min, (long long)max);
        if (!json_is_integer(v))
                return fail(p, -EINVAL, path, "must be an integer, not %s", json_type_name(v));
        n = json_integer_value(v);
        if (n < min || n > max)
                return fail(p, -EINVAL, path, "%lld is out of range (%lld to %lld)", (long long)n,
                            (long long)min, (long long)max);
        *ret = n;
        return 0;
}

/* An unsigned 64-bit member (0..UINT64_MAX: the spec's uint64 fields). */
static int get_uint64(Parser *p, const json_t *o, const char *path, const char *key, bool required,
                      uint64_t *ret)
{
        char sub[PATH_MAX_LEN];
        json_t *v = NULL;
        int64_t n;
        int r;

        r = member(p, o, path, key, required, &v);
        if (r < 0 || !v)
                return r;
        if (big_uint(v, ret))
                return 0;
        path_key(sub, path, key);
        r = int_value(p, v, sub, 0, INT64_MAX, &n);
        if (r < 0)
                return r;
        *ret = (uint64_t)n;
        return 0;
}

/* An integer member in min..max; *set (may be NULL) says whether it was there. */
static int get_int(Parser *p, const json_t *o, const char *path, const char *key, bool required,
                   int64_t min, int64_t max, int64_t *ret, bool *set)
{
        char sub[PATH_MAX_LEN];
        json_t *v = NULL;
        int r;

        r = member(p, o, path, key, required, &v);
        if (r < 0 || !v)
                return r;
        path_key(sub, path, key);
        r = int_value(p, v, sub, min, max, ret);
        if (r < 0)
                return r;
        if (set)
                *set = true;
        return 0;
}

/* An array of strings into a NULL-terminated vector (absent: *ret stays NULL). */
static int get_strv(Parser *p, const json_t *o, const char *path, const char *key, bool required,
                    bool absolute, char ***ret)
{
        char sub[PATH_MAX_LEN], item[PATH_MAX_LEN], q[QUOTE_MAX + 8];
        _cleanup_strv_free_ char **l = NULL;
        json_t *a, *v;
        size_t i;
        int r;

        r = get_array(p, o, path, key, required, &a);
        if (r < 0 || !a)
                return r;
        path_key(sub, path, key);
        l = calloc(json_array_size(a) + 1, sizeof(char *));
        if (!l)
                return oom(p);
        json_array_foreach(a, i, v)
        {
                path_index(item, sub, i);
                r = string_value(p, v, item, &l[i]);
                if (r < 0)
                        return r;
                if (absolute && l[i][0] != '/') {
                        quote(l[i], q, sizeof q);
                        return fail(p, -EINVAL, item, "%s is not an absolute path", q);
                }
        }
        *ret = TAKE_PTR(l);
        return 0;
}

/* An object of strings into keys and values side by side. */
static int get_string_map(Parser *p, const json_t *o, const char *path, const char *key,
                          char ***ret_keys, char ***ret_values, size_t *ret_n)
{
        char sub[PATH_MAX_LEN], item[PATH_MAX_LEN];
        _cleanup_strv_free_ char **keys = NULL, **values = NULL;
        const char *k;
        json_t *m, *v;
        size_t n = 0;
        int r;

        r = get_object(p, o, path, key, false, &m);
        if (r < 0 || !m)
                return r;
        path_key(sub, path, key);
        keys = calloc(json_object_size(m) + 1, sizeof(char *));
        values = calloc(json_object_size(m) + 1, sizeof(char *));
        if (!keys || !values)
                return oom(p);
        json_object_foreach(m, k, v)
        {
                path_format(item, "%s[\"%.64s\"]", sub, k);
                if (!*k)
                        return fail(p, -EINVAL, item, "empty key");
                r = string_value(p, v, item, &values[n]);
                if (r < 0)
                        return r;
                keys[n] = strdup(k);
                if (!keys[n])
                        return oom(p);
                n++;
        }
        *ret_keys = TAKE_PTR(keys);
        *ret_values = TAKE_PTR(values);
        *ret_n = n;
        return 0;
}

/* A member that cella reads but does not apply: a note when present. */
static int note_if_set(Parser *p, const json_t *o, const char *path, const char *key,
                       const char *why)
{
        char sub[PATH_MAX_LEN];
        json_t *v = NULL;
        int r;

        r = member(p, o, path, key, false, &v);
        if (r < 0 || !v)
                return r;
        path_key(sub, path, key);
        return note(p, sub, why);
}

/* ---- process ------------------------------------------------------------------------- */

/* The kernel's last capability (/proc/sys/kernel/cap_last_cap), or the table's. */
static int cap_last_cap(void)
{
        static int last = -1;
        char buf[16] = {0};
        int fd;

        if (last >= 0)
                return last;
        last = (int)ELEMENTSOF(cap_names) - 1;
        fd = open("/proc/sys/kernel/cap_last_cap", O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
                ssize_t n = read(fd, buf, sizeof buf - 1);

                if (n > 0) {
                        int v = atoi(buf);

                        if (v > 0 && v < last)
                                last = v;
                }
                close(fd);
        }
        return last;
}

/*
 * A capability list into a mask. A name cella does not know (a misspelling, a
 * capability newer than CAP_CHECKPOINT_RESTORE) is an error; a name this kernel lacks
 * (above cap_last_cap) is left out with a note, as runc does: the kernel could not
 * grant it anyway.
 */
static int parse_cap_list(Parser *p, const json_t *o, const char *path, const char *key,
                          uint64_t *ret)
{
        char sub[PATH_MAX_LEN], item[PATH_MAX_LEN], q[QUOTE_MAX + 8];
        json_t *a, *v;
        size_t i;
        int r;

        r = get_array(p, o, path, key, false, &a);
        if (r < 0 || !a)
                return r;
        path_key(sub, path, key);
        json_array_foreach(a, i, v)
        {
                const char *name;
                size_t c;

                path_index(item, sub, i);
                r = want_type(p, v, item, JSON_STRING, "a string");
                if (r < 0)
                        return r;
                name = json_string_value(v);
                for (c = 0; c < ELEMENTSOF(cap_names); c++)
                        if (strcmp(name, cap_names[c]) == 0)
                                break;
                if (c == ELEMENTSOF(cap_names)) {
                        quote(name, q, sizeof q);
                        return fail(p, -EINVAL, item, "unknown capability %s", q);
                }
                if ((int)c > cap_last_cap()) {
                        char what[128];

                        snprintf(what, sizeof what, "%s not known to this kernel, left out",
                                 cap_names[c]);
                        r = note(p, item, what);
                        if (r < 0)
                                return r;
                        continue;
                }
                *ret |= UINT64_C(1) << c;
        }
        return 0;
}

static int parse_caps(Parser *p, const json_t *proc, const char *path, OciCaps *caps)
{
        char sub[PATH_MAX_LEN];
        json_t *o;
        int r;

        r = get_object(p, proc, path, "capabilities", false, &o);
        if (r < 0 || !o)
                return r;
        path_key(sub, path, "capabilities");
        caps->set = true;
        if ((r = parse_cap_list(p, o, sub, "bounding", &caps->bounding)) < 0 ||
            (r = parse_cap_list(p, o, sub, "effective", &caps->effective)) < 0 ||
            (r = parse_cap_list(p, o, sub, "inheritable", &caps->inheritable)) < 0 ||
            (r = parse_cap_list(p, o, sub, "permitted", &caps->permitted)) < 0 ||
            (r = parse_cap_list(p, o, sub, "ambient", &caps->ambient)) < 0)
                return r;
        return 0;
}

static int parse_rlimits(Parser *p, const json_t *proc, const char *path, OciProcess *proc_ret)
{
        char sub[PATH_MAX_LEN], item[PATH_MAX_LEN], field[PATH_MAX_LEN], q[QUOTE_MAX + 8];
        json_t *a, *v;
        size_t i;
        int r;

        r = get_array(p, proc, path, "rlimits", false, &a);
        if (r < 0 || !a)
                return r;
        path_key(sub, path, "rlimits");
        proc_ret->rlimits = calloc(json_array_size(a) + 1, sizeof(OciRlimit));
        if (!proc_ret->rlimits)
                return oom(p);
        json_array_foreach(a, i, v)
        {
                OciRlimit *l = &proc_ret->rlimits[i];
                _cleanup_free_ char *type = NULL;
                uint64_t soft = 0, hard = 0;
                size_t k;

                path_index(item, sub, i);
                r = want_type(p, v, item, JSON_OBJECT, "an object");
                if (r < 0)
                        return r;
                r = get_string(p, v, item, "type", true, &type);
                if (r < 0)
                        return r;
                path_key(field, item, "type");
                for (k = 0; k < ELEMENTSOF(rlimit_names); k++)
                        if (strcmp(type, rlimit_names[k].name) == 0)
                                break;
                if (k == ELEMENTSOF(rlimit_names)) {
                        quote(type, q, sizeof q);
                        return fail(p, -EINVAL, field, "unknown rlimit %s", q);
                }
                l->resource = rlimit_names[k].resource;
                /* config.md: duplicate types are an error. */
                for (size_t j = 0; j < i; j++)
                        if (proc_ret->rlimits[j].resource == l->resource)
                                return fail(p, -EINVAL, field, "%s given twice", type);
                r = get_uint64(p, v, item, "soft", true, &soft);
                if (r < 0)
                        return r;
                r = get_uint64(p, v, item, "hard", true, &hard);
                if (r < 0)
                        return r;
                if (soft > hard)
                        return fail(p, -EINVAL, item, "soft limit %llu above hard limit %llu",
                                    (unsigned long long)soft, (unsigned long long)hard);
                l->soft = soft;
                l->hard = hard;
                proc_ret->n_rlimits = i + 1;
        }
        return 0;
}

static int parse_user(Parser *p, const json_t *proc, const char *path, OciUser *u)
{
        char sub[PATH_MAX_LEN], item[PATH_MAX_LEN];
        int64_t n;
        json_t *o, *a, *v;
        size_t i;
        int r;

        /* config.md: user is required on POSIX platforms; engines always write it, but
         * runc takes a process without one as uid 0, gid 0, and so does cella. */
        r = get_object(p, proc, path, "user", false, &o);
        if (r < 0 || !o)
                return r;
        path_key(sub, path, "user");
        /* (uid_t)-1 is "no change" to setresuid(2), never an id. */
        r = get_int(p, o, sub, "uid", true, 0, (int64_t)UINT32_MAX - 1, &n, NULL);
        if (r < 0)
                return r;
        u->uid = (uid_t)n;
        r = get_int(p, o, sub, "gid", true, 0, (int64_t)UINT32_MAX - 1, &n, NULL);
        if (r < 0)
                return r;
        u->gid = (gid_t)n;
        r = get_int(p, o, sub, "umask", false, 0, 0777, &n, &u->umask_set);
        if (r < 0)
                return r;
        if (u->umask_set)
                u->umask = (uint32_t)n;
        r = get_array(p, o, sub, "additionalGids", false, &a);
        if (r < 0)
                return r;
        if (a) {
                /* setgroups(2): at most NGROUPS_MAX (65536) groups. */
                if (json_array_size(a) > NGROUPS_MAX) {
                        path_key(item, sub, "additionalGids");
                        return fail(p, -E2BIG, item, "more than %d groups", NGROUPS_MAX);
                }
                u->additional_gids = calloc(json_array_size(a) + 1, sizeof(gid_t));
                if (!u->additional_gids)
                        return oom(p);
                json_array_foreach(a, i, v)
                {
                        char list[PATH_MAX_LEN];

                        path_key(list, sub, "additionalGids");
                        path_index(item, list, i);
                        r = int_value(p, v, item, 0, (int64_t)UINT32_MAX - 1, &n);
                        if (r < 0)
                                return r;
                        u->additional_gids[i] = (gid_t)n;
                        u->n_additional_gids = i + 1;
                }
        }
        return note_if_set(p, o, sub, "username", "not applied (Windows only)");
}

static int parse_process_object(Parser *p, const json_t *o, const char *path, OciProcess *proc)
{
        char sub[PATH_MAX_LEN], q[QUOTE_MAX + 8];
        json_t *cs;
        int64_t n;
        bool set = false;
        int r;

        r = want_type(p, o, path, JSON_OBJECT, "an object");
        if (r < 0)
                return r;
        r = get_bool(p, o, path, "terminal", &proc->terminal);
        if (r < 0)
                return r;
        r = get_object(p, o, path, "consoleSize", false, &cs);
        if (r < 0)
                return r;
        if (cs) {
                path_key(sub, path, "consoleSize");
                r = get_int(p, cs, sub, "height", true, 0, USHRT_MAX, &n, NULL);
                if (r < 0)
                        return r;
                proc->console_size.height = (unsigned short)n;
                r = get_int(p, cs, sub, "width", true, 0, USHRT_MAX, &n, NULL);
                if (r < 0)
                        return r;
                proc->console_size.width = (unsigned short)n;
        }
        r = parse_user(p, o, path, &proc->user);
        if (r < 0)
                return r;
        r = get_strv(p, o, path, "args", true, false, &proc->args);
        if (r < 0)
                return r;
        path_key(sub, path, "args");
        if (!proc->args[0])
                return fail(p, -EINVAL, sub, "empty (the command to run is required)");
        if (!proc->args[0][0])
                return fail(p, -EINVAL, sub, "[0] is empty");
        r = get_strv(p, o, path, "env", false, false, &proc->env);
        if (r < 0)
                return r;
        path_key(sub, path, "env");
        for (size_t i = 0; proc->env && proc->env[i]; i++)
                if (!strchr(proc->env[i], '=') || proc->env[i][0] == '=') {
                        char item[PATH_MAX_LEN];

                        path_index(item, sub, i);
                        quote(proc->env[i], q, sizeof q);
                        return fail(p, -EINVAL, item, "%s is not KEY=value", q);
                }
        r = get_abs_path(p, o, path, "cwd", true, &proc->cwd);
        if (r < 0)
                return r;
        r = parse_caps(p, o, path, &proc->caps);
        if (r < 0)
                return r;
        r = parse_rlimits(p, o, path, proc);
        if (r < 0)
                return r;
        r = get_bool(p, o, path, "noNewPrivileges", &proc->no_new_privileges);
        if (r < 0)
                return r;
        r = get_string(p, o, path, "apparmorProfile", false, &proc->apparmor_profile);
        if (r < 0)
                return r;
        r = get_string(p, o, path, "selinuxLabel", false, &proc->selinux_label);
        if (r < 0)
                return r;
        /* proc(5): oom_score_adj ranges from -1000 to 1000. */
        r = get_int(p, o, path, "oomScoreAdj", false, -1000, 1000, &n, &set);
        if (r < 0)
                return r;
        if (set) {
                proc->oom_score_adj = (int)n;
                proc->oom_score_adj_set = true;
        }
        if ((r = note_if_set(p, o, path, "ioPriority", "not applied")) < 0 ||
            (r = note_if_set(p, o, path, "scheduler", "not applied")) < 0 ||
            (r = note_if_set(p, o, path, "execCPUAffinity", "not applied")) < 0 ||
            (r = note_if_set(p, o, path, "commandLine", "not applied (Windows only)")) < 0)
                return r;
        return 0;
}

/* ---- mounts, hooks --------------------------------------------------------------------- */

static int parse_mounts(Parser *p, const json_t *root, OciConfig *c)
{
        char item[PATH_MAX_LEN];
        json_t *a, *v;
        size_t i;
        int r;

        r = get_array(p, root, "", "mounts", false, &a);
        if (r < 0 || !a)
                return r;
        c->mounts = calloc(json_array_size(a) + 1, sizeof(OciMount));
        if (!c->mounts)
                return oom(p);
        json_array_foreach(a, i, v)
        {
                OciMount *m = &c->mounts[i];
                char *dest = NULL;

                path_index(item, "mounts", i);
                c->n_mounts = i + 1;
                r = want_type(p, v, item, JSON_OBJECT, "an object");
                if (r < 0)
                        return r;
                r = get_string(p, v, item, "destination", true, &dest);
                if (r < 0)
                        return r;
                if (!dest[0]) {
                        free(dest);
                        return fail(p, -EINVAL, item, "destination is empty");
                }
                /* config.md 1.0 asks for an absolute destination; later versions take a
                 * relative one as relative to "/", as runc does. */
                if (dest[0] != '/') {
                        char *abs = NULL;

                        if (asprintf(&abs, "/%s", dest) < 0) {
                                free(dest);
                                return oom(p);
                        }
                        free(dest);
                        dest = abs;
                }
                m->destination = dest;
                if ((r = get_string(p, v, item, "type", false, &m->type)) < 0 ||
                    (r = get_string(p, v, item, "source", false, &m->source)) < 0 ||
                    (r = get_strv(p, v, item, "options", false, false, &m->options)) < 0)
                        return r;
                if ((r = note_if_set(p, v, item, "uidMappings", "not applied")) < 0 ||
                    (r = note_if_set(p, v, item, "gidMappings", "not applied")) < 0)
                        return r;
        }
        return 0;
}

static int parse_hooks(Parser *p, const json_t *root, OciConfig *c)
{
        char sub[PATH_MAX_LEN], item[PATH_MAX_LEN];
        json_t *hooks, *a, *v;
        size_t i;
        int r;

        r = get_object(p, root, "", "hooks", false, &hooks);
        if (r < 0 || !hooks)
                return r;
        for (int k = 0; k < _OCI_HOOK_MAX; k++) {
                r = get_array(p, hooks, "hooks", hook_names[k], false, &a);
                if (r < 0)
                        return r;
                if (!a)
                        continue;
                path_key(sub, "hooks", hook_names[k]);
                c->hooks[k] = calloc(json_array_size(a) + 1, sizeof(OciHook));
                if (!c->hooks[k])
                        return oom(p);
                json_array_foreach(a, i, v)
                {
                        OciHook *h = &c->hooks[k][i];
                        int64_t n;
                        bool set = false;

                        path_index(item, sub, i);
                        c->n_hooks[k] = i + 1;
                        r = want_type(p, v, item, JSON_OBJECT, "an object");
                        if (r < 0)
                                return r;
                        if ((r = get_abs_path(p, v, item, "path", true, &h->path)) < 0 ||
                            (r = get_strv(p, v, item, "args", false, false, &h->args)) < 0 ||
                            (r = get_strv(p, v, item, "env", false, false, &h->env)) < 0)
                                return r;
                        /* config.md: timeout, if set, MUST be greater than zero. */
                        r = get_int(p, v, item, "timeout", false, 1, INT_MAX, &n, &set);
                        if (r < 0)
                                return r;
                        if (set)
                                h->timeout = (int)n;
                }
        }
        return 0;
}

/* ---- linux ----------------------------------------------------------------------------- */

static int parse_namespaces(Parser *p, const json_t *linux_o, OciConfig *c)
{
        char item[PATH_MAX_LEN], field[PATH_MAX_LEN], q[QUOTE_MAX + 8];
        json_t *a, *v;
        size_t i;
        int r;

        r = get_array(p, linux_o, "linux", "namespaces", false, &a);
        if (r < 0 || !a)
                return r;
        c->namespaces = calloc(json_array_size(a) + 1, sizeof(OciNamespace));
        if (!c->namespaces)
                return oom(p);
        json_array_foreach(a, i, v)
        {
                OciNamespace *ns = &c->namespaces[i];
                _cleanup_free_ char *type = NULL;
                size_t k;

                path_index(item, "linux.namespaces", i);
                r = want_type(p, v, item, JSON_OBJECT, "an object");
                if (r < 0)
                        return r;
                r = get_string(p, v, item, "type", true, &type);
                if (r < 0)
                        return r;
                path_key(field, item, "type");
                if (strcmp(type, "time") == 0)
                        return fail(p, -EINVAL, field,
                                    "time namespaces are not supported by cella-oci");
                for (k = 0; k < ELEMENTSOF(namespace_names); k++)
                        if (strcmp(type, namespace_names[k].name) == 0)
                                break;
                if (k == ELEMENTSOF(namespace_names)) {
                        quote(type, q, sizeof q);
                        return fail(p, -EINVAL, field, "unknown namespace type %s", q);
                }
                ns->type = namespace_names[k].type;
                /* config-linux.md: a type given twice is an error. */
                for (size_t j = 0; j < i; j++)
                        if (c->namespaces[j].type == ns->type)
                                return fail(p, -EINVAL, field, "%s given twice", type);
                c->n_namespaces = i + 1;
                r = get_abs_path(p, v, item, "path", false, &ns->path);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int parse_id_mappings(Parser *p, const json_t *linux_o, const char *key, OciIdMapping **ret,
                             size_t *ret_n)
{
        char sub[PATH_MAX_LEN], item[PATH_MAX_LEN];
        json_t *a, *v;
        size_t i;
        int r;

        r = get_array(p, linux_o, "linux", key, false, &a);
        if (r < 0 || !a)
                return r;
        path_key(sub, "linux", key);
        if (json_array_size(a) > ID_MAP_LINES_MAX)
                return fail(p, -E2BIG, sub, "more than %u mappings (user_namespaces(7))",
                            ID_MAP_LINES_MAX);
        *ret = calloc(json_array_size(a) + 1, sizeof(OciIdMapping));
        if (!*ret)
                return oom(p);
        json_array_foreach(a, i, v)
        {
                OciIdMapping *m = &(*ret)[i];
                int64_t cid, hid, size;

                path_index(item, sub, i);
                r = want_type(p, v, item, JSON_OBJECT, "an object");
                if (r < 0)
                        return r;
                if ((r = get_int(p, v, item, "containerID", true, 0, UINT32_MAX, &cid, NULL)) < 0 ||
                    (r = get_int(p, v, item, "hostID", true, 0, UINT32_MAX, &hid, NULL)) < 0 ||
                    (r = get_int(p, v, item, "size", true, 1, UINT32_MAX, &size, NULL)) < 0)
                        return r;
                if (cid + size > (int64_t)UINT32_MAX + 1 || hid + size > (int64_t)UINT32_MAX + 1)
                        return fail(p, -EINVAL, item, "range runs past id 4294967295");
                m->container_id = (uint32_t)cid;
                m->host_id = (uint32_t)hid;
                m->size = (uint32_t)size;
                *ret_n = i + 1;
        }
        return 0;
}

static int parse_devices(Parser *p, const json_t *linux_o, OciConfig *c)
{
        char item[PATH_MAX_LEN], field[PATH_MAX_LEN], q[QUOTE_MAX + 8];
        json_t *a, *v;
        size_t i;
        int r;

        r = get_array(p, linux_o, "linux", "devices", false, &a);
        if (r < 0 || !a)
                return r;
        c->devices = calloc(json_array_size(a) + 1, sizeof(OciDevice));
        if (!c->devices)
                return oom(p);
        json_array_foreach(a, i, v)
        {
                OciDevice *d = &c->devices[i];
                _cleanup_free_ char *type = NULL;
                int64_t n;
                bool set = false;

                path_index(item, "linux.devices", i);
                c->n_devices = i + 1;
                r = want_type(p, v, item, JSON_OBJECT, "an object");
                if (r < 0)
                        return r;
                if ((r = get_abs_path(p, v, item, "path", true, &d->path)) < 0 ||
                    (r = get_string(p, v, item, "type", true, &type)) < 0)
                        return r;
                path_key(field, item, "type");
                if (strlen(type) != 1 || !strchr("cbup", type[0])) {
                        quote(type, q, sizeof q);
                        return fail(p, -EINVAL, field, "unknown device type %s (c, b, u, p)", q);
                }
                d->type = type[0];
                /* config-linux.md: major and minor are required except for fifos. */
                r = get_int(p, v, item, "major", d->type != 'p', 0, DEV_MAJOR_MAX, &d->major, NULL);
                if (r < 0)
                        return r;
                r = get_int(p, v, item, "minor", d->type != 'p', 0, DEV_MINOR_MAX, &d->minor, NULL);
                if (r < 0)
                        return r;
                r = get_int(p, v, item, "fileMode", false, 0, 07777, &n, &d->file_mode_set);
                if (r < 0)
                        return r;
                if (d->file_mode_set)
                        d->file_mode = (uint32_t)n;
                r = get_int(p, v, item, "uid", false, 0, (int64_t)UINT32_MAX - 1, &n, &set);
                if (r < 0)
                        return r;
                if (set)
                        d->uid = (uid_t)n;
                set = false;
                r = get_int(p, v, item, "gid", false, 0, (int64_t)UINT32_MAX - 1, &n, &set);
                if (r < 0)
                        return r;
                if (set)
                        d->gid = (gid_t)n;
        }
        return 0;
}

static int ignore(Parser *p, OciResources *res, const char *path)
{
        if (strv_extend(&res->ignored, path) < 0)
                return oom(p);
        return 0;
}

/* Every member of o (at path) but those in keep goes to res->ignored. */
static int ignore_others(Parser *p, OciResources *res, const json_t *o, const char *path,
                         const char *const *keep)
{
        char sub[PATH_MAX_LEN];
        const char *k;
        json_t *v = NULL;
        int r;

        json_object_foreach((json_t *)o, k, v)
        {
                bool kept = false;

                if (json_is_null(v))
                        continue;
                for (const char *const *x = keep; *x; x++)
                        if (strcmp(k, *x) == 0)
                                kept = true;
                if (kept)
                        continue;
                path_format(sub, "%s.%.64s", path, k);
                r = ignore(p, res, sub);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* linux.resources.devices, blockIO, hugepageLimits, network. */
static int parse_resources_more(Parser *p, const json_t *o, OciResources *res)
{
        static const char *const dev_keep[] = {"allow", "type", "major", "minor", "access", NULL};
        static const char *const blkio_keep[] = {"weight", NULL};
        static const char *const net_keep[] = {"classID", "priorities", NULL};
        char item[PATH_MAX_LEN];
        json_t *a, *v, *m;
        size_t i;
        int64_t n;
        int r;

        r = get_array(p, o, "linux.resources", "devices", false, &a);
        if (r < 0)
                return r;
        if (a) {
                res->devices_set = true;
                res->devices = calloc(json_array_size(a) + 1, sizeof(OciDeviceRule));
                if (!res->devices)
                        return oom(p);
                json_array_foreach(a, i, v)
                {
                        OciDeviceRule *d = &res->devices[i];
                        _cleanup_free_ char *type = NULL, *access = NULL;
                        bool set;

                        path_index(item, "linux.resources.devices", i);
                        res->n_devices = i + 1;
                        r = want_type(p, v, item, JSON_OBJECT, "an object");
                        if (r < 0)
                                return r;
                        r = ignore_others(p, res, v, item, dev_keep);
                        if (r < 0)
                                return r;
                        if (!json_object_get(v, "allow"))
                                return fail(p, -EINVAL, item, "has no \"allow\"");
                        r = get_bool(p, v, item, "allow", &d->allow);
                        if ((r = r < 0 ? r : get_string(p, v, item, "type", false, &type)) < 0)
                                return r;
                        d->type = !type ? 'a' : type[0];
                        if (type && (strlen(type) != 1 || !strchr("acb", type[0])))
                                return fail(p, -EINVAL, item,
                                            "type \"%.8s\" is none of \"a\", \"c\", \"b\"", type);
                        set = false;
                        r = get_int(p, v, item, "major", false, -1, DEV_MAJOR_MAX, &n, &set);
                        if (r < 0)
                                return r;
                        d->major = set ? n : -1;
                        set = false;
                        r = get_int(p, v, item, "minor", false, -1, DEV_MINOR_MAX, &n, &set);
                        if (r < 0)
                                return r;
                        d->minor = set ? n : -1;
                        r = get_string(p, v, item, "access", false, &access);
                        if (r < 0)
                                return r;
                        if (!access || !*access)
                                strcpy(d->access, "rwm");
                        else {
                                size_t k = strlen(access);

                                if (k > 3 || strspn(access, "rwm") != k ||
                                    (k > 1 && access[0] == access[1]) ||
                                    (k > 2 && (access[2] == access[0] || access[2] == access[1])))
                                        return fail(p, -EINVAL, item,
                                                    "access \"%.8s\" is not a subset of \"rwm\"",
                                                    access);
                                memcpy(d->access, access, k + 1);
                        }
                }
        }

        r = get_object(p, o, "linux.resources", "blockIO", false, &m);
        if (r < 0)
                return r;
        if (m) {
                bool set = false;

                r = ignore_others(p, res, m, "linux.resources.blockIO", blkio_keep);
                if (r < 0)
                        return r;
                /* config-linux.md "Block IO": 10 to 1000. */
                r = get_int(p, m, "linux.resources.blockIO", "weight", false, 10, 1000, &n, &set);
                if (r < 0)
                        return r;
                res->blkio_weight = set ? (uint64_t)n : 0;
        }

        r = get_array(p, o, "linux.resources", "hugepageLimits", false, &a);
        if (r < 0)
                return r;
        if (a) {
                res->hugepage_limits = calloc(json_array_size(a) + 1, sizeof(OciHugepageLimit));
                if (!res->hugepage_limits)
                        return oom(p);
                json_array_foreach(a, i, v)
                {
                        OciHugepageLimit *h = &res->hugepage_limits[i];

                        path_index(item, "linux.resources.hugepageLimits", i);
                        res->n_hugepage_limits = i + 1;
                        r = want_type(p, v, item, JSON_OBJECT, "an object");
                        if (r >= 0)
                                r = get_string(p, v, item, "pageSize", true, &h->page_size);
                        if (r >= 0)
                                r = get_uint64(p, v, item, "limit", true, &h->limit);
                        if (r < 0)
                                return r;
                }
        }

        r = get_object(p, o, "linux.resources", "network", false, &m);
        if (r < 0)
                return r;
        if (m) {
                const char *np = "linux.resources.network";

                r = ignore_others(p, res, m, np, net_keep);
                if (r < 0)
                        return r;
                r = get_int(p, m, np, "classID", false, 0, UINT32_MAX, &n, &res->classid_set);
                if (r < 0)
                        return r;
                res->classid = res->classid_set ? (uint32_t)n : 0;
                r = get_array(p, m, np, "priorities", false, &a);
                if (r < 0)
                        return r;
                if (a) {
                        res->priorities = calloc(json_array_size(a) + 1, sizeof(OciIfPriority));
                        if (!res->priorities)
                                return oom(p);
                        json_array_foreach(a, i, v)
                        {
                                OciIfPriority *ip = &res->priorities[i];

                                path_index(item, "linux.resources.network.priorities", i);
                                res->n_priorities = i + 1;
                                r = want_type(p, v, item, JSON_OBJECT, "an object");
                                if (r >= 0)
                                        r = get_string(p, v, item, "name", true, &ip->name);
                                if (r >= 0)
                                        r = get_int(p, v, item, "priority", true, 0, UINT32_MAX, &n,
                                                    NULL);
                                if (r < 0)
                                        return r;
                                ip->priority = (uint32_t)n;
                        }
                }
        }
        return 0;
}

static int parse_resources(Parser *p, const json_t *linux_o, OciConfig *c)
{
        static const char *const top_keep[] = {"memory",  "cpu",     "pids",    "unified",
                                               "devices", "blockIO", "network", "hugepageLimits",
                                               NULL};
        static const char *const memory_keep[] = {
                "limit",  "swap",      "reservation", "swappiness", "disableOOMKiller",
                "kernel", "kernelTCP", NULL};
        static const char *const cpu_keep[] = {"shares", "quota", "period", "cpus", "mems", NULL};
        static const char *const pids_keep[] = {"limit", NULL};
        const char *path = "linux.resources";
        OciResources *res = &c->resources;
        json_t *o, *m;
        int64_t n;
        bool set;
        int r;

        r = get_object(p, linux_o, "linux", "resources", false, &o);
        if (r < 0 || !o)
                return r;
        r = ignore_others(p, res, o, path, top_keep);
        if (r < 0)
                return r;

        r = get_object(p, o, path, "memory", false, &m);
        if (r < 0)
                return r;
        if (m) {
                const char *mp = "linux.resources.memory";

                r = ignore_others(p, res, m, mp, memory_keep);
                if (r < 0)
                        return r;
                /* -1: unlimited (config-linux.md "Memory"). */
                set = false;
                r = get_int(p, m, mp, "limit", false, -1, INT64_MAX, &n, &set);
                if (r < 0)
                        return r;
                res->memory_limit = set && n > 0 ? n : 0;
                set = false;
                r = get_int(p, m, mp, "swap", false, -1, INT64_MAX, &n, &set);
                if (r < 0)
                        return r;
                res->memory_swap = set && n > 0 ? n : 0;
                set = false;
                r = get_int(p, m, mp, "reservation", false, -1, INT64_MAX, &n, &set);
                if (r < 0)
                        return r;
                res->memory_reservation = set && n > 0 ? n : 0;
                r = get_int(p, m, mp, "swappiness", false, 0, 100, &n, &res->swappiness_set);
                if (r < 0)
                        return r;
                res->swappiness = res->swappiness_set ? (uint64_t)n : 0;
                r = get_bool(p, m, mp, "disableOOMKiller", &res->disable_oom_killer);
                if (r < 0)
                        return r;
                r = get_int(p, m, mp, "kernel", false, -1, INT64_MAX, &n, &res->memory_kernel_set);
                if (r < 0)
                        return r;
                r = get_int(p, m, mp, "kernelTCP", false, -1, INT64_MAX, &n,
                            &res->memory_kernel_tcp_set);
                if (r < 0)
                        return r;
        }

        r = get_object(p, o, path, "cpu", false, &m);
        if (r < 0)
                return r;
        if (m) {
                const char *cp = "linux.resources.cpu";

                r = ignore_others(p, res, m, cp, cpu_keep);
                if (r < 0)
                        return r;
                set = false;
                r = get_int(p, m, cp, "shares", false, 0, INT64_MAX, &n, &set);
                if (r < 0)
                        return r;
                res->cpu_shares = set ? (uint64_t)n : 0;
                set = false;
                r = get_int(p, m, cp, "quota", false, -1, INT64_MAX, &n, &set);
                if (r < 0)
                        return r;
                res->cpu_quota = set && n > 0 ? n : 0;
                set = false;
                r = get_int(p, m, cp, "period", false, 0, INT64_MAX, &n, &set);
                if (r < 0)
                        return r;
                res->cpu_period = set ? (uint64_t)n : 0;
                if ((r = get_string(p, m, cp, "cpus", false, &res->cpuset_cpus)) < 0 ||
                    (r = get_string(p, m, cp, "mems", false, &res->cpuset_mems)) < 0)
                        return r;
        }

        r = get_object(p, o, path, "pids", false, &m);
        if (r < 0)
                return r;
        if (m) {
                r = ignore_others(p, res, m, "linux.resources.pids", pids_keep);
                if (r < 0)
                        return r;
                set = false;
                /* 0 and -1 both mean no limit (config-linux.md "PIDs", 1.2). */
                r = get_int(p, m, "linux.resources.pids", "limit", false, -1, INT64_MAX, &n, &set);
                if (r < 0)
                        return r;
                res->pids_limit = set && n > 0 ? n : 0;
        }

        r = parse_resources_more(p, o, res);
        if (r < 0)
                return r;
        return get_string_map(p, o, path, "unified", &res->unified_keys, &res->unified_values,
                              &res->n_unified);
}

/* A seccomp action name into *ret. */
static int seccomp_action(Parser *p, const json_t *o, const char *path, const char *key,
                          bool required, OciSeccompAction *ret)
{
        char sub[PATH_MAX_LEN], q[QUOTE_MAX + 8];
        _cleanup_free_ char *s = NULL;
        int r;

        r = get_string(p, o, path, key, required, &s);
        if (r < 0 || !s)
                return r;
        for (size_t k = 0; k < ELEMENTSOF(seccomp_actions); k++)
                if (strcmp(s, seccomp_actions[k].name) == 0) {
                        *ret = seccomp_actions[k].action;
                        return 0;
                }
        path_key(sub, path, key);
        quote(s, q, sizeof q);
        return fail(p, -EINVAL, sub, "unknown seccomp action %s", q);
}

/* An array of names, each in table (size n); the message says what they are. */
static int check_names(Parser *p, char **l, const char *path, const char *const *table, size_t n,
                       const char *what)
{
        char item[PATH_MAX_LEN], q[QUOTE_MAX + 8];
        size_t i = 0;

        STRV_FOREACH (s, l) {
                size_t k;

                for (k = 0; k < n; k++)
                        if (table[k] && strcmp(*s, table[k]) == 0)
                                break;
                if (k == n) {
                        path_index(item, path, i);
                        quote(*s, q, sizeof q);
                        return fail(p, -EINVAL, item, "unknown %s %s", what, q);
                }
                i++;
        }
        return 0;
}

static int parse_seccomp_rule(Parser *p, const json_t *v, const char *item, OciSeccompRule *rule)
{
        char sub[PATH_MAX_LEN], arg[PATH_MAX_LEN], field[PATH_MAX_LEN], q[QUOTE_MAX + 8];
        json_t *a, *x;
        int64_t n;
        size_t j;
        int r;

        r = want_type(p, v, item, JSON_OBJECT, "an object");
        if (r < 0)
                return r;
        r = get_strv(p, v, item, "names", true, false, &rule->names);
        if (r < 0)
                return r;
        if (!rule->names[0]) {
                path_key(sub, item, "names");
                return fail(p, -EINVAL, sub, "empty");
        }
        r = seccomp_action(p, v, item, "action", true, &rule->action);
        if (r < 0)
                return r;
        /* errno values: errno(3) numbers are small; SECCOMP_RET_DATA holds 16 bits. */
        r = get_int(p, v, item, "errnoRet", false, 0, 0xffff, &n, &rule->errno_ret_set);
        if (r < 0)
                return r;
        rule->errno_ret = rule->errno_ret_set ? (unsigned)n : EPERM;
        r = get_array(p, v, item, "args", false, &a);
        if (r < 0 || !a)
                return r;
        path_key(sub, item, "args");
        if (json_array_size(a) > SECCOMP_ARGS_MAX)
                return fail(p, -E2BIG, sub, "more than %u argument conditions", SECCOMP_ARGS_MAX);
        rule->args = calloc(json_array_size(a) + 1, sizeof(OciSeccompArg));
        if (!rule->args)
                return oom(p);
        json_array_foreach(a, j, x)
        {
                OciSeccompArg *sa = &rule->args[j];
                _cleanup_free_ char *op = NULL;
                size_t k;

                path_index(arg, sub, j);
                r = want_type(p, x, arg, JSON_OBJECT, "an object");
                if (r < 0)
                        return r;
                r = get_int(p, x, arg, "index", true, 0, SECCOMP_ARGS_MAX - 1, &n, NULL);
                if (r < 0)
                        return r;
                sa->index = (unsigned)n;
                r = get_uint64(p, x, arg, "value", true, &sa->value);
                if (r < 0)
                        return r;
                r = get_uint64(p, x, arg, "valueTwo", false, &sa->value_two);
                if (r < 0)
                        return r;
                r = get_string(p, x, arg, "op", true, &op);
                if (r < 0)
                        return r;
                for (k = 1; k < ELEMENTSOF(seccomp_ops); k++)
                        if (strcmp(op, seccomp_ops[k]) == 0)
                                break;
                if (k == ELEMENTSOF(seccomp_ops)) {
                        path_key(field, arg, "op");
                        quote(op, q, sizeof q);
                        return fail(p, -EINVAL, field, "unknown seccomp operator %s", q);
                }
                sa->op = (int)k;
                rule->n_args = j + 1;
        }
        return 0;
}

static int parse_seccomp(Parser *p, const json_t *linux_o, OciConfig *c)
{
        const char *path = "linux.seccomp";
        char sub[PATH_MAX_LEN], item[PATH_MAX_LEN];
        OciSeccomp *s;
        json_t *o, *a, *v;
        int64_t n;
        size_t i;
        int r;

        r = get_object(p, linux_o, "linux", "seccomp", false, &o);
        if (r < 0 || !o)
                return r;
        s = c->seccomp = calloc(1, sizeof(OciSeccomp));
        if (!s)
                return oom(p);
        r = seccomp_action(p, o, path, "defaultAction", true, &s->default_action);
        if (r < 0)
                return r;
        r = get_int(p, o, path, "defaultErrnoRet", false, 0, 0xffff, &n, &s->default_errno_ret_set);
        if (r < 0)
                return r;
        s->default_errno_ret = s->default_errno_ret_set ? (unsigned)n : EPERM;
        r = get_strv(p, o, path, "architectures", false, false, &s->architectures);
        if (r < 0)
                return r;
        path_key(sub, path, "architectures");
        r = check_names(p, s->architectures, sub, seccomp_archs, ELEMENTSOF(seccomp_archs),
                        "architecture");
        if (r < 0)
                return r;
        r = get_strv(p, o, path, "flags", false, false, &s->flags);
        if (r < 0)
                return r;
        path_key(sub, path, "flags");
        r = check_names(p, s->flags, sub, seccomp_flags, ELEMENTSOF(seccomp_flags), "seccomp flag");
        if (r < 0)
                return r;
        r = get_abs_path(p, o, path, "listenerPath", false, &s->listener_path);
        if (r < 0)
                return r;
        r = get_array(p, o, path, "syscalls", false, &a);
        if (r < 0 || !a)
                return r;
        path_key(sub, path, "syscalls");
        s->rules = calloc(json_array_size(a) + 1, sizeof(OciSeccompRule));
        if (!s->rules)
                return oom(p);
        json_array_foreach(a, i, v)
        {
                path_index(item, sub, i);
                s->n_rules = i + 1;
                r = parse_seccomp_rule(p, v, item, &s->rules[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* A sysctl key: dotted or slashed words of [A-Za-z0-9_-], none "." or ".." (it becomes
 * a path under /proc/sys), no "=" (it becomes "key=value"). */
static bool sysctl_key_valid(const char *k)
{
        const char *w = k;

        if (!*k)
                return false;
        for (const char *s = k;; s++) {
                if (*s == '.' || *s == '/' || *s == 0) {
                        if (s == w)
                                return false; /* empty word: leading, trailing or doubled */
                        if (!*s)
                                return true;
                        w = s + 1;
                        continue;
                }
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                      (*s >= '0' && *s <= '9') || *s == '_' || *s == '-' || *s == ':' ||
                      *s == '@' || *s == '+'))
                        return false;
        }
}

static int parse_linux(Parser *p, const json_t *root, OciConfig *c)
{
        char sub[PATH_MAX_LEN], q[QUOTE_MAX + 8];
        json_t *o, *pers;
        int r;

        r = get_object(p, root, "", "linux", false, &o);
        if (r < 0 || !o)
                return r;
        if ((r = parse_namespaces(p, o, c)) < 0 ||
            (r = parse_id_mappings(p, o, "uidMappings", &c->uid_mappings, &c->n_uid_mappings)) <
                    0 ||
            (r = parse_id_mappings(p, o, "gidMappings", &c->gid_mappings, &c->n_gid_mappings)) <
                    0 ||
            (r = parse_devices(p, o, c)) < 0 ||
            (r = get_string(p, o, "linux", "cgroupsPath", false, &c->cgroups_path)) < 0 ||
            (r = parse_resources(p, o, c)) < 0 ||
            (r = get_string_map(p, o, "linux", "sysctl", &c->sysctl_keys, &c->sysctl_values,
                                &c->n_sysctls)) < 0 ||
            (r = parse_seccomp(p, o, c)) < 0 ||
            (r = get_string(p, o, "linux", "rootfsPropagation", false, &c->rootfs_propagation)) <
                    0 ||
            (r = get_strv(p, o, "linux", "maskedPaths", false, true, &c->masked_paths)) < 0 ||
            (r = get_strv(p, o, "linux", "readonlyPaths", false, true, &c->readonly_paths)) < 0 ||
            (r = get_string(p, o, "linux", "mountLabel", false, &c->mount_label)) < 0)
                return r;
        for (size_t i = 0; i < c->n_sysctls; i++)
                if (!sysctl_key_valid(c->sysctl_keys[i])) {
                        path_format(sub, "linux.sysctl[\"%.64s\"]", c->sysctl_keys[i]);
                        return fail(p, -EINVAL, sub, "not a sysctl name");
                }
        if (c->rootfs_propagation) {
                size_t k;

                for (k = 0; k < ELEMENTSOF(propagation_names); k++)
                        if (strcmp(c->rootfs_propagation, propagation_names[k]) == 0)
                                break;
                if (k == ELEMENTSOF(propagation_names)) {
                        quote(c->rootfs_propagation, q, sizeof q);
                        return fail(p, -EINVAL, "linux.rootfsPropagation", "unknown propagation %s",
                                    q);
                }
        }
        r = get_object(p, o, "linux", "personality", false, &pers);
        if (r < 0)
                return r;
        if (pers) {
                r = get_string(p, pers, "linux.personality", "domain", true,
                               &c->personality_domain);
                if (r < 0)
                        return r;
                if (strcmp(c->personality_domain, "LINUX") != 0 &&
                    strcmp(c->personality_domain, "LINUX32") != 0) {
                        quote(c->personality_domain, q, sizeof q);
                        return fail(p, -EINVAL, "linux.personality.domain",
                                    "unknown domain %s (LINUX, LINUX32)", q);
                }
                r = note_if_set(p, pers, "linux.personality", "flags", "not applied");
                if (r < 0)
                        return r;
        }
        if ((r = note_if_set(p, o, "linux", "intelRdt", "not applied")) < 0 ||
            (r = note_if_set(p, o, "linux", "timeOffsets", "not applied (no time namespace)")) <
                    0 ||
            (r = note_if_set(p, o, "linux", "memoryPolicy", "not applied")) < 0 ||
            (r = note_if_set(p, o, "linux", "netDevices", "not applied")) < 0)
                return r;
        return 0;
}

/* ---- the whole ------------------------------------------------------------------------- */

/*
 * How many JSON values text holds at most: one more than its ',' and ':' and '['
 * outside strings (a cheap upper bound, counted before jansson builds a tree of
 * about 40 bytes per value).
 */
static size_t json_values_bound(const char *text, size_t len)
{
        bool in_string = false;
        size_t n = 1;

        for (size_t i = 0; i < len; i++) {
                char c = text[i];

                if (in_string) {
                        if (c == '\\')
                                i++;
                        else if (c == '"')
                                in_string = false;
                } else if (c == '"')
                        in_string = true;
                else if (c == ',' || c == ':' || c == '[')
                        n++;
        }
        return n;
}

/* Whether the len digits at s are a number above INT64_MAX and at most UINT64_MAX. */
static bool digits_big_uint(const char *s, size_t len)
{
        char buf[24];
        unsigned long long u;
        char *end;

        if (len < 19 || len > 20)
                return false;
        memcpy(buf, s, len);
        buf[len] = 0;
        errno = 0;
        u = strtoull(buf, &end, 10);
        return errno == 0 && *end == 0 && u > (unsigned long long)INT64_MAX;
}

/*
 * A copy of text with every integer literal outside strings above INT64_MAX (and at
 * most UINT64_MAX) written as a marked string (BIG_UINT_MARK): into *ret and
 * *ret_len, or NULL when there is none. Returns 0 or -ENOMEM.
 */
static int big_uints_mark(const char *text, size_t len, char **ret, size_t *ret_len)
{
        static const char mark[] = "\"\\u0001u64:";
        char *out = NULL;
        size_t o = 0, copied = 0;
        bool in_string = false;

        *ret = NULL;
        for (size_t i = 0; i < len; i++) {
                size_t j;

                if (in_string) {
                        if (text[i] == '\\')
                                i++;
                        else if (text[i] == '"')
                                in_string = false;
                        continue;
                }
                if (text[i] == '"') {
                        in_string = true;
                        continue;
                }
                /* The first digit of a literal: not in a fraction, an exponent or a negative
                 * number (those stay jansson's to read or refuse). */
                if (text[i] < '0' || text[i] > '9' ||
                    (i > 0 && strchr("-+.eE0123456789", text[i - 1])))
                        continue;
                for (j = i; j < len && text[j] >= '0' && text[j] <= '9'; j++)
                        ;
                if ((j < len && strchr(".eE", text[j])) || !digits_big_uint(text + i, j - i)) {
                        i = j - 1;
                        continue;
                }
                if (!out) {
                        /* Each literal of at most 20 digits grows by the mark and a quote. */
                        out = malloc(len + (len / 19 + 1) * (sizeof mark) + 1);
                        if (!out)
                                return -ENOMEM;
                }
                memcpy(out + o, text + copied, i - copied);
                o += i - copied;
                memcpy(out + o, mark, sizeof mark - 1);
                o += sizeof mark - 1;
                memcpy(out + o, text + i, j - i);
                o += j - i;
                out[o++] = '"';
                copied = j;
                i = j - 1;
        }
        if (!out)
                return 0;
        memcpy(out + o, text + copied, len - copied);
        o += len - copied;
        out[o] = 0;
        *ret = out;
        *ret_len = o;
        return 0;
}

static int load_json(Parser *p, const char *text, size_t len, json_t **ret)
{
        _cleanup_free_ char *marked = NULL;
        size_t marked_len = 0;
        json_error_t je;
        json_t *root;
        int r;

        if (len > OCI_CONFIG_MAX_BYTES)
                return fail(p, -E2BIG, "", "%zu bytes, more than %u", len, OCI_CONFIG_MAX_BYTES);
        /* A 4 MiB array of zeros is 2 million values, some 90 MB of jansson's tree. */
        if (json_values_bound(text, len) > OCI_MAX_VALUES)
                return fail(p, -E2BIG, "", "more than %u JSON values", OCI_MAX_VALUES);
        /* JSON_REJECT_DUPLICATES: a key given twice is an error, not "the last one wins"
         * (two readers could otherwise disagree on what the config says). Nesting is
         * bounded by jansson's JSON_PARSER_MAX_DEPTH (2048). */
        r = big_uints_mark(text, len, &marked, &marked_len);
        if (r < 0)
                return oom(p);
        if (marked) {
                text = marked;
                len = marked_len;
        }
        root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
        if (!root)
                return fail(p, -EINVAL, "", "line %d, column %d: %s", je.line, je.column, je.text);
        *ret = root;
        return 0;
}

static int config_parse(Parser *p, const json_t *root, OciConfig *c)
{
        char q[QUOTE_MAX + 8];
        json_t *o;
        int r;

        r = want_type(p, root, "", JSON_OBJECT, "an object");
        if (r < 0)
                return fail(p, r, "", "the top level must be an object");
        r = get_string(p, root, "", "ociVersion", true, &c->oci_version);
        if (r < 0)
                return r;
        if (strncmp(c->oci_version, "1.", 2) != 0) {
                quote(c->oci_version, q, sizeof q);
                return fail(p, -EINVAL, "ociVersion", "%s not supported (1.0.0 to 1.2.x)", q);
        }
        r = get_object(p, root, "", "root", false, &o);
        if (r < 0)
                return r;
        if (o) {
                r = get_string(p, o, "root", "path", true, &c->root_path);
                if (r < 0)
                        return r;
                if (!c->root_path[0])
                        return fail(p, -EINVAL, "root.path", "empty");
                r = get_bool(p, o, "root", "readonly", &c->root_readonly);
                if (r < 0)
                        return r;
        }
        r = get_object(p, root, "", "process", false, &o);
        if (r < 0)
                return r;
        if (o) {
                r = parse_process_object(p, o, "process", &c->process);
                if (r < 0)
                        return r;
                c->process_set = true;
        }
        if ((r = get_string(p, root, "", "hostname", false, &c->hostname)) < 0 ||
            (r = get_string(p, root, "", "domainname", false, &c->domainname)) < 0 ||
            (r = parse_mounts(p, root, c)) < 0 || (r = parse_hooks(p, root, c)) < 0 ||
            (r = get_string_map(p, root, "", "annotations", &c->annotation_keys,
                                &c->annotation_values, &c->n_annotations)) < 0 ||
            (r = parse_linux(p, root, c)) < 0)
                return r;
        return 0;
}

int oci_config_parse(const char *text, size_t len, OciConfig **ret, char *err, size_t errlen)
{
        Parser p = {.file = "config.json", .err = err, .errlen = errlen};
        json_t *root = NULL;
        OciConfig *c;
        int r;

        if (err && errlen)
                err[0] = 0;
        if (!text || !ret)
                return -EINVAL;
        c = calloc(1, sizeof *c);
        if (!c)
                return oom(&p);
        p.notes = &c->notes;
        r = load_json(&p, text, len, &root);
        if (r >= 0)
                r = config_parse(&p, root, c);
        json_decref(root);
        if (r < 0) {
                oci_config_free(c);
                return r;
        }
        *ret = c;
        return 0;
}

int oci_config_load(const char *bundle, OciConfig **ret, char *err, size_t errlen)
{
        _cleanup_free_ char *text = NULL, *file = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        size_t size = 0;
        int r;

        if (err && errlen)
                err[0] = 0;
        if (!bundle || !ret)
                return -EINVAL;
        if (asprintf(&file, "%s/config.json", bundle) < 0)
                return -ENOMEM;
        fd = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                r = negative_errno();
                if (err)
                        snprintf(err, errlen, "%s: %s", file, strerror(-r));
                return r;
        }
        if (fstat(fd, &st) < 0) {
                r = negative_errno();
                if (err)
                        snprintf(err, errlen, "%s: %s", file, strerror(-r));
                return r;
        }
        if (!S_ISREG(st.st_mode)) {
                if (err)
                        snprintf(err, errlen, "%s: not a regular file", file);
                return -EINVAL;
        }
        r = read_full_fd(fd, OCI_CONFIG_MAX_BYTES, &text, &size);
        if (r < 0) {
                if (r == -EFBIG)
                        r = -E2BIG;
                if (err)
                        snprintf(err, errlen, "%s: %s", file,
                                 r == -E2BIG ? "more than 4 MiB" : strerror(-r));
                return r;
        }
        return oci_config_parse(text, size, ret, err, errlen);
}

int oci_process_parse(const char *text, size_t len, OciProcess *ret, char *err, size_t errlen)
{
        Parser p = {.file = "process.json", .err = err, .errlen = errlen};
        json_t *root = NULL;
        OciProcess proc = {0};
        int r;

        if (err && errlen)
                err[0] = 0;
        if (!text || !ret)
                return -EINVAL;
        r = load_json(&p, text, len, &root);
        if (r >= 0)
                r = parse_process_object(&p, root, "process", &proc);
        json_decref(root);
        if (r < 0) {
                oci_process_done(&proc);
                return r;
        }
        *ret = proc;
        return 0;
}

void oci_process_done(OciProcess *p)
{
        if (!p)
                return;
        free(p->user.additional_gids);
        strv_free(p->args);
        strv_free(p->env);
        free(p->cwd);
        free(p->rlimits);
        free(p->apparmor_profile);
        free(p->selinux_label);
        *p = (OciProcess){0};
}

const char *oci_config_annotation(const OciConfig *c, const char *key)
{
        if (!c || !key)
                return NULL;
        for (size_t i = 0; i < c->n_annotations; i++)
                if (strcmp(c->annotation_keys[i], key) == 0)
                        return c->annotation_values[i];
        return NULL;
}

OciConfig *oci_config_free(OciConfig *c)
{
        if (!c)
                return NULL;
        free(c->oci_version);
        free(c->root_path);
        oci_process_done(&c->process);
        free(c->hostname);
        free(c->domainname);
        for (size_t i = 0; i < c->n_mounts; i++) {
                free(c->mounts[i].destination);
                free(c->mounts[i].type);
                free(c->mounts[i].source);
                strv_free(c->mounts[i].options);
        }
        free(c->mounts);
        for (int k = 0; k < _OCI_HOOK_MAX; k++) {
                for (size_t i = 0; i < c->n_hooks[k]; i++) {
                        free(c->hooks[k][i].path);
                        strv_free(c->hooks[k][i].args);
                        strv_free(c->hooks[k][i].env);
                }
                free(c->hooks[k]);
        }
        strv_free(c->annotation_keys);
        strv_free(c->annotation_values);
        for (size_t i = 0; i < c->n_namespaces; i++)
                free(c->namespaces[i].path);
        free(c->namespaces);
        free(c->uid_mappings);
        free(c->gid_mappings);
        for (size_t i = 0; i < c->n_devices; i++)
                free(c->devices[i].path);
        free(c->devices);
        free(c->cgroups_path);
        free(c->resources.cpuset_cpus);
        free(c->resources.cpuset_mems);
        free(c->resources.devices);
        for (size_t i = 0; i < c->resources.n_hugepage_limits; i++)
                free(c->resources.hugepage_limits[i].page_size);
        free(c->resources.hugepage_limits);
        for (size_t i = 0; i < c->resources.n_priorities; i++)
                free(c->resources.priorities[i].name);
        free(c->resources.priorities);
        strv_free(c->resources.unified_keys);
        strv_free(c->resources.unified_values);
        strv_free(c->resources.ignored);
        if (c->seccomp) {
                for (size_t i = 0; i < c->seccomp->n_rules; i++) {
                        strv_free(c->seccomp->rules[i].names);
                        free(c->seccomp->rules[i].args);
                }
                free(c->seccomp->rules);
                strv_free(c->seccomp->architectures);
                strv_free(c->seccomp->flags);
                free(c->seccomp->listener_path);
                free(c->seccomp);
        }
        strv_free(c->sysctl_keys);
        strv_free(c->sysctl_values);
        free(c->rootfs_propagation);
        strv_free(c->masked_paths);
        strv_free(c->readonly_paths);
        free(c->mount_label);
        free(c->personality_domain);
        strv_free(c->notes);
        free(c);
        return NULL;
}
