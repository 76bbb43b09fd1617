/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

/*
 * The keeper (docs/daemon.md, "Restart and adoption"): one small process per
 * cellad, cella-keeper, that holds a copy of every fd a running app's sandbox
 * needs from its kernel, so that the apps outlive a crash (SIGKILL) or a re-exec
 * (SIGHUP) of cellad and the next cellad takes them back, as containerd's shims
 * and podman's conmon let those daemons restart.
 *
 * A sandbox spawned with SandboxSpec.survive_parent lives as long as someone holds
 * its ctl socket (sandbox.h); the keeper is that someone while no cellad runs. It
 * listens on <state>/run/keeper.sock (0600, in the 0700 run/ folder), speaks to
 * root (or its own uid) only (SO_PEERCRED), and knows nothing of apps beyond the
 * record each fd set comes with: it never reads or writes the fds it holds.
 *
 * Wire: SOCK_SEQPACKET, one KeeperMsg per message, its fds (SCM_RIGHTS) in the
 * order of KeeperFd for each bit set in KeeperRecord.fds. Requests get one
 * reply each (KEEPER_OP_OK or KEEPER_OP_ERROR with a positive errno), except
 * KEEPER_OP_TAKE, answered by one KEEPER_OP_SET per held set and KEEPER_OP_END.
 *
 * A keeper whose last client went while it held nothing exits at once. While no
 * client is connected and it holds sets, the keeper counts a grace (KEEPER_GRACE_DEFAULT_S,
 * cella-keeper --grace); when it ends, it kills every sandbox it holds (a SIGKILL
 * through the pidfd of its init, which takes the pid namespace; and cgroup.kill
 * of its cgroup2 leaf where there is one) and exits: apps are never left running
 * with no kernel to serve them.
 */

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* The first word of every message. It names the protocol's version too: a change
 * to KeeperMsg or KeeperRecord changes it, so that a cellad and a keeper of two
 * versions of cella refuse each other's messages (-EBADMSG) instead of misreading
 * them; cellad then stops that keeper, its apps with it (adopt.c). */
/* Version 4 ("keet"): KeeperRecord.member_run, and a HOST set's KEEPER_FD_CHANNEL
 * (a joined member's run, the host control channel: a packed member that joined a
 * running host is adopted and stopped alone, and others join the adopted host);
 * version 3 ("kees", 0x6b656573): KeeperRecord.kind, .group, .member_index,
 * .n_members (packed groups' hosts and members); version 2 ("keer", 0x6b656572) added .role,
 * .frozen and KEEPER_OP_NOTE; version 1 was 0x6b656570, "keep". */
#define KEEPER_MAGIC     0x6b656574u
#define KEEPER_ID_MAX    256 /* bytes of an app id with its NUL (manifest ids: 255) */
#define KEEPER_NAME_MAX  256 /* a cgroup leaf name with its NUL (NAME_MAX + 1) */
#define KEEPER_GROUP_MAX 65  /* a packed group's name with its NUL (MANIFEST_GROUP_MAX + 1) */
/* The id of a packed group's host set: this prefix and the group's name. An app id
 * has no ':' (manifest_id_is_valid()), so no app's set takes a host's key. */
#define KEEPER_HOST_PREFIX "group:"
#define KEEPER_PATH_MAX    4096 /* PATH_MAX */
#define KEEPER_SOCKET      "run/keeper.sock"
#define KEEPER_LOCK        "run/keeper.lock"
/* How long the keeper waits for a cellad to come back before it kills what it
 * holds, in seconds (containerd leaves shims for ever; a keeper that outlives its
 * daemon for good would leave apps unsupervised, so it has a bound). */
#define KEEPER_GRACE_DEFAULT_S 60
/* The most sets one keeper holds: RLIMIT_NOFILE's default hard limit (1 M) over
 * the 8 fds of a full set, rounded down. */
#define KEEPER_SETS_MAX 100000
/* How long a client waits for the keeper's reply, ms. The keeper answers at once;
 * this bounds a keeper that is stopped (SIGSTOP) or hung. */
#define KEEPER_REPLY_TIMEOUT_MS 5000

typedef enum KeeperOp {
        KEEPER_OP_HOLD = 1, /* client → keeper: hold this set (record + fds) */
        KEEPER_OP_DROP,     /* client → keeper: close the set of record.id, if its generation */
        KEEPER_OP_TAKE,     /* client → keeper: send me every set (the keeper keeps them) */
        KEEPER_OP_BYE,      /* client → keeper: close every set and exit (an orderly stop) */
        KEEPER_OP_SET,      /* keeper → client: one held set (record + fds) */
        KEEPER_OP_END,      /* keeper → client: no more sets (value: how many were sent) */
        KEEPER_OP_OK,       /* keeper → client: done */
        KEEPER_OP_ERROR,    /* keeper → client: refused; error is a positive errno */
        /* client → keeper: the held set of record.id, if of record.generation, takes
         * record.role and record.frozen (the app's state changed); no fds. */
        KEEPER_OP_NOTE,
} KeeperOp;

/*
 * What a set is (KeeperRecord.kind). An app that runs alone is one APP set. A packed
 * Lua group (one cella-lua host running several apps, docs/manifest.md "isolation")
 * is one HOST set (id KEEPER_HOST_PREFIX + the group's name: the host's sandbox, its
 * own output, its stats file, cellad's end of its host control channel, so that the
 * next cellad can still stop one member or add one) and one MEMBER set per app it
 * runs (id: the app's; its broker channel and its log pipe, with the host's pidfd
 * and ctl, which every set has), so that one app joining or leaving a running host
 * is one HOLD or DROP.
 */
typedef enum KeeperKind {
        KEEPER_KIND_APP = 0,
        KEEPER_KIND_HOST,
        KEEPER_KIND_MEMBER,
        _KEEPER_KIND_MAX,
} KeeperKind;

/* The fds of a set, in the order they travel. */
typedef enum KeeperFd {
        KEEPER_FD_PIDFD,   /* pidfd of the sandbox's init (required) */
        KEEPER_FD_CTL,     /* the kernel's end of its ctl socket (required) */
        KEEPER_FD_NOTIFY,  /* its seccomp listener (not in a MEMBER set) */
        KEEPER_FD_CHANNEL, /* the kernel's end of the app's broker channel; a HOST's: the
                            * kernel's end of its host control channel (src/lua/hostctl.h:
                            * joins and stops of members), if it has one */
        KEEPER_FD_STDOUT,  /* read end of the app's stdout pipe (a MEMBER's: its log pipe) */
        KEEPER_FD_STDERR,  /* read end of its stderr pipe (not a MEMBER's) */
        KEEPER_FD_PTY,     /* its pty master (cella run -t; APP only) */
        KEEPER_FD_STATS,   /* a Lua app's or a host's stats file (src/lua/stats.h) */
        _KEEPER_FD_MAX,
} KeeperFd;

/* What a set is; strings NUL-terminated within their arrays. */
typedef struct KeeperRecord {
        char id[KEEPER_ID_MAX];    /* the app's id: one set per id */
        uint64_t generation;       /* the kernel's count of this app's starts */
        int32_t pid;               /* host pid of the sandbox's init */
        int32_t app_pid;           /* the app's pid in the sandbox's pid namespace */
        int64_t started_ms;        /* wall clock of the start, ms since the epoch */
        uint32_t uid;              /* the host uid the app runs as */
        int32_t init_exec;         /* Sandbox.init_exec */
        uint64_t oom_kills_before; /* Sandbox.oom_kills_before */
        uint32_t restarts;         /* restarts so far by its policy */
        /* What the app is to the user, so that it is adopted in the state it had
         * (lifecycle.h): its InstanceRole and its InstanceFreeze. The keeper keeps
         * them as numbers; cellad checks them when it adopts. */
        uint32_t role;
        uint32_t frozen;
        uint32_t fds;  /* bit (1 << KeeperFd) for each fd present */
        uint32_t kind; /* KeeperKind */
        /* HOST and MEMBER: the group's name ([a-z0-9_-], 1..64 bytes); APP: "". A
         * MEMBER's generation, pid, app_pid, uid, started_ms, restarts and
         * cgroup_name are its host's. */
        char group[KEEPER_GROUP_MAX];
        uint32_t member_index; /* MEMBER: its record in the host's spec and stats file */
        uint32_t n_members;    /* HOST: the records its stats file has room for (>= 1) */
        char cgroup_name[KEEPER_NAME_MAX]; /* "<label>@<owner>", "" for none */
        /* The cgroup2 leaf's directory, for cgroup.kill at the grace's end; "" for
         * none. Must be under /sys/fs/cgroup/ with no ".." (the keeper checks). */
        char cgroup_kill[KEEPER_PATH_MAX];
        char app_dir[KEEPER_PATH_MAX]; /* the app's folder it was started from */
        /* MEMBER: the run its host gave its start (hostctl.h: 0 for a member started
         * with the host, a join's own otherwise), which a STOP of it must name; 0 for
         * an APP or a HOST. */
        uint32_t member_run;
} KeeperRecord;

typedef struct KeeperMsg {
        uint32_t magic; /* KEEPER_MAGIC */
        uint32_t op;    /* KeeperOp */
        int32_t error;  /* KEEPER_OP_ERROR: a positive errno */
        uint32_t value; /* KEEPER_OP_END: the number of sets sent */
        KeeperRecord rec;
} KeeperMsg;

/* One set as a client has it: the record, and the fds (-EBADF where absent). */
typedef struct KeeperSet {
        KeeperRecord rec;
        int fds[_KEEPER_FD_MAX];
} KeeperSet;

/* The fds a set must have to be held at all. */
#define KEEPER_FDS_REQUIRED ((1u << KEEPER_FD_PIDFD) | (1u << KEEPER_FD_CTL))

/* ---- messages (both sides) ---------------------------------------------------------- */

/*
 * Sends m on sock with the fds of m->rec.fds taken from fds (indexed by KeeperFd;
 * borrowed, the kernel dups them into the message). Returns 0 or -errno (-EINVAL:
 * a bit set for an fd < 0).
 */
int keeper_msg_send(int sock, const KeeperMsg *m, const int *fds);

/*
 * Receives one message into *m and its fds into fds (indexed by KeeperFd, -EBADF
 * where absent; close-on-exec), waiting at most timeout_ms (-1: for ever; 0: not
 * at all, -EAGAIN). A message of the wrong size or magic, fds that do not match
 * m->rec.fds, or a truncated fd list is -EBADMSG with every fd that came closed;
 * EOF is -ECONNRESET. Returns 0 or -errno.
 */
int keeper_msg_recv(int sock, KeeperMsg *m, int *fds, int timeout_ms);

/* Closes every fd of set and marks them -EBADF. Takes NULL. */
void keeper_set_done(KeeperSet *set);

/* Checks a record as it arrives: ids and names terminated, the required fds present,
 * cgroup_kill empty or under /sys/fs/cgroup/ with no ".."; its kind known and its
 * fields as that kind's (keeper_record_check_kind()). Returns 0 or -EINVAL. */
int keeper_record_check(const KeeperRecord *rec);

/*
 * The part of keeper_record_check() that is about rec->kind: an APP record has no
 * group, member_index, n_members or member_run, and an id with no ':'; a HOST
 * record's group is a group name ([a-z0-9_-], 1..64 bytes), its id
 * KEEPER_HOST_PREFIX + that name, n_members >= 1, no member_run and no pty (its
 * channel, if any, is its host control channel); a MEMBER record's group is a group name, its id
 * has no ':', member_index < KEEPER_SETS_MAX, no n_members, and it has its channel and
 * its log pipe (KEEPER_FD_STDOUT) and no seccomp listener, stderr or pty. Whether a
 * MEMBER's host and its fields agree is the adopting cellad's to check
 * (supervisor_adopt_all()). Returns 0 or -EINVAL.
 */
int keeper_record_check_kind(const KeeperRecord *rec);

/* ---- client (cellad) ---------------------------------------------------------------- */

/*
 * Connects to the keeper on path and checks its peer: a process of uid 0 or ours
 * (SO_PEERCRED), whose pid goes to *ret_pid (may be NULL). Returns the socket
 * (blocking, close-on-exec) or -errno (-ENOENT / -ECONNREFUSED: none listens;
 * -EPERM: the peer is someone else's).
 */
int keeper_connect(const char *path, pid_t *ret_pid);

/*
 * Starts a keeper for state_dir (its socket <state_dir>/run/keeper.sock, which must
 * be ours and 0700), from the executable keeper_path, with grace_s seconds of grace,
 * as a grandchild in a session of its own (fork, setsid, fork, exec: not our
 * child, so it outlives us and no signal to our process group reaches it), with
 * /dev/null as its stdin and stdout and our stderr as its own, and waits until it
 * listens (at most KEEPER_REPLY_TIMEOUT_MS). Returns its pid or -errno (-EEXIST: another keeper
 * holds the state dir; it may be connected to).
 */
int keeper_spawn(const char *keeper_path, const char *state_dir, unsigned grace_s);

/*
 * keeper_connect() to <state_dir>/run/keeper.sock, or if none listens
 * keeper_spawn() one and connect. Returns the socket and *ret_pid, or -errno.
 */
int keeper_ensure(const char *keeper_path, const char *state_dir, unsigned grace_s, pid_t *ret_pid);

/* The path of the cella-keeper executable: the build tree's while it exists (as
 * launch_init_path()), else the installed one. */
const char *keeper_path(void);

/* Asks the keeper to hold set (its fds borrowed). Returns 0 or -errno (the keeper's
 * refusal: -EINVAL a bad record, -ENOSPC KEEPER_SETS_MAX reached). */
int keeper_hold(int sock, const KeeperSet *set);

/* Asks the keeper to close the set of id if it is of generation (a set of another
 * generation stays: it is a newer run's). id is an app's id, or a host's
 * (KEEPER_HOST_PREFIX + its group). Returns 0 (also when there was none) or
 * -errno. */
int keeper_drop(int sock, const char *id, uint64_t generation);

/* Tells the keeper that the app id's run of generation is now in role and frozen
 * (KeeperRecord.role, .frozen). Returns 0 (also when it holds no such set) or -errno. */
int keeper_note(int sock, const char *id, uint64_t generation, uint32_t role, uint32_t frozen);

/* Receives a copy of every set the keeper holds into *ret (n of them; free each with
 * keeper_set_done(), then the array). The keeper keeps its own. Returns 0 or -errno. */
int keeper_take(int sock, KeeperSet **ret, size_t *n);

/* Tells the keeper to close every set and exit (an orderly stop of cellad, its apps
 * stopped). Returns 0 or -errno. */
int keeper_bye(int sock);
