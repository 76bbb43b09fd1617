/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * keystore-probe: an app for tests/integration/test_keystore.py and
 * bench/ipc-keystore. Run by cella in a real sandbox, it makes the keystore calls
 * its arguments name, in order, and prints one line per call:
 *
 *   <op> [<operands>] ok [<result>]      or      <op> [<operands>] <ERRNO NAME>
 *
 * Binary values (keys, signatures, boxes) go in and out as hex. It judges nothing:
 * the test asserts each line. Operations:
 *
 *   create NAME ed25519|x25519|secret   -> ok PUBHEX
 *   sign NAME MSG                       -> ok SIGHEX
 *   verify PUBHEX MSG SIGHEX            -> ok | EBADMSG
 *   seal NAME PLAINTEXT AD              -> ok BOXHEX        (AD "-": none)
 *   sealto PUBHEX PLAINTEXT             -> ok BOXHEX
 *   open NAME BOXHEX AD                 -> ok PLAINTEXT
 *   pub NAME                            -> ok KIND PUBHEX
 *   peer APP NAME                       -> ok KIND PUBHEX
 *   delete NAME                         -> ok
 *   list                                -> ok n=N max=M names=a,b,...
 *   fill PREFIX N                       -> ok made=K (stops at the first error: its name)
 *   pause                               -> "paused", then waits for a signal
 *   bench N                             -> sign, seal and open N times through the
 *                                          kernel and with libsodium in-process: rates
 */
#include <cella.h>
#include <errno.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static const char *errname(int e)
{
        static char buf[32];

        switch (e) {
        case EACCES:
                return "EACCES";
        case EPERM:
                return "EPERM";
        case ENOENT:
                return "ENOENT";
        case EINVAL:
                return "EINVAL";
        case EEXIST:
                return "EEXIST";
        case EBADMSG:
                return "EBADMSG";
        case EDQUOT:
                return "EDQUOT";
        case EMSGSIZE:
                return "EMSGSIZE";
        case ENOBUFS:
                return "ENOBUFS";
        case EIO:
                return "EIO";
        case EAGAIN:
                return "EAGAIN";
        case EOPNOTSUPP:
                return "EOPNOTSUPP";
        default:
                snprintf(buf, sizeof buf, "E%d", e);
                return buf;
        }
}

static void hex(const uint8_t *p, size_t n)
{
        for (size_t i = 0; i < n; i++)
                printf("%02x", p[i]);
}

/* Decodes hex s into buf (size bytes); returns the length or -1. */
static ssize_t unhex(const char *s, uint8_t *buf, size_t size)
{
        size_t n = strlen(s);

        if (n % 2 || n / 2 > size)
                return -1;
        for (size_t i = 0; i < n / 2; i++) {
                unsigned v;

                if (sscanf(s + 2 * i, "%2x", &v) != 1)
                        return -1;
                buf[i] = (uint8_t)v;
        }
        return (ssize_t)(n / 2);
}

static CellaKeyKind kind_of(const char *s)
{
        return strcmp(s, "ed25519") == 0  ? CELLA_KEY_ED25519
               : strcmp(s, "x25519") == 0 ? CELLA_KEY_X25519
               : strcmp(s, "secret") == 0 ? CELLA_KEY_SECRET
                                          : (CellaKeyKind)atoi(s);
}

static const char *kind_name(CellaKeyKind k)
{
        return k == CELLA_KEY_ED25519  ? "ed25519"
               : k == CELLA_KEY_X25519 ? "x25519"
               : k == CELLA_KEY_SECRET ? "secret"
                                       : "?";
}

static int say_err(int r)
{
        if (r < 0)
                printf(" %s\n", errname(-r));
        return r;
}

static double now_s(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_signal(int sig)
{
        (void)sig;
}

/* Operations a second of n runs of f(c, arg) (each returns < 0 on failure: abort). */
static double rate(long n, int (*f)(Cella *c, void *arg), Cella *c, void *arg)
{
        double t = now_s();

        for (long i = 0; i < n; i++)
                if (f(c, arg) < 0)
                        abort();
        return (double)n / (now_s() - t);
}

typedef struct BenchState {
        uint8_t msg[64000];
        uint8_t box[64000 + 64];
        uint8_t out[64000 + 64];
        size_t len, box_len;
        uint8_t sig[64], pk[32], sk[64], xpk[32], xsk[32], key[32];
} BenchState;

static BenchState bs;

static int k_sign(Cella *c, void *a)
{
        return cella_keystore_sign(c, "bench.sign", bs.msg, bs.len, bs.sig);
}
static int n_sign(Cella *c, void *a)
{
        return crypto_sign_detached(bs.sig, NULL, bs.msg, bs.len, bs.sk);
}
static int k_seal(Cella *c, void *a)
{
        return cella_keystore_seal(c, "bench.seal", bs.msg, bs.len, NULL, 0, bs.box, sizeof bs.box,
                                   &bs.box_len);
}
static int n_seal(Cella *c, void *a)
{
        randombytes_buf(bs.box, 24);
        bs.box_len = bs.len + 40;
        return crypto_aead_xchacha20poly1305_ietf_encrypt(bs.box + 24, NULL, bs.msg, bs.len, NULL,
                                                          0, NULL, bs.box, bs.key);
}
static int k_open(Cella *c, void *a)
{
        size_t len;

        return cella_keystore_open(c, a, bs.box, bs.box_len, NULL, 0, bs.out, sizeof bs.out, &len);
}
static int n_open(Cella *c, void *a)
{
        return crypto_aead_xchacha20poly1305_ietf_decrypt(bs.out, NULL, NULL, bs.box + 24,
                                                          bs.box_len - 24, NULL, 0, bs.box, bs.key);
}
static int n_open_x(Cella *c, void *a)
{
        return crypto_box_seal_open(bs.out, bs.box, bs.box_len, bs.xpk, bs.xsk);
}

/* bench N: the same operations through the kernel (the app's keys) and with
 * libsodium here (keys in the app's memory): one row each, "bench OP cella R/s
 * libsodium R/s". */
static void bench(Cella *c, long n)
{
        int r;

        randombytes_buf(bs.msg, sizeof bs.msg);
        (void)cella_keystore_delete(c, "bench.sign");
        (void)cella_keystore_delete(c, "bench.seal");
        (void)cella_keystore_delete(c, "bench.x");
        if ((r = cella_keystore_create(c, "bench.sign", CELLA_KEY_ED25519, NULL)) < 0 ||
            (r = cella_keystore_create(c, "bench.seal", CELLA_KEY_SECRET, NULL)) < 0 ||
            (r = cella_keystore_create(c, "bench.x", CELLA_KEY_X25519, bs.xpk)) < 0) {
                printf("bench %s\n", errname(-r));
                return;
        }
        crypto_sign_keypair(bs.pk, bs.sk);
        crypto_aead_xchacha20poly1305_ietf_keygen(bs.key);

        bs.len = 64;
        printf("bench sign_64B cella %.0f/s", rate(n, k_sign, c, NULL));
        printf(" libsodium %.0f/s\n", rate(n, n_sign, c, NULL));
        bs.len = 1024;
        printf("bench seal_1KiB cella %.0f/s", rate(n, k_seal, c, NULL));
        printf(" libsodium %.0f/s\n", rate(n, n_seal, c, NULL));
        (void)k_seal(c, NULL);
        printf("bench open_1KiB cella %.0f/s", rate(n, k_open, c, "bench.seal"));
        (void)n_seal(c, NULL);
        printf(" libsodium %.0f/s\n", rate(n, n_open, c, NULL));
        bs.len = 64000;
        printf("bench sign_64000B cella %.0f/s", rate(n / 4 + 1, k_sign, c, NULL));
        printf(" libsodium %.0f/s\n", rate(n / 4 + 1, n_sign, c, NULL));
        /* the dearest call: an x25519 sealed box of the most data, opened */
        if (cella_keystore_seal_to(c, bs.xpk, bs.msg, bs.len, bs.box, sizeof bs.box, &bs.box_len) <
            0)
                abort();
        printf("bench open_sealed_64000B cella %.0f/s", rate(n / 4 + 1, k_open, c, "bench.x"));
        crypto_box_keypair(bs.xpk, bs.xsk);
        crypto_box_seal(bs.box, bs.msg, bs.len, bs.xpk);
        printf(" libsodium %.0f/s\n", rate(n / 4 + 1, n_open_x, c, NULL));
        (void)cella_keystore_delete(c, "bench.sign");
        (void)cella_keystore_delete(c, "bench.seal");
        (void)cella_keystore_delete(c, "bench.x");
}

int main(int argc, char **argv)
{
        Cella *c = NULL;
        int r;

        setvbuf(stdout, NULL, _IOLBF, 0);
        if (sodium_init() < 0)
                return 2;
        r = cella_open(&c);
        if (r < 0) {
                fprintf(stderr, "keystore-probe: cannot reach the kernel: %s\n", strerror(-r));
                return 2;
        }
        for (int i = 1; i < argc; i++) {
                const char *op = argv[i];
                static uint8_t a[70000], b[70000];
                uint8_t pub[32], sig[64];
                CellaKeyKind kind;
                size_t len;
                ssize_t n, m;

#define NEED(k)                                                                                    \
        do {                                                                                       \
                if (i + (k) >= argc) {                                                             \
                        fprintf(stderr, "keystore-probe: %s needs %d operands\n", op, k);          \
                        return 2;                                                                  \
                }                                                                                  \
        } while (0)
                if (strcmp(op, "create") == 0) {
                        NEED(2);
                        printf("create %s", argv[i + 1]);
                        r = cella_keystore_create(c, argv[i + 1], kind_of(argv[i + 2]), pub);
                        if (say_err(r) >= 0) {
                                printf(" ok ");
                                hex(pub, 32);
                                printf("\n");
                        }
                        i += 2;
                } else if (strcmp(op, "sign") == 0) {
                        NEED(2);
                        printf("sign %s", argv[i + 1]);
                        r = cella_keystore_sign(c, argv[i + 1], argv[i + 2], strlen(argv[i + 2]),
                                                sig);
                        if (say_err(r) >= 0) {
                                printf(" ok ");
                                hex(sig, 64);
                                printf("\n");
                        }
                        i += 2;
                } else if (strcmp(op, "verify") == 0) {
                        NEED(3);
                        printf("verify");
                        if (unhex(argv[i + 1], pub, 32) != 32 || unhex(argv[i + 3], sig, 64) != 64)
                                r = -EINVAL;
                        else
                                r = cella_keystore_verify(c, pub, argv[i + 2], strlen(argv[i + 2]),
                                                          sig);
                        if (say_err(r) >= 0)
                                printf(" ok\n");
                        i += 3;
                } else if (strcmp(op, "seal") == 0) {
                        const char *ad;

                        NEED(3);
                        ad = strcmp(argv[i + 3], "-") == 0 ? NULL : argv[i + 3];
                        printf("seal %s", argv[i + 1]);
                        r = cella_keystore_seal(c, argv[i + 1], argv[i + 2], strlen(argv[i + 2]),
                                                ad, ad ? strlen(ad) : 0, b, sizeof b, &len);
                        if (say_err(r) >= 0) {
                                printf(" ok ");
                                hex(b, len);
                                printf("\n");
                        }
                        i += 3;
                } else if (strcmp(op, "sealto") == 0) {
                        NEED(2);
                        printf("sealto");
                        r = unhex(argv[i + 1], pub, 32) == 32
                                    ? cella_keystore_seal_to(c, pub, argv[i + 2],
                                                             strlen(argv[i + 2]), b, sizeof b, &len)
                                    : -EINVAL;
                        if (say_err(r) >= 0) {
                                printf(" ok ");
                                hex(b, len);
                                printf("\n");
                        }
                        i += 2;
                } else if (strcmp(op, "open") == 0) {
                        const char *ad;

                        NEED(3);
                        ad = strcmp(argv[i + 3], "-") == 0 ? NULL : argv[i + 3];
                        printf("open %s", argv[i + 1]);
                        n = unhex(argv[i + 2], a, sizeof a);
                        r = n < 0 ? -EINVAL
                                  : cella_keystore_open(c, argv[i + 1], a, (size_t)n, ad,
                                                        ad ? strlen(ad) : 0, b, sizeof b - 1, &len);
                        if (say_err(r) >= 0) {
                                b[len] = 0;
                                printf(" ok %s\n", (char *)b);
                        }
                        i += 3;
                } else if (strcmp(op, "pub") == 0) {
                        NEED(1);
                        printf("pub %s", argv[i + 1]);
                        r = cella_keystore_public_key(c, argv[i + 1], &kind, pub);
                        if (say_err(r) >= 0) {
                                printf(" ok %s ", kind_name(kind));
                                hex(pub, 32);
                                printf("\n");
                        }
                        i += 1;
                } else if (strcmp(op, "peer") == 0) {
                        NEED(2);
                        printf("peer %s %s", argv[i + 1], argv[i + 2]);
                        r = cella_keystore_peer_public_key(c, argv[i + 1], argv[i + 2], &kind, pub);
                        if (say_err(r) >= 0) {
                                printf(" ok %s ", kind_name(kind));
                                hex(pub, 32);
                                printf("\n");
                        }
                        i += 2;
                } else if (strcmp(op, "delete") == 0) {
                        NEED(1);
                        printf("delete %s", argv[i + 1]);
                        if (say_err(cella_keystore_delete(c, argv[i + 1])) >= 0)
                                printf(" ok\n");
                        i += 1;
                } else if (strcmp(op, "list") == 0) {
                        CellaKey *keys = NULL;
                        unsigned max = 0;

                        printf("list");
                        r = cella_keystore_list(c, &keys, &len, &max);
                        if (say_err(r) >= 0) {
                                printf(" ok n=%zu max=%u names=", len, max);
                                for (size_t k = 0; k < len; k++)
                                        printf("%s%s:%s", k ? "," : "", keys[k].name,
                                               kind_name(keys[k].kind));
                                printf("\n");
                                cella_free(keys);
                        }
                } else if (strcmp(op, "fill") == 0) {
                        long made = 0, want;

                        NEED(2);
                        want = atol(argv[i + 2]);
                        r = 0;
                        for (long k = 0; k < want; k++) {
                                char name[64];

                                snprintf(name, sizeof name, "%s%ld", argv[i + 1], k);
                                r = cella_keystore_create(c, name, CELLA_KEY_SECRET, NULL);
                                if (r < 0)
                                        break;
                                made++;
                        }
                        printf("fill ok made=%ld%s%s\n", made, r < 0 ? " " : "",
                               r < 0 ? errname(-r) : "");
                        i += 2;
                } else if (strcmp(op, "raw") == 0) {
                        /* raw OPCODE HEXBODY: a hand-made request, as a forger would */
                        CellaReply *reply = NULL;

                        NEED(2);
                        m = unhex(argv[i + 2], a, sizeof a);
                        printf("raw %s", argv[i + 1]);
                        r = m < 0 ? -EINVAL
                                  : cella_call(c, (uint16_t)strtoul(argv[i + 1], NULL, 0), a,
                                               (size_t)m, NULL, 0, &reply);
                        if (r >= 0 && reply->error)
                                r = reply->error;
                        if (say_err(r) >= 0)
                                printf(" ok %zu\n", reply->body_len);
                        cella_reply_free(reply);
                        i += 2;
                } else if (strcmp(op, "pause") == 0) {
                        signal(SIGTERM, on_signal);
                        printf("paused\n");
                        pause();
                } else if (strcmp(op, "bench") == 0) {
                        NEED(1);
                        bench(c, atol(argv[i + 1]));
                        i += 1;
                } else {
                        fprintf(stderr, "keystore-probe: unknown operation %s\n", op);
                        return 2;
                }
        }
        cella_close(c);
        return 0;
}
