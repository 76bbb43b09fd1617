/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * An indexed binary min-heap of pointers (the fair scheduler's run queue, the
 * host's timers): each element keeps its position + 1 in a size_t of its own
 * (0 = not in the heap), so any element can be removed or re-placed in
 * O(log n).
 */

#include <stdbool.h>
#include <stddef.h>

typedef struct CLuaHeap {
        void **v;
        size_t n, cap;
        bool (*less)(const void *a, const void *b); /* a before b */
        size_t *(*pos)(void *e);                    /* e's position + 1 */
} CLuaHeap;

/* Adds e. Returns 0 or -ENOMEM. */
int clua_heap_push(CLuaHeap *h, void *e);

/* The least element, or NULL when empty. */
static inline void *clua_heap_top(const CLuaHeap *h)
{
        return h->n ? h->v[0] : NULL;
}

/* Removes e (a no-op if it is not in the heap). */
void clua_heap_remove(CLuaHeap *h, void *e);

/* Re-places e after its key changed. */
void clua_heap_fix(CLuaHeap *h, void *e);

/* Frees the array (not the elements). */
void clua_heap_done(CLuaHeap *h);
