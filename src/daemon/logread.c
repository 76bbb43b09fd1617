/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * An app's output log as org.cella.Logs sends it (docs/api.md): the same bytes
 * `cella logs` prints from the files, <id>.log.N .. <id>.log.1 then <id>.log
 * (supervisor/applog.h rotates them as logrotate does), with its -n and --since
 * rules, bounded, and as a JSON string (valid UTF-8).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/macro.h"
#include "base/utf8.h"
#include "daemon/daemon-internal.h"
#include "policy/manifest.h"
#include "supervisor/applog.h"

/* One file of the log, oldest first, and where its bytes are in the buffer. */
typedef struct Part {
        int fd;
        uint64_t size; /* at open */
        uint64_t from; /* the first byte of it read */
        size_t at;     /* where that byte is in the buffer */
        char name[MANIFEST_ID_MAX + 16];
} Part;

/* Bytes buf (n) takes in a compact JSON string by jansson's escaping: '"' and '\\'
 * and \b \f \n \r \t 2, other controls 6 (\u00XX), an ill-formed byte 3 (U+FFFD). */
static size_t json_cost(const char *buf, size_t n)
{
        const unsigned char *p = (const unsigned char *)buf;
        size_t c = 0;

        for (size_t i = 0; i < n;) {
                uint32_t cp;
                int k;

                if (p[i] < 0x80) {
                        c += p[i] == '"' || p[i] == '\\' ||
                                             (p[i] != 0 && strchr("\b\f\n\r\t", p[i]))
                                     ? 2
                             : p[i] < 0x20 ? 6
                                           : 1;
                        i++;
                        continue;
                }
                k = utf8_decode(p + i, n - i, &cp);
                c += k > 0 ? (size_t)k : 3;
                i += k > 0 ? (size_t)k : 1;
        }
        return c;
}

json_t *daemon_log_json_string(const char *buf, size_t n, size_t *ret_used)
{
        const unsigned char *p = (const unsigned char *)buf;
        size_t w = 0, i = 0;
        char *out;
        json_t *s;

        if (utf8_is_valid(buf, n)) {
                if (ret_used)
                        *ret_used = n;
                return json_stringn(buf, n);
        }
        /* At most 3 bytes (U+FFFD) for each byte in. */
        out = malloc(n * 3 + 1);
        if (!out)
                return NULL;
        while (i < n) {
                uint32_t cp;
                int k = utf8_decode(p + i, n - i, &cp);

                if (k == -1 && ret_used)
                        break; /* a character cut at the end: the next read has it */
                if (k <= 0) {
                        memcpy(out + w, "\xef\xbf\xbd", 3);
                        w += 3;
                        i++;
                        continue;
                }
                memcpy(out + w, p + i, (size_t)k);
                w += (size_t)k;
                i += (size_t)k;
        }
        if (ret_used)
                *ret_used = i;
        s = json_stringn(out, w);
        free(out);
        return s;
}

json_t *daemon_log_tail(int dirfd, const char *id, uint64_t lines, int64_t since_us,
                        size_t max_bytes, uint64_t *ret_pos, uint64_t *ret_ino, bool *ret_truncated)
{
        Part parts[APPLOG_KEEP_MAX + 1];
        size_t n = 0, len = 0, start = 0, cur = SIZE_MAX;
        uint64_t total = 0, skip;
        _cleanup_free_ char *buf = NULL;
        json_t *text = NULL;

        *ret_pos = *ret_ino = 0;
        *ret_truncated = false;
        /* Oldest first, as cella logs (src/cli/logs.c) opens them. */
        for (unsigned k = APPLOG_KEEP_MAX + 1; k-- > 0;) {
                struct stat st;
                Part *p = &parts[n];

                if (k > 0)
                        snprintf(p->name, sizeof p->name, "%s.log.%u", id, k);
                else
                        snprintf(p->name, sizeof p->name, "%s.log", id);
                p->fd = openat(dirfd, p->name, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
                if (p->fd < 0)
                        continue;
                if (fstat(p->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                        close(p->fd);
                        continue;
                }
                p->size = (uint64_t)st.st_size;
                total += p->size;
                if (k == 0) {
                        cur = n;
                        *ret_ino = (uint64_t)st.st_ino;
                }
                n++;
        }
        /* The newest max_bytes of them all. */
        skip = total > max_bytes ? total - max_bytes : 0;
        *ret_truncated = skip > 0;
        buf = malloc(MIN(total, (uint64_t)max_bytes) + 1);
        if (!buf)
                goto out;
        for (size_t i = 0; i < n; i++) {
                Part *p = &parts[i];
                uint64_t from = MIN(skip, p->size);
                ssize_t k;

                skip -= from;
                p->from = from;
                p->at = len;
                k = from < p->size ? pread(p->fd, buf + len, p->size - from, (off_t)from) : 0;
                if (k > 0)
                        len += (size_t)k;
                if (i == cur)
                        *ret_pos = from + (uint64_t)MAX(k, 0);
        }
        if (*ret_truncated) {
                /* Cut by max_bytes: from the first whole line on. */
                const char *nl = memchr(buf, '\n', len);

                start = nl ? (size_t)(nl - buf) + 1 : 0;
        }
        /* The last `lines` lines: a newline that is not the last byte ends one. */
        if (lines > 0) {
                uint64_t seen = 0;

                for (size_t i = len; i > start; i--)
                        if (buf[i - 1] == '\n' && i != len && ++seen == lines) {
                                start = i;
                                break;
                        }
        }
        if (since_us > 0) {
                /* The lines before since_us left out, each line's time from its
                 * file's time index, as cella logs --since does. */
                size_t w = start;

                for (size_t f = 0; f < n; f++) {
                        _cleanup_free_ AppLogTime *times = NULL;
                        size_t n_times = 0;
                        size_t end_f = f + 1 < n ? parts[f + 1].at : len;
                        size_t i = MAX(start, parts[f].at);

                        if (i >= end_f)
                                continue;
                        (void)applog_times_load(dirfd, parts[f].name, &times, &n_times);
                        while (i < end_f) {
                                const char *nl = memchr(buf + i, '\n', end_f - i);
                                size_t end = nl ? (size_t)(nl - buf) + 1 : end_f;
                                uint64_t off = parts[f].from + (i - parts[f].at);

                                if (applog_time_at(times, n_times, off) >= since_us) {
                                        memmove(buf + w, buf + i, end - i);
                                        w += end - i;
                                }
                                i = end;
                        }
                }
                len = w;
        }
        /* One reply: the newest whole lines whose JSON fits max_bytes. */
        for (size_t cost = json_cost(buf + start, len - start); cost > max_bytes;) {
                const char *nl = memchr(buf + start, '\n', len - start);
                size_t end = nl ? (size_t)(nl - buf) + 1 : len;

                cost -= json_cost(buf + start, end - start);
                start = end;
                *ret_truncated = true;
        }
        text = daemon_log_json_string(buf + start, len - start, NULL);
out:
        for (size_t i = 0; i < n; i++)
                close(parts[i].fd);
        return text;
}
