/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella.json: JSON encode/decode with jansson, bounded.
 *
 * Limits: nesting depth 64, decode input 1 MiB, encode output 1 MiB. A table
 * whose keys are exactly 1..n (n ≥ 1) is an array, any other table an object
 * with string keys; an empty table is {} unless marked with json.array(t), and
 * decoded arrays carry that mark so [] round-trips. json.null stands for JSON
 * null. NaN and infinities are refused (JSON has no spelling for them).
 * Integers stay integers; floats are written with 17 significant digits
 * (jansson's "%.17g"), so decode(encode(x)) == x exactly; 0.1 reads
 * 0.10000000000000001. Object keys are sorted, so output is deterministic.
 *
 * jansson values are malloc'd outside the Lua allocator and Lua raises with
 * longjmp, so the tree under construction is always owned by a userdata box
 * whose __gc frees it: an error (or a memory error) never leaks it.
 */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "lua/alloc.h"
#include "lua/lua-modules.h"

/* Deepest nesting of arrays/objects accepted either way (jansson's own is 2048). */
#define JSON_DEPTH_MAX 64
/* Largest JSON text decode accepts and encode produces, bytes. */
#define JSON_SIZE_MAX (1024 * 1024)

#define JSON_BOX_MT   "cella.json.box"
#define JSON_ARRAY_MT "cella.json.array"

/* json.null: a light userdata whose address is this constant (no mutable global). */
static const char json_null_tag = 0;
#define LJSON_NULL ((void *)&json_null_tag)

typedef struct {
        json_t *root;
        char *text;
} JsonBox;

static int box_gc(lua_State *L)
{
        JsonBox *b = luaL_checkudata(L, 1, JSON_BOX_MT);
        json_decref(b->root);
        clua_ext_free(b->text); /* jansson's allocator (alloc.h) */
        b->root = NULL;
        b->text = NULL;
        return 0;
}

static JsonBox *box_push(lua_State *L)
{
        JsonBox *b = lua_newuserdatauv(L, sizeof(JsonBox), 0);
        b->root = NULL;
        b->text = NULL;
        luaL_setmetatable(L, JSON_BOX_MT);
        return b;
}

typedef struct {
        lua_State *L;
        size_t budget; /* bytes of output still allowed (estimate, ≥ actual work) */
        char err[128];
} Encoder;

/*
 * Returns the array length n if the table at idx has exactly keys 1..n, else 0;
 * -1 if it has more than limit entries (each costs at least one output byte, so
 * the walk stops there and the work stays bounded).
 */
static lua_Integer table_array_len(lua_State *L, int idx, size_t limit)
{
        lua_Integer n = 0, max = 0;

        lua_pushnil(L);
        while (lua_next(L, idx)) {
                lua_pop(L, 1);
                if ((size_t)n >= limit) {
                        lua_pop(L, 1);
                        return -1;
                }
                if (lua_type(L, -1) != LUA_TNUMBER || !lua_isinteger(L, -1)) {
                        lua_pop(L, 1);
                        return 0;
                }
                lua_Integer k = lua_tointeger(L, -1);
                if (k < 1) {
                        lua_pop(L, 1);
                        return 0;
                }
                if (k > max)
                        max = k;
                n++;
        }
        return max == n ? n : 0;
}

/*
 * Takes n bytes from the output budget. Charges are lower bounds of the output
 * (a value ≥ 1 byte, a string its bytes and quotes, a key and its colon, commas),
 * so nothing that fits is refused early and building stops within the limit.
 */
static int charge(Encoder *e, size_t n)
{
        if (n > e->budget) {
                snprintf(e->err, sizeof e->err, "output larger than %d bytes", JSON_SIZE_MAX);
                return -1;
        }
        e->budget -= n;
        return 0;
}

/*
 * Converts the Lua value at idx to a new jansson value in *ret (owned by the
 * caller's container already when the conversion of children starts).
 * Returns 0, or -1 with e->err set. Never raises except on Lua memory errors.
 */
static int encode_value(Encoder *e, int idx, int depth, json_t **ret);

static int encode_table(Encoder *e, int idx, int depth, json_t *container)
{
        lua_State *L = e->L;
        lua_Integer n;

        if (json_is_array(container)) {
                n = table_array_len(L, idx, e->budget);
                for (lua_Integer i = 1; i <= n; i++) {
                        json_t *v = NULL;
                        if (i > 1 && charge(e, 1) < 0)
                                return -1;
                        lua_rawgeti(L, idx, i);
                        int r = encode_value(e, lua_gettop(L), depth + 1, &v);
                        lua_pop(L, 1);
                        if (r < 0) {
                                json_decref(v); /* a child container, filled partly */
                                return r;
                        }
                        if (json_array_append_new(container, v) < 0) {
                                snprintf(e->err, sizeof e->err, "out of memory");
                                return -1;
                        }
                }
                return 0;
        }
        lua_pushnil(L);
        while (lua_next(L, idx)) {
                size_t kn;
                const char *k;
                json_t *v = NULL;

                if (lua_type(L, -2) != LUA_TSTRING) {
                        lua_pop(L, 2);
                        snprintf(e->err, sizeof e->err,
                                 "object keys must be strings (a table is an array only "
                                 "with keys 1..n)");
                        return -1;
                }
                k = lua_tolstring(L, -2, &kn);
                /* "k": plus a comma before all but the first; charge the comma always. */
                if (charge(e, kn + 4) < 0 || encode_value(e, lua_gettop(L), depth + 1, &v) < 0) {
                        json_decref(v);
                        lua_pop(L, 2);
                        return -1;
                }
                lua_pop(L, 1);
                if (json_object_setn_new(container, k, kn, v) < 0) {
                        lua_pop(L, 1);
                        snprintf(e->err, sizeof e->err, "object key is not valid UTF-8");
                        return -1;
                }
        }
        return 0;
}

static int encode_value(Encoder *e, int idx, int depth, json_t **ret)
{
        lua_State *L = e->L;
        json_t *v = NULL;

        if (charge(e, 1) < 0)
                return -1;
        switch (lua_type(L, idx)) {
        case LUA_TNIL:
                v = json_null();
                break;
        case LUA_TLIGHTUSERDATA:
                if (lua_touserdata(L, idx) != LJSON_NULL)
                        goto bad;
                v = json_null();
                break;
        case LUA_TBOOLEAN:
                v = json_boolean(lua_toboolean(L, idx));
                break;
        case LUA_TNUMBER:
                if (lua_isinteger(L, idx))
                        v = json_integer(lua_tointeger(L, idx));
                else {
                        double d = lua_tonumber(L, idx);
                        if (!isfinite(d)) {
                                snprintf(e->err, sizeof e->err, "NaN and infinity are not JSON");
                                return -1;
                        }
                        v = json_real(d);
                }
                break;
        case LUA_TSTRING: {
                size_t n;
                const char *s = lua_tolstring(L, idx, &n);
                /* The value's byte is charged: add the rest and the closing quote. */
                if (charge(e, n + 1) < 0)
                        return -1;
                v = json_stringn(s, n);
                if (!v) {
                        snprintf(e->err, sizeof e->err, "string is not valid UTF-8");
                        return -1;
                }
                break;
        }
        case LUA_TTABLE: {
                lua_Integer n;
                int is_array;
                if (depth >= JSON_DEPTH_MAX) {
                        snprintf(e->err, sizeof e->err, "nesting deeper than %d", JSON_DEPTH_MAX);
                        return -1;
                }
                luaL_checkstack(L, 4, "json nesting");
                n = table_array_len(L, idx, e->budget);
                if (n < 0) {
                        snprintf(e->err, sizeof e->err, "output larger than %d bytes",
                                 JSON_SIZE_MAX);
                        return -1;
                }
                is_array = n > 0;
                if (!is_array && lua_getmetatable(L, idx)) {
                        luaL_getmetatable(L, JSON_ARRAY_MT);
                        is_array = lua_rawequal(L, -1, -2);
                        lua_pop(L, 2);
                        if (is_array) {
                                lua_pushnil(L);
                                if (lua_next(L, idx)) {
                                        lua_pop(L, 2);
                                        snprintf(e->err, sizeof e->err,
                                                 "json.array table has non-array keys");
                                        return -1;
                                }
                        }
                }
                v = is_array ? json_array() : json_object();
                if (!v)
                        break;
                /* Hand v to the caller first: it is freed with the tree on error. */
                *ret = v;
                return encode_table(e, idx, depth, v);
        }
        default:
        bad:
                snprintf(e->err, sizeof e->err, "cannot encode a %s", luaL_typename(L, idx));
                return -1;
        }
        if (!v) {
                snprintf(e->err, sizeof e->err, "out of memory");
                return -1;
        }
        *ret = v;
        return 0;
}

/* json.encode(value) -> string (compact, object keys sorted). */
static int json_encode_l(lua_State *L)
{
        Encoder e = {.L = L, .budget = JSON_SIZE_MAX};
        unsigned long refused;
        JsonBox *b;
        size_t n;
        int r;

        luaL_checkany(L, 1);
        lua_settop(L, 1);
        b = box_push(L);
        refused = clua_alloc_refusals();
        r = encode_value(&e, 1, 0, &b->root);
        if (r < 0) {
                if (clua_alloc_refusals() != refused)
                        return clua_alloc_raise_memory(L);
                return luaL_error(L, "cella.json.encode: %s", e.err);
        }
        b->text = json_dumps(b->root, JSON_COMPACT | JSON_SORT_KEYS | JSON_ENCODE_ANY);
        if (!b->text) {
                if (clua_alloc_refusals() != refused)
                        return clua_alloc_raise_memory(L);
                return luaL_error(L, "cella.json.encode: out of memory");
        }
        n = strlen(b->text);
        if (n > JSON_SIZE_MAX)
                return luaL_error(L, "cella.json.encode: output larger than %d bytes",
                                  JSON_SIZE_MAX);
        lua_pushlstring(L, b->text, n);
        return 1;
}

/*
 * Depth of the deepest [ or { outside strings; stops counting past the limit.
 * Run before jansson so a bracket bomb is refused in one linear pass.
 */
static int scan_depth(const char *s, size_t n)
{
        int depth = 0, in_str = 0;

        for (size_t i = 0; i < n; i++) {
                char c = s[i];
                if (in_str) {
                        if (c == '\\')
                                i++;
                        else if (c == '"')
                                in_str = 0;
                } else if (c == '"')
                        in_str = 1;
                else if (c == '[' || c == '{') {
                        if (++depth > JSON_DEPTH_MAX)
                                return depth;
                } else if (c == ']' || c == '}')
                        depth--;
        }
        return depth < 0 ? 0 : depth;
}

static void push_value(lua_State *L, json_t *v)
{
        switch (json_typeof(v)) {
        case JSON_OBJECT: {
                const char *k;
                json_t *x;
                lua_createtable(L, 0, (int)json_object_size(v));
                luaL_checkstack(L, 4, "json nesting");
                json_object_foreach(v, k, x)
                {
                        lua_pushlstring(L, k, strlen(k));
                        push_value(L, x);
                        lua_rawset(L, -3);
                }
                break;
        }
        case JSON_ARRAY: {
                size_t i;
                json_t *x;
                lua_createtable(L, (int)json_array_size(v), 0);
                luaL_checkstack(L, 4, "json nesting");
                json_array_foreach(v, i, x)
                {
                        push_value(L, x);
                        lua_rawseti(L, -2, (lua_Integer)i + 1);
                }
                luaL_setmetatable(L, JSON_ARRAY_MT);
                break;
        }
        case JSON_STRING:
                lua_pushlstring(L, json_string_value(v), json_string_length(v));
                break;
        case JSON_INTEGER:
                lua_pushinteger(L, (lua_Integer)json_integer_value(v));
                break;
        case JSON_REAL:
                lua_pushnumber(L, json_real_value(v));
                break;
        case JSON_TRUE:
                lua_pushboolean(L, 1);
                break;
        case JSON_FALSE:
                lua_pushboolean(L, 0);
                break;
        case JSON_NULL:
        default:
                lua_pushlightuserdata(L, LJSON_NULL);
                break;
        }
}

/* Work of one GC step of collect_in_steps, KiB (as if this much had been
 * allocated: lua_gc LUA_GCSTEP), as collectgarbage's steps (env.c). */
#define JSON_GC_STEP_KB 256

/* A full collection of L's garbage in steps, stopping early when the app is
 * doomed (clua_alloc_current_doomed): LUA_GCSTEP until two cycles have ended
 * (the one in progress, then a whole one, as luaC_fullgc). liblua's
 * LUA_GCCOLLECT is one call the app cannot be stopped in (seconds on a big
 * heap), past which the watchdog ends the whole host. */
static void collect_in_steps(lua_State *L)
{
        for (int cycles = 0; cycles < 2 && !clua_alloc_current_doomed();)
                if (lua_gc(L, LUA_GCSTEP, JSON_GC_STEP_KB))
                        cycles++;
}

/* json.decode(text) -> value. text ≤ 1 MiB, depth ≤ 64, duplicate keys refused. */
static int json_decode_l(lua_State *L)
{
        size_t n;
        const char *s = luaL_checklstring(L, 1, &n);
        json_error_t err;
        JsonBox *b;

        if (n > JSON_SIZE_MAX)
                return luaL_error(L, "cella.json.decode: input larger than %d bytes",
                                  JSON_SIZE_MAX);
        if (scan_depth(s, n) > JSON_DEPTH_MAX)
                return luaL_error(L, "cella.json.decode: nesting deeper than %d", JSON_DEPTH_MAX);
        b = box_push(L);
        /* jansson's memory counts against the app's cap (alloc.h): refused, the
         * garbage of the Lua heap is collected (in polled steps: a full
         * LUA_GCCOLLECT of a big heap is seconds the app cannot be stopped in)
         * and the parse tried once more. */
        for (int try = 0; try < 2 && !b->root; try++) {
                unsigned long refused = clua_alloc_refusals();

                b->root = json_loadb(
                        s, n, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &err);
                if (b->root || clua_alloc_refusals() == refused)
                        break;
                if (try == 1)
                        return clua_alloc_raise_memory(L);
                collect_in_steps(L);
                if (clua_alloc_current_doomed())
                        return clua_alloc_raise_memory(L);
        }
        if (!b->root)
                return luaL_error(L, "cella.json.decode: %s at line %d column %d", err.text,
                                  err.line, err.column);
        push_value(L, b->root);
        return 1;
}

/* json.array([t]) -> t marked as an array (encodes as [] when empty). */
static int json_array_l(lua_State *L)
{
        if (lua_isnoneornil(L, 1)) {
                lua_settop(L, 0);
                lua_newtable(L);
        } else {
                luaL_checktype(L, 1, LUA_TTABLE);
                lua_settop(L, 1);
                /* The C API sets a metatable even over a protected one: a table
                 * with another metatable (a read-only library table, the globals,
                 * an object of the app's) keeps it. */
                if (lua_getmetatable(L, 1)) {
                        luaL_getmetatable(L, JSON_ARRAY_MT);
                        if (!lua_rawequal(L, -1, -2))
                                return luaL_error(L, "cella.json.array: the table already has "
                                                     "a metatable");
                        lua_pop(L, 2);
                }
        }
        luaL_setmetatable(L, JSON_ARRAY_MT);
        return 1;
}

static const luaL_Reg json_funcs[] = {
        {"encode", json_encode_l},
        {"decode", json_decode_l},
        {"array", json_array_l},
        {NULL, NULL},
};

int luaopen_cella_json(lua_State *L)
{
        (void)clua_alloc_global_init();
        if (cella_lua_newclass(L, JSON_BOX_MT)) {
                lua_pushcfunction(L, box_gc);
                lua_setfield(L, -2, "__gc");
        }
        lua_pop(L, 1);
        /* Protected: json.array(t) sets it, so a __gc added to it would make t a
         * finalized object behind setmetatable's back. */
        if (cella_lua_newclass(L, JSON_ARRAY_MT)) {
                lua_pushliteral(L, "json.array");
                lua_setfield(L, -2, "__name");
        }
        lua_pop(L, 1);
        luaL_newlib(L, json_funcs);
        lua_pushlightuserdata(L, LJSON_NULL);
        lua_setfield(L, -2, "null");
        return 1;
}
