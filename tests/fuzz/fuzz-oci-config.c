/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer harness for cella-oci's config.json parser (src/oci/config.c) and a
 * config's own seccomp filter (src/oci/seccomp-oci.c). Beyond "no crash": a config
 * taken holds together (a process has a non-empty args[0] and an absolute cwd, every
 * count matches a NULL-terminated list, ids and umask in range, mount destinations
 * absolute); a config refused says why with "config.json: " first and only printable
 * ASCII (oci_escape); the same bytes as a process.json behave alike. A seccomp
 * section taken compiles, or is refused with a message (never the filesystem:
 * oci_spec_build opens paths and is not called here).
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/strv.h"
#include "oci/config.h"
#include "oci/spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_message(const char *err, const char *prefix)
{
        if (strncmp(err, prefix, strlen(prefix)) != 0)
                abort();
        for (const char *e = err; *e; e++)
                if ((unsigned char)*e < 0x20 || (unsigned char)*e >= 0x7f)
                        abort();
}

static void check_process(const OciProcess *p)
{
        if (!p->args || !p->args[0] || !p->args[0][0] || !p->cwd || p->cwd[0] != '/')
                abort();
        if (p->user.umask > 0777 || p->user.uid == (uid_t)-1 || p->user.gid == (gid_t)-1)
                abort();
        if (p->oom_score_adj < -1000 || p->oom_score_adj > 1000)
                abort();
        for (size_t i = 0; i < p->n_rlimits; i++)
                if (p->rlimits[i].soft > p->rlimits[i].hard)
                        abort();
        STRV_FOREACH (e, p->env)
                if (!strchr(*e, '=') || (*e)[0] == '=')
                        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        char err[512];
        OciConfig *c = NULL;
        OciProcess p;
        int r;

        r = oci_config_parse((const char *)data, size, &c, err, sizeof err);
        if (r == 0) {
                if (!c->oci_version || strncmp(c->oci_version, "1.", 2) != 0)
                        abort();
                if (c->process_set)
                        check_process(&c->process);
                for (size_t i = 0; i < c->n_mounts; i++)
                        if (!c->mounts[i].destination || c->mounts[i].destination[0] != '/')
                                abort();
                for (size_t i = 0; i < c->n_namespaces; i++)
                        if (c->namespaces[i].path && c->namespaces[i].path[0] != '/')
                                abort();
                if (strv_length(c->annotation_keys) != c->n_annotations ||
                    strv_length(c->sysctl_keys) != c->n_sysctls || c->n_mounts > OCI_MAX_ITEMS ||
                    c->n_uid_mappings > 340)
                        abort();
                (void)oci_config_annotation(c, OCI_POLICY_ANNOTATION);
                if (c->seccomp && c->seccomp->n_rules <= 64) {
                        SeccompProgram *prog = NULL;

                        r = oci_seccomp_build(c->seccomp, &prog, err, sizeof err);
                        if (r == 0 && (!prog || prog->prog.len == 0))
                                abort();
                        if (r < 0) {
                                if (r != -EINVAL && r != -ENOMEM && r != -E2BIG)
                                        abort();
                                check_message(err, "config.json: ");
                        }
                        seccomp_program_free(prog);
                }
                oci_config_free(c);
        } else {
                if (c || (r != -EINVAL && r != -E2BIG && r != -ENOMEM))
                        abort();
                check_message(err, "config.json: ");
        }

        r = oci_process_parse((const char *)data, size, &p, err, sizeof err);
        if (r == 0) {
                check_process(&p);
                oci_process_done(&p);
        } else {
                if (r != -EINVAL && r != -E2BIG && r != -ENOMEM)
                        abort();
                check_message(err, "process.json: ");
        }
        return 0;
}
