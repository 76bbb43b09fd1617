/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer harness for the host control channel's parser (src/lua/hostctl.c):
 * what a packed group's cella-lua host reads from the supervisor, any bytes in.
 * Byte 0 says how many fds came with the packet (0..3) and the host's slots
 * (1..64); the rest is the packet. A message that parses names a slot below the
 * host's, and for a JOIN a run other than 0 and an app with an id, an absolute
 * entry and no fds of its own; for a PRIORITY no fds, a known class and a priority
 * in -20..19.
 * Build: CC=clang meson setup build-fuzz -Dfuzzing=true -Dtests=false
 * Run:   build-fuzz/tests/fuzz/fuzz-hostctl tests/fuzz/corpus/hostctl
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "lua/hostctl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        CLuaCtlMsg m;
        char err[256];
        unsigned n_fds;
        uint32_t slots;

        if (size < 1)
                return 0;
        n_fds = data[0] & 3u;
        slots = 1u + (data[0] >> 2);
        if (clua_ctl_parse(data + 1, size - 1, n_fds, slots, &m, err, sizeof err) < 0)
                return 0;
        if (m.index >= slots || m.n_fds != n_fds || (m.type == CLUA_CTL_JOIN && m.run == 0))
                abort();
        if (m.type == CLUA_CTL_JOIN &&
            (!m.app.id || !m.app.entry || m.app.entry[0] != '/' || m.app.channel_fd != -1 ||
             m.app.log_fd != -1 || m.app.slot != -1 || n_fds < 1 || n_fds > 2))
                abort();
        if (m.type == CLUA_CTL_PRIORITY &&
            (n_fds != 0 || m.json || m.cpu_class < CLUA_CPU_CLASS_FOREGROUND ||
             m.cpu_class >= _CLUA_CPU_CLASS_MAX || m.priority < -20 || m.priority > 19))
                abort();
        if (m.type != CLUA_CTL_JOIN && m.type != CLUA_CTL_STOP && m.type != CLUA_CTL_PRIORITY)
                abort();
        clua_ctl_msg_done(&m);
        return 0;
}
