/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>

#include "policy/ratelimit.h"

/* Bounds keep every product below 2^64: burst * 1e9 <= 1e18, rate * elapsed is
 * capped before multiplying. */
#define RATELIMIT_MAX 1000000000ull

int ratelimit_init(RateLimit *rl, uint64_t rate, uint64_t burst, uint64_t now_ns)
{
        if (rate == 0 || burst == 0 || rate > RATELIMIT_MAX || burst > RATELIMIT_MAX)
                return -EINVAL;
        *rl = (RateLimit){
                .rate = rate,
                .burst = burst,
                .tokens_nano = burst * RATELIMIT_NS_PER_SEC,
                .last_ns = now_ns,
        };
        return 0;
}

static void refill(RateLimit *rl, uint64_t now_ns)
{
        uint64_t full = rl->burst * RATELIMIT_NS_PER_SEC, elapsed, missing;

        if (now_ns <= rl->last_ns)
                return;
        elapsed = now_ns - rl->last_ns;
        rl->last_ns = now_ns;
        missing = full - rl->tokens_nano;
        /* rate tokens/s = rate billionths of a token per ns. Whatever elapsed
         * beyond what fills the bucket adds nothing, so cap it first: no overflow
         * however long the app slept. */
        if (elapsed >= missing / rl->rate + 1) {
                rl->tokens_nano = full;
                return;
        }
        rl->tokens_nano += elapsed * rl->rate;
        if (rl->tokens_nano > full)
                rl->tokens_nano = full;
}

int ratelimit_take(RateLimit *rl, uint64_t now_ns, uint64_t *ret_retry_ns)
{
        refill(rl, now_ns);
        if (rl->tokens_nano >= RATELIMIT_NS_PER_SEC) {
                rl->tokens_nano -= RATELIMIT_NS_PER_SEC;
                return 0;
        }
        rl->refused++;
        if (ret_retry_ns)
                /* ceil((1 token - held) / rate per ns) */
                *ret_retry_ns = (RATELIMIT_NS_PER_SEC - rl->tokens_nano + rl->rate - 1) / rl->rate;
        return -EAGAIN;
}
