/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The permission prompt on the terminal that runs cella (prompt.h). A small state
 * machine on the kernel's loop: a ring of pending questions, the one at the head on
 * screen; the terminal is opened (non-blocking) for a run of questions and closed
 * after it; an answer, the timeout, EOF or a withdrawal moves to the next.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "base/macro.h"
#include "base/termsafe.h"
#include "supervisor/prompt.h"

#define PROMPT_OUT_MAX     4096u /* bytes of terminal output queued while the terminal is stopped */
#define PROMPT_READ_CHUNK  256u
#define PROMPT_RETRIES_MAX 8u /* answers that were none of y/o/n before the question is denied */

typedef struct Question {
        char *text; /* the question, sanitized, ready to print */
        void (*done)(int answer, void *ud);
        void *ud;
} Question;

/* The terminal, open for a run of questions. Freed in its close callback. */
typedef struct Tty {
        Prompt *prompt;
        uv_poll_t poll;
        int fd;
} Tty;

struct Prompt {
        uv_loop_t *loop;
        bool disabled;
        char *tty_path;
        uint64_t timeout_ms;

        Tty *tty;
        uv_timer_t timer; /* the answer's timeout */
        uv_timer_t kick;  /* 0 ms: show the next question from the loop, not the caller */

        Question queue[PROMPT_QUEUE_MAX]; /* a ring: queue[head] is shown when showing */
        unsigned head, n;
        bool showing;
        unsigned retries;
        Question *dying; /* being denied by deny_all(): prompt_cancel() reaches them too */
        unsigned n_dying;

        char line[PROMPT_ANSWER_MAX];
        size_t line_len;
        bool line_overflow;

        char out[PROMPT_OUT_MAX];
        size_t out_len;

        void (*begin)(void *ud);
        void (*end)(void *ud);
        void *hooks_ud;
        bool in_session; /* begin was called, end not yet */

        unsigned open_handles;
        bool freeing;
};

size_t prompt_sanitize(const char *in, size_t max, char *out, size_t out_size)
{
        return termsafe_field(in, max, out, out_size);
}

/* --- the terminal --- */

static void prompt_maybe_free(Prompt *p)
{
        if (!p->freeing || p->open_handles > 0)
                return;
        free(p->tty_path);
        free(p);
}

static void handle_closed(uv_handle_t *h)
{
        Prompt *p = h->data;

        p->open_handles--;
        prompt_maybe_free(p);
}

static void tty_closed(uv_handle_t *h)
{
        Tty *t = h->data;
        Prompt *p = t->prompt;

        safe_close(t->fd);
        free(t);
        p->open_handles--;
        prompt_maybe_free(p);
}

/* Writes what is queued; the rest waits for the terminal to become writable. */
static void tty_flush(Prompt *p)
{
        size_t off = 0;

        if (!p->tty)
                return;
        while (off < p->out_len) {
                ssize_t w = RETRY_EINTR(write(p->tty->fd, p->out + off, p->out_len - off));

                if (w < 0 && errno == EAGAIN)
                        break; /* output stopped (Ctrl-S): keep it for later */
                if (w <= 0) {
                        off = p->out_len; /* the terminal is gone: drop it */
                        break;
                }
                off += (size_t)w;
        }
        memmove(p->out, p->out + off, p->out_len - off);
        p->out_len -= off;
}

/* Queues s for the terminal (cut if the queue is full) and tries to write it. */
static void tty_print(Prompt *p, const char *s)
{
        size_t n = strlen(s);

        if (n > PROMPT_OUT_MAX - p->out_len)
                n = PROMPT_OUT_MAX - p->out_len;
        memcpy(p->out + p->out_len, s, n);
        p->out_len += n;
        tty_flush(p);
}

static void on_tty(uv_poll_t *h, int status, int events);

static void tty_poll_update(Prompt *p)
{
        int events = 0;

        if (!p->tty)
                return;
        if (p->showing)
                events |= UV_READABLE;
        if (p->out_len > 0)
                events |= UV_WRITABLE;
        if (events)
                (void)uv_poll_start(&p->tty->poll, events, on_tty);
        else
                (void)uv_poll_stop(&p->tty->poll);
}

/* Opens the terminal for a run of questions. 0 or -ENOTTY. */
static int tty_open(Prompt *p)
{
        _cleanup_close_ int fd = -EBADF;
        Tty *t;

        if (p->tty)
                return 0;
        fd = open(p->tty_path, O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
        if (fd < 0 || !isatty(fd))
                return -ENOTTY;
        t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        if (uv_poll_init(p->loop, &t->poll, fd) < 0) {
                free(t);
                return -ENOTTY;
        }
        t->prompt = p;
        t->fd = TAKE_FD(fd);
        t->poll.data = t;
        p->tty = t;
        p->open_handles++;
        p->out_len = 0;
        return 0;
}

/* Gives the terminal back once no question is pending: closes it and calls end. */
static void session_end(Prompt *p)
{
        if (p->tty) {
                tty_flush(p); /* best effort: what cannot be written now is dropped */
                uv_close((uv_handle_t *)&p->tty->poll, tty_closed);
                p->tty = NULL;
        }
        p->out_len = 0;
        if (p->in_session) {
                p->in_session = false;
                if (p->end)
                        p->end(p->hooks_ud);
        }
}

static void on_timeout(uv_timer_t *t);
static void schedule_next(Prompt *p);

/*
 * The terminal is gone (hung up, or cannot be opened again): gives it back and
 * denies every question pending now. Questions asked from a done callback are not
 * among them; one withdrawn from a done callback is not answered.
 */
static void deny_all(Prompt *p)
{
        Question q[PROMPT_QUEUE_MAX];
        unsigned n = p->n;

        for (unsigned i = 0; i < n; i++) {
                q[i] = p->queue[(p->head + i) % PROMPT_QUEUE_MAX];
                free(q[i].text);
        }
        p->n = p->head = 0;
        p->showing = false;
        (void)uv_timer_stop(&p->timer);
        session_end(p);
        p->dying = q;
        p->n_dying = n;
        for (unsigned i = 0; i < n && !p->freeing; i++)
                if (q[i].done)
                        q[i].done(PROMPT_DENY, q[i].ud);
        p->dying = NULL;
        p->n_dying = 0;
        schedule_next(p);
}

/*
 * Draws the question at the head of the queue in full, on a line of its own: a
 * new line (what an app printed last stays above, whole), then the terminal's
 * drawing state reset where it could hide or garble the text (attributes, G0
 * character set, insert mode, autowrap, a hidden cursor: an app run with
 * --raw-output could have set any), and the line and everything below it
 * cleared. While the question shows nothing else writes to the terminal
 * (prompt_set_hooks: the kernel holds the apps' output), so what the person sees
 * under "Allow?" is the question, app id and right included. TERM=dumb gets the
 * text alone.
 */
static void draw_question(Prompt *p)
{
        const char *term = getenv("TERM");

        if (term && strcmp(term, "dumb") == 0)
                tty_print(p, "\n");
        else
                tty_print(p, PROMPT_REDRAW);
        tty_print(p, p->queue[p->head].text);
}

/* Shows the question at the head of the queue. */
static void show_next(Prompt *p)
{
        if (p->showing || p->n == 0 || p->freeing)
                return;
        if (!p->tty && tty_open(p) < 0) {
                deny_all(p);
                return;
        }
        if (!p->in_session) {
                p->in_session = true;
                if (p->begin)
                        p->begin(p->hooks_ud);
        }
        /* Type-ahead must not answer a question the person has not seen. */
        (void)tcflush(p->tty->fd, TCIFLUSH);
        p->showing = true;
        p->retries = 0;
        p->line_len = 0;
        p->line_overflow = false;
        draw_question(p);
        (void)uv_timer_start(&p->timer, on_timeout, p->timeout_ms, 0);
        tty_poll_update(p);
}

static void on_kick(uv_timer_t *t)
{
        show_next(t->data);
}

static void schedule_next(Prompt *p)
{
        if (!p->showing && p->n > 0 && !p->freeing)
                (void)uv_timer_start(&p->kick, on_kick, 0, 0);
}

/* Ends the question on screen with answer: pops it, gives the terminal back if it
 * was the last, then calls its done, and schedules the next. */
static void answer(Prompt *p, int a, const char *note)
{
        Question q;

        if (!p->showing)
                return;
        if (note)
                tty_print(p, note);
        (void)uv_timer_stop(&p->timer);
        q = p->queue[p->head];
        p->head = (p->head + 1) % PROMPT_QUEUE_MAX;
        p->n--;
        p->showing = false;
        free(q.text);
        if (p->n == 0)
                session_end(p);
        else
                tty_poll_update(p);
        q.done(a, q.ud);
        schedule_next(p);
}

static void on_timeout(uv_timer_t *t)
{
        Prompt *p = t->data;
        char note[96];

        snprintf(note, sizeof note, "\ncella: no answer within %llu s; denied.\n",
                 (unsigned long long)((p->timeout_ms + 999) / 1000));
        answer(p, PROMPT_DENY, note);
}

/* 1 (always), 2 (once), 0 (deny) for an answer line; -1 for anything else. */
static int parse_answer(const char *line, size_t len)
{
        char w[PROMPT_ANSWER_MAX];
        size_t a = 0, b = len, n = 0;

        while (a < b && isspace((unsigned char)line[a]))
                a++;
        while (b > a && isspace((unsigned char)line[b - 1]))
                b--;
        for (size_t i = a; i < b && n < sizeof w - 1; i++)
                w[n++] = (char)tolower((unsigned char)line[i]);
        w[n] = 0;
        if (n != b - a)
                return -1;
        if (strcmp(w, "y") == 0 || strcmp(w, "yes") == 0)
                return PROMPT_ALLOW_ALWAYS;
        if (strcmp(w, "o") == 0 || strcmp(w, "once") == 0)
                return PROMPT_ALLOW_ONCE;
        if (n == 0 || strcmp(w, "n") == 0 || strcmp(w, "no") == 0)
                return PROMPT_DENY;
        return -1;
}

/* A whole line came: an answer, or ask again. */
static void on_line(Prompt *p)
{
        int a = p->line_overflow ? -1 : parse_answer(p->line, p->line_len);

        p->line_len = 0;
        p->line_overflow = false;
        if (a >= 0) {
                answer(p, a, NULL);
                return;
        }
        if (++p->retries >= PROMPT_RETRIES_MAX) {
                answer(p, PROMPT_DENY, "cella: no valid answer; denied.\n");
                return;
        }
        tty_print(p, "Please answer y (always), o (once) or n (no).");
        draw_question(p);
        tty_poll_update(p);
}

static void on_tty(uv_poll_t *h, int status, int events)
{
        Tty *t = h->data;
        Prompt *p = t->prompt;
        char buf[PROMPT_READ_CHUNK];
        ssize_t n;

        if (status < 0) {
                /* The terminal hung up: this question and the queued ones are denied. */
                deny_all(p);
                return;
        }
        if (events & UV_WRITABLE)
                tty_flush(p);
        if (!(events & UV_READABLE) || !p->showing) {
                tty_poll_update(p);
                return;
        }
        n = read(t->fd, buf, sizeof buf);
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                tty_poll_update(p);
                return;
        }
        if (n <= 0) {
                /* EOF (Ctrl-D) denies this question; an error (EIO: the terminal hung
                 * up) denies every pending one, which would meet the same error. */
                if (n == 0)
                        answer(p, PROMPT_DENY, "\n");
                else
                        deny_all(p);
                return;
        }
        for (ssize_t i = 0; i < n; i++) {
                char c = buf[i];

                if (c == '\n' || c == '\r') {
                        on_line(p);
                        /* After an answer the rest of buf was typed before the next
                         * question showed: drop it, as tcflush does. */
                        if (!p->showing || p->tty != t)
                                return;
                        continue;
                }
                if (p->line_len < sizeof p->line)
                        p->line[p->line_len++] = c;
                else
                        p->line_overflow = true;
        }
        tty_poll_update(p);
}

/* --- the API --- */

int prompt_new(uv_loop_t *loop, bool disabled, Prompt **ret)
{
        Prompt *p;

        if (!loop || !ret)
                return -EINVAL;
        p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        p->tty_path = strdup(PROMPT_TTY_PATH);
        if (!p->tty_path) {
                free(p);
                return -ENOMEM;
        }
        p->loop = loop;
        p->disabled = disabled;
        p->timeout_ms = PROMPT_TIMEOUT_MS_DEFAULT;
        (void)uv_timer_init(loop, &p->timer); /* cannot fail */
        (void)uv_timer_init(loop, &p->kick);
        p->timer.data = p;
        p->kick.data = p;
        p->open_handles = 2;
        *ret = p;
        return 0;
}

int prompt_set_tty_path(Prompt *p, const char *path)
{
        char *s;

        if (!p || !path || !*path)
                return -EINVAL;
        s = strdup(path);
        if (!s)
                return -ENOMEM;
        free(p->tty_path);
        p->tty_path = s;
        return 0;
}

void prompt_set_timeout(Prompt *p, uint64_t timeout_ms)
{
        if (p && timeout_ms > 0)
                p->timeout_ms = timeout_ms;
}

void prompt_set_hooks(Prompt *p, void (*begin)(void *ud), void (*end)(void *ud), void *ud)
{
        p->begin = begin;
        p->end = end;
        p->hooks_ud = ud;
}

int prompt_ask(Prompt *p, const char *app_id, const char *right, const char *description,
               const char *reason, void (*done)(int answer, void *ud), void *ud)
{
        char id_s[PROMPT_TEXT_MAX + 4], right_s[PROMPT_TEXT_MAX + 4], desc_s[PROMPT_TEXT_MAX + 4],
                reason_s[PROMPT_REASON_MAX + 4];
        char *text;
        int r;

        if (!p || p->freeing || !app_id || !right || !done)
                return -EINVAL;
        if (p->disabled)
                return -ENOTTY;
        if (p->n >= PROMPT_QUEUE_MAX)
                return -EBUSY;
        r = tty_open(p);
        if (r < 0)
                return r;

        prompt_sanitize(app_id, PROMPT_TEXT_MAX, id_s, sizeof id_s);
        prompt_sanitize(right, PROMPT_TEXT_MAX, right_s, sizeof right_s);
        prompt_sanitize(description, PROMPT_TEXT_MAX, desc_s, sizeof desc_s);
        prompt_sanitize(reason, PROMPT_REASON_MAX, reason_s, sizeof reason_s);
        if (asprintf(&text,
                     "cella: %s asks for \"%s\"%s%s%s.%s%s\nAllow? [y]es always / [o]nce / [N]o: ",
                     id_s, right_s, desc_s[0] ? " (" : "", desc_s, desc_s[0] ? ")" : "",
                     reason_s[0] ? " Reason: " : "", reason_s) < 0) {
                if (p->n == 0 && !p->showing)
                        session_end(p);
                return -ENOMEM;
        }
        p->queue[(p->head + p->n) % PROMPT_QUEUE_MAX] = (Question){
                .text = text,
                .done = done,
                .ud = ud,
        };
        p->n++;
        schedule_next(p);
        return 0;
}

void prompt_cancel(Prompt *p, void *ud)
{
        unsigned kept = 0, first = 0;
        bool was_shown = false;
        Question q[PROMPT_QUEUE_MAX];

        if (!p)
                return;
        for (unsigned i = 0; i < p->n_dying; i++)
                if (p->dying[i].ud == ud)
                        p->dying[i].done = NULL;
        for (unsigned i = 0; i < p->n; i++) {
                Question *x = &p->queue[(p->head + i) % PROMPT_QUEUE_MAX];

                if (x->ud == ud) {
                        if (i == 0 && p->showing)
                                was_shown = true;
                        free(x->text);
                } else
                        q[kept++] = *x;
        }
        if (kept == p->n)
                return;
        for (unsigned i = 0; i < kept; i++)
                p->queue[i] = q[i];
        p->head = first;
        p->n = kept;
        if (was_shown) {
                p->showing = false;
                (void)uv_timer_stop(&p->timer);
                tty_print(p, "\ncella: the app withdrew its request.\n");
        }
        if (p->n == 0) {
                if (!p->showing)
                        session_end(p);
        } else
                schedule_next(p);
        tty_poll_update(p);
}

unsigned prompt_pending(const Prompt *p)
{
        return p ? p->n : 0;
}

Prompt *prompt_free(Prompt *p)
{
        if (!p || p->freeing)
                return NULL;
        for (unsigned i = 0; i < p->n; i++)
                free(p->queue[(p->head + i) % PROMPT_QUEUE_MAX].text);
        p->n = 0;
        p->showing = false;
        session_end(p);
        p->freeing = true;
        uv_close((uv_handle_t *)&p->timer, handle_closed);
        uv_close((uv_handle_t *)&p->kick, handle_closed);
        return NULL;
}
