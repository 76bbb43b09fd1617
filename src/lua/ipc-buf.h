/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The pure parts of cella.ipc (libipc.c, docs/lua-api.md "cella.ipc"): the bounds
 * check of a shared-memory buffer's accesses and the little-endian loads and stores,
 * here so the unit tests reach them without a kernel.
 */

#include <endian.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/*
 * Whether the range [off, off + len) lies inside a buffer of size bytes: off and
 * len are a Lua script's integers (any int64, negative included). A range of length
 * 0 at off == size is inside. No overflow for any input.
 */
static inline bool clua_ipc_range_ok(size_t size, int64_t off, int64_t len)
{
        return off >= 0 && len >= 0 && (uint64_t)off <= size &&
               (uint64_t)len <= (uint64_t)size - (uint64_t)off;
}

/*
 * Loads the width-byte (1, 2, 4 or 8) little-endian unsigned integer at p. At an
 * address aligned to width the load is one atomic access with acquire ordering
 * (what a writer stored with release ordering before it is visible: a ring's
 * indices); elsewhere a plain copy.
 */
static inline uint64_t clua_ipc_load(const uint8_t *p, unsigned width)
{
        bool aligned = ((uintptr_t)p & (width - 1)) == 0;

        switch (width) {
        case 1:
                return __atomic_load_n(p, __ATOMIC_ACQUIRE);
        case 2: {
                uint16_t v;

                if (aligned)
                        v = __atomic_load_n((const uint16_t *)(const void *)p, __ATOMIC_ACQUIRE);
                else
                        memcpy(&v, p, 2);
                return le16toh(v);
        }
        case 4: {
                uint32_t v;

                if (aligned)
                        v = __atomic_load_n((const uint32_t *)(const void *)p, __ATOMIC_ACQUIRE);
                else
                        memcpy(&v, p, 4);
                return le32toh(v);
        }
        default: {
                uint64_t v;

                if (aligned)
                        v = __atomic_load_n((const uint64_t *)(const void *)p, __ATOMIC_ACQUIRE);
                else
                        memcpy(&v, p, 8);
                return le64toh(v);
        }
        }
}

/* Stores the low width bytes of v little-endian at p: one atomic access with
 * release ordering where p is aligned to width, a plain copy elsewhere. */
static inline void clua_ipc_store(uint8_t *p, unsigned width, uint64_t v)
{
        bool aligned = ((uintptr_t)p & (width - 1)) == 0;

        switch (width) {
        case 1:
                __atomic_store_n(p, (uint8_t)v, __ATOMIC_RELEASE);
                break;
        case 2: {
                uint16_t x = htole16((uint16_t)v);

                if (aligned)
                        __atomic_store_n((uint16_t *)(void *)p, x, __ATOMIC_RELEASE);
                else
                        memcpy(p, &x, 2);
                break;
        }
        case 4: {
                uint32_t x = htole32((uint32_t)v);

                if (aligned)
                        __atomic_store_n((uint32_t *)(void *)p, x, __ATOMIC_RELEASE);
                else
                        memcpy(p, &x, 4);
                break;
        }
        default: {
                uint64_t x = htole64(v);

                if (aligned)
                        __atomic_store_n((uint64_t *)(void *)p, x, __ATOMIC_RELEASE);
                else
                        memcpy(p, &x, 8);
                break;
        }
        }
}

/*
 * Whether v (a Lua integer) fits an integer of width bytes, signed or not: u8
 * 0..255, i8 -128..127, ..., u64 and i64 any (u64 values above 2^63-1 are the
 * negative integers with the same 64 bits, as string.pack("<I8") takes them).
 */
static inline bool clua_ipc_int_fits(int64_t v, unsigned width, bool is_signed)
{
        if (width >= 8)
                return true;
        if (is_signed) {
                int64_t lim = (int64_t)1 << (width * 8 - 1);

                return v >= -lim && v < lim;
        }
        return v >= 0 && (uint64_t)v < ((uint64_t)1 << (width * 8));
}

/* v, the width-byte integer loaded, sign-extended if is_signed. */
static inline int64_t clua_ipc_int_value(uint64_t v, unsigned width, bool is_signed)
{
        if (!is_signed || width >= 8)
                return (int64_t)v;
        if (v & ((uint64_t)1 << (width * 8 - 1)))
                return (int64_t)(v | ~(((uint64_t)1 << (width * 8)) - 1));
        return (int64_t)v;
}
