/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * keystore.*: keys made and held by the kernel (src/keystore, docs/ipc.md
 * "Keystore"). Every key is addressed as (the caller's app id, a name the app
 * chose): the app id comes from the channel, never from the body, so an app
 * names only its own keys and another app's key of the same name is ENOENT, as a
 * key that does not exist. keystore.peer_public_key is the one call that names
 * another app, and it returns only a public key, under bus.send for that app.
 *
 * The keystore (host key and keystore.db) is opened on the first keystore call a
 * broker serves, so a kernel whose apps never use it makes no keystore.key.
 *
 * Where the work runs: the key's row is looked up and opened on the loop (a
 * prepared SELECT and an XChaCha20-Poly1305 open of 32 bytes: ~8 us in all,
 * bench/ipc-keystore), and so is the operation on at most KEYSTORE_LOOP_BYTES_MAX
 * bytes of data (an ed25519 signature of 64 bytes takes ~16 us). Larger data goes
 * (sign, verify, seal, open) to libuv's threadpool with its own copy of the opened key
 * (keystore_key_load(), a sodium_malloc() buffer wiped when freed) and of the data, as fs.usage's
 * walk does: signing 64000 bytes takes ~250 us and opening a sealed box of 64000 bytes ~70 us,
 * which on the loop would hold every other app's calls. The worker's CPU time is charged to the app
 * (broker_app_charge_cpu(), "worker_cpu_us" in the record). A call waiting on a worker is one of
 * the app's outstanding calls; if the app cancels it or goes, the worker's result is dropped and
 * the key wiped.
 *
 * Audit: each record carries the key's name, kind and the data's length in bytes;
 * never key bytes, data or signatures.
 */
#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/macro.h"
#include "base/time-util.h"
#include "broker/broker-internal.h"
#include "keystore/keystore.h"
#include "policy/manifest.h"

/* Bytes of data an operation may take on the loop; more goes to the threadpool.
 * 4 KiB: signing it takes ~30 us, opening a sealed box of it ~55 us (both release,
 * this VM), a few no-op calls' worth (docs/benchmarks.md: 18 us). */
#define KEYSTORE_LOOP_BYTES_MAX 4096u

/* The opened keystore of a broker, or NULL after a failure (logged once). */
typedef struct KeystoreGlobal {
        Keystore *ks;
        bool failed_logged;
        uint64_t failed_ns; /* uv_hrtime() of the last failed open, 0: none */
} KeystoreGlobal;

/* A keystore that did not open is tried again at most this often (an app's calls
 * in between get EIO at once: opening reads two files and a database). */
#define KEYSTORE_RETRY_NS (1000ull * 1000 * 1000)

void broker_keystore_free(void *global)
{
        KeystoreGlobal *g = global;

        if (!g)
                return;
        keystore_free(g->ks);
        free(g);
}

/* The broker's keystore, opened on first use; NULL after answering c with an error. */
static Keystore *keystore_get(BrokerCall *c)
{
        Broker *b = broker_app_broker(c->app);
        const BrokerOptions *o = broker_options(b);
        void **slot = broker_keystore_slot(b);
        KeystoreGlobal *g = *slot;
        char why[512] = "";
        int r;

        if (g && g->ks)
                return g->ks;
        if (!o->state_dir) {
                broker_reply_error(c, ENOTSUP, "the keystore is not available in this kernel");
                return NULL;
        }
        if (!g) {
                g = calloc(1, sizeof *g);
                if (!g) {
                        broker_reply_error(c, ENOMEM, NULL);
                        return NULL;
                }
                *slot = g;
        }
        if (g->failed_ns && uv_hrtime() - g->failed_ns < KEYSTORE_RETRY_NS)
                r = -EAGAIN;
        else
                r = keystore_open(o->state_dir, (unsigned)o->keystore_keys_max, &g->ks, why,
                                  sizeof why);
        if (r < 0) {
                if (r != -EAGAIN)
                        g->failed_ns = uv_hrtime() ?: 1;
                /* The reason names host files: it goes to the kernel's log, not the app. */
                if (!g->failed_logged)
                        log_error_errno(r, "keystore: %s", why[0] ? why : "cannot open: %m");
                g->failed_logged = true;
                if (why[0])
                        broker_audit_set(c, "keystore_error", json_string(why));
                broker_reply_error(c, EIO,
                                   "the kernel's keystore cannot be opened (the kernel's log "
                                   "says why)");
                return NULL;
        }
        g->failed_logged = false;
        g->failed_ns = 0;
        return g->ks;
}

static KeystoreKind kind_from_wire(Cella__V1__KeystoreKind k)
{
        switch (k) {
        case CELLA__V1__KEYSTORE_KIND__KEYSTORE_KIND_ED25519:
                return KEYSTORE_KIND_ED25519;
        case CELLA__V1__KEYSTORE_KIND__KEYSTORE_KIND_X25519:
                return KEYSTORE_KIND_X25519;
        case CELLA__V1__KEYSTORE_KIND__KEYSTORE_KIND_SECRET:
                return KEYSTORE_KIND_SECRET;
        default:
                return KEYSTORE_KIND_NONE;
        }
}

static Cella__V1__KeystoreKind kind_to_wire(KeystoreKind k)
{
        return (Cella__V1__KeystoreKind)k; /* the same numbers, by construction */
}

/* Adds the key's name (and kind, if known) to c's audit record. */
static void audit_key(BrokerCall *c, const char *name, KeystoreKind kind)
{
        broker_audit_set(c, "key", json_string(name ? name : ""));
        if (keystore_kind_name(kind))
                broker_audit_set(c, "kind", json_string(keystore_kind_name(kind)));
}

/* Answers c with the error of a keystore operation on the app's key name. */
static void reply_keystore_error(BrokerCall *c, int r, const char *name)
{
        char msg[160];

        switch (r) {
        case -ENOENT:
                snprintf(msg, sizeof msg, "the app has no key named \"%s\"", name);
                broker_reply_error(c, ENOENT, msg);
                return;
        case -EEXIST:
                snprintf(msg, sizeof msg, "the app already has a key named \"%s\"", name);
                broker_reply_error(c, EEXIST, msg);
                return;
        case -EMEDIUMTYPE:
                broker_reply_error(c, EINVAL, "the key is not of a kind this operation takes");
                return;
        case -EBADMSG:
                broker_reply_error(c, EBADMSG, "it does not open");
                return;
        case -ENOMEM:
                broker_reply_error(c, ENOMEM, NULL);
                return;
        default:
                log_error_errno(r, "keystore: an operation on a key failed: %m");
                broker_reply_error(c, EIO,
                                   "the kernel's keystore failed (the kernel's log says why)");
        }
}

/* The right of every call on the app's own keys, after checking name (NULL: the
 * call takes none). */
static const char *own_right(const char *name, bool needs_name, char *buf, size_t size,
                             int *ret_error)
{
        if (needs_name && !keystore_name_is_valid(name)) {
                *ret_error = -EINVAL;
                return NULL;
        }
        snprintf(buf, size, "keystore");
        return buf;
}

/* ---- off the loop -------------------------------------------------------------------- */

typedef enum JobOp {
        JOB_SIGN,
        JOB_SEAL,
        JOB_OPEN,
        JOB_SEAL_TO, /* to a public key: no key of the app */
        JOB_VERIFY,  /* with a public key: no key of the app; ad is the signature */
} JobOp;

typedef struct KeystoreJob {
        uv_work_t req;
        BrokerCall *call; /* NULL once the app cancelled the call or went */
        KeystoreKey *key; /* opened, the job's own copy */
        JobOp op;
        char name[KEYSTORE_NAME_MAX + 1];   /* for the error message */
        uint8_t pub[KEYSTORE_PUBLIC_BYTES]; /* JOB_SEAL_TO, JOB_VERIFY */
        uint8_t *in, *ad, *out;             /* copies of the request's data; the output */
        size_t in_n, ad_n, out_size;
        int r;
        uint64_t cpu_ns;
} KeystoreJob;

static KeystoreJob *job_free(KeystoreJob *j)
{
        if (!j)
                return NULL;
        keystore_key_free(j->key);
        free(j->in);
        free(j->ad);
        if (j->out) {
                sodium_memzero(j->out, j->out_size); /* an opened box's plaintext */
                free(j->out);
        }
        free(j);
        return NULL;
}

/* On a threadpool thread: touches nothing but its KeystoreJob. */
static void job_work(uv_work_t *req)
{
        KeystoreJob *j = req->data;
        uint64_t t0 = now_clock_ns(CLOCK_THREAD_CPUTIME_ID);

        switch (j->op) {
        case JOB_SIGN:
                j->r = keystore_key_sign(j->key, j->in, j->in_n, j->out);
                if (j->r == 0)
                        j->r = KEYSTORE_SIG_BYTES;
                break;
        case JOB_SEAL:
                j->r = keystore_key_seal(j->key, j->in, j->in_n, j->ad, j->ad_n, j->out,
                                         j->out_size);
                break;
        case JOB_OPEN:
                j->r = keystore_key_open(j->key, j->in, j->in_n, j->ad, j->ad_n, j->out,
                                         j->out_size);
                break;
        case JOB_SEAL_TO:
                j->r = keystore_seal_to(j->pub, j->in, j->in_n, j->out, j->out_size);
                break;
        case JOB_VERIFY:
                j->r = keystore_verify(j->pub, j->in, j->in_n, j->ad);
                break;
        }
        j->cpu_ns = now_clock_ns(CLOCK_THREAD_CPUTIME_ID) - t0;
}

static void reply_keystore_error(BrokerCall *c, int r, const char *name);

/* Answers c with an operation's outcome: r the output's length or -errno (verify:
 * 0 valid, -EBADMSG not). */
static void answer(BrokerCall *c, JobOp op, int r, const uint8_t *out, const char *name)
{
        if (op == JOB_VERIFY) {
                Cella__V1__KeystoreVerifyReply reply = CELLA__V1__KEYSTORE_VERIFY_REPLY__INIT;

                reply.valid = r == 0;
                broker_audit_set(c, "valid", json_boolean(reply.valid));
                broker_reply(c, &reply.base, NULL, 0);
                return;
        }
        if (r < 0) {
                if (r == -EINVAL && op == JOB_SEAL_TO)
                        broker_reply_error(c, EINVAL, "the public key is not a usable x25519 key");
                else if (r == -EINVAL && op == JOB_OPEN)
                        broker_reply_error(c, EINVAL,
                                           "an x25519 key opens sealed boxes, which take no "
                                           "associated data");
                else
                        reply_keystore_error(c, r, name);
                return;
        }
        if (op == JOB_SIGN) {
                Cella__V1__KeystoreSignReply reply = CELLA__V1__KEYSTORE_SIGN_REPLY__INIT;

                reply.signature = (ProtobufCBinaryData){.data = (uint8_t *)out, .len = (size_t)r};
                broker_reply(c, &reply.base, NULL, 0);
        } else if (op == JOB_SEAL || op == JOB_SEAL_TO) {
                Cella__V1__KeystoreSealReply reply = CELLA__V1__KEYSTORE_SEAL_REPLY__INIT;

                reply.box = (ProtobufCBinaryData){.data = (uint8_t *)out, .len = (size_t)r};
                broker_reply(c, &reply.base, NULL, 0);
        } else {
                Cella__V1__KeystoreOpenReply reply = CELLA__V1__KEYSTORE_OPEN_REPLY__INIT;

                reply.plaintext = (ProtobufCBinaryData){.data = (uint8_t *)out, .len = (size_t)r};
                broker_reply(c, &reply.base, NULL, 0);
        }
}

/* On the loop, after the worker (status UV_ECANCELED: it never ran). */
static void job_done(uv_work_t *req, int status)
{
        KeystoreJob *j = req->data;
        BrokerCall *c = j->call;

        if (c) {
                c->cancel = NULL;
                c->handler_data = NULL;
                if (status != 0)
                        broker_reply_error(c, ECANCELED, NULL);
                else {
                        broker_app_charge_cpu(c->app, j->cpu_ns);
                        broker_audit_set(c, "worker_cpu_us",
                                         json_integer((json_int_t)(j->cpu_ns / 1000u)));
                        answer(c, j->op, j->r, j->out, j->name);
                }
        }
        job_free(j);
}

static void job_cancel(BrokerCall *c)
{
        KeystoreJob *j = c->handler_data;

        /* job_done() frees it, whether the worker ran or uv_cancel() stopped it. */
        j->call = NULL;
        (void)uv_cancel((uv_req_t *)&j->req);
}

static uint8_t *dup_bytes(const ProtobufCBinaryData *b)
{
        uint8_t *p = malloc(b->len ?: 1);

        if (p && b->len)
                memcpy(p, b->data, b->len);
        return p;
}

/*
 * Runs op with the app's key name (JOB_SEAL_TO, JOB_VERIFY: none, but the public
 * key pub) on
 * the threadpool and answers c when done: in
 * (the data) and ad copied, out_size bytes of output; or answers c with an error
 * now (the key's lookup, memory, a threadpool that refuses work).
 */
static void job_start(BrokerCall *c, Keystore *ks, JobOp op, const char *name,
                      const ProtobufCBinaryData *in, const ProtobufCBinaryData *ad, size_t out_size,
                      const uint8_t *pub)
{
        KeystoreJob *j = calloc(1, sizeof *j);
        int r;

        if (!j) {
                broker_reply_error(c, ENOMEM, NULL);
                return;
        }
        r = op == JOB_SEAL_TO || op == JOB_VERIFY
                    ? 0
                    : keystore_key_load(ks, broker_app_id(c->app), name, &j->key);
        if (r < 0) {
                job_free(j);
                reply_keystore_error(c, r, name);
                return;
        }
        j->op = op;
        snprintf(j->name, sizeof j->name, "%s", name ? name : "");
        if (pub)
                memcpy(j->pub, pub, KEYSTORE_PUBLIC_BYTES);
        j->in_n = in->len;
        j->ad_n = ad ? ad->len : 0;
        j->out_size = out_size;
        j->in = dup_bytes(in);
        j->ad = ad ? dup_bytes(ad) : NULL;
        j->out = malloc(out_size ?: 1);
        if (!j->in || (ad && !j->ad) || !j->out) {
                job_free(j);
                broker_reply_error(c, ENOMEM, NULL);
                return;
        }
        j->req.data = j;
        j->call = c;
        r = uv_queue_work(broker_options(broker_app_broker(c->app))->loop, &j->req, job_work,
                          job_done);
        if (r < 0) {
                job_free(j);
                broker_reply_error(c, EAGAIN, "the kernel's workers are busy");
                return;
        }
        c->handler_data = j;
        c->cancel = job_cancel;
}

/* ---- create ------------------------------------------------------------------------ */

static const char *create_right(const ProtobufCMessage *req, char *buf, size_t size, int *ret_error)
{
        const Cella__V1__KeystoreCreateRequest *m = (const void *)req;

        if (kind_from_wire(m->kind) == KEYSTORE_KIND_NONE) {
                *ret_error = -EINVAL;
                return NULL;
        }
        return own_right(m->name, true, buf, size, ret_error);
}

static void create_handle(BrokerCall *c)
{
        const Cella__V1__KeystoreCreateRequest *m = (const void *)c->request;
        Cella__V1__KeystoreCreateReply reply = CELLA__V1__KEYSTORE_CREATE_REPLY__INIT;
        KeystoreKind kind = kind_from_wire(m->kind);
        uint8_t pub[KEYSTORE_PUBLIC_BYTES];
        Keystore *ks;
        char msg[160];
        int r;

        audit_key(c, m->name, kind);
        ks = keystore_get(c);
        if (!ks)
                return;
        r = keystore_create(ks, broker_app_id(c->app), m->name, kind, pub);
        if (r == -EDQUOT) {
                snprintf(msg, sizeof msg,
                         "the app has %u keys, its quota (keystore.keys_max): delete one first",
                         keystore_keys_max(ks));
                broker_reply_error(c, EDQUOT, msg);
                return;
        }
        if (r < 0) {
                reply_keystore_error(c, r, m->name);
                return;
        }
        if (kind != KEYSTORE_KIND_SECRET) {
                reply.public_key.data = pub;
                reply.public_key.len = sizeof pub;
        }
        broker_reply(c, &reply.base, NULL, 0);
}

/* ---- sign, verify ------------------------------------------------------------------ */

static const char *sign_right(const ProtobufCMessage *req, char *buf, size_t size, int *ret_error)
{
        const Cella__V1__KeystoreSignRequest *m = (const void *)req;

        if (m->data.len > KEYSTORE_DATA_MAX) {
                *ret_error = -EMSGSIZE;
                return NULL;
        }
        return own_right(m->name, true, buf, size, ret_error);
}

static void sign_handle(BrokerCall *c)
{
        const Cella__V1__KeystoreSignRequest *m = (const void *)c->request;
        Cella__V1__KeystoreSignReply reply = CELLA__V1__KEYSTORE_SIGN_REPLY__INIT;
        uint8_t sig[KEYSTORE_SIG_BYTES];
        Keystore *ks;
        int r;

        audit_key(c, m->name, KEYSTORE_KIND_ED25519);
        broker_audit_set(c, "bytes", json_integer((json_int_t)m->data.len));
        ks = keystore_get(c);
        if (!ks)
                return;
        if (m->data.len > KEYSTORE_LOOP_BYTES_MAX) {
                job_start(c, ks, JOB_SIGN, m->name, &m->data, NULL, KEYSTORE_SIG_BYTES, NULL);
                return;
        }
        r = keystore_sign(ks, broker_app_id(c->app), m->name, m->data.data, m->data.len, sig);
        if (r < 0) {
                reply_keystore_error(c, r, m->name);
                return;
        }
        reply.signature.data = sig;
        reply.signature.len = sizeof sig;
        broker_reply(c, &reply.base, NULL, 0);
}

static const char *verify_right(const ProtobufCMessage *req, char *buf, size_t size, int *ret_error)
{
        const Cella__V1__KeystoreVerifyRequest *m = (const void *)req;

        if (m->public_key.len != KEYSTORE_PUBLIC_BYTES || m->signature.len != KEYSTORE_SIG_BYTES)
                *ret_error = -EINVAL;
        else if (m->data.len > KEYSTORE_DATA_MAX)
                *ret_error = -EMSGSIZE;
        return NULL; /* no right: it holds no key */
}

static void verify_handle(BrokerCall *c)
{
        const Cella__V1__KeystoreVerifyRequest *m = (const void *)c->request;
        Cella__V1__KeystoreVerifyReply reply = CELLA__V1__KEYSTORE_VERIFY_REPLY__INIT;

        broker_audit_set(c, "bytes", json_integer((json_int_t)m->data.len));
        if (m->data.len > KEYSTORE_LOOP_BYTES_MAX) {
                job_start(c, NULL, JOB_VERIFY, NULL, &m->data, &m->signature, 0,
                          m->public_key.data);
                return;
        }
        reply.valid = keystore_verify(m->public_key.data, m->data.data, m->data.len,
                                      m->signature.data) == 0;
        broker_audit_set(c, "valid", json_boolean(reply.valid));
        broker_reply(c, &reply.base, NULL, 0);
}

/* ---- seal, open -------------------------------------------------------------------- */

static const char *seal_right(const ProtobufCMessage *req, char *buf, size_t size, int *ret_error)
{
        const Cella__V1__KeystoreSealRequest *m = (const void *)req;
        bool by_name = m->name && m->name[0];

        if (by_name == (m->public_key.len > 0) ||
            (!by_name && (m->public_key.len != KEYSTORE_PUBLIC_BYTES || m->associated_data.len))) {
                *ret_error = -EINVAL;
                return NULL;
        }
        if (m->plaintext.len > KEYSTORE_DATA_MAX || m->associated_data.len > KEYSTORE_AD_MAX) {
                *ret_error = -EMSGSIZE;
                return NULL;
        }
        return own_right(m->name, by_name, buf, size, ret_error);
}

static void seal_handle(BrokerCall *c)
{
        const Cella__V1__KeystoreSealRequest *m = (const void *)c->request;
        Cella__V1__KeystoreSealReply reply = CELLA__V1__KEYSTORE_SEAL_REPLY__INIT;
        _cleanup_free_ uint8_t *out = NULL;
        size_t size = m->plaintext.len + KEYSTORE_SEALED_TO_OVERHEAD;
        bool by_name = m->name && m->name[0];
        Keystore *ks;
        int r;

        if (by_name)
                audit_key(c, m->name, KEYSTORE_KIND_SECRET);
        else
                broker_audit_set(c, "to", json_string("public_key"));
        broker_audit_set(c, "bytes", json_integer((json_int_t)m->plaintext.len));
        out = malloc(size);
        if (!out) {
                broker_reply_error(c, ENOMEM, NULL);
                return;
        }
        if (by_name) {
                ks = keystore_get(c);
                if (!ks)
                        return;
                if (m->plaintext.len > KEYSTORE_LOOP_BYTES_MAX) {
                        job_start(c, ks, JOB_SEAL, m->name, &m->plaintext, &m->associated_data,
                                  m->plaintext.len + KEYSTORE_BOX_OVERHEAD, NULL);
                        return;
                }
                r = keystore_seal(ks, broker_app_id(c->app), m->name, m->plaintext.data,
                                  m->plaintext.len, m->associated_data.data, m->associated_data.len,
                                  out, size);
        } else {
                if (m->plaintext.len > KEYSTORE_LOOP_BYTES_MAX) {
                        job_start(c, NULL, JOB_SEAL_TO, NULL, &m->plaintext, NULL,
                                  m->plaintext.len + KEYSTORE_SEALED_TO_OVERHEAD,
                                  m->public_key.data);
                        return;
                }
                r = keystore_seal_to(m->public_key.data, m->plaintext.data, m->plaintext.len, out,
                                     size);
                if (r == -EINVAL) {
                        broker_reply_error(c, EINVAL, "the public key is not a usable x25519 key");
                        return;
                }
        }
        if (r < 0) {
                reply_keystore_error(c, r, m->name);
                return;
        }
        reply.box.data = out;
        reply.box.len = (size_t)r;
        broker_reply(c, &reply.base, NULL, 0);
}

static const char *open_right(const ProtobufCMessage *req, char *buf, size_t size, int *ret_error)
{
        const Cella__V1__KeystoreOpenRequest *m = (const void *)req;

        if (m->box.len > KEYSTORE_DATA_MAX + KEYSTORE_SEALED_TO_OVERHEAD ||
            m->associated_data.len > KEYSTORE_AD_MAX) {
                *ret_error = -EMSGSIZE;
                return NULL;
        }
        return own_right(m->name, true, buf, size, ret_error);
}

static void open_handle(BrokerCall *c)
{
        const Cella__V1__KeystoreOpenRequest *m = (const void *)c->request;
        _cleanup_free_ uint8_t *out = NULL;
        size_t size = m->box.len + 1;
        Keystore *ks;
        int r;

        audit_key(c, m->name, KEYSTORE_KIND_NONE);
        broker_audit_set(c, "bytes", json_integer((json_int_t)m->box.len));
        ks = keystore_get(c);
        if (!ks)
                return;
        if (m->box.len > KEYSTORE_LOOP_BYTES_MAX) {
                job_start(c, ks, JOB_OPEN, m->name, &m->box, &m->associated_data, m->box.len, NULL);
                return;
        }
        out = malloc(size);
        if (!out) {
                broker_reply_error(c, ENOMEM, NULL);
                return;
        }
        r = keystore_open_box(ks, broker_app_id(c->app), m->name, m->box.data, m->box.len,
                              m->associated_data.data, m->associated_data.len, out, size);
        answer(c, JOB_OPEN, r, out, m->name); /* frees c, and m with it */
        /* The plaintext may be a secret: wiped before the memory goes back. */
        sodium_memzero(out, size);
}

/* ---- public_key, peer_public_key, delete, list ------------------------------------- */

static const char *name_right(const ProtobufCMessage *req, char *buf, size_t size, int *ret_error)
{
        /* KeystorePublicKeyRequest and KeystoreDeleteRequest: field 1 is the name. */
        const Cella__V1__KeystorePublicKeyRequest *m = (const void *)req;

        return own_right(m->name, true, buf, size, ret_error);
}

static void public_key_handle(BrokerCall *c)
{
        const Cella__V1__KeystorePublicKeyRequest *m = (const void *)c->request;
        Cella__V1__KeystorePublicKeyReply reply = CELLA__V1__KEYSTORE_PUBLIC_KEY_REPLY__INIT;
        uint8_t pub[KEYSTORE_PUBLIC_BYTES];
        KeystoreKind kind = KEYSTORE_KIND_NONE;
        Keystore *ks;
        int r;

        ks = keystore_get(c);
        if (!ks) {
                audit_key(c, m->name, kind);
                return;
        }
        r = keystore_public_key(ks, broker_app_id(c->app), m->name, &kind, pub);
        audit_key(c, m->name, kind);
        if (r < 0) {
                reply_keystore_error(c, r, m->name);
                return;
        }
        if (kind == KEYSTORE_KIND_SECRET) {
                broker_reply_error(c, EINVAL, "a secret key has no public key");
                return;
        }
        reply.kind = kind_to_wire(kind);
        reply.public_key.data = pub;
        reply.public_key.len = sizeof pub;
        broker_reply(c, &reply.base, NULL, 0);
}

static const char *peer_right(const ProtobufCMessage *req, char *buf, size_t size, int *ret_error)
{
        const Cella__V1__KeystorePeerPublicKeyRequest *m = (const void *)req;
        int n;

        if (!m->app_id || !manifest_id_is_valid(m->app_id) || !keystore_name_is_valid(m->name)) {
                *ret_error = -EINVAL;
                return NULL;
        }
        n = snprintf(buf, size, "bus.send:%s", m->app_id);
        if (n < 0 || (size_t)n >= size) {
                *ret_error = -EINVAL;
                return NULL;
        }
        return buf;
}

static void peer_handle(BrokerCall *c)
{
        const Cella__V1__KeystorePeerPublicKeyRequest *m = (const void *)c->request;
        Cella__V1__KeystorePeerPublicKeyReply reply =
                CELLA__V1__KEYSTORE_PEER_PUBLIC_KEY_REPLY__INIT;
        uint8_t pub[KEYSTORE_PUBLIC_BYTES];
        KeystoreKind kind = KEYSTORE_KIND_NONE;
        Keystore *ks;
        char msg[320];
        int r;

        broker_audit_set(c, "peer", json_string(m->app_id));
        ks = keystore_get(c);
        if (!ks) {
                audit_key(c, m->name, kind);
                return;
        }
        r = keystore_public_key(ks, m->app_id, m->name, &kind, pub);
        audit_key(c, m->name, kind);
        if (r == -ENOENT || (r == 0 && kind == KEYSTORE_KIND_SECRET)) {
                snprintf(msg, sizeof msg, "%s has no public key named \"%s\"", m->app_id, m->name);
                broker_reply_error(c, ENOENT, msg);
                return;
        }
        if (r < 0) {
                reply_keystore_error(c, r, m->name);
                return;
        }
        reply.kind = kind_to_wire(kind);
        reply.public_key.data = pub;
        reply.public_key.len = sizeof pub;
        broker_reply(c, &reply.base, NULL, 0);
}

static void delete_handle(BrokerCall *c)
{
        const Cella__V1__KeystoreDeleteRequest *m = (const void *)c->request;
        Cella__V1__KeystoreDeleteReply reply = CELLA__V1__KEYSTORE_DELETE_REPLY__INIT;
        Keystore *ks;
        int r;

        audit_key(c, m->name, KEYSTORE_KIND_NONE);
        ks = keystore_get(c);
        if (!ks)
                return;
        r = keystore_delete(ks, broker_app_id(c->app), m->name);
        if (r < 0) {
                reply_keystore_error(c, r, m->name);
                return;
        }
        broker_reply(c, &reply.base, NULL, 0);
}

static const char *list_right(const ProtobufCMessage *req, char *buf, size_t size, int *ret_error)
{
        return own_right(NULL, false, buf, size, ret_error);
}

static void list_handle(BrokerCall *c)
{
        Cella__V1__KeystoreListReply reply = CELLA__V1__KEYSTORE_LIST_REPLY__INIT;
        _cleanup_free_ Cella__V1__KeystoreKey *keys = NULL;
        _cleanup_free_ Cella__V1__KeystoreKey **ptrs = NULL;
        _cleanup_free_ KeystoreEntry *v = NULL;
        Keystore *ks;
        size_t n = 0;
        int r;

        ks = keystore_get(c);
        if (!ks)
                return;
        r = keystore_list(ks, broker_app_id(c->app), &v, &n);
        if (r < 0) {
                reply_keystore_error(c, r, "");
                return;
        }
        keys = calloc(n ?: 1, sizeof *keys);
        ptrs = calloc(n ?: 1, sizeof *ptrs);
        if (!keys || !ptrs) {
                broker_reply_error(c, ENOMEM, NULL);
                return;
        }
        for (size_t i = 0; i < n; i++) {
                cella__v1__keystore_key__init(&keys[i]);
                keys[i].name = v[i].name;
                keys[i].kind = kind_to_wire(v[i].kind);
                if (v[i].kind != KEYSTORE_KIND_SECRET) {
                        keys[i].public_key.data = v[i].public_key;
                        keys[i].public_key.len = KEYSTORE_PUBLIC_BYTES;
                }
                keys[i].created_ms = v[i].created_ms;
                ptrs[i] = &keys[i];
        }
        reply.keys = ptrs;
        reply.n_keys = n;
        reply.keys_max = keystore_keys_max(ks);
        broker_audit_set(c, "keys", json_integer((json_int_t)n));
        broker_reply(c, &reply.base, NULL, 0);
}

const BrokerCallDef broker_calls_keystore[] = {
        {CELLA__V1__OPCODE__OPCODE_KEYSTORE_CREATE, create_right, create_handle},
        {CELLA__V1__OPCODE__OPCODE_KEYSTORE_SIGN, sign_right, sign_handle},
        {CELLA__V1__OPCODE__OPCODE_KEYSTORE_VERIFY, verify_right, verify_handle},
        {CELLA__V1__OPCODE__OPCODE_KEYSTORE_SEAL, seal_right, seal_handle},
        {CELLA__V1__OPCODE__OPCODE_KEYSTORE_OPEN, open_right, open_handle},
        {CELLA__V1__OPCODE__OPCODE_KEYSTORE_PUBLIC_KEY, name_right, public_key_handle},
        {CELLA__V1__OPCODE__OPCODE_KEYSTORE_DELETE, name_right, delete_handle},
        {CELLA__V1__OPCODE__OPCODE_KEYSTORE_LIST, list_right, list_handle},
        {CELLA__V1__OPCODE__OPCODE_KEYSTORE_PEER_PUBLIC_KEY, peer_right, peer_handle},
        {0},
};
