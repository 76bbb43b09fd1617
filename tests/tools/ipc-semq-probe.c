/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ipc-semq-probe: an app (libcella, static) that uses ipc semaphores and queues from
 * inside a real sandbox, for tests/integration/test_ipc_semq.py and bench/ipc-semq.
 * One role per run, chosen by argv[1]; it prints one line per finding, which the
 * test judges, and ends with "<role>: done" (exit 0) or "<role>: FAILED ..." (exit 1).
 *
 *   sem-owner NAME PEERS N      create NAME.ping, NAME.pong (0) and NAME.done offered
 *                               to PEERS (an app id pattern); check a 200 ms wait times
 *                               out; ping-pong N rounds with the peer; print the us per
 *                               round trip
 *   sem-peer NAME N             open them, answer N pings, post done
 *   sem-self NAME N             the ping-pong with a forked child in this sandbox as
 *                               the peer (pinned to $BENCH_CPU2 if set)
 *   sem-give NAME PEERS TOTAL W create NAME (0) and NAME.done, post TOTAL in uneven
 *                               chunks, wait for W posts of done
 *   sem-take NAME               take from NAME until 3 s pass with nothing; print
 *                               "took K"; post NAME.done
 *   q-owner NAME PEERS DEPTH P C  create the queue NAME (RW to PEERS) and NAME.done,
 *                               wait for P posts of done (the producers), send C
 *                               "STOP" at priority 0, wait for C more (the consumers)
 *   q-produce NAME ID K         open NAME WRITE, send K messages "ID:i" (priority 1) in
 *                               batches of 64 (retrying EAGAIN), post NAME.done
 *   q-consume NAME              open NAME READ, receive batches until a "STOP"; print
 *                               "m ID:i" per message, "consumed K", and ORDER if one
 *                               producer's messages came out of order
 *   q-bench-send NAME PEER N B S  create NAME (depth 1024, READ to PEER), send N messages
 *                               of S bytes in batches of B (retrying EAGAIN)
 *   q-bench-recv NAME N B       receive N in batches of B; print messages per second
 *                               from the first batch to the last
 *   try ACTION...               one attempt per word (see try_one()), printing
 *                               "ALLOWED what" or "REFUSED what: errno-name: message"
 */
#include <cella.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

static Cella *c;
static const char *role = "probe";

static uint64_t now_us(void)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static void fail(const char *what, int r)
{
        printf("%s: FAILED %s: %s\n", role, what, strerrorname_np(-r) ?: "?");
        fflush(stdout);
        exit(1);
}

/* Retries an open that finds nothing yet (the creator may not have made it). */
static int sem_open_wait(const char *name, CellaSem *s)
{
        uint64_t deadline = now_us() + 20000000u;
        int r;

        while ((r = cella_sem_open(c, name, s)) == -ENOENT && now_us() < deadline)
                usleep(5000);
        return r;
}

static int queue_open_wait(const char *name, uint32_t modes, CellaQueue *q)
{
        uint64_t deadline = now_us() + 20000000u;
        int r;

        while ((r = cella_queue_open(c, name, modes, q)) == -ENOENT && now_us() < deadline)
                usleep(5000);
        return r;
}

/* Pins the calling thread to CPU $BENCH_CPU if set (bench/ipc-semq). */
static void pin_from_env(void)
{
        const char *e = getenv("BENCH_CPU");
        cpu_set_t set;

        if (!e || !*e)
                return;
        CPU_ZERO(&set);
        CPU_SET(atoi(e), &set);
        if (sched_setaffinity(0, sizeof(set), &set) < 0)
                printf("%s: cannot pin to CPU %s: %s\n", role, e, strerror(errno));
}

static char *sub(const char *name, const char *suffix)
{
        char *s;

        if (asprintf(&s, "%s.%s", name, suffix) < 0)
                exit(2);
        return s;
}

/* ---- semaphores --------------------------------------------------------------------- */

static int sem_owner(const char *name, const char *peers, int rounds)
{
        CellaIpcOffer offer = {.app = peers, .modes = CELLA_IPC_READ | CELLA_IPC_WRITE};
        CellaSem ping, pong, done;
        uint64_t t0, dt;
        int r;

        if ((r = cella_sem_create(c, sub(name, "ping"), 0, &offer, 1, &ping)) < 0)
                fail("create ping", r);
        if ((r = cella_sem_create(c, sub(name, "pong"), 0, &offer, 1, &pong)) < 0)
                fail("create pong", r);
        if ((r = cella_sem_create(c, sub(name, "done"), 0, &offer, 1, &done)) < 0)
                fail("create done", r);
        r = cella_sem_trywait(&pong);
        printf("%s: trywait on 0: %s\n", role, r == -EAGAIN ? "EAGAIN" : "WRONG");
        t0 = now_us();
        r = cella_sem_wait(&pong, 200);
        dt = now_us() - t0;
        printf("%s: wait 200 ms on 0: %s after %llu ms\n", role,
               r == -ETIMEDOUT ? "ETIMEDOUT" : "WRONG", (unsigned long long)(dt / 1000));
        printf("%s: ready\n", role);
        fflush(stdout);
        /* the first round also waits for the peer to start */
        if ((r = cella_sem_post(&ping, 1)) < 0)
                fail("post ping", r);
        if ((r = cella_sem_wait(&pong, 30000)) < 0)
                fail("first pong", r);
        t0 = now_us();
        for (int i = 1; i < rounds; i++) {
                if ((r = cella_sem_post(&ping, 1)) < 0)
                        fail("post ping", r);
                if ((r = cella_sem_wait(&pong, 10000)) < 0)
                        fail("wait pong", r);
        }
        dt = now_us() - t0;
        if (rounds > 1)
                printf("%s: %d round trips, %.2f us each\n", role, rounds - 1,
                       (double)dt / (rounds - 1));
        if ((r = cella_sem_wait(&done, 30000)) < 0)
                fail("wait done", r);
        printf("%s: peer done\n", role);
        return 0;
}

static int sem_peer(const char *name, int rounds)
{
        CellaSem ping, pong, done;
        int r;

        if ((r = sem_open_wait(sub(name, "ping"), &ping)) < 0)
                fail("open ping", r);
        if ((r = sem_open_wait(sub(name, "pong"), &pong)) < 0)
                fail("open pong", r);
        if ((r = sem_open_wait(sub(name, "done"), &done)) < 0)
                fail("open done", r);
        for (int i = 0; i < rounds; i++) {
                if ((r = cella_sem_wait(&ping, 30000)) < 0)
                        fail("wait ping", r);
                if ((r = cella_sem_post(&pong, 1)) < 0)
                        fail("post pong", r);
        }
        printf("%s: answered %d\n", role, rounds);
        return cella_sem_post(&done, 1);
}

/* The same ping-pong with both ends in this one sandbox (a forked child answers on the
 * fds the kernel passed): the semaphore path without a switch between sandboxes. */
static int sem_self(const char *name, int rounds)
{
        CellaSem ping, pong;
        uint64_t t0, dt;
        pid_t pid;
        int r, st;

        if ((r = cella_sem_create(c, sub(name, "ping"), 0, NULL, 0, &ping)) < 0)
                fail("create ping", r);
        if ((r = cella_sem_create(c, sub(name, "pong"), 0, NULL, 0, &pong)) < 0)
                fail("create pong", r);
        pid = fork();
        if (pid < 0)
                fail("fork", -errno);
        if (pid == 0) {
                const char *e = getenv("BENCH_CPU2");

                if (e && *e) {
                        cpu_set_t set;

                        CPU_ZERO(&set);
                        CPU_SET(atoi(e), &set);
                        (void)sched_setaffinity(0, sizeof(set), &set);
                }
                for (int i = 0; i < rounds; i++)
                        if (cella_sem_wait(&ping, 30000) < 0 || cella_sem_post(&pong, 1) < 0)
                                _exit(1);
                _exit(0);
        }
        if ((r = cella_sem_post(&ping, 1)) < 0 || (r = cella_sem_wait(&pong, 30000)) < 0)
                fail("first round", r);
        t0 = now_us();
        for (int i = 1; i < rounds; i++) {
                if ((r = cella_sem_post(&ping, 1)) < 0)
                        fail("post ping", r);
                if ((r = cella_sem_wait(&pong, 10000)) < 0)
                        fail("wait pong", r);
        }
        dt = now_us() - t0;
        waitpid(pid, &st, 0);
        printf("%s: %d round trips, %.2f us each\n", role, rounds - 1, (double)dt / (rounds - 1));
        return 0;
}

static int sem_give(const char *name, const char *peers, long total, int workers)
{
        CellaIpcOffer offer = {.app = peers, .modes = CELLA_IPC_READ | CELLA_IPC_WRITE};
        CellaSem s, done;
        long posted = 0;
        int r;

        if ((r = cella_sem_create(c, name, 0, &offer, 1, &s)) < 0)
                fail("create", r);
        if ((r = cella_sem_create(c, sub(name, "done"), 0, &offer, 1, &done)) < 0)
                fail("create done", r);
        for (unsigned k = 1; posted < total; k = k % 7 + 1) {
                unsigned n = (unsigned)(total - posted < (long)k ? total - posted : (long)k);

                if ((r = cella_sem_post(&s, n)) < 0)
                        fail("post", r);
                posted += n;
        }
        printf("%s: posted %ld\n", role, posted);
        for (int i = 0; i < workers; i++)
                if ((r = cella_sem_wait(&done, 60000)) < 0)
                        fail("wait done", r);
        r = cella_sem_trywait(&s);
        printf("%s: left %s\n", role, r == -EAGAIN ? "0" : "SOME");
        return 0;
}

static int sem_take(const char *name)
{
        CellaSem s, done;
        long took = 0;
        int r;

        if ((r = sem_open_wait(name, &s)) < 0)
                fail("open", r);
        if ((r = sem_open_wait(sub(name, "done"), &done)) < 0)
                fail("open done", r);
        /* the first wait is long: the giver may not have posted yet */
        for (int t = 20000; (r = cella_sem_wait(&s, t)) == 0; t = 3000)
                took++;
        if (r != -ETIMEDOUT)
                fail("wait", r);
        printf("%s: took %ld\n", role, took);
        return cella_sem_post(&done, 1);
}

/* ---- queues ------------------------------------------------------------------------- */

static int q_owner(const char *name, const char *peers, unsigned depth, int producers,
                   int consumers)
{
        CellaIpcOffer offer = {.app = peers, .modes = CELLA_IPC_READ | CELLA_IPC_WRITE};
        CellaQueueMessage stop = {.data = "STOP", .len = 4, .priority = 0};
        CellaQueue q;
        CellaSem done;
        int r;

        if ((r = cella_queue_create(c, name, depth, 1024, false, &offer, 1, &q)) < 0)
                fail("create", r);
        if ((r = cella_sem_create(c, sub(name, "done"), 0, &offer, 1, &done)) < 0)
                fail("create done", r);
        printf("%s: created\n", role);
        fflush(stdout);
        for (int i = 0; i < producers; i++)
                if ((r = cella_sem_wait(&done, 120000)) < 0)
                        fail("wait producers", r);
        /* Priority 0, below the producers' 1: each consumer gets one after every
         * message sent, and ends there. */
        for (int i = 0; i < consumers; i++)
                while ((r = cella_queue_send(c, &q, &stop, 1, NULL)) == -EAGAIN)
                        usleep(1000);
        for (int i = 0; i < consumers; i++)
                if ((r = cella_sem_wait(&done, 120000)) < 0)
                        fail("wait consumers", r);
        printf("%s: all done\n", role);
        return 0;
}

static int q_produce(const char *name, const char *id, long k)
{
        CellaQueueMessage msgs[64];
        char bufs[64][48];
        CellaQueue q;
        CellaSem done;
        long i = 0;
        int r, retries = 0;

        if ((r = queue_open_wait(name, CELLA_IPC_WRITE, &q)) < 0)
                fail("open", r);
        if ((r = sem_open_wait(sub(name, "done"), &done)) < 0)
                fail("open done", r);
        while (i < k) {
                size_t n = 0;

                for (; n < 64 && i + (long)n < k; n++) {
                        int len = snprintf(bufs[n], sizeof(bufs[n]), "%s:%ld", id, i + (long)n);

                        msgs[n] = (CellaQueueMessage){
                                .data = bufs[n], .len = (size_t)len, .priority = 1};
                }
                r = cella_queue_send(c, &q, msgs, n, NULL);
                if (r == -EAGAIN) { /* full: the consumers drain it */
                        retries++;
                        usleep(1000);
                        continue;
                }
                if (r < 0)
                        fail("send", r);
                i += (long)n;
        }
        printf("%s: sent %ld (full %d times)\n", role, i, retries);
        return cella_sem_post(&done, 1);
}

static int q_consume(const char *name)
{
        long last[64], got = 0;
        bool order_ok = true, stop = false;
        CellaQueue q;
        CellaSem done;
        int r;

        for (int i = 0; i < 64; i++)
                last[i] = -1;
        if ((r = queue_open_wait(name, CELLA_IPC_READ, &q)) < 0)
                fail("open", r);
        if ((r = sem_open_wait(sub(name, "done"), &done)) < 0)
                fail("open done", r);
        while (!stop) {
                CellaQueueBatch *b = NULL;

                /* The STOPs come after every message (priority 0). One batch may hold
                 * two: keep one, send the other back for the other consumer. */
                r = cella_queue_receive(c, &q, 256, 60000, &b);
                if (r < 0)
                        fail("receive", r);
                for (size_t i = 0; i < b->n; i++) {
                        const CellaQueueMessage *m = &b->msgs[i];
                        unsigned p;
                        long idx;

                        if (m->len == 4 && memcmp(m->data, "STOP", 4) == 0) {
                                if (stop) { /* a second one: it is another consumer's */
                                        CellaQueueMessage back = {.data = "STOP", .len = 4};

                                        while ((r = cella_queue_send(c, &q, &back, 1, NULL)) ==
                                               -EAGAIN)
                                                usleep(1000);
                                        if (r < 0)
                                                fail("send back", r);
                                }
                                stop = true;
                                continue;
                        }
                        printf("m %.*s %s\n", (int)m->len, (const char *)m->data, m->sender);
                        if (sscanf(m->data, "p%u:%ld", &p, &idx) == 2 && p < 64) {
                                if (idx <= last[p])
                                        order_ok = false;
                                last[p] = idx;
                        }
                        got++;
                }
                free(b);
        }
        printf("%s: consumed %ld%s\n", role, got, order_ok ? "" : " ORDER");
        return cella_sem_post(&done, 1);
}

/* ---- bench: queue throughput ------------------------------------------------------ */

static int q_bench_send(const char *name, const char *peer, long n, int batch, int size)
{
        CellaIpcOffer offer = {.app = peer, .modes = CELLA_IPC_READ};
        CellaQueueMessage *msgs = calloc((size_t)batch, sizeof(*msgs));
        char *buf = calloc(1, (size_t)size + 1);
        long sent = 0, full = 0;
        CellaQueue q;
        int r;

        if ((r = cella_queue_create(c, name, 1024, (uint32_t)size, false, &offer, 1, &q)) < 0)
                fail("create", r);
        for (int i = 0; i < batch; i++)
                msgs[i] = (CellaQueueMessage){.data = buf, .len = (size_t)size};
        while (sent < n) {
                size_t k = (size_t)(n - sent < batch ? n - sent : batch);

                k = cella_queue_batch_fit(msgs, k); /* within one 64 KiB request */
                r = cella_queue_send(c, &q, msgs, k, NULL);
                if (r == -EAGAIN) { /* full: the receiver drains it */
                        full++;
                        usleep(50);
                        continue;
                }
                if (r < 0)
                        fail("send", r);
                sent += (long)k;
        }
        printf("%s: sent %ld (full %ld times)\n", role, sent, full);
        /* stay until the receiver has all: its handle keeps the queue */
        return 0;
}

static int q_bench_recv(const char *name, long n, int batch)
{
        uint64_t t0 = 0, dt;
        long got = 0;
        CellaQueue q;
        int r;

        if ((r = queue_open_wait(name, CELLA_IPC_READ, &q)) < 0)
                fail("open", r);
        while (got < n) {
                CellaQueueBatch *b = NULL;

                r = cella_queue_receive(c, &q, (size_t)batch, 20000, &b);
                if (r < 0)
                        fail("receive", r);
                if (got == 0)
                        t0 = now_us();
                got += (long)b->n;
                free(b);
        }
        dt = now_us() - t0;
        printf("%s: %ld messages in %llu us, %.0f msgs/s\n", role, got, (unsigned long long)dt,
               (double)got * 1e6 / (double)(dt ? dt : 1));
        return 0;
}

/* ---- try: single attempts --------------------------------------------------------- */

static void verdict(const char *what, int r, const Cella *cc)
{
        if (r >= 0)
                printf("ALLOWED %s\n", what);
        else
                printf("REFUSED %s: %s\n", what, strerrorname_np(-r) ?: "?");
        fflush(stdout);
}

/*
 * One attempt, by word:
 *   qcreate:NAME:DEPTH:BYTES[:persist][:offer=APP:MODES]  keep it as the current queue
 *   qopen:NAME:MODES           (r, w, rw) keep it as the current queue
 *   qopenwait:NAME:MODES       as qopen, retrying while it does not exist
 *   send:N:BYTES[:PRIO]        N messages of BYTES bytes to the current queue
 *   sendtext:TEXT:PRIO         one message
 *   recv:MAX:TIMEOUT           print what comes: "got SEQ PRIO SENDER TEXT"
 *   fill:BYTES                 send messages of BYTES, one per call, until refused
 *   screate:NAME:INIT / sopen:NAME / sopenwait:NAME / spost / swait:TIMEOUT
 *   sleepms:N                  (for the crash tests: stay alive, blocked)
 *   hold                       block in a receive of 600 s on the current queue
 *   postdone:NAME              open semaphore NAME (waiting) and post it
 *   waitdone:NAME:N            create semaphore NAME offered to org.test.** and wait N
 *   qblock                     clear O_NONBLOCK on the current queue handle's fd
 *   qready:TIMEOUT             poll the current queue handle's fd for POLLIN
 *   qdrain                     read what the current queue handle's fd holds (as a
 *                              careless or hostile app may)
 *   sblock                     clear O_NONBLOCK on the current semaphore's fd (shared
 *                              by every holder: a hostile holder's move)
 *   gate:NAME                  open semaphore NAME (waiting for it) and wait on it once;
 *                              the current semaphore is left as it was
 *   qoffer:APP:MODES           cella_ipc_offer() of the current queue to APP alone;
 *                              qoffer:- offers it to nobody
 *   qpass:TO:MODES             cella_ipc_pass() of the current queue handle
 *   qaccept                    wait (30 s) for CELLA_EVENT_IPC_OFFERED, accept it: the
 *                              current queue; prints "accepted MODES NAME"
 *   qclosed                    wait (30 s) for CELLA_EVENT_IPC_CLOSED: "closed REASON"
 */
static CellaQueue cur_q = {.fd = -1};
static CellaSem cur_s = {.fd = -1};

/* The event the callback waits for, and what came. */
static int want_event;
static bool got_event;
static uint64_t offered_token;

static void on_event(Cella *cc, const CellaEvent *ev, void *ud)
{
        (void)cc;
        (void)ud;
        if (!ev->decoded || ev->opcode != want_event || got_event)
                return;
        got_event = true;
        if (ev->opcode == CELLA_EVENT_IPC_OFFERED)
                offered_token = ev->ipc_offered.token;
        else
                printf("closed %s\n", ev->ipc_closed.reason);
}

/* Waits up to 30 s for an event of opcode: 0 or -ETIMEDOUT / the channel's -errno. */
static int wait_event(int opcode)
{
        want_event = opcode;
        got_event = false;
        for (int i = 0; i < 300 && !got_event; i++) {
                int r = cella_wait(c, 100);

                if (r > 0)
                        r = cella_dispatch(c);
                if (r < 0 && r != -EINTR)
                        return r;
        }
        return got_event ? 0 : -ETIMEDOUT;
}

static uint32_t parse_modes(const char *m)
{
        return (strchr(m, 'r') ? CELLA_IPC_READ : 0) | (strchr(m, 'w') ? CELLA_IPC_WRITE : 0);
}

static void try_one(char *word)
{
        char *save = NULL, *op = strtok_r(word, ":", &save);
        char *a = strtok_r(NULL, ":", &save), *b = strtok_r(NULL, ":", &save),
             *d = strtok_r(NULL, ":", &save), *e = strtok_r(NULL, ":", &save),
             *f = strtok_r(NULL, ":", &save);
        char what[512];
        int r;

        snprintf(what, sizeof(what), "%s %s%s%s", op, a ?: "", b ? " " : "", b ?: "");
        if (strcmp(op, "qcreate") == 0) {
                CellaIpcOffer offer = {.modes = 0};
                bool persist = false;
                size_t n = 0;

                for (char *x = e; x; x = x == e ? f : NULL) {
                        if (strcmp(x, "persist") == 0)
                                persist = true;
                        else if (strncmp(x, "offer=", 6) == 0) {
                                char *m = strchr(x + 6, '/');

                                offer.app = x + 6;
                                offer.modes = m ? parse_modes(m + 1) : 3;
                                if (m)
                                        *m = '\0';
                                n = 1;
                        }
                }
                r = cella_queue_create(c, a, (uint32_t)atoi(b), (uint32_t)atoi(d), persist, &offer,
                                       n, &cur_q);
        } else if (strcmp(op, "qopen") == 0)
                r = cella_queue_open(c, a, parse_modes(b), &cur_q);
        else if (strcmp(op, "qopenwait") == 0)
                r = queue_open_wait(a, parse_modes(b), &cur_q);
        else if (strcmp(op, "send") == 0 || strcmp(op, "fill") == 0) {
                bool fill = strcmp(op, "fill") == 0;
                size_t n = fill ? 1 : (size_t)atoi(a), len = (size_t)atoi(fill ? a : b);
                CellaQueueMessage *msgs = calloc(n, sizeof(*msgs));
                char *buf = malloc(len + 1);
                long sent = 0;

                memset(buf, 'x', len);
                for (size_t i = 0; i < n; i++)
                        msgs[i] = (CellaQueueMessage){
                                .data = buf, .len = len, .priority = d ? (uint32_t)atoi(d) : 0};
                do {
                        uint32_t depth = 0;

                        r = cella_queue_send(c, &cur_q, msgs, n, &depth);
                        if (r == 0)
                                sent += (long)n;
                } while (fill && r == 0);
                if (fill)
                        printf("filled %ld\n", sent);
                free(msgs);
                free(buf);
        } else if (strcmp(op, "sendtext") == 0) {
                CellaQueueMessage m = {.data = a, .len = strlen(a), .priority = (uint32_t)atoi(b)};

                r = cella_queue_send(c, &cur_q, &m, 1, NULL);
        } else if (strcmp(op, "recv") == 0) {
                CellaQueueBatch *batch = NULL;

                r = cella_queue_receive(c, &cur_q, (size_t)atoi(a), atoi(b), &batch);
                for (size_t i = 0; r == 0 && i < batch->n; i++)
                        printf("got %llu %u %s %.*s\n", (unsigned long long)batch->msgs[i].seq,
                               batch->msgs[i].priority, batch->msgs[i].sender,
                               (int)batch->msgs[i].len, (const char *)batch->msgs[i].data);
                if (r == 0)
                        printf("depth %u\n", batch->depth);
                free(batch);
        } else if (strcmp(op, "hold") == 0) {
                CellaQueueBatch *batch = NULL;

                printf("holding\n");
                fflush(stdout);
                r = cella_queue_receive(c, &cur_q, 1, 600000, &batch);
                free(batch);
        } else if (strcmp(op, "screate") == 0) {
                CellaIpcOffer offer = {.app = "org.test.**", .modes = 3};

                r = cella_sem_create(c, a, (uint32_t)atoi(b), &offer, 1, &cur_s);
        } else if (strcmp(op, "sopen") == 0)
                r = cella_sem_open(c, a, &cur_s);
        else if (strcmp(op, "sopenwait") == 0)
                r = sem_open_wait(a, &cur_s);
        else if (strcmp(op, "spost") == 0)
                r = cella_sem_post(&cur_s, 1);
        else if (strcmp(op, "swait") == 0)
                r = cella_sem_wait(&cur_s, atoi(a));
        else if (strcmp(op, "sleepms") == 0) {
                printf("sleeping\n");
                fflush(stdout);
                usleep((useconds_t)atoi(a) * 1000u);
                r = 0;
        } else if (strcmp(op, "postdone") == 0) {
                CellaSem s;

                r = sem_open_wait(a, &s);
                if (r == 0)
                        r = cella_sem_post(&s, 1);
        } else if (strcmp(op, "qblock") == 0) {
                r = fcntl(cur_q.fd, F_SETFL, fcntl(cur_q.fd, F_GETFL) & ~O_NONBLOCK) < 0 ? -errno
                                                                                         : 0;
        } else if (strcmp(op, "qready") == 0) {
                struct pollfd p = {.fd = cur_q.fd, .events = POLLIN};

                r = poll(&p, 1, atoi(a));
                r = r > 0 ? 0 : r == 0 ? -ETIMEDOUT : -errno;
        } else if (strcmp(op, "qdrain") == 0) {
                char bytes[64];
                struct pollfd p = {.fd = cur_q.fd, .events = POLLIN};

                r = poll(&p, 1, 5000) > 0 && read(cur_q.fd, bytes, sizeof(bytes)) > 0 ? 0 : -EAGAIN;
        } else if (strcmp(op, "sblock") == 0) {
                /* what a hostile holder can do to the file all holders share */
                r = fcntl(cur_s.fd, F_SETFL, fcntl(cur_s.fd, F_GETFL) & ~O_NONBLOCK) < 0 ? -errno
                                                                                         : 0;
        } else if (strcmp(op, "gate") == 0) {
                CellaSem s;

                r = sem_open_wait(a, &s);
                if (r == 0)
                        r = cella_sem_wait(&s, 120000);
        } else if (strcmp(op, "waitdone") == 0) {
                CellaIpcOffer offer = {.app = "org.test.**", .modes = 3};
                CellaSem s;

                r = cella_sem_create(c, a, 0, &offer, 1, &s);
                for (int i = 0; r == 0 && i < atoi(b); i++)
                        r = cella_sem_wait(&s, 120000);
        } else if (strcmp(op, "qoffer") == 0) {
                CellaIpcOffer offer = {.app = a, .modes = b ? parse_modes(b) : 0};
                bool none = !a || strcmp(a, "-") == 0;

                r = cella_ipc_offer(c, cur_q.handle, none ? NULL : &offer, none ? 0 : 1);
        } else if (strcmp(op, "qpass") == 0) {
                r = a && b ? cella_ipc_pass(c, cur_q.handle, a, parse_modes(b), NULL) : -EINVAL;
        } else if (strcmp(op, "qaccept") == 0) {
                CellaIpcHandle h;
                int fd = -1;

                r = wait_event(CELLA_EVENT_IPC_OFFERED);
                if (r == 0)
                        r = cella_ipc_accept(c, offered_token, &h, &fd);
                if (r == 0) {
                        cur_q = (CellaQueue){.handle = h.handle,
                                             .fd = fd,
                                             .modes = h.modes,
                                             .message_bytes_max = (uint32_t)h.size_bytes};
                        printf("accepted %u %s\n", h.modes, h.name);
                }
        } else if (strcmp(op, "qclosed") == 0) {
                r = wait_event(CELLA_EVENT_IPC_CLOSED);
        } else {
                printf("unknown action %s\n", op);
                exit(2);
        }
        verdict(what, r, c);
}

int main(int argc, char **argv)
{
        int r;

        setvbuf(stdout, NULL, _IOLBF, 0);
        if (argc < 2) {
                fprintf(stderr, "usage: ipc-semq-probe ROLE ARGS...\n");
                return 2;
        }
        role = argv[1];
        pin_from_env();
        r = cella_open(&c);
        if (r < 0)
                fail("connect", r);
        cella_on_event(c, on_event, NULL);
        if (strcmp(role, "sem-owner") == 0 && argc == 5)
                r = sem_owner(argv[2], argv[3], atoi(argv[4]));
        else if (strcmp(role, "sem-peer") == 0 && argc == 4)
                r = sem_peer(argv[2], atoi(argv[3]));
        else if (strcmp(role, "sem-self") == 0 && argc == 4)
                r = sem_self(argv[2], atoi(argv[3]));
        else if (strcmp(role, "sem-give") == 0 && argc == 6)
                r = sem_give(argv[2], argv[3], atol(argv[4]), atoi(argv[5]));
        else if (strcmp(role, "sem-take") == 0 && argc == 3)
                r = sem_take(argv[2]);
        else if (strcmp(role, "q-owner") == 0 && argc == 7)
                r = q_owner(argv[2], argv[3], (unsigned)atoi(argv[4]), atoi(argv[5]),
                            atoi(argv[6]));
        else if (strcmp(role, "q-produce") == 0 && argc == 5)
                r = q_produce(argv[2], argv[3], atol(argv[4]));
        else if (strcmp(role, "q-consume") == 0 && argc == 3)
                r = q_consume(argv[2]);
        else if (strcmp(role, "q-bench-send") == 0 && argc == 7)
                r = q_bench_send(argv[2], argv[3], atol(argv[4]), atoi(argv[5]), atoi(argv[6]));
        else if (strcmp(role, "q-bench-recv") == 0 && argc == 5)
                r = q_bench_recv(argv[2], atol(argv[3]), atoi(argv[4]));
        else if (strcmp(role, "try") == 0) {
                for (int i = 2; i < argc; i++)
                        try_one(argv[i]);
                r = 0;
        } else {
                fprintf(stderr, "ipc-semq-probe: unknown role or arguments: %s\n", role);
                return 2;
        }
        if (r < 0)
                fail("end", r);
        printf("%s: done\n", role);
        cella_close(c);
        return 0;
}
