/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Text from an app made fit for a terminal: the one sanitizer for everything an
 * app (or a kernel's reply about one) can put on the user's screen: the
 * permission prompt, notification lines, `cella ps`/`stats` columns, the apps'
 * output under `cella run` and `cella logs` (docs/security.md, "The user's
 * terminal").
 *
 * What a terminal acts on (ECMA-48): the C0 controls U+0000..U+001F and DEL, the
 * C1 controls U+0080..U+009F (in UTF-8, C2 80..C2 9F; CSI is U+009B), and the
 * sequences that ESC or a C1 control begins (CSI: cursor moves, erase, device
 * status reports; OSC: window title, OSC 52 clipboard writes, hyperlinks; DCS,
 * SOS, PM, APC). Unicode adds the bidirectional overrides and isolates (U+202A..
 * U+202E, U+2066..U+2069: "Trojan Source", CVE-2021-42574), which reorder what
 * follows them on the screen. Everything else, valid UTF-8 of any script
 * included, is shown as it is.
 *
 * Three forms:
 *   - termsafe_field(): one line of the kernel's own text (the prompt's question,
 *     a notification): escape sequences are removed with their bodies, line
 *     breaks become spaces, the result is cut to a bound;
 *   - termsafe_stream(): an app's output stream, in chunks as read: \n and \t and
 *     text kept; every control byte rendered visibly in caret notation (ESC as
 *     "^[", as `cat -v` and `less` show it), so the bytes after an ESC are plain
 *     text and nothing reaches the terminal's parser;
 *   - termsafe_token(): an identifier for a table column ([A-Za-z0-9._-] kept).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* True for code points a terminal or a bidi algorithm acts on while showing
 * nothing: C0 and C1 controls, DEL, the bidi overrides, isolates and marks
 * (U+200E, U+200F, U+061C), U+FEFF, and the line and paragraph separators. */
bool termsafe_is_control(uint32_t cp);

/*
 * Copies the NUL-terminated untrusted string in (NULL is "") into out (out_size
 * bytes, > 4), fit for one line on a terminal: escape sequences (ESC or C1 CSI,
 * OSC, DCS, SOS, PM, APC with their bodies, up to BEL, ST or ESC \) and other
 * control characters are removed, line breaks and tabs (and U+2028, U+2029)
 * become a space, invalid UTF-8 bytes become '?', the bidi controls of
 * termsafe_is_control() are removed; the result is cut at a character boundary
 * to at most max bytes, with "..." appended when cut (so at most max + 3 bytes,
 * never more than out_size - 1). Always NUL-terminates. Returns the length written.
 */
size_t termsafe_field(const char *in, size_t max, char *out, size_t out_size);

/*
 * A stream's state between chunks: a UTF-8 character cut at a chunk's end, and a
 * CR that is kept only when an LF follows it (CRLF line ends stay as they are; a
 * lone CR, which would let text overwrite the line, is shown as "^M").
 */
typedef struct TermSafe {
        unsigned char pending[4];
        uint8_t n_pending;
        bool cr;
        bool one_line; /* set by the caller: \n and \r shown too ("^J", "^M") */
} TermSafe;

/* Bytes termsafe_stream() may write for n input bytes: at most 4 per byte (an
 * invalid byte becomes "\xNN"), plus what a previous chunk left pending. */
#define TERMSAFE_STREAM_OUT(n) (4u * (size_t)(n) + 16u)

/*
 * Renders n bytes of an app's output (in, any bytes) into out, which must hold
 * TERMSAFE_STREAM_OUT(n) bytes (no NUL is written): \n, \t, CR before LF and
 * valid UTF-8 text as they are; other C0 controls and DEL in caret notation
 * (ESC "^[", BEL "^G", BS "^H", DEL "^?"), C1 controls and the bidi controls of
 * termsafe_is_control() as "\u009b" / "\u202e", invalid UTF-8 bytes as "\xff".
 * A character cut at the end of in waits in t for the next call. Returns the
 * bytes written.
 */
size_t termsafe_stream(TermSafe *t, const void *in, size_t n, char *out);

/* Ends a stream: writes what t holds (a cut character as "\xNN" bytes, a lone CR
 * as "^M") to out (at least 16 bytes) and resets t (one_line kept). Returns the
 * bytes written. */
size_t termsafe_stream_end(TermSafe *t, char *out);

/*
 * Copies the identifier-like string in (an app id, a state, a group name from a
 * kernel's reply) into buf (size > 0): [A-Za-z0-9._-] kept, any other byte '?',
 * cut to size - 1 bytes. NULL is "-". Returns buf.
 */
const char *termsafe_token(const char *in, char *buf, size_t size);
