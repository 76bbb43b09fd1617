/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Coalescing of repeated audit records, and a per-source byte budget (audit.h,
 * "Coalescing"; docs/audit.md, "Repeated records").
 *
 * A record is identified by its event, its fields (keys, types, values) and its
 * extra object (json_dumpb, keys sorted): the key. Up to AUDIT_COALESCE_KEYS keys
 * are open at a time. The first record of a key is written and opens its window;
 * records of an open key within the window are counted, not written; when the
 * window ends (audit_coalesce_flush()), or the key's slot is taken by another key,
 * one "suppressed" record with why "repeated" gives their count and the times of
 * the first and last of them. After the window the next record of the key is
 * written again. So a flood of one decision writes two records a window, and the
 * record that a flood happened, with its size, is never lost. Several keys are
 * counted side by side, so alternating two calls does not escape.
 *
 * Records that open a key are charged against a token bucket of bytes (their
 * length in the log, audit_last_append_size()): past it, they are not written but counted,
 * by their first field's value ("op" for the broker's calls) and decision, into a
 * "suppressed" record with why "budget" at the end of the window. The summaries
 * are charged too, after they are written (never dropped): each stands for a slot
 * that a written record opened, so they cannot outgrow the budget by more than one.
 *
 * Its idea is Linux's printk_ratelimit() and audit_rate_check() ("callbacks
 * suppressed"), kept per source so one app's flood does not hide another's
 * records.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "audit/audit.h"
#include "base/macro.h"

#define KEY_MAX           4096u /* bytes of a key; a record with a longer one is not coalesced */
#define BUDGET_OPS_MAX    16u   /* distinct ops a budget summary names; the rest are "other" */
#define BUDGET_RIGHTS_MAX 32u   /* distinct refused rights it names; the rest are "other" */

typedef struct Slot {
        bool used;
        char *key; /* serialized; owned */
        size_t key_len;
        char event[AUDIT_EVENT_MAX + 1];
        AuditField fields[AUDIT_FIELDS_MAX];
        size_t n_fields;
        char *strs; /* the fields' keys and strings, one allocation */
        json_t *extra;
        int64_t opened_usec; /* when its written record came */
        uint64_t count;      /* records counted since */
        int64_t first_usec, last_usec;
} Slot;

struct AuditCoalesce {
        AuditCoalesceOptions o;
        Slot slots[AUDIT_COALESCE_KEYS];
        /* the budget: a token bucket of bytes; a record is written while it is
         * positive and then charged its size, so it may go below 0 by one record */
        int64_t tokens;
        int64_t refill_usec;
        /* records over the budget since over_first_usec */
        uint64_t over_count, over_bytes;
        int64_t over_first_usec, over_last_usec;
        json_t *over_ops; /* {"<op>": {"<decision>": n}} */
        /* {"<op> <right> <decision>": n} for every decision but "allowed": a refusal past
         * the budget keeps the right it was about, not only its op. */
        json_t *over_rights;
        AuditCoalesceStats stats;
};

int audit_coalesce_new(const AuditCoalesceOptions *o, AuditCoalesce **ret)
{
        AuditCoalesce *co;

        if (!ret)
                return -EINVAL;
        co = calloc(1, sizeof *co);
        if (!co)
                return -ENOMEM;
        if (o)
                co->o = *o;
        if (co->o.window_usec <= 0)
                co->o.window_usec = AUDIT_COALESCE_WINDOW_USEC;
        if (co->o.budget_rate == 0)
                co->o.budget_rate = AUDIT_BUDGET_RATE;
        if (co->o.budget_burst == 0)
                co->o.budget_burst = AUDIT_BUDGET_BURST;
        co->tokens = (int64_t)co->o.budget_burst;
        co->refill_usec = INT64_MIN;
        *ret = co;
        return 0;
}

static void slot_clear(Slot *s)
{
        free(s->key);
        free(s->strs);
        json_decref(s->extra);
        *s = (Slot){};
}

AuditCoalesce *audit_coalesce_free(AuditCoalesce *co)
{
        if (!co)
                return NULL;
        for (size_t i = 0; i < AUDIT_COALESCE_KEYS; i++)
                slot_clear(&co->slots[i]);
        json_decref(co->over_ops);
        json_decref(co->over_rights);
        free(co);
        return NULL;
}

void audit_coalesce_stats(const AuditCoalesce *co, AuditCoalesceStats *ret)
{
        *ret = co->stats;
}

/* Appends n bytes of s to buf (size KEY_MAX) at *len; false if they do not fit. */
static bool key_put(char *buf, size_t *len, const void *s, size_t n)
{
        if (n > KEY_MAX - *len)
                return false;
        memcpy(buf + *len, s, n);
        *len += n;
        return true;
}

/* The key of a record into buf (KEY_MAX bytes): event, then each field as key, type
 * and value, NUL-separated, then extra dumped compact with sorted keys. Returns its
 * length, or 0 if it does not fit (then the record is not coalesced). */
static size_t key_build(const char *event, const AuditField *f, size_t n, const json_t *extra,
                        char *buf)
{
        size_t len = 0;
        bool ok = key_put(buf, &len, event, strlen(event) + 1);

        for (size_t i = 0; i < n && ok; i++) {
                char num[24];

                ok = key_put(buf, &len, f[i].key, strlen(f[i].key) + 1);
                if (f[i].type == AUDIT_FIELD_INT) {
                        int k = snprintf(num, sizeof num, "i%lld", (long long)f[i].num);

                        ok = ok && key_put(buf, &len, num, (size_t)k + 1);
                } else if (f[i].str)
                        ok = ok && key_put(buf, &len, "s", 1) &&
                             key_put(buf, &len, f[i].str, strlen(f[i].str) + 1);
                else
                        ok = ok && key_put(buf, &len, "n", 2);
        }
        if (ok && extra && json_object_size(extra) > 0) {
                size_t k = json_dumpb(extra, buf + len, KEY_MAX - len,
                                      JSON_COMPACT | JSON_SORT_KEYS | JSON_ENSURE_ASCII);

                ok = k > 0 && k <= KEY_MAX - len;
                len += k;
        }
        return ok ? len : 0;
}

static void budget_refill(AuditCoalesce *co, int64_t now)
{
        if (co->refill_usec == INT64_MIN || now < co->refill_usec) {
                co->refill_usec = now;
                return;
        }
        uint64_t add = (uint64_t)(now - co->refill_usec) * co->o.budget_rate / 1000000u;

        if (add == 0)
                return;
        co->tokens = co->tokens + (int64_t)add > (int64_t)co->o.budget_burst
                             ? (int64_t)co->o.budget_burst
                             : co->tokens + (int64_t)add;
        co->refill_usec = now;
}

/* Fills a slot with a copy of the record it opens. */
static int slot_open(Slot *s, const char *key, size_t key_len, const char *event,
                     const AuditField *f, size_t n, const json_t *extra, int64_t now)
{
        size_t need = 0;
        char *p;

        for (size_t i = 0; i < n; i++)
                need += strlen(f[i].key) + 1 +
                        (f[i].type == AUDIT_FIELD_STRING && f[i].str ? strlen(f[i].str) + 1 : 0);
        *s = (Slot){.used = true, .n_fields = n, .opened_usec = now};
        s->key = malloc(key_len);
        s->strs = malloc(need ?: 1);
        if (extra && json_object_size(extra) > 0)
                s->extra = json_deep_copy(extra);
        if (!s->key || !s->strs || (extra && json_object_size(extra) > 0 && !s->extra)) {
                slot_clear(s);
                return -ENOMEM;
        }
        memcpy(s->key, key, key_len);
        s->key_len = key_len;
        snprintf(s->event, sizeof s->event, "%s", event);
        p = s->strs;
        for (size_t i = 0; i < n; i++) {
                s->fields[i] = f[i];
                s->fields[i].key = strcpy(p, f[i].key);
                p += strlen(p) + 1;
                if (f[i].type == AUDIT_FIELD_STRING && f[i].str) {
                        s->fields[i].str = strcpy(p, f[i].str);
                        p += strlen(p) + 1;
                }
        }
        return 0;
}

/* When the key of s was last seen: its written record, or its last repeat. */
static int64_t slot_seen(const Slot *s)
{
        return s->count > 0 && s->last_usec > s->opened_usec ? s->last_usec : s->opened_usec;
}

/* Writes the summary of s (if it counted anything) and frees the slot. The summary
 * is charged to the budget too (which may go below 0 by it: a summary is never
 * dropped), so that what a source writes in all stays within the budget. */
static int slot_close(AuditCoalesce *co, Slot *s, AuditLog *a, const char *app)
{
        AuditField f[AUDIT_FIELDS_MAX];
        char first[40], last[40];
        size_t n = 0;
        int r = 0;

        if (s->count > 0) {
                f[n++] = (AuditField){.key = "why", .str = "repeated"};
                f[n++] = (AuditField){.key = "of", .str = s->event};
                for (size_t i = 0; i < s->n_fields && n < AUDIT_FIELDS_MAX - 3; i++) {
                        const char *k = s->fields[i].key;

                        if (strcmp(k, "why") == 0 || strcmp(k, "of") == 0 ||
                            strcmp(k, "count") == 0 || strcmp(k, "first") == 0 ||
                            strcmp(k, "last") == 0)
                                continue;
                        f[n++] = s->fields[i];
                }
                f[n++] = (AuditField){
                        .key = "count", .type = AUDIT_FIELD_INT, .num = (int64_t)s->count};
                f[n++] = (AuditField){.key = "first",
                                      .str = audit_format_time(s->first_usec, first, sizeof first)};
                f[n++] = (AuditField){.key = "last",
                                      .str = audit_format_time(s->last_usec, last, sizeof last)};
                r = audit_append_fields(a, app, AUDIT_EVENT_SUPPRESSED, f, n, s->extra);
                if (r == 0) {
                        co->stats.summaries++;
                        co->tokens -= (int64_t)audit_last_append_size(a);
                }
        }
        slot_clear(s);
        return r;
}

/* Writes the budget summary, if records went over since it was last written. */
static int budget_close(AuditCoalesce *co, AuditLog *a, const char *app)
{
        char first[40], last[40];
        AuditField f[] = {
                {.key = "why", .str = "budget"},
                {.key = "count", .type = AUDIT_FIELD_INT, .num = (int64_t)co->over_count},
                {.key = "bytes", .type = AUDIT_FIELD_INT, .num = (int64_t)co->over_bytes},
                {.key = "first",
                 .str = audit_format_time(co->over_first_usec, first, sizeof first)},
                {.key = "last", .str = audit_format_time(co->over_last_usec, last, sizeof last)},
        };
        json_t *extra;
        int r;

        if (co->over_count == 0)
                return 0;
        extra = json_pack("{s:O}", "ops", co->over_ops ?: json_object());
        if (extra && co->over_rights)
                json_object_set(extra, "rights", co->over_rights);
        r = extra ? audit_append_fields(a, app, AUDIT_EVENT_SUPPRESSED, f, ELEMENTSOF(f), extra)
                  : -ENOMEM;
        json_decref(extra);
        if (r < 0)
                return r;
        co->stats.summaries++;
        co->tokens -= (int64_t)audit_last_append_size(a);
        co->over_count = co->over_bytes = 0;
        json_decref(co->over_ops);
        co->over_ops = NULL;
        json_decref(co->over_rights);
        co->over_rights = NULL;
        return 0;
}

/* Counts a record that was not allowed, over the budget, under its op, right and
 * decision ("fs.open fs.read:documents refused"), BUDGET_RIGHTS_MAX of them. */
static void budget_count_right(AuditCoalesce *co, const char *op, const char *right,
                               const char *decision)
{
        char key[KEY_MAX];
        json_t *v;

        snprintf(key, sizeof key, "%s %s %s", op, right ?: "-", decision);
        if (!co->over_rights && !(co->over_rights = json_object()))
                return;
        if (!json_object_get(co->over_rights, key) &&
            json_object_size(co->over_rights) >= BUDGET_RIGHTS_MAX)
                snprintf(key, sizeof key, "other");
        v = json_object_get(co->over_rights, key);
        if (v)
                json_integer_set(v, json_integer_value(v) + 1);
        else
                json_object_set_new(co->over_rights, key, json_integer(1));
}

/* Counts a record over the budget under its first field's value and its "decision". */
static void budget_count(AuditCoalesce *co, const AuditField *f, size_t n, uint64_t cost,
                         int64_t now)
{
        const char *op = n > 0 && f[0].type == AUDIT_FIELD_STRING && f[0].str ? f[0].str : "?";
        const char *decision = "?", *right = NULL;
        json_t *per, *v;

        for (size_t i = 0; i < n; i++) {
                if (f[i].type != AUDIT_FIELD_STRING || !f[i].str)
                        continue;
                if (strcmp(f[i].key, "decision") == 0)
                        decision = f[i].str;
                else if (strcmp(f[i].key, "right") == 0)
                        right = f[i].str;
        }
        if (strcmp(decision, "allowed") != 0)
                budget_count_right(co, op, right, decision);
        if (co->over_count == 0)
                co->over_first_usec = now;
        co->over_last_usec = now;
        co->over_count++;
        co->over_bytes += cost;
        co->stats.over_budget++;
        if (!co->over_ops && !(co->over_ops = json_object()))
                return;
        per = json_object_get(co->over_ops, op);
        if (!per) {
                if (json_object_size(co->over_ops) >= BUDGET_OPS_MAX)
                        op = "other";
                per = json_object_get(co->over_ops, op);
        }
        if (!per) {
                per = json_object();
                if (!per || json_object_set_new(co->over_ops, op, per) < 0)
                        return;
        }
        v = json_object_get(per, decision);
        if (v)
                json_integer_set(v, json_integer_value(v) + 1);
        else
                json_object_set_new(per, decision, json_integer(1));
}

int audit_coalesce_append(AuditCoalesce *co, AuditLog *a, const char *app, const char *event,
                          const AuditField *fields, size_t n_fields, const json_t *extra,
                          int64_t now_usec)
{
        char key[KEY_MAX];
        size_t len;
        Slot *free_slot = NULL, *oldest = NULL;
        int r;

        if (!co || !a || !event || n_fields > AUDIT_FIELDS_MAX || (n_fields > 0 && !fields))
                return -EINVAL;
        for (size_t i = 0; i < n_fields; i++)
                if (!fields[i].key)
                        return -EINVAL;
        len = key_build(event, fields, n_fields, extra, key);
        if (len > 0)
                for (size_t i = 0; i < AUDIT_COALESCE_KEYS; i++) {
                        Slot *s = &co->slots[i];

                        if (!s->used) {
                                free_slot = free_slot ?: s;
                                continue;
                        }
                        if (s->key_len == len && memcmp(s->key, key, len) == 0) {
                                if (now_usec >= s->opened_usec &&
                                    now_usec - s->opened_usec < co->o.window_usec) {
                                        if (s->count == 0)
                                                s->first_usec = now_usec;
                                        s->last_usec = now_usec;
                                        s->count++;
                                        co->stats.coalesced++;
                                        return 0;
                                }
                                /* Its window is over: summed up, and written anew. */
                                r = slot_close(co, s, a, app);
                                if (r < 0)
                                        return r;
                                free_slot = s;
                                break;
                        }
                        /* The victim, if every slot is taken: the least recently
                         * seen key. A kind repeated all the time stays; kinds seen
                         * once (an fs.open of each path in turn) go first. */
                        if (!oldest || slot_seen(s) < slot_seen(oldest))
                                oldest = s;
                }

        budget_refill(co, now_usec);
        if (co->tokens <= 0) {
                /* Its size, as the key tells it (the envelope, ~170 bytes, besides). */
                budget_count(co, fields, n_fields, (uint64_t)(len ?: KEY_MAX) + 170, now_usec);
                return 0;
        }
        r = audit_append_fields(a, app, event, fields, n_fields, extra);
        if (r < 0)
                return r;
        co->tokens -= (int64_t)audit_last_append_size(a);
        co->stats.written++;
        if (len == 0)
                return 1;
        if (!free_slot) { /* every slot in use: the least recently seen is summed up now */
                r = slot_close(co, oldest, a, app);
                if (r < 0)
                        return r;
                free_slot = oldest;
        }
        (void)slot_open(free_slot, key, len, event, fields, n_fields, extra, now_usec);
        return 1;
}

int audit_coalesce_flush(AuditCoalesce *co, AuditLog *a, const char *app, int64_t now_usec,
                         bool all)
{
        int r;

        if (!co || !a)
                return -EINVAL;
        for (size_t i = 0; i < AUDIT_COALESCE_KEYS; i++) {
                Slot *s = &co->slots[i];

                if (!s->used)
                        continue;
                if (!all && now_usec >= s->opened_usec &&
                    now_usec - s->opened_usec < co->o.window_usec)
                        continue;
                r = slot_close(co, s, a, app);
                if (r < 0)
                        return r;
        }
        if (co->over_count > 0 && (all || now_usec < co->over_first_usec ||
                                   now_usec - co->over_first_usec >= co->o.window_usec))
                return budget_close(co, a, app);
        return 0;
}

int64_t audit_coalesce_due(const AuditCoalesce *co)
{
        int64_t due = INT64_MAX;

        if (!co)
                return due;
        for (size_t i = 0; i < AUDIT_COALESCE_KEYS; i++) {
                const Slot *s = &co->slots[i];

                if (s->used && s->count > 0 && s->opened_usec + co->o.window_usec < due)
                        due = s->opened_usec + co->o.window_usec;
        }
        if (co->over_count > 0 && co->over_first_usec + co->o.window_usec < due)
                due = co->over_first_usec + co->o.window_usec;
        return due;
}
