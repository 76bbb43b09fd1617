/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/macro.h"
#include "base/strv.h"
#include "supervisor/bootorder.h"

typedef struct Graph {
        Manifest *const *m;
        size_t n;
        size_t *sorted; /* indices sorted by id, for lookups */
        size_t *n_deps; /* per app: dependencies not yet started */
        size_t **users; /* per app: the apps that depend on it */
        size_t *n_users;
} Graph;

static int cmp_index(const void *a, const void *b, void *userdata)
{
        Manifest *const *m = userdata;

        return strcmp(m[*(const size_t *)a]->id, m[*(const size_t *)b]->id);
}

/* Index of the manifest with this id, or -1. Binary search over g->sorted. */
static ssize_t find(const Graph *g, const char *id)
{
        size_t lo = 0, hi = g->n;

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                int c = strcmp(g->m[g->sorted[mid]]->id, id);

                if (c == 0)
                        return (ssize_t)g->sorted[mid];
                if (c < 0)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return -1;
}

static void graph_done(Graph *g)
{
        for (size_t i = 0; g->users && i < g->n; i++)
                free(g->users[i]);
        free(g->users);
        free(g->n_users);
        free(g->n_deps);
        free(g->sorted);
}

/*
 * Follows not-yet-started dependencies from start until one repeats and writes the
 * loop into buf. Every app left unstarted after Kahn's algorithm has such a
 * dependency (else it would have started), so the walk ends in a cycle within n
 * steps.
 */
static void describe_cycle(const Graph *g, const size_t *wave, size_t start, char *buf, size_t len)
{
        _cleanup_free_ size_t *seen_at = calloc(g->n, sizeof(size_t));
        _cleanup_free_ size_t *path = calloc(g->n + 1, sizeof(size_t));
        size_t k = 0, cur = start, first;
        int w = 0;

        buf[0] = 0;
        if (!seen_at || !path)
                return;
        while (!seen_at[cur]) {
                seen_at[cur] = ++k;
                path[k - 1] = cur;
                STRV_FOREACH (d, g->m[cur]->depends) {
                        ssize_t j = find(g, *d);

                        if (j >= 0 && wave[j] == SIZE_MAX) {
                                cur = (size_t)j;
                                break;
                        }
                }
        }
        first = seen_at[cur] - 1;
        for (size_t i = first; i < k && w >= 0 && (size_t)w < len; i++)
                w += snprintf(buf + w, len - (size_t)w, "%s -> ", g->m[path[i]]->id);
        if (w >= 0 && (size_t)w < len)
                snprintf(buf + w, len - (size_t)w, "%s", g->m[cur]->id);
        if (strlen(buf) == len - 1)
                memcpy(buf + len - 4, "...", 4);
}

int boot_order_compute(Manifest *const *manifests, size_t n, BootOrder *ret, BootOrderError *err)
{
        Graph g = {.m = manifests, .n = n};
        BootOrder b = {.n = n};
        size_t *ready = NULL, n_ready = 0, placed = 0;
        int r = -ENOMEM;

        *err = (BootOrderError){};
        if (n > BOOT_APPS_MAX)
                return -EINVAL;
        g.sorted = calloc(n + 1, sizeof(size_t));
        g.n_deps = calloc(n + 1, sizeof(size_t));
        g.users = calloc(n + 1, sizeof(size_t *));
        g.n_users = calloc(n + 1, sizeof(size_t));
        b.order = calloc(n + 1, sizeof(size_t));
        b.wave_of = calloc(n + 1, sizeof(size_t));
        ready = calloc(n + 1, sizeof(size_t));
        if (!g.sorted || !g.n_deps || !g.users || !g.n_users || !b.order || !b.wave_of || !ready)
                goto out;

        for (size_t i = 0; i < n; i++)
                g.sorted[i] = i;
        qsort_r(g.sorted, n, sizeof(size_t), cmp_index, (void *)manifests);
        for (size_t i = 1; i < n; i++)
                if (strcmp(manifests[g.sorted[i]]->id, manifests[g.sorted[i - 1]]->id) == 0) {
                        snprintf(err->app, sizeof err->app, "%s", manifests[g.sorted[i]]->id);
                        snprintf(err->other, sizeof err->other, "%s", manifests[g.sorted[i]]->id);
                        r = -EEXIST;
                        goto out;
                }

        /* Edges dependency -> user; the parser has already refused duplicate
         * and self dependencies. */
        for (size_t i = 0; i < n; i++)
                STRV_FOREACH (d, manifests[i]->depends) {
                        ssize_t j = find(&g, *d);
                        size_t *nu;

                        if (j < 0) {
                                snprintf(err->app, sizeof err->app, "%s", manifests[i]->id);
                                snprintf(err->other, sizeof err->other, "%s", *d);
                                r = -ENOENT;
                                goto out;
                        }
                        nu = realloc(g.users[j], (g.n_users[j] + 1) * sizeof(size_t));
                        if (!nu)
                                goto out;
                        g.users[j] = nu;
                        g.users[j][g.n_users[j]++] = i;
                        g.n_deps[i]++;
                }

        for (size_t i = 0; i < n; i++) {
                b.wave_of[i] = SIZE_MAX;
                if (g.n_deps[i] == 0)
                        ready[n_ready++] = i;
        }
        /* One wave at a time: everything ready now, then what that unblocks. */
        while (n_ready > 0) {
                size_t wave_start = placed;

                for (size_t k = 0; k < n_ready; k++) {
                        b.order[placed++] = ready[k];
                        b.wave_of[ready[k]] = b.n_waves;
                }
                n_ready = 0;
                for (size_t k = wave_start; k < placed; k++) {
                        size_t i = b.order[k];

                        for (size_t u = 0; u < g.n_users[i]; u++)
                                if (--g.n_deps[g.users[i][u]] == 0)
                                        ready[n_ready++] = g.users[i][u];
                }
                b.n_waves++;
        }
        if (placed < n) {
                for (size_t i = 0; i < n; i++)
                        if (b.wave_of[i] == SIZE_MAX) {
                                snprintf(err->app, sizeof err->app, "%s", manifests[i]->id);
                                describe_cycle(&g, b.wave_of, i, err->cycle, sizeof err->cycle);
                                break;
                        }
                r = -ELOOP;
                goto out;
        }
        *ret = b;
        b = (BootOrder){};
        r = 0;
out:
        free(ready);
        graph_done(&g);
        boot_order_done(&b);
        return r;
}

void boot_order_done(BootOrder *b)
{
        free(b->order);
        free(b->wave_of);
        *b = (BootOrder){};
}
