/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The app's /data file system (src/supervisor/storage.c): the image geometry for a
 * limit, and storage_prepare() on a real loop device in a temporary state
 * directory: a new image is made and mounted, the next call takes the fast path to
 * the same file system, files an earlier cella left in an unmounted data directory
 * are never hidden under the mount, and bad ids are refused. The loop device tests
 * need root and /dev/loop-control; without them their meson test (storage-loop)
 * prints "SKIP: <reason>" and exits 77, skipped.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include "base/macro.h"
#include "supervisor/storage.h"

#define MIB (1ull << 20)

static char top_dir[] = "/tmp/test-storage-XXXXXX";
static char data_path[PATH_MAX];

/* Whether the loop device tests can run here; prints why not. */
static bool can_loop(void)
{
        if (geteuid() != 0) {
                printf("SKIP: loop: storage_prepare needs root\n");
                return false;
        }
        if (access("/dev/loop-control", W_OK) < 0) {
                printf("SKIP: loop: no /dev/loop-control\n");
                return false;
        }
        return true;
}

static void setup(void)
{
        char apps[PATH_MAX];

        ck_assert_ptr_nonnull(mkdtemp(top_dir));
        snprintf(apps, sizeof apps, "%s/apps", top_dir); /* as state_open() makes it */
        ck_assert_int_eq(mkdir(apps, 0711), 0);
        snprintf(data_path, sizeof data_path, "%s/apps/org.test.store/data", top_dir);
}

static void teardown(void)
{
        char cmd[PATH_MAX + 32];

        umount2(data_path, MNT_DETACH); /* frees the loop device (autoclear) */
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", top_dir);
        ck_assert_int_eq(system(cmd), 0);
        strcpy(top_dir, "/tmp/test-storage-XXXXXX");
}

START_TEST(test_geometry)
{
        static const uint64_t limits[] = {1,          4096,       MIB,         6 * MIB,
                                          8 * MIB,    16 * MIB,   255 * MIB,   256 * MIB,
                                          1024 * MIB, 4096 * MIB, 65536 * MIB, 1ull << 40};
        uint64_t prev = 0;

        for (size_t i = 0; i < ELEMENTSOF(limits); i++) {
                uint64_t size, inodes;
                unsigned journal;

                storage_geometry(limits[i], 0, &size, &journal, &inodes);
                ck_assert_uint_eq(size % STORAGE_BLOCK_SIZE, 0);
                ck_assert_uint_ge(size, STORAGE_IMAGE_MIN);
                /* Room for the files and the journal, which mke2fs wants at most
                 * half of the file system. */
                ck_assert_uint_ge(size, limits[i] + journal * MIB);
                ck_assert_uint_le(2 * journal * MIB, size);
                ck_assert_uint_ge(inodes, limits[i] / 8192);
                /* At most a few % over the limit past the smallest sizes. */
                if (limits[i] >= 256 * MIB)
                        ck_assert_uint_le(size, limits[i] + limits[i] / 16 + 64 * MIB);
                ck_assert_uint_ge(size, prev);
                prev = size;
        }
        {
                uint64_t size, inodes, size2, inodes2;
                unsigned journal;

                storage_geometry(16 * MIB, 0, &size, &journal, &inodes);
                storage_geometry(16 * MIB, 100000, &size2, &journal, &inodes2);
                ck_assert_uint_eq(inodes2, 100000);
                /* More inodes take more room: 256 bytes each. */
                ck_assert_uint_ge(size2, size + (inodes2 - inodes) * 256);
        }
}
END_TEST

START_TEST(test_bad_id)
{
        int fd = -1;

        ck_assert_int_eq(storage_prepare(top_dir, "../escape", 16 * MIB, &fd), -EINVAL);
        ck_assert_int_eq(storage_prepare(top_dir, "", 16 * MIB, &fd), -EINVAL);
        ck_assert_int_eq(fd, -1);
}
END_TEST

START_TEST(test_prepare_mounts_and_reuses)
{
        _cleanup_close_ int fd = -EBADF, fd2 = -EBADF, f = -EBADF;
        struct statfs sf;
        struct stat st, st2, data;
        char img[PATH_MAX];

        ck_assert_int_eq(storage_prepare(top_dir, "org.test.store", 16 * MIB, &fd), 0);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(fstatfs(fd, &sf), 0);
        ck_assert_uint_eq((unsigned)sf.f_type, 0xEF53u); /* ext4 */
        ck_assert_int_eq(fstat(fd, &st), 0);
        ck_assert(S_ISDIR(st.st_mode));
        ck_assert_uint_eq(st.st_mode & 07777, 0700);
        /* The same file system is mounted on the host's data path, and empty. */
        ck_assert_int_eq(stat(data_path, &data), 0);
        ck_assert_uint_eq(data.st_dev, st.st_dev);
        f = openat(fd, "lost+found", O_PATH | O_CLOEXEC);
        ck_assert_int_lt(f, 0);
        /* A sparse image, 0600 root. */
        snprintf(img, sizeof img, "%s/apps/org.test.store/data.img", top_dir);
        ck_assert_int_eq(stat(img, &st2), 0);
        ck_assert_uint_eq(st2.st_mode & 07777, 0600);
        ck_assert_uint_lt((uint64_t)st2.st_blocks * 512, (uint64_t)st2.st_size / 4);

        /* Written through one clone, seen through the next (the fast path). */
        f = openat(fd, "x", O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        ck_assert_int_ge(f, 0);
        ck_assert_int_eq(write(f, "hello", 5), 5);
        ck_assert_int_eq(storage_prepare(top_dir, "org.test.store", 16 * MIB, &fd2), 0);
        ck_assert_int_eq(fstat(fd2, &st2), 0);
        ck_assert_uint_eq(st2.st_dev, st.st_dev);
        ck_assert_int_eq(fstatat(fd2, "x", &st2, 0), 0);
        ck_assert_int_eq(st2.st_size, 5);
}
END_TEST

START_TEST(test_files_under_an_unmounted_data_dir_are_never_hidden)
{
        _cleanup_close_ int fd = -EBADF, fd2 = -EBADF;
        char leftover[PATH_MAX + 16];

        ck_assert_int_eq(storage_prepare(top_dir, "org.test.store", 16 * MIB, &fd), 0);
        fd = safe_close(fd);
        ck_assert_int_eq(umount2(data_path, 0), 0);
        /* An earlier cella wrote into the bare directory after the migration. */
        snprintf(leftover, sizeof leftover, "%s/note", data_path);
        fd = open(leftover, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
        ck_assert_int_ge(fd, 0);
        ck_assert_int_eq(storage_prepare(top_dir, "org.test.store", 16 * MIB, &fd2), -ENOTEMPTY);
        ck_assert_int_eq(access(leftover, F_OK), 0);
        /* Once they are moved away, /data mounts again. */
        ck_assert_int_eq(unlink(leftover), 0);
        ck_assert_int_eq(storage_prepare(top_dir, "org.test.store", 16 * MIB, &fd2), 0);
}
END_TEST

int main(void)
{
        Suite *suite = suite_create("storage");
        TCase *tc = tcase_create("storage");
        TCase *loop = tcase_create("loop");
        const char *only = getenv("CK_RUN_CASE");
        bool run_loop = !only || strcmp(only, "loop") == 0;
        SRunner *sr;
        int failed;

        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_geometry);
        tcase_add_test(tc, test_bad_id);
        suite_add_tcase(suite, tc);
        /* The loop device tests: a test case of its own, which meson runs as a test of
         * its own (tests/unit/meson.build); where they cannot run it exits 77, skipped. */
        if (run_loop && !can_loop()) {
                if (only)
                        return 77;
        } else {
                tcase_set_tags(loop, "alone");
                tcase_add_checked_fixture(loop, setup, teardown);
                tcase_set_timeout(loop, 60);
                tcase_add_test(loop, test_prepare_mounts_and_reuses);
                tcase_add_test(loop, test_files_under_an_unmounted_data_dir_are_never_hidden);
                suite_add_tcase(suite, loop);
        }
        sr = srunner_create(suite);
        srunner_run_all(sr, CK_NORMAL);
        failed = srunner_ntests_failed(sr);
        srunner_free(sr);
        return failed ? 1 : 0;
}
