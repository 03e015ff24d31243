/* SPDX-License-Identifier: MIT */
/*
 * This file is where a tune's time goes: per phase (calibration set, exact's yardstick, each
 * candidate estimator, the tiling search), the seconds spent in error evaluations (and how
 * many plan runs on the calibration set) and in timings at L (and how many), and the
 * process's CPU time per phase. With
 * RFJIT_VERBOSE (or a context's verbose) it is a note per phase at the end of rfjit_tune, so a slow
 * tune can be taken apart without a profiler. Not for: deciding anything.
 */
#ifndef RJ_TUNE_CLOCK_H
#define RJ_TUNE_CLOCK_H

#include <stddef.h>

enum { RJ_TUNE_CLOCK_PHASES = 24 };

typedef struct rj_tune_phase {
    const char *name;
    double total_s, cpu_s, err_s, time_s; /* cpu_s: the process's, every thread's */
    int err_n, time_n;
} rj_tune_phase;

typedef struct rj_tune_clock {
    rj_tune_phase ph[RJ_TUNE_CLOCK_PHASES];
    int n, cur; /* phases used, the running one (none unless < n: zeroed is idle) */
    double started_s, started_cpu_s; /* when the running one started */
} rj_tune_clock;

/* End the running phase (if any) and start `name` (a static string; NULL: none). */
void rj_tune_clock_phase(rj_tune_clock *c, const char *name);
/* Charge the running phase with an error evaluation of n plan runs, or a timing. */
void rj_tune_clock_errors(rj_tune_clock *c, double s, int n);
void rj_tune_clock_timing(rj_tune_clock *c, double s);
/* Phase i's line: "name: s wall, s CPU (n error runs s, n timings s)". On a loaded
 * machine the wall times stretch and the CPU times do not. */
void rj_tune_clock_line(const rj_tune_clock *c, int i, char *out, size_t n);

#endif
