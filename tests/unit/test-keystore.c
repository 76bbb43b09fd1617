/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The keystore (src/keystore): every kind's operations; the store at rest (the file
 * holds no private byte: the test opens each row with the host key itself, then
 * looks for those bytes in keystore.db); a tampered row, a row moved to another app
 * id or name or relabelled as another kind, another host key: none opens; the host
 * key file's checks (mode, owner, symlink, size, missing with keys kept); a
 * corrupt keystore.db; the quota; forgetting an app. Each test has its own state dir.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "keystore/keystore.h"
#include "test-util.h"

#define APP   "org.test.one"
#define OTHER "org.test.two"

static char state_dir[] = "/tmp/test-keystore-XXXXXX";

static void setup(void)
{
        strcpy(state_dir, "/tmp/test-keystore-XXXXXX");
        if (!mkdtemp(state_dir))
                abort();
        ck_assert_int_ge(sodium_init(), 0);
}

static void teardown(void)
{
        rm_tree(state_dir);
}

static Keystore *open_ks(unsigned keys_max)
{
        Keystore *ks = NULL;
        char why[512] = "";
        int r = keystore_open(state_dir, keys_max, &ks, why, sizeof why);

        ck_assert_msg(r == 0, "keystore_open: %s (%s)", strerror(-r), why);
        return ks;
}

static char *path_of(const char *file)
{
        char *p;

        ck_assert_int_ge(asprintf(&p, "%s/%s", state_dir, file), 0);
        return p;
}

/* Runs sql on keystore.db behind the keystore's back. */
static void db_exec(const char *sql)
{
        _cleanup_free_ char *p = path_of("keystore.db");
        sqlite3 *db;

        ck_assert_int_eq(sqlite3_open(p, &db), SQLITE_OK);
        ck_assert_msg(sqlite3_exec(db, sql, NULL, NULL, NULL) == SQLITE_OK, "%s: %s", sql,
                      sqlite3_errmsg(db));
        sqlite3_close(db);
}

/* Rewrites the sealed blob of app's key name: byte flip (>= 0) flipped, cut to len
 * bytes. */
static void db_sealed(const char *app, const char *name, int flip, int len)
{
        _cleanup_free_ char *p = path_of("keystore.db");
        uint8_t buf[128];
        sqlite3_stmt *st;
        sqlite3 *db;

        ck_assert_int_eq(sqlite3_open(p, &db), SQLITE_OK);
        ck_assert_int_eq(sqlite3_prepare_v2(db,
                                            "SELECT sealed FROM keys WHERE app_id = ?1 AND "
                                            "name = ?2",
                                            -1, &st, NULL),
                         SQLITE_OK);
        sqlite3_bind_text(st, 1, app, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
        ck_assert_int_eq(sqlite3_column_bytes(st, 0), 72);
        memcpy(buf, sqlite3_column_blob(st, 0), 72);
        sqlite3_finalize(st);
        if (flip >= 0)
                buf[flip] ^= 0x01;
        ck_assert_int_eq(sqlite3_prepare_v2(db,
                                            "UPDATE keys SET sealed = ?3 WHERE app_id = ?1 AND "
                                            "name = ?2",
                                            -1, &st, NULL),
                         SQLITE_OK);
        sqlite3_bind_text(st, 1, app, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        sqlite3_bind_blob(st, 3, buf, len, SQLITE_STATIC);
        ck_assert_int_eq(sqlite3_step(st), SQLITE_DONE);
        sqlite3_finalize(st);
        sqlite3_close(db);
}

/* The private bytes of app's key name, opened here with the host key and the row's
 * format (keystore.h): what the file must not show in clear. */
static void private_of(const char *app, const char *name, uint8_t priv[32])
{
        _cleanup_free_ char *p = path_of("keystore.db"), *kp = path_of("keystore.key");
        uint8_t host[32], ad[256];
        sqlite3_stmt *st;
        sqlite3 *db;
        const uint8_t *s;
        int kind, fd, n;

        fd = open(kp, O_RDONLY | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(read(fd, host, 32), 32);
        close(fd);
        ck_assert_int_eq(sqlite3_open(p, &db), SQLITE_OK);
        ck_assert_int_eq(sqlite3_prepare_v2(db,
                                            "SELECT kind, sealed, public_key FROM keys WHERE "
                                            "app_id = ?1 AND name = ?2",
                                            -1, &st, NULL),
                         SQLITE_OK);
        sqlite3_bind_text(st, 1, app, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
        ck_assert_int_eq(sqlite3_step(st), SQLITE_ROW);
        kind = sqlite3_column_int(st, 0);
        s = sqlite3_column_blob(st, 1);
        ck_assert_int_eq(sqlite3_column_bytes(st, 1), 24 + 32 + 16);
        n = snprintf((char *)ad, sizeof ad, "cella-keystore-v1%c%s%c%s%c%d%c", 0, app, 0, name, 0,
                     kind, 0);
        ck_assert_int_eq(sqlite3_column_bytes(st, 2), 32);
        memcpy(ad + n, sqlite3_column_blob(st, 2), 32);
        n += 32;
        ck_assert_int_eq(crypto_aead_xchacha20poly1305_ietf_decrypt(
                                 priv, NULL, NULL, s + 24, 32 + 16, ad, (size_t)n, s, host),
                         0);
        sqlite3_finalize(st);
        sqlite3_close(db);
}

START_TEST(test_kinds)
{
        Keystore *ks = open_ks(0);
        uint8_t pub[32], pub2[32], sig[64], box[200], out[200];
        KeystoreEntry *v = NULL;
        KeystoreKind kind;
        size_t n;
        int r;

        /* ed25519: sign and verify; a flipped bit or another message does not verify */
        ck_assert_int_eq(keystore_create(ks, APP, "sig", KEYSTORE_KIND_ED25519, pub), 0);
        ck_assert_int_eq(keystore_public_key(ks, APP, "sig", &kind, pub2), 0);
        ck_assert_int_eq(kind, KEYSTORE_KIND_ED25519);
        ck_assert_mem_eq(pub, pub2, 32);
        ck_assert_int_eq(keystore_sign(ks, APP, "sig", "hello", 5, sig), 0);
        ck_assert_int_eq(keystore_verify(pub, "hello", 5, sig), 0);
        ck_assert_int_eq(keystore_verify(pub, "hellO", 5, sig), -EBADMSG);
        sig[3] ^= 1;
        ck_assert_int_eq(keystore_verify(pub, "hello", 5, sig), -EBADMSG);

        /* secret: seal and open with the same ad; other ad, tampering, truncation fail */
        ck_assert_int_eq(keystore_create(ks, APP, "sec", KEYSTORE_KIND_SECRET, NULL), 0);
        r = keystore_seal(ks, APP, "sec", "payload", 7, "ad", 2, box, sizeof box);
        ck_assert_int_eq(r, 7 + KEYSTORE_BOX_OVERHEAD);
        ck_assert_int_eq(
                keystore_open_box(ks, APP, "sec", box, (size_t)r, "ad", 2, out, sizeof out), 7);
        ck_assert_mem_eq(out, "payload", 7);
        ck_assert_int_eq(
                keystore_open_box(ks, APP, "sec", box, (size_t)r, "aD", 2, out, sizeof out),
                -EBADMSG);
        ck_assert_int_eq(
                keystore_open_box(ks, APP, "sec", box, (size_t)r - 1, "ad", 2, out, sizeof out),
                -EBADMSG);
        ck_assert_int_eq(keystore_open_box(ks, APP, "sec", box, 10, "ad", 2, out, sizeof out),
                         -EBADMSG);
        box[30] ^= 0x40;
        ck_assert_int_eq(
                keystore_open_box(ks, APP, "sec", box, (size_t)r, "ad", 2, out, sizeof out),
                -EBADMSG);
        /* two seals of the same plaintext differ (fresh nonces) */
        {
                uint8_t a[64], b[64];

                ck_assert_int_eq(keystore_seal(ks, APP, "sec", "x", 1, NULL, 0, a, sizeof a), 41);
                ck_assert_int_eq(keystore_seal(ks, APP, "sec", "x", 1, NULL, 0, b, sizeof b), 41);
                ck_assert(memcmp(a, b, 41) != 0);
        }

        /* x25519: a box sealed to its public key opens with it only */
        ck_assert_int_eq(keystore_create(ks, APP, "kx", KEYSTORE_KIND_X25519, pub), 0);
        r = keystore_seal_to(pub, "to you", 6, box, sizeof box);
        ck_assert_int_eq(r, 6 + KEYSTORE_SEALED_TO_OVERHEAD);
        ck_assert_int_eq(keystore_open_box(ks, APP, "kx", box, (size_t)r, NULL, 0, out, sizeof out),
                         6);
        ck_assert_mem_eq(out, "to you", 6);
        ck_assert_int_eq(keystore_open_box(ks, APP, "kx", box, (size_t)r, "ad", 2, out, sizeof out),
                         -EINVAL);
        box[r - 1] ^= 1;
        ck_assert_int_eq(keystore_open_box(ks, APP, "kx", box, (size_t)r, NULL, 0, out, sizeof out),
                         -EBADMSG);

        /* the largest boxes of both kinds open (KEYSTORE_DATA_MAX of data) */
        {
                static uint8_t big[KEYSTORE_DATA_MAX], bbox[KEYSTORE_DATA_MAX + 48],
                        bout[KEYSTORE_DATA_MAX];

                randombytes_buf(big, sizeof big);
                r = keystore_seal_to(pub, big, sizeof big, bbox, sizeof bbox);
                ck_assert_int_eq(r, KEYSTORE_DATA_MAX + 48);
                ck_assert_int_eq(keystore_open_box(ks, APP, "kx", bbox, (size_t)r, NULL, 0, bout,
                                                   sizeof bout),
                                 KEYSTORE_DATA_MAX);
                ck_assert_mem_eq(bout, big, sizeof big);
                r = keystore_seal(ks, APP, "sec", big, sizeof big, NULL, 0, bbox, sizeof bbox);
                ck_assert_int_eq(r, KEYSTORE_DATA_MAX + 40);
                ck_assert_int_eq(keystore_open_box(ks, APP, "sec", bbox, (size_t)r, NULL, 0, bout,
                                                   sizeof bout),
                                 KEYSTORE_DATA_MAX);
                ck_assert_int_eq(keystore_seal(ks, APP, "sec", big, sizeof big + 1, NULL, 0, bbox,
                                               sizeof bbox),
                                 -EINVAL);
        }

        /* kinds do not mix */
        ck_assert_int_eq(keystore_sign(ks, APP, "sec", "x", 1, sig), -EMEDIUMTYPE);
        ck_assert_int_eq(keystore_seal(ks, APP, "sig", "x", 1, NULL, 0, box, sizeof box),
                         -EMEDIUMTYPE);
        ck_assert_int_eq(keystore_open_box(ks, APP, "sig", box, 60, NULL, 0, out, sizeof out),
                         -EMEDIUMTYPE);

        /* names: another app's are not reachable; bad names are refused */
        ck_assert_int_eq(keystore_sign(ks, OTHER, "sig", "x", 1, sig), -ENOENT);
        ck_assert_int_eq(keystore_public_key(ks, OTHER, "sig", NULL, pub2), -ENOENT);
        ck_assert_int_eq(keystore_delete(ks, OTHER, "sig"), -ENOENT);
        ck_assert_int_eq(keystore_create(ks, APP, "sig", KEYSTORE_KIND_ED25519, NULL), -EEXIST);
        ck_assert_int_eq(keystore_create(ks, OTHER, "sig", KEYSTORE_KIND_ED25519, NULL), 0);
        ck_assert_int_eq(keystore_create(ks, APP, "Bad", KEYSTORE_KIND_ED25519, NULL), -EINVAL);
        ck_assert_int_eq(keystore_create(ks, APP, "", KEYSTORE_KIND_ED25519, NULL), -EINVAL);
        ck_assert_int_eq(keystore_create(ks, APP, "a/b", KEYSTORE_KIND_ED25519, NULL), -EINVAL);
        ck_assert_int_eq(keystore_create(ks, APP,
                                         "a12345678901234567890123456789012345678901234567890123456"
                                         "78901234",
                                         KEYSTORE_KIND_ED25519, NULL),
                         -EINVAL);
        ck_assert_int_eq(keystore_create(ks, APP, "k", (KeystoreKind)7, NULL), -EINVAL);

        ck_assert_int_eq(keystore_list(ks, APP, &v, &n), 0);
        ck_assert_uint_eq(n, 3);
        ck_assert_str_eq(v[0].name, "kx");
        ck_assert_str_eq(v[1].name, "sec");
        ck_assert_str_eq(v[2].name, "sig");
        ck_assert_int_eq(v[2].kind, KEYSTORE_KIND_ED25519);
        free(v);
        ck_assert_int_eq(keystore_delete(ks, APP, "sig"), 0);
        ck_assert_int_eq(keystore_sign(ks, APP, "sig", "x", 1, sig), -ENOENT);
        ck_assert_int_eq(keystore_delete(ks, APP, "sig"), -ENOENT);
        keystore_free(ks);
}
END_TEST

START_TEST(test_quota)
{
        Keystore *ks = open_ks(2);

        ck_assert_int_eq(keystore_create(ks, APP, "a", KEYSTORE_KIND_SECRET, NULL), 0);
        ck_assert_int_eq(keystore_create(ks, APP, "b", KEYSTORE_KIND_SECRET, NULL), 0);
        ck_assert_int_eq(keystore_create(ks, APP, "c", KEYSTORE_KIND_SECRET, NULL), -EDQUOT);
        ck_assert_int_eq(keystore_create(ks, OTHER, "c", KEYSTORE_KIND_SECRET, NULL), 0);
        ck_assert_int_eq(keystore_delete(ks, APP, "a"), 0);
        ck_assert_int_eq(keystore_create(ks, APP, "c", KEYSTORE_KIND_SECRET, NULL), 0);
        keystore_free(ks);
}
END_TEST

/* The file holds no private byte: each key's 32 bytes (and an ed25519 key's
 * expanded secret key) are looked for in keystore.db, and so is the host key. */
START_TEST(test_at_rest)
{
        static const struct {
                const char *name;
                KeystoreKind kind;
        } keys[] = {{"s", KEYSTORE_KIND_ED25519},
                    {"x", KEYSTORE_KIND_X25519},
                    {"k", KEYSTORE_KIND_SECRET}};
        _cleanup_free_ char *dbp = path_of("keystore.db"), *kp = path_of("keystore.key");
        _cleanup_free_ char *file = NULL, *hostk = NULL;
        Keystore *ks = open_ks(0);
        size_t size = 0, hsize = 0;
        struct stat st;

        for (size_t i = 0; i < ELEMENTSOF(keys); i++)
                ck_assert_int_eq(keystore_create(ks, APP, keys[i].name, keys[i].kind, NULL), 0);
        keystore_free(ks);

        ck_assert_int_eq(lstat(kp, &st), 0);
        ck_assert_uint_eq(st.st_mode & 07777, 0600);
        ck_assert_int_eq(st.st_size, 32);
        ck_assert_int_eq(read_file_at(AT_FDCWD, dbp, 1 << 24, &file, &size), 0);
        ck_assert_int_eq(read_file_at(AT_FDCWD, kp, 64, &hostk, &hsize), 0);
        ck_assert_uint_eq(hsize, 32);
        ck_assert_ptr_null(memmem(file, size, hostk, 32));
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                uint8_t priv[32], pk[32], sk[64];

                private_of(APP, keys[i].name, priv);
                ck_assert_msg(!memmem(file, size, priv, 32), "key %s in clear in keystore.db",
                              keys[i].name);
                ck_assert_msg(!memmem(file, size, priv, 8), "8 bytes of key %s in keystore.db",
                              keys[i].name);
                if (keys[i].kind == KEYSTORE_KIND_ED25519) {
                        uint8_t sig[64], sig2[64];

                        crypto_sign_seed_keypair(pk, sk, priv);
                        ck_assert_ptr_null(memmem(file, size, sk, 64));
                        /* and it is the key: ed25519 signatures are deterministic */
                        ks = open_ks(0);
                        ck_assert_int_eq(keystore_sign(ks, APP, "s", "m", 1, sig), 0);
                        keystore_free(ks);
                        crypto_sign_detached(sig2, NULL, (const uint8_t *)"m", 1, sk);
                        ck_assert_mem_eq(sig, sig2, 64);
                }
        }
}
END_TEST

/* A row changed behind the keystore's back does not open. */
START_TEST(test_tampered_rows)
{
        Keystore *ks = open_ks(0);
        uint8_t sig[64], pub[32];

        ck_assert_int_eq(keystore_create(ks, APP, "a", KEYSTORE_KIND_ED25519, NULL), 0);
        ck_assert_int_eq(keystore_create(ks, APP, "b", KEYSTORE_KIND_ED25519, NULL), 0);
        ck_assert_int_eq(keystore_create(ks, APP, "c", KEYSTORE_KIND_ED25519, NULL), 0);
        ck_assert_int_eq(keystore_create(ks, APP, "d", KEYSTORE_KIND_X25519, NULL), 0);
        ck_assert_int_eq(keystore_create(ks, APP, "e", KEYSTORE_KIND_ED25519, NULL), 0);
        keystore_free(ks);

        /* a: one byte of the ciphertext flipped */
        db_sealed(APP, "a", 30, 72);
        /* b: moved to another app (a copy of the row under another app id) */
        db_exec("UPDATE keys SET app_id = '" OTHER "' WHERE name = 'b'");
        /* c: renamed */
        db_exec("UPDATE keys SET name = 'c2' WHERE name = 'c'");
        /* d: an x25519 key relabelled as ed25519 */
        db_exec("UPDATE keys SET kind = 1 WHERE name = 'd'");
        /* e: its public key swapped (for d's): neither shown nor used to sign */
        db_exec("UPDATE keys SET public_key = (SELECT public_key FROM keys WHERE name = 'd') "
                "WHERE name = 'e'");
        ks = open_ks(0);
        ck_assert_int_eq(keystore_sign(ks, APP, "a", "m", 1, sig), -EBADMSG);
        ck_assert_int_eq(keystore_sign(ks, OTHER, "b", "m", 1, sig), -EBADMSG);
        ck_assert_int_eq(keystore_sign(ks, APP, "b", "m", 1, sig), -ENOENT);
        ck_assert_int_eq(keystore_sign(ks, APP, "c2", "m", 1, sig), -EBADMSG);
        ck_assert_int_eq(keystore_sign(ks, APP, "d", "m", 1, sig), -EBADMSG);
        ck_assert_int_eq(keystore_sign(ks, APP, "e", "m", 1, sig), -EBADMSG);
        ck_assert_int_eq(keystore_public_key(ks, APP, "e", NULL, pub), -EBADMSG);
        ck_assert_int_eq(keystore_public_key(ks, OTHER, "b", NULL, pub), -EBADMSG);
        /* a truncated row */
        db_sealed(APP, "c2", -1, 40);
        ck_assert_int_eq(keystore_sign(ks, APP, "c2", "m", 1, sig), -EBADMSG);
        keystore_free(ks);
}
END_TEST

/* Another host key (a restored keystore.db with a new keystore.key) opens nothing. */
START_TEST(test_wrong_host_key)
{
        _cleanup_free_ char *kp = path_of("keystore.key");
        Keystore *ks = open_ks(0);
        uint8_t other[32], sig[64];
        int fd;

        ck_assert_int_eq(keystore_create(ks, APP, "a", KEYSTORE_KIND_ED25519, NULL), 0);
        ck_assert_int_eq(keystore_sign(ks, APP, "a", "m", 1, sig), 0);
        keystore_free(ks);
        randombytes_buf(other, sizeof other);
        fd = open(kp, O_WRONLY | O_TRUNC | O_CLOEXEC);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, other, 32), 32);
        close(fd);
        ks = open_ks(0);
        ck_assert_int_eq(keystore_sign(ks, APP, "a", "m", 1, sig), -EBADMSG);
        keystore_free(ks);
}
END_TEST

static int open_err(char *why, size_t size)
{
        Keystore *ks = NULL;
        int r = keystore_open(state_dir, 0, &ks, why, size);

        ck_assert_ptr_null(ks);
        return r;
}

START_TEST(test_host_key_file)
{
        _cleanup_free_ char *kp = path_of("keystore.key"), *moved = path_of("moved.key");
        Keystore *ks = open_ks(0);
        char why[512];
        int fd;

        ck_assert_int_eq(keystore_create(ks, APP, "a", KEYSTORE_KIND_SECRET, NULL), 0);
        keystore_free(ks);

        ck_assert_int_eq(chmod(kp, 0640), 0);
        ck_assert_int_eq(open_err(why, sizeof why), -EPERM);
        ck_assert_msg(strstr(why, kp) && strstr(why, "0640"), "%s", why);
        ck_assert_int_eq(chmod(kp, 0602), 0);
        ck_assert_int_eq(open_err(why, sizeof why), -EPERM);
        ck_assert_int_eq(chmod(kp, 0600), 0);

        if (geteuid() == 0) {
                ck_assert_int_eq(chown(kp, 4242, 4242), 0);
                ck_assert_int_eq(open_err(why, sizeof why), -EPERM);
                ck_assert_msg(strstr(why, kp) && strstr(why, "4242"), "%s", why);
                ck_assert_int_eq(chown(kp, 0, 0), 0);
        }

        ck_assert_int_eq(rename(kp, moved), 0);
        ck_assert_int_eq(symlink(moved, kp), 0);
        ck_assert_int_eq(open_err(why, sizeof why), -EPERM);
        ck_assert_msg(strstr(why, kp) && strstr(why, "symlink"), "%s", why);
        ck_assert_int_eq(unlink(kp), 0);

        /* missing while keystore.db holds keys: not replaced by a new one */
        ck_assert_int_eq(open_err(why, sizeof why), -ENOKEY);
        ck_assert_msg(strstr(why, "keystore.key") && strstr(why, "1 key"), "%s", why);
        ck_assert_int_eq(access(kp, F_OK), -1);

        /* the wrong shape */
        fd = open(kp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, "short", 5), 5);
        close(fd);
        ck_assert_int_eq(open_err(why, sizeof why), -EBADMSG);
        ck_assert_msg(strstr(why, kp) && strstr(why, "5 bytes"), "%s", why);
        ck_assert_int_eq(unlink(kp), 0);
        ck_assert_int_eq(mkdir(kp, 0700), 0);
        ck_assert_int_eq(open_err(why, sizeof why), -EPERM);
        ck_assert_msg(strstr(why, "not a regular file"), "%s", why);
        ck_assert_int_eq(rmdir(kp), 0);

        /* the real one back: the key opens again */
        ck_assert_int_eq(rename(moved, kp), 0);
        ks = open_ks(0);
        {
                uint8_t box[64], out[64];

                ck_assert_int_eq(keystore_seal(ks, APP, "a", "x", 1, NULL, 0, box, sizeof box), 41);
                ck_assert_int_eq(keystore_open_box(ks, APP, "a", box, 41, NULL, 0, out, sizeof out),
                                 1);
        }
        keystore_free(ks);
}
END_TEST

START_TEST(test_corrupt_db)
{
        _cleanup_free_ char *dbp = path_of("keystore.db");
        char why[512], junk[4096];
        int fd;

        memset(junk, 'j', sizeof junk);
        fd = open(dbp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
        close(fd);
        ck_assert_int_eq(open_err(why, sizeof why), -EIO);
        ck_assert_msg(strstr(why, dbp) && strstr(why, "not a keystore database"), "%s", why);
        /* a newer schema */
        ck_assert_int_eq(unlink(dbp), 0);
        db_exec("PRAGMA user_version = 9;");
        ck_assert_int_eq(open_err(why, sizeof why), -EPROTONOSUPPORT);
        ck_assert_msg(strstr(why, "newer"), "%s", why);
}
END_TEST

START_TEST(test_forget_app)
{
        Keystore *ks = open_ks(0);
        uint8_t sig[64];

        ck_assert_int_eq(keystore_forget_app(state_dir, APP), 0);
        ck_assert_int_eq(keystore_create(ks, APP, "a", KEYSTORE_KIND_ED25519, NULL), 0);
        ck_assert_int_eq(keystore_create(ks, APP, "b", KEYSTORE_KIND_SECRET, NULL), 0);
        ck_assert_int_eq(keystore_create(ks, OTHER, "a", KEYSTORE_KIND_ED25519, NULL), 0);
        ck_assert_int_eq(keystore_forget_app(state_dir, APP), 2);
        ck_assert_int_eq(keystore_sign(ks, APP, "a", "m", 1, sig), -ENOENT);
        ck_assert_int_eq(keystore_sign(ks, OTHER, "a", "m", 1, sig), 0);
        keystore_free(ks);
}
END_TEST

START_TEST(test_forget_without_keystore)
{
        _cleanup_free_ char *dbp = path_of("keystore.db");

        ck_assert_int_eq(keystore_forget_app(state_dir, APP), 0);
        ck_assert_int_eq(access(dbp, F_OK), -1); /* made nothing */
}
END_TEST

int main(void)
{
        Suite *s = suite_create("keystore");
        TCase *tc = tcase_create("core");
        SRunner *sr;
        int failed;

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_kinds);
        tcase_add_test(tc, test_quota);
        tcase_add_test(tc, test_at_rest);
        tcase_add_test(tc, test_tampered_rows);
        tcase_add_test(tc, test_wrong_host_key);
        tcase_add_test(tc, test_host_key_file);
        tcase_add_test(tc, test_corrupt_db);
        tcase_add_test(tc, test_forget_app);
        tcase_add_test(tc, test_forget_without_keystore);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
