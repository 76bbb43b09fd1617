/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * A config's own seccomp filter (linux.seccomp, config-linux.md "Seccomp") built with
 * libseccomp, for policy compat (spec.h oci_seccomp_build). Follows runc's reading of
 * the config: a syscall name libseccomp does not know is skipped; a rule whose action
 * is the default one is skipped (libseccomp refuses it); argument conditions on
 * distinct arguments are ANDed in one rule, several on the same argument become one
 * rule each. Differences, documented in docs/oci.md: SCMP_ACT_NOTIFY and
 * listenerPath (a seccomp agent) are refused; flags are not applied (the program is
 * loaded by the sandbox library with flags 0); calls of an architecture the config
 * does not list kill the thread (libseccomp's default bad-arch action).
 */
#include <ctype.h>
#include <stdarg.h>
#include <errno.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/macro.h"
#include "oci/spec.h"

static int failf(char *err, size_t errlen, int r, const char *fmt, ...) _printf_(4, 5);

static int failf(char *err, size_t errlen, int r, const char *fmt, ...)
{
        va_list ap;

        if (err && errlen) {
                char msg[512];

                va_start(ap, fmt);
                vsnprintf(msg, sizeof msg, fmt, ap);
                va_end(ap);
                oci_escape(msg, err, errlen); /* it quotes the config's names */
        }
        return r;
}

/* The libseccomp action for an OCI action with its errno. */
static int action_of(OciSeccompAction a, unsigned errno_ret, uint32_t *ret)
{
        switch (a) {
        case OCI_SCMP_KILL:
                *ret = SCMP_ACT_KILL_THREAD;
                return 0;
        case OCI_SCMP_KILL_PROCESS:
                *ret = SCMP_ACT_KILL_PROCESS;
                return 0;
        case OCI_SCMP_TRAP:
                *ret = SCMP_ACT_TRAP;
                return 0;
        case OCI_SCMP_ERRNO:
                *ret = SCMP_ACT_ERRNO(errno_ret);
                return 0;
        case OCI_SCMP_TRACE:
                *ret = SCMP_ACT_TRACE(errno_ret);
                return 0;
        case OCI_SCMP_ALLOW:
                *ret = SCMP_ACT_ALLOW;
                return 0;
        case OCI_SCMP_LOG:
                *ret = SCMP_ACT_LOG;
                return 0;
        case OCI_SCMP_NOTIFY:
                return -EOPNOTSUPP;
        }
        return -EINVAL;
}

/* "SCMP_ARCH_X86_64" to libseccomp's token, or 0 if libseccomp does not know it. */
static uint32_t arch_of(const char *name)
{
        char lower[32];
        size_t i;

        if (strncmp(name, "SCMP_ARCH_", 10) != 0)
                return 0;
        name += 10;
        for (i = 0; name[i] && i < sizeof lower - 1; i++)
                lower[i] = (char)tolower((unsigned char)name[i]);
        lower[i] = 0;
        return seccomp_arch_resolve_name(lower);
}

/* ctx as a SeccompProgram (seccomp_filter_export()). */
static int export_program(scmp_filter_ctx ctx, SeccompProgram **ret)
{
        _cleanup_free_ struct sock_filter *insns = NULL;
        SeccompProgram *p;
        size_t len;
        int r;

        r = seccomp_filter_export(ctx, &insns, &len);
        if (r < 0)
                return r;
        p = calloc(1, sizeof *p);
        if (!p)
                return -ENOMEM;
        p->prog.len = (unsigned short)len;
        p->prog.filter = TAKE_PTR(insns);
        *ret = p;
        return 0;
}

static bool same_index_twice(const OciSeccompRule *rule)
{
        for (size_t i = 0; i < rule->n_args; i++)
                for (size_t j = 0; j < i; j++)
                        if (rule->args[i].index == rule->args[j].index)
                                return true;
        return false;
}

static int rule_add(scmp_filter_ctx ctx, const OciSeccompRule *rule, size_t i, uint32_t action,
                    int nr, const char *name, char *err, size_t errlen)
{
        struct scmp_arg_cmp cmp[6];
        int r;

        for (size_t k = 0; k < rule->n_args && k < ELEMENTSOF(cmp); k++)
                cmp[k] = (struct scmp_arg_cmp){.arg = rule->args[k].index,
                                               .op = (enum scmp_compare)rule->args[k].op,
                                               .datum_a = rule->args[k].value,
                                               .datum_b = rule->args[k].value_two};
        if (rule->n_args == 0 || !same_index_twice(rule))
                r = seccomp_rule_add_array(ctx, action, nr, (unsigned)rule->n_args, cmp);
        else {
                r = 0;
                for (size_t k = 0; k < rule->n_args && r >= 0; k++)
                        r = seccomp_rule_add_array(ctx, action, nr, 1, &cmp[k]);
        }
        if (r < 0)
                return failf(err, errlen, r == -ENOMEM ? r : -EINVAL,
                             "config.json: linux.seccomp.syscalls[%zu]: %s: %s", i, name,
                             strerror(-r));
        return 0;
}

int oci_seccomp_build(const OciSeccomp *s, SeccompProgram **ret, char *err, size_t errlen)
{
        scmp_filter_ctx ctx = NULL;
        uint32_t def;
        int r;

        if (err && errlen)
                err[0] = 0;
        if (!ret)
                return -EINVAL;
        if (!s) {
                ctx = seccomp_init(SCMP_ACT_ALLOW);
                if (!ctx)
                        return failf(err, errlen, -ENOMEM, "out of memory");
                r = export_program(ctx, ret);
                seccomp_release(ctx);
                return r < 0 ? failf(err, errlen, r, "linux.seccomp: export: %s", strerror(-r)) : 0;
        }
        if (s->listener_path)
                return failf(err, errlen, -EINVAL,
                             "config.json: linux.seccomp.listenerPath: seccomp agents are not "
                             "supported");
        if (action_of(s->default_action, s->default_errno_ret, &def) < 0)
                return failf(err, errlen, -EINVAL,
                             "config.json: linux.seccomp.defaultAction: SCMP_ACT_NOTIFY needs a "
                             "seccomp agent: not supported");
        ctx = seccomp_init(def);
        if (!ctx)
                return failf(err, errlen, -ENOMEM, "out of memory");
        for (size_t i = 0; s->architectures && s->architectures[i]; i++) {
                uint32_t arch = arch_of(s->architectures[i]);

                if (arch == 0) {
                        r = failf(err, errlen, -EINVAL,
                                  "config.json: linux.seccomp.architectures[%zu]: unknown "
                                  "architecture \"%.32s\"",
                                  i, s->architectures[i]);
                        goto out;
                }
                r = seccomp_arch_add(ctx, arch);
                if (r < 0 && r != -EEXIST) {
                        r = failf(err, errlen, r == -ENOMEM ? r : -EINVAL,
                                  "config.json: linux.seccomp.architectures[%zu]: %s", i,
                                  strerror(-r));
                        goto out;
                }
        }
        for (size_t i = 0; i < s->n_rules; i++) {
                const OciSeccompRule *rule = &s->rules[i];
                uint32_t action;

                if (action_of(rule->action, rule->errno_ret, &action) < 0) {
                        r = failf(err, errlen, -EINVAL,
                                  "config.json: linux.seccomp.syscalls[%zu].action: "
                                  "SCMP_ACT_NOTIFY needs a seccomp agent: not supported",
                                  i);
                        goto out;
                }
                if (action == def)
                        continue; /* libseccomp refuses a rule that is the default */
                for (size_t n = 0; rule->names[n]; n++) {
                        int nr = seccomp_syscall_resolve_name(rule->names[n]);

                        if (nr == __NR_SCMP_ERROR)
                                continue; /* unknown to libseccomp: skipped, as runc does */
                        r = rule_add(ctx, rule, i, action, nr, rule->names[n], err, errlen);
                        if (r < 0)
                                goto out;
                }
        }
        r = export_program(ctx, ret);
        if (r < 0)
                r = failf(err, errlen, r, "config.json: linux.seccomp: export: %s", strerror(-r));
out:
        seccomp_release(ctx);
        return r < 0 ? r : 0;
}
