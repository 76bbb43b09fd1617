/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella.bus: publish, subscribe, direct messages and request/reply through the
 * broker, with the app's own rights (docs/lua-api.md "cella.bus"). Every call
 * is checked here against cella.h's bounds before it is sent, and waits for the
 * kernel's reply by suspending the calling task.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>

#include "wire/wire.h"
#include "lua/host.h"
#include "lua/lua-modules.h"

static ProtobufCBinaryData check_data(lua_State *L, int i)
{
        size_t len;
        const char *s = luaL_checklstring(L, i, &len);

        luaL_argcheck(L, len <= CELLA_PAYLOAD_MAX, i, "data larger than 64512 bytes");
        return (ProtobufCBinaryData){.len = len, .data = (uint8_t *)s};
}

static int decode_publish(lua_State *L, CellaReply *reply)
{
        ProtobufCMessage *m = clua_kernel_unpack(L, reply);

        lua_pushinteger(L, ((Cella__V1__BusPublishReply *)(void *)m)->delivered);
        protobuf_c_message_free_unpacked(m, NULL);
        return 1;
}

static int bus_publish(lua_State *L)
{
        Cella__V1__BusPublishRequest req = CELLA__V1__BUS_PUBLISH_REQUEST__INIT;

        req.topic = (char *)clua_check_str(L, 1, 1, CELLA_TOPIC_MAX, NULL);
        req.data = check_data(L, 2);
        req.content_type = (char *)clua_opt_str(L, 3, CELLA_CONTENT_TYPE_MAX);
        return clua_kernel_call(L, "cella.bus.publish", CELLA_OP_BUS_PUBLISH, &req.base,
                                decode_publish);
}

/* decode sees subscribe's arguments: 1 the pattern, 2 the function. */
static int decode_subscribe(lua_State *L, CellaReply *reply)
{
        CLuaApp *app = clua_app_of(L);
        ProtobufCMessage *m = clua_kernel_unpack(L, reply);
        uint64_t id = ((Cella__V1__BusSubscribeReply *)(void *)m)->subscription_id;
        CLuaSub *v;

        protobuf_c_message_free_unpacked(m, NULL);
        if (app->n_subs >= CLUA_SUBS_MAX)
                return luaL_error(L, "cella.bus.subscribe: too many subscriptions");
        v = realloc(app->subs, (app->n_subs + 1) * sizeof(*v));
        if (!v)
                return clua_doom(L, CLUA_MEMORY);
        app->subs = v;
        lua_pushvalue(L, 2);
        v[app->n_subs].fn_ref = luaL_ref(L, LUA_REGISTRYINDEX);
        v[app->n_subs].id = id;
        app->n_subs++;
        lua_pushinteger(L, (lua_Integer)id);
        return 1;
}

static int bus_subscribe(lua_State *L)
{
        Cella__V1__BusSubscribeRequest req = CELLA__V1__BUS_SUBSCRIBE_REQUEST__INIT;

        req.pattern = (char *)clua_check_str(L, 1, 1, CELLA_TOPIC_MAX, NULL);
        luaL_checktype(L, 2, LUA_TFUNCTION);
        lua_settop(L, 2);
        req.batch = true;
        return clua_kernel_call(L, "cella.bus.subscribe", CELLA_OP_BUS_SUBSCRIBE, &req.base,
                                decode_subscribe);
}

static int decode_unsubscribe(lua_State *L, CellaReply *reply)
{
        CLuaApp *app = clua_app_of(L);
        lua_Integer id = lua_tointeger(L, 1);
        bool gone = reply->error == -ENOENT;

        /* ENOENT: the kernel ended it already (its right was revoked); the
         * handler goes here too, or its ref and its slot would stay for good. */
        if (!gone)
                protobuf_c_message_free_unpacked(clua_kernel_unpack(L, reply), NULL);
        for (unsigned i = 0; i < app->n_subs; i++) {
                if (app->subs[i].id != (uint64_t)id)
                        continue;
                clua_host_retarget(app, app->subs[i].fn_ref, LUA_NOREF);
                luaL_unref(L, LUA_REGISTRYINDEX, app->subs[i].fn_ref);
                app->subs[i] = app->subs[--app->n_subs];
                break;
        }
        lua_pushboolean(L, !gone);
        return 1;
}

static int bus_unsubscribe(lua_State *L)
{
        Cella__V1__BusUnsubscribeRequest req = CELLA__V1__BUS_UNSUBSCRIBE_REQUEST__INIT;
        lua_Integer id = luaL_checkinteger(L, 1);

        lua_settop(L, 1);
        if (id <= 0) {
                lua_pushboolean(L, 0);
                return 1;
        }
        req.subscription_id = (uint64_t)id;
        return clua_kernel_call(L, "cella.bus.unsubscribe", CELLA_OP_BUS_UNSUBSCRIBE, &req.base,
                                decode_unsubscribe);
}

static int decode_empty(lua_State *L, CellaReply *reply)
{
        protobuf_c_message_free_unpacked(clua_kernel_unpack(L, reply), NULL);
        return 0;
}

static int bus_send(lua_State *L)
{
        Cella__V1__BusSendRequest req = CELLA__V1__BUS_SEND_REQUEST__INIT;

        req.app_id = (char *)clua_check_str(L, 1, 1, CELLA_ID_MAX, NULL);
        req.data = check_data(L, 2);
        req.content_type = (char *)clua_opt_str(L, 3, CELLA_CONTENT_TYPE_MAX);
        return clua_kernel_call(L, "cella.bus.send", CELLA_OP_BUS_SEND, &req.base, decode_empty);
}

static int decode_request(lua_State *L, CellaReply *reply)
{
        ProtobufCMessage *m = clua_kernel_unpack(L, reply);
        Cella__V1__BusRequestReply *r = (Cella__V1__BusRequestReply *)(void *)m;

        lua_pushlstring(L, (const char *)r->data.data, r->data.len);
        lua_pushstring(L, r->content_type ?: "");
        lua_pushstring(L, r->responder ?: "");
        protobuf_c_message_free_unpacked(m, NULL);
        return 3;
}

static int bus_request(lua_State *L)
{
        Cella__V1__BusRequestRequest req = CELLA__V1__BUS_REQUEST_REQUEST__INIT;
        lua_Number t = luaL_optnumber(L, 4, 30.0);

        req.app_id = (char *)clua_check_str(L, 1, 1, CELLA_ID_MAX, NULL);
        req.topic = (char *)clua_check_str(L, 2, 1, CELLA_TOPIC_MAX, NULL);
        req.data = check_data(L, 3);
        luaL_argcheck(L, t > 0 && t <= 600, 4, "timeout out of range (0, 600] seconds");
        req.timeout_ms = (uint32_t)(t * 1000);
        if (req.timeout_ms == 0)
                req.timeout_ms = 1;
        req.content_type = "";
        return clua_kernel_call(L, "cella.bus.request", CELLA_OP_BUS_REQUEST, &req.base,
                                decode_request);
}

static int bus_on_message(lua_State *L)
{
        CLuaApp *app = clua_app_of(L);

        if (!lua_isnil(L, 1))
                luaL_checktype(L, 1, LUA_TFUNCTION);
        lua_settop(L, 1);
        /* Direct messages reach only an app that opened its channel. */
        if (!lua_isnil(L, 1))
                (void)clua_kernel(L, "cella.bus.on_message");
        clua_set_handler(L, &app->on_message_ref);
        return 0;
}

int luaopen_cella_bus(lua_State *L)
{
        static const luaL_Reg fns[] = {
                {"publish", bus_publish},
                {"subscribe", bus_subscribe},
                {"unsubscribe", bus_unsubscribe},
                {"send", bus_send},
                {"request", bus_request},
                {"on_message", bus_on_message},
                {NULL, NULL},
        };

        luaL_newlib(L, fns);
        return 1;
}
