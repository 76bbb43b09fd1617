/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The persistent ipc queues in SQLite (queue-store.h). */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>
#include <fcntl.h>

#include "base/sqlite-util.h"
#include "ipc/queue-store.h"

struct QueueStore {
        sqlite3 *db;
        int lock_fd; /* the file, flock()ed: one kernel at a time holds the queues */
        sqlite3_stmt *put, *seq, *take;
};

static int migrate(sqlite3 *db, int from, void *userdata)
{
        if (from < 1 && sqlite_exec(db, "CREATE TABLE queues ("
                                        " id INTEGER PRIMARY KEY,"
                                        " name TEXT NOT NULL UNIQUE,"
                                        " owner TEXT NOT NULL,"
                                        " depth_max INTEGER NOT NULL,"
                                        " message_bytes_max INTEGER NOT NULL,"
                                        " next_seq INTEGER NOT NULL);"
                                        "CREATE TABLE offers ("
                                        " queue INTEGER NOT NULL,"
                                        " app TEXT NOT NULL,"
                                        " topic TEXT NOT NULL,"
                                        " modes INTEGER NOT NULL);"
                                        "CREATE INDEX offers_queue ON offers(queue);"
                                        "CREATE TABLE messages ("
                                        " queue INTEGER NOT NULL,"
                                        " seq INTEGER NOT NULL,"
                                        " priority INTEGER NOT NULL,"
                                        " sender TEXT NOT NULL,"
                                        " data BLOB NOT NULL,"
                                        " PRIMARY KEY (queue, seq)) WITHOUT ROWID;") < 0)
                return -EIO;
        return sqlite_exec(db, "PRAGMA user_version = 1");
}

const char *queue_store_errmsg(QueueStore *s)
{
        return s && s->db ? sqlite3_errmsg(s->db) : "no database";
}

void queue_store_close(QueueStore *s)
{
        if (!s)
                return;
        sqlite3_finalize(s->put);
        sqlite3_finalize(s->seq);
        sqlite3_finalize(s->take);
        sqlite3_close(s->db);
        if (s->lock_fd >= 0)
                close(s->lock_fd);
        free(s);
}

static int fail(QueueStore *s, const char *path, int r, const char *what, char *why)
{
        snprintf(why, QUEUE_STORE_WHY_MAX,
                 "%s: %s: %s; move the file away to start with no persistent queues", path, what,
                 queue_store_errmsg(s));
        queue_store_close(s);
        return r;
}

/* PRAGMA quick_check: "ok", or the first problem found. */
static int quick_check(sqlite3 *db, char *buf, size_t size)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        const unsigned char *t;

        if (sqlite_prepare(db, "PRAGMA quick_check(1)", &st) < 0 || sqlite3_step(st) != SQLITE_ROW)
                return -EIO;
        t = sqlite3_column_text(st, 0);
        snprintf(buf, size, "%s", t ? (const char *)t : "?");
        return t && strcmp((const char *)t, "ok") == 0 ? 0 : -EIO;
}

int queue_store_open(const char *path, QueueStore **ret, char *why)
{
        QueueStore *s;
        char check[200];
        int r;

        s = calloc(1, sizeof(*s));
        if (!s) {
                snprintf(why, QUEUE_STORE_WHY_MAX, "%s: out of memory", path);
                return -ENOMEM;
        }
        s->lock_fd = -1;
        r = sqlite_open(path, 5000, &s->db);
        if (r < 0) {
                snprintf(why, QUEUE_STORE_WHY_MAX, "%s: cannot open: %s", path, strerror(-r));
                free(s);
                return r;
        }
        /*
         * Every kernel on a state directory (cellad, each embedded cella run or boot)
         * would bring the same queues back and hand out the same messages: the first
         * to open the store holds it (flock, released when that kernel exits), the
         * others have no persistent queues. sqlite_open() checked the file.
         */
        s->lock_fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
        if (s->lock_fd < 0 || flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0) {
                r = errno == EWOULDBLOCK ? -EBUSY : -errno;
                snprintf(why, QUEUE_STORE_WHY_MAX,
                         r == -EBUSY ? "%s: held by another cella kernel on this state directory "
                                       "(cellad, or a cella run or boot): its persistent queues "
                                       "are served there"
                                     : "%s: cannot lock: %s",
                         path, strerror(-r));
                queue_store_close(s);
                return r;
        }
        /* The first read of the file: a file that is not a database fails here. */
        if (sqlite_exec(s->db, "PRAGMA journal_mode = WAL") < 0)
                return fail(s, path, -EIO, "not a usable database", why);
        if (sqlite_exec(s->db, "PRAGMA synchronous = NORMAL") < 0)
                return fail(s, path, -EIO, "cannot set synchronous", why);
        r = quick_check(s->db, check, sizeof(check));
        if (r < 0) {
                snprintf(why, QUEUE_STORE_WHY_MAX,
                         "%s: corrupt (PRAGMA quick_check: %s); move the file away to start "
                         "with no persistent queues",
                         path, check);
                queue_store_close(s);
                return -EIO;
        }
        r = sqlite_schema_ensure(s->db, QUEUE_STORE_VERSION, migrate, NULL);
        if (r == -EPROTONOSUPPORT) {
                snprintf(why, QUEUE_STORE_WHY_MAX,
                         "%s: written by a newer cella (schema version %d, this one knows %d); "
                         "not touched",
                         path, sqlite_user_version(s->db), QUEUE_STORE_VERSION);
                queue_store_close(s);
                return r;
        }
        if (r < 0)
                return fail(s, path, r, "cannot make its schema", why);
        if (sqlite_prepare(s->db,
                           "INSERT INTO messages (queue, seq, priority, sender, data) "
                           "VALUES (?1, ?2, ?3, ?4, ?5)",
                           &s->put) < 0 ||
            sqlite_prepare(s->db, "UPDATE queues SET next_seq = ?2 WHERE id = ?1", &s->seq) < 0 ||
            sqlite_prepare(s->db, "DELETE FROM messages WHERE queue = ?1 AND seq = ?2", &s->take) <
                    0)
                return fail(s, path, -EIO, "unexpected schema", why);
        *ret = s;
        return 0;
}

int queue_store_create(QueueStore *s, const QueueStoreInfo *info, int64_t *ret_id)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int64_t id;
        int r;

        if (sqlite_exec(s->db, "BEGIN IMMEDIATE") < 0)
                return -EIO;
        r = sqlite_select_one(s->db, "SELECT id FROM queues WHERE name = ?1",
                              SQL_ARGS(SQL_TEXT(info->name)), &st);
        if (r != 0)
                return sqlite_tx_end(s->db, r > 0 ? -EEXIST : r);
        r = sqlite_run(s->db,
                       "INSERT INTO queues (name, owner, depth_max, message_bytes_max, next_seq) "
                       "VALUES (?1, ?2, ?3, ?4, 1)",
                       SQL_ARGS(SQL_TEXT(info->name), SQL_TEXT(info->owner),
                                SQL_INT(info->depth_max), SQL_INT(info->message_bytes_max)));
        id = sqlite3_last_insert_rowid(s->db);
        for (size_t i = 0; r >= 0 && i < info->n_offers; i++)
                r = sqlite_run(
                        s->db,
                        "INSERT INTO offers (queue, app, topic, modes) VALUES (?1, ?2, ?3, ?4)",
                        SQL_ARGS(SQL_INT(id), SQL_TEXT(info->offers[i].app ?: ""),
                                 SQL_TEXT(info->offers[i].topic ?: ""),
                                 SQL_INT(info->offers[i].modes)));
        r = sqlite_tx_end(s->db, r < 0 ? r : 0);
        if (r < 0)
                return r;
        *ret_id = id;
        return 0;
}

int queue_store_set_offers(QueueStore *s, int64_t id, const QueueStoreOffer *offers, size_t n)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        if (sqlite_exec(s->db, "BEGIN IMMEDIATE") < 0)
                return -EIO;
        r = sqlite_select_one(s->db, "SELECT id FROM queues WHERE id = ?1", SQL_ARGS(SQL_INT(id)),
                              &st);
        if (r <= 0)
                return sqlite_tx_end(s->db, r == 0 ? -ENOENT : r);
        r = sqlite_run(s->db, "DELETE FROM offers WHERE queue = ?1", SQL_ARGS(SQL_INT(id)));
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = sqlite_run(
                        s->db,
                        "INSERT INTO offers (queue, app, topic, modes) VALUES (?1, ?2, ?3, ?4)",
                        SQL_ARGS(SQL_INT(id), SQL_TEXT(offers[i].app ?: ""),
                                 SQL_TEXT(offers[i].topic ?: ""), SQL_INT(offers[i].modes)));
        return sqlite_tx_end(s->db, r < 0 ? r : 0);
}

int queue_store_forget_owner(QueueStore *s, const char *owner)
{
        int r, n;

        if (sqlite_exec(s->db, "BEGIN IMMEDIATE") < 0)
                return -EIO;
        r = sqlite_run(s->db,
                       "DELETE FROM messages WHERE queue IN "
                       "(SELECT id FROM queues WHERE owner = ?1)",
                       SQL_ARGS(SQL_TEXT(owner)));
        if (r >= 0)
                r = sqlite_run(s->db,
                               "DELETE FROM offers WHERE queue IN "
                               "(SELECT id FROM queues WHERE owner = ?1)",
                               SQL_ARGS(SQL_TEXT(owner)));
        if (r >= 0)
                r = sqlite_run(s->db, "DELETE FROM queues WHERE owner = ?1",
                               SQL_ARGS(SQL_TEXT(owner)));
        n = r; /* the queues deleted */
        r = sqlite_tx_end(s->db, r < 0 ? r : 0);
        return r < 0 ? r : n;
}

int queue_store_forget_owner_at(const char *state_dir, const char *owner, char *why)
{
        char path[PATH_MAX];
        QueueStore *s = NULL;
        int r;

        if ((size_t)snprintf(path, sizeof(path), "%s/" QUEUE_STORE_FILE, state_dir) >=
            sizeof(path)) {
                snprintf(why, QUEUE_STORE_WHY_MAX, "%s: path too long", state_dir);
                return -ENAMETOOLONG;
        }
        if (access(path, F_OK) < 0) {
                if (errno == ENOENT)
                        return 0;
                r = -errno;
                snprintf(why, QUEUE_STORE_WHY_MAX, "%.400s: %s", path, strerror(-r));
                return r;
        }
        r = queue_store_open(path, &s, why);
        if (r < 0)
                return r;
        r = queue_store_forget_owner(s, owner);
        if (r < 0)
                snprintf(why, QUEUE_STORE_WHY_MAX, "%.400s: %s", path, queue_store_errmsg(s));
        queue_store_close(s);
        return r;
}

int queue_store_drop(QueueStore *s, int64_t id)
{
        int r;

        if (sqlite_exec(s->db, "BEGIN IMMEDIATE") < 0)
                return -EIO;
        r = sqlite_run(s->db, "DELETE FROM messages WHERE queue = ?1", SQL_ARGS(SQL_INT(id)));
        if (r >= 0)
                r = sqlite_run(s->db, "DELETE FROM offers WHERE queue = ?1", SQL_ARGS(SQL_INT(id)));
        if (r >= 0)
                r = sqlite_run(s->db, "DELETE FROM queues WHERE id = ?1", SQL_ARGS(SQL_INT(id)));
        return sqlite_tx_end(s->db, r < 0 ? r : 0);
}

/* Steps st once to its end and resets it for the next use. */
static int step_reset(sqlite3_stmt *st)
{
        int r = sqlite3_step(st) == SQLITE_DONE ? 0 : -EIO;

        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return r;
}

int queue_store_put(QueueStore *s, int64_t id, QueueMsg *const *msgs, size_t n, uint64_t next_seq)
{
        int r = 0;

        if (sqlite_exec(s->db, "BEGIN IMMEDIATE") < 0)
                return -EIO;
        for (size_t i = 0; r >= 0 && i < n; i++) {
                const QueueMsg *m = msgs[i];

                if (sqlite3_bind_int64(s->put, 1, id) != SQLITE_OK ||
                    sqlite3_bind_int64(s->put, 2, (int64_t)m->seq) != SQLITE_OK ||
                    sqlite3_bind_int64(s->put, 3, m->priority) != SQLITE_OK ||
                    sqlite3_bind_text(s->put, 4, m->sender, -1, SQLITE_STATIC) != SQLITE_OK ||
                    sqlite3_bind_blob(s->put, 5, m->len ? (const void *)m->data : "", (int)m->len,
                                      SQLITE_STATIC) != SQLITE_OK)
                        r = -EIO;
                else
                        r = step_reset(s->put);
        }
        if (r >= 0) {
                if (sqlite3_bind_int64(s->seq, 1, id) != SQLITE_OK ||
                    sqlite3_bind_int64(s->seq, 2, (int64_t)next_seq) != SQLITE_OK)
                        r = -EIO;
                else
                        r = step_reset(s->seq);
        }
        if (r < 0) {
                sqlite3_reset(s->put);
                sqlite3_clear_bindings(s->put);
        }
        return sqlite_tx_end(s->db, r);
}

int queue_store_take(QueueStore *s, int64_t id, const uint64_t *seqs, size_t n)
{
        int r = 0;

        if (n == 0)
                return 0;
        if (sqlite_exec(s->db, "BEGIN IMMEDIATE") < 0)
                return -EIO;
        for (size_t i = 0; r >= 0 && i < n; i++) {
                if (sqlite3_bind_int64(s->take, 1, id) != SQLITE_OK ||
                    sqlite3_bind_int64(s->take, 2, (int64_t)seqs[i]) != SQLITE_OK)
                        r = -EIO;
                else
                        r = step_reset(s->take);
        }
        return sqlite_tx_end(s->db, r);
}

/* ---- load --------------------------------------------------------------------- */

/* A column that must be an integer within lo..hi. */
static bool col_int(sqlite3_stmt *st, int i, int64_t lo, int64_t hi, int64_t *ret)
{
        int64_t v;

        if (sqlite3_column_type(st, i) != SQLITE_INTEGER)
                return false;
        v = sqlite3_column_int64(st, i);
        if (v < lo || v > hi)
                return false;
        *ret = v;
        return true;
}

/* A column that must be text of 0..max bytes, without NUL. */
static const char *col_text(sqlite3_stmt *st, int i, size_t max)
{
        const char *t;
        int n;

        if (sqlite3_column_type(st, i) != SQLITE_TEXT)
                return NULL;
        t = (const char *)sqlite3_column_text(st, i);
        n = sqlite3_column_bytes(st, i);
        if (!t || n < 0 || (size_t)n > max || strlen(t) != (size_t)n)
                return NULL;
        return t;
}

/* Reads queue id's offers into *ret (strings strdup'ed). Returns the count, -EBADMSG
 * with why, or -EIO/-ENOMEM. */
static int load_offers(QueueStore *s, int64_t id, QueueStoreOffer **ret, char *why)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        QueueStoreOffer *v = NULL;
        size_t n = 0;
        int r;

        if (sqlite_prepare_args(s->db, "SELECT app, topic, modes FROM offers WHERE queue = ?1",
                                SQL_ARGS(SQL_INT(id)), &st) < 0)
                return -EIO;
        while ((r = sqlite3_step(st)) == SQLITE_ROW) {
                const char *app = col_text(st, 0, QUEUE_STORE_NAME_MAX),
                           *topic = col_text(st, 1, QUEUE_STORE_NAME_MAX);
                QueueStoreOffer *nv;
                int64_t modes;

                if (!app || !topic || !col_int(st, 2, 1, 3, &modes) || (!*app == !*topic) ||
                    n >= 64) {
                        snprintf(why, QUEUE_STORE_WHY_MAX, "offer %zu is invalid", n + 1);
                        r = -EBADMSG;
                        goto fail;
                }
                nv = realloc(v, (n + 1) * sizeof(*v));
                if (!nv) {
                        r = -ENOMEM;
                        goto fail;
                }
                v = nv;
                v[n].app = strdup(app);
                v[n].topic = strdup(topic);
                v[n].modes = (uint32_t)modes;
                n++;
                if (!v[n - 1].app || !v[n - 1].topic) {
                        r = -ENOMEM;
                        goto fail;
                }
        }
        if (r != SQLITE_DONE) {
                r = -EIO;
                goto fail;
        }
        *ret = v;
        return (int)n;
fail:
        for (size_t i = 0; i < n; i++) {
                free((char *)v[i].app);
                free((char *)v[i].topic);
        }
        free(v);
        return r;
}

static void free_offers(QueueStoreOffer *v, int n)
{
        for (int i = 0; i < n; i++) {
                free((char *)v[i].app);
                free((char *)v[i].topic);
        }
        free(v);
}

/* Reads queue id's messages into q. Returns 0, -EBADMSG with why, -EIO, -ENOMEM. */
static int load_messages(QueueStore *s, int64_t id, Queue *q, char *why)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        if (sqlite_prepare_args(s->db,
                                "SELECT seq, priority, sender, data FROM messages WHERE queue = ?1 "
                                "ORDER BY seq",
                                SQL_ARGS(SQL_INT(id)), &st) < 0)
                return -EIO;
        while ((r = sqlite3_step(st)) == SQLITE_ROW) {
                int64_t seq, prio;
                const char *sender = col_text(st, 2, QUEUE_SENDER_MAX);
                int type = sqlite3_column_type(st, 3);
                const void *data;
                int len;
                QueueMsg *m;

                if (!col_int(st, 0, 1, INT64_MAX - 1, &seq) ||
                    !col_int(st, 1, 0, QUEUE_PRIORITY_MAX, &prio) || !sender) {
                        snprintf(why, QUEUE_STORE_WHY_MAX,
                                 "a message has an invalid seq, priority or sender");
                        return -EBADMSG;
                }
                if (type != SQLITE_BLOB && type != SQLITE_TEXT) {
                        snprintf(why, QUEUE_STORE_WHY_MAX, "message %lld: data is not a blob",
                                 (long long)seq);
                        return -EBADMSG;
                }
                data = sqlite3_column_blob(st, 3);
                len = sqlite3_column_bytes(st, 3);
                if (len < 0 || !queue_msg_fits(q, (size_t)len)) {
                        snprintf(why, QUEUE_STORE_WHY_MAX,
                                 "message %lld: %d bytes, over the queue's %u", (long long)seq, len,
                                 q->message_bytes_max);
                        return -EBADMSG;
                }
                if (queue_room(q, 1) < 0) {
                        snprintf(why, QUEUE_STORE_WHY_MAX, "more messages than depth_max %u",
                                 q->depth_max);
                        return -EBADMSG;
                }
                m = queue_msg_new((uint32_t)prio, sender, data, (size_t)len);
                if (!m)
                        return -ENOMEM;
                m->seq = (uint64_t)seq;
                queue_push(q, m);
        }
        return r == SQLITE_DONE ? 0 : -EIO;
}

int queue_store_load(QueueStore *s, QueueStoreLoadFn fn, QueueStoreRefuseFn refuse, void *userdata,
                     char *why)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int loaded = 0, r;

        if (sqlite_prepare(s->db,
                           "SELECT id, name, owner, depth_max, message_bytes_max, next_seq "
                           "FROM queues ORDER BY id",
                           &st) < 0) {
                snprintf(why, QUEUE_STORE_WHY_MAX, "cannot read the queues: %s",
                         queue_store_errmsg(s));
                return -EIO;
        }
        while ((r = sqlite3_step(st)) == SQLITE_ROW) {
                const char *name = col_text(st, 1, QUEUE_STORE_NAME_MAX),
                           *owner = col_text(st, 2, QUEUE_STORE_NAME_MAX);
                int64_t id, depth_max, bytes_max, next_seq;
                char qwhy[QUEUE_STORE_WHY_MAX] = "";
                QueueStoreOffer *offers = NULL;
                int n_offers = 0, k;
                Queue q;

                if (!col_int(st, 0, 1, INT64_MAX, &id) || !name || !*name || !owner || !*owner ||
                    !col_int(st, 3, 1, QUEUE_DEPTH_LIMIT, &depth_max) ||
                    !col_int(st, 4, 1, QUEUE_MESSAGE_MAX, &bytes_max) ||
                    !col_int(st, 5, 1, INT64_MAX, &next_seq)) {
                        if (refuse)
                                refuse(name && *name ? name : "?",
                                       "its row has a value out of range or of the wrong type",
                                       userdata);
                        continue;
                }
                (void)queue_init(&q, (uint32_t)depth_max, (uint32_t)bytes_max);
                q.next_seq = (uint64_t)next_seq;
                k = load_offers(s, id, &offers, qwhy);
                if (k >= 0) {
                        n_offers = k;
                        k = load_messages(s, id, &q, qwhy);
                }
                if (k == -EBADMSG) {
                        if (refuse)
                                refuse(name, qwhy, userdata);
                        queue_clear(&q);
                        free_offers(offers, n_offers);
                        continue;
                }
                if (k < 0) {
                        queue_clear(&q);
                        free_offers(offers, n_offers);
                        snprintf(why, QUEUE_STORE_WHY_MAX, "cannot read queue %s: %s", name,
                                 k == -ENOMEM ? "out of memory" : queue_store_errmsg(s));
                        return k;
                }
                k = fn(&(QueueStoreInfo){.id = id,
                                         .name = name,
                                         .owner = owner,
                                         .depth_max = (uint32_t)depth_max,
                                         .message_bytes_max = (uint32_t)bytes_max,
                                         .offers = offers,
                                         .n_offers = (size_t)n_offers},
                       &q, userdata);
                queue_clear(&q);
                free_offers(offers, n_offers);
                if (k < 0)
                        return k;
                loaded++;
        }
        if (r != SQLITE_DONE) {
                snprintf(why, QUEUE_STORE_WHY_MAX, "cannot read the queues: %s",
                         queue_store_errmsg(s));
                return -EIO;
        }
        return loaded;
}
