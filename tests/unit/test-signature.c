/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Bundle signature tests: key generation, signing and verifying against trusted keys,
 * every kind of tampering the digest must see (content, added, removed, renamed
 * files, the executable bit, symlink targets), what the digest refuses (symlinks that
 * may leave the folder, special files, no manifest), that it does not depend on the
 * order files were created in, its bounds (entries, depth, total bytes), and that a
 * signature counts only on a folder nobody but root can change or swap.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "policy/signature.h"
#include "test-util.h"

static char top[] = "/tmp/test-signature-XXXXXX";
static char app[128], state[128], keys[128];

static void setup(void)
{
        char path[256];

        strcpy(top, "/tmp/test-signature-XXXXXX");
        if (!mkdtemp(top))
                abort();
        snprintf(app, sizeof app, "%s/app", top);
        snprintf(state, sizeof state, "%s/state", top);
        snprintf(keys, sizeof keys, "%s/state/trusted-keys", top);
        if (mkdir(app, 0755) < 0 || mkdir(state, 0711) < 0 || mkdir(keys, 0755) < 0)
                abort();
        put_file(app, "manifest.json",
                 "{\"id\":\"org.a.b\",\"runtime\":\"native\",\"entry\":\"run\"}", 0644);
        put_file(app, "run", "#!/bin/sh\necho hi\n", 0755);
        snprintf(path, sizeof path, "%s/lib", app);
        if (mkdir(path, 0755) < 0)
                abort();
        put_file(app, "lib/data.txt", "some data\n", 0644);
        snprintf(path, sizeof path, "%s/link", app);
        if (symlink("lib/data.txt", path) < 0)
                abort();
}

static void teardown(void)
{
        rm_tree(top);
}

/* Makes key pair <top>/<name>.{key,pub}; trusts it (copies .pub into trusted-keys) if asked. */
static void make_key(const char *name, bool trust, char id[SIGNATURE_KEY_ID_CHARS + 1])
{
        char prefix[256], src[300], dst[300];
        _cleanup_free_ char *text = NULL;

        snprintf(prefix, sizeof prefix, "%s/%s", top, name);
        ck_assert_int_eq(signature_keygen(prefix, id), 0);
        if (!trust)
                return;
        snprintf(src, sizeof src, "%s.pub", prefix);
        snprintf(dst, sizeof dst, "%s/%s.pub", keys, name);
        ck_assert_int_eq(read_file_at(AT_FDCWD, src, 4096, &text, NULL), 0);
        put_file(keys, strrchr(dst, '/') + 1, text, 0644);
}

static void sign(const char *dir, const char *name)
{
        char key[256];
        _cleanup_close_ int fd = open_dir(dir);
        SignatureError err = {};
        int r;

        snprintf(key, sizeof key, "%s/%s.key", top, name);
        r = signature_sign(fd, key, &err);
        ck_assert_msg(r == 0, "sign: %s: %s (%s)", err.path, err.message, strerror(-r));
}

static int verify(const char *dir, char id[SIGNATURE_KEY_ID_CHARS + 1], SignatureError *err)
{
        _cleanup_close_ int fd = open_dir(dir);

        return signature_verify(fd, state, id, err);
}

static int digest(const char *dir, uint8_t d[SIGNATURE_DIGEST_BYTES], SignatureError *err)
{
        _cleanup_close_ int fd = open_dir(dir);

        return signature_digest(fd, d, err);
}

static char *path_in(const char *dir, const char *name)
{
        static char buf[512];

        snprintf(buf, sizeof buf, "%s/%s", dir, name);
        return buf;
}

START_TEST(test_keygen)
{
        char id[SIGNATURE_KEY_ID_CHARS + 1], id2[SIGNATURE_KEY_ID_CHARS + 1], prefix[256];
        struct stat st;

        make_key("k", false, id);
        ck_assert_uint_eq(strlen(id), SIGNATURE_KEY_ID_CHARS);
        ck_assert_int_eq(stat(path_in(top, "k.key"), &st), 0);
        ck_assert_uint_eq(st.st_mode & 0777, 0600);
        ck_assert_int_eq(stat(path_in(top, "k.pub"), &st), 0);
        snprintf(prefix, sizeof prefix, "%s/k", top);
        ck_assert_int_eq(signature_keygen(prefix, id2), -EEXIST);
        make_key("k2", false, id2);
        ck_assert_str_ne(id, id2);
        ck_assert_int_eq(signature_keygen("", NULL), -EINVAL);
        ck_assert_int_eq(signature_keygen(NULL, NULL), -EINVAL);
}
END_TEST

START_TEST(test_sign_verify)
{
        char id[SIGNATURE_KEY_ID_CHARS + 1], got[SIGNATURE_KEY_ID_CHARS + 1] = "";
        SignatureError err = {};
        int r;

        make_key("k", true, id);
        sign(app, "k");
        ck_assert_int_eq(access(path_in(app, SIGNATURE_FILE), F_OK), 0);
        r = verify(app, got, &err);
        ck_assert_msg(r == 0, "verify: %s %s", err.path, err.message);
        ck_assert_str_eq(got, id);
        /* Signing again (SIGNATURE itself is not covered) still verifies. */
        sign(app, "k");
        ck_assert_int_eq(verify(app, NULL, NULL), 0);
}
END_TEST

START_TEST(test_untrusted)
{
        char id[SIGNATURE_KEY_ID_CHARS + 1];
        SignatureError err = {};

        make_key("mine", false, id);
        sign(app, "mine");
        /* No keys trusted at all, then only another key. */
        ck_assert_int_eq(verify(app, NULL, &err), -ENOKEY);
        make_key("other", true, id);
        ck_assert_int_eq(verify(app, NULL, &err), -ENOKEY);
        ck_assert_ptr_nonnull(err.message);
        /* No trusted-keys folder. */
        rm_tree(keys);
        ck_assert_int_eq(access(keys, F_OK), -1);
        ck_assert_int_eq(verify(app, NULL, &err), -ENOKEY);
        /* Unsigned. */
        ck_assert_int_eq(unlink(path_in(app, SIGNATURE_FILE)), 0);
        ck_assert_int_eq(verify(app, NULL, &err), -ENOENT);
}
END_TEST

START_TEST(test_trusted_keys_permissions)
{
        char id[SIGNATURE_KEY_ID_CHARS + 1];
        SignatureError err = {};

        make_key("k", true, id);
        sign(app, "k");
        ck_assert_int_eq(chmod(keys, 0777), 0);
        ck_assert_int_eq(verify(app, NULL, &err), -EPERM);
        ck_assert_int_eq(chmod(keys, 0755), 0);
        ck_assert_int_eq(chmod(path_in(keys, "k.pub"), 0666), 0);
        ck_assert_int_eq(verify(app, NULL, &err), -EPERM);
        ck_assert_int_eq(chmod(path_in(keys, "k.pub"), 0644), 0);
        ck_assert_int_eq(verify(app, NULL, &err), 0);
}
END_TEST

/* Each change to a signed folder makes verification fail with -EBADMSG. */
START_TEST(test_tamper)
{
        static const char *const changes[] = {
                "content", "append", "add",         "remove",   "rename",
                "chmod",   "relink", "adddir-file", "manifest",
        };
        char id[SIGNATURE_KEY_ID_CHARS + 1];

        make_key("k", true, id);
        for (size_t i = 0; i < ELEMENTSOF(changes); i++) {
                const char *c = changes[i];
                char p[512];

                teardown();
                setup();
                make_key("k", true, id);
                sign(app, "k");
                ck_assert_int_eq(verify(app, NULL, NULL), 0);
                if (strcmp(c, "content") == 0)
                        put_file(app, "lib/data.txt", "some dat4\n", 0644);
                else if (strcmp(c, "append") == 0)
                        put_file(app, "lib/data.txt", "some data\n\n", 0644);
                else if (strcmp(c, "add") == 0)
                        put_file(app, "extra", "", 0644);
                else if (strcmp(c, "remove") == 0)
                        ck_assert_int_eq(unlink(path_in(app, "lib/data.txt")), 0);
                else if (strcmp(c, "rename") == 0) {
                        snprintf(p, sizeof p, "%s/lib/data2.txt", app);
                        ck_assert_int_eq(rename(path_in(app, "lib/data.txt"), p), 0);
                } else if (strcmp(c, "chmod") == 0)
                        ck_assert_int_eq(chmod(path_in(app, "lib/data.txt"), 0755), 0);
                else if (strcmp(c, "relink") == 0) {
                        ck_assert_int_eq(unlink(path_in(app, "link")), 0);
                        ck_assert_int_eq(symlink("run", path_in(app, "link")), 0);
                } else if (strcmp(c, "adddir-file") == 0) {
                        ck_assert_int_eq(mkdir(path_in(app, "sub"), 0755), 0);
                        put_file(app, "sub/x", "x", 0644);
                } else
                        put_file(app, "manifest.json",
                                 "{\"id\":\"org.a.b\",\"runtime\":\"native\",\"entry\":\"run\" }",
                                 0644);
                ck_assert_msg(verify(app, NULL, NULL) == -EBADMSG, "%s not detected", c);
        }
}
END_TEST

START_TEST(test_bad_signature_file)
{
        static const char *const bad[] = {
                "",
                "not json",
                "{}",
                "{\"version\":2,\"algorithm\":\"ed25519\",\"key_id\":\"0011223344556677\","
                "\"signature\":\"AAAA\"}",
                "{\"version\":1,\"algorithm\":\"rsa\",\"key_id\":\"0011223344556677\","
                "\"signature\":\"AAAA\"}",
                "{\"version\":1,\"algorithm\":\"ed25519\",\"key_id\":\"00112233\","
                "\"signature\":\"AAAA\"}",
                "{\"version\":1,\"algorithm\":\"ed25519\",\"key_id\":\"0011223344556677\","
                "\"signature\":\"AAAA\"}",
                "{\"version\":1,\"algorithm\":\"ed25519\",\"key_id\":\"0011223344556677\","
                "\"signature\":\"AAAA\",\"extra\":1}",
        };
        char id[SIGNATURE_KEY_ID_CHARS + 1];
        SignatureError err = {};

        make_key("k", true, id);
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                put_file(app, SIGNATURE_FILE, bad[i], 0644);
                ck_assert_msg(verify(app, NULL, &err) == -EINVAL, "accepted: %s", bad[i]);
        }
        /* A SIGNATURE that is a symlink is not followed. */
        ck_assert_int_eq(unlink(path_in(app, SIGNATURE_FILE)), 0);
        ck_assert_int_eq(symlink("/etc/passwd", path_in(app, SIGNATURE_FILE)), 0);
        ck_assert_int_eq(verify(app, NULL, &err), -EINVAL);
}
END_TEST

START_TEST(test_refused_entries)
{
        uint8_t d[SIGNATURE_DIGEST_BYTES];
        SignatureError err = {};

        ck_assert_int_eq(digest(app, d, &err), 0);
        /* Symlinks that may leave the folder. */
        ck_assert_int_eq(symlink("/etc/passwd", path_in(app, "abs")), 0);
        ck_assert_int_eq(digest(app, d, &err), -ELOOP);
        ck_assert_str_eq(err.path, "abs");
        ck_assert_int_eq(unlink(path_in(app, "abs")), 0);
        ck_assert_int_eq(symlink("../run", path_in(app, "lib/up")), 0);
        ck_assert_int_eq(digest(app, d, &err), -ELOOP);
        ck_assert_str_eq(err.path, "lib/up");
        ck_assert_int_eq(unlink(path_in(app, "lib/up")), 0);
        ck_assert_int_eq(symlink("a/../../x", path_in(app, "mid")), 0);
        ck_assert_int_eq(digest(app, d, &err), -ELOOP);
        ck_assert_int_eq(unlink(path_in(app, "mid")), 0);
        /* A symlink to a directory inside is recorded, not followed. */
        ck_assert_int_eq(symlink("lib", path_in(app, "libdir")), 0);
        ck_assert_int_eq(digest(app, d, &err), 0);
        /* Special files. */
        ck_assert_int_eq(mkfifo(path_in(app, "fifo"), 0644), 0);
        ck_assert_int_eq(digest(app, d, &err), -EPERM);
        ck_assert_str_eq(err.path, "fifo");
        ck_assert_int_eq(unlink(path_in(app, "fifo")), 0);
        /* Control characters in names. */
        put_file(app, "bad\nname", "", 0644);
        ck_assert_int_eq(digest(app, d, &err), -EPERM);
        ck_assert_int_eq(unlink(path_in(app, "bad\nname")), 0);
        /* No manifest (or one that is a symlink). */
        {
                char from[512];

                snprintf(from, sizeof from, "%s/manifest.json", app);
                ck_assert_int_eq(rename(from, path_in(app, "m.json")), 0);
        }
        ck_assert_int_eq(digest(app, d, &err), -ENOENT);
        ck_assert_int_eq(symlink("m.json", path_in(app, "manifest.json")), 0);
        ck_assert_int_eq(digest(app, d, &err), -ENOENT);
}
END_TEST

/* The digest depends on content and names, not on creation order or timestamps. */
START_TEST(test_digest_canonical)
{
        char a[256], b[256];
        uint8_t da[SIGNATURE_DIGEST_BYTES], db[SIGNATURE_DIGEST_BYTES];
        static const char *const names[] = {"b", "a", "c.d", "a.b", "z", "A"};

        snprintf(a, sizeof a, "%s/a", top);
        snprintf(b, sizeof b, "%s/b", top);
        ck_assert_int_eq(mkdir(a, 0755), 0);
        ck_assert_int_eq(mkdir(b, 0755), 0);
        for (size_t i = 0; i < ELEMENTSOF(names); i++)
                put_file(a, names[i], names[i], 0644);
        for (size_t i = ELEMENTSOF(names); i-- > 0;)
                put_file(b, names[i], names[i], 0644);
        put_file(a, "manifest.json", "{}", 0644);
        put_file(b, "manifest.json", "{}", 0644);
        {
                /* Different mtimes, set rather than waited for: a 1970 one on a's. */
                char path[512];

                snprintf(path, sizeof path, "%s/manifest.json", a);
                ck_assert_int_eq(utimensat(AT_FDCWD, path,
                                           (struct timespec[2]){{.tv_sec = 1}, {.tv_sec = 1}}, 0),
                                 0);
        }
        ck_assert_int_eq(digest(a, da, NULL), 0);
        ck_assert_int_eq(digest(b, db, NULL), 0);
        ck_assert_mem_eq(da, db, sizeof da);
        /* Moving content between two files changes it (sizes and names are hashed). */
        put_file(b, "a", "ab", 0644);
        put_file(b, "a.b", "", 0644);
        ck_assert_int_eq(digest(b, db, NULL), 0);
        ck_assert(memcmp(da, db, sizeof da) != 0);
}
END_TEST

/* SIGNATURE_FILES_MAX entries are fine; one more is -E2BIG. */
START_TEST(test_files_bound)
{
        uint8_t d[SIGNATURE_DIGEST_BYTES];
        SignatureError err = {};
        char name[32];

        /* setup() made manifest.json, run, lib/data.txt and link: 4 entries. */
        for (unsigned i = 4; i < SIGNATURE_FILES_MAX; i++) {
                snprintf(name, sizeof name, "f%u", i);
                put_file(app, name, "", 0644);
        }
        ck_assert_int_eq(digest(app, d, &err), 0);
        put_file(app, "one-more", "", 0644);
        ck_assert_int_eq(digest(app, d, &err), -E2BIG);
}
END_TEST

/* SIGNATURE_DEPTH_MAX nested folders are fine; one more is -E2BIG. */
START_TEST(test_depth_bound)
{
        uint8_t d[SIGNATURE_DIGEST_BYTES];
        SignatureError err = {};
        char path[2048];

        strcpy(path, app);
        for (unsigned i = 0; i < SIGNATURE_DEPTH_MAX; i++) {
                strcat(path, "/d");
                ck_assert_int_eq(mkdir(path, 0755), 0);
        }
        put_file(path, "leaf", "x", 0644);
        ck_assert_int_eq(digest(app, d, &err), 0);
        strcat(path, "/d");
        ck_assert_int_eq(mkdir(path, 0755), 0);
        ck_assert_int_eq(digest(app, d, &err), -E2BIG);
}
END_TEST

/* SIGNATURE_BYTES_MAX bytes in all are fine; one more is -E2BIG (sparse files). */
START_TEST(test_bytes_bound)
{
        uint8_t d[SIGNATURE_DIGEST_BYTES];
        SignatureError err = {};
        struct stat st;
        off_t used = 0;
        const char *small[] = {"manifest.json", "run", "lib/data.txt"};
        _cleanup_close_ int fd = -EBADF;

        for (size_t i = 0; i < ELEMENTSOF(small); i++) {
                ck_assert_int_eq(stat(path_in(app, small[i]), &st), 0);
                used += st.st_size;
        }
        fd = open(path_in(app, "big"), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(ftruncate(fd, (off_t)SIGNATURE_BYTES_MAX - used), 0);
        ck_assert_int_eq(digest(app, d, &err), 0);
        ck_assert_int_eq(ftruncate(fd, (off_t)SIGNATURE_BYTES_MAX - used + 1), 0);
        ck_assert_int_eq(digest(app, d, &err), -E2BIG);
        ck_assert_str_eq(err.path, "big");
}
END_TEST

START_TEST(test_sign_errors)
{
        _cleanup_close_ int fd = open_dir(app);
        SignatureError err = {};
        char key[256];

        ck_assert_int_eq(signature_sign(fd, path_in(top, "missing.key"), &err), -ENOENT);
        put_file(top, "junk.key", "not base64 at all\n", 0600);
        snprintf(key, sizeof key, "%s/junk.key", top);
        ck_assert_int_eq(signature_sign(fd, key, &err), -EINVAL);
        /* A public key is not a secret key. */
        {
                char id[SIGNATURE_KEY_ID_CHARS + 1];

                make_key("k", false, id);
                ck_assert_int_eq(signature_sign(fd, path_in(top, "k.pub"), &err), -EINVAL);
        }
        ck_assert_int_eq(access(path_in(app, SIGNATURE_FILE), F_OK), -1);
}
END_TEST

/* Verify at path with an O_PATH fd, as the kernel does (instance_claim). */
static int verify_path_fd(const char *dir, SignatureError *err)
{
        _cleanup_close_ int fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);

        ck_assert_int_ge(fd, 0);
        return signature_verify(fd, state, NULL, err);
}

/* The verdict on a bundle, and the entry blamed. */
static void expect_untrusted(const char *blamed, const char *why)
{
        SignatureError err = {};
        int r = verify_path_fd(app, &err);

        ck_assert_msg(r == -EPERM, "verify gave %d (%s: %s), not -EPERM", r, err.path,
                      err.message ?: "");
        ck_assert_str_eq(err.path, blamed);
        ck_assert_msg(err.message && strstr(err.message, why), "message: %s", err.message ?: "");
}

/* A signature counts only on files nobody but root (or cella's uid) can change, in a
 * folder nobody else can swap (signature.h, signature_check_trust). */
START_TEST(test_verify_only_unchangeable)
{
        char id[SIGNATURE_KEY_ID_CHARS + 1];
        uint8_t d[SIGNATURE_DIGEST_BYTES];
        SignatureError err = {};
        int r;

        make_key("k", true, id);
        sign(app, "k");
        r = verify_path_fd(app, &err);
        ck_assert_msg(r == 0, "verify: %s %s", err.path, err.message);

        /* A file writable by others: its bytes may change after the check. */
        ck_assert_int_eq(chmod(path_in(app, "lib/data.txt"), 0666), 0);
        expect_untrusted("lib/data.txt", "writable by group or others");
        /* Its hash is still what it was: the digest alone (signing) does not mind. */
        ck_assert_int_eq(digest(app, d, NULL), 0);
        ck_assert_int_eq(chmod(path_in(app, "lib/data.txt"), 0620), 0);
        expect_untrusted("lib/data.txt", "writable by group or others");
        ck_assert_int_eq(chmod(path_in(app, "lib/data.txt"), 0644), 0);
        ck_assert_int_eq(verify_path_fd(app, NULL), 0);

        /* A folder inside writable by others: a file can be swapped in it. */
        ck_assert_int_eq(chmod(path_in(app, "lib"), 0777), 0);
        expect_untrusted("lib", "folder writable by group or others");
        ck_assert_int_eq(chmod(path_in(app, "lib"), 0755), 0);

        /* A file owned by another user: that user can rewrite it. */
        ck_assert_int_eq(chown(path_in(app, "run"), 1000, 1000), 0);
        expect_untrusted("run", "owned by a user other than root");
        ck_assert_int_eq(chown(path_in(app, "run"), 0, 0), 0);
        ck_assert_int_eq(verify_path_fd(app, NULL), 0);

        /* A symlink's owner and mode do not matter: its folder decides. */
        ck_assert_int_eq(lchown(path_in(app, "link"), 1000, 1000), 0);
        ck_assert_int_eq(verify_path_fd(app, NULL), 0);

        /* The folder itself, by its absolute path. */
        ck_assert_int_eq(chmod(app, 0775), 0);
        expect_untrusted(app, "folder writable by group or others");
        ck_assert_int_eq(chmod(app, 0755), 0);
        ck_assert_int_eq(chown(app, 1000, 1000), 0);
        expect_untrusted(app, "owned by a user other than root");
        ck_assert_int_eq(chown(app, 0, 0), 0);

        /* A parent on the way: whoever can rename in it can swap the folder... */
        ck_assert_int_eq(chmod(top, 0777), 0);
        expect_untrusted(top, "folder writable by group or others");
        ck_assert_int_eq(chown(top, 1000, 1000), 0);
        ck_assert_int_eq(chmod(top, 0755), 0);
        expect_untrusted(top, "owned by a user other than root");
        ck_assert_int_eq(chown(top, 0, 0), 0);
        /* ...unless it is sticky (as /tmp): others cannot rename what is not theirs. */
        ck_assert_int_eq(chmod(top, 01777), 0);
        r = verify_path_fd(app, &err);
        ck_assert_msg(r == 0, "verify: %s %s", err.path, err.message);
        ck_assert_int_eq(chmod(top, 0700), 0);

        /* signature_check_trust() alone says the same. */
        {
                _cleanup_close_ int fd = open(app, O_PATH | O_DIRECTORY | O_CLOEXEC);

                ck_assert_int_eq(signature_check_trust(fd, NULL), 0);
                ck_assert_int_eq(chmod(app, 0757), 0);
                ck_assert_int_eq(signature_check_trust(fd, &err), -EPERM);
                ck_assert_str_eq(err.path, app);
                ck_assert_int_eq(chmod(app, 0755), 0);
        }
}
END_TEST

/* signature_verify_signer: who signed, from the key SIGNATURE carries, trusted or not;
 * a changed file, an old SIGNATURE without the key, or a key that is not key_id's is
 * refused. */
START_TEST(test_verify_signer)
{
        _cleanup_close_ int dfd = open_dir(app);
        char prefix[200], key[256], id[SIGNATURE_KEY_ID_CHARS + 1], kid[SIGNATURE_KEY_ID_CHARS + 1],
                pk[SIGNATURE_PUBLIC_KEY_CHARS + 1], pub[256];
        _cleanup_free_ char *sig = NULL, *pubtext = NULL;
        SignatureError err;
        size_t n;

        snprintf(prefix, sizeof prefix, "%s/untrusted", top);
        ck_assert_int_eq(signature_keygen(prefix, kid), 0);
        snprintf(key, sizeof key, "%s.key", prefix);
        ck_assert_int_eq(signature_sign(dfd, key, &err), 0);
        /* not trusted: signature_verify refuses, the signer is still known */
        ck_assert_int_eq(signature_verify(dfd, state, NULL, &err), -ENOKEY);
        ck_assert_int_eq(signature_verify_signer(dfd, id, pk, &err), 0);
        ck_assert_str_eq(id, kid);
        snprintf(pub, sizeof pub, "%s.pub", prefix);
        ck_assert_int_eq(read_file_at(AT_FDCWD, pub, 4096, &pubtext, &n), 0);
        ck_assert(strncmp(pubtext, pk, SIGNATURE_PUBLIC_KEY_CHARS) == 0);

        put_file(app, "lib/data.txt", "changed\n", 0644);
        ck_assert_int_eq(signature_verify_signer(dfd, id, pk, &err), -EBADMSG);

        /* an older SIGNATURE, without the key */
        ck_assert_int_eq(signature_sign(dfd, key, &err), 0);
        ck_assert_int_eq(read_file_at(dfd, SIGNATURE_FILE, 4096, &sig, &n), 0);
        {
                char *a = strstr(sig, "\"public_key\""), *b = a ? strchr(a, ',') : NULL;

                ck_assert_ptr_nonnull(b);
                memmove(a, b + 1, strlen(b + 1) + 1);
                put_file(app, SIGNATURE_FILE, sig, 0644);
        }
        ck_assert_int_eq(signature_verify_signer(dfd, id, pk, &err), -EINVAL);
        ck_assert(strstr(err.message, "no \"public_key\""));
        /* a key that is not key_id's */
        ck_assert_int_eq(signature_sign(dfd, key, &err), 0);
        free(sig);
        sig = NULL;
        ck_assert_int_eq(read_file_at(dfd, SIGNATURE_FILE, 4096, &sig, &n), 0);
        {
                char *a = strstr(sig, "\"public_key\": \"");

                ck_assert_ptr_nonnull(a);
                a += strlen("\"public_key\": \"");
                a[0] = a[0] == 'A' ? 'B' : 'A';
                put_file(app, SIGNATURE_FILE, sig, 0644);
        }
        ck_assert_int_eq(signature_verify_signer(dfd, id, pk, &err), -EINVAL);
        ck_assert(strstr(err.message, "not the key"));
}
END_TEST

int main(void)
{
        Suite *s = suite_create("signature");
        TCase *tc = tcase_create("core");
        SRunner *sr;
        int failed;

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 120);
        tcase_add_test(tc, test_keygen);
        tcase_add_test(tc, test_sign_verify);
        tcase_add_test(tc, test_untrusted);
        tcase_add_test(tc, test_trusted_keys_permissions);
        tcase_add_test(tc, test_tamper);
        tcase_add_test(tc, test_bad_signature_file);
        tcase_add_test(tc, test_refused_entries);
        tcase_add_test(tc, test_digest_canonical);
        tcase_add_test(tc, test_files_bound);
        tcase_add_test(tc, test_depth_bound);
        tcase_add_test(tc, test_bytes_bound);
        tcase_add_test(tc, test_sign_errors);
        tcase_add_test(tc, test_verify_only_unchangeable);
        tcase_add_test(tc, test_verify_signer);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
