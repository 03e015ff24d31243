/* SPDX-License-Identifier: MIT */
/*
 * This file runs the concurrency scenarios of tests/common/conc_testutil.c (many threads on
 * one context: each kernel compiled once, every concurrent output equal to the serial one)
 * in the Criterion suite; the TSan stage runs the same scenarios from tests/tsan/.
 */
#include <criterion/criterion.h>

#include "conc_testutil.h"

static char why[512];

static void setup(void)
{
    cr_assert_eq(conc_setup(why, sizeof why), 0, "%s", why);
}

TestSuite(concurrency, .init = setup);

Test(concurrency, threads_create_and_execute_plans_on_one_context, .timeout = 300)
{
    cr_assert_eq(conc_create_and_execute(why, sizeof why), 0, "%s", why);
}

Test(concurrency, one_plan_executed_from_many_threads, .timeout = 300)
{
    cr_assert_eq(conc_shared_plan(why, sizeof why), 0, "%s", why);
}

Test(concurrency, threads_share_a_disk_cache, .timeout = 300)
{
    cr_assert_eq(conc_disk_cache(why, sizeof why), 0, "%s", why);
}

Test(concurrency, threads_failing_at_once_read_their_own_messages, .timeout = 120)
{
    cr_assert_eq(conc_failing_calls(why, sizeof why), 0, "%s", why);
}
