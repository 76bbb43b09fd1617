/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libFuzzer harness for the manifest parser: any bytes in, either a Manifest that holds
 * the documented invariants or an error whose message is bounded and printable.
 * Build: CC=clang meson setup build-fuzz -Dfuzzing=true -Dtests=false
 * Run:   build-fuzz/tests/fuzz/fuzz-manifest -dict=tests/fuzz/manifest.dict \
 *            tests/fuzz/corpus/manifest
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/strv.h"
#include "policy/manifest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts (a crash libFuzzer reports) if s is not a NUL-terminated string of printable bytes. */
static void check_printable(const char *s, size_t bufsize)
{
        size_t len = strnlen(s, bufsize);

        if (len == bufsize)
                abort();
        for (size_t i = 0; i < len; i++)
                if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
                        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        Manifest *m = NULL;
        ManifestError err;
        int r;

        r = manifest_parse((const char *)data, size, "fuzz.json", &m, &err);
        if (r < 0) {
                if (m)
                        abort();
                check_printable(err.key, sizeof err.key);
                check_printable(err.message, sizeof err.message);
                return 0;
        }
        /* What the rest of cella relies on. */
        if (!m || !manifest_id_is_valid(m->id) || !m->name || !m->version || !m->entry ||
            m->entry[0] == '/' || !m->args || !m->depends || !m->permissions || !m->env ||
            strv_length(m->args) > MANIFEST_LIST_MAX ||
            strv_length(m->depends) > MANIFEST_LIST_MAX ||
            strv_length(m->permissions) > MANIFEST_LIST_MAX ||
            strv_length(m->env) > MANIFEST_LIST_MAX || !manifest_runtime_to_string(m->runtime) ||
            !manifest_kind_to_string(m->kind) || !manifest_restart_to_string(m->restart))
                abort();
        STRV_FOREACH (d, m->depends)
                if (!manifest_id_is_valid(*d))
                        abort();
        STRV_FOREACH (e, m->env)
                if (!strchr(*e, '='))
                        abort();
        manifest_free(m);
        return 0;
}
