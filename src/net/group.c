/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * App networks (group.h; docs/network.md, "App networks"): hubs, members,
 * addresses and hosts files.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <net/if.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/param.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/log.h"
#include "base/macro.h"
#include "base/strv.h"
#include "base/time-util.h"
#include "net/group.h"
#include "net/rtnl.h"

#define BRIDGE_NAME "br0"
/* Bytes of a network name (capability.c, net.group's scope: 1-32). */
#define NETWORK_NAME_MAX 32
_Static_assert(NETGROUPS_PER_APP_MAX == 8, "netgroups_join()'s message says 8");

/* The first member address of a subnet: .1 is kept for a gateway that may come. */
#define FIRST_HOST 2u

typedef struct Member {
        char *app;
        uint32_t addr;   /* host byte order */
        int hub_ifindex; /* its veth's end in the hub */
        char ifname[IFNAMSIZ];
        int64_t joined_ms; /* wall clock */
} Member;

typedef struct Network {
        char name[NETWORK_NAME_MAX + 1];
        unsigned slot;   /* its subnet's number in the range */
        int ns_fd;       /* the hub's namespace */
        int rtnl;        /* an rtnetlink socket in the hub */
        int bridge;      /* the bridge's ifindex in the hub */
        uint64_t ns_ino; /* the hub namespace's inode (what `lsns` and /proc/PID/ns name) */
        Member *members;
        size_t n_members;
        unsigned next_host; /* round-robin cursor (group.h, "Addresses") */
        unsigned veth_seq;  /* names of the hub's veth ends: v<seq> */
        int64_t created_ms;
} Network;

typedef struct HostsApp {
        char *app;
        char *hostname;
} HostsApp;

struct NetGroups {
        NetGroupsConfig c;
        uv_loop_t *loop;
        int hosts_dir_fd;
        char *hosts_dir;
        Network **nets;
        size_t n_nets;
        HostsApp *apps;
        size_t n_apps;
        NetGroupsStats st;
        bool orphan; /* freed while deletions were pending: the last one frees it */
};

static uint64_t us_since(uint64_t t0_ns)
{
        return (now_monotonic_ns() - t0_ns) / 1000;
}

static int64_t wall_ms(void)
{
        return now_realtime_us() / 1000;
}

/* ---- hosts files ------------------------------------------------------------------ */

static HostsApp *hosts_app_find(NetGroups *g, const char *app)
{
        for (size_t i = 0; i < g->n_apps; i++)
                if (strcmp(g->apps[i].app, app) == 0)
                        return &g->apps[i];
        return NULL;
}

static bool network_has(const Network *n, const char *app)
{
        for (size_t i = 0; i < n->n_members; i++)
                if (strcmp(n->members[i].app, app) == 0)
                        return true;
        return false;
}

static void format_addr(uint32_t addr, char buf[static INET_ADDRSTRLEN])
{
        struct in_addr a = {.s_addr = htonl(addr)};

        if (!inet_ntop(AF_INET, &a, buf, INET_ADDRSTRLEN))
                snprintf(buf, INET_ADDRSTRLEN, "?");
}

/*
 * Rewrites ha's hosts file in place: one pwrite from offset 0 and an ftruncate to
 * its length, on the same inode (a rename would leave the jail's bind on the old
 * one). A reader racing the write can see the old and the new lines mixed, never
 * a file without the localhost lines (they come first and never change).
 */
static int hosts_write(NetGroups *g, const HostsApp *ha)
{
        _cleanup_close_ int fd = -EBADF;
        char *text = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&text, &size);
        ssize_t k;
        int r = 0;

        if (!f)
                return -ENOMEM;
        fprintf(f, "127.0.0.1\tlocalhost\n::1\tlocalhost\n127.0.1.1\t%.64s\n", ha->hostname);
        for (size_t i = 0; i < g->n_nets; i++) {
                const Network *n = g->nets[i];

                if (!network_has(n, ha->app))
                        continue;
                fprintf(f, "# app network %s (cella: docs/network.md)\n", n->name);
                for (size_t j = 0; j < n->n_members; j++) {
                        char a[INET_ADDRSTRLEN];

                        format_addr(n->members[j].addr, a);
                        fprintf(f, "%s\t%s %s.%s\n", a, n->members[j].app, n->members[j].app,
                                n->name);
                }
        }
        if (fclose(f) != 0) {
                free(text);
                return -ENOMEM;
        }
        fd = openat(g->hosts_dir_fd, ha->app,
                    O_WRONLY | O_CREAT | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY, 0644);
        if (fd < 0)
                r = negative_errno();
        else if ((k = pwrite(fd, text, size, 0)) < 0 || (size_t)k != size)
                r = k < 0 ? negative_errno() : -EIO;
        else if (ftruncate(fd, (off_t)size) < 0)
                r = negative_errno();
        free(text);
        return r;
}

int netgroups_hosts_file(NetGroups *g, const char *app_id, const char *hostname, char **ret_path)
{
        HostsApp *ha;
        char *path;
        int r;

        if (!g || !app_id || !*app_id || strchr(app_id, '/') || app_id[0] == '.' || !hostname)
                return -EINVAL;
        ha = hosts_app_find(g, app_id);
        if (!ha) {
                HostsApp *a = reallocarray(g->apps, g->n_apps + 1, sizeof *a);

                if (!a)
                        return -ENOMEM;
                g->apps = a;
                ha = &a[g->n_apps];
                *ha = (HostsApp){.app = strdup(app_id), .hostname = strdup(hostname)};
                if (!ha->app || !ha->hostname) {
                        free(ha->app);
                        free(ha->hostname);
                        return -ENOMEM;
                }
                g->n_apps++;
        } else if (strcmp(ha->hostname, hostname) != 0) {
                char *h = strdup(hostname);

                if (!h)
                        return -ENOMEM;
                free(ha->hostname);
                ha->hostname = h;
        }
        r = hosts_write(g, ha);
        if (r < 0)
                return r;
        if (asprintf(&path, "%s/%s", g->hosts_dir, app_id) < 0)
                return -ENOMEM;
        *ret_path = path;
        return 0;
}

/* Rewrites the hosts file of every member of n (that has one: a member started
 * without a hosts file bound, see netgroups_hosts_file()). */
static void hosts_update(NetGroups *g, const Network *n, const char *also)
{
        for (size_t i = 0; i < g->n_apps; i++) {
                HostsApp *ha = &g->apps[i];
                int r;

                if (!network_has(n, ha->app) && !(also && strcmp(also, ha->app) == 0))
                        continue;
                r = hosts_write(g, ha);
                if (r < 0)
                        log_warning_errno(r, "cannot rewrite the hosts file of %s: %m", ha->app);
        }
}

/* ---- networks --------------------------------------------------------------------- */

static Network *network_find(NetGroups *g, const char *name)
{
        for (size_t i = 0; i < g->n_nets; i++)
                if (strcmp(g->nets[i]->name, name) == 0)
                        return g->nets[i];
        return NULL;
}

static unsigned slots(const NetGroups *g)
{
        return 1u << (g->c.net_prefix - g->c.range_prefix);
}

static uint32_t subnet_of(const NetGroups *g, unsigned slot)
{
        return g->c.range + (slot << (32 - g->c.net_prefix));
}

static void network_free(Network *n)
{
        if (!n)
                return;
        for (size_t i = 0; i < n->n_members; i++)
                free(n->members[i].app);
        free(n->members);
        safe_close(n->rtnl);
        safe_close(n->ns_fd);
        free(n);
}

static bool valid_name(const char *s)
{
        size_t len = s ? strlen(s) : 0;

        if (len < 1 || len > NETWORK_NAME_MAX || s[0] < 'a' || s[0] > 'z')
                return false;
        for (size_t i = 0; i < len; i++)
                if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
                      s[i] == '-'))
                        return false;
        return true;
}

/* Makes network name's hub: a namespace, a bridge up in it. */
static int network_new(NetGroups *g, const char *name, Network **ret, const char **why)
{
        uint64_t t0 = now_monotonic_ns();
        unsigned slot = 0, n_slots = slots(g);
        Network *n;
        struct stat st;
        int r;

        for (slot = 0; slot < n_slots; slot++) {
                bool used = false;

                for (size_t i = 0; i < g->n_nets && !used; i++)
                        used = g->nets[i]->slot == slot;
                if (!used)
                        break;
        }
        if (slot == n_slots) {
                *why = "every subnet of net.group.range is in use";
                return -ENOSPC;
        }
        n = calloc(1, sizeof *n);
        if (!n)
                return -ENOMEM;
        snprintf(n->name, sizeof n->name, "%s", name);
        n->slot = slot;
        n->rtnl = -EBADF;
        n->next_host = FIRST_HOST;
        n->created_ms = wall_ms();
        n->ns_fd = rtnl_netns_new();
        if (n->ns_fd < 0) {
                r = n->ns_fd;
                *why = "cannot make the hub's network namespace";
                goto fail;
        }
        if (fstat(n->ns_fd, &st) == 0)
                n->ns_ino = (uint64_t)st.st_ino;
        n->rtnl = rtnl_open_in(n->ns_fd, NULL);
        if (n->rtnl < 0) {
                r = n->rtnl;
                *why = "cannot open an rtnetlink socket in the hub";
                goto fail;
        }
        r = rtnl_bridge_new(n->rtnl, BRIDGE_NAME);
        if (r < 0) {
                *why = r == -EOPNOTSUPP ? "no bridge driver in this kernel"
                                        : "cannot make the bridge";
                goto fail;
        }
        n->bridge = r;
        r = rtnl_link_up(n->rtnl, n->bridge, 0);
        if (r < 0) {
                *why = "cannot bring the bridge up";
                goto fail;
        }
        {
                Network **a = reallocarray(g->nets, g->n_nets + 1, sizeof *a);

                if (!a) {
                        r = -ENOMEM;
                        goto fail;
                }
                g->nets = a;
                a[g->n_nets++] = n;
        }
        g->st.hubs_made++;
        g->st.last_hub_us = us_since(t0);
        *ret = n;
        return 0;
fail:
        network_free(n);
        return r;
}

static void network_remove(NetGroups *g, Network *n)
{
        for (size_t i = 0; i < g->n_nets; i++)
                if (g->nets[i] == n) {
                        memmove(&g->nets[i], &g->nets[i + 1],
                                (g->n_nets - i - 1) * sizeof *g->nets);
                        g->n_nets--;
                        break;
                }
        /* Its last fds: the kernel frees the namespace, the bridge and any veth end
         * still in it, on its own workqueue (nothing here waits for that). */
        network_free(n);
        g->st.hubs_freed++;
}

/* The next free member address of n, round-robin, or 0. */
static uint32_t address_take(NetGroups *g, Network *n)
{
        unsigned hosts = 1u << (32 - g->c.net_prefix); /* including network and broadcast */
        uint32_t base = subnet_of(g, n->slot);

        for (unsigned k = 0; k < hosts; k++) {
                unsigned h = n->next_host;
                bool used = false;

                n->next_host = n->next_host + 1 >= hosts - 1 ? FIRST_HOST : n->next_host + 1;
                if (h < FIRST_HOST || h >= hosts - 1)
                        continue;
                for (size_t i = 0; i < n->n_members && !used; i++)
                        used = n->members[i].addr == base + h;
                if (!used)
                        return base + h;
        }
        return 0;
}

static void ifname_of(const Network *n, char out[static IFNAMSIZ])
{
        if (strlen(NETGROUPS_IFNAME_PREFIX) + strlen(n->name) < IFNAMSIZ)
                snprintf(out, IFNAMSIZ, "%s%s", NETGROUPS_IFNAME_PREFIX, n->name);
        else
                snprintf(out, IFNAMSIZ, "%s%u", NETGROUPS_IFNAME_PREFIX, n->slot);
}

int netgroups_join(NetGroups *g, const char *app_id, int pidfd, const char *network,
                   const char **ret_why)
{
        _cleanup_close_ int app_rtnl = -EBADF, app_ns = -EBADF;
        const char *why = NULL, *dummy;
        uint64_t t0 = now_monotonic_ns();
        char hub_if[IFNAMSIZ];
        bool made = false;
        Network *n;
        Member m = {};
        int r, idx;

        if (!ret_why)
                ret_why = &dummy;
        *ret_why = NULL;
        if (!g || !app_id || pidfd < 0 || !valid_name(network)) {
                *ret_why = "bad network name";
                return -EINVAL;
        }
        n = network_find(g, network);
        if (n && network_has(n, app_id))
                return 0;
        {
                size_t in = 0;

                for (size_t i = 0; i < g->n_nets; i++)
                        in += network_has(g->nets[i], app_id);
                if (in >= NETGROUPS_PER_APP_MAX) {
                        *ret_why = "an app is in at most 8 app networks at once";
                        return -EMLINK;
                }
        }
        if (!n) {
                r = network_new(g, network, &n, &why);
                if (r < 0) {
                        *ret_why = why;
                        return r;
                }
                made = true;
        }
        m.addr = address_take(g, n);
        if (m.addr == 0) {
                *ret_why = "no address left in the network's subnet (net.group.prefix)";
                r = -ENOSPC;
                goto fail;
        }
        m.app = strdup(app_id);
        if (!m.app) {
                r = -ENOMEM;
                goto fail;
        }
        m.joined_ms = wall_ms();
        ifname_of(n, m.ifname);
        snprintf(hub_if, sizeof hub_if, "v%u", n->veth_seq++);

        app_rtnl = rtnl_open_in(pidfd, &app_ns);
        if (app_rtnl < 0) {
                r = app_rtnl;
                *ret_why = "cannot enter the app's network namespace";
                goto fail;
        }
        r = rtnl_veth_new(n->rtnl, hub_if, m.ifname, app_ns);
        if (r == -EEXIST) {
                /* The app's namespace still has an interface of that name: one of an
                 * earlier kernel's (an adopted app), whose hub the kernel is still
                 * tearing down on its workqueue. Only cellad makes links there (the app
                 * cannot): deleted, and made again. */
                idx = rtnl_link_index(app_rtnl, m.ifname);
                if (idx > 0) {
                        r = rtnl_link_del(app_rtnl, idx);
                        if (r >= 0 || r == -ENODEV)
                                r = rtnl_veth_new(n->rtnl, hub_if, m.ifname, app_ns);
                } else
                        r = -EEXIST;
        }
        if (r < 0) {
                *ret_why = r == -EOPNOTSUPP ? "no veth driver in this kernel"
                                            : "cannot make the veth pair";
                goto fail;
        }
        m.hub_ifindex = r;
        r = rtnl_link_up(n->rtnl, m.hub_ifindex, n->bridge);
        if (r < 0) {
                *ret_why = "cannot attach the veth to the hub's bridge";
                goto fail_link;
        }
        idx = rtnl_link_index(app_rtnl, m.ifname);
        if (idx < 0) {
                r = idx;
                *ret_why = "cannot find the app's interface";
                goto fail_link;
        }
        r = rtnl_addr_add(app_rtnl, idx, htonl(m.addr), g->c.net_prefix);
        if (r < 0) {
                *ret_why = "cannot give the app's interface its address";
                goto fail_link;
        }
        r = rtnl_link_up(app_rtnl, idx, 0);
        if (r < 0) {
                *ret_why = "cannot bring the app's interface up";
                goto fail_link;
        }
        {
                Member *a = reallocarray(n->members, n->n_members + 1, sizeof *a);

                if (!a) {
                        r = -ENOMEM;
                        goto fail_link;
                }
                n->members = a;
                a[n->n_members++] = m;
        }
        hosts_update(g, n, NULL);
        g->st.joins++;
        g->st.last_join_us = us_since(t0);
        g->st.max_join_us = MAX(g->st.max_join_us, g->st.last_join_us);
        return 0;
fail_link:
        (void)rtnl_link_del(n->rtnl, m.hub_ifindex);
fail:
        free(m.app);
        if (made && n->n_members == 0)
                network_remove(g, n);
        return r;
}

/* ---- leaving ---------------------------------------------------------------------- */

typedef struct DelWork {
        uv_work_t w;
        NetGroups *g;
        int ns_fd; /* the hub's, a dup: the hub may be freed meanwhile */
        int ifindex;
        int r;
        uint64_t us;
} DelWork;

static void del_work(uv_work_t *w)
{
        DelWork *d = (DelWork *)w /* w is its first member */;
        uint64_t t0 = now_monotonic_ns();
        int s = rtnl_open_in(d->ns_fd, NULL);

        d->r = s < 0 ? s : rtnl_link_del(s, d->ifindex);
        safe_close(s);
        d->us = us_since(t0);
}

static void del_done(uv_work_t *w, int status)
{
        DelWork *d = (DelWork *)w /* w is its first member */;
        NetGroups *g = d->g;

        safe_close(d->ns_fd);
        g->st.deletions_pending--;
        if (status == 0) {
                g->st.last_delete_us = d->us;
                g->st.max_delete_us = MAX(g->st.max_delete_us, d->us);
                /* -ENODEV: the kernel freed it with the app's namespace first. */
                if (d->r < 0 && d->r != -ENODEV && !g->orphan)
                        log_debug_errno(d->r, "cannot delete an app network interface: %m");
        }
        free(d);
        if (g->orphan && g->st.deletions_pending == 0)
                free(g);
}

/* Deletes m's veth: now (revoked), or on the threadpool. */
static void member_delete_link(NetGroups *g, Network *n, const Member *m, bool now)
{
        DelWork *d;
        uint64_t t0;
        int r;

        if (!now && g->loop) {
                d = calloc(1, sizeof *d);
                if (d) {
                        d->g = g;
                        d->ifindex = m->hub_ifindex;
                        d->ns_fd = fcntl(n->ns_fd, F_DUPFD_CLOEXEC, 3);
                        if (d->ns_fd >= 0 &&
                            uv_queue_work(g->loop, &d->w, del_work, del_done) == 0) {
                                g->st.deletions_pending++;
                                return;
                        }
                        safe_close(d->ns_fd);
                        free(d);
                }
                /* Cannot queue it: the kernel frees it with the app's namespace. */
                return;
        }
        t0 = now_monotonic_ns();
        r = rtnl_link_del(n->rtnl, m->hub_ifindex);
        g->st.last_delete_us = us_since(t0);
        g->st.max_delete_us = MAX(g->st.max_delete_us, g->st.last_delete_us);
        if (r < 0 && r != -ENODEV)
                log_warning_errno(r, "cannot delete %s's interface in network %s: %m", m->app,
                                  n->name);
}

int netgroups_leave(NetGroups *g, const char *app_id, const char *network, bool revoked)
{
        uint64_t t0 = now_monotonic_ns();
        int left = 0;

        if (!g || !app_id)
                return 0;
        for (size_t i = 0; i < g->n_nets;) {
                Network *n = g->nets[i];
                bool found = false;

                if (network && strcmp(n->name, network) != 0) {
                        i++;
                        continue;
                }
                for (size_t j = 0; j < n->n_members && !found; j++) {
                        Member m = n->members[j];

                        if (strcmp(m.app, app_id) != 0)
                                continue;
                        memmove(&n->members[j], &n->members[j + 1],
                                (n->n_members - j - 1) * sizeof *n->members);
                        n->n_members--;
                        /* The last member: freeing the hub frees the veth too. */
                        if (n->n_members > 0 || revoked)
                                member_delete_link(g, n, &m, revoked);
                        free(m.app);
                        found = true;
                }
                if (found && n->n_members == 0) {
                        network_remove(g, n); /* g->nets[i] is the next one now */
                        left++;
                        continue;
                }
                if (found) {
                        hosts_update(g, n, NULL);
                        left++;
                }
                i++;
        }
        if (left > 0) {
                HostsApp *ha = hosts_app_find(g, app_id);

                if (ha) {
                        int r = hosts_write(g, ha);

                        if (r < 0)
                                log_warning_errno(r, "cannot rewrite the hosts file of %s: %m",
                                                  app_id);
                }
                g->st.leaves += (unsigned)left;
                g->st.last_leave_us = us_since(t0);
                g->st.max_leave_us = MAX(g->st.max_leave_us, g->st.last_leave_us);
        }
        return left;
}

void netgroups_forget_app(NetGroups *g, const char *app_id)
{
        HostsApp *ha = g && app_id ? hosts_app_find(g, app_id) : NULL;

        if (!ha)
                return;
        (void)unlinkat(g->hosts_dir_fd, ha->app, 0);
        free(ha->app);
        free(ha->hostname);
        *ha = g->apps[--g->n_apps];
}

bool netgroups_is_member(NetGroups *g, const char *app_id, const char *network)
{
        Network *n = g && network ? network_find(g, network) : NULL;

        return n && network_has(n, app_id);
}

char **netgroups_of(NetGroups *g, const char *app_id)
{
        char **l = NULL;

        if (!g)
                return NULL;
        for (size_t i = 0; i < g->n_nets; i++)
                if (network_has(g->nets[i], app_id) && strv_extend(&l, g->nets[i]->name) < 0) {
                        strv_free(l);
                        return NULL;
                }
        return l;
}

/* ---- views ------------------------------------------------------------------------ */

static json_t *network_json(const NetGroups *g, const Network *n)
{
        char a[INET_ADDRSTRLEN], subnet[INET_ADDRSTRLEN + 4], ifname[IFNAMSIZ];
        json_t *members = json_array(), *o;

        format_addr(subnet_of(g, n->slot), a);
        snprintf(subnet, sizeof subnet, "%s/%u", a, g->c.net_prefix);
        ifname_of(n, ifname);
        for (size_t i = 0; members && i < n->n_members; i++) {
                const Member *m = &n->members[i];

                format_addr(m->addr, a);
                json_array_append_new(members, json_pack("{s:s, s:s, s:s, s:I}", "app", m->app,
                                                         "address", a, "interface", m->ifname,
                                                         "joined_ms", (json_int_t)m->joined_ms));
        }
        if (!members)
                return NULL;
        o = json_pack("{s:s, s:s, s:s, s:{s:I, s:s}, s:I, s:o}", "name", n->name, "subnet", subnet,
                      "interface", ifname, "hub", "netns_inode", (json_int_t)n->ns_ino, "bridge",
                      BRIDGE_NAME, "created_ms", (json_int_t)n->created_ms, "members", members);
        return o;
}

json_t *netgroups_json(NetGroups *g, const char *network)
{
        json_t *a = json_array();

        for (size_t i = 0; a && g && i < g->n_nets; i++) {
                json_t *o;

                if (network && strcmp(g->nets[i]->name, network) != 0)
                        continue;
                o = network_json(g, g->nets[i]);
                if (!o || json_array_append_new(a, o) < 0) {
                        json_decref(a);
                        return NULL;
                }
        }
        return a;
}

json_t *netgroups_app_json(NetGroups *g, const char *app_id)
{
        json_t *a = json_array();

        for (size_t i = 0; a && g && i < g->n_nets; i++) {
                const Network *n = g->nets[i];

                for (size_t j = 0; j < n->n_members; j++) {
                        char addr[INET_ADDRSTRLEN];

                        if (strcmp(n->members[j].app, app_id) != 0)
                                continue;
                        format_addr(n->members[j].addr, addr);
                        if (json_array_append_new(
                                    a, json_pack("{s:s, s:s, s:s}", "network", n->name, "address",
                                                 addr, "interface", n->members[j].ifname)) < 0) {
                                json_decref(a);
                                return NULL;
                        }
                }
        }
        return a;
}

void netgroups_stats(NetGroups *g, NetGroupsStats *ret)
{
        *ret = g ? g->st : (NetGroupsStats){};
}

/* ---- life ------------------------------------------------------------------------- */

int netgroups_new(const NetGroupsConfig *c, const char *hosts_dir, uv_loop_t *loop, NetGroups **ret)
{
        const NetGroupsConfig def = {
                .range = NETGROUPS_RANGE_DEFAULT,
                .range_prefix = NETGROUPS_RANGE_PREFIX_DEFAULT,
                .net_prefix = NETGROUPS_PREFIX_DEFAULT,
        };
        NetGroups *g;

        if (!c)
                c = &def;
        if (!hosts_dir || c->range_prefix < 8 || c->net_prefix < c->range_prefix ||
            c->net_prefix > 30 || c->net_prefix - c->range_prefix > 16)
                return -EINVAL;
        g = calloc(1, sizeof *g);
        if (!g)
                return -ENOMEM;
        g->c = *c;
        g->loop = loop;
        g->hosts_dir = strdup(hosts_dir);
        if (!g->hosts_dir) {
                free(g);
                return -ENOMEM;
        }
        if (mkdir(hosts_dir, 0755) < 0 && errno != EEXIST) {
                int r = negative_errno();

                free(g->hosts_dir);
                free(g);
                return r;
        }
        g->hosts_dir_fd = open(hosts_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
        if (g->hosts_dir_fd < 0) {
                int r = negative_errno();

                free(g->hosts_dir);
                free(g);
                return r;
        }
        *ret = g;
        return 0;
}

NetGroups *netgroups_free(NetGroups *g)
{
        if (!g)
                return NULL;
        for (size_t i = 0; i < g->n_nets; i++)
                network_free(g->nets[i]);
        free(g->nets);
        for (size_t i = 0; i < g->n_apps; i++) {
                (void)unlinkat(g->hosts_dir_fd, g->apps[i].app, 0);
                free(g->apps[i].app);
                free(g->apps[i].hostname);
        }
        free(g->apps);
        safe_close(g->hosts_dir_fd);
        free(g->hosts_dir);
        if (g->st.deletions_pending > 0) {
                *g = (NetGroups){.orphan = true, .st = g->st};
                return NULL;
        }
        free(g);
        return NULL;
}
