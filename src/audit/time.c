/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Times in audit records: RFC 3339, UTC, microseconds. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "audit/audit.h"

#define USEC_PER_SEC 1000000ll

/* Year 10000 starts here: RFC 3339 years have four digits. */
#define YEAR_10000_SEC 253402300800ll

/*
 * The proleptic Gregorian date of days since 1970-01-01 (days >= 0), by the
 * era arithmetic of Howard Hinnant's "chrono-Compatible Low-Level Date
 * Algorithms" (days_from_civil's inverse): eras of 400 years, 146097 days, years
 * counted from March so that the leap day ends a year. Not gmtime_r(): glibc's
 * reads the time zone (/etc/localtime) on its first call, which cost the first
 * audit record of every `cella run` an open and a parse (bench/start).
 */
static void civil_from_days(int64_t days, int *ret_year, int *ret_month, int *ret_day)
{
        int64_t z = days + 719468; /* days since 0000-03-01 */
        int64_t era = z / 146097;
        int64_t doe = z - era * 146097;                                      /* [0, 146096] */
        int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365; /* [0, 399] */
        int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);               /* [0, 365] */
        int64_t mp = (5 * doy + 2) / 153;         /* [0, 11], March = 0 */
        int64_t d = doy - (153 * mp + 2) / 5 + 1; /* [1, 31] */
        int64_t m = mp < 10 ? mp + 3 : mp - 9;    /* [1, 12] */

        *ret_year = (int)(yoe + era * 400 + (m <= 2));
        *ret_month = (int)m;
        *ret_day = (int)d;
}

char *audit_format_time(int64_t usec, char *buf, size_t size)
{
        int64_t sec = usec / USEC_PER_SEC, frac = usec % USEC_PER_SEC, tod;
        int year, month, day;

        if (frac < 0) {
                frac += USEC_PER_SEC;
                sec--;
        }
        if (sec < 0 || sec >= YEAR_10000_SEC)
                return NULL;
        civil_from_days(sec / 86400, &year, &month, &day);
        tod = sec % 86400;
        if (snprintf(buf, size, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", year, month, day,
                     (int)(tod / 3600), (int)(tod / 60 % 60), (int)(tod % 60),
                     (int)frac) >= (int)size)
                return NULL;
        return buf;
}

/* Reads exactly n decimal digits at *p, advancing it. 0 or -EINVAL. */
static int digits(const char **p, int n, int *ret)
{
        int v = 0;

        for (int i = 0; i < n; i++) {
                char c = (*p)[i];

                if (c < '0' || c > '9')
                        return -EINVAL;
                v = v * 10 + (c - '0');
        }
        *p += n;
        *ret = v;
        return 0;
}

static int days_in_month(int year, int month)
{
        static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
        bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

        return month == 2 && leap ? 29 : days[month - 1];
}

int audit_parse_time(const char *s, int64_t *ret_usec)
{
        const char *p = s;
        int year, month, day, hour = 0, min = 0, sec = 0, off = 0;
        int64_t usec = 0, t;
        struct tm tm = {};

        if (!s)
                return -EINVAL;
        if (digits(&p, 4, &year) < 0 || *p++ != '-' || digits(&p, 2, &month) < 0 || *p++ != '-' ||
            digits(&p, 2, &day) < 0)
                return -EINVAL;
        if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month))
                return -EINVAL;
        if (*p) {
                if (*p != 'T' && *p != 't')
                        return -EINVAL;
                p++;
                if (digits(&p, 2, &hour) < 0 || *p++ != ':' || digits(&p, 2, &min) < 0 ||
                    *p++ != ':' || digits(&p, 2, &sec) < 0)
                        return -EINVAL;
                /* 60: a leap second (RFC 3339 section 5.6); timegm() carries it over. */
                if (hour > 23 || min > 59 || sec > 60)
                        return -EINVAL;
                if (*p == '.') {
                        int n = 0;

                        p++;
                        for (; *p >= '0' && *p <= '9'; p++, n++) {
                                if (n >= 9)
                                        return -EINVAL;
                                if (n < 6)
                                        usec = usec * 10 + (*p - '0');
                        }
                        if (n == 0)
                                return -EINVAL;
                        for (; n < 6; n++)
                                usec *= 10;
                }
                if (*p == 'Z' || *p == 'z') {
                        p++;
                } else if (*p == '+' || *p == '-') {
                        int sign = *p++ == '-' ? -1 : 1, oh, om;

                        if (digits(&p, 2, &oh) < 0 || *p++ != ':' || digits(&p, 2, &om) < 0 ||
                            oh > 23 || om > 59)
                                return -EINVAL;
                        off = sign * (oh * 3600 + om * 60);
                } else
                        return -EINVAL;
                if (*p)
                        return -EINVAL;
        }
        tm.tm_year = year - 1900;
        tm.tm_mon = month - 1;
        tm.tm_mday = day;
        tm.tm_hour = hour;
        tm.tm_min = min;
        tm.tm_sec = sec;
        t = (int64_t)timegm(&tm) - off;
        if (t < 0 || t >= YEAR_10000_SEC)
                return -ERANGE;
        *ret_usec = t * USEC_PER_SEC + usec;
        return 0;
}

int audit_parse_since(const char *s, int64_t now_usec, int64_t *ret_usec)
{
        static const struct {
                char unit;
                int64_t usec;
        } units[] = {
                {'s', USEC_PER_SEC},
                {'m', 60 * USEC_PER_SEC},
                {'h', 3600 * USEC_PER_SEC},
                {'d', 86400 * USEC_PER_SEC},
                {'w', 7 * 86400 * USEC_PER_SEC},
        };
        size_t n;
        char *end;
        unsigned long long v;

        if (!s || !*s)
                return -EINVAL;
        n = strspn(s, "0123456789");
        if (n == 0 || n + 1 != strlen(s))
                return audit_parse_time(s, ret_usec);
        for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
                if (s[n] != units[i].unit)
                        continue;
                errno = 0;
                v = strtoull(s, &end, 10);
                if (errno || end != s + n)
                        return -ERANGE;
                if (now_usec < 0 || v > (unsigned long long)(now_usec / units[i].usec))
                        return -ERANGE;
                *ret_usec = now_usec - (int64_t)v * units[i].usec;
                return 0;
        }
        return -EINVAL;
}
