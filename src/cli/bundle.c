/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella bundle: makes an app folder into one bundle file (docs/store.md, "Bundle
 * format"), deterministic, written to a temporary file renamed into place. Also the
 * opener install and update share: cli_bundle_fd() gives an fd of a bundle for a
 * folder (made in a memfd) or a bundle file.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/macro.h"
#include "cli/cli.h"
#include "cli/exit-codes.h"
#include "policy/manifest.h"
#include "policy/signature.h"
#include "store/store.h"

enum {
        ARG_JSON = 0x100,
};

static void bundle_usage(FILE *f)
{
        fprintf(f, "Usage: cella bundle [--json] APP_DIR [-o FILE]\n"
                   "\n"
                   "Writes the app folder APP_DIR as one bundle file (an uncompressed tar of\n"
                   "manifest.json, the app's files and SIGNATURE if it is signed), the same\n"
                   "bytes for the same folder: entries sorted, times, owners and modes fixed.\n"
                   "FILE defaults to <id>-<version>.cella in the current folder. A signed\n"
                   "folder's SIGNATURE must match its files. 'cella sign --key K FILE' signs a\n"
                   "bundle; 'cella install FILE' installs it (docs/store.md).\n"
                   "\n"
                   "Options:\n"
                   "  -o, --output FILE     the bundle to write (replaced atomically)\n"
                   "      --json            print one JSON object: file, id, version, bytes,\n"
                   "                        key_id (null: unsigned)\n"
                   "  -h, --help            this text\n"
                   "\n"
                   "Exit status: 0 written; 1 the folder cannot be bundled (named on stderr);\n"
                   "241 its manifest is invalid; 240 bad command line.\n");
}

/* Prints a StoreError about source (a folder or file the user named). */
void cli_store_error(const char *what, const char *source, int r, const StoreError *err)
{
        const char *msg = err->message[0] ? err->message : strerror(-r);

        if (err->path[0] && err->key[0])
                log_error("%s %s: %s: %s: %s", what, source, err->path, err->key, msg);
        else if (err->path[0])
                log_error("%s %s: %s: %s", what, source, err->path, msg);
        else if (err->key[0])
                log_error("%s %s: %s: %s", what, source, err->key, msg);
        else
                log_error("%s %s: %s", what, source, msg);
}

static int cli_oom(void)
{
        log_error("out of memory");
        return CELLA_EXIT_INTERNAL;
}

/* The most bytes a bundle file can hold: SIGNATURE_BYTES_MAX of files, and for each
 * of SIGNATURE_FILES_MAX entries a header, a pax header for a long path and the
 * padding of its data (512-byte blocks each), and the end blocks. */
#define BUNDLE_FILE_MAX (SIGNATURE_BYTES_MAX + (uint64_t)SIGNATURE_FILES_MAX * 4096u + 65536u)

/* Copies the bundle file fd into mfd (a memfd). 0, -EFBIG past BUNDLE_FILE_MAX, -errno. */
static int copy_into(int fd, int mfd)
{
        _cleanup_free_ char *buf = malloc(1u << 20);
        uint64_t total = 0;

        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t k = RETRY_EINTR(read(fd, buf, 1u << 20));
                int r;

                if (k < 0)
                        return -errno;
                if (k == 0)
                        return 0;
                total += (uint64_t)k;
                if (total > BUNDLE_FILE_MAX)
                        return -EFBIG;
                r = loop_write(mfd, buf, (size_t)k);
                if (r < 0)
                        return r;
        }
}

/* *ret (if ret is not NULL) = an error object shaped as cellad's replies:
 * {"error": name, "parameters": {"message", "errno", "entry"?, "key"?}}. */
static void json_error(json_t **ret, const char *name, int r, const char *message,
                       const StoreError *err)
{
        json_t *p;

        if (!ret)
                return;
        p = json_pack("{s:s, s:i}", "message", message, "errno", -r);
        if (p && err && err->path[0])
                json_object_set_new(p, "entry", json_string(err->path));
        if (p && err && err->key[0])
                json_object_set_new(p, "key", json_string(err->key));
        *ret = p ? json_pack("{s:s, s:o}", "error", name, "parameters", p) : NULL;
}

int cli_bundle_fd(const char *path, int *ret_fd, bool *ret_is_dir, json_t **ret_error)
{
        _cleanup_close_ int fd = -EBADF, mfd = -EBADF;
        StoreError err = {};
        struct stat st;
        char msg[1024];
        int r = 0;

        if (ret_error)
                *ret_error = NULL;
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0 || fstat(fd, &st) < 0) {
                r = -errno;
                snprintf(msg, sizeof msg, "cannot open %s: %s", path, strerror(-r));
                log_error("%s", msg);
                json_error(ret_error, "org.cella.Failed", r, msg, NULL);
                return 1;
        }
        if (ret_is_dir)
                *ret_is_dir = S_ISDIR(st.st_mode);
        if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode)) {
                snprintf(msg, sizeof msg, "%s is neither an app folder nor a bundle file", path);
                log_error("%s", msg);
                json_error(ret_error, "org.cella.InvalidBundle", -EINVAL, msg, NULL);
                return 1;
        }
        /* A sealed memfd either way: cellad reads only bytes nobody can change or
         * stall (docs/store.md, "What install checks"). */
        mfd = memfd_create("cella-bundle", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (mfd < 0) {
                log_error_errno(-errno, "cannot make a memfd for the bundle of %s: %m", path);
                return CELLA_EXIT_INTERNAL;
        }
        if (S_ISREG(st.st_mode)) {
                if (fd_nonblock(fd, 0) < 0 || (r = copy_into(fd, mfd)) < 0) {
                        r = r < 0 ? r : -errno;
                        if (r == -EFBIG)
                                snprintf(msg, sizeof msg,
                                         "%s is larger than any bundle can be (%llu bytes)", path,
                                         (unsigned long long)BUNDLE_FILE_MAX);
                        else
                                snprintf(msg, sizeof msg, "cannot read %s: %s", path, strerror(-r));
                        log_error("%s", msg);
                        json_error(ret_error,
                                   r == -EFBIG ? "org.cella.InvalidBundle" : "org.cella.Failed", r,
                                   msg, NULL);
                        return 1;
                }
        } else {
                r = store_bundle_write(fd, mfd, &err);
                if (r < 0) {
                        cli_store_error("cannot bundle", path, r, &err);
                        json_error(ret_error,
                                   r == -ENOMEM || r == -EIO ? "org.cella.Failed"
                                                             : "org.cella.InvalidBundle",
                                   r, err.message[0] ? err.message : strerror(-r), &err);
                        return 1;
                }
        }
        if (fcntl(mfd, F_ADD_SEALS, F_SEAL_WRITE | F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_SEAL) < 0 ||
            lseek(mfd, 0, SEEK_SET) < 0) {
                log_error_errno(-errno, "cannot seal the bundle of %s: %m", path);
                return CELLA_EXIT_INTERNAL;
        }
        *ret_fd = TAKE_FD(mfd);
        return 0;
}

int cli_bundle(int argc, char **argv)
{
        static const struct option options[] = {
                {"output", required_argument, NULL, 'o'},
                {"json", no_argument, NULL, ARG_JSON},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        _cleanup_(manifest_freep) Manifest *m = NULL;
        _cleanup_free_ char *file = NULL, *tmp = NULL;
        _cleanup_close_ int dirfd = -EBADF, fd = -EBADF;
        char key_id[SIGNATURE_KEY_ID_CHARS + 1] = "";
        const char *app_dir, *output = NULL;
        ManifestError merr = {};
        StoreError err = {};
        SignatureError se = {};
        bool json = false, is_signed = false;
        struct stat st;
        int c, r;

        while ((c = getopt_long(argc, argv, "ho:", options, NULL)) >= 0) {
                switch (c) {
                case 'o':
                        output = optarg;
                        break;
                case ARG_JSON:
                        json = true;
                        break;
                case 'h':
                        bundle_usage(stdout);
                        return 0;
                default:
                        bundle_usage(stderr);
                        return CELLA_EXIT_USAGE;
                }
        }
        if (argc - optind != 1 || (output && !*output)) {
                log_error("bundle: expected APP_DIR [-o FILE]; see 'cella bundle --help'");
                return CELLA_EXIT_USAGE;
        }
        app_dir = argv[optind];
        dirfd = open(app_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0) {
                log_error_errno(-errno, "cannot open app folder %s: %m", app_dir);
                return 1;
        }
        r = manifest_load_at(dirfd, app_dir, &m, &merr);
        if (r < 0) {
                if (merr.key[0])
                        log_error("%s: %s: %s", merr.file, merr.key, merr.message);
                else
                        log_error("%s: %s", merr.file[0] ? merr.file : app_dir,
                                  merr.message[0] ? merr.message : strerror(-r));
                return CELLA_EXIT_MANIFEST;
        }
        if (!store_version_is_valid(m->version)) {
                log_error("%s/manifest.json: version: '%s' cannot be installed: the store needs "
                          "1 to %u characters of [0-9A-Za-z.+~:-] starting with a digit "
                          "(docs/store.md, \"Versions\")",
                          app_dir, m->version, STORE_VERSION_MAX - 1);
                return CELLA_EXIT_MANIFEST;
        }
        if (faccessat(dirfd, SIGNATURE_FILE, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
                r = signature_verify_signer(dirfd, key_id, NULL, &se);
                if (r < 0) {
                        log_error("cannot bundle %s: its SIGNATURE does not hold: %s%s%s (sign it "
                                  "again, or remove it)",
                                  app_dir, se.path[0] ? se.path : "", se.path[0] ? ": " : "",
                                  se.message ?: strerror(-r));
                        return 1;
                }
                is_signed = true;
        }
        if (!output) {
                if (asprintf(&file, "%s-%s.cella", m->id, m->version) < 0)
                        return cli_oom();
                output = file;
        }
        if (asprintf(&tmp, "%s.tmp-%d", output, (int)getpid()) < 0)
                return cli_oom();
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0) {
                log_error_errno(-errno, "cannot create %s: %m", tmp);
                return 1;
        }
        r = store_bundle_write(dirfd, fd, &err);
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (r == 0 && rename(tmp, output) < 0)
                r = -errno;
        if (r < 0) {
                (void)unlink(tmp);
                cli_store_error("cannot bundle", app_dir, r, &err);
                return 1;
        }
        if (fstat(fd, &st) < 0)
                st.st_size = 0;
        if (json) {
                json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:s?}", "file", output, "id", m->id,
                                      "version", m->version, "bytes", (json_int_t)st.st_size,
                                      "key_id", is_signed ? key_id : NULL);

                if (!o || json_dumpf(o, stdout, JSON_COMPACT) < 0) {
                        json_decref(o);
                        return cli_oom();
                }
                json_decref(o);
                putchar('\n');
        } else
                printf("wrote %s: %s %s, %lld bytes, %s%s\n", output, m->id, m->version,
                       (long long)st.st_size, is_signed ? "signed by key " : "unsigned",
                       is_signed ? key_id : "");
        return 0;
}
