/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella-lua's own string.find, string.match, string.gmatch, string.gsub and
 * string.rep: Lua 5.4's pattern language (Lua 5.4 manual section 6.4.1) with a
 * matcher that polls its app's doom flag (clua_poll) every CLUA_MATCH_POLL units
 * of work, so the CPU watchdog can end a runaway match of this app alone.
 * liblua's matcher has no bound on its work and runs with hooks off: a
 * backtracking pattern (".-" repeated against a long subject) kept a packed
 * group's thread for the app's whole budget and then ended the host.
 *
 * The match is a backtracking recursive descent (as the language requires: its
 * "-", "*" and "?" items and back references are defined by it), at most
 * CLUA_MATCH_DEPTH_MAX calls deep ("pattern too complex", as liblua's
 * MAXCCALLS), with at most CLUA_MATCH_CAPTURES captures (LUA_MAXCAPTURES).
 * Plain finds use memmem(3) (glibc's two-way search: linear, where a naive
 * search of a long needle is quadratic). Errors carry liblua's messages.
 */
#include <ctype.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "lua/env.h"

/* Captures per match (LUA_MAXCAPTURES in luaconf.h). */
#define CLUA_MATCH_CAPTURES 32
/* Nested matcher calls (liblua's MAXCCALLS for patterns). */
#define CLUA_MATCH_DEPTH_MAX 200
/* Units of work between two polls: a matcher call, a pattern item consumed, a
 * subject byte scanned or compared, a set's pattern byte read. */
#define CLUA_MATCH_POLL 4096u

/* Bytes string.rep copies between two polls (a few ms of memcpy). */
#define CLUA_REP_CHUNK ((size_t)16 << 20)

#define CAP_UNFINISHED (-1)
#define CAP_POSITION   (-2)
#define ESC            '%'
#define SPECIALS       "^$*+?.([%-"

typedef struct Matcher {
        lua_State *L;
        const char *src, *src_end; /* the subject */
        const char *pat_end;       /* the pattern's end (it is NUL-terminated) */
        int depth;                 /* calls left before "pattern too complex" */
        int level;                 /* captures open or closed */
        size_t left;               /* units of work before the next poll */
        struct {
                const char *init;
                ptrdiff_t len; /* or CAP_UNFINISHED / CAP_POSITION */
        } cap[CLUA_MATCH_CAPTURES];
} Matcher;

/* Counts units of work; polls when CLUA_MATCH_POLL of them have passed since
 * the last poll. Work only grows: any units (even a huge count) bring the
 * next poll nearer, never move it away. A subtraction and a compare. */
static inline void tick(Matcher *m, size_t units)
{
        if (units < m->left) {
                m->left -= units;
                return;
        }
        m->left = CLUA_MATCH_POLL;
        clua_poll(m->L);
}

static void matcher_init(Matcher *m, lua_State *L, const char *s, size_t ls, const char *p,
                         size_t lp)
{
        m->L = L;
        m->src = s;
        m->src_end = s + ls;
        m->pat_end = p + lp;
        m->left = CLUA_MATCH_POLL;
}

static void matcher_reset(Matcher *m)
{
        m->level = 0;
        m->depth = CLUA_MATCH_DEPTH_MAX;
}

/* The end of the single-character class starting at p. */
static const char *class_end(Matcher *m, const char *p)
{
        const char *p0 = p;
        char c = *p++;

        if (c == ESC) {
                if (p >= m->pat_end)
                        luaL_error(m->L, "malformed pattern (ends with '%%')");
                return p + 1;
        }
        if (c != '[')
                return p;
        if (*p == '^')
                p++;
        /* The first character of a set is itself even if it is ']'. */
        do {
                if (p >= m->pat_end)
                        luaL_error(m->L, "malformed pattern (missing ']')");
                c = *p++;
                if (c == ESC && p < m->pat_end)
                        p++;
        } while (*p != ']');
        tick(m, (size_t)(p - p0));
        return p + 1;
}

/* Whether c is in class %cl (a letter class, or cl itself for other cl). */
static bool in_class(int c, int cl)
{
        bool r;

        switch (tolower(cl)) {
        case 'a':
                r = isalpha(c);
                break;
        case 'c':
                r = iscntrl(c);
                break;
        case 'd':
                r = isdigit(c);
                break;
        case 'g':
                r = isgraph(c);
                break;
        case 'l':
                r = islower(c);
                break;
        case 'p':
                r = ispunct(c);
                break;
        case 's':
                r = isspace(c);
                break;
        case 'u':
                r = isupper(c);
                break;
        case 'w':
                r = isalnum(c);
                break;
        case 'x':
                r = isxdigit(c);
                break;
        case 'z': /* NUL: deprecated, still in Lua 5.4 */
                r = c == 0;
                break;
        default:
                return cl == c;
        }
        return isupper(cl) ? !r : r;
}

/* Whether c is in the set [...] from p ('[') to last (its ']'). An escape takes
 * the next character even if it is last (so "[a-%%]" holds ']', as in liblua). */
static bool in_set(int c, const char *p, const char *last)
{
        bool want = true;

        if (p[1] == '^') {
                want = false;
                p++;
        }
        while (++p < last) {
                if (*p == ESC) {
                        p++;
                        if (in_class(c, (unsigned char)*p))
                                return want;
                } else if (p[1] == '-' && p + 2 < last) {
                        p += 2;
                        if ((unsigned char)p[-2] <= c && c <= (unsigned char)p[0])
                                return want;
                } else if ((unsigned char)*p == c)
                        return want;
        }
        return !want;
}

/* Whether the subject character at s matches the class from p to ep. */
static bool single(Matcher *m, const char *s, const char *p, const char *ep)
{
        int c;

        if (s >= m->src_end)
                return false;
        c = (unsigned char)*s;
        switch (*p) {
        case '.':
                return true;
        case ESC:
                return in_class(c, (unsigned char)p[1]);
        case '[':
                tick(m, (size_t)(ep - p));
                return in_set(c, p, ep - 1);
        default:
                return (unsigned char)*p == c;
        }
}

static const char *match(Matcher *m, const char *s, const char *p);

/* Longest run of the class p..ep from s, then backs off until the rest matches. */
static const char *max_expand(Matcher *m, const char *s, const char *p, const char *ep)
{
        ptrdiff_t n = 0;

        while (single(m, s + n, p, ep)) {
                tick(m, 1);
                n++;
        }
        for (; n >= 0; n--) {
                const char *r = match(m, s + n, ep + 1);

                if (r)
                        return r;
        }
        return NULL;
}

/* Shortest run of the class p..ep from s after which the rest matches. */
static const char *min_expand(Matcher *m, const char *s, const char *p, const char *ep)
{
        for (;;) {
                const char *r = match(m, s, ep + 1);

                if (r)
                        return r;
                if (!single(m, s, p, ep))
                        return NULL;
                s++;
        }
}

static const char *open_capture(Matcher *m, const char *s, const char *p, ptrdiff_t what)
{
        const char *r;

        if (m->level >= CLUA_MATCH_CAPTURES)
                luaL_error(m->L, "too many captures");
        m->cap[m->level].init = s;
        m->cap[m->level].len = what;
        m->level++;
        r = match(m, s, p);
        if (!r)
                m->level--;
        return r;
}

static const char *close_capture(Matcher *m, const char *s, const char *p)
{
        int l = m->level - 1;
        const char *r;

        while (l >= 0 && m->cap[l].len != CAP_UNFINISHED)
                l--;
        if (l < 0)
                luaL_error(m->L, "invalid pattern capture");
        m->cap[l].len = s - m->cap[l].init;
        r = match(m, s, p);
        if (!r)
                m->cap[l].len = CAP_UNFINISHED;
        return r;
}

/* %bxy at s: p points at x. */
static const char *balance(Matcher *m, const char *s, const char *p)
{
        int open = 1;

        if (p + 1 >= m->pat_end)
                luaL_error(m->L, "malformed pattern (missing arguments to '%%b')");
        if (s >= m->src_end || *s != p[0])
                return NULL;
        while (++s < m->src_end) {
                tick(m, 1);
                if (*s == p[1]) {
                        if (--open == 0)
                                return s + 1;
                } else if (*s == p[0])
                        open++;
        }
        return NULL;
}

/* Back reference %1..%9 at s. */
static const char *back_ref(Matcher *m, const char *s, int d)
{
        int l = d - '1';
        size_t len;

        if (l < 0 || l >= m->level || m->cap[l].len == CAP_UNFINISHED)
                luaL_error(m->L, "invalid capture index %%%d", l + 1);
        /* A position capture has no text: no match (as liblua, whose length
         * check fails on the huge size_t its CAP_POSITION becomes). */
        if (m->cap[l].len == CAP_POSITION)
                return NULL;
        len = (size_t)m->cap[l].len;
        tick(m, len);
        if ((size_t)(m->src_end - s) >= len && memcmp(m->cap[l].init, s, len) == 0)
                return s + len;
        return NULL;
}

/* Matches the pattern from p at subject position s: the end of the match, or
 * NULL. Items that need no backtracking loop here; the others recurse. */
static const char *match(Matcher *m, const char *s, const char *p)
{
        if (m->depth-- == 0)
                luaL_error(m->L, "pattern too complex");
        while (s && p < m->pat_end) {
                const char *ep;

                /* Each item visited counts (a call with no item left matches
                 * at once: it cannot be repeated without an item's tick). */
                tick(m, 1);

                if (*p == '(') {
                        s = p[1] == ')' ? open_capture(m, s, p + 2, CAP_POSITION)
                                        : open_capture(m, s, p + 1, CAP_UNFINISHED);
                        break;
                }
                if (*p == ')') {
                        s = close_capture(m, s, p + 1);
                        break;
                }
                if (*p == '$' && p + 1 == m->pat_end) {
                        if (s != m->src_end)
                                s = NULL;
                        break;
                }
                if (*p == ESC && p[1] == 'b') {
                        s = balance(m, s, p + 2);
                        p += 4;
                        continue;
                }
                if (*p == ESC && p[1] == 'f') {
                        int prev, cur;

                        p += 2;
                        if (*p != '[')
                                luaL_error(m->L, "missing '[' after '%%f' in pattern");
                        ep = class_end(m, p);
                        tick(m, 2 * (size_t)(ep - p));
                        prev = s == m->src ? 0 : (unsigned char)s[-1];
                        cur = s < m->src_end ? (unsigned char)*s : 0;
                        if (in_set(prev, p, ep - 1) || !in_set(cur, p, ep - 1))
                                s = NULL;
                        p = ep;
                        continue;
                }
                if (*p == ESC && isdigit((unsigned char)p[1])) {
                        s = back_ref(m, s, (unsigned char)p[1]);
                        p += 2;
                        continue;
                }
                ep = class_end(m, p);
                if (!single(m, s, p, ep)) {
                        if (*ep == '*' || *ep == '?' || *ep == '-') {
                                p = ep + 1; /* zero of them */
                                continue;
                        }
                        s = NULL;
                        break;
                }
                if (*ep == '?') {
                        const char *r = match(m, s + 1, ep + 1);

                        if (r) {
                                s = r;
                                break;
                        }
                        p = ep + 1;
                        continue;
                }
                if (*ep == '+') {
                        s = max_expand(m, s + 1, p, ep);
                        break;
                }
                if (*ep == '*') {
                        s = max_expand(m, s, p, ep);
                        break;
                }
                if (*ep == '-') {
                        s = min_expand(m, s, p, ep);
                        break;
                }
                s++;
                p = ep;
        }
        m->depth++;
        return s;
}

/* Pushes capture i of a match from s to e (i 0 with no captures: the match). */
static void push_capture(Matcher *m, int i, const char *s, const char *e)
{
        if (i >= m->level) {
                if (i != 0)
                        luaL_error(m->L, "invalid capture index %%%d", i + 1);
                lua_pushlstring(m->L, s, (size_t)(e - s));
                return;
        }
        if (m->cap[i].len == CAP_UNFINISHED)
                luaL_error(m->L, "unfinished capture");
        if (m->cap[i].len == CAP_POSITION)
                lua_pushinteger(m->L, m->cap[i].init - m->src + 1);
        else
                lua_pushlstring(m->L, m->cap[i].init, (size_t)m->cap[i].len);
}

/* Pushes the captures (or the whole match if none and s is not NULL). */
static int push_captures(Matcher *m, const char *s, const char *e)
{
        int n = m->level == 0 && s ? 1 : m->level;

        luaL_checkstack(m->L, n, "too many captures");
        for (int i = 0; i < n; i++)
                push_capture(m, i, s, e);
        return n;
}

/* A 1-based start position from a Lua index (negative: from the end). */
static size_t start_pos(lua_Integer i, size_t len)
{
        if (i > 0)
                return (size_t)i;
        if (i == 0 || i < -(lua_Integer)len)
                return 1;
        return len + (size_t)i + 1;
}

static bool has_specials(const char *p, size_t lp)
{
        for (size_t i = 0; i < lp; i++)
                if (p[i] && strchr(SPECIALS, p[i]))
                        return true;
        return false;
}

static int find_or_match(lua_State *L, bool find)
{
        size_t ls, lp, init;
        const char *s = luaL_checklstring(L, 1, &ls), *p = luaL_checklstring(L, 2, &lp), *s1;
        bool anchor;
        Matcher m;

        init = start_pos(luaL_optinteger(L, 3, 1), ls);
        if (init > ls + 1) {
                luaL_pushfail(L);
                return 1;
        }
        if (find && (lua_toboolean(L, 4) || !has_specials(p, lp))) {
                const char *r = memmem(s + init - 1, ls - (init - 1), p, lp);

                if (!r) {
                        luaL_pushfail(L);
                        return 1;
                }
                lua_pushinteger(L, r - s + 1);
                lua_pushinteger(L, (lua_Integer)(r - s + lp));
                return 2;
        }
        anchor = lp > 0 && *p == '^';
        if (anchor) {
                p++;
                lp--;
        }
        matcher_init(&m, L, s, ls, p, lp);
        s1 = s + init - 1;
        do {
                const char *e;

                matcher_reset(&m);
                e = match(&m, s1, p);
                if (e) {
                        if (!find)
                                return push_captures(&m, s1, e);
                        lua_pushinteger(L, s1 - s + 1);
                        lua_pushinteger(L, e - s);
                        return push_captures(&m, NULL, NULL) + 2;
                }
        } while (s1++ < m.src_end && !anchor);
        luaL_pushfail(L);
        return 1;
}

/* string.find(s, pattern [, init [, plain]]) */
static int str_find(lua_State *L)
{
        return find_or_match(L, true);
}

/* string.match(s, pattern [, init]) */
static int str_match(lua_State *L)
{
        return find_or_match(L, false);
}

/* Where gmatch's iterator stands (its third upvalue, a userdata). */
typedef struct GmatchPos {
        size_t pos;  /* next position to try, 0-based */
        size_t last; /* end of the last match + 1, or 0 for none */
} GmatchPos;

/* The iterator of gmatch: upvalues subject, pattern, GmatchPos. */
static int gmatch_next(lua_State *L)
{
        size_t ls, lp;
        const char *s = lua_tolstring(L, lua_upvalueindex(1), &ls),
                   *p = lua_tolstring(L, lua_upvalueindex(2), &lp);
        GmatchPos *g = lua_touserdata(L, lua_upvalueindex(3));
        Matcher m;

        matcher_init(&m, L, s, ls, p, lp);
        for (const char *src = s + g->pos; src <= m.src_end; src++) {
                const char *e;

                matcher_reset(&m);
                e = match(&m, src, p);
                if (e && (g->last == 0 || e != s + g->last - 1)) {
                        g->pos = (size_t)(e - s);
                        g->last = g->pos + 1;
                        return push_captures(&m, src, e);
                }
        }
        g->pos = ls + 1;
        return 0;
}

/* string.gmatch(s, pattern [, init]) */
static int str_gmatch(lua_State *L)
{
        size_t ls;
        GmatchPos *g;

        luaL_checklstring(L, 1, &ls);
        luaL_checkstring(L, 2);
        size_t init = start_pos(luaL_optinteger(L, 3, 1), ls) - 1; /* 0-based */

        if (init > ls)
                init = ls + 1; /* past the end: no match */
        lua_settop(L, 2);
        g = lua_newuserdatauv(L, sizeof(*g), 0);
        *g = (GmatchPos){.pos = init};
        lua_pushcclosure(L, gmatch_next, 3);
        return 1;
}

/*
 * string.gsub keeps its state in a userdata (stack index GSUB_STATE) and builds
 * its result in another (GSUB_BUF, replaced as it grows), not in C locals or a
 * luaL_Buffer, so it can call a function replacement with lua_callk: the
 * function is then Lua code the host can preempt (it may even wait for the
 * kernel), and gsub goes on in gsub_k when the task resumes.
 */
#define GSUB_STATE 5
#define GSUB_BUF   6

typedef struct Gsub {
        size_t src;    /* where the next match is tried (offset in the subject) */
        size_t last;   /* end of the last match + 1, or 0 for none */
        size_t mstart; /* the match being replaced by a function call */
        size_t mend;
        size_t copied;   /* the subject up to here is in the result */
        lua_Integer n;   /* replacements made */
        lua_Integer max; /* most replacements */
        bool anchor;     /* pattern starts with ^ */
        bool changed;    /* some replacement differed from its match */
        char *buf;       /* GSUB_BUF's memory (a userdata does not move) */
        size_t len, cap; /* bytes of the result in buf, and its size */
} Gsub;

/* Appends n bytes at p to the result, growing GSUB_BUF (a Lua allocation,
 * counted against the app's cap). p must not point into GSUB_BUF. */
static void gsub_add(lua_State *L, Gsub *g, const char *p, size_t n)
{
        if (n > g->cap - g->len) {
                size_t cap = g->cap;
                char *nb;

                while (n > cap - g->len) {
                        if (cap > ((size_t)LUA_MAXINTEGER < SIZE_MAX ? (size_t)LUA_MAXINTEGER
                                                                     : SIZE_MAX) /
                                          2)
                                luaL_error(L, "resulting string too large");
                        cap *= 2;
                }
                nb = lua_newuserdatauv(L, cap, 0);
                memcpy(nb, g->buf, g->len);
                lua_replace(L, GSUB_BUF);
                g->buf = nb;
                g->cap = cap;
        }
        memcpy(g->buf + g->len, p, n);
        g->len += n;
}

/* Appends the string on top (popped). */
static void gsub_add_top(lua_State *L, Gsub *g)
{
        size_t n;
        const char *p = lua_tolstring(L, -1, &n);

        gsub_add(L, g, p, n);
        lua_pop(L, 1);
}

/* Appends the replacement string (argument 3, with %0..%9 and %%) for a match. */
static void add_string(Matcher *m, Gsub *g, const char *s, const char *e)
{
        lua_State *L = m->L;
        size_t l;
        const char *r = lua_tolstring(L, 3, &l), *end = r + l, *pc;

        while ((pc = memchr(r, ESC, (size_t)(end - r)))) {
                gsub_add(L, g, r, (size_t)(pc - r));
                tick(m, (size_t)(pc - r) + 1);
                pc++;
                if (pc >= end || (*pc != ESC && !isdigit((unsigned char)*pc)))
                        luaL_error(L, "invalid use of '%c' in replacement string", ESC);
                if (*pc == ESC)
                        gsub_add(L, g, pc, 1);
                else if (*pc == '0')
                        gsub_add(L, g, s, (size_t)(e - s));
                else {
                        push_capture(m, *pc - '1', s, e);
                        luaL_tolstring(L, -1, NULL);
                        lua_remove(L, -2);
                        gsub_add_top(L, g);
                }
                r = pc + 1;
        }
        gsub_add(L, g, r, (size_t)(end - r));
        tick(m, (size_t)(end - r));
}

/* The value on top replaces the match g->mstart..g->mend (false or nil: the
 * match stays). Pops it. */
static void gsub_value(lua_State *L, Gsub *g)
{
        if (!lua_toboolean(L, -1)) {
                lua_pop(L, 1);
                gsub_add(L, g, lua_tostring(L, 1) + g->mstart, g->mend - g->mstart);
                return;
        }
        if (!lua_isstring(L, -1))
                luaL_error(L, "invalid replacement value (a %s)", luaL_typename(L, -1));
        g->changed = true;
        gsub_add_top(L, g);
}

static int gsub_run(lua_State *L, Gsub *g);

/* Where gsub goes on after a function replacement returned (or its task was
 * resumed after a preemption inside it). */
static int gsub_k(lua_State *L, int status, lua_KContext ctx)
{
        Gsub *g = lua_touserdata(L, GSUB_STATE);

        (void)status;
        (void)ctx;
        gsub_value(L, g);
        /* An anchored pattern replaces once: gsub_run's loop stops after its
         * first replacement, which the yield made it leave before its check. */
        if (g->anchor)
                g->max = g->n;
        return gsub_run(L, g);
}

static int gsub_run(lua_State *L, Gsub *g)
{
        size_t ls, lp;
        const char *s = lua_tolstring(L, 1, &ls), *p = lua_tolstring(L, 2, &lp);
        int tr = lua_type(L, 3);
        Matcher m;

        if (g->anchor) {
                p++;
                lp--;
        }
        matcher_init(&m, L, s, ls, p, lp);
        while (g->n < g->max) {
                const char *src = s + g->src, *e;

                matcher_reset(&m);
                e = match(&m, src, p);
                if (e && (g->last == 0 || e != s + g->last - 1)) {
                        /* the subject's bytes since the last replacement, at once */
                        gsub_add(L, g, s + g->copied, g->src - g->copied);
                        g->n++;
                        g->mstart = g->src;
                        g->mend = (size_t)(e - s);
                        g->src = g->copied = g->mend;
                        g->last = g->mend + 1;
                        if (tr == LUA_TFUNCTION) {
                                int n;

                                lua_pushvalue(L, 3);
                                n = push_captures(&m, src, e);
                                lua_callk(L, n, 1, 0, gsub_k);
                                gsub_value(L, g);
                        } else if (tr == LUA_TTABLE) {
                                push_capture(&m, 0, src, e);
                                lua_gettable(L, 3);
                                gsub_value(L, g);
                        } else {
                                add_string(&m, g, src, e);
                                g->changed = true;
                        }
                } else if (src < m.src_end)
                        g->src++; /* kept: appended with the next replacement */
                else
                        break;
                if (g->anchor)
                        break;
                tick(&m, 1);
        }
        if (!g->changed)
                lua_pushvalue(L, 1);
        else {
                gsub_add(L, g, s + g->copied, ls - g->copied);
                lua_pushlstring(L, g->buf, g->len);
        }
        lua_pushinteger(L, g->n);
        return 2;
}

/* string.gsub(s, pattern, repl [, n]) */
static int str_gsub(lua_State *L)
{
        size_t ls, lp;
        const char *p;
        int tr;
        lua_Integer max;
        Gsub *g;

        luaL_checklstring(L, 1, &ls);
        p = luaL_checklstring(L, 2, &lp);
        tr = lua_type(L, 3);
        max = luaL_optinteger(L, 4, (lua_Integer)ls + 1);
        luaL_argexpected(L,
                         tr == LUA_TNUMBER || tr == LUA_TSTRING || tr == LUA_TFUNCTION ||
                                 tr == LUA_TTABLE,
                         3, "string/function/table");
        lua_settop(L, 4);
        g = lua_newuserdatauv(L, sizeof(*g), 0);
        *g = (Gsub){.max = max, .anchor = lp > 0 && *p == '^', .cap = 256};
        g->buf = lua_newuserdatauv(L, g->cap, 0);
        return gsub_run(L, g);
}

/* string.rep(s, n [, sep]): as liblua's, but an empty result is returned at
 * once (liblua loops n times copying nothing: rep("", 2^62) never ends), and
 * the result is filled by doubling: s and sep once, then the part already
 * written copied after itself (the result is periodic, of period l + lsep), so
 * about log2(n) memcpy calls of at most CLUA_REP_CHUNK bytes each, with a
 * poll (clua_poll) after each, where liblua makes n calls and cannot be
 * stopped (string.rep("x", 2^30) is seconds). */
static int str_rep(lua_State *L)
{
        size_t l, lsep;
        const char *s = luaL_checklstring(L, 1, &l);
        lua_Integer n = luaL_checkinteger(L, 2);
        const char *sep = luaL_optlstring(L, 3, "", &lsep);
        const size_t max = (size_t)LUA_MAXINTEGER < SIZE_MAX ? (size_t)LUA_MAXINTEGER : SIZE_MAX;
        luaL_Buffer b;
        size_t total, done;
        char *out;

        if (n <= 0 || (l == 0 && lsep == 0) || (n == 1 && l == 0)) {
                lua_pushliteral(L, "");
                return 1;
        }
        if (l + lsep < l || l + lsep > max / (lua_Unsigned)n)
                return luaL_error(L, "resulting string too large");
        total = (size_t)n * l + (size_t)(n - 1) * lsep;
        out = luaL_buffinitsize(L, &b, total);
        memcpy(out, s, l);
        done = l;
        if (n > 1) {
                memcpy(out + l, sep, lsep);
                done += lsep;
        }
        /* done is a whole number of periods: the rest repeats the start. */
        while (done < total) {
                size_t k = done < total - done ? done : total - done;

                if (k > CLUA_REP_CHUNK)
                        k = CLUA_REP_CHUNK;

                memcpy(out + done, out, k);
                done += k;
                clua_poll(L);
        }
        luaL_pushresultsize(&b, total);
        return 1;
}

const luaL_Reg clua_string_fns[] = {
        {"find", str_find}, {"match", str_match}, {"gmatch", str_gmatch},
        {"gsub", str_gsub}, {"rep", str_rep},     {NULL, NULL},
};
