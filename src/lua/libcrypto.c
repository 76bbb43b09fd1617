/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella.crypto: libsodium's random bytes, BLAKE2b (crypto_generichash),
 * secretbox (XSalsa20-Poly1305) and ed25519 detached signatures.
 *
 * Every input is bounded (CRYPTO_DATA_MAX) so one call does bounded work: hooks
 * do not run inside C. Keys are raw byte strings of libsodium's sizes. Lua
 * strings cannot be wiped, so secret keys live as long as the GC keeps them;
 * the C copies here are only on the stack and zeroed.
 */
#include <sodium.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "lua/lua-modules.h"

/* Largest message, data or box any function takes, bytes. */
#define CRYPTO_DATA_MAX (1024 * 1024)
/* Largest crypto.random request, bytes. */
#define CRYPTO_RANDOM_MAX (64 * 1024)

static const char *check_data(lua_State *L, int i, size_t *n)
{
        const char *s = luaL_checklstring(L, i, n);
        luaL_argcheck(L, *n <= CRYPTO_DATA_MAX, i, "larger than 1048576 bytes");
        return s;
}

static const char *check_key(lua_State *L, int i, size_t want, const char *what)
{
        size_t n;
        const char *s = luaL_checklstring(L, i, &n);
        if (n != want)
                luaL_error(L, "bad argument #%d: %s must be %d bytes, got %d", i, what, (int)want,
                           (int)n);
        return s;
}

/* crypto.random(n) -> n random bytes, 0 ≤ n ≤ 65536. */
static int l_random(lua_State *L)
{
        lua_Integer n = luaL_checkinteger(L, 1);
        luaL_Buffer b;

        luaL_argcheck(L, n >= 0 && n <= CRYPTO_RANDOM_MAX, 1, "n must be 0..65536");
        randombytes_buf(luaL_buffinitsize(L, &b, (size_t)n), (size_t)n);
        luaL_pushresultsize(&b, (size_t)n);
        return 1;
}

/*
 * crypto.hash(data [, key [, raw]]) -> BLAKE2b-256 of data as 64 hex digits, or 32
 * raw bytes if raw is true. key: nil or 16..64 bytes (keyed BLAKE2b, a MAC).
 */
static int l_hash(lua_State *L)
{
        unsigned char h[crypto_generichash_BYTES];
        char hex[2 * crypto_generichash_BYTES + 1];
        size_t n, kn = 0;
        const char *data = check_data(L, 1, &n);
        const char *key = luaL_optlstring(L, 2, NULL, &kn);
        int raw = lua_toboolean(L, 3);

        if (key && (kn < crypto_generichash_KEYBYTES_MIN || kn > crypto_generichash_KEYBYTES_MAX))
                return luaL_error(L, "bad argument #2: key must be 16..64 bytes, got %d", (int)kn);
        crypto_generichash(h, sizeof h, (const unsigned char *)data, n, (const unsigned char *)key,
                           key ? kn : 0);
        if (raw)
                lua_pushlstring(L, (const char *)h, sizeof h);
        else {
                sodium_bin2hex(hex, sizeof hex, h, sizeof h);
                lua_pushstring(L, hex);
        }
        return 1;
}

/* crypto.secretbox_keygen() -> 32-byte key. */
static int l_secretbox_keygen(lua_State *L)
{
        unsigned char k[crypto_secretbox_KEYBYTES];

        crypto_secretbox_keygen(k);
        lua_pushlstring(L, (const char *)k, sizeof k);
        sodium_memzero(k, sizeof k);
        return 1;
}

/* crypto.secretbox(msg, key) -> nonce (24 bytes) .. ciphertext (msg + 16 bytes). */
static int l_secretbox(lua_State *L)
{
        size_t n;
        const char *msg = check_data(L, 1, &n);
        const char *key = check_key(L, 2, crypto_secretbox_KEYBYTES, "key");
        size_t out = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES + n;
        luaL_Buffer b;
        unsigned char *p = (unsigned char *)luaL_buffinitsize(L, &b, out);

        randombytes_buf(p, crypto_secretbox_NONCEBYTES);
        crypto_secretbox_easy(p + crypto_secretbox_NONCEBYTES, (const unsigned char *)msg, n, p,
                              (const unsigned char *)key);
        luaL_pushresultsize(&b, out);
        return 1;
}

/* crypto.secretbox_open(box, key) -> msg, or nil, "message forged or corrupted". */
static int l_secretbox_open(lua_State *L)
{
        size_t n;
        const char *box = check_data(L, 1, &n);
        const char *key = check_key(L, 2, crypto_secretbox_KEYBYTES, "key");
        const size_t head = crypto_secretbox_NONCEBYTES + crypto_secretbox_MACBYTES;
        luaL_Buffer b;
        unsigned char *p;

        if (n < head) {
                lua_pushnil(L);
                lua_pushliteral(L, "box too short");
                return 2;
        }
        p = (unsigned char *)luaL_buffinitsize(L, &b, n - head + 1);
        if (crypto_secretbox_open_easy(p, (const unsigned char *)box + crypto_secretbox_NONCEBYTES,
                                       n - crypto_secretbox_NONCEBYTES, (const unsigned char *)box,
                                       (const unsigned char *)key) != 0) {
                lua_pushnil(L);
                lua_pushliteral(L, "message forged or corrupted");
                return 2;
        }
        luaL_pushresultsize(&b, n - head);
        return 1;
}

/* crypto.sign_keypair() -> public key (32 bytes), secret key (64 bytes). */
static int l_sign_keypair(lua_State *L)
{
        unsigned char pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];

        crypto_sign_keypair(pk, sk);
        lua_pushlstring(L, (const char *)pk, sizeof pk);
        lua_pushlstring(L, (const char *)sk, sizeof sk);
        sodium_memzero(sk, sizeof sk);
        return 2;
}

/* crypto.sign_detached(msg, sk) -> 64-byte ed25519 signature. */
static int l_sign_detached(lua_State *L)
{
        unsigned char sig[crypto_sign_BYTES];
        size_t n;
        const char *msg = check_data(L, 1, &n);
        const char *sk = check_key(L, 2, crypto_sign_SECRETKEYBYTES, "secret key");

        crypto_sign_detached(sig, NULL, (const unsigned char *)msg, n, (const unsigned char *)sk);
        lua_pushlstring(L, (const char *)sig, sizeof sig);
        return 1;
}

/* crypto.verify(sig, msg, pk) -> boolean (false for a signature of the wrong size). */
static int l_verify(lua_State *L)
{
        size_t sn, n;
        const char *sig = luaL_checklstring(L, 1, &sn);
        const char *msg = check_data(L, 2, &n);
        const char *pk = check_key(L, 3, crypto_sign_PUBLICKEYBYTES, "public key");

        lua_pushboolean(L, sn == crypto_sign_BYTES &&
                                   crypto_sign_verify_detached((const unsigned char *)sig,
                                                               (const unsigned char *)msg, n,
                                                               (const unsigned char *)pk) == 0);
        return 1;
}

static const luaL_Reg crypto_funcs[] = {
        {"random", l_random},
        {"hash", l_hash},
        {"secretbox_keygen", l_secretbox_keygen},
        {"secretbox", l_secretbox},
        {"secretbox_open", l_secretbox_open},
        {"sign_keypair", l_sign_keypair},
        {"sign_detached", l_sign_detached},
        {"verify", l_verify},
        {NULL, NULL},
};

int luaopen_cella_crypto(lua_State *L)
{
        /* Idempotent and thread-safe; picks the implementations once per process. */
        if (sodium_init() < 0)
                return luaL_error(L, "cella.crypto: libsodium failed to initialise");
        luaL_newlib(L, crypto_funcs);
        return 1;
}
