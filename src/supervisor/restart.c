/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <signal.h>
#include <sys/wait.h>

#include "supervisor/restart.h"

bool restart_wanted(ManifestRestart policy, const SandboxExit *exit)
{
        switch (policy) {
        case MANIFEST_RESTART_ALWAYS:
                return true;
        case MANIFEST_RESTART_ON_FAILURE:
                if (exit->low_memory)
                        return false;
                return exit->code != CLD_EXITED || exit->status != 0;
        default:
                return false;
        }
}

const char *restart_reason(const SandboxExit *exit)
{
        if (exit->low_memory)
                return "low-memory";
        if (exit->oom_killed)
                return "oom";
        if (exit->code != CLD_EXITED || exit->status != 0)
                return "crash";
        return "exit";
}

RestartDecision restart_decide(RestartState *st, ManifestRestart policy, const SandboxExit *exit,
                               uint64_t started_ns, uint64_t now_ns, uint64_t *ret_delay_ns)
{
        unsigned recent = 0;

        if (!restart_wanted(policy, exit))
                return RESTART_NO;
        if (exit->low_memory) {
                *ret_delay_ns = st->delay_ns ?: RESTART_DELAY_MIN;
                return RESTART_LATER;
        }
        /* A run that lasted resets the backoff: it was not a crash loop. */
        if (st->delay_ns == 0 || (now_ns >= started_ns && now_ns - started_ns >= RESTART_STABLE_NS))
                st->delay_ns = RESTART_DELAY_MIN;
        for (unsigned i = 0; i < RESTART_BURST && i < st->n_starts; i++)
                if (now_ns >= st->starts_ns[i] && now_ns - st->starts_ns[i] < RESTART_INTERVAL_NS)
                        recent++;
        if (recent >= RESTART_BURST)
                return RESTART_GIVE_UP;
        st->starts_ns[st->n_starts % RESTART_BURST] = now_ns;
        st->n_starts++;
        *ret_delay_ns = st->delay_ns;
        st->delay_ns = st->delay_ns * 2 > RESTART_DELAY_MAX ? RESTART_DELAY_MAX : st->delay_ns * 2;
        return RESTART_LATER;
}
