/* SPDX-License-Identifier: MIT */
/* Concurrency scenarios on one shared context (conc_testutil.c). Each returns 0, or 1 with
 * the reason in why. conc_setup runs first: inputs and the serial outputs to compare with. */
#ifndef RJ_CONC_TESTUTIL_H
#define RJ_CONC_TESTUTIL_H
#include <stddef.h>
int conc_setup(char *why, size_t n);
int conc_create_and_execute(char *why, size_t n);
int conc_shared_plan(char *why, size_t n);
int conc_disk_cache(char *why, size_t n);
int conc_failing_calls(char *why, size_t n);
#endif
