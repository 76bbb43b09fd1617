/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella-lua's own table.concat, insert, remove, move, unpack and sort (Lua 5.4
 * manual section 6.6, same arguments, results and errors).
 *
 * liblua's loop up to bounds the app chooses (table.move(a, 1, 2^62, 1, b)), or
 * up to a length a __len metamethod gives, calling __index/__newindex metamethods
 * that may be C functions: no Lua instruction runs, so no hook can stop it, and
 * the loop kept a packed group's thread until the host ended. These loops poll
 * the app's doom flag (clua_poll) every CLUA_TABLE_POLL elements.
 *
 * table.sort is written in Lua (clua_table_sort_source), so its comparisons,
 * comparator calls and __lt metamethods run as Lua code the host can preempt
 * (and a comparator may wait for the kernel); liblua's calls the comparator from
 * C, where it can neither yield nor be preempted. Only an array of at most
 * 65536 numbers in a table without a metatable, in the default order, goes to
 * liblua's sort (clua_sort_numbers): bounded C work that calls no Lua code.
 */
#include <limits.h>

#include <lauxlib.h>
#include <lua.h>

#include "lua/env.h"

/* Elements between two polls of the doom flag. */
#define CLUA_TABLE_POLL 1024

#define NEED_R 1 /* __index */
#define NEED_W 2 /* __newindex */
#define NEED_L 4 /* __len */

#define POLL(L, i)                                                                                 \
        do {                                                                                       \
                if (((i) & (CLUA_TABLE_POLL - 1)) == 0)                                            \
                        clua_poll(L);                                                              \
        } while (0)

/* Whether field key of the table at -n (the metatable) is not nil, read raw;
 * pushes the field (as liblua's ltablib.c checkfield). */
static bool check_field(lua_State *L, const char *key, int n)
{
        lua_pushstring(L, key);
        return lua_rawget(L, -n) != LUA_TNIL;
}

/* Argument arg must be a table, or have the metamethods of need (as liblua's
 * ltablib.c checktab: the metatable's fields read raw, and only what was
 * pushed popped; a failed check pushes nothing more and raises). */
static void check_tab(lua_State *L, int arg, int need)
{
        int n = 1;

        if (lua_type(L, arg) == LUA_TTABLE)
                return;
        if (lua_getmetatable(L, arg) && (!(need & NEED_R) || check_field(L, "__index", ++n)) &&
            (!(need & NEED_W) || check_field(L, "__newindex", ++n)) &&
            (!(need & NEED_L) || check_field(L, "__len", ++n))) {
                lua_pop(L, n);
                return;
        }
        luaL_checktype(L, arg, LUA_TTABLE);
}

static lua_Integer len_of(lua_State *L, int arg, int need)
{
        check_tab(L, arg, need | NEED_L);
        return luaL_len(L, arg);
}

/* table.concat(list [, sep [, i [, j]]]) */
static int tab_concat(lua_State *L)
{
        luaL_Buffer b;
        lua_Integer last = len_of(L, 1, NEED_R), i;
        size_t lsep;
        const char *sep = luaL_optlstring(L, 2, "", &lsep);

        i = luaL_optinteger(L, 3, 1);
        last = luaL_optinteger(L, 4, last);
        luaL_buffinit(L, &b);
        for (; i <= last; i++) {
                lua_geti(L, 1, i);
                if (!lua_isstring(L, -1))
                        return luaL_error(L, "invalid value (%s) at index %I in table for 'concat'",
                                          luaL_typename(L, -1), (LUAI_UACINT)i);
                luaL_addvalue(&b);
                if (i == last)
                        break;
                luaL_addlstring(&b, sep, lsep);
                POLL(L, i);
        }
        luaL_pushresult(&b);
        return 1;
}

/* table.insert(list, [pos,] value) */
static int tab_insert(lua_State *L)
{
        lua_Integer e = len_of(L, 1, NEED_R | NEED_W), pos;

        e = (lua_Integer)((lua_Unsigned)e + 1u); /* the first empty slot */
        switch (lua_gettop(L)) {
        case 2:
                pos = e;
                break;
        case 3:
                pos = luaL_checkinteger(L, 2);
                luaL_argcheck(L, (lua_Unsigned)pos - 1u < (lua_Unsigned)e, 2,
                              "position out of bounds");
                for (lua_Integer i = e; i > pos; i--) {
                        lua_geti(L, 1, i - 1);
                        lua_seti(L, 1, i);
                        POLL(L, i);
                }
                break;
        default:
                return luaL_error(L, "wrong number of arguments to 'insert'");
        }
        lua_seti(L, 1, pos);
        return 0;
}

/* table.remove(list [, pos]) */
static int tab_remove(lua_State *L)
{
        lua_Integer size = len_of(L, 1, NEED_R | NEED_W), pos = luaL_optinteger(L, 2, size);

        if (pos != size)
                luaL_argcheck(L, (lua_Unsigned)pos - 1u <= (lua_Unsigned)size, 2,
                              "position out of bounds");
        lua_geti(L, 1, pos);
        for (; pos < size; pos++) {
                lua_geti(L, 1, pos + 1);
                lua_seti(L, 1, pos);
                POLL(L, pos);
        }
        lua_pushnil(L);
        lua_seti(L, 1, pos);
        return 1;
}

/* table.move(a1, f, e, t [, a2]) */
static int tab_move(lua_State *L)
{
        lua_Integer f = luaL_checkinteger(L, 2), e = luaL_checkinteger(L, 3),
                    t = luaL_checkinteger(L, 4);
        int tt = !lua_isnoneornil(L, 5) ? 5 : 1;

        check_tab(L, 1, NEED_R);
        check_tab(L, tt, NEED_W);
        if (e >= f) {
                lua_Integer n;

                luaL_argcheck(L, f > 0 || e < LUA_MAXINTEGER + f, 3, "too many elements to move");
                n = e - f + 1;
                luaL_argcheck(L, t <= LUA_MAXINTEGER - n + 1, 4, "destination wrap around");
                if (t > e || t <= f || (tt != 1 && !lua_compare(L, 1, tt, LUA_OPEQ))) {
                        for (lua_Integer i = 0; i < n; i++) {
                                lua_geti(L, 1, f + i);
                                lua_seti(L, tt, t + i);
                                POLL(L, i);
                        }
                } else {
                        for (lua_Integer i = n - 1; i >= 0; i--) {
                                lua_geti(L, 1, f + i);
                                lua_seti(L, tt, t + i);
                                POLL(L, i);
                        }
                }
        }
        lua_pushvalue(L, tt);
        return 1;
}

/* table.unpack(list [, i [, j]]) */
static int tab_unpack(lua_State *L)
{
        lua_Integer i = luaL_optinteger(L, 2, 1),
                    e = lua_isnoneornil(L, 3) ? luaL_len(L, 1) : luaL_checkinteger(L, 3);
        lua_Unsigned n;

        if (i > e)
                return 0;
        n = (lua_Unsigned)e - (lua_Unsigned)i;
        if (n >= (unsigned)INT_MAX || !lua_checkstack(L, (int)(++n)))
                return luaL_error(L, "too many results to unpack");
        for (; i < e; i++) {
                lua_geti(L, 1, i);
                POLL(L, i);
        }
        lua_geti(L, 1, e);
        return (int)n;
}

/* The largest array clua_sort_numbers sorts: 65536 numbers take liblua's sort
 * about 10 ms, and run no Lua code. */
#define SORT_NUMBERS_MAX 65536

int clua_sort_numbers(lua_State *L)
{
        lua_Integer n = luaL_checkinteger(L, 2);

        luaL_checktype(L, 1, LUA_TTABLE);
        if (n < 0 || n > SORT_NUMBERS_MAX || lua_getmetatable(L, 1)) {
                lua_pushboolean(L, 0);
                return 1;
        }
        for (lua_Integer i = 1; i <= n; i++) {
                int t = lua_rawgeti(L, 1, i);

                lua_pop(L, 1);
                if (t != LUA_TNUMBER) {
                        lua_pushboolean(L, 0);
                        return 1;
                }
        }
        lua_pushcfunction(L, clua_std_function("table", "sort"));
        lua_pushvalue(L, 1);
        lua_call(L, 1, 0);
        lua_pushboolean(L, 1);
        return 1;
}

const luaL_Reg clua_table_fns[] = {
        {"concat", tab_concat}, {"insert", tab_insert}, {"remove", tab_remove},
        {"move", tab_move},     {"unpack", tab_unpack}, {NULL, NULL},
};

/*
 * table.sort(list [, comp]) in Lua: a quicksort (median of three, insertion sort
 * below 13 elements, recursion on the smaller part; a copy with the < operator
 * for the default order, so it makes no call per comparison), in place through t[i] as
 * liblua's (so __index/__newindex apply), with liblua's errors. The chunk is
 * called with (error, type) and returns the function; it reads no global.
 */
const char clua_table_sort_source[] =
        "local error, type, select, sort_numbers = ...\n"
        "local function bad()\n"
        "  error(\"invalid order function for sorting\", 0)\n"
        "end\n"
        "-- With a comparator.\n"
        "local function isort(t, lo, hi, lt)\n"
        "  for i = lo + 1, hi do\n"
        "    local v = t[i]\n"
        "    local j = i - 1\n"
        "    while j >= lo and lt(v, t[j]) do\n"
        "      t[j + 1] = t[j]\n"
        "      j = j - 1\n"
        "    end\n"
        "    t[j + 1] = v\n"
        "  end\n"
        "end\n"
        "local function qsort(t, lo, hi, lt)\n"
        "  while hi - lo >= 12 do\n"
        "    local mid = lo + (hi - lo) // 2\n"
        "    if lt(t[mid], t[lo]) then t[mid], t[lo] = t[lo], t[mid] end\n"
        "    if lt(t[hi], t[mid]) then\n"
        "      t[mid], t[hi] = t[hi], t[mid]\n"
        "      if lt(t[mid], t[lo]) then t[mid], t[lo] = t[lo], t[mid] end\n"
        "    end\n"
        "    local p = t[mid]\n"
        "    t[mid], t[hi - 1] = t[hi - 1], p\n"
        "    local i, j = lo, hi - 1\n"
        "    while true do\n"
        "      i = i + 1\n"
        "      while lt(t[i], p) do\n"
        "        if i >= hi - 1 then bad() end\n"
        "        i = i + 1\n"
        "      end\n"
        "      j = j - 1\n"
        "      while lt(p, t[j]) do\n"
        "        if j <= lo then bad() end\n"
        "        j = j - 1\n"
        "      end\n"
        "      if j < i then break end\n"
        "      t[i], t[j] = t[j], t[i]\n"
        "    end\n"
        "    t[hi - 1], t[i] = t[i], t[hi - 1]\n"
        "    if i - lo < hi - i then\n"
        "      qsort(t, lo, i - 1, lt)\n"
        "      lo = i + 1\n"
        "    else\n"
        "      qsort(t, i + 1, hi, lt)\n"
        "      hi = i - 1\n"
        "    end\n"
        "  end\n"
        "  isort(t, lo, hi, lt)\n"
        "end\n"
        "-- The same with the < operator (no call per comparison).\n"
        "local function isort_lt(t, lo, hi)\n"
        "  for i = lo + 1, hi do\n"
        "    local v = t[i]\n"
        "    local j = i - 1\n"
        "    while j >= lo and v < t[j] do\n"
        "      t[j + 1] = t[j]\n"
        "      j = j - 1\n"
        "    end\n"
        "    t[j + 1] = v\n"
        "  end\n"
        "end\n"
        "local function qsort_lt(t, lo, hi)\n"
        "  while hi - lo >= 12 do\n"
        "    local mid = lo + (hi - lo) // 2\n"
        "    if t[mid] < t[lo] then t[mid], t[lo] = t[lo], t[mid] end\n"
        "    if t[hi] < t[mid] then\n"
        "      t[mid], t[hi] = t[hi], t[mid]\n"
        "      if t[mid] < t[lo] then t[mid], t[lo] = t[lo], t[mid] end\n"
        "    end\n"
        "    local p = t[mid]\n"
        "    t[mid], t[hi - 1] = t[hi - 1], p\n"
        "    local i, j = lo, hi - 1\n"
        "    while true do\n"
        "      i = i + 1\n"
        "      while t[i] < p do\n"
        "        if i >= hi - 1 then bad() end\n"
        "        i = i + 1\n"
        "      end\n"
        "      j = j - 1\n"
        "      while p < t[j] do\n"
        "        if j <= lo then bad() end\n"
        "        j = j - 1\n"
        "      end\n"
        "      if j < i then break end\n"
        "      t[i], t[j] = t[j], t[i]\n"
        "    end\n"
        "    t[hi - 1], t[i] = t[i], t[hi - 1]\n"
        "    if i - lo < hi - i then\n"
        "      qsort_lt(t, lo, i - 1)\n"
        "      lo = i + 1\n"
        "    else\n"
        "      qsort_lt(t, i + 1, hi)\n"
        "      hi = i - 1\n"
        "    end\n"
        "  end\n"
        "  isort_lt(t, lo, hi)\n"
        "end\n"
        "return function(...)\n"
        "  local t, comp = ...\n"
        "  local tt = select('#', ...) == 0 and 'no value' or type(t)\n"
        "  if tt ~= 'table' then\n"
        "    error(\"bad argument #1 to 'sort' (table expected, got \" .. tt .. \")\", 2)\n"
        "  end\n"
        "  local n = #t\n"
        "  if type(n) ~= 'number' or n % 1 ~= 0 then\n"
        "    error('object length is not an integer', 2)\n"
        "  end\n"
        "  if n > 1 then\n"
        "    if n >= 0x7fffffff then error(\"bad argument #1 to 'sort' (array too big)\", 2) end\n"
        "    if comp == nil then\n"
        "      if n <= 65536 and sort_numbers(t, n) then return end\n"
        "      qsort_lt(t, 1, n)\n"
        "    elseif type(comp) ~= 'function' then\n"
        "      error(\"bad argument #2 to 'sort' (function expected, got \" .. type(comp) .. "
        "\")\", 2)\n"
        "    else\n"
        "      qsort(t, 1, n, comp)\n"
        "    end\n"
        "  end\n"
        "end\n";
