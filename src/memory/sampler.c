/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The sampler's cadence after a pressure trigger (sampler.h). */
#include <errno.h>

#include "memory/sampler.h"

#define NS_PER_MS UINT64_C(1000000)

int memory_sampler_init(MemorySampler *s, const MemorySamplerConfig *c)
{
        if (!s || !c || c->short_ms == 0 || c->short_ms > c->long_ms || c->long_ms > c->window_ms)
                return -EINVAL;
        *s = (MemorySampler){.config = *c};
        return 0;
}

uint64_t memory_sampler_triggered(MemorySampler *s, uint64_t now_ns)
{
        s->triggers++;
        s->polling = true;
        s->until_ns = now_ns + (uint64_t)s->config.window_ms * NS_PER_MS;
        /* 0 means idle: a clock at 0 samples at 1 ns. */
        s->next_ns = now_ns ? now_ns : 1;
        return s->next_ns;
}

uint64_t memory_sampler_sampled(MemorySampler *s, uint64_t now_ns, bool high)
{
        uint64_t interval;

        s->samples++;
        if (!s->polling || now_ns >= s->until_ns) {
                /* lmkd stops polling once the window has passed since the event. */
                s->polling = false;
                s->next_ns = 0;
                return 0;
        }
        interval = (uint64_t)(high ? s->config.short_ms : s->config.long_ms) * NS_PER_MS;
        s->next_ns = now_ns + interval;
        return s->next_ns;
}

uint64_t memory_sampler_hold(MemorySampler *s, uint64_t now_ns)
{
        s->polling = true;
        s->until_ns = now_ns + (uint64_t)s->config.window_ms * NS_PER_MS;
        s->next_ns = now_ns + (uint64_t)s->config.long_ms * NS_PER_MS;
        return s->next_ns;
}

uint64_t memory_sampler_deadline(const MemorySampler *s)
{
        return s->next_ns;
}

bool memory_sampler_idle(const MemorySampler *s)
{
        return !s->polling;
}
