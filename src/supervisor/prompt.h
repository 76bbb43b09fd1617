/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The permission prompt (docs/design.md sections 4 and 10: a dangerous right is granted
 * only by the user): when a running app asks for a dangerous right it does not
 * hold (perm.request), the kernel asks the person at the terminal that runs cella:
 *
 *   cella: org.example.notes asks for "fs.write:documents" (create and change user
 *   files under the named root). Reason: <the app's words>. Allow? [y]es always /
 *   [o]nce / [N]o:
 *
 * The terminal is /dev/tty, opened only while a question is pending, so the answer
 * comes from the person even when cella's stdin and stdout are pipes, and never
 * from an app (apps never hold the terminal: their output goes through pipes).
 * One question at a time; others wait in a bounded queue. Input typed before the
 * question shows is discarded (tcflush), so a stray keystroke cannot answer it.
 *
 * Everything an app controls (the reason, and the right's text) is sanitized
 * before it reaches the terminal (prompt_sanitize): terminal escape sequences and
 * control characters could otherwise move the cursor, rewrite the question or set
 * the window title and have it typed back: a classic injection (CVE-2003-0063,
 * xterm's title report).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* The answers a done callback gets. */
enum {
        PROMPT_DENY = 0,         /* "n", an empty line, the timeout, EOF on the terminal */
        PROMPT_ALLOW_ONCE = 1,   /* "o": a one-time grant */
        PROMPT_ALLOW_ALWAYS = 2, /* "y": a lasting grant */
};

#define PROMPT_TTY_PATH           "/dev/tty"
#define PROMPT_QUEUE_MAX          16u    /* questions pending at once, the one shown included */
#define PROMPT_TIMEOUT_MS_DEFAULT 60000u /* no answer in this time is a deny */
#define PROMPT_REASON_MAX         200u   /* bytes of the app's reason shown; longer is cut */
#define PROMPT_TEXT_MAX           128u   /* bytes of the right and of its description shown */
#define PROMPT_ANSWER_MAX         64u    /* bytes of an answer line; longer is not an answer */

/* What precedes every question on the terminal (unless TERM=dumb: "\n"): CAN,
 * which cancels an escape sequence an app (--raw-output) left half written
 * (ECMA-48 8.3.6), a new line, then SGR reset, G0 = ASCII and SI, insert mode
 * off, autowrap on, cursor shown (ECMA-48, DEC private modes), then CR and erase
 * to the end of the screen. The question is drawn in full after it, app id and
 * right included. */
#define PROMPT_REDRAW "\030\n\033[0m\033(B\017\033[4l\033[?7h\033[?25h\r\033[J"

typedef struct Prompt Prompt;

/*
 * Makes a prompt on loop. disabled (--no-prompt) makes every prompt_ask() fail with
 * -ENOTTY, as with no terminal. Nothing is opened yet. Returns 0 and *ret (free
 * with prompt_free()), -EINVAL, -ENOMEM.
 */
int prompt_new(uv_loop_t *loop, bool disabled, Prompt **ret);

/*
 * Makes the prompt use the terminal device at path instead of /dev/tty (tests use a
 * pty's slave side). path is copied. Returns 0, -EINVAL, -ENOMEM.
 */
int prompt_set_tty_path(Prompt *p, const char *path);

/* Sets the time a question waits for an answer before it is denied, in ms (> 0).
 * Applies to questions shown after the call. */
void prompt_set_timeout(Prompt *p, uint64_t timeout_ms);

/*
 * Sets hooks called when the prompt takes the terminal (begin, before the first
 * question of a run of questions is shown) and gives it back (end, once no question
 * is pending): a kernel that pumps the terminal's input to an app pauses the pump in
 * between. Either may be NULL.
 */
void prompt_set_hooks(Prompt *p, void (*begin)(void *ud), void (*end)(void *ud), void *ud);

/*
 * Asks whether app_id may have right. description: what the right allows (the
 * capability catalogue's text; may be NULL); reason: the app's own words (may be
 * NULL or empty; sanitized and cut to PROMPT_REASON_MAX bytes). The strings are
 * copied. done(answer, ud) runs later on the loop, never from within this call,
 * exactly once, unless prompt_cancel(p, ud) comes first; answer is one of
 * PROMPT_DENY, PROMPT_ALLOW_ONCE, PROMPT_ALLOW_ALWAYS. done may call prompt_ask()
 * and prompt_cancel(), but not prompt_free().
 * Returns 0 (queued); -ENOTTY when prompting is disabled or the terminal cannot be
 * opened (no controlling terminal: cella runs as a service, or under setsid);
 * -EBUSY when PROMPT_QUEUE_MAX questions are pending; -EINVAL; -ENOMEM.
 */
int prompt_ask(Prompt *p, const char *app_id, const char *right, const char *description,
               const char *reason, void (*done)(int answer, void *ud), void *ud);

/*
 * Withdraws every pending question whose ud is ud (the app went away, or cancelled
 * its call): their done is not called. A question on screen is closed with a note
 * saying so. Safe with no such question.
 */
void prompt_cancel(Prompt *p, void *ud);

/* Questions pending (shown or queued). */
unsigned prompt_pending(const Prompt *p);

/*
 * Withdraws every question (no callbacks), gives the terminal back, and frees p
 * once the loop has run its handles' close callbacks: run the loop again before
 * uv_loop_close(). Takes NULL; returns NULL.
 */
Prompt *prompt_free(Prompt *p);

/*
 * Copies the untrusted string in into out (out_size bytes, > 4), fit for one line
 * of a terminal, cut to at most max bytes (+ "..." when cut): termsafe_field() of
 * src/base/termsafe.h, which says what is removed and why. Returns the length.
 */
size_t prompt_sanitize(const char *in, size_t max, char *out, size_t out_size);

static inline void prompt_freep(Prompt **p)
{
        prompt_free(*p);
}
