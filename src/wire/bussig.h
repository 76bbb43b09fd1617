/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * What the kernel signs for a bus message sent with sign = true (proto/cella.proto,
 * BusSignature; docs/ipc.md "Signed bus messages"), shared by the signer (the
 * broker, calls/channel.c) and the verifier (libcella's cella_bus_verify()), so the
 * two cannot drift apart. Ed25519ph (libsodium crypto_sign_init/update/final_*): the
 * message is hashed with SHA-512 as it is fed, so a 63 KiB payload is never copied.
 *
 * Header-only (static inline): libwire itself does not link libsodium; the two
 * users do.
 */

#include <sodium.h>
#include <stdint.h>
#include <string.h>

#define BUSSIG_DOMAIN      "cella.bus.sig.v1" /* fed with its NUL */
#define BUSSIG_KIND_TOPIC  1u                 /* published to a topic */
#define BUSSIG_KIND_DIRECT 2u                 /* sent to one app (bus.send) */
#define BUSSIG_BYTES       64u                /* crypto_sign_BYTES */
#define BUSSIG_KEY_BYTES   32u                /* crypto_sign_PUBLICKEYBYTES */

static inline void bussig_put_u32(crypto_sign_state *st, uint32_t v)
{
        unsigned char b[4] = {v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >> 24};

        crypto_sign_update(st, b, sizeof b);
}

static inline void bussig_put_u64(crypto_sign_state *st, uint64_t v)
{
        unsigned char b[8];

        for (unsigned i = 0; i < 8; i++)
                b[i] = (unsigned char)(v >> (8 * i));
        crypto_sign_update(st, b, sizeof b);
}

static inline void bussig_put_bytes(crypto_sign_state *st, const void *p, size_t len)
{
        bussig_put_u32(st, (uint32_t)len);
        if (len)
                crypto_sign_update(st, p, len);
}

/*
 * Starts st and feeds it the signed fields of one message, in proto order: the
 * domain string with its NUL, kind (BUSSIG_KIND_*), sender app id, topic (kind
 * TOPIC) or target app id (kind DIRECT), content type (NUL-terminated strings,
 * each fed as a u32 LE length and its bytes), data (len bytes, at most the bus's
 * 64512), timestamp_ns (i64 LE) and counter (u64 LE). The caller then signs or
 * verifies with crypto_sign_final_create()/_verify().
 */
static inline void bussig_feed(crypto_sign_state *st, unsigned kind, const char *sender,
                               const char *topic_or_target, const char *content_type,
                               const void *data, size_t len, int64_t timestamp_ns, uint64_t counter)
{
        unsigned char k = (unsigned char)kind;

        crypto_sign_init(st);
        crypto_sign_update(st, (const unsigned char *)BUSSIG_DOMAIN, sizeof BUSSIG_DOMAIN);
        crypto_sign_update(st, &k, 1);
        bussig_put_bytes(st, sender, strlen(sender));
        bussig_put_bytes(st, topic_or_target, strlen(topic_or_target));
        bussig_put_bytes(st, content_type, strlen(content_type));
        bussig_put_bytes(st, data, len);
        bussig_put_u64(st, (uint64_t)timestamp_ns);
        bussig_put_u64(st, counter);
}
