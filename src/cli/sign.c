/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella sign: ed25519 bundle signatures (docs/capabilities.md "Signing"). Four
 * modes: --keygen NAME makes a key pair, --key FILE APP_DIR|BUNDLE signs a folder or
 * a bundle file (docs/store.md), --trust NAME.pub adds a key to
 * <state>/trusted-keys/, --verify APP_DIR|BUNDLE checks one against the keys there.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "base/macro.h"
#include "cli/cli.h"
#include "policy/signature.h"
#include "cli/exit-codes.h"
#include "store/store.h"

enum {
        ARG_STATE_DIR = 0x100,
        ARG_KEYGEN,
        ARG_KEY,
        ARG_VERIFY,
        ARG_TRUST,
};

static void sign_usage(FILE *f)
{
        fprintf(f,
                "Usage: cella sign --keygen NAME\n"
                "       cella sign --key FILE APP_DIR|BUNDLE\n"
                "       cella sign --trust [--state-dir DIR] NAME.pub\n"
                "       cella sign --verify [--state-dir DIR] APP_DIR|BUNDLE\n"
                "\n"
                "--keygen writes a new ed25519 key pair: NAME.key (secret, mode 0600) and\n"
                "NAME.pub.\n"
                "--trust adds the public key NAME.pub to the state's trusted keys\n"
                "(<state-dir>/trusted-keys/<key id>.pub).\n"
                "--key signs the app folder APP_DIR with the secret key FILE: it writes\n"
                "APP_DIR/SIGNATURE over every file of the folder. Given a bundle file\n"
                "('cella bundle'), it signs the bundle and writes it again in place.\n"
                "--verify checks the SIGNATURE of APP_DIR or of a bundle against the\n"
                "trusted keys.\n"
                "\n"
                "Options:\n"
                "      --state-dir DIR   state directory (default %s)\n"
                "  -h, --help            this text\n"
                "\n"
                "Exit status: 0 done (or verified); 1 the signature does not verify, the\n"
                "folder cannot be signed, or the key cannot be trusted; 240 bad command line.\n",
                cli_default_state_dir());
}

static int report(const char *app_dir, int r, const SignatureError *e, const char *what)
{
        if (e->path[0] == '/') /* a folder on the way (signature_check_trust) */
                log_error("%s: %s: %s", what, e->path, e->message ?: strerror(-r));
        else if (e->path[0])
                log_error("%s: %s/%s: %s", what, app_dir, e->path, e->message ?: strerror(-r));
        else
                log_error("%s: %s: %s", what, app_dir, e->message ?: strerror(-r));
        return 1;
}

/* cella sign --key KEY FILE, FILE a bundle: signed into FILE.tmp-PID, renamed over FILE. */
static int sign_bundle(const char *file, const char *key)
{
        _cleanup_close_ int in = -EBADF, out = -EBADF;
        _cleanup_free_ char *tmp = NULL;
        char key_id[SIGNATURE_KEY_ID_CHARS + 1];
        StoreError err = {};
        int r;

        in = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (in < 0) {
                log_error_errno(-errno, "cannot open %s: %m", file);
                return 1;
        }
        if (asprintf(&tmp, "%s.tmp-%d", file, (int)getpid()) < 0) {
                log_error("out of memory");
                return CELLA_EXIT_INTERNAL;
        }
        out = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644);
        if (out < 0) {
                log_error_errno(-errno, "cannot create %s: %m", tmp);
                return 1;
        }
        r = store_bundle_sign(in, out, key, key_id, &err);
        if (r == 0 && fsync(out) < 0)
                r = -errno;
        if (r == 0 && rename(tmp, file) < 0)
                r = -errno;
        if (r < 0) {
                (void)unlink(tmp);
                cli_store_error("cannot sign", file, r, &err);
                return 1;
        }
        printf("signed %s with key %s\n", file, key_id);
        return 0;
}

/* cella sign --verify FILE, FILE a bundle. */
static int verify_bundle(const char *file, const char *state_dir)
{
        _cleanup_close_ int in = -EBADF;
        char key_id[SIGNATURE_KEY_ID_CHARS + 1];
        StoreError err = {};
        bool trusted = false;
        int r;

        in = open(file, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (in < 0) {
                log_error_errno(-errno, "cannot open %s: %m", file);
                return 1;
        }
        r = store_bundle_verify(in, state_dir, key_id, &trusted, &err);
        if (r < 0) {
                cli_store_error("signature does not verify:", file, r, &err);
                return 1;
        }
        if (!trusted) {
                log_error("signature does not verify: %s: signed by key %s, which is not "
                          "trusted: %s%s%s",
                          file, key_id, err.path, err.path[0] ? ": " : "", err.message);
                return 1;
        }
        printf("%s: signed by trusted key %s\n", file, key_id);
        return 0;
}

int cli_sign(int argc, char **argv)
{
        static const struct option options[] = {
                {"state-dir", required_argument, NULL, ARG_STATE_DIR},
                {"keygen", required_argument, NULL, ARG_KEYGEN},
                {"key", required_argument, NULL, ARG_KEY},
                {"verify", no_argument, NULL, ARG_VERIFY},
                {"trust", no_argument, NULL, ARG_TRUST},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        const char *state_dir = cli_default_state_dir(), *keygen = NULL, *key = NULL, *app_dir;
        char key_id[SIGNATURE_KEY_ID_CHARS + 1];
        _cleanup_close_ int dirfd = -EBADF;
        SignatureError err = {};
        bool verify = false, trust = false;
        int c, r, code;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                switch (c) {
                case ARG_STATE_DIR:
                        if ((code = cli_state_dir_arg(optarg, &state_dir)) != 0)
                                return code;
                        break;
                case ARG_KEYGEN:
                        keygen = optarg;
                        break;
                case ARG_KEY:
                        key = optarg;
                        break;
                case ARG_VERIFY:
                        verify = true;
                        break;
                case ARG_TRUST:
                        trust = true;
                        break;
                case 'h':
                        sign_usage(stdout);
                        return 0;
                default:
                        sign_usage(stderr);
                        return CELLA_EXIT_USAGE;
                }
        }
        if (!!keygen + !!key + verify + trust != 1) {
                log_error("sign: expected exactly one of --keygen, --key, --trust, --verify; "
                          "see 'cella sign --help'");
                return CELLA_EXIT_USAGE;
        }
        if (trust) {
                if (argc - optind != 1) {
                        log_error("sign --trust: expected NAME.pub; see 'cella sign --help'");
                        return CELLA_EXIT_USAGE;
                }
                r = signature_trust(state_dir, argv[optind], key_id);
                if (r == -EINVAL) {
                        log_error("cannot trust %s: not a public key file (one line of base64 "
                                  "of 32 bytes, as 'cella sign --keygen' writes NAME.pub)",
                                  argv[optind]);
                        return 1;
                }
                if (r == -EPERM) {
                        log_error("cannot trust %s: %s/" SIGNATURE_TRUSTED_DIR
                                  " is not a directory only root can write",
                                  argv[optind], state_dir);
                        return 1;
                }
                if (r == -EROFS || r == -EACCES) {
                        cli_state_dir_unwritable(state_dir, r);
                        return 1;
                }
                if (r < 0) {
                        log_error_errno(r, "cannot trust %s: %m", argv[optind]);
                        return 1;
                }
                printf("trusted key %s: %s/" SIGNATURE_TRUSTED_DIR "/%s.pub\n", key_id, state_dir,
                       key_id);
                return 0;
        }
        if (keygen) {
                if (optind != argc || !*keygen) {
                        log_error("sign --keygen: expected NAME only");
                        return CELLA_EXIT_USAGE;
                }
                r = signature_keygen(keygen, key_id);
                if (r < 0) {
                        log_error_errno(r, "cannot write %s.key and %s.pub: %m", keygen, keygen);
                        return 1;
                }
                printf("wrote %s.key (secret) and %s.pub (key id %s)\n", keygen, keygen, key_id);
                return 0;
        }
        if (argc - optind != 1) {
                log_error("sign: expected APP_DIR; see 'cella sign --help'");
                return CELLA_EXIT_USAGE;
        }
        app_dir = argv[optind];
        {
                struct stat st;

                if (stat(app_dir, &st) == 0 && S_ISREG(st.st_mode))
                        return key ? sign_bundle(app_dir, key) : verify_bundle(app_dir, state_dir);
        }
        dirfd = open(app_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dirfd < 0) {
                log_error_errno(-errno, "cannot open app folder %s: %m", app_dir);
                return 1;
        }
        if (key) {
                r = signature_sign(dirfd, key, &err);
                if (r < 0) {
                        if (!err.path[0] && err.message)
                                log_error("cannot sign with %s: %s (%s)", key, err.message,
                                          strerror(-r));
                        else
                                report(app_dir, r, &err, "cannot sign");
                        return 1;
                }
                printf("signed %s: wrote %s/" SIGNATURE_FILE "\n", app_dir, app_dir);
                return 0;
        }
        r = signature_verify(dirfd, state_dir, key_id, &err);
        if (r < 0)
                return report(app_dir, r, &err, "signature does not verify");
        printf("%s: signed by trusted key %s\n", app_dir, key_id);
        return 0;
}
