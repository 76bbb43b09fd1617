/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella net ls | inspect NAME: the app networks (docs/network.md, "App networks";
 * docs/cli.md "cella net") of every running kernel, asked over each kernel's control
 * socket (org.cella.NetList, docs/api.md).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>

#include "base/log.h"
#include "base/macro.h"
#include "cli/cli.h"
#include "cli/exit-codes.h"
#include "policy/manifest.h"
#include "supervisor/control.h"

static void net_usage(FILE *f)
{
        fprintf(f,
                "Usage: cella net ls [OPTIONS]\n"
                "       cella net inspect [OPTIONS] NAME\n"
                "\n"
                "Shows the app networks (docs/network.md, \"App networks\"): the apps holding\n"
                "net.group:NAME that run, each with an interface on network NAME.\n"
                "  ls        every network: its subnet and its members' addresses\n"
                "  inspect   one network: also its hub namespace, bridge, interface names, the\n"
                "            kernel's timings of joins and leaves\n"
                "\n"
                "Options:\n"
                "      --json            one JSON object (docs/cli.md)\n"
                "      --state-dir DIR   state directory (default %s)\n"
                "  -h, --help            this text\n"
                "\n"
                "Exit status: 0 shown (also when no network exists, for ls); 1 NAME is no\n"
                "network now; 2 a kernel did not answer, so its networks are missing; 240 bad\n"
                "command line; 242 the state directory's run/ cannot be read (needs root).\n",
                cli_default_state_dir());
}

/* A network name as net.group's scope spells it (capability.c): [a-z][a-z0-9_-]{0,31}. */
static bool network_name_ok(const char *s)
{
        size_t n = strlen(s);

        if (n < 1 || n > 32 || s[0] < 'a' || s[0] > 'z')
                return false;
        for (size_t i = 0; i < n; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
                      s[i] == '-'))
                        return false;
        return true;
}

/* A subnet "A.B.C.D/N" as the kernel sent it, or "?" (cli_safe_str() would mask
 * the slash). */
static const char *subnet_str(json_t *v, char *buf, size_t size)
{
        const char *s = json_string_value(v);

        if (!s || strlen(s) >= size || strspn(s, "0123456789./") != strlen(s))
                return "?";
        snprintf(buf, size, "%s", s);
        return buf;
}

static void print_members(json_t *net, bool wide)
{
        char app[MANIFEST_ID_MAX + 1], addr[64], ifname[32];
        json_t *members = json_object_get(net, "members"), *m;
        size_t i, w = 3;

        json_array_foreach(members, i, m) w =
                MAX(w, strlen(cli_safe_str(json_object_get(m, "app"), app, sizeof app)));
        if (wide)
                printf("  %-*s %-15s %s\n", (int)w, "APP", "ADDRESS", "INTERFACE");
        json_array_foreach(members, i, m)
        {
                printf("  %-*s %-15s", (int)w,
                       cli_safe_str(json_object_get(m, "app"), app, sizeof app),
                       cli_safe_str(json_object_get(m, "address"), addr, sizeof addr));
                if (wide)
                        printf(" %s", cli_safe_str(json_object_get(m, "interface"), ifname,
                                                   sizeof ifname));
                putchar('\n');
        }
}

static int print_json(json_t *nets, json_t *kernels, json_t *mute)
{
        json_t *o = json_pack("{s:O, s:O, s:O}", "networks", nets, "kernels", kernels,
                              "not_answering", mute);
        char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;

        json_decref(o);
        if (!s)
                return CELLA_EXIT_INTERNAL;
        puts(s);
        free(s);
        return 0;
}

static void print_stats(json_t *kernels)
{
        json_t *k;
        size_t i;

        json_array_foreach(kernels, i, k)
        {
                json_t *st = json_object_get(k, "stats");

                printf("kernel %" JSON_INTEGER_FORMAT ": joins %" JSON_INTEGER_FORMAT
                       " (last %" JSON_INTEGER_FORMAT " us, max %" JSON_INTEGER_FORMAT
                       " us), leaves %" JSON_INTEGER_FORMAT " (last %" JSON_INTEGER_FORMAT
                       " us), interface deletions last %" JSON_INTEGER_FORMAT
                       " us (in the background)\n",
                       json_integer_value(json_object_get(k, "kernel_pid")),
                       json_integer_value(json_object_get(st, "joins")),
                       json_integer_value(json_object_get(st, "last_join_us")),
                       json_integer_value(json_object_get(st, "max_join_us")),
                       json_integer_value(json_object_get(st, "leaves")),
                       json_integer_value(json_object_get(st, "last_leave_us")),
                       json_integer_value(json_object_get(st, "last_delete_us")));
        }
}

int cli_net(int argc, char **argv)
{
        const char *state_dir, *sub, *name = NULL;
        json_t *req = NULL, *nets = NULL, *kernels = NULL, *mute = NULL, *mute2 = NULL, *n;
        bool json = false, inspect;
        size_t i;
        int code;

        /* Options anywhere (GNU getopt permutes): the operands are SUBCOMMAND [NAME]. */
        if (!cli_parse_common_options(argc, argv, net_usage, &state_dir, &json, &code))
                return code;
        if (optind >= argc) {
                log_error("net: missing subcommand (ls, inspect); see 'cella net --help'");
                return CELLA_EXIT_USAGE;
        }
        sub = argv[optind++];
        if (strcmp(sub, "ls") != 0 && strcmp(sub, "list") != 0 && strcmp(sub, "inspect") != 0) {
                log_error("net: unknown subcommand '%s' (ls, inspect); see 'cella net --help'",
                          sub);
                return CELLA_EXIT_USAGE;
        }
        inspect = strcmp(sub, "inspect") == 0;
        if (inspect) {
                if (argc - optind != 1) {
                        log_error("net inspect: takes one network NAME; see 'cella net --help'");
                        return CELLA_EXIT_USAGE;
                }
                name = argv[optind];
                if (!network_name_ok(name)) {
                        log_error("net inspect: '%s' is no network name (1-32 bytes of a-z 0-9 _ "
                                  "-, starting with a-z: net.group's scope)",
                                  name);
                        return CELLA_EXIT_USAGE;
                }
        } else if (argc - optind != 0) {
                log_error("net ls: takes no operand; see 'cella net --help'");
                return CELLA_EXIT_USAGE;
        }

        req = name ? json_pack("{s:s}", "network", name) : json_object();
        if (!req) {
                code = CELLA_EXIT_INTERNAL;
                goto out;
        }
        code = cli_ask_kernels_all("net", state_dir, "org.cella.NetList", req, "networks",
                                   "networks", &nets, &mute);
        if (code == 0 && (inspect || json))
                code = cli_ask_kernels_all("net", state_dir, "org.cella.NetList", req, "kernels",
                                           "network figures", &kernels, &mute2);
        if (code != 0)
                goto out;
        if (!kernels)
                kernels = json_array();
        if (json)
                code = print_json(nets, kernels, mute);
        else if (!inspect) {
                if (json_array_size(nets) == 0)
                        printf("no app network (an app joins one with the net.group:NAME "
                               "right)\n");
                else
                        printf("%-32s %-18s %s\n", "NETWORK", "SUBNET", "MEMBERS");
                json_array_foreach(nets, i, n)
                {
                        char nm[40], sub_[40];

                        printf("%-32s %-18s %zu\n",
                               cli_safe_str(json_object_get(n, "name"), nm, sizeof nm),
                               subnet_str(json_object_get(n, "subnet"), sub_, sizeof sub_),
                               json_array_size(json_object_get(n, "members")));
                        print_members(n, false);
                }
        } else {
                json_array_foreach(nets, i, n)
                {
                        char nm[40], sub_[40], ifn[32];
                        json_t *hub = json_object_get(n, "hub");

                        printf("network %s (kernel %" JSON_INTEGER_FORMAT ")\n",
                               cli_safe_str(json_object_get(n, "name"), nm, sizeof nm),
                               json_integer_value(json_object_get(n, "kernel_pid")));
                        printf("  subnet      %s\n",
                               subnet_str(json_object_get(n, "subnet"), sub_, sizeof sub_));
                        printf("  interface   %s in each member's network namespace\n",
                               cli_safe_str(json_object_get(n, "interface"), ifn, sizeof ifn));
                        printf("  hub         network namespace inode %" JSON_INTEGER_FORMAT
                               ", bridge %s, no address, no route\n",
                               json_integer_value(json_object_get(hub, "netns_inode")),
                               cli_safe_str(json_object_get(hub, "bridge"), ifn, sizeof ifn));
                        printf("  members     %zu\n",
                               json_array_size(json_object_get(n, "members")));
                        print_members(n, true);
                }
                print_stats(kernels);
        }
        if (code == 0)
                code = fflush(stdout) == 0 ? 0 : CELLA_EXIT_INTERNAL;
        if (code == 0 && json_array_size(mute) > 0)
                code = CELLA_EXIT_INCOMPLETE;
        else if (code == 0 && inspect && json_array_size(nets) == 0) {
                log_error("%s is no app network now (no running app holds net.group:%s)", name,
                          name);
                code = 1;
        }
out:
        json_decref(req);
        json_decref(nets);
        json_decref(kernels);
        json_decref(mute);
        json_decref(mute2);
        return code;
}
