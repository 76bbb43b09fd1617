/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * libcella's ring buffer over shared memory (include/cella.h "ring buffer",
 * docs/ipc.md "The ring"): one producer, one consumer, in two processes that do not
 * trust each other.
 *
 * The header page:
 *
 *   0    magic "CRNG", version 1, capacity (bytes, a power of two)   set by init
 *   128  head: bytes ever written         prod_waiting    cons_wake   producer's line
 *   256  tail: bytes ever read            cons_waiting    prod_wake   consumer's line
 *
 * Each side writes its own line only (the wake counters are the other side's futex
 * words, bumped by the side that wakes: the producer bumps cons_wake, the consumer
 * prod_wake, each on the line it writes). Lines are 128 bytes apart: Intel's
 * adjacent-line prefetcher pairs 64-byte lines, and a pair shared by the two sides
 * would bounce between their caches ("false sharing").
 *
 * Trust. Each side keeps its own counter privately and never reads it back from the
 * page; it reads the other side's counter, and the consumer each message's length,
 * exactly once per use, and checks them against its private copies and capacity
 * before any index is formed: head - tail must lie in 0..capacity, a length within
 * what was written. A violation is -EPROTO; every offset is then taken modulo the
 * private capacity, so no value on the page can point outside the mapping.
 *
 * Sleep and wake (a Dekker handshake, both stores and loads sequentially
 * consistent): the consumer reads cons_wake, sets cons_waiting, checks head once more
 * and only then sleeps in FUTEX_WAIT on cons_wake; the producer publishes head,
 * then reads cons_waiting and, if set, bumps cons_wake and FUTEX_WAKEs. Either the
 * consumer sees the new head, or the producer sees the mark: no lost wake-up. A
 * hostile peer can at most wake us for nothing or never: the caller's timeout
 * bounds the wait.
 */
#include <errno.h>
#include <limits.h>
#include <linux/futex.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cella.h"

#define RING_MAGIC    0x474e5243u /* "CRNG" little-endian */
#define RING_VERSION  1u
#define RING_CAP_MIN  4096ull
#define RING_CAP_MAX  (1ull << 30)
#define RING_REC_HDR  8u /* a message's length (4 bytes) and padding */
#define RING_ALIGN(n) (((n) + 7u) & ~(uint64_t)7u)

typedef struct RingHeader {
        uint32_t magic;
        uint32_t version;
        uint64_t capacity;
        uint8_t pad0[128 - 16];
        _Atomic uint64_t head;
        _Atomic uint32_t prod_waiting;
        _Atomic uint32_t cons_wake;
        uint8_t pad1[128 - 16];
        _Atomic uint64_t tail;
        _Atomic uint32_t cons_waiting;
        _Atomic uint32_t prod_wake;
} RingHeader;

_Static_assert(sizeof(RingHeader) <= CELLA_RING_HEADER, "the header fits its page");

struct CellaRing {
        RingHeader *h;
        uint8_t *data;
        uint64_t capacity; /* private: never read from the page again */
        uint64_t mask;
        CellaRingRole role;
        uint64_t mine;  /* producer: head; consumer: tail. Private. */
        uint64_t other; /* the other side's counter as last read and checked */
};

static long futex(_Atomic uint32_t *addr, int op, uint32_t val, const struct timespec *ts)
{
        /* Shared (not FUTEX_PRIVATE_FLAG): the two sides are different processes. */
        return syscall(SYS_futex, (uint32_t *)addr, op, val, ts, NULL, 0);
}

uint64_t cella_ring_size(uint64_t capacity)
{
        if (capacity < RING_CAP_MIN || capacity > RING_CAP_MAX || (capacity & (capacity - 1)))
                return 0;
        return CELLA_RING_HEADER + capacity;
}

int cella_ring_init(void *mem, uint64_t size, uint64_t capacity)
{
        RingHeader *h = mem;
        uint64_t need = cella_ring_size(capacity);

        if (!mem || need == 0 || size < need || ((uintptr_t)mem & 4095u))
                return -EINVAL;
        memset(h, 0, sizeof *h);
        h->version = RING_VERSION;
        h->capacity = capacity;
        atomic_store(&h->head, 0);
        atomic_store(&h->tail, 0);
        /* The magic last: a side that attaches sees a whole header or none. */
        atomic_thread_fence(memory_order_release);
        h->magic = RING_MAGIC;
        return 0;
}

int cella_ring_attach(void *mem, uint64_t size, CellaRingRole role, CellaRing **ret)
{
        RingHeader *h = mem;
        CellaRing *r;
        uint64_t cap;

        if (!mem || !ret || ((uintptr_t)mem & 4095u) || size < CELLA_RING_HEADER ||
            (role != CELLA_RING_PRODUCER && role != CELLA_RING_CONSUMER))
                return -EINVAL;
        if (h->magic != RING_MAGIC || h->version != RING_VERSION)
                return -EINVAL;
        atomic_thread_fence(memory_order_acquire);
        cap = h->capacity; /* read once, checked, kept */
        if (cella_ring_size(cap) == 0 || cella_ring_size(cap) > size)
                return -EINVAL;
        r = calloc(1, sizeof *r);
        if (!r)
                return -ENOMEM;
        r->h = h;
        r->data = (uint8_t *)mem + CELLA_RING_HEADER;
        r->capacity = cap;
        r->mask = cap - 1;
        r->role = role;
        /* Start from the counters as they are, checked like any later read. */
        if (role == CELLA_RING_PRODUCER) {
                r->mine = atomic_load(&h->head);
                r->other = atomic_load(&h->tail);
        } else {
                r->mine = atomic_load(&h->tail);
                r->other = atomic_load(&h->head);
        }
        if (role == CELLA_RING_PRODUCER ? r->mine - r->other > cap : r->other - r->mine > cap) {
                free(r);
                return -EINVAL;
        }
        *ret = r;
        return 0;
}

CellaRing *cella_ring_free(CellaRing *r)
{
        free(r);
        return NULL;
}

uint64_t cella_ring_message_max(const CellaRing *r)
{
        return r ? r->capacity - RING_REC_HDR : 0;
}

/* Copies n bytes to the ring at position pos (wrapping), or from it. */
static void ring_put(CellaRing *r, uint64_t pos, const void *src, size_t n)
{
        uint64_t off = pos & r->mask, first = r->capacity - off;

        if (n <= first)
                memcpy(r->data + off, src, n);
        else {
                memcpy(r->data + off, src, (size_t)first);
                memcpy(r->data, (const uint8_t *)src + first, n - (size_t)first);
        }
}

static void ring_get(CellaRing *r, uint64_t pos, void *dst, size_t n)
{
        uint64_t off = pos & r->mask, first = r->capacity - off;

        if (n <= first)
                memcpy(dst, r->data + off, n);
        else {
                memcpy(dst, r->data + off, (size_t)first);
                memcpy((uint8_t *)dst + first, r->data, n - (size_t)first);
        }
}

/* Producer: reads the consumer's tail and checks it: between what was ever read
 * before (other) and what we wrote (mine). */
static int producer_refresh(CellaRing *r)
{
        uint64_t tail = atomic_load_explicit(&r->h->tail, memory_order_acquire);

        if (tail - r->other > r->mine - r->other)
                return -EPROTO; /* behind what it read before, or past what we wrote */
        r->other = tail;
        return 0;
}

/* Consumer: reads the producer's head and checks it: at or past what it wrote
 * before, and never more than capacity ahead of our tail. */
static int consumer_refresh(CellaRing *r)
{
        uint64_t head = atomic_load_explicit(&r->h->head, memory_order_acquire);

        if (head - r->mine > r->capacity || head - r->mine < r->other - r->mine)
                return -EPROTO;
        r->other = head;
        return 0;
}

static void wake(_Atomic uint32_t *waiting, _Atomic uint32_t *word)
{
        /* After our counter's store: a side that marked itself waiting before it, or
         * that checks the counter after, cannot both be missed. */
        atomic_thread_fence(memory_order_seq_cst);
        if (atomic_load_explicit(waiting, memory_order_relaxed)) {
                atomic_fetch_add(word, 1);
                (void)futex(word, FUTEX_WAKE, 1, NULL);
        }
}

int cella_ring_write(CellaRing *r, const void *data, size_t len)
{
        uint64_t need;
        uint32_t len32;
        int e;

        if (!r || r->role != CELLA_RING_PRODUCER || (len > 0 && !data))
                return -EINVAL;
        if (len > r->capacity - RING_REC_HDR)
                return -EMSGSIZE;
        need = RING_ALIGN(RING_REC_HDR + len);
        if (need > r->capacity - (r->mine - r->other)) {
                e = producer_refresh(r);
                if (e < 0)
                        return e;
                if (need > r->capacity - (r->mine - r->other))
                        return -EAGAIN;
        }
        len32 = (uint32_t)len;
        ring_put(r, r->mine, &len32, sizeof len32);
        ring_put(r, r->mine + RING_REC_HDR, data, len);
        r->mine += need;
        atomic_store_explicit(&r->h->head, r->mine, memory_order_release);
        wake(&r->h->cons_waiting, &r->h->cons_wake);
        return 0;
}

int64_t cella_ring_read(CellaRing *r, void *buf, size_t size)
{
        uint64_t avail;
        uint32_t len;
        int e;

        if (!r || r->role != CELLA_RING_CONSUMER || (size > 0 && !buf))
                return -EINVAL;
        if (r->other == r->mine) {
                e = consumer_refresh(r);
                if (e < 0)
                        return e;
                if (r->other == r->mine)
                        return -EAGAIN;
        }
        avail = r->other - r->mine; /* checked: 1..capacity */
        if (avail < RING_REC_HDR)
                return -EPROTO;
        ring_get(r, r->mine, &len, sizeof len); /* read once */
        if ((uint64_t)len > avail - RING_REC_HDR)
                return -EPROTO; /* longer than what was written */
        if (len > size)
                return -EMSGSIZE;
        ring_get(r, r->mine + RING_REC_HDR, buf, len);
        r->mine += RING_ALIGN(RING_REC_HDR + (uint64_t)len);
        if (r->other - r->mine > r->capacity) /* the padding passed the head */
                r->mine = r->other;
        atomic_store_explicit(&r->h->tail, r->mine, memory_order_release);
        wake(&r->h->prod_waiting, &r->h->prod_wake);
        return (int64_t)len;
}

/* True if r can go on without waiting: a message to read, or room for len bytes. */
static int ready(CellaRing *r, size_t len, bool *ret)
{
        int e;

        if (r->role == CELLA_RING_CONSUMER) {
                e = consumer_refresh(r);
                *ret = e == 0 && r->other != r->mine;
        } else {
                e = producer_refresh(r);
                *ret = e == 0 && RING_ALIGN(RING_REC_HDR + (uint64_t)len) <=
                                         r->capacity - (r->mine - r->other);
        }
        return e;
}

int cella_ring_wait(CellaRing *r, size_t len, int timeout_ms)
{
        _Atomic uint32_t *waiting, *word;
        struct timespec end = {}, now, left;
        bool ok;
        int e;

        if (!r || (r->role == CELLA_RING_PRODUCER && len > r->capacity - RING_REC_HDR))
                return -EINVAL;
        if (r->role == CELLA_RING_CONSUMER) {
                waiting = &r->h->cons_waiting;
                word = &r->h->cons_wake;
        } else {
                waiting = &r->h->prod_waiting;
                word = &r->h->prod_wake;
        }
        if (timeout_ms >= 0) {
                clock_gettime(CLOCK_MONOTONIC, &end);
                end.tv_sec += timeout_ms / 1000;
                end.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
                if (end.tv_nsec >= 1000000000L) {
                        end.tv_sec++;
                        end.tv_nsec -= 1000000000L;
                }
        }
        for (;;) {
                uint32_t seen = atomic_load(word);

                atomic_store(waiting, 1);
                atomic_thread_fence(memory_order_seq_cst);
                e = ready(r, len, &ok);
                if (e < 0 || ok) {
                        atomic_store(waiting, 0);
                        return e;
                }
                if (timeout_ms >= 0) {
                        clock_gettime(CLOCK_MONOTONIC, &now);
                        left.tv_sec = end.tv_sec - now.tv_sec;
                        left.tv_nsec = end.tv_nsec - now.tv_nsec;
                        if (left.tv_nsec < 0) {
                                left.tv_sec--;
                                left.tv_nsec += 1000000000L;
                        }
                        if (left.tv_sec < 0) {
                                atomic_store(waiting, 0);
                                return -ETIMEDOUT;
                        }
                }
                if (futex(word, FUTEX_WAIT, seen, timeout_ms >= 0 ? &left : NULL) < 0 &&
                    errno == EINTR) {
                        atomic_store(waiting, 0);
                        return -EINTR;
                }
                atomic_store(waiting, 0);
        }
}
