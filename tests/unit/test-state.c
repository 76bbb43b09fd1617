/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * State directory tests: uid allocation in state.db (lowest free uid in the range,
 * kept across reopening, serialised between processes), the per-app data directory,
 * what state_open refuses, and app identity (claims by folder and key, refusals,
 * forget). Each test works in its own temporary directory. Only the data
 * directory's owner needs root: that test is a case of its own ("owner"), reported
 * as skipped (exit 77) as another user.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/macro.h"
#include "supervisor/state.h"
#include "test-util.h"

/* Any range will do: the registry only records numbers (no chown but the data dir). */
#define BASE  ((uid_t)0x70000000u)
#define BLOCK STATE_IDS_PER_APP
/* The uid of the app given the k-th block of the range at BASE. */
#define UID(k) ((uid_t)(BASE + (k)*BLOCK + STATE_APP_UID_OFFSET))

static char top_dir[] = "/tmp/test-state-XXXXXX";

/* ---- helpers ------------------------------------------------------------------------ */

/* The running test's name for messages (its function is <name>_fn). */
#define TEST_NAME tcase_name()

static void setup(void)
{
        /* Each test case runs this once: a fresh template each time. */
        strcpy(top_dir + strlen(top_dir) - 6, "XXXXXX");
        if (!mkdtemp(top_dir)) {
                fprintf(stderr, "mkdtemp %s: %m\n", top_dir);
                abort();
        }
}

static void teardown(void)
{
        rm_tree(top_dir);
}

/* A fresh path under the suite's directory that does not exist yet. Caller frees. */
static char *new_state_path(const char *name)
{
        char *p;

        ck_assert_int_ge(asprintf(&p, "%s/%s", top_dir, name), 0);
        ck_assert_int_eq(access(p, F_OK), -1);
        return p;
}

static uid_t app_uid(State *s, const char *id)
{
        uid_t uid = (uid_t)-1;
        int r = state_app_uid(s, id, &uid, NULL);

        ck_assert_msg(r == 0, "state_app_uid(%s): %s", id, strerror(-r));
        return uid;
}

/* Runs sql on path's state.db directly, as another tool (or a bug) might. */
static void db_sql(const char *path, const char *sql)
{
        _cleanup_free_ char *db = NULL;
        sqlite3 *h = NULL;
        char *msg = NULL;
        int r;

        ck_assert_int_ge(asprintf(&db, "%s/state.db", path), 0);
        ck_assert_int_eq(sqlite3_open(db, &h), SQLITE_OK);
        r = sqlite3_exec(h, sql, NULL, NULL, &msg);
        ck_assert_msg(r == SQLITE_OK, "%s: %s", sql, msg ? msg : "?");
        sqlite3_free(msg);
        ck_assert_int_eq(sqlite3_close(h), SQLITE_OK);
}

/* Writes a small manifest.json into dirfd. 0 or -errno. */
static int write_manifest(int dirfd)
{
        static const char m[] = "{\"id\":\"org.example.a\",\"runtime\":\"native\",\"entry\":\"x\"}";
        int fd = openat(dirfd, "manifest.json", O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        ssize_t n;

        if (fd < 0)
                return -errno;
        n = write(fd, m, sizeof m - 1);
        close(fd);
        return n == (ssize_t)(sizeof m - 1) ? 0 : -EIO;
}

static int write_string_file(const char *path, const char *text)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
        ssize_t n;

        if (fd < 0)
                return -errno;
        n = write(fd, text, strlen(text));
        close(fd);
        return n == (ssize_t)strlen(text) ? 0 : -EIO;
}

/* ---- tests -------------------------------------------------------------------------- */

START_TEST(test_alloc)
{
        _cleanup_(state_freep) State *s = NULL;
        _cleanup_free_ char *path = new_state_path("alloc");
        _cleanup_free_ char *db = NULL;
        struct stat st;
        uid_t uid = 0;

        ck_assert_int_eq(state_open(path, BASE, 16 * BLOCK, &s), 0);
        ck_assert_str_eq(state_path(s), path);
        ck_assert_int_eq(stat(path, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0711);
        ck_assert_int_ge(asprintf(&db, "%s/state.db", path), 0);
        ck_assert_int_eq(stat(db, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0600);

        ck_assert_uint_eq(app_uid(s, "org.example.first"), UID(0));
        ck_assert_uint_eq(app_uid(s, "org.example.second"), UID(1));
        ck_assert_uint_eq(app_uid(s, "org.example.first"), UID(0));
        ck_assert_uint_eq(app_uid(s, "org.example.second"), UID(1));
        ck_assert_uint_eq(app_uid(s, "org.example.third"), UID(2));
        /* Ids are compared exactly. */
        ck_assert_int_eq(state_app_uid(s, "org.example.First", &uid, NULL), 0);
        ck_assert_uint_eq(uid, UID(3));
}
END_TEST

START_TEST(test_range_full)
{
        _cleanup_(state_freep) State *s = NULL;
        _cleanup_free_ char *path = new_state_path("full");
        uid_t uid = 12345;

        ck_assert_int_eq(state_open(path, BASE, 2 * BLOCK, &s), 0);
        ck_assert_uint_eq(app_uid(s, "org.example.a"), UID(0));
        ck_assert_uint_eq(app_uid(s, "org.example.b"), UID(1));
        ck_assert_int_eq(state_app_uid(s, "org.example.c", &uid, NULL), -ENOSPC);
        ck_assert_uint_eq(uid, 12345); /* untouched on failure */
        ck_assert_int_eq(state_app_uid(s, "org.example.d", &uid, NULL), -ENOSPC);
        /* Apps that have a uid keep getting it. */
        ck_assert_uint_eq(app_uid(s, "org.example.a"), UID(0));
        ck_assert_uint_eq(app_uid(s, "org.example.b"), UID(1));
}
END_TEST

START_TEST(test_gap_reused)
{
        _cleanup_(state_freep) State *s = NULL;
        _cleanup_free_ char *path = new_state_path("gap");
        uid_t uid;

        ck_assert_int_eq(state_open(path, BASE, 4 * BLOCK, &s), 0);
        ck_assert_uint_eq(app_uid(s, "org.example.a"), UID(0));
        ck_assert_uint_eq(app_uid(s, "org.example.b"), UID(1));
        ck_assert_uint_eq(app_uid(s, "org.example.c"), UID(2));

        /* A hole in the middle is the lowest free uid, before the untouched top. */
        db_sql(path, "DELETE FROM apps WHERE id = 'org.example.b'");
        ck_assert_uint_eq(app_uid(s, "org.example.d"), UID(1));
        ck_assert_uint_eq(app_uid(s, "org.example.e"), UID(3));
        ck_assert_int_eq(state_app_uid(s, "org.example.f", &uid, NULL), -ENOSPC);

        /* A hole at the base itself, then two holes: lowest first. */
        db_sql(path, "DELETE FROM apps WHERE id IN ('org.example.a', 'org.example.c')");
        ck_assert_uint_eq(app_uid(s, "org.example.g"), UID(0));
        ck_assert_uint_eq(app_uid(s, "org.example.h"), UID(2));
        ck_assert_int_eq(state_app_uid(s, "org.example.f", &uid, NULL), -ENOSPC);
        ck_assert_uint_eq(app_uid(s, "org.example.d"), UID(1));
}
END_TEST

/*
 * The uid cache (state.c, StateUidCache): a known app's ids come from memory while
 * state.db is unchanged, and any commit by another State (cellad's store requests
 * run on their own) or another program empties it. The case it must never get
 * wrong: an app forgotten elsewhere and its block given to another app; the first
 * State must then hand the old id a new block, never the other app's uid.
 */
START_TEST(test_uid_cache)
{
        _cleanup_(state_freep) State *s = NULL, *other = NULL;
        _cleanup_free_ char *path = new_state_path("uidcache"), *db = NULL;
        sqlite3 *h = NULL;
        uid_t uid = 0;

        ck_assert_int_eq(state_open(path, BASE, 8 * BLOCK, &s), 0);
        ck_assert_int_eq(state_open(path, BASE, 8 * BLOCK, &other), 0);
        ck_assert_uint_eq(app_uid(s, "org.example.a"), UID(0));
        ck_assert_uint_eq(app_uid(s, "org.example.b"), UID(1));
        /* Read twice: the second read of each is the one cached (no commit between
         * the counter's reads). */
        ck_assert_uint_eq(app_uid(s, "org.example.a"), UID(0));
        ck_assert_uint_eq(app_uid(s, "org.example.b"), UID(1));

        /* A held EXCLUSIVE lock keeps every reader out of state.db (rollback journal):
         * a cached app still gets its ids, at once, where a query would wait for the
         * busy timeout and fail. Nothing is written, so the cache stays valid. */
        ck_assert_int_ge(asprintf(&db, "%s/state.db", path), 0);
        ck_assert_int_eq(sqlite3_open(db, &h), SQLITE_OK);
        ck_assert_int_eq(sqlite3_exec(h, "BEGIN EXCLUSIVE", NULL, NULL, NULL), SQLITE_OK);
        ck_assert_int_eq(state_app_uid(s, "org.example.a", &uid, NULL), 0);
        ck_assert_uint_eq(uid, UID(0));
        ck_assert_int_eq(sqlite3_exec(h, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
        ck_assert_int_eq(sqlite3_close(h), SQLITE_OK);

        /* Forgotten through another State, its block taken by a new app there. */
        ck_assert_int_eq(state_app_forget(other, "org.example.a"), 1);
        ck_assert_uint_eq(app_uid(other, "org.example.c"), UID(0));
        ck_assert_uint_eq(app_uid(s, "org.example.c"), UID(0));
        ck_assert_uint_eq(app_uid(s, "org.example.a"), UID(2));
        ck_assert_uint_eq(app_uid(other, "org.example.a"), UID(2));
        ck_assert_uint_eq(app_uid(s, "org.example.b"), UID(1));

        /* The same by a program writing state.db directly. */
        ck_assert_uint_eq(app_uid(s, "org.example.b"), UID(1));
        db_sql(path, "DELETE FROM apps WHERE id = 'org.example.b'");
        ck_assert_uint_eq(app_uid(other, "org.example.d"), UID(1));
        ck_assert_uint_eq(app_uid(s, "org.example.b"), UID(3));
        ck_assert_uint_eq(app_uid(s, "org.example.d"), UID(1));
}
END_TEST

/* The block of the app, checked against its uid. */
static uid_t app_block(State *s, const char *id, uid_t *ret_uid)
{
        uid_t base = 0;
        int r = state_app_uid(s, id, ret_uid, &base);

        ck_assert_msg(r == 0, "state_app_uid(%s): %s", id, strerror(-r));
        ck_assert_uint_ne(base, 0);
        return base;
}

START_TEST(test_out_of_range_rows)
{
        _cleanup_(state_freep) State *s = NULL;
        _cleanup_free_ char *path = new_state_path("outside");
        uid_t uid;

        /* Blocks recorded under another range do not count, unless they overlap. */
        ck_assert_int_eq(state_open(path, BASE, 3 * BLOCK, &s), 0);
        db_sql(path, "INSERT INTO apps (id, uid, ids_base) VALUES"
                     " ('org.example.low', 1879048191, 1879048191 - 65536 - 1000),"
                     " ('org.example.high', 1879048192 + 3 * 65536 + 1000,"
                     "   1879048192 + 3 * 65536),"
                     " ('org.example.mid', 1879048192 + 65536 + 1005, 1879048192 + 65536 + 5)");
        /* mid's block starts 5 ids into the second block and runs into the third. */
        ck_assert_uint_eq(app_uid(s, "org.example.a"), UID(0));
        ck_assert_int_eq(state_app_uid(s, "org.example.c", &uid, NULL), -ENOSPC);
        ck_assert_uint_eq(app_uid(s, "org.example.low"), BASE - 1);
}
END_TEST

/*
 * Every app's block: disjoint from every other app's block and uid, its uid at
 * STATE_APP_UID_OFFSET in it; and a state dir from before blocks (schema 2, one uid
 * per app) keeps each app's uid, so its files stay its own, with a new block for the
 * other ids that holds no other app's uid.
 */
START_TEST(test_blocks)
{
        _cleanup_(state_freep) State *s = NULL;
        _cleanup_free_ char *path = new_state_path("blocks");
        uid_t a_uid, b_uid, old_uid, other_uid, a, b, old, other, again, uid = 0;

        ck_assert_int_eq(mkdir(path, 0711), 0);
        /* As cella wrote it before blocks: schema 2, uids in 0x70000000 + 65536. */
        db_sql(path, "CREATE TABLE apps (id TEXT PRIMARY KEY NOT NULL,"
                     " uid INTEGER UNIQUE NOT NULL,"
                     " created INTEGER NOT NULL DEFAULT (strftime('%s','now')),"
                     " path TEXT, dev INTEGER, ino INTEGER, key_id TEXT,"
                     " digest TEXT, claimed_at INTEGER, updated_at INTEGER);"
                     "INSERT INTO apps (id, uid) VALUES ('org.example.old', 1879048192),"
                     " ('org.example.other', 1879048193);"
                     "PRAGMA user_version = 2;");
        /* A range that starts where the old uids are: their block is skipped. */
        ck_assert_int_eq(state_open(path, BASE, 4 * BLOCK, &s), 0);
        a = app_block(s, "org.example.a", &a_uid);
        ck_assert_uint_eq(a, BASE + BLOCK);
        ck_assert_uint_eq(a_uid, a + STATE_APP_UID_OFFSET);
        old = app_block(s, "org.example.old", &old_uid);
        ck_assert_uint_eq(old_uid, BASE); /* kept */
        ck_assert_uint_eq(old, BASE + 2 * BLOCK);
        b = app_block(s, "org.example.b", &b_uid);
        ck_assert_uint_eq(b, BASE + 3 * BLOCK);
        ck_assert_uint_eq(b_uid, b + STATE_APP_UID_OFFSET);
        /* Full: the old app without a block cannot get one, and says so. */
        ck_assert_int_eq(state_app_uid(s, "org.example.other", &uid, &other), -ENOSPC);
        s = state_free(s);

        /* Reopened with more room: the blocks are kept, other gets the next one. */
        ck_assert_int_eq(state_open(path, BASE, 5 * BLOCK, &s), 0);
        again = app_block(s, "org.example.old", &uid);
        ck_assert_uint_eq(again, old);
        ck_assert_uint_eq(uid, old_uid);
        other = app_block(s, "org.example.other", &other_uid);
        ck_assert_uint_eq(other_uid, BASE + 1);
        ck_assert_uint_eq(other, BASE + 4 * BLOCK);
        /* No id of any block is another app's. */
        {
                const uid_t bases[] = {a, old, b, other};
                const uid_t uids[] = {a_uid, old_uid, b_uid, other_uid};

                for (size_t i = 0; i < ELEMENTSOF(bases); i++)
                        for (size_t j = 0; j < ELEMENTSOF(bases); j++) {
                                if (i == j)
                                        continue;
                                ck_assert(bases[i] + BLOCK <= bases[j] ||
                                          bases[j] + BLOCK <= bases[i]);
                                ck_assert(uids[j] < bases[i] || uids[j] >= bases[i] + BLOCK);
                        }
        }
}
END_TEST

START_TEST(test_reopen)
{
        _cleanup_free_ char *path = new_state_path("reopen");
        State *s = NULL;

        ck_assert_int_eq(state_open(path, BASE, 8 * BLOCK, &s), 0);
        ck_assert_uint_eq(app_uid(s, "org.example.a"), UID(0));
        ck_assert_uint_eq(app_uid(s, "org.example.b"), UID(1));
        s = state_free(s);
        ck_assert_ptr_null(s);

        ck_assert_int_eq(state_open(path, BASE, 8 * BLOCK, &s), 0);
        ck_assert_uint_eq(app_uid(s, "org.example.b"), UID(1));
        ck_assert_uint_eq(app_uid(s, "org.example.a"), UID(0));
        ck_assert_uint_eq(app_uid(s, "org.example.c"), UID(2));
        s = state_free(s);

        /* A new range: old apps keep their uid, new ones come from the new range. */
        ck_assert_int_eq(state_open(path, BASE + 1000 * BLOCK, 8 * BLOCK, &s), 0);
        ck_assert_uint_eq(app_uid(s, "org.example.a"), UID(0));
        ck_assert_uint_eq(app_uid(s, "org.example.c"), UID(2));
        ck_assert_uint_eq(app_uid(s, "org.example.d"), UID(1000));
        s = state_free(s);
        ck_assert_ptr_null(state_free(NULL));
}
END_TEST

#define N_CONCURRENT 8

START_TEST(test_concurrent)
{
        _cleanup_free_ char *path = new_state_path("concurrent");
        _cleanup_(state_freep) State *s = NULL;
        uid_t uids[N_CONCURRENT];
        int go[2], res[2];
        pid_t pids[N_CONCURRENT];

        /* All open the same state, which none of them has created yet, and allocate
         * at once: the schema and every uid are written by whoever gets the lock,
         * the others wait in the busy timeout. The range has exactly one uid each,
         * so a lost update shows as a failure or a duplicate. */
        ck_assert_int_eq(pipe2(go, O_CLOEXEC), 0);
        ck_assert_int_eq(pipe2(res, O_CLOEXEC), 0);
        for (int i = 0; i < N_CONCURRENT; i++) {
                pids[i] = fork();
                ck_assert_int_ge(pids[i], 0);
                if (pids[i] == 0) {
                        State *c = NULL;
                        char id[64], b;
                        uid_t uid;
                        int r;

                        close(go[1]);
                        if (read(go[0], &b, 1) != 0) /* EOF: go */
                                _exit(90);
                        snprintf(id, sizeof id, "org.example.app%d", i);
                        r = state_open(path, BASE, N_CONCURRENT * BLOCK, &c);
                        if (r < 0)
                                _exit(100 + (-r & 0x3f));
                        r = state_app_uid(c, id, &uid, NULL);
                        if (r < 0)
                                _exit(150 + (-r & 0x3f));
                        if (write(res[1], &uid, sizeof uid) != sizeof uid)
                                _exit(91);
                        state_free(c);
                        _exit(0);
                }
        }
        close(go[0]);
        close(go[1]); /* all go */
        close(res[1]);
        for (int i = 0; i < N_CONCURRENT; i++) {
                int status;

                ck_assert_int_eq(waitpid(pids[i], &status, 0), pids[i]);
                ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
                              "child %d: status 0x%x", i, status);
        }
        for (int i = 0; i < N_CONCURRENT; i++)
                ck_assert_int_eq(read(res[0], &uids[i], sizeof uids[i]), sizeof uids[i]);
        close(res[0]);

        for (int i = 0; i < N_CONCURRENT; i++) {
                ck_assert_uint_ge(uids[i], UID(0));
                ck_assert_uint_le(uids[i], UID(N_CONCURRENT - 1));
                ck_assert_uint_eq((uids[i] - BASE) % BLOCK, STATE_APP_UID_OFFSET);
                for (int j = 0; j < i; j++)
                        ck_assert_uint_ne(uids[i], uids[j]);
        }
        /* And that is what the registry says. */
        ck_assert_int_eq(state_open(path, BASE, N_CONCURRENT * BLOCK, &s), 0);
        for (int i = 0; i < N_CONCURRENT; i++) {
                char id[64];
                uid_t uid;
                bool found = false;

                snprintf(id, sizeof id, "org.example.app%d", i);
                uid = app_uid(s, id);
                for (int j = 0; j < N_CONCURRENT; j++)
                        found = found || uids[j] == uid;
                ck_assert_msg(found, "%s has uid %u, which no child got", id, (unsigned)uid);
        }
}
END_TEST

START_TEST(test_data_dir)
{
        _cleanup_(state_freep) State *s = NULL;
        _cleanup_free_ char *path = new_state_path("data");
        _cleanup_free_ char *dir = NULL, *want = NULL, *app = NULL;
        bool root = geteuid() == 0;
        struct stat st;
        uid_t uid;

        ck_assert_int_eq(state_open(path, BASE, 16 * BLOCK, &s), 0);
        /* As another user, only our own uid can be the owner. */
        uid = root ? app_uid(s, "org.example.notes") : getuid();
        ck_assert_int_eq(state_app_data_dir(s, "org.example.notes", uid, &dir), 0);
        ck_assert_int_ge(asprintf(&want, "%s/apps/org.example.notes/data", path), 0);
        ck_assert_str_eq(dir, want);
        ck_assert_int_eq(lstat(dir, &st), 0);
        ck_assert(S_ISDIR(st.st_mode));
        ck_assert_uint_eq(st.st_mode & 07777, 0700);
        ck_assert_int_ge(asprintf(&app, "%s/apps/org.example.notes", path), 0);
        {
                struct stat sa;

                ck_assert_int_eq(stat(app, &sa), 0);
                ck_assert_uint_eq(sa.st_mode & 07777, 0711);
        }
        if (!root)
                ck_assert_uint_eq(st.st_uid, uid);
}
END_TEST

/* As root (a test case of its own, "owner"): the data dir belongs to the app's uid:uid,
 * and an existing one with the wrong owner is corrected. */
START_TEST(test_data_dir_owner)
{
        _cleanup_(state_freep) State *s = NULL;
        _cleanup_free_ char *path = new_state_path("owner");
        _cleanup_free_ char *dir = NULL, *dir2 = NULL;
        struct stat st;
        uid_t uid;

        ck_assert_int_eq(state_open(path, BASE, 16 * BLOCK, &s), 0);
        uid = app_uid(s, "org.example.notes");
        ck_assert_int_eq(state_app_data_dir(s, "org.example.notes", uid, &dir), 0);
        ck_assert_int_eq(lstat(dir, &st), 0);
        ck_assert_uint_eq(st.st_uid, uid);
        ck_assert_uint_eq(st.st_gid, uid);

        /* An existing directory with the wrong owner is corrected. */
        ck_assert_int_eq(chown(dir, 0, 0), 0);
        ck_assert_int_eq(state_app_data_dir(s, "org.example.notes", uid, &dir2), 0);
        ck_assert_str_eq(dir2, dir);
        ck_assert_int_eq(lstat(dir, &st), 0);
        ck_assert_uint_eq(st.st_uid, uid);
        ck_assert_uint_eq(st.st_gid, uid);
        ck_assert_uint_eq(st.st_mode & 07777, 0700);
}
END_TEST

START_TEST(test_data_dir_bad_id)
{
        static const char *const bad[] = {
                "../x",
                "..",
                "x",
                "",
                "org.example/../../x",
                "org/example",
                ".org.example",
                "org..example",
                "org.example.",
                "1org.example",
                "org.example notes",
        };
        _cleanup_(state_freep) State *s = NULL;
        _cleanup_free_ char *path = new_state_path("badid");
        _cleanup_free_ char *escaped = NULL;

        ck_assert_int_eq(state_open(path, BASE, 16 * BLOCK, &s), 0);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                char *dir = (char *)0x1;

                uid_t uid = 12345;

                ck_assert_msg(state_app_data_dir(s, bad[i], getuid(), &dir) == -EINVAL, "id \"%s\"",
                              bad[i]);
                ck_assert_ptr_eq(dir, (char *)0x1); /* untouched */
                /* And no uid is ever recorded for it. */
                ck_assert_msg(state_app_uid(s, bad[i], &uid, NULL) == -EINVAL, "uid for id \"%s\"",
                              bad[i]);
                ck_assert_uint_eq(uid, 12345);
        }
        ck_assert_int_eq(state_app_data_dir(s, NULL, getuid(), &(char *){NULL}), -EINVAL);

        /* At the bound: 128 bytes is an id, 129 is not (MANIFEST_ID_MAX). */
        {
                _cleanup_free_ char *dir = NULL;
                char id[130];

                memset(id, 'a', 63);
                id[63] = '.';
                memset(id + 64, 'b', 62);
                memcpy(id + 126, ".c", 3);
                ck_assert_uint_eq(strlen(id), 128);
                ck_assert_int_eq(state_app_data_dir(s, id, getuid(), &dir), 0);
                memcpy(id + 126, "b.c", 4);
                ck_assert_uint_eq(strlen(id), 129);
                ck_assert_int_eq(state_app_data_dir(s, id, getuid(), &(char *){NULL}), -EINVAL);
        }
        /* Nothing was created for "../x" next to apps/. */
        ck_assert_int_ge(asprintf(&escaped, "%s/x", path), 0);
        ck_assert_int_eq(access(escaped, F_OK), -1);
}
END_TEST

START_TEST(test_bad_range)
{
        static const struct {
                uid_t base;
                uint32_t count;
                int r;
        } cases[] = {
                {BASE, 0, -EINVAL},
                {0, BLOCK, -EINVAL},
                {0, 0, -EINVAL},
                /* Whole blocks only. */
                {BASE, 16, -EINVAL},
                {BASE, BLOCK - 1, -EINVAL},
                {BASE, BLOCK + 1, -EINVAL},
                {0xFFFFFFFFu, BLOCK, -EINVAL},
                {0xFFFF0000u, BLOCK, -EINVAL},
                {1, UINT32_MAX, -EINVAL},
                /* The top: (uid_t)-1 and -2 are never valid uids (systemd). */
                {0xFFFEFFFFu, BLOCK, -EINVAL},
                {0xFFFEFFFEu, BLOCK, 0},
                {1, 0xFFFF0000u, 0},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *path = NULL;
                State *s = (State *)0x1;
                int r;

                ck_assert_int_ge(asprintf(&path, "%s/range-%zu", top_dir, i), 0);
                r = state_open(path, cases[i].base, cases[i].count, &s);
                ck_assert_msg(r == cases[i].r, "base %#x count %#x: %d, expected %d",
                              (unsigned)cases[i].base, (unsigned)cases[i].count, r, cases[i].r);
                if (r < 0) {
                        ck_assert_ptr_eq(s, (State *)0x1);
                        ck_assert_int_eq(access(path, F_OK), -1); /* nothing created */
                        continue;
                }
                ck_assert_uint_eq(app_uid(s, "org.example.top"),
                                  cases[i].base + STATE_APP_UID_OFFSET);
                s = state_free(s);
        }
}
END_TEST

START_TEST(test_newer_schema)
{
        _cleanup_free_ char *path = new_state_path("newer");
        State *s = (State *)0x1;

        ck_assert_int_eq(mkdir(path, 0711), 0);
        db_sql(path, "PRAGMA user_version = 99");
        /* Opening reads nothing; the first read refuses the newer schema, and
         * records nothing. */
        ck_assert_int_eq(state_open(path, BASE, 16 * BLOCK, &s), 0);
        {
                uid_t uid = 12345;

                ck_assert_int_eq(state_app_uid(s, "org.example.a", &uid, NULL), -EPROTONOSUPPORT);
                ck_assert_uint_eq(uid, 12345);
        }
        s = state_free(s);

        /* The current version opens, and a second open finds it current. */
        db_sql(path, "PRAGMA user_version = 0");
        ck_assert_int_eq(state_open(path, BASE, 16 * BLOCK, &s), 0);
        ck_assert_uint_eq(app_uid(s, "org.example.a"), UID(0));
        s = state_free(s);
        ck_assert_int_eq(state_open(path, BASE, 16 * BLOCK, &s), 0);
        ck_assert_uint_eq(app_uid(s, "org.example.a"), UID(0));
        s = state_free(s);
}
END_TEST

/* ---- identity (state_app_claim) ------------------------------------------------------ */

static StateClaim claim_of(const char *path, const char *key, const char *digest)
{
        return (StateClaim){.path = (char *)path,
                            .dev = 1,
                            .ino = 2,
                            .key_id = (char *)key,
                            .digest = (char *)digest};
}

/* An unsigned app is its folder: the same folder again (changed or not) is the app; a
 * second folder declaring the id is refused, naming the first; forget frees the id. */
START_TEST(test_claim_unsigned)
{
        _cleanup_free_ char *path = new_state_path("claim-unsigned");
        _cleanup_(state_freep) State *s = NULL;
        StateClaim a = claim_of("/apps/a", NULL, "d1"), b = claim_of("/apps/b", NULL, "d1");
        StateClaim rec = {};
        _cleanup_free_ char *data = NULL;
        uid_t uid;

        ck_assert_int_eq(state_open(path, BASE, 16 * BLOCK, &s), 0);
        ck_assert_int_eq(state_app_claim(s, "org.example.a", &a, 1000, NULL), STATE_CLAIM_NEW);
        uid = app_uid(s, "org.example.a");
        ck_assert_uint_eq(uid, UID(0));
        ck_assert_int_eq(state_app_claim(s, "org.example.a", &a, 2000, NULL), STATE_CLAIM_SAME);
        a.digest = (char *)"d2"; /* the manifest changed: an update */
        ck_assert_int_eq(state_app_claim(s, "org.example.a", &a, 3000, NULL), STATE_CLAIM_UPDATED);
        ck_assert_int_eq(state_app_claim(s, "org.example.a", &a, 4000, NULL), STATE_CLAIM_SAME);

        ck_assert_int_eq(state_app_data_path(s, "org.example.a", &data), 0);
        ck_assert_int_eq(state_app_claim(s, "org.example.a", &b, 5000, &rec), -EEXIST);
        ck_assert_str_eq(rec.path, "/apps/a");
        ck_assert_ptr_null(rec.key_id);
        ck_assert_str_eq(rec.digest, "d2");
        ck_assert_int_eq(rec.claimed_at_ms, 1000);
        state_claim_clear(&rec);
        /* a signed bundle in another folder is another app too */
        b.key_id = (char *)"0123456789abcdef";
        ck_assert_int_eq(state_app_claim(s, "org.example.a", &b, 5000, NULL), -EEXIST);
        /* the refusal changed nothing: the uid and the data stay the first app's */
        ck_assert_uint_eq(app_uid(s, "org.example.a"), uid);
        ck_assert_int_eq(access(data, F_OK), 0);

        ck_assert_int_eq(state_app_forget(s, "org.example.a"), 1);
        ck_assert_int_eq(access(data, F_OK), -1);
        ck_assert_int_eq(state_app_forget(s, "org.example.a"), 0);
        ck_assert_int_eq(state_app_claim(s, "org.example.a", &b, 6000, NULL), STATE_CLAIM_NEW);
        ck_assert_int_eq(state_app_claim(s, "org.example.a", &a, 6000, NULL), -EEXIST);
        ck_assert_int_eq(state_app_claim(s, "bad id", &a, 6000, NULL), -EINVAL);
        a.path = (char *)"relative";
        ck_assert_int_eq(state_app_claim(s, "org.example.b", &a, 6000, NULL), -EINVAL);
}
END_TEST

/* The store's version folders of one id (<state>/apps/<id>/<version>, docs/store.md)
 * are one app: the store checked the signer of each; a folder outside, a folder of
 * another id, or a deeper one is not. */
START_TEST(test_claim_store_versions)
{
        _cleanup_free_ char *path = new_state_path("claim-store"), *canon = NULL, *v1 = NULL,
                            *v2 = NULL, *other = NULL, *deep = NULL, *notver = NULL, *into = NULL;
        _cleanup_(state_freep) State *s = NULL;
        StateClaim c;

        ck_assert_int_eq(state_open(path, BASE, 16 * BLOCK, &s), 0);
        canon = realpath(path, NULL);
        ck_assert_ptr_nonnull(canon);
        ck_assert_int_ge(asprintf(&v1, "%s/apps/org.example.s/1.0", canon), 0);
        ck_assert_int_ge(asprintf(&v2, "%s/apps/org.example.s/2.0", canon), 0);
        ck_assert_int_ge(asprintf(&other, "%s/apps/org.example.t/3.0", canon), 0);
        ck_assert_int_ge(asprintf(&deep, "%s/apps/org.example.s/2.0/sub", canon), 0);
        ck_assert_int_ge(asprintf(&notver, "%s/apps/org.example.s/data", canon), 0);
        c = claim_of(v1, NULL, "d1");
        ck_assert_int_eq(state_app_claim(s, "org.example.s", &c, 1000, NULL), STATE_CLAIM_NEW);
        c = claim_of(v2, NULL, "d2");
        ck_assert_int_eq(state_app_claim(s, "org.example.s", &c, 2000, NULL), STATE_CLAIM_UPDATED);
        c = claim_of(other, NULL, "d3");
        ck_assert_int_eq(state_app_claim(s, "org.example.s", &c, 3000, NULL), -EEXIST);
        c = claim_of(deep, NULL, "d3");
        ck_assert_int_eq(state_app_claim(s, "org.example.s", &c, 3000, NULL), -EEXIST);
        c = claim_of(notver, NULL, "d3");
        ck_assert_int_eq(state_app_claim(s, "org.example.s", &c, 3000, NULL), -EEXIST);
        c = claim_of("/elsewhere/app", NULL, "d3");
        ck_assert_int_eq(state_app_claim(s, "org.example.s", &c, 3000, NULL), -EEXIST);
        /* and from outside into the store is no update either */
        c = claim_of("/elsewhere/app", NULL, "d1");
        ck_assert_int_eq(state_app_claim(s, "org.example.u", &c, 4000, NULL), STATE_CLAIM_NEW);
        ck_assert_int_ge(asprintf(&into, "%s/apps/org.example.u/1.0", canon), 0);
        c = claim_of(into, NULL, "d1");
        ck_assert_int_eq(state_app_claim(s, "org.example.u", &c, 5000, NULL), -EEXIST);
}
END_TEST

/* A signed app is its key: from any folder with the same key it is the app (moved or
 * updated); another key, or the same folder unsigned, is refused. An unsigned app's
 * folder signed later binds the id to that key. */
START_TEST(test_claim_signed)
{
        _cleanup_free_ char *path = new_state_path("claim-signed");
        _cleanup_(state_freep) State *s = NULL;
        StateClaim k1 = claim_of("/apps/a", "1111111111111111", "d1");
        StateClaim moved = claim_of("/opt/a", "1111111111111111", "d2");
        StateClaim k2 = claim_of("/apps/a", "2222222222222222", "d1");
        StateClaim unsigned_copy = claim_of("/opt/a", NULL, "d2");
        StateClaim rec = {};

        ck_assert_int_eq(state_open(path, BASE, 16 * BLOCK, &s), 0);
        ck_assert_int_eq(state_app_claim(s, "org.example.a", &k1, 1, NULL), STATE_CLAIM_NEW);
        ck_assert_int_eq(state_app_claim(s, "org.example.a", &moved, 2, NULL), STATE_CLAIM_UPDATED);
        ck_assert_int_eq(state_app_claim(s, "org.example.a", &k2, 3, &rec), -EEXIST);
        ck_assert_str_eq(rec.key_id, "1111111111111111");
        ck_assert_str_eq(rec.path, "/opt/a");
        state_claim_clear(&rec);
        ck_assert_int_eq(state_app_claim(s, "org.example.a", &unsigned_copy, 4, NULL), -EEXIST);

        /* unsigned first, then signed in the same folder: bound to the key */
        ck_assert_int_eq(state_app_claim(s, "org.example.b", &unsigned_copy, 5, NULL),
                         STATE_CLAIM_NEW);
        ck_assert_int_eq(state_app_claim(s, "org.example.b", &moved, 6, NULL), STATE_CLAIM_UPDATED);
        ck_assert_int_eq(state_app_claim(s, "org.example.b", &unsigned_copy, 7, NULL), -EEXIST);
        ck_assert_int_eq(state_app_claim(s, "org.example.b", &k1, 8, NULL), STATE_CLAIM_UPDATED);
}
END_TEST

/* An id under a recorded app's ("org.v.inbox" under "org.v") is that app's namespace:
 * refused unless signed by the parent's key, or recorded before the parent was. */
START_TEST(test_claim_nested)
{
        _cleanup_free_ char *path = new_state_path("claim-nested");
        _cleanup_(state_freep) State *s = NULL;
        StateClaim v = claim_of("/apps/v", NULL, "d"), squat = claim_of("/apps/squat", NULL, "d");
        StateClaim k1 = claim_of("/apps/k1", "1111111111111111", "d");
        StateClaim k1b = claim_of("/apps/k1b", "1111111111111111", "d");
        StateClaim k2 = claim_of("/apps/k2", "2222222222222222", "d");
        StateClaim rec = {};

        ck_assert_int_eq(state_open(path, BASE, 16 * BLOCK, &s), 0);
        ck_assert_int_eq(state_app_claim(s, "org.v", &v, 10, NULL), STATE_CLAIM_NEW);
        ck_assert_int_eq(state_app_claim(s, "org.v.inbox", &squat, 11, &rec), -ENOTUNIQ);
        ck_assert_str_eq(rec.id, "org.v");
        ck_assert_str_eq(rec.path, "/apps/v");
        ck_assert_ptr_null(rec.key_id);
        ck_assert_int_eq(rec.claimed_at_ms, 10);
        state_claim_clear(&rec);
        ck_assert_ptr_null(rec.id);
        /* deeper, or signed while the parent is not: the same */
        ck_assert_int_eq(state_app_claim(s, "org.v.inbox.deep", &squat, 12, &rec), -ENOTUNIQ);
        ck_assert_str_eq(rec.id, "org.v");
        state_claim_clear(&rec);
        ck_assert_int_eq(state_app_claim(s, "org.v.inbox", &k1, 13, NULL), -ENOTUNIQ);
        ck_assert_int_eq(state_app_claim(s, "org.v.inbox", &squat, 14, NULL), -ENOTUNIQ);
        /* a longer name at the same level is not nested */
        ck_assert_int_eq(state_app_claim(s, "org.vx", &squat, 15, NULL), STATE_CLAIM_NEW);
        ck_assert_int_eq(state_app_claim(s, "org.vx.y", &k2, 15, &rec), -ENOTUNIQ);
        ck_assert_str_eq(rec.id, "org.vx");
        state_claim_clear(&rec);

        /* the parent's signer may take names under it; another key or none may not */
        ck_assert_int_eq(state_app_claim(s, "com.s", &k1, 20, NULL), STATE_CLAIM_NEW);
        ck_assert_int_eq(state_app_claim(s, "com.s.mail", &k1b, 21, NULL), STATE_CLAIM_NEW);
        ck_assert_int_eq(state_app_claim(s, "com.s.mail", &k1b, 22, NULL), STATE_CLAIM_SAME);
        ck_assert_int_eq(state_app_claim(s, "com.s.chat", &k2, 23, &rec), -ENOTUNIQ);
        ck_assert_str_eq(rec.key_id, "1111111111111111");
        state_claim_clear(&rec);
        ck_assert_int_eq(state_app_claim(s, "com.s.chat", &squat, 24, NULL), -ENOTUNIQ);

        /* the nested app first: the parent installed later does not push it out, even
         * in the same millisecond (the order of the records decides) */
        ck_assert_int_eq(state_app_claim(s, "net.c.inbox", &squat, 30, NULL), STATE_CLAIM_NEW);
        ck_assert_int_eq(state_app_claim(s, "net.c", &v, 31, NULL), STATE_CLAIM_NEW);
        ck_assert_int_eq(state_app_claim(s, "net.c.inbox", &squat, 32, NULL), STATE_CLAIM_SAME);
        ck_assert_int_eq(state_app_claim(s, "net.c", &v, 33, NULL), STATE_CLAIM_SAME);
        ck_assert_int_eq(state_app_claim(s, "tie.p.c", &squat, 40, NULL), STATE_CLAIM_NEW);
        ck_assert_int_eq(state_app_claim(s, "tie.p", &v, 40, NULL), STATE_CLAIM_NEW);
        ck_assert_int_eq(state_app_claim(s, "tie.p.c", &squat, 41, NULL), STATE_CLAIM_SAME);
        /* but a new name under the parent is refused */
        ck_assert_int_eq(state_app_claim(s, "net.c.outbox", &squat, 34, NULL), -ENOTUNIQ);

        /* forgetting the parent frees its namespace; the refusals recorded nothing */
        ck_assert_int_eq(state_app_forget(s, "org.v"), 1);
        ck_assert_int_eq(state_app_claim(s, "org.v.inbox", &squat, 50, NULL), STATE_CLAIM_NEW);
        /* and a parent installed now leaves it be */
        ck_assert_int_eq(state_app_claim(s, "org.v", &v, 51, NULL), STATE_CLAIM_NEW);
        ck_assert_int_eq(state_app_claim(s, "org.v.inbox", &squat, 52, NULL), STATE_CLAIM_SAME);

        /* a squatter recorded after its parent by a cella without this check is
         * refused at its next claim */
        db_sql(path, "INSERT INTO apps (id, uid, path, dev, ino, claimed_at, updated_at)"
                     " VALUES ('org.v.late', 1879048207, '/apps/squat', 1, 2, 60, 60);");
        ck_assert_int_eq(state_app_claim(s, "org.v.late", &squat, 61, &rec), -ENOTUNIQ);
        ck_assert_str_eq(rec.id, "org.v");
        state_claim_clear(&rec);
}
END_TEST

/* A uid allocated without a claim (a state.db of schema 1, or state_app_uid first) is
 * kept by the first claim. */
START_TEST(test_claim_schema_1)
{
        _cleanup_free_ char *path = new_state_path("claim-v1");
        _cleanup_(state_freep) State *s = NULL;
        StateClaim a = claim_of("/apps/a", NULL, NULL), b = claim_of("/apps/b", NULL, NULL);

        ck_assert_int_eq(mkdir(path, 0711), 0);
        db_sql(path, "CREATE TABLE apps (id TEXT PRIMARY KEY NOT NULL, uid INTEGER UNIQUE NOT"
                     " NULL, created INTEGER NOT NULL DEFAULT (strftime('%s','now')));"
                     "INSERT INTO apps (id, uid) VALUES ('org.example.a', 1879048195);"
                     "PRAGMA user_version = 1;");
        ck_assert_int_eq(state_open(path, BASE, 16 * BLOCK, &s), 0);
        ck_assert_int_eq(state_app_claim(s, "org.example.a", &a, 1, NULL), STATE_CLAIM_UPDATED);
        /* Kept, though it lies in the range's first block, which no app gets then. */
        ck_assert_uint_eq(app_uid(s, "org.example.a"), BASE + 3);
        ck_assert_int_eq(state_app_claim(s, "org.example.a", &b, 2, NULL), -EEXIST);
        ck_assert_uint_eq(app_uid(s, "org.example.c"), UID(2));
        ck_assert_int_eq(state_app_claim(s, "org.example.c", &b, 3, NULL), STATE_CLAIM_UPDATED);
}
END_TEST

/* The claim of a real folder: canonical path (through a symlink), device, inode, the
 * manifest's hash; forget removes the data without following a symlink out of it. */
START_TEST(test_claim_of_folder_and_forget)
{
        _cleanup_free_ char *path = new_state_path("claim-folder"), *app = NULL, *link = NULL,
                            *outside = NULL, *data = NULL, *deep = NULL;
        _cleanup_(state_freep) State *s = NULL;
        _cleanup_close_ int fd = -EBADF;
        StateClaim c = {}, c2 = {};
        struct stat st;
        int dfd;

        ck_assert_int_ge(asprintf(&app, "%s/app", top_dir), 0);
        ck_assert_int_ge(asprintf(&link, "%s/link", top_dir), 0);
        ck_assert_int_ge(asprintf(&outside, "%s/outside.txt", top_dir), 0);
        ck_assert_int_eq(mkdir(app, 0755), 0);
        ck_assert_int_eq(symlink(app, link), 0);
        dfd = open(app, O_RDONLY | O_DIRECTORY);
        ck_assert_int_ge(dfd, 0);
        ck_assert_int_eq(write_manifest(dfd), 0);
        close(dfd);

        fd = open(link, O_RDONLY | O_DIRECTORY);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert_int_eq(state_claim_of_folder(fd, "", &c), 0);
        ck_assert_str_eq(c.path, app);
        ck_assert_uint_eq(c.dev, st.st_dev);
        ck_assert_uint_eq(c.ino, st.st_ino);
        ck_assert_ptr_null(c.key_id);
        ck_assert_ptr_nonnull(c.digest);
        ck_assert_uint_eq(strlen(c.digest), 64);
        ck_assert_int_eq(state_claim_of_folder(fd, "0123456789abcdef", &c2), 0);
        ck_assert_str_eq(c2.key_id, "0123456789abcdef");
        ck_assert_str_eq(c2.digest, c.digest);

        ck_assert_int_eq(state_open(path, BASE, 16 * BLOCK, &s), 0);
        ck_assert_int_eq(state_app_claim(s, "org.example.a", &c, 1, NULL), STATE_CLAIM_NEW);
        ck_assert_int_eq(state_app_data_path(s, "org.example.a", &data), 0);
        /* what an app might leave: a symlink out, a deep tree, a read-only dir */
        ck_assert_int_eq(write_string_file(outside, "keep me"), 0);
        ck_assert_int_ge(asprintf(&deep, "%s/x", data), 0);
        for (int i = 0; i < 40; i++) {
                char *next = NULL;

                ck_assert_int_eq(mkdir(deep, 0500), 0);
                ck_assert_int_ge(asprintf(&next, "%s/x", deep), 0);
                chmod(deep, 0700);
                free(deep);
                deep = next;
        }
        {
                _cleanup_free_ char *l = NULL;

                ck_assert_int_ge(asprintf(&l, "%s/out", data), 0);
                ck_assert_int_eq(symlink(outside, l), 0);
        }
        ck_assert_int_eq(state_app_forget(s, "org.example.a"), 1);
        ck_assert_int_eq(access(data, F_OK), -1);
        ck_assert_int_eq(access(outside, F_OK), 0);
        state_claim_clear(&c);
        state_claim_clear(&c2);
}
END_TEST

int main(void)
{
        Suite *suite = suite_create("state");
        TCase *tc = tcase_create("state");
        const char *only = getenv("CK_RUN_CASE");
        SRunner *sr;
        int failed;

        tcase_add_unchecked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_alloc);
        tcase_add_test(tc, test_range_full);
        tcase_add_test(tc, test_gap_reused);
        tcase_add_test(tc, test_uid_cache);
        tcase_add_test(tc, test_out_of_range_rows);
        tcase_add_test(tc, test_blocks);
        tcase_add_test(tc, test_reopen);
        tcase_add_test(tc, test_concurrent);
        tcase_add_test(tc, test_data_dir);
        tcase_add_test(tc, test_data_dir_bad_id);
        tcase_add_test(tc, test_bad_range);
        tcase_add_test(tc, test_newer_schema);
        tcase_add_test(tc, test_claim_unsigned);
        tcase_add_test(tc, test_claim_store_versions);
        tcase_add_test(tc, test_claim_signed);
        tcase_add_test(tc, test_claim_nested);
        tcase_add_test(tc, test_claim_schema_1);
        tcase_add_test(tc, test_claim_of_folder_and_forget);
        suite_add_tcase(suite, tc);

        /* Chown needs root: a test case of its own, which meson runs as a test of its
         * own (tests/unit/meson.build) that exits 77, skipped, as another user. */
        if (geteuid() != 0) {
                printf("SKIP: owner: the data dir's owner uid:uid needs root to chown\n");
                if (only && strcmp(only, "owner") == 0)
                        return 77;
        } else {
                TCase *owner = tcase_create("owner");

                tcase_set_tags(owner, "alone");
                tcase_add_unchecked_fixture(owner, setup, teardown);
                tcase_add_test(owner, test_data_dir_owner);
                suite_add_tcase(suite, owner);
        }

        sr = srunner_create(suite);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
