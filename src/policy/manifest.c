/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The manifest parser (docs/design.md section 3, docs/manifest.md).
 *
 * The manifest is written by an app author we do not trust, so every value is checked
 * here, once, against a named bound; everything after this file may rely on a Manifest
 * being well-formed. Errors name the file, the JSON path of the key and what was
 * expected. Values quoted back in messages are escaped and cut to QUOTE_MAX bytes, so a
 * hostile manifest cannot flood a log or send escape sequences to a terminal.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "base/pattern.h"
#include "base/size.h"
#include "base/strv.h"
#include "base/suggest.h"
#include "base/utf8.h"
#include "policy/manifest.h"

/* Bounds on limit values that the header leaves to the parser (docs/manifest.md). */
#define ENV_NAME_MAX      128u         /* bytes of one env variable name */
#define LIMIT_MEMORY_MIN  (1ull << 20) /* below 1M a process cannot even exec */
#define LIMIT_TMP_MIN     (4ull << 10) /* one page: the smallest useful tmpfs */
#define LIMIT_STORAGE_MIN 1ull         /* 0 would read as "not set" */
/* /data is an ext4 image of about this size (src/supervisor/storage.c): 16 TiB is
 * 2^32 blocks of 4 KiB, the most without ext4's 64bit feature, and keeps its
 * inode count (one per 8 KiB) below ext4's 2^32. */
#define LIMIT_STORAGE_MAX (16ull << 40)
#define LIMIT_PIDS_MAX    4194304ull /* PID_MAX_LIMIT on 64-bit kernels */
#define LIMIT_FILES_MIN   16ull      /* stdio, the broker channel, a few libraries */
#define LIMIT_FILES_MAX   1048576ull /* the kernel's default fs.nr_open */
/* 1024 CPUs, in thousandths: far above any machine we run on. */
#define LIMIT_CPU_MAX_MILLI 1024000ull

/* Bytes of escaped input quoted back in a message before it is cut with "...". */
#define QUOTE_MAX 64u
/* A quoted value: two quote characters, QUOTE_MAX bytes, "..." and a NUL. */
#define QUOTE_BUF (QUOTE_MAX + 6u)

#define KEY_MAX sizeof(((ManifestError *)NULL)->key)

static const char *const runtime_names[] = {
        [MANIFEST_RUNTIME_NATIVE] = "native",
        [MANIFEST_RUNTIME_LUA] = "lua",
};

static const char *const kind_names[] = {
        [MANIFEST_KIND_APP] = "app",
        [MANIFEST_KIND_SERVICE] = "service",
};

static const char *const restart_names[] = {
        [MANIFEST_RESTART_NO] = "no",
        [MANIFEST_RESTART_ON_FAILURE] = "on-failure",
        [MANIFEST_RESTART_ALWAYS] = "always",
};

static const char *const isolation_names[] = {
        [MANIFEST_ISOLATION_SANDBOX] = "sandbox",
        [MANIFEST_ISOLATION_PACKED] = "packed",
};

static const char *const scheduler_names[] = {
        [MANIFEST_SCHEDULER_FAIR] = "fair",
        [MANIFEST_SCHEDULER_PRIORITY] = "priority",
        [MANIFEST_SCHEDULER_ROUND_ROBIN] = "round-robin",
};

/*
 * Environment variables an app may not set: CELLA_* are set by cella itself (the
 * app's id, its broker fd), and the loader variables would let the manifest inject
 * code into a process before its own main() runs.
 */
static const char *const env_reserved[] = {"LD_PRELOAD", "LD_LIBRARY_PATH", "LD_AUDIT"};
#define ENV_RESERVED_PREFIX "CELLA_"

/* C0 controls, DEL and the C1 controls (U+0080..U+009F: CSI and friends). */
static bool cp_is_control(uint32_t cp)
{
        return cp < 0x20 || (cp >= 0x7f && cp <= 0x9f);
}

/* True if s (len bytes) holds a control character or is not well-formed UTF-8. */
static bool has_control(const char *s, size_t len)
{
        const unsigned char *u = (const unsigned char *)s;

        for (size_t i = 0; i < len;) {
                uint32_t cp;
                int k = utf8_decode(u + i, len - i, &cp);

                if (k <= 0 || cp_is_control(cp))
                        return true;
                i += (size_t)k;
        }
        return false;
}

/*
 * Renders s (len bytes) for a message into buf: printable UTF-8 is kept, control
 * characters and bad bytes become \xNN or \uNNNN, the quote character and backslash
 * are escaped. At most QUOTE_MAX output bytes, then "...". q is the quote character
 * to wrap the value in, or 0 for none. Returns buf.
 */
static const char *quote(char buf[static QUOTE_BUF], const char *s, size_t len, char q)
{
        const unsigned char *u = (const unsigned char *)s;
        size_t o = 0, body = 0;
        bool cut = false;

        if (q)
                buf[o++] = q;
        for (size_t i = 0; i < len;) {
                char piece[8];
                size_t plen, step;
                uint32_t cp;
                int k;

                k = utf8_decode(u + i, len - i, &cp);
                step = k > 0 ? (size_t)k : 0;
                if (step == 0) {
                        plen = (size_t)snprintf(piece, sizeof piece, "\\x%02x", u[i]);
                        step = 1;
                } else if (cp_is_control(cp)) {
                        plen = (size_t)snprintf(piece, sizeof piece,
                                                cp < 0x80 ? "\\x%02x" : "\\u%04x", (unsigned)cp);
                } else if ((q && cp == (unsigned char)q) || cp == '\\') {
                        piece[0] = '\\';
                        piece[1] = (char)cp;
                        plen = 2;
                } else {
                        memcpy(piece, s + i, step);
                        plen = step;
                }
                if (body + plen > QUOTE_MAX) {
                        cut = true;
                        break;
                }
                memcpy(buf + o, piece, plen);
                o += plen;
                body += plen;
                i += step;
        }
        if (cut) {
                memcpy(buf + o, "...", 3);
                o += 3;
        }
        if (q)
                buf[o++] = q;
        buf[o] = 0;
        return buf;
}

/*
 * A JSON number with a fraction or an exponent (jansson's real), as the shortest
 * text that reads back as the same double, and always looking like a real: 32.0
 * stays "32.0" (not "32", which would read as the integer the message asks for),
 * 1e6 is "1000000.0", 0.5 is "0.5", 1e300 is "1e+300". jansson keeps no source
 * text, so 3.2e1 shows as "32.0".
 */
static const char *describe_real(char buf[static QUOTE_BUF], double d)
{
        /* A whole number as people write one: 1000000.0, not 1e+06. */
        if (d > -1e15 && d < 1e15 && d == (double)(long long)d) {
                snprintf(buf, QUOTE_BUF, "%.1f", d);
                return buf;
        }
        for (int prec = 1; prec <= 17; prec++) {
                snprintf(buf, QUOTE_BUF, "%.*g", prec, d);
                if (strtod(buf, NULL) == d)
                        break;
        }
        if (!strpbrk(buf, ".eEn")) /* n: inf, nan (jansson yields neither) */
                strncat(buf, ".0", QUOTE_BUF - strlen(buf) - 1);
        return buf;
}

/* Describes a JSON value for "got ..." in a message: the value for scalars. */
static const char *describe(char buf[static QUOTE_BUF], json_t *v)
{
        switch (json_typeof(v)) {
        case JSON_OBJECT:
                return "an object";
        case JSON_ARRAY:
                return "an array";
        case JSON_STRING:
                return quote(buf, json_string_value(v), json_string_length(v), '"');
        case JSON_INTEGER:
                snprintf(buf, QUOTE_BUF, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
                return buf;
        case JSON_REAL:
                return describe_real(buf, json_real_value(v));
        case JSON_TRUE:
                return "true";
        case JSON_FALSE:
                return "false";
        case JSON_NULL:
                return "null";
        }
        return "an unknown value";
}

static void error_init(ManifestError *err, const char *file)
{
        *err = (ManifestError){};
        snprintf(err->file, sizeof err->file, "%s", file ? file : "manifest.json");
}

/* Fills err with key and a formatted message. Returns -EINVAL. */
_printf_(3, 4) static int fail(ManifestError *err, const char *key, const char *fmt, ...)
{
        va_list ap;

        snprintf(err->key, sizeof err->key, "%s", key);
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
        return -EINVAL;
}

static int fail_oom(ManifestError *err, const char *key)
{
        fail(err, key, "out of memory");
        return -ENOMEM;
}

static int fail_type(ManifestError *err, const char *key, const char *expected, json_t *v)
{
        char got[QUOTE_BUF];

        return fail(err, key, "expected %s, got %s", expected, describe(got, v));
}

/*
 * fail_type() for a key that takes a JSON integer, with a hint when v is almost one:
 * a real without a fraction (32.0, 3.2e1: "write 32") or a string of digits ("32":
 * "write 32, without quotes"). Returns -EINVAL.
 */
static int fail_integer(ManifestError *err, const char *key, const char *expected, json_t *v)
{
        char got[QUOTE_BUF];
        const char *s = json_string_value(v);
        double d = json_is_real(v) ? json_real_value(v) : 0;

        /* The range first: casting a double out of long long's range is undefined. */
        if (json_is_real(v) && d > -1e15 && d < 1e15 && d == (double)(long long)d)
                return fail(err, key,
                            "expected %s, got %s (a number with a fraction or an "
                            "exponent); write it as an integer: %lld",
                            expected, describe(got, v), (long long)d);
        if (s && *s && strlen(s) < 20 && strspn(s, "0123456789") == strlen(s))
                return fail(err, key,
                            "expected %s, got %s (a string); write the number "
                            "without quotes: %s",
                            expected, describe(got, v), s);
        return fail_type(err, key, expected, v);
}

/* ret = "parent.name" (name escaped and cut), or "name" at the top level. */
static void key_child(char ret[static KEY_MAX], const char *parent, const char *name, size_t len)
{
        char q[QUOTE_BUF];

        quote(q, name, len, 0);
        if (parent[0])
                snprintf(ret, KEY_MAX, "%.40s.%s", parent, q);
        else
                snprintf(ret, KEY_MAX, "%s", q);
}

/* ret = "parent[i]". */
static void key_index(char ret[static KEY_MAX], const char *parent, size_t i)
{
        snprintf(ret, KEY_MAX, "%.40s[%zu]", parent, i);
}

/*
 * Gets v as a string of min..max bytes without NUL (JSON allows "\u0000"; C strings,
 * argv and environ do not). expected: what to say when v is not a string.
 */
static int get_string(ManifestError *err, const char *key, json_t *v, const char *expected,
                      size_t min, size_t max, const char **ret, size_t *ret_len)
{
        char q[QUOTE_BUF];
        const char *s = NULL;
        size_t len;

        if (!json_is_string(v))
                return fail_type(err, key, expected, v);
        s = json_string_value(v);
        len = json_string_length(v);
        if (memchr(s, 0, len))
                return fail(err, key, "must not contain a NUL character (\\u0000), got %s",
                            quote(q, s, len, '"'));
        if (len < min)
                return fail(err, key, "must not be empty; expected %s", expected);
        if (len > max)
                return fail(err, key, "is %zu bytes long, more than the limit of %zu bytes: %s",
                            len, max, quote(q, s, len, '"'));
        *ret = s;
        if (ret_len)
                *ret_len = len;
        return 0;
}

static int get_array(ManifestError *err, const char *key, json_t *v, const char *expected)
{
        if (!json_is_array(v))
                return fail_type(err, key, expected, v);
        if (json_array_size(v) > MANIFEST_LIST_MAX)
                return fail(err, key, "has %zu entries, more than the limit of %u",
                            json_array_size(v), MANIFEST_LIST_MAX);
        return 0;
}

/* Why id (len bytes) is not a valid app id, or NULL if it is (rules in manifest.h,
 * checked by base/pattern.c, which the bus shares). */
static const char *id_invalid_reason(const char *id, size_t len)
{
        return app_id_invalid_reason(id, len);
}

_Static_assert(MANIFEST_ID_MAX == APP_ID_MAX, "an app id is an app id");

/* Rules and sources in manifest.h. id may be NULL (false); reads at most 129 bytes of it. */
bool manifest_id_is_valid(const char *id)
{
        if (!id)
                return false;
        return !id_invalid_reason(id, strnlen(id, MANIFEST_ID_MAX + 1));
}

#define ID_EXPECTED                                                                                \
        "a reverse-DNS app id such as \"org.example.notes\": two or more labels of A-Z a-z "       \
        "0-9 _ - joined by '.', each 1-63 characters, not starting with a digit or '-', at "       \
        "most 128 bytes"

static int get_id(ManifestError *err, const char *key, json_t *v, const char **ret)
{
        char q[QUOTE_BUF];
        const char *s, *why;
        size_t len;
        int r;

        r = get_string(err, key, v, ID_EXPECTED, 0, SIZE_MAX, &s, &len);
        if (r < 0)
                return r;
        why = id_invalid_reason(s, len);
        if (why)
                return fail(err, key, "invalid app id %s (%s); expected " ID_EXPECTED,
                            quote(q, s, len, '"'), why);
        *ret = s;
        return 0;
}

static int parse_id(Manifest *m, json_t *v, const char *key, ManifestError *err)
{
        const char *s = NULL;
        int r;

        r = get_id(err, key, v, &s);
        if (r < 0)
                return r;
        m->id = strdup(s);
        return m->id ? 0 : fail_oom(err, key);
}

/* name and version: display text, 1..MANIFEST_STRING_MAX bytes, no control characters. */
static int parse_text(char **field, json_t *v, const char *key, ManifestError *err)
{
        char q[QUOTE_BUF];
        const char *s = NULL;
        size_t len;
        int r;

        r = get_string(err, key, v, "a string", 1, MANIFEST_STRING_MAX, &s, &len);
        if (r < 0)
                return r;
        if (has_control(s, len))
                return fail(err, key,
                            "must not contain control characters (tab, newline, escape...), "
                            "got %s",
                            quote(q, s, len, '"'));
        *field = strdup(s);
        return *field ? 0 : fail_oom(err, key);
}

static int parse_name(Manifest *m, json_t *v, const char *key, ManifestError *err)
{
        return parse_text(&m->name, v, key, err);
}

static int parse_version(Manifest *m, json_t *v, const char *key, ManifestError *err)
{
        return parse_text(&m->version, v, key, err);
}

/* "autostart": true or false (docs/manifest.md): whether cellad starts the installed
 * app when it starts. */
static int parse_autostart(Manifest *m, json_t *v, const char *key, ManifestError *err)
{
        if (!json_is_boolean(v))
                return fail_type(err, key, "true or false", v);
        m->autostart = json_is_true(v);
        return 0;
}

/* A field of Manifest, for sizeof() in the rows below. */
#define MANIFEST_FIELD(f) (((Manifest *)NULL)->f)

/* offsetof(Manifest, f) that does not compile unless f is int-sized, as a C enum is. */
#define ENUM_OFFSET(f)                                                                             \
        (offsetof(Manifest, f) + 0 * sizeof(struct {                                               \
                                         _Static_assert(sizeof(MANIFEST_FIELD(f)) == sizeof(int),  \
                                                        #f " is not int-sized");                   \
                                         char c;                                                   \
                                 }))

/* One row of enum_keys: the key, its Manifest field, its spellings (indexed by value). */
#define ENUM_KEY(key_, field, names, required_, default_)                                          \
        {                                                                                          \
                .key = (key_), .values = (names), .n_values = ELEMENTSOF(names),                   \
                .required = (required_), .default_value = (default_),                              \
                .offset = ENUM_OFFSET(field), .set_offset = SIZE_MAX,                              \
        }

/* The enum-like keys, in the order they are parsed (contract in manifest.h). */
static const ManifestEnumKey enum_keys[] = {
        ENUM_KEY("runtime", runtime, runtime_names, true, 0),
        ENUM_KEY("kind", kind, kind_names, false, MANIFEST_KIND_APP),
        ENUM_KEY("restart", restart, restart_names, false, MANIFEST_RESTART_NO),
        ENUM_KEY("isolation", isolation, isolation_names, false, MANIFEST_ISOLATION_SANDBOX),
        /* has_scheduler: cella boot checks that the members of a group that set one agree. */
        {
                .key = "scheduler",
                .values = scheduler_names,
                .n_values = ELEMENTSOF(scheduler_names),
                .default_value = MANIFEST_SCHEDULER_FAIR,
                .offset = ENUM_OFFSET(scheduler),
                .set_offset = offsetof(Manifest, has_scheduler),
        },
};

/* Bytes of enum_expected()'s text: every spelling quoted, with separators. */
#define ENUM_EXPECTED_MAX 160u

/* The values of k for a message: `"no", "on-failure" or "always"`. Returns buf. */
static const char *enum_expected(char buf[static ENUM_EXPECTED_MAX], const ManifestEnumKey *k)
{
        size_t o = 0;

        buf[0] = 0;
        for (size_t i = 0; i < k->n_values && o < ENUM_EXPECTED_MAX; i++)
                o += (size_t)snprintf(buf + o, ENUM_EXPECTED_MAX - o, "%s\"%s\"",
                                      i == 0                 ? ""
                                      : i + 1 == k->n_values ? " or "
                                                             : ", ",
                                      k->values[i]);
        return buf;
}

/*
 * Parses v, the value of enum key k, into its field of m (and sets its set_offset
 * flag). Spellings are case-sensitive; a value that is not one of them is refused
 * with all of them listed, and the nearest one suggested: one that differs only in
 * case ("Always"), else one within SUGGEST_DISTANCE edits (base/suggest.h).
 * Returns 0 or -EINVAL (err filled).
 */
static int parse_enum(Manifest *m, const ManifestEnumKey *k, json_t *v, ManifestError *err)
{
        char expected[ENUM_EXPECTED_MAX], q[QUOTE_BUF];
        const char *s, *near = NULL;
        size_t len;

        enum_expected(expected, k);
        if (!json_is_string(v))
                return fail_type(err, k->key, expected, v);
        s = json_string_value(v);
        len = json_string_length(v);
        for (size_t i = 0; i < k->n_values; i++)
                if (len == strlen(k->values[i]) && memcmp(s, k->values[i], len) == 0) {
                        *(int *)((char *)m + k->offset) = (int)i;
                        if (k->set_offset != SIZE_MAX)
                                *(bool *)((char *)m + k->set_offset) = true;
                        return 0;
                }
        /* strncasecmp stops at a NUL of s ("\u0000" is allowed in JSON): no match then. */
        for (size_t i = 0; i < k->n_values && !near; i++)
                if (len == strlen(k->values[i]) && strncasecmp(s, k->values[i], len) == 0)
                        near = k->values[i];
        if (!near)
                near = suggest_nearest(s, len, k->values, k->n_values);
        quote(q, s, len, '"');
        if (near)
                return fail(err, k->key, "expected %s, got %s; did you mean \"%s\"?", expected, q,
                            near);
        return fail(err, k->key, "expected %s, got %s", expected, q);
}

/* Parses every enum key of root (the top level) into m: required ones must be there. */
static int parse_enums(Manifest *m, json_t *root, ManifestError *err)
{
        for (size_t i = 0; i < ELEMENTSOF(enum_keys); i++) {
                const ManifestEnumKey *k = &enum_keys[i];
                json_t *v = json_object_get(root, k->key);
                char expected[ENUM_EXPECTED_MAX];
                int r;

                if (!v) {
                        if (k->required)
                                return fail(err, k->key, "missing required key; expected %s",
                                            enum_expected(expected, k));
                        continue;
                }
                r = parse_enum(m, k, v, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

#define GROUP_EXPECTED "a group name of 1 to 64 characters [a-z0-9_-]"

static int parse_group(Manifest *m, json_t *v, const char *key, ManifestError *err)
{
        char q[QUOTE_BUF];
        const char *s = NULL;
        size_t len = 0;
        int r;

        r = get_string(err, key, v, GROUP_EXPECTED, 1, MANIFEST_GROUP_MAX, &s, &len);
        if (r < 0)
                return r;
        /* Lower case only: the name appears in cgroup labels and file names. */
        if (strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789_-") != len)
                return fail(err, key, "invalid group %s; expected " GROUP_EXPECTED,
                            quote(q, s, len, '"'));
        m->group = strndup(s, len);
        return m->group ? 0 : fail_oom(err, key);
}

/* The rules between keys, once each key is valid on its own. */
static int check_isolation(Manifest *m, ManifestError *err)
{
        bool packed = m->isolation == MANIFEST_ISOLATION_PACKED;

        if (packed && m->runtime != MANIFEST_RUNTIME_LUA)
                return fail(
                        err, "isolation",
                        "\"packed\" needs \"runtime\": \"lua\" (a packed group is one cella-lua "
                        "host), got runtime \"%s\"",
                        manifest_runtime_to_string(m->runtime));
        if (packed && !m->group)
                return fail(err, "group",
                            "missing required key with \"isolation\": \"packed\"; "
                            "expected " GROUP_EXPECTED);
        if (!packed && m->group)
                return fail(err, "group",
                            "only a packed app has a group; set \"isolation\": \"packed\" or "
                            "remove it");
        if (!packed && m->has_scheduler)
                return fail(err, "scheduler",
                            "only a packed group has a scheduler; set \"isolation\": \"packed\" or "
                            "remove it");
        if (m->priority != 0 && m->runtime != MANIFEST_RUNTIME_LUA)
                return fail(err, "priority", "only a Lua app has a priority; got runtime \"%s\"",
                            manifest_runtime_to_string(m->runtime));
        return 0;
}

/*
 * Why entry (len > 0 bytes) is not a relative path that stays inside the app folder,
 * or NULL. Refusing ".." outright (rather than resolving it) keeps the check purely
 * lexical; the sandbox opens the entry with RESOLVE_BENEATH anyway.
 */
static const char *entry_invalid_reason(const char *s, size_t len)
{
        bool named = false;
        size_t start = 0;

        if (has_control(s, len))
                return "it contains a control character";
        if (s[0] == '/')
                return "it is an absolute path";
        for (size_t i = 0; i <= len; i++) {
                size_t clen;

                if (i < len && s[i] != '/')
                        continue;
                clen = i - start;
                if (clen == 0)
                        return "it has an empty component (\"//\" or a trailing '/')";
                if (clen == 2 && s[start] == '.' && s[start + 1] == '.')
                        return "it has a \"..\" component";
                if (!(clen == 1 && s[start] == '.'))
                        named = true;
                start = i + 1;
        }
        if (!named)
                return "it names the app folder itself";
        return NULL;
}

#define ENTRY_EXPECTED "a relative path inside the app folder such as \"bin/notes\""

static int parse_entry(Manifest *m, json_t *v, const char *key, ManifestError *err)
{
        char q[QUOTE_BUF];
        const char *s, *why;
        size_t len;
        int r;

        r = get_string(err, key, v, ENTRY_EXPECTED, 1, MANIFEST_STRING_MAX, &s, &len);
        if (r < 0)
                return r;
        why = entry_invalid_reason(s, len);
        if (why)
                return fail(err, key, "invalid entry %s (%s); expected " ENTRY_EXPECTED,
                            quote(q, s, len, '"'), why);
        m->entry = strdup(s);
        return m->entry ? 0 : fail_oom(err, key);
}

static int parse_args(Manifest *m, json_t *v, const char *key, ManifestError *err)
{
        _cleanup_strv_free_ char **l = NULL;
        size_t i;
        int r;

        r = get_array(err, key, v, "an array of strings");
        if (r < 0)
                return r;
        l = calloc(json_array_size(v) + 1, sizeof(char *));
        if (!l)
                return fail_oom(err, key);
        for (i = 0; i < json_array_size(v); i++) {
                json_t *e = json_array_get(v, i);
                char k[KEY_MAX];
                const char *s = NULL;

                key_index(k, key, i);
                r = get_string(err, k, e, "a string", 0, MANIFEST_STRING_MAX, &s, NULL);
                if (r < 0)
                        return r;
                l[i] = strdup(s);
                if (!l[i])
                        return fail_oom(err, k);
        }
        m->args = TAKE_PTR(l);
        return 0;
}

static int parse_depends(Manifest *m, json_t *v, const char *key, ManifestError *err)
{
        _cleanup_strv_free_ char **l = NULL;
        size_t i;
        int r;

        r = get_array(err, key, v, "an array of app ids");
        if (r < 0)
                return r;
        l = calloc(json_array_size(v) + 1, sizeof(char *));
        if (!l)
                return fail_oom(err, key);
        for (i = 0; i < json_array_size(v); i++) {
                json_t *e = json_array_get(v, i);
                char k[KEY_MAX], q[QUOTE_BUF];
                const char *s = NULL;

                key_index(k, key, i);
                r = get_id(err, k, e, &s);
                if (r < 0)
                        return r;
                if (m->id && strcmp(s, m->id) == 0)
                        return fail(err, k, "the app cannot depend on itself (%s)",
                                    quote(q, s, strlen(s), '"'));
                STRV_FOREACH (p, l)
                        if (strcmp(*p, s) == 0)
                                return fail(err, k, "duplicate dependency %s",
                                            quote(q, s, strlen(s), '"'));
                l[i] = strdup(s);
                if (!l[i])
                        return fail_oom(err, k);
        }
        m->depends = TAKE_PTR(l);
        return 0;
}

/*
 * Why s (len > 0 bytes) is not "name" or "name:scope", or NULL. name is lowercase
 * dotted words, [a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*; scope is everything after the
 * first ':' (it may hold more ':', as in "net.connect:host:443"), printable ASCII without
 * spaces, globs included. Whether the right exists is the policy module's business.
 */
static const char *permission_invalid_reason(const char *s, size_t len)
{
        bool word_start = true;
        size_t i;

        for (i = 0; i < len && s[i] != ':'; i++) {
                char c = s[i];

                if (word_start) {
                        if (!(c >= 'a' && c <= 'z'))
                                return "each word of the name must start with a-z";
                        word_start = false;
                } else if (c == '.')
                        word_start = true;
                else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
                        return "the name may only contain a-z 0-9 _ and .";
        }
        if (word_start)
                return i == 0 ? "the name is empty" : "the name ends with '.'";
        if (i == len)
                return NULL;
        if (i + 1 == len)
                return "the scope after ':' is empty";
        for (i++; i < len; i++)
                if ((unsigned char)s[i] < 0x21 || (unsigned char)s[i] > 0x7e)
                        return "the scope may only contain printable ASCII without spaces";
        return NULL;
}

#define PERMISSION_EXPECTED                                                                        \
        "\"name\" or \"name:scope\" such as \"storage\" or \"bus.publish:notes.*\""

/* A list of rights (permissions, exports) into *target. */
static int parse_rights(char ***target, json_t *v, const char *key, ManifestError *err)
{
        _cleanup_strv_free_ char **l = NULL;
        size_t i;
        int r;

        r = get_array(err, key, v, "an array of permission strings");
        if (r < 0)
                return r;
        l = calloc(json_array_size(v) + 1, sizeof(char *));
        if (!l)
                return fail_oom(err, key);
        for (i = 0; i < json_array_size(v); i++) {
                json_t *e = json_array_get(v, i);
                char k[KEY_MAX], q[QUOTE_BUF];
                const char *s, *why;
                size_t len;

                key_index(k, key, i);
                r = get_string(err, k, e, "a permission string " PERMISSION_EXPECTED, 1,
                               MANIFEST_STRING_MAX, &s, &len);
                if (r < 0)
                        return r;
                why = permission_invalid_reason(s, len);
                if (why)
                        return fail(err, k, "invalid permission %s (%s); expected %s",
                                    quote(q, s, len, '"'), why, PERMISSION_EXPECTED);
                STRV_FOREACH (p, l)
                        if (strcmp(*p, s) == 0)
                                return fail(err, k, "duplicate permission %s",
                                            quote(q, s, len, '"'));
                l[i] = strdup(s);
                if (!l[i])
                        return fail_oom(err, k);
        }
        *target = TAKE_PTR(l);
        return 0;
}

static int parse_permissions(Manifest *m, json_t *v, const char *key, ManifestError *err)
{
        return parse_rights(&m->permissions, v, key, err);
}

/* Which rights others may hold on this app; checked against the id at install
 * (capability_check_exports). */
static int parse_exports(Manifest *m, json_t *v, const char *key, ManifestError *err)
{
        return parse_rights(&m->exports, v, key, err);
}

static bool env_name_is_valid(const char *s, size_t len)
{
        if (len == 0 || len > ENV_NAME_MAX)
                return false;
        for (size_t i = 0; i < len; i++) {
                char c = s[i];

                if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' ||
                      (i > 0 && c >= '0' && c <= '9')))
                        return false;
        }
        return true;
}

static bool env_name_is_reserved(const char *s)
{
        if (strncmp(s, ENV_RESERVED_PREFIX, strlen(ENV_RESERVED_PREFIX)) == 0)
                return true;
        for (size_t i = 0; i < ELEMENTSOF(env_reserved); i++)
                if (strcmp(s, env_reserved[i]) == 0)
                        return true;
        return false;
}

static int parse_env(Manifest *m, json_t *v, const char *key, ManifestError *err)
{
        _cleanup_strv_free_ char **l = NULL;
        size_t n = 0;

        if (!json_is_object(v))
                return fail_type(err, key, "an object of strings such as {\"LANG\": \"C.UTF-8\"}",
                                 v);
        if (json_object_size(v) > MANIFEST_LIST_MAX)
                return fail(err, key, "has %zu entries, more than the limit of %u",
                            json_object_size(v), MANIFEST_LIST_MAX);
        l = calloc(json_object_size(v) + 1, sizeof(char *));
        if (!l)
                return fail_oom(err, key);
        for (void *it = json_object_iter(v); it; it = json_object_iter_next(v, it)) {
                const char *name = json_object_iter_key(it);
                size_t name_len = json_object_iter_key_len(it);
                json_t *e = json_object_iter_value(it);
                char k[KEY_MAX];
                const char *s = NULL;
                int r;

                key_child(k, key, name, name_len);
                /* jansson refuses NUL in keys, so name is a C string of name_len bytes. */
                if (!env_name_is_valid(name, name_len))
                        return fail(err, k,
                                    "invalid variable name; expected 1-%u characters of A-Z "
                                    "a-z 0-9 _, not starting with a digit",
                                    ENV_NAME_MAX);
                if (env_name_is_reserved(name))
                        return fail(err, k,
                                    "this variable is reserved: cella sets CELLA_* itself, and "
                                    "LD_PRELOAD, LD_LIBRARY_PATH and LD_AUDIT are refused");
                r = get_string(err, k, e, "a string", 0, MANIFEST_ENV_VALUE_MAX, &s, NULL);
                if (r < 0)
                        return r;
                if (asprintf(&l[n], "%s=%s", name, s) < 0) {
                        l[n] = NULL;
                        return fail_oom(err, k);
                }
                n++;
        }
        m->env = TAKE_PTR(l);
        return 0;
}

/*
 * offsetof(Manifest, f) that does not compile unless f can hold every value of
 * min_..max_: a uint64_t for bounds from 0 up, an int for a range that fits one.
 */
#define NUMBER_OFFSET(f, min_, max_)                                                               \
        (offsetof(Manifest, f) +                                                                   \
         0 * sizeof(struct {                                                                       \
                 _Static_assert(sizeof(MANIFEST_FIELD(f)) == sizeof(uint64_t)                      \
                                        ? (int64_t)(min_) >= 0                                     \
                                        : sizeof(MANIFEST_FIELD(f)) == sizeof(int) &&              \
                                                  (int64_t)(min_) > INT_MIN &&                     \
                                                  (uint64_t)(max_) <= INT_MAX,                     \
                                #f " cannot hold " #min_ ".." #max_);                              \
                 char c;                                                                           \
         }))

/* One row of number_keys: where the key is, its unit and bounds, its Manifest field. */
#define NUMBER_KEY(parent_, key_, unit_, min_, max_, default_, field, note_)                       \
        {                                                                                          \
                .parent = (parent_), .key = (key_), .unit = (unit_), .min = (min_), .max = (max_), \
                .default_value = (default_), .offset = NUMBER_OFFSET(field, min_, max_),           \
                .size = sizeof(MANIFEST_FIELD(field)), .note = (note_),                            \
        }

/*
 * The limits and the other numbers, in the order they are parsed and listed
 * (contract in manifest.h; bounds and their sources at the LIMIT_* definitions).
 * A limit's default is 0, "not set": the supervisor applies its own.
 */
static const ManifestNumberKey number_keys[] = {
        NUMBER_KEY("limits", "memory", MANIFEST_UNIT_BYTES, LIMIT_MEMORY_MIN, UINT64_MAX, 0,
                   limits.memory, NULL),
        NUMBER_KEY("limits", "pids", MANIFEST_UNIT_COUNT, 1, LIMIT_PIDS_MAX, 0, limits.pids, NULL),
        NUMBER_KEY("limits", "cpu", MANIFEST_UNIT_CPU, 1, LIMIT_CPU_MAX_MILLI, 0, limits.cpu_milli,
                   NULL),
        NUMBER_KEY("limits", "files", MANIFEST_UNIT_COUNT, LIMIT_FILES_MIN, LIMIT_FILES_MAX, 0,
                   limits.files, NULL),
        NUMBER_KEY("limits", "storage", MANIFEST_UNIT_BYTES, LIMIT_STORAGE_MIN, LIMIT_STORAGE_MAX,
                   0, limits.storage, NULL),
        NUMBER_KEY("limits", "tmp", MANIFEST_UNIT_BYTES, LIMIT_TMP_MIN, UINT64_MAX, 0, limits.tmp,
                   NULL),
        NUMBER_KEY("", "priority", MANIFEST_UNIT_COUNT, MANIFEST_PRIORITY_MIN,
                   MANIFEST_PRIORITY_MAX, 0, priority, "a nice value"),
};

/* How each unit is named in messages: "<noun> from MIN to MAX<example>". */
static const struct UnitInfo {
        const char *noun;
        const char *example; /* said after the bounds, or "" */
} unit_info[] = {
        [MANIFEST_UNIT_BYTES] = {"a size", ", such as \"64M\" or a number of bytes"},
        [MANIFEST_UNIT_COUNT] = {"an integer", ""},
        [MANIFEST_UNIT_CPU] = {"a number of CPUs", ", such as 2 or 0.5"},
};

#define SIZE_SYNTAX " (suffixes K, M, G, T; no fractions)"
/* Bytes of number_expected()'s text (a size's syntax error adds SIZE_SYNTAX). */
#define NUMBER_EXPECTED_MAX 192u
/* Bytes of one bound or value as format_bound() writes it. */
#define BOUND_MAX 32u

/*
 * A number as read from the manifest, in its row's kept unit (bytes, count,
 * thousandths of a CPU): sign and magnitude, as the rows' bounds reach from
 * priority's -20 to a size's 2^64-1.
 */
typedef struct Number {
        bool negative;
        uint64_t magnitude;
} Number;

static bool number_below(Number n, int64_t min)
{
        if (min >= 0)
                return n.negative || n.magnitude < (uint64_t)min;
        /* |min| written so that INT64_MIN does not overflow. */
        return n.negative && n.magnitude > (uint64_t)(-(min + 1)) + 1;
}

static bool number_above(Number n, uint64_t max)
{
        return !n.negative && n.magnitude > max;
}

/* n in k's unit as the manifest writes it: "1M", "-20", "0.001". Returns buf. */
static const char *format_bound(char buf[static BOUND_MAX], const ManifestNumberKey *k, Number n)
{
        switch (k->unit) {
        case MANIFEST_UNIT_BYTES:
                return format_size(n.magnitude, buf, BOUND_MAX);
        case MANIFEST_UNIT_CPU:
                if (n.magnitude % 1000 == 0)
                        snprintf(buf, BOUND_MAX, "%llu", (unsigned long long)(n.magnitude / 1000));
                else {
                        size_t len;

                        snprintf(buf, BOUND_MAX, "%llu.%03llu",
                                 (unsigned long long)(n.magnitude / 1000),
                                 (unsigned long long)(n.magnitude % 1000));
                        len = strlen(buf);
                        while (buf[len - 1] == '0')
                                buf[--len] = 0;
                }
                return buf;
        case MANIFEST_UNIT_COUNT:
        default:
                snprintf(buf, BOUND_MAX, "%s%llu", n.negative ? "-" : "",
                         (unsigned long long)n.magnitude);
                return buf;
        }
}

static Number number_of(int64_t v)
{
        return (Number){v < 0, v < 0 ? (uint64_t)(-(v + 1)) + 1 : (uint64_t)v};
}

/*
 * What k takes, for messages: "an integer from 1 to 4194304", "a size of at least
 * 1M, such as "64M" or a number of bytes", then " (note)". Returns buf.
 */
static const char *number_expected(char buf[static NUMBER_EXPECTED_MAX], const ManifestNumberKey *k)
{
        const struct UnitInfo *u = &unit_info[k->unit];
        char lo[BOUND_MAX], hi[BOUND_MAX];
        size_t o;

        format_bound(lo, k, number_of(k->min));
        if (k->max == UINT64_MAX)
                o = (size_t)snprintf(buf, NUMBER_EXPECTED_MAX, "%s of at least %s%s", u->noun, lo,
                                     u->example);
        else
                o = (size_t)snprintf(buf, NUMBER_EXPECTED_MAX, "%s from %s to %s%s", u->noun, lo,
                                     format_bound(hi, k, (Number){false, k->max}), u->example);
        if (k->note && o < NUMBER_EXPECTED_MAX)
                snprintf(buf + o, NUMBER_EXPECTED_MAX - o, " (%s)", k->note);
        return buf;
}

/*
 * The one message for a value out of k's bounds: "<value> is less than the minimum
 * of <min>; expected <what k takes>". v is the JSON value; a size is shown in its
 * unit ("1023K"), anything else as written. Returns -EINVAL.
 */
static int fail_range(ManifestError *err, const char *key, const ManifestNumberKey *k, json_t *v,
                      Number n, bool below, const char *expected)
{
        char got[QUOTE_BUF], bound[BOUND_MAX];

        if (k->unit == MANIFEST_UNIT_BYTES && !n.negative)
                format_size(n.magnitude, got, sizeof got);
        else
                describe(got, v);
        if (below)
                return fail(err, key, "%s is less than the minimum of %s; expected %s", got,
                            format_bound(bound, k, number_of(k->min)), expected);
        return fail(err, key, "%s is more than the maximum of %s; expected %s", got,
                    format_bound(bound, k, (Number){false, k->max}), expected);
}

/*
 * Parses v, the value of number key k (its JSON path is key), into its field of m.
 * A size is a JSON integer of bytes or a string parse_size() reads; a count a JSON
 * integer; a number of CPUs any JSON number, rounded to thousandths. Every error
 * names what k takes, bounds included. Returns 0 or -EINVAL (err filled).
 */
static int parse_number(Manifest *m, const ManifestNumberKey *k, json_t *v, const char *key,
                        ManifestError *err)
{
        char expected[NUMBER_EXPECTED_MAX], got[QUOTE_BUF];
        char *field = (char *)m + k->offset;
        Number n = {};

        number_expected(expected, k);
        if (json_is_integer(v) && k->unit != MANIFEST_UNIT_CPU)
                n = number_of(json_integer_value(v));
        else if (json_is_string(v) && k->unit == MANIFEST_UNIT_BYTES) {
                char syntax[NUMBER_EXPECTED_MAX + sizeof SIZE_SYNTAX];
                const char *s = NULL;
                int r;

                r = get_string(err, key, v, expected, 0, SIZE_MAX, &s, NULL);
                if (r < 0)
                        return r;
                r = parse_size(s, &n.magnitude);
                if (r == -ERANGE)
                        return fail(err, key, "size %s does not fit in 64 bits; expected %s",
                                    describe(got, v), expected);
                if (r < 0) {
                        snprintf(syntax, sizeof syntax, "%s" SIZE_SYNTAX, expected);
                        return fail_type(err, key, syntax, v);
                }
        } else if (json_is_number(v) && k->unit == MANIFEST_UNIT_CPU) {
                double d = json_number_value(v);

                /*
                 * Compared before rounding, so 1024.0004 is over 1024. NaN fails too, and
                 * a value whose thousandths do not fit in 64 bits is not cast.
                 */
                if (!(d >= 0))
                        return fail_range(err, key, k, v, (Number){true, 1}, true, expected);
                if (d > (double)k->max / 1000.0 || d * 1000.0 >= 0x1p64)
                        return fail_range(err, key, k, v, (Number){false, k->max}, false, expected);
                n.magnitude = (uint64_t)(d * 1000.0 + 0.5);
        } else
                return fail_integer(err, key, expected, v);

        if (number_below(n, k->min))
                return fail_range(err, key, k, v, n, true, expected);
        if (number_above(n, k->max))
                return fail_range(err, key, k, v, n, false, expected);
        if (k->size == sizeof(int))
                *(int *)field = n.negative ? (int)-(int64_t)n.magnitude : (int)n.magnitude;
        else
                *(uint64_t *)field = n.magnitude;
        return 0;
}

/* Parses the number keys of parent ("" or "limits") that obj, its object, holds. */
static int parse_numbers(Manifest *m, json_t *obj, const char *parent, ManifestError *err)
{
        for (size_t i = 0; i < ELEMENTSOF(number_keys); i++) {
                const ManifestNumberKey *k = &number_keys[i];
                json_t *v;
                char key[KEY_MAX];
                int r;

                if (strcmp(k->parent, parent) != 0)
                        continue;
                v = json_object_get(obj, k->key);
                if (!v)
                        continue;
                key_child(key, parent, k->key, strlen(k->key));
                r = parse_number(m, k, v, key, err);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Every row's default into m, before any key is read. */
static void set_defaults(Manifest *m)
{
        for (size_t i = 0; i < ELEMENTSOF(enum_keys); i++)
                *(int *)((char *)m + enum_keys[i].offset) = enum_keys[i].default_value;
        for (size_t i = 0; i < ELEMENTSOF(number_keys); i++) {
                char *field = (char *)m + number_keys[i].offset;

                if (number_keys[i].size == sizeof(int))
                        *(int *)field = (int)number_keys[i].default_value;
                else
                        *(uint64_t *)field = (uint64_t)number_keys[i].default_value;
        }
}

/* The keys allowed in the object at parent ("" or "limits"), into names; their number. */
static size_t level_keys(const char *parent, const char **names, size_t max);

static int check_keys(ManifestError *err, json_t *obj, const char *parent);

static int parse_limits(Manifest *m, json_t *v, const char *key, ManifestError *err)
{
        int r;

        if (!json_is_object(v))
                return fail_type(err, key, "an object such as {\"memory\": \"64M\", \"pids\": 32}",
                                 v);
        r = check_keys(err, v, key);
        if (r < 0)
                return r;
        return parse_numbers(m, v, key, err);
}

typedef int (*FieldParser)(Manifest *m, json_t *v, const char *key, ManifestError *err);

/*
 * The keys with a parser of their own, in the order they are checked (id first, as
 * depends refers to it); then come enum_keys, then the top-level number_keys.
 */
static const struct Field {
        const char *name;
        FieldParser parse;
        const char *required; /* what is expected if the key is required, else NULL */
} top_fields[] = {
        {"id", parse_id, ID_EXPECTED},
        {"name", parse_name, NULL},
        {"version", parse_version, NULL},
        {"entry", parse_entry, ENTRY_EXPECTED},
        {"args", parse_args, NULL},
        {"depends", parse_depends, NULL},
        {"permissions", parse_permissions, NULL},
        {"exports", parse_exports, NULL},
        {"env", parse_env, NULL},
        {"limits", parse_limits, NULL},
        {"group", parse_group, NULL},
        {"autostart", parse_autostart, NULL},
};

/* Room for every key of one level: check_keys() lists them from an array this long. */
#define LEVEL_KEYS_MAX (ELEMENTSOF(top_fields) + ELEMENTSOF(enum_keys) + ELEMENTSOF(number_keys))

static size_t level_keys(const char *parent, const char **names, size_t max)
{
        size_t n = 0;

        if (!parent[0]) {
                for (size_t i = 0; i < ELEMENTSOF(top_fields) && n < max; i++)
                        names[n++] = top_fields[i].name;
                for (size_t i = 0; i < ELEMENTSOF(enum_keys) && n < max; i++)
                        names[n++] = enum_keys[i].key;
        }
        for (size_t i = 0; i < ELEMENTSOF(number_keys) && n < max; i++)
                if (strcmp(number_keys[i].parent, parent) == 0)
                        names[n++] = number_keys[i].key;
        return n;
}

/*
 * Refuses any key of obj (the object at parent) that level_keys() does not list.
 * The message suggests the closest known key within SUGGEST_DISTANCE edits, or
 * lists the known keys.
 */
static int check_keys(ManifestError *err, json_t *obj, const char *parent)
{
        const char *names[LEVEL_KEYS_MAX];
        size_t n = level_keys(parent, names, ELEMENTSOF(names));

        for (void *it = json_object_iter(obj); it; it = json_object_iter_next(obj, it)) {
                const char *name = json_object_iter_key(it);
                size_t name_len = json_object_iter_key_len(it);
                const char *best;
                char k[KEY_MAX], q[QUOTE_BUF], known[200];
                size_t o = 0;
                bool found = false;

                for (size_t i = 0; i < n && !found; i++)
                        found = strlen(names[i]) == name_len && strcmp(names[i], name) == 0;
                if (found)
                        continue;
                key_child(k, parent, name, name_len);
                quote(q, name, name_len, '\'');
                best = suggest_nearest(name, name_len, names, n);
                if (best)
                        return fail(err, k, "unknown key %s; did you mean '%s'?", q, best);
                known[0] = 0;
                for (size_t i = 0; i < n && o < sizeof known; i++)
                        o += (size_t)snprintf(known + o, sizeof known - o, "%s%s", i ? ", " : "",
                                              names[i]);
                return fail(err, k, "unknown key %s; expected one of: %s", q, known);
        }
        return 0;
}

/* 1-based line and column (in bytes) of offset in data, for errors jansson does not see. */
static void locate(const char *data, size_t offset, int *ret_line, int *ret_column)
{
        int line = 1, column = 1;

        for (size_t i = 0; i < offset; i++) {
                if (data[i] == '\n') {
                        line++;
                        column = 1;
                } else
                        column++;
        }
        *ret_line = line;
        *ret_column = column;
}

/*
 * Parses size bytes of JSON at data (contract in manifest.h). err may be NULL; when not,
 * it is always reset, and on failure holds the file, key and message. Returns 0, -EINVAL
 * (bad content or arguments), -EFBIG (over MANIFEST_MAX_SIZE) or -ENOMEM.
 */
int manifest_parse(const char *data, size_t size, const char *filename, Manifest **ret,
                   ManifestError *err)
{
        _cleanup_(manifest_freep) Manifest *m = NULL;
        json_auto_t *root = NULL;
        ManifestError local;
        json_error_t jerr;
        const char *nul;
        char got[QUOTE_BUF];
        int r;

        if (!err)
                err = &local;
        error_init(err, filename);
        if (!ret || (!data && size > 0))
                return fail(err, "", "invalid arguments");
        if (size > MANIFEST_MAX_SIZE) {
                fail(err, "", "the manifest is %zu bytes, more than the limit of %u bytes", size,
                     MANIFEST_MAX_SIZE);
                return -EFBIG;
        }
        if (size == 0)
                return fail(err, "", "the file is empty; expected a JSON object");
        nul = memchr(data, 0, size);
        if (nul) {
                locate(data, (size_t)(nul - data), &err->line, &err->column);
                return fail(err, "", "the file contains a NUL byte; expected JSON text in UTF-8");
        }

        /*
         * JSON_ALLOW_NUL lets "\u0000" through so that get_string() can refuse it with the
         * key's name instead of a bare syntax error. JSON_DECODE_ANY lets a top level that
         * is not an object parse, for the same reason. jansson bounds nesting depth itself.
         */
        root = json_loadb(data, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY | JSON_ALLOW_NUL,
                          &jerr);
        if (!root) {
                char text[JSON_ERROR_TEXT_LENGTH];
                size_t len = strnlen(jerr.text, JSON_ERROR_TEXT_LENGTH - 1);

                if (json_error_code(&jerr) == json_error_out_of_memory)
                        return fail_oom(err, "");
                err->line = jerr.line > 0 ? jerr.line : 0;
                err->column = jerr.column > 0 ? jerr.column : 0;
                /*
                 * jansson's text is bounded and quotes at most 20 bytes of input ("near
                 * '...'"), but those bytes may be anything: keep printable ASCII only.
                 */
                for (size_t i = 0; i < len; i++)
                        text[i] = jerr.text[i] >= 0x20 && jerr.text[i] < 0x7f ? jerr.text[i] : '?';
                text[len] = 0;
                return fail(err, "", "invalid JSON: %s", text);
        }
        if (!json_is_object(root))
                return fail(err, "", "expected a JSON object { ... } at the top level, got %s",
                            describe(got, root));

        r = check_keys(err, root, "");
        if (r < 0)
                return r;
        m = calloc(1, sizeof *m);
        if (!m)
                return fail_oom(err, "");
        set_defaults(m);
        for (size_t i = 0; i < ELEMENTSOF(top_fields); i++) {
                const struct Field *f = &top_fields[i];
                json_t *v = json_object_get(root, f->name);

                if (!v) {
                        if (f->required)
                                return fail(err, f->name, "missing required key; expected %s",
                                            f->required);
                        continue;
                }
                r = f->parse(m, v, f->name, err);
                if (r < 0)
                        return r;
        }
        r = parse_enums(m, root, err);
        if (r < 0)
                return r;
        r = parse_numbers(m, root, "", err);
        if (r < 0)
                return r;

        r = check_isolation(m, err);
        if (r < 0)
                return r;
        if (!m->name)
                m->name = strdup(m->id);
        if (!m->version)
                m->version = strdup("0");
        if (!m->args)
                m->args = calloc(1, sizeof(char *));
        if (!m->depends)
                m->depends = calloc(1, sizeof(char *));
        if (!m->permissions)
                m->permissions = calloc(1, sizeof(char *));
        if (!m->exports)
                m->exports = calloc(1, sizeof(char *));
        if (!m->env)
                m->env = calloc(1, sizeof(char *));
        if (!m->name || !m->version || !m->args || !m->depends || !m->permissions || !m->exports ||
            !m->env)
                return fail_oom(err, "");

        *ret = TAKE_PTR(m);
        return 0;
}

/* openat2() with a fallback for kernels before 5.6 (and seccomp filters that say ENOSYS). */
static int open_manifest(int dirfd)
{
        struct open_how how = {
                /*
                 * O_NONBLOCK: a FIFO named manifest.json would otherwise block open() until
                 * a writer shows up. It does nothing to the regular file we accept.
                 */
                .flags = O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK,
                .resolve = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
        };
        long fd;

        fd = syscall(SYS_openat2, dirfd, "manifest.json", &how, sizeof how);
        if (fd < 0 && errno == ENOSYS)
                /* One fixed component: O_NOFOLLOW gives the same guarantee here. */
                fd = openat(dirfd, "manifest.json", (int)how.flags | O_NOFOLLOW);
        if (fd < 0)
                return negative_errno();
        return (int)fd;
}

static const char *errno_text(int r)
{
        const char *s = strerrordesc_np(-r);

        return s ? s : "unknown error";
}

/*
 * Opens dirfd/manifest.json beneath dirfd without following any symlink, checks it is a
 * regular file, reads at most MANIFEST_MAX_SIZE + 1 bytes and parses it. Returns 0, or
 * -ENOENT (no manifest), -ELOOP (a symlink), -EISDIR, -EINVAL (not a regular file, bad
 * content), -EFBIG, -ENOMEM or another -errno of openat2/read; err filled on failure.
 */
int manifest_load_at(int dirfd, const char *dir_name, Manifest **ret, ManifestError *err)
{
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *data = NULL;
        ManifestError local;
        char file[sizeof err->file];
        struct stat st;
        size_t size, dlen;
        int r;

        if (!err)
                err = &local;
        if (!dir_name)
                dir_name = ".";
        dlen = strlen(dir_name);
        snprintf(file, sizeof file, "%s%smanifest.json", dir_name,
                 dlen > 0 && dir_name[dlen - 1] == '/' ? "" : "/");
        error_init(err, file);
        if (!ret)
                return fail(err, "", "invalid arguments");

        fd = open_manifest(dirfd);
        if (fd < 0) {
                r = fd;
                switch (r) {
                case -ENOENT:
                        fail(err, "", "no manifest.json in this folder");
                        break;
                case -ELOOP:
                        fail(err, "", "manifest.json is a symbolic link; expected a regular file");
                        break;
                case -EXDEV:
                        fail(err, "", "manifest.json leads outside the app folder");
                        break;
                default:
                        fail(err, "", "cannot open manifest.json: %s", errno_text(r));
                }
                return r;
        }
        if (fstat(fd, &st) < 0) {
                r = negative_errno();
                fail(err, "", "cannot stat manifest.json: %s", errno_text(r));
                return r;
        }
        if (S_ISDIR(st.st_mode)) {
                fail(err, "", "manifest.json is a directory; expected a regular file");
                return -EISDIR;
        }
        if (!S_ISREG(st.st_mode))
                return fail(err, "", "manifest.json is not a regular file");

        r = read_full_fd(fd, MANIFEST_MAX_SIZE, &data, &size);
        if (r == -EFBIG) {
                fail(err, "", "the manifest is more than the limit of %u bytes", MANIFEST_MAX_SIZE);
                return r;
        }
        if (r < 0) {
                fail(err, "", "cannot read manifest.json: %s", errno_text(r));
                return r;
        }
        return manifest_parse(data, size, file, ret, err);
}

/* Frees m and everything it owns; takes NULL; returns NULL. */
Manifest *manifest_free(Manifest *m)
{
        if (!m)
                return NULL;
        free(m->id);
        free(m->name);
        free(m->version);
        free(m->entry);
        strv_free(m->args);
        strv_free(m->depends);
        strv_free(m->permissions);
        strv_free(m->exports);
        strv_free(m->env);
        free(m->group);
        free(m);
        return NULL;
}

/* The *_to_string functions return the manifest spelling, or NULL for a value out of range. */
const char *manifest_runtime_to_string(ManifestRuntime r)
{
        return (size_t)r < ELEMENTSOF(runtime_names) ? runtime_names[r] : NULL;
}

const char *manifest_kind_to_string(ManifestKind k)
{
        return (size_t)k < ELEMENTSOF(kind_names) ? kind_names[k] : NULL;
}

const char *manifest_restart_to_string(ManifestRestart r)
{
        return (size_t)r < ELEMENTSOF(restart_names) ? restart_names[r] : NULL;
}

const char *manifest_isolation_to_string(ManifestIsolation i)
{
        return (size_t)i < ELEMENTSOF(isolation_names) ? isolation_names[i] : NULL;
}

const char *manifest_scheduler_to_string(ManifestScheduler s)
{
        return (size_t)s < ELEMENTSOF(scheduler_names) ? scheduler_names[s] : NULL;
}

/* The tables behind the parser (contract in manifest.h). */
const ManifestEnumKey *manifest_enum_keys(size_t *ret_n)
{
        if (ret_n)
                *ret_n = ELEMENTSOF(enum_keys);
        return enum_keys;
}

const ManifestNumberKey *manifest_number_keys(size_t *ret_n)
{
        if (ret_n)
                *ret_n = ELEMENTSOF(number_keys);
        return number_keys;
}
