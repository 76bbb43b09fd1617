/* SPDX-License-Identifier: LGPL-2.1-or-later */
#pragma once

#include <stddef.h>

/* Longest word suggest_nearest() compares: longer ones are no typo of a short name. */
#define SUGGEST_WORD_MAX 32u
/* Edit distance up to which a word is taken for a typo of a known one. */
#define SUGGEST_DISTANCE 2u

/*
 * The optimal string alignment distance between a (la bytes) and b (lb bytes):
 * Levenshtein's insertions, deletions and substitutions plus transpositions of two
 * adjacent bytes, each one edit ("memroy" is one edit from "memory"; Damerau 1964,
 * restricted form). Both at most SUGGEST_WORD_MAX bytes; a longer one returns
 * (size_t)-1. Bytes, not characters: a typo inside a multibyte UTF-8 character counts
 * as more than one edit.
 */
size_t suggest_distance(const char *a, size_t la, const char *b, size_t lb);

/*
 * The entry of known (n strings) nearest to word (len bytes, not necessarily
 * NUL-terminated) when it lies within SUGGEST_DISTANCE edits and the distance is
 * smaller than the entry's length ("x" is two edits from "id" but no typo of it),
 * the first such on a tie; NULL when there is none or word is longer than
 * SUGGEST_WORD_MAX. For "did you mean" hints in messages.
 */
const char *suggest_nearest(const char *word, size_t len, const char *const *known, size_t n);
