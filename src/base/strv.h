/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>

/* NULL-terminated string vectors (char **), as execve() takes them. */

#define STRV_FOREACH(s, l) for (char **s = (l); s && *s; s++)

/* Returns the number of strings in l (0 for NULL). */
size_t strv_length(char *const *l);

/* Frees every string and the vector; takes NULL; returns NULL. */
char **strv_free(char **l);

/*
 * Appends a copy of s to *l, growing it. *l may be NULL (an empty vector).
 * Returns 0, or -ENOMEM (then *l is unchanged).
 */
int strv_extend(char ***l, const char *s);

/* A deep copy of l (NULL copies as an empty vector). Returns NULL on -ENOMEM. */
char **strv_copy(char *const *l);

/* Appends a formatted string. Returns 0 or -ENOMEM. */
int strv_extendf(char ***l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static inline void strv_freep(char ***l)
{
        strv_free(*l);
}
#define _cleanup_strv_free_ __attribute__((cleanup(strv_freep)))
