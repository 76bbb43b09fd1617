/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * notes-c: a cella app in C. It waits for three ticks of the clock service
 * (bus.subscribe:org.cella.example.clock.tick, a topic the clock exports), appends a line with the
 * last tick's time to "notes.txt" in the user's documents (fs.write:documents, a dangerous right
 * the user grants: `cella grant org.cella.example.notes_c fs.write:documents`, or the answer to the
 * prompt this app triggers), posts the notification "note saved" (notify), says what it did on
 * stdout and exits 0. It exits 1 if a step fails, with the reason on stderr.
 *
 * Build outside the tree: cc notes.c -o notes $(pkg-config --cflags --libs cella)
 */
#include <cella.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define APP_ID         "org.cella.example.notes_c"
#define TICKS_WANTED   3
#define TICK_TIMEOUT_S 10 /* no tick for this long: the clock is not running */
#define ROOT           "documents"
#define FILE_NAME      "notes.txt"

typedef struct Notes {
        unsigned ticks;
        uint64_t seq;    /* of the last tick */
        int64_t unix_ms; /* of the last tick */
} Notes;

/* Called from cella_dispatch() for every event; keeps the last tick. */
static void on_event(Cella *c, const CellaEvent *ev, void *userdata)
{
        Notes *n = userdata;
        const char *p;
        char body[128];
        size_t len;

        if (ev->opcode != CELLA_EVENT_BUS_MESSAGE || !ev->decoded ||
            strcmp(ev->bus.topic, "org.cella.example.clock.tick") != 0)
                return;

        /* The body is {"seq":N,"unix_ms":T}; a copy makes it a C string. */
        len = ev->bus.len < sizeof body - 1 ? ev->bus.len : sizeof body - 1;
        memcpy(body, ev->bus.data, len);
        body[len] = 0;
        p = strstr(body, "\"unix_ms\":");
        if (!p || sscanf(p, "\"unix_ms\":%" SCNd64, &n->unix_ms) != 1)
                return; /* not a tick we understand */
        p = strstr(body, "\"seq\":");
        if (!p || sscanf(p, "\"seq\":%" SCNu64, &n->seq) != 1)
                n->seq = 0;
        n->ticks++;
}

/* Opens documents/notes.txt for appending; on EACCES asks the user once. */
static int open_notes(Cella *c, int *ret_fd)
{
        CellaPermState state;
        int r;

        r = cella_fs_open(c, ROOT, FILE_NAME, O_WRONLY | O_CREAT | O_APPEND, 0644, ret_fd);
        if (r != -EACCES)
                return r;

        fprintf(stderr, "notes-c: not allowed to write to %s yet; asking for fs.write:%s\n", ROOT,
                ROOT);
        r = cella_perm_request(c, "fs.write:" ROOT, "to save a note in your documents", &state,
                               NULL);
        if (r < 0 || state != CELLA_PERM_GRANTED) {
                fprintf(stderr,
                        "notes-c: cannot save the note: writing to %s was refused (%s). "
                        "Grant it with: cella grant " APP_ID " fs.write:" ROOT "\n",
                        ROOT, r < 0 ? strerror(-r) : "the user said no");
                return -EACCES;
        }
        return cella_fs_open(c, ROOT, FILE_NAME, O_WRONLY | O_CREAT | O_APPEND, 0644, ret_fd);
}

int main(void)
{
        Notes n = {0};
        Cella *c = NULL;
        char line[128], when[32];
        struct tm tm;
        time_t secs;
        uint64_t sub;
        int fd = -1, r, len;

        r = cella_open(&c);
        if (r < 0) {
                fprintf(stderr, "notes-c: no cella channel: %s (run me with cella)\n",
                        strerror(-r));
                return 1;
        }
        cella_on_event(c, on_event, &n);
        r = cella_bus_subscribe(c, "org.cella.example.clock.tick", &sub);
        if (r < 0) {
                fprintf(stderr, "notes-c: cannot subscribe to org.cella.example.clock.tick: %s\n",
                        strerror(-r));
                goto fail;
        }

        while (n.ticks < TICKS_WANTED) {
                r = cella_wait(c, TICK_TIMEOUT_S * 1000);
                if (r == 0) {
                        fprintf(stderr,
                                "notes-c: no clock.tick for %d s: is org.cella.example.clock "
                                "running?\n",
                                TICK_TIMEOUT_S);
                        goto fail;
                }
                if (r < 0 && r != -EINTR) {
                        fprintf(stderr, "notes-c: waiting for ticks: %s\n", strerror(-r));
                        goto fail;
                }
                while ((r = cella_dispatch(c)) > 0)
                        ;
                if (r < 0) {
                        fprintf(stderr, "notes-c: lost the channel to cella: %s\n", strerror(-r));
                        goto fail;
                }
        }
        (void)cella_bus_unsubscribe(c, sub);

        secs = (time_t)(n.unix_ms / 1000);
        gmtime_r(&secs, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(line, sizeof line, "tick %" PRIu64 " at %s.%03dZ", n.seq, when,
                 (int)(n.unix_ms % 1000));

        r = open_notes(c, &fd);
        if (r < 0) {
                if (r != -EACCES)
                        fprintf(stderr, "notes-c: cannot open %s/%s: %s\n", ROOT, FILE_NAME,
                                strerror(-r));
                goto fail;
        }
        len = dprintf(fd, "%s\n", line);
        if (len != (int)strlen(line) + 1) {
                fprintf(stderr, "notes-c: writing %s/%s failed: %s\n", ROOT, FILE_NAME,
                        strerror(errno));
                close(fd);
                goto fail;
        }
        close(fd);

        r = cella_notify_post(c, "note saved", line, CELLA_URGENCY_NORMAL, "notes-c", NULL);
        if (r < 0) {
                fprintf(stderr, "notes-c: cannot post the notification: %s\n", strerror(-r));
                goto fail;
        }

        printf("notes-c: got %u ticks; appended \"%s\" to %s/%s; posted \"note saved\"\n", n.ticks,
               line, ROOT, FILE_NAME);
        cella_close(c);
        return 0;

fail:
        cella_close(c);
        return 1;
}
