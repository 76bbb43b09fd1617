/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * fs-probe: an app for tests/integration/test_fs_roots.py. Run by cella in a real
 * sandbox with the root "r" granted for reading and writing, it tries every way
 * out of the root it knows and the legitimate operations, and prints one line per
 * attempt:
 *
 *   <name>=<result>
 *
 * where result is "ok", "ok:<detail>", or the errno name a call failed with
 * ("EACCES"). It judges nothing: the test asserts each result. Needs the planted
 * tree the test makes (hello.txt, secret, ro.txt, world.txt, private-w, tool, sub/,
 * fifo, null, links, ...).
 */
#include <cella.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#define ROOT "r"

static const char *errname(int e)
{
        switch (e) {
        case EACCES:
                return "EACCES";
        case EPERM:
                return "EPERM";
        case EXDEV:
                return "EXDEV";
        case ELOOP:
                return "ELOOP";
        case ENXIO:
                return "ENXIO";
        case EISDIR:
                return "EISDIR";
        case ENOTDIR:
                return "ENOTDIR";
        case ENOENT:
                return "ENOENT";
        case EINVAL:
                return "EINVAL";
        case EEXIST:
                return "EEXIST";
        case EBADF:
                return "EBADF";
        case ENOTEMPTY:
                return "ENOTEMPTY";
        case ECONNREFUSED:
                return "ECONNREFUSED";
        case EROFS:
                return "EROFS";
        case ETXTBSY:
                return "ETXTBSY";
        default:
                return strerror(e);
        }
}

/* Prints name's result: r >= 0 "ok", else the errno name of -r. */
static void say(const char *name, int r)
{
        printf("%s=%s\n", name, r >= 0 ? "ok" : errname(-r));
}

static int neg(int r)
{
        return r < 0 ? -errno : r;
}

/* fs.open, closing what it got: the result only. */
static void try_open(Cella *c, const char *name, const char *path, int flags)
{
        int fd = -1, r = cella_fs_open(c, ROOT, path, flags, 0644, &fd);

        if (r >= 0)
                close(fd);
        say(name, r);
}

/* Everything a passed fd could lead to, tried from fd (a regular file). */
static void from_fd(const char *what, int fd)
{
        struct sockaddr_un sa = {.sun_family = AF_UNIX};
        char name[128], p[64];
        int s, r;

        snprintf(name, sizeof name, "%s.openat-dotdot", what);
        r = neg(openat(fd, "../..", O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        say(name, r);
        if (r >= 0)
                close(r);
        snprintf(name, sizeof name, "%s.fchdir", what);
        say(name, neg(fchdir(fd)));
        snprintf(name, sizeof name, "%s.proc-fd-dotdot", what);
        snprintf(p, sizeof p, "/proc/self/fd/%d/..", fd);
        r = neg(open(p, O_RDONLY | O_DIRECTORY | O_CLOEXEC));
        say(name, r);
        if (r >= 0)
                close(r);
        /* The host socket sits next to the root: ../host.sock from the root. */
        s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        snprintf(sa.sun_path, sizeof sa.sun_path, "/proc/self/fd/%d/../host.sock", fd);
        snprintf(name, sizeof name, "%s.connect-via-proc", what);
        say(name, neg(connect(s, (struct sockaddr *)&sa, sizeof sa)));
        snprintf(sa.sun_path, sizeof sa.sun_path, "../host.sock");
        snprintf(name, sizeof name, "%s.connect-relative", what);
        say(name, neg(connect(s, (struct sockaddr *)&sa, sizeof sa)));
        close(s);
        s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        snprintf(sa.sun_path, sizeof sa.sun_path, "/proc/self/fd/%d/../planted.sock", fd);
        snprintf(name, sizeof name, "%s.bind-via-proc", what);
        say(name, neg(bind(s, (struct sockaddr *)&sa, sizeof sa)));
        close(s);
        /* Reopen with more access than passed: checked against the app's own uid. */
        snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
        snprintf(name, sizeof name, "%s.reopen-rdwr", what);
        r = neg(open(p, O_RDWR | O_CLOEXEC));
        say(name, r);
        if (r >= 0)
                close(r);
        snprintf(name, sizeof name, "%s.reopen-trunc", what);
        r = neg(open(p, O_WRONLY | O_TRUNC | O_CLOEXEC));
        say(name, r);
        if (r >= 0)
                close(r);
        /* A new name for the host file in the app's own folders. */
        snprintf(name, sizeof name, "%s.linkat-proc-tmp", what);
        say(name, neg(linkat(AT_FDCWD, p, AT_FDCWD, "/tmp/stolen", AT_SYMLINK_FOLLOW)));
        snprintf(name, sizeof name, "%s.linkat-proc-data", what);
        say(name, neg(linkat(AT_FDCWD, p, AT_FDCWD, "/data/stolen", AT_SYMLINK_FOLLOW)));
        snprintf(name, sizeof name, "%s.linkat-empty-path", what);
        say(name, neg(linkat(fd, "", AT_FDCWD, "/tmp/stolen2", AT_EMPTY_PATH)));
        snprintf(name, sizeof name, "%s.fchmod", what);
        say(name, neg(fchmod(fd, 0777)));
        snprintf(name, sizeof name, "%s.fchown", what);
        say(name, neg(fchown(fd, getuid(), getgid())));
}

/* Reopens /proc/self/fd/<fd> with flags: 0 or -errno. */
static int reopen(int fd, int flags)
{
        char p[64];
        int r;

        snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
        r = neg(open(p, flags | O_CLOEXEC));
        if (r >= 0)
                close(r);
        return r < 0 ? r : 0;
}

/* Runs the program of fd in a child: how 0 fexecve(), 1 execveat(AT_EMPTY_PATH),
 * 2 execve() of /proc/self/fd/<fd>. 0 if it ran (the planted tool exits 0), else
 * -errno of the failed exec. */
static int try_exec(int fd, int how)
{
        char *argv[] = {"tool", NULL}, *envp[] = {NULL};
        char p[64];
        int status;
        pid_t pid;

        fflush(stdout);
        pid = fork();
        if (pid < 0)
                return -errno;
        if (pid == 0) {
                snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
                if (how == 0)
                        fexecve(fd, argv, envp);
                else if (how == 1)
                        syscall(SYS_execveat, fd, "", argv, envp, AT_EMPTY_PATH);
                else
                        execve(p, argv, envp);
                _exit(errno & 0xff);
        }
        if (waitpid(pid, &status, 0) < 0)
                return -errno;
        if (!WIFEXITED(status))
                return -EINTR;
        return -WEXITSTATUS(status);
}

/* The limits of the mount a passed fd lives on: what the app's own uid would be
 * allowed on a reopen, the mount refuses; what the fd names. */
static void passed_fd_limits(Cella *c)
{
        char p[64], link[PATH_MAX] = {};
        void *map;
        int fd = -1, r;

        /* A world-writable file passed read-only. */
        r = cella_fs_open(c, ROOT, "world.txt", O_RDONLY, 0, &fd);
        say("open.world-for-fd-tests", r);
        if (r >= 0) {
                say("fd.world-reopen-rdwr", reopen(fd, O_RDWR));
                say("fd.world-reopen-wronly", reopen(fd, O_WRONLY));
                say("fd.world-reopen-trunc", reopen(fd, O_RDONLY | O_TRUNC));
                say("fd.world-reopen-append", reopen(fd, O_WRONLY | O_APPEND));
                snprintf(p, sizeof p, "/proc/self/fd/%d", fd);
                /* By path, no new open: truncate(2), utimensat(2) "now". */
                say("fd.world-truncate", neg(truncate(p, 0)));
                say("fd.world-utimes", neg(utimensat(AT_FDCWD, p, NULL, 0)));
                if (readlink(p, link, sizeof link - 1) > 0)
                        printf("fd.readlink=ok:%s\n", link);
                else
                        say("fd.readlink", -errno);
                close(fd);
        }
        /* An executable file (0777) passed read-only: no exec, no executable map. */
        r = cella_fs_open(c, ROOT, "tool", O_RDONLY, 0, &fd);
        say("open.tool-for-fd-tests", r);
        if (r >= 0) {
                say("fd.fexecve", try_exec(fd, 0));
                say("fd.execveat", try_exec(fd, 1));
                say("fd.execve-proc", try_exec(fd, 2));
                map = mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE, fd, 0);
                say("fd.mmap-exec", map == MAP_FAILED ? -errno : 0);
                if (map != MAP_FAILED)
                        munmap(map, 4096);
                close(fd);
        }
        /* Passed for writing: no exec either. */
        r = cella_fs_open(c, ROOT, "tool", O_WRONLY, 0, &fd);
        if (r >= 0) {
                say("fd.rw-execveat", try_exec(fd, 1));
                say("fd.rw-fchmod", neg(fchmod(fd, 04777)));
                say("fd.rw-fchown", neg(fchown(fd, getuid(), getgid())));
                close(fd);
        } else {
                say("fd.rw-execveat", r);
                say("fd.rw-fchmod", r);
                say("fd.rw-fchown", r);
        }
        /* Passed write-only: read back through a reopen only what the file's "other"
         * bits allow the app's own uid (docs/security.md: no mount flag stops that). */
        r = cella_fs_open(c, ROOT, "private-w", O_WRONLY, 0, &fd);
        if (r >= 0) {
                say("fd.wronly-reopen-read-0600", reopen(fd, O_RDONLY));
                close(fd);
        } else
                say("fd.wronly-reopen-read-0600", r);
        r = cella_fs_open(c, ROOT, "hello.txt", O_WRONLY, 0, &fd);
        if (r >= 0) {
                say("fd.wronly-reopen-read-0644", reopen(fd, O_RDONLY));
                close(fd);
        } else
                say("fd.wronly-reopen-read-0644", r);
}

static void escapes(Cella *c)
{
        uint8_t body[64];
        CellaReply *reply = NULL;
        CellaFsList *l = NULL;
        CellaFsStat st;
        int fd = -1, r;
        size_t n;

        /* No directory fd, by any name. */
        try_open(c, "open.root-dir", ".", O_RDONLY);
        try_open(c, "open.subdir", "sub", O_RDONLY);
        try_open(c, "open.subdir-dotdot", "sub/..", O_RDONLY);
        try_open(c, "open.o-directory", "sub", O_RDONLY | O_DIRECTORY);
        try_open(c, "open.o-path", ".", O_PATH);
        /* Past libcella: the raw DIRECTORY flag (0x40) on the wire, path ".". */
        n = 0;
        body[n++] = 0x0a, body[n++] = 1, body[n++] = 'r'; /* root = "r" */
        body[n++] = 0x12, body[n++] = 1, body[n++] = '.'; /* path = "." */
        body[n++] = 0x18, body[n++] = 0x41;               /* flags = READ|DIRECTORY */
        r = cella_call(c, CELLA_OP_FS_OPEN, body, n, NULL, 0, &reply);
        say("open.raw-directory-flag", r < 0 ? r : reply->error ? reply->error : 0);
        reply = cella_reply_free(reply);

        /* File types: checked before anything is opened. */
        try_open(c, "open.fifo", "fifo", O_RDONLY);
        try_open(c, "open.fifo-write", "fifo", O_WRONLY);
        try_open(c, "open.device", "null", O_RDWR);
        try_open(c, "open.socket", "sock", O_RDONLY);

        /* The owner's permissions, not root's. */
        try_open(c, "open.root-only-0600", "secret", O_RDONLY);
        try_open(c, "open.hardlink-to-outside-secret", "hl-secret", O_RDONLY);
        try_open(c, "open.0444-trunc", "ro.txt", O_WRONLY | O_TRUNC);
        try_open(c, "open.0444-rdonly-trunc", "ro.txt", O_RDWR | O_TRUNC);
        try_open(c, "open.in-root-owned-0700-dir", "rootdir/inside.txt", O_RDONLY);
        try_open(c, "open.create-in-root-owned-dir", "rootdir/new.txt", O_WRONLY | O_CREAT);

        /* Paths out. */
        try_open(c, "open.dotdot", "../outside.txt", O_RDONLY);
        try_open(c, "open.absolute", "/etc/passwd", O_RDONLY);
        try_open(c, "open.symlink-root", "link-root/etc/passwd", O_RDONLY);
        try_open(c, "open.symlink-up", "link-up/etc/passwd", O_RDONLY);
        try_open(c, "open.symlink-abs-file", "link-outside", O_RDONLY);
        try_open(c, "open.create-through-symlink-out", "link-newout", O_WRONLY | O_CREAT);
        say("list.dotdot", cella_fs_list(c, ROOT, "..", 0, 0, &l));
        say("list.symlink-root", cella_fs_list(c, ROOT, "link-root", 0, 0, &l));
        say("list.proc-magic", cella_fs_list(c, ROOT, "/proc/self/root", 0, 0, &l));
        say("stat.dotdot", cella_fs_stat(c, ROOT, "../..", 0, &st));
        say("stat.symlink-up", cella_fs_stat(c, ROOT, "link-up/etc", 0, &st));
        say("mkdir.dotdot", cella_fs_mkdir(c, ROOT, "../made-outside", 0755));
        say("mkdir.symlink-up", cella_fs_mkdir(c, ROOT, "link-up/made-outside", 0755));
        say("mkdir.in-root-owned-dir", cella_fs_mkdir(c, ROOT, "rootdir/made", 0755));
        say("rename.out", cella_fs_rename(c, ROOT, "hello.txt", "../moved-out", 0));
        say("rename.in", cella_fs_rename(c, ROOT, "../outside.txt", "moved-in", 0));
        say("rename.via-symlink", cella_fs_rename(c, ROOT, "hello.txt", "link-up/moved", 0));
        say("unlink.dotdot", cella_fs_unlink(c, ROOT, "../outside.txt"));
        say("unlink.via-symlink", cella_fs_unlink(c, ROOT, "link-root/etc/hostname"));
        say("unlink.root-owned", cella_fs_unlink(c, ROOT, "rootdir/inside.txt"));

        /* From the fd of a regular file it was given. */
        r = cella_fs_open(c, ROOT, "hello.txt", O_RDONLY, 0, &fd);
        say("open.hello-for-fd-tests", r);
        if (r >= 0) {
                from_fd("fd", fd);
                close(fd);
        }
        passed_fd_limits(c);
}

static void works(Cella *c)
{
        CellaFsList *l = NULL;
        CellaFsStat st;
        char buf[64] = {};
        uint64_t cookie = 0;
        unsigned names = 0, pages = 0;
        ssize_t n;
        int fd = -1, r;

        r = cella_fs_open(c, ROOT, "hello.txt", O_RDONLY, 0, &fd);
        if (r >= 0) {
                n = read(fd, buf, sizeof buf - 1);
                close(fd);
                printf("read.hello=ok:%.*s\n", (int)(n > 0 ? n : 0), buf);
        } else
                say("read.hello", r);
        r = cella_fs_open(c, ROOT, "created.txt", O_WRONLY | O_CREAT | O_EXCL, 0600, &fd);
        if (r >= 0) {
                r = write(fd, "new", 3) == 3 ? 0 : -errno;
                close(fd);
        }
        say("create", r);
        r = cella_fs_open(c, ROOT, "kept.txt", O_WRONLY | O_CREAT | O_EXCL, 0755, &fd);
        if (r >= 0) {
                r = write(fd, "kept", 4) == 4 ? 0 : -errno;
                close(fd);
        }
        say("create.kept", r);
        say("mkdir", cella_fs_mkdir(c, ROOT, "made", 0755));
        say("rename", cella_fs_rename(c, ROOT, "created.txt", "made/moved.txt", 0));
        r = cella_fs_stat(c, ROOT, "made/moved.txt", 0, &st);
        if (r >= 0)
                printf("stat=ok:%d,%llu\n", (int)st.type, (unsigned long long)st.size_bytes);
        else
                say("stat", r);
        /* Pages of 10 through sub/ (the test planted 25 files). */
        do {
                r = cella_fs_list(c, ROOT, "sub", cookie, 10, &l);
                if (r < 0)
                        break;
                names += (unsigned)l->n_entries;
                pages++;
                cookie = l->next_cookie;
                r = l->end ? 1 : 0;
                cella_free(l);
        } while (r == 0 && pages < 100);
        if (r < 0)
                say("list", r);
        else
                printf("list=ok:%u,%u\n", names, pages);
        say("unlink.file", cella_fs_unlink(c, ROOT, "made/moved.txt"));
        say("unlink.dir", cella_fs_unlink(c, ROOT, "made"));
}

int main(int argc, char **argv)
{
        Cella *c = NULL;
        int r;

        setvbuf(stdout, NULL, _IOLBF, 0);
        r = cella_open(&c);
        if (r < 0) {
                fprintf(stderr, "fs-probe: no cella channel: %s\n", strerror(-r));
                return 1;
        }
        cella_set_timeout(c, 10000);
        if (argc < 2 || strcmp(argv[1], "works") != 0)
                escapes(c);
        if (argc < 2 || strcmp(argv[1], "escapes") != 0)
                works(c);
        cella_close(c);
        printf("fs-probe: done\n");
        return 0;
}
