/* SPDX-License-Identifier: MIT */
/*
 * This file is the TSan stage's program (scripts/tsan.sh): the concurrency scenarios of
 * tests/common/conc_testutil.c without Criterion, whose process arena cannot be mapped under
 * TSan's address-space layout. Exit 0 when every scenario passes; TSan itself exits 66 on
 * the first race it reports (TSAN_OPTIONS set by the script).
 */
#include "conc_testutil.h"

#include <stdio.h>

int main(void)
{
    static const struct {
        const char *name;
        int (*run)(char *, size_t);
    } scenarios[] = {{"setup (serial outputs)", conc_setup},
                     {"threads create and execute plans on one context", conc_create_and_execute},
                     {"one plan executed from many threads", conc_shared_plan},
                     {"threads over one disk cache, empty then full", conc_disk_cache},
                     {"threads failing at once read their own messages", conc_failing_calls}};
    char why[512];
    int failed = 0;
    for (size_t i = 0; i < sizeof scenarios / sizeof *scenarios; i++) {
        const int bad = scenarios[i].run(why, sizeof why);
        printf("%s: %s%s\n", scenarios[i].name, bad ? "FAILED: " : "ok", bad ? why : "");
        failed |= bad;
        if (bad && i == 0)
            break;
    }
    return failed;
}
