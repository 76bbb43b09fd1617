/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stdint.h>

/*
 * Parses a byte size: a decimal integer with an optional binary suffix K, M, G or T
 * (powers of 1024, as memory.max, tmpfs size= and systemd's MemoryMax= read them;
 * a trailing "B" or "iB" is also accepted: "64M", "64MiB", "512K", "1G", "4096").
 * No sign, no fractions, no spaces. Returns 0 and *ret in bytes, -EINVAL for bad
 * syntax, -ERANGE when the value does not fit in 64 bits.
 */
int parse_size(const char *s, uint64_t *ret);

/*
 * Formats bytes as the largest exact binary unit ("64M", "1536K", "100"), for
 * messages and for knobs (tmpfs size=) that take the same syntax. buf must hold
 * at least 24 bytes. Returns buf.
 */
char *format_size(uint64_t bytes, char *buf, unsigned long len);
