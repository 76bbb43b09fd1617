/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* hello: the smallest cella app. Prints who and where it is, and its arguments. */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
        char host[65] = "";

        gethostname(host, sizeof host - 1);
        printf("hello from %s (uid %d, pid %d)\n", getenv("CELLA_APP_ID") ?: "?", (int)getuid(),
               (int)getpid());
        printf("hostname: %s\n", host);
        for (int i = 1; i < argc; i++)
                printf("arg %d: %s\n", i, argv[i]);
        return 0;
}
