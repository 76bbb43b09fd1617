/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer harness for the audit log reader: cella audit reads files anyone with
 * root may have changed, so whatever they hold must give a report, never a crash,
 * a leak or a hang.
 *
 * Input: up to three parts separated by "\n--8<--\n": log.000001.jsonl,
 * log.000002.jsonl, HEAD; written into a fresh <state>/audit/ each run.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "audit/audit.h"

static char state[] = "/tmp/cella-fuzz-audit-XXXXXX";
static char dir[sizeof state + 8];

static void put(const char *name, const uint8_t *p, size_t n)
{
        char path[sizeof dir + 32];
        int fd;

        snprintf(path, sizeof path, "%s/%s", dir, name);
        if (!p) {
                unlink(path);
                return;
        }
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0 || (n && write(fd, p, n) != (ssize_t)n))
                abort();
        close(fd);
}

static int count(const json_t *rec, const char *line, size_t len, void *userdata)
{
        (void)line;
        (void)len;
        if (!json_is_object(rec))
                abort(); /* only whole, confirmed records are handed on */
        (*(unsigned *)userdata)++;
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        static const char sep[] = "\n--8<--\n";
        const uint8_t *part[3] = {NULL, NULL, NULL};
        size_t len[3] = {0, 0, 0};
        AuditVerifyReport report;
        AuditFilter filter = {.app = "org.x.a"};
        unsigned n = 0, records = 0;
        const uint8_t *p = data, *end = data + size;

        if (size > 256 * 1024)
                return 0;
        if (!dir[0]) {
                if (!mkdtemp(state))
                        abort();
                snprintf(dir, sizeof dir, "%s/audit", state);
                if (mkdir(dir, 0700) < 0)
                        abort();
        }
        while (n < 3) {
                const uint8_t *s = memmem(p, (size_t)(end - p), sep, sizeof sep - 1);

                part[n] = p;
                len[n] = (size_t)((s ? s : end) - p);
                n++;
                if (!s)
                        break;
                p = s + sizeof sep - 1;
        }
        put("log.000001.jsonl", part[0], len[0]);
        put("log.000002.jsonl", part[1], len[1]);
        put("HEAD", part[2], len[2]);

        (void)audit_verify(state, &report);
        if (memchr(report.message, 0, sizeof report.message) == NULL)
                abort();
        (void)audit_read(state, NULL, count, &records, &report);
        (void)audit_read(state, &filter, count, &records, &report);
        return 0;
}
