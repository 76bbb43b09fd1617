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
 * Static, uninstrumented: no dynamic loader in the figure, no ASan runtime in the
 * jail.
 */
#include <dirent.h>
#include <stdio.h>
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

int main(int argc, char **argv)
{
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        printf("tick %lld\n", (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec);
        if (argc > 1 && strncmp(argv[1], "probe", 5) == 0)
                probe();
        fflush(stdout);
        if (argc > 1 && strstr(argv[1], "sleep"))
                for (;;)
                        pause();
        return 0;
}
