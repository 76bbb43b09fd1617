/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Why an app's execve() failed, as a plain fact and a cause (sandbox-internal.h,
 * exec_diagnose(); SandboxExecCause in step.h): the advice is the caller's (cella's
 * supervisor speaks of the manifest's entry, cella-oci as runc does). execve(2) gives one errno for
 * several causes: ENOENT is the file missing, but also its #! interpreter or its ELF interpreter
 * (PT_INTERP, the dynamic loader) missing; EACCES is the file, a folder on its way or the mount;
 * ENOEXEC an ELF for another machine or a script without #!. Told apart here the
 * way the kernel decides (fs/binfmt_script.c, fs/binfmt_elf.c): the first bytes of
 * the file, looked at from inside the jail, as the app's uid, after the failure.
 *
 * Runs in the app's vfork()ed child: system calls and stack buffers only, no
 * allocation.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "base/macro.h"
#include "sandbox/sandbox-internal.h"

#if defined(__x86_64__)
#define HOST_MACHINE EM_X86_64
#elif defined(__aarch64__)
#define HOST_MACHINE EM_AARCH64
#elif defined(__i386__)
#define HOST_MACHINE EM_386
#elif defined(__arm__)
#define HOST_MACHINE EM_ARM
#elif defined(__riscv)
#define HOST_MACHINE EM_RISCV
#elif defined(__powerpc64__)
#define HOST_MACHINE EM_PPC64
#elif defined(__s390x__)
#define HOST_MACHINE EM_S390
#endif

/* The interpreter of a "#!" line (head, n bytes read, starting with "#!") into
 * out: what the kernel takes (blanks skipped, up to the first blank or line end).
 * Sets *cr when it ends in a carriage return (a file with DOS line ends). */
static void shebang_interpreter(const char *head, size_t n, char *out, size_t size, bool *cr)
{
        size_t i = 2, k = 0;

        *cr = false;
        while (i < n && (head[i] == ' ' || head[i] == '\t'))
                i++;
        while (i < n && head[i] != ' ' && head[i] != '\t' && head[i] != '\n' && head[i] != 0 &&
               k + 1 < size) {
                if (head[i] == '\r' && (i + 1 >= n || head[i + 1] == '\n')) {
                        *cr = true;
                        break;
                }
                out[k++] = head[i++];
        }
        out[k] = 0;
}

/* in (NUL-terminated, from the app's file) into out, every byte but printable
 * ASCII written as \xNN (a backslash as \\): the #! line and PT_INTERP are the
 * app's bytes, and the message goes to the user's terminal and the JSON status,
 * where an escape sequence must stay text (docs/security.md, "The user's
 * terminal"). Cut to fit size (> 0); always NUL-terminated. */
static void visible(const char *in, char *out, size_t size)
{
        static const char hex[] = "0123456789abcdef";
        size_t k = 0;

        for (; *in; in++) {
                unsigned char c = (unsigned char)*in;

                if (c >= 0x20 && c < 0x7f && c != '\\') {
                        if (k + 1 >= size)
                                break;
                        out[k++] = (char)c;
                } else {
                        if (k + 4 >= size)
                                break;
                        out[k++] = '\\';
                        out[k++] = c == '\\' ? '\\' : 'x';
                        if (c != '\\') {
                                out[k++] = hex[c >> 4];
                                out[k++] = hex[c & 15];
                        }
                }
        }
        out[k] = 0;
}

/* The PT_INTERP path of the 64-bit ELF file fd (native byte order) into out;
 * 0, or -1 when it has none or it cannot be read. */
static int elf_interpreter(int fd, const Elf64_Ehdr *eh, char *out, size_t size)
{
        for (unsigned i = 0; i < eh->e_phnum && i < 64; i++) {
                Elf64_Phdr ph;
                size_t len;

                if (pread(fd, &ph, sizeof ph,
                          (off_t)(eh->e_phoff + (uint64_t)i * eh->e_phentsize)) !=
                    (ssize_t)sizeof ph)
                        return -1;
                if (ph.p_type != PT_INTERP)
                        continue;
                len = ph.p_filesz < size ? ph.p_filesz : size - 1;
                if (len == 0 || pread(fd, out, len, (off_t)ph.p_offset) != (ssize_t)len)
                        return -1;
                out[len] = 0;
                out[strnlen(out, len)] = 0;
                return 0;
        }
        return -1;
}

/* Why the interpreter path interp (from a #! line or PT_INTERP) cannot be run,
 * with the errno execve() reports for it in *ret_error: NULL if it can as far as
 * access(2) tells. */
static const char *interpreter_problem(const char *interp, int *ret_error)
{
        if (access(interp, F_OK) < 0) {
                *ret_error = errno == EACCES ? EACCES : ENOENT;
                return errno == EACCES ? "cannot be reached by the app's uid" : "does not exist";
        }
        if (access(interp, X_OK) < 0) {
                *ret_error = EACCES;
                return "is not executable by the app's uid";
        }
        return NULL;
}

int exec_diagnose(const char *path, int error, int *ret_cause, char *out, size_t size)
{
        char head[256], interp[128], shown[4 * sizeof interp];
        struct statvfs vfs;
        struct stat st;
        const char *why;
        ssize_t n = 0;
        int fd, e = 0;

        *ret_cause = SANDBOX_EXEC_CAUSE_NONE;
        if (stat(path, &st) < 0) {
                e = errno == ENOTDIR ? ENOENT : errno;
                if (e == ENOENT) {
                        *ret_cause = SANDBOX_EXEC_MISSING;
                        snprintf(out, size, "%s does not exist", path);
                } else if (e == ELOOP) {
                        *ret_cause = SANDBOX_EXEC_SYMLINK_LOOP;
                        snprintf(out, size, "%s is a symlink loop (or a chain of more than 40)",
                                 path);
                } else {
                        *ret_cause = SANDBOX_EXEC_UNREACHABLE;
                        snprintf(out, size, "%s cannot be reached by the app's uid (%s)", path,
                                 strerror(e));
                }
                return e;
        }
        if (S_ISDIR(st.st_mode)) {
                *ret_cause = SANDBOX_EXEC_DIRECTORY;
                snprintf(out, size, "%s is a directory", path);
                return EISDIR;
        }
        if (error != 0 && !S_ISREG(st.st_mode)) {
                /* execve's EACCES for anything but a regular file; never opened here
                 * (a FIFO's open would wait for a writer, and the start with it). */
                *ret_cause = SANDBOX_EXEC_NOT_REGULAR;
                snprintf(out, size, "%s is not a regular file (a FIFO, socket or device)", path);
                return EACCES;
        }
        if (error == EACCES && statvfs(path, &vfs) == 0 && (vfs.f_flag & ST_NOEXEC)) {
                *ret_cause = SANDBOX_EXEC_NOEXEC_MOUNT;
                snprintf(out, size, "%s lies on a noexec file system", path);
                return error;
        }
        /* O_NONBLOCK: the file may have become a FIFO since the stat (the app's
         * /data or /tmp), whose open would wait for a writer. */
        fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
        if (fd < 0) {
                e = errno;
                *ret_cause = SANDBOX_EXEC_NOT_READABLE;
                snprintf(out, size, "%s is not readable by the app's uid (%s)", path, strerror(e));
                return e;
        }
        if (error == 0) { /* a script the interpreter reads: readable is enough */
                close(fd);
                return 0;
        }
        n = read(fd, head, sizeof head);
        if (n < 0)
                n = 0;
        if (error == EACCES && access(path, X_OK) < 0) {
                close(fd);
                *ret_cause = SANDBOX_EXEC_NOT_EXECUTABLE;
                snprintf(out, size, "%s is not executable by the app's uid", path);
                return EACCES;
        }
        if (n >= 2 && head[0] == '#' && head[1] == '!') {
                bool cr;

                close(fd);
                shebang_interpreter(head, (size_t)n, interp, sizeof interp, &cr);
                visible(interp, shown, sizeof shown);
                if (cr) {
                        *ret_cause = SANDBOX_EXEC_SHEBANG_CR;
                        snprintf(out, size,
                                 "%s: its #! line ends in a carriage return (DOS line ends), "
                                 "so the interpreter \"%s\\r\" does not exist",
                                 path, shown);
                        return ENOENT;
                }
                if (!interp[0]) {
                        *ret_cause = SANDBOX_EXEC_SHEBANG_EMPTY;
                        snprintf(out, size, "%s: its #! line names no interpreter", path);
                        return ENOEXEC;
                }
                why = interpreter_problem(interp, &e);
                if (why) {
                        *ret_cause = SANDBOX_EXEC_INTERPRETER;
                        snprintf(out, size, "%s: its #! interpreter %s %s", path, shown, why);
                        return e;
                }
        } else if ((size_t)n >= sizeof(Elf64_Ehdr) && memcmp(head, ELFMAG, SELFMAG) == 0) {
                Elf64_Ehdr eh;

                memcpy(&eh, head, sizeof eh);
#ifdef HOST_MACHINE
                if (eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_machine != HOST_MACHINE) {
                        close(fd);
                        *ret_cause = SANDBOX_EXEC_FOREIGN_ELF;
                        snprintf(out, size,
                                 "%s is a %s ELF program for machine %u, and this host runs "
                                 "64-bit ones for machine %u",
                                 path, eh.e_ident[EI_CLASS] == ELFCLASS64 ? "64-bit" : "32-bit",
                                 (unsigned)eh.e_machine, (unsigned)HOST_MACHINE);
                        return ENOEXEC;
                }
#endif
                if (eh.e_ident[EI_CLASS] == ELFCLASS64 &&
                    elf_interpreter(fd, &eh, interp, sizeof interp) == 0) {
                        why = interpreter_problem(interp, &e);
                        if (why) {
                                close(fd);
                                visible(interp, shown, sizeof shown);
                                *ret_cause = SANDBOX_EXEC_LOADER;
                                snprintf(out, size,
                                         "%s: its ELF interpreter (dynamic loader) %s %s", path,
                                         shown, why);
                                return e;
                        }
                }
        } else if (error == ENOEXEC) {
                close(fd);
                *ret_cause = SANDBOX_EXEC_NOT_PROGRAM;
                snprintf(out, size, "%s is neither an ELF program nor a script starting with #!",
                         path);
                return ENOEXEC;
        }
        close(fd);
        *ret_cause = SANDBOX_EXEC_OTHER;
        snprintf(out, size, "%s: %s", path, strerror(error));
        return error;
}
