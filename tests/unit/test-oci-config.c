/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * cella-oci's config.json parser (src/oci/config.c), its mapping onto a SandboxSpec
 * under the two policies (src/oci/spec.c) and a config's own seccomp filter
 * (src/oci/seccomp-oci.c): podman's real config (tests/data/oci/podman-config.json,
 * written by `podman --runtime runc run --rootfs`, its container ids shortened),
 * hostile and malformed configs each refused with the JSON path in the message,
 * namespace files that are not namespaces, and the compat filter loaded in a child.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "base/strv.h"
#include "oci/config.h"
#include "oci/spec.h"
#include "sandbox/cgroup.h"
#include "sandbox/seccomp.h"
#include "skip.h"
#include "test-util.h"

#define ERR_LEN 512

static char bundle[] = "/tmp/test-oci-config-XXXXXX";
static char rootfs[sizeof bundle + 16];

/* Every namespace but user and cgroup, which policy cella adds itself. */
#define NS_ALL                                                                                     \
        "\"namespaces\": [{\"type\": \"mount\"}, {\"type\": \"pid\"}, {\"type\": \"network\"}, "   \
        "{\"type\": \"ipc\"}, {\"type\": \"uts\"}]"

static void setup(void)
{
        char bin[sizeof rootfs + 8];

        strcpy(bundle, "/tmp/test-oci-config-XXXXXX");
        ck_assert_ptr_nonnull(mkdtemp(bundle));
        snprintf(rootfs, sizeof rootfs, "%s/rootfs", bundle);
        ck_assert_int_eq(mkdir(rootfs, 0755), 0);
        snprintf(bin, sizeof bin, "%s/bin", rootfs);
        ck_assert_int_eq(mkdir(bin, 0755), 0);
}

static void teardown(void)
{
        rm_tree(bundle);
}

/* The podman fixture's text, with each of the NULL-terminated pairs (from, to)
 * replaced everywhere. */
static char *podman_config(const char *const *subst)
{
        _cleanup_free_ char *text = NULL;
        size_t size = 0;

        ck_assert_int_eq(read_file_at(AT_FDCWD,
                                      CELLA_SOURCE_ROOT "/tests/data/oci/podman-config.json",
                                      OCI_CONFIG_MAX_BYTES, &text, &size),
                         0);
        for (; subst && subst[0]; subst += 2) {
                char *at;

                while ((at = strstr(text, subst[0]))) {
                        char *out = NULL;

                        ck_assert_int_ge(asprintf(&out, "%.*s%s%s", (int)(at - text), text,
                                                  subst[1], at + strlen(subst[0])),
                                         0);
                        free(text);
                        text = out;
                        if (strstr(subst[1], subst[0]))
                                break;
                }
        }
        return TAKE_PTR(text);
}

static OciConfig *parse_ok(const char *text)
{
        char err[ERR_LEN];
        OciConfig *c = NULL;
        int r = oci_config_parse(text, strlen(text), &c, err, sizeof err);

        ck_assert_msg(r == 0, "parse: %d %s", r, err);
        return c;
}

static bool has_note(char **notes, const char *s)
{
        STRV_FOREACH (n, notes)
                if (strstr(*n, s))
                        return true;
        return false;
}

static const char *const podman_root[] = {"\"/tmp/rfs\"", "\"ROOT\"", NULL};

/* The podman config with its root pointed at this test's rootfs (and more pairs). */
static OciConfig *podman_parsed(const char *const *more)
{
        const char *subst[16] = {"\"/tmp/rfs\"", NULL};
        _cleanup_free_ char *quoted = NULL, *text = NULL;
        size_t n = 2;

        ck_assert_int_ge(asprintf(&quoted, "\"%s\"", rootfs), 0);
        subst[1] = quoted;
        for (; more && more[0] && n < 14; more += 2) {
                subst[n++] = more[0];
                subst[n++] = more[1];
        }
        subst[n] = NULL;
        text = podman_config(subst);
        return parse_ok(text);
}

START_TEST(test_podman_parse)
{
        _cleanup_free_ char *text = podman_config(podman_root);
        OciConfig *c = parse_ok(text);
        uint64_t podman_caps = 0;
        const int caps[] = {CAP_CHOWN,   CAP_DAC_OVERRIDE,     CAP_FOWNER,    CAP_FSETID,
                            CAP_KILL,    CAP_NET_BIND_SERVICE, CAP_SETFCAP,   CAP_SETGID,
                            CAP_SETPCAP, CAP_SETUID,           CAP_SYS_CHROOT};

        for (size_t i = 0; i < ELEMENTSOF(caps); i++)
                podman_caps |= UINT64_C(1) << caps[i];
        ck_assert_str_eq(c->oci_version, "1.0.2-dev");
        ck_assert_str_eq(c->root_path, "ROOT");
        ck_assert(!c->root_readonly);
        ck_assert(c->process_set);
        ck_assert_str_eq(c->process.args[0], "/bin/echo");
        ck_assert_str_eq(c->process.args[1], "hi");
        ck_assert_ptr_null(c->process.args[2]);
        ck_assert_uint_eq(strv_length(c->process.env), 3);
        ck_assert_str_eq(c->process.env[2], "HOSTNAME=c0ffee01");
        ck_assert_str_eq(c->process.cwd, "/");
        ck_assert_uint_eq(c->process.user.uid, 0);
        ck_assert_uint_eq(c->process.user.gid, 0);
        ck_assert(c->process.user.umask_set);
        ck_assert_uint_eq(c->process.user.umask, 022);
        ck_assert(c->process.caps.set);
        ck_assert_uint_eq(c->process.caps.bounding, podman_caps);
        ck_assert_uint_eq(c->process.caps.effective, podman_caps);
        ck_assert_uint_eq(c->process.caps.permitted, podman_caps);
        ck_assert_uint_eq(c->process.caps.inheritable, 0);
        ck_assert_uint_eq(c->process.n_rlimits, 2);
        ck_assert_int_eq(c->process.rlimits[0].resource, RLIMIT_NOFILE);
        ck_assert_uint_eq(c->process.rlimits[0].soft, 1024);
        ck_assert_int_eq(c->process.rlimits[1].resource, RLIMIT_NPROC);
        ck_assert(!c->process.no_new_privileges);
        ck_assert_str_eq(c->hostname, "c0ffee01");

        ck_assert_uint_eq(c->n_mounts, 10);
        ck_assert_str_eq(c->mounts[0].destination, "/proc");
        ck_assert_str_eq(c->mounts[0].type, "proc");
        ck_assert_str_eq(c->mounts[1].options[3], "mode=755");
        ck_assert_str_eq(c->mounts[5].source,
                         "/run/containers/storage/overlay-containers/c0ffee01/userdata/hosts");
        ck_assert_str_eq(c->mounts[9].destination, "/sys/fs/cgroup");

        ck_assert_uint_eq(c->n_annotations, 8);
        ck_assert_str_eq(oci_config_annotation(c, "io.container.manager"), "libpod");
        ck_assert_ptr_null(oci_config_annotation(c, OCI_POLICY_ANNOTATION));

        ck_assert_uint_eq(c->n_namespaces, 5);
        ck_assert_int_eq(c->namespaces[0].type, CLONE_NEWPID);
        ck_assert_int_eq(c->namespaces[1].type, CLONE_NEWNET);
        ck_assert_int_eq(c->namespaces[4].type, CLONE_NEWNS);
        ck_assert_ptr_null(c->namespaces[1].path);
        ck_assert_uint_eq(c->n_sysctls, 1);
        ck_assert_str_eq(c->sysctl_keys[0], "net.ipv4.ping_group_range");
        ck_assert_str_eq(c->sysctl_values[0], "0 0");
        ck_assert_int_eq(c->resources.pids_limit, 2048);
        ck_assert_int_eq(c->resources.memory_limit, 0);
        /* podman's device rule: deny everything (runc's defaults are added after). */
        ck_assert(strv_length(c->resources.ignored) == 0);
        ck_assert(c->resources.devices_set);
        ck_assert_uint_eq(c->resources.n_devices, 1);
        ck_assert(!c->resources.devices[0].allow);
        ck_assert_int_eq(c->resources.devices[0].type, 'a');
        ck_assert_int_eq(c->resources.devices[0].major, -1);
        ck_assert_str_eq(c->resources.devices[0].access, "rwm");
        ck_assert_str_eq(c->cgroups_path, "/libpod_parent/libpod-c0ffee01");

        ck_assert_ptr_nonnull(c->seccomp);
        ck_assert_int_eq(c->seccomp->default_action, OCI_SCMP_ERRNO);
        ck_assert_uint_eq(c->seccomp->default_errno_ret, 38);
        ck_assert_uint_eq(strv_length(c->seccomp->architectures), 3);
        ck_assert_uint_eq(c->seccomp->n_rules, 22);
        ck_assert_int_eq(c->seccomp->rules[0].action, OCI_SCMP_ERRNO);
        ck_assert_uint_eq(c->seccomp->rules[0].errno_ret, 1);
        ck_assert_int_eq(c->seccomp->rules[2].args[0].op, 4 /* SCMP_CMP_EQ */);
        ck_assert_uint_eq(c->seccomp->rules[6].args[0].value, 4294967295u);

        ck_assert_uint_eq(strv_length(c->masked_paths), 11);
        ck_assert_str_eq(c->masked_paths[1], "/proc/kcore");
        ck_assert_uint_eq(strv_length(c->readonly_paths), 6);
        oci_config_free(c);
}
END_TEST

static SandboxMount *find_mount(OciSpecBuild *b, const char *target)
{
        for (size_t i = 0; i < b->spec.rootfs->n_mounts; i++)
                if (strcmp(b->spec.rootfs->mounts[i].target, target) == 0)
                        return (SandboxMount *)&b->spec.rootfs->mounts[i];
        ck_abort_msg("no mount on %s", target);
        return NULL;
}

static bool ns_new(const OciSpecBuild *b, int type)
{
        for (size_t i = 0; i < b->spec.n_namespaces; i++)
                if (b->spec.namespaces[i].type == type)
                        return b->spec.namespaces[i].fd < 0;
        return false;
}

/* podman's config under policy cella: cella's walls, the config's jail. */
START_TEST(test_podman_cella)
{
        OciConfig *c = podman_parsed(NULL);
        OciSpecBuild b;
        SeccompProgram *builtin = NULL;
        char err[ERR_LEN];
        char *real = realpath(rootfs, NULL);
        SandboxMount *m;

        ck_assert_int_eq(oci_spec_build(c, bundle, &b, err, sizeof err), 0);
        ck_assert_int_eq(b.policy, OCI_POLICY_CELLA);
        ck_assert_str_eq(b.spec.rootfs->path, real);
        free(real);

        /* Mounts: options into flags, propagation and data. */
        ck_assert_uint_eq(b.spec.rootfs->n_mounts, 10);
        m = find_mount(&b, "/proc");
        ck_assert_str_eq(m->type, "proc");
        ck_assert_uint_eq(m->flags, MS_NOSUID | MS_NOEXEC | MS_NODEV);
        ck_assert_ptr_null(m->data);
        m = find_mount(&b, "/dev");
        ck_assert_uint_eq(m->flags, MS_NOSUID | MS_NOEXEC | MS_STRICTATIME);
        ck_assert_str_eq(m->data, "mode=755,size=65536k");
        m = find_mount(&b, "/dev/pts");
        ck_assert_str_eq(m->data, "newinstance,ptmxmode=0666,mode=0620,gid=5");
        m = find_mount(&b, "/sys");
        ck_assert_uint_eq(m->flags, MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RDONLY);
        m = find_mount(&b, "/etc/hosts");
        ck_assert_str_eq(m->type, "bind");
        ck_assert_uint_eq(m->flags, MS_BIND);
        ck_assert_uint_eq(m->propagation, MS_PRIVATE | MS_REC);
        ck_assert_str_eq(m->source,
                         "/run/containers/storage/overlay-containers/c0ffee01/userdata/hosts");
        m = find_mount(&b, "/sys/fs/cgroup");
        ck_assert_str_eq(m->type, "cgroup");
        ck_assert_uint_eq(m->flags, MS_NOSUID | MS_NOEXEC | MS_NODEV | MS_RELATIME | MS_RDONLY);
        ck_assert_str_eq(b.spec.rootfs->masked_paths[0], "/proc/acpi");
        ck_assert_str_eq(b.spec.rootfs->readonly_paths[4], "/proc/sys");
        ck_assert_str_eq(b.spec.rootfs->sysctls[0], "net.ipv4.ping_group_range=0 0");
        ck_assert_ptr_null(b.spec.rootfs->sysctls[1]);

        /* Every namespace new, the user and cgroup ones added with a note. */
        ck_assert_uint_eq(b.spec.n_namespaces, 7);
        ck_assert(ns_new(&b, CLONE_NEWUSER) && ns_new(&b, CLONE_NEWCGROUP) &&
                  ns_new(&b, CLONE_NEWNET) && ns_new(&b, CLONE_NEWPID));
        ck_assert(has_note(b.notes, "no user namespace: a new one with one mapped id"));
        ck_assert(has_note(b.notes, "no cgroup namespace"));
        ck_assert_ptr_null(b.spec.uid_map);
        ck_assert_uint_eq(b.spec.n_uid_map, 0);
        ck_assert(b.spec.ids_set);
        ck_assert_uint_eq(b.spec.app_uid, 0);

        /* No capability, no_new_privs, cella's allowlist. */
        ck_assert_ptr_null(b.spec.caps);
        ck_assert(!b.spec.allow_new_privs);
        ck_assert(has_note(b.notes, "process.capabilities: CAP_CHOWN, CAP_DAC_OVERRIDE"));
        ck_assert(has_note(b.notes, "CAP_SYS_CHROOT, CAP_SETFCAP dropped (policy cella)"));
        ck_assert(has_note(b.notes, "linux.seccomp: replaced by cella's allowlist"));
        ck_assert_int_eq(seccomp_program_builtin(&(SeccompOptions){0}, &builtin), 0);
        ck_assert_ptr_nonnull(b.spec.seccomp);
        ck_assert(!b.spec.seccomp->notify);
        ck_assert_uint_eq(b.spec.seccomp->prog.len, builtin->prog.len);
        ck_assert(memcmp(b.spec.seccomp->prog.filter, builtin->prog.filter,
                         builtin->prog.len * sizeof(struct sock_filter)) == 0);
        seccomp_program_free(builtin);

        /* The process. */
        ck_assert_str_eq(b.spec.exec_path, "/bin/echo");
        ck_assert_str_eq(b.spec.argv[1], "hi");
        ck_assert_str_eq(b.spec.envp[0], "TERM=xterm");
        ck_assert_str_eq(b.spec.workdir, "/");
        ck_assert_str_eq(b.spec.hostname, "c0ffee01");
        ck_assert_uint_eq(b.spec.n_rlimits, 2);
        ck_assert_int_eq(b.spec.rlimits[1].resource, RLIMIT_NPROC);
        ck_assert(b.spec.umask_set);
        ck_assert_int_eq(b.spec.umask, 022);
        ck_assert_uint_eq(b.spec.limits.pids_max, 2048);
        ck_assert_uint_eq(b.spec.limits.memory_max, 0);
        ck_assert(!has_note(b.notes, "linux.resources.devices"));
        ck_assert_ptr_eq(b.spec.limits.resources, &b.resources);
        ck_assert(b.resources.devices_set && b.resources.n_devices == 1);
        ck_assert(b.spec.detached && b.spec.survive_parent);
        ck_assert_int_eq(b.spec.start_fifo_fd, -1);

        /* The one mapped id, once the caller has picked the host's: never host root. */
        ck_assert_int_eq(oci_spec_build_set_host_ids(&b, 0, 0), -EINVAL);
        ck_assert_int_eq(oci_spec_build_set_host_ids(&b, 123456, 0), -EINVAL);
        ck_assert_ptr_null(b.spec.uid_map);
        ck_assert_int_eq(oci_spec_build_set_host_ids(&b, 123456, 123457), 0);
        ck_assert_uint_eq(b.spec.host_uid, 123456);
        ck_assert_uint_eq(b.spec.n_uid_map, 1);
        ck_assert_uint_eq(b.spec.uid_map[0].inside, 0);
        ck_assert_uint_eq(b.spec.uid_map[0].host, 123456);
        ck_assert_uint_eq(b.spec.uid_map[0].count, 1);
        ck_assert_uint_eq(b.spec.n_gid_map, 1);
        ck_assert_uint_eq(b.spec.gid_map[0].host, 123457);
        oci_spec_build_done(&b);
        ck_assert_ptr_null(b.notes);
        oci_config_free(c);
}
END_TEST

/* The same config under policy compat: its namespaces, capabilities and filter. */
START_TEST(test_podman_compat)
{
        const char *const compat[] = {"\"annotations\": {",
                                      "\"annotations\": {\"io.cella.policy\": \"compat\",", NULL};
        OciConfig *c = podman_parsed(compat);
        SeccompProgram *builtin = NULL;
        OciSpecBuild b;
        char err[ERR_LEN];

        ck_assert_int_eq(oci_spec_build(c, bundle, &b, err, sizeof err), 0);
        ck_assert_int_eq(b.policy, OCI_POLICY_COMPAT);
        /* Exactly the five namespaces: user and cgroup shared with the host. */
        ck_assert_uint_eq(b.spec.n_namespaces, 5);
        ck_assert(!ns_new(&b, CLONE_NEWUSER) && !ns_new(&b, CLONE_NEWCGROUP));
        ck_assert(ns_new(&b, CLONE_NEWPID) && ns_new(&b, CLONE_NEWNS));
        ck_assert_ptr_nonnull(b.spec.caps);
        ck_assert_uint_eq(b.spec.caps->bounding, c->process.caps.bounding);
        ck_assert_uint_eq(b.spec.caps->effective, c->process.caps.effective);
        ck_assert(b.spec.allow_new_privs);
        ck_assert(!has_note(b.notes, "dropped"));
        ck_assert_int_eq(seccomp_program_builtin(&(SeccompOptions){0}, &builtin), 0);
        ck_assert_ptr_nonnull(b.spec.seccomp);
        ck_assert(b.spec.seccomp->prog.len != builtin->prog.len ||
                  memcmp(b.spec.seccomp->prog.filter, builtin->prog.filter,
                         builtin->prog.len * sizeof(struct sock_filter)) != 0);
        seccomp_program_free(builtin);
        ck_assert_uint_eq(b.spec.limits.pids_max, 2048);
        /* Host ids under compat: no map of cella's (host ids here, no user namespace). */
        ck_assert_int_eq(oci_spec_build_set_host_ids(&b, 0, 0), 0);
        ck_assert_ptr_null(b.spec.uid_map);
        ck_assert_uint_eq(b.spec.n_uid_map, 0);
        oci_spec_build_done(&b);
        oci_config_free(c);
}
END_TEST

/* A minimal valid config with JSON fragments spliced in at the top level and in
 * process (its own user left out when process_extra has one; linux with NS_ALL added
 * when extra has no linux). */
static char *minimal(const char *extra, const char *process_extra)
{
        bool user = !process_extra || !strstr(process_extra, "\"user\"");
        bool linux_o = !extra || !strstr(extra, "\"linux\"");
        char *s = NULL;

        ck_assert_int_ge(
                asprintf(&s,
                         "{\"ociVersion\": \"1.2.0\", \"root\": {\"path\": \"rootfs\"},"
                         " \"process\": {\"args\": [\"/bin/sh\"], \"cwd\": \"/\"%s%s%s}%s%s%s}",
                         user ? ", \"user\": {\"uid\": 1000, \"gid\": 1000}" : "",
                         process_extra ? ", " : "", process_extra ? process_extra : "",
                         extra ? ", " : "", extra ? extra : "",
                         linux_o ? ", \"linux\": {" NS_ALL "}" : ""),
                0);
        return s;
}

/* A JSON array of n copies of item. */
static char *repeat(const char *key, const char *item, size_t n)
{
        size_t len = strlen(key) + 8 + n * (strlen(item) + 1);
        char *s = malloc(len), *o = s;

        ck_assert_ptr_nonnull(s);
        o += sprintf(o, "\"%s\": [", key);
        for (size_t i = 0; i < n; i++)
                o += sprintf(o, "%s%s", i ? "," : "", item);
        strcpy(o, "]");
        return s;
}

typedef struct Bad {
        const char *top;     /* fragment at the top level */
        const char *process; /* fragment in process */
        int r;
        const char *message;
} Bad;

static const Bad bad_configs[] = {
        {NULL, "\"terminal\": \"yes\"", -EINVAL,
         "config.json: process.terminal: must be a boolean, not a string"},
        {NULL, "\"rlimits\": [{\"type\": \"RLIMIT_FOO\", \"soft\": 1, \"hard\": 1}]", -EINVAL,
         "config.json: process.rlimits[0].type: unknown rlimit \"RLIMIT_FOO\""},
        {NULL,
         "\"rlimits\": [{\"type\": \"RLIMIT_CORE\", \"soft\": 0, \"hard\": 0}, {\"type\": "
         "\"RLIMIT_NOFILE\", \"soft\": \"1024\", \"hard\": 1}]",
         -EINVAL, "config.json: process.rlimits[1].soft: must be an integer, not a string"},
        {NULL, "\"rlimits\": [{\"type\": \"RLIMIT_NOFILE\", \"soft\": 10, \"hard\": 1}]", -EINVAL,
         "process.rlimits[0]: soft limit 10 above hard limit 1"},
        {NULL,
         "\"rlimits\": [{\"type\": \"RLIMIT_NOFILE\", \"soft\": 1, \"hard\": 1},"
         " {\"type\": \"RLIMIT_NOFILE\", \"soft\": 1, \"hard\": 1}]",
         -EINVAL, "process.rlimits[1].type: RLIMIT_NOFILE given twice"},
        {NULL, "\"capabilities\": {\"bounding\": [\"CAP_CHOWN\", \"CAP_FOO\"]}", -EINVAL,
         "config.json: process.capabilities.bounding[1]: unknown capability \"CAP_FOO\""},
        {NULL, "\"capabilities\": {\"ambient\": [1]}", -EINVAL,
         "process.capabilities.ambient[0]: must be a string, not an integer"},
        {NULL, "\"oomScoreAdj\": 1001", -EINVAL,
         "process.oomScoreAdj: 1001 is out of range (-1000 to 1000)"},
        {NULL, "\"user\": {\"uid\": 4294967295, \"gid\": 0}", -EINVAL,
         "process.user.uid: 4294967295 is out of range"},
        {NULL, "\"user\": {\"uid\": -1, \"gid\": 0}", -EINVAL, "process.user.uid: -1 is out"},
        {NULL, "\"user\": {\"uid\": 1.5, \"gid\": 0}", -EINVAL,
         "process.user.uid: must be an integer, not a real number"},
        {NULL, "\"user\": {\"uid\": 0, \"gid\": 0, \"umask\": 512}", -EINVAL,
         "process.user.umask: 512 is out of range (0 to 511)"},
        {NULL, "\"env\": [\"NOEQUALS\"]", -EINVAL, "process.env[0]: \"NOEQUALS\" is not KEY=value"},
        {NULL, "\"env\": [\"A=\\u0000b\"]", -EINVAL, "config.json: line 1"},
        {NULL, "\"env\": [\"A=\\u001b[31m\"], \"cwd\": \"x\\u001b\"", -EINVAL, "duplicate"},
        {"\"hostname\": \"a\", \"hostname\": \"b\"", NULL, -EINVAL, "duplicate object key"},
        {"\"mounts\": [{\"destination\": \"/x\", \"options\": [\"ro\", 5]}]", NULL, -EINVAL,
         "config.json: mounts[0].options[1]: must be a string, not an integer"},
        {"\"mounts\": [{\"type\": \"tmpfs\"}]", NULL, -EINVAL,
         "config.json: mounts[0].destination: missing (required)"},
        {"\"linux\": {\"namespaces\": [{\"type\": \"time\"}]}", NULL, -EINVAL,
         "linux.namespaces[0].type: time namespaces are not supported"},
        {"\"linux\": {\"namespaces\": [{\"type\": \"pid\"}, {\"type\": \"pid\"}]}", NULL, -EINVAL,
         "linux.namespaces[1].type: pid given twice"},
        {"\"linux\": {\"namespaces\": [{\"type\": \"bogus\"}]}", NULL, -EINVAL,
         "linux.namespaces[0].type: unknown namespace type \"bogus\""},
        {"\"linux\": {\"namespaces\": [{\"type\": \"network\", \"path\": \"netns\"}]}", NULL,
         -EINVAL, "linux.namespaces[0].path: \"netns\" is not an absolute path"},
        {"\"linux\": {\"uidMappings\": [{\"containerID\": 0, \"hostID\": 4294967295, "
         "\"size\": 2}]}",
         NULL, -EINVAL, "linux.uidMappings[0]: range runs past id 4294967295"},
        {"\"linux\": {\"uidMappings\": [{\"containerID\": 0, \"hostID\": 1000, \"size\": 0}]}",
         NULL, -EINVAL, "linux.uidMappings[0].size: 0 is out of range"},
        {"\"linux\": {\"seccomp\": {\"defaultAction\": \"SCMP_ACT_NOPE\"}}", NULL, -EINVAL,
         "linux.seccomp.defaultAction: unknown seccomp action \"SCMP_ACT_NOPE\""},
        {"\"linux\": {\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": "
         "[{\"names\": [\"read\"], \"action\": \"SCMP_ACT_ERRNO\", \"args\": [{\"index\": 0, "
         "\"value\": 1, \"op\": \"SCMP_CMP_SIMILAR\"}]}]}}",
         NULL, -EINVAL,
         "linux.seccomp.syscalls[0].args[0].op: unknown seccomp operator \"SCMP_CMP_SIMILAR\""},
        {"\"linux\": {\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\", \"syscalls\": "
         "[{\"names\": [\"read\"], \"action\": \"SCMP_ACT_ERRNO\", \"args\": [{\"index\": 6, "
         "\"value\": 1, \"op\": \"SCMP_CMP_EQ\"}]}]}}",
         NULL, -EINVAL, "linux.seccomp.syscalls[0].args[0].index: 6 is out of range (0 to 5)"},
        {"\"linux\": {\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\", \"architectures\": "
         "[\"SCMP_ARCH_VAX\"]}}",
         NULL, -EINVAL, "linux.seccomp.architectures[0]: unknown architecture \"SCMP_ARCH_VAX\""},
        {"\"linux\": {\"devices\": [{\"path\": \"/dev/x\", \"type\": \"c\", \"major\": 4096, "
         "\"minor\": 0}]}",
         NULL, -EINVAL, "linux.devices[0].major: 4096 is out of range (0 to 4095)"},
        {"\"linux\": {\"devices\": [{\"path\": \"/dev/x\", \"type\": \"c\"}]}", NULL, -EINVAL,
         "linux.devices[0].major: missing (required)"},
        {"\"linux\": {\"devices\": [{\"path\": \"/dev/x\", \"type\": \"q\", \"major\": 1, "
         "\"minor\": 1}]}",
         NULL, -EINVAL, "linux.devices[0].type: unknown device type \"q\""},
        {"\"linux\": {\"sysctl\": {\"net/../../kernel/x\": \"1\"}}", NULL, -EINVAL,
         "linux.sysctl[\"net/../../kernel/x\"]: not a sysctl name"},
        {"\"linux\": {\"sysctl\": {\"kernel.shmmax=1\": \"1\"}}", NULL, -EINVAL,
         "not a sysctl name"},
        {"\"linux\": {\"sysctl\": {\"kernel.shmmax\": 1}}", NULL, -EINVAL,
         "linux.sysctl[\"kernel.shmmax\"]: must be a string, not an integer"},
        {"\"linux\": {\"maskedPaths\": [\"proc/kcore\"]}", NULL, -EINVAL,
         "linux.maskedPaths[0]: \"proc/kcore\" is not an absolute path"},
        {"\"linux\": {\"rootfsPropagation\": \"sideways\"}", NULL, -EINVAL,
         "linux.rootfsPropagation: unknown propagation \"sideways\""},
        {"\"linux\": {\"resources\": {\"memory\": {\"limit\": -2}}}", NULL, -EINVAL,
         "linux.resources.memory.limit: -2 is out of range"},
        {"\"linux\": {\"resources\": {\"pids\": {\"limit\": \"10\"}}}", NULL, -EINVAL,
         "linux.resources.pids.limit: must be an integer, not a string"},
        {"\"linux\": {\"personality\": {\"domain\": \"BSD\"}}", NULL, -EINVAL,
         "linux.personality.domain: unknown domain \"BSD\""},
        {"\"linux\": []", NULL, -EINVAL, "config.json: linux: must be an object, not an array"},
        {"\"hooks\": {\"prestart\": [{\"path\": \"hook\"}]}", NULL, -EINVAL,
         "hooks.prestart[0].path: \"hook\" is not an absolute path"},
        {"\"hooks\": {\"poststop\": [{\"path\": \"/bin/true\", \"timeout\": 0}]}", NULL, -EINVAL,
         "hooks.poststop[0].timeout: 0 is out of range"},
        {"\"annotations\": {\"k\": 1}", NULL, -EINVAL,
         "annotations[\"k\"]: must be a string, not an integer"},
        /* A terminal escape in a key or a value comes back escaped. */
        {"\"annotations\": {\"\\u001b[2J\": 1}", NULL, -EINVAL,
         "config.json: annotations[\"\\x1b[2J\"]: must be a string"},
        {"\"linux\": {\"rootfsPropagation\": \"\\u009b31m\"}", NULL, -EINVAL,
         "linux.rootfsPropagation: unknown propagation \"\\xc2\\x9b31m\""},
};

START_TEST(test_bad_configs)
{
        for (size_t i = 0; i < ELEMENTSOF(bad_configs); i++) {
                const Bad *t = &bad_configs[i];
                _cleanup_free_ char *text = minimal(t->top, t->process);
                char err[ERR_LEN];
                OciConfig *c = NULL;
                int r = oci_config_parse(text, strlen(text), &c, err, sizeof err);

                ck_assert_msg(r == t->r, "case %zu: r %d, want %d (%s)", i, r, t->r, err);
                ck_assert_ptr_null(c);
                ck_assert_msg(strstr(err, t->message), "case %zu: \"%s\" lacks \"%s\"", i, err,
                              t->message);
                for (const char *e = err; *e; e++)
                        ck_assert_msg((unsigned char)*e >= 0x20 && (unsigned char)*e < 0x7f,
                                      "case %zu: byte 0x%02x in the message", i, (unsigned char)*e);
        }
}
END_TEST

/* Required fields, wrong top-level shapes and versions. */
START_TEST(test_required)
{
        const struct {
                const char *json;
                const char *message;
        } cases[] = {
                {"[]", "config.json: the top level must be an object"},
                {"{}", "config.json: ociVersion: missing (required)"},
                {"{\"ociVersion\": 1}", "config.json: ociVersion: must be a string"},
                {"{\"ociVersion\": \"2.0.0\"}", "ociVersion: \"2.0.0\" not supported"},
                {"{\"ociVersion\": \"1.0.0\", \"root\": {}}", "root.path: missing (required)"},
                {"{\"ociVersion\": \"1.0.0\", \"process\": {\"cwd\": \"/\"}}",
                 "config.json: process.args: missing (required)"},
                {"{\"ociVersion\": \"1.0.0\", \"process\": {\"args\": [], \"cwd\": \"/\"}}",
                 "process.args: empty"},
                {"{\"ociVersion\": \"1.0.0\", \"process\": {\"args\": [\"/bin/sh\"]}}",
                 "config.json: process.cwd: missing (required)"},
                {"{\"ociVersion\": \"1.0.0\", \"process\": {\"args\": [\"/bin/sh\"], "
                 "\"cwd\": \"tmp\"}}",
                 "config.json: process.cwd: \"tmp\" is not an absolute path"},
                {"{\"ociVersion\": \"1.0.0\"", "config.json: line 1"},
                {"", "config.json: line"},
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                char err[ERR_LEN];
                OciConfig *c = NULL;
                int r = oci_config_parse(cases[i].json, strlen(cases[i].json), &c, err, sizeof err);

                ck_assert_msg(r == -EINVAL, "case %zu: %d", i, r);
                ck_assert_msg(strstr(err, cases[i].message), "case %zu: \"%s\" lacks \"%s\"", i,
                              err, cases[i].message);
        }
}
END_TEST

/* Sizes: arrays over OCI_MAX_ITEMS, texts over OCI_CONFIG_MAX_BYTES, nesting bombs. */
START_TEST(test_bounds)
{
        char err[ERR_LEN];
        OciConfig *c = NULL;
        _cleanup_free_ char *mounts =
                repeat("mounts", "{\"destination\": \"/a\"}", OCI_MAX_ITEMS + 1);
        _cleanup_free_ char *text = minimal(mounts, NULL);
        _cleanup_free_ char *ok_mounts =
                repeat("mounts", "{\"destination\": \"/a\"}", OCI_MAX_ITEMS);
        _cleanup_free_ char *ok_text = minimal(ok_mounts, NULL);
        _cleanup_free_ char *big = NULL, *deep = NULL, *deep_text = NULL;
        size_t n;

        ck_assert_int_eq(oci_config_parse(text, strlen(text), &c, err, sizeof err), -E2BIG);
        ck_assert_msg(strstr(err, "config.json: mounts: more than 4096 entries"), "%s", err);
        c = parse_ok(ok_text);
        ck_assert_uint_eq(c->n_mounts, OCI_MAX_ITEMS);
        c = oci_config_free(c);

        /* The text's size is checked before it is read. */
        big = malloc(OCI_CONFIG_MAX_BYTES + 1);
        ck_assert_ptr_nonnull(big);
        memset(big, ' ', OCI_CONFIG_MAX_BYTES + 1);
        ck_assert_int_eq(oci_config_parse(big, OCI_CONFIG_MAX_BYTES + 1, &c, err, sizeof err),
                         -E2BIG);
        ck_assert_msg(strstr(err, "more than 4194304"), "%s", err);

        /* 2 million values in an unknown field: refused before jansson builds them. */
        {
                size_t zeros = (OCI_CONFIG_MAX_BYTES - 1000) / 2;
                char *wide = malloc(2 * zeros + 16), *o = wide;
                _cleanup_free_ char *wide_text = NULL;

                ck_assert_ptr_nonnull(wide);
                o += sprintf(o, "\"x\": [");
                for (size_t i = 0; i < zeros; i++) {
                        *o++ = '0';
                        *o++ = ',';
                }
                strcpy(o - 1, "]");
                wide_text = minimal(wide, NULL);
                free(wide);
                ck_assert_int_eq(
                        oci_config_parse(wide_text, strlen(wide_text), &c, err, sizeof err),
                        -E2BIG);
                ck_assert_msg(strstr(err, "config.json: more than 65536 JSON values"), "%s", err);
        }

        /* 10000 nested arrays (fewer values than OCI_MAX_VALUES) in an unknown field:
         * jansson stops at its depth bound (2048). */
        n = 10000;
        deep = malloc(2 * n + 16);
        ck_assert_ptr_nonnull(deep);
        strcpy(deep, "\"x\": ");
        memset(deep + 5, '[', n);
        memset(deep + 5 + n, ']', n);
        deep[5 + 2 * n] = 0;
        deep_text = minimal(deep, NULL);
        ck_assert_int_eq(oci_config_parse(deep_text, strlen(deep_text), &c, err, sizeof err),
                         -EINVAL);
        ck_assert_msg(strstr(err, "depth"), "%s", err);

        /* Too many groups, too many id mappings, too many seccomp conditions. */
        {
                _cleanup_free_ char *maps = repeat(
                        "uidMappings", "{\"containerID\": 0, \"hostID\": 1, \"size\": 1}", 341);
                _cleanup_free_ char *linux_o = NULL, *t = NULL;

                ck_assert_int_ge(asprintf(&linux_o, "\"linux\": {%s}", maps), 0);
                t = minimal(linux_o, NULL);
                ck_assert_int_eq(oci_config_parse(t, strlen(t), &c, err, sizeof err), -E2BIG);
                ck_assert_msg(strstr(err, "linux.uidMappings: more than 340 mappings"), "%s", err);
        }
}
END_TEST

/* Integers above INT64_MAX: taken in the spec's uint64 fields (RLIM_INFINITY, seccomp
 * values), out of range elsewhere, refused past UINT64_MAX. */
START_TEST(test_big_integers)
{
        _cleanup_free_ char *ok = minimal(
                "\"linux\": {" NS_ALL ", \"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\", "
                "\"syscalls\": [{\"names\": [\"getppid\"], \"action\": \"SCMP_ACT_ERRNO\", "
                "\"args\": [{\"index\": 0, \"value\": 18446744073709551615, \"valueTwo\": "
                "9223372036854775808, \"op\": \"SCMP_CMP_MASKED_EQ\"}]}]}}",
                "\"rlimits\": [{\"type\": \"RLIMIT_CORE\", \"soft\": 1024, \"hard\": "
                "18446744073709551615}, {\"type\": \"RLIMIT_NOFILE\", \"soft\": "
                "18446744073709551615, "
                "\"hard\": 18446744073709551615}], \"env\": [\"N=18446744073709551615\"]");
        const struct {
                const char *process;
                const char *message;
        } bad[] = {
                {"\"user\": {\"uid\": 18446744073709551615, \"gid\": 0}",
                 "config.json: process.user.uid: 18446744073709551615 is out of range (0 to "
                 "4294967294)"},
                {"\"rlimits\": [{\"type\": \"RLIMIT_CORE\", \"soft\": 18446744073709551615, "
                 "\"hard\": 1}]",
                 "process.rlimits[0]: soft limit 18446744073709551615 above hard limit 1"},
                {"\"rlimits\": [{\"type\": \"RLIMIT_CORE\", \"soft\": 1, \"hard\": "
                 "18446744073709551616}]",
                 "too big integer"},
                {"\"rlimits\": [{\"type\": \"RLIMIT_CORE\", \"soft\": 1, \"hard\": "
                 "-9223372036854775809}]",
                 "too big negative integer"},
                {"\"rlimits\": [{\"type\": \"RLIMIT_CORE\", \"soft\": 1, \"hard\": "
                 "\"\\u0001u64:x\"}]",
                 "process.rlimits[0].hard: must be an integer, not a string"},
        };
        OciConfig *c = parse_ok(ok);
        char err[ERR_LEN];

        ck_assert_uint_eq(c->process.rlimits[0].soft, 1024);
        ck_assert_uint_eq(c->process.rlimits[0].hard, UINT64_MAX);
        ck_assert_uint_eq(c->process.rlimits[1].soft, UINT64_MAX);
        ck_assert_str_eq(c->process.env[0], "N=18446744073709551615");
        ck_assert_uint_eq(c->seccomp->rules[0].args[0].value, UINT64_MAX);
        ck_assert_uint_eq(c->seccomp->rules[0].args[0].value_two, UINT64_C(1) << 63);
        oci_config_free(c);

        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                _cleanup_free_ char *text = minimal(NULL, bad[i].process);

                c = NULL;
                ck_assert_int_eq(oci_config_parse(text, strlen(text), &c, err, sizeof err),
                                 -EINVAL);
                ck_assert_msg(strstr(err, bad[i].message), "case %zu: %s", i, err);
        }
}
END_TEST

/* Fields cella reads but does not apply are noted; null counts as absent; unknown
 * fields are ignored. */
START_TEST(test_notes_and_nulls)
{
        _cleanup_free_ char *text = minimal(
                "\"linux\": {" NS_ALL
                ", \"intelRdt\": {\"closID\": \"x\"}, \"seccomp\": null, \"resources\": "
                "{\"blockIO\": {\"weight\": 10}, \"memory\": {\"limit\": 1048576, \"swappiness\": "
                "10}, \"cpu\": {\"shares\": 1024, \"quota\": 50000, \"period\": 100000}}}, "
                "\"futureField\": {\"a\": [1, 2]}, \"mounts\": null",
                "\"ioPriority\": {\"class\": \"IOPRIO_CLASS_IDLE\"}, \"env\": null, "
                "\"capabilities\": {\"bounding\": [\"CAP_CHOWN\"]}");
        OciConfig *c = parse_ok(text);
        OciSpecBuild b;
        char err[ERR_LEN];

        ck_assert(has_note(c->notes, "linux.intelRdt: not applied"));
        ck_assert(has_note(c->notes, "process.ioPriority: not applied"));
        ck_assert_ptr_null(c->seccomp);
        ck_assert_ptr_null(c->mounts);
        ck_assert_ptr_null(c->process.env);
        ck_assert_int_eq(c->resources.memory_limit, 1048576);
        ck_assert_uint_eq(c->resources.cpu_shares, 1024);
        ck_assert(strv_length(c->resources.ignored) == 0);
        ck_assert_uint_eq(c->resources.blkio_weight, 10);
        ck_assert(c->resources.swappiness_set && c->resources.swappiness == 10);

        ck_assert_int_eq(oci_spec_build(c, bundle, &b, err, sizeof err), 0);
        ck_assert_uint_eq(b.spec.limits.memory_max, 1048576);
        /* crun: weight = 1 + ((shares - 2) * 9999) / 262142; 1024 shares: 39. */
        ck_assert_uint_eq(b.spec.limits.cpu_weight, 39);
        ck_assert_uint_eq(b.spec.limits.cpu_quota_us, 50000);
        ck_assert_uint_eq(b.spec.limits.cpu_period_us, 100000);
        /* Applied now (CgroupResources), v1 cpu.shares exact. */
        ck_assert(!has_note(b.notes, "linux.resources.blockIO"));
        ck_assert(!has_note(b.notes, "linux.resources.memory.swappiness"));
        ck_assert_uint_eq(b.resources.blkio_weight, 10);
        ck_assert_uint_eq(b.resources.cpu_shares, 1024);
        ck_assert(b.resources.swappiness_set && b.resources.swappiness == 10);
        ck_assert(has_note(b.notes, "linux.intelRdt: not applied"));
        ck_assert(has_note(b.notes, "process.capabilities: CAP_CHOWN dropped"));
        ck_assert(!has_note(b.notes, "linux.seccomp"));
        /* env null: an empty environment, not the caller's. */
        ck_assert_ptr_nonnull(b.spec.envp);
        ck_assert_ptr_null(b.spec.envp[0]);
        oci_spec_build_done(&b);
        oci_config_free(c);
}
END_TEST

/* Policy cella refuses a config that shares a namespace with the host; compat runs it,
 * but for the mount and pid namespaces, which the sandbox library needs new. */
START_TEST(test_cella_refuses_host_namespaces)
{
#define NO_NET                                                                                     \
        "\"linux\": {\"namespaces\": [{\"type\": \"mount\"}, {\"type\": \"pid\"}, {\"type\": "     \
        "\"ipc\"}, {\"type\": \"uts\"}]}"
#define COMPAT "\"annotations\": {\"io.cella.policy\": \"compat\"}, "
        const struct {
                const char *frag;
                const char *message;
        } cases[] = {
                {NO_NET, "config.json: linux.namespaces: no network namespace: sharing the host's "
                         "is refused under policy cella"},
                {COMPAT NO_NET, NULL},
                {COMPAT "\"linux\": {\"namespaces\": [{\"type\": \"mount\"}]}",
                 "config.json: linux.namespaces: no pid namespace: cella-oci needs a new one "
                 "under any policy (the sandbox's init is its pid 1)"},
                {COMPAT "\"linux\": {\"namespaces\": [{\"type\": \"pid\"}, {\"type\": \"mount\", "
                        "\"path\": \"/proc/self/ns/mnt\"}]}",
                 "linux.namespaces: joining a mount namespace is not supported under any policy"},
        };
        char err[ERR_LEN];
        OciSpecBuild b;

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *text = minimal(cases[i].frag, NULL);
                OciConfig *c = parse_ok(text);
                int r = oci_spec_build(c, bundle, &b, err, sizeof err);

                if (cases[i].message) {
                        ck_assert_msg(r == -EINVAL, "case %zu: %d", i, r);
                        ck_assert_msg(strstr(err, cases[i].message), "case %zu: %s", i, err);
                        ck_assert_ptr_null(b.notes);
                } else {
                        ck_assert_msg(r == 0, "%s", err);
                        ck_assert_uint_eq(b.spec.n_namespaces, 4);
                        ck_assert(!ns_new(&b, CLONE_NEWNET));
                        ck_assert(ns_new(&b, CLONE_NEWPID));
                        oci_spec_build_done(&b);
                }
                oci_config_free(c);
        }
#undef NO_NET
#undef COMPAT
}
END_TEST

/* A namespace path must name a namespace file of its type; under cella not the host's. */
START_TEST(test_namespace_paths)
{
        char regular[sizeof bundle + 16], fifo[sizeof bundle + 16], err[ERR_LEN];
        const struct {
                const char *type, *path;
                bool compat;
                int r;
                const char *message;
        } cases[] = {
                {"network", regular, false, -EINVAL, "is not a namespace file (nsfs)"},
                {"network", regular, true, -EINVAL, "is not a namespace file (nsfs)"},
                /* Neither is opened for reading: a FIFO would block, a device could act. */
                {"network", fifo, true, -EINVAL, "is not a namespace file (nsfs)"},
                {"ipc", "/dev/null", true, -EINVAL, "is not a namespace file (nsfs)"},
                {"uts", "/proc/self/ns", true, -EINVAL, "is not a namespace file (nsfs)"},
                {"network", "/proc/self/ns/ipc", true, -EINVAL, "is not a network namespace"},
                {"network", "/nonexistent/netns", true, -ENOENT, "No such file"},
                {"network", "/proc/self/ns/net", false, -EINVAL,
                 "is the host's network namespace: sharing it is refused under policy cella"},
                {"pid", "/proc/self/ns/pid", false, -EINVAL,
                 "joining a pid namespace is refused under policy cella"},
                {"network", "/proc/self/ns/net", true, 0, NULL},
        };

        snprintf(regular, sizeof regular, "%s/netns", bundle);
        put_file(bundle, "netns", "not a namespace\n", 0644);
        snprintf(fifo, sizeof fifo, "%s/fifo", bundle);
        ck_assert_int_eq(mkfifo(fifo, 0600), 0);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *frag = NULL, *text = NULL;
                OciSpecBuild b;
                OciConfig *c;
                int r;

                ck_assert_int_ge(asprintf(&frag,
                                          "%s\"linux\": {\"namespaces\": [{\"type\": \"%s\", "
                                          "\"path\": \"%s\"}, {\"type\": \"mount\"}, {\"type\": "
                                          "\"pid\"}, {\"type\": \"ipc\"}, {\"type\": \"uts\"}, "
                                          "{\"type\": \"network\"}]}",
                                          cases[i].compat
                                                  ? "\"annotations\": {\"io.cella.policy\": "
                                                    "\"compat\"}, "
                                                  : "",
                                          cases[i].type, cases[i].path),
                                 0);
                /* The second entry of the same type is dropped: keep each type once. */
                {
                        char dup[64];
                        char *at;

                        snprintf(dup, sizeof dup, ", {\"type\": \"%s\"}", cases[i].type);
                        at = strstr(frag, dup);
                        ck_assert_ptr_nonnull(at);
                        memmove(at, at + strlen(dup), strlen(at + strlen(dup)) + 1);
                }
                text = minimal(frag, NULL);
                c = parse_ok(text);
                r = oci_spec_build(c, bundle, &b, err, sizeof err);
                ck_assert_msg(r == cases[i].r, "case %zu: %d %s", i, r, err);
                if (r < 0)
                        ck_assert_msg(strstr(err, cases[i].message), "case %zu: %s", i, err);
                else {
                        bool joined = false;

                        for (size_t k = 0; k < b.spec.n_namespaces; k++)
                                if (b.spec.namespaces[k].type == CLONE_NEWNET) {
                                        ck_assert_int_ge(b.spec.namespaces[k].fd, 0);
                                        joined = true;
                                }
                        ck_assert(joined);
                        oci_spec_build_done(&b);
                }
                oci_config_free(c);
        }
}
END_TEST

/* root.path: relative to the bundle, a symlink followed, missing or a file refused. */
START_TEST(test_root_path)
{
        char link[sizeof bundle + 16], err[ERR_LEN];
        _cleanup_free_ char *real = realpath(rootfs, NULL);
        const struct {
                const char *root;
                int r;
                const char *message;
        } cases[] = {
                {"rootfs", 0, NULL},
                {"link", 0, NULL},
                {"missing", -ENOENT, "config.json: root.path: "},
                {"file", -EINVAL, "is not a directory"},
        };

        snprintf(link, sizeof link, "%s/link", bundle);
        ck_assert_int_eq(symlink("rootfs", link), 0);
        put_file(bundle, "file", "", 0644);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *text = NULL;
                OciSpecBuild b;
                OciConfig *c;
                int r;

                ck_assert_int_ge(asprintf(&text,
                                          "{\"ociVersion\": \"1.0.0\", \"root\": {\"path\": "
                                          "\"%s\", \"readonly\": true}, \"process\": {\"args\": "
                                          "[\"/bin/sh\"], \"cwd\": \"/\"}, \"linux\": {" NS_ALL
                                          "}}",
                                          cases[i].root),
                                 0);
                c = parse_ok(text);
                r = oci_spec_build(c, bundle, &b, err, sizeof err);
                ck_assert_msg(r == cases[i].r, "case %zu: %d %s", i, r, err);
                if (r == 0) {
                        ck_assert_str_eq(b.spec.rootfs->path, real);
                        ck_assert(b.spec.rootfs->readonly);
                        oci_spec_build_done(&b);
                } else
                        ck_assert_msg(strstr(err, cases[i].message), "case %zu: %s", i, err);
                oci_config_free(c);
        }
}
END_TEST

/* process.args[0]: absolute as given, relative to cwd, or found in the root's PATH. */
START_TEST(test_exec_path)
{
        const struct {
                const char *arg0, *env, *want;
                int r;
        } cases[] = {
                {"/bin/echo", NULL, "/bin/echo", 0},
                {"./run", NULL, "/app/run", 0},
                {"sub/run", NULL, "/app/sub/run", 0},
                {"tool", "\"PATH=/usr/bin:/bin\"", "/bin/tool", 0},
                {"tool", NULL, "/bin/tool", 0},           /* the default PATH */
                {"data", "\"PATH=/bin\"", NULL, -ENOENT}, /* not executable */
                {"nope", "\"PATH=/bin\"", NULL, -ENOENT},
                {"escape", "\"PATH=/bin\"", "/bin/escape", 0}, /* symlink resolved in the root */
                {"outside", "\"PATH=/bin\"", NULL, -ENOENT},   /* to the host's /usr/bin/env */
                /* Not in the root, but /opt/bin is under a mount's: assumed, with a note. */
                {"mounted", "\"PATH=/bin:/opt/bin:/srv\"", "/opt/bin/mounted", 0},
                {"mounted", "\"PATH=/srv/x:/bin\"", NULL, -ENOENT}, /* /srv/x: no mount */
                {"mounted", "\"PATH=/optx/bin\"", NULL, -ENOENT},   /* /opt is no prefix of /optx */
        };
        char err[ERR_LEN], path[512], bin[sizeof rootfs + 8];

        snprintf(bin, sizeof bin, "%s/bin", rootfs);
        put_file(bin, "tool", "#!/bin/sh\n", 0755);
        put_file(bin, "data", "", 0644);
        /* An absolute symlink: resolved inside the root (RESOLVE_IN_ROOT), to /bin/tool. */
        snprintf(path, sizeof path, "%s/bin/escape", rootfs);
        ck_assert_int_eq(symlink("/bin/tool", path), 0);
        /* The host has /usr/bin/env, the root has not: resolved in the root, not found. */
        snprintf(path, sizeof path, "%s/bin/outside", rootfs);
        ck_assert_int_eq(symlink("/usr/bin/env", path), 0);
        ck_assert_int_eq(access("/usr/bin/env", X_OK), 0);
        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *text = NULL;
                OciSpecBuild b;
                OciConfig *c;
                int r;

                ck_assert_int_ge(asprintf(&text,
                                          "{\"ociVersion\": \"1.0.0\", \"root\": {\"path\": "
                                          "\"rootfs\"}, \"process\": {\"args\": [\"%s\"], "
                                          "\"cwd\": \"/app\", \"env\": [%s]}, \"mounts\": "
                                          "[{\"destination\": \"/opt/\", \"type\": \"bind\", "
                                          "\"source\": \"/usr/bin\"}], \"linux\": {" NS_ALL "}}",
                                          cases[i].arg0, cases[i].env ? cases[i].env : ""),
                                 0);
                c = parse_ok(text);
                r = oci_spec_build(c, bundle, &b, err, sizeof err);
                ck_assert_msg(r == cases[i].r, "case %zu: %d %s", i, r, err);
                if (r == 0) {
                        ck_assert_str_eq(b.spec.exec_path, cases[i].want);
                        ck_assert(has_note(b.notes, "is not in the root file system") ==
                                  (strcmp(cases[i].arg0, "mounted") == 0));
                        ck_assert_str_eq(b.spec.argv[0], cases[i].arg0);
                        oci_spec_build_done(&b);
                } else
                        ck_assert_msg(strstr(err, "process.args[0]: \"") &&
                                              strstr(err, "executable file not found"),
                                      "%s", err);
                oci_config_free(c);
        }
}
END_TEST

/* Mount options: refused, ignored with a note, and flags cleared by their opposite. */
START_TEST(test_mount_options)
{
        const struct {
                const char *mount;
                int r;
                const char *message;
        } cases[] = {
                {"{\"destination\": \"/x\", \"type\": \"tmpfs\", \"options\": [\"remount\"]}",
                 -EINVAL, "mounts[0]: option \"remount\""},
                {"{\"destination\": \"/x\", \"source\": \"/tmp\", \"options\": [\"rbind\", "
                 "\"idmap\"]}",
                 -EINVAL, "mounts[0]: option \"idmap\": id-mapped mounts are not supported"},
                {"{\"destination\": \"/x\", \"source\": \"/tmp\", \"options\": [\"rbind\", "
                 "\"rro\"]}",
                 -EINVAL, "option \"rro\": recursive mount attributes are not supported"},
                {"{\"destination\": \"/x\", \"type\": \"bind\"}", -EINVAL,
                 "mounts[0]: a bind mount needs a source"},
                {"{\"destination\": \"/x\", \"type\": \"tmpfs\", \"options\": [\"a,b\"]}", -EINVAL,
                 "holds a comma"},
                {"{\"destination\": \"x\", \"type\": \"tmpfs\", \"options\": [\"tmpcopyup\", "
                 "\"ro\", \"rw\", \"nosuid\", \"suid\", \"noexec\", \"size=1m\"]}",
                 0, "mounts[0].options: \"tmpcopyup\" ignored"},
                {"{\"destination\": \"/x\", \"source\": \"data\", \"options\": [\"rbind\", "
                 "\"ro\", \"rslave\", \"mode=755\"]}",
                 0, "a bind mount takes no data"},
        };
        char err[ERR_LEN];

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                _cleanup_free_ char *frag = NULL, *text = NULL;
                OciSpecBuild b;
                OciConfig *c;
                int r;

                ck_assert_int_ge(asprintf(&frag, "\"mounts\": [%s]", cases[i].mount), 0);
                text = minimal(frag, NULL);
                c = parse_ok(text);
                r = oci_spec_build(c, bundle, &b, err, sizeof err);
                ck_assert_msg(r == cases[i].r, "case %zu: %d %s", i, r, err);
                if (r < 0) {
                        ck_assert_msg(strstr(err, cases[i].message), "case %zu: %s", i, err);
                } else {
                        const SandboxMount *m = &b.spec.rootfs->mounts[0];

                        ck_assert(has_note(b.notes, cases[i].message));
                        if (i == 5) {
                                ck_assert_str_eq(m->target, "/x");
                                ck_assert_str_eq(m->type, "tmpfs");
                                ck_assert_uint_eq(m->flags, MS_NOEXEC);
                                ck_assert_str_eq(m->data, "size=1m");
                        } else {
                                char want[512];

                                snprintf(want, sizeof want, "%s/data", bundle);
                                ck_assert_str_eq(m->type, "bind");
                                ck_assert_str_eq(m->source, want);
                                ck_assert_uint_eq(m->flags, MS_BIND | MS_REC | MS_RDONLY);
                                ck_assert_uint_eq(m->propagation, MS_SLAVE | MS_REC);
                                ck_assert_ptr_null(m->data);
                        }
                        oci_spec_build_done(&b);
                }
                oci_config_free(c);
        }
}
END_TEST

/* Devices: a disk refused under cella, kept under compat; the defaults made anyway. */
START_TEST(test_devices)
{
        const char *devs =
                "\"linux\": {" NS_ALL ", \"devices\": [{\"path\": \"/dev/null\", \"type\": "
                "\"c\", \"major\": 1, \"minor\": 3}, {\"path\": \"/dev/fifo\", "
                "\"type\": \"p\"}, {\"path\": \"/dev/sda\", \"type\": \"b\", "
                "\"major\": 8, \"minor\": 0, \"fileMode\": 432}]}";
        _cleanup_free_ char *cella = minimal(devs, NULL), *compat = NULL, *frag = NULL;
        _cleanup_free_ char *wrong = minimal("\"linux\": {\"devices\": [{\"path\": "
                                             "\"/dev/null\", \"type\": \"b\", \"major\": 8, "
                                             "\"minor\": 0}]}",
                                             NULL);
        char err[ERR_LEN];
        OciSpecBuild b;
        OciConfig *c;

        c = parse_ok(cella);
        ck_assert_int_eq(oci_spec_build(c, bundle, &b, err, sizeof err), -EINVAL);
        ck_assert_msg(strstr(err, "config.json: linux.devices[2]: /dev/sda (b 8:0): device nodes "
                                  "other than the default ones are refused under policy cella"),
                      "%s", err);
        oci_config_free(c);

        ck_assert_int_ge(
                asprintf(&frag, "\"annotations\": {\"io.cella.policy\": \"compat\"}, %s", devs), 0);
        compat = minimal(frag, NULL);
        c = parse_ok(compat);
        ck_assert_int_eq(oci_spec_build(c, bundle, &b, err, sizeof err), 0);
        ck_assert_uint_eq(b.spec.rootfs->n_devices, 2);
        ck_assert_str_eq(b.spec.rootfs->devices[0].path, "/dev/fifo");
        ck_assert_int_eq(b.spec.rootfs->devices[0].type, 'p');
        ck_assert_str_eq(b.spec.rootfs->devices[1].path, "/dev/sda");
        ck_assert_uint_eq(b.spec.rootfs->devices[1].major, 8);
        ck_assert_uint_eq(b.spec.rootfs->devices[1].mode, 0660);
        oci_spec_build_done(&b);
        oci_config_free(c);

        c = parse_ok(wrong);
        ck_assert_int_eq(oci_spec_build(c, bundle, &b, err, sizeof err), -EINVAL);
        ck_assert_msg(strstr(err, "/dev/null is a default device of the runtime"), "%s", err);
        oci_config_free(c);
}
END_TEST

/* Policy compat with a user namespace: its maps and groups; without maps refused; a
 * capability set in the host's user namespace loses CAP_MKNOD. */
START_TEST(test_compat_ids)
{
        const char *userns =
                "\"annotations\": {\"io.cella.policy\": \"compat\"}, \"linux\": "
                "{\"namespaces\": [{\"type\": \"user\"}, {\"type\": \"mount\"}, {\"type\": "
                "\"pid\"}], "
                "\"uidMappings\": "
                "[{\"containerID\": 0, \"hostID\": 100000, \"size\": 65536}], \"gidMappings\": "
                "[{\"containerID\": 0, \"hostID\": 100000, \"size\": 65536}]}";
        const char *nomaps = "\"annotations\": {\"io.cella.policy\": \"compat\"}, \"linux\": "
                             "{\"namespaces\": [{\"type\": \"user\"}, {\"type\": \"mount\"}, "
                             "{\"type\": \"pid\"}]}";
        const char *host = "\"annotations\": {\"io.cella.policy\": \"compat\"}, \"linux\": "
                           "{\"namespaces\": [{\"type\": \"mount\"}, {\"type\": \"pid\"}]}";
        const char *groups = "\"user\": {\"uid\": 5, \"gid\": 6, \"additionalGids\": [7, 8]}, "
                             "\"noNewPrivileges\": true, \"capabilities\": {\"bounding\": "
                             "[\"CAP_MKNOD\", \"CAP_KILL\"], \"permitted\": [\"CAP_MKNOD\"]}";
        _cleanup_free_ char *t1 = NULL, *t2 = NULL, *t3 = NULL, *t4 = NULL;
        char err[ERR_LEN];
        OciSpecBuild b;
        OciConfig *c;

        t1 = minimal(userns, NULL);
        c = parse_ok(t1);
        ck_assert_int_eq(oci_spec_build(c, bundle, &b, err, sizeof err), 0);
        ck_assert_uint_eq(b.spec.n_uid_map, 1);
        ck_assert_uint_eq(b.spec.uid_map[0].host, 100000);
        ck_assert_uint_eq(b.spec.gid_map[0].count, 65536);
        ck_assert_uint_eq(b.spec.app_uid, 1000);
        ck_assert_ptr_null(b.spec.caps);
        ck_assert(!b.spec.allow_new_privs); /* no caps, not host ids */
        oci_spec_build_done(&b);
        oci_config_free(c);

        t2 = minimal(nomaps, NULL);
        c = parse_ok(t2);
        ck_assert_int_eq(oci_spec_build(c, bundle, &b, err, sizeof err), -EINVAL);
        ck_assert_msg(strstr(err, "linux.uidMappings: missing: a new user namespace needs "
                                  "mappings"),
                      "%s", err);
        oci_config_free(c);

        ck_assert_int_ge(asprintf(&t3,
                                  "{\"ociVersion\": \"1.0.0\", \"root\": {\"path\": \"rootfs\"}, "
                                  "\"process\": {\"args\": [\"/bin/sh\"], \"cwd\": \"/\", %s}, "
                                  "%s}",
                                  groups, host),
                         0);
        c = parse_ok(t3);
        ck_assert_int_eq(oci_spec_build(c, bundle, &b, err, sizeof err), 0);
        /* No user namespace in the config: host ids, maps unused. */
        ck_assert_uint_eq(b.spec.n_namespaces, 2);
        ck_assert(!ns_new(&b, CLONE_NEWUSER) && !ns_new(&b, CLONE_NEWNET));
        ck_assert_ptr_null(b.spec.uid_map);
        ck_assert_uint_eq(b.spec.n_app_groups, 2);
        ck_assert_uint_eq(b.spec.app_groups[1], 8);
        ck_assert_ptr_nonnull(b.spec.caps);
        ck_assert_uint_eq(b.spec.caps->bounding, UINT64_C(1) << CAP_KILL);
        ck_assert_uint_eq(b.spec.caps->permitted, 0);
        ck_assert(has_note(b.notes, "CAP_MKNOD dropped"));
        ck_assert(!b.spec.allow_new_privs); /* noNewPrivileges true */
        oci_spec_build_done(&b);
        oci_config_free(c);

        /* The same with device rules: kept where a v1 devices controller holds them. */
        {
                _cleanup_free_ char *t5 = NULL;
                CgroupMode mode;
                bool v1 = cgroup_detect("/sys/fs/cgroup", &mode) >= 0 &&
                          (mode == CGROUP_MODE_V1 || mode == CGROUP_MODE_HYBRID);

                ck_assert_int_ge(
                        asprintf(&t5,
                                 "{\"ociVersion\": \"1.0.0\", \"root\": {\"path\": \"rootfs\"}, "
                                 "\"process\": {\"args\": [\"/bin/sh\"], \"cwd\": \"/\", %s}, "
                                 "\"annotations\": {\"io.cella.policy\": \"compat\"}, "
                                 "\"linux\": {\"namespaces\": [{\"type\": \"mount\"}, "
                                 "{\"type\": \"pid\"}], \"resources\": {\"devices\": "
                                 "[{\"allow\": false, \"access\": \"rwm\"}]}}}",
                                 groups),
                        0);
                c = parse_ok(t5);
                ck_assert_int_eq(oci_spec_build(c, bundle, &b, err, sizeof err), 0);
                ck_assert_ptr_nonnull(b.spec.caps);
                ck_assert_uint_eq(b.spec.caps->bounding & (UINT64_C(1) << CAP_MKNOD),
                                  v1 ? UINT64_C(1) << CAP_MKNOD : 0);
                ck_assert(has_note(b.notes, "CAP_MKNOD dropped") == !v1);
                oci_spec_build_done(&b);
                oci_config_free(c);
        }

        /* The same under cella: one id, the groups dropped with a note. */
        ck_assert_int_ge(asprintf(&t4,
                                  "{\"ociVersion\": \"1.0.0\", \"root\": {\"path\": \"rootfs\"}, "
                                  "\"process\": {\"args\": [\"/bin/sh\"], \"cwd\": \"/\", %s}, "
                                  "\"linux\": {\"namespaces\": [{\"type\": \"mount\"}, "
                                  "{\"type\": \"pid\"}, {\"type\": \"network\"}, {\"type\": "
                                  "\"ipc\"}, {\"type\": \"uts\"}]}}",
                                  groups),
                         0);
        c = parse_ok(t4);
        ck_assert_int_eq(oci_spec_build(c, bundle, &b, err, sizeof err), 0);
        ck_assert_uint_eq(b.spec.n_app_groups, 0);
        ck_assert_uint_eq(b.spec.app_uid, 5);
        ck_assert_uint_eq(b.spec.app_gid, 6);
        ck_assert(has_note(b.notes, "process.user.additionalGids: dropped"));
        ck_assert_ptr_null(b.spec.caps);
        oci_spec_build_done(&b);
        oci_config_free(c);
}
END_TEST

START_TEST(test_policy_annotation)
{
        _cleanup_free_ char *text =
                minimal("\"annotations\": {\"io.cella.policy\": \"lax\"}", NULL);
        OciConfig *c = parse_ok(text);
        char err[ERR_LEN];
        OciSpecBuild b;
        OciPolicy p;

        ck_assert_int_eq(oci_policy_from_config(c, &p, err, sizeof err), -EINVAL);
        ck_assert_str_eq(err, "config.json: annotations[\"io.cella.policy\"]: unknown policy "
                              "\"lax\" (cella, compat)");
        ck_assert_int_eq(oci_spec_build(c, bundle, &b, err, sizeof err), -EINVAL);
        ck_assert_str_eq(oci_policy_to_string(OCI_POLICY_COMPAT), "compat");
        ck_assert_str_eq(oci_policy_to_string(OCI_POLICY_CELLA), "cella");
        oci_config_free(c);
}
END_TEST

/* Runs fn in a forked child with prog loaded; returns the child's exit code. */
static int run_filtered(const SeccompProgram *prog, int (*fn)(void))
{
        pid_t pid = fork();
        int status;

        ck_assert_int_ge(pid, 0);
        if (pid == 0) {
                if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || seccomp_program_load(prog) < 0)
                        _exit(100);
                _exit(fn());
        }
        ck_assert_int_eq(waitpid(pid, &status, 0), pid);
        ck_assert_msg(WIFEXITED(status), "child status %d", status);
        return WEXITSTATUS(status);
}

/* 0 if each call got what the config says. */
static int custom_calls(void)
{
        errno = 0;
        if (syscall(SYS_getppid) != -1 || errno != 42)
                return 1;
        if (personality(0x7fffffff) != -1 || errno != 43)
                return 2;
        /* Two conditions on one argument: one rule each (runc's reading), so either. */
        if (personality(0xfffffff5) != -1 || errno != 44)
                return 3;
        if (personality(5) != -1 || errno != 44)
                return 4;
        /* Conditions on two arguments: both must hold. */
        errno = 0;
        if (syscall(SYS_getpriority, PRIO_PROCESS, 12345) != -1 || errno != 45)
                return 5;
        if (syscall(SYS_getpriority, PRIO_PROCESS, 0) < 0)
                return 6;
        if (getpid() <= 0)
                return 7;
        if (syscall(SYS_getuid) < 0)
                return 8;
        return 0;
}

static int podman_calls(void)
{
        /* In the config's allow list. */
        if (getpid() <= 0)
                return 1;
        /* An explicit rule: errnoRet 1. */
        errno = 0;
        if (syscall(SYS_acct, NULL) != -1 || errno != EPERM)
                return 2;
        /* Not listed: the default action, defaultErrnoRet 38 (ENOSYS). */
        errno = 0;
        if (syscall(SYS_io_uring_setup, 1, NULL) != -1 || errno != ENOSYS)
                return 3;
        errno = 0;
        if (syscall(SYS_kcmp, 0, 0, 0, 0, 0) != -1 || errno != EPERM)
                return 4;
        return 0;
}

START_TEST(test_seccomp_compat)
{
        const char *custom =
                "\"linux\": {\"seccomp\": {\"defaultAction\": \"SCMP_ACT_ALLOW\", "
                "\"architectures\": [\"SCMP_ARCH_X86_64\"], \"flags\": "
                "[\"SECCOMP_FILTER_FLAG_LOG\"], "
                "\"syscalls\": ["
                "{\"names\": [\"getppid\", \"no_such_call\"], \"action\": \"SCMP_ACT_ERRNO\", "
                "\"errnoRet\": 42},"
                "{\"names\": [\"getuid\"], \"action\": \"SCMP_ACT_ALLOW\"},"
                "{\"names\": [\"personality\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 43, "
                "\"args\": [{\"index\": 0, \"value\": 2147483647, \"op\": \"SCMP_CMP_EQ\"}]},"
                "{\"names\": [\"personality\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 44, "
                "\"args\": [{\"index\": 0, \"value\": 4294967280, \"op\": \"SCMP_CMP_GE\"}, "
                "{\"index\": 0, \"value\": 5, \"op\": \"SCMP_CMP_EQ\"}]},"
                "{\"names\": [\"getpriority\"], \"action\": \"SCMP_ACT_ERRNO\", \"errnoRet\": 45, "
                "\"args\": [{\"index\": 0, \"value\": 0, \"op\": \"SCMP_CMP_EQ\"}, "
                "{\"index\": 1, \"value\": 12345, \"op\": \"SCMP_CMP_EQ\"}]}]}}";
        _cleanup_free_ char *text = minimal(custom, NULL);
        _cleanup_free_ char *podman = podman_config(podman_root);
        char err[ERR_LEN];
        SeccompProgram *prog = NULL;
        OciConfig *c;

        c = parse_ok(text);
        ck_assert_msg(oci_seccomp_build(c->seccomp, &prog, err, sizeof err) == 0, "%s", err);
        ck_assert_int_eq(run_filtered(prog, custom_calls), 0);
        prog = seccomp_program_free(prog);
        /* Through oci_spec_build under compat: the same filter, its flags noted. */
        {
                _cleanup_free_ char *frag = NULL, *t = NULL;
                OciSpecBuild b;
                OciConfig *cc;

                ck_assert_int_ge(asprintf(&frag,
                                          "\"annotations\": {\"io.cella.policy\": \"compat\"}, "
                                          "%.*s" NS_ALL ", %s",
                                          (int)strlen("\"linux\": {"), custom,
                                          custom + strlen("\"linux\": {")),
                                 0);
                t = minimal(frag, NULL);
                cc = parse_ok(t);
                ck_assert_msg(oci_spec_build(cc, bundle, &b, err, sizeof err) == 0, "%s", err);
                ck_assert(has_note(b.notes, "linux.seccomp.flags: not applied"));
                ck_assert_int_eq(run_filtered(b.spec.seccomp, custom_calls), 0);
                oci_spec_build_done(&b);
                oci_config_free(cc);
        }
        oci_config_free(c);

        c = parse_ok(podman);
        ck_assert_msg(oci_seccomp_build(c->seccomp, &prog, err, sizeof err) == 0, "%s", err);
        ck_assert_int_eq(run_filtered(prog, podman_calls), 0);
        prog = seccomp_program_free(prog);

        /* NULL: allow everything. */
        ck_assert_int_eq(oci_seccomp_build(NULL, &prog, err, sizeof err), 0);
        ck_assert_uint_gt(prog->prog.len, 0);
        prog = seccomp_program_free(prog);

        /* An agent's socket, and SCMP_ACT_NOTIFY without one: refused. */
        c->seccomp->listener_path = strdup("/run/agent.sock");
        ck_assert_int_eq(oci_seccomp_build(c->seccomp, &prog, err, sizeof err), -EINVAL);
        ck_assert_msg(strstr(err, "linux.seccomp.listenerPath: seccomp agents are not supported"),
                      "%s", err);
        free(c->seccomp->listener_path);
        c->seccomp->listener_path = NULL;
        c->seccomp->rules[3].action = OCI_SCMP_NOTIFY;
        ck_assert_int_eq(oci_seccomp_build(c->seccomp, &prog, err, sizeof err), -EINVAL);
        ck_assert_msg(strstr(err, "linux.seccomp.syscalls[3].action: SCMP_ACT_NOTIFY"), "%s", err);
        ck_assert_ptr_null(prog);
        oci_config_free(c);
}
END_TEST

START_TEST(test_process_json)
{
        const char *ok = "{\"args\": [\"/bin/ls\", \"-l\"], \"cwd\": \"/tmp\", \"terminal\": true,"
                         " \"consoleSize\": {\"height\": 40, \"width\": 120}, \"env\": [\"A=1\"]}";
        const char *bad = "{\"args\": [\"/bin/ls\"], \"cwd\": \"/tmp\", \"consoleSize\": "
                          "{\"height\": 70000, \"width\": 1}}";
        char err[ERR_LEN];
        OciProcess p;

        ck_assert_int_eq(oci_process_parse(ok, strlen(ok), &p, err, sizeof err), 0);
        ck_assert_str_eq(p.args[1], "-l");
        ck_assert(p.terminal);
        ck_assert_uint_eq(p.console_size.height, 40);
        ck_assert_uint_eq(p.console_size.width, 120);
        oci_process_done(&p);
        ck_assert_int_eq(oci_process_parse(bad, strlen(bad), &p, err, sizeof err), -EINVAL);
        ck_assert_str_eq(err, "process.json: process.consoleSize.height: 70000 is out of range "
                              "(0 to 65535)");
        ck_assert_int_eq(oci_process_parse("[1]", 3, &p, err, sizeof err), -EINVAL);
        ck_assert_str_eq(err, "process.json: process: must be an object, not an array");
}
END_TEST

START_TEST(test_load)
{
        char err[ERR_LEN], dir[sizeof bundle + 16];
        _cleanup_free_ char *text = minimal(NULL, NULL);
        OciConfig *c = NULL;

        ck_assert_int_eq(oci_config_load(bundle, &c, err, sizeof err), -ENOENT);
        ck_assert_msg(strstr(err, "/config.json: No such file"), "%s", err);
        snprintf(dir, sizeof dir, "%s/config.json", bundle);
        ck_assert_int_eq(mkdir(dir, 0755), 0);
        ck_assert_int_eq(oci_config_load(bundle, &c, err, sizeof err), -EINVAL);
        ck_assert_msg(strstr(err, "not a regular file"), "%s", err);
        ck_assert_int_eq(rmdir(dir), 0);
        put_file(bundle, "config.json", text, 0644);
        ck_assert_int_eq(oci_config_load(bundle, &c, err, sizeof err), 0);
        ck_assert_str_eq(c->process.args[0], "/bin/sh");
        c = oci_config_free(c);
        {
                _cleanup_close_ int fd = open(dir, O_WRONLY | O_TRUNC | O_CLOEXEC);

                ck_assert_int_ge(fd, 0);
                ck_assert_int_eq(ftruncate(fd, OCI_CONFIG_MAX_BYTES + 1), 0);
        }
        ck_assert_int_eq(oci_config_load(bundle, &c, err, sizeof err), -E2BIG);
        ck_assert_msg(strstr(err, "more than 4 MiB"), "%s", err);
}
END_TEST

int main(void)
{
        Suite *s = suite_create("oci-config");
        TCase *tc = tcase_create("config");
        SRunner *sr;

        if (skip_init() < 0)
                return EXIT_FAILURE;
        tcase_add_checked_fixture(tc, setup, teardown);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, test_podman_parse);
        tcase_add_test(tc, test_podman_cella);
        tcase_add_test(tc, test_podman_compat);
        tcase_add_test(tc, test_bad_configs);
        tcase_add_test(tc, test_required);
        tcase_add_test(tc, test_bounds);
        tcase_add_test(tc, test_big_integers);
        tcase_add_test(tc, test_notes_and_nulls);
        tcase_add_test(tc, test_cella_refuses_host_namespaces);
        tcase_add_test(tc, test_namespace_paths);
        tcase_add_test(tc, test_root_path);
        tcase_add_test(tc, test_exec_path);
        tcase_add_test(tc, test_mount_options);
        tcase_add_test(tc, test_devices);
        tcase_add_test(tc, test_compat_ids);
        tcase_add_test(tc, test_policy_annotation);
        tcase_add_test(tc, test_seccomp_compat);
        tcase_add_test(tc, test_process_json);
        tcase_add_test(tc, test_load);
        suite_add_tcase(s, tc);
        sr = srunner_create(s);
        return skip_run(sr);
}
