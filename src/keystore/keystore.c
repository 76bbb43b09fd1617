/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The kernel's keystore (keystore.h): the host key, the sealed rows, the operations. */
#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/macro.h"
#include "base/sqlite-util.h"
#include "keystore/keystore.h"

#define SCHEMA_VERSION 1
#define BUSY_MS        5000u
#define AD_PREFIX      "cella-keystore-v1"
#define NONCE_BYTES    crypto_aead_xchacha20poly1305_ietf_NPUBBYTES /* 24 */
#define TAG_BYTES      crypto_aead_xchacha20poly1305_ietf_ABYTES    /* 16 */
#define SEALED_BYTES   (NONCE_BYTES + KEYSTORE_KEY_BYTES + TAG_BYTES)

_Static_assert(crypto_aead_xchacha20poly1305_ietf_KEYBYTES == KEYSTORE_KEY_BYTES, "key size");
_Static_assert(crypto_sign_SEEDBYTES == KEYSTORE_KEY_BYTES, "seed size");
_Static_assert(crypto_box_SECRETKEYBYTES == KEYSTORE_KEY_BYTES, "x25519 size");
_Static_assert(crypto_sign_PUBLICKEYBYTES == KEYSTORE_PUBLIC_BYTES, "ed25519 public size");
_Static_assert(crypto_sign_BYTES == KEYSTORE_SIG_BYTES, "signature size");
_Static_assert(NONCE_BYTES + TAG_BYTES == KEYSTORE_BOX_OVERHEAD, "box overhead");
_Static_assert(crypto_box_SEALBYTES == KEYSTORE_SEALED_TO_OVERHEAD, "sealed box overhead");

/* An app's key, opened: the private bytes, then room for an ed25519 expanded key
 * (built for one signature, wiped after it); the authenticated public key; kind. */
struct KeystoreKey {
        uint8_t priv[KEYSTORE_KEY_BYTES + crypto_sign_SECRETKEYBYTES];
        uint8_t pub[KEYSTORE_PUBLIC_BYTES];
        KeystoreKind kind;
};

struct Keystore {
        sqlite3 *db;
        uint8_t *host_key; /* sodium_malloc(), read-only between uses */
        /* One app key's private bytes during one operation: the 32 bytes, then room
         * for an ed25519 expanded key. sodium_malloc()ed once (an mmap, mlock and
         * mprotect per call cost more than the signature), zeroed after every use. */
        KeystoreKey *scratch;
        sqlite3_stmt *lookup; /* load()'s statement, prepared on first use */
        unsigned keys_max;
        char *db_path;
};

const char *keystore_kind_name(KeystoreKind kind)
{
        switch (kind) {
        case KEYSTORE_KIND_ED25519:
                return "ed25519";
        case KEYSTORE_KIND_X25519:
                return "x25519";
        case KEYSTORE_KIND_SECRET:
                return "secret";
        default:
                return NULL;
        }
}

bool keystore_name_is_valid(const char *name)
{
        size_t n;

        if (!name)
                return false;
        n = strlen(name);
        if (n == 0 || n > KEYSTORE_NAME_MAX)
                return false;
        for (const char *p = name; *p; p++)
                if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' ||
                      *p == '.' || *p == '-'))
                        return false;
        return true;
}

static int say(char *why, size_t size, int r, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static int say(char *why, size_t size, int r, const char *fmt, ...)
{
        va_list ap;

        if (why && size) {
                va_start(ap, fmt);
                vsnprintf(why, size, fmt, ap);
                va_end(ap);
        }
        return r;
}

/* Checks an open key file's shape and owner (keystore_host_key_load()). */
static int check_key_file(int fd, const char *path, char *why, size_t why_size)
{
        struct stat st;

        if (fstat(fd, &st) < 0)
                return say(why, why_size, -errno, "cannot stat the host key %s: %s", path,
                           strerror(errno));
        if (!S_ISREG(st.st_mode))
                return say(why, why_size, -EPERM, "the host key %s is not a regular file", path);
        if (st.st_uid != geteuid())
                return say(why, why_size, -EPERM,
                           "the host key %s is owned by uid %u, not by the kernel's uid %u", path,
                           (unsigned)st.st_uid, (unsigned)geteuid());
        if (st.st_mode & 077)
                return say(why, why_size, -EPERM,
                           "the host key %s has mode %04o: it must be 0600 (no group or other "
                           "access)",
                           path, (unsigned)(st.st_mode & 07777));
        if (st.st_size != KEYSTORE_HOST_KEY_BYTES)
                return say(why, why_size, -EBADMSG,
                           "the host key %s is %lld bytes long: it must be exactly %u", path,
                           (long long)st.st_size, KEYSTORE_HOST_KEY_BYTES);
        return 0;
}

static int read_key_file(const char *path, uint8_t *key, char *why, size_t why_size)
{
        _cleanup_close_ int fd = -EBADF;
        ssize_t n;
        int r;

        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                if (errno == ELOOP)
                        return say(why, why_size, -EPERM, "the host key %s is a symlink: refused",
                                   path);
                return say(why, why_size, -errno, "cannot open the host key %s: %s", path,
                           strerror(errno));
        }
        r = check_key_file(fd, path, why, why_size);
        if (r < 0)
                return r;
        n = pread(fd, key, KEYSTORE_HOST_KEY_BYTES, 0);
        if (n != (ssize_t)KEYSTORE_HOST_KEY_BYTES)
                return say(why, why_size, n < 0 ? -errno : -EBADMSG,
                           "cannot read the host key %s: %s", path,
                           n < 0 ? strerror(errno) : "short read");
        return 0;
}

/* Makes path with 32 random bytes, atomically: a temporary file linked into place. */
static int make_key_file(const char *path, char *why, size_t why_size)
{
        _cleanup_free_ char *tmp = NULL;
        _cleanup_close_ int fd = -EBADF;
        uint8_t *k;
        ssize_t n;
        int r = 0;

        if (asprintf(&tmp, "%s.tmp.%d", path, (int)getpid()) < 0)
                return -ENOMEM;
        (void)unlink(tmp);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0)
                return say(why, why_size, -errno, "cannot create the host key %s: %s", tmp,
                           strerror(errno));
        k = sodium_malloc(KEYSTORE_HOST_KEY_BYTES);
        if (!k) {
                (void)unlink(tmp);
                return -ENOMEM;
        }
        randombytes_buf(k, KEYSTORE_HOST_KEY_BYTES);
        n = write(fd, k, KEYSTORE_HOST_KEY_BYTES);
        sodium_free(k);
        if (n != (ssize_t)KEYSTORE_HOST_KEY_BYTES || fsync(fd) < 0)
                r = say(why, why_size, n < 0 ? -errno : -EIO, "cannot write the host key %s: %s",
                        tmp, strerror(n < 0 ? errno : EIO));
        else if (link(tmp, path) < 0 && errno != EEXIST) /* EEXIST: another made it first */
                r = say(why, why_size, -errno, "cannot create the host key %s: %s", path,
                        strerror(errno));
        (void)unlink(tmp);
        return r;
}

int keystore_host_key_load(const char *state_dir, bool create, uint8_t *key, char *why,
                           size_t why_size)
{
        _cleanup_free_ char *path = NULL;
        int r;

        if (!state_dir || !key)
                return -EINVAL;
        if (asprintf(&path, "%s/keystore.key", state_dir) < 0)
                return -ENOMEM;
        r = read_key_file(path, key, why, why_size);
        if (r != -ENOENT || !create)
                return r;
        r = make_key_file(path, why, why_size);
        if (r < 0)
                return r;
        return read_key_file(path, key, why, why_size);
}

static int migrate(sqlite3 *db, int from, void *userdata)
{
        if (from == 0 && sqlite_exec(db, "CREATE TABLE keys ("
                                         " app_id TEXT NOT NULL,"
                                         " name TEXT NOT NULL,"
                                         " kind INTEGER NOT NULL,"
                                         " public_key BLOB NOT NULL,"
                                         " sealed BLOB NOT NULL,"
                                         " created_ms INTEGER NOT NULL,"
                                         " PRIMARY KEY (app_id, name)) WITHOUT ROWID;") < 0)
                return -EIO;
        return sqlite_exec(db, "PRAGMA user_version = 1;");
}

static int open_db(const char *path, sqlite3 **ret)
{
        sqlite3 *db = NULL;
        int r;

        r = sqlite_open(path, BUSY_MS, &db);
        if (r < 0)
                return r;
        /* Deleted rows are overwritten with zeros, not left in free pages. */
        r = sqlite_exec(db, "PRAGMA secure_delete = ON;");
        if (r == 0)
                r = sqlite_schema_ensure(db, SCHEMA_VERSION, migrate, NULL);
        if (r < 0) {
                sqlite3_close(db);
                return r;
        }
        *ret = db;
        return 0;
}

static int count_rows(sqlite3 *db, const char *app_id)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        int r;

        r = app_id ? sqlite_select_one(db, "SELECT count(*) FROM keys WHERE app_id = ?1",
                                       SQL_ARGS(SQL_TEXT(app_id)), &st)
                   : sqlite_select_one(db, "SELECT count(*) FROM keys", NULL, 0, &st);
        if (r <= 0)
                return r < 0 ? r : 0;
        return sqlite3_column_int(st, 0);
}

int keystore_open(const char *state_dir, unsigned keys_max, Keystore **ret, char *why,
                  size_t why_size)
{
        Keystore *ks;
        int r, n;

        if (!state_dir || !ret)
                return -EINVAL;
        if (sodium_init() < 0)
                return say(why, why_size, -EIO, "libsodium did not initialise");
        ks = calloc(1, sizeof *ks);
        if (!ks)
                return -ENOMEM;
        ks->keys_max = keys_max ?: KEYSTORE_KEYS_MAX_DEFAULT;
        ks->host_key = sodium_malloc(KEYSTORE_HOST_KEY_BYTES);
        ks->scratch = sodium_malloc(sizeof(KeystoreKey));
        if (!ks->host_key || !ks->scratch ||
            asprintf(&ks->db_path, "%s/keystore.db", state_dir) < 0) {
                ks->db_path = NULL;
                keystore_free(ks);
                return -ENOMEM;
        }
        r = open_db(ks->db_path, &ks->db);
        if (r < 0) {
                say(why, why_size, r, "cannot open the keystore %s: %s", ks->db_path,
                    r == -EIO               ? "not a keystore database (corrupt or another file)"
                    : r == -EPROTONOSUPPORT ? "written by a newer cella"
                                            : strerror(-r));
                keystore_free(ks);
                return r;
        }
        n = count_rows(ks->db, NULL);
        if (n < 0) {
                say(why, why_size, n, "cannot read the keystore %s: not a keystore database",
                    ks->db_path);
                keystore_free(ks);
                return n;
        }
        r = keystore_host_key_load(state_dir, n == 0, ks->host_key, why, why_size);
        if (r == -ENOENT && n > 0)
                r = say(why, why_size, -ENOKEY,
                        "the host key %s/keystore.key is missing but %s holds %d key(s): "
                        "restore it from a backup (a new one would open none of them)",
                        state_dir, ks->db_path, n);
        if (r < 0) {
                keystore_free(ks);
                return r;
        }
        sodium_mprotect_readonly(ks->host_key);
        *ret = ks;
        return 0;
}

Keystore *keystore_free(Keystore *ks)
{
        if (!ks)
                return NULL;
        sqlite3_finalize(ks->lookup);
        if (ks->db)
                sqlite3_close(ks->db);
        if (ks->host_key)
                sodium_free(ks->host_key); /* makes it writable, wipes, unmaps */
        if (ks->scratch)
                sodium_free(ks->scratch);
        free(ks->db_path);
        free(ks);
        return NULL;
}

unsigned keystore_keys_max(const Keystore *ks)
{
        return ks ? ks->keys_max : 0;
}

/* The additional data of a row's seal: prefix NUL app NUL name NUL kind NUL public
 * key (32 bytes; zeros for a secret key). The public key is authenticated with the
 * private bytes: an ed25519 signature made with the right seed but a public key
 * swapped in the file would give the seed away (two signatures of one message under
 * two public keys reveal the secret scalar), and a peer would be vouched a key the
 * app does not hold. Returns the length, 0 if it does not fit. */
static size_t row_ad(uint8_t *buf, size_t size, const char *app_id, const char *name,
                     KeystoreKind kind, const uint8_t *pub)
{
        int n = snprintf((char *)buf, size, "%s%c%s%c%s%c%d%c", AD_PREFIX, 0, app_id, 0, name, 0,
                         (int)kind, 0);

        if (n < 0 || (size_t)n + KEYSTORE_PUBLIC_BYTES >= size)
                return 0;
        memcpy(buf + n, pub, KEYSTORE_PUBLIC_BYTES);
        return (size_t)n + KEYSTORE_PUBLIC_BYTES;
}

static int64_t now_ms(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Wipes ks's scratch key (after every operation that loaded one). */
static void priv_done(Keystore *ks)
{
        if (ks && ks->scratch)
                sodium_memzero(ks->scratch, sizeof(KeystoreKey));
}

int keystore_create(Keystore *ks, const char *app_id, const char *name, KeystoreKind kind,
                    uint8_t *pub)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        uint8_t public_key[KEYSTORE_PUBLIC_BYTES] = {}, sealed[SEALED_BYTES], ad[512];
        uint8_t *priv;
        size_t ad_n;
        int r, n;

        if (!ks || !app_id || !keystore_name_is_valid(name) || !keystore_kind_name(kind))
                return -EINVAL;
        /* seed / scalar / key, then the ed25519 expanded key */
        priv = ks->scratch->priv;
        randombytes_buf(priv, KEYSTORE_KEY_BYTES);
        if (kind == KEYSTORE_KIND_ED25519)
                crypto_sign_seed_keypair(public_key, priv + KEYSTORE_KEY_BYTES, priv);
        else if (kind == KEYSTORE_KIND_X25519)
                crypto_scalarmult_base(public_key, priv);
        ad_n = row_ad(ad, sizeof ad, app_id, name, kind, public_key);
        if (ad_n == 0) {
                priv_done(ks);
                return -EINVAL;
        }
        randombytes_buf(sealed, NONCE_BYTES);
        crypto_aead_xchacha20poly1305_ietf_encrypt(sealed + NONCE_BYTES, NULL, priv,
                                                   KEYSTORE_KEY_BYTES, ad, ad_n, NULL, sealed,
                                                   ks->host_key);
        priv_done(ks);

        r = sqlite_tx_begin(ks->db, true, SCHEMA_VERSION, migrate, NULL);
        if (r < 0)
                return r;
        n = count_rows(ks->db, app_id);
        if (n < 0)
                r = n;
        else if ((unsigned)n >= ks->keys_max)
                r = -EDQUOT;
        if (r == 0) {
                _cleanup_stmt_ sqlite3_stmt *q = NULL;

                r = sqlite_select_one(ks->db, "SELECT 1 FROM keys WHERE app_id = ?1 AND name = ?2",
                                      SQL_ARGS(SQL_TEXT(app_id), SQL_TEXT(name)), &q);
                if (r > 0)
                        r = -EEXIST;
        }
        if (r == 0)
                r = sqlite_prepare_args(ks->db,
                                        "INSERT INTO keys (app_id, name, kind, public_key, "
                                        "sealed, created_ms) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                                        SQL_ARGS(SQL_TEXT(app_id), SQL_TEXT(name), SQL_INT(kind)),
                                        &st);
        if (r == 0 &&
            (sqlite3_bind_blob(st, 4, public_key, sizeof public_key, SQLITE_STATIC) != SQLITE_OK ||
             sqlite3_bind_blob(st, 5, sealed, sizeof sealed, SQLITE_STATIC) != SQLITE_OK ||
             sqlite3_bind_int64(st, 6, now_ms()) != SQLITE_OK))
                r = -EIO;
        if (r == 0)
                r = sqlite_step_done(st);
        r = sqlite_tx_end(ks->db, r);
        if (r == 0 && pub)
                memcpy(pub, public_key, sizeof public_key);
        return r;
}

/* The row of app_id's key name, authenticated: kind, public key and the private
 * bytes opened into priv (KEYSTORE_KEY_BYTES, ks->scratch; the caller wipes it with
 * priv_done()). A lookup is one step of a statement prepared once (preparing it
 * each time was most of a lookup's 17 us). Returns 0, -ENOENT, -EBADMSG (does not
 * open: tampered, moved, relabelled, another host key), -EIO. */
static int load(Keystore *ks, const char *app_id, const char *name, KeystoreKey *k)
{
        sqlite3_stmt *st;
        const void *p, *s;
        uint8_t ad[512];
        size_t ad_n;
        int kind, r;

        if (!ks || !app_id || !k || !keystore_name_is_valid(name))
                return -ENOENT;
        if (!ks->lookup &&
            sqlite3_prepare_v3(ks->db,
                               "SELECT kind, public_key, sealed FROM keys "
                               "WHERE app_id = ?1 AND name = ?2",
                               -1, SQLITE_PREPARE_PERSISTENT, &ks->lookup, NULL) != SQLITE_OK)
                return -EIO;
        st = ks->lookup;
        if (sqlite3_bind_text(st, 1, app_id, -1, SQLITE_STATIC) != SQLITE_OK ||
            sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC) != SQLITE_OK) {
                sqlite3_reset(st);
                return -EIO;
        }
        r = sqlite3_step(st);
        if (r != SQLITE_ROW) {
                sqlite3_reset(st);
                sqlite3_clear_bindings(st);
                return r == SQLITE_DONE ? -ENOENT : -EIO;
        }
        kind = sqlite3_column_int(st, 0);
        p = sqlite3_column_blob(st, 1);
        s = sqlite3_column_blob(st, 2);
        if (!keystore_kind_name((KeystoreKind)kind) || !p ||
            sqlite3_column_bytes(st, 1) != KEYSTORE_PUBLIC_BYTES || !s ||
            sqlite3_column_bytes(st, 2) != SEALED_BYTES)
                r = -EBADMSG;
        else {
                ad_n = row_ad(ad, sizeof ad, app_id, name, (KeystoreKind)kind, p);
                r = ad_n && crypto_aead_xchacha20poly1305_ietf_decrypt(
                                    k->priv, NULL, NULL, (const uint8_t *)s + NONCE_BYTES,
                                    KEYSTORE_KEY_BYTES + TAG_BYTES, ad, ad_n, s, ks->host_key) == 0
                            ? 0
                            : -EBADMSG;
        }
        if (r == 0) {
                k->kind = (KeystoreKind)kind;
                memcpy(k->pub, p, KEYSTORE_PUBLIC_BYTES);
        }
        sqlite3_reset(st);
        sqlite3_clear_bindings(st);
        return r;
}

int keystore_public_key(Keystore *ks, const char *app_id, const char *name, KeystoreKind *ret_kind,
                        uint8_t pub[KEYSTORE_PUBLIC_BYTES])
{
        int r;

        /* The row is opened, so that the public key shown is the one sealed with it. */
        r = load(ks, app_id, name, ks ? ks->scratch : NULL);
        if (r == 0) {
                if (ret_kind)
                        *ret_kind = ks->scratch->kind;
                if (pub)
                        memcpy(pub, ks->scratch->pub, KEYSTORE_PUBLIC_BYTES);
        }
        priv_done(ks);
        return r;
}

int keystore_key_sign(KeystoreKey *k, const void *msg, size_t n, uint8_t sig[KEYSTORE_SIG_BYTES])
{
        if (!k || !sig || (!msg && n))
                return -EINVAL;
        if (k->kind != KEYSTORE_KIND_ED25519)
                return -EMEDIUMTYPE;
        /* libsodium's secret key is seed || public key; the public key came
         * authenticated with the seed (row_ad()), so no scalar multiplication is
         * needed to derive it again (20 us). */
        memcpy(k->priv + KEYSTORE_KEY_BYTES, k->priv, KEYSTORE_KEY_BYTES);
        memcpy(k->priv + 2 * KEYSTORE_KEY_BYTES, k->pub, KEYSTORE_PUBLIC_BYTES);
        crypto_sign_detached(sig, NULL, msg, n, k->priv + KEYSTORE_KEY_BYTES);
        sodium_memzero(k->priv + KEYSTORE_KEY_BYTES, crypto_sign_SECRETKEYBYTES);
        return 0;
}

int keystore_key_seal(KeystoreKey *k, const void *pt, size_t n, const void *ad, size_t ad_n,
                      uint8_t *out, size_t out_size)
{
        if (!k || !out || (!pt && n) || (!ad && ad_n) || n > KEYSTORE_DATA_MAX ||
            ad_n > KEYSTORE_AD_MAX)
                return -EINVAL;
        if (k->kind != KEYSTORE_KIND_SECRET)
                return -EMEDIUMTYPE;
        if (out_size < n + KEYSTORE_BOX_OVERHEAD)
                return -ENOBUFS;
        randombytes_buf(out, NONCE_BYTES);
        crypto_aead_xchacha20poly1305_ietf_encrypt(out + NONCE_BYTES, NULL, pt, n, ad, ad_n, NULL,
                                                   out, k->priv);
        return (int)(n + KEYSTORE_BOX_OVERHEAD);
}

int keystore_key_open(KeystoreKey *k, const void *box, size_t n, const void *ad, size_t ad_n,
                      uint8_t *out, size_t out_size)
{
        if (!k || !out || (!box && n) || (!ad && ad_n) ||
            n > KEYSTORE_DATA_MAX + KEYSTORE_SEALED_TO_OVERHEAD || ad_n > KEYSTORE_AD_MAX)
                return -EINVAL;
        if (k->kind == KEYSTORE_KIND_SECRET) {
                if (n < KEYSTORE_BOX_OVERHEAD)
                        return -EBADMSG;
                if (out_size < n - KEYSTORE_BOX_OVERHEAD)
                        return -ENOBUFS;
                if (crypto_aead_xchacha20poly1305_ietf_decrypt(
                            out, NULL, NULL, (const uint8_t *)box + NONCE_BYTES, n - NONCE_BYTES,
                            ad, ad_n, box, k->priv) != 0)
                        return -EBADMSG;
                return (int)(n - KEYSTORE_BOX_OVERHEAD);
        }
        if (k->kind != KEYSTORE_KIND_X25519)
                return -EMEDIUMTYPE;
        if (ad_n)
                return -EINVAL;
        if (n < KEYSTORE_SEALED_TO_OVERHEAD)
                return -EBADMSG;
        if (out_size < n - KEYSTORE_SEALED_TO_OVERHEAD)
                return -ENOBUFS;
        if (crypto_box_seal_open(out, box, n, k->pub, k->priv) != 0)
                return -EBADMSG;
        return (int)(n - KEYSTORE_SEALED_TO_OVERHEAD);
}

int keystore_key_load(Keystore *ks, const char *app_id, const char *name, KeystoreKey **ret)
{
        KeystoreKey *k;
        int r;

        if (!ret)
                return -EINVAL;
        k = sodium_malloc(sizeof *k);
        if (!k)
                return -ENOMEM;
        r = load(ks, app_id, name, k);
        if (r < 0) {
                keystore_key_free(k);
                return r;
        }
        *ret = k;
        return 0;
}

KeystoreKind keystore_key_kind(const KeystoreKey *k)
{
        return k ? k->kind : KEYSTORE_KIND_NONE;
}

KeystoreKey *keystore_key_free(KeystoreKey *k)
{
        if (k)
                sodium_free(k); /* wipes */
        return NULL;
}

int keystore_sign(Keystore *ks, const char *app_id, const char *name, const void *msg, size_t n,
                  uint8_t sig[KEYSTORE_SIG_BYTES])
{
        int r;

        if (!ks || !sig || (!msg && n))
                return -EINVAL;
        r = load(ks, app_id, name, ks->scratch);
        if (r == 0)
                r = keystore_key_sign(ks->scratch, msg, n, sig);
        priv_done(ks);
        return r;
}

int keystore_verify(const uint8_t pub[KEYSTORE_PUBLIC_BYTES], const void *msg, size_t n,
                    const uint8_t sig[KEYSTORE_SIG_BYTES])
{
        if (!pub || !sig || (!msg && n))
                return -EINVAL;
        if (sodium_init() < 0)
                return -EIO;
        return crypto_sign_verify_detached(sig, msg, n, pub) == 0 ? 0 : -EBADMSG;
}

int keystore_seal(Keystore *ks, const char *app_id, const char *name, const void *pt, size_t n,
                  const void *ad, size_t ad_n, uint8_t *out, size_t out_size)
{
        int r;

        if (!ks || !out || (!pt && n) || (!ad && ad_n) || n > KEYSTORE_DATA_MAX ||
            ad_n > KEYSTORE_AD_MAX)
                return -EINVAL;
        if (out_size < n + KEYSTORE_BOX_OVERHEAD)
                return -ENOBUFS;
        r = load(ks, app_id, name, ks->scratch);
        if (r == 0)
                r = keystore_key_seal(ks->scratch, pt, n, ad, ad_n, out, out_size);
        priv_done(ks);
        return r;
}

int keystore_open_box(Keystore *ks, const char *app_id, const char *name, const void *box, size_t n,
                      const void *ad, size_t ad_n, uint8_t *out, size_t out_size)
{
        int r;

        if (!ks || !out || (!box && n) || (!ad && ad_n) ||
            n > KEYSTORE_DATA_MAX + KEYSTORE_SEALED_TO_OVERHEAD || ad_n > KEYSTORE_AD_MAX)
                return -EINVAL;
        r = load(ks, app_id, name, ks->scratch);
        if (r == 0)
                r = keystore_key_open(ks->scratch, box, n, ad, ad_n, out, out_size);
        priv_done(ks);
        return r;
}

int keystore_seal_to(const uint8_t pub[KEYSTORE_PUBLIC_BYTES], const void *pt, size_t n,
                     uint8_t *out, size_t out_size)
{
        if (!pub || !out || (!pt && n) || n > KEYSTORE_DATA_MAX)
                return -EINVAL;
        if (out_size < n + KEYSTORE_SEALED_TO_OVERHEAD)
                return -ENOBUFS;
        if (sodium_init() < 0)
                return -EIO;
        return crypto_box_seal(out, pt, n, pub) == 0 ? (int)(n + KEYSTORE_SEALED_TO_OVERHEAD)
                                                     : -EINVAL;
}

int keystore_delete(Keystore *ks, const char *app_id, const char *name)
{
        int r;

        if (!ks || !app_id || !keystore_name_is_valid(name))
                return -ENOENT;
        r = sqlite_run(ks->db, "DELETE FROM keys WHERE app_id = ?1 AND name = ?2",
                       SQL_ARGS(SQL_TEXT(app_id), SQL_TEXT(name)));
        return r < 0 ? r : r == 0 ? -ENOENT : 0;
}

int keystore_list(Keystore *ks, const char *app_id, KeystoreEntry **ret, size_t *ret_n)
{
        _cleanup_stmt_ sqlite3_stmt *st = NULL;
        KeystoreEntry *v = NULL;
        size_t n = 0;
        int r;

        if (!ks || !app_id || !ret || !ret_n)
                return -EINVAL;
        r = sqlite_prepare_args(ks->db,
                                "SELECT name, kind, public_key, created_ms FROM keys "
                                "WHERE app_id = ?1 ORDER BY name",
                                SQL_ARGS(SQL_TEXT(app_id)), &st);
        if (r < 0)
                return r;
        while ((r = sqlite3_step(st)) == SQLITE_ROW) {
                const char *name = (const char *)sqlite3_column_text(st, 0);
                const void *p = sqlite3_column_blob(st, 2);
                KeystoreEntry *e, *nv;

                if (!keystore_name_is_valid(name))
                        continue; /* not a row keystore_create() wrote */
                nv = realloc(v, (n + 1) * sizeof *v);
                if (!nv) {
                        free(v);
                        return -ENOMEM;
                }
                v = nv;
                e = &v[n++];
                memset(e, 0, sizeof *e);
                snprintf(e->name, sizeof e->name, "%s", name);
                e->kind = (KeystoreKind)sqlite3_column_int(st, 1);
                if (p && sqlite3_column_bytes(st, 2) == KEYSTORE_PUBLIC_BYTES)
                        memcpy(e->public_key, p, KEYSTORE_PUBLIC_BYTES);
                e->created_ms = sqlite3_column_int64(st, 3);
        }
        if (r != SQLITE_DONE) {
                free(v);
                return -EIO;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

int keystore_forget_app(const char *state_dir, const char *app_id)
{
        _cleanup_free_ char *path = NULL;
        sqlite3 *db = NULL;
        int r;

        if (!state_dir || !app_id)
                return -EINVAL;
        if (asprintf(&path, "%s/keystore.db", state_dir) < 0)
                return -ENOMEM;
        if (access(path, F_OK) < 0)
                return errno == ENOENT ? 0 : -errno;
        r = open_db(path, &db);
        if (r < 0)
                return r;
        r = sqlite_run(db, "DELETE FROM keys WHERE app_id = ?1", SQL_ARGS(SQL_TEXT(app_id)));
        sqlite3_close(db);
        return r;
}
