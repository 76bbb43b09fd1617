/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * ipc-probe: a native app for tests/integration/test_ipc_core.py (docs/ipc.md). It
 * runs the steps its arguments name, in order, and prints one line per step:
 *
 *   <step> rc=OK [key=value...]      it worked
 *   <step> rc=<ERRNO NAME>           it failed (EACCES, EPERM, EDQUOT...)
 *
 * The steps (the "current" fd, handle, token and mapping are the last ones made):
 *
 *   shm NAME SIZE APP MODES   cella_shm_create(), offered to APP ("-": nobody;
 *                             "topic:PATTERN": a topic's subscribers) with MODES (r,
 *                             rw); maps it read-write, writes "hello"
 *   shm-ro NAME SIZE APP      cella_shm_make(), writes "sealed", cella_shm_register()
 *                             read-only sealed, offered READ to APP
 *   open NAME MODES           cella_shm_open() (r, rw) and maps it; prints data=
 *   read-shm                  prints data= (the mapping's first bytes)
 *   write-shm TEXT            writes TEXT at the start of the mapping
 *   pipe NAME KIND MODE PEER  cella_pipe_create() (KIND pipe, channel; MODE r, w, rw)
 *   wait-offer                waits for CELLA_EVENT_IPC_OFFERED: token, name, from, modes
 *   accept                    cella_ipc_accept() of that token
 *   send TEXT / recv          write()/read() on the current fd (pipe, channel)
 *   pass TO MODES             cella_ipc_pass() of the current handle
 *   close / destroy           cella_ipc_close() of the current handle
 *   list                      cella_ipc_list(): handles= objects= shm_bytes=
 *   wait-closed               waits for CELLA_EVENT_IPC_CLOSED: handle, reason
 *   attack                    every way to write through a read-only shm fd
 *   bad KIND                  registers a bad memfd: plain, sealed, sparse, partial,
 *                             nosealing, size
 *   abort                     crashes (SIGABRT)
 *   first-run                 the first time (no /data/ipc-probe-ran yet): marks it
 *                             and goes on; the next time (a restart): skips every step
 *                             up to and including the next "abort"
 *   hold                      waits for events until killed
 *   ready                     prints "ready"
 *   mark TEXT                 prints TEXT (a line a test waits for)
 *
 * Ends with "ipc-probe: done" (status 0). Untrusted input never crashes it.
 */
#include <cella.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static Cella *c;
static int cur_fd = -1, shm_fd = -1;
static uint64_t cur_handle, token, map_size;
static char *map;
static bool map_rw;
static int want_event; /* the event opcode waited for */
static bool got_event;

static const char *ename(int e)
{
        static char buf[32];

        switch (e < 0 ? -e : e) {
        case 0:
                return "OK";
        case EACCES:
                return "EACCES";
        case EPERM:
                return "EPERM";
        case EINVAL:
                return "EINVAL";
        case ENOENT:
                return "ENOENT";
        case EEXIST:
                return "EEXIST";
        case EDQUOT:
                return "EDQUOT";
        case EBUSY:
                return "EBUSY";
        case EBADF:
                return "EBADF";
        case ENOSYS:
                return "ENOSYS";
        case EAGAIN:
                return "EAGAIN";
        case ENOMEM:
                return "ENOMEM";
        case ETIMEDOUT:
                return "ETIMEDOUT";
        case EPIPE:
                return "EPIPE";
        }
        snprintf(buf, sizeof buf, "E%d", e < 0 ? -e : e);
        return buf;
}

static uint32_t modes_of(const char *s)
{
        if (strcmp(s, "r") == 0)
                return CELLA_IPC_READ;
        if (strcmp(s, "w") == 0)
                return CELLA_IPC_WRITE;
        return CELLA_IPC_READ | CELLA_IPC_WRITE;
}

static void on_event(Cella *cc, const CellaEvent *ev, void *ud)
{
        (void)cc;
        (void)ud;
        if (!ev->decoded || ev->opcode != want_event || got_event)
                return;
        got_event = true;
        if (ev->opcode == CELLA_EVENT_IPC_OFFERED) {
                token = ev->ipc_offered.token;
                printf("wait-offer rc=OK token=%" PRIu64 " name=%s from=%s modes=%u kind=%d\n",
                       token, ev->ipc_offered.name, ev->ipc_offered.from, ev->ipc_offered.modes,
                       ev->ipc_offered.kind);
        } else
                printf("wait-closed rc=OK handle=%" PRIu64 " reason=%s\n", ev->ipc_closed.handle,
                       ev->ipc_closed.reason);
}

/* Waits up to 30 s for the event opcode (the callback prints it). */
static void wait_event(int opcode, const char *step)
{
        want_event = opcode;
        got_event = false;
        for (int i = 0; i < 300 && !got_event; i++) {
                int r = cella_wait(c, 100);

                if (r > 0)
                        r = cella_dispatch(c);
                if (r < 0 && r != -EINTR) {
                        printf("%s rc=%s\n", step, ename(r));
                        return;
                }
        }
        if (!got_event)
                printf("%s rc=ETIMEDOUT\n", step);
}

static void set_map(int fd, uint64_t size, bool rw)
{
        if (map)
                munmap(map, map_size);
        map = cella_shm_map(fd, size, rw ? CELLA_IPC_READ | CELLA_IPC_WRITE : CELLA_IPC_READ);
        map_size = map ? size : 0;
        map_rw = rw;
}

static void print_data(const char *step)
{
        char buf[33] = "";

        if (map)
                memcpy(buf, map, map_size < 32 ? map_size : 32);
        buf[32] = '\0';
        printf("%s rc=OK data=%s\n", step, buf[0] ? buf : "-");
}

/* One attack on the read-only shm fd: prints rc=OK if it worked (a hole). */
static void attack_line(const char *what, int r)
{
        printf("attack %s rc=%s\n", what, r >= 0 ? "OK" : ename(errno));
}

static void attack(void)
{
        char path[64];
        void *p;
        int fd;

        if (shm_fd < 0) {
                printf("attack rc=EBADF\n");
                return;
        }
        snprintf(path, sizeof path, "/proc/self/fd/%d", shm_fd);
        fd = open(path, O_RDWR | O_CLOEXEC);
        attack_line("reopen-rw", fd);
        if (fd >= 0)
                close(fd);
        fd = open(path, O_WRONLY | O_CLOEXEC);
        attack_line("reopen-wo", fd);
        if (fd >= 0)
                close(fd);
        p = mmap(NULL, map_size ? map_size : 4096, PROT_READ | PROT_WRITE, MAP_SHARED, shm_fd, 0);
        attack_line("mmap-write", p == MAP_FAILED ? -1 : 0);
        if (p != MAP_FAILED)
                munmap(p, map_size ? map_size : 4096);
        if (map) {
                errno = 0;
                attack_line("mprotect", mprotect(map, map_size, PROT_READ | PROT_WRITE));
        }
        attack_line("write", (int)write(shm_fd, "x", 1));
        attack_line("pwrite", (int)pwrite(shm_fd, "x", 1, 0));
        attack_line("ftruncate-grow", ftruncate(shm_fd, (off_t)map_size * 2));
        attack_line("ftruncate-shrink", ftruncate(shm_fd, 0));
        attack_line("fallocate", fallocate(shm_fd, 0, 0, (off_t)map_size * 2));
        attack_line("fchmod", fchmod(shm_fd, 0777));
        attack_line("add-seals", fcntl(shm_fd, F_ADD_SEALS, F_SEAL_WRITE));
        /* fexecve in a child: on success it would replace the process. */
        {
                pid_t pid = fork();
                int status;

                if (pid == 0) {
                        char *argv[] = {"x", NULL}, *envp[] = {NULL};

                        fexecve(shm_fd, argv, envp);
                        _exit(errno & 0xff);
                }
                waitpid(pid, &status, 0);
                /* exit 0 would be an exec that worked (it cannot report: the image
                 * replaced us), a signal a seccomp kill: neither is an errno. */
                if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
                        printf("attack fexecve rc=%s\n", ename(WEXITSTATUS(status)));
                else
                        printf("attack fexecve rc=%s\n", WIFEXITED(status) ? "OK" : "SIGNALLED");
        }
        printf("attack rc=OK\n");
}

/* A memfd that cellad must refuse, of kind k. */
static int bad_memfd(const char *k, uint64_t *size)
{
        int fd;

        *size = 8192;
        if (strcmp(k, "plain") == 0) {
                fd = open("/tmp", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
                if (fd >= 0 && fallocate(fd, 0, 0, 8192) < 0)
                        (void)ftruncate(fd, 8192);
                return fd;
        }
        if (strcmp(k, "nosealing") == 0) {
                fd = memfd_create("bad", MFD_CLOEXEC);
                if (fd >= 0)
                        (void)fallocate(fd, 0, 0, 8192);
                return fd;
        }
        fd = memfd_create("bad", MFD_CLOEXEC | MFD_ALLOW_SEALING);
        if (fd < 0)
                return fd;
        if (ftruncate(fd, 8192) < 0)
                return fd;
        if (strcmp(k, "sparse") == 0)
                return fd;
        if (strcmp(k, "partial") == 0) {
                (void)fallocate(fd, 0, 0, 4096);
                return fd;
        }
        (void)fallocate(fd, 0, 0, 8192);
        if (strcmp(k, "sealed") == 0)
                (void)fcntl(fd, F_ADD_SEALS, F_SEAL_GROW);
        if (strcmp(k, "size") == 0)
                *size = 4096;
        return fd;
}

int main(int argc, char **argv)
{
        setvbuf(stdout, NULL, _IOLBF, 0);
        if (cella_open(&c) < 0) {
                printf("open rc=EBADF\n");
                return 1;
        }
        cella_on_event(c, on_event, NULL);
        for (int i = 1; i < argc; i++) {
                const char *s = argv[i];
                CellaIpcHandle h;
                int r, fd;

#define NEED(n)                                                                                    \
        if (i + (n) >= argc) {                                                                     \
                printf("%s rc=EINVAL why=missing arguments\n", s);                                 \
                return 2;                                                                          \
        }
                if (strcmp(s, "shm") == 0) {
                        NEED(4);
                        CellaIpcOffer o = {.app = argv[i + 3], .modes = modes_of(argv[i + 4])};

                        if (strncmp(argv[i + 3], "topic:", 6) == 0) {
                                o.app = NULL;
                                o.topic = argv[i + 3] + 6;
                        }
                        bool none = strcmp(argv[i + 3], "-") == 0;
                        uint64_t size = strtoull(argv[i + 2], NULL, 10);

                        r = cella_shm_create(c, argv[i + 1], size, &o, none ? 0 : 1, &h, &fd);
                        if (r == 0) {
                                cur_handle = h.handle;
                                shm_fd = fd;
                                set_map(fd, size, true);
                                if (map)
                                        strcpy(map, "hello");
                        }
                        printf("shm rc=%s handle=%" PRIu64 "\n", ename(r), r == 0 ? h.handle : 0);
                        i += 4;
                } else if (strcmp(s, "shm-ro") == 0) {
                        NEED(3);
                        CellaIpcOffer o = {.app = argv[i + 3], .modes = CELLA_IPC_READ};
                        uint64_t size = strtoull(argv[i + 2], NULL, 10);

                        r = cella_shm_make(size, &fd);
                        if (r == 0) {
                                char *p = cella_shm_map(fd, size, CELLA_IPC_READ | CELLA_IPC_WRITE);

                                if (p) {
                                        strcpy(p, "sealed");
                                        munmap(p, size);
                                }
                                r = cella_shm_register(c, argv[i + 1], fd, size, &o,
                                                       strcmp(argv[i + 3], "-") ? 1 : 0, true, &h);
                        }
                        if (r == 0) {
                                cur_handle = h.handle;
                                shm_fd = fd;
                                set_map(fd, size, false);
                        }
                        printf("shm-ro rc=%s\n", ename(r));
                        i += 3;
                } else if (strcmp(s, "open") == 0) {
                        NEED(2);
                        uint32_t m = modes_of(argv[i + 2]);

                        r = cella_shm_open(c, argv[i + 1], m, &h, &fd);
                        if (r == 0) {
                                cur_handle = h.handle;
                                shm_fd = fd;
                                set_map(fd, h.size_bytes, m & CELLA_IPC_WRITE);
                                printf("open rc=OK handle=%" PRIu64 " size=%" PRIu64
                                       " owner=%s mapped=%d\n",
                                       h.handle, h.size_bytes, h.owner, map != NULL);
                                print_data("read-shm");
                        } else
                                printf("open rc=%s\n", ename(r));
                        i += 2;
                } else if (strcmp(s, "read-shm") == 0) {
                        print_data(s);
                } else if (strcmp(s, "write-shm") == 0) {
                        NEED(1);
                        if (map && map_rw) {
                                strcpy(map, argv[i + 1]);
                                printf("write-shm rc=OK\n");
                        } else
                                printf("write-shm rc=EBADF\n");
                        i += 1;
                } else if (strcmp(s, "pipe") == 0) {
                        NEED(4);
                        CellaIpcKind k = strcmp(argv[i + 2], "channel") == 0 ? CELLA_IPC_CHANNEL
                                                                             : CELLA_IPC_PIPE;

                        r = cella_pipe_create(c, argv[i + 1], k, modes_of(argv[i + 3]), argv[i + 4],
                                              0, 0, &h, &fd);
                        if (r == 0) {
                                cur_fd = fd;
                                cur_handle = h.handle;
                        }
                        printf("pipe rc=%s\n", ename(r));
                        i += 4;
                } else if (strcmp(s, "wait-offer") == 0) {
                        wait_event(CELLA_EVENT_IPC_OFFERED, s);
                } else if (strcmp(s, "wait-closed") == 0) {
                        wait_event(CELLA_EVENT_IPC_CLOSED, s);
                } else if (strcmp(s, "accept") == 0) {
                        r = cella_ipc_accept(c, token, &h, &fd);
                        if (r == 0) {
                                cur_handle = h.handle;
                                if (h.kind == CELLA_IPC_SHM) {
                                        shm_fd = fd;
                                        set_map(fd, h.size_bytes, h.modes & CELLA_IPC_WRITE);
                                } else
                                        cur_fd = fd;
                                printf("accept rc=OK handle=%" PRIu64 " modes=%u kind=%d\n",
                                       h.handle, h.modes, h.kind);
                        } else
                                printf("accept rc=%s\n", ename(r));
                } else if (strcmp(s, "send") == 0) {
                        NEED(1);
                        ssize_t n = write(cur_fd, argv[i + 1], strlen(argv[i + 1]));

                        printf("send rc=%s\n", n >= 0 ? "OK" : ename(errno));
                        i += 1;
                } else if (strcmp(s, "recv") == 0) {
                        char buf[256];
                        ssize_t n = read(cur_fd, buf, sizeof buf - 1);

                        if (n >= 0) {
                                buf[n] = '\0';
                                printf("recv rc=OK got=%s\n", n ? buf : "EOF");
                        } else
                                printf("recv rc=%s\n", ename(errno));
                } else if (strcmp(s, "pass") == 0) {
                        uint64_t t = 0;

                        NEED(2);
                        r = cella_ipc_pass(c, cur_handle, argv[i + 1], modes_of(argv[i + 2]), &t);
                        printf("pass rc=%s token=%" PRIu64 "\n", ename(r), t);
                        i += 2;
                } else if (strcmp(s, "close") == 0 || strcmp(s, "destroy") == 0) {
                        r = cella_ipc_close(c, cur_handle, strcmp(s, "destroy") == 0);
                        printf("%s rc=%s\n", s, ename(r));
                } else if (strcmp(s, "list") == 0) {
                        CellaIpcList *l = NULL;

                        r = cella_ipc_list(c, &l);
                        if (r == 0)
                                printf("list rc=OK handles=%zu objects=%u shm_bytes=%" PRIu64
                                       " objects_max=%u\n",
                                       l->n_handles, l->usage.objects, l->usage.shm_bytes,
                                       l->usage.objects_max);
                        else
                                printf("list rc=%s\n", ename(r));
                        cella_free(l);
                } else if (strcmp(s, "attack") == 0) {
                        attack();
                } else if (strcmp(s, "bad") == 0) {
                        uint64_t size;

                        NEED(1);
                        fd = bad_memfd(argv[i + 1], &size);
                        r = fd < 0 ? -errno
                                   : cella_shm_register(c, "org.test.ipc.a.bad", fd, size, NULL, 0,
                                                        false, NULL);
                        printf("bad %s rc=%s\n", argv[i + 1], ename(r));
                        if (fd >= 0)
                                close(fd);
                        i += 1;
                } else if (strcmp(s, "abort") == 0) {
                        abort();
                } else if (strcmp(s, "first-run") == 0) {
                        if (access("/data/ipc-probe-ran", F_OK) == 0) {
                                while (i + 1 < argc && strcmp(argv[i + 1], "abort") != 0)
                                        i++;
                                i++;
                                printf("first-run rc=OK again=1\n");
                        } else {
                                fd = open("/data/ipc-probe-ran", O_WRONLY | O_CREAT | O_CLOEXEC,
                                          0600);
                                printf("first-run rc=%s again=0\n", fd >= 0 ? "OK" : ename(errno));
                                if (fd >= 0)
                                        close(fd);
                        }
                } else if (strcmp(s, "hold") == 0) {
                        for (;;) {
                                r = cella_wait(c, -1);
                                if (r > 0)
                                        r = cella_dispatch(c);
                                if (r < 0 && r != -EINTR)
                                        break;
                        }
                } else if (strcmp(s, "ready") == 0) {
                        printf("ready\n");
                } else if (strcmp(s, "mark") == 0) {
                        NEED(1);
                        printf("%s\n", argv[i + 1]);
                        i += 1;
                } else {
                        printf("%s rc=EINVAL why=unknown step\n", s);
                        return 2;
                }
        }
        printf("ipc-probe: done\n");
        cella_close(c);
        return 0;
}
