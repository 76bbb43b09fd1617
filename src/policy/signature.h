/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * Bundle signatures (docs/design.md section 4, docs/capabilities.md "Signing"): an ed25519
 * signature (libsodium) over a canonical digest of the app folder, stored as
 * <app>/SIGNATURE; the public keys cella trusts are <state>/trusted-keys/<name>.pub.
 * Signature-level rights are granted only to bundles that verify.
 *
 * The digest (signature_digest) is BLAKE2b-512 over, in order:
 *   "cella-bundle-v1\0";
 *   for each entry of the folder, recursively, sorted by relative path (bytewise,
 *   '/'-separated), the top-level SIGNATURE excepted:
 *     type (1 byte: 'f' regular file, 'x' executable regular file, 'l' symlink),
 *     path length (u32 little-endian), the path,
 *     for files: size (u64 LE) and the file's BLAKE2b-256 (32 bytes);
 *     for symlinks: target length (u32 LE) and the target.
 * manifest.json must be there. Refused: symlinks whose target is absolute or holds a
 * ".." component (so no chain of them can leave the folder), special files (devices,
 * fifos, sockets), paths with control characters, more than SIGNATURE_FILES_MAX
 * entries, SIGNATURE_BYTES_MAX bytes in all, SIGNATURE_DEPTH_MAX levels.
 *
 * Key files are one line of base64 (standard alphabet, padded): NAME.pub the 32-byte
 * public key, NAME.key the 64-byte libsodium secret key (seed then public key), mode
 * 0600. A key's id is the first 8 bytes of BLAKE2b-256(public key), as 16 hex digits.
 * SIGNATURE is JSON: {"version": 1, "algorithm": "ed25519", "key_id": "<hex>",
 * "public_key": "<base64 of the 32-byte public key>", "signature": "<base64 of the
 * 64-byte signature of the digest>"}. "public_key" (written since the store, optional
 * when read) tells who signed without trusting them: the store's same-signer rule
 * (docs/store.md); its id must be "key_id".
 */

#include <stdbool.h>
#include <stdint.h>

#define SIGNATURE_FILE         "SIGNATURE"
#define SIGNATURE_TRUSTED_DIR  "trusted-keys"
#define SIGNATURE_DIGEST_BYTES 64u
#define SIGNATURE_KEY_ID_CHARS 16u
/* Characters of a public key in base64 (32 bytes, padded), without the NUL. */
#define SIGNATURE_PUBLIC_KEY_CHARS 44u

/* Bounds on a bundle: entries, total bytes of regular files, directory depth, bytes of
 * one relative path. A real app folder is far below each (the examples: < 20 files). */
#define SIGNATURE_FILES_MAX 4096u
#define SIGNATURE_BYTES_MAX (1ull << 30)
#define SIGNATURE_DEPTH_MAX 32u
#define SIGNATURE_PATH_MAX  1024u
/* Trusted keys read from the trusted-keys folder; later ones are ignored. */
#define SIGNATURE_TRUSTED_KEYS_MAX 64u

/* Filled on failure when an entry of the folder or a key file is to blame. */
typedef struct SignatureError {
        char path[SIGNATURE_PATH_MAX]; /* relative to the folder; absolute (starts with
                                          '/') for the folder itself or a parent
                                          (signature_check_trust); "" when none */
        const char *message;           /* static English reason, or NULL */
} SignatureError;

/*
 * Computes the canonical digest of the app folder dirfd (header comment).
 * Returns 0 and ret_digest; -ENOENT (no manifest.json), -ELOOP (a symlink that may
 * point out of the folder), -EPERM (a special file, or a control character in a
 * path), -E2BIG (past a bound), -EAGAIN (a file changed while being read), or -errno
 * of reading; then err (may be NULL) names the entry and the reason.
 */
int signature_digest(int dirfd, uint8_t ret_digest[SIGNATURE_DIGEST_BYTES], SignatureError *err);

/*
 * Creates a key pair: <prefix>.key (mode 0600) and <prefix>.pub (mode 0644), both
 * created exclusively. Returns 0 and, if not NULL, ret_key_id (hex, NUL-terminated);
 * -EEXIST if either exists (nothing is left half-written), or -errno.
 */
int signature_keygen(const char *prefix, char ret_key_id[SIGNATURE_KEY_ID_CHARS + 1]);

/*
 * Trusts the public key file pub_path (one line of base64, as --keygen writes it):
 * copies it to <state_dir>/trusted-keys/<key id>.pub, mode 0644, making state_dir
 * (0711) and trusted-keys/ (0755) first if missing. A key already there (same id) is
 * fine. Returns 0 and ret_key_id (may be NULL), -EINVAL (not a public key file),
 * -EPERM (trusted-keys/ is not a directory, or writable by group or others: no key
 * in it would count), or -errno.
 */
int signature_trust(const char *state_dir, const char *pub_path,
                    char ret_key_id[SIGNATURE_KEY_ID_CHARS + 1]);

/*
 * Signs the app folder dirfd with the secret key in key_path: writes SIGNATURE
 * (atomically: a temporary file renamed over it). Returns 0; -EINVAL (not a key
 * file), errors of signature_digest, or -errno.
 */
int signature_sign(int dirfd, const char *key_path, SignatureError *err);

/*
 * Checks that nobody but root and cella's own uid (geteuid()) can change the app
 * folder dirfd or swap it for another (docs/security.md, "App identity"): the folder
 * must be owned by one of them and not writable by group or others, and so must each
 * parent reached by ".." up to / (a parent writable by group or others is accepted if
 * it has the sticky bit, like /tmp: others cannot rename what is not theirs there).
 * The rule is OpenSSH's StrictModes (sshd's secure_path()) and sudo's for its files.
 * The files inside are checked by signature_verify()'s walk. Returns 0; -EPERM and
 * err naming the offending folder (its absolute path) and why; -ELOOP, or -errno.
 */
int signature_check_trust(int dirfd, SignatureError *err);

/*
 * Verifies the app folder dirfd against the keys in <state_dir>/trusted-keys/<name>.pub
 * (trusted-keys/ and the key files must not be writable by group or others: -EPERM).
 * A signature is trusted only on bytes nobody else can change afterwards: the folder
 * must pass signature_check_trust() and every entry in it (folders and files; symlinks
 * excepted, their folder decides) be owned by root or cella's uid and not writable by
 * group or others, else -EPERM naming the entry.
 * Returns 0 and, if not NULL, ret_key_id; -ENOENT (no SIGNATURE), -EINVAL (malformed
 * SIGNATURE), -ENOKEY (signed by a key that is not trusted, or no trusted keys),
 * -EPERM (as above), -EBADMSG (the signature does not match: the folder was changed),
 * errors of signature_digest, or -errno.
 */
int signature_verify(int dirfd, const char *state_dir, char ret_key_id[SIGNATURE_KEY_ID_CHARS + 1],
                     SignatureError *err);

/*
 * Verifies the folder dirfd against the public key its SIGNATURE carries, not against
 * the trusted keys: it answers "who signed these bytes", which the store's same-signer
 * rule needs for keys nobody trusts (docs/store.md, "Signing"). Whether the signer is
 * trusted with signature-level rights stays signature_verify()'s question. The folder's
 * owners and modes are not checked (the store's staging folder is its own).
 * Returns 0 and, if not NULL, ret_key_id and ret_public_key (base64, NUL-terminated);
 * -ENOENT (no SIGNATURE: unsigned), -EINVAL (malformed SIGNATURE, no "public_key", or
 * one whose id is not "key_id"), -EBADMSG (the signature does not match the files),
 * errors of signature_digest, or -errno; err names the entry and the reason.
 */
int signature_verify_signer(int dirfd, char ret_key_id[SIGNATURE_KEY_ID_CHARS + 1],
                            char ret_public_key[SIGNATURE_PUBLIC_KEY_CHARS + 1],
                            SignatureError *err);

/* True if the relative path s holds no control character (below 0x20, or 0x7f): what
 * the digest's walk and the store's extraction accept in a name. */
bool signature_path_is_clean(const char *s);

/* True if the symlink target t cannot lead out of its folder whatever the links along
 * it: relative, not empty, no ".." component (each hop can only go down). The digest's
 * walk and the store's extraction accept only such symlinks. */
bool signature_link_target_ok(const char *t);
