/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include <errno.h>
#include <stdlib.h>

#include "lua/heap.h"

static void swap(CLuaHeap *h, size_t i, size_t j)
{
        void *t = h->v[i];

        h->v[i] = h->v[j];
        h->v[j] = t;
        *h->pos(h->v[i]) = i + 1;
        *h->pos(h->v[j]) = j + 1;
}

static void up(CLuaHeap *h, size_t i)
{
        while (i > 0 && h->less(h->v[i], h->v[(i - 1) / 2])) {
                swap(h, i, (i - 1) / 2);
                i = (i - 1) / 2;
        }
}

static void down(CLuaHeap *h, size_t i)
{
        for (;;) {
                size_t l = 2 * i + 1, m = i;

                if (l < h->n && h->less(h->v[l], h->v[m]))
                        m = l;
                if (l + 1 < h->n && h->less(h->v[l + 1], h->v[m]))
                        m = l + 1;
                if (m == i)
                        return;
                swap(h, i, m);
                i = m;
        }
}

int clua_heap_push(CLuaHeap *h, void *e)
{
        if (h->n == h->cap) {
                size_t n = h->cap ? h->cap * 2 : 64;
                void **v = realloc(h->v, n * sizeof(*v));

                if (!v)
                        return -ENOMEM;
                h->v = v;
                h->cap = n;
        }
        h->v[h->n] = e;
        *h->pos(e) = ++h->n;
        up(h, h->n - 1);
        return 0;
}

void clua_heap_remove(CLuaHeap *h, void *e)
{
        size_t *p = h->pos(e), i;

        if (!*p)
                return;
        i = *p - 1;
        swap(h, i, h->n - 1);
        h->n--;
        if (i < h->n) {
                down(h, i);
                up(h, i);
        }
        *p = 0;
}

void clua_heap_fix(CLuaHeap *h, void *e)
{
        size_t i = *h->pos(e);

        if (!i)
                return;
        down(h, i - 1);
        up(h, i - 1);
}

void clua_heap_done(CLuaHeap *h)
{
        free(h->v);
        h->v = NULL;
        h->n = h->cap = 0;
}
