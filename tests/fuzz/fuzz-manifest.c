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

/*
 * Aborts unless every field the parser's tables fill holds a value its row allows:
 * an enum one of its values, a number its default or within its bounds.
 */
static void check_rows(const Manifest *m)
{
        const ManifestEnumKey *enums;
        const ManifestNumberKey *numbers;
        size_t n;

        enums = manifest_enum_keys(&n);
        for (size_t i = 0; i < n; i++) {
                int v = *(const int *)((const char *)m + enums[i].offset);

                if (v < 0 || (size_t)v >= enums[i].n_values)
                        abort();
        }
        numbers = manifest_number_keys(&n);
        for (size_t i = 0; i < n; i++) {
                const ManifestNumberKey *k = &numbers[i];
                const char *p = (const char *)m + k->offset;

                if (k->size == sizeof(int)) {
                        int v = *(const int *)p;

                        if (v != k->default_value &&
                            (v < k->min || (v > 0 && (uint64_t)v > k->max)))
                                abort();
                } else {
                        uint64_t v = *(const uint64_t *)p;

                        if (v != (uint64_t)k->default_value && (v < (uint64_t)k->min || v > k->max))
                                abort();
                }
        }
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
        check_rows(m);
        manifest_free(m);
        return 0;
}
