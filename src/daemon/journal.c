/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cellad under systemd logs to the journal with structured fields (docs/daemon.md,
 * "Logging"): the kernel's messages with their priority, and each lifecycle status
 * record of the supervisor as an entry whose CELLA_* fields can be matched:
 * `journalctl -u cellad CELLA_APP=org.example.notes CELLA_EVENT=exited`.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include "base/log.h"
#include "base/macro.h"
#include "daemon/daemon-internal.h"

/* The syslog identifier of cellad's entries (systemd.journal-fields(7)). */
#define DAEMON_SYSLOG_IDENTIFIER "cellad"

bool daemon_stderr_is_journal(void)
{
        const char *e = getenv("JOURNAL_STREAM");
        unsigned long long dev, ino;
        struct stat st;
        int n = 0;

        /* "<device>:<inode>" in decimal (systemd.exec(5), $JOURNAL_STREAM). */
        if (!e || sscanf(e, "%llu:%llu%n", &dev, &ino, &n) != 2 || e[n] != 0)
                return false;
        if (fstat(STDERR_FILENO, &st) < 0)
                return false;
        return (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/* "KEY=value" with value cut at DAEMON_JOURNAL_FIELD_MAX bytes and every control
 * character a terminal acts on made a space: C0 (newlines included: one entry, one
 * line when shown), DEL, and C1 (UTF-8 C2 80..C2 9F, CSI among them), so a value
 * that came from an app cannot move the cursor or fake a line in whatever shows
 * the journal (journalctl --all prints the bytes as they are). NULL on -ENOMEM. */
static char *field(const char *key, const char *value)
{
        size_t k = strlen(key), n = strnlen(value, DAEMON_JOURNAL_FIELD_MAX);
        char *s = malloc(k + 1 + n + 1);

        if (!s)
                return NULL;
        memcpy(s, key, k);
        s[k] = '=';
        for (size_t i = 0; i < n; i++) {
                unsigned char ch = (unsigned char)value[i];
                bool c1 = ch == 0xc2 && i + 1 < n && (unsigned char)value[i + 1] >= 0x80 &&
                          (unsigned char)value[i + 1] <= 0x9f;

                s[k + 1 + i] = ch < 0x20 || ch == 0x7f || c1 ? ' ' : (char)ch;
                if (c1)
                        s[k + 1 + ++i] = ' ';
        }
        s[k + 1 + n] = 0;
        return s;
}

/* The record's value of key as text: a string as it is, a number in decimal, true /
 * false; NULL for a missing key, null, or an object or array. buf: for numbers. */
static const char *value_text(const json_t *record, const char *key, char *buf, size_t size)
{
        json_t *v = json_object_get(record, key);

        if (json_is_string(v))
                return json_string_value(v);
        if (json_is_integer(v)) {
                snprintf(buf, size, "%lld", (long long)json_integer_value(v));
                return buf;
        }
        if (json_is_boolean(v))
                return json_is_true(v) ? "true" : "false";
        return NULL;
}

/* The record's keys and their journal fields. */
static const struct {
        const char *key, *field;
} record_fields[] = {
        {"event", "CELLA_EVENT"},
        {"app", "CELLA_APP"},
        {"group", "CELLA_GROUP"},
        {"pid", "CELLA_PID"},
        {"uid", "CELLA_UID"},
        {"how", "CELLA_HOW"},
        {"exit_code", "CELLA_EXIT_STATUS"},
        {"status", "CELLA_STATUS"},
        {"signal", "CELLA_SIGNAL"},
        {"oom_killed", "CELLA_OOM_KILLED"},
        {"restarts", "CELLA_RESTARTS"},
        {"step", "CELLA_STEP"},
        {"error", "CELLA_ERROR"},
        {"errno", "CELLA_ERRNO"},
        {"title", "CELLA_TITLE"},
};

/* PRIORITY (syslog(3) levels) of a record by its event: a failure is an error (3),
 * an exit with an error status or by the OOM killer a warning (4), the rest
 * informational (6). */
static int record_priority(const char *event, const json_t *record)
{
        json_t *code = json_object_get(record, "exit_code");

        if (strcmp(event, "failed") == 0)
                return 3;
        if (json_is_true(json_object_get(record, "oom_killed")) ||
            (strstr(event, "exited") && json_is_integer(code) && json_integer_value(code) != 0))
                return 4;
        return 6;
}

int daemon_journal_fields(const json_t *record, char **fields, size_t max)
{
        const char *event = json_string_value(json_object_get(record, "event"));
        const char *app = json_string_value(json_object_get(record, "app"));
        char msg[512], num[32], prio[16];
        size_t n = 0, k;

        if (!json_is_object(record) || !event || max < 3)
                return -EINVAL;
        /* MESSAGE: what a person reads in `journalctl -u cellad`. */
        k = (size_t)snprintf(msg, sizeof msg, "%s%s%s", app ?: "", app ? ": " : "", event);
        for (size_t i = 0; i < ELEMENTSOF(record_fields) && k < sizeof msg; i++) {
                const char *key = record_fields[i].key, *v;

                if (strcmp(key, "event") == 0 || strcmp(key, "app") == 0)
                        continue;
                v = value_text(record, key, num, sizeof num);
                if (v)
                        k += (size_t)snprintf(msg + k, sizeof msg - k, " %s=%s", key, v);
        }
        fields[n] = field("MESSAGE", msg);
        if (!fields[n])
                goto oom;
        n++;
        snprintf(prio, sizeof prio, "%d", record_priority(event, record));
        fields[n] = field("PRIORITY", prio);
        if (!fields[n])
                goto oom;
        n++;
        for (size_t i = 0; i < ELEMENTSOF(record_fields) && n < max; i++) {
                const char *v = value_text(record, record_fields[i].key, num, sizeof num);

                if (!v)
                        continue;
                fields[n] = field(record_fields[i].field, v);
                if (!fields[n])
                        goto oom;
                n++;
        }
        return (int)n;
oom:
        for (size_t i = 0; i < n; i++)
                free(fields[i]);
        return -ENOMEM;
}

void daemon_journal_record(const json_t *record)
{
        char *fields[ELEMENTSOF(record_fields) + 3];
        struct iovec iov[ELEMENTSOF(fields)];
        int n;

        n = daemon_journal_fields(record, fields, ELEMENTSOF(fields) - 1);
        if (n < 0)
                return;
        fields[n++] = strdup("SYSLOG_IDENTIFIER=" DAEMON_SYSLOG_IDENTIFIER);
        for (int i = 0; i < n; i++)
                iov[i] = (struct iovec){.iov_base = fields[i] ?: (char *)"CELLA_NOMEM=1",
                                        .iov_len = strlen(fields[i] ?: "CELLA_NOMEM=1")};
        (void)sd_journal_sendv(iov, n);
        for (int i = 0; i < n; i++)
                free(fields[i]);
}

/* LogWriter: line is "cella: <message>\n" (log.h); the journal gets the message with
 * its priority, as MESSAGE= without the prefix and the newline. */
static void journal_log(int level, const char *line, size_t n, void *userdata)
{
        static const char prefix[] = "cella: ";

        if (n >= sizeof prefix - 1 && memcmp(line, prefix, sizeof prefix - 1) == 0) {
                line += sizeof prefix - 1;
                n -= sizeof prefix - 1;
        }
        if (n > 0 && line[n - 1] == '\n')
                n--;
        (void)sd_journal_send("MESSAGE=%.*s", (int)n, line, "PRIORITY=%d", level,
                              "SYSLOG_IDENTIFIER=" DAEMON_SYSLOG_IDENTIFIER, NULL);
}

void daemon_journal_install(Daemon *d)
{
        (void)d;
        log_set_writer(journal_log, NULL);
}
