/* SPDX-License-Identifier: MIT */
/*
 * This file tests `rfjit bench --suite decode-smoke`, the decode suite on tiny sizes, through
 * the built CLI: a machine line, then one JSON row per case with the suite's keys, positive
 * times, the state size of its shape and the per-head time derived from the step time. No
 * timing is asserted; torch is left out (--no-torch), so its ratio is null.
 */
#include <criterion/criterion.h>

#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
            cr_assert_gt(bench_json_number(line, keys[i]), 0, "%s missing or not positive: %s",
                         keys[i], line);
        cr_assert(strstr(line, "\"vs_torch_recurrent\":null"), "--no-torch ran torch: %s", line);
        const double B = bench_json_number(line, "B"), H = bench_json_number(line, "H"),
                     m = bench_json_number(line, "m"), dv = bench_json_number(line, "dv");
        cr_assert_eq(bench_json_number(line, "state_bytes"), B * H * m * (dv + 1) * 4, "%s", line);
        /* printed with 4 significant digits each */
        const double us = bench_json_number(line, "us_per_step"),
                     per_head = bench_json_number(line, "us_per_head_step");
        cr_assert(fabs(per_head * B * H - us) <= 2e-3 * us, "%s", line);
        cr_assert(bench_json_number(line, "us_per_step_min") <= us &&
                      us <= bench_json_number(line, "us_per_step_max"),
                  "%s", line);
    }
    cr_assert_eq(pclose(f), 0, "rfjit bench failed");
    cr_assert_eq(n, 3, "machine line + 2 decode-smoke rows, got %d lines", n);
}
