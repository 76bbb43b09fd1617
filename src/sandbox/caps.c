/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Capabilities (docs/design.md section 5 step 4): every set emptied, securebits locked so
 * no later uid change or exec can bring any back, and the result checked; or, for an
 * OCI jail that lists them (SandboxSpec.caps, docs/oci.md), exactly the sets asked for.
 */
#include <errno.h>
#include <inttypes.h>
#include <string.h>
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
 * no_new_privs (unless no_new_privs is false: SandboxSpec.allow_new_privs). Called
 * after caps_lock_securebits() and the id switch (with SECBIT_NO_SETUID_FIXUP the
 * switch kept CAP_SETPCAP, which PR_CAPBSET_DROP needs).
 * Returns 0 or -errno with err filled; -EPERM if any capability survived.
 */
int caps_drop_all(SandboxError *err, bool no_new_privs)
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
        if (no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return sandbox_fail(err, SANDBOX_STEP_CAPS, negative_errno(), "set no_new_privs");
        return 0;
}

/* The highest capability this kernel knows (the bounding set's last readable bit). */
static unsigned long cap_last(void)
{
        unsigned long cap = 0;

        while (cap < 63 && prctl(PR_CAPBSET_READ, cap + 1, 0, 0, 0) >= 0)
                cap++;
        return cap;
}

/*
 * Capability sets as the caller asked (SandboxSpec.caps), runc's order
 * (libcontainer/init_linux.go finalizeNamespace): the bounding set reduced while
 * every capability is still held (PR_CAPBSET_DROP needs CAP_SETPCAP), KEEPCAPS so
 * that the uid change keeps the permitted set (capabilities(7), "Effect of user ID
 * changes on capabilities"); after it (caps_set_finish) permitted, effective and
 * inheritable by capset, then the ambient set raised. Securebits are not locked,
 * as runc does not lock them: the app's root keeps root's meaning at exec.
 */
static int caps_set_begin(const SandboxCaps *c, SandboxError *err)
{
        unsigned long last = cap_last();

        for (unsigned long cap = 0; cap <= last; cap++) {
                if (c->bounding & (UINT64_C(1) << cap))
                        continue;
                if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0)
                        return sandbox_fail(err, SANDBOX_STEP_CAPS, negative_errno(),
                                            "drop capability %lu from the bounding set", cap);
        }
        if (prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0)
                return sandbox_fail(err, SANDBOX_STEP_CAPS, negative_errno(), "keep capabilities");
        return 0;
}

static int caps_set_finish(const SandboxCaps *c, bool no_new_privs, SandboxError *err)
{
        struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
        struct __user_cap_data_struct d[2] = {};
        unsigned long last = cap_last();
        uint64_t known = last >= 63 ? UINT64_MAX : (UINT64_C(1) << (last + 1)) - 1, eff, perm, inh;

        if (prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0) < 0)
                return sandbox_fail(err, SANDBOX_STEP_CAPS, negative_errno(), "clear keepcaps");
        for (int i = 0; i < 2; i++) {
                d[i].effective = (uint32_t)(c->effective >> (32 * i));
                d[i].permitted = (uint32_t)(c->permitted >> (32 * i));
                d[i].inheritable = (uint32_t)(c->inheritable >> (32 * i));
        }
        if (syscall(SYS_capset, &h, d) < 0)
                return sandbox_fail(err, SANDBOX_STEP_CAPS, negative_errno(),
                                    "set capabilities (effective %#" PRIx64 ", permitted %#" PRIx64
                                    ", inheritable %#" PRIx64 ")",
                                    c->effective, c->permitted, c->inheritable);
        if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0)
                return sandbox_fail(err, SANDBOX_STEP_CAPS, negative_errno(), "clear ambient set");
        for (unsigned long cap = 0; cap <= last; cap++)
                if ((c->ambient & (UINT64_C(1) << cap)) &&
                    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, cap, 0, 0) < 0)
                        return sandbox_fail(err, SANDBOX_STEP_CAPS, negative_errno(),
                                            "raise ambient capability %lu", cap);
        /* Check, don't trust. */
        memset(d, 0, sizeof d);
        if (syscall(SYS_capget, &h, d) < 0)
                return sandbox_fail(err, SANDBOX_STEP_CAPS, negative_errno(), "capget");
        eff = d[0].effective | (uint64_t)d[1].effective << 32;
        perm = d[0].permitted | (uint64_t)d[1].permitted << 32;
        inh = d[0].inheritable | (uint64_t)d[1].inheritable << 32;
        if (eff != (c->effective & known) || perm != (c->permitted & known) ||
            inh != (c->inheritable & known))
                return sandbox_fail(err, SANDBOX_STEP_CAPS, -EPERM,
                                    "capabilities are not the ones asked for");
        if (no_new_privs && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
                return sandbox_fail(err, SANDBOX_STEP_CAPS, negative_errno(), "set no_new_privs");
        return 0;
}

int creds_begin(const AppCreds *c, SandboxError *err)
{
        if (c->n_groups > 0 && syscall(SYS_setgroups, c->n_groups, c->groups) < 0)
                return sandbox_fail(err, SANDBOX_STEP_USERNS, negative_errno(),
                                    "set %zu supplementary groups", c->n_groups);
        return c->caps ? caps_set_begin(c->caps, err) : caps_lock_securebits(err);
}

int creds_finish(const AppCreds *c, SandboxError *err)
{
        int r = userns_become(c->uid, c->gid, err);

        if (r < 0)
                return r;
        return c->caps ? caps_set_finish(c->caps, !c->allow_new_privs, err)
                       : caps_drop_all(err, !c->allow_new_privs);
}
