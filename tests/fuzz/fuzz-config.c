/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer harness for cellad's config parser (src/memory/config.c,
 * docs/config.md). Beyond "no crash": a config taken holds together (the sampler's
 * intervals within the PSI window, the fallback window no shorter, every level's
 * figures in range and ordered, a budget of 0 or at least 16M), and a config
 * refused comes with a message that names the file.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "memory/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        ManagerConfig c;
        char *err = NULL;
        int r;

        r = manager_config_parse("fuzz.conf", (const char *)data, size, &c, &err);
        if (r == 0) {
                if (err || memory_level_config_check(&c.levels, NULL) < 0 ||
                    memory_policy_config_check(&c.policy, NULL) < 0 || c.sample_short_ms == 0 ||
                    c.sample_short_ms > c.sample_long_ms || c.sample_long_ms > c.psi_window_ms ||
                    c.psi_fallback_window_ms < c.psi_window_ms || c.psi_window_ms < 500 ||
                    c.psi_fallback_window_ms > 10000 ||
                    (c.memory_total && c.memory_total < MANAGER_CONFIG_TOTAL_MIN))
                        abort();
                return 0;
        }
        if (r == -EINVAL && (!err || strncmp(err, "fuzz.conf: ", 11) != 0))
                abort();
        if (r != -EINVAL && r != -ENOMEM)
                abort();
        free(err);
        return 0;
}
