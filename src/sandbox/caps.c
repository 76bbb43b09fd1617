/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Capabilities (docs/design.md section 5 step 4): every set emptied, securebits locked so
 * no later uid change or exec can bring any back, and the result checked.
 */
#include <errno.h>
#include <linux/capability.h>
#include <linux/securebits.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/macro.h"
#include "sandbox/sandbox-internal.h"

static int capset_zero(void)
{
        struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
        struct __user_cap_data_struct d[2] = {};

        return syscall(SYS_capset, &h, d) < 0 ? negative_errno() : 0;
}

static int caps_all_zero(void)
{
        struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
        struct __user_cap_data_struct d[2] = {};

        if (syscall(SYS_capget, &h, d) < 0)
                return negative_errno();
        for (int i = 0; i < 2; i++)
                if (d[i].effective || d[i].permitted || d[i].inheritable)
                        return -EPERM;
        return 0;
}

/*
 * Locks securebits. Called in the sandbox's user namespace while holding its
 * capabilities (PR_SET_SECUREBITS needs CAP_SETPCAP), before the ids change.
 * Returns 0 or -errno with err filled.
 */
int caps_lock_securebits(SandboxError *err)
{
        /* NOROOT: uid 0 gains nothing at exec; NO_SETUID_FIXUP: uid changes do not
         * touch the sets (we empty them ourselves); NO_CAP_AMBIENT_RAISE; all
         * locked, so the app cannot undo them. Source: capabilities(7). */
        const unsigned long bits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED | SECBIT_NO_SETUID_FIXUP |
                                   SECBIT_NO_SETUID_FIXUP_LOCKED | SECBIT_KEEP_CAPS_LOCKED |
                                   SECBIT_NO_CAP_AMBIENT_RAISE | SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;

        if (prctl(PR_SET_SECUREBITS, bits, 0, 0, 0) < 0)
                return sandbox_fail(err, SANDBOX_STEP_CAPS, negative_errno(), "lock securebits");
        return 0;
}

/*
 * Empties the bounding, ambient, inheritable, permitted and effective sets and sets
 * no_new_privs. Called after caps_lock_securebits() and the id switch (with
 * SECBIT_NO_SETUID_FIXUP the switch kept CAP_SETPCAP, which PR_CAPBSET_DROP needs).
 * Returns 0 or -errno with err filled; -EPERM if any capability survived.
 */
int caps_drop_all(SandboxError *err)
{
        int r;

        /* Loop until the kernel says the capability does not exist, so caps newer
         * than our headers are dropped too. */
        for (unsigned long cap = 0;; cap++) {
                if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) < 0) {
                        if (errno == EINVAL)
                                break;
                        return sandbox_fail(err, SANDBOX_STEP_CAPS, negative_errno(),
                                            "read bounding set");
                }
                if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
                        return sandbox_fail(err, SANDBOX_STEP_CAPS, negative_errno(),
                                            "drop capability %lu", cap);
        }
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
                return sandbox_fail(err, SANDBOX_STEP_CAPS, negative_errno(), "clear ambient set");
        r = capset_zero();
        if (r < 0)
                return sandbox_fail(err, SANDBOX_STEP_CAPS, r, "empty capability sets");
        r = caps_all_zero();
        if (r < 0)
                return sandbox_fail(err, SANDBOX_STEP_CAPS, r, "capabilities survived the drop");
        if (prctl(PR_CAPBSET_READ, 0 /* CAP_CHOWN */, 0, 0, 0) != 0)
                return sandbox_fail(err, SANDBOX_STEP_CAPS, -EPERM, "bounding set not empty");
        if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return sandbox_fail(err, SANDBOX_STEP_CAPS, negative_errno(), "set no_new_privs");
        return 0;
}
