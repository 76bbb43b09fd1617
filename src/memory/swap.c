/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Compressed swap: detection and per-class swap caps (swap.h, docs/memory.md). */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/macro.h"
#include "memory/swap.h"
#include "sandbox/cgroup.h"

/* zram devices counted at most (zram's hot_add numbers them from 0). */
#define SWAP_ZRAM_MAX 256u

/* Larger than any /proc/meminfo or /proc/swaps we expect to read. */
#define SWAP_FILE_MAX (64 * 1024)

const char *swap_info_kind(const SwapInfo *i)
{
        if (!i || i->n_areas == 0)
                return "none";
        if (i->n_zram > 0)
                return "zram";
        return i->zswap ? "zswap" : "swap";
}

bool swap_info_compressed(const SwapInfo *i)
{
        return i && i->n_areas > 0 && (i->n_zram > 0 || i->zswap);
}

/* The whole of root/path into *ret (NUL-terminated). -errno of open or read. */
static int read_under(const char *root, const char *path, char **ret)
{
        _cleanup_free_ char *p = NULL;
        size_t n;

        if (asprintf(&p, "%s/%s", root, path) < 0)
                return -ENOMEM;
        return read_file_at(AT_FDCWD, p, SWAP_FILE_MAX, ret, &n);
}

/* The first line of root/path, its newline cut, into out (size bytes); "" if missing. */
static void first_line(const char *root, const char *path, char *out, size_t size)
{
        _cleanup_free_ char *s = NULL;

        out[0] = 0;
        if (read_under(root, path, &s) < 0)
                return;
        snprintf(out, size, "%.*s", (int)strcspn(s, "\n"), s);
}

/* meminfo's "key:   N kB" in bytes; -EINVAL if missing. */
static int meminfo_bytes(const char *text, const char *key, uint64_t *ret)
{
        size_t n = strlen(key);

        for (const char *l = text; l && *l; l = strchr(l, '\n') ? strchr(l, '\n') + 1 : NULL) {
                unsigned long long kb;

                if (strncmp(l, key, n) == 0 && l[n] == ':' && sscanf(l + n + 1, "%llu", &kb) == 1) {
                        *ret = (uint64_t)kb * 1024;
                        return 0;
                }
        }
        return -EINVAL;
}

/* The selected algorithm of a zram device: comp_algorithm reads "lzo [lz4] zstd". */
static void zram_algorithm(const char *sys_root, const char *dev, char *out, size_t size)
{
        _cleanup_free_ char *p = NULL;
        char line[256];
        const char *a, *b;

        out[0] = 0;
        if (asprintf(&p, "block/%s/comp_algorithm", dev) < 0)
                return;
        first_line(sys_root, p, line, sizeof line);
        a = strchr(line, '[');
        b = a ? strchr(a, ']') : NULL;
        if (a && b) {
                a++;
        } else {
                a = line;
                b = line + strlen(line);
        }
        /* Cut to size - 1 bytes: an algorithm's name is short (crypto API names). */
        snprintf(out, size, "%.*s", (int)((size_t)(b - a) < size ? (size_t)(b - a) : size - 1), a);
}

int swap_detect(const char *proc_root, const char *sys_root, SwapInfo *ret)
{
        _cleanup_free_ char *meminfo = NULL, *swaps = NULL, *zdir = NULL;
        SwapInfo i = {};
        char enabled[16];
        int r;

        if (!proc_root || !sys_root || !ret)
                return -EINVAL;
        r = read_under(proc_root, "meminfo", &meminfo);
        if (r < 0)
                return r;
        if (meminfo_bytes(meminfo, "SwapTotal", &i.total) < 0)
                return -EINVAL;
        (void)meminfo_bytes(meminfo, "SwapFree", &i.free);

        /* /proc/swaps: a header, then "Filename Type Size Used Priority" per area. */
        if (read_under(proc_root, "swaps", &swaps) >= 0) {
                char *line = strchr(swaps, '\n');

                while (line && *++line) {
                        size_t len = strcspn(line, " \t\n");
                        char dev[64];

                        if (len > 0) {
                                i.n_areas++;
                                snprintf(dev, sizeof dev, "%.*s", (int)len, line);
                                if (strncmp(dev, "/dev/zram", 9) == 0) {
                                        if (i.n_zram++ == 0)
                                                zram_algorithm(sys_root, dev + 5, i.zram_algorithm,
                                                               sizeof i.zram_algorithm);
                                }
                        }
                        line = strchr(line, '\n');
                }
        }

        /* zram devices, in swap or not (a zram used as a plain disk compresses too,
         * but holds no app memory: reported, not counted as compression). Counted
         * from zram0 up to the first missing one, not by reading /sys/block, which
         * lists every loop device too (over a thousand on a test machine: 0.25 ms). */
        for (unsigned n = 0; n < SWAP_ZRAM_MAX; n++) {
                struct stat st;

                free(zdir);
                zdir = NULL;
                if (asprintf(&zdir, "%s/block/zram%u", sys_root, n) < 0)
                        return -ENOMEM;
                if (stat(zdir, &st) < 0)
                        break;
                i.zram_devices++;
        }

        first_line(sys_root, "module/zswap/parameters/enabled", enabled, sizeof enabled);
        i.zswap = enabled[0] == 'Y' || enabled[0] == 'y' || enabled[0] == '1';
        if (i.zswap)
                first_line(sys_root, "module/zswap/parameters/compressor", i.zswap_compressor,
                           sizeof i.zswap_compressor);
        *ret = i;
        return 0;
}

void swap_caps_default(SwapCaps *ret)
{
        *ret = (SwapCaps){.enabled = true};
        ret->percent[CPU_CLASS_FOREGROUND] = 0;
        ret->percent[CPU_CLASS_VISIBLE] = 0;
        ret->percent[CPU_CLASS_SERVICE] = 25;
        ret->percent[CPU_CLASS_BACKGROUND] = 50;
        ret->percent[CPU_CLASS_CACHED] = 100;
}

uint64_t swap_cap_bytes(const SwapCaps *caps, CpuClass c, uint64_t limit, uint64_t budget)
{
        uint64_t base = limit && limit != UINT64_MAX ? limit : budget, pct;

        if (!caps || !caps->enabled || (int)c < 0 || c >= _CPU_CLASS_MAX || base == 0 ||
            base == UINT64_MAX)
                return UINT64_MAX;
        pct = caps->percent[c] < 100 ? caps->percent[c] : 100;
        /* base / 100 first: no overflow for any base below 2^64. */
        return base / 100 * pct + base % 100 * pct / 100;
}

int swap_cap_apply(Cgroup *cg, uint64_t bytes)
{
        return cgroup_set_swap_max(cg, bytes);
}

int swap_cap_read(Cgroup *cg, uint64_t *ret)
{
        return cgroup_swap_max(cg, ret);
}
