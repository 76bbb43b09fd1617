/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The store of installed apps (store.h, docs/store.md): install, update, remove, list,
 * sweep. Every change runs under apps/.store.lock and commits by renaming one symlink,
 * apps/<id>/current, so a kill at any point leaves the previous version installed;
 * what a killed change left behind is swept by store_sweep() and by the next change.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/macro.h"
#include "base/statedir.h"
#include "policy/capability.h"
#include "policy/manifest.h"
#include "store/store-internal.h"

#define CURRENT_NEW ".current.new"
/* The signer of an app removed with its data kept (store_remove's keep_signer): a
 * later install of the id must have that signer, as an update would. */
#define KEPT_SIGNER  ".kept-signer.json"
#define RECORD_MAX   (16u * 1024u)
#define RM_DEPTH_MAX (SIGNATURE_DEPTH_MAX + 4u)

/*
 * The test hooks (docs/store.md, "Testing an interrupted install"): with
 * CELLA_TEST_STORE_FAIL_AT=STEP in the environment of the process installing, the
 * install fails at STEP as a failing call would; with CELLA_TEST_STORE_KILL_AT=STEP
 * the process kills itself (SIGKILL) there, as a crash or kill -9 would. The steps:
 * extracted, checked, locked, renamed, recorded, switched. Only who starts the daemon
 * sets its environment, so they give nobody else a way in.
 */
static int hook(const char *step, StoreError *err)
{
        const char *kill_at = getenv("CELLA_TEST_STORE_KILL_AT"),
                   *fail_at = getenv("CELLA_TEST_STORE_FAIL_AT");

        if (kill_at && strcmp(kill_at, step) == 0)
                raise(SIGKILL);
        if (fail_at && strcmp(fail_at, step) == 0)
                return store_fail(err, -ECANCELED, "", "",
                                  "stopped at step '%s' by CELLA_TEST_STORE_FAIL_AT", step);
        return 0;
}

/* ---- files ------------------------------------------------------------------------------ */

/* Opens <state_dir>/apps (made if create), checked as the state directory's own. */
static int apps_open(const char *state_dir, bool create, StoreError *err)
{
        _cleanup_close_ int sfd = -EBADF;
        _cleanup_free_ char *path = NULL;
        int fd;

        sfd = state_dir_open(state_dir, create);
        if (sfd < 0)
                return store_fail(err, sfd, "", "", "cannot open the state directory %s: %s",
                                  state_dir, strerror(-sfd));
        if (asprintf(&path, "%s/" STORE_APPS_DIR, state_dir) < 0)
                return -ENOMEM;
        if (!create) {
                fd = openat(sfd, STORE_APPS_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                if (fd < 0)
                        return negative_errno();
                return fd;
        }
        fd = owned_subdir_open(sfd, STORE_APPS_DIR, 0711, path);
        if (fd < 0)
                return store_fail(err, fd, "", "", "cannot open %s: %s", path, strerror(-fd));
        return fd;
}

/* Takes apps/.store.lock (flock, exclusive; waits). Returns the lock's fd or -errno. */
static int lock_store(int appsfd)
{
        _cleanup_close_ int fd = -EBADF;

        fd = openat(appsfd, STORE_LOCK, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd < 0)
                return negative_errno();
        if (RETRY_EINTR(flock(fd, LOCK_EX)) < 0)
                return negative_errno();
        return TAKE_FD(fd);
}

/* The version apps/<id>/current names, in buf. 0, -ENOENT (none), -EINVAL (not a
 * version), or -errno. */
static int read_current(int idfd, char buf[STORE_VERSION_MAX])
{
        ssize_t k = readlinkat(idfd, STORE_CURRENT, buf, STORE_VERSION_MAX);

        if (k < 0)
                return errno == EINVAL ? -EINVAL : negative_errno();
        if ((size_t)k >= STORE_VERSION_MAX)
                return -EINVAL;
        buf[k] = 0;
        return store_version_is_valid(buf) ? 0 : -EINVAL;
}

static char *dup_or_null(json_t *v)
{
        return json_is_string(v) ? strdup(json_string_value(v)) : NULL;
}

/* Reads idfd/name (at most RECORD_MAX bytes), a JSON object, into *ret (the caller
 * decrefs). 0, or -errno (-EBADMSG for a file that is not a JSON object). */
static int read_json_at(int idfd, const char *name, json_t **ret)
{
        _cleanup_free_ char *text = NULL;
        size_t size;
        json_t *j;
        int r;

        *ret = NULL;
        r = read_file_at(idfd, name, RECORD_MAX, &text, &size);
        if (r < 0)
                return r;
        j = json_loadb(text, size, 0, NULL);
        if (!json_is_object(j)) {
                json_decref(j);
                return -EBADMSG;
        }
        *ret = j;
        return 0;
}

/* Writes j (borrowed; NULL: out of memory) to idfd/name, indented and ending in a
 * newline, atomically: name.tmp (mode 0644), fsync, rename over name. 0 or -errno. */
static int write_json_at(int idfd, const char *name, const json_t *j)
{
        _cleanup_free_ char *tmp = NULL, *text = NULL;
        _cleanup_close_ int fd = -EBADF;
        int r;

        text = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
        if (!text || asprintf(&tmp, "%s.tmp", name) < 0)
                return -ENOMEM;
        fd = openat(idfd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (fd < 0)
                return negative_errno();
        r = loop_write(fd, text, strlen(text));
        if (r == 0)
                r = loop_write(fd, "\n", 1);
        if (r == 0 && fsync(fd) < 0)
                r = negative_errno();
        if (r == 0 && renameat(idfd, tmp, idfd, name) < 0)
                r = negative_errno();
        if (r < 0)
                (void)unlinkat(idfd, tmp, 0);
        return r;
}

/* Reads the record of version into *a (id and version set by the caller's arguments).
 * 0, or -errno (-EBADMSG for a record that does not parse). */
static int read_record(int idfd, const char *id, const char *version, StoreApp *a)
{
        _cleanup_free_ char *name = NULL;
        json_t *j;
        int r;

        *a = (StoreApp){};
        a->id = strdup(id);
        a->version = strdup(version);
        if (!a->id || !a->version)
                return -ENOMEM;
        if (asprintf(&name, ".%s.json", version) < 0)
                return -ENOMEM;
        r = read_json_at(idfd, name, &j);
        if (r < 0)
                return r;
        a->key_id = dup_or_null(json_object_get(j, "key_id"));
        a->public_key = dup_or_null(json_object_get(j, "public_key"));
        a->previous = dup_or_null(json_object_get(j, "previous"));
        a->installed_at_ms = json_integer_value(json_object_get(j, "installed_at_ms"));
        a->autostart = json_is_true(json_object_get(j, "autostart"));
        a->files = (uint64_t)json_integer_value(json_object_get(j, "files"));
        a->bytes = (uint64_t)json_integer_value(json_object_get(j, "bytes"));
        json_decref(j);
        if (a->previous && !store_version_is_valid(a->previous)) {
                free(a->previous);
                a->previous = NULL;
        }
        return 0;
}

/* Writes the record of a (atomically: a temporary file, fsync, rename). 0 or -errno. */
static int write_record(int idfd, const StoreApp *a)
{
        _cleanup_free_ char *name = NULL;
        json_t *j;
        int r;

        if (asprintf(&name, ".%s.json", a->version) < 0)
                return -ENOMEM;
        j = json_pack("{s:s, s:s, s:s?, s:s?, s:s?, s:I, s:b, s:I, s:I}", "id", a->id, "version",
                      a->version, "key_id", a->key_id, "public_key", a->public_key, "previous",
                      a->previous, "installed_at_ms", (json_int_t)a->installed_at_ms, "autostart",
                      a->autostart, "files", (json_int_t)a->files, "bytes", (json_int_t)a->bytes);
        r = write_json_at(idfd, name, j);
        json_decref(j);
        return r;
}

/* The signer kept by store_remove(keep_signer) in apps/<id>/, into *a (key_id and
 * public_key NULL: it was unsigned). 0, -ENOENT (none), -EBADMSG, -errno. */
static int read_kept_signer(int idfd, const char *id, StoreApp *a)
{
        json_t *j;
        int r;

        *a = (StoreApp){};
        r = read_json_at(idfd, KEPT_SIGNER, &j);
        if (r < 0)
                return r;
        a->id = strdup(id);
        a->version = dup_or_null(json_object_get(j, "version"));
        a->key_id = dup_or_null(json_object_get(j, "key_id"));
        a->public_key = dup_or_null(json_object_get(j, "public_key"));
        json_decref(j);
        return a->id && a->version ? 0 : -ENOMEM;
}

/* Writes what read_kept_signer() reads, from the record rec (atomically). 0, -errno. */
static int write_kept_signer(int idfd, const StoreApp *rec)
{
        json_t *j;
        int r;

        j = json_pack("{s:s, s:s, s:s?, s:s?}", "id", rec->id, "version", rec->version, "key_id",
                      rec->key_id, "public_key", rec->public_key);
        r = write_json_at(idfd, KEPT_SIGNER, j);
        json_decref(j);
        return r;
}

/* Removes version's folder and record from apps/<id>/. 0 or -errno. */
static int remove_version(int idfd, const char *version)
{
        _cleanup_free_ char *rec = NULL;
        int r;

        if (asprintf(&rec, ".%s.json", version) < 0)
                return -ENOMEM;
        r = store_rm_rf_at(idfd, version, 0);
        if (r == 0 && unlinkat(idfd, rec, 0) < 0 && errno != ENOENT)
                r = negative_errno();
        return r;
}

/* Opens apps/<id> (made, mode 0711, if create). Returns the fd or -errno. */
static int id_open(int appsfd, const char *id, bool create)
{
        int fd;

        fd = openat(appsfd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        if (fd < 0 && errno == ENOENT && create) {
                if (mkdirat(appsfd, id, 0711) < 0 && errno != EEXIST)
                        return negative_errno();
                fd = openat(appsfd, id, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
        }
        return fd < 0 ? negative_errno() : fd;
}

void store_app_clear(StoreApp *a)
{
        if (!a)
                return;
        free(a->id);
        free(a->version);
        free(a->dir);
        free(a->key_id);
        free(a->public_key);
        free(a->previous);
        *a = (StoreApp){};
}

void store_app_free_many(StoreApp *a, size_t n)
{
        for (size_t i = 0; a && i < n; i++)
                store_app_clear(&a[i]);
        free(a);
}

/* ---- install ---------------------------------------------------------------------------- */

/* Makes apps/.staging-XXXXXXXX (mode 0700) and opens it; its name in name. */
static int staging_make(int appsfd, char name[32])
{
        for (int tries = 0; tries < 16; tries++) {
                uint32_t x;
                int fd;

                if (getrandom(&x, sizeof x, 0) != sizeof x)
                        return negative_errno();
                snprintf(name, 32, STORE_STAGING_PREFIX "%08x", x);
                if (mkdirat(appsfd, name, 0700) < 0) {
                        if (errno == EEXIST)
                                continue;
                        return negative_errno();
                }
                fd = openat(appsfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                return fd < 0 ? negative_errno() : fd;
        }
        return -EEXIST;
}

static void set_fault(StoreError *err, StoreFault f)
{
        if (err)
                err->fault = f;
}

/* The errors of a bundle's content (store_bundle_extract, signature_verify_signer), as
 * opposed to the machine's. */
#define IN_SET_BUNDLE(r)                                                                           \
        ((r) == -EPERM || (r) == -E2BIG || (r) == -EEXIST || (r) == -EBADMSG || (r) == -ENOENT ||  \
         (r) == -ELOOP || (r) == -EINVAL || (r) == -EAGAIN)

/* Checks the manifest's version, permissions and exports; err names the key. */
static int check_manifest(const Manifest *m, StoreError *err)
{
        const char *bad = NULL, *why = NULL;
        char key[64], buf[256];
        int r;

        if (!store_version_is_valid(m->version))
                return store_fail(err, -EINVAL, "manifest.json", "version",
                                  "the version '%s' cannot be installed: the store needs 1 to %u "
                                  "characters of [0-9A-Za-z.+~:-] starting with a digit (such as "
                                  "\"1.0.2\"; a manifest without \"version\" is \"0\")",
                                  m->version, STORE_VERSION_MAX - 1);
        r = capability_check_manifest(m, &bad, &why);
        if (r < 0) {
                size_t i = 0;

                while (m->permissions[i] && m->permissions[i] != bad)
                        i++;
                snprintf(key, sizeof key, "permissions[%zu]", i);
                return store_fail(err, -EINVAL, "manifest.json", key,
                                  "the right '%s' is refused: %s", bad ?: "?",
                                  why ?: "not in the capability catalogue");
        }
        for (size_t i = 0; m->exports[i]; i++) {
                r = capability_export_parse(m->exports[i], m->id, buf, sizeof buf, &why);
                if (r < 0) {
                        snprintf(key, sizeof key, "exports[%zu]", i);
                        return store_fail(err, -EINVAL, "manifest.json", key,
                                          "the export '%s' is refused: %s", m->exports[i],
                                          why ?: "not a right another app can hold on this one");
                }
        }
        return 0;
}

static int signature_to_store(int r, const SignatureError *se, StoreError *err)
{
        return store_fail(err, r, se->path[0] == '/' ? "" : se->path, "",
                          "the signature is refused: %s", se->message ?: strerror(-r));
}

/* Same-signer rule: new (key_id/public_key, NULL for unsigned) against the installed
 * record cur. 0 or -EPERM with err saying what differs. */
static int check_signer(const StoreApp *cur, const char *key_id, const char *public_key,
                        StoreError *err)
{
        if (!cur->public_key && !public_key)
                return 0;
        if (cur->public_key && !public_key)
                return store_fail(err, -EPERM, SIGNATURE_FILE, "",
                                  "%s %s is signed by key %s; an unsigned version cannot "
                                  "replace it (sign the update with the same key)",
                                  cur->id, cur->version, cur->key_id ?: "?");
        if (!cur->public_key && public_key)
                return store_fail(err, -EPERM, SIGNATURE_FILE, "",
                                  "%s %s is unsigned; only an unsigned version can replace it "
                                  "(this one is signed by key %s: remove the app and install "
                                  "it again to change who signs it)",
                                  cur->id, cur->version, key_id);
        if (strcmp(cur->public_key, public_key) != 0)
                return store_fail(err, -EPERM, SIGNATURE_FILE, "",
                                  "signed by key %s, but %s %s is signed by key %s: an update "
                                  "must be signed by the same key (Android's same-signer rule)",
                                  key_id, cur->id, cur->version, cur->key_id ?: "?");
        return 0;
}

int store_install(const char *state_dir, int bundle_fd, StoreMode mode, const char *expect_id,
                  int64_t now_ms, StoreResult *ret, StoreError *err)
{
        _cleanup_close_ int appsfd = -EBADF, stfd = -EBADF, lockfd = -EBADF, idfd = -EBADF;
        _cleanup_(manifest_freep) Manifest *m = NULL;
        char staging[32] = "", key_id[SIGNATURE_KEY_ID_CHARS + 1],
             public_key[SIGNATURE_PUBLIC_KEY_CHARS + 1], cur_version[STORE_VERSION_MAX];
        StoreApp cur = {}, app = {};
        ManifestError merr = {};
        SignatureError serr = {};
        uint64_t files = 0, bytes = 0;
        bool is_signed = false, has_cur = false;
        int r;

        if (err)
                *err = (StoreError){};
        if (!state_dir || bundle_fd < 0)
                return -EINVAL;
        appsfd = apps_open(state_dir, true, err);
        if (appsfd < 0)
                return appsfd;
        stfd = staging_make(appsfd, staging);
        if (stfd < 0) {
                r = store_fail(err, stfd, "", "", "cannot make a staging folder in %s/apps: %s",
                               state_dir, strerror(-stfd));
                staging[0] = 0;
                goto out;
        }

        /* 1. The files, checked entry by entry, into the staging folder. */
        r = store_bundle_extract(bundle_fd, stfd, &files, &bytes, err);
        if (r < 0) {
                if (err && IN_SET_BUNDLE(r))
                        err->fault = STORE_FAULT_BUNDLE;
                goto out;
        }
        if ((r = hook("extracted", err)) < 0)
                goto out;

        /* 2. The manifest and the rights it requests. */
        r = manifest_load_at(stfd, "manifest.json", &m, &merr);
        if (r < 0) {
                r = store_fail(err, r, "manifest.json", merr.key, "%s", merr.message);
                set_fault(err, r == -ENOMEM ? STORE_FAULT_SYSTEM : STORE_FAULT_BUNDLE);
                goto out;
        }
        r = check_manifest(m, err);
        if (r < 0) {
                set_fault(err, STORE_FAULT_BUNDLE);
                goto out;
        }
        if (expect_id && strcmp(expect_id, m->id) != 0) {
                r = store_fail(err, -EXDEV, "manifest.json", "id",
                               "the bundle is the app '%s', not '%s'", m->id, expect_id);
                set_fault(err, STORE_FAULT_ID);
                goto out;
        }

        /* 3. Who signed it: the key SIGNATURE carries, checked against every file. */
        if (faccessat(stfd, SIGNATURE_FILE, F_OK, AT_SYMLINK_NOFOLLOW) == 0) {
                r = signature_verify_signer(stfd, key_id, public_key, &serr);
                if (r < 0) {
                        r = signature_to_store(r, &serr, err);
                        set_fault(err, IN_SET_BUNDLE(r) ? STORE_FAULT_BUNDLE : STORE_FAULT_SYSTEM);
                        goto out;
                }
                is_signed = true;
        }
        if ((r = hook("checked", err)) < 0)
                goto out;

        /* 4. Against what is installed, under the lock. */
        lockfd = lock_store(appsfd);
        if (lockfd < 0) {
                r = store_fail(err, lockfd, "", "", "cannot lock %s/apps/" STORE_LOCK ": %s",
                               state_dir, strerror(-lockfd));
                goto out;
        }
        if ((r = hook("locked", err)) < 0)
                goto out;
        idfd = id_open(appsfd, m->id, mode == STORE_MODE_INSTALL);
        if (idfd < 0 && idfd != -ENOENT) {
                r = store_fail(err, idfd, "", "", "cannot open %s/apps/%s: %s", state_dir, m->id,
                               strerror(-idfd));
                goto out;
        }
        if (idfd >= 0) {
                r = read_current(idfd, cur_version);
                if (r == 0)
                        has_cur = true;
                else if (r != -ENOENT) {
                        r = store_fail(err, r, "", "",
                                       "%s/apps/%s/current is not a link to a version; remove "
                                       "the app first",
                                       state_dir, m->id);
                        goto out;
                }
        }
        if (has_cur) {
                /* Written before current named the version: without it, who signed the
                 * installed app is unknown, and so is whether an update may replace it. */
                r = read_record(idfd, m->id, cur_version, &cur);
                if (r < 0) {
                        r = store_fail(err, r, "", "",
                                       "cannot read the record of %s %s (%s/apps/%s/.%s.json: "
                                       "%s), so not who signed it; 'cella remove %s' first",
                                       m->id, cur_version, state_dir, m->id, cur_version,
                                       strerror(-r), m->id);
                        goto out;
                }
        }
        if (mode == STORE_MODE_INSTALL && !has_cur && idfd >= 0) {
                StoreApp kept = {};

                r = read_kept_signer(idfd, m->id, &kept);
                if (r == 0) {
                        r = check_signer(&kept, is_signed ? key_id : NULL,
                                         is_signed ? public_key : NULL, err);
                        if (r < 0 && err) {
                                char why[sizeof err->message];

                                memcpy(why, err->message, sizeof why);
                                store_fail(err, r, SIGNATURE_FILE, "",
                                           "%.128s's data was kept when it was removed, for the "
                                           "same app: %.240s ('cella forget %.128s' deletes the "
                                           "data, then any signer may install the id)",
                                           m->id, why, m->id);
                                set_fault(err, STORE_FAULT_SIGNER);
                        }
                } else if (r != -ENOENT)
                        r = store_fail(err, r, "", "", "cannot read %s/apps/%s/" KEPT_SIGNER ": %s",
                                       state_dir, m->id, strerror(-r));
                else
                        r = 0;
                store_app_clear(&kept);
                if (r < 0)
                        goto out;
        }
        if (mode == STORE_MODE_INSTALL && has_cur) {
                r = store_fail(err, -EEXIST, "", "id",
                               "%s is installed already (version %s); 'cella update' replaces "
                               "it with a newer version",
                               m->id, cur_version);
                set_fault(err, STORE_FAULT_INSTALLED);
                goto out;
        }
        if (mode == STORE_MODE_UPDATE) {
                int c;

                if (!has_cur) {
                        r = store_fail(err, -ENOPKG, "", "id",
                                       "%s is not installed; 'cella install' installs it", m->id);
                        set_fault(err, STORE_FAULT_NOT_INSTALLED);
                        goto out;
                }
                c = store_version_compare(m->version, cur_version);
                if (c <= 0) {
                        r = store_fail(err, -ESTALE, "manifest.json", "version",
                                       "version %s is %s the installed %s %s: an update must be "
                                       "newer (Debian's version ordering)",
                                       m->version, c == 0 ? "the same as" : "older than", m->id,
                                       cur_version);
                        set_fault(err, STORE_FAULT_NOT_NEWER);
                        goto out;
                }
                r = check_signer(&cur, is_signed ? key_id : NULL, is_signed ? public_key : NULL,
                                 err);
                if (r < 0) {
                        set_fault(err, STORE_FAULT_SIGNER);
                        goto out;
                }
        }

        /* 5. Into place: the folder, its record, then current (the commit point). */
        if (!has_cur || strcmp(cur_version, m->version) != 0) {
                bool keep = cur.previous && strcmp(cur.previous, m->version) == 0;

                if (!keep) {
                        r = remove_version(idfd, m->version); /* what a killed install left */
                        if (r < 0) {
                                r = store_fail(err, r, "", "", "cannot remove %s/apps/%s/%s: %s",
                                               state_dir, m->id, m->version, strerror(-r));
                                goto out;
                        }
                }
        }
        if (renameat(appsfd, staging, idfd, m->version) < 0) {
                r = store_fail(err, negative_errno(), "", "",
                               "cannot move the app into %s/apps/%s/%s: %m", state_dir, m->id,
                               m->version);
                goto out;
        }
        staging[0] = 0;
        if ((r = hook("renamed", err)) < 0)
                goto out;
        app = (StoreApp){
                .id = m->id,
                .version = m->version,
                .key_id = is_signed ? key_id : NULL,
                .public_key = is_signed ? public_key : NULL,
                .previous = has_cur ? cur_version : NULL,
                .installed_at_ms = now_ms,
                .autostart = m->autostart,
                .files = files,
                .bytes = bytes,
        };
        r = write_record(idfd, &app);
        if (r < 0) {
                r = store_fail(err, r, "", "", "cannot write the record of %s %s: %s", m->id,
                               m->version, strerror(-r));
                goto out;
        }
        if ((r = hook("recorded", err)) < 0)
                goto out;
        /* Every file of the new version on disk before current names it. */
        if (syncfs(idfd) < 0) {
                r = store_fail(err, negative_errno(), "", "", "cannot sync %s/apps: %m", state_dir);
                goto out;
        }
        (void)unlinkat(idfd, CURRENT_NEW, 0);
        if (symlinkat(m->version, idfd, CURRENT_NEW) < 0 ||
            renameat(idfd, CURRENT_NEW, idfd, STORE_CURRENT) < 0) {
                r = store_fail(err, negative_errno(), "", "",
                               "cannot switch %s/apps/%s/current: %m", state_dir, m->id);
                (void)unlinkat(idfd, CURRENT_NEW, 0);
                goto out;
        }
        (void)unlinkat(idfd, KEPT_SIGNER, 0); /* the kept data is this app's now */
        (void)fsync(idfd);
        if ((r = hook("switched", err)) < 0)
                goto out;
        /* The version before the replaced one goes: two stay (a running app keeps its
         * files until it restarts; docs/store.md "Atomicity"). */
        if (cur.previous && strcmp(cur.previous, m->version) != 0) {
                r = remove_version(idfd, cur.previous);
                if (r < 0 && err)
                        snprintf(err->warning, sizeof err->warning,
                                 "cannot remove %s/apps/%s/%s: %s (the next sweep will)", state_dir,
                                 m->id, cur.previous, strerror(-r));
        }
        r = 0;
        if (ret) {
                *ret = (StoreResult){.replaced = has_cur};
                ret->app.id = strdup(m->id);
                ret->app.version = strdup(m->version);
                ret->app.key_id = is_signed ? strdup(key_id) : NULL;
                ret->app.public_key = is_signed ? strdup(public_key) : NULL;
                ret->app.previous = has_cur ? strdup(cur_version) : NULL;
                ret->app.installed_at_ms = now_ms;
                ret->app.autostart = m->autostart;
                ret->app.files = files;
                ret->app.bytes = bytes;
                if (asprintf(&ret->app.dir, "%s/" STORE_APPS_DIR "/%s/%s", state_dir, m->id,
                             m->version) < 0)
                        ret->app.dir = NULL;
                if (!ret->app.id || !ret->app.version || !ret->app.dir) {
                        store_app_clear(&ret->app);
                        r = -ENOMEM;
                }
        }
out:
        if (staging[0]) {
                int k = store_rm_rf_at(appsfd, staging, 0);

                if (k < 0 && err)
                        snprintf(err->warning, sizeof err->warning,
                                 "cannot remove %s/apps/%s: %s (the next sweep will)", state_dir,
                                 staging, strerror(-k));
        }
        store_app_clear(&cur);
        return r;
}

/* ---- remove, list ----------------------------------------------------------------------- */

/* Removes every version, record and leftover of the store in apps/<id>, but keep and
 * keep2 (may be NULL). Leaves data, data.img, data.lock and current. Returns the
 * number removed or -errno. */
static int remove_versions_but(int idfd, const char *keep, const char *keep2)
{
        _cleanup_(closedirp) DIR *d = NULL;
        struct dirent *de;
        int r, n = 0;

        r = store_opendir_at(idfd, ".", 0, &d);
        if (r < 0)
                return r;
        while ((de = readdir(d))) {
                char v[STORE_VERSION_MAX + 16];
                const char *name = de->d_name;
                size_t len = strlen(name);
                bool tmp = false, kept;

                if (strcmp(name, CURRENT_NEW) == 0) {
                        (void)unlinkat(idfd, name, 0);
                        n++;
                        continue;
                }
                if (len >= sizeof v)
                        continue;
                /* a version folder "<version>", or its record ".<version>.json[.tmp]" */
                memcpy(v, name, len + 1);
                if (name[0] == '.') {
                        size_t k = len - 1;

                        memmove(v, v + 1, len); /* with the NUL */
                        if (k > 4 && strcmp(v + k - 4, ".tmp") == 0) {
                                tmp = true;
                                v[k -= 4] = 0;
                        }
                        if (k <= 5 || strcmp(v + k - 5, ".json") != 0)
                                continue;
                        v[k - 5] = 0;
                }
                if (!store_version_is_valid(v))
                        continue;
                kept = (keep && strcmp(v, keep) == 0) || (keep2 && strcmp(v, keep2) == 0);
                if (kept && !tmp)
                        continue;
                r = store_rm_rf_at(idfd, name, 0);
                if (r < 0)
                        return r;
                n++;
        }
        return n;
}

int store_remove(const char *state_dir, const char *id, bool keep_signer, StoreError *err)
{
        _cleanup_close_ int appsfd = -EBADF, lockfd = -EBADF, idfd = -EBADF;
        char cur[STORE_VERSION_MAX];
        int r;

        if (err)
                *err = (StoreError){};
        if (!state_dir || !id || !manifest_id_is_valid(id))
                return store_fail(err, -EINVAL, "", "id", "'%s' is not an app id", id ?: "");
        appsfd = apps_open(state_dir, false, err);
        if (appsfd == -ENOENT) {
                set_fault(err, STORE_FAULT_NOT_INSTALLED);
                return store_fail(err, -ENOPKG, "", "", "%s is not installed in %s", id, state_dir);
        }
        if (appsfd < 0)
                return appsfd;
        lockfd = lock_store(appsfd);
        if (lockfd < 0)
                return store_fail(err, lockfd, "", "", "cannot lock %s/apps/" STORE_LOCK ": %s",
                                  state_dir, strerror(-lockfd));
        idfd = id_open(appsfd, id, false);
        if (idfd == -ENOENT || (idfd >= 0 && (r = read_current(idfd, cur)) == -ENOENT)) {
                set_fault(err, STORE_FAULT_NOT_INSTALLED);
                return store_fail(err, -ENOPKG, "", "", "%s is not installed in %s", id, state_dir);
        }
        if (idfd < 0)
                return store_fail(err, idfd, "", "", "cannot open %s/apps/%s: %s", state_dir, id,
                                  strerror(-idfd));
        if (keep_signer) {
                StoreApp rec;

                r = read_record(idfd, id, cur, &rec);
                if (r == 0)
                        r = write_kept_signer(idfd, &rec);
                store_app_clear(&rec);
                if (r < 0)
                        return store_fail(err, r, "", "",
                                          "cannot keep the signer of %s (%s/apps/%s/" KEPT_SIGNER
                                          "): %s; nothing was removed",
                                          id, state_dir, id, strerror(-r));
        }
        /* The commit point: from here on the app is not installed. */
        if (unlinkat(idfd, STORE_CURRENT, 0) < 0)
                return store_fail(err, negative_errno(), "", "",
                                  "cannot remove %s/apps/%s/current: %m", state_dir, id);
        (void)fsync(idfd);
        r = remove_versions_but(idfd, NULL, NULL);
        if (r < 0)
                return store_fail(err, r, "", "",
                                  "removed %s, but not all its files in %s/apps/%s: %s", id,
                                  state_dir, id, strerror(-r));
        /* apps/<id> goes too when nothing else (its /data) is in it. */
        (void)unlinkat(appsfd, id, AT_REMOVEDIR);
        return 0;
}

static int store_get_at(int appsfd, const char *state_dir, const char *id, StoreApp *ret)
{
        _cleanup_close_ int idfd = -EBADF;
        char cur[STORE_VERSION_MAX];
        int r;

        idfd = id_open(appsfd, id, false);
        if (idfd < 0)
                return idfd;
        r = read_current(idfd, cur);
        if (r < 0)
                return r;
        r = read_record(idfd, id, cur, ret);
        if (r < 0 && r != -ENOMEM) {
                log_warning_errno(r, "cannot read the record of %s %s in %s/apps/%s: %m", id, cur,
                                  state_dir, id);
                r = 0;
        }
        if (r == 0 && asprintf(&ret->dir, "%s/" STORE_APPS_DIR "/%s/%s", state_dir, id, cur) < 0) {
                ret->dir = NULL;
                r = -ENOMEM;
        }
        if (r < 0)
                store_app_clear(ret);
        return r;
}

int store_get(const char *state_dir, const char *id, StoreApp *ret)
{
        _cleanup_close_ int appsfd = -EBADF;

        *ret = (StoreApp){};
        if (!manifest_id_is_valid(id))
                return -EINVAL;
        appsfd = apps_open(state_dir, false, NULL);
        if (appsfd < 0)
                return appsfd;
        return store_get_at(appsfd, state_dir, id, ret);
}

int store_app_dir(const char *state_dir, const char *id, char **ret)
{
        StoreApp a;
        int r;

        r = store_get(state_dir, id, &a);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(a.dir);
        store_app_clear(&a);
        return 0;
}

static int app_cmp(const void *a, const void *b)
{
        return strcmp(((const StoreApp *)a)->id, ((const StoreApp *)b)->id);
}

int store_list(const char *state_dir, StoreApp **ret, size_t *n)
{
        _cleanup_close_ int appsfd = -EBADF;
        _cleanup_(closedirp) DIR *d = NULL;
        StoreApp *v = NULL;
        size_t k = 0, cap = 0;
        struct dirent *de;
        int r;

        *ret = NULL;
        *n = 0;
        appsfd = apps_open(state_dir, false, NULL);
        if (appsfd == -ENOENT)
                return 0;
        if (appsfd < 0)
                return appsfd;
        r = store_opendir_at(appsfd, ".", 0, &d);
        if (r < 0)
                return r;
        while ((de = readdir(d))) {
                StoreApp a;

                if (!manifest_id_is_valid(de->d_name))
                        continue;
                r = store_get_at(appsfd, state_dir, de->d_name, &a);
                if (r == -ENOENT || r == -ENOTDIR || r == -ELOOP)
                        continue;
                if (r == -EINVAL) {
                        log_warning("%s/apps/%s/current does not name a version; skipped",
                                    state_dir, de->d_name);
                        continue;
                }
                if (r < 0) {
                        store_app_free_many(v, k);
                        return r;
                }
                if (k == cap) {
                        StoreApp *nv = reallocarray(v, cap ? cap * 2 : 16, sizeof *v);

                        if (!nv) {
                                store_app_clear(&a);
                                store_app_free_many(v, k);
                                return -ENOMEM;
                        }
                        v = nv;
                        cap = cap ? cap * 2 : 16;
                }
                v[k++] = a;
        }
        if (k > 1)
                qsort(v, k, sizeof *v, app_cmp);
        *ret = v;
        *n = k;
        return 0;
}

int store_sweep(const char *state_dir)
{
        _cleanup_close_ int appsfd = -EBADF, lockfd = -EBADF;
        _cleanup_(closedirp) DIR *d = NULL;
        struct dirent *de;
        int r, n = 0;

        appsfd = apps_open(state_dir, false, NULL);
        if (appsfd == -ENOENT)
                return 0;
        if (appsfd < 0)
                return appsfd;
        lockfd = lock_store(appsfd);
        if (lockfd < 0)
                return lockfd;
        r = store_opendir_at(appsfd, ".", 0, &d);
        if (r < 0)
                return r;
        while ((de = readdir(d))) {
                _cleanup_close_ int idfd = -EBADF;
                char cur[STORE_VERSION_MAX];
                StoreApp rec = {};

                if (strncmp(de->d_name, STORE_STAGING_PREFIX, strlen(STORE_STAGING_PREFIX)) == 0) {
                        r = store_rm_rf_at(appsfd, de->d_name, 0);
                        if (r < 0)
                                return r;
                        n++;
                        continue;
                }
                if (!manifest_id_is_valid(de->d_name))
                        continue;
                idfd = id_open(appsfd, de->d_name, false);
                if (idfd < 0)
                        continue;
                r = read_current(idfd, cur);
                if (r == 0)
                        (void)read_record(idfd, de->d_name, cur, &rec);
                else if (r != -ENOENT)
                        continue; /* not ours to guess at: store_list warns */
                r = remove_versions_but(idfd, r == 0 ? cur : NULL, rec.previous);
                store_app_clear(&rec);
                if (r < 0)
                        return r;
                n += r;
        }
        return n;
}
