/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella.perm, cella.app and cella.notify (docs/lua-api.md): the app's own
 * permissions, record, launches, exit and scheduler counters, and notifications.
 * Kernel calls go through the broker with the app's rights, and wait for the
 * reply by suspending the calling task.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "wire/wire.h"
#include "lua/host.h"
#include "lua/lua-modules.h"

static const char *perm_state_name(int s)
{
        switch (s) {
        case CELLA_PERM_GRANTED:
                return "granted";
        case CELLA_PERM_DENIED:
                return "denied";
        case CELLA_PERM_ASK:
                return "ask";
        case CELLA_PERM_NOT_REQUESTED:
                return "not-requested";
        default:
                return "unknown";
        }
}

static const char *perm_level_name(int l)
{
        switch (l) {
        case CELLA_PERM_LEVEL_NORMAL:
                return "normal";
        case CELLA_PERM_LEVEL_DANGEROUS:
                return "dangerous";
        case CELLA_PERM_LEVEL_SIGNATURE:
                return "signature";
        default:
                return "unknown";
        }
}

/* ---- cella.perm ---------------------------------------------------------------- */

static int decode_query(lua_State *L, CellaReply *reply)
{
        ProtobufCMessage *m = clua_kernel_unpack(L, reply);

        lua_pushstring(L, perm_state_name(((Cella__V1__PermQueryReply *)(void *)m)->state));
        protobuf_c_message_free_unpacked(m, NULL);
        return 1;
}

static int perm_query(lua_State *L)
{
        Cella__V1__PermQueryRequest req = CELLA__V1__PERM_QUERY_REQUEST__INIT;

        req.permission = (char *)clua_check_str(L, 1, 1, CELLA_PERMISSION_MAX, NULL);
        return clua_kernel_call(L, "cella.perm.query", CELLA_OP_PERM_QUERY, &req.base,
                                decode_query);
}

static int decode_request(lua_State *L, CellaReply *reply)
{
        ProtobufCMessage *m = clua_kernel_unpack(L, reply);
        Cella__V1__PermRequestReply *r = (Cella__V1__PermRequestReply *)(void *)m;

        lua_pushboolean(L, (int)r->state == (int)CELLA_PERM_GRANTED);
        lua_pushboolean(L, r->one_time);
        protobuf_c_message_free_unpacked(m, NULL);
        return 2;
}

static int perm_request(lua_State *L)
{
        Cella__V1__PermRequestRequest req = CELLA__V1__PERM_REQUEST_REQUEST__INIT;

        req.permission = (char *)clua_check_str(L, 1, 1, CELLA_PERMISSION_MAX, NULL);
        req.reason = (char *)clua_opt_str(L, 2, CELLA_REASON_MAX);
        return clua_kernel_call(L, "cella.perm.request", CELLA_OP_PERM_REQUEST, &req.base,
                                decode_request);
}

static int decode_list(lua_State *L, CellaReply *reply)
{
        ProtobufCMessage *m = clua_kernel_unpack(L, reply);
        Cella__V1__PermListReply *r = (Cella__V1__PermListReply *)(void *)m;

        lua_createtable(L, (int)r->n_permissions, 0);
        for (size_t i = 0; i < r->n_permissions; i++) {
                Cella__V1__PermEntry *e = r->permissions[i];

                lua_createtable(L, 0, 4);
                lua_pushstring(L, e->permission ?: "");
                lua_setfield(L, -2, "permission");
                lua_pushstring(L, perm_state_name(e->state));
                lua_setfield(L, -2, "state");
                lua_pushstring(L, perm_level_name(e->level));
                lua_setfield(L, -2, "level");
                lua_pushboolean(L, e->one_time);
                lua_setfield(L, -2, "one_time");
                lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        protobuf_c_message_free_unpacked(m, NULL);
        return 1;
}

static int perm_list(lua_State *L)
{
        Cella__V1__PermListRequest req = CELLA__V1__PERM_LIST_REQUEST__INIT;

        return clua_kernel_call(L, "cella.perm.list", CELLA_OP_PERM_LIST, &req.base, decode_list);
}

static int perm_on_revoke(lua_State *L)
{
        CLuaApp *app = clua_app_of(L);

        if (!lua_isnil(L, 1))
                luaL_checktype(L, 1, LUA_TFUNCTION);
        lua_settop(L, 1);
        if (!lua_isnil(L, 1))
                (void)clua_kernel(L, "cella.perm.on_revoke");
        clua_set_handler(L, &app->on_revoke_ref);
        return 0;
}

int luaopen_cella_perm(lua_State *L)
{
        static const luaL_Reg fns[] = {
                {"query", perm_query}, {"request", perm_request},
                {"list", perm_list},   {"on_revoke", perm_on_revoke},
                {NULL, NULL},
        };

        luaL_newlib(L, fns);
        return 1;
}

/* ---- cella.app ---------------------------------------------------------------- */

static int app_id(lua_State *L)
{
        lua_pushstring(L, clua_app_of(L)->id);
        return 1;
}

static void push_strings(lua_State *L, char **v, size_t n)
{
        lua_createtable(L, (int)n, 0);
        for (size_t i = 0; i < n; i++) {
                lua_pushstring(L, v[i] ?: "");
                lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
}

static int decode_info(lua_State *L, CellaReply *reply)
{
        ProtobufCMessage *m = clua_kernel_unpack(L, reply);
        Cella__V1__AppInfoReply *r = (Cella__V1__AppInfoReply *)(void *)m;

        lua_createtable(L, 0, 8);
        lua_pushstring(L, r->id ?: "");
        lua_setfield(L, -2, "id");
        lua_pushstring(L, r->name ?: "");
        lua_setfield(L, -2, "name");
        lua_pushstring(L, r->version ?: "");
        lua_setfield(L, -2, "version");
        lua_pushstring(L, r->kind ?: "");
        lua_setfield(L, -2, "kind");
        lua_pushstring(L, r->runtime ?: "");
        lua_setfield(L, -2, "runtime");
        push_strings(L, r->requested, r->n_requested);
        lua_setfield(L, -2, "requested");
        push_strings(L, r->granted, r->n_granted);
        lua_setfield(L, -2, "granted");
        lua_createtable(L, 0, 6);
        if (r->limits) {
                lua_pushinteger(L, (lua_Integer)r->limits->memory_bytes);
                lua_setfield(L, -2, "memory");
                lua_pushinteger(L, (lua_Integer)r->limits->pids);
                lua_setfield(L, -2, "pids");
                lua_pushnumber(L, r->limits->cpu_millis / 1000.0);
                lua_setfield(L, -2, "cpu");
                lua_pushinteger(L, (lua_Integer)r->limits->files);
                lua_setfield(L, -2, "files");
                lua_pushinteger(L, (lua_Integer)r->limits->storage_bytes);
                lua_setfield(L, -2, "storage");
                lua_pushinteger(L, (lua_Integer)r->limits->tmp_bytes);
                lua_setfield(L, -2, "tmp");
        }
        lua_setfield(L, -2, "limits");
        protobuf_c_message_free_unpacked(m, NULL);
        return 1;
}

static int app_info(lua_State *L)
{
        Cella__V1__AppInfoRequest req = CELLA__V1__APP_INFO_REQUEST__INIT;

        return clua_kernel_call(L, "cella.app.info", CELLA_OP_APP_INFO, &req.base, decode_info);
}

static int decode_launch(lua_State *L, CellaReply *reply)
{
        ProtobufCMessage *m = clua_kernel_unpack(L, reply);

        lua_pushstring(L, ((Cella__V1__AppLaunchReply *)(void *)m)->already_running ? "delivered"
                                                                                    : "started");
        protobuf_c_message_free_unpacked(m, NULL);
        return 1;
}

static int app_launch(lua_State *L)
{
        Cella__V1__AppLaunchRequest req = CELLA__V1__APP_LAUNCH_REQUEST__INIT;
        Cella__V1__Intent intent = CELLA__V1__INTENT__INIT;
        size_t len = 0;
        const char *data;

        req.app_id = (char *)clua_check_str(L, 1, 1, CELLA_ID_MAX, NULL);
        intent.action = (char *)clua_opt_str(L, 2, CELLA_ACTION_MAX);
        data = luaL_optlstring(L, 3, "", &len);
        luaL_argcheck(L, len <= CELLA_PAYLOAD_MAX, 3, "data larger than 64512 bytes");
        intent.data = (ProtobufCBinaryData){.len = len, .data = (uint8_t *)data};
        intent.content_type = (char *)clua_opt_str(L, 4, CELLA_CONTENT_TYPE_MAX);
        req.intent = &intent;
        return clua_kernel_call(L, "cella.app.launch", CELLA_OP_APP_LAUNCH, &req.base,
                                decode_launch);
}

static int app_exit(lua_State *L)
{
        lua_Integer code = luaL_optinteger(L, 1, 0);

        luaL_argcheck(L, code >= 0 && code <= 255, 1, "exit code out of range 0..255");
        clua_app_of(L)->exit_code = (int)code;
        return clua_doom(L, CLUA_EXITING);
}

static const char *state_name(uint32_t s)
{
        static const char *const names[] = {"starting", "ready",  "running",
                                            "waiting",  "exited", "failed"};

        return s < 6 ? names[s] : "unknown";
}

static int app_stats(lua_State *L)
{
        CLuaApp *app = clua_app_of(L);
        const CLuaStatsApp *s = app->stats;

        lua_createtable(L, 0, 12);
        lua_pushstring(L, state_name(s->state));
        lua_setfield(L, -2, "state");
#define F(name, v)                                                                                 \
        lua_pushinteger(L, (lua_Integer)(v));                                                      \
        lua_setfield(L, -2, name)
        F("slices", s->slices);
        F("preemptions", s->preemptions);
        F("yields", s->yields);
        F("callbacks", s->callbacks);
        F("cpu_ns", app->cpu_used_ns);
        F("vruntime_ns", app->vruntime_ns);
        F("memory_bytes", app->alloc.used);
        F("memory_peak_bytes", app->alloc.peak);
        F("priority", app->priority);
        F("weight", app->weight);
#undef F
        return 1;
}

/* app.on_kernel_restart(fn): fn() once a new kernel adopted the app (docs/lua-api.md). */
static int app_on_kernel_restart(lua_State *L)
{
        CLuaApp *app = clua_app_of(L);

        if (!lua_isnil(L, 1))
                luaL_checktype(L, 1, LUA_TFUNCTION);
        lua_settop(L, 1);
        clua_set_handler(L, &app->on_restart_ref);
        return 0;
}

/* app.on_trim(fn): fn(level) when the kernel asks the app to trim its memory, level
 * "moderate", "low" or "critical" (docs/lua-api.md, docs/memory.md "Actions"). */
static int app_on_trim(lua_State *L)
{
        CLuaApp *app = clua_app_of(L);

        if (!lua_isnil(L, 1)) {
                luaL_checktype(L, 1, LUA_TFUNCTION);
                /* The channel is opened at the first kernel call: the event comes on it. */
                (void)clua_kernel(L, "cella.app.on_trim");
        }
        lua_settop(L, 1);
        clua_set_handler(L, &app->on_trim_ref);
        return 0;
}

int luaopen_cella_app(lua_State *L)
{
        static const luaL_Reg fns[] = {
                {"id", app_id},           {"info", app_info},
                {"launch", app_launch},   {"exit", app_exit},
                {"stats", app_stats},     {"on_kernel_restart", app_on_kernel_restart},
                {"on_trim", app_on_trim}, {NULL, NULL},
        };

        luaL_newlib(L, fns);
        return 1;
}

/* ---- cella.notify --------------------------------------------------------------- */

static int decode_post(lua_State *L, CellaReply *reply)
{
        ProtobufCMessage *m = clua_kernel_unpack(L, reply);

        lua_pushinteger(L, (lua_Integer)((Cella__V1__NotifyPostReply *)(void *)m)->notification_id);
        protobuf_c_message_free_unpacked(m, NULL);
        return 1;
}

static int notify_post(lua_State *L)
{
        static const char *const urgencies[] = {"normal", "low", "critical", NULL};
        Cella__V1__NotifyPostRequest req = CELLA__V1__NOTIFY_POST_REQUEST__INIT;

        req.title = (char *)clua_check_str(L, 1, 1, CELLA_TITLE_MAX, NULL);
        req.body = (char *)clua_opt_str(L, 2, CELLA_TEXT_MAX);
        req.tag = "";
        if (!lua_isnoneornil(L, 3)) {
                luaL_checktype(L, 3, LUA_TTABLE);
                lua_getfield(L, 3, "urgency");
                req.urgency = luaL_checkoption(L, -1, "normal", urgencies);
                lua_getfield(L, 3, "tag");
                req.tag = (char *)clua_opt_str(L, -1, CELLA_TAG_MAX);
        }
        return clua_kernel_call(L, "cella.notify.post", CELLA_OP_NOTIFY_POST, &req.base,
                                decode_post);
}

int luaopen_cella_notify(lua_State *L)
{
        static const luaL_Reg fns[] = {{"post", notify_post}, {NULL, NULL}};

        luaL_newlib(L, fns);
        return 1;
}
