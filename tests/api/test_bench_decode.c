/* SPDX-License-Identifier: MIT */
/*
 * This file tests `rfjit bench --suite decode-smoke`, the decode suite on tiny sizes, through
 * the built CLI: a machine line, then one JSON row per case with the suite's keys, positive
 * times, the state size of its shape and the per-head time derived from the step time. No
 * timing is asserted; torch is left out (--no-torch), so its ratio is null.
 */
#include <criterion/criterion.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The number after "key": in a JSON line; NaN for null or a missing key. */
static double num(const char *line, const char *key)
{
    char pat[80];
    snprintf(pat, sizeof pat, "\"%s\":", key);
    const char *p = strstr(line, pat);
    if (!p)
        return NAN;
    p += strlen(pat);
    char *end;
    const double v = strtod(p, &end);
    return end == p ? NAN : v;
}

Test(bench_decode, smoke_suite_json, .timeout = 300)
{
    FILE *f = popen(RFJIT_CLI_PATH " bench --suite decode-smoke --json --no-torch 2>/dev/null",
                    "r");
    cr_assert_not_null(f);
    static char line[8192];
    int n = 0;
    while (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\n")] = 0;
        const size_t len = strlen(line);
        cr_assert(len > 2 && line[0] == '{' && line[len - 1] == '}', "not an object: %s", line);
        if (n++ == 0) {
            cr_assert(strstr(line, "\"machine\":true"), "first line is not the machine: %s", line);
            continue;
        }
        static const char *keys[] = {"us_per_step",      "us_per_head_step", "state_bytes",
                                     "floor_us",         "prefill_ms",       "causal_ms",
                                     "prefill_vs_causal"};
        for (int i = 0; i < 7; i++)
            cr_assert_gt(num(line, keys[i]), 0, "%s missing or not positive: %s", keys[i], line);
        cr_assert(strstr(line, "\"vs_torch_recurrent\":null"), "--no-torch ran torch: %s", line);
        const double B = num(line, "B"), H = num(line, "H"), m = num(line, "m"),
                     dv = num(line, "dv");
        cr_assert_eq(num(line, "state_bytes"), B * H * m * (dv + 1) * 4, "%s", line);
        /* printed with 4 significant digits each */
        const double us = num(line, "us_per_step"), per_head = num(line, "us_per_head_step");
        cr_assert(fabs(per_head * B * H - us) <= 2e-3 * us, "%s", line);
        cr_assert(num(line, "us_per_step_min") <= us && us <= num(line, "us_per_step_max"), "%s",
                  line);
    }
    cr_assert_eq(pclose(f), 0, "rfjit bench failed");
    cr_assert_eq(n, 3, "machine line + 2 decode-smoke rows, got %d lines", n);
}
