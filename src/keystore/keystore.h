/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The kernel's keystore (docs/ipc.md): keys of each app, made and held
 * by the kernel, used by name, never handed out. Three kinds (libsodium, Debian's
 * libsodium-dev):
 *
 *   ed25519  signing (crypto_sign_*; a 32-byte seed held, the 32-byte public key
 *            shown)
 *   x25519   key exchange and sealed boxes (crypto_box_seal_*, crypto_kx: a
 *            32-byte secret scalar held, the 32-byte public key shown)
 *   secret   a 32-byte XChaCha20-Poly1305 key (crypto_aead_xchacha20poly1305_ietf)
 *            to seal and open the app's own data
 *
 * At rest, in <state>/keystore.db (SQLite, src/base/sqlite-util.h), one row per
 * key: app id, name, kind, public key, and the 32 private bytes sealed with
 * XChaCha20-Poly1305 under the host key with a fresh random 24-byte nonce and the
 * additional data "cella-keystore-v1" NUL app id NUL name NUL kind NUL public key:
 * a row copied to another app id or name, relabelled as another kind, or given
 * another public key, does not open, and every lookup opens the row (the public key
 * shown is the one sealed with the private bytes). The host
 * key is 32 random bytes in <state>/keystore.key (keystore_host_key_load(): the one
 * function a hardware-backed source would replace).
 *
 * In memory, private bytes live only in sodium_malloc() buffers (guard pages,
 * mlock()ed, excluded from core dumps where the kernel allows, wiped by
 * sodium_free()): the host key for the Keystore's life (read-only once loaded),
 * and one scratch buffer that holds an app's key for one operation and is zeroed
 * after it (sodium_memzero()).
 *
 * Not thread-safe: one Keystore per thread (the broker's loop).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define KEYSTORE_NAME_MAX       64u /* bytes of a key name, [a-z0-9_.-] */
#define KEYSTORE_KEY_BYTES      32u /* private bytes held per key, every kind */
#define KEYSTORE_PUBLIC_BYTES   32u /* an ed25519 or x25519 public key */
#define KEYSTORE_SIG_BYTES      64u /* an ed25519 signature (crypto_sign_BYTES) */
#define KEYSTORE_HOST_KEY_BYTES 32u
/* A sealed box of the secret kind: 24-byte nonce, ciphertext, 16-byte tag
 * (crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, _ABYTES). */
#define KEYSTORE_BOX_OVERHEAD 40u
/* A crypto_box_seal() box: 32-byte ephemeral public key and 16-byte tag. */
#define KEYSTORE_SEALED_TO_OVERHEAD 48u
/* Bytes of data one call signs, seals or opens: the 64 KiB frame (CHANNEL_BODY_MAX)
 * less the box overhead and the reply's framing, rounded down. */
#define KEYSTORE_DATA_MAX 64000u
#define KEYSTORE_AD_MAX   1024u /* bytes of associated data */
/* Keys per app when the caller gives no quota (cellad.conf keystore.keys_max). */
#define KEYSTORE_KEYS_MAX_DEFAULT 64u

typedef enum KeystoreKind {
        KEYSTORE_KIND_NONE = 0,
        KEYSTORE_KIND_ED25519 = 1,
        KEYSTORE_KIND_X25519 = 2,
        KEYSTORE_KIND_SECRET = 3,
} KeystoreKind;

typedef struct Keystore Keystore;

/* One key as keystore_list() shows it: never private bytes. */
typedef struct KeystoreEntry {
        char name[KEYSTORE_NAME_MAX + 1];
        KeystoreKind kind;
        uint8_t public_key[KEYSTORE_PUBLIC_BYTES]; /* zeros for the secret kind */
        int64_t created_ms;                        /* wall clock, ms since the epoch */
} KeystoreEntry;

/* "ed25519", "x25519", "secret", or NULL for another value. */
const char *keystore_kind_name(KeystoreKind kind);

/* True if name is a key name: 1..KEYSTORE_NAME_MAX bytes of [a-z0-9_.-]. */
bool keystore_name_is_valid(const char *name);

/*
 * The host key source: fills key (KEYSTORE_HOST_KEY_BYTES bytes, the caller's
 * sodium_malloc() buffer) from <state_dir>/keystore.key. When the file does not
 * exist and create is true, makes it: 32 bytes of randombytes_buf(), written to a
 * temporary file (0600, fsync) and linked into place, so a concurrent loader sees
 * the whole file or none. The file is refused (-EPERM) if it is a symlink, not a
 * regular file, not owned by the effective uid, or has any group or other
 * permission bit; -EBADMSG if it is not exactly 32 bytes. -ENOENT if missing and
 * !create. why (why_size bytes) gets one English sentence naming the file.
 *
 * This is the one function a hardware-backed keystore replaces (a TPM sealing the
 * host key: docs/ipc.md, "Hardware backing"): everything else sees 32
 * bytes.
 */
int keystore_host_key_load(const char *state_dir, bool create, uint8_t *key, char *why,
                           size_t why_size);

/*
 * Opens the keystore of state_dir: the host key (keystore_host_key_load(); made on
 * first use, unless keystore.db already holds keys: then a missing keystore.key is
 * -ENOKEY, the keys would be lost) and keystore.db (created 0600, schema 1).
 * keys_max: keys per app (0: KEYSTORE_KEYS_MAX_DEFAULT). Returns 0 and *ret, or
 * -errno with why (one English sentence naming the file): the loader's errors,
 * -ENOKEY, -EIO (keystore.db is not a database: "file is not a database"),
 * -EPROTONOSUPPORT (written by a newer cella), -ENOMEM.
 */
int keystore_open(const char *state_dir, unsigned keys_max, Keystore **ret, char *why,
                  size_t why_size);

/* Closes ks, wiping the host key. Takes NULL; returns NULL. */
Keystore *keystore_free(Keystore *ks);

/*
 * Makes a key of kind for app_id named name and stores it sealed. Writes its public
 * key (zeros for the secret kind) to pub (KEYSTORE_PUBLIC_BYTES; may be NULL).
 * Returns 0, -EINVAL (bad name or kind), -EEXIST (app_id has a key of that name),
 * -EDQUOT (app_id has keys_max keys), -EIO.
 */
int keystore_create(Keystore *ks, const char *app_id, const char *name, KeystoreKind kind,
                    uint8_t *pub);

/*
 * The public key and kind of app_id's key name. Returns 0, -ENOENT (no such key of
 * that app: whether another app has one is not said), -EIO.
 */
int keystore_public_key(Keystore *ks, const char *app_id, const char *name, KeystoreKind *ret_kind,
                        uint8_t pub[KEYSTORE_PUBLIC_BYTES]);

/*
 * Signs msg (n bytes, any size) with app_id's ed25519 key name: a detached
 * signature, sig (KEYSTORE_SIG_BYTES). Returns 0, -ENOENT, -EMEDIUMTYPE (the key
 * is of another kind), -EBADMSG (its row does not open: tampered, moved, or another
 * host key), -EIO.
 */
int keystore_sign(Keystore *ks, const char *app_id, const char *name, const void *msg, size_t n,
                  uint8_t sig[KEYSTORE_SIG_BYTES]);

/* Checks sig over msg (n bytes) with the ed25519 public key pub: 0 valid,
 * -EBADMSG not (or pub is not a valid point). Holds no key. */
int keystore_verify(const uint8_t pub[KEYSTORE_PUBLIC_BYTES], const void *msg, size_t n,
                    const uint8_t sig[KEYSTORE_SIG_BYTES]);

/*
 * Seals pt (n bytes) with app_id's secret key name and associated data ad (ad_n
 * bytes, authenticated, not stored): out gets nonce || ciphertext || tag, n +
 * KEYSTORE_BOX_OVERHEAD bytes (out_size at least that: -ENOBUFS), the nonce fresh
 * from randombytes_buf(). Returns the box's length, or -ENOENT, -EMEDIUMTYPE (not a
 * secret key), -EBADMSG (its row does not open), -EIO.
 */
int keystore_seal(Keystore *ks, const char *app_id, const char *name, const void *pt, size_t n,
                  const void *ad, size_t ad_n, uint8_t *out, size_t out_size);

/*
 * Opens box (n bytes) with app_id's key name: a secret key opens a box of
 * keystore_seal() made with the same ad; an x25519 key opens a crypto_box_seal()
 * box sealed to its public key (ad must be empty: -EINVAL). out gets the plaintext
 * (out_size at least n less the overhead: -ENOBUFS). Returns its length, or
 * -ENOENT, -EMEDIUMTYPE (an ed25519 key), -EBADMSG (the box does not open: tampered,
 * truncated, another key or other ad; or the key's row does not open), -EIO.
 */
int keystore_open_box(Keystore *ks, const char *app_id, const char *name, const void *box, size_t n,
                      const void *ad, size_t ad_n, uint8_t *out, size_t out_size);

/* Seals pt (n bytes) to the x25519 public key pub (crypto_box_seal()): out gets n +
 * KEYSTORE_SEALED_TO_OVERHEAD bytes. Returns that length, -ENOBUFS, or -EINVAL (pub
 * is not a usable key). Holds no key. */
int keystore_seal_to(const uint8_t pub[KEYSTORE_PUBLIC_BYTES], const void *pt, size_t n,
                     uint8_t *out, size_t out_size);

/*
 * For an operation off the loop (the broker's threadpool): app_id's key name,
 * opened into a sodium_malloc() copy of its own (*ret; keystore_key_free() wipes
 * it), which the keystore_key_*() functions below use on any thread without the
 * Keystore. Returns 0, -ENOENT, -EBADMSG, -EIO, -ENOMEM.
 */
typedef struct KeystoreKey KeystoreKey;
int keystore_key_load(Keystore *ks, const char *app_id, const char *name, KeystoreKey **ret);
KeystoreKey *keystore_key_free(KeystoreKey *k);
KeystoreKind keystore_key_kind(const KeystoreKey *k);
/* As keystore_sign(), keystore_seal() and keystore_open_box(), with an opened key:
 * same sizes, returns and errors (-EMEDIUMTYPE: the key is of another kind). */
int keystore_key_sign(KeystoreKey *k, const void *msg, size_t n, uint8_t sig[KEYSTORE_SIG_BYTES]);
int keystore_key_seal(KeystoreKey *k, const void *pt, size_t n, const void *ad, size_t ad_n,
                      uint8_t *out, size_t out_size);
int keystore_key_open(KeystoreKey *k, const void *box, size_t n, const void *ad, size_t ad_n,
                      uint8_t *out, size_t out_size);

/* Deletes app_id's key name (the row goes; SQLite's secure_delete overwrites its
 * bytes). Returns 0, -ENOENT, -EIO. */
int keystore_delete(Keystore *ks, const char *app_id, const char *name);

/* app_id's keys, by name: *ret (free()) and *ret_n. Returns 0 or -ENOMEM / -EIO. */
int keystore_list(Keystore *ks, const char *app_id, KeystoreEntry **ret, size_t *ret_n);

/* The quota keystore_create() applies. */
unsigned keystore_keys_max(const Keystore *ks);

/*
 * Forgets every key of app_id in state_dir's keystore.db (`cella remove`, `cella
 * forget`), without the host key. No keystore.db: 0. Returns the number of keys
 * deleted, or -errno (-EIO: the file is not a keystore).
 */
int keystore_forget_app(const char *state_dir, const char *app_id);
