/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The kernel's side of the app networks (src/net/group.h; docs/network.md, "App
 * networks"): which apps are members (the net.group rights they hold now), when
 * they join (their sandbox runs) and leave (it ended, or the right was revoked),
 * their /etc/hosts, and the control API's org.cella.NetList (docs/api.md).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/macro.h"
#include "base/strv.h"
#include "net/group.h"
#include "policy/decide.h"
#include "supervisor/supervisor-internal.h"

#define NET_GROUP_RIGHT "net.group"

static bool strv_contains(char *const *l, const char *s)
{
        for (size_t i = 0; l && l[i]; i++)
                if (strcmp(l[i], s) == 0)
                        return true;
        return false;
}

bool netgroups_wanted(const Manifest *m)
{
        STRV_FOREACH (p, m->permissions)
                if (strncmp(*p, NET_GROUP_RIGHT ":", strlen(NET_GROUP_RIGHT) + 1) == 0)
                        return true;
        return false;
}

/* s's app networks, made at the first use; NULL (after a message) if they cannot be. */
static NetGroups *groups_get(Supervisor *s)
{
        _cleanup_free_ char *dir = NULL;
        NetGroupsConfig c = {}, *cp = NULL;
        int r;

        if (s->netgroups)
                return s->netgroups;
        if (s->o.net_group_range) {
                c.range = s->o.net_group_range;
                c.range_prefix = s->o.net_group_range_prefix;
                c.net_prefix = s->o.net_group_prefix;
                cp = &c;
        }
        if (asprintf(&dir, "%s/" SUPERVISOR_NET_DIR, state_path(s->state)) < 0)
                return NULL;
        r = netgroups_new(cp, dir, &s->loop, &s->netgroups);
        if (r < 0) {
                log_error_errno(r, "cannot set up the app networks (%s): %m", dir);
                return NULL;
        }
        return s->netgroups;
}

int netgroups_refuse_packed(Supervisor *s, const Manifest *m, SupervisorError *err)
{
        if (m->isolation != MANIFEST_ISOLATION_PACKED || !netgroups_wanted(m))
                return 0;
        log_error("%s cannot run: it asks for net.group, which gives an app an interface in "
                  "its own network namespace, but it is packed into the Lua host of group '%s', "
                  "whose apps share one (docs/network.md, \"App networks\"): remove \"group\" "
                  "and \"isolation\" from its manifest to give it a sandbox of its own, or the "
                  "net.group permission",
                  m->id, m->group ?: "");
        supervisor_audit(s, m->id, AUDIT_EVENT_LIFECYCLE,
                         json_pack("{s:s, s:s, s:s}", "what", "start-refused", "reason",
                                   "net.group needs a sandbox of its own (packed)", "group",
                                   m->group ?: ""));
        return supervisor_error(err, SUPERVISOR_STEP_MANIFEST, EOPNOTSUPP,
                                "net.group in a packed group");
}

int instance_net_hosts(Instance *inst, char **ret_path)
{
        const Manifest *m = inst->manifest;
        NetGroups *g;
        int r;

        *ret_path = NULL;
        if (inst->group || m->isolation == MANIFEST_ISOLATION_PACKED || !netgroups_wanted(m))
                return 0;
        g = groups_get(inst->sup);
        if (!g)
                return -EIO;
        r = netgroups_hosts_file(g, m->id, m->id, ret_path);
        if (r < 0)
                return log_error_errno(r, "cannot write the /etc/hosts of %s: %m", m->id);
        return 0;
}

/* The networks app_id holds net.group rights for now (NULL-terminated; NULL: none or
 * an error, said). */
static char **held_networks(Supervisor *s, const char *app_id)
{
        GrantCache gc = {};
        char **l = NULL;
        int r;

        if (!s->grants)
                return NULL;
        r = grant_cache_load(s->grants, app_id, &gc);
        if (r < 0) {
                log_warning_errno(r, "cannot read the grants of %s: %m", app_id);
                return NULL;
        }
        for (size_t i = 0; i < gc.n_grants; i++) {
                const CapabilityRight *p = &gc.parsed[i];

                if (!p->cap || strcmp(p->cap->name, NET_GROUP_RIGHT) != 0 || !p->scope[0] ||
                    policy_right_state(&gc, p, NULL, NULL) != 0 || strv_contains(l, p->scope))
                        continue;
                if (strv_extend(&l, p->scope) < 0) {
                        strv_free(l);
                        l = NULL;
                        break;
                }
        }
        grant_cache_clear(&gc);
        return l;
}

/* Brings inst's memberships in line with its rights: joins what it holds and is
 * not in, leaves (at once: revoked) what it is in and no longer holds. */
static void instance_net_sync(Instance *inst, int pidfd, bool starting)
{
        Supervisor *s = inst->sup;
        const Manifest *m = inst->manifest;
        _cleanup_strv_free_ char **want = NULL, **have = NULL;
        NetGroups *g;

        if (inst->group || m->isolation == MANIFEST_ISOLATION_PACKED || pidfd < 0 ||
            !netgroups_wanted(m))
                return;
        g = groups_get(s);
        if (!g)
                return;
        want = held_networks(s, m->id);
        have = netgroups_of(g, m->id);
        STRV_FOREACH (n, have) {
                if (strv_contains(want, *n))
                        continue;
                netgroups_leave(g, m->id, *n, true);
                log_info("%s left app network %s: its net.group right was revoked", m->id, *n);
                supervisor_audit(s, m->id, AUDIT_EVENT_GRANT,
                                 json_pack("{s:s, s:s, s:s}", "what", "net-group-left", "network",
                                           *n, "reason", "revoked"));
        }
        STRV_FOREACH (n, want) {
                const char *why = NULL;
                int r;

                if (strv_contains(have, *n))
                        continue;
                r = netgroups_join(g, m->id, pidfd, *n, &why);
                if (r < 0) {
                        errno = -r;
                        log_error("%s cannot join app network %s: %s: %m", m->id, *n,
                                  why ?: "error");
                        supervisor_audit(s, m->id, AUDIT_EVENT_LIFECYCLE,
                                         json_pack("{s:s, s:s, s:s, s:i}", "what",
                                                   "net-group-failed", "network", *n, "why",
                                                   why ?: "", "errno", -r));
                        continue;
                }
                supervisor_audit(s, m->id, AUDIT_EVENT_LIFECYCLE,
                                 json_pack("{s:s, s:s, s:b}", "what", "net-group-joined", "network",
                                           *n, "at_start", starting));
        }
}

void instance_net_starting(Instance *inst, int pidfd)
{
        instance_net_sync(inst, pidfd, true);
}

void instance_net_adopted(Instance *inst)
{
        const Manifest *m = inst->manifest;
        const Sandbox *sb = inst->run.sandbox;
        _cleanup_free_ char *path = NULL;
        NetGroups *g;
        int r;

        if (inst->group || m->isolation == MANIFEST_ISOLATION_PACKED || !netgroups_wanted(m) ||
            !sb || sb->pidfd < 0)
                return;
        g = groups_get(inst->sup);
        if (!g)
                return;
        /* The same file as the last kernel's (never unlinked while the app runs): the
         * app's bind shows what is written now. */
        r = netgroups_hosts_file(g, m->id, m->id, &path);
        if (r < 0)
                log_warning_errno(r, "cannot rewrite the /etc/hosts of %s: %m", m->id);
        instance_net_sync(inst, sb->pidfd, false);
}

void instance_net_stopped(Instance *inst)
{
        Supervisor *s = inst->sup;

        if (!s->netgroups || inst->group)
                return;
        (void)netgroups_leave(s->netgroups, inst->manifest->id, NULL, false);
        netgroups_forget_app(s->netgroups, inst->manifest->id);
}

void supervisor_net_grants_changed(Supervisor *s, const char *app_id)
{
        if (!s->netgroups && !app_id)
                return;
        for (size_t i = 0; i < s->n_apps; i++)
                if (!app_id || strcmp(s->apps[i]->manifest->id, app_id) == 0) {
                        Instance *inst = s->apps[i];
                        const Sandbox *sb = inst->run.sandbox;

                        if (inst->state == INSTANCE_RUNNING && sb && !sb->exited)
                                instance_net_sync(inst, sb->pidfd, false);
                }
}

/* org.cella.NetList (docs/api.md): {"networks": [...], "kernels": [{"stats": {...}}]};
 * parameters.network (optional) names one network: only it (an empty array when there is none). */
static int method_net_list(ControlCall *call, json_t *params, void *userdata)
{
        Supervisor *s = userdata;
        json_t *v = params ? json_object_get(params, "network") : NULL, *nets;
        NetGroupsStats st;

        if (v && !json_is_string(v))
                return control_reply_invalid_parameter(call, "network",
                                                       "expected a network's name (a string)");
        nets = netgroups_json(s->netgroups, v ? json_string_value(v) : NULL);
        if (!nets)
                return -ENOMEM;
        netgroups_stats(s->netgroups, &st);
        return control_reply(
                call,
                json_pack("{s:o, s:[{s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, "
                          "s:i}}]}",
                          "networks", nets, "kernels", "stats", "joins", (json_int_t)st.joins,
                          "leaves", (json_int_t)st.leaves, "hubs_made", (json_int_t)st.hubs_made,
                          "hubs_freed", (json_int_t)st.hubs_freed, "last_join_us",
                          (json_int_t)st.last_join_us, "max_join_us", (json_int_t)st.max_join_us,
                          "last_hub_us", (json_int_t)st.last_hub_us, "last_leave_us",
                          (json_int_t)st.last_leave_us, "max_leave_us", (json_int_t)st.max_leave_us,
                          "last_delete_us", (json_int_t)st.last_delete_us, "max_delete_us",
                          (json_int_t)st.max_delete_us, "deletions_pending",
                          (int)st.deletions_pending));
}

const ControlMethod supervisor_net_methods[SUPERVISOR_NET_METHODS] = {
        {"org.cella.NetList", CONTROL_ACCESS_READ, method_net_list},
};
