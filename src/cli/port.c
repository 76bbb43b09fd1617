/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella port APP add HOST:APP[/udp] [--address ADDR] | rm HOST[/udp] | ls: an app's
 * port forwards at runtime, through cellad's org.cella.PortAdd, PortRemove and
 * PortList (docs/cli.md "cella port", docs/network.md "Port forwarding").
 *
 * Exit status as the app commands' (app-op.c): 0 done; 1 refused or failed (no
 * such app, it does not run, the right is not granted, the port is in use); 3 no
 * cellad; 240 bad command line; 242 not allowed.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/macro.h"
#include "cli/cli.h"
#include "cli/daemon-client.h"
#include "cli/exit-codes.h"
#include "policy/manifest.h"

enum {
        ARG_ADDRESS = CLI_ARG_OWN,
};

static void usage(FILE *f)
{
        fprintf(f,
                "Usage: cella port [OPTIONS] APP add HOST:APP[/udp]\n"
                "       cella port [OPTIONS] APP rm HOST[/udp]\n"
                "       cella port [OPTIONS] APP ls\n"
                "\n"
                "Forwards a port of the host into a running app's network namespace (to\n"
                "127.0.0.1:APP there), removes a forward, or lists them (docs/network.md,\n"
                "\"Port forwarding\"). The app must hold net.listen:HOST (cella grant APP\n"
                "net.listen:HOST). A forward added here ends when the app stops; those of\n"
                "its manifest's \"ports\" open at each start.\n"
                "\n"
                "Options:\n"
                "      --address ADDR    add: listen on this host address only (numeric\n"
                "                        IPv4 or IPv6; default: every address, as docker\n"
                "                        and podman's -p)\n"
                "      --json            print the reply (or the error) as one JSON object\n"
                "      --state-dir DIR   state directory (default %s)\n"
                "  -h, --help            this text\n"
                "\n"
                "Needs cellad. Exit status: 0 done; 1 no such app, it does not run, the\n"
                "right is not granted, the port is in use, no such forward; 3 no cellad runs\n"
                "for the state directory; 240 bad command line; 242 not allowed.\n",
                cli_default_state_dir());
}

/* A port 1..65535 at the start of s (decimal, no sign, no leading 0): its value and
 * *ret_end after it; 0 if there is none. */
static unsigned port_prefix(const char *s, const char **ret_end)
{
        unsigned v = 0;
        size_t i = 0;

        if (s[0] < '1' || s[0] > '9')
                return 0;
        for (; s[i] >= '0' && s[i] <= '9' && i < 6; i++)
                v = v * 10 + (unsigned)(s[i] - '0');
        if (i > 5 || v > 65535)
                return 0;
        *ret_end = s + i;
        return v;
}

/* "HOST:APP[/udp|/tcp]" (with_app) or "HOST[/udp|/tcp]" into *host, *app, *udp.
 * Returns 0, or -EINVAL. */
static int parse_forward(const char *s, bool with_app, unsigned *host, unsigned *app, bool *udp)
{
        const char *p = s;

        *host = port_prefix(s, &p);
        if (!*host)
                return -EINVAL;
        if (with_app) {
                if (*p != ':')
                        return -EINVAL;
                *app = port_prefix(p + 1, &p);
                if (!*app)
                        return -EINVAL;
        }
        *udp = strcmp(p, "/udp") == 0;
        if (!*udp && *p && strcmp(p, "/tcp") != 0)
                return -EINVAL;
        return 0;
}

static int keep_reply(json_t *params, bool continues, void *ud)
{
        json_t **out = ud;

        json_decref(*out);
        *out = json_incref(params);
        return 0;
}

static void print_json(json_t *v)
{
        char *s = json_dumps(v, JSON_COMPACT);

        if (s)
                puts(s);
        free(s);
}

static void print_table(json_t *reply)
{
        json_t *ports = json_object_get(reply, "ports"), *p;
        size_t i;

        if (json_array_size(ports) == 0) {
                char id[MANIFEST_ID_MAX + 1];

                cli_safe_str(json_object_get(reply, "app"), id, sizeof id);
                printf("%s has no port forwards\n", id);
                return;
        }
        printf("%-8s %-6s %-5s %-16s %-12s %-9s %-6s %s\n", "HOST", "APP", "PROTO", "ADDRESS",
               "STATE", "ORIGIN", "CONNS", "WHY");
        json_array_foreach(ports, i, p)
        {
                char proto[8], addr[64], state[16], origin[16], why[256];

                cli_safe_str(json_object_get(p, "proto"), proto, sizeof proto);
                cli_safe_str(json_object_get(p, "address"), addr, sizeof addr);
                cli_safe_str(json_object_get(p, "state"), state, sizeof state);
                cli_safe_str(json_object_get(p, "origin"), origin, sizeof origin);
                cli_safe_str(json_object_get(p, "why"), why, sizeof why);
                printf("%-8" JSON_INTEGER_FORMAT " %-6" JSON_INTEGER_FORMAT
                       " %-5s %-16s %-12s %-9s %-6" JSON_INTEGER_FORMAT " %s\n",
                       json_integer_value(json_object_get(p, "host")),
                       json_integer_value(json_object_get(p, "app")), proto, addr, state, origin,
                       json_integer_value(json_object_get(p, "connections")), why);
        }
}

int cli_port(int argc, char **argv)
{
        static const struct option options[] = {
                {"state-dir", required_argument, NULL, CLI_ARG_STATE_DIR},
                {"json", no_argument, NULL, CLI_ARG_JSON},
                {"address", required_argument, NULL, ARG_ADDRESS},
                {"help", no_argument, NULL, 'h'},
                {},
        };
        const char *state_dir = cli_default_state_dir(), *app, *verb, *address = NULL, *method;
        json_t *params = NULL, *reply = NULL;
        unsigned host = 0, app_port = 0;
        bool json = false, udp = false;
        int c, code, nargs;

        while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
                if (c == ARG_ADDRESS) {
                        if (manifest_port_address_invalid_reason(optarg, strlen(optarg))) {
                                log_error("port: --address: '%s' is not a numeric IPv4 or IPv6 "
                                          "address",
                                          optarg);
                                return CELLA_EXIT_USAGE;
                        }
                        address = optarg;
                        continue;
                }
                if ((code = cli_common_option(c, optarg, &state_dir, &json, usage)) >= 0)
                        return code;
        }
        nargs = argc - optind;
        if (nargs < 2) {
                log_error("port: expected APP add|rm|ls ...; see 'cella port --help'");
                return CELLA_EXIT_USAGE;
        }
        app = argv[optind];
        verb = argv[optind + 1];
        if ((code = cli_app_id_arg(app)) != 0)
                return code;
        if (strcmp(verb, "add") == 0) {
                if (nargs != 3 ||
                    parse_forward(argv[optind + 2], true, &host, &app_port, &udp) < 0) {
                        log_error("port: add: expected HOST:APP or HOST:APP/udp, ports 1-65535 "
                                  "(cella port %s add 8080:80)",
                                  app);
                        return CELLA_EXIT_USAGE;
                }
                method = "org.cella.PortAdd";
                params = json_pack("{s:s, s:i, s:i, s:s}", "app", app, "host", (int)host, "port",
                                   (int)app_port, "proto", udp ? "udp" : "tcp");
                if (params && address)
                        json_object_set_new(params, "address", json_string(address));
        } else if (strcmp(verb, "rm") == 0) {
                if (nargs != 3 || parse_forward(argv[optind + 2], false, &host, NULL, &udp) < 0) {
                        log_error("port: rm: expected HOST or HOST/udp, a port 1-65535 (cella "
                                  "port %s rm 8080)",
                                  app);
                        return CELLA_EXIT_USAGE;
                }
                method = "org.cella.PortRemove";
                params = json_pack("{s:s, s:i, s:s}", "app", app, "host", (int)host, "proto",
                                   udp ? "udp" : "tcp");
        } else if (strcmp(verb, "ls") == 0) {
                if (nargs != 2) {
                        log_error("port: ls takes no more arguments");
                        return CELLA_EXIT_USAGE;
                }
                method = "org.cella.PortList";
                params = json_pack("{s:s}", "app", app);
        } else {
                log_error("port: '%s' is not add, rm or ls; see 'cella port --help'", verb);
                return CELLA_EXIT_USAGE;
        }
        if (address && strcmp(verb, "add") != 0) {
                json_decref(params);
                log_error("port: --address goes with add only");
                return CELLA_EXIT_USAGE;
        }
        if (!params)
                return CELLA_EXIT_INTERNAL;
        code = cli_daemon_call("port", state_dir, method, params, false, json, keep_reply, &reply);
        if (code == 0) {
                if (json)
                        print_json(reply ?: json_object());
                else if (strcmp(verb, "ls") == 0)
                        print_table(reply);
                else if (strcmp(verb, "add") == 0) {
                        char addr[64];

                        cli_safe_str(json_object_get(reply, "address"), addr, sizeof addr);
                        printf("%s: host port %u/%s (address %s) forwarded to its port %u\n", app,
                               host, udp ? "udp" : "tcp", addr, app_port);
                } else
                        printf("%s: host port %u/%s no longer forwarded\n", app, host,
                               udp ? "udp" : "tcp");
        }
        json_decref(reply);
        if (code == 0 && fflush(stdout) != 0)
                code = CELLA_EXIT_INTERNAL;
        return code;
}
