/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella-lua ENTRY.lua [ARGS...]: runs one Lua app (docs/lua-api.md "Runtime").
 *
 * Limits come from the environment the supervisor sets (src/supervisor/launch.c;
 * a manifest cannot set CELLA_* variables):
 *   CELLA_LUA_MEMORY        memory cap in bytes (default 64 MiB)
 *   CELLA_LUA_CPU_MS        CPU budget of one callback in ms (default 5000)
 *   CELLA_LUA_CPU_TOTAL_MS  CPU budget of the app's life in ms (default none)
 * The main chunk runs with ARGS as `...`; then, while the app has callbacks
 * registered, the event loop dispatches them; then cella-lua exits 0.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lauxlib.h>

#include "lua/env.h"

/* Largest entry file, bytes: source code, not data. */
#define ENTRY_MAX (16u * 1024 * 1024)
/* Largest CPU budget accepted from the environment: one day, in ms. */
#define BUDGET_MS_MAX (24ull * 3600 * 1000)

static int parse_env_u64(const char *name, uint64_t max, uint64_t *ret)
{
        const char *v = getenv(name);
        char *end;
        unsigned long long n;

        if (!v || !*v)
                return 0;
        errno = 0;
        n = strtoull(v, &end, 10);
        if (errno || *end || v[0] == '-' || n == 0 || n > max) {
                fprintf(stderr, "cella-lua: %s=%s: expected an integer from 1 to %" PRIu64 "\n",
                        name, v, max);
                return -EINVAL;
        }
        *ret = n;
        return 1;
}

static int read_entry(const char *path, char **ret, size_t *ret_len)
{
        struct stat st;
        char *buf;
        size_t got = 0;
        int fd;

        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > ENTRY_MAX) {
                int e = errno;

                close(fd);
                return S_ISREG(st.st_mode) ? (st.st_size > ENTRY_MAX ? -EFBIG : -e) : -EISDIR;
        }
        buf = malloc((size_t)st.st_size + 1);
        if (!buf) {
                close(fd);
                return -ENOMEM;
        }
        while (got < (size_t)st.st_size) {
                ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        break;
                got += (size_t)n;
        }
        close(fd);
        *ret = buf;
        *ret_len = got;
        return 0;
}

static int exit_for(CLuaFault f)
{
        switch (f) {
        case CLUA_OK:
                return 0;
        case CLUA_MEMORY:
                return CLUA_EXIT_MEMORY;
        case CLUA_CPU_CALLBACK:
        case CLUA_CPU_TOTAL:
                return CLUA_EXIT_CPU;
        default:
                return CLUA_EXIT_ERROR;
        }
}

static int report(CLuaFault f, char *msg)
{
        if (f != CLUA_OK)
                fprintf(stderr, "cella-lua: %s\n", msg ?: "out of memory");
        free(msg);
        return exit_for(f);
}

int main(int argc, char **argv)
{
        CLuaOptions opt = {};
        CLuaApp *app = NULL;
        uint64_t v;
        char *src = NULL, *msg = NULL, *name = NULL;
        size_t len = 0;
        CLuaFault f;
        int r, code;

        if (argc < 2 || argv[1][0] == '-') {
                fprintf(stderr, "usage: cella-lua ENTRY.lua [ARGS...]\n");
                return CLUA_EXIT_USAGE;
        }
        if (argc - 2 > 200) {
                fprintf(stderr, "cella-lua: too many arguments (at most 200)\n");
                return CLUA_EXIT_USAGE;
        }
        r = parse_env_u64("CELLA_LUA_MEMORY", SIZE_MAX / 2, &v);
        if (r < 0)
                return CLUA_EXIT_USAGE;
        if (r > 0)
                opt.memory_cap = (size_t)v;
        r = parse_env_u64("CELLA_LUA_CPU_MS", BUDGET_MS_MAX, &v);
        if (r < 0)
                return CLUA_EXIT_USAGE;
        if (r > 0)
                opt.callback_ns = v * 1000000u;
        r = parse_env_u64("CELLA_LUA_CPU_TOTAL_MS", BUDGET_MS_MAX, &v);
        if (r < 0)
                return CLUA_EXIT_USAGE;
        if (r > 0)
                opt.total_ns = v * 1000000u;

        r = read_entry(argv[1], &src, &len);
        if (r < 0) {
                fprintf(stderr, "cella-lua: %s: %s\n", argv[1], strerror(-r));
                return CLUA_EXIT_USAGE;
        }
        r = clua_app_new(&opt, &app);
        if (r < 0) {
                free(src);
                fprintf(stderr, "cella-lua: cannot create the Lua state: %s\n", strerror(-r));
                return r == -ENOMEM ? CLUA_EXIT_MEMORY : CLUA_EXIT_INTERNAL;
        }
        if (asprintf(&name, "@%s", argv[1]) < 0) {
                free(src);
                clua_app_free(app);
                return CLUA_EXIT_INTERNAL;
        }
        f = clua_load(app, src, len, name, &msg);
        free(name);
        free(src);
        if (f != CLUA_OK) {
                code = report(f, msg);
                clua_app_free(app);
                return code;
        }
        if (!lua_checkstack(app->L, argc)) {
                clua_app_free(app);
                return report(CLUA_MEMORY, NULL);
        }
        for (int i = 2; i < argc; i++)
                lua_pushstring(app->L, argv[i]);
        f = clua_call(app, argc - 2, 0, &msg);

        /* The event loop: later slices register timers, bus subscriptions and call
         * replies (app->n_sources) and a dispatch function that waits for one event
         * and runs its callback. */
        while (f == CLUA_OK && app->n_sources > 0) {
                if (!app->dispatch) {
                        fprintf(stderr, "cella-lua: callbacks registered but no dispatcher\n");
                        clua_app_free(app);
                        return CLUA_EXIT_INTERNAL;
                }
                r = app->dispatch(app, app->dispatch_ud);
                if (r < 0) {
                        fprintf(stderr, "cella-lua: event loop: %s\n", strerror(-r));
                        clua_app_free(app);
                        return CLUA_EXIT_INTERNAL;
                }
        }
        fflush(stdout);
        code = report(f, msg);
        clua_app_free(app);
        return code;
}
