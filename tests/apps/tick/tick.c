/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * tick: the trivial native app of bench/start-daemon and
 * tests/integration/test_density.py, test_pool.py. Its first act writes
 * "tick <CLOCK_MONOTONIC ns>" on stdout (the app's log under cellad): a start's
 * end, as close to the app's first instruction as a static program's main()
 * gets (CLOCK_MONOTONIC is one clock for the host and every sandbox: cella makes
 * no time namespace). Then, by its first argument:
 *   (none)   exits 0 at once;
 *   sleep    blocks in pause() until a signal ends it (an idle app);
 *   probe    also prints what a test compares between starts: its uid and
 *            gid, hostname, /tmp's entries, its mounts count, then leaves a file
 *            in /tmp, and exits 0;
 *   probe-sleep  probe, then blocks as sleep does.
 *   cgroup   also prints each line of /proc/self/cgroup as "cgroup LINE" (in
 *            its cgroup namespace: "/" where the app is at its root), then
 *            blocks as sleep does;
 *   eat      then touches 1 MiB after another, up to 256 MiB, printing "ate N"
 *            (MiB) after each: a memory limit below that must kill it, and
 *            does so from its first instruction only if the limit was there.
 * Static, uninstrumented: no dynamic loader in the figure, no ASan runtime in the
 * jail.
 */
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void probe(void)
{
        char host[256] = "";
        char line[4096];
        unsigned mounts = 0;
        DIR *d;
        FILE *f;
        struct dirent *e;

        gethostname(host, sizeof host - 1);
        printf("uid %u gid %u euid %u\n", (unsigned)getuid(), (unsigned)getgid(),
               (unsigned)geteuid());
        printf("hostname %s\n", host);
        printf("tmp");
        d = opendir("/tmp");
        while (d && (e = readdir(d)))
                if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
                        printf(" %s", e->d_name);
        if (d)
                closedir(d);
        printf("\n");
        f = fopen("/proc/self/mountinfo", "re");
        while (f && fgets(line, sizeof line, f))
                mounts++;
        if (f)
                fclose(f);
        printf("mounts %u\n", mounts);
        f = fopen("/tmp/left-by-previous", "we");
        if (f)
                fclose(f);
}

static void print_cgroup(void)
{
        char line[4096];
        FILE *f = fopen("/proc/self/cgroup", "re");

        while (f && fgets(line, sizeof line, f))
                printf("cgroup %s", line);
        if (f)
                fclose(f);
}

static void eat(void)
{
        for (unsigned mib = 1; mib <= 256; mib++) {
                char *p = malloc(1u << 20);

                if (!p)
                        break;
                memset(p, 1, 1u << 20);
                printf("ate %u\n", mib);
                fflush(stdout);
        }
}

int main(int argc, char **argv)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        printf("tick %lld\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
        if (argc > 1 && strncmp(argv[1], "probe", 5) == 0)
                probe();
        if (argc > 1 && strcmp(argv[1], "cgroup") == 0)
                print_cgroup();
        fflush(stdout);
        if (argc > 1 && strcmp(argv[1], "eat") == 0)
                eat();
        if (argc > 1 && (strstr(argv[1], "sleep") || strcmp(argv[1], "cgroup") == 0))
                for (;;)
                        pause();
        return 0;
}
