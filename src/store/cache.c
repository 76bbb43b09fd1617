/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The installed-version cache (store.h, docs/store.md "The installed-version
 * cache"): store_app_dir()'s answer for an id, kept with what it was read from,
 * and checked at every lookup against the store on disk, so a change by this
 * process or another one is seen at the next lookup.
 *
 * store_app_dir() opens the state directory with state_dir_open() (a walk up to
 * "/" checking every directory's owner and mode), apps/ and apps/<id>/ (never
 * through a symlink), reads current and parses the version's JSON record: about
 * a dozen system calls and a JSON parse per start. Its answer is
 * "<state_dir>/apps/<id>/<V>", where V is what current names: for the same
 * state_dir and id it changes only when current does. A hit here is two system
 * calls, each a path walk in the kernel:
 *   readlink("<state_dir>/apps/<id>/current")   the version V' installed now
 *   lstat("<state_dir>/apps/<id>/<V'>")         a directory, the one vetted
 * and the entry is used only if V' is the cached V and the folder is a directory
 * with the device and inode the full lookup saw (so an apps/<id> replaced by a
 * symlink elsewhere, or a folder swapped, is a miss). Anything else is a miss:
 * the full store_app_dir() runs, with its owner walk, and its answer replaces the
 * entry; its errors are returned as they are and drop the entry.
 *
 * What the hit does not re-check is the owner walk of the state directory: every
 * directory on its path was found owned by root or this uid and not writable by
 * others (state_dir_open()), so only root or this uid can change them later.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/macro.h"
#include "policy/manifest.h"
#include "store/store.h"

typedef struct Entry {
        struct Entry *next;
        char *id;
        char *current;   /* <state_dir>/apps/<id>/current */
        char *dir;       /* <state_dir>/apps/<id>/<version>: store_app_dir()'s answer */
        size_t dir_base; /* where <version> starts in dir */
        dev_t dev;       /* dir's, when the full lookup answered */
        ino_t ino;
} Entry;

struct StoreCache {
        char *state_dir;
        Entry **buckets;
        size_t n_buckets; /* a power of two */
        size_t n;
        uint64_t hits, misses;
};

/* FNV-1a (Fowler, Noll, Vo; 64-bit offset basis and prime of the reference). */
static uint64_t hash_id(const char *s)
{
        uint64_t h = UINT64_C(14695981039346656037);

        for (; *s; s++)
                h = (h ^ (unsigned char)*s) * UINT64_C(1099511628211);
        return h;
}

static void entry_free(Entry *e)
{
        if (!e)
                return;
        free(e->id);
        free(e->current);
        free(e->dir);
        free(e);
}

int store_cache_new(const char *state_dir, StoreCache **ret)
{
        StoreCache *c = calloc(1, sizeof *c);

        if (!c)
                return -ENOMEM;
        c->n_buckets = 64;
        c->state_dir = strdup(state_dir);
        c->buckets = calloc(c->n_buckets, sizeof *c->buckets);
        if (!c->state_dir || !c->buckets) {
                store_cache_free(c);
                return -ENOMEM;
        }
        *ret = c;
        return 0;
}

StoreCache *store_cache_free(StoreCache *c)
{
        if (!c)
                return NULL;
        for (size_t i = 0; c->buckets && i < c->n_buckets; i++)
                for (Entry *e = c->buckets[i], *next; e; e = next) {
                        next = e->next;
                        entry_free(e);
                }
        free(c->buckets);
        free(c->state_dir);
        free(c);
        return NULL;
}

static Entry **slot_of(StoreCache *c, const char *id)
{
        Entry **p = &c->buckets[hash_id(id) & (c->n_buckets - 1)];

        while (*p && strcmp((*p)->id, id) != 0)
                p = &(*p)->next;
        return p;
}

/* Doubles the buckets when there are more entries than buckets (not needed for
 * correctness: a failed allocation keeps the table as it is). */
static void grow(StoreCache *c)
{
        size_t n = c->n_buckets * 2;
        Entry **b;

        if (c->n <= c->n_buckets || !(b = calloc(n, sizeof *b)))
                return;
        for (size_t i = 0; i < c->n_buckets; i++)
                for (Entry *e = c->buckets[i], *next; e; e = next) {
                        size_t k = hash_id(e->id) & (n - 1);

                        next = e->next;
                        e->next = b[k];
                        b[k] = e;
                }
        free(c->buckets);
        c->buckets = b;
        c->n_buckets = n;
}

void store_cache_forget(StoreCache *c, const char *id)
{
        if (!c)
                return;
        if (!id) {
                for (size_t i = 0; i < c->n_buckets; i++)
                        for (Entry *e = c->buckets[i], *next; e; e = next) {
                                next = e->next;
                                entry_free(e);
                        }
                memset(c->buckets, 0, c->n_buckets * sizeof *c->buckets);
                c->n = 0;
                return;
        }
        Entry **p = slot_of(c, id), *e = *p;

        if (!e)
                return;
        *p = e->next;
        entry_free(e);
        c->n--;
}

/* Whether e still answers: current names the same version, and that version's
 * folder is the directory the full lookup saw. */
static bool entry_valid(const Entry *e)
{
        const char *v = e->dir + e->dir_base;
        char buf[STORE_VERSION_MAX];
        struct stat st;
        ssize_t k;

        k = readlink(e->current, buf, sizeof buf);
        if (k < 0 || (size_t)k >= sizeof buf)
                return false;
        buf[k] = 0;
        if (strcmp(buf, v) != 0)
                return false;
        if (lstat(e->dir, &st) < 0 || !S_ISDIR(st.st_mode))
                return false;
        return st.st_dev == e->dev && st.st_ino == e->ino;
}

/* Fills the entry for id from the full lookup's answer dir (taken). An entry is
 * made only if dir is "<state_dir>/apps/<id>/<version>" and is a directory now;
 * else dir is returned uncached. Returns 0 or -ENOMEM (dir freed). */
static int fill(StoreCache *c, const char *id, char *dir)
{
        size_t prefix = strlen(c->state_dir) + strlen("/" STORE_APPS_DIR "/") + strlen(id) + 1;
        Entry *e;
        struct stat st;

        if (strlen(dir) <= prefix || strncmp(dir, c->state_dir, strlen(c->state_dir)) != 0 ||
            lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
                return 0;
        e = calloc(1, sizeof *e);
        if (!e || !(e->id = strdup(id)) || !(e->dir = strdup(dir)) ||
            asprintf(&e->current, "%s/" STORE_APPS_DIR "/%s/" STORE_CURRENT, c->state_dir, id) <
                    0) {
                if (e)
                        e->current = NULL;
                entry_free(e);
                return -ENOMEM;
        }
        e->dir_base = prefix;
        e->dev = st.st_dev;
        e->ino = st.st_ino;
        store_cache_forget(c, id);
        grow(c);
        Entry **p = &c->buckets[hash_id(id) & (c->n_buckets - 1)];
        e->next = *p;
        *p = e;
        c->n++;
        return 0;
}

int store_cache_app_dir(StoreCache *c, const char *id, char **ret)
{
        _cleanup_free_ char *dir = NULL;
        Entry *e;
        int r;

        if (!manifest_id_is_valid(id))
                return -EINVAL;
        e = *slot_of(c, id);
        if (e && entry_valid(e)) {
                char *copy = strdup(e->dir);

                if (!copy)
                        return -ENOMEM;
                c->hits++;
                *ret = copy;
                return 0;
        }
        c->misses++;
        store_cache_forget(c, id);
        r = store_app_dir(c->state_dir, id, &dir);
        if (r < 0)
                return r;
        r = fill(c, id, dir);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(dir);
        return 0;
}

void store_cache_stats(const StoreCache *c, uint64_t *ret_hits, uint64_t *ret_misses)
{
        *ret_hits = c ? c->hits : 0;
        *ret_misses = c ? c->misses : 0;
}
