/* SPDX-License-Identifier: MIT */
/*
 * This file keeps a tune's time per phase (tune_clock.h). Phases with the same name (eva's
 * windows) add up; past RJ_TUNE_CLOCK_PHASES names the rest is not kept, since the note is a
 * diagnostic and the registry has far fewer estimators.
 */
#include "tuner/tune_clock.h"

#include "core/base.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

static double cpu_now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* A zeroed clock has no phase running: cur indexes a used one. */
static int running(const rj_tune_clock *c)
{
    return c->cur >= 0 && c->cur < c->n;
}

void rj_tune_clock_phase(rj_tune_clock *c, const char *name)
{
    const double now = rj_now_s(), cpu = cpu_now_s();
    if (running(c)) {
        c->ph[c->cur].total_s += now - c->started_s;
        c->ph[c->cur].cpu_s += cpu - c->started_cpu_s;
    }
    c->cur = -1;
    c->started_s = now;
    c->started_cpu_s = cpu;
    if (!name)
        return;
    for (int i = 0; i < c->n; i++)
        if (!strcmp(c->ph[i].name, name)) {
            c->cur = i;
            return;
        }
    if (c->n < RJ_TUNE_CLOCK_PHASES) {
        c->ph[c->n] = (rj_tune_phase){.name = name};
        c->cur = c->n++;
    }
}

void rj_tune_clock_errors(rj_tune_clock *c, double s, int n)
{
    if (!running(c))
        return;
    c->ph[c->cur].err_s += s;
    c->ph[c->cur].err_n += n;
}

void rj_tune_clock_timing(rj_tune_clock *c, double s)
{
    if (!running(c))
        return;
    c->ph[c->cur].time_s += s;
    c->ph[c->cur].time_n += 1;
}

void rj_tune_clock_line(const rj_tune_clock *c, int i, char *out, size_t n)
{
    const rj_tune_phase *p = &c->ph[i];
    snprintf(out, n,
             "tune: %-12s %6.2f s, CPU %6.2f s (%4d error runs %6.2f s, %3d timings at L %6.2f s)",
             p->name, p->total_s, p->cpu_s, p->err_n, p->err_s, p->time_n, p->time_s);
}
