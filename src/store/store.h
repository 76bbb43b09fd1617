/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The store of installed apps (docs/store.md): what `cellad` installs, updates,
 * removes and lists, and where a start finds an installed app's files.
 *
 * Layout, under the state directory:
 *   apps/<id>/<version>/     the app's files: read-only (folders 0555, files 0444, or
 *                            0555 when executable), owned by the daemon's uid (root)
 *   apps/<id>/.<version>.json  the record of that version (StoreApp's fields)
 *   apps/<id>/current        a symlink to "<version>": the installed version, switched
 *                            atomically (a new symlink renamed over it); the commit
 *                            point of an install, update and remove
 *   apps/<id>/data, data.img the app's /data (src/supervisor/storage.c), not the store's
 *   apps/.staging-XXXXXX/    an install in progress; swept by store_sweep()
 *   apps/.store.lock         flock: one change to the store at a time
 * A version is the manifest's "version", which the store requires to be a folder name:
 * store_version_is_valid().
 *
 * A bundle (bundle.c) is one uncompressed tar (POSIX pax, libarchive) of the app
 * folder: manifest.json, the app's files and, when signed, SIGNATURE
 * (src/policy/signature.h), whose digest covers every file.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "policy/signature.h"

#define STORE_APPS_DIR       "apps"
#define STORE_CURRENT        "current"
#define STORE_LOCK           ".store.lock"
#define STORE_STAGING_PREFIX ".staging-"
/* Bytes of a version string the store accepts (the manifest allows 256). */
#define STORE_VERSION_MAX 128u

/* One installed app, as store_list() reports it. */
typedef struct StoreApp {
        char *id;
        char *version;
        char *dir;               /* absolute or as state_dir: <state>/apps/<id>/<version> */
        char *key_id;            /* the signer's key id (16 hex), NULL: unsigned */
        char *public_key;        /* the signer's ed25519 public key, base64; NULL: unsigned */
        char *previous;          /* the version this one replaced (kept on disk), or NULL */
        int64_t installed_at_ms; /* wall clock, ms since the epoch */
        bool autostart;          /* the manifest's "autostart" */
        uint64_t files;          /* entries of the bundle */
        uint64_t bytes;          /* bytes of its regular files */
} StoreApp;

/* Whose fault a failure is: what the daemon's reply names (docs/api.md). */
typedef enum StoreFault {
        STORE_FAULT_SYSTEM,        /* the machine: I/O, space, memory (org.cella.Failed) */
        STORE_FAULT_BUNDLE,        /* the bundle: an entry, the manifest, the signature */
        STORE_FAULT_INSTALLED,     /* install: the id is installed already */
        STORE_FAULT_NOT_INSTALLED, /* update, remove: the id is not installed */
        STORE_FAULT_NOT_NEWER,     /* update: the version is not newer */
        STORE_FAULT_SIGNER,        /* update: another signer, or signed/unsigned */
        STORE_FAULT_ID,            /* update: the bundle is another app than the one named */
} StoreFault;

/* Filled on failure: what was wrong and where. */
typedef struct StoreError {
        StoreFault fault;
        char path[SIGNATURE_PATH_MAX]; /* the entry of the bundle ("bin/app"), "" if none */
        char key[128];                 /* the manifest's key ("permissions[2]"), "" if none */
        char message[512];             /* English, complete: says what and why */
        char warning[512]; /* store_install: what went wrong after the outcome was decided
                              (a leftover not removed), set on success too; "" if none.
                              The store logs nothing itself: it may run on a thread pool */
} StoreError;

/* What store_install() does when the id is installed already. */
typedef enum StoreMode {
        STORE_MODE_INSTALL, /* refused (-EEXIST) if the id is installed */
        STORE_MODE_UPDATE,  /* refused (-ENOPKG) if it is not; else newer and same signer only */
} StoreMode;

/* What an install or update did. */
typedef struct StoreResult {
        StoreApp app;  /* the installed version (free with store_app_clear) */
        bool replaced; /* an update: app.previous is the version it replaced */
} StoreResult;

/*
 * Compares two versions by Debian's ordering (deb-version(7), dpkg's verrevcmp()):
 * an optional epoch "N:" compared as a number, then the upstream part, then the
 * revision after the last '-', each compared as alternating runs of non-digits
 * (letters sort before non-letters, '~' before everything, even the end) and digits
 * (as numbers). So "1.10" > "1.9", "1.0~rc1" < "1.0", "1.0" < "1.0a", "1:0.1" > "2.0".
 * Chosen over strverscmp(3), which puts "1.0~rc1" after "1.0" and knows no epoch.
 * Returns < 0, 0 or > 0 as a is older than, equal to or newer than b.
 */
int store_version_compare(const char *a, const char *b);

/*
 * True if v can be a version in the store (a folder name): 1..STORE_VERSION_MAX-1
 * bytes of [0-9A-Za-z.+~:-], starting with a digit (Debian policy's rule for
 * upstream versions; it also keeps versions apart from "current", "data" and the
 * dot-files beside them).
 */
bool store_version_is_valid(const char *v);

/*
 * Writes the app folder dirfd as a bundle to out_fd (at its position), deterministic:
 * entries sorted by path (bytewise), folders before their contents, mtime 0, uid and
 * gid 0 with no names, modes 0755 for folders and executable files, 0644 for other
 * files. Refuses what install would (special files, symlinks that may leave the
 * folder, control characters, past the bounds of signature.h), and a folder without
 * manifest.json; files hardlinked in the folder are written as copies (a bundle has
 * no hardlinks). SIGNATURE, when there, is written as a file like the others. Returns 0; -EPERM,
 * -ELOOP, -E2BIG, -ENOENT with err naming the entry, or -errno (-EIO from libarchive with err's
 * message).
 */
int store_bundle_write(int dirfd, int out_fd, StoreError *err);

/*
 * Extracts the bundle read from bundle_fd (from its current offset) into the empty
 * folder destfd with the checks of docs/store.md "What install checks": only regular
 * files, folders and relative symlinks with no ".." (they cannot leave the folder);
 * no hardlinks, devices, fifos, sockets, absolute paths, "..", empty or "."
 * components, control characters; no path through a symlink; nothing listed twice;
 * at most SIGNATURE_FILES_MAX entries, SIGNATURE_BYTES_MAX bytes, SIGNATURE_DEPTH_MAX
 * levels, SIGNATURE_PATH_MAX-1 bytes a path. Modes are normalised: files 0444 (0555
 * if any x bit was set), folders 0555 (once filled), owned by the caller. Every file
 * is written with *at() calls from destfd that never follow a symlink.
 * Returns 0 and, if not NULL, *ret_files (entries) and *ret_bytes (bytes of files);
 * -EBADMSG (not a tar, truncated, or corrupt), -EPERM (a refused entry), -E2BIG
 * (past a bound), -EEXIST (an entry listed twice), -ENOENT (no manifest.json), or
 * -errno; err says what and names the entry. On failure destfd holds what was
 * extracted so far (the caller removes it).
 */
int store_bundle_extract(int bundle_fd, int destfd, uint64_t *ret_files, uint64_t *ret_bytes,
                         StoreError *err);

/*
 * Signs the bundle read from in_fd with the secret key file key_path (`cella sign
 * --key K FILE`): extracts it as install does (store_bundle_extract) into a private
 * folder in $TMPDIR (else /tmp), signs that (signature_sign: SIGNATURE with the public
 * key), and writes the signed bundle to out_fd (store_bundle_write), which the caller
 * renames over the file. Returns 0 and ret_key_id (may be NULL); errors of the calls
 * named, err saying what and where.
 */
int store_bundle_sign(int in_fd, int out_fd, const char *key_path,
                      char ret_key_id[SIGNATURE_KEY_ID_CHARS + 1], StoreError *err);

/*
 * Verifies the bundle read from in_fd (`cella sign --verify FILE`): extracted as
 * above, its SIGNATURE checked against the key it carries (who signed), then against
 * state_dir's trusted keys (signature_verify). Returns 0 with ret_key_id and
 * *ret_trusted (false, with err's message saying why: signed, but by a key not
 * trusted here); or a negative errno (unsigned -ENOENT, broken -EBADMSG/-EINVAL, a
 * refused entry ...) with err.
 */
int store_bundle_verify(int in_fd, const char *state_dir,
                        char ret_key_id[SIGNATURE_KEY_ID_CHARS + 1], bool *ret_trusted,
                        StoreError *err);

/*
 * Installs (mode STORE_MODE_INSTALL) or updates (STORE_MODE_UPDATE) the app in the
 * bundle bundle_fd (read from its current offset; the caller opened it: the store
 * never opens a path a client names) into state_dir's store. In order, before
 * anything lands in the store (docs/store.md): extracts it into
 * apps/.staging-XXXXXX (store_bundle_extract); loads the manifest
 * (src/policy/manifest.c) and checks its version (store_version_is_valid), its
 * permissions and exports against the capability catalogue; verifies SIGNATURE, if
 * there, against the public key it carries (signature_verify_signer: a broken one
 * is refused, never taken as unsigned); then, under apps/.store.lock, checks the
 * installed version: install wants none (and the signer kept by a remove that kept
 * the app's data, if any); update wants one, a newer version
 * (store_version_compare) and the same signer (the same public key, or unsigned for
 * unsigned). Then renames the staging folder to apps/<id>/<version>, writes its
 * record, syncs the file system, and switches apps/<id>/current to it (rename of a
 * new symlink: the commit point). The version before the previous one is removed.
 * Killed at any point, the previous version stays the installed one.
 * expect_id: NULL, or the id the bundle's manifest must have (-EXDEV if not: an update
 * of app X with a bundle of app Y). now_ms: wall-clock ms for the record.
 * Returns 0 and *ret (may be NULL); -EEXIST (install: already installed), -ENOPKG
 * (update: not installed), -ESTALE (update: not newer), -EPERM (another signer, or
 * signed/unsigned mismatch), -EXDEV (not expect_id), -ECANCELED (a test hook), -EINVAL (bad
 * manifest or right: err->key names it), errors of store_bundle_extract() and
 * signature_verify_signer(), or -errno. err always says what, names the entry or
 * manifest key when one is to blame, and its fault says whose fault it is; err->warning
 * says what was left behind, on success too.
 */
int store_install(const char *state_dir, int bundle_fd, StoreMode mode, const char *expect_id,
                  int64_t now_ms, StoreResult *ret, StoreError *err);

/*
 * Removes the installed app id from the store: apps/<id>/current first (the commit
 * point: from then on it is not installed), then every version and record. The app's
 * /data, grants and uid are not the store's: the caller forgets them
 * (supervisor/forget.h) unless asked to keep them, and then passes keep_signer: the
 * removed version's signer is kept (apps/<id>/.kept-signer.json), and a later install
 * of the id must have the same signer, as an update would (the kept data is that
 * app's); forgetting the app removes it with apps/<id>/. The app must not be running.
 * Returns 0; -ENOPKG (not installed), -EINVAL (bad id), or -errno; err says what.
 */
int store_remove(const char *state_dir, const char *id, bool keep_signer, StoreError *err);

/*
 * The installed apps of state_dir, sorted by id, in *ret (n in *n; free with
 * store_app_free_many). An app folder whose record is missing or unreadable is
 * listed with what current names (key_id NULL, installed_at_ms 0) and a warning.
 * No store yet is an empty list. Returns 0 or -errno (-ENOMEM).
 */
int store_list(const char *state_dir, StoreApp **ret, size_t *n);

/*
 * One installed app: its record (as store_list) in *ret (free with
 * store_app_clear). Returns 0, -ENOENT (not installed), -EINVAL (bad id), -errno.
 */
int store_get(const char *state_dir, const char *id, StoreApp *ret);

/*
 * The folder of app id's installed version, <state_dir>/apps/<id>/<version> (the
 * version current names, resolved now: a later update does not move it), in *ret
 * (caller frees). Returns 0, -ENOENT (not installed), -EINVAL (bad id or a current
 * that names no valid version), or -errno.
 */
int store_app_dir(const char *state_dir, const char *id, char **ret);

/*
 * A cache of store_app_dir() answers for one state directory (cache.c; docs/store.md,
 * "The installed-version cache"), for cellad, which asks at every start. Each lookup
 * checks its entry against the store on disk (current's target read again, and the
 * version's folder the same directory, by device and inode, as the full lookup saw):
 * a change by this process or another is seen at the next lookup, without being told.
 * Not thread-safe: one thread (cellad's loop) uses it.
 */
typedef struct StoreCache StoreCache;

/* A new, empty cache for state_dir (copied) in *ret. Returns 0 or -ENOMEM. */
int store_cache_new(const char *state_dir, StoreCache **ret);

/* Frees c (NULL is fine). Returns NULL. */
StoreCache *store_cache_free(StoreCache *c);

/*
 * store_app_dir(state_dir, id, ret) answered from c when its entry for id still holds
 * (two system calls), else by store_app_dir() itself, whose answer then fills the
 * entry. Same answers and errors as store_app_dir(); -EINVAL for an invalid id.
 */
int store_cache_app_dir(StoreCache *c, const char *id, char **ret);

/* Drops c's entry for id (every entry if id is NULL): after this process installed,
 * updated or removed id. Not needed for correctness (lookups check their entry);
 * it frees what a removed app held. c may be NULL. */
void store_cache_forget(StoreCache *c, const char *id);

/* The lookups c answered from an entry (*ret_hits) and by store_app_dir()
 * (*ret_misses) since it was made; 0 and 0 for NULL. */
void store_cache_stats(const StoreCache *c, uint64_t *ret_hits, uint64_t *ret_misses);

/*
 * Cleans what interrupted installs left (for the daemon's start, under the lock):
 * apps/.staging-* folders, and in each apps/<id>/ the versions and records that
 * neither current nor its record's "previous" names, and a half-made ".current.new".
 * Returns the number of entries removed, or -errno.
 */
int store_sweep(const char *state_dir);

/* Frees the strings of a (NULL is fine) and zeroes it. */
void store_app_clear(StoreApp *a);

/* store_app_clear() on a[0..n-1], then frees the array a (NULL is fine). */
void store_app_free_many(StoreApp *a, size_t n);
