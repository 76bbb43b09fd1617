/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Bundle signatures with libsodium (signature.h, docs/capabilities.md "Signing").
 *
 * The folder is walked with *at() calls from one directory fd, never following a
 * symlink (O_NOFOLLOW, AT_SYMLINK_NOFOLLOW): a symlink is recorded as a link, with its
 * target, and only targets that cannot leave the folder are accepted. Each file is
 * opened O_NONBLOCK (a fifo swapped in after the stat cannot hang us) and checked
 * with fstat() to be the regular file that was listed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "base/statedir.h"
#include "policy/signature.h"

#define DIGEST_DOMAIN      "cella-bundle-v1" /* hashed with its NUL */
#define FILE_HASH_BYTES    32u
#define READ_CHUNK         (64u * 1024u)
#define KEY_FILE_MAX       512u  /* bytes of a .key/.pub file: base64 of 64 bytes and slack */
#define SIGNATURE_JSON_MAX 4096u /* bytes of SIGNATURE */
#define SIGNATURE_TMP      ".SIGNATURE.new"

typedef struct Entry {
        char *path;
        char type; /* 'f', 'x', 'l' */
        uint64_t size;
        uint8_t hash[FILE_HASH_BYTES];
        char *target;
} Entry;

typedef struct Walk {
        Entry *v;
        size_t n;
        uint64_t bytes;
        bool strict; /* every entry must be owned by a trusted uid, not writable by others */
        SignatureError *err;
} Walk;

static int fail(SignatureError *err, int r, const char *path, const char *message)
{
        if (err) {
                size_t n = path ? strnlen(path, sizeof err->path - 1) : 0;

                if (n)
                        memcpy(err->path, path, n);
                err->path[n] = 0;
                err->message = message;
        }
        return r;
}

static void walk_done(Walk *w)
{
        for (size_t i = 0; i < w->n; i++) {
                free(w->v[i].path);
                free(w->v[i].target);
        }
        free(w->v);
        w->v = NULL;
        w->n = 0;
}

bool signature_path_is_clean(const char *s)
{
        for (; *s; s++)
                if ((unsigned char)*s < 0x20 || *s == 0x7f)
                        return false;
        return true;
}

/* A uid whose files cella may trust not to change behind it: root, or the uid cella
 * runs as (OpenSSH's StrictModes, sshd's secure_path(): root or the user). */
static bool uid_trusted(uid_t uid)
{
        return uid == 0 || uid == geteuid();
}

/*
 * Why st may be changed by someone cella does not trust, or NULL: an owner that is
 * not root or cella's uid, or a mode writable by group or others. For a directory
 * with the sticky bit (/tmp), group and others may add entries but cannot rename or
 * remove those of others (unlink(2), "sticky bit"), so such a directory is accepted
 * when allow_sticky. Symlinks are not asked: their mode is always 0777 and only
 * their folder decides whether they can be replaced.
 */
static const char *untrusted_reason(const struct stat *st, bool allow_sticky)
{
        if (!uid_trusted(st->st_uid))
                return "owned by a user other than root or cella's own";
        if ((st->st_mode & 022) &&
            !(allow_sticky && S_ISDIR(st->st_mode) && (st->st_mode & S_ISVTX)))
                return S_ISDIR(st->st_mode) ? "a folder writable by group or others"
                                            : "writable by group or others";
        return NULL;
}

/* A symlink target that stays inside the folder whatever the links along it: relative,
 * non-empty, no ".." component (each hop can only go down from the link's folder). */
bool signature_link_target_ok(const char *t)
{
        if (!*t || *t == '/')
                return false;
        for (const char *p = t; *p;) {
                const char *slash = strchr(p, '/');
                size_t len = slash ? (size_t)(slash - p) : strlen(p);

                if (len == 2 && p[0] == '.' && p[1] == '.')
                        return false;
                p += len;
                if (*p == '/')
                        p++;
        }
        return true;
}

static int hash_file(int dirfd, const char *name, const struct stat *listed, Entry *e, Walk *w)
{
        _cleanup_close_ int fd = -EBADF;
        crypto_generichash_state h;
        _cleanup_free_ uint8_t *buf = NULL;
        struct stat st;
        ssize_t k;

        fd = openat(dirfd, name, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0)
                return fail(w->err, negative_errno(), e->path, "cannot open");
        if (fstat(fd, &st) < 0)
                return fail(w->err, negative_errno(), e->path, "cannot stat");
        if (!S_ISREG(st.st_mode) || st.st_ino != listed->st_ino || st.st_dev != listed->st_dev)
                return fail(w->err, -EAGAIN, e->path, "changed while being read");
        if (w->strict && untrusted_reason(&st, false))
                return fail(w->err, -EPERM, e->path, untrusted_reason(&st, false));
        buf = malloc(READ_CHUNK);
        if (!buf)
                return -ENOMEM;
        crypto_generichash_init(&h, NULL, 0, FILE_HASH_BYTES);
        e->size = 0;
        while ((k = RETRY_EINTR(read(fd, buf, READ_CHUNK))) != 0) {
                if (k < 0)
                        return fail(w->err, negative_errno(), e->path, "cannot read");
                e->size += (uint64_t)k;
                w->bytes += (uint64_t)k;
                if (w->bytes > SIGNATURE_BYTES_MAX)
                        return fail(w->err, -E2BIG, e->path, "the folder holds more than 1 GiB");
                crypto_generichash_update(&h, buf, (unsigned long long)k);
        }
        crypto_generichash_final(&h, e->hash, FILE_HASH_BYTES);
        e->type = (st.st_mode & 0111) ? 'x' : 'f';
        return 0;
}

static int walk_dir(int dirfd, const char *rel, unsigned depth, Walk *w)
{
        DIR *d;
        struct dirent *de;
        int fd, r = 0;

        fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return fail(w->err, negative_errno(), rel, "cannot open the folder");
        d = fdopendir(fd);
        if (!d) {
                r = negative_errno();
                safe_close(fd);
                return fail(w->err, r, rel, "cannot open the folder");
        }
        while (r == 0) {
                _cleanup_free_ char *path = NULL;
                struct stat st;
                Entry *e;

                errno = 0;
                de = readdir(d);
                if (!de) {
                        if (errno)
                                r = fail(w->err, negative_errno(), rel, "cannot list");
                        break;
                }
                if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
                        continue;
                if (!*rel && strcmp(de->d_name, SIGNATURE_FILE) == 0)
                        continue;
                if (asprintf(&path, "%s%s%s", rel, *rel ? "/" : "", de->d_name) < 0) {
                        r = -ENOMEM;
                        break;
                }
                if (strlen(path) >= SIGNATURE_PATH_MAX) {
                        r = fail(w->err, -E2BIG, path, "path longer than 1023 bytes");
                        break;
                }
                if (!signature_path_is_clean(path)) {
                        r = fail(w->err, -EPERM, path, "control character in a file name");
                        break;
                }
                if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
                        r = fail(w->err, negative_errno(), path, "cannot stat");
                        break;
                }
                if (w->strict && !S_ISLNK(st.st_mode)) {
                        const char *why = untrusted_reason(&st, false);

                        if (why) {
                                r = fail(w->err, -EPERM, path, why);
                                break;
                        }
                }
                if (S_ISDIR(st.st_mode)) {
                        _cleanup_close_ int sub = -EBADF;

                        if (depth + 1 > SIGNATURE_DEPTH_MAX) {
                                r = fail(w->err, -E2BIG, path, "folders nested too deep");
                                break;
                        }
                        sub = openat(dirfd, de->d_name,
                                     O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                        if (sub < 0) {
                                r = fail(w->err, negative_errno(), path, "cannot open");
                                break;
                        }
                        r = walk_dir(sub, path, depth + 1, w);
                        continue;
                }
                if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode)) {
                        r = fail(w->err, -EPERM, path,
                                 "a special file (device, fifo or socket) in the bundle");
                        break;
                }
                if (w->n == SIGNATURE_FILES_MAX) {
                        r = fail(w->err, -E2BIG, path, "more than 4096 entries");
                        break;
                }
                e = &w->v[w->n];
                *e = (Entry){};
                if (S_ISLNK(st.st_mode)) {
                        char target[SIGNATURE_PATH_MAX];
                        ssize_t k = readlinkat(dirfd, de->d_name, target, sizeof target);

                        if (k < 0 || (size_t)k >= sizeof target) {
                                r = fail(w->err, k < 0 ? negative_errno() : -E2BIG, path,
                                         "cannot read the symlink");
                                break;
                        }
                        target[k] = 0;
                        if (!signature_link_target_ok(target) || !signature_path_is_clean(target)) {
                                r = fail(w->err, -ELOOP, path,
                                         "a symlink that may point out of the folder "
                                         "(absolute, or with '..')");
                                break;
                        }
                        e->type = 'l';
                        e->target = strdup(target);
                        if (!e->target) {
                                r = -ENOMEM;
                                break;
                        }
                } else {
                        e->path = path; /* for messages */
                        r = hash_file(dirfd, de->d_name, &st, e, w);
                        e->path = NULL;
                        if (r < 0)
                                break;
                }
                e->path = TAKE_PTR(path);
                w->n++;
        }
        closedir(d);
        return r;
}

static int entry_cmp(const void *a, const void *b)
{
        return strcmp(((const Entry *)a)->path, ((const Entry *)b)->path);
}

static void put_u32(crypto_generichash_state *h, uint32_t v)
{
        uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};

        crypto_generichash_update(h, b, sizeof b);
}

static void put_u64(crypto_generichash_state *h, uint64_t v)
{
        uint8_t b[8];

        for (int i = 0; i < 8; i++)
                b[i] = (uint8_t)(v >> (8 * i));
        crypto_generichash_update(h, b, sizeof b);
}

static int digest_of(int dirfd, bool strict, uint8_t ret_digest[SIGNATURE_DIGEST_BYTES],
                     SignatureError *err)
{
        crypto_generichash_state h;
        Walk w = {.err = err, .strict = strict};
        bool manifest = false;
        int r;

        if (sodium_init() < 0)
                return -EIO;
        if (err)
                *err = (SignatureError){};
        w.v = calloc(SIGNATURE_FILES_MAX, sizeof(Entry));
        if (!w.v)
                return -ENOMEM;
        r = walk_dir(dirfd, "", 0, &w);
        if (r < 0) {
                walk_done(&w);
                return r;
        }
        qsort(w.v, w.n, sizeof(Entry), entry_cmp);
        crypto_generichash_init(&h, NULL, 0, SIGNATURE_DIGEST_BYTES);
        crypto_generichash_update(&h, (const uint8_t *)DIGEST_DOMAIN, sizeof DIGEST_DOMAIN);
        for (size_t i = 0; i < w.n; i++) {
                const Entry *e = &w.v[i];
                uint8_t type = (uint8_t)e->type;

                if (strcmp(e->path, "manifest.json") == 0 && e->type != 'l')
                        manifest = true;
                crypto_generichash_update(&h, &type, 1);
                put_u32(&h, (uint32_t)strlen(e->path));
                crypto_generichash_update(&h, (const uint8_t *)e->path, strlen(e->path));
                if (e->type == 'l') {
                        put_u32(&h, (uint32_t)strlen(e->target));
                        crypto_generichash_update(&h, (const uint8_t *)e->target,
                                                  strlen(e->target));
                } else {
                        put_u64(&h, e->size);
                        crypto_generichash_update(&h, e->hash, FILE_HASH_BYTES);
                }
        }
        walk_done(&w);
        if (!manifest)
                return fail(err, -ENOENT, "manifest.json", "no manifest.json (a regular file)");
        crypto_generichash_final(&h, ret_digest, SIGNATURE_DIGEST_BYTES);
        return 0;
}

int signature_digest(int dirfd, uint8_t ret_digest[SIGNATURE_DIGEST_BYTES], SignatureError *err)
{
        return digest_of(dirfd, false, ret_digest, err);
}

/* Writes the path of fd (from /proc/self/fd) to err->path as the culprit. */
static int fail_fd(SignatureError *err, int r, int fd, const char *message)
{
        char link[64], path[SIGNATURE_PATH_MAX];
        ssize_t k;

        snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
        k = readlink(link, path, sizeof path - 1);
        if (k <= 0)
                snprintf(path, sizeof path, "(a parent folder)");
        else
                path[k] = 0;
        return fail(err, r, path, message);
}

int signature_check_trust(int dirfd, SignatureError *err)
{
        _cleanup_close_ int cur = -EBADF;
        struct stat st, root;

        if (err)
                *err = (SignatureError){};
        if (stat("/", &root) < 0)
                return negative_errno();
        cur = openat(dirfd, ".", O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (cur < 0)
                return fail(err, negative_errno(), ".", "cannot open the folder");
        if (fstat(cur, &st) < 0)
                return fail_fd(err, negative_errno(), cur, "cannot stat");
        if (untrusted_reason(&st, false))
                return fail_fd(err, -EPERM, cur, untrusted_reason(&st, false));
        /* Each parent, by "..", up to /: who may rename something on the way can swap
         * the folder (sudo's and OpenSSH's checks of a path do the same). */
        for (unsigned depth = 0; st.st_dev != root.st_dev || st.st_ino != root.st_ino; depth++) {
                _cleanup_close_ int up = -EBADF;
                struct stat ust;

                if (depth > 4096)
                        return fail_fd(err, -ELOOP, cur, "too many parent folders");
                up = openat(cur, "..", O_PATH | O_DIRECTORY | O_CLOEXEC);
                if (up < 0)
                        return fail_fd(err, negative_errno(), cur, "cannot open the parent of");
                if (fstat(up, &ust) < 0)
                        return fail_fd(err, negative_errno(), up, "cannot stat");
                if (untrusted_reason(&ust, true))
                        return fail_fd(err, -EPERM, up, untrusted_reason(&ust, true));
                if (ust.st_dev == st.st_dev && ust.st_ino == st.st_ino)
                        break; /* the top of this mount namespace's tree */
                safe_close(cur);
                cur = TAKE_FD(up);
                st = ust;
        }
        return 0;
}

/* ---- keys ------------------------------------------------------------------------------- */

static void key_id_of(const uint8_t pk[crypto_sign_PUBLICKEYBYTES],
                      char ret[SIGNATURE_KEY_ID_CHARS + 1])
{
        uint8_t h[32];

        crypto_generichash(h, sizeof h, pk, crypto_sign_PUBLICKEYBYTES, NULL, 0);
        sodium_bin2hex(ret, SIGNATURE_KEY_ID_CHARS + 1, h, SIGNATURE_KEY_ID_CHARS / 2);
}

/* Writes "<base64 of bin>\n" to a new file (O_EXCL) with mode. 0 or -errno. */
static int write_b64_file(const char *path, const uint8_t *bin, size_t n, mode_t mode)
{
        char b64[KEY_FILE_MAX];
        _cleanup_close_ int fd = -EBADF;
        int r;

        sodium_bin2base64(b64, sizeof b64 - 1, bin, n, sodium_base64_VARIANT_ORIGINAL);
        strcat(b64, "\n");
        fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd < 0)
                return negative_errno();
        if (fchmod(fd, mode) < 0)
                r = negative_errno();
        else
                r = loop_write(fd, b64, strlen(b64));
        sodium_memzero(b64, sizeof b64);
        if (r < 0)
                (void)unlink(path);
        return r;
}

/* Reads a one-line base64 key file at dirfd/path into exactly n bytes. 0, -EINVAL, -errno. */
static int read_b64_file(int dirfd, const char *path, uint8_t *bin, size_t n)
{
        _cleanup_close_ int fd = -EBADF;
        char *text = NULL;
        size_t size = 0, len = 0;
        struct stat st;
        int r;

        fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0)
                return negative_errno();
        if (fstat(fd, &st) < 0)
                return negative_errno();
        if (!S_ISREG(st.st_mode))
                return -EINVAL;
        r = read_full_fd(fd, KEY_FILE_MAX, &text, &size);
        if (r < 0)
                return r == -EFBIG ? -EINVAL : r;
        r = sodium_base642bin(bin, n, text, size, " \t\r\n", &len, NULL,
                              sodium_base64_VARIANT_ORIGINAL) == 0 &&
                            len == n
                    ? 0
                    : -EINVAL;
        sodium_memzero(text, size);
        free(text);
        return r;
}

int signature_trust(const char *state_dir, const char *pub_path,
                    char ret_key_id[SIGNATURE_KEY_ID_CHARS + 1])
{
        _cleanup_free_ char *dir = NULL, *dest = NULL;
        uint8_t pk[crypto_sign_PUBLICKEYBYTES];
        char id[SIGNATURE_KEY_ID_CHARS + 1];
        struct stat st;
        int r;

        if (!state_dir || !*state_dir || !pub_path)
                return -EINVAL;
        if (sodium_init() < 0)
                return -EIO;
        r = read_b64_file(AT_FDCWD, pub_path, pk, sizeof pk);
        if (r < 0)
                return r;
        key_id_of(pk, id);
        r = state_dir_open(state_dir, true);
        if (r < 0)
                return r;
        safe_close(r);
        if (asprintf(&dir, "%s/" SIGNATURE_TRUSTED_DIR, state_dir) < 0 ||
            asprintf(&dest, "%s/%s.pub", dir, id) < 0)
                return -ENOMEM;
        if (mkdir(dir, 0755) < 0 && errno != EEXIST)
                return negative_errno();
        if (lstat(dir, &st) < 0)
                return negative_errno();
        if (!S_ISDIR(st.st_mode) || (st.st_mode & 022))
                return -EPERM; /* signature_verify() would refuse every key in it */
        r = write_b64_file(dest, pk, sizeof pk, 0644);
        if (r == -EEXIST)
                r = 0; /* the same key, by its id */
        if (r < 0)
                return r;
        if (ret_key_id)
                memcpy(ret_key_id, id, sizeof id);
        return 0;
}

int signature_keygen(const char *prefix, char ret_key_id[SIGNATURE_KEY_ID_CHARS + 1])
{
        _cleanup_free_ char *key = NULL, *pub = NULL;
        uint8_t pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
        int r;

        if (!prefix || !*prefix)
                return -EINVAL;
        if (sodium_init() < 0)
                return -EIO;
        if (asprintf(&key, "%s.key", prefix) < 0 || asprintf(&pub, "%s.pub", prefix) < 0)
                return -ENOMEM;
        if (access(pub, F_OK) == 0)
                return -EEXIST;
        crypto_sign_keypair(pk, sk);
        r = write_b64_file(key, sk, sizeof sk, 0600);
        sodium_memzero(sk, sizeof sk);
        if (r < 0)
                return r;
        r = write_b64_file(pub, pk, sizeof pk, 0644);
        if (r < 0) {
                (void)unlink(key);
                return r;
        }
        if (ret_key_id)
                key_id_of(pk, ret_key_id);
        return 0;
}

/* ---- sign and verify -------------------------------------------------------------------- */

int signature_sign(int dirfd, const char *key_path, SignatureError *err)
{
        uint8_t sk[crypto_sign_SECRETKEYBYTES], pk[crypto_sign_PUBLICKEYBYTES];
        uint8_t digest[SIGNATURE_DIGEST_BYTES], sig[crypto_sign_BYTES];
        char key_id[SIGNATURE_KEY_ID_CHARS + 1],
                b64[sodium_base64_ENCODED_LEN(crypto_sign_BYTES, sodium_base64_VARIANT_ORIGINAL)],
                pk_b64[SIGNATURE_PUBLIC_KEY_CHARS + 1];
        _cleanup_free_ char *text = NULL;
        _cleanup_close_ int fd = -EBADF;
        json_t *j;
        int r;

        if (!key_path)
                return -EINVAL;
        if (sodium_init() < 0)
                return -EIO;
        if (err)
                *err = (SignatureError){};
        r = read_b64_file(AT_FDCWD, key_path, sk, sizeof sk);
        if (r < 0)
                return fail(err, r, "",
                            r == -EINVAL ? "not a cella secret key file"
                                         : "cannot read the secret key");
        r = signature_digest(dirfd, digest, err);
        if (r < 0) {
                sodium_memzero(sk, sizeof sk);
                return r;
        }
        crypto_sign_ed25519_sk_to_pk(pk, sk);
        crypto_sign_detached(sig, NULL, digest, sizeof digest, sk);
        sodium_memzero(sk, sizeof sk);
        key_id_of(pk, key_id);
        sodium_bin2base64(b64, sizeof b64, sig, sizeof sig, sodium_base64_VARIANT_ORIGINAL);

        sodium_bin2base64(pk_b64, sizeof pk_b64, pk, sizeof pk, sodium_base64_VARIANT_ORIGINAL);
        j = json_pack("{s:i, s:s, s:s, s:s, s:s}", "version", 1, "algorithm", "ed25519", "key_id",
                      key_id, "public_key", pk_b64, "signature", b64);
        if (!j)
                return -ENOMEM;
        text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        json_decref(j);
        if (!text)
                return -ENOMEM;

        fd = openat(dirfd, SIGNATURE_TMP, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC,
                    0644);
        if (fd < 0)
                return fail(err, negative_errno(), SIGNATURE_TMP, "cannot create");
        r = loop_write(fd, text, strlen(text));
        if (r == 0)
                r = loop_write(fd, "\n", 1);
        if (r == 0 && fsync(fd) < 0)
                r = negative_errno();
        if (r == 0 && renameat(dirfd, SIGNATURE_TMP, dirfd, SIGNATURE_FILE) < 0)
                r = negative_errno();
        if (r < 0) {
                (void)unlinkat(dirfd, SIGNATURE_TMP, 0);
                return fail(err, r, SIGNATURE_FILE, "cannot write");
        }
        return 0;
}

/* Reads and checks SIGNATURE: key id and signature bytes, and the public key it carries
 * into pk (if not NULL; *has_pk says whether there was one, whose id must be key_id).
 * 0, -ENOENT, -EINVAL, -errno. */
static int read_signature(int dirfd, char key_id[SIGNATURE_KEY_ID_CHARS + 1],
                          uint8_t sig[crypto_sign_BYTES], uint8_t pk[crypto_sign_PUBLICKEYBYTES],
                          bool *has_pk, SignatureError *err)
{
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *text = NULL;
        const char *id = NULL, *algorithm = NULL, *b64 = NULL, *pk_b64 = NULL;
        json_t *j;
        size_t size = 0, len = 0;
        struct stat st;
        int version = 0, r;

        fd = openat(dirfd, SIGNATURE_FILE,
                    O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW | O_NONBLOCK);
        if (fd < 0)
                return fail(err, errno == ELOOP ? -EINVAL : negative_errno(), SIGNATURE_FILE,
                            errno == ENOENT ? "the bundle is not signed" : "cannot open");
        if (fstat(fd, &st) < 0)
                return fail(err, negative_errno(), SIGNATURE_FILE, "cannot stat");
        if (!S_ISREG(st.st_mode))
                return fail(err, -EINVAL, SIGNATURE_FILE, "not a regular file");
        r = read_full_fd(fd, SIGNATURE_JSON_MAX, &text, &size);
        if (r < 0)
                return fail(err, r == -EFBIG ? -EINVAL : r, SIGNATURE_FILE, "cannot read");
        j = json_loadb(text, size, JSON_REJECT_DUPLICATES, NULL);
        if (!j ||
            json_unpack(j, "{s:i, s:s, s:s, s?:s, s:s !}", "version", &version, "algorithm",
                        &algorithm, "key_id", &id, "public_key", &pk_b64, "signature", &b64) < 0 ||
            version != 1 || strcmp(algorithm, "ed25519") != 0 ||
            strlen(id) != SIGNATURE_KEY_ID_CHARS ||
            strspn(id, "0123456789abcdef") != SIGNATURE_KEY_ID_CHARS ||
            sodium_base642bin(sig, crypto_sign_BYTES, b64, strlen(b64), NULL, &len, NULL,
                              sodium_base64_VARIANT_ORIGINAL) != 0 ||
            len != crypto_sign_BYTES) {
                json_decref(j);
                return fail(err, -EINVAL, SIGNATURE_FILE,
                            "malformed: expected {\"version\": 1, \"algorithm\": \"ed25519\", "
                            "\"key_id\": \"<16 hex>\", \"public_key\": \"<base64>\" (optional), "
                            "\"signature\": \"<base64>\"}");
        }
        if (has_pk)
                *has_pk = false;
        if (pk_b64 && pk) {
                uint8_t pkv[crypto_sign_PUBLICKEYBYTES];
                char pk_id[SIGNATURE_KEY_ID_CHARS + 1];

                if (sodium_base642bin(pkv, sizeof pkv, pk_b64, strlen(pk_b64), NULL, &len, NULL,
                                      sodium_base64_VARIANT_ORIGINAL) != 0 ||
                    len != sizeof pkv) {
                        json_decref(j);
                        return fail(err, -EINVAL, SIGNATURE_FILE,
                                    "malformed: \"public_key\" is not base64 of 32 bytes");
                }
                key_id_of(pkv, pk_id);
                if (strcmp(pk_id, id) != 0) {
                        json_decref(j);
                        return fail(err, -EINVAL, SIGNATURE_FILE,
                                    "malformed: \"public_key\" is not the key \"key_id\" names");
                }
                memcpy(pk, pkv, sizeof pkv);
                if (has_pk)
                        *has_pk = true;
        }
        memcpy(key_id, id, SIGNATURE_KEY_ID_CHARS + 1);
        json_decref(j);
        return 0;
}

int signature_verify(int dirfd, const char *state_dir, char ret_key_id[SIGNATURE_KEY_ID_CHARS + 1],
                     SignatureError *err)
{
        _cleanup_free_ char *trusted = NULL;
        _cleanup_close_ int tfd = -EBADF;
        uint8_t sig[crypto_sign_BYTES], digest[SIGNATURE_DIGEST_BYTES];
        uint8_t pks[SIGNATURE_TRUSTED_KEYS_MAX][crypto_sign_PUBLICKEYBYTES];
        char want[SIGNATURE_KEY_ID_CHARS + 1];
        size_t n = 0, seen = 0;
        struct stat st;
        struct dirent *de;
        DIR *d;
        int r;

        if (!state_dir)
                return -EINVAL;
        if (sodium_init() < 0)
                return -EIO;
        if (err)
                *err = (SignatureError){};
        r = read_signature(dirfd, want, sig, NULL, NULL, err);
        if (r < 0)
                return r;

        /* The keys that matter: trusted ones whose id is the signature's. */
        /* Absolute, as SignatureError.path wants for a path outside the folder. */
        if (state_dir[0] == '/')
                r = asprintf(&trusted, "%s/" SIGNATURE_TRUSTED_DIR, state_dir);
        else {
                _cleanup_free_ char *cwd = getcwd(NULL, 0);

                r = cwd ? asprintf(&trusted, "%s/%s/" SIGNATURE_TRUSTED_DIR, cwd, state_dir) : -1;
        }
        if (r < 0)
                return -ENOMEM;
        tfd = open(trusted, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (tfd < 0) {
                /* Named in full: the user has to find the folder to put a key in it. */
                r = errno == ENOENT ? -ENOKEY : negative_errno();
                return fail(err, r, trusted,
                            r == -ENOKEY ? "no trusted keys: the folder does not exist"
                                         : "cannot open the folder of trusted keys");
        }
        if (fstat(tfd, &st) < 0)
                return negative_errno();
        if (st.st_mode & 022)
                return fail(err, -EPERM, trusted, "writable by group or others");
        d = fdopendir(fcntl(tfd, F_DUPFD_CLOEXEC, 3));
        if (!d)
                return negative_errno();
        while ((de = readdir(d)) && seen < SIGNATURE_TRUSTED_KEYS_MAX) {
                size_t len = strlen(de->d_name);
                uint8_t pk[crypto_sign_PUBLICKEYBYTES];
                char id[SIGNATURE_KEY_ID_CHARS + 1];

                if (len < 5 || strcmp(de->d_name + len - 4, ".pub") != 0 || de->d_name[0] == '.')
                        continue;
                seen++;
                if (fstatat(tfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISREG(st.st_mode))
                        continue; /* symlinks and others are not trusted */
                if (st.st_mode & 022) {
                        char key[SIGNATURE_PATH_MAX];

                        snprintf(key, sizeof key, "%s/%s", trusted, de->d_name);
                        closedir(d);
                        return fail(err, -EPERM, key,
                                    "a trusted key is writable by group or others");
                }
                if (read_b64_file(tfd, de->d_name, pk, sizeof pk) < 0)
                        continue;
                key_id_of(pk, id);
                if (strcmp(id, want) == 0)
                        memcpy(pks[n++], pk, sizeof pk);
        }
        closedir(d);
        if (n == 0)
                return fail(err, -ENOKEY, trusted,
                            "signed by a key that is not trusted (not among the keys here)");

        /* Only files nobody else can change keep what was verified (signature.h). */
        r = signature_check_trust(dirfd, err);
        if (r < 0)
                return r;
        r = digest_of(dirfd, true, digest, err);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                if (crypto_sign_verify_detached(sig, digest, sizeof digest, pks[i]) == 0) {
                        if (ret_key_id)
                                memcpy(ret_key_id, want, sizeof want);
                        return 0;
                }
        return fail(err, -EBADMSG, "",
                    "the signature does not match the folder (changed since it was signed)");
}

int signature_verify_signer(int dirfd, char ret_key_id[SIGNATURE_KEY_ID_CHARS + 1],
                            char ret_public_key[SIGNATURE_PUBLIC_KEY_CHARS + 1],
                            SignatureError *err)
{
        uint8_t sig[crypto_sign_BYTES], digest[SIGNATURE_DIGEST_BYTES],
                pk[crypto_sign_PUBLICKEYBYTES];
        char id[SIGNATURE_KEY_ID_CHARS + 1];
        bool has_pk = false;
        int r;

        if (sodium_init() < 0)
                return -EIO;
        if (err)
                *err = (SignatureError){};
        r = read_signature(dirfd, id, sig, pk, &has_pk, err);
        if (r < 0)
                return r;
        if (!has_pk)
                return fail(err, -EINVAL, SIGNATURE_FILE,
                            "carries no \"public_key\" (signed by an older cella: sign it "
                            "again with 'cella sign --key')");
        r = digest_of(dirfd, false, digest, err);
        if (r < 0)
                return r;
        if (crypto_sign_verify_detached(sig, digest, sizeof digest, pk) != 0)
                return fail(err, -EBADMSG, "",
                            "the signature does not match the files (changed since signed, or "
                            "signed by another key than the one it names)");
        if (ret_key_id)
                memcpy(ret_key_id, id, sizeof id);
        if (ret_public_key)
                sodium_bin2base64(ret_public_key, SIGNATURE_PUBLIC_KEY_CHARS + 1, pk, sizeof pk,
                                  sodium_base64_VARIANT_ORIGINAL);
        return 0;
}
